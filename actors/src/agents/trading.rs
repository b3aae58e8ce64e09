//! The trading agent: on its schedule, for each of its symbols, candles → prompt and
//! structured context → model → parsed BUY / SELL / NOTHING → sized order through the
//! gateway → journal.
//!
//! Owns: its schedule, the sizing rule (target margin as a share of account value, at a
//! configured leverage) and what each verdict means for the current position. Never:
//! talks to a venue or a provider directly, or bypasses the risk gate. A run that fails
//! for one symbol is recorded and the next symbol still runs; a run still in progress when
//! the next tick comes is not doubled.
//!
//! # When a verdict trades
//!
//! - A BUY or SELL trades when its confidence is **at or above** `min_confidence`
//!   (`confidence >= min_confidence`); below it the outcome is `below_min_confidence_<x>`.
//! - An answer that stated no confidence (the parser's `DEFAULT_CONFIDENCE` was used) never
//!   trades (outcome `defaulted_confidence`) unless the agent sets
//!   `allow_defaulted_confidence = true`; then the default is compared like any other.
//! - An answer about another symbol than the one asked is no decision (outcome
//!   `wrong_symbol`, with the parser's error).
//! - An order the gateway did not carry out is journaled by the type of its error
//!   ([`super::GatewayCallError`]): `<outcome>_refused` (the risk gate refused it),
//!   `<outcome>_unknown` (it may have reached the venue; the gateway settles it by a read
//!   and nothing is re-sent), `<outcome>_failed` (anything else).
//!
//! # Trading modes
//!
//! The gateway's mode is read before the model is asked, so a mode that forbids the entry
//! costs no model call (outcome `skipped_mode`): `Halted` skips every symbol; `Reducing`
//! skips a symbol with no position, and for a held position it still asks but only acts
//! on the verdict that reduces it (SELL closes a long, BUY closes a short); any other
//! verdict is `skipped_mode`.
//!
//! Each decision is logged at `info` in one line ([`DecisionRecord::log`]); a symbol the
//! mode skipped (no model call, no decision) only at `debug`, so a long `Reducing` spell
//! does not flood the log.

use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::journal::{Abstention, DecisionJournal, DecisionRecord, MemberAnswer};
use super::memory::MemoryStore;
use super::prompt;
use super::risk::BaselineBook;
use super::{gateway_call, GatewayCallError};
use crate::clock::SharedClock;
use crate::exchanges::gateway::{
    AiEntry, ClosePosition, GetAccount, GetCandles, GetMode, GetPosition, GetQuote, OrderGateway,
    OrderReport,
};
use crate::exchanges::risk_gate::TradingMode;
use crate::exchanges::{Side, Timeframe};
use crate::models::decision::{parse_trade_decision_for, DecisionError};
use crate::models::{
    MarketContext, ModelClient, ModelError, ModelRequest, Purpose, StructuredContext, TradeAction,
};
use crate::supervisor::Slot;
use crate::telemetry::names;
use crate::validate::{join, Issues};

/// One `[[agents.trading]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingAgentConfig {
    /// Unique agent name; its memory lives in `agents/<name>`.
    pub name: String,
    pub venue: String,
    pub symbols: Vec<String>,
    #[serde(default = "default_timeframe")]
    pub timeframe: Timeframe,
    /// Candles sent with each prompt.
    #[serde(default = "default_lookback")]
    pub lookback: usize,
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    /// Delay before the first run, so the gateway can reconcile first.
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    /// Logical model under `[models]`.
    #[serde(default = "default_model")]
    pub model: String,
    /// A BUY/SELL trades when its confidence is at or above this; below, it is NOTHING.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// Whether an answer without a stated confidence may trade (on the parser's default).
    #[serde(default)]
    pub allow_defaulted_confidence: bool,
    /// Target margin of a position, in percent of account value.
    #[serde(default = "default_position_pct")]
    pub position_pct: Decimal,
    #[serde(default = "default_leverage")]
    pub leverage: u32,
    /// Whether SELL may open a short when flat.
    #[serde(default)]
    pub allow_short: bool,
    /// Deadline of one model decision.
    #[serde(with = "humantime_serde", default = "default_decision_timeout")]
    pub decision_timeout: Duration,
}

fn default_timeframe() -> Timeframe {
    Timeframe::M15
}
fn default_lookback() -> usize {
    50
}
fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_model() -> String {
    "default".into()
}
fn default_min_confidence() -> f64 {
    0.6
}
fn default_position_pct() -> Decimal {
    Decimal::from(10)
}
fn default_leverage() -> u32 {
    1
}
fn default_decision_timeout() -> Duration {
    Duration::from_secs(30)
}

impl TradingAgentConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
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
            (0.0..=1.0).contains(&self.min_confidence),
            join(path, "min_confidence"),
            self.min_confidence,
            "a number from 0 to 1",
        );
        issues.check(
            self.position_pct > Decimal::ZERO && self.position_pct <= Decimal::from(100),
            join(path, "position_pct"),
            self.position_pct,
            "a percentage in (0, 100]",
        );
        issues.check(
            (1..=100).contains(&self.leverage),
            join(path, "leverage"),
            self.leverage,
            "an integer from 1 to 100",
        );
        issues.check(
            self.decision_timeout >= Duration::from_millis(100)
                && self.decision_timeout <= Duration::from_secs(600),
            join(path, "decision_timeout"),
            humantime::format_duration(self.decision_timeout).to_string(),
            "a duration from 100ms to 10m",
        );
    }
}

/// Everything a run needs, cloneable into the run's future.
#[derive(Clone)]
pub struct TradingDeps {
    pub gateway: Slot<OrderGateway>,
    pub models: ModelClient,
    pub journal: DecisionJournal,
    pub memory: MemoryStore,
    pub clock: SharedClock,
    /// The risk window's baselines: an entry first ensures one from the account value
    /// read before it, so PnL is measured from before the window's first order.
    pub baselines: BaselineBook,
}

/// The trading agent actor.
pub struct TradingAgent {
    config: TradingAgentConfig,
    deps: TradingDeps,
    running: bool,
    /// `orrery_actor_messages_total` of the supervised actor: one per schedule tick.
    messages: metrics::Counter,
}

impl TradingAgent {
    pub fn new(config: TradingAgentConfig, deps: TradingDeps) -> Self {
        Self {
            config,
            deps,
            running: false,
            messages: metrics::Counter::noop(),
        }
    }

    /// Counts every schedule tick (a run, or a run skipped because one is in progress) in
    /// `counter`; see [`crate::supervisor::StartCtx::messages_counter`]. The agent works on
    /// its own timer, so its slot alone would count nothing.
    pub fn counting_messages_in(mut self, counter: metrics::Counter) -> Self {
        self.messages = counter;
        self
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.messages.increment(1);
        // A pause is read from sled at every tick (a point read), so it takes effect at
        // the next scheduled run whoever set it, and survives restarts.
        let paused = match self.deps.memory.control() {
            Ok(control) => control.paused,
            Err(e) => {
                // An operator's pause must hold: when it cannot be read, the run is skipped.
                tracing::error!(agent = %self.config.name, error = %e, "cannot read the agent's pause state; skipping this run");
                true
            }
        };
        if paused {
            metrics::counter!(names::AGENT_RUNS, "agent" => self.config.name.clone(), "outcome" => "skipped_paused").increment(1);
            return;
        }
        if self.running {
            metrics::counter!(names::AGENT_RUNS, "agent" => self.config.name.clone(), "outcome" => "skipped_busy").increment(1);
            return;
        }
        self.running = true;
        let (config, deps) = (self.config.clone(), self.deps.clone());
        ctx.spawn(
            async move { run_once(&config, &deps).await }
                .into_actor(self)
                .map(|_, this, _| this.running = false),
        );
    }
}

impl Actor for TradingAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.config.initial_delay, |this, ctx| {
            this.tick(ctx);
            ctx.run_interval(this.config.interval, |this, ctx| this.tick(ctx));
        });
    }
}

/// One run over every symbol. Returns the decisions made, for tests and the control API.
pub async fn run_once(config: &TradingAgentConfig, deps: &TradingDeps) -> Vec<DecisionRecord> {
    let started = Instant::now();
    let mut records = Vec::with_capacity(config.symbols.len());
    let mut first_error = None;
    let mut receipts = Vec::with_capacity(config.symbols.len());
    for symbol in &config.symbols {
        let record = decide_and_act(config, deps, symbol).await;
        if let Some(e) = &record.error {
            first_error.get_or_insert_with(|| format!("{symbol}: {e}"));
        }
        record.log();
        // Handed to the journal writer (group commit) without waiting; the run waits
        // for all of its decisions at its end, below.
        receipts.push(deps.journal.append(record.clone()));
        records.push(record);
    }
    // A run that finished has its decisions on disk. A failure was logged and counted by
    // the writer with the decision's id; the run reports it as its error too.
    for written in super::journal::wait_all(receipts).await {
        if let Err(e) = written {
            first_error.get_or_insert_with(|| format!("journal: {e}"));
        }
    }
    // A run the trading mode skipped entirely (no model call) is counted apart.
    let skipped = !records.is_empty()
        && records
            .iter()
            .all(|r| r.outcome == "skipped_mode" && r.action.is_none());
    let outcome = if first_error.is_some() {
        "error"
    } else if skipped {
        "skipped_mode"
    } else {
        "ok"
    };
    metrics::counter!(names::AGENT_RUNS, "agent" => config.name.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::AGENT_RUN_DURATION, "agent" => config.name.clone())
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = deps.memory.record_run(deps.clock.now_ms(), first_error) {
        tracing::error!(agent = %config.name, error = %e, "cannot record agent memory");
    }
    records
}

async fn decide_and_act(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
    symbol: &str,
) -> DecisionRecord {
    let mut record = DecisionRecord::begin(
        deps.clock.now_ms(),
        &config.name,
        &config.venue,
        symbol,
        &config.model,
    );
    record.outcome = "none".into();
    let context = match market_context(config, deps, symbol).await {
        Ok(c) => c,
        Err(e) => {
            record.error = Some(format!("market data: {e}"));
            record.outcome = "no_data".into();
            return record;
        }
    };
    let position_side = context.position.as_ref().and_then(|p| p.side());
    let mode = match gateway_call(&deps.gateway, GetMode {}).await {
        Ok(state) => state.mode,
        Err(e) => {
            record.error = Some(format!("trading mode: {e}"));
            record.outcome = "no_data".into();
            return record;
        }
    };
    // A mode that forbids every order this symbol could get costs no model call.
    if mode == TradingMode::Halted || (mode == TradingMode::Reducing && position_side.is_none()) {
        record.outcome = "skipped_mode".into();
        return record;
    }
    record.set_prompt(prompt::TRADE_SYSTEM, &prompt::trade_prompt(&context));
    let account_value = context.account_value;
    let context = StructuredContext::Market(context);
    record.context = Some(context.clone());
    let request = ModelRequest {
        model: config.model.clone(),
        purpose: Purpose::TradeDecision,
        system: record.system.clone(),
        prompt: record.prompt.clone(),
        context: Some(context),
        max_tokens: 300,
        temperature: 0.0,
        timeout: config.decision_timeout,
        cacheable: false,
    };
    let asked = Instant::now();
    let answer = deps.models.ask(request).await;
    let latency_ms = asked.elapsed().as_millis() as u64;
    record.latency_ms = Some(latency_ms);
    let mut member = MemberAnswer {
        member: config.model.clone(),
        latency_ms: Some(latency_ms),
        ..MemberAnswer::default()
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            record.error = Some(format!("model: {e}"));
            record.outcome = "model_error".into();
            member.abstention = Some(if matches!(e, ModelError::DeadlineExceeded { .. }) {
                Abstention::Timeout
            } else {
                Abstention::Error
            });
            member.error = Some(e.to_string());
            record.members.push(member);
            return record;
        }
    };
    record.deployment = Some(answer.deployment.clone());
    record.raw_answer = Some(answer.text.clone());
    member.deployment = Some(answer.deployment.clone());
    member.raw_answer = Some(answer.text.clone());
    member.prompt_tokens = answer.usage.prompt_tokens;
    member.completion_tokens = answer.usage.completion_tokens;
    let decision = match parse_trade_decision_for(&answer.text, symbol) {
        Ok(parsed) => {
            record.confidence_defaulted = parsed.confidence_defaulted;
            parsed.decision
        }
        Err(e @ DecisionError::WrongSymbol { .. }) => {
            record.error = Some(e.to_string());
            record.outcome = "wrong_symbol".into();
            member.abstention = Some(Abstention::Unparseable);
            member.error = Some(e.to_string());
            record.members.push(member);
            return record;
        }
        Err(e) => {
            record.error = Some(format!("unreadable answer: {e}"));
            record.outcome = "parse_error".into();
            member.abstention = Some(Abstention::Unparseable);
            member.error = Some(e.to_string());
            record.members.push(member);
            return record;
        }
    };
    let action_label = match decision.action {
        TradeAction::Buy => "BUY",
        TradeAction::Sell => "SELL",
        TradeAction::Nothing => "NOTHING",
    };
    record.action = Some(action_label.to_string());
    record.confidence = Some(decision.confidence);
    record.reason = Some(decision.reason.clone());
    member.verdict = Some(action_label.to_string());
    member.confidence = Some(decision.confidence);
    member.reason = Some(decision.reason.clone());
    if decision.action == TradeAction::Nothing {
        member.abstention = Some(Abstention::Nothing);
    }
    record.members.push(member);
    metrics::counter!(names::AGENT_DECISIONS, "agent" => config.name.clone(), "symbol" => symbol.to_string(), "action" => action_label).increment(1);

    if decision.action != TradeAction::Nothing
        && record.confidence_defaulted
        && !config.allow_defaulted_confidence
    {
        record.outcome = "defaulted_confidence".into();
        return record;
    }
    // Trades at or above the threshold: `min_confidence = 0.6` acts on 0.6.
    if decision.action != TradeAction::Nothing && decision.confidence < config.min_confidence {
        record.outcome = format!("below_min_confidence_{}", config.min_confidence);
        return record;
    }
    if mode == TradingMode::Reducing {
        // Only the verdict that reduces the position held is acted on.
        let reduces = matches!(
            (decision.action, position_side),
            (TradeAction::Sell, Some(Side::Buy)) | (TradeAction::Buy, Some(Side::Sell))
        );
        if decision.action != TradeAction::Nothing && !reduces {
            record.outcome = "skipped_mode".into();
            return record;
        }
        if reduces {
            record.outcome = if position_side == Some(Side::Buy) {
                "close_long".into()
            } else {
                "close_short".into()
            };
            let msg = ClosePosition {
                venue: config.venue.clone(),
                symbol: symbol.to_string(),
                origin: format!("agent:{}", config.name),
            };
            match gateway_call(&deps.gateway, msg).await {
                Ok(orders) => record.orders = orders,
                Err(e) => record_order_error(&mut record, &ActError::Gateway(e)),
            }
            return record;
        }
    }
    let origin = format!("agent:{}", config.name);
    let target_usd = (account_value * config.position_pct / Decimal::from(100)
        * Decimal::from(config.leverage))
    .round_dp(2);
    let acted: Result<Vec<OrderReport>, ActError> = match (decision.action, position_side) {
        (TradeAction::Nothing, _) => {
            record.outcome = "hold".into();
            Ok(vec![])
        }
        (TradeAction::Buy, _) => {
            record.outcome = "enter_long".into();
            entry(
                deps,
                config,
                symbol,
                Side::Buy,
                target_usd,
                &origin,
                account_value,
            )
            .await
        }
        (TradeAction::Sell, Some(Side::Buy)) => {
            record.outcome = "close_long".into();
            let msg = ClosePosition {
                venue: config.venue.clone(),
                symbol: symbol.to_string(),
                origin: origin.clone(),
            };
            gateway_call(&deps.gateway, msg)
                .await
                .map_err(ActError::Gateway)
        }
        (TradeAction::Sell, _) if config.allow_short => {
            record.outcome = "enter_short".into();
            entry(
                deps,
                config,
                symbol,
                Side::Sell,
                target_usd,
                &origin,
                account_value,
            )
            .await
        }
        (TradeAction::Sell, _) => {
            record.outcome = "no_long_to_sell".into();
            Ok(vec![])
        }
    };
    match acted {
        Ok(orders) => record.orders = orders,
        Err(e) => record_order_error(&mut record, &e),
    }
    record
}

/// Why acting on a decision failed.
#[derive(Debug, thiserror::Error)]
enum ActError {
    #[error("cannot record the risk baseline before the order: {0}")]
    Baseline(#[from] crate::store::StoreError),
    #[error(transparent)]
    Gateway(GatewayCallError),
}

/// Journals a failed action, its outcome decided by the error's type: `<outcome>_refused`
/// when the risk gate refused the order (the mode changed since it was read, or a limit),
/// `<outcome>_unknown` when an order may have reached the venue (the gateway settles it by
/// a read; nothing is re-sent), `<outcome>_failed` otherwise.
fn record_order_error(record: &mut DecisionRecord, error: &ActError) {
    let suffix = match error {
        ActError::Gateway(e) if e.refusal().is_some() => "refused",
        ActError::Gateway(e) if e.order_outcome_unknown() => "unknown",
        _ => "failed",
    };
    record.error = Some(format!("order: {error}"));
    record.outcome = format!("{}_{suffix}", record.outcome);
}

async fn entry(
    deps: &TradingDeps,
    config: &TradingAgentConfig,
    symbol: &str,
    side: Side,
    usd: Decimal,
    origin: &str,
    account_value_before: Decimal,
) -> Result<Vec<OrderReport>, ActError> {
    deps.baselines
        .ensure(&config.venue, account_value_before)
        .await?;
    let msg = AiEntry {
        venue: config.venue.clone(),
        symbol: symbol.to_string(),
        side,
        usd,
        leverage: config.leverage,
        origin: origin.to_string(),
    };
    gateway_call(&deps.gateway, msg)
        .await
        .map_err(ActError::Gateway)
}

async fn market_context(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
    symbol: &str,
) -> Result<MarketContext, GatewayCallError> {
    let venue = config.venue.clone();
    let symbol_owned = symbol.to_string();
    let candles = gateway_call(
        &deps.gateway,
        GetCandles {
            venue: venue.clone(),
            symbol: symbol_owned.clone(),
            timeframe: config.timeframe,
            lookback: config.lookback,
        },
    )
    .await?;
    let quote = gateway_call(
        &deps.gateway,
        GetQuote {
            venue: venue.clone(),
            symbol: symbol_owned.clone(),
        },
    )
    .await?;
    let position = gateway_call(
        &deps.gateway,
        GetPosition {
            venue: venue.clone(),
            symbol: symbol_owned,
        },
    )
    .await?;
    let account = gateway_call(
        &deps.gateway,
        GetAccount {
            venue: venue.clone(),
        },
    )
    .await?;
    Ok(MarketContext {
        venue,
        symbol: symbol.to_string(),
        timeframe: config.timeframe.as_str().to_string(),
        price: quote.mid(),
        candles,
        position,
        account_value: account.account_value,
    })
}
