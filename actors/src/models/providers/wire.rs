//! The shapes every provider wire format shares: the secret API key, the request a pool
//! sends ([`WireRequest`]), the answer it gets back ([`Reply`]), the incremental events of
//! a streamed answer ([`StreamEvent`]) and the one error type ([`ProviderWireError`]).
//!
//! Owns: these types and their conversions into the router's contract types
//! ([`ModelError`], [`ErrorClass`]). Never does: I/O, retries, or choosing a provider.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::models::types::{ModelError, ModelResponse, Usage};
use crate::resilience::ErrorClass;

use super::ProviderKind;

/// Largest body (non-streamed) or whole stream (streamed) a provider may send us. A chat
/// answer bounded by `max_tokens` is a few hundred KiB at most; anything near this size is
/// a misrouted download or a proxy gone wrong, and reading it would only cost memory.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A provider API key. `Debug` and `Display` print `***` so a key never reaches a log line,
/// an error message or a panic message; only [`WireRequest::header_map`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for building the auth header. Keep the result out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

impl HttpMethod {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
        }
    }
}

/// How the API key travels.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum AuthHeader {
    /// `Authorization: Bearer <key>` (OpenAI and compatibles, Ollama behind a proxy).
    Bearer(ApiKey),
    /// The key alone in a named header (`x-api-key`, `x-goog-api-key`).
    Raw(&'static str, ApiKey),
}

/// One HTTP request, fully described, ready for a reqwest client. Plain headers are public
/// and never secret; the auth header is kept apart and only materialised by
/// [`WireRequest::header_map`], marked sensitive.
#[derive(Clone, PartialEq)]
pub struct WireRequest {
    pub method: HttpMethod,
    /// Full URL: base URL (trailing `/` trimmed) + path (+ query).
    pub url: String,
    /// Non-secret headers, lowercase names.
    pub headers: Vec<(&'static str, String)>,
    pub(crate) auth: Option<AuthHeader>,
    /// JSON body; `None` for GET.
    pub body: Option<Value>,
    /// Whether the answer is a stream (SSE or NDJSON) to be fed to a [`StreamParser`]
    /// rather than one body for a `parse_*_response` function.
    pub stream: bool,
}

impl WireRequest {
    pub(crate) fn new(method: HttpMethod, url: String) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            auth: None,
            body: None,
            stream: false,
        }
    }

    /// The name of the header that carries the key, if any (for tests and diagnostics).
    pub fn auth_header_name(&self) -> Option<&'static str> {
        match &self.auth {
            Some(AuthHeader::Bearer(_)) => Some("authorization"),
            Some(AuthHeader::Raw(name, _)) => Some(name),
            None => None,
        }
    }

    /// Every header, the auth header included and marked sensitive (hyper then keeps it out
    /// of its own debug output and HPACK tables).
    pub fn header_map(&self) -> Result<HeaderMap, ProviderWireError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ProviderWireError::InvalidHeader {
                    name: (*name).to_string(),
                    reason: "not a valid HTTP header name".into(),
                }
            })?;
            let header_value = HeaderValue::from_str(value).map_err(|_| ProviderWireError::InvalidHeader {
                name: (*name).to_string(),
                reason: "the value holds characters not allowed in an HTTP header (newline or control character)".into(),
            })?;
            map.insert(header_name, header_value);
        }
        if let Some(auth) = &self.auth {
            let (name, raw) = match auth {
                AuthHeader::Bearer(key) => ("authorization", format!("Bearer {}", key.expose())),
                AuthHeader::Raw(name, key) => (*name, key.expose().to_string()),
            };
            let mut value = HeaderValue::from_str(&raw).map_err(|_| ProviderWireError::InvalidHeader {
                name: name.to_string(),
                reason: "the API key holds characters not allowed in an HTTP header; check the environment variable for a stray newline or quote".into(),
            })?;
            value.set_sensitive(true);
            // Invariant: auth header names are lowercase literals of this module.
            map.insert(HeaderName::from_static(name), value);
        }
        Ok(map)
    }
}

impl fmt::Debug for WireRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("auth", &self.auth_header_name().map(|name| (name, "***")))
            .field("body", &self.body)
            .field("stream", &self.stream)
            .finish()
    }
}

/// Why generation stopped, normalised across providers. The provider's own word is kept
/// in [`FinishReason::Other`] when it has no common meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end or a stop sequence (`stop`, `end_turn`, `stop_sequence`, `STOP`).
    Stop,
    /// The token limit cut the answer (`length`, `max_tokens`, `MAX_TOKENS`): the text is
    /// incomplete, a JSON answer probably unparseable.
    Length,
    /// The model asked for tools (`tool_calls`, `tool_use`).
    ToolCalls,
    /// The provider filtered the answer (`content_filter`, `refusal`, `SAFETY`, ...).
    ContentFilter,
    Other(String),
}

impl FinishReason {
    /// The OpenAI-style label, which is what `ModelResponse::finish_reason` carries.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(raw) => raw,
        }
    }
}

/// A tool call the model asked for. `arguments` is the JSON text exactly as accumulated
/// from the provider (OpenAI and Anthropic stream it in fragments); it is not validated here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    pub id: Option<String>,
    pub name: String,
    pub arguments: String,
}

/// One complete answer, whichever provider and whether streamed or not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    /// The visible answer, `<think>` blocks removed.
    pub text: String,
    /// Reasoning the provider returned apart from the answer (DeepSeek `reasoning_content`,
    /// `<think>` blocks, Anthropic `thinking`, Gemini thought parts, Ollama `thinking`).
    pub reasoning: Option<String>,
    pub usage: Usage,
    pub finish_reason: Option<FinishReason>,
    pub tool_calls: Vec<ToolCall>,
    /// The model the provider says answered (may be more specific than the one asked).
    pub model: Option<String>,
}

impl Reply {
    /// The router's answer for this reply. `model` is what the response should name (the
    /// deployment's configured model id); the provider's own `Reply::model` may be more
    /// specific and is for logs.
    pub fn into_response(
        self,
        deployment: &str,
        provider: ProviderKind,
        model: &str,
        latency: std::time::Duration,
    ) -> ModelResponse {
        ModelResponse {
            text: self.text,
            deployment: deployment.to_string(),
            provider: provider.label().to_string(),
            model: model.to_string(),
            usage: self.usage,
            latency,
            finish_reason: self.finish_reason.map(|reason| reason.as_str().to_string()),
            cached: false,
            attempts: Vec::new(),
            cost_usd: None,
        }
    }
}

/// What one fed chunk of a stream produced. Errors are not events: a provider error or an
/// unreadable chunk ends the stream and comes back as `Err` from `feed`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    ReasoningDelta(String),
    /// A fragment of tool call `index`: `id`/`name` arrive once, `arguments` in pieces.
    ToolCallDelta {
        index: usize,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// Token counts so far (providers that report usage more than once report totals).
    Usage(Usage),
    Finish(FinishReason),
}

/// An incremental parser of one streamed answer. Feed it the body's chunks as they arrive,
/// cut anywhere (mid-line, mid-UTF-8 character, between `\r` and `\n`), then call `finish`
/// once the body has ended.
pub trait StreamParser {
    /// Parse what this chunk completes. After the first `Err`, the parser is spent: further
    /// calls return the same error.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, ProviderWireError>;

    /// The body has ended: the whole answer, or [`ProviderWireError::Truncated`] if the provider's
    /// terminal event never came.
    fn finish(&mut self) -> Result<Reply, ProviderWireError>;
}

/// Everything that can go wrong between a provider's bytes and a [`Reply`].
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderWireError {
    /// The provider answered with an error: an HTTP error status, an error body, or an
    /// error event inside a 200 stream.
    #[error("{provider} reported an error ({}{}): {message}", class.label(), status.map(|s| format!(", HTTP {s}")).unwrap_or_default())]
    Provider {
        provider: ProviderKind,
        class: ErrorClass,
        status: Option<u16>,
        /// The provider's own message (and error type/code when it gives one), trimmed.
        message: String,
    },
    /// The request does not fit the model's context window (an error status whose body
    /// says so; see `classify`).
    #[error("{provider} cannot take a request this long (HTTP {status}): {message}")]
    ContextTooLong {
        provider: ProviderKind,
        status: u16,
        message: String,
    },
    /// The body is not what this provider's format promises.
    #[error("{provider} sent {what} we cannot read: {detail}; check that the deployment's provider kind and base URL match the server")]
    Malformed {
        provider: ProviderKind,
        what: &'static str,
        detail: String,
    },
    /// The stream ended before its terminal event.
    #[error("{provider} stream ended before {expected}: the connection was cut or a proxy truncated the answer; retry, preferably on another deployment")]
    Truncated {
        provider: ProviderKind,
        expected: &'static str,
    },
    #[error("{provider} sent more than {limit} bytes, far more than any answer; refusing to read on (is the base URL pointing at the right server?)")]
    BodyTooLarge {
        provider: ProviderKind,
        limit: usize,
    },
    #[error("Ollama does not have model `{model}` (installed: {installed}); run `ollama pull {model}` on the Ollama host")]
    ModelNotPulled { model: String, installed: String },
    #[error("{provider} needs an API key and the deployment has none; set {variable} (or the key alias the config names)")]
    MissingApiKey {
        provider: ProviderKind,
        variable: &'static str,
    },
    #[error("cannot build HTTP header `{name}`: {reason}")]
    InvalidHeader { name: String, reason: String },
}

impl ProviderWireError {
    /// The stream's last piece, which came without its terminator, failed with `self`: if
    /// it could not be parsed it was cut off, so the stream is `truncated`.
    pub fn or_truncated(self, truncated: &ProviderWireError) -> ProviderWireError {
        if matches!(self, ProviderWireError::Malformed { .. }) {
            truncated.clone()
        } else {
            self
        }
    }

    /// How retrying and circuit breaking should treat this failure. An unreadable or cut
    /// answer is the target's problem (Unavailable), not ours.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderWireError::Provider { class, .. } => *class,
            ProviderWireError::Malformed { .. }
            | ProviderWireError::Truncated { .. }
            | ProviderWireError::BodyTooLarge { .. }
            | ProviderWireError::ModelNotPulled { .. } => ErrorClass::Unavailable,
            ProviderWireError::MissingApiKey { .. } => ErrorClass::Auth,
            ProviderWireError::InvalidHeader { .. } | ProviderWireError::ContextTooLong { .. } => {
                ErrorClass::BadRequest
            }
        }
    }

    /// The router's error for this failure on `deployment`.
    pub fn into_model_error(self, deployment: &str) -> ModelError {
        match self {
            ProviderWireError::Provider {
                provider,
                class,
                status,
                message,
            } => ModelError::Provider {
                deployment: deployment.to_string(),
                class,
                // The router's message already names the class; say who and which status.
                message: match status {
                    Some(status) => format!("{provider} HTTP {status}: {message}"),
                    None => format!("{provider}: {message}"),
                },
            },
            ProviderWireError::ContextTooLong {
                provider,
                status,
                message,
            } => ModelError::ContextTooLong {
                deployment: deployment.to_string(),
                message: format!("{provider} HTTP {status}: {message}"),
            },
            ProviderWireError::Malformed { .. }
            | ProviderWireError::Truncated { .. }
            | ProviderWireError::BodyTooLarge { .. } => ModelError::Malformed {
                deployment: deployment.to_string(),
                reason: self.to_string(),
            },
            ProviderWireError::ModelNotPulled { .. }
            | ProviderWireError::MissingApiKey { .. }
            | ProviderWireError::InvalidHeader { .. } => ModelError::Provider {
                deployment: deployment.to_string(),
                class: self.class(),
                message: self.to_string(),
            },
        }
    }
}

/// Refuse a body longer than [`MAX_BODY_BYTES`] before parsing it. A pool also checks the
/// `content-length` header with this before reading.
pub fn guard_body_len(provider: ProviderKind, len: usize) -> Result<(), ProviderWireError> {
    if len > MAX_BODY_BYTES {
        return Err(ProviderWireError::BodyTooLarge {
            provider,
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Collects a whole (non-streamed) body chunk by chunk, refusing to hold more than
/// [`MAX_BODY_BYTES`], so a pool never buffers an unbounded body even when the server sent
/// no `content-length` (chunked transfer).
#[derive(Debug)]
pub struct BodyCollector {
    provider: ProviderKind,
    bytes: Vec<u8>,
}

impl BodyCollector {
    /// Refuses at once when the announced `content-length` is already over the guard.
    pub fn new(
        provider: ProviderKind,
        content_length: Option<u64>,
    ) -> Result<Self, ProviderWireError> {
        let announced = content_length.unwrap_or(0);
        let announced = usize::try_from(announced).unwrap_or(usize::MAX);
        guard_body_len(provider, announced)?;
        Ok(Self {
            provider,
            bytes: Vec::with_capacity(announced.min(64 * 1024)),
        })
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ProviderWireError> {
        guard_body_len(self.provider, self.bytes.len().saturating_add(chunk.len()))?;
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A short, single-line excerpt of provider text for error messages: bodies can be long
/// and multi-line, and a log line should stay a line.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max_chars {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(max_chars).collect();
    cut.push('…');
    cut
}

/// The error for a streamed body that is not a stream: an HTML page (a proxy or captive
/// portal answered 200) is the target's unavailability; anything else is unreadable.
pub(crate) fn not_a_stream(provider: ProviderKind, first_line: &str) -> ProviderWireError {
    if first_line.trim_start().starts_with('<') {
        ProviderWireError::Provider {
            provider,
            class: ErrorClass::Unavailable,
            status: None,
            message: format!(
                "an HTML page instead of an answer stream (a proxy or captive portal in the way?): {}",
                super::classify::html_excerpt(first_line)
            ),
        }
    } else {
        ProviderWireError::Malformed {
            provider,
            what: "a body that is not an event stream",
            detail: format!("it starts `{}`", excerpt(first_line, 120)),
        }
    }
}

/// The `messages` array of a chat request: the system prompt (when there is one), then the
/// user prompt. OpenAI's chat completions (and every compatible API) and Ollama's
/// `/api/chat` share this shape.
pub(crate) fn chat_messages(request: &crate::models::types::ModelRequest) -> Value {
    let mut messages = Vec::new();
    if !request.system.trim().is_empty() {
        messages.push(serde_json::json!({"role": "system", "content": request.system}));
    }
    messages.push(serde_json::json!({"role": "user", "content": request.prompt}));
    Value::Array(messages)
}

/// Parse one unit of a stream (an SSE event's data, an NDJSON line) into `T`; an unreadable
/// unit is [`ProviderWireError::Malformed`] naming `what` it was, with an excerpt.
pub(crate) fn parse_json_unit<T: serde::de::DeserializeOwned>(
    provider: ProviderKind,
    what: &'static str,
    text: &str,
) -> Result<T, ProviderWireError> {
    serde_json::from_str(text).map_err(|err| ProviderWireError::Malformed {
        provider,
        what,
        detail: format!("{err} in `{}`", excerpt(text, 120)),
    })
}

/// Parse a whole JSON body into `T`, with the size guard and a typed error.
pub(crate) fn parse_json_body<T: serde::de::DeserializeOwned>(
    provider: ProviderKind,
    what: &'static str,
    body: &[u8],
) -> Result<T, ProviderWireError> {
    guard_body_len(provider, body.len())?;
    serde_json::from_slice(body).map_err(|err| ProviderWireError::Malformed {
        provider,
        what,
        detail: format!(
            "{err} (body starts: {})",
            excerpt(&String::from_utf8_lossy(&body[..body.len().min(200)]), 120)
        ),
    })
}

/// A temperature as JSON. `f32 → f64` widening would send `0.20000000298023224` for 0.2;
/// going through the shortest decimal form sends what the config said.
pub(crate) fn temperature_json(temperature: f32) -> Value {
    temperature
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(|t| serde_json::Number::from_f64(t).map(Value::Number))
        .unwrap_or(Value::Null)
}

/// Accumulates a streamed answer: text (with `<think>` splitting where the format needs
/// it), reasoning, tool calls by index, the last usage and finish reason.
#[derive(Debug, Default)]
pub struct ReplyBuilder {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: std::collections::BTreeMap<usize, ToolCall>,
    pub usage: Usage,
    pub finish_reason: Option<FinishReason>,
    pub model: Option<String>,
}

impl ReplyBuilder {
    pub fn apply(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta(text) => self.text.push_str(text),
            StreamEvent::ReasoningDelta(text) => self.reasoning.push_str(text),
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                let call = self.tool_calls.entry(*index).or_default();
                if let Some(id) = id {
                    call.id = Some(id.clone());
                }
                if let Some(name) = name {
                    call.name.push_str(name);
                }
                call.arguments.push_str(arguments);
            }
            StreamEvent::Usage(usage) => self.usage = *usage,
            StreamEvent::Finish(reason) => self.finish_reason = Some(reason.clone()),
        }
    }

    pub fn build(&self) -> Reply {
        Reply {
            text: self.text.clone(),
            reasoning: (!self.reasoning.is_empty()).then(|| self.reasoning.clone()),
            usage: self.usage,
            finish_reason: self.finish_reason.clone(),
            tool_calls: self.tool_calls.values().cloned().collect(),
            model: self.model.clone(),
        }
    }
}
