//! The five-role analysis pipeline (`[[agents.pipeline]]`): for each symbol, on its
//! schedule, a **collector** gathers candles, the position, the account value and recent
//! signals (news and sentiment included, whoever published them); a **long analyst** and
//! a **short analyst**, on different models and side by side, each argue their side with
//! evidence; a **strategy generator** reads both cases and produces a typed [`Plan`]
//! (long, short or stand aside; entry, stop-loss, take-profit, size as a share of equity,
//! horizon, confidence); an **executor** sends the entry through the gateway's risk gate,
//! then the stop-loss and take-profit as reduce-only trigger orders.
//!
//! Owns: the stages ([`collector`], [`analyst`], [`strategist`], [`executor`]), the plan
//! type and its checks ([`plan`]), one run ([`run`]): the stage deadlines, what ends a
//! run, the journal record of every stage's input and output under one run id
//! ([`trace`]), one log line per stage and per run, and the stage metrics. Never: talks
//! to a provider or a venue directly (the router and the gateway do), bypasses the risk
//! gate, sends an order for a plan that failed a check, or retries a stage within a run.
//!
//! # What ends a run without an order
//!
//! A stage that fails, does not finish within its `timeout`, or answers something that
//! cannot be read or fails its checks ends the run: nothing later runs, no order is sent,
//! and the journal says which stage and why (`outcome` = `<stage>_<timeout|error|invalid>`,
//! e.g. `strategy_generator_invalid` for a stop on the wrong side). A plan that stands
//! aside (`stand_aside`) or whose confidence is below `min_confidence`
//! (`below_min_confidence`) sends nothing either. A trading mode that allows no new
//! position (`Reducing`, `Halted`) skips the symbol before any model is asked
//! (`skipped_mode`), as does a position already held in it (`position_held`): the
//! pipeline opens positions with their bracket, it does not manage them afterwards — the
//! bracket does.
//!
//! # Orders
//!
//! The entry is sized at `size_pct` of the account value (USD notional at the entry
//! price). A limit entry is sent immediate-or-cancel, so no unprotected entry is left
//! resting: what fills at once gets the bracket, the rest is cancelled by the venue. The
//! stop-loss and take-profit then cover the filled size as reduce-only trigger orders
//! (`TriggerKind::StopLoss` / `TakeProfit`, market on trigger); every venue adapter
//! sends them natively, and the paper venue emulates them (a trigger fires when the mid
//! crosses it). The leg that did not fire is cancelled by the next run that finds the
//! symbol flat ([`bracket`]). A stop-loss that
//! cannot be placed (refused or failed, not merely of unknown outcome) closes the new
//! position at once: the pipeline never keeps a position it could not protect.
//!
//! The plan's `horizon` is journaled with it (how long the strategy generator expects the
//! trade to take); the pipeline does not close a position when it passes: the bracket
//! closes it.

pub mod analyst;
pub mod bracket;
pub mod collector;
pub mod executor;
pub mod plan;
pub mod run;
pub mod strategist;
pub mod trace;

use std::time::Duration;

use futures::future::LocalBoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use plan::{Entry, Plan, PlanError, TradePlan};
pub use run::{run_once, PipelineRun};
pub use trace::{PipelineTrace, Stage, StageOutcome, StageTrace};

use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use super::trading_deps::TradingDeps;
use crate::exchanges::Timeframe;
use crate::signals::SignalKind;
use crate::validate::{join, Issues};

/// What a pipeline run reaches: the gateway, the router, the journal, its memory, the
/// clock, the risk baselines and the signal bus — the same as a trading agent's.
pub type PipelineDeps = TradingDeps;

/// A stage that asks a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelStage {
    /// Logical model under `[models]`.
    pub model: String,
    /// Deadline of the stage's answer; past it the run ends without an order.
    #[serde(with = "humantime_serde", default = "default_model_timeout")]
    pub timeout: Duration,
}

/// A stage that asks no model (collector, executor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainStage {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_model_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_collector() -> PlainStage {
    PlainStage {
        timeout: Duration::from_secs(30),
    }
}
fn default_executor() -> PlainStage {
    PlainStage {
        timeout: Duration::from_secs(60),
    }
}
fn default_timeframe() -> Timeframe {
    Timeframe::M15
}
fn default_lookback() -> usize {
    50
}
fn default_interval() -> Duration {
    Duration::from_secs(900)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_signal_kinds() -> Vec<SignalKind> {
    vec![SignalKind::News, SignalKind::Sentiment]
}
fn default_signal_max_age() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_max_position_pct() -> Decimal {
    Decimal::from(5)
}
fn default_min_confidence() -> f64 {
    0.6
}

/// One `[[agents.pipeline]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Unique agent name (shared with trading agents); its memory lives in
    /// `agents/<name>`.
    pub name: String,
    pub venue: String,
    pub symbols: Vec<String>,
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run over every symbol; absent: the stage timeouts summed per
    /// symbol plus a margin ([`PipelineConfig::schedule`]).
    #[serde(with = "humantime_serde::option", default)]
    pub run_timeout: Option<Duration>,
    #[serde(default = "default_timeframe")]
    pub timeframe: Timeframe,
    /// Candles the collector reads.
    #[serde(default = "default_lookback")]
    pub lookback: usize,
    /// Kinds of recent signals the collector reads (default news and sentiment).
    #[serde(default = "default_signal_kinds")]
    pub signal_kinds: Vec<SignalKind>,
    /// Oldest signal read.
    #[serde(with = "humantime_serde", default = "default_signal_max_age")]
    pub signal_max_age: Duration,
    #[serde(default = "default_collector")]
    pub collector: PlainStage,
    pub long_analyst: ModelStage,
    pub short_analyst: ModelStage,
    pub strategy_generator: ModelStage,
    #[serde(default = "default_executor")]
    pub executor: PlainStage,
    /// Largest position a plan may size, in percent of account value.
    #[serde(default = "default_max_position_pct")]
    pub max_position_pct: Decimal,
    /// A plan trades when its confidence is at or above this.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
}

/// Beyond its stages' deadlines, per symbol: the mode read and a margin.
const RUN_MARGIN_PER_SYMBOL: Duration = Duration::from_secs(15);

impl PipelineConfig {
    /// When the runtime runs it. `run_timeout` defaults to the stage deadlines (the two
    /// analysts count once: they run side by side) plus a margin, per symbol, so the
    /// runtime cuts a hung run, never a working one.
    pub fn schedule(&self) -> Schedule {
        let per_symbol = self.collector.timeout
            + self.long_analyst.timeout.max(self.short_analyst.timeout)
            + self.strategy_generator.timeout
            + self.executor.timeout
            + RUN_MARGIN_PER_SYMBOL;
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self
                .run_timeout
                .unwrap_or_else(|| per_symbol * self.symbols.len().max(1) as u32),
        }
    }

    /// Every model stage with its key name.
    pub fn model_stages(&self) -> [(&'static str, &ModelStage); 3] {
        [
            ("long_analyst", &self.long_analyst),
            ("short_analyst", &self.short_analyst),
            ("strategy_generator", &self.strategy_generator),
        ]
    }

    /// Checks its own values into `issues` (names, venues and models are checked by the
    /// process config, which knows them).
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        super::runtime::validate_keys(path, self.jitter, self.run_timeout, issues);
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        issues.check(
            name_ok,
            join(path, "name"),
            &self.name,
            "1 to 64 characters of a-z, A-Z, 0-9, - and _",
        );
        issues.check(
            !self.symbols.is_empty(),
            join(path, "symbols"),
            &self.symbols,
            "at least one symbol",
        );
        issues.check(
            (2..=1000).contains(&self.lookback),
            join(path, "lookback"),
            self.lookback,
            "a number of candles from 2 to 1000",
        );
        issues.check(
            self.interval >= Duration::from_millis(100),
            join(path, "interval"),
            humantime::format_duration(self.interval).to_string(),
            "a duration of at least 100ms",
        );
        issues.check(
            self.signal_max_age >= Duration::from_secs(1)
                && self.signal_max_age <= crate::signals::signal::MAX_TTL,
            join(path, "signal_max_age"),
            humantime::format_duration(self.signal_max_age).to_string(),
            "a duration from 1s to 7days",
        );
        let stage_timeouts = [
            ("collector", self.collector.timeout),
            ("long_analyst", self.long_analyst.timeout),
            ("short_analyst", self.short_analyst.timeout),
            ("strategy_generator", self.strategy_generator.timeout),
            ("executor", self.executor.timeout),
        ];
        for (stage, timeout) in stage_timeouts {
            issues.check(
                timeout >= Duration::from_millis(100) && timeout <= Duration::from_secs(600),
                join(&join(path, stage), "timeout"),
                humantime::format_duration(timeout).to_string(),
                "a duration from 100ms to 10m",
            );
        }
        // Two analysts on one model argue both sides with the same view: the pipeline
        // exists to hear two.
        issues.check(
            self.long_analyst.model != self.short_analyst.model,
            join(&join(path, "short_analyst"), "model"),
            &self.short_analyst.model,
            format!(
                "a model other than long_analyst.model (`{}`): the analysts run on different models",
                self.long_analyst.model
            ),
        );
        issues.check(
            self.max_position_pct > Decimal::ZERO && self.max_position_pct <= Decimal::from(100),
            join(path, "max_position_pct"),
            self.max_position_pct,
            "a percentage in (0, 100]",
        );
        issues.check(
            (0.0..=1.0).contains(&self.min_confidence),
            join(path, "min_confidence"),
            self.min_confidence,
            "a number from 0 to 1",
        );
    }
}

/// The pipeline as the runtime runs it: one run = every symbol through the five stages.
pub struct PipelineAgent {
    config: PipelineConfig,
    deps: PipelineDeps,
}

impl PipelineAgent {
    pub fn new(config: PipelineConfig, deps: PipelineDeps) -> Self {
        Self { config, deps }
    }
}

impl AgentKind for PipelineAgent {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> Kind {
        Kind::Pipeline
    }

    fn order_venue(&self) -> Option<&str> {
        Some(&self.config.venue)
    }

    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }

    fn started(&self) {
        run::init_metrics(&self.config.name);
    }

    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps) = (self.config.clone(), self.deps.clone());
        Box::pin(async move { run::run_symbols(&config, &deps).await.1 })
    }
}

/// Metric names of the pipeline.
pub mod names {
    /// Runs (one per symbol) by outcome (`entered_long`, `stand_aside`,
    /// `strategy_generator_invalid`, ...).
    pub const RUNS: &str = "orrery_pipeline_runs_total";
    /// Stages by stage and outcome (`ok`, `timeout`, `error`, `invalid`).
    pub const STAGES: &str = "orrery_pipeline_stages_total";
    /// Duration of each stage.
    pub const STAGE_DURATION: &str = "orrery_pipeline_stage_duration_seconds";
}

/// Registers the pipeline's metric descriptions.
pub fn describe() {
    metrics::describe_counter!(
        names::RUNS,
        "Analysis pipeline runs (one per symbol), by agent and outcome (entered_long, entered_short, stand_aside, below_min_confidence, <stage>_<timeout|error|invalid>, ...)."
    );
    metrics::describe_counter!(
        names::STAGES,
        "Analysis pipeline stages run, by agent, stage (collector, long_analyst, short_analyst, strategy_generator, executor) and outcome (ok, timeout, error, invalid)."
    );
    metrics::describe_histogram!(
        names::STAGE_DURATION,
        metrics::Unit::Seconds,
        "Time one analysis pipeline stage took, by agent and stage."
    );
}

#[cfg(test)]
mod tests;
