//! Failover: the one path every upstream call takes, whole ([`crate::models::Ask`],
//! swarm members) or streamed ([`super::AskStream`]): the deployments to try in strategy
//! order, who is skipped, how a pool is reached, and what moves on.
//!
//! Owns: the candidate list (strategy order, context-window filter), the skips (cooling
//! down, pool not running, context window already found too small), the per-attempt
//! [`OnFailure`] (whether a sibling is left), the attempt log of the answer, and the
//! fallback metric. Never: retries in place itself (the pool's provider does, and only
//! for the last candidate), caches or coalesces (the router's `serve`), or decides what
//! a stream's delivered text means beyond "never fail over after it" (see `stream`).
//!
//! Moving on: while a sibling remains that could still be tried (not cooling down, pool
//! running, not ruled out by the context window), an attempt runs under
//! [`OnFailure::MoveOn`]: the provider returns its first failure at once instead of
//! retrying in place, and the pool cools the deployment down, so a chain of broken
//! deployments in front of a healthy one costs one call each (a hung one its first-byte
//! timeout) and the next requests go straight to the healthy one. The last candidate runs
//! under [`OnFailure::RetryInPlace`]: retries are for when nothing else is left.
//!
//! Reaching a pool: a pool running on the router's own arbiter lends its call path
//! ([`crate::models::pool::Lane`]), run in the request's task; any other is sent
//! [`Complete`] through its [`super::PoolHandle`] under the request's deadline. Both
//! carry the deltas channel when streaming.

use std::sync::Arc;

use actix::MailboxError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::context::ContextFloor;
use super::stream::{interrupted, Relay, DELTA_BUFFER};
use super::{strategy, Core, DeploymentRoute, LogicalRoute};
use crate::models::pool::{Complete, DeploymentHealth, OnFailure};
use crate::models::types::{duration_ms, Attempt, ModelError, ModelRequest, ModelResponse};
use crate::resilience::ErrorClass;

/// What came of reaching one pool.
enum Reached {
    /// The pool's answer, or why it has none.
    Answer(Result<ModelResponse, ModelError>),
    /// The pool's actor went away (or its mailbox timed out) with the request.
    Mailbox(MailboxError),
    /// Its pool is not running: nothing was sent.
    NotRunning,
    /// The caller's deadline passed first.
    Expired,
}

impl Core {
    /// The deployments of `logical` in turn until one answers; see the module docs.
    /// Streamed into `caller` when given.
    pub(super) async fn upstream(
        &self,
        model: &str,
        logical: &LogicalRoute,
        request: &ModelRequest,
        deadline: Instant,
        caller: Option<&mpsc::Sender<String>>,
    ) -> Result<ModelResponse, ModelError> {
        let timeout = request.timeout;
        let deadline_exceeded = || ModelError::DeadlineExceeded {
            model: model.to_string(),
            timeout,
        };
        let candidates = self.candidates(model, logical, request)?;
        let mut attempts: Vec<String> = Vec::new();
        // The same story for the answer: who was tried, how, for how long.
        let mut tried_log: Vec<Attempt> = Vec::new();
        let mut tried = 0usize;
        let mut too_small = ContextFloor::default();
        let mut shared: Option<Arc<ModelRequest>> = None;
        for (i, d) in candidates.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                return Err(deadline_exceeded());
            }
            let health = self.health.get(&d.deployment);
            if let Some(skipped) = too_small
                .skip_reason(d)
                .or_else(|| cooling_down(d, health.as_deref(), now))
            {
                tried_log.push(Attempt::skipped(&d.deployment, &skipped));
                attempts.push(skipped);
                continue;
            }
            let later = &candidates[i + 1..];
            let on_failure = if self.sibling_left(later, &too_small, now) {
                OnFailure::MoveOn
            } else {
                OnFailure::RetryInPlace
            };
            let (deltas, rx) = match caller {
                Some(_) => {
                    let (tx, rx) = mpsc::channel(DELTA_BUFFER);
                    (Some(tx), Some(rx))
                }
                None => (None, None),
            };
            let reach = self.reach(
                d,
                health.as_deref(),
                request,
                &mut shared,
                deadline,
                on_failure,
                deltas,
            );
            let (reached, delivered) = match (caller, rx) {
                (Some(caller), Some(rx)) => {
                    let mut relay = Relay::new(caller, deadline);
                    // Boxed: the relay's state would otherwise enlarge every call's
                    // future, streamed or not.
                    let reached = Box::pin(relay.run(rx, reach))
                        .await
                        .unwrap_or(Reached::Expired);
                    (reached, relay.delivered)
                }
                _ => (reach.await, 0),
            };
            let failure = match reached {
                Reached::Expired => return Err(deadline_exceeded()),
                Reached::NotRunning => {
                    let why = format!("{}: skipped, its pool is not running", d.deployment);
                    tried_log.push(Attempt::skipped(&d.deployment, &why));
                    attempts.push(why);
                    continue;
                }
                Reached::Answer(Ok(mut response)) => {
                    self.accounting
                        .record(&d.deployment, response.usage, d.prices);
                    response.cost_usd = d.prices.priced().then(|| d.prices.cost(response.usage));
                    tried_log.push(Attempt {
                        deployment: d.deployment.clone(),
                        outcome: "ok".into(),
                        detail: None,
                        ms: duration_ms::as_ms(now.elapsed()),
                    });
                    response.attempts = tried_log;
                    return Ok(response);
                }
                Reached::Answer(Err(e)) if delivered > 0 => {
                    return Err(interrupted(model, &d.deployment, e, delivered))
                }
                Reached::Answer(Err(e)) => {
                    tried += 1;
                    if !fail_over_on(&e) {
                        return Err(e);
                    }
                    too_small.raise(model, d, &e);
                    if Instant::now() >= deadline {
                        return Err(deadline_exceeded());
                    }
                    e.to_string()
                }
                Reached::Mailbox(e) if delivered > 0 => {
                    let stopped = ModelError::Provider {
                        deployment: d.deployment.clone(),
                        class: ErrorClass::Unavailable,
                        message: format!("its pool stopped mid-stream: {e}"),
                    };
                    return Err(interrupted(model, &d.deployment, stopped, delivered));
                }
                Reached::Mailbox(MailboxError::Closed) => {
                    tried += 1;
                    format!(
                        "{}: its pool stopped before answering (the request was re-dispatched)",
                        d.deployment
                    )
                }
                Reached::Mailbox(MailboxError::Timeout) => {
                    tried += 1;
                    format!("{}: its pool's mailbox timed out", d.deployment)
                }
            };
            tracing::debug!(model = %model, deployment = %d.deployment, ?on_failure, "model request failed over before any text: {failure}");
            tried_log.push(Attempt {
                deployment: d.deployment.clone(),
                outcome: "failed".into(),
                detail: Some(failure.clone()),
                ms: duration_ms::as_ms(now.elapsed()),
            });
            attempts.push(failure);
            if i + 1 < candidates.len() {
                metrics::counter!("orrery_model_fallbacks_total", "model" => model.to_string(), "from" => d.deployment.clone())
                    .increment(1);
            }
        }
        if tried == 0 {
            return Err(ModelError::NoDeployment {
                model: model.to_string(),
                reason: format!("no healthy deployment: {}", attempts.join("; ")),
            });
        }
        Err(ModelError::AllFailed {
            model: model.to_string(),
            attempts,
        })
    }

    /// One call to `d`'s pool: its lane when it runs on this arbiter, else a message.
    #[allow(clippy::too_many_arguments)]
    async fn reach(
        &self,
        d: &DeploymentRoute,
        health: Option<&DeploymentHealth>,
        request: &ModelRequest,
        shared: &mut Option<Arc<ModelRequest>>,
        deadline: Instant,
        on_failure: OnFailure,
        deltas: Option<mpsc::Sender<String>>,
    ) -> Reached {
        if let Some(lane) = health.and_then(DeploymentHealth::local_lane) {
            // Every wait in the lane's call is bounded by the deadline.
            return Reached::Answer(lane.complete(request, deadline, on_failure, deltas).await);
        }
        // Shared with the pool's task; made once per request, only for this path.
        let request = shared
            .get_or_insert_with(|| Arc::new(request.clone()))
            .clone();
        let complete = Complete {
            request,
            deadline,
            on_failure,
            deltas,
        };
        let Some(sent) = d.pool.complete(complete) else {
            return Reached::NotRunning;
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Err(_elapsed) => Reached::Expired,
            Ok(Ok(answer)) => Reached::Answer(answer),
            Ok(Err(e)) => Reached::Mailbox(e),
        }
    }

    /// Whether any of `later` could still be tried now: not ruled out by the context
    /// window, not cooling down, its pool running.
    fn sibling_left(&self, later: &[&DeploymentRoute], floor: &ContextFloor, now: Instant) -> bool {
        later.iter().any(|d| {
            floor.admits(d)
                && !self
                    .health
                    .get(&d.deployment)
                    .is_some_and(|h| h.is_cooling_down(now))
                && d.pool.is_running()
        })
    }

    /// The deployments to try, in strategy order, without those whose context window
    /// is too small; an error when there is none to try.
    fn candidates<'a>(
        &self,
        model: &str,
        logical: &'a LogicalRoute,
        request: &ModelRequest,
    ) -> Result<Vec<&'a DeploymentRoute>, ModelError> {
        if logical.deployments.is_empty() {
            return Err(ModelError::NoDeployment {
                model: model.to_string(),
                reason: format!("[models.{model}] has no deployments"),
            });
        }
        let needed = request.estimated_tokens();
        let candidates = strategy::order(
            logical.strategy,
            &logical.deployments,
            &self.health,
            needed,
            &mut *self.rng.lock(),
        );
        if candidates.is_empty() {
            let largest = logical
                .deployments
                .iter()
                .filter_map(|d| d.context_window)
                .max()
                .unwrap_or(0);
            return Err(ModelError::NoDeployment {
                model: model.to_string(),
                reason: format!(
                    "the prompt is too large: about {needed} tokens (prompt at 4 characters a token plus max_tokens {}) and the largest context_window of its deployments is {largest}; shorten the prompt or lower max_tokens",
                    request.max_tokens
                ),
            });
        }
        Ok(candidates)
    }
}

/// Why `d` is not tried now (it is cooling down), if it is not.
fn cooling_down(
    d: &DeploymentRoute,
    health: Option<&DeploymentHealth>,
    now: Instant,
) -> Option<String> {
    let until = health
        .and_then(DeploymentHealth::cooling_down_until)
        .filter(|until| now < *until)?;
    Some(format!(
        "{}: skipped, cooling down for another {:?}",
        d.deployment,
        until - now
    ))
}

/// Whether another deployment might succeed where this one failed.
pub(super) fn fail_over_on(e: &ModelError) -> bool {
    match e {
        ModelError::Provider { class, .. } => {
            !matches!(class, ErrorClass::Auth | ErrorClass::BadRequest)
        }
        ModelError::Malformed { .. } => true,
        // Only to a sibling with a larger context window (see `context`).
        ModelError::ContextTooLong { .. } => true,
        ModelError::DeadlineExceeded { .. } => false,
        ModelError::NoDeployment { .. }
        | ModelError::AllFailed { .. }
        | ModelError::RouterUnavailable { .. } => true,
        ModelError::Abandoned { .. } => false,
    }
}
