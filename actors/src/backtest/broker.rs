//! The simulated broker: orders, open trades, cash, fills.
//!
//! Owns: turning a strategy's actions into orders, executing them against a bar by the
//! execution model stated in the engine's module doc, and the account arithmetic (cash,
//! equity, margin, commissions, trade P&L). It follows backtesting.py 0.6's `_Broker` with
//! `hedging=False, exclusive_orders=False` operation for operation, in the same order of
//! floating-point operations, so results agree to the last few bits rather than roughly.
//! Never: deciding anything (the strategy does), statistics, or I/O.
//!
//! Quantities inside are in lots (`BacktestConfig::fractional_unit`, 1 for whole units) and
//! prices are per lot, as `FractionalBacktest` rescales its data; trades are reported in
//! base units and prices per unit.

use crate::strategies::api::{Action, FillView, OrderIntent, PositionView, Side, Size};

use super::config::{BacktestConfig, Fill};
use super::result::{ExitReason, Trade};

/// backtesting.py's default `size` of `buy()`/`sell()`: `1 - sys.float_info.epsilon`, so
/// a bare buy is sized by the "fraction of equity" rule rather than as 1 unit.
const FULL_EQUITY: f64 = 1.0 - f64::EPSILON;

/// Why an action cannot become an order (backtesting.py raises on each of these).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error(
        "order size {0:?} is not a fraction of equity in (0, 1] or a finite positive quantity"
    )]
    BadSize(Size),
    #[error("order for {units} units is less than one lot of {lot} units")]
    BelowLot { units: f64, lot: f64 },
    #[error("{which} {price} is not a finite price > 0")]
    BadPrice { which: &'static str, price: f64 },
    #[error("a {side:?} order needs stop-loss < price < take-profit for a buy (take-profit < price < stop-loss for a sell); got stop-loss {stop_loss:?}, price {price}, take-profit {take_profit:?}")]
    ExitsOnWrongSide {
        side: Side,
        stop_loss: Option<f64>,
        price: f64,
        take_profit: Option<f64>,
    },
}

/// One bar's prices as the broker sees them (per lot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Px {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    /// The close of the current bar: backtesting.py's `last_price`, which also values the
    /// account when sizing orders filled at this bar's open.
    pub close: f64,
    /// The close of the previous bar (fills with `Fill::Close`).
    pub prev_close: f64,
}

#[derive(Debug, Clone, Copy)]
struct OpenTrade {
    id: u64,
    /// Signed lots (integral).
    size: f64,
    entry_price: f64,
    entry_bar: usize,
    sl: Option<f64>,
    tp: Option<f64>,
    sl_order: Option<u64>,
    tp_order: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Signed: a fraction of equity when |size| < 1, else lots.
    Market {
        size: f64,
        sl: Option<f64>,
        tp: Option<f64>,
    },
    /// Close (part of) a trade at market: `Trade.close()`.
    Close {
        trade: u64,
        size: f64,
        reason: ExitReason,
    },
    /// A trade's stop-loss: a stop-market order.
    Stop { trade: u64, price: f64 },
    /// A trade's take-profit: a limit order.
    Limit { trade: u64, price: f64 },
}

#[derive(Debug, Clone, Copy)]
struct Order {
    id: u64,
    kind: Kind,
}

pub(crate) struct Broker {
    cash: f64,
    commission: f64,
    commission_fixed: f64,
    spread: f64,
    leverage: f64,
    on_close: bool,
    unit: f64,
    trades: Vec<OpenTrade>,
    /// The order queue, in backtesting.py's order (stop-losses and closes go first).
    orders: Vec<Order>,
    /// Reused snapshot of the queue while it is processed, and of trade ids while netting.
    scratch: Vec<Order>,
    scratch_ids: Vec<u64>,
    pub(crate) closed: Vec<Trade>,
    pub(crate) fills: Vec<FillView>,
    pub(crate) cancelled: usize,
    next_id: u64,
    /// Position size in lots and the sum of size * entry price over open trades, summed in
    /// trade order like backtesting.py; recomputed only when the trades change.
    pos_size: f64,
    sum_size_entry: f64,
    /// The position as the strategy sees it, kept with the two sums above.
    view: PositionView,
}

impl Broker {
    pub(crate) fn new(config: &BacktestConfig) -> Self {
        Self {
            cash: config.cash,
            commission: config.commission,
            commission_fixed: config.commission_fixed,
            spread: config.spread,
            leverage: 1.0 / config.margin,
            on_close: config.fill == Fill::Close,
            unit: config.unit(),
            trades: Vec::new(),
            orders: Vec::new(),
            scratch: Vec::new(),
            scratch_ids: Vec::new(),
            closed: Vec::new(),
            fills: Vec::new(),
            cancelled: 0,
            next_id: 0,
            pos_size: 0.0,
            sum_size_entry: 0.0,
            view: PositionView::FLAT,
        }
    }

    pub(crate) fn has_orders(&self) -> bool {
        !self.orders.is_empty()
    }

    /// Cash plus the open trades valued at `last_price` (per lot).
    #[inline]
    pub(crate) fn equity(&self, last_price: f64) -> f64 {
        self.cash + (last_price * self.pos_size - self.sum_size_entry)
    }

    /// The strategy's view: signed base units and the size-weighted entry price per unit.
    #[inline]
    pub(crate) fn position(&self) -> &PositionView {
        &self.view
    }

    fn margin_available(&self, last_price: f64) -> f64 {
        let used = self.trades.iter().fold(0.0, |acc, t| {
            acc + t.size.abs() * last_price / self.leverage
        });
        (self.equity(last_price) - used).max(0.0)
    }

    fn fee(&self, size: f64, price: f64) -> f64 {
        self.commission_fixed + size.abs() * price * self.commission
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn trades_changed(&mut self) {
        // Summed in trade order from zero, as backtesting.py's `sum(...)` does, so equity is
        // bit-identical; an incremental update would drift in the last bits.
        let (mut size, mut se) = (0.0, 0.0);
        for t in &self.trades {
            size += t.size.trunc();
            se += t.size * t.entry_price;
        }
        self.pos_size = size;
        self.sum_size_entry = se;
        self.view = if size == 0.0 {
            PositionView::FLAT
        } else {
            PositionView {
                size: size * self.unit,
                entry_price: Some(se / size / self.unit),
            }
        };
    }

    fn trade_index(&self, id: u64) -> Option<usize> {
        self.trades.iter().position(|t| t.id == id)
    }

    /// Queues a strategy action taken at a bar whose close is `last_price` (per lot).
    pub(crate) fn place(&mut self, action: Action, last_price: f64) -> Result<(), OrderError> {
        match action {
            Action::ClosePosition => {
                // `Position.close()`: one close order per trade, each put at the queue's
                // front (so they run in reverse trade order, as backtesting.py's do).
                for k in 0..self.trades.len() {
                    let t = self.trades[k];
                    let id = self.new_id();
                    self.orders.insert(
                        0,
                        Order {
                            id,
                            kind: Kind::Close {
                                trade: t.id,
                                size: -t.size,
                                reason: ExitReason::Signal,
                            },
                        },
                    );
                }
                Ok(())
            }
            Action::Order(intent) => self.place_market(intent, last_price),
        }
    }

    fn place_market(&mut self, o: OrderIntent, last_price: f64) -> Result<(), OrderError> {
        if !o.size.is_valid() {
            return Err(OrderError::BadSize(o.size));
        }
        let magnitude = match o.size {
            Size::Equity(f) => f.min(FULL_EQUITY),
            Size::Units(u) => {
                let lots = u / self.unit;
                // A quantity meant as whole lots may land a hair off an integer after the
                // division (0.3 / 1e-8); within 1e-9 of one it is that integer, else round down.
                let nearest = lots.round();
                let lots = if (lots - nearest).abs() <= 1e-9 * nearest.max(1.0) {
                    nearest
                } else {
                    lots.floor()
                };
                if lots < 1.0 {
                    return Err(OrderError::BelowLot {
                        units: u,
                        lot: self.unit,
                    });
                }
                lots
            }
        };
        let size = magnitude * o.side.sign();
        for (which, p) in [("stop-loss", o.stop_loss), ("take-profit", o.take_profit)] {
            if let Some(p) = p {
                if !(p.is_finite() && p > 0.0) {
                    return Err(OrderError::BadPrice { which, price: p });
                }
            }
        }
        let sl = o.stop_loss.map(|p| p * self.unit);
        let tp = o.take_profit.map(|p| p * self.unit);
        let price = last_price * (1.0 + self.spread.copysign(size));
        let ok = if size > 0.0 {
            sl.unwrap_or(f64::NEG_INFINITY) < price && price < tp.unwrap_or(f64::INFINITY)
        } else {
            tp.unwrap_or(f64::NEG_INFINITY) < price && price < sl.unwrap_or(f64::INFINITY)
        };
        if !ok {
            return Err(OrderError::ExitsOnWrongSide {
                side: o.side,
                stop_loss: o.stop_loss,
                price: price / self.unit,
                take_profit: o.take_profit,
            });
        }
        let id = self.new_id();
        self.orders.push(Order {
            id,
            kind: Kind::Market { size, sl, tp },
        });
        Ok(())
    }

    /// `finalize_trades`: a close order for every open trade, ahead of anything queued.
    pub(crate) fn close_all_at_end(&mut self) {
        for k in (0..self.trades.len()).rev() {
            let t = self.trades[k];
            let id = self.new_id();
            self.orders.insert(
                0,
                Order {
                    id,
                    kind: Kind::Close {
                        trade: t.id,
                        size: -t.size,
                        reason: ExitReason::EndOfData,
                    },
                },
            );
        }
    }

    /// Executes the queue against bar `i`.
    pub(crate) fn process(&mut self, i: usize, px: Px, times: &[i64]) {
        // A market order that opened a trade with a stop-loss or take-profit has put them in
        // the queue; one more pass lets them trigger within the same bar.
        while self.process_once(i, px, times) {}
    }

    fn order_queued(&self, id: u64) -> bool {
        self.orders.iter().any(|o| o.id == id)
    }

    fn remove_order(&mut self, id: u64) {
        if let Some(k) = self.orders.iter().position(|o| o.id == id) {
            self.orders.remove(k);
        }
    }

    fn process_once(&mut self, i: usize, px: Px, times: &[i64]) -> bool {
        let mut reprocess = false;
        let mut snapshot = std::mem::take(&mut self.scratch);
        snapshot.clear();
        snapshot.extend_from_slice(&self.orders);
        // Market fills: the previous close under `Fill::Close` (recorded on that bar), else
        // this open. Contingent (stop-loss / take-profit) fills never use the previous close.
        let (market_px, market_bar) = if self.on_close {
            (px.prev_close, i - 1)
        } else {
            (px.open, i)
        };
        for order in snapshot.iter().copied() {
            if !self.order_queued(order.id) {
                continue;
            }
            match order.kind {
                Kind::Stop { trade, price: stop } => {
                    let Some(k) = self.trade_index(trade) else {
                        self.remove_order(order.id);
                        continue;
                    };
                    let closes_short = self.trades[k].size < 0.0;
                    let hit = if closes_short {
                        px.high >= stop
                    } else {
                        px.low <= stop
                    };
                    if !hit {
                        continue;
                    }
                    // Gapped through: filled at the open, the worse price.
                    let fill = if closes_short {
                        px.open.max(stop)
                    } else {
                        px.open.min(stop)
                    };
                    let size = -self.trades[k].size;
                    self.reduce_trade(k, fill, size, i, ExitReason::StopLoss, times);
                }
                Kind::Limit {
                    trade,
                    price: limit,
                } => {
                    let Some(k) = self.trade_index(trade) else {
                        self.remove_order(order.id);
                        continue;
                    };
                    let closes_short = self.trades[k].size < 0.0;
                    let hit = if closes_short {
                        px.low <= limit
                    } else {
                        px.high >= limit
                    };
                    if !hit {
                        continue;
                    }
                    // Gapped through: filled at the open, the better price.
                    let fill = if closes_short {
                        px.open.min(limit)
                    } else {
                        px.open.max(limit)
                    };
                    let size = -self.trades[k].size;
                    self.reduce_trade(k, fill, size, i, ExitReason::TakeProfit, times);
                }
                Kind::Close {
                    trade,
                    size,
                    reason,
                } => {
                    if let Some(k) = self.trade_index(trade) {
                        let t = self.trades[k].size;
                        let size = t.abs().min(size.abs()).copysign(size);
                        self.reduce_trade(k, market_px, size, market_bar, reason, times);
                    }
                    self.remove_order(order.id);
                }
                Kind::Market { size, sl, tp } => {
                    let adjusted = market_px * (1.0 + self.spread.copysign(size));
                    let per_lot = adjusted + self.fee(size, market_px) / size.abs();
                    let mut need = size;
                    if -1.0 < size && size < 1.0 {
                        let budget = self.margin_available(px.close) * self.leverage * size.abs();
                        need = py_floordiv(budget, per_lot).trunc().copysign(size);
                        if need == 0.0 {
                            self.cancelled += 1;
                            self.remove_order(order.id);
                            continue;
                        }
                    }
                    // Netting: close opposite trades first-in first-out at the unadjusted
                    // price (the spread was paid when they were opened).
                    let mut ids = std::mem::take(&mut self.scratch_ids);
                    ids.clear();
                    ids.extend(self.trades.iter().map(|t| t.id));
                    for &id in &ids {
                        let Some(k) = self.trade_index(id) else {
                            continue;
                        };
                        let t = self.trades[k].size;
                        if (t > 0.0) == (size > 0.0) {
                            continue;
                        }
                        if need.abs() >= t.abs() {
                            self.close_trade(k, market_px, market_bar, ExitReason::Signal, times);
                            need += t;
                        } else {
                            self.reduce_trade(
                                k,
                                market_px,
                                need,
                                market_bar,
                                ExitReason::Signal,
                                times,
                            );
                            need = 0.0;
                        }
                        if need == 0.0 {
                            break;
                        }
                    }
                    self.scratch_ids = ids;
                    if need.abs() * per_lot > self.margin_available(px.close) * self.leverage {
                        self.cancelled += 1;
                        self.remove_order(order.id);
                        continue;
                    }
                    if need != 0.0 {
                        self.open_trade(adjusted, need, sl, tp, market_bar, times);
                        if sl.is_some() || tp.is_some() {
                            reprocess = true;
                        }
                    }
                    self.remove_order(order.id);
                }
            }
        }
        self.scratch = snapshot;
        reprocess
    }

    fn open_trade(
        &mut self,
        price: f64,
        size: f64,
        sl: Option<f64>,
        tp: Option<f64>,
        bar: usize,
        times: &[i64],
    ) {
        let id = self.new_id();
        let tp_order = tp.map(|_| self.new_id());
        let sl_order = sl.map(|_| self.new_id());
        self.trades.push(OpenTrade {
            id,
            size,
            entry_price: price,
            entry_bar: bar,
            sl,
            tp,
            sl_order,
            tp_order,
        });
        self.trades_changed();
        self.cash -= self.fee(size, price);
        if let (Some(oid), Some(price)) = (tp_order, tp) {
            self.orders.push(Order {
                id: oid,
                kind: Kind::Limit { trade: id, price },
            });
        }
        // Stop-losses go to the front of the queue: when a bar touches both exits, the
        // stop-loss is processed first and wins.
        if let (Some(oid), Some(price)) = (sl_order, sl) {
            self.orders.insert(
                0,
                Order {
                    id: oid,
                    kind: Kind::Stop { trade: id, price },
                },
            );
        }
        self.fills.push(FillView {
            time_ms: times[bar],
            side: if size > 0.0 { Side::Buy } else { Side::Sell },
            units: size.abs() * self.unit,
            price: price / self.unit,
        });
    }

    /// Closes `size` (signed against the trade) of trade `k`: all of it, or a part split off
    /// as its own closed trade while the rest stays open with its exits.
    fn reduce_trade(
        &mut self,
        k: usize,
        price: f64,
        size: f64,
        bar: usize,
        reason: ExitReason,
        times: &[i64],
    ) {
        let left = self.trades[k].size + size;
        if left == 0.0 {
            self.close_trade(k, price, bar, reason, times);
        } else {
            self.trades[k].size = left;
            let part = OpenTrade {
                id: self.new_id(),
                size: -size,
                sl: None,
                tp: None,
                sl_order: None,
                tp_order: None,
                ..self.trades[k]
            };
            self.trades.push(part);
            let last = self.trades.len() - 1;
            self.close_trade(last, price, bar, reason, times);
        }
    }

    fn close_trade(&mut self, k: usize, price: f64, bar: usize, reason: ExitReason, times: &[i64]) {
        let t = self.trades.remove(k);
        self.trades_changed();
        for id in [t.sl_order, t.tp_order].into_iter().flatten() {
            self.remove_order(id);
        }
        let exit_fee = self.fee(t.size, price);
        self.cash += t.size * (price - t.entry_price) - exit_fee;
        let commission = exit_fee + self.fee(t.size, t.entry_price);
        self.closed
            .push(self.report(&t, price, bar, commission, reason, times));
        self.fills.push(FillView {
            time_ms: times[bar],
            side: if t.size > 0.0 { Side::Sell } else { Side::Buy },
            units: t.size.abs() * self.unit,
            price: price / self.unit,
        });
    }

    fn report(
        &self,
        t: &OpenTrade,
        exit_price: f64,
        exit_bar: usize,
        commission: f64,
        exit_reason: ExitReason,
        times: &[i64],
    ) -> Trade {
        let pnl = t.size * (exit_price - t.entry_price) - commission;
        let ret = 1f64.copysign(t.size) * (exit_price / t.entry_price - 1.0)
            - commission / (t.size.abs() * t.entry_price);
        Trade {
            size: t.size * self.unit,
            entry_bar: t.entry_bar,
            exit_bar,
            entry_time_ms: times[t.entry_bar],
            exit_time_ms: times[exit_bar],
            entry_price: t.entry_price / self.unit,
            exit_price: exit_price / self.unit,
            stop_loss: t.sl.map(|p| p / self.unit),
            take_profit: t.tp.map(|p| p / self.unit),
            pnl,
            return_pct: ret * 100.0,
            commission,
            exit_reason,
        }
    }

    /// Equity fell to zero at bar `i`: close trades at its close and zero the cash.
    pub(crate) fn liquidate(&mut self, i: usize, last_price: f64, times: &[i64]) {
        // backtesting.py closes them while iterating the same list, which skips every
        // second trade; those stay open (and out of the statistics). Kept for parity.
        let mut k = 0;
        while k < self.trades.len() {
            self.close_trade(k, last_price, i, ExitReason::OutOfMoney, times);
            k += 1;
        }
        self.cash = 0.0;
    }

    /// Trades still open, valued at `last_price` (per lot) on bar `last`.
    pub(crate) fn open_trades(&self, last: usize, last_price: f64, times: &[i64]) -> Vec<Trade> {
        self.trades
            .iter()
            .map(|t| self.report(t, last_price, last, 0.0, ExitReason::Open, times))
            .collect()
    }
}

/// Python's float `//` (`float_floor_div`): floor of the quotient computed from `fmod` so
/// that it is exact where `(a / b).floor()` can round up across an integer.
pub(crate) fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0f64.copysign(a / b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floordiv_is_pythons() {
        // Values checked with Python 3.11: 7.0 // 2.0, -7.0 // 2.0, 0.3 // 0.1 (== 2.0,
        // where (0.3 / 0.1).floor() is also 2.0 but 1.0 // 0.1 == 9.0 while
        // (1.0 / 0.1).floor() == 10.0).
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.0, 2.0), -4.0);
        assert_eq!(py_floordiv(0.3, 0.1), 2.0);
        assert_eq!(py_floordiv(1.0, 0.1), 9.0);
        assert_eq!((1.0f64 / 0.1).floor(), 10.0);
    }
}
