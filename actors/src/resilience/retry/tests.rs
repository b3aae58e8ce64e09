use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::resilience::config::{BackoffConfig, ClassRetry, RateLimitedRetry};

fn config(jitter: f64) -> RetryConfig {
    RetryConfig {
        max_attempts: 10,
        backoff: BackoffConfig {
            kind: BackoffKind::Exponential,
            base: Duration::from_millis(100),
            multiplier: 2.0,
            cap: Duration::from_secs(5),
            jitter,
        },
        timeout: ClassRetry { max_retries: 2 },
        unavailable: ClassRetry { max_retries: 3 },
        rate_limited: RateLimitedRetry {
            max_retries: 4,
            retry_after_cap: Duration::from_secs(60),
        },
    }
}

/// Runs a policy against an op that fails with `class` every time; returns the error and
/// the number of calls.
async fn always_failing(
    policy: &RetryPolicy,
    class: ErrorClass,
    deadline: Instant,
) -> (RetryError<ErrorClass>, u32) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let err = policy
        .run(deadline, move || {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(class) }
        })
        .await
        .unwrap_err();
    (err, calls.load(Ordering::SeqCst))
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[tokio::test(start_paused = true)]
async fn each_class_follows_its_policy() {
    let policy = RetryPolicy::new("t", config(0.0));
    let cases = [
        (ErrorClass::Timeout, 3),
        (ErrorClass::Unavailable, 4),
        (ErrorClass::RateLimited { retry_after: None }, 5),
        (ErrorClass::Auth, 1),
        (ErrorClass::BadRequest, 1),
    ];
    for (class, expected_calls) in cases {
        let (err, calls) = always_failing(&policy, class, far()).await;
        assert_eq!(calls, expected_calls, "{class:?}");
        assert_eq!(err.attempts(), expected_calls);
        assert_eq!(err.last_error(), Some(&class));
        match class {
            ErrorClass::Auth | ErrorClass::BadRequest => {
                assert!(matches!(err, RetryError::NotRetryable { .. }), "{err}")
            }
            _ => assert!(matches!(err, RetryError::Exhausted { .. }), "{err}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_all_classes() {
    let mut cfg = config(0.0);
    cfg.max_attempts = 2;
    let (err, calls) =
        always_failing(&RetryPolicy::new("t", cfg), ErrorClass::Unavailable, far()).await;
    assert_eq!(calls, 2);
    assert!(matches!(err, RetryError::Exhausted { .. }));
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_between_attempts() {
    let policy = RetryPolicy::new("t", config(0.0));
    let start = Instant::now();
    always_failing(&policy, ErrorClass::Unavailable, far()).await;
    // 100 + 200 + 400 ms before retries 1..3.
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn auth_is_never_retried_even_with_budget_left() {
    let policy = RetryPolicy::new("t", config(0.0));
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let err = policy
        .run(far(), move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                Err::<(), _>(if n == 0 {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::Auth
                })
            }
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        matches!(err, RetryError::NotRetryable { class: "auth", .. }),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_capped() {
    for (after, cap, expected) in [(7, 60, 7), (600, 60, 60)] {
        let mut cfg = config(0.9);
        cfg.rate_limited.retry_after_cap = Duration::from_secs(cap);
        let policy = RetryPolicy::new("t", cfg);
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let start = Instant::now();
        let v = policy
            .run(far(), move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(ErrorClass::RateLimited {
                            retry_after: Some(Duration::from_secs(after)),
                        })
                    } else {
                        Ok(42)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(v, 42);
        // Exactly the server's wait (no jitter on it), capped.
        assert_eq!(start.elapsed(), Duration::from_secs(expected));
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_would_pass_the_deadline_is_not_started() {
    let policy = RetryPolicy::new("t", config(0.0));
    let start = Instant::now();
    let deadline = start + Duration::from_millis(250);
    let (err, calls) = always_failing(&policy, ErrorClass::Unavailable, deadline).await;
    // Attempts at 0 and 100 ms; the next would start at 300 ms.
    assert_eq!(calls, 2);
    assert!(matches!(err, RetryError::WouldPassDeadline { .. }), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    // A server asking for longer than the deadline is not waited for either.
    let (err, calls) = always_failing(
        &policy,
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        },
        Instant::now() + Duration::from_secs(10),
    )
    .await;
    assert_eq!(calls, 1);
    assert!(matches!(err, RetryError::WouldPassDeadline { .. }));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_is_cut_at_the_deadline() {
    let policy = RetryPolicy::new("t", config(0.0));
    let start = Instant::now();
    let err = policy
        .run(start + Duration::from_secs(1), || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), ErrorClass>(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, RetryError::DeadlineElapsed { attempts: 1 }),
        "{err}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

/// tokio's timers fire on whole-millisecond ticks, rounding a wake-up *up*: a retry whose
/// wait ends a fraction of a millisecond before the deadline used to wake exactly at it
/// and start an attempt there (found by `no_retry_ever_passes_the_deadline`).
#[test]
fn a_wait_that_ends_within_the_last_millisecond_is_not_started() {
    for short_us in (25..1000).step_by(25) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cfg = config(0.0);
            cfg.backoff.kind = BackoffKind::Linear;
            cfg.backoff.base = Duration::from_millis(2);
            let policy = RetryPolicy::new("t", cfg);
            let start = Instant::now();
            let deadline = start + Duration::from_millis(20);
            let starts = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let s = starts.clone();
            let _ = policy
                .run(deadline, move || {
                    let first = s.lock().is_empty();
                    s.lock().push(Instant::now());
                    async move {
                        if first {
                            // The first attempt ends `short_us` less than one wait
                            // before the deadline, off the timer's millisecond grid.
                            let until = deadline
                                - Duration::from_millis(2)
                                - Duration::from_micros(short_us);
                            tokio::time::advance(until - Instant::now()).await;
                        }
                        Err::<(), _>(ErrorClass::Unavailable)
                    }
                })
                .await;
            for (i, t) in starts.lock().iter().enumerate().skip(1) {
                assert!(
                    *t < deadline,
                    "{short_us} us short: attempt {} started {:?} after the deadline",
                    i + 1,
                    *t - deadline
                );
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_retry_ever_passes_the_deadline(
        kind in prop::sample::select(vec![BackoffKind::Exponential, BackoffKind::Linear, BackoffKind::Fibonacci]),
        base_ms in 1u64..500, deadline_ms in 0u64..5_000, latency_ms in 0u64..300, jitter in 0.0f64..=1.0,
        retry_after_s in prop::option::of(0u64..10),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let mut cfg = config(jitter);
            cfg.backoff.kind = kind;
            cfg.backoff.base = Duration::from_millis(base_ms);
            cfg.rate_limited.max_retries = 50;
            cfg.unavailable.max_retries = 50;
            cfg.max_attempts = 100;
            let policy = RetryPolicy::new("t", cfg);
            let start = Instant::now();
            let deadline = start + Duration::from_millis(deadline_ms);
            let starts = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let s = starts.clone();
            let class = match retry_after_s {
                Some(s) => ErrorClass::RateLimited { retry_after: Some(Duration::from_secs(s)) },
                None => ErrorClass::Unavailable,
            };
            let _ = policy.run(deadline, move || {
                s.lock().push(Instant::now());
                async move {
                    tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                    Err::<(), _>(class)
                }
            }).await;
            prop_assert!(Instant::now() <= deadline.max(start), "returned after the deadline");
            for (i, t) in starts.lock().iter().enumerate().skip(1) {
                prop_assert!(*t < deadline, "attempt {} started at or after the deadline", i + 1);
            }
            Ok(())
        })?;
    }
}

#[test]
fn schedules_grow_as_configured() {
    let ms = Duration::from_millis;
    let take = |kind| {
        Schedule::new(kind, ms(100), 3.0, ms(1_000), 0.0)
            .take(6)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        take(BackoffKind::Exponential),
        vec![ms(100), ms(300), ms(900), ms(1_000), ms(1_000), ms(1_000)]
    );
    assert_eq!(
        take(BackoffKind::Linear),
        vec![ms(100), ms(200), ms(300), ms(400), ms(500), ms(600)]
    );
    assert_eq!(
        take(BackoffKind::Fibonacci),
        vec![ms(100), ms(100), ms(200), ms(300), ms(500), ms(800)]
    );
}

proptest! {
    #[test]
    fn jitter_only_shortens_within_its_fraction(jitter in 0.0f64..=1.0, base_ms in 1u64..1_000) {
        let base = Duration::from_millis(base_ms);
        let nominal: Vec<_> = Schedule::new(BackoffKind::Linear, base, 2.0, base * 100, 0.0).take(8).collect();
        let jittered: Vec<_> = Schedule::new(BackoffKind::Linear, base, 2.0, base * 100, jitter).take(8).collect();
        for (n, j) in nominal.iter().zip(&jittered) {
            prop_assert!(*j <= *n);
            prop_assert!(j.as_secs_f64() >= n.as_secs_f64() * (1.0 - jitter) - 1e-9);
        }
    }
}

#[test]
fn retry_after_parses_seconds_and_http_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let cap = Duration::from_secs(120);
    assert_eq!(
        parse_retry_after("30", now, cap),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after(" 1.5 ", now, cap),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_retry_after("3600", now, cap), Some(cap));
    let date = httpdate::fmt_http_date(now + Duration::from_secs(45));
    assert_eq!(
        parse_retry_after(&date, now, cap),
        Some(Duration::from_secs(45))
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(45));
    assert_eq!(parse_retry_after(&past, now, cap), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("-5", now, cap), None);
    assert_eq!(parse_retry_after("soon", now, cap), None);
}

#[test]
fn server_quota_parses_generic_headers() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let q = parse_server_quota(Some("1200"), "17", "42", now, Duration::from_secs(60)).unwrap();
    assert_eq!(
        q,
        crate::resilience::ServerQuota {
            limit: Some(1200),
            remaining: 17,
            reset_after: Duration::from_secs(42)
        }
    );
    assert_eq!(
        parse_server_quota(None, "x", "1", now, Duration::from_secs(60)),
        None
    );
}

#[test]
fn kit_errors_classify_for_the_loop() {
    use crate::resilience::breaker::BreakerError;
    use crate::resilience::limiter::LimitError;
    let wait = Duration::from_secs(3);
    let late = LimitError::WouldPassDeadline {
        limit: "l".into(),
        cost: 1,
        wait,
        left: Duration::ZERO,
    };
    assert_eq!(
        late.class(),
        ErrorClass::RateLimited {
            retry_after: Some(wait)
        }
    );
    let huge = LimitError::CostExceedsCapacity {
        limit: "l".into(),
        cost: 9,
        max: 1,
    };
    assert_eq!(huge.class(), ErrorClass::BadRequest);
    let full = LimitError::QueueFull {
        limit: "l".into(),
        queued: 1,
        bound: 1,
    };
    assert_eq!(full.class(), ErrorClass::Unavailable);
    let open = BreakerError::Open {
        target: "t".into(),
        retry_in: wait,
    };
    assert_eq!(open.class(), ErrorClass::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn a_class_with_its_own_schedule_counts_only_its_own_retries() {
    // Timeouts: the shared exponential 100, 200 ms; unavailable: fixed 30 ms.
    let policy = RetryPolicy::new("t", config(0.0)).with_class_backoff(
        RetryClass::Unavailable,
        BackoffConfig {
            kind: BackoffKind::Exponential,
            base: Duration::from_millis(30),
            multiplier: 1.0,
            cap: Duration::from_secs(5),
            jitter: 0.0,
        },
    );
    let started = Instant::now();
    let (err, calls) = always_failing(&policy, ErrorClass::Unavailable, far()).await;
    assert!(matches!(err, RetryError::Exhausted { .. }), "{err}");
    assert_eq!(calls, 4);
    assert_eq!(Instant::now() - started, Duration::from_millis(90));
    let started = Instant::now();
    let (_, calls) = always_failing(&policy, ErrorClass::Timeout, far()).await;
    assert_eq!(calls, 3);
    assert_eq!(Instant::now() - started, Duration::from_millis(300));
}

/// A retriable class whose error says "not here" (a refused connection, a guard's
/// refusal).
#[derive(Debug)]
struct Elsewhere;

impl Classify for Elsewhere {
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
    fn retry_in_place(&self) -> bool {
        false
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_that_asks_to_move_on_is_not_retried_whatever_its_class() {
    let policy = RetryPolicy::new("t", config(0.0));
    let calls = AtomicU32::new(0);
    let err = policy
        .run(far(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Elsewhere) }
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RetryError::NotRetryable {
                class: "unavailable",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn waits_end_before_the_wait_bound_while_attempts_run_to_the_deadline() {
    let policy = RetryPolicy::new("t", config(0.0));
    let now = Instant::now();
    let calls = AtomicU32::new(0);
    // First wait 100 ms, second 200 ms: the second would end at 300 ms, past the bound.
    let err = policy
        .run_within(
            now + Duration::from_secs(10),
            now + Duration::from_millis(250),
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(ErrorClass::Timeout) }
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RetryError::WouldPassDeadline { .. }),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(Instant::now() - now, Duration::from_millis(100));
}
