//! What the model router and its HTTP pool cost on top of a bare reqwest client, against a
//! zero-latency loopback mock speaking OpenAI chat completions.
//!
//! Run: `cargo bench -p orrery-actors --bench model_http -- --warm-up-time 1 --measurement-time 3`
//!
//! - `model_http/bare_reqwest` vs `model_http/router`: one whole request, sequential.
//!   The bare client sends the same JSON body and parses the answer into a JSON value;
//!   the router path adds the `Ask` actor hop, the request key and single-flight, the
//!   pool (reached through its same-arbiter lane: admission, health, metrics), the
//!   breaker, the first-byte timer, request building, wire parsing and accounting.
//! - `model_http/router_failover_refused`: the first deployment's port refuses
//!   connections (no cooldown and its breaker off, so every request pays the refused
//!   connect and the failover); compare with `router`.
//! - `failover_chain/overloaded_hung_html_healthy`: issue 10.8's chain, one loopback mock
//!   per wire format and fault: Anthropic 529 `overloaded_error`, an OpenAI-format server
//!   that never answers (`first_byte_timeout` 2 s), a proxy's HTML 502 page, then a healthy
//!   OpenAI deployment; the shipped pool settings (cooldown on failover). Each sample is
//!   a fresh router and pools (nothing cooling down yet), so every sample pays the whole
//!   chain; the bound is `first_byte_timeout` + 250 ms. A plain pass prints each chain's
//!   time and the calls each mock got.
//! - Before criterion's rows, a plain pass prints p50/p99 of each path and the overhead,
//!   and throughput at concurrency 64 for the router and the bare client (same client
//!   settings, same mock, same runtime thread; every request a distinct prompt, so the
//!   router's single-flight cannot merge them), in twelve short alternating rounds.
//!
//! Measured (2 cores shared with other builds, load 2.5-3.5; the plain pass, µs):
//! bare p50 29.5 / p99 80.5, router p50 30.5 / p99 95.4 → overhead p50 1.0 / p99 14.9;
//! failover on a refused connection adds p50 32.7 / p99 68.6; throughput at concurrency
//! 64: bare 37227 req/s, router 33460 req/s (0.90×; 0.83-0.96× over five runs, per-round
//! medians 0.90-0.99×).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::join_all;

use orrery_actors::models::pool::{HealthTable, ModelPool};
use orrery_actors::models::router::{
    build_provider_with_env, DeploymentConfig, DeploymentRoute, ModelRouter, RoutingStrategy,
};
use orrery_actors::models::{Ask, ModelRequest, Purpose};

// The crate's test mock server, compiled into the bench as is (it is behind the
// `testkit` feature in the library, which `cargo bench` does not enable).
#[allow(dead_code, unused_imports)]
#[path = "../src/testkit/http_mock.rs"]
mod http_mock;
use http_mock::{refused_addr, MockServer, Reply};

/// openai-python's recorded whole answer (as in `providers::openai` tests).
const OPENAI_BODY: &str = "{\n  \"id\": \"chatcmpl-CcWj9dBmozYrIh53F5tkednY14t4r\",\n  \"object\": \"chat.completion\",\n  \"created\": 1763298303,\n  \"model\": \"gpt-5.1-chat-latest\",\n  \"choices\": [\n    {\n      \"index\": 0,\n      \"message\": {\n        \"role\": \"assistant\",\n        \"content\": \"Hello! How can I help you today?\",\n        \"refusal\": null,\n        \"annotations\": []\n      },\n      \"finish_reason\": \"stop\"\n    }\n  ],\n  \"usage\": {\n    \"prompt_tokens\": 20,\n    \"completion_tokens\": 18,\n    \"total_tokens\": 38\n  },\n  \"service_tier\": \"default\",\n  \"system_fingerprint\": null\n}\n";

const CONCURRENCY: usize = 64;
/// Calls per concurrent caller in one throughput round.
const PER_CALLER: usize = 100;
/// Throughput rounds per client.
const ROUNDS: usize = 12;

fn env(name: &str) -> Option<String> {
    matches!(name, "OPENAI_API_KEY" | "ANTHROPIC_API_KEY").then(|| "sk-bench".to_string())
}

/// `breaker`: off only where the bench wants every request to pay a refused connect.
fn deployment(id: &str, base_url: String, breaker: bool) -> DeploymentConfig {
    let mut d = DeploymentConfig::http(id, "openai", "gpt-4o-mini");
    d.base_url = Some(base_url);
    d.max_concurrent = CONCURRENCY;
    d.max_idle_connections = CONCURRENCY;
    d.health_check_interval = Duration::ZERO;
    d.breaker.enabled = breaker;
    d
}

fn start_router(deployments: Vec<DeploymentConfig>) -> actix::Addr<ModelRouter> {
    let health = HealthTable::new();
    let routes = deployments
        .into_iter()
        .map(|d| {
            let provider = build_provider_with_env(&d, &env).expect("provider");
            let mut settings = d.pool_settings();
            // Never cool down: every request pays the failover being measured.
            settings.cooldown_after_failures = 0;
            let pool =
                ModelPool::new(d.id.clone(), provider, settings, health.entry(&d.id)).start();
            DeploymentRoute::new(d.id.clone(), Arc::new(pool))
        })
        .collect();
    ModelRouter::new(
        health,
        orrery_actors::store::Store::temporary().expect("temporary store"),
    )
    .with_model("m", RoutingStrategy::OrderedFallback, routes)
    .start()
}

/// A prompt no other request in flight shares: identical concurrent requests would be
/// coalesced by the router's single-flight (one upstream call for all of them), which
/// would measure the coalescing, not the path. Both clients send the same prompts.
fn prompt() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("BTC at 97k. Buy? #{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn request() -> ModelRequest {
    let mut req = ModelRequest::new("m", Purpose::Freeform, prompt());
    req.max_tokens = 64;
    req.timeout = Duration::from_secs(10);
    req
}

struct Bare {
    client: reqwest::Client,
    url: String,
}

impl Bare {
    fn new(mock: &MockServer) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .tcp_nodelay(true)
            .build()
            .expect("client");
        Self {
            client,
            url: format!("{}/v1/chat/completions", mock.url()),
        }
    }

    async fn call(&self) {
        let body = serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": prompt()}],
            "max_completion_tokens": 64,
            "temperature": 0.0,
        });
        let resp = self
            .client
            .post(&self.url)
            .bearer_auth("sk-bench")
            .json(&body)
            .send()
            .await
            .expect("bare send");
        let bytes = resp.bytes().await.expect("bare body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("bare json");
        std::hint::black_box(v);
    }
}

async fn ask(router: &actix::Addr<ModelRouter>) {
    let resp = router
        .send(Ask(request()))
        .await
        .expect("router up")
        .expect("an answer");
    std::hint::black_box(resp);
}

/// How long `CONCURRENCY` callers take to make `PER_CALLER` calls each, in turn.
async fn round<F, Fut>(call: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    join_all((0..CONCURRENCY).map(|_| async {
        for _ in 0..PER_CALLER {
            call().await;
        }
    }))
    .await;
    t.elapsed()
}

fn rps(took: Duration) -> f64 {
    (CONCURRENCY * PER_CALLER) as f64 / took.as_secs_f64()
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let system = actix::System::new();
    let mock = MockServer::start(|_| Reply::raw(200, "application/json", OPENAI_BODY));
    let (router, failover, bare) = system.block_on(async {
        let router = start_router(vec![deployment("a", format!("{}/v1", mock.url()), true)]);
        let failover = start_router(vec![
            deployment("down", format!("http://{}/v1", refused_addr()), false),
            deployment("up", format!("{}/v1", mock.url()), true),
        ]);
        (router, failover, Bare::new(&mock))
    });

    // Plain pass: percentiles and throughput, interleaved so drift hits both paths.
    system.block_on(async {
        for _ in 0..500 {
            bare.call().await;
            ask(&router).await;
            ask(&failover).await;
        }
        let n = 5_000;
        let (mut b, mut r, mut f) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let t = Instant::now();
            bare.call().await;
            b.push(t.elapsed());
            let t = Instant::now();
            ask(&router).await;
            r.push(t.elapsed());
            let t = Instant::now();
            ask(&failover).await;
            f.push(t.elapsed());
        }
        let ((b50, b99), (r50, r99), (f50, f99)) = (percentiles(b), percentiles(r), percentiles(f));
        println!("latency (µs)          p50       p99");
        println!("bare reqwest      {:>8.1}  {:>8.1}", us(b50), us(b99));
        println!("router            {:>8.1}  {:>8.1}", us(r50), us(r99));
        println!("router overhead   {:>8.1}  {:>8.1}", us(r50) - us(b50), us(r99) - us(b99));
        println!("failover (refused){:>8.1}  {:>8.1}", us(f50), us(f99));
        println!("failover added    {:>8.1}  {:>8.1}", us(f50) - us(r50), us(f99) - us(r99));

        // Short rounds alternate (the order flipping every round) so that load from other
        // processes on the shared machine hits both clients alike; each client's figure is
        // all its requests over all its time, and the spread of the per-round ratios shows
        // how noisy the machine was.
        let (mut bare_time, mut router_time) = (Duration::ZERO, Duration::ZERO);
        let mut ratios = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS {
            let (b, r) = if i % 2 == 0 {
                let b = round(|| bare.call()).await;
                (b, round(|| ask(&router)).await)
            } else {
                let r = round(|| ask(&router)).await;
                (round(|| bare.call()).await, r)
            };
            bare_time += b;
            router_time += r;
            ratios.push(rps(r) / rps(b));
        }
        ratios.sort_by(f64::total_cmp);
        let (bare_rps, router_rps) = (
            rps(bare_time) * ROUNDS as f64,
            rps(router_time) * ROUNDS as f64,
        );
        println!(
            "throughput at concurrency {CONCURRENCY} ({ROUNDS} alternating rounds of {} requests each): bare {bare_rps:.0} req/s, router {router_rps:.0} req/s, ratio {:.2} (per-round ratios {:.2} .. median {:.2} .. {:.2})",
            CONCURRENCY * PER_CALLER,
            router_rps / bare_rps,
            ratios[0],
            ratios[ROUNDS / 2],
            ratios[ROUNDS - 1],
        );
    });

    let mut g = c.benchmark_group("model_http");
    g.bench_function("bare_reqwest", |bch| {
        bch.iter_custom(|iters| {
            system.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    bare.call().await;
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("router", |bch| {
        bch.iter_custom(|iters| {
            system.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    ask(&router).await;
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("router_failover_refused", |bch| {
        bch.iter_custom(|iters| {
            system.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    ask(&failover).await;
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

/// The first-byte timeout of the hung deployment in the failover chain.
const CHAIN_FIRST_BYTE: Duration = Duration::from_secs(2);

struct Chain {
    overloaded: MockServer,
    hung: MockServer,
    html: MockServer,
    healthy: MockServer,
}

impl Chain {
    fn start() -> Self {
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
            healthy: MockServer::start(|_| Reply::raw(200, "application/json", OPENAI_BODY)),
        }
    }

    /// A fresh router over the four, with the shipped pool settings.
    fn router(&self) -> actix::Addr<ModelRouter> {
        let mut overloaded =
            DeploymentConfig::http("overloaded", "anthropic", "claude-sonnet-4-20250514");
        overloaded.base_url = Some(self.overloaded.url());
        let mut hung = DeploymentConfig::http("hung", "openai", "gpt-4o");
        hung.base_url = Some(format!("{}/v1", self.hung.url()));
        hung.first_byte_timeout = CHAIN_FIRST_BYTE;
        let mut html = DeploymentConfig::http("html", "openai", "gpt-4o");
        html.base_url = Some(format!("{}/v1", self.html.url()));
        let mut healthy = DeploymentConfig::http("healthy", "openai", "gpt-4o-mini");
        healthy.base_url = Some(format!("{}/v1", self.healthy.url()));
        let health = HealthTable::new();
        let routes = [overloaded, hung, html, healthy]
            .into_iter()
            .map(|mut d| {
                d.health_check_interval = Duration::ZERO;
                let provider = build_provider_with_env(&d, &env).expect("provider");
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
        ModelRouter::new(
            health,
            orrery_actors::store::Store::temporary().expect("temporary store"),
        )
        .with_model("m", RoutingStrategy::OrderedFallback, routes)
        .start()
    }

    fn calls(&self) -> [usize; 4] {
        [
            self.overloaded.requests().len(),
            self.hung.requests().len(),
            self.html.requests().len(),
            self.healthy.requests().len(),
        ]
    }
}

/// One chain through a fresh router; the time of the `Ask` alone.
async fn chain_once(chain: &Chain) -> Duration {
    let router = chain.router();
    let t = Instant::now();
    let answer = router.send(Ask(request())).await.expect("router alive");
    let took = t.elapsed();
    let answer = answer.expect("the healthy deployment answers");
    assert_eq!(answer.deployment, "healthy");
    took
}

fn failover_chain(c: &mut Criterion) {
    let system = actix::System::new();
    let chain = system.block_on(async { Chain::start() });
    let bound = CHAIN_FIRST_BYTE + Duration::from_millis(250);
    system.block_on(async {
        let mut times = Vec::new();
        for _ in 0..5 {
            times.push(chain_once(&chain).await);
        }
        let worst = times.iter().max().copied().unwrap_or_default();
        println!(
            "failover chain (overloaded, hung {CHAIN_FIRST_BYTE:?}, html, healthy), 5 fresh routers: {:?}; worst {worst:?} vs bound {bound:?} {}; calls per mock {:?} (each failing one once per chain)",
            times,
            if worst <= bound { "ok" } else { "OVER" },
            chain.calls()
        );
    });
    let mut g = c.benchmark_group("failover_chain");
    g.sample_size(10);
    g.bench_function("overloaded_hung_html_healthy", |bch| {
        bch.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += chain_once(&chain).await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench, failover_chain);
criterion_main!(benches);
