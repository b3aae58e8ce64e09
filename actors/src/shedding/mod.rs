//! Resource shedding: the engine's answer to memory and CPU pressure (the seed system's
//! resource and memory management).
//!
//! Four levels, judged on the process's resident memory (RSS) and its CPU use against the
//! `[resources]` thresholds ([`ResourcesConfig`]):
//!
//! | level      | gauge | what happens                                                        |
//! |------------|-------|---------------------------------------------------------------------|
//! | `normal`   | 0     | nothing                                                             |
//! | `warn`     | 1     | a warning in the log and the metrics                                |
//! | `shed`     | 2     | low-priority work pauses ([`LowPriorityWork`]); refused work answers 503 `shedding` |
//! | `critical` | 3     | as `shed`, and the engine moves to `Reducing` (cause `resource_shedding`) |
//!
//! A level rises as soon as one reading reaches its threshold, and falls only once the
//! reading is below the threshold minus the hysteresis margin (`hysteresis_percent` of
//! the threshold), so a reading hovering at a threshold does not flap. The overall level is
//! the higher of the RSS and the CPU level. CPU is the process's CPU time over the last
//! `cpu_window`, as a share of all the machine's CPUs; it counts once a whole window has
//! been sampled (a start's burst is not judged).
//!
//! Owns: the levels and their thresholds, the [`ShedGate`] that low-priority work consults
//! before it starts, and the [`monitor::ResourceMonitor`] actor that samples and judges.
//! Never: stops work already running (a research run in progress finishes), touches
//! trading directly (at `critical` it asks the gateway, which owns the mode, and it lifts
//! only a `Reducing` it set), or sheds anything that protects money (trading, risk,
//! reconciliation, cancels).

pub mod monitor;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::validate::{join, Issues};

/// Metric names of resource shedding.
pub mod names {
    /// 0 normal, 1 warn, 2 shed, 3 critical.
    pub const LEVEL: &str = "orrery_resource_level";
    /// 1 while low-priority work is paused (level shed or critical).
    pub const SHED_ACTIVE: &str = "orrery_resource_shed_active";
    /// The RSS reading the levels were judged on.
    pub const RSS_BYTES: &str = "orrery_resource_rss_bytes";
    /// The CPU reading the levels were judged on (share of all CPUs, 0..1).
    pub const CPU_RATIO: &str = "orrery_resource_cpu_ratio";
    /// The configured RSS thresholds, by level.
    pub const RSS_THRESHOLD_BYTES: &str = "orrery_resource_rss_threshold_bytes";
    /// The configured CPU thresholds, by level (share of all CPUs, 0..1).
    pub const CPU_THRESHOLD_RATIO: &str = "orrery_resource_cpu_threshold_ratio";
    /// Level changes, by `from` and `to`.
    pub const TRANSITIONS: &str = "orrery_resource_level_transitions_total";
    /// Low-priority work refused (or a scheduled run skipped) while shedding, by work.
    pub const SHED_REFUSALS: &str = "orrery_resource_shed_refusals_total";
    /// Readings that could not be taken (source unreadable or malformed).
    pub const READ_ERRORS: &str = "orrery_resource_read_errors_total";
}

/// HELP texts of [`names`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        names::LEVEL,
        "Resource level of the engine process: 0 normal, 1 warn, 2 shed (low-priority work paused), 3 critical (also reducing-only)."
    );
    describe_gauge!(
        names::SHED_ACTIVE,
        "1 while low-priority work (research runs, sentiment polling, API research and replays) is paused for resource pressure, else 0."
    );
    describe_gauge!(
        names::RSS_BYTES,
        Unit::Bytes,
        "Resident memory of the engine process as the resource monitor last read it."
    );
    describe_gauge!(
        names::CPU_RATIO,
        "CPU use of the engine process over [resources] cpu_window as a share of all CPUs (0 to 1), as the resource monitor last judged it."
    );
    describe_gauge!(
        names::RSS_THRESHOLD_BYTES,
        Unit::Bytes,
        "Configured RSS thresholds of the resource levels, by level (warn, shed, critical)."
    );
    describe_gauge!(
        names::CPU_THRESHOLD_RATIO,
        "Configured CPU thresholds of the resource levels as a share of all CPUs, by level (warn, shed, critical)."
    );
    describe_counter!(
        names::TRANSITIONS,
        "Changes of the resource level, by from and to level."
    );
    describe_counter!(
        names::SHED_REFUSALS,
        "Low-priority work refused or skipped while shedding, by work (research_agent, sentiment_agent, api_research, api_replay)."
    );
    describe_counter!(
        names::READ_ERRORS,
        "Resource readings that could not be taken (the reading source was unreadable or malformed); the level then stays as it was."
    );
}

/// How loaded the engine process is; ordered from `Normal` to `Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceLevel {
    #[default]
    Normal,
    Warn,
    Shed,
    Critical,
}

impl ResourceLevel {
    pub const ALL: [ResourceLevel; 4] = [
        ResourceLevel::Normal,
        ResourceLevel::Warn,
        ResourceLevel::Shed,
        ResourceLevel::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceLevel::Normal => "normal",
            ResourceLevel::Warn => "warn",
            ResourceLevel::Shed => "shed",
            ResourceLevel::Critical => "critical",
        }
    }

    /// Value of the `orrery_resource_level` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            ResourceLevel::Normal => 0.0,
            ResourceLevel::Warn => 1.0,
            ResourceLevel::Shed => 2.0,
            ResourceLevel::Critical => 3.0,
        }
    }

    /// Whether low-priority work pauses at this level.
    pub fn sheds(self) -> bool {
        self >= ResourceLevel::Shed
    }
}

impl fmt::Display for ResourceLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[resources]`: the thresholds of the resource levels (see the module docs).
///
/// RSS in MiB; CPU in percent of all the machine's CPUs (100 = every CPU busy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesConfig {
    pub rss_warn_mb: u64,
    pub rss_shed_mb: u64,
    pub rss_critical_mb: u64,
    pub cpu_warn_percent: f64,
    pub cpu_shed_percent: f64,
    pub cpu_critical_percent: f64,
    /// The window CPU use is averaged over.
    #[serde(with = "humantime_serde")]
    pub cpu_window: Duration,
    /// A level is left once its reading is below the threshold minus this share of it
    /// (in percent of the threshold).
    pub hysteresis_percent: f64,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self {
            rss_warn_mb: 1024,
            rss_shed_mb: 2048,
            rss_critical_mb: 3072,
            cpu_warn_percent: 80.0,
            cpu_shed_percent: 90.0,
            cpu_critical_percent: 98.0,
            cpu_window: Duration::from_secs(60),
            hysteresis_percent: 10.0,
        }
    }
}

const MIB: u64 = 1024 * 1024;

impl ResourcesConfig {
    /// Pushes one issue per bad key: each threshold positive and `warn < shed <
    /// critical`, CPU thresholds at most 100 %, the window 1 s to 1 h, the hysteresis
    /// from 0 to 50 %.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        let rss = [
            ("rss_warn_mb", self.rss_warn_mb),
            ("rss_shed_mb", self.rss_shed_mb),
            ("rss_critical_mb", self.rss_critical_mb),
        ];
        for (key, v) in rss {
            issues.check(
                (1..=16 * 1024 * 1024).contains(&v),
                join(path, key),
                v,
                "a size in MiB from 1 to 16777216",
            );
        }
        issues.check(
            self.rss_warn_mb < self.rss_shed_mb,
            join(path, "rss_shed_mb"),
            self.rss_shed_mb,
            format!("more than rss_warn_mb ({})", self.rss_warn_mb),
        );
        issues.check(
            self.rss_shed_mb < self.rss_critical_mb,
            join(path, "rss_critical_mb"),
            self.rss_critical_mb,
            format!("more than rss_shed_mb ({})", self.rss_shed_mb),
        );
        let cpu = [
            ("cpu_warn_percent", self.cpu_warn_percent),
            ("cpu_shed_percent", self.cpu_shed_percent),
            ("cpu_critical_percent", self.cpu_critical_percent),
        ];
        for (key, v) in cpu {
            issues.check(
                v.is_finite() && v > 0.0 && v <= 100.0,
                join(path, key),
                v,
                "a percentage of all CPUs above 0 and at most 100",
            );
        }
        issues.check(
            self.cpu_warn_percent < self.cpu_shed_percent,
            join(path, "cpu_shed_percent"),
            self.cpu_shed_percent,
            format!("more than cpu_warn_percent ({})", self.cpu_warn_percent),
        );
        issues.check(
            self.cpu_shed_percent < self.cpu_critical_percent,
            join(path, "cpu_critical_percent"),
            self.cpu_critical_percent,
            format!("more than cpu_shed_percent ({})", self.cpu_shed_percent),
        );
        issues.check(
            (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.cpu_window),
            join(path, "cpu_window"),
            humantime::format_duration(self.cpu_window).to_string(),
            "a duration from 1s to 1h",
        );
        issues.check(
            self.hysteresis_percent.is_finite() && (0.0..=50.0).contains(&self.hysteresis_percent),
            join(path, "hysteresis_percent"),
            self.hysteresis_percent,
            "a percentage of the threshold from 0 to 50",
        );
    }

    /// RSS thresholds in bytes: warn, shed, critical.
    pub fn rss_thresholds(&self) -> Thresholds {
        Thresholds([
            (self.rss_warn_mb * MIB) as f64,
            (self.rss_shed_mb * MIB) as f64,
            (self.rss_critical_mb * MIB) as f64,
        ])
    }

    /// CPU thresholds as shares of all CPUs (0..1): warn, shed, critical.
    pub fn cpu_thresholds(&self) -> Thresholds {
        Thresholds([
            self.cpu_warn_percent / 100.0,
            self.cpu_shed_percent / 100.0,
            self.cpu_critical_percent / 100.0,
        ])
    }

    /// The hysteresis margin as a fraction of a threshold.
    pub fn hysteresis(&self) -> f64 {
        self.hysteresis_percent / 100.0
    }
}

/// The warn, shed and critical thresholds of one reading, ascending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds(pub [f64; 3]);

impl Thresholds {
    /// The threshold of `level` (`None` for `Normal`, which has none).
    pub fn of(&self, level: ResourceLevel) -> Option<f64> {
        match level {
            ResourceLevel::Normal => None,
            ResourceLevel::Warn => Some(self.0[0]),
            ResourceLevel::Shed => Some(self.0[1]),
            ResourceLevel::Critical => Some(self.0[2]),
        }
    }

    /// The level of `value` given the level it was at (`current`): any level whose
    /// threshold `value` reaches is entered at once; a level already held is kept while
    /// `value` stays at or above its threshold × (1 − `hysteresis`).
    pub fn judge(&self, value: f64, current: ResourceLevel, hysteresis: f64) -> ResourceLevel {
        let reached = ResourceLevel::ALL
            .into_iter()
            .rev()
            .find(|l| self.of(*l).is_none_or(|t| value >= t))
            .unwrap_or(ResourceLevel::Normal);
        if reached >= current {
            return reached;
        }
        // Falling: hold the highest level up to `current` whose lowered threshold is
        // still reached.
        ResourceLevel::ALL
            .into_iter()
            .rev()
            .filter(|l| *l <= current && *l > reached)
            .find(|l| self.of(*l).is_some_and(|t| value >= t * (1.0 - hysteresis)))
            .unwrap_or(reached)
    }
}

/// Low-priority work: what pauses first when the engine sheds load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LowPriorityWork {
    /// Scheduled runs (and run-now) of research → backtest → implement agents.
    ResearchAgent,
    /// Scheduled runs (and run-now) of sentiment agents (news polling and scoring).
    SentimentAgent,
    /// `POST /api/research/run` (research with its backtests) on the running engine.
    ApiResearch,
    /// `POST /api/replay` (a journaled decision replayed against models).
    ApiReplay,
}

impl LowPriorityWork {
    pub const ALL: [LowPriorityWork; 4] = [
        LowPriorityWork::ResearchAgent,
        LowPriorityWork::SentimentAgent,
        LowPriorityWork::ApiResearch,
        LowPriorityWork::ApiReplay,
    ];

    /// The `work` label of [`names::SHED_REFUSALS`].
    pub fn as_str(self) -> &'static str {
        match self {
            LowPriorityWork::ResearchAgent => "research_agent",
            LowPriorityWork::SentimentAgent => "sentiment_agent",
            LowPriorityWork::ApiResearch => "api_research",
            LowPriorityWork::ApiReplay => "api_replay",
        }
    }

    /// What the operator reads.
    pub fn describe(self) -> &'static str {
        match self {
            LowPriorityWork::ResearchAgent => "research (RBI) agent runs",
            LowPriorityWork::SentimentAgent => "sentiment agent polling",
            LowPriorityWork::ApiResearch => "research runs and their backtests via the API",
            LowPriorityWork::ApiReplay => "decision replays via the API",
        }
    }
}

/// Why low-priority work was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("paused while the engine sheds load: {work} (resource level {level}: {reason}); this resumes by itself once the reading falls below its threshold minus the hysteresis margin")]
pub struct Shed {
    pub work: &'static str,
    pub level: ResourceLevel,
    pub reason: String,
}

/// The resource state as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ResourceStatus {
    pub level: ResourceLevel,
    /// Which reading set the level and how (`rss 5.0 GiB >= shed 2.0 GiB`); empty at
    /// `normal`.
    pub reason: String,
    /// When the level was entered, Unix ms (0 before the first reading).
    pub since_ms: Millis,
    /// The last RSS reading, bytes (`None` before the first reading).
    pub rss_bytes: Option<u64>,
    /// The last CPU reading, percent of all CPUs (`None` until a whole `cpu_window`
    /// was sampled).
    pub cpu_percent: Option<f64>,
    /// Low-priority work paused now (empty below `shed`).
    pub paused_work: Vec<LowPriorityWork>,
    /// Why the last reading could not be taken, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
}

/// The gate low-priority work consults before it starts; the [`monitor::ResourceMonitor`]
/// sets it. Cloneable; every clone is the same gate. Lives outside the monitor (the engine
/// holds it), so a restarted monitor and every consumer share it.
#[derive(Clone, Default)]
pub struct ShedGate(Arc<RwLock<ResourceStatus>>);

impl ShedGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok` when `work` may start now; else why not (and the refusal is counted).
    pub fn admit(&self, work: LowPriorityWork) -> Result<(), Shed> {
        let state = self.0.read();
        if !state.level.sheds() {
            return Ok(());
        }
        metrics::counter!(names::SHED_REFUSALS, "work" => work.as_str()).increment(1);
        Err(Shed {
            work: work.describe(),
            level: state.level,
            reason: state.reason.clone(),
        })
    }

    /// The current level, reason and readings.
    pub fn status(&self) -> ResourceStatus {
        self.0.read().clone()
    }

    pub fn level(&self) -> ResourceLevel {
        self.0.read().level
    }

    /// Replaces the state: the resource monitor's call (and a test's, to stand in for it).
    pub fn set(&self, status: ResourceStatus) {
        *self.0.write() = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceLevel::*;

    fn t() -> Thresholds {
        Thresholds([100.0, 200.0, 300.0])
    }

    #[test]
    fn levels_rise_at_once_and_fall_below_threshold_minus_hysteresis() {
        let h = 0.1;
        assert_eq!(t().judge(50.0, Normal, h), Normal);
        assert_eq!(t().judge(100.0, Normal, h), Warn);
        assert_eq!(t().judge(350.0, Normal, h), Critical);
        // Just below critical: held by the margin (270 is critical's lowered threshold).
        assert_eq!(t().judge(280.0, Critical, h), Critical);
        assert_eq!(t().judge(269.0, Critical, h), Shed);
        // Far below: straight down to what the value reaches, with shed's margin.
        assert_eq!(t().judge(185.0, Critical, h), Shed);
        assert_eq!(t().judge(179.0, Critical, h), Warn);
        assert_eq!(t().judge(10.0, Critical, h), Normal);
        // No hysteresis: falls at the threshold itself.
        assert_eq!(t().judge(299.0, Critical, 0.0), Shed);
        // A held level never exceeds the current one.
        assert_eq!(t().judge(190.0, Warn, h), Warn);
    }

    #[test]
    fn validation_names_each_bad_key() {
        let mut issues = Issues::default();
        ResourcesConfig::default().validate("resources", &mut issues);
        assert!(issues.is_empty(), "{issues:?}");

        let bad = ResourcesConfig {
            rss_warn_mb: 2048,
            rss_shed_mb: 1024,
            cpu_critical_percent: 150.0,
            hysteresis_percent: 80.0,
            cpu_window: Duration::from_millis(10),
            ..ResourcesConfig::default()
        };
        let mut issues = Issues::default();
        bad.validate("resources", &mut issues);
        let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "resources.rss_shed_mb",
                "resources.cpu_critical_percent",
                "resources.cpu_window",
                "resources.hysteresis_percent"
            ]
        );
    }

    #[test]
    fn the_gate_refuses_low_priority_work_only_while_shedding() {
        let gate = ShedGate::new();
        assert!(gate.admit(LowPriorityWork::ApiReplay).is_ok());
        gate.set(ResourceStatus {
            level: Warn,
            ..ResourceStatus::default()
        });
        assert!(gate.admit(LowPriorityWork::ApiReplay).is_ok());
        gate.set(ResourceStatus {
            level: Shed,
            reason: "rss 2.1 GiB >= shed 2 GiB".into(),
            ..ResourceStatus::default()
        });
        let refused = gate.admit(LowPriorityWork::ApiReplay).unwrap_err();
        assert_eq!(refused.level, Shed);
        assert!(
            refused.to_string().contains("decision replays via the API")
                && refused.to_string().contains("rss 2.1 GiB >= shed 2 GiB"),
            "{refused}"
        );
    }
}
