//! Bounded priority queue with aging: cancels and risk-reducing orders (High) before new
//! orders (Medium) before market data and analysis (Low).
//!
//! Owns: the three FIFO levels, their bounds, aging, and the depth / wait-time / rejection
//! metrics. Never: an unbounded buffer — a full level refuses the push with [`QueueFull`]
//! (the item comes back to the caller), and never reorders items within a level.
//!
//! Aging: an item's effective level rises one step for every `aging_step` it has waited,
//! up to High; among heads of equal effective level the oldest goes first. So a Low item
//! under sustained High load waits at most about `2 × aging_step` plus the time to drain
//! the High items queued before it — never forever. Without aging, priority is strict.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::mono::{nanos_of, Nanos, SharedMonotonic};

/// How urgent a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Cancels, closes, risk-reducing orders.
    High,
    /// New orders.
    Medium,
    /// Market data, analysis.
    Low,
}

impl Priority {
    pub const COUNT: usize = 3;
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

    /// 0 for High, 2 for Low.
    pub fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Medium => 1,
            Priority::Low => 2,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A push refused because the item's level is full; the item is handed back.
#[derive(thiserror::Error)]
#[error("queue `{queue}` is full at {priority} priority ({capacity} items waiting); the engine is overloaded: shed this work or retry later")]
pub struct QueueFull<T> {
    pub queue: String,
    pub priority: Priority,
    pub capacity: usize,
    pub item: T,
}

impl<T> std::fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueFull")
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Bounds and aging of a [`PriorityQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// Most items waiting per level, indexed by [`Priority::index`].
    pub capacity: [usize; Priority::COUNT],
    /// Wait that promotes an item one level; `None` for strict priority.
    pub aging_step: Option<Duration>,
}

/// An item taken from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popped<T> {
    pub item: T,
    /// The level it was pushed at.
    pub priority: Priority,
    pub waited: Duration,
}

pub struct PriorityQueue<T> {
    name: Arc<str>,
    bounds: QueueBounds,
    clock: SharedMonotonic,
    levels: Mutex<[VecDeque<(Nanos, T)>; Priority::COUNT]>,
    ready: Notify,
}

impl<T> std::fmt::Debug for PriorityQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriorityQueue")
            .field("name", &self.name)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

pub(crate) const METRIC_DEPTH: &str = "orrery_queue_depth";
pub(crate) const METRIC_WAIT: &str = "orrery_queue_wait_seconds";
pub(crate) const METRIC_REJECTED: &str = "orrery_queue_rejected_total";

pub(super) fn describe() {
    metrics::describe_gauge!(
        METRIC_DEPTH,
        "Items waiting in a priority queue, by queue and priority."
    );
    metrics::describe_histogram!(
        METRIC_WAIT,
        metrics::Unit::Seconds,
        "Time items waited in a priority queue, by queue and the priority they were pushed at."
    );
    metrics::describe_counter!(
        METRIC_REJECTED,
        "Pushes refused because the level was full, by queue and priority."
    );
}

impl<T> PriorityQueue<T> {
    pub fn new(name: impl Into<Arc<str>>, bounds: QueueBounds, clock: SharedMonotonic) -> Self {
        Self {
            name: name.into(),
            bounds,
            clock,
            levels: Mutex::new(Default::default()),
            ready: Notify::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds an item, or hands it back when its level is full.
    pub fn push(&self, item: T, priority: Priority) -> Result<(), QueueFull<T>> {
        let i = priority.index();
        let depth = {
            let mut levels = self.levels.lock();
            let capacity = self.bounds.capacity[i];
            if levels[i].len() >= capacity {
                drop(levels);
                metrics::counter!(METRIC_REJECTED, "queue" => self.name.clone(), "priority" => priority.label())
                    .increment(1);
                return Err(QueueFull {
                    queue: self.name.to_string(),
                    priority,
                    capacity,
                    item,
                });
            }
            levels[i].push_back((self.clock.now(), item));
            levels[i].len()
        };
        self.set_depth(priority, depth);
        self.ready.notify_one();
        Ok(())
    }

    /// Takes the next item, if any: the head with the best effective level (after aging),
    /// the oldest among equals.
    pub fn try_pop(&self) -> Option<Popped<T>> {
        let now = self.clock.now();
        let (priority, enqueued, item, depth) = {
            let mut levels = self.levels.lock();
            let mut best: Option<(usize, usize, Nanos)> = None; // (effective, level, enqueued)
            for (i, level) in levels.iter().enumerate() {
                let Some(&(at, _)) = level.front() else {
                    continue;
                };
                let effective = i.saturating_sub(self.promotions(now.saturating_sub(at)));
                let better = match best {
                    None => true,
                    Some((e, _, t)) => effective < e || (effective == e && at < t),
                };
                if better {
                    best = Some((effective, i, at));
                }
            }
            let (_, i, _) = best?;
            let (at, item) = levels[i].pop_front()?;
            (Priority::ALL[i], at, item, levels[i].len())
        };
        self.set_depth(priority, depth);
        let waited = Duration::from_nanos(now.saturating_sub(enqueued));
        metrics::histogram!(METRIC_WAIT, "queue" => self.name.clone(), "priority" => priority.label())
            .record(waited.as_secs_f64());
        Some(Popped {
            item,
            priority,
            waited,
        })
    }

    /// Waits for the next item.
    pub async fn pop(&self) -> Popped<T> {
        loop {
            let ready = self.ready.notified();
            if let Some(p) = self.try_pop() {
                return p;
            }
            ready.await;
        }
    }

    /// Waits until an item is waiting, without taking it: a consumer that must check a
    /// condition of its own first (a free slot, the target's headroom) then calls
    /// [`Self::try_pop`], so the item it takes is chosen at that moment.
    pub async fn wait_non_empty(&self) {
        loop {
            let ready = self.ready.notified();
            if !self.is_empty() {
                return;
            }
            ready.await;
        }
    }

    /// Items waiting at one level.
    pub fn len_of(&self, priority: Priority) -> usize {
        self.levels.lock()[priority.index()].len()
    }

    /// Items waiting in all levels.
    pub fn len(&self) -> usize {
        self.levels.lock().iter().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn promotions(&self, waited: Nanos) -> usize {
        match self.bounds.aging_step {
            Some(step) if !step.is_zero() => {
                usize::try_from(waited / nanos_of(step)).unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    }

    fn set_depth(&self, priority: Priority, depth: usize) {
        metrics::gauge!(METRIC_DEPTH, "queue" => self.name.clone(), "priority" => priority.label())
            .set(depth as f64);
    }
}

#[cfg(test)]
mod tests;
