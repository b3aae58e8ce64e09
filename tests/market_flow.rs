//! The open-interest/whale agent and the liquidation agent through the real binary (issue
//! 13, items 2 and 3), against the loopback Binance USDⓈ-M REST mock (open interest, its
//! history and the mark) and its websocket mock replaying documented `aggTrade` and
//! `forceOrder` frames: each signal reaches the bus, `orrery signals` and the prompt of a
//! trading agent subscribed through `signal_kinds`; `orrery agents` lists both agents; the
//! metrics pass promtool; no signal is published twice while its state persists, across a
//! restart of the engine too; a bad section names its key.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::exchanges::binance_futures::mock::{
    MockBinanceFutures, MOCK_API_KEY, MOCK_API_SECRET,
};
use orrery_actors::exchanges::binance_futures::ws_mock::{
    agg_trade_print, force_order_event, Conn, FuturesWsMock,
};
use orrery_actors::exchanges::binance_futures::{API_KEY_ENV, API_SECRET_ENV};
use rust_decimal_macros::dec;
use serde_json::Value;

const KEYS: [(&str, &str); 2] = [
    (API_KEY_ENV, MOCK_API_KEY),
    (API_SECRET_ENV, MOCK_API_SECRET),
];

fn cli_json(args: &[&str]) -> Value {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .envs(KEYS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn api(port: u16, path: &str) -> Option<Value> {
    let (status, body) = http_get(port, path)?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn signals(port: u16, kind: &str) -> Vec<Value> {
    api(port, &format!("/api/signals?kind={kind}"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn agent_runs(port: u16, name: &str) -> u64 {
    api(port, "/api/agents")
        .and_then(|v| {
            v["agents"]
                .as_array()?
                .iter()
                .find(|a| a["name"] == name)
                .and_then(|a| a["runs"].as_u64())
        })
        .unwrap_or(0)
}

#[test]
fn open_interest_whales_and_liquidations_become_signals_that_reach_the_trading_prompt() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(FuturesWsMock::start()).unwrap();
    let rest = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = format!(
        r#"
[exchanges.venues.bnf]
kind = "binance_futures"
base_url = "{}"
ws_url = "{}"
symbols = ["ETH"]
request_timeout = "5s"
stream_stale_after = "30s"

[[agents.open_interest]]
name = "oi"
venue = "bnf"
symbols = ["BTC"]
interval = "500ms"
initial_delay = "100ms"
windows = ["5m", "1h"]
change_pct = {{ "5m" = 2.0, "1h" = 50.0 }}
whale_usd = 100000

[[agents.liquidations]]
name = "liq"
venue = "bnf"
symbols = ["BTC"]
interval = "500ms"
initial_delay = "100ms"
window = "1m"
baseline = "1h"
min_usd = 10000
"#,
        rest.url(),
        ws.url()
    );
    let cfg = test_config(dir.path(), port, &section);
    single_model_agent(&cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("signal_kinds = []"));
    std::fs::write(
        &cfg,
        text.replace(
            "signal_kinds = []",
            "signal_kinds = [\"open_interest\", \"whale\", \"liquidations\"]",
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let limit = Duration::from_secs(90);
    let mut engine = spawn_engine(&cfg, dir.path(), &[], &KEYS);

    // The market stream subscribes the open-interest agent's symbol beside the venue's.
    wait_for(limit, "the futures market connection", || {
        assert_running(&mut engine, dir.path());
        ws.has_connection(Conn::Market).then_some(())
    });
    let streams = &ws.stream_sets()[0];
    assert!(
        streams.iter().any(|s| s == "btcusdt@aggTrade"),
        "{streams:?}"
    );
    // A first run seeds the series from the history; nothing crosses.
    wait_for(limit, "two open-interest runs", || {
        (agent_runs(port, "oi") >= 2).then_some(())
    });
    assert!(signals(port, "open_interest").is_empty());

    // Open interest +10.8 % with the price up over 5 minutes: new longs.
    rest.set_open_interest("BTCUSDT", dec!(90000));
    rest.set_book("BTCUSDT", dec!(61990), dec!(62010));
    let oi = wait_for(limit, "an open_interest signal", || {
        signals(port, "open_interest").into_iter().next()
    });
    assert_eq!(
        (oi["source"].as_str(), oi["symbol"].as_str()),
        (Some("oi"), Some("BTC"))
    );
    assert_eq!(oi["direction"], "long");
    assert!(
        oi["evidence"]
            .as_str()
            .unwrap()
            .starts_with("new longs: open interest +10."),
        "{oi}"
    );

    // A taker buy of 2 BTC (a whale) and a small print; a cascade of long liquidations.
    let now = chrono::Utc::now().timestamp_millis();
    assert!(ws.send_market(
        "btcusdt@aggTrade",
        agg_trade_print("BTCUSDT", 7001, "60000", "2", false, now)
    ));
    assert!(ws.send_market(
        "btcusdt@aggTrade",
        agg_trade_print("BTCUSDT", 7002, "60000", "0.01", true, now)
    ));
    assert!(ws.send_market(
        "!forceOrder@arr",
        force_order_event("BTCUSDT", "SELL", "0.5", "59000", now)
    ));
    let whale = wait_for(limit, "a whale signal", || {
        signals(port, "whale").into_iter().next()
    });
    assert_eq!(
        (whale["direction"].as_str(), whale["value"].as_str()),
        (Some("long"), Some("120000"))
    );
    let liq = wait_for(limit, "a liquidations signal", || {
        signals(port, "liquidations").into_iter().next()
    });
    assert_eq!(liq["direction"], "short");
    assert!(
        liq["evidence"]
            .as_str()
            .unwrap()
            .starts_with("long-liquidation cascade: 1 BTC longs liquidated for 29500 USD in 1m"),
        "{liq}"
    );

    // `orrery signals` shows them.
    let listed = cli_json(&["signals", "--config", c, "--kind", "whale", "--json"]);
    assert_eq!(listed[0]["source"], "oi");
    assert!(listed[0]["evidence"]
        .as_str()
        .unwrap()
        .contains("whale bought 2 BTC at 60000 = 120000 USD on bnf"));

    // `orrery agents` lists both kinds.
    let agents = cli_json(&["agents", "--config", c, "--json"]);
    let kind_of = |name: &str| {
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["kind"].clone())
    };
    assert_eq!(kind_of("oi"), Some(Value::from("open_interest")));
    assert_eq!(kind_of("liq"), Some(Value::from("liquidations")));

    // The subscribed trading agent sees the three in its prompt and context.
    let detail = wait_for(limit, "a trading prompt with the signals", || {
        let rows = api(port, "/api/journal?agent=trend&symbol=BTC&limit=5")?;
        rows.as_array()?.iter().find_map(|r| {
            let d = api(port, &format!("/api/journal/{}", r["id"].as_str()?))?;
            let p = d["prompt"].as_str()?;
            (p.contains("open_interest,oi,long")
                && p.contains("whale,oi,long")
                && p.contains("liquidations,liq,short"))
            .then_some(d)
        })
    });
    let kinds: Vec<&str> = detail["context"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    for k in ["open_interest", "whale", "liquidations"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }

    // Metrics, described and well-formed.
    let metrics = wait_for(limit, "the flow metrics", || {
        let (_, m) = http_get(port, "/metrics")?;
        (metric_sum(&m, "orrery_whale_prints_total", &["side=\"buy\""]) == 1.0).then_some(m)
    });
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_open_interest",
            &["venue=\"bnf\"", "symbol=\"BTC\""]
        ),
        90000.0
    );
    let change = metric_sum(
        &metrics,
        "orrery_open_interest_change_pct",
        &["symbol=\"BTC\"", "window=\"5m\""],
    );
    assert!(change > 10.0 && change < 11.0, "{change}");
    assert_eq!(
        metric_sum(&metrics, "orrery_whale_prints_total", &["side=\"sell\""]),
        0.0
    );
    let ratio = metric_sum(
        &metrics,
        "orrery_liquidation_spike_ratio",
        &["symbol=\"BTC\"", "side=\"sell\""],
    );
    assert_eq!(ratio, 2.95);
    let (ok, why) = promtool_check(&metrics);
    assert!(ok, "{why}");

    // No republish while the states persist: more runs, the same signals.
    let runs = agent_runs(port, "oi");
    wait_for(limit, "four more runs of each", || {
        (agent_runs(port, "oi") >= runs + 4 && agent_runs(port, "liq") >= 4).then_some(())
    });
    assert_eq!(signals(port, "open_interest").len(), 1);
    assert_eq!(signals(port, "whale").len(), 1);
    assert_eq!(signals(port, "liquidations").len(), 1);

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());

    // Restarted: the series and the crossing are kept, so the same +10.8 % publishes
    // nothing; the whale cursor and ids are kept.
    let mut engine = spawn_engine(&cfg, dir.path(), &[], &KEYS);
    wait_for(limit, "four runs after the restart", || {
        (agent_runs(port, "oi") >= runs + 8).then_some(())
    });
    assert_eq!(signals(port, "open_interest").len(), 1);
    assert_eq!(signals(port, "whale").len(), 1);
    assert_eq!(signals(port, "liquidations").len(), 1);
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());

    // Journaled: each run of each agent.
    let rows = cli_json(&["journal", "--config", c, "--agent", "oi", "--json"]);
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "OPEN_INTEREST" || r["verdict"] == "OPEN_INTEREST"));
    let rows = cli_json(&["journal", "--config", c, "--agent", "liq", "--json"]);
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "LIQUIDATIONS" || r["verdict"] == "LIQUIDATIONS"));
}

#[test]
fn a_bad_flow_section_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(
        dir.path(),
        free_port(),
        r#"
[[agents.open_interest]]
name = "oi"
venue = "paper"
symbols = ["BTC"]
windows = ["5m", "forever"]
whale_usd = 0

[[agents.liquidations]]
name = "oi"
venue = "paper"
spike_factor = -1
"#,
    );
    let out = run_cli(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "agents.open_interest[0].venue",
        "agents.open_interest[0].windows",
        "agents.open_interest[0].whale_usd",
        "agents.liquidations[0].name",
        "agents.liquidations[0].venue",
        "agents.liquidations[0].spike_factor",
    ] {
        assert!(err.contains(key), "{key} in {err}");
    }
}

/// The open-interest agent on a paper venue replaying `derivatives_csv` (the offline demo's
/// venue): it samples through the same factory, says it has no stream, and runs clean.
#[test]
fn the_open_interest_agent_reads_a_paper_venues_replay_without_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("btc.csv");
    std::fs::write(
        &csv,
        "timestamp,funding_rate,open_interest,mark_price\n\
         2026-01-01T00:00:00Z,0.0001,1000,50000\n\
         2026-01-01T12:00:00Z,-0.00002,1240,51000\n",
    )
    .unwrap();
    let port = free_port();
    let extra = format!(
        r#"
[exchanges.venues.lab]
kind = "paper"
funding_interval = "8h"
[exchanges.venues.lab.symbols.BTC]
derivatives_csv = "{}"

[[agents.open_interest]]
name = "oi"
venue = "lab"
symbols = ["BTC"]
interval = "300ms"
initial_delay = "100ms"
windows = ["5m"]
"#,
        csv.display()
    );
    let cfg = test_config(dir.path(), port, &extra);
    let mut engine = spawn_engine(&cfg, dir.path(), &[], &[]);
    let oi = wait_for(Duration::from_secs(60), "three clean runs", || {
        assert_running(&mut engine, dir.path());
        let v = api(port, "/api/agents")?;
        let a = v["agents"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "oi")?
            .clone();
        (a["runs"].as_u64()? >= 3).then_some(a)
    });
    assert_eq!(oi["failures"], 0, "{oi}");
    assert_eq!(oi["kind"], "open_interest");
    assert!(
        oi["warning"]
            .as_str()
            .unwrap()
            .contains("venue `lab` has no stream configured"),
        "{oi}"
    );
    let (_, m) = http_get(port, "/metrics").unwrap();
    let sampled = metric_sum(
        &m,
        "orrery_open_interest",
        &["venue=\"lab\"", "symbol=\"BTC\""],
    );
    assert!((1000.0..=1240.0).contains(&sampled), "{sampled}");
    let text = run_cli(&["agents", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("oi: venue `lab` has no stream configured"),
        "{text}"
    );
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());
}
