//! JSON output for people and programs: decimals without trailing noise, and the answer
//! of `ask` with its total latency.
//!
//! Owns: [`to_json_value`] (a report as JSON with every decimal string normalized:
//! `"9991.154176436000000000000000"` becomes `"9991.154176436"`, `"60891.00"` becomes
//! `"60891"`) and [`AskAnswer`]. Never: rounds a value (digits other than trailing zeros
//! are kept), touches a string that is not a plain decimal (ids, names, timestamps), or
//! changes a number's meaning.

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
    match v {
        serde_json::Value::String(s) => {
            if let Some(n) = trimmed_decimal(s) {
                *s = n;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalize),
        serde_json::Value::Object(map) => map.values_mut().for_each(normalize),
        _ => {}
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
}
