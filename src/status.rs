//! `orrery status`: positions, balances, PnL, open orders, recent decisions and per-actor
//! restarts, read from sled. The same report is built offline (the engine is stopped and
//! this process opens the data dir) and live (the running engine answers over HTTP).

use std::fmt::Write;

use orrery_actors::agents::risk::Baseline;
use orrery_actors::agents::{AgentMemory, DecisionJournal, DecisionRecord, MemoryStore};
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::gateway::{GetAccount, GetPositions, GetSnapshot, OrderReport};
use orrery_actors::exchanges::ledger::OrderLedger;
use orrery_actors::exchanges::risk_gate::ModeState;
use orrery_actors::exchanges::{AccountSnapshot, Position};
use orrery_actors::models::router::{usage_records, DeploymentUsage};
use orrery_actors::store::{trees, Store};
use orrery_actors::supervisor::{restart_records, RestartRecord};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::{open_venue, EngineHandle};

const RECENT: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub engine_running: bool,
    pub data_dir: String,
    pub mode: ModeState,
    pub venues: Vec<VenueStatus>,
    pub open_orders: Vec<OrderReport>,
    pub recent_orders: Vec<OrderReport>,
    pub orders_in_ledger: usize,
    /// The last decisions without their prompts and raw answers (the journal in sled keeps
    /// those, for replay); keeps the report small.
    pub decisions: Vec<DecisionSummary>,
    pub restarts: Vec<ActorRestarts>,
    pub agents: Vec<AgentStatus>,
    /// Tokens and cost per model deployment, cumulative (sled `meta`, `usage/<id>`).
    #[serde(default)]
    pub models: Vec<ModelUsage>,
}

/// One journaled decision as the status report shows it: what was decided and done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionSummary {
    pub time_ms: i64,
    /// `time_ms` as RFC 3339 (UTC).
    pub time: String,
    pub agent: String,
    pub venue: String,
    pub symbol: String,
    pub model: String,
    pub deployment: Option<String>,
    pub action: Option<String>,
    pub confidence: Option<f64>,
    #[serde(default)]
    pub confidence_defaulted: bool,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub outcome: String,
    /// Client ids of the orders the decision placed.
    pub orders: Vec<String>,
    pub latency_ms: Option<u64>,
}

impl From<DecisionRecord> for DecisionSummary {
    fn from(d: DecisionRecord) -> Self {
        Self {
            time_ms: d.time_ms,
            time: chrono::DateTime::from_timestamp_millis(d.time_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            agent: d.agent,
            venue: d.venue,
            symbol: d.symbol,
            model: d.model,
            deployment: d.deployment,
            action: d.action,
            confidence: d.confidence,
            confidence_defaulted: d.confidence_defaulted,
            reason: d.reason,
            error: d.error,
            outcome: d.outcome,
            orders: d.orders.iter().map(|o| o.client_id.to_string()).collect(),
            latency_ms: d.latency_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelUsage {
    pub deployment: String,
    #[serde(flatten)]
    pub usage: DeploymentUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VenueStatus {
    pub name: String,
    pub account: Option<AccountSnapshot>,
    pub positions: Vec<Position>,
    pub baseline_usd: Option<Decimal>,
    pub pnl_usd: Option<Decimal>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActorRestarts {
    pub actor: String,
    #[serde(flatten)]
    pub record: RestartRecord,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub name: String,
    #[serde(flatten)]
    pub memory: AgentMemory,
}

struct FromStore {
    mode: ModeState,
    open_orders: Vec<OrderReport>,
    recent_orders: Vec<OrderReport>,
    orders_in_ledger: usize,
    decisions: Vec<DecisionSummary>,
    restarts: Vec<ActorRestarts>,
    agents: Vec<AgentStatus>,
    models: Vec<ModelUsage>,
}

/// Trading mode and orders: from sled when the engine is stopped, from the running
/// gateway (which already holds the ledger's index) when it runs.
struct OrdersView {
    mode: ModeState,
    open_orders: Vec<OrderReport>,
    recent_orders: Vec<OrderReport>,
    orders_in_ledger: usize,
}

fn orders_offline(store: &Store) -> Result<OrdersView, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let ledger = OrderLedger::open(store, system_clock()).map_err(|x| e(&x))?;
    Ok(OrdersView {
        mode: store
            .tree::<ModeState>(trees::RISK)
            .and_then(|t| t.get("mode"))
            .map_err(|x| e(&x))?
            .unwrap_or_default(),
        open_orders: ledger
            .open_entries()
            .iter()
            .map(OrderReport::from)
            .collect(),
        recent_orders: ledger
            .recent(RECENT)
            .map_err(|x| e(&x))?
            .iter()
            .map(OrderReport::from)
            .collect(),
        orders_in_ledger: ledger.len(),
    })
}

async fn orders_live(engine: &EngineHandle) -> Result<OrdersView, String> {
    let snapshot = engine
        .gateway
        .send(GetSnapshot { recent: RECENT })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(OrdersView {
        mode: snapshot.mode,
        open_orders: snapshot.open_orders,
        recent_orders: snapshot.recent_orders,
        orders_in_ledger: snapshot.ledger_len,
    })
}

fn read_store(store: &Store, orders: OrdersView) -> Result<FromStore, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let journal = DecisionJournal::open(store).map_err(|x| e(&x))?;
    let mut agents = Vec::new();
    for name in MemoryStore::agents(store) {
        let memory = MemoryStore::open(store, &name)
            .and_then(|m| m.load())
            .map_err(|x| e(&x))?;
        agents.push(AgentStatus { name, memory });
    }
    Ok(FromStore {
        mode: orders.mode,
        open_orders: orders.open_orders,
        recent_orders: orders.recent_orders,
        orders_in_ledger: orders.orders_in_ledger,
        decisions: journal
            .recent(RECENT)
            .map_err(|x| e(&x))?
            .into_iter()
            .map(DecisionSummary::from)
            .collect(),
        restarts: restart_records(store)
            .map_err(|x| e(&x))?
            .into_iter()
            .map(|(actor, record)| ActorRestarts { actor, record })
            .collect(),
        agents,
        models: usage_records(store)
            .map_err(|x| e(&x))?
            .into_iter()
            .map(|(deployment, usage)| ModelUsage { deployment, usage })
            .collect(),
    })
}

fn venue_status(
    store: &Store,
    name: &str,
    got: Result<(AccountSnapshot, Vec<Position>), String>,
) -> VenueStatus {
    let baseline = store
        .tree::<Baseline>(trees::RISK)
        .and_then(|t| t.get(&format!("baseline/{name}")))
        .ok()
        .flatten()
        .map(|b| b.value);
    match got {
        Ok((account, positions)) => VenueStatus {
            name: name.to_string(),
            pnl_usd: baseline.map(|b| account.account_value - b),
            baseline_usd: baseline,
            account: Some(account),
            positions: positions
                .into_iter()
                .filter(|p| !p.size.is_zero())
                .collect(),
            error: None,
        },
        Err(error) => VenueStatus {
            name: name.to_string(),
            account: None,
            positions: vec![],
            baseline_usd: baseline,
            pnl_usd: None,
            error: Some(error),
        },
    }
}

fn assemble(running: bool, store: &Store, venues: Vec<VenueStatus>, s: FromStore) -> StatusReport {
    StatusReport {
        engine_running: running,
        data_dir: store.dir().display().to_string(),
        mode: s.mode,
        venues,
        open_orders: s.open_orders,
        recent_orders: s.recent_orders,
        orders_in_ledger: s.orders_in_ledger,
        decisions: s.decisions,
        restarts: s.restarts,
        agents: s.agents,
        models: s.models,
    }
}

/// The report of a stopped engine, read from its data dir.
pub async fn offline(config: &Config, store: &Store) -> Result<StatusReport, String> {
    let from_store = read_store(store, orders_offline(store)?)?;
    let mut venues = Vec::new();
    for (name, venue) in &config.exchanges.venues {
        let got = match open_venue(name, venue, store, system_clock()) {
            Ok(v) => match (v.account().await, v.positions().await) {
                (Ok(a), Ok(p)) => Ok((a, p)),
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        venues.push(venue_status(store, name, got));
    }
    Ok(assemble(false, store, venues, from_store))
}

/// The report of the running engine, with balances from its gateway.
pub async fn live(engine: &EngineHandle) -> Result<StatusReport, String> {
    let from_store = read_store(&engine.store, orders_live(engine).await?)?;
    let mut venues = Vec::new();
    for name in engine.config.exchanges.venues.keys() {
        let account = engine
            .gateway
            .send(GetAccount {
                venue: name.clone(),
            })
            .await;
        let positions = engine
            .gateway
            .send(GetPositions {
                venue: name.clone(),
            })
            .await;
        let got = match (account, positions) {
            (Ok(Ok(a)), Ok(Ok(p))) => Ok((a, p)),
            (Ok(Err(e)), _) | (_, Ok(Err(e))) => Err(e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        };
        venues.push(venue_status(&engine.store, name, got));
    }
    Ok(assemble(true, &engine.store, venues, from_store))
}

/// Human-readable rendering.
pub fn render(r: &StatusReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "engine: {}   data dir: {}   trading: {}{}",
        if r.engine_running {
            "running"
        } else {
            "stopped"
        },
        r.data_dir,
        r.mode.mode,
        if r.mode.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.mode.reason)
        }
    );
    for v in &r.venues {
        match (&v.account, &v.error) {
            (Some(a), _) => {
                let _ = writeln!(
                    o,
                    "\nvenue {}: value {} USD, free {} USD, margin {} USD, unrealised {} USD{}",
                    v.name,
                    a.account_value.round_dp(2),
                    a.free_balance.round_dp(2),
                    a.margin_used.round_dp(2),
                    a.unrealized_pnl.round_dp(2),
                    v.pnl_usd
                        .map(|p| format!(", PnL since baseline {} USD", p.round_dp(2)))
                        .unwrap_or_default()
                );
            }
            (None, Some(e)) => {
                let _ = writeln!(o, "\nvenue {}: unavailable: {e}", v.name);
            }
            (None, None) => {}
        }
        for p in &v.positions {
            let _ = writeln!(
                o,
                "  {:<8} {:>14} @ {:<12} mark {:<12} uPnL {:>10} {}x",
                p.symbol,
                p.size,
                p.entry_price.round_dp(4),
                p.mark_price.round_dp(4),
                p.unrealized_pnl.round_dp(2),
                p.leverage
            );
        }
    }
    let _ = writeln!(
        o,
        "\norders: {} in ledger, {} open",
        r.orders_in_ledger,
        r.open_orders.len()
    );
    for order in r.open_orders.iter().chain(r.recent_orders.iter().take(5)) {
        let _ = writeln!(
            o,
            "  {} {:<6} {:<4} {:<8} size {:<12} filled {:<12} {}{}",
            order.client_id,
            order.venue,
            order.side,
            order.symbol,
            order.size,
            order.filled_size,
            order.status,
            order
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "\nlast decisions:");
    for d in r.decisions.iter().take(5) {
        let _ = writeln!(
            o,
            "  {} {:<10} {:<6} {:<8} conf {:<5} -> {}{}",
            chrono::DateTime::from_timestamp_millis(d.time_ms)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            d.agent,
            d.symbol,
            d.action.as_deref().unwrap_or("-"),
            d.confidence
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".into()),
            d.outcome,
            d.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    if !r.agents.is_empty() {
        let _ = writeln!(o, "\nagents:");
        for a in &r.agents {
            let _ = writeln!(
                o,
                "  {:<16} runs {:<6} failures {:<4}{}",
                a.name,
                a.memory.runs,
                a.memory.failures,
                a.memory
                    .last_error
                    .as_ref()
                    .map(|e| format!(" last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    if !r.models.is_empty() {
        let _ = writeln!(o, "\nmodels:");
        for m in &r.models {
            let _ = writeln!(
                o,
                "  {:<16} {} requests, {} prompt + {} completion tokens, cost {} USD",
                m.deployment,
                m.usage.requests,
                m.usage.prompt_tokens,
                m.usage.completion_tokens,
                m.usage.cost_usd
            );
        }
    }
    let _ = writeln!(o, "\nrestarts:");
    if r.restarts.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for a in &r.restarts {
        let _ = writeln!(
            o,
            "  {:<36} {} restart(s); last: {}",
            a.actor,
            a.record.count,
            a.record.last_reason.as_deref().unwrap_or("-")
        );
    }
    o
}
