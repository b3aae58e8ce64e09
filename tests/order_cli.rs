//! `orrery order` and `orrery status` with the engine stopped (the CLI opens the data dir
//! itself) and running (the CLI asks the engine), through the same gateway, ledger and
//! risk gate.

mod common;

use std::time::Duration;

use common::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn manual_orders_go_through_the_ledger_and_risk_gate_offline_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();
    let order = |extra: &[&str]| {
        let mut args = vec![
            "order", "--config", cfg, "--venue", "paper", "--symbol", "BTC", "--json",
        ];
        args.extend_from_slice(extra);
        run_cli(&args)
    };

    // Engine stopped: the CLI boots the gateway on the data dir.
    let out = order(&["--side", "buy", "--usd", "500"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filled = json(&out);
    assert_eq!(filled["status"], "filled");
    assert_eq!(filled["side"], "buy");

    // Over the position limit (25% of 10000 USD at 1x): refused, recorded, not sent.
    let out = order(&["--side", "buy", "--usd", "5000"]);
    assert_eq!(out.status.code(), Some(1));
    let refused = json(&out);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("refused by the risk gate"),
        "{refused}"
    );

    // Unknown venue: a clear error naming the configured ones.
    let out = run_cli(&[
        "order", "--config", cfg, "--venue", "moon", "--symbol", "BTC", "--side", "buy", "--usd",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("configured venues: paper"));

    let status = json(&run_cli(&["status", "--config", cfg, "--json"]));
    assert_eq!(status["engine_running"], false);
    assert_eq!(status["orders_in_ledger"], 2);
    let recent = status["recent_orders"].as_array().unwrap();
    assert_eq!(recent[0]["status"], "rejected");
    assert!(recent[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("risk gate:"));
    assert_eq!(recent[1]["client_id"], filled["client_id"]);
    let btc = &status["venues"][0]["positions"][0];
    assert_eq!(btc["symbol"], "BTC");
    assert_eq!(btc["size"], filled["filled_size"]);

    // Engine running: the same commands go through its control API.
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h")],
    );
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let out = order(&["--side", "sell", "--usd", "200", "--reduce-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reduced = json(&out);
    assert_eq!(
        (reduced["status"].as_str(), reduced["side"].as_str()),
        (Some("filled"), Some("sell"))
    );
    let live = json(&run_cli(&["status", "--config", cfg, "--json"]));
    assert_eq!(live["engine_running"], true);
    assert_eq!(live["orders_in_ledger"], 3);
    let human = run_cli(&["status", "--config", cfg]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("engine: running"));
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}

/// Orders in the data dir's ledger, read after the CLI or engine has exited.
fn ledger_len(config: &std::path::Path) -> usize {
    let config = orrery::config::Config::load(Some(config), Vec::new()).unwrap();
    let store = orrery_actors::store::Store::open(&config.engine.data_dir).unwrap();
    orrery_actors::exchanges::ledger::OrderLedger::open(
        &store,
        orrery_actors::clock::system_clock(),
    )
    .unwrap()
    .len()
}

#[test]
fn invalid_orders_are_refused_with_their_cause_and_nothing_reaches_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();
    let order = |extra: &[&str]| {
        let mut args = vec![
            "order", "--config", cfg, "--venue", "paper", "--symbol", "BTC", "--side", "buy",
        ];
        args.extend_from_slice(extra);
        run_cli(&args)
    };
    let cases: [(&[&str], &str); 4] = [
        (&["--usd", "0"], "the amount is zero"),
        (&["--usd=-500"], "the amount -500 USD is negative"),
        (
            &["--usd", "500", "--limit", "0"],
            "the limit price 0 is not positive",
        ),
        (
            &["--usd", "500", "--limit=-5"],
            "the limit price -5 is not positive",
        ),
    ];
    // Engine stopped: the CLI opens the data dir itself.
    for (args, cause) in cases {
        let out = order(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains(cause), "{args:?}: {text}");
        assert!(
            text.contains("nothing was recorded or sent"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("Usd("), "{args:?}: {text}");
        assert!(!text.contains("rounds to zero"), "{args:?}: {text}");
    }
    assert_eq!(
        ledger_len(&config),
        0,
        "refused orders are not in the ledger"
    );

    // Engine running: the control API answers 400 with the same cause.
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h")],
    );
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let (status, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"paper","symbol":"BTC","side":"buy","amount":{"usd":"-500"},"pricing":"market","reduce_only":false,"origin":"test"}"#,
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the amount -500 USD is negative"), "{body}");
    let out = order(&["--usd", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the amount is zero")
            || String::from_utf8_lossy(&out.stdout).contains("the amount is zero")
    );
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    assert_eq!(
        ledger_len(&config),
        0,
        "nothing written by the engine either"
    );
}
