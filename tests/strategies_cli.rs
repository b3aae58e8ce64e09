//! `orrery research run` and `orrery strategies list|show|promote` through the real binary:
//! on a stopped engine (the models booted in-process, the library read in place) and
//! against a running engine (its control API), with an OpenAI-compatible loopback model
//! that first writes a broken spec and then, shown the validator's problems, a valid one;
//! and an `[[agents.rbi]]` agent that picks research up from its inbox.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use orrery_actors::testkit::{MockServer, Reply};
use parking_lot::Mutex;

const SMA_CROSS: &str = r#"{"name": "goog_sma_cross",
  "indicators": {"fast": {"sma": {"period": 10}}, "slow": {"sma": {"period": 20}}},
  "long": {"entry": {"crosses_above": ["fast", "slow"]}, "exit": {"crosses_below": ["fast", "slow"]}},
  "short": {"entry": {"crosses_below": ["fast", "slow"]}, "exit": {"crosses_above": ["fast", "slow"]}}
}"#;

const BROKEN: &str = r#"{"name": "goog_sma_cross",
  "indicators": {"fast": {"sma": {"period": 0}}, "slow": {"sma": {"period": 20}}},
  "long": {"entry": {"crosses_above": ["fast", "slowest"]}}
}"#;

/// A model that first answers `BROKEN`, then `SMA_CROSS` forever.
fn repairing_model() -> MockServer {
    let served = Arc::new(Mutex::new(0usize));
    MockServer::start(move |_| {
        let mut n = served.lock();
        *n += 1;
        let answer = if *n == 1 {
            format!("Here you go:\n```json\n{BROKEN}\n```")
        } else {
            SMA_CROSS.to_string()
        };
        Reply::openai_chat_completion(&answer)
    })
}

/// A model that answers by the research it is given: `BROKEN` for the MACD idea (the
/// inbox file), `SMA_CROSS` for anything else. Unlike [`repairing_model`], a retried or
/// repeated request gets the same answer, so which attempt is rejected does not depend on
/// how many requests reached the mock first (a retry under load once made the inbox
/// attempt pass).
fn answering_by_research() -> MockServer {
    MockServer::start(|req| {
        let body = String::from_utf8_lossy(&req.body);
        let answer = if body.contains("MACD momentum idea") {
            format!("Here you go:\n```json\n{BROKEN}\n```")
        } else {
            SMA_CROSS.to_string()
        };
        Reply::openai_chat_completion(&answer)
    })
}

fn goog() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("actors/tests/data/GOOG.csv")
        .display()
        .to_string()
}

/// A live Binance venue (never contacted) to refuse promotions to; only where no engine
/// runs (starting one would need its keys).
const LIVE_VENUE: &str = r#"
[exchanges.venues.binance]
kind = "binance"
base_url = "http://127.0.0.1:1"
symbols = ["BTC"]
"#;

/// `[models.writer]` at `llm`, and `[research]` on GOOG.csv with thresholds SmaCross passes.
fn extra(llm: &MockServer, more: &str) -> String {
    format!(
        r#"
[models.writer]
[[models.writer.deployments]]
id = "gpt"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
timeout = "10s"

[research]
model = "writer"
fix_rounds = 2
data = [{:?}]
model_timeout = "10s"

[research.thresholds]
beat_buy_hold = false
min_sharpe = 0.0
max_drawdown_pct = 100.0
min_trades = 1
oos_min_return_pct = -100.0
oos_sharpe_fraction = 0.0
{more}"#,
        llm.url(),
        goog()
    )
}

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test-rbi-cli");

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .env(KEY.0, KEY.1)
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn research_run_repairs_the_spec_and_the_library_lists_shows_and_promotes_it() {
    let llm = repairing_model();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &(extra(&llm, "") + LIVE_VENUE));
    let cfg = config.to_str().unwrap();
    let idea = dir.path().join("idea.md");
    std::fs::write(&idea, "# SMA crossover\nBuy when the 10-day SMA crosses above the 20-day SMA; sell on the reverse.\n").unwrap();

    // Stopped engine: the models are booted in-process.
    let o = cli(&[
        "research",
        "run",
        "--config",
        cfg,
        "--source",
        idea.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report = json(&o);
    assert_eq!(report["verdict"], "passed", "{report:#}");
    assert_eq!(report["fix_rounds"], 1);
    assert_eq!(report["record"]["status"], "candidate");
    // The repair request carried the validator's problems, with their paths.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let fix = requests[1].body_str().to_string();
    assert!(fix.contains("/indicators/fast/sma/period"), "{fix}");
    assert!(fix.contains("slowest"), "{fix}");
    assert!(requests[0].body_str().contains("10-day SMA crosses above"));

    let o = cli(&["strategies", "list", "--config", cfg, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let list = json(&o);
    let s = &list["strategies"][0];
    assert_eq!(s["name"], "goog_sma_cross", "{list:#}");
    assert_eq!(s["status"], "candidate");
    assert_eq!(s["rounds"], 2);
    assert!(s["num_trades"].as_u64().unwrap() > 10, "{s}");
    assert!(s["source"].as_str().unwrap().ends_with("idea.md"), "{s}");

    let o = cli(&["strategies", "list", "--config", cfg]);
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("goog_sma_cross") && table.contains("candidate"),
        "{table}"
    );

    let o = cli(&["strategies", "show", "goog_sma_cross", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        shown.contains("round 0: 2 problem(s)") || shown.contains("round 0: "),
        "{shown}"
    );
    assert!(shown.contains("/indicators/fast/sma/period"), "{shown}");
    assert!(shown.contains("round 1: valid"), "{shown}");
    assert!(
        shown.contains("model:    writer (provider openai, deployment gpt)"),
        "{shown}"
    );
    assert!(
        shown.contains("backtest ") && shown.contains("out-of-sample"),
        "{shown}"
    );
    assert!(shown.contains("\"crosses_above\""), "the spec: {shown}");
    let o = cli(&[
        "strategies",
        "show",
        "goog_sma_cross",
        "--config",
        cfg,
        "--json",
    ]);
    let record = json(&o);
    assert_eq!(record["exchanges"].as_array().unwrap().len(), 2);

    // A live venue needs --live.
    let promote = |extra: &[&str]| {
        let mut args = vec![
            "strategies",
            "promote",
            "goog_sma_cross",
            "--config",
            cfg,
            "--symbol",
            "BTC",
            "--timeframe",
            "1h",
            "--max-position-usd",
            "1000",
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let o = promote(&["--venue", "binance"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("trades real money") && text(&o).contains("--live"),
        "{}",
        text(&o)
    );
    let o = promote(&["--venue", "nowhere"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no venue `nowhere`"), "{}", text(&o));

    let o = promote(&["--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let p = json(&o);
    assert_eq!(p["venue"], "paper");
    assert_eq!(p["starts"], "next_engine_start");
    assert_eq!(p["agent"]["name"], "goog_sma_cross-paper");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("strategy promoted"),
        "{}",
        text(&o)
    );
    // The same agent name twice is refused.
    let o = promote(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is taken"), "{}", text(&o));
    let o = promote(&["--venue", "binance", "--live", "--agent", "sma-live"]);
    assert!(o.status.success(), "{}", text(&o));

    let o = cli(&[
        "strategies",
        "list",
        "--config",
        cfg,
        "--status",
        "promoted",
        "--json",
    ]);
    let list = json(&o);
    assert_eq!(list["strategies"][0]["promotions"], 2, "{list:#}");
    let o = cli(&[
        "strategies",
        "show",
        "goog_sma_cross",
        "--config",
        cfg,
        "--json",
    ]);
    let record = json(&o);
    assert_eq!(record["promotions"][0]["venue"], "paper");
    assert_eq!(record["promotions"][1]["venue"], "binance");
    assert_eq!(record["promotions"][1]["agent"]["name"], "sma-live");

    // A one-shot engine (research run on a stopped engine) starts no promoted agent: it
    // must not trade while a command runs.
    let o = cli(&[
        "research",
        "run",
        "--config",
        cfg,
        "--source",
        idea.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("strategy goog_sma_cross-v2: passed"),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("promoted strategy agent"),
        "{}",
        text(&o)
    );

    let o = cli(&["strategies", "show", "nope", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no strategy named"), "{}", text(&o));
    // No key in the data dir.
    assert!(!any_file_contains(&data_dir(dir.path()), &[KEY.1]));
}

#[test]
fn a_running_engine_serves_research_runs_and_promotions_and_its_rbi_agent_reads_its_inbox() {
    let llm = answering_by_research();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("macd.md"), "MACD momentum idea.").unwrap();
    std::fs::write(inbox.join("ignored.pdf"), "not research").unwrap();
    let port = free_port();
    let more = format!(
        r#"
[[agents.rbi]]
name = "research-inbox"
inbox = {:?}
interval = "1h"
initial_delay = "200ms"
model = "writer"
fix_rounds = 0
data = [{:?}]
"#,
        inbox.display().to_string(),
        goog()
    );
    let config = test_config(dir.path(), port, &extra(&llm, &more));
    let cfg = config.to_str().unwrap();
    let mut engine = spawn_engine(&config, dir.path(), &[], &[KEY]);

    // The agent's one attempt (fix_rounds 0): the answer to the MACD idea is the broken spec, so the
    // attempt is stored rejected, once.
    let started = std::time::Instant::now();
    let list = loop {
        let found = http_get(port, "/api/strategies").and_then(|(status, body)| {
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && !v["strategies"].as_array()?.is_empty()).then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no inbox attempt within 60s; engine log:\n{}",
            engine_logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let s = &list["strategies"][0];
    assert_eq!(s["status"], "rejected", "{list:#}");
    assert!(s["source"].as_str().unwrap().ends_with("macd.md"), "{s}");
    assert!(
        s["reasons"][0]
            .as_str()
            .unwrap()
            .contains("after 0 fix round(s)"),
        "{s}"
    );
    let (_, agents) = http_get(port, "/api/agents").unwrap();
    assert!(
        agents.contains("\"research-inbox\"") && agents.contains("\"rbi\""),
        "{agents}"
    );

    // `research run` goes through the running engine's API.
    let idea = dir.path().join("idea.txt");
    std::fs::write(&idea, "SMA crossover on daily bars.").unwrap();
    let o = cli(&[
        "research",
        "run",
        "--config",
        cfg,
        "--source",
        idea.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report = json(&o);
    assert_eq!(report["verdict"], "passed", "{report:#}");
    assert_eq!(
        report["fix_rounds"], 0,
        "the SMA idea gets a valid spec at once"
    );
    let name = report["record"]["name"].as_str().unwrap().to_string();

    // A rejected attempt is not promoted; the candidate is, through the API.
    let rejected = s["name"].as_str().unwrap();
    let o = cli(&[
        "strategies",
        "promote",
        rejected,
        "--config",
        cfg,
        "--symbol",
        "BTC",
        "--timeframe",
        "1h",
        "--max-position-usd",
        "500",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("rejected"), "{}", text(&o));
    let o = cli(&[
        "strategies",
        "promote",
        &name,
        "--config",
        cfg,
        "--symbol",
        "BTC",
        "--timeframe",
        "1h",
        "--max-position-usd",
        "500",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The running engine starts the promoted strategy agent at once.
    assert_eq!(json(&o)["starts"], "now", "{}", text(&o));
    let promoted = format!("{name}-paper");
    let (_, agents) = http_get(port, "/api/agents").unwrap();
    assert!(agents.contains(&format!("\"{promoted}\"")), "{agents}");
    let (_, tree) = http_get(port, "/api/tree").unwrap();
    assert!(
        tree.contains(&format!("engine/agents/strategy-{promoted}")),
        "{tree}"
    );
    let o = cli(&[
        "strategies",
        "list",
        "--config",
        cfg,
        "--status",
        "promoted",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json(&o)["strategies"][0]["name"], name.as_str());
    let (status, body) = http_get(port, "/api/strategies?status=bogus").unwrap();
    assert_eq!(status, 400, "{body}");

    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_rbi_attempts_total",
            &["verdict=\"passed\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_rbi_attempts_total",
            &["verdict=\"invalid_spec\""]
        ),
        1.0
    );
    let (ok, out) = promtool_check(&metrics);
    assert!(ok, "{out}");

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    let log = engine_logs(dir.path());
    let attempt_line = log
        .lines()
        .find(|l| l.contains("rbi attempt stored") && l.contains("invalid_spec"))
        .unwrap_or_else(|| panic!("no attempt line: {log}"));
    assert!(attempt_line.contains("rounds=0"), "{attempt_line}");
    assert!(log.contains("strategy promoted"), "{log}");
    assert!(log.contains("promoted strategy agent started"), "{log}");
}

/// With no key and no network, the shipped default model (the local rules engine) writes
/// the spec of an idea it recognises, so the pipeline runs offline end to end: the
/// backtester judges the strategy, not a missing spec.
#[test]
fn research_run_works_offline_with_the_local_rules_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let cfg = config.to_str().unwrap();
    let idea = dir.path().join("idea.md");
    // One `research run` on `research`, stopped engine, the GOOG data set.
    let research = |research: &str| {
        std::fs::write(&idea, research).unwrap();
        let o = cli(&[
            "research",
            "run",
            "--config",
            cfg,
            "--source",
            idea.to_str().unwrap(),
            "--data",
            &goog(),
            "--json",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        json(&o)
    };
    let report = research("Buy the 10-day SMA crossing above the 40-day SMA, sell the reverse.\n");
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict == "passed" || verdict == "failed_thresholds",
        "{report:#}"
    );
    assert_eq!(report["fix_rounds"], 0, "{report:#}");
    let spec = &report["record"]["spec"];
    assert_eq!(
        spec["indicators"]["fast"]["sma"]["period"], 10,
        "{report:#}"
    );
    assert_eq!(
        spec["indicators"]["slow"]["sma"]["period"], 40,
        "{report:#}"
    );
    assert_eq!(report["record"]["model"]["provider"], "local", "{report:#}");

    // An idea it does not recognise is an attempt without a spec, said plainly.
    let report = research("Buy when the CEO tweets.\n");
    assert_ne!(report["verdict"], "passed", "{report:#}");
    assert!(
        report.to_string().contains("recognises by keyword"),
        "{report:#}"
    );
}
