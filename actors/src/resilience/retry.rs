//! Retry with backoff, per error class, bounded by the caller's deadline.
//!
//! Owns: the backoff schedules (exponential, linear, fibonacci, all with jitter), the
//! per-class policy, `Retry-After` parsing, and the retry loop (backon's, driven by our
//! schedule through `when` / `adjust`). Never: decides the class of an error (the provider
//! or venue module does, via [`Classify`]) and never retries a non-idempotent send — the
//! order path resolves unknown outcomes by querying the venue, not by resending.
//!
//! Policy per class:
//! - timeout, unavailable/overloaded: retried up to their `max_retries` with backoff;
//! - rate limited: retried after the server's `Retry-After` (capped by
//!   `retry_after_cap`), or after the backoff when the server gave none;
//! - auth/permission and bad request: never retried — retrying cannot help and may lock a
//!   key. Not configurable on purpose.
//!
//! Every attempt runs under the caller's deadline, and a retry whose wait would end at or
//! after the deadline (or within the timer's last millisecond tick before it, since the
//! wake-up may round onto it) is not started: the caller gets the last error at once.

use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::class::ErrorClass;
use super::config::{BackoffConfig, RetryConfig};

/// Resolution of tokio's timer wheel; a sleep wakes up to this much after its end.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Errors that can say which [`ErrorClass`] they belong to.
pub trait Classify {
    fn class(&self) -> ErrorClass;

    /// Whether another attempt at the same target may help, beside what the class says.
    /// `false` for a failure the caller wants moved elsewhere at once although its class
    /// is retriable (a refused connection, a stream cut after text reached the reader, a
    /// call the guard refused before sending).
    fn retry_in_place(&self) -> bool {
        true
    }
}

impl Classify for ErrorClass {
    fn class(&self) -> ErrorClass {
        *self
    }
}

/// A cost that can never pass (or an unknown endpoint) is a bad request; waiting past the
/// deadline is rate limiting with the known wait (so the loop sees that a retry cannot
/// fit); a full wait queue is overload.
impl Classify for super::limiter::LimitError {
    fn class(&self) -> ErrorClass {
        use super::limiter::LimitError as L;
        match self {
            L::CostExceedsCapacity { .. } | L::UnknownEndpoint { .. } => ErrorClass::BadRequest,
            L::WouldPassDeadline { wait, .. } => ErrorClass::RateLimited {
                retry_after: Some(*wait),
            },
            L::QueueFull { .. } => ErrorClass::Unavailable,
        }
    }
}

/// An open breaker is the target being unavailable; the router moves to a sibling.
impl Classify for super::breaker::BreakerError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
}

/// Growth of the wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// `base × multiplier^n`.
    #[default]
    Exponential,
    /// `base × (n + 1)`.
    Linear,
    /// `base × fib(n + 1)`: 1, 1, 2, 3, 5, ...
    Fibonacci,
}

/// The waits before retries 1, 2, 3, ... of one call; an iterator backon consumes.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: BackoffKind,
    base: Duration,
    multiplier: f64,
    cap: Duration,
    jitter: f64,
    /// Retries taken so far.
    n: u32,
    fib: (u64, u64),
}

impl Schedule {
    pub fn new(
        kind: BackoffKind,
        base: Duration,
        multiplier: f64,
        cap: Duration,
        jitter: f64,
    ) -> Self {
        Self {
            kind,
            base,
            multiplier,
            cap,
            jitter: jitter.clamp(0.0, 1.0),
            n: 0,
            fib: (1, 1),
        }
    }

    /// The un-jittered wait before retry `n + 1`.
    fn nominal(&mut self) -> Duration {
        let base = self.base.as_secs_f64();
        let secs = match self.kind {
            BackoffKind::Exponential => base * self.multiplier.powi(self.n.min(1024) as i32),
            BackoffKind::Linear => base * f64::from(self.n + 1),
            BackoffKind::Fibonacci => {
                let f = self.fib.0;
                self.fib = (self.fib.1, self.fib.0.saturating_add(self.fib.1));
                base * f as f64
            }
        };
        let cap = self.cap.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(cap) } else { cap })
    }
}

impl Iterator for Schedule {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let nominal = self.nominal();
        self.n = self.n.saturating_add(1);
        // Jitter only shortens the wait (never past the cap): `jitter = 0.5` waits
        // between half and all of the nominal time, spreading clients that failed together.
        let factor = 1.0 - self.jitter * rand::thread_rng().gen::<f64>();
        Some(nominal.mul_f64(factor))
    }
}

/// A call that failed for good.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    #[error("{class} error is never retried (after {attempts} attempt(s)): {error}")]
    NotRetryable {
        class: &'static str,
        attempts: u32,
        error: E,
    },
    #[error("gave up after {attempts} attempt(s), the retry budget for {class} errors is spent: {error}")]
    Exhausted {
        class: &'static str,
        attempts: u32,
        error: E,
    },
    #[error("gave up after {attempts} attempt(s): the next retry would pass the caller's deadline; last error: {error}")]
    WouldPassDeadline { attempts: u32, error: E },
    #[error("the caller's deadline passed during attempt {attempts}; give the call a longer deadline or check the target's latency")]
    DeadlineElapsed { attempts: u32 },
}

impl<E> RetryError<E> {
    /// The last error from the target, if an attempt finished.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            RetryError::NotRetryable { error, .. }
            | RetryError::Exhausted { error, .. }
            | RetryError::WouldPassDeadline { error, .. } => Some(error),
            RetryError::DeadlineElapsed { .. } => None,
        }
    }

    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::NotRetryable { attempts, .. }
            | RetryError::Exhausted { attempts, .. }
            | RetryError::WouldPassDeadline { attempts, .. }
            | RetryError::DeadlineElapsed { attempts } => *attempts,
        }
    }
}

pub(crate) const METRIC_RETRIES: &str = "orrery_retry_attempts_total";

pub(super) fn describe() {
    metrics::describe_counter!(
        METRIC_RETRIES,
        "Retries started after a failed attempt, by target and error class."
    );
}

/// A target's retry policy, built from [`RetryConfig`].
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    target: String,
    config: RetryConfig,
    /// Per class (timeout, unavailable, rate limited): its own schedule instead of the
    /// shared `config.backoff` one.
    class_backoff: [Option<BackoffConfig>; 3],
    /// The counter of retries and its target label (`orrery_retry_attempts_total{target}`
    /// unless a user of the kit keeps a name of its own).
    metric: &'static str,
    metric_label: &'static str,
}

/// Which retriable class a per-class setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    Timeout,
    Unavailable,
    RateLimited,
}

impl RetryClass {
    fn slot(self) -> usize {
        match self {
            RetryClass::Timeout => 0,
            RetryClass::Unavailable => 1,
            RetryClass::RateLimited => 2,
        }
    }
}

/// One attempt's failure, as seen by the loop.
enum Attempt<E> {
    Failed(E),
    DeadlineElapsed,
}

#[derive(Default)]
struct LoopState {
    attempts: u32,
    /// Retries taken per class: timeout, unavailable, rate limited.
    used: [u32; 3],
    stop: Option<Stop>,
}

/// Why the loop stopped retrying (set by the `when` / `adjust` hooks).
#[derive(Clone, Copy)]
enum Stop {
    NotRetryable(&'static str),
    Exhausted(&'static str),
    Deadline,
}

impl RetryPolicy {
    pub fn new(target: impl Into<String>, config: RetryConfig) -> Self {
        Self {
            target: target.into(),
            config,
            class_backoff: [None, None, None],
            metric: METRIC_RETRIES,
            metric_label: "target",
        }
    }

    /// Waits before retries of `class` follow `backoff` (its own count of retries)
    /// rather than the shared schedule.
    pub fn with_class_backoff(mut self, class: RetryClass, backoff: BackoffConfig) -> Self {
        self.class_backoff[class.slot()] = Some(backoff);
        self
    }

    /// Counts retries in `metric{label=<target>, class}` instead of
    /// `orrery_retry_attempts_total{target, class}` (a user whose counter predates the kit
    /// keeps its name).
    pub fn counted_as(mut self, metric: &'static str, label: &'static str) -> Self {
        self.metric = metric;
        self.metric_label = label;
        self
    }

    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Retries left for a class after `used` retries of that class; 0 for classes never
    /// retried.
    fn budget(&self, class: &ErrorClass) -> u32 {
        let c = &self.config;
        match class {
            ErrorClass::Timeout => c.timeout.max_retries,
            ErrorClass::Unavailable => c.unavailable.max_retries,
            ErrorClass::RateLimited { .. } => c.rate_limited.max_retries,
            ErrorClass::Auth | ErrorClass::BadRequest => 0,
        }
    }

    /// Runs `op` until it succeeds, its error is not retryable, the retry budget is
    /// spent, or the next wait would pass `deadline`. Each attempt is cut at `deadline`.
    pub async fn run<T, E, F, Fut>(&self, deadline: Instant, op: F) -> Result<T, RetryError<E>>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_within(deadline, deadline, op).await
    }

    /// [`Self::run`] whose waits between attempts must end before `waits_until` (at most
    /// `deadline`): a model deployment keeps the rest of its deadline for the router's
    /// failover. Each attempt is still cut at `deadline`.
    pub async fn run_within<T, E, F, Fut>(
        &self,
        deadline: Instant,
        waits_until: Instant,
        mut op: F,
    ) -> Result<T, RetryError<E>>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        use backon::Retryable;

        let waits_until = waits_until.min(deadline);
        // Per-class schedules, each counting only its own class's retries.
        let class_schedules = parking_lot::Mutex::new(
            self.class_backoff
                .clone()
                .map(|b| b.map(|b| Schedule::new(b.kind, b.base, b.multiplier, b.cap, b.jitter))),
        );

        // Shared by the attempt closure and the `when` / `adjust` hooks; a mutex rather
        // than cells so the returned future stays `Send`. Never held across an await.
        let state = parking_lot::Mutex::new(LoopState::default());
        let c = &self.config;
        let schedule = Schedule::new(
            c.backoff.kind,
            c.backoff.base,
            c.backoff.multiplier,
            c.backoff.cap,
            c.backoff.jitter,
        )
        .take(c.max_attempts.saturating_sub(1) as usize);

        let result = (|| {
            state.lock().attempts += 1;
            let attempt = op();
            async move {
                match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(Attempt::Failed(e)),
                    Err(_) => Err(Attempt::DeadlineElapsed),
                }
            }
        })
        .retry(schedule)
        .when(|e: &Attempt<E>| {
            let Attempt::Failed(e) = e else { return false };
            let class = e.class();
            let mut st = state.lock();
            let Some(slot) = class_slot(&class).filter(|_| e.retry_in_place()) else {
                st.stop = Some(Stop::NotRetryable(class.label()));
                return false;
            };
            if st.used[slot] >= self.budget(&class) {
                st.stop = Some(Stop::Exhausted(class.label()));
                return false;
            }
            st.used[slot] += 1;
            true
        })
        .adjust(|e: &Attempt<E>, backoff: Option<Duration>| {
            let Some(backoff) = backoff else {
                if let Attempt::Failed(e) = e {
                    state.lock().stop = Some(Stop::Exhausted(e.class().label()));
                }
                return None;
            };
            let mut wait = backoff;
            let class = match e {
                Attempt::Failed(e) => e.class(),
                Attempt::DeadlineElapsed => return None,
            };
            if let Some(own) = class_slot(&class)
                .and_then(|slot| class_schedules.lock()[slot].as_mut().and_then(Iterator::next))
            {
                wait = own;
            }
            if let ErrorClass::RateLimited { retry_after: Some(after) } = class {
                wait = after.min(c.rate_limited.retry_after_cap);
            }
            // tokio's timers wake on whole-millisecond ticks, rounding up (by less than
            // `TIMER_TICK`): a wait that ends within the last tick before the deadline
            // could wake at or after it and start an attempt there.
            if Instant::now() + wait + TIMER_TICK >= waits_until {
                state.lock().stop = Some(Stop::Deadline);
                return None;
            }
            metrics::counter!(self.metric, self.metric_label => self.target.clone(), "class" => class.label())
                .increment(1);
            tracing::debug!(target_name = %self.target, class = class.label(), ?wait, "retrying after a failed attempt");
            Some(wait)
        })
        .await;

        let LoopState { attempts, stop, .. } = state.into_inner();
        match result {
            Ok(v) => Ok(v),
            Err(Attempt::DeadlineElapsed) => Err(RetryError::DeadlineElapsed { attempts }),
            Err(Attempt::Failed(error)) => Err(match stop {
                Some(Stop::NotRetryable(class)) => RetryError::NotRetryable {
                    class,
                    attempts,
                    error,
                },
                Some(Stop::Deadline) => RetryError::WouldPassDeadline { attempts, error },
                Some(Stop::Exhausted(class)) => RetryError::Exhausted {
                    class,
                    attempts,
                    error,
                },
                None => RetryError::Exhausted {
                    class: error.class().label(),
                    attempts,
                    error,
                },
            }),
        }
    }
}

fn class_slot(class: &ErrorClass) -> Option<usize> {
    match class {
        ErrorClass::Timeout => Some(0),
        ErrorClass::Unavailable => Some(1),
        ErrorClass::RateLimited { .. } => Some(2),
        ErrorClass::Auth | ErrorClass::BadRequest => None,
    }
}

/// Parses a `Retry-After` value — delay seconds (`"120"`, `"1.5"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`) — into a wait from `now`, at most `cap`. A date in
/// the past means "now" (zero). Unreadable or negative values give `None`: the caller
/// falls back to its backoff.
pub fn parse_retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::from_secs_f64(secs.min(cap.as_secs_f64())));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(cap))
}

/// Builds a [`super::ServerQuota`] from generic remaining / reset values (reset as delay
/// seconds or an HTTP date). Provider-specific header names stay with the provider.
pub fn parse_server_quota(
    limit: Option<&str>,
    remaining: &str,
    reset: &str,
    now: SystemTime,
    cap: Duration,
) -> Option<super::ServerQuota> {
    let remaining = remaining.trim().parse::<u64>().ok()?;
    let reset_after = parse_retry_after(reset, now, cap)?;
    let limit = limit.and_then(|l| l.trim().parse::<u64>().ok());
    Some(super::ServerQuota {
        limit,
        remaining,
        reset_after,
    })
}

#[cfg(test)]
mod tests;
