//! Boot and shutdown of the engine: builds the supervisor tree of DESIGN.md from a
//! validated [`Config`] and hands back an [`EngineHandle`].
//!
//! The tree is data ([`crate::tree::plan`]); every supervisor is `one_for_one`:
//!
//! ```text
//! engine (one_for_one)
//! ├── telemetry      process sampler, resource monitor (shedding)
//! ├── models         pools, then the router (one_for_one)
//! ├── exchanges      connectors, then the order gateway (one_for_one)
//! ├── signals        the signal bus (before the agents that publish on it)
//! ├── notifier       notification sinks (only with `[[notifications.sinks]]`)
//! └── agents         risk agent, trading agents (one_for_one)
//! ```
//!
//! Every factory rebuilds its actor from config and sled, so a restart starts clean.
//! Agents start last and stop first; the gateway reconciles before it accepts an order.
//!
//! Owns: starting and stopping one engine on one data dir, and the [`EngineHandle`] an
//! embedding program drives it with (its typed calls are in [`crate::embed`], its event
//! stream in [`crate::events`]). Never: process exit or signal handling (the `orrery`
//! binary does that).
//!
//! # Metrics in an embedding program
//!
//! The `metrics` recorder is process-global. The first engine of a process installs it
//! (`metrics-exporter-prometheus`), and every later engine in the same process shares it:
//! each one's `/metrics` answers 200 with the one registry, where series of engines with
//! the same names and labels add up. A program that installed its own global recorder
//! before the first engine keeps it; the engines' metrics then go there and their
//! `/metrics` answers 503 `metrics_elsewhere`.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Actor;
use metrics_exporter_prometheus::PrometheusHandle;
use orrery_actors::agents::journal::{DecisionJournal, JournalRetention, StopRetention};
use orrery_actors::clock::{system_clock, SharedClock};
use orrery_actors::exchanges::account::Endpoint;
use orrery_actors::exchanges::binance::BinanceSpotVenue;
use orrery_actors::exchanges::binance_futures::BinanceFuturesVenue;
use orrery_actors::exchanges::gateway::{GatewayFence, OrderGateway};
use orrery_actors::exchanges::hyperliquid::HyperliquidVenue;
use orrery_actors::exchanges::paper::PaperVenue;
use orrery_actors::exchanges::Venue;
use orrery_actors::models::router::ModelRouter;
use orrery_actors::resilience::BreakerRecord;
use orrery_actors::signals::SignalBus;
use orrery_actors::store::{trees, Store, StoreError, Tree};
use orrery_actors::supervisor::{start_root, RootExit, RootHandle, Slot};
use orrery_actors::telemetry;

use crate::config::{Config, ConfigError, VenueConfig};

/// Why the engine did not start (or did not release its data dir).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is not valid; nothing was started.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data dir could not be opened (or, in [`EngineHandle::close`], released).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The supervisor tree did not come up; the reason names the failing child.
    #[error("the engine did not start: {0}")]
    Start(String),
    /// The `[cluster]` link could not be opened (a URL the client refuses).
    #[error(transparent)]
    Cluster(#[from] orrery_actors::cluster::ClusterError),
    /// The metrics / control API address could not be bound.
    #[error("cannot serve metrics and the control API on {addr}: {source}; is another orrery running? change telemetry.listen")]
    Listen {
        /// The configured `telemetry.listen`.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// What a running engine exposes to its embedder. Cloneable; every clone drives the same
/// engine. Prefer the typed calls ([`EngineHandle::place_order`], [`EngineHandle::status`],
/// [`EngineHandle::events`], ... in [`crate::embed`]) over the raw slots, which need the
/// actors' messages.
#[derive(Clone)]
pub struct EngineHandle {
    /// The supervisor tree's root: its live view ([`RootHandle::tree`]) and its end.
    pub root: RootHandle,
    /// Low level: the order gateway's slot (its messages are in
    /// `orrery_actors::exchanges::gateway`).
    pub gateway: Slot<OrderGateway>,
    /// Low level: the model router's slot.
    pub router: Slot<ModelRouter>,
    /// Low level: the signal bus's slot (its messages are in `orrery_actors::signals`).
    pub signals: Slot<SignalBus>,
    /// The engine's data dir.
    pub store: Store,
    /// The validated configuration the engine runs.
    pub config: Arc<Config>,
    /// The process-global metrics registry (see the module docs); `None` when another
    /// recorder was installed first.
    pub metrics: Option<PrometheusHandle>,
    /// Every agent by name (pause, resume, run-now, describe; see [`crate::agents`]).
    pub agents: orrery_actors::agents::runtime::AgentDirectory,
    /// Every venue's market-data stream state (feed health for status; quotes for the
    /// gateway).
    pub streams: orrery_actors::exchanges::stream::StreamBook,
    http: Option<(actix_web::dev::ServerHandle, SocketAddr)>,
    pub(crate) events: crate::events::EventHub,
    /// The notifier's slot (vacant when no sinks are configured).
    pub(crate) notifier: Slot<crate::notify::Notifier>,
    /// The journal's retention sweeper (see `orrery_actors::agents::journal`).
    retention: Option<actix::Addr<JournalRetention>>,
    /// What the tree's factories use, kept to start agents while the engine runs
    /// (a promoted strategy, `crate::strategy_agents::start_runtime`).
    pub(crate) tree_deps: crate::tree::Deps,
    /// The resource level and the gate low-priority work consults (see
    /// `orrery_actors::shedding`); set by the resource monitor in the telemetry node.
    pub shedding: orrery_actors::shedding::ShedGate,
    /// The dashboard's equity sampler (see `crate::dashboard::equity`).
    equity: Option<actix::Addr<crate::dashboard::EquitySampler>>,
    /// This engine as a cluster member (node record, shared breakers); `[cluster]` only.
    pub(crate) cluster: Option<Arc<crate::cluster_member::ClusterMember>>,
}

/// The engine's entry point.
pub struct Engine;

impl Engine {
    /// Starts the engine. Call inside a running actix `System`.
    pub async fn start(config: Config) -> Result<EngineHandle, EngineError> {
        Self::start_with_clock(config, system_clock()).await
    }

    /// As [`Engine::start`], with an injected wall clock.
    pub async fn start_with_clock(
        mut config: Config,
        clock: SharedClock,
    ) -> Result<EngineHandle, EngineError> {
        crate::symbols::normalize_agents(&mut config);
        config.validate()?;
        let store = Store::open(&config.engine.data_dir)?;
        crate::strategies::add_promoted_agents(&mut config, &store, &clock);
        let metrics = telemetry::install_global_recorder();
        describe_all();
        init_position_metrics(&config);
        metrics::gauge!(telemetry::names::ENGINE_INFO, "version" => env!("CARGO_PKG_VERSION"))
            .set(1.0);
        metrics::gauge!(telemetry::names::ENGINE_UP).set(1.0);

        let config = Arc::new(config);
        let gateway = Slot::<OrderGateway>::new();
        let router = Slot::<ModelRouter>::new();
        let signals = Slot::<SignalBus>::new();
        let notifier = Slot::<crate::notify::Notifier>::new();
        // Watching starts before any actor writes, so the stream misses nothing.
        let events = crate::events::EventHub::start(&store)?;
        let agents = crate::agents::directory(&config, &store, clock.clone(), true)?;
        let retention_clock = clock.clone();
        let streams = orrery_actors::exchanges::stream::StreamBook::new();
        let shedding = orrery_actors::shedding::ShedGate::new();
        // Lazy: a Redis that is down at start is joined once it answers.
        let cluster = match &config.cluster {
            Some(c) => {
                let link = orrery_actors::cluster::RedisLink::open(
                    c,
                    c.password(&orrery_actors::env::process_env),
                )?;
                tracing::info!(node = %link.node_id(), url = %link.url(), prefix = %link.prefix(), "cluster member");
                Some(link)
            }
            None => None,
        };
        // Before the tree: every breaker the connectors and pools persist joins the board.
        let member = cluster.as_ref().map(|link| {
            Arc::new(crate::cluster_member::ClusterMember::start(
                link.clone(),
                &store,
            ))
        });
        // Leases on every venue account, acquired from now on; each agent's runner adds
        // its own when it starts (one that trades follows its venue's lease; the risk
        // agent takes none: it watches every account on every node, see README). The
        // gateway and the agents wait for them (see `crate::ownership`).
        let ownership = match (&config.cluster, &cluster) {
            (Some(c), Some(link)) => Some(crate::ownership::ClusterOwnership::start(
                link,
                c,
                config.exchanges.venues.keys().cloned(),
            )),
            _ => None,
        };
        // One set of shared rate-limit budgets for the process, over the cluster's link,
        // and one book of account limits drawing from them.
        let shared_limits = match (&cluster, &config.cluster) {
            (Some(link), Some(c)) => Some(orrery_actors::cluster::SharedLimits::new(
                link.clone(),
                c.expected_nodes,
            )),
            _ => None,
        };
        let accounts = crate::accounts::AccountBook::new(shared_limits.clone());
        let deps = crate::tree::Deps {
            config: config.clone(),
            store: store.clone(),
            clock,
            gateway: gateway.clone(),
            router: router.clone(),
            signals: signals.clone(),
            metrics: metrics.clone(),
            fence: GatewayFence::default(),
            agents: agents.clone(),
            streams: streams.clone(),
            agents_sup: Slot::new(),
            runtime_strategies: Arc::default(),
            shedding: shedding.clone(),
            events: events.clone(),
            notifier: notifier.clone(),
            cluster_reads: cluster.as_ref().map(|l| l.side_link()).transpose()?,
            cluster,
            ownership,
            shared_limits,
            accounts,
        };
        let spec = crate::tree::build(&crate::tree::plan(&config), &deps);
        let root = start_root(spec, Some(store.clone()));
        // Children start asynchronously; the handle is useful once the gateway and the
        // router answer (the gateway itself holds orders until it has reconciled).
        if let Err(reason) = wait_live(&root, &gateway, &router, START_TIMEOUT).await {
            root.shutdown().await;
            leave_cluster(member.as_deref(), &deps).await;
            events.stop();
            return Err(EngineError::Start(reason));
        }

        let mut handle = EngineHandle {
            root,
            gateway,
            router,
            signals,
            store,
            config: config.clone(),
            metrics,
            agents,
            streams,
            http: None,
            events,
            notifier,
            retention: None,
            tree_deps: deps,
            shedding,
            equity: None,
            cluster: member,
        };
        if !config.telemetry.disabled {
            let addr = config.telemetry.listen;
            match crate::http::serve(handle.clone(), addr) {
                Ok(server) => {
                    tracing::info!(url = %format!("http://{}/", server.1), "dashboard served");
                    handle.http = Some(server)
                }
                Err(source) => {
                    handle.root.shutdown().await;
                    leave_cluster(handle.cluster.as_deref(), &handle.tree_deps).await;
                    handle.events.stop();
                    return Err(EngineError::Listen { addr, source });
                }
            }
        }
        if let (Some(member), Some(c)) = (&handle.cluster, &config.cluster) {
            member.join(c, handle.listen_addr().map(|a| a.to_string()));
        }
        // Retention of the decision journal: a sweep now and every `sweep_interval`.
        match DecisionJournal::open(&handle.store) {
            Ok(journal) => {
                handle.retention = Some(
                    JournalRetention::new(journal, config.journal.clone(), retention_clock).start(),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open the decision journal; its retention does not run")
            }
        }
        // The dashboard's equity history: a sample every `equity_sample_interval`.
        match crate::dashboard::EquitySampler::new(handle.clone()) {
            Ok(sampler) => handle.equity = Some(sampler.start()),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the equity history; the dashboard's equity chart stays empty")
            }
        }
        tracing::info!(
            data_dir = %config.engine.data_dir.display(),
            listen = ?handle.listen_addr(),
            venues = ?config.exchanges.venues.keys().collect::<Vec<_>>(),
            agents = config.agents.trading.len(),
            "engine started"
        );
        log_restored(&handle).await;
        Ok(handle)
    }
}

impl EngineHandle {
    /// Where metrics and the control API are served, if they are.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(_, a)| *a)
    }

    /// Stops intake (HTTP, finishing requests in flight), stops the tree in reverse order
    /// (agents first, so in-flight decisions finish before the gateway and connectors
    /// stop), flushes sled, then ends the event stream (receivers get what was written
    /// before, then `Closed`).
    pub async fn shutdown(&self) -> RootExit {
        metrics::gauge!(telemetry::names::ENGINE_UP).set(0.0);
        if let Some((server, _)) = &self.http {
            server.stop(true).await;
        }
        let exit = self.root.shutdown().await;
        leave_cluster(self.cluster.as_deref(), &self.tree_deps).await;
        if let Some(retention) = &self.retention {
            // Stopped so it drops its store handles before the store closes.
            let _ = retention.send(StopRetention).await;
        }
        if let Some(sampler) = &self.equity {
            // Stopped so it drops its engine handle before the store closes.
            let _ = sampler.send(crate::dashboard::StopEquitySampler).await;
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final flush of the data dir failed");
        }
        self.events.stop();
        exit
    }

    /// [`EngineHandle::shutdown`], then closes the store: waits up to `within` for every
    /// stopped actor (and every other clone of this handle) to drop its sled handles, and
    /// returns once the data dir is released, so an embedding application can start a new
    /// engine on the same data dir in this process at once.
    pub async fn close(self, within: std::time::Duration) -> Result<RootExit, EngineError> {
        let exit = self.shutdown().await;
        // The agent directory holds each agent's memory trees, and the tree's factories'
        // deps the store: released before the wait.
        let EngineHandle {
            store,
            agents,
            tree_deps,
            ..
        } = self;
        drop((agents, tree_deps));
        store.close(within).await?;
        Ok(exit)
    }

    /// Resolves when the tree ends on its own (escalation to the root).
    pub async fn terminated(&self) -> RootExit {
        self.root.terminated().await
    }
}

/// How long the tree may take to bring up the gateway and the router.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn wait_live(
    root: &RootHandle,
    gateway: &Slot<OrderGateway>,
    router: &Slot<ModelRouter>,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(exit) = root.exit() {
            return Err(match exit {
                RootExit::Normal => "the supervisor tree stopped during start".to_string(),
                // The log has the whole chain of supervisors; the operator's message names
                // the child that failed first and why.
                RootExit::Escalated(why) => match why.rsplit_once("last failure of ") {
                    Some((_, cause)) => {
                        format!("{cause} (the supervisor tree gave up; see the log)")
                    }
                    None => why,
                },
            });
        }
        if gateway.is_live() && router.is_live() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "gateway live: {}, router live: {} after {timeout:?}; see the log for the failing child",
                gateway.is_live(),
                router.is_live()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Every configured venue/symbol's `orrery_position_*` series at 0 from start, so they
/// exist before the first fill (the risk agent's checks update them).
fn init_position_metrics(config: &Config) {
    for venue in config.exchanges.venues.keys() {
        let mut symbols: Vec<String> = config
            .agents
            .trading
            .iter()
            .filter(|a| &a.venue == venue)
            .flat_map(|a| a.symbols.iter().cloned())
            .collect();
        symbols.sort();
        symbols.dedup();
        orrery_actors::exchanges::pnl::init_metrics(venue, &symbols);
    }
}

/// After the tree stopped (nothing sends any more): the node record goes, reserved
/// shared-limit units go back to the cluster's budget, and the leases are released so
/// another node takes over at once. Nothing without `[cluster]`.
async fn leave_cluster(
    member: Option<&crate::cluster_member::ClusterMember>,
    deps: &crate::tree::Deps,
) {
    if let Some(member) = member {
        member.leave().await;
    }
    if let Some(shared) = &deps.shared_limits {
        shared.release().await;
    }
    if let Some(ownership) = &deps.ownership {
        ownership.release().await;
    }
    if let Some(link) = &deps.cluster {
        let (ok, failed) = link.counts();
        tracing::info!(node = %link.node_id(), url = %link.url(), redis_commands_ok = ok, redis_commands_failed = failed, "left the cluster");
    }
}

fn describe_all() {
    telemetry::describe();
    crate::http::describe();
    orrery_actors::supervisor::describe();
    orrery_actors::models::pool::describe();
    orrery_actors::models::router::describe();
    // Queue depth/wait by venue, rate limits, breakers, retries, fallbacks.
    orrery_actors::resilience::describe();
    orrery_actors::exchanges::pnl::describe();
    orrery_actors::agents::journal::describe();
    orrery_actors::agents::pipeline::describe();
    orrery_actors::agents::copy::describe();
    orrery_actors::agents::rbi::describe();
    orrery_actors::agents::sentiment::describe();
    orrery_actors::agents::open_interest::describe();
    orrery_actors::agents::liquidations::describe();
    orrery_actors::agents::funding::describe();
    orrery_actors::agents::strategy::describe();
    orrery_actors::exchanges::stream::describe();
    orrery_actors::shedding::describe();
    crate::notify::describe();
    orrery_actors::cluster::describe();
    orrery_actors::exchanges::gateway::ownership::describe();
}

/// Venues as trait objects, opened from config and sled; used by the connector factories
/// and by offline status.
pub fn open_venue(
    name: &str,
    config: &VenueConfig,
    store: &Store,
    clock: SharedClock,
) -> Result<Arc<dyn Venue>, String> {
    match config {
        VenueConfig::Paper(paper) => PaperVenue::open(name, paper, store, clock)
            .map(|v| Arc::new(v) as Arc<dyn Venue>)
            .map_err(|e| e.to_string()),
        VenueConfig::Hyperliquid(hl) => {
            HyperliquidVenue::open(name, hl, &orrery_actors::env::process_env, clock)
                .map_err(|e| e.to_string())
                .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _))
        }
        VenueConfig::Binance(binance) => BinanceSpotVenue::open(name, binance, clock)
            .map_err(|e| e.to_string())
            .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _)),
        VenueConfig::BinanceFutures(futures) => BinanceFuturesVenue::open(name, futures, clock)
            .map_err(|e| e.to_string())
            .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _)),
    }
}

/// The venue object of one connector: served through `endpoint` (its URL, its own
/// breaker, the account's shared limits and pause gate) when the account has a network
/// endpoint, else as [`open_venue`] builds it (paper).
pub fn open_connector_venue(
    name: &str,
    config: &VenueConfig,
    store: &Store,
    clock: SharedClock,
    endpoint: Option<&Endpoint>,
) -> Result<Arc<dyn Venue>, String> {
    let Some(endpoint) = endpoint else {
        return open_venue(name, config, store, clock);
    };
    match config {
        VenueConfig::Paper(_) => open_venue(name, config, store, clock),
        VenueConfig::BinanceFutures(futures) => BinanceFuturesVenue::open_at(
            name,
            futures,
            clock,
            &|k| std::env::var(k).ok(),
            Some(endpoint),
        )
        .map_err(|e| e.to_string())
        .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _)),
        VenueConfig::Hyperliquid(hl) => HyperliquidVenue::open_at(
            name,
            hl,
            &orrery_actors::env::process_env,
            clock,
            Some(endpoint),
        )
        .map_err(|e| e.to_string())
        .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _)),
        VenueConfig::Binance(binance) => BinanceSpotVenue::open_at(
            name,
            binance,
            clock,
            &|k| std::env::var(k).ok(),
            Some(endpoint),
        )
        .map_err(|e| e.to_string())
        .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _)),
    }
}

/// The store's circuit breaker records of venue connectors.
fn breakers(store: &Store) -> Result<Tree<BreakerRecord>, String> {
    store
        .tree(trees::VENUE_BREAKERS)
        .map_err(|e| format!("cannot open the breakers tree: {e}"))
}

/// One `info` line per venue at start: what the data dir brought back (the ledger's size
/// over all venues, this venue's open orders, its positions as the venue reports them after the first reconciliation, and the
/// risk baseline), so an operator sees at once that a restart continued where it stopped.
async fn log_restored(handle: &EngineHandle) {
    use orrery_actors::agents::risk::Baseline;
    use orrery_actors::exchanges::gateway::{GetPositions, GetSnapshot};
    use orrery_actors::store::trees;

    let snapshot = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        handle.gateway.send(GetSnapshot { recent: 0 }),
    )
    .await
    {
        Ok(Ok(Ok(s))) => Some(s),
        _ => None,
    };
    let baselines = handle.store.tree::<Baseline>(trees::RISK).ok();
    for venue in handle.config.exchanges.venues.keys() {
        let (orders, open) = match &snapshot {
            Some(s) => (
                s.ledger_len,
                s.open_orders.iter().filter(|o| &o.venue == venue).count(),
            ),
            None => (0, 0),
        };
        let positions = match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            handle.gateway.send(GetPositions {
                venue: venue.clone(),
            }),
        )
        .await
        {
            Ok(Ok(Ok(p))) => p
                .iter()
                .filter(|p| !p.size.is_zero())
                .map(|p| format!("{} {}", p.symbol, p.size.normalize()))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "unavailable".to_string(),
        };
        let baseline = baselines
            .as_ref()
            .and_then(|t| t.get(&format!("baseline/{venue}")).ok().flatten())
            .map(|b| b.value.round_dp(2).to_string())
            .unwrap_or_else(|| "none".to_string());
        tracing::info!(
            venue = %venue,
            ledger_orders_all_venues = orders,
            open_orders = open,
            positions = %if positions.is_empty() { "none".to_string() } else { positions },
            baseline_usd = %baseline,
            "restored"
        );
    }
}
