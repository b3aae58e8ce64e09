//! The bar loop: feeds a strategy bar by bar and has the broker execute its actions.
//!
//! Owns: the order of events in a backtest and the execution model, which is
//! backtesting.py 0.6's (`Backtest.run` with `hedging=False, exclusive_orders=False`):
//!
//! - **First trading bar.** Every bar is fed to `Strategy::on_bar` so indicators warm up,
//!   but actions are executed only from bar `start = max(1, warmup_bars - 1)` (0-based).
//!   backtesting.py calls `next()` from bar `1 + k`, `k` being the longest leading-NaN run
//!   of the strategy's indicators; `warmup_bars` counts the bars fed up to and including
//!   the first decision, so a strategy matches backtesting.py when `warmup_bars = k + 2`
//!   (`SmaCross(10, 20)`: `k = 19`, `warmup_bars = 21`, first decision on bar 20).
//!   Buy & hold is measured from bar `start - 1` (backtesting.py's `c[k]`).
//! - **Each bar `i >= start`:** queued orders execute against bar `i`; then equity is
//!   marked at bar `i`'s close; then the strategy sees bar `i` and its actions are queued.
//! - **Market orders** fill at bar `i + 1`'s open (`Fill::NextOpen`), or at bar `i`'s close
//!   (`Fill::Close`, backtesting.py `trade_on_close=True`; the trade is recorded on bar `i`).
//!   Actions run in the order pushed, so `close(); buy()` flips a position.
//! - **Sizing.** `Size::Equity(f)` buys `floor(margin_available * leverage * f / (price *
//!   (1 ± spread) + commission per unit))` lots (`Equity(1.0)` is backtesting.py's
//!   `1 - epsilon`); `Size::Units` is rounded down to whole lots. An order that cannot be
//!   paid for is cancelled and counted (`cancelled_orders`). As in backtesting.py, the
//!   account is valued at the *current* bar's close when sizing an order filled at its
//!   open (its `last_price`), so a next-open order is sized with that bar's close.
//! - **Lots.** Whole units, or multiples of `fractional_unit` as backtesting.py's
//!   `FractionalBacktest` (which scales prices by the unit and trades whole scaled units).
//! - **Costs.** `commission` (relative, plus `commission_fixed`) is charged on the entry
//!   value and again on the exit value. `spread` moves the entry price against the trade
//!   (buys higher, sells lower); exits fill at the unadjusted price.
//! - **Margin.** Leverage is `1 / margin`; margin used is `|size| * close / leverage`.
//! - **Netting.** An opposite order closes open trades first-in first-out at the fill price
//!   (splitting the last one if it is larger), then opens a trade with what is left.
//! - **Stop-loss / take-profit** are orders attached to the trade, checked against each
//!   bar's high and low, including the bar the trade was opened on (for a next-open fill).
//!   A stop fills at the stop price, or at the open if the bar gapped through it (worse);
//!   a take-profit at its price, or at the open if gapped through (better). When one bar
//!   touches both, the stop-loss fills: the worse outcome, and backtesting.py's too (its
//!   stop orders sit ahead of limit orders in its queue).
//! - **Out of money.** If equity is <= 0 after a bar's orders, open trades are closed at
//!   that close, equity is 0 from there on and the loop stops (`out_of_money_bar`).
//! - **End.** Actions of the last bar are not executed. With `finalize_trades`, every open
//!   trade is then closed by a market order executed against the last bar again (at its
//!   open, or the previous close under `Fill::Close`: backtesting.py's re-run of its last
//!   step), and counts in the statistics. Without it, open trades are reported in
//!   `open_trades` and only the equity curve includes them.
//!
//! Never: I/O, logging or allocation per bar (outputs are sized once; the broker's queues
//! keep their capacity), or `dyn` dispatch beyond the strategy call when `run` is
//! instantiated with a concrete strategy type.

use crate::strategies::api::{Actions, Bar, PositionView, Strategy};

use super::broker::{Broker, OrderError, Px};
use super::config::{BacktestConfig, ConfigError};
use super::data::Bars;
use super::result::BacktestResult;
use super::stats;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no bars to backtest: the bar set is empty")]
    NoBars,
    #[error("bar columns differ in length (time {time}, open {open}, high {high}, low {low}, close {close}); every column needs one value per bar")]
    RaggedBars {
        time: usize,
        open: usize,
        high: usize,
        low: usize,
        close: usize,
    },
    #[error("bar {bar} (time {time_ms} ms) has a price that is not a finite number > 0 (open {open}, high {high}, low {low}, close {close})")]
    BadPrice {
        bar: usize,
        time_ms: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
    },
    #[error("strategy `{strategy}` asked for an invalid order on bar {bar} (time {time_ms} ms): {source}")]
    InvalidOrder {
        strategy: String,
        bar: usize,
        time_ms: i64,
        #[source]
        source: OrderError,
    },
}

/// Backtests `strategy` over `bars` with `config`. The strategy must be fresh (strategies
/// keep indicator state). Deterministic; no I/O, so cheap to call from many threads.
pub fn run<S: Strategy + ?Sized>(
    bars: &Bars,
    strategy: &mut S,
    config: &BacktestConfig,
) -> Result<BacktestResult, BacktestError> {
    config.validate()?;
    let n = bars.len();
    if n == 0 {
        return Err(BacktestError::NoBars);
    }
    if [
        bars.open.len(),
        bars.high.len(),
        bars.low.len(),
        bars.close.len(),
    ]
    .iter()
    .any(|&l| l != n)
        || bars.volume.len() != n
    {
        return Err(BacktestError::RaggedBars {
            time: n,
            open: bars.open.len(),
            high: bars.high.len(),
            low: bars.low.len(),
            close: bars.close.len(),
        });
    }
    let unit = config.unit();
    let start = strategy.warmup_bars().saturating_sub(1).max(1);
    let times = &bars.time_ms[..n];
    let (open, high, low, close, volume) = (
        &bars.open[..n],
        &bars.high[..n],
        &bars.low[..n],
        &bars.close[..n],
        &bars.volume[..n],
    );

    let mut broker = Broker::new(config);
    let mut actions = Actions::new();
    let mut equity = vec![config.cash; n];
    let mut out_of_money_bar = None;

    for i in 0..n {
        let bar = Bar {
            time_ms: times[i],
            open: open[i],
            high: high[i],
            low: low[i],
            close: close[i],
            volume: volume[i],
        };
        // NaN fails every comparison, so one min/max pair checks all four prices.
        if !(bar.open.min(bar.high).min(bar.low).min(bar.close) > 0.0
            && bar.open.max(bar.high).max(bar.low).max(bar.close) < f64::INFINITY)
        {
            return Err(BacktestError::BadPrice {
                bar: i,
                time_ms: bar.time_ms,
                open: bar.open,
                high: bar.high,
                low: bar.low,
                close: bar.close,
            });
        }
        if i < start {
            // Warm-up: indicators see the bar, nothing trades (backtesting.py does not
            // call `next()` yet).
            strategy.on_bar(&bar, &PositionView::FLAT, &mut actions);
            actions.clear();
            continue;
        }
        let last_price = bar.close * unit;
        if broker.has_orders() {
            let px = Px {
                open: bar.open * unit,
                high: bar.high * unit,
                low: bar.low * unit,
                close: last_price,
                prev_close: close[i - 1] * unit,
            };
            broker.process(i, px, times);
            for f in broker.fills.drain(..) {
                strategy.on_fill(&f);
            }
        }
        let eq = broker.equity(last_price);
        equity[i] = eq;
        if eq <= 0.0 {
            broker.liquidate(i, last_price, times);
            equity[i..].fill(0.0);
            out_of_money_bar = Some(i);
            break;
        }
        let (size, entry_price) = broker.position();
        strategy.on_bar(&bar, &PositionView { size, entry_price }, &mut actions);
        if !actions.is_empty() {
            for action in actions.drain() {
                broker
                    .place(action, last_price)
                    .map_err(|source| BacktestError::InvalidOrder {
                        strategy: strategy.name().to_string(),
                        bar: i,
                        time_ms: bar.time_ms,
                        source,
                    })?;
            }
        }
    }

    let last = n - 1;
    if out_of_money_bar.is_none() && config.finalize_trades {
        broker.close_all_at_end();
        if start < n && broker.has_orders() {
            let px = Px {
                open: open[last] * unit,
                high: high[last] * unit,
                low: low[last] * unit,
                close: close[last] * unit,
                prev_close: close[last - 1] * unit,
            };
            broker.process(last, px, times);
            for f in broker.fills.drain(..) {
                strategy.on_fill(&f);
            }
            let eq = broker.equity(close[last] * unit);
            equity[last] = eq;
            if eq <= 0.0 {
                broker.liquidate(last, close[last] * unit, times);
                equity[last] = 0.0;
                out_of_money_bar = Some(last);
            }
        }
    }
    // Before the first trading bar the account is the starting cash; backtesting.py
    // back-fills those bars with the first marked equity, which is that cash.
    if start < n {
        let first = equity[start];
        equity[..start].fill(first);
    }

    let open_trades = broker.open_trades(last, close[last] * unit, times);
    let mut drawdown = Vec::with_capacity(n);
    let mut peak = f64::NEG_INFINITY;
    for &e in &equity {
        peak = peak.max(e);
        drawdown.push(1.0 - e / peak);
    }
    let first_trading_bar = start.min(n);
    let stats = stats::compute(stats::Input {
        trades: &broker.closed,
        equity: &equity,
        drawdown: &drawdown,
        time_ms: times,
        close,
        buy_hold_from: start - 1,
    });
    Ok(BacktestResult {
        trades: std::mem::take(&mut broker.closed),
        open_trades,
        equity,
        drawdown,
        first_trading_bar,
        cancelled_orders: broker.cancelled,
        out_of_money_bar,
        stats,
    })
}
