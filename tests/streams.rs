//! The engine process with a Hyperliquid venue whose market data streams from the loopback
//! websocket mock (REST from the Hyperliquid mock), both in this test process: `orrery
//! status` and `/api/status` show the feed connected, stale after silence, disconnected when
//! the server refuses, and connected again once it is back; the stream metrics pass promtool.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::ws_mock::{all_mids_frame, HlWsMock};
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use serde_json::Value;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

fn feed_of(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/api/status")?;
    if code != 200 {
        return None;
    }
    let status: Value = serde_json::from_str(&body).ok()?;
    status["venues"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "hyperliquid")
        .map(|v| v["feed"].clone())
}

fn channel_state(feed: &Value, channel: &str) -> Option<String> {
    feed["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel"] == channel)
        .and_then(|c| c["state"].as_str().map(str::to_string))
}

#[test]
fn status_shows_the_stream_connected_stale_disconnected_and_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(HlWsMock::start()).unwrap();
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let rest = MockHyperliquid::start(wallet, Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = format!(
        r#"
[exchanges.venues.hyperliquid]
kind = "hyperliquid"
network = "testnet"
base_url = "{}"
wallet_address = "{wallet}"
request_timeout = "3s"
ws_url = "{}"
stream_stale_after = "1s"
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
            ("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY),
            ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
        ],
    );
    let limit = Duration::from_secs(60);

    // Connected and subscribed (allMids: no agent trades this venue's symbols).
    wait_for(limit, "the stream to subscribe", || {
        (ws.subscriptions().first() == Some(&serde_json::json!({"type": "allMids"}))).then_some(())
    });
    let feed = wait_for(limit, "allMids to be connected in status", || {
        ws.send_text(all_mids_frame());
        let feed = feed_of(port)?;
        (channel_state(&feed, "allMids").as_deref() == Some("connected")).then_some(feed)
    });
    assert_eq!(feed["state"], "connected");
    assert_eq!(feed["url"], ws.url().as_str());

    let out = run_cli(&["status", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("stream connected {}", ws.url())),
        "{text}"
    );
    assert!(text.contains("allMids"), "{text}");

    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_stream_connected",
            &["venue=\"hyperliquid\""]
        ),
        1.0
    );
    assert!(
        metric_sum(
            &metrics,
            "orrery_stream_messages_total",
            &["channel=\"allMids\""]
        ) >= 1.0
    );
    let (ok, report) = promtool_check(&metrics);
    assert!(ok, "{report}");

    // Silence: allMids goes stale (the connection stays up: pongs are not data).
    wait_for(limit, "allMids to be stale", || {
        let feed = feed_of(port)?;
        (channel_state(&feed, "allMids").as_deref() == Some("stale")).then_some(())
    });
    // The staleness sweep (every half `stream_stale_after`) counts the resync.
    wait_for(limit, "the resync to be counted", || {
        let (_, metrics) = http_get(port, "/metrics")?;
        (metric_sum(
            &metrics,
            "orrery_stream_resyncs_total",
            &["venue=\"hyperliquid\""],
        ) >= 1.0)
            .then_some(())
    });

    // Refused: disconnected, and reconnect attempts counted.
    rt.block_on(async { ws.refuse() });
    wait_for(limit, "the feed to be disconnected", || {
        let feed = feed_of(port)?;
        (feed["state"] == "disconnected" && feed["reconnects"].as_u64()? >= 1).then_some(())
    });

    // Back: subscribed again on a new connection, fresh once data flows.
    rt.block_on(ws.reopen()).unwrap();
    wait_for(limit, "the feed to be back", || {
        ws.send_text(all_mids_frame());
        let feed = feed_of(port)?;
        (feed["state"] == "connected"
            && channel_state(&feed, "allMids").as_deref() == Some("connected"))
        .then_some(())
    });
    assert!(ws.connections() >= 2);
    assert_eq!(
        ws.subscriptions()
            .iter()
            .filter(|s| s["type"] == "allMids")
            .count(),
        ws.connections(),
        "every connection subscribed again"
    );

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, limit).success());
}
