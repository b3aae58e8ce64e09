//! `orrery models` and `orrery ask`: the report of every model deployment (provider, model,
//! live health, cooldown, limits, prices, usage and cost) and the body of a one-off prompt.
//!
//! Owns: the shape of `GET /api/models`, `POST /api/ask` and `POST /api/ask/stream`,
//! building the report from a running engine (health from the router) or from config +
//! sled (engine stopped: no health, said as "not running"), and its text rendering; the
//! streamed ask as [`StreamLine`]s, shared by `orrery ask --stream` in-process and the
//! control API so both paths print the same thing. Never: routes a request itself (the
//! router does) or writes usage (the router's accounting does).

use std::fmt::Write;
use std::time::Duration;

use orrery_actors::models::router::{
    usage_records, AskStream, DeploymentReport, DeploymentUsage, HealthReport, Inspect, ModelRouter,
};
use orrery_actors::models::{ModelError, ModelRequest, ModelResponse, Purpose};
use orrery_actors::store::Store;
use orrery_actors::supervisor::Slot;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::EngineHandle;

/// Every deployment of every logical model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelsReport {
    pub engine_running: bool,
    pub deployments: Vec<DeploymentStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// Logical model name (`[models.<name>]`).
    pub model: String,
    pub strategy: String,
    pub deployment: String,
    pub provider: String,
    /// The provider's model name.
    pub provider_model: String,
    /// `ok`, `cooling down`, `pool down`, or `not running` (engine stopped).
    pub state: String,
    /// Live health; absent when the engine is not running.
    pub health: Option<HealthReport>,
    pub limits: Limits,
    pub price_prompt_per_mtok: Decimal,
    pub price_completion_per_mtok: Decimal,
    pub usage: DeploymentUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub max_concurrent: usize,
    pub max_queued: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub cooldown_after_failures: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    pub weight: u32,
    pub context_window: Option<u32>,
    /// Cache TTL of the logical model, if its answers are cached.
    #[serde(default, with = "humantime_serde")]
    pub cache_ttl: Option<Duration>,
}

fn from_config(
    config: &Config,
    mut live: impl FnMut(&str) -> Option<DeploymentReport>,
    mut usage: impl FnMut(&str) -> DeploymentUsage,
    running: bool,
) -> ModelsReport {
    let mut deployments = Vec::new();
    for (name, model) in &config.models.models {
        for d in &model.deployments {
            let report = live(&d.id);
            let health = report.as_ref().and_then(|r| r.health.clone());
            let state = match &report {
                None if !running => "not running".to_string(),
                None => "unknown to the router".to_string(),
                Some(r) if !r.pool_running => "pool down".to_string(),
                Some(_) => match health.as_ref().and_then(|h| h.cooldown_remaining_ms) {
                    Some(ms) => format!("cooling down for {ms} ms"),
                    None => "ok".to_string(),
                },
            };
            deployments.push(DeploymentStatus {
                model: name.clone(),
                strategy: model.strategy.name().to_string(),
                deployment: d.id.clone(),
                provider: d.provider.clone(),
                provider_model: d.model.clone(),
                state,
                health,
                limits: Limits {
                    max_concurrent: d.max_concurrent,
                    max_queued: d.max_queued,
                    timeout: d.timeout,
                    cooldown_after_failures: d.cooldown_after_failures,
                    cooldown: d.cooldown,
                    weight: d.weight,
                    context_window: d.context_window,
                    cache_ttl: model.cache_ttl,
                },
                price_prompt_per_mtok: d.price_prompt_per_mtok,
                price_completion_per_mtok: d.price_completion_per_mtok,
                usage: report.map(|r| r.usage).unwrap_or_else(|| usage(&d.id)),
            });
        }
    }
    ModelsReport {
        engine_running: running,
        deployments,
    }
}

/// Usage per deployment as persisted in sled.
pub fn stored_usage(store: &Store) -> Result<Vec<(String, DeploymentUsage)>, String> {
    usage_records(store).map_err(|e| e.to_string())
}

/// The report of a stopped engine: config and the usage in its data dir (if any).
pub fn offline(config: &Config, store: Option<&Store>) -> Result<ModelsReport, String> {
    let usage = match store {
        Some(s) => stored_usage(s)?,
        None => Vec::new(),
    };
    Ok(from_config(
        config,
        |_| None,
        |id| {
            usage
                .iter()
                .find(|(d, _)| d == id)
                .map(|(_, u)| u.clone())
                .unwrap_or_default()
        },
        false,
    ))
}

/// The report of the running engine, with live health from its router.
pub async fn live(engine: &EngineHandle) -> Result<ModelsReport, String> {
    let reports = tokio::time::timeout(Duration::from_secs(5), engine.router.send(Inspect))
        .await
        .map_err(|_| "the model router did not answer within 5s".to_string())?
        .map_err(|e| format!("the model router is not available: {e}"))?;
    Ok(from_config(
        &engine.config,
        |id| reports.iter().find(|r| r.deployment == id).cloned(),
        |_| DeploymentUsage::default(),
        true,
    ))
}

/// Human-readable rendering.
pub fn render(r: &ModelsReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "engine: {}",
        if r.engine_running {
            "running"
        } else {
            "not running (health unknown; usage from the data dir)"
        }
    );
    let mut last_model = None;
    for d in &r.deployments {
        if last_model != Some(&d.model) {
            let _ = writeln!(
                o,
                "\nmodel {} (strategy {}{})",
                d.model,
                d.strategy,
                d.limits
                    .cache_ttl
                    .map(|t| format!(", cache {}", humantime::format_duration(t)))
                    .unwrap_or_default()
            );
            last_model = Some(&d.model);
        }
        let _ = writeln!(
            o,
            "  {:<16} {}/{}  state: {}",
            d.deployment, d.provider, d.provider_model, d.state
        );
        if let Some(h) = &d.health {
            let _ = writeln!(
                o,
                "    in flight {}, queued {}, latency {}, consecutive failures {}",
                h.in_flight,
                h.queued,
                h.ewma_latency_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "-".into()),
                h.consecutive_failures
            );
        }
        let l = &d.limits;
        let _ = writeln!(
            o,
            "    limits: max_concurrent {}, max_queued {}, timeout {}, cooldown {} after {} failures, weight {}, context window {}",
            l.max_concurrent,
            l.max_queued,
            humantime::format_duration(l.timeout),
            humantime::format_duration(l.cooldown),
            l.cooldown_after_failures,
            l.weight,
            l.context_window
                .map(|w| format!("{w} tokens"))
                .unwrap_or_else(|| "unlimited".into())
        );
        let u = &d.usage;
        let _ = writeln!(
            o,
            "    usage: {} requests, {} prompt + {} completion tokens, cost {} USD",
            u.requests, u.prompt_tokens, u.completion_tokens, u.cost_usd
        );
    }
    o
}

/// Body of `POST /api/ask`: one prompt to one logical model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskBody {
    pub model: String,
    pub prompt: String,
    #[serde(default)]
    pub system: String,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub cacheable: bool,
}

fn default_max_tokens() -> u32 {
    512
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl AskBody {
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            prompt: prompt.into(),
            system: String::new(),
            max_tokens: default_max_tokens(),
            temperature: 0.0,
            timeout: default_timeout(),
            cacheable: false,
        }
    }

    /// A free-form request; the timeout is capped at 10 minutes.
    pub fn into_request(self) -> ModelRequest {
        let mut req = ModelRequest::new(self.model, Purpose::Freeform, self.prompt);
        req.system = self.system;
        req.max_tokens = self.max_tokens;
        req.temperature = self.temperature;
        req.timeout = self.timeout.min(Duration::from_secs(600));
        req.cacheable = self.cacheable;
        req
    }
}

/// One line of a streamed answer: `POST /api/ask/stream` sends each as a JSON line
/// (NDJSON), `orrery ask --stream` prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamLine {
    /// The next piece of the answer's text.
    Delta { text: String },
    /// The whole answer and who served it; the last line.
    Done { response: ModelResponse },
    /// Why there is no answer; the last line. Deltas before it belonged to an answer
    /// that broke off (the router never continues one on another deployment).
    Error { error: String },
}

/// Grace past a request's own timeout before the caller gives up on the router itself
/// (the router answers a deadline error first in every normal case).
const ROUTER_GRACE: Duration = Duration::from_millis(250);

/// Streams `request` through `router` into `lines`: a [`StreamLine::Delta`] per piece of
/// text as it arrives, then [`StreamLine::Done`] or [`StreamLine::Error`]. Returns within
/// the request's timeout plus a grace, however slowly `lines` is read.
pub async fn ask_streaming(
    router: &Slot<ModelRouter>,
    request: ModelRequest,
    lines: mpsc::Sender<StreamLine>,
) {
    let (model, timeout) = (request.model.clone(), request.timeout);
    let deadline = tokio::time::Instant::now() + timeout + ROUTER_GRACE;
    let (deltas, mut rx) = mpsc::channel::<String>(64);
    let answer = tokio::time::timeout_at(deadline, router.send(AskStream { request, deltas }));
    tokio::pin!(answer);
    let emit = |line: StreamLine| {
        let lines = lines.clone();
        async move {
            // A reader that left or stalled past the deadline gets nothing more.
            let _ = tokio::time::timeout_at(deadline, lines.send(line)).await;
        }
    };
    let answer = loop {
        tokio::select! {
            // Deltas first: each one sent before the answer is passed on before it.
            biased;
            Some(text) = rx.recv() => emit(StreamLine::Delta { text }).await,
            answer = &mut answer => break answer,
        }
    };
    while let Ok(text) = rx.try_recv() {
        emit(StreamLine::Delta { text }).await;
    }
    let last = match answer {
        Ok(Ok(Ok(response))) => StreamLine::Done { response },
        Ok(Ok(Err(e))) => StreamLine::Error {
            error: e.to_string(),
        },
        Ok(Err(slot)) => StreamLine::Error {
            error: ModelError::RouterUnavailable {
                reason: slot.to_string(),
            }
            .to_string(),
        },
        Err(_) => StreamLine::Error {
            error: ModelError::DeadlineExceeded { model, timeout }.to_string(),
        },
    };
    emit(last).await;
}
