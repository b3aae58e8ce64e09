//! Operator operations on the gateway: cancel many orders at once, close part of a
//! position, and the kill switch's engage sequence.
//!
//! Owns: choosing which orders a bulk cancel covers (the ledger's open entries and the
//! venue's own open-order list), closing a percentage of a position in reduce-only chunks,
//! and the order of the kill switch's steps (halt persisted → every open order cancelled →
//! every position closed), each reporting what was done and what failed. Never: sends a
//! cancel or an order outside [`GatewayCore::cancel`] / the order path (so the ledger and
//! its unknown-outcome rules apply to every one), re-sends a cancel whose answer was lost,
//! or stops a kill switch at the first failure (what fails is reported, the rest goes on).

use super::*;

/// One order or position an operation could not settle, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFailure {
    pub venue: String,
    pub symbol: Option<String>,
    pub client_id: Option<ClientOrderId>,
    pub venue_order_id: Option<String>,
    /// [`GatewayError::label`] of the cause (`unresolved`, `not_applied`, `unknown_order`,
    /// `refused`, ...), or `no_client_id` for a venue order the ledger has not adopted.
    pub code: String,
    pub message: String,
}

impl OperationFailure {
    fn of(venue: &str, symbol: Option<&str>, id: Option<&ClientOrderId>, e: &GatewayError) -> Self {
        Self {
            venue: venue.to_string(),
            symbol: symbol.map(str::to_string),
            client_id: id.cloned(),
            venue_order_id: None,
            code: e.label().to_string(),
            message: e.to_string(),
        }
    }
}

/// What a bulk cancel did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReport {
    /// Every order a cancel was sent for, as the ledger has it afterwards: `cancelled`, or
    /// `filled` / `partially_filled` when the venue filled it first.
    pub orders: Vec<OrderReport>,
    /// Orders whose cancel failed or whose outcome is still unknown.
    pub failed: Vec<OperationFailure>,
}

impl CancelReport {
    /// Orders now cancelled.
    pub fn cancelled(&self) -> usize {
        self.orders
            .iter()
            .filter(|o| o.status == OrderStatus::Cancelled)
            .count()
    }
}

/// What closing (part of) a position did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseReport {
    pub venue: String,
    pub symbol: String,
    pub percent: u32,
    /// Signed position size (base units) before and after.
    pub size_before: Decimal,
    pub size_after: Decimal,
    /// The reduce-only orders sent, in order.
    pub orders: Vec<OrderReport>,
}

/// What engaging or releasing the kill switch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchReport {
    #[serde(flatten)]
    pub state: ModeState,
    /// Orders the kill switch cancelled (or found filled while cancelling).
    pub cancelled: Vec<OrderReport>,
    /// The reduce-only orders that closed positions.
    pub closed: Vec<OrderReport>,
    /// Cancels and closes that failed; trading stays halted regardless.
    pub failed: Vec<OperationFailure>,
}

impl GatewayCore {
    /// Cancels every open order on `venue` (or every venue), optionally of one `symbol`:
    /// the ledger's open entries and every order the venue lists as open (reconciliation
    /// runs first, so orders placed elsewhere are in the ledger and every unknown outcome
    /// has been queried). Each cancel goes through [`GatewayCore::cancel`]; a failure is
    /// reported and the rest go on. Allowed in every trading mode.
    pub async fn cancel_all(
        &self,
        venue: Option<&str>,
        symbol: Option<&str>,
    ) -> GatewayResult<CancelReport> {
        let venues: Vec<String> = match venue {
            Some(v) => vec![self.link(v).map(|_| v.to_string())?],
            None => self.venue_names(),
        };
        let wanted = |s: &str| symbol.is_none_or(|w| w == s);
        let mut report = CancelReport::default();
        for v in venues {
            if let Err(e) = self.reconcile(&v).await {
                // Still cancel what the ledger knows: a reconciliation failure (a fills
                // read, say) must not leave resting orders working.
                report
                    .failed
                    .push(OperationFailure::of(&v, symbol, None, &e));
            }
            let mut targets: BTreeMap<ClientOrderId, String> = self
                .ledger
                .open_entries()
                .into_iter()
                .filter(|e| e.venue == v && e.status.is_open() && wanted(&e.request.symbol))
                .map(|e| (e.client_id, e.request.symbol))
                .collect();
            match self.open_orders(&v).await {
                Ok(orders) => {
                    for o in orders.into_iter().filter(|o| wanted(&o.symbol)) {
                        // An order without a client id of ours was adopted by the
                        // reconciliation above under the venue's order id.
                        let adopted = match &o.client_id {
                            Some(_) => None,
                            None => self.ledger.adopted(&v, &o.venue_order_id).ok().flatten(),
                        };
                        let Some(id) = o.client_id.clone().or(adopted) else {
                            report.failed.push(OperationFailure {
                                venue: v.clone(),
                                symbol: Some(o.symbol.clone()),
                                client_id: None,
                                venue_order_id: Some(o.venue_order_id.clone()),
                                code: "no_client_id".into(),
                                message: format!(
                                    "venue order {} carries no client order id and was not adopted into the ledger (reconciliation failed?); cancel it where it was placed",
                                    o.venue_order_id
                                ),
                            });
                            continue;
                        };
                        if targets.contains_key(&id) {
                            continue;
                        }
                        let known = match self.ledger.get(&id) {
                            Ok(known) => known,
                            Err(e) => {
                                let e = GatewayError::from(e);
                                report.failed.push(OperationFailure::of(
                                    &v,
                                    Some(&o.symbol),
                                    Some(&id),
                                    &e,
                                ));
                                continue;
                            }
                        };
                        match known {
                            Some(e) if !e.status.is_terminal() => {
                                targets.insert(id, o.symbol.clone());
                            }
                            Some(e) => report.failed.push(OperationFailure {
                                venue: v.clone(),
                                symbol: Some(o.symbol.clone()),
                                client_id: Some(id),
                                venue_order_id: Some(o.venue_order_id.clone()),
                                code: "ledger_mismatch".into(),
                                message: format!(
                                    "the venue lists the order as open, the ledger as {}; reconciliation corrects the ledger, then cancel it again",
                                    e.status
                                ),
                            }),
                            None => report.failed.push(OperationFailure {
                                venue: v.clone(),
                                symbol: Some(o.symbol.clone()),
                                client_id: Some(id.clone()),
                                venue_order_id: Some(o.venue_order_id.clone()),
                                code: "unknown_order".into(),
                                message: format!(
                                    "order {id} is open at the venue but not in the ledger yet (reconciliation adopts it); cancel again after it ran"
                                ),
                            }),
                        }
                    }
                }
                Err(e) => report
                    .failed
                    .push(OperationFailure::of(&v, symbol, None, &e)),
            }
            for (id, sym) in targets {
                match self.cancel(&id).await {
                    Ok(r) => report.orders.push(r),
                    Err(e) => {
                        report
                            .failed
                            .push(OperationFailure::of(&v, Some(&sym), Some(&id), &e))
                    }
                }
            }
        }
        tracing::info!(
            venue = venue.unwrap_or("all"),
            symbol = symbol.unwrap_or("all"),
            cancelled = report.cancelled(),
            settled = report.orders.len(),
            failed = report.failed.len(),
            "bulk cancel done"
        );
        Ok(report)
    }

    /// Closes `percent` (1-100) of the position in `symbol` with reduce-only market orders
    /// of at most `risk.close_chunk_usd` each. 100 closes it to flat (as
    /// [`GatewayCore::close_position`]); less closes that share of the size, rounded down to
    /// the lot. No position: nothing is sent.
    pub async fn close_position_pct(
        &self,
        venue: &str,
        symbol: &str,
        percent: u32,
        origin: &str,
    ) -> GatewayResult<CloseReport> {
        within(Priority::High, async move {
            self.link(venue)?;
            if !(1..=100).contains(&percent) {
                return Err(GatewayError::Invalid {
                    client_id: ClientOrderId::generate(),
                    reason: format!("percent {percent} is outside 1..=100"),
                });
            }
            let size_of = |p: Option<Position>| p.map(|p| p.size).unwrap_or_default();
            let before = self.position(venue, symbol).await?;
            let size_before = size_of(before.clone());
            let mut report = CloseReport {
                venue: venue.to_string(),
                symbol: symbol.to_string(),
                percent,
                size_before,
                size_after: size_before,
                orders: Vec::new(),
            };
            let Some(position) = before else {
                return Ok(report);
            };
            if percent == 100 {
                report.orders = self
                    .close_position_with(venue, symbol, origin, false)
                    .await?;
            } else {
                let instrument = self.instrument(venue, symbol).await?;
                let target = instrument.round_size_down(
                    position.size.abs() * Decimal::from(percent) / Decimal::ONE_HUNDRED,
                );
                if target <= Decimal::ZERO {
                    return Err(GatewayError::Invalid {
                        client_id: ClientOrderId::generate(),
                        reason: format!(
                            "{percent}% of the {symbol} position {} rounds to zero at lot {}",
                            position.size, instrument.lot_size
                        ),
                    });
                }
                let side = match position.side() {
                    Some(Side::Buy) => Side::Sell,
                    _ => Side::Buy,
                };
                let mut remaining = target;
                let mut mark = position.mark_price;
                for _ in 0..MAX_CLOSE_CHUNKS {
                    if remaining <= Decimal::ZERO {
                        break;
                    }
                    let chunk = if mark > Decimal::ZERO {
                        instrument
                            .round_size_down(self.limits.close_chunk_usd / mark)
                            .max(instrument.lot_size)
                    } else {
                        remaining
                    };
                    let intent = OrderIntent {
                        venue: venue.to_string(),
                        symbol: symbol.to_string(),
                        side,
                        amount: Amount::Base(remaining.min(chunk)),
                        pricing: Pricing::Market,
                        reduce_only: true,
                        origin: origin.to_string(),
                    };
                    let placed = self.place_with(intent, false).await?;
                    let filled = placed.filled_size;
                    report.orders.push(placed);
                    if filled <= Decimal::ZERO {
                        break;
                    }
                    remaining -= filled;
                    match self.position(venue, symbol).await? {
                        Some(p) if p.side() == position.side() => mark = p.mark_price,
                        _ => break,
                    }
                }
            }
            report.size_after = size_of(self.position(venue, symbol).await?);
            tracing::info!(
                venue,
                symbol,
                percent,
                size_before = %report.size_before,
                size_after = %report.size_after,
                orders = report.orders.len(),
                "position closed by the operator"
            );
            Ok(report)
        })
        .await
    }

    /// The kill switch: the halt is persisted first (so nothing new is admitted even if
    /// this process dies next), then every open order on every venue is cancelled (a
    /// resting order could otherwise re-open exposure after the closes), then every
    /// position is closed in chunks. Failures are collected, never stop the sequence.
    pub async fn engage_kill_switch(&self, reason: &str) -> GatewayResult<KillSwitchReport> {
        let state = self.kill_switch(true, reason)?;
        // Closes follow even if the cancels could not all be done.
        let cancels = self
            .cancel_all(None, None)
            .await
            .unwrap_or_else(|e| CancelReport {
                orders: Vec::new(),
                failed: vec![OperationFailure::of("all", None, None, &e)],
            });
        let mut report = KillSwitchReport {
            state,
            cancelled: cancels.orders,
            closed: Vec::new(),
            failed: cancels.failed,
        };
        for venue in self.venue_names() {
            let positions = match self.positions(&venue).await {
                Ok(p) => p,
                Err(e) => {
                    report
                        .failed
                        .push(OperationFailure::of(&venue, None, None, &e));
                    continue;
                }
            };
            for p in positions.into_iter().filter(|p| !p.size.is_zero()) {
                // The halt is already persisted; these closes pass it as emergency closes.
                match self
                    .close_position_with(&venue, &p.symbol, "kill_switch", true)
                    .await
                {
                    Ok(orders) => report.closed.extend(orders),
                    Err(e) => {
                        report
                            .failed
                            .push(OperationFailure::of(&venue, Some(&p.symbol), None, &e))
                    }
                }
            }
        }
        if report.failed.is_empty() {
            tracing::warn!(
                cancelled = report.cancelled.len(),
                closes = report.closed.len(),
                "kill switch engaged: every open order cancelled and every position closed"
            );
        } else {
            tracing::error!(
                cancelled = report.cancelled.len(),
                closes = report.closed.len(),
                failed = ?report.failed,
                "kill switch engaged, but some cancels or closes failed; trading stays halted"
            );
        }
        Ok(report)
    }
}

gateway_message!(
    /// Cancel every open order of a venue (or all venues), optionally of one symbol.
    CancelAll { venue: Option<String>, symbol: Option<String> } -> CancelReport,
    |core, msg| within(Priority::High, core.cancel_all(msg.venue.as_deref(), msg.symbol.as_deref())).await
);
gateway_message!(
    /// Close `percent` (1-100) of one position in reduce-only chunks.
    ClosePositionPct { venue: String, symbol: String, percent: u32, origin: String } -> CloseReport,
    |core, msg| core.close_position_pct(&msg.venue, &msg.symbol, msg.percent, &msg.origin).await
);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use actix::Actor;
    use async_trait::async_trait;
    use rust_decimal_macros::dec;

    use super::*;
    use crate::clock::{ManualClock, Millis};
    use crate::exchanges::paper::{PaperConfig, PaperVenue};
    use crate::exchanges::risk_gate::RiskApproved;
    use crate::exchanges::venue::{Venue, VenueResult};

    /// The paper venue, with a switch that loses the answer of the next cancel (the cancel
    /// still happens), and a log of the order-changing calls in the order they arrived.
    struct LossyPaper {
        inner: PaperVenue,
        lose_next_cancel: AtomicBool,
        calls: parking_lot::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Venue for LossyPaper {
        fn name(&self) -> &str {
            self.inner.name()
        }
        async fn instrument(&self, s: &str) -> VenueResult<Instrument> {
            self.inner.instrument(s).await
        }
        async fn quote(&self, s: &str) -> VenueResult<Quote> {
            self.inner.quote(s).await
        }
        async fn candles(&self, s: &str, t: Timeframe, n: usize) -> VenueResult<Vec<Candle>> {
            self.inner.candles(s, t, n).await
        }
        async fn place_order(&self, o: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
            self.calls.lock().push(format!(
                "place {} {}{}",
                o.side,
                o.order_type.label(),
                if o.reduce_only { " reduce_only" } else { "" }
            ));
            self.inner.place_order(o).await
        }
        async fn cancel_by_venue_id(&self, s: &str, oid: &str) -> VenueResult<()> {
            self.calls.lock().push(format!("cancel venue order {oid}"));
            self.inner.cancel_by_venue_id(s, oid).await
        }
        async fn cancel_order(&self, s: &str, id: &ClientOrderId) -> VenueResult<()> {
            self.calls.lock().push(format!("cancel {id}"));
            self.inner.cancel_order(s, id).await?;
            if self.lose_next_cancel.swap(false, Ordering::SeqCst) {
                return Err(VenueError::OutcomeUnknown {
                    venue: "paper".into(),
                    reason: "connection reset".into(),
                });
            }
            Ok(())
        }
        async fn query_order(
            &self,
            s: &str,
            id: &ClientOrderId,
        ) -> VenueResult<Option<VenueOrder>> {
            self.inner.query_order(s, id).await
        }
        async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
            self.inner.open_orders().await
        }
        async fn fills_since(&self, t: Millis) -> VenueResult<Vec<Fill>> {
            self.inner.fills_since(t).await
        }
        async fn positions(&self) -> VenueResult<Vec<Position>> {
            self.inner.positions().await
        }
        async fn account(&self) -> VenueResult<AccountSnapshot> {
            self.inner.account().await
        }
        async fn set_leverage(&self, s: &str, l: u32) -> VenueResult<()> {
            self.inner.set_leverage(s, l).await
        }
        async fn leverage(&self, s: &str) -> VenueResult<u32> {
            self.inner.leverage(s).await
        }
    }

    /// 2026-01-01T12:00:00Z.
    const T0: Millis = 1_767_268_800_000;

    fn setup(store: &Store, limits: RiskConfig) -> (Arc<GatewayCore>, Arc<LossyPaper>) {
        let clock = ManualClock::new(T0);
        let inner =
            PaperVenue::open("paper", &PaperConfig::default(), store, clock.clone()).unwrap();
        let venue = Arc::new(LossyPaper {
            inner,
            lose_next_cancel: AtomicBool::new(false),
            calls: parking_lot::Mutex::new(Vec::new()),
        });
        let slot = Slot::<Connector>::new();
        let addr = Connector::new(venue.clone()).start();
        slot.fill(addr, slot.next_token(), "test/paper");
        let mut venues = BTreeMap::new();
        venues.insert("paper".to_string(), slot);
        let core =
            GatewayCore::open(store, venues, limits, GatewayConfig::default(), clock).unwrap();
        (core, venue)
    }

    fn order(symbol: &str, side: Side, usd: Decimal, limit: Option<Decimal>) -> OrderIntent {
        OrderIntent {
            venue: "paper".into(),
            symbol: symbol.into(),
            side,
            amount: Amount::Usd(usd),
            pricing: match limit {
                Some(price) => Pricing::Limit {
                    price,
                    tif: TimeInForce::Gtc,
                },
                None => Pricing::Market,
            },
            reduce_only: false,
            origin: "test".into(),
        }
    }

    /// A buy limit far below the market: it rests.
    async fn resting(core: &GatewayCore, symbol: &str) -> OrderReport {
        let mid = core.quote("paper", symbol).await.unwrap().mid();
        let r = core
            .place(order(
                symbol,
                Side::Buy,
                dec!(200),
                Some((mid * dec!(0.5)).round_dp(0)),
            ))
            .await
            .unwrap();
        assert_eq!(r.status, OrderStatus::Acked, "{r:?}");
        r
    }

    #[actix::test]
    async fn cancel_all_cancels_every_open_order_and_settles_a_lost_answer_by_query() {
        let store = Store::temporary().unwrap();
        let (core, venue) = setup(&store, RiskConfig::default());
        core.reconcile("paper").await.unwrap();
        let btc = resting(&core, "BTC").await;
        let eth = resting(&core, "ETH").await;
        let sol = resting(&core, "SOL").await;
        // The answer of the first cancel is lost; the venue applied it.
        venue.lose_next_cancel.store(true, Ordering::SeqCst);

        // One symbol only: the others stay open.
        let one = core.cancel_all(Some("paper"), Some("ETH")).await.unwrap();
        assert_eq!(one.failed, vec![]);
        assert_eq!(one.orders.len(), 1);
        assert_eq!(
            (one.orders[0].client_id.clone(), one.orders[0].status),
            (eth.client_id.clone(), OrderStatus::Cancelled),
            "the lost answer was settled by asking the venue"
        );

        let all = core.cancel_all(Some("paper"), None).await.unwrap();
        assert_eq!(all.failed, vec![]);
        let mut ids: Vec<_> = all.orders.iter().map(|o| o.client_id.clone()).collect();
        ids.sort();
        let mut want = vec![btc.client_id.clone(), sol.client_id.clone()];
        want.sort();
        assert_eq!(ids, want);
        assert_eq!(all.cancelled(), 2);
        assert!(core.ledger().open_entries().is_empty());
        assert!(venue.inner.open_orders().await.unwrap().is_empty());
        let cancels = venue
            .calls
            .lock()
            .iter()
            .filter(|c| c.starts_with("cancel"))
            .count();
        assert_eq!(
            cancels, 3,
            "one cancel per order; the lost one was never re-sent"
        );
        // An unknown venue is an error, not an empty success.
        assert!(matches!(
            core.cancel_all(Some("moon"), None).await,
            Err(GatewayError::UnknownVenue { .. })
        ));
    }

    #[actix::test]
    async fn cancel_all_covers_venue_orders_the_ledger_did_not_place() {
        let store = Store::temporary().unwrap();
        let (core, venue) = setup(&store, RiskConfig::default());
        core.reconcile("paper").await.unwrap();
        // Placed at the venue directly (another client of the same account).
        let mid = venue.inner.quote("BTC").await.unwrap().mid();
        let external = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "BTC".into(),
            side: Side::Buy,
            size: dec!(0.01),
            order_type: OrderType::Limit {
                price: (mid * dec!(0.5)).round_dp(0),
                tif: TimeInForce::Gtc,
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        venue
            .inner
            .place_order(&crate::exchanges::risk_gate::approve_for_venue_test(
                external.clone(),
                mid,
            ))
            .await
            .unwrap();
        let report = core.cancel_all(None, None).await.unwrap();
        assert_eq!(report.failed, vec![]);
        assert_eq!(report.cancelled(), 1);
        assert_eq!(report.orders[0].client_id, external.client_id);
        let entry = core.ledger().get(&external.client_id).unwrap().unwrap();
        assert_eq!(entry.status, OrderStatus::Cancelled, "through the ledger");
        assert!(venue.inner.open_orders().await.unwrap().is_empty());
    }

    #[actix::test]
    async fn cancel_is_accepted_while_halted() {
        let store = Store::temporary().unwrap();
        let (core, _venue) = setup(&store, RiskConfig::default());
        core.reconcile("paper").await.unwrap();
        let r = resting(&core, "BTC").await;
        core.kill_switch(true, "operator").unwrap();
        let cancelled = core.cancel(&r.client_id).await.unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        // New orders are refused while halted.
        assert!(matches!(
            core.place(order("BTC", Side::Buy, dec!(100), None)).await,
            Err(GatewayError::Refused {
                refusal: Refusal::Halted { .. },
                ..
            })
        ));
    }

    #[actix::test]
    async fn close_percent_closes_that_share_in_reduce_only_chunks() {
        let store = Store::temporary().unwrap();
        // Chunks of at most 500 USD: a 2000 USD position's half takes two orders.
        let limits = RiskConfig {
            close_chunk_usd: dec!(500),
            ..RiskConfig::default()
        };
        let (core, venue) = setup(&store, limits);
        core.reconcile("paper").await.unwrap();
        core.place(order("BTC", Side::Buy, dec!(2000), None))
            .await
            .unwrap();
        let before = core.position("paper", "BTC").await.unwrap().unwrap().size;
        let report = core
            .close_position_pct("paper", "BTC", 50, "manual")
            .await
            .unwrap();
        assert_eq!(report.size_before, before);
        let closed = report.size_before - report.size_after;
        let lot = core.instrument("paper", "BTC").await.unwrap().lot_size;
        let half = (before / dec!(2) / lot).floor() * lot;
        assert_eq!(closed, half, "{report:?}");
        assert!(report.orders.len() >= 2, "{report:?}");
        assert!(report
            .orders
            .iter()
            .all(|o| o.side == Side::Sell && o.status == OrderStatus::Filled));
        let places = venue.calls.lock().clone();
        assert!(
            places
                .iter()
                .skip(1)
                .all(|c| c == "place sell market reduce_only"),
            "{places:?}"
        );
        // Out of range, and nothing to close.
        assert!(matches!(
            core.close_position_pct("paper", "BTC", 0, "manual").await,
            Err(GatewayError::Invalid { .. })
        ));
        assert!(matches!(
            core.close_position_pct("paper", "BTC", 101, "manual").await,
            Err(GatewayError::Invalid { .. })
        ));
        let none = core
            .close_position_pct("paper", "ETH", 50, "manual")
            .await
            .unwrap();
        assert!(none.orders.is_empty() && none.size_before.is_zero());
        // 100 closes to flat.
        let all = core
            .close_position_pct("paper", "BTC", 100, "manual")
            .await
            .unwrap();
        assert!(all.size_after.is_zero(), "{all:?}");
    }

    #[actix::test]
    async fn the_kill_switch_cancels_resting_orders_before_closing_positions() {
        let store = Store::temporary().unwrap();
        let (core, venue) = setup(&store, RiskConfig::default());
        core.reconcile("paper").await.unwrap();
        core.place(order("ETH", Side::Buy, dec!(1000), None))
            .await
            .unwrap();
        let rest = resting(&core, "BTC").await;
        venue.calls.lock().clear();
        let gateway = OrderGateway::new(core.clone()).start();
        let report = gateway
            .send(KillSwitch {
                engaged: true,
                reason: "operator".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (report.state.mode, report.state.kill_switch),
            (TradingMode::Halted, true)
        );
        assert_eq!(report.failed, vec![]);
        assert_eq!(report.cancelled.len(), 1);
        assert_eq!(report.cancelled[0].client_id, rest.client_id);
        assert_eq!(report.cancelled[0].status, OrderStatus::Cancelled);
        assert!(!report.closed.is_empty());
        assert!(venue.inner.open_orders().await.unwrap().is_empty());
        assert!(core.position("paper", "ETH").await.unwrap().is_none());
        let calls = venue.calls.lock().clone();
        assert_eq!(
            calls.first().map(String::as_str),
            Some(format!("cancel {}", rest.client_id).as_str()),
            "the resting order is cancelled before any close: {calls:?}"
        );
        assert!(calls[1..]
            .iter()
            .all(|c| c == "place sell market reduce_only"));
        let entry = core.ledger().get(&rest.client_id).unwrap().unwrap();
        assert_eq!(entry.status, OrderStatus::Cancelled);
        // The JSON keeps the mode's fields at the top level.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "halted");
        assert_eq!(json["kill_switch"], true);
    }
}
