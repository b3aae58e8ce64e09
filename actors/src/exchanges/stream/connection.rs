//! One venue's websocket connection: connect, subscribe, heartbeat, read, and on any loss
//! reconnect with backoff and subscribe again; run inside a supervised actor.
//!
//! Owns: the deadlines of every network await (connect, each send, the read: a connection
//! that sends nothing — not even a pong — for `ping_interval + pong_timeout` is dead and is
//! replaced), the backoff between attempts (the resilience kit's [`Schedule`], reset once a
//! connection is subscribed), the periodic staleness sweep, and the counting of reconnects
//! and malformed frames. Never: panics on input (a bad frame is logged and counted), or
//! decides what a reader does with a stale feed (the gateway falls back to REST).

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::book::VenueFeed;
pub use super::error::StreamError;
use super::protocol::{FrameError, Protocol};
use crate::resilience::config::BackoffConfig;
use crate::resilience::retry::Schedule;

/// How one venue's stream connects (what it subscribes to is its [`Protocol`]'s).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub venue: String,
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// A quote or channel older than this is stale (reads use REST).
    pub stale_after: Duration,
    /// Heartbeat period (Hyperliquid closes a connection idle for 60 s; its SDK pings
    /// every 50 s).
    pub ping_interval: Duration,
    /// How long after a ping a silent connection is given before it is replaced.
    pub pong_timeout: Duration,
    /// Deadline of the TCP + TLS + websocket handshake.
    pub connect_timeout: Duration,
    /// Deadline of one outgoing frame.
    pub send_timeout: Duration,
    /// Waits between connection attempts.
    pub backoff: BackoffConfig,
}

impl StreamSettings {
    /// Defaults for `url` and `stale_after`: a 50 s heartbeat (Hyperliquid closes a
    /// connection idle for 60 s; a venue whose server pings ignores it), 10 s to connect or
    /// to hear a pong, backoff from 0.5 s to 30 s.
    pub fn new(venue: &str, url: &str, stale_after: Duration) -> Self {
        Self {
            venue: venue.to_string(),
            url: url.to_string(),
            stale_after,
            ping_interval: Duration::from_secs(50),
            pong_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(5),
            backoff: BackoffConfig {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(30),
                ..BackoffConfig::default()
            },
        }
    }

    fn schedule(&self) -> Schedule {
        let b = &self.backoff;
        Schedule::new(b.kind, b.base, b.multiplier, b.cap, b.jitter)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, text: String, deadline: Duration) -> Result<(), StreamError> {
    timeout(deadline, ws.send(Message::text(text)))
        .await
        .map_err(|_| StreamError::SendTimeout(deadline))??;
    Ok(())
}

/// Runs the venue's stream for ever: each connection until it ends, then a backoff wait,
/// then the next. Cancelled by dropping it (the actor stopping).
pub async fn run(settings: StreamSettings, mut protocol: Box<dyn Protocol>, feed: Arc<VenueFeed>) {
    let mut backoff = settings.schedule();
    let mut first = true;
    loop {
        if !first {
            feed.count_reconnect();
        }
        first = false;
        let end = connection(&settings, protocol.as_mut(), &feed, &mut backoff).await;
        feed.set_connected(false);
        protocol.on_disconnected(&feed).await;
        let wait = backoff.next().unwrap_or(settings.backoff.cap);
        tracing::warn!(venue = %settings.venue, url = %settings.url, error = %end, retry_in = ?wait, "market-data stream lost; reads use REST until it is back");
        tokio::time::sleep(wait).await;
    }
}

/// One connection, from connect to its end (always an error: streams do not end on their own).
async fn connection(
    s: &StreamSettings,
    protocol: &mut dyn Protocol,
    feed: &VenueFeed,
    backoff: &mut Schedule,
) -> StreamError {
    let url = match protocol.connect_url(&s.url).await {
        Ok(url) => url,
        Err(e) => return e,
    };
    let mut ws = match timeout(s.connect_timeout, tokio_tungstenite::connect_async(&url)).await {
        Err(_) => {
            return StreamError::ConnectTimeout {
                url: s.url.clone(),
                deadline: s.connect_timeout,
            }
        }
        Ok(Err(source)) => {
            return StreamError::Connect {
                url: s.url.clone(),
                source,
            }
        }
        Ok(Ok((ws, _))) => ws,
    };
    let subscriptions = protocol.subscribe_messages();
    for sub in &subscriptions {
        if let Err(e) = send(&mut ws, sub.clone(), s.send_timeout).await {
            return e;
        }
    }
    feed.set_connected(true);
    protocol.on_connected(feed);
    *backoff = s.schedule();
    // The configured URL, never the connected one: a user stream's URL carries its listen key.
    tracing::info!(venue = %s.venue, url = %s.url, subscriptions = subscriptions.len(), "market-data stream connected and subscribed");
    let heartbeat = protocol.heartbeat();
    let rotate_at = protocol
        .max_lifetime()
        .map(|life| (Instant::now() + life, life));
    let silence = s.ping_interval + s.pong_timeout;
    let sweep_every = (s.stale_after / 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ping = tokio::time::interval_at(Instant::now() + s.ping_interval, s.ping_interval);
    let mut sweep = tokio::time::interval(sweep_every);
    let mut last_frame = Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if let Some(beat) = &heartbeat {
                    if let Err(e) = send(&mut ws, beat.clone(), s.send_timeout).await {
                        return e;
                    }
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                feed.sweep(now);
                if now.saturating_duration_since(last_frame) > silence {
                    return StreamError::Silent(silence);
                }
                if let Some((at, life)) = rotate_at {
                    if now >= at {
                        // A polite close; the next connection subscribes afresh.
                        let _ = timeout(s.send_timeout, ws.close(None)).await;
                        return StreamError::Rotated(life);
                    }
                }
                if let Err(e) = protocol.on_tick(feed, now).await {
                    return e;
                }
            }
            frame = ws.next() => {
                let now = Instant::now();
                last_frame = now;
                match frame {
                    None => return StreamError::Closed("end of stream".into()),
                    Some(Err(e)) => return StreamError::Socket(e),
                    Some(Ok(Message::Text(text))) => match protocol.on_text(text.as_str(), feed, now) {
                        Ok(channel) => feed.record(channel, now),
                        Err(e) => {
                            feed.count_malformed();
                            tracing::warn!(venue = %s.venue, error = %e, "malformed market-data frame dropped");
                        }
                    },
                    Some(Ok(Message::Binary(b))) => {
                        feed.count_malformed();
                        tracing::warn!(venue = %s.venue, error = %FrameError::Binary(b.len()), "malformed market-data frame dropped");
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return StreamError::Closed(frame.map_or_else(|| "no reason given".into(), |f| format!("{} {}", f.code, f.reason)));
                    }
                    // Pings are answered by tungstenite itself on the next read/flush.
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// The supervised actor that owns one venue's stream: its loop runs as long as the actor.
pub struct StreamFeed {
    run: Option<futures::future::BoxFuture<'static, ()>>,
    feed: Arc<VenueFeed>,
}

impl StreamFeed {
    pub fn new(
        settings: StreamSettings,
        protocol: Box<dyn Protocol>,
        feed: Arc<VenueFeed>,
    ) -> Self {
        Self {
            run: Some(Box::pin(run(settings, protocol, feed.clone()))),
            feed,
        }
    }
}

impl Actor for StreamFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // `run` never returns; if it ever did, the actor stops and its supervisor restarts
        // it (with a new protocol and loop: the supervisor builds a new actor).
        if let Some(fut) = self.run.take() {
            ctx.spawn(fut.into_actor(self).map(|(), _, ctx| ctx.stop()));
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.feed.set_connected(false);
    }
}
