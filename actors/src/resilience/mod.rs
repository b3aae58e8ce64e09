//! Resilience building blocks shared by model pools and exchange connectors: rate limiters,
//! priority queue, circuit breakers, retry policies, fallback levels, and the guard that
//! composes them around every outbound call.
//!
//! Owns: the algorithms and their runtime state, their configuration (validated with key
//! paths), the persisted breaker state, and the metrics they export. Never: wire formats or
//! provider/venue-specific header names (those live with each provider or venue module,
//! which turns them into [`ServerQuota`] and [`ErrorClass`] values), and never sends a
//! request itself — callers wrap their own calls.
//!
//! How a model pool or exchange connector uses the kit. At start, from its config section:
//! `let kit = cfg.resilience.build(name, TokioClock::shared(), system_clock(), Some(breakers))?`
//! (validated earlier with `cfg.resilience.validate(path, &mut issues)`), and one
//! [`Guard`] over the kit's breaker and retry policy. Per call, one path for every user
//! (the Hyperliquid and Binance venues, the HTTP model provider):
//!
//! ```text
//! let deadline = Instant::now() + request.timeout;
//! guard.run(GuardedCall::read("l2Book", deadline),          // or ::state_change(..)
//!     |until| kit.limits.acquire("info", 2, Priority::Low, until),   // limiter draw
//!     |_| async {                                                   // one attempt
//!         let result = send(&request).await;
//!         if let Some(q) = quota_from(&response_headers) {          // provider code
//!             kit.limits.observe("weight", q);
//!         }
//!         if status == 429 { guard.pause(retry_after, "HTTP 429"); } // pause gate
//!         result
//!     }).await
//! ```
//!
//! The guard passes the pause gate (a state change is refused at once during a pause, a
//! read waits if it ends before its deadline), draws from the limiter, asks the breaker,
//! makes the attempt, reports it to the breaker, and retries a read per error class
//! within the deadline; a state change is sent at most once. The attempt's error type
//! implements [`Classify`] (limit, breaker and transport errors mapped to an
//! [`ErrorClass`]; e.g. an open breaker is `Unavailable`, a limit wait past the deadline
//! is `RateLimited`) and `From<Refusal>`. Reads wrap the above in
//! `fallback.read(key, primary, siblings)` ([`FallbackChain`]) so a failing target
//! degrades to cached data, a sibling, or a safe default; orders never do. Work queued
//! before the send (the order gateway's pending orders) waits in a [`PriorityQueue`].

mod class;

pub mod breaker;
pub mod config;
pub mod fallback;
pub mod guard;
pub mod limiter;
pub mod mono;
pub mod priority;
pub mod retry;

#[cfg(test)]
pub(crate) mod test_recorder;

pub use breaker::{
    BreakerBoard, BreakerError, BreakerRecord, BreakerState, CircuitBreaker, LocalOpening,
    PeerOpening, Permit,
};
pub use class::ErrorClass;
pub use config::{RateLimits, ResilienceConfig, TargetResilience};
pub use fallback::{FallbackChain, FallbackError, FallbackLevel, Served};
pub use guard::{Effect, Guard, GuardedCall, PauseGate, Refusal};
pub use limiter::{Denied, LimitError, RateLimit, ServerQuota, Throttle};
pub use mono::{
    ManualMonotonic, MonotonicClock, Nanos, QuantaMonotonic, SharedMonotonic, TokioClock,
};
pub use priority::{Priority, PriorityQueue, QueueFull};
pub use retry::{parse_retry_after, Classify, RetryClass, RetryError, RetryPolicy};

/// Describes every metric this module exports (HELP text). Call once after the process
/// installs its recorder; never installs one itself.
pub fn describe() {
    limiter::describe();
    priority::describe();
    breaker::describe();
    fallback::describe();
    retry::describe();
}
