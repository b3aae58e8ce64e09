//! Agents: one module per agent kind, each an [`runtime::AgentKind`] that the one runtime
//! ([`runtime::AgentRunner`], a supervised actor) runs on its schedule with a deadline per
//! run, pause/resume, memory and metrics. Agents reach models and venues only through the
//! router's and gateway's messages.

pub mod copy;
pub mod funding;
pub mod http_body;
pub mod journal;
pub mod liquidations;
pub mod member;
pub mod memory;
pub mod open_interest;
pub mod pipeline;
pub mod prompt;
pub mod rbi;
pub mod risk;
pub mod runtime;
pub mod sentiment;
pub mod strategy;
pub mod swarm;
pub mod trading;
mod trading_deps;

pub use journal::{Abstention, DecisionJournal, DecisionMode, DecisionRecord, MemberAnswer};
pub use memory::{AgentControl, AgentMemory, MemoryStore};

use actix::{Handler, Message};

use crate::exchanges::gateway::{DeliveryFailure, GatewayError, GatewayResult, OrderGateway};
use crate::exchanges::risk_gate::Refusal;
use crate::exchanges::VenueError;
use crate::supervisor::{Slot, SlotError};

/// A gateway request that did not succeed, as an agent receives it: typed, so the agent
/// decides on the kind (a risk-gate refusal, an order whose outcome is unknown, a gateway
/// that did not answer) and journals the text.
#[derive(Debug, thiserror::Error)]
pub enum GatewayCallError {
    /// The gateway did not answer: restarting, stopped, its mailbox full, or late.
    #[error(transparent)]
    Unreachable(#[from] SlotError),
    /// The gateway answered with an error.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl GatewayCallError {
    /// The risk gate's refusal, when that is what this is: a decision about the order,
    /// not a failure of the agent.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            GatewayCallError::Gateway(GatewayError::Refused { refusal, .. }) => Some(refusal),
            _ => None,
        }
    }

    /// Whether an order this request carried may have reached a venue although the
    /// request failed: the gateway settles it by a read (never by sending again), so the
    /// agent must not act as if nothing was sent. A gateway that never got the request
    /// (vacant, full) sent nothing; one that died with it or answered late may have.
    pub fn order_outcome_unknown(&self) -> bool {
        match self {
            GatewayCallError::Unreachable(e) => DeliveryFailure::of(e).may_have_been_sent(),
            GatewayCallError::Gateway(e) => match e {
                GatewayError::Unresolved { .. } => true,
                GatewayError::Venue(
                    VenueError::OutcomeUnknown { .. } | VenueError::Timeout { .. },
                ) => true,
                GatewayError::ConnectorDown { delivery, .. } => delivery.may_have_been_sent(),
                _ => false,
            },
        }
    }

    /// Short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayCallError::Unreachable(_) => "gateway_unreachable",
            GatewayCallError::Gateway(e) => e.label(),
        }
    }
}

/// One request to the gateway; a gateway that did not answer and a refused request both
/// come back typed ([`GatewayCallError`]).
pub(crate) async fn gateway_call<M, T>(
    gateway: &Slot<OrderGateway>,
    msg: M,
) -> Result<T, GatewayCallError>
where
    M: Message<Result = GatewayResult<T>> + Send + 'static,
    T: Send + 'static,
    OrderGateway: Handler<M>,
{
    Ok(gateway.send(msg).await??)
}

#[cfg(test)]
mod tests;
