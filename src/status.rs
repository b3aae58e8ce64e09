//! `orrery status`: positions, balances, PnL, open orders, recent decisions and per-actor
//! restarts, read from sled. The same report is built offline (the engine is stopped and
//! this process opens the data dir) and live (the running engine answers over HTTP).

use std::fmt::Write;

use orrery_actors::agents::risk::Baseline;
use orrery_actors::agents::{
    AgentControl, AgentMemory, DecisionJournal, DecisionRecord, MemoryStore,
};
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::account::{connector_name, display_url};
use orrery_actors::exchanges::gateway::{
    GetAccount, GetConnectors, GetPositionPnl, GetPositions, GetSnapshot, OrderReport,
};
use orrery_actors::exchanges::ledger::{FillRecord, OrderLedger};
use orrery_actors::exchanges::pnl::{merge_fills, position_pnl, PositionPnl};
use orrery_actors::exchanges::risk_gate::ModeState;
use orrery_actors::exchanges::siblings::{ConnectorHealth, ConnectorState};
use orrery_actors::exchanges::stream::derivatives::DerivativesHealth;
use orrery_actors::exchanges::stream::FeedHealth;
use orrery_actors::exchanges::{AccountSnapshot, Fill, Position};
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
    /// Each copy-trading agent: its leaders, sizing and mirrored positions.
    #[serde(default)]
    pub copy: Vec<crate::copy::CopyStatus>,
    /// The resource level, its readings and the low-priority work it pauses (running
    /// engine only; see `orrery_actors::shedding`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<orrery_actors::shedding::ResourceStatus>,
    /// Each notification sink: sent, failed, last delivery (see `crate::notify`).
    #[serde(default)]
    pub notifications: Vec<crate::notify::SinkStatus>,
    /// This engine as a cluster member (running engine with `[cluster]` only; the whole
    /// cluster is `orrery cluster status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterLine>,
    /// In a cluster: this node's leases on venue accounts and agents (running engine only;
    /// see `crate::ownership`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<orrery_actors::cluster::LeaseStatus>,
    /// In a cluster: each shared rate-limit scope this node draws from, and whether it
    /// draws from the cluster budget or, Redis unreachable, from its local share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_limits: Vec<SharedLimitLine>,
}

/// One shared rate-limit scope as this node uses it (see `orrery_actors::cluster::limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedLimitLine {
    pub scope: String,
    /// `shared` (drawing from the cluster budget) or `fallback` (Redis unreachable: this
    /// node's local share only).
    pub mode: String,
    pub limit: u64,
    /// Fraction of the limit this node uses alone in fallback.
    pub local_share: f64,
    /// Units drawn from the cluster and not yet spent.
    pub reserved: u64,
}

impl SharedLimitLine {
    pub fn of(state: orrery_actors::cluster::SharedPoolState) -> Self {
        use orrery_actors::cluster::limits::PoolMode;
        Self {
            mode: match state.mode {
                PoolMode::Shared => "shared",
                PoolMode::Fallback => "fallback",
            }
            .into(),
            scope: state.scope,
            limit: state.limit,
            local_share: state.local_share,
            reserved: state.reserved,
        }
    }
}

/// The cluster line of the status: this node's id and whether its Redis answers, as the
/// link's last command found it (no extra round trip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLine {
    pub node_id: String,
    /// The Redis URL without user info.
    pub redis_url: String,
    /// `up`, `down` or `unknown` (no command yet).
    pub redis: String,
    /// Why Redis is down, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ClusterLine {
    pub fn of(link: &orrery_actors::cluster::RedisLink) -> Self {
        use orrery_actors::cluster::RedisHealth;
        let (redis, reason) = match link.health() {
            RedisHealth::Up => ("up", None),
            RedisHealth::Down { reason, .. } => ("down", Some(reason)),
            RedisHealth::Unknown => ("unknown", None),
        };
        Self {
            node_id: link.node_id().to_string(),
            redis_url: link.url().to_string(),
            redis: redis.into(),
            reason,
        }
    }
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
    /// A swarm decision's vote count (`BUY:3 SELL:1 abstain:1(timeout)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votes: Option<String>,
    /// A swarm reviewer's summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
}

impl From<DecisionRecord> for DecisionSummary {
    fn from(d: DecisionRecord) -> Self {
        let votes = d.votes();
        Self {
            votes,
            review: d.review,
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
    /// Account value at the start of the risk window (before its first order).
    pub baseline_usd: Option<Decimal>,
    /// Account value minus `baseline_usd`.
    pub pnl_usd: Option<Decimal>,
    pub error: Option<String>,
    /// Per-position accounting of the recorded fills (average cost, see
    /// `exchanges::pnl`): one row per configured or traded symbol.
    #[serde(default)]
    pub position_pnl: Vec<PositionPnl>,
    /// Sum of the rows' realized PnL (before fees), in USD.
    #[serde(default)]
    pub realized_pnl_usd: Decimal,
    /// Sum of the rows' fees paid in USD (fees kept in another asset are in the rows).
    #[serde(default)]
    pub fees_usd: Decimal,
    /// The account's connectors (one, or a sibling per base endpoint): name, endpoint,
    /// state (`ready`, `probing`, `breaker_open`, `down`; `not_running` while the engine
    /// is stopped) and calls in flight.
    #[serde(default)]
    pub connectors: Vec<ConnectorHealth>,
    /// The venue's market-data stream (`None`: no stream, or the engine is stopped): its
    /// connection and each channel's state (`connected`, `stale`, `disconnected`) and age;
    /// a user-data stream on a connection of its own (Binance) in `user`, with balances.
    #[serde(default)]
    pub feed: Option<FeedHealth>,
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
    /// Set while the agent is paused: why and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<AgentControl>,
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
        let opened = MemoryStore::open(store, &name).map_err(|x| e(&x))?;
        let memory = opened.load().map_err(|x| e(&x))?;
        let paused = Some(opened.control().map_err(|x| e(&x))?).filter(|c| c.paused);
        agents.push(AgentStatus {
            name,
            memory,
            paused,
        });
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

/// Symbols the config trades on `venue`, for rows that exist before the first fill.
pub(crate) fn configured_symbols(config: &Config, venue: &str) -> Vec<String> {
    let mut symbols: Vec<String> = config
        .agents
        .trading
        .iter()
        .filter(|a| a.venue == venue)
        .flat_map(|a| a.symbols.iter().cloned())
        .chain(
            config
                .agents
                .pipeline
                .iter()
                .filter(|p| p.venue == venue)
                .flat_map(|p| p.symbols.iter().cloned()),
        )
        .chain(crate::flow_agents::streamed_symbols(config, venue))
        .collect();
    symbols.sort();
    symbols.dedup();
    symbols
}

/// The candle timeframes the configured trading agents read on `venue` (at least 1m).
pub(crate) fn configured_timeframes(
    config: &Config,
    venue: &str,
) -> Vec<orrery_actors::exchanges::types::Timeframe> {
    use orrery_actors::exchanges::types::Timeframe;
    let mut tfs: Vec<Timeframe> = config
        .agents
        .trading
        .iter()
        .filter(|a| a.venue == venue)
        .map(|a| a.timeframe)
        .chain(
            config
                .agents
                .pipeline
                .iter()
                .filter(|p| p.venue == venue)
                .map(|p| p.timeframe),
        )
        .chain([Timeframe::M1])
        .collect();
    tfs.sort_by_key(|t| t.millis());
    tfs.dedup();
    tfs
}

/// Fills of `venue` recorded in the data dir.
fn recorded_fills(store: &Store, venue: &str) -> Vec<Fill> {
    store
        .tree::<FillRecord>(trees::FILLS)
        .map(|t| {
            t.scan_prefix(&format!("{venue}/"))
                .filter_map(|r| r.ok().map(|(_, f)| f.fill))
                .collect()
        })
        .unwrap_or_default()
}

/// `rows`: the accounting when the caller has it (the running gateway's, which includes
/// fills not reconciled yet); otherwise it is computed from `fills`.
fn venue_status(
    store: &Store,
    name: &str,
    symbols: &[String],
    got: Result<(AccountSnapshot, Vec<Position>), String>,
    fills: Vec<Fill>,
    rows: Option<Vec<PositionPnl>>,
) -> VenueStatus {
    let marks = got.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let rows = rows.unwrap_or_else(|| position_pnl(&fills, &marks, symbols));
    let realized_pnl_usd = rows
        .iter()
        .map(|r| r.realized_pnl_usd)
        .sum::<Decimal>()
        .normalize();
    let fees_usd = rows.iter().map(|r| r.fees_usd).sum::<Decimal>().normalize();
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
            position_pnl: rows,
            realized_pnl_usd,
            fees_usd,
            connectors: Vec::new(),
            feed: None,
        },
        Err(error) => VenueStatus {
            name: name.to_string(),
            account: None,
            positions: vec![],
            baseline_usd: baseline,
            pnl_usd: None,
            error: Some(error),
            position_pnl: rows,
            realized_pnl_usd,
            fees_usd,
            connectors: Vec::new(),
            feed: None,
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
        copy: Vec::new(),
        resources: None,
        notifications: Vec::new(),
        cluster: None,
        shared_limits: Vec::new(),
        leases: Vec::new(),
    }
}

/// The connectors the config asks for, as a stopped engine shows them.
fn planned_connectors(name: &str, venue: &crate::config::VenueConfig) -> Vec<ConnectorHealth> {
    let count = venue.connector_count();
    let endpoints = venue.endpoints();
    (0..count)
        .map(|i| ConnectorHealth {
            connector: connector_name(name, i, count),
            endpoint: endpoints.get(i).map(|u| display_url(u)),
            state: ConnectorState::NotRunning,
            in_flight: 0,
        })
        .collect()
}

/// The report of a stopped engine, read from its data dir.
pub async fn offline(config: &Config, store: &Store) -> Result<StatusReport, String> {
    let from_store = read_store(store, orders_offline(store)?)?;
    let mut venues = Vec::new();
    for (name, venue) in &config.exchanges.venues {
        let recorded = recorded_fills(store, name);
        let since = recorded.iter().map(|f| f.time_ms).max().unwrap_or(0);
        let (got, fresh) = match open_venue(name, venue, store, system_clock()) {
            Ok(v) => {
                let got = match (v.account().await, v.positions().await) {
                    (Ok(a), Ok(p)) => Ok((a, p)),
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                };
                // Fills the engine had not reconciled yet when it stopped; read, not written.
                (got, v.fills_since(since).await.unwrap_or_default())
            }
            Err(e) => (Err(e), vec![]),
        };
        let fills = merge_fills(recorded, fresh);
        let symbols = configured_symbols(config, name);
        let mut status = venue_status(store, name, &symbols, got, fills, None);
        status.connectors = planned_connectors(name, venue);
        venues.push(status);
    }
    let mut report = assemble(false, store, venues, from_store);
    report.copy = crate::copy::status(config, store);
    report.notifications = crate::notify::status(config, store);
    Ok(report)
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
        let symbols = configured_symbols(&engine.config, name);
        let rows = engine
            .gateway
            .send(GetPositionPnl {
                venue: name.clone(),
                symbols: symbols.clone(),
            })
            .await
            .ok()
            .and_then(|r| r.ok());
        let fills = recorded_fills(&engine.store, name);
        let mut status = venue_status(&engine.store, name, &symbols, got, fills, rows);
        status.connectors = engine
            .gateway
            .send(GetConnectors {
                venue: name.clone(),
            })
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        status.feed = engine.streams.health(name);
        venues.push(status);
    }
    let mut report = assemble(true, &engine.store, venues, from_store);
    report.copy = crate::copy::status(&engine.config, &engine.store);
    report.resources = Some(engine.shedding.status());
    report.notifications = crate::notify::live_status(engine).await;
    report.cluster = engine.tree_deps.cluster.as_ref().map(ClusterLine::of);
    if let Some(ownership) = &engine.tree_deps.ownership {
        report.leases = ownership.snapshot();
    }
    if let Some(shared) = &engine.tree_deps.shared_limits {
        report.shared_limits = shared
            .snapshot()
            .into_iter()
            .map(SharedLimitLine::of)
            .collect();
    }
    Ok(report)
}

/// How long ago `created_ms` was, rounded to seconds ("-" when unknown).
fn age(now_ms: i64, created_ms: i64) -> String {
    if created_ms <= 0 {
        return "-".into();
    }
    let secs = u64::try_from((now_ms - created_ms).max(0) / 1000).unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The stream line and one line per channel: state and age of its last message; then a
/// separate user-data stream the same way, with the balances it reported.
fn render_feed(o: &mut String, f: &FeedHealth) {
    render_stream(o, "stream", f);
    if let Some(user) = &f.user {
        render_stream(o, "user stream", user);
        for b in &user.balances {
            let _ = writeln!(
                o,
                "    balance {:<14} free {}  locked {}",
                b.asset,
                b.free.normalize(),
                b.locked.normalize()
            );
        }
    }
}

fn render_stream(o: &mut String, label: &str, f: &FeedHealth) {
    let _ = writeln!(
        o,
        "  {label} {} {}  reconnects {}  malformed frames {}",
        f.state.label(),
        f.url,
        f.reconnects,
        f.malformed
    );
    for c in &f.channels {
        let _ = writeln!(
            o,
            "    {:<22} {:<12} last message {} ago, {} messages",
            c.channel,
            c.state.label(),
            humantime::format_duration(std::time::Duration::from_millis(c.age_ms)),
            c.messages
        );
    }
    if let Some(d) = &f.derivatives {
        render_derivatives(o, d);
    }
    render_followed(o, &f.followed);
}

/// One line per followed wallet: fills seen, and when its last fill happened.
fn render_followed(o: &mut String, followed: &[orrery_actors::exchanges::stream::FollowedWallet]) {
    let now = chrono::Utc::now().timestamp_millis();
    for w in followed {
        let last = w
            .last_fill_ms
            .map(|t| format!("last fill {} ago", age(now, t)))
            .unwrap_or_else(|| "no fill yet".into());
        let _ = writeln!(
            o,
            "    followed {}  {} fills seen, {}",
            w.wallet, w.fills_seen, last
        );
    }
}

/// Marks with funding and their age, liquidation counts, and the pushed account.
fn render_derivatives(o: &mut String, d: &DerivativesHealth) {
    for m in &d.marks {
        let _ = writeln!(
            o,
            "    mark {:<8} {:<14} funding {:<12} next {}  {} ago{}",
            m.symbol,
            m.mark.normalize(),
            m.funding_rate
                .map(|r| format!("{}%", (r * Decimal::ONE_HUNDRED).normalize()))
                .unwrap_or_else(|| "-".into()),
            m.next_funding_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%H:%M UTC").to_string())
                .unwrap_or_else(|| "-".into()),
            humantime::format_duration(std::time::Duration::from_millis(m.age_ms / 1000 * 1000)),
            if m.fresh { "" } else { " (stale: REST)" }
        );
    }
    let l = &d.liquidations;
    if l.kept > 0 || l.buys + l.sells > 0 {
        let _ = writeln!(
            o,
            "    liquidations since start: {} longs (sell), {} shorts (buy); {} kept, newest {}",
            l.sells,
            l.buys,
            l.kept,
            l.newest_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    if let Some(a) = &d.account {
        for b in &a.balances {
            let _ = writeln!(
                o,
                "    pushed balance {:<6} wallet {}  cross {}",
                b.asset,
                b.wallet_balance.normalize(),
                b.cross_wallet_balance.normalize()
            );
        }
        for p in &a.positions {
            let _ = writeln!(
                o,
                "    pushed position {:<8} {:<5} {} @ {}  uPnL {} ({})",
                p.symbol,
                p.position_side,
                p.amount.normalize(),
                p.entry_price.normalize(),
                p.unrealized_pnl.normalize(),
                p.margin_type
            );
        }
    }
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
            format!(" ({}; set by {})", r.mode.reason, r.mode.cause)
        }
    );
    if let Some(c) = &r.cluster {
        let _ = writeln!(
            o,
            "cluster: node {}   redis {} {}{}",
            c.node_id,
            c.redis_url,
            c.redis,
            c.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    if let Some(resources) = &r.resources {
        o.push_str(&crate::resources::render(resources));
    }
    for l in &r.shared_limits {
        let _ = writeln!(
            o,
            "shared limit {}: {}, limit {}, local share {:.0}%, {} reserved",
            l.scope,
            l.mode,
            l.limit,
            l.local_share * 100.0,
            l.reserved
        );
    }
    for l in &r.leases {
        let _ = writeln!(
            o,
            "lease {}: {}{}{}{}",
            l.resource,
            l.state,
            l.follows
                .as_deref()
                .map(|parent| format!(" (follows {parent})"))
                .unwrap_or_default(),
            l.owner
                .as_deref()
                .map(|owner| format!(", owner {owner}"))
                .unwrap_or_default(),
            match (l.token, l.safe_for_ms) {
                (Some(t), Some(ms)) => format!(", token {t}, used for {ms} ms more unless renewed"),
                (Some(t), None) => format!(", token {t}"),
                _ => String::new(),
            }
        );
    }
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
        // One line per connector when the account has siblings (a lone connector is the
        // venue line itself).
        if v.connectors.len() > 1 {
            for c in &v.connectors {
                let _ = writeln!(
                    o,
                    "  connector {:<14} {:<12} {} in flight  {}",
                    c.connector,
                    c.state.label(),
                    c.in_flight,
                    c.endpoint.as_deref().unwrap_or("-")
                );
            }
        }
        if let Some(f) = &v.feed {
            render_feed(&mut o, f);
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
        if !v.position_pnl.is_empty() {
            let _ = writeln!(
                o,
                "  from fills: realized {} USD, fees {} USD",
                v.realized_pnl_usd.round_dp(2),
                v.fees_usd.round_dp(2)
            );
        }
        for r in &v.position_pnl {
            let unconverted: Vec<String> = r
                .unconverted_fees
                .iter()
                .map(|(asset, amount)| format!("{amount} {asset}"))
                .collect();
            let _ = writeln!(
                o,
                "  {:<8} size {:<14} avg {:<12} exposure {:>10} uPnL {:>10} realized {:>10} fees {:>8}{}",
                r.symbol,
                r.size,
                r.avg_entry_price.round_dp(4),
                r.exposure_usd.round_dp(2),
                r.unrealized_pnl_usd.round_dp(2),
                r.realized_pnl_usd.round_dp(2),
                r.fees_usd.round_dp(4),
                if unconverted.is_empty() {
                    String::new()
                } else {
                    format!(" + {} (no USD price)", unconverted.join(", "))
                }
            );
        }
    }
    let _ = writeln!(
        o,
        "\norders: {} in ledger, {} open",
        r.orders_in_ledger,
        r.open_orders.len()
    );
    let now_ms = chrono::Utc::now().timestamp_millis();
    for order in &r.open_orders {
        let _ = writeln!(
            o,
            "  {} {:<6} {:<4} {:<8} size {:<12} filled {:<12} price {:<12} age {:<10} {}",
            order.client_id,
            order.venue,
            order.side,
            order.symbol,
            order.size.normalize(),
            order.filled_size.normalize(),
            order
                .limit_price
                .map(|p| p.normalize().to_string())
                .unwrap_or_else(|| "market".into()),
            age(now_ms, order.created_ms),
            order.status,
        );
    }
    let recent: Vec<&OrderReport> = r
        .recent_orders
        .iter()
        .filter(|o| !r.open_orders.iter().any(|x| x.client_id == o.client_id))
        .take(5)
        .collect();
    if !recent.is_empty() {
        let _ = writeln!(o, "recent orders:");
    }
    for order in recent {
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
                "  {:<16} runs {:<6} failures {:<4}{}{}",
                a.name,
                a.memory.runs,
                a.memory.failures,
                a.paused
                    .as_ref()
                    .map(|c| format!(" PAUSED ({})", c.reason))
                    .unwrap_or_default(),
                a.memory
                    .last_error
                    .as_ref()
                    .map(|e| format!(" last error: {e}"))
                    .unwrap_or_default()
            );
        }
        // `risk` is the risk agent's name (no trading agent may take it).
        if r.agents
            .iter()
            .any(|a| a.name == orrery_actors::agents::risk::RISK_AGENT && a.paused.is_some())
        {
            let _ = writeln!(
                o,
                "  WARNING: {}",
                orrery_actors::agents::runtime::RISK_PAUSED_WARNING
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
    crate::copy::render_status(&mut o, &r.copy);
    crate::notify::render(&r.notifications, &mut o);
    o
}
