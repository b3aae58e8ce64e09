//! Linked limits: one call draws from several pools at once (for example request weight
//! per minute and orders per second), and is admitted only if every pool admits it.
//!
//! Members are checked in order and, on the first denial, the pools already drawn from
//! get their units back ([`RateLimit::refund`]), so a denied call costs nothing anywhere.
//! A member that cannot refund (GCRA) is checked last, which is why a group may hold at
//! most one.

use std::sync::Arc;

use super::{Denied, RateLimit, ServerQuota};
use crate::resilience::mono::Nanos;

/// A limit made of several pools, each charged its own weight per unit of cost.
#[derive(Debug, Clone)]
pub struct LinkedLimit {
    /// (pool, weight charged per unit of cost); non-refunding pool, if any, last.
    members: Vec<(Arc<dyn RateLimit>, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkedLimitError {
    #[error("linked limit has {0} pools that cannot give units back (gcra); allowed: at most one per endpoint, use token_bucket or sliding_window for the others")]
    TooManyNonRefunding(usize),
    #[error("linked limit has no pools; configure at least one limit for the endpoint")]
    Empty,
    /// A pool's `shared` scope cannot be drawn from (see `crate::cluster::limits`).
    #[error("{0}")]
    Shared(String),
}

impl LinkedLimit {
    /// `members`: (pool, weight) pairs; `refundable[i]` says whether pool `i` can give
    /// units back. Pass `false` for a [`super::GcraLimiter`].
    pub fn new(members: Vec<(Arc<dyn RateLimit>, u64, bool)>) -> Result<Self, LinkedLimitError> {
        if members.is_empty() {
            return Err(LinkedLimitError::Empty);
        }
        let non_refunding = members.iter().filter(|m| !m.2).count();
        if non_refunding > 1 {
            return Err(LinkedLimitError::TooManyNonRefunding(non_refunding));
        }
        let mut members = members;
        // Stable: refundable pools keep their order, the non-refunding one goes last.
        members.sort_by_key(|m| !m.2);
        Ok(Self {
            members: members.into_iter().map(|(l, w, _)| (l, w)).collect(),
        })
    }

    pub fn members(&self) -> impl Iterator<Item = (&Arc<dyn RateLimit>, u64)> {
        self.members.iter().map(|(l, w)| (l, *w))
    }
}

impl RateLimit for LinkedLimit {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        for (i, (pool, weight)) in self.members.iter().enumerate() {
            if let Err(denied) = pool.try_acquire(cost.saturating_mul(*weight), now) {
                for (drawn, w) in &self.members[..i] {
                    drawn.refund(cost.saturating_mul(*w), now);
                }
                return Err(match denied {
                    // Report the largest cost this group admits, in the caller's units.
                    Denied::Exceeds { .. } => Denied::Exceeds {
                        max: self.max_cost(),
                    },
                    wait => wait,
                });
            }
        }
        Ok(())
    }

    fn refund(&self, cost: u64, now: Nanos) -> bool {
        let mut all = true;
        for (pool, weight) in &self.members {
            all &= pool.refund(cost.saturating_mul(*weight), now);
        }
        all
    }

    fn max_cost(&self) -> u64 {
        self.members
            .iter()
            .map(|(l, w)| if *w == 0 { u64::MAX } else { l.max_cost() / w })
            .min()
            .unwrap_or(0)
    }

    fn headroom(&self, now: Nanos) -> Option<u64> {
        self.members
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(l, w)| l.headroom(now).map(|h| h / w))
            .try_fold(u64::MAX, |acc, h| h.map(|h| acc.min(h)))
    }

    /// A linked group has no server view of its own; observe each pool instead.
    fn observe(&self, _quota: ServerQuota, _now: Nanos) {}

    fn queue_bound(&self) -> Option<u64> {
        self.members
            .iter()
            .filter_map(|(l, w)| {
                l.queue_bound()
                    .map(|b| if *w == 0 { u64::MAX } else { b / w })
            })
            .min()
    }
}
