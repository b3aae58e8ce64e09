//! The unified venue API every exchange module implements.
//!
//! Low-level and exact: sizes are base units, already rounded by the caller to the
//! instrument's lot and tick. The seed project's conveniences (buy by USD amount, chunked
//! close, "AI entry") are built once on top of this in the order gateway, so every venue
//! gets them with the same ledger and risk gate.

use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::risk_gate::RiskApproved;
use super::types::*;
use crate::clock::Millis;
use crate::resilience::{BreakerState, ErrorClass};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VenueError {
    #[error("{venue}: unknown symbol `{symbol}`")]
    UnknownSymbol { venue: String, symbol: String },
    #[error("{venue} rejected the order: {reason}")]
    Rejected { venue: String, reason: String },
    #[error("{venue}: invalid request: {reason}")]
    InvalidRequest { venue: String, reason: String },
    #[error("{venue}: no order with client id {client_id}")]
    OrderNotFound { venue: String, client_id: String },
    #[error("{venue}: timed out after {after:?} on {what}")]
    Timeout {
        venue: String,
        what: String,
        after: Duration,
    },
    #[error("{venue} is unavailable: {reason}")]
    Unavailable { venue: String, reason: String },
    #[error("{venue}: rate limited{}: {reason}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        venue: String,
        retry_after: Option<Duration>,
        reason: String,
    },
    #[error("{venue} refused our credentials: {reason}; check the API key and its permissions")]
    Auth { venue: String, reason: String },
    #[error("{venue} sent a response we cannot read: {reason}")]
    Malformed { venue: String, reason: String },
    #[error("{venue}: the outcome of the order is unknown ({reason}); it will be resolved by client id, not re-sent")]
    OutcomeUnknown { venue: String, reason: String },
    #[error("{venue}: insufficient balance: {reason}")]
    InsufficientBalance { venue: String, reason: String },
    /// Refused before reaching the venue: the connector's queue for this priority is full.
    #[error("{venue}: not sent, the connector is overloaded: {reason}")]
    Overloaded { venue: String, reason: String },
    /// Refused before reaching the venue: the connector stopped (crashed or shut down)
    /// while the call waited in its queue. Known not sent, so a sibling may take it.
    #[error("{venue}: not sent: {reason}")]
    NotSent { venue: String, reason: String },
    /// The venue does not offer this at all (Hyperliquid has no open-interest history):
    /// asking again, or elsewhere on the same venue, cannot help.
    #[error("{venue} does not offer {what}")]
    Unsupported { venue: String, what: String },
}

impl VenueError {
    /// The resilience class that decides retry and breaker behaviour.
    pub fn class(&self) -> ErrorClass {
        match self {
            VenueError::Timeout { .. } | VenueError::OutcomeUnknown { .. } => ErrorClass::Timeout,
            VenueError::Unavailable { .. }
            | VenueError::Overloaded { .. }
            | VenueError::NotSent { .. } => ErrorClass::Unavailable,
            VenueError::RateLimited { retry_after, .. } => ErrorClass::RateLimited {
                retry_after: *retry_after,
            },
            VenueError::Auth { .. } => ErrorClass::Auth,
            VenueError::Malformed { .. } => ErrorClass::Unavailable,
            VenueError::UnknownSymbol { .. }
            | VenueError::Rejected { .. }
            | VenueError::InvalidRequest { .. }
            | VenueError::OrderNotFound { .. }
            | VenueError::InsufficientBalance { .. }
            | VenueError::Unsupported { .. } => ErrorClass::BadRequest,
        }
    }

    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            VenueError::UnknownSymbol { .. } => "unknown_symbol",
            VenueError::Rejected { .. } => "rejected",
            VenueError::InvalidRequest { .. } => "invalid_request",
            VenueError::OrderNotFound { .. } => "not_found",
            VenueError::Timeout { .. } => "timeout",
            VenueError::Unavailable { .. } => "unavailable",
            VenueError::RateLimited { .. } => "rate_limited",
            VenueError::Auth { .. } => "auth",
            VenueError::Malformed { .. } => "malformed",
            VenueError::OutcomeUnknown { .. } => "outcome_unknown",
            VenueError::InsufficientBalance { .. } => "insufficient_balance",
            VenueError::Overloaded { .. } => "overloaded",
            VenueError::NotSent { .. } => "not_sent",
            VenueError::Unsupported { .. } => "unsupported",
        }
    }
}

pub type VenueResult<T> = Result<T, VenueError>;

/// One venue account. Implementations own their HTTP client (or simulation), signing,
/// wire formats and rounding; they never retry an order send themselves.
#[async_trait]
pub trait Venue: Send + Sync + 'static {
    /// The configured name of this venue account (e.g. `paper`, `hyperliquid`).
    fn name(&self) -> &str;

    async fn instrument(&self, symbol: &str) -> VenueResult<Instrument>;
    async fn quote(&self, symbol: &str) -> VenueResult<Quote>;
    /// The newest `lookback` candles, oldest first.
    async fn candles(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> VenueResult<Vec<Candle>>;

    /// How long after the gateway stamps an order the venue may still apply it: the
    /// gateway sets [`OrderRequest::valid_until_ms`] to now plus this before it writes the
    /// intent. A venue with a deadline of its own sends it with the order, so the venue
    /// itself refuses the order once it has passed (Hyperliquid `expiresAfter`, Binance
    /// `timestamp` + `recvWindow`), and never sends an order whose deadline has passed.
    /// The default, zero, is for venues in this process (paper): an order reaches them with
    /// the send itself, and a crash ends every send.
    fn order_validity(&self) -> Duration {
        Duration::ZERO
    }

    /// Sends one order the risk gate approved (only the gate makes a [`RiskApproved`], so
    /// an order that skipped it cannot reach a venue). A market order bounds its slippage
    /// from [`RiskApproved::reference_price`], the price the gateway read and the gate
    /// judged, never from a second read of the market. An error whose outcome may have
    /// reached the venue must be `OutcomeUnknown`, so the gateway resolves it by
    /// [`Venue::query_order`]. An order whose [`OrderRequest::valid_until_ms`] has passed
    /// is refused unsent (`InvalidRequest`) by venues with a deadline of their own.
    async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder>;
    /// Cancels one order. An error that may hide an applied cancel must be
    /// `OutcomeUnknown` (or a timeout): the gateway then asks [`Venue::query_order`] and
    /// never sends the cancel again.
    async fn cancel_order(&self, symbol: &str, client_id: &ClientOrderId) -> VenueResult<()>;
    /// Cancels an order by the venue's own order id: for orders placed outside this engine
    /// (adopted by reconciliation), whose client id, if any, is not one the venue knows
    /// from us. Same rules as [`Venue::cancel_order`] for a lost answer. The default
    /// refuses: a venue that cannot address orders by its own id says so.
    async fn cancel_by_venue_id(&self, symbol: &str, venue_order_id: &str) -> VenueResult<()> {
        let _ = symbol;
        Err(VenueError::InvalidRequest {
            venue: self.name().to_string(),
            reason: format!(
                "order {venue_order_id} can only be cancelled by its client id on this venue"
            ),
        })
    }
    /// The venue's view of one order, `None` if the venue never saw it.
    async fn query_order(
        &self,
        symbol: &str,
        client_id: &ClientOrderId,
    ) -> VenueResult<Option<VenueOrder>>;
    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>>;
    /// Fills at or after `since_ms`, oldest first.
    async fn fills_since(&self, since_ms: Millis) -> VenueResult<Vec<Fill>>;

    async fn positions(&self) -> VenueResult<Vec<Position>>;
    async fn account(&self) -> VenueResult<AccountSnapshot>;
    /// Balances and positions together. Venues whose API returns both in one answer
    /// override this, so the order path pays one read instead of two.
    async fn account_state(&self) -> VenueResult<AccountState> {
        let (account, positions) = futures::try_join!(self.account(), self.positions())?;
        Ok(AccountState { account, positions })
    }

    /// Sends a leverage update. An error that may hide an applied update must be
    /// `OutcomeUnknown` (or a timeout), so the gateway settles it with [`Venue::leverage`].
    async fn set_leverage(&self, symbol: &str, leverage: u32) -> VenueResult<()>;

    /// Whether this venue's own rate limits are the bottleneck now: the pool every request
    /// draws from could not admit the venue's heaviest request, or a 429/418 pause is in
    /// force. The connector then lets one call at a time into the venue, so waiting calls
    /// keep its priority order instead of racing in the venue's per-endpoint limiter
    /// queues. A venue without limits never is.
    fn saturated(&self) -> bool {
        false
    }

    /// The leverage the venue applies to new orders in `symbol`.
    async fn leverage(&self, symbol: &str) -> VenueResult<u32>;

    /// The state of this endpoint's circuit breaker, if it has one. The gateway reads it
    /// (through the connector's [`super::siblings::ConnectorProbe`]) to skip a connector
    /// whose breaker is open and send the work to a sibling at once.
    fn breaker_state(&self) -> Option<BreakerState> {
        None
    }
}

/// Size in base units worth `usd` at `price`, rounded down to the lot.
pub fn size_for_usd(instrument: &Instrument, usd: Decimal, price: Decimal) -> Decimal {
    if price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    instrument.round_size_down(usd / price)
}
