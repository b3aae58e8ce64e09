//! The typed face of [`EngineHandle`] for a program that embeds the engine: orders,
//! cancels, closes, the kill switch, status, model questions, agent pause/resume/run-now, the
//! live supervisor tree and the event stream, without knowing any actor message.
//!
//! Owns: turning each call into the gateway's, the router's or the store's own request,
//! and one error type for all of them ([`EngineCallError`]) that keeps the typed cause.
//! Never: decides about money itself. Every order goes through the gateway's risk gate
//! and ledger exactly as one from the control API does; an order whose outcome is
//! unknown is reported as such ([`EngineCallError::Refused`] with the gateway's
//! `OutcomeUnknown`, or [`EngineCallError::GatewayUnavailable`] with
//! [`SlotError::Closed`] / [`SlotError::Timeout`]) and settled by reconciliation, never
//! re-sent. [`SlotError::Vacant`] means the gateway never received the request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use orrery::{Config, Engine};
//! use orrery_actors::exchanges::gateway::{Amount, OrderIntent, Pricing};
//! use orrery_actors::exchanges::Side;
//! use rust_decimal::Decimal;
//!
//! let config = Config::load_str(
//!     include_str!("../config/default.toml"),
//!     "default.toml",
//!     std::env::vars(),
//! )?;
//! let engine = Engine::start(config).await?; // inside a running actix System
//! let mut events = engine.events();
//! let report = engine
//!     .place_order(OrderIntent {
//!         venue: "paper".into(),
//!         symbol: "BTC".into(),
//!         side: Side::Buy,
//!         amount: Amount::Usd(Decimal::from(100)),
//!         pricing: Pricing::Market,
//!         reduce_only: false,
//!         origin: "my-program".into(),
//!     })
//!     .await?;
//! let again = engine.order(&report.client_id)?;
//! let first = events.recv().await?;
//! engine.close(std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use orrery_actors::agents::runtime::{AgentError, AgentInfo, RunNowAnswer};
use orrery_actors::agents::AgentControl;
use orrery_actors::exchanges::gateway::{
    CancelAll, CancelOrder, CancelReport, ClosePositionPct, CloseReport, GatewayError, KillSwitch,
    KillSwitchReport, OrderIntent, OrderReport, PlaceOrder,
};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::ClientOrderId;
use orrery_actors::models::ModelError;
use orrery_actors::models::{ModelClient, ModelRequest, ModelResponse};
use orrery_actors::store::{trees, StoreError};
use orrery_actors::supervisor::{ActorNode, SlotError};
use tokio::sync::broadcast;

use crate::engine::EngineHandle;
use crate::events::EngineEvent;
use crate::status::StatusReport;

/// Why a call through [`EngineHandle`] did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum EngineCallError {
    /// The gateway answered and refused or failed the request: bad order, risk gate,
    /// trading mode, venue rejection, unknown outcome (see [`GatewayError`]).
    #[error(transparent)]
    Refused(#[from] GatewayError),
    /// The gateway did not answer. `Vacant`: it is restarting and never received the
    /// request (nothing was sent); `Closed` / `Timeout`: it may have been handled, and
    /// an order is then settled by reconciliation (read it back with
    /// [`EngineHandle::order`]).
    #[error("the order gateway did not answer: {0}")]
    GatewayUnavailable(#[source] SlotError),
    /// The model router answered with an error, or did not answer in time.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// No agent of that name is configured.
    #[error("unknown agent `{name}`; configured agents: {known}")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        known: String,
    },
    /// An agent did not take the request (its runner is restarting).
    #[error(transparent)]
    Agent(AgentError),
    /// The data dir could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The status report could not be built (a venue read or the store failed).
    #[error("cannot build the status report: {0}")]
    Status(String),
}

impl From<AgentError> for EngineCallError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown { name, known } => EngineCallError::UnknownAgent { name, known },
            AgentError::Store(e) => EngineCallError::Store(e),
            other => EngineCallError::Agent(other),
        }
    }
}

fn gateway<T>(answer: Result<Result<T, GatewayError>, SlotError>) -> Result<T, EngineCallError> {
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(EngineCallError::Refused(e)),
        Err(e) => Err(EngineCallError::GatewayUnavailable(e)),
    }
}

impl EngineHandle {
    /// Places one order through the risk gate and the ledger (written and flushed before
    /// any byte goes to the venue). The symbol is normalized as the CLI does (`btc` →
    /// `BTC`; Binance pairs such as `BTCUSDT` → `BTC`).
    pub async fn place_order(
        &self,
        mut intent: OrderIntent,
    ) -> Result<OrderReport, EngineCallError> {
        intent.symbol = crate::symbols::normalize(&self.config, &intent.venue, &intent.symbol);
        gateway(self.gateway.send(PlaceOrder { intent }).await)
    }

    /// The order as the ledger has it now (`None` if the ledger has no such client id).
    /// Reads the data dir directly, so it answers while the gateway restarts.
    pub fn order(&self, client_id: &ClientOrderId) -> Result<Option<OrderReport>, EngineCallError> {
        let orders = self.store.tree::<LedgerEntry>(trees::ORDERS)?;
        Ok(orders
            .get(client_id.as_str())?
            .map(|e| OrderReport::from(&e)))
    }

    /// Cancels one order; the answer is the order as the ledger has it afterwards.
    pub async fn cancel(&self, client_id: ClientOrderId) -> Result<OrderReport, EngineCallError> {
        gateway(self.gateway.send(CancelOrder { client_id }).await)
    }

    /// Cancels every open order of `venue` (every venue with `None`), optionally of one
    /// `symbol` only.
    pub async fn cancel_all(
        &self,
        venue: Option<&str>,
        symbol: Option<&str>,
    ) -> Result<CancelReport, EngineCallError> {
        let symbol = match (venue, symbol) {
            (Some(v), Some(s)) => Some(crate::symbols::normalize(&self.config, v, s)),
            (None, Some(s)) => Some(s.to_string()),
            (_, None) => None,
        };
        gateway(
            self.gateway
                .send(CancelAll {
                    venue: venue.map(str::to_string),
                    symbol,
                })
                .await,
        )
    }

    /// Closes `percent` (1-100) of the position in `symbol` on `venue` with reduce-only
    /// orders.
    pub async fn close_position(
        &self,
        venue: &str,
        symbol: &str,
        percent: u32,
    ) -> Result<CloseReport, EngineCallError> {
        gateway(
            self.gateway
                .send(ClosePositionPct {
                    venue: venue.to_string(),
                    symbol: crate::symbols::normalize(&self.config, venue, symbol),
                    percent,
                    origin: "embedded".into(),
                })
                .await,
        )
    }

    /// Engages (halt, cancel every open order, close every position) or releases the
    /// kill switch.
    pub async fn kill_switch(
        &self,
        engaged: bool,
        reason: impl Into<String>,
    ) -> Result<KillSwitchReport, EngineCallError> {
        gateway(
            self.gateway
                .send(KillSwitch {
                    engaged,
                    reason: reason.into(),
                })
                .await,
        )
    }

    /// The `orrery status` report of the running engine: mode, accounts, positions,
    /// orders, decisions, restarts, agents, model usage.
    pub async fn status(&self) -> Result<StatusReport, EngineCallError> {
        crate::status::live(self)
            .await
            .map_err(EngineCallError::Status)
    }

    /// One question through the model router (failover, cache and deadline included).
    pub async fn ask(&self, request: ModelRequest) -> Result<ModelResponse, EngineCallError> {
        Ok(ModelClient::from_slot(self.router.clone())
            .ask(request)
            .await?)
    }

    /// Pauses the agent `name` (a trading agent, or `risk`): from its next scheduled run on
    /// it skips its runs (no model call, no order) until [`EngineHandle::resume_agent`].
    /// The pause is written to the data dir and flushed before this returns, so it holds
    /// across restarts of the agent and of the engine. The same code as `orrery agents
    /// pause` and `POST /api/agents/{name}/pause` (see [`crate::agents`]).
    pub fn pause_agent(&self, name: &str, reason: &str) -> Result<AgentControl, EngineCallError> {
        Ok(self.agents.set_paused_direct(name, true, reason)?)
    }

    /// Resumes a paused agent from its next scheduled run.
    pub fn resume_agent(&self, name: &str, reason: &str) -> Result<AgentControl, EngineCallError> {
        Ok(self.agents.set_paused_direct(name, false, reason)?)
    }

    /// Starts a run of agent `name` at once, unless one is in progress or it is paused;
    /// the answer says which.
    pub async fn run_agent_now(&self, name: &str) -> Result<RunNowAnswer, EngineCallError> {
        Ok(self.agents.run_now(name).await?)
    }

    /// Every agent as `orrery agents` shows it: kind, schedule, state, pause, runs,
    /// failures, last run and error, next run due.
    pub async fn agents(&self) -> Result<Vec<AgentInfo>, EngineCallError> {
        Ok(self.agents.describe_all().await?)
    }

    /// A receiver of every later decision, order transition, fill and mode change (see
    /// [`crate::events`]). Each call makes an independent receiver.
    pub fn events(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// The live supervisor tree: every actor's path, restart type, state, restarts and
    /// mailbox depth and capacity (as `orrery tree` and `GET /api/tree` show it).
    pub fn tree(&self) -> Vec<ActorNode> {
        self.root.tree()
    }
}
