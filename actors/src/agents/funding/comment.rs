//! The optional model comment on a funding signal: one paragraph on what the reading may
//! mean, asked with the facts only, journaled with its exact prompt and answer.
//!
//! Owns: the prompt, the request (its deadline is `model_timeout`) and how the answer is
//! cut to one paragraph. Never: decides the state or whether a signal is published — a
//! model that fails or times out costs the signal its comment only.

use std::time::Duration;

use crate::agents::journal::{Abstention, DecisionRecord, MemberAnswer};
use crate::clock::Millis;
use crate::models::{ModelClient, ModelRequest, Purpose};

/// System prompt of the comment request.
pub const SYSTEM: &str = "You are a derivatives analyst. Given one perpetual's funding reading, write one short paragraph (at most 3 sentences) on what it suggests about positioning and the risk of a squeeze. No advice to trade, no lists.";

/// Longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 500;

/// The facts the model is given.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub venue: &'a str,
    pub symbol: &'a str,
    pub rate: String,
    pub interval_hours: u32,
    pub annualized_pct: String,
    pub zscore: Option<f64>,
    pub history: usize,
    pub state: &'a str,
    pub meaning: &'a str,
}

pub fn prompt(f: &Facts<'_>) -> String {
    format!(
        "Venue: {}\nSymbol: {}\nFunding rate: {} per {}h settlement\nAnnualized: {}%\nZ-score vs the last {} settled rates: {}\nState: {} ({})\n\nComment in one paragraph.",
        f.venue,
        f.symbol,
        f.rate,
        f.interval_hours,
        f.annualized_pct,
        f.history,
        f.zscore.map_or("n/a (history too short or flat)".to_string(), |z| format!("{z:+.2}")),
        f.state,
        f.meaning,
    )
}

/// The first paragraph of `text`, trimmed, at most [`MAX_COMMENT_CHARS`]; `None` when
/// nothing is left.
pub fn first_paragraph(text: &str) -> Option<String> {
    let p = text
        .trim()
        .split("\n\n")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let p: String = p.chars().take(MAX_COMMENT_CHARS).collect();
    (!p.is_empty()).then_some(p)
}

/// Asks `model` and returns the comment or why there is none, with the journal record of
/// the request (exact prompt, answer or error).
pub async fn ask(
    models: &ModelClient,
    agent: &str,
    model: &str,
    timeout: Duration,
    now: Millis,
    facts: &Facts<'_>,
) -> (Result<String, String>, DecisionRecord) {
    let mut record = DecisionRecord::begin(now, agent, facts.venue, facts.symbol, model);
    let text = prompt(facts);
    record.set_prompt(SYSTEM, &text);
    let mut request = ModelRequest::new(model.to_string(), Purpose::Freeform, text);
    request.system = SYSTEM.to_string();
    request.timeout = timeout;
    request.max_tokens = 200;
    request.temperature = 0.2;
    let started = std::time::Instant::now();
    let answer = models.ask(request).await;
    let latency = started.elapsed().as_millis() as u64;
    record.latency_ms = Some(latency);
    let mut member = MemberAnswer::asked(model, Some(latency));
    let result = match answer {
        Ok(resp) => {
            member.answered(&resp);
            record.deployment = Some(resp.deployment.clone());
            record.raw_answer = Some(resp.text.clone());
            first_paragraph(&resp.text).ok_or_else(|| {
                let e = format!("model `{model}` answered nothing usable");
                member.abstained(Abstention::Unparseable, &e);
                e
            })
        }
        Err(e) => {
            member.abstained(Abstention::of_model_error(&e), &e);
            Err(format!("comment request to model `{model}` failed: {e}"))
        }
    };
    record.members.push(member);
    match &result {
        Ok(c) => {
            record.action = Some("COMMENT".into());
            record.reason = Some(c.clone());
            record.outcome = "commented".into();
        }
        Err(e) => {
            record.error = Some(e.clone());
            record.outcome = "no_comment".into();
        }
    }
    (result, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_is_the_first_paragraph_bounded() {
        assert_eq!(
            first_paragraph("  Longs are crowded.\n Squeeze risk is high.\n\nSecond part."),
            Some("Longs are crowded. Squeeze risk is high.".into())
        );
        assert_eq!(first_paragraph(" \n\n "), None);
        assert_eq!(
            first_paragraph(&"x".repeat(900)).unwrap().len(),
            MAX_COMMENT_CHARS
        );
    }
}
