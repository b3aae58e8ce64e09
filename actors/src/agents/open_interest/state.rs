//! What an open-interest agent keeps in sled (tree `open_interest/<agent>`), so a restart
//! keeps its series, does not publish a crossing again, and counts no whale print twice.
//!
//! Keys: `series/<SYMBOL>/<time>` ([`Sample`]: the sampled and seeded open interest, oldest
//! first by key; bounded by age — the longest window and half again — and by
//! [`MAX_SAMPLES`]), `edge/<SYMBOL>/<window>` ([`EdgeState`]: the crossing in effect and the
//! last change measured), `whale/<SYMBOL>` ([`WhaleCursor`]: the time of the newest trade
//! read and the ids of the newest whale prints published).
//!
//! Owns: those keys and their bounds. Never: decides what a crossing or a whale is.

use std::collections::VecDeque;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::math::{Crossed, Sample};
use crate::clock::Millis;
use crate::store::{Record, Store, StoreError, Tree};

/// Most samples kept per symbol, whatever the windows: a day of 5-second samples.
pub const MAX_SAMPLES: usize = 17_280;
/// Whale print ids remembered per symbol (a replay older than these is also older than the
/// cursor's time, which stops it first).
pub const WHALE_IDS_KEPT: usize = 1_000;

pub fn tree_name(agent: &str) -> String {
    format!("open_interest/{agent}")
}

/// One window's trigger state for one symbol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeState {
    /// The crossing published and still in effect (`None`: armed).
    pub crossed: Option<Crossed>,
    /// The change measured by the last run, in %.
    pub change_pct: Option<Decimal>,
    /// When the last signal of this window was published.
    pub last_signal_ms: Option<Millis>,
}
impl Record for EdgeState {}

/// Where the whale reader of one symbol is on the trade tape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WhaleCursor {
    /// The venue time of the newest trade read: the next run reads trades at or after it.
    pub since_ms: Option<Millis>,
    /// The ids of the newest whale prints published (at most [`WHALE_IDS_KEPT`]): a trade
    /// at the cursor's own millisecond, or replayed after a reconnect, is not published
    /// twice.
    pub published: VecDeque<u64>,
    /// Whale prints published, ever.
    pub prints: u64,
}
impl Record for WhaleCursor {}

impl WhaleCursor {
    pub fn seen(&self, id: u64) -> bool {
        self.published.contains(&id)
    }

    pub fn remember(&mut self, id: u64) {
        self.published.push_back(id);
        while self.published.len() > WHALE_IDS_KEPT {
            self.published.pop_front();
        }
        self.prints += 1;
    }
}

/// The typed views of one agent's tree.
#[derive(Clone)]
pub struct OiState {
    samples: Tree<Sample>,
    edges: Tree<EdgeState>,
    whales: Tree<WhaleCursor>,
}

impl OiState {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        let name = tree_name(agent);
        Ok(Self {
            samples: store.tree(&name)?,
            edges: store.tree(&name)?,
            whales: store.tree(&name)?,
        })
    }

    fn sample_key(symbol: &str, time_ms: Millis) -> String {
        format!("series/{symbol}/{:013}", time_ms.max(0))
    }

    /// Adds (or replaces: one sample per millisecond) a sample of `symbol`.
    pub fn put_sample(&self, symbol: &str, s: &Sample) -> Result<(), StoreError> {
        self.samples.put(&Self::sample_key(symbol, s.time_ms), s)
    }

    /// The series of `symbol`, oldest first.
    pub fn series(&self, symbol: &str) -> Result<Vec<Sample>, StoreError> {
        self.samples
            .scan_prefix(&format!("series/{symbol}/"))
            .map(|e| e.map(|(_, v)| v))
            .collect()
    }

    /// Drops the samples of `symbol` older than `keep_ms` before its newest, then the
    /// oldest past [`MAX_SAMPLES`]; returns how many went.
    pub fn prune(&self, symbol: &str, keep_ms: i64) -> Result<usize, StoreError> {
        let keys: Vec<(String, Millis)> = self
            .samples
            .scan_prefix(&format!("series/{symbol}/"))
            .map(|e| e.map(|(k, v)| (k, v.time_ms)))
            .collect::<Result<_, _>>()?;
        let Some(newest) = keys.last().map(|(_, t)| *t) else {
            return Ok(0);
        };
        let over = keys.len().saturating_sub(MAX_SAMPLES);
        let mut removed = 0;
        for (i, (k, t)) in keys.iter().enumerate() {
            if i < over || newest - t > keep_ms {
                self.samples.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn edge(&self, symbol: &str, window: &str) -> Result<EdgeState, StoreError> {
        Ok(self
            .edges
            .get(&format!("edge/{symbol}/{window}"))?
            .unwrap_or_default())
    }

    pub fn set_edge(&self, symbol: &str, window: &str, e: &EdgeState) -> Result<(), StoreError> {
        self.edges.put(&format!("edge/{symbol}/{window}"), e)
    }

    pub fn whale(&self, symbol: &str) -> Result<WhaleCursor, StoreError> {
        Ok(self
            .whales
            .get(&format!("whale/{symbol}"))?
            .unwrap_or_default())
    }

    pub fn set_whale(&self, symbol: &str, c: &WhaleCursor) -> Result<(), StoreError> {
        self.whales.put(&format!("whale/{symbol}"), c)
    }
}
