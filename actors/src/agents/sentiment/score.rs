//! Scoring headlines with a model: the batch prompt, the strict reading of its answer,
//! and the key under which an answer is cached.
//!
//! Owns: the prompt (numbered headlines, each with the symbols it mentions, and the exact
//! JSON asked for), the [`HeadlineBatch`] context sent beside it (what the offline rules
//! engine reads), and [`parse_scores`], which accepts only an answer that scores every
//! asked headline and symbol exactly once within `[-1, 1]` — anything else is a
//! [`ScoreError`], never a guess. Never: asks the model (the agent does, through the
//! router) or keeps anything.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::models::{HeadlineBatch, HeadlineToScore};

/// The system prompt of every scoring request.
pub const SYSTEM: &str = "You score crypto market news. For each numbered headline and each symbol listed with it, give the sentiment of the headline for that symbol's price: a number from -1 (very bearish) through 0 (neutral) to 1 (very bullish). Answer with JSON only, no prose, exactly this shape: {\"scores\":[{\"n\":1,\"symbol\":\"BTC\",\"score\":0.4}]} with one entry per headline and symbol listed, and nothing else.";

/// The prompt listing `batch`'s headlines.
pub fn prompt(batch: &HeadlineBatch) -> String {
    let mut out = String::from("Headlines:\n");
    for h in &batch.headlines {
        out.push_str(&format!(
            "{}. [{}] {}\n",
            h.n,
            h.symbols.join(", "),
            h.title
        ));
    }
    out
}

/// Why an answer could not be read; the agent journals it and counts it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("the answer is not a JSON object with a `scores` array: {excerpt}")]
    NotJson { excerpt: String },
    #[error("scores[{index}]: {problem}")]
    BadEntry { index: usize, problem: String },
    #[error("headline {n} symbol {symbol} was scored twice")]
    Duplicate { n: usize, symbol: String },
    #[error("no score for headline {n} symbol {symbol}")]
    Missing { n: usize, symbol: String },
}

impl ScoreError {
    /// The `kind` label of `orrery_sentiment_score_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScoreError::NotJson { .. } => "not_json",
            ScoreError::BadEntry { .. } => "bad_entry",
            ScoreError::Duplicate { .. } => "duplicate",
            ScoreError::Missing { .. } => "missing",
        }
    }
}

/// Every score of `text`, keyed by (headline number, symbol), or why the answer cannot
/// be used. A Markdown code fence around the JSON is the only wrapping accepted.
pub fn parse_scores(
    batch: &HeadlineBatch,
    text: &str,
) -> Result<BTreeMap<(usize, String), f64>, ScoreError> {
    let body = crate::models::roles::unfence(text);
    let excerpt = || body.chars().take(200).collect::<String>();
    let doc: Value =
        serde_json::from_str(body).map_err(|_| ScoreError::NotJson { excerpt: excerpt() })?;
    let entries = doc
        .get("scores")
        .and_then(Value::as_array)
        .ok_or_else(|| ScoreError::NotJson { excerpt: excerpt() })?;
    let asked: BTreeMap<usize, &HeadlineToScore> =
        batch.headlines.iter().map(|h| (h.n, h)).collect();
    let mut out = BTreeMap::new();
    for (index, e) in entries.iter().enumerate() {
        let bad = |problem: String| ScoreError::BadEntry { index, problem };
        let n = e
            .get("n")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("`n` is not a headline number".into()))? as usize;
        let h = asked
            .get(&n)
            .ok_or_else(|| bad(format!("headline {n} was not asked")))?;
        let symbol = e
            .get("symbol")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_uppercase())
            .ok_or_else(|| bad("`symbol` is not a string".into()))?;
        if !h.symbols.contains(&symbol) {
            return Err(bad(format!(
                "symbol {symbol} was not asked for headline {n} (asked: {})",
                h.symbols.join(", ")
            )));
        }
        let score = e
            .get("score")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && (-1.0..=1.0).contains(s))
            .ok_or_else(|| {
                bad(format!(
                    "`score` of headline {n} {symbol} is not a number from -1 to 1"
                ))
            })?;
        if out.insert((n, symbol.clone()), score).is_some() {
            return Err(ScoreError::Duplicate { n, symbol });
        }
    }
    for h in &batch.headlines {
        for s in &h.symbols {
            if !out.contains_key(&(h.n, s.clone())) {
                return Err(ScoreError::Missing {
                    n: h.n,
                    symbol: s.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The cache key of a headline's scores: hex SHA-256 of the model, the title and the
/// symbols asked, so the same headline asked of the same model is scored once.
pub fn cache_key(model: &str, title: &str, symbols: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0u8]);
    h.update(title.as_bytes());
    for s in symbols {
        h.update([0u8]);
        h.update(s.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> HeadlineBatch {
        HeadlineBatch {
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
        }
    }

    #[test]
    fn prompt_lists_headlines_with_symbols() {
        assert_eq!(
            prompt(&batch()),
            "Headlines:\n1. [BTC] Bitcoin surges\n2. [BTC, ETH] Ether and bitcoin crash\n"
        );
    }

    #[test]
    fn a_complete_answer_parses_fenced_or_not() {
        let text = r#"{"scores":[{"n":1,"symbol":"BTC","score":0.6},{"n":2,"symbol":"btc","score":-0.5},{"n":2,"symbol":"ETH","score":-0.7}]}"#;
        let got = parse_scores(&batch(), text).unwrap();
        assert_eq!(got[&(1, "BTC".to_string())], 0.6);
        assert_eq!(got[&(2, "ETH".to_string())], -0.7);
        let fenced = format!("```json\n{text}\n```");
        assert_eq!(parse_scores(&batch(), &fenced).unwrap(), got);
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            ("BTC looks bullish, 0.6", "not_json"),
            (r#"{"score": 1}"#, "not_json"),
            (
                r#"{"scores":[{"n":1,"symbol":"BTC","score":1.5}]}"#,
                "bad_entry",
            ),
            (
                r#"{"scores":[{"n":3,"symbol":"BTC","score":0.1}]}"#,
                "bad_entry",
            ),
            (
                r#"{"scores":[{"n":1,"symbol":"SOL","score":0.1}]}"#,
                "bad_entry",
            ),
            (
                r#"{"scores":[{"n":1,"symbol":"BTC","score":"high"}]}"#,
                "bad_entry",
            ),
            (
                r#"{"scores":[{"n":1,"symbol":"BTC","score":0.1},{"n":1,"symbol":"BTC","score":0.2}]}"#,
                "duplicate",
            ),
            (
                r#"{"scores":[{"n":1,"symbol":"BTC","score":0.1},{"n":2,"symbol":"BTC","score":0.2}]}"#,
                "missing",
            ),
        ];
        for (text, kind) in cases {
            let e = parse_scores(&batch(), text).unwrap_err();
            assert_eq!(e.kind(), kind, "{text}: {e}");
        }
    }

    #[test]
    fn cache_key_depends_on_model_title_and_symbols() {
        let a = cache_key("default", "Bitcoin surges", &["BTC".into()]);
        assert_eq!(a.len(), 64);
        assert_eq!(a, cache_key("default", "Bitcoin surges", &["BTC".into()]));
        assert_ne!(a, cache_key("gpt", "Bitcoin surges", &["BTC".into()]));
        assert_ne!(a, cache_key("default", "Bitcoin surges", &["ETH".into()]));
    }
}
