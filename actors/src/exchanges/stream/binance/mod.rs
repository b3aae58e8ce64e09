//! Binance websocket streams: the pieces spot and USDⓈ-M futures share, and the spot
//! protocols.
//!
//! Spot: [`spot`] (bookTicker, aggTrade, kline and diff-depth on one combined connection,
//! the depth books kept in sync by [`depth`]'s documented procedure) and [`user`] (the
//! listen-key user data stream: order updates and fills toward the gateway, balances).
//!
//! Owns: the combined-stream envelope ([`envelope`]: `{"stream":...,"data":...}` read in
//! one pass, the payload type chosen by the stream name) and a listen key's life over REST
//! ([`listen_key`]: create / keep alive / close, generic over the base URL and path, so
//! `/api/v3/userDataStream` and `/fapi/v1/listenKey` both use it). Never: I/O outside the
//! listen key's REST calls, and never a panic on a frame.

pub mod depth;
pub mod envelope;
pub mod listen_key;
pub mod spot;
pub mod user;

#[cfg(test)]
mod tests;

pub use envelope::{combined_url, parse_combined, Combined, StreamPayload};
pub use listen_key::{
    ApiKey, ListenKey, ListenKeyApi, ListenKeyCounts, ListenKeyEndpoint, ListenKeyError,
    ListenKeyLifecycle,
};
pub use spot::{DepthBooks, DepthSource, SpotMarketProtocol};
pub use user::SpotUserProtocol;
