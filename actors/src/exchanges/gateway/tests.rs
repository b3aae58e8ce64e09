//! Gateway behaviour against a scripted in-process venue.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Actor;
use async_trait::async_trait;
use parking_lot::Mutex;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::ManualClock;

/// Fills market orders at the quote, keeps limit orders resting, and can be told to lose
/// the answer of the next order, cancel or leverage update (the action still happens), to
/// reject an order, or to fail reads.
#[derive(Default)]
struct ScriptedVenue {
    state: Mutex<ScriptState>,
    place_calls: AtomicUsize,
    cancel_calls: AtomicUsize,
    leverage_calls: AtomicUsize,
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
}

const BID: Decimal = dec!(99.9);
const ASK: Decimal = dec!(100.1);

#[async_trait]
impl Venue for ScriptedVenue {
    fn name(&self) -> &str {
        "scripted"
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
    async fn place_order(&self, order: &OrderRequest) -> VenueResult<VenueOrder> {
        self.place_calls.fetch_add(1, Ordering::SeqCst);
        let latency = self.state.lock().send_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut st = self.state.lock();
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
    async fn fills_since(&self, _: Millis) -> VenueResult<Vec<Fill>> {
        Ok(vec![])
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
    let slot = Slot::<Connector>::new();
    let addr = Connector::new(venue).start();
    slot.fill(addr, slot.next_token(), "test/scripted");
    let mut venues = BTreeMap::new();
    venues.insert("scripted".to_string(), slot);
    GatewayCore::open(
        store,
        venues,
        limits,
        GatewayConfig::default(),
        ManualClock::new(1_000_000),
    )
    .unwrap()
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
    };
    core.ledger()
        .record_intent(&LedgerEntry::new_intent(
            "scripted",
            lost.clone(),
            "test",
            1_000_000,
        ))
        .await
        .unwrap();
    // An order resting at the venue that the ledger does not know.
    let mut foreign = lost.clone();
    foreign.client_id = ClientOrderId::generate();
    foreign.order_type = OrderType::Limit {
        price: dec!(90),
        tif: TimeInForce::Gtc,
    };
    venue.place_order(&foreign).await.unwrap();

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
    core.set_mode(TradingMode::Normal, "risk agent").unwrap();
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
