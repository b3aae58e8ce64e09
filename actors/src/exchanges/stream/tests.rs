//! The stream layer against the loopback websocket mock, and the gateway's quote read
//! choosing between the stream and the REST mock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;
use tokio::time::Instant;

use super::book::{FeedState, StreamBook, VenueFeed};
use super::connection::{StreamFeed, StreamSettings};
use super::hyperliquid::{self, HlFrame, HyperliquidProtocol, Subscription};
use crate::clock::system_clock;
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{GatewayConfig, GatewayCore};
use crate::exchanges::hyperliquid::config::{HyperliquidConfig, KEY_VAR};
use crate::exchanges::hyperliquid::mock::MockHyperliquid;
use crate::exchanges::hyperliquid::signing::{Network, PrivateKey};
use crate::exchanges::hyperliquid::venue::HyperliquidVenue;
use crate::exchanges::hyperliquid::ws_mock::{self, HlWsMock};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::types::Quote;
use crate::resilience::config::BackoffConfig;
use crate::store::Store;
use crate::supervisor::Slot;

const VENUE: &str = "hl";

#[test]
fn every_documented_public_frame_parses_to_its_type() {
    let mids = hyperliquid::parse(&ws_mock::all_mids_frame()).unwrap();
    let HlFrame::AllMids(m) = mids else {
        panic!("{mids:?}")
    };
    assert_eq!(m.mids["BTC"], dec!(80868.5));
    assert_eq!(m.mids["PURR/USDC"], dec!(0.067131));

    let HlFrame::L2Book(book) = hyperliquid::parse(&ws_mock::l2_book_frame("BTC", 7)).unwrap()
    else {
        panic!("not a book")
    };
    let q = book.quote().unwrap();
    assert_eq!(
        (q.bid, q.ask, q.time_ms),
        (dec!(98450.50), dec!(98451.00), 7)
    );

    let HlFrame::Bbo(b) = hyperliquid::parse(&ws_mock::bbo_frame("ETH", "1.5", "1.6", 9)).unwrap()
    else {
        panic!("not a bbo")
    };
    assert_eq!(b.bbo[0].as_ref().unwrap().px, dec!(1.5));
    assert_eq!(b.bbo[1].as_ref().unwrap().px, dec!(1.6));
    // One side of the book may be empty: `null`.
    let one_sided =
        r#"{"channel":"bbo","data":{"coin":"X","time":1,"bbo":[null,{"px":"2","sz":"1","n":1}]}}"#;
    let HlFrame::Bbo(b) = hyperliquid::parse(one_sided).unwrap() else {
        panic!("not a bbo")
    };
    assert!(b.bbo[0].is_none());

    let HlFrame::Trades(t) =
        hyperliquid::parse(&ws_mock::trades_frame("SOL", "150.25", 3)).unwrap()
    else {
        panic!("not trades")
    };
    assert_eq!(
        (t[0].px, t[0].side.as_str(), t[0].tid),
        (dec!(150.25), "B", 118906512037719)
    );

    let HlFrame::Candle(c) = hyperliquid::parse(&ws_mock::candle_frame("BTC", 60_000)).unwrap()
    else {
        panic!("not a candle")
    };
    assert_eq!(
        (c.o, c.c, c.n, c.close_time),
        (dec!(29258.0), dec!(29260.0), 189, 119_999)
    );
    // The docs type candle prices as numbers: both forms are read.
    let numeric = r#"{"channel":"candle","data":{"t":1,"T":2,"s":"BTC","i":"1m","o":1.5,"c":2,"h":2,"l":1,"v":3,"n":4}}"#;
    assert!(matches!(hyperliquid::parse(numeric).unwrap(), HlFrame::Candle(c) if c.o == dec!(1.5)));

    assert_eq!(
        hyperliquid::parse(r#"{"channel":"pong"}"#).unwrap(),
        HlFrame::Pong
    );
    assert!(matches!(
        hyperliquid::parse(r#"{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{"type":"allMids"}}}"#).unwrap(),
        HlFrame::Subscribed(_)
    ));
    assert!(matches!(
        hyperliquid::parse(r#"{"channel":"error","data":"Invalid subscription"}"#).unwrap(),
        HlFrame::Error(_)
    ));
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    let whole = ws_mock::bbo_frame("BTC", "1", "2", 1);
    for bad in [
        &whole[..whole.len() / 2],
        "not json",
        "",
        r#"{"channel":"bbo","data":{"coin":"BTC"}}"#,
        r#"{"channel":"bbo","data":{"coin":"BTC","time":1,"bbo":[{"px":"abc","sz":"1","n":1},null]}}"#,
        r#"{"channel":"somethingNew","data":{}}"#,
        r#"[1,2,3]"#,
    ] {
        let err = hyperliquid::parse(bad).unwrap_err();
        assert!(
            err.to_string().contains("not a known Hyperliquid message"),
            "{err}"
        );
    }
}

#[test]
fn subscriptions_are_the_documented_messages() {
    let subs = Subscription::public_set(&["BTC".to_string()]);
    let msgs: Vec<serde_json::Value> = subs
        .iter()
        .map(|s| serde_json::from_str(&s.subscribe_message()).unwrap())
        .collect();
    assert_eq!(
        msgs,
        vec![
            serde_json::json!({"method":"subscribe","subscription":{"type":"allMids"}}),
            serde_json::json!({"method":"subscribe","subscription":{"type":"bbo","coin":"BTC"}}),
            serde_json::json!({"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}),
            serde_json::json!({"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}),
            serde_json::json!({"method":"subscribe","subscription":{"type":"candle","coin":"BTC","interval":"1m"}}),
        ]
    );
    assert_eq!(hyperliquid::PING, r#"{"method":"ping"}"#);
}

fn quote(symbol: &str, bid: rust_decimal::Decimal, ask: rust_decimal::Decimal) -> Quote {
    Quote {
        symbol: symbol.into(),
        bid,
        ask,
        time_ms: 1,
        fallback: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_quote_is_served_only_while_connected_and_younger_than_stale_after() {
    let book = StreamBook::new();
    let feed = book.register(VENUE, "ws://x/ws", Duration::from_secs(5));
    feed.put_quote(quote("BTC", dec!(1), dec!(2)), Instant::now());
    feed.record("bbo", Instant::now());
    assert_eq!(book.fresh_quote(VENUE, "BTC"), None, "not connected yet");
    feed.set_connected(true);
    assert_eq!(book.fresh_quote(VENUE, "BTC").unwrap().bid, dec!(1));
    assert_eq!(
        book.health(VENUE).unwrap().channels[0].state,
        FeedState::Connected
    );

    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(book.fresh_quote(VENUE, "BTC"), None, "stale");
    let health = book.health(VENUE).unwrap();
    assert_eq!(health.state, FeedState::Connected);
    assert_eq!(health.channels[0].state, FeedState::Stale);
    assert_eq!(health.channels[0].age_ms, 6000);

    feed.put_quote(quote("BTC", dec!(3), dec!(4)), Instant::now());
    assert_eq!(
        book.fresh_quote(VENUE, "BTC").unwrap().bid,
        dec!(3),
        "fresh again"
    );
    feed.set_connected(false);
    assert_eq!(book.fresh_quote(VENUE, "BTC"), None, "disconnected");
    assert_eq!(book.health(VENUE).unwrap().state, FeedState::Disconnected);
    assert_eq!(book.fresh_quote("other", "BTC"), None);
}

/// Deadlines long enough never to fire on a loaded machine (the tests' own faults end the
/// connections), backoff short.
fn settings(url: &str, stale_after: Duration) -> StreamSettings {
    let mut s = StreamSettings::new(VENUE, url, stale_after);
    s.backoff = BackoffConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        ..BackoffConfig::default()
    };
    s
}

fn btc() -> Box<dyn super::Protocol> {
    Box::new(HyperliquidProtocol::public(&["BTC".to_string()]))
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

#[actix::test]
async fn the_stream_survives_every_fault_and_resubscribes_after_each() {
    let mock = HlWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed: Arc<VenueFeed> = book.register(VENUE, &mock.url(), Duration::from_secs(3600));
    let actor = StreamFeed::new(
        settings(&mock.url(), Duration::from_secs(3600)),
        btc(),
        feed.clone(),
    )
    .start();
    let subs_per_connection = 5;

    until("connected and subscribed", || {
        feed.is_connected() && mock.subscriptions().len() == subs_per_connection
    })
    .await;
    assert_eq!(
        mock.subscriptions()[0],
        serde_json::json!({"type": "allMids"})
    );
    assert!(mock.send_bbo("BTC", "100.5", "101.5", 1));
    until("the bbo is a quote", || {
        book.fresh_quote(VENUE, "BTC").is_some()
    })
    .await;
    assert_eq!(book.fresh_quote(VENUE, "BTC").unwrap().ask, dec!(101.5));

    // Malformed JSON and a JSON message cut in half: counted, dropped, still connected.
    assert!(mock.send_text("{not json"));
    let full = ws_mock::bbo_frame("BTC", "1", "2", 2);
    assert!(mock.send_text(&full[..full.len() / 2]));
    until("two malformed frames counted", || feed.malformed() == 2).await;
    assert!(mock.send_bbo("BTC", "102", "103", 3));
    until("still reading", || {
        book.fresh_quote(VENUE, "BTC")
            .is_some_and(|q| q.bid == dec!(102))
    })
    .await;
    assert_eq!(mock.connections(), 1);
    assert_eq!(feed.reconnects(), 0);

    // A server-initiated close: reconnect and subscribe again.
    assert!(mock.close());
    until("reconnected after close", || {
        mock.connections() == 2 && mock.subscriptions().len() == 2 * subs_per_connection
    })
    .await;
    until("connected", || feed.is_connected()).await;
    assert_eq!(feed.reconnects(), 1);

    // A websocket frame cut in half, then the TCP connection gone.
    assert!(mock.cut_frame(ws_mock::bbo_frame("BTC", "9", "10", 4)));
    until("reconnected after a cut frame", || {
        mock.connections() == 3 && mock.subscriptions().len() == 3 * subs_per_connection
    })
    .await;
    assert!(
        !matches!(book.fresh_quote(VENUE, "BTC"), Some(q) if q.bid == dec!(9)),
        "half a frame is never applied"
    );

    // Connection refused while the listener is closed: disconnected, retrying with backoff.
    mock.refuse();
    until("disconnected", || !feed.is_connected()).await;
    assert_eq!(
        book.fresh_quote(VENUE, "BTC"),
        None,
        "no stream quote while disconnected"
    );
    let before = feed.reconnects();
    until("several refused attempts", || {
        feed.reconnects() >= before + 3
    })
    .await;
    mock.reopen().await.unwrap();
    until("back after refusals", || {
        feed.is_connected() && mock.subscriptions().len() == 4 * subs_per_connection
    })
    .await;
    assert!(mock.send_bbo("BTC", "104", "105", 5));
    until("quotes flow again", || {
        book.fresh_quote(VENUE, "BTC")
            .is_some_and(|q| q.bid == dec!(104))
    })
    .await;
    actor.do_send(Stop);
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
async fn a_silent_server_is_left_and_the_heartbeat_is_answered() {
    let mock = HlWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register(VENUE, &mock.url(), Duration::from_secs(3600));
    let mut s = settings(&mock.url(), Duration::from_secs(3600));
    // Short heartbeat so the test sees several pings; the server's pongs keep it alive.
    s.ping_interval = Duration::from_millis(20);
    s.pong_timeout = Duration::from_millis(200);
    let _actor = StreamFeed::new(s, btc(), feed.clone()).start();
    until("pings answered", || {
        mock.pings() >= 3
            && feed
                .health()
                .channels
                .iter()
                .any(|c| c.channel == "pong" && c.messages >= 3)
    })
    .await;
    assert_eq!(mock.connections(), 1, "answered pings keep the connection");
    mock.set_silent(true);
    until("a silent connection is replaced", || {
        mock.connections() >= 2
    })
    .await;
    assert!(feed.reconnects() >= 1);
}

fn wallet() -> crate::exchanges::hyperliquid::signing::Address {
    PrivateKey::from_hex("0x0123456789012345678901234567890123456789012345678901234567890123")
        .unwrap()
        .address()
}

/// A gateway over the Hyperliquid REST mock with a stream book attached, and the websocket
/// mock the tests' streams connect to. The temporary data dir lives as long as its guard.
async fn gateway_on_mocks() -> (
    MockHyperliquid,
    HlWsMock,
    Arc<GatewayCore>,
    StreamBook,
    tempfile::TempDir,
) {
    let rest = MockHyperliquid::start(wallet(), Network::Testnet);
    let mock = HlWsMock::start().await.unwrap();
    let cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(rest.url()),
        wallet_address: wallet().to_string(),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let env = |k: &str| {
        (k == KEY_VAR).then(|| {
            "0x0123456789012345678901234567890123456789012345678901234567890123".to_string()
        })
    };
    let venue = Arc::new(HyperliquidVenue::open(VENUE, &cfg, &env, system_clock()).unwrap());
    let slot = Slot::<Connector>::new();
    slot.fill(Connector::new(venue).start(), slot.next_token(), "test/hl");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
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
    (rest, mock, core, book, dir)
}

#[actix::test]
async fn gateway_quotes_come_from_the_stream_while_fresh_and_from_rest_otherwise() {
    let (_rest, mock, core, book, _dir) = gateway_on_mocks().await;

    // No stream yet: the REST mock's book (59999 / 60001).
    assert_eq!(core.quote(VENUE, "BTC").await.unwrap().bid, dec!(59999));

    // A short staleness bound: this test waits for it to pass.
    let stale_after = Duration::from_millis(300);
    let feed = book.register(VENUE, &mock.url(), stale_after);
    let _actor = StreamFeed::new(settings(&mock.url(), stale_after), btc(), feed.clone()).start();
    until("connected", || feed.is_connected()).await;
    assert!(mock.send_bbo("BTC", "60100", "60102", 1));
    until("stream quote served", || {
        book.fresh_quote(VENUE, "BTC").is_some()
    })
    .await;
    let q = core.quote(VENUE, "BTC").await.unwrap();
    assert_eq!((q.bid, q.ask, q.fallback), (dec!(60100), dec!(60102), None));

    // Silence past stale_after: REST again, unmarked (the venue itself answered).
    until("stale", || book.fresh_quote(VENUE, "BTC").is_none()).await;
    let q = core.quote(VENUE, "BTC").await.unwrap();
    assert_eq!((q.bid, q.fallback), (dec!(59999), None));

    // Fresh again: the stream.
    assert!(mock.send_bbo("BTC", "60200", "60202", 2));
    until("fresh again", || book.fresh_quote(VENUE, "BTC").is_some()).await;
    assert_eq!(core.quote(VENUE, "BTC").await.unwrap().bid, dec!(60200));

    // Disconnected (refused): REST.
    mock.refuse();
    until("disconnected", || !feed.is_connected()).await;
    assert_eq!(core.quote(VENUE, "BTC").await.unwrap().bid, dec!(59999));
}

#[actix::test]
async fn gateway_candles_are_seeded_from_rest_then_extended_by_the_stream() {
    let (rest, mock, core, book, _dir) = gateway_on_mocks().await;
    let snapshots = || {
        rest.requests()
            .iter()
            .filter_map(|r| r.body_json())
            .filter(|b| b["type"] == "candleSnapshot")
            .count()
    };
    let tf = crate::exchanges::types::Timeframe::M1;

    let feed = book.register(VENUE, &mock.url(), Duration::from_secs(3600));
    let _actor = StreamFeed::new(
        settings(&mock.url(), Duration::from_secs(3600)),
        btc(),
        feed.clone(),
    )
    .start();
    until("connected", || feed.is_connected()).await;

    // The first read is REST's, and seeds the stream's series.
    let history = core.candles(VENUE, "BTC", tf, 10).await.unwrap();
    assert_eq!((history.len(), snapshots()), (10, 1));
    let last = history.last().unwrap().open_time_ms;

    // The current candle updated by the stream: served from the stream, no REST.
    assert!(mock.send_text(ws_mock::candle_frame("BTC", last)));
    until("the update is in the series", || {
        feed.fresh_candles("BTC", tf, 10)
            .is_some_and(|c| c.last().unwrap().close == dec!(29260.0))
    })
    .await;
    let read = core.candles(VENUE, "BTC", tf, 10).await.unwrap();
    assert_eq!(read[..9], history[..9]);
    assert_eq!(
        (read[9].open_time_ms, read[9].close, snapshots()),
        (last, dec!(29260.0), 1)
    );

    // The next candle opens: the series moves on by one.
    assert!(mock.send_text(ws_mock::candle_frame("BTC", last + 60_000)));
    until("the new candle is in the series", || {
        feed.fresh_candles("BTC", tf, 10)
            .is_some_and(|c| c.last().unwrap().open_time_ms == last + 60_000)
    })
    .await;
    let read = core.candles(VENUE, "BTC", tf, 10).await.unwrap();
    assert_eq!(
        (read[0].open_time_ms, snapshots()),
        (history[1].open_time_ms, 1)
    );

    // More than the series holds: REST.
    assert_eq!(core.candles(VENUE, "BTC", tf, 30).await.unwrap().len(), 30);
    assert_eq!(snapshots(), 2);

    // A gap (a candle missed): the series is dropped and the next read is REST's.
    assert!(mock.send_text(ws_mock::candle_frame("BTC", last + 5 * 60_000)));
    until("the series is dropped", || {
        feed.fresh_candles("BTC", tf, 10).is_none()
    })
    .await;
    core.candles(VENUE, "BTC", tf, 10).await.unwrap();
    assert_eq!(snapshots(), 3);
}

#[actix::test]
async fn observed_account_and_positions_come_from_the_pushed_state_while_fresh() {
    let (rest, mock, core, book, _dir) = gateway_on_mocks().await;
    let account_reads = || {
        rest.requests()
            .iter()
            .filter_map(|r| r.body_json())
            .filter(|b| b["type"] == "clearinghouseState")
            .count()
    };

    let stale_after = Duration::from_millis(400);
    let feed = book.register(VENUE, &mock.url(), stale_after);
    let protocol =
        HyperliquidProtocol::public(&["BTC".to_string()]).with_account(&wallet().to_string());
    let _actor = StreamFeed::new(
        settings(&mock.url(), stale_after),
        Box::new(protocol),
        feed.clone(),
    )
    .start();
    until("subscribed to the account", || {
        mock.subscriptions().contains(
            &serde_json::json!({"type": "clearinghouseState", "user": wallet().to_string()}),
        )
    })
    .await;

    // A pushed state with a position the REST mock does not have: reads show the push.
    let mut state = rest.clearinghouse_state();
    state["assetPositions"] = serde_json::json!([{"position": {"coin": "BTC", "entryPx": "60000",
        "leverage": {"type": "cross", "value": 2}, "liquidationPx": null, "marginUsed": "300",
        "maxTradeSzs": ["0", "0"], "positionValue": "600", "returnOnEquity": "0", "szi": "0.01",
        "unrealizedPnl": "0"}, "type": "oneWay"}]);
    state["marginSummary"]["accountValue"] = serde_json::json!("12345.5");
    let before = account_reads();
    assert!(mock.send_text(ws_mock::clearinghouse_frame(&wallet().to_string(), &state)));
    until("the pushed account is fresh", || {
        feed.fresh_account().is_some()
    })
    .await;
    // What `GetAccount` / `GetPositions` answer; the gateway actor is not started (its
    // start-up reconciliation would read the account over REST at a moment of its own).
    let account = core.observed_account(VENUE).await.unwrap();
    let positions = core.observed_positions(VENUE).await.unwrap();
    assert_eq!(account.account_value, dec!(12345.5));
    assert_eq!((positions.len(), positions[0].size), (1, dec!(0.01)));
    assert_eq!(
        account_reads(),
        before,
        "no REST read while the push is fresh"
    );
    // What acts on positions (closes, the kill switch) still reads REST: no position there.
    assert!(core.positions(VENUE).await.unwrap().is_empty());
    assert_eq!(account_reads(), before + 1);

    // Stale: REST again.
    until("the push is stale", || feed.fresh_account().is_none()).await;
    let positions = core.observed_positions(VENUE).await.unwrap();
    assert!(positions.is_empty());
    assert_eq!(account_reads(), before + 2);

    // A push that is not a clearinghouse state is malformed, counted, and changes nothing.
    let malformed = feed.malformed();
    assert!(mock.send_text(ws_mock::clearinghouse_frame(
        &wallet().to_string(),
        &serde_json::json!({"assetPositions": "x"})
    )));
    until("the bad push is counted", || feed.malformed() > malformed).await;
    assert!(feed.fresh_account().is_none());
}
