//! The resource monitor: the actor that samples the process and sets the resource level.
//!
//! Owns: reading RSS and CPU from a [`ReadingSource`] at every tick (the engine's
//! telemetry interval), judging the level with hysteresis ([`super::Thresholds::judge`]),
//! the [`super::ShedGate`], the level's log lines and metrics, and asking the gateway for
//! `Reducing` at `critical` ([`ResourceCritical`]) and for its lift once below
//! ([`ResourceRecovered`]). It also does the process sampler's work
//! ([`crate::telemetry::sample_process`]: the RSS gauge and the recorder's upkeep), since
//! it runs in the engine's telemetry node. Never: pauses an agent's durable state (a shed
//! agent's pause is not written to sled, so an operator's own pause and this one never
//! mix), or changes the mode itself (the gateway decides, on the mode's cause).
//!
//! # Readings
//!
//! [`ProcessReadings`] reads `/proc/self` ([`crate::telemetry::ProcessStats`]).
//! [`FileReadings`] reads a small JSON file instead, named by the environment variable
//! [`READING_FILE_ENV`] (`ORRERY_RESOURCE_READING_FILE`): `{"rss_bytes": N}` and optionally
//! `"cpu_percent": P` (percent of all CPUs); a key left out is read from the process. It
//! exists for tests and for operators who rehearse shedding on a live engine; the file is
//! read at every tick, so editing it moves the level. A reading that cannot be taken is
//! logged (once per distinct error), counted in `orrery_resource_read_errors_total`, and
//! leaves the level as it was.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

use super::{names, LowPriorityWork, ResourceLevel, ResourceStatus, ResourcesConfig, ShedGate};
use crate::clock::SharedClock;
use crate::exchanges::gateway::{OrderGateway, ResourceCritical, ResourceRecovered};
use crate::supervisor::Slot;
use crate::telemetry::{self, ProcessStats};

/// The environment variable naming a [`FileReadings`] file (test / rehearsal override).
pub const READING_FILE_ENV: &str = "ORRERY_RESOURCE_READING_FILE";

/// How long a mode request to the gateway may take.
const GATEWAY_DEADLINE: Duration = Duration::from_secs(5);

/// One reading of the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub rss_bytes: u64,
    pub cpu: CpuReading,
}

/// CPU as the source has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuReading {
    /// Cumulative CPU seconds of the process; the monitor turns it into a share over
    /// `cpu_window`.
    CumulativeSeconds(f64),
    /// Already a share of all CPUs, in percent (an override).
    Percent(f64),
}

/// Why a reading could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the process's memory and CPU from /proc/self (not Linux?); resource levels are not judged")]
    ProcUnavailable,
    #[error("cannot read the resource reading file {path} (set by {READING_FILE_ENV}): {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the resource reading file {path} (set by {READING_FILE_ENV}) is not {{\"rss_bytes\": <integer>, \"cpu_percent\": <0..100>}} (either key optional): {message}")]
    Malformed { path: PathBuf, message: String },
}

/// Where readings come from; injectable so tests set the RSS the monitor sees.
pub trait ReadingSource: 'static {
    fn read(&mut self) -> Result<Reading, ReadError>;
}

/// The process itself (`/proc/self`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessReadings;

impl ReadingSource for ProcessReadings {
    fn read(&mut self) -> Result<Reading, ReadError> {
        let stats = ProcessStats::read().ok_or(ReadError::ProcUnavailable)?;
        Ok(Reading {
            rss_bytes: stats.rss_bytes,
            cpu: CpuReading::CumulativeSeconds(stats.cpu_seconds),
        })
    }
}

/// A JSON file's `rss_bytes` / `cpu_percent`, the process's for a key left out (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct FileReadings {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReading {
    rss_bytes: Option<u64>,
    cpu_percent: Option<f64>,
}

impl FileReadings {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl ReadingSource for FileReadings {
    fn read(&mut self) -> Result<Reading, ReadError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| ReadError::File {
            path: self.path.clone(),
            source,
        })?;
        let given: FileReading = serde_json::from_str(&text).map_err(|e| ReadError::Malformed {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if let Some(p) = given.cpu_percent {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return Err(ReadError::Malformed {
                    path: self.path.clone(),
                    message: format!("cpu_percent {p} is not from 0 to 100"),
                });
            }
        }
        let process = if given.rss_bytes.is_none() || given.cpu_percent.is_none() {
            Some(ProcessReadings.read()?)
        } else {
            None
        };
        Ok(Reading {
            rss_bytes: match (given.rss_bytes, process) {
                (Some(r), _) => r,
                (None, Some(p)) => p.rss_bytes,
                (None, None) => 0,
            },
            cpu: match (given.cpu_percent, process) {
                (Some(p), _) => CpuReading::Percent(p),
                (None, Some(p)) => p.cpu,
                (None, None) => CpuReading::Percent(0.0),
            },
        })
    }
}

/// The source the engine uses: [`FileReadings`] when `ORRERY_RESOURCE_READING_FILE` is set
/// (non-empty) in `env`, else [`ProcessReadings`].
pub fn source_from_env(env: &dyn Fn(&str) -> Option<String>) -> Box<dyn ReadingSource> {
    match env(READING_FILE_ENV).filter(|p| !p.trim().is_empty()) {
        Some(path) => {
            tracing::warn!(file = %path, "resource readings come from {READING_FILE_ENV}, not the process");
            Box::new(FileReadings::new(path))
        }
        None => Box::new(ProcessReadings),
    }
}

/// The actor (see the module docs).
pub struct ResourceMonitor {
    config: ResourcesConfig,
    interval: Duration,
    source: Box<dyn ReadingSource>,
    gate: ShedGate,
    gateway: Option<Slot<OrderGateway>>,
    clock: SharedClock,
    metrics: Option<PrometheusHandle>,
    rss_level: ResourceLevel,
    cpu_level: ResourceLevel,
    /// (when, cumulative CPU seconds), oldest first, spanning at least `cpu_window`.
    cpu_samples: VecDeque<(tokio::time::Instant, f64)>,
    cpus: f64,
    /// A `Reducing` of this cause may be in force and should be lifted: set at start
    /// (one may survive from before a restart) and whenever `critical` is left.
    lift_pending: bool,
    /// A mode request to the gateway is under way; no second one is sent meanwhile.
    asking: bool,
    last_error: Option<String>,
    messages: metrics::Counter,
}

impl ResourceMonitor {
    pub fn new(
        config: ResourcesConfig,
        interval: Duration,
        source: Box<dyn ReadingSource>,
        gate: ShedGate,
        clock: SharedClock,
    ) -> Self {
        Self {
            config,
            interval,
            source,
            gate,
            gateway: None,
            clock,
            metrics: None,
            rss_level: ResourceLevel::Normal,
            cpu_level: ResourceLevel::Normal,
            cpu_samples: VecDeque::new(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0),
            lift_pending: true,
            asking: false,
            last_error: None,
            messages: metrics::Counter::noop(),
        }
    }

    /// At `critical`, the engine moves to `Reducing` through this gateway.
    pub fn with_gateway(mut self, gateway: Slot<OrderGateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Also does the process sampler's work on this recorder (see the module docs).
    pub fn sampling_process(mut self, handle: Option<PrometheusHandle>) -> Self {
        self.metrics = handle;
        self
    }

    /// Counts every tick in `counter`; see
    /// [`crate::supervisor::StartCtx::messages_counter`].
    pub fn counting_messages_in(mut self, counter: metrics::Counter) -> Self {
        self.messages = counter;
        self
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.messages.increment(1);
        telemetry::sample_process(self.metrics.as_ref());
        self.sample();
        self.ask_gateway(ctx);
    }

    /// Reads the source and judges the level; a failed reading leaves it as it was.
    fn sample(&mut self) {
        match self.source.read() {
            Ok(reading) => {
                self.last_error = None;
                self.judge(reading, tokio::time::Instant::now());
            }
            Err(e) => {
                metrics::counter!(names::READ_ERRORS).increment(1);
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "resource reading failed; the resource level stays as it was");
                }
                let mut status = self.gate.status();
                status.read_error = Some(text.clone());
                self.gate.set(status);
                self.last_error = Some(text);
            }
        }
    }

    /// CPU share of all CPUs over the last `cpu_window`, once a whole window was sampled.
    fn cpu_share(&mut self, now: tokio::time::Instant, cumulative: f64) -> Option<f64> {
        self.cpu_samples.push_back((now, cumulative));
        let window = self.config.cpu_window;
        // Keep the newest sample that is at least a window old, and everything after it.
        while self
            .cpu_samples
            .get(1)
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= window)
        {
            self.cpu_samples.pop_front();
        }
        let (t0, c0) = *self.cpu_samples.front()?;
        let span = now.saturating_duration_since(t0);
        if span < window || span.is_zero() {
            return None;
        }
        Some(((cumulative - c0).max(0.0) / span.as_secs_f64() / self.cpus).max(0.0))
    }

    fn judge(&mut self, reading: Reading, now: tokio::time::Instant) {
        let h = self.config.hysteresis();
        let rss = reading.rss_bytes as f64;
        let cpu = match reading.cpu {
            CpuReading::Percent(p) => Some(p / 100.0),
            CpuReading::CumulativeSeconds(s) => self.cpu_share(now, s),
        };
        let rss_t = self.config.rss_thresholds();
        let cpu_t = self.config.cpu_thresholds();
        self.rss_level = rss_t.judge(rss, self.rss_level, h);
        if let Some(c) = cpu {
            self.cpu_level = cpu_t.judge(c, self.cpu_level, h);
        }
        let level = self.rss_level.max(self.cpu_level);
        let reason = if level == ResourceLevel::Normal {
            String::new()
        } else if self.rss_level >= self.cpu_level {
            format!(
                "rss {} MiB, {level} threshold {} MiB",
                mib(rss),
                mib(rss_t.of(level).unwrap_or_default())
            )
        } else {
            format!(
                "cpu {:.1}% of all CPUs over {}, {level} threshold {:.1}%",
                cpu.unwrap_or_default() * 100.0,
                humantime::format_duration(self.config.cpu_window),
                cpu_t.of(level).unwrap_or_default() * 100.0
            )
        };
        let before = self.gate.status();
        let changed = before.level != level;
        if changed {
            metrics::counter!(names::TRANSITIONS, "from" => before.level.as_str(), "to" => level.as_str())
                .increment(1);
            let paused: Vec<&str> = if level.sheds() {
                LowPriorityWork::ALL.iter().map(|w| w.describe()).collect()
            } else {
                Vec::new()
            };
            if level > before.level {
                tracing::warn!(from = %before.level, to = %level, reason = %reason, paused_work = ?paused, "resource level rose");
            } else {
                tracing::info!(from = %before.level, to = %level, reason = %reason, paused_work = ?paused, "resource level fell");
            }
        }
        metrics::gauge!(names::LEVEL).set(level.gauge());
        metrics::gauge!(names::SHED_ACTIVE).set(if level.sheds() { 1.0 } else { 0.0 });
        metrics::gauge!(names::RSS_BYTES).set(rss);
        if let Some(c) = cpu {
            metrics::gauge!(names::CPU_RATIO).set(c);
        }
        self.gate.set(ResourceStatus {
            level,
            reason,
            since_ms: if changed || before.since_ms == 0 {
                self.clock.now_ms()
            } else {
                before.since_ms
            },
            rss_bytes: Some(reading.rss_bytes),
            cpu_percent: cpu.map(|c| c * 100.0).or(before.cpu_percent),
            paused_work: if level.sheds() {
                LowPriorityWork::ALL.to_vec()
            } else {
                Vec::new()
            },
            read_error: None,
        });
        if level == ResourceLevel::Critical {
            self.lift_pending = true;
        }
    }

    /// At `critical`, asks for `Reducing` (at every tick: a gateway restart or another
    /// cause's lift is followed by our own restriction again); below, lifts ours once.
    fn ask_gateway(&mut self, ctx: &mut Context<Self>) {
        let Some(gateway) = self.gateway.clone() else {
            return;
        };
        if self.asking {
            return;
        }
        let status = self.gate.status();
        let critical = status.level == ResourceLevel::Critical;
        if !critical && !self.lift_pending {
            return;
        }
        self.asking = true;
        let fut = async move {
            if critical {
                let reason = format!("resource level critical: {}", status.reason);
                tokio::time::timeout(GATEWAY_DEADLINE, gateway.send(ResourceCritical { reason }))
                    .await
                    .map_err(|_| "timed out".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map(|_| ())
            } else {
                let reason = format!("resource level {} (below critical)", status.level);
                tokio::time::timeout(GATEWAY_DEADLINE, gateway.send(ResourceRecovered { reason }))
                    .await
                    .map_err(|_| "timed out".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map(|_| ())
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |answer, this, _| {
            this.asking = false;
            match answer {
                Ok(()) if !critical => this.lift_pending = false,
                Ok(()) => {}
                // The gateway restarts or has not started yet: asked again next tick.
                Err(e) => tracing::debug!(error = %e, critical, "resource mode request to the gateway not answered; retried at the next sample"),
            }
        }));
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.0}", bytes / (1024.0 * 1024.0))
}

impl Actor for ResourceMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        telemetry::record_start_time();
        for level in [
            ResourceLevel::Warn,
            ResourceLevel::Shed,
            ResourceLevel::Critical,
        ] {
            let rss = self.config.rss_thresholds().of(level).unwrap_or_default();
            let cpu = self.config.cpu_thresholds().of(level).unwrap_or_default();
            metrics::gauge!(names::RSS_THRESHOLD_BYTES, "level" => level.as_str()).set(rss);
            metrics::gauge!(names::CPU_THRESHOLD_RATIO, "level" => level.as_str()).set(cpu);
        }
        // The series exist from the start, so alerts and panels have them at 0.
        metrics::gauge!(names::LEVEL).set(self.gate.level().gauge());
        metrics::gauge!(names::SHED_ACTIVE).set(if self.gate.level().sheds() { 1.0 } else { 0.0 });
        metrics::gauge!(names::CPU_RATIO).set(0.0);
        metrics::counter!(names::READ_ERRORS).increment(0);
        for work in LowPriorityWork::ALL {
            metrics::counter!(names::SHED_REFUSALS, "work" => work.as_str()).increment(0);
        }
        // A restarted monitor judges afresh (levels per reading start at normal) and
        // resets `since`: the first reading sets the level at once, without hysteresis.
        self.tick(ctx);
        ctx.run_interval(self.interval, |this, ctx| this.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::clock::ManualClock;

    /// Readings a test sets.
    #[derive(Clone, Default)]
    struct Injected(Rc<RefCell<Option<Reading>>>);
    impl ReadingSource for Injected {
        fn read(&mut self) -> Result<Reading, ReadError> {
            self.0.borrow().ok_or(ReadError::ProcUnavailable)
        }
    }

    fn mb(n: u64) -> u64 {
        n * 1024 * 1024
    }

    fn monitor(gate: &ShedGate) -> ResourceMonitor {
        let config = ResourcesConfig {
            rss_warn_mb: 100,
            rss_shed_mb: 200,
            rss_critical_mb: 300,
            cpu_window: Duration::from_secs(10),
            ..ResourcesConfig::default()
        };
        let mut m = ResourceMonitor::new(
            config,
            Duration::from_secs(1),
            Box::new(ProcessReadings),
            gate.clone(),
            ManualClock::new(5),
        );
        m.cpus = 2.0;
        m
    }

    fn rss(n: u64) -> Reading {
        Reading {
            rss_bytes: mb(n),
            cpu: CpuReading::Percent(1.0),
        }
    }

    #[test]
    fn rss_moves_the_gate_through_the_levels_with_hysteresis() {
        let gate = ShedGate::new();
        let mut m = monitor(&gate);
        let now = tokio::time::Instant::now();
        m.judge(rss(50), now);
        assert_eq!(gate.level(), ResourceLevel::Normal);
        m.judge(rss(210), now);
        assert_eq!(gate.level(), ResourceLevel::Shed);
        assert_eq!(gate.status().paused_work, LowPriorityWork::ALL.to_vec());
        assert!(gate.admit(LowPriorityWork::SentimentAgent).is_err());
        m.judge(rss(310), now);
        let s = gate.status();
        assert_eq!(s.level, ResourceLevel::Critical);
        assert_eq!(s.reason, "rss 310 MiB, critical threshold 300 MiB");
        // Within the 10% margin of critical (270 MiB): still critical.
        m.judge(rss(280), now);
        assert_eq!(gate.level(), ResourceLevel::Critical);
        m.judge(rss(150), now);
        assert_eq!(gate.level(), ResourceLevel::Warn);
        assert!(gate.status().paused_work.is_empty());
        assert!(gate.admit(LowPriorityWork::SentimentAgent).is_ok());
        m.judge(rss(10), now);
        assert_eq!(gate.level(), ResourceLevel::Normal);
        assert_eq!(gate.status().reason, "");
    }

    #[test]
    fn cpu_counts_only_over_a_whole_window() {
        let gate = ShedGate::new();
        let mut m = monitor(&gate);
        let t0 = tokio::time::Instant::now();
        let at = |cpu_secs: f64| Reading {
            rss_bytes: mb(10),
            cpu: CpuReading::CumulativeSeconds(cpu_secs),
        };
        // Both CPUs busy from the start: not judged until 10 s were sampled.
        m.judge(at(0.0), t0);
        m.judge(at(10.0), t0 + Duration::from_secs(5));
        assert_eq!(gate.level(), ResourceLevel::Normal);
        assert_eq!(gate.status().cpu_percent, None);
        m.judge(at(20.0), t0 + Duration::from_secs(10));
        let s = gate.status();
        assert_eq!(s.level, ResourceLevel::Critical);
        assert_eq!(s.cpu_percent, Some(100.0));
        // Then idle: over the last 10 s (from t=10 to t=20) the share is 0.
        m.judge(at(20.0), t0 + Duration::from_secs(15));
        m.judge(at(20.0), t0 + Duration::from_secs(20));
        assert_eq!(gate.level(), ResourceLevel::Normal);
        assert_eq!(gate.status().cpu_percent, Some(0.0));
    }

    #[test]
    fn file_readings_override_rss_and_report_a_malformed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reading.toml");
        let mut source = FileReadings::new(&path);
        assert!(matches!(source.read(), Err(ReadError::File { .. })));
        std::fs::write(&path, r#"{"rss_bytes": 5000000000, "cpu_percent": 12.5}"#).unwrap();
        assert_eq!(
            source.read().unwrap(),
            Reading {
                rss_bytes: 5_000_000_000,
                cpu: CpuReading::Percent(12.5)
            }
        );
        // Only RSS given: CPU is the process's own.
        std::fs::write(&path, r#"{"rss_bytes": 7}"#).unwrap();
        let r = source.read().unwrap();
        assert_eq!(r.rss_bytes, 7);
        assert!(matches!(r.cpu, CpuReading::CumulativeSeconds(_)));
        std::fs::write(&path, r#"{"rss": "lots"}"#).unwrap();
        let e = source.read().unwrap_err();
        assert!(matches!(e, ReadError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains(READING_FILE_ENV), "{e}");
    }

    #[test]
    fn a_failed_reading_keeps_the_level_and_says_why() {
        let gate = ShedGate::new();
        let injected = Injected::default();
        *injected.0.borrow_mut() = Some(rss(250));
        let mut m = monitor(&gate);
        m.source = Box::new(injected.clone());
        m.sample();
        assert_eq!(gate.level(), ResourceLevel::Shed);
        assert_eq!(gate.status().read_error, None);
        *injected.0.borrow_mut() = None;
        m.sample();
        let s = gate.status();
        assert_eq!(s.level, ResourceLevel::Shed);
        assert!(s.read_error.is_some_and(|e| e.contains("/proc/self")));
        // Readable again: judged at once, the error cleared.
        *injected.0.borrow_mut() = Some(rss(10));
        m.sample();
        let s = gate.status();
        assert_eq!((s.level, s.read_error), (ResourceLevel::Normal, None));
    }
}
