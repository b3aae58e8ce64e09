//! Typed venue commands: everything the gateway asks of a venue, as data.
//!
//! Owns: [`VenueCommand`] (one variant per venue operation), its metric endpoint label and
//! its own priority, the [`VenueRequest`] message that carries a command to a connector
//! with the one priority it is queued and served at, and the [`VenueReply`] it answers with.
//! Never: sends anything itself (the connector runs a command against its venue) or
//! decides what to do with a failure (the gateway does).
//!
//! Priority is decided once, where the request is made ([`VenueRequest::in_flow`]): the
//! more urgent of the command's own priority ([`VenueCommand::priority`]: cancels and
//! reduce-only orders High, new orders and leverage Medium, reads Low) and the priority of
//! the gateway flow it serves (a close's reads are High, see [`call_priority`]). The
//! connector queues the request by it and serves the venue call at it
//! ([`call_priority::within`]), where a venue's limiter reads it
//! ([`call_priority::current`]); neither re-derives it.
//!
//! A market order carries the reference price the gateway read (inside its
//! [`RiskApproved`] approval), so the venue bounds the order's slippage from the same
//! price the risk gate judged instead of reading the market a second time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use super::call_priority;
use super::risk_gate::RiskApproved;
use super::types::*;
use super::venue::{Venue, VenueError, VenueResult};
use crate::clock::Millis;
use crate::resilience::Priority;

/// One operation on a venue account.
#[derive(Debug, Clone)]
pub enum VenueCommand {
    Instrument {
        symbol: String,
    },
    Quote {
        symbol: String,
    },
    /// The newest `lookback` candles, oldest first.
    Candles {
        symbol: String,
        timeframe: Timeframe,
        lookback: usize,
    },
    /// Send one order the risk gate approved.
    PlaceOrder {
        order: RiskApproved<OrderRequest>,
    },
    /// Cancel one of our orders by its client id.
    CancelOrder {
        symbol: String,
        client_id: ClientOrderId,
    },
    /// Cancel an order placed outside this engine by the venue's own order id.
    CancelByVenueId {
        symbol: String,
        venue_order_id: String,
    },
    /// The venue's view of one order, by client id.
    QueryOrder {
        symbol: String,
        client_id: ClientOrderId,
    },
    OpenOrders,
    /// Fills at or after `since_ms`, oldest first.
    FillsSince {
        since_ms: Millis,
    },
    Positions,
    Account,
    /// Balances and positions from one read.
    AccountState,
    SetLeverage {
        symbol: String,
        leverage: u32,
    },
    /// The leverage the venue applies to new orders in `symbol`.
    Leverage {
        symbol: String,
    },
    /// The venue's [`Venue::order_validity`].
    OrderValidity,
}

impl VenueCommand {
    /// The endpoint label of this command in the `orrery_venue_requests_total` and
    /// request-duration metrics.
    pub fn endpoint(&self) -> &'static str {
        match self {
            VenueCommand::Instrument { .. } => "instrument",
            VenueCommand::Quote { .. } => "quote",
            VenueCommand::Candles { .. } => "candles",
            VenueCommand::PlaceOrder { .. } => "place_order",
            VenueCommand::CancelOrder { .. } | VenueCommand::CancelByVenueId { .. } => {
                "cancel_order"
            }
            VenueCommand::QueryOrder { .. } => "query_order",
            VenueCommand::OpenOrders => "open_orders",
            VenueCommand::FillsSince { .. } => "fills",
            VenueCommand::Positions => "positions",
            VenueCommand::Account => "account",
            VenueCommand::AccountState => "account_state",
            VenueCommand::SetLeverage { .. } => "set_leverage",
            VenueCommand::Leverage { .. } => "leverage",
            VenueCommand::OrderValidity => "order_validity",
        }
    }

    /// The command's own priority, outside any flow: cancels and reduce-only orders (they
    /// cut risk) High; new orders and leverage updates Medium; every read Low (a read made
    /// for an order, a close or reconciliation takes that flow's priority instead).
    pub fn priority(&self) -> Priority {
        match self {
            VenueCommand::CancelOrder { .. } | VenueCommand::CancelByVenueId { .. } => {
                Priority::High
            }
            VenueCommand::PlaceOrder { order } => order_priority(order.reduce_only),
            VenueCommand::SetLeverage { .. } => Priority::Medium,
            VenueCommand::Instrument { .. }
            | VenueCommand::Quote { .. }
            | VenueCommand::Candles { .. }
            | VenueCommand::QueryOrder { .. }
            | VenueCommand::OpenOrders
            | VenueCommand::FillsSince { .. }
            | VenueCommand::Positions
            | VenueCommand::Account
            | VenueCommand::AccountState
            | VenueCommand::Leverage { .. }
            | VenueCommand::OrderValidity => Priority::Low,
        }
    }

    /// Whether the command changes state at the venue (an order, a cancel, a leverage
    /// update): sent at most once, so it moves to a sibling connector only when it was
    /// never delivered (see [`super::siblings::move_on`]). Every other command is a read.
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            VenueCommand::PlaceOrder { .. }
                | VenueCommand::CancelOrder { .. }
                | VenueCommand::CancelByVenueId { .. }
                | VenueCommand::SetLeverage { .. }
        )
    }

    /// Runs the command against `venue`: the one place a command becomes a venue call.
    pub async fn run(self, venue: Arc<dyn Venue>) -> VenueResult<VenueReply> {
        Ok(match self {
            VenueCommand::Instrument { symbol } => {
                VenueReply::Instrument(venue.instrument(&symbol).await?)
            }
            VenueCommand::Quote { symbol } => VenueReply::Quote(venue.quote(&symbol).await?),
            VenueCommand::Candles {
                symbol,
                timeframe,
                lookback,
            } => VenueReply::Candles(venue.candles(&symbol, timeframe, lookback).await?),
            VenueCommand::PlaceOrder { order } => {
                VenueReply::Order(venue.place_order(&order).await?)
            }
            VenueCommand::CancelOrder { symbol, client_id } => {
                venue.cancel_order(&symbol, &client_id).await?;
                VenueReply::Done
            }
            VenueCommand::CancelByVenueId {
                symbol,
                venue_order_id,
            } => {
                venue.cancel_by_venue_id(&symbol, &venue_order_id).await?;
                VenueReply::Done
            }
            VenueCommand::QueryOrder { symbol, client_id } => {
                VenueReply::OrderLookup(venue.query_order(&symbol, &client_id).await?)
            }
            VenueCommand::OpenOrders => VenueReply::Orders(venue.open_orders().await?),
            VenueCommand::FillsSince { since_ms } => {
                VenueReply::Fills(venue.fills_since(since_ms).await?)
            }
            VenueCommand::Positions => VenueReply::Positions(venue.positions().await?),
            VenueCommand::Account => VenueReply::Account(venue.account().await?),
            VenueCommand::AccountState => VenueReply::AccountState(venue.account_state().await?),
            VenueCommand::SetLeverage { symbol, leverage } => {
                venue.set_leverage(&symbol, leverage).await?;
                VenueReply::Done
            }
            VenueCommand::Leverage { symbol } => {
                VenueReply::Leverage(venue.leverage(&symbol).await?)
            }
            VenueCommand::OrderValidity => VenueReply::Validity(venue.order_validity()),
        })
    }
}

/// The priority of an order and of the gateway flow that places it: reduce-only orders
/// (closes, kill-switch closes) cut risk, so they go before new orders.
pub fn order_priority(reduce_only: bool) -> Priority {
    if reduce_only {
        Priority::High
    } else {
        Priority::Medium
    }
}

/// A command on its way to a connector, with the priority it is queued and served at.
#[derive(Debug, Clone)]
pub struct VenueRequest {
    pub command: VenueCommand,
    pub priority: Priority,
    /// A state change is not sent after this instant (the account's lease ends there; see
    /// [`crate::resilience::guard::sending_by`]); `None`: no such bound.
    pub send_by: Option<tokio::time::Instant>,
}

impl VenueRequest {
    /// The command at its own priority.
    pub fn new(command: VenueCommand) -> Self {
        let priority = command.priority();
        Self {
            command,
            priority,
            send_by: None,
        }
    }

    /// The command at the more urgent of its own priority and that of the gateway flow
    /// the calling task runs in ([`call_priority::within`]). The one place a venue call's
    /// priority is decided.
    pub fn in_flow(command: VenueCommand) -> Self {
        let mut request = Self::new(command);
        if let Some(flow) = call_priority::current() {
            // `Priority` orders High < Medium < Low.
            request.priority = request.priority.min(flow);
        }
        request
    }
}

impl Message for VenueRequest {
    type Result = VenueResult<VenueReply>;
}

/// What a venue answered to a [`VenueCommand`]: one variant per kind of answer.
#[derive(Debug, Clone)]
pub enum VenueReply {
    /// A cancel or leverage update the venue accepted.
    Done,
    Instrument(Instrument),
    Quote(Quote),
    Candles(Vec<Candle>),
    Order(VenueOrder),
    OrderLookup(Option<VenueOrder>),
    Orders(Vec<VenueOrder>),
    Fills(Vec<Fill>),
    Positions(Vec<Position>),
    Account(AccountSnapshot),
    AccountState(AccountState),
    Leverage(u32),
    Validity(Duration),
}

impl VenueReply {
    fn kind(&self) -> &'static str {
        match self {
            VenueReply::Done => "done",
            VenueReply::Instrument(_) => "instrument",
            VenueReply::Quote(_) => "quote",
            VenueReply::Candles(_) => "candles",
            VenueReply::Order(_) => "order",
            VenueReply::OrderLookup(_) => "order lookup",
            VenueReply::Orders(_) => "orders",
            VenueReply::Fills(_) => "fills",
            VenueReply::Positions(_) => "positions",
            VenueReply::Account(_) => "account",
            VenueReply::AccountState(_) => "account state",
            VenueReply::Leverage(_) => "leverage",
            VenueReply::Validity(_) => "validity",
        }
    }
}

impl fmt::Display for VenueReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// The typed answer a command's caller expects, taken out of a [`VenueReply`].
pub trait FromReply: Sized {
    /// `Err` names the kind of a reply of another kind.
    fn from_reply(reply: VenueReply) -> Result<Self, &'static str>;

    /// The answer, or — for a reply of another kind, which [`VenueCommand::run`] never
    /// makes — an error that claims nothing was settled: `OutcomeUnknown`, so an order is
    /// settled by a read, never treated as refused.
    fn from_reply_of(reply: VenueReply, venue: &str, endpoint: &str) -> VenueResult<Self> {
        Self::from_reply(reply).map_err(|other| VenueError::OutcomeUnknown {
            venue: venue.to_string(),
            reason: format!("the connector answered {endpoint} with a {other} reply"),
        })
    }
}

macro_rules! from_reply {
    ($($variant:ident => $ty:ty),* $(,)?) => {
        $(impl FromReply for $ty {
            fn from_reply(reply: VenueReply) -> Result<Self, &'static str> {
                match reply {
                    VenueReply::$variant(v) => Ok(v),
                    other => Err(other.kind()),
                }
            }
        })*
    };
}

from_reply!(
    Instrument => Instrument,
    Quote => Quote,
    Candles => Vec<Candle>,
    Order => VenueOrder,
    OrderLookup => Option<VenueOrder>,
    Orders => Vec<VenueOrder>,
    Fills => Vec<Fill>,
    Positions => Vec<Position>,
    Account => AccountSnapshot,
    AccountState => AccountState,
    Leverage => u32,
    Validity => Duration,
);

impl FromReply for () {
    fn from_reply(reply: VenueReply) -> Result<Self, &'static str> {
        match reply {
            VenueReply::Done => Ok(()),
            other => Err(other.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::risk_gate::approve_for_venue_test;
    use rust_decimal_macros::dec;

    fn order(reduce_only: bool) -> RiskApproved<OrderRequest> {
        approve_for_venue_test(
            OrderRequest {
                client_id: ClientOrderId::generate(),
                symbol: "BTC".into(),
                side: Side::Sell,
                size: dec!(1),
                order_type: OrderType::Market {
                    max_slippage: dec!(0.01),
                },
                reduce_only,
                valid_until_ms: None,
            },
            dec!(100),
        )
    }

    #[tokio::test]
    async fn a_request_takes_the_more_urgent_of_its_command_and_its_flow() {
        let quote = || VenueCommand::Quote {
            symbol: "BTC".into(),
        };
        let cancel = || VenueCommand::CancelOrder {
            symbol: "BTC".into(),
            client_id: ClientOrderId::generate(),
        };
        assert_eq!(VenueRequest::in_flow(quote()).priority, Priority::Low);
        assert_eq!(VenueRequest::in_flow(cancel()).priority, Priority::High);
        assert_eq!(
            VenueRequest::new(VenueCommand::PlaceOrder { order: order(true) }).priority,
            Priority::High
        );
        assert_eq!(
            VenueRequest::new(VenueCommand::PlaceOrder {
                order: order(false)
            })
            .priority,
            Priority::Medium
        );
        call_priority::within(Priority::High, async {
            assert_eq!(VenueRequest::in_flow(quote()).priority, Priority::High);
        })
        .await;
        call_priority::within(Priority::Medium, async {
            assert_eq!(VenueRequest::in_flow(quote()).priority, Priority::Medium);
            assert_eq!(VenueRequest::in_flow(cancel()).priority, Priority::High);
        })
        .await;
    }

    #[test]
    fn a_reply_of_another_kind_is_an_unknown_outcome_never_a_refusal() {
        let err = VenueOrder::from_reply_of(VenueReply::Done, "paper", "place_order").unwrap_err();
        assert!(matches!(err, VenueError::OutcomeUnknown { .. }), "{err}");
        assert_eq!(
            <()>::from_reply_of(VenueReply::Done, "paper", "cancel_order").unwrap(),
            ()
        );
        assert_eq!(
            u32::from_reply_of(VenueReply::Leverage(3), "paper", "leverage").unwrap(),
            3
        );
    }
}
