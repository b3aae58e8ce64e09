//! Reading a model's answer: trade decisions (BUY / SELL / NOTHING with a confidence) and
//! risk verdicts (CLOSE_ALL / HOLD).
//!
//! Owns: turning answer text into [`TradeDecision`] / [`RiskVerdict`], and rendering them in
//! the JSON format providers are asked to answer in ([`render_trade_decision`],
//! [`render_risk_verdict`]), so the offline rules engine and the LLMs speak the same format.
//! Never: calls a model, decides whether to trade on the result, or retries.
//!
//! # How an answer is read
//!
//! 1. `<think>…</think>` blocks (reasoning models) are dropped; if only a closing
//!    `</think>` is present, only the text after it is read.
//! 2. Structured first: the first JSON object (bare, fenced in ```` ```json ````, or
//!    embedded in prose) that carries an action key (`action`, `decision`, `signal`,
//!    `recommendation`, `verdict`, `trade`) is the answer. Confidence comes from
//!    `confidence` (or `confidence_score`, `certainty`, `probability`) and may be a fraction
//!    in `[0, 1]`, a number in `(1, 100]` (a percentage), or a string such as `"85%"`.
//!    The reason comes from `reason` (or `reasoning`, `rationale`, `explanation`).
//! 3. Text fallback, in order of trust: a labelled verdict (`Decision: SELL`,
//!    `I recommend doing NOTHING`, `we should buy`); the first line being the bare verdict;
//!    otherwise every upper-case verdict word (`BUY`, `SELL`, `NOTHING`, `HOLD`) that is not
//!    negated (`don't BUY`). Two different verdicts at the same level are
//!    [`DecisionError::Ambiguous`]: an agent must not trade on a coin flip.
//! 4. Text confidence is only ever a number attached to a confidence label
//!    (`confidence: 0.6`, `confidence of 72%`, `certainty 8/10`, `confidence: 8 out of 10`;
//!    a bare `confidence: 7` is read on the 0..100 scale, as 7%), a percentage followed by a
//!    confidence word (`72% confident`, `80% sure`), or a percentage right after the verdict
//!    (`BUY 72%`). Digits are never glued together across a line: the seed project read
//!    `BUY 7 0.5` as 70.5, which is exactly what this avoids.
//!
//! A missing confidence becomes [`DEFAULT_CONFIDENCE`] and the result says so
//! ([`ParsedDecision::confidence_defaulted`]); an out-of-range one is an error, because
//! guessing what a model meant by `confidence: 250` is how money gets lost.
//!
//! # Which symbol the answer is about
//!
//! [`parse_trade_decision_for`] also checks that the answer is about the symbol asked: a
//! JSON `symbol` (or `ticker`, `asset`, `coin`, `pair`) naming another market, or a text
//! verdict followed by another ticker (`I think you should buy BTC now.` when asked about
//! SOL), is [`DecisionError::WrongSymbol`] — no decision, because trading SOL on advice
//! about BTC is a coin flip with real money. Names are compared on their base asset, so
//! `SOLUSDT`, `SOL-PERP` and `sol/usd` are all SOL. A text ticker is an upper-case word
//! of 2 to 10 letters/digits right after `buy`/`sell` (articles and `some`/`more`
//! skipped), or a well-known ticker in any case.

use serde_json::{Map, Value};

use super::types::{RiskVerdict, TradeAction, TradeDecision};

/// Confidence given to a decision whose answer carried none. Deliberately middling: agents
/// typically act only above 0.6–0.7, so an unqualified BUY is reported but not acted on
/// unless the operator lowers the threshold.
pub const DEFAULT_CONFIDENCE: f64 = 0.5;

/// Longest excerpt of an answer kept in an error, in characters.
const EXCERPT_CHARS: usize = 160;
/// Longest reason kept from a text (non-JSON) answer, in characters.
const TEXT_REASON_CHARS: usize = 500;
/// How many `{` positions are tried as JSON starts; bounds the work on hostile input.
const MAX_JSON_STARTS: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecisionError {
    #[error("the model's answer is empty; check the deployment's max_tokens and the prompt")]
    Empty,
    #[error("no {expected} verdict found in the model's answer `{excerpt}`; the prompt should ask for JSON like {{\"action\":\"...\"}}")]
    NoVerdict {
        expected: &'static str,
        excerpt: String,
    },
    #[error("the model's answer names competing verdicts ({found}) in `{excerpt}`; treat it as no decision")]
    Ambiguous { found: String, excerpt: String },
    #[error(
        "unknown action `{value}` in the model's answer `{excerpt}`; expected one of {expected}"
    )]
    UnknownAction {
        value: String,
        expected: &'static str,
        excerpt: String,
    },
    #[error("confidence {value} is out of range in the model's answer `{excerpt}`; expected a fraction 0..1, a number 0..100 or a percentage")]
    ConfidenceOutOfRange { value: String, excerpt: String },
    #[error("confidence `{value}` is not a number in the model's answer `{excerpt}`; expected a fraction 0..1, a number 0..100 or a percentage")]
    BadConfidence { value: String, excerpt: String },
    #[error("the model was asked about {asked} but its answer names {named} (`{excerpt}`); treat it as no decision")]
    WrongSymbol {
        asked: String,
        named: String,
        excerpt: String,
    },
}

impl DecisionError {
    /// Short stable label, for metrics and the decision journal.
    pub fn label(&self) -> &'static str {
        match self {
            DecisionError::Empty => "empty",
            DecisionError::NoVerdict { .. } => "no_verdict",
            DecisionError::Ambiguous { .. } => "ambiguous",
            DecisionError::UnknownAction { .. } => "unknown_action",
            DecisionError::ConfidenceOutOfRange { .. } => "confidence_out_of_range",
            DecisionError::BadConfidence { .. } => "bad_confidence",
            DecisionError::WrongSymbol { .. } => "wrong_symbol",
        }
    }
}

/// Where in the answer the verdict was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    Json,
    Text,
}

/// A trade decision and how much of it the model actually said.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDecision {
    pub decision: TradeDecision,
    /// The answer carried no confidence; [`DEFAULT_CONFIDENCE`] was used.
    pub confidence_defaulted: bool,
    pub format: AnswerFormat,
}

/// A risk verdict with the model's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedVerdict {
    pub verdict: RiskVerdict,
    pub reason: String,
    pub format: AnswerFormat,
}

/// Renders a decision in the exact JSON format providers are asked to answer in:
/// `{"action":"BUY","confidence":0.72,"reason":"..."}`. The confidence is rounded to four
/// decimals ([`round_confidence`]).
pub fn render_trade_decision(decision: &TradeDecision) -> String {
    let action = match decision.action {
        TradeAction::Buy => "BUY",
        TradeAction::Sell => "SELL",
        TradeAction::Nothing => "NOTHING",
    };
    serde_json::json!({
        "action": action,
        "confidence": round_confidence(decision.confidence),
        "reason": decision.reason,
    })
    .to_string()
}

/// Renders a risk verdict as `{"action":"CLOSE_ALL","reason":"..."}`.
pub fn render_risk_verdict(verdict: RiskVerdict, reason: &str) -> String {
    let action = match verdict {
        RiskVerdict::CloseAll => "CLOSE_ALL",
        RiskVerdict::Hold => "HOLD",
    };
    serde_json::json!({ "action": action, "reason": reason }).to_string()
}

/// Reads a trade decision from a model's answer. See the module docs for the rules.
pub fn parse_trade_decision(text: &str) -> Result<ParsedDecision, DecisionError> {
    if let Some(obj) = whole_json_answer(text) {
        return decision_from_json(&obj, text);
    }
    let body = strip_thinking(text);
    if body.trim().is_empty() {
        return Err(DecisionError::Empty);
    }
    if let Some(obj) = find_json_answer(body) {
        return decision_from_json(&obj, body);
    }
    decision_from_text(body)
}

/// Reads a trade decision about `symbol`: [`parse_trade_decision`], and an answer that
/// names another symbol is [`DecisionError::WrongSymbol`] (see the module docs).
pub fn parse_trade_decision_for(text: &str, symbol: &str) -> Result<ParsedDecision, DecisionError> {
    let parsed = parse_trade_decision(text)?;
    let asked = base_symbol(symbol);
    let named = match whole_json_answer(text) {
        Some(obj) => json_symbol(&obj),
        None => {
            let body = strip_thinking(text);
            match find_json_answer(body) {
                Some(obj) => json_symbol(&obj),
                None => text_symbols(body).into_iter().find(|n| *n != asked),
            }
        }
    };
    match named {
        Some(named) if base_symbol(&named) != asked => Err(DecisionError::WrongSymbol {
            asked: symbol.to_string(),
            named,
            excerpt: excerpt(strip_thinking(text)),
        }),
        _ => Ok(parsed),
    }
}

const SYMBOL_KEYS: &[&str] = &["symbol", "ticker", "asset", "coin", "pair", "market"];
/// Quote currencies and contract suffixes stripped to compare base assets.
const QUOTE_SUFFIXES: &[&str] = &["USDT", "USDC", "BUSD", "FDUSD", "USD", "PERP"];
/// Tickers recognised in any case in prose (`buy btc`); upper-case words need no list.
const COMMON_TICKERS: &[&str] = &[
    "btc", "eth", "sol", "bnb", "xrp", "doge", "ada", "avax", "link", "dot", "ltc", "bch", "trx",
    "ton", "sui", "apt", "arb", "op", "near", "pepe", "shib", "hype", "bitcoin", "ethereum",
    "solana",
];
/// Upper-case words after a verdict that are not tickers (`BUY NOW`, `SELL ALL`).
const NOT_TICKERS: &[&str] = &[
    "NOW",
    "ALL",
    "IT",
    "THE",
    "AND",
    "OR",
    "AT",
    "IF",
    "ON",
    "IN",
    "TO",
    "NO",
    "NOT",
    "ASAP",
    "TODAY",
    "HERE",
    "MORE",
    "SOME",
    "BUY",
    "SELL",
    "HOLD",
    "NOTHING",
    "LONG",
    "SHORT",
    "WITH",
    "SIGNAL",
    "CONFIDENCE",
    "USD",
    "USDT",
    "USDC",
    "JSON",
    "OK",
    "IS",
    "THIS",
    "THAT",
    "POSITION",
    "ORDER",
    "MARKET",
    "LIMIT",
    "SPOT",
    "PERP",
    "RSI",
    "MACD",
    "SMA",
    "EMA",
    "ATR",
    "VWAP",
    "ON",
    "SIGNALS",
];
/// Words skipped between a verdict and its ticker (`buy some BTC`, `sell the ETH`).
const TICKER_FILLER: &[&str] = &["some", "more", "a", "an", "the", "into", "of", "back"];

/// The base asset of a market name: `SOLUSDT`, `SOL-PERP`, `sol/usd` and `SOL` are `SOL`;
/// `bitcoin` is `BTC`.
pub fn base_symbol(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    let head = upper
        .split(['-', '/', '_', ':', ' '])
        .find(|p| !p.is_empty())
        .unwrap_or_default()
        .to_string();
    let base = QUOTE_SUFFIXES
        .iter()
        .find_map(|q| head.strip_suffix(q).filter(|b| b.len() >= 2))
        .map(str::to_string)
        .unwrap_or(head);
    match base.as_str() {
        "BITCOIN" => "BTC".into(),
        "ETHEREUM" => "ETH".into(),
        "SOLANA" => "SOL".into(),
        _ => base,
    }
}

fn json_symbol(obj: &Map<String, Value>) -> Option<String> {
    SYMBOL_KEYS.iter().find_map(|k| match get_ci(obj, k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    })
}

/// Tickers that follow a BUY/SELL verdict word in prose, as base symbols, in order.
fn text_symbols(body: &str) -> Vec<String> {
    let tokens = tokenize(body);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !matches!(t.lower.as_str(), "buy" | "sell" | "long" | "short") || negated(&tokens, i) {
            continue;
        }
        let next = tokens[i + 1..]
            .iter()
            .take(3)
            .find(|n| !TICKER_FILLER.contains(&n.lower.as_str()));
        let Some(n) = next else { continue };
        let word = n.text;
        let tickerish = word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_".contains(c))
            && word.chars().any(|c| c.is_ascii_alphabetic());
        let upper_ticker = tickerish
            && is_upper_word(n)
            && (2..=14).contains(&word.len())
            && !NOT_TICKERS.contains(&word);
        let known = COMMON_TICKERS.contains(&base_symbol(&n.lower).to_ascii_lowercase().as_str())
            || COMMON_TICKERS.contains(&n.lower.as_str());
        if upper_ticker || (tickerish && known) {
            out.push(base_symbol(word));
        }
    }
    out
}

/// Reads a risk verdict (CLOSE_ALL / HOLD) from a model's answer.
pub fn parse_risk_verdict(text: &str) -> Result<ParsedVerdict, DecisionError> {
    let whole = whole_json_answer(text);
    let body = if whole.is_some() {
        text
    } else {
        strip_thinking(text)
    };
    if body.trim().is_empty() {
        return Err(DecisionError::Empty);
    }
    if let Some(obj) = whole.or_else(|| find_json_answer(body)) {
        let raw = action_value(&obj).unwrap_or_default();
        let verdict = classify_risk_phrase(&raw).ok_or_else(|| DecisionError::UnknownAction {
            value: truncate(&raw, 40),
            expected: RISK_EXPECTED,
            excerpt: excerpt(body),
        })?;
        return Ok(ParsedVerdict {
            verdict,
            reason: reason_value(&obj).unwrap_or_default(),
            format: AnswerFormat::Json,
        });
    }
    let tokens = tokenize(body);
    let verdict = find_verdict(body, &tokens, classify_risk_tokens, RISK_EXPECTED)?.0;
    Ok(ParsedVerdict {
        verdict,
        reason: truncate(body.trim(), TEXT_REASON_CHARS),
        format: AnswerFormat::Text,
    })
}

const TRADE_EXPECTED: &str = "BUY, SELL, NOTHING";
const RISK_EXPECTED: &str = "CLOSE_ALL, HOLD";

const ACTION_KEYS: &[&str] = &[
    "action",
    "decision",
    "signal",
    "recommendation",
    "verdict",
    "trade",
];
const CONFIDENCE_KEYS: &[&str] = &["confidence", "confidence_score", "certainty", "probability"];
const REASON_KEYS: &[&str] = &[
    "reason",
    "reasoning",
    "rationale",
    "explanation",
    "justification",
];

// ---------------------------------------------------------------------------------------
// Pre-processing and JSON

/// Drops `<think>…</think>` blocks. An unclosed `<think>` drops everything after it (the
/// model was cut off mid-thought); a lone `</think>` keeps only what follows it (some
/// servers strip the opening tag).
fn strip_thinking(text: &str) -> &str {
    // Work on the tail after the last closing tag: whatever a model "thought" before its
    // last `</think>` is not its answer.
    let lower = text.to_ascii_lowercase();
    let mut body_start = 0;
    if let Some(pos) = lower.rfind("</think>") {
        body_start = pos + "</think>".len();
    }
    let tail = &text[body_start..];
    let tail_lower = &lower[body_start..];
    match tail_lower.find("<think>") {
        Some(open) => &tail[..open],
        None => tail,
    }
}

/// The answer when the whole text is one JSON object. Checked before `<think>` stripping so
/// that a reason which happens to mention `<think>` survives.
fn whole_json_answer(text: &str) -> Option<Map<String, Value>> {
    let t = text.trim();
    if !t.starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(obj)) => answer_object(obj),
        _ => None,
    }
}

/// The first JSON object in the text that carries an action key, looking one level into
/// wrapper objects such as `{"decision": {"action": "BUY", ...}}`.
fn find_json_answer(text: &str) -> Option<Map<String, Value>> {
    let mut from = 0;
    let mut tries = 0;
    while let Some(rel) = text[from..].find('{') {
        let start = from + rel;
        tries += 1;
        if tries > MAX_JSON_STARTS {
            return None;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(obj))) => {
                if let Some(found) = answer_object(obj) {
                    return Some(found);
                }
                // A whole object without an answer: skip past it, not into it.
                from = start + stream.byte_offset().max(1);
            }
            _ => from = start + 1,
        }
    }
    None
}

fn answer_object(obj: Map<String, Value>) -> Option<Map<String, Value>> {
    if ACTION_KEYS
        .iter()
        .any(|k| matches!(get_ci(&obj, k), Some(Value::String(_))))
    {
        return Some(obj);
    }
    obj.into_iter().find_map(|(_, v)| match v {
        Value::Object(inner)
            if ACTION_KEYS
                .iter()
                .any(|k| matches!(get_ci(&inner, k), Some(Value::String(_)))) =>
        {
            Some(inner)
        }
        _ => None,
    })
}

/// Key lookup ignoring ASCII case (`"Action"`, `"CONFIDENCE"`).
fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn action_value(obj: &Map<String, Value>) -> Option<String> {
    ACTION_KEYS.iter().find_map(|k| match get_ci(obj, k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    })
}

fn reason_value(obj: &Map<String, Value>) -> Option<String> {
    REASON_KEYS.iter().find_map(|k| match get_ci(obj, k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    })
}

fn decision_from_json(
    obj: &Map<String, Value>,
    body: &str,
) -> Result<ParsedDecision, DecisionError> {
    let raw = action_value(obj).unwrap_or_default();
    let action = classify_trade_phrase(&raw).ok_or_else(|| DecisionError::UnknownAction {
        value: truncate(&raw, 40),
        expected: TRADE_EXPECTED,
        excerpt: excerpt(body),
    })?;
    let confidence = CONFIDENCE_KEYS
        .iter()
        .find_map(|k| get_ci(obj, k).filter(|v| !v.is_null()));
    let (confidence, defaulted) = match confidence {
        None => (DEFAULT_CONFIDENCE, true),
        Some(Value::Number(n)) => {
            let v = n.as_f64().ok_or_else(|| DecisionError::BadConfidence {
                value: n.to_string(),
                excerpt: excerpt(body),
            })?;
            (normalise_confidence(v, false, body)?, false)
        }
        Some(Value::String(s)) => (confidence_from_str(s, body)?, false),
        Some(other) => {
            return Err(DecisionError::BadConfidence {
                value: truncate(&other.to_string(), 40),
                excerpt: excerpt(body),
            })
        }
    };
    Ok(ParsedDecision {
        decision: TradeDecision {
            action,
            confidence,
            reason: reason_value(obj).unwrap_or_default(),
        },
        confidence_defaulted: defaulted,
        format: AnswerFormat::Json,
    })
}

/// `"85%"`, `"0.85"`, `"85"`, `"8/10"`.
fn confidence_from_str(s: &str, body: &str) -> Result<f64, DecisionError> {
    let t = s.trim();
    let bad = || DecisionError::BadConfidence {
        value: truncate(t, 40),
        excerpt: excerpt(body),
    };
    if let Some((num, den)) = t.split_once('/') {
        let num: f64 = num.trim().parse().map_err(|_| bad())?;
        let den: f64 = den.trim().parse().map_err(|_| bad())?;
        return fraction(num, den, body).map(round_confidence);
    }
    let (num, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    normalise_confidence(v, percent, body)
}

fn fraction(num: f64, den: f64, body: &str) -> Result<f64, DecisionError> {
    if den.is_nan() || den <= 0.0 || !num.is_finite() || !den.is_finite() || num < 0.0 || num > den
    {
        return Err(DecisionError::ConfidenceOutOfRange {
            value: format!("{num}/{den}"),
            excerpt: excerpt(body),
        });
    }
    Ok(num / den)
}

/// Brings a confidence into `[0, 1]`: a fraction stays, `(1, 100]` and explicit percentages
/// are divided by 100. Anything else is out of range.
fn normalise_confidence(v: f64, percent: bool, body: &str) -> Result<f64, DecisionError> {
    let out = || DecisionError::ConfidenceOutOfRange {
        value: format!("{v}{}", if percent { "%" } else { "" }),
        excerpt: excerpt(body),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(out());
    }
    let fraction = if percent || v > 1.0 { v / 100.0 } else { v };
    if fraction > 1.0 {
        return Err(out());
    }
    Ok(round_confidence(fraction))
}

/// Confidences are kept to four decimals: finer steps mean nothing to a trading threshold,
/// and it makes a rendered decision read back identically although serde_json's float
/// parsing is not bit-exact.
pub fn round_confidence(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

// ---------------------------------------------------------------------------------------
// Text fallback

/// A word of the answer with its byte span. Words keep `.`, `%`, `_`, `/` and `'` so that
/// `0.6`, `72%`, `CLOSE_ALL`, `8/10` and `don't` stay whole.
#[derive(Debug, Clone)]
struct Token<'a> {
    text: &'a str,
    lower: String,
    line: usize,
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    fn push<'a>(word: &'a str, line: usize, tokens: &mut Vec<Token<'a>>) {
        // Sentence punctuation is not part of a word: `BUY.` is `BUY`, `'SELL'` is `SELL`.
        let word = word.trim_matches(|c| matches!(c, '.' | '\'' | '/'));
        if !word.is_empty() {
            tokens.push(Token {
                text: word,
                lower: word.to_lowercase(),
                line,
            });
        }
    }
    let is_word = |c: char| c.is_alphanumeric() || matches!(c, '.' | '%' | '_' | '/' | '\'');
    let mut tokens = Vec::new();
    let mut line = 0;
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if is_word(c) {
            if start.is_none() {
                start = Some(i);
            }
        } else {
            if let Some(s) = start.take() {
                push(&text[s..i], line, &mut tokens);
            }
            if c == '\n' {
                line += 1;
            }
        }
    }
    if let Some(s) = start {
        push(&text[s..], line, &mut tokens);
    }
    tokens
}

/// Words that introduce a verdict: `Decision: SELL`, `I recommend doing NOTHING`.
const VERDICT_LABELS: &[&str] = &[
    "decision",
    "action",
    "signal",
    "recommendation",
    "recommend",
    "recommends",
    "recommended",
    "suggest",
    "suggests",
    "suggestion",
    "verdict",
    "answer",
    "should",
];
/// How many words after a label the verdict may come (`I recommend we go ahead and BUY` is
/// too far; `Final decision is to BUY` is not).
const LABEL_REACH: usize = 4;
const NEGATIONS: &[&str] = &[
    "not",
    "don't",
    "dont",
    "never",
    "avoid",
    "no",
    "cannot",
    "can't",
    "won't",
    "shouldn't",
    "nor",
    "neither",
];

/// Classifies the token at `i` as a trade verdict; returns the verdict and how many tokens
/// it spans.
fn classify_trade_tokens(tokens: &[Token<'_>], i: usize) -> Option<(TradeAction, usize)> {
    let t = &tokens[i].lower;
    let action = match t.as_str() {
        // `long`/`short` are left to JSON answers: in prose they are mostly `short-term`.
        "buy" => TradeAction::Buy,
        "sell" => TradeAction::Sell,
        "nothing" | "hold" | "wait" | "no_trade" | "none" => TradeAction::Nothing,
        _ => return None,
    };
    Some((action, 1))
}

fn classify_risk_tokens(tokens: &[Token<'_>], i: usize) -> Option<(RiskVerdict, usize)> {
    let t = tokens[i].lower.as_str();
    match t {
        "close_all" | "closeall" => Some((RiskVerdict::CloseAll, 1)),
        "close" => {
            let next = tokens.get(i + 1).map(|t| t.lower.as_str());
            match next {
                Some("all" | "everything" | "positions") => Some((RiskVerdict::CloseAll, 2)),
                _ => Some((RiskVerdict::CloseAll, 1)),
            }
        }
        "hold" | "keep" => Some((RiskVerdict::Hold, 1)),
        _ => None,
    }
}

fn classify_trade_phrase(s: &str) -> Option<TradeAction> {
    let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    match norm.as_str() {
        "buy" | "long" | "go_long" | "strong_buy" => Some(TradeAction::Buy),
        "sell" | "short" | "go_short" | "strong_sell" => Some(TradeAction::Sell),
        "nothing" | "do_nothing" | "hold" | "none" | "wait" | "no_trade" | "neutral"
        | "no_action" => Some(TradeAction::Nothing),
        _ => None,
    }
}

fn classify_risk_phrase(s: &str) -> Option<RiskVerdict> {
    let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    match norm.as_str() {
        "close_all" | "closeall" | "close" | "close_everything" | "close_all_positions" => {
            Some(RiskVerdict::CloseAll)
        }
        "hold" | "keep" | "keep_open" | "hold_positions" => Some(RiskVerdict::Hold),
        _ => None,
    }
}

fn negated(tokens: &[Token<'_>], i: usize) -> bool {
    let from = i.saturating_sub(2);
    tokens[from..i]
        .iter()
        .any(|t| NEGATIONS.contains(&t.lower.as_str()))
}

fn is_upper_word(t: &Token<'_>) -> bool {
    t.text.chars().any(|c| c.is_alphabetic())
        && !t.text.chars().any(|c| c.is_lowercase())
        && t.text.chars().count() > 1
}

type Classify<V> = fn(&[Token<'_>], usize) -> Option<(V, usize)>;

/// Finds the verdict in text, by the levels of the module docs. Returns the verdict and the
/// index of the token that carried it.
fn find_verdict<V: Copy + PartialEq + std::fmt::Debug>(
    body: &str,
    tokens: &[Token<'_>],
    classify: Classify<V>,
    expected: &'static str,
) -> Result<(V, usize), DecisionError> {
    // Level 1: labelled verdicts.
    let mut labelled: Vec<(V, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !VERDICT_LABELS.contains(&t.lower.as_str()) {
            continue;
        }
        for j in (i + 1)..tokens.len().min(i + 1 + LABEL_REACH) {
            if let Some((v, _)) = classify(tokens, j) {
                if !negated(tokens, j) {
                    labelled.push((v, j));
                }
                break;
            }
        }
    }
    if let Some(found) = unique(&labelled, body)? {
        return Ok(found);
    }
    // Level 2: the first line is the verdict (`BUY` or `**SELL** - momentum is fading`).
    // A competing verdict on that same line (`BUY or SELL, hard to say`) is ambiguous.
    if let Some(first) = tokens.first() {
        if let Some((_, n)) = classify(tokens, 0) {
            let line_len = tokens.iter().take_while(|t| t.line == first.line).count();
            if is_upper_word(first) || line_len == n {
                let on_line: Vec<(V, usize)> = (0..line_len)
                    .filter(|&i| i == 0 || (is_upper_word(&tokens[i]) && !negated(tokens, i)))
                    .filter_map(|i| classify(tokens, i).map(|(v, _)| (v, i)))
                    .collect();
                if let Some(found) = unique(&on_line, body)? {
                    return Ok(found);
                }
            }
        }
    }
    // Level 3: every upper-case, non-negated verdict word.
    let mut shouted: Vec<(V, usize)> = Vec::new();
    for i in 0..tokens.len() {
        if !is_upper_word(&tokens[i]) {
            continue;
        }
        if let Some((v, _)) = classify(tokens, i) {
            if !negated(tokens, i) {
                shouted.push((v, i));
            }
        }
    }
    if let Some(found) = unique(&shouted, body)? {
        return Ok(found);
    }
    Err(DecisionError::NoVerdict {
        expected,
        excerpt: excerpt(body),
    })
}

/// One distinct verdict among `found`, none, or an [`DecisionError::Ambiguous`].
fn unique<V: Copy + PartialEq + std::fmt::Debug>(
    found: &[(V, usize)],
    body: &str,
) -> Result<Option<(V, usize)>, DecisionError> {
    let Some(&first) = found.first() else {
        return Ok(None);
    };
    let mut distinct: Vec<V> = vec![first.0];
    for (v, _) in found {
        if !distinct.contains(v) {
            distinct.push(*v);
        }
    }
    if distinct.len() > 1 {
        let names: Vec<String> = distinct
            .iter()
            .map(|v| format!("{v:?}").to_uppercase())
            .collect();
        return Err(DecisionError::Ambiguous {
            found: names.join(" vs "),
            excerpt: excerpt(body),
        });
    }
    Ok(Some(first))
}

const CONFIDENCE_LABELS: &[&str] = &[
    "confidence",
    "confidence_score",
    "conf",
    "certainty",
    "probability",
];
const CONFIDENCE_WORDS: &[&str] = &[
    "confidence",
    "confident",
    "sure",
    "certain",
    "certainty",
    "probability",
    "conviction",
];
/// Words allowed between a confidence label and its number: `confidence level of 72%`.
const CONFIDENCE_FILLER: &[&str] = &[
    "level",
    "score",
    "of",
    "is",
    "at",
    "about",
    "around",
    "approximately",
    "approx",
    "=",
    "my",
    "rating",
];

/// A number as written in an answer: `0.6`, `72%`, `8/10`. Returns the value and whether
/// it carried a percent sign; `None` if the word is not a number.
fn number_token(word: &str) -> Option<(f64, bool)> {
    if let Some((a, b)) = word.split_once('/') {
        let a: f64 = a.parse().ok()?;
        let b: f64 = b.parse().ok()?;
        if b > 0.0 && a <= b {
            return Some((a / b, false));
        }
        return None;
    }
    let (num, percent) = match word.strip_suffix('%') {
        Some(n) => (n, true),
        None => (word, false),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    num.parse().ok().map(|v| (v, percent))
}

/// The confidence of a text answer, or `None` if it states none. See the module docs.
fn confidence_from_text(
    tokens: &[Token<'_>],
    verdict_at: usize,
    body: &str,
) -> Result<Option<f64>, DecisionError> {
    // A label followed (after filler) by a number.
    for (i, t) in tokens.iter().enumerate() {
        if !CONFIDENCE_LABELS.contains(&t.lower.as_str()) {
            continue;
        }
        for (j, next) in tokens.iter().enumerate().take(i + 4).skip(i + 1) {
            if let Some((v, percent)) = number_token(next.text) {
                // `8 out of 10`: a fraction spelled out.
                if let Some(out_of) = out_of(tokens, j) {
                    return fraction(v, out_of, body).map(|c| Some(round_confidence(c)));
                }
                return normalise_text(next.text, v, percent, body).map(Some);
            }
            if !CONFIDENCE_FILLER.contains(&next.lower.as_str()) {
                break;
            }
        }
    }
    // A percentage followed by a confidence word: `72% confident`, `80% sure`.
    for (i, t) in tokens.iter().enumerate() {
        if let Some((v, true)) = number_token(t.text) {
            if tokens
                .get(i + 1)
                .is_some_and(|n| CONFIDENCE_WORDS.contains(&n.lower.as_str()))
            {
                return normalise_text(t.text, v, true, body).map(Some);
            }
        }
    }
    // A percentage right after the verdict: `BUY 72%`, `SELL (65%)`.
    for t in tokens.iter().skip(verdict_at + 1).take(3) {
        if let Some((v, true)) = number_token(t.text) {
            return normalise_text(t.text, v, true, body).map(Some);
        }
    }
    Ok(None)
}

/// The denominator of `<n> out of <d>` when the number at `at` is followed by it.
fn out_of(tokens: &[Token<'_>], at: usize) -> Option<f64> {
    match (tokens.get(at + 1), tokens.get(at + 2), tokens.get(at + 3)) {
        (Some(o), Some(f), Some(d)) if o.lower == "out" && f.lower == "of" => {
            match number_token(d.text) {
                Some((d, false)) => Some(d),
                _ => None,
            }
        }
        _ => None,
    }
}

fn normalise_text(word: &str, v: f64, percent: bool, body: &str) -> Result<f64, DecisionError> {
    if word.contains('/') {
        // number_token already checked the fraction's range.
        return Ok(round_confidence(v));
    }
    normalise_confidence(v, percent, body)
}

fn decision_from_text(body: &str) -> Result<ParsedDecision, DecisionError> {
    let tokens = tokenize(body);
    let (action, at) = find_verdict(body, &tokens, classify_trade_tokens, TRADE_EXPECTED)?;
    let (confidence, defaulted) = match confidence_from_text(&tokens, at, body)? {
        Some(c) => (c, false),
        None => (DEFAULT_CONFIDENCE, true),
    };
    Ok(ParsedDecision {
        decision: TradeDecision {
            action,
            confidence,
            reason: truncate(body.trim(), TEXT_REASON_CHARS),
        },
        confidence_defaulted: defaulted,
        format: AnswerFormat::Text,
    })
}

// ---------------------------------------------------------------------------------------
// Helpers

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The answer as quoted in errors: one line, at most [`EXCERPT_CHARS`] characters.
fn excerpt(body: &str) -> String {
    let flat: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&flat, EXCERPT_CHARS)
}

#[cfg(test)]
mod tests;
