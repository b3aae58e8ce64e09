//! Two gateways (two nodes, two sleds) over one scripted venue account, coordinated by a
//! real redis-server: only the lease holder trades, every intent carries its token and is
//! in the replica before its send, and the node that takes over merges what the dead owner
//! wrote before it trades.

use std::time::Duration;

use super::*;
use crate::cluster::lease::LeaseTimings;
use crate::cluster::{ClusterConfig, LeaseKeeper, Leases, LedgerReplica, RedisLink};
use crate::testkit::RedisServer;

struct Node {
    keeper: LeaseKeeper,
    core: Arc<GatewayCore>,
    _store: Store,
}

fn node(redis: &RedisServer, name: &str, venue: Arc<ScriptedVenue>) -> Node {
    let config = ClusterConfig {
        url: redis.url(),
        node_id: name.into(),
        key_prefix: "t:".into(),
        command_timeout: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(1_500),
        ..ClusterConfig::default()
    };
    let link = RedisLink::open(&config, None).unwrap();
    let leases = Leases::new(name, ["venue:scripted".to_string()]);
    let keeper = LeaseKeeper::new(link.clone(), leases.clone(), LeaseTimings::of(&config));
    let store = Store::temporary().unwrap();
    let core = setup(&store, venue, RiskConfig::default());
    assert!(core.attach_ownership(VenueOwnership {
        leases,
        replica: LedgerReplica::start(link),
    }));
    Node {
        keeper,
        core,
        _store: store,
    }
}

#[actix::test]
async fn only_the_lease_holder_trades_and_the_next_owner_merges_before_it_trades() {
    let redis = RedisServer::start().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let a = node(&redis, "a", venue.clone());
    let b = node(&redis, "b", venue.clone());

    // Before any lease answer both are in standby: nothing reconciled, orders refused.
    assert!(a.core.standby("scripted"));
    let err = a.core.reconcile("scripted").await.unwrap_err();
    assert!(matches!(err, GatewayError::NotOwner { .. }), "{err}");

    a.keeper.tick().await;
    b.keeper.tick().await;
    // a owns the account: its order carries token 1 and is in the replica.
    let filled = a.core.place(buy_usd(dec!(1000))).await.unwrap();
    assert_eq!(filled.status, OrderStatus::Filled);
    let entry = a.core.ledger().get(&filled.client_id).unwrap().unwrap();
    assert_eq!(entry.fencing_token, Some(1));
    let resting = a.core.place(resting_buy()).await.unwrap();
    assert_eq!(resting.status, OrderStatus::Acked);

    // b is in standby: refused with the owner named, nothing written, nothing sent.
    let err = b.core.place(buy_usd(dec!(1000))).await.unwrap_err();
    match &err {
        GatewayError::NotOwner { venue, owner } => {
            assert_eq!((venue.as_str(), owner.as_str()), ("scripted", "a"))
        }
        other => panic!("{other}"),
    }
    assert_eq!(b.core.ledger().len(), 0);
    assert!(matches!(
        b.core.reconcile("scripted").await,
        Err(GatewayError::NotOwner { .. })
    ));
    assert!(matches!(
        b.core.cancel(&resting.client_id).await,
        Err(GatewayError::UnknownOrder(_))
    ));
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 2);

    // a dies without releasing (its keeper stops). Within the TTL b cannot take over; a
    // itself stops using the lease before it can expire.
    let a_core = a.core.clone();
    drop(a.keeper);
    b.keeper.tick().await;
    assert!(b.core.standby("scripted"));
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let err = a_core.place(buy_usd(dec!(1000))).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotOwner { .. }), "{err}");

    // b acquires token 2, merges a's entries (the resting order still open, the filled
    // one filled) and reconciles before its first order.
    b.keeper.tick().await;
    let report = b.core.place(buy_usd(dec!(1000))).await.unwrap();
    assert!(!b.core.standby("scripted"));
    let mine = b.core.ledger().get(&report.client_id).unwrap().unwrap();
    assert_eq!(mine.fencing_token, Some(2));
    let merged = b.core.ledger().get(&filled.client_id).unwrap().unwrap();
    assert_eq!(merged.status, OrderStatus::Filled);
    assert_eq!(merged.fencing_token, Some(1));
    let open = b.core.ledger().get(&resting.client_id).unwrap().unwrap();
    assert_eq!(open.status, OrderStatus::Acked);
    // The dead owner's resting order is now b's to cancel, by its client id.
    let cancelled = b.core.cancel(&resting.client_id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    // Every order reached the venue exactly once; nothing was adopted as external.
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 3);
    assert_eq!(b.core.ledger().len(), 3);
    assert!(b
        .core
        .ledger()
        .all()
        .unwrap()
        .iter()
        .all(|e| e.origin != ADOPTED_ORIGIN));
}

/// Right after start nobody knows the owner: an order waits for Redis's first answer
/// (then trades on the owner, or is refused naming the owner elsewhere) instead of being
/// refused as not owner at once.
#[actix::test]
async fn an_order_before_the_first_lease_answer_waits_for_it() {
    let redis = RedisServer::start().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let a = node(&redis, "a", venue.clone());
    let b = node(&redis, "b", venue.clone());
    let place = |core: &Arc<GatewayCore>| {
        let core = core.clone();
        actix::spawn(async move { core.place(buy_usd(dec!(1000))).await })
    };
    let (early_a, early_b) = (place(&a.core), place(&b.core));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !early_a.is_finished() && !early_b.is_finished(),
        "both wait"
    );
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 0);

    a.keeper.tick().await;
    let report = early_a.await.unwrap().unwrap();
    assert_eq!(report.status, OrderStatus::Filled);
    b.keeper.tick().await;
    match early_b.await.unwrap() {
        Err(GatewayError::NotOwner { owner, .. }) => assert_eq!(owner, "a"),
        other => panic!("{other:?}"),
    }
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 1);
    // Once answered, a standby node refuses at once.
    let started = std::time::Instant::now();
    assert!(b.core.place(buy_usd(dec!(1000))).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[actix::test]
async fn an_intent_that_cannot_be_replicated_is_never_sent() {
    let mut redis = RedisServer::start().unwrap();
    let venue = Arc::new(ScriptedVenue::default());
    let a = node(&redis, "a", venue.clone());
    a.keeper.tick().await;
    let first = a.core.place(buy_usd(dec!(1000))).await.unwrap();
    assert_eq!(first.status, OrderStatus::Filled);

    // Redis goes away while a's lease is still safe to use: the replica write fails, the
    // intent is closed as never sent and the venue never sees the order.
    redis.kill();
    let err = a.core.place(buy_usd(dec!(1000))).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotReplicated { .. }), "{err}");
    assert_eq!(venue.place_calls.load(Ordering::SeqCst), 1);
    let never_sent = a
        .core
        .ledger()
        .all()
        .unwrap()
        .into_iter()
        .find(|e| e.client_id != first.client_id)
        .expect("the intent was written before the replica was asked");
    assert_eq!(never_sent.status, OrderStatus::Rejected);
    assert!(never_sent
        .reason
        .as_deref()
        .unwrap_or_default()
        .starts_with("never sent"));
}
