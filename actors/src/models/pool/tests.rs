use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::*;
use crate::models::types::{ModelError, ModelRequest, Purpose, Usage};
use crate::resilience::ErrorClass;

/// Providers with scripted behaviour; no HTTP. Shared with the router's tests.
pub(crate) mod fakes {
    use super::*;

    #[derive(Debug, Clone)]
    pub(crate) enum Behaviour {
        Answer(String),
        Fail(ErrorClass),
        /// Answers after this long.
        Slow(Duration),
        /// Answers once the test adds a permit to the gate.
        Gated,
    }

    pub(crate) struct FakeProvider {
        pub id: String,
        pub behaviour: Behaviour,
        pub calls: AtomicUsize,
        pub gate: Arc<Semaphore>,
    }

    impl FakeProvider {
        pub(crate) fn new(id: &str, behaviour: Behaviour) -> Arc<Self> {
            Arc::new(Self {
                id: id.to_string(),
                behaviour,
                calls: AtomicUsize::new(0),
                gate: Arc::new(Semaphore::new(0)),
            })
        }
        pub(crate) fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Provider for FakeProvider {
        fn name(&self) -> &str {
            &self.id
        }
        fn provider(&self) -> &str {
            "fake"
        }
        fn model(&self) -> &str {
            "fake-1"
        }
        async fn complete(&self, _req: &ModelRequest) -> Result<Completion, ModelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = || Completion {
                text: format!("answer from {}", self.id),
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 5,
                },
                finish_reason: Some("stop".into()),
            };
            match &self.behaviour {
                Behaviour::Answer(text) => Ok(Completion {
                    text: text.clone(),
                    ..answer()
                }),
                Behaviour::Fail(class) => Err(ModelError::Provider {
                    deployment: self.id.clone(),
                    class: *class,
                    message: "scripted failure".into(),
                }),
                Behaviour::Slow(d) => {
                    tokio::time::sleep(*d).await;
                    Ok(answer())
                }
                Behaviour::Gated => {
                    let permit = self.gate.acquire().await;
                    permit.expect("the test never closes the gate").forget();
                    Ok(answer())
                }
            }
        }
    }

    pub(crate) fn settings(
        max_concurrent: usize,
        max_queued: usize,
        timeout_ms: u64,
    ) -> PoolSettings {
        PoolSettings {
            max_concurrent,
            max_queued,
            timeout: Duration::from_millis(timeout_ms),
            cooldown_after_failures: 2,
            cooldown: Duration::from_secs(60),
            // These fakes test the consecutive-failure rule; the cooldown when moving on
            // to a sibling is set where it is tested.
            cooldown_on_failover: false,
        }
    }

    pub(crate) fn request() -> Arc<ModelRequest> {
        Arc::new(ModelRequest::new("default", Purpose::Freeform, "hello"))
    }

    /// Polls `cond` until it holds, for at most five seconds of real time.
    pub(crate) async fn eventually(what: &str, cond: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < give_up, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

use fakes::*;

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[actix::test]
async fn answers_with_who_served_it_and_records_health() {
    let health = HealthTable::new();
    let provider = FakeProvider::new("a", Behaviour::Answer("BUY".into()));
    let pool = ModelPool::new(
        "a",
        provider.clone(),
        settings(2, 2, 1_000),
        health.entry("a"),
    )
    .start();
    let resp = pool
        .send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.text, "BUY");
    assert_eq!(
        (
            resp.deployment.as_str(),
            resp.provider.as_str(),
            resp.model.as_str()
        ),
        ("a", "fake", "fake-1")
    );
    assert_eq!(resp.usage.prompt_tokens, 10);
    assert!(!resp.cached);
    let h = health.get("a").unwrap();
    assert!(h.ewma_latency().is_some());
    assert_eq!((h.in_flight(), h.consecutive_failures()), (0, 0));
}

#[actix::test]
async fn a_running_pool_lends_its_lane_on_its_own_thread_only_until_it_stops() {
    let health = HealthTable::new();
    let provider = FakeProvider::new("a", Behaviour::Answer("BUY".into()));
    let entry = health.entry("a");
    assert!(entry.local_lane().is_none(), "no pool yet");
    let pool = ModelPool::new("a", provider.clone(), settings(2, 2, 1_000), entry.clone()).start();
    eventually("the lane open", || entry.local_lane().is_some()).await;

    // Through the lane: the pool's own admission, health and answer, no message.
    let lane = entry.local_lane().unwrap();
    let resp = lane
        .complete(&request(), far(), OnFailure::RetryInPlace, None)
        .await
        .unwrap();
    assert_eq!((resp.text.as_str(), resp.deployment.as_str()), ("BUY", "a"));
    assert_eq!((provider.calls(), entry.in_flight()), (1, 0));
    drop(lane);

    // Another thread (another arbiter) must send `Complete` instead.
    let elsewhere = entry.clone();
    let lent = std::thread::spawn(move || elsewhere.local_lane().is_some())
        .join()
        .unwrap();
    assert!(!lent);

    // A stopped pool withdraws it.
    drop(pool);
    eventually("the lane closed", || entry.local_lane().is_none()).await;
}

#[actix::test]
async fn a_slow_provider_is_cut_off_at_the_pool_timeout() {
    let health = HealthTable::new();
    let provider = FakeProvider::new("slow", Behaviour::Slow(Duration::from_secs(60)));
    let pool = ModelPool::new("slow", provider, settings(1, 1, 100), health.entry("slow")).start();
    let started = Instant::now();
    let err = pool
        .send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            ModelError::Provider {
                class: ErrorClass::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(health.get("slow").unwrap().consecutive_failures(), 1);
    assert_eq!(health.get("slow").unwrap().in_flight(), 0);
}

#[actix::test]
async fn the_callers_earlier_deadline_wins() {
    let health = HealthTable::new();
    let provider = FakeProvider::new("slow", Behaviour::Slow(Duration::from_secs(60)));
    let pool = ModelPool::new(
        "slow",
        provider,
        settings(1, 1, 30_000),
        health.entry("slow"),
    )
    .start();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(80);
    let err = pool
        .send(Complete::new(request(), deadline))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Provider {
                class: ErrorClass::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[actix::test]
async fn beyond_concurrency_and_queue_requests_are_refused_at_once() {
    let health = HealthTable::new();
    let provider = FakeProvider::new("g", Behaviour::Gated);
    let pool = ModelPool::new(
        "g",
        provider.clone(),
        settings(1, 1, 30_000),
        health.entry("g"),
    )
    .start();
    let h = health.entry("g");

    let first = pool.send(Complete::new(request(), far()));
    let first = tokio::spawn(first);
    eventually("first call in flight", || h.in_flight() == 1).await;
    let second = tokio::spawn(pool.send(Complete::new(request(), far())));
    eventually("second request queued", || h.queued() == 1).await;

    let third = pool
        .send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap_err();
    let ModelError::Provider { class, message, .. } = &third else {
        panic!("want an overload error, got {third:?}");
    };
    assert_eq!(*class, ErrorClass::Unavailable);
    assert!(message.contains("overloaded"), "{message}");
    // Our own overload says nothing about the provider.
    assert_eq!(h.consecutive_failures(), 0);

    provider.gate.add_permits(2);
    assert!(first.await.unwrap().unwrap().is_ok());
    assert!(second.await.unwrap().unwrap().is_ok());
    assert_eq!(provider.calls(), 2);
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
}

#[actix::test]
async fn consecutive_target_failures_start_a_cooldown_and_bad_requests_do_not() {
    let health = HealthTable::new();
    let bad = FakeProvider::new("bad", Behaviour::Fail(ErrorClass::BadRequest));
    let pool = ModelPool::new("bad", bad, settings(1, 1, 1_000), health.entry("bad")).start();
    for _ in 0..3 {
        let r = pool.send(Complete::new(request(), far())).await.unwrap();
        assert!(r.is_err());
    }
    let h = health.get("bad").unwrap();
    assert_eq!(h.consecutive_failures(), 0);
    assert!(!h.is_cooling_down(Instant::now()));

    let down = FakeProvider::new("down", Behaviour::Fail(ErrorClass::Unavailable));
    let pool = ModelPool::new("down", down, settings(1, 1, 1_000), health.entry("down")).start();
    let h = health.entry("down");
    pool.send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(h.consecutive_failures(), 1);
    assert!(!h.is_cooling_down(Instant::now()));
    pool.send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap_err();
    let until = h
        .cooling_down_until()
        .expect("cooling down after 2 failures");
    assert!(h.is_cooling_down(Instant::now()));
    assert!(until > Instant::now() + Duration::from_secs(50));
}

#[actix::test]
async fn a_success_clears_failures_and_cooldown() {
    let health = HealthTable::new();
    let h = health.entry("a");
    assert!(h
        .record_target_failure(
            Instant::now(),
            &settings(1, 1, 1_000),
            None,
            OnFailure::RetryInPlace
        )
        .is_none());
    assert!(h
        .record_target_failure(
            Instant::now(),
            &settings(1, 1, 1_000),
            None,
            OnFailure::RetryInPlace
        )
        .is_some());
    assert!(h.is_cooling_down(Instant::now()));
    let ok = FakeProvider::new("a", Behaviour::Answer("ok".into()));
    let pool = ModelPool::new("a", ok, settings(1, 1, 1_000), h.clone()).start();
    pool.send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap();
    assert!(!h.is_cooling_down(Instant::now()));
    assert_eq!(h.consecutive_failures(), 0);
}

#[test]
fn the_health_table_hands_out_one_entry_per_deployment() {
    let table = HealthTable::new();
    let a = table.entry("a");
    assert!(Arc::ptr_eq(&a, &table.entry("a")));
    assert!(!Arc::ptr_eq(&a, &table.entry("b")));
    assert!(table.get("c").is_none());
}

#[test]
fn ewma_latency_moves_toward_new_samples() {
    let h = DeploymentHealth::default();
    assert_eq!(h.ewma_latency(), None);
    h.record_success(Duration::from_millis(100));
    assert_eq!(h.ewma_latency(), Some(Duration::from_millis(100)));
    h.record_success(Duration::from_millis(200));
    // 0.8 * 100 + 0.2 * 200
    assert_eq!(h.ewma_latency(), Some(Duration::from_millis(120)));
}

#[test]
fn a_retry_after_cools_down_at_once_for_that_long_capped() {
    let s = settings(1, 1, 1_000);
    let now = Instant::now();
    let h = DeploymentHealth::default();
    assert_eq!(
        h.record_target_failure(
            now,
            &s,
            Some(Duration::from_secs(5)),
            OnFailure::RetryInPlace
        ),
        Some(Duration::from_secs(5))
    );
    assert_eq!(h.cooling_down_until(), Some(now + Duration::from_secs(5)));
    // The threshold trips on the second failure: the longer configured cooldown wins, and a
    // shorter Retry-After never shortens it.
    assert_eq!(
        h.record_target_failure(
            now,
            &s,
            Some(Duration::from_secs(1)),
            OnFailure::RetryInPlace
        ),
        Some(s.cooldown)
    );
    assert_eq!(h.cooling_down_until(), Some(now + s.cooldown));

    let h = DeploymentHealth::default();
    assert_eq!(
        h.record_target_failure(
            now,
            &s,
            Some(Duration::from_secs(86_400)),
            OnFailure::RetryInPlace
        ),
        Some(MAX_RETRY_AFTER)
    );
}

#[actix::test]
async fn a_rate_limit_with_retry_after_cools_the_deployment_down() {
    let health = HealthTable::new();
    let limited = FakeProvider::new(
        "rl",
        Behaviour::Fail(ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(20)),
        }),
    );
    let pool = ModelPool::new("rl", limited, settings(1, 1, 1_000), health.entry("rl")).start();
    let before = Instant::now();
    pool.send(Complete::new(request(), far()))
        .await
        .unwrap()
        .unwrap_err();
    let until = health
        .entry("rl")
        .cooling_down_until()
        .expect("cooling down");
    assert!(until >= before + Duration::from_secs(20) && until < before + Duration::from_secs(25));
}
