//! Shared rate-limit budgets: limiter pools that name a `shared` scope are enforced across
//! every node of the cluster.
//!
//! Owns: [`SharedLimits`] (the process's handle: one [`SharedPool`] per scope, the watch on
//! Redis's health that switches pools between the cluster budget and their local share,
//! and [`SharedLimits::snapshot`] for status), the scripts ([`script`]) and the node-side
//! pool ([`pool`]). Never: decides which calls draw what (the target's
//! [`RateLimits`](crate::resilience::RateLimits) does, with the shared pool as one more
//! member of each endpoint's linked limit) and never exists in a process without
//! `[cluster]` (a `shared` pool there is a local pool, logged once at build).
//!
//! ```toml
//! [exchanges.venues.hl.resilience]
//! limits = [
//!   # Every node on this IP draws Hyperliquid weight from one budget; 20 units per round
//!   # trip; a node that cannot reach Redis uses a third of the limit on its own.
//!   { name = "weight", kind = "sliding_window", limit = 1200, window = "1m",
//!     shared = "hl-ip", local_share = 0.34, batch = 20 },
//! ]
//! ```
//!
//! Fallback: on [`ClusterError::Unreachable`] (a draw failed, or the link's health went
//! down) every pool limits the node to `local_share × limit` locally (default: one over
//! the larger of `cluster.expected_nodes` and the most nodes seen active), logs a `warn`
//! once and sets `orrery_cluster_limit_fallback{scope}` to 1. While any pool is in
//! fallback the handle pings Redis every half second; when Redis answers, each pool
//! carries what it spent meanwhile into Redis and rejoins (`info` line, gauge 0).

pub mod pool;
pub mod script;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

pub use pool::{Fallback, PoolMode, SharedLimit, SharedPool, SharedPoolState};
pub use script::{BudgetKind, RemoteBudget, Verdict};

use super::link::{ClusterError, RedisHealth, RedisLink};
use crate::resilience::config::{LimitConfig, SharedBudget, SharedBudgets};
use crate::resilience::mono::SharedMonotonic;

/// Gauge: 1 while the scope's pool uses this node's local share (Redis unreachable).
pub const METRIC_FALLBACK: &str = "orrery_cluster_limit_fallback";
/// Counter: draws by scope and outcome (admitted, waited, fallback, error).
pub const METRIC_DRAWS: &str = "orrery_cluster_limit_draws_total";
/// Histogram: latency of one draw from Redis.
pub const METRIC_DRAW_LATENCY: &str = "orrery_cluster_limit_draw_seconds";
/// Gauge: units this node drew and has not spent yet, by scope.
pub const METRIC_RESERVED: &str = "orrery_cluster_limit_reserved_units";

/// How often Redis is pinged while a pool is in fallback.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// HELP texts of the shared limits' metrics.
pub fn describe() {
    metrics::describe_gauge!(
        METRIC_FALLBACK,
        "1 while this node limits a shared scope to its local share because Redis is unreachable, 0 while it draws from the cluster budget."
    );
    metrics::describe_counter!(
        METRIC_DRAWS,
        "Draws from a shared rate-limit scope by outcome: admitted and waited (Redis answered), fallback (served by the local share), error (Redis unreachable or refused)."
    );
    metrics::describe_histogram!(
        METRIC_DRAW_LATENCY,
        metrics::Unit::Seconds,
        "Latency of one draw from a shared rate-limit scope in Redis (one script round trip)."
    );
    metrics::describe_gauge!(
        METRIC_RESERVED,
        "Units of a shared scope this node reserved in its last batch and has not spent."
    );
}

/// Why a shared pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedScopeError {
    #[error("shared scope `{scope}`: pool `{pool}` is a {kind}; only sliding_window, token_bucket and gcra pools can be shared")]
    Unsupported {
        scope: String,
        pool: String,
        kind: &'static str,
    },
    #[error("shared scope `{scope}` is named by pools with different settings ({first} and {second}); every pool naming one scope must have the same kind, limit, window, batch and local_share")]
    Mismatch {
        scope: String,
        first: String,
        second: String,
    },
}

/// The settings a scope is registered with (two pools naming one scope must agree).
#[derive(Debug, Clone)]
struct Registered {
    kind: BudgetKind,
    batch: u64,
    local_share: Option<f64>,
    pool: Arc<SharedPool>,
}

struct Inner {
    link: RedisLink,
    expected_nodes: u32,
    pools: Mutex<BTreeMap<String, Registered>>,
    runtime: tokio::runtime::Handle,
}

/// The process's shared limits; cheap to clone.
#[derive(Clone)]
pub struct SharedLimits {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("node", &self.inner.link.node_id())
            .field(
                "scopes",
                &self.inner.pools.lock().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The cluster budget of a pool's algorithm (a leaky bucket cannot be shared).
fn budget_of(limit: &LimitConfig) -> Option<BudgetKind> {
    match *limit {
        LimitConfig::SlidingWindow { limit, window, .. } => {
            Some(BudgetKind::SlidingWindow { limit, window })
        }
        LimitConfig::TokenBucket {
            capacity,
            refill_amount,
            refill_every,
            ..
        } => Some(BudgetKind::Gcra {
            burst: capacity,
            interval: refill_every / u32::try_from(refill_amount.max(1)).unwrap_or(u32::MAX),
        }),
        LimitConfig::Gcra { burst, period, .. } => Some(BudgetKind::Gcra {
            burst: u64::from(burst),
            interval: period / burst.max(1),
        }),
        LimitConfig::LeakyBucket { .. } => None,
    }
}

/// How long units drawn at once may be spent locally, and how much longer a sliding-window
/// entry counts: a tenth of the window, from 500 ms to 1 s, at most half the window.
///
/// The hold also covers the time from admission to the request's arrival at the venue
/// (guard, connection, a busy machine): a request that arrives later than the hold after
/// its draw may meet a venue window that Redis no longer counts it in. On a 1 min window
/// the hold costs 1/61 of the budget.
pub fn hold_of(kind: BudgetKind) -> Duration {
    let w = kind.window();
    (w / 10)
        .clamp(Duration::from_millis(500), Duration::from_secs(1))
        .min(w / 2)
}

impl SharedLimits {
    /// The handle over `link`. Call inside a tokio runtime: it starts the task that
    /// follows Redis's health (it ends when the last clone is dropped).
    pub fn new(link: RedisLink, expected_nodes: u32) -> Self {
        let runtime = tokio::runtime::Handle::current();
        let inner = Arc::new(Inner {
            link: link.clone(),
            expected_nodes: expected_nodes.max(1),
            pools: Mutex::new(BTreeMap::new()),
            runtime: runtime.clone(),
        });
        runtime.spawn(follow_health(link, Arc::downgrade(&inner)));
        Self { inner }
    }

    pub fn link(&self) -> &RedisLink {
        &self.inner.link
    }

    /// The shared pool of `limit`'s scope (`None` if the pool names no scope), created
    /// on first use; later pools naming the same scope get the same one.
    pub fn pool(
        &self,
        limit: &LimitConfig,
        clock: &SharedMonotonic,
    ) -> Result<Option<Arc<SharedPool>>, SharedScopeError> {
        let Some(sharing) = limit.sharing() else {
            return Ok(None);
        };
        let Some(kind) = budget_of(limit) else {
            return Err(SharedScopeError::Unsupported {
                scope: sharing.scope.to_string(),
                pool: limit.name().to_string(),
                kind: "leaky_bucket",
            });
        };
        let mut pools = self.inner.pools.lock();
        if let Some(r) = pools.get(sharing.scope) {
            if r.kind != kind || r.batch != sharing.batch || r.local_share != sharing.local_share {
                return Err(SharedScopeError::Mismatch {
                    scope: sharing.scope.to_string(),
                    first: format!(
                        "{:?}, batch {}, local_share {:?}",
                        r.kind, r.batch, r.local_share
                    ),
                    second: format!(
                        "{kind:?}, batch {}, local_share {:?}",
                        sharing.batch, sharing.local_share
                    ),
                });
            }
            return Ok(Some(r.pool.clone()));
        }
        let hold = hold_of(kind);
        let pool = Arc::new(SharedPool::new(
            RemoteBudget::new(self.inner.link.clone(), sharing.scope, kind, hold),
            sharing.batch,
            hold,
            Fallback {
                local_share: sharing.local_share,
                expected_nodes: self.inner.expected_nodes,
            },
            limit.clone(),
            clock.clone(),
            self.inner.runtime.clone(),
        ));
        metrics::gauge!(METRIC_FALLBACK, "scope" => sharing.scope.to_string()).set(0.0);
        tracing::info!(
            scope = sharing.scope,
            pool = limit.name(),
            kind = kind.label(),
            limit = kind.limit(),
            batch = sharing.batch,
            node = self.inner.link.node_id(),
            "shared rate limit: pool draws from the cluster budget"
        );
        pools.insert(
            sharing.scope.to_string(),
            Registered {
                kind,
                batch: sharing.batch,
                local_share: sharing.local_share,
                pool: pool.clone(),
            },
        );
        // A Redis already known down: start on the local share.
        if let RedisHealth::Down { reason, .. } = self.inner.link.health() {
            drop(pools);
            pool.enter_fallback(&reason);
        }
        Ok(Some(pool))
    }

    /// Every scope this node draws from, for status.
    pub fn snapshot(&self) -> Vec<SharedPoolState> {
        self.pools().iter().map(|p| p.snapshot()).collect()
    }

    fn pools(&self) -> Vec<Arc<SharedPool>> {
        pools_of(&self.inner)
    }

    /// Gives every unspent reservation back (at shutdown).
    pub async fn release(&self) {
        for p in self.pools() {
            p.release().await;
        }
    }
}

/// The resilience kit's view: a pool naming a scope draws from this node's pool of it.
impl SharedBudgets for SharedLimits {
    fn budget(
        &self,
        limit: &LimitConfig,
        clock: &SharedMonotonic,
    ) -> Result<Option<Arc<dyn SharedBudget>>, String> {
        self.pool(limit, clock)
            .map(|pool| pool.map(|p| Arc::new(SharedLimit(p)) as Arc<dyn SharedBudget>))
            .map_err(|e| e.to_string())
    }
}

fn pools_of(inner: &Inner) -> Vec<Arc<SharedPool>> {
    inner
        .pools
        .lock()
        .values()
        .map(|r| r.pool.clone())
        .collect()
}

/// Switches pools to fallback when Redis goes down, probes while any is in fallback, and
/// lets them rejoin once Redis answers.
async fn follow_health(link: RedisLink, inner: Weak<Inner>) {
    let mut health = link.watch_health();
    loop {
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let pools = pools_of(&strong);
        drop(strong);
        let now = link.health();
        match &now {
            RedisHealth::Down { reason, .. } => {
                for p in &pools {
                    p.enter_fallback(reason);
                }
            }
            RedisHealth::Up => {
                for p in pools.iter().filter(|p| p.mode() == PoolMode::Fallback) {
                    p.rejoin().await;
                }
            }
            RedisHealth::Unknown => {}
        }
        let falling_back = pools.iter().any(|p| p.mode() == PoolMode::Fallback);
        if falling_back && !matches!(now, RedisHealth::Up) {
            // The answer (or its failure) moves the health; the loop wakes on it.
            let _: Result<Duration, ClusterError> = link.ping().await;
        }
    }
}
