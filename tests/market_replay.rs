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
