//! The paper account: cash, positions, leverage, orders and their matching against the
//! simulated quotes.
//!
//! Owns: the records stored in the `paper` tree, position arithmetic (weighted entry on
//! increase, unchanged entry on reduce, reset on flip, realised PnL on reduce), fees,
//! margin, and every order state transition. Never: persistence (it returns what changed;
//! the venue writes it) or price generation.
//!
//! Rules a user may want to know:
//! - Market orders and marketable limit orders take liquidity (taker fee) at the touch
//!   moved by `slippage_bps`; a market order that would fill beyond its `max_slippage`
//!   from the mid is rejected, like an aggressive IOC limit that cannot fill.
//! - A marketable limit order fills at most `top_of_book_usd` at once; the rest rests (GTC)
//!   or is cancelled (IOC). An ALO order that would cross is rejected.
//! - Resting limit orders fill at their limit price (maker fee) once the opposite side of a
//!   later quote reaches it. Trigger orders wait until the mid crosses their trigger price,
//!   then act as a market order (or a limit order at `limit_price`).
//! - Reduce-only orders are clipped to the position (the returned order's `size` is the
//!   clipped size) and never open or flip one; one sent with no position to reduce is
//!   rejected, and a resting one is cancelled once the position is gone. They are exempt from the minimum notional so a dust position can be
//!   closed.
//! - Margin: each open position uses `|size| · mark / leverage`; each resting order that is
//!   not reduce-only reserves `remaining · price / leverage`. Free balance is account value
//!   minus both. An order whose added exposure (plus its taker fee) needs more than the free
//!   balance is refused. There is no liquidation.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::market::{Market, Top};
use crate::clock::Millis;
use crate::exchanges::types::*;
use crate::exchanges::venue::{VenueError, VenueResult};
use crate::store::Record;

/// Everything the paper venue stores, in one tree. Keys: `<venue>/account`,
/// `<venue>/order/<client id>`, `<venue>/fill/<seq, 20 digits>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaperRecord {
    Account(AccountRecord),
    Order(PaperOrder),
    Fill(Fill),
}

impl Record for PaperRecord {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holding {
    /// Signed: positive long, negative short.
    pub size: Decimal,
    pub entry_price: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Cash: starting balance plus realised PnL minus fees.
    pub balance: Decimal,
    pub created_ms: Millis,
    /// Step 0 of every simulated market of this account.
    pub market_anchor_ms: Millis,
    /// Resting orders have been matched against every step up to this time.
    pub checked_ms: Millis,
    pub next_order_seq: u64,
    pub next_fill_seq: u64,
    pub positions: BTreeMap<String, Holding>,
    pub leverage: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperOrder {
    pub seq: u64,
    pub created_ms: Millis,
    pub order_type: OrderType,
    /// For trigger orders: the trigger has fired and the order now rests as a limit.
    pub triggered: bool,
    pub order: VenueOrder,
}

impl PaperOrder {
    pub fn client_id(&self) -> &ClientOrderId {
        // Invariant: the paper venue only creates orders from requests with a client id.
        self.order
            .client_id
            .as_ref()
            .expect("paper orders always carry their client id")
    }
    fn remaining(&self) -> Decimal {
        self.order.size - self.order.filled_size
    }
    /// Price used for margin reservation and min-notional checks.
    fn reference_price(&self) -> Option<Decimal> {
        match &self.order_type {
            OrderType::Limit { price, .. } => Some(*price),
            OrderType::Trigger {
                trigger_price,
                limit_price,
                ..
            } => Some(limit_price.unwrap_or(*trigger_price)),
            OrderType::Market { .. } => None,
        }
    }
}

/// Fee, slippage and liquidity terms of the venue.
#[derive(Debug, Clone)]
pub struct Terms {
    pub taker_fee: Decimal,
    pub maker_fee: Decimal,
    pub slippage: Decimal,
    pub top_of_book_usd: Decimal,
    pub default_leverage: u32,
}

/// What one operation changed, for the venue to persist.
#[derive(Debug, Default)]
pub struct Changes {
    pub account: bool,
    pub orders: Vec<PaperOrder>,
    /// New fills with their sequence numbers.
    pub fills: Vec<(u64, Fill)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.account && self.orders.is_empty() && self.fills.is_empty()
    }
    fn order(&mut self, order: &PaperOrder) {
        self.orders.retain(|o| o.seq != order.seq);
        self.orders.push(order.clone());
    }
}

/// Result of applying a signed size change to a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionChange {
    pub size: Decimal,
    pub entry_price: Decimal,
    pub realised_pnl: Decimal,
}

/// Applies a fill of signed size `delta` at `price` to a position.
pub fn apply_to_position(
    size: Decimal,
    entry: Decimal,
    delta: Decimal,
    price: Decimal,
) -> PositionChange {
    let new_size = size + delta;
    if size.is_zero() || size.is_sign_positive() == delta.is_sign_positive() {
        // Opening or increasing: size-weighted average entry.
        let entry_price = (size.abs() * entry + delta.abs() * price) / new_size.abs();
        return PositionChange {
            size: new_size,
            entry_price,
            realised_pnl: Decimal::ZERO,
        };
    }
    let closed = size.abs().min(delta.abs());
    let direction = if size.is_sign_positive() {
        Decimal::ONE
    } else {
        Decimal::NEGATIVE_ONE
    };
    let realised_pnl = closed * (price - entry) * direction;
    let entry_price = if new_size.is_zero() {
        Decimal::ZERO
    } else if new_size.is_sign_positive() == size.is_sign_positive() {
        entry
    } else {
        // Flipped: the new position opened at this fill's price.
        price
    };
    PositionChange {
        size: new_size,
        entry_price,
        realised_pnl,
    }
}

/// A market by symbol, as the book needs it.
pub trait Markets {
    fn with_market<R>(&self, symbol: &str, f: impl FnOnce(&mut Market) -> R) -> Option<R>;
}

/// The live account: its record and its resting orders.
pub struct Book {
    pub venue: String,
    pub account: AccountRecord,
    /// Resting orders, oldest first.
    pub open: Vec<PaperOrder>,
    pub terms: Terms,
}

impl Book {
    fn invalid(&self, reason: String) -> VenueError {
        VenueError::InvalidRequest {
            venue: self.venue.clone(),
            reason,
        }
    }
    fn rejected(&self, reason: String) -> VenueError {
        VenueError::Rejected {
            venue: self.venue.clone(),
            reason,
        }
    }
    fn unknown_symbol(&self, symbol: &str) -> VenueError {
        VenueError::UnknownSymbol {
            venue: self.venue.clone(),
            symbol: symbol.to_string(),
        }
    }

    pub fn leverage(&self, symbol: &str) -> u32 {
        self.account
            .leverage
            .get(symbol)
            .copied()
            .unwrap_or(self.terms.default_leverage)
    }

    fn position_size(&self, symbol: &str) -> Decimal {
        self.account
            .positions
            .get(symbol)
            .map(|h| h.size)
            .unwrap_or_default()
    }

    /// The quote of `symbol` at clock time `at`.
    fn top<M: Markets>(&self, markets: &M, symbol: &str, at: Millis) -> VenueResult<Top> {
        markets
            .with_market(symbol, |m| m.top(m.step_at(at)))
            .ok_or_else(|| self.unknown_symbol(symbol))?
    }

    /// Positions marked at `now`.
    pub fn positions<M: Markets>(&self, markets: &M, now: Millis) -> VenueResult<Vec<Position>> {
        let mut out = Vec::with_capacity(self.account.positions.len());
        for (symbol, h) in &self.account.positions {
            let mark = self.top(markets, symbol, now)?.mid;
            let leverage = self.leverage(symbol);
            out.push(Position {
                symbol: symbol.clone(),
                size: h.size,
                entry_price: h.entry_price,
                mark_price: mark,
                unrealized_pnl: h.size * (mark - h.entry_price),
                leverage,
                liquidation_price: None,
                margin_used: (h.size * mark).abs() / Decimal::from(leverage),
            });
        }
        Ok(out)
    }

    fn reserved_by_orders(&self) -> Decimal {
        self.open
            .iter()
            .filter(|o| !o.order.reduce_only)
            .filter_map(|o| {
                o.reference_price()
                    .map(|p| o.remaining() * p / Decimal::from(self.leverage(&o.order.symbol)))
            })
            .sum()
    }

    pub fn snapshot<M: Markets>(&self, markets: &M, now: Millis) -> VenueResult<AccountSnapshot> {
        let positions = self.positions(markets, now)?;
        let unrealized_pnl: Decimal = positions.iter().map(|p| p.unrealized_pnl).sum();
        let margin_used =
            positions.iter().map(|p| p.margin_used).sum::<Decimal>() + self.reserved_by_orders();
        let account_value = self.account.balance + unrealized_pnl;
        Ok(AccountSnapshot {
            account_value,
            free_balance: account_value - margin_used,
            margin_used,
            unrealized_pnl,
            time_ms: now,
        })
    }

    /// Matches resting orders against every step after the last check up to `now`.
    ///
    /// Gaps up to an hour of steps are checked step by step; longer gaps (after a restart)
    /// at 60 or 3 600 steps, like candles, so a venue reopened after a week does not walk
    /// 600 000 steps.
    pub fn advance<M: Markets>(
        &mut self,
        markets: &M,
        now: Millis,
        changes: &mut Changes,
    ) -> VenueResult<()> {
        let from = self.account.checked_ms;
        if now <= from {
            return Ok(());
        }
        if self.open.is_empty() {
            self.account.checked_ms = now;
            return Ok(());
        }
        let symbols: Vec<String> = {
            let mut s: Vec<String> = self.open.iter().map(|o| o.order.symbol.clone()).collect();
            s.sort();
            s.dedup();
            s
        };
        // All markets share the anchor and step, so one symbol's grid serves all.
        let (k_from, k_now) = markets
            .with_market(&symbols[0], |m| (m.step_at(from), m.step_at(now)))
            .ok_or_else(|| self.unknown_symbol(&symbols[0]))?;
        let gap = k_now - k_from;
        let resolution = if gap <= 3_600 {
            1
        } else if gap <= 3_600 * 60 {
            60
        } else {
            3_600
        };
        let mut k = (k_from.div_euclid(resolution) + 1) * resolution;
        let mut last = k_from;
        while last < k_now && !self.open.is_empty() {
            let point = k.min(k_now);
            let t = if point == k_now {
                now
            } else {
                markets
                    .with_market(&symbols[0], |m| m.time_of(point))
                    .unwrap_or(now)
            };
            for symbol in &symbols {
                if !self.open.iter().any(|o| &o.order.symbol == symbol) {
                    continue;
                }
                let top = markets
                    .with_market(symbol, |m| m.top(point))
                    .ok_or_else(|| self.unknown_symbol(symbol))??;
                self.match_resting(symbol, top, t, changes);
            }
            last = point;
            k += resolution;
        }
        self.account.checked_ms = now;
        Ok(())
    }

    fn match_resting(&mut self, symbol: &str, top: Top, t: Millis, changes: &mut Changes) {
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].order.symbol != symbol || self.open[i].created_ms > t {
                i += 1;
                continue;
            }
            let mut order = self.open.remove(i);
            self.work_resting(&mut order, top, t, changes);
            if order.order.status.is_open() {
                self.open.insert(i, order);
                i += 1;
            }
        }
    }

    /// One resting order against one quote: fire triggers, fill crossed limits.
    fn work_resting(&mut self, order: &mut PaperOrder, top: Top, t: Millis, changes: &mut Changes) {
        let side = order.order.side;
        match order.order_type.clone() {
            OrderType::Trigger {
                trigger_price,
                kind,
                limit_price,
            } if !order.triggered => {
                if !trigger_fires(side, kind, trigger_price, top.mid) {
                    return;
                }
                order.triggered = true;
                changes.order(order);
                match limit_price {
                    None => {
                        let price = self.slipped(side, top);
                        self.fill_reducible(order, order.remaining(), price, false, t, changes);
                    }
                    Some(limit) if crosses(side, limit, top) => {
                        let price = limit_or_better(side, limit, self.slipped(side, top));
                        self.fill_reducible(order, order.remaining(), price, false, t, changes);
                    }
                    Some(_) => {}
                }
            }
            other => {
                let Some(limit) = other.limit_price() else {
                    return;
                };
                if crosses(side, limit, top) {
                    self.fill_reducible(order, order.remaining(), limit, true, t, changes);
                }
            }
        }
    }

    /// Touch price moved by the slippage, rounded to the tick against the taker.
    fn slipped(&self, side: Side, top: Top) -> Decimal {
        let price = match side {
            Side::Buy => top.ask * (Decimal::ONE + self.terms.slippage),
            Side::Sell => top.bid * (Decimal::ONE - self.terms.slippage),
        };
        round_against(side, price, top.tick)
    }

    /// Fills `size` of `order`, clipped to the position for reduce-only orders; a
    /// reduce-only order with nothing left to reduce is cancelled instead.
    fn fill_reducible(
        &mut self,
        order: &mut PaperOrder,
        size: Decimal,
        price: Decimal,
        maker: bool,
        t: Millis,
        changes: &mut Changes,
    ) {
        let mut size = size;
        if order.order.reduce_only {
            let reducible = reducible(self.position_size(&order.order.symbol), order.order.side);
            size = size.min(reducible);
            if size <= Decimal::ZERO {
                self.finish(
                    order,
                    OrderStatus::Cancelled,
                    Some("reduce-only order cancelled: no position left to reduce".into()),
                    t,
                    changes,
                );
                return;
            }
        }
        self.fill(order, size, price, maker, t, changes);
        if order.order.reduce_only
            && order.remaining() > Decimal::ZERO
            && reducible(self.position_size(&order.order.symbol), order.order.side).is_zero()
        {
            self.finish(
                order,
                OrderStatus::Cancelled,
                Some("reduce-only remainder cancelled: the position is closed".into()),
                t,
                changes,
            );
        }
    }

    fn finish(
        &mut self,
        order: &mut PaperOrder,
        status: OrderStatus,
        reason: Option<String>,
        t: Millis,
        changes: &mut Changes,
    ) {
        order.order.status = status;
        order.order.reject_reason = reason;
        order.order.updated_ms = t;
        changes.order(order);
    }

    /// Executes one fill: position, cash, order progress and the fill record.
    fn fill(
        &mut self,
        order: &mut PaperOrder,
        size: Decimal,
        price: Decimal,
        maker: bool,
        t: Millis,
        changes: &mut Changes,
    ) {
        let symbol = order.order.symbol.clone();
        let side = order.order.side;
        let held = self
            .account
            .positions
            .get(&symbol)
            .cloned()
            .unwrap_or(Holding {
                size: Decimal::ZERO,
                entry_price: Decimal::ZERO,
            });
        let change = apply_to_position(held.size, held.entry_price, side.sign() * size, price);
        if change.size.is_zero() {
            self.account.positions.remove(&symbol);
        } else {
            self.account.positions.insert(
                symbol.clone(),
                Holding {
                    size: change.size,
                    entry_price: change.entry_price,
                },
            );
        }
        let rate = if maker {
            self.terms.maker_fee
        } else {
            self.terms.taker_fee
        };
        let fee = size * price * rate;
        self.account.balance += change.realised_pnl - fee;
        let filled_before = order.order.filled_size;
        let avg_before = order.order.avg_fill_price.unwrap_or_default();
        order.order.filled_size += size;
        order.order.avg_fill_price =
            Some((avg_before * filled_before + price * size) / order.order.filled_size);
        order.order.status = if order.remaining() <= Decimal::ZERO {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        order.order.updated_ms = t;
        let seq = self.account.next_fill_seq;
        self.account.next_fill_seq += 1;
        changes.account = true;
        changes.order(order);
        changes.fills.push((
            seq,
            Fill {
                fill_id: format!("{}-{seq}", self.venue),
                client_id: order.order.client_id.clone(),
                venue_order_id: order.order.venue_order_id.clone(),
                symbol,
                side,
                price,
                size,
                fee,
                closed_pnl: change.realised_pnl,
                time_ms: t,
                fee_asset: None,
            },
        ));
    }

    /// Validates, prices and executes a new order at `now`. The caller has advanced the
    /// book to `now` and checked that the client id is new.
    pub fn place<M: Markets>(
        &mut self,
        markets: &M,
        req: &OrderRequest,
        now: Millis,
        changes: &mut Changes,
    ) -> VenueResult<PaperOrder> {
        let instrument = markets
            .with_market(&req.symbol, |m| m.instrument.clone())
            .ok_or_else(|| self.unknown_symbol(&req.symbol))?;
        self.check_request(req, &instrument)?;
        let top = self.top(markets, &req.symbol, now)?;
        let mut size = req.size;
        if req.reduce_only {
            let reducible = reducible(self.position_size(&req.symbol), req.side);
            if reducible.is_zero() {
                return Err(self.rejected(format!(
                    "reduce-only {} {} would not reduce anything: there is no {} position to reduce",
                    req.side,
                    req.symbol,
                    if req.side == Side::Buy { "short" } else { "long" }
                )));
            }
            size = size.min(reducible);
        }
        let reference = match &req.order_type {
            OrderType::Market { .. } => self.slipped(req.side, top),
            other => other.limit_price().unwrap_or(match other {
                OrderType::Trigger { trigger_price, .. } => *trigger_price,
                _ => top.mid,
            }),
        };
        let notional = size.checked_mul(reference).ok_or_else(|| {
            self.invalid(format!(
                "order value of {size} {} at {reference} is beyond any representable amount",
                req.symbol
            ))
        })?;
        if !req.reduce_only && notional < instrument.min_notional {
            return Err(self.invalid(format!(
                "order value {} USD ({} {} at {}) is below the minimum of {} USD; increase the size",
                notional.normalize(),
                size,
                req.symbol,
                reference,
                instrument.min_notional
            )));
        }
        if !req.reduce_only {
            self.check_margin(markets, req, size, reference, now)?;
        }
        // Refusals that depend on the book come before anything changes.
        match &req.order_type {
            OrderType::Market { max_slippage } => {
                let price = self.slipped(req.side, top);
                let bound = top.mid * (Decimal::ONE + req.side.sign() * *max_slippage);
                let beyond = match req.side {
                    Side::Buy => price > bound,
                    Side::Sell => price < bound,
                };
                if beyond {
                    return Err(self.rejected(format!(
                        "market {} {} would fill at {price}, beyond max_slippage {} from mid {} (bound {}); raise max_slippage or use a limit order",
                        req.side, req.symbol, max_slippage, top.mid, bound.normalize()
                    )));
                }
            }
            OrderType::Limit {
                price: limit,
                tif: TimeInForce::Alo,
            } if crosses(req.side, *limit, top) => {
                return Err(self.rejected(format!(
                    "post-only (ALO) {} {} at {limit} would cross the book (bid {}, ask {}); it was not placed",
                    req.side, req.symbol, top.bid, top.ask
                )));
            }
            _ => {}
        }
        let seq = self.account.next_order_seq;
        self.account.next_order_seq += 1;
        changes.account = true;
        let mut order = PaperOrder {
            seq,
            created_ms: now,
            order_type: req.order_type.clone(),
            triggered: false,
            order: VenueOrder {
                client_id: Some(req.client_id.clone()),
                venue_order_id: format!("{}-{seq}", self.venue),
                symbol: req.symbol.clone(),
                side: req.side,
                size,
                filled_size: Decimal::ZERO,
                avg_fill_price: None,
                limit_price: req.order_type.limit_price(),
                status: OrderStatus::Acked,
                reduce_only: req.reduce_only,
                reject_reason: None,
                updated_ms: now,
            },
        };
        match &req.order_type {
            OrderType::Market { .. } => {
                let price = self.slipped(req.side, top);
                self.fill(&mut order, size, price, false, now, changes);
            }
            OrderType::Limit { price: limit, tif } => {
                if crosses(req.side, *limit, top) {
                    let price = limit_or_better(req.side, *limit, self.slipped(req.side, top));
                    let at_touch =
                        round_down_to(self.terms.top_of_book_usd / price, instrument.lot_size);
                    let now_size = size.min(at_touch);
                    if now_size > Decimal::ZERO {
                        self.fill(&mut order, now_size, price, false, now, changes);
                    }
                }
                if order.remaining() > Decimal::ZERO && *tif == TimeInForce::Ioc {
                    let reason = if order.order.filled_size.is_zero() {
                        "IOC order cancelled: nothing could fill at its limit"
                    } else {
                        "IOC remainder cancelled: the touch had no more liquidity at its limit"
                    };
                    self.finish(
                        &mut order,
                        OrderStatus::Cancelled,
                        Some(reason.into()),
                        now,
                        changes,
                    );
                }
            }
            OrderType::Trigger { .. } => {
                // A trigger already crossed fires at once, as on a real venue.
                self.work_resting(&mut order, top, now, changes);
            }
        }
        changes.order(&order);
        if order.order.status.is_open() {
            self.open.push(order.clone());
        }
        Ok(order)
    }

    fn check_request(&self, req: &OrderRequest, instrument: &Instrument) -> VenueResult<()> {
        if req.size <= Decimal::ZERO {
            return Err(self.invalid(format!("size {} must be positive", req.size)));
        }
        if !(req.size % instrument.lot_size).is_zero() {
            return Err(self.invalid(format!(
                "size {} is not a multiple of {}'s lot size {}; round it with Instrument::round_size_down",
                req.size, req.symbol, instrument.lot_size
            )));
        }
        let check_price = |what: &str, p: Decimal| -> VenueResult<()> {
            if p <= Decimal::ZERO {
                return Err(self.invalid(format!("{what} {p} must be positive")));
            }
            if !(p % instrument.tick_size).is_zero() {
                return Err(self.invalid(format!(
                    "{what} {p} is not a multiple of {}'s tick size {}; round it with Instrument::round_price",
                    req.symbol, instrument.tick_size
                )));
            }
            Ok(())
        };
        match &req.order_type {
            OrderType::Market { max_slippage } => {
                if *max_slippage < Decimal::ZERO || *max_slippage >= Decimal::ONE {
                    return Err(self.invalid(format!(
                        "max_slippage {max_slippage} must be a fraction from 0 to below 1 (0.01 = 1%)"
                    )));
                }
            }
            OrderType::Limit { price, .. } => check_price("limit price", *price)?,
            OrderType::Trigger {
                trigger_price,
                limit_price,
                ..
            } => {
                check_price("trigger price", *trigger_price)?;
                if let Some(p) = limit_price {
                    check_price("limit price", *p)?;
                }
            }
        }
        Ok(())
    }

    fn check_margin<M: Markets>(
        &self,
        markets: &M,
        req: &OrderRequest,
        size: Decimal,
        price: Decimal,
        now: Millis,
    ) -> VenueResult<()> {
        let held = self.position_size(&req.symbol);
        let after = held + req.side.sign() * size;
        let added = (after.abs() - held.abs()).max(Decimal::ZERO);
        let leverage = Decimal::from(self.leverage(&req.symbol));
        let required = added * price / leverage + size * price * self.terms.taker_fee;
        let snapshot = self.snapshot(markets, now)?;
        if required > snapshot.free_balance {
            return Err(VenueError::InsufficientBalance {
                venue: self.venue.clone(),
                reason: format!(
                    "{} {} {} needs {} USD of margin and fees at {}x but only {} USD is free (account value {}, margin used {}); reduce the size or raise leverage",
                    req.side,
                    size,
                    req.symbol,
                    required.round_dp(2),
                    leverage,
                    snapshot.free_balance.round_dp(2),
                    snapshot.account_value.round_dp(2),
                    snapshot.margin_used.round_dp(2)
                ),
            });
        }
        Ok(())
    }

    /// Cancels a resting order. `Ok(None)` when no resting order has this id.
    pub fn cancel(
        &mut self,
        symbol: &str,
        client_id: &ClientOrderId,
        now: Millis,
        changes: &mut Changes,
    ) -> VenueResult<Option<PaperOrder>> {
        let Some(i) = self.open.iter().position(|o| o.client_id() == client_id) else {
            return Ok(None);
        };
        if self.open[i].order.symbol != symbol {
            return Err(self.invalid(format!(
                "order {client_id} is for {}, not {symbol}",
                self.open[i].order.symbol
            )));
        }
        let mut order = self.open.remove(i);
        self.finish(&mut order, OrderStatus::Cancelled, None, now, changes);
        Ok(Some(order))
    }

    /// Sets a symbol's leverage if the account can carry its positions at the new level.
    pub fn set_leverage<M: Markets>(
        &mut self,
        markets: &M,
        symbol: &str,
        leverage: u32,
        now: Millis,
        changes: &mut Changes,
    ) -> VenueResult<()> {
        let max = markets
            .with_market(symbol, |m| m.instrument.max_leverage)
            .ok_or_else(|| self.unknown_symbol(symbol))?;
        if leverage == 0 || leverage > max {
            return Err(self.invalid(format!(
                "leverage {leverage} for {symbol} is out of range; allowed 1 to {max}"
            )));
        }
        let before = self.account.leverage.insert(symbol.to_string(), leverage);
        let snapshot = self.snapshot(markets, now)?;
        if snapshot.free_balance < Decimal::ZERO {
            match before {
                Some(b) => self.account.leverage.insert(symbol.to_string(), b),
                None => self.account.leverage.remove(symbol),
            };
            return Err(VenueError::InsufficientBalance {
                venue: self.venue.clone(),
                reason: format!(
                    "at {leverage}x the open {symbol} position and orders would need more margin than the account has ({} USD short); close some exposure first",
                    (-snapshot.free_balance).round_dp(2)
                ),
            });
        }
        changes.account = true;
        Ok(())
    }

    /// Re-applies fills that were stored but whose account update was not (a crash between
    /// the two writes), so the account matches its fill history.
    pub fn replay_uncommitted(&mut self, fills: &[Fill]) {
        for f in fills {
            let held = self
                .account
                .positions
                .get(&f.symbol)
                .cloned()
                .unwrap_or(Holding {
                    size: Decimal::ZERO,
                    entry_price: Decimal::ZERO,
                });
            let change =
                apply_to_position(held.size, held.entry_price, f.side.sign() * f.size, f.price);
            if change.size.is_zero() {
                self.account.positions.remove(&f.symbol);
            } else {
                self.account.positions.insert(
                    f.symbol.clone(),
                    Holding {
                        size: change.size,
                        entry_price: change.entry_price,
                    },
                );
            }
            self.account.balance += change.realised_pnl - f.fee;
            self.account.next_fill_seq += 1;
        }
    }
}

/// How much of a position an order on `side` can reduce.
fn reducible(position: Decimal, side: Side) -> Decimal {
    match side {
        Side::Buy if position < Decimal::ZERO => -position,
        Side::Sell if position > Decimal::ZERO => position,
        _ => Decimal::ZERO,
    }
}

/// Whether a limit at `limit` on `side` can trade against `top`.
fn crosses(side: Side, limit: Decimal, top: Top) -> bool {
    match side {
        Side::Buy => limit >= top.ask,
        Side::Sell => limit <= top.bid,
    }
}

fn limit_or_better(side: Side, limit: Decimal, price: Decimal) -> Decimal {
    match side {
        Side::Buy => price.min(limit),
        Side::Sell => price.max(limit),
    }
}

fn round_against(side: Side, price: Decimal, tick: Decimal) -> Decimal {
    let ticks = price / tick;
    let ticks = match side {
        Side::Buy => ticks.ceil(),
        Side::Sell => ticks.floor(),
    };
    (ticks * tick).normalize()
}

/// Stop losses fire when the price moves against the position they protect, take profits
/// when it moves in its favour: a sell protects a long, a buy protects a short.
fn trigger_fires(side: Side, kind: TriggerKind, trigger: Decimal, mid: Decimal) -> bool {
    match (kind, side) {
        (TriggerKind::StopLoss, Side::Sell) | (TriggerKind::TakeProfit, Side::Buy) => {
            mid <= trigger
        }
        (TriggerKind::StopLoss, Side::Buy) | (TriggerKind::TakeProfit, Side::Sell) => {
            mid >= trigger
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn increase_averages_entry() {
        let c = apply_to_position(dec!(1), dec!(100), dec!(3), dec!(200));
        assert_eq!(c.size, dec!(4));
        assert_eq!(c.entry_price, dec!(175));
        assert_eq!(c.realised_pnl, dec!(0));
    }

    #[test]
    fn reduce_keeps_entry_and_realises() {
        let c = apply_to_position(dec!(-2), dec!(100), dec!(0.5), dec!(90));
        assert_eq!(c.size, dec!(-1.5));
        assert_eq!(c.entry_price, dec!(100));
        assert_eq!(c.realised_pnl, dec!(5));
    }

    #[test]
    fn flip_resets_entry_and_close_zeroes() {
        let c = apply_to_position(dec!(2), dec!(100), dec!(-3), dec!(110));
        assert_eq!(c.size, dec!(-1));
        assert_eq!(c.entry_price, dec!(110));
        assert_eq!(c.realised_pnl, dec!(20));
        let c = apply_to_position(dec!(2), dec!(100), dec!(-2), dec!(95));
        assert_eq!(c.size, dec!(0));
        assert_eq!(c.entry_price, dec!(0));
        assert_eq!(c.realised_pnl, dec!(-10));
    }

    #[test]
    fn triggers_protect_the_right_side() {
        assert!(trigger_fires(
            Side::Sell,
            TriggerKind::StopLoss,
            dec!(100),
            dec!(99)
        ));
        assert!(!trigger_fires(
            Side::Sell,
            TriggerKind::StopLoss,
            dec!(100),
            dec!(101)
        ));
        assert!(trigger_fires(
            Side::Sell,
            TriggerKind::TakeProfit,
            dec!(100),
            dec!(101)
        ));
        assert!(trigger_fires(
            Side::Buy,
            TriggerKind::StopLoss,
            dec!(100),
            dec!(101)
        ));
        assert!(trigger_fires(
            Side::Buy,
            TriggerKind::TakeProfit,
            dec!(100),
            dec!(99)
        ));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Average-cost accounting loses nothing: realised plus unrealised PnL equals the
        /// cash paid and received plus the position's value at any mark.
        #[test]
        fn realised_plus_unrealised_equals_cash_flows(
            trades in prop::collection::vec((-1_000i64..1_000, 1i64..1_000_000), 1..40),
            mark in 1i64..1_000_000,
        ) {
            let (mut size, mut entry) = (Decimal::ZERO, Decimal::ZERO);
            let (mut realised, mut cash) = (Decimal::ZERO, Decimal::ZERO);
            for (units, ticks) in trades {
                if units == 0 {
                    continue;
                }
                let delta = Decimal::new(units, 2);
                let price = Decimal::new(ticks, 1);
                let c = apply_to_position(size, entry, delta, price);
                realised += c.realised_pnl;
                cash -= delta * price;
                size = c.size;
                entry = c.entry_price;
                prop_assert!(size.is_zero() == entry.is_zero());
            }
            let mark = Decimal::new(mark, 1);
            let books = realised + size * (mark - entry);
            let flows = cash + size * mark;
            prop_assert!((books - flows).abs() < Decimal::new(1, 12), "{books} vs {flows}");
        }
    }
}
