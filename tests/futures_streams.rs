//! The engine process with a Binance USDⓈ-M futures venue whose market and user data
//! stream from the loopback futures websocket mock (REST and the listen key from the
//! futures REST mock), all in this test process: `/api/status` and `orrery status` show
//! the market feed (marks with funding, liquidation counts) and the user feed connected;
//! `orrery market liquidations` and its API route report what `!forceOrder@arr` sent; an
//! `ORDER_TRADE_UPDATE` of an order placed with `orrery order` leaves one fill in the
//! ledger; the liquidation metrics pass promtool.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::binance_futures::mock::{
    MockBinanceFutures, MOCK_API_KEY, MOCK_API_SECRET,
};
use orrery_actors::exchanges::binance_futures::ws_mock::{
    book_ticker_event, force_order_event, mark_price_event, order_trade_update_event, Conn,
    FuturesWsMock,
};
use orrery_actors::exchanges::binance_futures::{API_KEY_ENV, API_SECRET_ENV};
use serde_json::Value;

const KEYS: [(&str, &str); 2] = [
    (API_KEY_ENV, MOCK_API_KEY),
    (API_SECRET_ENV, MOCK_API_SECRET),
];

fn venue_of(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/api/status")?;
    if code != 200 {
        return None;
    }
    let status: Value = serde_json::from_str(&body).ok()?;
    status["venues"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "bnf")
        .cloned()
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .envs(KEYS)
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn futures_streams_feed_status_liquidations_and_the_ledger() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(FuturesWsMock::start()).unwrap();
    let rest = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = format!(
        r#"
[exchanges.venues.bnf]
kind = "binance_futures"
base_url = "{}"
ws_url = "{}"
symbols = ["BTC"]
request_timeout = "5s"
stream_stale_after = "5s"
"#,
        rest.url(),
        ws.url()
    );
    let config = test_config(dir.path(), port, &section);
    let cfg = config.to_str().unwrap();
    let mut env = KEYS.to_vec();
    env.push(("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"));
    // The order's fill reaches the ledger at the next reconciliation (the mock's user
    // stream sends no push of its own until the test does): every second, not every 30.
    env.push(("ORRERY__EXCHANGES__RECONCILE_INTERVAL", "1s"));
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    let limit = Duration::from_secs(90);

    // Both connections: the market one names its streams, the user one carries the key
    // the REST mock made.
    wait_for(limit, "both futures connections", || {
        (ws.has_connection(Conn::Market) && ws.has_connection(Conn::User)).then_some(())
    });
    let streams = &ws.stream_sets()[0];
    for want in [
        "btcusdt@markPrice@1s",
        "btcusdt@aggTrade",
        "btcusdt@bookTicker",
        "!forceOrder@arr",
    ] {
        assert!(streams.iter().any(|s| s == want), "{want} in {streams:?}");
    }
    assert_eq!(ws.listen_keys(), vec![rest.listen_key().unwrap()]);

    // Market data: a quote, a mark with funding, and two liquidations.
    let venue = wait_for(limit, "the mark in status", || {
        ws.send_market(
            "btcusdt@bookTicker",
            book_ticker_event("BTCUSDT", "60100.5", "60100.6", 1),
        );
        ws.send_market(
            "btcusdt@markPrice@1s",
            mark_price_event("BTCUSDT", "60100.55", "0.00010000", 1_767_225_600_000),
        );
        let v = venue_of(port)?;
        let marks = v["feed"]["derivatives"]["marks"].as_array()?;
        (marks.first()?["symbol"] == "BTC" && marks[0]["fresh"] == true).then_some(v)
    });
    assert_eq!(venue["feed"]["state"], "connected");
    assert_eq!(
        venue["feed"]["derivatives"]["marks"][0]["funding_rate"],
        "0.0001"
    );
    assert_eq!(venue["feed"]["user"]["state"], "connected", "{venue}");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(ws.send_market(
        "!forceOrder@arr",
        force_order_event("BTCUSDT", "SELL", "0.5", "59000", now - 1_000)
    ));
    assert!(ws.send_market(
        "!forceOrder@arr",
        force_order_event("ETHUSDT", "BUY", "2", "3000", now)
    ));
    wait_for(limit, "two liquidations counted", || {
        let v = venue_of(port)?;
        let l = &v["feed"]["derivatives"]["liquidations"];
        (l["sells"] == 1 && l["buys"] == 1).then_some(())
    });

    // `orrery market liquidations` asks the running engine.
    let out = cli(&[
        "market",
        "liquidations",
        "--config",
        cfg,
        "--venue",
        "bnf",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["total"], 2, "{r}");
    assert_eq!(r["liquidations"][0]["symbol"], "ETH", "newest first: {r}");
    let btc = r["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["symbol"] == "BTC")
        .cloned()
        .unwrap();
    assert_eq!(
        (btc["side"].as_str(), btc["notional_usd"].as_str()),
        (Some("sell"), Some("29500"))
    );
    let out = cli(&[
        "market",
        "liquidations",
        "--config",
        cfg,
        "--venue",
        "bnf",
        "--symbol",
        "BTC",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 in the window"), "{text}");
    assert!(text.contains("BTC        sell"), "{text}");
    let (code, body) = http_get(
        port,
        "/api/market/liquidations?venue=bnf&since=1h&symbol=ETH",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["total"], 1);
    // Bad input: a clear error, exit 2.
    let out = cli(&[
        "market",
        "liquidations",
        "--config",
        cfg,
        "--venue",
        "paper",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("streams no liquidations"));
    let (code, body) = http_get(
        port,
        "/api/market/liquidations?venue=bnf&since=yesterdayish",
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");

    // `orrery status` renders the feed section.
    let out = cli(&["status", "--config", cfg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("mark BTC"), "{text}");
    assert!(text.contains("funding 0.01%"), "{text}");
    assert!(
        text.contains("liquidations since start: 1 longs (sell), 1 shorts (buy)"),
        "{text}"
    );

    // An order through the engine, then the venue's push of its fill: one fill in the
    // ledger (REST already recorded it, or the push did; never both).
    let out = cli(&[
        "order", "--config", cfg, "--venue", "bnf", "--symbol", "BTC", "--side", "buy", "--usd",
        "100", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let order = json(&out);
    assert_eq!(order["status"], "filled", "{order}");
    let cid = order["client_id"].as_str().unwrap().to_string();
    let trades = wait_for(limit, "the fill in the ledger", || {
        let out = cli(&["trades", "--config", cfg, "--venue", "bnf", "--json"]);
        let rows = json(&out);
        (rows.as_array()?.len() == 1).then_some(rows)
    });
    let t = &trades[0];
    let (fill_id, venue_order_id) = (
        t["fill_id"].as_str().unwrap().to_string(),
        t["venue_order_id"].as_str().unwrap().to_string(),
    );
    let (size, price) = (
        t["size"].as_str().unwrap().to_string(),
        t["price"].as_str().unwrap().to_string(),
    );
    assert!(ws.send_user(order_trade_update_event(
        "BTCUSDT",
        &cid,
        "BUY",
        "MARKET",
        &size,
        "TRADE",
        "FILLED",
        venue_order_id.parse().unwrap(),
        &size,
        &size,
        &price,
        fill_id.parse().unwrap(),
        false,
    )));
    wait_for(limit, "the push to be counted a duplicate", || {
        let (_, metrics) = http_get(port, "/metrics")?;
        (metric_sum(
            &metrics,
            "orrery_stream_pushed_total",
            &["venue=\"bnf\"", "kind=\"fill\"", "outcome=\"duplicate\""],
        ) >= 1.0)
            .then_some(())
    });
    let out = cli(&["trades", "--config", cfg, "--venue", "bnf", "--json"]);
    assert_eq!(json(&out).as_array().unwrap().len(), 1, "one fill");

    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_liquidations_total",
            &["venue=\"bnf\"", "side=\"sell\""]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_liquidation_notional_usd_total",
            &["venue=\"bnf\"", "side=\"buy\""]
        ),
        6000.0
    );
    let (ok, report) = promtool_check(&metrics);
    assert!(ok, "{report}");
    // Not a secret anywhere the engine writes: the API key nor the listen key.
    let key = rest.listen_key().unwrap();
    assert!(!any_file_contains(dir.path(), &[MOCK_API_KEY, &key]));

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, limit).success());
}
