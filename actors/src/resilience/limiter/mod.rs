//! Rate limiters: the synchronous admission check of each algorithm, linked limits, and
//! the fair async wait on top.
//!
//! Owns: token bucket, sliding window (exact log), leaky bucket (meter or queue), GCRA (a
//! thin wrapper over `governor`), [`LinkedLimit`] (one call drawing from several pools) and
//! [`Throttle`] (async `acquire(cost, priority, deadline)`, FIFO within a priority). Never:
//! header parsing for a particular provider or venue, and never a fixed-window counter
//! (it admits twice the limit across a window edge).
//!
//! Why three algorithms are hand-written beside `governor`: governor implements GCRA only,
//! cannot give units back (a linked call denied by its second pool must return what the
//! first pool granted), cannot take the server's `remaining`/`reset` into its state, and
//! cannot express an exact sliding window. The token and leaky buckets here share a
//! lock-free TAT core (the algorithm governor uses, one compare-and-swap per check) that
//! adds refunds and server updates; the sliding window keeps its exact log in atomics with
//! a versioned compare-and-swap fast path (see its module doc). The bench `resilience`
//! compares each check against governor's.
//!
//! Every limiter takes `now` from the caller (a [`MonotonicClock`] reading), so property
//! tests drive time by hand and a linked check reads the clock once.
//!
//! [`MonotonicClock`]: super::mono::MonotonicClock

mod gcra;
mod leaky_bucket;
mod linked;
mod sliding_window;
mod tat;
mod token_bucket;
mod waiter;

pub use gcra::GcraLimiter;
pub use leaky_bucket::{LeakMode, LeakyBucket};
pub use linked::{LinkedLimit, LinkedLimitError};
pub use sliding_window::SlidingWindow;

pub use waiter::Throttle;

use std::time::Duration;

use super::mono::Nanos;

/// Why a limiter did not admit a call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Capacity may be there after this long (a hint; re-check then).
    Wait(Duration),
    /// The cost is larger than the limiter could ever admit at once.
    Exceeds { max: u64 },
}

/// What a server said about its own limit, already parsed from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerQuota {
    /// The server's limit for this pool, when it reports one.
    pub limit: Option<u64>,
    /// Units left in the server's current window.
    pub remaining: u64,
    /// Time until the server's window resets (or its bucket is full again).
    pub reset_after: Duration,
}

/// A synchronous, non-blocking rate-limit check. Implementations are shared between
/// threads and never block beyond a short mutex section.
pub trait RateLimit: Send + Sync + std::fmt::Debug {
    /// Admits `cost` units at `now`, or says why not.
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied>;

    /// Gives back `cost` units granted by a `try_acquire(cost, now)` with the same `now`,
    /// exactly as if that call had not happened. Returns false if this algorithm cannot
    /// give units back (GCRA); a [`LinkedLimit`] then checks it last.
    fn refund(&self, cost: u64, now: Nanos) -> bool;

    /// Largest cost one call may have.
    fn max_cost(&self) -> u64;

    /// Units that could be admitted at `now` (for the headroom metric); `None` when the
    /// algorithm cannot tell without consuming capacity.
    fn headroom(&self, now: Nanos) -> Option<u64>;

    /// Brings local state in line with the server's view: never admits more than the
    /// server says remains, and admits nothing before its reset when nothing remains.
    /// After that the limiter's own rate applies again (conservative: a server whose
    /// window resets in full is not trusted to have done so).
    fn observe(&self, quota: ServerQuota, now: Nanos);

    /// Most units the limiter may hold back for queued callers (leaky bucket as a queue);
    /// `None` if the wait queue is unbounded by the algorithm itself.
    fn queue_bound(&self) -> Option<u64> {
        None
    }
}

/// Errors of an async acquire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("rate limit `{limit}`: a call costing {cost} can never pass (at most {max} at once); lower the endpoint's weight or raise the limit")]
    CostExceedsCapacity { limit: String, cost: u64, max: u64 },
    #[error("rate limit `{limit}`: capacity for a call costing {cost} comes in {wait:?}, after the caller's deadline ({left:?} left); retry later or give the call a longer deadline")]
    WouldPassDeadline {
        limit: String,
        cost: u64,
        wait: Duration,
        left: Duration,
    },
    #[error("rate limit `{limit}`: {queued} units already wait (bound {bound}); the target is overloaded, shed this call or retry later")]
    QueueFull {
        limit: String,
        queued: u64,
        bound: u64,
    },
    #[error("rate limit `{limit}` has no endpoint `{endpoint}`; add it under the target's `endpoints` or use a configured one")]
    UnknownEndpoint { limit: String, endpoint: String },
}

pub(crate) const METRIC_WAIT: &str = "orrery_ratelimit_wait_seconds";
pub(crate) const METRIC_REJECTED: &str = "orrery_ratelimit_rejected_total";
pub(crate) const METRIC_HEADROOM: &str = "orrery_ratelimit_headroom_units";

pub(super) fn describe() {
    metrics::describe_histogram!(
        METRIC_WAIT,
        metrics::Unit::Seconds,
        "Time a call waited for rate-limit capacity, by limit."
    );
    metrics::describe_counter!(
        METRIC_REJECTED,
        "Calls refused by a rate limit, by limit and reason (deadline, queue_full, cost)."
    );
    metrics::describe_gauge!(
        METRIC_HEADROOM,
        "Units a rate limit could admit right now, by limit (sampled after each admission and each server quota)."
    );
}

/// Nanoseconds as a `Duration`.
pub(crate) fn wait_of(ns: u128) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
