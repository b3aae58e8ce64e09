//! `orrery order` and `orrery status` against a Binance spot venue: the mock Binance
//! exchange runs in this test process, the engine CLI in a child process with the keys in
//! its environment.

mod common;

use std::process::{Command, Output};

use common::*;
use orrery_actors::exchanges::binance::mock::{MockBinance, MOCK_API_KEY, MOCK_API_SECRET};
use orrery_actors::exchanges::binance::{API_KEY_ENV, API_SECRET_ENV};

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .env(API_KEY_ENV, MOCK_API_KEY)
        .env(API_SECRET_ENV, MOCK_API_SECRET)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_market_order_on_binance_fills_and_status_shows_it() {
    let mock = MockBinance::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[exchanges.venues.binance]\nkind = \"binance\"\nbase_url = {:?}\nsymbols = [\"BTC\"]\nrequest_timeout = \"5s\"\n",
        mock.url()
    );
    let config = test_config(dir.path(), free_port(), &extra);
    let cfg = config.to_str().unwrap();

    let out = cli(&[
        "order", "--config", cfg, "--venue", "binance", "--symbol", "BTC", "--side", "buy",
        "--usd", "100", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filled = json(&out);
    assert_eq!(filled["status"], "filled", "{filled}");
    assert_eq!(filled["venue"], "binance");
    let client_id = filled["client_id"].as_str().unwrap();
    assert_eq!(mock.order_posts(client_id), 1);
    assert_eq!(mock.order_status(client_id).as_deref(), Some("FILLED"));

    let status = json(&cli(&["status", "--config", cfg, "--json"]));
    let recent = status["recent_orders"].as_array().unwrap();
    let ours = recent
        .iter()
        .find(|o| o["client_id"] == client_id)
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(ours["status"], "filled");
    assert_eq!(ours["venue"], "binance");

    // The keys never reach the data dir.
    let leaked = any_file_contains(&dir.path().join("data"), &[MOCK_API_SECRET, MOCK_API_KEY]);
    assert!(!leaked, "an API key or secret was written to the data dir");
}

#[test]
fn the_shipped_binance_example_is_a_valid_config() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/binance.toml");
    let c = orrery::config::Config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(c.exchanges.venues["binance"].kind(), "binance");
    let err = orrery::config::Config::load_str(
        "[exchanges.venues.b]\nkind = \"binance\"\nrecv_window_ms = 0\n",
        "t.toml",
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exchanges.venues.b.recv_window_ms"), "{err}");
}
