//! Context-window fallback through a real router, pools and HTTP providers, against
//! loopback mocks answering with the providers' documented context-overflow errors.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use tokio::time::Instant;

use crate::models::pool::{HealthTable, ModelPool};
use crate::models::providers::{anthropic, openai};
use crate::models::router::{
    build_provider_with_env, AskStream, DeploymentConfig, DeploymentRoute, ModelRouter,
    RoutingStrategy,
};
use crate::models::types::{Ask, ModelError, ModelRequest, Purpose};
use crate::testkit::{MockServer, Reply, StreamEnd};

fn env(name: &str) -> Option<String> {
    matches!(name, "OPENAI_API_KEY" | "ANTHROPIC_API_KEY").then(|| "sk-test-context".to_string())
}

const OPENAI_TOO_LONG: &str = r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 8227 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
const ANTHROPIC_TOO_LONG: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"},"request_id":"req_011CVQe1dLrGNMJyE1ghG1av"}"#;

/// A mock that refuses every request as too long, with `body`.
fn too_long(body: &'static str) -> MockServer {
    MockServer::start(move |_| Reply::raw(400, "application/json", body))
}

/// A healthy OpenAI mock: whole or streamed, as asked.
fn openai_ok() -> MockServer {
    MockServer::start(|r| {
        if r.body_json().is_some_and(|b| b["stream"] == true) {
            Reply::sse(
                vec![(Duration::ZERO, openai::tests::TEXT_WITH_LOGPROBS.into())],
                StreamEnd::Finish,
            )
        } else {
            Reply::raw(200, "application/json", openai::tests::OPENAI_BODY)
        }
    })
}

/// A healthy Anthropic mock: whole or streamed, as asked.
fn anthropic_ok() -> MockServer {
    MockServer::start(|r| {
        if r.body_json().is_some_and(|b| b["stream"] == true) {
            Reply::sse(
                vec![(Duration::ZERO, anthropic::tests::BASIC.into())],
                StreamEnd::Finish,
            )
        } else {
            Reply::raw(200, "application/json", anthropic::tests::WHOLE)
        }
    })
}

fn deployment(
    id: &str,
    provider: &str,
    mock: &MockServer,
    context_window: Option<u32>,
) -> DeploymentConfig {
    let (model, base) = match provider {
        "anthropic" => ("claude-sonnet-4-20250514", mock.url()),
        _ => ("gpt-4o-mini", format!("{}/v1", mock.url())),
    };
    let mut d = DeploymentConfig::http(id, provider, model);
    d.base_url = Some(base);
    d.context_window = context_window;
    d.retry_backoff = Duration::from_millis(10);
    d.health_check_interval = Duration::ZERO;
    d
}

fn router(deployments: &[DeploymentConfig]) -> (Addr<ModelRouter>, HealthTable) {
    let health = HealthTable::new();
    let routes = deployments
        .iter()
        .map(|d| {
            let provider = build_provider_with_env(d, &env).expect("provider builds");
            let pool = ModelPool::new(
                d.id.clone(),
                provider,
                d.pool_settings(),
                health.entry(&d.id),
            )
            .start();
            let mut route = DeploymentRoute::new(d.id.clone(), Arc::new(pool));
            route.context_window = d.context_window;
            route
        })
        .collect();
    let router = ModelRouter::new(health.clone(), crate::store::Store::temporary().unwrap())
        .with_model("m", RoutingStrategy::OrderedFallback, routes)
        .start();
    (router, health)
}

fn request() -> ModelRequest {
    let mut req = ModelRequest::new("m", Purpose::Freeform, "Summarise the order book.");
    req.timeout = Duration::from_secs(4);
    req
}

#[actix::test]
async fn a_prompt_too_long_moves_on_to_a_sibling_with_a_larger_window() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::models::pool::describe();
    crate::models::router::describe();

    let small = too_long(OPENAI_TOO_LONG);
    let same = openai_ok();
    let unknown = openai_ok();
    let large = anthropic_ok();
    let (r, health) = router(&[
        deployment("small", "openai", &small, Some(8192)),
        deployment("same", "openai", &same, Some(8192)),
        deployment("unknown", "openai", &unknown, None),
        deployment("large", "anthropic", &large, Some(200_000)),
    ]);
    let resp = r.send(Ask(request())).await.unwrap().unwrap();
    assert_eq!(resp.deployment, "large");
    assert_eq!(
        resp.text,
        "Hello! How can I assist you today? Is there anything specific you'd like to know or discuss?"
    );
    // Streamed, the same rule.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let streamed = r
        .send(AskStream {
            request: request(),
            deltas: tx,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(streamed.deployment, "large");
    let mut text = String::new();
    while let Ok(d) = rx.try_recv() {
        text.push_str(&d);
    }
    assert_eq!(text, "Hello there!");

    assert_eq!(
        small.requests().len(),
        2,
        "asked once per request, never retried"
    );
    assert_eq!(same.requests().len(), 0, "a window no larger is skipped");
    assert_eq!(unknown.requests().len(), 0, "an unknown window is skipped");
    assert_eq!(large.requests().len(), 2);
    // A request too long is not the deployment's ill health: no cooldown.
    assert!(!health.entry("small").is_cooling_down(Instant::now()));
    let text = handle.render();
    for line in [
        r#"orrery_model_context_fallbacks_total{model="m",from="small"} 2"#,
        r#"orrery_model_requests_total{deployment="small",outcome="context_length"} 2"#,
        r#"orrery_model_requests_total{deployment="large",outcome="ok"} 2"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains("# HELP orrery_model_context_fallbacks_total"));
}

#[actix::test]
async fn without_a_larger_sibling_the_error_says_why_each_was_passed_over() {
    let small = too_long(OPENAI_TOO_LONG);
    let same = openai_ok();
    let (r, _) = router(&[
        deployment("small", "openai", &small, Some(8192)),
        deployment("same", "openai", &same, Some(8192)),
    ]);
    let err = r.send(Ask(request())).await.unwrap().unwrap_err();
    match &err {
        ModelError::AllFailed { attempts, .. } => {
            assert_eq!(attempts.len(), 2, "{attempts:?}");
            assert!(
                attempts[0].contains("maximum context length is 8192"),
                "{err}"
            );
            assert!(
                attempts[1].contains("context_window 8192 is not larger than 8192"),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(same.requests().len(), 0);
}

#[actix::test]
async fn after_a_deployment_of_unknown_window_only_configured_windows_are_tried() {
    // Anthropic's wording, from a deployment whose window the config does not give.
    let first = too_long(ANTHROPIC_TOO_LONG);
    let unknown = openai_ok();
    let configured = openai_ok();
    let (r, _) = router(&[
        deployment("first", "anthropic", &first, None),
        deployment("unknown", "openai", &unknown, None),
        deployment("configured", "openai", &configured, Some(128_000)),
    ]);
    let resp = r.send(Ask(request())).await.unwrap().unwrap();
    assert_eq!(resp.deployment, "configured");
    assert_eq!(resp.text, "Hello! How can I help you today?");
    assert_eq!((first.requests().len(), unknown.requests().len()), (1, 0));
}
