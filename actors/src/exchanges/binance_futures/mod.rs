//! Binance USDⓈ-M futures (`kind = "binance_futures"`): the fapi REST venue.
//!
//! - [`config`]: the venue section, its limits, streams settings and margin mode.
pub mod config;
pub use config::{BinanceFuturesConfig, MarginType};
pub use config::{API_KEY_ENV, API_SECRET_ENV};
#[cfg(any(test, feature = "testkit"))]
pub mod ws_mock;
