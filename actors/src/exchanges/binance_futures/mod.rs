//! Binance USDⓈ-M futures (`kind = "binance_futures"`): the fapi REST venue.
//!
//! - [`config`]: the venue section, its documented limits, streams settings and margin
//!   mode;
//! - [`venue`]: [`BinanceFuturesVenue`], [`crate::exchanges::Venue`] and
//!   [`crate::exchanges::derivatives::DerivativesData`] over `/fapi`; its requests go
//!   through the spot module's request machinery (signing, `recvWindow`, -1021 resync,
//!   weights and order counts, 429/418 pause, error classes, exchangeInfo filters) with
//!   the [`venue::FUTURES`] dialect, never a copy of it;
//! - `mock` (tests and feature `testkit`): a stateful loopback USDⓈ-M futures exchange;
//! - `ws_mock` (tests and feature `testkit`): its loopback websocket server (combined
//!   market streams and the user data stream, server pings, lifetime close, faults).
//!
//! Owns: what is futures-only (positions with leverage and margin, reduce-only, the
//! Algo Order API for conditional orders, margin type, position mode, funding, open
//! interest). Never: signing or limit code of its own.

pub mod config;
#[cfg(any(test, feature = "testkit"))]
pub mod mock;
pub mod venue;
#[cfg(any(test, feature = "testkit"))]
pub mod ws_mock;

pub use config::{BinanceFuturesConfig, MarginType, API_KEY_ENV, API_SECRET_ENV};
pub use venue::{open_public, open_public_at, BinanceFuturesVenue, FUTURES};

#[cfg(test)]
mod tests;
