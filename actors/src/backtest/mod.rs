//! Backtesting: historical bars in, simulated trades and statistics out.
//!
//! - [`data`]: OHLCV CSV files into columnar [`Bars`].
//! - [`config`]: the execution options ([`BacktestConfig`]), validated.
//! - [`engine`]: [`run`], the bar loop, and the execution model (its module doc states it).
//! - `broker` (private): orders, trades, cash, margin, fills.
//! - [`stats`]: [`Stats`], as backtesting.py 0.6 computes them.
//! - [`result`]: [`BacktestResult`] and [`Trade`].
//!
//! ```no_run
//! use orrery_actors::backtest::{self, BacktestConfig};
//! use orrery_actors::strategies::builtin::SmaCross;
//! let bars = backtest::data::load(std::path::Path::new("GOOG.csv")).unwrap();
//! let config = BacktestConfig { commission: 0.002, ..Default::default() };
//! let result = backtest::run(&bars, &mut SmaCross::new(10, 20).unwrap(), &config).unwrap();
//! println!("{}", serde_json::to_string(&result.stats).unwrap());
//! ```
//!
//! Owns: simulating a strategy on history and measuring it. Never: live orders, the
//! ledger, or network access — a backtest reads local files only (fetching data is a
//! separate command), and [`run`] does no I/O at all, so sweeps can call it from many
//! threads.

mod broker;
pub mod config;
pub mod data;
pub mod engine;
pub mod result;
pub mod stats;

pub use broker::OrderError;
pub use config::{BacktestConfig, ConfigError, Fill};
pub use data::Bars;
pub use engine::{run, BacktestError};
pub use result::{BacktestResult, ExitReason, Trade};
pub use stats::Stats;
