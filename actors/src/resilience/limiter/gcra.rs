//! GCRA through `governor`: a burst of `burst` calls, one more every `period / burst`.
//!
//! governor reads its time from a clock adapter that returns the `now` passed to
//! [`RateLimit::try_acquire`] (through a thread-local set just before the check, which
//! runs synchronously on the same thread), so GCRA follows the caller's clock exactly
//! like every other limiter and the clock is read once per check. governor keeps its state private: it cannot give units back (so a [`LinkedLimit`]
//! checks it last) and cannot adopt the server's `remaining`; [`RateLimit::observe`] here
//! only closes a gate until the server's reset when nothing remains.
//!
//! [`LinkedLimit`]: super::LinkedLimit

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClockTrait;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos as GNanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::{wait_of, Denied, RateLimit, ServerQuota};
use crate::resilience::mono::{nanos_of, Nanos};

thread_local! {
    /// The `now` of the check running on this thread.
    static CHECK_NOW: Cell<Nanos> = const { Cell::new(0) };
}

/// Adapter: governor's clock reads the `now` of the check in progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct GovernorClock;

impl GovernorClockTrait for GovernorClock {
    type Instant = GNanos;
    fn now(&self) -> GNanos {
        GNanos::from(CHECK_NOW.with(Cell::get))
    }
}

type Inner = RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<GNanos>>;

pub struct GcraLimiter {
    inner: Inner,
    burst: u64,
    /// No admission before this time (after the server said nothing remains).
    gate: AtomicU64,
}

impl std::fmt::Debug for GcraLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcraLimiter")
            .field("burst", &self.burst)
            .finish()
    }
}

impl GcraLimiter {
    /// `burst` calls per `period`. Zero values are raised to the smallest valid quota
    /// (config validation rejects them).
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst_nz = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        // One cell every `period / burst`; at least 1 ns so the quota is valid.
        let interval = (period / burst_nz.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(burst_nz))
            .allow_burst(burst_nz);
        // governor records its start instant at construction: make it our origin, 0.
        CHECK_NOW.with(|n| n.set(0));
        Self {
            inner: RateLimiter::direct_with_clock(quota, GovernorClock),
            burst: u64::from(burst_nz.get()),
            gate: AtomicU64::new(0),
        }
    }
}

impl RateLimit for GcraLimiter {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        let gate = self.gate.load(Ordering::Relaxed);
        if now < gate {
            return Err(Denied::Wait(wait_of(u128::from(gate - now))));
        }
        let Some(n) = u32::try_from(cost).ok().and_then(NonZeroU32::new) else {
            return if cost == 0 {
                Ok(())
            } else {
                Err(Denied::Exceeds { max: self.burst })
            };
        };
        CHECK_NOW.with(|c| c.set(now));
        match self.inner.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Denied::Wait(
                not_until
                    .wait_time_from(GNanos::from(now))
                    .max(Duration::from_nanos(1)),
            )),
            Err(_) => Err(Denied::Exceeds { max: self.burst }),
        }
    }

    fn refund(&self, _cost: u64, _now: Nanos) -> bool {
        false
    }

    fn max_cost(&self) -> u64 {
        self.burst
    }

    fn headroom(&self, now: Nanos) -> Option<u64> {
        // governor does not expose its state (and a check would consume a cell).
        (now < self.gate.load(Ordering::Relaxed)).then_some(0)
    }

    fn observe(&self, quota: ServerQuota, now: Nanos) {
        if quota.remaining == 0 {
            let until = now.saturating_add(nanos_of(quota.reset_after));
            self.gate.fetch_max(until, Ordering::Relaxed);
        }
    }
}
