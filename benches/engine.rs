//! Engine-level benchmarks:
//! - `start_ready/100k_orders`: open the data dir with 100 000 orders in the ledger, rebuild
//!   the gateway (ledger index) and reconcile the paper venue — the work between process
//!   start and the gateway accepting orders. Target ≤ 1 s.
//! - `order_path/paper_market`: one market order through the gateway actor — sizing, risk
//!   gate, durable intent, paper venue, durable ledger update. Prints p50/p99.
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 5`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use criterion::{criterion_group, criterion_main, Criterion};
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::connector::Connector;
use orrery_actors::exchanges::gateway::{GatewayConfig, GatewayCore, OrderGateway};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::paper::{PaperConfig, PaperVenue};
use orrery_actors::exchanges::risk_gate::RiskConfig;
use orrery_actors::exchanges::*;
use orrery_actors::store::{trees, Store};
use orrery_actors::supervisor::{start_root, ChildSpec, Slot, SupervisorSpec};
use rust_decimal::Decimal;

#[path = "support/order_path.rs"]
mod order_path_support;

const LEDGER_SIZE: usize = 100_000;

fn seed_ledger(dir: &std::path::Path) {
    let store = Store::open(dir).unwrap();
    let orders = store.tree::<LedgerEntry>(trees::ORDERS).unwrap();
    for i in 0..LEDGER_SIZE {
        let request = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: ["BTC", "ETH", "SOL"][i % 3].into(),
            side: if i.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            },
            size: Decimal::new(123, 4),
            order_type: OrderType::Market {
                max_slippage: Decimal::new(1, 2),
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        let mut entry =
            LedgerEntry::new_intent("paper", request, "bench", 1_700_000_000_000 + i as i64);
        entry.status = OrderStatus::Filled;
        entry.filled_size = entry.request.size;
        entry.avg_fill_price = Some(Decimal::from(60_000));
        entry.venue_order_id = Some(i.to_string());
        orders.put(entry.client_id.as_str(), &entry).unwrap();
    }
    store.flush().unwrap();
}

/// Starts a paper connector under a root supervisor and returns its slot.
fn paper_connector(store: &Store) -> (Slot<Connector>, orrery_actors::supervisor::RootHandle) {
    let slot = Slot::<Connector>::new();
    let (s, st) = (slot.clone(), store.clone());
    let root = start_root(
        SupervisorSpec::new("bench").child(ChildSpec::in_slot("paper", s, move |_| {
            let venue =
                PaperVenue::open("paper", &PaperConfig::default(), &st, system_clock()).unwrap();
            Ok(Connector::new(Arc::new(venue)))
        })),
        None,
    );
    (slot, root)
}

fn start_ready(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_ledger(&data);
    let mut group = c.benchmark_group("start_ready");
    group.sample_size(10);
    group.bench_function("100k_orders", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let sys = actix::System::new();
                total += sys.block_on(async {
                    let started = Instant::now();
                    let store = Store::open(&data).unwrap();
                    let (slot, root) = paper_connector(&store);
                    // Give the supervisor's start a chance to fill the slot.
                    while slot.addr().is_none() {
                        tokio::task::yield_now().await;
                    }
                    let mut venues = BTreeMap::new();
                    venues.insert("paper".to_string(), slot);
                    let core = GatewayCore::open(
                        &store,
                        venues,
                        RiskConfig::default(),
                        GatewayConfig::default(),
                        system_clock(),
                    )
                    .unwrap();
                    assert_eq!(core.ledger().len(), LEDGER_SIZE);
                    core.reconcile_all().await.unwrap();
                    let elapsed = started.elapsed();
                    drop(core);
                    root.shutdown().await;
                    elapsed
                });
            }
            total
        })
    });
    group.finish();
}

fn order_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sys = actix::System::new();
    let (gateway, _root, store) = sys.block_on(async {
        let store = Store::open(dir.path().join("data")).unwrap();
        let config = PaperConfig {
            starting_balance_usd: Decimal::from(100_000_000),
            ..PaperConfig::default()
        };
        let slot = Slot::<Connector>::new();
        let (s, st) = (slot.clone(), store.clone());
        let root = start_root(
            SupervisorSpec::new("bench").child(ChildSpec::in_slot("paper", s, move |_| {
                let venue = PaperVenue::open("paper", &config, &st, system_clock()).unwrap();
                Ok(Connector::new(Arc::new(venue)))
            })),
            None,
        );
        while slot.addr().is_none() {
            tokio::task::yield_now().await;
        }
        let mut venues = BTreeMap::new();
        venues.insert("paper".to_string(), slot);
        let limits = RiskConfig {
            max_position_pct: Decimal::from(100),
            ..RiskConfig::default()
        };
        let core = GatewayCore::open(
            &store,
            venues,
            limits,
            GatewayConfig::default(),
            system_clock(),
        )
        .unwrap();
        core.reconcile_all().await.unwrap();
        let gateway = OrderGateway::new(core).start();
        // Let the actor start here: started() needs the runtime, which a filtered-out
        // bench would otherwise only offer it while being torn down.
        tokio::task::yield_now().await;
        (gateway, root, store)
    });
    order_path_support::bench_market_orders(c, "order_path/paper_market", &sys, &gateway, "paper");
    drop(store);
}

criterion_group!(benches, start_ready, order_path);
criterion_main!(benches);
