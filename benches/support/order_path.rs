//! Shared by the order-path benches: market orders through a running gateway actor,
//! alternating sides so the position stays flat, and the timing of single steps of the
//! path — each with criterion's mean plus the p50/p99/max that the mean hides.

use std::future::Future;
use std::time::{Duration, Instant};

use actix::Addr;
use criterion::Criterion;
use orrery_actors::exchanges::gateway::{Amount, OrderGateway, OrderIntent, PlaceOrder, Pricing};
use orrery_actors::exchanges::{OrderStatus, Side};
use rust_decimal::Decimal;

/// Benchmarks one USD 1 000 market order on `venue`/BTC per iteration and prints percentiles.
pub fn bench_market_orders(
    c: &mut Criterion,
    name: &str,
    sys: &actix::SystemRunner,
    gateway: &Addr<OrderGateway>,
    venue: &str,
) {
    let mut i = 0u64;
    bench_with_percentiles(c, name, sys, || {
        i += 1;
        let intent = OrderIntent {
            venue: venue.into(),
            symbol: "BTC".into(),
            side: if i.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            },
            amount: Amount::Usd(Decimal::from(1_000)),
            pricing: Pricing::Market,
            reduce_only: false,
            origin: "bench".into(),
        };
        let gateway = gateway.clone();
        async move {
            let report = gateway.send(PlaceOrder { intent }).await.unwrap().unwrap();
            assert_eq!(report.status, OrderStatus::Filled);
        }
    });
}

/// Benchmarks `op` (one awaited step per iteration, run on `sys`) and prints the p50, p99
/// and max of every run criterion made, warm-up included.
pub fn bench_with_percentiles<F, Fut>(
    c: &mut Criterion,
    name: &str,
    sys: &actix::SystemRunner,
    mut op: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let step = op();
                    let started = Instant::now();
                    step.await;
                    let took = started.elapsed();
                    samples.push(took);
                    total += took;
                }
                total
            })
        })
    });
    print_percentiles(name, &mut samples);
}

/// Prints `name: N runs, p50 …, p99 …, max …`.
pub fn print_percentiles(name: &str, samples: &mut [Duration]) {
    samples.sort();
    if let Some(max) = samples.last() {
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "{name}: {} runs, p50 {:?}, p99 {:?}, max {max:?}",
            samples.len(),
            pct(0.5),
            pct(0.99)
        );
    }
}
