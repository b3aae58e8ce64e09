//! Cost of supervision on the message path, and how fast a panicked actor serves again.
//!
//! - `round_trip/*`: one request/response to a trivial handler through a raw `Addr` of an
//!   unsupervised actor, a raw `Addr` of a supervised one (runner overhead), a `Slot`
//!   (lock + depth/messages metrics, no recorder) and a `Slot` whose metrics go to a
//!   Prometheus recorder (what the engine runs).
//! - `restart/after_panic`: time from sending a panicking message to the rebuilt actor
//!   answering, with a zero backoff. Percentiles over every sample are printed at the end.
//!
//! Run: `cargo bench -p orrery-actors --bench supervisor -- --warm-up-time 1 --measurement-time 3`

use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use orrery_actors::supervisor::{
    install_panic_hook, start_root, Backoff, ChildSpec, Intensity, RootHandle, Slot, SupervisorSpec,
};

struct Echo {
    generation: u64,
}

impl Actor for Echo {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping;

#[derive(Message)]
#[rtype(result = "()")]
struct Panic;

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        self.generation
    }
}

impl Handler<Panic> for Echo {
    type Result = ();
    fn handle(&mut self, _: Panic, _: &mut Context<Self>) {
        panic!("bench panic");
    }
}

fn tree(name: &str, slot: &Slot<Echo>) -> SupervisorSpec {
    SupervisorSpec::new(name)
        // Restarts are the point of the bench; never escalate.
        .intensity(Intensity::new(u32::MAX, Duration::from_secs(1)))
        .backoff(Backoff::immediate())
        .child(
            ChildSpec::in_slot("echo", slot.clone(), |ctx| {
                Ok(Echo {
                    generation: ctx.generation(),
                })
            })
            .mailbox(1024),
        )
}

async fn wait_serving(slot: &Slot<Echo>, generation: u64) {
    loop {
        if let Ok(g) = slot.send(Ping).await {
            if g == generation {
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn supervisor_benches(c: &mut Criterion) {
    // Panics are the workload here; log them through tracing (no subscriber: silent)
    // instead of printing a backtrace per restart.
    install_panic_hook();
    let sys = System::new();

    let plain_slot: Slot<Echo> = Slot::new();
    let metered_slot: Slot<Echo> = Slot::new();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let (roots, unsupervised): (Vec<RootHandle>, Addr<Echo>) = sys.block_on(async {
        let plain = start_root(tree("plain", &plain_slot), None);
        // Metric handles bind to the recorder current when the slot is filled; the actix
        // system runs on this thread, so a thread-local recorder covers it.
        let metered = {
            let _guard = metrics::set_default_local_recorder(&recorder);
            let root = start_root(tree("metered", &metered_slot), None);
            wait_serving(&metered_slot, 0).await;
            root
        };
        wait_serving(&plain_slot, 0).await;
        (vec![plain, metered], Echo { generation: 0 }.start())
    });
    let supervised = plain_slot.addr().expect("the echo child is running");

    let mut group = c.benchmark_group("round_trip");
    group.bench_function("addr_unsupervised", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    unsupervised.send(Ping).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("addr_supervised", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    supervised.send(Ping).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("slot", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    plain_slot.send(Ping).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("slot_prometheus", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    metered_slot.send(Ping).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    let mut samples: Vec<Duration> = Vec::new();
    let mut generation = plain_slot_generation(&sys, &plain_slot);
    let mut group = c.benchmark_group("restart");
    group.sample_size(20);
    group.bench_function("after_panic", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let _ = plain_slot.send(Panic).await;
                    generation += 1;
                    wait_serving(&plain_slot, generation).await;
                    let took = start.elapsed();
                    samples.push(took);
                    total += took;
                }
                total
            })
        })
    });
    group.finish();

    // ~1000 restarts measured on their own, so the percentiles do not depend on how many
    // iterations criterion chose.
    let mut fixed: Vec<Duration> = sys.block_on(async {
        let mut out = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let start = Instant::now();
            let _ = plain_slot.send(Panic).await;
            generation += 1;
            wait_serving(&plain_slot, generation).await;
            out.push(start.elapsed());
        }
        out
    });
    fixed.sort();
    samples.sort();
    println!(
        "restart after panic (backoff 0), 1000 restarts: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&fixed, 0.50),
        percentile(&fixed, 0.99),
        fixed[fixed.len() - 1]
    );
    if !samples.is_empty() {
        println!(
            "restart after panic (backoff 0), all {} criterion samples: p50 {:?}, p99 {:?}",
            samples.len(),
            percentile(&samples, 0.50),
            percentile(&samples, 0.99)
        );
    }

    sys.block_on(async {
        for root in &roots {
            root.shutdown().await;
        }
    });
}

fn plain_slot_generation(sys: &SystemRunner, slot: &Slot<Echo>) -> u64 {
    sys.block_on(async { slot.send(Ping).await.expect("echo answers") })
}

criterion_group!(benches, supervisor_benches);
criterion_main!(benches);
