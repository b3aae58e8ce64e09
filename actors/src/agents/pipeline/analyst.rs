//! The long and the short analyst: each is asked, on its own model, to argue one side of
//! the trade with evidence from the collector's data, and answers an
//! [`AnalystCase`](crate::models::roles::AnalystCase), read strictly
//! ([`crate::models::roles::parse_case`]).
//!
//! Owns: the analysts' prompts. Never: sees the other analyst's case (they run side by
//! side), or decides the trade (the strategy generator does).

use crate::agents::prompt::trade_prompt;
use crate::models::roles::CaseSide;
use crate::models::{MarketContext, Purpose};

/// System prompt of an analyst: fixes the answer format.
pub fn system(side: CaseSide) -> String {
    let (side, stop_side, target_side) = match side {
        CaseSide::Long => ("long", "below", "above"),
        CaseSide::Short => ("short", "above", "below"),
    };
    format!(
        "You are the {side} analyst of a crypto trading desk. Make the strongest honest case for going {side} \
on the symbol given, using only the data given (candles, position, recent news, sentiment and other signals). \
If there is no case, say so with conviction 0. Answer with one JSON object and nothing else: \
{{\"side\": \"{side}\", \"conviction\": number from 0 to 1, \"thesis\": short string, \
\"evidence\": [short strings, each citing a number from the data], \
\"invalidation\": the price {stop_side} the current price at which the case is wrong, \
\"target\": the price {target_side} the current price the case aims at}}."
    )
}

/// The model purpose of an analyst.
pub fn purpose(side: CaseSide) -> Purpose {
    match side {
        CaseSide::Long => Purpose::LongCase,
        CaseSide::Short => Purpose::ShortCase,
    }
}

/// The market data as text, then the analyst's question.
pub fn prompt(side: CaseSide, market: &MarketContext) -> String {
    let data = market_text(market);
    format!(
        "{data}What is the {} case for {} now?",
        side.as_str(),
        market.symbol
    )
}

/// The trading agent's rendering of the market data (symbol, price, position, candles,
/// recent signals), without its BUY/SELL question: every stage reads the same table.
pub fn market_text(market: &MarketContext) -> String {
    let text = trade_prompt(market);
    match text.rfind("Should we BUY, SELL or do NOTHING now?") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
