//! The `local` provider's `sentiment` rules: scores headlines by a small built-in lexicon,
//! so the sentiment agent runs with no key and no network.
//!
//! Owns: the lexicon and the score of one headline, and answering a
//! `Purpose::SentimentScore` request (from its [`HeadlineBatch`] context) in exactly the
//! JSON format a language model is asked for (`{"scores":[{"n":1,"symbol":"BTC","score":0.5}]}`),
//! so the sentiment agent's strict parser reads both. Never: reads the prompt text, or
//! pretends to understand language — it counts words.
//!
//! # The score
//!
//! A headline is split into lower-case words (letters and digits). `p` counts words in the
//! bullish list, `n` those in the bearish list; a word right after a negation (`not`,
//! `no`, `never`, `without`) counts for the other side. The score is
//! `(p − n) / max(p + n, 2)`, rounded to two decimals: one bullish word scores 0.5, two
//! score 1, one of each scores 0, none scores 0. The same score goes to every symbol the
//! headline mentions (the lexicon cannot tell which one a word is about).

use crate::models::types::HeadlineBatch;

/// Words that lean bullish.
const BULLISH: &[&str] = &[
    "adopt",
    "adopts",
    "adoption",
    "all-time",
    "approval",
    "approve",
    "approved",
    "approves",
    "beat",
    "beats",
    "boom",
    "breakout",
    "bull",
    "bullish",
    "buy",
    "buying",
    "climb",
    "climbs",
    "gain",
    "gains",
    "growth",
    "high",
    "inflow",
    "inflows",
    "jump",
    "jumps",
    "launch",
    "launches",
    "partnership",
    "rallies",
    "rally",
    "record",
    "recover",
    "recovers",
    "rise",
    "rises",
    "soar",
    "soars",
    "surge",
    "surges",
    "upgrade",
    "upgraded",
    "win",
    "wins",
];

/// Words that lean bearish.
const BEARISH: &[&str] = &[
    "ban",
    "banned",
    "bans",
    "bear",
    "bearish",
    "collapse",
    "collapses",
    "crash",
    "crashes",
    "decline",
    "declines",
    "delay",
    "delays",
    "drop",
    "drops",
    "dump",
    "exploit",
    "fall",
    "falls",
    "fear",
    "fears",
    "fraud",
    "hack",
    "hacked",
    "lawsuit",
    "liquidation",
    "liquidations",
    "loss",
    "losses",
    "low",
    "outflow",
    "outflows",
    "plunge",
    "plunges",
    "reject",
    "rejected",
    "rejects",
    "selloff",
    "sell-off",
    "slump",
    "slumps",
    "sue",
    "sued",
    "tumble",
    "tumbles",
    "warning",
];

/// Words that flip the next lexicon word.
const NEGATIONS: &[&str] = &["not", "no", "never", "without"];

/// The lexicon score of one headline, in `[-1, 1]` (see the module docs).
pub fn score_headline(title: &str) -> f64 {
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let (mut bullish, mut bearish) = (0u32, 0u32);
    for (i, w) in words.iter().enumerate() {
        let negated = i > 0 && NEGATIONS.contains(&words[i - 1]);
        let lean = if BULLISH.contains(w) {
            1
        } else if BEARISH.contains(w) {
            -1
        } else {
            0
        };
        match (lean, negated) {
            (1, false) | (-1, true) => bullish += 1,
            (-1, false) | (1, true) => bearish += 1,
            _ => {}
        }
    }
    let total = f64::from((bullish + bearish).max(2));
    let raw = (f64::from(bullish) - f64::from(bearish)) / total;
    (raw * 100.0).round() / 100.0
}

/// The answer to a sentiment request: one score per headline and symbol of `batch`.
pub fn answer(batch: &HeadlineBatch) -> String {
    let scores: Vec<serde_json::Value> = batch
        .headlines
        .iter()
        .flat_map(|h| {
            let score = score_headline(&h.title);
            h.symbols
                .iter()
                .map(move |s| serde_json::json!({"n": h.n, "symbol": s, "score": score}))
        })
        .collect();
    serde_json::json!({ "scores": scores }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::types::HeadlineToScore;

    #[test]
    fn known_scores() {
        assert_eq!(score_headline("Bitcoin ETF inflows hit a record"), 1.0);
        assert_eq!(score_headline("Ether rallies after the upgrade"), 1.0);
        assert_eq!(score_headline("Solana surges"), 0.5);
        assert_eq!(score_headline("Exchange hacked, bitcoin plunges"), -1.0);
        assert_eq!(score_headline("Regulator delays decision"), -0.5);
        assert_eq!(score_headline("Gains and losses even out"), 0.0);
        assert_eq!(score_headline("Bitcoin trades sideways"), 0.0);
        assert_eq!(score_headline("SEC will not approve the fund"), -0.5);
        assert_eq!(score_headline("No crash in sight"), 0.5);
    }

    #[test]
    fn answers_every_headline_and_symbol() {
        let batch = HeadlineBatch {
            headlines: vec![
                HeadlineToScore {
                    n: 1,
                    title: "Bitcoin surges".into(),
                    symbols: vec!["BTC".into()],
                },
                HeadlineToScore {
                    n: 2,
                    title: "Ether and bitcoin crash".into(),
                    symbols: vec!["BTC".into(), "ETH".into()],
                },
            ],
        };
        let v: serde_json::Value = serde_json::from_str(&answer(&batch)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"scores": [
                {"n": 1, "symbol": "BTC", "score": 0.5},
                {"n": 2, "symbol": "BTC", "score": -0.5},
                {"n": 2, "symbol": "ETH", "score": -0.5},
            ]})
        );
    }
}
