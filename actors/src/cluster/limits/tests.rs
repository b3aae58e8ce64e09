//! Against a real `redis-server` on loopback.

use std::collections::BTreeMap;
use std::time::{Duration, Instant as StdInstant};

use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::*;
use crate::cluster::ClusterConfig;
use crate::resilience::config::ResilienceConfig;
use crate::resilience::{Priority, RateLimits, TokioClock};
use crate::testkit::RedisServer;

fn link(url: &str, node: &str) -> RedisLink {
    let c = ClusterConfig {
        url: url.to_string(),
        node_id: node.into(),
        key_prefix: "t:".into(),
        command_timeout: Duration::from_millis(300),
        ..ClusterConfig::default()
    };
    RedisLink::open(&c, None).unwrap()
}

fn sliding(limit: u64, window: Duration) -> BudgetKind {
    BudgetKind::SlidingWindow { limit, window }
}

async fn hget(link: &RedisLink, key: &str) -> BTreeMap<String, String> {
    link.query(redis::cmd("HGETALL").arg(key)).await.unwrap()
}

/// Several nodes draw random costs at random times: in every window (measured on this
/// machine's clock, shortened by the slowest round trip so it lies inside one window of
/// Redis's clock) the admitted units never pass the limit, and the bookkeeping adds up.
#[tokio::test]
async fn the_sliding_window_holds_in_every_window_under_random_draws() {
    let server = RedisServer::start().unwrap();
    let (limit, window) = (40, Duration::from_millis(400));
    let mut tasks = Vec::new();
    for (n, seed) in [("a", 1u64), ("b", 2), ("c", 3)] {
        let budget = RemoteBudget::new(
            link(&server.url(), n),
            "sw",
            sliding(limit, window),
            Duration::ZERO,
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut admitted = Vec::new();
            let mut max_rtt = Duration::ZERO;
            let end = StdInstant::now() + Duration::from_millis(1500);
            while StdInstant::now() < end {
                let cost = rng.gen_range(1..=6);
                let sent = StdInstant::now();
                let verdict = budget.draw(cost).await.unwrap();
                let got = StdInstant::now();
                max_rtt = max_rtt.max(got - sent);
                if let Verdict::Admitted { .. } = verdict {
                    admitted.push((got, cost));
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..15))).await;
            }
            (admitted, max_rtt)
        }));
    }
    let mut all = Vec::new();
    let mut max_rtt = Duration::ZERO;
    for t in tasks {
        let (a, rtt) = t.await.unwrap();
        all.extend(a);
        max_rtt = max_rtt.max(rtt);
    }
    all.sort();
    let total: u64 = all.iter().map(|(_, c)| c).sum();
    assert!(
        total > limit * 2,
        "the load never filled the window: {total}"
    );
    let span = window - max_rtt - Duration::from_millis(1);
    for (i, (at, _)) in all.iter().enumerate() {
        let in_window: u64 = all[i..]
            .iter()
            .take_while(|(t, _)| *t - *at <= span)
            .map(|(_, c)| c)
            .sum();
        assert!(in_window <= limit, "{in_window} units within {span:?}");
    }
    // used = Σ nodes = the log's entries still in the window.
    let l = link(&server.url(), "reader");
    let meta = hget(&l, "t:limit:sw:meta").await;
    let nodes = hget(&l, "t:limit:sw:nodes").await;
    let used: u64 = meta["used"].parse().unwrap();
    let per_node: u64 = nodes.values().map(|v| v.parse::<u64>().unwrap()).sum();
    assert_eq!(used, per_node, "{meta:?} {nodes:?}");
    assert_eq!(meta["kind"], "sliding_window");
    assert_eq!(meta["limit"], "40");
    assert_eq!(meta["window_ms"], "400");
    let ttl: i64 = l
        .query(redis::cmd("PTTL").arg("t:limit:sw:log"))
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 1000, "keys expire: {ttl}");
}

#[tokio::test]
async fn gcra_admits_a_burst_then_paces_and_takes_units_back() {
    let server = RedisServer::start().unwrap();
    let kind = BudgetKind::Gcra {
        burst: 10,
        interval: Duration::from_millis(100),
    };
    let b = RemoteBudget::new(link(&server.url(), "a"), "g", kind, Duration::ZERO);
    for _ in 0..10 {
        assert!(matches!(b.draw(1).await.unwrap(), Verdict::Admitted { .. }));
    }
    let Verdict::Wait { wait, .. } = b.draw(1).await.unwrap() else {
        panic!("an 11th unit passed a burst of 10");
    };
    assert!(
        wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
        "{wait:?}"
    );
    assert_eq!(b.give_back("", 3).await.unwrap(), 3);
    let Verdict::Admitted { used, .. } = b.draw(3).await.unwrap() else {
        panic!("units given back were not drawable again");
    };
    assert_eq!(used, 10);
    assert!(matches!(b.draw(1).await.unwrap(), Verdict::Wait { .. }));
}

#[tokio::test]
async fn a_batch_given_back_frees_its_unspent_units() {
    let server = RedisServer::start().unwrap();
    let b = RemoteBudget::new(
        link(&server.url(), "a"),
        "batch",
        sliding(30, Duration::from_secs(10)),
        Duration::from_secs(1),
    );
    let Verdict::Admitted { entry, used, .. } = b.draw(20).await.unwrap() else {
        panic!("refused an empty budget");
    };
    assert_eq!(used, 20);
    assert!(matches!(b.draw(20).await.unwrap(), Verdict::Wait { .. }));
    assert_eq!(b.give_back(&entry, 15).await.unwrap(), 15);
    let nodes = hget(b.link(), b.nodes_key()).await;
    assert_eq!(nodes["a"], "5");
    assert!(matches!(
        b.draw(20).await.unwrap(),
        Verdict::Admitted { used: 25, .. }
    ));
    // An entry gives back once: its name changed with its count, so a second give-back
    // (or one after the entry left the window) returns nothing.
    assert_eq!(b.give_back(&entry, 5).await.unwrap(), 0);
    let nodes = hget(b.link(), b.nodes_key()).await;
    assert_eq!(nodes["a"], "25");
}

/// Three nodes hammer one scope: each gets about a third.
#[tokio::test]
async fn three_contending_nodes_each_get_about_a_third() {
    let server = RedisServer::start().unwrap();
    let (limit, window) = (60, Duration::from_millis(300));
    let mut tasks = Vec::new();
    for n in ["a", "b", "c"] {
        let b = RemoteBudget::new(
            link(&server.url(), n),
            "fair",
            sliding(limit, window),
            Duration::ZERO,
        );
        tasks.push(tokio::spawn(async move {
            let end = StdInstant::now() + Duration::from_millis(2000);
            let mut got = 0u64;
            while StdInstant::now() < end {
                match b.draw(1).await.unwrap() {
                    Verdict::Admitted { .. } => got += 1,
                    Verdict::Wait { wait, .. } => tokio::time::sleep(wait).await,
                }
            }
            got
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let total: u64 = got.iter().sum();
    let third = total as f64 / 3.0;
    for g in &got {
        assert!(
            (*g as f64 - third).abs() <= third * 0.15,
            "unfair split {got:?}"
        );
    }
}

fn budget(url: &str, node: &str, scope: &str, limit: u64) -> RemoteBudget {
    RemoteBudget::new(
        link(url, node),
        scope,
        sliding(limit, Duration::from_secs(30)),
        Duration::ZERO,
    )
}

fn granted(v: Verdict) -> u64 {
    match v {
        Verdict::Admitted { units, .. } => units,
        Verdict::Wait { .. } => 0,
    }
}

/// A node admitted after a refusal still contends: the node that asks next is capped at
/// its share instead of taking the room for itself (with admission clearing the mark, one
/// node of three took 1 184 of 2 992 units on a loaded machine).
#[tokio::test]
async fn a_node_admitted_after_a_refusal_still_caps_the_others() {
    let server = RedisServer::start().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| budget(&server.url(), n, "turns", 90));
    let Verdict::Admitted { entry, .. } = a.draw(60).await.unwrap() else {
        panic!("refused an empty budget");
    };
    assert_eq!(
        granted(b.draw(30).await.unwrap()),
        30,
        "alone, b may fill it"
    );
    assert!(matches!(c.draw(1).await.unwrap(), Verdict::Wait { .. }));
    assert_eq!(a.give_back(&entry, 30).await.unwrap(), 30);
    // c gets part of its share; 20 units are left and c still contends.
    assert_eq!(granted(c.draw(10).await.unwrap()), 10);
    assert!(
        matches!(a.draw(10).await.unwrap(), Verdict::Wait { .. }),
        "a, at its 30 of 90, took units c is waiting for"
    );
    assert_eq!(granted(c.draw(20).await.unwrap()), 20);
}

/// Max-min: what a node that does not contend holds stays its own, and the rest is split
/// evenly among the nodes that do.
#[tokio::test]
async fn contending_nodes_split_what_a_quiet_node_leaves() {
    let server = RedisServer::start().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| budget(&server.url(), n, "maxmin", 90));
    assert_eq!(granted(a.draw(10).await.unwrap()), 10);
    let Verdict::Admitted { entry, .. } = b.draw(70).await.unwrap() else {
        panic!("refused room");
    };
    // c wants 20 of the 10 left: refused, it contends; b, over a third, contends too.
    assert!(matches!(c.draw(20).await.unwrap(), Verdict::Wait { .. }));
    assert!(matches!(
        b.draw_between(1, 10).await.unwrap(),
        Verdict::Wait { .. }
    ));
    assert_eq!(b.give_back(&entry, 40).await.unwrap(), 40);
    // a holds 10 and is quiet: b and c split the other 80, 40 each (a third each would
    // have capped c at 30 and left units no one may take).
    assert_eq!(granted(c.draw_between(1, 60).await.unwrap()), 40);
    assert_eq!(granted(b.draw_between(1, 60).await.unwrap()), 10);
    assert!(matches!(c.draw(1).await.unwrap(), Verdict::Wait { .. }));
}

fn shared_config(share: f64, batch: u64) -> ResilienceConfig {
    serde_json::from_value(serde_json::json!({
        "limits": [{ "name": "weight", "kind": "sliding_window", "limit": 100, "window": "2s",
                     "shared": "ip", "local_share": share, "batch": batch }],
        "endpoints": { "info": { "weight": 1 } },
    }))
    .unwrap()
}

async fn drain(limits: &RateLimits, cost: u64) -> u64 {
    let mut got = 0;
    loop {
        let deadline = Instant::now() + Duration::from_millis(600);
        match limits.acquire("info", cost, Priority::Low, deadline).await {
            Ok(_) => got += cost,
            Err(_) => return got,
        }
    }
}

#[tokio::test]
async fn batches_are_drawn_once_per_round_trip_and_released() {
    let server = RedisServer::start().unwrap();
    let shared = SharedLimits::new(link(&server.url(), "a"), 1);
    let limits = RateLimits::build_shared(
        "hl",
        &shared_config(0.5, 10),
        TokioClock::shared(),
        Some(&shared),
    )
    .unwrap();
    let far = Instant::now() + Duration::from_secs(2);
    for _ in 0..25 {
        limits.acquire("info", 1, Priority::Low, far).await.unwrap();
    }
    let l = link(&server.url(), "reader");
    let meta = hget(&l, "t:limit:ip:meta").await;
    assert_eq!(meta["used"], "30", "three batches of 10: {meta:?}");
    let state = shared.snapshot();
    assert_eq!(state[0].reserved, 5);
    assert_eq!(state[0].mode, PoolMode::Shared);
    shared.release().await;
    let meta = hget(&l, "t:limit:ip:meta").await;
    assert_eq!(meta["used"], "25", "{meta:?}");
    // Another node takes 40: the cluster budget binds, where the local view alone (25
    // of 100 used) would admit 75; the last batch is granted in part.
    let other = RemoteBudget::new(
        link(&server.url(), "b"),
        "ip",
        sliding(100, Duration::from_secs(2)),
        Duration::ZERO,
    );
    assert!(matches!(
        other.draw(40).await.unwrap(),
        Verdict::Admitted { .. }
    ));
    let got = drain(&limits, 5).await;
    assert_eq!(got, 35, "the rest of the 100-unit window");
}

#[tokio::test]
async fn a_dead_redis_means_the_local_share_and_a_returning_one_rejoins() {
    let mut server = RedisServer::start().unwrap();
    let shared = SharedLimits::new(link(&server.url(), "a"), 1);
    let limits = RateLimits::build_shared(
        "hl",
        &shared_config(0.2, 1),
        TokioClock::shared(),
        Some(&shared),
    )
    .unwrap();
    let far = Instant::now() + Duration::from_secs(2);
    limits.acquire("info", 1, Priority::Low, far).await.unwrap();
    assert_eq!(shared.snapshot()[0].mode, PoolMode::Shared);

    server.kill();
    // The draw that finds Redis gone falls back and is served by the local share:
    // 20 of the 100 units in the window, less the 1 this node drew from the cluster in
    // it (a fallback never adds a fresh share to what was drawn).
    let got = drain(&limits, 1).await;
    assert_eq!(got, 19, "local share of 0.2 × 100, less the unit drawn");
    let state = shared.snapshot();
    assert_eq!(state[0].mode, PoolMode::Fallback);
    assert!((state[0].local_share - 0.2).abs() < 1e-9);

    server.restart().unwrap();
    let started = StdInstant::now();
    while shared.snapshot()[0].mode != PoolMode::Shared {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never rejoined after redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The 19 units spent in fallback were carried into the (empty) restarted Redis.
    let l = link(&server.url(), "reader");
    let meta = hget(&l, "t:limit:ip:meta").await;
    assert_eq!(meta["used"], "19", "{meta:?}");
    limits.acquire("info", 1, Priority::Low, far).await.unwrap();
}

#[tokio::test]
async fn pools_naming_one_scope_must_agree_and_leaky_buckets_cannot_share() {
    let server = RedisServer::start().unwrap();
    let shared = SharedLimits::new(link(&server.url(), "a"), 3);
    let clock = TokioClock::shared();
    let a = shared_config(0.5, 1);
    let first = shared.pool(&a.limits[0], &clock).unwrap().unwrap();
    let again = shared.pool(&a.limits[0], &clock).unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    let b = shared_config(0.5, 2);
    assert!(matches!(
        shared.pool(&b.limits[0], &clock),
        Err(SharedScopeError::Mismatch { .. })
    ));
    let leaky: ResilienceConfig = serde_json::from_value(serde_json::json!({
        "limits": [{ "name": "q", "kind": "leaky_bucket", "capacity": 5, "leak_amount": 1,
                     "leak_every": "1s", "shared": "x" }],
    }))
    .unwrap();
    assert!(matches!(
        shared.pool(&leaky.limits[0], &clock),
        Err(SharedScopeError::Unsupported { .. })
    ));
    // Without a local_share the fallback share is 1 / expected_nodes.
    let c: ResilienceConfig = serde_json::from_value(serde_json::json!({
        "limits": [{ "name": "rpm", "kind": "gcra", "burst": 60, "period": "1m", "shared": "key-1" }],
    }))
    .unwrap();
    shared.pool(&c.limits[0], &clock).unwrap().unwrap();
    let state = shared.snapshot();
    let key = state.iter().find(|s| s.scope == "key-1").unwrap();
    assert!((key.local_share - 1.0 / 3.0).abs() < 1e-9, "{key:?}");
    assert_eq!(key.kind, "gcra");
}
