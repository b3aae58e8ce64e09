//! Configuration: one TOML file, `ORRERY__SECTION__KEY` environment overrides, and
//! validation that names every bad key before anything starts.
//!
//! Secrets are never read from the file: each provider or venue module reads its own
//! from the environment under the provider's usual name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orrery_actors::agents::funding::FundingAgentConfig;
use orrery_actors::agents::journal::JournalConfig;
use orrery_actors::agents::liquidations::LiquidationAgentConfig;
use orrery_actors::agents::open_interest::OpenInterestAgentConfig;
use orrery_actors::agents::pipeline::PipelineConfig;
use orrery_actors::agents::sentiment::SentimentAgentConfig;
use orrery_actors::agents::swarm::AgentMode;
use orrery_actors::agents::trading::TradingAgentConfig;
use orrery_actors::exchanges::binance::BinanceConfig;
use orrery_actors::exchanges::binance_futures::BinanceFuturesConfig;
use orrery_actors::exchanges::gateway::GatewayConfig;
use orrery_actors::exchanges::hyperliquid::HyperliquidConfig;
use orrery_actors::exchanges::market_data::FeedConfig;
use orrery_actors::exchanges::paper::PaperConfig;
use orrery_actors::exchanges::risk_gate::RiskConfig;
use orrery_actors::models::router::{ModelCacheConfig, ModelsConfig};
use orrery_actors::resilience::config::QueueConfig;
use orrery_actors::resilience::ResilienceConfig;
use orrery_actors::signals::SignalsConfig;
use orrery_actors::supervisor::{Backoff, Intensity};
use orrery_actors::validate::{join, ConfigIssue, Issues};
use serde::{Deserialize, Serialize};

mod api;
pub use api::{ApiConfig, ApiToken, ApiTokens, AuthError, Scope, READ_TOKEN_ENV, TRADE_TOKEN_ENV};
mod env_checks;
mod includes;
pub use env_checks::builtin_prices_into;

/// Prefix of environment overrides: `ORRERY__RISK__MAX_LEVERAGE=3`.
pub const ENV_PREFIX: &str = "ORRERY__";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub telemetry: TelemetryConfig,
    pub supervisor: SupervisorConfig,
    pub exchanges: ExchangesConfig,
    pub models: ModelsConfig,
    /// Bounds of the model response cache; see [`ModelCacheConfig`].
    pub model_cache: ModelCacheConfig,
    pub risk: RiskConfig,
    pub agents: AgentsConfig,
    /// Control API: tokens (from the environment) and body limit; see [`ApiConfig`].
    pub api: ApiConfig,
    /// The signal bus: how many signals it keeps, their default TTL, the sweep.
    pub signals: SignalsConfig,
    /// Decision journal retention; see [`JournalConfig`].
    pub journal: JournalConfig,
    /// The RBI pipeline of `orrery research run` (model, fix rounds, data sets,
    /// thresholds); see `orrery_actors::agents::rbi`.
    pub research: orrery_actors::agents::rbi::RbiSettings,
    /// Resource shedding: RSS and CPU thresholds of the warn, shed and critical levels;
    /// see `orrery_actors::shedding`.
    pub resources: orrery_actors::shedding::ResourcesConfig,
    /// The web dashboard: equity sampling and the event stream's heartbeat; see
    /// [`crate::dashboard::DashboardConfig`].
    pub dashboard: crate::dashboard::DashboardConfig,
    /// Notification sinks and delivery (`[notifications]`); see [`crate::notify`].
    pub notifications: crate::notify::NotificationsConfig,
    /// Scale-out through Redis (`[cluster]`): shared limits, shared breakers, leases.
    /// Absent: a single process that never talks to Redis; see `orrery_actors::cluster`.
    pub cluster: Option<orrery_actors::cluster::ClusterConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where sled keeps state; created with mode 0700.
    pub data_dir: PathBuf,
    /// How long each actor may take to stop before it is killed.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `tracing` filter, e.g. `info` or `orrery=debug,info`; `RUST_LOG` wins.
    pub log: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            shutdown_timeout: Duration::from_secs(10),
            log: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Metrics and control API address. Keep it on loopback: the control API can trade.
    pub listen: SocketAddr,
    /// How often RSS and CPU are sampled.
    #[serde(with = "humantime_serde")]
    pub sample_interval: Duration,
    /// Serve nothing (metrics are still recorded).
    pub disabled: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9898)),
            sample_interval: Duration::from_secs(5),
            disabled: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// Restart intensity: at most `max_restarts` within `period`, then escalate.
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// Backoff between restarts of one child: initial delay, doubling up to max.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Jitter as a fraction of the delay (0.2 = ±20%).
    pub backoff_jitter: f64,
    /// Mailbox capacity of each actor.
    pub mailbox: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            period: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            backoff_jitter: 0.2,
            mailbox: 256,
        }
    }
}

impl SupervisorConfig {
    pub fn intensity(&self) -> Intensity {
        Intensity {
            max_restarts: self.max_restarts,
            period: self.period,
        }
    }
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.backoff_initial,
            max: self.backoff_max,
            multiplier: 2.0,
            jitter: self.backoff_jitter,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangesConfig {
    #[serde(flatten)]
    pub gateway: GatewayConfig,
    /// Venue accounts by name.
    pub venues: BTreeMap<String, VenueConfig>,
}

impl Default for ExchangesConfig {
    fn default() -> Self {
        let mut venues = BTreeMap::new();
        venues.insert(
            "paper".to_string(),
            VenueConfig::Paper(PaperConfig::default()),
        );
        Self {
            gateway: GatewayConfig::default(),
            venues,
        }
    }
}

/// One venue account; `kind` selects the connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VenueConfig {
    Paper(PaperConfig),
    Hyperliquid(Box<HyperliquidConfig>),
    /// Binance spot; keys from `BINANCE_API_KEY` / `BINANCE_API_SECRET`.
    Binance(Box<BinanceConfig>),
    /// Binance USDⓈ-M futures (`kind = "binance_futures"`); keys from
    /// `BINANCE_FUTURES_API_KEY` / `BINANCE_FUTURES_API_SECRET`.
    BinanceFutures(Box<BinanceFuturesConfig>),
}

impl VenueConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            VenueConfig::Paper(_) => "paper",
            VenueConfig::Hyperliquid(_) => "hyperliquid",
            VenueConfig::Binance(_) => "binance",
            VenueConfig::BinanceFutures(_) => "binance_futures",
        }
    }

    /// The venue's resilience section; the paper venue (in-process) has none.
    pub fn resilience(&self) -> Option<&ResilienceConfig> {
        match self {
            VenueConfig::Paper(_) => None,
            VenueConfig::Hyperliquid(h) => Some(&h.resilience),
            VenueConfig::Binance(b) => Some(&b.resilience),
            VenueConfig::BinanceFutures(b) => Some(&b.resilience),
        }
    }

    /// The account's base endpoints, one connector each (`base_urls`, or the one
    /// `base_url`); empty for the paper venue, which runs in this process (one connector).
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            VenueConfig::Paper(_) => Vec::new(),
            VenueConfig::Hyperliquid(h) => h.endpoints(),
            VenueConfig::Binance(b) => b.endpoints(),
            VenueConfig::BinanceFutures(b) => b.endpoints(),
        }
    }

    /// How many connectors serve the account: one per endpoint, at least one.
    pub fn connector_count(&self) -> usize {
        self.endpoints().len().max(1)
    }

    /// The connector's queue: the venue's `resilience.queue`, or the defaults.
    pub fn queue(&self) -> QueueConfig {
        self.resilience()
            .map(|r| r.queue.clone())
            .unwrap_or_default()
    }

    /// The venue named by `market_data_fallback`, if any.
    pub fn market_data_fallback(&self) -> Option<&str> {
        match self {
            VenueConfig::Paper(_) => None,
            VenueConfig::Hyperliquid(h) => h.market_data_fallback.as_deref(),
            VenueConfig::Binance(b) => b.market_data_fallback.as_deref(),
            VenueConfig::BinanceFutures(b) => b.market_data_fallback.as_deref(),
        }
    }

    /// How the venue's market-data reads fall back.
    pub fn feed(&self) -> FeedConfig {
        FeedConfig {
            secondary: self.market_data_fallback().map(str::to_string),
            fallback: self
                .resilience()
                .map(|r| r.fallback.clone())
                .unwrap_or_default(),
        }
    }
}

impl ExchangesConfig {
    /// Every venue's market-data fallback, for the gateway.
    pub fn feeds(&self) -> BTreeMap<String, FeedConfig> {
        self.venues
            .iter()
            .map(|(name, v)| (name.clone(), v.feed()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    pub trading: Vec<TradingAgentConfig>,
    pub risk: RiskAgentSwitch,
    /// Five-role analysis pipelines (`[[agents.pipeline]]`).
    pub pipeline: Vec<PipelineConfig>,
    /// Sentiment and news agents (`[[agents.sentiment]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sentiment: Vec<SentimentAgentConfig>,
    /// Open-interest and whale agents (`[[agents.open_interest]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open_interest: Vec<OpenInterestAgentConfig>,
    /// Liquidation agents (`[[agents.liquidations]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub liquidations: Vec<LiquidationAgentConfig>,
    /// Copy-trading agents (`[[agents.copy]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copy: Vec<orrery_actors::agents::copy::CopyConfig>,
    /// Funding agents (`[[agents.funding]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub funding: Vec<FundingAgentConfig>,
    /// Strategy agents (`[[agents.strategy]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strategy: Vec<orrery_actors::agents::strategy::StrategyAgentConfig>,
    /// Research -> backtest -> implement agents (`[[agents.rbi]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rbi: Vec<orrery_actors::agents::rbi::RbiAgentConfig>,
    /// Set by the CLI's one-shot engines (`order`, `ask`, `research run`, ... on a stopped
    /// engine): no strategy agent is started for the library's promotions (they must not
    /// trade while a command runs). Never read from the config file.
    #[serde(skip)]
    pub skip_promoted: bool,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            trading: Vec::new(),
            pipeline: Vec::new(),
            risk: RiskAgentSwitch {
                enabled: true,
                jitter: 0.0,
                run_timeout: None,
            },
            sentiment: Vec::new(),
            open_interest: Vec::new(),
            liquidations: Vec::new(),
            copy: Vec::new(),
            funding: Vec::new(),
            strategy: Vec::new(),
            rbi: Vec::new(),
            skip_promoted: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskAgentSwitch {
    pub enabled: bool,
    /// Each check starts up to this fraction of `risk.check_interval` after its slot, at
    /// random; 0 (default) on the beat.
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one check over every venue; absent: derived from
    /// `risk.confirmation_timeout` (see `orrery_actors::agents::risk::schedule`).
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<std::time::Duration>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Include { path: PathBuf, message: String },
    #[error("environment override {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key `{key}`: {message}")]
    Shape { key: String, message: String },
    #[error("{} bad config value(s):\n{}", .0.len(), .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

impl Config {
    /// Reads the file (or defaults when `path` is `None`), applies environment overrides
    /// from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        match path {
            Some(p) => {
                let tree = includes::read_with_includes(p)?;
                Self::load_tree(tree, env)
            }
            None => Self::load_str("", "<defaults>", env),
        }
    }

    /// As [`Config::load`], from TOML text; `origin` names it in errors. An `include` in
    /// the text is resolved against the working directory.
    pub fn load_str(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let tree = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                path: PathBuf::from(origin),
                message: e.to_string(),
            })?;
        let tree = includes::resolve(tree, Path::new(origin), Path::new("."), &mut Vec::new())?;
        Self::load_tree(tree, env)
    }

    /// Applies environment overrides and defaults to a parsed tree, deserializes, reads the
    /// API tokens and validates.
    fn load_tree(
        mut tree: toml::Table,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        // Key paths set from the environment, so an error about them names the variable.
        let mut overridden: Vec<(String, String)> = Vec::new();
        for (var, value) in &env {
            if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
                apply_override(&mut tree, var, rest, value)?;
                overridden.push((env_checks::override_path(rest), var.clone()));
            }
        }
        fill_venue_resilience_defaults(&mut tree);
        builtin_prices_into(&mut tree);
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().to_string().trim().to_string();
                match env_checks::set_by(&overridden, &key) {
                    Some(var) => ConfigError::Env {
                        var: var.to_string(),
                        message: format!("config key `{key}`: {message}"),
                    },
                    None => ConfigError::Shape {
                        key: if key == "." { "<root>".into() } else { key },
                        message,
                    },
                }
            })?;
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        config.api.read_tokens(&lookup);
        config.validate().map_err(|e| match e {
            ConfigError::Invalid(issues) => ConfigError::Invalid(
                issues
                    .into_iter()
                    .map(|mut i| {
                        if let Some(var) = env_checks::set_by(&overridden, &i.key) {
                            i.key = format!("{} (set by {var})", i.key);
                        }
                        i
                    })
                    .collect(),
            ),
            other => other,
        })?;
        Ok(config)
    }

    /// Logical model names, comma-separated, for messages.
    pub fn model_names(&self) -> String {
        self.models
            .models
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Configured venue names, comma-separated, for messages.
    pub fn venue_names(&self) -> String {
        self.exchanges
            .venues
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks every value and every cross-reference; returns all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::default();
        let e = &self.engine;
        issues.check(
            !e.data_dir.as_os_str().is_empty(),
            "engine.data_dir",
            &e.data_dir,
            "a directory path",
        );
        check_duration(
            &mut issues,
            "engine.shutdown_timeout",
            e.shutdown_timeout,
            100,
            300_000,
        );
        issues.check(
            tracing_subscriber::EnvFilter::try_new(&e.log).is_ok(),
            "engine.log",
            &e.log,
            "a tracing filter such as `info` or `orrery=debug,warn`",
        );
        check_duration(
            &mut issues,
            "telemetry.sample_interval",
            self.telemetry.sample_interval,
            100,
            3_600_000,
        );
        let s = &self.supervisor;
        issues.check(
            s.max_restarts >= 1 && s.max_restarts <= 1000,
            "supervisor.max_restarts",
            s.max_restarts,
            "an integer from 1 to 1000",
        );
        check_duration(&mut issues, "supervisor.period", s.period, 100, 86_400_000);
        check_duration(
            &mut issues,
            "supervisor.backoff_initial",
            s.backoff_initial,
            0,
            600_000,
        );
        check_duration(
            &mut issues,
            "supervisor.backoff_max",
            s.backoff_max,
            0,
            3_600_000,
        );
        issues.check(
            s.backoff_max >= s.backoff_initial,
            "supervisor.backoff_max",
            humantime::format_duration(s.backoff_max).to_string(),
            "a duration not below supervisor.backoff_initial",
        );
        issues.check(
            (0.0..=1.0).contains(&s.backoff_jitter),
            "supervisor.backoff_jitter",
            s.backoff_jitter,
            "a fraction from 0 to 1",
        );
        issues.check(
            (1..=1_000_000).contains(&s.mailbox),
            "supervisor.mailbox",
            s.mailbox,
            "a capacity from 1 to 1000000",
        );

        self.exchanges.gateway.validate("exchanges", &mut issues);
        issues.check(
            !self.exchanges.venues.is_empty(),
            "exchanges.venues",
            "{}",
            "at least one venue, e.g. [exchanges.venues.paper] kind = \"paper\"",
        );
        for (name, venue) in &self.exchanges.venues {
            let path = format!("exchanges.venues.{name}");
            issues.check(
                valid_name(name),
                &path,
                name,
                "a venue name of a-z, A-Z, 0-9, - and _",
            );
            match venue {
                VenueConfig::Paper(p) => p.validate(&path, &mut issues),
                VenueConfig::Hyperliquid(h) => h.validate(&path, &mut issues),
                VenueConfig::Binance(b) => b.validate(&path, &mut issues),
                VenueConfig::BinanceFutures(b) => b.validate(&path, &mut issues),
            }
            if let Some(secondary) = venue.market_data_fallback() {
                self.check_market_data_fallback(name, secondary, &path, &mut issues);
            }
        }
        self.check_listen(&mut issues);
        self.check_agent_symbols(&mut issues);
        self.models.validate("models", &mut issues);
        self.model_cache.validate("model_cache", &mut issues);
        self.journal.validate("journal", &mut issues);
        self.dashboard.validate("dashboard", &mut issues);
        self.risk.validate("risk", &mut issues);
        self.signals.validate("signals", &mut issues);
        self.resources.validate("resources", &mut issues);
        if self.risk.ai_confirmation || self.agents.risk.enabled {
            issues.check(
                self.models.models.contains_key(&self.risk.model) || !self.risk.ai_confirmation,
                "risk.model",
                &self.risk.model,
                format!("a logical model under [models]: {}", self.model_names()),
            );
        }
        orrery_actors::agents::runtime::validate_keys(
            "agents.risk",
            self.agents.risk.jitter,
            self.agents.risk.run_timeout,
            &mut issues,
        );
        let mut seen = std::collections::BTreeSet::new();
        for (i, agent) in self.agents.trading.iter().enumerate() {
            let path = format!("agents.trading[{i}]");
            agent.validate(&path, &mut issues);
            // Agents are reached by name (`orrery agents pause NAME`) and keep their
            // memory under it: the risk agent's name is taken.
            issues.check(
                agent.name != orrery_actors::agents::risk::RISK_AGENT,
                join(&path, "name"),
                &agent.name,
                "a name other than `risk` (the risk agent's)",
            );
            issues.check(
                seen.insert(agent.name.clone()),
                join(&path, "name"),
                &agent.name,
                "a name no other trading agent uses",
            );
            issues.check(
                self.exchanges.venues.contains_key(&agent.venue),
                join(&path, "venue"),
                &agent.venue,
                format!("a venue under [exchanges.venues]: {}", self.venue_names()),
            );
            if agent.mode == AgentMode::Single {
                issues.check(
                    self.models.models.contains_key(&agent.model),
                    join(&path, "model"),
                    &agent.model,
                    format!("a logical model under [models]: {}", self.model_names()),
                );
            }
            self.check_swarm_names(agent, &path, &mut issues);
            issues.check(
                agent.leverage <= self.risk.max_leverage,
                join(&path, "leverage"),
                agent.leverage,
                format!("at most risk.max_leverage ({})", self.risk.max_leverage),
            );
        }
        self.check_pipelines(&mut seen, &mut issues);
        self.check_sentiment_agents(&mut issues);
        self.check_flow_agents(&mut issues);
        crate::copy::check(self, &mut issues);
        self.check_funding_agents(&mut issues);
        crate::strategy_agents::check(self, &mut issues);
        self.check_research(&mut issues);
        self.notifications.validate("notifications", &mut issues);
        if let Some(cluster) = &self.cluster {
            cluster.validate("cluster", &mut issues);
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(issues.0))
        }
    }
}

impl Config {
    /// Every `[[agents.pipeline]]`: its own values, a name no other agent has, its venue,
    /// and each stage's model under `[models]`. `seen`: the names taken so far.
    fn check_pipelines(&self, seen: &mut std::collections::BTreeSet<String>, issues: &mut Issues) {
        for (i, p) in self.agents.pipeline.iter().enumerate() {
            let path = format!("agents.pipeline[{i}]");
            p.validate(&path, issues);
            issues.check(
                p.name != orrery_actors::agents::risk::RISK_AGENT && seen.insert(p.name.clone()),
                join(&path, "name"),
                &p.name,
                "a name no other agent uses (nor `risk`, the risk agent's)",
            );
            issues.check(
                self.exchanges.venues.contains_key(&p.venue),
                join(&path, "venue"),
                &p.venue,
                format!("a venue under [exchanges.venues]: {}", self.venue_names()),
            );
            for (stage, s) in p.model_stages() {
                issues.check(
                    self.models.models.contains_key(&s.model),
                    join(&join(&path, stage), "model"),
                    &s.model,
                    format!("a logical model under [models]: {}", self.model_names()),
                );
            }
        }
    }

    /// `[[agents.open_interest]]` and `[[agents.liquidations]]` (see `crate::flow_agents`),
    /// with names unique among all agents.
    fn check_flow_agents(&self, issues: &mut Issues) {
        let mut taken: std::collections::BTreeSet<String> = self
            .agents
            .trading
            .iter()
            .map(|a| a.name.clone())
            .chain(self.agents.pipeline.iter().map(|p| p.name.clone()))
            .chain(self.agents.sentiment.iter().map(|a| a.name.clone()))
            .chain(self.agents.funding.iter().map(|a| a.name.clone()))
            .chain(self.agents.copy.iter().map(|a| a.name.clone()))
            .collect();
        taken.insert(orrery_actors::agents::risk::RISK_AGENT.to_string());
        crate::flow_agents::check(self, &mut taken, issues);
    }

    /// `[[agents.sentiment]]`: each agent's keys, its model, and names unique among all
    /// agents (agents are reached by name) and sources unique among all sentiment agents
    /// (a source is a metric label).
    fn check_sentiment_agents(&self, issues: &mut Issues) {
        let mut agents: std::collections::BTreeSet<&str> = self
            .agents
            .trading
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        agents.insert(orrery_actors::agents::risk::RISK_AGENT);
        let mut sources = std::collections::BTreeSet::new();
        for (i, agent) in self.agents.sentiment.iter().enumerate() {
            let path = format!("agents.sentiment[{i}]");
            agent.validate(&path, issues);
            issues.check(
                agents.insert(&agent.name),
                join(&path, "name"),
                &agent.name,
                "a name no other agent uses (nor `risk`, the risk agent's)",
            );
            issues.check(
                self.models.models.contains_key(&agent.model),
                join(&path, "model"),
                &agent.model,
                format!("a logical model under [models]: {}", self.model_names()),
            );
            for (j, s) in agent.sources.iter().enumerate() {
                issues.check(
                    sources.insert(s.name.clone()),
                    format!("{path}.sources[{j}].name"),
                    &s.name,
                    "a source name no other sentiment source uses (it is the `source` label of the news metrics)",
                );
            }
        }
    }

    /// `[research]` and `[[agents.rbi]]`: the pipeline's keys, its model under `[models]`,
    /// and each RBI agent's name unique among all agents.
    fn check_research(&self, issues: &mut Issues) {
        self.research.validate("research", issues);
        issues.check(
            self.models.models.contains_key(&self.research.model),
            "research.model",
            &self.research.model,
            format!("a logical model under [models]: {}", self.model_names()),
        );
        let a = &self.agents;
        let mut taken =
            crate::agents::names_of_other_kinds(self, orrery_actors::agents::runtime::Kind::Rbi);
        for (i, agent) in a.rbi.iter().enumerate() {
            let path = format!("agents.rbi[{i}]");
            agent.validate(&path, issues);
            issues.check(
                taken.insert(agent.name.clone()),
                join(&path, "name"),
                &agent.name,
                "a name no other agent uses (nor `risk`, the risk agent's)",
            );
            issues.check(
                self.models.models.contains_key(&agent.model),
                join(&path, "model"),
                &agent.model,
                format!("a logical model under [models]: {}", self.model_names()),
            );
        }
    }

    /// `[[agents.funding]]`: each agent's keys, a name no other agent uses, each venue
    /// configured and of a kind the venue factory reads funding from, and its model.
    fn check_funding_agents(&self, issues: &mut Issues) {
        let mut agents: std::collections::BTreeSet<&str> = self
            .agents
            .trading
            .iter()
            .map(|a| a.name.as_str())
            .chain(self.agents.pipeline.iter().map(|p| p.name.as_str()))
            .chain(self.agents.sentiment.iter().map(|a| a.name.as_str()))
            .collect();
        agents.insert(orrery_actors::agents::risk::RISK_AGENT);
        for (i, agent) in self.agents.funding.iter().enumerate() {
            let path = format!("agents.funding[{i}]");
            agent.validate(&path, issues);
            issues.check(
                agents.insert(&agent.name),
                join(&path, "name"),
                &agent.name,
                "a name no other agent uses (nor `risk`, the risk agent's)",
            );
            for venue in agent.all_venues() {
                let key = if agent.venue.as_deref() == Some(venue.as_str()) {
                    join(&path, "venue")
                } else {
                    join(&path, "venues")
                };
                match self.exchanges.venues.get(&venue) {
                    None => issues.check(
                        false,
                        key,
                        &venue,
                        format!("a venue under [exchanges.venues]: {}", self.venue_names()),
                    ),
                    Some(v) => issues.check(
                        crate::market::offers_funding(v),
                        key,
                        &venue,
                        format!(
                            "a venue with perpetuals ({}); `{venue}` is of kind `{}`",
                            crate::market::FUNDING_KINDS,
                            v.kind()
                        ),
                    ),
                }
            }
            if let Some(model) = &agent.model {
                issues.check(
                    self.models.models.contains_key(model),
                    join(&path, "model"),
                    model,
                    format!("a logical model under [models]: {}", self.model_names()),
                );
            }
        }
    }

    /// A swarm's members and reviewer each name a logical model or a deployment id (the
    /// router looks a name up in that order).
    fn check_swarm_names(&self, agent: &TradingAgentConfig, path: &str, issues: &mut Issues) {
        if agent.mode != AgentMode::Swarm {
            return;
        }
        let known = |name: &str| {
            self.models.models.contains_key(name)
                || self
                    .models
                    .models
                    .values()
                    .any(|m| m.deployments.iter().any(|d| d.id == name))
        };
        let allowed = || {
            let deployments: Vec<String> = self
                .models
                .models
                .values()
                .flat_map(|m| m.deployments.iter().map(|d| d.id.clone()))
                .collect();
            format!(
                "a logical model under [models] ({}) or a deployment id ({})",
                self.model_names(),
                deployments.join(", ")
            )
        };
        for (i, member) in agent.members.iter().enumerate() {
            issues.check(
                known(member),
                format!("{}[{i}]", join(path, "members")),
                member,
                allowed(),
            );
        }
        if let Some(reviewer) = &agent.reviewer {
            issues.check(known(reviewer), join(path, "reviewer"), reviewer, allowed());
        }
    }

    /// A venue's `market_data_fallback` names another live venue: never itself, never a
    /// paper venue (a simulated price is no stand-in for a market's).
    fn check_market_data_fallback(
        &self,
        venue: &str,
        secondary: &str,
        path: &str,
        issues: &mut Issues,
    ) {
        let candidates: Vec<&str> = self
            .exchanges
            .venues
            .iter()
            .filter(|(n, v)| n.as_str() != venue && !matches!(v, VenueConfig::Paper(_)))
            .map(|(n, _)| n.as_str())
            .collect();
        issues.check(
            candidates.contains(&secondary),
            join(path, "market_data_fallback"),
            secondary,
            if candidates.is_empty() {
                "the name of another non-paper venue under [exchanges.venues]; there is none, so leave it out".to_string()
            } else {
                format!(
                    "the name of another non-paper venue under [exchanges.venues]: {}",
                    candidates.join(", ")
                )
            },
        );
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_duration(issues: &mut Issues, key: &str, d: Duration, min_ms: u64, max_ms: u64) {
    let ms = d.as_millis() as u64;
    issues.check(
        (min_ms..=max_ms).contains(&ms),
        key,
        humantime::format_duration(d).to_string(),
        format!(
            "a duration from {} to {}",
            humantime::format_duration(Duration::from_millis(min_ms)),
            humantime::format_duration(Duration::from_millis(max_ms))
        ),
    );
}

/// A venue's `resilience` section starts from that venue's own defaults (its documented
/// rate limits and endpoint weights), so writing only `queue` or `fallback` keeps them.
/// Tables merge key by key; arrays and values replace. Writing `limits` replaces the
/// pools; the default endpoint weights are kept for the pools the written `limits` still
/// name (so sharing the `weight` pool in a cluster keeps every endpoint's documented
/// weight), and an endpoint left with no pool of its defaults draws 1 from every pool
/// (the rule for an endpoint not listed). Written `endpoints` are laid over that.
fn fill_venue_resilience_defaults(tree: &mut toml::Table) {
    let Some(venues) = tree
        .get_mut("exchanges")
        .and_then(|e| e.get_mut("venues"))
        .and_then(toml::Value::as_table_mut)
    else {
        return;
    };
    for (_, venue) in venues.iter_mut() {
        let Some(venue) = venue.as_table_mut() else {
            continue;
        };
        let defaults = match venue.get("kind").and_then(toml::Value::as_str) {
            Some("hyperliquid") => {
                orrery_actors::exchanges::hyperliquid::config::default_resilience()
            }
            Some("binance") => orrery_actors::exchanges::binance::config::default_resilience(),
            Some("binance_futures") => {
                orrery_actors::exchanges::binance_futures::config::default_resilience()
            }
            _ => continue,
        };
        let given = match venue.get("resilience") {
            Some(toml::Value::Table(given)) => given.clone(),
            _ => continue,
        };
        let Ok(toml::Value::Table(mut merged)) = toml::Value::try_from(&defaults) else {
            continue;
        };
        if let Some(toml::Value::Array(limits)) = given.get("limits") {
            let pools: Vec<&str> = limits
                .iter()
                .filter_map(|l| l.get("name").and_then(toml::Value::as_str))
                .collect();
            if let Some(toml::Value::Table(endpoints)) = merged.get_mut("endpoints") {
                keep_draws_from(endpoints, &pools);
            }
        }
        merge_table(&mut merged, &given);
        venue.insert("resilience".into(), toml::Value::Table(merged));
    }
}

/// Keeps each endpoint's draws from `pools` only; drops an endpoint left with none.
fn keep_draws_from(endpoints: &mut toml::Table, pools: &[&str]) {
    endpoints.retain(|_, draws| match draws.as_table_mut() {
        Some(draws) => {
            let had = draws.len();
            draws.retain(|pool, _| pools.contains(&pool));
            // An endpoint that drew nothing by default (none) stays so.
            had == 0 || !draws.is_empty()
        }
        None => true,
    });
}

/// Overlays `given` on `base`: nested tables merge, anything else replaces.
pub(crate) fn merge_table(base: &mut toml::Table, given: &toml::Table) {
    for (key, value) in given {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(g)) => merge_table(b, g),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Applies `ORRERY__A__B__0__C=value` to the TOML tree: segments are lower-cased keys,
/// a numeric segment indexes an existing array (e.g. `[[agents.trading]]`), and the value
/// is read as a TOML value (number, bool, string, array) or, failing that, a plain string.
fn apply_override(
    tree: &mut toml::Table,
    var: &str,
    rest: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut root = toml::Value::Table(std::mem::take(tree));
    let result = set_path(&mut root, &segments, value);
    if let toml::Value::Table(t) = root {
        *tree = t;
    }
    result.map_err(|message| ConfigError::Env {
        var: var.to_string(),
        message,
    })
}

fn set_path(node: &mut toml::Value, segments: &[String], value: toml::Value) -> Result<(), String> {
    let Some((head, tail)) = segments.split_first() else {
        return Err("no key after the ORRERY__ prefix".into());
    };
    if head.is_empty() {
        return Err("empty key segment; write ORRERY__SECTION__KEY".into());
    }
    let child = match node {
        toml::Value::Table(t) => {
            if tail.is_empty() {
                t.insert(head.clone(), value);
                return Ok(());
            }
            let indexes_next = tail.first().is_some_and(|n| n.parse::<usize>().is_ok());
            if indexes_next && !t.contains_key(head) {
                return Err(format!(
                    "`{head}` has no entries to index; define them in the config file first"
                ));
            }
            t.entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        }
        toml::Value::Array(items) => {
            let len = items.len();
            let idx: usize = head
                .parse()
                .map_err(|_| format!("`{head}` is not an index into an array of {len}"))?;
            let item = items
                .get_mut(idx)
                .ok_or_else(|| format!("index {idx} is past the end of an array of {len}"))?;
            if tail.is_empty() {
                *item = value;
                return Ok(());
            }
            item
        }
        _ => return Err(format!("`{head}` is below a plain value, not a section")),
    };
    set_path(child, tail, value)
}

#[cfg(test)]
mod tests;
