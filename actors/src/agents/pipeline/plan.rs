//! The strategy generator's product: a typed trade [`Plan`], read strictly from the
//! model's answer and validated against the price before anything is sent.
//!
//! Owns: the plan's shape, its wire form (one JSON object, below) and every check a plan
//! must pass ([`PlanError`]). Never: sends an order or decides whether the mode allows
//! one (the executor and the risk gate do).
//!
//! # Wire form
//!
//! ```json
//! {"direction": "long" | "short" | "stand_aside",
//!  "entry": "market" | <limit price>,
//!  "stop_loss": <price>, "take_profit": <price>,
//!  "size_pct": <percent of account value>, "horizon": "4h",
//!  "confidence": <0..1>, "reason": "<short text>"}
//! ```
//!
//! Prices and `size_pct` are JSON numbers or numeric strings. A `stand_aside` needs only
//! `confidence` and `reason`. The whole answer must be that object (or one fenced code
//! block holding it); unknown keys are refused, so a misspelt `stop_los` is an error, not
//! a plan without a stop.
//!
//! # Checks
//!
//! The entry's reference price is its limit price, or the current mid for a market entry.
//! A long needs `stop_loss < reference < take_profit`; a short
//! `take_profit < reference < stop_loss`. A limit entry must be within 10 % of the mid
//! (further is an error of the model, not a plan). `size_pct` is in
//! `(0, max_position_pct]`, `confidence` in `[0, 1]`, `horizon` from 1 minute to 30 days.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exchanges::Side;
use crate::models::roles::{json_object, snippet};

/// How the entry is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// At the market now.
    Market,
    /// At this limit price or better (sent immediate-or-cancel: see the executor).
    Limit { price: Decimal },
}

/// A plan to open a position with its bracket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradePlan {
    pub entry: Entry,
    pub stop_loss: Decimal,
    pub take_profit: Decimal,
    /// Notional of the position, in percent of account value.
    pub size_pct: Decimal,
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    pub confidence: f64,
    pub reason: String,
}

/// What the strategy generator decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "direction", rename_all = "snake_case")]
pub enum Plan {
    Long(TradePlan),
    Short(TradePlan),
    StandAside { confidence: f64, reason: String },
}

impl Plan {
    /// `LONG`, `SHORT` or `STAND_ASIDE`: the journal's action.
    pub fn label(&self) -> &'static str {
        match self {
            Plan::Long(_) => "LONG",
            Plan::Short(_) => "SHORT",
            Plan::StandAside { .. } => "STAND_ASIDE",
        }
    }

    pub fn confidence(&self) -> f64 {
        match self {
            Plan::Long(t) | Plan::Short(t) => t.confidence,
            Plan::StandAside { confidence, .. } => *confidence,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Plan::Long(t) | Plan::Short(t) => &t.reason,
            Plan::StandAside { reason, .. } => reason,
        }
    }

    /// The entry's side and the trade, unless it stands aside.
    pub fn trade(&self) -> Option<(Side, &TradePlan)> {
        match self {
            Plan::Long(t) => Some((Side::Buy, t)),
            Plan::Short(t) => Some((Side::Sell, t)),
            Plan::StandAside { .. } => None,
        }
    }
}

/// Why a strategy generator's answer is no plan. Each message names the field and says
/// what was wrong, for the journal and the log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the answer holds no JSON object: {snippet}")]
    NoJson { snippet: String },
    #[error("the answer is not a plan object: {reason}")]
    Shape { reason: String },
    #[error("unknown key `{key}` in the plan (keys: direction, entry, stop_loss, take_profit, size_pct, horizon, confidence, reason)")]
    UnknownKey { key: String },
    #[error("direction `{got}` is not one of long, short, stand_aside")]
    Direction { got: String },
    #[error("`{field}` is missing; a {direction} plan needs it")]
    Missing {
        field: &'static str,
        direction: &'static str,
    },
    #[error("`{field}` = {got} is not a positive price or number")]
    NotAPrice { field: &'static str, got: String },
    #[error("entry `{got}` is neither \"market\" nor a limit price")]
    BadEntry { got: String },
    #[error("stop-loss {stop} is on the wrong side of the entry {entry} for a {direction}: it must be {must} the entry")]
    StopWrongSide {
        direction: &'static str,
        stop: Decimal,
        entry: Decimal,
        must: &'static str,
    },
    #[error("take-profit {target} is on the wrong side of the entry {entry} for a {direction}: it must be {must} the entry")]
    TargetWrongSide {
        direction: &'static str,
        target: Decimal,
        entry: Decimal,
        must: &'static str,
    },
    #[error("limit entry {price} is more than 10% from the current price {mid}")]
    EntryFarFromMarket { price: Decimal, mid: Decimal },
    #[error("size_pct {size} is outside (0, {max}] (max_position_pct)")]
    Size { size: Decimal, max: Decimal },
    #[error("confidence {0} is not a number from 0 to 1")]
    Confidence(f64),
    #[error("horizon `{got}` is not a duration from 1m to 30days (e.g. \"4h\")")]
    Horizon { got: String },
    #[error("`reason` must be a string")]
    Reason,
}

const KEYS: [&str; 8] = [
    "direction",
    "entry",
    "stop_loss",
    "take_profit",
    "size_pct",
    "horizon",
    "confidence",
    "reason",
];

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

fn positive(
    obj: &serde_json::Map<String, Value>,
    field: &'static str,
    direction: &'static str,
) -> Result<Decimal, PlanError> {
    let v = obj
        .get(field)
        .filter(|v| !v.is_null())
        .ok_or(PlanError::Missing { field, direction })?;
    decimal(v)
        .filter(|d| *d > Decimal::ZERO)
        .ok_or_else(|| PlanError::NotAPrice {
            field,
            got: v.to_string(),
        })
}

/// Reads and checks a plan (see the module docs). `mid` is the current price, the
/// reference of a market entry; `max_size_pct` bounds `size_pct`.
pub fn parse_plan(text: &str, mid: Decimal, max_size_pct: Decimal) -> Result<Plan, PlanError> {
    let body = json_object(text).ok_or_else(|| PlanError::NoJson {
        snippet: snippet(text),
    })?;
    let value: Value = serde_json::from_str(body).map_err(|e| PlanError::Shape {
        reason: e.to_string(),
    })?;
    let Value::Object(obj) = value else {
        return Err(PlanError::Shape {
            reason: "not a JSON object".into(),
        });
    };
    if let Some(key) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(PlanError::UnknownKey { key: key.clone() });
    }
    let direction = match obj.get("direction") {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(other) => {
            return Err(PlanError::Direction {
                got: other.to_string(),
            })
        }
        None => {
            return Err(PlanError::Missing {
                field: "direction",
                direction: "any",
            })
        }
    };
    let direction: &'static str = match direction.as_str() {
        "long" => "long",
        "short" => "short",
        "stand_aside" | "stand aside" | "stand-aside" => "stand_aside",
        _ => return Err(PlanError::Direction { got: direction }),
    };
    let confidence = obj
        .get("confidence")
        .filter(|v| !v.is_null())
        .ok_or(PlanError::Missing {
            field: "confidence",
            direction,
        })?;
    let confidence = confidence.as_f64().ok_or_else(|| PlanError::NotAPrice {
        field: "confidence",
        got: confidence.to_string(),
    })?;
    if !(0.0..=1.0).contains(&confidence) {
        return Err(PlanError::Confidence(confidence));
    }
    let reason = match obj.get("reason") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(PlanError::Reason),
    };
    if direction == "stand_aside" {
        return Ok(Plan::StandAside { confidence, reason });
    }
    let long = direction == "long";
    let entry = match obj.get("entry").filter(|v| !v.is_null()) {
        None => {
            return Err(PlanError::Missing {
                field: "entry",
                direction,
            })
        }
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("market") => Entry::Market,
        Some(v) => match decimal(v).filter(|d| *d > Decimal::ZERO) {
            Some(price) => Entry::Limit { price },
            None => return Err(PlanError::BadEntry { got: v.to_string() }),
        },
    };
    let reference = match entry {
        Entry::Market => mid,
        Entry::Limit { price } => {
            if mid > Decimal::ZERO && ((price - mid).abs() / mid) > Decimal::new(1, 1) {
                return Err(PlanError::EntryFarFromMarket { price, mid });
            }
            price
        }
    };
    let stop_loss = positive(&obj, "stop_loss", direction)?;
    let take_profit = positive(&obj, "take_profit", direction)?;
    let size_pct = positive(&obj, "size_pct", direction)?;
    let (below, above) = ("below", "above");
    if (long && stop_loss >= reference) || (!long && stop_loss <= reference) {
        return Err(PlanError::StopWrongSide {
            direction,
            stop: stop_loss,
            entry: reference,
            must: if long { below } else { above },
        });
    }
    if (long && take_profit <= reference) || (!long && take_profit >= reference) {
        return Err(PlanError::TargetWrongSide {
            direction,
            target: take_profit,
            entry: reference,
            must: if long { above } else { below },
        });
    }
    if size_pct > max_size_pct {
        return Err(PlanError::Size {
            size: size_pct,
            max: max_size_pct,
        });
    }
    let horizon = match obj.get("horizon").filter(|v| !v.is_null()) {
        None => {
            return Err(PlanError::Missing {
                field: "horizon",
                direction,
            })
        }
        Some(Value::String(s)) => humantime::parse_duration(s.trim())
            .ok()
            .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(30 * 86_400))
            .ok_or_else(|| PlanError::Horizon { got: s.clone() })?,
        Some(v) => return Err(PlanError::Horizon { got: v.to_string() }),
    };
    let trade = TradePlan {
        entry,
        stop_loss,
        take_profit,
        size_pct,
        horizon,
        confidence,
        reason,
    };
    Ok(if long {
        Plan::Long(trade)
    } else {
        Plan::Short(trade)
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    const LONG: &str = r#"{"direction":"long","entry":"market","stop_loss":59000,"take_profit":"63000","size_pct":4,"horizon":"4h","confidence":0.7,"reason":"uptrend"}"#;

    #[test]
    fn a_valid_long_reads_into_its_type() {
        let plan = parse_plan(LONG, dec!(60000), dec!(5)).unwrap();
        let Plan::Long(t) = &plan else {
            panic!("{plan:?}")
        };
        assert_eq!(t.entry, Entry::Market);
        assert_eq!(
            (t.stop_loss, t.take_profit, t.size_pct),
            (dec!(59000), dec!(63000), dec!(4))
        );
        assert_eq!(t.horizon, Duration::from_secs(4 * 3600));
        assert_eq!(plan.label(), "LONG");
        assert_eq!(plan.trade().map(|(s, _)| s), Some(Side::Buy));
    }

    #[test]
    fn a_stop_on_the_wrong_side_is_refused_and_says_so() {
        // A long's stop above the price.
        let e = parse_plan(&LONG.replace("59000", "61000"), dec!(60000), dec!(5)).unwrap_err();
        assert!(
            matches!(e, PlanError::StopWrongSide { must: "below", .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("stop-loss 61000 is on the wrong side"),
            "{e}"
        );
        // A short with a long's bracket: the stop is below.
        let short = LONG.replace("\"long\"", "\"short\"");
        let e = parse_plan(&short, dec!(60000), dec!(5)).unwrap_err();
        assert!(
            matches!(e, PlanError::StopWrongSide { must: "above", .. }),
            "{e}"
        );
        // A limit entry is the reference: a stop above a long's limit entry is wrong even
        // below the market.
        let limit = LONG
            .replace("\"market\"", "59500")
            .replace("59000", "59600");
        let e = parse_plan(&limit, dec!(60000), dec!(5)).unwrap_err();
        assert!(matches!(e, PlanError::StopWrongSide { .. }), "{e}");
        // Take profit below a long's entry.
        let e = parse_plan(&LONG.replace("\"63000\"", "59500"), dec!(60000), dec!(5)).unwrap_err();
        assert!(matches!(e, PlanError::TargetWrongSide { .. }), "{e}");
    }

    #[test]
    fn every_other_defect_is_an_error_naming_it() {
        let cases: [(String, &str); 9] = [
            (
                LONG.replace("\"size_pct\":4", "\"size_pct\":6"),
                "size_pct 6 is outside (0, 5]",
            ),
            (LONG.replace("0.7", "1.7"), "confidence 1.7"),
            (LONG.replace("\"4h\"", "\"soon\""), "horizon `soon`"),
            (
                LONG.replace("stop_loss", "stop_los"),
                "unknown key `stop_los`",
            ),
            (
                LONG.replace(",\"take_profit\":\"63000\"", ""),
                "`take_profit` is missing",
            ),
            (LONG.replace("\"market\"", "\"now\""), "entry `\"now\"`"),
            (LONG.replace("\"market\"", "70000"), "more than 10%"),
            (LONG.replace("\"long\"", "\"buy\""), "direction `buy`"),
            (format!("Here is my plan: {LONG}"), "no JSON object"),
        ];
        for (text, says) in cases {
            let e = parse_plan(&text, dec!(60000), dec!(5)).unwrap_err();
            assert!(e.to_string().contains(says), "{text} -> {e}");
        }
    }

    #[test]
    fn stand_aside_needs_only_confidence_and_reason() {
        let plan = parse_plan(
            r#"{"direction":"stand_aside","confidence":0.8,"reason":"no edge"}"#,
            dec!(60000),
            dec!(5),
        )
        .unwrap();
        assert_eq!(
            plan,
            Plan::StandAside {
                confidence: 0.8,
                reason: "no edge".into()
            }
        );
        assert!(plan.trade().is_none());
    }
}
