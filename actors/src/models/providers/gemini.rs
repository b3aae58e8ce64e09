//! Google Gemini `generateContent` and `streamGenerateContent?alt=sse`.
//!
//! Owns: the request body, the whole-response reading and the SSE stream parser of this
//! format. Never does: I/O.
//!
//! Wire facts this module relies on:
//! - `POST {base}/models/{model}:generateContent`, streamed
//!   `POST {base}/models/{model}:streamGenerateContent?alt=sse` (without `alt=sse` the
//!   stream is one JSON array, which this module does not read). Base
//!   `https://generativelanguage.googleapis.com/v1beta`; auth `x-goog-api-key: <key>` (a
//!   header, never the `?key=` query, so the key stays out of URLs and logs).
//! - Body: `contents[{role:"user", parts[{text}]}]`, `systemInstruction{parts[{text}]}`,
//!   `generationConfig{maxOutputTokens, temperature}`.
//! - Every stream chunk is a whole `GenerateContentResponse`: `candidates[0].content.parts`
//!   (`text`, `thought: true` for thinking, `functionCall{name,args}`), `finishReason` on
//!   the last, `usageMetadata` (cumulative: `promptTokenCount`, `candidatesTokenCount`,
//!   `thoughtsTokenCount`). Lines may end in `\r\n`. There is no `[DONE]`: the stream is
//!   complete when a chunk carried a `finishReason` (or `promptFeedback.blockReason`, a
//!   prompt rejected before any candidate).
//! - Completion tokens are `candidatesTokenCount + thoughtsTokenCount`: thinking tokens are
//!   billed as output, and this matches OpenAI, whose `completion_tokens` include reasoning.
//! - Errors: `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message",
//!   "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}`,
//!   as a body or, rarely, as a stream chunk.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::classify::ErrorDetail;
use super::framed::{Decoded, Events, Framed, StreamDecode};
use super::lines::SseDecoder;
use super::wire::{parse_json_body, parse_json_unit, temperature_json, AuthHeader, ReplyBuilder};
use super::{
    FinishReason, HttpMethod, ProviderKind, ProviderWireError, Reply, StreamEvent, WireRequest,
    WireTarget, MAX_BODY_BYTES,
};
use crate::models::types::{ModelRequest, Usage};

const PROVIDER: ProviderKind = ProviderKind::Gemini;

pub fn build_generate_request(
    target: &WireTarget,
    request: &ModelRequest,
    stream: bool,
) -> Result<WireRequest, ProviderWireError> {
    let key = target.required_key()?;
    // Config may name the model as the API lists it (`models/gemini-2.5-flash`).
    let model = target.model.trim().trim_start_matches("models/");
    let path = if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    };
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        json!([{"role": "user", "parts": [{"text": request.prompt}]}]),
    );
    if !request.system.trim().is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": request.system}]}),
        );
    }
    body.insert(
        "generationConfig".into(),
        json!({
            "maxOutputTokens": request.max_tokens,
            "temperature": temperature_json(request.temperature),
        }),
    );
    let mut wire = WireRequest::new(HttpMethod::Post, target.url(&path));
    wire.headers
        .push(("content-type", "application/json".into()));
    wire.auth = Some(AuthHeader::Raw("x-goog-api-key", key));
    wire.body = Some(Value::Object(body));
    wire.stream = stream;
    Ok(wire)
}

pub fn finish_reason(raw: &str) -> FinishReason {
    match raw {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        other => FinishReason::Other(other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFunctionCall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<WireFunctionCall>,
}

#[derive(Debug, Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Option<Vec<WirePart>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Option<Vec<WireCandidate>>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    prompt_feedback: Option<WirePromptFeedback>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

impl WireResponse {
    fn first_candidate(&self) -> Option<&WireCandidate> {
        self.candidates
            .as_deref()
            .and_then(|c| c.iter().find(|c| c.index.unwrap_or(0) == 0))
    }

    fn usage(&self) -> Option<Usage> {
        self.usage_metadata.as_ref().map(|u| Usage {
            prompt_tokens: u.prompt_token_count.unwrap_or(0),
            completion_tokens: u.candidates_token_count.unwrap_or(0)
                + u.thoughts_token_count.unwrap_or(0),
        })
    }

    /// The finish reason, or the block reason of a prompt refused before any candidate.
    fn finish(&self) -> Option<FinishReason> {
        if let Some(reason) = self
            .first_candidate()
            .and_then(|c| c.finish_reason.as_deref())
        {
            return Some(finish_reason(reason));
        }
        self.prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .map(|_| FinishReason::ContentFilter)
    }

    fn provider_error(&self) -> Option<ProviderWireError> {
        let error = self.error.as_ref()?;
        let detail = ErrorDetail::from_value(&json!({ "error": error }));
        Some(ProviderWireError::Provider {
            provider: PROVIDER,
            class: detail.stream_class(),
            status: detail.status,
            message: detail.describe(),
        })
    }

    /// Events of this response (a whole answer or one chunk); `tool_base` numbers the
    /// function calls, which Gemini sends whole, never in fragments.
    fn events(&self, tool_base: usize, events: &mut Vec<StreamEvent>) {
        let parts = self
            .first_candidate()
            .and_then(|c| c.content.as_ref())
            .and_then(|c| c.parts.as_deref())
            .unwrap_or(&[]);
        let mut tools = tool_base;
        for part in parts {
            if let Some(call) = &part.function_call {
                events.push(StreamEvent::ToolCallDelta {
                    index: tools,
                    id: None,
                    name: call.name.clone(),
                    arguments: call
                        .args
                        .as_ref()
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                });
                tools += 1;
            } else if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
                if part.thought == Some(true) {
                    events.push(StreamEvent::ReasoningDelta(text.clone()));
                } else {
                    events.push(StreamEvent::TextDelta(text.clone()));
                }
            }
        }
        if let Some(reason) = self.finish() {
            events.push(StreamEvent::Finish(reason));
        }
        if let Some(usage) = self.usage() {
            events.push(StreamEvent::Usage(usage));
        }
    }
}

/// Read a whole 2xx `generateContent` body.
pub fn parse_generate_response(body: &[u8]) -> Result<Reply, ProviderWireError> {
    let response: WireResponse = parse_json_body(PROVIDER, "a generateContent response", body)?;
    if let Some(err) = response.provider_error() {
        return Err(err);
    }
    if response.first_candidate().is_none() && response.finish().is_none() {
        return Err(ProviderWireError::Malformed {
            provider: PROVIDER,
            what: "a generateContent response",
            detail: "it has neither candidates nor promptFeedback".into(),
        });
    }
    let mut events = Vec::new();
    response.events(0, &mut events);
    let mut builder = ReplyBuilder {
        model: response.model_version.clone(),
        ..ReplyBuilder::default()
    };
    for event in &events {
        builder.apply(event);
    }
    Ok(builder.build())
}

/// Incremental parser of a `streamGenerateContent?alt=sse` stream.
pub type GenerateStreamParser = Framed<SseDecoder, GenerateDecode>;

impl Default for GenerateStreamParser {
    fn default() -> Self {
        Self::new()
    }
}

impl GenerateStreamParser {
    pub fn new() -> Self {
        Framed::with(
            PROVIDER,
            "a chunk with `finishReason`",
            SseDecoder::new(MAX_BODY_BYTES),
            GenerateDecode { finished: false },
        )
    }
}

/// What one `streamGenerateContent` SSE event means; see [`Framed`].
#[derive(Debug)]
pub struct GenerateDecode {
    finished: bool,
}

impl StreamDecode for GenerateDecode {
    fn unit(&mut self, data: &str, reply: &mut ReplyBuilder, events: &mut Events) -> Decoded {
        let response: WireResponse = parse_json_unit(PROVIDER, "a stream chunk", data)?;
        if let Some(err) = response.provider_error() {
            return Err(err);
        }
        if reply.model.is_none() {
            reply.model = response.model_version.clone();
        }
        response.events(reply.tool_calls.len(), events);
        if response.finish().is_some() {
            self.finished = true;
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::providers::testkit::{replay, request};
    use crate::models::providers::StreamParser;
    use crate::models::providers::{ApiKey, ToolCall};
    use crate::resilience::ErrorClass;
    use proptest::prelude::*;
    use std::time::Duration;

    /// A real gemini-2.5-flash `alt=sse` stream, trimmed to its first chunk, one middle
    /// chunk (with `\u003c` escapes) and its last chunk, all verbatim. Usage is cumulative.
    pub(crate) const STREAM: &str = concat!(
        r#"data: {"candidates": [{"content": {"parts": [{"text": "Okay, let's create a Tetris game in Python for the console! We'll use the `curses` library for a full-screen, interactive experience.\n\n**Important Notes Before You Start:**\n\n1.  **`curses"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 4,"candidatesTokenCount": 49,"totalTokenCount": 2095,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 4}],"thoughtsTokenCount": 2042},"modelVersion": "gemini-2.5-flash","responseId": "IZI2acSKMoWl0-kPmYj2yQc"}"#,
        "\n\n",
        r#"data: {"candidates": [{"content": {"parts": [{"text": "    blocks = get_piece_blocks(temp_piece)\n\n    for x, y in blocks:\n        # Check horizontal boundaries\n        if x \u003c 0 or x \u003e= BOARD_WIDTH:\n            return True\n        "}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 4,"candidatesTokenCount": 1563,"totalTokenCount": 3609,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 4}],"thoughtsTokenCount": 2042},"modelVersion": "gemini-2.5-flash","responseId": "IZI2acSKMoWl0-kPmYj2yQc"}"#,
        "\n\n",
        r#"data: {"candidates": [{"content": {"parts": [{"text": ", hold functionality, sound, high scores, etc."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 4,"candidatesTokenCount": 5947,"totalTokenCount": 7993,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 4}],"thoughtsTokenCount": 2042},"modelVersion": "gemini-2.5-flash","responseId": "IZI2acSKMoWl0-kPmYj2yQc"}"#,
        "\n\n",
    );

    pub(crate) const STREAM_TEXT: &str = concat!(
        "Okay, let's create a Tetris game in Python for the console! We'll use the `curses` library for a full-screen, interactive experience.\n\n**Important Notes Before You Start:**\n\n1.  **`curses",
        "    blocks = get_piece_blocks(temp_piece)\n\n    for x, y in blocks:\n        # Check horizontal boundaries\n        if x < 0 or x >= BOARD_WIDTH:\n            return True\n        ",
        ", hold functionality, sound, high scores, etc.",
    );

    /// A real gemini-2.5-flash function-call stream: one chunk (thoughtSignature shortened).
    const FUNCTION_CALL: &str = concat!(
        r#"data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "getWeather","args": {"location": "Tokyo"}},"thoughtSignature": "CikBcsjafFK168IbtVto"}],"role": "model"},"finishReason": "STOP","index": 0,"finishMessage": "Model generated function call(s)."}],"usageMetadata": {"promptTokenCount": 83,"candidatesTokenCount": 14,"totalTokenCount": 201,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 83}],"thoughtsTokenCount": 104},"modelVersion": "gemini-2.5-flash","responseId": "qpc2afWVFJK4vr0Pq6WiyAU"}"#,
        "\n\n",
    );

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    #[test]
    fn request_shape_url_and_key_header() {
        let target = WireTarget::new(ProviderKind::Gemini, "models/gemini-2.5-flash")
            .with_api_key(ApiKey::new("AIza-k"));
        let wire = build_generate_request(&target, &request(), true).unwrap();
        assert_eq!(
            wire.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(!wire.url.contains("key="));
        assert_eq!(wire.header_map().unwrap()["x-goog-api-key"], "AIza-k");
        assert_eq!(
            wire.body.unwrap(),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "BTC at 97k. Buy?"}]}],
                "systemInstruction": {"parts": [{"text": "You are a careful trader."}]},
                "generationConfig": {"maxOutputTokens": 300, "temperature": 0.2}
            })
        );
        let whole = build_generate_request(&target, &request(), false).unwrap();
        assert!(whole
            .url
            .ends_with("/models/gemini-2.5-flash:generateContent"));
    }

    #[test]
    fn recorded_stream_with_lf_and_crlf() {
        for body in [STREAM.to_string(), STREAM.replace('\n', "\r\n")] {
            let reply = replay(&mut GenerateStreamParser::new(), body.as_bytes(), &[]).unwrap();
            assert_eq!(reply.text, STREAM_TEXT);
            assert_eq!(reply.usage, usage(4, 5947 + 2042));
        }
        let reply = replay(&mut GenerateStreamParser::new(), STREAM.as_bytes(), &[]).unwrap();
        assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        assert_eq!(reply.model.as_deref(), Some("gemini-2.5-flash"));
    }

    #[test]
    fn recorded_function_call_stream() {
        let reply = replay(
            &mut GenerateStreamParser::new(),
            FUNCTION_CALL.as_bytes(),
            &[],
        )
        .unwrap();
        assert_eq!(reply.text, "");
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                id: None,
                name: "getWeather".into(),
                arguments: r#"{"location":"Tokyo"}"#.into()
            }]
        );
        assert_eq!(reply.usage, usage(83, 14 + 104));
    }

    #[test]
    fn whole_answer_with_thought_part_and_max_tokens() {
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"weighing funding","thought":true},{"text":"{\"action\":\"BUY\""}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":8,"totalTokenCount":20},"modelVersion":"gemini-2.5-pro"}"#;
        let reply = parse_generate_response(body.as_bytes()).unwrap();
        assert_eq!(reply.text, "{\"action\":\"BUY\"");
        assert_eq!(reply.reasoning.as_deref(), Some("weighing funding"));
        assert_eq!(reply.finish_reason, Some(FinishReason::Length));
        assert_eq!(reply.usage, usage(12, 8));
    }

    #[test]
    fn a_blocked_prompt_is_a_content_filter_finish() {
        let body = r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}"#;
        let reply = parse_generate_response(body.as_bytes()).unwrap();
        assert_eq!(reply.finish_reason, Some(FinishReason::ContentFilter));
        assert_eq!(reply.text, "");
    }

    #[test]
    fn an_error_chunk_is_rate_limited_with_its_delay() {
        let stream = "data: {\"error\": {\"code\": 429, \"message\": \"Resource has been exhausted (e.g. check quota).\", \"status\": \"RESOURCE_EXHAUSTED\", \"details\": [{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": \"12s\"}]}}\r\n\r\n";
        let err = GenerateStreamParser::new()
            .feed(stream.as_bytes())
            .unwrap_err();
        assert_eq!(
            err.class(),
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(12))
            }
        );
    }

    #[test]
    fn a_stream_without_finish_reason_is_truncated() {
        let cut = STREAM.rfind("data:").unwrap();
        let mut parser = GenerateStreamParser::new();
        parser.feed(&STREAM.as_bytes()[..cut]).unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
        let mut parser = GenerateStreamParser::new();
        parser
            .feed(&STREAM.as_bytes()[..STREAM.len() - 20])
            .unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
    }

    proptest! {
        #[test]
        fn recorded_stream_parses_the_same_under_any_chunking(
            cuts in proptest::collection::vec(0usize..1500, 0..12),
            crlf in any::<bool>(),
        ) {
            let body = if crlf { STREAM.replace('\n', "\r\n") } else { STREAM.to_string() };
            let reply = replay(&mut GenerateStreamParser::new(), body.as_bytes(), &cuts).unwrap();
            prop_assert_eq!(reply.text.as_str(), STREAM_TEXT);
            prop_assert_eq!(reply.usage, usage(4, 7989));
            prop_assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        }

        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut parser = GenerateStreamParser::new();
            for chunk in &chunks {
                let _ = parser.feed(chunk);
            }
            let _ = parser.finish();
            let _ = parse_generate_response(&chunks.concat());
        }
    }
}
