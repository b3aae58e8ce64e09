//! The order gateway: the one door through which orders reach venues.
//!
//! Owns: turning an order intent (buy $X, close a position, enter with leverage) into
//! exact venue orders; the risk gate check; the ledger write that precedes every send; the
//! resolution of orders whose outcome is unknown (by client id, never by sending again);
//! reconciliation of the ledger with each venue at start and periodically; the trading
//! mode and the kill switch. Never: decides what to trade (agents do) or speaks a venue's
//! wire format (connectors do).
//!
//! A venue is one account, reached through one connector or several siblings (one per
//! base endpoint); [`GatewayCore::call`] routes every venue call among them (see
//! [`super::siblings`]), so placement, settlement and reconciliation never name a connector.
//!
//! The actor is a thin mailbox over [`GatewayCore`], which lives behind an `Arc` so that
//! order flows can await venues without holding the actor. Orders for one venue are
//! serialised by a per-venue lock (the venue's turn) so two concurrent intents are never
//! judged against the same stale position; cancels and leverage updates take the same turn
//! around their send only (their reads and settlement run without it, so a cancel waits
//! at most for the order in flight); reads are not serialised. Within one order the reads it needs
//! (instrument, quote, balances with positions) are in flight together.
//!
//! The gateway is split by concern, each module with its own docs: [`config`] (the
//! `[exchanges]` settings), [`errors`] (what can go wrong, and whether an order may have
//! been sent), [`placement`] (validation, the durable intent, the send; closes and cancels),
//! [`settlement`] (sends whose outcome is unknown, settled by client id), [`leverage`],
//! [`modes`] (trading mode and kill switch), [`reconcile`] (reconciliation as a pure
//! function of a ledger snapshot and a venue snapshot), [`reconcile_apply`] (reading the
//! venue for it and writing its actions), [`market_reads`] (the gateway as market data's
//! [`VenueReads`](super::market_data::VenueReads) host), [`operations`] (bulk cancel,
//! partial close, the kill switch's sequence) and [`pushed`] (order states and fills a
//! venue's user stream pushes, written with the reconciliation rules) and [`ownership`]
//! (in a cluster: the venue's lease, the fencing token on every intent, the replica, the
//! takeover). This module holds the shared core
//! ([`GatewayCore`]: venue links, reads), the [`GatewayFence`] across restarts, the actor
//! and its messages.
//!
//! ## Log lines
//!
//! Every order transition and every fill is logged at `info` by the ledger's write paths
//! (see [`super::ledger`]). Each venue's reconciliation logs one `info` line
//! (`reconciliation`: checked, updated, never_sent, adopted, corrected, new_fills,
//! awaiting_deadline) at its first pass, which tells what a restart restored, and after
//! that only for passes that changed something. Each fill recorded from a venue's stream
//! logs one more `info` line (`fill recorded from the venue's stream`, see [`pushed`]).
//!
//! Everything else the gateway writes (intents, refusals, unknown outcomes, cancels,
//! reconciliation) is durable before it returns.

use std::collections::{BTreeMap, BTreeSet};
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
#[cfg(test)]
use super::connector::Connector;
use super::ledger::{LedgerEntry, LedgerError, OrderLedger};
use super::market_data::{FeedConfig, MarketData};
use super::risk_gate::{
    self, GateView, Judgement, ModeCause, ModeState, Refusal, RiskConfig, TradingMode,
};
use super::siblings::{move_on, ConnectorHealth, ConnectorSet, Failure, IntoConnectors};
use super::types::*;
use super::venue::{size_for_usd, VenueError};
use crate::clock::SharedClock;
use crate::resilience::{Priority, TokioClock};
use crate::store::{trees, Store, Tree};
#[cfg(test)]
use crate::supervisor::Slot;
use crate::supervisor::SlotError;
use crate::telemetry::names;
use crate::validate::{join, Issues};

mod config;
mod errors;
mod leverage;
mod market_reads;
mod modes;
pub mod ownership;
mod placement;
pub mod reconcile;
mod reconcile_apply;
mod reconcile_schedule;
mod settlement;

pub use config::GatewayConfig;
pub use errors::{DeliveryFailure, GatewayError, GatewayResult, OrderProblem};
pub use ownership::VenueOwnership;
pub use placement::{Amount, OrderIntent, OrderReport, Pricing};
pub use reconcile::ReconcileReport;
use settlement::outcome_unknown;

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
    /// This gateway's generation in its [`GatewayFence`].
    generation: u64,
    /// Swarm agents whose quorum is lost, with why ([`swarm_quorum`]).
    swarm_degraded: parking_lot::Mutex<BTreeMap<String, String>>,
    /// Websocket market data, attached once by the engine: a fresh streamed quote answers
    /// a quote read without a REST call (see [`super::stream`]).
    streams: std::sync::OnceLock<super::stream::StreamBook>,
    /// When each venue was last reconciled, and its stream's connection count then
    /// ([`reconcile_schedule`]).
    last_pass: parking_lot::Mutex<BTreeMap<String, reconcile_schedule::LastPass>>,
    /// Leases and the ledger replica when the engine runs in a cluster ([`ownership`]).
    ownership: std::sync::OnceLock<VenueOwnership>,
}

struct VenueLink {
    /// The account's connectors: one, or a sibling per base endpoint.
    connectors: ConnectorSet,
    /// The venue's order path, shared with every other generation of the gateway.
    turn: Arc<VenueTurn>,
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
    /// The lease token under which this venue was last taken over (0: never; cluster
    /// only, see [`ownership`]).
    adopted_token: std::sync::atomic::AtomicU64,
    /// One takeover at a time per venue.
    takeover: tokio::sync::Mutex<()>,
}

impl GatewayCore {
    /// A gateway whose market-data reads fall back to each venue's own cache only.
    pub fn open(
        store: &Store,
        venues: BTreeMap<String, impl IntoConnectors>,
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
        venues: BTreeMap<String, impl IntoConnectors>,
        limits: RiskConfig,
        config: GatewayConfig,
        feeds: BTreeMap<String, FeedConfig>,
        clock: SharedClock,
    ) -> GatewayResult<Arc<Self>> {
        let fence = GatewayFence::default();
        Self::open_fenced(store, venues, limits, config, feeds, clock, &fence)
    }

    /// [`GatewayCore::open_with_market_data`] as the next generation in `fence`: from
    /// now on no order flow of an earlier generation in it begins a send (see
    /// [`GatewayFence`]). A factory that rebuilds the gateway after a crash passes the same
    /// fence every time.
    pub fn open_fenced(
        store: &Store,
        venues: BTreeMap<String, impl IntoConnectors>,
        limits: RiskConfig,
        config: GatewayConfig,
        feeds: BTreeMap<String, FeedConfig>,
        clock: SharedClock,
        fence: &GatewayFence,
    ) -> GatewayResult<Arc<Self>> {
        let generation = fence.next_generation();
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
        // The drift series exist from start at 0, so an alert on their increase works
        // before the first drift.
        for venue in venues.keys() {
            metrics::counter!(names::RECONCILE_DRIFT, "venue" => venue.clone(), "kind" => "unknown_at_venue")
                .increment(0);
        }
        let venues = venues
            .into_iter()
            .map(|(name, connectors)| {
                let (ready_tx, _) = watch::channel(Readiness::Pending);
                let turn = fence.claim(&name, generation);
                let connectors = connectors.into_connectors(&name);
                (
                    name,
                    VenueLink {
                        turn,
                        connectors,
                        leverage: RwLock::new(BTreeMap::new()),
                        unsettled_leverage: parking_lot::Mutex::new(BTreeSet::new()),
                        ready_tx,
                        validity: RwLock::new(None),
                        reconciled_once: AtomicBool::new(false),
                        adopted_token: std::sync::atomic::AtomicU64::new(0),
                        takeover: tokio::sync::Mutex::new(()),
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
            generation,
            swarm_degraded: parking_lot::Mutex::new(BTreeMap::new()),
            streams: std::sync::OnceLock::new(),
            last_pass: parking_lot::Mutex::new(BTreeMap::new()),
            ownership: std::sync::OnceLock::new(),
        }))
    }

    /// Serves quotes from `streams` while they are fresh (REST otherwise). Attached once;
    /// a second call is ignored (returns false).
    pub fn attach_streams(&self, streams: super::stream::StreamBook) -> bool {
        self.streams.set(streams).is_ok()
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

    /// This generation's turn on a venue's order path: the venue's lock, shared by every
    /// generation, and refused once a later generation has started. Order flows and
    /// reconciliation of one venue hold it, so they never interleave across generations.
    pub(super) async fn venue_turn(
        &self,
        venue: &str,
    ) -> GatewayResult<tokio::sync::MutexGuard<'_, ()>> {
        let link = self.link(venue)?;
        let guard = link.turn.lock.lock().await;
        self.fenced(venue)?;
        Ok(guard)
    }

    /// Refuses when a later generation of this gateway has started: checked right before
    /// every send (order, cancel, leverage), so a flow that outlived its actor never sends.
    pub(super) fn fenced(&self, venue: &str) -> GatewayResult<()> {
        let latest = self.link(venue)?.turn.latest.load(Ordering::SeqCst);
        if latest == self.generation {
            return Ok(());
        }
        tracing::warn!(
            venue,
            generation = self.generation,
            latest,
            "order flow of a replaced gateway stopped before its send"
        );
        metrics::counter!(names::GATEWAY_FENCED, "venue" => venue.to_string()).increment(1);
        Err(GatewayError::Superseded {
            venue: venue.to_string(),
            generation: self.generation,
            latest,
        })
    }

    /// Runs one command on a venue, bounded by the request timeout, at the more urgent of
    /// the command's own priority and the flow's ([`VenueRequest::in_flow`]).
    ///
    /// The command goes to the account's best-ranked connector (live, breaker not open,
    /// least busy; see [`super::siblings`]). If that one fails in a way
    /// [`move_on`] allows (a read after any endpoint failure; a state change only when it
    /// was never delivered), the next sibling gets it within the same deadline. A send
    /// that may have reached the venue never moves: it is settled by a query by client
    /// id, which is a read and so goes to any healthy sibling.
    pub async fn call<R: FromReply>(&self, venue: &str, command: VenueCommand) -> GatewayResult<R> {
        let link = self.link(venue)?;
        let endpoint = command.endpoint();
        let changes_state = command.changes_state();
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let mut candidates = link.connectors.ranked().into_iter().peekable();
        let mut request = Some(VenueRequest::in_flow(command));
        if changes_state {
            // In a cluster a state change is not sent after the lease's safe-until.
            if let Some(r) = request.as_mut() {
                r.send_by = self.send_by(venue);
            }
        }
        let mut failed = None;
        while let Some(connector) = candidates.next() {
            let sibling_left = candidates.peek().is_some();
            // Cloned only while a sibling could still need it.
            let this = if sibling_left {
                request.clone()
            } else {
                request.take()
            };
            let Some(this) = this else { break };
            let sent = connector.slot.send(this);
            let (err, next) = match tokio::time::timeout_at(deadline, sent).await {
                Err(_) => {
                    return Err(GatewayError::Venue(VenueError::Timeout {
                        venue: venue.to_string(),
                        what: endpoint.to_string(),
                        after: self.config.request_timeout,
                    }))
                }
                Ok(Ok(Ok(reply))) => {
                    return R::from_reply_of(reply, venue, endpoint).map_err(GatewayError::Venue)
                }
                Ok(Err(e)) => (
                    GatewayError::ConnectorDown {
                        venue: venue.to_string(),
                        delivery: DeliveryFailure::of(&e),
                        reason: e.to_string(),
                    },
                    move_on(changes_state, Failure::Slot(&e)),
                ),
                Ok(Ok(Err(e))) => {
                    let next = move_on(changes_state, Failure::Venue(&e));
                    (GatewayError::Venue(e), next)
                }
            };
            match next {
                Some(why) if sibling_left => {
                    metrics::counter!(names::CONNECTOR_FAILOVERS, "venue" => venue.to_string(), "connector" => connector.name.clone(), "reason" => why.label()).increment(1);
                    tracing::info!(venue, connector = %connector.name, endpoint, reason = why.label(), error = %err, "call moved to a sibling connector");
                    failed = Some(err);
                }
                _ => return Err(err),
            }
        }
        // Only reached if the set had no connector, which `ConnectorSet::new` refuses.
        Err(failed.unwrap_or_else(|| GatewayError::ConnectorDown {
            venue: venue.to_string(),
            delivery: DeliveryFailure::Vacant,
            reason: "the venue has no connector".into(),
        }))
    }

    /// Each connector of `venue`: name, endpoint, state and load now (for status).
    pub fn connectors(&self, venue: &str) -> GatewayResult<Vec<ConnectorHealth>> {
        Ok(self.link(venue)?.connectors.health())
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

    /// The venue's positions over REST: what orders, closes and the kill switch act on.
    pub async fn positions(&self, venue: &str) -> GatewayResult<Vec<Position>> {
        self.call(venue, VenueCommand::Positions).await
    }

    /// The venue's positions for readers that only look (status, agents' context, the
    /// risk agent's checks, PnL): pushed by its stream while fresh, else over REST. What
    /// acts on a position reads [`Self::positions`].
    pub async fn observed_positions(&self, venue: &str) -> GatewayResult<Vec<Position>> {
        match self.streamed_account(venue) {
            Some(state) => Ok(state.positions),
            None => self.positions(venue).await,
        }
    }

    /// The account state the venue's stream pushed, while fresh (see
    /// [`VenueFeed::fresh_account`](super::stream::book::VenueFeed::fresh_account)).
    /// The venue's stream state, when streams are attached and the venue has one.
    fn feed(&self, venue: &str) -> Option<Arc<super::stream::book::VenueFeed>> {
        self.streams.get()?.feed(venue)
    }

    fn fills_streamed(&self, venue: &str) -> bool {
        self.feed(venue).is_some_and(|f| f.fills_streamed())
    }

    fn streamed_account(&self, venue: &str) -> Option<AccountState> {
        self.feed(venue)?.fresh_account()
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

    /// The venue's balances for readers that only look: pushed by its stream while fresh,
    /// else over REST.
    pub async fn observed_account(&self, venue: &str) -> GatewayResult<AccountSnapshot> {
        match self.streamed_account(venue) {
            Some(state) => {
                Self::gauge_account(venue, &state.account);
                Ok(state.account)
            }
            None => self.account(venue).await,
        }
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

    fn count_order(&self, entry: &LedgerEntry) {
        metrics::counter!(
            names::ORDERS,
            "venue" => entry.venue.clone(),
            "side" => entry.request.side.as_str(),
            "status" => entry.status.as_str()
        )
        .increment(1);
    }
}

/// The generations of one order gateway over its venues, shared by every gateway the
/// supervisor builds in its place (a clone of one fence, kept by the factory).
///
/// Order flows are futures that outlive the actor that started them: after a panic and a
/// restart, a flow of the dead generation may still be waiting for a venue. Each
/// [`GatewayCore::open_fenced`] takes the next generation and at once marks every venue as
/// its own; a flow (placement, cancel, leverage update) checks, under the venue's lock (one
/// per venue, shared by all generations) and again right before each send, that no later
/// generation has started,
/// and otherwise stops with [`GatewayError::Superseded`] (nothing sent). A send already
/// at the venue when the new generation starts finishes under the lock, before the new
/// generation reconciles that venue.
#[derive(Clone, Default)]
pub struct GatewayFence {
    inner: Arc<FenceInner>,
}

#[derive(Default)]
struct FenceInner {
    generation: std::sync::atomic::AtomicU64,
    venues: parking_lot::Mutex<BTreeMap<String, Arc<VenueTurn>>>,
}

/// One venue's order path across generations.
#[derive(Default)]
struct VenueTurn {
    lock: tokio::sync::Mutex<()>,
    /// The newest generation that has started.
    latest: std::sync::atomic::AtomicU64,
}

impl GatewayFence {
    /// The newest generation started in this fence (0: none yet).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Starts the next generation.
    fn next_generation(&self) -> u64 {
        self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Marks `venue` as `generation`'s (never back to an older one) and returns its turn.
    fn claim(&self, venue: &str, generation: u64) -> Arc<VenueTurn> {
        let turn = self
            .inner
            .venues
            .lock()
            .entry(venue.to_string())
            .or_default()
            .clone();
        turn.latest.fetch_max(generation, Ordering::SeqCst);
        turn
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
        ctx.run_interval(interval, |this, ctx| this.reconcile_periodic(ctx));
    }
}

impl OrderGateway {
    /// The periodic pass: every venue that is due ([`GatewayCore::reconcile_due`]).
    fn reconcile_periodic(&self, ctx: &mut Context<Self>) {
        let core = self.core.clone();
        ctx.spawn(
            async move {
                let _ = core.reconcile_due().await;
            }
            .into_actor(self),
        );
    }

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
    /// Place one order under the caller's client id; an id already in the ledger answers
    /// with its entry and is never sent again ([`GatewayCore::place_keyed`]).
    PlaceKeyedOrder { intent: OrderIntent, client_id: ClientOrderId } -> OrderReport,
    |core, msg| core.place_keyed(msg.intent, msg.client_id).await
);
gateway_message!(
    /// One order of the ledger by client id, if it is there.
    GetOrder { client_id: ClientOrderId } -> Option<OrderReport>,
    |core, msg| Ok(core.ledger().get(&msg.client_id)?.as_ref().map(OrderReport::from))
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
    /// All positions of a venue (as observed: the stream's while fresh).
    GetPositions { venue: String } -> Vec<Position>,
    |core, msg| core.observed_positions(&msg.venue).await
);
gateway_message!(
    /// The position in one symbol, if any (as observed: the stream's while fresh).
    GetPosition { venue: String, symbol: String } -> Option<Position>,
    |core, msg| Ok(core.observed_positions(&msg.venue).await?.into_iter().find(|p| p.symbol == msg.symbol && !p.size.is_zero()))
);
gateway_message!(
    /// The USD value of the position in one symbol (the seed's "token balance in USD").
    GetTokenBalanceUsd { venue: String, symbol: String } -> Decimal,
    |core, msg| Ok(core.observed_positions(&msg.venue).await?.into_iter().find(|p| p.symbol == msg.symbol && !p.size.is_zero()).map(|p| p.notional()).unwrap_or_default())
);
gateway_message!(
    /// Account value, free balance and margin (as observed: the stream's while fresh).
    GetAccount { venue: String } -> AccountSnapshot,
    |core, msg| core.observed_account(&msg.venue).await
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
    /// Each connector of a venue account (one, or a sibling per base endpoint): its
    /// state and load, for status.
    GetConnectors { venue: String } -> Vec<ConnectorHealth>,
    |core, msg| core.connectors(&msg.venue)
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
        // While the venue pushes the account's fills, the ledger already has them.
        let fresh = if core.fills_streamed(&msg.venue) {
            Vec::new()
        } else {
            core.call(&msg.venue, VenueCommand::FillsSince { since_ms: since })
                .await?
        };
        let fills = crate::exchanges::pnl::merge_fills(recorded, fresh);
        let positions = core.observed_positions(&msg.venue).await?;
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

mod swarm_quorum;
pub use swarm_quorum::{SwarmQuorumLost, SwarmQuorumRestored};
mod resource_pressure;
pub use resource_pressure::{ResourceCritical, ResourceRecovered};

/// A gateway with no venue on a temporary store, for tests of its mode rules.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::Store;

    pub(crate) fn core() -> Arc<GatewayCore> {
        let store = Store::temporary().unwrap();
        GatewayCore::open(
            &store,
            BTreeMap::<String, Slot<Connector>>::new(),
            RiskConfig::default(),
            GatewayConfig::default(),
            ManualClock::new(1_000),
        )
        .unwrap()
    }
}

pub mod pushed;
pub use pushed::{ApplyPushed, PushReport};

mod operations;
pub use operations::{
    CancelAll, CancelReport, ClosePositionPct, CloseReport, KillSwitchReport, OperationFailure,
};

#[cfg(test)]
mod tests;
