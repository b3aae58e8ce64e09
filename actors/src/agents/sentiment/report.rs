//! What `orrery sentiment` and `GET /api/sentiment` show: per sentiment agent, the index
//! of each symbol now (decayed to the time of asking), its last signal, the sources' poll
//! state, and the last scored headlines.
//!
//! Owns: the report's shape and reading it from the agent's tree. Never: writes.

use serde::{Deserialize, Serialize};

use super::config::SentimentAgentConfig;
use super::index::LastSignal;
use super::state::{ScoredHeadline, SentimentState};
use crate::clock::Millis;
use crate::store::{Store, StoreError};

/// One agent's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentReport {
    pub agent: String,
    pub symbols: Vec<SymbolIndex>,
    pub sources: Vec<SourceView>,
    /// Newest first.
    pub headlines: Vec<ScoredHeadline>,
}

/// One symbol's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolIndex {
    pub symbol: String,
    /// The index now; `None` before its first headline.
    pub index: Option<f64>,
    /// When a headline last moved it, Unix ms.
    pub updated_ms: Option<Millis>,
    pub last_signal: Option<LastSignal>,
}

/// One source's poll state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceView {
    pub name: String,
    pub kind: String,
    /// Without its query string (it may carry a key).
    pub url: String,
    pub last_poll_ms: Option<Millis>,
    pub last_ok_ms: Option<Millis>,
    pub last_error: Option<String>,
    pub items: u64,
    pub not_modified: u64,
    pub errors: u64,
}

/// The report of `config`'s agent on `store` at `now`, with at most `headlines` headlines.
pub fn report(
    store: &Store,
    config: &SentimentAgentConfig,
    now_ms: Millis,
    headlines: usize,
) -> Result<SentimentReport, StoreError> {
    let state = SentimentState::open(store, &config.name)?;
    let half_life = u64::try_from(config.half_life.as_millis()).unwrap_or(u64::MAX);
    let mut symbols = Vec::new();
    for s in config.symbols.keys() {
        let symbol = s.to_ascii_uppercase();
        let idx = state.index_if_any(&symbol)?;
        symbols.push(SymbolIndex {
            index: idx
                .as_ref()
                .filter(|i| i.weight > 0.0)
                .map(|i| i.value_at(now_ms, half_life)),
            updated_ms: idx.as_ref().map(|i| i.updated_ms).filter(|t| *t > 0),
            last_signal: idx.and_then(|i| i.last_signal),
            symbol,
        });
    }
    let mut sources = Vec::new();
    for s in &config.sources {
        let st = state.source(&s.name)?;
        sources.push(SourceView {
            name: s.name.clone(),
            kind: s.kind.as_str().to_string(),
            url: super::fetch::display_url(&s.url),
            last_poll_ms: st.last_poll_ms,
            last_ok_ms: st.last_ok_ms,
            last_error: st.last_error,
            items: st.items,
            not_modified: st.not_modified,
            errors: st.errors,
        });
    }
    Ok(SentimentReport {
        agent: config.name.clone(),
        symbols,
        sources,
        headlines: state.headlines(headlines)?,
    })
}
