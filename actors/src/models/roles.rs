//! What the stages of the five-role analysis pipeline (`agents::pipeline`) send a model
//! beside their prompt ([`PipelineContext`]), and the analyst's answer ([`AnalystCase`]),
//! which the strategy generator reads back.
//!
//! Owns: these shapes and their strict reading from a model's text
//! ([`parse_case`]), so a rules engine and an LLM are read by the same code. Never:
//! decides anything, or reads the free-text prompt.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::types::MarketContext;

/// Which side an analyst argues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseSide {
    Long,
    Short,
}

impl CaseSide {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseSide::Long => "long",
            CaseSide::Short => "short",
        }
    }
}

/// One analyst's case for its side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalystCase {
    /// The side argued; must be the side the analyst was asked for.
    pub side: CaseSide,
    /// How strong the case is, in `[0, 1]` (0: no case at all).
    pub conviction: f64,
    /// The case in one or two sentences.
    pub thesis: String,
    /// The facts behind it, each a short line naming a number from the data.
    pub evidence: Vec<String>,
    /// The price at which the case is wrong (below the price for a long case, above for
    /// a short one), if the analyst names one.
    #[serde(default)]
    pub invalidation: Option<Decimal>,
    /// The price the case aims at, if the analyst names one.
    #[serde(default)]
    pub target: Option<Decimal>,
}

/// What a pipeline stage sends beside its prompt: the collector's market data (candles,
/// position, account value, recent signals including news and sentiment), the analysts'
/// cases once they exist (for the strategy generator), and the plan's size bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineContext {
    pub market: MarketContext,
    #[serde(default)]
    pub long_case: Option<AnalystCase>,
    #[serde(default)]
    pub short_case: Option<AnalystCase>,
    /// Largest position the plan may size, in percent of account value.
    pub max_position_pct: Decimal,
}

/// Why an analyst's answer was not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaseError {
    #[error("the answer holds no JSON object: {snippet}")]
    NoJson { snippet: String },
    #[error("the answer's JSON does not have the case's shape: {reason}")]
    Shape { reason: String },
    #[error("the case argues `{got}`, but the analyst was asked for the {asked} side")]
    WrongSide {
        asked: &'static str,
        got: &'static str,
    },
    #[error("conviction {0} is not a number from 0 to 1")]
    Conviction(f64),
    #[error("a case needs at least one line of evidence")]
    NoEvidence,
    #[error("{what} {price} is not a positive price")]
    BadPrice { what: &'static str, price: Decimal },
}

/// The one JSON object a model's answer consists of: the whole text, or the body of one
/// fenced code block (models often fence JSON). Anything else around it is refused, so a
/// chatty answer is an error, never a guess.
pub fn json_object(text: &str) -> Option<&str> {
    let t = unfence(text);
    (t.starts_with('{') && t.ends_with('}')).then_some(t)
}

/// A model's answer without the one fenced code block it may be wrapped in: the block's
/// body (after its info string, e.g. `json`) when the whole trimmed answer is one block,
/// else the trimmed answer as it is. Every reader of a model's JSON answer unfences here.
pub fn unfence(text: &str) -> &str {
    let t = text.trim();
    let Some(inner) = t.strip_prefix("```").and_then(|r| r.strip_suffix("```")) else {
        return t;
    };
    let body = match inner.split_once('\n') {
        Some((info, body)) if !info.contains('{') => body,
        _ => inner.strip_prefix("json").unwrap_or(inner),
    };
    body.trim()
}

/// The first 120 characters of an answer, for an error message.
pub fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        s.push('…');
    }
    s
}

/// Reads an analyst's answer strictly: exactly one JSON object of [`AnalystCase`]'s shape
/// (prices as numbers or strings), about the side asked, conviction in `[0, 1]`, at least
/// one line of evidence, positive prices.
pub fn parse_case(text: &str, asked: CaseSide) -> Result<AnalystCase, CaseError> {
    let body = json_object(text).ok_or_else(|| CaseError::NoJson {
        snippet: snippet(text),
    })?;
    let case: AnalystCase = serde_json::from_str(body).map_err(|e| CaseError::Shape {
        reason: e.to_string(),
    })?;
    if case.side != asked {
        return Err(CaseError::WrongSide {
            asked: asked.as_str(),
            got: case.side.as_str(),
        });
    }
    if !(0.0..=1.0).contains(&case.conviction) {
        return Err(CaseError::Conviction(case.conviction));
    }
    if case.evidence.iter().all(|e| e.trim().is_empty()) {
        return Err(CaseError::NoEvidence);
    }
    for (what, price) in [("invalidation", case.invalidation), ("target", case.target)] {
        if let Some(price) = price {
            if price <= Decimal::ZERO {
                return Err(CaseError::BadPrice { what, price });
            }
        }
    }
    Ok(case)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn a_case_is_read_strictly() {
        let ok = r#"{"side":"long","conviction":0.7,"thesis":"uptrend","evidence":["SMA9 > SMA21"],"invalidation":59000,"target":"63000.5"}"#;
        let case = parse_case(ok, CaseSide::Long).unwrap();
        assert_eq!(case.invalidation, Some(dec!(59000)));
        assert_eq!(case.target, Some(dec!(63000.5)));
        let fenced = format!("```json\n{ok}\n```");
        assert_eq!(parse_case(&fenced, CaseSide::Long).unwrap(), case);
        assert!(matches!(
            parse_case(&format!("Sure! {ok}"), CaseSide::Long),
            Err(CaseError::NoJson { .. })
        ));
        assert!(matches!(
            parse_case(ok, CaseSide::Short),
            Err(CaseError::WrongSide { .. })
        ));
        let loud = ok.replace("0.7", "7");
        assert_eq!(
            parse_case(&loud, CaseSide::Long),
            Err(CaseError::Conviction(7.0))
        );
        let bare = ok.replace(r#"["SMA9 > SMA21"]"#, "[]");
        assert_eq!(
            parse_case(&bare, CaseSide::Long),
            Err(CaseError::NoEvidence)
        );
        let negative = ok.replace("59000", "-1");
        assert!(matches!(
            parse_case(&negative, CaseSide::Long),
            Err(CaseError::BadPrice {
                what: "invalidation",
                ..
            })
        ));
        assert!(matches!(
            parse_case(r#"{"side":"long"}"#, CaseSide::Long),
            Err(CaseError::Shape { .. })
        ));
    }
}
