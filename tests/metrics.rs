//! The metrics an operator reads first, scraped from the real engine: busy actors count
//! their work, process CPU time is a counter, and the breaker, cooldown and breach series
//! of every configured venue and deployment exist at 0 before any event.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

/// The value of the one sample of `metric` with exactly `labels` (`{...}` text, or "").
fn sample(exposition: &str, metric: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{metric}{labels} ");
    exposition
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l[prefix.len()..].trim().parse().ok())
}

#[test]
fn busy_actors_count_work_and_every_target_has_its_series_from_the_start() {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = format!(
        "\n[exchanges.venues.hyperliquid]\nkind = \"hyperliquid\"\nnetwork = \"testnet\"\n\
         base_url = \"{}\"\nwallet_address = \"{wallet}\"\nrequest_timeout = \"3s\"\n",
        mock.url()
    );
    let config = test_config(dir.path(), port, &section);
    // The `local` pool below works for a single-model agent asking `default`.
    single_model_agent(&config);
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[
            ("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY),
            ("ORRERY__RISK__CHECK_INTERVAL", "300ms"),
        ],
    );
    let actor = |a: &str| format!("{{actor=\"engine/{a}\"}}");
    let busy = [
        "agents/trading-trend",
        "agents/risk",
        "models/pool-local",
        "telemetry",
    ];
    // Wait until every busy actor has counted work; each does within a second or two.
    let scrape = wait_for(
        Duration::from_secs(60),
        "messages counted for the trading agent, risk agent, pool and sampler",
        || {
            let (status, body) = http_get(port, "/metrics")?;
            let counted = busy.iter().all(|a| {
                sample(&body, "orrery_actor_messages_total", &actor(a)).is_some_and(|v| v > 0.0)
            });
            (status == 200 && counted).then_some(body)
        },
    );

    assert!(
        scrape.contains("# TYPE orrery_process_cpu_seconds_total counter\n"),
        "{scrape}"
    );
    assert!(sample(&scrape, "orrery_process_cpu_seconds_total", "").is_some_and(|v| v > 0.0));
    assert!(
        !scrape.contains("orrery_process_cpu_seconds "),
        "the old gauge is gone"
    );

    // Series that exist from the start at 0 (no breaker opened, no cooldown, no breach
    // in this run).
    let target = "target=\"hyperliquid\"";
    for (metric, labels) in [
        ("orrery_breaker_state", format!("{{{target}}}")),
        ("orrery_breaker_rejected_total", format!("{{{target}}}")),
        (
            "orrery_breaker_transitions_total",
            format!("{{{target},from=\"closed\",to=\"open\"}}"),
        ),
        (
            "orrery_model_cooldowns_total",
            "{deployment=\"local\"}".to_string(),
        ),
        (
            "orrery_risk_breaches_total",
            "{venue=\"paper\",limit=\"max_loss\"}".to_string(),
        ),
        (
            "orrery_risk_breaches_total",
            "{venue=\"hyperliquid\",limit=\"max_loss\"}".to_string(),
        ),
        (
            "orrery_risk_breaches_total",
            "{venue=\"hyperliquid\",limit=\"min_balance\"}".to_string(),
        ),
    ] {
        assert_eq!(
            sample(&scrape, metric, &labels),
            Some(0.0),
            "{metric}{labels} missing or not 0 in:\n{scrape}"
        );
    }

    let (ok, report) = promtool_check(&scrape);
    assert!(ok, "promtool check metrics failed:\n{report}");

    signal(&engine, libc::SIGINT);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}
