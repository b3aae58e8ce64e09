//! The trading agent: on its schedule, for each of its symbols, candles → prompt and
//! structured context → model → parsed BUY / SELL / NOTHING → sized order through the
//! gateway → journal.
//!
//! Owns: its schedule, the sizing rule (target margin as a share of account value, at a
//! configured leverage) and what each verdict means for the current position. Never:
//! talks to a venue or a provider directly, or bypasses the risk gate. A run that fails
//! for one symbol is recorded and the next symbol still runs. Its schedule, deadline,
//! pause and run metrics are the runtime's ([`super::runtime`]).
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
//! verdict is `skipped_mode`. One exception: a swarm agent keeps asking its members about
//! flat symbols while the `Reducing` is a lost swarm quorum's ([`ModeCause::SwarmQuorum`]),
//! so it sees them recover; the verdict is still only acted on as above.
//!
//! # Swarm mode
//!
//! With `mode = "swarm"` the one model call is replaced by [`swarm::decide`]: every member
//! is asked at once and the verdict (with its confidence, the mean of the agreeing
//! members') is the quorum's; everything after — confidence rules, trading mode, sizing —
//! is the same as for a single model's answer.
//!
//! Each decision is logged at `info` in one line ([`DecisionRecord::log`]); a symbol the
//! mode skipped (no model call, no decision) only at `debug`, so a long `Reducing` spell
//! does not flood the log.
//!
//! # Signals
//!
//! After a decision is journaled, a BUY/SELL verdict is offered to the signal bus as a
//! `technical` signal ([`crate::signals::publish_verdict`], TTL three intervals; never
//! waits on the bus). With `signal_kinds` set, the context of each decision carries other
//! agents' recent signals of those kinds about the symbol (`MarketContext::signals`, and
//! the prompt's "Recent signals" section); a bus that does not answer within
//! [`crate::signals::READ_DEADLINE`] leaves them out and the decision goes on.

use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::journal::{Abstention, DecisionRecord, MemberAnswer};
use super::prompt;
use super::runtime::{record_outcome, AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use super::swarm::{self, AgentMode, Quorum, QuorumLossConfig, SwarmKeys, SwarmSettings};
use super::{gateway_call, GatewayCallError};
use crate::exchanges::gateway::{
    AiEntry, ClosePosition, GetAccount, GetCandles, GetMode, GetPosition, GetQuote, OrderReport,
};
use crate::exchanges::risk_gate::{ModeCause, TradingMode};
use crate::exchanges::{Side, Timeframe};
use crate::models::decision::{parse_trade_decision_for, DecisionError};
use crate::models::{
    MarketContext, ModelRequest, Purpose, StructuredContext, TradeAction, TradeDecision,
};
use crate::signals::{self, RecentSignal, SignalFilter, SignalKind};
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
    /// Logical model under `[models]` (single mode; ignored in swarm mode).
    #[serde(default = "default_model")]
    pub model: String,
    /// `single`: ask `model`; `swarm`: ask every one of `members` and count the votes
    /// (see [`super::swarm`]).
    #[serde(default)]
    pub mode: AgentMode,
    /// Swarm members: logical model names or deployment ids (swarm mode only).
    #[serde(default)]
    pub members: Vec<String>,
    /// Votes an action needs, over all members (swarm mode; default `majority`).
    #[serde(default)]
    pub quorum: Option<Quorum>,
    /// Deadline of each member's answer (swarm mode; default `decision_timeout`).
    #[serde(with = "humantime_serde::option", default)]
    pub member_timeout: Option<Duration>,
    /// Model that summarises the members' answers (swarm mode; never changes the vote).
    #[serde(default)]
    pub reviewer: Option<String>,
    /// When failing members degrade the engine to `Reducing` (swarm mode).
    #[serde(default)]
    pub quorum_loss: Option<QuorumLossConfig>,
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
    /// Each run starts up to this fraction of `interval` after its slot, at random (see
    /// [`Schedule::jitter`]); 0 runs on the beat.
    #[serde(default)]
    pub jitter: f64,
    /// Deadline of one run over every symbol; absent: [`TradingAgentConfig::schedule`]
    /// derives it from `decision_timeout`.
    #[serde(with = "humantime_serde", default)]
    pub run_timeout: Option<Duration>,
    /// Kinds of other agents' signals put into the prompt and the structured context
    /// (e.g. `["sentiment", "funding"]`); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signal_kinds: Vec<SignalKind>,
    /// Oldest signal read for the prompt.
    #[serde(with = "humantime_serde", default = "default_signal_max_age")]
    pub signal_max_age: Duration,
}

fn default_signal_max_age() -> Duration {
    Duration::from_secs(3600)
}

/// Most signals one prompt carries, newest first.
pub const PROMPT_SIGNALS: usize = 20;

impl TradingAgentConfig {
    /// TTL of the `technical` signal each BUY/SELL verdict becomes: three intervals, so
    /// it outlives the next run's verdict, which replaces it.
    pub fn verdict_ttl(&self) -> Duration {
        self.interval.saturating_mul(3)
    }
}

/// Per symbol of a run, beyond its model decision: its market data reads (candles, quote,
/// position, account), the mode read and its order, each bounded by the venue's request
/// deadline, plus a margin for retries.
const RUN_MARGIN_PER_SYMBOL: Duration = Duration::from_secs(60);

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
    /// When the runtime runs this agent. `run_timeout` defaults to one decision deadline
    /// plus [`RUN_MARGIN_PER_SYMBOL`] per symbol (3 symbols at `decision_timeout = 10s`:
    /// 3m30s), so it cuts a hung run, never a slow but working one.
    pub fn schedule(&self) -> Schedule {
        let per_symbol = self.decision_timeout + RUN_MARGIN_PER_SYMBOL;
        Schedule {
            interval: self.interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self
                .run_timeout
                .unwrap_or_else(|| per_symbol * self.symbols.len().max(1) as u32),
        }
    }

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
        issues.check(
            self.signal_max_age >= Duration::from_secs(1)
                && self.signal_max_age <= crate::signals::signal::MAX_TTL,
            join(path, "signal_max_age"),
            humantime::format_duration(self.signal_max_age).to_string(),
            "a duration from 1s to 7days",
        );
        SwarmKeys {
            mode: self.mode,
            members: &self.members,
            quorum: self.quorum,
            member_timeout: self.member_timeout,
            reviewer: self.reviewer.as_deref(),
            quorum_loss: self.quorum_loss.as_ref(),
            decision_timeout: self.decision_timeout,
        }
        .validate(path, issues);
    }

    /// The swarm keys with their defaults, in swarm mode.
    pub fn swarm(&self) -> Option<SwarmSettings> {
        (self.mode == AgentMode::Swarm).then(|| SwarmSettings {
            members: self.members.clone(),
            quorum: self.quorum.unwrap_or_default(),
            member_timeout: self.member_timeout.unwrap_or(self.decision_timeout),
            reviewer: self.reviewer.clone(),
            review_timeout: self.decision_timeout,
            quorum_loss: self.quorum_loss.clone().unwrap_or_default(),
        })
    }

    /// The name journaled as the decision's model: `model`, or the members joined by `,`.
    pub fn asked_model(&self) -> String {
        match self.mode {
            AgentMode::Single => self.model.clone(),
            AgentMode::Swarm => self.members.join(","),
        }
    }
}

pub use super::trading_deps::TradingDeps;

/// The trading agent as the runtime runs it ([`super::runtime::AgentRunner`]): its
/// schedule from the config, one run = [`run_once`]'s work over every symbol.
pub struct TradingAgent {
    config: TradingAgentConfig,
    deps: TradingDeps,
}

impl TradingAgent {
    pub fn new(config: TradingAgentConfig, deps: TradingDeps) -> Self {
        Self { config, deps }
    }
}

impl AgentKind for TradingAgent {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> Kind {
        Kind::Trading
    }

    fn order_venue(&self) -> Option<&str> {
        Some(&self.config.venue)
    }

    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }

    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps) = (self.config.clone(), self.deps.clone());
        Box::pin(async move { run_symbols(&config, &deps).await.1 })
    }
}

/// One run over every symbol, recorded (metrics, memory) as the runtime records a run.
/// Returns the decisions made, for tests and the control API.
pub async fn run_once(config: &TradingAgentConfig, deps: &TradingDeps) -> Vec<DecisionRecord> {
    let started = tokio::time::Instant::now();
    let (records, outcome) = run_symbols(config, deps).await;
    record_outcome(
        &config.name,
        &deps.memory,
        &deps.clock,
        &outcome,
        started.elapsed(),
    );
    records
}

/// One run's work: every symbol decided, acted on and journaled; the runtime (or
/// [`run_once`]) records the outcome.
async fn run_symbols(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
) -> (Vec<DecisionRecord>, RunOutcome) {
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
        signals::publish_verdict(&deps.signals, &record, config.verdict_ttl());
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
    let outcome = match first_error {
        Some(e) => RunOutcome::Error(e),
        None if skipped => RunOutcome::SkippedMode,
        None => RunOutcome::Ok,
    };
    (records, outcome)
}

async fn decide_and_act(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
    symbol: &str,
) -> DecisionRecord {
    let mut review = None;
    let mut record = decide_and_act_on(config, deps, symbol, &mut review).await;
    // The swarm reviewer ran beside the action; it is bounded by its own deadline.
    if let Some(review) = review {
        record.review = Some(match review.await {
            Ok(text) => text,
            Err(e) => format!("review failed: {e}"),
        });
    }
    record
}

async fn decide_and_act_on(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
    symbol: &str,
    review: &mut Option<swarm::PendingReview>,
) -> DecisionRecord {
    let swarm = config.swarm();
    let mut record = DecisionRecord::begin(
        deps.clock.now_ms(),
        &config.name,
        &config.venue,
        symbol,
        &config.asked_model(),
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
    let (mode, probe) = match gateway_call(&deps.gateway, GetMode {}).await {
        // A swarm whose lost quorum set `Reducing` keeps asking its members on flat
        // symbols (acting on nothing the mode forbids), or it could never see them healthy.
        Ok(state) => (
            state.mode,
            swarm.is_some()
                && state.mode == TradingMode::Reducing
                && state.cause == ModeCause::SwarmQuorum,
        ),
        Err(e) => {
            record.error = Some(format!("trading mode: {e}"));
            record.outcome = "no_data".into();
            return record;
        }
    };
    // A mode that forbids every order this symbol could get costs no model call.
    if mode == TradingMode::Halted
        || (mode == TradingMode::Reducing && position_side.is_none() && !probe)
    {
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
    let decision = match &swarm {
        None => match ask_single(config, deps, request, symbol, &mut record).await {
            Some(decision) => decision,
            None => return record,
        },
        Some(settings) => {
            let (decision, pending) =
                swarm::decide(&config.name, settings, deps, request, symbol, &mut record).await;
            *review = pending;
            decision
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

/// Asks the one model of a single-mode agent and fills `record` with its answer; `None`
/// when there is no decision to act on (the record says why).
async fn ask_single(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
    request: ModelRequest,
    symbol: &str,
    record: &mut DecisionRecord,
) -> Option<TradeDecision> {
    let asked = Instant::now();
    let answer = deps.models.ask(request).await;
    let latency_ms = asked.elapsed().as_millis() as u64;
    record.latency_ms = Some(latency_ms);
    let mut member = MemberAnswer::asked(&config.model, Some(latency_ms));
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            record.error = Some(format!("model: {e}"));
            record.outcome = "model_error".into();
            member.abstained(Abstention::of_model_error(&e), &e);
            record.members.push(member);
            return None;
        }
    };
    record.deployment = Some(answer.deployment.clone());
    record.raw_answer = Some(answer.text.clone());
    member.answered(&answer);
    let decision = match parse_trade_decision_for(&answer.text, symbol) {
        Ok(parsed) => {
            record.confidence_defaulted = parsed.confidence_defaulted;
            parsed.decision
        }
        Err(e @ DecisionError::WrongSymbol { .. }) => {
            record.error = Some(e.to_string());
            record.outcome = "wrong_symbol".into();
            member.abstained(Abstention::Unparseable, &e);
            record.members.push(member);
            return None;
        }
        Err(e) => {
            record.error = Some(format!("unreadable answer: {e}"));
            record.outcome = "parse_error".into();
            member.abstained(Abstention::Unparseable, &e);
            record.members.push(member);
            return None;
        }
    };
    let action_label = match decision.action {
        TradeAction::Buy => "BUY",
        TradeAction::Sell => "SELL",
        TradeAction::Nothing => "NOTHING",
    };
    member.verdict = Some(action_label.to_string());
    member.confidence = Some(decision.confidence);
    member.reason = Some(decision.reason.clone());
    if decision.action == TradeAction::Nothing {
        member.abstention = Some(Abstention::Nothing);
    }
    record.members.push(member);
    Some(decision)
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
        signals: recent_signals(config, deps, symbol).await,
    })
}

/// Other agents' unexpired signals of `signal_kinds` about `symbol`, at most
/// `signal_max_age` old, newest first. A bus that does not answer in time costs the
/// prompt its signals section, never the decision (logged at `warn`).
async fn recent_signals(
    config: &TradingAgentConfig,
    deps: &TradingDeps,
    symbol: &str,
) -> Vec<RecentSignal> {
    if config.signal_kinds.is_empty() {
        return Vec::new();
    }
    let now = deps.clock.now_ms();
    let max_age = i64::try_from(config.signal_max_age.as_millis()).unwrap_or(i64::MAX);
    let filter = SignalFilter {
        kinds: config.signal_kinds.clone(),
        symbol: Some(symbol.to_string()),
        since_ms: Some(now.saturating_sub(max_age)),
        limit: PROMPT_SIGNALS,
        exclude_source: Some(config.name.clone()),
    };
    match signals::read_recent(&deps.signals, filter, signals::READ_DEADLINE).await {
        Ok(found) => found.iter().map(|s| RecentSignal::of(s, now)).collect(),
        Err(e) => {
            tracing::warn!(agent = %config.name, symbol, error = %e, "no signals for this decision: the signal bus did not answer");
            Vec::new()
        }
    }
}
