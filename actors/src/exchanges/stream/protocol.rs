//! What the connection loop needs to know about one venue's websocket protocol.
//!
//! Owns: the [`Protocol`] trait (the URL of the next connection, the subscription frames,
//! the client heartbeat, reading one text frame, periodic work such as a listen-key
//! keep-alive or a depth resync, the longest life of one connection) and the error of a
//! frame that could not be read. Never: I/O of its own in the trait's default methods, and
//! never a panic on a frame — implementations return [`FrameError`].
//!
//! A trait object rather than a generic parameter: the supervised actor that runs a stream
//! is built by the supervision tree from config, one concrete protocol per venue kind, and
//! a boxed future per connection costs nothing next to a network round trip.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::book::VenueFeed;
use super::error::StreamError;

/// One venue's websocket protocol, driven by [`super::connection::run`].
pub trait Protocol: Send + 'static {
    /// The URL of the next connection. The default is the configured one; a user data
    /// stream first creates its listen key over REST (with its own deadline) and puts it in
    /// the URL. An error ends this attempt and the loop retries after its backoff.
    fn connect_url<'a>(
        &'a mut self,
        configured: &'a str,
    ) -> BoxFuture<'a, Result<String, StreamError>> {
        Box::pin(async move { Ok(configured.to_string()) })
    }

    /// Frames sent once connected, in order (subscriptions). Empty when the URL itself names
    /// the streams (Binance's combined streams).
    fn subscribe_messages(&self) -> Vec<String>;

    /// The text heartbeat the client sends every `ping_interval`, if the venue wants one
    /// (Hyperliquid: `{"method":"ping"}`). `None` when the server pings and the client only
    /// answers pongs (Binance; tungstenite answers them itself).
    fn heartbeat(&self) -> Option<String>;

    /// Reads one text frame and applies it; returns the channel name it is counted under.
    fn on_text(
        &mut self,
        text: &str,
        feed: &VenueFeed,
        now: Instant,
    ) -> Result<&'static str, FrameError>;

    /// Called once the connection is subscribed, before the first frame is read.
    fn on_connected(&mut self, _feed: &VenueFeed) {}

    /// Periodic work at each staleness sweep (a listen-key keep-alive, a depth snapshot
    /// after a gap), each network call under its own deadline. Frames wait in the socket
    /// meanwhile, which is the buffering Binance's depth procedure asks for. An error ends
    /// the connection (and the loop reconnects).
    fn on_tick<'a>(
        &'a mut self,
        _feed: &'a VenueFeed,
        _now: Instant,
    ) -> BoxFuture<'a, Result<(), StreamError>> {
        Box::pin(async { Ok(()) })
    }

    /// The longest one connection may live before the loop replaces it (Binance closes a
    /// connection at 24 h; rotating a little earlier avoids the gap).
    fn max_lifetime(&self) -> Option<Duration> {
        None
    }

    /// Called after a connection ended, before the backoff wait (close a listen key, drop
    /// a depth book that is no longer in sync).
    fn on_disconnected<'a>(&'a mut self, _feed: &'a VenueFeed) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A frame that could not be read: counted in `orrery_stream_malformed_frames_total`,
/// logged and dropped.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not a known {venue} message ({source}); first bytes: {head:?}")]
    Malformed {
        venue: &'static str,
        source: serde_json::Error,
        head: String,
    },
    #[error("binary frame of {0} bytes; the venue sends JSON text")]
    Binary(usize),
    /// Well-formed JSON whose content is impossible (e.g. a fill with a negative size).
    #[error("{venue} frame refused: {reason}")]
    Invalid { venue: &'static str, reason: String },
}

impl FrameError {
    /// A serde failure on `text`, with the first bytes for the log.
    pub fn malformed(venue: &'static str, source: serde_json::Error, text: &str) -> Self {
        Self::Malformed {
            venue,
            source,
            head: text.chars().take(80).collect(),
        }
    }
}
