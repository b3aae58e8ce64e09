//! Hyperliquid's user channels: the frames as documented and recorded, what the protocol
//! pushes toward the ledger and keeps for followed wallets, and — against the loopback
//! websocket mock driven by the REST mock — fills reaching the ledger from the stream
//! before any REST pass, through reconnects and faults, each exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;
use tokio::time::Instant;

use super::book::StreamBook;
use super::connection::{StreamFeed, StreamSettings};
use super::hyperliquid::{self, HlFrame, HyperliquidProtocol};
use super::hyperliquid_user::{UserStreams, WsUserEvent};
use super::protocol::{FrameError, Protocol};
use super::pushed::PushSink;
use crate::clock::system_clock;
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{
    Amount, GatewayConfig, GatewayCore, OrderGateway, OrderIntent, Pricing,
};
use crate::exchanges::hyperliquid::config::{HyperliquidConfig, KEY_VAR};
use crate::exchanges::hyperliquid::mock::MockHyperliquid;
use crate::exchanges::hyperliquid::signing::{Network, PrivateKey};
use crate::exchanges::hyperliquid::venue::HyperliquidVenue;
use crate::exchanges::hyperliquid::ws_mock::{self, HlWsMock};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::types::{ClientOrderId, OrderStatus, Side};
use crate::resilience::config::BackoffConfig;
use crate::store::Store;
use crate::supervisor::Slot;

const VENUE: &str = "hl";
const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const OTHER: &str = "0x360878d351f05975e25f1807a27895e1e5e004fb";

/// The recorded `userEvents` frame (a liquidation fill), as the venue sent it.
const RECORDED_USER_EVENT: &str = r#"{"channel":"user","data":{"fills":[{"coin":"BTC","px":"66653.0","sz":"0.001","side":"A","time":1781528065899,"startPosition":"-0.0213","dir":"Open Short","closedPnl":"0.0","hash":"0xe29fd267b4d2c6f0e41904231bbec90000daea4d4fd5e5c286687dba73d6a0db","oid":55030848197,"crossed":false,"fee":"0.009997","tid":745210434703679,"cloid":"0xe8d5fd7ebbb4c3cff4d1803472a11463","liquidation":{"liquidatedUser":"0x360878d351f05975e25f1807a27895e1e5e004fb","markPx":"66607.0","method":"market"},"feeToken":"USDC","twapId":null}]}}"#;

fn wallet() -> String {
    PrivateKey::from_hex(KEY).unwrap().address().to_string()
}

/// The recorded fill as a `userFills` frame for `user`.
fn recorded_fills_frame(user: &str, snapshot: bool) -> String {
    let v: serde_json::Value = serde_json::from_str(RECORDED_USER_EVENT).unwrap();
    ws_mock::user_fills_frame(user, v["data"]["fills"].as_array().unwrap(), snapshot)
}

#[test]
fn user_frames_parse_as_documented_and_recorded() {
    let HlFrame::UserEvents(WsUserEvent::Fills(fills)) =
        hyperliquid::parse(RECORDED_USER_EVENT).unwrap()
    else {
        panic!("not a userEvents fills frame")
    };
    let f = &fills[0];
    assert_eq!(
        (f.tid, f.oid, f.crossed),
        (745210434703679, 55030848197, false)
    );
    let liq = f.liquidation.as_ref().unwrap();
    assert_eq!(
        (liq.mark_px, liq.method.as_str()),
        (dec!(66607.0), "market")
    );
    let fill = f.clone().into_fill().unwrap();
    assert_eq!(fill.fill_id, "745210434703679");
    assert_eq!(fill.venue_order_id, "55030848197");
    assert_eq!(
        fill.client_id,
        Some(ClientOrderId::parse("0xe8d5fd7ebbb4c3cff4d1803472a11463").unwrap())
    );
    assert_eq!(
        (fill.side, fill.price, fill.size, fill.fee),
        (Side::Sell, dec!(66653.0), dec!(0.001), dec!(0.009997))
    );

    let HlFrame::UserFills(u) = hyperliquid::parse(&recorded_fills_frame(OTHER, true)).unwrap()
    else {
        panic!("not userFills")
    };
    assert!(u.is_snapshot);
    assert_eq!(u.user, OTHER);
    let live = recorded_fills_frame(OTHER, false);
    assert!(!live.contains("isSnapshot"), "live frames carry no flag");
    let HlFrame::UserFills(u) = hyperliquid::parse(&live).unwrap() else {
        panic!()
    };
    assert!(!u.is_snapshot);

    // `WsOrder[]`: the order object of the recorded `orderStatus` answer.
    let updates = r#"{"channel":"orderUpdates","data":[{"order":{"coin":"TON","side":"B","limitPx":"3.2502","sz":"20.0","oid":141682155424,"timestamp":1755863118217,"origSz":"81.7","cloid":"0x0192f0a4c3b27e51a1b2c3d4e5f60718"},"status":"open","statusTimestamp":1755863118300},{"order":{"coin":"TON","side":"A","limitPx":"3.3","sz":"0.0","oid":141682155425,"timestamp":1755863118217,"origSz":"5.0"},"status":"marginCanceled","statusTimestamp":1755863118301}]}"#;
    let HlFrame::OrderUpdates(orders) = hyperliquid::parse(updates).unwrap() else {
        panic!()
    };
    let open = orders[0].clone().into_venue_order("orderUpdates").unwrap();
    assert_eq!(
        (open.status, open.filled_size, open.size),
        (OrderStatus::PartiallyFilled, dec!(61.7), dec!(81.7))
    );
    assert_eq!(
        open.client_id,
        Some(ClientOrderId::parse("0x0192f0a4c3b27e51a1b2c3d4e5f60718").unwrap())
    );
    let cancelled = orders[1].clone().into_venue_order("orderUpdates").unwrap();
    assert_eq!(
        (cancelled.status, cancelled.client_id, cancelled.filled_size),
        (OrderStatus::Cancelled, None, dec!(5.0))
    );

    // The other `WsUserEvent` variants of the docs.
    let funding = r#"{"channel":"user","data":{"funding":{"time":1,"coin":"ETH","usdc":"-0.5","szi":"1.2","fundingRate":"0.0000125"}}}"#;
    assert!(
        matches!(hyperliquid::parse(funding).unwrap(), HlFrame::UserEvents(WsUserEvent::Funding(f)) if f.funding_rate == dec!(0.0000125))
    );
    let liquidation = r#"{"channel":"user","data":{"liquidation":{"lid":7,"liquidator":"0x1","liquidated_user":"0x2","liquidated_ntl_pos":"100.5","liquidated_account_value":"3.2"}}}"#;
    assert!(
        matches!(hyperliquid::parse(liquidation).unwrap(), HlFrame::UserEvents(WsUserEvent::Liquidation(l)) if l.lid == 7)
    );
    let cancel = r#"{"channel":"user","data":{"nonUserCancel":[{"coin":"BTC","oid":12}]}}"#;
    assert!(
        matches!(hyperliquid::parse(cancel).unwrap(), HlFrame::UserEvents(WsUserEvent::NonUserCancel(c)) if c[0].oid == 12)
    );
}

#[test]
fn the_protocol_pushes_the_accounts_updates_and_keeps_followed_fills_apart() {
    let me = wallet();
    let (sink, mut rx) = PushSink::channel(16);
    let user = UserStreams::new(
        VENUE,
        &me.to_uppercase().replace("0X", "0x"),
        sink,
        &[OTHER.to_uppercase().replace("0X", "0x")],
    );
    let mut protocol = HyperliquidProtocol::public(&["BTC".to_string()]).with_user(user);
    let subs: Vec<serde_json::Value> = protocol
        .subscribe_messages()
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(
        subs[0]["subscription"],
        serde_json::json!({"type": "allMids"}),
        "public channels first"
    );
    let user_subs: Vec<&serde_json::Value> = subs[5..].iter().map(|s| &s["subscription"]).collect();
    assert_eq!(
        user_subs,
        [
            &serde_json::json!({"type": "orderUpdates", "user": me}),
            &serde_json::json!({"type": "userFills", "user": me}),
            &serde_json::json!({"type": "userEvents", "user": me}),
            &serde_json::json!({"type": "userFills", "user": OTHER}),
        ]
    );

    let book = StreamBook::new();
    let feed = book.register(VENUE, "ws://x/ws", Duration::from_secs(1));
    protocol.on_connected(&feed);
    let now = Instant::now();

    // The account's snapshot, flagged.
    assert_eq!(
        protocol
            .on_text(&recorded_fills_frame(&me, true), &feed, now)
            .unwrap(),
        "userFills"
    );
    let pushed = rx.try_recv().unwrap();
    assert!(pushed.snapshot);
    assert_eq!(
        (
            pushed.venue.as_str(),
            pushed.fills.len(),
            pushed.orders.len()
        ),
        (VENUE, 1, 0)
    );
    assert_eq!(pushed.fills[0].fill_id, "745210434703679");

    // Order updates: pushed as states.
    let updates = r#"{"channel":"orderUpdates","data":[{"order":{"coin":"BTC","side":"B","limitPx":"60000","sz":"0.0","oid":5,"timestamp":1,"origSz":"0.01","cloid":"0x0000000000000000000000000000abcd"},"status":"filled","statusTimestamp":2}]}"#;
    assert_eq!(
        protocol.on_text(updates, &feed, now).unwrap(),
        "orderUpdates"
    );
    let pushed = rx.try_recv().unwrap();
    assert!(!pushed.snapshot);
    assert_eq!(pushed.orders[0].status, OrderStatus::Filled);

    // userEvents fills repeat userFills: not pushed twice.
    assert_eq!(
        protocol.on_text(RECORDED_USER_EVENT, &feed, now).unwrap(),
        "userEvents"
    );
    assert!(rx.try_recv().is_err());

    // A followed wallet's fills: in its ring, never pushed toward the ledger; a replay
    // after a reconnect is not counted again.
    protocol
        .on_text(&recorded_fills_frame(OTHER, true), &feed, now)
        .unwrap();
    protocol
        .on_text(&recorded_fills_frame(OTHER, true), &feed, now)
        .unwrap();
    assert!(
        rx.try_recv().is_err(),
        "a followed fill never goes to the gateway"
    );
    let followed = feed.health().followed;
    assert_eq!(followed.len(), 1);
    assert_eq!(
        (
            followed[0].wallet.as_str(),
            followed[0].fills_seen,
            followed[0].last_fill_ms
        ),
        (OTHER, 1, Some(1781528065899))
    );
    assert_eq!(feed.followed().recent(OTHER)[0].price, dec!(66653.0));

    // An address nobody subscribed: ignored.
    protocol
        .on_text(
            &recorded_fills_frame("0x0000000000000000000000000000000000000001", false),
            &feed,
            now,
        )
        .unwrap();
    assert!(rx.try_recv().is_err());

    // Impossible content in valid JSON (a cloid that is not one): an error, not a panic.
    let bad =
        recorded_fills_frame(&me, false).replace("0xe8d5fd7ebbb4c3cff4d1803472a11463", "0xnope");
    assert!(matches!(
        protocol.on_text(&bad, &feed, now),
        Err(FrameError::Invalid { .. })
    ));
    let negative = recorded_fills_frame(&me, false).replace(r#""sz":"0.001""#, r#""sz":"-0.001""#);
    assert!(matches!(
        protocol.on_text(&negative, &feed, now),
        Err(FrameError::Invalid { .. })
    ));
    assert!(
        rx.try_recv().is_err(),
        "nothing of a refused frame is pushed"
    );
    assert!(matches!(
        protocol.on_text(r#"{"channel":"userFills","data":{"#, &feed, now),
        Err(FrameError::Malformed { .. })
    ));

    // The user channels are event-driven: silence is no staleness.
    feed.set_connected(true);
    feed.sweep(now + Duration::from_secs(60));
    let health = feed.health();
    for c in health
        .channels
        .iter()
        .filter(|c| ["userFills", "orderUpdates", "userEvents"].contains(&c.channel.as_str()))
    {
        assert_ne!(c.state, super::FeedState::Stale, "{c:?}");
    }
}

/// Backoff short; deadlines long (the tests' own faults end the connections).
fn settings(url: &str) -> StreamSettings {
    let mut s = StreamSettings::new(VENUE, url, Duration::from_secs(3600));
    // A heartbeat short enough that a silent server is left within the test; answered
    // pongs keep a healthy connection.
    s.ping_interval = Duration::from_millis(50);
    s.pong_timeout = Duration::from_millis(500);
    s.backoff = BackoffConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        ..BackoffConfig::default()
    };
    s
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// How many times the REST mock was asked for fills (a reconciliation pass asks once).
fn fill_reads(rest: &MockHyperliquid) -> u64 {
    let info = &rest.record()["info_requests"];
    ["userFills", "userFillsByTime"]
        .iter()
        .map(|k| info[k].as_u64().unwrap_or(0))
        .sum()
}

fn market_buy(usd: rust_decimal::Decimal) -> OrderIntent {
    OrderIntent {
        venue: VENUE.into(),
        symbol: "BTC".into(),
        side: Side::Buy,
        amount: Amount::Usd(usd),
        pricing: Pricing::Market,
        reduce_only: false,
        origin: "test".into(),
    }
}

/// `orrery_stream_pushed_total{venue="hl",kind,outcome}` in `handle`'s exposition.
fn pushed(
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    kind: &str,
    outcome: &str,
) -> f64 {
    let want = format!(
        r#"orrery_stream_pushed_total{{venue="{VENUE}",kind="{kind}",outcome="{outcome}"}} "#
    );
    handle
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

#[actix::test]
async fn pushed_fills_reach_the_ledger_before_any_pass_through_reconnects_and_faults() {
    // Every actor of this test runs on this thread, so a thread-local recorder sees them.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let rest = MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    );
    let ws = HlWsMock::start().await.unwrap();
    ws.follow(rest.user_feed());
    let cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(rest.url()),
        wallet_address: wallet(),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let env = |k: &str| (k == KEY_VAR).then(|| KEY.to_string());
    let venue = Arc::new(HyperliquidVenue::open(VENUE, &cfg, &env, system_clock()).unwrap());
    let connector = Slot::<Connector>::new();
    connector.fill(
        Connector::new(venue).start(),
        connector.next_token(),
        "test/hl",
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Reconciliation only at start and when the test asks: the stream must do the rest.
    let config = GatewayConfig {
        reconcile_interval: Duration::from_secs(3600),
        ..GatewayConfig::default()
    };
    let core = GatewayCore::open(
        &store,
        BTreeMap::from([(VENUE.to_string(), connector)]),
        RiskConfig::default(),
        config,
        system_clock(),
    )
    .unwrap();
    let gateway = Slot::<OrderGateway>::new();
    gateway.fill(
        OrderGateway::new(core.clone()).start(),
        gateway.next_token(),
        "test/gateway",
    );
    until("the first reconciliation", || fill_reads(&rest) >= 1).await;

    let book = StreamBook::new();
    let feed = book.register(VENUE, &ws.url(), Duration::from_secs(3600));
    let user = UserStreams::new(
        VENUE,
        &wallet(),
        OrderGateway::push_sink(gateway.clone()),
        &[],
    );
    let protocol = HyperliquidProtocol::public(&["BTC".to_string()]).with_user(user);
    let _stream = StreamFeed::new(settings(&ws.url()), Box::new(protocol), feed.clone()).start();
    let per_connection = 5 + 3;
    until("subscribed", || {
        feed.is_connected() && ws.subscriptions().len() == per_connection
    })
    .await;
    let reads = fill_reads(&rest);

    // An order fills at the venue: its fill and state arrive by the stream.
    let first = core.place(market_buy(dec!(600))).await.unwrap();
    assert_eq!(first.status, OrderStatus::Filled);
    until("the first fill in the ledger", || {
        core.ledger().fills(VENUE).unwrap().len() == 1
    })
    .await;
    assert_eq!(fill_reads(&rest), reads, "no REST pass read fills");
    let fill = core.ledger().fills(VENUE).unwrap().remove(0);
    assert_eq!(fill.client_id.as_ref(), Some(&first.client_id));

    // A server close: the new connection's snapshot replays the fill; it stays one.
    let snapshots = |feed: &super::VenueFeed| {
        feed.health()
            .channels
            .iter()
            .find(|c| c.channel == "userFills")
            .map_or(0, |c| c.messages)
    };
    let seen = snapshots(&feed);
    assert!(ws.close());
    until("resubscribed with a snapshot", || {
        ws.connections() == 2 && snapshots(&feed) > seen
    })
    .await;
    until("the replayed fill counted as a duplicate", || {
        pushed(&metrics, "fill", "duplicate") >= 1.0
    })
    .await;
    assert_eq!(core.ledger().fills(VENUE).unwrap().len(), 1);
    assert_eq!(pushed(&metrics, "fill", "applied"), 1.0);

    // Malformed JSON and a fill frame cut in half (a fill the venue never made): counted,
    // dropped, reconnected; nothing of them reaches the ledger.
    assert!(ws.send_text(r#"{"channel":"userFills","data":{"user":"#));
    until("malformed counted", || feed.malformed() == 1).await;
    let ghost = ws_mock::ws_fill("BTC", "1", "1", "B", 1, 999_999, 1);
    assert!(ws.cut_frame(ws_mock::user_fills_frame(&wallet(), &[ghost], false)));
    until("reconnected after the cut", || {
        ws.connections() == 3 && feed.is_connected()
    })
    .await;

    // Refused on reconnect while an order fills: the snapshot of the next connection
    // brings its fill, still before any REST pass.
    ws.refuse();
    until("disconnected", || !feed.is_connected()).await;
    let second = core.place(market_buy(dec!(1200))).await.unwrap();
    assert_eq!(second.status, OrderStatus::Filled);
    let before = feed.reconnects();
    until("refused attempts", || feed.reconnects() >= before + 2).await;
    ws.reopen().await.unwrap();
    until("the second fill in the ledger", || {
        core.ledger().fills(VENUE).unwrap().len() == 2
    })
    .await;
    assert_eq!(fill_reads(&rest), reads, "still no REST pass");

    // REST reconciliation agrees: nothing new, and every venue fill is in the ledger once.
    let pass = core.reconcile(VENUE).await.unwrap();
    assert_eq!(pass.new_fills, 0, "{pass:?}");
    let venue_fills: Vec<String> = rest
        .user_feed()
        .fills()
        .iter()
        .map(|f| f["tid"].as_u64().unwrap().to_string())
        .collect();
    let mut ledger: Vec<String> = core
        .ledger()
        .fills(VENUE)
        .unwrap()
        .into_iter()
        .map(|f| f.fill_id)
        .collect();
    ledger.sort();
    let mut expected = venue_fills.clone();
    expected.sort();
    assert_eq!(ledger, expected);
    assert!(
        !ledger.contains(&"999999".to_string()),
        "half a frame is never applied"
    );
    for id in [&first.client_id, &second.client_id] {
        assert_eq!(
            core.ledger().get(id).unwrap().unwrap().status,
            OrderStatus::Filled
        );
    }

    // Silence: what the server would have pushed meanwhile is lost; the silent connection
    // is replaced, and REST reconciliation finds the fill. Still every fill exactly once.
    ws.set_silent(true);
    let third = core.place(market_buy(dec!(900))).await.unwrap();
    assert_eq!(third.status, OrderStatus::Filled);
    let connections = ws.connections();
    until("the silent connection replaced", || {
        ws.connections() > connections
    })
    .await;
    ws.set_silent(false);
    until("connected again", || feed.is_connected()).await;
    core.reconcile(VENUE).await.unwrap();
    let mut ledger: Vec<String> = core
        .ledger()
        .fills(VENUE)
        .unwrap()
        .into_iter()
        .map(|f| f.fill_id)
        .collect();
    ledger.sort();
    let mut expected: Vec<String> = rest
        .user_feed()
        .fills()
        .iter()
        .map(|f| f["tid"].as_u64().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 3);
    assert_eq!(ledger, expected);
    assert_eq!(
        core.ledger().get(&third.client_id).unwrap().unwrap().status,
        OrderStatus::Filled
    );
}
