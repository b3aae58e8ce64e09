//! Telemetry: the Prometheus recorder, the catalogue of engine-level metric names, and the
//! process sampler.
//!
//! Owns: installing the process-global recorder (once, by the engine process), histogram
//! buckets, HELP texts for the metrics this module names, sampling RSS, and the text of a
//! scrape ([`render`]: the recorder's exposition plus the process CPU counter). Never:
//! serving HTTP (the process crate does that) or deciding what a component measures — each
//! module records its own metrics and describes them in its own `describe()`.

mod process;

#[cfg(test)]
mod tests;

pub use process::{record_start_time, sample_process, ProcessSampler, ProcessStats};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Names of the engine-level metrics recorded outside a component's own module.
pub mod names {
    pub const PROCESS_RSS_BYTES: &str = "orrery_process_resident_memory_bytes";
    /// A counter read from `/proc/self/stat` at each scrape; see [`super::render`].
    pub const PROCESS_CPU_SECONDS: &str = "orrery_process_cpu_seconds_total";
    pub const PROCESS_START_TIME: &str = "orrery_process_start_time_seconds";
    pub const ENGINE_INFO: &str = "orrery_engine_info";
    pub const ENGINE_UP: &str = "orrery_engine_up";
    pub const TRADING_MODE: &str = "orrery_engine_trading_mode";
    pub const AGENT_RUNS: &str = "orrery_agent_runs_total";
    pub const AGENT_RUN_DURATION: &str = "orrery_agent_run_duration_seconds";
    pub const AGENT_LAST_RUN: &str = "orrery_agent_last_run_timestamp_seconds";
    pub const AGENT_DECISIONS: &str = "orrery_agent_decisions_total";
    pub const ORDERS: &str = "orrery_exchange_orders_total";
    pub const ORDER_LATENCY: &str = "orrery_exchange_order_duration_seconds";
    pub const VENUE_REQUESTS: &str = "orrery_exchange_requests_total";
    pub const VENUE_REQUEST_DURATION: &str = "orrery_exchange_request_duration_seconds";
    pub const CONNECTOR_REQUESTS: &str = "orrery_exchange_connector_requests_total";
    pub const CONNECTOR_UP: &str = "orrery_exchange_connector_up";
    pub const CONNECTOR_FAILOVERS: &str = "orrery_exchange_failovers_total";
    pub const RECONCILE_DRIFT: &str = "orrery_exchange_reconciliation_drift_total";
    pub const UNKNOWN_OUTCOMES: &str = "orrery_exchange_unknown_outcomes_total";
    pub const LEDGER_CORRECTIONS: &str = "orrery_ledger_corrections_total";
    pub const GATEWAY_FENCED: &str = "orrery_gateway_fenced_total";
    pub const RISK_REFUSALS: &str = "orrery_risk_refusals_total";
    pub const RISK_BREACHES: &str = "orrery_risk_breaches_total";
    pub const RISK_PNL_USD: &str = "orrery_risk_pnl_usd";
    pub const ACCOUNT_VALUE_USD: &str = "orrery_exchange_account_value_usd";
    pub const SIGNALS_PUBLISHED: &str = "orrery_signals_published_total";
    pub const SIGNALS_DELIVERED: &str = "orrery_signals_delivered_total";
    pub const SIGNALS_DROPPED: &str = "orrery_signals_dropped_total";
    pub const SIGNALS_KEPT: &str = "orrery_signals_kept";
    // Swarm mode (agents::swarm).
    pub const SWARM_VOTES: &str = "orrery_swarm_votes_total";
    pub const SWARM_VERDICTS: &str = "orrery_swarm_verdicts_total";
    pub const SWARM_QUORUM_LOST: &str = "orrery_swarm_quorum_lost";
    pub const SWARM_FAILED_SHARE: &str = "orrery_swarm_failed_answers_ratio";
    /// Market-data streams (`exchanges::stream`).
    pub const STREAM_CONNECTED: &str = "orrery_stream_connected";
    pub const STREAM_RECONNECTS: &str = "orrery_stream_reconnects_total";
    pub const STREAM_MESSAGES: &str = "orrery_stream_messages_total";
    pub const STREAM_MALFORMED: &str = "orrery_stream_malformed_frames_total";
    pub const STREAM_LAST_MESSAGE_AGE: &str = "orrery_stream_last_message_age_seconds";
    pub const STREAM_RESYNCS: &str = "orrery_stream_resyncs_total";
    /// Liquidations seen on derivatives streams (`exchanges::stream::derivatives`).
    pub const LIQUIDATIONS: &str = "orrery_liquidations_total";
    pub const LIQUIDATION_NOTIONAL_USD: &str = "orrery_liquidation_notional_usd_total";
    /// Order states and fills a user stream pushed, by outcome (`exchanges::gateway::pushed`).
    pub const STREAM_PUSHED: &str = "orrery_stream_pushed_total";
}

/// Latency buckets (seconds) shared by every `_seconds` histogram: 100 µs to 2 min.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Builds the recorder with explicit buckets for every histogram, so the exposition has
/// real histograms (not summaries) that `promtool check metrics` accepts.
pub fn build_recorder() -> PrometheusRecorder {
    // Default buckets for every histogram, so none is rendered as a summary.
    match PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS) {
        Ok(b) => b.build_recorder(),
        // Only reachable with an empty bucket list, which LATENCY_BUCKETS is not.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    }
}

/// Installs the process-global recorder once and returns a handle that renders the
/// exposition; every later call (a second engine in the same process) gets the same
/// handle, so every engine of the process serves the one shared registry.
///
/// The `metrics` recorder is process-global by that crate's design: series of several
/// engines in one process are therefore summed under the same names and labels. Returns
/// `None` only when something else (an embedding program) installed its own global
/// recorder first; the engine's metrics then go to that recorder and its `/metrics`
/// answers 503.
pub fn install_global_recorder() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// HELP text of [`names::PROCESS_CPU_SECONDS`].
const PROCESS_CPU_HELP: &str = "Cumulative CPU time (user + system) used by the engine process.";

/// The exposition of `handle`, plus the process CPU counter read now.
///
/// CPU time is fractional seconds, and `metrics` counters are integers (a gauge would be
/// the wrong type: `rate()` needs a counter). Like the Prometheus clients' process
/// collectors, it is read from `/proc/self/stat` at each scrape, so it is exact and
/// monotonic, and appended as its own family. Absent where `/proc` is unavailable.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    if let Some(stats) = ProcessStats::read() {
        append_cpu_counter(&mut text, stats.cpu_seconds);
    }
    text
}

fn append_cpu_counter(text: &mut String, cpu_seconds: f64) {
    use std::fmt::Write;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let name = names::PROCESS_CPU_SECONDS;
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "# HELP {name} {PROCESS_CPU_HELP}\n# TYPE {name} counter\n{name} {cpu_seconds}\n"
    );
}

/// HELP texts for the metrics named in [`names`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        names::PROCESS_RSS_BYTES,
        Unit::Bytes,
        "Resident set size of the engine process."
    );
    describe_gauge!(
        names::PROCESS_START_TIME,
        Unit::Seconds,
        "Start time of the engine process since the Unix epoch."
    );
    describe_gauge!(
        names::ENGINE_INFO,
        "Constant 1, labelled with the engine version."
    );
    describe_gauge!(
        names::ENGINE_UP,
        "1 while the engine runs, 0 once it is shutting down."
    );
    describe_gauge!(
        names::TRADING_MODE,
        "Trading state: 0 normal, 1 reducing (risk-reducing orders only), 2 halted (cancels only)."
    );
    describe_counter!(
        names::AGENT_RUNS,
        "Agent runs by agent and outcome (ok, error, timeout: cut at run_timeout, skipped_busy: the previous run was still going, skipped_paused, skipped_shed: a low-priority agent while the engine sheds load, skipped_not_owner: another node of the cluster holds the agent's lease, skipped_mode: the trading mode allowed no model call)."
    );
    describe_gauge!(
        names::AGENT_LAST_RUN,
        Unit::Seconds,
        "When each agent's last run ended (whatever its outcome), seconds since the Unix epoch."
    );
    describe_histogram!(
        names::AGENT_RUN_DURATION,
        Unit::Seconds,
        "Duration of one agent run."
    );
    describe_counter!(
        names::AGENT_DECISIONS,
        "Decisions made by agents, by agent, symbol and action."
    );
    describe_counter!(
        names::ORDERS,
        "Orders by venue, side and final or current status."
    );
    describe_histogram!(
        names::ORDER_LATENCY,
        Unit::Seconds,
        "Time from order intent to the venue's answer, ledger write included."
    );
    describe_counter!(
        names::VENUE_REQUESTS,
        "Venue requests by venue, endpoint and outcome."
    );
    describe_histogram!(
        names::VENUE_REQUEST_DURATION,
        Unit::Seconds,
        "Venue request latency by venue and endpoint."
    );
    describe_counter!(
        names::CONNECTOR_REQUESTS,
        "Venue calls served by each connector of a venue account, by venue, connector and outcome."
    );
    describe_gauge!(
        names::CONNECTOR_UP,
        "Whether a connector of a venue account runs (1) or is dead or restarting (0), by venue and connector."
    );
    describe_counter!(
        names::CONNECTOR_FAILOVERS,
        "Gateway calls that left a connector for a sibling of the same venue account, by venue, the connector left and why (connector_down, endpoint_failed)."
    );
    describe_counter!(names::LEDGER_CORRECTIONS, "Finished ledger entries (e.g. rejected as never sent) that a later fill showed wrong and reconciliation corrected, by venue.");
    describe_counter!(names::GATEWAY_FENCED, "Order flows, cancels and leverage updates of a replaced (restarted) order gateway stopped before their send, by venue.");
    describe_counter!(names::RECONCILE_DRIFT, "Ledger entries whose state differed from the venue's at reconciliation, by venue and kind.");
    describe_counter!(
        names::UNKNOWN_OUTCOMES,
        "Cancels and leverage updates whose answer was lost, by venue, action and how the venue's read settled them (applied, not_applied, unresolved)."
    );
    describe_counter!(
        names::RISK_REFUSALS,
        "Orders refused by the risk gate, by venue and reason."
    );
    describe_counter!(
        names::RISK_BREACHES,
        "Risk limit breaches, by venue and limit."
    );
    describe_gauge!(
        names::RISK_PNL_USD,
        "Profit and loss in USD since the risk window's baseline, by venue."
    );
    describe_gauge!(
        names::ACCOUNT_VALUE_USD,
        "Account value (equity) in USD, by venue."
    );
    describe_counter!(
        names::SIGNALS_PUBLISHED,
        "Signals accepted by the signal bus, by kind and source."
    );
    describe_counter!(
        names::SIGNALS_DELIVERED,
        "Signals handed to a subscriber's mailbox (one per matching subscriber)."
    );
    describe_counter!(
        names::SIGNALS_DROPPED,
        "Signals or deliveries lost, by reason: subscriber_full (a subscriber's mailbox was full), subscriber_gone (it had stopped), evicted (over [signals] max_kept), expired (past its TTL), bus_unavailable (an agent's verdict found the bus restarting or full)."
    );
    describe_gauge!(
        names::SIGNALS_KEPT,
        "Unexpired signals the signal bus keeps (memory and sled)."
    );
    describe_swarm();
}

/// The swarm's metrics (see `agents::swarm`).
fn describe_swarm() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        names::SWARM_VOTES,
        "Swarm members' ballots, by agent and vote (buy, sell, nothing, timeout, error, unparseable)."
    );
    describe_counter!(
        names::SWARM_VERDICTS,
        "Swarm verdicts, by agent, verdict (BUY, SELL, NOTHING) and reason (quorum, no_quorum, conflict)."
    );
    describe_gauge!(
        names::SWARM_QUORUM_LOST,
        "1 while a swarm agent has lost its quorum of working members (the engine is then reducing-only), else 0; by agent."
    );
    describe_gauge!(
        names::SWARM_FAILED_SHARE,
        "Share of a swarm agent's member answers that failed (timeout, error, unreadable) over its quorum_loss window, by agent."
    );
}
