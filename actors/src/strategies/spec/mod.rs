//! Declarative strategy specs: the format a model writes instead of code.
//!
//! A spec is one JSON object (see [`schema_help`], which is what a model is shown): named
//! instances of the built-in indicators, entry and exit conditions for longs and shorts
//! (comparisons `>`, `<`, `crosses_above`, `crosses_below` between an indicator output, a
//! price field or a number, combined with `all` / `any`), sizing, and optional stop-loss /
//! take-profit (percent of the signal bar's close, or a multiple of an ATR instance).
//!
//! [`validate`] reads the text and returns the typed [`StrategySpec`] or *every* problem it
//! found, each with a JSON-pointer path and a sentence a model can act on; [`StrategySpec::compile`]
//! turns a valid spec into a [`SpecStrategy`], an ordinary streaming [`Strategy`] that the
//! backtester and the strategy agent run like a built-in.
//!
//! Semantics, stated once:
//! - conditions are evaluated on each closed bar once every indicator has a previous value
//!   (warm-up = the longest indicator's warm-up + 1 bar);
//! - `crosses_above [a, b]`: `a < b` on the previous bar and `a > b` on this one (strict, as
//!   backtesting.py's `crossover`); `crosses_below` the mirror; `>` / `<` strict on this bar;
//! - an entry fires on the bar its condition *becomes* true (false, or not yet evaluated, on
//!   the previous bar), so `close > sma` enters once, not on every bar above the average,
//!   while a cross, true for one bar at a time, fires on every cross;
//! - actions follow the built-ins' rule (`builtin::Signals`, [`SameSide::Reopen`]): exits
//!   (true on this bar, while that side is held) first, then the entry written as `close`
//!   then the order — backtesting.py's `position.close(); buy()`, which re-opens a position
//!   already on that side — and no entry when the long and the short entry fire on one bar.
//!   A spec of `sma_cross`'s rule therefore acts exactly as `SmaCross` (a property test);
//!
//! [`SameSide::Reopen`]: crate::strategies::builtin::SameSide::Reopen
//! - `donchian.upper` / `.lower` / `.middle` are the channel of the N bars *before* the
//!   current one, so `close > dc.upper` is a breakout (the current bar would always be inside
//!   its own channel);
//! - a stop or target is priced from the signal bar's close (the entry price is unknown when
//!   the decision is taken: the order fills at the next open by default).
//!
//! Owns: the format, its validation and its compilation. Never: executes anything a model
//! wrote (the format has no expressions beyond the fixed comparisons), runs a backtest, or
//! stores a spec (the strategy library does).

mod compile;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use compile::SpecStrategy;
pub use validate::{validate, Problem, SpecErrors};

use super::api::Size;

/// A price field of a bar, usable as an operand and as an indicator's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceField {
    Open,
    High,
    Low,
    #[default]
    Close,
    Volume,
}

impl PriceField {
    pub const ALL: [PriceField; 5] = [
        PriceField::Open,
        PriceField::High,
        PriceField::Low,
        PriceField::Close,
        PriceField::Volume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PriceField::Open => "open",
            PriceField::High => "high",
            PriceField::Low => "low",
            PriceField::Close => "close",
            PriceField::Volume => "volume",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }
}

fn default_k() -> f64 {
    2.0
}
fn default_macd_fast() -> i64 {
    12
}
fn default_macd_slow() -> i64 {
    26
}
fn default_macd_signal() -> i64 {
    9
}

/// One indicator instance: `{"sma": {"period": 10, "source": "close"}}`. Periods are read as
/// signed integers so that a 0 or a negative gets the range sentence, not a type error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum IndicatorSpec {
    /// Output: the value (`name`).
    Sma {
        period: i64,
        #[serde(default)]
        source: PriceField,
    },
    /// Output: the value (`name`).
    Ema {
        period: i64,
        #[serde(default)]
        source: PriceField,
    },
    /// Output: the value, 0..100 (`name`).
    Rsi {
        period: i64,
        #[serde(default)]
        source: PriceField,
    },
    /// Outputs: `name.upper`, `name.middle`, `name.lower`.
    Bollinger {
        period: i64,
        #[serde(default = "default_k")]
        k: f64,
        #[serde(default)]
        source: PriceField,
    },
    /// Outputs: `name.macd`, `name.signal`, `name.histogram`.
    Macd {
        #[serde(default = "default_macd_fast")]
        fast: i64,
        #[serde(default = "default_macd_slow")]
        slow: i64,
        #[serde(default = "default_macd_signal")]
        signal: i64,
        #[serde(default)]
        source: PriceField,
    },
    /// Outputs: `name.upper`, `name.middle`, `name.lower` over the N bars before this one.
    Donchian { period: i64 },
    /// Output: the value (`name`), in price units.
    Atr { period: i64 },
}

impl IndicatorSpec {
    /// Every indicator kind, as written in a spec.
    pub const KINDS: [&'static str; 7] =
        ["sma", "ema", "rsi", "bollinger", "macd", "donchian", "atr"];

    pub fn kind(&self) -> &'static str {
        match self {
            IndicatorSpec::Sma { .. } => "sma",
            IndicatorSpec::Ema { .. } => "ema",
            IndicatorSpec::Rsi { .. } => "rsi",
            IndicatorSpec::Bollinger { .. } => "bollinger",
            IndicatorSpec::Macd { .. } => "macd",
            IndicatorSpec::Donchian { .. } => "donchian",
            IndicatorSpec::Atr { .. } => "atr",
        }
    }

    /// The named outputs (`bb.upper`); empty for a single-valued indicator (`fast`).
    pub fn outputs(&self) -> &'static [&'static str] {
        match self {
            IndicatorSpec::Bollinger { .. } | IndicatorSpec::Donchian { .. } => {
                &["upper", "middle", "lower"]
            }
            IndicatorSpec::Macd { .. } => &["macd", "signal", "histogram"],
            _ => &[],
        }
    }

    /// Bars fed before the first value (a valid spec's periods are positive).
    pub fn warmup_bars(&self) -> usize {
        let n = |p: i64| usize::try_from(p).unwrap_or(0);
        match *self {
            IndicatorSpec::Sma { period, .. }
            | IndicatorSpec::Ema { period, .. }
            | IndicatorSpec::Bollinger { period, .. } => n(period),
            IndicatorSpec::Rsi { period, .. } | IndicatorSpec::Atr { period } => n(period) + 1,
            IndicatorSpec::Macd { slow, signal, .. } => n(slow) + n(signal) - 1,
            // The channel of the N bars before the current one exists from bar N + 1.
            IndicatorSpec::Donchian { period } => n(period) + 1,
        }
    }
}

/// An operand: a number, a price field (`"close"`), an indicator (`"fast"`) or one of its
/// outputs (`"bb.lower"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Operand {
    Number(f64),
    Name(String),
}

/// A condition on the current (and, for crosses, the previous) bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Condition {
    #[serde(rename = ">")]
    Above(Operand, Operand),
    #[serde(rename = "<")]
    Below(Operand, Operand),
    #[serde(rename = "crosses_above")]
    CrossesAbove(Operand, Operand),
    #[serde(rename = "crosses_below")]
    CrossesBelow(Operand, Operand),
    /// Every condition holds (at least one required).
    #[serde(rename = "all")]
    All(Vec<Condition>),
    /// At least one condition holds (at least one required).
    #[serde(rename = "any")]
    Any(Vec<Condition>),
    /// A matching signal of the engine's signal bus is alive at this bar's open. Live only:
    /// a backtest has no bus, so there it never holds.
    #[serde(rename = "signal")]
    Signal(SignalCondition),
}

impl Condition {
    pub const KINDS: [&'static str; 7] = [
        ">",
        "<",
        "crosses_above",
        "crosses_below",
        "all",
        "any",
        "signal",
    ];
}

/// Which signals a `signal` condition waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalCondition {
    /// A signal kind as the bus names it: `sentiment`, `funding`, `other:<name>`, ...
    pub kind: String,
    /// `long`, `short` or `neutral`; any direction when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// 0 to 1; any confidence when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
}

/// When to enter and (optionally) leave one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideRules {
    pub entry: Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Condition>,
}

/// A protective exit attached to every entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExitRule {
    /// Percent of the signal bar's close (`{"pct": 2}` = 2 %).
    Pct(f64),
    /// A multiple of an ATR instance's value on the signal bar.
    Atr { indicator: String, multiple: f64 },
}

/// A strategy written as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub indicators: BTreeMap<String, IndicatorSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long: Option<SideRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<SideRules>,
    /// `{"equity": f}` (fraction of equity, 0 < f <= 1) or `{"units": u}`; default all equity.
    #[serde(default = "default_size")]
    pub sizing: Size,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<ExitRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<ExitRule>,
}

fn default_size() -> Size {
    Size::ALL
}

impl StrategySpec {
    /// Every problem of an already-parsed spec (ranges, references, combinations).
    pub fn check(&self) -> Vec<Problem> {
        validate::check(self)
    }

    /// Compiles a spec into a runnable strategy; refuses an invalid one with all problems.
    pub fn compile(&self) -> Result<SpecStrategy, SpecErrors> {
        let problems = self.check();
        if !problems.is_empty() {
            return Err(SpecErrors(problems));
        }
        SpecStrategy::new(self).map_err(|e| {
            SpecErrors(vec![Problem {
                path: "/indicators".into(),
                message: e.to_string(),
            }])
        })
    }

    /// Bars fed before the first decision: the longest indicator warm-up plus one.
    pub fn warmup_bars(&self) -> usize {
        self.indicators
            .values()
            .map(IndicatorSpec::warmup_bars)
            .max()
            .unwrap_or(0)
            // A price field is there from the first bar; a cross needs the one before.
            .max(1)
            + 1
    }
}

/// The example [`schema_help`] shows, kept valid by a test.
pub const EXAMPLE: &str = r#"{
  "name": "sma_trend_rsi_filter",
  "description": "Buy when the 10-bar SMA crosses above the 30-bar SMA while RSI is below 70; leave when it crosses back or RSI passes 80.",
  "indicators": {
    "fast": {"sma": {"period": 10, "source": "close"}},
    "slow": {"sma": {"period": 30}},
    "rsi": {"rsi": {"period": 14}},
    "bb": {"bollinger": {"period": 20, "k": 2.0}},
    "atr": {"atr": {"period": 14}}
  },
  "long": {
    "entry": {"all": [{"crosses_above": ["fast", "slow"]}, {"<": ["rsi", 70]}]},
    "exit": {"any": [{"crosses_below": ["fast", "slow"]}, {">": ["rsi", 80]}, {">": ["close", "bb.upper"]}]}
  },
  "sizing": {"equity": 0.5},
  "stop_loss": {"atr": {"indicator": "atr", "multiple": 2.0}},
  "take_profit": {"pct": 6}
}"#;

/// The format, for a model's prompt: every field, the semantics, and one example.
pub fn schema_help() -> String {
    format!(
        r#"Write the strategy as ONE JSON object, no code, no comments. Fields:
- "name" (required): lowercase letters, digits, '_' or '-', at most 64 characters.
- "description" (optional): one or two sentences.
- "indicators" (required): an object naming indicator instances. Each value is exactly one of:
    {{"sma": {{"period": N, "source": S}}}}     simple moving average; output: the name itself
    {{"ema": {{"period": N, "source": S}}}}     exponential moving average (TA-Lib); output: the name
    {{"rsi": {{"period": N, "source": S}}}}     Wilder RSI, 0..100; output: the name
    {{"bollinger": {{"period": N, "k": K, "source": S}}}}   outputs NAME.upper, NAME.middle, NAME.lower
    {{"macd": {{"fast": F, "slow": L, "signal": G, "source": S}}}}   outputs NAME.macd, NAME.signal, NAME.histogram
    {{"donchian": {{"period": N}}}}   highest high / lowest low of the N bars BEFORE the current one:
                                   outputs NAME.upper, NAME.middle, NAME.lower
    {{"atr": {{"period": N}}}}        Wilder average true range; output: the name
  N, F, L, G are whole numbers from 1 to 1000 (bollinger period from 2; macd fast < slow); K from 0 to 10
  (default 2); S is one of open, high, low, close, volume (default close); macd defaults 12/26/9.
  Instance names: letters, digits and '_', starting with a letter, not a price field name.
- "long" and/or "short" (at least one): {{"entry": CONDITION, "exit": CONDITION}}; "exit" is optional
  (without it, a position is only closed by the opposite entry or by a stop / target).
- CONDITION is one of:
    {{">": [A, B]}}   {{"<": [A, B]}}   A is strictly above / below B on this bar
    {{"crosses_above": [A, B]}}   A was below B on the previous bar and is above it on this one
    {{"crosses_below": [A, B]}}   the reverse
    {{"all": [CONDITION, ...]}}   every one holds       {{"any": [CONDITION, ...]}}   at least one holds
    {{"signal": {{"kind": K, "direction": D, "min_confidence": C}}}}   a signal of the engine's signal bus
      (K: sentiment, funding, open_interest, liquidations, whale, technical, news or other:<name>;
      D optional: long, short, neutral; C optional, 0 to 1) is alive at this bar's open. Live only:
      a backtest has no signals, so combine it with "all" only where trading without it is wrong.
  A and B are a number, a price field ("close", "open", "high", "low", "volume"), an indicator name
  ("fast") or an output ("bb.lower", "macd.signal"); at least one of A, B is not a number.
- "sizing" (optional, default all equity): {{"equity": F}} with 0 < F <= 1, or {{"units": U}} with U > 0.
- "stop_loss", "take_profit" (optional): {{"pct": P}} (percent of the signal bar's close; stop 0 < P < 100,
  target 0 < P <= 1000) or {{"atr": {{"indicator": NAME, "multiple": M}}}} (NAME an atr instance, 0 < M <= 100).
Rules: decisions start once every indicator has a previous value. An exit closes the position
on every bar its condition holds. An entry fires on the bar its condition becomes true (so a
level like {{">": ["close", "slow"]}} enters once, when the close moves above it); it closes any
open position first (either side) and then opens the new one. Exits are checked before entries.
Use "crosses_above"/"crosses_below" for events, ">"/"<" for states.
Example:
{EXAMPLE}
"#
    )
}
