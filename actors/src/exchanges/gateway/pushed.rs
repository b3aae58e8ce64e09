//! Order states and fills a venue pushes over its user stream, written to the ledger at
//! once with the rules of a reconciliation pass.
//!
//! Owns: turning a [`PushedUpdate`] into the [`VenueSnapshot`] it amounts to
//! ([`pushed_snapshot`], pure) so that [`reconcile::plan`] decides every change, exactly
//! as it does for a REST pass; writing that plan ([`GatewayCore::apply_pushed`]); the
//! gateway message ([`ApplyPushed`]) and the non-blocking [`PushSink`] that feeds it
//! ([`OrderGateway::push_sink`]); the `orrery_stream_pushed_total{venue,kind,outcome}`
//! counts and the `info` line of each fill recorded from a stream. Never: reads a venue,
//! sends anything, or concludes anything from what a stream did *not* say — an order is
//! never judged never sent, gone or cancelled from a push; that stays with REST
//! reconciliation, which remains the safety net and must agree.
//!
//! ## What a push may change
//!
//! - A fill is recorded once, keyed by the venue's fill id: a fill pushed twice, replayed
//!   in a snapshot (Hyperliquid's first `userFills` frame) and again live, or pushed and
//!   then read by REST is one record. Positions and PnL are accounted from the `fills`
//!   tree ([`crate::exchanges::pnl`]), so a pushed fill counts there as a reconciled one.
//! - An order state for an entry of ours is the venue's answer for it — the same
//!   `Change::Venue` a REST lookup produces — unless it is older than what the ledger
//!   holds: a state with less filled than the entry is stale and skipped, and a finished
//!   entry is never reopened by a state (only a fill that shows it wrong corrects it, as
//!   in a REST pass: from the pushed state if the update has one, else from its fills,
//!   which leaves it open for the next pass to ask the venue). Of several states of one
//!   order in one update, the most advanced (finished first, then most filled) is taken.
//! - An open order the ledger does not know (placed outside this engine) is adopted as a
//!   REST pass adopts it: once, keyed by the venue's order id. A finished one the ledger
//!   does not know is left alone, as REST (which sees only open orders) would leave it;
//!   its fills are recorded.
//! - An entry whose final state came before its fills takes its average price from them
//!   when they arrive (`Change::FillPrice`), so the order of order-update and fill frames
//!   does not change the ledger.
//!
//! A push waits for the venue's first reconciliation in this gateway generation (the
//! ledger's open entries are then current) and takes the venue's turn like a pass, so it
//! never interleaves with an order flow between its send and its answer, nor with a pass.
//!
//! ## Counting
//!
//! `orrery_stream_pushed_total{venue,kind="order"|"fill",outcome}`: `applied` (the ledger
//! changed: a fill recorded, an entry updated or adopted), `duplicate` (the ledger already
//! said as much, or the state was stale or about a finished order we do not hold),
//! `dropped` (the gateway's mailbox was full or it was restarting, or the write failed:
//! the next REST pass finds the same facts at the venue).

use super::reconcile::{self, Action, LedgerSnapshot, Plan, Rules, VenueSnapshot};
use super::*;
use crate::clock::Millis;
use crate::exchanges::stream::{PushSink, PushedUpdate};
use crate::supervisor::Slot;

/// What one pushed update changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// Orders whose entry changed or that were adopted.
    pub orders_applied: usize,
    /// Order states that changed nothing.
    pub orders_duplicate: usize,
    pub fills_applied: usize,
    /// Fills already recorded.
    pub fills_duplicate: usize,
    /// Venue orders placed outside this engine, adopted now.
    pub adopted: usize,
}

/// How far an order has got: finished beats open, then more filled beats less.
fn progress(o: &VenueOrder) -> (bool, Decimal, Millis) {
    (o.status.is_terminal(), o.filled_size, o.updated_ms)
}

/// The ledger entry a pushed order state is about: by its client id, else the adopted
/// index, else the entry holding its venue order id.
pub fn entry_of_order(ledger: &LedgerSnapshot, order: &VenueOrder) -> Option<ClientOrderId> {
    if let Some(id) = &order.client_id {
        if ledger.entries.contains_key(id) {
            return Some(id.clone());
        }
    }
    if let Some(id) = ledger.adopted.get(&order.venue_order_id) {
        if ledger.entries.contains_key(id) {
            return Some(id.clone());
        }
    }
    ledger
        .entries
        .values()
        .find(|e| e.venue_order_id.as_deref() == Some(order.venue_order_id.as_str()))
        .map(|e| e.client_id.clone())
}

/// What a pushed update amounts to for [`reconcile::plan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushedSnapshot {
    pub venue: VenueSnapshot,
    /// Venue order ids whose pushed fills were left to a REST pass: they show a finished
    /// entry wrong and the update has no state of the order that accounts for them.
    pub deferred: Vec<String>,
}

/// The venue snapshot a pushed update amounts to: its fills; per entry it names, the
/// most advanced pushed state as that entry's lookup (stale states left out); the pushed
/// open orders (for adopted entries, matched by venue order id, and for adoption). Never
/// a lookup of `None` (a stream cannot say an order does not exist), and no lookup for an
/// entry the update does not name, which is therefore left as it is. Fills that show a
/// finished entry wrong without a pushed state that accounts for them are left out
/// ([`PushedSnapshot::deferred`]).
pub fn pushed_snapshot(ledger: &LedgerSnapshot, update: &PushedUpdate) -> PushedSnapshot {
    let mut deferred = Vec::new();
    let mut best: BTreeMap<ClientOrderId, &VenueOrder> = BTreeMap::new();
    let mut unknown: BTreeMap<&str, &VenueOrder> = BTreeMap::new();
    for order in &update.orders {
        match entry_of_order(ledger, order) {
            Some(id) => {
                let slot = best.entry(id).or_insert(order);
                if progress(order) >= progress(slot) {
                    *slot = order;
                }
            }
            None => {
                let slot = unknown.entry(&order.venue_order_id).or_insert(order);
                if progress(order) >= progress(slot) {
                    *slot = order;
                }
            }
        }
    }
    let mut snapshot = VenueSnapshot {
        fills: update.fills.clone(),
        ..VenueSnapshot::default()
    };
    for (id, order) in best {
        let Some(entry) = ledger.entries.get(&id) else {
            continue;
        };
        // Older than what the ledger holds (frames and REST passes race): skipped, so a
        // push never moves an entry backwards.
        if order.filled_size < entry.filled_size {
            continue;
        }
        if order.status.is_open() {
            snapshot.open_orders.push(order.clone());
        }
        snapshot.lookups.insert(id, Some(order.clone()));
    }
    // Placed outside this engine: adopted only while open, as a REST pass adopts.
    snapshot.open_orders.extend(
        unknown
            .into_values()
            .filter(|o| o.status.is_open())
            .cloned(),
    );
    // A finished entry a pushed fill shows wrong is corrected here only from a pushed
    // state that accounts for its fills. Otherwise the correction needs the venue's
    // answer by client id (a pass would take "no such order" as a verdict, which a
    // stream cannot give), so the fills of that order are left to the pass that the
    // caller runs at once, which finds them new and corrects the entry.
    for (id, oid, by_fills) in reconcile::contradicted_entries(ledger, &update.fills) {
        let accounted =
            matches!(snapshot.lookups.get(&id), Some(Some(o)) if o.filled_size >= by_fills);
        if !accounted {
            snapshot.lookups.remove(&id);
            snapshot.open_orders.retain(|o| o.venue_order_id != oid);
            snapshot.fills.retain(|f| f.venue_order_id != oid);
            deferred.push(oid);
        }
    }
    PushedSnapshot {
        venue: snapshot,
        deferred,
    }
}

/// The plan of one pushed update: [`reconcile::plan`] over [`pushed_snapshot`].
pub fn plan_pushed(
    venue: &str,
    ledger: &LedgerSnapshot,
    update: &PushedUpdate,
    rules: Rules,
) -> Plan {
    reconcile::plan(venue, ledger, &pushed_snapshot(ledger, update).venue, rules)
}

/// How many distinct orders of `update` the plan changes (updates or adopts).
fn orders_changed(ledger: &LedgerSnapshot, update: &PushedUpdate, plan: &Plan) -> usize {
    let mut changed = BTreeSet::new();
    for order in &update.orders {
        let touched = match entry_of_order(ledger, order) {
            Some(id) => plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::Update { client_id, .. } if *client_id == id)),
            None => plan.actions.iter().any(
                |a| matches!(a, Action::Adopt { order: o, .. } if o.venue_order_id == order.venue_order_id),
            ),
        };
        if touched {
            changed.insert(order.venue_order_id.as_str());
        }
    }
    changed.len()
}

fn count(venue: &str, kind: &'static str, outcome: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!(names::STREAM_PUSHED, "venue" => venue.to_string(), "kind" => kind, "outcome" => outcome)
            .increment(n as u64);
    }
}

impl GatewayCore {
    /// Writes what a venue pushed (see the module docs for the rules). Every write is
    /// durable before it returns. An error leaves the rest for the next REST pass.
    pub async fn apply_pushed(&self, update: PushedUpdate) -> GatewayResult<PushReport> {
        let venue = update.venue.clone();
        let link = self.link(&venue)?;
        // A venue in standby (another node owns it) writes nothing of what it pushes.
        self.owned_already(&venue)?;
        if !link.reconciled_once.load(Ordering::Acquire) {
            self.ready(&venue).await?;
        }
        let serial = self.venue_turn(&venue).await?;
        self.owned_already(&venue)?;
        let recorded = self.ledger.fills(&venue)?;
        let ledger = self.ledger_snapshot(&venue, recorded, &update.orders, &update.fills)?;
        let rules = Rules {
            now: self.clock.now_ms(),
            legacy_grace_ms: (self.config.request_timeout.as_millis() as i64) * 2,
        };
        let pushed = pushed_snapshot(&ledger, &update);
        let plan = reconcile::plan(&venue, &ledger, &pushed.venue, rules);
        let orders_applied = orders_changed(&ledger, &update, &plan);
        let adopted = plan.report.adopted;
        let written = self
            .apply_plan(&venue, &ledger, plan.actions, rules.now)
            .await?;
        drop(serial);
        let mut recorded_by_pass = 0;
        if !pushed.deferred.is_empty() {
            tracing::warn!(venue = %venue, orders = ?pushed.deferred, "a pushed fill shows a finished ledger entry wrong; reconciling the venue now to correct it from the venue's answer");
            // The pass records these fills (they are new to the ledger) with the correction.
            recorded_by_pass = self.reconcile(&venue).await?.new_fills.min(
                update
                    .fills
                    .iter()
                    .filter(|f| pushed.deferred.contains(&f.venue_order_id))
                    .count(),
            );
        }
        for fill in &written {
            tracing::info!(
                venue = %venue,
                symbol = %fill.symbol,
                side = %fill.side,
                size = %fill.size.normalize(),
                price = %fill.price.normalize(),
                client_id = %fill.client_id.as_ref().map(|c| c.as_str()).unwrap_or("-"),
                venue_order_id = %fill.venue_order_id,
                snapshot = update.snapshot,
                "fill recorded from the venue's stream"
            );
        }
        let report = PushReport {
            orders_applied,
            orders_duplicate: update.orders.len().saturating_sub(orders_applied),
            fills_applied: written.len() + recorded_by_pass,
            fills_duplicate: update
                .fills
                .len()
                .saturating_sub(written.len() + recorded_by_pass),
            adopted,
        };
        count(&venue, "order", "applied", report.orders_applied);
        count(&venue, "order", "duplicate", report.orders_duplicate);
        count(&venue, "fill", "applied", report.fills_applied);
        count(&venue, "fill", "duplicate", report.fills_duplicate);
        Ok(report)
    }
}

/// Apply a venue's pushed order states and fills (see [`GatewayCore::apply_pushed`]).
#[derive(Debug, Clone)]
pub struct ApplyPushed {
    pub update: PushedUpdate,
}

impl Message for ApplyPushed {
    type Result = GatewayResult<PushReport>;
}

impl Handler<ApplyPushed> for OrderGateway {
    type Result = ResponseFuture<GatewayResult<PushReport>>;

    fn handle(&mut self, msg: ApplyPushed, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let update = msg.update;
            let (venue, orders, fills) = (
                update.venue.clone(),
                update.orders.len(),
                update.fills.len(),
            );
            let outcome = core.apply_pushed(update).await;
            if let Err(GatewayError::NotOwner { .. }) = &outcome {
                // Standby: the owner writes what its own stream pushes; nothing is lost.
                tracing::debug!(venue = %venue, orders, fills, "pushed update ignored: the venue is in standby on this node");
                count(&venue, "order", "standby", orders);
                count(&venue, "fill", "standby", fills);
            } else if let Err(e) = &outcome {
                // Delivered with try_send, so nobody awaits this answer: said here.
                tracing::warn!(venue = %venue, orders, fills, error = %e, "pushed order update not written; the next reconciliation pass reads the same from the venue");
                count(&venue, "order", "dropped", orders);
                count(&venue, "fill", "dropped", fills);
            }
            outcome
        })
    }
}

impl OrderGateway {
    /// A sink that hands each update to the gateway in `slot` without waiting: when its
    /// mailbox is full or it is restarting, the update is dropped and counted
    /// (`outcome="dropped"`), and the next reconciliation pass finds the same facts.
    pub fn push_sink(slot: Slot<OrderGateway>) -> PushSink {
        PushSink::new(move |update: PushedUpdate| {
            let (venue, orders, fills) = (
                update.venue.clone(),
                update.orders.len(),
                update.fills.len(),
            );
            match slot.try_send(ApplyPushed { update }) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(venue = %venue, orders, fills, error = %e, "pushed order update dropped; the next reconciliation pass reads the same from the venue");
                    count(&venue, "order", "dropped", orders);
                    count(&venue, "fill", "dropped", fills);
                    false
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
