//! Streamed asks through a real router, pools and HTTP providers, against loopback mocks
//! speaking OpenAI's chat-completions SSE (the envelope of openai-python's recorded
//! stream, see `providers::openai::tests::TEXT_WITH_LOGPROBS`), with pauses between
//! chunks.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::models::pool::tests::fakes::{settings, Behaviour, FakeProvider};
use crate::models::pool::{Complete, HealthTable, ModelPool};
use crate::models::router::{
    build_provider_with_env, DeploymentConfig, DeploymentRoute, Inspect, RoutingStrategy,
};
use crate::models::types::Purpose;
use crate::resilience::ErrorClass;
use crate::testkit::{refused_addr, MockServer, Reply, StreamEnd};

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_API_KEY").then(|| "sk-test-stream".to_string())
}

/// One chunk of an OpenAI chat-completions stream, as the API sends it.
fn chunk(delta: &str, finish: Option<&str>) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c\",\"object\":\"chat.completion.chunk\",\"created\":1727346173,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_5050236cbd\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{}}}]}}\n\n",
        finish.map_or("null".to_string(), |f| format!("\"{f}\""))
    )
}

fn role() -> String {
    chunk(r#"{"role":"assistant","content":"","refusal":null}"#, None)
}

fn content(text: &str) -> String {
    chunk(
        &format!(
            "{{\"content\":{}}}",
            serde_json::to_string(text).expect("a string encodes")
        ),
        None,
    )
}

/// The end of a stream: the finish reason, the usage-only chunk, `[DONE]`.
fn finish(prompt: u64, completion: u64) -> String {
    chunk("{}", Some("stop"))
        + &format!(
            "data: {{\"id\":\"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c\",\"object\":\"chat.completion.chunk\",\"created\":1727346173,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_5050236cbd\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}}}\n\n",
            prompt + completion
        )
        + "data: [DONE]\n\n"
}

/// A mock streaming `pieces` with `pause` before each, then the end.
fn streaming(pieces: &[&str], pause: Duration, end: StreamEnd) -> MockServer {
    let mut chunks = vec![(Duration::ZERO, role())];
    chunks.extend(pieces.iter().map(|p| (pause, content(p))));
    if end == StreamEnd::Finish {
        chunks.push((pause, finish(9, pieces.len() as u64)));
    }
    MockServer::start(move |_| Reply::sse(chunks.clone(), end.clone()))
}

fn deployment(id: &str, mock: &MockServer) -> DeploymentConfig {
    let mut d = DeploymentConfig::http(id, "openai", "gpt-4o-mini");
    d.base_url = Some(format!("{}/v1", mock.url()));
    d.connect_timeout = Duration::from_millis(500);
    d.first_byte_timeout = Duration::from_millis(800);
    d.retry_backoff = Duration::from_millis(10);
    d.timeout = Duration::from_secs(5);
    d.health_check_interval = Duration::ZERO;
    d.breaker.enabled = false;
    d
}

/// A router over `deployments` in order, under logical model `m`.
fn router(deployments: &[DeploymentConfig]) -> Addr<ModelRouter> {
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
            DeploymentRoute::new(d.id.clone(), Arc::new(pool))
        })
        .collect();
    ModelRouter::new(health, crate::store::Store::temporary().unwrap())
        .with_model("m", RoutingStrategy::OrderedFallback, routes)
        .start()
}

fn request() -> ModelRequest {
    let mut req = ModelRequest::new("m", Purpose::Freeform, "How is the market?");
    req.timeout = Duration::from_secs(4);
    req
}

/// Every delta with the time it arrived, and the router's reply with its time.
struct Streamed {
    deltas: Vec<(Instant, String)>,
    reply: Result<ModelResponse, ModelError>,
    replied_at: Instant,
}

impl Streamed {
    fn text(&self) -> String {
        self.deltas.iter().map(|(_, d)| d.as_str()).collect()
    }
}

async fn ask_stream(router: &Addr<ModelRouter>, request: ModelRequest) -> Streamed {
    let (tx, mut rx) = mpsc::channel(8);
    let collect = async {
        let mut deltas = Vec::new();
        while let Some(d) = rx.recv().await {
            deltas.push((Instant::now(), d));
        }
        deltas
    };
    let ask = async {
        let reply = router
            .send(AskStream {
                request,
                deltas: tx,
            })
            .await
            .expect("the router answers");
        (reply, Instant::now())
    };
    let (deltas, (reply, replied_at)) = tokio::join!(collect, ask);
    Streamed {
        deltas,
        reply,
        replied_at,
    }
}

/// A Prometheus recorder for this thread (the test's pools and router run on it).
fn recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
}

#[actix::test]
async fn deltas_reach_the_caller_as_the_provider_sends_them() {
    let pause = Duration::from_millis(250);
    let pieces = ["The market ", "is calm; ", "funding is ", "flat."];
    let mock = streaming(&pieces, pause, StreamEnd::Finish);
    let r = router(&[deployment("a", &mock)]);
    let s = ask_stream(&r, request()).await;
    let response = s.reply.as_ref().expect("an answer");
    assert_eq!(s.text(), pieces.concat());
    assert_eq!(
        response.text,
        s.text(),
        "the reply is the deltas concatenated"
    );
    assert_eq!(response.deployment, "a");
    assert_eq!(
        (
            response.usage.prompt_tokens,
            response.usage.completion_tokens
        ),
        (9, 4)
    );
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    // Streamed, not buffered: the deltas arrive a pause apart and well before the end
    // (buffering would hand them all over within a moment of the reply).
    assert_eq!(s.deltas.len(), pieces.len(), "{:?}", s.deltas);
    let early = s
        .deltas
        .iter()
        .filter(|(at, _)| s.replied_at.duration_since(*at) >= pause / 2)
        .count();
    assert!(early >= 3, "{early} deltas arrived before the stream ended");
    // Accounted like an `Ask`.
    let reports = r.send(Inspect).await.unwrap();
    assert_eq!(reports[0].usage.requests, 1);
    assert_eq!(reports[0].usage.completion_tokens, 4);
    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body_json().unwrap()["stream"], true);
}

#[actix::test]
async fn a_deployment_failing_before_any_text_fails_over_to_a_sibling() {
    let recorder = recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::models::router::describe();
    // Headers and the role chunk (empty content), then the connection drops: nothing
    // reached the caller yet.
    let cut = streaming(&[], Duration::ZERO, StreamEnd::Reset);
    let healthy = streaming(
        &["BUY ", "0.7"],
        Duration::from_millis(20),
        StreamEnd::Finish,
    );
    let refused = {
        let mut d = deployment("refused", &healthy);
        d.base_url = Some(format!("http://{}/v1", refused_addr()));
        d
    };
    let r = router(&[refused, deployment("cut", &cut), deployment("b", &healthy)]);
    let s = ask_stream(&r, request()).await;
    let response = s.reply.as_ref().expect("the sibling answers");
    assert_eq!(response.deployment, "b");
    assert_eq!(s.text(), "BUY 0.7");
    assert_eq!(response.text, "BUY 0.7");
    assert_eq!(cut.requests().len(), 1);
    let text = handle.render();
    for line in [
        r#"orrery_model_fallbacks_total{model="m",from="refused"} 1"#,
        r#"orrery_model_fallbacks_total{model="m",from="cut"} 1"#,
        r#"orrery_model_requests_total{deployment="b",outcome="ok"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}

#[actix::test]
async fn a_failure_after_text_was_delivered_is_returned_never_spliced() {
    for end in [StreamEnd::Reset, StreamEnd::Hang] {
        let recorder = recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        crate::models::router::describe();
        let broken = streaming(&["par"], Duration::from_millis(20), end.clone());
        let healthy = streaming(&["whole"], Duration::ZERO, StreamEnd::Finish);
        let mut first = deployment("a", &broken);
        first.first_byte_timeout = Duration::from_millis(300);
        let r = router(&[first, deployment("b", &healthy)]);
        let started = Instant::now();
        let s = ask_stream(&r, request()).await;
        let err = s.reply.as_ref().expect_err("a broken stream is an error");
        assert_eq!(s.text(), "par", "{end:?}");
        match err {
            ModelError::Provider {
                deployment, class, ..
            } => {
                assert_eq!(deployment, "a", "{end:?}");
                let expected = if end == StreamEnd::Hang {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::Unavailable
                };
                assert_eq!(*class, expected, "{end:?}: {err}");
            }
            other => panic!("{end:?}: {other:?}"),
        }
        assert!(err.to_string().contains("never spliced"), "{err}");
        assert!(started.elapsed() < request().timeout, "{end:?}");
        assert_eq!(healthy.requests().len(), 0, "{end:?}: no failover");
        assert_eq!(broken.requests().len(), 1, "{end:?}: no retry");
        let text = handle.render();
        let line = r#"orrery_model_stream_interrupted_total{model="m",deployment="a"} 1"#;
        assert!(text.contains(line), "{end:?}: missing `{line}` in:\n{text}");
        assert!(text.contains("# HELP orrery_model_stream_interrupted_total"));
    }
}

#[actix::test]
async fn a_cacheable_streamed_answer_is_cached_and_replayed_as_one_delta() {
    let mock = streaming(&["HOLD", " for now"], Duration::ZERO, StreamEnd::Finish);
    let d = deployment("a", &mock);
    let health = HealthTable::new();
    let provider = build_provider_with_env(&d, &env).unwrap();
    let pool = ModelPool::new("a", provider, d.pool_settings(), health.entry("a")).start();
    let route = LogicalRoute::new(
        RoutingStrategy::OrderedFallback,
        vec![DeploymentRoute::new("a", Arc::new(pool))],
    )
    .with_cache_ttl(Duration::from_secs(60));
    let r = ModelRouter::new(health, crate::store::Store::temporary().unwrap())
        .with_route("m", route)
        .start();
    let mut req = request();
    req.cacheable = true;
    let first = ask_stream(&r, req.clone()).await;
    assert!(!first.reply.unwrap().cached);
    assert_eq!(first.deltas.len(), 2);
    let again = ask_stream(&r, req).await;
    let response = again.reply.as_ref().unwrap();
    assert!(response.cached);
    assert_eq!(again.text(), "HOLD for now");
    assert_eq!(again.deltas.len(), 1);
    assert_eq!(mock.requests().len(), 1);
}

#[actix::test]
async fn the_pool_streams_through_its_admission_control() {
    // One slot, no queue: while a gated call holds the slot, a streamed call is refused
    // as overloaded at once, like any other.
    let health = HealthTable::new();
    let provider = FakeProvider::new("a", Behaviour::Gated);
    let pool = ModelPool::new(
        "a",
        provider.clone(),
        settings(1, 0, 2_000),
        health.entry("a"),
    )
    .start();
    let deadline = Instant::now() + Duration::from_secs(2);
    let held = pool.send(Complete::new(Arc::new(request()), deadline));
    let held = actix::spawn(held);
    crate::models::pool::tests::fakes::eventually("the slot taken", || {
        health.entry("a").in_flight() == 1
    })
    .await;
    let (tx, mut rx) = mpsc::channel(4);
    let refused = pool
        .send(Complete::new(Arc::new(request()), deadline).streamed(tx))
        .await
        .unwrap()
        .unwrap_err();
    assert!(refused.to_string().contains("overloaded"), "{refused}");
    assert!(rx.try_recv().is_err());
    provider.gate.add_permits(1);
    held.await.unwrap().unwrap().unwrap();
    // With the slot free the same message streams the answer (a provider without its
    // own streaming sends the whole text as one delta).
    let (tx, mut rx) = mpsc::channel(4);
    let answer = pool.send(
        Complete::new(Arc::new(request()), Instant::now() + Duration::from_secs(2)).streamed(tx),
    );
    provider.gate.add_permits(1);
    let answer = answer.await.unwrap().unwrap();
    assert_eq!(rx.recv().await.as_deref(), Some(answer.text.as_str()));
    assert_eq!(provider.calls(), 2);
}

#[actix::test]
async fn a_pool_dying_mid_stream_is_an_error_and_before_any_text_a_failover() {
    for after_text in [true, false] {
        // Pool `a` lives on its own arbiter: stopping it kills the pool with the call in
        // hand, as a crash would.
        let hanging = if after_text {
            streaming(&["par"], Duration::ZERO, StreamEnd::Hang)
        } else {
            MockServer::start(|_| Reply::Hang)
        };
        let healthy = streaming(&["whole"], Duration::ZERO, StreamEnd::Finish);
        let mut a = deployment("a", &hanging);
        a.first_byte_timeout = Duration::from_secs(30);
        let health = HealthTable::new();
        let arbiter = actix::Arbiter::new();
        let (provider, settings, entry) = (
            build_provider_with_env(&a, &env).unwrap(),
            a.pool_settings(),
            health.entry("a"),
        );
        let pool_a = ModelPool::start_in_arbiter(&arbiter.handle(), move |_| {
            ModelPool::new("a", provider, settings, entry)
        });
        let b = deployment("b", &healthy);
        let pool_b = ModelPool::new(
            "b",
            build_provider_with_env(&b, &env).unwrap(),
            b.pool_settings(),
            health.entry("b"),
        )
        .start();
        let r = ModelRouter::new(health.clone(), crate::store::Store::temporary().unwrap())
            .with_model(
                "m",
                RoutingStrategy::OrderedFallback,
                vec![
                    DeploymentRoute::new("a", Arc::new(pool_a)),
                    DeploymentRoute::new("b", Arc::new(pool_b)),
                ],
            )
            .start();
        let (tx, mut rx) = mpsc::channel(8);
        let pending = tokio::spawn(r.send(AskStream {
            request: request(),
            deltas: tx,
        }));
        if after_text {
            assert_eq!(rx.recv().await.as_deref(), Some("par"));
        } else {
            let h = health.entry("a");
            crate::models::pool::tests::fakes::eventually("the call in flight at `a`", || {
                h.in_flight() == 1
            })
            .await;
        }
        arbiter.stop();
        let reply = pending.await.unwrap().unwrap();
        let mut rest = String::new();
        while let Some(d) = rx.recv().await {
            rest.push_str(&d);
        }
        if after_text {
            let err = reply.expect_err("a stream cut by its pool's death is an error");
            assert!(err.to_string().contains("pool stopped mid-stream"), "{err}");
            assert!(err.to_string().contains("never spliced"), "{err}");
            assert_eq!(rest, "");
            assert_eq!(healthy.requests().len(), 0, "no failover after text");
        } else {
            let response = reply.expect("re-dispatched to the sibling");
            assert_eq!(response.deployment, "b");
            assert_eq!(rest, "whole");
            assert_eq!(healthy.requests().len(), 1);
        }
    }
}
