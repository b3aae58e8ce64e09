//! The guard's rule and step order, on tokio's paused clock: every wait below is a
//! virtual one, so nothing depends on how fast the machine is.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;
use crate::clock::ManualClock;
use crate::resilience::config::{BreakerConfig, RetryConfig};

/// A caller's error type: a refusal, or what the target answered.
#[derive(Debug, Clone, PartialEq)]
enum TestError {
    Refused(Refusal),
    Failed(ErrorClass),
}

impl From<Refusal> for TestError {
    fn from(r: Refusal) -> Self {
        TestError::Refused(r)
    }
}

impl Classify for TestError {
    fn class(&self) -> ErrorClass {
        match self {
            TestError::Refused(r) => r.class(),
            TestError::Failed(c) => *c,
        }
    }
}

fn guard_with(breaker: BreakerConfig) -> Guard {
    let mut retry = RetryConfig::default();
    retry.backoff.base = Duration::from_millis(10);
    retry.backoff.jitter = 0.0;
    Guard::new(
        "venue",
        CircuitBreaker::new("venue", breaker, ManualClock::new(0), None),
        RetryPolicy::new("venue", retry),
    )
}

fn guard() -> Guard {
    guard_with(BreakerConfig::default())
}

/// Steps in the order they ran.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<&'static str>>>);

impl Log {
    fn push(&self, step: &'static str) {
        self.0.lock().push(step);
    }
    fn steps(&self) -> Vec<&'static str> {
        self.0.lock().clone()
    }
}

/// Runs `call` with a limiter draw that always admits and an op answering `answers` in
/// turn (then `Ok`), logging both.
async fn run(
    g: &Guard,
    call: GuardedCall<'_>,
    log: &Log,
    answers: &[Result<u32, TestError>],
) -> Result<u32, TestError> {
    let next = AtomicU32::new(0);
    g.run(
        call,
        |_bound| async {
            log.push("limit");
            Ok::<(), LimitError>(())
        },
        |()| async {
            log.push("send");
            let i = next.fetch_add(1, Ordering::SeqCst) as usize;
            answers.get(i).cloned().unwrap_or(Ok(7))
        },
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_state_change_is_refused_at_once_during_a_pause() {
    let g = guard();
    g.pause(Duration::from_secs(5), "HTTP 429");
    let log = Log::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let err = run(&g, GuardedCall::state_change("order", deadline), &log, &[])
        .await
        .unwrap_err();
    let TestError::Refused(Refusal::Paused {
        retry_in,
        effect,
        reason,
        ..
    }) = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*effect, Effect::StateChange);
    assert_eq!(*retry_in, Duration::from_secs(5));
    assert_eq!(reason, "HTTP 429");
    assert_eq!(
        err.class(),
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(5))
        }
    );
    assert_eq!(Instant::now(), started, "refused without waiting");
    assert!(log.steps().is_empty(), "neither drawn nor sent");
    let text = Refusal::Paused {
        target: "venue".into(),
        what: "order".into(),
        effect: Effect::StateChange,
        retry_in: Duration::from_secs(5),
        reason: "HTTP 429".into(),
    }
    .to_string();
    assert!(text.contains("never waits out a pause"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_read_waits_out_a_pause_shorter_than_its_deadline() {
    let g = guard();
    g.pause(Duration::from_secs(1), "HTTP 429");
    let log = Log::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(2);
    let value = run(&g, GuardedCall::read("l2Book", deadline), &log, &[])
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(log.steps(), ["limit", "send"]);
    let waited = Instant::now() - started;
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(!g.is_paused());
}

#[tokio::test(start_paused = true)]
async fn a_read_fails_typed_at_once_when_the_pause_outlasts_its_deadline() {
    let g = guard();
    g.pause(Duration::from_secs(5), "HTTP 418");
    let log = Log::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(2);
    let err = run(&g, GuardedCall::read("account", deadline), &log, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TestError::Refused(Refusal::Paused { retry_in, effect: Effect::Read, .. })
            if *retry_in == Duration::from_secs(5)),
        "{err:?}"
    );
    assert_eq!(Instant::now(), started);
    assert!(log.steps().is_empty());
    // A model call keeps half its deadline for the router: a pause past that half is
    // not waited on either.
    let g = guard();
    g.pause(Duration::from_millis(800), "HTTP 429");
    let deadline = Instant::now() + Duration::from_secs(1);
    let call = GuardedCall::read("completion", deadline)
        .waits_until(Instant::now() + Duration::from_millis(500));
    assert!(matches!(
        run(&g, call, &log, &[]).await,
        Err(TestError::Refused(Refusal::Paused { .. }))
    ));
    assert!(log.steps().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pause_extended_while_a_read_waits_is_waited_out_too() {
    let g = Arc::new(guard());
    g.pause(Duration::from_secs(1), "first");
    let extender = g.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        extender.pause(Duration::from_secs(1), "second");
    });
    let log = Log::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    run(&g, GuardedCall::read("quote", deadline), &log, &[])
        .await
        .unwrap();
    assert!(Instant::now() - started >= Duration::from_millis(1500));
    // A shorter pause never ends a longer one.
    g.pause(Duration::from_secs(10), "long");
    g.pause(Duration::from_secs(1), "short");
    assert_eq!(g.pause_gate().remaining(), Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn limiter_then_breaker_then_send_and_a_read_is_retried_per_class() {
    let g = guard();
    let log = Log::default();
    let deadline = Instant::now() + Duration::from_secs(5);
    let answers = [
        Err(TestError::Failed(ErrorClass::Unavailable)),
        Err(TestError::Failed(ErrorClass::Timeout)),
    ];
    let value = run(&g, GuardedCall::read("quote", deadline), &log, &answers)
        .await
        .unwrap();
    assert_eq!(value, 7);
    // Every attempt draws from the limiter again before it is sent.
    assert_eq!(
        log.steps(),
        ["limit", "send", "limit", "send", "limit", "send"]
    );
    // Never retried: auth.
    let log = Log::default();
    let err = run(
        &g,
        GuardedCall::read("quote", deadline),
        &log,
        &[Err(TestError::Failed(ErrorClass::Auth))],
    )
    .await
    .unwrap_err();
    assert_eq!(err, TestError::Failed(ErrorClass::Auth));
    assert_eq!(log.steps(), ["limit", "send"]);
}

#[tokio::test(start_paused = true)]
async fn a_state_change_is_sent_once_whatever_its_failure() {
    let g = guard();
    let deadline = Instant::now() + Duration::from_secs(5);
    for class in [
        ErrorClass::Unavailable,
        ErrorClass::Timeout,
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_millis(10)),
        },
    ] {
        let log = Log::default();
        let err = run(
            &g,
            GuardedCall::state_change("order", deadline),
            &log,
            &[Err(TestError::Failed(class))],
        )
        .await
        .unwrap_err();
        assert_eq!(err, TestError::Failed(class));
        assert_eq!(log.steps(), ["limit", "send"], "{class}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_refuses_after_the_limiter_draw_and_is_not_retried() {
    let g = guard_with(BreakerConfig {
        failure_count: 1,
        min_calls: 0,
        open_for: Duration::from_secs(60),
        ..BreakerConfig::default()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = Log::default();
    // One counted failure opens it (the read's retry meets the open breaker).
    let err = run(
        &g,
        GuardedCall::read("quote", deadline),
        &log,
        &[Err(TestError::Failed(ErrorClass::Unavailable))],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TestError::Refused(Refusal::Breaker(BreakerError::Open { .. }))
        ),
        "{err:?}"
    );
    assert_eq!(log.steps(), ["limit", "send", "limit"]);
    let log = Log::default();
    let started = Instant::now();
    let err = run(&g, GuardedCall::read("quote", deadline), &log, &[])
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unavailable);
    assert_eq!(log.steps(), ["limit"], "drawn, refused, not retried");
    assert_eq!(Instant::now(), started);
}

#[tokio::test(start_paused = true)]
async fn a_limiter_refusal_is_typed_and_nothing_is_sent() {
    let g = guard();
    let deadline = Instant::now() + Duration::from_secs(1);
    let sent = AtomicU32::new(0);
    let drawn = AtomicU32::new(0);
    let err: TestError = g
        .run(
            GuardedCall::read("candles", deadline),
            |_bound| async {
                drawn.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(LimitError::WouldPassDeadline {
                    limit: "venue/weight".into(),
                    cost: 20,
                    wait: Duration::from_secs(30),
                    left: Duration::from_secs(1),
                })
            },
            |()| async {
                sent.fetch_add(1, Ordering::SeqCst);
                Ok::<u32, TestError>(1)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert!(err_text(&err).contains("candles"), "{err:?}");
    assert_eq!(drawn.load(Ordering::SeqCst), 1, "a refusal is not retried");
    assert_eq!(sent.load(Ordering::SeqCst), 0);
}

fn err_text(e: &TestError) -> String {
    match e {
        TestError::Refused(r) => r.to_string(),
        TestError::Failed(c) => c.to_string(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_wait_bound_is_not_waited_on() {
    let g = guard();
    let log = Log::default();
    let now = Instant::now();
    let call = GuardedCall::read("completion", now + Duration::from_secs(1))
        .waits_until(now + Duration::from_millis(500));
    let limited = ErrorClass::RateLimited {
        retry_after: Some(Duration::from_millis(800)),
    };
    let err = run(&g, call, &log, &[Err(TestError::Failed(limited))])
        .await
        .unwrap_err();
    assert_eq!(err, TestError::Failed(limited));
    assert_eq!(log.steps(), ["limit", "send"]);
    assert_eq!(Instant::now(), now, "gave up without waiting");
    // A shorter one is waited on, then the call is sent again.
    let log = Log::default();
    let short = ErrorClass::RateLimited {
        retry_after: Some(Duration::from_millis(200)),
    };
    let call = GuardedCall::read("completion", now + Duration::from_secs(1))
        .waits_until(now + Duration::from_millis(500));
    assert_eq!(
        run(&g, call, &log, &[Err(TestError::Failed(short))]).await,
        Ok(7)
    );
    assert_eq!(Instant::now() - now, Duration::from_millis(200));
    assert_eq!(log.steps(), ["limit", "send", "limit", "send"]);
}

#[tokio::test(start_paused = true)]
async fn a_read_tried_once_is_not_retried_and_is_cut_at_its_deadline() {
    let g = guard();
    let deadline = Instant::now() + Duration::from_secs(5);
    // A retryable failure goes back at once: the caller has somewhere else to go.
    let log = Log::default();
    let err = run(
        &g,
        GuardedCall::read("completion", deadline).tried_once(),
        &log,
        &[Err(TestError::Failed(ErrorClass::Unavailable))],
    )
    .await
    .unwrap_err();
    assert_eq!(err, TestError::Failed(ErrorClass::Unavailable));
    assert_eq!(log.steps(), ["limit", "send"]);
    // An attempt that outlasts the deadline is cut there, typed.
    let began = Instant::now();
    let err = g
        .run(
            GuardedCall::read("completion", began + Duration::from_secs(1)).tried_once(),
            |_| async { Ok::<(), LimitError>(()) },
            |()| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<u32, TestError>(1)
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TestError::Refused(Refusal::DeadlineElapsed { attempts: 1, .. })
        ),
        "{err:?}"
    );
    assert_eq!(began.elapsed(), Duration::from_secs(1));
}

/// A state change inside [`sending_by`]: its limiter draw may wait only until the send-by
/// instant, and a draw that ends after it leaves nothing sent; a read ignores the bound.
#[tokio::test(start_paused = true)]
async fn a_state_change_is_never_sent_after_its_send_by_instant() {
    let g = guard();
    let start = Instant::now();
    let send_by = start + Duration::from_secs(1);
    let deadline = start + Duration::from_secs(30);
    let bounds = Mutex::new(Vec::new());
    let sent = AtomicU32::new(0);
    // The limiter admits only after 2 s (past the send-by instant, within the deadline).
    let slow_draw = |bound: Instant| {
        bounds.lock().push(bound);
        async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<(), LimitError>(())
        }
    };
    let send = |()| async {
        sent.fetch_add(1, Ordering::SeqCst);
        Ok::<u32, TestError>(1)
    };
    let err = sending_by(
        Some(send_by),
        g.run(
            GuardedCall::state_change("order", deadline),
            slow_draw,
            send,
        ),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TestError::Refused(Refusal::SendByPassed { .. })),
        "{err:?}"
    );
    assert_eq!(sent.load(Ordering::SeqCst), 0, "nothing sent after send-by");
    assert_eq!(
        bounds.lock().as_slice(),
        &[send_by],
        "waits bounded by send-by"
    );
    assert!(err_text(&err).starts_with("not sent"), "{err:?}");

    // Before its send-by instant it goes; a read is not bound by it.
    let log = Log::default();
    let later = Instant::now() + Duration::from_secs(5);
    let sent_in_time = sending_by(
        Some(later),
        run(
            &g,
            GuardedCall::state_change("order", deadline + Duration::from_secs(10)),
            &log,
            &[],
        ),
    )
    .await;
    assert_eq!(sent_in_time, Ok(7));
    let past = Instant::now();
    tokio::time::advance(Duration::from_millis(1)).await;
    let read = sending_by(
        Some(past),
        run(
            &g,
            GuardedCall::read("l2Book", deadline + Duration::from_secs(10)),
            &log,
            &[],
        ),
    )
    .await;
    assert_eq!(read, Ok(7));
    assert_eq!(log.steps(), ["limit", "send", "limit", "send"]);
}
