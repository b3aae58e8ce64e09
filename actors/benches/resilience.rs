//! Costs of the resilience kit's hot paths, with governor measured beside our limiters.
//!
//! Run: `cargo bench -p orrery-actors --bench resilience -- --warm-up-time 1 --measurement-time 3`
//!
//! - `limiter_check/*`: one uncontended `try_acquire(1, now)` that admits. `fixed_now`
//!   rows pass a precomputed `now` (ours) or use governor's `FakeRelativeClock`, so they
//!   compare the algorithms alone; `real_clock` rows include reading the clock (ours:
//!   `QuantaMonotonic`; governor: its default quanta clock). `clock_read/*` shows what a
//!   `TokioClock` read costs instead (benches build tokio with `test-util`, which makes
//!   it dearer than in the engine binary).
//! - `limiter_check_contended/*`: two threads checking one limiter at once, real clocks;
//!   time is per iteration, in which each thread makes one check.
//! - `priority_queue/push_pop`, `breaker/*`, `throttle/acquire_fast_path`.
//! - `guarded_call/*`: one call that succeeds at once (pause gate open, limiter admits,
//!   breaker closed), through [`Guard::run`] (`guard/*`) and through the hand-composed
//!   path each venue had before the guard (`old_path/*`: pause check, draw, breaker,
//!   call, record; a read inside `RetryPolicy::run`). Both on a current-thread tokio
//!   runtime, whose `block_on` is part of every row alike.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};

use orrery_actors::clock::ManualClock;
use orrery_actors::resilience::config::BreakerConfig;
use orrery_actors::resilience::config::RetryConfig;
use orrery_actors::resilience::limiter::{GcraLimiter, LeakMode, LeakyBucket, SlidingWindow};
use orrery_actors::resilience::priority::QueueBounds;
use orrery_actors::resilience::{
    CircuitBreaker, Classify, ErrorClass, Guard, GuardedCall, ManualMonotonic, MonotonicClock,
    Priority, PriorityQueue, QuantaMonotonic, RateLimit, Refusal, RetryPolicy, SharedMonotonic,
    Throttle, TokioClock,
};

/// Budgets large enough that every benchmarked check admits.
fn limiters(clock: SharedMonotonic) -> Vec<(&'static str, Arc<dyn RateLimit>)> {
    let now = clock.now();
    vec![
        (
            "token_bucket",
            Arc::new(LeakyBucket::token_bucket(
                1 << 40,
                1 << 40,
                Duration::from_secs(1),
                now,
            )),
        ),
        (
            // 1 µs of `now` per check keeps ~1000 entries in a 1 ms window.
            "sliding_window",
            Arc::new(SlidingWindow::new(1 << 20, Duration::from_millis(1))),
        ),
        (
            "leaky_bucket",
            Arc::new(LeakyBucket::new(
                1 << 40,
                1 << 40,
                Duration::from_secs(1),
                LeakMode::Meter,
                now,
            )),
        ),
        (
            "gcra_wrapper",
            Arc::new(GcraLimiter::new(u32::MAX, Duration::from_secs(1))),
        ),
    ]
}

fn limiter_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_check");
    let manual = ManualMonotonic::new(0);
    for (name, limiter) in limiters(manual.clone()) {
        let mut now = 0u64;
        g.bench_function(format!("{name}/fixed_now"), |b| {
            b.iter(|| {
                now += 1_000;
                black_box(limiter.try_acquire(black_box(1), now)).ok()
            })
        });
    }
    let fake = FakeRelativeClock::default();
    let governor = RateLimiter::direct_with_clock(Quota::per_second(NonZeroU32::MAX), fake);
    g.bench_function("governor/fixed_now", |b| {
        b.iter(|| black_box(governor.check()).ok())
    });

    let real: SharedMonotonic = QuantaMonotonic::shared();
    for (name, limiter) in limiters(real.clone()) {
        g.bench_function(format!("{name}/real_clock"), |b| {
            b.iter(|| black_box(limiter.try_acquire(black_box(1), real.now())).ok())
        });
    }
    let tokio_clock = TokioClock::new();
    g.bench_function("clock_read/tokio_instant", |b| {
        b.iter(|| black_box(tokio_clock.now()))
    });
    let quanta = QuantaMonotonic::new();
    g.bench_function("clock_read/quanta", |b| b.iter(|| black_box(quanta.now())));
    let governor = RateLimiter::direct(Quota::per_second(NonZeroU32::MAX));
    g.bench_function("governor/real_clock", |b| {
        b.iter(|| black_box(governor.check()).ok())
    });
    g.finish();
}

/// Runs `check` on two threads at once, `iters` times each; returns the wall time.
fn two_threads(iters: u64, check: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (barrier, check) = (barrier.clone(), check.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    check();
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        let _ = h.join();
    }
    start.elapsed()
}

fn limiter_check_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_check_contended");
    let real: SharedMonotonic = QuantaMonotonic::shared();
    for (name, limiter) in limiters(real.clone()) {
        let clock = real.clone();
        let check: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            black_box(limiter.try_acquire(black_box(1), clock.now())).ok();
        });
        g.bench_function(format!("{name}/2_threads"), |b| {
            b.iter_custom(|iters| two_threads(iters, check.clone()))
        });
    }
    let governor = Arc::new(RateLimiter::direct(Quota::per_second(NonZeroU32::MAX)));
    let check: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        black_box(governor.check()).ok();
    });
    g.bench_function("governor/2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, check.clone()))
    });
    g.finish();
}

fn priority_queue(c: &mut Criterion) {
    let q = PriorityQueue::new(
        "bench",
        QueueBounds {
            capacity: [1024; 3],
            aging_step: Some(Duration::from_secs(2)),
        },
        TokioClock::shared(),
    );
    // A realistic standing depth so pop compares three heads.
    for i in 0..100u64 {
        let _ = q.push(i, Priority::ALL[(i % 3) as usize]);
    }
    let mut i = 0u64;
    c.bench_function("priority_queue/push_pop", |b| {
        b.iter(|| {
            i += 1;
            let _ = q.push(black_box(i), Priority::ALL[(i % 3) as usize]);
            black_box(q.try_pop())
        })
    });
}

fn breaker(c: &mut Criterion) {
    let clock = ManualClock::new(0);
    let closed = CircuitBreaker::new("bench", BreakerConfig::default(), clock.clone(), None);
    c.bench_function("breaker/check_closed", |b| {
        b.iter(|| black_box(closed.check().map(|p| p.is_probe())).ok())
    });
    c.bench_function("breaker/check_and_record_success", |b| {
        b.iter(|| {
            if let Ok(p) = closed.check() {
                p.success(Duration::from_millis(5));
            }
        })
    });
    let open = CircuitBreaker::new("bench-open", BreakerConfig::default(), clock.clone(), None);
    for _ in 0..10 {
        if let Ok(p) = open.check() {
            p.failure(&orrery_actors::resilience::ErrorClass::Unavailable);
        }
    }
    c.bench_function("breaker/check_open_rejects", |b| {
        b.iter(|| black_box(open.check().is_err()))
    });
}

fn throttle(c: &mut Criterion) {
    let clock = TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::token_bucket(
        1 << 40,
        1 << 40,
        Duration::from_secs(1),
        clock.now(),
    ));
    let throttle = Throttle::new("bench", bucket, clock);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    c.bench_function("throttle/acquire_fast_path", |b| {
        b.iter_batched(
            || (),
            |_| futures::executor::block_on(throttle.acquire(1, Priority::Medium, deadline)),
            BatchSize::SmallInput,
        )
    });
}

/// A caller's error type, as a venue's or a provider's would be (never built: every
/// benchmarked call succeeds).
#[derive(Debug)]
struct BenchError;

impl From<Refusal> for BenchError {
    fn from(_: Refusal) -> Self {
        BenchError
    }
}

impl Classify for BenchError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
}

fn guarded_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime for the bench");
    let clock = TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::token_bucket(
        1 << 40,
        1 << 40,
        Duration::from_secs(1),
        clock.now(),
    ));
    let throttle = Throttle::new("bench", bucket, clock);
    let breaker =
        || CircuitBreaker::new("bench", BreakerConfig::default(), ManualClock::new(0), None);
    let retry = RetryPolicy::new("bench", RetryConfig::default());
    let guard = Guard::new("bench", breaker(), retry.clone());
    // The old path's state: its own pause instant, breaker and retry policy.
    let paused_until: parking_lot::Mutex<Option<tokio::time::Instant>> =
        parking_lot::Mutex::new(None);
    let old_breaker = breaker();
    let deadline = rt.block_on(async { tokio::time::Instant::now() }) + Duration::from_secs(3600);
    let send = || async { Ok::<u32, BenchError>(black_box(7)) };

    let mut g = c.benchmark_group("guarded_call");
    for (name, call) in [
        ("read", GuardedCall::read("bench", deadline)),
        ("state_change", GuardedCall::state_change("bench", deadline)),
    ] {
        g.bench_function(format!("guard/{name}"), |b| {
            b.iter(|| {
                rt.block_on(guard.run(
                    call,
                    |until| throttle.acquire(1, Priority::Medium, until),
                    |_| send(),
                ))
                .ok()
            })
        });
    }
    let old_once = || async {
        if paused_until
            .lock()
            .is_some_and(|u| u > tokio::time::Instant::now())
        {
            return Err(BenchError);
        }
        throttle
            .acquire(1, Priority::Medium, deadline)
            .await
            .map_err(|_| BenchError)?;
        let permit = old_breaker.check().map_err(|_| BenchError)?;
        let started = std::time::Instant::now();
        let result = send().await;
        permit.record(&result, started.elapsed());
        result
    };
    g.bench_function("old_path/read", |b| {
        b.iter(|| rt.block_on(retry.run(deadline, old_once)).ok())
    });
    g.bench_function("old_path/state_change", |b| {
        b.iter(|| rt.block_on(old_once()).ok())
    });
    g.finish();
}

criterion_group!(
    benches,
    limiter_check,
    limiter_check_contended,
    priority_queue,
    breaker,
    throttle,
    guarded_call
);
criterion_main!(benches);
