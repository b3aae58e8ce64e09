//! The pool's streaming entry point: [`CompleteStream`] takes the same path as
//! [`super::Complete`] (admission, the deadline, health, cooldown, metrics) but calls the
//! provider's streaming method, whose text deltas go into the caller's channel as they
//! arrive.
//!
//! Owns: the message and its handler. Never: decides what a failure after a delta means
//! (the router does: it never fails over once text reached its caller).

use std::sync::Arc;

use actix::{Handler, Message, ResponseFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ModelPool;
use crate::models::types::{ModelError, ModelRequest, ModelResponse};

/// Ask one pool for one completion, streamed. The router sends this; agents never do.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ModelResponse, ModelError>")]
pub struct CompleteStream {
    pub request: Arc<ModelRequest>,
    /// The caller's deadline (failover included); the pool answers by then at the latest.
    pub deadline: Instant,
    /// Receives the answer's text deltas. The pool's reply (the whole answer, or why
    /// there is none) comes after the last delta was sent.
    pub deltas: mpsc::Sender<String>,
}

impl Handler<CompleteStream> for ModelPool {
    type Result = ResponseFuture<Result<ModelResponse, ModelError>>;

    fn handle(&mut self, msg: CompleteStream, _ctx: &mut Self::Context) -> Self::Result {
        let call = self.call.clone();
        Box::pin(async move { call.run(&msg.request, msg.deadline, Some(msg.deltas)).await })
    }
}
