//! `BinanceSpotVenue` against the mock exchange, alone and behind the order gateway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::mock::{Fault, MockBinance, MOCK_API_KEY, MOCK_API_SECRET};
use super::*;
use crate::clock::system_clock;
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{
    Amount, GatewayConfig, GatewayCore, GatewayError, OrderIntent, Pricing,
};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError};
use crate::store::Store;
use crate::supervisor::Slot;

/// Through the real risk gate, with a view that admits the order: these tests are about
/// the venue (Binance fills a market order at its book; the reference price bounds nothing).
fn approved(request: &OrderRequest) -> crate::exchanges::risk_gate::RiskApproved<OrderRequest> {
    crate::exchanges::risk_gate::approve_for_venue_test(request.clone(), Decimal::ONE)
}

fn env(k: &str) -> Option<String> {
    match k {
        API_KEY_ENV => Some(MOCK_API_KEY.into()),
        API_SECRET_ENV => Some(MOCK_API_SECRET.into()),
        _ => None,
    }
}

fn config(mock: &MockBinance, timeout: Duration) -> BinanceConfig {
    BinanceConfig {
        base_url: mock.url(),
        request_timeout: timeout,
        ..BinanceConfig::default()
    }
}

fn venue(mock: &MockBinance) -> Arc<BinanceSpotVenue> {
    venue_with(mock, Duration::from_secs(3))
}

fn venue_with(mock: &MockBinance, timeout: Duration) -> Arc<BinanceSpotVenue> {
    Arc::new(
        BinanceSpotVenue::open_with_env("binance", &config(mock, timeout), system_clock(), &env)
            .unwrap(),
    )
}

fn gateway(store: &Store, venue: Arc<BinanceSpotVenue>) -> Arc<GatewayCore> {
    gateway_of(store, "binance", venue)
}

/// A gateway over one connector serving `venue` under `name`, default risk limits (the
/// futures venue's tests use it too).
pub(crate) fn gateway_of(store: &Store, name: &str, venue: Arc<dyn Venue>) -> Arc<GatewayCore> {
    let slot = Slot::<Connector>::new();
    let addr = Connector::new(venue).start();
    slot.fill(addr, slot.next_token(), &format!("test/{name}"));
    let mut venues = BTreeMap::new();
    venues.insert(name.to_string(), slot);
    GatewayCore::open(
        store,
        venues,
        RiskConfig::default(),
        GatewayConfig::default(),
        system_clock(),
    )
    .unwrap()
}

fn intent(side: Side, amount: Amount, pricing: Pricing) -> OrderIntent {
    OrderIntent {
        venue: "binance".into(),
        symbol: "BTC".into(),
        side,
        amount,
        pricing,
        reduce_only: false,
        origin: "test".into(),
    }
}

fn request(size: Decimal, order_type: OrderType) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size,
        order_type,
        reduce_only: false,
        valid_until_ms: None,
    }
}

fn market() -> OrderType {
    OrderType::Market {
        max_slippage: dec!(0.01),
    }
}

fn posts(mock: &MockBinance) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.route() == "/api/v3/order")
        .count()
}

#[actix::test]
async fn market_order_by_usd_fills_and_is_signed() {
    let mock = MockBinance::start();
    // Commission in the quote asset, so the base balance is exactly the size bought (the
    // mock's default takes it from the base asset received, as Binance does).
    mock.set_fee_asset(None);
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("binance").await.unwrap();
    let report = core
        .place(intent(Side::Buy, Amount::Usd(dec!(100)), Pricing::Market))
        .await
        .unwrap();
    // 100 / 60010 = 0.0016663… → 0.00166 at step 0.00001.
    assert_eq!(report.size, dec!(0.00166));
    assert_eq!(report.status, OrderStatus::Filled);
    assert_eq!(report.avg_fill_price, Some(dec!(60010)));
    assert_eq!(mock.order_posts(report.client_id.as_str()), 1);
    let post = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.header("x-mbx-apikey"), Some(MOCK_API_KEY));
    assert_eq!(post.query("type"), Some("MARKET"));
    assert_eq!(post.query("newOrderRespType"), Some("FULL"));
    assert!(post.query("signature").is_some());
    assert_eq!(mock.balance("BTC").0, dec!(0.00166));

    // The venue's own view: fill with the trade id, a spot position, the account in USD.
    let v = venue(&mock);
    let fills = v.fills_since(0).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].size, dec!(0.00166));
    assert_eq!(fills[0].fee, dec!(0.0996166)); // 0.1% of 99.6166 USDT
    assert!(fills[0].fill_id.parse::<i64>().is_ok());
    let positions = v.positions().await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].size, dec!(0.00166));
    assert_eq!(positions[0].entry_price, dec!(60000));
    let account = v.account().await.unwrap();
    assert_eq!(
        account.free_balance,
        dec!(10000) - dec!(99.6166) - dec!(0.0996166)
    );
    assert_eq!(
        account.account_value,
        account.free_balance + dec!(0.00166) * dec!(60000)
    );
}

#[actix::test]
async fn ioc_limit_order_fills_at_the_touch() {
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("binance").await.unwrap();
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.001)),
            Pricing::Limit {
                price: dec!(60100),
                tif: TimeInForce::Ioc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Filled);
    assert_eq!(report.filled_size, dec!(0.001));
    assert_eq!(report.avg_fill_price, Some(dec!(60010)));
    let post = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.query("timeInForce"), Some("IOC"));
}

#[actix::test]
async fn gtc_order_rests_then_is_cancelled() {
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("binance").await.unwrap();
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.001)),
            Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Acked);
    assert_eq!(mock.balance("USDT").1, dec!(59));
    let open = venue(&mock).open_orders().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].client_id.as_ref(), Some(&report.client_id));

    let cancelled = core.cancel(&report.client_id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        mock.order_status(report.client_id.as_str()).as_deref(),
        Some("CANCELED")
    );
    assert_eq!(mock.balance("USDT"), (dec!(10000), dec!(0)));
    let del = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(
        del.query("origClientOrderId"),
        Some(report.client_id.as_str())
    );
}

#[actix::test]
async fn a_resting_order_fills_when_the_price_moves() {
    let mock = MockBinance::start();
    // Commission in the quote asset, so the base balance is exactly the size bought (the
    // mock's default takes it from the base asset received, as Binance does).
    mock.set_fee_asset(None);
    let v = venue(&mock);
    let req = request(
        dec!(0.001),
        OrderType::Limit {
            price: dec!(59000),
            tif: TimeInForce::Gtc,
        },
    );
    assert_eq!(
        v.place_order(&approved(&req)).await.unwrap().status,
        OrderStatus::Acked
    );
    mock.set_book("BTCUSDT", dec!(58990), dec!(59000));
    let o = v.query_order("BTC", &req.client_id).await.unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.avg_fill_price, Some(dec!(59000)));
    assert_eq!(mock.balance("BTC").0, dec!(0.001));
    // An order the venue never saw is None, not an error.
    assert_eq!(
        v.query_order("BTC", &ClientOrderId::generate())
            .await
            .unwrap(),
        None
    );
}

#[actix::test]
async fn leverage_is_refused_for_spot_except_1x() {
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    let err = core.set_leverage("binance", "BTC", 5).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Venue(VenueError::InvalidRequest { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("spot has no leverage"), "{err}");
    core.set_leverage("binance", "BTC", 1).await.unwrap();
}

#[actix::test]
async fn a_partial_fill_is_reported_and_the_rest_rests() {
    let mock = MockBinance::start();
    mock.set_touch_qty("BTCUSDT", Some(dec!(0.0004)));
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("binance").await.unwrap();
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.001)),
            Pricing::Limit {
                price: dec!(60100),
                tif: TimeInForce::Gtc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::PartiallyFilled);
    assert_eq!(report.filled_size, dec!(0.0004));
    assert_eq!(report.avg_fill_price, Some(dec!(60010)));
}

/// Moves tokio's clock (which the venue's Retry-After block reads) past `d` at once, then
/// lets it run on: a paused clock would fire the HTTP client's timeouts while a request
/// waits on the mock's thread.
async fn pass_time(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

#[actix::test]
async fn a_429_blocks_every_request_until_retry_after() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    // A Retry-After far longer than the test's own steps take on a loaded machine, and
    // tokio's paused clock to pass it: the blocked calls below cannot race its end.
    mock.push_fault(Fault::RateLimited {
        retry_after_secs: 120,
    });
    let err = v.quote("BTC").await.unwrap_err();
    let VenueError::RateLimited { retry_after, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(120)));
    let sent = mock.requests().len();
    // Neither the same endpoint nor any other is asked before Retry-After.
    assert!(matches!(
        v.quote("BTC").await,
        Err(VenueError::RateLimited { .. })
    ));
    assert!(matches!(
        v.account().await,
        Err(VenueError::RateLimited { .. })
    ));
    assert_eq!(mock.requests().len(), sent, "nothing sent while blocked");
    pass_time(Duration::from_secs(121)).await;
    v.quote("BTC").await.unwrap();
    assert_eq!(mock.requests().len(), sent + 1);
}

#[actix::test]
async fn a_418_ban_is_honoured() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    mock.push_fault(Fault::Banned {
        retry_after_secs: 120,
    });
    let err = v.account().await.unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");
    let sent = mock.requests().len();
    assert!(matches!(
        v.quote("BTC").await,
        Err(VenueError::RateLimited { .. })
    ));
    assert_eq!(mock.requests().len(), sent);
    pass_time(Duration::from_secs(121)).await;
    v.account().await.unwrap();
}

#[actix::test]
async fn a_418_without_retry_after_is_read_from_banned_until() {
    let mock = MockBinance::start();
    // A read waits out a ban that ends before its deadline: with 500 ms, the rest of
    // this 2 s ban (about 1 s, after the virtual second below) is refused at once.
    let v = venue_with(&mock, Duration::from_millis(500));
    mock.push_fault(Fault::BannedUntil { secs: 2 });
    let err = v.quote("BTC").await.unwrap_err();
    let VenueError::RateLimited { retry_after, .. } = &err else {
        panic!("{err}")
    };
    let wait = retry_after.unwrap();
    assert!(
        wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    let sent = mock.requests().len();
    // A second of tokio's clock (which the ban is kept on), however slow the machine.
    pass_time(Duration::from_millis(1000)).await;
    assert!(v.quote("BTC").await.is_err());
    assert_eq!(mock.requests().len(), sent, "still banned");
}

#[actix::test]
async fn during_a_ban_a_read_waits_it_out_within_its_deadline_and_an_order_is_refused_at_once() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    // Filters cached: the order below needs no read first.
    v.instrument("BTC").await.unwrap();
    mock.push_fault(Fault::BannedUntil { secs: 2 });
    let started = std::time::Instant::now();
    assert!(matches!(
        v.quote("BTC").await,
        Err(VenueError::RateLimited { .. })
    ));
    let sent = mock.requests().len();
    // An order never waits out a ban: refused at once, with the time left, not sent.
    let err = v
        .place_order(&approved(&request(dec!(0.001), market())))
        .await
        .unwrap_err();
    let VenueError::RateLimited {
        retry_after: Some(left),
        reason,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(*left <= Duration::from_secs(2), "{left:?}");
    assert!(reason.contains("never waits out a pause"), "{reason}");
    assert_eq!(mock.requests().len(), sent, "the order was not sent");
    // A read whose 3 s deadline outlasts the ban waits for its end, then is sent once.
    let quote = v.quote("BTC").await.unwrap();
    assert!(quote.bid > Decimal::ZERO);
    assert_eq!(mock.requests().len(), sent + 1);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "sent only after the ban: {:?}",
        started.elapsed()
    );
}

#[actix::test]
async fn the_used_weight_header_is_observed_into_the_limiter() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    // Entering mid-minute: other clients of this IP already used 5000.
    mock.add_used_weight(5_000);
    v.quote("BTC").await.unwrap();
    let headroom = v.weight_headroom().unwrap();
    assert!(headroom <= 6_000 - 5_002, "{headroom}");
}

async fn order_with_lost_answer(fault: Fault) {
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("binance").await.unwrap();
    mock.push_fault(fault);
    let report = core
        .place(intent(Side::Buy, Amount::Usd(dec!(100)), Pricing::Market))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Filled, "resolved by client id");
    assert_eq!(report.filled_size, dec!(0.00166));
    assert_eq!(
        mock.order_posts(report.client_id.as_str()),
        1,
        "never re-sent"
    );
    assert_eq!(posts(&mock), 1);
    let query = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.route() == "/api/v3/order")
        .unwrap();
    assert_eq!(
        query.query("origClientOrderId"),
        Some(report.client_id.as_str())
    );
}

#[actix::test]
async fn a_5xx_on_an_order_is_reconciled_by_client_id_not_resent() {
    order_with_lost_answer(Fault::ServerErrorAfterOrder).await;
}

#[actix::test]
async fn a_reset_mid_order_is_reconciled_by_client_id_not_resent() {
    order_with_lost_answer(Fault::ResetAfterOrder).await;
}

#[actix::test]
async fn clock_skew_resyncs_and_succeeds() {
    let mock = MockBinance::start();
    // Commission in the quote asset, so the base balance is exactly the size bought (the
    // mock's default takes it from the base asset received, as Binance does).
    mock.set_fee_asset(None);
    mock.set_clock_offset_ms(20_000);
    let v = venue(&mock);
    v.account().await.unwrap();
    assert_eq!(mock.count("/api/v3/time"), 1);
    assert!((v.clock_offset_ms() - 20_000).abs() < 1_000);

    // An order refused for its timestamp is sent once more after the resync; Binance
    // refused the first before executing it, so exactly one order exists.
    mock.set_clock_offset_ms(-30_000);
    let req = request(dec!(0.001), market());
    let o = v.place_order(&approved(&req)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(mock.count("/api/v3/time"), 2);
    assert_eq!(mock.order_posts(req.client_id.as_str()), 2);
    assert_eq!(mock.balance("BTC").0, dec!(0.001));
}

#[actix::test]
async fn a_malformed_answer_is_a_typed_error() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    mock.push_fault(Fault::Malformed);
    let err = v.quote("BTC").await.unwrap_err();
    assert!(matches!(err, VenueError::Malformed { .. }), "{err}");
    // On an order send, a 2xx we cannot read leaves the outcome unknown.
    v.instrument("BTC").await.unwrap();
    mock.push_fault(Fault::Malformed);
    let err = v
        .place_order(&approved(&request(dec!(0.001), market())))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::OutcomeUnknown { .. }), "{err}");
}

#[actix::test]
async fn a_hung_request_meets_its_deadline() {
    let mock = MockBinance::start();
    let v = venue_with(&mock, Duration::from_millis(300));
    v.instrument("BTC").await.unwrap();
    mock.push_fault(Fault::Hang);
    let err = v.quote("BTC").await.unwrap_err();
    assert!(matches!(err, VenueError::Timeout { .. }), "{err}");
    mock.push_fault(Fault::Hang);
    let err = v
        .place_order(&approved(&request(dec!(0.001), market())))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::OutcomeUnknown { .. }), "{err}");
}

#[actix::test]
async fn the_venues_own_rejections_keep_its_message() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    // Market notional 0.6 USDT is below the 5 USDT minimum: only the venue knows the price.
    let err = v
        .place_order(&approved(&request(dec!(0.00001), market())))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VenueError::Rejected { reason, .. } if reason.contains("Filter failure: NOTIONAL")),
        "{err}"
    );
    let err = v
        .place_order(&approved(&request(dec!(1), market())))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VenueError::InsufficientBalance { reason, .. } if reason.contains("Account has insufficient balance for requested action.")),
        "{err}"
    );
    let err = v
        .place_order(&approved(&request(
            dec!(0.001),
            OrderType::Limit {
                price: dec!(60100),
                tif: TimeInForce::Alo,
            },
        )))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Order would immediately match and take."),
        "{err}"
    );
}

#[actix::test]
async fn orders_that_cannot_be_represented_are_refused_locally() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    let limit = |price| OrderType::Limit {
        price,
        tif: TimeInForce::Gtc,
    };
    for (size, ty, expect) in [
        (dec!(0.001), limit(dec!(59000.005)), "not on the"),
        (dec!(0.000015), limit(dec!(59000)), "not on the"),
        (dec!(0.00001), limit(dec!(59000)), "minimum notional"),
    ] {
        let err = v
            .place_order(&approved(&request(size, ty)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, VenueError::InvalidRequest { reason, .. } if reason.contains(expect) && reason.contains("not sent")),
            "{err}"
        );
    }
    assert_eq!(posts(&mock), 0);
}

#[actix::test]
async fn a_wrong_secret_is_an_auth_error_with_binances_message() {
    let mock = MockBinance::start();
    let v = BinanceSpotVenue::open_with_env(
        "binance",
        &config(&mock, Duration::from_secs(3)),
        system_clock(),
        &|k| match k {
            API_KEY_ENV => Some(MOCK_API_KEY.into()),
            _ => Some("not-the-secret".into()),
        },
    )
    .unwrap();
    let err = v.account().await.unwrap_err();
    assert!(
        matches!(&err, VenueError::Auth { reason, .. } if reason.contains("Signature for this request is not valid.")),
        "{err}"
    );
    let dbg = format!("{v:?}");
    assert!(
        !dbg.contains(MOCK_API_KEY) && !dbg.contains("not-the-secret"),
        "{dbg}"
    );
    assert!(!err.to_string().contains("not-the-secret"));
}

#[actix::test]
async fn missing_keys_are_named_and_candles_parse() {
    let mock = MockBinance::start();
    let err = BinanceSpotVenue::open_with_env(
        "binance",
        &config(&mock, Duration::from_secs(3)),
        system_clock(),
        &|_| None,
    )
    .unwrap_err();
    assert!(err.to_string().contains(API_KEY_ENV), "{err}");
    let v = venue(&mock);
    let candles = v.candles("BTC", Timeframe::M1, 5).await.unwrap();
    assert_eq!(candles.len(), 5);
    assert_eq!(candles[4].close, dec!(60000));
    assert!(candles[0].open_time_ms < candles[4].open_time_ms);
    let i = v.instrument("BTC").await.unwrap();
    assert_eq!(
        (i.symbol.as_str(), i.tick_size, i.lot_size, i.min_notional),
        ("BTC", dec!(0.01), dec!(0.00001), dec!(5))
    );
    assert!(matches!(
        v.quote("DOGE").await,
        Err(VenueError::UnknownSymbol { .. })
    ));
    // Every answer carries the weight header the venue observes.
    assert!(mock
        .requests()
        .iter()
        .all(|r| r.route().starts_with("/api/v3/")));
}

#[actix::test]
async fn a_read_is_retried_after_a_server_error_but_an_order_is_sent_once() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    v.instrument("BTC").await.unwrap();
    let before = mock.count("/api/v3/ticker/bookTicker");
    mock.push_fault(Fault::ServerError);
    mock.push_fault(Fault::ServerError);
    let quote = v.quote("BTC").await.unwrap();
    assert!(quote.bid > Decimal::ZERO);
    assert_eq!(
        mock.count("/api/v3/ticker/bookTicker"),
        before + 3,
        "two 503s, then the answer"
    );

    // An order whose send fails is never sent again by the venue.
    mock.push_fault(Fault::ServerError);
    let posts = mock.count("/api/v3/order");
    assert!(v
        .place_order(&approved(&request(dec!(0.001), market())))
        .await
        .is_err());
    assert_eq!(mock.count("/api/v3/order"), posts + 1);
}

/// Breaker settings that open after three failures and stay open for a minute.
fn tripping_config(mock: &MockBinance) -> BinanceConfig {
    let mut config = config(mock, Duration::from_secs(3));
    config.resilience.breaker.failure_count = 3;
    config.resilience.breaker.open_for = Duration::from_secs(60);
    config.resilience.retry.max_attempts = 1;
    config
}

#[actix::test]
async fn the_breaker_opens_on_repeated_failures_and_stays_open_across_a_restart() {
    let mock = MockBinance::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("data")).unwrap();
    let open = |store: &Store| {
        BinanceSpotVenue::open_with_env("binance", &tripping_config(&mock), system_clock(), &env)
            .unwrap()
            .with_breaker_store(store.tree(crate::store::trees::VENUE_BREAKERS).unwrap())
    };
    let v = open(&store);
    for _ in 0..3 {
        mock.push_fault(Fault::ServerError);
        assert!(v.quote("BTC").await.is_err());
    }
    let sent = mock.requests().len();
    let err = v.quote("BTC").await.unwrap_err();
    assert!(
        matches!(&err, VenueError::Unavailable { reason, .. } if reason.contains("open")),
        "{err}"
    );
    assert_eq!(mock.requests().len(), sent, "an open breaker sends nothing");

    // A new process (same data dir) starts with the breaker still open.
    drop(v);
    store.flush().unwrap();
    let v = open(&store);
    assert!(matches!(
        v.account().await,
        Err(VenueError::Unavailable { .. })
    ));
    assert_eq!(
        mock.requests().len(),
        sent,
        "nothing sent after the restart either"
    );
}

/// Raw requests, to check the mock reads parameters the way Binance does.
#[tokio::test]
async fn the_mock_decodes_parameters_and_checks_the_signature_over_the_bytes_sent() {
    let mock = MockBinance::start();
    let secret = ApiSecret::new(MOCK_API_SECRET).unwrap();
    let http = reqwest::Client::new();
    let order_url = format!("{}/api/v3/order", mock.url());
    let now = || chrono::Utc::now().timestamp_millis();
    let code_of =
        |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["code"].as_i64();

    // A percent-encoded character is decoded: BTC%55SDT is BTCUSDT.
    let q = format!(
        "symbol=BTC%55SDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=50000&newClientOrderId=encoded1&recvWindow=5000&timestamp={}",
        now()
    );
    let r = http
        .post(format!("{order_url}?{q}&signature={}", secret.sign(&q)))
        .header(API_KEY_HEADER, MOCK_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    assert_eq!(mock.order_status("encoded1").as_deref(), Some("NEW"));

    // Parameters in a form body, signed as query ‖ body; the signature's case is free.
    let q = "symbol=BTCUSDT";
    let body = format!(
        "side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=50000&newClientOrderId=form1&recvWindow=5000&timestamp={}",
        now()
    );
    let sig = secret.sign_query_and_body(q, &body).to_ascii_uppercase();
    let r = http
        .post(format!("{order_url}?{q}"))
        .header(API_KEY_HEADER, MOCK_API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{body}&signature={sig}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    assert_eq!(mock.order_status("form1").as_deref(), Some("NEW"));

    // A non-ASCII symbol: signing its decoded text is refused (-1022); signing the encoded
    // bytes as sent passes, and the decoded symbol is then unknown (-1121).
    let ts = now();
    let tail = format!(
        "side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp={ts}"
    );
    let encoded = format!("symbol=%EF%BC%91%EF%BC%92%EF%BC%93&{tail}");
    let decoded = format!("symbol=１２３&{tail}");
    for (signed, code) in [(&decoded, -1022), (&encoded, -1121)] {
        let r = http
            .post(format!(
                "{order_url}?{encoded}&signature={}",
                secret.sign(signed)
            ))
            .header(API_KEY_HEADER, MOCK_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(code_of(&r.text().await.unwrap()), Some(code));
    }
}

/// A GTC buy resting at 59000 through a reconciled gateway.
async fn resting_buy(mock: &MockBinance, store: &Store) -> (Arc<GatewayCore>, ClientOrderId) {
    let core = gateway(store, venue(mock));
    core.reconcile("binance").await.unwrap();
    let report = core
        .place(intent(
            Side::Buy,
            Amount::Base(dec!(0.001)),
            Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        ))
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Acked);
    (core, report.client_id)
}

async fn cancel_applied_but_answer_lost(fault: Fault) {
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let (core, id) = resting_buy(&mock, &store).await;
    mock.push_fault(fault.clone());
    let report = core.cancel(&id).await.unwrap();
    assert_eq!(report.status, OrderStatus::Cancelled, "{fault:?}");
    let entry = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Cancelled);
    assert_eq!(mock.order_status(id.as_str()).as_deref(), Some("CANCELED"));
    assert_eq!(mock.cancel_requests(id.as_str()), 1, "no second cancel");
    // Settled by asking for the order by client id after the cancel.
    let last = mock.requests().into_iter().last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.route()),
        ("GET", "/api/v3/order")
    );
    assert_eq!(last.query("origClientOrderId"), Some(id.as_str()));
}

#[actix::test]
async fn a_5xx_on_a_cancel_is_settled_by_client_id_not_resent() {
    cancel_applied_but_answer_lost(Fault::ServerErrorAfterCancel).await;
}

#[actix::test]
async fn a_reset_mid_cancel_is_settled_by_client_id_not_resent() {
    cancel_applied_but_answer_lost(Fault::ResetAfterCancel).await;
}

#[actix::test]
async fn a_cancel_that_never_reached_binance_leaves_the_order_open_and_is_not_resent() {
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let (core, id) = resting_buy(&mock, &store).await;
    mock.push_fault(Fault::BadGatewayBeforeCancel);
    let err = core.cancel(&id).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotApplied { .. }), "{err}");
    let entry = core.ledger().get(&id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Acked, "the venue's true state");
    assert_eq!(mock.order_status(id.as_str()).as_deref(), Some("NEW"));
    assert_eq!(mock.cancel_requests(id.as_str()), 1, "no second cancel");
}

/// A commission paid in BNB (as the recorded `myTrades` answer shows) is converted at BNB's
/// quote when the fill is read, and one paid in the base asset at the trade's price; the
/// amount charged and the asset stay on the fill. Before, both were dropped to 0 USD.
#[actix::test]
async fn commissions_in_bnb_or_the_base_asset_are_converted_not_dropped() {
    use super::mock::FeeAsset;
    let mock = MockBinance::start();
    mock.add_book("BNBUSDT", dec!(599), dec!(601));
    mock.set_balance("BNB", dec!(1));
    mock.set_fee_asset(Some(FeeAsset::Bnb));
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("binance").await.unwrap();
    core.place(intent(Side::Buy, Amount::Usd(dec!(100)), Pricing::Market))
        .await
        .unwrap();
    mock.set_fee_asset(Some(FeeAsset::Received));
    core.place(intent(Side::Buy, Amount::Usd(dec!(100)), Pricing::Market))
        .await
        .unwrap();

    let fills = venue(&mock).fills_since(0).await.unwrap();
    assert_eq!(fills.len(), 2);
    // 0.1% of 99.6166 USDT = 0.0996166 USDT, paid as BNB at its mid of 600.
    let bnb = fills[0].fee_asset.clone().unwrap();
    assert_eq!(bnb.asset, "BNB");
    assert_eq!(bnb.amount, dec!(0.00016603));
    assert_eq!(bnb.usd_price, Some(dec!(600)));
    assert_eq!(fills[0].fee, dec!(0.00016603) * dec!(600));
    // 0.1% of the 0.00166 BTC received, priced at the trade's 60010.
    let base = fills[1].fee_asset.clone().unwrap();
    assert_eq!(
        (base.asset.as_str(), base.amount),
        ("BTC", dec!(0.00000166))
    );
    assert_eq!(base.usd_price, Some(dec!(60010)));
    assert_eq!(fills[1].fee, dec!(0.00000166) * dec!(60010));
    // The paid amounts left the balances they were charged to.
    assert_eq!(mock.balance("BNB").0, dec!(1) - dec!(0.00016603));
}

#[actix::test]
async fn an_orders_timestamp_plus_recv_window_is_its_deadline_and_a_late_one_is_not_sent() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    assert_eq!(v.order_validity(), Duration::from_millis(5_000));
    let now = chrono::Utc::now().timestamp_millis();
    let mut order = request(dec!(0.001), market());
    order.valid_until_ms = Some(now + 3_000);
    v.place_order(&approved(&order)).await.unwrap();
    let sent = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.route() == "/api/v3/order")
        .unwrap();
    let timestamp: i64 = sent.query("timestamp").unwrap().parse().unwrap();
    let window: i64 = sent.query("recvWindow").unwrap().parse().unwrap();
    // Signed against the local clock plus the server offset (zero here), so the window
    // ends at the order's deadline, to the millisecond of signing.
    let end = timestamp + window;
    assert!(
        (now + 3_000 - 50..=now + 3_000).contains(&end),
        "timestamp {timestamp} + recvWindow {window} = {end}, deadline {}",
        now + 3_000
    );

    // Past its deadline the order is not sent at all.
    let mut late = request(dec!(0.001), market());
    late.valid_until_ms = Some(now - 1);
    let err = v.place_order(&approved(&late)).await.unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
    assert_eq!(mock.order_posts(late.client_id.as_str()), 0);
}

/// An order Binance knows only by its `orderId` (placed outside the engine) is cancelled
/// with `DELETE /api/v3/order?orderId=...`, never with a made-up client id.
#[actix::test]
async fn an_order_is_cancelled_by_its_order_id_when_asked_by_venue_id() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    let placed = v
        .place_order(&approved(&request(
            dec!(0.001),
            OrderType::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        )))
        .await
        .unwrap();
    let cid = placed.client_id.clone().unwrap();
    v.cancel_by_venue_id("BTC", &placed.venue_order_id)
        .await
        .unwrap();
    assert_eq!(mock.order_status(cid.as_str()).as_deref(), Some("CANCELED"));
    let deletes: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.route() == "/api/v3/order")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0].query("orderId"),
        Some(placed.venue_order_id.as_str())
    );
    assert_eq!(deletes[0].query("origClientOrderId"), None);
}

/// A `-1013` from the venue drops the cached filters of the symbol (decided on Binance's
/// code, not on the error text): the next order reads exchangeInfo again and is refused
/// locally by the venue's new NOTIONAL filter, without a second POST.
#[actix::test]
async fn a_filter_failure_code_makes_the_next_order_read_the_filters_again() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    let resting = || {
        request(
            dec!(0.0001),
            OrderType::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
        )
    };
    // 5.9 USDT: above the minimum notional of 5.
    let first = v.place_order(&approved(&resting())).await.unwrap();
    assert_eq!(first.status, OrderStatus::Acked);
    assert_eq!(mock.count("/api/v3/exchangeInfo"), 1);

    mock.set_min_notional("BTCUSDT", dec!(10));
    // Our cached filters still say 5: the venue refuses with -1013.
    let err = v.place_order(&approved(&resting())).await.unwrap_err();
    assert!(
        matches!(&err, VenueError::Rejected { reason, .. } if reason.contains("NOTIONAL")),
        "{err}"
    );
    assert_eq!(posts(&mock), 2);

    let err = v.place_order(&approved(&resting())).await.unwrap_err();
    assert_eq!(mock.count("/api/v3/exchangeInfo"), 2, "filters read again");
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
    assert_eq!(posts(&mock), 2, "refused locally, not sent");
}

/// Any other rejection keeps the cached filters: no exchangeInfo read per refused order.
#[actix::test]
async fn a_rejection_that_is_not_a_filter_failure_keeps_the_cached_filters() {
    let mock = MockBinance::start();
    let v = venue(&mock);
    // A LIMIT_MAKER at the ask would take: -2010, not a filter failure.
    let taker = request(
        dec!(0.001),
        OrderType::Limit {
            price: dec!(60010),
            tif: TimeInForce::Alo,
        },
    );
    let err = v.place_order(&approved(&taker)).await.unwrap_err();
    assert!(matches!(err, VenueError::Rejected { .. }), "{err}");
    let again = request(
        dec!(0.001),
        OrderType::Limit {
            price: dec!(59000),
            tif: TimeInForce::Gtc,
        },
    );
    v.place_order(&approved(&again)).await.unwrap();
    assert_eq!(mock.count("/api/v3/exchangeInfo"), 1);
}
