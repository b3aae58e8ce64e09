//! One pool per model deployment (provider + model + key): the [`Provider`] trait every
//! wire format implements, the [`ModelPool`] actor that bounds and times its calls, and the
//! shared [`HealthTable`] the router reads without a message round trip.
//!
//! Owns: admission (at most `max_concurrent` calls in flight, at most `max_queued` waiting,
//! beyond that an immediate overload error), the per-request deadline, per-deployment
//! metrics, and the deployment's health (in flight, EWMA latency, consecutive failures,
//! cooldown). Never: retries or fails over (the router does), parses answers (see
//! `decision`), or knows a wire format (see `providers` and `local`).
//!
//! Requests run concurrently: the handler returns a future that actix runs on the pool's
//! arbiter, so one slow call never blocks the mailbox. The health entry lives in the shared
//! table, not in the actor, so a restarted pool keeps its deployment's cooldown and latency.
//!
//! A streamed call ([`Complete`] with `deltas`) takes the same path through the
//! provider's streaming method and forwards text deltas to the caller's channel.
//!
//! What a failure leads to is the router's call, carried by every request as
//! [`OnFailure`]: while a sibling remains the provider does not retry in place and a
//! target failure cools the deployment down at once; the last candidate retries in place
//! and cools down after `cooldown_after_failures` in a row.
//!
//! Same-arbiter fast path: a running pool also publishes its call path in its health entry
//! as a [`Lane`], tagged with its arbiter's thread. A caller on that same thread (the
//! router, when it shares the pool's arbiter, as in the engine) runs the call in its own
//! task through [`DeploymentHealth::local_lane`] instead of a message: the work still runs
//! on the pool's arbiter, under the same admission, deadline, health and metrics, and dies
//! with that arbiter, but without the mailbox, the reply channel and a task per request.
//! The lane is withdrawn when the pool stops; callers on other threads always send
//! [`Complete`].

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, ResponseFuture};
use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::{mpsc, Semaphore, SemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use super::types::{ModelError, ModelRequest, ModelResponse, Usage};
use crate::resilience::ErrorClass;

/// What a provider returns for one call; the pool adds who served it and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    /// As the provider reported it (`stop`, `length`, ...), if it did.
    pub finish_reason: Option<String>,
}

/// One deployment's wire format: turns a request into a completion.
///
/// Implementations classify their failures as [`ModelError::Provider`] with the right
/// [`ErrorClass`] (or [`ModelError::Malformed`]); the pool and the router decide what to do
/// about them. They need not enforce the request deadline: the pool does.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The deployment id this provider serves (`[[models.<name>.deployments]] id`).
    fn name(&self) -> &str;
    /// The provider kind, e.g. `local`, `openai`.
    fn provider(&self) -> &str;
    /// The provider's model name, e.g. `rules-v1`, `gpt-4o-mini`.
    fn model(&self) -> &str;
    async fn complete(&self, req: &ModelRequest) -> Result<Completion, ModelError>;

    /// [`Provider::complete`] when the caller's deadline is known (the pool passes its
    /// own) and what a failure leads to ([`OnFailure`]). Providers that retry inside one
    /// deployment retry only under [`OnFailure::RetryInPlace`], and use the deadline to
    /// leave the router room to fail over; the default ignores both (the pool enforces the
    /// deadline either way).
    async fn complete_by(
        &self,
        req: &ModelRequest,
        deadline: Instant,
        on_failure: OnFailure,
    ) -> Result<Completion, ModelError> {
        let _ = (deadline, on_failure);
        self.complete(req).await
    }

    /// Streams the answer's text as it arrives into `on_delta`, then returns the whole
    /// completion. The default calls [`Provider::complete`] and sends the whole text at
    /// once, so providers without streaming (and test fakes) need nothing. A closed
    /// receiver is not an error: the caller stopped listening, the answer still counts.
    async fn complete_stream(
        &self,
        req: &ModelRequest,
        on_delta: tokio::sync::mpsc::Sender<String>,
    ) -> Result<Completion, ModelError> {
        let completion = self.complete(req).await?;
        let _ = on_delta.send(completion.text.clone()).await;
        Ok(completion)
    }

    /// [`Provider::complete_stream`] when the caller's deadline is known, as
    /// [`Provider::complete_by`] is to [`Provider::complete`]; the default ignores both.
    async fn complete_stream_by(
        &self,
        req: &ModelRequest,
        deadline: Instant,
        on_failure: OnFailure,
        on_delta: tokio::sync::mpsc::Sender<String>,
    ) -> Result<Completion, ModelError> {
        let _ = (deadline, on_failure);
        self.complete_stream(req, on_delta).await
    }

    /// Whether every wait of [`Provider::complete_by`] is bounded by the deadline it is
    /// given (the HTTP providers: connect, first byte, body, retries and budget waits).
    /// The pool then spares the timer it otherwise puts around the call; the router's
    /// own timer at the same deadline still bounds the caller's wait.
    fn bounds_every_wait(&self) -> bool {
        false
    }

    /// How often the pool should run [`Provider::health_check`]; `None`: never.
    fn health_check_interval(&self) -> Option<Duration> {
        None
    }

    /// A cheap check that the deployment can serve (Ollama: the server answers and has
    /// the model). A failure takes the deployment out of rotation until the next check,
    /// before a user request fails on it.
    async fn health_check(&self) -> Result<(), ModelError> {
        Ok(())
    }
}

/// Limits of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Calls to the provider at once.
    pub max_concurrent: usize,
    /// Requests allowed to wait for a free slot; past that, requests are refused at once
    /// so the router can try a sibling instead of piling up here.
    pub max_queued: usize,
    /// Longest a single call may take, queueing included; the caller's own deadline wins
    /// when it is earlier.
    pub timeout: Duration,
    /// Consecutive target-health failures ([`ErrorClass::counts_against_target`]) that put
    /// the deployment into cooldown. A rate limit with a Retry-After cools it down at once
    /// for that long.
    pub cooldown_after_failures: u32,
    /// How long the router leaves a deployment alone after that.
    pub cooldown: Duration,
    /// Whether a target-health failure while the router still has a sibling to move on
    /// to ([`OnFailure::MoveOn`]) cools the deployment down at once, for `cooldown`,
    /// instead of after `cooldown_after_failures` in a row: the request moved on, and
    /// the next ones should not pay for the same failure again.
    pub cooldown_on_failover: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            max_queued: 64,
            timeout: Duration::from_secs(30),
            cooldown_after_failures: 3,
            cooldown: Duration::from_secs(30),
            cooldown_on_failover: true,
        }
    }
}

/// What a failure of one call leads to, as the router decides it for each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// A healthy sibling remains after this deployment: the provider does not retry in
    /// place (the request moves on at once), and a failure that says the target is
    /// unwell cools the deployment down at once (see
    /// [`PoolSettings::cooldown_on_failover`]).
    MoveOn,
    /// The last candidate: the provider may retry in place within the deadline, and the
    /// deployment cools down after `cooldown_after_failures` failures in a row.
    #[default]
    RetryInPlace,
}

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.2;

/// Live health of one deployment, shared by its pool (writer) and the router (reader).
#[derive(Debug, Default)]
pub struct DeploymentHealth {
    in_flight: AtomicUsize,
    queued: AtomicUsize,
    /// Microseconds; 0 means no sample yet.
    ewma_latency_us: AtomicU64,
    consecutive_failures: AtomicU32,
    cooling_down_until: parking_lot::Mutex<Option<Instant>>,
    lane: parking_lot::RwLock<Option<Lane>>,
}

/// A running pool's call path, for callers on its own arbiter; see the module docs.
#[derive(Clone)]
pub struct Lane {
    /// Weak: the health entry outlives its pools and must not keep one alive.
    call: std::sync::Weak<PoolCall>,
    thread: std::thread::ThreadId,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("thread", &self.thread)
            .finish()
    }
}

/// The calling thread's id, without `thread::current()`'s handle clone on every request.
fn this_thread() -> std::thread::ThreadId {
    thread_local! {
        static ID: std::thread::ThreadId = std::thread::current().id();
    }
    ID.with(|id| *id)
}

/// A lane taken for one request.
pub struct LocalLane(Arc<PoolCall>);

impl LocalLane {
    /// What the pool's [`Complete`] handler does, run in the caller's task; streamed into
    /// `deltas` when given.
    pub async fn complete(
        &self,
        request: &ModelRequest,
        deadline: Instant,
        on_failure: OnFailure,
        deltas: Option<mpsc::Sender<String>>,
    ) -> Result<ModelResponse, ModelError> {
        self.0.run(request, deadline, on_failure, deltas).await
    }
}

impl DeploymentHealth {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
    /// Exponentially weighted latency of successful calls, if there was one.
    pub fn ewma_latency(&self) -> Option<Duration> {
        match self.ewma_latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }
    pub fn cooling_down_until(&self) -> Option<Instant> {
        *self.cooling_down_until.lock()
    }
    pub fn is_cooling_down(&self, now: Instant) -> bool {
        self.cooling_down_until().is_some_and(|until| now < until)
    }

    /// The running pool's lane, if it runs on the caller's thread.
    pub fn local_lane(&self) -> Option<LocalLane> {
        let lane = self.lane.read();
        let lane = lane.as_ref()?;
        if lane.thread != this_thread() {
            return None;
        }
        lane.call.upgrade().map(LocalLane)
    }

    fn open_lane(&self, call: &Arc<PoolCall>) {
        *self.lane.write() = Some(Lane {
            call: Arc::downgrade(call),
            thread: this_thread(),
        });
    }

    /// Withdraws `call`'s lane, never a newer pool's.
    fn close_lane(&self, call: &Arc<PoolCall>) {
        let mut lane = self.lane.write();
        if lane
            .as_ref()
            .is_some_and(|l| std::ptr::eq(l.call.as_ptr(), Arc::as_ptr(call)))
        {
            *lane = None;
        }
    }

    /// Takes the deployment out of rotation for `pause` from `now` (a failed health
    /// check); never shortens a cooldown already running.
    pub(crate) fn cool_down(&self, now: Instant, pause: Duration) {
        let until = deadline_after(now, pause);
        let mut slot = self.cooling_down_until.lock();
        *slot = Some(slot.map_or(until, |current| current.max(until)));
    }

    fn record_success(&self, latency: Duration) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        *self.cooling_down_until.lock() = None;
        let sample = latency.as_micros().clamp(1, u128::from(u64::MAX)) as f64;
        // fetch_update only fails if the closure returns None, which it never does.
        let _ = self
            .ewma_latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                let next = if old == 0 {
                    sample
                } else {
                    old as f64 * (1.0 - EWMA_ALPHA) + sample * EWMA_ALPHA
                };
                Some(next.max(1.0) as u64)
            });
    }

    /// Counts a failure that says the target is unwell. Starts a cooldown when the failures
    /// reach the threshold, or at once when the target said when to come back (a 429's
    /// Retry-After, capped at [`MAX_RETRY_AFTER`]). Returns the cooldown it started.
    fn record_target_failure(
        &self,
        now: Instant,
        settings: &PoolSettings,
        retry_after: Option<Duration>,
        on_failure: OnFailure,
    ) -> Option<Duration> {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let at_once = on_failure == OnFailure::MoveOn && settings.cooldown_on_failover;
        let tripped = settings.cooldown_after_failures != 0
            && (at_once || failures >= settings.cooldown_after_failures);
        let retry_after = retry_after
            .map(|d| d.min(MAX_RETRY_AFTER))
            .filter(|d| !d.is_zero());
        let pause = match (tripped, retry_after) {
            (true, ra) => settings.cooldown.max(ra.unwrap_or_default()),
            (false, Some(ra)) => ra,
            (false, None) => return None,
        };
        if tripped {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        let until = deadline_after(now, pause);
        let mut slot = self.cooling_down_until.lock();
        // Never shorten a cooldown already running.
        *slot = Some(slot.map_or(until, |current| current.max(until)));
        Some(pause)
    }
}

/// `now + d`, saturating far in the future instead of panicking on an absurd duration
/// (a request or config value is input, and input never panics the engine).
pub(crate) fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(10 * 365 * 24 * 3600))
}

/// Longest a provider's Retry-After may keep a deployment out of rotation; a misbehaving
/// server must not disable a deployment for a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Health of every deployment, by deployment id. Cheap to clone; shared by all pools and
/// the router.
#[derive(Debug, Clone, Default)]
pub struct HealthTable(Arc<DashMap<String, Arc<DeploymentHealth>>>);

impl HealthTable {
    pub fn new() -> Self {
        Self::default()
    }
    /// The deployment's entry, created on first use. A restarted pool gets the same entry.
    pub fn entry(&self, deployment: &str) -> Arc<DeploymentHealth> {
        if let Some(h) = self.0.get(deployment) {
            return h.clone();
        }
        self.0
            .entry(deployment.to_string())
            .or_default()
            .value()
            .clone()
    }
    pub fn get(&self, deployment: &str) -> Option<Arc<DeploymentHealth>> {
        self.0.get(deployment).map(|h| h.clone())
    }
}

/// Ask one pool for one completion, whole or streamed. The router sends this to a pool
/// on another arbiter (one on its own arbiter lends its [`Lane`] instead); agents never do.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ModelResponse, ModelError>")]
pub struct Complete {
    pub request: Arc<ModelRequest>,
    /// The caller's deadline (failover included); the pool answers by then at the latest.
    pub deadline: Instant,
    /// Whether the router has a sibling left after this deployment.
    pub on_failure: OnFailure,
    /// Streamed: receives the answer's text deltas as they arrive; the reply (the whole
    /// answer, or why there is none) comes after the last delta was sent. Whether a
    /// failure after a delta may fail over is the router's call (never).
    pub deltas: Option<mpsc::Sender<String>>,
}

impl Complete {
    /// A whole answer, the last candidate's terms ([`OnFailure::RetryInPlace`]).
    pub fn new(request: Arc<ModelRequest>, deadline: Instant) -> Self {
        Self {
            request,
            deadline,
            on_failure: OnFailure::RetryInPlace,
            deltas: None,
        }
    }

    /// The same call with its text streamed into `deltas`.
    pub fn streamed(mut self, deltas: mpsc::Sender<String>) -> Self {
        self.deltas = Some(deltas);
        self
    }

    /// The same call with a sibling left after it.
    pub fn moving_on(mut self) -> Self {
        self.on_failure = OnFailure::MoveOn;
        self
    }
}

/// The actor in front of one deployment.
pub struct ModelPool {
    call: Arc<PoolCall>,
}

/// Everything one call needs, shared with the futures the handler returns so they do not
/// borrow the actor.
struct PoolCall {
    deployment: String,
    provider: Arc<dyn Provider>,
    settings: PoolSettings,
    permits: Arc<Semaphore>,
    health: Arc<DeploymentHealth>,
    metrics: PoolMetrics,
    /// The supervised actor's `orrery_actor_messages_total`; see [`ModelPool::counting_messages_in`].
    messages: std::sync::OnceLock<metrics::Counter>,
}

/// The pool's metric handles, registered once when the pool is built (the engine installs
/// its recorder before it builds any pool): a lookup by name and labels on every request
/// costs more than the rest of the pool's bookkeeping.
struct PoolMetrics {
    /// The `deployment` label, shared rather than copied into each rarer metric.
    label: metrics::SharedString,
    ok: metrics::Counter,
    duration: metrics::Histogram,
    in_flight: metrics::Gauge,
    prompt_tokens: metrics::Counter,
    completion_tokens: metrics::Counter,
    /// Registered with the pool so the series reads 0 from the start, not only after the
    /// first cooldown (an alert on its increase needs the series to exist).
    cooldowns: metrics::Counter,
}

impl PoolMetrics {
    fn new(deployment: &str) -> Self {
        let label = metrics::SharedString::from(Arc::<str>::from(deployment));
        Self {
            ok: metrics::counter!("orrery_model_requests_total", "deployment" => label.clone(), "outcome" => "ok"),
            duration: metrics::histogram!("orrery_model_request_duration_seconds", "deployment" => label.clone()),
            in_flight: metrics::gauge!("orrery_model_in_flight", "deployment" => label.clone()),
            prompt_tokens: metrics::counter!("orrery_model_tokens_total", "deployment" => label.clone(), "kind" => "prompt"),
            completion_tokens: metrics::counter!("orrery_model_tokens_total", "deployment" => label.clone(), "kind" => "completion"),
            cooldowns: metrics::counter!("orrery_model_cooldowns_total", "deployment" => label.clone()),
            label,
        }
    }

    fn outcome(&self, outcome: &'static str) {
        if outcome == "ok" {
            self.ok.increment(1);
        } else {
            metrics::counter!("orrery_model_requests_total", "deployment" => self.label.clone(), "outcome" => outcome)
                .increment(1);
        }
    }
}

impl ModelPool {
    /// A pool for `deployment`, calling `provider` within `settings`, reporting into
    /// `health` (take it from [`HealthTable::entry`] so the router sees it).
    pub fn new(
        deployment: impl Into<String>,
        provider: Arc<dyn Provider>,
        settings: PoolSettings,
        health: Arc<DeploymentHealth>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
        let deployment = deployment.into();
        Self {
            call: Arc::new(PoolCall {
                metrics: PoolMetrics::new(&deployment),
                deployment,
                provider,
                settings,
                permits,
                health,
                messages: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Counts every request this pool serves (by message or through its lane) and every
    /// health check in `counter`, the supervised actor's `orrery_actor_messages_total`
    /// ([`crate::supervisor::StartCtx::messages_counter`]). The router reaches pools past
    /// their slot, so the slot alone would count nothing.
    pub fn counting_messages_in(self, counter: metrics::Counter) -> Self {
        // A fresh pool's cell is empty; were it set, the first counter simply stays.
        let _ = self.call.messages.set(counter);
        self
    }

    pub fn deployment(&self) -> &str {
        &self.call.deployment
    }
}

impl Actor for ModelPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The handler returns at once (the work runs as a future), so the mailbox only
        // needs to absorb bursts; admission control is the semaphore and `max_queued`.
        let s = &self.call.settings;
        ctx.set_mailbox_capacity((s.max_concurrent + s.max_queued).max(16));
        self.call.health.open_lane(&self.call);
        if let Some(every) = self.call.provider.health_check_interval() {
            // Once at start, so a deployment that cannot serve is out before the first
            // request; then every interval.
            let first = self.call.clone();
            ctx.spawn(actix::fut::wrap_future(async move {
                first.check_health(every).await
            }));
            let call = self.call.clone();
            ctx.run_interval(every, move |_, ctx| {
                let call = call.clone();
                ctx.spawn(actix::fut::wrap_future(async move {
                    call.check_health(every).await
                }));
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.call.health.close_lane(&self.call);
    }
}

/// The lane closes with the actor however it ends (stopped, or its arbiter gone).
impl Drop for ModelPool {
    fn drop(&mut self) {
        self.call.health.close_lane(&self.call);
    }
}

impl Handler<Complete> for ModelPool {
    type Result = ResponseFuture<Result<ModelResponse, ModelError>>;

    fn handle(&mut self, msg: Complete, _ctx: &mut Self::Context) -> Self::Result {
        let call = self.call.clone();
        Box::pin(async move {
            call.run(&msg.request, msg.deadline, msg.on_failure, msg.deltas)
                .await
        })
    }
}

/// Keeps the in-flight count and its gauge right on every exit path, cancellation included.
struct InFlight<'a> {
    counter: &'a AtomicUsize,
    gauge: &'a metrics::Gauge,
}

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize, gauge: &'a metrics::Gauge) -> Self {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        gauge.set(now as f64);
        Self { counter, gauge }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let now = self.counter.fetch_sub(1, Ordering::Relaxed) - 1;
        self.gauge.set(now as f64);
    }
}

impl PoolCall {
    fn count_message(&self) {
        if let Some(c) = self.messages.get() {
            c.increment(1);
        }
    }

    /// One background health check, bounded by its interval (a check that hangs is a
    /// failed check, and never piles up behind the next). A failure keeps the deployment
    /// out for two intervals: until the next check has run and had its own interval to
    /// answer, so the deployment never flickers back in between two failing checks.
    async fn check_health(&self, every: Duration) {
        self.count_message();
        let out_for = every.saturating_mul(2);
        let checked = tokio::time::timeout(every, self.provider.health_check()).await;
        let outcome = match checked {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(deployment = %self.deployment, "health check failed, out of rotation for {out_for:?}: {e}");
                self.health.cool_down(Instant::now(), out_for);
                "failed"
            }
            Err(_) => {
                tracing::warn!(deployment = %self.deployment, "health check gave no answer within {every:?}; out of rotation until the next one");
                self.health.cool_down(Instant::now(), out_for);
                "timeout"
            }
        };
        metrics::counter!("orrery_model_health_checks_total", "deployment" => self.deployment.clone(), "outcome" => outcome)
            .increment(1);
    }

    /// One call through admission and the deadline; streamed into `deltas` when given.
    async fn run(
        &self,
        request: &ModelRequest,
        deadline: Instant,
        on_failure: OnFailure,
        deltas: Option<mpsc::Sender<String>>,
    ) -> Result<ModelResponse, ModelError> {
        self.count_message();
        let started = Instant::now();
        let own_deadline = deadline_after(started, self.settings.timeout);
        let deadline = deadline.min(own_deadline);
        let (outcome, result, answered) = match self.admit(deadline).await {
            Err((outcome, e)) => (outcome, Err(e), Instant::now()),
            Ok(permit) => {
                let (result, answered) = self
                    .call_provider(request, deadline, started, on_failure, deltas)
                    .await;
                drop(permit);
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(e) => e.label(),
                };
                (outcome, result, answered)
            }
        };
        self.metrics.outcome(outcome);
        self.metrics
            .duration
            .record((answered - started).as_secs_f64());
        result
    }

    /// A slot to call the provider, waiting in the bounded queue if need be.
    async fn admit(
        &self,
        deadline: Instant,
    ) -> Result<SemaphorePermit<'_>, (&'static str, ModelError)> {
        match self.permits.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(("closed", self.closed())),
            Err(TryAcquireError::NoPermits) => {}
        }
        let health = &self.health;
        if health.queued.fetch_add(1, Ordering::Relaxed) >= self.settings.max_queued {
            health.queued.fetch_sub(1, Ordering::Relaxed);
            return Err((
                "overloaded",
                ModelError::Provider {
                    deployment: self.deployment.clone(),
                    class: ErrorClass::Unavailable,
                    message: format!(
                        "overloaded: {} calls in flight and {} queued (max_concurrent {}, max_queued {}); try a sibling deployment or raise the limits",
                        health.in_flight(),
                        self.settings.max_queued,
                        self.settings.max_concurrent,
                        self.settings.max_queued
                    ),
                },
            ));
        }
        // The queue slot was taken above; this guard gives it back however we leave.
        let queued = QueueSlot(&health.queued);
        let waited = tokio::time::timeout_at(deadline, self.permits.acquire()).await;
        drop(queued);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(("closed", self.closed())),
            // Waiting in our own queue says nothing about the provider: not a failure.
            Err(_) => Err((
                "queue_timeout",
                ModelError::Provider {
                    deployment: self.deployment.clone(),
                    class: ErrorClass::Timeout,
                    message: format!(
                        "no free slot before the deadline ({} calls in flight, max_concurrent {}); raise max_concurrent or add a deployment",
                        self.health.in_flight(),
                        self.settings.max_concurrent
                    ),
                },
            )),
        }
    }

    fn closed(&self) -> ModelError {
        // The semaphore is never closed while the pool exists; reported, not panicked on.
        ModelError::Provider {
            deployment: self.deployment.clone(),
            class: ErrorClass::Unavailable,
            message: "the pool is shutting down; try a sibling deployment".into(),
        }
    }

    /// The provider's answer and when it came.
    async fn call_provider(
        &self,
        request: &ModelRequest,
        deadline: Instant,
        started: Instant,
        on_failure: OnFailure,
        deltas: Option<mpsc::Sender<String>>,
    ) -> (Result<ModelResponse, ModelError>, Instant) {
        let in_flight = InFlight::enter(&self.health.in_flight, &self.metrics.in_flight);
        // Only the whole-answer path is known to bound its every wait (see
        // `Provider::bounds_every_wait`); a stream keeps the pool's timer.
        let bounded = deltas.is_none() && self.provider.bounds_every_wait();
        let call = match deltas {
            None => self.provider.complete_by(request, deadline, on_failure),
            Some(deltas) => self
                .provider
                .complete_stream_by(request, deadline, on_failure, deltas),
        };
        let answer = if bounded {
            Ok(call.await)
        } else {
            tokio::time::timeout_at(deadline, call).await
        };
        drop(in_flight);
        let now = Instant::now();
        let result = match answer {
            Ok(Ok(completion)) => {
                let latency = now - started;
                self.health.record_success(latency);
                self.metrics
                    .prompt_tokens
                    .increment(completion.usage.prompt_tokens);
                self.metrics
                    .completion_tokens
                    .increment(completion.usage.completion_tokens);
                let response = ModelResponse {
                    text: completion.text,
                    deployment: self.deployment.clone(),
                    provider: self.provider.provider().to_string(),
                    model: self.provider.model().to_string(),
                    usage: completion.usage,
                    latency,
                    finish_reason: completion.finish_reason,
                    cached: false,
                    attempts: Vec::new(),
                    cost_usd: None,
                };
                return (Ok(response), now);
            }
            Ok(Err(e)) => e,
            Err(_) => ModelError::Provider {
                deployment: self.deployment.clone(),
                class: ErrorClass::Timeout,
                message: format!(
                    "provider `{}` gave no answer within {:?}; the deployment timeout is {:?}",
                    self.provider.provider(),
                    now - started,
                    self.settings.timeout
                ),
            },
        };
        let (against_target, retry_after) = match &result {
            ModelError::Provider { class, .. } => (
                class.counts_against_target(),
                match class {
                    ErrorClass::RateLimited { retry_after } => *retry_after,
                    _ => None,
                },
            ),
            // Garbage on the wire is the target's fault too.
            ModelError::Malformed { .. } => (true, None),
            _ => (false, None),
        };
        let cooldown = against_target
            .then(|| {
                self.health
                    .record_target_failure(now, &self.settings, retry_after, on_failure)
            })
            .flatten();
        if let Some(pause) = cooldown {
            tracing::warn!(
                deployment = %self.deployment,
                cooldown = ?pause,
                "deployment cooling down ({} consecutive failures allowed); last: {result}",
                self.settings.cooldown_after_failures
            );
            self.metrics.cooldowns.increment(1);
        }
        (Err(result), now)
    }
}

struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Describes the pool metrics (HELP lines). Call once after installing a recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "orrery_model_requests_total",
        "Model requests per deployment, by outcome: ok, overloaded, queue_timeout, closed, or the error label (timeout, unavailable, rate_limited, auth, bad_request, malformed)."
    );
    describe_histogram!(
        "orrery_model_request_duration_seconds",
        Unit::Seconds,
        "Time from a pool receiving a model request to its answer, queueing included."
    );
    describe_counter!(
        "orrery_model_tokens_total",
        "Tokens used per deployment, by kind (prompt or completion)."
    );
    describe_gauge!(
        "orrery_model_in_flight",
        "Calls to the provider currently in flight per deployment."
    );
    describe_counter!(
        "orrery_model_cooldowns_total",
        "Times a deployment was put into cooldown after consecutive failures."
    );
    describe_counter!(
        "orrery_model_health_checks_total",
        "Background health checks per deployment, by outcome (ok, failed, timeout); a failed check takes the deployment out of rotation until the next."
    );
    super::http::describe();
}

#[cfg(test)]
pub(crate) mod tests;
