//! Reading a failed HTTP exchange (status, headers, body) into a classified
//! [`ProviderWireError::Provider`].
//!
//! Owns: status → [`ErrorClass`] policy and the error-body shapes of every provider. Never
//! does: retrying or breaking circuits (the pool does, from the class).
//!
//! Status policy: 400/404/409/413/422 → BadRequest; 401/403 → Auth; 402 (OpenRouter out
//! of credits) → Auth, since retrying cannot help and a human must act; 408 and 504 →
//! Timeout; 429 and 418 → RateLimited with the server's wait; 500/502/503/529 and other
//! 5xx → Unavailable. Two body codes override the status: OpenAI's `insufficient_quota`
//! (a 429 that no waiting fixes) → Auth, and Anthropic's `overloaded_error` → Unavailable.
//! A bad request whose body says the prompt does not fit the model's context window is
//! [`ProviderWireError::ContextTooLong`] (the router then tries a sibling with a larger window):
//! OpenAI's code `context_length_exceeded` and the compatibles' "maximum context length
//! is N tokens", Anthropic's "prompt is too long: N tokens > M maximum", Gemini's "The
//! input token count (N) exceeds the maximum number of tokens allowed (M)".
//!
//! Error bodies understood (the provider's own message is always kept):
//! - OpenAI and compatibles: `{"error":{"message","type","code","param"}}`
//!   (OpenRouter: `{"error":{"code":429,"message","metadata"}}`);
//! - Anthropic: `{"type":"error","error":{"type":"overloaded_error","message"}}`;
//! - Gemini: `{"error":{"code","status","message","details":[{"@type":"…RetryInfo","retryDelay":"12s"}]}}`;
//! - Ollama: `{"error":"model \"x\" not found, try pulling it first"}`;
//! - an HTML page (a proxy, load balancer or captive portal answered instead of the API):
//!   Unavailable whatever the status, except 429 stays RateLimited, with a short excerpt.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::ratelimit::{parse_go_duration, retry_after};
use super::wire::{excerpt, ProviderWireError};
use super::ProviderKind;
use crate::resilience::ErrorClass;

const MESSAGE_CHARS: usize = 400;

/// Classify a non-2xx response. `now` resolves an HTTP-date `retry-after`.
pub fn classify_http_error(
    provider: ProviderKind,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> ProviderWireError {
    let body = &body[..body.len().min(super::MAX_BODY_BYTES)];
    let text = String::from_utf8_lossy(body);
    let header_wait = retry_after(headers, now);

    if looks_like_html(headers, &text) {
        let class = match status {
            429 | 418 => ErrorClass::RateLimited {
                retry_after: header_wait,
            },
            408 | 504 => ErrorClass::Timeout,
            _ => ErrorClass::Unavailable,
        };
        return ProviderWireError::Provider {
            provider,
            class,
            status: Some(status),
            message: format!(
                "an HTML page instead of an API answer (a proxy or load balancer in the way?): {}",
                html_excerpt(&text)
            ),
        };
    }

    let detail = ErrorDetail::from_body(&text);
    let mut class = class_for_status(status, header_wait.or(detail.retry_delay));
    match detail.code.as_deref() {
        Some("insufficient_quota") => class = ErrorClass::Auth,
        Some("overloaded_error") => class = ErrorClass::Unavailable,
        _ => {}
    }
    let too_long = class == ErrorClass::BadRequest && says_context_overflow(&detail);
    let message = match (detail.message, detail.code) {
        (Some(message), Some(code)) => format!("{code}: {message}"),
        (Some(message), None) => message,
        (None, Some(code)) => code,
        (None, None) if text.trim().is_empty() => format!("HTTP {status} with an empty body"),
        (None, None) => text.to_string(),
    };
    if too_long {
        return ProviderWireError::ContextTooLong {
            provider,
            status,
            message: excerpt(&message, MESSAGE_CHARS),
        };
    }
    ProviderWireError::Provider {
        provider,
        class,
        status: Some(status),
        message: excerpt(&message, MESSAGE_CHARS),
    }
}

/// Whether an error body says the request does not fit the model's context window, in
/// any provider's words (see the module doc).
fn says_context_overflow(detail: &ErrorDetail) -> bool {
    if detail.code.as_deref() == Some("context_length_exceeded") {
        return true;
    }
    let Some(message) = &detail.message else {
        return false;
    };
    let message = message.to_ascii_lowercase();
    message.contains("maximum context length")
        || message.starts_with("prompt is too long")
        || (message.contains("input token count")
            && message.contains("exceeds the maximum number of tokens"))
}

/// The class of an HTTP status alone.
pub fn class_for_status(status: u16, retry_after: Option<Duration>) -> ErrorClass {
    match status {
        401..=403 => ErrorClass::Auth,
        408 | 504 => ErrorClass::Timeout,
        418 | 429 => ErrorClass::RateLimited { retry_after },
        500..=599 => ErrorClass::Unavailable,
        _ => ErrorClass::BadRequest,
    }
}

/// The class of a failure that never produced a status (connect, TLS, read, timeout).
pub fn classify_transport_error(err: &reqwest::Error) -> ErrorClass {
    if err.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Unavailable
    }
}

/// An error object found in a body (also used for errors inside 200 streams).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrorDetail {
    pub message: Option<String>,
    /// `code`, `type` or `status`, most specific first (`overloaded_error`,
    /// `insufficient_quota`, `RESOURCE_EXHAUSTED`).
    pub code: Option<String>,
    /// Gemini's `RetryInfo.retryDelay`.
    pub retry_delay: Option<Duration>,
    /// A numeric HTTP-like code inside the body (Gemini, OpenRouter).
    pub status: Option<u16>,
}

impl ErrorDetail {
    pub fn from_body(text: &str) -> Self {
        match serde_json::from_str::<Value>(text.trim()) {
            Ok(value) => Self::from_value(&value),
            Err(_) => Self::default(),
        }
    }

    pub fn from_value(value: &Value) -> Self {
        let error = match value.get("error") {
            Some(Value::String(message)) => {
                return Self {
                    message: Some(message.clone()),
                    ..Self::default()
                }
            }
            Some(error @ Value::Object(_)) => error,
            _ => return Self::default(),
        };
        let string = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
        let code = string("code")
            .or_else(|| string("type").filter(|t| t != "error"))
            .or_else(|| string("status"));
        let retry_delay = error
            .get("details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| {
                d.get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(parse_go_duration)
            });
        let status = error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        Self {
            message: string("message"),
            code,
            retry_delay,
            status,
        }
    }

    /// The class of an error reported inside a 200 stream, from its type or code.
    pub fn stream_class(&self) -> ErrorClass {
        let by_code = match self.code.as_deref() {
            Some(
                "overloaded_error" | "api_error" | "server_error" | "UNAVAILABLE" | "INTERNAL",
            ) => Some(ErrorClass::Unavailable),
            Some("rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED") => {
                Some(ErrorClass::RateLimited {
                    retry_after: self.retry_delay,
                })
            }
            Some(
                "authentication_error"
                | "permission_error"
                | "insufficient_quota"
                | "PERMISSION_DENIED"
                | "UNAUTHENTICATED",
            ) => Some(ErrorClass::Auth),
            Some(
                "invalid_request_error"
                | "not_found_error"
                | "request_too_large"
                | "INVALID_ARGUMENT"
                | "NOT_FOUND",
            ) => Some(ErrorClass::BadRequest),
            Some("timeout_error" | "DEADLINE_EXCEEDED") => Some(ErrorClass::Timeout),
            _ => None,
        };
        by_code
            .or_else(|| self.status.map(|s| class_for_status(s, self.retry_delay)))
            .unwrap_or(ErrorClass::Unavailable)
    }

    pub fn describe(&self) -> String {
        let message = match (&self.message, &self.code) {
            (Some(message), Some(code)) => format!("{code}: {message}"),
            (Some(message), None) => message.clone(),
            (None, Some(code)) => code.clone(),
            (None, None) => "an error without a message".to_string(),
        };
        excerpt(&message, MESSAGE_CHARS)
    }
}

fn looks_like_html(headers: &HeaderMap, text: &str) -> bool {
    let content_type_html = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("text/html"));
    // Byte slicing could split a character; 64 chars is plenty to see the opening tag.
    let lower: String = text
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    content_type_html
        || lower.starts_with("<!doctype html")
        || lower.starts_with("<html")
        || lower.starts_with("<head")
        || lower.starts_with("<body")
        || lower.starts_with("<h1")
}

/// The page's `<title>` if it has one, else its text with tags removed, shortened.
pub(crate) fn html_excerpt(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>")) {
        let start = start + "<title>".len();
        if start <= end && html.is_char_boundary(start) && html.is_char_boundary(end) {
            let title = excerpt(&html[start..end], 160);
            if !title.is_empty() {
                return title;
            }
        }
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
        if text.len() > 2000 {
            break;
        }
    }
    excerpt(&text, 160)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn classify(
        provider: ProviderKind,
        status: u16,
        h: &[(&str, &str)],
        body: &str,
    ) -> (ErrorClass, String) {
        match classify_http_error(
            provider,
            status,
            &headers(h),
            body.as_bytes(),
            SystemTime::UNIX_EPOCH,
        ) {
            ProviderWireError::Provider {
                class,
                message,
                status: Some(s),
                ..
            } if s == status => (class, message),
            other => panic!("not a provider error: {other:?}"),
        }
    }

    #[test]
    fn openai_401_keeps_the_message_and_is_auth() {
        // Body shape of OpenAI's documented invalid-key error.
        let body = r#"{
    "error": {
        "message": "Incorrect API key provided: sk-abc. You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": null,
        "code": "invalid_api_key"
    }
}"#;
        let (class, message) = classify(ProviderKind::OpenAi, 401, &[], body);
        assert_eq!(class, ErrorClass::Auth);
        assert!(
            message.starts_with("invalid_api_key: Incorrect API key provided"),
            "{message}"
        );
    }

    #[test]
    fn a_prompt_over_the_context_window_is_told_apart_from_other_bad_requests() {
        // Each provider's documented body for a prompt longer than the model takes.
        let cases = [
            (
                ProviderKind::OpenAi,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 8227 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                "maximum context length is 8192",
            ),
            (
                ProviderKind::DeepSeek,
                r#"{"error":{"message":"This model's maximum context length is 65536 tokens. However, you requested 70000 tokens (69488 in the messages, 512 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}"#,
                "65536",
            ),
            (
                ProviderKind::Anthropic,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"},"request_id":"req_011CVQe1dLrGNMJyE1ghG1av"}"#,
                "208310 tokens > 200000 maximum",
            ),
            (
                ProviderKind::Gemini,
                r#"{"error":{"code":400,"message":"The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).","errors":[{"message":"The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).","domain":"global","reason":"badRequest"}],"status":"INVALID_ARGUMENT"}}"#,
                "1048576",
            ),
        ];
        for (provider, body, part) in cases {
            match classify_http_error(
                provider,
                400,
                &headers(&[]),
                body.as_bytes(),
                SystemTime::UNIX_EPOCH,
            ) {
                ProviderWireError::ContextTooLong {
                    provider: p,
                    status: 400,
                    message,
                } => {
                    assert_eq!(p, provider);
                    assert!(message.contains(part), "{provider}: {message}");
                }
                other => panic!("{provider}: {other:?}"),
            }
        }
        // Other bad requests stay what they were.
        let (class, message) = classify(
            ProviderKind::Anthropic,
            400,
            &[],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
        );
        assert_eq!(class, ErrorClass::BadRequest);
        assert!(message.contains("max_tokens"), "{message}");
        let too_long = classify_http_error(
            ProviderKind::OpenAi,
            400,
            &headers(&[]),
            cases[0].1.as_bytes(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(too_long.class(), ErrorClass::BadRequest);
        let e = too_long.into_model_error("gpt");
        assert_eq!(e.label(), "context_length");
        assert!(e.to_string().contains("deployment `gpt`"), "{e}");
    }

    #[test]
    fn openai_429_waits_for_retry_after_ms() {
        let body = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2.5s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let (class, message) = classify(
            ProviderKind::OpenAi,
            429,
            &[("retry-after-ms", "2500"), ("retry-after", "3")],
            body,
        );
        assert_eq!(
            class,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_millis(2500))
            }
        );
        assert!(message.contains("Rate limit reached for gpt-4o"));
    }

    #[test]
    fn openai_insufficient_quota_is_not_a_rate_limit() {
        let body = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(
            classify(ProviderKind::OpenAi, 429, &[], body).0,
            ErrorClass::Auth
        );
    }

    #[test]
    fn anthropic_529_overloaded_and_400_invalid_request() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify(ProviderKind::Anthropic, 529, &[], overloaded),
            (
                ErrorClass::Unavailable,
                "overloaded_error: Overloaded".to_string()
            )
        );
        let invalid = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011"}"#;
        assert_eq!(
            classify(ProviderKind::Anthropic, 400, &[], invalid),
            (
                ErrorClass::BadRequest,
                "invalid_request_error: max_tokens: Field required".to_string()
            )
        );
    }

    #[test]
    fn gemini_429_takes_the_retry_delay_from_the_body() {
        let body = r#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "12s"
      }
    ]
  }
}"#;
        let (class, message) = classify(ProviderKind::Gemini, 429, &[], body);
        assert_eq!(
            class,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(12))
            }
        );
        assert!(
            message.starts_with("RESOURCE_EXHAUSTED: You exceeded"),
            "{message}"
        );
    }

    #[test]
    fn gemini_400_bad_key_is_bad_request_with_message() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        let (class, message) = classify(ProviderKind::Gemini, 400, &[], body);
        assert_eq!(class, ErrorClass::BadRequest);
        assert!(message.contains("API key not valid"));
    }

    #[test]
    fn ollama_404_string_error() {
        let body = r#"{"error":"model \"llama3.2\" not found, try pulling it first"}"#;
        assert_eq!(
            classify(ProviderKind::Ollama, 404, &[], body),
            (
                ErrorClass::BadRequest,
                "model \"llama3.2\" not found, try pulling it first".to_string()
            )
        );
    }

    #[test]
    fn status_policy() {
        let class = |s| classify(ProviderKind::Groq, s, &[], "").0;
        assert_eq!(class(400), ErrorClass::BadRequest);
        assert_eq!(class(404), ErrorClass::BadRequest);
        assert_eq!(class(422), ErrorClass::BadRequest);
        assert_eq!(class(401), ErrorClass::Auth);
        assert_eq!(class(403), ErrorClass::Auth);
        assert_eq!(class(408), ErrorClass::Timeout);
        assert_eq!(class(429), ErrorClass::RateLimited { retry_after: None });
        for s in [500, 502, 503, 529] {
            assert_eq!(class(s), ErrorClass::Unavailable, "{s}");
        }
        assert_eq!(
            classify(ProviderKind::Groq, 503, &[], "").1,
            "HTTP 503 with an empty body"
        );
    }

    #[test]
    fn an_html_page_from_a_proxy_is_unavailable_with_its_title() {
        let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>";
        let (class, message) = classify(
            ProviderKind::OpenRouter,
            502,
            &[("content-type", "text/html")],
            page,
        );
        assert_eq!(class, ErrorClass::Unavailable);
        assert!(message.ends_with("502 Bad Gateway"), "{message}");
        // Even a 403 HTML page is the proxy's, not a verdict on our key.
        let (class, _) = classify(
            ProviderKind::OpenAi,
            403,
            &[],
            "<html><body>Access denied by firewall</body></html>",
        );
        assert_eq!(class, ErrorClass::Unavailable);
    }

    #[test]
    fn multibyte_text_at_the_start_of_a_body_is_read_safely() {
        let body = "ééééééééééééééééééééééééééééééééé<html> not json";
        let (class, message) = classify(ProviderKind::Gemini, 500, &[], body);
        assert_eq!(class, ErrorClass::Unavailable);
        assert!(message.starts_with("éééé"), "{message}");
    }

    #[test]
    fn a_plain_text_body_is_kept_shortened() {
        let long = "upstream connect error or disconnect/reset before headers. ".repeat(30);
        let (class, message) = classify(ProviderKind::DeepSeek, 503, &[], &long);
        assert_eq!(class, ErrorClass::Unavailable);
        assert!(message.starts_with("upstream connect error"));
        assert!(message.chars().count() <= MESSAGE_CHARS + 1);
    }

    proptest! {
        #[test]
        fn any_body_and_status_classify_without_panicking(
            status in 100u16..600,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let err = classify_http_error(ProviderKind::OpenAi, status, &HeaderMap::new(), &body, SystemTime::UNIX_EPOCH);
            let is_provider = matches!(err, ProviderWireError::Provider { .. });
            prop_assert!(is_provider);
        }
    }
}
