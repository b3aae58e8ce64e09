//! Latency of one order through the whole order path — gateway (sizing, risk gate, flushed
//! intent, ledger write of the answer) → connector actor → `BinanceSpotVenue` (signing,
//! HTTP) → the mock Binance exchange on loopback, which answers at once. What remains is
//! this engine's own cost plus loopback HTTP: the book ticker and the account read in
//! flight together (then the book of each symbol held), and the order send. Rate limits
//! are off so the limiter never waits. The data dir is on disk (a temp dir), so the
//! intent's flush is a real fsync.
//!
//! Run: `cargo bench -p orrery-actors --features testkit --bench binance_order -- --warm-up-time 1 --measurement-time 5`
//! Besides criterion's mean, prints p50/p99 over a fixed run of orders (figures and their
//! conditions are in BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use rust_decimal_macros::dec;

use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::binance::mock::{MockBinance, MOCK_API_KEY, MOCK_API_SECRET};
use orrery_actors::exchanges::binance::{BinanceConfig, BinanceSpotVenue, API_KEY_ENV};
use orrery_actors::exchanges::connector::Connector;
use orrery_actors::exchanges::gateway::{Amount, GatewayConfig, GatewayCore, OrderIntent, Pricing};
use orrery_actors::exchanges::risk_gate::RiskConfig;
use orrery_actors::exchanges::{OrderStatus, Side};
use orrery_actors::resilience::ResilienceConfig;
use orrery_actors::store::Store;
use orrery_actors::supervisor::{start_root, ChildSpec, Slot, SupervisorSpec};

fn intent(side: Side) -> OrderIntent {
    OrderIntent {
        venue: "binance".into(),
        symbol: "BTC".into(),
        side,
        amount: Amount::Base(dec!(0.001)),
        pricing: Pricing::Market,
        reduce_only: false,
        origin: "bench".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn order_path(c: &mut Criterion) {
    let mock = MockBinance::start();
    let config = BinanceConfig {
        base_url: mock.url(),
        symbols: vec!["BTC".into()],
        resilience: ResilienceConfig::default(),
        ..BinanceConfig::default()
    };
    let venue = Arc::new(
        BinanceSpotVenue::open_with_env("binance", &config, system_clock(), &|k| {
            Some(
                if k == API_KEY_ENV {
                    MOCK_API_KEY
                } else {
                    MOCK_API_SECRET
                }
                .to_string(),
            )
        })
        .expect("mock keys are valid"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("data")).expect("store on disk");
    let sys = System::new();
    let slot: Slot<Connector> = Slot::new();
    let (_root, core) = sys.block_on(async {
        let v = venue.clone();
        let root = start_root(
            SupervisorSpec::new("bench").child(
                ChildSpec::in_slot("binance", slot.clone(), move |_| {
                    Ok(Connector::new(v.clone()))
                })
                .mailbox(1024),
            ),
            None,
        );
        while !slot.is_live() {
            tokio::task::yield_now().await;
        }
        let mut venues = BTreeMap::new();
        venues.insert("binance".to_string(), slot.clone());
        let core = GatewayCore::open(
            &store,
            venues,
            RiskConfig::default(),
            GatewayConfig::default(),
            system_clock(),
        )
        .expect("gateway");
        core.reconcile("binance").await.expect("reconcile");
        (root, core)
    });

    // Buy then sell the same size, so balances and the risk gate stay where they are.
    let mut side = Side::Buy;
    let mut one = move |core: Arc<GatewayCore>| {
        let s = side;
        side = side.opposite();
        async move {
            let r = core.place(intent(s)).await.expect("order");
            assert_eq!(r.status, OrderStatus::Filled);
        }
    };

    let mut samples = Vec::with_capacity(1000);
    sys.block_on(async {
        for _ in 0..1000 {
            let t = Instant::now();
            one(core.clone()).await;
            samples.push(t.elapsed());
        }
    });
    samples.sort();
    println!(
        "binance order path over {} orders: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );

    c.bench_function("binance_order_through_gateway", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    one(core.clone()).await;
                }
                start.elapsed()
            })
        })
    });
}

criterion_group!(benches, order_path);
criterion_main!(benches);
