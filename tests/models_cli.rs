//! `orrery models` and `orrery ask` end to end, with the shipped default config (the offline
//! `local` rules engine): engine stopped (the CLI boots the models in-process and reads
//! usage from the data dir) and running (the CLI asks the engine's control API).

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

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn decimal(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

#[test]
fn ask_and_models_offline_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();
    // Prices through the environment, so the cost accounting has something to count.
    let priced = [
        (
            "ORRERY__MODELS__DEFAULT__DEPLOYMENTS__0__PRICE_PROMPT_PER_MTOK",
            "3",
        ),
        (
            "ORRERY__MODELS__DEFAULT__DEPLOYMENTS__0__PRICE_COMPLETION_PER_MTOK",
            "15",
        ),
    ];
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env_remove("ORRERY_CONFIG")
            .envs(priced)
            .output()
            .unwrap()
    };

    // Never run: config only, no usage, "not running".
    let report = json(&ok(cli(&["models", "--config", cfg, "--json"])));
    assert_eq!(report["engine_running"], false);
    let d = &report["deployments"][0];
    assert_eq!(
        (
            d["model"].as_str(),
            d["deployment"].as_str(),
            d["provider"].as_str(),
            d["provider_model"].as_str(),
            d["state"].as_str()
        ),
        (
            Some("default"),
            Some("local"),
            Some("local"),
            Some("rules-v1"),
            Some("not running")
        )
    );
    assert_eq!(d["limits"]["max_concurrent"], 8);
    assert_eq!(d["usage"]["requests"], 0);

    // Engine stopped: `ask` boots the models in-process.
    let answer = json(&ok(cli(&[
        "ask",
        "--config",
        cfg,
        "--json",
        "what should I buy?",
    ])));
    assert_eq!(answer["deployment"], "local");
    assert_eq!(answer["cached"], false);
    assert!(answer["text"]
        .as_str()
        .unwrap()
        .contains("local rules engine"));
    let prompt_tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(prompt_tokens, 5, "18 chars at 4 a token");
    let human = ok(cli(&["ask", "--config", cfg, "--stream", "hello there"]));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("local rules engine") && text.contains("served by local (local/rules-v1)"),
        "{text}"
    );
    assert!(text.contains("tokens 3 prompt"), "{text}");

    // Unknown model: a clear error, exit 1.
    let bad = cli(&["ask", "--config", cfg, "--model", "gpt-9", "hi"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("configured: default"));

    // Usage was persisted: two answers, with their cost.
    let report = json(&ok(cli(&["models", "--config", cfg, "--json"])));
    let usage = &report["deployments"][0]["usage"];
    assert_eq!(usage["requests"], 2);
    let cost = decimal(&usage["cost_usd"]);
    assert!(cost > 0.0 && cost < 0.01, "{usage}");
    let human = String::from_utf8_lossy(&ok(cli(&["models", "--config", cfg])).stdout).to_string();
    assert!(
        human.contains("not running") && human.contains("usage: 2 requests"),
        "{human}"
    );
    let status = json(&ok(cli(&["status", "--config", cfg, "--json"])));
    assert_eq!(status["models"][0]["deployment"], "local");
    assert_eq!(status["models"][0]["requests"], 2);
    let human = String::from_utf8_lossy(&ok(cli(&["status", "--config", cfg])).stdout).to_string();
    assert!(
        human.contains("\nmodels:\n  local") && human.contains("2 requests"),
        "{human}"
    );

    // Engine running: the same commands through its control API.
    let mut env: Vec<(&str, &str)> = priced.to_vec();
    env.push(("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"));
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let answer = json(&ok(cli(&["ask", "--config", cfg, "--json", "and now?"])));
    assert_eq!(answer["deployment"], "local");
    let report = json(&ok(cli(&["models", "--config", cfg, "--json"])));
    assert_eq!(report["engine_running"], true);
    let d = &report["deployments"][0];
    assert_eq!(d["state"], "ok");
    assert_eq!(d["health"]["in_flight"], 0);
    assert!(d["health"]["ewma_latency_ms"].is_u64(), "{d}");
    assert_eq!(d["usage"]["requests"], 3);
    let human = String::from_utf8_lossy(&ok(cli(&["models", "--config", cfg])).stdout).to_string();
    assert!(
        human.contains("engine: running") && human.contains("state: ok"),
        "{human}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let cost_gauge = metric_sum(&metrics, "orrery_model_cost_usd", &["deployment=\"local\""]);
    assert!(
        (cost_gauge - cost).abs() < 1e-12 || cost_gauge > cost,
        "{cost_gauge} vs {cost}"
    );
    assert!(metrics.contains("# HELP orrery_model_cost_usd"));

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    let status = json(&ok(cli(&["status", "--config", cfg, "--json"])));
    assert_eq!(status["models"][0]["requests"], 3);
}
