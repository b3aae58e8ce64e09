//! Streamed asks: [`AskStream`] is routed like [`crate::models::Ask`] — same strategy
//! order, context-window filter, cooldown and pool-liveness skips, deadline from receipt,
//! failover, accounting and metrics — but each attempt goes to the pool's streaming path
//! ([`CompleteStream`]) and the answer's text reaches the caller's channel as it arrives.
//!
//! Owns: relaying one attempt's deltas to the caller, and the failover rule for streams:
//! a deployment that fails before any text reached the caller is failed over exactly as
//! for `Ask`; once text was delivered, a failure is returned as the error (counted in
//! `orrery_model_stream_interrupted_total`), never continued on a sibling — the caller
//! would read two deployments' answers spliced together.
//!
//! Streams do not join single-flight (one caller's deltas cannot be replayed to a second
//! one mid-stream). A `cacheable` request to a model with a `cache_ttl` is answered from
//! the cache when it can (the whole text as one delta) and its streamed answer is cached.
//! Every delta forwarded is a non-empty piece of the final text, in order; the reply's
//! `text` is their concatenation.

use std::future::Future;
use std::sync::Arc;

use actix::{Handler, MailboxError, Message, ResponseFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::context::ContextFloor;
use super::{fail_over_on, strategy, Core, DeploymentRoute, LogicalRoute, ModelRouter};
use crate::models::pool::{deadline_after, CompleteStream};
use crate::models::types::{ModelError, ModelRequest, ModelResponse};
use crate::resilience::ErrorClass;

/// Deltas buffered between a pool and the relay; a slow caller holds the provider back
/// (each send is bounded by the deadline) rather than growing memory.
const DELTA_BUFFER: usize = 64;

/// Ask the router for one answer, streamed into `deltas` as it arrives. The reply (the
/// whole answer with who served it, or why there is none) comes after the last delta.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ModelResponse, ModelError>")]
pub struct AskStream {
    pub request: ModelRequest,
    /// A closed receiver is not an error: the answer is still served and accounted.
    pub deltas: mpsc::Sender<String>,
}

impl Handler<AskStream> for ModelRouter {
    type Result = ResponseFuture<Result<ModelResponse, ModelError>>;

    fn handle(&mut self, msg: AskStream, _ctx: &mut Self::Context) -> Self::Result {
        let deadline = deadline_after(Instant::now(), msg.request.timeout);
        let core = self.core.clone();
        Box::pin(async move {
            let name = msg.request.model.clone();
            let Some(route) = core.routes.get(&name).cloned() else {
                return Err(core.unknown_model(&name));
            };
            let timeout = msg.request.timeout;
            let served = core.serve_stream(&name, &route, msg.request, &msg.deltas, deadline);
            match tokio::time::timeout_at(deadline, served).await {
                Ok(answer) => answer,
                Err(_) => Err(ModelError::DeadlineExceeded {
                    model: name,
                    timeout,
                }),
            }
        })
    }
}

impl Core {
    /// The cache, then the deployments in strategy order.
    async fn serve_stream(
        &self,
        name: &str,
        route: &LogicalRoute,
        request: ModelRequest,
        caller: &mpsc::Sender<String>,
        deadline: Instant,
    ) -> Result<ModelResponse, ModelError> {
        let cache_ttl = route.cache_ttl.filter(|_| request.cacheable);
        let key = cache_ttl.map(|_| super::RequestKey::of(name, &request));
        if let Some(key) = &key {
            if let Some((response, _level)) = self.cache.get(name, key) {
                let mut relay = Relay::new(caller, deadline);
                relay.forward(response.text.clone()).await;
                return Ok(response);
            }
        }
        let result = self
            .upstream_stream(name, route, request, caller, deadline)
            .await;
        if let (Ok(response), Some(key), Some(ttl)) = (&result, &key, cache_ttl) {
            self.cache.put(key, response, ttl);
        }
        result
    }

    async fn upstream_stream(
        &self,
        model: &str,
        logical: &LogicalRoute,
        request: ModelRequest,
        caller: &mpsc::Sender<String>,
        deadline: Instant,
    ) -> Result<ModelResponse, ModelError> {
        let timeout = request.timeout;
        let deadline_exceeded = || ModelError::DeadlineExceeded {
            model: model.to_string(),
            timeout,
        };
        let candidates = self.candidates(model, logical, &request)?;
        let request = Arc::new(request);
        let mut attempts: Vec<String> = Vec::new();
        let mut tried = 0usize;
        let mut too_small = ContextFloor::default();
        for (i, d) in candidates.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                return Err(deadline_exceeded());
            }
            if let Some(skipped) = too_small
                .skip_reason(d)
                .or_else(|| self.skip_reason(d, now))
            {
                attempts.push(skipped);
                continue;
            }
            let Some(pool) = d.pool.addr() else {
                attempts.push(format!(
                    "{}: skipped, its pool is not running",
                    d.deployment
                ));
                continue;
            };
            tried += 1;
            let (tx, rx) = mpsc::channel(DELTA_BUFFER);
            let mut relay = Relay::new(caller, deadline);
            let sent = relay
                .run(
                    rx,
                    pool.send(CompleteStream {
                        request: request.clone(),
                        deadline,
                        deltas: tx,
                    }),
                )
                .await;
            let delivered = relay.delivered;
            let failure = match sent {
                None => return Err(deadline_exceeded()),
                Some(Ok(Ok(response))) => {
                    self.accounting
                        .record(&d.deployment, response.usage, d.prices);
                    return Ok(response);
                }
                Some(Ok(Err(e))) if delivered > 0 => {
                    return Err(interrupted(model, &d.deployment, e, delivered))
                }
                Some(Ok(Err(e))) => {
                    if !fail_over_on(&e) {
                        return Err(e);
                    }
                    too_small.raise(model, d, &e);
                    if Instant::now() >= deadline {
                        return Err(deadline_exceeded());
                    }
                    e.to_string()
                }
                Some(Err(e)) if delivered > 0 => {
                    let stopped = ModelError::Provider {
                        deployment: d.deployment.clone(),
                        class: ErrorClass::Unavailable,
                        message: format!("its pool stopped mid-stream: {e}"),
                    };
                    return Err(interrupted(model, &d.deployment, stopped, delivered));
                }
                Some(Err(MailboxError::Closed)) => format!(
                    "{}: its pool stopped before answering (the request was re-dispatched)",
                    d.deployment
                ),
                Some(Err(MailboxError::Timeout)) => {
                    format!("{}: its pool's mailbox timed out", d.deployment)
                }
            };
            tracing::debug!(model = %model, deployment = %d.deployment, "streamed model request failed over before any text: {failure}");
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

    /// The deployments to try, in strategy order, without those whose context window
    /// is too small; an error when there is none to try. Shared by `upstream`.
    pub(super) fn candidates<'a>(
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
        let needed = strategy::estimated_tokens(request);
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

    /// Why `d` is not tried now (it is cooling down), if it is not.
    fn skip_reason(&self, d: &DeploymentRoute, now: Instant) -> Option<String> {
        let until = self
            .health
            .get(&d.deployment)
            .and_then(|h| h.cooling_down_until())
            .filter(|until| now < *until)?;
        Some(format!(
            "{}: skipped, cooling down for another {:?}",
            d.deployment,
            until - now
        ))
    }
}

/// Passes one attempt's deltas on to the caller while the pool works, counting the
/// characters delivered.
struct Relay<'a> {
    caller: &'a mpsc::Sender<String>,
    deadline: Instant,
    delivered: usize,
}

impl<'a> Relay<'a> {
    fn new(caller: &'a mpsc::Sender<String>, deadline: Instant) -> Self {
        Self {
            caller,
            deadline,
            delivered: 0,
        }
    }

    /// Relays `deltas` until `reply` resolves, then the deltas sent just before it;
    /// `None` when the deadline passed first.
    async fn run<R: Future>(
        &mut self,
        mut deltas: mpsc::Receiver<String>,
        reply: R,
    ) -> Option<R::Output> {
        let reply = tokio::time::timeout_at(self.deadline, reply);
        tokio::pin!(reply);
        let outcome = loop {
            tokio::select! {
                // Deltas first: every one sent before the reply is relayed before it.
                biased;
                Some(delta) = deltas.recv() => self.forward(delta).await,
                outcome = &mut reply => break outcome,
            }
        };
        // The provider is done: what it sent is already buffered (nothing waits on
        // a sender that may still be alive somewhere).
        while let Ok(delta) = deltas.try_recv() {
            self.forward(delta).await;
        }
        outcome.ok()
    }

    /// One delta to the caller, within the deadline. A caller that stopped listening
    /// still counts as served: the text left this router.
    async fn forward(&mut self, delta: String) {
        if delta.is_empty() {
            return;
        }
        self.delivered += delta.chars().count();
        let _ = tokio::time::timeout_at(self.deadline, self.caller.send(delta)).await;
    }
}

/// A failure after `delivered` characters reached the caller: returned, not failed over,
/// with a note saying so.
fn interrupted(model: &str, deployment: &str, e: ModelError, delivered: usize) -> ModelError {
    metrics::counter!("orrery_model_stream_interrupted_total", "model" => model.to_string(), "deployment" => deployment.to_string())
        .increment(1);
    let note = format!(
        "the stream broke after {delivered} characters were delivered; not failed over, so the answer is never spliced from two deployments; ask again"
    );
    match e {
        ModelError::Provider {
            deployment,
            class,
            message,
        } => ModelError::Provider {
            deployment,
            class,
            message: format!("{message} ({note})"),
        },
        ModelError::Malformed { deployment, reason } => ModelError::Malformed {
            deployment,
            reason: format!("{reason} ({note})"),
        },
        other => other,
    }
}

/// Describes this module's metrics (HELP lines); [`super::describe`] calls it.
pub(super) fn describe() {
    metrics::describe_counter!(
        "orrery_model_stream_interrupted_total",
        "Streamed model requests whose deployment failed after text had reached the caller, by logical model and deployment; returned as errors, never failed over."
    );
}

#[cfg(test)]
mod tests;
