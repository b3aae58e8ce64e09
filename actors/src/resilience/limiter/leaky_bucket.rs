//! Leaky bucket: water (admitted units) drains at `leak_amount` per `leak_every`.
//!
//! As a meter, a call is admitted while the bucket has room for its cost (bursts up to
//! `capacity`). As a queue, a call is admitted only once the bucket is empty, so calls
//! leave at exactly the leak rate with no burst, and `capacity` bounds the units that may
//! wait in the [`Throttle`](super::Throttle) in front of it; past it, callers get a
//! queue-full error instead of an ever-growing backlog. Units are `1 / leak_every_ns` of a
//! unit of cost, so draining is exact integer arithmetic.

use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{div_ceil_u128, wait_of, Denied, RateLimit, ServerQuota};
use crate::resilience::mono::{nanos_of, Nanos};

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
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    capacity: u64,
    leak_amount: u64,
    unit: u128,
    /// Units of water held.
    level: u128,
    last: Nanos,
}

impl State {
    fn drain(&mut self, now: Nanos) {
        if now > self.last {
            let out = u128::from(now - self.last) * u128::from(self.leak_amount);
            self.level = self.level.saturating_sub(out);
            self.last = now;
        }
    }
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
            state: Mutex::new(State {
                capacity: capacity.max(1),
                leak_amount: leak_amount.max(1),
                unit: u128::from(nanos_of(leak_every).max(1)),
                level: 0,
                last: now,
            }),
        }
    }

    pub fn mode(&self) -> LeakMode {
        self.mode
    }
}

impl RateLimit for LeakyBucket {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        let mut s = self.state.lock();
        if cost > s.capacity {
            return Err(Denied::Exceeds { max: s.capacity });
        }
        s.drain(now);
        let need = u128::from(cost) * s.unit;
        let room = match self.mode {
            LeakMode::Meter => u128::from(s.capacity) * s.unit,
            // Admit only into an empty bucket: the previous call has fully leaked out.
            LeakMode::Queue => need,
        };
        if s.level + need <= room {
            s.level += need;
            return Ok(());
        }
        let excess = s.level + need - room;
        let held = u128::from(s.last.saturating_sub(now));
        Err(Denied::Wait(wait_of(
            held + div_ceil_u128(excess, u128::from(s.leak_amount)),
        )))
    }

    fn refund(&self, cost: u64, _now: Nanos) -> bool {
        let mut s = self.state.lock();
        s.level = s.level.saturating_sub(u128::from(cost) * s.unit);
        true
    }

    fn max_cost(&self) -> u64 {
        self.state.lock().capacity
    }

    fn headroom(&self, now: Nanos) -> Option<u64> {
        let mut s = self.state.lock();
        s.drain(now);
        let room = (u128::from(s.capacity) * s.unit).saturating_sub(s.level);
        Some(u64::try_from(room / s.unit).unwrap_or(u64::MAX))
    }

    fn observe(&self, quota: ServerQuota, now: Nanos) {
        let mut s = self.state.lock();
        s.drain(now);
        if let Some(limit) = quota.limit.filter(|l| *l > 0) {
            s.capacity = limit;
        }
        let cap = u128::from(s.capacity) * s.unit;
        let server_level = cap.saturating_sub(u128::from(quota.remaining) * s.unit);
        s.level = s.level.max(server_level);
        if quota.remaining == 0 {
            s.last = s.last.max(now.saturating_add(nanos_of(quota.reset_after)));
        }
    }

    fn queue_bound(&self) -> Option<u64> {
        match self.mode {
            LeakMode::Meter => None,
            LeakMode::Queue => Some(self.state.lock().capacity),
        }
    }
}
