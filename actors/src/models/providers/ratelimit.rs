//! Rate-limit headers of every provider, read into one [`RateLimitSnapshot`].
//!
//! Owns: header names and value formats. Never does: deciding to wait or throttle (the
//! pool's limiter does, from this snapshot).
//!
//! Formats seen on the wire:
//! - OpenAI, Groq, xAI, OpenRouter-style: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`;
//!   resets are Go durations (`12ms`, `6s`, `1m30s`, `2m59.56s`, Groq `172.799999ms`).
//! - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`;
//!   resets are RFC 3339 instants (`2025-08-21T12:40:59Z`).
//! - `retry-after-ms` (OpenAI, milliseconds, preferred because finer), `retry-after`
//!   (seconds or an HTTP date).
//!
//! Resets are returned as durations from `now` (injected, so tests are deterministic);
//! an instant in the past is a zero wait. A malformed value is skipped, never an error: a
//! successful answer must not fail over a header.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// One limit window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitWindow {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Time until the window refills, from the `now` given to the parser.
    pub reset: Option<Duration>,
}

impl LimitWindow {
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// What a provider said about our rate limits on one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    pub requests: LimitWindow,
    /// All tokens (OpenAI-style, Anthropic's combined `tokens`).
    pub tokens: LimitWindow,
    /// Anthropic only: input and output tokens are limited separately.
    pub input_tokens: LimitWindow,
    pub output_tokens: LimitWindow,
    /// How long the server asked us to wait (`retry-after-ms` or `retry-after`).
    pub retry_after: Option<Duration>,
}

impl RateLimitSnapshot {
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Self {
        let openai_window = |kind: &str| LimitWindow {
            limit: header_u64(headers, &format!("x-ratelimit-limit-{kind}")),
            remaining: header_u64(headers, &format!("x-ratelimit-remaining-{kind}")),
            reset: header_str(headers, &format!("x-ratelimit-reset-{kind}"))
                .and_then(parse_go_duration),
        };
        let anthropic_window = |kind: &str| LimitWindow {
            limit: header_u64(headers, &format!("anthropic-ratelimit-{kind}-limit")),
            remaining: header_u64(headers, &format!("anthropic-ratelimit-{kind}-remaining")),
            reset: header_str(headers, &format!("anthropic-ratelimit-{kind}-reset"))
                .and_then(|value| rfc3339_until(value, now)),
        };
        // Un-suffixed `x-ratelimit-*` (OpenRouter and generic gateways) count requests;
        // their reset may be a duration or a Unix timestamp.
        let generic_window = || LimitWindow {
            limit: header_u64(headers, "x-ratelimit-limit"),
            remaining: header_u64(headers, "x-ratelimit-remaining"),
            reset: header_str(headers, "x-ratelimit-reset").and_then(|v| reset_until(v, now)),
        };
        let mut requests = openai_window("requests");
        if requests.is_empty() {
            requests = anthropic_window("requests");
        }
        if requests.is_empty() {
            requests = generic_window();
        }
        let mut tokens = openai_window("tokens");
        if tokens.is_empty() {
            tokens = anthropic_window("tokens");
        }
        Self {
            requests,
            tokens,
            input_tokens: anthropic_window("input-tokens"),
            output_tokens: anthropic_window("output-tokens"),
            retry_after: retry_after(headers, now),
        }
    }

    /// Whether the response carried no rate-limit information at all.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
            && self.tokens.is_empty()
            && self.input_tokens.is_empty()
            && self.output_tokens.is_empty()
            && self.retry_after.is_none()
    }
}

/// `retry-after-ms` if present (OpenAI sends it, and it is finer), else `retry-after` as
/// seconds (integer or fractional) or as an HTTP date relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) =
        header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
    {
        if let Some(wait) = seconds(ms / 1000.0) {
            return Some(wait);
        }
    }
    let value = header_str(headers, "retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A Go `time.Duration` string: a sequence of decimal numbers with units `h`, `m`, `s`,
/// `ms`, `us`/`µs`, `ns` (`1m30s`, `2m59.56s`, `172.799999ms`). A bare number is taken as
/// seconds, which some OpenAI-compatible servers send.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    seconds(total)
}

/// A non-negative, sane number of seconds (under ~31 years) as a duration; anything else
/// would panic in `Duration::from_secs_f64` or mean a broken header.
fn seconds(secs: f64) -> Option<Duration> {
    (0.0..1e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// A reset that is either a duration or, for a bare integer too large to be one, a Unix
/// timestamp in seconds (> 10^9) or milliseconds (> 10^12).
fn reset_until(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(number) = value.parse::<u64>() {
        let at = if number > 1_000_000_000_000 {
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(number))
        } else if number > 1_000_000_000 {
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(number))
        } else {
            None
        };
        if let Some(at) = at {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    parse_go_duration(value)
}

fn rfc3339_until(value: &str, now: SystemTime) -> Option<Duration> {
    let at: SystemTime = chrono::DateTime::parse_from_rfc3339(value.trim())
        .ok()?
        .into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::{HeaderName, HeaderValue};

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn at(rfc3339: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .into()
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("12ms"), Some(ms(12)));
        assert_eq!(parse_go_duration("1ms"), Some(ms(1)));
        assert_eq!(parse_go_duration("6s"), Some(ms(6000)));
        assert_eq!(parse_go_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_go_duration("2m59.56s"), Some(ms(179_560)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(ms(3_723_000)));
        assert_eq!(parse_go_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(
            parse_go_duration("7.44ms"),
            Some(Duration::from_micros(7440))
        );
        assert_eq!(parse_go_duration("20"), Some(ms(20_000)));
        for bad in ["", "ms", "5x", "1m-3s", "abc", "1..2s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    /// Headers from the recorded OpenAI response (api.openai.com, 2025-11-16).
    #[test]
    fn openai_recorded_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "5000"),
            ("x-ratelimit-limit-tokens", "800000"),
            ("x-ratelimit-remaining-requests", "4999"),
            ("x-ratelimit-remaining-tokens", "799986"),
            ("x-ratelimit-reset-requests", "12ms"),
            ("x-ratelimit-reset-tokens", "1ms"),
        ]);
        let snap = RateLimitSnapshot::from_headers(&h, SystemTime::UNIX_EPOCH);
        assert_eq!(
            snap.requests,
            LimitWindow {
                limit: Some(5000),
                remaining: Some(4999),
                reset: Some(Duration::from_millis(12))
            }
        );
        assert_eq!(
            snap.tokens,
            LimitWindow {
                limit: Some(800_000),
                remaining: Some(799_986),
                reset: Some(Duration::from_millis(1))
            }
        );
        assert!(snap.input_tokens.is_empty() && snap.retry_after.is_none());
    }

    /// Headers from the recorded Groq response (api.groq.com, 2025-11-16).
    #[test]
    fn groq_recorded_headers_with_fractional_milliseconds() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "500000"),
            ("x-ratelimit-limit-tokens", "250000"),
            ("x-ratelimit-remaining-requests", "499999"),
            ("x-ratelimit-remaining-tokens", "249969"),
            ("x-ratelimit-reset-requests", "172.799999ms"),
            ("x-ratelimit-reset-tokens", "7.44ms"),
        ]);
        let snap = RateLimitSnapshot::from_headers(&h, SystemTime::UNIX_EPOCH);
        assert_eq!(snap.requests.remaining, Some(499_999));
        assert_eq!(snap.tokens.limit, Some(250_000));
        let reset = snap.requests.reset.unwrap();
        assert!(
            (reset.as_secs_f64() - 0.172_799_999).abs() < 1e-9,
            "{reset:?}"
        );
        assert_eq!(snap.tokens.reset, Some(Duration::from_micros(7440)));
    }

    /// Headers from the recorded Anthropic response (api.anthropic.com, `date: Thu, 21 Aug
    /// 2025 12:41:00 GMT`).
    #[test]
    fn anthropic_recorded_headers_with_rfc3339_resets() {
        let h = headers(&[
            ("anthropic-ratelimit-input-tokens-limit", "80000"),
            ("anthropic-ratelimit-input-tokens-remaining", "80000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2025-08-21T12:40:59Z",
            ),
            ("anthropic-ratelimit-output-tokens-limit", "16000"),
            ("anthropic-ratelimit-output-tokens-remaining", "16000"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2025-08-21T12:41:00Z",
            ),
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("anthropic-ratelimit-requests-remaining", "999"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
            ("anthropic-ratelimit-tokens-limit", "96000"),
            ("anthropic-ratelimit-tokens-remaining", "96000"),
            ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:59Z"),
        ]);
        let now = at("2025-08-21T12:40:58.500Z");
        let snap = RateLimitSnapshot::from_headers(&h, now);
        assert_eq!(
            snap.requests,
            LimitWindow {
                limit: Some(1000),
                remaining: Some(999),
                reset: Some(Duration::from_millis(500))
            }
        );
        assert_eq!(snap.tokens.limit, Some(96_000));
        assert_eq!(snap.input_tokens.limit, Some(80_000));
        assert_eq!(
            snap.output_tokens,
            LimitWindow {
                limit: Some(16_000),
                remaining: Some(16_000),
                reset: Some(Duration::from_millis(1500))
            }
        );
        // At the response's own `date`, resets already passed are a zero wait, not an error.
        let later = RateLimitSnapshot::from_headers(&h, at("2025-08-21T12:41:00Z"));
        assert_eq!(later.requests.reset, Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_prefers_milliseconds_then_seconds_then_http_date() {
        let now = at("2015-10-21T07:28:00Z");
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "1500"), ("retry-after", "2")]),
                now
            ),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "20")]), now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-5")]), now), None);
        // Absurd values are ignored instead of overflowing `Duration`.
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1e300")]), now),
            None
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")]), now), None);
    }

    #[test]
    fn unsuffixed_gateway_headers_with_epoch_millisecond_reset() {
        let h = headers(&[
            ("x-ratelimit-limit", "20"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1741305600000"),
        ]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_741_305_597_500);
        let snap = RateLimitSnapshot::from_headers(&h, now);
        assert_eq!(
            snap.requests,
            LimitWindow {
                limit: Some(20),
                remaining: Some(0),
                reset: Some(Duration::from_millis(2500))
            }
        );
        let h = headers(&[("x-ratelimit-reset", "1741305600")]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_741_305_590);
        assert_eq!(
            RateLimitSnapshot::from_headers(&h, now).requests.reset,
            Some(Duration::from_secs(10))
        );
        let h = headers(&[("x-ratelimit-reset", "30s")]);
        assert_eq!(
            RateLimitSnapshot::from_headers(&h, now).requests.reset,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn malformed_values_are_skipped_not_fatal() {
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "many"),
            ("x-ratelimit-limit-requests", "10"),
            ("x-ratelimit-reset-tokens", "soon"),
            ("anthropic-ratelimit-tokens-reset", "tomorrow"),
        ]);
        let snap = RateLimitSnapshot::from_headers(&h, SystemTime::UNIX_EPOCH);
        assert_eq!(snap.requests.limit, Some(10));
        assert_eq!(snap.requests.remaining, None);
        assert_eq!(snap.tokens, LimitWindow::default());
        assert!(
            RateLimitSnapshot::from_headers(&HeaderMap::new(), SystemTime::UNIX_EPOCH).is_empty()
        );
    }

    proptest! {
        #[test]
        fn go_duration_parser_never_panics(text in "\\PC{0,24}|[0-9.e]{1,12}(h|m|s|ms|us|ns)?") {
            let parsed = parse_go_duration(&text);
            let _ = retry_after(&headers(&[("retry-after-ms", &text)]), SystemTime::UNIX_EPOCH);
            // Where the text is a whole number with one unit, the value is known.
            let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
            let unit_nanos = match &text[digits..] {
                "h" => Some(3_600_000_000_000u128),
                "m" => Some(60_000_000_000),
                "s" => Some(1_000_000_000),
                "ms" => Some(1_000_000),
                "us" => Some(1_000),
                "ns" => Some(1),
                _ => None,
            };
            if let (Some(unit), true) = (unit_nanos, (1..=9).contains(&digits)) {
                let n: u128 = text[..digits].parse().unwrap();
                let got = parsed.expect("a whole number with a unit parses").as_nanos();
                // Within the f64 arithmetic's rounding (a microsecond on hours).
                let want = n * unit;
                prop_assert!(got.abs_diff(want) <= want / 1_000_000_000 + 1, "{} -> {} ns, want {}", text, got, want);
            }
        }

        #[test]
        fn go_duration_minutes_seconds_roundtrip(m in 0u64..600, cs in 0u64..6000) {
            let text = format!("{m}m{}.{:02}s", cs / 100, cs % 100);
            let got = parse_go_duration(&text).unwrap();
            let want = m as f64 * 60.0 + cs as f64 / 100.0;
            prop_assert!((got.as_secs_f64() - want).abs() < 1e-6);
        }
    }
}
