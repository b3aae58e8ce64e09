//! The funding agent (`[[agents.funding]]`): watches the funding rate of perpetuals on one
//! or more venues, judges each against its thresholds and its own settled history, and
//! publishes a `funding` signal when a symbol's funding becomes extreme, changes side or
//! returns to normal.
//!
//! One run ([`FundingAgent`], run by the agent runtime like every agent), per venue and
//! symbol:
//! 1. the current rate: the venue's fresh mark-price stream (Binance USDⓈ-M
//!    `markPrice@1s`) while the feed is fresh, else the venue's REST snapshot
//!    ([`DerivativesData::funding`]: Binance `premiumIndex`, Hyperliquid
//!    `metaAndAssetCtxs`). The REST snapshot is also read when the venue's funding interval
//!    is not known yet and once per settlement (to keep the interval current);
//! 2. the settled history ([`DerivativesData::funding_history`], the last `history`
//!    rates), cached in sled and refetched only when a reading names a later settlement
//!    than the cache covers (once per funding interval, not every run);
//! 3. annualized rate (rate × settlements per year) and the z-score of the rate against
//!    the history; the state ([`stats`]): normal, extreme positive (longs pay: crowded
//!    longs) or extreme negative (shorts pay) by either threshold;
//! 4. a state different from the last one published becomes a signal on the bus (kind
//!    `funding`, value the rate, direction against the paying crowd, evidence with venue,
//!    symbol, rate, annualized %, z-score, interval, state and, with `model`, the model's
//!    one-paragraph comment — a model failure costs the comment only and is journaled).
//!    The published state is flushed to sled, so neither the next run nor a restart
//!    publishes it again; a signal the bus could not take is tried again next run;
//! 5. the gauges `orrery_funding_rate_annualized_pct{venue,symbol}` and
//!    `orrery_funding_zscore{venue,symbol}`; a venue error is counted in
//!    `orrery_funding_errors_total{agent,venue,kind}`, logged and journaled, and never
//!    stops the other symbols.
//!
//! Every run is journaled (one summary record: each reading's inputs and outputs, the
//! signals, the failures; plus each comment request with its exact prompt and answer) and
//! logged in one `info` line.
//!
//! Owns: the tree `funding/<name>` and the metrics above. Never: trades, calls another
//! agent, or opens a venue itself — its readers come from the engine's venue factory
//! (`orrery::market::open_reader`), so any venue implementing [`DerivativesData`] works.

pub mod comment;
pub mod config;
pub mod state;
pub mod stats;

pub use config::FundingAgentConfig;
pub use state::{FundingAgentState, SymbolState};
pub use stats::FundingState;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::journal::{self, DecisionJournal, DecisionRecord, JournalReceipt};
use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::derivatives::{annualized_pct, DerivativesData};
use crate::exchanges::stream::StreamBook;
use crate::exchanges::VenueError;
use crate::models::ModelClient;
use crate::signals::{self, SignalBus, SignalInput, SignalKind};
use crate::store::StoreError;
use crate::supervisor::Slot;
use state::{CachedHistory, Reading};
use stats::Thresholds;

/// Metric names of the funding agent.
pub mod names {
    /// Current funding rate, annualized, in percent.
    pub const RATE_ANNUALIZED_PCT: &str = "orrery_funding_rate_annualized_pct";
    /// Z-score of the current rate against the settled history.
    pub const ZSCORE: &str = "orrery_funding_zscore";
    /// Reads that failed (venue error kinds) and comments that failed (`model`).
    pub const ERRORS: &str = "orrery_funding_errors_total";
    /// Funding signals published, by state.
    pub const SIGNALS: &str = "orrery_funding_signals_total";
}

/// HELP texts of the metrics in [`names`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        names::RATE_ANNUALIZED_PCT,
        "Current funding rate of a perpetual, annualized (rate x settlements per 365-day year), in percent."
    );
    describe_gauge!(
        names::ZSCORE,
        "Z-score of the current funding rate against the settled history a funding agent keeps (0 when the history is too short or flat)."
    );
    describe_counter!(
        names::ERRORS,
        "Funding agent failures by agent, venue and kind (the venue error's kind, or model for a comment request)."
    );
    describe_counter!(
        names::SIGNALS,
        "Funding signals published by agent and state (extreme_positive, extreme_negative, normal)."
    );
}

/// What a funding agent needs, cloneable into a run's future.
#[derive(Clone)]
pub struct FundingDeps {
    /// One reader per configured venue, from the engine's venue factory.
    pub readers: BTreeMap<String, Arc<dyn DerivativesData>>,
    /// The engine's streams: a venue's fresh mark price gives the current rate.
    pub streams: Option<StreamBook>,
    pub models: ModelClient,
    pub signals: Slot<SignalBus>,
    pub journal: DecisionJournal,
    pub state: FundingAgentState,
    pub clock: SharedClock,
}

/// The funding agent as the runtime runs it.
pub struct FundingAgent {
    config: Arc<FundingAgentConfig>,
    deps: FundingDeps,
}

impl FundingAgent {
    pub fn new(config: FundingAgentConfig, deps: FundingDeps) -> Self {
        Self {
            config: Arc::new(config),
            deps,
        }
    }
}

impl AgentKind for FundingAgent {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> Kind {
        Kind::Funding
    }
    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }
    fn started(&self) {
        // The series exist from start, so an alert on an increase works from the first one.
        for venue in self.config.all_venues() {
            for kind in ["unavailable", "timeout", "malformed", "rate_limited"] {
                metrics::counter!(names::ERRORS, "agent" => self.config.name.clone(), "venue" => venue.clone(), "kind" => kind)
                    .increment(0);
            }
        }
    }
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps) = (self.config.clone(), self.deps.clone());
        Box::pin(async move {
            match run_once(&config, &deps).await {
                Ok(report) if report.failures.is_empty() => RunOutcome::Ok,
                Ok(report) => RunOutcome::Error(report.failures.join("; ")),
                Err(e) => RunOutcome::Error(format!("funding state in the data dir: {e}")),
            }
        })
    }
}

/// One symbol's reading in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolReport {
    pub venue: String,
    pub symbol: String,
    pub rate: Decimal,
    pub annualized_pct: Decimal,
    pub zscore: Option<f64>,
    pub interval_hours: u32,
    /// `stream` or `rest`.
    pub source: &'static str,
    /// Settled rates the z-score was measured against.
    pub history: usize,
    /// The history was (re)fetched this run.
    pub history_fetched: bool,
    pub state: FundingState,
}

/// What one run did (for tests and the run's outcome).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub readings: Vec<SymbolReport>,
    /// Signals handed to the bus: (venue, symbol, state).
    pub signals: Vec<(String, String, FundingState)>,
    /// What failed (a venue read, the bus), one line each: the run's error.
    pub failures: Vec<String>,
    /// Comments that could not be had (the signal went out without one).
    pub comment_failures: Vec<String>,
}

/// One run (see the module docs). `Err` only when the agent's own state cannot be read
/// or written; everything else that fails is in the report.
pub async fn run_once(
    config: &FundingAgentConfig,
    deps: &FundingDeps,
) -> Result<RunReport, StoreError> {
    let mut report = RunReport::default();
    let mut receipts = Vec::new();
    let now = deps.clock.now_ms();
    for venue in config.all_venues() {
        let Some(reader) = deps.readers.get(&venue).cloned() else {
            // The engine opens a reader per configured venue; a missing one is a wiring
            // error, reported rather than ignored.
            report.failures.push(format!(
                "venue `{venue}`: no funding reader was opened for it"
            ));
            continue;
        };
        for symbol in &config.symbols {
            read_symbol(
                config,
                deps,
                &venue,
                reader.as_ref(),
                symbol,
                now,
                &mut report,
                &mut receipts,
            )
            .await?;
        }
    }
    log_run(config, &report);
    receipts.push(journal_summary(config, deps, now, &report));
    for r in journal::wait_all(receipts).await {
        if let Err(e) = r {
            report.failures.push(format!("journal: {e}"));
        }
    }
    Ok(report)
}

fn count_error(config: &FundingAgentConfig, venue: &str, kind: &'static str) {
    metrics::counter!(names::ERRORS, "agent" => config.name.clone(), "venue" => venue.to_string(), "kind" => kind)
        .increment(1);
}

fn venue_failure(
    config: &FundingAgentConfig,
    venue: &str,
    symbol: &str,
    what: &str,
    e: &VenueError,
    report: &mut RunReport,
) {
    count_error(config, venue, e.label());
    tracing::warn!(agent = %config.name, venue, symbol, read = what, kind = e.label(), error = %e, "funding read failed");
    report
        .failures
        .push(format!("{venue} {symbol} {what}: {e}"));
}

/// The rate now, its next settlement, the interval and where the rate came from.
struct Current {
    rate: Decimal,
    next_funding_ms: Millis,
    interval_hours: u32,
    source: &'static str,
}

fn history_due(st: &SymbolState, config: &FundingAgentConfig, next_funding_ms: Millis) -> bool {
    st.history
        .as_ref()
        .is_none_or(|h| h.asked != config.history || next_funding_ms > h.next_funding_ms)
}

/// The current reading (see the module docs, step 1); `None` when the venue failed.
async fn current(
    config: &FundingAgentConfig,
    deps: &FundingDeps,
    venue: &str,
    reader: &dyn DerivativesData,
    symbol: &str,
    st: &mut SymbolState,
    report: &mut RunReport,
) -> Option<Current> {
    let streamed = deps
        .streams
        .as_ref()
        .and_then(|s| s.fresh_mark(venue, symbol))
        .and_then(|m| Some((m.funding_rate?, m.next_funding_ms?)));
    let need_rest = match (streamed, st.interval_hours) {
        (Some((_, next)), Some(_)) => history_due(st, config, next),
        _ => true,
    };
    let rest = if need_rest {
        match reader.funding(symbol).await {
            Ok(f) => {
                st.interval_hours = Some(f.funding_interval_hours);
                Some(f)
            }
            Err(e) => {
                venue_failure(config, venue, symbol, "funding", &e, report);
                None
            }
        }
    } else {
        None
    };
    let interval_hours = st.interval_hours?;
    match (streamed, rest) {
        (Some((rate, next)), _) => Some(Current {
            rate,
            next_funding_ms: next,
            interval_hours,
            source: "stream",
        }),
        (None, Some(f)) => Some(Current {
            rate: f.funding_rate,
            next_funding_ms: f.next_funding_time_ms,
            interval_hours,
            source: "rest",
        }),
        (None, None) => None,
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_symbol(
    config: &FundingAgentConfig,
    deps: &FundingDeps,
    venue: &str,
    reader: &dyn DerivativesData,
    symbol: &str,
    now: Millis,
    report: &mut RunReport,
    receipts: &mut Vec<JournalReceipt>,
) -> Result<(), StoreError> {
    let mut st = deps.state.get(venue, symbol)?;
    let Some(cur) = current(config, deps, venue, reader, symbol, &mut st, report).await else {
        deps.state.set(venue, symbol, &st)?;
        return Ok(());
    };
    let mut history_fetched = false;
    if history_due(&st, config, cur.next_funding_ms) {
        match reader.funding_history(symbol, config.history).await {
            Ok(rates) => {
                st.history = Some(CachedHistory {
                    rates,
                    asked: config.history,
                    next_funding_ms: cur.next_funding_ms,
                    fetched_ms: now,
                });
                history_fetched = true;
            }
            // The cached history, if any, stands in until the venue answers again.
            Err(e) => venue_failure(config, venue, symbol, "funding history", &e, report),
        }
    }
    let history: Vec<Decimal> = st
        .history
        .as_ref()
        .map(|h| h.rates.iter().map(|r| r.rate).collect())
        .unwrap_or_default();
    let ann = annualized_pct(cur.rate, cur.interval_hours).round_dp(4);
    let z = stats::zscore(cur.rate, &history);
    let thresholds = Thresholds {
        annualized_pct: config.annualized_pct,
        zscore: config.zscore,
    };
    let state = stats::classify(cur.rate, ann, z, thresholds);
    metrics::gauge!(names::RATE_ANNUALIZED_PCT, "venue" => venue.to_string(), "symbol" => symbol.to_string())
        .set(ann.to_f64().unwrap_or(0.0));
    metrics::gauge!(names::ZSCORE, "venue" => venue.to_string(), "symbol" => symbol.to_string())
        .set(z.unwrap_or(0.0));
    st.last = Some(Reading {
        rate: cur.rate,
        annualized_pct: ann,
        zscore: z,
        interval_hours: cur.interval_hours,
        source: cur.source.to_string(),
        time_ms: now,
    });
    let reading = SymbolReport {
        venue: venue.to_string(),
        symbol: symbol.to_string(),
        rate: cur.rate,
        annualized_pct: ann,
        zscore: z,
        interval_hours: cur.interval_hours,
        source: cur.source,
        history: history.len(),
        history_fetched,
        state,
    };
    if state == st.current() {
        deps.state.set(venue, symbol, &st)?;
        report.readings.push(reading);
        return Ok(());
    }
    let comment = match &config.model {
        Some(model) => {
            let facts = comment::Facts {
                venue,
                symbol,
                rate: cur.rate.normalize().to_string(),
                interval_hours: cur.interval_hours,
                annualized_pct: ann.round_dp(2).to_string(),
                zscore: z,
                history: history.len(),
                state: state.as_str(),
                meaning: state.meaning(),
            };
            let (answer, record) = comment::ask(
                &deps.models,
                &config.name,
                model,
                config.model_timeout,
                now,
                &facts,
            )
            .await;
            record.log();
            receipts.push(deps.journal.append(record));
            match answer {
                Ok(c) => Some(c),
                Err(e) => {
                    count_error(config, venue, "model");
                    tracing::warn!(agent = %config.name, venue, symbol, error = %e, "funding comment unavailable; the signal goes out without it");
                    report.comment_failures.push(e);
                    None
                }
            }
        }
        None => None,
    };
    let input = signal_input(config, &reading, comment.as_deref(), thresholds);
    if signals::offer(&deps.signals, input) {
        tracing::info!(agent = %config.name, venue, symbol, state = %state, from = %st.current(), rate = %cur.rate, annualized_pct = %ann, zscore = z, "funding signal published");
        metrics::counter!(names::SIGNALS, "agent" => config.name.clone(), "state" => state.as_str())
            .increment(1);
        st.published = Some(state);
        st.published_ms = Some(now);
        report
            .signals
            .push((venue.to_string(), symbol.to_string(), state));
        deps.state.set_durable(venue, symbol, &st)?;
    } else {
        report.failures.push(format!(
            "{venue} {symbol}: the signal bus did not take the {state} signal; it is offered again next run"
        ));
        deps.state.set(venue, symbol, &st)?;
    }
    report.readings.push(reading);
    Ok(())
}

fn pct(d: Decimal) -> String {
    let p = (d * Decimal::ONE_HUNDRED).normalize();
    if p.scale() < 4 {
        format!("{p:.4}%")
    } else {
        format!("{p}%")
    }
}

fn zscore_text(z: Option<f64>) -> String {
    z.map_or("n/a".to_string(), |z| format!("{z:+.2}"))
}

fn signal_input(
    config: &FundingAgentConfig,
    r: &SymbolReport,
    comment: Option<&str>,
    thresholds: Thresholds,
) -> SignalInput {
    let mut evidence = format!(
        "{} {}: funding {} per {}h, {}%/year annualized, z-score {} vs the last {} settled; {} ({})",
        r.venue,
        r.symbol,
        pct(r.rate),
        r.interval_hours,
        r.annualized_pct.round_dp(2),
        zscore_text(r.zscore),
        r.history,
        r.state,
        r.state.meaning()
    );
    if let Some(c) = comment {
        evidence.push_str(". Comment: ");
        evidence.push_str(c);
    }
    SignalInput {
        source: config.name.clone(),
        symbol: r.symbol.clone(),
        kind: SignalKind::Funding.to_string(),
        value: r.rate,
        direction: r.state.direction().to_string(),
        confidence: stats::confidence(r.annualized_pct, r.zscore, thresholds, r.state),
        evidence: evidence
            .chars()
            .take(signals::signal::MAX_EVIDENCE_CHARS)
            .collect(),
        ttl: Some(config.signal_ttl),
    }
}

fn readings_line(report: &RunReport) -> String {
    report
        .readings
        .iter()
        .map(|r| {
            format!(
                "{}:{} {} {}%/y z={} ({}, {} settled{})",
                r.venue,
                r.symbol,
                r.state,
                r.annualized_pct.round_dp(2),
                zscore_text(r.zscore),
                r.source,
                r.history,
                if r.history_fetched { ", refetched" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The run's `info` line: every symbol's state.
fn log_run(config: &FundingAgentConfig, report: &RunReport) {
    tracing::info!(
        agent = %config.name,
        symbols = %readings_line(report),
        signals = report.signals.len(),
        failures = report.failures.len(),
        "funding run"
    );
}

/// The run's summary in the journal: each reading's inputs and outputs, the signals.
fn journal_summary(
    config: &FundingAgentConfig,
    deps: &FundingDeps,
    now: Millis,
    report: &RunReport,
) -> JournalReceipt {
    let mut record = DecisionRecord::begin(
        now,
        &config.name,
        &config.all_venues().join(","),
        &config.symbols.join(","),
        config.model.as_deref().unwrap_or(""),
    );
    record.action = Some("FUNDING".into());
    record.reason = Some(
        report
            .readings
            .iter()
            .map(|r| {
                format!(
                    "{}:{} rate {} per {}h ({}) -> {}%/year, z {} vs {} settled{} -> {}",
                    r.venue,
                    r.symbol,
                    r.rate.normalize(),
                    r.interval_hours,
                    r.source,
                    r.annualized_pct.round_dp(2),
                    zscore_text(r.zscore),
                    r.history,
                    if r.history_fetched {
                        " (refetched)"
                    } else {
                        ""
                    },
                    r.state
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    let signals: Vec<String> = report
        .signals
        .iter()
        .map(|(v, s, st)| format!("{v}:{s} {st}"))
        .collect();
    record.outcome = format!(
        "{} readings; signals: {}",
        report.readings.len(),
        if signals.is_empty() {
            "none".to_string()
        } else {
            signals.join(", ")
        }
    );
    let errors: Vec<String> = report
        .failures
        .iter()
        .chain(report.comment_failures.iter())
        .cloned()
        .collect();
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    deps.journal.append(record)
}

#[cfg(test)]
mod tests;
