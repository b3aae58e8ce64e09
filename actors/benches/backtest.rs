//! Backtester throughput and memory: one `sma_cross` (10, 20) backtest over 1 000 000
//! generated one-minute bars, statistics included (targets: <= 50 ms, >= 20 M bars/s;
//! <= 100 bytes held per bar, 48 of them the bars themselves).
//!
//! Run: `cargo bench -p orrery-actors --bench backtest`
//! Criterion reports the time per backtest and `thrpt` in bars/s. Before measuring, the
//! bench prints the bytes a backtest holds per bar: the result's per-bar vectors, and the
//! peak of live heap bytes during `run` (a counting global allocator) over the bar count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use orrery_actors::backtest::{self, BacktestConfig, Bars};
use orrery_actors::strategies::builtin::SmaCross;

const BARS: usize = 1_000_000;

/// Counts live heap bytes and their peak, so memory per bar is measured, not estimated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A deterministic price-like walk of one-minute bars, so runs compare.
fn bars() -> Bars {
    let mut b = Bars::default();
    let t0 = 1_600_000_000_000i64;
    let mut prev = 30_000.0;
    for i in 0..BARS {
        let t = i as f64;
        let close = 30_000.0 + 800.0 * (t * 1e-4).sin() + 40.0 * (t * 0.37).sin();
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

fn config() -> BacktestConfig {
    BacktestConfig {
        cash: 1_000_000.0,
        commission: 0.0004,
        fractional_unit: Some(1e-5),
        ..Default::default()
    }
}

fn memory_per_bar(bars: &Bars) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let r = backtest::run(bars, &mut SmaCross::new(10, 20).unwrap(), &config()).unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let per_bar_vectors = (r.equity.capacity() + r.drawdown.capacity()) * 8;
    let n = BARS as f64;
    eprintln!(
        "backtest memory: bars {:.0} B/bar; result per-bar vectors {:.1} B/bar; peak heap during run {:.1} B/bar ({} trades, {:.1} B of trades per bar); total held {:.1} B/bar",
        48.0,
        per_bar_vectors as f64 / n,
        peak as f64 / n,
        r.trades.len(),
        (r.trades.capacity() * std::mem::size_of::<backtest::Trade>()) as f64 / n,
        48.0 + peak as f64 / n,
    );
}

/// This thread's CPU time in seconds: on a shared machine, wall time also counts the time
/// the thread waited for a core, which is not the backtester's cost.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// 30 backtests timed one by one: fastest and median wall and CPU time.
fn cpu_and_wall(bars: &Bars) {
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let (c0, w0) = (thread_cpu_s(), std::time::Instant::now());
        let mut s = SmaCross::new(10, 20).expect("valid periods");
        black_box(backtest::run(bars, &mut s, &config()).expect("runs"));
        cpu.push((thread_cpu_s() - c0) * 1e3);
        wall.push(w0.elapsed().as_secs_f64() * 1e3);
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    eprintln!(
        "backtest time over 30 runs: CPU fastest {:.1} ms, median {:.1} ms ({:.1} M bars/s at the median); wall fastest {:.1} ms, median {:.1} ms",
        cpu[0],
        cpu[15],
        BARS as f64 / cpu[15] / 1e3,
        wall[0],
        wall[15]
    );
}

fn sma_cross(c: &mut Criterion) {
    let bars = bars();
    memory_per_bar(&bars);
    cpu_and_wall(&bars);
    let mut group = c.benchmark_group("backtest_1m_bars");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(20);
    group.bench_function("sma_cross_10_20", |b| {
        b.iter(|| {
            let mut s = SmaCross::new(10, 20).expect("valid periods");
            black_box(backtest::run(black_box(&bars), &mut s, &config()).expect("runs"))
        })
    });
    group.finish();
}

criterion_group!(benches, sma_cross);
criterion_main!(benches);
