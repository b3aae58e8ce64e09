//! Binance USDⓈ-M futures streams: the documented frames, the market connection against
//! the loopback futures websocket mock (faults, rotation, server pings), and freshness.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;
use tokio::time::Instant;

use super::frames::{self, FuturesEvent};
use super::market::{self, ContractNames, FuturesMarketProtocol};
use crate::exchanges::binance_futures::ws_mock::{self, Conn, FuturesWsMock};
use crate::exchanges::binance_futures::BinanceFuturesConfig;
use crate::exchanges::stream::book::{StreamBook, VenueFeed};
use crate::exchanges::stream::connection::{StreamFeed, StreamSettings};
use crate::exchanges::types::Side;
use crate::resilience::config::BackoffConfig;

const VENUE: &str = "bnf";

// The docs' response examples (developers.binance.com, USDⓈ-M futures), verbatim but for
// the comments, as the venue sends them.
const MARK_PRICE_DOC: &str = r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#;
const FORCE_ORDER_DOC: &str = r#"{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}"#;
const AGG_TRADE_DOC: &str = r#"{"e":"aggTrade","E":123456789,"a":5933014,"s":"BTCUSDT","p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#;
const BOOK_TICKER_DOC: &str = r#"{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
const ORDER_UPDATE_TRADE_DOC: &str = r#"{"e":"ORDER_TRADE_UPDATE","T":1568879465651,"E":1568879465651,"o":{"s":"BTCUSDT","c":"TEST","S":"BUY","o":"LIMIT","f":"GTC","q":"0.001","p":"7100.50","ap":"7100.50","sp":"0","x":"TRADE","X":"PARTIALLY_FILLED","i":8886774,"l":"0.001","z":"0.001","L":"7100.50","N":"USDT","n":"0.01000000","T":1568879465651,"t":12345678,"b":"0","a":"0","m":true,"R":false,"wt":"CONTRACT_PRICE","ot":"LIMIT","ps":"LONG","cp":false,"AP":"0","cr":"0","pP":false,"si":0,"ss":0,"rp":"12.34","V":"EXPIRE_TAKER"}}"#;
// A delivery fill as recorded: no commission fields at all.
const ORDER_UPDATE_NO_FEE: &str = r#"{"e":"ORDER_TRADE_UPDATE","T":1711929600000,"E":1711929600000,"o":{"s":"BTCUSD_240329","c":"delivery_autoclose-12345","S":"SELL","o":"LIMIT","f":"IOC","q":"1","p":"70000.0","ap":"70000.0","sp":"0","x":"TRADE","X":"FILLED","i":8887003,"l":"1","z":"1","L":"70000.0","T":1711929600000,"t":12346003,"b":"0","a":"0","m":false,"R":true,"wt":"CONTRACT_PRICE","ot":"LIMIT","ps":"LONG","cp":false,"AP":"0","cr":"0","pP":false,"si":0,"ss":0,"rp":"0","V":"NONE"}}"#;
const ACCOUNT_UPDATE_DOC: &str = r#"{"e":"ACCOUNT_UPDATE","T":1564745798939,"E":1564745798939,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678","bc":"50.12345678"}],"P":[{"s":"BTCUSDT","pa":"0","ep":"0.00000","bep":"0","cr":"200","up":"0","mt":"isolated","iw":"0.00000000","ps":"BOTH"},{"s":"BTCUSDT","pa":"20","ep":"6563.6","bep":"6563.559","cr":"0","up":"2850.21200","mt":"isolated","iw":"13200.70726908","ps":"LONG"},{"s":"BTCUSDT","pa":"-10","ep":"6563.8","bep":"6563.861","cr":"-45.04000000","up":"-1423.15600","mt":"isolated","iw":"6570.42511771","ps":"SHORT"}]}}"#;

fn wrap(stream: &str, event: &str) -> String {
    format!(r#"{{"stream":"{stream}","data":{event}}}"#)
}

#[test]
fn every_documented_futures_frame_parses_to_its_type() {
    let FuturesEvent::MarkPrice(m) =
        frames::parse_combined(&wrap("btcusdt@markPrice@1s", MARK_PRICE_DOC)).unwrap()
    else {
        panic!("not a mark price")
    };
    assert_eq!(
        (
            m.pair.as_str(),
            m.mark,
            m.index,
            m.funding_rate,
            m.next_funding_ms
        ),
        (
            "BTCUSDT",
            dec!(11794.15),
            dec!(11784.62659091),
            Some(dec!(0.00038167)),
            1562306400000
        )
    );
    // A delivery contract: `"r":""` and `"T":0`.
    let delivery = r#"{"e":"markPriceUpdate","E":1,"s":"BTCUSDT_250926","p":"1","i":"1","P":"1","r":"","T":0}"#;
    let FuturesEvent::MarkPrice(d) = frames::parse_event(delivery).unwrap() else {
        panic!("not a mark price")
    };
    assert_eq!((d.funding_rate, d.next_funding_ms), (None, 0));

    let FuturesEvent::ForceOrder(f) =
        frames::parse_combined(&wrap("!forceOrder@arr", FORCE_ORDER_DOC)).unwrap()
    else {
        panic!("not a liquidation")
    };
    let o = &f.order;
    assert_eq!(
        (o.pair.as_str(), o.side.as_str(), o.status.as_str()),
        ("BTCUSDT", "SELL", "FILLED")
    );
    assert_eq!(
        (o.qty, o.price, o.avg_price, o.filled, o.trade_ms),
        (
            dec!(0.014),
            dec!(9910),
            dec!(9910),
            dec!(0.014),
            1568014460893
        )
    );

    let FuturesEvent::AggTrade(t) =
        frames::parse_combined(&wrap("btcusdt@aggTrade", AGG_TRADE_DOC)).unwrap()
    else {
        panic!("not a trade")
    };
    assert_eq!(
        (t.agg_id, t.price, t.qty, t.trade_ms, t.buyer_is_maker),
        (5933014, dec!(0.001), dec!(100), 123456785, true)
    );

    let FuturesEvent::BookTicker(b) =
        frames::parse_combined(&wrap("bnbusdt@bookTicker", BOOK_TICKER_DOC)).unwrap()
    else {
        panic!("not a book ticker")
    };
    assert_eq!(
        (b.update_id, b.bid, b.ask, b.bid_qty, b.transaction_ms),
        (
            400900217,
            dec!(25.3519),
            dec!(25.3652),
            dec!(31.21),
            1568014460891
        )
    );

    let FuturesEvent::OrderTradeUpdate(u) = frames::parse_event(ORDER_UPDATE_TRADE_DOC).unwrap()
    else {
        panic!("not an order update")
    };
    let o = &u.order;
    assert_eq!(
        (
            o.execution.as_str(),
            o.status.as_str(),
            o.client_id.as_str()
        ),
        ("TRADE", "PARTIALLY_FILLED", "TEST")
    );
    assert_eq!(
        (o.order_id, o.trade_id, o.last_qty, o.last_price, o.fee),
        (
            8886774,
            12345678,
            dec!(0.001),
            dec!(7100.50),
            Some(dec!(0.01))
        )
    );
    assert_eq!(
        (o.fee_asset.as_deref(), o.reduce_only, o.realized_pnl),
        (Some("USDT"), false, Some(dec!(12.34)))
    );
    let FuturesEvent::OrderTradeUpdate(u) = frames::parse_event(ORDER_UPDATE_NO_FEE).unwrap()
    else {
        panic!("not an order update")
    };
    assert_eq!((u.order.fee, u.order.fee_asset), (None, None));
    assert!(u.order.reduce_only);

    let FuturesEvent::AccountUpdate(a) = frames::parse_event(ACCOUNT_UPDATE_DOC).unwrap() else {
        panic!("not an account update")
    };
    assert_eq!(a.change.reason, "ORDER");
    assert_eq!(a.change.balances[0].wallet_balance, dec!(122624.12345678));
    assert_eq!(a.change.positions.len(), 3);
    assert_eq!(
        (
            a.change.positions[2].amount,
            a.change.positions[2].position_side.as_str()
        ),
        (dec!(-10), "SHORT")
    );

    // `E` is sometimes a string in this event: not read.
    for expired in [
        r#"{"e":"listenKeyExpired","E":"1736996475556","listenKey":"WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"}"#,
        r#"{"e":"listenKeyExpired","E":1576653824250}"#,
    ] {
        assert!(matches!(
            frames::parse_event(expired).unwrap(),
            FuturesEvent::ListenKeyExpired(_)
        ));
    }
    // Documented events the engine does not use are not malformed.
    let trade_lite = r#"{"e":"TRADE_LITE","E":1568879465651,"T":1568879465651,"s":"BTCUSDT","c":"TEST","S":"BUY","q":"0.001","p":"7100.50","i":8886774,"l":"0.001","L":"7100.50","t":12345678,"m":true}"#;
    assert_eq!(
        frames::parse_event(trade_lite).unwrap(),
        FuturesEvent::Other
    );
}

#[test]
fn malformed_futures_frames_are_errors_not_panics() {
    let whole = wrap("btcusdt@bookTicker", BOOK_TICKER_DOC);
    for bad in [
        &whole[..whole.len() / 2],
        "{not json",
        "",
        BOOK_TICKER_DOC, // not wrapped, on the combined connection
        r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","s":"BTCUSDT"}}"#,
        r#"{"stream":"x","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"abc","i":"1","r":"0","T":0}}"#,
        r#"[1,2]"#,
    ] {
        let err = frames::parse_combined(bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a known Binance futures message"),
            "{err}"
        );
    }
}

fn config() -> BinanceFuturesConfig {
    BinanceFuturesConfig {
        symbols: vec!["BTC".into(), "ETH".into()],
        pairs: [("PEPE".to_string(), "1000PEPEUSDT".to_string())].into(),
        ..BinanceFuturesConfig::default()
    }
}

#[test]
fn the_market_url_names_every_stream_in_lowercase() {
    let p = FuturesMarketProtocol::new(&config());
    assert_eq!(
        p.url("wss://fstream.binance.com/"),
        "wss://fstream.binance.com/stream?streams=1000pepeusdt@markPrice@1s/1000pepeusdt@aggTrade/1000pepeusdt@bookTicker/\
btcusdt@markPrice@1s/btcusdt@aggTrade/btcusdt@bookTicker/ethusdt@markPrice@1s/ethusdt@aggTrade/ethusdt@bookTicker/!forceOrder@arr"
    );
    use crate::exchanges::stream::Protocol;
    assert!(p.subscribe_messages().is_empty());
    assert_eq!(p.heartbeat(), None, "the server pings");
    assert_eq!(p.max_lifetime(), Some(market::ROTATE_AFTER));
    assert!(market::ROTATE_AFTER < Duration::from_secs(24 * 3600));
    let names = ContractNames::new(&config());
    assert_eq!(names.symbol("BTCUSDT"), "BTC");
    assert_eq!(names.symbol("1000PEPEUSDT"), "PEPE");
    assert_eq!(names.symbol("DOGEUSDT"), "DOGE");
    assert_eq!(names.symbol("BTCUSDC"), "BTCUSDC");
}

#[tokio::test(start_paused = true)]
async fn market_events_reach_the_feed_and_go_stale_like_quotes() {
    let book = StreamBook::new();
    let feed = book.register(VENUE, "ws://x", Duration::from_secs(5));
    feed.set_connected(true);
    let names = ContractNames::new(&config());
    let now = Instant::now();
    let apply =
        |text: &str| market::apply(frames::parse_combined(text).unwrap(), &names, &feed, now);
    assert_eq!(
        apply(&wrap("btcusdt@markPrice@1s", MARK_PRICE_DOC)).unwrap(),
        "markPrice"
    );
    let m = book.fresh_mark(VENUE, "BTC").unwrap();
    assert_eq!(
        (m.mark, m.funding_rate, m.next_funding_ms),
        (dec!(11794.15), Some(dec!(0.00038167)), Some(1562306400000))
    );
    let bt = BOOK_TICKER_DOC.replace("BNBUSDT", "ETHUSDT");
    apply(&wrap("ethusdt@bookTicker", &bt)).unwrap();
    let q = book.fresh_quote(VENUE, "ETH").unwrap();
    assert_eq!(
        (q.bid, q.ask, q.time_ms),
        (dec!(25.3519), dec!(25.3652), 1568014460891)
    );
    apply(&wrap("btcusdt@aggTrade", AGG_TRADE_DOC)).unwrap();
    assert_eq!(feed.fresh_trade("BTC"), Some(dec!(0.001)));
    apply(&wrap("!forceOrder@arr", FORCE_ORDER_DOC)).unwrap();
    let liq = feed.derivatives().liquidations.since(Some("BTC"), 0);
    assert_eq!(liq.len(), 1);
    assert_eq!(
        (liq[0].side, liq[0].qty, liq[0].notional_usd()),
        (Side::Sell, dec!(0.014), dec!(138.74))
    );
    let health = feed.health().derivatives.unwrap();
    assert_eq!(health.marks[0].symbol, "BTC");
    assert!(health.marks[0].fresh);
    assert_eq!(
        (health.liquidations.sells, health.liquidations.buys),
        (1, 0)
    );

    // A crossed book is refused, not served.
    let crossed = BOOK_TICKER_DOC
        .replace("BNBUSDT", "BTCUSDT")
        .replace("25.35190000", "26");
    assert!(apply(&wrap("btcusdt@bookTicker", &crossed)).is_err());
    assert_eq!(book.fresh_quote(VENUE, "BTC"), None);

    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(book.fresh_mark(VENUE, "BTC"), None, "stale");
    assert_eq!(book.fresh_quote(VENUE, "ETH"), None, "stale");
    assert!(!feed.health().derivatives.unwrap().marks[0].fresh);
}

/// Deadlines long enough never to fire on a loaded machine, backoff short.
fn settings(url: &str, stale_after: Duration) -> StreamSettings {
    let mut s = StreamSettings::new(VENUE, url, stale_after);
    s.ping_interval = Duration::from_secs(180);
    s.pong_timeout = Duration::from_secs(60);
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

#[derive(actix::Message)]
#[rtype(result = "()")]
struct Stop;

impl actix::Handler<Stop> for StreamFeed {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}

fn start_market(
    mock: &FuturesWsMock,
    stale_after: Duration,
) -> (Arc<VenueFeed>, actix::Addr<StreamFeed>) {
    let book = StreamBook::new();
    let feed = book.register(VENUE, &mock.url(), stale_after);
    let actor = StreamFeed::new(
        settings(&mock.url(), stale_after),
        Box::new(FuturesMarketProtocol::new(&config())),
        feed.clone(),
    )
    .start();
    (feed, actor)
}

#[actix::test]
async fn the_futures_market_stream_survives_every_fault() {
    let mock = FuturesWsMock::start().await.unwrap();
    let (feed, actor) = start_market(&mock, Duration::from_secs(3600));
    until("connected", || {
        feed.is_connected() && mock.has_connection(Conn::Market)
    })
    .await;
    let sets = mock.stream_sets();
    assert_eq!(sets.len(), 1);
    assert!(
        sets[0].contains(&"btcusdt@bookTicker".to_string()),
        "{sets:?}"
    );
    assert_eq!(sets[0].last().map(String::as_str), Some("!forceOrder@arr"));

    assert!(mock.send_market(
        "btcusdt@bookTicker",
        ws_mock::book_ticker_event("BTCUSDT", "60000.1", "60000.2", 1)
    ));
    until("the book ticker is a quote", || {
        feed.fresh_quote("BTC")
            .is_some_and(|q| q.bid == dec!(60000.1))
    })
    .await;

    // Malformed JSON and a JSON message cut in half: counted, dropped, still connected.
    assert!(mock.send_text(Conn::Market, "{not json"));
    let full = ws_mock::combined(
        "btcusdt@bookTicker",
        ws_mock::book_ticker_event("BTCUSDT", "1", "2", 2),
    );
    assert!(mock.send_text(Conn::Market, &full[..full.len() / 2]));
    until("two malformed frames counted", || feed.malformed() == 2).await;
    assert!(mock.send_market(
        "!forceOrder@arr",
        ws_mock::force_order_event("ETHUSDT", "BUY", "2", "3000", 5)
    ));
    until("the liquidation is kept", || {
        feed.derivatives().liquidations.counts().buys == 1
    })
    .await;
    assert_eq!((mock.connections(), feed.reconnects()), (1, 0));

    // A server-initiated close: reconnect with the same streams in the URL.
    assert!(mock.close(Conn::Market));
    until("reconnected after close", || {
        mock.connections() == 2 && feed.is_connected()
    })
    .await;
    assert_eq!(mock.stream_sets()[1], sets[0]);

    // A websocket frame cut in half, then the connection gone: never applied.
    assert!(mock.cut_frame(
        Conn::Market,
        ws_mock::combined(
            "btcusdt@bookTicker",
            ws_mock::book_ticker_event("BTCUSDT", "9", "10", 3)
        )
    ));
    until("reconnected after a cut frame", || {
        mock.connections() == 3 && feed.is_connected()
    })
    .await;
    assert!(!matches!(feed.fresh_quote("BTC"), Some(q) if q.bid == dec!(9)));

    // Refused while the listener is closed: disconnected (no stream quote), retrying.
    mock.refuse();
    until("disconnected", || !feed.is_connected()).await;
    assert_eq!(feed.fresh_quote("BTC"), None);
    let before = feed.reconnects();
    until("several refused attempts", || {
        feed.reconnects() >= before + 3
    })
    .await;
    mock.reopen().await.unwrap();
    until("back after refusals", || {
        mock.connections() == 4 && feed.is_connected()
    })
    .await;
    assert!(mock.send_market(
        "btcusdt@markPrice@1s",
        ws_mock::mark_price_event("BTCUSDT", "61000", "0.0001", 1562306400000)
    ));
    until("marks flow again", || {
        feed.fresh_mark("BTC")
            .is_some_and(|m| m.mark == dec!(61000))
    })
    .await;
    actor.do_send(Stop);
}

#[actix::test]
async fn server_pings_are_answered_and_a_silent_server_is_left() {
    let mock = FuturesWsMock::start().await.unwrap();
    mock.set_ping_every(Duration::from_millis(20));
    let book = StreamBook::new();
    let stale_after = Duration::from_millis(200);
    let feed = book.register(VENUE, &mock.url(), stale_after);
    let mut s = settings(&mock.url(), stale_after);
    // The server's pings are the frames that prove the connection alive.
    s.ping_interval = Duration::from_millis(100);
    s.pong_timeout = Duration::from_millis(200);
    let _actor = StreamFeed::new(
        s,
        Box::new(FuturesMarketProtocol::new(&config())),
        feed.clone(),
    )
    .start();
    until("pings answered with pongs", || mock.pongs() >= 3).await;
    assert_eq!(mock.connections(), 1, "server pings keep the connection");
    assert!(mock.send_market(
        "btcusdt@markPrice@1s",
        ws_mock::mark_price_event("BTCUSDT", "61000", "0.0001", 1)
    ));
    until("a fresh mark", || feed.fresh_mark("BTC").is_some()).await;

    // Silence: the mark goes stale (readers use REST), then the connection is replaced.
    mock.set_silent(true);
    until("stale", || feed.fresh_mark("BTC").is_none()).await;
    until("a silent connection is replaced", || {
        mock.connections() >= 2
    })
    .await;
    assert!(feed.reconnects() >= 1);
}

#[actix::test]
async fn the_venue_closing_at_the_connection_lifetime_is_a_reconnect() {
    let mock = FuturesWsMock::start().await.unwrap();
    // The venue's 24 h, shortened.
    mock.set_max_lifetime(Some(Duration::from_millis(150)));
    let (feed, _actor) = start_market(&mock, Duration::from_secs(3600));
    until("three connections in turn", || mock.connections() >= 3).await;
    until("connected", || feed.is_connected()).await;
    assert!(mock.stream_sets().windows(2).all(|w| w[0] == w[1]));
}

#[actix::test]
async fn the_client_rotates_before_the_venue_would_cut() {
    struct Short(FuturesMarketProtocol);
    impl crate::exchanges::stream::Protocol for Short {
        fn connect_url<'a>(
            &'a mut self,
            configured: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<String, crate::exchanges::stream::StreamError>>
        {
            self.0.connect_url(configured)
        }
        fn subscribe_messages(&self) -> Vec<String> {
            self.0.subscribe_messages()
        }
        fn heartbeat(&self) -> Option<String> {
            None
        }
        fn on_text(
            &mut self,
            text: &str,
            feed: &VenueFeed,
            now: Instant,
        ) -> Result<&'static str, crate::exchanges::stream::FrameError> {
            self.0.on_text(text, feed, now)
        }
        fn max_lifetime(&self) -> Option<Duration> {
            Some(Duration::from_millis(100))
        }
    }
    let mock = FuturesWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register(VENUE, &mock.url(), Duration::from_secs(3600));
    let _actor = StreamFeed::new(
        settings(&mock.url(), Duration::from_secs(3600)),
        Box::new(Short(FuturesMarketProtocol::new(&config()))),
        feed.clone(),
    )
    .start();
    until("rotated twice", || mock.connections() >= 3).await;
    assert!(mock.stream_sets().windows(2).all(|w| w[0] == w[1]));
}

// ---- the user data stream -------------------------------------------------------------

use super::user::{self, FuturesUserProtocol};
use crate::clock::system_clock;
use crate::exchanges::binance_futures::mock::{MockBinanceFutures, MOCK_API_KEY};
use crate::exchanges::stream::binance::listen_key::{
    self, ApiKey, ListenKeyApi, ListenKeyLifecycle,
};
use crate::exchanges::stream::pushed::PushSink;
use crate::exchanges::types::{ClientOrderId, OrderStatus};

const OURS: &str = "0192f3a4b5c6d7e8f90a1b2c3d4e5f60";

fn trade_update(client_id: &str, execution: &str, status: &str, order_type: &str) -> String {
    ORDER_UPDATE_TRADE_DOC
        .replace(r#""c":"TEST""#, &format!(r#""c":"{client_id}""#))
        .replace(r#""x":"TRADE""#, &format!(r#""x":"{execution}""#))
        .replace(r#""X":"PARTIALLY_FILLED""#, &format!(r#""X":"{status}""#))
        .replace(r#""o":"LIMIT""#, &format!(r#""o":"{order_type}""#))
}

fn pushed(text: &str) -> crate::exchanges::stream::PushedUpdate {
    let FuturesEvent::OrderTradeUpdate(u) = frames::parse_event(text).unwrap() else {
        panic!("not an order update")
    };
    user::order_update(VENUE, &ContractNames::new(&config()), "USDT", &u).unwrap()
}

#[test]
fn order_trade_updates_become_order_states_and_fills() {
    // The docs' fill of our order: its state and one fill keyed by the trade id.
    let u = pushed(&trade_update(OURS, "TRADE", "PARTIALLY_FILLED", "LIMIT"));
    assert_eq!(u.venue, VENUE);
    assert_eq!(u.orders.len(), 1);
    let o = &u.orders[0];
    assert_eq!(o.client_id, Some(ClientOrderId::parse(OURS).unwrap()));
    assert_eq!(
        (
            o.venue_order_id.as_str(),
            o.symbol.as_str(),
            o.side,
            o.status
        ),
        ("8886774", "BTC", Side::Buy, OrderStatus::PartiallyFilled)
    );
    assert_eq!(
        (
            o.size,
            o.filled_size,
            o.avg_fill_price,
            o.limit_price,
            o.reduce_only
        ),
        (
            dec!(0.001),
            dec!(0.001),
            Some(dec!(7100.5)),
            Some(dec!(7100.5)),
            false
        )
    );
    assert_eq!(u.fills.len(), 1);
    let f = &u.fills[0];
    assert_eq!(
        (
            f.fill_id.as_str(),
            f.venue_order_id.as_str(),
            f.price,
            f.size
        ),
        ("12345678", "8886774", dec!(7100.50), dec!(0.001))
    );
    assert_eq!(
        (f.fee, f.fee_asset.clone(), f.closed_pnl),
        (dec!(0.01), None, dec!(12.34))
    );
    assert_eq!(
        (f.time_ms, f.client_id.clone()),
        (1568879465651, o.client_id.clone())
    );

    // Not our client id ("TEST"): no ledger entry, the fill still goes (REST lists it).
    let u = pushed(ORDER_UPDATE_TRADE_DOC);
    assert!(u.orders.is_empty());
    assert_eq!(u.fills[0].client_id, None);

    // A new stop-market order of ours: acked, no fill (trade id 0).
    let new = trade_update(OURS, "NEW", "NEW", "STOP_MARKET")
        .replace(r#""t":12345678"#, r#""t":0"#)
        .replace(r#""l":"0.001""#, r#""l":"0""#);
    let u = pushed(&new);
    assert_eq!(u.orders[0].status, OrderStatus::Acked);
    assert!(u.fills.is_empty());
    // A take-profit-market reported expired: its trigger or its end — left to REST.
    let u = pushed(
        &trade_update(OURS, "EXPIRED", "EXPIRED", "TAKE_PROFIT_MARKET")
            .replace(r#""t":12345678"#, r#""t":0"#),
    );
    assert!(u.is_empty());
    // A limit order cancelled, reduce-only.
    let u = pushed(
        &trade_update(OURS, "CANCELED", "CANCELED", "LIMIT")
            .replace(r#""t":12345678"#, r#""t":0"#)
            .replace(r#""R":false"#, r#""R":true"#),
    );
    assert_eq!(u.orders[0].status, OrderStatus::Cancelled);
    assert!(u.orders[0].reduce_only);
    assert!(u.fills.is_empty());

    // A liquidation execution (CALCULATED) of the venue's own order: the fill only.
    let liquidation = r#"{"e":"ORDER_TRADE_UPDATE","T":1568879465651,"E":1568879465651,"o":{"s":"BTCUSDT","c":"autoclose-1234567890","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910.00","ap":"9910.12","sp":"0","x":"CALCULATED","X":"FILLED","i":8886999,"l":"0.014","z":"0.014","L":"9910.12","N":"USDT","n":"0.06937084","T":1568879465651,"t":12345999,"b":"0","a":"0","m":false,"R":true,"wt":"CONTRACT_PRICE","ot":"LIMIT","ps":"LONG","cp":false,"AP":"0","cr":"0","pP":false,"si":0,"ss":0,"rp":"-5.67","V":"NONE"}}"#;
    let u = pushed(liquidation);
    assert!(u.orders.is_empty());
    assert_eq!(
        (
            u.fills[0].fill_id.as_str(),
            u.fills[0].side,
            u.fills[0].size,
            u.fills[0].closed_pnl
        ),
        ("12345999", Side::Sell, dec!(0.014), dec!(-5.67))
    );

    // A fee in BNB: kept in its asset, never counted as 0 USD silently.
    let u = pushed(&ORDER_UPDATE_TRADE_DOC.replace(r#""N":"USDT""#, r#""N":"BNB""#));
    let fee = u.fills[0].fee_asset.clone().unwrap();
    assert_eq!(
        (
            u.fills[0].fee,
            fee.asset.as_str(),
            fee.amount,
            fee.usd_price
        ),
        (dec!(0), "BNB", dec!(0.01), None)
    );

    // Impossible content is refused, not pushed.
    let FuturesEvent::OrderTradeUpdate(bad) =
        frames::parse_event(&ORDER_UPDATE_TRADE_DOC.replace(r#""S":"BUY""#, r#""S":"UP""#))
            .unwrap()
    else {
        panic!()
    };
    assert!(user::order_update(VENUE, &ContractNames::new(&config()), "USDT", &bad).is_err());
}

#[test]
fn algo_updates_carry_our_conditional_orders_by_algo_id() {
    let doc = r#"{"e":"ALGO_UPDATE","T":1750515742297,"E":1750515742303,"o":{"caid":"Q5xaq5EGKgXXa0fD7fs0Ip","aid":2148719,"at":"CONDITIONAL","o":"TAKE_PROFIT","s":"BNBUSDT","S":"SELL","ps":"BOTH","f":"GTC","q":"0.01","X":"NEW","ai":"","ap":"0.00000","aq":"0.00000","act":"0","tp":"750","p":"750","V":"EXPIRE_MAKER","wt":"CONTRACT_PRICE","pm":"NONE","cp":false,"pP":false,"R":false,"tt":0,"gtd":0,"rm":"Reduce Only reject"}}"#;
    let names = ContractNames::new(&config());
    let FuturesEvent::AlgoUpdate(a) = frames::parse_event(doc).unwrap() else {
        panic!("not an algo update")
    };
    // Not our id: nothing.
    assert!(user::algo_update(VENUE, &names, a.event_ms, &a.order)
        .unwrap()
        .is_empty());
    let ours = doc.replace("Q5xaq5EGKgXXa0fD7fs0Ip", OURS);
    let FuturesEvent::AlgoUpdate(a) = frames::parse_event(&ours).unwrap() else {
        panic!()
    };
    let u = user::algo_update(VENUE, &names, a.event_ms, &a.order).unwrap();
    let o = &u.orders[0];
    assert_eq!(
        (
            o.venue_order_id.as_str(),
            o.symbol.as_str(),
            o.status,
            o.size,
            o.limit_price
        ),
        (
            "algo-2148719",
            "BNB",
            OrderStatus::Acked,
            dec!(0.01),
            Some(dec!(750))
        )
    );
    let done = ours
        .replace(r#""X":"NEW""#, r#""X":"FINISHED""#)
        .replace(r#""aq":"0.00000""#, r#""aq":"0.01""#)
        .replace(r#""ap":"0.00000""#, r#""ap":"751.2""#);
    let FuturesEvent::AlgoUpdate(a) = frames::parse_event(&done).unwrap() else {
        panic!()
    };
    let u = user::algo_update(VENUE, &names, a.event_ms, &a.order).unwrap();
    assert_eq!(
        (u.orders[0].status, u.orders[0].avg_fill_price),
        (OrderStatus::Filled, Some(dec!(751.2)))
    );
    // Once triggered it is named by the order it became (`ai`), as REST names it.
    let triggered = done.replace(r#""ai":"""#, r#""ai":"8889001""#);
    let FuturesEvent::AlgoUpdate(a) = frames::parse_event(&triggered).unwrap() else {
        panic!()
    };
    let u = user::algo_update(VENUE, &names, a.event_ms, &a.order).unwrap();
    assert_eq!(u.orders[0].venue_order_id, "8889001");
}

fn user_stream(
    rest: &MockBinanceFutures,
    ws: &FuturesWsMock,
    sink: PushSink,
) -> (
    Arc<VenueFeed>,
    Arc<listen_key::ListenKeyCounts>,
    actix::Addr<StreamFeed>,
) {
    let api = ListenKeyApi::new(
        VENUE,
        &rest.url(),
        listen_key::USDM_FUTURES,
        ApiKey::new(MOCK_API_KEY),
        Duration::from_secs(10),
        system_clock(),
    )
    .unwrap();
    // A keep-alive at every sweep, so the test sees several.
    let keys = ListenKeyLifecycle::new(api, Duration::from_millis(100));
    let counts = keys.counts();
    let book = StreamBook::new();
    let feed = book.register_user(VENUE, &ws.url(), Duration::from_secs(3600));
    let mut s = settings(&ws.url(), Duration::from_secs(3600));
    s.venue = feed.venue().to_string();
    let protocol = FuturesUserProtocol::new(VENUE, &config(), keys, sink);
    let actor = StreamFeed::new(s, Box::new(protocol), feed.clone()).start();
    (feed, counts, actor)
}

#[actix::test]
async fn the_user_stream_pushes_fills_keeps_its_key_alive_and_renews_an_expired_one() {
    let rest = MockBinanceFutures::start();
    let ws = FuturesWsMock::start().await.unwrap();
    let (sink, mut rx) = PushSink::channel(16);
    let (feed, counts, actor) = user_stream(&rest, &ws, sink);
    until("connected with a listen key", || {
        feed.is_connected() && ws.user_connections() == 1
    })
    .await;
    let first_key = rest.listen_key().unwrap();
    assert_eq!(
        ws.listen_keys(),
        vec![first_key.clone()],
        "the key is in the URL"
    );

    // A fill of ours reaches the sink in the engine's types.
    assert!(ws.send_user(ws_mock::order_trade_update_event(
        "BTCUSDT", OURS, "BUY", "MARKET", "0.002", "TRADE", "FILLED", 77, "0.002", "0.002",
        "60010", 501, false,
    )));
    let u = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.orders[0].status, OrderStatus::Filled);
    assert_eq!(
        (u.fills[0].fill_id.as_str(), u.fills[0].price),
        ("501", dec!(60010))
    );

    // Balances and positions are kept for status.
    assert!(ws.send_user(ws_mock::account_update_event(
        "USDT", "9987.5", "BTCUSDT", "0.002"
    )));
    until("the account is kept", || {
        feed.derivatives().account().is_some()
    })
    .await;
    let a = feed.derivatives().account().unwrap();
    assert_eq!(
        (
            a.balances[0].wallet_balance,
            a.positions[0].symbol.as_str(),
            a.positions[0].amount
        ),
        (dec!(9987.5), "BTC", dec!(0.002))
    );
    assert!(feed.health().derivatives.unwrap().account.is_some());

    // The key is kept alive on the periodic tick.
    until("kept alive", || {
        counts.kept_alive.load(std::sync::atomic::Ordering::Relaxed) >= 2
    })
    .await;

    // `listenKeyExpired`: a new key, a new connection that carries it.
    rest.expire_listen_key();
    assert!(ws.send_user(ws_mock::listen_key_expired_event(&first_key)));
    until("reconnected with a new key", || {
        ws.user_connections() == 2 && feed.is_connected()
    })
    .await;
    let keys = ws.listen_keys();
    assert_ne!(keys[1], keys[0]);
    assert_eq!(rest.listen_key().as_deref(), Some(keys[1].as_str()));
    assert_eq!(rest.listen_keys_made(), 2);

    // An expiry found by the keep-alive (-1125 on the PUT): the same renewal.
    rest.expire_listen_key();
    until("renewed after a refused keep-alive", || {
        ws.user_connections() == 3 && feed.is_connected()
    })
    .await;
    assert_eq!(rest.listen_keys_made(), 3);
    assert_eq!(feed.malformed(), 0);
    actor.do_send(Stop);
}

// ---- through the gateway: quotes and pushed fills against the futures REST mock -------

use std::collections::BTreeMap;

use crate::exchanges::binance_futures::mock::MOCK_API_SECRET;
use crate::exchanges::binance_futures::{BinanceFuturesVenue, API_KEY_ENV, API_SECRET_ENV};
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{Amount, GatewayConfig, GatewayCore, OrderIntent, Pricing};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::types::TimeInForce;
use crate::exchanges::Venue;
use crate::store::Store;
use crate::supervisor::Slot;

#[actix::test]
async fn futures_quotes_follow_the_stream_and_a_pushed_fill_is_recorded_once_with_rest() {
    let rest = MockBinanceFutures::start();
    let ws = FuturesWsMock::start().await.unwrap();
    let cfg = BinanceFuturesConfig {
        base_url: rest.url(),
        ws_url: ws.url(),
        symbols: vec!["BTC".into()],
        request_timeout: Duration::from_secs(10),
        ..BinanceFuturesConfig::default()
    };
    let env = |k: &str| match k {
        API_KEY_ENV => Some(MOCK_API_KEY.to_string()),
        API_SECRET_ENV => Some(MOCK_API_SECRET.to_string()),
        _ => None,
    };
    let venue =
        Arc::new(BinanceFuturesVenue::open_with_env(VENUE, &cfg, system_clock(), &env).unwrap());
    let slot = Slot::<Connector>::new();
    slot.fill(
        Connector::new(venue.clone()).start(),
        slot.next_token(),
        "test/bnf",
    );
    let store = Store::temporary().unwrap();
    let core = GatewayCore::open(
        &store,
        BTreeMap::from([(VENUE.to_string(), slot)]),
        RiskConfig::default(),
        GatewayConfig::default(),
        system_clock(),
    )
    .unwrap();
    let book = StreamBook::new();
    assert!(core.attach_streams(book.clone()));
    core.reconcile(VENUE).await.unwrap();

    // No stream yet: the REST book (59990 / 60010).
    assert_eq!(core.quote(VENUE, "BTC").await.unwrap().bid, dec!(59990));
    let stale_after = Duration::from_millis(300);
    let market = book.register(VENUE, &ws.url(), stale_after);
    let _market = StreamFeed::new(
        settings(&ws.url(), stale_after),
        Box::new(FuturesMarketProtocol::new(&cfg)),
        market.clone(),
    )
    .start();
    until("market connected", || market.is_connected()).await;
    assert!(ws.send_market(
        "btcusdt@bookTicker",
        ws_mock::book_ticker_event("BTCUSDT", "60100.5", "60100.6", 1)
    ));
    until("a streamed quote", || market.fresh_quote("BTC").is_some()).await;
    let q = core.quote(VENUE, "BTC").await.unwrap();
    assert_eq!(
        (q.bid, q.ask, q.fallback),
        (dec!(60100.5), dec!(60100.6), None)
    );
    // Silence past stale_after: REST again.
    until("stale", || market.fresh_quote("BTC").is_none()).await;
    assert_eq!(core.quote(VENUE, "BTC").await.unwrap().bid, dec!(59990));

    // The user stream, its updates collected as the gateway's sink would take them.
    let (sink, mut rx) = PushSink::channel(16);
    let (user_feed, _, _user) = user_stream(&rest, &ws, sink);
    until("user stream connected", || user_feed.is_connected()).await;

    // A resting limit buy, filled at the venue when the price comes down to it.
    let placed = core
        .place(OrderIntent {
            venue: VENUE.into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            amount: Amount::Usd(dec!(120)),
            pricing: Pricing::Limit {
                price: dec!(59000),
                tif: TimeInForce::Gtc,
            },
            reduce_only: false,
            origin: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(placed.status, OrderStatus::Acked);
    rest.set_book("BTCUSDT", dec!(58990), dec!(58999));
    let trade = venue
        .fills_since(0)
        .await
        .unwrap()
        .pop()
        .expect("the venue's fill");
    assert!(
        core.ledger().fills(VENUE).unwrap().is_empty(),
        "no pass yet"
    );

    // The venue pushes the fill: recorded at once, before any REST pass.
    let cid = placed.client_id.to_string();
    assert!(ws.send_user(ws_mock::order_trade_update_event(
        "BTCUSDT",
        &cid,
        "BUY",
        "LIMIT",
        &trade.size.to_string(),
        "TRADE",
        "FILLED",
        trade.venue_order_id.parse().unwrap(),
        &trade.size.to_string(),
        &trade.size.to_string(),
        &trade.price.to_string(),
        trade.fill_id.parse().unwrap(),
        false,
    )));
    let update = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let report = core.apply_pushed(update).await.unwrap();
    assert_eq!(
        (report.fills_applied, report.orders_applied),
        (1, 1),
        "{report:?}"
    );
    let fills = core.ledger().fills(VENUE).unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(
        (fills[0].fill_id.as_str(), fills[0].price, fills[0].size),
        (trade.fill_id.as_str(), trade.price, trade.size)
    );
    let entry = core.ledger().get(&placed.client_id).unwrap().unwrap();
    assert_eq!(entry.status, OrderStatus::Filled);

    // REST reconciliation finds the same trade: nothing new, still one fill.
    let pass = core.reconcile(VENUE).await.unwrap();
    assert_eq!(pass.new_fills, 0, "{pass:?}");
    assert_eq!(core.ledger().fills(VENUE).unwrap().len(), 1);
    // And the same push again (a reconnect replays nothing, but a duplicate must not
    // count twice either).
    let again = update_again(&ws, &mut rx, &cid, &trade).await;
    let report = core.apply_pushed(again).await.unwrap();
    assert_eq!((report.fills_applied, report.fills_duplicate), (0, 1));
    assert_eq!(core.ledger().fills(VENUE).unwrap().len(), 1);
}

async fn update_again(
    ws: &FuturesWsMock,
    rx: &mut tokio::sync::mpsc::Receiver<crate::exchanges::stream::PushedUpdate>,
    cid: &str,
    trade: &crate::exchanges::types::Fill,
) -> crate::exchanges::stream::PushedUpdate {
    assert!(ws.send_user(ws_mock::order_trade_update_event(
        "BTCUSDT",
        cid,
        "BUY",
        "LIMIT",
        &trade.size.to_string(),
        "TRADE",
        "FILLED",
        trade.venue_order_id.parse().unwrap(),
        &trade.size.to_string(),
        &trade.size.to_string(),
        &trade.price.to_string(),
        trade.fill_id.parse().unwrap(),
        false,
    )));
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap()
}
