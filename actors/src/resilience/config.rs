//! Configuration of a target's resilience kit (one `resilience` section per model
//! deployment or venue account), its validation, and the builders that turn it into
//! runtime objects.
//!
//! Owns: the serde shapes (unknown keys rejected), defaults, `validate(path, issues)` with
//! key paths, and [`RateLimits`] (a target's named pools and per-endpoint linked draws).
//! Never: reads files or the environment — the process crate loads TOML and calls
//! `validate` on every section before any actor starts.
//!
//! ```toml
//! [exchanges.binance.resilience]
//! limits = [
//!   { name = "weight", kind = "sliding_window", limit = 6000, window = "1m" },
//!   { name = "orders", kind = "token_bucket", capacity = 50, refill_amount = 50, refill_every = "10s" },
//! ]
//! [exchanges.binance.resilience.endpoints]
//! order = { weight = 1, orders = 1 }
//! depth = { weight = 20 }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::breaker::{BreakerRecord, CircuitBreaker};
use super::fallback::{EmergencyMode, FallbackChain, FallbackLevel};
use super::limiter::{
    GcraLimiter, LeakMode, LeakyBucket, LimitError, LinkedLimit, LinkedLimitError, RateLimit,
    ServerQuota, SlidingWindow, Throttle,
};
use super::mono::SharedMonotonic;
use super::priority::{Priority, PriorityQueue, QueueBounds};
use super::retry::{BackoffKind, RetryPolicy};
use crate::clock::SharedClock;
use crate::store::Tree;
use crate::validate::{join, Issues};

/// Everything resilience-related for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Named rate-limit pools.
    pub limits: Vec<LimitConfig>,
    /// Endpoint name → (pool name → weight drawn per unit of cost). An endpoint not listed
    /// draws 1 per unit from every pool.
    pub endpoints: BTreeMap<String, BTreeMap<String, u64>>,
    pub breaker: BreakerConfig,
    pub retry: RetryConfig,
    pub queue: QueueConfig,
    pub fallback: FallbackConfig,
}

/// One rate-limit pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LimitConfig {
    /// Up to `capacity` units at once, refilled by `refill_amount` every `refill_every`.
    TokenBucket {
        name: String,
        capacity: u64,
        refill_amount: u64,
        #[serde(with = "humantime_serde")]
        refill_every: Duration,
        /// Cluster-wide scope this pool's budget is shared under (see
        /// `crate::cluster::limits`); absent: local to this process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<String>,
        /// Fraction (0, 1] of the limit this node uses alone while Redis is unreachable;
        /// default 1 / `cluster.expected_nodes` (or the most nodes seen active).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_share: Option<f64>,
        /// Units drawn from Redis per round trip and spent locally; default 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<u64>,
    },
    /// At most `limit` units in any `window`.
    SlidingWindow {
        name: String,
        limit: u64,
        #[serde(with = "humantime_serde")]
        window: Duration,
        /// `shared`, `local_share`, `batch`: as on `token_bucket`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_share: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<u64>,
    },
    /// Drains `leak_amount` every `leak_every`; `mode` meter (bursts up to capacity) or
    /// queue (no burst; capacity bounds waiting units).
    LeakyBucket {
        name: String,
        capacity: u64,
        leak_amount: u64,
        #[serde(with = "humantime_serde")]
        leak_every: Duration,
        #[serde(default)]
        mode: LeakMode,
        /// Accepted only to refuse it with a clear message: a leaky bucket cannot be
        /// shared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_share: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<u64>,
    },
    /// GCRA (governor): `burst` calls per `period`.
    Gcra {
        name: String,
        burst: u32,
        #[serde(with = "humantime_serde")]
        period: Duration,
        /// `shared`, `local_share`, `batch`: as on `token_bucket`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_share: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<u64>,
    },
}

/// How a pool is shared across the cluster (from its `shared`, `local_share`, `batch`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharing<'a> {
    pub scope: &'a str,
    pub local_share: Option<f64>,
    /// Units per Redis round trip (at least 1).
    pub batch: u64,
}

impl LimitConfig {
    /// The pool's cluster scope, if it names one.
    pub fn sharing(&self) -> Option<Sharing<'_>> {
        let (shared, local_share, batch) = self.sharing_keys();
        shared.as_deref().map(|scope| Sharing {
            scope,
            local_share: *local_share,
            batch: batch.unwrap_or(1).max(1),
        })
    }

    fn sharing_keys(&self) -> (&Option<String>, &Option<f64>, &Option<u64>) {
        match self {
            LimitConfig::TokenBucket {
                shared,
                local_share,
                batch,
                ..
            }
            | LimitConfig::SlidingWindow {
                shared,
                local_share,
                batch,
                ..
            }
            | LimitConfig::LeakyBucket {
                shared,
                local_share,
                batch,
                ..
            }
            | LimitConfig::Gcra {
                shared,
                local_share,
                batch,
                ..
            } => (shared, local_share, batch),
        }
    }

    fn validate_sharing(&self, path: &str, issues: &mut Issues) {
        let (shared, local_share, batch) = self.sharing_keys();
        let Some(scope) = shared else {
            for (key, set) in [
                ("local_share", local_share.is_some()),
                ("batch", batch.is_some()),
            ] {
                issues.check(
                    !set,
                    join(path, key),
                    "(set)",
                    "only with `shared = \"<scope>\"`: a pool that is not shared has no local share or batch",
                );
            }
            return;
        };
        issues.check(
            !scope.is_empty()
                && scope.len() <= 64
                && scope
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            join(path, "shared"),
            scope,
            "a scope name of letters, digits, '-', '_' or '.', at most 64, e.g. \"hl-ip\" or \"openai-key-1\"",
        );
        issues.check(
            !matches!(self, LimitConfig::LeakyBucket { .. }),
            join(path, "shared"),
            scope,
            "a sliding_window, token_bucket or gcra pool: a leaky bucket cannot be shared across the cluster",
        );
        if let Some(share) = local_share {
            issues.check(
                share.is_finite() && *share > 0.0 && *share <= 1.0,
                join(path, "local_share"),
                share,
                "a fraction above 0 and at most 1 (e.g. 0.34 for one node of three)",
            );
        }
        if let Some(b) = batch {
            let max = (self.max_cost() / 2).max(1);
            issues.check(
                (1..=max).contains(b),
                join(path, "batch"),
                b,
                format!("units per Redis round trip from 1 to half the pool's limit ({max})"),
            );
        }
    }

    pub fn name(&self) -> &str {
        match self {
            LimitConfig::TokenBucket { name, .. }
            | LimitConfig::SlidingWindow { name, .. }
            | LimitConfig::LeakyBucket { name, .. }
            | LimitConfig::Gcra { name, .. } => name,
        }
    }

    /// The largest cost one call may draw from this pool.
    fn max_cost(&self) -> u64 {
        match self {
            LimitConfig::TokenBucket { capacity, .. }
            | LimitConfig::LeakyBucket { capacity, .. } => *capacity,
            LimitConfig::SlidingWindow { limit, .. } => *limit,
            LimitConfig::Gcra { burst, .. } => u64::from(*burst),
        }
    }

    /// Whether the pool can give units back (see [`LinkedLimit`]).
    fn refundable(&self) -> bool {
        !matches!(self, LimitConfig::Gcra { .. })
    }

    /// The same pool at `share` (0, 1] of its capacity: limit, capacity and refill, or
    /// burst scaled down (at least 1), windows and periods kept — a node's local share of
    /// a shared pool while Redis is unreachable.
    pub fn scaled(&self, share: f64) -> LimitConfig {
        let part = |n: u64| ((n as f64 * share).floor() as u64).max(1);
        let mut scaled = self.clone();
        match &mut scaled {
            LimitConfig::TokenBucket {
                capacity,
                refill_amount,
                ..
            } => {
                *capacity = part(*capacity);
                *refill_amount = part(*refill_amount);
            }
            LimitConfig::SlidingWindow { limit, .. } => *limit = part(*limit),
            LimitConfig::LeakyBucket {
                capacity,
                leak_amount,
                ..
            } => {
                *capacity = part(*capacity);
                *leak_amount = part(*leak_amount);
            }
            LimitConfig::Gcra { burst, .. } => {
                *burst = u32::try_from(part(u64::from(*burst))).unwrap_or(u32::MAX)
            }
        }
        scaled
    }

    /// The runtime limiter.
    pub fn build(&self, clock: &SharedMonotonic) -> Arc<dyn RateLimit> {
        let now = clock.now();
        match self {
            LimitConfig::TokenBucket {
                capacity,
                refill_amount,
                refill_every,
                ..
            } => Arc::new(LeakyBucket::token_bucket(
                *capacity,
                *refill_amount,
                *refill_every,
                now,
            )),
            LimitConfig::SlidingWindow { limit, window, .. } => {
                Arc::new(SlidingWindow::new(*limit, *window))
            }
            LimitConfig::LeakyBucket {
                capacity,
                leak_amount,
                leak_every,
                mode,
                ..
            } => Arc::new(LeakyBucket::new(
                *capacity,
                *leak_amount,
                *leak_every,
                *mode,
                now,
            )),
            LimitConfig::Gcra { burst, period, .. } => Arc::new(GcraLimiter::new(*burst, *period)),
        }
    }

    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            !self.name().trim().is_empty(),
            join(path, "name"),
            self.name(),
            "a non-empty pool name",
        );
        let positive_duration = |issues: &mut Issues, key: &str, d: &Duration| {
            issues.check(
                !d.is_zero(),
                join(path, key),
                fmt_d(*d),
                "a duration above zero, e.g. \"1s\" or \"1m\"",
            );
        };
        let at_least_one = |issues: &mut Issues, key: &str, n: u64| {
            issues.check(n > 0, join(path, key), n, "an integer of at least 1");
        };
        match self {
            LimitConfig::TokenBucket {
                capacity,
                refill_amount,
                refill_every,
                ..
            } => {
                at_least_one(issues, "capacity", *capacity);
                at_least_one(issues, "refill_amount", *refill_amount);
                positive_duration(issues, "refill_every", refill_every);
            }
            LimitConfig::SlidingWindow { limit, window, .. } => {
                at_least_one(issues, "limit", *limit);
                positive_duration(issues, "window", window);
            }
            LimitConfig::LeakyBucket {
                capacity,
                leak_amount,
                leak_every,
                ..
            } => {
                at_least_one(issues, "capacity", *capacity);
                at_least_one(issues, "leak_amount", *leak_amount);
                positive_duration(issues, "leak_every", leak_every);
            }
            LimitConfig::Gcra { burst, period, .. } => {
                at_least_one(issues, "burst", u64::from(*burst));
                positive_duration(issues, "period", period);
            }
        }
        self.validate_sharing(path, issues);
    }
}

/// Circuit breaker settings; see [`super::breaker`] for the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Rolling window in which failures are counted.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failures within the window that open the breaker (0: count threshold off).
    pub failure_count: u32,
    /// Failure ratio within the window that opens the breaker, once `min_calls` were made.
    pub failure_ratio: f64,
    /// Calls in the window before the ratio applies (0: ratio threshold off).
    pub min_calls: u32,
    /// How long the breaker stays open before probing.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Cap of the open period after repeated failed probes.
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
    /// Factor applied to the open period after a failed probe.
    pub open_backoff: f64,
    /// Probe calls let through half-open; all must succeed to close.
    pub half_open_probes: u32,
    /// Adaptive thresholds from recent latency and error history; off when absent.
    pub adaptive: Option<AdaptiveConfig>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(60),
            failure_count: 5,
            failure_ratio: 0.5,
            min_calls: 20,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(300),
            open_backoff: 2.0,
            half_open_probes: 1,
            adaptive: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// A success this many times slower than the recent average counts as a failure.
    pub slow_call_factor: f64,
    /// ... but only if it also took longer than this.
    #[serde(with = "humantime_serde")]
    pub slow_call_min: Duration,
    /// Weight of the newest sample in the latency and error averages.
    pub ewma_alpha: f64,
    /// The ratio threshold is at least the usual error rate times this.
    pub ratio_headroom: f64,
    /// Highest the adapted ratio threshold may go.
    pub max_ratio: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            slow_call_factor: 3.0,
            slow_call_min: Duration::from_secs(1),
            ewma_alpha: 0.1,
            ratio_headroom: 2.0,
            max_ratio: 0.9,
        }
    }
}

impl BreakerConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.window >= Duration::from_millis(10),
            join(path, "window"),
            fmt_d(self.window),
            "at least 10ms",
        );
        issues.check(
            self.failure_ratio > 0.0 && self.failure_ratio <= 1.0,
            join(path, "failure_ratio"),
            self.failure_ratio,
            "a ratio above 0 and at most 1",
        );
        issues.check(
            !self.enabled || self.failure_count > 0 || self.min_calls > 0,
            join(path, "failure_count"),
            self.failure_count,
            "at least 1, or min_calls at least 1 (otherwise the breaker can never open)",
        );
        issues.check(
            !self.open_for.is_zero(),
            join(path, "open_for"),
            fmt_d(self.open_for),
            "a duration above zero",
        );
        issues.check(
            self.max_open_for >= self.open_for,
            join(path, "max_open_for"),
            fmt_d(self.max_open_for),
            format!("at least open_for ({})", fmt_d(self.open_for)),
        );
        issues.check(
            self.open_backoff.is_finite() && self.open_backoff >= 1.0,
            join(path, "open_backoff"),
            self.open_backoff,
            "a factor of at least 1",
        );
        issues.check(
            self.half_open_probes >= 1,
            join(path, "half_open_probes"),
            self.half_open_probes,
            "an integer of at least 1",
        );
        if let Some(a) = &self.adaptive {
            let p = join(path, "adaptive");
            issues.check(
                a.slow_call_factor.is_finite() && a.slow_call_factor > 1.0,
                join(&p, "slow_call_factor"),
                a.slow_call_factor,
                "a factor above 1",
            );
            issues.check(
                a.ewma_alpha > 0.0 && a.ewma_alpha <= 1.0,
                join(&p, "ewma_alpha"),
                a.ewma_alpha,
                "a weight above 0 and at most 1",
            );
            issues.check(
                a.ratio_headroom.is_finite() && a.ratio_headroom >= 1.0,
                join(&p, "ratio_headroom"),
                a.ratio_headroom,
                "a factor of at least 1",
            );
            issues.check(
                a.max_ratio > 0.0 && a.max_ratio <= 1.0,
                join(&p, "max_ratio"),
                a.max_ratio,
                "a ratio above 0 and at most 1",
            );
        }
    }
}

/// Backoff between retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    pub kind: BackoffKind,
    /// First wait (exponential, fibonacci) or step (linear).
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Growth per retry (exponential only).
    pub multiplier: f64,
    /// Longest wait.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// Fraction by which a wait may be shortened at random (0: none, 1: full jitter).
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            kind: BackoffKind::Exponential,
            base: Duration::from_millis(200),
            multiplier: 2.0,
            cap: Duration::from_secs(10),
            jitter: 0.5,
        }
    }
}

/// Retries allowed for one error class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRetry {
    pub max_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitedRetry {
    pub max_retries: u32,
    /// Longest `Retry-After` honoured; a server asking for more gets this.
    #[serde(with = "humantime_serde")]
    pub retry_after_cap: Duration,
}

impl Default for RateLimitedRetry {
    fn default() -> Self {
        Self {
            max_retries: 3,
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

/// Retry policy. Auth and bad-request errors are never retried and have no settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub backoff: BackoffConfig,
    pub timeout: ClassRetry,
    pub unavailable: ClassRetry,
    pub rate_limited: RateLimitedRetry,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff: BackoffConfig::default(),
            timeout: ClassRetry { max_retries: 2 },
            unavailable: ClassRetry { max_retries: 3 },
            rate_limited: RateLimitedRetry::default(),
        }
    }
}

impl RetryConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            (1..=100).contains(&self.max_attempts),
            join(path, "max_attempts"),
            self.max_attempts,
            "an integer from 1 to 100",
        );
        let b = &self.backoff;
        let bp = join(path, "backoff");
        issues.check(
            !b.base.is_zero(),
            join(&bp, "base"),
            fmt_d(b.base),
            "a duration above zero",
        );
        issues.check(
            b.multiplier.is_finite() && b.multiplier >= 1.0,
            join(&bp, "multiplier"),
            b.multiplier,
            "a factor of at least 1",
        );
        issues.check(
            b.cap >= b.base,
            join(&bp, "cap"),
            fmt_d(b.cap),
            format!("at least base ({})", fmt_d(b.base)),
        );
        issues.check(
            (0.0..=1.0).contains(&b.jitter),
            join(&bp, "jitter"),
            b.jitter,
            "a fraction from 0 to 1",
        );
        for (key, n) in [
            ("timeout", self.timeout.max_retries),
            ("unavailable", self.unavailable.max_retries),
            ("rate_limited", self.rate_limited.max_retries),
        ] {
            issues.check(
                n <= 100,
                join(&join(path, key), "max_retries"),
                n,
                "at most 100",
            );
        }
        issues.check(
            !self.rate_limited.retry_after_cap.is_zero(),
            join(&join(path, "rate_limited"), "retry_after_cap"),
            fmt_d(self.rate_limited.retry_after_cap),
            "a duration above zero",
        );
    }
}

/// Priority queue bounds and aging, and how many calls the target runs at once (more wait
/// in the queue, best priority first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    /// Wait that promotes an item one level; absent for strict priority.
    #[serde(with = "humantime_serde")]
    pub aging_step: Option<Duration>,
    /// Calls in flight at the target at once; the rest wait in the queue.
    pub max_in_flight: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            high: 1024,
            medium: 1024,
            low: 4096,
            aging_step: Some(Duration::from_secs(2)),
            max_in_flight: 16,
        }
    }
}

impl QueueConfig {
    pub fn bounds(&self) -> QueueBounds {
        QueueBounds {
            capacity: [self.high, self.medium, self.low],
            aging_step: self.aging_step,
        }
    }

    pub fn validate(&self, path: &str, issues: &mut Issues) {
        for (p, n) in Priority::ALL.iter().zip([self.high, self.medium, self.low]) {
            issues.check(
                (1..=1_000_000).contains(&n),
                join(path, p.label()),
                n,
                "an integer from 1 to 1000000",
            );
        }
        if let Some(step) = self.aging_step {
            issues.check(
                !step.is_zero(),
                join(path, "aging_step"),
                fmt_d(step),
                "a duration above zero, or leave it out for strict priority",
            );
        }
        issues.check(
            (1..=10_000).contains(&self.max_in_flight),
            join(path, "max_in_flight"),
            self.max_in_flight,
            "an integer from 1 to 10000",
        );
    }
}

/// Fallback levels for reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    /// Deepest level a read may fall back to.
    pub max_level: FallbackLevel,
    /// How old a cached value may be and still be served.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Most values the cache holds.
    pub cache_capacity: u64,
    /// Mode the engine moves to when a read falls back to its emergency default.
    pub emergency_mode: EmergencyMode,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            max_level: FallbackLevel::Full,
            cache_ttl: Duration::from_secs(5),
            cache_capacity: 10_000,
            emergency_mode: EmergencyMode::Halted,
        }
    }
}

impl FallbackConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            !self.cache_ttl.is_zero(),
            join(path, "cache_ttl"),
            fmt_d(self.cache_ttl),
            "a duration above zero",
        );
        issues.check(
            self.cache_capacity > 0,
            join(path, "cache_capacity"),
            self.cache_capacity,
            "an integer of at least 1",
        );
    }
}

impl ResilienceConfig {
    /// Pushes one issue per bad value, with its key path under `path`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        let mut names: HashMap<&str, &LimitConfig> = HashMap::new();
        for (i, limit) in self.limits.iter().enumerate() {
            let p = format!("{}[{i}]", join(path, "limits"));
            limit.validate(&p, issues);
            if names.insert(limit.name(), limit).is_some() {
                issues.push(
                    join(&p, "name"),
                    limit.name(),
                    "a name not used by another pool of this target",
                );
            }
        }
        let gcra_count = |draws: &mut dyn Iterator<Item = &LimitConfig>| {
            draws.filter(|l| !l.refundable()).count()
        };
        let all_gcra = gcra_count(&mut self.limits.iter());
        issues.check(
            all_gcra <= 1,
            join(path, "limits"),
            format!("{all_gcra} gcra pools"),
            "at most one gcra pool drawn by a call (calls to endpoints not listed draw from every pool); use token_bucket or sliding_window for the others, or list every endpoint",
        );
        for (endpoint, weights) in &self.endpoints {
            let ep = join(&join(path, "endpoints"), endpoint);
            issues.check(
                !weights.is_empty(),
                &ep,
                "{}",
                "at least one `pool = weight` entry",
            );
            let mut gcra = 0;
            for (pool, weight) in weights {
                match names.get(pool.as_str()) {
                    None => issues.push(
                        join(&ep, pool),
                        pool,
                        format!(
                            "a pool named in limits: {}",
                            self.limits
                                .iter()
                                .map(|l| l.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Some(l) => {
                        gcra += usize::from(!l.refundable() && *weight > 0);
                        issues.check(
                            *weight <= l.max_cost(),
                            join(&ep, pool),
                            weight,
                            format!(
                                "at most the pool's capacity ({}), or the call could never pass",
                                l.max_cost()
                            ),
                        );
                    }
                }
            }
            issues.check(
                gcra <= 1,
                &ep,
                format!("{gcra} gcra pools"),
                "at most one gcra pool per endpoint",
            );
        }
        self.breaker.validate(&join(path, "breaker"), issues);
        self.retry.validate(&join(path, "retry"), issues);
        self.queue.validate(&join(path, "queue"), issues);
        self.fallback.validate(&join(path, "fallback"), issues);
    }
}

/// One target's runtime kit, built from its [`ResilienceConfig`]: what a model pool or an
/// exchange connector holds for its target.
#[derive(Debug)]
pub struct TargetResilience {
    pub limits: RateLimits,
    pub breaker: CircuitBreaker,
    pub retry: RetryPolicy,
}

impl ResilienceConfig {
    /// Builds the rate limits, breaker (restored from `breakers` when given) and retry
    /// policy of `target`. Call on a validated config.
    pub fn build(
        &self,
        target: &str,
        mono: SharedMonotonic,
        wall: SharedClock,
        breakers: Option<Tree<BreakerRecord>>,
    ) -> Result<TargetResilience, LinkedLimitError> {
        Ok(TargetResilience {
            limits: RateLimits::build(target, self, mono)?,
            breaker: CircuitBreaker::new(target, self.breaker.clone(), wall, breakers),
            retry: RetryPolicy::new(target, self.retry.clone()),
        })
    }

    /// The bounded priority queue of this target's pending work.
    pub fn priority_queue<T>(&self, name: &str, clock: SharedMonotonic) -> PriorityQueue<T> {
        PriorityQueue::new(name, self.queue.bounds(), clock)
    }

    /// The fallback chain of this target's reads of `V`.
    pub fn fallback<V: Clone + Send + Sync + 'static>(
        &self,
        target: &str,
        clock: SharedMonotonic,
    ) -> FallbackChain<V> {
        FallbackChain::new(target, self.fallback.clone(), clock)
    }
}

fn fmt_d(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

/// A budget kept outside this process that a pool also draws from: one more member of
/// each of its linked draws, after the pool's local view. The cluster's shared budgets
/// (`crate::cluster::limits`) implement it, so the kit never depends on the cluster.
pub trait SharedBudget: RateLimit {
    /// Wakes `throttle` when a draw of this budget lands (its waiting head looks again).
    fn wake_on_draw(&self, throttle: &Arc<Throttle>);
}

/// Where the pools that name a `shared` scope find their budget.
pub trait SharedBudgets {
    /// The budget of `limit`'s scope; `Ok(None)` when it names none. An error names why
    /// the scope cannot be shared (a kind that cannot, settings that differ from another
    /// pool of the scope).
    fn budget(
        &self,
        limit: &LimitConfig,
        clock: &SharedMonotonic,
    ) -> Result<Option<Arc<dyn SharedBudget>>, String>;
}

/// A target's rate-limit pools and the fair, linked draw of each endpoint.
///
/// Each endpoint has its own wait queue (FIFO within a priority), so a call waiting for
/// the order pool never blocks market data that only draws request weight.
#[derive(Debug)]
pub struct RateLimits {
    target: String,
    pools: BTreeMap<String, Arc<dyn RateLimit>>,
    endpoints: HashMap<String, Arc<Throttle>>,
    /// Endpoints not configured: 1 per unit from every pool.
    default: Option<Arc<Throttle>>,
    clock: SharedMonotonic,
}

impl RateLimits {
    /// Builds the pools and endpoint draws of a validated config, every pool local.
    pub fn build(
        target: &str,
        config: &ResilienceConfig,
        clock: SharedMonotonic,
    ) -> Result<Self, LinkedLimitError> {
        Self::build_shared(target, config, clock, None)
    }

    /// As [`RateLimits::build`]; a pool that names a `shared` scope also draws from the
    /// cluster's budget of that scope through `cluster` (one more member of each linked
    /// draw, after the pool's local view). Without `cluster` such a pool is local, and
    /// says so once.
    pub fn build_shared(
        target: &str,
        config: &ResilienceConfig,
        clock: SharedMonotonic,
        cluster: Option<&dyn SharedBudgets>,
    ) -> Result<Self, LinkedLimitError> {
        let mut shared: BTreeMap<String, Arc<dyn SharedBudget>> = BTreeMap::new();
        for l in &config.limits {
            let Some(sharing) = l.sharing() else { continue };
            match cluster {
                Some(c) => {
                    let pool = c.budget(l, &clock).map_err(LinkedLimitError::Shared)?;
                    if let Some(pool) = pool {
                        shared.insert(l.name().to_string(), pool);
                    }
                }
                None => tracing::info!(
                    target,
                    pool = l.name(),
                    scope = sharing.scope,
                    "rate-limit pool names a shared scope but there is no [cluster] section: it limits this process only"
                ),
            }
        }
        let pools: BTreeMap<String, (Arc<dyn RateLimit>, bool)> = config
            .limits
            .iter()
            .map(|l| (l.name().to_string(), (l.build(&clock), l.refundable())))
            .collect();
        // A pool's members: its local view, then its cluster budget when shared.
        let members_of = |pool: &str, l: &Arc<dyn RateLimit>, w: u64, r: bool| {
            let mut m = vec![(l.clone(), w, r)];
            if let Some(s) = shared.get(pool) {
                m.push((s.clone() as Arc<dyn RateLimit>, w, true));
            }
            m
        };
        let throttle = |name: String, members: Vec<(Arc<dyn RateLimit>, u64, bool)>| {
            LinkedLimit::new(members)
                .map(|linked| Arc::new(Throttle::new(name, Arc::new(linked), clock.clone())))
        };
        let mut endpoints = HashMap::new();
        let mut wake = Vec::new();
        for (endpoint, weights) in &config.endpoints {
            let members = weights
                .iter()
                .filter_map(|(pool, w)| pools.get(pool).map(|(l, r)| members_of(pool, l, *w, *r)))
                .flatten()
                .collect();
            let t = throttle(format!("{target}/{endpoint}"), members)?;
            wake.extend(
                weights
                    .keys()
                    .filter_map(|p| shared.get(p))
                    .map(|s| (s.clone(), t.clone())),
            );
            endpoints.insert(endpoint.clone(), t);
        }
        let default = if pools.is_empty() {
            None
        } else {
            let members = pools
                .iter()
                .flat_map(|(name, (l, r))| members_of(name, l, 1, *r))
                .collect();
            let t = throttle(format!("{target}/*"), members)?;
            wake.extend(shared.values().map(|s| (s.clone(), t.clone())));
            Some(t)
        };
        for (pool, t) in wake {
            pool.wake_on_draw(&t);
        }
        Ok(Self {
            target: target.to_string(),
            pools: pools.into_iter().map(|(k, (l, _))| (k, l)).collect(),
            endpoints,
            default,
            clock,
        })
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// Waits fairly until a call to `endpoint` costing `cost` units may go, or fails when
    /// that would pass `deadline`. With no pools configured, returns at once.
    pub async fn acquire(
        &self,
        endpoint: &str,
        cost: u64,
        priority: Priority,
        deadline: Instant,
    ) -> Result<Duration, LimitError> {
        match self.endpoints.get(endpoint).or(self.default.as_ref()) {
            Some(throttle) => throttle.acquire(cost, priority, deadline).await,
            None => Ok(Duration::ZERO),
        }
    }

    /// Applies what the server reported about pool `pool`. Unknown pools are ignored
    /// (the provider may report limits the operator did not configure).
    pub fn observe(&self, pool: &str, quota: ServerQuota) {
        let Some(limiter) = self.pools.get(pool) else {
            return;
        };
        let now = self.clock.now();
        limiter.observe(quota, now);
        if let Some(h) = limiter.headroom(now) {
            metrics::gauge!(super::limiter::METRIC_HEADROOM, "limit" => format!("{}/{pool}", self.target))
                .set(h as f64);
        }
        // Capacity may have grown (or a gate opened): let every waiting head look again.
        for t in self.endpoints.values().chain(self.default.as_ref()) {
            t.nudge();
        }
    }

    /// A pool by name.
    pub fn pool(&self, name: &str) -> Option<&Arc<dyn RateLimit>> {
        self.pools.get(name)
    }

    /// Units pool `pool` could admit now; `None` for an unknown pool or one that cannot
    /// tell without consuming capacity.
    pub fn headroom(&self, pool: &str) -> Option<u64> {
        self.pools.get(pool)?.headroom(self.clock.now())
    }
}

#[cfg(test)]
mod tests;
