//! The `[models]` config section, its validation, and the factory that turns a deployment's
//! config into a provider and a pool.
//!
//! Owns: the shape of `[models.<name>]` and `[[models.<name>.deployments]]`, what values
//! are allowed, and which provider kinds this build can run. Never: reads secrets (the
//! HTTP providers take their keys from the environment when they are built) or starts
//! actors under supervision (the engine does).
//!
//! ```toml
//! [models.default]
//! strategy = "ordered_fallback"   # or least_busy, lowest_latency, weighted_shuffle
//! cache_ttl = "10m"               # optional: cache answers to cacheable requests
//!
//! [[models.default.deployments]]
//! id = "local"
//! provider = "local"
//! model = "rules-v1"
//! max_concurrent = 4
//! timeout = "30s"
//! # routing and accounting, all optional:
//! weight = 1
//! context_window = 128000
//! price_prompt_per_mtok = 0.15
//! price_completion_per_mtok = 0.6
//!
//! [model_cache]                   # a top-level section of the engine's config
//! max_entries = 10000
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::env::{process_env, EnvLookup};
use crate::models::http::{self, HttpBuildError, HttpProvider, HttpSettings};
use crate::models::local::{self, LocalRules};
use crate::models::pool::{HealthTable, ModelPool, PoolSettings, Provider};
use crate::models::providers::ProviderKind;
use crate::resilience::config::BreakerConfig;
use crate::resilience::BreakerRecord;
use crate::store::{trees, Store};
use crate::validate::{join, Issues};

/// Logical model name → how to serve it. An absent section means [`ModelsConfig::default`]:
/// `default` served by the offline `local` rules engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelsConfig {
    pub models: BTreeMap<String, LogicalModel>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let mut models = BTreeMap::new();
        models.insert(
            "default".to_string(),
            LogicalModel {
                strategy: RoutingStrategy::OrderedFallback,
                deployments: vec![DeploymentConfig::local("local")],
                cache_ttl: None,
            },
        );
        Self { models }
    }
}

/// How the router picks among a logical model's deployments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    /// In configured order, skipping deployments cooling down; next on failure.
    #[default]
    OrderedFallback,
    /// Fewest calls in flight plus queued (read from the health table) first; ties keep
    /// the configured order.
    LeastBusy,
    /// Lowest EWMA latency of successful calls first. A deployment with no sample yet
    /// sorts first, so new deployments get probed; ties keep the configured order.
    LowestLatency,
    /// A random order, each deployment's chance of coming first proportional to its
    /// `weight` (weighted shuffle without replacement); failover walks the rest.
    WeightedShuffle,
}

impl RoutingStrategy {
    pub fn name(self) -> &'static str {
        match self {
            RoutingStrategy::OrderedFallback => "ordered_fallback",
            RoutingStrategy::LeastBusy => "least_busy",
            RoutingStrategy::LowestLatency => "lowest_latency",
            RoutingStrategy::WeightedShuffle => "weighted_shuffle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalModel {
    #[serde(default)]
    pub strategy: RoutingStrategy,
    pub deployments: Vec<DeploymentConfig>,
    /// How long an answer to a request marked `cacheable` is served from the response
    /// cache (memory, then sled). Absent: this model's answers are never cached.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_ttl: Option<Duration>,
}

/// The `[model_cache]` section: bounds of the response cache shared by every logical model.
/// Whether and how long a model's answers are cached is `[models.<name>] cache_ttl`.
///
/// ```toml
/// [model_cache]
/// max_entries = 10000      # answers kept in memory (L1); older ones stay in sled (L2)
/// sweep_interval = "1m"    # how often expired answers are removed from sled ("0s": never)
/// sweep_batch = 1000       # entries examined per sweep at most
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelCacheConfig {
    /// Answers kept in memory across all models; the least recently used go first.
    pub max_entries: u64,
    /// How often the router sweeps expired answers out of sled (also once at start);
    /// `"0s"`: never (expired entries are then removed only when read).
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Sled entries one sweep examines at most, continuing where the last one stopped.
    pub sweep_batch: usize,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            sweep_interval: Duration::from_secs(60),
            sweep_batch: 1_000,
        }
    }
}

impl ModelCacheConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            (1..=10_000_000).contains(&self.max_entries),
            join(path, "max_entries"),
            self.max_entries,
            "1 to 10000000 cached answers",
        );
        issues.check(
            self.sweep_interval.is_zero()
                || (self.sweep_interval >= Duration::from_millis(10)
                    && self.sweep_interval <= Duration::from_secs(24 * 3600)),
            join(path, "sweep_interval"),
            self.sweep_interval,
            "\"0s\" (never) or a duration from 10ms to 24h, e.g. \"1m\"",
        );
        issues.check(
            (1..=1_000_000).contains(&self.sweep_batch),
            join(path, "sweep_batch"),
            self.sweep_batch,
            "1 to 1000000 entries per sweep",
        );
    }
}

/// One deployment: a provider, a model there, and the pool's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Unique across all logical models; the pool's name and the `deployment` metric label.
    pub id: String,
    /// One of [`ProviderKind`]'s names.
    pub provider: String,
    /// The provider's model name (`rules-v1` for `local`).
    pub model: String,
    #[serde(default = "defaults::max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default = "defaults::max_queued")]
    pub max_queued: usize,
    /// Longest one call may take, queueing included.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "defaults::cooldown_after_failures")]
    pub cooldown_after_failures: u32,
    #[serde(default = "defaults::cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    /// Whether a failure while a sibling deployment is left cools this one down at once
    /// (for `cooldown`), rather than after `cooldown_after_failures` in a row.
    #[serde(default = "defaults::cooldown_on_failover")]
    pub cooldown_on_failover: bool,
    /// Endpoint override for HTTP providers (a local mock, an OpenAI-compatible server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Environment variable holding the API key, if not the provider's usual one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,

    // --- HTTP providers (everything but `local`; see `models::http`) ---------------
    /// TCP/TLS connect timeout.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// From sending a request to the response headers; also the longest silence
    /// between two chunks of a streamed answer.
    #[serde(default = "defaults::first_byte_timeout", with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Requests per minute this deployment may send (unset: no limit of ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute, prompt and completion (unset: no limit of ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Cluster scope of this key's budgets (e.g. `"openai-key-1"`): with `[cluster]`,
    /// `rpm` and `tpm` are also drawn from the scopes `<scope>.requests` and
    /// `<scope>.tokens` that every node (and every deployment naming the scope) shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// Ask for streamed answers (SSE / NDJSON).
    #[serde(default)]
    pub stream: bool,
    /// Idle keep-alive connections kept to the provider.
    #[serde(default = "defaults::max_idle_connections")]
    pub max_idle_connections: usize,
    /// Base wait between retries inside the deployment.
    #[serde(default = "defaults::retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Background health check period (`"0s"`: off); Ollama only (`GET /api/tags`).
    #[serde(default = "defaults::health_check_interval", with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// The deployment's circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// OpenRouter only: your app's URL, sent as `HTTP-Referer` (app attribution on
    /// openrouter.ai).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_url: Option<String>,
    /// OpenRouter only: your app's name, sent as `X-Title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_title: Option<String>,
    // --- end of HTTP provider fields -------------------------------------------------

    // --- Routing and accounting (the router's, not the provider's) -----------------------
    /// Share of first picks under `weighted_shuffle`, relative to the model's other
    /// deployments (1 to 1000).
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Largest request the deployment takes, in tokens (prompt estimated at 4 characters a
    /// token, plus `max_tokens`); larger requests skip it. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// USD per million prompt tokens, for the cost accounting (0: free).
    #[serde(default)]
    pub price_prompt_per_mtok: Decimal,
    /// USD per million completion tokens.
    #[serde(default)]
    pub price_completion_per_mtok: Decimal,
}

mod defaults {
    use std::time::Duration;
    pub fn max_concurrent() -> usize {
        4
    }
    pub fn max_queued() -> usize {
        64
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn cooldown_after_failures() -> u32 {
        3
    }
    pub fn cooldown() -> Duration {
        Duration::from_secs(30)
    }
    pub fn cooldown_on_failover() -> bool {
        true
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn first_byte_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_idle_connections() -> usize {
        16
    }
    pub fn retry_backoff() -> Duration {
        Duration::from_millis(250)
    }
    pub fn health_check_interval() -> Duration {
        Duration::from_secs(30)
    }
    pub fn weight() -> u32 {
        1
    }
}

impl DeploymentConfig {
    /// A `local` rules-engine deployment with default limits.
    pub fn local(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            provider: local::PROVIDER.into(),
            model: local::MODEL.into(),
            max_concurrent: defaults::max_concurrent(),
            max_queued: defaults::max_queued(),
            timeout: defaults::timeout(),
            cooldown_after_failures: defaults::cooldown_after_failures(),
            cooldown: defaults::cooldown(),
            cooldown_on_failover: defaults::cooldown_on_failover(),
            base_url: None,
            api_key_env: None,
            connect_timeout: defaults::connect_timeout(),
            first_byte_timeout: defaults::first_byte_timeout(),
            rpm: None,
            tpm: None,
            shared: None,
            stream: false,
            max_idle_connections: defaults::max_idle_connections(),
            retry_backoff: defaults::retry_backoff(),
            health_check_interval: defaults::health_check_interval(),
            breaker: BreakerConfig::default(),
            app_url: None,
            app_title: None,
            weight: defaults::weight(),
            context_window: None,
            price_prompt_per_mtok: Decimal::ZERO,
            price_completion_per_mtok: Decimal::ZERO,
        }
    }

    /// An HTTP deployment of `provider` (a [`ProviderKind`] name) with default limits.
    pub fn http(id: impl Into<String>, provider: &str, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            ..Self::local(id)
        }
    }

    /// The HTTP provider's settings from this deployment's config.
    pub fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.first_byte_timeout,
            total_timeout: self.timeout,
            max_idle_per_host: self.max_idle_connections,
            stream: self.stream,
            rpm: self.rpm,
            tpm: self.tpm,
            retry_backoff: self.retry_backoff,
            breaker: self.breaker.clone(),
            health_check_every: (!self.health_check_interval.is_zero())
                .then_some(self.health_check_interval),
        }
    }

    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_concurrent: self.max_concurrent,
            max_queued: self.max_queued,
            timeout: self.timeout,
            cooldown_after_failures: self.cooldown_after_failures,
            cooldown: self.cooldown,
            cooldown_on_failover: self.cooldown_on_failover,
        }
    }
}

/// What a deployment's `provider` names: the offline rules engine, or an HTTP provider
/// and its wire format ([`ProviderKind`], the one list of those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderChoice {
    Local,
    Http(ProviderKind),
}

impl ProviderChoice {
    /// The choice a config name makes (`local`, or a [`ProviderKind`] label, exactly).
    pub fn parse(name: &str) -> Option<Self> {
        if name == local::PROVIDER {
            return Some(Self::Local);
        }
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.label() == name)
            .map(Self::Http)
    }

    /// The HTTP provider's wire format; `None` for `local`.
    pub fn http(self) -> Option<ProviderKind> {
        match self {
            Self::Local => None,
            Self::Http(kind) => Some(kind),
        }
    }
}

/// Every provider name the config accepts.
fn available_names() -> String {
    std::iter::once(local::PROVIDER)
        .chain(ProviderKind::ALL.map(ProviderKind::label))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("deployment `{deployment}`: unknown provider `{provider}`; available: {available}")]
    UnknownProvider {
        deployment: String,
        provider: String,
        available: String,
    },
    #[error(
        "deployment `{deployment}`: provider `local` has no model `{model}`; its models are {}",
        local::RuleSet::model_names()
    )]
    UnknownLocalModel { deployment: String, model: String },
    #[error("deployment `{deployment}`: {source}")]
    Http {
        deployment: String,
        #[source]
        source: HttpBuildError,
    },
    #[error("deployment `{deployment}`: cannot open the circuit breaker's state in the data dir: {reason}")]
    Store { deployment: String, reason: String },
    #[error("deployment `{deployment}`: its shared budgets cannot be drawn: {reason}")]
    Shared { deployment: String, reason: String },
}

/// The provider for one deployment, keys from the process environment, its breaker's
/// state in memory only (see [`build_provider_with`] for the engine's form).
pub fn build_provider(cfg: &DeploymentConfig) -> Result<Arc<dyn Provider>, BuildError> {
    build_provider_with_env(cfg, &process_env)
}

/// [`build_provider`] with API keys read through `env` instead of the process
/// environment (tests hand in a map).
pub fn build_provider_with_env(
    cfg: &DeploymentConfig,
    env: EnvLookup<'_>,
) -> Result<Arc<dyn Provider>, BuildError> {
    build_provider_with(cfg, env, None)
}

/// The provider for one deployment, its API key read through `env`, and an HTTP
/// provider's circuit breaker kept in `store` (tree `breakers`, under the deployment id)
/// when one is given. The engine calls this from each pool's child spec with its store,
/// so a restarted pool gets a fresh provider whose breaker remembers being open.
pub fn build_provider_with(
    cfg: &DeploymentConfig,
    env: EnvLookup<'_>,
    store: Option<&Store>,
) -> Result<Arc<dyn Provider>, BuildError> {
    build_provider_shared(cfg, env, store, None)
}

/// As [`build_provider_with`]; an HTTP deployment naming a `shared` scope draws its
/// rpm / tpm from the cluster budgets of `shared` as well (without `shared`, the scope
/// is ignored and the budgets are this process's own).
pub fn build_provider_shared(
    cfg: &DeploymentConfig,
    env: EnvLookup<'_>,
    store: Option<&Store>,
    shared: Option<&crate::cluster::SharedLimits>,
) -> Result<Arc<dyn Provider>, BuildError> {
    match ProviderChoice::parse(&cfg.provider) {
        Some(ProviderChoice::Local) => match local::RuleSet::parse(&cfg.model) {
            Some(rules) => Ok(Arc::new(LocalRules::with_rules(cfg.id.clone(), rules))),
            None => Err(BuildError::UnknownLocalModel {
                deployment: cfg.id.clone(),
                model: cfg.model.clone(),
            }),
        },
        Some(ProviderChoice::Http(wire)) => {
            let mut provider = HttpProvider::new(
                cfg.id.clone(),
                wire,
                cfg.model.clone(),
                cfg.base_url.as_deref(),
                cfg.api_key_env.as_deref(),
                cfg.http_settings(),
                env,
                crate::clock::system_clock(),
            )
            .map_err(|source| BuildError::Http {
                deployment: cfg.id.clone(),
                source,
            })?
            .with_attribution(cfg.app_url.clone(), cfg.app_title.clone());
            if let (Some(shared), Some(scope)) = (shared, &cfg.shared) {
                provider = provider.with_shared_budgets(shared, scope).map_err(|e| {
                    BuildError::Shared {
                        deployment: cfg.id.clone(),
                        reason: e.to_string(),
                    }
                })?;
            }
            if let Some(store) = store {
                let breakers = store.tree::<BreakerRecord>(trees::BREAKERS).map_err(|e| {
                    BuildError::Store {
                        deployment: cfg.id.clone(),
                        reason: e.to_string(),
                    }
                })?;
                provider = provider.with_breaker_store(breakers);
            }
            Ok(Arc::new(provider))
        }
        None => Err(BuildError::UnknownProvider {
            deployment: cfg.id.clone(),
            provider: cfg.provider.clone(),
            available: available_names(),
        }),
    }
}

/// A pool for one deployment, its provider built (keys from the process environment, the
/// breaker's state in `store` when given) and its health entry taken from `health`.
pub fn pool_for(
    cfg: &DeploymentConfig,
    health: &HealthTable,
    store: Option<&Store>,
) -> Result<ModelPool, BuildError> {
    pool_shared(cfg, health, store, None)
}

/// As [`pool_for`]; with the cluster's shared limits, a deployment naming a `shared`
/// scope draws its rpm / tpm from the cluster budgets too.
pub fn pool_shared(
    cfg: &DeploymentConfig,
    health: &HealthTable,
    store: Option<&Store>,
    shared: Option<&crate::cluster::SharedLimits>,
) -> Result<ModelPool, BuildError> {
    let provider = build_provider_shared(cfg, &process_env, store, shared)?;
    Ok(ModelPool::new(
        cfg.id.clone(),
        provider,
        cfg.pool_settings(),
        health.entry(&cfg.id),
    ))
}

/// Characters a deployment id may use: it is a metric label and a log field.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ModelsConfig {
    /// Pushes one issue per bad value, keyed under `path` (usually `models`).
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        if self.models.is_empty() {
            issues.push(
                path,
                "no logical models",
                "at least one [models.<name>] with a deployment; remove the section to run the offline `local` rules engine as `default`",
            );
        }
        // Deployment ids are pool names and metric labels: unique across the whole section.
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (name, model) in &self.models {
            let mpath = join(path, name);
            issues.check(
                valid_id(name),
                mpath.clone(),
                name,
                "a logical model name of 1-64 letters, digits, `-`, `_` or `.`",
            );
            if let Some(ttl) = model.cache_ttl {
                issues.check(
                    !ttl.is_zero() && ttl <= Duration::from_secs(7 * 24 * 3600),
                    join(&mpath, "cache_ttl"),
                    humantime::format_duration(ttl).to_string(),
                    "a positive duration up to 7 days, e.g. \"10m\"; remove the key to disable caching",
                );
            }
            let dpath = join(&mpath, "deployments");
            if model.deployments.is_empty() {
                issues.push(
                    dpath.clone(),
                    "[]",
                    "at least one deployment ([[models.<name>.deployments]])",
                );
            }
            for (i, d) in model.deployments.iter().enumerate() {
                let p = format!("{dpath}[{i}]");
                d.validate(&p, issues);
                if let Some(first) = seen.get(d.id.as_str()) {
                    issues.push(
                        join(&p, "id"),
                        &d.id,
                        format!("a deployment id not used elsewhere (already used at {first})"),
                    );
                } else {
                    seen.insert(&d.id, join(&p, "id"));
                }
            }
        }
    }
}

impl DeploymentConfig {
    /// The HTTP provider fields (not checked for `local`, which ignores them).
    fn validate_http(&self, path: &str, issues: &mut Issues) {
        if let Some(url) = &self.base_url {
            let parsed = http::check_base_url(url);
            issues.check(
                parsed.is_ok(),
                join(path, "base_url"),
                url,
                format!(
                    "an absolute http(s) URL such as http://127.0.0.1:11434 ({})",
                    parsed.err().unwrap_or_default()
                ),
            );
        }
        if let Some(var) = &self.api_key_env {
            issues.check(
                !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                join(path, "api_key_env"),
                var,
                "the name of an environment variable (letters, digits, `_`), not the key itself",
            );
        }
        issues.check(
            self.connect_timeout >= Duration::from_millis(1)
                && self.connect_timeout <= Duration::from_secs(60),
            join(path, "connect_timeout"),
            self.connect_timeout,
            "a duration from 1ms to 60s, e.g. \"5s\"",
        );
        issues.check(
            self.first_byte_timeout >= Duration::from_millis(1)
                && self.first_byte_timeout <= Duration::from_secs(600),
            join(path, "first_byte_timeout"),
            self.first_byte_timeout,
            "a duration from 1ms to 10m, e.g. \"30s\"",
        );
        issues.check(
            self.rpm.is_none_or(|n| n > 0),
            join(path, "rpm"),
            self.rpm,
            "a positive number of requests per minute, or leave it out for no limit",
        );
        issues.check(
            self.tpm.is_none_or(|n| n > 0),
            join(path, "tpm"),
            self.tpm,
            "a positive number of tokens per minute, or leave it out for no limit",
        );
        if let Some(scope) = &self.shared {
            issues.check(
                valid_id(scope) && (self.rpm.is_some() || self.tpm.is_some()),
                join(path, "shared"),
                scope,
                "a scope name of letters, digits, '-', '_' or '.', at most 64, on a deployment with rpm or tpm (the budgets it shares)",
            );
        }
        issues.check(
            (1..=1024).contains(&self.max_idle_connections),
            join(path, "max_idle_connections"),
            self.max_idle_connections,
            "1 to 1024 idle connections",
        );
        issues.check(
            self.retry_backoff >= Duration::from_millis(1)
                && self.retry_backoff <= Duration::from_secs(60),
            join(path, "retry_backoff"),
            self.retry_backoff,
            "a duration from 1ms to 60s, e.g. \"250ms\"",
        );
        issues.check(
            self.health_check_interval.is_zero()
                || (self.health_check_interval >= Duration::from_millis(10)
                    && self.health_check_interval <= Duration::from_secs(3600)),
            join(path, "health_check_interval"),
            self.health_check_interval,
            "\"0s\" (off) or a duration from 10ms to 1h, e.g. \"30s\"",
        );
        self.breaker.validate(&join(path, "breaker"), issues);
    }

    /// `app_url` / `app_title`: OpenRouter's attribution headers, so values a header can
    /// carry (visible ASCII), and nothing for other providers.
    fn validate_attribution(&self, path: &str, issues: &mut Issues) {
        let openrouter = ProviderChoice::parse(&self.provider)
            == Some(ProviderChoice::Http(ProviderKind::OpenRouter));
        let header_safe = |v: &str| v.bytes().all(|b| (0x20..0x7f).contains(&b));
        if let Some(url) = &self.app_url {
            let key = join(path, "app_url");
            if !openrouter {
                issues.push(key, url, "nothing: only OpenRouter reads app attribution (`HTTP-Referer`); remove the key");
            } else {
                let parsed = http::check_base_url(url);
                issues.check(
                    parsed.is_ok() && header_safe(url) && url.len() <= 2048,
                    key,
                    url,
                    format!(
                        "your app's absolute http(s) URL in visible ASCII, at most 2048 characters, e.g. https://example.com{}",
                        parsed.err().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                );
            }
        }
        if let Some(title) = &self.app_title {
            let key = join(path, "app_title");
            if !openrouter {
                issues.push(
                    key,
                    title,
                    "nothing: only OpenRouter reads app attribution (`X-Title`); remove the key",
                );
            } else {
                issues.check(
                    !title.trim().is_empty() && header_safe(title) && title.len() <= 128,
                    key,
                    title,
                    "your app's name: 1 to 128 visible ASCII characters, e.g. \"Orrery\"",
                );
            }
        }
    }

    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            valid_id(&self.id),
            join(path, "id"),
            &self.id,
            "1-64 letters, digits, `-`, `_` or `.`",
        );
        match ProviderChoice::parse(&self.provider) {
            None => issues.push(
                join(path, "provider"),
                &self.provider,
                format!("one of: {}", available_names()),
            ),
            Some(ProviderChoice::Local) => {
                issues.check(
                    local::RuleSet::parse(&self.model).is_some(),
                    join(path, "model"),
                    &self.model,
                    format!(
                        "a rule set of the local rules engine: {}",
                        local::RuleSet::model_names()
                    ),
                );
                issues.check(
                    self.base_url.is_none(),
                    join(path, "base_url"),
                    &self.base_url,
                    "nothing: the local rules engine makes no network calls",
                );
                issues.check(
                    self.api_key_env.is_none(),
                    join(path, "api_key_env"),
                    &self.api_key_env,
                    "nothing: the local rules engine needs no key",
                );
            }
            Some(_) => self.validate_http(path, issues),
        }
        issues.check(
            !self.model.trim().is_empty(),
            join(path, "model"),
            &self.model,
            "the provider's model name, e.g. rules-v1 or gpt-4o-mini",
        );
        issues.check(
            (1..=1024).contains(&self.max_concurrent),
            join(path, "max_concurrent"),
            self.max_concurrent,
            "1 to 1024 concurrent calls",
        );
        issues.check(
            self.max_queued <= 100_000,
            join(path, "max_queued"),
            self.max_queued,
            "0 to 100000 waiting requests",
        );
        issues.check(
            !self.timeout.is_zero() && self.timeout <= Duration::from_secs(3600),
            join(path, "timeout"),
            self.timeout,
            "a positive duration up to 1h, e.g. \"30s\"",
        );
        issues.check(
            self.cooldown_after_failures >= 1,
            join(path, "cooldown_after_failures"),
            self.cooldown_after_failures,
            "1 or more consecutive failures",
        );
        issues.check(
            !self.cooldown.is_zero() && self.cooldown <= Duration::from_secs(24 * 3600),
            join(path, "cooldown"),
            self.cooldown,
            "a positive duration up to 24h, e.g. \"30s\"",
        );
        self.validate_attribution(path, issues);
        self.validate_routing(path, issues);
    }

    /// The routing and accounting group of keys.
    fn validate_routing(&self, path: &str, issues: &mut Issues) {
        issues.check(
            (1..=1000).contains(&self.weight),
            join(path, "weight"),
            self.weight,
            "1 to 1000 (relative share of first picks under weighted_shuffle)",
        );
        if let Some(w) = self.context_window {
            issues.check(
                (256..=10_000_000).contains(&w),
                join(path, "context_window"),
                w,
                "256 to 10000000 tokens",
            );
        }
        for (key, price) in [
            ("price_prompt_per_mtok", self.price_prompt_per_mtok),
            ("price_completion_per_mtok", self.price_completion_per_mtok),
        ] {
            issues.check(
                !price.is_sign_negative() && price <= Decimal::from(100_000),
                join(path, key),
                price,
                "a price in USD per million tokens from 0 to 100000",
            );
        }
    }
}
