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
        // NaN fails every comparison; `&` (not `&&`) keeps this branch-free.
        let finite_positive = |x: f64| (x > 0.0) & (x < f64::INFINITY);
        if !(finite_positive(bar.open)
            & finite_positive(bar.high)
            & finite_positive(bar.low)
            & finite_positive(bar.close))
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
        strategy.on_bar(&bar, broker.position(), &mut actions);
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
    let first_trading_bar = start.min(n);
    let (stats, drawdown) = stats::compute(stats::Input {
        trades: &broker.closed,
        equity: &equity,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::config::Fill;
    use crate::backtest::result::ExitReason;
    use crate::strategies::api::{FillView, Side, Size};

    /// Bars from (open, high, low, close), one day apart.
    fn bars(ohlc: &[(f64, f64, f64, f64)]) -> Bars {
        let mut b = Bars::default();
        for (i, &(o, h, l, c)) in ohlc.iter().enumerate() {
            b.time_ms.push(1_700_000_000_000 + i as i64 * 86_400_000);
            b.open.push(o);
            b.high.push(h);
            b.low.push(l);
            b.close.push(c);
            b.volume.push(0.0);
        }
        b
    }

    /// Pushes scripted actions on given bars and records what it was told.
    struct Script {
        warmup: usize,
        bar: usize,
        plan: Vec<(usize, crate::strategies::api::Action)>,
        positions: Vec<f64>,
        fills: Vec<FillView>,
    }

    impl Script {
        fn new(warmup: usize, plan: Vec<(usize, crate::strategies::api::Action)>) -> Self {
            Self {
                warmup,
                bar: 0,
                plan,
                positions: Vec::new(),
                fills: Vec::new(),
            }
        }
    }

    impl Strategy for Script {
        fn name(&self) -> &str {
            "script"
        }
        fn warmup_bars(&self) -> usize {
            self.warmup
        }
        fn on_bar(&mut self, _bar: &Bar, position: &PositionView, actions: &mut Actions) {
            self.positions.push(position.size);
            for (b, a) in &self.plan {
                if *b == self.bar {
                    match a {
                        crate::strategies::api::Action::ClosePosition => actions.close(),
                        crate::strategies::api::Action::Order(o) => {
                            actions.order(o.side, o.size, o.stop_loss, o.take_profit)
                        }
                    }
                }
            }
            self.bar += 1;
        }
        fn on_fill(&mut self, fill: &FillView) {
            self.fills.push(*fill);
        }
    }

    fn buy(units: f64) -> crate::strategies::api::Action {
        crate::strategies::api::Action::Order(crate::strategies::api::OrderIntent {
            side: Side::Buy,
            size: Size::Units(units),
            stop_loss: None,
            take_profit: None,
        })
    }

    const FOUR: [(f64, f64, f64, f64); 4] = [
        (10.0, 10.0, 10.0, 10.0),
        (10.0, 11.0, 9.0, 10.0),
        (12.0, 12.0, 12.0, 12.0),
        (13.0, 13.0, 13.0, 14.0),
    ];

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn next_open_fill_commission_and_finalize_by_hand() {
        let cfg = BacktestConfig {
            commission: 0.01,
            finalize_trades: true,
            ..Default::default()
        };
        let mut s = Script::new(0, vec![(1, buy(2.0))]);
        let r = run(&bars(&FOUR), &mut s, &cfg).unwrap();
        // Filled at bar 2's open (12), fee 2 * 12 * 1 % = 0.24.
        assert!(near(r.equity[2], 10_000.0 - 0.24));
        // Closed after the last bar at its open (13), fee 0.26: pnl 2 - 0.5.
        let t = r.trades[0];
        assert_eq!((t.entry_bar, t.exit_bar, t.size), (2, 3, 2.0));
        assert_eq!((t.entry_price, t.exit_price), (12.0, 13.0));
        assert!(near(t.pnl, 1.5) && near(t.commission, 0.5), "{t:?}");
        assert_eq!(t.exit_reason, ExitReason::EndOfData);
        assert!(near(r.equity[3], 10_001.5));
        assert!(r.open_trades.is_empty());
        // The strategy saw the position after the fill, and was told of both fills.
        assert_eq!(s.positions, vec![0.0, 0.0, 2.0, 2.0]);
        assert_eq!(s.fills.len(), 2);
        assert_eq!((s.fills[0].side, s.fills[0].price), (Side::Buy, 12.0));
        assert_eq!((s.fills[1].side, s.fills[1].price), (Side::Sell, 13.0));
    }

    #[test]
    fn fill_on_close_records_the_order_bar() {
        let cfg = BacktestConfig {
            commission: 0.01,
            fill: Fill::Close,
            ..Default::default()
        };
        let mut s = Script::new(0, vec![(1, buy(2.0))]);
        let r = run(&bars(&FOUR), &mut s, &cfg).unwrap();
        // Filled at bar 1's close (10), recorded on bar 1, fee 0.2.
        assert!(r.trades.is_empty());
        let t = r.open_trades[0];
        assert_eq!((t.entry_bar, t.entry_price), (1, 10.0));
        assert!(near(r.equity[2], 10_000.0 - 0.2 + 4.0));
        assert!(near(r.equity[3], 10_000.0 - 0.2 + 8.0));
        assert_eq!(t.exit_reason, ExitReason::Open);
    }

    #[test]
    fn warm_up_bars_trade_nothing() {
        // warmup 3: first decision on bar 2; an action pushed on bar 0 or 1 is dropped.
        let mut s = Script::new(3, vec![(0, buy(1.0)), (1, buy(1.0)), (2, buy(3.0))]);
        let r = run(&bars(&FOUR), &mut s, &BacktestConfig::default()).unwrap();
        assert_eq!(r.first_trading_bar, 2);
        assert_eq!(r.open_trades.len(), 1);
        assert_eq!(
            (r.open_trades[0].entry_bar, r.open_trades[0].size),
            (3, 3.0)
        );
        // Buy & hold from bar 1 (close 10) to the end (14).
        assert!(near(r.stats.buy_hold_return_pct, 40.0));
    }

    #[test]
    fn invalid_orders_are_refused_with_the_bar_and_reason() {
        let wrong_side =
            crate::strategies::api::Action::Order(crate::strategies::api::OrderIntent {
                side: Side::Buy,
                size: Size::ALL,
                stop_loss: Some(12.5), // above bar 2's close (12) for a buy
                take_profit: None,
            });
        let mut s = Script::new(0, vec![(2, wrong_side)]);
        let e = run(&bars(&FOUR), &mut s, &BacktestConfig::default()).unwrap_err();
        assert!(
            matches!(
                e,
                BacktestError::InvalidOrder {
                    bar: 2,
                    source: OrderError::ExitsOnWrongSide { .. },
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("strategy `script`"), "{e}");

        let mut s = Script::new(0, vec![(1, buy(0.5))]);
        let e = run(&bars(&FOUR), &mut s, &BacktestConfig::default()).unwrap_err();
        assert!(matches!(
            e,
            BacktestError::InvalidOrder {
                source: OrderError::BelowLot { .. },
                ..
            }
        ));
        // Fractional lots take the same half unit.
        let cfg = BacktestConfig {
            fractional_unit: Some(0.1),
            ..Default::default()
        };
        let mut s = Script::new(0, vec![(1, buy(0.5))]);
        let r = run(&bars(&FOUR), &mut s, &cfg).unwrap();
        assert!(near(r.open_trades[0].size, 0.5));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut s = Script::new(0, vec![]);
        let cfg = BacktestConfig::default();
        assert_eq!(
            run(&Bars::default(), &mut s, &cfg).unwrap_err(),
            BacktestError::NoBars
        );
        let mut ragged = bars(&FOUR);
        ragged.close.pop();
        assert!(matches!(
            run(&ragged, &mut s, &cfg).unwrap_err(),
            BacktestError::RaggedBars { close: 3, .. }
        ));
        let mut zero = bars(&FOUR);
        zero.low[2] = 0.0;
        assert!(matches!(
            run(&zero, &mut s, &cfg).unwrap_err(),
            BacktestError::BadPrice { bar: 2, .. }
        ));
        let mut nan = bars(&FOUR);
        nan.open[1] = f64::NAN;
        assert!(matches!(
            run(&nan, &mut s, &cfg).unwrap_err(),
            BacktestError::BadPrice { bar: 1, .. }
        ));
        let bad = BacktestConfig {
            margin: 2.0,
            ..Default::default()
        };
        let e = run(&bars(&FOUR), &mut s, &bad).unwrap_err();
        assert!(e.to_string().contains("`margin` = 2"), "{e}");
    }

    #[test]
    fn an_order_too_big_for_the_margin_is_cancelled_and_counted() {
        let mut s = Script::new(0, vec![(1, buy(2_000.0))]);
        let r = run(&bars(&FOUR), &mut s, &BacktestConfig::default()).unwrap();
        assert_eq!(r.cancelled_orders, 1);
        assert!(r.open_trades.is_empty() && r.trades.is_empty());
        assert!(r.equity.iter().all(|&e| e == 10_000.0));
    }
}
