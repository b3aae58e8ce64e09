//! Streamed asks: [`AskStream`] is routed like [`crate::models::Ask`] — same strategy
//! order, context-window filter, cooldown and pool-liveness skips, deadline from receipt,
//! failover (the `failover` module's one path), accounting, metrics and the attempt log —
//! but each attempt goes to the pool's streaming path (`Complete` with its deltas) and
//! the answer's text reaches the caller's channel as it arrives.
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

use actix::{Handler, Message, ResponseFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Core, LogicalRoute, ModelRouter};
use crate::models::pool::deadline_after;
use crate::models::types::{ModelError, ModelRequest, ModelResponse};

/// Deltas buffered between a pool and the relay; a slow caller holds the provider back
/// (each send is bounded by the deadline) rather than growing memory.
pub(super) const DELTA_BUFFER: usize = 64;

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
            .upstream(name, route, &request, deadline, Some(caller))
            .await;
        if let (Ok(response), Some(key), Some(ttl)) = (&result, &key, cache_ttl) {
            self.cache.put(key, response, ttl);
        }
        result
    }
}

/// Passes one attempt's deltas on to the caller while the pool works, counting the
/// characters delivered.
pub(super) struct Relay<'a> {
    caller: &'a mpsc::Sender<String>,
    deadline: Instant,
    pub(super) delivered: usize,
}

impl<'a> Relay<'a> {
    pub(super) fn new(caller: &'a mpsc::Sender<String>, deadline: Instant) -> Self {
        Self {
            caller,
            deadline,
            delivered: 0,
        }
    }

    /// Relays `deltas` until `reply` resolves, then the deltas sent just before it;
    /// `None` when the deadline passed first.
    pub(super) async fn run<R: Future>(
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
    pub(super) async fn forward(&mut self, delta: String) {
        if delta.is_empty() {
            return;
        }
        self.delivered += delta.chars().count();
        let _ = tokio::time::timeout_at(self.deadline, self.caller.send(delta)).await;
    }
}

/// A failure after `delivered` characters reached the caller: returned, not failed over,
/// with a note saying so.
pub(super) fn interrupted(
    model: &str,
    deployment: &str,
    e: ModelError,
    delivered: usize,
) -> ModelError {
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
