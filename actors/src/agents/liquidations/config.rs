//! `[[agents.liquidations]]`: one liquidation agent — the venue whose `!forceOrder@arr`
//! stream it reads, the symbols it watches (or all), the window and the baseline a
//! window's liquidations are measured against, and what makes a spike.
//!
//! Owns: the keys, their defaults and their checks (each bad value names its key). Never:
//! reads the stream or publishes; whether the venue streams liquidations is the process's
//! check (it knows the venue kinds).

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::agents::open_interest::config::{name_ok, symbol_ok};
use crate::agents::runtime::Schedule;
use crate::validate::{join, Issues};

/// One liquidation agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiquidationAgentConfig {
    /// Unique agent name; its state lives in sled tree `liquidations/<name>`.
    pub name: String,
    /// A `binance_futures` venue with `streams = true`.
    pub venue: String,
    /// Symbols as the engine names them (`BTC`); empty: every symbol the venue liquidates.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// How often the agent checks the window.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run (it does no I/O but sled and the journal): default 30 s.
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<Duration>,
    /// The window liquidations are summed over (per symbol and side).
    #[serde(with = "humantime_serde", default = "default_window")]
    pub window: Duration,
    /// How much history of window sums the baseline keeps (e.g. 24h of 5m windows).
    #[serde(with = "humantime_serde", default = "default_baseline")]
    pub baseline: Duration,
    /// k: a window is a spike when its sum reaches the baseline's mean + k × its standard
    /// deviation (and `min_usd`).
    #[serde(default = "default_spike_factor")]
    pub spike_factor: f64,
    /// The least notional (USD) a window needs to be a spike, whatever the baseline.
    #[serde(default = "default_min_usd")]
    pub min_usd: Decimal,
    /// TTL of each signal published.
    #[serde(with = "humantime_serde", default = "default_signal_ttl")]
    pub signal_ttl: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_baseline() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_spike_factor() -> f64 {
    3.0
}
fn default_min_usd() -> Decimal {
    Decimal::from(100_000)
}
fn default_signal_ttl() -> Duration {
    Duration::from_secs(1800)
}

impl LiquidationAgentConfig {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout.unwrap_or(Duration::from_secs(30)),
        }
    }

    pub fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Windows the baseline keeps.
    pub fn baseline_windows(&self) -> usize {
        let w = self.window.as_millis().max(1);
        (self.baseline.as_millis() / w).max(1) as usize
    }

    /// k as a decimal.
    pub fn k(&self) -> Decimal {
        Decimal::try_from(self.spike_factor).unwrap_or(Decimal::from(3))
    }

    /// The checks of every key; `path` is `agents.liquidations[i]`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        crate::agents::runtime::validate_keys(path, self.jitter, self.run_timeout, issues);
        issues.check(
            name_ok(&self.name),
            join(path, "name"),
            &self.name,
            "1 to 64 characters of a-z, A-Z, 0-9, - and _",
        );
        issues.check(
            self.interval >= Duration::from_millis(100),
            join(path, "interval"),
            humantime::format_duration(self.interval).to_string(),
            "a duration of at least 100ms",
        );
        for s in &self.symbols {
            issues.check(
                symbol_ok(s),
                join(path, "symbols"),
                s,
                "a symbol of A-Z, a-z and 0-9 (e.g. BTC); leave the list empty for all",
            );
        }
        issues.check(
            self.window >= Duration::from_secs(1) && self.window <= Duration::from_secs(86_400),
            join(path, "window"),
            humantime::format_duration(self.window).to_string(),
            "a duration from 1s to 1day (e.g. 5m)",
        );
        let windows = self.baseline.as_millis() / self.window.as_millis().max(1);
        issues.check(
            self.baseline <= Duration::from_secs(7 * 86_400) && (2..=5_000).contains(&windows),
            join(path, "baseline"),
            humantime::format_duration(self.baseline).to_string(),
            "a duration of 2 to 5000 windows and at most 7days (e.g. 24h of 5m windows)",
        );
        issues.check(
            self.spike_factor.is_finite() && (0.0..=100.0).contains(&self.spike_factor),
            join(path, "spike_factor"),
            self.spike_factor,
            "k of mean + k·stddev, from 0 to 100",
        );
        issues.check(
            self.min_usd >= Decimal::ZERO,
            join(path, "min_usd"),
            self.min_usd,
            "a notional in USD of 0 or more",
        );
        issues.check(
            crate::signals::signal::check_ttl(self.signal_ttl).is_ok(),
            join(path, "signal_ttl"),
            humantime::format_duration(self.signal_ttl).to_string(),
            "a duration from 1s to 7days",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks_that_name_the_key() {
        let c: LiquidationAgentConfig = toml::from_str("name = \"liq\"\nvenue = \"bnf\"").unwrap();
        assert_eq!(c.baseline_windows(), 288);
        let mut issues = Issues::default();
        c.validate("agents.liquidations[0]", &mut issues);
        assert!(issues.is_empty(), "{:?}", issues.0);
        let mut bad = c.clone();
        bad.baseline = Duration::from_secs(300);
        bad.spike_factor = -1.0;
        bad.min_usd = Decimal::from(-5);
        bad.window = Duration::ZERO;
        let mut issues = Issues::default();
        bad.validate("agents.liquidations[0]", &mut issues);
        let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
        for want in ["baseline", "spike_factor", "min_usd", "window"] {
            assert!(
                keys.contains(&format!("agents.liquidations[0].{want}").as_str()),
                "{want} in {keys:?}"
            );
        }
    }
}
