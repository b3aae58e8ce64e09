//! The local rules engine's answers to the analysis pipeline's three model roles, each
//! served as its own model so the long and the short analyst run on different
//! deployments, as the pipeline requires:
//!
//! - **`long-analyst`** (`Purpose::LongCase`) and **`short-analyst`**
//!   (`Purpose::ShortCase`): the case for one side, from the candles and the recent
//!   signals of the [`PipelineContext`]. Each piece of evidence adds to the conviction:
//!   the trend (SMA 9 above SMA 21 for long, below for short) 0.30; momentum (10-candle
//!   rate of change beyond ±0.2 % in the side's direction) 0.25; a Donchian breakout (the
//!   last close beyond the 20 candles before it) 0.15; RSI(14) stretched against the side
//!   (below 30 argues a bounce, above 70 a pullback) 0.15; and every recent signal
//!   pointing the side's way (news, sentiment, ...) `0.3 × its confidence`, the signals
//!   together at most 0.30. Conviction is the sum, at most 0.95. The case is invalidated
//!   at the lowest low (long) or highest high (short) of the last 10 candles, pushed at
//!   least one ATR(14) (mean high−low range) from the price; it targets twice that risk on
//!   the other side. Fewer than 22 candles: conviction 0, no prices, and it says so.
//! - **`strategy-generator`** (`Purpose::TradePlan`): stands aside unless the stronger
//!   case has conviction of at least 0.55 and leads the other by at least 0.15. Else it
//!   plans the stronger side: market entry, stop at the case's invalidation and take
//!   profit at its target (or, when the case names none, one ATR of risk and twice that
//!   of reward), size `max_position_pct × min(edge / 0.5, 1)` percent of equity,
//!   horizon 16 candles, confidence `min(0.5 + edge, 0.95)` where edge is the lead.
//!
//! Never: reads the prompt text, or answers a role it is not (a `long-analyst` asked for
//! a plan is a bad request that names the rule set to use).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::rule_sets::{rsi, sma};
use crate::exchanges::Candle;
use crate::models::roles::{AnalystCase, CaseSide, PipelineContext};
use crate::signals::Direction;

/// Candles a case needs: the slow SMA plus one.
pub const CASE_CANDLES: usize = 22;
const TREND_WEIGHT: f64 = 0.30;
const MOMENTUM_WEIGHT: f64 = 0.25;
const BREAKOUT_WEIGHT: f64 = 0.15;
const STRETCH_WEIGHT: f64 = 0.15;
const SIGNAL_WEIGHT: f64 = 0.30;
const SWING: usize = 10;
const ATR_PERIOD: usize = 14;
/// Least conviction of the stronger case for the strategy generator to trade.
pub const MIN_CONVICTION: f64 = 0.55;
/// Least lead of the stronger case over the other.
pub const MIN_EDGE: f64 = 0.15;
/// Horizon of a plan, in candles.
const HORIZON_CANDLES: i64 = 16;

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Mean high−low range of the last [`ATR_PERIOD`] candles; 0.5 % of `price` when the
/// candles have no range (a flat feed), so a stop is never at the price itself.
fn atr(candles: &[Candle], price: Decimal) -> Decimal {
    let n = candles.len().min(ATR_PERIOD);
    let range = if n == 0 {
        Decimal::ZERO
    } else {
        candles[candles.len() - n..]
            .iter()
            .map(|c| (c.high - c.low).abs())
            .sum::<Decimal>()
            / Decimal::from(n)
    };
    if range > Decimal::ZERO {
        range
    } else {
        price * Decimal::new(5, 3)
    }
}

/// The case for `side` (see the module docs).
pub fn case(side: CaseSide, ctx: &PipelineContext) -> AnalystCase {
    let m = &ctx.market;
    let candles = &m.candles;
    let closes: Vec<Decimal> = candles.iter().map(|c| c.close).collect();
    let price = if m.price > Decimal::ZERO {
        m.price
    } else {
        closes.last().copied().unwrap_or_default()
    };
    if closes.len() < CASE_CANDLES || closes.iter().any(|c| *c <= Decimal::ZERO) {
        return AnalystCase {
            side,
            conviction: 0.0,
            thesis: format!("no {} case: too little data", side.as_str()),
            evidence: vec![format!(
                "{} {}: {} usable candles, the analyst needs {CASE_CANDLES}",
                m.symbol,
                m.timeframe,
                closes.len()
            )],
            invalidation: None,
            target: None,
        };
    }
    let long = side == CaseSide::Long;
    let mut conviction = 0.0;
    let mut evidence = Vec::new();
    let (fast, slow) = (sma(&closes, 9), sma(&closes, 21));
    if (long && fast > slow) || (!long && fast < slow) {
        conviction += TREND_WEIGHT;
        evidence.push(format!(
            "trend: SMA9 {} {} SMA21 {}",
            fast.round_dp(4),
            if long { ">" } else { "<" },
            slow.round_dp(4)
        ));
    }
    let last = closes[closes.len() - 1];
    let past = closes[closes.len() - 11];
    let roc = (last - past) / past;
    let band = Decimal::new(2, 3);
    if (long && roc > band) || (!long && roc < -band) {
        conviction += MOMENTUM_WEIGHT;
        evidence.push(format!(
            "momentum: 10-candle change {:+.2}%",
            f(roc) * 100.0
        ));
    }
    let channel = &candles[candles.len() - 21..candles.len() - 1];
    let high = channel.iter().map(|c| c.high).max().unwrap_or(last);
    let low = channel.iter().map(|c| c.low).min().unwrap_or(last);
    if (long && last > high) || (!long && last < low) {
        conviction += BREAKOUT_WEIGHT;
        evidence.push(format!(
            "breakout: close {} {} the 20-candle {} {}",
            last.round_dp(4),
            if long { "above" } else { "below" },
            if long { "high" } else { "low" },
            if long { high } else { low }.round_dp(4)
        ));
    }
    let rsi = rsi(&closes, 14);
    if (long && rsi < Decimal::from(30)) || (!long && rsi > Decimal::from(70)) {
        conviction += STRETCH_WEIGHT;
        evidence.push(format!(
            "stretch: RSI14 {:.1} ({})",
            f(rsi),
            if long {
                "oversold, a bounce is due"
            } else {
                "overbought, a pullback is due"
            }
        ));
    }
    let wanted = if long {
        Direction::Long
    } else {
        Direction::Short
    };
    let mut from_signals = 0.0;
    for s in m.signals.iter().filter(|s| s.direction == wanted) {
        from_signals += SIGNAL_WEIGHT * s.confidence.clamp(0.0, 1.0);
        evidence.push(format!(
            "signal: {} from {} points {} at confidence {} ({})",
            s.kind.label(),
            s.source,
            wanted.as_str(),
            s.confidence,
            s.evidence
        ));
    }
    conviction += from_signals.min(SIGNAL_WEIGHT);
    let conviction = (conviction.min(0.95) * 10_000.0).round() / 10_000.0;
    let atr = atr(candles, price);
    let recent = &candles[candles.len() - SWING..];
    let (invalidation, target) = if long {
        let swing = recent.iter().map(|c| c.low).min().unwrap_or(price);
        let stop = swing.min(price - atr);
        (stop, price + (price - stop) * Decimal::TWO)
    } else {
        let swing = recent.iter().map(|c| c.high).max().unwrap_or(price);
        let stop = swing.max(price + atr);
        (stop, price - (stop - price) * Decimal::TWO)
    };
    let has_case = !evidence.is_empty();
    if !has_case {
        evidence.push(format!(
            "nothing in the candles or the signals argues {}: SMA9 {} vs SMA21 {}, 10-candle change {:+.2}%, RSI14 {:.1}",
            side.as_str(),
            fast.round_dp(4),
            slow.round_dp(4),
            f(roc) * 100.0,
            f(rsi)
        ));
    }
    AnalystCase {
        side,
        conviction,
        thesis: if has_case {
            format!(
                "{} {}: a {} case on {} point(s) of evidence",
                m.symbol,
                m.timeframe,
                side.as_str(),
                evidence.len()
            )
        } else {
            format!("{} {}: no {} case", m.symbol, m.timeframe, side.as_str())
        },
        evidence,
        // A target at or below zero (a short case far from a tiny price) is no target.
        invalidation: Some(invalidation.round_dp(6)),
        target: (target > Decimal::ZERO).then(|| target.round_dp(6)),
    }
}

/// The strategy generator's answer as JSON text (see the module docs).
pub fn plan(ctx: &PipelineContext) -> String {
    let conv = |c: &Option<AnalystCase>| c.as_ref().map_or(0.0, |c| c.conviction);
    let (long, short) = (conv(&ctx.long_case), conv(&ctx.short_case));
    let (side, strong, weak, case) = if long >= short {
        (CaseSide::Long, long, short, &ctx.long_case)
    } else {
        (CaseSide::Short, short, long, &ctx.short_case)
    };
    let edge = strong - weak;
    if strong < MIN_CONVICTION || edge < MIN_EDGE {
        return serde_json::json!({
            "direction": "stand_aside",
            "confidence": round4((1.0 - edge).clamp(0.5, 0.95)),
            "reason": format!(
                "long conviction {long} vs short {short}: the stronger case needs at least {MIN_CONVICTION} and a lead of {MIN_EDGE}; stand aside"
            ),
        })
        .to_string();
    }
    let m = &ctx.market;
    let price = m.price;
    let atr = atr(&m.candles, price);
    let long_side = side == CaseSide::Long;
    let on_side = |stop: Decimal| {
        if long_side {
            stop < price
        } else {
            stop > price
        }
    };
    let stop = case
        .as_ref()
        .and_then(|c| c.invalidation)
        .filter(|s| on_side(*s))
        .unwrap_or(if long_side { price - atr } else { price + atr });
    let risk = (price - stop).abs();
    let target = case
        .as_ref()
        .and_then(|c| c.target)
        .filter(|t| {
            if long_side {
                *t > price
            } else {
                *t < price && *t > Decimal::ZERO
            }
        })
        .unwrap_or(if long_side {
            price + risk * Decimal::TWO
        } else {
            (price - risk * Decimal::TWO).max(price / Decimal::TWO)
        });
    let share = Decimal::try_from((edge / 0.5).min(1.0)).unwrap_or(Decimal::ONE);
    let size_pct = (ctx.max_position_pct * share)
        .round_dp(2)
        .max(Decimal::new(1, 2));
    let width = match m.candles.as_slice() {
        [.., a, b] => (b.open_time_ms - a.open_time_ms).max(0),
        _ => 0,
    };
    let horizon = if width > 0 {
        humantime::format_duration(std::time::Duration::from_millis(
            (width * HORIZON_CANDLES) as u64,
        ))
        .to_string()
    } else {
        "4h".to_string()
    };
    serde_json::json!({
        "direction": side.as_str(),
        "entry": "market",
        "stop_loss": stop.round_dp(6).normalize().to_string(),
        "take_profit": target.round_dp(6).normalize().to_string(),
        "size_pct": size_pct.normalize().to_string(),
        "horizon": horizon,
        "confidence": round4((0.5 + edge).min(0.95)),
        "reason": format!(
            "{} case leads: conviction {strong} vs {weak}; stop at its invalidation, target twice the risk",
            side.as_str()
        ),
    })
    .to_string()
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::models::roles::parse_case;
    use crate::models::MarketContext;
    use crate::signals::{RecentSignal, SignalKind};

    /// `n` candles rising by 1 from 100, each with a range of ±0.5.
    fn rising(n: usize) -> Vec<Candle> {
        (0..n)
            .map(|i| {
                let c = Decimal::from(100 + i as i64);
                Candle {
                    open_time_ms: i as i64 * 60_000,
                    open: c - dec!(1),
                    high: c + dec!(0.5),
                    low: c - dec!(0.5),
                    close: c,
                    volume: dec!(1),
                }
            })
            .collect()
    }

    fn ctx(candles: Vec<Candle>, signals: Vec<RecentSignal>) -> PipelineContext {
        PipelineContext {
            market: MarketContext {
                venue: "paper".into(),
                symbol: "BTC".into(),
                timeframe: "1m".into(),
                price: candles.last().map_or(Decimal::ZERO, |c| c.close),
                candles,
                position: None,
                account_value: dec!(10000),
                signals,
            },
            long_case: None,
            short_case: None,
            max_position_pct: dec!(10),
        }
    }

    #[test]
    fn a_rising_market_argues_long_and_the_plan_goes_long_with_a_valid_bracket() {
        let mut c = ctx(rising(30), vec![]);
        let long = case(CaseSide::Long, &c);
        let short = case(CaseSide::Short, &c);
        // Trend, momentum and breakout for long; only RSI 100 (overbought) for short.
        assert_eq!(long.conviction, 0.7, "{long:?}");
        assert_eq!(short.conviction, 0.15, "{short:?}");
        // Price 129, ATR 1: the swing low of the last 10 (119.5) is below 128.
        assert_eq!(long.invalidation, Some(dec!(119.5)));
        assert_eq!(long.target, Some(dec!(148)));
        // What it answers reads back through the pipeline's strict parser.
        let text = serde_json::to_string(&long).unwrap();
        assert_eq!(parse_case(&text, CaseSide::Long).unwrap(), long);
        c.long_case = Some(long);
        c.short_case = Some(short);
        let plan: serde_json::Value = serde_json::from_str(&plan(&c)).unwrap();
        assert_eq!(plan["direction"], "long");
        assert_eq!(plan["stop_loss"], "119.5");
        assert_eq!(plan["take_profit"], "148");
        // Edge 0.55 ≥ 0.5: the whole max_position_pct.
        assert_eq!(plan["size_pct"], "10");
        assert_eq!(plan["confidence"], 0.95);
        assert_eq!(plan["horizon"], "16m");
    }

    #[test]
    fn each_role_is_answered_only_by_its_rule_set() {
        use crate::models::local::{LocalRules, RuleSet};
        use crate::models::{ModelRequest, Purpose, StructuredContext};
        let c = ctx(rising(30), vec![]);
        let ask = |purpose| ModelRequest {
            context: Some(StructuredContext::Pipeline(Box::new(c.clone()))),
            ..ModelRequest::new("m", purpose, "")
        };
        let long = LocalRules::with_rules("d", RuleSet::LongAnalyst);
        let text = long.answer(&ask(Purpose::LongCase)).unwrap();
        assert_eq!(parse_case(&text, CaseSide::Long).unwrap().conviction, 0.7);
        // A trade rule set asked for a role names the one to use, and a role rule set
        // asked for a trade decision (or another role) refuses it.
        let e = LocalRules::with_rules("d", RuleSet::SmaCross)
            .answer(&ask(Purpose::LongCase))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model = \"long-analyst\""), "{e}");
        let e = long
            .answer(&ask(Purpose::TradeDecision))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("answers only the analysis pipeline's LongCase"),
            "{e}"
        );
        let e = long
            .answer(&ask(Purpose::TradePlan))
            .unwrap_err()
            .to_string();
        assert!(e.contains("strategy-generator"), "{e}");
        let plan = LocalRules::with_rules("d", RuleSet::StrategyGenerator)
            .answer(&ask(Purpose::TradePlan))
            .unwrap();
        // Without cases the generator stands aside.
        assert!(plan.contains("stand_aside"), "{plan}");
        assert_eq!(RuleSet::parse("short-analyst"), Some(RuleSet::ShortAnalyst));
        assert!(RuleSet::model_names()
            .ends_with("breakout, long-analyst, short-analyst, strategy-generator"));
    }

    #[test]
    fn signals_add_to_their_side_and_close_cases_stand_aside() {
        let flat: Vec<Candle> = (0..30)
            .map(|i| Candle {
                open_time_ms: i * 60_000,
                open: dec!(100),
                high: dec!(100),
                low: dec!(100),
                close: dec!(100),
                volume: dec!(1),
            })
            .collect();
        let news = RecentSignal {
            kind: SignalKind::News,
            source: "news".into(),
            direction: Direction::Short,
            confidence: 0.5,
            value: dec!(-0.5),
            evidence: "exchange hack".into(),
            age_secs: 60,
        };
        let mut c = ctx(flat, vec![news]);
        let short = case(CaseSide::Short, &c);
        assert_eq!(short.conviction, 0.15);
        assert!(short.evidence[0].contains("exchange hack"), "{short:?}");
        // A flat feed has no range: the stop is 0.5 % away.
        assert_eq!(short.invalidation, Some(dec!(100.5)));
        let long = case(CaseSide::Long, &c);
        assert_eq!(long.conviction, 0.0);
        c.long_case = Some(long);
        c.short_case = Some(short);
        let plan: serde_json::Value = serde_json::from_str(&plan(&c)).unwrap();
        assert_eq!(plan["direction"], "stand_aside", "{plan}");
        // Too few candles: no case at all.
        let few = case(CaseSide::Long, &ctx(rising(5), vec![]));
        assert_eq!((few.conviction, few.invalidation), (0.0, None));
        assert!(few.evidence[0].contains("needs 22"), "{few:?}");
    }
}
