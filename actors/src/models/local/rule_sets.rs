//! The single-idea rule sets of the `local` provider, each served as its own model so a
//! swarm of local members votes with different views of the same candles.
//!
//! Owns: the four rules below, each turning closes (and, for `breakout`, highs and lows)
//! into a direction and a confidence, all computed with `Decimal`. Never: reads the
//! prompt text or anything but the candles and the position of the structured context.
//!
//! Every rule first gives a *signal* (bullish, bearish or none) and its *strength* in
//! `[0, 1]`; the position then decides the verdict, as for `rules-v1`:
//! - flat: bullish → BUY, bearish → SELL, none → NOTHING;
//! - long: bearish → SELL (exit), else NOTHING (never add);
//! - short: bullish → BUY (cover), else NOTHING.
//!
//! A BUY or SELL carries confidence `0.5 + 0.45·strength` (0.5 to 0.95); a NOTHING on
//! usable data carries 0.5; too few candles (or a non-positive price, which no venue
//! quotes) is a NOTHING with confidence 0 that says how many were needed.
//!
//! - **`sma-cross`**: SMA(9) against SMA(21) of the closes; bullish when the fast one is
//!   above, bearish when below; strength `min(|fast − slow| / slow / 2%, 1)`. Needs 21
//!   closes.
//! - **`rsi`** (mean reversion): RSI(14), Cutler's variant (simple averages of the gains
//!   and losses over the last 14 changes; 100 with no loss, 50 with no change); bullish
//!   below 30 (oversold), bearish above 70 (overbought); strength
//!   `min(distance past the threshold / 20, 1)`. Needs 15 closes.
//! - **`momentum`**: rate of change over 10 candles, `(close − close₁₀ago) / close₁₀ago`;
//!   bullish above +0.2 %, bearish below −0.2 % (a dead band for noise); strength
//!   `min(|roc| / 5%, 1)`. Needs 11 closes.
//! - **`breakout`** (Donchian channel): the highest high and lowest low of the 20 candles
//!   before the last; bullish when the last close is above that high, bearish when below
//!   that low; strength `min(distance past the band / band / 1%, 1)`. Needs 21 candles.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::exchanges::Candle;
use crate::models::decision::round_confidence;
use crate::models::types::{MarketContext, TradeAction, TradeDecision};

/// A rule set the `local` provider serves, picked by the deployment's `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSet {
    /// The combined rules of [`super::decide_trade`] (trend, momentum and RSI together).
    RulesV1,
    SmaCross,
    Rsi,
    Momentum,
    Breakout,
    /// The analysis pipeline's long analyst ([`super::roles`]).
    LongAnalyst,
    /// The analysis pipeline's short analyst.
    ShortAnalyst,
    /// The analysis pipeline's strategy generator.
    StrategyGenerator,
}

impl RuleSet {
    /// The rule sets that answer the analysis pipeline's roles ([`super::roles`]), each
    /// for one purpose only.
    pub const ROLES: [RuleSet; 3] = [
        RuleSet::LongAnalyst,
        RuleSet::ShortAnalyst,
        RuleSet::StrategyGenerator,
    ];

    pub const ALL: [RuleSet; 5] = [
        RuleSet::RulesV1,
        RuleSet::SmaCross,
        RuleSet::Rsi,
        RuleSet::Momentum,
        RuleSet::Breakout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleSet::RulesV1 => "rules-v1",
            RuleSet::SmaCross => "sma-cross",
            RuleSet::Rsi => "rsi",
            RuleSet::Momentum => "momentum",
            RuleSet::Breakout => "breakout",
            RuleSet::LongAnalyst => "long-analyst",
            RuleSet::ShortAnalyst => "short-analyst",
            RuleSet::StrategyGenerator => "strategy-generator",
        }
    }

    /// The pipeline purpose a role rule set answers; `None` for the trade rule sets.
    pub fn role(self) -> Option<crate::models::Purpose> {
        use crate::models::Purpose;
        match self {
            RuleSet::LongAnalyst => Some(Purpose::LongCase),
            RuleSet::ShortAnalyst => Some(Purpose::ShortCase),
            RuleSet::StrategyGenerator => Some(Purpose::TradePlan),
            _ => None,
        }
    }

    /// The role rule set that answers `purpose`, if it is a pipeline purpose.
    pub fn for_role(purpose: crate::models::Purpose) -> Option<Self> {
        Self::ROLES.into_iter().find(|r| r.role() == Some(purpose))
    }

    /// Every model a `local` deployment may name, trade rule sets then roles, for
    /// config messages: `rules-v1, sma-cross, ..., strategy-generator`.
    pub fn model_names() -> String {
        Self::ALL
            .into_iter()
            .chain(Self::ROLES)
            .map(RuleSet::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rule set a deployment's `model` names, if any.
    pub fn parse(model: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::ROLES)
            .find(|r| r.name() == model)
    }

    /// Every trade rule set's name: `rules-v1, sma-cross, rsi, momentum, breakout`
    /// ([`RuleSet::model_names`] adds the pipeline's roles).
    pub fn names() -> String {
        Self::ALL.map(RuleSet::name).join(", ")
    }

    /// The decision of this rule set on `ctx`.
    pub fn decide(self, ctx: &MarketContext) -> TradeDecision {
        let (signal, needed) = match self {
            RuleSet::RulesV1 => return super::decide_trade(ctx),
            RuleSet::SmaCross => (sma_cross(&closes(&ctx.candles)), SMA_SLOW),
            RuleSet::Rsi => (rsi_signal(&closes(&ctx.candles)), RSI_PERIOD + 1),
            RuleSet::Momentum => (momentum(&closes(&ctx.candles)), ROC_PERIOD + 1),
            RuleSet::Breakout => (breakout(&ctx.candles), DONCHIAN + 1),
            // A role rule set takes no trade decision; `LocalRules::answer` refuses the
            // request before this is reached.
            RuleSet::LongAnalyst | RuleSet::ShortAnalyst | RuleSet::StrategyGenerator => {
                return TradeDecision {
                    action: TradeAction::Nothing,
                    confidence: 0.0,
                    reason: format!(
                        "{} answers the analysis pipeline's role, not trade decisions",
                        self.name()
                    ),
                }
            }
        };
        let Some(signal) = signal else {
            return TradeDecision {
                action: TradeAction::Nothing,
                confidence: 0.0,
                reason: format!(
                    "{} {} {}: {} usable candles, the rule needs {needed} with positive prices; no signal",
                    self.name(),
                    ctx.symbol,
                    ctx.timeframe,
                    ctx.candles.len()
                ),
            };
        };
        let size = ctx.position.as_ref().map_or(Decimal::ZERO, |p| p.size);
        let (action, why) = match (signal.direction, size.cmp(&Decimal::ZERO)) {
            (Some(TradeAction::Sell), std::cmp::Ordering::Greater) => {
                (TradeAction::Sell, "long and bearish: exit")
            }
            (_, std::cmp::Ordering::Greater) => {
                (TradeAction::Nothing, "long and not bearish: hold")
            }
            (Some(TradeAction::Buy), std::cmp::Ordering::Less) => {
                (TradeAction::Buy, "short and bullish: cover")
            }
            (_, std::cmp::Ordering::Less) => (TradeAction::Nothing, "short and not bullish: hold"),
            (Some(TradeAction::Buy), _) => (TradeAction::Buy, "flat and bullish"),
            (Some(TradeAction::Sell), _) => (TradeAction::Sell, "flat and bearish"),
            _ => (TradeAction::Nothing, "flat, no signal"),
        };
        let confidence = match action {
            TradeAction::Nothing => 0.5,
            _ => 0.5 + 0.45 * signal.strength.clamp(0.0, 1.0),
        };
        TradeDecision {
            action,
            confidence: round_confidence(confidence),
            reason: format!(
                "{} {} {}: {}; {why}",
                self.name(),
                ctx.symbol,
                ctx.timeframe,
                signal.evidence
            ),
        }
    }
}

const SMA_FAST: usize = 9;
const SMA_SLOW: usize = 21;
const RSI_PERIOD: usize = 14;
const ROC_PERIOD: usize = 10;
const DONCHIAN: usize = 20;

/// A rule's reading of the candles.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// `Buy` bullish, `Sell` bearish, `None` neither.
    pub direction: Option<TradeAction>,
    /// In `[0, 1]`.
    pub strength: f64,
    /// The numbers behind it, for the reason text.
    pub evidence: String,
}

fn closes(candles: &[Candle]) -> Vec<Decimal> {
    candles.iter().map(|c| c.close).collect()
}

fn usable(values: &[Decimal], needed: usize) -> bool {
    values.len() >= needed && values.iter().all(|v| *v > Decimal::ZERO)
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Simple moving average of the last `n` values (`values.len() >= n >= 1`).
pub fn sma(values: &[Decimal], n: usize) -> Decimal {
    values[values.len() - n..].iter().sum::<Decimal>() / Decimal::from(n)
}

/// RSI over the last `period` changes, Cutler's variant (see the module docs).
pub fn rsi(closes: &[Decimal], period: usize) -> Decimal {
    let (mut gains, mut losses) = (Decimal::ZERO, Decimal::ZERO);
    for w in closes[closes.len() - 1 - period..].windows(2) {
        let d = w[1] - w[0];
        if d > Decimal::ZERO {
            gains += d;
        } else {
            losses -= d;
        }
    }
    if losses.is_zero() && gains.is_zero() {
        Decimal::from(50)
    } else if losses.is_zero() {
        Decimal::from(100)
    } else {
        Decimal::from(100) - Decimal::from(100) / (Decimal::ONE + gains / losses)
    }
}

pub fn sma_cross(closes: &[Decimal]) -> Option<Signal> {
    if !usable(closes, SMA_SLOW) {
        return None;
    }
    let (fast, slow) = (sma(closes, SMA_FAST), sma(closes, SMA_SLOW));
    let spread = (fast - slow) / slow;
    let direction = match fast.cmp(&slow) {
        std::cmp::Ordering::Greater => Some(TradeAction::Buy),
        std::cmp::Ordering::Less => Some(TradeAction::Sell),
        std::cmp::Ordering::Equal => None,
    };
    Some(Signal {
        direction,
        strength: (to_f64(spread.abs()) / 0.02).min(1.0),
        evidence: format!(
            "SMA{SMA_FAST} {} vs SMA{SMA_SLOW} {} ({:+.2}%)",
            fast.round_dp(4),
            slow.round_dp(4),
            to_f64(spread) * 100.0
        ),
    })
}

pub fn rsi_signal(closes: &[Decimal]) -> Option<Signal> {
    if !usable(closes, RSI_PERIOD + 1) {
        return None;
    }
    let value = rsi(closes, RSI_PERIOD);
    let (direction, past) = if value < Decimal::from(30) {
        (Some(TradeAction::Buy), Decimal::from(30) - value)
    } else if value > Decimal::from(70) {
        (Some(TradeAction::Sell), value - Decimal::from(70))
    } else {
        (None, Decimal::ZERO)
    };
    Some(Signal {
        direction,
        strength: (to_f64(past) / 20.0).min(1.0),
        evidence: format!(
            "RSI{RSI_PERIOD} {:.1} (oversold < 30, overbought > 70)",
            to_f64(value)
        ),
    })
}

pub fn momentum(closes: &[Decimal]) -> Option<Signal> {
    if !usable(closes, ROC_PERIOD + 1) {
        return None;
    }
    let last = closes[closes.len() - 1];
    let past = closes[closes.len() - 1 - ROC_PERIOD];
    let roc = (last - past) / past;
    let band = Decimal::new(2, 3);
    let direction = if roc > band {
        Some(TradeAction::Buy)
    } else if roc < -band {
        Some(TradeAction::Sell)
    } else {
        None
    };
    Some(Signal {
        direction,
        strength: (to_f64(roc.abs()) / 0.05).min(1.0),
        evidence: format!(
            "momentum{ROC_PERIOD} {:+.2}% (dead band ±0.2%)",
            to_f64(roc) * 100.0
        ),
    })
}

pub fn breakout(candles: &[Candle]) -> Option<Signal> {
    if candles.len() < DONCHIAN + 1
        || candles
            .iter()
            .any(|c| c.close <= Decimal::ZERO || c.high <= Decimal::ZERO || c.low <= Decimal::ZERO)
    {
        return None;
    }
    let last = candles[candles.len() - 1].close;
    let channel = &candles[candles.len() - 1 - DONCHIAN..candles.len() - 1];
    let high = channel.iter().map(|c| c.high).max().unwrap_or(last);
    let low = channel.iter().map(|c| c.low).min().unwrap_or(last);
    let (direction, past) = if last > high {
        (Some(TradeAction::Buy), (last - high) / high)
    } else if last < low {
        (Some(TradeAction::Sell), (low - last) / low)
    } else {
        (None, Decimal::ZERO)
    };
    Some(Signal {
        direction,
        strength: (to_f64(past) / 0.01).min(1.0),
        evidence: format!(
            "close {} vs Donchian{DONCHIAN} channel {}..{}",
            last.round_dp(4),
            low.round_dp(4),
            high.round_dp(4)
        ),
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::exchanges::Position;

    fn candle(i: usize, close: Decimal, high: Decimal, low: Decimal) -> Candle {
        Candle {
            open_time_ms: i as i64 * 60_000,
            open: close,
            high,
            low,
            close,
            volume: dec!(1),
        }
    }

    /// Candles whose high and low equal the close.
    fn flat_candles(closes: &[Decimal]) -> Vec<Candle> {
        closes
            .iter()
            .enumerate()
            .map(|(i, c)| candle(i, *c, *c, *c))
            .collect()
    }

    fn ctx(candles: Vec<Candle>, size: Decimal) -> MarketContext {
        MarketContext {
            venue: "paper".into(),
            symbol: "BTC".into(),
            timeframe: "1m".into(),
            price: candles.last().map_or(Decimal::ZERO, |c| c.close),
            signals: Vec::new(),
            candles,
            position: (!size.is_zero()).then(|| Position {
                symbol: "BTC".into(),
                size,
                entry_price: dec!(100),
                mark_price: dec!(100),
                unrealized_pnl: Decimal::ZERO,
                leverage: 1,
                liquidation_price: None,
                margin_used: dec!(100),
            }),
            account_value: dec!(10000),
        }
    }

    /// 1, 2, ..., n.
    fn ramp(n: usize) -> Vec<Decimal> {
        (1..=n).map(Decimal::from).collect()
    }

    #[test]
    fn model_names_round_trip_and_unknown_ones_are_none() {
        for r in RuleSet::ALL {
            assert_eq!(RuleSet::parse(r.name()), Some(r));
        }
        assert_eq!(RuleSet::parse("gpt-4o"), None);
        assert_eq!(
            RuleSet::names(),
            "rules-v1, sma-cross, rsi, momentum, breakout"
        );
    }

    #[test]
    fn sma_cross_known_answer_on_a_ramp() {
        // Closes 1..=21: SMA9 = mean(13..=21) = 17, SMA21 = mean(1..=21) = 11.
        let closes = ramp(21);
        assert_eq!(sma(&closes, 9), dec!(17));
        assert_eq!(sma(&closes, 21), dec!(11));
        let s = sma_cross(&closes).unwrap();
        assert_eq!(s.direction, Some(TradeAction::Buy));
        // Spread 6/11 = 54.5% is past the 2% that makes the strength full.
        assert_eq!(s.strength, 1.0);
        let d = RuleSet::SmaCross.decide(&ctx(flat_candles(&closes), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Buy, 0.95));
        assert!(
            d.reason.contains("SMA9 17 vs SMA21 11 (+54.55%)"),
            "{}",
            d.reason
        );
        // One close short: no signal, confidence 0.
        let d = RuleSet::SmaCross.decide(&ctx(flat_candles(&ramp(20)), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Nothing, 0.0));
        assert!(d.reason.contains("needs 21"), "{}", d.reason);
    }

    #[test]
    fn sma_cross_small_spread_scales_the_confidence() {
        // 12 closes at 100 then 9 at 101: SMA9 = 101, SMA21 = (1200 + 909) / 21 = 100.428571…
        let mut closes = vec![dec!(100); 12];
        closes.extend(vec![dec!(101); 9]);
        let s = sma_cross(&closes).unwrap();
        // spread = 0.571428…/100.428571… = 0.0056899…; strength = 0.28449…
        assert!((s.strength - 0.284_495).abs() < 1e-5, "{}", s.strength);
        let d = RuleSet::SmaCross.decide(&ctx(flat_candles(&closes), Decimal::ZERO));
        // 0.5 + 0.45 × 0.284495 = 0.628023 → rounded to four decimals.
        assert_eq!((d.action, d.confidence), (TradeAction::Buy, 0.628));
        // Long and still bullish: hold, at 0.5.
        let d = RuleSet::SmaCross.decide(&ctx(flat_candles(&closes), dec!(1)));
        assert_eq!((d.action, d.confidence), (TradeAction::Nothing, 0.5));
    }

    #[test]
    fn rsi_known_answers() {
        // 14 changes: 10 gains of 1, 4 losses of 2 → RS = 10/8, RSI = 100 − 100/2.25 = 55.5…
        let mut closes = vec![dec!(100)];
        for i in 0..14 {
            let last = *closes.last().unwrap();
            closes.push(if i < 10 {
                last + dec!(1)
            } else {
                last - dec!(2)
            });
        }
        let value = rsi(&closes, 14);
        assert_eq!(value.round_dp(4), dec!(55.5556));
        assert_eq!(rsi_signal(&closes).unwrap().direction, None);
        // Straight down: no gain, RSI 0 → oversold, strength min(30/20, 1) = 1: BUY 0.95
        // when flat; and when short it covers.
        let down: Vec<Decimal> = (0..15).map(|i| dec!(100) - Decimal::from(i)).collect();
        assert_eq!(rsi(&down, 14), Decimal::ZERO);
        let d = RuleSet::Rsi.decide(&ctx(flat_candles(&down), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Buy, 0.95));
        let d = RuleSet::Rsi.decide(&ctx(flat_candles(&down), dec!(-1)));
        assert_eq!(d.action, TradeAction::Buy);
        // 13 gains of 1 and one loss of 1: RS 13, RSI 92.857… → overbought, strength
        // (22.857…)/20 capped at 1 → SELL 0.95; long → exit.
        let mut up = vec![dec!(100)];
        for i in 0..14 {
            let last = *up.last().unwrap();
            up.push(if i == 0 {
                last - dec!(1)
            } else {
                last + dec!(1)
            });
        }
        assert_eq!(rsi(&up, 14).round_dp(3), dec!(92.857));
        let d = RuleSet::Rsi.decide(&ctx(flat_candles(&up), dec!(1)));
        assert_eq!((d.action, d.confidence), (TradeAction::Sell, 0.95));
    }

    #[test]
    fn momentum_known_answers_and_dead_band() {
        // 100 → 101 over 10 candles: +1% → BUY, strength 0.2, confidence 0.5 + 0.09 = 0.59.
        let mut closes = vec![dec!(100); 10];
        closes.push(dec!(101));
        let s = momentum(&closes).unwrap();
        assert_eq!(s.direction, Some(TradeAction::Buy));
        assert!((s.strength - 0.2).abs() < 1e-12);
        let d = RuleSet::Momentum.decide(&ctx(flat_candles(&closes), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Buy, 0.59));
        // +0.1% is inside the ±0.2% band: no signal.
        *closes.last_mut().unwrap() = dec!(100.1);
        assert_eq!(momentum(&closes).unwrap().direction, None);
        // −3%: SELL at 0.5 + 0.45 × 0.6 = 0.77.
        *closes.last_mut().unwrap() = dec!(97);
        let d = RuleSet::Momentum.decide(&ctx(flat_candles(&closes), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Sell, 0.77));
    }

    #[test]
    fn breakout_known_answers() {
        // 20 candles ranging 99..101, then a close of 101.5: above the channel's high by
        // 0.5/101 = 0.495% → strength 0.495, confidence 0.5 + 0.45 × 0.49505 = 0.72277.
        let mut candles: Vec<Candle> = (0..20)
            .map(|i| candle(i, dec!(100), dec!(101), dec!(99)))
            .collect();
        candles.push(candle(20, dec!(101.5), dec!(101.6), dec!(100.9)));
        let d = RuleSet::Breakout.decide(&ctx(candles.clone(), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Buy, 0.7228));
        assert!(d.reason.contains("channel 99..101"), "{}", d.reason);
        // Inside the channel: nothing.
        candles.last_mut().unwrap().close = dec!(100.5);
        let d = RuleSet::Breakout.decide(&ctx(candles.clone(), Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Nothing, 0.5));
        // Below the low by 2%+: SELL at full strength.
        candles.last_mut().unwrap().close = dec!(97);
        let d = RuleSet::Breakout.decide(&ctx(candles, Decimal::ZERO));
        assert_eq!((d.action, d.confidence), (TradeAction::Sell, 0.95));
    }
}
