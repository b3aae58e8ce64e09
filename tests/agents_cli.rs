//! The agent runtime's controls through the real binary (issue #11.1): `orrery agents`
//! lists the trading and the risk agent; a pause given to the running engine survives
//! SIGKILL (the restarted agent skips its runs and journals nothing) until it is resumed;
//! run-now starts a run at once on an agent whose schedule would not run it for an hour;
//! an unknown name is a 404 and a non-zero exit naming the known agents; and on a stopped
//! engine pause and resume work on the data dir while run-now says the engine is not
//! running.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use orrery_actors::agents::DecisionJournal;
use orrery_actors::store::Store;

const WAIT: Duration = Duration::from_secs(90);

fn cli(cfg: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", cfg]);
    Command::new(BIN)
        .args(&all)
        .env_remove("ORRERY_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// `name`'s entry of an `orrery agents --json` / `GET /api/agents` report.
fn agent<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["agents"]
        .as_array()
        .expect("an agents array")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no agent {name} in {report}"))
}

/// The running engine's `GET /api/agents`.
fn live_agents(port: u16) -> Option<serde_json::Value> {
    let (status, body) = http_get(port, "/api/agents")?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn runs(port: u16, name: &str) -> Option<u64> {
    agent(&live_agents(port)?, name)["runs"].as_u64()
}

fn metric(port: u16, labels: &[&str]) -> Option<f64> {
    let (status, body) = http_get(port, "/metrics")?;
    (status == 200).then(|| metric_sum(&body, "orrery_agent_runs_total", labels))
}

fn wait_up(port: u16) {
    wait_for(WAIT, "the engine's control API", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Decisions of `agent` journaled in `[from, to]` (read from the stopped engine's data dir).
fn journaled(data: &std::path::Path, agent: &str, from: i64, to: i64) -> usize {
    let store = Store::open(data).unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    journal
        .recent(journal.len())
        .unwrap()
        .iter()
        .filter(|d| d.agent == agent && d.time_ms >= from && d.time_ms <= to)
        .count()
}

#[test]
fn agents_pause_across_sigkill_resume_run_now_and_refuse_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();

    // Stopped engine: pause and resume work on the data dir; run-now cannot run.
    let paused = json(&ok(cli(
        cfg,
        &[
            "agents",
            "pause",
            "trend",
            "--reason",
            "offline pause",
            "--json",
        ],
    )));
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["pause_reason"], "offline pause");
    let listed = json(&ok(cli(cfg, &["agents", "--json"])));
    assert_eq!(listed["engine_running"], false);
    assert_eq!(agent(&listed, "trend")["state"], "paused");
    assert_eq!(agent(&listed, "trend")["kind"], "trading");
    assert_eq!(agent(&listed, "risk")["kind"], "risk");
    let run_now = cli(cfg, &["agents", "run-now", "trend"]);
    assert_eq!(run_now.status.code(), Some(1), "{}", text(&run_now));
    assert!(text(&run_now).contains("not running"), "{}", text(&run_now));
    let unknown = cli(cfg, &["agents", "pause", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(text(&unknown).contains("risk, trend"), "{}", text(&unknown));
    ok(cli(cfg, &["agents", "resume", "trend"]));
    // Pausing the risk agent is allowed, and shown prominently.
    let paused = ok(cli(
        cfg,
        &["agents", "pause", "risk", "--reason", "checking"],
    ));
    assert!(text(&paused).contains("WARNING"), "{}", text(&paused));
    let table = ok(cli(cfg, &["agents"]));
    assert!(
        text(&table).contains("WARNING: the risk agent is paused"),
        "{}",
        text(&table)
    );
    let status = ok(cli(cfg, &["status"]));
    assert!(
        text(&status).contains("PAUSED (checking)"),
        "{}",
        text(&status)
    );
    assert!(
        text(&status).contains("WARNING: the risk agent is paused"),
        "{}",
        text(&status)
    );
    ok(cli(cfg, &["agents", "resume", "risk"]));

    // Running: both agents listed; the trading agent decides.
    let engine = spawn_engine(&config, dir.path(), &[], &[]);
    wait_up(port);
    let listed = json(&ok(cli(cfg, &["agents", "--json"])));
    assert_eq!(listed["engine_running"], true, "{listed}");
    assert_eq!(agent(&listed, "trend")["kind"], "trading");
    assert_eq!(agent(&listed, "risk")["kind"], "risk");
    assert_eq!(agent(&listed, "trend")["paused"], false);
    wait_for(WAIT, "a run of the trading agent", || {
        runs(port, "trend").filter(|r| *r >= 1)
    });

    // Unknown name: 404 in the API's envelope naming the known agents; CLI exits 1.
    let (status, body) = http_post_json(port, "/api/agents/nobody/pause", "").unwrap();
    assert_eq!(status, 404, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "unknown_agent", "{body}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("trend"),
        "{body}"
    );
    let unknown = cli(cfg, &["agents", "run-now", "nobody", "--json"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert_eq!(json(&unknown)["error"]["code"], "unknown_agent");

    // A body that is not the optional `{"reason"}`: 400, and nothing changed.
    let (status, body) = http_post_json(port, "/api/agents/trend/pause", "{nope").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_json"), "{body}");
    assert_eq!(agent(&live_agents(port).unwrap(), "trend")["paused"], false);

    // Pause through the running engine, then SIGKILL it.
    let paused = json(&ok(cli(
        cfg,
        &[
            "agents",
            "pause",
            "trend",
            "--reason",
            "sigkill test",
            "--json",
        ],
    )));
    assert_eq!(paused["state"], "paused", "{paused}");
    let mut engine = engine;
    signal(&engine, libc::SIGKILL);
    engine.wait().unwrap();

    // Restarted: still paused, its ticks skipped, no run and no decision.
    let restarted_ms = now_ms();
    let engine = spawn_engine(&config, dir.path(), &[], &[]);
    wait_up(port);
    let listed = json(&ok(cli(cfg, &["agents", "--json"])));
    let trend = agent(&listed, "trend");
    assert_eq!(
        (&trend["state"], &trend["pause_reason"]),
        (
            &serde_json::json!("paused"),
            &serde_json::json!("sigkill test")
        ),
        "{listed}"
    );
    let skipped = ["agent=\"trend\"", "outcome=\"skipped_paused\""];
    let runs_paused = runs(port, "trend").unwrap();
    wait_for(WAIT, "three skipped ticks of the paused agent", || {
        metric(port, &skipped).filter(|n| *n >= 3.0)
    });
    assert_eq!(runs(port, "trend"), Some(runs_paused), "a paused agent ran");
    let resumed_ms = now_ms();

    // Resume over the API: runs and decisions resume.
    let (status, body) =
        http_post_json(port, "/api/agents/trend/resume", r#"{"reason":"go on"}"#).unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for(WAIT, "a run after resume", || {
        runs(port, "trend").filter(|r| *r > runs_paused)
    });
    wait_settled_then_stop(engine, port, WAIT, WAIT);
    let data = data_dir(dir.path());
    assert_eq!(
        journaled(&data, "trend", restarted_ms, resumed_ms),
        0,
        "the paused agent journaled decisions"
    );
    assert!(
        journaled(&data, "trend", resumed_ms, now_ms()) > 0,
        "no decision after resume"
    );

    // Run-now on an agent whose schedule would not run it for an hour.
    let hour = [
        ("ORRERY__AGENTS__TRADING__0__INTERVAL", "1h"),
        ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
    ];
    let engine = spawn_engine(&config, dir.path(), &[], &hour);
    wait_up(port);
    let before = runs(port, "trend").unwrap();
    let started = json(&ok(cli(cfg, &["agents", "run-now", "trend", "--json"])));
    assert_eq!(started["status"], "started", "{started}");
    wait_for(WAIT, "the run-now run", || {
        runs(port, "trend").filter(|r| *r == before + 1)
    });
    let listed = live_agents(port).unwrap();
    assert_eq!(
        agent(&listed, "trend")["schedule"]["interval"],
        "1h",
        "{listed}"
    );
    wait_settled_then_stop(engine, port, WAIT, WAIT);
}
