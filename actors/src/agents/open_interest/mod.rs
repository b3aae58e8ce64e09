//! The open-interest and whale agent (`[[agents.open_interest]]`): samples each symbol's
//! open interest through the venue's [`DerivativesData`], keeps the series in sled, and
//! publishes an `open_interest` signal when its change over a window crosses the threshold;
//! and reads the venue's trade tape for whale prints, publishing a `whale` signal for each
//! trade of at least `whale_usd`.
//!
//! One run ([`OpenInterestAgent`], run by the agent runtime like every agent):
//! 1. the first run of a process seeds each symbol's series from the venue's open-interest
//!    history (Binance `openInterestHist`) unless the series kept in sled already spans the
//!    longest window; a venue without history (Hyperliquid answers a typed error) is said
//!    once in the log and the agent's status, and only samples;
//! 2. per symbol: open interest now and the mark (each call under its deadline) become one
//!    sample; for each window the change (% and USD at the mark) and the price's change over
//!    the same samples ([`math::window_change`]) are exported, and a crossing of the
//!    threshold not yet published ([`math::edge`], state in sled) becomes a signal labelled
//!    with what the two moves say ([`math::Positioning`]: new longs, new shorts, short
//!    covering, long unwinding);
//! 3. per symbol: the trades on the venue's tape at or after the cursor; each of at least
//!    `whale_usd` not published before (ids kept in sled) becomes a `whale` signal. A venue
//!    without a stream is said once; the agent then does the open-interest part only;
//! 4. the run is journaled (one summary record) and logged in one line.
//!
//! Owns: the tree `open_interest/<name>` and the metrics `orrery_open_interest`,
//! `orrery_open_interest_change_pct` and `orrery_whale_prints_total`. Never: trades, opens a
//! venue of its own (the process hands it the reader, so any venue implementing the trait
//! works), or calls another agent (a trading agent with `signal_kinds = ["open_interest",
//! "whale"]` reads the signals in its prompt).

pub mod config;
pub mod math;
pub mod state;

pub use config::{ChangeThreshold, OpenInterestAgentConfig};
pub use state::OiState;

use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use parking_lot::Mutex;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::journal::{self, DecisionJournal, DecisionRecord, JournalReceipt};
use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::derivatives::{DerivativesData, OiPeriod};
use crate::exchanges::stream::tape::TapeTrade;
use crate::exchanges::stream::StreamBook;
use crate::exchanges::types::Side;
use crate::exchanges::VenueError;
use crate::signals::{self, Direction, SignalBus, SignalInput, SignalKind};
use crate::store::StoreError;
use crate::supervisor::Slot;
use math::{Crossed, Positioning, Sample, WindowChange};

/// Metric names of the open-interest agent.
pub mod names {
    /// Open interest per venue and symbol, in base units.
    pub const OPEN_INTEREST: &str = "orrery_open_interest";
    /// Change of open interest over a window, in %.
    pub const OPEN_INTEREST_CHANGE_PCT: &str = "orrery_open_interest_change_pct";
    /// Whale prints published.
    pub const WHALE_PRINTS: &str = "orrery_whale_prints_total";
}

/// HELP texts of the metrics in [`names`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        names::OPEN_INTEREST,
        "Open interest of a perpetual as the open-interest agent last sampled it, in base units."
    );
    describe_gauge!(
        names::OPEN_INTEREST_CHANGE_PCT,
        "Change of open interest over a window (the agent's windows), in percent."
    );
    describe_counter!(
        names::WHALE_PRINTS,
        "Trades of at least whale_usd notional seen on the venue's stream and published as whale signals, by aggressor side."
    );
}

/// The deadline of one call to the venue (the venue's own request deadline is shorter;
/// this bounds a reader that has none).
const CALL_DEADLINE: Duration = Duration::from_secs(20);

/// What an open-interest agent needs, cloneable into a run's future.
#[derive(Clone)]
pub struct OpenInterestDeps {
    /// The venue's funding and open interest (from the process's venue factory).
    pub reader: Arc<dyn DerivativesData>,
    /// The streams' state, when the venue streams its trades (`None`: open interest only).
    pub streams: Option<StreamBook>,
    pub signals: Slot<SignalBus>,
    pub journal: DecisionJournal,
    pub state: OiState,
    pub clock: SharedClock,
}

/// Things the agent says once and shows in its status.
#[derive(Debug, Default)]
struct Notes {
    /// Whether this process seeded the series already.
    seeded: bool,
    lines: Vec<String>,
}

/// The open-interest agent as the runtime runs it.
pub struct OpenInterestAgent {
    config: Arc<OpenInterestAgentConfig>,
    deps: OpenInterestDeps,
    notes: Arc<Mutex<Notes>>,
}

impl OpenInterestAgent {
    pub fn new(config: OpenInterestAgentConfig, deps: OpenInterestDeps) -> Self {
        let mut notes = Notes::default();
        if deps.streams.is_none() {
            notes.lines.push(format!(
                "venue `{}` has no stream configured: no whale prints, open interest only",
                config.venue
            ));
        }
        Self {
            config: Arc::new(config),
            deps,
            notes: Arc::new(Mutex::new(notes)),
        }
    }
}

impl AgentKind for OpenInterestAgent {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> Kind {
        Kind::OpenInterest
    }
    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }
    fn started(&self) {
        for line in &self.notes.lock().lines {
            tracing::warn!(agent = %self.config.name, venue = %self.config.venue, "{line}");
        }
        if self.deps.streams.is_some() {
            for symbol in &self.config.symbols {
                for side in [Side::Buy, Side::Sell] {
                    metrics::counter!(names::WHALE_PRINTS, "venue" => self.config.venue.clone(), "symbol" => symbol.clone(), "side" => side.as_str())
                        .increment(0);
                }
            }
        }
    }
    fn note(&self) -> Option<String> {
        let notes = self.notes.lock();
        (!notes.lines.is_empty()).then(|| notes.lines.join("; "))
    }
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps, notes) = (self.config.clone(), self.deps.clone(), self.notes.clone());
        Box::pin(async move {
            match run_once(&config, &deps, &notes).await {
                Ok(report) if report.failures.is_empty() => RunOutcome::Ok,
                Ok(report) => RunOutcome::Error(report.failures.join("; ")),
                Err(e) => RunOutcome::Error(format!("open-interest state in the data dir: {e}")),
            }
        })
    }
}

/// What one run did (for tests and the run's outcome).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Points seeded from the venue's history this run, per symbol.
    pub seeded: Vec<(String, usize)>,
    /// Open interest sampled this run, per symbol.
    pub sampled: Vec<(String, Decimal)>,
    /// Changes measured: (symbol, window, change %).
    pub changes: Vec<(String, String, Decimal)>,
    /// `open_interest` signals handed to the bus: (symbol, window, crossing).
    pub signals: Vec<(String, String, Crossed)>,
    /// `whale` signals handed to the bus: (symbol, trade id).
    pub whales: Vec<(String, u64)>,
    /// What failed, one line each.
    pub failures: Vec<String>,
}

async fn within<T>(
    what: String,
    fut: impl std::future::Future<Output = crate::exchanges::VenueResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_DEADLINE, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {CALL_DEADLINE:?}")),
    }
}

fn as_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// One run (see the module docs). `Err` only when the agent's own state cannot be read
/// or written; everything else that fails is in [`RunReport::failures`].
async fn run_once(
    config: &OpenInterestAgentConfig,
    deps: &OpenInterestDeps,
    notes: &Mutex<Notes>,
) -> Result<RunReport, StoreError> {
    let mut report = RunReport::default();
    let seed = !notes.lock().seeded;
    if seed {
        seed_series(config, deps, notes, &mut report).await?;
    }
    for symbol in &config.symbols {
        sample_symbol(config, deps, symbol, &mut report).await?;
    }
    if let Some(streams) = &deps.streams {
        match streams.feed(&config.venue) {
            Some(feed) => {
                for symbol in &config.symbols {
                    let trades = {
                        let cursor = deps.state.whale(symbol)?;
                        feed.tape()
                            .since(symbol, cursor.since_ms.unwrap_or(Millis::MIN))
                    };
                    read_whales(config, deps, symbol, &trades, &mut report)?;
                }
            }
            None => report.failures.push(format!(
                "the stream of venue `{}` has not started yet; whale prints wait for it",
                config.venue
            )),
        }
    }
    let receipt = journal_summary(config, deps, &report);
    tracing::info!(
        agent = %config.name,
        venue = %config.venue,
        sampled = report.sampled.len(),
        seeded = report.seeded.iter().map(|(_, n)| n).sum::<usize>(),
        signals = report.signals.len(),
        whales = report.whales.len(),
        failures = report.failures.len(),
        "open-interest run"
    );
    for r in journal::wait_all(vec![receipt]).await {
        if let Err(e) = r {
            report.failures.push(format!("journal: {e}"));
        }
    }
    Ok(report)
}

/// The history period and length that cover the longest window and half again.
fn seed_plan(longest: Duration) -> (OiPeriod, usize) {
    let need = longest.as_secs() * 3 / 2;
    let (period, secs) = if need <= 500 * 300 {
        (OiPeriod::M5, 300)
    } else {
        (OiPeriod::H1, 3600)
    };
    (period, (need.div_ceil(secs) as usize + 1).min(500))
}

async fn seed_series(
    config: &OpenInterestAgentConfig,
    deps: &OpenInterestDeps,
    notes: &Mutex<Notes>,
    report: &mut RunReport,
) -> Result<(), StoreError> {
    let (period, limit) = seed_plan(config.longest_window());
    let longest = i64::try_from(config.longest_window().as_millis()).unwrap_or(i64::MAX);
    let now = deps.clock.now_ms();
    let mut unsupported = None;
    let mut retry = false;
    for symbol in &config.symbols {
        // A series kept in sled that already spans the longest window, up to recently,
        // needs no history (a restart): the samples it holds stay as they were.
        let series = deps.state.series(symbol)?;
        let spans = matches!((series.first(), series.last()), (Some(first), Some(last))
            if last.time_ms - first.time_ms >= longest && now - last.time_ms <= longest);
        if spans {
            continue;
        }
        let got = tokio::time::timeout(
            CALL_DEADLINE,
            deps.reader.open_interest_history(symbol, period, limit),
        )
        .await;
        match got {
            Ok(Ok(points)) => {
                for p in &points {
                    let price = (p.open_interest > Decimal::ZERO)
                        .then(|| (p.open_interest_value / p.open_interest).round_dp(8));
                    deps.state.put_sample(
                        symbol,
                        &Sample {
                            time_ms: p.time_ms,
                            oi: p.open_interest,
                            price,
                        },
                    )?;
                }
                tracing::info!(agent = %config.name, symbol = %symbol, points = points.len(), period = %period, "open-interest series seeded from the venue's history");
                report.seeded.push((symbol.clone(), points.len()));
            }
            // The venue keeps no history (Hyperliquid): sampling alone builds the series.
            Ok(Err(e @ VenueError::Unsupported { .. })) => unsupported = Some(e),
            Ok(Err(e)) => {
                retry = true;
                report
                    .failures
                    .push(format!("open-interest history of {symbol}: {e}"));
            }
            Err(_) => {
                retry = true;
                report.failures.push(format!(
                    "open-interest history of {symbol}: no answer within {CALL_DEADLINE:?}"
                ));
            }
        }
    }
    let mut n = notes.lock();
    // A history that failed (not one the venue does not keep) is asked again next run.
    n.seeded = !retry;
    if let Some(e) = unsupported {
        if !n
            .lines
            .iter()
            .any(|l| l.starts_with("no open-interest history"))
        {
            let line = format!("no open-interest history from venue `{}` ({e}): the series is sampled only, so a window is measured once the agent has sampled that long", config.venue);
            tracing::warn!(agent = %config.name, "{line}");
            n.lines.push(line);
        }
    }
    Ok(())
}

async fn sample_symbol(
    config: &OpenInterestAgentConfig,
    deps: &OpenInterestDeps,
    symbol: &str,
    report: &mut RunReport,
) -> Result<(), StoreError> {
    let oi = match within(
        format!("open interest of {symbol}"),
        deps.reader.open_interest(symbol),
    )
    .await
    {
        Ok(oi) => oi,
        Err(e) => {
            tracing::warn!(agent = %config.name, symbol, error = %e, "open interest not sampled");
            report.failures.push(e);
            return Ok(());
        }
    };
    // The mark labels the move; without it the change is still measured.
    let price = match within(format!("mark of {symbol}"), deps.reader.funding(symbol)).await {
        Ok(f) => Some(f.mark_price),
        Err(e) => {
            tracing::warn!(agent = %config.name, symbol, error = %e, "no mark price: the change is measured without the price's");
            None
        }
    };
    let now = deps.clock.now_ms();
    deps.state.put_sample(
        symbol,
        &Sample {
            time_ms: now,
            oi: oi.open_interest,
            price,
        },
    )?;
    let venue = config.venue.clone();
    metrics::gauge!(names::OPEN_INTEREST, "venue" => venue.clone(), "symbol" => symbol.to_string())
        .set(as_f64(oi.open_interest));
    report
        .sampled
        .push((symbol.to_string(), oi.open_interest.normalize()));
    // Twice the longest window: the seeded history (the window and half again) stays whole.
    let keep = i64::try_from((config.longest_window() * 2 + config.interval).as_millis())
        .unwrap_or(i64::MAX);
    deps.state.prune(symbol, keep)?;
    let series = deps.state.series(symbol)?;
    for w in config.parsed_windows() {
        let Some(change) = math::window_change(&series, w.millis()) else {
            continue;
        };
        metrics::gauge!(names::OPEN_INTEREST_CHANGE_PCT, "venue" => venue.clone(), "symbol" => symbol.to_string(), "window" => w.name.clone())
            .set(as_f64(change.change_pct));
        report
            .changes
            .push((symbol.to_string(), w.name.clone(), change.change_pct));
        let threshold = config
            .threshold(&w.name)
            .and_then(|t| Decimal::try_from(t).ok())
            .unwrap_or(Decimal::TWO);
        let mut edge = deps.state.edge(symbol, &w.name)?;
        let (next, fire) = math::edge(edge.crossed, change.change_pct, threshold);
        edge.change_pct = Some(change.change_pct);
        match fire {
            Some(crossed) => {
                let input = oi_signal(config, symbol, &w.name, &change, threshold);
                if signals::offer(&deps.signals, input) {
                    tracing::info!(agent = %config.name, symbol, window = %w.name, change_pct = %change.change_pct, crossed = ?crossed, "open-interest signal published");
                    edge.crossed = next;
                    edge.last_signal_ms = Some(now);
                    report
                        .signals
                        .push((symbol.to_string(), w.name.clone(), crossed));
                }
                // Not handed to the bus: the state stays, so the next run tries again.
            }
            None => edge.crossed = next,
        }
        deps.state.set_edge(symbol, &w.name, &edge)?;
    }
    Ok(())
}

fn oi_signal(
    config: &OpenInterestAgentConfig,
    symbol: &str,
    window: &str,
    c: &WindowChange,
    threshold: Decimal,
) -> SignalInput {
    let positioning = Positioning::of(c.change_pct, c.price_change_pct);
    let usd = c
        .change_usd
        .map(|u| format!(" ({:+} USD at the mark)", u.round_dp(0)))
        .unwrap_or_default();
    let price = c
        .price_change_pct
        .map(|p| format!("price {:+}%", p.round_dp(2)))
        .unwrap_or_else(|| "price unknown".to_string());
    let evidence = format!(
        "{}: open interest {:+}% over {window} ({} → {}{usd}), {price}; threshold {threshold}%",
        positioning.label(),
        c.change_pct.round_dp(2),
        c.from.oi.normalize(),
        c.to.oi.normalize(),
    );
    SignalInput {
        source: config.name.clone(),
        symbol: symbol.to_string(),
        kind: SignalKind::OpenInterest.to_string(),
        value: c.change_pct.round_dp(4),
        direction: positioning.direction().to_string(),
        confidence: positioning.confidence(),
        evidence: evidence
            .chars()
            .take(signals::signal::MAX_EVIDENCE_CHARS)
            .collect(),
        ttl: Some(config.signal_ttl),
    }
}

/// Publishes each whale print among `trades` (the tape at or after the cursor) not
/// published before, and moves the cursor to the newest trade read.
fn read_whales(
    config: &OpenInterestAgentConfig,
    deps: &OpenInterestDeps,
    symbol: &str,
    trades: &[TapeTrade],
    report: &mut RunReport,
) -> Result<(), StoreError> {
    let mut cursor = deps.state.whale(symbol)?;
    let before = cursor.clone();
    for t in trades {
        cursor.since_ms = Some(cursor.since_ms.map_or(t.time_ms, |s| s.max(t.time_ms)));
        let notional = t.notional();
        if notional < config.whale_usd || cursor.seen(t.id) {
            continue;
        }
        let input = whale_signal(config, t);
        if !signals::offer(&deps.signals, input) {
            // The bus could not take it: the cursor stays before it for the next run.
            cursor.since_ms = before
                .since_ms
                .map_or(Some(t.time_ms), |s| Some(s.min(t.time_ms)));
            break;
        }
        cursor.remember(t.id);
        metrics::counter!(names::WHALE_PRINTS, "venue" => config.venue.clone(), "symbol" => symbol.to_string(), "side" => t.side.as_str())
            .increment(1);
        tracing::info!(agent = %config.name, venue = %config.venue, symbol, side = t.side.as_str(), size = %t.size, price = %t.price, notional_usd = %notional.round_dp(2), trade_id = t.id, "whale print");
        report.whales.push((symbol.to_string(), t.id));
    }
    if cursor != before {
        deps.state.set_whale(symbol, &cursor)?;
    }
    Ok(())
}

fn whale_signal(config: &OpenInterestAgentConfig, t: &TapeTrade) -> SignalInput {
    let notional = t.notional().round_dp(2);
    let (direction, verb) = match t.side {
        Side::Buy => (Direction::Long, "bought"),
        Side::Sell => (Direction::Short, "sold"),
    };
    SignalInput {
        source: config.name.clone(),
        symbol: t.symbol.clone(),
        kind: SignalKind::Whale.to_string(),
        value: notional,
        direction: direction.to_string(),
        // One print says who was in a hurry, not where the price goes.
        confidence: 0.5,
        evidence: format!(
            "whale {verb} {} {} at {} = {} USD on {} (aggressor {}, trade {})",
            t.size.normalize(),
            t.symbol,
            t.price.normalize(),
            notional.normalize(),
            config.venue,
            t.side.as_str(),
            t.id
        ),
        ttl: Some(config.signal_ttl),
    }
}

fn journal_summary(
    config: &OpenInterestAgentConfig,
    deps: &OpenInterestDeps,
    report: &RunReport,
) -> JournalReceipt {
    let now = deps.clock.now_ms();
    let mut record = DecisionRecord::begin(
        now,
        &config.name,
        &config.venue,
        &config.symbols.join(","),
        "",
    );
    record.action = Some("OPEN_INTEREST".into());
    record.reason = Some(
        report
            .changes
            .iter()
            .map(|(s, w, c)| format!("{s} {w} {c:+}%"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let signals: Vec<String> = report
        .signals
        .iter()
        .map(|(s, w, c)| format!("{s} {w} {c:?}"))
        .collect();
    record.outcome = format!(
        "sampled {}; seeded {}; open_interest signals: {}; whale prints: {}",
        report
            .sampled
            .iter()
            .map(|(s, oi)| format!("{s} {oi}"))
            .collect::<Vec<_>>()
            .join(", "),
        report.seeded.iter().map(|(_, n)| n).sum::<usize>(),
        if signals.is_empty() {
            "none".to_string()
        } else {
            signals.join(", ")
        },
        report.whales.len()
    );
    if deps.streams.is_none() {
        record.outcome.push_str(" (no stream: whale prints off)");
    }
    if !report.failures.is_empty() {
        record.error = Some(report.failures.join("; "));
    }
    deps.journal.append(record)
}

#[cfg(test)]
mod tests;
