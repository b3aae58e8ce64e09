//! What a backtest returns: trades, the equity and drawdown curves, statistics.
//!
//! Owns: the output types and their JSON shape. Never: computing them (the engine and
//! `stats` do) or writing files (the CLI and the report do).

use serde::{Deserialize, Serialize};

use super::stats::Stats;

/// Why a trade was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The strategy closed the position or an opposite order netted it.
    Signal,
    /// Its stop-loss was touched.
    StopLoss,
    /// Its take-profit was touched.
    TakeProfit,
    /// `finalize_trades`: closed after the last bar so it counts in the statistics.
    EndOfData,
    /// Equity reached zero: closed at that bar's close and the backtest stopped.
    OutOfMoney,
    /// Still open at the end (`finalize_trades = false`): valued at the last close, not a
    /// closed trade, not in the statistics.
    Open,
}

/// One trade: a position opened by one fill and closed (wholly, or the part of it an
/// opposite order or stop reduced it by) by another, as a row of backtesting.py's `_trades`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    /// Signed quantity in base units: > 0 long, < 0 short.
    pub size: f64,
    pub entry_bar: usize,
    pub exit_bar: usize,
    /// Bar open times (ms since the Unix epoch, UTC) of `entry_bar` and `exit_bar`.
    pub entry_time_ms: i64,
    pub exit_time_ms: i64,
    /// Fill price including the spread.
    pub entry_price: f64,
    pub exit_price: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Profit in quote currency after both commissions.
    pub pnl: f64,
    /// Return on the entry value in percent, after commissions (backtesting.py
    /// `ReturnPct * 100`).
    pub return_pct: f64,
    /// Entry plus exit commission, in quote currency.
    pub commission: f64,
    pub exit_reason: ExitReason,
}

/// The outcome of [`crate::backtest::run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestResult {
    /// Closed trades in the order they were closed (the ones the statistics count).
    pub trades: Vec<Trade>,
    /// Trades still open at the end, valued at the last close (`exit_reason = open`).
    pub open_trades: Vec<Trade>,
    /// Account equity (cash plus open positions at the close) after each bar; bars before
    /// the first trading bar hold the starting cash.
    pub equity: Vec<f64>,
    /// Drawdown after each bar as a fraction of the running equity peak (0 = at a peak).
    pub drawdown: Vec<f64>,
    /// First bar the strategy's actions were executed from (backtesting.py's first
    /// `next()`); see the engine's module doc.
    pub first_trading_bar: usize,
    /// Orders the broker cancelled for lack of margin (backtesting.py warns about each).
    pub cancelled_orders: usize,
    /// The bar equity reached zero on, when it did; the backtest stopped there.
    pub out_of_money_bar: Option<usize>,
    pub stats: Stats,
}
