//! The strategy agent (`[[agents.strategy]]`): runs a strategy of `crate::strategies` live
//! on one venue and symbol, through the gateway and its risk gate — the same code the
//! backtester runs, fed the venue's closed candles.
//!
//! One run ([`run::run_once`]):
//! 1. reads the newest closed candles of the symbol at the agent's `timeframe` through the
//!    gateway (enough for the strategy's `warmup_bars`, `history` in all) — the candle
//!    still forming is never fed;
//! 2. builds the strategy afresh from its [`StrategySource`] and feeds it every bar up to
//!    the last one fed before (kept in sled) as warm-up: flat position, its actions
//!    discarded. So a restart re-warms from history and never acts on an old bar again;
//! 3. for each bar not fed yet (oldest first; at most `catch_up_bars` of them are acted
//!    on, older ones are fed as warm-up and logged `skipped_stale`): first the protective
//!    exits the agent keeps (below), then the bar is fed with the venue's position and the
//!    actions it pushes become orders, in push order:
//!    - `Action::ClosePosition`: a reduce-only market order for the whole position (none
//!      when flat);
//!    - `Action::Order`: a market order. `Size::Equity(f)`: `f × equity_fraction` of the
//!      account's equity (the venue's account value) at the bar's close; `Size::Units(u)`:
//!      `u` base units. Capped so the position stays within `max_position_usd` at that
//!      price; the gateway rounds the size down to the instrument's lot and the risk gate
//!      judges it. An order that only reduces the position is sent reduce-only;
//! 4. with `approve_model`, each `Action::Order` is first put to that model, which answers
//!    `APPROVE` or `VETO` with a reason; both are journaled with the exact prompt and
//!    answer. **Fail closed**: a model error, a timeout or an answer that is neither is a
//!    veto (`outcome` `vetoed`, the error as the reason) — a model failure never places an
//!    order it was meant to check. Closes and protective exits reduce risk and are not put
//!    to the model.
//!
//! # Stop-loss and take-profit
//!
//! An intent's `stop_loss` / `take_profit` are not sent to the venue: the agent keeps them
//! in sled with the side of the position the order left, and enforces them itself on each
//! new bar before the strategy sees it: a long is closed (reduce-only market) when the
//! bar's low reaches the stop or its high the target, a short the other way round; when
//! one bar touches both, the stop (the worse one, as the backtester decides). So an exit
//! happens at the first run after the bar that touched it closed, at the market then — not
//! at the level, and not inside the bar. The levels are dropped when the position is
//! closed or flips, or a new intent sets new ones.
//!
//! # Exactly once across crashes
//!
//! Before any order of a bar is sent, the bar's decisions (exit and actions) are written to
//! sled (`pending`); each order's client id is derived from (agent, venue, symbol, bar
//! time, action index), and sent with `PlaceKeyedOrder`, which answers an id already in
//! the ledger with its entry and never sends it again. A crash anywhere re-runs the same
//! decisions under the same ids: not in the ledger → decided (and, with a model, approved)
//! once more and sent once; in the ledger → taken as done. The bar is marked fed only once
//! all its actions have an outcome; an order whose outcome is unknown stops the run (the
//! gateway settles it by client id) and the next run continues there.
//!
//! Everything is visible: one `info` line per decision (`strategy decision`), one journal
//! record per decision (`action` `BUY`/`SELL`/`CLOSE`/`STOP_LOSS`/`TAKE_PROFIT`, `outcome`
//! `placed`, `vetoed`, `refused`, `capped`, `nothing_to_close`, `failed`, `unknown`, its
//! order), the metrics in [`names`], and `orrery agents` (kind `strategy`).
//!
//! Owns: the tree `strategy/<name>`, its config and checks, the metrics in [`names`].
//! Never: sends an order except through the gateway, sends a decided order a second time,
//! acts on a bar it fed before, or sends an order the approval model did not approve.

pub mod run;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::journal::DecisionJournal;
use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use crate::clock::SharedClock;
use crate::exchanges::gateway::OrderGateway;
use crate::exchanges::Timeframe;
use crate::models::ModelClient;
use crate::strategies::api::Strategy;
use crate::strategies::builtin::{self, StrategyError};
use crate::supervisor::Slot;
use crate::validate::{join, Issues};

pub use state::{StrategyAgentState, StrategyCursor};

/// Metric names of the strategy agent.
pub mod names {
    /// Decisions by agent, action and outcome.
    pub const DECISIONS: &str = "orrery_strategy_decisions_total";
    /// Bars fed live (acted on) by agent.
    pub const BARS: &str = "orrery_strategy_bars_total";
    /// Open time of the last bar fed, Unix seconds.
    pub const LAST_BAR: &str = "orrery_strategy_last_bar_timestamp_seconds";
}

/// HELP texts of the metrics in [`names`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        names::DECISIONS,
        "Strategy agent decisions by agent, action (buy, sell, close, stop_loss, take_profit) and outcome (placed, vetoed, refused, capped, nothing_to_close, failed, unknown)."
    );
    describe_counter!(
        names::BARS,
        "Closed bars a strategy agent fed its strategy live (acted on), by agent and kind (live, skipped_stale)."
    );
    describe_gauge!(
        names::LAST_BAR,
        "Open time of the last closed bar a strategy agent fed, in Unix seconds."
    );
}

/// Where the agent's strategy comes from. An enum so other sources (a validated spec from
/// the strategy library) plug in beside the built-ins without changing the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategySource {
    /// A built-in of `crate::strategies::builtin` with its parameters.
    Builtin {
        name: String,
        params: BTreeMap<String, f64>,
    },
    /// A declarative spec of the strategy library (`orrery strategies promote`), as the
    /// library held it when the engine started.
    Spec {
        /// The attempt's name in the library.
        name: String,
        spec: Box<crate::strategies::spec::StrategySpec>,
    },
}

impl StrategySource {
    /// A fresh strategy (the agent builds one per run and warms it up from history).
    pub fn build(&self) -> Result<Box<dyn Strategy>, StrategyError> {
        match self {
            StrategySource::Builtin { name, params } => builtin::build(name, params),
            StrategySource::Spec { name, spec } => spec
                .compile()
                .map(|s| Box::new(s) as Box<dyn Strategy>)
                .map_err(|source| StrategyError::Spec {
                    strategy: format!("library:{name}"),
                    source,
                }),
        }
    }

    /// `sma_cross fast=10 slow=30`, for logs and prompts.
    pub fn label(&self) -> String {
        match self {
            StrategySource::Builtin { name, params } => {
                let mut s = name.clone();
                for (k, v) in params {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
            StrategySource::Spec { name, .. } => format!("library:{name}"),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_equity_fraction() -> Decimal {
    Decimal::new(1, 1)
}
fn default_catch_up() -> usize {
    3
}
fn default_model_timeout() -> Duration {
    Duration::from_secs(20)
}

/// Most candles one run reads (the venues' page limits).
pub const MAX_HISTORY: usize = 1000;

/// One strategy agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyAgentConfig {
    /// Unique agent name; its state lives in sled tree `strategy/<name>`.
    pub name: String,
    /// A venue under `[exchanges.venues]`.
    pub venue: String,
    /// The symbol as the engine names it (`BTC`).
    pub symbol: String,
    /// Bar width the strategy is fed (`1m` ... `1w`).
    pub timeframe: Timeframe,
    /// A built-in strategy (`sma_cross`).
    pub strategy: String,
    /// Its parameters (`{ fast = 10, slow = 30 }`); absent ones take their defaults.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    /// The share of the account's equity the strategy trades as "all of its equity":
    /// `Size::Equity(f)` is `f × equity_fraction × equity`. In (0, 1].
    #[serde(default = "default_equity_fraction")]
    pub equity_fraction: Decimal,
    /// Largest position (USD at the bar's close) the agent's orders may build.
    pub max_position_usd: Decimal,
    /// Candles read per run; absent: the strategy's warm-up plus 50, at most 1000.
    #[serde(default)]
    pub history: Option<usize>,
    /// Most new bars acted on in one run (older new bars, closed while the engine was
    /// down, are fed as warm-up and logged `skipped_stale`).
    #[serde(default = "default_catch_up")]
    pub catch_up_bars: usize,
    /// Logical model (`[models.<name>]`) that approves or vetoes each order signal; absent:
    /// every signal is traded. A model failure vetoes (fail closed).
    #[serde(default)]
    pub approve_model: Option<String>,
    #[serde(with = "humantime_serde", default = "default_model_timeout")]
    pub model_timeout: Duration,
    /// How often the agent looks for newly closed bars.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<Duration>,
    /// Set by the engine for an agent of a promotion (`orrery strategies promote`): the
    /// library's spec, which the agent runs instead of the built-in `strategy` names
    /// (`library:<name>`). Never read from the config file.
    #[serde(skip)]
    pub spec: Option<Box<crate::strategies::spec::StrategySpec>>,
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl StrategyAgentConfig {
    pub fn source(&self) -> StrategySource {
        if let Some(spec) = &self.spec {
            return StrategySource::Spec {
                name: self
                    .strategy
                    .strip_prefix("library:")
                    .unwrap_or(&self.strategy)
                    .to_string(),
                spec: spec.clone(),
            };
        }
        StrategySource::Builtin {
            name: self.strategy.clone(),
            params: self.params.clone(),
        }
    }

    pub fn schedule(&self) -> Schedule {
        let per_order = if self.approve_model.is_some() {
            self.model_timeout
        } else {
            Duration::ZERO
        };
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout.unwrap_or_else(|| {
                (Duration::from_secs(60) + per_order * 4 * self.catch_up_bars.max(1) as u32)
                    .min(Duration::from_secs(3600))
            }),
        }
    }

    /// Candles read per run for a strategy needing `warmup` bars.
    pub fn lookback(&self, warmup: usize) -> usize {
        self.history
            .unwrap_or(warmup + 50)
            .clamp(warmup + 2, MAX_HISTORY.max(warmup + 2))
    }

    /// The checks of every key; `path` is `agents.strategy[i]`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        crate::agents::runtime::validate_keys(path, self.jitter, self.run_timeout, issues);
        issues.check(
            name_ok(&self.name),
            join(path, "name"),
            &self.name,
            "1 to 64 characters of a-z, A-Z, 0-9, - and _",
        );
        issues.check(
            !self.symbol.is_empty()
                && self.symbol.len() <= 32
                && self.symbol.chars().all(|c| c.is_ascii_alphanumeric()),
            join(path, "symbol"),
            &self.symbol,
            "a symbol of A-Z, a-z and 0-9 (e.g. BTC)",
        );
        match self.source().build() {
            Ok(s) => issues.check(
                s.warmup_bars() + 2 <= MAX_HISTORY,
                join(path, "params"),
                format!("{:?}", self.params),
                format!("parameters whose warm-up fits in {MAX_HISTORY} candles"),
            ),
            Err(e @ StrategyError::Unknown { .. }) => {
                issues.push(join(path, "strategy"), &self.strategy, e.to_string())
            }
            Err(e) => issues.push(
                join(path, "params"),
                format!("{:?}", self.params),
                e.to_string(),
            ),
        }
        issues.check(
            self.equity_fraction > Decimal::ZERO && self.equity_fraction <= Decimal::ONE,
            join(path, "equity_fraction"),
            self.equity_fraction,
            "a fraction of the account's equity in (0, 1], e.g. 0.1",
        );
        issues.check(
            self.max_position_usd > Decimal::ZERO,
            join(path, "max_position_usd"),
            self.max_position_usd,
            "a USD amount above 0",
        );
        if let Some(h) = self.history {
            issues.check(
                (2..=MAX_HISTORY).contains(&h),
                join(path, "history"),
                h,
                format!("a number of candles from 2 to {MAX_HISTORY}"),
            );
        }
        issues.check(
            (1..=100).contains(&self.catch_up_bars),
            join(path, "catch_up_bars"),
            self.catch_up_bars,
            "a number of bars from 1 to 100",
        );
        issues.check(
            self.interval >= Duration::from_millis(100),
            join(path, "interval"),
            humantime::format_duration(self.interval).to_string(),
            "a duration of at least 100ms",
        );
        issues.check(
            self.model_timeout >= Duration::from_millis(100)
                && self.model_timeout <= Duration::from_secs(600),
            join(path, "model_timeout"),
            humantime::format_duration(self.model_timeout).to_string(),
            "a duration from 100ms to 10m",
        );
    }
}

/// What a strategy agent reaches.
#[derive(Clone)]
pub struct StrategyDeps {
    pub gateway: Slot<OrderGateway>,
    pub models: ModelClient,
    pub journal: DecisionJournal,
    pub state: StrategyAgentState,
    pub clock: SharedClock,
    /// The signal bus's disk, for `on_signal`; `None`: the strategy hears no signals.
    pub signals: Option<crate::signals::store::SignalStore>,
}

/// The strategy agent as the runtime runs it.
pub struct StrategyAgent {
    config: Arc<StrategyAgentConfig>,
    deps: StrategyDeps,
}

impl StrategyAgent {
    pub fn new(config: StrategyAgentConfig, deps: StrategyDeps) -> Self {
        Self {
            config: Arc::new(config),
            deps,
        }
    }
}

impl AgentKind for StrategyAgent {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> Kind {
        Kind::Strategy
    }

    fn order_venue(&self) -> Option<&str> {
        Some(&self.config.venue)
    }
    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }
    fn started(&self) {
        for action in ["buy", "sell", "close", "stop_loss", "take_profit"] {
            metrics::counter!(names::DECISIONS, "agent" => self.config.name.clone(), "action" => action, "outcome" => "placed")
                .increment(0);
        }
        tracing::info!(
            agent = %self.config.name,
            venue = %self.config.venue,
            symbol = %self.config.symbol,
            timeframe = %self.config.timeframe,
            strategy = %self.config.source().label(),
            approve_model = self.config.approve_model.as_deref().unwrap_or("-"),
            "strategy agent started"
        );
    }
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps) = (self.config.clone(), self.deps.clone());
        Box::pin(async move {
            match run::run_once(&config, &deps).await {
                Ok(report) if report.failures.is_empty() => RunOutcome::Ok,
                Ok(report) => RunOutcome::Error(report.failures.join("; ")),
                Err(e) => RunOutcome::Error(e),
            }
        })
    }
}
