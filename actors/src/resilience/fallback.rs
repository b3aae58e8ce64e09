//! Fallback levels for reads: none → partial (cached within TTL) → full (an alternative
//! endpoint or a sibling target) → emergency (the engine degrades, and a safe default is
//! served if the read has one; without one — a price has none — the read fails).
//!
//! Owns: the escalation order, the TTL cache of last good values (moka, bounded), the
//! level tag on every answer, the emergency hook, and `orrery_fallback_total`. Never:
//! chooses siblings (the router or gateway passes them in, healthiest first), never
//! falls back for writes — orders are not idempotent and never take this path.
//!
//! Order: a cached value younger than its TTL is served before a sibling is asked because
//! it costs nothing and is marked as such ([`Served::age`]); a caller that prefers live
//! data from a sibling over a few seconds of staleness sets a short `cache_ttl`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::FallbackConfig;
use super::mono::{nanos_of, Nanos, SharedMonotonic};

/// How far a read had to fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackLevel {
    /// The primary answered.
    None,
    /// A cached value within its TTL.
    Partial,
    /// An alternative endpoint or sibling target answered.
    Full,
    /// The configured safe default; the engine was told to degrade.
    Emergency,
}

impl FallbackLevel {
    pub fn label(self) -> &'static str {
        match self {
            FallbackLevel::None => "none",
            FallbackLevel::Partial => "partial",
            FallbackLevel::Full => "full",
            FallbackLevel::Emergency => "emergency",
        }
    }
}

/// Mode the engine moves to when a read uses its emergency default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmergencyMode {
    /// Only risk-reducing orders.
    Reducing,
    /// Cancels only.
    Halted,
}

/// A value and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Served<V> {
    pub value: V,
    pub level: FallbackLevel,
    /// Age of a cached value (partial level only).
    pub age: Option<Duration>,
    /// Index of the sibling that answered (full level only).
    pub sibling: Option<usize>,
}

/// What the emergency hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyEvent {
    pub target: String,
    pub key: String,
    pub mode: EmergencyMode,
}

/// Called when a read falls back to its emergency default, so the engine can move to
/// Reducing or Halted.
pub type EmergencyHook = Arc<dyn Fn(&EmergencyEvent) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum FallbackError<E> {
    #[error("read of `{key}` from `{target}` failed, and no fallback up to level {deepest} had an answer ({siblings_failed} sibling(s) failed too); primary error: {primary}")]
    Exhausted {
        target: String,
        key: String,
        deepest: &'static str,
        siblings_failed: usize,
        primary: E,
    },
}

pub(crate) const METRIC_FALLBACK: &str = "orrery_fallback_total";

pub(super) fn describe() {
    metrics::describe_counter!(
        METRIC_FALLBACK,
        "Reads served, by target and fallback level (none, partial, full, emergency)."
    );
}

/// The fallback policy of one target's reads of values of type `V`.
pub struct FallbackChain<V> {
    target: String,
    config: FallbackConfig,
    clock: SharedMonotonic,
    cache: moka::sync::Cache<String, (V, Nanos)>,
    emergency: Option<V>,
    on_emergency: Option<EmergencyHook>,
}

impl<V> std::fmt::Debug for FallbackChain<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackChain")
            .field("target", &self.target)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> FallbackChain<V> {
    pub fn new(target: impl Into<String>, config: FallbackConfig, clock: SharedMonotonic) -> Self {
        // moka's own TTL bounds memory; freshness is judged on our clock below so tests
        // can drive it.
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_live(config.cache_ttl)
            .build();
        Self {
            target: target.into(),
            config,
            clock,
            cache,
            emergency: None,
            on_emergency: None,
        }
    }

    /// The safe value served at the emergency level.
    pub fn with_emergency_default(mut self, value: V) -> Self {
        self.emergency = Some(value);
        self
    }

    /// The hook called whenever the emergency default is served.
    pub fn on_emergency(mut self, hook: EmergencyHook) -> Self {
        self.on_emergency = Some(hook);
        self
    }

    /// Stores a good value read elsewhere (e.g. from a stream) for later partial reads.
    pub fn remember(&self, key: &str, value: V) {
        self.cache
            .insert(key.to_string(), (value, self.clock.now()));
    }

    /// A cached value younger than the TTL, with its age.
    pub fn cached(&self, key: &str) -> Option<(V, Duration)> {
        let (value, at) = self.cache.get(key)?;
        let age = self.clock.now().saturating_sub(at);
        (age < nanos_of(self.config.cache_ttl)).then(|| (value, Duration::from_nanos(age)))
    }

    /// Reads `key` from `primary`; on failure falls back level by level up to the
    /// configured `max_level`. Siblings are tried in order and only polled if needed.
    pub async fn read<E, P, S, I>(
        &self,
        key: &str,
        primary: P,
        siblings: I,
    ) -> Result<Served<V>, FallbackError<E>>
    where
        P: Future<Output = Result<V, E>>,
        I: IntoIterator<Item = S>,
        S: Future<Output = Result<V, E>>,
    {
        let max = self.config.max_level;
        let primary_err = match primary.await {
            Ok(value) => {
                self.remember(key, value.clone());
                return Ok(self.served(value, FallbackLevel::None, None, None));
            }
            Err(e) => e,
        };
        if max >= FallbackLevel::Partial {
            if let Some((value, age)) = self.cached(key) {
                return Ok(self.served(value, FallbackLevel::Partial, Some(age), None));
            }
        }
        let mut siblings_failed = 0;
        if max >= FallbackLevel::Full {
            for (i, sibling) in siblings.into_iter().enumerate() {
                match sibling.await {
                    Ok(value) => {
                        self.remember(key, value.clone());
                        return Ok(self.served(value, FallbackLevel::Full, None, Some(i)));
                    }
                    Err(_) => siblings_failed += 1,
                }
            }
        }
        if max >= FallbackLevel::Emergency {
            let event = EmergencyEvent {
                target: self.target.clone(),
                key: key.to_string(),
                mode: self.config.emergency_mode,
            };
            tracing::warn!(target_name = %self.target, key, mode = ?event.mode, default = self.emergency.is_some(), "read fell back to the emergency level");
            if let Some(hook) = &self.on_emergency {
                hook(&event);
            }
            if let Some(value) = self.emergency.clone() {
                return Ok(self.served(value, FallbackLevel::Emergency, None, None));
            }
            // No safe default (a price has none): the engine still degrades, the use is
            // counted, and the read fails.
            metrics::counter!(METRIC_FALLBACK, "target" => self.target.clone(), "level" => FallbackLevel::Emergency.label()).increment(1);
        }
        Err(FallbackError::Exhausted {
            target: self.target.clone(),
            key: key.to_string(),
            deepest: max.label(),
            siblings_failed,
            primary: primary_err,
        })
    }

    fn served(
        &self,
        value: V,
        level: FallbackLevel,
        age: Option<Duration>,
        sibling: Option<usize>,
    ) -> Served<V> {
        metrics::counter!(METRIC_FALLBACK, "target" => self.target.clone(), "level" => level.label()).increment(1);
        Served {
            value,
            level,
            age,
            sibling,
        }
    }
}

#[cfg(test)]
mod tests;
