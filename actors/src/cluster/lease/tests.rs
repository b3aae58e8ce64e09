//! Lease scripts and the keeper against a real redis-server.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::cluster::replica::{LedgerReplica, ReplicaError};
use crate::testkit::RedisServer;

fn config(url: &str, node: &str) -> ClusterConfig {
    ClusterConfig {
        url: url.to_string(),
        node_id: node.into(),
        key_prefix: "t:".into(),
        command_timeout: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(1_500),
        ..ClusterConfig::default()
    }
}

fn keeper(url: &str, node: &str, resources: &[&str]) -> LeaseKeeper {
    let c = config(url, node);
    let link = RedisLink::open(&c, None).unwrap();
    let leases = Leases::new(node, resources.iter().map(|r| r.to_string()));
    LeaseKeeper::new(link, leases, LeaseTimings::of(&c))
}

#[tokio::test]
async fn one_owner_at_a_time_and_the_token_grows_with_every_new_owner() {
    let server = RedisServer::start().unwrap();
    let a = keeper(&server.url(), "a", &["venue:hl"]);
    let b = keeper(&server.url(), "b", &["venue:hl"]);

    a.tick().await;
    b.tick().await;
    let first = a
        .leases()
        .held("venue:hl")
        .expect("a acquired the free lease");
    assert_eq!(first.token, 1);
    assert_eq!(b.leases().held("venue:hl"), None);
    assert_eq!(b.leases().owner("venue:hl"), "a");

    // A renewal by the owner keeps the token; the non-owner's attempt changes nothing.
    a.tick().await;
    b.tick().await;
    assert_eq!(a.leases().held("venue:hl").unwrap().token, 1);
    assert_eq!(b.leases().held("venue:hl"), None);
    let answer = b.scripts.acquire("venue:hl", a.timings.ttl).await.unwrap();
    assert_eq!(
        answer,
        LeaseAnswer::Taken {
            owner: "a".into(),
            token: 1,
            pttl_ms: match answer {
                LeaseAnswer::Taken { pttl_ms, .. } => pttl_ms,
                _ => unreachable!(),
            }
        }
    );
    // Release by a non-owner (or with a wrong token) is refused.
    assert!(!b.scripts.release("venue:hl", 1).await.unwrap());
    assert!(!a.scripts.release("venue:hl", 7).await.unwrap());

    // The owner releases: the other node becomes the owner with the next token.
    a.release_all().await;
    assert_eq!(a.leases().held("venue:hl"), None);
    b.tick().await;
    assert_eq!(b.leases().held("venue:hl").unwrap().token, 2);
    a.tick().await;
    assert_eq!(a.leases().held("venue:hl"), None);
    assert_eq!(a.leases().owner("venue:hl"), "b");
    assert_eq!(a.leases().previous_owner("venue:hl").as_deref(), Some("b"));

    // b dies without releasing: after the TTL, a takes over with token 3.
    drop(b);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    a.tick().await;
    assert_eq!(a.leases().held("venue:hl").unwrap().token, 3);
    let snapshot = a.leases().snapshot();
    assert_eq!(snapshot[0].state, "held");
    assert_eq!(snapshot[0].owner.as_deref(), Some("a"));
    assert_eq!(snapshot[0].token, Some(3));
}

/// Two processes started with one node id (a copied config, a restart while the old
/// process still runs) are two owners to the scripts: the second is refused while the
/// first holds the lease, and cannot release it.
#[tokio::test]
async fn two_processes_with_one_node_id_never_share_a_lease() {
    let server = RedisServer::start().unwrap();
    let first = keeper(&server.url(), "a", &["venue:hl"]);
    let twin = keeper(&server.url(), "a", &["venue:hl"]);
    first.tick().await;
    twin.tick().await;
    let held = first.leases().held("venue:hl").expect("the first took it");
    assert_eq!(
        twin.leases().held("venue:hl"),
        None,
        "the twin holds nothing"
    );
    assert!(!twin.scripts.release("venue:hl", held.token).await.unwrap());
    first.tick().await;
    assert_eq!(first.leases().held("venue:hl").unwrap().token, held.token);
}

/// An agent that trades follows its venue's lease: a node that does not hold the venue
/// never asks for the agent, and one that loses the venue hands the agent back, so the
/// venue's new owner runs it at its next tick (not after the TTL).
#[tokio::test]
async fn an_agent_lease_follows_its_venue_lease_to_the_venues_owner() {
    let server = RedisServer::start().unwrap();
    let follower = |node: &str| {
        let k = keeper(&server.url(), node, &["venue:hl"]);
        assert!(k.leases().follow("agent:copier", "venue:hl"));
        k
    };
    let (a, b) = (follower("a"), follower("b"));
    let state = |k: &LeaseKeeper, r: &str| {
        let s = k.leases().snapshot();
        let l = s.iter().find(|l| l.resource == r).unwrap().clone();
        (l.state, l.follows)
    };

    a.tick().await;
    b.tick().await;
    assert!(a.leases().held("venue:hl").is_some());
    assert!(a.leases().held("agent:copier").is_some());
    assert_eq!(
        state(&b, "agent:copier"),
        ("waiting".to_string(), Some("venue:hl".to_string()))
    );
    assert_eq!(
        b.leases().owner("agent:copier"),
        "the node holding venue:hl (a)"
    );
    // b never asked for the agent: its lease in Redis is a's, renewed by a alone.
    a.tick().await;
    b.tick().await;
    assert!(a.leases().held("agent:copier").is_some());
    assert_eq!(state(&b, "agent:copier").0, "waiting");

    // The venue moves to b (a's lease on it is gone from Redis, as after a lost renewal):
    // b takes the venue, finds the agent still a's, and a hands the agent back at its
    // next tick, when it sees the venue held by b.
    let venue = a.leases().held("venue:hl").unwrap();
    let agent = a.leases().held("agent:copier").unwrap();
    assert!(a.scripts.release("venue:hl", venue.token).await.unwrap());
    b.tick().await;
    assert!(b.leases().held("venue:hl").is_some());
    assert_eq!(b.leases().held("agent:copier"), None);
    assert_eq!(state(&b, "agent:copier").0, "standby");
    a.tick().await;
    assert_eq!(a.leases().held("venue:hl"), None);
    assert_eq!(a.leases().held("agent:copier"), None);
    assert_eq!(state(&a, "agent:copier").0, "waiting");
    b.tick().await;
    let moved = b
        .leases()
        .held("agent:copier")
        .expect("b runs the agent beside its venue");
    assert!(moved.token > agent.token);
    assert_eq!(
        b.leases().previous_owner("agent:copier").as_deref(),
        Some("a")
    );

    // A follower only ever waited for (its venue's owner died, both leases expired): its
    // previous owner is the venue's.
    let c = follower("c");
    c.tick().await;
    assert_eq!(state(&c, "agent:copier").0, "waiting");
    drop(b);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    c.tick().await;
    c.tick().await;
    assert!(c.leases().held("agent:copier").is_some());
    assert_eq!(
        c.leases().previous_owner("agent:copier").as_deref(),
        Some("b")
    );
}

#[tokio::test]
async fn a_replica_write_with_a_stale_token_is_refused_by_redis() {
    let server = RedisServer::start().unwrap();
    let a = keeper(&server.url(), "a", &["venue:hl"]);
    let b = keeper(&server.url(), "b", &["venue:hl"]);
    a.tick().await;
    let token_a = a.leases().held("venue:hl").unwrap().token;
    let replica_a = LedgerReplica::start(a.scripts.link().clone());
    let replica_b = LedgerReplica::start(b.scripts.link().clone());

    replica_a
        .write(
            "hl",
            token_a,
            "c1",
            &serde_json::json!({"status": "intent"}),
        )
        .await
        .unwrap();
    // b does not hold the lease: whatever token it claims, Redis refuses.
    let err = replica_b
        .write(
            "hl",
            token_a,
            "c2",
            &serde_json::json!({"status": "intent"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReplicaError::Stale { owner, .. } if owner == "a"),
        "{err:?}"
    );

    // a's lease goes to b; a's writes with its old token are refused from then on, both
    // the synchronous intent and a queued answer.
    a.release_all().await;
    b.tick().await;
    let token_b = b.leases().held("venue:hl").unwrap().token;
    assert!(token_b > token_a);
    let err = replica_a
        .write(
            "hl",
            token_a,
            "c3",
            &serde_json::json!({"status": "intent"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReplicaError::Stale { owner, .. } if owner == "b"),
        "{err:?}"
    );
    replica_a.queue(
        "hl",
        token_a,
        "c1",
        &serde_json::json!({"status": "filled"}),
    );
    replica_a.drained(Duration::from_secs(2)).await;
    replica_b
        .write(
            "hl",
            token_b,
            "c4",
            &serde_json::json!({"status": "intent"}),
        )
        .await
        .unwrap();

    let mut seen: Vec<serde_json::Value> = replica_b.read("hl").await.unwrap();
    seen.sort_by_key(|v| v.to_string());
    assert_eq!(
        seen,
        [
            serde_json::json!({"status": "intent"}),
            serde_json::json!({"status": "intent"}),
        ]
    );
    // Queued answers of the owner are written in order: the last state wins.
    replica_b.queue("hl", token_b, "c4", &serde_json::json!({"status": "acked"}));
    replica_b.queue(
        "hl",
        token_b,
        "c4",
        &serde_json::json!({"status": "filled"}),
    );
    replica_b.drained(Duration::from_secs(2)).await;
    let raw: String = b
        .scripts
        .link()
        .query(redis::cmd("HGET").arg("t:ledger:hl").arg("c4"))
        .await
        .unwrap();
    assert_eq!(raw, r#"{"status":"filled"}"#);
}

#[tokio::test]
async fn a_holder_whose_redis_hangs_stops_using_the_lease_before_it_can_expire() {
    let server = RedisServer::start().unwrap();
    let a = keeper(&server.url(), "a", &["venue:hl", "agent:bot"]);
    let leases = a.leases().clone();
    let ttl = a.timings.ttl;
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(a.run(stop_rx));

    // Held, renewed on its timer.
    let until = Instant::now() + Duration::from_secs(3);
    while leases.held("venue:hl").is_none() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = leases
        .held("venue:hl")
        .expect("the keeper acquired the lease");
    let mut changes = leases.watch();
    changes.borrow_and_update();

    server.pause();
    let paused_at = Instant::now();
    // The last successful renewal was sent at least ttl − margin before its safe-until,
    // and no later than the pause: the lease cannot expire in Redis before
    // `paused_at + ttl`; the holder stops before `paused_at + ttl - margin`.
    let mut stopped_at = None;
    while Instant::now() < paused_at + ttl * 2 {
        if leases.held("venue:hl").is_none() && leases.held("agent:bot").is_none() {
            stopped_at = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.resume();
    let stopped_at = stopped_at.expect("the holder never stopped using its lease");
    assert!(
        stopped_at < paused_at + ttl,
        "stopped {:?} after the pause, TTL {:?}",
        stopped_at - paused_at,
        ttl
    );
    // The loss is announced (the gateway and agents wait on it).
    tokio::time::timeout(Duration::from_secs(2), changes.changed())
        .await
        .expect("the loss of the lease was announced")
        .unwrap();
    let snap = leases.snapshot();
    assert!(snap.iter().all(|s| s.state != "held"), "{snap:?}");

    // Redis back: the keeper holds the lease again (the same or a newer token).
    let until = Instant::now() + Duration::from_secs(5);
    while leases.held("venue:hl").is_none() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = leases
        .held("venue:hl")
        .expect("re-acquired after Redis returned");
    assert!(again.token >= held.token);

    // Clean stop: released in Redis.
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(leases.held("venue:hl"), None);
    let c = config(&server.url(), "probe");
    let probe = RedisLink::open(&c, None).unwrap();
    let exists: i64 = probe
        .query(redis::cmd("EXISTS").arg("t:lease:venue:hl"))
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn safe_until_is_the_send_time_plus_ttl_minus_the_margin() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let leases = Leases::new("a", ["venue:hl".to_string()]);
        let sent = Instant::now();
        let timings = LeaseTimings {
            ttl: Duration::from_secs(5),
            renew_every: Duration::from_millis(1_666),
            margin: Duration::from_secs(1),
        };
        leases.apply(
            "venue:hl",
            sent,
            timings.usable(),
            &Ok(LeaseAnswer::Held {
                token: 4,
                new: true,
            }),
        );
        // The answer took a while: safe-until still counts from the send.
        tokio::time::advance(Duration::from_millis(300)).await;
        let held = leases.held("venue:hl").unwrap();
        assert_eq!(held.safe_until, sent + Duration::from_secs(4));
        assert!(leases
            .held_at("venue:hl", sent + Duration::from_millis(3_999))
            .is_some());
        assert!(leases
            .held_at("venue:hl", sent + Duration::from_secs(4))
            .is_none());
        // A failed renewal does not extend it.
        let failed: Result<LeaseAnswer, ClusterError> = Err(ClusterError::Unreachable {
            url: "x".into(),
            reason: "timeout".into(),
        });
        leases.apply("venue:hl", Instant::now(), timings.usable(), &failed);
        assert_eq!(leases.held("venue:hl").unwrap().safe_until, held.safe_until);
        tokio::time::advance(Duration::from_millis(3_700)).await;
        assert_eq!(leases.held("venue:hl"), None);
        assert_eq!(leases.owner("venue:hl"), "none (this node's lease ran out)");
    });
}
