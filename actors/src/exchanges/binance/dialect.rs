//! The API a Binance REST connector speaks: spot (`/api/v3`) or USDⓈ-M futures (`/fapi`).
//!
//! Owns: what differs between the two for the shared request machinery of
//! [`super::BinanceSpotVenue`] — the server-time and exchangeInfo paths, the IP weight
//! budget the `X-MBX-USED-WEIGHT-1M` header is read against, the order-count headers
//! observed into order pools, and the environment variables of the keys. Never: paths of
//! trading endpoints (each venue module names its own), or I/O.
//!
//! One request machinery serves both (signing, `recvWindow` ending at an order's
//! deadline, -1021 resync, the 429/418 pause, limits, breaker, filter cache): Binance
//! documents the same rules for both APIs, so they must not drift apart in two copies.

use std::time::Duration;

/// An order-count header observed into a pool after every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCount {
    /// e.g. `X-MBX-ORDER-COUNT-10S`.
    pub header: &'static str,
    /// The order pool it reports on.
    pub pool: &'static str,
    /// The account's documented limit over `window`.
    pub limit: u64,
    /// The counter's (calendar) interval.
    pub window: Duration,
}

/// What one Binance REST API looks like to the shared request machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// `GET` server time (`{"serverTime": ms}`), read after a -1021.
    pub time_path: &'static str,
    /// `GET` exchangeInfo (symbols and their filters), read per symbol.
    pub exchange_info_path: &'static str,
    /// Whether exchangeInfo takes `symbol` (spot) or always answers every symbol (futures,
    /// which documents no parameters).
    pub exchange_info_per_symbol: bool,
    /// `GET` best bid/ask of one symbol (`bidPrice`, `askPrice`).
    pub book_ticker_path: &'static str,
    /// `GET` klines (rows `[openTime, open, high, low, close, volume, ...]`).
    pub klines_path: &'static str,
    /// The documented IP request-weight budget per minute.
    pub weight_per_minute: u64,
    /// Weight of the heaviest request the venue sends: with less headroom than this the
    /// venue reports itself saturated.
    pub heaviest_weight: u64,
    /// Order-count headers observed into order pools (none: orders are only counted
    /// locally).
    pub order_counts: &'static [OrderCount],
    /// Environment variables of the API key and secret.
    pub api_key_env: &'static str,
    pub api_secret_env: &'static str,
}

/// Binance spot, `/api/v3`.
pub const SPOT: Dialect = Dialect {
    time_path: "/api/v3/time",
    exchange_info_path: "/api/v3/exchangeInfo",
    exchange_info_per_symbol: true,
    book_ticker_path: "/api/v3/ticker/bookTicker",
    klines_path: "/api/v3/klines",
    weight_per_minute: super::config::WEIGHT_PER_MINUTE,
    heaviest_weight: super::venue::HEAVIEST_WEIGHT,
    order_counts: &[],
    api_key_env: super::venue::API_KEY_ENV,
    api_secret_env: super::venue::API_SECRET_ENV,
};
