//! Leaky bucket: water (admitted units) drains at `leak_amount` per `leak_every`.
//!
//! As a meter, a call is admitted while the bucket has room for its cost (bursts up to
//! `capacity`). As a queue, a call is admitted only once the bucket is empty, so calls
//! leave at exactly the leak rate with no burst, and `capacity` bounds the units that may
//! wait in the [`Throttle`](super::Throttle) in front of it; past it, callers get a
//! queue-full error instead of an ever-growing backlog.
//!
//! The water level is kept as the time the bucket would be empty (see [`super::tat`]):
//! one atomic compare-and-swap per check, no lock. As a meter it admits exactly what a
//! token bucket of the same parameters admits; the two names exist because operators and
//! venue docs use both.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tat::Tat;
use super::{Denied, RateLimit, ServerQuota};
use crate::resilience::mono::Nanos;

/// How a leaky bucket admits calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakMode {
    /// Admit while there is room; bursts up to capacity.
    #[default]
    Meter,
    /// Meter calls out at the leak rate; capacity bounds the waiting units.
    Queue,
}

#[derive(Debug)]
pub struct LeakyBucket {
    mode: LeakMode,
    core: Tat,
}

impl LeakyBucket {
    /// An empty bucket. Zero parameters are raised to 1 (config validation rejects them).
    pub fn new(
        capacity: u64,
        leak_amount: u64,
        leak_every: Duration,
        mode: LeakMode,
        now: Nanos,
    ) -> Self {
        Self {
            mode,
            core: Tat::new(capacity, leak_amount, leak_every, now),
        }
    }

    pub fn mode(&self) -> LeakMode {
        self.mode
    }
}

impl RateLimit for LeakyBucket {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        self.core
            .try_acquire(cost, now, self.mode == LeakMode::Meter)
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

    fn queue_bound(&self) -> Option<u64> {
        match self.mode {
            LeakMode::Meter => None,
            LeakMode::Queue => Some(self.core.capacity()),
        }
    }
}
