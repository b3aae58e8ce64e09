//! The order gateway: the one door through which orders reach venues.
//!
//! Owns: turning an order intent (buy $X, close a position, enter with leverage) into
//! exact venue orders; the risk gate check; the ledger write that precedes every send; the
//! resolution of orders whose outcome is unknown (by client id, never by sending again);
//! reconciliation of the ledger with each venue at start and periodically; the trading
//! mode and the kill switch. Never: decides what to trade (agents do) or speaks a venue's
//! wire format (connectors do).
//!
//! The actor is a thin mailbox over [`GatewayCore`], which lives behind an `Arc` so that
//! order flows can await venues without holding the actor. Orders for one venue are
//! serialised by a per-venue lock so two concurrent intents are never judged against the
//! same stale position; reads are not serialised. Within one order the reads it needs
//! (instrument, quote, balances with positions) are in flight together.
//!
//! ## Validation before the ledger
//!
//! An order that cannot be right is refused with [`GatewayError::InvalidOrder`] and one
//! [`OrderProblem`] per cause (negative or zero amount, a limit price that is not
//! positive, a size below the lot, a value below the venue's minimum, a reduce-only order
//! with nothing to reduce) before anything is written: the ledger holds only orders that
//! were meant to reach a venue. Risk-gate refusals are still recorded (as rejected): they
//! are decisions about an order that was valid.
//!
//! ## Unknown outcomes and the venue's deadline
//!
//! A send whose answer is lost (timeout, connection reset, HTTP 5xx, unreadable answer) is
//! settled by a read, never by sending it again: an order by looking it up by client id; a
//! cancel by looking the order up and recording what the venue says (cancelled, filled, or
//! still open — a second cancel could race the first, so none is sent); a leverage update
//! by reading the venue's leverage for the symbol. What cannot be read at once is left to
//! reconciliation, which reads it before the venue takes orders again.
//!
//! Whether a send may have left the process is decided on types, never on error text: a
//! venue error says so itself (`OutcomeUnknown`, `Timeout`), and a connector that did not
//! answer says how ([`DeliveryFailure`] from the slot's [`SlotError`]): `Vacant` and `Full`
//! mean the call was never delivered, so the order is recorded rejected ("never sent");
//! `Closed` and `Timeout` mean it may have been sent, so it is unknown and settled by a read.
//!
//! An order the venue does not show is concluded never sent only when the venue itself
//! can no longer apply it. Every order is stamped, before its intent is written, with a
//! deadline from the venue ([`Venue::order_validity`](super::venue::Venue::order_validity), kept in
//! [`OrderRequest::valid_until_ms`]): Hyperliquid signs it as the action's `expiresAfter`,
//! Binance signs `timestamp` + `recvWindow` to end at it, and both venue modules refuse to
//! send an order past it; paper's deadline is the send itself (it runs in this process, so a
//! crash ends every send). Reconciliation keeps an intent, submitted or unknown entry the
//! venue does not show as `Unknown`, asks again at every pass (and once right after the
//! earliest such deadline), and only once `now > deadline +` [`DEADLINE_MARGIN_MS`] (the
//! margin covers clock skew) records it rejected, "never reached the venue (its deadline
//! passed)". One the venue had acknowledged (it has a venue order id) and no longer knows
//! is closed as cancelled. Entries written before deadlines existed (no `valid_until_ms`)
//! keep the rule they were written under. A busy venue that applies an order late therefore
//! never meets a ledger that already called it rejected.
//!
//! No `Submitted` state is written before the send: with the deadline it would change no
//! decision. An intent and a submitted order are settled the same way (looked up until the
//! deadline, never sent again), and the extra durable write would cost one fsync per order.
//!
//! A fill whose order the ledger holds as finished but wrong (rejected, or with less
//! filled than its fills) reopens and corrects that entry from the venue's lookup, or from
//! the fills when the venue has none; each correction logs a WARN line and counts in
//! `orrery_ledger_corrections_total{venue}`. When the venue gives a definite state, an
//! entry's earlier "outcome unknown" reason is cleared.
//!
//! ## Orders placed outside this engine
//!
//! An open venue order with no client id known to the ledger (placed in the venue's own
//! UI: a Hyperliquid order without cloid, a Binance `web_...` id) is adopted once, keyed by
//! the venue's order id in the ledger's `adopted` index, with origin [`ADOPTED_ORIGIN`];
//! later passes and restarts find the index entry and add nothing. While it is open it is
//! matched by that order id; once the venue no longer lists it, its fills say whether it
//! filled, else it is recorded cancelled.
//!
//! ## Durability of the venue's answer
//!
//! The intent is flushed to disk before any byte of an order is sent; that never changes.
//! The venue's answer to the send (acked, filled, rejected) is written to sled but not
//! flushed before the caller hears it: it reaches disk with the next durable write of
//! anything (the next order's intent, a fill, a reconciliation update — a flush covers
//! every earlier write) or with sled's own flush within half a second. That saves one
//! fsync per order. Correctness does not rest on that write:
//! - A crash that loses it leaves the entry as its durable intent. On start the gateway
//!   refuses orders until reconciliation has looked every open entry up at the venue by
//!   client id, and takes the venue's answer: the status and filled size the caller was
//!   told (or a later state the order moved to since, such as a resting order filling). An
//!   average price the lookup lacks comes from the order's fills.
//! - An order the venue refused is unknown to it or known as rejected: either way
//!   reconciliation closes the intent as rejected once its deadline has passed, which is
//!   what the caller was told.
//! - So every acknowledged order is in the ledger as acknowledged once the gateway is ready
//!   again; the crash tests (`tests/crash_recovery.rs`, `tests/hyperliquid.rs`, the latter
//!   also against a venue that applies orders 0.5–3 s late) kill the engine mid-flow and
//!   check exactly that.
//!
//! ## Log lines
//!
//! Every order transition and every fill is logged at `info` by the ledger's write paths
//! (see [`super::ledger`]). Each venue's reconciliation logs one `info` line
//! (`reconciliation`: checked, updated, never_sent, adopted, corrected, new_fills,
//! awaiting_deadline) at its first pass, which tells what a restart restored, and after
//! that only for passes that changed something.
//!
//! Everything else the gateway writes (intents, refusals, unknown outcomes, cancels,
//! reconciliation) is durable before it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture,
};
use parking_lot::RwLock;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::call_priority::within;
use super::command::{order_priority, FromReply, VenueCommand, VenueRequest};
use super::connector::Connector;
use super::ledger::{LedgerEntry, LedgerError, OrderLedger};
use super::market_data::{FeedConfig, MarketData};
use super::risk_gate::{
    self, GateView, Judgement, ModeCause, ModeState, Refusal, RiskConfig, TradingMode,
};
use super::types::*;
use super::venue::{size_for_usd, VenueError};
use crate::clock::SharedClock;
use crate::resilience::{Priority, TokioClock};
use crate::store::{trees, Store, Tree};
use crate::supervisor::{Slot, SlotError};
use crate::telemetry::names;
use crate::validate::{join, Issues};

/// `[exchanges]` settings that shape order handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Furthest a market order may fill from the quote, in percent.
    pub market_slippage_pct: Decimal,
    /// Deadline of one venue request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often the ledger is reconciled with each venue.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How long an order may wait for the first reconciliation before it is refused.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// Leverage assumed for a symbol until an agent sets one.
    pub default_leverage: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            market_slippage_pct: Decimal::ONE,
            request_timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(15),
            default_leverage: 1,
        }
    }
}

impl GatewayConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.market_slippage_pct > Decimal::ZERO
                && self.market_slippage_pct <= Decimal::from(10),
            join(path, "market_slippage_pct"),
            self.market_slippage_pct,
            "a percentage in (0, 10]",
        );
        for (key, d, min, max) in [
            ("request_timeout", self.request_timeout, 100u64, 120_000u64),
            (
                "reconcile_interval",
                self.reconcile_interval,
                1_000,
                3_600_000,
            ),
            ("ready_timeout", self.ready_timeout, 100, 600_000),
        ] {
            let ms = d.as_millis() as u64;
            issues.check(
                (min..=max).contains(&ms),
                join(path, key),
                humantime::format_duration(d).to_string(),
                format!(
                    "a duration from {} to {}",
                    humantime::format_duration(Duration::from_millis(min)),
                    humantime::format_duration(Duration::from_millis(max))
                ),
            );
        }
        issues.check(
            (1..=100).contains(&self.default_leverage),
            join(path, "default_leverage"),
            self.default_leverage,
            "an integer from 1 to 100",
        );
    }
}

/// How much to trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Base units (e.g. 0.01 BTC), rounded down to the lot.
    Base(Decimal),
    /// USD notional at the current quote, rounded down to the lot.
    Usd(Decimal),
}

/// How to price it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    Market,
    Limit { price: Decimal, tif: TimeInForce },
}

/// One order as an agent or the operator means it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    pub amount: Amount,
    pub pricing: Pricing,
    pub reduce_only: bool,
    /// Who asks: `agent:<name>`, `risk`, `manual`.
    pub origin: String,
}

/// What became of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReport {
    pub client_id: ClientOrderId,
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    pub size: Decimal,
    pub status: OrderStatus,
    pub filled_size: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub reason: Option<String>,
    /// Limit price of a limit order (`None` for a market order), for `orrery status`.
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    /// When the order was written to the ledger (ms since the epoch), for its age.
    #[serde(default)]
    pub created_ms: crate::clock::Millis,
}

impl From<&LedgerEntry> for OrderReport {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            client_id: e.client_id.clone(),
            venue: e.venue.clone(),
            symbol: e.request.symbol.clone(),
            side: e.request.side,
            size: e.request.size,
            status: e.status,
            filled_size: e.filled_size,
            avg_fill_price: e.avg_fill_price,
            reason: e.reason.clone(),
            limit_price: e.request.order_type.limit_price(),
            created_ms: e.created_ms,
        }
    }
}

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
            _ => None,
        }
    }
}

/// Margin past an order's deadline before an order the venue does not show is concluded
/// never sent: covers the skew between our clock and the venue's.
pub const DEADLINE_MARGIN_MS: i64 = 2_000;

/// Origin of ledger entries adopted from venue orders placed outside this engine.
pub const ADOPTED_ORIGIN: &str = "external";

const MODE_KEY: &str = "mode";
/// Bound on chunks of one close, so a bad lot size can never loop for ever.
const MAX_CLOSE_CHUNKS: usize = 500;

/// Readiness of one venue: reconciled at least once, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Readiness {
    Pending,
    Ready,
    Failed(String),
}

/// Everything the gateway knows; shared by its in-flight order flows.
pub struct GatewayCore {
    ledger: OrderLedger,
    venues: BTreeMap<String, VenueLink>,
    limits: RiskConfig,
    config: GatewayConfig,
    mode: RwLock<ModeState>,
    mode_tree: Tree<ModeState>,
    clock: SharedClock,
    market: MarketData,
}

struct VenueLink {
    slot: Slot<Connector>,
    order_lock: tokio::sync::Mutex<()>,
    leverage: RwLock<BTreeMap<String, u32>>,
    /// Symbols whose last leverage update has an unknown outcome the venue could not yet
    /// be asked about; reconciliation reads their leverage back.
    unsettled_leverage: parking_lot::Mutex<BTreeSet<String>>,
    ready_tx: watch::Sender<Readiness>,
    /// The venue's [`Venue::order_validity`](super::venue::Venue::order_validity), read once through the connector at the
    /// first reconciliation (before any order is accepted).
    validity: RwLock<Option<Duration>>,
    /// Set after the first reconciliation pass, which always logs its summary.
    reconciled_once: AtomicBool,
}

impl GatewayCore {
    /// A gateway whose market-data reads fall back to each venue's own cache only.
    pub fn open(
        store: &Store,
        venues: BTreeMap<String, Slot<Connector>>,
        limits: RiskConfig,
        config: GatewayConfig,
        clock: SharedClock,
    ) -> GatewayResult<Arc<Self>> {
        Self::open_with_market_data(store, venues, limits, config, BTreeMap::new(), clock)
    }

    /// A gateway whose market-data reads fall back per `feeds` (venue → secondary venue
    /// and fallback levels; see [`super::market_data`]).
    pub fn open_with_market_data(
        store: &Store,
        venues: BTreeMap<String, Slot<Connector>>,
        limits: RiskConfig,
        config: GatewayConfig,
        feeds: BTreeMap<String, FeedConfig>,
        clock: SharedClock,
    ) -> GatewayResult<Arc<Self>> {
        let market = MarketData::new(
            venues.keys().map(String::as_str),
            &feeds,
            TokioClock::shared(),
        );
        let ledger = OrderLedger::open(store, clock.clone())?;
        let mode_tree = store
            .tree::<ModeState>(trees::RISK)
            .map_err(LedgerError::from)?;
        let mode = mode_tree
            .get(MODE_KEY)
            .map_err(LedgerError::from)?
            .unwrap_or_default();
        metrics::gauge!(names::TRADING_MODE).set(mode.mode.gauge());
        let venues = venues
            .into_iter()
            .map(|(name, slot)| {
                let (ready_tx, _) = watch::channel(Readiness::Pending);
                (
                    name,
                    VenueLink {
                        slot,
                        order_lock: tokio::sync::Mutex::new(()),
                        leverage: RwLock::new(BTreeMap::new()),
                        unsettled_leverage: parking_lot::Mutex::new(BTreeSet::new()),
                        ready_tx,
                        validity: RwLock::new(None),
                        reconciled_once: AtomicBool::new(false),
                    },
                )
            })
            .collect();
        Ok(Arc::new(Self {
            ledger,
            venues,
            limits,
            config,
            mode: RwLock::new(mode),
            mode_tree,
            clock,
            market,
        }))
    }

    pub fn ledger(&self) -> &OrderLedger {
        &self.ledger
    }

    pub fn venue_names(&self) -> Vec<String> {
        self.venues.keys().cloned().collect()
    }

    pub fn mode(&self) -> ModeState {
        self.mode.read().clone()
    }

    fn link(&self, venue: &str) -> GatewayResult<&VenueLink> {
        self.venues
            .get(venue)
            .ok_or_else(|| GatewayError::UnknownVenue {
                venue: venue.to_string(),
                known: self.venues.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Runs one command on a venue's connector, bounded by the request timeout, at the
    /// more urgent of the command's own priority and the flow's ([`VenueRequest::in_flow`]).
    pub async fn call<R: FromReply>(&self, venue: &str, command: VenueCommand) -> GatewayResult<R> {
        let link = self.link(venue)?;
        let endpoint = command.endpoint();
        let sent = link.slot.send(VenueRequest::in_flow(command));
        match tokio::time::timeout(self.config.request_timeout, sent).await {
            Err(_) => Err(GatewayError::Venue(VenueError::Timeout {
                venue: venue.to_string(),
                what: endpoint.to_string(),
                after: self.config.request_timeout,
            })),
            Ok(Err(e)) => Err(GatewayError::ConnectorDown {
                venue: venue.to_string(),
                delivery: DeliveryFailure::of(&e),
                reason: e.to_string(),
            }),
            Ok(Ok(reply)) => reply
                .and_then(|reply| R::from_reply_of(reply, venue, endpoint))
                .map_err(GatewayError::Venue),
        }
    }

    /// The venue's quote; when it cannot answer, a marked fallback (see
    /// [`super::market_data`]).
    pub async fn quote(&self, venue: &str, symbol: &str) -> GatewayResult<Quote> {
        self.market.quote(self, venue, symbol).await
    }

    pub async fn instrument(&self, venue: &str, symbol: &str) -> GatewayResult<Instrument> {
        let s = symbol.to_string();
        self.call(venue, VenueCommand::Instrument { symbol: s })
            .await
    }

    pub async fn positions(&self, venue: &str) -> GatewayResult<Vec<Position>> {
        self.call(venue, VenueCommand::Positions).await
    }

    pub async fn position(&self, venue: &str, symbol: &str) -> GatewayResult<Option<Position>> {
        Ok(self
            .positions(venue)
            .await?
            .into_iter()
            .find(|p| p.symbol == symbol && !p.size.is_zero()))
    }

    pub async fn account(&self, venue: &str) -> GatewayResult<AccountSnapshot> {
        let account = self.call(venue, VenueCommand::Account).await?;
        Self::gauge_account(venue, &account);
        Ok(account)
    }

    /// Balances and positions from one venue read.
    pub async fn account_state(&self, venue: &str) -> GatewayResult<AccountState> {
        let state: AccountState = self.call(venue, VenueCommand::AccountState).await?;
        Self::gauge_account(venue, &state.account);
        Ok(state)
    }

    fn gauge_account(venue: &str, account: &AccountSnapshot) {
        if let Ok(value) = f64::try_from(account.account_value) {
            metrics::gauge!(names::ACCOUNT_VALUE_USD, "venue" => venue.to_string()).set(value);
        }
    }

    pub async fn candles(
        &self,
        venue: &str,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> GatewayResult<Vec<Candle>> {
        self.market
            .candles(self, venue, symbol, timeframe, lookback)
            .await
    }

    pub async fn open_orders(&self, venue: &str) -> GatewayResult<Vec<VenueOrder>> {
        self.call(venue, VenueCommand::OpenOrders).await
    }

    pub async fn set_leverage(
        &self,
        venue: &str,
        symbol: &str,
        leverage: u32,
    ) -> GatewayResult<()> {
        if leverage == 0 || leverage > self.limits.max_leverage {
            return Err(GatewayError::Invalid {
                client_id: ClientOrderId::generate(),
                reason: format!(
                    "leverage {leverage}x is outside 1..={}x (risk.max_leverage)",
                    self.limits.max_leverage
                ),
            });
        }
        let link = self.link(venue)?;
        let s = symbol.to_string();
        let sent = self
            .call(
                venue,
                VenueCommand::SetLeverage {
                    symbol: s,
                    leverage,
                },
            )
            .await;
        match sent {
            Ok(()) => {
                link.leverage.write().insert(symbol.to_string(), leverage);
                link.unsettled_leverage.lock().remove(symbol);
                Ok(())
            }
            Err(err) if outcome_unknown(&err) => {
                self.settle_leverage(venue, symbol, leverage, err).await
            }
            Err(err) => Err(err),
        }
    }

    /// The leverage the venue applies to `symbol`, read from the venue.
    pub async fn venue_leverage(&self, venue: &str, symbol: &str) -> GatewayResult<u32> {
        let s = symbol.to_string();
        self.call(venue, VenueCommand::Leverage { symbol: s }).await
    }

    /// A leverage update whose outcome is unknown: the venue's own figure, read back, is
    /// recorded; the update is never sent again on its own.
    async fn settle_leverage(
        &self,
        venue: &str,
        symbol: &str,
        asked: u32,
        err: GatewayError,
    ) -> GatewayResult<()> {
        let link = self.link(venue)?;
        let what = format!("the leverage update of {symbol} to {asked}x");
        let (outcome, result) = match self.venue_leverage(venue, symbol).await {
            Ok(actual) => {
                link.leverage.write().insert(symbol.to_string(), actual);
                link.unsettled_leverage.lock().remove(symbol);
                if actual == asked {
                    ("applied", Ok(()))
                } else {
                    let reason = format!(
                        "its outcome was unknown ({err}); the venue reports {actual}x; the update was not re-sent"
                    );
                    (
                        "not_applied",
                        Err(GatewayError::NotApplied {
                            venue: venue.to_string(),
                            what,
                            reason,
                        }),
                    )
                }
            }
            Err(read) => {
                // Either figure may be in force: orders are judged at the lower one (the
                // stricter margin check) until reconciliation reads it back.
                let previous = self.leverage_of(venue, symbol);
                link.leverage
                    .write()
                    .insert(symbol.to_string(), previous.min(asked));
                link.unsettled_leverage.lock().insert(symbol.to_string());
                let reason = format!("{err}; reading the leverage back failed too: {read}");
                (
                    "unresolved",
                    Err(GatewayError::Unresolved {
                        venue: venue.to_string(),
                        what,
                        reason,
                    }),
                )
            }
        };
        metrics::counter!(names::UNKNOWN_OUTCOMES, "venue" => venue.to_string(), "action" => "leverage", "outcome" => outcome).increment(1);
        tracing::warn!(
            venue,
            symbol,
            asked,
            outcome,
            "leverage update with an unknown outcome settled by reading the venue"
        );
        result
    }

    /// Reads back the leverage of symbols whose update could not be settled at the time.
    async fn settle_unsettled_leverage(&self, venue: &str) -> GatewayResult<()> {
        let link = self.link(venue)?;
        let symbols: Vec<String> = link.unsettled_leverage.lock().iter().cloned().collect();
        for symbol in symbols {
            let actual = self.venue_leverage(venue, &symbol).await?;
            link.leverage.write().insert(symbol.clone(), actual);
            link.unsettled_leverage.lock().remove(&symbol);
            tracing::info!(
                venue,
                symbol,
                leverage = actual,
                "leverage read back from the venue"
            );
        }
        Ok(())
    }

    /// The leverage orders in `symbol` are judged at: the last one the venue confirmed
    /// (the lower of old and new while an update's outcome cannot be read back), else
    /// `default_leverage`.
    pub fn leverage_of(&self, venue: &str, symbol: &str) -> u32 {
        self.venues
            .get(venue)
            .and_then(|l| l.leverage.read().get(symbol).copied())
            .unwrap_or(self.config.default_leverage)
    }

    /// Waits until the venue has been reconciled once, or says why not.
    async fn ready(&self, venue: &str) -> GatewayResult<()> {
        let link = self.link(venue)?;
        let mut rx = link.ready_tx.subscribe();
        let waited = tokio::time::timeout(self.config.ready_timeout, async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    Readiness::Ready => return Ok(()),
                    Readiness::Failed(reason) => return Err(reason),
                    Readiness::Pending => {
                        if rx.changed().await.is_err() {
                            return Err("the gateway is shutting down".to_string());
                        }
                    }
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(GatewayError::NotReady {
                venue: venue.to_string(),
                reason: format!(
                    "reconciliation failed: {reason}; new orders are refused until it succeeds"
                ),
            }),
            Err(_) => Err(GatewayError::NotReady {
                venue: venue.to_string(),
                reason: "first reconciliation has not finished".into(),
            }),
        }
    }

    /// Places one order: size → risk gate → durable intent → send → ledger.
    pub async fn place(&self, intent: OrderIntent) -> GatewayResult<OrderReport> {
        let priority = order_priority(intent.reduce_only);
        within(priority, self.place_with(intent, false)).await
    }

    /// [`GatewayCore::place`]; `emergency_close` marks a kill-switch close, which the
    /// risk gate admits while halted if it only reduces a position.
    async fn place_with(
        &self,
        intent: OrderIntent,
        emergency_close: bool,
    ) -> GatewayResult<OrderReport> {
        let link = self.link(&intent.venue)?;
        if let Some(problem) = OrderProblem::of_intent(&intent) {
            tracing::info!(venue = %intent.venue, symbol = %intent.symbol, side = %intent.side, origin = %intent.origin, problem = %problem, "order refused before the ledger");
            return Err(GatewayError::InvalidOrder(problem));
        }
        self.ready(&intent.venue).await?;
        let _serial = link.order_lock.lock().await;
        let started = Instant::now();
        let venue = intent.venue.clone();
        let client_id = ClientOrderId::generate();

        // Independent reads, in flight together: the slowest sets the wait, not the sum.
        // Their errors are taken in this order (not whichever lands first), so an unknown
        // symbol is reported as such by the instrument read.
        let (instrument, quote, state) = tokio::join!(
            self.instrument(&venue, &intent.symbol),
            self.quote(&venue, &intent.symbol),
            self.account_state(&venue),
        );
        let (instrument, quote, state) = (instrument?, quote?, state?);
        let position_size = state
            .position(&intent.symbol)
            .map(|p| p.size)
            .unwrap_or_default();
        let account = state.account;

        let reference = match intent.pricing {
            Pricing::Limit { price, .. } => price,
            Pricing::Market => match intent.side {
                Side::Buy => quote.ask,
                Side::Sell => quote.bid,
            },
        };
        let mut size = match intent.amount {
            Amount::Base(s) => instrument.round_size_down(s),
            Amount::Usd(usd) => size_for_usd(&instrument, usd, reference),
        };
        if intent.reduce_only {
            // Never send more than the position: what remains would open new exposure.
            size = size.min(instrument.round_size_down(position_size.abs()));
        }
        let order_type = match intent.pricing {
            Pricing::Market => OrderType::Market {
                max_slippage: self.config.market_slippage_pct / Decimal::from(100),
            },
            Pricing::Limit { price, tif } => OrderType::Limit {
                price: instrument.round_price(price),
                tif,
            },
        };
        // An order that cannot be right is refused before the ledger: nothing is
        // written, nothing is sent.
        let problem = if size <= Decimal::ZERO && intent.reduce_only && position_size.is_zero() {
            Some(OrderProblem::NothingToReduce {
                venue: venue.clone(),
                symbol: intent.symbol.clone(),
                side: intent.side,
            })
        } else if size <= Decimal::ZERO {
            let asked = match intent.amount {
                Amount::Base(b) => format!("{} {}", b.normalize(), intent.symbol),
                Amount::Usd(usd) => format!(
                    "{} USD at {} ({} {})",
                    usd.normalize(),
                    reference.normalize(),
                    (usd / reference).round_dp(8).normalize(),
                    intent.symbol
                ),
            };
            Some(OrderProblem::BelowLot {
                venue: venue.clone(),
                symbol: intent.symbol.clone(),
                asked,
                lot: instrument.lot_size.normalize(),
            })
        } else if size * reference < instrument.min_notional && !intent.reduce_only {
            Some(OrderProblem::BelowMinNotional {
                venue: venue.clone(),
                symbol: intent.symbol.clone(),
                notional: (size * reference).round_dp(2).normalize(),
                min_notional: instrument.min_notional.normalize(),
                lot: instrument.lot_size.normalize(),
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            tracing::info!(venue = %venue, symbol = %intent.symbol, side = %intent.side, origin = %intent.origin, problem = %problem, "order refused before the ledger");
            return Err(GatewayError::InvalidOrder(problem));
        }
        // The venue's deadline is stamped before the intent is written: after it, an
        // order the venue does not show is known never to have been applied.
        let now = self.clock.now_ms();
        let validity = self.order_validity(&venue).await?;
        let request = OrderRequest {
            client_id: client_id.clone(),
            symbol: intent.symbol.clone(),
            side: intent.side,
            size,
            order_type,
            reduce_only: intent.reduce_only,
            valid_until_ms: Some(now + validity.as_millis() as i64),
        };
        let mode = self.mode();
        let view = GateView {
            mode: mode.mode,
            mode_reason: mode.reason.clone(),
            account_value: account.account_value,
            position_size,
        };
        let judgement = Judgement {
            price: reference,
            // A market order's slippage is bounded from this price at the venue, which
            // therefore never reads the market a second time for it.
            reference_price: quote.mid(),
            leverage: self.leverage_of(&venue, &intent.symbol),
            emergency_close,
        };
        // Only the gate makes the approved order the ledger and the venue accept.
        let approved = match risk_gate::approve(&self.limits, request.clone(), judgement, &view) {
            Ok(approved) => approved,
            Err(refusal) => {
                let entry = self
                    .ledger
                    .record_refusal(
                        &venue,
                        request,
                        &intent.origin,
                        now,
                        format!("risk gate: {refusal}"),
                    )
                    .await?;
                self.count_order(&entry);
                metrics::counter!(names::RISK_REFUSALS, "venue" => venue.clone(), "reason" => refusal.label()).increment(1);
                return Err(GatewayError::Refused { client_id, refusal });
            }
        };

        // The intent is on disk before any byte leaves the process.
        self.ledger
            .record_intent(&venue, &approved, &intent.origin, now)
            .await?;
        let sent = self
            .call(&venue, VenueCommand::PlaceOrder { order: approved })
            .await;
        let entry = match sent {
            // Not fsynced before the reply: the venue keeps this answer, and after a crash
            // reconciliation restores it by client id (see "Durability" in the module docs).
            Ok(order) => {
                let now = self.clock.now_ms();
                self.ledger.record_answer(&client_id, |e| {
                    e.apply_venue_order(&order, now);
                })?
            }
            Err(err) if outcome_unknown(&err) => {
                let reason = err.to_string();
                self.ledger
                    .update(&client_id, |e| {
                        e.status = OrderStatus::Unknown;
                        e.reason = Some(reason);
                    })
                    .await?;
                // Resolve by asking the venue about this client id; never send again.
                self.resolve(&venue, &request.symbol, &client_id).await?
            }
            Err(GatewayError::Venue(err)) => {
                // A refusal: the venue holds no working order, so a lost write of it is
                // settled as "never accepted" by reconciliation, the same final state.
                let reason = err.to_string();
                let entry = self.ledger.record_answer(&client_id, |e| {
                    e.status = OrderStatus::Rejected;
                    e.reason = Some(reason);
                })?;
                self.count_order(&entry);
                return Err(GatewayError::Venue(err));
            }
            Err(err @ GatewayError::ConnectorDown { .. }) => {
                // Never delivered to the connector (outcome_unknown said so by its type):
                // nothing left the process. Final, and durable before the caller hears.
                let reason = format!("never sent: {err}");
                let entry = self
                    .ledger
                    .update(&client_id, |e| {
                        e.status = OrderStatus::Rejected;
                        e.reason = Some(reason);
                    })
                    .await?;
                self.count_order(&entry);
                return Err(err);
            }
            Err(other) => return Err(other),
        };
        self.count_order(&entry);
        metrics::histogram!(names::ORDER_LATENCY, "venue" => venue)
            .record(started.elapsed().as_secs_f64());
        Ok(OrderReport::from(&entry))
    }

    /// Looks an order up at the venue by client id and takes over what it says.
    async fn resolve(
        &self,
        venue: &str,
        symbol: &str,
        client_id: &ClientOrderId,
    ) -> GatewayResult<LedgerEntry> {
        let (s, id) = (symbol.to_string(), client_id.clone());
        let found = self
            .call(
                venue,
                VenueCommand::QueryOrder {
                    symbol: s,
                    client_id: id,
                },
            )
            .await;
        match found {
            Ok(Some(order)) => {
                let now = self.clock.now_ms();
                Ok(self
                    .ledger
                    .update(client_id, |e| {
                        e.apply_venue_order(&order, now);
                    })
                    .await?)
            }
            // The venue has no record yet, or cannot be asked now: stays Unknown until
            // reconciliation settles it.
            Ok(None) | Err(_) => self
                .ledger
                .get(client_id)?
                .ok_or_else(|| GatewayError::UnknownOrder(client_id.clone())),
        }
    }

    fn count_order(&self, entry: &LedgerEntry) {
        metrics::counter!(
            names::ORDERS,
            "venue" => entry.venue.clone(),
            "side" => entry.request.side.as_str(),
            "status" => entry.status.as_str()
        )
        .increment(1);
    }

    /// Closes a position with reduce-only market orders of at most `risk.close_chunk_usd`.
    pub async fn close_position(
        &self,
        venue: &str,
        symbol: &str,
        origin: &str,
    ) -> GatewayResult<Vec<OrderReport>> {
        within(
            Priority::High,
            self.close_position_with(venue, symbol, origin, false),
        )
        .await
    }

    async fn close_position_with(
        &self,
        venue: &str,
        symbol: &str,
        origin: &str,
        emergency_close: bool,
    ) -> GatewayResult<Vec<OrderReport>> {
        let mut reports = Vec::new();
        for _ in 0..MAX_CLOSE_CHUNKS {
            let Some(position) = self.position(venue, symbol).await? else {
                break;
            };
            let side = match position.side() {
                Some(Side::Buy) => Side::Sell,
                Some(Side::Sell) => Side::Buy,
                None => break,
            };
            let intent = OrderIntent {
                venue: venue.to_string(),
                symbol: symbol.to_string(),
                side,
                amount: Amount::Usd(
                    self.limits
                        .close_chunk_usd
                        .min(position.notional() * Decimal::TWO),
                ),
                pricing: Pricing::Market,
                reduce_only: true,
                origin: origin.to_string(),
            };
            let report = self.place_with(intent, emergency_close).await?;
            let progressed = report.filled_size > Decimal::ZERO;
            reports.push(report);
            if !progressed {
                break;
            }
        }
        Ok(reports)
    }

    /// Closes every position on one venue (or all venues).
    pub async fn close_all(
        &self,
        venue: Option<&str>,
        origin: &str,
    ) -> GatewayResult<Vec<OrderReport>> {
        within(Priority::High, self.close_all_with(venue, origin, false)).await
    }

    async fn close_all_with(
        &self,
        venue: Option<&str>,
        origin: &str,
        emergency_close: bool,
    ) -> GatewayResult<Vec<OrderReport>> {
        let venues: Vec<String> = match venue {
            Some(v) => vec![self.link(v).map(|_| v.to_string())?],
            None => self.venue_names(),
        };
        let mut reports = Vec::new();
        for v in venues {
            for p in self.positions(&v).await? {
                if !p.size.is_zero() {
                    reports.extend(
                        self.close_position_with(&v, &p.symbol, origin, emergency_close)
                            .await?,
                    );
                }
            }
        }
        Ok(reports)
    }

    /// The seed's "AI entry": set leverage, then bring the position in `side` up to
    /// `usd` notional (closing an opposite position first). Does nothing when the
    /// position is already within 3% of the target.
    pub async fn ai_entry(
        &self,
        venue: &str,
        symbol: &str,
        side: Side,
        usd: Decimal,
        leverage: u32,
        origin: &str,
    ) -> GatewayResult<Vec<OrderReport>> {
        let mut reports = Vec::new();
        if self.leverage_of(venue, symbol) != leverage {
            self.set_leverage(venue, symbol, leverage).await?;
        }
        if let Some(p) = self.position(venue, symbol).await? {
            if p.side() == Some(side.opposite()) {
                reports.extend(self.close_position(venue, symbol, origin).await?);
            }
        }
        let current = match self.position(venue, symbol).await? {
            Some(p) if p.side() == Some(side) => p.notional(),
            _ => Decimal::ZERO,
        };
        let missing = usd - current;
        if missing <= usd * Decimal::new(3, 2) {
            return Ok(reports);
        }
        reports.push(
            self.place(OrderIntent {
                venue: venue.to_string(),
                symbol: symbol.to_string(),
                side,
                amount: Amount::Usd(missing),
                pricing: Pricing::Market,
                reduce_only: false,
                origin: origin.to_string(),
            })
            .await?,
        );
        Ok(reports)
    }

    /// Cancels an open order by client id; allowed in every trading mode.
    pub async fn cancel(&self, client_id: &ClientOrderId) -> GatewayResult<OrderReport> {
        let entry = self
            .ledger
            .get(client_id)?
            .ok_or_else(|| GatewayError::UnknownOrder(client_id.clone()))?;
        if entry.status.is_terminal() {
            return Ok(OrderReport::from(&entry));
        }
        // An order placed outside this engine is known to the venue by its own id only
        // (the client id in the ledger was made up at adoption).
        let adopted_oid = (entry.origin == ADOPTED_ORIGIN)
            .then(|| entry.venue_order_id.clone())
            .flatten();
        let (s, id) = (entry.request.symbol.clone(), client_id.clone());
        let sent = match adopted_oid.clone() {
            Some(oid) => {
                self.call(
                    &entry.venue,
                    VenueCommand::CancelByVenueId {
                        symbol: s,
                        venue_order_id: oid,
                    },
                )
                .await
            }
            None => {
                self.call(
                    &entry.venue,
                    VenueCommand::CancelOrder {
                        symbol: s,
                        client_id: id,
                    },
                )
                .await
            }
        };
        match sent {
            Ok(()) => {}
            Err(err) if outcome_unknown(&err) => return self.settle_cancel(&entry, err).await,
            Err(err) => return Err(err),
        }
        if adopted_oid.is_some() {
            // The venue confirmed the cancel; its order lookup by client id cannot find an
            // adopted order, and a fill that raced the cancel corrects the entry later.
            let updated = self
                .ledger
                .update(client_id, |e| e.status = OrderStatus::Cancelled)
                .await?;
            self.count_order(&updated);
            return Ok(OrderReport::from(&updated));
        }
        let resolved = self
            .resolve(&entry.venue, &entry.request.symbol, client_id)
            .await?;
        self.count_order(&resolved);
        Ok(OrderReport::from(&resolved))
    }

    /// A cancel whose outcome is unknown (timeout, reset, 5xx): the venue is asked what
    /// became of the order — cancelled, filled, still open — and the ledger takes that.
    /// The cancel is never sent again on its own: a second cancel could race the first.
    /// Still open means the first did not take (or has not yet); the caller decides, and
    /// reconciliation keeps reading the order while it is open.
    async fn settle_cancel(
        &self,
        entry: &LedgerEntry,
        err: GatewayError,
    ) -> GatewayResult<OrderReport> {
        let venue = entry.venue.clone();
        let what = format!("the cancel of order {}", entry.client_id);
        let (s, id) = (entry.request.symbol.clone(), entry.client_id.clone());
        let found = self
            .call(
                &venue,
                VenueCommand::QueryOrder {
                    symbol: s,
                    client_id: id,
                },
            )
            .await;
        let (outcome, result) = match found {
            Ok(Some(order)) => {
                let now = self.clock.now_ms();
                let still_open = (!order.status.is_terminal()).then(|| {
                    format!(
                        "its outcome was unknown ({err}); the venue still has the order {}; the cancel was not re-sent",
                        order.status
                    )
                });
                let updated = self
                    .ledger
                    .update(&entry.client_id, |e| {
                        e.apply_venue_order(&order, now);
                        if let Some(reason) = &still_open {
                            e.reason = Some(format!("cancel: {reason}"));
                        }
                    })
                    .await?;
                self.count_order(&updated);
                match still_open {
                    None => (updated.status.as_str(), Ok(OrderReport::from(&updated))),
                    Some(reason) => (
                        "still_open",
                        Err(GatewayError::NotApplied {
                            venue: venue.clone(),
                            what,
                            reason,
                        }),
                    ),
                }
            }
            Ok(None) => (
                "unresolved",
                Err(GatewayError::Unresolved {
                    venue: venue.clone(),
                    what,
                    reason: format!("{err}; the venue has no order with this client id"),
                }),
            ),
            Err(read) => (
                "unresolved",
                Err(GatewayError::Unresolved {
                    venue: venue.clone(),
                    what,
                    reason: format!("{err}; asking the venue about the order failed too: {read}"),
                }),
            ),
        };
        metrics::counter!(names::UNKNOWN_OUTCOMES, "venue" => venue.clone(), "action" => "cancel", "outcome" => outcome).increment(1);
        tracing::warn!(venue, client_id = %entry.client_id, outcome, "cancel with an unknown outcome settled by asking the venue");
        result
    }

    /// Sets the trading mode (risk agent, reconciliation). The kill switch wins: while
    /// it is engaged only the operator can change the mode.
    /// Setting the mode it already has changes nothing (reason and `since_ms` stay, nothing
    /// is persisted or logged): the risk agent re-asserts `Reducing` on every check.
    pub fn set_mode(
        &self,
        mode: TradingMode,
        cause: ModeCause,
        reason: &str,
    ) -> GatewayResult<ModeState> {
        let mut guard = self.mode.write();
        if guard.kill_switch || guard.mode == mode {
            return Ok(guard.clone());
        }
        let next = ModeState {
            mode,
            cause,
            reason: reason.to_string(),
            since_ms: self.clock.now_ms(),
            kill_switch: false,
        };
        self.persist_mode(&next)?;
        *guard = next.clone();
        Ok(next)
    }

    /// Engages or releases the operator's kill switch.
    pub fn kill_switch(&self, engaged: bool, reason: &str) -> GatewayResult<ModeState> {
        let next = ModeState {
            mode: if engaged {
                TradingMode::Halted
            } else {
                TradingMode::Normal
            },
            cause: if engaged {
                ModeCause::KillSwitch
            } else {
                ModeCause::Operator
            },
            reason: reason.to_string(),
            since_ms: self.clock.now_ms(),
            kill_switch: engaged,
        };
        self.persist_mode(&next)?;
        *self.mode.write() = next.clone();
        Ok(next)
    }

    fn persist_mode(&self, state: &ModeState) -> GatewayResult<()> {
        self.mode_tree
            .put_durable_blocking(MODE_KEY, state)
            .map_err(LedgerError::from)?;
        metrics::gauge!(names::TRADING_MODE).set(state.mode.gauge());
        tracing::warn!(mode = %state.mode, cause = %state.cause, reason = %state.reason, kill_switch = state.kill_switch, "trading mode changed");
        Ok(())
    }

    /// Brings the ledger in line with one venue: every open entry is looked up by client
    /// id, orders the venue has and the ledger lacks are adopted, fills are recorded.
    pub async fn reconcile(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        let link = self.link(venue)?;
        // Ahead of market data: orders wait for the lock it holds.
        let outcome = within(Priority::Medium, self.reconcile_inner(venue)).await;
        match &outcome {
            Ok(report) => {
                link.ready_tx.send_replace(Readiness::Ready);
                let first = !link.reconciled_once.swap(true, Ordering::AcqRel);
                // One line at the first pass (what the restart restored), then only
                // when a pass changed something.
                if first || report.changed() {
                    tracing::info!(
                        venue = %venue,
                        first_pass = first,
                        checked = report.checked,
                        updated = report.updated,
                        never_sent = report.never_sent,
                        adopted = report.adopted,
                        corrected = report.corrected,
                        new_fills = report.new_fills,
                        awaiting_deadline = report.awaiting_deadline,
                        "reconciliation"
                    );
                }
            }
            Err(e) => {
                tracing::error!(venue, error = %e, "reconciliation failed; new orders are refused");
                link.ready_tx.send_replace(Readiness::Failed(e.to_string()));
            }
        }
        outcome
    }

    /// The venue's order validity ([`Venue::order_validity`](super::venue::Venue::order_validity)), read once through its
    /// connector and kept.
    async fn order_validity(&self, venue: &str) -> GatewayResult<Duration> {
        let link = self.link(venue)?;
        if let Some(v) = *link.validity.read() {
            return Ok(v);
        }
        let v = self.call(venue, VenueCommand::OrderValidity).await?;
        *link.validity.write() = Some(v);
        Ok(v)
    }

    /// How long until the earliest deadline (plus margin) of an order whose outcome waits
    /// for it: reconciliation runs again then, so such an order is settled soon after the
    /// venue can no longer apply it rather than at the next periodic pass.
    pub fn next_deadline_in(&self) -> Option<Duration> {
        let now = self.clock.now_ms();
        self.ledger
            .open_entries()
            .iter()
            .filter(|e| {
                matches!(
                    e.status,
                    OrderStatus::Intent | OrderStatus::Submitted | OrderStatus::Unknown
                )
            })
            .filter_map(|e| e.request.valid_until_ms)
            .map(|d| d + DEADLINE_MARGIN_MS + 1)
            .filter(|&at| at > now)
            .min()
            .map(|at| Duration::from_millis((at - now) as u64))
    }

    async fn reconcile_inner(&self, venue: &str) -> GatewayResult<ReconcileReport> {
        // Serialised with order flows on this venue: an intent written by a flow that is
        // still waiting for the venue's answer must not be judged "never sent".
        let _serial = self.link(venue)?.order_lock.lock().await;
        let mut report = ReconcileReport::default();
        self.order_validity(venue).await?;
        let venue_open = self.open_orders(venue).await?;
        // Fills first: an order's new state below is written once, with the average price
        // its fills give when the venue's order lookup has none (Hyperliquid's has none),
        // so a crash between two writes cannot leave a filled entry without its price.
        let since = self.ledger.last_fill_ms(venue)?.unwrap_or(0);
        let fills: Vec<Fill> = self
            .call(venue, VenueCommand::FillsSince { since_ms: since })
            .await?;
        let mut new_fills = Vec::new();
        for fill in &fills {
            if self.ledger.record_fill(venue, fill).await? {
                report.new_fills += 1;
                new_fills.push(fill.clone());
            }
        }
        self.correct_finished(venue, &new_fills, &mut report)
            .await?;
        let mut fills_by_order = None;
        let now = self.clock.now_ms();
        let grace_ms = (self.config.request_timeout.as_millis() as i64) * 2;
        let open_by_oid: HashMap<&str, &VenueOrder> = venue_open
            .iter()
            .map(|o| (o.venue_order_id.as_str(), o))
            .collect();
        for entry in self
            .ledger
            .open_entries()
            .into_iter()
            .filter(|e| e.venue == venue)
        {
            report.checked += 1;
            let adopted = entry.origin == ADOPTED_ORIGIN;
            // An adopted order may carry no client id the venue knows: it is found by the
            // venue's order id among the open orders.
            let open_match = entry
                .venue_order_id
                .as_deref()
                .and_then(|oid| open_by_oid.get(oid))
                .filter(|_| adopted)
                .map(|o| (*o).clone());
            let found = match open_match {
                Some(order) => Some(order),
                None => {
                    let (s, id) = (entry.request.symbol.clone(), entry.client_id.clone());
                    self.call(
                        venue,
                        VenueCommand::QueryOrder {
                            symbol: s,
                            client_id: id,
                        },
                    )
                    .await?
                }
            };
            match found {
                Some(order) => {
                    let mut next = entry.clone();
                    if !next.apply_venue_order(&order, now) && next.reason == entry.reason {
                        continue;
                    }
                    if next.avg_fill_price.is_none() && !next.filled_size.is_zero() {
                        let by_order = match &mut fills_by_order {
                            Some(map) => map,
                            None => fills_by_order.insert(self.ledger.fills_by_order(venue)?),
                        };
                        if let Some(order_fills) = by_order.get(&order.venue_order_id) {
                            next.price_from_fills(order_fills);
                        }
                    }
                    let updated = self
                        .ledger
                        .update(&entry.client_id, |e| {
                            e.apply_venue_order(&order, now);
                            e.avg_fill_price = next.avg_fill_price;
                        })
                        .await?;
                    report.updated += 1;
                    self.drift(venue, "status");
                    self.count_order(&updated);
                }
                None if adopted => {
                    // An order placed outside this engine that the venue no longer lists
                    // and cannot be asked about by client id: its fills say what it did.
                    let oid = entry.venue_order_id.clone().unwrap_or_default();
                    let fills = self.ledger.fills_of(venue, &oid)?;
                    let filled: Decimal = fills.iter().map(|f| f.size).sum();
                    let updated = self
                        .ledger
                        .update(&entry.client_id, |e| {
                            e.filled_size = filled.max(e.filled_size);
                            e.status = if e.filled_size >= e.request.size {
                                OrderStatus::Filled
                            } else {
                                OrderStatus::Cancelled
                            };
                            e.avg_fill_price = None;
                            e.price_from_fills(&fills);
                            e.reason = (e.status == OrderStatus::Cancelled).then(|| {
                                "no longer open at the venue (closed outside this engine)".into()
                            });
                        })
                        .await?;
                    report.updated += 1;
                    self.drift(venue, "status");
                    self.count_order(&updated);
                }
                None => match entry.request.valid_until_ms {
                    Some(deadline) if now > deadline + DEADLINE_MARGIN_MS => {
                        // Past its deadline the venue refuses the order, so one it does
                        // not show now can never be applied: final, and never re-sent.
                        // One the venue once acknowledged (it has a venue order id) is
                        // no longer working there: closed as cancelled (a later fill would
                        // correct it); one it never acknowledged never reached it.
                        let acknowledged = entry.venue_order_id.is_some();
                        let updated = self
                            .ledger
                            .update(&entry.client_id, |e| {
                                if acknowledged {
                                    e.status = OrderStatus::Cancelled;
                                    e.reason = Some(
                                        "the venue no longer has a record of this order; it is not working there".into(),
                                    );
                                } else {
                                    e.status = OrderStatus::Rejected;
                                    e.reason = Some(
                                        "never reached the venue (its deadline passed); not re-sent"
                                            .into(),
                                    );
                                }
                            })
                            .await?;
                        if acknowledged {
                            report.updated += 1;
                            self.drift(venue, "status");
                        } else {
                            report.never_sent += 1;
                            self.drift(venue, "never_sent");
                        }
                        self.count_order(&updated);
                    }
                    Some(deadline) => {
                        // The venue may still apply it (a busy venue shows an order late):
                        // unknown, and asked again each pass until the deadline passes.
                        report.awaiting_deadline += 1;
                        if entry.status != OrderStatus::Unknown {
                            let reason = format!(
                                "the venue does not show it yet; it may still apply it until its deadline ({deadline} ms)"
                            );
                            let updated = self
                                .ledger
                                .update(&entry.client_id, |e| {
                                    e.status = OrderStatus::Unknown;
                                    e.reason = Some(reason);
                                })
                                .await?;
                            self.count_order(&updated);
                        }
                    }
                    // Entries written before deadlines existed keep the rule they were
                    // written under.
                    None if now - entry.updated_ms >= grace_ms
                        || entry.status == OrderStatus::Intent =>
                    {
                        let updated = self
                            .ledger
                            .update(&entry.client_id, |e| {
                                e.status = OrderStatus::Rejected;
                                e.reason = Some("venue has no record of this order; it was never accepted (not re-sent)".into());
                            })
                            .await?;
                        report.never_sent += 1;
                        self.drift(venue, "never_sent");
                        self.count_order(&updated);
                    }
                    None => {}
                },
            }
        }
        for order in venue_open {
            if let Some(id) = &order.client_id {
                if self.ledger.get(id)?.is_some() {
                    continue;
                }
            }
            // Adopted once, keyed by the venue's order id: a second pass (or a restart)
            // finds the index entry and adds nothing.
            let indexed = self.ledger.adopted(venue, &order.venue_order_id)?;
            if let Some(id) = &indexed {
                if self.ledger.get(id)?.is_some() {
                    continue;
                }
            }
            report.adopted += 1;
            self.drift(venue, "unknown_at_venue");
            let request = OrderRequest {
                client_id: indexed
                    .or_else(|| order.client_id.clone())
                    .unwrap_or_else(ClientOrderId::generate),
                symbol: order.symbol.clone(),
                side: order.side,
                size: order.size,
                order_type: match order.limit_price {
                    Some(price) => OrderType::Limit {
                        price,
                        tif: TimeInForce::Gtc,
                    },
                    None => OrderType::Market {
                        max_slippage: Decimal::ZERO,
                    },
                },
                reduce_only: order.reduce_only,
                valid_until_ms: None,
            };
            let mut entry = LedgerEntry::new_intent(venue, request, ADOPTED_ORIGIN, now);
            entry.apply_venue_order(&order, now);
            self.ledger.record_adoption(&entry).await?;
        }
        self.settle_unsettled_leverage(venue).await?;
        self.account(venue).await?;
        Ok(report)
    }

    /// A new fill for an entry the ledger holds as finished (rejected, or with less filled
    /// than its fills) means the entry is wrong: it is reopened and corrected from the
    /// venue's answer by client id, or from its fills when the venue has none.
    async fn correct_finished(
        &self,
        venue: &str,
        new_fills: &[Fill],
        report: &mut ReconcileReport,
    ) -> GatewayResult<()> {
        let mut by_oid: Option<HashMap<String, ClientOrderId>> = None;
        let mut seen = BTreeSet::new();
        for fill in new_fills {
            let id = match &fill.client_id {
                Some(id) => Some(id.clone()),
                None => match self.ledger.adopted(venue, &fill.venue_order_id)? {
                    Some(id) => Some(id),
                    None => {
                        // Venues whose fills carry no client id (Binance): by the venue's
                        // order id, from one scan of the ledger per pass that needs it.
                        let map = match &mut by_oid {
                            Some(map) => map,
                            None => by_oid.insert(
                                self.ledger
                                    .all()?
                                    .into_iter()
                                    .filter(|e| e.venue == venue)
                                    .filter_map(|e| Some((e.venue_order_id?, e.client_id)))
                                    .collect(),
                            ),
                        };
                        map.get(&fill.venue_order_id).cloned()
                    }
                },
            };
            let Some(id) = id else { continue };
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(entry) = self.ledger.get(&id)? else {
                continue;
            };
            if !entry.status.is_terminal() {
                // Open entries are settled by the lookup that follows.
                continue;
            }
            let fills = self.ledger.fills_of(venue, &fill.venue_order_id)?;
            let filled: Decimal = fills.iter().map(|f| f.size).sum();
            if entry.status != OrderStatus::Rejected && filled <= entry.filled_size {
                continue;
            }
            let (s, q) = (entry.request.symbol.clone(), id.clone());
            let found = self
                .call(
                    venue,
                    VenueCommand::QueryOrder {
                        symbol: s,
                        client_id: q,
                    },
                )
                .await?;
            let now = self.clock.now_ms();
            let oid = fill.venue_order_id.clone();
            let updated = self
                .ledger
                .update(&id, |e| {
                    match &found {
                        Some(order) => {
                            e.apply_venue_order(order, now);
                        }
                        None => {
                            e.venue_order_id = Some(oid);
                            e.filled_size = filled;
                            e.status = if filled >= e.request.size {
                                OrderStatus::Filled
                            } else {
                                // Open again: the next pass asks the venue.
                                OrderStatus::PartiallyFilled
                            };
                            e.reason = None;
                        }
                    }
                    if e.avg_fill_price.is_none() {
                        e.price_from_fills(&fills);
                    }
                })
                .await?;
            report.corrected += 1;
            self.drift(venue, "corrected");
            self.count_order(&updated);
            metrics::counter!(names::LEDGER_CORRECTIONS, "venue" => venue.to_string()).increment(1);
            tracing::warn!(
                venue,
                client_id = %id,
                was = %entry.status,
                was_filled = %entry.filled_size.normalize(),
                now = %updated.status,
                filled = %updated.filled_size.normalize(),
                "a fill showed a finished ledger entry was wrong; corrected from the venue"
            );
        }
        Ok(())
    }

    fn drift(&self, venue: &str, kind: &'static str) {
        metrics::counter!(names::RECONCILE_DRIFT, "venue" => venue.to_string(), "kind" => kind)
            .increment(1);
    }

    /// Reconciles every venue, returning the first failure after trying all.
    pub async fn reconcile_all(&self) -> GatewayResult<()> {
        let mut first_err = None;
        for venue in self.venue_names() {
            if let Err(e) = self.reconcile(&venue).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Whether a failed send may still have reached the venue. Decided on types only: a
/// connector that was never reached (`Vacant`, `Full`) sent nothing; one that stopped or
/// did not answer (`Closed`, `Timeout`) may have.
fn outcome_unknown(err: &GatewayError) -> bool {
    match err {
        GatewayError::Venue(VenueError::OutcomeUnknown { .. } | VenueError::Timeout { .. }) => true,
        GatewayError::ConnectorDown { delivery, .. } => delivery.may_have_been_sent(),
        _ => false,
    }
}

/// What one reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileReport {
    /// Open entries looked up at the venue.
    pub checked: usize,
    /// Entries whose state the venue's answer changed.
    pub updated: usize,
    /// Entries concluded never sent (the venue does not show them and can no longer
    /// apply them).
    pub never_sent: usize,
    /// Venue orders placed outside this engine, adopted now.
    pub adopted: usize,
    /// Finished entries a fill showed wrong, corrected.
    pub corrected: usize,
    pub new_fills: usize,
    /// Entries the venue does not show yet whose deadline has not passed: unknown, asked
    /// again at the next pass.
    pub awaiting_deadline: usize,
}

impl ReconcileReport {
    pub fn drift(&self) -> usize {
        self.updated + self.never_sent + self.adopted + self.corrected
    }

    /// Whether this pass changed the ledger.
    pub fn changed(&self) -> bool {
        self.drift() > 0 || self.new_fills > 0
    }
}

/// The gateway actor.
pub struct OrderGateway {
    core: Arc<GatewayCore>,
}

impl OrderGateway {
    pub fn new(core: Arc<GatewayCore>) -> Self {
        Self { core }
    }
}

impl Actor for OrderGateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reconcile_soon(ctx);
        let interval = self.core.config.reconcile_interval;
        ctx.run_interval(interval, |this, ctx| this.reconcile_soon(ctx));
    }
}

impl OrderGateway {
    /// Reconciles every venue now; if an order's outcome waits for its deadline, again
    /// right after that deadline (see [`GatewayCore::next_deadline_in`]).
    fn reconcile_soon(&self, ctx: &mut Context<Self>) {
        let core = self.core.clone();
        ctx.spawn(
            async move {
                let _ = core.reconcile_all().await;
                core.next_deadline_in()
            }
            .into_actor(self)
            .map(|next, _, ctx| {
                if let Some(wait) = next {
                    ctx.run_later(wait, |this, ctx| this.reconcile_soon(ctx));
                }
            }),
        );
    }
}

macro_rules! gateway_message {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $ret:ty, |$core:ident, $msg:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name { $(pub $field: $ty),* }
        impl Message for $name {
            type Result = GatewayResult<$ret>;
        }
        impl Handler<$name> for OrderGateway {
            type Result = ResponseFuture<GatewayResult<$ret>>;
            fn handle(&mut self, $msg: $name, _: &mut Context<Self>) -> Self::Result {
                let $core = self.core.clone();
                Box::pin(async move { $body })
            }
        }
    };
}

gateway_message!(
    /// Place one order.
    PlaceOrder { intent: OrderIntent } -> OrderReport,
    |core, msg| core.place(msg.intent).await
);
gateway_message!(
    /// Close one position in chunks.
    ClosePosition { venue: String, symbol: String, origin: String } -> Vec<OrderReport>,
    |core, msg| core.close_position(&msg.venue, &msg.symbol, &msg.origin).await
);
gateway_message!(
    /// Close every position on a venue, or on all venues.
    CloseAll { venue: Option<String>, origin: String } -> Vec<OrderReport>,
    |core, msg| core.close_all(msg.venue.as_deref(), &msg.origin).await
);
gateway_message!(
    /// Set leverage and enter up to a USD notional.
    AiEntry { venue: String, symbol: String, side: Side, usd: Decimal, leverage: u32, origin: String } -> Vec<OrderReport>,
    |core, msg| core.ai_entry(&msg.venue, &msg.symbol, msg.side, msg.usd, msg.leverage, &msg.origin).await
);
gateway_message!(
    /// Cancel an order by client id.
    CancelOrder { client_id: ClientOrderId } -> OrderReport,
    |core, msg| within(Priority::High, core.cancel(&msg.client_id)).await
);
gateway_message!(
    /// Set leverage for a symbol.
    SetLeverage { venue: String, symbol: String, leverage: u32 } -> (),
    |core, msg| core.set_leverage(&msg.venue, &msg.symbol, msg.leverage).await
);
gateway_message!(
    /// Current quote.
    GetQuote { venue: String, symbol: String } -> Quote,
    |core, msg| core.quote(&msg.venue, &msg.symbol).await
);
gateway_message!(
    /// Candles, oldest first.
    GetCandles { venue: String, symbol: String, timeframe: Timeframe, lookback: usize } -> Vec<Candle>,
    |core, msg| core.candles(&msg.venue, &msg.symbol, msg.timeframe, msg.lookback).await
);
gateway_message!(
    /// All positions of a venue.
    GetPositions { venue: String } -> Vec<Position>,
    |core, msg| core.positions(&msg.venue).await
);
gateway_message!(
    /// The position in one symbol, if any.
    GetPosition { venue: String, symbol: String } -> Option<Position>,
    |core, msg| core.position(&msg.venue, &msg.symbol).await
);
gateway_message!(
    /// The USD value of the position in one symbol (the seed's "token balance in USD").
    GetTokenBalanceUsd { venue: String, symbol: String } -> Decimal,
    |core, msg| Ok(core.position(&msg.venue, &msg.symbol).await?.map(|p| p.notional()).unwrap_or_default())
);
gateway_message!(
    /// Account value, free balance and margin.
    GetAccount { venue: String } -> AccountSnapshot,
    |core, msg| core.account(&msg.venue).await
);
gateway_message!(
    /// Open orders as the venue reports them.
    GetOpenOrders { venue: String } -> Vec<VenueOrder>,
    |core, msg| core.open_orders(&msg.venue).await
);
gateway_message!(
    /// Reconcile now.
    Reconcile { venue: String } -> ReconcileReport,
    |core, msg| core.reconcile(&msg.venue).await
);
gateway_message!(
    /// Change the trading mode (ignored while the kill switch is engaged).
    SetMode { mode: TradingMode, cause: ModeCause, reason: String } -> ModeState,
    |core, msg| core.set_mode(msg.mode, msg.cause, &msg.reason)
);
gateway_message!(
    /// Back to `Normal` if the mode is `Reducing` set by the risk agent
    /// ([`ModeCause::RiskAgent`]: its own restriction, decided on the type, never on the
    /// reason text); never lifts a halt or anyone else's restriction.
    LiftRiskReduction {} -> ModeState,
    |core, _msg| {
        let state = core.mode();
        if state.mode == TradingMode::Reducing && state.cause == ModeCause::RiskAgent {
            core.set_mode(TradingMode::Normal, ModeCause::RiskAgent, "risk: new window")
        } else {
            Ok(state)
        }
    }
);
gateway_message!(
    /// Engage (halt, cancel every open order, then close every position; see
    /// [`GatewayCore::engage_kill_switch`]) or release the kill switch.
    KillSwitch { engaged: bool, reason: String } -> KillSwitchReport,
    |core, msg| {
        if msg.engaged {
            within(Priority::High, core.engage_kill_switch(&msg.reason)).await
        } else {
            Ok(KillSwitchReport {
                state: core.kill_switch(false, &msg.reason)?,
                cancelled: Vec::new(),
                closed: Vec::new(),
                failed: Vec::new(),
            })
        }
    }
);
gateway_message!(
    /// Trading mode and the newest orders, for status and the control API.
    GetSnapshot { recent: usize } -> GatewaySnapshot,
    |core, msg| Ok(GatewaySnapshot {
        mode: core.mode(),
        open_orders: core.ledger().open_entries().iter().map(OrderReport::from).collect(),
        recent_orders: core.ledger().recent(msg.recent)?.iter().map(OrderReport::from).collect(),
        ledger_len: core.ledger().len(),
    })
);

gateway_message!(
    /// The trading mode, for agents deciding whether a model call can lead anywhere.
    GetMode {} -> ModeState,
    |core, _msg| Ok(core.mode())
);

gateway_message!(
    /// Per-position accounting of a venue's fills (recorded, plus those the venue reports
    /// since the newest recorded one; nothing is written), valued at its marks, with a row
    /// for every symbol in `symbols` and every position held.
    GetPositionPnl { venue: String, symbols: Vec<String> } -> Vec<crate::exchanges::pnl::PositionPnl>,
    |core, msg| {
        let recorded = core.ledger().fills(&msg.venue)?;
        let since = recorded.last().map(|f| f.time_ms).unwrap_or(0);
        let fresh = core
            .call(&msg.venue, VenueCommand::FillsSince { since_ms: since })
            .await?;
        let fills = crate::exchanges::pnl::merge_fills(recorded, fresh);
        let positions = core.positions(&msg.venue).await?;
        let mut symbols = msg.symbols;
        symbols.extend(positions.iter().filter(|p| !p.size.is_zero()).map(|p| p.symbol.clone()));
        symbols.sort();
        symbols.dedup();
        Ok(crate::exchanges::pnl::position_pnl(&fills, &positions, &symbols))
    }
);

/// Gateway state for `orrery status` and the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySnapshot {
    pub mode: ModeState,
    pub open_orders: Vec<OrderReport>,
    pub recent_orders: Vec<OrderReport>,
    pub ledger_len: usize,
}

mod operations;
pub use operations::{
    CancelAll, CancelReport, ClosePositionPct, CloseReport, KillSwitchReport, OperationFailure,
};

#[cfg(test)]
mod tests;
