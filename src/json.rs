//! JSON output for people and programs: decimals without trailing noise, USD figures at
//! their precision, times readable, and the answer of `ask` with its total latency.
//!
//! Owns: [`to_json_value`], which takes a report to JSON and then
//! - normalizes every decimal string: `"9991.154176436000000000000000"` becomes
//!   `"9991.154176436"`, `"60891.00"` becomes `"60891"` (prices and sizes are already on the
//!   venue's tick and lot grid, so only the noise goes);
//! - rounds computed USD amounts (keys ending in `_usd`, and an account's `account_value`,
//!   `free_balance`, `margin_used`, `unrealized_pnl`) to cents, fees and model costs (`fee`
//!   or `cost` in the key) to six decimals, half away from zero: `"9988.818815558"` becomes `"9988.82"`;
//! - gives every Unix-millisecond timestamp `x_ms` a sibling `x` in RFC 3339 UTC
//!   (`"since_ms":1796244884052` gains `"since":"2026-12-02T20:54:44.052Z"`); durations
//!   (`latency_ms`, `total_ms`, small numbers) are left as they are.
//!
//! And [`AskAnswer`]. Never: changes a stored value or one sent to a venue (this is output
//! only), or touches a string that is not a plain decimal (ids, names).

use std::time::Duration;

use orrery_actors::models::{duration_ms, ModelResponse};
use serde::{Deserialize, Serialize};

/// `value` as JSON with decimal strings normalized (see the module docs).
pub fn to_json_value<T: Serialize>(value: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap_or_else(|e| {
        // Reports are plain structs of strings, numbers and maps: not expected, but
        // never a panic and never silent.
        serde_json::json!({"error": {"code": "encode", "message": e.to_string()}})
    });
    normalize(&mut v);
    v
}

/// `value` as pretty JSON text, decimals normalized.
pub fn to_pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(&to_json_value(value)).unwrap_or_default()
}

fn normalize(v: &mut serde_json::Value) {
    normalize_in(v, "");
}

/// The smallest Unix-millisecond value read as a timestamp (2001-09-09): durations in
/// milliseconds never come near it.
const TIMESTAMP_MS_FLOOR: i64 = 1_000_000_000_000;

fn normalize_in(v: &mut serde_json::Value, key: &str) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(dp) = usd_places(key) {
                if let Ok(d) = s.parse::<rust_decimal::Decimal>() {
                    *s = d
                        .round_dp_with_strategy(
                            dp,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        )
                        .normalize()
                        .to_string();
                    return;
                }
            }
            if let Some(n) = trimmed_decimal(s) {
                *s = n;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| normalize_in(i, key)),
        serde_json::Value::Object(map) => {
            let mut times = Vec::new();
            for (k, item) in map.iter_mut() {
                normalize_in(item, k);
                if let (Some(base), Some(ms)) = (k.strip_suffix("_ms"), item.as_i64()) {
                    if ms >= TIMESTAMP_MS_FLOOR {
                        if let Some(t) = chrono::DateTime::from_timestamp_millis(ms) {
                            let text = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                            times.push((base.to_string(), text));
                        }
                    }
                }
            }
            for (base, text) in times {
                map.entry(base).or_insert(serde_json::Value::String(text));
            }
        }
        _ => {}
    }
}

/// Decimal places a USD amount under `key` is shown with, `None` for anything else.
fn usd_places(key: &str) -> Option<u32> {
    let usd = key.ends_with("_usd")
        || matches!(
            key,
            "account_value" | "free_balance" | "margin_used" | "unrealized_pnl"
        );
    match (usd, key.contains("fee") || key.contains("cost")) {
        (true, true) => Some(6),
        (true, false) => Some(2),
        _ => None,
    }
}

/// `-?digits.digits` with trailing fractional zeros, without them; `None` for anything else.
fn trimmed_decimal(s: &str) -> Option<String> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.')?;
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !plain || !frac.ends_with('0') {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    let sign = if s.starts_with('-') && (int.bytes().any(|b| b != b'0') || !frac.is_empty()) {
        "-"
    } else {
        ""
    };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// `ask --json` and `POST /api/ask`: the answer, each deployment tried (`attempts`, with
/// `ms`), and `total_ms` from the request to the answer as the asker saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskAnswer {
    #[serde(flatten)]
    pub response: ModelResponse,
    pub total_ms: f64,
}

impl AskAnswer {
    pub fn new(response: ModelResponse, total: Duration) -> Self {
        Self {
            response,
            total_ms: duration_ms::as_ms(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trailing_zeros_of_plain_decimals_go() {
        assert_eq!(
            trimmed_decimal("9991.154176436000000000000000").as_deref(),
            Some("9991.154176436")
        );
        assert_eq!(trimmed_decimal("60891.00").as_deref(), Some("60891"));
        assert_eq!(trimmed_decimal("-0.50").as_deref(), Some("-0.5"));
        assert_eq!(trimmed_decimal("-0.000").as_deref(), Some("0"));
        assert_eq!(trimmed_decimal("0.15"), None);
        assert_eq!(trimmed_decimal("100"), None);
        assert_eq!(trimmed_decimal("1.0.0"), None);
        assert_eq!(trimmed_decimal("v1.10"), None);
        assert_eq!(trimmed_decimal("2026-12-02T10:00:00.000Z"), None);
        let v = to_json_value(&serde_json::json!({"a": ["1.50", {"b": "x.10"}], "n": 1.5}));
        assert_eq!(
            v,
            serde_json::json!({"a": ["1.5", {"b": "x.10"}], "n": 1.5})
        );
    }

    #[test]
    fn usd_amounts_at_their_precision_and_timestamps_readable() {
        let v = to_json_value(&serde_json::json!({
            "account": {"account_value": "9991.154176436000000000000000", "time_ms": 1796244884052i64},
            "pnl_usd": "-11.185",
            "fees_usd": "0.8994034665",
            "price": "60891.125000",
            "latency_ms": 12,
            "decisions": [{"time_ms": 1796244731791i64, "time": "kept"}],
        }));
        assert_eq!(v["account"]["account_value"], "9991.15");
        assert_eq!(v["account"]["time"], "2026-12-02T20:54:44.052Z");
        assert_eq!(v["pnl_usd"], "-11.19", "half away from zero");
        assert_eq!(v["fees_usd"], "0.899403");
        assert_eq!(v["price"], "60891.125", "prices keep their digits");
        assert_eq!(v["latency_ms"], 12);
        assert!(v.get("latency").is_none(), "a duration is not a time");
        assert_eq!(v["decisions"][0]["time"], "kept", "an existing key wins");
    }
}
