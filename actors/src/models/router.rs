//! The model router: the one address agents send [`Ask`] to. It picks a deployment of the
//! requested logical model, and fails over to the next on a retryable failure, all within
//! the request's deadline.
//!
//! Owns: the map of logical model names to their deployments, the choice of deployment
//! per request (today: `ordered_fallback`), failover, and the caller's deadline (counted
//! from when the router receives the request). Never: calls a provider itself, holds a
//! pool's address past a restart (it asks a [`PoolHandle`] every time), or parses answers.
//!
//! Failover rules, `ordered_fallback`: deployments are tried in configured order, skipping
//! any that is cooling down (read from the shared [`HealthTable`], no message round trip)
//! or whose pool is not running. A retryable failure (timeout, unavailable, rate limited,
//! malformed answer, or the pool's actor dying with the request in its mailbox) moves on to
//! the next deployment. `Auth` and `BadRequest` are returned at once: another deployment
//! of the same request would fail the same way, or lock a key. The caller gets exactly one
//! answer or one error: [`ModelError::NoDeployment`] (unknown name, or nothing healthy to
//! try), [`ModelError::DeadlineExceeded`], or [`ModelError::AllFailed`] listing every
//! attempt.
//!
//! Later strategies (least busy, EWMA latency, weighted shuffle), single-flight and the
//! response cache plug in at [`LogicalRoute::candidates`] and the top of the `Ask` handler.

mod config;

pub use config::{
    build_provider, build_provider_with_env, pool_for, BuildError, DeploymentConfig, LogicalModel,
    ModelsConfig, ProviderKind, Strategy,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, MailboxError, ResponseFuture};
use tokio::time::Instant;

use super::pool::{deadline_after, Complete, HealthTable, ModelPool};
use super::types::{Ask, ModelError, ModelRequest, ModelResponse};
use crate::resilience::ErrorClass;

/// How the router reaches a pool: asked on every attempt, so a pool restarted by its
/// supervisor (new address) is picked up without telling the router.
pub trait PoolHandle: Send + Sync {
    /// The pool's current address, or `None` while it is down.
    fn addr(&self) -> Option<Addr<ModelPool>>;
}

/// The supervisor's slot shape: a shared, replaceable address.
impl PoolHandle for Arc<parking_lot::RwLock<Option<Addr<ModelPool>>>> {
    fn addr(&self) -> Option<Addr<ModelPool>> {
        self.read().clone()
    }
}

/// The engine's supervisor slot: always the pool's current incarnation.
impl PoolHandle for crate::supervisor::Slot<ModelPool> {
    fn addr(&self) -> Option<Addr<ModelPool>> {
        crate::supervisor::Slot::addr(self)
    }
}

/// A fixed address, for pools nobody restarts (tests, embedding without supervision).
impl PoolHandle for Addr<ModelPool> {
    fn addr(&self) -> Option<Addr<ModelPool>> {
        Some(self.clone())
    }
}

/// One deployment as the router sees it.
#[derive(Clone)]
pub struct DeploymentRoute {
    pub deployment: String,
    pub pool: Arc<dyn PoolHandle>,
}

impl DeploymentRoute {
    pub fn new(deployment: impl Into<String>, pool: Arc<dyn PoolHandle>) -> Self {
        Self {
            deployment: deployment.into(),
            pool,
        }
    }
}

/// The deployments of one logical model and how to choose among them.
#[derive(Clone)]
pub struct LogicalRoute {
    pub strategy: Strategy,
    pub deployments: Vec<DeploymentRoute>,
}

impl LogicalRoute {
    /// Deployments in the order they should be tried.
    pub fn candidates(&self) -> impl Iterator<Item = &DeploymentRoute> {
        match self.strategy {
            Strategy::OrderedFallback => self.deployments.iter(),
        }
    }
}

/// The router actor.
pub struct ModelRouter {
    routes: Arc<BTreeMap<String, LogicalRoute>>,
    health: HealthTable,
}

impl ModelRouter {
    /// A router with no models; add them with [`ModelRouter::with_model`].
    pub fn new(health: HealthTable) -> Self {
        Self {
            routes: Arc::new(BTreeMap::new()),
            health,
        }
    }

    /// Adds (or replaces) a logical model.
    pub fn with_model(
        mut self,
        name: impl Into<String>,
        strategy: Strategy,
        deployments: Vec<DeploymentRoute>,
    ) -> Self {
        Arc::make_mut(&mut self.routes).insert(
            name.into(),
            LogicalRoute {
                strategy,
                deployments,
            },
        );
        self
    }

    /// A router over every logical model of `config`; `handle` gives the pool handle of
    /// each deployment (the supervisor's slot, or a fixed address).
    pub fn from_config(
        config: &ModelsConfig,
        health: HealthTable,
        mut handle: impl FnMut(&DeploymentConfig) -> Arc<dyn PoolHandle>,
    ) -> Self {
        let mut router = Self::new(health);
        for (name, model) in &config.models {
            let deployments = model
                .deployments
                .iter()
                .map(|d| DeploymentRoute::new(d.id.clone(), handle(d)))
                .collect();
            router = router.with_model(name.clone(), model.strategy, deployments);
        }
        router
    }

    /// Starts one unsupervised pool per deployment and a router over them, on the current
    /// arbiter. For embedding and tests; the engine starts pools under its supervisor.
    pub fn start_unsupervised(
        config: &ModelsConfig,
        health: HealthTable,
    ) -> Result<Addr<ModelRouter>, BuildError> {
        let mut pools: BTreeMap<String, Addr<ModelPool>> = BTreeMap::new();
        for model in config.models.values() {
            for d in &model.deployments {
                pools.insert(d.id.clone(), pool_for(d, &health)?.start());
            }
        }
        let router = Self::from_config(config, health, |d| match pools.get(&d.id) {
            Some(addr) => Arc::new(addr.clone()),
            // Every deployment was started just above; an empty slot routes nowhere.
            None => Arc::new(Arc::new(parking_lot::RwLock::new(None::<Addr<ModelPool>>))),
        });
        Ok(router.start())
    }
}

impl Actor for ModelRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Agents send from many actors at once; each request is a future, so the mailbox
        // only absorbs bursts.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Ask> for ModelRouter {
    type Result = ResponseFuture<Result<ModelResponse, ModelError>>;

    fn handle(&mut self, Ask(request): Ask, _ctx: &mut Self::Context) -> Self::Result {
        // Deadline from receipt: time spent in our mailbox is not the caller's problem
        // to budget for, but time spent failing over is.
        let deadline = deadline_after(Instant::now(), request.timeout);
        let routes = self.routes.clone();
        let health = self.health.clone();
        Box::pin(async move { route(&routes, &health, request, deadline).await })
    }
}

/// Whether another deployment might succeed where this one failed.
fn fail_over_on(e: &ModelError) -> bool {
    match e {
        ModelError::Provider { class, .. } => {
            !matches!(class, ErrorClass::Auth | ErrorClass::BadRequest)
        }
        ModelError::Malformed { .. } => true,
        ModelError::DeadlineExceeded { .. } => false,
        ModelError::NoDeployment { .. }
        | ModelError::AllFailed { .. }
        | ModelError::ShuttingDown => true,
    }
}

async fn route(
    routes: &BTreeMap<String, LogicalRoute>,
    health: &HealthTable,
    request: ModelRequest,
    deadline: Instant,
) -> Result<ModelResponse, ModelError> {
    let model = request.model.clone();
    let timeout = request.timeout;
    let deadline_exceeded = || ModelError::DeadlineExceeded {
        model: model.clone(),
        timeout,
    };
    let Some(logical) = routes.get(&model) else {
        let known: Vec<&str> = routes.keys().map(String::as_str).collect();
        return Err(ModelError::NoDeployment {
            model: model.clone(),
            reason: format!(
                "no logical model of that name is configured (configured: {}); add [models.{model}] or fix the agent's model name",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        });
    };
    let candidates: Vec<&DeploymentRoute> = logical.candidates().collect();
    if candidates.is_empty() {
        return Err(ModelError::NoDeployment {
            model: model.clone(),
            reason: format!("[models.{model}] has no deployments"),
        });
    }
    let request = Arc::new(request);
    let mut attempts: Vec<String> = Vec::new();
    let mut tried = 0usize;
    for (i, d) in candidates.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            return Err(deadline_exceeded());
        }
        if let Some(until) = health
            .get(&d.deployment)
            .and_then(|h| h.cooling_down_until())
            .filter(|until| now < *until)
        {
            attempts.push(format!(
                "{}: skipped, cooling down for another {:?}",
                d.deployment,
                until - now
            ));
            continue;
        }
        let Some(pool) = d.pool.addr() else {
            attempts.push(format!(
                "{}: skipped, its pool is not running",
                d.deployment
            ));
            continue;
        };
        tried += 1;
        let sent = tokio::time::timeout_at(
            deadline,
            pool.send(Complete {
                request: request.clone(),
                deadline,
            }),
        )
        .await;
        let failure = match sent {
            Err(_elapsed) => return Err(deadline_exceeded()),
            Ok(Ok(Ok(response))) => return Ok(response),
            Ok(Ok(Err(e))) => {
                if !fail_over_on(&e) {
                    return Err(e);
                }
                if Instant::now() >= deadline {
                    return Err(deadline_exceeded());
                }
                e.to_string()
            }
            Ok(Err(MailboxError::Closed)) => format!(
                "{}: its pool stopped before answering (the request was re-dispatched)",
                d.deployment
            ),
            Ok(Err(MailboxError::Timeout)) => {
                format!("{}: its pool's mailbox timed out", d.deployment)
            }
        };
        tracing::debug!(model = %model, deployment = %d.deployment, "model request failed over: {failure}");
        attempts.push(failure);
        if i + 1 < candidates.len() {
            metrics::counter!("orrery_model_fallbacks_total", "model" => model.clone(), "from" => d.deployment.clone())
                .increment(1);
        }
    }
    if tried == 0 {
        return Err(ModelError::NoDeployment {
            model: model.clone(),
            reason: format!("no healthy deployment: {}", attempts.join("; ")),
        });
    }
    Err(ModelError::AllFailed { model, attempts })
}

/// Describes the router metrics (HELP lines). Call once after installing a recorder;
/// [`super::pool::describe`] covers the pool metrics.
pub fn describe() {
    metrics::describe_counter!(
        "orrery_model_fallbacks_total",
        "Model requests moved from a failed deployment to the next, by logical model and failed deployment."
    );
}

#[cfg(test)]
mod tests;
