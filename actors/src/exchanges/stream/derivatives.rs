//! What a derivatives venue's streams say beyond quotes: mark prices with funding, the
//! liquidations of everyone on the venue, and the account's own balances and positions as
//! the user stream pushes them.
//!
//! Owns: [`MarkPrice`] (kept per symbol in the [`VenueFeed`](super::VenueFeed), served by
//! `fresh_mark` under the feed's freshness rule), the [`LiquidationTape`] (a bounded ring of
//! the newest liquidations per venue, the per-symbol/side aggregates over recent windows the
//! liquidation agent reads, and the metrics `orrery_liquidations_total{venue,side}` and
//! `orrery_liquidation_notional_usd_total{venue,side}`), and the [`PushedAccount`] (balances
//! and positions merged from the venue's partial account updates, shown by `orrery status`).
//!
//! Never: I/O, and never the truth about money — balances and positions pushed here are
//! shown to the operator; risk and the ledger read the venue over REST. Liquidation times
//! are the venue's (ms since the epoch), so windows are measured against the injectable
//! clock's `now_ms`, never against the wall clock inside this module.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::types::Side;
use crate::telemetry::names;

/// A perpetual's mark price and funding, as the venue streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkPrice {
    pub symbol: String,
    pub mark: Decimal,
    pub index: Decimal,
    /// The current funding rate per interval (a fraction: 0.0001 = 0.01 %); `None` for a
    /// delivery contract (Binance sends `""`).
    pub funding_rate: Option<Decimal>,
    /// When the next funding is charged (ms); `None` for a delivery contract (Binance `0`).
    pub next_funding_ms: Option<Millis>,
    /// The venue's event time (ms).
    pub time_ms: Millis,
}

/// One forced liquidation on the venue (anyone's, not ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liquidation {
    /// The engine's symbol when the contract is one the venue config maps (`BTC` for
    /// `BTCUSDT`), else the venue's contract name.
    pub symbol: String,
    /// The side of the liquidation *order*: `sell` closes a long that was liquidated,
    /// `buy` closes a short.
    pub side: Side,
    /// The order's price (the bankruptcy price the venue sends it at).
    pub price: Decimal,
    /// Filled quantity so far (base units).
    pub qty: Decimal,
    /// Average fill price.
    pub avg_price: Decimal,
    /// The venue's order status (`FILLED`, `PARTIALLY_FILLED`, ...).
    pub status: String,
    /// The venue's trade time (ms).
    pub time_ms: Millis,
}

impl Liquidation {
    /// Quantity × average price (the order price when no average is given), in the
    /// contract's quote asset, counted 1:1 as USD (USDⓈ-M contracts settle in USDT/USDC).
    pub fn notional_usd(&self) -> Decimal {
        let px = if self.avg_price > Decimal::ZERO {
            self.avg_price
        } else {
            self.price
        };
        self.qty * px
    }
}

/// Liquidations of one symbol and side within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationAggregate {
    pub symbol: String,
    pub side: Side,
    pub count: u64,
    pub qty: Decimal,
    pub notional_usd: Decimal,
    /// The largest single liquidation's notional.
    pub largest_usd: Decimal,
    pub first_ms: Millis,
    pub last_ms: Millis,
}

/// Counts since the feed started, for `orrery status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationCounts {
    /// Liquidation orders of longs (`sell`) and shorts (`buy`) seen since start.
    pub sells: u64,
    pub buys: u64,
    /// Kept in the ring now (the newest [`LiquidationTape::CAPACITY`]).
    pub kept: usize,
    /// The venue time of the newest one.
    pub newest_ms: Option<Millis>,
}

/// The newest liquidations of one venue and what they add up to.
#[derive(Debug)]
pub struct LiquidationTape {
    venue: String,
    ring: Mutex<VecDeque<Liquidation>>,
    sells: AtomicU64,
    buys: AtomicU64,
    /// Notional fractions of a dollar not yet counted in the integer metric, per side
    /// (`[buy, sell]`), so the counter's sum stays exact to the dollar.
    carry: Mutex<[Decimal; 2]>,
}

impl LiquidationTape {
    /// How many liquidations are kept: Binance pushes at most one per symbol per second on
    /// `!forceOrder@arr`; a cascade over ~300 contracts fills this in tens of seconds, a
    /// calm day in hours. Aggregates over a window longer than the ring holds say so
    /// through their `first_ms`.
    pub const CAPACITY: usize = 10_000;

    pub fn new(venue: &str) -> Self {
        Self {
            venue: venue.to_string(),
            ring: Mutex::new(VecDeque::with_capacity(256)),
            sells: AtomicU64::new(0),
            buys: AtomicU64::new(0),
            carry: Mutex::new([Decimal::ZERO; 2]),
        }
    }

    /// Records one liquidation (the oldest is dropped when full) and counts it.
    pub fn push(&self, l: Liquidation) {
        let side = l.side.as_str();
        let notional = l.notional_usd();
        let idx = match l.side {
            Side::Buy => {
                self.buys.fetch_add(1, Ordering::Relaxed);
                0
            }
            Side::Sell => {
                self.sells.fetch_add(1, Ordering::Relaxed);
                1
            }
        };
        let whole = {
            let mut carry = self.carry.lock();
            let total = carry[idx] + notional;
            let whole = total.trunc();
            carry[idx] = total - whole;
            whole.to_u64().unwrap_or(0)
        };
        metrics::counter!(names::LIQUIDATIONS, "venue" => self.venue.clone(), "side" => side)
            .increment(1);
        metrics::counter!(names::LIQUIDATION_NOTIONAL_USD, "venue" => self.venue.clone(), "side" => side)
            .increment(whole);
        let mut ring = self.ring.lock();
        if ring.len() == Self::CAPACITY {
            ring.pop_front();
        }
        ring.push_back(l);
    }

    /// Kept liquidations at or after `since_ms`, optionally of one symbol, oldest first.
    pub fn since(&self, symbol: Option<&str>, since_ms: Millis) -> Vec<Liquidation> {
        self.ring
            .lock()
            .iter()
            .filter(|l| l.time_ms >= since_ms && symbol.is_none_or(|s| l.symbol == s))
            .cloned()
            .collect()
    }

    /// Per symbol and side, what the kept liquidations at or after `since_ms` add up to;
    /// ordered by symbol, then `buy` before `sell`.
    pub fn aggregate(&self, symbol: Option<&str>, since_ms: Millis) -> Vec<LiquidationAggregate> {
        aggregate(&self.since(symbol, since_ms))
    }

    pub fn counts(&self) -> LiquidationCounts {
        let ring = self.ring.lock();
        LiquidationCounts {
            sells: self.sells.load(Ordering::Relaxed),
            buys: self.buys.load(Ordering::Relaxed),
            kept: ring.len(),
            newest_ms: ring.back().map(|l| l.time_ms),
        }
    }
}

/// Sums `items` per symbol and side.
pub fn aggregate(items: &[Liquidation]) -> Vec<LiquidationAggregate> {
    let mut by: BTreeMap<(String, &'static str), LiquidationAggregate> = BTreeMap::new();
    for l in items {
        let notional = l.notional_usd();
        let a = by
            .entry((l.symbol.clone(), l.side.as_str()))
            .or_insert_with(|| LiquidationAggregate {
                symbol: l.symbol.clone(),
                side: l.side,
                count: 0,
                qty: Decimal::ZERO,
                notional_usd: Decimal::ZERO,
                largest_usd: Decimal::ZERO,
                first_ms: l.time_ms,
                last_ms: l.time_ms,
            });
        a.count += 1;
        a.qty += l.qty;
        a.notional_usd += notional;
        a.largest_usd = a.largest_usd.max(notional);
        a.first_ms = a.first_ms.min(l.time_ms);
        a.last_ms = a.last_ms.max(l.time_ms);
    }
    by.into_values()
        .map(|mut a| {
            a.qty = a.qty.normalize();
            a.notional_usd = a.notional_usd.normalize();
            a.largest_usd = a.largest_usd.normalize();
            a
        })
        .collect()
}

/// One balance as the user stream last pushed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedBalance {
    pub asset: String,
    pub wallet_balance: Decimal,
    pub cross_wallet_balance: Decimal,
    /// The change that this push reports (except PnL and commission).
    pub balance_change: Decimal,
}

/// One position as the user stream last pushed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedPosition {
    pub symbol: String,
    /// `BOTH` in one-way mode, `LONG`/`SHORT` in hedge mode.
    pub position_side: String,
    /// Signed size (negative: short).
    pub amount: Decimal,
    pub entry_price: Decimal,
    pub unrealized_pnl: Decimal,
    /// `isolated` or `cross`.
    pub margin_type: String,
}

/// The account as the user stream has pushed it: each push carries only what changed, so
/// balances and positions are merged by asset and by (symbol, position side).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedAccount {
    pub balances: Vec<PushedBalance>,
    /// Open positions only (a push with amount 0 closes it).
    pub positions: Vec<PushedPosition>,
    /// Why the last push happened (`ORDER`, `FUNDING_FEE`, `DEPOSIT`, ...).
    pub reason: String,
    /// The venue's time of the last push (ms).
    pub time_ms: Millis,
}

impl PushedAccount {
    /// Merges one push.
    pub fn apply(
        &mut self,
        reason: &str,
        time_ms: Millis,
        balances: Vec<PushedBalance>,
        positions: Vec<PushedPosition>,
    ) {
        for b in balances {
            match self.balances.iter_mut().find(|x| x.asset == b.asset) {
                Some(x) => *x = b,
                None => self.balances.push(b),
            }
        }
        for p in positions {
            self.positions
                .retain(|x| !(x.symbol == p.symbol && x.position_side == p.position_side));
            if !p.amount.is_zero() {
                self.positions.push(p);
            }
        }
        self.balances.sort_by(|a, b| a.asset.cmp(&b.asset));
        self.positions.sort_by(|a, b| {
            (a.symbol.as_str(), a.position_side.as_str())
                .cmp(&(b.symbol.as_str(), b.position_side.as_str()))
        });
        self.reason = reason.to_string();
        self.time_ms = time_ms;
    }
}

/// A mark price's state for `orrery status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkHealth {
    pub symbol: String,
    pub mark: Decimal,
    pub funding_rate: Option<Decimal>,
    pub next_funding_ms: Option<Millis>,
    /// Milliseconds since it was received.
    pub age_ms: u64,
    /// Served by `fresh_mark` right now.
    pub fresh: bool,
}

/// The derivatives part of a feed's health: marks, liquidation counts, the pushed account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivativesHealth {
    pub marks: Vec<MarkHealth>,
    pub liquidations: LiquidationCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<PushedAccount>,
}

/// A venue's liquidation tape and pushed account (marks live beside quotes in the feed).
#[derive(Debug)]
pub struct DerivativesFeed {
    pub liquidations: LiquidationTape,
    account: Mutex<Option<PushedAccount>>,
}

impl DerivativesFeed {
    pub fn new(venue: &str) -> Self {
        Self {
            liquidations: LiquidationTape::new(venue),
            account: Mutex::new(None),
        }
    }

    /// Merges one account push.
    pub fn apply_account(
        &self,
        reason: &str,
        time_ms: Millis,
        balances: Vec<PushedBalance>,
        positions: Vec<PushedPosition>,
    ) {
        self.account
            .lock()
            .get_or_insert_with(PushedAccount::default)
            .apply(reason, time_ms, balances, positions);
    }

    pub fn account(&self) -> Option<PushedAccount> {
        self.account.lock().clone()
    }
}

/// Describes the derivatives metrics (HELP lines).
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(
        names::LIQUIDATIONS,
        "Forced liquidations on the venue (everyone's) seen on its stream, by the liquidation order's side (sell: a long was liquidated)."
    );
    describe_counter!(
        names::LIQUIDATION_NOTIONAL_USD,
        "Notional of the venue's forced liquidations (filled quantity times average price, whole USD; fractions carry to the next), by order side."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn liq(symbol: &str, side: Side, qty: Decimal, ap: Decimal, t: Millis) -> Liquidation {
        Liquidation {
            symbol: symbol.into(),
            side,
            price: ap - dec!(1),
            qty,
            avg_price: ap,
            status: "FILLED".into(),
            time_ms: t,
        }
    }

    #[test]
    fn aggregates_per_symbol_and_side_over_a_window() {
        let tape = LiquidationTape::new("bnf");
        tape.push(liq("BTC", Side::Sell, dec!(0.014), dec!(9910), 1_000));
        tape.push(liq("BTC", Side::Sell, dec!(0.5), dec!(10000), 61_000));
        tape.push(liq("BTC", Side::Buy, dec!(0.1), dec!(10100), 62_000));
        tape.push(liq("ETH", Side::Sell, dec!(2), dec!(300.5), 63_000));
        tape.push(liq("BTC", Side::Sell, dec!(0.25), dec!(9990), 119_000));

        // Everything: BTC buy, BTC sell, ETH sell.
        let all = tape.aggregate(None, 0);
        assert_eq!(all.len(), 3);
        assert_eq!(
            (all[0].symbol.as_str(), all[0].side, all[0].count),
            ("BTC", Side::Buy, 1)
        );
        assert_eq!(all[0].notional_usd, dec!(1010));
        let btc_sell = &all[1];
        assert_eq!((btc_sell.side, btc_sell.count), (Side::Sell, 3));
        // 0.014*9910 + 0.5*10000 + 0.25*9990 = 138.74 + 5000 + 2497.5
        assert_eq!(btc_sell.notional_usd, dec!(7636.24));
        assert_eq!(btc_sell.qty, dec!(0.764));
        assert_eq!(btc_sell.largest_usd, dec!(5000));
        assert_eq!((btc_sell.first_ms, btc_sell.last_ms), (1_000, 119_000));
        assert_eq!(all[2].notional_usd, dec!(601));

        // The last minute before 120 s, BTC only: the first BTC sell is out.
        let recent = tape.aggregate(Some("BTC"), 60_000);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[1].count, 2);
        assert_eq!(recent[1].notional_usd, dec!(7497.5));

        let c = tape.counts();
        assert_eq!(
            (c.sells, c.buys, c.kept, c.newest_ms),
            (4, 1, 5, Some(119_000))
        );
        assert!(tape.aggregate(Some("SOL"), 0).is_empty());
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_all() {
        let tape = LiquidationTape::new("bnf");
        for i in 0..(LiquidationTape::CAPACITY as i64 + 5) {
            tape.push(liq("BTC", Side::Buy, dec!(1), dec!(2), i));
        }
        let c = tape.counts();
        assert_eq!(c.kept, LiquidationTape::CAPACITY);
        assert_eq!(c.buys, LiquidationTape::CAPACITY as u64 + 5);
        assert_eq!(tape.since(None, 0)[0].time_ms, 5, "the five oldest dropped");
    }

    #[test]
    fn notional_falls_back_to_the_order_price_without_an_average() {
        let mut l = liq("BTC", Side::Sell, dec!(2), dec!(0), 1);
        l.price = dec!(100);
        assert_eq!(l.notional_usd(), dec!(200));
    }

    #[test]
    fn account_pushes_merge_and_a_zero_position_closes() {
        let mut a = PushedAccount::default();
        let bal = |asset: &str, wb| PushedBalance {
            asset: asset.into(),
            wallet_balance: wb,
            cross_wallet_balance: wb,
            balance_change: dec!(0),
        };
        let pos = |side: &str, amt| PushedPosition {
            symbol: "BTC".into(),
            position_side: side.into(),
            amount: amt,
            entry_price: dec!(100),
            unrealized_pnl: dec!(0),
            margin_type: "cross".into(),
        };
        a.apply(
            "ORDER",
            1,
            vec![bal("USDT", dec!(10)), bal("BNB", dec!(1))],
            vec![pos("LONG", dec!(2)), pos("SHORT", dec!(-1))],
        );
        a.apply(
            "FUNDING_FEE",
            2,
            vec![bal("USDT", dec!(9.5))],
            vec![pos("SHORT", dec!(0))],
        );
        assert_eq!(a.balances.len(), 2);
        assert_eq!(a.balances[1].wallet_balance, dec!(9.5));
        assert_eq!(a.positions.len(), 1);
        assert_eq!(a.positions[0].position_side, "LONG");
        assert_eq!((a.reason.as_str(), a.time_ms), ("FUNDING_FEE", 2));
    }
}
