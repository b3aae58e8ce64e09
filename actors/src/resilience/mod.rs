//! Resilience building blocks shared by model pools and exchange connectors: rate limiters,
//! priority queue, circuit breakers, retry policies and fallback levels.
//!
//! Owns: the algorithms and their runtime state, their configuration (validated with key
//! paths), the persisted breaker state, and the metrics they export. Never: wire formats or
//! provider/venue-specific header names (those live with each provider or venue module,
//! which turns them into [`ServerQuota`] and [`ErrorClass`] values), and never sends a
//! request itself — callers wrap their own calls.
//!
//! How a model pool or exchange connector uses the kit, per call:
//! 1. `limits.acquire(endpoint, priority, deadline).await?` — waits fairly for rate budget
//!    ([`RateLimits`], built from [`ResilienceConfig`]);
//! 2. `let permit = breaker.check()?` — refuses fast while the target is failing
//!    ([`CircuitBreaker`]);
//! 3. the send itself, inside [`RetryPolicy::run`] (bounded by the request deadline), with
//!    `permit.record(...)` after each attempt and `limits.observe(...)` with what the server
//!    reported;
//! 4. reads go through a [`FallbackChain`] so a failing target degrades to cached data, a
//!    sibling, or a safe default.

mod class;

pub mod breaker;
pub mod config;
pub mod fallback;
pub mod limiter;
pub mod mono;
pub mod priority;
pub mod retry;

pub use breaker::{BreakerError, BreakerRecord, BreakerState, CircuitBreaker, Permit};
pub use class::ErrorClass;
pub use config::{RateLimits, ResilienceConfig};
pub use fallback::{FallbackChain, FallbackError, FallbackLevel, Served};
pub use limiter::{Denied, LimitError, RateLimit, ServerQuota, Throttle};
pub use mono::{ManualMonotonic, MonotonicClock, Nanos, SharedMonotonic, TokioClock};
pub use priority::{Priority, PriorityQueue, QueueFull};
pub use retry::{parse_retry_after, Classify, RetryError, RetryPolicy};

/// Describes every metric this module exports (HELP text). Call once after the process
/// installs its recorder; never installs one itself.
pub fn describe() {
    limiter::describe();
    priority::describe();
    breaker::describe();
    fallback::describe();
    retry::describe();
}
