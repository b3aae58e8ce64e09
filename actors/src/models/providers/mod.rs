//! Provider wire formats: for every model provider, the exact bytes of a request and the
//! exact reading of its answers, as pure functions and incremental parsers.
//!
//! Owns: request building (URL, headers, JSON body) from a [`ModelRequest`], parsing of
//! whole responses and of streams (SSE, NDJSON) into one [`Reply`], reading rate-limit
//! headers ([`RateLimitSnapshot`]) and classifying failures ([`classify_http_error`]).
//! Never does: I/O. No HTTP client, no clock, no retries live here; the pool actor sends
//! a [`WireRequest`] with its own reqwest client, feeds the body's chunks to a
//! [`StreamParser`] and decides what to do with the classified errors.
//!
//! Formats, one module each:
//! - [`openai`]: OpenAI chat completions, and the OpenAI-compatible deployments Groq,
//!   DeepSeek, xAI and OpenRouter (their defaults and quirks are in [`ProviderKind`] and
//!   the module doc);
//! - [`anthropic`]: Anthropic Messages;
//! - [`gemini`]: Google Gemini `generateContent` / `streamGenerateContent?alt=sse`;
//! - [`ollama`]: Ollama `/api/chat`, `/api/generate`, `/api/tags`.
//!
//! The structured [`ModelRequest::context`] is not sent: it exists for rule-based
//! deployments; language models read the facts from the prompt the agent wrote.
//!
//! A pool's loop, in short (`kind = target.provider`, one reqwest client per pool):
//! ```text
//! let wire = providers::build_request(&target, &request, true)?;
//! let mut http = client.request(wire.method.as_reqwest(), &wire.url).headers(wire.header_map()?);
//! if let Some(body) = &wire.body { http = http.json(body); }
//! let resp = http.send().await.map_err(|e| classify_transport_error(&e))?;
//! let rate = RateLimitSnapshot::from_headers(resp.headers(), SystemTime::now());
//! let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
//! let mut chunks = resp.bytes_stream();
//! if !(200..300).contains(&status) {
//!     let mut body = BodyCollector::new(kind, None)?;            // or read a prefix only
//!     while let Some(c) = chunks.next().await { body.push(&c?)?; }
//!     return Err(classify_http_error(kind, status, &headers, &body.into_bytes(), SystemTime::now()));
//! }
//! let mut parser = providers::stream_parser(kind);
//! while let Some(c) = chunks.next().await {                     // each under the deadline
//!     for event in parser.feed(&c?)? { /* optional: forward TextDelta */ }
//! }
//! let reply = parser.finish()?;                                 // Truncated if cut short
//! let response = reply.into_response(&deployment, kind, &target.model, started.elapsed());
//! ```
//! Any [`ProviderWireError`] becomes the router's error with [`ProviderWireError::into_model_error`]; its
//! [`ProviderWireError::class`] drives retry and the circuit breaker.

pub mod anthropic;
mod classify;
mod framed;
pub mod gemini;
mod lines;
pub mod ollama;
pub mod openai;
mod ratelimit;
mod think;
mod wire;

use std::fmt;
use std::str::FromStr;

pub use classify::{class_for_status, classify_http_error, classify_transport_error};
pub use ratelimit::{parse_go_duration, retry_after, LimitWindow, RateLimitSnapshot};
pub use wire::{
    guard_body_len, ApiKey, BodyCollector, FinishReason, HttpMethod, ProviderWireError, Reply,
    StreamEvent, StreamParser, ToolCall, WireRequest, MAX_BODY_BYTES,
};

use crate::models::types::ModelRequest;

/// Which wire format and which service defaults a deployment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
    Ollama,
    Groq,
    DeepSeek,
    Xai,
    OpenRouter,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 8] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Ollama,
        ProviderKind::Groq,
        ProviderKind::DeepSeek,
        ProviderKind::Xai,
        ProviderKind::OpenRouter,
    ];

    /// The config and metrics label.
    pub fn label(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Groq => "groq",
            ProviderKind::DeepSeek => "deepseek",
            ProviderKind::Xai => "xai",
            ProviderKind::OpenRouter => "openrouter",
        }
    }

    /// The public endpoint's base URL; request paths are appended to it.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            ProviderKind::Ollama => "http://localhost:11434",
            ProviderKind::Groq => "https://api.groq.com/openai/v1",
            ProviderKind::DeepSeek => "https://api.deepseek.com",
            ProviderKind::Xai => "https://api.x.ai/v1",
            ProviderKind::OpenRouter => "https://openrouter.ai/api/v1",
        }
    }

    /// The provider's usual environment variable for its key (config may add aliases).
    pub fn key_env_var(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::Gemini => Some("GEMINI_API_KEY"),
            ProviderKind::Ollama => None,
            ProviderKind::Groq => Some("GROQ_API_KEY"),
            ProviderKind::DeepSeek => Some("DEEPSEEK_API_KEY"),
            ProviderKind::Xai => Some("XAI_API_KEY"),
            ProviderKind::OpenRouter => Some("OPENROUTER_API_KEY"),
        }
    }

    /// Whether this provider speaks OpenAI chat completions.
    pub fn is_openai_compatible(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenAi
                | ProviderKind::Groq
                | ProviderKind::DeepSeek
                | ProviderKind::Xai
                | ProviderKind::OpenRouter
        )
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|kind| kind.label().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown provider `{s}`; expected one of: {}",
                    ProviderKind::ALL.map(ProviderKind::label).join(", ")
                )
            })
    }
}

/// Where and as whom a deployment talks: everything request building needs besides the
/// [`ModelRequest`] itself.
#[derive(Debug, Clone, PartialEq)]
pub struct WireTarget {
    pub provider: ProviderKind,
    /// The provider's model id (`gpt-4o-mini`, `claude-sonnet-4-20250514`, `gemma2`).
    pub model: String,
    /// Base URL without trailing slash; defaults to [`ProviderKind::default_base_url`].
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// OpenRouter app attribution: `HTTP-Referer` (the app's URL) and `X-Title`.
    pub app_url: Option<String>,
    pub app_title: Option<String>,
}

impl WireTarget {
    pub fn new(provider: ProviderKind, model: impl Into<String>) -> Self {
        Self {
            provider,
            model: model.into(),
            base_url: provider.default_base_url().to_string(),
            api_key: None,
            app_url: None,
            app_title: None,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_string();
        self
    }

    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    pub fn with_attribution(mut self, app_url: Option<String>, app_title: Option<String>) -> Self {
        self.app_url = app_url;
        self.app_title = app_title;
        self
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url.trim_end_matches('/'), path)
    }

    /// The key, or the error that says which variable to set.
    pub(crate) fn required_key(&self) -> Result<ApiKey, ProviderWireError> {
        match &self.api_key {
            Some(key) if !key.is_empty() => Ok(key.clone()),
            _ => Err(ProviderWireError::MissingApiKey {
                provider: self.provider,
                variable: self
                    .provider
                    .key_env_var()
                    .unwrap_or("the provider's key variable"),
            }),
        }
    }
}

/// Build the generation request for `target`: streamed (`stream = true`, parse with
/// [`stream_parser`]) or whole (parse with [`parse_response`]). Ollama uses `/api/chat`.
pub fn build_request(
    target: &WireTarget,
    request: &ModelRequest,
    stream: bool,
) -> Result<WireRequest, ProviderWireError> {
    match target.provider {
        kind if kind.is_openai_compatible() => openai::build_chat_request(target, request, stream),
        ProviderKind::Anthropic => anthropic::build_messages_request(target, request, stream),
        ProviderKind::Gemini => gemini::build_generate_request(target, request, stream),
        _ => ollama::build_chat_request(target, request, stream),
    }
}

/// Parse a whole (non-streamed) 2xx body from [`build_request`]'s endpoint.
pub fn parse_response(provider: ProviderKind, body: &[u8]) -> Result<Reply, ProviderWireError> {
    match provider {
        kind if kind.is_openai_compatible() => openai::parse_chat_response(kind, body),
        ProviderKind::Anthropic => anthropic::parse_messages_response(body),
        ProviderKind::Gemini => gemini::parse_generate_response(body),
        _ => ollama::parse_chat_response(body),
    }
}

/// A parser for the streamed body of [`build_request`]`(…, true)`.
pub fn stream_parser(provider: ProviderKind) -> AnyStreamParser {
    match provider {
        kind if kind.is_openai_compatible() => {
            AnyStreamParser::OpenAi(openai::ChatStreamParser::new(kind))
        }
        ProviderKind::Anthropic => {
            AnyStreamParser::Anthropic(anthropic::MessagesStreamParser::new())
        }
        ProviderKind::Gemini => AnyStreamParser::Gemini(gemini::GenerateStreamParser::new()),
        _ => AnyStreamParser::Ollama(ollama::OllamaStreamParser::chat()),
    }
}

/// One of the format parsers, chosen at run time from the deployment's provider.
#[derive(Debug)]
pub enum AnyStreamParser {
    OpenAi(openai::ChatStreamParser),
    Anthropic(anthropic::MessagesStreamParser),
    Gemini(gemini::GenerateStreamParser),
    Ollama(ollama::OllamaStreamParser),
}

impl StreamParser for AnyStreamParser {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, ProviderWireError> {
        match self {
            AnyStreamParser::OpenAi(p) => p.feed(chunk),
            AnyStreamParser::Anthropic(p) => p.feed(chunk),
            AnyStreamParser::Gemini(p) => p.feed(chunk),
            AnyStreamParser::Ollama(p) => p.feed(chunk),
        }
    }

    fn finish(&mut self) -> Result<Reply, ProviderWireError> {
        match self {
            AnyStreamParser::OpenAi(p) => p.finish(),
            AnyStreamParser::Anthropic(p) => p.finish(),
            AnyStreamParser::Gemini(p) => p.finish(),
            AnyStreamParser::Ollama(p) => p.finish(),
        }
    }
}

/// Helpers for the format modules' tests: replaying a recorded body in pieces.
#[cfg(test)]
pub(crate) mod testkit {
    use super::*;
    use crate::models::types::Purpose;

    /// Feed `body` cut at `cuts` (sorted, clamped), then finish. Also checks that the
    /// events add up to the reply, so both views a pool may use agree.
    pub fn replay(
        parser: &mut dyn StreamParser,
        body: &[u8],
        cuts: &[usize],
    ) -> Result<Reply, ProviderWireError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
        cuts.sort_unstable();
        let mut events = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            events.extend(parser.feed(&body[start..cut])?);
            start = cut;
        }
        let reply = parser.finish()?;
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, reply.text, "text deltas disagree with the reply");
        Ok(reply)
    }

    pub fn request() -> ModelRequest {
        let mut request = ModelRequest::new("default", Purpose::TradeDecision, "BTC at 97k. Buy?");
        request.system = "You are a careful trader.".into();
        request.max_tokens = 300;
        request.temperature = 0.2;
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_labels_round_trip_and_unknown_is_explained() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.label().parse::<ProviderKind>(), Ok(kind));
        }
        let err = "mistral".parse::<ProviderKind>().unwrap_err();
        assert!(
            err.contains("mistral") && err.contains("openrouter"),
            "{err}"
        );
    }

    #[test]
    fn the_key_never_shows_in_debug_or_errors() {
        let key = ApiKey::new("sk-secret-123");
        let target = WireTarget::new(ProviderKind::OpenAi, "gpt-4o-mini").with_api_key(key.clone());
        let wire = build_request(&target, &testkit::request(), true).unwrap();
        for text in [
            format!("{key:?}"),
            format!("{key}"),
            format!("{target:?}"),
            format!("{wire:?}"),
        ] {
            assert!(!text.contains("sk-secret"), "{text}");
        }
        let map = wire.header_map().unwrap();
        let auth = map.get("authorization").unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(auth.to_str().unwrap(), "Bearer sk-secret-123");

        let bad =
            WireTarget::new(ProviderKind::OpenAi, "m").with_api_key(ApiKey::new("sk-\nsecret"));
        let err = build_request(&bad, &testkit::request(), false)
            .unwrap()
            .header_map()
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn a_missing_key_names_the_variable_to_set() {
        let target = WireTarget::new(ProviderKind::Groq, "llama-3.3-70b-versatile");
        let err = build_request(&target, &testkit::request(), false).unwrap_err();
        assert!(err.to_string().contains("GROQ_API_KEY"), "{err}");
        assert_eq!(err.class(), crate::resilience::ErrorClass::Auth);
        // Ollama needs none.
        let local = WireTarget::new(ProviderKind::Ollama, "gemma2");
        assert!(build_request(&local, &testkit::request(), false).is_ok());
    }

    #[test]
    fn every_provider_builds_and_parses_through_the_dispatchers() {
        for kind in ProviderKind::ALL {
            let target = WireTarget::new(kind, "m").with_api_key(ApiKey::new("k"));
            let wire = build_request(&target, &testkit::request(), true).unwrap();
            assert!(
                wire.url.starts_with(kind.default_base_url()),
                "{kind}: {}",
                wire.url
            );
            assert!(wire.stream);
            // An empty stream is never a complete answer.
            let mut parser = stream_parser(kind);
            assert!(
                matches!(parser.finish(), Err(ProviderWireError::Truncated { .. })),
                "{kind}"
            );
            assert!(parse_response(kind, b"<html>").is_err());
        }
    }

    #[test]
    fn an_html_page_instead_of_a_stream_is_unavailable_for_every_format() {
        let page = b"<!DOCTYPE html>\n<html><head><title>Attention Required! | Cloudflare</title></head><body>blocked</body></html>\n";
        for kind in ProviderKind::ALL {
            let mut parser = stream_parser(kind);
            let err = parser.feed(page).and_then(|_| parser.finish()).unwrap_err();
            assert_eq!(
                err.class(),
                crate::resilience::ErrorClass::Unavailable,
                "{kind}: {err}"
            );
            assert!(
                matches!(err, ProviderWireError::Provider { .. }),
                "{kind}: {err:?}"
            );
        }
    }

    #[test]
    fn bodies_and_streams_beyond_the_guard_are_refused() {
        assert!(guard_body_len(ProviderKind::OpenAi, MAX_BODY_BYTES).is_ok());
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        for kind in ProviderKind::ALL {
            assert_eq!(
                parse_response(kind, &big),
                Err(ProviderWireError::BodyTooLarge {
                    provider: kind,
                    limit: MAX_BODY_BYTES
                })
            );
            // A stream that never ends a line, fed in 64 KiB pieces.
            let mut parser = stream_parser(kind);
            let err = big
                .chunks(64 * 1024)
                .map(|chunk| parser.feed(chunk))
                .find_map(Result::err)
                .expect("the guard must trip");
            assert_eq!(
                err,
                ProviderWireError::BodyTooLarge {
                    provider: kind,
                    limit: MAX_BODY_BYTES
                }
            );
            assert_eq!(parser.finish(), Err(err));
        }
    }

    #[test]
    fn the_body_collector_holds_no_more_than_the_guard() {
        assert!(matches!(
            BodyCollector::new(ProviderKind::Gemini, Some(MAX_BODY_BYTES as u64 + 1)),
            Err(ProviderWireError::BodyTooLarge { .. })
        ));
        let mut body = BodyCollector::new(ProviderKind::Gemini, None).unwrap();
        body.push(&vec![b'x'; MAX_BODY_BYTES - 1]).unwrap();
        body.push(b"y").unwrap();
        assert!(matches!(
            body.push(b"z"),
            Err(ProviderWireError::BodyTooLarge { .. })
        ));
        assert_eq!(body.into_bytes().len(), MAX_BODY_BYTES);
    }

    #[test]
    fn finish_reasons_normalise_across_providers() {
        use FinishReason::*;
        let cases = [
            (openai::finish_reason("stop"), Stop),
            (openai::finish_reason("length"), Length),
            (openai::finish_reason("tool_calls"), ToolCalls),
            (openai::finish_reason("content_filter"), ContentFilter),
            (anthropic::stop_reason("end_turn"), Stop),
            (anthropic::stop_reason("stop_sequence"), Stop),
            (anthropic::stop_reason("max_tokens"), Length),
            (anthropic::stop_reason("tool_use"), ToolCalls),
            (anthropic::stop_reason("refusal"), ContentFilter),
            (gemini::finish_reason("STOP"), Stop),
            (gemini::finish_reason("MAX_TOKENS"), Length),
            (gemini::finish_reason("SAFETY"), ContentFilter),
            (ollama::done_reason("stop"), Stop),
            (ollama::done_reason("length"), Length),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(
            gemini::finish_reason("MALFORMED_FUNCTION_CALL").as_str(),
            "MALFORMED_FUNCTION_CALL"
        );
        assert_eq!(
            anthropic::stop_reason("pause_turn"),
            Other("pause_turn".into())
        );
    }

    #[test]
    fn a_reply_becomes_the_routers_response() {
        let reply = Reply {
            text: "BUY".into(),
            usage: crate::models::Usage {
                prompt_tokens: 3,
                completion_tokens: 1,
            },
            finish_reason: Some(FinishReason::Length),
            model: Some("gpt-4o-mini-2024-07-18".into()),
            ..Reply::default()
        };
        let response = reply.into_response(
            "oa-1",
            ProviderKind::OpenAi,
            "gpt-4o-mini",
            std::time::Duration::from_millis(420),
        );
        assert_eq!(response.text, "BUY");
        assert_eq!(
            (
                response.deployment.as_str(),
                response.provider.as_str(),
                response.model.as_str()
            ),
            ("oa-1", "openai", "gpt-4o-mini")
        );
        assert_eq!(response.finish_reason.as_deref(), Some("length"));
        assert_eq!(response.usage.completion_tokens, 1);
        assert!(!response.cached);
    }

    #[test]
    fn wire_errors_map_to_router_errors() {
        let err = ProviderWireError::Truncated {
            provider: ProviderKind::Anthropic,
            expected: "message_stop",
        };
        assert!(
            matches!(err.clone().into_model_error("claude-a"), crate::models::ModelError::Malformed { deployment, .. } if deployment == "claude-a")
        );
        let err = ProviderWireError::Provider {
            provider: ProviderKind::Anthropic,
            class: crate::resilience::ErrorClass::Unavailable,
            status: None,
            message: "overloaded_error: Overloaded".into(),
        };
        match err.into_model_error("claude-a") {
            crate::models::ModelError::Provider { class, message, .. } => {
                assert_eq!(class, crate::resilience::ErrorClass::Unavailable);
                assert!(message.contains("Overloaded"));
            }
            other => panic!("{other:?}"),
        }
    }
}
