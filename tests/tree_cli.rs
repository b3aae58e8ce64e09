//! `orrery tree [--json]` and `GET /api/tree` through the real binary (issue #10.5): the
//! live tree of a running engine, and, once it has stopped, the tree the config would
//! build, marked as not running, with the restart counts persisted in the data dir.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn actor<'a>(tree: &'a Value, path: &str) -> &'a Value {
    tree["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .unwrap_or_else(|| panic!("no actor {path} in {tree:#}"))
}

#[test]
fn tree_shows_the_live_tree_then_the_planned_tree_when_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    // The tree of one `local` pool and a single-model agent.
    single_model_default(&config);
    let cfg = config.to_str().unwrap();
    let mut engine = spawn_engine(&config, dir.path(), &[], &[]);
    wait_for(Duration::from_secs(60), "the engine's health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });

    let (live, paths) = tree_json(cfg);
    assert_eq!(live["engine_running"], true);
    assert_eq!(
        paths,
        [
            "engine",
            "engine/telemetry",
            "engine/models",
            "engine/models/pool-local",
            "engine/models/router",
            "engine/exchanges",
            "engine/exchanges/connector-paper",
            "engine/exchanges/gateway",
            "engine/signals",
            "engine/agents",
            "engine/agents/risk",
            "engine/agents/trading-trend",
        ]
    );
    for sup in [
        "engine",
        "engine/models",
        "engine/exchanges",
        "engine/agents",
    ] {
        let a = actor(&live, sup);
        assert_eq!(a["kind"], "supervisor", "{a}");
        assert_eq!(a["strategy"], "one_for_one", "{a}");
        assert_eq!(a["state"], "running", "{a}");
    }
    let gateway = actor(&live, "engine/exchanges/gateway");
    assert_eq!(gateway["kind"], "worker");
    assert_eq!(gateway["restart"], "permanent");
    assert_eq!(gateway["state"], "running");
    assert_eq!(gateway["restarts"], 0);
    assert_eq!(gateway["mailbox_capacity"], 256);
    assert!(gateway["mailbox_depth"].is_u64(), "{gateway}");

    // The control API answers the same document.
    let (status, body) = http_get(port, "/api/tree").unwrap();
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["engine_running"], true);
    assert_eq!(actor(&api, "engine/models/router")["state"], "running");

    let text = run_cli(&["tree", "--config", cfg]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("live supervisor tree of the engine on"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("gateway")
            && l.contains("permanent")
            && l.contains("running")
            && l.contains("restarts=0")
            && l.contains("/256")),
        "{text}"
    );

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());

    let (planned, planned_paths) = tree_json(cfg);
    assert_eq!(planned["engine_running"], false);
    assert_eq!(
        planned_paths, paths,
        "the planned tree is the tree that ran"
    );
    assert!(planned["actors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["state"] == "not_running" && a["mailbox_depth"].is_null()));
    let text = run_cli(&["tree", "--config", cfg]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("the engine is not running;"), "{text}");
}

/// `orrery tree --json` for `cfg` (asserting success), and every actor's path in order.
fn tree_json(cfg: &str) -> (Value, Vec<String>) {
    let out = run_cli(&["tree", "--config", cfg, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths = tree["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect();
    (tree, paths)
}
