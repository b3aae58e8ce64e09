//! Reconciliation as a pure function: (what the ledger holds, what the venue shows) →
//! the changes that bring the ledger in line.
//!
//! Owns: every decision of a reconciliation pass — which new fills to record, which
//! entries the venue's answers change and how, which entries are concluded never sent
//! (only past their deadline), which finished entries a fill shows wrong, which venue
//! orders are adopted — and the pass's [`ReconcileReport`]. Never: reads a venue, touches
//! the ledger, reads a clock or logs (the caller, [`super::reconcile_apply`], does all of
//! that and hands in `now`); never produces an action that sends anything: a plan has no
//! way to express a send, so reconciliation can never resend an order.
//!
//! A pass runs in two pure steps around the venue's answers: [`lookups`] says which
//! orders must be asked for by client id (open entries, and finished entries a new fill
//! contradicts), the caller asks the venue, then [`plan`] turns both snapshots into
//! [`Action`]s in the order they are to be written: new fills first (so an entry's new
//! state can take its average price from them), then corrections, then open entries,
//! then adoptions. [`Change::apply`] is the one definition of what an action does to an
//! entry, used both by the caller on the ledger and by [`plan`] on its working copy.
//!
//! Invariants (property-tested in `reconcile/tests.rs`): no action sends; every venue
//! fill not yet recorded is recorded; applying a plan and planning again against the same
//! venue yields no action; an open venue order the ledger does not know is adopted once.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{ADOPTED_ORIGIN, DEADLINE_MARGIN_MS};
use crate::clock::Millis;
use crate::exchanges::ledger::LedgerEntry;
use crate::exchanges::types::{
    ClientOrderId, Fill, OrderRequest, OrderStatus, OrderType, TimeInForce, VenueOrder,
};

/// What the ledger holds about one venue, as far as a pass may need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerSnapshot {
    /// Entries by client id: at least every open entry of the venue, every entry a venue
    /// open order or a new fill names (by client id, by the adopted index, or — for fills
    /// without a client id — every entry of the venue with a venue order id).
    pub entries: BTreeMap<ClientOrderId, LedgerEntry>,
    /// The adopted index of this venue: venue order id → the entry made for it.
    pub adopted: BTreeMap<String, ClientOrderId>,
    /// Every fill of this venue already recorded.
    pub fills: Vec<Fill>,
}

/// What the venue shows, read in this order: open orders, fills since the newest
/// recorded one, then the orders [`lookups`] asked for by client id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VenueSnapshot {
    pub open_orders: Vec<VenueOrder>,
    pub fills: Vec<Fill>,
    /// The venue's answer per client id asked (`None`: it has no such order). An entry
    /// that was not asked about is left as it is.
    pub lookups: BTreeMap<ClientOrderId, Option<VenueOrder>>,
}

/// The clock and the rule for entries written before deadlines existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub now: Millis,
    /// An entry without a deadline the venue does not show is concluded never sent once it
    /// is this old (twice the request timeout), or at once while still an intent.
    pub legacy_grace_ms: i64,
}

/// Which drift metric an update counts in (`orrery_reconcile_drift_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// The venue's answer changed the entry's state.
    Status,
    /// Concluded never sent.
    NeverSent,
    /// A finished entry a fill showed wrong.
    Corrected,
}

impl Drift {
    pub fn label(self) -> &'static str {
        match self {
            Drift::Status => "status",
            Drift::NeverSent => "never_sent",
            Drift::Corrected => "corrected",
        }
    }
}

/// How one entry changes; [`Change::apply`] applies it to the entry as the ledger has it
/// at write time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Take the venue's answer; `avg_fill_price` is the price afterwards (the venue's, or
    /// one from the order's fills when the venue's answer has none).
    Venue {
        order: VenueOrder,
        avg_fill_price: Option<Decimal>,
    },
    /// A finished entry a fill showed wrong: the venue's answer when it has one, else the
    /// order's fills (`venue_order_id`, `fills`: every recorded fill of it).
    Correct {
        found: Option<VenueOrder>,
        venue_order_id: String,
        fills: Vec<Fill>,
    },
    /// An order the venue no longer lists or knows: its fills say whether it filled (else
    /// it is cancelled, with `reason`). For an adopted order, and for one of ours whose
    /// fills show the venue had it.
    Gone {
        venue_order_id: Option<String>,
        fills: Vec<Fill>,
        reason: String,
    },
    /// A status with its reason (never sent, no longer at the venue, waiting for the
    /// deadline).
    Status { status: OrderStatus, reason: String },
    /// An entry whose final state came without an average price (Hyperliquid's order
    /// answers and pushed order updates carry none) takes it from its fills once they
    /// add up to its filled size (`fills`: every recorded fill of its order).
    FillPrice { fills: Vec<Fill> },
}

impl Change {
    /// Applies the change to `e`; `now` stamps a venue answer's change.
    pub fn apply(&self, e: &mut LedgerEntry, now: Millis) {
        match self {
            Change::Venue {
                order,
                avg_fill_price,
            } => {
                e.apply_venue_order(order, now);
                e.avg_fill_price = *avg_fill_price;
            }
            Change::Correct {
                found,
                venue_order_id,
                fills,
            } => {
                match found {
                    Some(order) => {
                        e.apply_venue_order(order, now);
                    }
                    None => {
                        let filled: Decimal = fills.iter().map(|f| f.size).sum();
                        e.venue_order_id = Some(venue_order_id.clone());
                        e.filled_size = filled;
                        e.status = if filled >= e.request.size {
                            OrderStatus::Filled
                        } else {
                            // Open again: the next pass asks the venue.
                            OrderStatus::PartiallyFilled
                        };
                        e.reason = None;
                    }
                }
                if e.avg_fill_price.is_none() {
                    e.price_from_fills(fills);
                }
            }
            Change::Gone {
                venue_order_id,
                fills,
                reason,
            } => {
                let filled: Decimal = fills.iter().map(|f| f.size).sum();
                if e.venue_order_id.is_none() {
                    e.venue_order_id = venue_order_id.clone();
                }
                e.filled_size = filled.max(e.filled_size);
                e.status = if e.filled_size >= e.request.size {
                    OrderStatus::Filled
                } else {
                    OrderStatus::Cancelled
                };
                e.avg_fill_price = None;
                e.price_from_fills(fills);
                e.reason = (e.status == OrderStatus::Cancelled).then(|| reason.clone());
            }
            Change::Status { status, reason } => {
                e.status = *status;
                e.reason = Some(reason.clone());
            }
            Change::FillPrice { fills } => {
                e.price_from_fills(fills);
            }
        }
    }
}

/// One step of a plan. None of them sends anything to the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A venue fill the ledger has not recorded.
    RecordFill(Fill),
    /// Change one entry; `drift` says which drift it counts as (`None`: an entry that
    /// waits for its deadline, which is no drift).
    Update {
        client_id: ClientOrderId,
        change: Change,
        drift: Option<Drift>,
    },
    /// Adopt a venue order placed outside this engine, keyed by its venue order id, as
    /// the entry [`adoption`] makes. `client_id` is the adopted index's id (an entry a crash
    /// left half-written) or the order's own; `None`: the caller makes a fresh one.
    Adopt {
        order: VenueOrder,
        client_id: Option<ClientOrderId>,
    },
}

/// What one reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileReport {
    /// Open entries looked up at the venue.
    pub checked: usize,
    /// Entries whose state the venue's answer changed.
    pub updated: usize,
    /// Entries concluded never sent (the venue does not show them and can no longer
    /// apply them).
    pub never_sent: usize,
    /// Venue orders placed outside this engine, adopted now.
    pub adopted: usize,
    /// Finished entries a fill showed wrong, corrected.
    pub corrected: usize,
    pub new_fills: usize,
    /// Entries the venue does not show yet whose deadline has not passed: unknown, asked
    /// again at the next pass.
    pub awaiting_deadline: usize,
}

impl ReconcileReport {
    pub fn drift(&self) -> usize {
        self.updated + self.never_sent + self.adopted + self.corrected
    }

    /// Whether this pass changed the ledger.
    pub fn changed(&self) -> bool {
        self.drift() > 0 || self.new_fills > 0
    }
}

/// A pass's actions, in write order, and its report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub report: ReconcileReport,
}

/// Venue fills the ledger has not recorded, each once, in the venue's order.
fn new_fills<'a>(ledger: &LedgerSnapshot, venue: &'a [Fill]) -> Vec<&'a Fill> {
    let mut seen: BTreeSet<&str> = ledger.fills.iter().map(|f| f.fill_id.as_str()).collect();
    venue
        .iter()
        .filter(|f| seen.insert(f.fill_id.as_str()))
        .collect()
}

/// Whether any of `venue_fills` that is new needs every entry of the venue to be found:
/// it has no client id and no adopted index entry (Binance fills carry no client id).
pub fn needs_all_entries(ledger: &LedgerSnapshot, venue_fills: &[Fill]) -> bool {
    new_fills(ledger, venue_fills)
        .iter()
        .any(|f| f.client_id.is_none() && !ledger.adopted.contains_key(&f.venue_order_id))
}

/// The entry a fill belongs to: its client id, else the adopted index, else the entry
/// with its venue order id.
fn entry_of_fill(ledger: &LedgerSnapshot, fill: &Fill) -> Option<ClientOrderId> {
    if let Some(id) = &fill.client_id {
        return Some(id.clone());
    }
    if let Some(id) = ledger.adopted.get(&fill.venue_order_id) {
        return Some(id.clone());
    }
    ledger
        .entries
        .values()
        .find(|e| e.venue_order_id.as_deref() == Some(fill.venue_order_id.as_str()))
        .map(|e| e.client_id.clone())
}

/// Finished entries a new fill shows wrong (rejected, or with less filled than its
/// fills), each once, with the venue order id of the fill and every recorded fill of it.
fn contradicted(
    ledger: &LedgerSnapshot,
    venue_fills: &[Fill],
) -> Vec<(ClientOrderId, String, Vec<Fill>)> {
    let fresh = new_fills(ledger, venue_fills);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for fill in &fresh {
        let Some(id) = entry_of_fill(ledger, fill) else {
            continue;
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(entry) = ledger.entries.get(&id) else {
            continue;
        };
        if !entry.status.is_terminal() {
            // Open entries are settled by their lookup.
            continue;
        }
        let fills: Vec<Fill> = ledger
            .fills
            .iter()
            .chain(fresh.iter().copied())
            .filter(|f| f.venue_order_id == fill.venue_order_id)
            .cloned()
            .collect();
        let filled: Decimal = fills.iter().map(|f| f.size).sum();
        if entry.status != OrderStatus::Rejected && filled <= entry.filled_size {
            continue;
        }
        out.push((id, fill.venue_order_id.clone(), fills));
    }
    out
}

/// Finished entries a new fill among `venue_fills` shows wrong (rejected, or with less
/// filled than its fills), each once, with the venue order id of the fill and what its
/// fills add up to: a plan corrects each from its lookup (`None`: from its fills) and
/// leaves one without a lookup for the next pass.
pub fn contradicted_entries(
    ledger: &LedgerSnapshot,
    venue_fills: &[Fill],
) -> Vec<(ClientOrderId, String, Decimal)> {
    contradicted(ledger, venue_fills)
        .into_iter()
        .map(|(id, oid, fills)| (id, oid, fills.iter().map(|f| f.size).sum()))
        .collect()
}

/// An open adopted entry the venue lists, found by its venue order id (the venue may know
/// no client id for it).
fn open_match<'a>(entry: &LedgerEntry, open: &'a [VenueOrder]) -> Option<&'a VenueOrder> {
    if entry.origin != ADOPTED_ORIGIN {
        return None;
    }
    let oid = entry.venue_order_id.as_deref()?;
    open.iter().find(|o| o.venue_order_id == oid)
}

/// The orders to ask the venue for by client id (symbol, client id): finished entries a
/// new fill contradicts, then every open entry of `venue` not found among the open
/// orders by its venue order id.
pub fn lookups(
    venue: &str,
    ledger: &LedgerSnapshot,
    open_orders: &[VenueOrder],
    venue_fills: &[Fill],
) -> Vec<(String, ClientOrderId)> {
    let mut out: Vec<(String, ClientOrderId)> = Vec::new();
    let mut asked = BTreeSet::new();
    for (id, _, _) in contradicted(ledger, venue_fills) {
        if let Some(e) = ledger.entries.get(&id) {
            if asked.insert(id.clone()) {
                out.push((e.request.symbol.clone(), id));
            }
        }
    }
    for e in ledger.entries.values() {
        if e.venue == venue
            && !e.status.is_terminal()
            && open_match(e, open_orders).is_none()
            && asked.insert(e.client_id.clone())
        {
            out.push((e.request.symbol.clone(), e.client_id.clone()));
        }
    }
    out
}

/// Plans one pass for `venue`. See the module docs for the order of the actions.
pub fn plan(venue: &str, ledger: &LedgerSnapshot, snapshot: &VenueSnapshot, rules: Rules) -> Plan {
    let now = rules.now;
    let mut plan = Plan::default();
    // The plan's own view of the ledger after each action, so later steps see earlier ones.
    let mut entries = ledger.entries.clone();
    let fresh: Vec<Fill> = new_fills(ledger, &snapshot.fills)
        .into_iter()
        .cloned()
        .collect();
    let mut all_fills = ledger.fills.clone();
    all_fills.extend(fresh.iter().cloned());
    let contradicted = contradicted(ledger, &snapshot.fills);
    let named_by_fresh: Vec<ClientOrderId> = fresh
        .iter()
        .filter_map(|f| entry_of_fill(ledger, f))
        .collect();
    for fill in fresh {
        plan.report.new_fills += 1;
        plan.actions.push(Action::RecordFill(fill));
    }
    let update = |plan: &mut Plan,
                  entries: &mut BTreeMap<_, LedgerEntry>,
                  id: &ClientOrderId,
                  change: Change,
                  drift| {
        if let Some(e) = entries.get_mut(id) {
            change.apply(e, now);
        }
        plan.actions.push(Action::Update {
            client_id: id.clone(),
            change,
            drift,
        });
    };
    // An entry whose status the venue changed: counted as updated, logged as status drift.
    let status_update = |plan: &mut Plan,
                         entries: &mut BTreeMap<_, LedgerEntry>,
                         id: &ClientOrderId,
                         change: Change| {
        plan.report.updated += 1;
        update(plan, entries, id, change, Some(Drift::Status));
    };

    for (id, oid, fills) in contradicted {
        // Not asked about (the caller did not read it): left for the next pass.
        let Some(found) = snapshot.lookups.get(&id) else {
            continue;
        };
        plan.report.corrected += 1;
        let change = Change::Correct {
            found: found.clone(),
            venue_order_id: oid,
            fills,
        };
        update(&mut plan, &mut entries, &id, change, Some(Drift::Corrected));
    }

    let open: Vec<LedgerEntry> = entries
        .values()
        .filter(|e| e.venue == venue && !e.status.is_terminal())
        .cloned()
        .collect();
    for entry in open {
        let found = match open_match(&entry, &snapshot.open_orders) {
            Some(order) => Some(order.clone()),
            None => match snapshot.lookups.get(&entry.client_id) {
                Some(found) => found.clone(),
                None => continue,
            },
        };
        plan.report.checked += 1;
        let adopted = entry.origin == ADOPTED_ORIGIN;
        match found {
            Some(order) => {
                let mut next = entry.clone();
                if !next.apply_venue_order(&order, now) && next.reason == entry.reason {
                    continue;
                }
                if next.avg_fill_price.is_none() && !next.filled_size.is_zero() {
                    let of_order = all_fills
                        .iter()
                        .filter(|f| f.venue_order_id == order.venue_order_id);
                    next.price_from_fills(of_order);
                }
                let change = Change::Venue {
                    order,
                    avg_fill_price: next.avg_fill_price,
                };
                status_update(&mut plan, &mut entries, &entry.client_id, change);
            }
            None if adopted => {
                // An order placed outside this engine that the venue no longer lists and
                // cannot be asked about by client id: its fills say what it did.
                let oid = entry.venue_order_id.clone().unwrap_or_default();
                let fills = all_fills
                    .iter()
                    .filter(|f| f.venue_order_id == oid)
                    .cloned()
                    .collect();
                let change = Change::Gone {
                    venue_order_id: None,
                    fills,
                    reason: "no longer open at the venue (closed outside this engine)".into(),
                };
                status_update(&mut plan, &mut entries, &entry.client_id, change);
            }
            None => match entry.request.valid_until_ms {
                // Fills of it show the venue had it, whatever its lookup says now: it is
                // closed from them (filled, or cancelled with what filled), never called
                // never sent, and no fill is left out of the entry.
                _ if concluded(&entry, now, rules) && !fills_of(&entry, &all_fills).is_empty() => {
                    let fills = fills_of(&entry, &all_fills);
                    let change = Change::Gone {
                        venue_order_id: fills.first().map(|f| f.venue_order_id.clone()),
                        fills,
                        reason: "the venue no longer has a record of this order; its fills show what it did".into(),
                    };
                    status_update(&mut plan, &mut entries, &entry.client_id, change);
                }
                Some(deadline) if now > deadline + DEADLINE_MARGIN_MS => {
                    // Past its deadline the venue refuses the order, so one it does not
                    // show now can never be applied: final, and never re-sent. One the
                    // venue once acknowledged (it has a venue order id) is no longer
                    // working there: closed as cancelled (a later fill would correct it);
                    // one it never acknowledged never reached it.
                    let (change, drift) = if entry.venue_order_id.is_some() {
                        plan.report.updated += 1;
                        let reason = "the venue no longer has a record of this order; it is not working there";
                        (cancelled(reason), Drift::Status)
                    } else {
                        plan.report.never_sent += 1;
                        let reason = "never reached the venue (its deadline passed); not re-sent";
                        (rejected(reason), Drift::NeverSent)
                    };
                    update(
                        &mut plan,
                        &mut entries,
                        &entry.client_id,
                        change,
                        Some(drift),
                    );
                }
                Some(deadline) => {
                    // The venue may still apply it (a busy venue shows an order late):
                    // unknown, and asked again each pass until the deadline passes.
                    plan.report.awaiting_deadline += 1;
                    if entry.status != OrderStatus::Unknown {
                        let change = Change::Status {
                            status: OrderStatus::Unknown,
                            reason: format!(
                                "the venue does not show it yet; it may still apply it until its deadline ({deadline} ms)"
                            ),
                        };
                        update(&mut plan, &mut entries, &entry.client_id, change, None);
                    }
                }
                // Entries written before deadlines existed keep the rule they were
                // written under.
                None if now - entry.updated_ms >= rules.legacy_grace_ms
                    || entry.status == OrderStatus::Intent =>
                {
                    plan.report.never_sent += 1;
                    let change = rejected(
                        "venue has no record of this order; it was never accepted (not re-sent)",
                    );
                    update(
                        &mut plan,
                        &mut entries,
                        &entry.client_id,
                        change,
                        Some(Drift::NeverSent),
                    );
                }
                None => {}
            },
        }
    }

    // An entry a new fill completes whose average price is still unknown: its final
    // state arrived before its fills (a pushed order update, or a venue answer without a
    // price), so nothing above priced it. Without this, the order in which the venue's
    // facts arrived would decide whether the ledger knows the entry's price.
    let mut priced = BTreeSet::new();
    for id in named_by_fresh {
        if !priced.insert(id.clone()) {
            continue;
        }
        let Some(entry) = entries.get(&id) else {
            continue;
        };
        // Only a state the venue gave (an entry still waiting for its answer is settled
        // by its lookup).
        let from_venue = matches!(
            entry.status,
            OrderStatus::PartiallyFilled | OrderStatus::Filled | OrderStatus::Cancelled
        );
        let mut next = entry.clone();
        if !from_venue || !next.price_from_fills(&all_fills) {
            continue;
        }
        let oid = next.venue_order_id.clone().unwrap_or_default();
        let fills = all_fills
            .iter()
            .filter(|f| f.venue_order_id == oid)
            .cloned()
            .collect();
        update(
            &mut plan,
            &mut entries,
            &id,
            Change::FillPrice { fills },
            None,
        );
    }

    let mut adopted_now = BTreeSet::new();
    for order in &snapshot.open_orders {
        if let Some(id) = &order.client_id {
            if entries.contains_key(id) {
                continue;
            }
        }
        // Adopted once, keyed by the venue's order id: a second pass (or a restart) finds
        // the index entry and adds nothing.
        let indexed = ledger.adopted.get(&order.venue_order_id);
        if let Some(id) = indexed {
            if entries.contains_key(id) {
                continue;
            }
        }
        if !adopted_now.insert(order.venue_order_id.clone()) {
            continue;
        }
        plan.report.adopted += 1;
        let client_id = indexed.cloned().or_else(|| order.client_id.clone());
        let mut order = order.clone();
        if order.avg_fill_price.is_none() {
            // A partly filled order whose answer has no average price takes it from its
            // fills, as an entry of ours does when the venue's answer changes it.
            order.avg_fill_price = average_price(&order, &all_fills);
        }
        plan.actions.push(Action::Adopt { order, client_id });
    }
    plan
}

/// The average price of `order`'s fills when they add up to its filled size.
fn average_price(order: &VenueOrder, fills: &[Fill]) -> Option<Decimal> {
    if order.filled_size.is_zero() {
        return None;
    }
    let (mut size, mut notional) = (Decimal::ZERO, Decimal::ZERO);
    for f in fills
        .iter()
        .filter(|f| f.venue_order_id == order.venue_order_id)
    {
        size += f.size;
        notional += f.size * f.price;
    }
    (size == order.filled_size).then(|| (notional / size).normalize())
}

/// Whether an entry the venue does not show is concluded now (its deadline, or for an
/// entry without one the legacy rule, has passed).
fn concluded(entry: &LedgerEntry, now: Millis, rules: Rules) -> bool {
    match entry.request.valid_until_ms {
        Some(deadline) => now > deadline + DEADLINE_MARGIN_MS,
        None => {
            now - entry.updated_ms >= rules.legacy_grace_ms || entry.status == OrderStatus::Intent
        }
    }
}

/// Recorded and new fills of an entry: by its venue order id, learnt from a fill with its
/// client id when the venue never acknowledged it to us (fills without a client id carry
/// the same order id).
fn fills_of(entry: &LedgerEntry, fills: &[Fill]) -> Vec<Fill> {
    let oid = entry.venue_order_id.clone().or_else(|| {
        fills
            .iter()
            .find(|f| f.client_id.as_ref() == Some(&entry.client_id))
            .map(|f| f.venue_order_id.clone())
    });
    let Some(oid) = oid else {
        return Vec::new();
    };
    fills
        .iter()
        .filter(|f| f.venue_order_id == oid)
        .cloned()
        .collect()
}

fn rejected(reason: &str) -> Change {
    Change::Status {
        status: OrderStatus::Rejected,
        reason: reason.to_string(),
    }
}

fn cancelled(reason: &str) -> Change {
    Change::Status {
        status: OrderStatus::Cancelled,
        reason: reason.to_string(),
    }
}

/// The ledger entry for an adopted venue order, under `client_id`.
pub fn adoption(
    venue: &str,
    order: &VenueOrder,
    client_id: ClientOrderId,
    now: Millis,
) -> LedgerEntry {
    let request = OrderRequest {
        client_id,
        symbol: order.symbol.clone(),
        side: order.side,
        size: order.size,
        order_type: match order.limit_price {
            Some(price) => OrderType::Limit {
                price,
                tif: TimeInForce::Gtc,
            },
            None => OrderType::Market {
                max_slippage: Decimal::ZERO,
            },
        },
        reduce_only: order.reduce_only,
        valid_until_ms: None,
    };
    let mut entry = LedgerEntry::new_intent(venue, request, ADOPTED_ORIGIN, now);
    entry.apply_venue_order(order, now);
    entry
}

#[cfg(test)]
mod tests;
