//! The strategy generator: reads the collector's data and both analysts' cases, and
//! answers a trade plan, read and checked by [`super::plan::parse_plan`].
//!
//! Owns: its prompt. Never: sends anything (the executor does), or softens a plan that
//! fails a check (the run ends instead).

use std::fmt::Write;

use rust_decimal::Decimal;

use super::analyst::market_text;
use crate::models::roles::AnalystCase;
use crate::models::MarketContext;

/// System prompt of the strategy generator: fixes the plan format.
pub fn system(max_position_pct: Decimal) -> String {
    format!(
        "You are the strategy generator of a crypto trading desk. A long analyst and a short analyst have each argued their side. \
Weigh both cases against the data and decide: go long, go short, or stand aside. \
Answer with one JSON object and nothing else: \
{{\"direction\": \"long\" | \"short\" | \"stand_aside\", \"entry\": \"market\" or a limit price, \
\"stop_loss\": price (below the entry for a long, above for a short), \
\"take_profit\": price (above the entry for a long, below for a short), \
\"size_pct\": percent of account value, more than 0 and at most {max}, \
\"horizon\": how long the trade should take, e.g. \"4h\", \
\"confidence\": number from 0 to 1, \"reason\": short string}}. \
A stand_aside needs only direction, confidence and reason.",
        max = max_position_pct.normalize()
    )
}

fn case_text(out: &mut String, title: &str, case: &AnalystCase) {
    let _ = writeln!(
        out,
        "{title}: conviction {} | thesis: {}",
        case.conviction, case.thesis
    );
    for e in &case.evidence {
        let _ = writeln!(out, "  - {e}");
    }
    let price =
        |p: Option<Decimal>| p.map_or_else(|| "-".to_string(), |p| p.normalize().to_string());
    let _ = writeln!(
        out,
        "  invalidation {} | target {}",
        price(case.invalidation),
        price(case.target)
    );
}

/// The market data, both cases, then the question.
pub fn prompt(market: &MarketContext, long: &AnalystCase, short: &AnalystCase) -> String {
    let mut out = market_text(market);
    case_text(&mut out, "Long case", long);
    case_text(&mut out, "Short case", short);
    let _ = write!(out, "What is the plan for {} now?", market.symbol);
    out
}
