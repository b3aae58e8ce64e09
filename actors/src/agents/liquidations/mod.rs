//! The liquidation agent (`[[agents.liquidations]]`): sums the venue's forced liquidations
//! (the `!forceOrder@arr` tape of a Binance USDⓈ-M venue's stream) per symbol and side over
//! a window, measures the sum against a rolling baseline of past windows, and publishes a
//! `liquidations` signal when it spikes: SELL-side liquidations (longs liquidated) as a
//! long-liquidation cascade, BUY-side (shorts liquidated) as a short squeeze.
//!
//! One run ([`LiquidationAgent`], run by the agent runtime like every agent):
//! 1. every grid window (`window` long, starting at multiples of it) closed since the last
//!    run adds its sum — zero included — to each watched symbol and side's baseline
//!    ([`math::closed_windows`]; a window that began before this process watched the
//!    stream is unknown, not empty, and is skipped; the baseline lives in sled, so a
//!    restart keeps it);
//! 2. the trailing window's sum per symbol and side is measured against
//!    [`math::spike_threshold`] (mean + k·σ of the baseline, never below `min_usd`): the
//!    ratio is exported, and a spike not yet published (state in sled) becomes a signal; it
//!    re-arms once the ratio is back under 1;
//! 3. the run is journaled (one summary record) and logged in one line.
//!
//! Owns: the tree `liquidations/<name>` and the metric `orrery_liquidation_spike_ratio`.
//! Never: reads a venue over REST (liquidations exist only on the stream), trades, or
//! calls another agent.

pub mod config;
pub mod math;
pub mod state;

pub use config::LiquidationAgentConfig;
pub use state::LiqState;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::journal::{self, DecisionJournal, DecisionRecord};
use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::stream::derivatives::Liquidation;
use crate::exchanges::stream::StreamBook;
use crate::exchanges::types::Side;
use crate::signals::{self, Direction, SignalBus, SignalInput, SignalKind};
use crate::store::StoreError;
use crate::supervisor::Slot;
use math::{spike_ratio, spike_threshold, Stats};

/// Metric names of the liquidation agent.
pub mod names {
    /// The trailing window's liquidations over the spike threshold.
    pub const SPIKE_RATIO: &str = "orrery_liquidation_spike_ratio";
}

/// HELP texts of the metrics in [`names`].
pub fn describe() {
    metrics::describe_gauge!(
        names::SPIKE_RATIO,
        "Liquidated notional over the trailing window divided by the spike threshold (baseline mean + k*stddev, at least min_usd), by symbol and liquidation order side (sell: longs liquidated); 1 or more is a spike."
    );
}

/// What a liquidation agent needs, cloneable into a run's future.
#[derive(Clone)]
pub struct LiquidationDeps {
    pub streams: StreamBook,
    pub signals: Slot<SignalBus>,
    pub journal: DecisionJournal,
    pub state: LiqState,
    pub clock: SharedClock,
}

/// The liquidation agent as the runtime runs it.
pub struct LiquidationAgent {
    config: Arc<LiquidationAgentConfig>,
    deps: LiquidationDeps,
    /// When this incarnation began watching: windows that began earlier are unknown.
    observed_from: Millis,
}

impl LiquidationAgent {
    pub fn new(config: LiquidationAgentConfig, deps: LiquidationDeps) -> Self {
        let observed_from = deps.clock.now_ms();
        Self {
            config: Arc::new(config),
            deps,
            observed_from,
        }
    }
}

impl AgentKind for LiquidationAgent {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> Kind {
        Kind::Liquidations
    }
    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps, from) = (self.config.clone(), self.deps.clone(), self.observed_from);
        Box::pin(async move {
            match run_once(&config, &deps, from).await {
                Ok(report) if report.failures.is_empty() => RunOutcome::Ok,
                Ok(report) => RunOutcome::Error(report.failures.join("; ")),
                Err(e) => RunOutcome::Error(format!("liquidation state in the data dir: {e}")),
            }
        })
    }
}

/// One symbol and side over the trailing window.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub symbol: String,
    pub side: Side,
    pub sum_usd: Decimal,
    pub count: u64,
    pub largest_usd: Decimal,
    pub stats: Stats,
    pub threshold: Decimal,
    pub ratio: Decimal,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Grid windows added to the baselines.
    pub windows_closed: usize,
    /// Every symbol and side measured (with liquidations or a baseline).
    pub measured: Vec<Measured>,
    /// Signals handed to the bus: (symbol, side, ratio).
    pub signals: Vec<(String, Side, Decimal)>,
    pub failures: Vec<String>,
}

const SIDES: [Side; 2] = [Side::Buy, Side::Sell];

fn sums_between(
    items: &[Liquidation],
    from: Millis,
    to: Millis,
) -> BTreeMap<(String, &'static str), (Decimal, u64, Decimal)> {
    let mut out: BTreeMap<(String, &'static str), (Decimal, u64, Decimal)> = BTreeMap::new();
    for l in items.iter().filter(|l| l.time_ms >= from && l.time_ms < to) {
        let n = l.notional_usd();
        let e = out.entry((l.symbol.clone(), l.side.as_str())).or_insert((
            Decimal::ZERO,
            0,
            Decimal::ZERO,
        ));
        e.0 += n;
        e.1 += 1;
        e.2 = e.2.max(n);
    }
    out
}

/// One run (see the module docs). `Err` only when the agent's state cannot be read or
/// written.
pub async fn run_once(
    config: &LiquidationAgentConfig,
    deps: &LiquidationDeps,
    observed_from: Millis,
) -> Result<RunReport, StoreError> {
    let mut report = RunReport::default();
    let now = deps.clock.now_ms();
    let Some(feed) = deps.streams.feed(&config.venue) else {
        report.failures.push(format!(
            "the stream of venue `{}` has not started yet; liquidations wait for it",
            config.venue
        ));
        return Ok(finish(config, deps, now, report).await);
    };
    let tape = &feed.derivatives().liquidations;
    let watched = |s: &str| config.symbols.is_empty() || config.symbols.iter().any(|x| x == s);
    let window = config.window_ms();
    let keep = config.baseline_windows();

    // 1. Closed windows into the baselines.
    let mut progress = deps.state.progress()?;
    let closed = math::closed_windows(progress.last_closed_end, observed_from, now, window, keep);
    let mut symbols: BTreeSet<String> = if config.symbols.is_empty() {
        deps.state.symbols()?.into_iter().collect()
    } else {
        config.symbols.iter().cloned().collect()
    };
    if let (Some(first), Some(last)) = (closed.first(), closed.last()) {
        let items: Vec<Liquidation> = tape
            .since(None, first.0)
            .into_iter()
            .filter(|l| watched(&l.symbol))
            .collect();
        symbols.extend(items.iter().map(|l| l.symbol.clone()));
        let per_window: Vec<_> = closed
            .iter()
            .map(|(s, e)| (*s, sums_between(&items, *s, *e)))
            .collect();
        for symbol in &symbols {
            for side in SIDES {
                let mut b = deps.state.baseline(symbol, side)?;
                for (start, sums) in &per_window {
                    let sum = sums
                        .get(&(symbol.clone(), side.as_str()))
                        .map_or(Decimal::ZERO, |x| x.0);
                    b.push(*start, sum, keep);
                }
                deps.state.set_baseline(symbol, side, &b)?;
            }
        }
        progress.last_closed_end = Some(last.1);
        deps.state.set_progress(&progress)?;
        report.windows_closed = closed.len();
    }

    // 2. The trailing window against the baseline.
    let recent: Vec<Liquidation> = tape
        .since(None, now - window)
        .into_iter()
        .filter(|l| watched(&l.symbol) && l.time_ms <= now)
        .collect();
    symbols.extend(recent.iter().map(|l| l.symbol.clone()));
    let sums = sums_between(&recent, now - window, Millis::MAX);
    let k = config.k();
    for symbol in &symbols {
        for side in SIDES {
            let (sum, count, largest) = sums
                .get(&(symbol.clone(), side.as_str()))
                .copied()
                .unwrap_or((Decimal::ZERO, 0, Decimal::ZERO));
            let stats = deps.state.baseline(symbol, side)?.stats();
            let threshold = spike_threshold(&stats, k, config.min_usd);
            let ratio = spike_ratio(sum, threshold).round_dp(4);
            metrics::gauge!(names::SPIKE_RATIO, "venue" => config.venue.clone(), "symbol" => symbol.clone(), "side" => side.as_str())
                .set(ratio.to_f64().unwrap_or(0.0));
            let m = Measured {
                symbol: symbol.clone(),
                side,
                sum_usd: sum.normalize(),
                count,
                largest_usd: largest.normalize(),
                stats,
                threshold: threshold.round_dp(2),
                ratio,
            };
            let mut st = deps.state.spike(symbol, side)?;
            let before = st.clone();
            if ratio >= Decimal::ONE {
                // Not handed to the bus: still armed, so the next run tries again.
                if !st.active && signals::offer(&deps.signals, signal(config, &m)) {
                    tracing::info!(agent = %config.name, venue = %config.venue, symbol = %symbol, side = side.as_str(), sum_usd = %m.sum_usd, ratio = %ratio, "{} published", label(side));
                    st.active = true;
                    st.last_signal_ms = Some(now);
                    report.signals.push((symbol.clone(), side, ratio));
                }
            } else {
                st.active = false;
            }
            st.last_ratio = ratio;
            if st != before {
                deps.state.set_spike(symbol, side, &st)?;
            }
            report.measured.push(m);
        }
    }
    Ok(finish(config, deps, now, report).await)
}

/// What a spike of liquidation orders on `side` is.
pub fn label(side: Side) -> &'static str {
    match side {
        // A liquidation order that sells closes a long.
        Side::Sell => "long-liquidation cascade",
        Side::Buy => "short squeeze",
    }
}

fn signal(config: &LiquidationAgentConfig, m: &Measured) -> SignalInput {
    let (direction, whose) = match m.side {
        Side::Sell => (Direction::Short, "longs"),
        Side::Buy => (Direction::Long, "shorts"),
    };
    let over = (m.ratio - Decimal::ONE).to_f64().unwrap_or(0.0);
    let evidence = format!(
        "{}: {} {} {whose} liquidated for {} USD in {} (largest {} USD), {}x the spike threshold {} USD (baseline of {} windows: mean {} sd {}, k {}, min {} USD)",
        label(m.side),
        m.count,
        m.symbol,
        m.sum_usd.round_dp(2),
        humantime::format_duration(config.window),
        m.largest_usd.round_dp(2),
        m.ratio.round_dp(2),
        m.threshold,
        m.stats.count,
        m.stats.mean.round_dp(2),
        m.stats.sd.round_dp(2),
        config.spike_factor,
        config.min_usd,
    );
    SignalInput {
        source: config.name.clone(),
        symbol: m.symbol.clone(),
        kind: SignalKind::Liquidations.to_string(),
        value: m.sum_usd.round_dp(2),
        direction: direction.to_string(),
        // Stronger the further past the threshold: 0.5 at it, 0.9 at five times it.
        confidence: (0.5 + over / 10.0).clamp(0.5, 0.9),
        evidence: evidence
            .chars()
            .take(signals::signal::MAX_EVIDENCE_CHARS)
            .collect(),
        ttl: Some(config.signal_ttl),
    }
}

async fn finish(
    config: &LiquidationAgentConfig,
    deps: &LiquidationDeps,
    now: Millis,
    mut report: RunReport,
) -> RunReport {
    let mut record = DecisionRecord::begin(
        now,
        &config.name,
        &config.venue,
        &config.symbols.join(","),
        "",
    );
    record.action = Some("LIQUIDATIONS".into());
    let mut top: Vec<&Measured> = report
        .measured
        .iter()
        .filter(|m| m.sum_usd > Decimal::ZERO)
        .collect();
    top.sort_by_key(|m| std::cmp::Reverse(m.ratio));
    record.reason = Some(
        top.iter()
            .take(10)
            .map(|m| {
                format!(
                    "{} {} {} USD ratio {}",
                    m.symbol,
                    m.side.as_str(),
                    m.sum_usd.round_dp(2),
                    m.ratio
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    let signals: Vec<String> = report
        .signals
        .iter()
        .map(|(s, side, r)| format!("{s} {} ({r}x)", label(*side)))
        .collect();
    record.outcome = format!(
        "windows closed {}; measured {}; signals: {}",
        report.windows_closed,
        report.measured.len(),
        if signals.is_empty() {
            "none".to_string()
        } else {
            signals.join(", ")
        }
    );
    if !report.failures.is_empty() {
        record.error = Some(report.failures.join("; "));
    }
    let receipt = deps.journal.append(record);
    let max_ratio = report
        .measured
        .iter()
        .map(|m| m.ratio)
        .max()
        .unwrap_or(Decimal::ZERO);
    tracing::info!(
        agent = %config.name,
        venue = %config.venue,
        windows_closed = report.windows_closed,
        measured = report.measured.len(),
        max_ratio = %max_ratio,
        signals = report.signals.len(),
        failures = report.failures.len(),
        "liquidation run"
    );
    for r in journal::wait_all(vec![receipt]).await {
        if let Err(e) = r {
            report.failures.push(format!("journal: {e}"));
        }
    }
    report
}

#[cfg(test)]
mod tests;
