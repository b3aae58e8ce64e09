//! Gateway behaviour against a scripted in-process venue.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Actor;
use async_trait::async_trait;
use parking_lot::Mutex;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::exchanges::risk_gate::{approve_for_venue_test, RiskApproved};
use crate::exchanges::venue::{Venue, VenueResult};

/// Fills market orders at the quote, keeps limit orders resting, and can be told to lose
/// the answer of the next order, cancel or leverage update (the action still happens), to
/// reject an order, or to fail reads.
#[derive(Default)]
struct ScriptedVenue {
    state: Mutex<ScriptState>,
    place_calls: AtomicUsize,
    cancel_calls: AtomicUsize,
    leverage_calls: AtomicUsize,
    query_calls: AtomicUsize,
    /// Runs when the account is read (the order path's last read before the send).
    on_account: Mutex<Option<Box<dyn Fn() + Send>>>,
}

#[derive(Default)]
struct ScriptState {
    orders: BTreeMap<ClientOrderId, VenueOrder>,
    position: Decimal,
    lose_next_answer: bool,
    reject_next: Option<String>,
    fail_open_orders: bool,
    lose_next_cancel_answer: bool,
    fail_queries: bool,
    leverage: BTreeMap<String, u32>,
    lose_next_leverage_answer: bool,
    fail_leverage_reads: bool,
    /// Time an order takes to reach the venue's book.
    send_latency: std::time::Duration,
    /// The venue's order validity (`Venue::order_validity`).
    validity: std::time::Duration,
    /// The next order reaches the venue but is applied only by `apply_pending` (a busy
    /// venue); its answer is lost.
    lag_next_send: bool,
    /// The next order's bytes are lost on the way: the venue never sees it.
    drop_next_send: bool,
    pending: Vec<VenueOrder>,
    fills: Vec<Fill>,
    /// The next cancel's answer is lost and the venue has no record of the order.
    forget_on_cancel: bool,
    /// Every order send as it reached the venue: client id, and `epoch` at that moment.
    sends: Vec<(ClientOrderId, u64)>,
    /// Set by a test (e.g. to the gateway generation the supervisor last built).
    epoch: u64,
    /// What reached the venue, in order: `place <id>` when an order arrives, `placed
    /// <id>` when the venue answers it, `cancel <id>`, `leverage <symbol>`.
    log: Vec<String>,
}

impl ScriptedVenue {
    /// Applies the orders a lagging venue took: filled at the quote, with one fill each.
    fn apply_pending(&self) {
        let mut st = self.state.lock();
        for mut o in std::mem::take(&mut st.pending) {
            let price = if o.side == Side::Buy { ASK } else { BID };
            o.status = OrderStatus::Filled;
            o.filled_size = o.size;
            o.avg_fill_price = Some(price);
            st.position += o.side.sign() * o.size;
            let n = st.fills.len() + 1;
            st.fills.push(Fill {
                fill_id: format!("t{n}"),
                client_id: o.client_id.clone(),
                venue_order_id: o.venue_order_id.clone(),
                symbol: o.symbol.clone(),
                side: o.side,
                price,
                size: o.size,
                fee: dec!(0.01),
                closed_pnl: Decimal::ZERO,
                fee_asset: None,
                time_ms: 1_000_000 + n as i64,
            });
            // Hyperliquid's order lookup carries no average price: it comes from fills.
            o.avg_fill_price = None;
            st.orders.insert(o.client_id.clone().unwrap(), o);
        }
    }
}

const BID: Decimal = dec!(99.9);
const ASK: Decimal = dec!(100.1);

#[async_trait]
impl Venue for ScriptedVenue {
    fn name(&self) -> &str {
        "scripted"
    }
    fn order_validity(&self) -> std::time::Duration {
        self.state.lock().validity
    }
    async fn instrument(&self, symbol: &str) -> VenueResult<Instrument> {
        Ok(Instrument {
            symbol: symbol.into(),
            tick_size: dec!(0.1),
            lot_size: dec!(0.001),
            min_notional: dec!(10),
            max_leverage: 10,
        })
    }
    async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
        Ok(Quote {
            symbol: symbol.into(),
            bid: BID,
            ask: ASK,
            time_ms: 0,
            fallback: None,
        })
    }
    async fn candles(&self, _: &str, _: Timeframe, _: usize) -> VenueResult<Vec<Candle>> {
        Ok(vec![])
    }
    async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
        self.place_calls.fetch_add(1, Ordering::SeqCst);
        let latency = {
            let mut st = self.state.lock();
            let epoch = st.epoch;
            st.sends.push((order.client_id.clone(), epoch));
            st.log.push(format!("place {}", order.client_id));
            st.send_latency
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut st = self.state.lock();
        st.log.push(format!("placed {}", order.client_id));
        if std::mem::take(&mut st.drop_next_send) {
            return Err(VenueError::OutcomeUnknown {
                venue: "scripted".into(),
                reason: "connection reset".into(),
            });
        }
        if let Some(reason) = st.reject_next.take() {
            return Err(VenueError::Rejected {
                venue: "scripted".into(),
                reason,
            });
        }
        let (status, filled, avg) = match order.order_type {
            OrderType::Market { .. } => {
                let price = if order.side == Side::Buy { ASK } else { BID };
                st.position += order.side.sign() * order.size;
                (OrderStatus::Filled, order.size, Some(price))
            }
            _ => (OrderStatus::Acked, Decimal::ZERO, None),
        };
        let vo = VenueOrder {
            client_id: Some(order.client_id.clone()),
            venue_order_id: format!("v{}", st.orders.len() + 1),
            symbol: order.symbol.clone(),
            side: order.side,
            size: order.size,
            filled_size: filled,
            avg_fill_price: avg,
            limit_price: order.order_type.limit_price(),
            status,
            reduce_only: order.reduce_only,
            reject_reason: None,
            updated_ms: 0,
        };
        if std::mem::take(&mut st.lag_next_send) {
            if order.order_type.label() == "market" {
                st.position -= order.side.sign() * order.size;
            }
            let mut held = vo;
            held.status = OrderStatus::Acked;
            held.filled_size = Decimal::ZERO;
            held.avg_fill_price = None;
            st.pending.push(held);
            return Err(VenueError::OutcomeUnknown {
                venue: "scripted".into(),
                reason: "timed out".into(),
            });
        }
        st.orders.insert(order.client_id.clone(), vo.clone());
        if std::mem::take(&mut st.lose_next_answer) {
            return Err(VenueError::OutcomeUnknown {
                venue: "scripted".into(),
                reason: "connection reset".into(),
            });
        }
        Ok(vo)
    }
    async fn cancel_order(&self, _: &str, client_id: &ClientOrderId) -> VenueResult<()> {
        self.cancel_calls.fetch_add(1, Ordering::SeqCst);
        let mut st = self.state.lock();
        st.log.push(format!("cancel {client_id}"));
        if std::mem::take(&mut st.forget_on_cancel) {
            st.orders.remove(client_id);
            return Err(VenueError::OutcomeUnknown {
                venue: "scripted".into(),
                reason: "connection reset".into(),
            });
        }
        let o = st
            .orders
            .get_mut(client_id)
            .ok_or(VenueError::OrderNotFound {
                venue: "scripted".into(),
                client_id: client_id.to_string(),
            })?;
        o.status = OrderStatus::Cancelled;
        if std::mem::take(&mut st.lose_next_cancel_answer) {
            return Err(VenueError::OutcomeUnknown {
                venue: "scripted".into(),
                reason: "connection reset".into(),
            });
        }
        Ok(())
    }
    async fn query_order(
        &self,
        _: &str,
        client_id: &ClientOrderId,
    ) -> VenueResult<Option<VenueOrder>> {
        self.query_calls.fetch_add(1, Ordering::SeqCst);
        let st = self.state.lock();
        if st.fail_queries {
            return Err(VenueError::Unavailable {
                venue: "scripted".into(),
                reason: "503".into(),
            });
        }
        Ok(st.orders.get(client_id).cloned())
    }
    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
        let st = self.state.lock();
        if st.fail_open_orders {
            return Err(VenueError::Unavailable {
                venue: "scripted".into(),
                reason: "503".into(),
            });
        }
        Ok(st
            .orders
            .values()
            .filter(|o| o.status.is_open())
            .cloned()
            .collect())
    }
    async fn fills_since(&self, since: Millis) -> VenueResult<Vec<Fill>> {
        let st = self.state.lock();
        Ok(st
            .fills
            .iter()
            .filter(|f| f.time_ms >= since)
            .cloned()
            .collect())
    }
    async fn positions(&self) -> VenueResult<Vec<Position>> {
        let size = self.state.lock().position;
        Ok(vec![Position {
            symbol: "BTC".into(),
            size,
            entry_price: dec!(100),
            mark_price: dec!(100),
            unrealized_pnl: Decimal::ZERO,
            leverage: 1,
            liquidation_price: None,
            margin_used: (size * dec!(100)).abs(),
        }])
    }
    async fn account(&self) -> VenueResult<AccountSnapshot> {
        if let Some(hook) = self.on_account.lock().as_ref() {
            hook();
        }
        Ok(AccountSnapshot {
            account_value: dec!(10000),
            free_balance: dec!(10000),
            margin_used: Decimal::ZERO,
            unrealized_pnl: Decimal::ZERO,
            time_ms: 0,
        })
    }
    async fn set_leverage(&self, symbol: &str, leverage: u32) -> VenueResult<()> {
        self.leverage_calls.fetch_add(1, Ordering::SeqCst);
        let mut st = self.state.lock();
        st.log.push(format!("leverage {symbol}"));
        st.leverage.insert(symbol.to_string(), leverage);
        if std::mem::take(&mut st.lose_next_leverage_answer) {
            return Err(VenueError::OutcomeUnknown {
                venue: "scripted".into(),
                reason: "HTTP 502".into(),
            });
        }
        Ok(())
    }
    async fn leverage(&self, symbol: &str) -> VenueResult<u32> {
        let st = self.state.lock();
        if st.fail_leverage_reads {
            return Err(VenueError::Unavailable {
                venue: "scripted".into(),
                reason: "503".into(),
            });
        }
        Ok(st.leverage.get(symbol).copied().unwrap_or(1))
    }
}

use crate::clock::Millis;

fn setup(store: &Store, venue: Arc<ScriptedVenue>, limits: RiskConfig) -> Arc<GatewayCore> {
    setup_with(store, venue, limits, ManualClock::new(1_000_000)).0
}

/// A gateway on `clock`, and the connector's slot with its token (to vacate it).
fn setup_with(
    store: &Store,
    venue: Arc<ScriptedVenue>,
    limits: RiskConfig,
    clock: Arc<ManualClock>,
) -> (Arc<GatewayCore>, Slot<Connector>, u64) {
    let slot = Slot::<Connector>::new();
    let addr = Connector::new(venue).start();
    let token = slot.next_token();
    slot.fill(addr, token, "test/scripted");
    let mut venues = BTreeMap::new();
    venues.insert("scripted".to_string(), slot.clone());
    let core = GatewayCore::open(store, venues, limits, GatewayConfig::default(), clock).unwrap();
    (core, slot, token)
}

fn buy_usd(usd: Decimal) -> OrderIntent {
    OrderIntent {
        venue: "scripted".into(),
        symbol: "BTC".into(),
        side: Side::Buy,
        amount: Amount::Usd(usd),
        pricing: Pricing::Market,
        reduce_only: false,
        origin: "test".into(),
    }
}

#[actix::test]
async fn market_buy_by_usd_is_sized_to_the_lot_and_recorded() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let report = core.place(buy_usd(dec!(1000))).await.unwrap();
    // 1000 / 100.1 = 9.99000999 → 9.99 at lot 0.001
    assert_eq!(report.size, dec!(9.99));
    assert_eq!(report.status, OrderStatus::Filled);
    assert_eq!(report.avg_fill_price, Some(ASK));
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(entry.origin, "test");
}

#[actix::test]
async fn a_risk_refusal_is_recorded_and_never_sent() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    // 25% of 10000 is the margin limit.
    let err = core.place(buy_usd(dec!(3000))).await.unwrap_err();
    let GatewayError::Refused { client_id, refusal } = err else {
        panic!("expected refusal, got {err}")
    };
    assert_eq!(refusal.label(), "position_limit");
    let entry = core.ledger().get(&client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Rejected);
    assert!(entry
        .reason
        .unwrap()
        .starts_with("risk gate: resulting position margin"));
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 0);
}

#[actix::test]
async fn an_unknown_outcome_is_resolved_by_client_id_not_resent() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    venue.state.lock().lose_next_answer = true;
    let report = core.place(buy_usd(dec!(500))).await.unwrap();
    assert_eq!(
        report.status,
        OrderStatus::Filled,
        "resolved from the venue's record"
    );
    assert_eq!(
        venue.place_calls.load(Ordering::SeqCst),
        1,
        "sent exactly once"
    );
    assert_eq!(venue.state.lock().orders.len(), 1);
}

#[actix::test]
async fn a_keyed_order_already_in_the_ledger_is_answered_from_it_and_never_sent_again() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let id = ClientOrderId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let first = core
        .place_keyed(buy_usd(dec!(500)), id.clone())
        .await
        .unwrap();
    assert_eq!(first.client_id, id, "the caller's id is the order's");
    assert_eq!(first.status, OrderStatus::Filled);
    // Asked again (a restarted agent recomputing the same step): the ledger answers.
    let again = core
        .place_keyed(buy_usd(dec!(500)), id.clone())
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        venue.place_calls.load(Ordering::SeqCst),
        1,
        "sent exactly once"
    );
    // A refused keyed order is in the ledger too: asking again does not send it.
    let big = ClientOrderId::parse("fedcba9876543210fedcba9876543210").unwrap();
    let err = core
        .place_keyed(buy_usd(dec!(3000)), big.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Refused { .. }), "{err}");
    let again = core
        .place_keyed(buy_usd(dec!(3000)), big.clone())
        .await
        .unwrap();
    assert_eq!(again.status, OrderStatus::Rejected);
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn a_venue_rejection_keeps_the_venues_reason() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    venue.state.lock().reject_next = Some("Order has invalid size.".into());
    let err = core.place(buy_usd(dec!(500))).await.unwrap_err();
    assert!(err.to_string().contains("Order has invalid size."));
    let entry = &core.ledger().recent(1).unwrap()[0];
    assert_eq!(entry.status, OrderStatus::Rejected);
    assert!(entry
        .reason
        .as_deref()
        .unwrap()
        .contains("Order has invalid size."));
}

#[actix::test]
async fn reconciliation_settles_unsent_intents_and_adopts_unknown_orders() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    // An intent written just before a crash: the venue never saw it.
    let lost = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(1),
        order_type: OrderType::Market {
            max_slippage: dec!(0.01),
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    core.ledger()
        .record_intent(
            "scripted",
            &approve_for_venue_test(lost.clone(), dec!(100)),
            "test",
            1_000_000,
        )
        .await
        .unwrap();
    // An order resting at the venue that the ledger does not know.
    let mut foreign = lost.clone();
    foreign.client_id = ClientOrderId::generate();
    foreign.order_type = OrderType::Limit {
        price: dec!(90),
        tif: TimeInForce::Gtc,
    };
    venue
        .place_order(&approve_for_venue_test(foreign.clone(), dec!(100)))
        .await
        .unwrap();

    let report = core.reconcile("scripted").await.unwrap();
    assert_eq!(report.never_sent, 1);
    assert_eq!(report.adopted, 1);
    let settled = core.ledger().get(&lost.client_id).unwrap().unwrap();
    assert_eq!(settled.status, OrderStatus::Rejected);
    let adopted = core.ledger().get(&foreign.client_id).unwrap().unwrap();
    assert_eq!(
        (adopted.status, adopted.origin.as_str()),
        (OrderStatus::Acked, "external")
    );
    assert_eq!(
        venue.place_calls.load(Ordering::SeqCst),
        1,
        "nothing re-sent"
    );
}

#[actix::test]
async fn orders_wait_for_reconciliation_and_are_refused_if_it_fails() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    venue.state.lock().fail_open_orders = true;
    let core = setup(&store, venue.clone(), RiskConfig::default());
    assert!(core.reconcile("scripted").await.is_err());
    let err = core.place(buy_usd(dec!(100))).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotReady { .. }), "{err}");
    assert!(err.to_string().contains("503"));
    venue.state.lock().fail_open_orders = false;
    core.reconcile("scripted").await.unwrap();
    core.place(buy_usd(dec!(100))).await.unwrap();
}

#[actix::test]
async fn close_position_goes_in_chunks_until_flat() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let limits = RiskConfig {
        close_chunk_usd: dec!(1000),
        ..RiskConfig::default()
    };
    let core = setup(&store, venue.clone(), limits);
    core.reconcile("scripted").await.unwrap();
    venue.state.lock().position = dec!(25); // 2500 USD
    let reports = core
        .close_position("scripted", "BTC", "test")
        .await
        .unwrap();
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert!(reports
        .iter()
        .all(|r| r.side == Side::Sell && r.status == OrderStatus::Filled));
    assert_eq!(venue.state.lock().position, Decimal::ZERO);
}

#[actix::test]
async fn kill_switch_halts_survives_reopen_and_wins_over_the_risk_agent() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    core.kill_switch(true, "operator").unwrap();
    core.set_mode(TradingMode::Normal, ModeCause::RiskAgent, "risk agent")
        .unwrap();
    let err = core.place(buy_usd(dec!(100))).await.unwrap_err();
    assert!(matches!(
        err,
        GatewayError::Refused {
            refusal: Refusal::Halted { .. },
            ..
        }
    ));
    drop(core);
    let core = setup(&store, venue, RiskConfig::default());
    assert_eq!(core.mode().mode, TradingMode::Halted);
    assert!(core.mode().kill_switch);
}

#[actix::test]
async fn reconciliation_waits_for_an_order_in_flight() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    venue.state.lock().send_latency = std::time::Duration::from_millis(20);
    // Reconciliation runs continuously while orders are in flight: an intent whose send
    // has not reached the venue yet must never be judged "never sent".
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reconciler = {
        let (core, done) = (core.clone(), done.clone());
        actix::spawn(async move {
            let mut never_sent = 0;
            while !done.load(Ordering::SeqCst) {
                never_sent += core.reconcile("scripted").await.unwrap().never_sent;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            never_sent
        })
    };
    for _ in 0..10 {
        core.place(buy_usd(dec!(50))).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert_eq!(reconciler.await.unwrap(), 0);
    let entries = core.ledger().all().unwrap();
    assert_eq!(entries.len(), 10);
    assert!(
        entries
            .iter()
            .all(|e| e.status == OrderStatus::Filled && e.reason.is_none()),
        "{entries:?}"
    );
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 10);
}

#[actix::test]
async fn the_kill_switch_closes_everything_while_staying_halted() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    core.place(buy_usd(dec!(2000))).await.unwrap();
    let gateway = OrderGateway::new(core.clone()).start();
    let state = gateway
        .send(KillSwitch {
            engaged: true,
            reason: "operator".into(),
        })
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!((state.mode, state.kill_switch), (TradingMode::Halted, true));
    assert_eq!(
        venue.state.lock().position,
        Decimal::ZERO,
        "every position closed"
    );
    assert_eq!(
        core.mode().mode,
        TradingMode::Halted,
        "the halt was never lifted"
    );
    let closes: Vec<_> = core
        .ledger()
        .all()
        .unwrap()
        .into_iter()
        .filter(|e| e.origin == "kill_switch")
        .collect();
    assert!(
        !closes.is_empty()
            && closes
                .iter()
                .all(|e| e.request.reduce_only && e.status == OrderStatus::Filled)
    );
    // Outside the kill switch's own closes, a halt admits nothing, not even a close.
    venue.state.lock().position = dec!(1);
    let err = core
        .close_position("scripted", "BTC", "agent")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::Refused {
                refusal: Refusal::Halted { .. },
                ..
            }
        ),
        "{err}"
    );
}

fn resting_buy() -> OrderIntent {
    OrderIntent {
        pricing: Pricing::Limit {
            price: dec!(90),
            tif: TimeInForce::Gtc,
        },
        ..buy_usd(dec!(500))
    }
}

#[actix::test]
async fn a_cancel_whose_outcome_cannot_be_read_is_left_to_reconciliation() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let placed = core.place(resting_buy()).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Acked);
    {
        let mut st = venue.state.lock();
        st.lose_next_cancel_answer = true;
        st.fail_queries = true;
    }
    let err = core.cancel(&placed.client_id).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unresolved { .. }), "{err}");
    assert!(err.to_string().contains("nothing was sent again"), "{err}");
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(
        entry.status,
        OrderStatus::Acked,
        "unchanged until the venue says"
    );
    // Reconciliation reads the order while it is open and records the venue's state.
    venue.state.lock().fail_queries = false;
    let report = core.reconcile("scripted").await.unwrap();
    assert_eq!(report.updated, 1);
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Cancelled);
    assert_eq!(
        venue.cancel_calls.load(Ordering::SeqCst),
        1,
        "never re-sent"
    );
}

#[actix::test]
async fn a_cancel_with_a_lost_answer_takes_the_venues_state() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let placed = core.place(resting_buy()).await.unwrap();
    venue.state.lock().lose_next_cancel_answer = true;
    let report = core.cancel(&placed.client_id).await.unwrap();
    assert_eq!(report.status, OrderStatus::Cancelled);
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Cancelled);
    assert!(core.ledger().open_entries().is_empty());
    assert_eq!(venue.cancel_calls.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn a_leverage_update_with_a_lost_answer_is_read_back_now_or_at_reconciliation() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    // Read back at once: the update took.
    venue.state.lock().lose_next_leverage_answer = true;
    core.set_leverage("scripted", "BTC", 3).await.unwrap();
    assert_eq!(core.leverage_of("scripted", "BTC"), 3);
    // Not readable now: judged at the lower of old and new until reconciliation reads it.
    {
        let mut st = venue.state.lock();
        st.lose_next_leverage_answer = true;
        st.fail_leverage_reads = true;
    }
    let err = core.set_leverage("scripted", "BTC", 5).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unresolved { .. }), "{err}");
    assert_eq!(core.leverage_of("scripted", "BTC"), 3);
    // Reconciliation cannot complete without it, and orders wait for that.
    assert!(core.reconcile("scripted").await.is_err());
    venue.state.lock().fail_leverage_reads = false;
    core.reconcile("scripted").await.unwrap();
    assert_eq!(
        core.leverage_of("scripted", "BTC"),
        5,
        "the venue applied it"
    );
    assert_eq!(
        venue.leverage_calls.load(Ordering::SeqCst),
        2,
        "never re-sent"
    );
}

// ---- unknown-outcome settlement by the venue's deadline ---------------------------------

const VALIDITY: std::time::Duration = std::time::Duration::from_secs(5);

/// A gateway whose venue gives orders a 5 s deadline, reconciled once.
async fn deadline_setup(store: &Store) -> (Arc<ScriptedVenue>, Arc<GatewayCore>, Arc<ManualClock>) {
    let venue = Arc::new(ScriptedVenue::default());
    venue.state.lock().validity = VALIDITY;
    let clock = ManualClock::new(1_000_000);
    let (core, _, _) = setup_with(store, venue.clone(), RiskConfig::default(), clock.clone());
    core.reconcile("scripted").await.unwrap();
    (venue, core, clock)
}

#[actix::test]
async fn every_order_is_stamped_with_the_venues_deadline_before_its_intent() {
    let store = Store::temporary().unwrap();
    let (_venue, core, _clock) = deadline_setup(&store).await;
    let report = core.place(buy_usd(dec!(500))).await.unwrap();
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(entry.request.valid_until_ms, Some(1_000_000 + 5_000));
}

#[actix::test]
async fn an_intent_inside_its_deadline_stays_unknown_and_is_asked_again_then_is_never_sent() {
    let store = Store::temporary().unwrap();
    let (venue, core, clock) = deadline_setup(&store).await;
    // The process stopped between the durable intent and the send (or the send is still
    // on its way): the venue does not show the order, but may until its deadline.
    let mut request = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(1),
        order_type: OrderType::Market {
            max_slippage: dec!(0.01),
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    request.valid_until_ms = Some(clock.now_ms() + 5_000);
    let id = request.client_id.clone();
    core.ledger()
        .record_intent(
            "scripted",
            &approve_for_venue_test(request, dec!(100)),
            "test",
            clock.now_ms(),
        )
        .await
        .unwrap();

    let before = venue.query_calls.load(Ordering::SeqCst);
    let report = core.reconcile("scripted").await.unwrap();
    assert_eq!((report.never_sent, report.awaiting_deadline), (0, 1));
    let entry = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Unknown, "{entry:?}");
    // Still inside the window (deadline + margin): asked again, still unknown.
    clock.advance(5_000 + DEADLINE_MARGIN_MS);
    let report = core.reconcile("scripted").await.unwrap();
    assert_eq!((report.never_sent, report.awaiting_deadline), (0, 1));
    assert_eq!(venue.query_calls.load(Ordering::SeqCst), before + 2);
    assert_eq!(
        core.next_deadline_in(),
        Some(std::time::Duration::from_millis(1)),
        "the next pass is scheduled right after the deadline"
    );
    // Past it the venue can no longer apply it: never sent, final, not re-sent.
    clock.advance(1);
    let report = core.reconcile("scripted").await.unwrap();
    assert_eq!(report.never_sent, 1);
    let entry = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Rejected);
    assert!(entry
        .reason
        .unwrap()
        .contains("never reached the venue (its deadline passed)"));
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 0);
    assert_eq!(core.next_deadline_in(), None);
}

#[actix::test]
async fn a_lost_send_the_venue_never_saw_is_rejected_only_after_its_deadline() {
    let store = Store::temporary().unwrap();
    let (venue, core, clock) = deadline_setup(&store).await;
    venue.state.lock().drop_next_send = true;
    let report = core.place(buy_usd(dec!(500))).await.unwrap();
    assert_eq!(report.status, OrderStatus::Unknown);
    core.reconcile("scripted").await.unwrap();
    assert_eq!(
        core.ledger()
            .get(&report.client_id)
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Unknown
    );
    clock.advance(5_000 + DEADLINE_MARGIN_MS + 1);
    let settled = core.reconcile("scripted").await.unwrap();
    assert_eq!(settled.never_sent, 1);
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Rejected);
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 1, "never re-sent");
}

#[actix::test]
async fn a_lost_send_the_venue_applies_late_becomes_filled_without_a_stale_reason() {
    let store = Store::temporary().unwrap();
    let (venue, core, clock) = deadline_setup(&store).await;
    venue.state.lock().lag_next_send = true;
    let report = core.place(buy_usd(dec!(500))).await.unwrap();
    assert_eq!(report.status, OrderStatus::Unknown);
    assert!(report.reason.as_deref().unwrap().contains("outcome"));
    // The venue shows it only later (inside the deadline).
    let first = core.reconcile("scripted").await.unwrap();
    assert_eq!(first.awaiting_deadline, 1);
    clock.advance(3_000);
    venue.apply_pending();
    let second = core.reconcile("scripted").await.unwrap();
    assert_eq!((second.updated, second.never_sent), (1, 0));
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(entry.filled_size, report.size);
    assert_eq!(entry.avg_fill_price, Some(ASK), "from the order's fills");
    assert_eq!(entry.reason, None, "no stale 'outcome is unknown' text");
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn a_lost_cancel_the_venue_has_no_record_of_is_not_resent_and_settles_by_deadline() {
    let store = Store::temporary().unwrap();
    let (venue, core, clock) = deadline_setup(&store).await;
    let resting = core.place(resting_buy()).await.unwrap();
    assert_eq!(resting.status, OrderStatus::Acked);
    venue.state.lock().forget_on_cancel = true;
    let err = core.cancel(&resting.client_id).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unresolved { .. }), "{err}");
    assert!(
        err.to_string().contains("no order with this client id"),
        "{err}"
    );
    assert_eq!(venue.cancel_calls.load(Ordering::SeqCst), 1);
    // Open until reconciliation can conclude; the cancel is never sent again.
    assert!(!core
        .ledger()
        .get(&resting.client_id)
        .unwrap()
        .unwrap()
        .status
        .is_terminal());
    clock.advance(5_000 + DEADLINE_MARGIN_MS + 1);
    core.reconcile("scripted").await.unwrap();
    let entry = core.ledger().get(&resting.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Cancelled, "{entry:?}");
    assert_eq!(venue.cancel_calls.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn a_vacant_connector_means_never_sent_and_a_closed_one_means_unknown() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let (core, slot, token) = setup_with(
        &store,
        venue.clone(),
        RiskConfig::default(),
        ManualClock::new(1_000_000),
    );
    core.reconcile("scripted").await.unwrap();
    // The connector goes away after the order's reads, before its send.
    let vacate = slot.clone();
    *venue.on_account.lock() = Some(Box::new(move || vacate.vacate(token)));
    let err = core.place(buy_usd(dec!(500))).await.unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::ConnectorDown {
                delivery: DeliveryFailure::Vacant,
                ..
            }
        ),
        "{err}"
    );
    let entry = &core.ledger().recent(1).unwrap()[0];
    assert_eq!(entry.status, OrderStatus::Rejected, "{entry:?}");
    assert!(entry.reason.as_deref().unwrap().starts_with("never sent"));
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 0);

    // The decision is the type's: Closed and Timeout may have been sent, Vacant and Full not.
    let down = |e: SlotError| GatewayError::ConnectorDown {
        venue: "scripted".into(),
        delivery: DeliveryFailure::of(&e),
        reason: e.to_string(),
    };
    let actor = || "test/scripted".to_string();
    assert!(outcome_unknown(&down(SlotError::Closed { actor: actor() })));
    assert!(outcome_unknown(&down(SlotError::Timeout {
        actor: actor()
    })));
    assert!(!outcome_unknown(&down(SlotError::Vacant {
        actor: actor()
    })));
    assert!(!outcome_unknown(&down(SlotError::Full { actor: actor() })));
}

// ---- adoption and corrections ------------------------------------------------------------

fn external_order(oid: &str) -> VenueOrder {
    VenueOrder {
        client_id: None,
        venue_order_id: oid.into(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(2),
        filled_size: Decimal::ZERO,
        avg_fill_price: None,
        limit_price: Some(dec!(90)),
        status: OrderStatus::Acked,
        reduce_only: false,
        reject_reason: None,
        updated_ms: 0,
    }
}

#[actix::test]
async fn an_external_order_is_adopted_once_across_passes_and_restarts() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    // Placed in the venue's own UI: no client id of ours.
    let key = ClientOrderId::generate();
    venue
        .state
        .lock()
        .orders
        .insert(key.clone(), external_order("web_1"));
    let core = setup(&store, venue.clone(), RiskConfig::default());
    let first = core.reconcile("scripted").await.unwrap();
    let second = core.reconcile("scripted").await.unwrap();
    assert_eq!((first.adopted, second.adopted), (1, 0));
    assert_eq!(core.ledger().len(), 1);
    let open: Decimal = core
        .ledger()
        .open_entries()
        .iter()
        .map(|e| e.request.size)
        .sum();
    assert_eq!(open, dec!(2), "open exposure counted once");
    drop(core);

    let core = setup(&store, venue.clone(), RiskConfig::default());
    let after_restart = core.reconcile("scripted").await.unwrap();
    assert_eq!(after_restart.adopted, 0);
    assert_eq!(core.ledger().len(), 1);
    let entry = core.ledger().all().unwrap().remove(0);
    assert_eq!(
        (entry.status, entry.origin.as_str()),
        (OrderStatus::Acked, ADOPTED_ORIGIN)
    );

    // Cancelled in the venue's UI: it leaves the open orders, and the entry closes as
    // cancelled (not "never sent").
    venue.state.lock().orders.get_mut(&key).unwrap().status = OrderStatus::Cancelled;
    core.reconcile("scripted").await.unwrap();
    let entry = core.ledger().get(&entry.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Cancelled, "{entry:?}");
    assert_eq!(core.ledger().len(), 1);
}

#[actix::test]
async fn a_fill_for_a_finished_entry_reopens_and_corrects_it() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::telemetry::describe();

    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    // An entry that an earlier rule wrongly closed as never sent...
    let request = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(1),
        order_type: OrderType::Market {
            max_slippage: dec!(0.01),
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    let id = request.client_id.clone();
    core.ledger()
        .record_refusal(
            "scripted",
            request.clone(),
            "test",
            1_000_000,
            "venue has no record of this order; it was never accepted (not re-sent)".into(),
        )
        .await
        .unwrap();
    // ...that the venue applied late and filled.
    venue.state.lock().pending.push(VenueOrder {
        client_id: Some(id.clone()),
        venue_order_id: "v77".into(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(1),
        filled_size: Decimal::ZERO,
        avg_fill_price: None,
        limit_price: None,
        status: OrderStatus::Acked,
        reduce_only: false,
        reject_reason: None,
        updated_ms: 0,
    });
    venue.apply_pending();

    let report = core.reconcile("scripted").await.unwrap();
    assert_eq!((report.corrected, report.new_fills), (1, 1));
    let fixed = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(fixed.status, OrderStatus::Filled);
    assert_eq!(fixed.filled_size, dec!(1));
    assert_eq!(fixed.avg_fill_price, Some(ASK));
    assert_eq!(fixed.reason, None);
    let text = handle.render();
    assert!(
        text.contains(r#"orrery_ledger_corrections_total{venue="scripted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("# HELP orrery_ledger_corrections_total"),
        "{text}"
    );
    // A second pass finds nothing more to correct.
    assert_eq!(core.reconcile("scripted").await.unwrap().corrected, 0);
}

// ---- validation before the ledger ----------------------------------------------------------

#[actix::test]
async fn invalid_orders_are_refused_with_their_cause_and_nothing_is_written() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let with = |amount, pricing, reduce_only| OrderIntent {
        amount,
        pricing,
        reduce_only,
        ..buy_usd(Decimal::ONE)
    };
    let limit = |price| Pricing::Limit {
        price,
        tif: TimeInForce::Gtc,
    };
    let cases: Vec<(OrderIntent, &str, &str)> = vec![
        (
            with(Amount::Usd(dec!(-500)), Pricing::Market, false),
            "NegativeAmount",
            "the amount -500 USD is negative",
        ),
        (
            with(Amount::Base(dec!(-0.5)), Pricing::Market, false),
            "NegativeAmount",
            "the amount -0.5 BTC is negative",
        ),
        (
            with(Amount::Usd(Decimal::ZERO), Pricing::Market, false),
            "ZeroAmount",
            "the amount is zero",
        ),
        (
            with(Amount::Usd(dec!(500)), limit(Decimal::ZERO), false),
            "BadLimitPrice",
            "the limit price 0 is not positive",
        ),
        (
            with(Amount::Usd(dec!(500)), limit(dec!(-5)), false),
            "BadLimitPrice",
            "the limit price -5 is not positive",
        ),
        (
            with(Amount::Base(dec!(0.0004)), Pricing::Market, false),
            "BelowLot",
            "0.0004 BTC is below the lot size 0.001 BTC",
        ),
        (
            with(Amount::Usd(dec!(0.05)), Pricing::Market, false),
            "BelowLot",
            "the smallest order is 0.001 BTC",
        ),
        (
            with(Amount::Usd(dec!(5)), Pricing::Market, false),
            "BelowMinNotional",
            "is below the minimum 10 USD of BTC on venue `scripted` (lot 0.001 BTC)",
        ),
        (
            with(Amount::Usd(dec!(50)), Pricing::Market, true),
            "NothingToReduce",
            "no BTC position",
        ),
    ];
    for (intent, kind, text) in cases {
        let err = core.place(intent.clone()).await.unwrap_err();
        let GatewayError::InvalidOrder(problem) = &err else {
            panic!("{intent:?}: expected InvalidOrder, got {err}");
        };
        assert!(
            format!("{problem:?}").starts_with(kind),
            "{kind}: {problem:?}"
        );
        let message = err.to_string();
        assert!(message.contains(text), "{kind}: {message}");
        assert!(!message.contains("Usd("), "{message}");
        assert_eq!(err.label(), "invalid_order");
    }
    assert_eq!(core.ledger().len(), 0, "nothing written");
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 0, "nothing sent");
}

/// Makes the gateway actor panic, as a bug in a handler would.
struct InjectPanic;

impl Message for InjectPanic {
    type Result = ();
}

impl Handler<InjectPanic> for OrderGateway {
    type Result = ();
    fn handle(&mut self, _: InjectPanic, _: &mut Context<Self>) {
        panic!("injected gateway panic");
    }
}

/// Waits (polling, no time bound of its own beyond a generous patience) until `done`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..30_000 {
        if done() {
            return;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

#[actix::test]
async fn a_restarted_gateway_stops_every_flow_of_its_predecessor_before_it_sends() {
    use crate::supervisor::{start_root, Backoff, ChildSpec, Intensity, Strategy, SupervisorSpec};
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    // A slow venue: orders queue on the venue's lock while one is at the venue.
    venue.state.lock().send_latency = Duration::from_millis(40);
    let connector = Slot::<Connector>::new();
    let token = connector.next_token();
    connector.fill(
        Connector::new(venue.clone()).start(),
        token,
        "test/scripted",
    );
    let venues: BTreeMap<_, _> = [("scripted".to_string(), connector)].into();
    let clock = ManualClock::new(1_000_000);
    let limits = RiskConfig::default();

    // A test-local supervisor that rebuilds the gateway after a panic, as the engine's
    // does: the factory keeps one fence, and each build marks the venue's epoch.
    let fence = GatewayFence::default();
    let gateway = Slot::<OrderGateway>::new();
    let builds = Arc::new(AtomicU64::new(0));
    let (st2, venue2, builds2, clock2) =
        (store.clone(), venue.clone(), builds.clone(), clock.clone());
    let factory = move |_: &mut crate::supervisor::StartCtx<'_>| {
        let generation = builds2.fetch_add(1, Ordering::SeqCst) + 1;
        venue2.state.lock().epoch = generation;
        let core = GatewayCore::open_fenced(
            &st2,
            venues.clone(),
            limits.clone(),
            GatewayConfig::default(),
            BTreeMap::new(),
            clock2.clone(),
            &fence,
        )
        .map_err(crate::supervisor::StartError::failed)?;
        Ok(OrderGateway::new(core))
    };
    let _root = start_root(
        SupervisorSpec::new("test")
            .strategy(Strategy::OneForOne)
            .intensity(Intensity::new(10, Duration::from_secs(60)))
            .backoff(Backoff::fixed(Duration::from_millis(5)))
            .child(ChildSpec::in_slot("gateway", gateway.clone(), factory)),
        None,
    );
    eventually("the gateway to serve", || gateway.is_live()).await;

    let flows: Vec<_> = (0..50)
        .map(|_| {
            let send = gateway.send(PlaceOrder {
                intent: resting_buy(),
            });
            actix_rt::spawn(send)
        })
        .collect();
    eventually("an order at the venue", || {
        !venue.state.lock().sends.is_empty()
    })
    .await;
    let _ = gateway.send(InjectPanic).await;
    eventually("the second generation", || {
        builds.load(Ordering::SeqCst) == 2 && gateway.is_live()
    })
    .await;

    let mut superseded = 0;
    for flow in flows {
        // Each flow ends: placed, refused as superseded, or lost with the dead mailbox.
        let answer = flow.await.unwrap();
        if matches!(
            answer,
            Ok(Err(GatewayError::Superseded {
                generation: 1,
                latest: 2,
                ..
            }))
        ) {
            superseded += 1;
        }
    }
    let report = gateway
        .send(Reconcile {
            venue: "scripted".into(),
        })
        .await
        .unwrap()
        .unwrap();

    let st = venue.state.lock();
    // No flow of the first generation began a send once the second was built.
    let late: Vec<_> = st.sends.iter().filter(|(_, epoch)| *epoch >= 2).collect();
    assert!(late.is_empty(), "sent after the restart: {late:?}");
    assert!(
        superseded > 0,
        "no flow was waiting when the gateway restarted"
    );
    // Every client id reached the venue at most once.
    let mut seen = std::collections::BTreeSet::new();
    for (id, _) in &st.sends {
        assert!(seen.insert(id.clone()), "{id} was sent twice");
    }
    // Ledger == venue: each order the venue has is in the ledger with its state, and each
    // entry the venue lacks was never sent.
    let ledger = OrderLedger::open(&store, clock.clone())
        .unwrap()
        .all()
        .unwrap();
    for (id, order) in &st.orders {
        let entry = ledger
            .iter()
            .find(|e| &e.client_id == id)
            .unwrap_or_else(|| panic!("venue order {id} is not in the ledger"));
        assert_eq!(
            (entry.status, entry.filled_size),
            (order.status, order.filled_size),
            "{id}"
        );
    }
    for entry in &ledger {
        if !st.orders.contains_key(&entry.client_id) {
            assert_eq!(
                entry.status,
                OrderStatus::Rejected,
                "{}: {:?}",
                entry.client_id,
                entry.reason
            );
            assert!(!seen.contains(&entry.client_id));
        }
    }
    assert_eq!(report.drift(), 0, "{report:?}");
}

// ---- sibling connectors of one venue account ---------------------------------------------

mod siblings {
    use super::*;
    use crate::exchanges::siblings::{ConnectorProbe, ConnectorSet, ConnectorSlot};
    use crate::resilience::config::QueueConfig;
    use crate::resilience::BreakerState;
    use std::sync::atomic::AtomicBool;
    use tokio::sync::Notify;

    /// One endpoint of the scripted account: every call goes to the same account
    /// (`inner`), with this endpoint's own breaker state, call count and faults.
    struct Door {
        inner: Arc<ScriptedVenue>,
        breaker: Mutex<BreakerState>,
        calls: AtomicUsize,
        queries: AtomicUsize,
        /// Quotes wait for this before answering (a busy endpoint).
        hold_quotes: AtomicBool,
        release: Notify,
        /// Runs right after an order's send returned.
        after_place: Mutex<Option<Box<dyn Fn() + Send>>>,
    }

    impl Door {
        fn new(inner: Arc<ScriptedVenue>) -> Arc<Self> {
            Arc::new(Self {
                inner,
                breaker: Mutex::new(BreakerState::Closed),
                calls: AtomicUsize::new(0),
                queries: AtomicUsize::new(0),
                hold_quotes: AtomicBool::new(false),
                release: Notify::new(),
                after_place: Mutex::new(None),
            })
        }
        fn hit(&self) {
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Venue for Door {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn order_validity(&self) -> std::time::Duration {
            self.inner.order_validity()
        }
        async fn instrument(&self, symbol: &str) -> VenueResult<Instrument> {
            self.hit();
            self.inner.instrument(symbol).await
        }
        async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
            self.hit();
            if self.hold_quotes.load(Ordering::SeqCst) {
                self.release.notified().await;
            }
            self.inner.quote(symbol).await
        }
        async fn candles(&self, s: &str, t: Timeframe, n: usize) -> VenueResult<Vec<Candle>> {
            self.hit();
            self.inner.candles(s, t, n).await
        }
        async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
            self.hit();
            let result = self.inner.place_order(order).await;
            if let Some(hook) = self.after_place.lock().as_ref() {
                hook();
            }
            result
        }
        async fn cancel_order(&self, symbol: &str, id: &ClientOrderId) -> VenueResult<()> {
            self.hit();
            self.inner.cancel_order(symbol, id).await
        }
        async fn query_order(
            &self,
            symbol: &str,
            id: &ClientOrderId,
        ) -> VenueResult<Option<VenueOrder>> {
            self.hit();
            self.queries.fetch_add(1, Ordering::SeqCst);
            self.inner.query_order(symbol, id).await
        }
        async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
            self.hit();
            self.inner.open_orders().await
        }
        async fn fills_since(&self, since: Millis) -> VenueResult<Vec<Fill>> {
            self.hit();
            self.inner.fills_since(since).await
        }
        async fn positions(&self) -> VenueResult<Vec<Position>> {
            self.hit();
            self.inner.positions().await
        }
        async fn account(&self) -> VenueResult<AccountSnapshot> {
            self.hit();
            self.inner.account().await
        }
        async fn set_leverage(&self, symbol: &str, leverage: u32) -> VenueResult<()> {
            self.hit();
            self.inner.set_leverage(symbol, leverage).await
        }
        async fn leverage(&self, symbol: &str) -> VenueResult<u32> {
            self.hit();
            self.inner.leverage(symbol).await
        }
        fn breaker_state(&self) -> Option<BreakerState> {
            Some(*self.breaker.lock())
        }
    }

    struct Account {
        venue: Arc<ScriptedVenue>,
        doors: [Arc<Door>; 2],
        slots: [(Slot<Connector>, u64); 2],
        core: Arc<GatewayCore>,
    }

    /// One scripted account behind two connectors (`scripted#1`, `scripted#2`), each
    /// started and its probe attached.
    async fn two_doors(store: &Store) -> Account {
        let venue = Arc::new(ScriptedVenue::default());
        let doors = [Door::new(venue.clone()), Door::new(venue.clone())];
        let mut members = Vec::new();
        let mut slots = Vec::new();
        for (i, door) in doors.iter().enumerate() {
            let name = format!("scripted#{}", i + 1);
            let probe = ConnectorProbe::default();
            let slot = Slot::<Connector>::new();
            let addr = Connector::sibling(
                door.clone() as Arc<dyn Venue>,
                &QueueConfig::default(),
                &name,
                probe.clone(),
            )
            .start();
            let token = slot.next_token();
            slot.fill(addr, token, &format!("test/connector-{name}"));
            members.push(ConnectorSlot {
                name,
                endpoint: None,
                slot: slot.clone(),
                probe: probe.clone(),
            });
            slots.push((slot, token));
            eventually("the connector's probe attached", || {
                probe.breaker().is_some()
            })
            .await;
        }
        let mut venues = BTreeMap::new();
        venues.insert("scripted".to_string(), ConnectorSet::new(members));
        let core = GatewayCore::open(
            store,
            venues,
            RiskConfig::default(),
            GatewayConfig::default(),
            ManualClock::new(1_000_000),
        )
        .unwrap();
        let [a, b]: [(Slot<Connector>, u64); 2] = slots.try_into().unwrap();
        Account {
            venue,
            doors,
            slots: [a, b],
            core,
        }
    }

    fn quote() -> VenueCommand {
        VenueCommand::Quote {
            symbol: "BTC".into(),
        }
    }

    #[actix::test]
    async fn reads_go_to_the_least_busy_sibling() {
        let store = Store::temporary().unwrap();
        let acct = two_doors(&store).await;
        let [a, b] = &acct.doors;
        a.hold_quotes.store(true, Ordering::SeqCst);
        // Both idle: the first call takes the first in turn, `scripted#1`, and waits there.
        let core = acct.core.clone();
        let held = actix::spawn(async move { core.call::<Quote>("scripted", quote()).await });
        let busy = acct.slots[0].0.clone();
        eventually("the held quote in flight at scripted#1", || {
            busy.pending() == 1
        })
        .await;
        assert_eq!((a.calls(), b.calls()), (1, 0));
        // While #1 is busy every read goes to #2, whatever the turn.
        for _ in 0..4 {
            let q: Quote = acct.core.call("scripted", quote()).await.unwrap();
            assert_eq!(q.bid, BID);
        }
        assert_eq!((a.calls(), b.calls()), (1, 4));
        a.hold_quotes.store(false, Ordering::SeqCst);
        a.release.notify_one();
        assert_eq!(held.await.unwrap().unwrap().ask, ASK);
        // Idle again: the siblings share the work in turn.
        for _ in 0..4 {
            let _: Quote = acct.core.call("scripted", quote()).await.unwrap();
        }
        assert_eq!((a.calls(), b.calls()), (3, 6));
    }

    #[actix::test]
    async fn a_breaker_open_or_vacant_sibling_is_skipped_at_once() {
        let store = Store::temporary().unwrap();
        let acct = two_doors(&store).await;
        let [a, b] = &acct.doors;
        *a.breaker.lock() = BreakerState::Open;
        acct.core.reconcile("scripted").await.unwrap();
        for _ in 0..3 {
            let report = acct.core.place(buy_usd(dec!(100))).await.unwrap();
            assert_eq!(report.status, OrderStatus::Filled);
            let _: Quote = acct.core.call("scripted", quote()).await.unwrap();
        }
        assert_eq!(a.calls(), 0, "nothing went to the open breaker");
        assert!(b.calls() >= 6, "{}", b.calls());

        // #1 closes its breaker and #2 dies: orders go to #1, never fail as "never sent".
        *a.breaker.lock() = BreakerState::Closed;
        let (slot, token) = &acct.slots[1];
        slot.vacate(*token);
        let before = b.calls();
        for _ in 0..3 {
            let report = acct.core.place(buy_usd(dec!(100))).await.unwrap();
            assert_eq!(report.status, OrderStatus::Filled);
        }
        assert_eq!(b.calls(), before);
        assert_eq!(acct.venue.place_calls.load(Ordering::SeqCst), 6);
        assert_eq!(acct.venue.state.lock().orders.len(), 6);
    }

    #[actix::test]
    async fn an_unknown_outcome_is_settled_through_a_sibling_and_never_resent() {
        let store = Store::temporary().unwrap();
        let acct = two_doors(&store).await;
        let [a, b] = &acct.doors;
        acct.core.reconcile("scripted").await.unwrap();
        // The order goes through #1 (#2's breaker is open); its answer is lost, and then
        // #1's breaker opens while #2's closes: the query can only go through #2.
        *b.breaker.lock() = BreakerState::Open;
        acct.venue.state.lock().lose_next_answer = true;
        let (a2, b2) = (a.clone(), b.clone());
        *a.after_place.lock() = Some(Box::new(move || {
            *a2.breaker.lock() = BreakerState::Open;
            *b2.breaker.lock() = BreakerState::Closed;
        }));
        let report = acct.core.place(buy_usd(dec!(500))).await.unwrap();
        assert_eq!(
            report.status,
            OrderStatus::Filled,
            "settled from the venue's record"
        );
        assert_eq!(
            acct.venue.place_calls.load(Ordering::SeqCst),
            1,
            "sent once"
        );
        assert_eq!(a.queries.load(Ordering::SeqCst), 0, "#1 was not asked");
        assert!(b.queries.load(Ordering::SeqCst) >= 1, "settled through #2");
        let entry = acct.core.ledger().get(&report.client_id).unwrap().unwrap();
        assert_eq!(entry.status, OrderStatus::Filled);
    }
}

/// Cancels and leverage updates take the venue's turn as placements do: sent while an
/// order is at a slow venue, they reach it only after the venue answered that order, so
/// they never interleave with an order flow (or, across a restart, with the next
/// generation's reconciliation). Paused time: the venue's latency passes only once every
/// task waits, so a cancel that did not wait for the turn would certainly arrive first.
#[actix::test]
async fn cancels_and_leverage_updates_wait_for_the_venue_turn_of_an_order_in_flight() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let resting = core.place(resting_buy()).await.unwrap();
    assert_eq!(resting.status, OrderStatus::Acked);

    venue.state.lock().send_latency = std::time::Duration::from_secs(1);
    let placing = {
        let core = core.clone();
        actix_rt::spawn(async move { core.place(buy_usd(dec!(500))).await })
    };
    let in_flight = loop {
        if let Some((id, _)) = venue.state.lock().sends.get(1) {
            break id.clone();
        }
        tokio::task::yield_now().await;
    };
    let cancelling = {
        let (core, id) = (core.clone(), resting.client_id.clone());
        actix_rt::spawn(async move { core.cancel(&id).await })
    };
    let levering = {
        let core = core.clone();
        actix_rt::spawn(async move { core.set_leverage("scripted", "BTC", 3).await })
    };
    assert_eq!(placing.await.unwrap().unwrap().status, OrderStatus::Filled);
    assert_eq!(
        cancelling.await.unwrap().unwrap().status,
        OrderStatus::Cancelled
    );
    levering.await.unwrap().unwrap();

    let log = venue.state.lock().log.clone();
    let at = |line: String| {
        log.iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("no `{line}` in {log:?}"))
    };
    let answered = at(format!("placed {in_flight}"));
    assert!(
        at(format!("cancel {}", resting.client_id)) > answered,
        "the cancel reached the venue while an order was at it: {log:?}"
    );
    assert!(
        at("leverage BTC".to_string()) > answered,
        "the leverage update reached the venue while an order was at it: {log:?}"
    );
}

/// A replaced generation's cancel or leverage update is stopped by the fence before its
/// send: nothing reaches the venue.
#[actix::test]
async fn a_replaced_generation_sends_no_cancel_and_no_leverage_update() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let slot = Slot::<Connector>::new();
    slot.fill(
        Connector::new(venue.clone()).start(),
        slot.next_token(),
        "test/scripted",
    );
    let venues: BTreeMap<_, _> = [("scripted".to_string(), slot)].into();
    let fence = GatewayFence::default();
    let open = || {
        GatewayCore::open_fenced(
            &store,
            venues.clone(),
            RiskConfig::default(),
            GatewayConfig::default(),
            BTreeMap::new(),
            ManualClock::new(1_000_000),
            &fence,
        )
        .unwrap()
    };
    let first = open();
    first.reconcile("scripted").await.unwrap();
    let resting = first.place(resting_buy()).await.unwrap();
    let _second = open();

    let err = first.cancel(&resting.client_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::Superseded {
                generation: 1,
                latest: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = first.set_leverage("scripted", "BTC", 3).await.unwrap_err();
    assert!(matches!(err, GatewayError::Superseded { .. }), "{err}");
    assert_eq!(venue.cancel_calls.load(Ordering::SeqCst), 0);
    assert_eq!(venue.leverage_calls.load(Ordering::SeqCst), 0);
}

mod ownership;
mod pushed;
