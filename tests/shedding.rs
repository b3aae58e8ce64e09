//! Resource shedding end to end through the real binary, with the RSS reading injected
//! through `ORRERY_RESOURCE_READING_FILE`: warn, shed (low-priority work refused with 503
//! `shedding`), critical (reducing-only, recorded like any mode change), hysteresis, and
//! the recovery by itself; visible in `/api/status`, `orrery status` and the metrics.
//! A bad `[resources]` section is refused before anything starts.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// Sets the reading the engine's resource monitor sees (CPU pinned at 1 %).
fn inject(file: &Path, rss_mib: u64) {
    // Written whole then renamed, so the monitor never reads half a file.
    let tmp = file.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(r#"{{"rss_bytes": {}, "cpu_percent": 1}}"#, rss_mib * MIB),
    )
    .unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn status(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/api/status")?;
    (code == 200).then(|| serde_json::from_str(&body).unwrap())
}

/// Waits until the status's resource level is `level` with the RSS reading `rss_mib`.
fn wait_level(port: u16, level: &str, rss_mib: u64) -> Value {
    wait_for(
        Duration::from_secs(60),
        &format!("resource level {level} at {rss_mib} MiB"),
        || {
            let s = status(port)?;
            let r = &s["resources"];
            (r["level"] == level && r["rss_bytes"].as_u64() == Some(rss_mib * MIB)).then_some(s)
        },
    )
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").unwrap();
    metric_sum(&body, name, &[])
}

#[test]
fn injected_rss_sheds_low_priority_work_then_reduces_then_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let goog = Path::new(env!("CARGO_MANIFEST_DIR")).join("actors/tests/data/GOOG.csv");
    // A research agent that would not run on its own during the test (1 h), so a
    // run-now is the only way it runs.
    let rbi = format!(
        "\n[[agents.rbi]]\nname = \"researcher\"\ninbox = {:?}\ninterval = \"1h\"\n\
         initial_delay = \"1h\"\nmodel = \"default\"\nfix_rounds = 0\ndata = [{:?}]\n",
        inbox.display().to_string(),
        goog.display().to_string()
    );
    let config = test_config(dir.path(), port, &rbi);
    let reading = dir.path().join("reading.json");
    inject(&reading, 100);
    let reading_env = reading.display().to_string();
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[
            ("ORRERY_RESOURCE_READING_FILE", reading_env.as_str()),
            // No trading agent: the orders and the mode are the test's own.
            ("ORRERY__AGENTS__TRADING", "[]"),
        ],
    );

    // Normal: the default thresholds (1024 / 2048 / 3072 MiB) are far above 100 MiB.
    let s = wait_level(port, "normal", 100);
    assert_eq!(s["mode"]["mode"], "normal");
    assert_eq!(s["resources"]["paused_work"], serde_json::json!([]));
    assert_eq!(metric(port, "orrery_resource_level"), 0.0);

    // Warn: logged and measured, nothing paused.
    inject(&reading, 1500);
    wait_level(port, "warn", 1500);
    assert_eq!(metric(port, "orrery_resource_level"), 1.0);
    assert_eq!(metric(port, "orrery_resource_shed_active"), 0.0);

    // Shed: low-priority work answers 503 `shedding` with the reason; trading goes on.
    inject(&reading, 2500);
    let s = wait_level(port, "shed", 2500);
    assert_eq!(s["mode"]["mode"], "normal", "shed alone does not reduce");
    assert_eq!(
        s["resources"]["paused_work"],
        serde_json::json!([
            "research_agent",
            "sentiment_agent",
            "api_research",
            "api_replay"
        ])
    );
    assert_eq!(metric(port, "orrery_resource_shed_active"), 1.0);
    for (path, body) in [
        ("/api/replay", r#"{"id":"nope"}"#),
        ("/api/research/run", r#"{"source":"an idea"}"#),
        ("/api/agents/researcher/run-now", ""),
    ] {
        let (code, answer) = http_post_json(port, path, body).unwrap();
        assert_eq!(code, 503, "{path}: {answer}");
        let e: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(e["error"]["code"], "shedding", "{path}: {answer}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("sheds load") && message.contains("rss 2500 MiB"),
            "{path}: {message}"
        );
    }
    let (_, body) = http_get(port, "/metrics").unwrap();
    for work in ["research_agent", "api_research", "api_replay"] {
        assert!(
            metric_sum(
                &body,
                "orrery_resource_shed_refusals_total",
                &[&format!("work=\"{work}\"")]
            ) >= 1.0,
            "{work} refusal counted:\n{body}"
        );
    }
    // An order is not low-priority work.
    let buy = r#"{"venue":"paper","symbol":"BTC","side":"buy","amount":{"usd":"100"},"pricing":"market","reduce_only":false,"origin":"test"}"#;
    let (code, answer) = http_post_json(port, "/api/orders", buy).unwrap();
    assert_eq!(code, 200, "{answer}");

    // Critical: the engine moves to Reducing, set by resource shedding.
    inject(&reading, 3500);
    let s = wait_level(port, "critical", 3500);
    let s = if s["mode"]["mode"] == "reducing" {
        s
    } else {
        wait_for(Duration::from_secs(60), "the reducing mode", || {
            status(port).filter(|s| s["mode"]["mode"] == "reducing")
        })
    };
    assert_eq!(s["mode"]["cause"], "resource_shedding");
    assert!(
        s["mode"]["reason"]
            .as_str()
            .unwrap()
            .contains("rss 3500 MiB, critical threshold 3072 MiB"),
        "{}",
        s["mode"]
    );
    assert_eq!(metric(port, "orrery_engine_trading_mode"), 1.0);
    assert_eq!(metric(port, "orrery_resource_level"), 3.0);
    // Reducing-only: a buy that adds to the position is refused before the ledger.
    let (code, answer) = http_post_json(port, "/api/orders", buy).unwrap();
    assert_eq!(code, 409, "{answer}");
    let out = run_cli(&["status", "--config", config.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("resources: critical"), "{text}");
    assert!(text.contains("rss 3500 MiB"), "{text}");
    assert!(
        text.contains("paused while shedding: research (RBI) agent runs"),
        "{text}"
    );
    assert!(text.contains("set by resource_shedding"), "{text}");

    // Within the hysteresis margin (10 % below 3072 MiB is 2764.8 MiB): still critical.
    inject(&reading, 2900);
    let s = wait_level(port, "critical", 2900);
    assert_eq!(s["mode"]["mode"], "reducing");

    // Below it: back to normal by itself, and the Reducing it set is lifted.
    inject(&reading, 200);
    wait_level(port, "normal", 200);
    let s = wait_for(Duration::from_secs(60), "the normal mode", || {
        status(port).filter(|s| s["mode"]["mode"] == "normal")
    });
    assert_eq!(s["mode"]["cause"], "resource_shedding");
    let (code, answer) = http_post_json(port, "/api/replay", r#"{"id":"nope"}"#).unwrap();
    assert_ne!(code, 503, "replays run again: {answer}");
    let (code, answer) = http_post_json(port, "/api/orders", buy).unwrap();
    assert_eq!(code, 200, "{answer}");
    let (_, body) = http_get(port, "/metrics").unwrap();
    for (from, to) in [
        ("normal", "warn"),
        ("warn", "shed"),
        ("shed", "critical"),
        ("critical", "normal"),
    ] {
        assert_eq!(
            metric_sum(
                &body,
                "orrery_resource_level_transitions_total",
                &[&format!("from=\"{from}\""), &format!("to=\"{to}\"")]
            ),
            1.0,
            "{from} -> {to}:\n{body}"
        );
    }

    signal(&engine, libc::SIGINT);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    let log: String = engine_logs(dir.path());
    assert!(log.contains("resource level rose"), "{log}");
    assert!(log.contains("resource level fell"), "{log}");
    assert!(log.contains("trading mode changed"), "{log}");
}

#[test]
fn a_bad_resources_section_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("rss_shed_mb = 2048", "rss_shed_mb = 512");
    std::fs::write(&config, text).unwrap();
    for command in ["run", "check-config"] {
        let out = run_cli(&[command, "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`resources.rss_shed_mb`"), "{command}: {err}");
        assert!(
            err.contains("more than rss_warn_mb (1024)"),
            "{command}: {err}"
        );
    }
    assert!(!data_dir(dir.path()).exists());
}
