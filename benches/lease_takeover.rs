//! Lease takeover time, a timed harness (not criterion: one sample takes a lease TTL).
//!
//! Two nodes in this process share one Hyperliquid account (the loopback mock) through a
//! real `redis-server`: each has its own sled, its own [`GatewayCore`] over a
//! `HyperliquidVenue`, a [`LeaseKeeper`] on its timer and the ledger replica. Node A owns
//! the account and places two market orders (both filled: the takeover merges them and
//! reconciles an empty set of open entries); then A "dies": its keeper task is aborted (no release) and its
//! gateway dropped. The clock runs from that moment until node B's first order is accepted
//! — B's keeper must see the lease expire in Redis, acquire it (token + 1), merge A's
//! replica into its sled and reconcile with the venue before it accepts.
//!
//! The bound it is compared with: the lease TTL (at most, the time A's last renewal still
//! had) + one renewal period (B's next attempt) + B's takeover (replica read, merge,
//! reconciliation), which B's gateway reports in `orrery_cluster_takeover_seconds` and the
//! harness measures separately.
//!
//! A second part measures the takeover alone against the size of the replica: A's replica
//! also holds `history` settled orders of earlier days (written straight to Redis under
//! A's token), all of which B merges into its sled before it trades.
//!
//! Run: `cargo bench --bench lease_takeover` (needs redis-server on the PATH). Figures in
//! BENCHMARKS.md ("Cluster: lease takeover").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_actors::clock::system_clock;
use orrery_actors::cluster::lease::LeaseTimings;
use orrery_actors::cluster::{ClusterConfig, LeaseKeeper, Leases, LedgerReplica, RedisLink};
use orrery_actors::exchanges::connector::Connector;
use orrery_actors::exchanges::gateway::{
    Amount, GatewayConfig, GatewayCore, GatewayError, OrderIntent, Pricing, VenueOwnership,
};
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::risk_gate::RiskConfig;
use orrery_actors::exchanges::*;
use orrery_actors::store::Store;
use orrery_actors::supervisor::{start_root, ChildSpec, RootHandle, Slot, SupervisorSpec};
use orrery_actors::testkit::RedisServer;
use rust_decimal::Decimal;

#[path = "support/hl_venue.rs"]
mod hl_venue;
use hl_venue::{venue, KEY};

const ROUNDS: usize = 5;

struct Node {
    core: Arc<GatewayCore>,
    leases: Leases,
    replica: LedgerReplica,
    keeper: tokio::task::JoinHandle<()>,
    _root: RootHandle,
    _store: Store,
    _dir: tempfile::TempDir,
}

async fn node(
    name: &str,
    redis: &RedisServer,
    mock: &MockHyperliquid,
    ttl: Duration,
    prefix: &str,
) -> Node {
    let config = ClusterConfig {
        url: redis.url(),
        node_id: name.into(),
        key_prefix: prefix.into(),
        lease_ttl: ttl,
        ..ClusterConfig::default()
    };
    let link = RedisLink::open(&config, None).unwrap();
    let leases = Leases::new(name, ["venue:hyperliquid".to_string()]);
    let keeper = LeaseKeeper::new(link.clone(), leases.clone(), LeaseTimings::of(&config));
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The sender is leaked on purpose: the keeper runs until its task is aborted (a death).
    std::mem::forget(_stop_tx);
    let keeper = tokio::spawn(keeper.run(stop_rx));

    let slot = Slot::<Connector>::new();
    let v = Arc::new(venue(mock));
    let root = start_root(
        SupervisorSpec::new(name).child(ChildSpec::in_slot(
            "hyperliquid",
            slot.clone(),
            move |_| Ok(Connector::new(v.clone())),
        )),
        None,
    );
    while slot.addr().is_none() {
        tokio::task::yield_now().await;
    }
    // On disk, as an engine's: the merge's durable writes cost what they cost there.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let core = GatewayCore::open(
        &store,
        BTreeMap::from([("hyperliquid".to_string(), slot)]),
        RiskConfig {
            max_position_pct: Decimal::from(100),
            ..RiskConfig::default()
        },
        GatewayConfig::default(),
        system_clock(),
    )
    .unwrap();
    let replica = LedgerReplica::start(link);
    core.attach_ownership(VenueOwnership {
        leases: leases.clone(),
        replica: replica.clone(),
    });
    Node {
        core,
        leases,
        replica,
        _dir: dir,
        keeper,
        _root: root,
        _store: store,
    }
}

fn market(side: Side) -> OrderIntent {
    OrderIntent {
        venue: "hyperliquid".into(),
        symbol: "BTC".into(),
        side,
        amount: Amount::Usd(Decimal::from(150)),
        pricing: Pricing::Market,
        reduce_only: false,
        origin: "bench".into(),
    }
}

/// Places until accepted; answers when, and when the node was first seen holding the
/// lease (polled between attempts, every 5 ms).
async fn first_accepted(node: &Node, side: Side) -> (Instant, Instant) {
    let mut held_at = None;
    loop {
        if held_at.is_none() && node.leases.held("venue:hyperliquid").is_some() {
            held_at = Some(Instant::now());
        }
        match node.core.place(market(side)).await {
            Ok(_) => {
                let now = Instant::now();
                return (held_at.unwrap_or(now), now);
            }
            Err(GatewayError::NotOwner { .. } | GatewayError::NotReady { .. }) => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
}

/// Writes `n` settled orders of account `hyperliquid` to the replica under `node`'s token
/// (as its ledger's later writes would be replicated).
async fn settled_history(node: &Node, n: usize) {
    let token = node.leases.held("venue:hyperliquid").unwrap().token;
    for i in 0..n {
        let request = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "BTC".into(),
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            size: Decimal::new(1, 3),
            order_type: OrderType::Market {
                max_slippage: Decimal::new(1, 2),
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        let mut entry = LedgerEntry::new_intent("hyperliquid", request, "bench", 1_000);
        entry.status = OrderStatus::Filled;
        entry.filled_size = entry.request.size;
        entry.fencing_token = Some(token);
        node.replica
            .write("hyperliquid", token, entry.client_id.as_str(), &entry)
            .await
            .unwrap();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` / `cargo test --benches` probe: nothing to list.
        return;
    }
    let redis = RedisServer::start().expect("redis-server on the PATH");
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let sys = actix::System::new();
    for ttl_ms in [1_000u64, 2_000, 5_000] {
        let ttl = Duration::from_millis(ttl_ms);
        let mut takeovers = Vec::new();
        let mut merges = Vec::new();
        for round in 0..ROUNDS {
            let mock = MockHyperliquid::start(wallet, Network::Testnet);
            let prefix = format!("bench{ttl_ms}-{round}:");
            let (took, merge) = sys.block_on(async {
                let a = node("a", &redis, &mock, ttl, &prefix).await;
                first_accepted(&a, Side::Buy).await;
                a.core.place(market(Side::Sell)).await.unwrap();
                let b = node("b", &redis, &mock, ttl, &prefix).await;
                // b's keeper has tried at least once and sees a as the owner; the deaths
                // are spread over a's renewal period (how long its last renewal still
                // had decides most of the wait).
                let phase = ttl / 3 * round as u32 / ROUNDS as u32;
                tokio::time::sleep(Duration::from_millis(50) + phase).await;
                let died = Instant::now();
                a.keeper.abort();
                drop(a);
                let (held, accepted) = first_accepted(&b, Side::Buy).await;
                b.keeper.abort();
                (accepted - died, accepted - held)
            });
            takeovers.push(took);
            merges.push(merge);
        }
        takeovers.sort();
        merges.sort();
        let renew = ttl / 3;
        let ms = |d: Duration| d.as_millis();
        println!(
            "lease_takeover ttl={}ms renew_every={}ms rounds={ROUNDS}: death -> accepting orders min {} ms, median {} ms, max {} ms; of which lease seen -> accepting (merge + reconciliation + first order) median {} ms, max {} ms; bound TTL + renew_every = {} ms + that",
            ttl_ms,
            ms(renew),
            ms(takeovers[0]),
            ms(takeovers[ROUNDS / 2]),
            ms(takeovers[ROUNDS - 1]),
            ms(merges[ROUNDS / 2]),
            ms(merges[ROUNDS - 1]),
            ms(ttl + renew),
        );
    }
    // The takeover alone against the replica's size (TTL 1 s).
    let ttl = Duration::from_secs(1);
    for history in [2_000usize, 10_000] {
        let mut merges = Vec::new();
        for round in 0..3 {
            let mock = MockHyperliquid::start(wallet, Network::Testnet);
            let prefix = format!("history{history}-{round}:");
            let merge = sys.block_on(async {
                let a = node("a", &redis, &mock, ttl, &prefix).await;
                first_accepted(&a, Side::Buy).await;
                settled_history(&a, history).await;
                let b = node("b", &redis, &mock, ttl, &prefix).await;
                a.keeper.abort();
                drop(a);
                let (held, accepted) = first_accepted(&b, Side::Buy).await;
                b.keeper.abort();
                accepted - held
            });
            merges.push(merge);
        }
        merges.sort();
        println!(
            "lease_takeover history={history}: lease seen -> accepting (merge of {} entries + reconciliation + first order) min {} ms, median {} ms, max {} ms",
            history + 1,
            merges[0].as_millis(),
            merges[1].as_millis(),
            merges[2].as_millis(),
        );
    }
}
