//! The lock-free core shared by the token and leaky buckets: a theoretical arrival time
//! (TAT) in one atomic, as in GCRA.
//!
//! The bucket's debt is `tat - now` nanoseconds (zero when `tat <= now`: the bucket is
//! full / empty of water). A call of cost `c` adds `c × interval` of debt and is admitted
//! while the debt stays within the tolerance `capacity × interval`. One compare-and-swap
//! per check keeps the uncontended check as cheap as governor's, which uses the same
//! algorithm; unlike governor this core can give units back and take the server's view.
//!
//! The per-unit interval is fixed-point with 16 fractional bits of a nanosecond, rounded
//! up, and the tolerance is the cost of a full-capacity call under the same rounding, so
//! a call never draws less than its exact share and the bucket never admits more than
//! `capacity + elapsed / interval` (within a nanosecond of slack per full-capacity call).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Denied, ServerQuota};
use crate::resilience::mono::{nanos_of, Nanos};

const FRAC_BITS: u32 = 16;

#[derive(Debug)]
pub(super) struct Tat {
    tat: AtomicU64,
    capacity: AtomicU64,
    /// Nanoseconds per `amount` units (the refill or leak period).
    period_ns: u64,
    amount: AtomicU64,
    /// Nanoseconds per unit, fixed-point, rounded up.
    interval_fp: AtomicU64,
    /// Debt allowed: the cost of `capacity` units.
    tolerance: AtomicU64,
}

/// `ceil(cost × interval_fp / 2^16)`, saturating.
fn debt_of(cost: u64, interval_fp: u64) -> u64 {
    let fp = u128::from(cost) * u128::from(interval_fp);
    let ns = (fp + ((1u128 << FRAC_BITS) - 1)) >> FRAC_BITS;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl Tat {
    /// Full bucket (no debt) at `now`. Zero values are raised to 1.
    pub(super) fn new(capacity: u64, amount: u64, period: Duration, now: Nanos) -> Self {
        let tat = Self {
            tat: AtomicU64::new(now),
            capacity: AtomicU64::new(0),
            period_ns: nanos_of(period).max(1),
            amount: AtomicU64::new(0),
            interval_fp: AtomicU64::new(0),
            tolerance: AtomicU64::new(0),
        };
        tat.set_rate(capacity.max(1), amount.max(1));
        tat
    }

    fn set_rate(&self, capacity: u64, amount: u64) {
        let fp = (u128::from(self.period_ns) << FRAC_BITS).div_ceil(u128::from(amount));
        let fp = u64::try_from(fp).unwrap_or(u64::MAX);
        self.capacity.store(capacity, Ordering::Relaxed);
        self.amount.store(amount, Ordering::Relaxed);
        self.interval_fp.store(fp, Ordering::Relaxed);
        self.tolerance
            .store(debt_of(capacity, fp), Ordering::Relaxed);
    }

    pub(super) fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// `burst`: admit while debt stays within the tolerance (token bucket, leaky meter);
    /// otherwise only when there is no debt (leaky queue: calls leave one by one).
    pub(super) fn try_acquire(&self, cost: u64, now: Nanos, burst: bool) -> Result<(), Denied> {
        let capacity = self.capacity.load(Ordering::Relaxed);
        if cost > capacity {
            return Err(Denied::Exceeds { max: capacity });
        }
        let inc = debt_of(cost, self.interval_fp.load(Ordering::Relaxed));
        let allowed = if burst {
            self.tolerance.load(Ordering::Relaxed)
        } else {
            inc
        };
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let new_tat = tat.max(now).saturating_add(inc);
            let debt = new_tat - now;
            if debt > allowed {
                return Err(Denied::Wait(Duration::from_nanos(debt - allowed)));
            }
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// Takes back the debt of a call admitted with the same cost.
    pub(super) fn refund(&self, cost: u64) {
        let inc = debt_of(cost, self.interval_fp.load(Ordering::Relaxed));
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(inc))
            });
    }

    /// Units a call could draw at `now`.
    pub(super) fn headroom(&self, now: Nanos) -> u64 {
        let debt = self.tat.load(Ordering::Acquire).saturating_sub(now);
        let free = self.tolerance.load(Ordering::Relaxed).saturating_sub(debt);
        let units = (u128::from(free) << FRAC_BITS)
            / u128::from(self.interval_fp.load(Ordering::Relaxed).max(1));
        u64::try_from(units)
            .unwrap_or(u64::MAX)
            .min(self.capacity())
    }

    /// Never more than the server's `remaining`; nothing before its reset when nothing
    /// remains (debt set so the bucket starts from empty at the reset).
    pub(super) fn observe(&self, quota: ServerQuota, now: Nanos) {
        if let Some(limit) = quota.limit.filter(|l| *l > 0) {
            let capacity = self.capacity();
            if limit != capacity {
                // Keep the period, scale the amount: the server's limit is per window.
                let amount = u128::from(self.amount.load(Ordering::Relaxed)) * u128::from(limit)
                    / u128::from(capacity.max(1));
                self.set_rate(limit, u64::try_from(amount.max(1)).unwrap_or(u64::MAX));
            }
        }
        let tolerance = self.tolerance.load(Ordering::Relaxed);
        let fp = self.interval_fp.load(Ordering::Relaxed);
        let floor = if quota.remaining == 0 {
            now.saturating_add(nanos_of(quota.reset_after))
                .saturating_add(tolerance)
        } else {
            // Debt that leaves exactly `remaining` units.
            now.saturating_add(tolerance.saturating_sub(debt_of(quota.remaining, fp)))
        };
        self.tat.fetch_max(floor, Ordering::AcqRel);
    }
}
