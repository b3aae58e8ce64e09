//! `[[agents.funding]]`: one funding agent — the venues and symbols it watches, how much
//! settled history its z-score is measured against, its two thresholds, and an optional
//! model that comments each signal.
//!
//! Owns: the keys, their defaults and their checks (each bad value names its key). Never:
//! reads a venue, or decides which venue kinds have funding (the engine's config check
//! asks the venue factory).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agents::runtime::Schedule;
use crate::validate::{join, Issues};

/// Most settled rates the z-score is measured against (the venues' own page limit).
pub const MAX_HISTORY: usize = 1000;

/// One funding agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundingAgentConfig {
    /// Unique agent name; its state lives in sled tree `funding/<name>`.
    pub name: String,
    /// One venue (`[exchanges.venues.<name>]` of a kind with perpetuals) ...
    #[serde(default)]
    pub venue: Option<String>,
    /// ... or several; each symbol is watched on each of them.
    #[serde(default)]
    pub venues: Vec<String>,
    /// Symbols as the engine names them (`BTC`, `ETH`).
    pub symbols: Vec<String>,
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run; absent: one minute plus the model's timeout per symbol.
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<Duration>,
    /// Settled rates the current rate's z-score is measured against (e.g. 90: 30 days of
    /// Binance's 8 h settlements, under 4 days of Hyperliquid's hourly ones).
    #[serde(default = "default_history")]
    pub history: usize,
    /// A rate is extreme when its annualized value is at least this many percent (either
    /// sign) ...
    #[serde(default = "default_annualized_pct")]
    pub annualized_pct: f64,
    /// ... or when it is at least this many standard deviations from the history's mean,
    /// on the side of its sign.
    #[serde(default = "default_zscore")]
    pub zscore: f64,
    /// Logical model (`[models.<name>]`) asked for a one-paragraph comment on each
    /// signal; absent: no comment.
    #[serde(default)]
    pub model: Option<String>,
    /// Deadline of the comment request.
    #[serde(with = "humantime_serde", default = "default_model_timeout")]
    pub model_timeout: Duration,
    /// TTL of each signal published.
    #[serde(with = "humantime_serde", default = "default_signal_ttl")]
    pub signal_ttl: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_history() -> usize {
    90
}
fn default_annualized_pct() -> f64 {
    50.0
}
fn default_zscore() -> f64 {
    3.0
}
fn default_model_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_signal_ttl() -> Duration {
    Duration::from_secs(4 * 3600)
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FundingAgentConfig {
    /// Every venue watched, `venue` first, without repeats.
    pub fn all_venues(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.venue.iter().chain(self.venues.iter()) {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }

    pub fn schedule(&self) -> Schedule {
        let pairs = (self.symbols.len() * self.all_venues().len()).max(1) as u32;
        let comments = if self.model.is_some() {
            self.model_timeout * pairs
        } else {
            Duration::ZERO
        };
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout.unwrap_or_else(|| {
                (Duration::from_secs(60) + comments).min(Duration::from_secs(3600))
            }),
        }
    }

    /// The checks of every key; `path` is `agents.funding[i]`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        crate::agents::runtime::validate_keys(path, self.jitter, self.run_timeout, issues);
        issues.check(
            name_ok(&self.name),
            join(path, "name"),
            &self.name,
            "1 to 64 characters of a-z, A-Z, 0-9, - and _",
        );
        issues.check(
            !self.all_venues().is_empty(),
            join(path, "venue"),
            "(missing)",
            "a venue with perpetuals (`venue = \"...\"` or `venues = [...]`)",
        );
        issues.check(
            self.interval >= Duration::from_millis(100),
            join(path, "interval"),
            humantime::format_duration(self.interval).to_string(),
            "a duration of at least 100ms",
        );
        issues.check(
            !self.symbols.is_empty(),
            join(path, "symbols"),
            format!("{:?}", self.symbols),
            "at least one symbol, e.g. [\"BTC\"]",
        );
        for s in &self.symbols {
            issues.check(
                !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric()),
                join(path, "symbols"),
                s,
                "symbols of A-Z, a-z and 0-9 (e.g. BTC)",
            );
        }
        issues.check(
            (2..=MAX_HISTORY).contains(&self.history),
            join(path, "history"),
            self.history,
            format!("a count of settled rates from 2 to {MAX_HISTORY}"),
        );
        issues.check(
            self.annualized_pct.is_finite() && self.annualized_pct > 0.0,
            join(path, "annualized_pct"),
            self.annualized_pct,
            "a percentage per year above 0 (compared with the rate's absolute value), e.g. 50",
        );
        issues.check(
            self.zscore.is_finite() && self.zscore > 0.0,
            join(path, "zscore"),
            self.zscore,
            "a number of standard deviations above 0, e.g. 3",
        );
        issues.check(
            self.model_timeout >= Duration::from_millis(100)
                && self.model_timeout <= Duration::from_secs(600),
            join(path, "model_timeout"),
            humantime::format_duration(self.model_timeout).to_string(),
            "a duration from 100ms to 10m",
        );
        issues.check(
            crate::signals::signal::check_ttl(self.signal_ttl).is_ok(),
            join(path, "signal_ttl"),
            humantime::format_duration(self.signal_ttl).to_string(),
            "a duration from 1s to 7days",
        );
    }
}
