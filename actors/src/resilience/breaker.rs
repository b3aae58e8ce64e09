//! Circuit breaker per target: closed → open → half-open → closed.
//!
//! Owns: the state machine, the rolling failure window (count and ratio thresholds),
//! probe accounting, optional adaptive thresholds, the `breakers` record of each target in
//! sled, and the state/transition metrics. Never: sends anything or sleeps; the caller
//! asks [`CircuitBreaker::check`] before a call and reports the outcome on the [`Permit`].
//!
//! - Closed: every call passes. Failures (timeouts, unavailable, rate limited — see
//!   [`ErrorClass::counts_against_target`]) land in a window of ten buckets; the breaker
//!   opens when failures in the window reach `failure_count`, or when at least `min_calls`
//!   calls saw a failure ratio of `failure_ratio` or more.
//! - Open: every call is refused with the time left, until `open_for` has passed.
//! - Half-open: exactly `half_open_probes` calls are let through; all of them succeeding
//!   closes the breaker, any failing re-opens it with `open_for` multiplied by
//!   `open_backoff` (capped at `max_open_for`).
//! - Adaptive (optional): a success slower than `slow_call_factor ×` the recent average
//!   latency (and above `slow_call_min`) counts as a failure, and the ratio threshold rises
//!   above a target's usual error rate (`baseline × ratio_headroom`, at most `max_ratio`)
//!   so a target that is always a little flaky does not flap.
//!
//! - Opened by a peer: a breaker on a board ([`BreakerBoard`], one per engine with
//!   `[cluster]`) announces its own openings there, and a peer node's opening of the same
//!   target forces it open until the peer's deadline ([`CircuitBreaker::open_by_peer`];
//!   counted in `orrery_breaker_peer_opens_total`, never announced again). When that
//!   deadline passes, each node probes on its own (half-open), so a target that recovered
//!   is closed again by whichever node's probes succeed first, and one that did not is
//!   re-opened (and announced) by the node whose probe failed.
//!
//! Time is wall-clock milliseconds from an injected [`Clock`] because the open deadline is
//! persisted: after a restart the breaker stays open until the same instant, so a restart
//! does not hammer a target that was failing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::class::ErrorClass;
use super::config::BreakerConfig;
use crate::clock::{Millis, SharedClock};
use crate::store::{Record, Tree};

mod board;

pub use board::{BreakerBoard, LocalOpening, PeerOpening};

const BUCKETS: usize = 10;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Value of the `orrery_breaker_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// A breaker's durable state, in tree `breakers` keyed by target name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerRecord {
    pub state: BreakerState,
    /// Wall-clock ms until which the breaker refuses calls (meaningful when open).
    pub open_until_ms: Millis,
    /// The open period that will apply at the next opening, in ms.
    pub open_for_ms: u64,
    /// Openings since the breaker last closed.
    pub consecutive_opens: u32,
    pub changed_at_ms: Millis,
}

impl Record for BreakerRecord {}

/// A call refused by the breaker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError {
    #[error("circuit breaker for `{target}` is open after repeated failures; not calling it for another {retry_in:?} — use a sibling target or retry later")]
    Open { target: String, retry_in: Duration },
    #[error("circuit breaker for `{target}` is half-open and its {probes} probe call(s) are in flight; retry after they finish or use a sibling target")]
    ProbesBusy { target: String, probes: u32 },
}

pub(crate) const METRIC_STATE: &str = "orrery_breaker_state";
pub(crate) const METRIC_TRANSITIONS: &str = "orrery_breaker_transitions_total";
pub(crate) const METRIC_REJECTED: &str = "orrery_breaker_rejected_total";
pub(crate) const METRIC_PEER_OPENS: &str = "orrery_breaker_peer_opens_total";

pub(super) fn describe() {
    metrics::describe_gauge!(
        METRIC_STATE,
        "Circuit breaker state by target: 0 closed, 1 half-open, 2 open."
    );
    metrics::describe_counter!(
        METRIC_TRANSITIONS,
        "Circuit breaker state changes, by target, from and to."
    );
    metrics::describe_counter!(
        METRIC_REJECTED,
        "Calls refused by an open or busy breaker, by target."
    );
    metrics::describe_counter!(
        METRIC_PEER_OPENS,
        "Circuit breakers forced open (or kept open longer) because a peer node's breaker of the same target opened, by target."
    );
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Start of the bucket's slice of time, in ms.
    start: Millis,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    open_until: Millis,
    open_for_ms: u64,
    consecutive_opens: u32,
    /// Bumped on every transition; outcomes of permits from an older generation are
    /// ignored (a slow call started before the breaker opened says nothing about now).
    generation: u64,
    probes_in_flight: u32,
    probe_successes: u32,
    buckets: [Bucket; BUCKETS],
    latency_ewma_s: Option<f64>,
    error_ewma: f64,
}

/// A circuit breaker for one target; cheap to clone, clones share state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    target: String,
    /// The target as a metric label (cheap to clone).
    label: Arc<str>,
    config: BreakerConfig,
    clock: SharedClock,
    tree: Option<Tree<BreakerRecord>>,
    /// Where this breaker announces its openings and hears of peers' (cluster only).
    board: OnceLock<BreakerBoard>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("target", &self.shared.target)
            .field("state", &self.shared.inner.lock().state)
            .finish()
    }
}

/// Leave to make one call; report its outcome with [`Permit::success`] or
/// [`Permit::failure`]. Dropping it unreported frees a probe slot without judging the
/// target (e.g. the caller's own deadline cancelled the call).
#[must_use = "report the call's outcome on the permit"]
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    generation: u64,
    probe: bool,
    done: bool,
}

impl Permit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The call succeeded (or failed in a way that is not the target's fault) after
    /// `latency`.
    pub fn success(mut self, latency: Duration) {
        self.done = true;
        self.breaker
            .on_outcome(self.generation, self.probe, Ok(latency));
    }

    /// The call failed with `class`; only failures that count against the target
    /// ([`ErrorClass::counts_against_target`]) move the breaker.
    pub fn failure(mut self, class: &ErrorClass) {
        self.done = true;
        let outcome = if class.counts_against_target() {
            Err(())
        } else {
            Ok(Duration::ZERO)
        };
        self.breaker
            .on_outcome(self.generation, self.probe, outcome);
    }

    /// Reports a result whose error type can be classified.
    pub fn record<T, E: super::retry::Classify>(self, result: &Result<T, E>, latency: Duration) {
        match result {
            Ok(_) => self.success(latency),
            Err(e) => self.failure(&e.class()),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            let mut inner = self.breaker.shared.inner.lock();
            if inner.generation == self.generation {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
            }
        }
    }
}

/// Registers the event counters of `target` at 0, so every configured target has its
/// series from the start rather than after its first event (an alert on `increase()`
/// misses the first event of a series that did not exist).
fn register_event_series(target: &Arc<str>) {
    use BreakerState::{Closed, HalfOpen, Open};
    metrics::counter!(METRIC_REJECTED, "target" => target.clone()).increment(0);
    // Every transition `transition` can make.
    for (from, to) in [
        (Closed, Open),
        (Open, HalfOpen),
        (HalfOpen, Closed),
        (HalfOpen, Open),
    ] {
        metrics::counter!(METRIC_TRANSITIONS, "target" => target.clone(), "from" => from.label(), "to" => to.label())
            .increment(0);
    }
}

impl CircuitBreaker {
    /// The same target and settings kept in `tree` from now on, starting from the state
    /// recorded there (so a restart does not hammer a target that was failing). Meant for
    /// a breaker that has not been used yet: its own state is not carried over.
    pub fn persisted_in(&self, tree: Tree<BreakerRecord>) -> Self {
        let s = &self.shared;
        Self::new(
            s.target.clone(),
            s.config.clone(),
            s.clock.clone(),
            Some(tree),
        )
    }

    /// A breaker for `target`, restored from `tree` when it holds a record for it.
    /// A record that cannot be read is logged and the breaker starts closed. With a tree
    /// whose store has a [`BreakerBoard`] attached, the breaker joins that board.
    pub fn new(
        target: impl Into<String>,
        config: BreakerConfig,
        clock: SharedClock,
        tree: Option<Tree<BreakerRecord>>,
    ) -> Self {
        let target = target.into();
        let now = clock.now_ms();
        let base_open_ms = ms_of(config.open_for);
        let mut inner = Inner {
            state: BreakerState::Closed,
            open_until: 0,
            open_for_ms: base_open_ms,
            consecutive_opens: 0,
            generation: 0,
            probes_in_flight: 0,
            probe_successes: 0,
            buckets: [Bucket::default(); BUCKETS],
            latency_ewma_s: None,
            error_ewma: 0.0,
        };
        let restored = tree.as_ref().map(|t| t.get(&target));
        match restored {
            Some(Ok(Some(rec))) => {
                inner.consecutive_opens = rec.consecutive_opens;
                inner.open_for_ms = rec.open_for_ms.max(base_open_ms);
                match rec.state {
                    BreakerState::Closed => {}
                    // A half-open breaker lost its probes with the process: probe again
                    // from scratch at once.
                    BreakerState::Open | BreakerState::HalfOpen => {
                        inner.state = BreakerState::Open;
                        inner.open_until = if rec.state == BreakerState::Open {
                            rec.open_until_ms
                        } else {
                            now
                        };
                    }
                }
            }
            Some(Ok(None)) | None => {}
            Some(Err(e)) => {
                tracing::warn!(target_name = %target, error = %e, "breaker state unreadable; starting closed");
            }
        }
        let state = inner.state;
        let breaker = Self {
            shared: Arc::new(Shared {
                label: Arc::from(target.as_str()),
                target,
                config,
                clock,
                board: OnceLock::new(),
                tree,
                inner: Mutex::new(inner),
            }),
        };
        metrics::gauge!(METRIC_STATE, "target" => breaker.shared.label.clone()).set(state.gauge());
        register_event_series(&breaker.shared.label);
        let board = breaker
            .shared
            .tree
            .as_ref()
            .and_then(|t| BreakerBoard::attached_to(t.dir()));
        if let Some(board) = board {
            breaker.join_board(&board);
        }
        breaker
    }

    /// Joins `board`: this breaker's own openings are announced there, and peers'
    /// openings of its target force it open. A breaker joins one board; later calls are
    /// ignored.
    pub fn join_board(&self, board: &BreakerBoard) {
        if self.shared.board.set(board.clone()).is_ok() {
            metrics::counter!(METRIC_PEER_OPENS, "target" => self.shared.label.clone())
                .increment(0);
            board.join(self);
        }
    }

    /// The board this breaker joined, if any.
    pub fn board(&self) -> Option<&BreakerBoard> {
        self.shared.board.get()
    }

    /// A peer node's breaker of this target opened until `until_ms`: refuse calls until
    /// then too (half-open probes start here when it passes). Not announced again.
    /// Returns whether it changed anything (false: disabled, the deadline already passed,
    /// or already open at least as long).
    pub fn open_by_peer(&self, until_ms: Millis, node: &str, reason: &str) -> bool {
        if !self.shared.config.enabled {
            return false;
        }
        let now = self.shared.clock.now_ms();
        let mut inner = self.shared.inner.lock();
        if until_ms <= now || (inner.state == BreakerState::Open && inner.open_until >= until_ms) {
            return false;
        }
        inner.open_until = until_ms;
        if inner.state == BreakerState::Open {
            // Already open: only longer now; no transition, but the record follows.
            self.persist(&inner, now);
        } else {
            self.transition(&mut inner, BreakerState::Open, now);
        }
        drop(inner);
        metrics::counter!(METRIC_PEER_OPENS, "target" => self.shared.label.clone()).increment(1);
        tracing::info!(
            target_name = %self.shared.target,
            peer = %node,
            reason = %reason,
            open_for_ms = until_ms - now,
            "circuit breaker opened by peer"
        );
        true
    }

    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// The current state (an open breaker whose time is up reports half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.shared.inner.lock();
        if inner.state == BreakerState::Open && self.shared.clock.now_ms() >= inner.open_until {
            BreakerState::HalfOpen
        } else {
            inner.state
        }
    }

    /// Asks to make one call.
    pub fn check(&self) -> Result<Permit, BreakerError> {
        if !self.shared.config.enabled {
            return Ok(self.permit(0, false));
        }
        let now = self.shared.clock.now_ms();
        let mut inner = self.shared.inner.lock();
        if inner.state == BreakerState::Open {
            if now < inner.open_until {
                let retry_in = Duration::from_millis((inner.open_until - now) as u64);
                drop(inner);
                return Err(self.rejected(BreakerError::Open {
                    target: self.shared.target.clone(),
                    retry_in,
                }));
            }
            self.transition(&mut inner, BreakerState::HalfOpen, now);
        }
        match inner.state {
            BreakerState::Closed => Ok(self.permit(inner.generation, false)),
            BreakerState::HalfOpen => {
                let probes = self.shared.config.half_open_probes.max(1);
                if inner.probes_in_flight + inner.probe_successes < probes {
                    inner.probes_in_flight += 1;
                    Ok(self.permit(inner.generation, true))
                } else {
                    drop(inner);
                    Err(self.rejected(BreakerError::ProbesBusy {
                        target: self.shared.target.clone(),
                        probes,
                    }))
                }
            }
            BreakerState::Open => {
                unreachable!("handled above: an open breaker returned or moved to half-open")
            }
        }
    }

    fn permit(&self, generation: u64, probe: bool) -> Permit {
        Permit {
            breaker: self.clone(),
            generation,
            probe,
            done: false,
        }
    }

    fn rejected(&self, err: BreakerError) -> BreakerError {
        metrics::counter!(METRIC_REJECTED, "target" => self.shared.label.clone()).increment(1);
        err
    }

    fn on_outcome(&self, generation: u64, probe: bool, outcome: Result<Duration, ()>) {
        if !self.shared.config.enabled {
            return;
        }
        let now = self.shared.clock.now_ms();
        let mut inner = self.shared.inner.lock();
        if inner.generation != generation {
            return;
        }
        let failed = match outcome {
            Err(()) => true,
            Ok(latency) => self.is_slow(&mut inner, latency),
        };
        if let Some(adaptive) = &self.shared.config.adaptive {
            let x = if failed { 1.0 } else { 0.0 };
            inner.error_ewma += adaptive.ewma_alpha * (x - inner.error_ewma);
        }
        match inner.state {
            BreakerState::Closed => {
                self.count(&mut inner, now, failed);
                if failed && self.should_open(&inner, now) {
                    self.open(&mut inner, now, false);
                }
            }
            BreakerState::HalfOpen if probe => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                if failed {
                    self.open(&mut inner, now, true);
                } else {
                    inner.probe_successes += 1;
                    if inner.probe_successes >= self.shared.config.half_open_probes.max(1) {
                        self.transition(&mut inner, BreakerState::Closed, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// Adaptive only: a success much slower than usual counts as a failure. Updates the
    /// latency average with successes that were not slow.
    fn is_slow(&self, inner: &mut Inner, latency: Duration) -> bool {
        let Some(adaptive) = &self.shared.config.adaptive else {
            return false;
        };
        if latency.is_zero() {
            return false;
        }
        let secs = latency.as_secs_f64();
        let slow = match inner.latency_ewma_s {
            Some(avg) => latency > adaptive.slow_call_min && secs > avg * adaptive.slow_call_factor,
            None => false,
        };
        if !slow {
            inner.latency_ewma_s = Some(match inner.latency_ewma_s {
                Some(avg) => avg + adaptive.ewma_alpha * (secs - avg),
                None => secs,
            });
        }
        slow
    }

    fn count(&self, inner: &mut Inner, now: Millis, failed: bool) {
        let width = (ms_of(self.shared.config.window) / BUCKETS as u64).max(1) as Millis;
        let start = now - now.rem_euclid(width);
        let slot = (start / width).rem_euclid(BUCKETS as Millis) as usize;
        let b = &mut inner.buckets[slot];
        if b.start != start {
            *b = Bucket {
                start,
                calls: 0,
                failures: 0,
            };
        }
        b.calls += 1;
        b.failures += u32::from(failed);
    }

    fn should_open(&self, inner: &Inner, now: Millis) -> bool {
        let cfg = &self.shared.config;
        let horizon = now - ms_of(cfg.window) as Millis;
        let (calls, failures) = inner
            .buckets
            .iter()
            .filter(|b| b.start > horizon && b.calls > 0)
            .fold((0u32, 0u32), |(c, f), b| (c + b.calls, f + b.failures));
        if cfg.failure_count > 0 && failures >= cfg.failure_count {
            return true;
        }
        if cfg.min_calls > 0 && calls >= cfg.min_calls {
            let mut threshold = cfg.failure_ratio;
            if let Some(adaptive) = &cfg.adaptive {
                threshold = threshold
                    .max(inner.error_ewma * adaptive.ratio_headroom)
                    .min(adaptive.max_ratio.max(cfg.failure_ratio));
            }
            return f64::from(failures) / f64::from(calls) >= threshold;
        }
        false
    }

    fn open(&self, inner: &mut Inner, now: Millis, failed_probe: bool) {
        let cfg = &self.shared.config;
        if failed_probe {
            let next = (inner.open_for_ms as f64 * cfg.open_backoff) as u64;
            inner.open_for_ms = next.clamp(
                ms_of(cfg.open_for),
                ms_of(cfg.max_open_for).max(ms_of(cfg.open_for)),
            );
        }
        inner.open_until = now + inner.open_for_ms as Millis;
        inner.consecutive_opens += 1;
        self.transition(inner, BreakerState::Open, now);
        if let Some(board) = self.shared.board.get() {
            board.opened(LocalOpening {
                target: self.shared.target.clone(),
                until_ms: inner.open_until,
                reason: if failed_probe {
                    "half-open probe failed".into()
                } else {
                    "failure threshold reached".into()
                },
            });
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: Millis) {
        let from = inner.state;
        inner.state = to;
        inner.generation += 1;
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
        if to == BreakerState::Closed {
            inner.buckets = [Bucket::default(); BUCKETS];
            inner.open_for_ms = ms_of(self.shared.config.open_for);
            inner.consecutive_opens = 0;
        }
        let target = self.shared.label.clone();
        metrics::gauge!(METRIC_STATE, "target" => target.clone()).set(to.gauge());
        metrics::counter!(METRIC_TRANSITIONS, "target" => target, "from" => from.label(), "to" => to.label())
            .increment(1);
        tracing::info!(target_name = %self.shared.target, from = from.label(), to = to.label(), "circuit breaker");
        self.persist(inner, now);
    }

    fn persist(&self, inner: &Inner, now: Millis) {
        if let Some(tree) = &self.shared.tree {
            let rec = BreakerRecord {
                state: inner.state,
                open_until_ms: inner.open_until,
                open_for_ms: inner.open_for_ms,
                consecutive_opens: inner.consecutive_opens,
                changed_at_ms: now,
            };
            // Best effort, and not flushed here: sled flushes every 500 ms, which is soon
            // enough for a breaker, and a transition must not wait for an fsync. A breaker
            // that cannot persist still protects this process.
            if let Err(e) = tree.put(&self.shared.target, &rec) {
                tracing::warn!(target_name = %self.shared.target, error = %e, "cannot persist breaker state");
            }
        }
    }
}

fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
pub(crate) mod tests;
