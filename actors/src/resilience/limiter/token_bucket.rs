//! Token bucket: holds up to `capacity` tokens, refilled by `refill_amount` every
//! `refill_every`, continuously.
//!
//! Kept as the time at which the bucket would be full again (see [`super::tat`]): one
//! atomic compare-and-swap per check, no lock.

use std::time::Duration;

use super::tat::Tat;
use super::{Denied, RateLimit, ServerQuota};
use crate::resilience::mono::Nanos;

#[derive(Debug)]
pub struct TokenBucket {
    core: Tat,
}

impl TokenBucket {
    /// A full bucket. `capacity`, `refill_amount` and `refill_every` must be non-zero
    /// (config validation guarantees it; zero values are raised to 1 unit here).
    pub fn new(capacity: u64, refill_amount: u64, refill_every: Duration, now: Nanos) -> Self {
        Self {
            core: Tat::new(capacity, refill_amount, refill_every, now),
        }
    }
}

impl RateLimit for TokenBucket {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        self.core.try_acquire(cost, now, true)
    }

    fn refund(&self, cost: u64, _now: Nanos) -> bool {
        self.core.refund(cost);
        true
    }

    fn max_cost(&self) -> u64 {
        self.core.capacity()
    }

    fn headroom(&self, now: Nanos) -> Option<u64> {
        Some(self.core.headroom(now))
    }

    fn observe(&self, quota: ServerQuota, now: Nanos) {
        self.core.observe(quota, now);
    }
}
