//! The local rules engine's answer to the research pipeline (RBI): a strategy spec from
//! the research text, by keyword, so `orrery research run` works offline.
//!
//! Owns: recognising which built-in idea the research describes and writing it as a spec
//! (`strategies::spec`) over the built-in indicators, with the periods the text names.
//! Never: pretends to understand prose — an idea it does not recognise is answered with a
//! note listing what it does recognise, which the pipeline stores as an attempt without a
//! spec.
//!
//! Ideas, checked in this order (case-insensitive): `bollinger`; `macd`; `donchian`,
//! `breakout` or `channel`; `rsi` or `relative strength`; then a crossover of moving
//! averages (`ema` / `exponential` for EMAs, else SMAs) when the text says `moving
//! average`, `sma`, `ema` or `crossover`. Periods: the whole numbers from 2 to 400 in the
//! text, in order; a crossover takes the smallest as fast and the largest as slow (10 / 30
//! without two distinct ones), the others their first number (defaults: Bollinger 20,
//! RSI 14, Donchian 20; MACD always 12/26/9).

use serde_json::{json, Value};

/// What the writer recognises, for the note it answers otherwise.
pub const IDEAS: &str = "Bollinger-band reversion, MACD crossover, Donchian channel breakout, RSI reversion, SMA or EMA crossover";

/// The answer to research `text`: a spec as JSON, or a note when no idea is recognised.
pub fn answer(text: &str) -> String {
    match spec(text) {
        Some(spec) => spec.to_string(),
        None => format!(
            "The local rules engine writes strategy specs only for ideas it recognises by keyword ({IDEAS}); this research names none of them. Point [research] model at a language model for free-form research."
        ),
    }
}

/// Whole numbers from 2 to 400 in `text` (lower case), in order of appearance; a number
/// that is a width or a level rather than a period (`2-sigma`, `2 std`, `5%`, `3x`) is not
/// one.
fn periods(text: &str) -> Vec<i64> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let digits = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len(), |n| start + n);
        let after = rest[digits..].trim_start_matches(['-', ' ']);
        let not_a_period = ["sigma", "std", "%", "percent", "x "]
            .iter()
            .any(|u| after.starts_with(u));
        if let (false, Ok(n)) = (not_a_period, rest[start..digits].parse::<i64>()) {
            if (2..=400).contains(&n) {
                out.push(n);
            }
        }
        rest = &rest[digits..];
    }
    out
}

fn spec(text: &str) -> Option<Value> {
    let t = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    let nums = periods(&t);
    let first_or = |default: i64| nums.first().copied().unwrap_or(default);
    let spec = if has(&["bollinger"]) {
        json!({
            "name": "bollinger_reversion",
            "description": "Buy when the close crosses back above the lower Bollinger band; sell when it reaches the middle band.",
            "indicators": {"bb": {"bollinger": {"period": first_or(20), "k": 2.0}}},
            "long": {"entry": {"crosses_above": ["close", "bb.lower"]}, "exit": {">": ["close", "bb.middle"]}}
        })
    } else if has(&["macd"]) {
        json!({
            "name": "macd_cross",
            "description": "Long while the MACD line is above its signal line: enter on the cross up, leave on the cross down.",
            "indicators": {"m": {"macd": {"fast": 12, "slow": 26, "signal": 9}}},
            "long": {"entry": {"crosses_above": ["m.macd", "m.signal"]}, "exit": {"crosses_below": ["m.macd", "m.signal"]}}
        })
    } else if has(&["donchian", "breakout", "channel"]) {
        json!({
            "name": "donchian_breakout",
            "description": "Buy a close above the highest high of the previous bars; sell a close below their lowest low.",
            "indicators": {"dc": {"donchian": {"period": first_or(20)}}},
            "long": {"entry": {">": ["close", "dc.upper"]}, "exit": {"<": ["close", "dc.lower"]}}
        })
    } else if has(&["rsi", "relative strength"]) {
        json!({
            "name": "rsi_reversion",
            "description": "Buy when RSI recovers above 30 from oversold; sell when it rises above 70.",
            "indicators": {"rsi": {"rsi": {"period": first_or(14)}}},
            "long": {"entry": {"crosses_above": ["rsi", 30]}, "exit": {">": ["rsi", 70]}}
        })
    } else if has(&["moving average", "sma", "ema", "crossover", "cross over"]) {
        let kind = if has(&["ema", "exponential"]) {
            "ema"
        } else {
            "sma"
        };
        let (fast, slow) = match (nums.iter().min(), nums.iter().max()) {
            (Some(&lo), Some(&hi)) if lo < hi => (lo, hi),
            _ => (10, 30),
        };
        json!({
            "name": format!("{kind}_cross"),
            "description": format!("Long on the {fast}-bar {} crossing above the {slow}-bar one, short on the reverse.", kind.to_uppercase()),
            "indicators": {"fast": {kind: {"period": fast}}, "slow": {kind: {"period": slow}}},
            "long": {"entry": {"crosses_above": ["fast", "slow"]}},
            "short": {"entry": {"crosses_below": ["fast", "slow"]}}
        })
    } else {
        return None;
    };
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::spec::validate;

    #[test]
    fn each_recognised_idea_is_a_valid_spec_with_the_periods_of_the_text() {
        for (text, name, needle) in [
            (
                "Fade moves outside 2-sigma Bollinger bands (30 bars).",
                "bollinger_reversion",
                r#""period":30"#,
            ),
            ("MACD momentum on daily bars.", "macd_cross", r#""fast":12"#),
            (
                "Turtle-style breakout of the 55-day channel.",
                "donchian_breakout",
                r#""period":55"#,
            ),
            (
                "Buy oversold RSI(7) dips.",
                "rsi_reversion",
                r#""period":7"#,
            ),
            (
                "Trade the 50 and 200 day moving average crossover.",
                "sma_cross",
                r#""slow":{"sma":{"period":200}}"#,
            ),
            (
                "An EMA cross of 12 over 26.",
                "ema_cross",
                r#""fast":{"ema":{"period":12}}"#,
            ),
            (
                "SMA crossover on daily bars.",
                "sma_cross",
                r#""slow":{"sma":{"period":30}}"#,
            ),
        ] {
            let answer = answer(text);
            let spec = validate(&answer).unwrap_or_else(|e| panic!("{text}: {e}\n{answer}"));
            assert_eq!(spec.name, name, "{text}");
            assert!(answer.contains(needle), "{text}: {answer}");
        }
    }

    #[test]
    fn widths_and_levels_are_not_periods() {
        assert_eq!(
            periods("2-sigma bands over 30 bars, 5% stop, 3x leverage, rsi(14)"),
            vec![30, 14]
        );
        assert_eq!(periods("1 and 1000 and 20"), vec![20]);
    }

    #[test]
    fn unrecognised_research_gets_a_note_not_a_spec() {
        let answer = answer("Buy when the CEO tweets.");
        assert!(validate(&answer).is_err());
        assert!(answer.contains("recognises by keyword"), "{answer}");
    }
}
