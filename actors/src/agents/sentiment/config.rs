//! `[[agents.sentiment]]`: one sentiment and news agent — its symbols with their keywords,
//! the model that scores headlines, the index's half-life and thresholds, and its sources
//! (`[[agents.sentiment.sources]]`, none built in).
//!
//! Owns: the keys, their defaults and their checks (each bad value names its key). Never:
//! fetches, scores or publishes anything.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agents::runtime::Schedule;
use crate::validate::{join, Issues};

/// One sentiment agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentAgentConfig {
    /// Unique agent name; its state lives in sled tree `sentiment/<name>`.
    pub name: String,
    /// How often the agent wakes: each source is polled when its own `poll_interval` has
    /// passed, then new headlines are scored.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run; absent: every source's timeout plus every batch's
    /// `score_timeout`.
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<Duration>,
    /// Symbols and the words that mean them in a headline (case-insensitive, whole
    /// words): `BTC = ["bitcoin", "btc"]`. The symbol itself always counts.
    pub symbols: BTreeMap<String, Vec<String>>,
    /// Logical model (`[models.<name>]`) that scores headlines.
    #[serde(default = "default_model")]
    pub model: String,
    /// Headlines per model request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Deadline of one scoring request.
    #[serde(with = "humantime_serde", default = "default_score_timeout")]
    pub score_timeout: Duration,
    /// A headline's weight in the index halves every `half_life`.
    #[serde(with = "humantime_serde", default = "default_half_life")]
    pub half_life: Duration,
    /// Index at or above `+threshold` leans long, at or below `-threshold` short.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// A new signal also when the index moved more than this since the last one.
    #[serde(default = "default_min_move")]
    pub min_move: f64,
    /// TTL of each signal published.
    #[serde(with = "humantime_serde", default = "default_signal_ttl")]
    pub signal_ttl: Duration,
    /// Items published longer ago than this are marked seen but not scored (a feed's
    /// backlog on first poll is not news).
    #[serde(with = "humantime_serde", default = "default_max_item_age")]
    pub max_item_age: Duration,
    /// How long an item's id is remembered (dedup).
    #[serde(with = "humantime_serde", default = "default_seen_ttl")]
    pub seen_ttl: Duration,
    /// Most item ids remembered; the oldest go first.
    #[serde(default = "default_max_seen")]
    pub max_seen: usize,
    /// Scored headlines kept for `orrery sentiment`.
    #[serde(default = "default_headlines_kept")]
    pub headlines_kept: usize,
    pub sources: Vec<SourceConfig>,
}

/// What a source serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// RSS 0.9x, 1.0 or 2.0.
    Rss,
    Atom,
    /// Any JSON document; `items` and the field pointers say where the headlines are.
    Json,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Rss => "rss",
            SourceKind::Atom => "atom",
            SourceKind::Json => "json",
        }
    }
}

/// One news source (`[[agents.sentiment.sources]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique among all sentiment agents' sources: the `source` label of the metrics.
    pub name: String,
    pub kind: SourceKind,
    /// `http://` or `https://` URL, or `file://PATH` (absolute, or relative to the
    /// engine's working directory) for a local file.
    pub url: String,
    #[serde(with = "humantime_serde", default = "default_poll_interval")]
    pub poll_interval: Duration,
    /// Most new items taken from one poll (the newest first).
    #[serde(default = "default_max_items")]
    pub max_items_per_poll: usize,
    /// Deadline of one fetch.
    #[serde(with = "humantime_serde", default = "default_fetch_timeout")]
    pub timeout: Duration,
    /// Largest body accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// JSON: pointer (RFC 6901) to the array of items, e.g. `/data/items`; `""` for a
    /// top-level array.
    #[serde(default)]
    pub items: Option<String>,
    /// JSON: pointer within an item to its id (default `/id`).
    #[serde(default)]
    pub id: Option<String>,
    /// JSON: pointer within an item to its headline (default `/title`).
    #[serde(default)]
    pub title: Option<String>,
    /// JSON: pointer within an item to its link (default `/url`).
    #[serde(default)]
    pub link: Option<String>,
    /// JSON: pointer within an item to its publication time, RFC 3339 or Unix seconds
    /// (default `/published`).
    #[serde(default)]
    pub published: Option<String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_model() -> String {
    "default".into()
}
fn default_batch_size() -> usize {
    20
}
fn default_score_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_half_life() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_threshold() -> f64 {
    0.3
}
fn default_min_move() -> f64 {
    0.2
}
fn default_signal_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_item_age() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_seen_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_max_seen() -> usize {
    10_000
}
fn default_headlines_kept() -> usize {
    100
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_max_items() -> usize {
    50
}
fn default_fetch_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_bytes() -> usize {
    5 * 1024 * 1024
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn pointer_ok(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

impl SentimentAgentConfig {
    /// Most scoring requests one run sends: every pending headline in batches, capped so
    /// one run stays bounded (the rest wait for the next run).
    pub fn max_batches_per_run(&self) -> usize {
        4
    }

    pub fn schedule(&self) -> Schedule {
        let fetch = self
            .sources
            .iter()
            .map(|s| s.timeout)
            .max()
            .unwrap_or_default();
        let scoring = self.score_timeout * self.max_batches_per_run() as u32;
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout.unwrap_or_else(|| {
                (fetch + scoring + Duration::from_secs(10)).min(Duration::from_secs(3600))
            }),
        }
    }

    /// The checks of every key; `path` is `agents.sentiment[i]`.
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
            !self.symbols.is_empty(),
            join(path, "symbols"),
            &self.symbols,
            "at least one symbol, e.g. BTC = [\"bitcoin\", \"btc\"]",
        );
        for (symbol, words) in &self.symbols {
            issues.check(
                !symbol.is_empty()
                    && symbol.len() <= 32
                    && symbol.chars().all(|c| c.is_ascii_alphanumeric()),
                join(&join(path, "symbols"), symbol),
                symbol,
                "a symbol of A-Z and 0-9 (e.g. BTC)",
            );
            for w in words {
                issues.check(
                    !w.trim().is_empty() && w.chars().count() <= 64,
                    join(&join(path, "symbols"), symbol),
                    w,
                    "keywords of 1 to 64 characters",
                );
            }
        }
        issues.check(
            (1..=100).contains(&self.batch_size),
            join(path, "batch_size"),
            self.batch_size,
            "a number of headlines per request from 1 to 100",
        );
        issues.check(
            self.score_timeout >= Duration::from_millis(100)
                && self.score_timeout <= Duration::from_secs(600),
            join(path, "score_timeout"),
            humantime::format_duration(self.score_timeout).to_string(),
            "a duration from 100ms to 10m",
        );
        issues.check(
            self.half_life >= Duration::from_secs(1),
            join(path, "half_life"),
            humantime::format_duration(self.half_life).to_string(),
            "a duration of at least 1s",
        );
        issues.check(
            self.threshold > 0.0 && self.threshold <= 1.0,
            join(path, "threshold"),
            self.threshold,
            "a number above 0 and at most 1",
        );
        issues.check(
            self.min_move > 0.0 && self.min_move <= 2.0,
            join(path, "min_move"),
            self.min_move,
            "a number above 0 and at most 2",
        );
        issues.check(
            crate::signals::signal::check_ttl(self.signal_ttl).is_ok(),
            join(path, "signal_ttl"),
            humantime::format_duration(self.signal_ttl).to_string(),
            "a duration from 1s to 7days",
        );
        issues.check(
            self.max_item_age >= Duration::from_secs(1),
            join(path, "max_item_age"),
            humantime::format_duration(self.max_item_age).to_string(),
            "a duration of at least 1s",
        );
        issues.check(
            self.seen_ttl >= self.max_item_age,
            join(path, "seen_ttl"),
            humantime::format_duration(self.seen_ttl).to_string(),
            "a duration at least max_item_age (an item forgotten sooner would be scored again)",
        );
        issues.check(
            (100..=1_000_000).contains(&self.max_seen),
            join(path, "max_seen"),
            self.max_seen,
            "a count from 100 to 1000000",
        );
        issues.check(
            (1..=10_000).contains(&self.headlines_kept),
            join(path, "headlines_kept"),
            self.headlines_kept,
            "a count from 1 to 10000",
        );
        issues.check(
            !self.sources.is_empty(),
            join(path, "sources"),
            self.sources.len(),
            "at least one [[agents.sentiment.sources]] (no source is built in)",
        );
        for (i, s) in self.sources.iter().enumerate() {
            s.validate(&format!("{path}.sources[{i}]"), issues);
        }
    }
}

impl SourceConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            name_ok(&self.name),
            join(path, "name"),
            &self.name,
            "1 to 64 characters of a-z, A-Z, 0-9, - and _",
        );
        let url_ok = match self.url.strip_prefix("file://") {
            Some(p) => !p.is_empty(),
            None => reqwest::Url::parse(&self.url)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false),
        };
        issues.check(
            url_ok,
            join(path, "url"),
            &self.url,
            "an http:// or https:// URL, or file://PATH",
        );
        issues.check(
            self.poll_interval >= Duration::from_millis(100),
            join(path, "poll_interval"),
            humantime::format_duration(self.poll_interval).to_string(),
            "a duration of at least 100ms",
        );
        issues.check(
            (1..=1000).contains(&self.max_items_per_poll),
            join(path, "max_items_per_poll"),
            self.max_items_per_poll,
            "a count from 1 to 1000",
        );
        issues.check(
            self.timeout >= Duration::from_millis(100) && self.timeout <= Duration::from_secs(120),
            join(path, "timeout"),
            humantime::format_duration(self.timeout).to_string(),
            "a duration from 100ms to 2m",
        );
        issues.check(
            (1024..=64 * 1024 * 1024).contains(&self.max_bytes),
            join(path, "max_bytes"),
            self.max_bytes,
            "a size in bytes from 1024 to 67108864",
        );
        let pointers = [
            ("items", &self.items),
            ("id", &self.id),
            ("title", &self.title),
            ("link", &self.link),
            ("published", &self.published),
        ];
        for (key, value) in pointers {
            if let Some(p) = value {
                issues.check(
                    self.kind == SourceKind::Json,
                    join(path, key),
                    p,
                    "only with kind = \"json\" (RSS and Atom fields are read by the feed parser)",
                );
                issues.check(
                    pointer_ok(p),
                    join(path, key),
                    p,
                    "a JSON pointer: empty, or starting with / (e.g. /data/items)",
                );
            }
        }
        if self.kind == SourceKind::Json {
            issues.check(
                self.items.is_some(),
                join(path, "items"),
                "(missing)",
                "a JSON pointer to the array of items (\"\" for a top-level array)",
            );
        }
    }
}
