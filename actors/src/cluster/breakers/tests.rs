use std::time::Duration;

use super::*;
use crate::clock::system_clock;
use crate::cluster::ClusterConfig;
use crate::resilience::config::BreakerConfig;
use crate::resilience::{BreakerError, BreakerRecord, CircuitBreaker, ErrorClass};
use crate::store::{trees, Store, Tree, Watch};
use crate::testkit::RedisServer;

fn breaker_config() -> BreakerConfig {
    BreakerConfig {
        half_open_probes: 1,
        ..crate::resilience::breaker::tests::config()
    }
}

/// One engine's worth: a link with its node id, a store with a board attached, and the
/// bridge running.
struct Node {
    link: RedisLink,
    tree: Tree<BreakerRecord>,
    bridge: Option<SharedBreakers>,
    board: BreakerBoard,
    _store: Store,
    _dir: tempfile::TempDir,
}

impl Node {
    fn new(url: &str, id: &str) -> Self {
        let config = ClusterConfig {
            url: url.into(),
            node_id: id.into(),
            key_prefix: "t:".into(),
            command_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(500),
            ..ClusterConfig::default()
        };
        let link = RedisLink::open(&config, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let board = BreakerBoard::new();
        board.attach_to(&store);
        Self {
            link,
            tree: store.tree(trees::VENUE_BREAKERS).unwrap(),
            bridge: None,
            board,
            _store: store,
            _dir: dir,
        }
    }

    fn breaker(&self, target: &str) -> CircuitBreaker {
        CircuitBreaker::new(target, breaker_config(), system_clock(), None)
            .persisted_in(self.tree.clone())
    }

    fn start(&mut self) {
        self.bridge = Some(SharedBreakers::start(self.link.clone(), self.board.clone()));
    }
}

fn open(b: &CircuitBreaker) {
    for _ in 0..3 {
        b.check().unwrap().failure(&ErrorClass::Unavailable);
    }
    assert!(matches!(b.check(), Err(BreakerError::Open { .. })));
}

/// The next write of `target`'s record in a node's sled tree: the same write the engine
/// turns into `EngineEvent::Breaker`.
async fn next_record(watch: &mut Watch<BreakerRecord>, target: &str) -> BreakerRecord {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (key, record) = watch.next().await.expect("store open");
            if key == target {
                return record.unwrap();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no record of {target} within 10s"))
}

/// The notice Redis keeps for `target`'s shared breaker.
async fn stored_notice(link: &RedisLink, target: &str) -> BreakerNotice {
    let raw: String = link
        .query(redis::cmd("GET").arg(record_key(link, target)))
        .await
        .unwrap();
    serde_json::from_str(&raw).unwrap()
}

/// Waits until `n` connections subscribe to the breaker channel (a real condition on the
/// server, bounded).
async fn subscribers(link: &RedisLink, n: i64) {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Result<(String, i64), _> = link
            .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel(link)))
            .await;
        if matches!(got, Ok((_, count)) if count >= n) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{n} subscribers never came: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_reaches_every_node_in_one_message_and_late_starters_read_the_record() {
    let server = RedisServer::start().unwrap();
    let mut a = Node::new(&server.url(), "node-a");
    let mut b = Node::new(&server.url(), "node-b");
    let on_a = a.breaker("hl");
    let on_b = b.breaker("hl");
    let other_on_b = b.breaker("binance");
    let mut watch_b = b.tree.watch("");
    a.start();
    b.start();
    subscribers(&a.link, 2).await;

    open(&on_a);
    let record = next_record(&mut watch_b, "hl").await;
    assert_eq!(record.state, BreakerState::Open);
    let Err(BreakerError::Open { retry_in, .. }) = on_b.check() else {
        panic!("node b's breaker of hl is not open");
    };
    assert!(retry_in > Duration::from_secs(25), "{retry_in:?}");
    assert_eq!(
        other_on_b.state(),
        BreakerState::Closed,
        "only the same target"
    );

    // The record: node a's notice, expiring with the cooldown.
    let notice = stored_notice(&a.link, "hl").await;
    assert_eq!(notice.node, "node-a");
    assert_eq!(notice.state, BreakerState::Open);
    assert_eq!(notice.until_ms, record.open_until_ms);
    let pttl: i64 = a
        .link
        .query(redis::cmd("PTTL").arg(record_key(&a.link, "hl")))
        .await
        .unwrap();
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");

    // A node that starts later opens its breaker from the record.
    let mut c = Node::new(&server.url(), "node-c");
    let on_c = c.breaker("hl");
    let mut watch_c = c.tree.watch("");
    c.start();
    let record_c = next_record(&mut watch_c, "hl").await;
    assert_eq!(record_c.state, BreakerState::Open);
    assert_eq!(record_c.open_until_ms, notice.until_ms);
    assert!(matches!(on_c.check(), Err(BreakerError::Open { .. })));

    // Node b's peer opening was not published again: the record is still node a's.
    assert_eq!(stored_notice(&a.link, "hl").await.node, "node-a");
    for node in [a, b, c] {
        node.bridge.unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_local_breakers_work_and_the_subscription_comes_back() {
    let mut server = RedisServer::start().unwrap();
    let mut a = Node::new(&server.url(), "node-a");
    let mut b = Node::new(&server.url(), "node-b");
    a.start();
    b.start();
    subscribers(&a.link, 2).await;

    server.kill();
    let on_a = a.breaker("hl");
    open(&on_a);
    // Publishing fails (logged); the local breaker refuses calls regardless.
    let err = a.link.ping().await.unwrap_err();
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
    assert!(matches!(on_a.check(), Err(BreakerError::Open { .. })));

    let hl_on_b = b.breaker("hl");
    let mut watch_b = b.tree.watch("");
    server.restart().unwrap();
    // Both subscriptions reconnect on their own.
    subscribers(&a.link, 2).await;
    // The opening made while Redis was away is shared once it answers.
    let record = next_record(&mut watch_b, "hl").await;
    assert_eq!(record.state, BreakerState::Open);
    assert!(matches!(hl_on_b.check(), Err(BreakerError::Open { .. })));
    let notice = stored_notice(&a.link, "hl").await;
    assert_eq!(
        (notice.node.as_str(), notice.until_ms),
        ("node-a", record.open_until_ms)
    );
    let on_b = b.breaker("bn");
    let bn_on_a = a.breaker("bn");
    open(&bn_on_a);
    let record = next_record(&mut watch_b, "bn").await;
    assert_eq!(record.state, BreakerState::Open);
    assert!(matches!(on_b.check(), Err(BreakerError::Open { .. })));
    for node in [a, b] {
        node.bridge.unwrap().stop().await;
    }
}

fn guard_on(node: &Node, venue: &str) -> crate::resilience::Guard {
    use crate::resilience::config::RetryConfig;
    crate::resilience::Guard::new(
        venue,
        CircuitBreaker::new(venue, breaker_config(), system_clock(), None),
        crate::resilience::RetryPolicy::new(venue, RetryConfig::default()),
    )
    .persisted_in(node.tree.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_pause_is_shared_like_a_breaker_and_late_guards_start_paused() {
    let server = RedisServer::start().unwrap();
    let mut a = Node::new(&server.url(), "node-a");
    let mut b = Node::new(&server.url(), "node-b");
    let on_a = guard_on(&a, "hl");
    let on_b = guard_on(&b, "hl");
    a.start();
    b.start();
    subscribers(&a.link, 2).await;

    on_a.pause(Duration::from_secs(20), "HTTP 429 (Retry-After 20s)");
    // No store write marks a pause: wait (bounded) for node b's gate.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !on_b.is_paused() {
        assert!(tokio::time::Instant::now() < until, "node b never paused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = on_b.pause_gate().remaining().unwrap();
    assert!(left > Duration::from_secs(15), "{left:?}");
    assert_eq!(
        on_b.breaker().state(),
        BreakerState::Closed,
        "a pause is not a breaker"
    );
    let notice = stored_notice(&a.link, "pause:hl").await;
    assert_eq!(notice.node, "node-a");
    assert!(notice.reason.contains("429"), "{}", notice.reason);

    // A guard built later on node b (a restarted connector) starts paused.
    let later = guard_on(&b, "hl");
    assert!(later.is_paused());
    for node in [a, b] {
        node.bridge.unwrap().stop().await;
    }
}
