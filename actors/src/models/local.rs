//! The offline `local` provider: a deterministic rules engine, so the engine trades on
//! paper with no API key and no network. A deployment's `model` picks the rule set:
//! `rules-v1` (the combined rules below), or one of the single-idea rule sets `sma-cross`,
//! `rsi`, `momentum` and `breakout` (Donchian channel), documented in [`rule_sets`], which
//! let a swarm of local members vote with different views. Any other model is a config
//! error that lists these names.
//!
//! Owns: the trading and risk rules below, and answering in exactly the JSON format LLM
//! providers are asked for (`{"action":"BUY","confidence":0.72,"reason":"..."}`), so the
//! same parser ([`super::decision`]) reads both. Never: pretends to be a language model,
//! reads the free-text prompt (only [`ModelRequest::context`]), or touches the network.
//!
//! # `rules-v1` trade decision rules (`Purpose::TradeDecision`, needs `StructuredContext::Market`)
//!
//! On candle closes (oldest first), computed with `Decimal`:
//! - trend: SMA(9) against SMA(21); the spread is `(fast - slow) / slow`;
//! - RSI(14), Cutler's variant (simple averages of gains and losses over 14 changes);
//! - momentum: rate of change over 10 candles.
//!
//! A setup is *bullish* when fast > slow, momentum > 0 and RSI < 70 (not overbought), and
//! *bearish* when fast < slow, momentum < 0 and RSI > 30 (not oversold). Then, by position:
//! - flat: bullish → BUY, bearish → SELL, else NOTHING;
//! - long: SELL as soon as the trend turns (fast < slow), else NOTHING (never add);
//! - short: BUY as soon as the trend turns (fast > slow), else NOTHING.
//!
//! Confidence grows with the signal: `0.5 + 0.25·min(|spread|/2%, 1) + 0.2·min(|momentum|/5%, 1)`,
//! at most 0.95; a NOTHING carries 0.9 when nothing moves, falling linearly to 0.5 as that
//! signal strength reaches its maximum (sure of staying out only when the market is quiet). Fewer than 22 candles is a NOTHING with confidence 0 and says so.
//!
//! # Risk confirmation rules (`Purpose::RiskConfirmation`, needs `StructuredContext::Risk`)
//!
//! The same for every rule set:
//!
//! - no open positions → HOLD (nothing to close);
//! - PnL against the baseline below zero → CLOSE_ALL (a loss limit is never overridden);
//! - in profit but some position is losing → CLOSE_ALL (bank the gain before it leaks);
//! - in profit and every position winning → HOLD (let winners run).
//!
//! # The analysis pipeline's roles (`Purpose::LongCase`, `ShortCase`, `TradePlan`)
//!
//! Answered only by the rule sets `long-analyst`, `short-analyst` and
//! `strategy-generator` ([`roles`]), each from `StructuredContext::Pipeline`; any other
//! rule set asked for a role, or a role rule set asked for anything but its role (or
//! free text), is a bad request that names the rule set to use.
//!
//! # Strategy specs (`Purpose::Freeform` with `StructuredContext::Research`)
//!
//! Every rule set writes the research pipeline's spec by keyword ([`strategy_writer`]),
//! so `orrery research run` works offline.
//!
//! # Sentiment (`Purpose::SentimentScore`, needs `StructuredContext::Headlines`)
//!
//! Every rule set scores headlines by the same small lexicon ([`sentiment`]), so the
//! sentiment agent works offline.
//!
//! # Freeform
//!
//! A fixed note that this deployment is a rules engine and no language model is running.

use async_trait::async_trait;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::decision::{render_risk_verdict, render_trade_decision, round_confidence};
use super::pool::{Completion, Provider};
use super::types::{
    tokens_in, MarketContext, ModelError, ModelRequest, Purpose, RiskContext, RiskVerdict,
    StructuredContext, TradeAction, TradeDecision, Usage,
};
use crate::models::roles::CaseSide;
use crate::resilience::ErrorClass;

pub mod roles;
pub mod rule_sets;
pub mod sentiment;
pub mod strategy_writer;

pub use rule_sets::RuleSet;

/// The provider name in config and responses.
pub const PROVIDER: &str = "local";
/// The combined rule set, and the model of the offline `default` deployment.
pub const MODEL: &str = "rules-v1";

const FAST: usize = 9;
const SLOW: usize = 21;
const RSI_PERIOD: usize = 14;
const MOMENTUM_PERIOD: usize = 10;
/// Closes needed: the slow SMA plus one (every indicator fits inside that window).
pub const MIN_CANDLES: usize = SLOW + 1;
const OVERBOUGHT: f64 = 70.0;
const OVERSOLD: f64 = 30.0;
/// Spread and momentum at which their share of the confidence is full.
const FULL_SPREAD: f64 = 0.02;
const FULL_MOMENTUM: f64 = 0.05;

const FREEFORM_NOTE: &str = "This deployment is the local rules engine rules-v1, not a language model. It answers trade decisions (SMA 9/21 crossover, RSI 14, 10-candle momentum) and risk confirmations from the structured context only; free-text questions get this note.";

/// The `local` provider for one deployment.
#[derive(Debug, Clone)]
pub struct LocalRules {
    deployment: String,
    rules: RuleSet,
}

impl LocalRules {
    /// A deployment of the combined rules (`rules-v1`).
    pub fn new(deployment: impl Into<String>) -> Self {
        Self::with_rules(deployment, RuleSet::RulesV1)
    }

    /// A deployment of one rule set.
    pub fn with_rules(deployment: impl Into<String>, rules: RuleSet) -> Self {
        Self {
            deployment: deployment.into(),
            rules,
        }
    }

    /// The answer text for a request, or why the request cannot be answered.
    pub fn answer(&self, req: &ModelRequest) -> Result<String, ModelError> {
        if req.purpose != Purpose::Freeform
            && self.rules.role() != RuleSet::for_role(req.purpose).and_then(RuleSet::role)
        {
            return Err(self.wrong_role(req.purpose));
        }
        match (req.purpose, &req.context) {
            (Purpose::LongCase, Some(StructuredContext::Pipeline(p))) => Ok(
                serde_json::to_string(&roles::case(CaseSide::Long, p)).map_err(|e| self.unrenderable(e))?,
            ),
            (Purpose::ShortCase, Some(StructuredContext::Pipeline(p))) => Ok(
                serde_json::to_string(&roles::case(CaseSide::Short, p)).map_err(|e| self.unrenderable(e))?,
            ),
            (Purpose::TradePlan, Some(StructuredContext::Pipeline(p))) => Ok(roles::plan(p)),
            (Purpose::TradeDecision, Some(StructuredContext::Market(m))) => {
                Ok(render_trade_decision(&self.rules.decide(m)))
            }
            (Purpose::RiskConfirmation, Some(StructuredContext::Risk(r))) => {
                let (verdict, reason) = confirm_risk(r);
                Ok(render_risk_verdict(verdict, &reason))
            }
            // Every local deployment scores headlines by the same lexicon: the sentiment
            // rules do not depend on the trading rule set picked by `model`.
            (Purpose::SentimentScore, Some(StructuredContext::Headlines(batch))) => {
                Ok(sentiment::answer(batch))
            }
            // Every local deployment writes the research pipeline's spec the same way.
            (Purpose::Freeform, Some(StructuredContext::Research(r))) => {
                Ok(strategy_writer::answer(&r.text))
            }
            (Purpose::Freeform, _) => Ok(match self.rules {
                RuleSet::RulesV1 => FREEFORM_NOTE.to_string(),
                other if other.role().is_some() => format!(
                    "This deployment is the local rules engine's `{}` rule set, not a language model. It answers the analysis pipeline's {:?} from the structured context only; free-text questions get this note.",
                    other.name(),
                    other.role().unwrap_or(Purpose::Freeform)
                ),
                other => format!(
                    "This deployment is the local rules engine's `{}` rule set, not a language model. It answers trade decisions and risk confirmations from the structured context only; free-text questions get this note.",
                    other.name()
                ),
            }),
            (purpose, context) => {
                let needed = match purpose {
                    Purpose::TradeDecision => "StructuredContext::Market",
                    Purpose::RiskConfirmation => "StructuredContext::Risk",
                    Purpose::SentimentScore => "StructuredContext::Headlines",
                    _ => "StructuredContext::Pipeline",
                };
                let got = match context {
                    None => "none",
                    Some(StructuredContext::Market(_)) => "a market context",
                    Some(StructuredContext::Risk(_)) => "a risk context",
                    Some(StructuredContext::Pipeline(_)) => "a pipeline context",
                    Some(StructuredContext::Headlines(_)) => "a headline batch",
                    Some(StructuredContext::Research(_)) => "research text",
                };
                Err(ModelError::Provider {
                    deployment: self.deployment.clone(),
                    class: ErrorClass::BadRequest,
                    message: format!(
                        "the local rules engine answers {purpose:?} only from {needed} in ModelRequest.context, and got {got}; the agent must send the structured context"
                    ),
                })
            }
        }
    }
}

impl LocalRules {
    /// A request for a purpose this rule set does not answer: a pipeline role asked of a
    /// trade rule set (or of another role's), or a trade decision asked of a role.
    fn wrong_role(&self, purpose: Purpose) -> ModelError {
        let message = match RuleSet::for_role(purpose) {
            Some(right) => format!(
                "the local rule set `{}` does not answer {purpose:?}; point this pipeline stage's model at a local deployment with model = \"{}\"",
                self.rules.name(),
                right.name()
            ),
            None => format!(
                "the local rule set `{}` answers only the analysis pipeline's {:?}; trade decisions and risk confirmations need one of: {}",
                self.rules.name(),
                self.rules.role().unwrap_or(Purpose::Freeform),
                RuleSet::names()
            ),
        };
        ModelError::Provider {
            deployment: self.deployment.clone(),
            class: ErrorClass::BadRequest,
            message,
        }
    }

    fn unrenderable(&self, e: serde_json::Error) -> ModelError {
        ModelError::Provider {
            deployment: self.deployment.clone(),
            class: ErrorClass::BadRequest,
            message: format!("cannot render the answer as JSON: {e}"),
        }
    }
}

#[async_trait]
impl Provider for LocalRules {
    fn name(&self) -> &str {
        &self.deployment
    }
    fn provider(&self) -> &str {
        PROVIDER
    }
    fn model(&self) -> &str {
        self.rules.name()
    }
    async fn complete(&self, req: &ModelRequest) -> Result<Completion, ModelError> {
        let text = self.answer(req)?;
        // The usual rule of thumb (four characters a token), so token accounting and
        // budgets behave the same offline as with a real provider.
        let prompt_chars = req.prompt_chars();
        Ok(Completion {
            usage: Usage {
                prompt_tokens: tokens_in(prompt_chars),
                completion_tokens: tokens_in(text.chars().count()),
            },
            text,
            finish_reason: Some("stop".into()),
        })
    }
}

/// The indicators the trade rules read, for the reason text and for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicators {
    pub fast_sma: Decimal,
    pub slow_sma: Decimal,
    /// `(fast - slow) / slow`.
    pub spread: f64,
    pub rsi: f64,
    /// Rate of change over [`MOMENTUM_PERIOD`] candles.
    pub momentum: f64,
}

/// Computes the indicators, or `None` with fewer than [`MIN_CANDLES`] closes or a
/// non-positive price (which no venue quotes; treated as missing data).
pub fn indicators(closes: &[Decimal]) -> Option<Indicators> {
    if closes.len() < MIN_CANDLES || closes.iter().any(|c| *c <= Decimal::ZERO) {
        return None;
    }
    let sma = |n: usize| -> Decimal {
        let window = &closes[closes.len() - n..];
        window.iter().sum::<Decimal>() / Decimal::from(n)
    };
    let fast_sma = sma(FAST);
    let slow_sma = sma(SLOW);
    let ratio = |num: Decimal, den: Decimal| (num / den).to_f64().unwrap_or(0.0);
    let spread = ratio(fast_sma - slow_sma, slow_sma);
    let last = closes[closes.len() - 1];
    let past = closes[closes.len() - 1 - MOMENTUM_PERIOD];
    let momentum = ratio(last - past, past);
    let changes = closes[closes.len() - 1 - RSI_PERIOD..].windows(2);
    let (mut gains, mut losses) = (Decimal::ZERO, Decimal::ZERO);
    for w in changes {
        let d = w[1] - w[0];
        if d > Decimal::ZERO {
            gains += d;
        } else {
            losses -= d;
        }
    }
    let rsi = if losses.is_zero() && gains.is_zero() {
        50.0
    } else if losses.is_zero() {
        100.0
    } else {
        let rs = ratio(gains, losses);
        100.0 - 100.0 / (1.0 + rs)
    };
    Some(Indicators {
        fast_sma,
        slow_sma,
        spread,
        rsi,
        momentum,
    })
}

/// The trade rules of the module docs.
pub fn decide_trade(ctx: &MarketContext) -> TradeDecision {
    let closes: Vec<Decimal> = ctx.candles.iter().map(|c| c.close).collect();
    let Some(ind) = indicators(&closes) else {
        return TradeDecision {
            action: TradeAction::Nothing,
            confidence: 0.0,
            reason: format!(
                "{} {}: {} usable candles, the rules need {MIN_CANDLES} with positive closes; no signal",
                ctx.symbol,
                ctx.timeframe,
                closes.len()
            ),
        };
    };
    let bullish = ind.spread > 0.0 && ind.momentum > 0.0 && ind.rsi < OVERBOUGHT;
    let bearish = ind.spread < 0.0 && ind.momentum < 0.0 && ind.rsi > OVERSOLD;
    let size = ctx.position.as_ref().map_or(Decimal::ZERO, |p| p.size);
    let (action, why) = if size > Decimal::ZERO {
        if ind.spread < 0.0 {
            (TradeAction::Sell, "long and the trend turned down: exit")
        } else {
            (TradeAction::Nothing, "already long and the trend holds")
        }
    } else if size < Decimal::ZERO {
        if ind.spread > 0.0 {
            (TradeAction::Buy, "short and the trend turned up: cover")
        } else {
            (TradeAction::Nothing, "already short and the trend holds")
        }
    } else if bullish {
        (TradeAction::Buy, "flat, uptrend with positive momentum")
    } else if bearish {
        (TradeAction::Sell, "flat, downtrend with negative momentum")
    } else {
        (TradeAction::Nothing, "flat, no aligned trend and momentum")
    };
    let strength = 0.25 * (ind.spread.abs() / FULL_SPREAD).min(1.0)
        + 0.2 * (ind.momentum.abs() / FULL_MOMENTUM).min(1.0);
    let confidence = match action {
        TradeAction::Nothing => 0.9 - 0.4 * (strength / 0.45),
        _ => (0.5 + strength).min(0.95),
    };
    let relation = if ind.fast_sma > ind.slow_sma {
        ">"
    } else if ind.fast_sma < ind.slow_sma {
        "<"
    } else {
        "="
    };
    TradeDecision {
        action,
        confidence: round_confidence(confidence.clamp(0.0, 1.0)),
        reason: format!(
            "{} {}: SMA{FAST} {} {relation} SMA{SLOW} {} ({:+.2}%), RSI{RSI_PERIOD} {:.1}, momentum{MOMENTUM_PERIOD} {:+.2}%; {why}",
            ctx.symbol,
            ctx.timeframe,
            ind.fast_sma.round_dp(4),
            ind.slow_sma.round_dp(4),
            ind.spread * 100.0,
            ind.rsi,
            ind.momentum * 100.0,
        ),
    }
}

/// The risk rules of the module docs: the verdict and its reason.
pub fn confirm_risk(ctx: &RiskContext) -> (RiskVerdict, String) {
    let pnl = format!(
        "PnL {} USD ({}%) against baseline {}",
        ctx.pnl_usd.round_dp(2),
        ctx.pnl_pct.round_dp(2),
        ctx.baseline_value.round_dp(2)
    );
    let open: Vec<_> = ctx.positions.iter().filter(|p| !p.size.is_zero()).collect();
    if open.is_empty() {
        return (
            RiskVerdict::Hold,
            format!("{}: no open positions, nothing to close; {pnl}", ctx.breach),
        );
    }
    if ctx.pnl_usd < Decimal::ZERO {
        return (
            RiskVerdict::CloseAll,
            format!(
                "{}: {pnl}; a loss limit is never overridden, close {} positions",
                ctx.breach,
                open.len()
            ),
        );
    }
    let losers: Vec<&str> = open
        .iter()
        .filter(|p| p.unrealized_pnl < Decimal::ZERO)
        .map(|p| p.symbol.as_str())
        .collect();
    if losers.is_empty() {
        (
            RiskVerdict::Hold,
            format!(
                "{}: {pnl}; all {} positions in profit, let winners run",
                ctx.breach,
                open.len()
            ),
        )
    } else {
        (
            RiskVerdict::CloseAll,
            format!(
                "{}: {pnl}; losing positions ({}) would eat the gain, bank it",
                ctx.breach,
                losers.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests;
