//! Hyperliquid connector benchmarks against the zero-latency loopback mock:
//! - `hyperliquid/order_path`: one market order through the gateway actor and
//!   `HyperliquidVenue` — the venue's reads (l2Book and clearinghouseState in flight
//!   together, meta cached), sizing, risk gate, the flushed intent, allMids, signing, the
//!   order over loopback HTTP, and the ledger write of the answer. No network latency, the
//!   durable ledger write included. Prints p50/p99 (target p99 ≤ 2 ms).
//! - `hyperliquid/order_path_tmpfs`: the same with the data dir in memory, where a flush
//!   costs next to nothing; the difference is what the fsync adds.
//! - `hyperliquid/parts/*`: the steps of that path one at a time, to see where the tail
//!   comes from: `durable_write` (one flushed ledger record: the fsync), `buffered_write`
//!   (the same record unflushed), `actor_hop` (a cached read through the connector actor,
//!   no HTTP), `loopback_read` (one /info request), `order_reads` (the order path's reads
//!   as it makes them), `venue_order` (risk gate, signing and /exchange, no ledger; the
//!   reference price comes with the approved order, so no allMids read).
//! - `hyperliquid/reconcile_10k`: reconciliation of 10 000 open ledger entries (each looked
//!   up by cloid with orderStatus, open orders and fills read once).
//!
//! All raise the venue's weight limit: Hyperliquid's 1200/min would otherwise be what is
//! measured. The data dir is on disk (a temp dir), so flushes are real fsyncs.
//!
//! Run: `cargo bench --bench hyperliquid -- --warm-up-time 1 --measurement-time 5`
//! (figures and their conditions are in BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix::Actor;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::BoxFuture;
use futures::FutureExt;
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::connector::Connector;
use orrery_actors::exchanges::gateway::{GatewayConfig, GatewayCore, OrderGateway};
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::risk_gate::{self, RiskConfig};
use orrery_actors::exchanges::*;
use orrery_actors::store::{trees, Store};
use orrery_actors::supervisor::{start_root, ChildSpec, RootHandle, Slot, SupervisorSpec};
use rust_decimal::Decimal;

#[path = "support/hl_venue.rs"]
mod hl_venue;
use hl_venue::{venue, KEY};

#[path = "support/order_path.rs"]
mod order_path_support;

const RECONCILE_SIZE: usize = 10_000;

/// The gateway over one Hyperliquid connector (started under a root supervisor, which
/// must be kept alive). Call inside the actix system.
async fn core(store: &Store, mock: &MockHyperliquid) -> (Arc<GatewayCore>, RootHandle) {
    let slot = Slot::<Connector>::new();
    let v = Arc::new(venue(mock));
    let root = start_root(
        SupervisorSpec::new("bench").child(ChildSpec::in_slot(
            "hyperliquid",
            slot.clone(),
            move |_| Ok(Connector::new(v.clone())),
        )),
        None,
    );
    while slot.addr().is_none() {
        tokio::task::yield_now().await;
    }
    let limits = RiskConfig {
        max_position_pct: Decimal::from(100),
        ..RiskConfig::default()
    };
    let core = GatewayCore::open(
        store,
        BTreeMap::from([("hyperliquid".to_string(), slot)]),
        limits,
        GatewayConfig::default(),
        system_clock(),
    )
    .unwrap();
    (core, root)
}

fn order_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    order_path_on(c, "hyperliquid/order_path", || {
        Store::open(dir.path().join("data")).unwrap()
    });
    // The same path with the data dir in memory (sled's temporary store on tmpfs), where
    // a flush costs next to nothing: the difference to the above is the fsync.
    order_path_on(c, "hyperliquid/order_path_tmpfs", || {
        Store::temporary().unwrap()
    });
}

fn order_path_on(c: &mut Criterion, name: &str, open: impl FnOnce() -> Store) {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    let sys = actix::System::new();
    let (gateway, _root, store) = sys.block_on(async {
        let store = open();
        let (core, root) = core(&store, &mock).await;
        core.reconcile_all().await.unwrap();
        let gateway = OrderGateway::new(core).start();
        // Let the actor start here: started() needs the runtime, which a filtered-out
        // bench would otherwise only offer it while being torn down.
        tokio::task::yield_now().await;
        (gateway, root, store)
    });
    order_path_support::bench_market_orders(c, name, &sys, &gateway, "hyperliquid");
    drop(store);
}

fn order_path_parts(c: &mut Criterion) {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let sys = actix::System::new();
    let store = Store::open(dir.path().join("data")).unwrap();
    let (core, _root) = sys.block_on(async {
        let (core, root) = core(&store, &mock).await;
        core.reconcile_all().await.unwrap();
        (core, root)
    });
    let records = store.tree::<LedgerEntry>("bench").unwrap();
    let record = |i: u64| {
        let request = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "BTC".into(),
            side: Side::Buy,
            size: Decimal::new(1666, 5),
            order_type: OrderType::Market {
                max_slippage: Decimal::new(1, 2),
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        let mut entry = LedgerEntry::new_intent("hyperliquid", request, "bench", i as i64);
        entry.status = OrderStatus::Filled;
        entry.filled_size = entry.request.size;
        entry.avg_fill_price = Some(Decimal::from(60_001));
        entry.venue_order_id = Some(i.to_string());
        entry
    };
    let mut i = 0u64;
    order_path_support::bench_with_percentiles(c, "hyperliquid/parts/durable_write", &sys, || {
        i += 1;
        let (records, entry) = (records.clone(), record(i));
        async move {
            records
                .put_durable(entry.client_id.as_str(), &entry)
                .await
                .unwrap()
        }
    });
    order_path_support::bench_with_percentiles(c, "hyperliquid/parts/buffered_write", &sys, || {
        i += 1;
        let (records, entry) = (records.clone(), record(i));
        async move { records.put(entry.client_id.as_str(), &entry).unwrap() }
    });
    let read = |name: &str, what: fn(Arc<GatewayCore>) -> BoxFuture<'static, ()>| {
        let core = core.clone();
        (name.to_string(), move || what(core.clone()))
    };
    for (name, mut op) in [
        read("hyperliquid/parts/actor_hop", |core| {
            async move {
                core.instrument("hyperliquid", "BTC").await.unwrap();
            }
            .boxed()
        }),
        read("hyperliquid/parts/loopback_read", |core| {
            async move {
                core.quote("hyperliquid", "BTC").await.unwrap();
            }
            .boxed()
        }),
        read("hyperliquid/parts/order_reads", |core| {
            async move {
                let (instrument, quote, state) = futures::join!(
                    core.instrument("hyperliquid", "BTC"),
                    core.quote("hyperliquid", "BTC"),
                    core.account_state("hyperliquid"),
                );
                instrument.unwrap();
                quote.unwrap();
                state.unwrap();
            }
            .boxed()
        }),
    ] {
        order_path_support::bench_with_percentiles(c, &name, &sys, &mut op);
    }
    let direct = Arc::new(venue(&mock));
    order_path_support::bench_with_percentiles(c, "hyperliquid/parts/venue_order", &sys, || {
        i += 1;
        let order = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "BTC".into(),
            side: if i.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            },
            size: Decimal::new(1666, 5),
            order_type: OrderType::Market {
                max_slippage: Decimal::new(1, 2),
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        // Through the real risk gate (a fresh, flat account) at the mock's mid.
        let view = risk_gate::GateView {
            mode: risk_gate::TradingMode::Normal,
            mode_reason: String::new(),
            account_value: Decimal::from(1_000_000),
            position_size: Decimal::ZERO,
        };
        let judgement = risk_gate::Judgement {
            price: Decimal::from(60_001),
            reference_price: Decimal::from(60_000),
            leverage: 1,
            emergency_close: false,
        };
        let order = risk_gate::approve(&RiskConfig::default(), order, judgement, &view).unwrap();
        let direct = direct.clone();
        async move {
            let placed = direct.place_order(&order).await.unwrap();
            assert_eq!(placed.status, OrderStatus::Filled);
        }
    });
}

fn reconcile_10k(c: &mut Criterion) {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("data")).unwrap();
    {
        let orders = store.tree::<LedgerEntry>(trees::ORDERS).unwrap();
        for i in 0..RECONCILE_SIZE {
            let client_id = ClientOrderId::generate();
            let (coin, px) = [("BTC", 50_000), ("ETH", 2_500), ("SOL", 100)][i % 3];
            let request = OrderRequest {
                client_id: client_id.clone(),
                symbol: coin.into(),
                side: Side::Buy,
                size: Decimal::ONE,
                order_type: OrderType::Limit {
                    price: Decimal::from(px),
                    tif: TimeInForce::Gtc,
                },
                reduce_only: false,
                valid_until_ms: None,
            };
            let oid = mock.insert_resting(
                &client_id.to_hex128(),
                coin,
                true,
                Decimal::from(px),
                Decimal::ONE,
            );
            let mut entry = LedgerEntry::new_intent(
                "hyperliquid",
                request,
                "bench",
                1_700_000_000_000 + i as i64,
            );
            entry.status = OrderStatus::Acked;
            entry.venue_order_id = Some(oid.to_string());
            orders.put(client_id.as_str(), &entry).unwrap();
        }
        store.flush().unwrap();
    }
    let sys = actix::System::new();
    let (core, _root) = sys.block_on(core(&store, &mock));
    let mut group = c.benchmark_group("hyperliquid");
    group.sample_size(10);
    group.bench_function("reconcile_10k", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let report = core.reconcile("hyperliquid").await.unwrap();
                    assert_eq!(report.checked, RECONCILE_SIZE);
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, order_path, order_path_parts, reconcile_10k);
criterion_main!(benches);
