//! Agents: one module per agent kind. Each runs on its own schedule as a supervised actor
//! and reaches models and venues only through the router's and gateway's messages.

pub mod journal;
pub mod memory;
pub mod prompt;
pub mod risk;
pub mod trading;

pub use journal::{DecisionJournal, DecisionRecord};
pub use memory::{AgentControl, AgentMemory, MemoryStore};

use actix::{Handler, Message};

use crate::exchanges::gateway::{GatewayResult, OrderGateway};
use crate::supervisor::Slot;

/// One request to the gateway, with a dead gateway and a refused request both reduced to
/// the message an agent journals.
pub(crate) async fn gateway_call<M, T>(gateway: &Slot<OrderGateway>, msg: M) -> Result<T, String>
where
    M: Message<Result = GatewayResult<T>> + Send + 'static,
    T: Send + 'static,
    OrderGateway: Handler<M>,
{
    match gateway.send(msg).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
