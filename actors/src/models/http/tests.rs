//! HttpProvider against loopback mock servers replaying each provider's recorded wire
//! format (the literals of the `providers` tests), and fault injection through a real
//! router with two deployments.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use tokio::time::Instant;

use super::*;
use crate::models::pool::{HealthTable, ModelPool, PoolSettings, Provider};
use crate::models::providers::{anthropic, gemini, ollama, openai};
use crate::models::router::{
    build_provider_with_env, BuildError, DeploymentConfig, DeploymentRoute, ModelRouter,
    ModelsConfig, RoutingStrategy,
};
use crate::models::types::{Ask, ModelError, ModelRequest, Purpose, Usage};
use crate::resilience::ErrorClass;
use crate::testkit::{refused_addr, MockServer, Reply, StreamEnd};
use crate::validate::Issues;

const SECRET: &str = "sk-test-SECRET-4242";

fn env(name: &str) -> Option<String> {
    let keys: HashMap<&str, &str> = [
        ("OPENAI_API_KEY", SECRET),
        ("ANTHROPIC_API_KEY", SECRET),
        ("GEMINI_API_KEY", SECRET),
        ("GROQ_API_KEY", SECRET),
        ("DEEPSEEK_API_KEY", SECRET),
        ("XAI_API_KEY", SECRET),
        ("OPENROUTER_API_KEY", SECRET),
    ]
    .into_iter()
    .collect();
    keys.get(name).map(|v| v.to_string())
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// A deployment of `provider` at `base_url` with short timeouts and retry waits.
fn deployment(id: &str, provider: &str, model: &str, base_url: String) -> DeploymentConfig {
    let mut d = DeploymentConfig::http(id, provider, model);
    d.base_url = Some(base_url);
    d.connect_timeout = Duration::from_millis(500);
    d.first_byte_timeout = Duration::from_millis(500);
    d.retry_backoff = Duration::from_millis(10);
    d.timeout = Duration::from_secs(5);
    d.health_check_interval = Duration::ZERO;
    d
}

fn build(d: &DeploymentConfig) -> Arc<dyn Provider> {
    build_provider_with_env(d, &env).expect("provider builds")
}

fn request() -> ModelRequest {
    let mut req = ModelRequest::new("m", Purpose::TradeDecision, "BTC at 97k. Buy?");
    req.system = "You are a careful trader.".into();
    req.max_tokens = 300;
    req.timeout = Duration::from_secs(4);
    req
}

/// `body` as a chunked stream cut into three pieces (mid-line on purpose).
fn stream_reply(content_type: &str, body: &str) -> Reply {
    let bytes = body.as_bytes();
    let (a, b) = (bytes.len() / 3, 2 * bytes.len() / 3);
    Reply::Chunked {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        chunks: vec![
            (Duration::ZERO, bytes[..a].to_vec()),
            (Duration::from_millis(5), bytes[a..b].to_vec()),
            (Duration::from_millis(5), bytes[b..].to_vec()),
        ],
        end: StreamEnd::Finish,
    }
}

struct Case {
    provider: &'static str,
    model: &'static str,
    /// Appended to the mock's URL to form `base_url` (the provider's own base path).
    base_path: &'static str,
    route: &'static str,
    whole: &'static str,
    whole_text: &'static str,
    whole_usage: (u64, u64),
    whole_finish: &'static str,
    stream: String,
    stream_type: &'static str,
    stream_text: &'static str,
    stream_usage: (u64, u64),
    /// Where the key travels and how it reads.
    auth: (&'static str, String),
}

const GEMINI_WHOLE: &str = r#"{"candidates":[{"content":{"parts":[{"text":"weighing funding","thought":true},{"text":"{\"action\":\"BUY\""}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":8,"totalTokenCount":20},"modelVersion":"gemini-2.5-pro"}"#;

fn cases() -> Vec<Case> {
    let bearer = ("authorization", format!("Bearer {SECRET}"));
    let openai_like = |provider, model, base_path, whole, text, usage| Case {
        provider,
        model,
        base_path,
        route: "/chat/completions",
        whole,
        whole_text: text,
        whole_usage: usage,
        whole_finish: "stop",
        stream: openai::tests::TEXT_WITH_LOGPROBS.to_string(),
        stream_type: "text/event-stream",
        stream_text: "Foo!",
        stream_usage: (9, 2),
        auth: bearer.clone(),
    };
    vec![
        openai_like(
            "openai",
            "gpt-4o-mini",
            "/v1",
            openai::tests::OPENAI_BODY,
            "Hello! How can I help you today?",
            (20, 18),
        ),
        openai_like(
            "groq",
            "moonshotai/kimi-k2-instruct-0905",
            "/openai/v1",
            openai::tests::GROQ_BODY,
            "Hello! How can I help you today?",
            (30, 10),
        ),
        openai_like(
            "deepseek",
            "deepseek-chat",
            "",
            openai::tests::DEEPSEEK_BODY,
            "Hello! How can I assist you today?",
            (14, 9),
        ),
        openai_like(
            "xai",
            "grok-3",
            "/v1",
            openai::tests::OPENAI_BODY,
            "Hello! How can I help you today?",
            (20, 18),
        ),
        openai_like(
            "openrouter",
            "openai/gpt-4o-mini",
            "/api/v1",
            openai::tests::OPENAI_BODY,
            "Hello! How can I help you today?",
            (20, 18),
        ),
        Case {
            provider: "anthropic",
            model: "claude-sonnet-4-20250514",
            base_path: "",
            route: "/v1/messages",
            whole: anthropic::tests::WHOLE,
            whole_text: "Hello! How can I assist you today? Is there anything specific you'd like to know or discuss?",
            whole_usage: (16, 24),
            whole_finish: "stop",
            stream: anthropic::tests::BASIC.to_string(),
            stream_type: "text/event-stream",
            stream_text: "Hello there!",
            stream_usage: (11, 6),
            auth: ("x-api-key", SECRET.to_string()),
        },
        Case {
            provider: "gemini",
            model: "gemini-2.5-flash",
            base_path: "/v1beta",
            route: "/v1beta/models/gemini-2.5-flash:",
            whole: GEMINI_WHOLE,
            whole_text: "{\"action\":\"BUY\"",
            whole_usage: (12, 8),
            whole_finish: "length",
            stream: gemini::tests::STREAM.to_string(),
            stream_type: "text/event-stream",
            stream_text: gemini::tests::STREAM_TEXT,
            stream_usage: (4, 5947 + 2042),
            auth: ("x-goog-api-key", SECRET.to_string()),
        },
        Case {
            provider: "ollama",
            model: "gemma2",
            base_path: "",
            route: "/api/chat",
            whole: ollama::tests::WHOLE,
            whole_text: "Hello! 👋  How can I help you today?",
            whole_usage: (26, 12),
            whole_finish: "stop",
            stream: ollama::tests::STREAM.to_string(),
            stream_type: "application/x-ndjson",
            stream_text: "Hello! 👋  How can I help you today?",
            stream_usage: (26, 12),
            auth: ("authorization", String::new()),
        },
    ]
}

#[actix::test]
async fn every_provider_answers_whole_and_streamed_as_its_sdk_would() {
    for case in cases() {
        let whole = case.whole;
        let (stream, stream_type) = (case.stream.clone(), case.stream_type);
        let mock = MockServer::start(move |r| {
            let streamed = r.body_json().is_some_and(|b| b["stream"] == true)
                || r.path.contains("streamGenerateContent");
            if streamed {
                stream_reply(stream_type, &stream)
            } else {
                Reply::raw(200, "application/json", whole)
            }
        });
        let base = format!("{}{}", mock.url(), case.base_path);
        let mut d = deployment("d", case.provider, case.model, base.clone());
        let p = build(&d);
        let c = p
            .complete(&request())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.provider));
        assert_eq!(c.text, case.whole_text, "{}", case.provider);
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: case.whole_usage.0,
                completion_tokens: case.whole_usage.1
            },
            "{}",
            case.provider
        );
        assert_eq!(
            c.finish_reason.as_deref(),
            Some(case.whole_finish),
            "{}",
            case.provider
        );
        let sent = mock.requests().remove(0);
        assert!(
            sent.path
                .starts_with(&format!("{}{}", case.base_path, case.route))
                || sent.path.starts_with(case.route),
            "{}: {}",
            case.provider,
            sent.path
        );
        if !case.auth.1.is_empty() {
            assert_eq!(
                sent.header(case.auth.0),
                Some(case.auth.1.as_str()),
                "{}",
                case.provider
            );
        }

        // Streamed, through the streaming entry point: deltas add up to the answer.
        d.stream = true;
        let p = build(&d);
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let c = p
            .complete_stream(&request(), tx)
            .await
            .unwrap_or_else(|e| panic!("{} stream: {e}", case.provider));
        let mut deltas = String::new();
        while let Ok(d) = rx.try_recv() {
            deltas.push_str(&d);
        }
        assert_eq!(c.text, case.stream_text, "{}", case.provider);
        assert_eq!(deltas, case.stream_text, "{}", case.provider);
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: case.stream_usage.0,
                completion_tokens: case.stream_usage.1
            },
            "{}",
            case.provider
        );
        // `stream = true` in config streams through `complete` as well.
        let c = p.complete(&request()).await.unwrap();
        assert_eq!(c.text, case.stream_text, "{}", case.provider);
    }
}

fn class_of(e: &ModelError) -> Option<ErrorClass> {
    match e {
        ModelError::Provider { class, .. } => Some(*class),
        _ => None,
    }
}

/// (provider, model, base path, status, headers, body, class, message part, attempts)
type ErrorCase = (
    &'static str,
    &'static str,
    &'static str,
    u16,
    Vec<(&'static str, &'static str)>,
    &'static str,
    ErrorClass,
    &'static str,
    usize,
);

#[actix::test]
async fn error_bodies_are_classified_with_the_providers_message() {
    // (provider, model, base path, status, headers, body, class, message part, attempts)
    let cases: Vec<ErrorCase> = vec![
        (
            "openai",
            "gpt-4o-mini",
            "/v1",
            401,
            vec![],
            r#"{"error":{"message":"Incorrect API key provided: sk-test-***4242. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
            ErrorClass::Auth,
            "Incorrect API key",
            1,
        ),
        (
            "openai",
            "gpt-4o-mini",
            "/v1",
            429,
            vec![("retry-after-ms", "2500"), ("retry-after", "3")],
            r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2.5s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
            // 2.5s is more than half of the 4s deadline: returned at once, not waited on.
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_millis(2500)),
            },
            "Rate limit reached",
            1,
        ),
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            "",
            529,
            vec![],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            // Overloaded: fixed interval, five attempts.
            ErrorClass::Unavailable,
            "overloaded_error: Overloaded",
            5,
        ),
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            "",
            400,
            vec![],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011"}"#,
            ErrorClass::BadRequest,
            "max_tokens: Field required",
            1,
        ),
        (
            "gemini",
            "gemini-2.5-flash",
            "/v1beta",
            429,
            vec![],
            r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(12)),
            },
            "RESOURCE_EXHAUSTED",
            1,
        ),
        (
            "ollama",
            "llama3.2",
            "",
            404,
            vec![],
            r#"{"error":"model \"llama3.2\" not found, try pulling it first"}"#,
            ErrorClass::BadRequest,
            "try pulling it first",
            1,
        ),
        (
            "groq",
            "llama-3.3-70b-versatile",
            "/openai/v1",
            503,
            vec![],
            r#"{"error":{"message":"Service Unavailable","type":"internal_server_error"}}"#,
            ErrorClass::Unavailable,
            "Service Unavailable",
            5,
        ),
    ];
    for (provider, model, base_path, status, headers, body, class, part, attempts) in cases {
        let owned: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mock = MockServer::start(move |_| {
            let mut reply = Reply::raw(status, "application/json", body);
            for (k, v) in &owned {
                reply = reply.with_header(k, v);
            }
            reply
        });
        let d = deployment("d", provider, model, format!("{}{base_path}", mock.url()));
        let err = build(&d).complete(&request()).await.unwrap_err();
        assert_eq!(class_of(&err), Some(class), "{provider} {status}: {err}");
        let text = err.to_string();
        assert!(text.contains(part), "{provider} {status}: {text}");
        assert!(!text.contains(SECRET), "{text}");
        assert_eq!(
            mock.count(mock.requests()[0].route()),
            attempts,
            "{provider} {status}"
        );
    }
}

#[actix::test]
async fn timeouts_are_retried_three_times_then_returned() {
    let mock = MockServer::start(|_| Reply::Hang);
    let mut d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    d.first_byte_timeout = Duration::from_millis(100);
    let started = Instant::now();
    let err = build(&d).complete(&request()).await.unwrap_err();
    assert_eq!(class_of(&err), Some(ErrorClass::Timeout), "{err}");
    assert_eq!(mock.requests().len(), 3);
    // The mock never answers: each attempt ended at its 100 ms first-byte timeout. The
    // bound only says none waited for the hang; it is generous for a loaded machine
    // (real sockets, so tokio's clock cannot be paused here).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[actix::test]
async fn a_short_retry_after_is_waited_on_within_the_deployment() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let mock = MockServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::raw(429, "application/json", r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
                .with_header("retry-after-ms", "50")
        } else {
            Reply::raw(200, "application/json", openai::tests::OPENAI_BODY)
        }
    });
    let d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    let started = Instant::now();
    let c = build(&d).complete(&request()).await.unwrap();
    assert_eq!(c.text, "Hello! How can I help you today?");
    assert_eq!(mock.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[actix::test]
async fn the_providers_rate_limit_headers_hold_back_the_next_call() {
    let mock = MockServer::start(|_| {
        Reply::raw(200, "application/json", openai::tests::OPENAI_BODY)
            .with_header("x-ratelimit-limit-requests", "10000")
            .with_header("x-ratelimit-remaining-requests", "0")
            .with_header("x-ratelimit-reset-requests", "20s")
            .with_header("x-ratelimit-limit-tokens", "30000")
            .with_header("x-ratelimit-remaining-tokens", "29962")
            .with_header("x-ratelimit-reset-tokens", "76ms")
    });
    let mut d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    d.rpm = Some(10_000);
    d.tpm = Some(30_000);
    let p = build(&d);
    let c = p.complete(&request()).await.unwrap();
    assert_eq!(
        c.usage,
        Usage {
            prompt_tokens: 20,
            completion_tokens: 18
        }
    );
    // The server said no request remains for 20s: the next call is not sent, and comes
    // back rate limited with the wait, so the pool cools the deployment down.
    let err = p.complete(&request()).await.unwrap_err();
    match class_of(&err) {
        Some(ErrorClass::RateLimited {
            retry_after: Some(wait),
        }) => {
            assert!(wait > Duration::from_secs(10), "{wait:?}")
        }
        other => panic!("{other:?}: {err}"),
    }
    assert_eq!(mock.requests().len(), 1);
}

#[actix::test]
async fn the_token_budget_is_drawn_by_estimate_and_corrected_by_usage() {
    let mock =
        MockServer::start(|_| Reply::raw(200, "application/json", openai::tests::OPENAI_BODY));
    let mut d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    // Estimate: (25 + 16) / 4 rounded up + 300 = 311 tokens (the one estimate,
    // `ModelRequest::estimated_tokens`; it was 310 rounded down before the fold); the
    // answer used 38. A budget of 400 per minute admits a second call only because the
    // unused 273 were refunded.
    d.tpm = Some(400);
    let p = build(&d);
    let mut req = request();
    req.timeout = Duration::from_millis(400);
    assert_eq!(req.estimated_tokens(), 311);
    p.complete(&req).await.unwrap();
    p.complete(&req).await.unwrap();
    assert_eq!(mock.requests().len(), 2);
}

#[actix::test]
async fn a_body_over_the_bound_is_refused() {
    let big = format!(
        "{{\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"finish_reason\":\"stop\"}}]}}",
        "x".repeat(providers::MAX_BODY_BYTES)
    );
    let mock = MockServer::start(move |_| Reply::raw(200, "application/json", big.clone()));
    let d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    let err = build(&d).complete(&request()).await.unwrap_err();
    assert!(matches!(err, ModelError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("more than"), "{err}");
}

// --- Ollama health ---------------------------------------------------------------------

#[actix::test]
async fn ollama_without_a_server_names_the_url() {
    let url = format!("http://{}", refused_addr());
    let d = deployment("local-llm", "ollama", "gemma2", url.clone());
    let p = build(&d);
    let err = p.health_check().await.unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    let err = p.complete(&request()).await.unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(class_of(&err), Some(ErrorClass::Unavailable));
}

#[actix::test]
async fn ollama_without_the_model_says_to_pull_it() {
    let mock = MockServer::start(|_| Reply::raw(200, "application/json", ollama::tests::TAGS));
    let p = build(&deployment("local-llm", "ollama", "llama3.2", mock.url()));
    let err = p.health_check().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("llama3.2") && text.contains("ollama pull llama3.2"),
        "{text}"
    );
    let present = build(&deployment("local-llm", "ollama", "gemma2", mock.url()));
    present.health_check().await.unwrap();
    assert_eq!(mock.count("/api/tags"), 2);
}

#[actix::test]
async fn a_failed_health_check_takes_the_deployment_out_before_a_request_fails() {
    let health = HealthTable::new();
    let mut d = deployment(
        "ol",
        "ollama",
        "gemma2",
        format!("http://{}", refused_addr()),
    );
    // The first check runs as the pool starts; a failed one keeps the deployment out for
    // two intervals, long enough that the poll below cannot miss it on a busy machine.
    d.health_check_interval = Duration::from_secs(30);
    let _pool = ModelPool::new("ol", build(&d), d.pool_settings(), health.entry("ol")).start();
    // Polled with a generous bound: the check needs one refused connection, however slow
    // the machine is.
    let waited = Instant::now();
    while !health.entry("ol").is_cooling_down(Instant::now()) {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the failed start-up health check never took the deployment out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// --- Breaker ---------------------------------------------------------------------------

#[actix::test]
async fn the_breaker_opens_after_its_threshold_and_recovers_half_open() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let mock = MockServer::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::raw(200, "application/json", openai::tests::OPENAI_BODY)
        } else {
            Reply::raw(
                503,
                "application/json",
                r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":null}}"#,
            )
        }
    });
    let mut d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    d.breaker.failure_count = 2;
    d.breaker.min_calls = 0;
    d.breaker.open_for = Duration::from_millis(300);
    d.breaker.max_open_for = Duration::from_millis(300);
    // The breaker's wall clock, moved by hand: its open period passes when told to.
    let wall = crate::clock::ManualClock::new(1_700_000_000_000);
    let p = HttpProvider::new(
        "d",
        ProviderKind::OpenAi,
        "gpt-4o-mini",
        d.base_url.as_deref(),
        None,
        d.http_settings(),
        &env,
        wall.clone(),
    )
    .unwrap();
    let err = p.complete(&request()).await.unwrap_err();
    assert!(err.to_string().contains("circuit breaker open"), "{err}");
    assert_eq!(
        mock.requests().len(),
        2,
        "the third attempt met the open breaker"
    );
    assert_eq!(p.breaker_state(), BreakerState::Open);
    // Open: fails fast without a request.
    p.complete(&request()).await.unwrap_err();
    assert_eq!(mock.requests().len(), 2);
    // Half-open after `open_for`: one probe goes through and closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    wall.advance(350);
    let c = p.complete(&request()).await.unwrap();
    assert_eq!(c.text, "Hello! How can I help you today?");
    assert_eq!(p.breaker_state(), BreakerState::Closed);
}

// --- Failover through a real router ----------------------------------------------------

fn healthy_openai() -> MockServer {
    MockServer::start(|_| Reply::raw(200, "application/json", openai::tests::OPENAI_BODY))
}

fn pool_settings(d: &DeploymentConfig) -> PoolSettings {
    PoolSettings {
        cooldown_after_failures: 1,
        cooldown: Duration::from_secs(60),
        ..d.pool_settings()
    }
}

/// A router over `first` then a healthy OpenAI deployment `b`.
fn two_deployments(
    first: DeploymentConfig,
    healthy: &MockServer,
) -> (actix::Addr<ModelRouter>, HealthTable) {
    let health = HealthTable::new();
    let second = deployment(
        "b",
        "openai",
        "gpt-4o-mini",
        format!("{}/v1", healthy.url()),
    );
    let mut routes = Vec::new();
    for d in [first, second] {
        let pool = ModelPool::new(
            d.id.clone(),
            build(&d),
            pool_settings(&d),
            health.entry(&d.id),
        )
        .start();
        routes.push(DeploymentRoute::new(d.id.clone(), Arc::new(pool)));
    }
    let router = ModelRouter::new(health.clone(), crate::store::Store::temporary().unwrap())
        .with_model("m", RoutingStrategy::OrderedFallback, routes)
        .start();
    (router, health)
}

async fn ask_within(
    router: &actix::Addr<ModelRouter>,
    timeout: Duration,
) -> (crate::models::ModelResponse, Duration) {
    let mut req = request();
    req.timeout = timeout;
    let started = Instant::now();
    let resp = router
        .send(Ask(req))
        .await
        .expect("router answers")
        .expect("an answer");
    (resp, started.elapsed())
}

#[actix::test]
async fn the_router_answers_from_the_sibling_whatever_the_first_deployment_does() {
    let sse = |end| Reply::Chunked {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        chunks: openai::tests::TEXT_WITH_LOGPROBS
            .split_inclusive("\n\n")
            .take(2)
            .map(|c| (Duration::ZERO, c.as_bytes().to_vec()))
            .collect(),
        end,
    };
    let faults: Vec<(&str, Option<Reply>, &str)> = vec![
        ("refused", None, "unavailable"),
        ("hang", Some(Reply::Hang), "timeout"),
        (
            "429",
            Some(
                Reply::raw(429, "application/json", r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
                    .with_header("retry-after", "30"),
            ),
            "rate_limited",
        ),
        (
            "503",
            Some(Reply::raw(503, "application/json", r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":null}}"#)),
            "unavailable",
        ),
        ("malformed", Some(Reply::raw(200, "application/json", r#"{"id":"chatcmpl-1","choices":[{"index":0,"mess"#)), "malformed"),
        ("reset", Some(sse(StreamEnd::Reset)), "unavailable"),
        ("stalled", Some(sse(StreamEnd::Hang)), "timeout"),
    ];
    for (name, reply, outcome) in faults {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        crate::models::pool::describe();
        crate::models::router::describe();

        let healthy = healthy_openai();
        let faulty = reply.map(|r| MockServer::start(move |_| r.clone()));
        let url = match &faulty {
            Some(m) => format!("{}/v1", m.url()),
            None => format!("http://{}/v1", refused_addr()),
        };
        let mut first = deployment("a", "openai", "gpt-4o-mini", url);
        first.first_byte_timeout = Duration::from_millis(150);
        first.stream = matches!(name, "reset" | "stalled");
        let (router, health) = two_deployments(first, &healthy);
        let deadline = Duration::from_secs(3);
        let (resp, took) = ask_within(&router, deadline).await;
        assert_eq!(resp.deployment, "b", "{name}");
        assert_eq!(resp.text, "Hello! How can I help you today?", "{name}");
        assert!(took < deadline, "{name}: {took:?}");
        // The first deployment is cooling down: the next request goes straight to `b`.
        assert!(health.entry("a").is_cooling_down(Instant::now()), "{name}");
        let sent_to_a = faulty.as_ref().map(|m| m.requests().len());
        let (resp, _) = ask_within(&router, deadline).await;
        assert_eq!(resp.deployment, "b", "{name}");
        assert_eq!(
            faulty.as_ref().map(|m| m.requests().len()),
            sent_to_a,
            "{name}"
        );

        let text = handle.render();
        for line in [
            format!(r#"orrery_model_requests_total{{deployment="a",outcome="{outcome}"}} 1"#),
            r#"orrery_model_requests_total{deployment="b",outcome="ok"} 2"#.to_string(),
            r#"orrery_model_fallbacks_total{model="m",from="a"} 1"#.to_string(),
            r#"orrery_model_cooldowns_total{deployment="a"} 1"#.to_string(),
        ] {
            assert!(text.contains(&line), "{name}: missing `{line}` in:\n{text}");
        }
        // With a sibling left, the first deployment is called once and never retried in
        // place (its retries moved to `the_last_candidate_retries_in_place`).
        if let Some(m) = &faulty {
            assert_eq!(m.requests().len(), 1, "{name}");
        }
        assert!(
            !text.contains(r#"orrery_model_http_retries_total{deployment="a""#),
            "{name}: retried in place with a sibling left:\n{text}"
        );
    }
}

/// A router over `only`, with no sibling to move on to.
fn one_deployment(only: DeploymentConfig) -> actix::Addr<ModelRouter> {
    let health = HealthTable::new();
    let pool = ModelPool::new(
        only.id.clone(),
        build(&only),
        pool_settings(&only),
        health.entry(&only.id),
    )
    .start();
    let route = DeploymentRoute::new(only.id.clone(), Arc::new(pool));
    ModelRouter::new(health, crate::store::Store::temporary().unwrap())
        .with_model("m", RoutingStrategy::OrderedFallback, vec![route])
        .start()
}

#[actix::test]
async fn the_last_candidate_retries_in_place() {
    // Moved here from the sibling test above: with nothing left to move on to, a 503 is
    // retried in place (5 attempts) and a hung deployment (3 attempts).
    let faults: Vec<(&str, Reply, usize)> = vec![
        (
            "503",
            Reply::raw(
                503,
                "application/json",
                r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":null}}"#,
            ),
            5,
        ),
        ("hang", Reply::Hang, 3),
    ];
    for (name, reply, calls) in faults {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        crate::models::pool::describe();
        let faulty = MockServer::start(move |_| reply.clone());
        let mut only = deployment("a", "openai", "gpt-4o-mini", format!("{}/v1", faulty.url()));
        only.first_byte_timeout = Duration::from_millis(150);
        let router = one_deployment(only);
        let mut req = request();
        req.timeout = Duration::from_secs(3);
        let err = router.send(Ask(req)).await.unwrap().unwrap_err();
        assert!(
            matches!(err, ModelError::AllFailed { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(faulty.requests().len(), calls, "{name}");
        let text = handle.render();
        assert!(
            text.contains("# HELP orrery_model_http_retries_total")
                && text.contains(r#"orrery_model_http_retries_total{deployment="a""#),
            "{name}: no retries counted in:\n{text}"
        );
    }
}

/// The measured chain of issue 10.8, one deployment per wire format and fault: Anthropic
/// overloaded (529), an OpenAI-format server that never answers (first-byte timeout), a
/// proxy's HTML error page, then a healthy OpenAI deployment.
pub(crate) struct FailingChain {
    pub overloaded: MockServer,
    pub hung: MockServer,
    pub html: MockServer,
    pub healthy: MockServer,
}

impl FailingChain {
    pub(crate) fn start() -> Self {
        Self {
            overloaded: MockServer::start(|_| {
                Reply::raw(
                    529,
                    "application/json",
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                )
            }),
            hung: MockServer::start(|_| Reply::Hang),
            html: MockServer::start(|_| {
                Reply::raw(
                    502,
                    "text/html",
                    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
                )
            }),
            healthy: healthy_openai(),
        }
    }

    /// The four deployments in order, the hung one cut at `first_byte`.
    pub(crate) fn deployments(&self, first_byte: Duration) -> Vec<DeploymentConfig> {
        let mut hung = deployment(
            "hung",
            "openai",
            "gpt-4o",
            format!("{}/v1", self.hung.url()),
        );
        hung.first_byte_timeout = first_byte;
        vec![
            deployment(
                "overloaded",
                "anthropic",
                "claude-sonnet-4-20250514",
                self.overloaded.url(),
            ),
            hung,
            deployment(
                "html",
                "openai",
                "gpt-4o",
                format!("{}/v1", self.html.url()),
            ),
            deployment(
                "healthy",
                "openai",
                "gpt-4o-mini",
                format!("{}/v1", self.healthy.url()),
            ),
        ]
    }
}

#[actix::test]
async fn a_chain_of_failing_deployments_calls_each_once_then_skips_them() {
    let chain = FailingChain::start();
    let health = HealthTable::new();
    let routes = chain
        .deployments(Duration::from_millis(300))
        .into_iter()
        .map(|d| {
            // The shipped pool settings: cooldown on failover, 3 failures otherwise.
            let pool = ModelPool::new(
                d.id.clone(),
                build(&d),
                d.pool_settings(),
                health.entry(&d.id),
            )
            .start();
            DeploymentRoute::new(d.id.clone(), Arc::new(pool))
        })
        .collect();
    let router = ModelRouter::new(health.clone(), crate::store::Store::temporary().unwrap())
        .with_model("m", RoutingStrategy::OrderedFallback, routes)
        .start();
    let (resp, _) = ask_within(&router, Duration::from_secs(10)).await;
    assert_eq!(resp.deployment, "healthy");
    let calls = |c: &FailingChain| {
        [
            c.overloaded.requests().len(),
            c.hung.requests().len(),
            c.html.requests().len(),
            c.healthy.requests().len(),
        ]
    };
    assert_eq!(calls(&chain), [1, 1, 1, 1]);
    let tried: Vec<(&str, &str)> = resp
        .attempts
        .iter()
        .map(|a| (a.deployment.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(
        tried,
        [
            ("overloaded", "failed"),
            ("hung", "failed"),
            ("html", "failed"),
            ("healthy", "ok")
        ]
    );
    // The three are cooling down: the next request goes straight to the healthy one.
    for id in ["overloaded", "hung", "html"] {
        assert!(health.entry(id).is_cooling_down(Instant::now()), "{id}");
    }
    let (resp, _) = ask_within(&router, Duration::from_secs(10)).await;
    assert_eq!(resp.deployment, "healthy");
    assert_eq!(calls(&chain), [1, 1, 1, 2]);
    assert_eq!(
        resp.attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["skipped", "skipped", "skipped", "ok"]
    );
}

#[actix::test]
async fn anthropic_overloaded_fails_over_to_openai_within_the_deadline() {
    let overloaded = MockServer::start(|_| {
        Reply::raw(
            529,
            "application/json",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
    });
    let healthy = healthy_openai();
    let mut first = deployment(
        "a",
        "anthropic",
        "claude-sonnet-4-20250514",
        overloaded.url(),
    );
    first.retry_backoff = Duration::from_millis(20);
    let (router, _) = two_deployments(first, &healthy);
    let (resp, took) = ask_within(&router, Duration::from_secs(2)).await;
    assert_eq!(
        (resp.deployment.as_str(), resp.provider.as_str()),
        ("b", "openai")
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Issue 10.8: with a sibling left the overloaded deployment is called once (it was
    // 5, the in-place retries, now asserted with no sibling in
    // `anthropic_overloaded_alone_is_retried_in_place`).
    assert_eq!(overloaded.requests().len(), 1);
}

#[actix::test]
async fn anthropic_overloaded_alone_is_retried_in_place() {
    let overloaded = MockServer::start(|_| {
        Reply::raw(
            529,
            "application/json",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
    });
    let mut only = deployment(
        "a",
        "anthropic",
        "claude-sonnet-4-20250514",
        overloaded.url(),
    );
    only.retry_backoff = Duration::from_millis(20);
    let router = one_deployment(only);
    let mut req = request();
    req.timeout = Duration::from_secs(2);
    let err = router.send(Ask(req)).await.unwrap().unwrap_err();
    assert!(matches!(err, ModelError::AllFailed { .. }), "{err:?}");
    assert_eq!(overloaded.requests().len(), 5);
}

#[actix::test]
async fn retries_leave_the_router_half_the_deadline() {
    // A Retry-After of 80% of the deadline (48 s of 60 s): waiting would leave no time
    // for the sibling, so the deployment gives up at once and the router moves on. The
    // scale keeps the bound below (half the deadline) far from any machine's speed.
    let limited = MockServer::start(|_| {
        Reply::raw(429, "application/json", r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
            .with_header("retry-after-ms", "48000")
    });
    let healthy = healthy_openai();
    let mut first = deployment(
        "a",
        "openai",
        "gpt-4o-mini",
        format!("{}/v1", limited.url()),
    );
    first.timeout = Duration::from_secs(60);
    let (router, _) = two_deployments(first, &healthy);
    let (resp, took) = ask_within(&router, Duration::from_secs(60)).await;
    assert_eq!(resp.deployment, "b");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(limited.requests().len(), 1);
}

#[actix::test]
async fn a_429_with_a_retry_after_pauses_the_deployment_until_then() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let mock = MockServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::raw(429, "application/json", r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
                .with_header("retry-after", "60")
        } else {
            Reply::raw(200, "application/json", openai::tests::OPENAI_BODY)
        }
    });
    let d = deployment("d", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    let p = build(&d);
    let err = p.complete(&request()).await.unwrap_err();
    assert!(
        matches!(class_of(&err), Some(ErrorClass::RateLimited { retry_after: Some(w) }) if w == Duration::from_secs(60)),
        "{err}"
    );
    // The next call is not sent before the provider's time: it comes back rate limited
    // with the time left, at once, so the pool cools the deployment down.
    let err = p.complete(&request()).await.unwrap_err();
    match class_of(&err) {
        Some(ErrorClass::RateLimited {
            retry_after: Some(left),
        }) => assert!(
            left > Duration::from_secs(50) && left <= Duration::from_secs(60),
            "{left:?}"
        ),
        other => panic!("{other:?}: {err}"),
    }
    assert!(err.to_string().contains("paused"), "{err}");
    assert_eq!(mock.requests().len(), 1, "nothing sent during the pause");
}

// --- Secrets and config ----------------------------------------------------------------

#[test]
fn a_missing_key_is_a_startup_error_naming_the_variables() {
    for (provider, vars) in [
        ("openai", vec!["OPENAI_API_KEY", "OPENAI_KEY"]),
        ("anthropic", vec!["ANTHROPIC_API_KEY", "ANTHROPIC_KEY"]),
        (
            "gemini",
            vec!["GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_KEY"],
        ),
        ("groq", vec!["GROQ_API_KEY"]),
        ("deepseek", vec!["DEEPSEEK_API_KEY", "DEEPSEEK_KEY"]),
        ("xai", vec!["XAI_API_KEY", "GROK_API_KEY"]),
        ("openrouter", vec!["OPENROUTER_API_KEY"]),
    ] {
        let d = DeploymentConfig::http("x", provider, "m");
        let err = build_provider_with_env(&d, &no_env)
            .err()
            .expect("no key, no provider");
        assert!(matches!(err, BuildError::Http { .. }), "{err:?}");
        let text = err.to_string();
        for var in vars {
            assert!(text.contains(var), "{provider}: {text}");
        }
        assert!(text.contains("deployment `x`"), "{text}");
    }
    // Ollama needs none.
    build_provider_with_env(&DeploymentConfig::http("x", "ollama", "gemma2"), &no_env).unwrap();
}

#[test]
fn seed_project_aliases_and_api_key_env_are_read() {
    let aliases = |name: &str| {
        matches!(
            name,
            "ANTHROPIC_KEY" | "GROK_API_KEY" | "GEMINI_KEY" | "MY_KEY"
        )
        .then(|| SECRET.to_string())
    };
    for provider in ["anthropic", "xai", "gemini"] {
        build_provider_with_env(&DeploymentConfig::http("x", provider, "m"), &aliases).unwrap();
    }
    let mut d = DeploymentConfig::http("x", "openai", "m");
    assert!(build_provider_with_env(&d, &aliases).is_err());
    d.api_key_env = Some("MY_KEY".into());
    build_provider_with_env(&d, &aliases).unwrap();
    // A named variable that is unset never falls back to another account's key.
    d.api_key_env = Some("OTHER_KEY".into());
    let err = build_provider_with_env(&d, &env).err().unwrap().to_string();
    assert!(
        err.contains("OTHER_KEY") && !err.contains("OPENAI_API_KEY"),
        "{err}"
    );
}

#[actix::test]
async fn the_key_never_shows_in_debug_output_or_errors() {
    let mock = MockServer::start(|_| {
        Reply::raw(
            401,
            "application/json",
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        )
    });
    let d = deployment("a", "anthropic", "claude-sonnet-4-20250514", mock.url());
    let p = HttpProvider::new(
        "a",
        ProviderKind::Anthropic,
        "claude-sonnet-4-20250514",
        d.base_url.as_deref(),
        None,
        d.http_settings(),
        &env,
        crate::clock::system_clock(),
    )
    .unwrap();
    let err = p.complete(&request()).await.unwrap_err();
    assert_eq!(class_of(&err), Some(ErrorClass::Auth));
    assert_eq!(mock.requests()[0].header("x-api-key"), Some(SECRET));
    let mut models = ModelsConfig::default();
    models
        .models
        .get_mut("default")
        .unwrap()
        .deployments
        .push(d.clone());
    for text in [
        format!("{p:?}"),
        format!("{d:?}"),
        format!("{models:?}"),
        format!("{err:?}"),
        err.to_string(),
        json_of(&models),
    ] {
        assert!(!text.contains(SECRET), "{text}");
    }
}

fn json_of(models: &ModelsConfig) -> String {
    serde_json::to_string(models).unwrap()
}

#[test]
fn http_fields_are_validated_with_key_paths() {
    let mut d = DeploymentConfig::http("x", "openai", "gpt-4o-mini");
    d.base_url = Some("ftp://example.com".into());
    d.connect_timeout = Duration::ZERO;
    d.first_byte_timeout = Duration::from_secs(3600);
    d.rpm = Some(0);
    d.tpm = Some(0);
    d.api_key_env = Some("sk-abc def".into());
    let mut issues = Issues::default();
    d.validate("models.m.deployments[0]", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "models.m.deployments[0].base_url",
            "models.m.deployments[0].api_key_env",
            "models.m.deployments[0].connect_timeout",
            "models.m.deployments[0].first_byte_timeout",
            "models.m.deployments[0].rpm",
            "models.m.deployments[0].tpm",
        ],
        "{issues:#?}"
    );
    assert!(issues.0[0].allowed.contains("http"), "{:?}", issues.0[0]);

    let mut ok = DeploymentConfig::http("x", "anthropic", "claude-sonnet-4-20250514");
    ok.base_url = Some("http://127.0.0.1:8080".into());
    ok.rpm = Some(50);
    let mut issues = Issues::default();
    ok.validate("p", &mut issues);
    assert!(issues.is_empty(), "{issues:#?}");
}

#[test]
fn the_example_provider_config_parses_and_validates() {
    let text = include_str!("../../../../config/examples/llm-providers.toml");
    #[derive(serde::Deserialize)]
    struct File {
        models: ModelsConfig,
    }
    let file: File = toml::from_str(text).expect("example parses");
    let mut issues = Issues::default();
    file.models.validate("models", &mut issues);
    assert!(issues.is_empty(), "{issues:#?}");
    assert!(
        file.models
            .models
            .values()
            .flat_map(|m| &m.deployments)
            .count()
            >= 8
    );
}

#[actix::test]
async fn a_stream_failing_after_text_reached_the_reader_is_not_retried() {
    // OpenRouter's mid-stream error event (as in the `providers::openai` tests), sent
    // after a first text chunk.
    let text = concat!(
        r#"data: {"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}"#,
        "\n\n"
    );
    let error = concat!(
        r#"data: {"id":"gen-1","object":"chat.completion.chunk","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
        "\n\n"
    );
    let mock = MockServer::start(move |_| Reply::Chunked {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        chunks: vec![
            (Duration::ZERO, text.as_bytes().to_vec()),
            (Duration::from_millis(30), error.as_bytes().to_vec()),
        ],
        end: StreamEnd::Finish,
    });
    let mut d = deployment(
        "d",
        "openrouter",
        "openai/gpt-4o-mini",
        format!("{}/api/v1", mock.url()),
    );
    d.stream = true;
    // Counted here: the retries, not the breaker (five failures would open it).
    d.breaker.enabled = false;
    let p = build(&d);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let err = p.complete_stream(&request(), tx).await.unwrap_err();
    assert!(err.to_string().contains("Provider disconnected"), "{err}");
    assert_eq!(
        mock.requests().len(),
        1,
        "text reached the reader: no second attempt"
    );
    assert_eq!(rx.try_recv().ok().as_deref(), Some("par"));
    assert!(rx.try_recv().is_err());
    // Without a reader nothing was shown yet: the error event is retried as an overload
    // (fixed interval, five attempts).
    p.complete(&request()).await.unwrap_err();
    assert_eq!(mock.requests().len(), 1 + 5);
}

// --- Breaker state across restarts ----------------------------------------------------

#[actix::test]
async fn an_open_breaker_stays_open_when_the_pool_is_rebuilt_from_the_same_store() {
    use crate::models::pool::Complete;
    use crate::models::router::build_provider_with;
    use crate::resilience::BreakerRecord;
    use crate::store::{trees, Store};

    let mock = MockServer::start(|_| {
        Reply::raw(
            503,
            "application/json",
            r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":null}}"#,
        )
    });
    let mut d = deployment("a", "openai", "gpt-4o-mini", format!("{}/v1", mock.url()));
    d.breaker.failure_count = 2;
    d.breaker.min_calls = 0;
    d.breaker.open_for = Duration::from_secs(600);
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let p = build_provider_with(&d, &env, Some(&store)).unwrap();
        let err = p.complete(&request()).await.unwrap_err();
        assert!(err.to_string().contains("circuit breaker open"), "{err}");
        assert_eq!(mock.requests().len(), 2);
        store.flush().unwrap();
    }

    // A restart: the data dir opened again, the pool rebuilt from config as the engine's
    // child spec does.
    let store = Store::open(dir.path()).unwrap();
    let record = store
        .tree::<BreakerRecord>(trees::BREAKERS)
        .unwrap()
        .get("a")
        .unwrap()
        .expect("the breaker's state is in sled under the deployment id");
    assert_eq!(record.state, BreakerState::Open);
    let health = HealthTable::new();
    let pool = ModelPool::new(
        "a",
        build_provider_with(&d, &env, Some(&store)).unwrap(),
        d.pool_settings(),
        health.entry("a"),
    )
    .start();
    let err = pool
        .send(Complete::new(
            Arc::new(request()),
            Instant::now() + Duration::from_secs(2),
        ))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("circuit breaker open"), "{err}");
    assert_eq!(class_of(&err), Some(ErrorClass::Unavailable));
    assert_eq!(mock.requests().len(), 2, "refused without a network call");

    // Built without the store, the same deployment would call the failing target again.
    build(&d).complete(&request()).await.unwrap_err();
    assert!(mock.requests().len() > 2);
}

// --- OpenRouter attribution -----------------------------------------------------------

#[actix::test]
async fn openrouter_attribution_from_config_goes_on_the_wire() {
    let mock = MockServer::start(|r| {
        if r.body_json().is_some_and(|b| b["stream"] == true) {
            stream_reply("text/event-stream", openai::tests::TEXT_WITH_LOGPROBS)
        } else {
            Reply::raw(200, "application/json", openai::tests::OPENAI_BODY)
        }
    });
    let toml = format!(
        r#"
        id = "or"
        provider = "openrouter"
        model = "openai/gpt-4o-mini"
        base_url = "{}/api/v1"
        app_url = "https://orrery.example/desk"
        app_title = "Orrery trading desk"
        "#,
        mock.url()
    );
    let d: DeploymentConfig = toml::from_str(&toml).unwrap();
    let mut issues = Issues::default();
    d.validate("models.m.deployments[0]", &mut issues);
    assert!(issues.is_empty(), "{issues:#?}");
    let c = build(&d).complete(&request()).await.unwrap();
    assert_eq!(c.text, "Hello! How can I help you today?");
    // Streamed requests carry them too.
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let c = build(&d).complete_stream(&request(), tx).await.unwrap();
    assert_eq!(c.text, "Foo!");
    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    for r in &sent {
        assert_eq!(r.route(), "/api/v1/chat/completions");
        assert_eq!(
            r.header("http-referer"),
            Some("https://orrery.example/desk")
        );
        assert_eq!(r.header("x-title"), Some("Orrery trading desk"));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
    }

    // Without attribution none is sent.
    let mut plain = d.clone();
    plain.app_url = None;
    plain.app_title = None;
    build(&plain).complete(&request()).await.unwrap();
    let last = mock.requests().pop().unwrap();
    assert!(last.header("http-referer").is_none() && last.header("x-title").is_none());
}

#[test]
fn attribution_is_validated_with_key_paths() {
    let mut d = DeploymentConfig::http("or", "openrouter", "openai/gpt-4o-mini");
    d.app_url = Some("orrery.example".into());
    d.app_title = Some("Orrery\r\nX-Injected: 1".into());
    let mut issues = Issues::default();
    d.validate("models.m.deployments[2]", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "models.m.deployments[2].app_url",
            "models.m.deployments[2].app_title",
        ],
        "{issues:#?}"
    );
    assert!(
        issues.0[0].allowed.contains("http(s) URL"),
        "{:?}",
        issues.0[0]
    );
    assert!(
        issues.0[1].allowed.contains("visible ASCII"),
        "{:?}",
        issues.0[1]
    );
    d.app_title = Some("   ".into());
    d.app_url = Some("https://orrery.example".into());
    let mut issues = Issues::default();
    d.validate("p", &mut issues);
    assert_eq!(issues.0.len(), 1, "{issues:#?}");
    assert_eq!(issues.0[0].key, "p.app_title");

    // Only OpenRouter reads them.
    for provider in ["openai", "anthropic", "local"] {
        let mut other = if provider == "local" {
            DeploymentConfig::local("x")
        } else {
            DeploymentConfig::http("x", provider, "m")
        };
        other.app_url = Some("https://orrery.example".into());
        other.app_title = Some("Orrery".into());
        let mut issues = Issues::default();
        other.validate("q", &mut issues);
        let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            ["q.app_url", "q.app_title"],
            "{provider}: {issues:#?}"
        );
        assert!(issues.0[0].allowed.contains("only OpenRouter"));
    }
}

/// Two nodes' deployments naming one `shared` scope: their rpm draws add up to one
/// budget in Redis, while each local bucket alone would admit the whole rpm.
#[tokio::test]
async fn a_shared_scope_makes_two_nodes_draw_one_rpm_budget() {
    let redis = crate::testkit::RedisServer::start().unwrap();
    let node = |id: &str| {
        let c = crate::cluster::ClusterConfig {
            url: redis.url(),
            node_id: id.into(),
            key_prefix: "t:".into(),
            ..crate::cluster::ClusterConfig::default()
        };
        crate::cluster::SharedLimits::new(crate::cluster::RedisLink::open(&c, None).unwrap(), 2)
    };
    let settings = HttpSettings {
        rpm: Some(4),
        health_check_every: None,
        ..HttpSettings::default()
    };
    let provider = |shared: &crate::cluster::SharedLimits| {
        HttpProvider::new(
            "d",
            ProviderKind::OpenAi,
            "m",
            Some("http://127.0.0.1:9"),
            None,
            settings.clone(),
            &env,
            crate::clock::system_clock(),
        )
        .unwrap()
        .with_shared_budgets(shared, "key-1")
        .unwrap()
    };
    let (a, b) = (provider(&node("a")), provider(&node("b")));
    let soon = || Instant::now() + Duration::from_millis(500);
    let draw = |p: &HttpProvider| {
        let t = p.requests.clone().unwrap();
        async move { t.acquire(1, Priority::Low, soon()).await }
    };
    for _ in 0..3 {
        draw(&a).await.unwrap();
    }
    draw(&b).await.unwrap();
    // The budget of 4 per minute is spent across the two nodes.
    assert!(draw(&b).await.is_err());
    assert!(draw(&a).await.is_err());
}
