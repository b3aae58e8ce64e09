//! Reconciliation of the ledger with each venue, at start and periodically.
//!
//! Owns: reading a venue's open orders, fills and order states, and bringing the ledger in
//! line with them; readiness of a venue for orders (set after its first pass); the log
//! line and drift metrics of each pass. Never: sends an order or a cancel.
//!
//! An order the venue does not show is concluded never sent only when the venue itself
//! can no longer apply it. Every order is stamped, before its intent is written, with a
//! deadline from the venue ([`Venue::order_validity`](super::venue::Venue::order_validity), kept in
//! [`OrderRequest::valid_until_ms`]): Hyperliquid signs it as the action's `expiresAfter`,
//! Binance signs `timestamp` + `recvWindow` to end at it, and both venue modules refuse to
//! send an order past it; paper's deadline is the send itself (it runs in this process, so a
//! crash ends every send). Reconciliation keeps an intent, submitted or unknown entry the
//! venue does not show as `Unknown`, asks again at every pass (and once right after the
//! earliest such deadline), and only once `now > deadline +` [`DEADLINE_MARGIN_MS`] (the
//! margin covers clock skew) records it rejected, "never reached the venue (its deadline
//! passed)". One the venue had acknowledged (it has a venue order id) and no longer knows
//! is closed as cancelled. Entries written before deadlines existed (no `valid_until_ms`)
//! keep the rule they were written under. A busy venue that applies an order late therefore
//! never meets a ledger that already called it rejected.
//!
//! No `Submitted` state is written before the send: with the deadline it would change no
//! decision. An intent and a submitted order are settled the same way (looked up until the
//! deadline, never sent again), and the extra durable write would cost one fsync per order.
//!
//! A fill whose order the ledger holds as finished but wrong (rejected, or with less
//! filled than its fills) reopens and corrects that entry from the venue's lookup, or from
//! the fills when the venue has none; each correction logs a WARN line and counts in
//! `orrery_ledger_corrections_total{venue}`. When the venue gives a definite state, an
//! entry's earlier "outcome unknown" reason is cleared.
//!
//! ## Orders placed outside this engine
//!
//! An open venue order with no client id known to the ledger (placed in the venue's own
//! UI: a Hyperliquid order without cloid, a Binance `web_...` id) is adopted once, keyed by
//! the venue's order id in the ledger's `adopted` index, with origin [`ADOPTED_ORIGIN`];
//! later passes and restarts find the index entry and add nothing. While it is open it is
//! matched by that order id; once the venue no longer lists it, its fills say whether it
//! filled, else it is recorded cancelled.

use super::reconcile::{self, Action, Drift, LedgerSnapshot, Rules, VenueSnapshot};
use super::*;
use crate::clock::Millis;

impl GatewayCore {
    /// Brings the ledger in line with one venue: every open entry is looked up by client
    /// id, orders the venue has and the ledger lacks are adopted, fills are recorded.
    ///
    /// In a cluster, only on the venue's owner after its takeover: a venue in standby
    /// answers [`GatewayError::NotOwner`] and nothing is read or written.
    pub async fn reconcile(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        self.link(venue)?;
        self.owned_already(venue)?;
        self.reconcile_owned(venue).await
    }

    /// [`GatewayCore::reconcile`] without the standby check (the takeover's own pass).
    pub(super) async fn reconcile_owned(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        let link = self.link(venue)?;
        // Ahead of market data: orders wait for the lock it holds.
        let outcome = within(Priority::Medium, self.reconcile_inner(venue)).await;
        match &outcome {
            Ok(report) => {
                self.note_pass(venue);
                link.ready_tx.send_replace(Readiness::Ready);
                let first = !link.reconciled_once.swap(true, Ordering::AcqRel);
                // One line at the first pass (what the restart restored), then only
                // when a pass changed something.
                if first || report.changed() {
                    tracing::info!(
                        venue = %venue,
                        first_pass = first,
                        checked = report.checked,
                        updated = report.updated,
                        never_sent = report.never_sent,
                        adopted = report.adopted,
                        corrected = report.corrected,
                        new_fills = report.new_fills,
                        awaiting_deadline = report.awaiting_deadline,
                        "reconciliation"
                    );
                }
            }
            Err(e) => {
                tracing::error!(venue, error = %e, "reconciliation failed; new orders are refused");
                link.ready_tx.send_replace(Readiness::Failed(e.to_string()));
            }
        }
        outcome
    }

    /// The venue's order validity ([`Venue::order_validity`](super::venue::Venue::order_validity)), read once through its
    /// connector and kept.
    pub(super) async fn order_validity(&self, venue: &str) -> GatewayResult<Duration> {
        let link = self.link(venue)?;
        if let Some(v) = *link.validity.read() {
            return Ok(v);
        }
        let v = self.call(venue, VenueCommand::OrderValidity).await?;
        *link.validity.write() = Some(v);
        Ok(v)
    }

    /// How long until the earliest deadline (plus margin) of an order whose outcome waits
    /// for it: reconciliation runs again then, so such an order is settled soon after the
    /// venue can no longer apply it rather than at the next periodic pass.
    pub fn next_deadline_in(&self) -> Option<Duration> {
        let now = self.clock.now_ms();
        self.ledger
            .open_entries()
            .iter()
            .filter(|e| e.status.awaits_outcome())
            .filter_map(|e| e.request.valid_until_ms)
            .map(|d| d + DEADLINE_MARGIN_MS + 1)
            .filter(|&at| at > now)
            .min()
            .map(|at| Duration::from_millis((at - now) as u64))
    }

    pub(super) async fn reconcile_inner(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        // Serialised with order flows on this venue: an intent written by a flow that is
        // still waiting for the venue's answer must not be judged "never sent".
        let _serial = self.venue_turn(venue).await?;
        if self.generation > 1 && !self.link(venue)?.reconciled_once.load(Ordering::Acquire) {
            // This generation's first pass after it replaced another: the flows of the
            // earlier generation have finished on this venue (they held its turn) and
            // wrote through their own ledger handle, so the open entries are read again
            // from disk. The first generation has no predecessor: its ledger, read at
            // open, is current (and a second full scan would double the start time of a
            // large ledger).
            self.ledger.reload_open(venue)?;
        }
        self.order_validity(venue).await?;
        // The venue's reads in this order: open orders, fills, then the lookups the
        // planner asks for (an order that fills between two reads is seen filled by the
        // later one).
        let open_orders = self.open_orders(venue).await?;
        let recorded = self.ledger.fills(venue)?;
        let since = recorded.iter().map(|f| f.time_ms).max().unwrap_or(0);
        let fills: Vec<Fill> = self
            .call(venue, VenueCommand::FillsSince { since_ms: since })
            .await?;
        let ledger = self.ledger_snapshot(venue, recorded, &open_orders, &fills)?;
        let mut lookups = BTreeMap::new();
        for (symbol, id) in reconcile::lookups(venue, &ledger, &open_orders, &fills) {
            let found = self
                .call(
                    venue,
                    VenueCommand::QueryOrder {
                        symbol,
                        client_id: id.clone(),
                    },
                )
                .await?;
            lookups.insert(id, found);
        }
        let snapshot = VenueSnapshot {
            open_orders,
            fills,
            lookups,
        };
        let rules = Rules {
            now: self.clock.now_ms(),
            legacy_grace_ms: (self.config.request_timeout.as_millis() as i64) * 2,
        };
        let plan = reconcile::plan(venue, &ledger, &snapshot, rules);
        self.apply_plan(venue, &ledger, plan.actions, rules.now)
            .await?;
        self.settle_unsettled_leverage(venue).await?;
        self.account(venue).await?;
        Ok(plan.report)
    }

    /// What the ledger holds that a pass over `venue` may need (see
    /// [`LedgerSnapshot::entries`]): open entries of the venue, the entries the venue's
    /// open orders and new fills name, and the adopted index for their order ids. Every
    /// entry of the venue only when a new fill carries no client id the index resolves.
    pub(super) fn ledger_snapshot(
        &self,
        venue: &str,
        recorded: Vec<Fill>,
        open_orders: &[VenueOrder],
        fills: &[Fill],
    ) -> GatewayResult<LedgerSnapshot> {
        let mut snap = LedgerSnapshot {
            fills: recorded,
            ..LedgerSnapshot::default()
        };
        for oid in open_orders
            .iter()
            .map(|o| &o.venue_order_id)
            .chain(fills.iter().map(|f| &f.venue_order_id))
        {
            if !snap.adopted.contains_key(oid) {
                if let Some(id) = self.ledger.adopted(venue, oid)? {
                    snap.adopted.insert(oid.clone(), id);
                }
            }
        }
        let mut want: BTreeSet<ClientOrderId> = snap.adopted.values().cloned().collect();
        want.extend(open_orders.iter().filter_map(|o| o.client_id.clone()));
        want.extend(fills.iter().filter_map(|f| f.client_id.clone()));
        for e in self.ledger.open_entries() {
            if e.venue == venue {
                want.remove(&e.client_id);
                snap.entries.insert(e.client_id.clone(), e);
            }
        }
        for id in want {
            if let Some(e) = self.ledger.get(&id)? {
                snap.entries.insert(id, e);
            }
        }
        if reconcile::needs_all_entries(&snap, fills) {
            // Venues whose fills carry no client id (Binance): found by the venue's order
            // id, from one scan of the ledger in the passes that need it.
            for e in self.ledger.all()? {
                if e.venue == venue && e.venue_order_id.is_some() {
                    snap.entries.entry(e.client_id.clone()).or_insert(e);
                }
            }
        }
        Ok(snap)
    }

    /// Writes a plan's actions in order, each durable before the next, with their drift
    /// metrics, order counts and correction log lines. Returns the fills it recorded (a
    /// fill another writer recorded meanwhile is not among them).
    pub(super) async fn apply_plan(
        &self,
        venue: &str,
        ledger: &LedgerSnapshot,
        actions: Vec<Action>,
        now: Millis,
    ) -> GatewayResult<Vec<Fill>> {
        let mut recorded = Vec::new();
        for action in actions {
            match action {
                Action::RecordFill(fill) => {
                    if self.ledger.record_fill(venue, &fill).await? {
                        recorded.push(fill);
                    }
                }
                Action::Update {
                    client_id,
                    change,
                    drift,
                } => {
                    let updated = self
                        .ledger
                        .update(&client_id, |e| change.apply(e, now))
                        .await?;
                    if let Some(kind) = drift {
                        self.drift(venue, kind.label());
                    }
                    self.count_order(&updated);
                    if drift == Some(Drift::Corrected) {
                        metrics::counter!(names::LEDGER_CORRECTIONS, "venue" => venue.to_string())
                            .increment(1);
                        if let Some(was) = ledger.entries.get(&client_id) {
                            tracing::warn!(
                                venue,
                                client_id = %client_id,
                                was = %was.status,
                                was_filled = %was.filled_size.normalize(),
                                now = %updated.status,
                                filled = %updated.filled_size.normalize(),
                                "a fill showed a finished ledger entry was wrong; corrected from the venue"
                            );
                        }
                    }
                }
                Action::Adopt { order, client_id } => {
                    self.drift(venue, "unknown_at_venue");
                    let id = client_id.unwrap_or_else(ClientOrderId::generate);
                    let entry = reconcile::adoption(venue, &order, id, now);
                    self.ledger.record_adoption(&entry).await?;
                }
            }
        }
        Ok(recorded)
    }

    pub(super) fn drift(&self, venue: &str, kind: &'static str) {
        metrics::counter!(names::RECONCILE_DRIFT, "venue" => venue.to_string(), "kind" => kind)
            .increment(1);
    }

    /// Reconciles every venue, returning the first failure after trying all.
    pub async fn reconcile_all(&self) -> GatewayResult<()> {
        let mut first_err = None;
        for venue in self.venue_names() {
            if let Err(e) = self.reconcile(&venue).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
