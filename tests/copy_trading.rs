//! The copy-trading agent in the engine process, against the mock Hyperliquid (REST, and
//! the websocket mock for the leader's fills), both in this test process on loopback.
//!
//! - The leader opens, adds, reduces, flips and closes; the follower mirrors each step at
//!   `ratio` while the engine is SIGKILLed between steps and once right after a step's
//!   order reached the venue, before its answer came back: the venue's record shows each
//!   step's order exactly once, none doubled, none missed.
//! - `fixed_usd` sizing with the fast path (the leader's fills from the stream trigger the
//!   read, polls are 10 minutes apart): open, add, reduce, flip and close; the allowlist,
//!   `max_position_usd` and staleness skip what they must, and status shows the followed
//!   wallet and the sizing.

mod common;

use std::time::Duration;

use common::hl_mock::{assert_sent_once_each, copier_section};
use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::signing::Address;
use orrery_actors::exchanges::hyperliquid::ws_mock::{user_fills_frame, ws_fill, HlWsMock};
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use rust_decimal::Decimal;
use serde_json::Value;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const LEADER: &str = "0x360878d351f05975e25f1807a27895e1e5e004fb";
const ENV: [(&str, &str); 2] = [
    ("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY),
    // Holds the shipped trading agent back: only the copy agent trades.
    ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
];

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn leader() -> Address {
    LEADER.parse().unwrap()
}

fn wallet() -> Address {
    PrivateKey::from_hex(KEY).unwrap().address()
}

fn wait_position(mock: &MockHyperliquid, coin: &str, want: &str, what: &str) {
    let want = dec(want);
    wait_for(Duration::from_secs(60), what, || {
        (mock.position(coin) == want).then_some(())
    });
}

fn start(config: &std::path::Path, dir: &std::path::Path, port: u16) -> std::process::Child {
    let engine = spawn_engine(config, dir, &[], &ENV);
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    engine
}

fn kill(engine: &mut std::process::Child) {
    signal(engine, libc::SIGKILL);
    wait_exit(engine, Duration::from_secs(10));
}

#[test]
fn sigkills_between_steps_and_mid_send_neither_double_nor_miss_a_step() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let venue = common::hl_mock::hl_venue_section(&mock.url(), &wallet().to_string(), "3s");
    let section = venue + "streams = false\n" + &copier_section(LEADER, "1s");
    let config = test_config(dir.path(), port, &section);
    let px = dec("60000");
    let mut engine = start(&config, dir.path(), port);

    // open → kill between steps → add → kill → reduce
    mock.set_other_position(leader(), "BTC", dec("1"), px);
    wait_position(&mock, "BTC", "0.1", "the open mirrored");
    kill(&mut engine);
    mock.set_other_position(leader(), "BTC", dec("1.5"), px);
    engine = start(&config, dir.path(), port);
    wait_position(&mock, "BTC", "0.15", "the add mirrored after a restart");
    kill(&mut engine);
    mock.set_other_position(leader(), "BTC", dec("0.5"), px);
    engine = start(&config, dir.path(), port);
    wait_position(
        &mock,
        "BTC",
        "0.05",
        "the reduction mirrored after a restart",
    );

    // The flip's order reaches the venue, which applies it 2 s later and only then
    // answers: the engine is killed in between, so its answer is never recorded.
    mock.set_apply_lag(Some((Duration::from_secs(2), Duration::from_secs(2))));
    mock.set_other_position(leader(), "BTC", dec("-1"), px);
    wait_for(
        Duration::from_secs(30),
        "the flip's order in the venue's queue",
        || (mock.pending_actions() >= 1).then_some(()),
    );
    kill(&mut engine);
    wait_position(&mock, "BTC", "-0.1", "the venue to apply the flip");
    mock.set_apply_lag(None);
    engine = start(&config, dir.path(), port);
    // After the restart the step is settled by its client id, not sent again: the agent
    // records it and the status shows it settled.
    wait_for(
        Duration::from_secs(60),
        "the flip settled in the copy state",
        || {
            let (_, body) = http_get(port, "/api/status")?;
            let status: Value = serde_json::from_str(&body).ok()?;
            let m = status["copy"][0]["mirrors"][0].clone();
            (m["pending"].is_null()
                && m["steps"] == 4
                && dec(m["mirrored"].as_str()?) == dec("-0.1"))
            .then_some(())
        },
    );
    mock.set_other_position(leader(), "BTC", Decimal::ZERO, px);
    wait_position(&mock, "BTC", "0", "the close mirrored");
    // Nothing more to do: a few more checks send nothing.
    std::thread::sleep(Duration::from_secs(2));
    kill(&mut engine);

    assert_sent_once_each(
        &mock,
        &[
            (true, "0.1", false),
            (true, "0.05", false),
            (false, "0.1", true),
            (false, "0.15", false),
            (true, "0.1", true),
        ],
    );

    // `orrery status` of the stopped engine: the followed wallet and the ratio.
    let out = run_cli(&["status", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "copier follows {LEADER} on hyperliquid → hyperliquid: ratio 0.1"
        )),
        "{text}"
    );
    // `orrery agents` lists it as a copy agent.
    let out = run_cli(&["agents", "--config", config.to_str().unwrap(), "--json"]);
    let agents: Value = serde_json::from_slice(&out.stdout).unwrap();
    let copier = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "copier")
        .cloned()
        .unwrap();
    assert_eq!(copier["kind"], "copy", "{copier}");
}

#[test]
fn fixed_usd_from_the_stream_with_allowlist_limit_and_staleness() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(HlWsMock::start()).unwrap();
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = format!(
        r#"
[exchanges.venues.hyperliquid]
kind = "hyperliquid"
network = "testnet"
base_url = "{}"
wallet_address = "{}"
request_timeout = "3s"
ws_url = "{}"
follow_wallets = ["{LEADER}"]

[[agents.copy]]
name = "fixed"
leader_venue = "hyperliquid"
wallets = ["{LEADER}"]
venue = "hyperliquid"
fixed_usd = 3000
symbols = ["BTC", "SOL"]
max_position_usd = 4500
max_total_usd = 20000
stale_pct = 2
poll_interval = "10m"
check_interval = "200ms"
initial_delay = "300ms"
"#,
        mock.url(),
        wallet(),
        ws.url()
    );
    let config = test_config(dir.path(), port, &section);
    let mut engine = start(&config, dir.path(), port);
    wait_for(
        Duration::from_secs(30),
        "the leader's fills subscribed",
        || {
            ws.subscriptions()
                .iter()
                .any(|s| s["type"] == "userFills" && s["user"] == LEADER)
                .then_some(())
        },
    );
    // The start's read is done (the agent's first check); from now on only fills trigger.
    wait_for(
        Duration::from_secs(30),
        "the copy agent's first check",
        || {
            let (_, metrics) = http_get(port, "/metrics")?;
            (metric_sum(&metrics, "orrery_agent_runs_total", &["agent=\"fixed\""]) >= 2.0)
                .then_some(())
        },
    );
    let mut tid = 10_000;
    let mut fill = |coin: &str, px: &str, sz: &str, side: &str, size: &str, entry: &str| {
        tid += 1;
        mock.set_other_position(leader(), coin, dec(size), dec(entry));
        let now = chrono::Utc::now().timestamp_millis();
        let f = ws_fill(coin, px, sz, side, tid, tid, now);
        assert!(ws.send_text(user_fills_frame(LEADER, &[f], false)));
    };

    // ETH is not in the allowlist; SOL's fill is 20 % off the book (150): both skipped.
    fill("ETH", "3000", "10", "B", "10", "3000");
    fill("SOL", "120", "100", "B", "100", "120");
    wait_for(Duration::from_secs(30), "the skips counted", || {
        let (_, m) = http_get(port, "/metrics")?;
        let count = |o: &str| {
            metric_sum(
                &m,
                "orrery_copy_steps_total",
                &["agent=\"fixed\"", &format!("outcome=\"{o}\"")],
            )
        };
        (count("skipped_not_allowed") >= 1.0 && count("skipped_stale") >= 1.0).then_some(())
    });
    // Open: 3000 USD at the mid 60000.
    fill("BTC", "60000", "1", "B", "1", "60000");
    wait_position(&mock, "BTC", "0.05", "the fixed-size open");
    // The leader doubles: 0.1 would be 6000 USD, capped at max_position_usd 4500.
    fill("BTC", "60000", "1", "B", "2", "60000");
    wait_position(&mock, "BTC", "0.075", "the add capped at max_position_usd");
    // The leader halves: the target is 0.05 (scaled from the open), a reduction.
    fill("BTC", "60000", "1", "A", "1", "60000");
    wait_position(&mock, "BTC", "0.05", "the reduction scaled from the open");
    // The leader flips to 2 short: a new open on the other side, 3000 USD again, in one
    // order across zero.
    fill("BTC", "60000", "3", "A", "-2", "60000");
    wait_position(&mock, "BTC", "-0.05", "the flip opened at the fixed size");
    // Closes are never stale: the leader closes at a price 10 % off.
    fill("BTC", "54000", "2", "B", "0", "60000");
    wait_position(&mock, "BTC", "0", "the close");
    assert_eq!(mock.position("ETH"), Decimal::ZERO);
    assert_eq!(mock.position("SOL"), Decimal::ZERO);
    assert_sent_once_each(
        &mock,
        &[
            (true, "0.05", false),
            (true, "0.025", false),
            (false, "0.025", true),
            (false, "0.1", false),
            (true, "0.05", true),
        ],
    );

    // Status shows the followed wallet and the fixed size.
    let (_, body) = http_get(port, "/api/status").unwrap();
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["copy"][0]["wallets"][0], LEADER, "{body}");
    assert_eq!(status["copy"][0]["sizing"], "fixed 3000 USD", "{body}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metric_sum(
            &metrics,
            "orrery_copy_leader_position",
            &[&format!("wallet=\"{LEADER}\""), "symbol=\"ETH\""]
        ) == 10.0,
        "{metrics}"
    );
    let (ok, report) = promtool_check(&metrics);
    assert!(ok, "{report}");
    kill(&mut engine);
}

#[test]
fn a_bad_copy_block_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let section = r#"
[[agents.copy]]
name = "bad"
leader_venue = "paper"
wallets = ["0x12345"]
venue = "paper"
ratio = 0.1
fixed_usd = 100
symbols = ["BTC"]
max_position_usd = 1000
max_total_usd = 500
"#;
    let config = test_config(dir.path(), free_port(), section);
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]);
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    for key in [
        "agents.copy[0].wallets[0]",
        "agents.copy[0].ratio",
        "agents.copy[0].max_total_usd",
        "agents.copy[0].leader_venue",
    ] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
}

#[test]
fn the_example_config_is_valid() {
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/copy-trading.toml");
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
