//! Prompts the agents send. The structured context travels beside the text, so a rules
//! engine reads numbers and an LLM reads the same numbers as a table.

use std::fmt::Write;

use crate::models::{MarketContext, RiskContext};
use crate::signals::RecentSignal;

/// System prompt for trading decisions: fixes the answer format every deployment is
/// asked for, which the decision parser reads first.
pub const TRADE_SYSTEM: &str = "You are a disciplined crypto trading analyst. \
Decide whether to BUY, SELL or do NOTHING for the symbol given, using only the data given. \
Answer with one JSON object and nothing else: \
{\"action\": \"BUY\" | \"SELL\" | \"NOTHING\", \"confidence\": number between 0 and 1, \"reason\": short string}.";

/// System prompt for risk confirmations.
pub const RISK_SYSTEM: &str = "You are the risk officer of a crypto trading account. \
A risk limit was breached. Decide whether to close every position now (CLOSE_ALL) or hold (HOLD). \
Answer with one JSON object and nothing else: \
{\"action\": \"CLOSE_ALL\" | \"HOLD\", \"reason\": short string}.";

/// Renders the market context as text for an LLM.
pub fn trade_prompt(ctx: &MarketContext) -> String {
    let mut out = String::with_capacity(256 + ctx.candles.len() * 64);
    let _ = writeln!(
        out,
        "Symbol: {} on {} | price {} | account value {} USD",
        ctx.symbol, ctx.venue, ctx.price, ctx.account_value
    );
    match &ctx.position {
        Some(p) if !p.size.is_zero() => {
            let _ = writeln!(
                out,
                "Position: {} {} @ {} (unrealised PnL {} USD, {}x)",
                if p.size.is_sign_positive() {
                    "long"
                } else {
                    "short"
                },
                p.size.abs(),
                p.entry_price,
                p.unrealized_pnl.round_dp(2),
                p.leverage
            );
        }
        _ => out.push_str("Position: none\n"),
    }
    let _ = writeln!(
        out,
        "Last {} candles ({}), oldest first:",
        ctx.candles.len(),
        ctx.timeframe
    );
    out.push_str("open_time_ms,open,high,low,close,volume\n");
    for c in &ctx.candles {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            c.open_time_ms, c.open, c.high, c.low, c.close, c.volume
        );
    }
    signals_section(&mut out, &ctx.signals);
    out.push_str("Should we BUY, SELL or do NOTHING now?");
    out
}

/// "Recent signals": other agents' signals about the symbol, newest first, one CSV row
/// each; nothing at all when there are none, so an agent that reads no signals sends
/// the same prompt bytes as before signals existed.
fn signals_section(out: &mut String, signals: &[RecentSignal]) {
    if signals.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Recent signals from other agents ({}), newest first:",
        signals.len()
    );
    out.push_str("age_s,kind,source,direction,confidence,value,evidence\n");
    for s in signals {
        // The evidence is free text: quoted, inner quotes doubled, on one line.
        let evidence = s.evidence.replace('"', "\"\"").replace(['\n', '\r'], " ");
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},\"{}\"",
            s.age_secs, s.kind, s.source, s.direction, s.confidence, s.value, evidence
        );
    }
}

/// Renders a risk breach as text for an LLM.
pub fn risk_prompt(ctx: &RiskContext) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Breach: {}", ctx.breach);
    let _ = writeln!(
        out,
        "Account value {} USD, baseline {} USD, PnL {} USD ({}%)",
        ctx.account_value,
        ctx.baseline_value,
        ctx.pnl_usd.round_dp(2),
        ctx.pnl_pct.round_dp(2)
    );
    for p in &ctx.positions {
        let _ = writeln!(
            out,
            "Position {}: size {} entry {} mark {} unrealised {} USD",
            p.symbol,
            p.size,
            p.entry_price,
            p.mark_price,
            p.unrealized_pnl.round_dp(2)
        );
    }
    out.push_str("CLOSE_ALL or HOLD?");
    out
}
