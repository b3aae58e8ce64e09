//! `[signals]`: how many signals the bus keeps, their default TTL, and how often expired
//! ones are swept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validate::{join, Issues};

use super::signal::MAX_TTL;

/// The `[signals]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Most signals kept (memory and sled); the oldest go first.
    pub max_kept: usize,
    /// TTL of a signal published without one.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// How often expired signals are removed; `0s`: only when read.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            max_kept: 10_000,
            default_ttl: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

impl SignalsConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            (1..=1_000_000).contains(&self.max_kept),
            join(path, "max_kept"),
            self.max_kept,
            "a count from 1 to 1000000",
        );
        issues.check(
            self.default_ttl >= Duration::from_secs(1) && self.default_ttl <= MAX_TTL,
            join(path, "default_ttl"),
            humantime::format_duration(self.default_ttl).to_string(),
            "a duration from 1s to 7days",
        );
        issues.check(
            self.sweep_interval.is_zero()
                || (self.sweep_interval >= Duration::from_secs(1)
                    && self.sweep_interval <= Duration::from_secs(3600)),
            join(path, "sweep_interval"),
            humantime::format_duration(self.sweep_interval).to_string(),
            "0s (sweep only when read) or a duration from 1s to 1h",
        );
    }
}
