//! The signal bus through the real binary: publish through the control API and the CLI,
//! list with filters (`--json`, `GET /api/signals`), a bad publish refused with the field
//! named, the default trading agent's verdicts on the bus, the metrics, and a restart that
//! keeps the unexpired signals and loses the expired one.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

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

fn ok_json(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn body_json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `(source, symbol, kind, evidence)` of each listed signal, in order.
fn summary(list: &serde_json::Value) -> Vec<(String, String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (f("source"), f("symbol"), f("kind"), f("evidence"))
        })
        .collect()
}

fn publish_api(port: u16, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = http_post_json(port, "/api/signals", body).expect("the engine answers");
    (status, body_json(&text))
}

fn stop(engine: &mut std::process::Child) {
    signal(engine, libc::SIGTERM);
    assert!(wait_exit(engine, Duration::from_secs(60)).success());
}

#[test]
fn signals_are_published_listed_refused_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    // A single model trades (and so publishes verdicts) far more often than a majority of
    // three rule sets agrees.
    single_model_agent(&config);
    let cfg = config.to_str().unwrap();
    let mut engine = spawn_engine(&config, dir.path(), &[], &[]);
    wait_for(Duration::from_secs(60), "the engine's health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });

    // Through the control API: a long-lived sentiment signal and a short-lived whale one.
    let (status, long) = publish_api(
        port,
        r#"{"source":"news-bot","symbol":"btc","kind":"sentiment","value":"0.4","direction":"long","confidence":0.7,"evidence":"ETF inflows at a record","ttl":"1h"}"#,
    );
    assert_eq!(status, 201, "{long}");
    assert_eq!(long["symbol"], "BTC");
    assert_eq!(long["kind"], "sentiment");
    assert_eq!(long["ttl_ms"], 3_600_000);
    let (status, short) = publish_api(
        port,
        r#"{"source":"whale-watch","symbol":"BTC","kind":"whale","value":1500,"direction":"short","confidence":0.5,"evidence":"1500 BTC to an exchange","ttl":"2s"}"#,
    );
    assert_eq!(status, 201, "{short}");
    let short_published = Instant::now();

    // Through the CLI (the engine runs: it goes through the control API).
    let funding = ok_json(cli(
        cfg,
        &[
            "signals",
            "publish",
            "--symbol",
            "eth",
            "--kind",
            "funding",
            "--direction",
            "short",
            "--confidence",
            "0.6",
            "--value",
            "-0.0001",
            "--evidence",
            "funding flipped negative",
            "--ttl",
            "1h",
            "--source",
            "script",
            "--json",
        ],
    ));
    assert_eq!(funding["source"], "script");
    assert_eq!(funding["symbol"], "ETH");
    assert_eq!(funding["value"], "-0.0001");

    // Bad input: 400 naming the field, nothing kept.
    for (body, field) in [
        (
            r#"{"source":"x","symbol":"BTC","kind":"sentiment","direction":"long","confidence":1.5}"#,
            "`confidence`",
        ),
        (
            r#"{"source":"x","symbol":"BTC","kind":"gossip","direction":"long","confidence":0.5}"#,
            "`kind`",
        ),
        (
            r#"{"source":"x","symbol":"","kind":"news","direction":"long","confidence":0.5}"#,
            "`symbol`",
        ),
        (
            r#"{"source":"x","symbol":"BTC","kind":"news","direction":"long","confidence":0.5,"ttl":"0s"}"#,
            "`ttl`",
        ),
        (
            r#"{"symbol":"BTC","kind":"news","direction":"long","confidence":0.5}"#,
            "`source`",
        ),
    ] {
        let (status, err) = publish_api(port, body);
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "bad_request", "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body} -> {message}");
    }
    let bad = cli(
        cfg,
        &[
            "signals",
            "publish",
            "--symbol",
            "BTC",
            "--kind",
            "sentiment",
            "--direction",
            "long",
            "--confidence",
            "2",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("`confidence`"), "{stderr}");

    // Listing with filters, CLI and API.
    let btc_sentiment = ok_json(cli(
        cfg,
        &[
            "signals",
            "--symbol",
            "btc",
            "--kind",
            "sentiment",
            "--json",
        ],
    ));
    assert_eq!(
        summary(&btc_sentiment),
        [(
            "news-bot".to_string(),
            "BTC".to_string(),
            "sentiment".to_string(),
            "ETF inflows at a record".to_string()
        )]
    );
    let (status, body) = http_get(port, "/api/signals?kind=funding,whale&limit=10").unwrap();
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<_> = summary(&body_json(&body))
        .into_iter()
        .map(|(source, _, kind, _)| format!("{source}/{kind}"))
        .collect();
    assert_eq!(
        kinds,
        ["script/funding", "whale-watch/whale"],
        "newest first"
    );
    let (status, body) = http_get(port, "/api/signals?kind=gossip").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("kind"), "{body}");

    // The default engine's trading agent publishes its verdicts as technical signals.
    let verdict = wait_for(
        Duration::from_secs(90),
        "a technical signal from the trading agent",
        || {
            let (_, body) = http_get(port, "/api/signals?kind=technical")?;
            let list = body_json(&body);
            list.as_array()?
                .iter()
                .find(|s| s["source"] == "trend")
                .cloned()
        },
    );
    assert!(
        verdict["direction"] == "long" || verdict["direction"] == "short",
        "{verdict}"
    );
    assert!(
        !verdict["evidence"].as_str().unwrap().is_empty(),
        "{verdict}"
    );

    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_signals_published_total",
            &["kind=\"sentiment\"", "source=\"news-bot\""]
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        metric_sum(
            &metrics,
            "orrery_signals_published_total",
            &["kind=\"technical\"", "source=\"trend\""]
        ) >= 1.0
    );
    assert!(metric_sum(&metrics, "orrery_signals_kept", &[]) >= 3.0);
    assert!(
        metrics.contains("# HELP orrery_signals_dropped_total")
            && metrics.contains("orrery_signals_dropped_total{reason=\"subscriber_full\"} 0"),
        "{metrics}"
    );

    stop(&mut engine);
    // Past the short signal's TTL before anything reads the data dir again.
    wait_for(Duration::from_secs(30), "the 2s TTL to pass", || {
        (short_published.elapsed() > Duration::from_millis(2_100)).then_some(())
    });

    // Engine stopped: the CLI reads the data dir.
    let offline = summary(&ok_json(cli(
        cfg,
        &["signals", "--json", "--limit", "1000"],
    )));
    assert!(offline.iter().any(|s| s.0 == "news-bot"), "{offline:?}");
    assert!(offline.iter().any(|s| s.0 == "script"), "{offline:?}");
    assert!(!offline.iter().any(|s| s.0 == "whale-watch"), "{offline:?}");

    // Restarted: the unexpired signals are back, the expired one is gone.
    let mut engine = spawn_engine(&config, dir.path(), &[], &[]);
    wait_for(
        Duration::from_secs(60),
        "the restarted engine's health",
        || http_get(port, "/health").filter(|(s, _)| *s == 200),
    );
    let (status, body) = http_get(port, "/api/signals?limit=1000").unwrap();
    assert_eq!(status, 200, "{body}");
    let after = summary(&body_json(&body));
    assert!(
        after.contains(&(
            "news-bot".to_string(),
            "BTC".to_string(),
            "sentiment".to_string(),
            "ETF inflows at a record".to_string()
        )),
        "{after:?}"
    );
    assert!(
        after.iter().any(|s| s.0 == "script" && s.2 == "funding"),
        "{after:?}"
    );
    assert!(!after.iter().any(|s| s.0 == "whale-watch"), "{after:?}");
    stop(&mut engine);
}
