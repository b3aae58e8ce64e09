//! Backtesting: historical bars in, simulated trades and statistics out.
//!
//! Owns: loading historical OHLCV bars ([`data`]). Later steps of #14 add here the
//! backtester (its stated execution model), the statistics defined as backtesting.py defines
//! them, parameter sweeps and reports. Never: live orders, the ledger, or network access —
//! a backtest reads local files only (fetching data is a separate command).

pub mod data;
