//! What a sentiment agent keeps in sled (tree `sentiment/<agent>`), so a restart neither
//! fetches in full again, nor scores a headline twice, nor forgets its index.
//!
//! Keys: `source/<name>` ([`SourceState`]: the validators and poll times), `seen/<sha256 of
//! the item id>` (the seen-set: bounded by `max_seen`, entries expire after `seen_ttl`),
//! `pending/<time>-<hash>` (new headlines not yet scored: a failed scoring request leaves
//! them for the next run), `score/<cache key>` (cached scores by headline hash, expiring
//! with the seen-set), `index/<SYMBOL>` (the index), `headline/<time>-<hash>` (the last
//! `headlines_kept` scored headlines, for `orrery sentiment`).
//!
//! Owns: those keys and their bounds. Never: decides what is new or what a score is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fetch::Validators;
use super::index::IndexState;
use crate::clock::Millis;
use crate::store::{Record, Store, StoreError, Tree};

/// The tree of agent `name`.
pub fn tree_name(agent: &str) -> String {
    format!("sentiment/{agent}")
}

/// One source's poll state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub validators: Validators,
    pub last_poll_ms: Option<Millis>,
    pub last_ok_ms: Option<Millis>,
    pub last_error: Option<String>,
    /// New items taken from it, ever.
    pub items: u64,
    /// Polls answered "not modified", ever.
    pub not_modified: u64,
    pub errors: u64,
}
impl Record for SourceState {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub first_seen_ms: Millis,
}
impl Record for Seen {}

/// A new headline waiting for its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub source: String,
    pub id: String,
    pub title: String,
    pub link: Option<String>,
    /// When it was published (or first seen, when the source gives no time).
    pub time_ms: Millis,
    pub symbols: Vec<String>,
}
impl Record for Pending {}

/// Scores of one headline by one model (the cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedScores {
    pub scores: BTreeMap<String, f64>,
    pub time_ms: Millis,
}
impl Record for CachedScores {}

/// A scored headline, as `orrery sentiment` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredHeadline {
    pub time_ms: Millis,
    pub source: String,
    pub title: String,
    pub link: Option<String>,
    /// Score per symbol.
    pub scores: BTreeMap<String, f64>,
    /// Whether the scores came from the cache rather than a model request.
    pub cached: bool,
}
impl Record for ScoredHeadline {}

/// Short hex digest of `s`, for keys.
pub fn digest(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The typed views of one agent's tree.
#[derive(Clone)]
pub struct SentimentState {
    sources: Tree<SourceState>,
    seen: Tree<Seen>,
    pending: Tree<Pending>,
    scores: Tree<CachedScores>,
    index: Tree<IndexState>,
    headlines: Tree<ScoredHeadline>,
}

impl SentimentState {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        let name = tree_name(agent);
        Ok(Self {
            sources: store.tree(&name)?,
            seen: store.tree(&name)?,
            pending: store.tree(&name)?,
            scores: store.tree(&name)?,
            index: store.tree(&name)?,
            headlines: store.tree(&name)?,
        })
    }

    pub fn source(&self, name: &str) -> Result<SourceState, StoreError> {
        Ok(self
            .sources
            .get(&format!("source/{name}"))?
            .unwrap_or_default())
    }

    pub fn set_source(&self, name: &str, s: &SourceState) -> Result<(), StoreError> {
        self.sources.put(&format!("source/{name}"), s)
    }

    fn seen_key(id: &str) -> String {
        format!("seen/{}", digest(id))
    }

    pub fn is_seen(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.seen.get(&Self::seen_key(id))?.is_some())
    }

    pub fn mark_seen(&self, id: &str, now_ms: Millis) -> Result<(), StoreError> {
        self.seen.put(
            &Self::seen_key(id),
            &Seen {
                first_seen_ms: now_ms,
            },
        )
    }

    /// Forgets ids older than `ttl_ms`, then the oldest past `max`; returns how many went.
    pub fn prune_seen(&self, now_ms: Millis, ttl_ms: i64, max: usize) -> Result<usize, StoreError> {
        let mut all: Vec<(String, Millis)> = Vec::new();
        for e in self.seen.scan_prefix("seen/") {
            let (k, v) = e?;
            all.push((k, v.first_seen_ms));
        }
        all.sort_by_key(|(_, t)| *t);
        let over = all.len().saturating_sub(max);
        let mut removed = 0;
        for (i, (k, t)) in all.iter().enumerate() {
            if i < over || now_ms - t > ttl_ms {
                self.seen.remove(k)?;
                removed += 1;
            }
        }
        // The score cache expires with the seen-set: a headline seen again after that is
        // new anyway.
        let mut stale = Vec::new();
        for e in self.scores.scan_prefix("score/") {
            let (k, v) = e?;
            if now_ms - v.time_ms > ttl_ms {
                stale.push(k);
            }
        }
        for k in stale {
            self.scores.remove(&k)?;
        }
        Ok(removed)
    }

    /// Keeps `p` as the `seq`-th new item of its source's poll at `now`: keys sort by
    /// poll time, source and position, so batches follow the feeds' order.
    pub fn add_pending(&self, p: &Pending, now_ms: Millis, seq: usize) -> Result<(), StoreError> {
        let key = format!("pending/{:013}-{}-{seq:06}", now_ms.max(0), p.source);
        self.pending.put(&key, p)
    }

    /// Every pending headline, oldest first, with its key.
    pub fn pending(&self) -> Result<Vec<(String, Pending)>, StoreError> {
        self.pending.scan_prefix("pending/").collect()
    }

    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.pending.remove(key)
    }

    pub fn cached_scores(&self, key: &str) -> Result<Option<CachedScores>, StoreError> {
        self.scores.get(&format!("score/{key}"))
    }

    pub fn cache_scores(&self, key: &str, s: &CachedScores) -> Result<(), StoreError> {
        self.scores.put(&format!("score/{key}"), s)
    }

    pub fn index(&self, symbol: &str) -> Result<IndexState, StoreError> {
        Ok(self
            .index
            .get(&format!("index/{symbol}"))?
            .unwrap_or_default())
    }

    /// The index of `symbol`, if it ever had a headline.
    pub fn index_if_any(&self, symbol: &str) -> Result<Option<IndexState>, StoreError> {
        self.index.get(&format!("index/{symbol}"))
    }

    pub fn set_index(&self, symbol: &str, i: &IndexState) -> Result<(), StoreError> {
        self.index.put(&format!("index/{symbol}"), i)
    }

    /// Keeps a headline scored at `now` as the `seq`-th of its run (keys sort by when
    /// they were scored), dropping the oldest past `kept`.
    pub fn add_headline(
        &self,
        h: &ScoredHeadline,
        kept: usize,
        now_ms: Millis,
        seq: usize,
    ) -> Result<(), StoreError> {
        let key = format!("headline/{:013}-{seq:06}", now_ms.max(0));
        self.headlines.put(&key, h)?;
        let keys: Vec<String> = self
            .headlines
            .scan_prefix("headline/")
            .map(|e| e.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        for k in keys.iter().take(keys.len().saturating_sub(kept)) {
            self.headlines.remove(k)?;
        }
        Ok(())
    }

    /// The kept headlines, the last scored first.
    pub fn headlines(&self, limit: usize) -> Result<Vec<ScoredHeadline>, StoreError> {
        let mut all: Vec<ScoredHeadline> = self
            .headlines
            .scan_prefix("headline/")
            .map(|e| e.map(|(_, v)| v))
            .collect::<Result<_, _>>()?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }
}
