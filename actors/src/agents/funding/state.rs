//! What a funding agent keeps in sled (tree `funding/<agent>`), so a restart neither
//! publishes a state again nor refetches the settled history before the next settlement.
//!
//! Keys: `symbol/<venue>/<SYMBOL>` ([`SymbolState`]: the state last published, the cached
//! settled history and the settlement it covers, the venue's funding interval, the last
//! reading). Owns: those keys. Never: decides a state or when to refetch.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::stats::FundingState;
use crate::clock::Millis;
use crate::exchanges::derivatives::FundingRate;
use crate::store::{Record, Store, StoreError, Tree};

/// The tree of agent `name`.
pub fn tree_name(agent: &str) -> String {
    format!("funding/{agent}")
}

/// The settled rates, cached until the next settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedHistory {
    /// Oldest first.
    pub rates: Vec<FundingRate>,
    /// How many were asked for (a changed `history` refetches).
    pub asked: usize,
    /// The settlement that was next when they were read: once a reading names a later
    /// one, a settlement has happened and the cache is refetched.
    pub next_funding_ms: Millis,
    pub fetched_ms: Millis,
}

/// The last reading of a symbol, for the journal and an operator's look at sled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub annualized_pct: Decimal,
    pub zscore: Option<f64>,
    pub interval_hours: u32,
    /// `stream` (the venue's fresh mark-price stream) or `rest`.
    pub source: String,
    pub time_ms: Millis,
}

/// One venue's symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolState {
    /// The state of the last signal published (`None`: none yet, i.e. normal so far).
    pub published: Option<FundingState>,
    pub published_ms: Option<Millis>,
    pub history: Option<CachedHistory>,
    /// The venue's funding interval, from its last REST snapshot.
    pub interval_hours: Option<u32>,
    pub last: Option<Reading>,
}
impl Record for SymbolState {}

impl SymbolState {
    fn empty() -> Self {
        Self {
            published: None,
            published_ms: None,
            history: None,
            interval_hours: None,
            last: None,
        }
    }

    /// The state a new reading is compared with: the last one published, else normal.
    pub fn current(&self) -> FundingState {
        self.published.unwrap_or(FundingState::Normal)
    }
}

/// The typed view of one agent's tree.
#[derive(Clone)]
pub struct FundingAgentState {
    symbols: Tree<SymbolState>,
}

fn key(venue: &str, symbol: &str) -> String {
    format!("symbol/{venue}/{symbol}")
}

impl FundingAgentState {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        Ok(Self {
            symbols: store.tree(&tree_name(agent))?,
        })
    }

    pub fn get(&self, venue: &str, symbol: &str) -> Result<SymbolState, StoreError> {
        Ok(self
            .symbols
            .get(&key(venue, symbol))?
            .unwrap_or_else(SymbolState::empty))
    }

    pub fn set(&self, venue: &str, symbol: &str, s: &SymbolState) -> Result<(), StoreError> {
        self.symbols.put(&key(venue, symbol), s)
    }

    /// [`Self::set`], flushed before it returns: used when a signal was published, so a
    /// crash right after cannot publish the same state again.
    pub fn set_durable(
        &self,
        venue: &str,
        symbol: &str,
        s: &SymbolState,
    ) -> Result<(), StoreError> {
        self.symbols.put_durable_blocking(&key(venue, symbol), s)
    }

    /// Every symbol kept: (venue, symbol, state).
    pub fn all(&self) -> Result<Vec<(String, String, SymbolState)>, StoreError> {
        self.symbols
            .scan_prefix("symbol/")
            .map(|e| {
                e.map(|(k, v)| {
                    let rest = k.trim_start_matches("symbol/");
                    let (venue, symbol) = rest.split_once('/').unwrap_or((rest, ""));
                    (venue.to_string(), symbol.to_string(), v)
                })
            })
            .collect()
    }
}
