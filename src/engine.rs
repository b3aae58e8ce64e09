//! Boot and shutdown of the engine: builds the supervisor tree of DESIGN.md from a
//! validated [`Config`] and hands back an [`EngineHandle`].
//!
//! ```text
//! engine (one_for_one)
//! ├── telemetry      process sampler
//! ├── models         pools, then the router (rest_for_one)
//! ├── exchanges      connectors, then the order gateway (rest_for_one)
//! └── agents         risk agent, trading agents (one_for_one)
//! ```
//!
//! Every factory rebuilds its actor from config and sled, so a restart starts clean.
//! Agents start last and stop first; the gateway reconciles before it accepts an order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use orrery_actors::agents::memory::MemoryStore;
use orrery_actors::agents::risk::{BaselineBook, RiskAgent, RiskDeps};
use orrery_actors::agents::trading::{TradingAgent, TradingDeps};
use orrery_actors::agents::DecisionJournal;
use orrery_actors::clock::{system_clock, SharedClock};
use orrery_actors::exchanges::binance::BinanceSpotVenue;
use orrery_actors::exchanges::connector::Connector;
use orrery_actors::exchanges::gateway::{GatewayCore, GatewayFence, OrderGateway};
use orrery_actors::exchanges::hyperliquid::{self, HyperliquidVenue};
use orrery_actors::exchanges::paper::PaperVenue;
use orrery_actors::exchanges::Venue;
use orrery_actors::models::pool::{HealthTable, ModelPool};
use orrery_actors::models::router::{pool_for, ModelRouter, PoolHandle};
use orrery_actors::models::ModelClient;
use orrery_actors::resilience::BreakerRecord;
use orrery_actors::store::{trees, Store, StoreError, Tree};
use orrery_actors::supervisor::{
    start_root, ChildSpec, RestartType, RootExit, RootHandle, Slot, StartError, Strategy,
    SupervisorSpec,
};
use orrery_actors::telemetry::{self, ProcessSampler};

use crate::config::{Config, ConfigError, VenueConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine did not start: {0}")]
    Start(String),
    #[error("cannot serve metrics and the control API on {addr}: {source}; is another orrery running? change telemetry.listen")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What a running engine exposes to its embedder.
#[derive(Clone)]
pub struct EngineHandle {
    pub root: RootHandle,
    pub gateway: Slot<OrderGateway>,
    pub router: Slot<ModelRouter>,
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Option<PrometheusHandle>,
    http: Option<(actix_web::dev::ServerHandle, SocketAddr)>,
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
        let metrics = telemetry::install_global_recorder();
        describe_all();
        init_position_metrics(&config);
        metrics::gauge!(telemetry::names::ENGINE_INFO, "version" => env!("CARGO_PKG_VERSION"))
            .set(1.0);
        metrics::gauge!(telemetry::names::ENGINE_UP).set(1.0);

        let config = Arc::new(config);
        let gateway = Slot::<OrderGateway>::new();
        let router = Slot::<ModelRouter>::new();
        let spec = tree(&config, &store, &clock, &gateway, &router, metrics.clone());
        let root = start_root(spec, Some(store.clone()));
        // Children start asynchronously; the handle is useful once the gateway and the
        // router answer (the gateway itself holds orders until it has reconciled).
        if let Err(reason) = wait_live(&root, &gateway, &router, START_TIMEOUT).await {
            root.shutdown().await;
            return Err(EngineError::Start(reason));
        }

        let mut handle = EngineHandle {
            root,
            gateway,
            router,
            store,
            config: config.clone(),
            metrics,
            http: None,
        };
        if !config.telemetry.disabled {
            let addr = config.telemetry.listen;
            match crate::http::serve(handle.clone(), addr) {
                Ok(server) => handle.http = Some(server),
                Err(source) => {
                    handle.root.shutdown().await;
                    return Err(EngineError::Listen { addr, source });
                }
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

    /// Stops intake (HTTP), stops the tree in reverse order (agents first, so in-flight
    /// decisions finish before the gateway and connectors stop), flushes sled.
    pub async fn shutdown(&self) -> RootExit {
        metrics::gauge!(telemetry::names::ENGINE_UP).set(0.0);
        if let Some((server, _)) = &self.http {
            server.stop(true).await;
        }
        let exit = self.root.shutdown().await;
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final flush of the data dir failed");
        }
        exit
    }

    /// [`EngineHandle::shutdown`], then closes the store: waits up to `within` for every
    /// stopped actor (and every other clone of this handle) to drop its sled handles, and
    /// returns once the data dir is released, so an embedding application can start a new
    /// engine on the same data dir in this process at once.
    pub async fn close(self, within: std::time::Duration) -> Result<RootExit, EngineError> {
        let exit = self.shutdown().await;
        let EngineHandle { store, .. } = self;
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

fn describe_all() {
    telemetry::describe();
    crate::http::describe();
    orrery_actors::supervisor::describe();
    orrery_actors::models::pool::describe();
    orrery_actors::models::router::describe();
    // Queue depth/wait by venue, rate limits, breakers, retries, fallbacks.
    orrery_actors::resilience::describe();
    orrery_actors::exchanges::pnl::describe();
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
            HyperliquidVenue::open(name, hl, hyperliquid::config::process_env(), clock)
                .map_err(|e| e.to_string())
                .and_then(|v| Ok(Arc::new(v.with_breaker_store(breakers(store)?)) as _))
        }
        VenueConfig::Binance(binance) => BinanceSpotVenue::open(name, binance, clock)
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

fn tree(
    config: &Arc<Config>,
    store: &Store,
    clock: &SharedClock,
    gateway: &Slot<OrderGateway>,
    router: &Slot<ModelRouter>,
    metrics: Option<PrometheusHandle>,
) -> SupervisorSpec {
    let sup = &config.supervisor;
    let (intensity, backoff) = (sup.intensity(), sup.backoff());
    let base = move |name: &str, strategy: Strategy| {
        SupervisorSpec::new(name)
            .strategy(strategy)
            .intensity(intensity)
            .backoff(backoff.clone())
    };
    let mailbox = sup.mailbox;
    let shutdown = config.engine.shutdown_timeout;

    let sample_interval = config.telemetry.sample_interval;
    let telemetry_child =
        ChildSpec::in_slot("telemetry", Slot::<ProcessSampler>::new(), move |ctx| {
            Ok(ProcessSampler::new(sample_interval, metrics.clone())
                .counting_messages_in(ctx.messages_counter()))
        })
        .mailbox(mailbox)
        .shutdown(shutdown);

    let models = {
        let (config, router, store) = (config.clone(), router.clone(), store.clone());
        let base = base.clone();
        move || {
            let health = HealthTable::new();
            let mut spec = base("models", Strategy::RestForOne);
            let mut pools: BTreeMap<String, Slot<ModelPool>> = BTreeMap::new();
            for model in config.models.models.values() {
                for d in &model.deployments {
                    let slot = Slot::<ModelPool>::new();
                    pools.insert(d.id.clone(), slot.clone());
                    let (d, health, store) = (d.clone(), health.clone(), store.clone());
                    spec = spec.child(
                        ChildSpec::in_slot(format!("pool-{}", d.id), slot, move |ctx| {
                            // The breaker's state lives in sled: a restarted pool (or
                            // engine) keeps an open breaker open until its time.
                            pool_for(&d, &health, Some(&store))
                                .map(|p| p.counting_messages_in(ctx.messages_counter()))
                                .map_err(StartError::failed)
                        })
                        .mailbox(mailbox)
                        .shutdown(shutdown),
                    );
                }
            }
            let (config, health, store) = (config.clone(), health.clone(), store.clone());
            spec.child(
                ChildSpec::in_slot("router", router.clone(), move |_| {
                    Ok(ModelRouter::from_config(
                        &config.models,
                        &config.model_cache,
                        health.clone(),
                        store.clone(),
                        |d| {
                            let slot = pools.get(&d.id).cloned().unwrap_or_default();
                            Arc::new(slot) as Arc<dyn PoolHandle>
                        },
                    ))
                })
                .mailbox(mailbox)
                .shutdown(shutdown),
            )
        }
    };

    let exchanges = {
        let (config, store, clock, gateway) = (
            config.clone(),
            store.clone(),
            clock.clone(),
            gateway.clone(),
        );
        let base = base.clone();
        // One fence for every gateway this engine builds: a restarted gateway stops the
        // order flows its dead predecessor left running (see `GatewayFence`).
        let fence = GatewayFence::default();
        move || {
            let mut spec = base("exchanges", Strategy::RestForOne);
            let mut connectors = BTreeMap::new();
            for (name, venue) in &config.exchanges.venues {
                let slot = Slot::<Connector>::new();
                connectors.insert(name.clone(), slot.clone());
                let (name, venue, store, clock) =
                    (name.clone(), venue.clone(), store.clone(), clock.clone());
                spec = spec.child(
                    ChildSpec::in_slot(format!("connector-{name}"), slot, move |_| {
                        let v = open_venue(&name, &venue, &store, clock.clone())
                            .map_err(StartError::failed)?;
                        Ok(Connector::with_queue(v, &venue.queue()))
                    })
                    .mailbox(mailbox)
                    .shutdown(shutdown),
                );
            }
            let (config, store, clock, fence) =
                (config.clone(), store.clone(), clock.clone(), fence.clone());
            spec.child(
                ChildSpec::in_slot("gateway", gateway.clone(), move |_| {
                    let core = GatewayCore::open_fenced(
                        &store,
                        connectors.clone(),
                        config.risk.clone(),
                        config.exchanges.gateway.clone(),
                        config.exchanges.feeds(),
                        clock.clone(),
                        &fence,
                    )
                    .map_err(StartError::failed)?;
                    Ok(OrderGateway::new(core))
                })
                .mailbox(mailbox)
                .shutdown(shutdown),
            )
        }
    };

    let agents = {
        let (config, store, clock, gateway, router) = (
            config.clone(),
            store.clone(),
            clock.clone(),
            gateway.clone(),
            router.clone(),
        );
        move || {
            let mut spec = base("agents", Strategy::OneForOne);
            if config.agents.risk.enabled {
                let (config, store, clock, gateway, router) = (
                    config.clone(),
                    store.clone(),
                    clock.clone(),
                    gateway.clone(),
                    router.clone(),
                );
                spec = spec.child(
                    ChildSpec::in_slot("risk", Slot::<RiskAgent>::new(), move |ctx| {
                        let (baselines, breaches) =
                            RiskDeps::trees(&store).map_err(StartError::failed)?;
                        let deps = RiskDeps {
                            gateway: gateway.clone(),
                            models: ModelClient::from_slot(router.clone()),
                            journal: DecisionJournal::open(&store).map_err(StartError::failed)?,
                            clock: clock.clone(),
                            baselines,
                            breaches,
                        };
                        let venues = config.exchanges.venues.keys().cloned().collect();
                        Ok(RiskAgent::new(config.risk.clone(), venues, deps)
                            .counting_messages_in(ctx.messages_counter()))
                    })
                    .mailbox(mailbox)
                    .shutdown(shutdown),
                );
            }
            let risk_window = config.risk.window;
            for agent in &config.agents.trading {
                let (agent, store, clock, gateway, router) = (
                    agent.clone(),
                    store.clone(),
                    clock.clone(),
                    gateway.clone(),
                    router.clone(),
                );
                spec = spec.child(
                    ChildSpec::in_slot(
                        format!("trading-{}", agent.name),
                        Slot::<TradingAgent>::new(),
                        move |ctx| {
                            let deps = TradingDeps {
                                gateway: gateway.clone(),
                                models: ModelClient::from_slot(router.clone()),
                                journal: DecisionJournal::open(&store)
                                    .map_err(StartError::failed)?,
                                memory: MemoryStore::open(&store, &agent.name)
                                    .map_err(StartError::failed)?,
                                clock: clock.clone(),
                                baselines: BaselineBook::new(
                                    store.tree(trees::RISK).map_err(StartError::failed)?,
                                    risk_window,
                                    clock.clone(),
                                ),
                            };
                            Ok(TradingAgent::new(agent.clone(), deps)
                                .counting_messages_in(ctx.messages_counter()))
                        },
                    )
                    .restart(RestartType::Permanent)
                    .mailbox(mailbox)
                    .shutdown(shutdown),
                );
            }
            spec
        }
    };

    SupervisorSpec::new("engine")
        .strategy(Strategy::OneForOne)
        .intensity(sup.intensity())
        .backoff(sup.backoff())
        .child(telemetry_child)
        .child(ChildSpec::supervisor("models", models))
        .child(ChildSpec::supervisor("exchanges", exchanges))
        .child(ChildSpec::supervisor("agents", agents))
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
