//! One shared scope as this node sees it: a synchronous [`RateLimit`] in front of the
//! cluster's budget, so the existing fair [`Throttle`] queue (priorities, FIFO, the
//! caller's deadline) and [`LinkedLimit`] (all-or-nothing draws with refunds) work on it
//! unchanged.
//!
//! Owns: the node's local reserve of units drawn from Redis, the one draw in flight that
//! refills it, giving back what was never spent, and the fallback to a local share of the
//! limit while Redis is unreachable (and the carry of what was spent meanwhile when it
//! rejoins). Never: talks to Redis other than through [`RemoteBudget`], or blocks: a check
//! that finds no units starts a draw in the background and answers "wait"; the draw wakes
//! the waiting throttles when it lands.
//!
//! Why the limit holds in every window with reservation batches. A sliding-window batch of
//! N units drawn at Redis time `t` is one log entry that counts from `t` and whose score is
//! `t + hold`: it keeps counting until `t + hold + window`. The node spends its units only
//! while the reservation is valid, which ends `hold` after the draw by the node's clock,
//! and the node's clock starts the validity when the draw was sent (so before `t`): every
//! unit spent at `s ∈ [t, t + hold]` is counted by Redis over `[s, s + window) ⊆ [t, t +
//! hold + window)`, as the venue counts it. Units not spent are given back (the entry's
//! count is lowered) only once the validity ended, when no unit of it can be spent any
//! more; a give-back that fails leaves them counted, which only over-counts. For GCRA the
//! units are taken from the TAT at `t`, earlier than they are spent, which a bucket counts
//! no more generously than spending them at once, and a give-back moves the TAT back by
//! exactly the unspent units (never before now). Units spent in fallback are carried into
//! Redis on rejoin as one entry counting a whole window from then.
//!
//! [`Throttle`]: crate::resilience::Throttle
//! [`LinkedLimit`]: crate::resilience::limiter::LinkedLimit

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant as StdInstant};

use parking_lot::Mutex;

use super::script::{BudgetKind, RemoteBudget, Verdict};
use super::{METRIC_DRAWS, METRIC_DRAW_LATENCY, METRIC_FALLBACK, METRIC_RESERVED};
use crate::cluster::link::ClusterError;
use crate::resilience::config::{LimitConfig, SharedBudget};
use crate::resilience::limiter::{Denied, RateLimit, ServerQuota, Throttle};
use crate::resilience::mono::{nanos_of, Nanos, SharedMonotonic};

/// How a waiting caller polls while a draw is in flight (it is also woken when the draw
/// lands).
const POLL: Duration = Duration::from_millis(2);

/// Whether the pool draws from the cluster or from its local share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    Shared,
    Fallback,
}

/// One scope, for `orrery cluster status` and the engine's status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SharedPoolState {
    pub scope: String,
    pub kind: &'static str,
    pub limit: u64,
    pub window_ms: u64,
    pub mode: PoolMode,
    /// Fraction of the limit this node uses while Redis is unreachable.
    pub local_share: f64,
    /// Units drawn per round trip.
    pub batch: u64,
    /// Units drawn and not yet spent.
    pub reserved: u64,
    /// Nodes active in the window at the last draw.
    pub active_nodes: u64,
}

/// How the pool falls back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fallback {
    /// Configured share; `None`: one over the larger of `expected_nodes` and the most
    /// nodes seen active.
    pub local_share: Option<f64>,
    pub expected_nodes: u32,
}

struct State {
    mode: PoolMode,
    reserve: u64,
    /// Local time the reserve stops being spendable.
    reserve_until: Nanos,
    /// The reservation's entry and the units it was drawn with.
    entry: Option<String>,
    in_flight: bool,
    /// No draw before this local time (Redis said wait).
    not_before: Nanos,
    /// Local limiter while in fallback.
    fallback: Option<Arc<dyn RateLimit>>,
    share: f64,
    /// Units spent in fallback (local time, units), for the carry on rejoin.
    spent_in_fallback: VecDeque<(Nanos, u64)>,
    /// Units drawn from Redis in the last window (local time of the draw, units): a
    /// fallback starts with them already spent, so a node never adds a fresh local share
    /// to what it drew from the cluster in the same window.
    drawn_in_window: VecDeque<(Nanos, u64)>,
    max_active: u64,
    /// Nodes active in the window at the last draw.
    last_active: u64,
    rejoining: bool,
}

/// The shared pool of one scope on this node.
pub struct SharedPool {
    remote: Arc<RemoteBudget>,
    batch: u64,
    hold: Duration,
    fallback: Fallback,
    /// The pool as configured; its local share in fallback is built from it
    /// ([`LimitConfig::scaled`]).
    config: LimitConfig,
    clock: SharedMonotonic,
    state: Mutex<State>,
    throttles: Mutex<Vec<Weak<Throttle>>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPool")
            .field("scope", &self.remote.scope())
            .field("kind", &self.remote.kind())
            .field("batch", &self.batch)
            .finish()
    }
}

impl SharedPool {
    pub(super) fn new(
        remote: RemoteBudget,
        batch: u64,
        hold: Duration,
        fallback: Fallback,
        config: LimitConfig,
        clock: SharedMonotonic,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            remote: Arc::new(remote),
            batch: batch.max(1),
            hold,
            fallback,
            config,
            clock,
            state: Mutex::new(State {
                mode: PoolMode::Shared,
                reserve: 0,
                reserve_until: 0,
                entry: None,
                in_flight: false,
                not_before: 0,
                fallback: None,
                share: 1.0,
                spent_in_fallback: VecDeque::new(),
                drawn_in_window: VecDeque::new(),
                max_active: 1,
                last_active: 0,
                rejoining: false,
            }),
            throttles: Mutex::new(Vec::new()),
            runtime,
        }
    }

    pub fn scope(&self) -> &str {
        self.remote.scope()
    }

    pub fn kind(&self) -> BudgetKind {
        self.remote.kind()
    }

    pub fn batch(&self) -> u64 {
        self.batch
    }

    pub fn remote(&self) -> &RemoteBudget {
        &self.remote
    }

    pub fn mode(&self) -> PoolMode {
        self.state.lock().mode
    }

    /// The throttle is woken when a draw lands.
    pub fn wake_on_draw(&self, throttle: &Arc<Throttle>) {
        let mut t = self.throttles.lock();
        t.retain(|w| w.strong_count() > 0);
        t.push(Arc::downgrade(throttle));
    }

    fn wake(&self) {
        for t in self.throttles.lock().iter().filter_map(Weak::upgrade) {
            t.nudge();
        }
    }

    fn share_now(&self, max_active: u64) -> f64 {
        self.fallback.local_share.unwrap_or_else(|| {
            let n = u64::from(self.fallback.expected_nodes)
                .max(max_active)
                .max(1);
            1.0 / n as f64
        })
    }

    pub fn snapshot(&self) -> SharedPoolState {
        let s = self.state.lock();
        let kind = self.remote.kind();
        SharedPoolState {
            scope: self.scope().to_string(),
            kind: kind.label(),
            limit: kind.limit(),
            window_ms: u64::try_from(kind.window().as_millis()).unwrap_or(u64::MAX),
            mode: s.mode,
            local_share: self.share_now(s.max_active),
            batch: self.batch,
            reserved: s.reserve,
            active_nodes: s.last_active,
        }
    }

    /// Switches to the local share (idempotent); logs and sets the gauge on a change.
    pub(super) fn enter_fallback(&self, reason: &str) {
        let mut s = self.state.lock();
        if s.mode == PoolMode::Fallback {
            return;
        }
        let share = self.share_now(s.max_active);
        let now = self.clock.now();
        let local = self.config.scaled(share).build(&self.clock);
        // What this node drew from the cluster in the window counts against its share.
        let window = nanos_of(self.kind().window());
        s.drawn_in_window
            .retain(|(at, _)| now.saturating_sub(*at) < window);
        let drawn: u64 = s.drawn_in_window.iter().map(|(_, u)| *u).sum();
        let charge = drawn.min(local.max_cost());
        if charge > 0 {
            // A fresh local limiter admits up to its capacity at once.
            let _ = local.try_acquire(charge, now);
        }
        s.mode = PoolMode::Fallback;
        s.share = share;
        s.fallback = Some(local);
        s.reserve = 0;
        s.entry = None;
        s.not_before = 0;
        drop(s);
        metrics::gauge!(METRIC_FALLBACK, "scope" => self.scope().to_string()).set(1.0);
        tracing::warn!(
            scope = self.scope(),
            local_share = share,
            limit = self.kind().limit(),
            reason,
            "shared rate limit falls back to this node's local share until redis answers again"
        );
        self.wake();
    }

    /// Tries to rejoin: carries what was spent in fallback into Redis, then draws shared
    /// again. Stays in fallback if Redis does not take the carry.
    pub(super) async fn rejoin(self: &Arc<Self>) {
        let (carry, carried_at) = {
            let mut s = self.state.lock();
            if s.mode != PoolMode::Fallback || s.rejoining {
                return;
            }
            s.rejoining = true;
            let now = self.clock.now();
            let window = nanos_of(self.kind().window());
            s.spent_in_fallback
                .retain(|(at, _)| now.saturating_sub(*at) < window);
            (
                s.spent_in_fallback.iter().map(|(_, u)| *u).sum::<u64>(),
                now,
            )
        };
        // Always one script run, a carry of 0 too: a Redis that answers but refuses the
        // script (out of memory, say) keeps the pool on its local share.
        let result = self.remote.carry(carry).await;
        let mut s = self.state.lock();
        s.rejoining = false;
        match result {
            Ok(()) => {
                s.mode = PoolMode::Shared;
                s.fallback = None;
                // Spent while the carry was in flight: carried next.
                s.spent_in_fallback.retain(|(at, _)| *at > carried_at);
                let late: u64 = s.spent_in_fallback.drain(..).map(|(_, u)| u).sum();
                drop(s);
                if late > 0 {
                    let remote = self.remote.clone();
                    self.runtime.spawn(async move {
                        if let Err(e) = remote.carry(late).await {
                            tracing::debug!(units = late, error = %e, "late carry failed; those units are not counted in redis");
                        }
                    });
                }
                metrics::gauge!(METRIC_FALLBACK, "scope" => self.scope().to_string()).set(0.0);
                tracing::info!(
                    scope = self.scope(),
                    carried = carry,
                    "shared rate limit rejoined the cluster budget"
                );
                self.wake();
            }
            Err(e) => {
                drop(s);
                tracing::debug!(scope = self.scope(), error = %e, "rejoin failed; staying on the local share");
            }
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(METRIC_DRAWS, "scope" => self.scope().to_string(), "outcome" => outcome)
            .increment(1);
    }

    /// One draw of `units` from Redis in the background; the result refills the reserve,
    /// sets the wait, or switches to fallback.
    fn start_draw(self: &Arc<Self>, least: u64, units: u64, leftover: Option<(String, u64)>) {
        let pool = self.clone();
        self.runtime.spawn(async move {
            if let Some((entry, units)) = leftover {
                pool.give_back(entry, units).await;
            }
            let started = StdInstant::now();
            // The validity starts before Redis sees the draw, never after.
            let sent = pool.clock.now();
            let verdict = pool.remote.draw_between(least, units).await;
            metrics::histogram!(METRIC_DRAW_LATENCY, "scope" => pool.scope().to_string())
                .record(started.elapsed().as_secs_f64());
            if let Some((entry, units)) = pool.landed(sent, verdict) {
                // Fell back while the draw was in flight: give the units back.
                pool.give_back(entry, units).await;
            }
        });
    }

    /// Applies a draw's answer; returns the entry to give back when the pool fell back
    /// while the draw was in flight.
    fn landed(&self, sent: Nanos, verdict: Result<Verdict, ClusterError>) -> Option<(String, u64)> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        s.in_flight = false;
        let mut unwanted = None;
        match verdict {
            Ok(Verdict::Admitted {
                units,
                entry,
                active,
                ..
            }) => {
                s.max_active = s.max_active.max(active);
                s.last_active = active;
                if s.mode == PoolMode::Shared {
                    let window = nanos_of(self.kind().window());
                    s.drawn_in_window
                        .retain(|(at, _)| now.saturating_sub(*at) < window);
                    s.drawn_in_window.push_back((sent, units));
                    s.reserve += units;
                    s.reserve_until = sent.saturating_add(nanos_of(self.hold));
                    s.entry = Some(entry);
                    metrics::gauge!(METRIC_RESERVED, "scope" => self.scope().to_string())
                        .set(s.reserve as f64);
                } else {
                    unwanted = Some((entry, units));
                }
                drop(s);
                self.count("admitted");
            }
            Ok(Verdict::Wait { wait, active, .. }) => {
                s.max_active = s.max_active.max(active);
                s.last_active = active;
                s.not_before = now.saturating_add(nanos_of(wait));
                drop(s);
                self.count("waited");
            }
            Err(e) => {
                drop(s);
                self.count("error");
                self.enter_fallback(&e.to_string());
            }
        }
        self.wake();
        unwanted
    }

    async fn give_back(&self, entry: String, units: u64) {
        if let Err(e) = self.remote.give_back(&entry, units).await {
            // The units stay counted until their entry leaves the window: only over-counts.
            tracing::debug!(scope = self.scope(), units, error = %e, "give-back failed");
        }
    }

    /// Gives the unspent reserve back now (shutdown, tests).
    pub async fn release(&self) {
        let (entry, units) = {
            let mut s = self.state.lock();
            let units = std::mem::take(&mut s.reserve);
            (s.entry.take(), units)
        };
        if let (Some(entry), true) = (entry, units > 0) {
            self.give_back(entry, units).await;
        }
    }

    /// The check behind [`RateLimit::try_acquire`], with the `Arc` a background draw needs.
    pub fn check(self: &Arc<Self>, cost: u64, now: Nanos) -> Result<(), Denied> {
        if cost == 0 {
            return Ok(());
        }
        let max = self.kind().limit();
        if cost > max {
            return Err(Denied::Exceeds { max });
        }
        let mut s = self.state.lock();
        if s.mode == PoolMode::Fallback {
            let local = s.fallback.clone();
            let verdict = match local {
                Some(l) => l.try_acquire(cost, now),
                None => Err(Denied::Wait(POLL)),
            };
            if verdict.is_ok() {
                // Only the last window is carried on rejoin: keep no more.
                let window = nanos_of(self.kind().window());
                while s
                    .spent_in_fallback
                    .front()
                    .is_some_and(|(at, _)| now.saturating_sub(*at) >= window)
                {
                    s.spent_in_fallback.pop_front();
                }
                s.spent_in_fallback.push_back((now, cost));
                drop(s);
                self.count("fallback");
            }
            return verdict;
        }
        if now < s.reserve_until && s.reserve >= cost {
            s.reserve -= cost;
            return Ok(());
        }
        if s.in_flight {
            return Err(Denied::Wait(POLL));
        }
        if now < s.not_before {
            return Err(Denied::Wait(Duration::from_nanos(s.not_before - now)));
        }
        // The reserve is spent, expired or too small: give what is left back and draw.
        let leftover = s
            .entry
            .take()
            .filter(|_| s.reserve > 0)
            .map(|e| (e, s.reserve));
        s.reserve = 0;
        s.in_flight = true;
        drop(s);
        self.start_draw(cost, cost.max(self.batch).min(max), leftover);
        Err(Denied::Wait(POLL))
    }
}

/// The pool as a [`RateLimit`] (an `Arc` so a check can start a background draw).
#[derive(Debug, Clone)]
pub struct SharedLimit(pub Arc<SharedPool>);

impl SharedBudget for SharedLimit {
    fn wake_on_draw(&self, throttle: &Arc<Throttle>) {
        self.0.wake_on_draw(throttle);
    }
}

impl RateLimit for SharedLimit {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        self.0.check(cost, now)
    }

    fn refund(&self, cost: u64, now: Nanos) -> bool {
        let mut s = self.0.state.lock();
        match s.mode {
            PoolMode::Fallback => {
                if let Some(l) = s.fallback.clone() {
                    l.refund(cost, now);
                }
                if let Some(pos) = s.spent_in_fallback.iter().rposition(|e| *e == (now, cost)) {
                    s.spent_in_fallback.remove(pos);
                }
            }
            // Back into the reserve even while a new draw is in flight: those units were
            // admitted (and counted in Redis) less than `hold` ago, so spending them within
            // the next entry's hold still ends inside the old entry's counted span
            // (window + hold), as hold ≤ window.
            PoolMode::Shared => s.reserve += cost,
        }
        true
    }

    fn max_cost(&self) -> u64 {
        self.0.kind().limit()
    }

    fn headroom(&self, _now: Nanos) -> Option<u64> {
        None
    }

    /// The server's view lands on the node's local pool of the same name.
    fn observe(&self, _quota: ServerQuota, _now: Nanos) {}
}
