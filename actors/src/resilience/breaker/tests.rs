use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::resilience::config::{AdaptiveConfig, BreakerConfig};
use crate::store::{trees, Store};

/// A breaker that opens after 3 failures in 10 s for 30 s (also used by the cluster's
/// shared-breaker tests).
pub(crate) fn config() -> BreakerConfig {
    BreakerConfig {
        enabled: true,
        window: Duration::from_secs(10),
        failure_count: 3,
        failure_ratio: 0.5,
        min_calls: 0,
        open_for: Duration::from_secs(30),
        max_open_for: Duration::from_secs(100),
        open_backoff: 2.0,
        half_open_probes: 2,
        adaptive: None,
    }
}

fn breaker(cfg: BreakerConfig) -> (CircuitBreaker, Arc<ManualClock>) {
    let clock = ManualClock::new(1_000_000);
    (
        CircuitBreaker::new("venue", cfg, clock.clone(), None),
        clock,
    )
}

fn fail(b: &CircuitBreaker) {
    b.check().unwrap().failure(&ErrorClass::Unavailable);
}

fn succeed(b: &CircuitBreaker) {
    b.check().unwrap().success(Duration::from_millis(10));
}

#[test]
fn opens_at_the_failure_count_and_rejects_while_open() {
    let (b, clock) = breaker(config());
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(29_999);
    let err = b.check().unwrap_err();
    assert_eq!(
        err,
        BreakerError::Open {
            target: "venue".into(),
            retry_in: Duration::from_millis(1)
        }
    );
    assert!(err.to_string().contains("venue"));
}

#[test]
fn failures_outside_the_window_do_not_open() {
    let (b, clock) = breaker(config());
    fail(&b);
    fail(&b);
    clock.advance(11_000);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn opens_at_the_failure_ratio() {
    let mut cfg = config();
    cfg.failure_count = 0;
    cfg.min_calls = 10;
    let (b, _) = breaker(cfg);
    for _ in 0..5 {
        succeed(&b);
    }
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed, "9 calls: below min_calls");
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open, "5 of 10 failed");
}

#[test]
fn bad_requests_and_auth_errors_do_not_count_against_the_target() {
    let (b, _) = breaker(config());
    for _ in 0..10 {
        b.check().unwrap().failure(&ErrorClass::BadRequest);
        b.check().unwrap().failure(&ErrorClass::Auth);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

fn open_then_wait(b: &CircuitBreaker, clock: &ManualClock) {
    for _ in 0..3 {
        fail(b);
    }
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(30_000);
}

#[test]
fn half_open_lets_exactly_the_probes_through_and_closes_on_success() {
    let (b, clock) = breaker(config());
    open_then_wait(&b, &clock);
    let p1 = b.check().unwrap();
    let p2 = b.check().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(
        b.check().unwrap_err(),
        BreakerError::ProbesBusy {
            target: "venue".into(),
            probes: 2
        }
    );
    p1.success(Duration::from_millis(5));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(
        b.check().is_err(),
        "one probe succeeded, one in flight: no third call"
    );
    p2.success(Duration::from_millis(5));
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(!b.check().unwrap().is_probe());
}

#[test]
fn a_failed_probe_reopens_for_longer() {
    let (b, clock) = breaker(config());
    open_then_wait(&b, &clock);
    let p1 = b.check().unwrap();
    let p2 = b.check().unwrap();
    p1.failure(&ErrorClass::Timeout);
    assert_eq!(b.state(), BreakerState::Open);
    // The other probe's late success says nothing about the new open period.
    p2.success(Duration::from_millis(5));
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(59_999);
    assert!(
        matches!(b.check(), Err(BreakerError::Open { .. })),
        "open period doubled to 60 s"
    );
    clock.advance(1);
    assert!(b.check().unwrap().is_probe());
}

#[test]
fn a_dropped_probe_frees_its_slot() {
    let (b, clock) = breaker(config());
    open_then_wait(&b, &clock);
    let p1 = b.check().unwrap();
    let _p2 = b.check().unwrap();
    assert!(b.check().is_err());
    drop(p1);
    assert!(b.check().unwrap().is_probe());
}

#[test]
fn adaptive_counts_slow_successes_as_failures() {
    let mut cfg = config();
    cfg.adaptive = Some(AdaptiveConfig {
        slow_call_factor: 3.0,
        slow_call_min: Duration::from_millis(100),
        ..AdaptiveConfig::default()
    });
    let (b, _) = breaker(cfg);
    for _ in 0..20 {
        b.check().unwrap().success(Duration::from_millis(50));
    }
    for _ in 0..3 {
        b.check().unwrap().success(Duration::from_millis(120));
    }
    assert_eq!(b.state(), BreakerState::Closed, "120 ms is under 3 × 50 ms");
    for _ in 0..3 {
        b.check().unwrap().success(Duration::from_secs(2));
    }
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "three 2 s calls against a 50 ms norm"
    );
}

#[test]
fn adaptive_ratio_rises_above_a_flaky_baseline() {
    let mut cfg = config();
    cfg.failure_count = 0;
    cfg.min_calls = 10;
    cfg.failure_ratio = 0.2;
    let flaky = |adaptive: Option<AdaptiveConfig>| {
        let mut cfg = cfg.clone();
        cfg.adaptive = adaptive;
        let (b, clock) = breaker(cfg);
        // A long history at ~25 % errors, spread so the window only holds the tail.
        for i in 0..200 {
            clock.advance(1_000);
            if i % 4 == 3 {
                b.check().unwrap().failure(&ErrorClass::Unavailable);
            } else {
                b.check().unwrap().success(Duration::ZERO);
            }
            if b.state() != BreakerState::Closed {
                return b.state();
            }
        }
        b.state()
    };
    assert_eq!(
        flaky(None),
        BreakerState::Open,
        "fixed 20 % threshold trips on a 25 % target"
    );
    assert_eq!(
        flaky(Some(AdaptiveConfig {
            ewma_alpha: 0.2,
            ..AdaptiveConfig::default()
        })),
        BreakerState::Closed
    );
}

#[test]
fn disabled_breaker_never_opens() {
    let mut cfg = config();
    cfg.enabled = false;
    let (b, _) = breaker(cfg);
    for _ in 0..10 {
        fail(&b);
    }
    assert!(b.check().is_ok());
}

#[test]
fn open_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let clock = ManualClock::new(1_000_000);
    {
        let store = Store::open(&path).unwrap();
        let tree = store.tree::<BreakerRecord>(trees::BREAKERS).unwrap();
        let b = CircuitBreaker::new("hyperliquid", config(), clock.clone(), Some(tree));
        for _ in 0..3 {
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Open);
        // Transitions are written with `put`, on disk at sled's next periodic flush
        // (every 500 ms); flush now as that would have before a restart.
        store.flush().unwrap();
    }
    clock.advance(10_000);
    let store = Store::open(&path).unwrap();
    let tree = store.tree::<BreakerRecord>(trees::BREAKERS).unwrap();
    let rec = tree.get("hyperliquid").unwrap().unwrap();
    assert_eq!(rec.state, BreakerState::Open);
    let b = CircuitBreaker::new("hyperliquid", config(), clock.clone(), Some(tree.clone()));
    assert_eq!(
        b.check().unwrap_err(),
        BreakerError::Open {
            target: "hyperliquid".into(),
            retry_in: Duration::from_secs(20)
        }
    );
    // Another target in the same tree starts closed.
    let other = CircuitBreaker::new("binance", config(), clock.clone(), Some(tree.clone()));
    assert!(other.check().is_ok());
    clock.advance(20_000);
    let probe = b.check().unwrap();
    assert!(probe.is_probe());
    probe.success(Duration::from_millis(1));
    b.check().unwrap().success(Duration::from_millis(1));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(
        tree.get("hyperliquid").unwrap().unwrap().state,
        BreakerState::Closed
    );
}

#[test]
fn state_and_transitions_are_exported() {
    let recorder = crate::resilience::test_recorder::TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (b, clock) = breaker(config());
    assert_eq!(
        recorder.get("orrery_breaker_state{target=venue}"),
        Some(0.0)
    );
    open_then_wait(&b, &clock);
    assert_eq!(
        recorder.get("orrery_breaker_state{target=venue}"),
        Some(2.0)
    );
    let probe = b.check().unwrap();
    assert_eq!(
        recorder.get("orrery_breaker_state{target=venue}"),
        Some(1.0)
    );
    b.check().unwrap().success(Duration::ZERO);
    assert!(b.check().is_err());
    assert_eq!(
        recorder.get("orrery_breaker_rejected_total{target=venue}"),
        Some(1.0)
    );
    probe.success(Duration::ZERO);
    assert_eq!(
        recorder.get("orrery_breaker_state{target=venue}"),
        Some(0.0)
    );
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        assert_eq!(
            recorder.get(&format!(
                "orrery_breaker_transitions_total{{target=venue,from={from},to={to}}}"
            )),
            Some(1.0),
            "{from} -> {to}"
        );
    }
}

#[test]
fn a_board_announces_own_openings_and_applies_peers_without_reannouncing() {
    let board = BreakerBoard::new();
    let mut openings = board.take_openings().unwrap();
    assert!(board.take_openings().is_none(), "one reader");
    let (b, clock) = breaker(config());
    b.join_board(&board);
    assert_eq!(board.targets(), ["venue"]);
    fail(&b);
    fail(&b);
    fail(&b);
    let own = openings.try_recv().unwrap();
    assert_eq!(own.target, "venue");
    assert_eq!(own.until_ms, 1_000_000 + 30_000);
    assert_eq!(own.reason, "failure threshold reached");

    // A peer's opening of another target leaves this breaker alone; one of this target
    // that ends later keeps it open longer, and is not announced again.
    let peer = |target: &str, until_ms| PeerOpening {
        target: target.into(),
        until_ms,
        node: "node-b".into(),
        reason: "failure threshold reached".into(),
    };
    assert_eq!(board.apply_peer(peer("other", 1_100_000)), 0);
    assert_eq!(
        board.apply_peer(peer("venue", 1_020_000)),
        0,
        "open longer already"
    );
    assert_eq!(board.apply_peer(peer("venue", 1_050_000)), 1);
    clock.advance(40_000);
    assert_eq!(b.state(), BreakerState::Open);
    assert!(
        openings.try_recv().is_err(),
        "a peer's opening is not re-announced"
    );
    // After the peer's deadline the node probes on its own.
    clock.advance(10_000);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    succeed(&b);
    succeed(&b);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_breaker_that_joins_later_applies_a_peer_opening_still_in_force() {
    let board = BreakerBoard::new();
    let clock = ManualClock::new(1_000_000);
    board.apply_peer(PeerOpening {
        target: "venue".into(),
        until_ms: 1_010_000,
        node: "node-b".into(),
        reason: "r".into(),
    });
    let b = CircuitBreaker::new("venue", config(), clock.clone(), None);
    b.join_board(&board);
    assert!(matches!(b.check(), Err(BreakerError::Open { .. })));
    // A closed peer opening (deadline passed) does nothing to a newcomer.
    clock.advance(20_000);
    let c = CircuitBreaker::new("venue", config(), clock.clone(), None);
    c.join_board(&board);
    assert_eq!(c.state(), BreakerState::Closed);
}

#[test]
fn a_breaker_persisted_in_a_store_with_a_board_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let board = BreakerBoard::new();
    board.attach_to(&store);
    let (b, _clock) = breaker(config());
    let b = b.persisted_in(store.tree::<BreakerRecord>(trees::BREAKERS).unwrap());
    assert_eq!(board.targets(), ["venue"]);
    drop(b);
    assert!(
        board.targets().is_empty(),
        "a dropped breaker leaves the board"
    );
}
