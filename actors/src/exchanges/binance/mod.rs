//! Binance spot: the exactness-critical pieces of the connector.
//!
//! - [`signing`]: HMAC-SHA256 of the exact query string (and form body), `recvWindow` and
//!   `timestamp`, the API secret;
//! - [`filters`]: exchangeInfo symbol filters and rounding of prices/quantities onto them;
//! - [`errors`]: `{"code","msg"}` answers with their HTTP status, classified into venue
//!   errors with the venue's message kept.
//!
//! This module never does I/O; the HTTP connector composes these pieces.

pub mod errors;
pub mod filters;
pub mod signing;

pub use errors::{parse_error_response, BinanceApiError, BinanceErrorKind, RequestKind};
pub use filters::{parse_exchange_info, symbol_rules, FilterError, SymbolRules};
pub use signing::{signed_query, ApiSecret, BinanceSigningError, RecvWindow, API_KEY_HEADER};
