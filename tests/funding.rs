//! Funding through the real binary: `orrery market funding|open-interest` on a
//! Hyperliquid venue (the loopback mock in this test process).

mod common;

use std::process::{Command, Output};

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use rust_decimal_macros::dec;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

fn hl_mock() -> MockHyperliquid {
    MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    )
}

fn hl_section(mock: &MockHyperliquid) -> String {
    format!(
        "\n[exchanges.venues.hl]\nkind = \"hyperliquid\"\nnetwork = \"testnet\"\nbase_url = \"{}\"\nwallet_address = \"{}\"\nrequest_timeout = \"3s\"\n",
        mock.url(),
        PrivateKey::from_hex(KEY).unwrap().address()
    )
}

/// Public reads: no key in the environment.
fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .env_remove("HYPER_LIQUID_ETH_PRIVATE_KEY")
        .env_remove("HYPERLIQUID_PRIVATE_KEY")
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
fn market_funding_and_open_interest_on_hyperliquid() {
    let mock = hl_mock();
    // The recorded ETH context.
    mock.set_asset_ctx(
        "ETH",
        dec!(0.0000125),
        dec!(605822.2557999999),
        Some(dec!(2123.7)),
        Some(dec!(2124.6)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &hl_section(&mock));
    let cfg = config.to_str().unwrap();

    let out = cli(&[
        "market",
        "funding",
        "--config",
        cfg,
        "--venue",
        "hl",
        "--symbol",
        "eth",
        "--history",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = json(&out);
    assert_eq!(f["symbol"], "ETH");
    assert_eq!(f["current"]["funding_rate"], "0.0000125");
    assert_eq!(f["current"]["mark_price"], "2123.7");
    assert_eq!(f["current"]["index_price"], "2124.6");
    assert_eq!(f["current"]["funding_interval_hours"], 1);
    let history = f["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|h| h["rate"] == "0.0000125"));

    let out = cli(&[
        "market", "funding", "--config", cfg, "--venue", "hl", "--symbol", "ETH",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hl ETH: mark 2123.7 index 2124.6 funding 0.00125% per 1h (10.95%/year"),
        "{text}"
    );

    let out = cli(&[
        "market",
        "open-interest",
        "--config",
        cfg,
        "--venue",
        "hl",
        "--symbol",
        "ETH",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["current"]["open_interest"], "605822.2557999999");

    // No open-interest history on Hyperliquid: the venue's typed refusal, a usage error.
    let before = mock.requests().len();
    let out = cli(&[
        "market",
        "open-interest",
        "--config",
        cfg,
        "--venue",
        "hl",
        "--symbol",
        "ETH",
        "--period",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hl does not offer open-interest history"),
        "{err}"
    );
    // Only the current open interest was asked for.
    assert_eq!(mock.requests().len(), before + 1);
}
