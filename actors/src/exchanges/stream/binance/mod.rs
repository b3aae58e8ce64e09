//! Binance websocket streams: the pieces spot and USDⓈ-M futures share, and the spot
//! protocols.
//!
//! Owns: the combined-stream envelope ([`envelope`]: `{"stream":...,"data":...}` read in
//! one pass, the payload type chosen by the stream name) and a listen key's life over REST
//! ([`listen_key`]: create / keep alive / close, generic over the base URL and path, so
//! `/api/v3/userDataStream` and `/fapi/v1/listenKey` both use it). Never: I/O outside the
//! listen key's REST calls, and never a panic on a frame.

pub mod envelope;
pub mod listen_key;

#[cfg(test)]
mod tests;

pub use envelope::{combined_url, parse_combined, Combined, StreamPayload};
pub use listen_key::{
    ApiKey, ListenKey, ListenKeyApi, ListenKeyCounts, ListenKeyEndpoint, ListenKeyError,
    ListenKeyLifecycle,
};
