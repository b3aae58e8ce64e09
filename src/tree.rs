//! The supervisor tree as data: [`plan`] derives from the config one list of children per
//! supervisor ([`SupervisorPlan`]), and [`build`] turns that list into the specs the
//! supervisors run, with one factory per [`Role`].
//!
//! ```text
//! engine (one_for_one)
//! ├── telemetry                process sampler and resource monitor (`orrery_actors::shedding`)
//! ├── models (one_for_one)     pool-<deployment> × N, then router
//! ├── exchanges (one_for_one)  connector-<venue> (or connector-<venue>#<n>, a sibling per
//! │                            base endpoint) × M, feed-<venue> (market-data websocket of
//! │                            each Hyperliquid and Binance futures venue with
//! │                            `streams`; feed-<venue> and feed-<venue>-user for each
//! │                            Binance venue with `streams`), then gateway, then
//! │                            feed-<venue>-user for each Binance futures venue with
//! │                            `streams` (its user data stream, pushing to the gateway)
//! ├── signals                  the signal bus (started before the agents, stopped after)
//! ├── notifier                 notification sinks (only with `[[notifications.sinks]]`)
//! └── agents (one_for_one)     risk (if enabled), trading-<agent> × K, pipeline-<agent> × P,
//!                              sentiment-<agent> × S, open-interest-<agent> × O,
//!                              liquidations-<agent> × L, copy-<agent> × C,
//!                              funding-<agent> × F
//! ```
//!
//! Owns: which actors the config asks for, their ids (paths such as
//! `engine/models/pool-local` are metric labels and keys of the persisted restart counts,
//! so they never change for the same config), their restart type and mailbox, the
//! strategy of each supervisor, and the tree an operator sees while the engine is stopped
//! ([`planned_nodes`]). Never: runs anything itself, or lets one actor hold another's
//! address: siblings reach each other only through [`Slot`]s created here.
//!
//! # Why every supervisor is `one_for_one`
//!
//! A restart rebuilds one actor; its siblings keep running because none of them holds its
//! address. The router reaches its pools through their slots (and the same-thread lane in
//! the shared [`HealthTable`], which holds only a weak reference to the pool that opened
//! it), so a pool that panics is restarted alone; the router meanwhile sends its requests
//! to the healthy siblings. The gateway reaches each connector through its slot, and a
//! vacant slot is a typed "never sent" (`SlotError::Vacant`), so a connector that panics is
//! restarted alone while the gateway keeps taking orders for the other venues and keeps its
//! reconciled state. The tree used to be `rest_for_one` with the router and the gateway
//! last, which restarted the router with every pool and made the gateway reconcile every
//! venue again (refusing orders meanwhile) whenever one connector failed.
//!
//! Start order still matters: the router starts after its pools and the gateway after its
//! connectors, so their first requests find the slots filled.
//!
//! # Sibling connectors
//!
//! A venue account with several base endpoints (`base_urls`) gets one connector per
//! endpoint, `connector-<venue>#<n>`; the gateway receives them as one
//! [`ConnectorSet`] per venue and routes among them. The account's rate limits and pause
//! gate are the process's ([`crate::accounts`]), handed to every connector factory of the
//! account, so siblings (and the account's readers) share them and a restarted connector
//! keeps drawing from the same budget.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use orrery_actors::agents::funding::{FundingAgent, FundingAgentState, FundingDeps};
use orrery_actors::agents::risk::{BaselineBook, RiskAgent, RiskDeps, RISK_AGENT};
use orrery_actors::agents::runtime::{AgentDirectory, AgentRunner};
use orrery_actors::agents::sentiment::{SentimentAgent, SentimentDeps, SentimentState};
use orrery_actors::agents::strategy::StrategyAgentConfig;
use orrery_actors::agents::trading::{TradingAgent, TradingDeps};
use orrery_actors::agents::DecisionJournal;
use orrery_actors::clock::SharedClock;
use orrery_actors::exchanges::account::{connector_name, display_url, Endpoint};
use orrery_actors::exchanges::connector::Connector;
use orrery_actors::exchanges::gateway::{GatewayCore, GatewayFence, OrderGateway};
use orrery_actors::exchanges::siblings::{ConnectorProbe, ConnectorSet, ConnectorSlot};
use orrery_actors::exchanges::stream::hyperliquid::HyperliquidProtocol;
use orrery_actors::exchanges::stream::hyperliquid_user::UserStreams;
use orrery_actors::exchanges::stream::{StreamBook, StreamFeed, StreamSettings};
use orrery_actors::models::pool::{HealthTable, ModelPool};
use orrery_actors::models::router::{pool_shared, ModelRouter, PoolHandle};
use orrery_actors::models::ModelClient;
use orrery_actors::shedding::monitor::{source_from_env, ResourceMonitor};
use orrery_actors::signals::SignalBus;
use orrery_actors::store::{trees, Store};
use orrery_actors::supervisor::{
    ActorNode, ChildSpec, NodeKind, NodeState, RestartRecord, RestartType, Slot, StartError,
    Strategy, Supervisor, SupervisorSpec, ROOT_MAILBOX,
};
use serde::Serialize;

use crate::config::{Config, VenueConfig};

/// One agent kind's workers in [`plan`]: id prefix, names in config order, role.
type AgentRows = (&'static str, Vec<String>, fn(String) -> Role);

/// What a worker of the tree does; each role has one factory in [`build`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Samples the process (RSS, CPU) into metrics and judges the resource level
    /// (`orrery_actors::shedding::monitor::ResourceMonitor`).
    ProcessSampler,
    /// The connection pool of one model deployment.
    ModelPool {
        /// The deployment's id (`[[models.<name>.deployments]] id`).
        deployment: String,
    },
    /// Picks a pool per model request.
    ModelRouter,
    /// A connector of one venue account: the only one, or the sibling serving one of
    /// its base endpoints (`base_urls`).
    Connector {
        /// The venue's name (`[exchanges.venues.<name>]`).
        venue: String,
        /// Which of the account's endpoints it serves (0-based, in config order).
        endpoint: usize,
    },
    /// The market-data websocket of one venue (`streams = true`).
    StreamFeed {
        /// The venue's name.
        venue: String,
    },
    /// The user data stream of a Binance futures venue (`streams = true`): its order
    /// updates and fills go to the gateway.
    FuturesUserFeed {
        /// The venue's name.
        venue: String,
    },
    /// The market-data websocket of a Binance spot venue (`streams = true`).
    BinanceMarketFeed {
        /// The venue's name.
        venue: String,
    },
    /// The user-data websocket of a Binance spot venue (listen key; order updates and
    /// fills to the gateway, balances).
    BinanceUserFeed {
        /// The venue's name.
        venue: String,
    },
    /// Risk gate, ledger and reconciliation.
    OrderGateway,
    /// The signal bus (`[signals]`).
    SignalBus,
    /// The risk agent (`[agents.risk]`).
    RiskAgent,
    /// One trading agent.
    TradingAgent {
        /// The agent's name (`[[agents.trading]] name`).
        agent: String,
    },
    /// One analysis pipeline.
    PipelineAgent {
        /// The agent's name (`[[agents.pipeline]] name`).
        agent: String,
    },
    /// One sentiment and news agent.
    SentimentAgent {
        /// The agent's name (`[[agents.sentiment]] name`).
        agent: String,
    },
    /// One open-interest and whale agent.
    OpenInterestAgent {
        /// The agent's name (`[[agents.open_interest]] name`).
        agent: String,
    },
    /// One liquidation agent.
    LiquidationAgent {
        /// The agent's name (`[[agents.liquidations]] name`).
        agent: String,
    },
    /// One copy-trading agent.
    CopyAgent {
        /// The agent's name (`[[agents.copy]] name`).
        agent: String,
    },
    /// One funding agent.
    FundingAgent {
        /// The agent's name (`[[agents.funding]] name`).
        agent: String,
    },
    /// One strategy agent.
    StrategyAgent {
        /// The agent's name (`[[agents.strategy]] name`).
        agent: String,
    },
    /// One research -> backtest -> implement agent.
    RbiAgent {
        /// The agent's name (`[[agents.rbi]] name`).
        agent: String,
    },
    /// Sends notifications to the configured sinks (`[notifications]`).
    Notifier,
}

/// One worker: its id among its siblings, what it does, and how it is supervised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerPlan {
    /// Last segment of its path.
    pub id: String,
    /// What it does.
    pub role: Role,
    /// Whether it is restarted after it exits.
    pub restart: RestartType,
    /// Its mailbox bound.
    pub mailbox: usize,
}

/// A child of a supervisor: a nested supervisor or a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChildPlan {
    /// A nested supervisor.
    Supervisor(SupervisorPlan),
    /// An actor doing work.
    Worker(WorkerPlan),
}

/// One supervisor and its children, in start order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupervisorPlan {
    /// Its path segment (`engine` for the root).
    pub id: String,
    /// Which siblings restart when one child fails.
    pub strategy: Strategy,
    /// Its children, started in this order and stopped in reverse.
    pub children: Vec<ChildPlan>,
}

impl SupervisorPlan {
    fn new(id: &str, children: Vec<ChildPlan>) -> Self {
        Self {
            id: id.to_string(),
            strategy: Strategy::OneForOne,
            children,
        }
    }
}

/// The tree `config` asks for.
pub fn plan(config: &Config) -> SupervisorPlan {
    let mailbox = config.supervisor.mailbox;
    let worker = |id: String, role: Role| {
        ChildPlan::Worker(WorkerPlan {
            id,
            role,
            restart: RestartType::Permanent,
            mailbox,
        })
    };

    let mut models: Vec<ChildPlan> = config
        .models
        .models
        .values()
        .flat_map(|m| m.deployments.iter())
        .map(|d| {
            worker(
                format!("pool-{}", d.id),
                Role::ModelPool {
                    deployment: d.id.clone(),
                },
            )
        })
        .collect();
    models.push(worker("router".into(), Role::ModelRouter));

    // One connector per base endpoint: `connector-<venue>` alone (as before siblings
    // existed), `connector-<venue>#<n>` among siblings.
    let mut exchanges: Vec<ChildPlan> = config
        .exchanges
        .venues
        .iter()
        .flat_map(|(venue, cfg)| {
            let count = cfg.connector_count();
            (0..count).map(move |endpoint| {
                worker(
                    format!("connector-{}", connector_name(venue, endpoint, count)),
                    Role::Connector {
                        venue: venue.clone(),
                        endpoint,
                    },
                )
            })
        })
        .collect();
    // Feeds start before the gateway, which reads their quotes while they are fresh.
    exchanges.extend(
        config
            .exchanges
            .venues
            .iter()
            .filter(|(_, cfg)| {
                matches!(cfg, VenueConfig::Hyperliquid(h) if h.streams)
                    || matches!(cfg, VenueConfig::BinanceFutures(f) if f.streams)
            })
            .map(|(venue, _)| {
                worker(
                    format!("feed-{venue}"),
                    Role::StreamFeed {
                        venue: venue.clone(),
                    },
                )
            }),
    );
    for (venue, cfg) in &config.exchanges.venues {
        if matches!(cfg, VenueConfig::Binance(b) if b.streams) {
            let venue = venue.clone();
            exchanges.push(worker(
                format!("feed-{venue}"),
                Role::BinanceMarketFeed {
                    venue: venue.clone(),
                },
            ));
            exchanges.push(worker(
                format!("feed-{venue}-user"),
                Role::BinanceUserFeed { venue },
            ));
        }
    }
    exchanges.push(worker("gateway".into(), Role::OrderGateway));
    // After the gateway: what they push goes to its mailbox.
    exchanges.extend(
        config
            .exchanges
            .venues
            .iter()
            .filter(|(_, cfg)| matches!(cfg, VenueConfig::BinanceFutures(f) if f.streams))
            .map(|(venue, _)| {
                worker(
                    format!("feed-{venue}-user"),
                    Role::FuturesUserFeed {
                        venue: venue.clone(),
                    },
                )
            }),
    );

    let mut agents = Vec::new();
    if config.agents.risk.enabled {
        agents.push(worker("risk".into(), Role::RiskAgent));
    }
    // One row per agent kind: the id prefix, the names in config order, the role.
    let a = &config.agents;
    let kinds: [AgentRows; 9] = [
        (
            "trading",
            a.trading.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::TradingAgent { agent },
        ),
        (
            "pipeline",
            a.pipeline.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::PipelineAgent { agent },
        ),
        (
            "sentiment",
            a.sentiment.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::SentimentAgent { agent },
        ),
        (
            "open-interest",
            a.open_interest.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::OpenInterestAgent { agent },
        ),
        (
            "liquidations",
            a.liquidations.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::LiquidationAgent { agent },
        ),
        (
            "copy",
            a.copy.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::CopyAgent { agent },
        ),
        (
            "funding",
            a.funding.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::FundingAgent { agent },
        ),
        (
            "strategy",
            a.strategy.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::StrategyAgent { agent },
        ),
        // Last: research is the lowest-priority work of the tree.
        (
            "rbi",
            a.rbi.iter().map(|x| x.name.clone()).collect(),
            |agent| Role::RbiAgent { agent },
        ),
    ];
    for (prefix, names, role) in kinds {
        agents.extend(
            names
                .into_iter()
                .map(|n| worker(format!("{prefix}-{n}"), role(n))),
        );
    }

    let mut root = vec![
        worker("telemetry".into(), Role::ProcessSampler),
        ChildPlan::Supervisor(SupervisorPlan::new("models", models)),
        ChildPlan::Supervisor(SupervisorPlan::new("exchanges", exchanges)),
        worker("signals".into(), Role::SignalBus),
    ];
    // Before the agents, so their first fills are notified; only with sinks configured.
    if !config.notifications.sinks.is_empty() {
        root.push(worker("notifier".into(), Role::Notifier));
    }
    root.push(ChildPlan::Supervisor(SupervisorPlan::new(AGENTS, agents)));
    SupervisorPlan::new("engine", root)
}

/// The supervisor of every agent (a child of the root, so its path is `engine/agents`).
pub(crate) const AGENTS: &str = "agents";

/// What the factories need from the engine.
#[derive(Clone)]
pub(crate) struct Deps {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    /// Published for the engine handle and the control API.
    pub gateway: Slot<OrderGateway>,
    pub router: Slot<ModelRouter>,
    /// The signal bus's slot, published for the control API and handed to the agents.
    pub signals: Slot<SignalBus>,
    pub metrics: Option<PrometheusHandle>,
    /// One fence for every gateway this engine builds: a restarted gateway stops the
    /// order flows its dead predecessor left running (see `GatewayFence`).
    pub fence: GatewayFence,
    /// Every agent's slot and memory, by name (see `crate::agents::directory`).
    pub agents: AgentDirectory,
    /// The market-data streams' shared state: written by the feeds, read by the gateway
    /// and status; kept across restarts of either.
    pub streams: StreamBook,
    /// The `agents` supervisor's address, where an agent started while the engine runs
    /// is added (see `crate::strategy_agents::start_runtime`).
    pub agents_sup: Slot<Supervisor>,
    /// Strategy agents started while the engine runs (promotions), in start order; the
    /// `agents` supervisor's spec ends with them, so a restart of that subtree keeps them.
    pub runtime_strategies: Arc<parking_lot::Mutex<Vec<StrategyAgentConfig>>>,
    /// The resource level: set by the resource monitor (the telemetry node), consulted by
    /// low-priority agents and routes; kept across restarts of either.
    pub shedding: orrery_actors::shedding::ShedGate,
    /// The engine's event stream; the notifier subscribes at each (re)start.
    pub events: crate::events::EventHub,
    /// The notifier's slot, published for the control API.
    pub notifier: Slot<crate::notify::Notifier>,
    /// The Redis link when `[cluster]` is configured (see `orrery_actors::cluster`).
    pub cluster: Option<orrery_actors::cluster::RedisLink>,
    /// A second link for the operator's cluster reads (`GET /api/cluster`), apart from the
    /// one the node trades through ([`RedisLink::side_link`](orrery_actors::cluster::RedisLink::side_link)).
    pub cluster_reads: Option<orrery_actors::cluster::RedisLink>,
    /// The node's leases and ledger replica when `[cluster]` is configured (see
    /// [`crate::ownership`]): the gateway trades a venue and an agent runs only under its lease.
    pub ownership: Option<crate::ownership::ClusterOwnership>,
    /// The cluster's shared rate-limit budgets (with `[cluster]`): one pool per scope for
    /// the whole process, kept across restarts of the subtrees that draw from it.
    pub shared_limits: Option<orrery_actors::cluster::SharedLimits>,
    /// Each venue account's rate limits and pause gate, one per process: the connectors'
    /// and the readers' (see [`crate::accounts`]).
    pub accounts: crate::accounts::AccountBook,
}

impl Deps {
    /// The lease book agents consult (`None`: a single process).
    pub(crate) fn leases(&self) -> Option<orrery_actors::cluster::Leases> {
        self.ownership.as_ref().map(|o| o.leases.clone())
    }
}

/// The root supervisor's spec for `plan`. Nested supervisors get their specs from the
/// same function at every (re)start, so a restarted subtree starts from fresh state.
pub(crate) fn build(plan: &SupervisorPlan, deps: &Deps) -> SupervisorSpec {
    let sup = &deps.config.supervisor;
    let mut spec = SupervisorSpec::new(plan.id.clone())
        .strategy(plan.strategy)
        .intensity(sup.intensity())
        .backoff(sup.backoff());
    let scope = Scope::new(plan, &deps.config);
    for child in &plan.children {
        spec = spec.child(match child {
            ChildPlan::Supervisor(sub) if sub.id == AGENTS => {
                let (sub, deps) = (sub.clone(), deps.clone());
                ChildSpec::supervisor_in_slot(sub.id.clone(), deps.agents_sup.clone(), move || {
                    let runtime = deps.runtime_strategies.lock().clone();
                    runtime.iter().fold(build(&sub, &deps), |spec, agent| {
                        spec.child(crate::strategy_agents::child(agent.clone(), &deps))
                    })
                })
            }
            ChildPlan::Supervisor(sub) => {
                let (sub, deps) = (sub.clone(), deps.clone());
                ChildSpec::supervisor(sub.id.clone(), move || build(&sub, &deps))
            }
            ChildPlan::Worker(w) => worker_spec(w, &scope, deps)
                .restart(w.restart)
                .mailbox(w.mailbox)
                .shutdown(deps.config.engine.shutdown_timeout),
        });
    }
    spec
}

/// State shared by the children of one supervisor incarnation: the slots through which
/// the router and the gateway reach their siblings, and the pools' health table. (Each
/// venue account's rate limits and pause gate are the process's, [`Deps::accounts`].)
struct Scope {
    health: HealthTable,
    pools: BTreeMap<String, Slot<ModelPool>>,
    connectors: BTreeMap<String, Vec<ConnectorSlot>>,
}

impl Scope {
    fn new(plan: &SupervisorPlan, config: &Config) -> Self {
        let mut scope = Scope {
            health: HealthTable::new(),
            pools: BTreeMap::new(),
            connectors: BTreeMap::new(),
        };
        for child in &plan.children {
            match child {
                ChildPlan::Worker(WorkerPlan {
                    role: Role::ModelPool { deployment },
                    ..
                }) => {
                    scope.pools.insert(deployment.clone(), Slot::new());
                }
                ChildPlan::Worker(WorkerPlan {
                    role: Role::Connector { venue, endpoint },
                    ..
                }) => {
                    let cfg = config.exchanges.venues.get(venue);
                    let endpoints = cfg.map(VenueConfig::endpoints).unwrap_or_default();
                    let count = endpoints.len().max(1);
                    scope
                        .connectors
                        .entry(venue.clone())
                        .or_default()
                        .push(ConnectorSlot {
                            name: connector_name(venue, *endpoint, count),
                            endpoint: endpoints.get(*endpoint).map(|u| display_url(u)),
                            slot: Slot::new(),
                            probe: ConnectorProbe::default(),
                        });
                }
                _ => {}
            }
        }
        scope
    }
}

/// A factory that fails every start with `why` (a plan that names something the config
/// does not have; [`plan`] never makes one from a validated config).
pub(crate) fn missing(id: &str, why: String) -> ChildSpec {
    ChildSpec::new(id.to_string(), move |_| Err(StartError::failed(&why)))
}

fn worker_spec(w: &WorkerPlan, scope: &Scope, deps: &Deps) -> ChildSpec {
    let Deps {
        config,
        store,
        clock,
        gateway,
        router,
        signals,
        metrics,
        fence,
        agents,
        streams,
        shedding,
        events,
        notifier,
        ownership,
        shared_limits,
        ..
    } = deps.clone();
    let leases = deps.leases();
    let id = w.id.clone();
    match &w.role {
        Role::ProcessSampler => {
            let interval = config.telemetry.sample_interval;
            // The telemetry node samples the process and judges the resource level (the
            // path stays `engine/telemetry`: it is a metric label and a restart key).
            ChildSpec::in_slot(id, Slot::<ResourceMonitor>::new(), move |ctx| {
                let source = source_from_env(&|k| std::env::var(k).ok());
                Ok(ResourceMonitor::new(
                    config.resources.clone(),
                    interval,
                    source,
                    shedding.clone(),
                    clock.clone(),
                )
                .with_gateway(gateway.clone())
                .sampling_process(metrics.clone())
                .counting_messages_in(ctx.messages_counter()))
            })
        }
        Role::ModelPool { deployment } => {
            let found = config
                .models
                .models
                .values()
                .flat_map(|m| m.deployments.iter())
                .find(|d| &d.id == deployment)
                .cloned();
            let (Some(d), Some(slot)) = (found, scope.pools.get(deployment).cloned()) else {
                return missing(
                    &id,
                    format!("no model deployment `{deployment}` in the config"),
                );
            };
            let health = scope.health.clone();
            ChildSpec::in_slot(id, slot, move |ctx| {
                // The breaker's state lives in sled: a restarted pool (or engine) keeps an
                // open breaker open until its time.
                pool_shared(&d, &health, Some(&store), shared_limits.as_ref())
                    .map(|p| p.counting_messages_in(ctx.messages_counter()))
                    .map_err(StartError::failed)
            })
        }
        Role::ModelRouter => {
            let (health, pools) = (scope.health.clone(), scope.pools.clone());
            ChildSpec::in_slot(id, router, move |_| {
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
        }
        Role::Connector { venue, endpoint } => {
            let (Some(cfg), Some(member)) = (
                config.exchanges.venues.get(venue).cloned(),
                scope
                    .connectors
                    .get(venue)
                    .and_then(|m| {
                        m.iter()
                            .find(|c| c.name == connector_name(venue, *endpoint, m.len()))
                    })
                    .cloned(),
            ) else {
                return missing(&id, format!("no venue `{venue}` in the config"));
            };
            let venue = venue.clone();
            // The account's limits, shared with its sibling connectors; the endpoint's URL.
            let endpoint = match deps.accounts.of_venue(&config, &venue) {
                None => None,
                Some(Err(why)) => return missing(&id, why),
                Some(Ok(account)) => cfg.endpoints().get(*endpoint).map(|url| Endpoint {
                    base_url: url.clone(),
                    connector: member.name.clone(),
                    account,
                    breaker: None,
                }),
            };
            ChildSpec::in_slot(id, member.slot.clone(), move |_| {
                let v = crate::engine::open_connector_venue(
                    &venue,
                    &cfg,
                    &store,
                    clock.clone(),
                    endpoint.as_ref(),
                )
                .map_err(StartError::failed)?;
                Ok(Connector::sibling(
                    v,
                    &cfg.queue(),
                    &member.name,
                    member.probe.clone(),
                ))
            })
        }
        Role::StreamFeed { venue } => {
            if let Some(VenueConfig::BinanceFutures(f)) = config.exchanges.venues.get(venue) {
                let f = crate::flow_agents::futures_stream_config(&config, venue, f);
                return crate::feeds::futures_market_feed(id, venue, &f, streams);
            }
            let Some(VenueConfig::Hyperliquid(h)) = config.exchanges.venues.get(venue).cloned()
            else {
                return missing(&id, format!("no hyperliquid venue `{venue}` in the config"));
            };
            let (venue, streams) = (venue.clone(), streams.clone());
            let coins = crate::status::configured_symbols(&config, &venue);
            let timeframes = crate::status::configured_timeframes(&config, &venue);
            ChildSpec::in_slot(id, Slot::new(), move |_| {
                let url = h.ws_url();
                let feed = streams.register(&venue, &url, h.stream_stale_after);
                let settings = StreamSettings::new(&venue, &url, h.stream_stale_after);
                // The account's own user channels push into the order gateway (through its
                // slot: a restarted gateway keeps receiving), followed wallets into the feed.
                let user = UserStreams::new(
                    &venue,
                    h.account_address(),
                    OrderGateway::push_sink(gateway.clone()),
                    &h.follow_wallets,
                );
                let protocol = HyperliquidProtocol::public_with(&coins, &timeframes)
                    .with_account(h.account_address())
                    .with_user(user);
                Ok(StreamFeed::new(settings, Box::new(protocol), feed))
            })
        }
        Role::FuturesUserFeed { venue } => {
            let Some(VenueConfig::BinanceFutures(f)) = config.exchanges.venues.get(venue) else {
                return missing(
                    &id,
                    format!("no binance_futures venue `{venue}` in the config"),
                );
            };
            let account = deps.accounts.of_venue(&config, venue);
            crate::feeds::futures_user_feed(id, venue, f, streams, gateway, clock, account)
        }
        Role::BinanceMarketFeed { venue } | Role::BinanceUserFeed { venue } => {
            let Some(VenueConfig::Binance(b)) = config.exchanges.venues.get(venue).cloned() else {
                return missing(&id, format!("no binance venue `{venue}` in the config"));
            };
            let account = deps.accounts.of_venue(&config, venue);
            if matches!(w.role, Role::BinanceMarketFeed { .. }) {
                crate::binance_feeds::market_spec(id, venue, *b, &config, account, clock, streams)
            } else {
                crate::binance_feeds::user_spec(id, venue, *b, account, clock, streams, gateway)
            }
        }
        Role::OrderGateway => {
            let connectors: BTreeMap<String, ConnectorSet> = scope
                .connectors
                .iter()
                .map(|(venue, members)| (venue.clone(), ConnectorSet::new(members.clone())))
                .collect();
            ChildSpec::in_slot(id, gateway, move |_| {
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
                core.attach_streams(streams.clone());
                if let Some(ownership) = &ownership {
                    core.attach_ownership(ownership.venue_ownership());
                }
                Ok(OrderGateway::new(core))
            })
        }
        Role::SignalBus => {
            let config = config.signals.clone();
            ChildSpec::in_slot(id, signals, move |ctx| {
                // Reloads every unexpired signal from sled, so a restart loses none.
                Ok(SignalBus::open(&store, config.clone(), clock.clone())
                    .map_err(StartError::failed)?
                    .counting_messages_in(ctx.messages_counter()))
            })
        }
        Role::RiskAgent => {
            let Ok(entry) = agents.get(RISK_AGENT) else {
                return missing(&id, "no risk agent in the agent directory".into());
            };
            ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
                let (baselines, breaches) = RiskDeps::trees(&store).map_err(StartError::failed)?;
                let journal = DecisionJournal::open(&store).map_err(StartError::failed)?;
                let deps = RiskDeps {
                    gateway: gateway.clone(),
                    models: ModelClient::from_slot(router.clone()),
                    journal: journal.clone(),
                    clock: clock.clone(),
                    baselines,
                    breaches,
                };
                let venues = config.exchanges.venues.keys().cloned().collect();
                let kind = RiskAgent::new(config.risk.clone(), venues, deps, entry.schedule);
                Ok(
                    // No lease: the risk agent watches every account on every node, so the
                    // venue's owner, wherever the lease puts it, has its limits watched.
                    AgentRunner::new(Arc::new(kind), entry.memory.clone(), journal, clock.clone())
                        .counting_messages_in(ctx.messages_counter()),
                )
            })
        }
        Role::TradingAgent { agent } => {
            let (Some(agent), Ok(entry)) = (
                config
                    .agents
                    .trading
                    .iter()
                    .find(|a| &a.name == agent)
                    .cloned(),
                agents.get(agent),
            ) else {
                return missing(&id, format!("no trading agent `{agent}` in the config"));
            };
            let risk_window = config.risk.window;
            ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
                let journal = DecisionJournal::open(&store).map_err(StartError::failed)?;
                let deps = TradingDeps {
                    gateway: gateway.clone(),
                    models: ModelClient::from_slot(router.clone()),
                    journal: journal.clone(),
                    memory: entry.memory.clone(),
                    clock: clock.clone(),
                    baselines: BaselineBook::new(
                        store.tree(trees::RISK).map_err(StartError::failed)?,
                        risk_window,
                        clock.clone(),
                    ),
                    signals: signals.clone(),
                };
                let kind = TradingAgent::new(agent.clone(), deps);
                Ok(
                    AgentRunner::new(Arc::new(kind), entry.memory.clone(), journal, clock.clone())
                        .counting_messages_in(ctx.messages_counter())
                        .owned_through(leases.clone()),
                )
            })
        }
        Role::Notifier => {
            let venues: Vec<String> = config.exchanges.venues.keys().cloned().collect();
            ChildSpec::in_slot(id, notifier, move |ctx| {
                let deps = crate::notify::NotifierDeps {
                    events: events.subscribe(),
                    clock: clock.clone(),
                    store: store.clone(),
                    gateway: gateway.clone(),
                    venues: venues.clone(),
                };
                crate::notify::Notifier::new(
                    &config.notifications,
                    &orrery_actors::env::process_env,
                    deps,
                )
                .map(|n| n.counting_messages_in(ctx.messages_counter()))
                .map_err(|e| StartError::failed(e.to_string()))
            })
        }
        Role::PipelineAgent { agent } => pipeline_spec(id, agent, deps),
        Role::OpenInterestAgent { agent } => {
            crate::flow_agents::open_interest_spec(id, agent, deps)
        }
        Role::LiquidationAgent { agent } => crate::flow_agents::liquidation_spec(id, agent, deps),
        Role::CopyAgent { agent } => crate::copy::spec(id, agent, deps),
        Role::FundingAgent { agent } => funding_spec(id, agent, deps),
        Role::StrategyAgent { agent } => crate::strategy_agents::spec(id, agent, deps),
        Role::RbiAgent { agent } => rbi_spec(id, agent, deps),
        Role::SentimentAgent { agent } => {
            let (Some(agent), Ok(entry)) = (
                config
                    .agents
                    .sentiment
                    .iter()
                    .find(|a| &a.name == agent)
                    .cloned(),
                agents.get(agent),
            ) else {
                return missing(&id, format!("no sentiment agent `{agent}` in the config"));
            };
            ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
                let journal = DecisionJournal::open(&store).map_err(StartError::failed)?;
                let deps = SentimentDeps {
                    models: ModelClient::from_slot(router.clone()),
                    signals: signals.clone(),
                    journal: journal.clone(),
                    state: SentimentState::open(&store, &agent.name).map_err(StartError::failed)?,
                    clock: clock.clone(),
                };
                let kind = SentimentAgent::new(agent.clone(), deps).map_err(StartError::failed)?;
                Ok(
                    AgentRunner::new(Arc::new(kind), entry.memory.clone(), journal, clock.clone())
                        .counting_messages_in(ctx.messages_counter())
                        .owned_through(leases.clone())
                        .shedding(shedding.clone()),
                )
            })
        }
    }
}

/// The child spec of one RBI agent: its runner over the router and the strategy library,
/// rebuilt from config and sled on every start.
fn rbi_spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .rbi
            .iter()
            .find(|a| a.name == agent)
            .cloned(),
        deps.agents.get(agent),
    ) else {
        return missing(&id, format!("no rbi agent `{agent}` in the config"));
    };
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        use orrery_actors::agents::rbi::{RbiAgent, RbiDeps};
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let library = orrery_actors::strategies::library::StrategyLibrary::open(
            &deps.store,
            deps.clock.clone(),
        )
        .map_err(|e| StartError::failed(e.to_string()))?;
        let run_deps = RbiDeps {
            models: ModelClient::from_slot(deps.router.clone()),
            store: deps.store.clone(),
            library,
            clock: deps.clock.clone(),
        };
        let kind = RbiAgent::new(agent.clone(), run_deps).map_err(StartError::failed)?;
        Ok(AgentRunner::new(
            Arc::new(kind),
            entry.memory.clone(),
            journal,
            deps.clock.clone(),
        )
        .counting_messages_in(ctx.messages_counter())
        .owned_through(deps.leases())
        .shedding(deps.shedding.clone()))
    })
}

/// The child spec of one funding agent: its runner, rebuilt from config and sled on every
/// start, with one reader per venue from the venue factory the operator's `orrery
/// market` uses ([`crate::market::open_reader`]) and the engine's streams.
fn funding_spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .funding
            .iter()
            .find(|a| a.name == agent)
            .cloned(),
        deps.agents.get(agent),
    ) else {
        return missing(&id, format!("no funding agent `{agent}` in the config"));
    };
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        let mut readers = BTreeMap::new();
        for venue in agent.all_venues() {
            let reader = crate::market::open_reader_in(&deps.config, &venue, Some(&deps.accounts))
                .map_err(|e| StartError::failed(e.to_string()))?;
            readers.insert(venue, reader);
        }
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let run_deps = FundingDeps {
            readers,
            streams: Some(deps.streams.clone()),
            models: ModelClient::from_slot(deps.router.clone()),
            signals: deps.signals.clone(),
            journal: journal.clone(),
            state: FundingAgentState::open(&deps.store, &agent.name).map_err(StartError::failed)?,
            clock: deps.clock.clone(),
        };
        let kind = FundingAgent::new(agent.clone(), run_deps);
        Ok(AgentRunner::new(
            Arc::new(kind),
            entry.memory.clone(),
            journal,
            deps.clock.clone(),
        )
        .counting_messages_in(ctx.messages_counter())
        .owned_through(deps.leases()))
    })
}

/// The child spec of one analysis pipeline: its runner, rebuilt from config and sled on
/// every start, reaching the gateway, the router and the signal bus through their slots.
fn pipeline_spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .pipeline
            .iter()
            .find(|a| a.name == agent)
            .cloned(),
        deps.agents.get(agent),
    ) else {
        return missing(&id, format!("no pipeline agent `{agent}` in the config"));
    };
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let run_deps = TradingDeps {
            gateway: deps.gateway.clone(),
            models: ModelClient::from_slot(deps.router.clone()),
            journal: journal.clone(),
            memory: entry.memory.clone(),
            clock: deps.clock.clone(),
            baselines: BaselineBook::new(
                deps.store.tree(trees::RISK).map_err(StartError::failed)?,
                deps.config.risk.window,
                deps.clock.clone(),
            ),
            signals: deps.signals.clone(),
        };
        let kind = orrery_actors::agents::pipeline::PipelineAgent::new(agent.clone(), run_deps);
        Ok(AgentRunner::new(
            Arc::new(kind),
            entry.memory.clone(),
            journal,
            deps.clock.clone(),
        )
        .counting_messages_in(ctx.messages_counter())
        .owned_through(deps.leases()))
    })
}

/// The tree `plan` describes as `orrery tree` shows it while the engine is stopped: every
/// actor `not_running`, with the restart counts persisted in the data dir (`records`, by
/// path) and no mailbox depth.
pub fn planned_nodes(plan: &SupervisorPlan, records: &[(String, RestartRecord)]) -> Vec<ActorNode> {
    let records: BTreeMap<&str, &RestartRecord> =
        records.iter().map(|(p, r)| (p.as_str(), r)).collect();
    let mut out = Vec::new();
    let root = ActorNode {
        path: plan.id.clone(),
        depth: 0,
        kind: NodeKind::Supervisor,
        strategy: Some(plan.strategy),
        restart: None,
        state: NodeState::NotRunning,
        restarts: 0,
        last_failure: None,
        mailbox_depth: None,
        mailbox_capacity: Some(ROOT_MAILBOX),
    };
    out.push(root);
    walk_plan(plan, &plan.id, 1, &records, &mut out);
    out
}

fn walk_plan(
    plan: &SupervisorPlan,
    path: &str,
    depth: usize,
    records: &BTreeMap<&str, &RestartRecord>,
    out: &mut Vec<ActorNode>,
) {
    for child in &plan.children {
        let (id, kind, strategy, restart, mailbox) = match child {
            ChildPlan::Supervisor(s) => (
                &s.id,
                NodeKind::Supervisor,
                Some(s.strategy),
                RestartType::Permanent,
                ChildSpec::DEFAULT_MAILBOX,
            ),
            ChildPlan::Worker(w) => (&w.id, NodeKind::Worker, None, w.restart, w.mailbox),
        };
        let child_path = format!("{path}/{id}");
        let record = records.get(child_path.as_str());
        out.push(ActorNode {
            path: child_path.clone(),
            depth,
            kind,
            strategy,
            restart: Some(restart),
            state: NodeState::NotRunning,
            restarts: record.map(|r| r.count).unwrap_or(0),
            last_failure: record.and_then(|r| r.last_reason.clone()),
            mailbox_depth: None,
            mailbox_capacity: Some(mailbox),
        });
        if let ChildPlan::Supervisor(s) = child {
            walk_plan(s, &child_path, depth + 1, records, out);
        }
    }
}

/// `orrery tree --json` and `GET /api/tree`: whether the tree is the running engine's or
/// planned from the config, and its actors depth-first in start order.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TreeReport {
    /// `true`: the live tree of the running engine; `false`: the tree this config would
    /// build, every actor `not_running`, restarts as persisted in the data dir.
    pub engine_running: bool,
    /// Every actor, depth-first in start order from the root.
    pub actors: Vec<ActorNode>,
}

/// How long `orrery tree` waits for the running engine's answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn default_config() -> Config {
        Config::load_str(
            include_str!("../config/default.toml"),
            "config/default.toml",
            std::iter::empty(),
        )
        .unwrap()
    }

    #[test]
    fn the_default_config_plans_one_for_one_supervisors_with_stable_paths() {
        let config = default_config();
        let nodes = planned_nodes(&plan(&config), &[]);
        let paths: Vec<_> = nodes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths[0], "engine");
        assert!(paths.contains(&"engine/models/router"), "{paths:?}");
        assert!(paths.contains(&"engine/exchanges/gateway"), "{paths:?}");
        assert!(
            paths.contains(&"engine/exchanges/connector-paper"),
            "{paths:?}"
        );
        // The router and the gateway start after the siblings they reach.
        let at = |p: &str| paths.iter().position(|x| *x == p).unwrap();
        assert!(at("engine/exchanges/connector-paper") < at("engine/exchanges/gateway"));
        for n in nodes.iter().filter(|n| n.kind == NodeKind::Supervisor) {
            assert_eq!(n.strategy, Some(Strategy::OneForOne), "{}", n.path);
        }
        assert!(nodes.iter().all(|n| n.state == NodeState::NotRunning));
        let gateway = nodes
            .iter()
            .find(|n| n.path == "engine/exchanges/gateway")
            .unwrap();
        assert_eq!(gateway.mailbox_capacity, Some(config.supervisor.mailbox));
    }

    #[test]
    fn an_account_with_several_endpoints_plans_a_connector_each_before_the_gateway() {
        let text = format!(
            "{}\n[exchanges.venues.hl]\nkind = \"hyperliquid\"\nwallet_address = \"0x14dC79964da2C08b23698B3D3cc7Ca32193d9955\"\nbase_urls = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n",
            include_str!("../config/default.toml")
        );
        let config = Config::load_str(&text, "config/default.toml", std::iter::empty()).unwrap();
        let nodes = planned_nodes(&plan(&config), &[]);
        let paths: Vec<_> = nodes.iter().map(|n| n.path.as_str()).collect();
        let at = |p: &str| {
            paths
                .iter()
                .position(|x| *x == p)
                .unwrap_or_else(|| panic!("{p} missing from {paths:?}"))
        };
        assert!(at("engine/exchanges/connector-hl#1") < at("engine/exchanges/connector-hl#2"));
        assert!(at("engine/exchanges/connector-hl#2") < at("engine/exchanges/gateway"));
        assert!(!paths.contains(&"engine/exchanges/connector-hl"));
        // One endpoint: the name it always had.
        at("engine/exchanges/connector-paper");
    }

    #[test]
    fn persisted_restart_counts_show_in_the_planned_tree() {
        let config = default_config();
        let records = vec![(
            "engine/exchanges/gateway".to_string(),
            RestartRecord {
                count: 3,
                last_reason: Some("panicked: boom".into()),
                last_failure_ms: Some(1),
            },
        )];
        let nodes = planned_nodes(&plan(&config), &records);
        let gateway = nodes
            .iter()
            .find(|n| n.path == "engine/exchanges/gateway")
            .unwrap();
        assert_eq!(gateway.restarts, 3);
        assert_eq!(gateway.last_failure.as_deref(), Some("panicked: boom"));
    }
}
