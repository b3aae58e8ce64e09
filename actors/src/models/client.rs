//! How agents reach the model router: by the `Ask` and `Swarm` messages only, through the
//! router's supervisor slot, whose address changes when the router is restarted.

use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Handler};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::router::{Swarm, SwarmReply};
use super::types::{Ask, ModelError, ModelRequest, ModelResponse};
use crate::supervisor::Slot;

/// Grace beyond a request's own timeout before the caller gives up on the router itself;
/// the router answers a deadline error first in every normal case.
const ROUTER_GRACE: Duration = Duration::from_millis(250);

type Send = Arc<
    dyn Fn(Ask) -> BoxFuture<'static, Result<ModelResponse, ModelError>> + std::marker::Send + Sync,
>;

type SendSwarm = Arc<
    dyn Fn(Swarm) -> BoxFuture<'static, Result<Vec<SwarmReply>, ModelError>>
        + std::marker::Send
        + Sync,
>;

/// A cloneable handle to "whatever currently serves `Ask` and `Swarm`".
#[derive(Clone)]
pub struct ModelClient {
    send: Send,
    send_swarm: SendSwarm,
}

impl std::fmt::Debug for ModelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelClient")
    }
}

impl ModelClient {
    /// Sends through a supervisor slot (the engine's router).
    pub fn from_slot<A>(slot: Slot<A>) -> Self
    where
        A: Actor + Handler<Ask> + Handler<Swarm>,
        A::Context: ToEnvelope<A, Ask> + ToEnvelope<A, Swarm>,
    {
        let swarm_slot = slot.clone();
        Self {
            send_swarm: Arc::new(move |swarm| {
                let sent = swarm_slot.send(swarm);
                async move {
                    sent.await.map_err(|slot| ModelError::RouterUnavailable {
                        reason: slot.to_string(),
                    })
                }
                .boxed()
            }),
            send: Arc::new(move |ask| {
                let sent = slot.send(ask);
                async move {
                    sent.await.unwrap_or_else(|slot| {
                        Err(ModelError::RouterUnavailable {
                            reason: slot.to_string(),
                        })
                    })
                }
                .boxed()
            }),
        }
    }

    /// Sends one request; always returns within the request's timeout plus a small grace.
    pub async fn ask(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        let model = request.model.clone();
        let timeout = request.timeout;
        match tokio::time::timeout(timeout + ROUTER_GRACE, (self.send)(Ask(request))).await {
            Ok(answer) => answer,
            Err(_) => Err(ModelError::DeadlineExceeded { model, timeout }),
        }
    }

    /// Asks every one of `models` the same request at once through the router's
    /// [`Swarm`]; a member still running at `deadline` comes back as
    /// [`ModelError::Abandoned`]. Always returns within `deadline` plus a small grace: a
    /// router that does not answer by then is [`ModelError::DeadlineExceeded`] (every
    /// member counts as timed out).
    pub async fn swarm(
        &self,
        models: Vec<String>,
        request: ModelRequest,
        deadline: Duration,
    ) -> Result<Vec<SwarmReply>, ModelError> {
        let model = models.join(",");
        let msg = Swarm {
            models,
            request,
            deadline,
        };
        match tokio::time::timeout(deadline + ROUTER_GRACE, (self.send_swarm)(msg)).await {
            Ok(replies) => replies,
            Err(_) => Err(ModelError::DeadlineExceeded {
                model,
                timeout: deadline,
            }),
        }
    }
}
