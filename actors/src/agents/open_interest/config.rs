//! `[[agents.open_interest]]`: one open-interest and whale agent — its venue and symbols,
//! how often it samples, the windows it measures, the thresholds of a signal, and the size
//! of a whale print.
//!
//! Owns: the keys, their defaults and their checks (each bad value names its key). Never:
//! samples, reads a stream or publishes anything; whether the venue has open interest is
//! the process's check (it knows the venue kinds).

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::agents::runtime::Schedule;
use crate::validate::{join, Issues};

/// The % change that makes a signal: one for every window, or one per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChangeThreshold {
    All(f64),
    /// Keyed by the window as written in `windows` (`"1h" = 3.0`).
    PerWindow(BTreeMap<String, f64>),
}

/// One open-interest and whale agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenInterestAgentConfig {
    /// Unique agent name; its state lives in sled tree `open_interest/<name>`.
    pub name: String,
    /// The venue whose open interest is sampled and whose trades are read.
    pub venue: String,
    /// Symbols as the engine names them (`BTC`).
    pub symbols: Vec<String>,
    /// Sampling period: one open-interest sample per symbol per run.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run; absent: 30 s plus 10 s per symbol, at most 10 minutes.
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<Duration>,
    /// Windows the change is measured over (`["5m", "1h", "4h"]`).
    #[serde(default = "default_windows")]
    pub windows: Vec<String>,
    /// The change, in %, that makes a signal (`2.0`, or `{ "5m" = 1.0, "1h" = 3.0 }`).
    #[serde(default = "default_change_pct")]
    pub change_pct: ChangeThreshold,
    /// A trade of at least this notional (USD) is a whale print.
    #[serde(default = "default_whale_usd")]
    pub whale_usd: Decimal,
    /// TTL of each signal published.
    #[serde(with = "humantime_serde", default = "default_signal_ttl")]
    pub signal_ttl: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_windows() -> Vec<String> {
    vec!["5m".into(), "1h".into(), "4h".into()]
}
fn default_change_pct() -> ChangeThreshold {
    ChangeThreshold::All(2.0)
}
fn default_whale_usd() -> Decimal {
    Decimal::from(1_000_000)
}
fn default_signal_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// Shortest and longest window.
const MIN_WINDOW: Duration = Duration::from_secs(60);
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(crate) fn symbol_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// One window: as written, and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    pub length: Duration,
}

impl Window {
    pub fn millis(&self) -> i64 {
        i64::try_from(self.length.as_millis()).unwrap_or(i64::MAX)
    }
}

impl OpenInterestAgentConfig {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout.unwrap_or_else(|| {
                (Duration::from_secs(30) + Duration::from_secs(10) * self.symbols.len() as u32)
                    .min(Duration::from_secs(600))
            }),
        }
    }

    /// The windows that parse, in config order (validation refuses the others).
    pub fn parsed_windows(&self) -> Vec<Window> {
        self.windows
            .iter()
            .filter_map(|w| {
                humantime::parse_duration(w.trim())
                    .ok()
                    .map(|length| Window {
                        name: w.trim().to_string(),
                        length,
                    })
            })
            .collect()
    }

    /// The longest window (the series keeps that much history, and a little more).
    pub fn longest_window(&self) -> Duration {
        self.parsed_windows()
            .iter()
            .map(|w| w.length)
            .max()
            .unwrap_or(MIN_WINDOW)
    }

    /// The threshold of `window`, in %.
    pub fn threshold(&self, window: &str) -> Option<f64> {
        match &self.change_pct {
            ChangeThreshold::All(t) => Some(*t),
            ChangeThreshold::PerWindow(m) => m.get(window).copied(),
        }
    }

    /// The checks of every key; `path` is `agents.open_interest[i]`.
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
        issues.check(
            !self.symbols.is_empty() && self.symbols.len() <= 50,
            join(path, "symbols"),
            format!("{:?}", self.symbols),
            "1 to 50 symbols, e.g. [\"BTC\", \"ETH\"]",
        );
        for s in &self.symbols {
            issues.check(
                symbol_ok(s),
                join(path, "symbols"),
                s,
                "a symbol of A-Z, a-z and 0-9 (e.g. BTC)",
            );
        }
        issues.check(
            !self.windows.is_empty() && self.windows.len() <= 10,
            join(path, "windows"),
            format!("{:?}", self.windows),
            "1 to 10 windows, e.g. [\"5m\", \"1h\", \"4h\"]",
        );
        for w in &self.windows {
            let ok = humantime::parse_duration(w.trim())
                .map(|d| d >= MIN_WINDOW && d <= MAX_WINDOW)
                .unwrap_or(false);
            issues.check(
                ok,
                join(path, "windows"),
                w,
                "a duration from 1m to 7days (5m, 1h, 4h)",
            );
        }
        match &self.change_pct {
            ChangeThreshold::All(t) => issues.check(
                t.is_finite() && *t > 0.0 && *t <= 1000.0,
                join(path, "change_pct"),
                t,
                "a percentage above 0 and at most 1000",
            ),
            ChangeThreshold::PerWindow(m) => {
                for w in &self.windows {
                    issues.check(
                        m.get(w.trim())
                            .is_some_and(|t| t.is_finite() && *t > 0.0 && *t <= 1000.0),
                        join(&join(path, "change_pct"), w.trim()),
                        m.get(w.trim())
                            .map_or("(missing)".to_string(), |t| t.to_string()),
                        "a percentage above 0 and at most 1000 for every window",
                    );
                }
                for k in m.keys() {
                    issues.check(
                        self.windows.iter().any(|w| w.trim() == k),
                        join(&join(path, "change_pct"), k),
                        k,
                        format!("one of the windows {:?}", self.windows),
                    );
                }
            }
        }
        issues.check(
            self.whale_usd > Decimal::ZERO,
            join(path, "whale_usd"),
            self.whale_usd,
            "a notional in USD above 0 (e.g. 1000000)",
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

    fn base() -> OpenInterestAgentConfig {
        toml::from_str(
            r#"
name = "oi"
venue = "bnf"
symbols = ["BTC"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_per_window_thresholds() {
        let c = base();
        assert_eq!(c.windows, ["5m", "1h", "4h"]);
        assert_eq!(c.threshold("1h"), Some(2.0));
        assert_eq!(c.longest_window(), Duration::from_secs(4 * 3600));
        let mut issues = Issues::default();
        c.validate("agents.open_interest[0]", &mut issues);
        assert!(issues.is_empty(), "{:?}", issues.0);

        let c: OpenInterestAgentConfig = toml::from_str(
            r#"
name = "oi"
venue = "bnf"
symbols = ["BTC"]
windows = ["5m", "1h"]
change_pct = { "5m" = 1.5, "1h" = 3 }
"#,
        )
        .unwrap();
        assert_eq!(c.threshold("5m"), Some(1.5));
        assert_eq!(c.threshold("1h"), Some(3.0));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let mut c = base();
        c.windows = vec!["5m".into(), "3 parsecs".into(), "10s".into()];
        c.change_pct = ChangeThreshold::PerWindow([("5m".to_string(), -1.0)].into());
        c.whale_usd = Decimal::ZERO;
        c.symbols = vec!["BTC-USD".into()];
        c.interval = Duration::from_millis(10);
        let mut issues = Issues::default();
        c.validate("agents.open_interest[0]", &mut issues);
        let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
        for want in [
            "agents.open_interest[0].windows",
            "agents.open_interest[0].change_pct.5m",
            "agents.open_interest[0].change_pct.3 parsecs",
            "agents.open_interest[0].whale_usd",
            "agents.open_interest[0].symbols",
            "agents.open_interest[0].interval",
        ] {
            assert!(keys.contains(&want), "{want} in {keys:?}");
        }
    }
}
