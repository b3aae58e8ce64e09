//! Real-time market data over websockets: one supervised connection per venue, its
//! subscriptions, heartbeat, reconnection and staleness, and the quote cache the gateway
//! reads while the stream is fresh.
//!
//! Owns: the connection loop ([`connection`]: connect with a deadline, subscribe, ping,
//! read with a deadline, rotate, reconnect with the resilience kit's backoff and subscribe
//! again), what a venue protocol must provide ([`protocol::Protocol`]), the venue protocols
//! ([`hyperliquid`]: subscription messages and typed frames; [`hyperliquid_user`]: the
//! account's user channels and followed wallets; [`binance`]: spot market and
//! user-data streams and the pieces Binance's venues share; [`binance_futures`]: USDⓈ-M
//! futures market and user-data streams), the account updates a user
//! stream hands to the gateway ([`pushed`]), followed wallets' fills ([`followed`]), and the
//! shared state ([`book`]: quotes, mids and per-channel ages, the connected flag;
//! [`derivatives`]: mark prices with funding, the liquidation tape, the pushed futures
//! account; [`tape`]: the newest public trades per symbol, deduplicated by trade id) that
//! the gateway's quote read, `orrery status` and the agents consult without a message
//! round trip.
//!
//! Never: the truth about money. Streams are an addition: a quote is served from the stream
//! only while the connection is up and that symbol's quote is younger than
//! `stream_stale_after`; otherwise the gateway reads REST through the existing market-data
//! fallback levels ([`super::market_data`]). A stream never places, cancels or reconciles
//! orders, and a malformed frame is counted and logged, never a panic.
//!
//! Metrics: `orrery_stream_connected{venue}`, `orrery_stream_reconnects_total{venue}`,
//! `orrery_stream_messages_total{venue,channel}`,
//! `orrery_stream_malformed_frames_total{venue}`,
//! `orrery_stream_last_message_age_seconds{venue,channel}`, `orrery_stream_resyncs_total{venue}`
//! (a channel that was fresh went stale: its readers fall back to REST until it is fresh),
//! `orrery_liquidations_total{venue,side}`, `orrery_liquidation_notional_usd_total{venue,side}`.

pub mod binance;
pub mod binance_futures;
pub mod book;
pub mod connection;
pub mod derivatives;
pub mod error;
pub mod followed;
pub mod hyperliquid;
pub mod hyperliquid_user;
pub mod protocol;
pub mod pushed;
pub mod tape;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod user_tests;

pub use book::{AssetBalance, ChannelHealth, FeedHealth, FeedState, StreamBook, VenueFeed};
pub use connection::{StreamError, StreamFeed, StreamSettings};
pub use followed::{FollowedWallet, FollowedWallets};
pub use protocol::{FrameError, Protocol};
pub use pushed::{PushSink, PushedUpdate};

use crate::telemetry::names;

/// Describes the stream metrics (HELP lines).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        names::STREAM_CONNECTED,
        "1 while the venue's market-data websocket is connected and subscribed, else 0."
    );
    describe_counter!(
        names::STREAM_RECONNECTS,
        "Connection attempts of a venue's market-data websocket after the first (lost, refused or silent connections)."
    );
    describe_counter!(
        names::STREAM_MESSAGES,
        "Websocket frames received and parsed, by venue and channel."
    );
    describe_counter!(
        names::STREAM_MALFORMED,
        "Websocket frames that could not be read (bad JSON, unknown shape); each is logged and dropped."
    );
    describe_gauge!(
        names::STREAM_LAST_MESSAGE_AGE,
        Unit::Seconds,
        "Seconds since the last message on a venue's channel (updated at each staleness check)."
    );
    describe_counter!(
        names::STREAM_PUSHED,
        "Order states (kind=order) and fills (kind=fill) a venue's user stream pushed, by outcome: applied to the ledger, duplicate (already there, or stale), dropped (gateway busy or restarting; REST reconciliation finds it), standby (another node owns the venue and writes it)."
    );
    describe_counter!(
        names::STREAM_RESYNCS,
        "Times a fresh channel went stale (or its connection was lost) so reads fell back to REST."
    );
    derivatives::describe();
}
