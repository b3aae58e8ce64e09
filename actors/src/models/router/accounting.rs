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
//! Records are written with a plain `put` (sled flushes within a second or so, and the
//! engine flushes at shutdown): a crash may lose the last moment of usage, never the money.

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::models::types::Usage;
use crate::store::{trees, Record, Store, StoreError, Tree};

/// Key prefix of usage records in the `meta` tree.
pub const USAGE_PREFIX: &str = "usage/";

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
    pub fn cost(&self, usage: Usage) -> Decimal {
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
    totals: Arc<parking_lot::Mutex<HashMap<String, DeploymentUsage>>>,
    tree: Option<Tree<DeploymentUsage>>,
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
                        totals.insert(id, v);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "model usage accounting: unreadable record skipped")
                    }
                }
            }
        }
        Self {
            totals: Arc::new(parking_lot::Mutex::new(totals)),
            tree,
        }
    }

    /// Adds one upstream answer.
    pub fn record(&self, deployment: &str, usage: Usage, prices: Prices) {
        let updated = {
            let mut totals = self.totals.lock();
            let t = totals.entry(deployment.to_string()).or_default();
            t.requests += 1;
            t.prompt_tokens += usage.prompt_tokens;
            t.completion_tokens += usage.completion_tokens;
            t.cost_usd += prices.cost(usage);
            t.clone()
        };
        set_gauge(deployment, &updated);
        if let Some(tree) = &self.tree {
            if let Err(e) = tree.put(&format!("{USAGE_PREFIX}{deployment}"), &updated) {
                tracing::warn!(error = %e, deployment, "model usage accounting: cannot persist usage");
            }
        }
    }

    pub fn get(&self, deployment: &str) -> DeploymentUsage {
        self.totals
            .lock()
            .get(deployment)
            .cloned()
            .unwrap_or_default()
    }
}

fn set_gauge(deployment: &str, usage: &DeploymentUsage) {
    metrics::gauge!("orrery_model_cost_usd", "deployment" => deployment.to_string())
        .set(usage.cost_usd.to_f64().unwrap_or(0.0));
}
