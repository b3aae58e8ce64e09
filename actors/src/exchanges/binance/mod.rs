//! Binance spot: the HTTP connector and the exactness-critical pieces it composes.
//!
//! - [`signing`]: HMAC-SHA256 of the exact query string (and form body), `recvWindow` and
//!   `timestamp`, the API secret;
//! - [`filters`]: exchangeInfo symbol filters and rounding of prices/quantities onto them;
//! - [`errors`]: `{"code","msg"}` answers with their HTTP status, classified into venue
//!   errors with the venue's message kept;
//! - [`config`]: the venue section, its limits and the symbol ↔ pair mapping;
//! - [`dialect`]: what differs between the spot and USDⓈ-M futures APIs for the one
//!   request machinery both use;
//! - [`venue`]: [`BinanceSpotVenue`], the only part that does I/O (its request layer also
//!   serves [`crate::exchanges::binance_futures`]);
//! - `mock` (tests and feature `testkit`): a stateful loopback Binance spot exchange;
//!   `ws_mock`: its websocket streams (market and user data).

pub mod config;
pub mod dialect;
pub mod errors;
pub mod filters;
#[cfg(any(test, feature = "testkit"))]
pub mod mock;
pub mod signing;
pub mod venue;
#[cfg(any(test, feature = "testkit"))]
pub mod ws_mock;

pub use config::BinanceConfig;
pub use errors::{parse_error_response, BinanceApiError, BinanceErrorKind, RequestKind};
pub use filters::{parse_exchange_info, symbol_rules, FilterError, SymbolRules};
pub use signing::{signed_query, ApiSecret, BinanceSigningError, RecvWindow, API_KEY_HEADER};
pub use venue::{BinanceOpenError, BinanceSpotVenue, API_KEY_ENV, API_SECRET_ENV, KLINES_PER_PAGE};

#[cfg(test)]
mod mock_tests;
#[cfg(test)]
pub(crate) mod tests;
