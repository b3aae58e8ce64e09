//! The response cache and the request key it shares with single-flight.
//!
//! Owns: the key of a request (a SHA-256 over everything that shapes the answer), L1 (moka,
//! in memory, bounded by `[model_cache] max_entries`, per-entry TTL) and L2 (sled tree
//! `cache`, survives restarts), and the hit/miss metrics. Never: decides whether a request
//! may be cached (the request's `cacheable` flag and the model's `cache_ttl` do) or calls a
//! provider.
//!
//! Expiry is wall-clock milliseconds from the injectable [`Clock`], stored with each entry,
//! because an L2 entry outlives the process. Both levels check it on every read; moka's own
//! per-entry expiry (the same TTL) only frees memory early. An expired L2 entry is removed
//! when it is read, and by [`ResponseCache::sweep_l2`], which the router runs at start and
//! every `[model_cache] sweep_interval`: each sweep examines at most `sweep_batch` entries,
//! going on from where the last one stopped, so the work per tick is bounded however large
//! the tree grew, and every entry is visited once per pass over the tree.
//!
//! An L2 read or write failure is logged and treated as a miss: a cache never fails a request.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Millis, SharedClock};
use crate::models::types::{ModelRequest, ModelResponse, Purpose};
use crate::store::{trees, Record, Store, Tree};

/// Identity of a request's answer: SHA-256 of the logical model (or swarm member) name,
/// purpose, system prompt, prompt, structured context, `max_tokens` and temperature.
/// `timeout` and `cacheable` are not part of it: they change how long one waits, not what
/// the answer is. Kept as the digest's bytes (a key is made, hashed and copied for every
/// request); sled stores it as [`RequestKey::hex`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey([u8; 32]);

impl std::fmt::Debug for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestKey({})", self.hex())
    }
}

impl RequestKey {
    pub fn of(name: &str, request: &ModelRequest) -> Self {
        let mut h = Sha256::new();
        // Length-prefixed fields: no two different requests hash the same bytes.
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(name.as_bytes());
        field(purpose_json(request.purpose).as_bytes());
        field(request.system.as_bytes());
        field(request.prompt.as_bytes());
        field(
            request
                .context
                .as_ref()
                .and_then(|c| serde_json::to_string(c).ok())
                .unwrap_or_default()
                .as_bytes(),
        );
        field(&request.max_tokens.to_be_bytes());
        field(&request.temperature.to_bits().to_be_bytes());
        Self(h.finalize().into())
    }

    /// Lower-case hex of the digest: the key of the L2 entry in sled.
    pub fn hex(&self) -> String {
        lower_hex(&self.0)
    }
}

/// `hex::encode`, without its character-at-a-time `String` building.
fn lower_hex(digest: &[u8]) -> String {
    let mut out = vec![0u8; digest.len() * 2];
    match hex::encode_to_slice(digest, &mut out)
        .ok()
        .and_then(|()| String::from_utf8(out).ok())
    {
        Some(hex) => hex,
        None => hex::encode(digest),
    }
}

/// The purpose as serde writes it (`"trade_decision"`, quotes included), without
/// serialising on every request. The bytes are part of keys stored in sled: they must
/// not change.
fn purpose_json(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::TradeDecision => "\"trade_decision\"",
        Purpose::RiskConfirmation => "\"risk_confirmation\"",
        Purpose::Freeform => "\"freeform\"",
        Purpose::LongCase => "\"long_case\"",
        Purpose::ShortCase => "\"short_case\"",
        Purpose::TradePlan => "\"trade_plan\"",
        Purpose::SentimentScore => "\"sentiment_score\"",
    }
}

/// One cached answer, as stored in both levels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub response: ModelResponse,
    pub expires_at_ms: Millis,
}

impl Record for CachedAnswer {}

/// Moka's per-entry expiry: the entry's own remaining TTL at insertion.
struct EntryExpiry;

impl moka::Expiry<RequestKey, (Arc<CachedAnswer>, Duration)> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &RequestKey,
        value: &(Arc<CachedAnswer>, Duration),
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

/// Which level answered, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLevel {
    L1,
    L2,
}

/// L1 + L2. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    l1: moka::sync::Cache<RequestKey, (Arc<CachedAnswer>, Duration)>,
    l2: Option<Tree<CachedAnswer>>,
    clock: SharedClock,
    /// The last L2 key the sweep examined (`None`: start at the first); the lock also
    /// keeps two sweeps from running at once.
    sweep_cursor: Arc<parking_lot::Mutex<Option<String>>>,
}

/// What one [`ResponseCache::sweep_l2`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSweep {
    /// L2 entries looked at (at most the sweep's budget).
    pub examined: usize,
    /// Of those, removed: expired, or unreadable.
    pub removed: usize,
    /// The sweep reached the end of the tree; the next one starts from the first entry.
    pub wrapped: bool,
    /// Another sweep was running, so this one did nothing.
    pub skipped: bool,
}

impl ResponseCache {
    /// `max_entries` bounds L1; L2 lives in `store`'s `cache` tree (none if it cannot be
    /// opened: logged, and the cache runs memory-only).
    pub fn new(max_entries: u64, store: &Store, clock: SharedClock) -> Self {
        let l2 = match store.tree::<CachedAnswer>(trees::CACHE) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "model response cache: sled tree unavailable, caching in memory only");
                None
            }
        };
        Self {
            l1: moka::sync::Cache::builder()
                .max_capacity(max_entries.max(1))
                .expire_after(EntryExpiry)
                .build(),
            l2,
            clock,
            sweep_cursor: Arc::new(parking_lot::Mutex::new(None)),
        }
    }

    /// Removes expired (and unreadable) L2 entries, examining at most `budget` of them
    /// from where the last sweep stopped. Counts removals in
    /// `orrery_model_cache_swept_total`. A sled error ends the sweep early (logged); the
    /// next one retries from the same place.
    pub fn sweep_l2(&self, budget: usize) -> CacheSweep {
        let mut done = CacheSweep::default();
        let Some(l2) = &self.l2 else {
            done.wrapped = true;
            return done;
        };
        let Some(mut cursor) = self.sweep_cursor.try_lock() else {
            done.skipped = true;
            return done;
        };
        let now = self.clock.now_ms();
        let mut last: Option<String> = None;
        let mut entries = l2.entries_after(cursor.as_deref());
        loop {
            if done.examined >= budget {
                break;
            }
            let Some(entry) = entries.next() else {
                done.wrapped = true;
                break;
            };
            let (key, value) = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(error = %e, "model response cache: the sweep cannot read sled; retrying next time");
                    break;
                }
            };
            done.examined += 1;
            let stale = match value {
                Ok(answer) => answer.expires_at_ms <= now,
                Err(e) => {
                    tracing::warn!(error = %e, key = %key, "model response cache: unreadable L2 entry removed by the sweep");
                    true
                }
            };
            if stale {
                match l2.remove(&key) {
                    Ok(()) => done.removed += 1,
                    Err(e) => {
                        tracing::debug!(error = %e, "model response cache: cannot remove an expired entry")
                    }
                }
            }
            last = Some(key);
        }
        drop(entries);
        *cursor = if done.wrapped {
            None
        } else {
            last.or(cursor.take())
        };
        if done.removed > 0 {
            metrics::counter!("orrery_model_cache_swept_total").increment(done.removed as u64);
        }
        done
    }

    /// The cached answer for `key`, if a live one exists, marked `cached: true`. Counts a
    /// hit or miss per level; an L2 hit is copied back into L1.
    pub fn get(&self, model: &str, key: &RequestKey) -> Option<(ModelResponse, CacheLevel)> {
        let now = self.clock.now_ms();
        let count = |level: &'static str, result: &'static str| {
            metrics::counter!("orrery_model_cache_requests_total", "model" => model.to_string(), "level" => level, "result" => result)
                .increment(1);
        };
        match self.l1.get(key) {
            Some((entry, _)) if entry.expires_at_ms > now => {
                count("l1", "hit");
                return Some((mark_cached(&entry.response), CacheLevel::L1));
            }
            Some(_) => {
                self.l1.invalidate(key);
                count("l1", "miss");
            }
            None => count("l1", "miss"),
        }
        let Some(l2) = &self.l2 else {
            count("l2", "miss");
            return None;
        };
        match l2.get(&key.hex()) {
            Ok(Some(entry)) if entry.expires_at_ms > now => {
                count("l2", "hit");
                let remaining = Duration::from_millis((entry.expires_at_ms - now) as u64);
                let response = mark_cached(&entry.response);
                self.l1.insert(*key, (Arc::new(entry), remaining));
                Some((response, CacheLevel::L2))
            }
            Ok(Some(_expired)) => {
                if let Err(e) = l2.remove(&key.hex()) {
                    tracing::debug!(error = %e, "model response cache: cannot remove an expired entry");
                }
                count("l2", "miss");
                None
            }
            Ok(None) => {
                count("l2", "miss");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, key = %key.hex(), "model response cache: unreadable L2 entry, treated as a miss and removed");
                let _ = l2.remove(&key.hex());
                count("l2", "miss");
                None
            }
        }
    }

    /// Stores a fresh (uncached) answer in both levels for `ttl`.
    pub fn put(&self, key: &RequestKey, response: &ModelResponse, ttl: Duration) {
        let ttl_ms = Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX);
        let entry = CachedAnswer {
            response: response.clone(),
            expires_at_ms: self.clock.now_ms().saturating_add(ttl_ms),
        };
        if let Some(l2) = &self.l2 {
            if let Err(e) = l2.put(&key.hex(), &entry) {
                tracing::warn!(error = %e, "model response cache: cannot write to sled; memory only for this answer");
            }
        }
        self.l1.insert(*key, (Arc::new(entry), ttl));
    }
}

fn mark_cached(response: &ModelResponse) -> ModelResponse {
    ModelResponse {
        cached: true,
        cost_usd: None,
        ..response.clone()
    }
}

#[cfg(test)]
mod tests;
