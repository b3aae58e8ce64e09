//! The HTTP half of the model pools: [`HttpProvider`], one per deployment of every
//! provider kind but `local`, sending the wire formats of [`crate::models::providers`]
//! with its own reqwest client.
//!
//! Owns: the deployment's HTTP client (keep-alive, connection reuse, `tcp_nodelay`, a
//! bounded idle pool, no redirects: an API never redirects, and following one could
//! carry the key elsewhere), its timeouts (connect, first byte — also the longest gap
//! between two chunks of a stream — and the deployment's total), the body size bound,
//! its requests-per-minute and tokens-per-minute budgets (fed by the provider's own
//! rate-limit headers), retries within the deployment, its circuit breaker, and its
//! health check. Never: fails over to another deployment (the router does), counts the
//! pool's outcome metrics (the pool does), or reads/prints a key (see [`secrets`]).
//!
//! Every call goes through the resilience [`Guard`] (pause gate, the rpm/tpm draw,
//! breaker, one attempt, retry), as the venues' calls do; a completion is a read. The
//! retry policy is the kit's `RetryPolicy` with a schedule of its own per class:
//! - timeout (no first byte in time, HTTP 408/504): exponential from `retry_backoff`
//!   (×2, jitter up to half), at most 3 attempts;
//! - 5xx, 503/529 overloaded, an error event inside a stream: fixed `retry_backoff`,
//!   at most 5 attempts;
//! - 429: after the server's `retry-after-ms` / `retry-after`, or linear
//!   (`retry_backoff` × n) without one, at most 3 attempts;
//! - 400/401/403/404, a missing key, a refused connection, an unreadable or cut answer:
//!   never here. A refused connection will be refused again a moment later, and a cut
//!   stream is better retried elsewhere: the router fails over at once. Nor is any
//!   failure once streamed text has reached the caller's channel (it would see it twice).
//!
//! A 429 that says when to come back (`retry-after-ms`, `retry-after`, Gemini's
//! `retryDelay`) pauses the whole deployment until then: no call of it is sent before,
//! a call whose wait bound (below) outlasts the pause waits for it, and one whose bound
//! does not comes back `RateLimited` with the time left at once.
//!
//! The failover rule: retries inside one deployment happen only when the router has no
//! sibling left to try ([`OnFailure::RetryInPlace`]); with one left
//! ([`OnFailure::MoveOn`]) the first failure goes back at once. They may only use the
//! first half of the
//! time left when the pool called us (the pool's deadline, itself the caller's deadline
//! or the deployment's `timeout`, whichever is earlier). A retry whose wait would end
//! past that half is not started; a Retry-After longer than it is not waited on — the
//! `RateLimited` error goes back at once, so the pool cools the deployment down for that
//! long and the router moves on to a sibling while half the deadline remains. The same
//! half bounds waits for our own rpm/tpm budgets.
//!
//! Rate budgets: `rpm` is a token bucket of one unit per request, `tpm` one of tokens,
//! each refilled continuously over a minute. A call draws an estimate before it is sent
//! (`ModelRequest::estimated_tokens`); the provider's usage corrects the
//! draw afterwards (the unused part is refunded, an overrun drawn when available). Every
//! response's `x-ratelimit-*` / `anthropic-ratelimit-*` headers are observed into the
//! budgets so we never send more than the server says remains.
//!
//! Health: the breaker (resilience kit) counts target failures of each attempt and opens
//! after its threshold; while open, calls fail fast as `unavailable` (no request sent),
//! which the router skips past in microseconds and the pool counts toward its cooldown;
//! after `open_for` it lets a probe through (half-open) and closes on success. Its state
//! is kept in sled when the provider is built with a store ([`HttpProvider::with_breaker_store`],
//! as the engine does), so a restart keeps an open breaker open until its time. Ollama
//! also gets a background check, at pool start and every `health_check_interval`:
//! `GET /api/tags` for the server and the model, so a stopped server or a model not
//! pulled takes the deployment out before a user request fails on it. The hosted APIs
//! have no check that is free against their rate limits, so they get none.

mod prepared;
pub mod secrets;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::pool::{deadline_after, Completion, OnFailure, Provider};
use super::providers::{
    self, classify_http_error, classify_transport_error, BodyCollector, LimitWindow, ProviderKind,
    ProviderWireError, RateLimitSnapshot, StreamEvent, StreamParser, WireTarget,
};
use super::types::{ModelError, ModelRequest};
use crate::clock::SharedClock;
use crate::cluster::limits::{SharedLimit, SharedScopeError};
use crate::cluster::SharedLimits;
use crate::env::EnvLookup;
use crate::resilience::config::{
    BackoffConfig, BreakerConfig, ClassRetry, LimitConfig, RateLimitedRetry, RetryConfig,
};
use crate::resilience::limiter::LinkedLimit;
use crate::resilience::retry::BackoffKind;
use crate::resilience::{
    BreakerError, BreakerRecord, BreakerState, CircuitBreaker, Classify, ErrorClass, Guard,
    GuardedCall, LimitError, Priority, RateLimit, Refusal, RetryClass, RetryPolicy, ServerQuota,
    SharedMonotonic, Throttle, TokioClock,
};
use crate::store::Tree;

pub use secrets::{key_variables, resolve_api_key, MissingKey};

/// Attempts at most, per class (the first included).
const TIMEOUT_ATTEMPTS: u32 = 3;
const OVERLOADED_ATTEMPTS: u32 = 5;
const RATE_LIMITED_ATTEMPTS: u32 = 3;

/// Everything an [`HttpProvider`] needs besides the wire target.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// TCP (and TLS) connect.
    pub connect_timeout: Duration,
    /// From sending the request to the response headers; also the longest silence
    /// between two chunks of a streamed answer.
    pub first_byte_timeout: Duration,
    /// Longest one call may take, retries included (the deployment's `timeout`).
    pub total_timeout: Duration,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
    /// Ask for a streamed answer (SSE / NDJSON) rather than one body.
    pub stream: bool,
    /// Requests per minute this deployment may send; `None`: unlimited here.
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute; `None`: unlimited here.
    pub tpm: Option<u64>,
    /// Base wait between retries (see the module doc for each class's shape).
    pub retry_backoff: Duration,
    pub breaker: BreakerConfig,
    /// How often the background health check runs; `None`: never.
    pub health_check_every: Option<Duration>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(60),
            max_idle_per_host: 16,
            stream: false,
            rpm: None,
            tpm: None,
            retry_backoff: Duration::from_millis(250),
            breaker: BreakerConfig::default(),
            health_check_every: Some(Duration::from_secs(30)),
        }
    }
}

/// Why a provider could not be built. Names the deployment and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpBuildError {
    #[error("base URL `{url}` is not an http(s) URL: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error(transparent)]
    MissingKey(#[from] MissingKey),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// One deployment of an HTTP model provider.
pub struct HttpProvider {
    deployment: String,
    kind: ProviderKind,
    target: WireTarget,
    client: reqwest::Client,
    settings: HttpSettings,
    requests: Option<Arc<Throttle>>,
    tokens: Option<Arc<Throttle>>,
    /// The local buckets when the throttles also draw from cluster budgets (the server's
    /// quota headers land on these).
    local_requests: Option<Arc<dyn RateLimit>>,
    local_tokens: Option<Arc<dyn RateLimit>>,
    /// Pause gate, breaker and retry of every call.
    guard: Guard,
    prepared: prepared::Prepared,
}

impl fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The target's key prints as `***` already; listed field by field anyway so a
        // new field never leaks by default.
        f.debug_struct("HttpProvider")
            .field("deployment", &self.deployment)
            .field("provider", &self.kind)
            .field("model", &self.target.model)
            .field("base_url", &self.target.base_url)
            .field("has_key", &self.target.api_key.is_some())
            .field("settings", &self.settings)
            .finish()
    }
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(())
}

/// A budget's throttle and, when it also draws from the cluster, its local bucket.
type LinkedBudget = (Option<Arc<Throttle>>, Option<Arc<dyn RateLimit>>);

impl HttpProvider {
    /// A provider for `deployment`: `kind` at `base_url` (or the provider's public
    /// endpoint), its key read through `env` (see [`resolve_api_key`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        deployment: impl Into<String>,
        kind: ProviderKind,
        model: impl Into<String>,
        base_url: Option<&str>,
        api_key_env: Option<&str>,
        settings: HttpSettings,
        env: EnvLookup<'_>,
        wall: SharedClock,
    ) -> Result<Self, HttpBuildError> {
        let deployment = deployment.into();
        let mut target = WireTarget::new(kind, model);
        if let Some(url) = base_url {
            check_base_url(url).map_err(|reason| HttpBuildError::BaseUrl {
                url: url.to_string(),
                reason,
            })?;
            target = target.with_base_url(url);
        }
        if let Some(key) = resolve_api_key(kind, api_key_env, env)? {
            target = target.with_api_key(key);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpBuildError::Client(e.to_string()))?;
        let mono: SharedMonotonic = TokioClock::shared();
        let minute = Duration::from_secs(60);
        let bucket = |name: &str, per_minute: u64| {
            let limiter: Arc<dyn RateLimit> =
                Arc::new(crate::resilience::limiter::LeakyBucket::token_bucket(
                    per_minute.max(1),
                    per_minute.max(1),
                    minute,
                    mono.now(),
                ));
            Arc::new(Throttle::new(
                format!("{deployment}/{name}"),
                limiter,
                mono.clone(),
            ))
        };
        let requests = settings.rpm.map(|rpm| bucket("requests", u64::from(rpm)));
        let tokens = settings.tpm.map(|tpm| bucket("tokens", tpm));
        let breaker = CircuitBreaker::new(deployment.clone(), settings.breaker.clone(), wall, None);
        let guard = Guard::new(
            deployment.clone(),
            breaker,
            retry_policy(&deployment, &settings),
        );
        Ok(Self {
            deployment,
            kind,
            target,
            client,
            settings,
            requests,
            tokens,
            local_requests: None,
            local_tokens: None,
            guard,
            prepared: prepared::Prepared::default(),
        })
    }

    /// Also draws the rpm / tpm budgets from the cluster scopes `<scope>.requests` and
    /// `<scope>.tokens` (token buckets refilled over a minute, as the local ones): each
    /// call is admitted only when both its local bucket and the cluster's admit it.
    pub fn with_shared_budgets(
        mut self,
        shared: &SharedLimits,
        scope: &str,
    ) -> Result<Self, SharedScopeError> {
        let mono: SharedMonotonic = TokioClock::shared();
        let link = |throttle: &Option<Arc<Throttle>>,
                    name: &str,
                    per_minute: Option<u64>|
         -> Result<LinkedBudget, SharedScopeError> {
            let (Some(t), Some(n)) = (throttle, per_minute) else {
                return Ok((throttle.clone(), None));
            };
            let budget = LimitConfig::TokenBucket {
                name: name.to_string(),
                capacity: n.max(1),
                refill_amount: n.max(1),
                refill_every: Duration::from_secs(60),
                shared: Some(format!("{scope}.{name}")),
                local_share: None,
                batch: None,
            };
            let Some(pool) = shared.pool(&budget, &mono)? else {
                return Ok((Some(t.clone()), None));
            };
            let local = t.limiter().clone();
            let members: Vec<(Arc<dyn RateLimit>, u64, bool)> = vec![
                (local.clone(), 1, true),
                (Arc::new(SharedLimit(pool.clone())), 1, true),
            ];
            let linked = LinkedLimit::new(members).map_err(|e| SharedScopeError::Mismatch {
                scope: scope.to_string(),
                first: name.to_string(),
                second: e.to_string(),
            })?;
            let throttle = Arc::new(Throttle::new(
                t.name().to_string(),
                Arc::new(linked),
                mono.clone(),
            ));
            pool.wake_on_draw(&throttle);
            Ok((Some(throttle), Some(local)))
        };
        let (requests, local_requests) =
            link(&self.requests, "requests", self.settings.rpm.map(u64::from))?;
        let (tokens, local_tokens) = link(&self.tokens, "tokens", self.settings.tpm)?;
        self.requests = requests;
        self.tokens = tokens;
        self.local_requests = local_requests;
        self.local_tokens = local_tokens;
        Ok(self)
    }

    /// Keeps the circuit breaker's state in `breakers` (the store's `breakers` tree, under
    /// the deployment id): restored now and written on every transition, so a restarted
    /// pool or engine does not hammer a deployment whose breaker was open.
    pub fn with_breaker_store(mut self, breakers: Tree<BreakerRecord>) -> Self {
        self.guard = self.guard.persisted_in(breakers);
        self
    }

    /// OpenRouter's app attribution: `HTTP-Referer` (the app's URL) and `X-Title` (its
    /// name) on every request. Other providers ignore it (config refuses it for them).
    pub fn with_attribution(mut self, app_url: Option<String>, app_title: Option<String>) -> Self {
        self.target = self.target.with_attribution(app_url, app_title);
        self
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn base_url(&self) -> &str {
        &self.target.base_url
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.guard.breaker().state()
    }

    /// One call through the guard (retries within the deployment included), its text
    /// deltas forwarded to `sink` when streaming.
    async fn call(
        &self,
        req: &ModelRequest,
        deadline: Instant,
        stream: bool,
        sink: Option<&mpsc::Sender<String>>,
        on_failure: OnFailure,
    ) -> Result<Completion, ModelError> {
        let start = Instant::now();
        let deadline = deadline.min(deadline_after(start, self.settings.total_timeout));
        // Waits (pause, budgets, retries) keep the second half for the router's failover.
        let retry_until = start + deadline.saturating_duration_since(start) / 2;
        let call = GuardedCall::read("completion", deadline).waits_until(retry_until);
        // While the router has a sibling left, the request moves on at the first failure.
        let call = match on_failure {
            OnFailure::MoveOn => call.tried_once(),
            OnFailure::RetryInPlace => call,
        };
        self.guard
            .run(
                call,
                |until| self.admit(req, until),
                |estimate| self.attempt(req, estimate, deadline, stream, sink),
            )
            .await
            .map_err(|failure: Failure| failure.error)
    }

    /// Draws the call from the rpm and tpm budgets; returns the token estimate drawn.
    async fn admit(&self, req: &ModelRequest, until: Instant) -> Result<u64, LimitError> {
        if let Some(requests) = &self.requests {
            requests.acquire(1, Priority::Low, until).await?;
        }
        let Some(tokens) = &self.tokens else {
            return Ok(0);
        };
        // An estimate above the whole minute's budget could never pass: draw what can.
        let estimate = req.estimated_tokens().min(tokens.limiter().max_cost());
        tokens.acquire(estimate, Priority::Low, until).await?;
        Ok(estimate)
    }

    /// Corrects the token draw from the provider's reported usage.
    fn settle_tokens(&self, estimate: u64, used: u64) {
        let Some(tokens) = &self.tokens else { return };
        if used == 0 || used == estimate {
            return;
        }
        let limiter = tokens.limiter();
        let now = TokioClock::shared().now();
        if used < estimate {
            limiter.refund(estimate - used, now);
        } else {
            // Best effort: an overrun the bucket cannot cover now is forgiven, the
            // server's own headers keep us honest.
            let _ = limiter.try_acquire((used - estimate).min(limiter.max_cost()), now);
        }
    }

    fn observe(&self, snapshot: &RateLimitSnapshot) {
        let quota = |w: &LimitWindow| match (w.remaining, w.reset) {
            (Some(remaining), Some(reset_after)) => Some(ServerQuota {
                limit: w.limit,
                remaining,
                reset_after,
            }),
            _ => None,
        };
        let token_window = if snapshot.tokens.is_empty() {
            &snapshot.input_tokens
        } else {
            &snapshot.tokens
        };
        for (throttle, local, q) in [
            (
                &self.requests,
                &self.local_requests,
                quota(&snapshot.requests),
            ),
            (&self.tokens, &self.local_tokens, quota(token_window)),
        ] {
            match (throttle, local, q) {
                // Shared: the server's view is the local bucket's; the cluster's budget
                // is kept by Redis.
                (Some(t), Some(local), Some(q)) => {
                    local.observe(q, TokioClock::shared().now());
                    t.nudge();
                }
                (Some(t), None, Some(q)) => t.observe(q),
                _ => {}
            }
        }
    }

    /// One attempt past the guard (budgets drawn, `estimate` tokens of them): send, read,
    /// correct the token draw.
    async fn attempt(
        &self,
        req: &ModelRequest,
        estimate: u64,
        deadline: Instant,
        stream: bool,
        sink: Option<&mpsc::Sender<String>>,
    ) -> Result<Completion, Failure> {
        let started = Instant::now();
        let completion = self.exchange(req, started, deadline, stream, sink).await?;
        self.settle_tokens(
            estimate,
            completion.usage.prompt_tokens + completion.usage.completion_tokens,
        );
        Ok(completion)
    }

    fn wire_failure(&self, e: ProviderWireError, kind: FailKind) -> Failure {
        let class = e.class();
        Failure {
            error: e.into_model_error(&self.deployment),
            class,
            kind,
        }
    }

    fn stream_failure(&self, e: ProviderWireError) -> Failure {
        let kind = stream_error_kind(&e);
        self.wire_failure(e, kind)
    }

    fn transport_failure(&self, e: &reqwest::Error, during: &str) -> Failure {
        let class = classify_transport_error(e);
        let kind = if e.is_connect() {
            FailKind::Connect
        } else if class == ErrorClass::Timeout {
            FailKind::Timeout
        } else {
            FailKind::Body
        };
        let what = if e.is_connect() {
            "cannot connect to"
        } else {
            "lost the connection to"
        };
        // `without_url`: the URL is named once, by us; the error's own source chain
        // (refused, reset, TLS) follows.
        let mut cause = String::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        if cause.is_empty() {
            cause = e.to_string();
        }
        Failure {
            error: ModelError::Provider {
                deployment: self.deployment.clone(),
                class,
                message: format!(
                    "{} {what} {} {during}: {cause}; check that the server runs and `base_url` is right",
                    self.kind, self.target.base_url
                ),
            },
            class,
            kind,
        }
    }

    fn timeout_failure(&self, what: String) -> Failure {
        Failure {
            error: ModelError::Provider {
                deployment: self.deployment.clone(),
                class: ErrorClass::Timeout,
                message: format!("{} at {}: {what}", self.kind, self.target.base_url),
            },
            class: ErrorClass::Timeout,
            kind: FailKind::Timeout,
        }
    }

    /// The request of one attempt, ready to send. Not `async`: the wire request is gone
    /// before the first await, so it takes no room in the call's future (which is boxed
    /// on every request).
    fn prepare(
        &self,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let wire = providers::build_request(&self.target, req, stream)
            .map_err(|e| self.wire_failure(e, FailKind::Local))?;
        let http = self
            .prepared
            .request(&self.client, &wire)
            .map_err(|e| self.wire_failure(e, FailKind::Local))?;
        Ok(match &wire.body {
            Some(body) => http.json(body),
            None => http,
        })
    }

    /// Sends the request and reads the whole answer.
    async fn exchange(
        &self,
        req: &ModelRequest,
        started: Instant,
        deadline: Instant,
        stream: bool,
        sink: Option<&mpsc::Sender<String>>,
    ) -> Result<Completion, Failure> {
        let http = self.prepare(req, stream)?;
        let first_byte = deadline.min(deadline_after(started, self.settings.first_byte_timeout));
        let mut resp = match tokio::time::timeout_at(first_byte, http.send()).await {
            Err(_) => {
                return Err(self.timeout_failure(format!(
                    "no response headers within {:?} (first-byte timeout {:?})",
                    self.settings
                        .first_byte_timeout
                        .min(deadline.saturating_duration_since(Instant::now())),
                    self.settings.first_byte_timeout
                )))
            }
            Ok(Err(e)) => return Err(self.transport_failure(&e, "sending the request")),
            Ok(Ok(resp)) => resp,
        };
        // Reading the headers costs a few allocations; only worth it with a budget to feed.
        if self.requests.is_some() || self.tokens.is_some() {
            self.observe(&RateLimitSnapshot::from_headers(
                resp.headers(),
                SystemTime::now(),
            ));
        }
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = resp.headers().clone();
            let body = self.read_body(&mut resp, deadline).await?;
            let e = classify_http_error(self.kind, status, &headers, &body, SystemTime::now());
            if let ErrorClass::RateLimited {
                retry_after: Some(wait),
            } = e.class()
            {
                // The provider said when to come back: nothing of this deployment is sent
                // before then (see the module doc).
                self.guard.pause(
                    wait,
                    "the provider answered 429 and named when to come back",
                );
            }
            return Err(self.wire_failure(e, FailKind::Provider));
        }
        let reply = if stream {
            let mut forwarded = false;
            // Boxed: the streaming reader is large and would otherwise enlarge every
            // call's future, streamed or not.
            let read = Box::pin(self.read_stream(&mut resp, deadline, sink, &mut forwarded)).await;
            match read {
                // Text already reached the reader: another attempt here would show it
                // twice, so the failure is final for this deployment.
                Err(mut failure) if forwarded => {
                    failure.kind = FailKind::Body;
                    return Err(failure);
                }
                other => other?,
            }
        } else {
            let body = self.read_body(&mut resp, deadline).await?;
            let reply =
                providers::parse_response(self.kind, &body).map_err(|e| self.stream_failure(e))?;
            if let Some(sink) = sink {
                let _ = Box::pin(tokio::time::timeout_at(
                    deadline,
                    sink.send(reply.text.clone()),
                ))
                .await;
            }
            reply
        };
        Ok(Completion {
            text: reply.text,
            usage: reply.usage,
            finish_reason: reply.finish_reason.map(|r| r.as_str().to_string()),
        })
    }

    /// A streamed body fed to the provider's parser, text deltas forwarded to `sink`;
    /// `forwarded` tells whether any text reached it.
    async fn read_stream(
        &self,
        resp: &mut reqwest::Response,
        deadline: Instant,
        sink: Option<&mpsc::Sender<String>>,
        forwarded: &mut bool,
    ) -> Result<providers::Reply, Failure> {
        let mut parser = providers::stream_parser(self.kind);
        let mut seen = 0usize;
        loop {
            let idle = deadline.min(deadline_after(
                Instant::now(),
                self.settings.first_byte_timeout,
            ));
            let chunk = match tokio::time::timeout_at(idle, resp.chunk()).await {
                Err(_) => {
                    return Err(self.timeout_failure(format!(
                        "the stream stalled for {:?} after {seen} bytes",
                        self.settings.first_byte_timeout
                    )))
                }
                Ok(Err(e)) => return Err(self.transport_failure(&e, "reading the stream")),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            seen += chunk.len();
            providers::guard_body_len(self.kind, seen)
                .map_err(|e| self.wire_failure(e, FailKind::Body))?;
            let events = parser.feed(&chunk).map_err(|e| self.stream_failure(e))?;
            let Some(sink) = sink else { continue };
            for event in events {
                if let StreamEvent::TextDelta(text) = event {
                    *forwarded = true;
                    // A receiver that went away stopped listening; the answer still
                    // counts. A slow one is bounded by the deadline.
                    if tokio::time::timeout_at(deadline, sink.send(text))
                        .await
                        .is_err()
                    {
                        return Err(self.timeout_failure(
                            "the stream's reader did not keep up before the deadline".into(),
                        ));
                    }
                }
            }
        }
        parser.finish().map_err(|e| self.stream_failure(e))
    }

    /// A whole body, bounded in size and by the deadline.
    async fn read_body(
        &self,
        resp: &mut reqwest::Response,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let mut body = BodyCollector::new(self.kind, resp.content_length())
            .map_err(|e| self.wire_failure(e, FailKind::Body))?;
        loop {
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Err(_) => {
                    return Err(self.timeout_failure(
                        "the body did not arrive in full before the deadline".into(),
                    ))
                }
                Ok(Err(e)) => return Err(self.transport_failure(&e, "reading the body")),
                Ok(Ok(None)) => return Ok(body.into_bytes()),
                Ok(Ok(Some(chunk))) => body
                    .push(&chunk)
                    .map_err(|e| self.wire_failure(e, FailKind::Body))?,
            }
        }
    }

    /// Ollama: the server answers `/api/tags` and lists the model.
    async fn check_ollama(&self) -> Result<(), ModelError> {
        let wire = providers::ollama::build_tags_request(&self.target);
        let headers = wire
            .header_map()
            .map_err(|e| e.into_model_error(&self.deployment))?;
        let limit = self.settings.connect_timeout + self.settings.first_byte_timeout;
        let sent = tokio::time::timeout(
            limit,
            self.client
                .request(wire.method.as_reqwest(), &wire.url)
                .headers(headers)
                .send(),
        )
        .await;
        let mut resp = match sent {
            Err(_) => {
                return Err(self
                    .timeout_failure(format!("`GET /api/tags` gave no answer within {limit:?}"))
                    .error)
            }
            Ok(Err(e)) => {
                return Err(self
                    .transport_failure(&e, "(is `ollama serve` running there?)")
                    .error)
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        let deadline = deadline_after(Instant::now(), limit);
        let body = self
            .read_body(&mut resp, deadline)
            .await
            .map_err(|f| f.error)?;
        if !(200..300).contains(&status) {
            let headers = resp.headers().clone();
            return Err(
                classify_http_error(self.kind, status, &headers, &body, SystemTime::now())
                    .into_model_error(&self.deployment),
            );
        }
        let installed = providers::ollama::parse_tags(&body)
            .map_err(|e| e.into_model_error(&self.deployment))?;
        providers::ollama::ensure_model_present(&installed, &self.target.model)
            .map_err(|e| e.into_model_error(&self.deployment))
    }
}

/// Where an attempt failed, which decides whether it is retried here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// Never connected: fail over at once.
    Connect,
    /// No first byte in time, or a stalled stream.
    Timeout,
    /// The provider answered with an error (status, or an error event in a stream).
    Provider,
    /// The answer was cut, unreadable or too large: fail over.
    Body,
    /// Before sending: our budgets, the breaker, the request itself.
    Local,
}

struct Failure {
    error: ModelError,
    class: ErrorClass,
    kind: FailKind,
}

/// An error event inside a stream is the provider speaking; anything else is a bad body.
fn stream_error_kind(e: &ProviderWireError) -> FailKind {
    match e {
        ProviderWireError::Provider { .. } => FailKind::Provider,
        _ => FailKind::Body,
    }
}

/// Whether an attempt's failure is retried here: its class decides (the policy), and only
/// timeouts and the provider's own error answers are retried in place at all.
impl Classify for Failure {
    fn class(&self) -> ErrorClass {
        self.class
    }
    fn retry_in_place(&self) -> bool {
        matches!(self.kind, FailKind::Timeout | FailKind::Provider)
    }
}

/// A call the guard ended without an answer from the provider; nothing was sent for it
/// but for a deadline passing mid-attempt.
impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        let class = refusal.class();
        let deployment = refusal.target().to_string();
        let message = match &refusal {
            Refusal::Paused { retry_in, .. } => format!(
                "paused after the provider's 429 for another {retry_in:?}, longer than this call may wait; use a sibling deployment meanwhile"
            ),
            Refusal::Limited { error, .. } => format!("this deployment's own budget: {error}"),
            Refusal::Breaker(BreakerError::Open { retry_in, .. }) => format!(
                "circuit breaker open after repeated failures; probing again in {retry_in:?}, use a sibling deployment meanwhile"
            ),
            Refusal::Breaker(BreakerError::ProbesBusy { .. }) => {
                "circuit breaker half-open, its probe is in flight; use a sibling deployment meanwhile".to_string()
            }
            Refusal::DeadlineElapsed { after, .. } => {
                format!("no answer before the call's deadline ({after:?})")
            }
            // Model calls are reads and run without a send-by instant.
            Refusal::SendByPassed { .. } => refusal.to_string(),
        };
        let kind = match refusal {
            Refusal::DeadlineElapsed { .. } => FailKind::Timeout,
            _ => FailKind::Local,
        };
        Failure {
            error: ModelError::Provider {
                deployment,
                class,
                message,
            },
            class,
            kind,
        }
    }
}

/// The deployment's retry policy: per class, the shape and count the module doc states;
/// retries counted in `orrery_model_http_retries_total{deployment, class}` as before the
/// guard.
fn retry_policy(deployment: &str, settings: &HttpSettings) -> RetryPolicy {
    let base = settings.retry_backoff;
    // No wait can be longer than the whole call; also keeps `now + wait` finite.
    let cap = settings.total_timeout;
    let backoff = |kind, multiplier, jitter| BackoffConfig {
        kind,
        base,
        multiplier,
        cap,
        jitter,
    };
    let config = RetryConfig {
        max_attempts: TIMEOUT_ATTEMPTS
            .max(OVERLOADED_ATTEMPTS)
            .max(RATE_LIMITED_ATTEMPTS),
        backoff: backoff(BackoffKind::Exponential, 2.0, 0.5),
        timeout: ClassRetry {
            max_retries: TIMEOUT_ATTEMPTS - 1,
        },
        unavailable: ClassRetry {
            max_retries: OVERLOADED_ATTEMPTS - 1,
        },
        rate_limited: RateLimitedRetry {
            max_retries: RATE_LIMITED_ATTEMPTS - 1,
            retry_after_cap: cap,
        },
    };
    RetryPolicy::new(deployment, config)
        // Exponential ×2 with jitter up to half.
        .with_class_backoff(
            RetryClass::Timeout,
            backoff(BackoffKind::Exponential, 2.0, 0.5),
        )
        // Fixed: ×1 without jitter.
        .with_class_backoff(
            RetryClass::Unavailable,
            backoff(BackoffKind::Exponential, 1.0, 0.0),
        )
        // Linear when the server names no time (its Retry-After wins otherwise).
        .with_class_backoff(
            RetryClass::RateLimited,
            backoff(BackoffKind::Linear, 1.0, 0.0),
        )
        .counted_as(METRIC_RETRIES, "deployment")
}

const METRIC_RETRIES: &str = "orrery_model_http_retries_total";

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.deployment
    }

    fn provider(&self) -> &str {
        self.kind.label()
    }

    fn model(&self) -> &str {
        &self.target.model
    }

    async fn complete(&self, req: &ModelRequest) -> Result<Completion, ModelError> {
        let deadline = deadline_after(Instant::now(), req.timeout);
        self.call(
            req,
            deadline,
            self.settings.stream,
            None,
            OnFailure::RetryInPlace,
        )
        .await
    }

    async fn complete_by(
        &self,
        req: &ModelRequest,
        deadline: Instant,
        on_failure: OnFailure,
    ) -> Result<Completion, ModelError> {
        self.call(req, deadline, self.settings.stream, None, on_failure)
            .await
    }

    async fn complete_stream(
        &self,
        req: &ModelRequest,
        on_delta: mpsc::Sender<String>,
    ) -> Result<Completion, ModelError> {
        let deadline = deadline_after(Instant::now(), req.timeout);
        self.call(
            req,
            deadline,
            true,
            Some(&on_delta),
            OnFailure::RetryInPlace,
        )
        .await
    }

    async fn complete_stream_by(
        &self,
        req: &ModelRequest,
        deadline: Instant,
        on_failure: OnFailure,
        on_delta: mpsc::Sender<String>,
    ) -> Result<Completion, ModelError> {
        self.call(req, deadline, true, Some(&on_delta), on_failure)
            .await
    }

    /// Only Ollama has a check worth a request (`/api/tags` is free and local). The
    /// hosted APIs have none that costs nothing against their rate limits; for them the
    /// breaker and the pool's consecutive-failure cooldown take a failing deployment out,
    /// and the breaker's half-open probe brings it back.
    /// Connect, first byte, body and stream reads, retry and budget waits are all cut at
    /// the deadline `call` is given.
    fn bounds_every_wait(&self) -> bool {
        true
    }

    fn health_check_interval(&self) -> Option<Duration> {
        self.settings
            .health_check_every
            .filter(|_| self.kind == ProviderKind::Ollama)
    }

    async fn health_check(&self) -> Result<(), ModelError> {
        if self.kind == ProviderKind::Ollama {
            return self.check_ollama().await;
        }
        Ok(())
    }
}

/// Describes this module's metrics (HELP lines); [`super::pool::describe`] calls it.
pub fn describe() {
    metrics::describe_counter!(
        METRIC_RETRIES,
        "Retries inside one HTTP deployment before failing over, by deployment and error class."
    );
}
