//! Parameter sweep scaling: 200 `sma_cross` parameter sets (fast 5..50:5 x slow
//! 20..210:10, 10 x 20) on 100 000 generated one-minute bars, in a rayon pool of 1 thread
//! and of 2 threads (target: >= 1.8x from 1 to 2 cores).
//!
//! Run: `cargo bench -p orrery-actors --bench sweep`
//! Criterion reports the time per sweep for each pool; the speed-up is the ratio. On a
//! machine shared with other work, run it when quiet: a busy second core shows up as a
//! lower speed-up, not as a slower sweep code path.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use orrery_actors::backtest::sweep::{self, Dataset, Metric, ParamRange};
use orrery_actors::backtest::{BacktestConfig, Bars};
use orrery_actors::strategies::builtin::find;

const BARS: usize = 100_000;

/// A deterministic price-like walk of one-minute bars, so runs compare.
fn bars() -> Bars {
    let mut b = Bars::default();
    let t0 = 1_600_000_000_000i64;
    let mut prev = 30_000.0;
    for i in 0..BARS {
        let t = i as f64;
        let close = 30_000.0 + 800.0 * (t * 1e-3).sin() + 40.0 * (t * 0.37).sin();
        let open = prev;
        b.time_ms.push(t0 + i as i64 * 60_000);
        b.open.push(open);
        b.high.push(open.max(close) + 5.0);
        b.low.push(open.min(close) - 5.0);
        b.close.push(close);
        b.volume.push(1.0);
        prev = close;
    }
    b
}

fn bench(c: &mut Criterion) {
    let plan = sweep::plan(
        find("sma_cross").expect("sma_cross is a built-in"),
        &BTreeMap::new(),
        &[
            ParamRange::parse("fast=5..50:5").expect("valid range"),
            ParamRange::parse("slow=20..210:10").expect("valid range"),
        ],
        &[],
    )
    .expect("a valid grid");
    assert_eq!(plan.sets.len(), 200);
    let data = [Dataset {
        name: "walk".into(),
        bars: bars(),
    }];
    let metric = Metric::parse("sharpe_ratio").expect("a stat key");
    let config = BacktestConfig::default();
    let mut g = c.benchmark_group("sweep_200_sets_100k_bars");
    g.sample_size(10);
    g.throughput(Throughput::Elements((plan.sets.len() * BARS) as u64));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        g.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    sweep::evaluate(plan.strategy, &plan.sets, &data, &config, metric, &|| {})
                        .expect("every set runs")
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
