//! One guarded-call path for every outbound call: pause gate, limiter draw, circuit
//! breaker, the call, and per-class retry bounded by the deadline — in that order, with
//! one rule for what may wait and what may be retried.
//!
//! Owns: the [`PauseGate`] of a target (the "send nothing before" instant a 429, 418 or
//! Retry-After sets), the order of the steps, and the rule below. Never: parses a
//! response or a header (the provider or venue module does, and calls
//! [`Guard::pause`]), decides an error's class (its [`Classify`] impl does), or turns a
//! refusal into the caller's error type (the caller's `From<Refusal>` does, naming its
//! own target).
//!
//! The rule, by what the call does at the target ([`Effect`]):
//! - [`Effect::StateChange`] (an order, a cancel, a leverage change): never waits out a
//!   pause — while one is in force it is refused at once with [`Refusal::Paused`], so
//!   the caller (the order gateway) decides with the order still unsent — and is never
//!   retried: once its bytes may have left, an unknown outcome is settled by a query,
//!   not by sending again. It still queues for its limiter draw within its deadline.
//! - [`Effect::Read`]: waits out a pause that ends before its wait bound (its deadline,
//!   or earlier for a model call that keeps half its time for the router), else fails at
//!   once with [`Refusal::Paused`] carrying the time left; retried per error class
//!   ([`RetryPolicy`]) while the next wait ends before the bound.
//!
//! A refusal (pause, limiter, breaker) is never retried in place: the breaker stays open
//! for its `open_for`, a limiter wait that does not fit never will, and a pause longer
//! than the bound outlasts it.
//!
//! ```text
//! guard.run(GuardedCall::read("l2Book", deadline),
//!           |bound| limits.acquire("info", 2, Priority::Low, bound),   // limiter draw
//!           |_drawn| post(body)).await                                  // one attempt
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::breaker::{BreakerError, BreakerRecord, CircuitBreaker};
use super::class::ErrorClass;
use super::limiter::LimitError;
use super::retry::{Classify, RetryError, RetryPolicy};
use crate::store::Tree;

/// What a call does at the target; decides whether it may wait out a pause and be
/// retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads state; safe to wait for and to repeat.
    Read,
    /// Changes state at the target (order, cancel, leverage): refused at once during a
    /// pause, sent at most once.
    StateChange,
}

impl Effect {
    pub fn label(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::StateChange => "state change",
        }
    }
}

/// Why the guard ended a call without the target's answer. The caller turns it into its
/// own error type (`From<Refusal>`, naming its target). Nothing was sent for `Paused`,
/// `Limited` and `Breaker`; `DeadlineElapsed` cut a read's attempt (never a state
/// change's, whose op bounds its own send and reports an unknown outcome itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not sent: `{target}` is paused for another {retry_in:?} ({reason}); {}", paused_advice(.effect))]
    Paused {
        target: String,
        what: String,
        effect: Effect,
        retry_in: Duration,
        reason: String,
    },
    #[error("not sent: {what}: {error}")]
    Limited {
        target: String,
        what: String,
        error: LimitError,
    },
    #[error(transparent)]
    Breaker(BreakerError),
    /// A state change reached its send-by instant (the caller's right to send ends
    /// there, e.g. its lease on the account) before it was sent: it never left.
    #[error("not sent: `{target}`: {what} was still waiting at its send-by instant (the sender's lease ends there); another node may own the account now")]
    SendByPassed { target: String, what: String },
    #[error("`{target}`: the deadline of {what} passed during attempt {attempts}, {after:?} after the call began")]
    DeadlineElapsed {
        target: String,
        what: String,
        attempts: u32,
        after: Duration,
    },
}

fn paused_advice(effect: &Effect) -> &'static str {
    match effect {
        Effect::StateChange => "a state change never waits out a pause; retry after it ends",
        Effect::Read => "the pause outlasts the call's deadline",
    }
}

impl Refusal {
    /// The class the retry loop and the callers see: a pause is rate limiting with the
    /// time left, an open breaker is the target being unavailable, a limiter refusal what
    /// its own class says.
    pub fn class(&self) -> ErrorClass {
        match self {
            Refusal::Paused { retry_in, .. } => ErrorClass::RateLimited {
                retry_after: Some(*retry_in),
            },
            Refusal::Limited { error, .. } => error.class(),
            Refusal::Breaker(e) => e.class(),
            Refusal::DeadlineElapsed { .. } => ErrorClass::Timeout,
            Refusal::SendByPassed { .. } => ErrorClass::Unavailable,
        }
    }

    /// The target refused for (the venue or deployment name the guard was built with).
    pub fn target(&self) -> &str {
        match self {
            Refusal::Paused { target, .. }
            | Refusal::Limited { target, .. }
            | Refusal::DeadlineElapsed { target, .. }
            | Refusal::SendByPassed { target, .. } => target,
            Refusal::Breaker(BreakerError::Open { target, .. })
            | Refusal::Breaker(BreakerError::ProbesBusy { target, .. }) => target,
        }
    }
}

impl Classify for Refusal {
    fn class(&self) -> ErrorClass {
        Refusal::class(self)
    }
    fn retry_in_place(&self) -> bool {
        false
    }
}

/// "Send nothing to this target before": set by a 429 / 418 / Retry-After, read by
/// every call of the target. Extending only: a shorter pause never ends a longer one.
#[derive(Debug, Default)]
pub struct PauseGate {
    until: Mutex<Option<(Instant, Arc<str>)>>,
}

impl PauseGate {
    /// Pauses for `wait` from now (unless already paused for longer), with the reason
    /// later refusals name. Returns whether the pause was set or extended.
    pub fn pause(&self, wait: Duration, reason: &str) -> bool {
        let until = Instant::now() + wait;
        let mut guard = self.until.lock();
        if guard.as_ref().is_none_or(|(u, _)| *u < until) {
            *guard = Some((until, Arc::from(reason)));
            true
        } else {
            false
        }
    }

    /// Time left of the pause in force, if any.
    pub fn remaining(&self) -> Option<Duration> {
        let now = Instant::now();
        self.until
            .lock()
            .as_ref()
            .map(|(u, _)| u.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    pub fn is_paused(&self) -> bool {
        self.remaining().is_some()
    }

    /// Lets a call through under the rule: a state change is refused at once while
    /// paused; a read waits while the pause ends before `bound`, else is refused with the
    /// time left. Loops because another 429 may extend the pause during the wait.
    pub async fn pass(
        &self,
        target: &str,
        what: &str,
        effect: Effect,
        bound: Instant,
    ) -> Result<(), Refusal> {
        loop {
            let (until, reason) = {
                let mut gate = self.until.lock();
                let Some((until, reason)) = gate.as_ref() else {
                    return Ok(());
                };
                let now = Instant::now();
                if *until <= now {
                    // Over: later calls skip the clock read.
                    *gate = None;
                    return Ok(());
                }
                (*until, reason.clone())
            };
            let now = Instant::now();
            if effect == Effect::StateChange || until >= bound {
                return Err(Refusal::Paused {
                    target: target.to_string(),
                    what: what.to_string(),
                    effect,
                    retry_in: until - now,
                    reason: reason.to_string(),
                });
            }
            tokio::time::sleep_until(until).await;
        }
    }
}

tokio::task_local! {
    static SEND_BY: Instant;
}

/// Runs `fut` with a send-by instant: a state change [`Guard::run`] runs inside it waits
/// (pause, limiter) only until then and is refused, never sent, if it is still unsent then.
/// The connector serves a venue command inside it when the gateway stamped one (the
/// account's lease ends there, see `exchanges::gateway::ownership`); `None` changes nothing.
pub async fn sending_by<F: Future>(at: Option<Instant>, fut: F) -> F::Output {
    match at {
        Some(at) => SEND_BY.scope(at, fut).await,
        None => fut.await,
    }
}

fn send_by() -> Option<Instant> {
    SEND_BY.try_with(|t| *t).ok()
}

/// One call's terms.
#[derive(Debug, Clone, Copy)]
pub struct GuardedCall<'a> {
    /// What is called, for refusals and timeouts ("order", "GET /api/v3/account").
    pub what: &'a str,
    pub effect: Effect,
    /// Every attempt is cut here.
    pub deadline: Instant,
    /// Waits (pause, limiter, between retries) must end before this; at most `deadline`.
    pub waits_until: Instant,
    /// A read retried in place per its class (the default), or tried once because the
    /// caller has somewhere better to go (a model router with a sibling left).
    pub retry_in_place: bool,
}

impl<'a> GuardedCall<'a> {
    pub fn read(what: &'a str, deadline: Instant) -> Self {
        Self {
            what,
            effect: Effect::Read,
            deadline,
            waits_until: deadline,
            retry_in_place: true,
        }
    }

    pub fn state_change(what: &'a str, deadline: Instant) -> Self {
        Self {
            what,
            effect: Effect::StateChange,
            deadline,
            waits_until: deadline,
            retry_in_place: true,
        }
    }

    /// One attempt only, whatever its class: the caller moves on at the first failure.
    pub fn tried_once(mut self) -> Self {
        self.retry_in_place = false;
        self
    }

    /// Waits must end before `at` (clamped to the deadline).
    pub fn waits_until(mut self, at: Instant) -> Self {
        self.waits_until = at.min(self.deadline);
        self
    }
}

/// The guard of one target: its pause gate, breaker and retry policy. The limiter draw
/// is the caller's (venues draw weighted endpoints from their [`super::RateLimits`], a
/// model deployment its request and token budgets), passed to [`Guard::run`].
#[derive(Debug)]
pub struct Guard {
    target: String,
    /// Shared by every guard of one venue account when it has sibling connectors
    /// ([`Guard::with_pause_gate`]): the venue pauses the account / IP, not a connection.
    pause: Arc<PauseGate>,
    breaker: CircuitBreaker,
    retry: RetryPolicy,
}

/// An attempt's failure inside the retry loop: refusals are never retried in place.
enum Step<E> {
    Refused(E),
    Failed(E),
}

impl<E: Classify> Classify for Step<E> {
    fn class(&self) -> ErrorClass {
        match self {
            Step::Refused(e) | Step::Failed(e) => e.class(),
        }
    }
    fn retry_in_place(&self) -> bool {
        match self {
            Step::Refused(_) => false,
            Step::Failed(e) => e.retry_in_place(),
        }
    }
}

impl<E> Step<E> {
    fn into_inner(self) -> E {
        match self {
            Step::Refused(e) | Step::Failed(e) => e,
        }
    }
}

impl Guard {
    pub fn new(target: impl Into<String>, breaker: CircuitBreaker, retry: RetryPolicy) -> Self {
        Self {
            target: target.into(),
            pause: Arc::new(PauseGate::default()),
            breaker,
            retry,
        }
    }

    /// The same guard reading and setting `gate` instead of a pause gate of its own: every
    /// connector of one venue account passes the same gate, so a 429 / 418 seen through one
    /// endpoint holds back its siblings too.
    pub fn with_pause_gate(mut self, gate: Arc<PauseGate>) -> Self {
        self.pause = gate;
        self
    }

    /// The same guard with its breaker kept in `tree` (see
    /// [`CircuitBreaker::persisted_in`]).
    /// When the breaker joins a [`super::BreakerBoard`] there (cluster), the pause gate
    /// joins it too, as `pause:{target}`: a venue's 429 / Retry-After pause (or a model
    /// deployment's) is then shared with the other nodes like a breaker opening.
    pub fn persisted_in(mut self, tree: Tree<BreakerRecord>) -> Self {
        self.breaker = self.breaker.persisted_in(tree);
        if let Some(board) = self.breaker.board() {
            board.join_pause(&self.target, &self.pause);
        }
        self
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn pause_gate(&self) -> &PauseGate {
        &self.pause
    }

    /// Pauses every call of this target for `wait` (see [`PauseGate::pause`]); a pause
    /// that sets or extends the gate is announced on the breaker's board, if any.
    pub fn pause(&self, wait: Duration, reason: &str) {
        if self.pause.pause(wait, reason) {
            if let Some(board) = self.breaker.board() {
                board.paused(&self.target, wait, reason);
            }
        }
    }

    pub fn is_paused(&self) -> bool {
        self.pause.is_paused()
    }

    /// Runs `call` under the rule: pause gate, `admit` (the limiter draw, given the wait
    /// bound), breaker, `op` (one attempt, given what `admit` returned), the breaker
    /// told the outcome; a read again per its class while waits fit before the bound, a
    /// state change once.
    pub async fn run<T, A, E, Adm, AdmFut, Op, OpFut>(
        &self,
        call: GuardedCall<'_>,
        mut admit: Adm,
        op: Op,
    ) -> Result<T, E>
    where
        E: Classify + From<Refusal>,
        Adm: FnMut(Instant) -> AdmFut,
        AdmFut: Future<Output = Result<A, LimitError>>,
        Op: Fn(A) -> OpFut,
        OpFut: Future<Output = Result<T, E>>,
    {
        // std's clock: cheaper than tokio's under `test-util`, and only reported.
        let began = std::time::Instant::now();
        // A state change never waits past its send-by instant, and is not sent after it.
        let send_by = (call.effect == Effect::StateChange).then(send_by).flatten();
        let call = match send_by {
            // Never lengthens a shorter bound the caller set.
            Some(at) => call.waits_until(at.min(call.waits_until)),
            None => call,
        };
        let op = &op;
        let mut once = || {
            // Not polled before the pause gate lets the call through.
            let admitted = admit(call.waits_until);
            async move {
                self.pause
                    .pass(&self.target, call.what, call.effect, call.waits_until)
                    .await
                    .map_err(|r| Step::Refused(E::from(r)))?;
                let drawn = admitted.await.map_err(|error| {
                    Step::Refused(E::from(Refusal::Limited {
                        target: self.target.clone(),
                        what: call.what.to_string(),
                        error,
                    }))
                })?;
                let permit = self
                    .breaker
                    .check()
                    .map_err(|e| Step::Refused(E::from(Refusal::Breaker(e))))?;
                if send_by.is_some_and(|at| Instant::now() >= at) {
                    return Err(Step::Refused(E::from(Refusal::SendByPassed {
                        target: self.target.clone(),
                        what: call.what.to_string(),
                    })));
                }
                let started = std::time::Instant::now();
                let result = op(drawn).await;
                permit.record(&result, started.elapsed());
                result.map_err(Step::Failed)
            }
        };
        if call.effect == Effect::StateChange {
            // At most once, whatever the class: the caller settles an unknown outcome by
            // a query. Not cut here: cutting the send would lose whether it left, so the
            // op bounds it by the deadline itself and says "unknown" when it cannot tell.
            return once().await.map_err(Step::into_inner);
        }
        if !call.retry_in_place {
            return match tokio::time::timeout_at(call.deadline, once()).await {
                Ok(result) => result.map_err(Step::into_inner),
                Err(_) => Err(E::from(Refusal::DeadlineElapsed {
                    target: self.target.clone(),
                    what: call.what.to_string(),
                    attempts: 1,
                    after: began.elapsed(),
                })),
            };
        }
        self.retry
            .run_within(call.deadline, call.waits_until, once)
            .await
            .map_err(|e| match e {
                RetryError::NotRetryable { error, .. }
                | RetryError::Exhausted { error, .. }
                | RetryError::WouldPassDeadline { error, .. } => error.into_inner(),
                RetryError::DeadlineElapsed { attempts } => E::from(Refusal::DeadlineElapsed {
                    target: self.target.clone(),
                    what: call.what.to_string(),
                    attempts,
                    after: began.elapsed(),
                }),
            })
    }
}

#[cfg(test)]
mod tests;
