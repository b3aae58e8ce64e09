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

use super::*;

impl GatewayCore {
    /// Brings the ledger in line with one venue: every open entry is looked up by client
    /// id, orders the venue has and the ledger lacks are adopted, fills are recorded.
    pub async fn reconcile(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        let link = self.link(venue)?;
        // Ahead of market data: orders wait for the lock it holds.
        let outcome = within(Priority::Medium, self.reconcile_inner(venue)).await;
        match &outcome {
            Ok(report) => {
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
            .filter(|e| {
                matches!(
                    e.status,
                    OrderStatus::Intent | OrderStatus::Submitted | OrderStatus::Unknown
                )
            })
            .filter_map(|e| e.request.valid_until_ms)
            .map(|d| d + DEADLINE_MARGIN_MS + 1)
            .filter(|&at| at > now)
            .min()
            .map(|at| Duration::from_millis((at - now) as u64))
    }

    pub(super) async fn reconcile_inner(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        // Serialised with order flows on this venue: an intent written by a flow that is
        // still waiting for the venue's answer must not be judged "never sent".
        let _serial = self.link(venue)?.order_lock.lock().await;
        let mut report = ReconcileReport::default();
        self.order_validity(venue).await?;
        let venue_open = self.open_orders(venue).await?;
        // Fills first: an order's new state below is written once, with the average price
        // its fills give when the venue's order lookup has none (Hyperliquid's has none),
        // so a crash between two writes cannot leave a filled entry without its price.
        let since = self.ledger.last_fill_ms(venue)?.unwrap_or(0);
        let fills: Vec<Fill> = self
            .call(venue, VenueCommand::FillsSince { since_ms: since })
            .await?;
        let mut new_fills = Vec::new();
        for fill in &fills {
            if self.ledger.record_fill(venue, fill).await? {
                report.new_fills += 1;
                new_fills.push(fill.clone());
            }
        }
        self.correct_finished(venue, &new_fills, &mut report)
            .await?;
        let mut fills_by_order = None;
        let now = self.clock.now_ms();
        let grace_ms = (self.config.request_timeout.as_millis() as i64) * 2;
        let open_by_oid: HashMap<&str, &VenueOrder> = venue_open
            .iter()
            .map(|o| (o.venue_order_id.as_str(), o))
            .collect();
        for entry in self
            .ledger
            .open_entries()
            .into_iter()
            .filter(|e| e.venue == venue)
        {
            report.checked += 1;
            let adopted = entry.origin == ADOPTED_ORIGIN;
            // An adopted order may carry no client id the venue knows: it is found by the
            // venue's order id among the open orders.
            let open_match = entry
                .venue_order_id
                .as_deref()
                .and_then(|oid| open_by_oid.get(oid))
                .filter(|_| adopted)
                .map(|o| (*o).clone());
            let found = match open_match {
                Some(order) => Some(order),
                None => {
                    let (s, id) = (entry.request.symbol.clone(), entry.client_id.clone());
                    self.call(
                        venue,
                        VenueCommand::QueryOrder {
                            symbol: s,
                            client_id: id,
                        },
                    )
                    .await?
                }
            };
            match found {
                Some(order) => {
                    let mut next = entry.clone();
                    if !next.apply_venue_order(&order, now) && next.reason == entry.reason {
                        continue;
                    }
                    if next.avg_fill_price.is_none() && !next.filled_size.is_zero() {
                        let by_order = match &mut fills_by_order {
                            Some(map) => map,
                            None => fills_by_order.insert(self.ledger.fills_by_order(venue)?),
                        };
                        if let Some(order_fills) = by_order.get(&order.venue_order_id) {
                            next.price_from_fills(order_fills);
                        }
                    }
                    let updated = self
                        .ledger
                        .update(&entry.client_id, |e| {
                            e.apply_venue_order(&order, now);
                            e.avg_fill_price = next.avg_fill_price;
                        })
                        .await?;
                    report.updated += 1;
                    self.drift(venue, "status");
                    self.count_order(&updated);
                }
                None if adopted => {
                    // An order placed outside this engine that the venue no longer lists
                    // and cannot be asked about by client id: its fills say what it did.
                    let oid = entry.venue_order_id.clone().unwrap_or_default();
                    let fills = self.ledger.fills_of(venue, &oid)?;
                    let filled: Decimal = fills.iter().map(|f| f.size).sum();
                    let updated = self
                        .ledger
                        .update(&entry.client_id, |e| {
                            e.filled_size = filled.max(e.filled_size);
                            e.status = if e.filled_size >= e.request.size {
                                OrderStatus::Filled
                            } else {
                                OrderStatus::Cancelled
                            };
                            e.avg_fill_price = None;
                            e.price_from_fills(&fills);
                            e.reason = (e.status == OrderStatus::Cancelled).then(|| {
                                "no longer open at the venue (closed outside this engine)".into()
                            });
                        })
                        .await?;
                    report.updated += 1;
                    self.drift(venue, "status");
                    self.count_order(&updated);
                }
                None => match entry.request.valid_until_ms {
                    Some(deadline) if now > deadline + DEADLINE_MARGIN_MS => {
                        // Past its deadline the venue refuses the order, so one it does
                        // not show now can never be applied: final, and never re-sent.
                        // One the venue once acknowledged (it has a venue order id) is
                        // no longer working there: closed as cancelled (a later fill would
                        // correct it); one it never acknowledged never reached it.
                        let acknowledged = entry.venue_order_id.is_some();
                        let updated = self
                            .ledger
                            .update(&entry.client_id, |e| {
                                if acknowledged {
                                    e.status = OrderStatus::Cancelled;
                                    e.reason = Some(
                                        "the venue no longer has a record of this order; it is not working there".into(),
                                    );
                                } else {
                                    e.status = OrderStatus::Rejected;
                                    e.reason = Some(
                                        "never reached the venue (its deadline passed); not re-sent"
                                            .into(),
                                    );
                                }
                            })
                            .await?;
                        if acknowledged {
                            report.updated += 1;
                            self.drift(venue, "status");
                        } else {
                            report.never_sent += 1;
                            self.drift(venue, "never_sent");
                        }
                        self.count_order(&updated);
                    }
                    Some(deadline) => {
                        // The venue may still apply it (a busy venue shows an order late):
                        // unknown, and asked again each pass until the deadline passes.
                        report.awaiting_deadline += 1;
                        if entry.status != OrderStatus::Unknown {
                            let reason = format!(
                                "the venue does not show it yet; it may still apply it until its deadline ({deadline} ms)"
                            );
                            let updated = self
                                .ledger
                                .update(&entry.client_id, |e| {
                                    e.status = OrderStatus::Unknown;
                                    e.reason = Some(reason);
                                })
                                .await?;
                            self.count_order(&updated);
                        }
                    }
                    // Entries written before deadlines existed keep the rule they were
                    // written under.
                    None if now - entry.updated_ms >= grace_ms
                        || entry.status == OrderStatus::Intent =>
                    {
                        let updated = self
                            .ledger
                            .update(&entry.client_id, |e| {
                                e.status = OrderStatus::Rejected;
                                e.reason = Some("venue has no record of this order; it was never accepted (not re-sent)".into());
                            })
                            .await?;
                        report.never_sent += 1;
                        self.drift(venue, "never_sent");
                        self.count_order(&updated);
                    }
                    None => {}
                },
            }
        }
        for order in venue_open {
            if let Some(id) = &order.client_id {
                if self.ledger.get(id)?.is_some() {
                    continue;
                }
            }
            // Adopted once, keyed by the venue's order id: a second pass (or a restart)
            // finds the index entry and adds nothing.
            let indexed = self.ledger.adopted(venue, &order.venue_order_id)?;
            if let Some(id) = &indexed {
                if self.ledger.get(id)?.is_some() {
                    continue;
                }
            }
            report.adopted += 1;
            self.drift(venue, "unknown_at_venue");
            let request = OrderRequest {
                client_id: indexed
                    .or_else(|| order.client_id.clone())
                    .unwrap_or_else(ClientOrderId::generate),
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
            entry.apply_venue_order(&order, now);
            self.ledger.record_adoption(&entry).await?;
        }
        self.settle_unsettled_leverage(venue).await?;
        self.account(venue).await?;
        Ok(report)
    }

    /// A new fill for an entry the ledger holds as finished (rejected, or with less filled
    /// than its fills) means the entry is wrong: it is reopened and corrected from the
    /// venue's answer by client id, or from its fills when the venue has none.
    pub(super) async fn correct_finished(
        &self,
        venue: &str,
        new_fills: &[Fill],
        report: &mut ReconcileReport,
    ) -> GatewayResult<()> {
        let mut by_oid: Option<HashMap<String, ClientOrderId>> = None;
        let mut seen = BTreeSet::new();
        for fill in new_fills {
            let id = match &fill.client_id {
                Some(id) => Some(id.clone()),
                None => match self.ledger.adopted(venue, &fill.venue_order_id)? {
                    Some(id) => Some(id),
                    None => {
                        // Venues whose fills carry no client id (Binance): by the venue's
                        // order id, from one scan of the ledger per pass that needs it.
                        let map = match &mut by_oid {
                            Some(map) => map,
                            None => by_oid.insert(
                                self.ledger
                                    .all()?
                                    .into_iter()
                                    .filter(|e| e.venue == venue)
                                    .filter_map(|e| Some((e.venue_order_id?, e.client_id)))
                                    .collect(),
                            ),
                        };
                        map.get(&fill.venue_order_id).cloned()
                    }
                },
            };
            let Some(id) = id else { continue };
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(entry) = self.ledger.get(&id)? else {
                continue;
            };
            if !entry.status.is_terminal() {
                // Open entries are settled by the lookup that follows.
                continue;
            }
            let fills = self.ledger.fills_of(venue, &fill.venue_order_id)?;
            let filled: Decimal = fills.iter().map(|f| f.size).sum();
            if entry.status != OrderStatus::Rejected && filled <= entry.filled_size {
                continue;
            }
            let (s, q) = (entry.request.symbol.clone(), id.clone());
            let found = self
                .call(
                    venue,
                    VenueCommand::QueryOrder {
                        symbol: s,
                        client_id: q,
                    },
                )
                .await?;
            let now = self.clock.now_ms();
            let oid = fill.venue_order_id.clone();
            let updated = self
                .ledger
                .update(&id, |e| {
                    match &found {
                        Some(order) => {
                            e.apply_venue_order(order, now);
                        }
                        None => {
                            e.venue_order_id = Some(oid);
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
                        e.price_from_fills(&fills);
                    }
                })
                .await?;
            report.corrected += 1;
            self.drift(venue, "corrected");
            self.count_order(&updated);
            metrics::counter!(names::LEDGER_CORRECTIONS, "venue" => venue.to_string()).increment(1);
            tracing::warn!(
                venue,
                client_id = %id,
                was = %entry.status,
                was_filled = %entry.filled_size.normalize(),
                now = %updated.status,
                filled = %updated.filled_size.normalize(),
                "a fill showed a finished ledger entry was wrong; corrected from the venue"
            );
        }
        Ok(())
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
