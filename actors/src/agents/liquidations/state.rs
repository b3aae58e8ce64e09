//! What a liquidation agent keeps in sled (tree `liquidations/<agent>`), so a restart does
//! not reset its baseline nor publish a spike in effect again.
//!
//! Keys: `baseline/<SYMBOL>/<side>` ([`Baseline`]: the last window sums, bounded by the
//! configured baseline), `spike/<SYMBOL>/<side>` ([`SpikeState`]: whether a spike is in
//! effect and the last ratio), `meta` ([`Progress`]: the end of the last window closed).
//!
//! Owns: those keys. Never: decides what a spike is.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::math::Baseline;
use crate::clock::Millis;
use crate::exchanges::types::Side;
use crate::store::{Record, Store, StoreError, Tree};

pub fn tree_name(agent: &str) -> String {
    format!("liquidations/{agent}")
}

/// One symbol and side's trigger state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpikeState {
    /// A spike was published and the window is still above its threshold.
    pub active: bool,
    pub last_ratio: Decimal,
    pub last_signal_ms: Option<Millis>,
}
impl Record for SpikeState {}

/// How far the baseline has been built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// End of the last grid window added to the baselines.
    pub last_closed_end: Option<Millis>,
}
impl Record for Progress {}

#[derive(Clone)]
pub struct LiqState {
    baselines: Tree<Baseline>,
    spikes: Tree<SpikeState>,
    progress: Tree<Progress>,
}

impl LiqState {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        let name = tree_name(agent);
        Ok(Self {
            baselines: store.tree(&name)?,
            spikes: store.tree(&name)?,
            progress: store.tree(&name)?,
        })
    }

    pub fn baseline(&self, symbol: &str, side: Side) -> Result<Baseline, StoreError> {
        Ok(self
            .baselines
            .get(&format!("baseline/{symbol}/{}", side.as_str()))?
            .unwrap_or_default())
    }

    pub fn set_baseline(&self, symbol: &str, side: Side, b: &Baseline) -> Result<(), StoreError> {
        self.baselines
            .put(&format!("baseline/{symbol}/{}", side.as_str()), b)
    }

    /// The symbols with a baseline (every symbol seen, when the agent watches all).
    pub fn symbols(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        for e in self.baselines.scan_prefix("baseline/") {
            let (k, _) = e?;
            if let Some(sym) = k
                .strip_prefix("baseline/")
                .and_then(|r| r.split('/').next())
            {
                if out.last().is_none_or(|l| l != sym) {
                    out.push(sym.to_string());
                }
            }
        }
        out.dedup();
        Ok(out)
    }

    pub fn spike(&self, symbol: &str, side: Side) -> Result<SpikeState, StoreError> {
        Ok(self
            .spikes
            .get(&format!("spike/{symbol}/{}", side.as_str()))?
            .unwrap_or_default())
    }

    pub fn set_spike(&self, symbol: &str, side: Side, s: &SpikeState) -> Result<(), StoreError> {
        self.spikes
            .put(&format!("spike/{symbol}/{}", side.as_str()), s)
    }

    pub fn progress(&self) -> Result<Progress, StoreError> {
        Ok(self.progress.get("meta")?.unwrap_or_default())
    }

    pub fn set_progress(&self, p: &Progress) -> Result<(), StoreError> {
        self.progress.put("meta", p)
    }
}
