//! Streaming indicator throughput: bars per second for SMA(20), EMA(20) and RSI(14) fed one
//! close at a time over 1 000 000 bars, as a live strategy's `on_bar` would.
//!
//! Run: `cargo bench -p orrery-actors --bench indicators -- --warm-up-time 1 --measurement-time 5`
//! Criterion reports `thrpt` in elements/s; one element is one bar.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use orrery_actors::strategies::indicators::{Ema, Rsi, Sma};

const BARS: usize = 1_000_000;

/// A deterministic price-like walk, so runs compare.
fn closes() -> Vec<f64> {
    (0..BARS)
        .map(|i| {
            let t = i as f64;
            30_000.0 + 800.0 * (t * 1e-4).sin() + 40.0 * (t * 0.37).sin()
        })
        .collect()
}

fn streaming(c: &mut Criterion) {
    let xs = closes();
    let mut group = c.benchmark_group("indicators_streaming_1m_bars");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(10);
    group.bench_function("sma_20", |b| {
        b.iter(|| {
            let mut sma = Sma::new(20).expect("period 20 is valid");
            for &x in &xs {
                black_box(sma.update(black_box(x)));
            }
        })
    });
    group.bench_function("ema_20", |b| {
        b.iter(|| {
            let mut ema = Ema::new(20).expect("period 20 is valid");
            for &x in &xs {
                black_box(ema.update(black_box(x)));
            }
        })
    });
    group.bench_function("rsi_14", |b| {
        b.iter(|| {
            let mut rsi = Rsi::new(14).expect("period 14 is valid");
            for &x in &xs {
                black_box(rsi.update(black_box(x)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, streaming);
criterion_main!(benches);
