//! Shared by the order-path benches: market orders through a running gateway actor,
//! alternating sides so the position stays flat, with criterion timing plus the p50/p99/max
//! that criterion's mean hides.

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
    let mut samples = Vec::new();
    let mut i = 0u64;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
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
                    let started = Instant::now();
                    let report = gateway.send(PlaceOrder { intent }).await.unwrap().unwrap();
                    let took = started.elapsed();
                    assert_eq!(report.status, OrderStatus::Filled);
                    samples.push(took);
                    total += took;
                }
                total
            })
        })
    });
    samples.sort();
    if let Some(max) = samples.last() {
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "{name}: {} orders, p50 {:?}, p99 {:?}, max {max:?}",
            samples.len(),
            pct(0.5),
            pct(0.99)
        );
    }
}
