//! PnL as the operator sees it, end to end through the real binary (issue #9 items 4, 7,
//! 12): the risk window's baseline is the account value before the first order even when
//! the first trades land before the risk agent's first full interval, per-position
//! accounting from fills is in `status` (text and JSON) and in the metrics from start, and
//! each decision is one `info` line in the log.

mod common;

use std::time::Duration;

use common::*;

fn dec(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        serde_json::Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a decimal: {other}"),
    }
}

#[test]
fn pnl_is_measured_from_before_the_first_order_and_positions_are_accounted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    // More symbols make a directional signal from the rules engine (and a fill) certain.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "symbols = [\"BTC\", \"ETH\", \"SOL\"]",
        "symbols = [\"BTC\", \"ETH\", \"SOL\", \"AVAX\", \"LINK\", \"DOGE\", \"ARB\", \"OP\"]",
    ) + EXTRA_SYMBOLS;
    std::fs::write(&config, text).unwrap();
    // The risk agent's periodic check is far away (the field case: the first trades landed
    // before its first check). Reconciliation keeps its 30 s: status must show fills the
    // ledger has not recorded yet.
    let env = [("ORRERY__RISK__CHECK_INTERVAL", "1h")];
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);

    // Every configured symbol's position series exist from start, before any fill.
    let scrape = wait_for(Duration::from_secs(30), "the metrics endpoint", || {
        let (status, body) = http_get(port, "/metrics")?;
        (status == 200).then_some(body)
    });
    for name in [
        "orrery_position_size",
        "orrery_position_unrealized_pnl_usd",
        "orrery_position_exposure_usd",
        "orrery_position_realized_pnl_usd",
        "orrery_position_fees_paid_usd",
    ] {
        for symbol in ["BTC", "ETH", "SOL"] {
            let series = format!("{name}{{symbol=\"{symbol}\",venue=\"paper\"}}");
            let alt = format!("{name}{{venue=\"paper\",symbol=\"{symbol}\"}}");
            assert!(
                scrape.contains(&series) || scrape.contains(&alt),
                "{series} missing from the scrape"
            );
        }
        assert!(
            scrape.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }

    // Trades happen; their fills (and fees) reach the ledger and the status report.
    let live = wait_for(
        Duration::from_secs(60),
        "a filled order whose fee shows in /api/status",
        || {
            let (status, body) = http_get(port, "/api/status")?;
            if status != 200 {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (dec(&v["venues"][0]["fees_usd"]) > 0.0).then_some(v)
        },
    );
    let venue = &live["venues"][0];
    assert_eq!(
        dec(&venue["baseline_usd"]),
        10000.0,
        "the window starts at the fresh account's 10 000, before the first order: {venue}"
    );
    let value = dec(&venue["account"]["account_value"]);
    assert!(
        (dec(&venue["pnl_usd"]) - (value - 10000.0)).abs() < 1e-9,
        "{venue}"
    );
    let rows = venue["position_pnl"].as_array().unwrap();
    for symbol in ["BTC", "ETH", "SOL"] {
        assert!(
            rows.iter().any(|r| r["symbol"] == symbol),
            "{symbol} row missing: {venue}"
        );
    }
    let fees: f64 = rows.iter().map(|r| dec(&r["fees_usd"])).sum();
    // JSON shows fees at 6 decimals (src/json.rs), so each row may differ by half a unit.
    let tolerance = 0.5e-6 * (rows.len() as f64 + 1.0);
    assert!((fees - dec(&venue["fees_usd"])).abs() <= tolerance);

    signal(&engine, libc::SIGINT);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());

    // The stopped engine's status reads the same baseline and shows the accounting.
    let out = run_cli(&["status", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("from fills: realized"), "{text}");
    assert!(text.contains("PnL since baseline"), "{text}");
    let out = run_cli(&["status", "--json", "--config", config.to_str().unwrap()]);
    let stopped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dec(&stopped["venues"][0]["baseline_usd"]), 10000.0);
    assert!(
        dec(&stopped["venues"][0]["fees_usd"]) >= dec(&venue["fees_usd"]),
        "the stopped engine's status still has every fill: {}",
        stopped["venues"][0]
    );

    // One info line per decision, with what the operator needs to read it.
    let log: String = plain_engine_logs(dir.path());
    let line = log
        .lines()
        .find(|l| l.contains("INFO") && l.contains(" decision") && l.contains("agent=trend"))
        .unwrap_or_else(|| panic!("no decision line in the log:\n{log}"));
    for field in [
        "symbol=",
        "verdict=",
        "confidence=",
        "model=",
        "latency_ms=",
        "outcome=",
    ] {
        assert!(line.contains(field), "{field} missing from `{line}`");
    }
}
