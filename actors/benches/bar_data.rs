//! Parse speed of the OHLCV CSV loader (`backtest::data`) on a generated 1 000 000-row file
//! held in memory (`load_bytes`, so disk speed is not measured), and from the page cache
//! (`load`, which reads the file whole first). Issue #14 target: >= 5 M rows/s.
//! Three time spellings: epoch milliseconds, ISO datetimes (pandas `to_csv`), ISO dates.
//! The loader parses runs of lines on the rayon pool (all cores); `epoch_ms_one_thread`
//! is the same load in a one-thread pool, for the single-core figure.
//!
//! Run: `cargo bench -p orrery-actors --bench bar_data -- --warm-up-time 1 --measurement-time 5`

use std::fmt::Write;
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use orrery_actors::backtest::data::{load, load_bytes, DEFAULT_MAX_ROWS};

const ROWS: usize = 1_000_000;

/// `ROWS` minute bars of a random-ish walk, prices with two decimals like exchange exports.
fn generate(time: impl Fn(i64) -> String, header: &str) -> Vec<u8> {
    let mut s = String::with_capacity(ROWS * 64);
    s.push_str(header);
    s.push('\n');
    let mut price = 30_000.0f64;
    let start_ms = 1_609_459_200_000i64;
    for i in 0..ROWS as i64 {
        // Deterministic pseudo-random step: no RNG dependency, same file every run.
        let step = ((i * 7919 % 201) - 100) as f64 / 10.0;
        let open = price;
        let close = (price + step).max(1.0);
        let high = open.max(close) + 3.25;
        let low = open.min(close) - 2.5;
        let volume = 1.0 + (i % 997) as f64 / 8.0;
        let _ = writeln!(
            s,
            "{},{open:.2},{high:.2},{low:.2},{close:.2},{volume:.3}",
            time(start_ms + i * 60_000)
        );
        price = close;
    }
    s.into_bytes()
}

fn iso(ms: i64, date_only: bool) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).expect("generated times are in range");
    if date_only {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

fn bench(c: &mut Criterion) {
    let files = [
        (
            "epoch_ms",
            generate(|ms| ms.to_string(), "open_time,open,high,low,close,volume"),
        ),
        (
            "iso_datetime",
            generate(|ms| iso(ms, false), ",Open,High,Low,Close,Volume"),
        ),
        // Daily bars: one a day so times increase; same row count.
        (
            "iso_date",
            generate(
                |ms| {
                    iso(
                        (ms - 1_609_459_200_000) * 1440 - 86_400_000 * 365 * 40,
                        true,
                    )
                },
                ",Open,High,Low,Close,Volume",
            ),
        ),
    ];
    let mut group = c.benchmark_group("bar_data_load_1M_rows");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, bytes) in &files {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let bars = load_bytes(
                    black_box(bytes.as_slice()),
                    Path::new("bench.csv"),
                    DEFAULT_MAX_ROWS,
                )
                .expect("generated file is valid");
                assert_eq!(bars.len(), ROWS);
                bars
            })
        });
    }
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one-thread pool");
    group.bench_function("epoch_ms_one_thread", |b| {
        b.iter(|| {
            one.install(|| {
                load_bytes(
                    black_box(files[0].1.as_slice()),
                    Path::new("bench.csv"),
                    DEFAULT_MAX_ROWS,
                )
                .expect("generated file is valid")
            })
        })
    });
    // From a file (page cache): `load` sizes the columns once from the file length.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bars.csv");
    std::fs::write(&path, &files[0].1).expect("write the generated file");
    group.bench_function("epoch_ms_file", |b| {
        b.iter(|| {
            let bars = load(black_box(&path)).expect("generated file is valid");
            assert_eq!(bars.len(), ROWS);
            bars
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
