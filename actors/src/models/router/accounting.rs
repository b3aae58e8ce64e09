//! Tokens and cost per deployment, cumulative across restarts.
//!
//! Owns: the running totals per deployment (requests answered upstream, prompt and
//! completion tokens, cost in USD as a `Decimal`), their records in the sled `meta` tree
//! under `usage/<deployment>`, and the `orrery_model_cost_usd{deployment}` gauge. Never:
//! counts cached or coalesced answers (they cost nothing upstream) or decides prices
//! (config does).
//!
//! Cost is exported as a gauge of the cumulative total rather than a `_total` counter:
//! `metrics` counters are integers and a cost is a fraction of a dollar. The gauge only
//! rises, so `increase()`-style queries still work on it, and it restarts from the value in
//! sled, not from zero.
//!
//! Records are written behind the hot path: the first answer after a quiet spell is
//! written at once, later ones by [`Accounting::persist`], which the router calls every
//! [`PERSIST_EVERY`], before [`super::Inspect`] answers, and when it stops; a deployment
//! whose record was written since the last `persist` counts as not quiet. A sled write costs more than the rest of the router's work on an answer, so
//! writing every one would cap throughput for nothing: sled itself only reaches the disk
//! every half second or so, and the engine flushes at shutdown. A crash may lose the last
//! moment of usage, never the money.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::models::types::Usage;
use crate::store::{trees, Record, Store, StoreError, Tree};

/// Key prefix of usage records in the `meta` tree.
pub const USAGE_PREFIX: &str = "usage/";

/// How often the owner calls [`Accounting::persist`]: the longest a deployment's new
/// usage waits in memory before it is written to sled.
pub const PERSIST_EVERY: Duration = Duration::from_millis(250);

/// Cumulative usage of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentUsage {
    /// Answers served upstream (not from the cache, not coalesced).
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// USD, from the deployment's configured prices.
    pub cost_usd: Decimal,
}

impl Record for DeploymentUsage {}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub prompt_per_mtok: Decimal,
    pub completion_per_mtok: Decimal,
}

impl Prices {
    /// Whether any price is configured (a deployment without prices has no cost to show).
    pub fn priced(&self) -> bool {
        !(self.prompt_per_mtok.is_zero() && self.completion_per_mtok.is_zero())
    }

    pub fn cost(&self, usage: Usage) -> Decimal {
        if !self.priced() {
            return Decimal::ZERO;
        }
        let million = Decimal::from(1_000_000u32);
        (Decimal::from(usage.prompt_tokens) * self.prompt_per_mtok
            + Decimal::from(usage.completion_tokens) * self.completion_per_mtok)
            / million
    }
}

/// Every persisted usage record, by deployment id.
pub fn usage_records(store: &Store) -> Result<Vec<(String, DeploymentUsage)>, StoreError> {
    let tree: Tree<DeploymentUsage> = store.tree(trees::META)?;
    tree.scan_prefix(USAGE_PREFIX)
        .map(|entry| entry.map(|(k, v)| (k[USAGE_PREFIX.len()..].to_string(), v)))
        .collect()
}

/// The running totals; cheap to clone.
#[derive(Clone)]
pub struct Accounting {
    inner: Arc<Inner>,
}

struct Inner {
    totals: parking_lot::Mutex<HashMap<String, Running>>,
    tree: Option<Tree<DeploymentUsage>>,
}

/// One deployment's totals and how far sled is behind them.
#[derive(Default)]
struct Running {
    usage: DeploymentUsage,
    /// Answers added since the last write.
    dirty: bool,
    /// Written since the last `persist`: further answers wait for the next one.
    recent: bool,
    /// `orrery_model_cost_usd` of this deployment, registered on its first answer.
    cost: Option<metrics::Gauge>,
}

impl Accounting {
    /// Totals loaded from `store` (an unreadable record starts that deployment from zero,
    /// with a warning), and the cost gauges set to them.
    pub fn open(store: &Store) -> Self {
        let tree = match store.tree::<DeploymentUsage>(trees::META) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "model usage accounting: sled tree unavailable; usage is not persisted");
                None
            }
        };
        let mut totals = HashMap::new();
        if let Some(tree) = &tree {
            for entry in tree.scan_prefix(USAGE_PREFIX) {
                match entry {
                    Ok((k, v)) => {
                        let id = k[USAGE_PREFIX.len()..].to_string();
                        set_gauge(&id, &v);
                        totals.insert(
                            id,
                            Running {
                                usage: v,
                                ..Running::default()
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "model usage accounting: unreadable record skipped")
                    }
                }
            }
        }
        Self {
            inner: Arc::new(Inner {
                totals: parking_lot::Mutex::new(totals),
                tree,
            }),
        }
    }

    /// Adds one upstream answer; writes it to sled now unless the deployment was written
    /// since the last [`Accounting::persist`], which then writes it.
    pub fn record(&self, deployment: &str, usage: Usage, prices: Prices) {
        // Written under the lock, so two writers never land out of order.
        let mut totals = self.inner.totals.lock();
        let t = match totals.get_mut(deployment) {
            Some(t) => t,
            None => totals.entry(deployment.to_string()).or_default(),
        };
        t.usage.requests += 1;
        t.usage.prompt_tokens += usage.prompt_tokens;
        t.usage.completion_tokens += usage.completion_tokens;
        let cost = prices.cost(usage);
        // Unpriced answers (local models, no prices configured) leave the gauge as it is.
        if !cost.is_zero() || t.cost.is_none() {
            t.usage.cost_usd += cost;
            t.cost
                .get_or_insert_with(|| cost_gauge(deployment))
                .set(t.usage.cost_usd.to_f64().unwrap_or(0.0));
        }
        if t.recent {
            t.dirty = true;
        } else {
            t.recent = true;
            self.inner.write(deployment, &t.usage);
        }
    }

    /// Writes every total that changed since its last write; call it every
    /// [`PERSIST_EVERY`].
    pub fn persist(&self) {
        self.inner.persist();
    }

    pub fn get(&self, deployment: &str) -> DeploymentUsage {
        self.inner
            .totals
            .lock()
            .get(deployment)
            .map(|t| t.usage.clone())
            .unwrap_or_default()
    }
}

impl Inner {
    fn persist(&self) {
        let mut totals = self.totals.lock();
        for (deployment, t) in totals.iter_mut() {
            // A deployment written now stays `recent` until the next call, so a steady
            // stream of answers is written once per call; a quiet one is written at once.
            t.recent = t.dirty;
            if t.dirty {
                t.dirty = false;
                self.write(deployment, &t.usage);
            }
        }
    }

    fn write(&self, deployment: &str, usage: &DeploymentUsage) {
        if let Some(tree) = &self.tree {
            if let Err(e) = tree.put(&format!("{USAGE_PREFIX}{deployment}"), usage) {
                tracing::warn!(error = %e, deployment, "model usage accounting: cannot persist usage");
            }
        }
    }
}

/// The last clone going away (router stopped, dropped or restarted) writes what is left.
impl Drop for Inner {
    fn drop(&mut self) {
        self.persist();
    }
}

fn cost_gauge(deployment: &str) -> metrics::Gauge {
    metrics::gauge!("orrery_model_cost_usd", "deployment" => deployment.to_string())
}

fn set_gauge(deployment: &str, usage: &DeploymentUsage) {
    cost_gauge(deployment).set(usage.cost_usd.to_f64().unwrap_or(0.0));
}
