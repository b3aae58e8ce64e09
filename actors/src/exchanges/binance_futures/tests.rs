//! The futures venue against the loopback mock: wire mapping, Binance's own refusals as
//! typed errors, conditional orders on the Algo Order API, lost answers resolved by
//! client id, rate limits and clock skew, funding and open interest.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::config::{BinanceFuturesConfig, MarginType};
use super::mock::{Fault, MockBinanceFutures, MOCK_API_KEY, MOCK_API_SECRET};
use super::venue::BinanceFuturesVenue;
use super::{API_KEY_ENV, API_SECRET_ENV};
use crate::clock::system_clock;
use crate::exchanges::binance::filters::parse_exchange_info;
use crate::exchanges::binance::signing::{signed_query, ApiSecret, RecvWindow};
use crate::exchanges::derivatives::{DerivativesData, OiPeriod};
use crate::exchanges::gateway::{Amount, GatewayCore, OrderIntent, Pricing};
use crate::exchanges::risk_gate::{approve_for_venue_test, RiskApproved};
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError};
use crate::store::Store;
use crate::testkit::RecordedRequest;

fn env(k: &str) -> Option<String> {
    match k {
        API_KEY_ENV => Some(MOCK_API_KEY.into()),
        API_SECRET_ENV => Some(MOCK_API_SECRET.into()),
        _ => None,
    }
}

fn config(mock: &MockBinanceFutures) -> BinanceFuturesConfig {
    BinanceFuturesConfig {
        base_url: mock.url(),
        request_timeout: Duration::from_secs(3),
        ..BinanceFuturesConfig::default()
    }
}

fn open(config: &BinanceFuturesConfig) -> Arc<BinanceFuturesVenue> {
    Arc::new(BinanceFuturesVenue::open_with_env("bnf", config, system_clock(), &env).unwrap())
}

fn venue(mock: &MockBinanceFutures) -> Arc<BinanceFuturesVenue> {
    open(&config(mock))
}

/// Approved against BTC's mid, as the gateway approves it.
fn approved(request: &OrderRequest) -> RiskApproved<OrderRequest> {
    approve_for_venue_test(request.clone(), dec!(60000))
}

fn request(side: Side, size: Decimal, order_type: OrderType, reduce_only: bool) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side,
        size,
        order_type,
        reduce_only,
        valid_until_ms: None,
    }
}

fn market() -> OrderType {
    OrderType::Market {
        max_slippage: dec!(0.01),
    }
}

/// The last `POST route` the mock received.
fn last_post(mock: &MockBinanceFutures, route: &str) -> RecordedRequest {
    mock.requests()
        .into_iter()
        .rfind(|r| r.method == "POST" && r.route() == route)
        .unwrap_or_else(|| panic!("no POST {route}"))
}

fn posts(mock: &MockBinanceFutures, route: &str) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.route() == route)
        .count()
}

fn gateway(store: &Store, venue: Arc<BinanceFuturesVenue>) -> Arc<GatewayCore> {
    crate::exchanges::binance::tests::gateway_of(store, "bnf", venue)
}

/// The USDⓈ-M docs' SIGNED example (General Info, "Example 1: As a query string"): the
/// request built from its parameters is byte-identical and carries its signature.
#[test]
fn futures_signing_matches_the_documented_example() {
    let secret =
        ApiSecret::new("2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9").unwrap();
    let q = signed_query(
        &secret,
        &[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("quantity", "1"),
            ("price", "9000"),
            ("timeInForce", "GTC"),
        ],
        1591702613943,
        RecvWindow::new(5000).unwrap(),
    );
    assert_eq!(
        q,
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943&signature=3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    );
}

/// A futures exchangeInfo symbol as Binance documents it: MIN_NOTIONAL's field is
/// `notional`, PERCENT_PRICE bounds a price around the mark.
#[test]
fn futures_exchange_info_filters_are_read() {
    let body = br#"{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[],"exchangeFilters":[],"assets":[],
      "symbols":[{"symbol":"BLZUSDT","pair":"BLZUSDT","contractType":"PERPETUAL","deliveryDate":4133404800000,
        "onboardDate":1598252400000,"status":"TRADING","maintMarginPercent":"2.5000","requiredMarginPercent":"5.0000",
        "baseAsset":"BLZ","quoteAsset":"USDT","marginAsset":"USDT","pricePrecision":5,"quantityPrecision":0,
        "baseAssetPrecision":8,"quotePrecision":8,"underlyingType":"COIN","underlyingSubType":["STORAGE"],
        "settlePlan":0,"triggerProtect":"0.15",
        "filters":[
          {"filterType":"PRICE_FILTER","maxPrice":"300","minPrice":"0.0001","tickSize":"0.0001"},
          {"filterType":"LOT_SIZE","maxQty":"10000000","minQty":"1","stepSize":"1"},
          {"filterType":"MARKET_LOT_SIZE","maxQty":"590119","minQty":"1","stepSize":"1"},
          {"filterType":"MAX_NUM_ORDERS","limit":200},
          {"filterType":"MAX_NUM_ALGO_ORDERS","limit":10},
          {"filterType":"MIN_NOTIONAL","notional":"5.0"},
          {"filterType":"PERCENT_PRICE","multiplierUp":"1.1500","multiplierDown":"0.8500","multiplierDecimal":"4"}],
        "OrderType":["LIMIT","MARKET","STOP","STOP_MARKET","TAKE_PROFIT","TAKE_PROFIT_MARKET","TRAILING_STOP_MARKET"],
        "timeInForce":["GTC","IOC","FOK","GTX"],"liquidationFee":"0.010000","marketTakeBound":"0.30"}]}"#;
    let rules = parse_exchange_info(body).unwrap().remove(0);
    assert_eq!(rules.symbol, "BLZUSDT");
    assert_eq!(rules.min_notional, Some(dec!(5.0)));
    assert_eq!(rules.market_lot.unwrap().max_qty, dec!(590119));
    assert_eq!(rules.price.unwrap().tick_size, dec!(0.0001));
    rules.check_notional(dec!(0.1), dec!(50)).unwrap();
    assert!(rules.check_notional(dec!(0.1), dec!(49)).is_err());
    // Mark 0.1: a buy up to 0.115, a sell down to 0.085.
    rules
        .check_percent_price(dec!(0.115), true, dec!(0.1))
        .unwrap();
    assert!(rules
        .check_percent_price(dec!(0.1151), true, dec!(0.1))
        .is_err());
    rules
        .check_percent_price(dec!(0.085), false, dec!(0.1))
        .unwrap();
    assert!(rules
        .check_percent_price(dec!(0.0849), false, dec!(0.1))
        .is_err());
    // A sell far above the mark and a buy far below it are not what the filter bounds.
    rules
        .check_percent_price(dec!(0.2), false, dec!(0.1))
        .unwrap();
    assert_eq!(rules.to_instrument().min_notional, dec!(5.0));
}

#[actix::test]
async fn a_market_order_fills_and_the_position_carries_leverage_and_margin() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    let req = request(Side::Buy, dec!(0.01), market(), false);
    let o = v.place_order(&approved(&req)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled, "{o:?}");
    assert_eq!(o.filled_size, dec!(0.01));
    assert_eq!(o.avg_fill_price, Some(dec!(60010)));
    assert_eq!(o.client_id.as_ref(), Some(&req.client_id));
    let sent = last_post(&mock, "/fapi/v1/order");
    assert_eq!(sent.query("newClientOrderId"), Some(req.client_id.as_str()));
    assert_eq!(sent.query("type"), Some("MARKET"));
    assert_eq!(sent.query("reduceOnly"), None);
    assert_eq!(sent.header("x-mbx-apikey"), Some(MOCK_API_KEY));

    let state = v.account_state().await.unwrap();
    let p = state.position("BTC").unwrap();
    assert_eq!(p.size, dec!(0.01));
    assert_eq!(p.entry_price, dec!(60010));
    assert_eq!(p.mark_price, dec!(60000));
    assert_eq!(p.leverage, 20);
    assert_eq!(p.unrealized_pnl, dec!(-0.1));
    assert_eq!(p.margin_used, dec!(30)); // 600 notional at 20x
    assert!(p.liquidation_price.is_some());
    // Wallet 10000 less the 0.05% taker fee of 600.1; equity adds the -0.1 unrealised.
    assert_eq!(
        state.account.account_value,
        dec!(10000) - dec!(0.30005) - dec!(0.1)
    );
    assert_eq!(state.account.margin_used, dec!(30));
    assert_eq!(v.leverage("BTC").await.unwrap(), 20);
    let i = v.instrument("BTC").await.unwrap();
    assert_eq!(
        (i.tick_size, i.lot_size, i.min_notional),
        (dec!(0.1), dec!(0.001), dec!(5))
    );
    assert_eq!(i.max_leverage, 125);

    let fills = v.fills_since(0).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].venue_order_id, o.venue_order_id);
    assert_eq!(fills[0].fee, dec!(0.30005));
    assert_eq!(fills[0].fee_asset, None);
}

#[actix::test]
async fn reduce_only_and_post_only_reach_the_wire_and_binances_refusals_are_typed() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    // Nothing to reduce: Binance's -2022, a rejection with its message.
    let req = request(Side::Sell, dec!(0.01), market(), true);
    let err = v.place_order(&approved(&req)).await.unwrap_err();
    let VenueError::Rejected { reason, .. } = &err else {
        panic!("{err}")
    };
    assert!(reason.contains("-2022"), "{reason}");

    mock.set_position("BTCUSDT", dec!(0.02), dec!(59000));
    let o = v.place_order(&approved(&req)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert!(o.reduce_only);
    let sent = last_post(&mock, "/fapi/v1/order");
    assert_eq!(sent.query("reduceOnly"), Some("true"));
    assert_eq!(mock.position("BTCUSDT"), dec!(0.01));
    // The realised PnL of the reduction reaches the fill.
    let fills = v.fills_since(0).await.unwrap();
    assert_eq!(fills[0].closed_pnl, dec!(9.9)); // (59990 - 59000) × 0.01

    // Post-only is GTX; one that would take expires instead of trading.
    let post = request(
        Side::Buy,
        dec!(0.01),
        OrderType::Limit {
            price: dec!(59000),
            tif: TimeInForce::Alo,
        },
        false,
    );
    let o = v.place_order(&approved(&post)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Acked);
    let sent = last_post(&mock, "/fapi/v1/order");
    assert_eq!(sent.query("timeInForce"), Some("GTX"));
    assert_eq!(v.open_orders().await.unwrap().len(), 1);
    v.cancel_order("BTC", &post.client_id).await.unwrap();
    assert_eq!(
        mock.order_status(post.client_id.as_str()).as_deref(),
        Some("CANCELED")
    );
    assert!(v.open_orders().await.unwrap().is_empty());

    // Margin: 10 BTC at 20x needs 30001 USDT of 10000.
    let big = request(Side::Buy, dec!(10), market(), false);
    let err = v.place_order(&approved(&big)).await.unwrap_err();
    assert!(
        matches!(err, VenueError::InsufficientBalance { .. }),
        "{err}"
    );
}

#[actix::test]
async fn a_stop_market_goes_to_the_algo_api_and_fires_when_the_price_passes() {
    let mock = MockBinanceFutures::start();
    mock.set_position("BTCUSDT", dec!(0.01), dec!(60000));
    let v = venue(&mock);
    let stop = request(
        Side::Sell,
        dec!(0.01),
        OrderType::Trigger {
            trigger_price: dec!(58000),
            kind: TriggerKind::StopLoss,
            limit_price: None,
        },
        true,
    );
    let o = v.place_order(&approved(&stop)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Acked, "{o:?}");
    assert_eq!(
        posts(&mock, "/fapi/v1/order"),
        0,
        "-4120 there since 2025-12-09"
    );
    let sent = last_post(&mock, "/fapi/v1/algoOrder");
    assert_eq!(sent.query("type"), Some("STOP_MARKET"));
    assert_eq!(sent.query("algoType"), Some("CONDITIONAL"));
    assert_eq!(sent.query("triggerPrice"), Some("58000"));
    assert_eq!(sent.query("reduceOnly"), Some("true"));
    assert_eq!(sent.query("clientAlgoId"), Some(stop.client_id.as_str()));
    let open = v.open_orders().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].client_id.as_ref(), Some(&stop.client_id));

    // Looked up by client id: the regular order is not found, the algo order is.
    let q = v
        .query_order("BTC", &stop.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.status, OrderStatus::Acked);
    mock.set_book("BTCUSDT", dec!(57900), dec!(57920));
    let q = v
        .query_order("BTC", &stop.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.status, OrderStatus::Filled);
    assert_eq!(q.filled_size, dec!(0.01));
    // Once triggered it is known by the order its fills carry.
    let fills = v.fills_since(0).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].venue_order_id, q.venue_order_id);
    assert_eq!(fills[0].closed_pnl, dec!(-21)); // (57900 - 60000) × 0.01
    assert_eq!(mock.position("BTCUSDT"), Decimal::ZERO);
    assert!(v.open_orders().await.unwrap().is_empty());

    // A take-profit with a limit price is TAKE_PROFIT; cancelled through the Algo API.
    mock.set_position("BTCUSDT", dec!(0.01), dec!(57000));
    let tp = request(
        Side::Sell,
        dec!(0.01),
        OrderType::Trigger {
            trigger_price: dec!(61000),
            kind: TriggerKind::TakeProfit,
            limit_price: Some(dec!(60900)),
        },
        true,
    );
    v.place_order(&approved(&tp)).await.unwrap();
    let sent = last_post(&mock, "/fapi/v1/algoOrder");
    assert_eq!(sent.query("type"), Some("TAKE_PROFIT"));
    assert_eq!(sent.query("price"), Some("60900"));
    v.cancel_order("BTC", &tp.client_id).await.unwrap();
    assert_eq!(
        mock.order_status(tp.client_id.as_str()).as_deref(),
        Some("CANCELED")
    );
    let missing = ClientOrderId::generate();
    assert_eq!(v.query_order("BTC", &missing).await.unwrap(), None);
    assert!(matches!(
        v.cancel_order("BTC", &missing).await,
        Err(VenueError::OrderNotFound { .. })
    ));
}

#[actix::test]
async fn margin_type_is_set_once_and_no_need_to_change_is_success() {
    let mock = MockBinanceFutures::start();
    let mut cfg = config(&mock);
    cfg.margin_type = Some(MarginType::Cross);
    let v = open(&cfg);
    // The mock's account is already cross: Binance answers -4046, which is success.
    v.place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap();
    v.place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap();
    assert_eq!(
        mock.count("/fapi/v1/marginType"),
        1,
        "once per symbol per run"
    );

    cfg.margin_type = Some(MarginType::Isolated);
    let v = open(&cfg);
    v.set_margin_type("ETH", MarginType::Isolated)
        .await
        .unwrap();
    assert_eq!(mock.leverage_and_margin("ETHUSDT").unwrap().1, "isolated");
    v.set_leverage("ETH", 5).await.unwrap();
    assert_eq!(v.leverage("ETH").await.unwrap(), 5);
    let err = v.set_leverage("ETH", 200).await.unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
}

#[actix::test]
async fn an_account_in_hedge_mode_is_refused_before_anything_is_sent() {
    let mock = MockBinanceFutures::start();
    mock.set_dual_side(true);
    let v = venue(&mock);
    let err = v
        .place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap_err();
    let VenueError::InvalidRequest { reason, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        reason.contains("hedge mode") && reason.contains("one-way"),
        "{reason}"
    );
    assert_eq!(posts(&mock, "/fapi/v1/order"), 0);
    assert!(v.hedge_mode().await.unwrap());
}

#[actix::test]
async fn below_min_notional_is_refused_locally_and_binances_4164_rereads_the_filters() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    // 0.001 BTC at a 4000 reference is 4 USDT: under the 5 minimum, refused unsent.
    let err = v
        .place_order(&approve_for_venue_test(
            request(Side::Buy, dec!(0.001), market(), false),
            dec!(4000),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }), "{err}");
    assert_eq!(posts(&mock, "/fapi/v1/order"), 0);
    // A reduce-only order is exempt from MIN_NOTIONAL (locally as at Binance).
    mock.set_position("BTCUSDT", dec!(0.001), dec!(60000));
    let o = v
        .place_order(&approve_for_venue_test(
            request(Side::Sell, dec!(0.001), market(), true),
            dec!(4000),
        ))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Filled);

    // Binance raised the minimum after our filters were cached: its -4164 is a rejection
    // and the next order reads exchangeInfo again.
    mock.set_min_notional("BTCUSDT", dec!(100));
    let infos = mock.count("/fapi/v1/exchangeInfo");
    let err = v
        .place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap_err();
    let VenueError::Rejected { reason, .. } = &err else {
        panic!("{err}")
    };
    assert!(reason.contains("-4164"), "{reason}");
    let err = v
        .place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, VenueError::InvalidRequest { .. }),
        "refused locally now: {err}"
    );
    assert_eq!(mock.count("/fapi/v1/exchangeInfo"), infos + 1);
}

async fn order_with_lost_answer(fault: Fault) {
    let mock = MockBinanceFutures::start();
    let store = Store::temporary().unwrap();
    let core = gateway(&store, venue(&mock));
    core.reconcile("bnf").await.unwrap();
    mock.push_fault(fault);
    let report = core
        .place(OrderIntent {
            venue: "bnf".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            amount: Amount::Usd(dec!(100)),
            pricing: Pricing::Market,
            reduce_only: false,
            origin: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Filled, "resolved by client id");
    assert_eq!(report.filled_size, dec!(0.001));
    assert_eq!(
        mock.order_posts(report.client_id.as_str()),
        1,
        "never re-sent"
    );
    assert_eq!(posts(&mock, "/fapi/v1/order"), 1);
    let query = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.route() == "/fapi/v1/order")
        .unwrap();
    assert_eq!(
        query.query("origClientOrderId"),
        Some(report.client_id.as_str())
    );
    assert_eq!(mock.position("BTCUSDT"), dec!(0.001));
}

#[actix::test]
async fn an_order_whose_answer_is_lost_is_resolved_by_client_id_not_resent() {
    order_with_lost_answer(Fault::ResetAfterOrder).await;
}

#[actix::test]
async fn a_5xx_after_the_order_was_applied_is_resolved_by_client_id_not_resent() {
    order_with_lost_answer(Fault::ServerErrorAfterOrder).await;
}

/// Passes `d` on tokio's clock; see the spot venue's tests.
async fn pass_time(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

#[actix::test]
async fn a_429_blocks_every_request_until_retry_after_and_orders_are_refused_unsent() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    v.instrument("BTC").await.unwrap();
    mock.push_fault(Fault::RateLimited {
        retry_after_secs: 120,
    });
    let err = v.quote("BTC").await.unwrap_err();
    let VenueError::RateLimited { retry_after, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(120)));
    let sent = mock.requests().len();
    let err = v
        .place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::RateLimited { .. }), "{err}");
    assert_eq!(mock.requests().len(), sent, "nothing sent while blocked");
    pass_time(Duration::from_secs(121)).await;
    v.quote("BTC").await.unwrap();
}

#[actix::test]
async fn clock_skew_resyncs_with_fapi_time_and_the_order_exists_once() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    v.instrument("BTC").await.unwrap();
    mock.set_clock_offset_ms(-30_000);
    let req = request(Side::Buy, dec!(0.001), market(), false);
    let o = v.place_order(&approved(&req)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(mock.count("/fapi/v1/time"), 1);
    // The hedge-mode read resynced first; the order went out once, after it.
    assert_eq!(mock.order_posts(req.client_id.as_str()), 1);
    assert_eq!(mock.position("BTCUSDT"), dec!(0.001));
}

#[actix::test]
async fn malformed_answers_are_typed_errors_and_the_keys_never_print() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    mock.push_fault(Fault::Malformed);
    let err = v.funding("BTC").await.unwrap_err();
    assert!(matches!(err, VenueError::Malformed { .. }), "{err}");
    v.place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap();
    mock.push_fault(Fault::Malformed);
    let err = v
        .place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap_err();
    assert!(matches!(err, VenueError::OutcomeUnknown { .. }), "{err}");
    let shown = format!("{v:?}");
    assert!(
        !shown.contains(MOCK_API_SECRET) && !shown.contains(MOCK_API_KEY),
        "{shown}"
    );
    let missing =
        BinanceFuturesVenue::open_with_env("bnf", &config(&mock), system_clock(), &|_| None)
            .unwrap_err()
            .to_string();
    assert!(missing.contains("BINANCE_FUTURES_API_KEY"), "{missing}");
}

#[actix::test]
async fn funding_and_open_interest_are_typed_decimals_oldest_first() {
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    let f = v.funding("BTC").await.unwrap();
    assert_eq!(f.symbol, "BTC");
    assert_eq!(f.mark_price, dec!(60000));
    assert_eq!(f.index_price, dec!(59998.5));
    assert_eq!(f.funding_rate, dec!(0.0001));
    assert!(f.next_funding_time_ms > f.time_ms);
    let h = v.funding_history("SOL", 3).await.unwrap();
    assert_eq!(h.len(), 3);
    assert!(h[0].time_ms < h[2].time_ms);
    assert_eq!(h[0].rate, dec!(-0.000025));
    assert_eq!(h[2].rate, dec!(-0.00002498));
    let oi = v.open_interest("ETH").await.unwrap();
    assert_eq!(oi.open_interest, dec!(1523456.789));
    let hist = v
        .open_interest_history("BTC", OiPeriod::H1, 5)
        .await
        .unwrap();
    assert_eq!(hist.len(), 5);
    assert_eq!(hist[4].open_interest, dec!(81234.567));
    assert_eq!(hist[4].open_interest_value, dec!(81234.567) * dec!(60000));
    assert_eq!(hist[4].time_ms - hist[3].time_ms, 3_600_000);
    let sent = mock
        .requests()
        .into_iter()
        .find(|r| r.route() == "/futures/data/openInterestHist")
        .unwrap();
    assert_eq!(sent.query("period"), Some("1h"));
    // Public endpoints: no key is sent.
    assert_eq!(sent.header("x-mbx-apikey"), None);
}

#[actix::test]
async fn the_order_count_headers_are_observed_into_the_order_pools() {
    use super::config::ORDERS_1M_POOL;
    use crate::exchanges::binance::config::ORDERS_POOL;
    let mock = MockBinanceFutures::start();
    let v = venue(&mock);
    // Another process of the same account placed 250 orders in these 10 seconds.
    mock.add_orders_placed_elsewhere(250);
    v.place_order(&approved(&request(Side::Buy, dec!(0.001), market(), false)))
        .await
        .unwrap();
    // Binance reported 251 of 300 (10 s) and of 1200 (1 min): that is what is left,
    // not the 299 / 1199 this process alone would count.
    assert!(v.pool_headroom(ORDERS_POOL).unwrap() <= 49);
    assert!(v.pool_headroom(ORDERS_1M_POOL).unwrap() <= 949);
    let headroom = v.weight_headroom().unwrap();
    assert!(headroom < 2400 && headroom > 2300, "{headroom}");
}

#[actix::test]
async fn the_funding_interval_is_fundinginfo_s_where_listed_else_8_hours() {
    let mock = MockBinanceFutures::start();
    mock.set_funding_interval_hours("SOLUSDT", 4);
    let v = venue(&mock);
    let btc = v.funding("BTC").await.unwrap();
    assert_eq!(btc.funding_interval_hours, 8);
    // 0.0001 per 8 h is 10.95 % a year.
    assert_eq!(btc.annualized_pct(), dec!(10.95));
    let sol = v.funding("SOL").await.unwrap();
    assert_eq!(sol.funding_interval_hours, 4);
    assert_eq!(
        sol.annualized_pct(),
        dec!(-0.000025) * dec!(2190) * dec!(100)
    );
    assert_eq!(sol.next_funding_time_ms % (4 * 3_600_000), 0);
    // The list is read once and reused.
    assert_eq!(mock.count("/fapi/v1/fundingInfo"), 1);
}
