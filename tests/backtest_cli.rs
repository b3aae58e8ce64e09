//! `orrery backtest` end to end through the real binary: one backtest (table, JSON, HTML
//! report rendered in headless Chromium), refused input, and sweeps with walk-forward.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orrery_actors::backtest::report::{format_number, format_stat, STAT_LABELS};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_orrery");

fn goog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("actors/tests/data/GOOG.csv")
}

fn orrery(args: &[&str]) -> Output {
    // A scratch working directory: the command must not need config/ or a data dir.
    let dir = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .arg("backtest")
        .args(args)
        .current_dir(dir.path())
        .env_remove("ORRERY_CONFIG")
        .output()
        .unwrap()
}

fn ok_json(args: &[&str]) -> (Value, String) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = orrery(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}")),
        stderr,
    )
}

/// The keys issue 14 names for `stats`, in its order.
const STAT_KEYS: [&str; 30] = [
    "start",
    "end",
    "duration_days",
    "exposure_time_pct",
    "equity_final",
    "equity_peak",
    "commissions",
    "return_pct",
    "buy_hold_return_pct",
    "return_ann_pct",
    "volatility_ann_pct",
    "cagr_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown_pct",
    "avg_drawdown_pct",
    "max_drawdown_duration_days",
    "avg_drawdown_duration_days",
    "num_trades",
    "win_rate_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "avg_trade_pct",
    "max_trade_duration_days",
    "avg_trade_duration_days",
    "profit_factor",
    "expectancy_pct",
    "sqn",
    "kelly_criterion",
];

#[test]
fn json_of_the_goog_sma_cross_has_every_stat_trade_and_an_equity_curve() {
    let g = goog();
    let (v, stderr) = ok_json(&[
        "--strategy",
        "sma_cross",
        "--data",
        g.to_str().unwrap(),
        "--param",
        "fast=10",
        "--param",
        "slow=20",
        "--commission",
        "0.002",
    ]);
    let stats = v["stats"].as_object().unwrap();
    let mut keys: Vec<&str> = stats.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = STAT_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want);
    // backtesting.py's published SmaCross on GOOG: 93 trades, 462.64 %, -33.93 %, 52.69 %.
    assert_eq!(stats["num_trades"], 93);
    let r2 = |k: &str| (stats[k].as_f64().unwrap() * 100.0).round() / 100.0;
    assert_eq!(r2("return_pct"), 462.64);
    assert_eq!(r2("max_drawdown_pct"), -33.93);
    assert_eq!(r2("win_rate_pct"), 52.69);
    assert_eq!(v["trades"].as_array().unwrap().len(), 93);
    assert_eq!(v["strategy"], "sma_cross");
    assert_eq!(v["params"]["fast"], 10.0);
    assert_eq!(v["bars"], 2148);
    assert_eq!(v["config"]["commission"], 0.002);
    // 2148 bars > 2000 points: the value at the end of each of 2000 groups, the last bar last.
    let eq = &v["equity"];
    assert_eq!(eq["bars"], 2148);
    assert_eq!(eq["points"], 2000);
    assert_eq!(eq["equity"].as_array().unwrap().len(), 2000);
    assert_eq!(eq["time_ms"].as_array().unwrap().len(), 2000);
    assert_eq!(
        eq["equity"].as_array().unwrap().last().unwrap(),
        &stats["equity_final"]
    );
    assert_eq!(
        eq["time_ms"].as_array().unwrap().last().unwrap(),
        &serde_json::json!(1_362_096_000_000i64) // 2013-03-01, GOOG.csv's last row
    );
    assert!(
        stderr.contains("2148 bars parsed") && stderr.contains("bars/s"),
        "{stderr}"
    );

    // --equity-points 0: every bar.
    let (all, _) = ok_json(&[
        "--strategy",
        "sma_cross",
        "--data",
        g.to_str().unwrap(),
        "--equity-points",
        "0",
    ]);
    assert_eq!(all["equity"]["equity"].as_array().unwrap().len(), 2148);
}

#[test]
fn options_reach_the_backtester() {
    let g = goog();
    let base = ["--strategy", "sma_cross", "--data", g.to_str().unwrap()];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        ok_json(&a).0
    };
    let plain = run(&[]);
    let c = run(&[
        "--fill",
        "close",
        "--fractional",
        "--finalize-trades",
        "--spread",
        "0.001",
        "--leverage",
        "2",
        "--cash",
        "5000",
        "--commission-fixed",
        "1",
    ]);
    let cfg = &c["config"];
    assert_eq!(cfg["fill"], "close");
    assert_eq!(cfg["fractional_unit"], 1e-8);
    assert_eq!(cfg["finalize_trades"], true);
    assert_eq!(cfg["spread"], 0.001);
    assert_eq!(cfg["margin"], 0.5);
    assert_eq!(cfg["cash"], 5000.0);
    assert_eq!(cfg["commission_fixed"], 1.0);
    assert!(c["open_trades"].as_array().unwrap().is_empty());
    assert_eq!(plain["open_trades"].as_array().unwrap().len(), 1);
    assert_ne!(c["stats"]["equity_final"], plain["stats"]["equity_final"]);
    let m = run(&["--margin", "0.25"]);
    assert_eq!(m["config"]["margin"], 0.25);
}

#[test]
fn human_output_is_an_aligned_statistics_table_then_a_trade_summary() {
    let g = goog();
    let out = orrery(&[
        "--strategy",
        "sma_cross",
        "--data",
        g.to_str().unwrap(),
        "--commission",
        "0.002",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let table: Vec<&str> = STAT_LABELS
        .iter()
        .map(|(_, label)| {
            *lines
                .iter()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no line for {label} in\n{text}"))
        })
        .collect();
    // Aligned: every value ends in the same column.
    assert!(table.iter().all(|l| l.len() == table[0].len()), "{text}");
    assert!(text.contains("# Trades"));
    let trades_line = lines.iter().find(|l| l.starts_with("# Trades")).unwrap();
    assert!(trades_line.ends_with(" 93"), "{trades_line}");
    let ret = lines.iter().find(|l| l.starts_with("Return [%]")).unwrap();
    assert!(ret.trim_end().ends_with("462.6352"), "{ret}");
    assert!(
        text.contains("Trades: 93 closed") && text.contains("1 open"),
        "{text}"
    );
    assert!(text.contains("Last 5 trade(s):"), "{text}");
}

#[test]
fn a_declarative_spec_backtests_like_the_built_in_it_describes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sma.json");
    std::fs::write(
        &spec,
        r#"{"name": "sma_spec",
            "indicators": {"fast": {"sma": {"period": 10}}, "slow": {"sma": {"period": 20}}},
            "long": {"entry": {"crosses_above": ["fast", "slow"]}, "exit": {"crosses_below": ["fast", "slow"]}},
            "short": {"entry": {"crosses_below": ["fast", "slow"]}, "exit": {"crosses_above": ["fast", "slow"]}}}"#,
    )
    .unwrap();
    let g = goog();
    let (s, _) = ok_json(&[
        "--spec",
        spec.to_str().unwrap(),
        "--data",
        g.to_str().unwrap(),
        "--commission",
        "0.002",
    ]);
    let (b, _) = ok_json(&[
        "--strategy",
        "sma_cross",
        "--data",
        g.to_str().unwrap(),
        "--commission",
        "0.002",
    ]);
    assert_eq!(s["strategy"], "sma_spec");
    assert_eq!(s["spec"]["name"], "sma_spec");
    assert_eq!(s["stats"], b["stats"]);
    assert_eq!(s["trades"], b["trades"]);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn refused_input_names_the_problem_exits_2_and_prints_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let g = goog();
    let g = g.to_str().unwrap();
    let bad_csv = write(
        dir.path(),
        "bad.csv",
        "date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n2024-01-02,1,x,0.5,1.5\n",
    );
    let bad_spec = write(
        dir.path(),
        "bad.json",
        r#"{"name": "s", "indicators": {"fast": {"sma": {"period": 0}}}}"#,
    );
    let missing = dir.path().join("missing.csv");
    let two = format!("{g},{g}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                missing.to_str().unwrap(),
            ],
            "missing.csv",
        ),
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                bad_csv.to_str().unwrap(),
            ],
            "line 3 column `high`: `x` is not a finite number",
        ),
        (
            vec!["--strategy", "smacross", "--data", g],
            "unknown strategy 'smacross'; built-ins: sma_cross",
        ),
        (
            vec!["--strategy", "sma_cross", "--data", g, "--param", "fats=3"],
            "unknown parameter 'fats'; this strategy takes: fast, slow",
        ),
        (
            vec!["--strategy", "sma_cross", "--data", g, "--param", "fast=0"],
            "parameter 'fast' = '0'",
        ),
        (
            vec!["--strategy", "ema_cross", "--data", g, "--param", "fast=30"],
            "fast < slow",
        ),
        (
            vec!["--strategy", "sma_cross", "--data", g, "--commission", "1"],
            "`commission` = 1",
        ),
        (
            vec!["--strategy", "sma_cross", "--data", g, "--leverage", "0.5"],
            "--leverage 0.5 is invalid",
        ),
        (
            vec!["--strategy", "sma_cross", "--data", g, "--fill", "open"],
            "invalid value 'open' for '--fill",
        ),
        (
            vec!["--spec", bad_spec.to_str().unwrap(), "--data", g],
            "/indicators/fast/sma/period",
        ),
        (
            vec!["--strategy", "sma_cross", "--data", &two],
            "several files need --sweep",
        ),
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                g,
                "--sweep",
                "fast=9..3",
            ],
            "--sweep 'fast=9..3': the end is below the start",
        ),
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                g,
                "--sweep",
                "fast=1..3",
                "--maximize",
                "sharpe",
            ],
            "unknown statistic 'sharpe' to maximize",
        ),
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                g,
                "--sweep",
                "fast=1..3",
                "--constraint",
                "fast < slw",
            ],
            "'slw' is not a parameter of this strategy",
        ),
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                g,
                "--sweep",
                "fast=1..3",
                "--threads",
                "0",
            ],
            "--threads must be at least 1",
        ),
        (
            vec![
                "--strategy",
                "sma_cross",
                "--data",
                g,
                "--constraint",
                "fast<slow",
            ],
            "--sweep",
        ),
    ];
    for (args, says) in cases {
        let out = orrery(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(
            stderr.contains(says),
            "{args:?}: wanted {says:?} in {stderr}"
        );
    }
}

#[test]
fn the_html_report_is_self_contained_with_every_stat_and_trade_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let g = goog();
    let (v, stderr) = ok_json(&[
        "--strategy",
        "sma_cross",
        "--data",
        g.to_str().unwrap(),
        "--commission",
        "0.002",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(stderr.contains("report written to"), "{stderr}");
    let html = std::fs::read_to_string(&report).unwrap();
    // Nothing outside the file: no URL at all, no script, no external resource.
    for banned in [
        "http://", "https://", "<script", "src=", "href=", "url(", "@import",
    ] {
        assert!(!html.contains(banned), "the report contains {banned}");
    }
    for (key, label) in STAT_LABELS {
        let row = html
            .lines()
            .find(|l| l.contains(&format!("data-key=\"{key}\"")))
            .unwrap_or_else(|| panic!("no row for {key}"));
        let value = format_stat(&v["stats"][key]);
        assert!(
            row.contains(&format!("<td>{value}</td>")),
            "{key}: {value} not in {row}"
        );
        assert!(row.contains(&label.replace('&', "&amp;")), "{row}");
    }
    let rows: Vec<&str> = html
        .lines()
        .filter(|l| l.starts_with("<tr class=\"trade\">"))
        .collect();
    let trades: Vec<&Value> = v["trades"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["open_trades"].as_array().unwrap())
        .collect();
    assert_eq!(rows.len(), 94);
    assert_eq!(rows.len(), trades.len());
    for (row, t) in rows.iter().zip(&trades) {
        for k in ["entry_price", "exit_price", "pnl", "return_pct"] {
            let want = format_number(t[k].as_f64().unwrap());
            assert!(
                row.contains(&format!(">{want}<")),
                "{k} {want} not in {row}"
            );
        }
    }
    assert!(html.contains("id=\"equity-chart\"") && html.contains("id=\"drawdown-chart\""));

    if let Some(browser) = common::chromium("the report was checked as text only") {
        render(&browser, &report);
    }
}

/// Renders the report headless: a screenshot under target/test-artifacts/, and the DOM as
/// the browser parsed it, whose SVG paths must carry drawing commands.
fn render(browser: &Path, report: &Path) {
    let artifacts = common::test_artifacts();
    let shot = artifacts.join("backtest-report.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", report.display());
    let base = |extra: &[&str]| {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--window-size=1200,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let out = base(&[&format!("--screenshot={}", shot.display())]);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let dom = base(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for chart in ["equity-chart", "drawdown-chart"] {
        let at = dom
            .find(&format!("id=\"{chart}\""))
            .unwrap_or_else(|| panic!("{chart} not in the rendered DOM"));
        let path = &dom[at..][dom[at..].find("<path d=\"").unwrap() + 9..];
        let d = &path[..path.find('"').unwrap()];
        assert!(
            d.starts_with('M') && d.matches('L').count() > 100,
            "{chart}: {d:.80}"
        );
    }
}

/// Daily bars of a deterministic wavy walk, as a CSV with ISO dates.
fn csv(n: usize, seed: f64) -> String {
    let mut s = String::from("date,open,high,low,close,volume\n");
    let mut prev = 100.0f64;
    let day0 = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    for i in 0..n {
        let t = i as f64;
        let close = 100.0 + 20.0 * (t / 15.0 + seed).sin() + 7.0 * (t / 4.3).sin() + t * 0.02;
        let day = day0 + chrono::Duration::days(i as i64);
        s += &format!(
            "{day},{prev:.4},{:.4},{:.4},{close:.4},1000\n",
            prev.max(close) + 1.0,
            prev.min(close) - 1.0
        );
        prev = close;
    }
    s
}

#[test]
fn a_sweep_ranks_every_set_over_several_files_and_walks_forward() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", &csv(600, 0.0));
    let b = write(dir.path(), "b.csv", &csv(600, 1.7));
    let data = format!("{},{}", a.display(), b.display());
    let args = [
        "--strategy",
        "sma_cross",
        "--data",
        &data,
        "--sweep",
        "fast=2..10:2",
        "--sweep",
        "slow=12..30:6",
        "--constraint",
        "slow >= 2 * fast + 10",
        "--maximize",
        "return_pct",
        "--walk-forward",
        "2",
        "--threads",
        "2",
        "--top",
        "7",
    ];
    let (v, stderr) = ok_json(&args);
    // 5 x 4 = 20 sets; slow >= 2 fast + 10 keeps 3 + 3 + 2 + 1 + 1 = 10.
    assert_eq!(v["grid"]["total"], 20);
    assert_eq!(v["grid"]["rejected_by_constraint"], 10);
    assert_eq!(v["grid"]["run"], 10);
    assert_eq!(v["maximize"], "return_pct");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    let metrics: Vec<f64> = results
        .iter()
        .map(|r| r["metric"].as_f64().unwrap())
        .collect();
    assert!(metrics.windows(2).all(|w| w[0] >= w[1]), "{metrics:?}");
    for r in results {
        let (fast, slow) = (
            r["params"]["fast"].as_f64().unwrap(),
            r["params"]["slow"].as_f64().unwrap(),
        );
        assert!(slow >= 2.0 * fast + 10.0, "{r}");
        let per = r["per_data"].as_array().unwrap();
        assert_eq!(per.len(), 2);
        let mean = (per[0]["stats"]["return_pct"].as_f64().unwrap()
            + per[1]["stats"]["return_pct"].as_f64().unwrap())
            / 2.0;
        assert!((r["metric"].as_f64().unwrap() - mean).abs() < 1e-9, "{r}");
    }
    // The best set's numbers are what a single backtest of it prints.
    let best = &results[0];
    let (bf, bs) = (
        best["params"]["fast"].as_f64().unwrap(),
        best["params"]["slow"].as_f64().unwrap(),
    );
    let (single, _) = ok_json(&[
        "--strategy",
        "sma_cross",
        "--data",
        a.to_str().unwrap(),
        "--param",
        &format!("fast={bf}"),
        "--param",
        &format!("slow={bs}"),
    ]);
    assert_eq!(single["stats"], best["per_data"][0]["stats"]);

    let wf = &v["walk_forward"];
    let folds = wf["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 2);
    // 600 bars, 3 segments: fold 1 learns on 0..200 and is tested on 200..400; fold 2 on
    // 0..400 and 400..600.
    for (f, (is_end, oos)) in folds.iter().zip([(200, (200, 400)), (400, (400, 600))]) {
        for span in f["in_sample"].as_array().unwrap() {
            assert_eq!(
                (span["start"].as_u64(), span["end"].as_u64()),
                (Some(0), Some(is_end))
            );
        }
        for span in f["out_of_sample"].as_array().unwrap() {
            assert_eq!(
                (
                    span["start"].as_u64().unwrap(),
                    span["end"].as_u64().unwrap()
                ),
                oos
            );
        }
        assert_eq!(f["out_of_sample_stats"].as_array().unwrap().len(), 2);
        // Out-of-sample statistics start one bar before the segment (buy & hold's base).
        let start = f["out_of_sample_stats"][0]["start"].as_str().unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
            + chrono::Duration::days(oos.0 as i64 - 1);
        assert!(start.starts_with(&day.to_string()), "{start} vs {day}");
    }
    let (is, oos) = (
        wf["in_sample_metric"].as_f64().unwrap(),
        wf["out_of_sample_metric"].as_f64().unwrap(),
    );
    assert_eq!(wf["overfit"], oos < is - 0.5 * is.abs());
    assert!(stderr.contains("on 2 thread(s)"), "{stderr}");

    // The same sweep as tables.
    let out = orrery(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("20 set(s) in the grid, 10 rejected by --constraint"),
        "{text}"
    );
    assert!(text.contains("rank    return_pct  params"), "{text}");
    assert!(text.contains("walk-forward, 2 fold(s)"), "{text}");
    let verdict = if wf["overfit"] == true {
        "OVERFIT: the out-of-sample return_pct keeps less than 50 %"
    } else {
        "holds out of sample"
    };
    assert!(text.contains(verdict), "{text}");
    let first_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("1  "))
        .unwrap();
    assert!(
        first_row.contains(&format!("fast={bf} slow={bs}")),
        "{first_row}"
    );
}
