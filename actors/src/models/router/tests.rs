use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use tokio::time::Instant;

use super::*;
use crate::models::pool::tests::fakes::{eventually, settings, Behaviour, FakeProvider};
use crate::models::pool::{HealthTable, ModelPool, PoolSettings};
use crate::models::types::{Ask, ModelError, ModelRequest, Purpose};
use crate::resilience::ErrorClass;
use crate::validate::Issues;

fn start_pool(
    health: &HealthTable,
    provider: Arc<FakeProvider>,
    s: PoolSettings,
) -> Addr<ModelPool> {
    let id = provider.id.clone();
    ModelPool::new(id.clone(), provider, s, health.entry(&id)).start()
}

fn ask(model: &str, timeout_ms: u64) -> Ask {
    let mut req = ModelRequest::new(model, Purpose::Freeform, "hello");
    req.timeout = Duration::from_millis(timeout_ms);
    Ask(req)
}

fn router(
    health: &HealthTable,
    deployments: Vec<(&str, Arc<dyn PoolHandle>)>,
) -> Addr<ModelRouter> {
    let routes = deployments
        .into_iter()
        .map(|(id, pool)| DeploymentRoute::new(id, pool))
        .collect();
    ModelRouter::new(health.clone(), crate::store::Store::temporary().unwrap())
        .with_model("m", RoutingStrategy::OrderedFallback, routes)
        .start()
}

#[actix::test]
async fn fails_over_from_a_failing_deployment_to_a_healthy_sibling() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Fail(ErrorClass::Unavailable));
    let b = FakeProvider::new("b", Behaviour::Answer("BUY".into()));
    let r = router(
        &health,
        vec![
            (
                "a",
                Arc::new(start_pool(&health, a.clone(), settings(2, 2, 1_000))),
            ),
            (
                "b",
                Arc::new(start_pool(&health, b.clone(), settings(2, 2, 1_000))),
            ),
        ],
    );
    let resp = r.send(ask("m", 5_000)).await.unwrap().unwrap();
    assert_eq!((resp.deployment.as_str(), resp.text.as_str()), ("b", "BUY"));
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[actix::test]
async fn a_deployment_cut_off_at_its_pool_timeout_fails_over_within_the_deadline() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Slow(Duration::from_secs(60)));
    let b = FakeProvider::new("b", Behaviour::Answer("SELL".into()));
    let r = router(
        &health,
        vec![
            ("a", Arc::new(start_pool(&health, a, settings(2, 2, 100)))),
            ("b", Arc::new(start_pool(&health, b, settings(2, 2, 1_000)))),
        ],
    );
    let resp = r.send(ask("m", 5_000)).await.unwrap().unwrap();
    assert_eq!(resp.deployment, "b");
}

#[actix::test]
async fn auth_and_bad_request_errors_are_returned_without_failover() {
    for class in [ErrorClass::Auth, ErrorClass::BadRequest] {
        let health = HealthTable::new();
        let a = FakeProvider::new("a", Behaviour::Fail(class));
        let b = FakeProvider::new("b", Behaviour::Answer("BUY".into()));
        let r = router(
            &health,
            vec![
                ("a", Arc::new(start_pool(&health, a, settings(2, 2, 1_000)))),
                (
                    "b",
                    Arc::new(start_pool(&health, b.clone(), settings(2, 2, 1_000))),
                ),
            ],
        );
        let err = r.send(ask("m", 5_000)).await.unwrap().unwrap_err();
        assert!(
            matches!(&err, ModelError::Provider { class: c, deployment, .. } if *c == class && deployment == "a"),
            "{err:?}"
        );
        assert_eq!(b.calls(), 0);
    }
}

#[actix::test]
async fn every_deployment_failing_lists_each_attempt() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Fail(ErrorClass::Unavailable));
    let b = FakeProvider::new(
        "b",
        Behaviour::Fail(ErrorClass::RateLimited { retry_after: None }),
    );
    let r = router(
        &health,
        vec![
            ("a", Arc::new(start_pool(&health, a, settings(2, 2, 1_000)))),
            ("b", Arc::new(start_pool(&health, b, settings(2, 2, 1_000)))),
        ],
    );
    let err = r.send(ask("m", 5_000)).await.unwrap().unwrap_err();
    let ModelError::AllFailed { model, attempts } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(model, "m");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].contains("`a`") && attempts[1].contains("`b`"),
        "{attempts:?}"
    );
}

#[actix::test]
async fn failover_when_the_first_pool_dies_with_requests_queued() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Gated);
    let b = FakeProvider::new("b", Behaviour::Answer("from b".into()));
    // Pool `a` lives on its own arbiter so that stopping the arbiter kills it together
    // with the calls it holds, as a crash would.
    let arbiter = Arbiter::new();
    let (pa, ha) = (a.clone(), health.entry("a"));
    let pool_a = ModelPool::start_in_arbiter(&arbiter.handle(), move |_| {
        ModelPool::new("a", pa, settings(2, 16, 30_000), ha)
    });
    let pool_b = start_pool(&health, b.clone(), settings(8, 16, 1_000));
    let r = router(
        &health,
        vec![("a", Arc::new(pool_a)), ("b", Arc::new(pool_b))],
    );

    const N: usize = 6;
    // Distinct prompts: identical requests would be coalesced into one call.
    let pending: Vec<_> = (0..N)
        .map(|i| {
            let Ask(mut req) = ask("m", 10_000);
            req.prompt = format!("hello {i}");
            tokio::spawn(r.send(Ask(req)))
        })
        .collect();
    let h = health.entry("a");
    eventually("two calls in flight and four queued at `a`", || {
        h.in_flight() == 2 && h.queued() == N - 2
    })
    .await;
    assert_eq!(b.calls(), 0);
    arbiter.stop();

    let mut served_by = Vec::new();
    for p in pending {
        let resp = p.await.unwrap().unwrap().unwrap();
        served_by.push(resp.deployment);
    }
    assert_eq!(served_by, vec!["b".to_string(); N]);
    // Each request answered once, and `b` was asked exactly once per request.
    assert_eq!(b.calls(), N);
    assert_eq!(a.calls(), 2);
}

#[actix::test]
async fn a_pool_slot_follows_restarts() {
    let health = HealthTable::new();
    let slot: Arc<parking_lot::RwLock<Option<Addr<ModelPool>>>> =
        Arc::new(parking_lot::RwLock::new(None));
    let b = FakeProvider::new("b", Behaviour::Answer("from b".into()));
    let r = router(
        &health,
        vec![
            ("a", Arc::new(slot.clone())),
            ("b", Arc::new(start_pool(&health, b, settings(2, 2, 1_000)))),
        ],
    );
    // While `a` is down, `b` serves.
    assert_eq!(
        r.send(ask("m", 5_000)).await.unwrap().unwrap().deployment,
        "b"
    );
    // Once `a` is (re)started into its slot, the router uses it again.
    let a = FakeProvider::new("a", Behaviour::Answer("from a".into()));
    *slot.write() = Some(start_pool(&health, a, settings(2, 2, 1_000)));
    assert_eq!(
        r.send(ask("m", 5_000)).await.unwrap().unwrap().deployment,
        "a"
    );
}

#[actix::test]
async fn a_deployment_cooling_down_is_skipped() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Fail(ErrorClass::Timeout));
    let b = FakeProvider::new("b", Behaviour::Answer("ok".into()));
    let r = router(
        &health,
        vec![
            (
                "a",
                Arc::new(start_pool(&health, a.clone(), settings(2, 2, 1_000))),
            ),
            ("b", Arc::new(start_pool(&health, b, settings(2, 2, 1_000)))),
        ],
    );
    // The fake pools cool down after two failures.
    for _ in 0..2 {
        assert_eq!(
            r.send(ask("m", 5_000)).await.unwrap().unwrap().deployment,
            "b"
        );
    }
    assert!(health.entry("a").is_cooling_down(Instant::now()));
    for _ in 0..3 {
        assert_eq!(
            r.send(ask("m", 5_000)).await.unwrap().unwrap().deployment,
            "b"
        );
    }
    assert_eq!(a.calls(), 2);
}

#[actix::test]
async fn nothing_healthy_is_no_deployment() {
    let health = HealthTable::new();
    let slot: Arc<parking_lot::RwLock<Option<Addr<ModelPool>>>> =
        Arc::new(parking_lot::RwLock::new(None));
    let r = router(&health, vec![("a", Arc::new(slot))]);
    let err = r.send(ask("m", 5_000)).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ModelError::NoDeployment { reason, .. } if reason.contains("not running")),
        "{err:?}"
    );
}

#[actix::test]
async fn an_unknown_model_is_no_deployment() {
    let health = HealthTable::new();
    let r = router(&health, vec![]);
    let err = r.send(ask("gpt-9", 5_000)).await.unwrap_err_or_panic();
    assert!(
        matches!(&err, ModelError::NoDeployment { model, reason } if model == "gpt-9" && reason.contains("configured: m")),
        "{err:?}"
    );
    let err = r.send(ask("m", 5_000)).await.unwrap().unwrap_err();
    assert!(matches!(err, ModelError::NoDeployment { .. }), "{err:?}");
}

trait UnwrapErr {
    fn unwrap_err_or_panic(self) -> ModelError;
}
impl UnwrapErr for Result<Result<ModelResponse, ModelError>, actix::MailboxError> {
    fn unwrap_err_or_panic(self) -> ModelError {
        self.expect("router alive").expect_err("want an error")
    }
}

#[actix::test]
async fn every_deployment_slow_is_deadline_exceeded_on_time() {
    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Slow(Duration::from_secs(60)));
    let b = FakeProvider::new("b", Behaviour::Slow(Duration::from_secs(60)));
    let r = router(
        &health,
        vec![
            ("a", Arc::new(start_pool(&health, a, settings(2, 2, 150)))),
            (
                "b",
                Arc::new(start_pool(&health, b, settings(2, 2, 30_000))),
            ),
        ],
    );
    let started = Instant::now();
    let err = r.send(ask("m", 400)).await.unwrap().unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&err, ModelError::DeadlineExceeded { model, timeout } if model == "m" && *timeout == Duration::from_millis(400)),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[actix::test]
async fn the_default_config_answers_trade_decisions_offline() {
    use crate::exchanges::Candle;
    use crate::models::decision::parse_trade_decision;
    use crate::models::types::{MarketContext, StructuredContext, TradeAction};
    use rust_decimal::Decimal;

    let r = ModelRouter::start_unsupervised(
        &ModelsConfig::default(),
        HealthTable::new(),
        crate::store::Store::temporary().unwrap(),
    )
    .unwrap();
    let candles: Vec<Candle> = (0..30)
        .map(|i| {
            let close = Decimal::from(100 + i);
            Candle {
                open_time_ms: i,
                open: close,
                high: close,
                low: close,
                close,
                volume: Decimal::ONE,
            }
        })
        .collect();
    let mut req = ModelRequest::new("default", Purpose::TradeDecision, "");
    req.context = Some(StructuredContext::Market(MarketContext {
        venue: "paper".into(),
        symbol: "BTC".into(),
        timeframe: "1h".into(),
        price: Decimal::from(129),
        candles,
        position: None,
        account_value: Decimal::from(1000),
        signals: Vec::new(),
    }));
    let resp = r.send(Ask(req)).await.unwrap().unwrap();
    assert_eq!(
        (
            resp.deployment.as_str(),
            resp.provider.as_str(),
            resp.model.as_str()
        ),
        ("local", "local", "rules-v1")
    );
    let d = parse_trade_decision(&resp.text).unwrap();
    // A straight line up is overbought (RSI 100): the rules do not chase it.
    assert_eq!(d.decision.action, TradeAction::Nothing);
}

// --- config ---------------------------------------------------------------------------

fn issues_of(cfg: &ModelsConfig) -> Vec<(String, String)> {
    let mut issues = Issues::default();
    cfg.validate("models", &mut issues);
    issues.0.into_iter().map(|i| (i.key, i.allowed)).collect()
}

#[test]
fn the_default_config_is_one_local_deployment_and_valid() {
    let cfg = ModelsConfig::default();
    assert_eq!(cfg.models.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(
        cfg.models["default"].deployments,
        vec![DeploymentConfig::local("local")]
    );
    assert!(issues_of(&cfg).is_empty());
    assert!(build_provider(&cfg.models["default"].deployments[0]).is_ok());
}

#[test]
fn config_reads_from_json_with_durations_and_defaults() {
    let cfg: ModelsConfig = serde_json::from_value(serde_json::json!({
        "fast": { "strategy": "ordered_fallback", "deployments": [
            { "id": "rules", "provider": "local", "model": "rules-v1", "timeout": "2s", "cooldown": "1m" }
        ]}
    }))
    .unwrap();
    let d = &cfg.models["fast"].deployments[0];
    assert_eq!(
        (d.timeout, d.cooldown, d.max_concurrent),
        (Duration::from_secs(2), Duration::from_secs(60), 4)
    );
    let unknown_key = serde_json::from_value::<ModelsConfig>(serde_json::json!({
        "fast": { "deployments": [ { "id": "x", "provider": "local", "model": "rules-v1", "max_concurency": 2 } ] }
    }));
    assert!(unknown_key
        .unwrap_err()
        .to_string()
        .contains("max_concurency"));
}

#[test]
fn validation_names_every_bad_key() {
    let mut bad = DeploymentConfig::local("dup");
    bad.max_concurrent = 0;
    bad.timeout = Duration::ZERO;
    let mut unknown = DeploymentConfig::local("x");
    unknown.provider = "openia".into();
    let mut later = DeploymentConfig::local("dup");
    later.provider = "openai".into();
    later.model = "gpt-4o-mini".into();
    later.rpm = Some(0);
    let mut models = std::collections::BTreeMap::new();
    models.insert(
        "a".to_string(),
        LogicalModel {
            strategy: RoutingStrategy::OrderedFallback,
            deployments: vec![bad, unknown],
            cache_ttl: None,
        },
    );
    models.insert(
        "b".to_string(),
        LogicalModel {
            strategy: RoutingStrategy::OrderedFallback,
            deployments: vec![later],
            cache_ttl: None,
        },
    );
    models.insert(
        "c".to_string(),
        LogicalModel {
            strategy: RoutingStrategy::OrderedFallback,
            deployments: vec![],
            cache_ttl: None,
        },
    );
    let issues = issues_of(&ModelsConfig { models });
    let keys: Vec<&str> = issues.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "models.a.deployments[0].max_concurrent",
            "models.a.deployments[0].timeout",
            "models.a.deployments[1].provider",
            "models.b.deployments[0].rpm",
            "models.b.deployments[0].id",
            "models.c.deployments",
        ],
        "{issues:#?}"
    );
    assert!(
        issues[3]
            .1
            .contains("positive number of requests per minute"),
        "{}",
        issues[3].1
    );
    assert!(
        issues[4].1.contains("models.a.deployments[0].id"),
        "{}",
        issues[4].1
    );
    assert!(issues[2].1.contains("local"), "{}", issues[2].1);
}

#[test]
fn empty_models_section_is_an_issue() {
    let issues = issues_of(&ModelsConfig {
        models: Default::default(),
    });
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].0, "models");
}

#[test]
fn build_provider_refuses_what_this_build_cannot_run() {
    let mut d = DeploymentConfig::local("x");
    d.provider = "anthropic".into();
    d.model = "claude-sonnet-4-20250514".into();
    // Every provider is available; an HTTP one without its key is a startup error.
    let err = build_provider_with_env(&d, &|_| None).err().unwrap();
    assert!(matches!(err, BuildError::Http { .. }), "{err:?}");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    d.provider = "gpt".into();
    assert!(matches!(
        build_provider(&d).err().unwrap(),
        BuildError::UnknownProvider { .. }
    ));
    let mut wrong_model = DeploymentConfig::local("x");
    wrong_model.model = "llama3".into();
    assert!(matches!(
        build_provider(&wrong_model).err().unwrap(),
        BuildError::UnknownLocalModel { .. }
    ));
}

#[actix::test]
async fn failover_is_counted_in_the_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Everything in this test runs on this thread (actix test system), so a thread-local
    // recorder sees it without touching the process-global one.
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::models::pool::describe();
    describe();

    let health = HealthTable::new();
    let a = FakeProvider::new("a", Behaviour::Fail(ErrorClass::Unavailable));
    let b = FakeProvider::new("b", Behaviour::Answer("BUY".into()));
    let r = router(
        &health,
        vec![
            ("a", Arc::new(start_pool(&health, a, settings(2, 2, 1_000)))),
            ("b", Arc::new(start_pool(&health, b, settings(2, 2, 1_000)))),
        ],
    );
    r.send(ask("m", 5_000)).await.unwrap().unwrap();

    let text = handle.render();
    for line in [
        "# HELP orrery_model_fallbacks_total",
        r#"orrery_model_fallbacks_total{model="m",from="a"} 1"#,
        r#"orrery_model_requests_total{deployment="a",outcome="unavailable"} 1"#,
        r#"orrery_model_requests_total{deployment="b",outcome="ok"} 1"#,
        r#"orrery_model_tokens_total{deployment="b",kind="prompt"} 10"#,
        r#"orrery_model_tokens_total{deployment="b",kind="completion"} 5"#,
        r#"orrery_model_in_flight{deployment="b"} 0"#,
        r#"orrery_model_request_duration_seconds_count{deployment="b"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}
