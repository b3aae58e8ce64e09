//! Delivery to one sink: its wire format, one request under a deadline, and the retry
//! loop with exponential backoff and jitter.
//!
//! Owns: the payload of each sink kind, what counts as delivered, which failures are worth
//! another attempt, and the metrics and log line of each failure. Never: puts a URL or a
//! token in an error, a log line or a metric (reqwest's errors carry the URL, so they are
//! stripped with `without_url`; Telegram's token is in its URL path), or retries a
//! request the receiver refused as malformed (4xx other than 408/429).
//!
//! Wire formats, as their owners document them:
//! - generic webhook: `POST <url>` with `{"source":"orrery","kind","title","text","key",
//!   "time","time_ms","fields"}`; any 2xx is delivered; `token_env` adds
//!   `Authorization: Bearer <token>`.
//! - Slack incoming webhook (<https://api.slack.com/messaging/webhooks>): `POST <url>` with
//!   `{"text": ...}`; Slack answers `200` with the body `ok`, and 4xx with a plain-text
//!   reason (`invalid_payload`, `no_text`, ...).
//! - Discord execute webhook (<https://discord.com/developers/docs/resources/webhook#execute-webhook>):
//!   `POST <url>` with `{"content": ..., "allowed_mentions": {"parse": []}}`; content is
//!   at most 2000 characters (longer text is cut and ends with `…`), and no mention in an
//!   engine message pings anyone; Discord answers `204 No Content` (`200` with the message
//!   when `?wait=true`), and `429` with `retry_after` (seconds) in its JSON body.
//! - Telegram Bot API `sendMessage` (<https://core.telegram.org/bots/api#sendmessage>):
//!   `POST <api_base>/bot<token>/sendMessage` with `{"chat_id", "text"}` (text 1-4096
//!   characters); the answer is `{"ok": true, "result": Message}` or `{"ok": false,
//!   "error_code", "description", "parameters": {"retry_after"}}`.

use std::time::Duration;

use orrery_actors::supervisor::Backoff;
use rand::Rng;
use serde_json::json;

use super::config::{EventKind, ResolvedSink, SinkKind, Target};
use super::notice::Notice;
use super::{METRIC_FAILED, METRIC_RETRIES, METRIC_SENT};

/// Discord's limit of a message's content.
pub const DISCORD_MAX: usize = 2000;
/// Telegram's limit of a message's text.
pub const TELEGRAM_MAX: usize = 4096;
/// Longest part of a receiver's error body kept in an error.
const DETAIL_MAX: usize = 200;

/// Why one delivery attempt failed. Never holds a URL or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the receiver: {0}")]
    Transport(String),
    #[error("the receiver answered HTTP {status}: {detail}")]
    Status {
        status: u16,
        detail: String,
        /// The receiver's `Retry-After` / `retry_after`, when it sent one.
        retry_after: Option<Duration>,
    },
    #[error("the receiver refused the message: {0}")]
    Refused(String),
}

impl DeliveryError {
    /// Whether another attempt may succeed: timeouts, connection failures, 408, 429 and
    /// 5xx. A refusal of the message itself (400, 401, 403, 404, Telegram `ok: false`
    /// other than 429) will not change by sending it again.
    pub fn retriable(&self) -> bool {
        match self {
            DeliveryError::Timeout(_) | DeliveryError::Transport(_) => true,
            DeliveryError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            DeliveryError::Refused(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `text` cut to at most `max` UTF-16 code units (Discord counts those; a char count is
/// never larger, so the cut also holds for a limit in characters), ending with `…` when cut.
pub fn truncate_utf16(text: &str, max: usize) -> String {
    if text.encode_utf16().count() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        // Room for the ellipsis (one unit).
        if used + c.len_utf16() > max - 1 {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// The request body `sink` sends for `notice`.
pub fn payload(sink: &ResolvedSink, notice: &Notice) -> serde_json::Value {
    match (&sink.kind, &sink.target) {
        (SinkKind::Slack, _) => json!({ "text": notice.line() }),
        (SinkKind::Discord, _) => json!({
            "content": truncate_utf16(&notice.line(), DISCORD_MAX),
            "allowed_mentions": { "parse": [] },
        }),
        (SinkKind::Telegram, Target::Telegram { chat_id, .. }) => json!({
            "chat_id": chat_id,
            "text": truncate_utf16(&notice.line(), TELEGRAM_MAX),
        }),
        _ => json!({
            "source": "orrery",
            "kind": notice.kind.label(),
            "title": notice.title,
            "text": notice.text,
            "key": notice.key,
            "time_ms": notice.at_ms,
            "time": chrono::DateTime::from_timestamp_millis(notice.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "fields": notice.fields,
        }),
    }
}

fn endpoint(sink: &ResolvedSink) -> (String, Option<&str>) {
    match &sink.target {
        Target::Url { url, bearer } => (
            url.expose().to_string(),
            bearer.as_ref().map(|b| b.expose()),
        ),
        Target::Telegram {
            api_base, token, ..
        } => (
            format!("{api_base}/bot{}/sendMessage", token.expose()),
            None,
        ),
    }
}

/// A receiver's text cut for an error, with anything that looks like our secrets removed.
fn detail(body: &str, sink: &ResolvedSink) -> String {
    let mut s: String = body.chars().take(DETAIL_MAX).collect();
    let secrets: Vec<&str> = match &sink.target {
        Target::Url { url, bearer } => {
            let mut v = vec![url.expose()];
            v.extend(bearer.as_ref().map(|b| b.expose()));
            v
        }
        Target::Telegram { token, .. } => vec![token.expose()],
    };
    for secret in secrets {
        if !secret.is_empty() {
            s = s.replace(secret, "***");
        }
    }
    s.trim().to_string()
}

/// A reqwest error without its URL (it may hold a token), with its causes (`tcp connect
/// error: Connection refused`), which name no URL.
fn transport(e: reqwest::Error) -> DeliveryError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    DeliveryError::Transport(text)
}

fn retry_after_header(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// One attempt: the request and its answer, all within `timeout`.
pub async fn send_once(
    client: &reqwest::Client,
    sink: &ResolvedSink,
    notice: &Notice,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let (url, bearer) = endpoint(sink);
    let mut request = client.post(url).json(&payload(sink, notice));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let attempt = async {
        let resp = request.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let header_wait = retry_after_header(&resp);
        let body = resp.text().await.map_err(transport)?;
        judge(sink, status, header_wait, &body)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::Timeout(timeout)),
    }
}

/// Whether an answer means delivered.
fn judge(
    sink: &ResolvedSink,
    status: u16,
    header_wait: Option<Duration>,
    body: &str,
) -> Result<(), DeliveryError> {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    // Discord and Telegram put the wait of a 429 in the body (seconds).
    let body_wait = parsed.as_ref().and_then(|v| {
        v.get("retry_after")
            .or_else(|| v.pointer("/parameters/retry_after"))
            .and_then(serde_json::Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    });
    if sink.kind == SinkKind::Telegram && (200..300).contains(&status) {
        // A 2xx from Telegram is delivered only with `ok: true`.
        return match parsed
            .as_ref()
            .and_then(|v| v.get("ok"))
            .and_then(|v| v.as_bool())
        {
            Some(true) => Ok(()),
            _ => Err(DeliveryError::Refused(format!(
                "not a Telegram answer with \"ok\": true: {}",
                detail(body, sink)
            ))),
        };
    }
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("description").or_else(|| v.get("message")))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    Err(DeliveryError::Status {
        status,
        detail: detail(&text, sink),
        retry_after: header_wait.or(body_wait),
    })
}

/// How a notice's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The last attempt's error; `None` when delivered.
    pub error: Option<DeliveryError>,
}

/// The retry settings of every sink.
#[derive(Debug, Clone)]
pub struct RetryPlan {
    pub max_attempts: u32,
    pub timeout: Duration,
    pub backoff: Backoff,
    /// The longest a receiver's `Retry-After` is obeyed.
    pub max_wait: Duration,
}

impl RetryPlan {
    pub fn from_config(c: &super::config::NotificationsConfig) -> Self {
        Self {
            max_attempts: c.max_attempts.max(1),
            timeout: c.timeout,
            backoff: Backoff {
                initial: c.backoff_initial,
                max: c.backoff_max,
                multiplier: 2.0,
                jitter: 0.2,
                seed: None,
            },
            max_wait: c.backoff_max,
        }
    }
}

/// Sends `notice` with retries; counts the outcome (`sent` / `failed`, and each retry) and
/// logs one warning per failed attempt. Waits with tokio's timer, so a test controls it
/// with paused time.
pub async fn deliver(
    client: &reqwest::Client,
    sink: &ResolvedSink,
    notice: &Notice,
    plan: &RetryPlan,
    rng: &mut (impl Rng + Send),
) -> Delivery {
    let labels = [
        ("sink", sink.name.clone()),
        ("kind", notice.kind.label().to_string()),
    ];
    let mut attempt = 0;
    loop {
        attempt += 1;
        match send_once(client, sink, notice, plan.timeout).await {
            Ok(()) => {
                metrics::counter!(METRIC_SENT, &labels).increment(1);
                return Delivery {
                    attempts: attempt,
                    error: None,
                };
            }
            Err(e) => {
                let last = attempt >= plan.max_attempts || !e.retriable();
                tracing::warn!(
                    sink = %sink.name,
                    sink_kind = sink.kind.label(),
                    kind = notice.kind.label(),
                    attempt,
                    max_attempts = plan.max_attempts,
                    error = %e,
                    "{}",
                    if last {
                        "notification not delivered; giving up"
                    } else {
                        "notification attempt failed; retrying"
                    }
                );
                if last {
                    metrics::counter!(METRIC_FAILED, &labels).increment(1);
                    return Delivery {
                        attempts: attempt,
                        error: Some(e),
                    };
                }
                metrics::counter!(METRIC_RETRIES, &labels).increment(1);
                let wait = e
                    .retry_after()
                    .map(|w| w.min(plan.max_wait))
                    .unwrap_or_else(|| plan.backoff.delay(attempt, rng));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Every kind of a sink, for registering its series at 0.
pub fn kinds_of(sink: &ResolvedSink) -> impl Iterator<Item = EventKind> + '_ {
    sink.events
        .iter()
        .copied()
        .chain(std::iter::once(EventKind::Test))
}

#[cfg(test)]
mod tests;
