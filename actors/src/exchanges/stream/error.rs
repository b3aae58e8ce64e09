//! Why a venue's stream connection ended.
//!
//! Owns: [`StreamError`], shared by the connection loop and the venue protocols' hooks (a
//! listen key that could not be made ends an attempt the same way a refused connect does).
//! Never: decides what happens next — every end leads to a backoff and a reconnect.

use std::time::Duration;

/// Why one connection ended (logged; every end leads to a reconnect).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot connect to {url} within {deadline:?}")]
    ConnectTimeout { url: String, deadline: Duration },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("sending to the venue took longer than {0:?}")]
    SendTimeout(Duration),
    #[error("websocket error: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server closed the connection ({0})")]
    Closed(String),
    #[error("no frame (not even a pong) for {0:?}; the connection is presumed dead")]
    Silent(Duration),
    #[error("connection rotated after {0:?} (the venue ends longer connections)")]
    Rotated(Duration),
    /// A REST call the protocol needs (a listen key, a depth snapshot) failed.
    #[error("{what}: {source}")]
    Rest {
        what: &'static str,
        source: crate::exchanges::venue::VenueError,
    },
    /// The venue's data is no longer consistent (a sequence gap that a resync could not
    /// close); a new connection starts from a fresh snapshot.
    #[error("{0}")]
    OutOfSync(String),
}
