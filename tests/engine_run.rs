//! The engine's main job end to end: decisions and paper orders on the default config,
//! metrics that pass promtool, a clean Ctrl-C, and a restart that continues the account.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn default_engine_trades_serves_metrics_stops_cleanly_and_resumes_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The shipped default trades BTC, ETH and SOL; more symbols make a directional
    // signal from the rules engine certain within the minute.
    let config = test_config(dir.path(), port, "");
    let config = {
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "symbols = [\"BTC\", \"ETH\", \"SOL\"]",
            "symbols = [\"BTC\", \"ETH\", \"SOL\", \"AVAX\", \"LINK\", \"DOGE\", \"ARB\", \"OP\"]",
        ) + EXTRA_SYMBOLS;
        std::fs::write(&config, text).unwrap();
        config
    };
    let mut engine = spawn_engine(&config, dir.path(), &[], &[]);

    let metrics = wait_for(
        Duration::from_secs(60),
        "decisions for every default symbol and a filled paper order",
        || {
            let (status, body) = http_get(port, "/metrics")?;
            let decided = ["BTC", "ETH", "SOL"].iter().all(|s| {
                metric_sum(
                    &body,
                    "orrery_agent_decisions_total",
                    &[&format!("symbol=\"{s}\"")],
                ) >= 1.0
            });
            let filled = metric_sum(
                &body,
                "orrery_exchange_orders_total",
                &["status=\"filled\""],
            );
            let runs = metric_sum(&body, "orrery_agent_runs_total", &["agent=\"trend\""]);
            (status == 200 && decided && filled >= 1.0 && runs >= 1.0).then_some(body)
        },
    );
    for required in [
        "orrery_actor_mailbox_depth",
        "orrery_actor_messages_total",
        "orrery_actor_restarts_total",
        "orrery_agent_runs_total",
        "orrery_agent_run_duration_seconds_bucket",
        "orrery_exchange_orders_total",
        "orrery_process_resident_memory_bytes",
    ] {
        assert!(
            metrics.contains(required),
            "metric {required} missing from the scrape"
        );
    }
    let (ok, report) = promtool_check(&metrics);
    assert!(
        ok,
        "promtool check metrics failed on a live scrape:\n{report}"
    );

    let (status, health) = http_get(port, "/health").unwrap();
    assert_eq!(status, 200, "{health}");

    signal(&engine, libc::SIGINT);
    let exit = wait_exit(&mut engine, Duration::from_secs(30));
    assert!(exit.success(), "Ctrl-C must exit 0, got {exit:?}");

    let status_json = |dir: &std::path::Path| {
        let out = run_cli(&["status", "--json", "--config", config.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = dir;
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let before = status_json(dir.path());
    assert_eq!(before["engine_running"], false);
    let orders_before = before["orders_in_ledger"].as_u64().unwrap();
    assert!(orders_before >= 1);
    let positions_before = before["venues"][0]["positions"].clone();

    // Same data dir again, with the trading agent held back: the paper account, its
    // positions and the ledger continue exactly.
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h")],
    );
    let live = wait_for(
        Duration::from_secs(30),
        "the restarted engine's status",
        || {
            let (status, body) = http_get(port, "/api/status")?;
            (status == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap())
        },
    );
    assert_eq!(live["engine_running"], true);
    assert_eq!(
        live["orders_in_ledger"].as_u64().unwrap(),
        orders_before,
        "the ledger continued"
    );
    let sizes = |v: &serde_json::Value| {
        let mut s: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["symbol"].as_str().unwrap().to_string(),
                    p["size"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        sizes(&live["venues"][0]["positions"]),
        sizes(&positions_before),
        "positions continued"
    );
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());

    // The restart said at `info` what it brought back: the ledger's size, the positions.
    let mut logs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("engine-")
        })
        .collect();
    logs.sort();
    let restored = std::fs::read_to_string(logs.last().expect("the restarted engine's log"))
        .unwrap()
        .lines()
        .find(|l| l.contains(" restored ") && l.contains("venue=paper"))
        .expect("a `restored` line at start")
        .to_string();
    assert!(
        restored.contains(&format!("ledger_orders_all_venues={orders_before}")),
        "{restored}"
    );
    for (symbol, size) in sizes(&positions_before) {
        assert!(restored.contains(&format!("{symbol} {size}")), "{restored}");
    }
}
