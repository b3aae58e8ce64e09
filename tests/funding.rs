//! Funding through the real binary: `orrery market funding|open-interest` on a
//! Hyperliquid venue, and the funding agent (issue 13, item 1): an extreme funding rate on
//! the Hyperliquid mock (in this test process) becomes one `funding` signal — on the bus,
//! in `orrery signals`, in the prompt of a trading agent subscribed to `funding` — that
//! neither later runs nor a restart publish again; its metrics, `orrery agents`, the
//! journal; and a bad `[[agents.funding]]` section named key by key.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use rust_decimal_macros::dec;
use serde_json::Value;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

fn hl_mock() -> MockHyperliquid {
    MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    )
}

fn hl_section(mock: &MockHyperliquid) -> String {
    format!(
        "\n[exchanges.venues.hl]\nkind = \"hyperliquid\"\nnetwork = \"testnet\"\nbase_url = \"{}\"\nwallet_address = \"{}\"\nrequest_timeout = \"3s\"\n",
        mock.url(),
        PrivateKey::from_hex(KEY).unwrap().address()
    )
}

/// Public reads: no key in the environment.
fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .env_remove("HYPER_LIQUID_ETH_PRIVATE_KEY")
        .env_remove("HYPERLIQUID_PRIVATE_KEY")
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn market_funding_and_open_interest_on_hyperliquid() {
    let mock = hl_mock();
    // The recorded ETH context.
    mock.set_asset_ctx(
        "ETH",
        dec!(0.0000125),
        dec!(605822.2557999999),
        Some(dec!(2123.7)),
        Some(dec!(2124.6)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &hl_section(&mock));
    let cfg = config.to_str().unwrap();

    let out = cli(&[
        "market",
        "funding",
        "--config",
        cfg,
        "--venue",
        "hl",
        "--symbol",
        "eth",
        "--history",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = json(&out);
    assert_eq!(f["symbol"], "ETH");
    assert_eq!(f["current"]["funding_rate"], "0.0000125");
    assert_eq!(f["current"]["mark_price"], "2123.7");
    assert_eq!(f["current"]["index_price"], "2124.6");
    assert_eq!(f["current"]["funding_interval_hours"], 1);
    let history = f["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|h| h["rate"] == "0.0000125"));

    let out = cli(&[
        "market", "funding", "--config", cfg, "--venue", "hl", "--symbol", "ETH",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hl ETH: mark 2123.7 index 2124.6 funding 0.00125% per 1h (10.95%/year"),
        "{text}"
    );

    let out = cli(&[
        "market",
        "open-interest",
        "--config",
        cfg,
        "--venue",
        "hl",
        "--symbol",
        "ETH",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["current"]["open_interest"], "605822.2557999999");

    // No open-interest history on Hyperliquid: the venue's typed refusal, a usage error.
    let before = mock.requests().len();
    let out = cli(&[
        "market",
        "open-interest",
        "--config",
        cfg,
        "--venue",
        "hl",
        "--symbol",
        "ETH",
        "--period",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hl does not offer open-interest history"),
        "{err}"
    );
    // Only the current open interest was asked for.
    assert_eq!(mock.requests().len(), before + 1);
}

fn cli_json(args: &[&str]) -> Value {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

fn api(port: u16, path: &str) -> Option<Value> {
    let (status, body) = http_get(port, path)?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn funding_runs(port: u16) -> Option<f64> {
    let (_, m) = http_get(port, "/metrics")?;
    Some(metric_sum(
        &m,
        "orrery_agent_runs_total",
        &["agent=\"funding-watch\""],
    ))
}

#[test]
fn an_extreme_funding_rate_is_signalled_once_to_the_bus_the_cli_and_a_trading_prompt() {
    let mock = hl_mock();
    // 0.0001 per hour: 87.6 %/year, past the 50 % threshold.
    mock.set_funding("BTC", dec!(0.0001));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        "{}streams = false\n\n[[agents.funding]]\nname = \"funding-watch\"\nvenue = \"hl\"\nsymbols = [\"btc\", \"nope\"]\ninterval = \"300ms\"\ninitial_delay = \"100ms\"\nhistory = 24\nannualized_pct = 50\nzscore = 3\n",
        hl_section(&mock)
    );
    let cfg = test_config(dir.path(), port, &extra);
    single_model_agent(&cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("signal_kinds = []"));
    std::fs::write(
        &cfg,
        text.replace("signal_kinds = []", "signal_kinds = [\"funding\"]"),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();

    let mut engine = spawn_engine(&cfg, dir.path(), &[], &[]);
    wait_for(Duration::from_secs(60), "the engine's health", || {
        assert_running(&mut engine, dir.path());
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let signals = wait_for(Duration::from_secs(60), "a funding signal", || {
        assert_running(&mut engine, dir.path());
        let out = cli(&["signals", "--config", c, "--kind", "funding", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (!v.as_array()?.is_empty()).then_some(v)
    });
    let s = &signals[0];
    assert_eq!(
        (
            s["source"].as_str(),
            s["symbol"].as_str(),
            s["direction"].as_str()
        ),
        (Some("funding-watch"), Some("BTC"), Some("short"))
    );
    assert_eq!(s["value"], "0.0001");
    let evidence = s["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("hl BTC: funding 0.0100% per 1h, 87.60%/year annualized")
            && evidence.contains("extreme_positive (longs pay shorts: crowded longs)"),
        "{evidence}"
    );

    // Listed by the runtime.
    let agents = cli_json(&["agents", "--config", c, "--json"]);
    let listed = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "funding-watch")
        .expect("the funding agent is listed");
    assert_eq!(listed["kind"], "funding");

    // Metrics, in a format promtool accepts; NOPE, which Hyperliquid does not list, is
    // a venue error counted (and journaled, below) every run, while BTC is read.
    let metrics = wait_for(Duration::from_secs(30), "the funding gauges", || {
        let (_, m) = http_get(port, "/metrics")?;
        (m.contains("orrery_funding_zscore{")
            && metric_sum(
                &m,
                "orrery_funding_errors_total",
                &[
                    "agent=\"funding-watch\"",
                    "venue=\"hl\"",
                    "kind=\"unknown_symbol\"",
                ],
            ) >= 1.0)
            .then_some(m)
    });
    let ann = metric_sum(
        &metrics,
        "orrery_funding_rate_annualized_pct",
        &["venue=\"hl\"", "symbol=\"BTC\""],
    );
    assert!((ann - 87.6).abs() < 1e-9, "{ann}");
    let (ok, why) = promtool_check(&metrics);
    assert!(ok, "{why}");

    // The trading agent subscribed to `funding` reads it into its prompt and context.
    let detail = wait_for(
        Duration::from_secs(60),
        "a trading prompt with the funding signal",
        || {
            let rows = api(port, "/api/journal?agent=trend&symbol=BTC&limit=5")?;
            rows.as_array()?.iter().find_map(|r| {
                let d = api(port, &format!("/api/journal/{}", r["id"].as_str()?))?;
                d["prompt"]
                    .as_str()?
                    .contains("funding,funding-watch,short")
                    .then_some(d)
            })
        },
    );
    assert!(
        detail["context"]["signals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "funding" && s["source"] == "funding-watch"),
        "{}",
        detail["context"]
    );

    // Staying extreme for more runs publishes nothing more.
    let runs = funding_runs(port).unwrap();
    wait_for(Duration::from_secs(30), "three more funding runs", || {
        (funding_runs(port)? >= runs + 3.0).then_some(())
    });
    let again = cli_json(&["signals", "--config", c, "--kind", "funding", "--json"]);
    assert_eq!(again.as_array().unwrap().len(), 1, "{again}");
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());

    // A restart reads the published state from sled: no second signal.
    let mut engine = spawn_engine(&cfg, dir.path(), &[], &[]);
    wait_for(
        Duration::from_secs(60),
        "funding runs after the restart",
        || {
            assert_running(&mut engine, dir.path());
            (funding_runs(port)? >= 3.0).then_some(())
        },
    );
    let after = cli_json(&["signals", "--config", c, "--kind", "funding", "--json"]);
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());

    // Every run is journaled with its inputs and outputs.
    let rows = cli_json(&[
        "journal",
        "--config",
        c,
        "--agent",
        "funding-watch",
        "--json",
    ]);
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 6, "{}", rows.len());
    let id = rows[0]["id"].as_str().unwrap();
    let run = cli_json(&["journal", "--config", c, "show", id, "--json"]);
    assert_eq!(run["action"], "FUNDING", "{run}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("hl:BTC rate 0.0001 per 1h (rest) -> 87.60%/year"),
        "{run}"
    );
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("hl NOPE funding: hl: unknown symbol `NOPE`"),
        "{run}"
    );
    let logs: String = engine_logs(dir.path());
    assert!(
        logs.contains("funding run") && logs.contains("hl:BTC extreme_positive"),
        "the run's log line"
    );
}

#[test]
fn a_bad_funding_section_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "\n[[agents.funding]]\nname = \"funding-watch\"\nvenue = \"paper\"\nvenues = [\"nowhere\"]\nsymbols = [\"BTC\"]\nhistory = 1\nzscore = 0\nmodel = \"missing\"\n";
    let cfg = test_config(dir.path(), free_port(), extra);
    let out = cli(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "agents.funding[0].history",
        "agents.funding[0].zscore",
        "agents.funding[0].model",
        "agents.funding[0].venues",
    ] {
        assert!(err.contains(key), "{key} in {err}");
    }
    assert!(
        err.contains("agents.funding[0].venue") && err.contains("is of kind `paper`"),
        "{err}"
    );
    let out = cli(&[
        "check-config",
        "--config",
        test_config(
            dir.path(),
            free_port(),
            &extra.replace("history = 1", "histroy = 90"),
        )
        .to_str()
        .unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("histroy"));
}

/// One process, no cluster: the funding agents' reader and the account's connector draw
/// from the account's one weight budget (the venue counts per IP, not per caller). The
/// agents want far more than the minute's budget; the mock, keeping Hyperliquid's per-IP
/// budget at the configured limit, never has to refuse, and the market route past the
/// spent budget is refused without reaching it.
#[test]
fn readers_and_connectors_of_one_process_share_the_accounts_weight() {
    const BUDGET: u64 = 400;
    let mock = hl_mock();
    mock.set_ip_weight_limit(BUDGET, Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut section = hl_section(&mock)
        + &format!(
            r#"streams = false

[exchanges.venues.hl.resilience]
limits = [
  {{ name = "weight", kind = "sliding_window", limit = {BUDGET}, window = "1m" }},
]
"#
        );
    section.push_str(&funding_agents("funding", "hl", 2));
    let config = test_config(dir.path(), port, &section);
    let started = std::time::Instant::now();
    let _engine = Killed(spawn_engine(
        &config,
        dir.path(),
        &[],
        &[("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h")],
    ));
    wait_for(Duration::from_secs(30), "the budget to be spent", || {
        (mock.ip_weight_used() >= BUDGET - 25).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let before = mock.requests().len();
    let (status, body) = http_get(port, "/api/market/funding?venue=hl&symbol=BTC&history=1")
        .expect("the route answers");
    assert_ne!(status, 200, "the route read past the spent budget: {body}");
    assert_eq!(mock.requests().len(), before, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(55),
        "the check must run within the budget's first minute"
    );
    // The mock admits no more than the budget whatever the engine does: what can fail is
    // that it had to refuse, with both kinds of callers spending from the budget.
    assert_eq!(mock.ip_refusals(), 0, "the venue had to refuse for weight");
    let kinds: std::collections::BTreeSet<String> = mock
        .requests()
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            Some(body["type"].as_str()?.to_string())
        })
        .collect();
    for (kind, caller) in [
        (
            "frontendOpenOrders",
            "the account's connector (reconciliation)",
        ),
        ("metaAndAssetCtxs", "the funding agents' reader"),
    ] {
        assert!(kinds.contains(kind), "no {kind} from {caller}: {kinds:?}");
    }
}

/// An engine killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
