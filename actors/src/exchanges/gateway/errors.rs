//! What the gateway can answer instead of a result.
//!
//! Owns: [`GatewayError`] (one variant per way an order or read fails, with a stable
//! [`GatewayError::label`] for metrics and the API), [`DeliveryFailure`] (why a connector
//! did not answer, from the slot's [`SlotError`]: the type that decides whether an order
//! may have left the process) and [`OrderProblem`] (why an order is refused before the
//! ledger). Never: decides anything by matching an error's text.

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("unknown venue `{venue}`; configured venues: {known}")]
    UnknownVenue { venue: String, known: String },
    #[error("venue `{venue}` is not ready for orders: {reason}")]
    NotReady { venue: String, reason: String },
    #[error("order {client_id} refused by the risk gate: {refusal}")]
    Refused {
        client_id: ClientOrderId,
        refusal: Refusal,
    },
    #[error("order {client_id} is invalid: {reason}")]
    Invalid {
        client_id: ClientOrderId,
        reason: String,
    },
    /// Refused before anything was written or sent: the order cannot be right.
    #[error("order refused, nothing was recorded or sent: {0}")]
    InvalidOrder(OrderProblem),
    #[error(transparent)]
    Venue(#[from] VenueError),
    #[error("connector for venue `{venue}` is down: {reason}")]
    ConnectorDown {
        venue: String,
        /// Whether the call may have reached the connector: decides, for an order,
        /// between "never sent" and "outcome unknown".
        delivery: DeliveryFailure,
        reason: String,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("order {0} is not in the ledger")]
    UnknownOrder(ClientOrderId),
    #[error("{what} on venue `{venue}` did not take effect: {reason}")]
    NotApplied {
        venue: String,
        what: String,
        reason: String,
    },
    /// A flow of a gateway that a restarted one replaced: stopped before its send.
    #[error("the order gateway was restarted (generation {latest} replaced {generation}) while this request waited for venue `{venue}`; nothing was sent, ask again")]
    Superseded {
        venue: String,
        generation: u64,
        latest: u64,
    },
    /// The venue account is owned by another node of the cluster (or this node's lease on
    /// it is not usable): nothing was sent. Decided on the lease's type, never on text.
    #[error("venue `{venue}` is owned by node {owner}, not by this node; nothing was sent (this node holds the venue in standby until it acquires the lease)")]
    NotOwner { venue: String, owner: String },
    /// The intent could not be replicated to the cluster before the send (Redis did not
    /// answer, or refused a stale token): the order was closed as never sent.
    #[error("the intent on venue `{venue}` could not be replicated to the cluster: {reason}; nothing was sent")]
    NotReplicated { venue: String, reason: String },
    #[error("the outcome of {what} on venue `{venue}` is unknown: {reason}; nothing was sent again, reconciliation settles it from the venue")]
    Unresolved {
        venue: String,
        what: String,
        reason: String,
    },
}

impl GatewayError {
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::UnknownVenue { .. } => "unknown_venue",
            GatewayError::NotReady { .. } => "not_ready",
            GatewayError::Refused { .. } => "refused",
            GatewayError::Invalid { .. } => "invalid",
            GatewayError::InvalidOrder(_) => "invalid_order",
            GatewayError::Venue(e) => e.label(),
            GatewayError::ConnectorDown { .. } => "connector_down",
            GatewayError::Ledger(_) => "ledger",
            GatewayError::UnknownOrder(_) => "unknown_order",
            GatewayError::NotApplied { .. } => "not_applied",
            GatewayError::Unresolved { .. } => "unresolved",
            GatewayError::Superseded { .. } => "superseded",
            GatewayError::NotOwner { .. } => "not_owner",
            GatewayError::NotReplicated { .. } => "not_replicated",
        }
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;

/// Why the connector did not answer a call, as its [`SlotError`] says. The type, not an
/// error text, decides whether an order may have left the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFailure {
    /// No live connector: the call was never delivered, so nothing was sent.
    Vacant,
    /// The connector's mailbox was full: not delivered, nothing was sent.
    Full,
    /// The connector stopped with the call in its mailbox or in flight: it may have sent it.
    Closed,
    /// The connector did not answer in time: it may have sent it.
    Timeout,
}

impl DeliveryFailure {
    pub fn of(err: &SlotError) -> Self {
        match err {
            SlotError::Vacant { .. } => DeliveryFailure::Vacant,
            SlotError::Full { .. } => DeliveryFailure::Full,
            SlotError::Closed { .. } => DeliveryFailure::Closed,
            SlotError::Timeout { .. } => DeliveryFailure::Timeout,
        }
    }

    /// Whether the call may have reached the venue (settled by a read, never re-sent).
    pub fn may_have_been_sent(self) -> bool {
        matches!(self, DeliveryFailure::Closed | DeliveryFailure::Timeout)
    }
}

/// What is wrong with an order that is refused before the ledger: one variant per cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderProblem {
    #[error(
        "the amount {amount} {unit} is negative; give a positive amount (--side says buy or sell)"
    )]
    NegativeAmount { amount: Decimal, unit: String },
    #[error("the amount is zero; give a positive amount")]
    ZeroAmount,
    #[error("the limit price {price} is not positive; give a price above 0")]
    BadLimitPrice { price: Decimal },
    #[error("the trigger price {price} is not positive; give a price above 0")]
    BadTriggerPrice { price: Decimal },
    #[error("{asked} is below the lot size {lot} {symbol} of venue `{venue}`; the smallest order is {lot} {symbol}")]
    BelowLot {
        venue: String,
        symbol: String,
        asked: String,
        lot: Decimal,
    },
    #[error("the order's value {notional} USD is below the minimum {min_notional} USD of {symbol} on venue `{venue}` (lot {lot} {symbol}); raise the amount")]
    BelowMinNotional {
        venue: String,
        symbol: String,
        notional: Decimal,
        min_notional: Decimal,
        lot: Decimal,
    },
    #[error("reduce-only: there is no {symbol} position on venue `{venue}` that this {side} would reduce")]
    NothingToReduce {
        venue: String,
        symbol: String,
        side: Side,
    },
}

impl OrderProblem {
    /// Checks that need neither the ledger nor the venue: the amount and the limit price.
    pub fn of_intent(intent: &OrderIntent) -> Option<OrderProblem> {
        let (amount, unit) = match intent.amount {
            Amount::Usd(a) => (a, "USD".to_string()),
            Amount::Base(a) => (a, intent.symbol.clone()),
        };
        if amount < Decimal::ZERO {
            return Some(OrderProblem::NegativeAmount {
                amount: amount.normalize(),
                unit,
            });
        }
        if amount.is_zero() {
            return Some(OrderProblem::ZeroAmount);
        }
        match intent.pricing {
            Pricing::Limit { price, .. } if price <= Decimal::ZERO => {
                Some(OrderProblem::BadLimitPrice {
                    price: price.normalize(),
                })
            }
            Pricing::Trigger { trigger_price, .. } if trigger_price <= Decimal::ZERO => {
                Some(OrderProblem::BadTriggerPrice {
                    price: trigger_price.normalize(),
                })
            }
            Pricing::Trigger {
                limit_price: Some(price),
                ..
            } if price <= Decimal::ZERO => Some(OrderProblem::BadLimitPrice {
                price: price.normalize(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod trigger_tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn trigger(trigger_price: Decimal, limit_price: Option<Decimal>) -> OrderIntent {
        OrderIntent {
            venue: "paper".into(),
            symbol: "BTC".into(),
            side: Side::Sell,
            amount: Amount::Base(dec!(0.01)),
            pricing: Pricing::Trigger {
                trigger_price,
                kind: TriggerKind::StopLoss,
                limit_price,
            },
            reduce_only: true,
            origin: "test".into(),
        }
    }

    #[test]
    fn a_trigger_or_its_limit_that_is_not_positive_is_refused_before_the_ledger() {
        assert_eq!(OrderProblem::of_intent(&trigger(dec!(59000), None)), None);
        assert_eq!(
            OrderProblem::of_intent(&trigger(dec!(59000), Some(dec!(58900)))),
            None
        );
        assert!(matches!(
            OrderProblem::of_intent(&trigger(Decimal::ZERO, None)),
            Some(OrderProblem::BadTriggerPrice { .. })
        ));
        assert!(matches!(
            OrderProblem::of_intent(&trigger(dec!(59000), Some(dec!(-1)))),
            Some(OrderProblem::BadLimitPrice { .. })
        ));
    }
}
