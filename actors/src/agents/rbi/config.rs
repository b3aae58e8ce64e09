//! The RBI pipeline's settings (`[research]` for `orrery research run`, and the same keys in
//! each `[[agents.rbi]]`): the model, the fix rounds, the data sets, the out-of-sample
//! split, the promotion thresholds, the backtest options and the research fetch limits.
//!
//! Owns: the keys, their defaults and their checks (each bad value names its key). Never:
//! fetches, asks or backtests anything.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agents::runtime::Schedule;
use crate::backtest::BacktestConfig;
use crate::validate::{join, Issues};

/// What one research → backtest → implement attempt uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbiSettings {
    /// Logical model (`[models.<name>]`) that writes the spec.
    #[serde(default = "default_model")]
    pub model: String,
    /// Repair requests after the first spec: a spec still invalid after this many is
    /// stored rejected.
    #[serde(default = "default_fix_rounds")]
    pub fix_rounds: u32,
    /// OHLCV CSV files the spec is backtested on (in parallel); at least one to judge.
    #[serde(default)]
    pub data: Vec<PathBuf>,
    /// Fraction of each data set's bars, at its end, held out as the out-of-sample part
    /// (the spec is judged in-sample on the rest); 0 turns the out-of-sample check off.
    #[serde(default = "default_out_of_sample")]
    pub out_of_sample: f64,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Execution options of every backtest (backtesting.py's defaults unless set).
    #[serde(default)]
    pub backtest: BacktestConfig,
    /// Deadline of one model request (failover included).
    #[serde(with = "humantime_serde", default = "default_model_timeout")]
    pub model_timeout: Duration,
    /// Most tokens the model may answer with.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub fetch: FetchLimits,
}

/// Limits on reading research (a URL or a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchLimits {
    /// Deadline of the whole fetch (connect, redirects, body).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest body (or file) read, in bytes; a larger one is refused, not cut.
    pub max_bytes: usize,
    /// Redirects followed before the fetch fails.
    pub max_redirects: usize,
    /// Characters of research text put in the prompt; the rest is cut (the record says).
    pub max_chars: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            max_bytes: 2 * 1024 * 1024,
            max_redirects: 5,
            max_chars: 24_000,
        }
    }
}

/// When an attempt is good enough to keep as a candidate. Each data set must pass each
/// check; every miss is a reason in the record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// In-sample return above buy & hold's over the same bars.
    pub beat_buy_hold: bool,
    /// Lowest in-sample Sharpe ratio (backtesting.py's definition; none, without trades,
    /// fails).
    pub min_sharpe: f64,
    /// Deepest in-sample drawdown allowed, in percent (a positive number: 35 allows -35 %).
    pub max_drawdown_pct: f64,
    /// Fewest closed in-sample trades.
    pub min_trades: u64,
    /// Out-of-sample return must be above this, in percent.
    pub oos_min_return_pct: f64,
    /// Out-of-sample Sharpe must be at least this fraction of the in-sample Sharpe.
    pub oos_sharpe_fraction: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            beat_buy_hold: true,
            min_sharpe: 0.5,
            max_drawdown_pct: 35.0,
            min_trades: 5,
            oos_min_return_pct: 0.0,
            oos_sharpe_fraction: 0.5,
        }
    }
}

impl Default for RbiSettings {
    fn default() -> Self {
        Self {
            model: default_model(),
            fix_rounds: default_fix_rounds(),
            data: Vec::new(),
            out_of_sample: default_out_of_sample(),
            thresholds: Thresholds::default(),
            backtest: BacktestConfig::default(),
            model_timeout: default_model_timeout(),
            max_tokens: default_max_tokens(),
            fetch: FetchLimits::default(),
        }
    }
}

fn default_model() -> String {
    "default".into()
}
fn default_fix_rounds() -> u32 {
    3
}
fn default_out_of_sample() -> f64 {
    0.3
}
fn default_model_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_max_tokens() -> u32 {
    2_000
}

/// Most fix rounds accepted (each is one model request).
pub const FIX_ROUNDS_MAX: u32 = 10;

impl RbiSettings {
    /// Checks every key into `issues`, paths under `path`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            !self.model.trim().is_empty(),
            join(path, "model"),
            &self.model,
            "a logical model under [models]",
        );
        issues.check(
            self.fix_rounds <= FIX_ROUNDS_MAX,
            join(path, "fix_rounds"),
            self.fix_rounds,
            format!("0 to {FIX_ROUNDS_MAX} repair requests"),
        );
        issues.check(
            (0.0..=0.9).contains(&self.out_of_sample),
            join(path, "out_of_sample"),
            self.out_of_sample,
            "a fraction from 0 (no out-of-sample check) to 0.9",
        );
        if let Err(e) = self.backtest.validate() {
            issues.check(
                false,
                join(&join(path, "backtest"), e.field),
                e.value,
                e.expected,
            );
        }
        let t = &self.thresholds;
        let tp = join(path, "thresholds");
        issues.check(
            t.min_sharpe.is_finite(),
            join(&tp, "min_sharpe"),
            t.min_sharpe,
            "a finite number",
        );
        issues.check(
            t.max_drawdown_pct > 0.0 && t.max_drawdown_pct <= 100.0,
            join(&tp, "max_drawdown_pct"),
            t.max_drawdown_pct,
            "a percentage above 0 and up to 100 (35 allows a -35 % drawdown)",
        );
        issues.check(
            t.oos_min_return_pct.is_finite(),
            join(&tp, "oos_min_return_pct"),
            t.oos_min_return_pct,
            "a finite number of percent",
        );
        issues.check(
            (0.0..=1.0).contains(&t.oos_sharpe_fraction),
            join(&tp, "oos_sharpe_fraction"),
            t.oos_sharpe_fraction,
            "a fraction from 0 to 1",
        );
        issues.check(
            self.model_timeout >= Duration::from_secs(1)
                && self.model_timeout <= Duration::from_secs(1800),
            join(path, "model_timeout"),
            humantime::format_duration(self.model_timeout).to_string(),
            "a duration from 1s to 30m",
        );
        issues.check(
            (64..=32_000).contains(&self.max_tokens),
            join(path, "max_tokens"),
            self.max_tokens,
            "64 to 32000 tokens",
        );
        let fp = join(path, "fetch");
        let f = &self.fetch;
        issues.check(
            f.timeout >= Duration::from_millis(100) && f.timeout <= Duration::from_secs(300),
            join(&fp, "timeout"),
            humantime::format_duration(f.timeout).to_string(),
            "a duration from 100ms to 5m",
        );
        issues.check(
            (1_024..=64 * 1024 * 1024).contains(&f.max_bytes),
            join(&fp, "max_bytes"),
            f.max_bytes,
            "1024 bytes to 64 MiB",
        );
        issues.check(
            f.max_redirects <= 20,
            join(&fp, "max_redirects"),
            f.max_redirects,
            "0 to 20 redirects",
        );
        issues.check(
            (500..=200_000).contains(&f.max_chars),
            join(&fp, "max_chars"),
            f.max_chars,
            "500 to 200000 characters",
        );
    }
}

/// One RBI agent (`[[agents.rbi]]`): research sources processed once each, at low
/// priority (a long interval, one attempt at a time), with the pipeline's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbiAgentConfig {
    /// Unique agent name; the sources it processed live in sled tree `rbi/<name>`.
    pub name: String,
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run (every pending source is worked through in it, one after the
    /// other; what is left waits for the next run).
    #[serde(with = "humantime_serde", default = "default_run_timeout")]
    pub run_timeout: Duration,
    /// Research files (paths) or `http(s)://` URLs, each processed once.
    #[serde(default)]
    pub sources: Vec<String>,
    /// A directory of research files (`.md`, `.txt`, `.html`, `.htm`); each file is
    /// processed once (by path and content hash: an edited file is processed again).
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default = "default_fix_rounds")]
    pub fix_rounds: u32,
    #[serde(default)]
    pub data: Vec<PathBuf>,
    #[serde(default = "default_out_of_sample")]
    pub out_of_sample: f64,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub backtest: BacktestConfig,
    #[serde(with = "humantime_serde", default = "default_model_timeout")]
    pub model_timeout: Duration,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub fetch: FetchLimits,
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(30)
}
fn default_run_timeout() -> Duration {
    Duration::from_secs(1800)
}

impl RbiAgentConfig {
    /// The pipeline settings of this agent.
    pub fn settings(&self) -> RbiSettings {
        RbiSettings {
            model: self.model.clone(),
            fix_rounds: self.fix_rounds,
            data: self.data.clone(),
            out_of_sample: self.out_of_sample,
            thresholds: self.thresholds,
            backtest: self.backtest,
            model_timeout: self.model_timeout,
            max_tokens: self.max_tokens,
            fetch: self.fetch,
        }
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout,
        }
    }

    /// Checks every key into `issues`, paths under `path` (`agents.rbi[0]`).
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        crate::agents::runtime::validate_keys(path, self.jitter, None, issues);
        issues.check(
            self.interval >= Duration::from_secs(1),
            join(path, "interval"),
            humantime::format_duration(self.interval).to_string(),
            "at least 1s",
        );
        issues.check(
            self.run_timeout >= Duration::from_secs(1)
                && self.run_timeout <= Duration::from_secs(6 * 3600),
            join(path, "run_timeout"),
            humantime::format_duration(self.run_timeout).to_string(),
            "a duration from 1s to 6h",
        );
        issues.check(
            !self.sources.is_empty() || self.inbox.is_some(),
            join(path, "sources"),
            format!("{} sources, no inbox", self.sources.len()),
            "at least one source or an inbox directory",
        );
        issues.check(
            !self.data.is_empty(),
            join(path, "data"),
            "[]",
            "at least one OHLCV CSV file to backtest on",
        );
        self.settings().validate(path, issues);
    }
}
