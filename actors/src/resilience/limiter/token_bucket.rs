//! Token bucket: holds up to `capacity` tokens, refilled by `refill_amount` every
//! `refill_every`, continuously.
//!
//! Tokens are counted in units of `1 / refill_every_ns` of a token, so refill is exact
//! integer arithmetic (`elapsed_ns * refill_amount` units) and never drifts.

use std::time::Duration;

use parking_lot::Mutex;

use super::{div_ceil_u128, wait_of, Denied, RateLimit, ServerQuota};
use crate::resilience::mono::{nanos_of, Nanos};

#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    capacity: u64,
    refill_amount: u64,
    /// Nanoseconds per `refill_amount` tokens; also the number of units in one token.
    unit: u128,
    /// Units held.
    level: u128,
    /// Time up to which refill has been credited; may lie in the future after the server
    /// said nothing remains until its reset.
    last: Nanos,
}

impl State {
    fn refill(&mut self, now: Nanos) {
        if now > self.last {
            let add = u128::from(now - self.last) * u128::from(self.refill_amount);
            self.level = (self.level + add).min(u128::from(self.capacity) * self.unit);
            self.last = now;
        }
    }
}

impl TokenBucket {
    /// A full bucket. `capacity`, `refill_amount` and `refill_every` must be non-zero
    /// (config validation guarantees it; zero values are raised to 1 unit here).
    pub fn new(capacity: u64, refill_amount: u64, refill_every: Duration, now: Nanos) -> Self {
        let capacity = capacity.max(1);
        let unit = u128::from(nanos_of(refill_every).max(1));
        Self {
            state: Mutex::new(State {
                capacity,
                refill_amount: refill_amount.max(1),
                unit,
                level: u128::from(capacity) * unit,
                last: now,
            }),
        }
    }
}

impl RateLimit for TokenBucket {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        let mut s = self.state.lock();
        if cost > s.capacity {
            return Err(Denied::Exceeds { max: s.capacity });
        }
        s.refill(now);
        let need = u128::from(cost) * s.unit;
        if s.level >= need {
            s.level -= need;
            return Ok(());
        }
        let deficit = need - s.level;
        let held = u128::from(s.last.saturating_sub(now));
        Err(Denied::Wait(wait_of(
            held + div_ceil_u128(deficit, u128::from(s.refill_amount)),
        )))
    }

    fn refund(&self, cost: u64, _now: Nanos) -> bool {
        let mut s = self.state.lock();
        let cap = u128::from(s.capacity) * s.unit;
        s.level = (s.level + u128::from(cost) * s.unit).min(cap);
        true
    }

    fn max_cost(&self) -> u64 {
        self.state.lock().capacity
    }

    fn headroom(&self, now: Nanos) -> Option<u64> {
        let mut s = self.state.lock();
        s.refill(now);
        Some(u64::try_from(s.level / s.unit).unwrap_or(u64::MAX))
    }

    fn observe(&self, quota: ServerQuota, now: Nanos) {
        let mut s = self.state.lock();
        s.refill(now);
        if let Some(limit) = quota.limit.filter(|l| *l > 0) {
            // Keep the refill period, scale the amount: the server's limit is per window.
            if limit != s.capacity {
                s.refill_amount = (u128::from(s.refill_amount) * u128::from(limit)
                    / u128::from(s.capacity))
                .clamp(1, u128::from(u64::MAX)) as u64;
                s.capacity = limit;
            }
        }
        let cap = u128::from(s.capacity) * s.unit;
        s.level = s.level.min(u128::from(quota.remaining) * s.unit).min(cap);
        if quota.remaining == 0 {
            s.last = s.last.max(now.saturating_add(nanos_of(quota.reset_after)));
        }
    }
}
