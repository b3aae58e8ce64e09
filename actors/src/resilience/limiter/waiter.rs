//! Fair async acquire on top of any [`RateLimit`].
//!
//! Callers that cannot pass at once wait in FIFO order within their [`Priority`]; only
//! the head of the highest non-empty level asks the limiter again, so a newcomer never
//! overtakes a caller that waits for the same capacity. A call fails at once when the
//! limiter's wait hint already passes its deadline, and otherwise no later than the
//! deadline. Waiting uses tokio timers, so `tokio::time::pause` drives it in tests.
//! Dropping an `acquire` future leaves the queue cleanly (the next caller is woken).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Denied, LimitError, RateLimit, ServerQuota, METRIC_HEADROOM, METRIC_REJECTED, METRIC_WAIT,
};
use crate::resilience::mono::SharedMonotonic;
use crate::resilience::priority::Priority;

/// A named limiter with a fair wait queue in front of it.
pub struct Throttle {
    name: Arc<str>,
    limiter: Arc<dyn RateLimit>,
    clock: SharedMonotonic,
    queue_bound: Option<u64>,
    waiters: Mutex<Waiters>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("name", &self.name)
            .field("limiter", &self.limiter)
            .finish()
    }
}

#[derive(Default)]
struct Waiters {
    levels: [VecDeque<Entry>; Priority::COUNT],
    queued: u64,
    next_id: u64,
}

struct Entry {
    id: u64,
    cost: u64,
    wake: Arc<Notify>,
}

impl Waiters {
    fn head(&self) -> Option<&Entry> {
        self.levels.iter().find_map(|l| l.front())
    }
    fn is_empty(&self) -> bool {
        self.levels.iter().all(|l| l.is_empty())
    }
    fn remove(&mut self, id: u64, level: usize) {
        if let Some(pos) = self.levels[level].iter().position(|e| e.id == id) {
            if let Some(e) = self.levels[level].remove(pos) {
                self.queued -= e.cost;
            }
        }
    }
    fn wake_head(&self) {
        if let Some(h) = self.head() {
            h.wake.notify_one();
        }
    }
}

/// Removes a waiter that leaves early (deadline, error, or its future dropped).
struct Queued<'a> {
    throttle: &'a Throttle,
    id: u64,
    level: usize,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let mut w = self.throttle.waiters.lock();
        let was_head = w.head().is_some_and(|h| h.id == self.id);
        w.remove(self.id, self.level);
        if was_head {
            w.wake_head();
        }
    }
}

enum Step {
    Sleep(Duration),
    Park,
}

impl Throttle {
    pub fn new(
        name: impl Into<Arc<str>>,
        limiter: Arc<dyn RateLimit>,
        clock: SharedMonotonic,
    ) -> Self {
        let queue_bound = limiter.queue_bound();
        Self {
            name: name.into(),
            limiter,
            clock,
            queue_bound,
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limiter(&self) -> &Arc<dyn RateLimit> {
        &self.limiter
    }

    /// Callers waiting now.
    pub fn waiting(&self) -> usize {
        self.waiters.lock().levels.iter().map(VecDeque::len).sum()
    }

    /// Admits `cost` now if nobody waits and the limiter agrees; never waits. While
    /// callers are queued the hint is a nominal 1 ms: ask again or use [`Self::acquire`].
    pub fn try_acquire(&self, cost: u64) -> Result<(), Denied> {
        let w = self.waiters.lock();
        if !w.is_empty() {
            // Callers already wait for this capacity; taking it would overtake them.
            return Err(Denied::Wait(Duration::from_millis(1)));
        }
        self.limiter.try_acquire(cost, self.clock.now())
    }

    /// Passes the server's view to the limiter and samples the headroom gauge.
    pub fn observe(&self, quota: ServerQuota) {
        let now = self.clock.now();
        self.limiter.observe(quota, now);
        self.sample_headroom();
        // Capacity may have grown; let the head look again.
        self.waiters.lock().wake_head();
    }

    /// Sets the headroom gauge from the limiter's state now (after each admission and
    /// each server quota), so dashboards see it for venues that never report a quota.
    fn sample_headroom(&self) {
        if let Some(h) = self.limiter.headroom(self.clock.now()) {
            metrics::gauge!(METRIC_HEADROOM, "limit" => self.name.clone()).set(h as f64);
        }
    }

    /// Lets the waiting head ask the limiter again (capacity may have changed).
    pub(crate) fn nudge(&self) {
        self.waiters.lock().wake_head();
    }

    fn reject(&self, reason: &'static str, err: LimitError) -> LimitError {
        metrics::counter!(METRIC_REJECTED, "limit" => self.name.clone(), "reason" => reason)
            .increment(1);
        err
    }

    /// Waits until `cost` units are admitted, in FIFO order within `priority`, or fails
    /// when the wait would pass `deadline`. Returns how long the call waited.
    pub async fn acquire(
        &self,
        cost: u64,
        priority: Priority,
        deadline: Instant,
    ) -> Result<Duration, LimitError> {
        let level = priority.index();
        let (id, wake) = {
            let mut w = self.waiters.lock();
            if w.is_empty() {
                match self.limiter.try_acquire(cost, self.clock.now()) {
                    Ok(()) => {
                        metrics::histogram!(METRIC_WAIT, "limit" => self.name.clone()).record(0.0);
                        self.sample_headroom();
                        return Ok(Duration::ZERO);
                    }
                    Err(denied) => self.check_denial(denied, cost, deadline)?,
                }
            }
            if let Some(bound) = self.queue_bound {
                if w.queued + cost > bound {
                    let queued = w.queued;
                    drop(w);
                    return Err(self.reject(
                        "queue_full",
                        LimitError::QueueFull {
                            limit: self.name.to_string(),
                            queued,
                            bound,
                        },
                    ));
                }
            }
            let id = w.next_id;
            w.next_id += 1;
            let wake = Arc::new(Notify::new());
            w.levels[level].push_back(Entry {
                id,
                cost,
                wake: wake.clone(),
            });
            w.queued += cost;
            (id, wake)
        };
        // Read only once queued: the fast path above never pays for it.
        let started = Instant::now();
        let _queued = Queued {
            throttle: self,
            id,
            level,
        };
        loop {
            let step = {
                let w = self.waiters.lock();
                if w.head().is_some_and(|h| h.id == id) {
                    match self.limiter.try_acquire(cost, self.clock.now()) {
                        Ok(()) => {
                            // `_queued` removes us and wakes the next head on drop.
                            let waited = started.elapsed();
                            metrics::histogram!(METRIC_WAIT, "limit" => self.name.clone())
                                .record(waited.as_secs_f64());
                            self.sample_headroom();
                            return Ok(waited);
                        }
                        Err(denied) => {
                            drop(w);
                            self.check_denial(denied, cost, deadline)?;
                            match denied {
                                Denied::Wait(d) => Step::Sleep(d),
                                Denied::Exceeds { .. } => Step::Park,
                            }
                        }
                    }
                } else {
                    Step::Park
                }
            };
            match step {
                Step::Sleep(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = wake.notified() => {}
                    }
                }
                Step::Park => {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep_until(deadline) => {
                            return Err(self.reject("deadline", LimitError::WouldPassDeadline {
                                limit: self.name.to_string(),
                                cost,
                                wait: started.elapsed(),
                                left: Duration::ZERO,
                            }));
                        }
                    }
                }
            }
        }
    }

    /// Turns a denial into an error when the call can never pass, or not in time.
    fn check_denial(&self, denied: Denied, cost: u64, deadline: Instant) -> Result<(), LimitError> {
        match denied {
            Denied::Exceeds { max } => Err(self.reject(
                "cost",
                LimitError::CostExceedsCapacity {
                    limit: self.name.to_string(),
                    cost,
                    max,
                },
            )),
            Denied::Wait(wait) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if wait > left {
                    Err(self.reject(
                        "deadline",
                        LimitError::WouldPassDeadline {
                            limit: self.name.to_string(),
                            cost,
                            wait,
                            left,
                        },
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}
