//! Pushed order updates and fills through the gateway: written at once, counted, and in
//! agreement with the REST pass that follows.

use super::*;
use crate::exchanges::stream::PushedUpdate;

/// Fills the resting order `id` at the scripted venue at `price` and returns the venue's
/// order state and fill, as a user stream would push them.
fn fill_at_venue(venue: &ScriptedVenue, id: &ClientOrderId, price: Decimal) -> (VenueOrder, Fill) {
    let mut st = venue.state.lock();
    let n = st.fills.len() + 1;
    let order = st.orders.get_mut(id).expect("the order rests at the venue");
    order.status = OrderStatus::Filled;
    order.filled_size = order.size;
    let order = order.clone();
    let fill = Fill {
        fill_id: format!("t{n}"),
        client_id: Some(id.clone()),
        venue_order_id: order.venue_order_id.clone(),
        symbol: order.symbol.clone(),
        side: order.side,
        price,
        size: order.size,
        fee: dec!(0.02),
        closed_pnl: Decimal::ZERO,
        time_ms: 1_000_000 + n as i64,
        fee_asset: None,
    };
    st.fills.push(fill.clone());
    (order, fill)
}

fn update(orders: Vec<VenueOrder>, fills: Vec<Fill>, snapshot: bool) -> PushedUpdate {
    PushedUpdate {
        venue: "scripted".into(),
        orders,
        fills,
        snapshot,
    }
}

#[actix::test]
async fn a_pushed_fill_reaches_the_ledger_before_any_pass_and_the_pass_agrees() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::telemetry::describe();
    crate::exchanges::stream::describe();

    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let report = core.place(resting_buy()).await.unwrap();
    let id = report.client_id.clone();
    assert_eq!(report.status, OrderStatus::Acked);
    let (order, fill) = fill_at_venue(&venue, &id, dec!(90));
    let queries = venue.query_calls.load(Ordering::SeqCst);

    // The fill frame first, then the order update (Hyperliquid sends them apart).
    let first = core
        .apply_pushed(update(vec![], vec![fill.clone()], false))
        .await
        .unwrap();
    assert_eq!((first.fills_applied, first.fills_duplicate), (1, 0));
    let second = core
        .apply_pushed(update(vec![order.clone()], vec![], false))
        .await
        .unwrap();
    assert_eq!((second.orders_applied, second.orders_duplicate), (1, 0));
    assert_eq!(
        venue.query_calls.load(Ordering::SeqCst),
        queries,
        "no REST read"
    );
    let entry = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(entry.filled_size, order.size);
    assert_eq!(entry.avg_fill_price, Some(dec!(90)));
    assert_eq!(core.ledger().fills("scripted").unwrap(), vec![fill.clone()]);

    // The same fill again, live and as a snapshot replay: nothing new.
    let again = core
        .apply_pushed(update(vec![order.clone()], vec![fill.clone()], true))
        .await
        .unwrap();
    assert_eq!(
        (
            again.fills_applied,
            again.fills_duplicate,
            again.orders_applied
        ),
        (0, 1, 0)
    );
    // REST finds what the stream already wrote.
    let pass = core.reconcile("scripted").await.unwrap();
    assert_eq!((pass.new_fills, pass.updated), (0, 0), "{pass:?}");
    assert_eq!(core.ledger().fills("scripted").unwrap().len(), 1);

    let text = handle.render();
    for line in [
        r#"orrery_stream_pushed_total{venue="scripted",kind="fill",outcome="applied"} 1"#,
        r#"orrery_stream_pushed_total{venue="scripted",kind="fill",outcome="duplicate"} 1"#,
        r#"orrery_stream_pushed_total{venue="scripted",kind="order",outcome="applied"} 1"#,
        r#"orrery_stream_pushed_total{venue="scripted",kind="order",outcome="duplicate"} 1"#,
        "# HELP orrery_stream_pushed_total",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[actix::test]
async fn a_stale_pushed_state_never_regresses_a_finished_entry() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let id = core.place(resting_buy()).await.unwrap().client_id;
    let resting = venue.state.lock().orders[&id].clone();
    let (order, fill) = fill_at_venue(&venue, &id, dec!(90));
    core.reconcile("scripted").await.unwrap();
    assert_eq!(
        core.ledger().get(&id).unwrap().unwrap().status,
        OrderStatus::Filled
    );
    // The "open" frame arrives late, after REST already saw the order filled.
    let late = core
        .apply_pushed(update(vec![resting], vec![fill], false))
        .await
        .unwrap();
    assert_eq!((late.orders_applied, late.fills_applied), (0, 0));
    let entry = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.filled_size),
        (OrderStatus::Filled, order.size)
    );
}

#[actix::test]
async fn an_order_placed_outside_is_adopted_once_by_push_and_pass_together() {
    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let key = ClientOrderId::generate();
    venue
        .state
        .lock()
        .orders
        .insert(key, external_order("web_9"));
    let pushed = core
        .apply_pushed(update(vec![external_order("web_9")], vec![], false))
        .await
        .unwrap();
    assert_eq!(pushed.adopted, 1);
    let pass = core.reconcile("scripted").await.unwrap();
    assert_eq!(pass.adopted, 0, "the pass finds the push's adoption");
    let again = core
        .apply_pushed(update(vec![external_order("web_9")], vec![], false))
        .await
        .unwrap();
    assert_eq!((again.adopted, again.orders_applied), (0, 0));
    assert_eq!(core.ledger().len(), 1);
    let entry = core.ledger().all().unwrap().remove(0);
    assert_eq!(entry.origin, ADOPTED_ORIGIN);
    assert_eq!(
        core.ledger().adopted("scripted", "web_9").unwrap(),
        Some(entry.client_id)
    );
}

#[actix::test]
async fn the_sink_never_blocks_and_counts_what_the_gateway_could_not_take() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let store = Store::temporary().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let core = setup(&store, venue.clone(), RiskConfig::default());
    core.reconcile("scripted").await.unwrap();
    let id = core.place(resting_buy()).await.unwrap().client_id;
    let (order, fill) = fill_at_venue(&venue, &id, dec!(90));
    // Not in the venue's REST fill history, so only the push can put it in the ledger
    // (the gateway actor reconciles as it starts).
    venue.state.lock().fills.clear();

    // A gateway restarting: its slot is vacant, the update is dropped and counted.
    let slot = Slot::<OrderGateway>::new();
    let sink = OrderGateway::push_sink(slot.clone());
    assert!(!sink.push(update(vec![order.clone()], vec![fill.clone()], false)));
    let text = handle.render();
    assert!(
        text.contains(
            r#"orrery_stream_pushed_total{venue="scripted",kind="fill",outcome="dropped"} 1"#
        ),
        "{text}"
    );
    assert!(core.ledger().fills("scripted").unwrap().is_empty());

    // Live: delivered into the gateway's mailbox and written without a pass.
    let addr = OrderGateway::new(core.clone()).start();
    let token = slot.next_token();
    slot.fill(addr, token, "test/gateway");
    assert!(sink.push(update(vec![order], vec![fill.clone()], false)));
    eventually("the pushed fill in the ledger", || {
        core.ledger().fills("scripted").unwrap() == vec![fill.clone()]
    })
    .await;
    eventually("the pushed state in the ledger", || {
        core.ledger().get(&id).unwrap().unwrap().status == OrderStatus::Filled
    })
    .await;
}
