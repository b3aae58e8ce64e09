//! The engine process with a Binance spot venue whose market data and user data stream
//! from the loopback websocket mock (REST from the Binance mock), both in this test
//! process: `orrery status` shows both feeds, an order's reference quote comes from the
//! stream (and from REST once the stream is stale), and a fill pushed by the user stream
//! reaches the ledger once, also after REST reconciliation passes.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::binance::mock::{MockBinance, MOCK_API_KEY, MOCK_API_SECRET};
use orrery_actors::exchanges::binance::ws_mock::{book_ticker_frame, BinanceWsMock, Conn};
use orrery_actors::exchanges::binance::{API_KEY_ENV, API_SECRET_ENV};
use rust_decimal_macros::dec;
use serde_json::Value;

fn venue_of(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/api/status")?;
    if code != 200 {
        return None;
    }
    let status: Value = serde_json::from_str(&body).ok()?;
    status["venues"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "binance")
        .cloned()
}

fn channel_state(feed: &Value, channel: &str) -> Option<String> {
    feed["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel"] == channel)
        .and_then(|c| c["state"].as_str().map(str::to_string))
}

/// A decimal sent as a JSON string or number.
fn dec_of(v: &Value) -> Option<rust_decimal::Decimal> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

fn rows(body: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match v {
        Value::Array(a) => a,
        Value::Object(o) => o
            .values()
            .find_map(|x| x.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn binance_streams_feed_status_quotes_and_the_ledger() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(BinanceWsMock::start()).unwrap();
    let rest = MockBinance::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = format!(
        r#"
[exchanges.venues.binance]
kind = "binance"
base_url = "{}"
symbols = ["BTC"]
request_timeout = "5s"
ws_url = "{}"
stream_stale_after = "5s"
"#,
        rest.url(),
        ws.url()
    );
    let config = test_config(dir.path(), port, &section);
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[
            (API_KEY_ENV, MOCK_API_KEY),
            (API_SECRET_ENV, MOCK_API_SECRET),
            ("ORRERY__AGENTS__TRADING", "[]"),
            ("ORRERY__EXCHANGES__RECONCILE_INTERVAL", "1s"),
        ],
    );
    let limit = Duration::from_secs(60);

    // Both connections: the combined market streams, and the user stream on its listen key.
    wait_for(limit, "the market and user connections", || {
        (ws.has_connection(Conn::Market) && ws.has_connection(Conn::User)).then_some(())
    });
    let paths = ws.paths();
    assert!(
        paths.iter().any(|p| p
            .starts_with("/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@kline_1m")
            && p.ends_with("btcusdt@depth@100ms")),
        "{paths:?}"
    );
    let key = rest.listen_keys()[0].0.clone();
    assert!(paths.contains(&format!("/ws/{key}")), "{paths:?}");

    // A bookTicker makes the channel connected in status; the user stream shows too.
    let venue = wait_for(limit, "bookTicker connected in status", || {
        ws.send_text(
            Conn::Market,
            book_ticker_frame("BTCUSDT", 1, "60400.00", "60450.00"),
        );
        let v = venue_of(port)?;
        (channel_state(&v["feed"], "bookTicker").as_deref() == Some("connected")
            && v["feed"]["user"]["state"] == "connected")
            .then_some(v)
    });
    assert_eq!(venue["feed"]["state"], "connected");
    assert_eq!(venue["feed"]["url"], ws.url().as_str());
    let out = run_cli(&["status", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("stream connected {}", ws.url())),
        "{text}"
    );
    assert!(
        text.contains(&format!("user stream connected {}", ws.url())),
        "{text}"
    );
    assert!(
        !text.contains(&key),
        "the listen key is never shown: {text}"
    );

    // An order's reference quote is the stream's (ask 60450): 100 USD buys 0.00165 BTC;
    // the REST book (ask 60010) would have given 0.00166.
    ws.send_text(
        Conn::Market,
        book_ticker_frame("BTCUSDT", 2, "60400.00", "60450.00"),
    );
    let (code, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"binance","symbol":"BTC","side":"buy","usd":"100"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dec_of(&report["size"]), Some(dec!(0.00165)), "{report}");
    assert_eq!(report["status"], "filled", "{report}");

    // A limit order rests; the market moves through it on the venue; the user stream
    // pushes the executionReport and the fill reaches the ledger.
    let (code, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"binance","symbol":"BTC","side":"buy","size":"0.001","limit":"59000"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let resting: Value = serde_json::from_str(&body).unwrap();
    let client_id = resting["client_id"].as_str().unwrap().to_string();
    rest.take_execution_reports();
    rest.set_book("BTCUSDT", dec!(58990), dec!(58995));
    let reports = rest.take_execution_reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let trade_id = reports[0]["t"].to_string();
    assert!(ws.send_text(Conn::User, reports[0].to_string()));
    assert!(ws.send_text(Conn::User, rest.account_position_event().to_string()));
    wait_for(limit, "the pushed fill to be taken by the gateway", || {
        let (_, metrics) = http_get(port, "/metrics")?;
        (metric_sum(
            &metrics,
            "orrery_stream_pushed_total",
            &["venue=\"binance\"", "kind=\"fill\""],
        ) >= 1.0)
            .then_some(())
    });
    let fills_of = |port: u16| -> Option<Vec<Value>> {
        let (code, body) = http_get(port, "/api/trades?venue=binance")?;
        (code == 200).then(|| {
            rows(&body)
                .into_iter()
                .filter(|r| r["fill_id"].as_str() == Some(trade_id.as_str()))
                .collect()
        })
    };
    wait_for(limit, "the fill in the ledger", || {
        (fills_of(port)?.len() == 1).then_some(())
    });
    // REST reconciliation passes read the same trade: still one fill.
    let reads = rest.count_method("GET", "/api/v3/myTrades");
    wait_for(limit, "two more reconciliation passes", || {
        (rest.count_method("GET", "/api/v3/myTrades") >= reads + 2).then_some(())
    });
    let fills = fills_of(port).unwrap();
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(fills[0]["client_id"].as_str(), Some(client_id.as_str()));
    assert_eq!(dec_of(&fills[0]["price"]), Some(dec!(59000)), "{fills:?}");
    let (_, body) = http_get(port, "/api/orders?venue=binance").unwrap();
    let order = rows(&body)
        .into_iter()
        .find(|o| o["client_id"].as_str() == Some(client_id.as_str()))
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(order["status"], "filled", "{order}");
    // Balances pushed by the user stream are shown; a quiet user stream is not stale.
    let v = venue_of(port).unwrap();
    assert_eq!(
        channel_state(&v["feed"]["user"], "executionReport").as_deref(),
        Some("connected"),
        "{v}"
    );
    let v = venue_of(port).unwrap();
    let balances = v["feed"]["user"]["balances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(balances.iter().any(|b| b["asset"] == "BTC"), "{v}");

    // Silence past `stream_stale_after`: the quote is stale and reads use REST again (the
    // REST book is now 58990 / 58995: 100 USD buys 0.00169).
    wait_for(limit, "bookTicker stale in status", || {
        let v = venue_of(port)?;
        (channel_state(&v["feed"], "bookTicker").as_deref() == Some("stale")).then_some(())
    });
    let (code, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"binance","symbol":"BTC","side":"buy","usd":"100"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dec_of(&report["size"]), Some(dec!(0.00169)), "{report}");
    let v = venue_of(port).unwrap();
    assert_eq!(
        channel_state(&v["feed"]["user"], "executionReport").as_deref(),
        Some("connected"),
        "a user stream without activity is not stale: {v}"
    );

    // The stream metrics pass promtool.
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let (ok, report) = promtool_check(&metrics);
    assert!(ok, "{report}");

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, limit).success());
    // The user stream's last key was closed on the way out, or expires on its own; the keys
    // never reach the data dir or the log.
    let log: String = engine_logs(dir.path());
    assert!(log.contains("user-data listen key created"), "{log}");
    assert!(
        !log.contains(MOCK_API_KEY) && !log.contains(&key),
        "a key reached the log"
    );
}
