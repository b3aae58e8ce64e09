use super::*;
use crate::strategies::builtin::find;

/// Daily bars of a deterministic wavy walk: crossovers of every period happen.
fn bars(n: usize, seed: f64) -> Bars {
    let mut b = Bars::default();
    let mut prev = 100.0;
    for i in 0..n {
        let t = i as f64;
        let close = 100.0 + 20.0 * (t / 15.0 + seed).sin() + 7.0 * (t / 4.3).sin() + t * 0.02;
        b.time_ms.push(1_600_000_000_000 + i as i64 * 86_400_000);
        b.open.push(prev);
        b.high.push(prev.max(close) + 1.0);
        b.low.push(prev.min(close) - 1.0);
        b.close.push(close);
        b.volume.push(1.0);
        prev = close;
    }
    b
}

fn no_progress() {}

#[test]
fn ranges_are_inclusive_with_a_step_and_refuse_nonsense() {
    let r = ParamRange::parse("fast=5..50:5").unwrap();
    assert_eq!(r.name, "fast");
    assert_eq!(r.values, [5., 10., 15., 20., 25., 30., 35., 40., 45., 50.]);
    assert_eq!(
        ParamRange::parse("slow=20..200:10").unwrap().values.len(),
        19
    );
    assert_eq!(
        ParamRange::parse("k=0.1..0.5:0.1").unwrap().values,
        [0.1, 0.2, 0.3, 0.4, 0.5]
    );
    assert_eq!(ParamRange::parse("p=3..5").unwrap().values, [3., 4., 5.]);
    assert_eq!(ParamRange::parse("p=7,3,7").unwrap().values, [7., 3.]);
    assert_eq!(ParamRange::parse("p=9").unwrap().values, [9.]);
    for (bad, says) in [
        ("fast", "no '='"),
        ("fast=10..5", "below the start"),
        ("fast=1..5:0", "step must be > 0"),
        ("fast=a..5", "'a' is not a number"),
        ("=1..2", "no parameter name"),
    ] {
        let e = ParamRange::parse(bad).unwrap_err().to_string();
        assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
    }
    assert!(matches!(
        ParamRange::parse("fast=1..1e12:1"),
        Err(SweepError::TooLarge { .. })
    ));
}

#[test]
fn grid_expansion_and_constraint_filtering_count_every_set() {
    let sma = find("sma_cross").unwrap();
    let ranges = [
        ParamRange::parse("fast=5..50:5").unwrap(),
        ParamRange::parse("slow=20..200:10").unwrap(),
    ];
    let all = plan(sma, &BTreeMap::new(), &ranges, &[]).unwrap();
    assert_eq!((all.total, all.sets.len()), (190, 190));
    // Grid order: the last range varies fastest.
    assert_eq!(all.sets[0].to_string(), "fast=5 slow=20");
    assert_eq!(all.sets[1].to_string(), "fast=5 slow=30");

    let c = Constraint::parse("fast<slow", &["fast", "slow"]).unwrap();
    let kept = plan(sma, &BTreeMap::new(), &ranges, &[c]).unwrap();
    // slow=20: fast 5,10,15; 30: 5 values; 40: 7; 50: 9; 60..200 (15 values): all 10.
    assert_eq!(kept.sets.len(), 3 + 5 + 7 + 9 + 15 * 10);
    assert_eq!(kept.rejected_by_constraint, 190 - 174);
    assert!(kept.sets.iter().all(|p| p.get("fast") < p.get("slow")));

    // The strategy's own constraint (ema_cross: fast < slow) rejects sets too, counted apart.
    let ema = find("ema_cross").unwrap();
    let ranges = [
        ParamRange::parse("fast=10..30:10").unwrap(),
        ParamRange::parse("slow=20,30").unwrap(),
    ];
    let p = plan(ema, &BTreeMap::new(), &ranges, &[]).unwrap();
    assert_eq!((p.total, p.sets.len(), p.rejected_by_strategy), (6, 3, 3));

    // Only one swept: constraints see the default of the other (slow = 20).
    let one = [ParamRange::parse("fast=5..40:5").unwrap()];
    let c = Constraint::parse("fast < slow", &["fast", "slow"]).unwrap();
    assert_eq!(
        plan(sma, &BTreeMap::new(), &one, &[c]).unwrap().sets.len(),
        3
    );
}

#[test]
fn plans_refuse_unknown_repeated_and_out_of_range_parameters() {
    let sma = find("sma_cross").unwrap();
    let r = |s: &str| ParamRange::parse(s).unwrap();
    let e = plan(sma, &BTreeMap::new(), &[r("fsat=1..3")], &[]).unwrap_err();
    assert!(
        e.to_string().contains("'fsat'") && e.to_string().contains("fast, slow"),
        "{e}"
    );
    let fixed = BTreeMap::from([("fast".to_string(), 10.0)]);
    assert!(matches!(
        plan(sma, &fixed, &[r("fast=1..3")], &[]),
        Err(SweepError::SweptAndFixed { .. })
    ));
    assert!(matches!(
        plan(
            sma,
            &BTreeMap::new(),
            &[r("fast=1..3"), r("fast=4..5")],
            &[]
        ),
        Err(SweepError::SweptTwice { .. })
    ));
    let e = plan(sma, &BTreeMap::new(), &[r("fast=0..3")], &[]).unwrap_err();
    assert!(e.to_string().contains("'fast' = '0'"), "{e}");
    let c = Constraint::parse("fast > 100", &["fast", "slow"]).unwrap();
    let e = plan(sma, &BTreeMap::new(), &[r("fast=1..3")], &[c]).unwrap_err();
    assert!(
        e.to_string()
            .contains("3 set(s) in the grid, 3 rejected by --constraint"),
        "{e}"
    );
}

#[test]
fn constraints_parse_arithmetic_and_logic_and_refuse_unknown_names() {
    let known = ["fast", "slow", "k"];
    let p = |fast: f64, slow: f64| {
        BTreeMap::from([
            ("fast".to_string(), fast),
            ("slow".to_string(), slow),
            ("k".to_string(), 2.0),
        ])
    };
    let c = Constraint::parse("slow - fast >= 10 and fast * k <= slow", &known).unwrap();
    assert!(c.holds(&p(10.0, 20.0)));
    assert!(!c.holds(&p(10.0, 19.0)));
    assert!(!c.holds(&p(15.0, 25.0))); // 15 * 2 > 25
    let c = Constraint::parse("not (fast > slow) or fast = 50", &known).unwrap();
    assert!(c.holds(&p(5.0, 10.0)) && c.holds(&p(50.0, 10.0)) && !c.holds(&p(40.0, 10.0)));
    let c = Constraint::parse("slow / 2 > fast || -fast < -100", &known).unwrap();
    assert!(c.holds(&p(12.0, 25.0)) && !c.holds(&p(13.0, 25.0)));
    assert!(c.holds(&p(101.0, 25.0)));
    for (bad, says) in [
        (
            "fast < slwo",
            "'slwo' is not a parameter of this strategy; its parameters: fast, slow, k",
        ),
        ("fast + slow", "must be a comparison"),
        ("fast < slow and 3", "'and' needs a comparison"),
        ("(fast < slow", "'(' is not closed"),
        ("fast < slow slow", "unexpected text"),
        ("fast $ slow", "unexpected character '$'"),
        ("fast <", "ends too early"),
    ] {
        let e = Constraint::parse(bad, &known).unwrap_err().to_string();
        assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
    }
}

fn row(score: f64, fast: f64) -> Row {
    let sma = find("sma_cross").unwrap();
    Row {
        params: sma
            .resolve(&BTreeMap::from([("fast".to_string(), fast)]))
            .unwrap(),
        score,
        stats: Vec::new(),
    }
}

#[test]
fn ranking_is_best_first_with_nan_last_and_stable_ties() {
    let mut rows = vec![
        row(f64::NAN, 1.0),
        row(0.5, 2.0),
        row(2.0, 3.0),
        row(-1.0, 4.0),
        row(0.5, 5.0),
    ];
    rank(&mut rows);
    let fast: Vec<f64> = rows.iter().map(|r| r.params.get("fast")).collect();
    assert_eq!(fast, [3.0, 2.0, 5.0, 4.0, 1.0]);
}

#[test]
fn metrics_cover_every_numeric_stat_key() {
    let sma = find("sma_cross").unwrap();
    let mut s = sma.build(&sma.resolve(&BTreeMap::new()).unwrap()).unwrap();
    let r = run(&bars(300, 0.0), s.as_mut(), &BacktestConfig::default()).unwrap();
    let json = serde_json::to_value(&r.stats).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !["start", "end"].contains(k))
        .collect();
    assert_eq!(keys.len(), METRICS.len());
    for k in keys {
        let m = Metric::parse(k).unwrap();
        match json[k].as_f64() {
            Some(v) => assert_eq!(m.of(&r.stats), v, "{k}"),
            None => assert!(m.of(&r.stats).is_nan(), "{k}"),
        }
    }
    let e = Metric::parse("sharpe").unwrap_err().to_string();
    assert!(e.contains("'sharpe'") && e.contains("sharpe_ratio"), "{e}");
}

#[test]
fn every_set_runs_on_every_data_set_and_scores_by_the_mean() {
    let sma = find("sma_cross").unwrap();
    let p = plan(
        sma,
        &BTreeMap::new(),
        &[
            ParamRange::parse("fast=3..9:3").unwrap(),
            ParamRange::parse("slow=12,20").unwrap(),
        ],
        &[],
    )
    .unwrap();
    let data = [
        Dataset {
            name: "a".into(),
            bars: bars(400, 0.0),
        },
        Dataset {
            name: "b".into(),
            bars: bars(300, 1.3),
        },
    ];
    let ran = std::sync::atomic::AtomicUsize::new(0);
    let metric = Metric::parse("return_pct").unwrap();
    let rows = evaluate(
        sma,
        &p.sets,
        &data,
        &BacktestConfig::default(),
        metric,
        &|| {
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .unwrap();
    assert_eq!(ran.into_inner(), 6 * 2);
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let mut alone = sma.build(&row.params).unwrap();
        let b = run(&data[1].bars, alone.as_mut(), &BacktestConfig::default()).unwrap();
        assert_eq!(row.stats[1], b.stats, "{}", row.params);
        let want = (row.stats[0].return_pct + row.stats[1].return_pct) / 2.0;
        assert_eq!(row.score, want);
    }
}

#[test]
fn fold_bounds_split_bars_into_consecutive_segments() {
    let f = fold_bounds(10, 4);
    let got: Vec<_> = f
        .iter()
        .map(|b| (b.in_sample.clone(), b.out_of_sample.clone()))
        .collect();
    assert_eq!(
        got,
        [(0..2, 2..4), (0..4, 4..6), (0..6, 6..8), (0..8, 8..10)]
    );
    let f = fold_bounds(1001, 3);
    assert_eq!(f[0].out_of_sample, 250..500);
    assert_eq!(f[2].out_of_sample, 750..1001);
    // Out-of-sample segments tile the bars after the first segment, never overlapping.
    for w in f.windows(2) {
        assert_eq!(w[0].out_of_sample.end, w[1].out_of_sample.start);
        assert_eq!(w[1].in_sample.end, w[1].out_of_sample.start);
    }
}

fn sma_plan() -> Plan {
    plan(
        find("sma_cross").unwrap(),
        &BTreeMap::new(),
        &[
            ParamRange::parse("fast=2..10:2").unwrap(),
            ParamRange::parse("slow=12..30:6").unwrap(),
        ],
        &[],
    )
    .unwrap()
}

#[test]
fn walk_forward_never_looks_at_the_out_of_sample_bars() {
    let plan = sma_plan();
    let metric = Metric::parse("return_pct").unwrap();
    let config = BacktestConfig::default();
    let data = vec![Dataset {
        name: "a".into(),
        bars: bars(900, 0.0),
    }];
    let wf = walk_forward(&plan, &data, 2, &config, metric, &no_progress).unwrap();
    assert_eq!(wf.folds.len(), 2);
    assert_eq!(wf.folds[1].out_of_sample[0].start, 600);

    // Rewrite the last segment (fold 2's out-of-sample bars) into a different market.
    let mut changed = data.clone();
    let b = &mut changed[0].bars;
    for i in 600..900 {
        let c = 300.0 - b.close[i];
        b.close[i] = c;
        b.open[i] = c;
        b.high[i] = c + 1.0;
        b.low[i] = c - 1.0;
    }
    let wf2 = walk_forward(&plan, &changed, 2, &config, metric, &no_progress).unwrap();
    // Fold 2's choice and in-sample score are those of bars 0..600 alone ...
    assert_eq!(wf2.folds[1].params, wf.folds[1].params);
    assert_eq!(wf2.folds[1].in_sample_metric, wf.folds[1].in_sample_metric);
    // ... and it is the best of an optimisation over exactly those bars.
    let best = optimise(
        &plan,
        &[Dataset {
            name: "a".into(),
            bars: data[0].bars.slice(0..600),
        }],
        &config,
        metric,
        &no_progress,
    )
    .unwrap();
    assert_eq!(best.params, wf.folds[1].params);
    // The out-of-sample result does see the rewritten bars.
    assert_ne!(
        wf2.folds[1].out_of_sample_metric,
        wf.folds[1].out_of_sample_metric
    );
    // Fold 1 is untouched by the change.
    assert_eq!(wf2.folds[0].params, wf.folds[0].params);
    assert_eq!(
        wf2.folds[0].out_of_sample_stats,
        wf.folds[0].out_of_sample_stats
    );
}

#[test]
fn out_of_sample_trades_from_its_first_bar_on_warm_indicators() {
    let sma = find("sma_cross").unwrap();
    let params = sma
        .resolve(&BTreeMap::from([
            ("fast".to_string(), 3.0),
            ("slow".to_string(), 12.0),
        ]))
        .unwrap();
    let d = Dataset {
        name: "a".into(),
        bars: bars(600, 0.0),
    };
    let config = BacktestConfig::default();
    let stats = out_of_sample(sma, &params, &d, 300..600, &config).unwrap();
    // Statistics start at the bar before the segment (buy & hold's base), not at the
    // warm-up bars before it.
    let t = |i: usize| DateTimeMs(d.bars.time_ms[i]);
    assert_eq!(t(299), DateTimeMs(stats.start.timestamp_millis()));
    assert_eq!(t(599), DateTimeMs(stats.end.timestamp_millis()));
    // The same trades as the full backtest makes on those bars: the indicators are warm
    // at bar 300, so the strategy acts exactly as it does there. A full run can hold a
    // position into bar 300; the segment starts flat, so compare from the first trade
    // the full run opened inside the segment.
    let mut full = sma.build(&params).unwrap();
    let whole = run(&d.bars, full.as_mut(), &config).unwrap();
    let mut seg = sma.build(&params).unwrap();
    // SmaCross(3, 12) warms up over 13 bars and first acts on bar 12 of what it is fed.
    let lead = 12;
    assert_eq!(seg.warmup_bars(), lead + 1);
    let piece = run(&d.bars.slice(300 - lead..600), seg.as_mut(), &config).unwrap();
    assert_eq!(piece.first_trading_bar, lead);
    let first_inside = whole
        .trades
        .iter()
        .find(|t| t.entry_bar >= 300)
        .map(|t| t.entry_time_ms)
        .unwrap();
    assert!(piece.trades.iter().any(|t| t.entry_time_ms == first_inside));
    assert!(piece.trades.iter().all(|t| t.entry_bar >= lead));
    assert_eq!(stats.num_trades, piece.trades.len());
    assert_eq!(stats.equity_final, piece.stats.equity_final);
}

#[derive(Debug, PartialEq)]
struct DateTimeMs(i64);

#[test]
fn overfitting_is_flagged_when_out_of_sample_loses_half_the_in_sample_metric() {
    let plan = sma_plan();
    let metric = Metric::parse("return_pct").unwrap();
    let data = vec![Dataset {
        name: "a".into(),
        bars: bars(900, 0.0),
    }];
    let wf = walk_forward(
        &plan,
        &data,
        2,
        &BacktestConfig::default(),
        metric,
        &no_progress,
    )
    .unwrap();
    let (is, oos) = (wf.in_sample_metric, wf.out_of_sample_metric);
    assert_eq!(
        is,
        (wf.folds[0].in_sample_metric + wf.folds[1].in_sample_metric) / 2.0
    );
    assert_eq!(wf.overfit, overfit(is, oos), "is {is} oos {oos}");
    assert!(overfit(2.0, 0.9) && !overfit(2.0, 1.1) && !overfit(2.0, 3.0));
    assert!(overfit(-1.0, -1.6) && !overfit(-1.0, -1.4));
    assert!(overfit(1.0, f64::NAN) && !overfit(f64::NAN, 1.0));
    let growth: f64 = wf
        .folds
        .iter()
        .map(|f| 1.0 + f.out_of_sample_stats[0].return_pct / 100.0)
        .product();
    assert!((wf.out_of_sample_return_pct - (growth - 1.0) * 100.0).abs() < 1e-9);
    assert!(matches!(
        walk_forward(
            &plan,
            &data,
            0,
            &BacktestConfig::default(),
            metric,
            &no_progress
        ),
        Err(SweepError::NoFolds)
    ));
    let tiny = vec![Dataset {
        name: "t".into(),
        bars: bars(5, 0.0),
    }];
    let e = walk_forward(
        &plan,
        &tiny,
        4,
        &BacktestConfig::default(),
        metric,
        &no_progress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("'t' has 5 bars"), "{e}");
}
