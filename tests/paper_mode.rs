//! `--paper` end to end: a config with a live Hyperliquid venue runs with that venue
//! replaced by a paper venue seeded from the (mock) venue's current prices, never sending
//! it an order; an unreachable venue stops the start with one clear message.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use rust_decimal::Decimal;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

fn hl_section(url: &str) -> String {
    format!(
        r#"
[exchanges.venues.hyperliquid]
kind = "hyperliquid"
network = "testnet"
base_url = "{url}"
wallet_address = "{}"
request_timeout = "3s"
"#,
        PrivateKey::from_hex(KEY).unwrap().address()
    )
}

/// The default agent trades on the live venue, and waits long enough to stay out of the way.
const ON_HYPERLIQUID: [(&str, &str); 2] = [
    ("ORRERY__AGENTS__TRADING__0__VENUE", "hyperliquid"),
    ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
];

#[test]
fn paper_runs_a_live_config_on_a_paper_twin_seeded_from_the_venue() {
    let mock = MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    );
    // Far from the paper venue's own BTC default (60000): the seed is visible.
    mock.set_book(
        "BTC",
        Decimal::from(41_999),
        Decimal::from(42_001),
        Decimal::from(10),
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, &hl_section(&mock.url()));

    let out = std::process::Command::new(BIN)
        .args([
            "check-config",
            "--paper",
            "--config",
            config.to_str().unwrap(),
        ])
        .env_remove("ORRERY_CONFIG")
        .envs(ON_HYPERLIQUID)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("venues [hyperliquid, paper]"), "{stdout}");

    let mut env: Vec<(&str, &str)> = ON_HYPERLIQUID.to_vec();
    env.push(("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY));
    let mut engine = spawn_engine(&config, dir.path(), &["--paper"], &env);
    wait_for(Duration::from_secs(30), "the paper twin's /health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let order = r#"{"venue":"hyperliquid","symbol":"BTC","side":"buy","usd":"1000"}"#;
    let (status, body) = wait_for(
        Duration::from_secs(30),
        "the paper venue to take orders",
        || http_post_json(port, "/api/orders", order).filter(|(s, _)| *s != 503),
    );
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "filled", "{report}");
    let price: Decimal = report["avg_fill_price"].as_str().unwrap().parse().unwrap();
    assert!(
        (Decimal::from(34_000)..Decimal::from(50_000)).contains(&price),
        "filled near the live venue's 42000, not the paper default 60000: {price}"
    );
    signal(&engine, libc::SIGTERM);
    let exit = wait_exit(&mut engine, Duration::from_secs(30));
    assert!(
        exit.success(),
        "{exit}; the engine's log:\n{}",
        engine_logs(dir.path())
    );

    assert!(
        mock.order_actions().is_empty(),
        "no order ever reached the live venue"
    );
    assert!(
        data_dir(dir.path()).join("paper").is_dir(),
        "paper state lives apart from the live data dir"
    );
}

#[test]
fn paper_with_an_unreachable_venue_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = test_config(dir.path(), free_port(), &hl_section(&dead));
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "--paper",
            "--config",
            config.to_str().unwrap(),
            "--for",
            "5s",
        ])
        .env_remove("ORRERY_CONFIG")
        .envs(ON_HYPERLIQUID)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--paper") && err.contains("`hyperliquid`"),
        "{err}"
    );
    assert!(err.contains("reachable"), "{err}");
    assert!(!data_dir(dir.path()).exists(), "nothing was started");
}

#[test]
fn run_refuses_an_agent_symbol_the_live_venue_does_not_list_before_anything_starts() {
    let mock = MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, &hl_section(&mock.url()));
    let out = std::process::Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap(), "--for", "5s"])
        .env_remove("ORRERY_CONFIG")
        .envs(ON_HYPERLIQUID)
        .env(
            "ORRERY__AGENTS__TRADING__0__SYMBOLS",
            r#"["BTC", "NOSUCHCOIN"]"#,
        )
        .env("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("agents.trading[0].symbols"), "{err}");
    assert!(
        err.contains("NOSUCHCOIN") && err.contains("`hyperliquid`"),
        "{err}"
    );
    assert!(!err.contains("`BTC`"), "BTC is listed: {err}");
    assert!(!data_dir(dir.path()).exists(), "nothing was started");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing listens"
    );
}
