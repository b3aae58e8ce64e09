//! The model router: the one address agents send [`Ask`] to. It picks a deployment of the
//! requested logical model, and fails over to the next on a retryable failure, all within
//! the request's deadline. It also answers [`Swarm`] (one request to several models at
//! once, under one enforced deadline) and [`Inspect`] (health and usage per deployment).
//!
//! Owns: the map of logical model names to their deployments, the choice of deployment
//! per request ([`RoutingStrategy`], see [`strategy`]), the context-window filter, failover, the
//! caller's deadline (counted from when the router receives the request), single-flight
//! ([`flight`]), the response cache ([`cache`]) and usage accounting ([`accounting`]).
//! Never: calls a provider other than through its pool, holds a pool's address past a
//! restart (it asks a [`PoolHandle`] every time), or parses answers.
//!
//! The path of one `Ask`: (1) if the request is `cacheable` and its model has a
//! `cache_ttl`, the cache (memory, then sled) may answer with `cached: true`; (2) otherwise
//! the request joins an identical one already in flight (same key: model, purpose, system,
//! prompt, context, max_tokens, temperature), or (3) starts the upstream call: deployments
//! in strategy order, those whose `context_window` is too small for the estimated request
//! dropped first; the answer is accounted (tokens, cost) and, if cacheable, cached.
//!
//! Reaching a pool: a pool running on the router's own arbiter (the engine's layout) lends
//! its call path through its health entry ([`super::pool::Lane`]), and the router runs the
//! call in the request's own task: no mailbox, reply channel or second task per request,
//! with the pool's admission, deadline, health and metrics unchanged. A pool on another
//! arbiter, or one that is not running, is sent [`Complete`] through its [`PoolHandle`]
//! under the request's deadline. Nothing per request is copied: the request and its route
//! are shared, the usage record is written behind the answer (see [`accounting`]).
//!
//! Failover rules: deployments are tried in strategy order, skipping any that is cooling
//! down (read from the shared [`HealthTable`], no message round trip) or whose pool is not
//! running. A retryable failure (timeout, unavailable, rate limited, malformed answer, or
//! the pool's actor dying with the request in its mailbox) moves on to the next
//! deployment at once — no retries in place while a sibling that could still be tried
//! remains, and the failing deployment is cooled down (see the `failover` module); only
//! the last candidate retries in place. `Auth` and `BadRequest` are returned at once:
//! another deployment of the
//! same request would fail the same way, or lock a key. A request the provider found
//! longer than its model's context window ([`ModelError::ContextTooLong`]) moves on only
//! to siblings with a larger `context_window` (the `context` module). The caller gets exactly one answer
//! or one error: [`ModelError::NoDeployment`] (unknown name, nothing healthy to try, or a
//! prompt too large for every deployment), [`ModelError::DeadlineExceeded`], or
//! [`ModelError::AllFailed`] listing every attempt. An answer lists every deployment
//! tried or skipped ([`ModelResponse::attempts`]).
//!
//! [`AskStream`] routes the same way and streams the answer's text as it arrives; see
//! the `stream` module for its failover rule (never after text reached the caller).
//!
//! Swarm members are names: each is looked up as a logical model first (its strategy,
//! failover, cache and single-flight apply), then as a deployment id (that deployment
//! only). Every member runs at once; the reply comes when all have answered or the
//! swarm's deadline passed, whichever is first. A member still running then is
//! [`ModelError::Abandoned`]: its future is dropped, never awaited, and its pool cuts the
//! provider call at the same deadline.

mod accounting;
mod cache;
mod config;
mod context;
mod failover;
mod flight;
pub mod strategy;
mod stream;

pub use crate::models::providers::ProviderKind;
pub use accounting::{
    usage_records, Accounting, DeploymentUsage, Prices, PERSIST_EVERY, USAGE_PREFIX,
};
pub use cache::{CacheLevel, CacheSweep, CachedAnswer, RequestKey, ResponseCache};
pub use config::{
    build_provider, build_provider_shared, build_provider_with, build_provider_with_env, pool_for,
    pool_shared, BuildError, DeploymentConfig, LogicalModel, ModelCacheConfig, ModelsConfig,
    ProviderChoice, RoutingStrategy,
};
pub use flight::{Flights, Joined, Lead, Seat};
pub use stream::AskStream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::Request;
use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::pool::{deadline_after, Complete, HealthTable, ModelPool};
use super::types::{Ask, ModelError, ModelRequest, ModelResponse};
use crate::clock::{system_clock, SharedClock};
use crate::store::Store;

/// How the router reaches a pool: asked on every attempt, so a pool restarted by its
/// supervisor (new address) is picked up without telling the router.
pub trait PoolHandle: Send + Sync {
    /// The pool's current address, or `None` while it is down.
    fn addr(&self) -> Option<Addr<ModelPool>>;

    /// Whether a pool runs now (asked of the siblings left while failing over).
    fn is_running(&self) -> bool {
        self.addr().is_some_and(|a| a.connected())
    }

    /// Sends one request to the pool's current incarnation; `None` while it is down.
    /// Implementations that can lend their address avoid cloning it (an actix address
    /// clone allocates), which matters once per request.
    fn complete(&self, msg: Complete) -> Option<Request<ModelPool, Complete>> {
        self.addr().map(|pool| pool.send(msg))
    }
}

/// The supervisor's slot shape: a shared, replaceable address.
impl PoolHandle for Arc<parking_lot::RwLock<Option<Addr<ModelPool>>>> {
    fn addr(&self) -> Option<Addr<ModelPool>> {
        self.read().clone()
    }

    fn complete(&self, msg: Complete) -> Option<Request<ModelPool, Complete>> {
        self.read().as_ref().map(|pool| pool.send(msg))
    }
}

/// The engine's supervisor slot: always the pool's current incarnation.
impl PoolHandle for crate::supervisor::Slot<ModelPool> {
    fn addr(&self) -> Option<Addr<ModelPool>> {
        crate::supervisor::Slot::addr(self)
    }

    fn complete(&self, msg: Complete) -> Option<Request<ModelPool, Complete>> {
        self.with_addr(|pool| pool.send(msg))
    }
}

/// A fixed address, for pools nobody restarts (tests, embedding without supervision).
impl PoolHandle for Addr<ModelPool> {
    fn addr(&self) -> Option<Addr<ModelPool>> {
        Some(self.clone())
    }

    fn complete(&self, msg: Complete) -> Option<Request<ModelPool, Complete>> {
        Some(self.send(msg))
    }
}

/// One deployment as the router sees it.
#[derive(Clone)]
pub struct DeploymentRoute {
    pub deployment: String,
    pub pool: Arc<dyn PoolHandle>,
    /// Relative share of first picks under `weighted_shuffle`.
    pub weight: u32,
    /// Largest request in tokens; `None`: no limit.
    pub context_window: Option<u32>,
    pub prices: Prices,
}

impl DeploymentRoute {
    pub fn new(deployment: impl Into<String>, pool: Arc<dyn PoolHandle>) -> Self {
        Self {
            deployment: deployment.into(),
            pool,
            weight: 1,
            context_window: None,
            prices: Prices::default(),
        }
    }
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
    pub fn with_context_window(mut self, tokens: u32) -> Self {
        self.context_window = Some(tokens);
        self
    }
    pub fn with_prices(mut self, prices: Prices) -> Self {
        self.prices = prices;
        self
    }
}

/// The deployments of one logical model and how to choose among them.
#[derive(Clone)]
pub struct LogicalRoute {
    pub strategy: RoutingStrategy,
    pub deployments: Vec<DeploymentRoute>,
    /// How long answers to `cacheable` requests are cached; `None`: never.
    pub cache_ttl: Option<Duration>,
}

impl LogicalRoute {
    pub fn new(strategy: RoutingStrategy, deployments: Vec<DeploymentRoute>) -> Self {
        Self {
            strategy,
            deployments,
            cache_ttl: None,
        }
    }
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }
}

/// Everything a request needs, shared by the futures the handlers return.
#[derive(Clone)]
struct Core {
    /// Shared with the requests in flight: a request holds its route, never a copy.
    routes: BTreeMap<String, Arc<LogicalRoute>>,
    health: HealthTable,
    store: Store,
    clock: SharedClock,
    cache_max_entries: u64,
    cache: ResponseCache,
    flights: Flights,
    accounting: Accounting,
    rng: Arc<parking_lot::Mutex<ChaCha8Rng>>,
}

/// The router actor.
pub struct ModelRouter {
    core: Arc<Core>,
    /// How often, and how much at most, the L2 cache is swept; `None`: never.
    sweep: Option<(Duration, usize)>,
}

impl ModelRouter {
    /// A router with no models; add them with [`ModelRouter::with_model`]. `store` holds
    /// the L2 response cache and the usage records.
    pub fn new(health: HealthTable, store: Store) -> Self {
        let clock = system_clock();
        let cache_max_entries = ModelCacheConfig::default().max_entries;
        Self {
            core: Arc::new(Core {
                routes: BTreeMap::new(),
                health,
                cache: ResponseCache::new(cache_max_entries, &store, clock.clone()),
                accounting: Accounting::open(&store),
                store,
                clock,
                cache_max_entries,
                flights: Flights::new(),
                rng: Arc::new(parking_lot::Mutex::new(ChaCha8Rng::from_entropy())),
            }),
            sweep: None,
        }
    }

    /// Sweeps expired answers out of the sled cache at start and every `every`,
    /// examining at most `batch` entries each time (`[model_cache] sweep_interval` and
    /// `sweep_batch`); a zero `every` never sweeps.
    pub fn with_cache_sweep(mut self, every: Duration, batch: usize) -> Self {
        self.sweep = (!every.is_zero()).then_some((every, batch.max(1)));
        self
    }

    fn core_mut(&mut self) -> &mut Core {
        Arc::make_mut(&mut self.core)
    }

    /// Bounds the in-memory cache (`[model_cache] max_entries`); empties it.
    pub fn with_cache_capacity(mut self, max_entries: u64) -> Self {
        let core = self.core_mut();
        core.cache_max_entries = max_entries;
        core.cache = ResponseCache::new(max_entries, &core.store, core.clock.clone());
        self
    }

    /// The wall clock of cache expiry; empties the in-memory cache.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        let core = self.core_mut();
        core.clock = clock;
        core.cache = ResponseCache::new(core.cache_max_entries, &core.store, core.clock.clone());
        self
    }

    /// Seeds `weighted_shuffle`'s random order, for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.core_mut().rng = Arc::new(parking_lot::Mutex::new(ChaCha8Rng::seed_from_u64(seed)));
        self
    }

    /// Adds (or replaces) a logical model.
    pub fn with_model(
        self,
        name: impl Into<String>,
        strategy: RoutingStrategy,
        deployments: Vec<DeploymentRoute>,
    ) -> Self {
        self.with_route(name, LogicalRoute::new(strategy, deployments))
    }

    /// Adds (or replaces) a logical model, with every routing option.
    pub fn with_route(mut self, name: impl Into<String>, route: LogicalRoute) -> Self {
        self.core_mut().routes.insert(name.into(), Arc::new(route));
        self
    }

    /// A router over every logical model of `config`; `handle` gives the pool handle of
    /// each deployment (the supervisor's slot, or a fixed address).
    pub fn from_config(
        config: &ModelsConfig,
        cache: &ModelCacheConfig,
        health: HealthTable,
        store: Store,
        mut handle: impl FnMut(&DeploymentConfig) -> Arc<dyn PoolHandle>,
    ) -> Self {
        let mut router = Self::new(health, store)
            .with_cache_capacity(cache.max_entries)
            .with_cache_sweep(cache.sweep_interval, cache.sweep_batch);
        for (name, model) in &config.models {
            let deployments = model
                .deployments
                .iter()
                .map(|d| {
                    let mut route = DeploymentRoute::new(d.id.clone(), handle(d))
                        .with_weight(d.weight)
                        .with_prices(Prices {
                            prompt_per_mtok: d.price_prompt_per_mtok,
                            completion_per_mtok: d.price_completion_per_mtok,
                        });
                    route.context_window = d.context_window;
                    route
                })
                .collect();
            let mut route = LogicalRoute::new(model.strategy, deployments);
            route.cache_ttl = model.cache_ttl;
            router = router.with_route(name.clone(), route);
        }
        router
    }

    /// Starts one unsupervised pool per deployment and a router over them, on the current
    /// arbiter. For embedding and tests; the engine starts pools under its supervisor.
    pub fn start_unsupervised(
        config: &ModelsConfig,
        health: HealthTable,
        store: Store,
    ) -> Result<Addr<ModelRouter>, BuildError> {
        let mut pools: BTreeMap<String, Addr<ModelPool>> = BTreeMap::new();
        for model in config.models.values() {
            for d in &model.deployments {
                pools.insert(d.id.clone(), pool_for(d, &health, Some(&store))?.start());
            }
        }
        let router =
            Self::from_config(
                config,
                &ModelCacheConfig::default(),
                health,
                store,
                |d| match pools.get(&d.id) {
                    Some(addr) => Arc::new(addr.clone()),
                    // Every deployment was started just above; an empty slot routes nowhere.
                    None => Arc::new(Arc::new(parking_lot::RwLock::new(None::<Addr<ModelPool>>))),
                },
            );
        Ok(router.start())
    }

    /// Usage totals of one deployment as the router counts them.
    pub fn usage(&self, deployment: &str) -> DeploymentUsage {
        self.core.accounting.get(deployment)
    }
}

impl Actor for ModelRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Agents send from many actors at once; each request is a future, so the mailbox
        // only absorbs bursts.
        ctx.set_mailbox_capacity(1024);
        if let Some((every, batch)) = self.sweep {
            // Now (entries that expired while the engine was down), then every interval.
            // Sled work runs off the actor's thread so requests never wait on it.
            let sweep = move |cache: ResponseCache| {
                tokio::task::spawn_blocking(move || cache.sweep_l2(batch));
            };
            sweep(self.core.cache.clone());
            actix::AsyncContext::run_interval(ctx, every, move |router, _| {
                sweep(router.core.cache.clone())
            });
        }
        // Usage is written behind the hot path; this writes what the answers left.
        ctx.run_interval(accounting::PERSIST_EVERY, |router, _| {
            router.core.accounting.persist()
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.core.accounting.persist();
    }
}

impl Handler<Ask> for ModelRouter {
    type Result = ResponseFuture<Result<ModelResponse, ModelError>>;

    fn handle(&mut self, Ask(request): Ask, _ctx: &mut Self::Context) -> Self::Result {
        // Deadline from receipt: time spent in our mailbox is not the caller's problem
        // to budget for, but time spent failing over is.
        let deadline = deadline_after(Instant::now(), request.timeout);
        let core = self.core.clone();
        // Looked up and shared here, before the future: what the future captures is kept
        // for its whole life, and it is allocated once per request.
        let route = core.routes.get(&request.model).cloned();
        Box::pin(async move {
            let Some(route) = route else {
                return Err(core.unknown_model(&request.model));
            };
            core.serve(route, request, deadline).await
        })
    }
}

/// Ask several models (or deployments) the same thing at once; one reply per member, in
/// the order given, within `deadline` (counted from when the router receives it; the
/// request's own `timeout` is ignored).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<SwarmReply>")]
pub struct Swarm {
    /// Logical model names or deployment ids (a name is looked up as a logical model
    /// first); see the module docs.
    pub models: Vec<String>,
    pub request: ModelRequest,
    pub deadline: Duration,
}

/// One member's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmReply {
    pub member: String,
    /// The answer (text, latency, usage, who served it), or why there is none,
    /// [`ModelError::Abandoned`] when the deadline passed first.
    pub result: Result<ModelResponse, ModelError>,
}

impl Handler<Swarm> for ModelRouter {
    type Result = ResponseFuture<Vec<SwarmReply>>;

    fn handle(&mut self, msg: Swarm, _ctx: &mut Self::Context) -> Self::Result {
        let deadline = deadline_after(Instant::now(), msg.deadline);
        let core = self.core.clone();
        Box::pin(async move {
            let members = msg.models.into_iter().map(|member| {
                let core = core.clone();
                let mut request = msg.request.clone();
                request.model = member.clone();
                request.timeout = msg.deadline;
                let after = msg.deadline;
                async move {
                    let abandoned = || ModelError::Abandoned {
                        model: member.clone(),
                        after,
                    };
                    let result = match core.member_route(&member) {
                        None => Err(core.unknown_model(&member)),
                        Some(route) => {
                            match tokio::time::timeout_at(
                                deadline,
                                core.serve(route, request, deadline),
                            )
                            .await
                            {
                                Err(_) | Ok(Err(ModelError::DeadlineExceeded { .. })) => {
                                    Err(abandoned())
                                }
                                Ok(result) => result,
                            }
                        }
                    };
                    SwarmReply { member, result }
                }
            });
            futures::future::join_all(members).await
        })
    }
}

/// Live health of one deployment, as the router reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub in_flight: usize,
    pub queued: usize,
    pub ewma_latency_ms: Option<u64>,
    pub consecutive_failures: u32,
    /// Time left in the deployment's cooldown, if it is cooling down.
    pub cooldown_remaining_ms: Option<u64>,
}

/// One deployment of one logical model, with its live health and usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentReport {
    pub model: String,
    pub strategy: String,
    pub deployment: String,
    pub pool_running: bool,
    pub health: Option<HealthReport>,
    pub usage: DeploymentUsage,
}

/// Health and usage of every deployment, in model then configured order.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<DeploymentReport>")]
pub struct Inspect;

impl Handler<Inspect> for ModelRouter {
    type Result = Vec<DeploymentReport>;

    fn handle(&mut self, _: Inspect, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let core = &self.core;
        // What is reported is also what `orrery status` reads from sled.
        core.accounting.persist();
        core.routes
            .iter()
            .flat_map(|(name, route)| {
                route.deployments.iter().map(move |d| DeploymentReport {
                    model: name.clone(),
                    strategy: route.strategy.name().to_string(),
                    deployment: d.deployment.clone(),
                    pool_running: d.pool.addr().is_some_and(|a| a.connected()),
                    health: core.health.get(&d.deployment).map(|h| HealthReport {
                        in_flight: h.in_flight(),
                        queued: h.queued(),
                        ewma_latency_ms: h.ewma_latency().map(|l| l.as_millis() as u64),
                        consecutive_failures: h.consecutive_failures(),
                        cooldown_remaining_ms: h
                            .cooling_down_until()
                            .filter(|until| *until > now)
                            .map(|until| (until - now).as_millis() as u64),
                    }),
                    usage: core.accounting.get(&d.deployment),
                })
            })
            .collect()
    }
}

impl Core {
    fn unknown_model(&self, model: &str) -> ModelError {
        let known: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        ModelError::NoDeployment {
            model: model.to_string(),
            reason: format!(
                "no logical model of that name is configured (configured: {}); add [models.{model}] or fix the agent's model name",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        }
    }

    /// A swarm member's route: the logical model of that name, else the deployment of that
    /// id alone.
    fn member_route(&self, member: &str) -> Option<Arc<LogicalRoute>> {
        if let Some(route) = self.routes.get(member) {
            return Some(route.clone());
        }
        self.routes.values().find_map(|route| {
            route
                .deployments
                .iter()
                .find(|d| d.deployment == member)
                .map(|d| {
                    Arc::new(LogicalRoute::new(
                        RoutingStrategy::OrderedFallback,
                        vec![d.clone()],
                    ))
                })
        })
    }

    /// Cache, then single-flight, then upstream; see the module docs. `request.model`
    /// names the route (a logical model, or a swarm member).
    async fn serve(
        self: &Arc<Self>,
        route: Arc<LogicalRoute>,
        request: ModelRequest,
        deadline: Instant,
    ) -> Result<ModelResponse, ModelError> {
        let name = request.model.as_str();
        let key = RequestKey::of(name, &request);
        let cache_ttl = route.cache_ttl.filter(|_| request.cacheable);
        if cache_ttl.is_some() {
            if let Some((response, _level)) = self.cache.get(name, &key) {
                return Ok(response);
            }
        }
        let timeout = request.timeout;
        let deadline_exceeded = || ModelError::DeadlineExceeded {
            model: name.to_string(),
            timeout,
        };
        loop {
            let rx = match self.flights.join(name, &key) {
                Seat::Lead(lead) => {
                    // Every wait in the call is bounded by this caller's deadline already.
                    // Boxed: inline, the upstream call would make the `Ask` future too big
                    // for the allocator's fast path.
                    let result =
                        Box::pin(self.upstream(name, &route, &request, deadline, None)).await;
                    if let (Ok(response), Some(ttl)) = (&result, cache_ttl) {
                        self.cache.put(&key, response, ttl);
                    }
                    lead.finish(&result);
                    return result;
                }
                Seat::Follow(rx) => rx,
            };
            // A caller that joined a call started by another waits no longer than its own
            // deadline.
            let answer = match tokio::time::timeout_at(deadline, rx).await {
                Err(_elapsed) => return Err(deadline_exceeded()),
                Ok(Ok(answer)) => Some(answer),
                // The leader went away unfinished.
                Ok(Err(_closed)) => None,
            };
            match answer {
                // The call it joined ran out of its starter's (shorter) deadline, or its
                // starter went away: this caller still has time, so it starts or joins a
                // fresh call.
                None | Some(Err(ModelError::DeadlineExceeded { .. }))
                    if Instant::now() < deadline =>
                {
                    continue
                }
                None => return Err(deadline_exceeded()),
                Some(answer) => return answer,
            }
        }
    }
}

/// Describes the router metrics (HELP lines). Call once after installing a recorder;
/// [`super::pool::describe`] covers the pool metrics.
pub fn describe() {
    metrics::describe_counter!(
        "orrery_model_fallbacks_total",
        "Model requests moved from a failed deployment to the next, by logical model and failed deployment."
    );
    metrics::describe_counter!(
        "orrery_model_coalesced_total",
        "Model requests that shared an identical request's upstream call instead of making their own (single-flight), by logical model."
    );
    metrics::describe_counter!(
        "orrery_model_cache_swept_total",
        "Expired or unreadable model response cache entries removed from sled by the periodic sweep."
    );
    metrics::describe_counter!(
        "orrery_model_cache_requests_total",
        "Response cache lookups of cacheable model requests, by logical model, level (l1 memory, l2 sled) and result (hit, miss)."
    );
    stream::describe();
    context::describe();
    metrics::describe_gauge!(
        "orrery_model_cost_usd",
        "Cumulative cost in USD of the answers served by each deployment, from its configured prices; persisted across restarts (a gauge because the cost is fractional)."
    );
}

#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod tests;
