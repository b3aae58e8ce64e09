//! Tests of the Binance stream pieces against the loopback mocks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::listen_key::{self, ApiKey, ListenKeyApi, ListenKeyError, ListenKeyLifecycle};
use crate::clock::system_clock;
use crate::exchanges::binance::mock::{MockBinance, MOCK_API_KEY};
use crate::exchanges::stream::connection::StreamError;
use crate::exchanges::venue::VenueError;

const ROUTE: &str = "/api/v3/userDataStream";

fn api(mock: &MockBinance, key: &str) -> ListenKeyApi {
    ListenKeyApi::new(
        "bn",
        &mock.url(),
        listen_key::SPOT,
        ApiKey::new(key),
        Duration::from_secs(5),
        system_clock(),
    )
    .unwrap()
}

#[tokio::test]
async fn listen_key_is_created_kept_alive_and_closed_with_the_api_key_header() {
    let mock = MockBinance::start();
    let mut life = ListenKeyLifecycle::new(api(&mock, MOCK_API_KEY), Duration::from_secs(1800));
    let counts = life.counts();
    let url = life.open("ws://127.0.0.1:1").await.unwrap();
    let keys = mock.listen_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(url, format!("ws://127.0.0.1:1/ws/{}", keys[0].0));
    assert_eq!(mock.count_method("POST", ROUTE), 1);

    // Not due yet: no PUT.
    life.tick(Instant::now()).await.unwrap();
    assert_eq!(mock.count_method("PUT", ROUTE), 0);
    // 30 minutes later: one PUT naming the key, with the API key header.
    life.tick(Instant::now() + Duration::from_secs(1801))
        .await
        .unwrap();
    assert_eq!(mock.count_method("PUT", ROUTE), 1);
    let put = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.query("listenKey"), Some(keys[0].0.as_str()));
    assert_eq!(put.header("x-mbx-apikey"), Some(MOCK_API_KEY));
    assert!(
        put.query("signature").is_none(),
        "listen-key calls are not signed"
    );

    life.close().await;
    assert_eq!(mock.count_method("DELETE", ROUTE), 1);
    assert!(!mock.listen_keys()[0].1, "the key was closed at the venue");
    assert!(!life.has_key());
    assert_eq!(counts.created.load(Ordering::Relaxed), 1);
    assert_eq!(counts.kept_alive.load(Ordering::Relaxed), 1);
    assert_eq!(counts.closed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_expired_listen_key_ends_the_connection_and_a_new_one_is_created() {
    let mock = MockBinance::start();
    let mut life = ListenKeyLifecycle::new(api(&mock, MOCK_API_KEY), Duration::from_secs(1800));
    life.open("ws://h").await.unwrap();
    mock.expire_listen_keys();
    // The keep-alive meets -1125: a typed expiry, the connection must end.
    let end = life
        .tick(Instant::now() + Duration::from_secs(1801))
        .await
        .unwrap_err();
    assert!(matches!(end, StreamError::OutOfSync(_)), "{end:?}");
    assert!(!life.has_key());
    let url = life.open("ws://h").await.unwrap();
    let keys = mock.listen_keys();
    assert_eq!(keys.len(), 2, "a new key was created");
    assert!(keys[1].1);
    assert!(url.ends_with(&keys[1].0));

    // The `listenKeyExpired` event: the next tick ends the connection without a call.
    let puts = mock.count_method("PUT", ROUTE);
    life.mark_expired();
    assert!(matches!(
        life.tick(Instant::now()).await,
        Err(StreamError::OutOfSync(_))
    ));
    assert_eq!(mock.count_method("PUT", ROUTE), puts);
    assert_eq!(life.counts().expired.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn listen_key_errors_are_typed_and_never_show_the_keys() {
    let mock = MockBinance::start();
    let bad = api(&mock, "not-the-key");
    match bad.create().await {
        Err(ListenKeyError::Venue(VenueError::Auth { reason, .. })) => {
            assert!(!reason.contains("not-the-key"), "{reason}")
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let good = api(&mock, MOCK_API_KEY);
    let key = good.create().await.unwrap();
    assert_eq!(format!("{key:?}"), "ListenKey(***)");
    assert!(!format!("{good:?}").contains(MOCK_API_KEY));
    good.close(&key).await.unwrap();
    assert!(matches!(
        good.keep_alive(&key).await,
        Err(ListenKeyError::Expired { .. })
    ));
    // Unreachable venue: an error under the deadline, not a hang.
    let addr = crate::testkit::refused_addr();
    let gone = ListenKeyApi::new(
        "bn",
        &format!("http://{addr}"),
        listen_key::SPOT,
        ApiKey::new(MOCK_API_KEY),
        Duration::from_secs(2),
        system_clock(),
    )
    .unwrap();
    let e = gone.keep_alive(&key).await.unwrap_err();
    assert!(
        matches!(e, ListenKeyError::Venue(VenueError::Unavailable { .. })),
        "{e:?}"
    );
    assert!(!e.to_string().contains(key.as_str()), "{e}");
}

// ---- frames -------------------------------------------------------------------------

use std::sync::Arc;

use actix::Actor;
use rust_decimal_macros::dec;

use super::spot::{self, DepthSource, SpotMarket, SpotMarketProtocol};
use super::user::{self, UserEvent};
use crate::exchanges::binance::mock::{DepthBook, MOCK_API_SECRET};
use crate::exchanges::binance::ws_mock::{self, BinanceWsMock, Conn};
use crate::exchanges::binance::{BinanceConfig, BinanceSpotVenue, API_KEY_ENV, API_SECRET_ENV};
use crate::exchanges::stream::book::{StreamBook, VenueFeed};
use crate::exchanges::stream::connection::{StreamFeed, StreamSettings};
use crate::exchanges::stream::pushed::PushSink;
use crate::exchanges::types::{OrderStatus, Side, Timeframe};
use crate::resilience::config::BackoffConfig;

const VENUE: &str = "bn";

#[test]
fn every_documented_market_frame_parses_to_its_type() {
    // The spot docs' bookTicker payload: no event type, no time.
    let t = spot::parse(&ws_mock::book_ticker_frame(
        "BNBUSDT",
        400900217,
        "25.35190000",
        "25.36520000",
    ))
    .unwrap();
    let SpotMarket::BookTicker(t) = t else {
        panic!("{t:?}")
    };
    assert_eq!(
        (t.u, t.pair.as_str(), t.bid, t.ask, t.bid_qty),
        (
            400900217,
            "BNBUSDT",
            dec!(25.3519),
            dec!(25.3652),
            dec!(31.21)
        )
    );

    let a = spot::parse(&ws_mock::agg_trade_frame(
        "BTCUSDT",
        "60001.5",
        1672515782136,
    ))
    .unwrap();
    let SpotMarket::AggTrade(a) = a else {
        panic!("{a:?}")
    };
    assert_eq!(
        (a.price, a.qty, a.id, a.trade_time, a.buyer_maker),
        (dec!(60001.5), dec!(100), 12345, 1672515782136, true)
    );

    let k = spot::parse(&ws_mock::kline_frame(
        "BTCUSDT",
        "1m",
        1672515780000,
        "0.0020",
    ))
    .unwrap();
    let SpotMarket::Kline(k) = k else {
        panic!("{k:?}")
    };
    assert_eq!(
        (
            k.kline.open_time,
            k.kline.close_time,
            k.kline.interval.as_str()
        ),
        (1672515780000, 1672515839999, "1m")
    );
    assert_eq!(
        (
            k.kline.open,
            k.kline.close,
            k.kline.high,
            k.kline.volume,
            k.kline.closed
        ),
        (dec!(0.0010), dec!(0.0020), dec!(0.0025), dec!(1000), false)
    );

    let dframe = ws_mock::depth_frame(
        "BNBBTC",
        157,
        160,
        &[("0.0024", "10")],
        &[("0.0026", "100")],
        1672515782136,
    );
    let SpotMarket::Depth(d) = spot::parse(&dframe).unwrap() else {
        panic!("not depth")
    };
    assert_eq!(
        (d.first_update_id, d.final_update_id, d.bids[0], d.asks[0]),
        (
            157,
            160,
            [dec!(0.0024), dec!(10)],
            [dec!(0.0026), dec!(100)]
        )
    );
}

#[test]
fn malformed_market_frames_are_errors_not_panics() {
    let whole = ws_mock::book_ticker_frame("BTCUSDT", 1, "1", "2");
    for bad in [
        &whole[..whole.len() / 2],
        "not json",
        "",
        // A raw payload without the envelope.
        r#"{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}"#,
        // A stream this engine never subscribes to.
        r#"{"stream":"btcusdt@ticker","data":{}}"#,
        r#"{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"x","B":"1","a":"2","A":"1"}}"#,
        r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1"]],"a":[]}}"#,
    ] {
        let e = spot::parse(bad).unwrap_err();
        assert!(e.to_string().contains("not a known Binance message"), "{e}");
    }
}

/// The recorded spot `executionReport` of a TRADE (an ETHUSDT BUY of 1 at 2500, commission
/// 0.001 ETH), with an engine client id.
const TRADE_REPORT: &str = r#"{"e":"executionReport","E":1709654401000,"s":"ETHUSDT","c":"0123456789abcdef0123456789abcdef","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"2500.00000000","P":"0.00000000","x":"TRADE","X":"FILLED","r":"NONE","i":12345678,"l":"1.00000000","z":"1.00000000","L":"2500.00000000","n":"0.00100000","N":"ETH","T":1709654401000,"t":98765432,"w":false,"m":true,"O":1709654400000,"Z":"2500.00000000","C":""}"#;

#[test]
fn documented_user_events_parse_and_an_execution_report_is_an_order_state_and_a_fill() {
    let cfg = BinanceConfig::default();
    let UserEvent::ExecutionReport(r) = user::parse(TRADE_REPORT).unwrap() else {
        panic!("not a report")
    };
    let u = user::to_update(VENUE, &cfg, &r, |_| None).unwrap();
    assert_eq!(u.venue, VENUE);
    assert!(!u.snapshot);
    let o = &u.orders[0];
    assert_eq!(
        o.client_id.as_ref().unwrap().as_str(),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        (o.symbol.as_str(), o.side, o.status, o.size, o.filled_size),
        ("ETH", Side::Buy, OrderStatus::Filled, dec!(1), dec!(1))
    );
    assert_eq!(
        (o.venue_order_id.as_str(), o.avg_fill_price, o.limit_price),
        ("12345678", Some(dec!(2500)), Some(dec!(2500)))
    );
    let f = &u.fills[0];
    assert_eq!(
        (f.fill_id.as_str(), f.price, f.size, f.time_ms),
        ("98765432", dec!(2500), dec!(1), 1709654401000)
    );
    // 0.001 ETH at the fill's price.
    assert_eq!(f.fee, dec!(2.5));
    assert_eq!(f.fee_asset.as_ref().unwrap().asset, "ETH");

    // The recorded NEW and CANCELED reports: order states, no fill.
    let new = r#"{"e":"executionReport","E":1709654400000,"s":"ETHUSDT","c":"x-TD67BGP9-T0000000000000","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"2500.00000000","P":"0.00000000","x":"NEW","X":"NEW","r":"NONE","i":12345678,"l":"0.00000000","z":"0.00000000","L":"0.00000000","n":"0","N":null,"T":1709654400000,"t":-1,"w":true,"m":false,"O":1709654400000,"Z":"0.00000000","C":""}"#;
    let UserEvent::ExecutionReport(r) = user::parse(new).unwrap() else {
        panic!()
    };
    let u = user::to_update(VENUE, &cfg, &r, |_| None).unwrap();
    assert_eq!((u.orders[0].status, u.fills.len()), (OrderStatus::Acked, 0));
    assert_eq!(
        u.orders[0].client_id, None,
        "not an engine id: adopted by order id"
    );
    // A cancel: `c` is the cancel request's id, `C` the order's own.
    let cancel = TRADE_REPORT
        .replace(
            r#""x":"TRADE","X":"FILLED""#,
            r#""x":"CANCELED","X":"CANCELED""#,
        )
        .replace(
            r#""c":"0123456789abcdef0123456789abcdef""#,
            r#""c":"cancelReq1""#,
        )
        .replace(r#""C":"""#, r#""C":"0123456789abcdef0123456789abcdef""#);
    let UserEvent::ExecutionReport(r) = user::parse(&cancel).unwrap() else {
        panic!()
    };
    let u = user::to_update(VENUE, &cfg, &r, |_| None).unwrap();
    assert_eq!(u.orders[0].status, OrderStatus::Cancelled);
    assert_eq!(
        u.orders[0].client_id.as_ref().unwrap().as_str(),
        "0123456789abcdef0123456789abcdef"
    );
    assert!(u.fills.is_empty());
    // A fee in BNB is priced from the stream's BNB quote when there is one, else kept.
    let bnb = TRADE_REPORT.replace(r#""N":"ETH""#, r#""N":"BNB""#);
    let UserEvent::ExecutionReport(r) = user::parse(&bnb).unwrap() else {
        panic!()
    };
    let priced = user::to_update(VENUE, &cfg, &r, |a| (a == "BNB").then_some(dec!(600))).unwrap();
    assert_eq!(priced.fills[0].fee, dec!(0.6));
    let kept = user::to_update(VENUE, &cfg, &r, |_| None).unwrap();
    assert_eq!(
        (
            kept.fills[0].fee,
            kept.fills[0].fee_asset.as_ref().unwrap().usd_price
        ),
        (dec!(0), None)
    );

    // The recorded outboundAccountPosition, and listenKeyExpired.
    let p = r#"{"e":"outboundAccountPosition","E":1709654400000,"u":1709654400000,"B":[{"a":"USDT","f":"10000.00000000","l":"2500.00000000"},{"a":"ETH","f":"5.00000000","l":"0.00000000"}]}"#;
    let UserEvent::AccountPosition(p) = user::parse(p).unwrap() else {
        panic!()
    };
    assert_eq!(
        (
            p.balances[0].asset.as_str(),
            p.balances[0].free,
            p.balances[0].locked
        ),
        ("USDT", dec!(10000), dec!(2500))
    );
    assert_eq!(
        user::parse(&ws_mock::listen_key_expired_frame("k", 1576653824250)).unwrap(),
        UserEvent::ListenKeyExpired
    );
    assert_eq!(
        user::parse(r#"{"e":"balanceUpdate","E":1,"a":"BTC","d":"0.001","T":1}"#).unwrap(),
        UserEvent::BalanceUpdate
    );

    // Impossible content is refused, not pushed.
    let neg = TRADE_REPORT.replace(r#""l":"1.00000000""#, r#""l":"-1""#);
    let UserEvent::ExecutionReport(r) = user::parse(&neg).unwrap() else {
        panic!()
    };
    assert!(user::to_update(VENUE, &cfg, &r, |_| None).is_err());
    let no_trade = TRADE_REPORT.replace(r#""t":98765432"#, r#""t":-1"#);
    let UserEvent::ExecutionReport(r) = user::parse(&no_trade).unwrap() else {
        panic!()
    };
    assert!(user::to_update(VENUE, &cfg, &r, |_| None).is_err());
    for bad in [
        "{",
        r#"{"e":"somethingNew"}"#,
        r#"{"e":"executionReport","s":"X"}"#,
    ] {
        assert!(user::parse(bad).is_err(), "{bad}");
    }
}

// ---- the connection against the mocks --------------------------------------------------

fn env(k: &str) -> Option<String> {
    match k {
        API_KEY_ENV => Some(MOCK_API_KEY.into()),
        API_SECRET_ENV => Some(MOCK_API_SECRET.into()),
        _ => None,
    }
}

fn rest_venue(rest: &MockBinance) -> Arc<BinanceSpotVenue> {
    let cfg = BinanceConfig {
        base_url: rest.url(),
        request_timeout: Duration::from_secs(5),
        ..BinanceConfig::default()
    };
    Arc::new(BinanceSpotVenue::open_with_env(VENUE, &cfg, system_clock(), &env).unwrap())
}

/// Deadlines long enough never to fire on a loaded machine, backoff short.
fn settings(url: &str, stale_after: Duration) -> StreamSettings {
    let mut s = spot::settings(VENUE, url, stale_after);
    s.backoff = BackoffConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        ..BackoffConfig::default()
    };
    s
}

/// Polls `cond` every 5 ms until it holds; fails after a generous bound (a hang, not a
/// latency assertion).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn btc_depth(last: u64, bid: &str, ask: &str) -> DepthBook {
    DepthBook {
        last_update_id: last,
        bids: vec![
            (bid.into(), "1.00000000".into()),
            ("59000.00000000".into(), "2.00000000".into()),
        ],
        asks: vec![
            (ask.into(), "1.50000000".into()),
            ("61000.00000000".into(), "3.00000000".into()),
        ],
    }
}

struct Market {
    rest: MockBinance,
    ws: BinanceWsMock,
    book: StreamBook,
    feed: Arc<VenueFeed>,
    books: super::DepthBooks,
    counts: Arc<spot::DepthCounts>,
    actor: actix::Addr<StreamFeed>,
}

async fn market(
    stale_after: Duration,
    life: Option<Duration>,
    tweak: impl FnOnce(&mut StreamSettings),
) -> Market {
    market_on(
        BinanceWsMock::start().await.unwrap(),
        stale_after,
        life,
        tweak,
    )
    .await
}

async fn market_on(
    ws: BinanceWsMock,
    stale_after: Duration,
    life: Option<Duration>,
    tweak: impl FnOnce(&mut StreamSettings),
) -> Market {
    let rest = MockBinance::start();
    let venue = rest_venue(&rest);
    let book = StreamBook::new();
    let feed = book.register(VENUE, &ws.url(), stale_after);
    let cfg = BinanceConfig::default();
    let mut protocol = SpotMarketProtocol::new(
        VENUE,
        &cfg,
        &["BTC".to_string()],
        &[Timeframe::M1],
        Some(venue as Arc<dyn DepthSource>),
        system_clock(),
    );
    if let Some(life) = life {
        protocol = protocol.with_max_lifetime(life);
    }
    let (books, counts) = (protocol.books(), protocol.counts());
    let mut s = settings(&ws.url(), stale_after);
    tweak(&mut s);
    let actor = StreamFeed::new(s, Box::new(protocol), feed.clone()).start();
    until("connected", || {
        feed.is_connected() && ws.has_connection(Conn::Market)
    })
    .await;
    Market {
        rest,
        ws,
        book,
        feed,
        books,
        counts,
        actor,
    }
}

fn depth(first: u64, last: u64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> String {
    ws_mock::depth_frame("BTCUSDT", first, last, bids, asks, 1)
}

#[actix::test]
async fn market_streams_give_quotes_trades_candles_and_a_depth_book_kept_in_sync() {
    let m = market(Duration::from_secs(3600), None, |_| {}).await;
    assert_eq!(
        m.ws.paths()[0],
        "/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@kline_1m/btcusdt@depth@100ms"
    );
    m.rest.set_depth(
        "BTCUSDT",
        btc_depth(100, "60000.00000000", "60010.00000000"),
    );
    // Buffered until the snapshot: 95..=99 is older than it (dropped), 100..=102 straddles it.
    assert!(m
        .ws
        .send_text(Conn::Market, depth(95, 99, &[("1.0", "1")], &[])));
    assert!(m.ws.send_text(
        Conn::Market,
        depth(
            100,
            102,
            &[("60000.00000000", "0"), ("60001.00000000", "4")],
            &[]
        )
    ));
    until("synced from the snapshot", || {
        m.counts.synced.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(m.rest.count_method("GET", "/api/v3/depth"), 1);
    let snap = m
        .rest
        .requests()
        .into_iter()
        .find(|r| r.route() == "/api/v3/depth")
        .unwrap();
    assert_eq!(
        (snap.query("symbol"), snap.query("limit")),
        (Some("BTCUSDT"), Some("1000"))
    );
    let b = m.books.book("BTC").unwrap();
    assert_eq!(b.last_update_id, 102);
    assert_eq!(b.best_bid(), Some((dec!(60001), dec!(4))));
    assert_eq!(b.bids.len(), 2, "60000 removed, 60001 added, 59000 kept");
    assert_eq!(b.best_ask(), Some((dec!(60010), dec!(1.5))));
    // No bookTicker yet: the book's top is the quote, from the sync and each update.
    let q = m.book.fresh_quote(VENUE, "BTC").unwrap();
    assert_eq!((q.bid, q.ask), (dec!(60001), dec!(60010)));
    assert!(m.ws.send_text(
        Conn::Market,
        depth(103, 103, &[], &[("60009.00000000", "2")])
    ));
    until("applied", || {
        m.books.book("BTC").is_some_and(|b| b.last_update_id == 103)
    })
    .await;
    let q = m.book.fresh_quote(VENUE, "BTC").unwrap();
    assert_eq!((q.bid, q.ask), (dec!(60001), dec!(60009)));

    // Out of order (already covered): dropped, the book unchanged.
    let before = m.books.book("BTC").unwrap();
    assert!(m.ws.send_text(
        Conn::Market,
        depth(101, 103, &[("60001.00000000", "999")], &[])
    ));
    // A marker frame read after it proves it was processed.
    assert!(m.ws.send_text(
        Conn::Market,
        ws_mock::agg_trade_frame("BTCUSDT", "60005.5", 2)
    ));
    until("trade read", || {
        m.feed.fresh_trade("BTC") == Some(dec!(60005.5))
    })
    .await;
    assert_eq!(m.books.book("BTC").unwrap(), before);

    // 104 never arrives: 105 is a gap, counted as a resync; a new snapshot rebuilds it.
    m.rest.set_depth(
        "BTCUSDT",
        btc_depth(106, "60002.00000000", "60008.00000000"),
    );
    assert!(m
        .ws
        .send_text(Conn::Market, depth(105, 105, &[("1.0", "1")], &[])));
    assert!(m.ws.send_text(
        Conn::Market,
        depth(106, 107, &[("60002.00000000", "7")], &[])
    ));
    until("resynced", || m.counts.synced.load(Ordering::Relaxed) == 2).await;
    assert_eq!(m.counts.resyncs.load(Ordering::Relaxed), 1);
    assert_eq!(m.rest.count_method("GET", "/api/v3/depth"), 2);
    let b = m.books.book("BTC").unwrap();
    assert_eq!(
        (b.last_update_id, b.best_bid()),
        (107, Some((dec!(60002), dec!(7))))
    );
    assert_eq!(b.best_ask(), Some((dec!(60008), dec!(1.5))));
    assert!(
        !b.bids.contains_key(&dec!(1.0)),
        "the event before the snapshot is not applied"
    );

    // bookTicker: the quote (the depth top no longer stands in while it is fresh).
    assert!(m.ws.send_text(
        Conn::Market,
        ws_mock::book_ticker_frame("BTCUSDT", 1, "60003.10", "60004.20")
    ));
    until("ticker quote", || {
        m.book
            .fresh_quote(VENUE, "BTC")
            .is_some_and(|q| q.bid == dec!(60003.10))
    })
    .await;
    assert!(m.ws.send_text(
        Conn::Market,
        depth(108, 108, &[("60002.00000000", "8")], &[])
    ));
    until("applied", || {
        m.books.book("BTC").is_some_and(|b| b.last_update_id == 108)
    })
    .await;
    assert_eq!(
        m.book.fresh_quote(VENUE, "BTC").unwrap().ask,
        dec!(60004.20)
    );

    // A kline extends a series seeded from REST.
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let open = now - now.rem_euclid(60_000);
    let seed: Vec<_> = (0..3)
        .map(|i| crate::exchanges::types::Candle {
            open_time_ms: open - (3 - i) * 60_000,
            open: dec!(1),
            high: dec!(1),
            low: dec!(1),
            close: dec!(1),
            volume: dec!(1),
        })
        .collect();
    m.feed.seed_candles("BTC", Timeframe::M1, &seed);
    assert!(m.ws.send_text(
        Conn::Market,
        ws_mock::kline_frame("BTCUSDT", "1m", open, "0.0020")
    ));
    until("candle extends the series", || {
        m.feed
            .fresh_candles("BTC", Timeframe::M1, 4)
            .is_some_and(|c| c[3].close == dec!(0.0020))
    })
    .await;
    let health = m.book.health(VENUE).unwrap();
    let channels: Vec<_> = health.channels.iter().map(|c| c.channel.as_str()).collect();
    assert_eq!(channels, vec!["aggTrade", "bookTicker", "depth", "kline"]);
    m.actor.do_send(Stop);
}

#[derive(actix::Message)]
#[rtype(result = "()")]
struct Stop;

impl actix::Handler<Stop> for StreamFeed {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}

#[actix::test]
async fn market_stream_faults_reconnect_and_every_book_is_rebuilt_from_a_new_snapshot() {
    let m = market(Duration::from_secs(3600), None, |_| {}).await;
    m.rest
        .set_depth("BTCUSDT", btc_depth(10, "60000.00000000", "60010.00000000"));
    assert!(m.ws.send_text(Conn::Market, depth(11, 11, &[], &[])));
    until("synced", || m.counts.synced.load(Ordering::Relaxed) == 1).await;

    // Malformed JSON and half a JSON text: counted, dropped, still connected.
    assert!(m.ws.send_text(Conn::Market, "{not json"));
    let full = ws_mock::book_ticker_frame("BTCUSDT", 1, "1", "2");
    assert!(m.ws.send_text(Conn::Market, &full[..full.len() / 2]));
    until("two malformed frames", || m.feed.malformed() == 2).await;
    assert_eq!(m.ws.connections("/stream"), 1);

    // A websocket frame cut in half, then the TCP connection gone: reconnect; the book is
    // not served until a new snapshot syncs it.
    assert!(m.ws.cut_frame(
        Conn::Market,
        ws_mock::book_ticker_frame("BTCUSDT", 2, "9", "10")
    ));
    until("reconnected", || {
        m.ws.connections("/stream") == 2 && m.feed.is_connected()
    })
    .await;
    assert!(
        m.books.book("BTC").is_none(),
        "a new connection starts the book over"
    );
    assert!(!matches!(m.book.fresh_quote(VENUE, "BTC"), Some(q) if q.bid == dec!(9)));
    m.rest
        .set_depth("BTCUSDT", btc_depth(20, "60000.00000000", "60010.00000000"));
    assert!(m.ws.send_text(Conn::Market, depth(21, 21, &[], &[])));
    until("synced again", || {
        m.counts.synced.load(Ordering::Relaxed) == 2
    })
    .await;

    // A server close, and refused reconnects: no stream quote meanwhile, then back.
    assert!(m.ws.send_text(
        Conn::Market,
        ws_mock::book_ticker_frame("BTCUSDT", 3, "60000", "60001")
    ));
    until("quote", || m.book.fresh_quote(VENUE, "BTC").is_some()).await;
    m.ws.refuse();
    until("disconnected", || !m.feed.is_connected()).await;
    assert_eq!(
        m.book.fresh_quote(VENUE, "BTC"),
        None,
        "reads fall back to REST"
    );
    let before = m.feed.reconnects();
    until("refused attempts", || m.feed.reconnects() >= before + 3).await;
    m.ws.reopen().await.unwrap();
    until("back", || {
        m.feed.is_connected() && m.ws.has_connection(Conn::Market)
    })
    .await;
    // A snapshot failure (the REST venue answers 503) is retried, not fatal.
    m.rest
        .push_fault(crate::exchanges::binance::mock::Fault::ServerError);
    m.rest
        .set_depth("BTCUSDT", btc_depth(30, "60000.00000000", "60010.00000000"));
    assert!(m.ws.send_text(Conn::Market, depth(31, 31, &[], &[])));
    until("synced after a failed snapshot", || {
        m.counts.synced.load(Ordering::Relaxed) == 3
    })
    .await;
    assert!(m.ws.close(Conn::Market));
    until("reconnected after a server close", || {
        m.ws.connections("/stream") == 4
    })
    .await;
    m.actor.do_send(Stop);
}

#[actix::test]
async fn server_pings_are_answered_silence_and_the_lifetime_end_a_connection() {
    // The server pings every 20 ms: the pongs keep a connection whose silence bound is short.
    let ws = BinanceWsMock::start().await.unwrap();
    ws.set_ping_every(Duration::from_millis(20));
    let m = market_on(ws, Duration::from_secs(3600), None, |s| {
        s.ping_interval = Duration::from_millis(100);
        s.pong_timeout = Duration::from_millis(400);
    })
    .await;
    until("pings answered", || m.ws.pongs() >= 40).await;
    assert_eq!(
        m.ws.connections("/stream"),
        1,
        "server pings keep the connection"
    );
    // Silence (no pings, no data): the connection is replaced.
    m.ws.set_silent(true);
    until("a silent connection is replaced", || {
        m.ws.connections("/stream") >= 3
    })
    .await;
    m.ws.set_silent(false);
    // The server's lifetime (24 h at Binance; short here) ends a connection: reconnect.
    m.ws.set_lifetime(Duration::from_millis(200));
    until("connected", || {
        m.feed.is_connected() && m.ws.has_connection(Conn::Market)
    })
    .await;
    assert!(m.ws.close(Conn::Market));
    let n = m.ws.connections("/stream");
    until("server-side lifetime close", || {
        m.ws.connections("/stream") >= n + 2
    })
    .await;
    m.actor.do_send(Stop);
}

#[actix::test]
async fn the_client_rotates_its_connection_before_the_lifetime_limit() {
    let m = market(
        Duration::from_secs(3600),
        Some(Duration::from_millis(300)),
        |_| {},
    )
    .await;
    until("rotated twice", || m.ws.connections("/stream") >= 3).await;
    assert!(m.feed.reconnects() >= 2);
    m.actor.do_send(Stop);
}

#[actix::test]
async fn a_silent_stream_goes_stale_and_fresh_again() {
    let m = market(Duration::from_millis(300), None, |_| {}).await;
    assert!(m.ws.send_text(
        Conn::Market,
        ws_mock::book_ticker_frame("BTCUSDT", 1, "60000", "60001")
    ));
    until("quote", || m.book.fresh_quote(VENUE, "BTC").is_some()).await;
    until("stale", || m.book.fresh_quote(VENUE, "BTC").is_none()).await;
    let h = m.book.health(VENUE).unwrap();
    assert_eq!(
        h.channels[0].state,
        crate::exchanges::stream::FeedState::Stale
    );
    assert!(m.ws.send_text(
        Conn::Market,
        ws_mock::book_ticker_frame("BTCUSDT", 2, "60002", "60003")
    ));
    until("fresh", || {
        m.book
            .fresh_quote(VENUE, "BTC")
            .is_some_and(|q| q.bid == dec!(60002))
    })
    .await;
    m.actor.do_send(Stop);
}

// ---- user data stream ------------------------------------------------------------------

#[actix::test]
async fn user_stream_pushes_the_rest_mocks_fills_and_renews_an_expired_key() {
    let rest = MockBinance::start();
    let ws = BinanceWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register_user(VENUE, &ws.url(), Duration::from_secs(3600));
    let cfg = BinanceConfig::default();
    let life = ListenKeyLifecycle::new(api(&rest, MOCK_API_KEY), Duration::from_secs(1800));
    let counts = life.counts();
    let (sink, mut rx) = PushSink::channel(16);
    let protocol = super::SpotUserProtocol::new(VENUE, &cfg, life).with_sink(sink);
    let actor = StreamFeed::new(
        settings(&ws.url(), Duration::from_secs(3600)),
        Box::new(protocol),
        feed.clone(),
    )
    .start();
    until("user stream connected", || {
        feed.is_connected() && ws.has_connection(Conn::User)
    })
    .await;
    let key = rest.listen_keys()[0].0.clone();
    assert_eq!(ws.paths(), vec![format!("/ws/{key}")]);

    // An order filled on the REST mock: its executionReport reaches the sink as a fill.
    let venue = rest_venue(&rest);
    use crate::exchanges::venue::Venue;
    let req = crate::exchanges::types::OrderRequest {
        client_id: crate::exchanges::types::ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(0.001),
        order_type: crate::exchanges::types::OrderType::Market {
            max_slippage: dec!(0.01),
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    let placed = venue
        .place_order(&crate::exchanges::risk_gate::approve_for_venue_test(
            req.clone(),
            rust_decimal::Decimal::ONE,
        ))
        .await
        .unwrap();
    assert_eq!(placed.status, OrderStatus::Filled);
    let reports = rest.take_execution_reports();
    assert_eq!(reports.len(), 1);
    for r in &reports {
        assert!(ws.send_text(Conn::User, r.to_string()));
    }
    assert!(ws.send_text(Conn::User, rest.account_position_event().to_string()));
    let update = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update.orders[0].client_id.as_ref(), Some(&req.client_id));
    assert_eq!(update.orders[0].status, OrderStatus::Filled);
    let fills = venue.fills_since(0).await.unwrap();
    assert_eq!(update.fills.len(), 1);
    assert_eq!(
        update.fills[0].fill_id, fills[0].fill_id,
        "the stream's fill id is REST's trade id"
    );
    assert_eq!(
        (
            update.fills[0].price,
            update.fills[0].size,
            update.fills[0].fee
        ),
        (fills[0].price, fills[0].size, fills[0].fee)
    );
    until("balances kept in the user feed", || {
        feed.balances()
            .iter()
            .any(|b| b.asset == "BTC" && b.free > dec!(0))
    })
    .await;
    let usdt = feed
        .balances()
        .into_iter()
        .find(|b| b.asset == "USDT")
        .unwrap();
    assert_eq!(usdt.free, rest.balance("USDT").0);

    // The key expires at the venue and the stream says so: a new key, a new connection.
    rest.expire_listen_keys();
    assert!(ws.send_text(Conn::User, ws_mock::listen_key_expired_frame(&key, 1)));
    until("reconnected with a new key", || {
        ws.connections("/ws/") == 2 && feed.is_connected()
    })
    .await;
    let keys = rest.listen_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0].0, keys[1].0);
    assert_eq!(ws.paths()[1], format!("/ws/{}", keys[1].0));
    assert_eq!(counts.expired.load(Ordering::Relaxed), 1);
    assert_eq!(counts.created.load(Ordering::Relaxed), 2);
    actor.do_send(Stop);
}

#[actix::test]
async fn a_lost_user_connection_closes_its_key_and_the_next_one_creates_another() {
    let rest = MockBinance::start();
    let ws = BinanceWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register_user(VENUE, &ws.url(), Duration::from_secs(3600));
    let life = ListenKeyLifecycle::new(api(&rest, MOCK_API_KEY), Duration::from_secs(1800));
    let counts = life.counts();
    let protocol = super::SpotUserProtocol::new(VENUE, &BinanceConfig::default(), life);
    let actor = StreamFeed::new(
        settings(&ws.url(), Duration::from_secs(3600)),
        Box::new(protocol),
        feed.clone(),
    )
    .start();
    until("connected", || feed.is_connected()).await;
    assert!(ws.close(Conn::User));
    until("reconnected", || {
        ws.connections("/ws/") == 2 && feed.is_connected()
    })
    .await;
    assert_eq!(rest.count_method("DELETE", ROUTE), 1, "the old key closed");
    assert_eq!(counts.created.load(Ordering::Relaxed), 2);
    let keys = rest.listen_keys();
    assert_eq!((keys[0].1, keys[1].1), (false, true));
    actor.do_send(Stop);
}

// ---- user stream -> gateway ledger, with REST reconciliation -----------------------------

#[actix::test]
async fn a_fill_from_the_user_stream_reaches_the_ledger_once_with_rest_reconciliation_too() {
    use crate::exchanges::connector::Connector;
    use crate::exchanges::gateway::{Amount, GatewayConfig, GatewayCore, OrderIntent, Pricing};
    use crate::exchanges::risk_gate::RiskConfig;
    use crate::exchanges::types::TimeInForce;
    use crate::store::Store;
    use crate::supervisor::Slot;

    let rest = MockBinance::start();
    let ws = BinanceWsMock::start().await.unwrap();
    let slot = Slot::<Connector>::new();
    slot.fill(
        Connector::new(rest_venue(&rest)).start(),
        slot.next_token(),
        "test/bn",
    );
    let store = Store::temporary().unwrap();
    let core = GatewayCore::open(
        &store,
        std::collections::BTreeMap::from([(VENUE.to_string(), slot)]),
        RiskConfig::default(),
        GatewayConfig::default(),
        system_clock(),
    )
    .unwrap();
    core.reconcile(VENUE).await.unwrap();

    // The user stream, its updates delivered to a channel the test hands to the gateway.
    let book = StreamBook::new();
    let feed = book.register_user(VENUE, &ws.url(), Duration::from_secs(3600));
    let life = ListenKeyLifecycle::new(api(&rest, MOCK_API_KEY), Duration::from_secs(1800));
    let (sink, mut rx) = PushSink::channel(16);
    let protocol =
        super::SpotUserProtocol::new(VENUE, &BinanceConfig::default(), life).with_sink(sink);
    let actor = StreamFeed::new(
        settings(&ws.url(), Duration::from_secs(3600)),
        Box::new(protocol),
        feed.clone(),
    )
    .start();
    until("user stream connected", || {
        feed.is_connected() && ws.has_connection(Conn::User)
    })
    .await;

    // A limit buy rests; the market moves through it on the venue.
    let report = core
        .place(OrderIntent {
            venue: VENUE.into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            amount: Amount::Base(dec!(0.001)),
            pricing: Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
            reduce_only: false,
            origin: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(report.status, OrderStatus::Acked);
    rest.take_execution_reports();
    rest.set_book("BTCUSDT", dec!(58990), dec!(58995));
    let reports = rest.take_execution_reports();
    assert_eq!(reports.len(), 1);
    assert!(ws.send_text(Conn::User, reports[0].to_string()));
    let update = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let trades = rest.count_method("GET", "/api/v3/myTrades");
    let applied = core.apply_pushed(update.clone()).await.unwrap();
    assert_eq!((applied.fills_applied, applied.orders_applied), (1, 1));
    assert_eq!(
        rest.count_method("GET", "/api/v3/myTrades"),
        trades,
        "no REST read"
    );
    let entry = core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.filled_size, entry.avg_fill_price),
        (OrderStatus::Filled, dec!(0.001), Some(dec!(59000)))
    );
    let fills = core.ledger().fills(VENUE).unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].fill_id, reports[0]["t"].to_string());

    // REST reconciliation reads the same trade; the same frame pushed again: still one.
    let pass = core.reconcile(VENUE).await.unwrap();
    assert_eq!(pass.new_fills, 0, "{pass:?}");
    let again = core.apply_pushed(update).await.unwrap();
    assert_eq!(again.fills_applied, 0);
    core.reconcile(VENUE).await.unwrap();
    assert_eq!(core.ledger().fills(VENUE).unwrap().len(), 1);
    actor.do_send(Stop);
}
