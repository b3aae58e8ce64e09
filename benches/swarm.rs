//! Swarm latency: 7 members answering in 100 ms plus one hung member, asked through the
//! model router's `Swarm` (real pools, real OpenAI HTTP providers over loopback to mock
//! servers that answer in the chat-completions wire format after 100 ms, or never), the
//! answers then parsed and counted by the swarm's consensus — the trading agent's path.
//!
//! - `swarm/7x100ms+hung/member_timeout_150ms`: target: finishes within
//!   `member_timeout` + 5 ms (155 ms); every one of the 7 members answers in time.
//! - `swarm/7x100ms+hung/member_timeout_105ms`: target: finishes within 110 ms.
//!
//! After each run the bench prints p50 / p99 / max of the swarm's elapsed time against its
//! target, and how many members answered in time. The hung deployment never cools down
//! and its breaker never opens (so every iteration waits on a hung member, rather than
//! skipping it as the engine would after repeated timeouts).
//!
//! Run: `cargo bench --bench swarm -- --warm-up-time 1 --measurement-time 5`

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use criterion::{criterion_group, criterion_main, Criterion};
use orrery_actors::agents::swarm::{consensus, member_answer, Quorum, SwarmSettings};
use orrery_actors::models::pool::{HealthTable, ModelPool};
use orrery_actors::models::router::{
    build_provider_with_env, DeploymentConfig, DeploymentRoute, ModelRouter, RoutingStrategy, Swarm,
};
use orrery_actors::models::{ModelRequest, Purpose, TradeAction};
use orrery_actors::store::Store;
use orrery_actors::testkit::{MockServer, Reply};

const MEMBERS: usize = 7;
const ANSWER_AFTER: Duration = Duration::from_millis(100);

fn deployment(id: &str, server: &MockServer) -> DeploymentConfig {
    let mut cfg = DeploymentConfig::http(id, "openai", "gpt-4o-mini");
    cfg.base_url = Some(format!("{}/v1", server.url()));
    cfg.max_concurrent = 64;
    cfg.max_queued = 64;
    // Keep the hung member hung on every iteration (see the module docs).
    cfg.cooldown_after_failures = u32::MAX;
    cfg.cooldown_on_failover = false;
    cfg.breaker.enabled = false;
    cfg
}

struct Bench {
    router: actix::Addr<ModelRouter>,
    members: Vec<String>,
    _servers: Vec<MockServer>,
}

fn setup() -> Bench {
    let health = HealthTable::new();
    let mut router = ModelRouter::new(health.clone(), Store::temporary().unwrap());
    let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-bench-swarm".to_string());
    let mut servers = Vec::new();
    let mut members = Vec::new();
    for i in 0..=MEMBERS {
        let hung = i == MEMBERS;
        let server = if hung {
            MockServer::start(|_| Reply::Hang)
        } else {
            MockServer::start(|_| {
                Reply::Delayed(
                    ANSWER_AFTER,
                    Box::new(Reply::openai_chat_completion(
                        r#"{"action":"BUY","confidence":0.8,"reason":"trend"}"#,
                    )),
                )
            })
        };
        let id = if hung {
            "hung".to_string()
        } else {
            format!("m{i}")
        };
        let cfg = deployment(&id, &server);
        let provider = build_provider_with_env(&cfg, &env).unwrap();
        let pool =
            ModelPool::new(id.clone(), provider, cfg.pool_settings(), health.entry(&id)).start();
        router = router.with_model(
            id.clone(),
            RoutingStrategy::OrderedFallback,
            vec![DeploymentRoute::new(id.clone(), Arc::new(pool))],
        );
        members.push(id);
        servers.push(server);
    }
    Bench {
        router: router.start(),
        members,
        _servers: servers,
    }
}

fn settings(members: &[String], member_timeout: Duration) -> SwarmSettings {
    SwarmSettings {
        members: members.to_vec(),
        quorum: Quorum::Majority,
        member_timeout,
        reviewer: None,
        review_timeout: member_timeout,
        quorum_loss: Default::default(),
    }
}

/// One swarm decision; returns its elapsed time and how many members answered.
async fn decide(b: &Bench, settings: &SwarmSettings) -> (Duration, usize) {
    let mut request = ModelRequest::new("swarm", Purpose::TradeDecision, "BTC 1m: decide");
    request.timeout = settings.member_timeout;
    let started = Instant::now();
    let replies = b
        .router
        .send(Swarm {
            models: b.members.clone(),
            request,
            deadline: settings.member_timeout,
        })
        .await
        .expect("router alive");
    let (members, ballots): (Vec<_>, Vec<_>) = replies
        .into_iter()
        .map(|r| member_answer(r, "BTC", settings))
        .unzip();
    let verdict = consensus(&ballots, settings.quorum);
    let elapsed = started.elapsed();
    let answered = members.iter().filter(|m| m.abstention.is_none()).count();
    assert!(
        answered < MEMBERS || verdict.verdict == TradeAction::Buy,
        "{verdict:?}"
    );
    (elapsed, answered)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn swarm(c: &mut Criterion) {
    let system = actix::System::new();
    let bench = system.block_on(async { setup() });
    // Warm the connections to the answering members.
    system.block_on(decide(
        &bench,
        &settings(&bench.members, Duration::from_millis(500)),
    ));
    let mut group = c.benchmark_group("swarm/7x100ms+hung");
    group.sample_size(30);
    for (name, member_timeout, target) in [
        ("member_timeout_150ms", 150u64, 155u64),
        ("member_timeout_105ms", 105, 110),
    ] {
        let s = settings(&bench.members, Duration::from_millis(member_timeout));
        let mut samples: Vec<(Duration, usize)> = Vec::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (took, answered) = decide(&bench, &s).await;
                        samples.push((took, answered));
                        total += took;
                    }
                    total
                })
            })
        });
        let mut times: Vec<Duration> = samples.iter().map(|(t, _)| *t).collect();
        times.sort();
        let within = times
            .iter()
            .filter(|t| **t <= Duration::from_millis(target))
            .count();
        let all_answered = samples.iter().filter(|(_, a)| *a == MEMBERS).count();
        println!(
            "swarm {name}: {} decisions, p50 {:.2?} p99 {:.2?} max {:.2?}; within {target} ms: {within}/{}; all {MEMBERS} members answered in {all_answered}/{}",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1],
            times.len(),
            samples.len()
        );
    }
    group.finish();
}

criterion_group!(benches, swarm);
criterion_main!(benches);
