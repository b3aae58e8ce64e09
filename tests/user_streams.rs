//! The engine process with a Hyperliquid venue whose user channels stream from the loopback
//! websocket mock, itself driven by the Hyperliquid REST mock (both in this test process):
//! `orrery order` fills at the venue and the fill reaches the ledger from the stream with
//! reconciliation far off; a followed wallet's fills show in `orrery status` and
//! `/api/status` and never in the ledger; a bad `follow_wallets` entry stops the start.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::ws_mock::{user_fills_frame, ws_fill, HlWsMock};
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use rust_decimal::Decimal;
use serde_json::Value;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const OTHER: &str = "0x360878d351f05975e25f1807a27895e1e5e004fb";

fn venue_of(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/api/status")?;
    if code != 200 {
        return None;
    }
    let status: Value = serde_json::from_str(&body).ok()?;
    status["venues"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "hyperliquid")
        .cloned()
}

fn pushed(metrics: &str, kind: &str, outcome: &str) -> f64 {
    metric_sum(
        metrics,
        "orrery_stream_pushed_total",
        &[
            "venue=\"hyperliquid\"",
            &format!("kind=\"{kind}\""),
            &format!("outcome=\"{outcome}\""),
        ],
    )
}

#[test]
fn an_order_fill_reaches_the_ledger_from_the_stream_and_followed_fills_show_in_status() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(HlWsMock::start()).unwrap();
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let rest = MockHyperliquid::start(wallet, Network::Testnet);
    ws.follow(rest.user_feed());
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
follow_wallets = ["{OTHER}"]
"#,
        rest.url(),
        ws.url()
    );
    let config = test_config(dir.path(), port, &section);
    let cfg = config.to_str().unwrap();
    let env = [
        ("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY),
        ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
        // Only the start's pass: a fill in the ledger came from the stream.
        ("ORRERY__EXCHANGES__RECONCILE_INTERVAL", "1h"),
    ];
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    let limit = Duration::from_secs(60);

    let me = wallet.to_string();
    wait_for(limit, "the user channels to subscribe", || {
        let subs = ws.subscriptions();
        let has = |kind: &str, user: &str| {
            subs.iter()
                .any(|s| s["type"] == kind && s["user"].as_str() == Some(user))
        };
        (has("orderUpdates", &me)
            && has("userFills", &me)
            && has("userEvents", &me)
            && has("userFills", OTHER))
        .then_some(())
    });
    // The gateway has reconciled once (it accepts orders only after that).
    let out = run_cli(&[
        "order",
        "--config",
        cfg,
        "--venue",
        "hyperliquid",
        "--symbol",
        "BTC",
        "--side",
        "buy",
        "--usd",
        "600",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["status"], "filled", "{report}");

    // Recorded by the stream's push (a fill REST had recorded first would count as a
    // duplicate there).
    wait_for(limit, "the fill recorded from the stream", || {
        let (_, metrics) = http_get(port, "/metrics")?;
        (pushed(&metrics, "fill", "applied") == 1.0).then_some(())
    });
    // The order's pushed state said what its answer had already written: no change.
    wait_for(limit, "the order update counted", || {
        let (_, metrics) = http_get(port, "/metrics")?;
        (pushed(&metrics, "order", "duplicate") >= 1.0).then_some(())
    });
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(pushed(&metrics, "order", "applied"), 0.0, "{metrics}");
    let (ok, report) = promtool_check(&metrics);
    assert!(ok, "{report}");

    // A followed wallet's fills: in status, not in the ledger.
    let theirs = [
        ws_fill("ETH", "3000.5", "0.2", "B", 77, 5_001, 1_781_528_065_899),
        ws_fill("ETH", "3001", "0.1", "A", 78, 5_002, 1_781_528_066_000),
    ];
    assert!(ws.send_text(user_fills_frame(OTHER, &theirs, false)));
    let feed = wait_for(limit, "the followed fills in /api/status", || {
        let feed = venue_of(port)?["feed"].clone();
        (feed["followed"][0]["fills_seen"] == 2).then_some(feed)
    });
    assert_eq!(feed["followed"][0]["wallet"], OTHER);
    assert_eq!(feed["followed"][0]["last_fill_ms"], 1_781_528_066_000i64);
    let user_fills = feed["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "userFills")
        .unwrap();
    assert_eq!(user_fills["state"], "connected");

    let out = run_cli(&["status", "--config", cfg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("followed {OTHER}  2 fills seen, last fill")),
        "{text}"
    );

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, limit).success());

    // Stopped: status reads the ledger's fills from disk. Ours is there (the BTC
    // position), the followed wallet's ETH fills are not.
    let out = run_cli(&["status", "--config", cfg, "--json"]);
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hl = status["venues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "hyperliquid")
        .unwrap();
    let row = |symbol: &str| {
        hl["position_pnl"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["symbol"] == symbol)
            .cloned()
    };
    let size = |r: &Value| -> Decimal { r["size"].as_str().unwrap().parse().unwrap() };
    let btc = row("BTC").expect("a BTC row from the recorded fill");
    assert!(rest.position("BTC") > Decimal::ZERO);
    assert_eq!(size(&btc), rest.position("BTC"), "{btc}");
    assert!(
        row("ETH").is_none_or(|r| size(&r).is_zero()),
        "a followed wallet's fill is never ours: {hl}"
    );
}

#[test]
fn a_bad_followed_wallet_is_named_and_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = r#"
[exchanges.venues.hyperliquid]
kind = "hyperliquid"
network = "testnet"
wallet_address = "0x14791697260E4c9A71f18484C9f997B308e59325"
follow_wallets = ["0x360878d351f05975e25f1807a27895e1e5e004fb", "0x12345"]
"#;
    let config = test_config(dir.path(), port, section);
    for command in ["run", "check-config"] {
        let out = run_cli(&[command, "--config", config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("exchanges.venues.hyperliquid.follow_wallets[1]"),
            "{command}: {err}"
        );
        assert!(err.contains("0x12345"), "{command}: {err}");
        assert!(
            !err.contains("follow_wallets[0]"),
            "only the bad one: {err}"
        );
    }
    assert!(!data_dir(dir.path()).exists());
}
