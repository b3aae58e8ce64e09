//! Samples the engine process's resident memory and CPU time from `/proc/self`.
//!
//! Hand-written because it is two small file reads; a crate such as `metrics-process`
//! would export under its own names rather than the `orrery_` scheme.

use std::time::Duration;

use actix::{Actor, AsyncContext, Context};
use metrics_exporter_prometheus::PrometheusHandle;

use super::names;

/// Resident memory and cumulative CPU time of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessStats {
    /// Reads `/proc/self/statm` and `/proc/self/stat`; `None` where they are unavailable.
    pub fn read() -> Option<Self> {
        // SAFETY: sysconf only reads a configuration value; it has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may contain spaces) start after ") ".
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(Self {
            rss_bytes: resident * page.max(1) as u64,
            cpu_seconds: (utime + stime) as f64 / ticks.max(1) as f64,
        })
    }
}

/// Actor that samples [`ProcessStats`] on an interval and runs the recorder's upkeep.
pub struct ProcessSampler {
    interval: Duration,
    handle: Option<PrometheusHandle>,
    /// `orrery_actor_messages_total` of the supervised actor: one per sample.
    messages: metrics::Counter,
}

impl ProcessSampler {
    pub fn new(interval: Duration, handle: Option<PrometheusHandle>) -> Self {
        Self {
            interval,
            handle,
            messages: metrics::Counter::noop(),
        }
    }

    /// Counts every sample in `counter`; see
    /// [`crate::supervisor::StartCtx::messages_counter`].
    pub fn counting_messages_in(mut self, counter: metrics::Counter) -> Self {
        self.messages = counter;
        self
    }

    fn sample(&mut self) {
        self.messages.increment(1);
        sample_process(self.handle.as_ref());
    }
}

/// One sample of the process into its metrics (RSS gauge) plus the recorder's upkeep:
/// the work of [`ProcessSampler`] at each tick, shared with the resource monitor
/// (`crate::shedding::monitor`), which runs it in the engine's telemetry node.
pub fn sample_process(handle: Option<&PrometheusHandle>) {
    if let Some(stats) = ProcessStats::read() {
        metrics::gauge!(names::PROCESS_RSS_BYTES).set(stats.rss_bytes as f64);
        // CPU time is not recorded here: it is read at each scrape and rendered as
        // the counter `orrery_process_cpu_seconds_total` (see `telemetry::render`),
        // since `metrics` counters are integers and CPU seconds are fractional.
    }
    if let Some(h) = handle {
        h.run_upkeep();
    }
}

/// Sets `orrery_process_start_time_seconds` (once, when the sampling actor starts).
pub fn record_start_time() {
    let start = chrono::Utc::now().timestamp() as f64;
    metrics::gauge!(names::PROCESS_START_TIME).set(start);
}

impl Actor for ProcessSampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        record_start_time();
        self.sample();
        ctx.run_interval(self.interval, |this, _| this.sample());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nonzero_rss() {
        let stats = ProcessStats::read().expect("linux /proc");
        assert!(
            stats.rss_bytes > 1024 * 1024,
            "rss {} too small",
            stats.rss_bytes
        );
        assert!(stats.cpu_seconds >= 0.0);
    }
}
