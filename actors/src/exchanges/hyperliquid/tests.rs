//! HyperliquidVenue behind the gateway and a connector, against the stateful mock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::config::{HyperliquidConfig, KEY_VAR};
use super::mock::{Fault, MockHyperliquid};
use super::signing::{Network, PrivateKey};
use super::venue::HyperliquidVenue;
use crate::clock::system_clock;
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{
    Amount, GatewayConfig, GatewayCore, GatewayError, OrderIntent, OrderReport, Pricing,
};
use crate::exchanges::ledger::LedgerEntry;
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError};
use crate::store::trees;
use crate::store::Store;
use crate::supervisor::Slot;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const OTHER_KEY: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const VENUE: &str = "hyperliquid";

fn wallet() -> super::signing::Address {
    PrivateKey::from_hex(KEY).unwrap().address()
}

fn env_with(key: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
    move |k| (k == KEY_VAR).then_some(key).flatten().map(String::from)
}

fn config(mock: &MockHyperliquid) -> HyperliquidConfig {
    let mut cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(mock.url()),
        wallet_address: wallet().to_string(),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    cfg.resilience.retry.backoff.base = Duration::from_millis(10);
    cfg
}

fn venue(mock: &MockHyperliquid, key: Option<&'static str>) -> Arc<HyperliquidVenue> {
    Arc::new(HyperliquidVenue::open(VENUE, &config(mock), &env_with(key), system_clock()).unwrap())
}

fn mock() -> MockHyperliquid {
    MockHyperliquid::start(wallet(), Network::Testnet)
}

async fn gateway(store: &Store, venue: Arc<HyperliquidVenue>) -> Arc<GatewayCore> {
    let slot = Slot::<Connector>::new();
    let addr = Connector::new(venue).start();
    slot.fill(addr, slot.next_token(), "test/hyperliquid");
    let core = GatewayCore::open(
        store,
        BTreeMap::from([(VENUE.to_string(), slot)]),
        RiskConfig::default(),
        GatewayConfig {
            request_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        system_clock(),
    )
    .unwrap();
    core.reconcile(VENUE).await.unwrap();
    core
}

fn intent(side: Side, amount: Amount, pricing: Pricing) -> OrderIntent {
    OrderIntent {
        venue: VENUE.into(),
        symbol: "BTC".into(),
        side,
        amount,
        pricing,
        reduce_only: false,
        origin: "test".into(),
    }
}

/// Through the real risk gate, with a view that admits the order: these tests are about
/// the venue. The reference price is the mock's BTC mid (book 59999 / 60001), which the
/// venue bounds a market order's slippage from.
fn approved(request: &OrderRequest) -> crate::exchanges::risk_gate::RiskApproved<OrderRequest> {
    crate::exchanges::risk_gate::approve_for_venue_test(request.clone(), dec!(60000))
}

fn limit(side: Side, size: Decimal, price: Decimal, tif: TimeInForce) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side,
        size,
        order_type: OrderType::Limit { price, tif },
        reduce_only: false,
        valid_until_ms: None,
    }
}

#[actix::test]
async fn ioc_market_order_is_filled_and_signed_by_the_wallet() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let report = core
        .place(intent(Side::Buy, Amount::Usd(dec!(1000)), Pricing::Market))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Filled);
    assert_eq!(report.size, dec!(0.01666)); // 1000 / 60001 at 5 decimals
    assert_eq!(report.avg_fill_price, Some(dec!(60001)));
    assert_eq!(mock.position("BTC"), dec!(0.01666));
    let sent = mock.order_actions();
    assert_eq!(sent.len(), 1);
    let order = &sent[0]["action"]["orders"][0];
    assert_eq!(order["t"]["limit"]["tif"], "Ioc");
    // Buy bound: mid 60000 × 1.01 on the grid, rounded toward mid.
    assert_eq!(order["p"], "60600");
    assert_eq!(order["c"], report.client_id.to_hex128());
    // The mock only applies actions whose signature recovers to the wallet.
    assert_eq!(
        mock.order(&report.client_id.to_hex128()).unwrap().status,
        "filled"
    );
}

/// The venue bounds a market order's slippage from the reference price the gateway read
/// (carried by the risk-approved order), so the order path reads the market once.
#[actix::test]
async fn a_market_order_is_bounded_from_the_gateways_quote_without_a_second_read() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let before = mock.requests().len();
    let report = core
        .place(intent(Side::Sell, Amount::Usd(dec!(1000)), Pricing::Market))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Filled);
    let info: Vec<String> = mock.requests()[before..]
        .iter()
        .filter(|r| r.route() == "/info")
        .filter_map(|r| r.body_json()?["type"].as_str().map(str::to_string))
        .collect();
    assert!(
        !info.iter().any(|t| t == "allMids"),
        "the venue read the market again: {info:?}"
    );
    assert_eq!(
        info.iter().filter(|t| *t == "l2Book").count(),
        1,
        "{info:?}"
    );
    // Sell bound: the gateway's mid 60000 × 0.99 on the grid.
    let sent = mock.order_actions();
    assert_eq!(sent.last().unwrap()["action"]["orders"][0]["p"], "59400");
}

#[actix::test]
async fn gtc_order_rests_then_is_cancelled_by_cloid() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.01)),
            Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Acked);
    let open = core.open_orders(VENUE).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].client_id.as_ref(), Some(&report.client_id));
    let cancelled = core.cancel(&report.client_id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        mock.order(&report.client_id.to_hex128()).unwrap().status,
        "canceled"
    );
    // A second cancel at the venue keeps the venue's words.
    let v = venue(&mock, Some(KEY));
    let err = v.cancel_order("BTC", &report.client_id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("Order was never placed, already canceled, or filled."),
        "{err}"
    );
}

#[actix::test]
async fn resting_order_fills_when_the_price_moves_and_reconciliation_sees_it() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.01)),
            Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        ))
        .await
        .unwrap();
    mock.set_book("BTC", dec!(58990), dec!(58995), dec!(10));
    let rec = core.reconcile(VENUE).await.unwrap();
    assert_eq!(rec.updated, 1);
    assert_eq!(rec.new_fills, 1);
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(entry.filled_size, dec!(0.01));
}

#[actix::test]
async fn trigger_stop_loss_waits_then_fires() {
    let mock = mock();
    let v = venue(&mock, Some(KEY));
    let buy = v
        .place_order(&approved(&OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "BTC".into(),
            side: Side::Buy,
            size: dec!(0.01),
            order_type: OrderType::Market {
                max_slippage: dec!(0.01),
            },
            reduce_only: false,
            valid_until_ms: None,
        }))
        .await
        .unwrap();
    assert_eq!(buy.status, OrderStatus::Filled);
    let sl = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Sell,
        size: dec!(0.01),
        order_type: OrderType::Trigger {
            trigger_price: dec!(59000),
            kind: TriggerKind::StopLoss,
            limit_price: None,
        },
        reduce_only: true,
        valid_until_ms: None,
    };
    let placed = v.place_order(&approved(&sl)).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Acked);
    let wire = &mock.order_actions()[1]["action"]["orders"][0];
    assert_eq!(wire["t"]["trigger"]["tpsl"], "sl");
    assert_eq!(wire["t"]["trigger"]["isMarket"], true);
    assert_eq!(wire["r"], true);
    let seen = v.query_order("BTC", &sl.client_id).await.unwrap().unwrap();
    assert_eq!(seen.status, OrderStatus::Acked);
    mock.set_book("BTC", dec!(58900), dec!(58902), dec!(10));
    let seen = v.query_order("BTC", &sl.client_id).await.unwrap().unwrap();
    assert_eq!(seen.status, OrderStatus::Filled);
    assert_eq!(mock.position("BTC"), Decimal::ZERO);
}

#[actix::test]
async fn leverage_update_and_schedule_cancel_reach_the_venue() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let v = venue(&mock, Some(KEY));
    let core = gateway(&store, v.clone()).await;
    core.set_leverage(VENUE, "BTC", 3).await.unwrap();
    assert_eq!(mock.leverage("BTC"), Some(3));
    let err = v.set_leverage("BTC", 80).await.unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
    v.schedule_cancel(Some(1_900_000_000_000)).await.unwrap();
    assert_eq!(mock.scheduled_cancel(), Some(1_900_000_000_000));
    let limit = v.user_rate_limit().await.unwrap();
    assert_eq!(limit.n_requests_cap, 10000);
}

#[actix::test]
async fn partial_fill_of_an_ioc_cancels_the_rest() {
    let mock = mock();
    mock.set_book("BTC", dec!(59999), dec!(60001), dec!(0.004));
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let report = core
        .place(intent(Side::Buy, Amount::Base(dec!(0.01)), Pricing::Market))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Cancelled);
    assert_eq!(report.filled_size, dec!(0.004));
    assert_eq!(mock.position("BTC"), dec!(0.004));
    let seen = venue(&mock, Some(KEY))
        .query_order("BTC", &report.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (seen.status, seen.filled_size),
        (OrderStatus::Cancelled, dec!(0.004))
    );
}

#[actix::test]
async fn a_429_holds_every_request_until_the_retry_time() {
    let mock = mock();
    let v = venue(&mock, Some(KEY));
    v.instrument("BTC").await.unwrap();
    // Hyperliquid's 429 has no Retry-After: the configured pause (1s) applies.
    assert_eq!(config(&mock).rate_limited_pause, Duration::from_secs(1));
    mock.fail_next_exchange(Fault::RateLimited);
    let err = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.01),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap_err();
    let VenueError::RateLimited { retry_after, .. } = err else {
        panic!("expected rate limited, got {err}");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(1)));
    // An order never waits out the pause: refused at once with the time left, not sent.
    let order = approved(&limit(Side::Buy, dec!(0.01), dec!(59000), TimeInForce::Gtc));
    let refused = v.place_order(&order).await.unwrap_err();
    let VenueError::RateLimited {
        retry_after: Some(left),
        reason,
        ..
    } = &refused
    else {
        panic!("expected rate limited, got {refused}");
    };
    assert!(*left <= Duration::from_secs(1), "{left:?}");
    assert!(reason.contains("never waits out a pause"), "{reason}");
    assert_eq!(mock.exchange_arrivals().len(), 1, "refused without sending");
    // The caller sends it again once the time the refusal named has passed.
    let second = loop {
        match v.place_order(&order).await {
            Err(VenueError::RateLimited {
                retry_after: Some(left),
                ..
            }) => tokio::time::sleep(left).await,
            other => break other.unwrap(),
        }
    };
    assert_eq!(second.status, OrderStatus::Acked);
    let at = mock.exchange_arrivals();
    assert_eq!(at.len(), 2, "nothing was sent during the pause");
    assert!(
        at[1] - at[0] >= Duration::from_millis(990),
        "{:?}",
        at[1] - at[0]
    );
    // A deadline shorter than the pause fails at once without sending.
    let mut cfg = config(&mock);
    cfg.request_timeout = Duration::from_millis(300);
    let short = HyperliquidVenue::open(VENUE, &cfg, &env_with(Some(KEY)), system_clock()).unwrap();
    short.instrument("BTC").await.unwrap();
    mock.fail_next_exchange(Fault::RateLimited);
    let order = limit(Side::Buy, dec!(0.01), dec!(59000), TimeInForce::Gtc);
    assert!(short.place_order(&approved(&order)).await.is_err());
    let err = short.place_order(&approved(&order)).await.unwrap_err();
    assert!(matches!(err, VenueError::RateLimited { .. }), "{err}");
    assert_eq!(mock.exchange_arrivals().len(), 3);
}

#[actix::test]
async fn over_the_ip_weight_budget_the_venue_answers_429_null_and_reads_wait_out_the_pause() {
    let mock = mock();
    // Room for meta (weight 20) and two l2Book reads (2 each) per minute.
    mock.set_ip_weight_limit(24, Duration::from_secs(60));
    let v = venue(&mock, Some(KEY));
    v.instrument("BTC").await.unwrap();
    v.quote("BTC").await.unwrap();
    v.quote("BTC").await.unwrap();
    let started = std::time::Instant::now();
    let err = v.quote("BTC").await.unwrap_err();
    let VenueError::RateLimited {
        retry_after,
        reason,
        ..
    } = &err
    else {
        panic!("expected rate limited, got {err}");
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(1)));
    assert!(
        reason.contains("HTTP 429 on l2Book") && reason.contains("weight budget"),
        "{reason}"
    );
    // The read retried only after the pause, within its 2 s deadline.
    let l2_books = mock
        .requests()
        .iter()
        .filter(|r| r.body_json().is_some_and(|b| b["type"] == "l2Book"))
        .count();
    assert!((3..=4).contains(&l2_books), "{l2_books} l2Book requests");
    assert!(started.elapsed() >= Duration::from_millis(990));
    // The answer itself: 429, `null`, no Retry-After.
    let raw = reqwest::Client::new()
        .post(format!("{}/info", mock.url()))
        .json(&serde_json::json!({"type": "l2Book", "coin": "BTC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 429);
    assert!(raw.headers().get("retry-after").is_none());
    assert_eq!(raw.headers()["content-type"], "application/json");
    assert_eq!(raw.text().await.unwrap(), "null");
}

async fn unknown_outcome_is_resolved_by_cloid(fault: Fault) {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    mock.fail_next_exchange(fault.clone());
    let report = core
        .place(intent(Side::Buy, Amount::Usd(dec!(1000)), Pricing::Market))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Filled, "{fault:?}");
    assert_eq!(report.filled_size, dec!(0.01666));
    // Settled from the venue: the "outcome of the order is unknown" text of the lost
    // answer no longer describes the order, so a filled entry carries no reason (issue 9,
    // item 0; the transition from `unknown` with that reason is in the log).
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(entry.reason, None);
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(
        mock.order_sends_with_cloid(&report.client_id.to_hex128()),
        1
    );
    assert_eq!(mock.order_actions().len(), 1);
    assert_eq!(mock.position("BTC"), dec!(0.01666));
}

#[actix::test]
async fn http_500_on_an_order_is_resolved_by_client_id_and_not_resent() {
    unknown_outcome_is_resolved_by_cloid(Fault::ServerErrorAfterApply).await;
}

#[actix::test]
async fn connection_reset_mid_order_is_resolved_by_client_id_and_not_resent() {
    unknown_outcome_is_resolved_by_cloid(Fault::ResetAfterApply).await;
}

#[actix::test]
async fn malformed_order_answer_is_a_typed_unknown_outcome_recorded_in_the_ledger() {
    unknown_outcome_is_resolved_by_cloid(Fault::MalformedAfterApply).await;
    let mock = mock();
    let v = venue(&mock, Some(KEY));
    mock.fail_next_exchange(Fault::MalformedAfterApply);
    let err = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.01),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap_err();
    let VenueError::OutcomeUnknown { reason, .. } = &err else {
        panic!("expected outcome unknown, got {err}");
    };
    assert!(reason.contains("unreadable answer to order"), "{reason}");
    // A malformed read is Malformed once retries are spent, never a panic.
    for _ in 0..8 {
        mock.fail_next_info(Fault::MalformedAfterApply);
    }
    let err = venue(&mock, Some(KEY)).quote("BTC").await.unwrap_err();
    assert!(matches!(err, VenueError::Malformed { .. }), "{err}");
}

#[actix::test]
async fn hang_on_an_order_is_an_unknown_outcome() {
    let mock = mock();
    let mut cfg = config(&mock);
    cfg.request_timeout = Duration::from_millis(500);
    let v = HyperliquidVenue::open(VENUE, &cfg, &env_with(Some(KEY)), system_clock()).unwrap();
    v.instrument("BTC").await.unwrap();
    mock.fail_next_exchange(Fault::HangAfterApply);
    let order = limit(Side::Buy, dec!(0.01), dec!(59000), TimeInForce::Gtc);
    let err = v.place_order(&approved(&order)).await.unwrap_err();
    assert!(matches!(err, VenueError::OutcomeUnknown { .. }), "{err}");
    let seen = v
        .query_order("BTC", &order.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.status, OrderStatus::Acked);
}

#[actix::test]
async fn venue_rejections_keep_the_venues_message() {
    let mock = mock();
    let v = venue(&mock, Some(KEY));
    // Min notional: 0.0001 BTC × 59000 < $10.
    let small = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.0001),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap();
    assert_eq!(small.status, OrderStatus::Rejected);
    assert_eq!(
        small.reject_reason.as_deref(),
        Some("Order must have minimum value of $10. asset=0")
    );
    // Lot: the venue changed BTC's size decimals after we cached meta.
    mock.set_sz_decimals("BTC", 3);
    let lot = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.0012),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap();
    assert_eq!(
        lot.reject_reason.as_deref(),
        Some("Order has invalid size.")
    );
    // The rejection dropped the cached grid: the next off-lot order is refused locally.
    let err = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.0012),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
    // Tick: ETH now allows no price decimals.
    let eth = |price| OrderRequest {
        symbol: "ETH".into(),
        ..limit(Side::Buy, dec!(0.01), price, TimeInForce::Gtc)
    };
    v.instrument("ETH").await.unwrap();
    mock.set_sz_decimals("ETH", 6);
    let tick = v.place_order(&approved(&eth(dec!(2999.5)))).await.unwrap();
    assert_eq!(
        tick.reject_reason.as_deref(),
        Some("Price must be divisible by tick size. asset=1")
    );
    // An IOC that cannot match, and a post-only that would.
    let ioc = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.001),
            dec!(59000),
            TimeInForce::Ioc,
        )))
        .await
        .unwrap();
    assert_eq!(
        ioc.reject_reason.as_deref(),
        Some("Order could not immediately match against any resting orders. asset=0")
    );
    let alo = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.001),
            dec!(61000),
            TimeInForce::Alo,
        )))
        .await
        .unwrap();
    assert!(alo
        .reject_reason
        .unwrap()
        .starts_with("Post only order would have immediately matched"));
    // Through the gateway the venue's words land in the ledger.
    let store = Store::temporary().unwrap();
    let core = gateway(&store, v.clone()).await;
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.001)),
            Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Ioc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Rejected);
    assert_eq!(
        report.reason.as_deref(),
        Some("Order could not immediately match against any resting orders. asset=0")
    );
}

#[actix::test]
async fn without_a_key_reads_work_and_orders_fail_naming_the_variables() {
    let mock = mock();
    let v = venue(&mock, None);
    let q = v.quote("BTC").await.unwrap();
    assert_eq!((q.bid, q.ask), (dec!(59999), dec!(60001)));
    assert_eq!(v.candles("BTC", Timeframe::M1, 5).await.unwrap().len(), 5);
    assert!(v.account().await.unwrap().account_value > Decimal::ZERO);
    let err = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.01),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::Auth { .. }));
    let text = err.to_string();
    assert!(
        text.contains("HYPER_LIQUID_ETH_PRIVATE_KEY") && text.contains("HYPER_LIQUID_KEY"),
        "{text}"
    );
    assert!(mock.order_actions().is_empty());
    assert!(!format!("{:?}", venue(&mock, Some(KEY))).contains("0123456789"));
}

#[actix::test]
async fn a_signature_from_another_key_is_refused_with_the_venues_words() {
    let mock = mock();
    let v = venue(&mock, Some(OTHER_KEY));
    let err = v
        .place_order(&approved(&limit(
            Side::Buy,
            dec!(0.01),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap_err();
    let other = PrivateKey::from_hex(OTHER_KEY).unwrap().address();
    assert!(matches!(err, VenueError::Auth { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("User or API Wallet {other} does not exist.")),
        "{err}"
    );
    assert!(mock.orders().is_empty());
}

#[actix::test]
async fn nonces_strictly_increase() {
    let mock = mock();
    let v = venue(&mock, Some(KEY));
    for _ in 0..5 {
        v.place_order(&approved(&limit(
            Side::Buy,
            dec!(0.001),
            dec!(59000),
            TimeInForce::Gtc,
        )))
        .await
        .unwrap();
    }
    let nonces: Vec<u64> = mock
        .order_actions()
        .iter()
        .map(|b| b["nonce"].as_u64().unwrap())
        .collect();
    assert!(nonces.windows(2).all(|w| w[0] < w[1]), "{nonces:?}");
}

#[actix::test]
async fn gateway_errors_stay_typed_for_unknown_symbols() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let err = core
        .place(OrderIntent {
            symbol: "NOPE".into(),
            ..intent(Side::Buy, Amount::Usd(dec!(100)), Pricing::Market)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::Venue(VenueError::UnknownSymbol { .. })),
        "{err}"
    );
}

/// A GTC buy resting at 59000 through the gateway.
async fn resting_buy(core: &GatewayCore) -> OrderReport {
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.01)),
            Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Acked);
    report
}

#[actix::test]
async fn a_cancel_reset_after_it_applied_is_recorded_cancelled_and_not_resent() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let placed = resting_buy(&core).await;
    let cloid = placed.client_id.to_hex128();
    mock.fail_next_exchange(Fault::ResetAfterApply);
    let report = core.cancel(&placed.client_id).await.unwrap();
    assert_eq!(report.status, OrderStatus::Cancelled);
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Cancelled);
    assert_eq!(mock.order(&cloid).unwrap().status, "canceled");
    assert_eq!(mock.cancels_of_cloid(&cloid), 1, "no second cancel");
}

#[actix::test]
async fn a_cancel_lost_in_a_502_leaves_the_order_open_in_the_ledger_and_is_not_resent() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let placed = resting_buy(&core).await;
    let cloid = placed.client_id.to_hex128();
    mock.fail_next_exchange(Fault::BadGatewayNotApplied);
    let err = core.cancel(&placed.client_id).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotApplied { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 502"), "{err}");
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Acked, "the venue's true state");
    assert!(
        entry
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("cancel was not re-sent"),
        "{:?}",
        entry.reason
    );
    assert_eq!(mock.order(&cloid).unwrap().status, "open");
    assert_eq!(mock.cancels_of_cloid(&cloid), 1, "no second cancel");
}

#[actix::test]
async fn an_order_that_filled_before_a_lost_cancel_is_recorded_filled() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let placed = resting_buy(&core).await;
    let cloid = placed.client_id.to_hex128();
    mock.set_book("BTC", dec!(58990), dec!(58995), dec!(10));
    mock.fail_next_exchange(Fault::ServerErrorAfterApply);
    let report = core.cancel(&placed.client_id).await.unwrap();
    assert_eq!(
        (report.status, report.filled_size),
        (OrderStatus::Filled, dec!(0.01))
    );
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.filled_size),
        (OrderStatus::Filled, dec!(0.01))
    );
    assert_eq!(mock.order(&cloid).unwrap().status, "filled");
    assert_eq!(mock.cancels_of_cloid(&cloid), 1, "no second cancel");
}

#[actix::test]
async fn a_leverage_update_with_an_unknown_outcome_is_read_back_from_the_venue() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    // Applied, answer lost: the venue's 3x is read back and recorded.
    mock.fail_next_exchange(Fault::ResetAfterApply);
    core.set_leverage(VENUE, "BTC", 3).await.unwrap();
    assert_eq!(mock.leverage("BTC"), Some(3));
    assert_eq!(core.leverage_of(VENUE, "BTC"), 3);
    // Never applied: the venue still says 3x, which is what the gateway records.
    mock.fail_next_exchange(Fault::BadGatewayNotApplied);
    let err = core.set_leverage(VENUE, "BTC", 5).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotApplied { .. }), "{err}");
    assert!(err.to_string().contains("the venue reports 3x"), "{err}");
    assert_eq!(mock.leverage("BTC"), Some(3));
    assert_eq!(core.leverage_of(VENUE, "BTC"), 3);
    assert_eq!(
        mock.actions("updateLeverage").len(),
        2,
        "one send per update"
    );
    let reads = mock
        .requests()
        .into_iter()
        .filter_map(|r| r.body_json())
        .filter(|b| b["type"] == "activeAssetData" && b["coin"] == "BTC")
        .count();
    assert_eq!(reads, 2);
}

#[actix::test]
async fn answers_lost_in_a_crash_are_restored_exactly_by_reconciliation() {
    let mock = mock();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let filled = core
        .place(intent(Side::Buy, Amount::Usd(dec!(1000)), Pricing::Market))
        .await
        .unwrap();
    let resting = resting_buy(&core).await;
    assert_eq!(filled.status, OrderStatus::Filled);
    drop(core);
    // The answers are written without a flush: a crash can leave each entry as the
    // intent that was flushed before the send.
    let orders = store.tree::<LedgerEntry>(trees::ORDERS).unwrap();
    for id in [&filled.client_id, &resting.client_id] {
        let entry = orders.get(id.as_str()).unwrap().unwrap();
        let intent = LedgerEntry::new_intent(
            VENUE,
            entry.request.clone(),
            &entry.origin,
            entry.created_ms,
        );
        orders.put(id.as_str(), &intent).unwrap();
    }
    // Restart: the ledger reopens with both open, and the gateway reconciles before use.
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    for ack in [&filled, &resting] {
        let entry = core.ledger().get(&ack.client_id).unwrap().unwrap();
        assert_eq!(
            (entry.status, entry.filled_size, entry.avg_fill_price),
            (ack.status, ack.filled_size, ack.avg_fill_price),
            "{}",
            ack.client_id
        );
    }
    assert_eq!(mock.order_actions().len(), 2, "nothing re-sent");
}

// ---- expiresAfter: every order carries its deadline ----------------------------------------

#[test]
fn expires_after_is_hashed_after_the_vault_marker_as_the_sdk_does() {
    use super::signing::{connection_id, connection_id_expiring};
    use sha3::{Digest, Keccak256};
    let msgpack = b"\x81\xa4type\xa5order";
    let (nonce, expires) = (1_700_000_000_123u64, 1_700_000_010_123u64);
    // The Python SDK's action_hash: msgpack ‖ nonce (8 BE) ‖ 0x00 (no vault) ‖ 0x00 ‖
    // expires_after (8 BE).
    let mut expected = Keccak256::new();
    expected.update(msgpack);
    expected.update(nonce.to_be_bytes());
    expected.update([0x00]);
    expected.update([0x00]);
    expected.update(expires.to_be_bytes());
    let expected: [u8; 32] = expected.finalize().into();
    assert_eq!(
        connection_id_expiring(msgpack, nonce, None, Some(expires)),
        expected
    );
    // Without an expiry the hash is the one of every published vector.
    assert_eq!(
        connection_id_expiring(msgpack, nonce, None, None),
        connection_id(msgpack, nonce, None)
    );
}

#[test]
fn a_signed_order_carries_expires_after_and_recovers_only_with_it() {
    use super::actions::Action;
    use super::signing::recover_l1_signer_expiring;
    let key = PrivateKey::from_hex(KEY).unwrap();
    let action = Action::orders(vec![]);
    let request = action
        .clone()
        .sign_expiring(&key, 5, None, Some(9_000), Network::Testnet)
        .unwrap();
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(body["expiresAfter"], 9_000);
    let recover = |expires| {
        recover_l1_signer_expiring(
            &action,
            action.label(),
            5,
            None,
            expires,
            Network::Testnet,
            &request.signature,
        )
        .unwrap()
    };
    assert_eq!(recover(Some(9_000)), wallet());
    assert_ne!(recover(Some(9_001)), wallet());
    assert_ne!(recover(None), wallet());
    // Unexpiring actions send `null`, as the SDK does.
    let plain = action.sign(&key, 5, None, Network::Testnet).unwrap();
    assert_eq!(
        serde_json::to_value(&plain).unwrap()["expiresAfter"],
        serde_json::Value::Null
    );
}

#[actix::test]
async fn orders_are_signed_with_their_deadline_and_the_venue_refuses_expired_ones() {
    let mock = mock();
    let v = venue(&mock, Some(KEY));
    assert_eq!(v.order_validity(), Duration::from_secs(2));
    let now = chrono::Utc::now().timestamp_millis();
    let mut order = limit(Side::Buy, dec!(0.001), dec!(59000), TimeInForce::Gtc);
    order.valid_until_ms = Some(now + 2_000);
    let placed = v.place_order(&approved(&order)).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Acked);
    let sent = mock.order_actions();
    assert_eq!(sent[0]["expiresAfter"], now + 2_000);
    // The mock applied it only after checking the signature over the expiry too.
    assert!(mock.order(&order.client_id.to_hex128()).is_some());

    // Past its deadline the venue never sends it.
    let mut late = limit(Side::Buy, dec!(0.001), dec!(59000), TimeInForce::Gtc);
    late.valid_until_ms = Some(now - 1);
    let err = v.place_order(&approved(&late)).await.unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
    assert!(err.to_string().contains("not sent"), "{err}");
    assert_eq!(mock.order_actions().len(), 1);
}

#[actix::test]
async fn a_lagging_venue_shows_an_order_only_once_applied_and_refuses_it_after_expiry() {
    let mock = mock();
    mock.set_apply_lag(Some((
        Duration::from_millis(300),
        Duration::from_millis(300),
    )));
    let v = venue(&mock, Some(KEY));
    let now = chrono::Utc::now().timestamp_millis();
    let mut order = limit(Side::Buy, dec!(0.001), dec!(59000), TimeInForce::Gtc);
    order.valid_until_ms = Some(now + 2_000);
    let sending = {
        let (v, order) = (v.clone(), order.clone());
        actix::spawn(async move { v.place_order(&approved(&order)).await })
    };
    // Taken, not applied: the venue does not know the cloid yet.
    let cid = order.client_id.clone();
    let mut unknown_seen = false;
    for _ in 0..200 {
        if mock.pending_actions() == 1 {
            unknown_seen =
                v.query_order("BTC", &cid).await.unwrap().is_none() && mock.pending_actions() == 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(unknown_seen, "the order was never seen pending");
    let placed = sending.await.unwrap().unwrap();
    assert_eq!(placed.status, OrderStatus::Acked);
    assert_eq!(
        v.query_order("BTC", &cid).await.unwrap().unwrap().status,
        OrderStatus::Acked
    );

    // One whose expiresAfter passes while it waits in the venue's queue is never applied.
    mock.set_apply_lag(Some((
        Duration::from_millis(400),
        Duration::from_millis(400),
    )));
    let now = chrono::Utc::now().timestamp_millis();
    let mut expiring = limit(Side::Buy, dec!(0.001), dec!(59000), TimeInForce::Gtc);
    expiring.valid_until_ms = Some(now + 100);
    let err = v.place_order(&approved(&expiring)).await.unwrap_err();
    assert!(err.to_string().contains("Action expired"), "{err}");
    assert!(mock.order(&expiring.client_id.to_hex128()).is_none());
    assert!(v
        .query_order("BTC", &expiring.client_id)
        .await
        .unwrap()
        .is_none());
}

#[actix::test]
async fn an_order_placed_in_the_venues_ui_is_adopted_once_by_its_oid_across_restarts() {
    let mock = mock();
    let oid = mock.insert_resting_without_cloid("BTC", true, dec!(50000), dec!(0.01));
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    // `gateway` reconciled once; again now: nothing new.
    assert_eq!(core.reconcile(VENUE).await.unwrap().adopted, 0);
    let entries = core.ledger().all().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].venue_order_id, Some(oid.to_string()));
    assert_eq!(entries[0].origin, "external");
    assert_eq!(entries[0].status, OrderStatus::Acked);
    drop(core);
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    assert_eq!(core.reconcile(VENUE).await.unwrap().adopted, 0);
    assert_eq!(core.ledger().len(), 1, "still one entry after a restart");
    assert_eq!(core.ledger().open_entries().len(), 1);
}

/// The kill switch's cancels reach an order placed in the venue's UI: it has no cloid of
/// ours, so it is cancelled by its oid (`cancel` action), and the ledger closes it.
#[actix::test]
async fn an_adopted_order_without_a_cloid_is_cancelled_by_its_oid() {
    let mock = mock();
    let oid = mock.insert_resting_without_cloid("BTC", true, dec!(50000), dec!(0.01));
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock, Some(KEY))).await;
    let report = core.cancel_all(None, None).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let at_venue = mock.orders().into_iter().find(|o| o.oid == oid).unwrap();
    assert_eq!(at_venue.status, "canceled");
    assert_eq!(mock.actions("cancel").len(), 1, "one cancel by oid");
    assert_eq!(mock.actions("cancelByCloid").len(), 0);
    let entries = core.ledger().all().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].status, OrderStatus::Cancelled);
    assert!(core.ledger().open_entries().is_empty());
    // Reconciling again changes nothing: the venue no longer lists it either.
    let again = core.reconcile(VENUE).await.unwrap();
    assert_eq!((again.adopted, again.updated), (0, 0), "{again:?}");
}

#[actix::test]
async fn sibling_endpoints_of_one_account_share_its_pause_and_its_weight_budget() {
    use crate::exchanges::account::{AccountLimits, Endpoint};
    let mock = mock();
    let standby = mock.another_endpoint();
    let cfg = config(&mock);
    let account = AccountLimits::build(VENUE, &cfg.resilience).unwrap();
    let open = |url: String, n: usize| {
        HyperliquidVenue::open_at(
            VENUE,
            &cfg,
            &env_with(Some(KEY)),
            system_clock(),
            Some(&Endpoint {
                base_url: url,
                connector: format!("{VENUE}#{n}"),
                account: account.clone(),
                breaker: None,
            }),
        )
        .unwrap()
    };
    let (first, second) = (open(mock.url(), 1), open(standby.url(), 2));
    first.instrument("BTC").await.unwrap();
    second.instrument("BTC").await.unwrap();
    assert!(!mock.requests().is_empty() && !standby.requests().is_empty());

    // One weight budget: a read through either endpoint draws from it.
    let left = || account.limits.headroom(super::config::WEIGHT_POOL).unwrap();
    let before = left();
    first.quote("BTC").await.unwrap();
    second.quote("BTC").await.unwrap();
    assert_eq!(
        before - left(),
        4,
        "two l2Book reads of weight 2, one budget"
    );

    // One pause gate: the venue's 429 through the first endpoint holds the second back,
    // and an order there is refused at once, unsent.
    mock.fail_next_exchange(Fault::RateLimited);
    let order = limit(Side::Buy, dec!(0.01), dec!(59000), TimeInForce::Gtc);
    let err = first.place_order(&approved(&order)).await.unwrap_err();
    assert!(matches!(err, VenueError::RateLimited { .. }), "{err}");
    let order = limit(Side::Buy, dec!(0.01), dec!(59000), TimeInForce::Gtc);
    let err = second.place_order(&approved(&order)).await.unwrap_err();
    assert!(matches!(err, VenueError::RateLimited { .. }), "{err}");
    assert_eq!(
        mock.exchange_arrivals().len(),
        1,
        "nothing sent during the pause"
    );
}

#[actix::test]
async fn sibling_endpoints_of_one_account_never_sign_the_same_nonce() {
    use crate::exchanges::account::{AccountLimits, Endpoint};
    let mock = mock();
    let standby = mock.another_endpoint();
    let cfg = config(&mock);
    let account = AccountLimits::build(VENUE, &cfg.resilience).unwrap();
    // Both endpoints see the same frozen wall clock: every nonce is signed in the same ms.
    let clock = crate::clock::ManualClock::new(1_800_000_000_000);
    let open = |url: String, n: usize| {
        HyperliquidVenue::open_at(
            VENUE,
            &cfg,
            &env_with(Some(KEY)),
            clock.clone(),
            Some(&Endpoint {
                base_url: url,
                connector: format!("{VENUE}#{n}"),
                account: account.clone(),
                breaker: None,
            }),
        )
        .unwrap()
    };
    let (first, second) = (open(mock.url(), 1), open(standby.url(), 2));
    let mut nonces: Vec<u64> = (0..4)
        .flat_map(|_| [first.next_nonce(), second.next_nonce()])
        .collect();
    let n = nonces.len();
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), n, "a nonce was signed twice");
}

/// README promises that a proxy's `user:secret@` never shows (status and config errors
/// use `display_url`; transport errors carry reqwest's URL, which drops the userinfo).
#[actix::test]
async fn an_endpoints_credentials_never_appear_in_an_error() {
    // A proxy URL with credentials on a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(&mock());
    cfg.base_url = Some(format!("http://operator:s3cretpw@127.0.0.1:{port}"));
    cfg.resilience.retry.max_attempts = 1;
    let venue = HyperliquidVenue::open(VENUE, &cfg, &env_with(Some(KEY)), system_clock()).unwrap();
    let err = venue.quote("BTC").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, VenueError::Unavailable { .. }), "{text}");
    assert!(
        !text.contains("s3cretpw") && !text.contains("operator"),
        "{text}"
    );
}
