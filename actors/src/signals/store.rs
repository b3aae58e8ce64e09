//! The `signals` tree: recent signals on disk, so a restarted bus (and a stopped engine's
//! `orrery signals`) sees what was published before.
//!
//! Owns: the key layout (`<time_ms:013>-<id>`, oldest first), the [`SignalFilter`] every
//! listing applies, loading what is still alive at start, and listing from disk. Never:
//! decides what to keep (the bus bounds the count and sweeps expired signals) or keeps
//! anything in memory.

use crate::clock::Millis;
use crate::store::{trees, Store, StoreError, Tree};

use super::signal::{Signal, SignalKind};

/// Largest `limit` of one listing.
pub const MAX_LIMIT: usize = 10_000;
/// `limit` when none is given.
pub const DEFAULT_LIMIT: usize = 100;

/// Which signals a listing (or a subscription) wants. Empty `kinds`: every kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SignalFilter {
    pub kinds: Vec<SignalKind>,
    /// Upper-case symbol.
    pub symbol: Option<String>,
    /// Only signals published at or after this time.
    pub since_ms: Option<Millis>,
    /// At most this many, newest first; 0 means [`DEFAULT_LIMIT`].
    pub limit: usize,
    /// Leaves out this source's own signals (an agent reading what the others said).
    pub exclude_source: Option<String>,
}

impl SignalFilter {
    /// Whether `s` passes, at `now_ms` (an expired signal never does).
    pub fn matches(&self, s: &Signal, now_ms: Millis) -> bool {
        !s.is_expired(now_ms)
            && (self.kinds.is_empty() || self.kinds.contains(&s.kind))
            && self
                .symbol
                .as_deref()
                .is_none_or(|w| w.eq_ignore_ascii_case(&s.symbol))
            && self.since_ms.is_none_or(|t| s.time_ms >= t)
            && self.exclude_source.as_deref() != Some(s.source.as_str())
    }

    /// The effective limit.
    pub fn limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        }
    }
}

/// Typed access to the `signals` tree.
#[derive(Debug, Clone)]
pub struct SignalStore {
    tree: Tree<Signal>,
}

impl SignalStore {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(trees::SIGNALS)?,
        })
    }

    /// Writes a signal. Not flushed at once: a signal is not money, and sled flushes on
    /// its own within a fraction of a second (and at every clean stop).
    pub fn put(&self, s: &Signal) -> Result<(), StoreError> {
        self.tree.put(&s.key(), s)
    }

    pub fn remove(&self, s: &Signal) -> Result<(), StoreError> {
        self.tree.remove(&s.key())
    }

    /// Every signal still alive at `now_ms`, oldest first; expired signals and records
    /// that cannot be decoded (written by a newer binary, or damaged) are removed, and
    /// their count returned beside.
    pub fn load_alive(&self, now_ms: Millis) -> Result<(Vec<Signal>, usize), StoreError> {
        let mut alive = Vec::new();
        let mut gone = Vec::new();
        for entry in self.tree.entries_after(None) {
            let (key, value) = entry?;
            match value {
                Ok(s) if !s.is_expired(now_ms) => alive.push(s),
                Ok(_) => gone.push(key),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "dropping an unreadable signal");
                    gone.push(key);
                }
            }
        }
        for key in &gone {
            self.tree.remove(key)?;
        }
        Ok((alive, gone.len()))
    }

    /// Signals matching `filter` at `now_ms`, newest first, read from disk (for a stopped
    /// engine). Unreadable records are skipped here: a listing never deletes.
    pub fn list(&self, filter: &SignalFilter, now_ms: Millis) -> Result<Vec<Signal>, StoreError> {
        let limit = filter.limit();
        // Forward then reversed: the tree is bounded by `[signals] max_kept`, and the
        // forward walk hands back undecodable records as items to skip.
        let mut all = Vec::new();
        for entry in self.tree.entries_after(None) {
            if let (_, Ok(s)) = entry? {
                all.push(s);
            }
        }
        let mut out = Vec::new();
        for s in all.into_iter().rev() {
            if filter.since_ms.is_some_and(|t| s.time_ms < t) {
                // Keys sort by time: everything after this is older still.
                break;
            }
            if filter.matches(&s, now_ms) {
                out.push(s);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
