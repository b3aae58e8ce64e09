//! Strategies, context windows, single-flight, the response cache, swarm and accounting.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use rand::SeedableRng;
use rust_decimal_macros::dec;
use tokio::time::Instant;

use super::*;
use crate::clock::ManualClock;
use crate::models::pool::tests::fakes::{eventually, settings, Behaviour, FakeProvider};
use crate::models::pool::{HealthTable, ModelPool};
use crate::models::types::{Ask, ModelError, ModelRequest, Purpose};
use crate::store::Store;

fn pool(health: &HealthTable, provider: Arc<FakeProvider>) -> Arc<dyn PoolHandle> {
    let id = provider.id.clone();
    Arc::new(
        ModelPool::new(
            id.clone(),
            provider,
            settings(16, 16, 30_000),
            health.entry(&id),
        )
        .start(),
    )
}

fn request(prompt: &str) -> ModelRequest {
    let mut req = ModelRequest::new("m", Purpose::Freeform, prompt);
    req.timeout = Duration::from_secs(5);
    req
}

async fn ask(r: &Addr<ModelRouter>, req: ModelRequest) -> Result<ModelResponse, ModelError> {
    r.send(Ask(req)).await.expect("router alive")
}

// --- strategies -------------------------------------------------------------------------

#[actix::test]
async fn least_busy_picks_the_deployment_with_fewest_calls_in_flight() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Gated);
    let b = FakeProvider::new("b", Behaviour::Answer("from b".into()));
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::LeastBusy,
            vec![
                DeploymentRoute::new("a", pool(&health, a.clone())),
                DeploymentRoute::new("b", pool(&health, b.clone())),
            ],
        )
        .start();
    // Idle: ties keep the configured order, so `a` gets the first (gated) call.
    let first = tokio::spawn(r.send(Ask(request("one"))));
    eventually("a call in flight at `a`", || {
        health.entry("a").in_flight() == 1
    })
    .await;
    // `a` is busy now: the next request goes to `b`.
    assert_eq!(ask(&r, request("two")).await.unwrap().deployment, "b");
    a.gate.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap().unwrap().deployment, "a");
    // Both idle again: `a` first.
    a.gate.add_permits(1);
    assert_eq!(ask(&r, request("three")).await.unwrap().deployment, "a");
}

#[actix::test]
async fn lowest_latency_probes_unknown_deployments_then_prefers_the_fastest() {
    let health = HealthTable::new();
    let slow = FakeProvider::new("slow", Behaviour::Slow(Duration::from_millis(60)));
    let fast = FakeProvider::new("fast", Behaviour::Slow(Duration::from_millis(5)));
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::LowestLatency,
            vec![
                DeploymentRoute::new("slow", pool(&health, slow.clone())),
                DeploymentRoute::new("fast", pool(&health, fast.clone())),
            ],
        )
        .start();
    // Neither has a sample: configured order.
    assert_eq!(ask(&r, request("1")).await.unwrap().deployment, "slow");
    // `fast` has no sample yet, so it sorts before `slow` (which has one).
    assert_eq!(ask(&r, request("2")).await.unwrap().deployment, "fast");
    // Both measured: the faster one keeps winning.
    for i in 3..6 {
        assert_eq!(
            ask(&r, request(&i.to_string())).await.unwrap().deployment,
            "fast"
        );
    }
    assert_eq!((slow.calls(), fast.calls()), (1, 4));
}

#[test]
fn weighted_shuffle_follows_weights_and_is_reproducible_with_a_seed() {
    let health = HealthTable::new();
    let empty = || -> Arc<dyn PoolHandle> {
        Arc::new(Arc::new(parking_lot::RwLock::new(None::<Addr<ModelPool>>)))
    };
    let deployments = vec![
        DeploymentRoute::new("light", empty()).with_weight(1),
        DeploymentRoute::new("heavy", empty()).with_weight(9),
    ];
    let firsts = |seed: u64| -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..1000)
            .map(|_| {
                let order = strategy::order(
                    RoutingStrategy::WeightedShuffle,
                    &deployments,
                    &health,
                    0,
                    &mut rng,
                );
                assert_eq!(order.len(), 2, "a shuffle keeps every deployment");
                order[0].deployment.clone()
            })
            .collect()
    };
    let run = firsts(7);
    let heavy = run.iter().filter(|d| *d == "heavy").count();
    // Expected 900 of 1000; the bounds are many standard deviations wide.
    assert!((820..=970).contains(&heavy), "heavy first {heavy} times");
    assert_eq!(run, firsts(7), "same seed, same order");
    assert_ne!(run, firsts(8), "another seed, another order");
}

#[actix::test]
async fn weighted_shuffle_routes_through_the_router_with_an_injected_seed() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Answer("a".into()));
    let b = FakeProvider::new("b", Behaviour::Answer("b".into()));
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_seed(1)
        .with_model(
            "m",
            RoutingStrategy::WeightedShuffle,
            vec![
                DeploymentRoute::new("a", pool(&health, a.clone())).with_weight(1),
                DeploymentRoute::new("b", pool(&health, b.clone())).with_weight(1000),
            ],
        )
        .start();
    for i in 0..20 {
        ask(&r, request(&i.to_string())).await.unwrap();
    }
    assert!(b.calls() >= 18, "a {} b {}", a.calls(), b.calls());
    assert_eq!(a.calls() + b.calls(), 20);
}

#[actix::test]
async fn a_prompt_too_large_for_a_deployment_skips_it_and_too_large_for_all_is_an_error() {
    let health = HealthTable::new();
    let small = FakeProvider::new("small", Behaviour::Answer("small".into()));
    let big = FakeProvider::new("big", Behaviour::Answer("big".into()));
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::OrderedFallback,
            vec![
                DeploymentRoute::new("small", pool(&health, small.clone()))
                    .with_context_window(1_000),
                DeploymentRoute::new("big", pool(&health, big.clone())).with_context_window(8_000),
            ],
        )
        .start();
    // 400 chars / 4 + 512 = 612 tokens: fits the small one.
    assert_eq!(
        ask(&r, request(&"x".repeat(400))).await.unwrap().deployment,
        "small"
    );
    // 4000 / 4 + 512 = 1512 tokens: only the big one.
    assert_eq!(
        ask(&r, request(&"x".repeat(4_000)))
            .await
            .unwrap()
            .deployment,
        "big"
    );
    // 40000 / 4 + 512 = 10512 tokens: none.
    let err = ask(&r, request(&"x".repeat(40_000))).await.unwrap_err();
    assert!(
        matches!(&err, ModelError::NoDeployment { reason, .. } if reason.contains("prompt is too large") && reason.contains("10512") && reason.contains("8000")),
        "{err}"
    );
    assert_eq!((small.calls(), big.calls()), (1, 1));
}

#[test]
fn the_token_estimate_counts_prompt_system_and_max_tokens() {
    let mut req = ModelRequest::new("m", Purpose::Freeform, "abcdefgh");
    req.system = "abc".into();
    req.max_tokens = 100;
    // 11 chars -> 3 tokens (rounded up) + 100.
    assert_eq!(req.estimated_tokens(), 103);
}

// --- single-flight ----------------------------------------------------------------------

#[actix::test]
async fn identical_concurrent_asks_make_one_upstream_call() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    describe();

    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Gated);
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::OrderedFallback,
            vec![DeploymentRoute::new("a", pool(&health, a.clone()))],
        )
        .start();
    const N: usize = 8;
    let pending: Vec<_> = (0..N)
        .map(|_| tokio::spawn(r.send(Ask(request("same")))))
        .collect();
    // A different prompt is not coalesced with them.
    let other = tokio::spawn(r.send(Ask(request("different"))));
    eventually("two upstream calls in flight", || {
        health.entry("a").in_flight() == 2
    })
    .await;
    // Give the rest time to arrive and join; none may start a call of its own.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.calls(), 2);
    a.gate.add_permits(2);
    let mut answers = Vec::new();
    for p in pending {
        answers.push(p.await.unwrap().unwrap().unwrap());
    }
    other.await.unwrap().unwrap().unwrap();
    assert!(answers.iter().all(|x| *x == answers[0]), "{answers:?}");
    assert_eq!(a.calls(), 2);

    // Once answered, the same request is a new call.
    a.gate.add_permits(1);
    ask(&r, request("same")).await.unwrap();
    assert_eq!(a.calls(), 3);

    let text = handle.render();
    let line = format!(r#"orrery_model_coalesced_total{{model="m"}} {}"#, N - 1);
    assert!(text.contains(&line), "missing `{line}` in:\n{text}");
    assert!(text.contains("# HELP orrery_model_coalesced_total"));
}

#[actix::test]
async fn a_coalesced_caller_keeps_its_own_deadline() {
    // Paused time: the impatient caller's wait is its deadline in tokio time, whatever the
    // machine's load.
    tokio::time::pause();
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Gated);
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::OrderedFallback,
            vec![DeploymentRoute::new("a", pool(&health, a.clone()))],
        )
        .start();
    let leader = tokio::spawn(r.send(Ask(request("q"))));
    eventually("the call in flight", || health.entry("a").in_flight() == 1).await;
    let mut impatient = request("q");
    impatient.timeout = Duration::from_millis(100);
    let started = Instant::now();
    let err = ask(&r, impatient).await.unwrap_err();
    assert!(
        matches!(err, ModelError::DeadlineExceeded { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    a.gate.add_permits(1);
    leader.await.unwrap().unwrap().unwrap();
    assert_eq!(a.calls(), 1);
}

#[actix::test]
async fn a_coalesced_caller_outliving_the_starters_deadline_gets_a_fresh_call() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Gated);
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::OrderedFallback,
            vec![DeploymentRoute::new("a", pool(&health, a.clone()))],
        )
        .start();
    let mut hasty = request("q");
    hasty.timeout = Duration::from_millis(150);
    let leader = tokio::spawn(r.send(Ask(hasty)));
    eventually("the call in flight", || health.entry("a").in_flight() == 1).await;
    let patient = tokio::spawn(r.send(Ask(request("q"))));
    let err = leader.await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(err, ModelError::DeadlineExceeded { .. }),
        "{err:?}"
    );
    // The patient caller does not inherit the hasty one's deadline error.
    eventually("a second upstream call", || a.calls() == 2).await;
    a.gate.add_permits(1);
    let answer = patient.await.unwrap().unwrap().unwrap();
    assert_eq!(answer.deployment, "a");
}

// --- response cache ---------------------------------------------------------------------

fn cached_router(
    health: &HealthTable,
    store: &Store,
    clock: Arc<ManualClock>,
    provider: Arc<FakeProvider>,
) -> Addr<ModelRouter> {
    ModelRouter::new(health.clone(), store.clone())
        .with_clock(clock)
        .with_route(
            "m",
            LogicalRoute::new(
                RoutingStrategy::OrderedFallback,
                vec![DeploymentRoute::new("a", pool(health, provider))],
            )
            .with_cache_ttl(Duration::from_secs(600)),
        )
        .start()
}

#[actix::test]
async fn cacheable_answers_come_from_memory_then_from_sled_after_a_restart_until_they_expire() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let health = HealthTable::new();
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let a = FakeProvider::new("a", Behaviour::Answer("BUY".into()));
    let mut req = request("cache me");
    req.cacheable = true;

    let r = cached_router(&health, &store, clock.clone(), a.clone());
    let fresh = ask(&r, req.clone()).await.unwrap();
    assert!(!fresh.cached);
    let hit = ask(&r, req.clone()).await.unwrap();
    assert!(hit.cached);
    assert_eq!((hit.text.as_str(), hit.deployment.as_str()), ("BUY", "a"));
    assert_eq!(a.calls(), 1);

    // Not cacheable: always upstream, even with an answer in the cache.
    let mut uncached = req.clone();
    uncached.cacheable = false;
    assert!(!ask(&r, uncached).await.unwrap().cached);
    assert_eq!(a.calls(), 2);

    // A new router (restart) on the same store: L1 is empty, L2 answers.
    drop(r);
    let r = cached_router(&health, &store, clock.clone(), a.clone());
    let from_sled = ask(&r, req.clone()).await.unwrap();
    assert!(from_sled.cached);
    assert_eq!(from_sled.text, "BUY");
    assert_eq!(a.calls(), 2);

    // Past the TTL: neither level answers; the expired L2 entry is removed.
    clock.advance(601_000);
    let again = ask(&r, req.clone()).await.unwrap();
    assert!(!again.cached);
    assert_eq!(a.calls(), 3);
    // The new answer is cached again, with a new expiry.
    assert!(ask(&r, req.clone()).await.unwrap().cached);
    assert_eq!(a.calls(), 3);

    let text = handle.render();
    for line in [
        r#"orrery_model_cache_requests_total{model="m",level="l1",result="hit"} 2"#,
        r#"orrery_model_cache_requests_total{model="m",level="l2",result="hit"} 1"#,
        r#"orrery_model_cache_requests_total{model="m",level="l2",result="miss"} 2"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}

#[actix::test]
async fn an_expired_l2_entry_is_removed_when_read() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(1_000_000);
    let cache = ResponseCache::new(10, &store, clock.clone());
    let req = request("q");
    let key = RequestKey::of("m", &req);
    let response = ModelResponse {
        text: "t".into(),
        deployment: "a".into(),
        provider: "fake".into(),
        model: "fake-1".into(),
        usage: Default::default(),
        latency: Duration::from_millis(3),
        finish_reason: None,
        cached: false,
        attempts: Vec::new(),
        cost_usd: None,
    };
    cache.put(&key, &response, Duration::from_secs(10));
    let tree = store
        .tree::<CachedAnswer>(crate::store::trees::CACHE)
        .unwrap();
    assert_eq!(tree.len(), 1);
    let (got, level) = cache.get("m", &key).unwrap();
    assert_eq!((got.cached, level), (true, CacheLevel::L1));
    clock.advance(10_000);
    // A fresh L1 (as after a restart) so the read reaches L2.
    let cache = ResponseCache::new(10, &store, clock.clone());
    assert!(cache.get("m", &key).is_none());
    assert_eq!(tree.len(), 0, "expired entry removed on read");
}

#[test]
fn the_request_key_covers_what_shapes_the_answer_and_nothing_else() {
    let base = request("p");
    let key = RequestKey::of("m", &base);
    let mut longer_wait = base.clone();
    longer_wait.timeout = Duration::from_secs(99);
    longer_wait.cacheable = true;
    assert_eq!(RequestKey::of("m", &longer_wait), key);
    let mut variants = Vec::new();
    let mut v = base.clone();
    v.system = "s".into();
    variants.push(v);
    let mut v = base.clone();
    v.prompt = "q".into();
    variants.push(v);
    let mut v = base.clone();
    v.max_tokens = 1;
    variants.push(v);
    let mut v = base.clone();
    v.temperature = 0.5;
    variants.push(v);
    let mut v = base.clone();
    v.purpose = Purpose::TradeDecision;
    variants.push(v);
    for v in &variants {
        assert_ne!(RequestKey::of("m", v), key, "{v:?}");
    }
    assert_ne!(RequestKey::of("other", &base), key);
}

// --- swarm ------------------------------------------------------------------------------

#[actix::test]
async fn a_swarm_abandons_a_hung_member_at_its_deadline() {
    // Paused time: the swarm's elapsed time is its 200 ms deadline in tokio time, not the
    // machine's load (the bound below held only on an idle machine).
    tokio::time::pause();
    let health = HealthTable::new();
    let mut router = ModelRouter::new(health.clone(), Store::temporary().unwrap());
    let mut members = Vec::new();
    for i in 0..7 {
        let id = format!("d{i}");
        let p = FakeProvider::new(&id, Behaviour::Slow(Duration::from_millis(100)));
        router = router.with_model(
            id.clone(),
            RoutingStrategy::OrderedFallback,
            vec![DeploymentRoute::new(id.clone(), pool(&health, p))],
        );
        members.push(id);
    }
    // The hung one is named by deployment id (its logical model is `m`).
    let hung = FakeProvider::new("hung", Behaviour::Gated);
    router = router.with_model(
        "m",
        RoutingStrategy::OrderedFallback,
        vec![DeploymentRoute::new("hung", pool(&health, hung.clone()))],
    );
    members.push("hung".into());
    members.push("nope".into());
    let r = router.start();

    let started = Instant::now();
    let replies = r
        .send(Swarm {
            models: members.clone(),
            request: request("what now?"),
            deadline: Duration::from_millis(200),
        })
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(400), "took {took:?}");
    assert_eq!(
        replies.iter().map(|r| r.member.clone()).collect::<Vec<_>>(),
        members
    );
    for reply in &replies[..7] {
        let answer = reply.result.as_ref().unwrap();
        assert_eq!(answer.deployment, reply.member);
        assert_eq!(answer.usage.prompt_tokens, 10);
        assert!(answer.latency >= Duration::from_millis(100));
    }
    assert!(
        matches!(&replies[7].result, Err(ModelError::Abandoned { model, .. }) if model == "hung"),
        "{:?}",
        replies[7]
    );
    assert!(replies[7]
        .result
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("abandoned: deadline passed"));
    assert!(
        matches!(&replies[8].result, Err(ModelError::NoDeployment { .. })),
        "{:?}",
        replies[8]
    );
    assert_eq!(hung.calls(), 1);
}

#[actix::test]
async fn a_swarm_returns_as_soon_as_every_member_answered() {
    // Paused time: the clock moves only while every task waits, so the swarm's elapsed
    // time is what it waited for (its 20 s deadline, were it to wait), not the load.
    tokio::time::pause();
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Answer("x".into()));
    let r = ModelRouter::new(health.clone(), Store::temporary().unwrap())
        .with_model(
            "m",
            RoutingStrategy::OrderedFallback,
            vec![DeploymentRoute::new("a", pool(&health, a))],
        )
        .start();
    let started = Instant::now();
    let replies = r
        .send(Swarm {
            models: vec!["m".into(), "a".into()],
            request: request("q"),
            deadline: Duration::from_secs(20),
        })
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(replies.iter().all(|r| r.result.is_ok()), "{replies:?}");
}

// --- accounting -------------------------------------------------------------------------

#[actix::test]
async fn usage_and_cost_are_accounted_per_deployment_and_persisted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let health = HealthTable::new();
    let store = Store::temporary().unwrap();
    let a = FakeProvider::new("a", Behaviour::Answer("x".into()));
    let prices = Prices {
        prompt_per_mtok: dec!(3),
        completion_per_mtok: dec!(15),
    };
    let build = || {
        ModelRouter::new(health.clone(), store.clone())
            .with_route(
                "m",
                LogicalRoute::new(
                    RoutingStrategy::OrderedFallback,
                    vec![DeploymentRoute::new("a", pool(&health, a.clone())).with_prices(prices)],
                )
                .with_cache_ttl(Duration::from_secs(60)),
            )
            .start()
    };
    let r = build();
    let mut req = request("q");
    req.cacheable = true;
    // Each answer carries its own cost (10 prompt + 5 completion tokens at 3 and 15 USD
    // per million), which the journal records per member.
    let first = ask(&r, req.clone()).await.unwrap();
    assert_eq!(first.cost_usd, Some(dec!(0.000105)));
    ask(&r, request("other")).await.unwrap();
    // A cache hit costs nothing.
    let hit = ask(&r, req.clone()).await.unwrap();
    assert!(hit.cached);
    assert_eq!(hit.cost_usd, None);

    // Each fake answer is 10 prompt + 5 completion tokens.
    let want = DeploymentUsage {
        requests: 2,
        prompt_tokens: 20,
        completion_tokens: 10,
        cost_usd: dec!(0.00021),
    };
    let report = r.send(Inspect).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].usage, want);
    assert_eq!(report[0].deployment, "a");
    assert!(report[0].pool_running);
    assert_eq!(
        usage_records(&store).unwrap(),
        vec![("a".to_string(), want)]
    );

    // A restarted router continues from sled.
    drop(r);
    let r = build();
    ask(&r, request("third")).await.unwrap();
    let report = r.send(Inspect).await.unwrap();
    assert_eq!(report[0].usage.requests, 3);
    assert_eq!(report[0].usage.cost_usd, dec!(0.000315));

    let text = handle.render();
    assert!(
        text.contains(r#"orrery_model_cost_usd{deployment="a"} 0.000315"#),
        "{text}"
    );
}

#[test]
fn prices_are_per_million_tokens() {
    let p = Prices {
        prompt_per_mtok: dec!(2.5),
        completion_per_mtok: dec!(10),
    };
    let usage = crate::models::types::Usage {
        prompt_tokens: 1_000_000,
        completion_tokens: 500,
    };
    assert_eq!(p.cost(usage), dec!(2.505));
}

// --- config -----------------------------------------------------------------------------

#[test]
fn routing_keys_read_from_config_and_bad_values_are_named() {
    let cfg: ModelsConfig = serde_json::from_value(serde_json::json!({
        "fast": { "strategy": "weighted_shuffle", "cache_ttl": "10m", "deployments": [
            { "id": "r1", "provider": "local", "model": "rules-v1", "weight": 3,
              "context_window": 8000, "price_prompt_per_mtok": "0.15",
              "price_completion_per_mtok": "0.6" }
        ]}
    }))
    .unwrap();
    let m = &cfg.models["fast"];
    assert_eq!(
        (m.strategy, m.cache_ttl),
        (
            RoutingStrategy::WeightedShuffle,
            Some(Duration::from_secs(600))
        )
    );
    let d = &m.deployments[0];
    assert_eq!(
        (
            d.weight,
            d.context_window,
            d.price_prompt_per_mtok,
            d.price_completion_per_mtok
        ),
        (3, Some(8000), dec!(0.15), dec!(0.6))
    );
    let mut issues = crate::validate::Issues::default();
    cfg.validate("models", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");

    let mut bad = cfg.clone();
    let m = bad.models.get_mut("fast").unwrap();
    m.cache_ttl = Some(Duration::ZERO);
    m.deployments[0].weight = 0;
    m.deployments[0].context_window = Some(10);
    m.deployments[0].price_prompt_per_mtok = dec!(-1);
    let mut issues = crate::validate::Issues::default();
    bad.validate("models", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "models.fast.cache_ttl",
            "models.fast.deployments[0].weight",
            "models.fast.deployments[0].context_window",
            "models.fast.deployments[0].price_prompt_per_mtok",
        ]
    );
    let mut issues = crate::validate::Issues::default();
    ModelCacheConfig {
        max_entries: 0,
        ..ModelCacheConfig::default()
    }
    .validate("model_cache", &mut issues);
    assert_eq!(issues.0[0].key, "model_cache.max_entries");
    let mut issues = crate::validate::Issues::default();
    ModelCacheConfig {
        sweep_interval: Duration::from_millis(1),
        sweep_batch: 0,
        ..ModelCacheConfig::default()
    }
    .validate("model_cache", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["model_cache.sweep_interval", "model_cache.sweep_batch"]
    );
    let mut issues = crate::validate::Issues::default();
    ModelCacheConfig {
        sweep_interval: Duration::ZERO,
        ..ModelCacheConfig::default()
    }
    .validate("model_cache", &mut issues);
    assert!(issues.is_empty(), "\"0s\" turns the sweep off: {issues:?}");
    assert!(serde_json::from_value::<ModelsConfig>(serde_json::json!({
        "x": { "strategy": "fastest", "deployments": [] }
    }))
    .is_err());
}
