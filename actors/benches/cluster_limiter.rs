//! The shared rate limiter over loopback Redis (a real `redis-server` started here):
//!
//! - `draw/sliding_window` and `draw/gcra`: one draw, one script round trip
//!   ([`RemoteBudget::draw`]) on a budget that never refuses;
//! - `draw/sliding_window_contended`: the same while two other nodes contend and a quiet
//!   one holds units, so the script computes the max-min share (the contenders' marks are
//!   written straight into the scope's `waiting` key, far in the future);
//! - `batched/acquire`: `RateLimits::acquire` on a shared pool with reservation batches of
//!   100 units, so most draws are served from the node's local reserve and one in a
//!   hundred costs a round trip.
//!
//! Run: `cargo bench -p orrery-actors --features testkit --bench cluster_limiter -- --warm-up-time 1 --measurement-time 5`
//! Besides criterion's mean, prints p50 / p99 of 5 000 single draws and the batched
//! draws per second over 200 000 draws (figures and conditions in BENCHMARKS.md).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use orrery_actors::cluster::limits::{BudgetKind, RemoteBudget, SharedLimits, Verdict};
use orrery_actors::cluster::{ClusterConfig, RedisLink};
use orrery_actors::resilience::config::ResilienceConfig;
use orrery_actors::resilience::{Priority, RateLimits, TokioClock};
use orrery_actors::testkit::RedisServer;

fn link(url: &str, node: &str) -> RedisLink {
    let c = ClusterConfig {
        url: url.to_string(),
        node_id: node.into(),
        key_prefix: "bench:".into(),
        ..ClusterConfig::default()
    };
    RedisLink::open(&c, None).expect("link")
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.50), at(0.99))
}

fn bench(c: &mut Criterion) {
    let server = RedisServer::start().expect("redis-server on the PATH");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sliding = BudgetKind::SlidingWindow {
        limit: u64::from(u32::MAX),
        window: Duration::from_secs(1),
    };
    let gcra = BudgetKind::Gcra {
        burst: u64::from(u32::MAX),
        interval: Duration::from_micros(1),
    };
    let kinds = [
        ("sliding_window", sliding, false),
        ("gcra", gcra, false),
        ("sliding_window_contended", sliding, true),
    ];
    let mut group = c.benchmark_group("draw");
    for (name, kind, contended) in kinds {
        let budget = rt.block_on(async {
            let b = RemoteBudget::new(link(&server.url(), "n1"), name, kind, Duration::ZERO);
            if contended {
                let quiet = RemoteBudget::new(link(&server.url(), "q"), name, kind, Duration::ZERO);
                quiet.draw(1_000).await.expect("redis answers");
                let waiting = format!("bench:limit:{name}:waiting");
                let _: () = b
                    .link()
                    .query(
                        redis::cmd("ZADD")
                            .arg(&waiting)
                            .arg(i64::MAX / 2)
                            .arg("o1")
                            .arg(i64::MAX / 2)
                            .arg("o2"),
                    )
                    .await
                    .expect("redis answers");
            }
            b.draw(1).await.expect("redis answers");
            b
        });
        let samples = rt.block_on(async {
            let mut samples = Vec::with_capacity(5_000);
            for _ in 0..5_000 {
                let started = Instant::now();
                let v = budget.draw(1).await.expect("redis answers");
                samples.push(started.elapsed());
                assert!(matches!(v, Verdict::Admitted { .. }));
            }
            samples
        });
        let (p50, p99) = percentiles(samples);
        println!("cluster draw {name}: p50 {p50:?}, p99 {p99:?} over 5000 draws");
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { budget.draw(1).await.expect("redis answers") })
        });
    }
    group.finish();

    let cfg: ResilienceConfig = serde_json::from_value(serde_json::json!({
        "limits": [{ "name": "weight", "kind": "sliding_window", "limit": 4_000_000_000u64,
                     "window": "1s", "shared": "bench-ip", "batch": 100 }],
    }))
    .expect("config");
    let limits = rt.block_on(async {
        let shared = SharedLimits::new(link(&server.url(), "n2"), 1);
        RateLimits::build_shared("bench", &cfg, TokioClock::shared(), Some(&shared))
            .expect("limits")
    });
    let far = || tokio::time::Instant::now() + Duration::from_secs(5);
    let rate = rt.block_on(async {
        let started = Instant::now();
        for _ in 0..200_000 {
            limits
                .acquire("info", 1, Priority::Low, far())
                .await
                .expect("admitted");
        }
        200_000.0 / started.elapsed().as_secs_f64()
    });
    println!("cluster batched acquire (batch 100): {rate:.0} draws/s on one node");
    let mut group = c.benchmark_group("batched");
    group.throughput(Throughput::Elements(1));
    group.bench_function("acquire", |b| {
        b.to_async(&rt).iter(|| async {
            limits
                .acquire("info", 1, Priority::Low, far())
                .await
                .expect("admitted")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
