//! Replayed funding and open interest on a paper venue (`derivatives_csv`), end to end
//! through `orrery market`: known answers from a file, and the shipped offline example's
//! files read at the current UTC time of day.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .env_remove("ORRERY_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn market_reads_a_paper_venues_replayed_funding_and_open_interest() {
    let dir = tempfile::tempdir().unwrap();
    // Two rows a day apart: whatever the time, row one is in force and open interest is
    // on its way from 1000 to 1240 (never past either).
    let csv = dir.path().join("btc.csv");
    std::fs::write(
        &csv,
        "timestamp,funding_rate,open_interest,mark_price\n\
         2026-01-01T00:00:00Z,0.0001,1000,50000\n\
         2026-01-01T12:00:00Z,-0.00002,1240,51000\n",
    )
    .unwrap();
    let extra = format!(
        r#"
[exchanges.venues.lab]
kind = "paper"
funding_interval = "8h"
[exchanges.venues.lab.symbols.BTC]
derivatives_csv = "{}"
[exchanges.venues.lab.symbols.ETH]
"#,
        csv.display()
    );
    let config = test_config(dir.path(), free_port(), &extra);

    let f = json(&run(
        &config,
        &[
            "market",
            "funding",
            "--venue",
            "lab",
            "--symbol",
            "btc",
            "--history",
            "4",
            "--json",
        ],
    ));
    let rate = f["current"]["funding_rate"].as_str().unwrap();
    let mark = f["current"]["mark_price"].as_str().unwrap();
    assert!(
        (rate, mark) == ("0.0001", "50000") || (rate, mark) == ("-0.00002", "51000"),
        "{f}"
    );
    let history = f["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    // Settlements every 8 h on the epoch grid, oldest first.
    let times: Vec<i64> = history
        .iter()
        .map(|h| h["time_ms"].as_i64().unwrap())
        .collect();
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], 8 * 3_600_000, "{times:?}");
    }
    assert_eq!(times[0] % (8 * 3_600_000), 0);

    let oi = json(&run(
        &config,
        &[
            "market",
            "open-interest",
            "--venue",
            "lab",
            "--symbol",
            "BTC",
            "--period",
            "1h",
            "--limit",
            "3",
            "--json",
        ],
    ));
    let now: f64 = oi["current"]["open_interest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1000.0..=1240.0).contains(&now), "{oi}");
    assert_eq!(oi["history"].as_array().unwrap().len(), 3);

    // A symbol without a file, and a paper venue without any: clear errors.
    let out = run(
        &config,
        &["market", "funding", "--venue", "lab", "--symbol", "ETH"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`ETH` has no derivatives_csv"), "{err}");
    let out = run(
        &config,
        &["market", "funding", "--venue", "paper", "--symbol", "BTC"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("derivatives_csv"), "{err}");
}

/// The shipped example's files are a day of 5-minute rows looped on the UTC clock.
fn row_now(file: &str) -> (String, String) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let first: i64 = rows[0][0].parse().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let local = first + (now - first).rem_euclid(86_400_000);
    let row = rows
        .iter()
        .rev()
        .find(|r| r[0].parse::<i64>().unwrap() <= local)
        .unwrap();
    (row[1].clone(), row[3].clone())
}

#[test]
fn the_offline_example_replays_its_files_on_the_utc_clock() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/agents.toml");
    let file = "config/examples/replay/btc-derivatives.csv";
    let before = row_now(file);
    let f = json(&run(
        &config,
        &[
            "market", "funding", "--venue", "lab", "--symbol", "BTC", "--json",
        ],
    ));
    let after = row_now(file);
    let got = (
        f["current"]["funding_rate"].as_str().unwrap().to_string(),
        f["current"]["mark_price"].as_str().unwrap().to_string(),
    );
    let same = |(rate, mark): &(String, String)| {
        rate.parse::<rust_decimal::Decimal>().unwrap()
            == got.0.parse::<rust_decimal::Decimal>().unwrap()
            && mark.parse::<rust_decimal::Decimal>().unwrap()
                == got.1.parse::<rust_decimal::Decimal>().unwrap()
    };
    assert!(same(&before) || same(&after), "{got:?} vs {before:?}");
}

/// The shipped offline example end to end through the binary: its funding and
/// open-interest agents read the `lab` paper venue's replay and publish signals. The
/// thresholds are lowered so every reading is extreme and every window a crossing,
/// whatever the time of day the test runs at.
#[test]
fn the_offline_example_publishes_funding_and_open_interest_signals() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/agents.toml");
    let data = data_dir(dir.path()).display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.as_str()),
        ("ORRERY__TELEMETRY__LISTEN", listen.as_str()),
        ("ORRERY__AGENTS__FUNDING__0__INITIAL_DELAY", "100ms"),
        ("ORRERY__AGENTS__FUNDING__0__ANNUALIZED_PCT", "0.0001"),
        ("ORRERY__AGENTS__OPEN_INTEREST__0__CHANGE_PCT", "0.000001"),
        ("ORRERY__AGENTS__PIPELINE__0__INITIAL_DELAY", "1day"),
    ];
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    let signals = |kind: &str| -> Option<Vec<Value>> {
        let (code, body) = http_get(port, &format!("/api/signals?kind={kind}"))?;
        (code == 200).then_some(())?;
        serde_json::from_str::<Vec<Value>>(&body).ok()
    };
    let funding = wait_for(
        std::time::Duration::from_secs(60),
        "a funding signal for BTC and ETH",
        || signals("funding").filter(|s| s.len() >= 2),
    );
    for s in &funding {
        assert_eq!(s["source"], "funding-watch", "{s}");
        let rate: f64 = s["value"].as_str().unwrap().parse().unwrap();
        // Against the paying crowd: crowded longs (rate > 0) lean short.
        let expected = if rate > 0.0 { "short" } else { "long" };
        assert_eq!(s["direction"], expected, "{s}");
        assert!(s["evidence"].as_str().unwrap().contains("lab"), "{s}");
    }
    let oi = wait_for(
        std::time::Duration::from_secs(60),
        "open-interest signals",
        || signals("open_interest").filter(|s| !s.is_empty()),
    );
    assert!(oi.iter().all(|s| s["source"] == "oi-watch"), "{oi:?}");

    let out = Command::new(BIN)
        .args(["agents", "--json", "--config", config.to_str().unwrap()])
        .envs(env)
        .env_remove("ORRERY_CONFIG")
        .output()
        .unwrap();
    let agents = json(&out);
    let agent = |name: &str| {
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{agents}"))
            .clone()
    };
    for (name, kind) in [("funding-watch", "funding"), ("oi-watch", "open_interest")] {
        let a = agent(name);
        assert_eq!(a["kind"], kind, "{a}");
        assert!(a["runs"].as_u64().unwrap() >= 1, "{a}");
        assert_eq!(a["failures"], 0, "{a}");
    }
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, std::time::Duration::from_secs(60)).success());
}
