//! Anthropic Messages (`POST {base}/v1/messages`).
//!
//! Owns: the request body, the whole-response reading and the SSE stream parser of this
//! format. Never does: I/O.
//!
//! Wire facts this module relies on:
//! - Headers `x-api-key: <key>` and `anthropic-version: 2023-06-01`; `max_tokens` is
//!   required; the system prompt is the top-level `system` field, not a message.
//! - Stream events: `message_start` (model, `usage.input_tokens`), `content_block_start`
//!   (`text`, `thinking`, `tool_use` with id and name), `content_block_delta` (`text_delta`,
//!   `thinking_delta`, `input_json_delta` with `partial_json`, `signature_delta`),
//!   `content_block_stop`, `ping`, `message_delta` (`stop_reason`, cumulative
//!   `usage.output_tokens`), `message_stop` (the terminal event; there is no `[DONE]`).
//! - `event: error` may arrive after a 200 (`overloaded_error` → Unavailable, etc.).
//! - Anthropic documents that new event types and delta types may appear; unknown ones
//!   are skipped rather than failing the answer (a stream that never reaches
//!   `message_stop` still fails as truncated). JSON may be whitespace-padded
//!   (`{"type": "ping"}`).
//! - `usage.input_tokens` excludes cached prompt tokens (`cache_read_input_tokens`,
//!   `cache_creation_input_tokens`); like the SDK, prompt tokens here are `input_tokens`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::classify::ErrorDetail;
use super::lines::SseDecoder;
use super::wire::{excerpt, parse_json_body, temperature_json, AuthHeader, ReplyBuilder};
use super::{
    FinishReason, HttpMethod, ProviderKind, ProviderWireError, Reply, StreamEvent, StreamParser,
    ToolCall, WireRequest, WireTarget, MAX_BODY_BYTES,
};
use crate::models::types::{ModelRequest, Usage};

pub const API_VERSION: &str = "2023-06-01";
const PROVIDER: ProviderKind = ProviderKind::Anthropic;

/// `POST {base}/v1/messages`.
pub fn build_messages_request(
    target: &WireTarget,
    request: &ModelRequest,
    stream: bool,
) -> Result<WireRequest, ProviderWireError> {
    let key = target.required_key()?;
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    if !request.system.trim().is_empty() {
        body.insert("system".into(), json!(request.system));
    }
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": request.prompt}]),
    );
    body.insert("temperature".into(), temperature_json(request.temperature));
    if stream {
        body.insert("stream".into(), json!(true));
    }
    let mut wire = WireRequest::new(HttpMethod::Post, target.url("/v1/messages"));
    wire.headers
        .push(("content-type", "application/json".into()));
    wire.headers.push(("anthropic-version", API_VERSION.into()));
    wire.headers.push((
        "accept",
        if stream {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into(),
    ));
    wire.auth = Some(AuthHeader::Raw("x-api-key", key));
    wire.body = Some(Value::Object(body));
    wire.stream = stream;
    Ok(wire)
}

pub fn stop_reason(raw: &str) -> FinishReason {
    match raw {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Option<Vec<WireBlock>>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Tool input as JSON text; an absent or empty input is `{}` (what the SDK gives).
fn input_text(input: Option<&Value>) -> String {
    match input {
        None | Some(Value::Null) => "{}".to_string(),
        Some(value) => value.to_string(),
    }
}

/// Read a whole 2xx Messages body.
pub fn parse_messages_response(body: &[u8]) -> Result<Reply, ProviderWireError> {
    let value: Value = parse_json_body(PROVIDER, "a message", body)?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        let detail = ErrorDetail::from_value(&value);
        return Err(ProviderWireError::Provider {
            provider: PROVIDER,
            class: detail.stream_class(),
            status: None,
            message: detail.describe(),
        });
    }
    let message: WireMessage =
        serde_json::from_value(value).map_err(|err| ProviderWireError::Malformed {
            provider: PROVIDER,
            what: "a message",
            detail: err.to_string(),
        })?;
    if message.kind.as_deref() != Some("message") || message.content.is_none() {
        return Err(ProviderWireError::Malformed {
            provider: PROVIDER,
            what: "a message",
            detail: "it is not `\"type\": \"message\"` with `content`".into(),
        });
    }
    let mut reply = Reply {
        model: message.model.clone(),
        finish_reason: message.stop_reason.as_deref().map(stop_reason),
        ..Reply::default()
    };
    let mut reasoning = String::new();
    for block in message.content.iter().flatten() {
        match block.kind.as_str() {
            "text" => reply.text.push_str(block.text.as_deref().unwrap_or("")),
            "thinking" => reasoning.push_str(block.thinking.as_deref().unwrap_or("")),
            "tool_use" => reply.tool_calls.push(ToolCall {
                id: block.id.clone(),
                name: block.name.clone().unwrap_or_default(),
                arguments: input_text(block.input.as_ref()),
            }),
            _ => {}
        }
    }
    reply.reasoning = (!reasoning.is_empty()).then_some(reasoning);
    if let Some(usage) = &message.usage {
        reply.usage = Usage {
            prompt_tokens: usage.input_tokens.unwrap_or(0),
            completion_tokens: usage.output_tokens.unwrap_or(0),
        };
    }
    Ok(reply)
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Any stream event's data; which fields are present depends on `type`.
#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<WireBlock>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// What kind each open content block is, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    ToolUse,
    Other,
}

/// Incremental parser of a Messages SSE stream.
#[derive(Debug)]
pub struct MessagesStreamParser {
    sse: SseDecoder,
    reply: ReplyBuilder,
    blocks: std::collections::BTreeMap<usize, BlockKind>,
    /// Tool blocks whose input never got a fragment: their input is `{}`.
    tool_input_seen: std::collections::BTreeSet<usize>,
    started: bool,
    stopped: bool,
    failed: Option<ProviderWireError>,
}

impl Default for MessagesStreamParser {
    fn default() -> Self {
        Self::new()
    }
}

impl MessagesStreamParser {
    pub fn new() -> Self {
        Self {
            sse: SseDecoder::new(MAX_BODY_BYTES),
            reply: ReplyBuilder::default(),
            blocks: Default::default(),
            tool_input_seen: Default::default(),
            started: false,
            stopped: false,
            failed: None,
        }
    }

    fn fail(&mut self, err: ProviderWireError) -> ProviderWireError {
        self.failed = Some(err.clone());
        err
    }

    fn malformed(detail: String) -> ProviderWireError {
        ProviderWireError::Malformed {
            provider: PROVIDER,
            what: "a stream event",
            detail,
        }
    }

    fn event(
        &mut self,
        name: Option<&str>,
        data: &str,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderWireError> {
        if self.stopped {
            return Ok(());
        }
        let value: Value = match serde_json::from_str(data) {
            Ok(value) => value,
            // An `error` event is an error even when a proxy put plain text in it.
            Err(_) if name == Some("error") => {
                return Err(ProviderWireError::Provider {
                    provider: PROVIDER,
                    class: crate::resilience::ErrorClass::Unavailable,
                    status: None,
                    message: excerpt(data, 400),
                })
            }
            Err(err) => {
                return Err(Self::malformed(format!(
                    "{err} in `{}`",
                    excerpt(data, 120)
                )))
            }
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(name)
            .unwrap_or("");
        if kind == "error" || name == Some("error") {
            let detail = ErrorDetail::from_value(&value);
            return Err(ProviderWireError::Provider {
                provider: PROVIDER,
                class: detail.stream_class(),
                status: None,
                message: detail.describe(),
            });
        }
        let event: WireEvent = serde_json::from_value(value)
            .map_err(|err| Self::malformed(format!("{err} in `{}`", excerpt(data, 120))))?;
        match event.kind.as_str() {
            "message_start" => {
                let message = event
                    .message
                    .ok_or_else(|| Self::malformed("`message_start` without `message`".into()))?;
                self.started = true;
                self.reply.model = message.model;
                if let Some(usage) = message.usage {
                    events.push(StreamEvent::Usage(Usage {
                        prompt_tokens: usage.input_tokens.unwrap_or(0),
                        completion_tokens: usage.output_tokens.unwrap_or(0),
                    }));
                }
            }
            "content_block_start" => {
                let index = self.index(event.index, "content_block_start")?;
                let block = event.content_block.ok_or_else(|| {
                    Self::malformed("`content_block_start` without `content_block`".into())
                })?;
                let kind = match block.kind.as_str() {
                    "text" => BlockKind::Text,
                    "thinking" => BlockKind::Thinking,
                    "tool_use" | "server_tool_use" => BlockKind::ToolUse,
                    _ => BlockKind::Other,
                };
                self.blocks.insert(index, kind);
                match kind {
                    BlockKind::Text => push_nonempty(events, block.text, StreamEvent::TextDelta),
                    BlockKind::Thinking => {
                        push_nonempty(events, block.thinking, StreamEvent::ReasoningDelta)
                    }
                    BlockKind::ToolUse => events.push(StreamEvent::ToolCallDelta {
                        index,
                        id: block.id,
                        name: block.name,
                        arguments: String::new(),
                    }),
                    BlockKind::Other => {}
                }
            }
            "content_block_delta" => {
                let index = self.index(event.index, "content_block_delta")?;
                let delta = event.delta.ok_or_else(|| {
                    Self::malformed("`content_block_delta` without `delta`".into())
                })?;
                match delta.kind.as_deref() {
                    Some("text_delta") => push_nonempty(events, delta.text, StreamEvent::TextDelta),
                    Some("thinking_delta") => {
                        push_nonempty(events, delta.thinking, StreamEvent::ReasoningDelta)
                    }
                    Some("input_json_delta") => {
                        let fragment = delta.partial_json.unwrap_or_default();
                        if !fragment.is_empty() {
                            self.tool_input_seen.insert(index);
                            events.push(StreamEvent::ToolCallDelta {
                                index,
                                id: None,
                                name: None,
                                arguments: fragment,
                            });
                        }
                    }
                    // signature_delta, citations_delta and future kinds carry no answer text.
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = self.index(event.index, "content_block_stop")?;
                if self.blocks.get(&index) == Some(&BlockKind::ToolUse)
                    && !self.tool_input_seen.contains(&index)
                {
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: "{}".into(),
                    });
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    events.push(StreamEvent::Finish(stop_reason(&reason)));
                }
                if let Some(usage) = event.usage {
                    // output_tokens is cumulative; input_tokens appears here only on newer
                    // API versions and then is authoritative too.
                    let mut total = self.reply.usage;
                    if let Some(output) = usage.output_tokens {
                        total.completion_tokens = output;
                    }
                    if let Some(input) = usage.input_tokens {
                        total.prompt_tokens = input;
                    }
                    events.push(StreamEvent::Usage(total));
                }
            }
            "message_stop" => {
                if !self.started {
                    return Err(Self::malformed(
                        "`message_stop` before `message_start`".into(),
                    ));
                }
                self.stopped = true;
            }
            // `ping` keeps proxies from timing the connection out; unknown types are
            // skipped per Anthropic's versioning policy.
            _ => {}
        }
        Ok(())
    }

    fn index(&self, index: Option<usize>, event: &str) -> Result<usize, ProviderWireError> {
        index.ok_or_else(|| Self::malformed(format!("`{event}` without `index`")))
    }

    fn run(
        &mut self,
        sse_events: Vec<super::lines::SseEvent>,
    ) -> Result<Vec<StreamEvent>, ProviderWireError> {
        let mut events = Vec::new();
        for sse in sse_events {
            // Apply as we go: message_delta usage builds on message_start's.
            let start = events.len();
            self.event(sse.event.as_deref(), &sse.data, &mut events)?;
            for event in &events[start..] {
                self.reply.apply(event);
            }
        }
        Ok(events)
    }
}

fn push_nonempty(
    events: &mut Vec<StreamEvent>,
    text: Option<String>,
    make: fn(String) -> StreamEvent,
) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        events.push(make(text));
    }
}

impl StreamParser for MessagesStreamParser {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, ProviderWireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let sse_events = self.sse.push(chunk).map_err(|err| err.into_wire(PROVIDER));
        match sse_events.and_then(|events| self.run(events)) {
            Ok(events) => Ok(events),
            Err(err) => Err(self.fail(err)),
        }
    }

    fn finish(&mut self) -> Result<Reply, ProviderWireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let truncated = ProviderWireError::Truncated {
            provider: PROVIDER,
            expected: "`message_stop`",
        };
        match self.sse.finish() {
            Ok(Some(last)) => {
                if let Err(err) = self.run(vec![last]) {
                    let err = err.or_truncated(&truncated);
                    return Err(self.fail(err));
                }
            }
            Ok(None) => {}
            Err(err) => return Err(self.fail(err.into_wire(PROVIDER))),
        }
        if !self.stopped {
            return Err(self.fail(truncated));
        }
        Ok(self.reply.build())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::providers::testkit::{replay, request};
    use crate::models::providers::ApiKey;
    use crate::resilience::ErrorClass;
    use proptest::prelude::*;

    /// anthropic-sdk-python's basic_response fixture, verbatim: note the `ping` with
    /// spaces in its JSON and the missing newline after the final `message_stop`.
    pub(crate) const BASIC: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK","type":"message","role":"assistant","content":[],"model":"claude-3-opus-latest","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":1}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n",
        "event: ping\n",
        r#"data: {"type": "ping"}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}"#,
        "\n\n",
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
    );

    /// anthropic-sdk-python's tool_use_response fixture (claude-sonnet-4-20250514).
    const TOOL_USE: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_019Q1hrJbZG26Fb9BQhrkHEr","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n",
        "event: ping\n",
        r#"data: {"type": "ping"}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'ll check the current weather in Paris for you."}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","caller":{"type":"direct"},"input":{}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\": \"P"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ar"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}"#,
        "\n\n",
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
    );

    /// Recorded whole answer (api.anthropic.com, 2025-08-21).
    pub(crate) const WHOLE: &str = "{\"id\":\"msg_01QgNtCXZKCJgpWHW3NEwmdP\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-sonnet-20240620\",\"content\":[{\"type\":\"text\",\"text\":\"Hello! How can I assist you today? Is there anything specific you'd like to know or discuss?\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":16,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":24,\"service_tier\":\"standard\"}}";

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    #[test]
    fn request_has_top_level_system_version_header_and_x_api_key() {
        let target = WireTarget::new(ProviderKind::Anthropic, "claude-sonnet-4-20250514")
            .with_api_key(ApiKey::new("sk-ant-k"));
        let wire = build_messages_request(&target, &request(), true).unwrap();
        assert_eq!(wire.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(
            wire.body.clone().unwrap(),
            json!({
                "model": "claude-sonnet-4-20250514",
                "max_tokens": 300,
                "system": "You are a careful trader.",
                "messages": [{"role": "user", "content": "BTC at 97k. Buy?"}],
                "temperature": 0.2,
                "stream": true
            })
        );
        let map = wire.header_map().unwrap();
        assert_eq!(map["anthropic-version"], "2023-06-01");
        assert_eq!(map["x-api-key"], "sk-ant-k");
        assert!(map.get("authorization").is_none());
    }

    #[test]
    fn recorded_whole_answer() {
        let reply = parse_messages_response(WHOLE.as_bytes()).unwrap();
        assert_eq!(reply.text, "Hello! How can I assist you today? Is there anything specific you'd like to know or discuss?");
        assert_eq!(reply.usage, usage(16, 24));
        assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        assert_eq!(reply.model.as_deref(), Some("claude-3-5-sonnet-20240620"));
    }

    #[test]
    fn whole_answer_with_thinking_and_tool_use() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[{"type":"thinking","thinking":"Check price first.","signature":"abc"},{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_1","name":"get_price","input":{"symbol":"ETH"}}],"stop_reason":"tool_use","usage":{"input_tokens":50,"output_tokens":30}}"#;
        let reply = parse_messages_response(body.as_bytes()).unwrap();
        assert_eq!(reply.text, "Let me look.");
        assert_eq!(reply.reasoning.as_deref(), Some("Check price first."));
        assert_eq!(reply.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                id: Some("toolu_1".into()),
                name: "get_price".into(),
                arguments: r#"{"symbol":"ETH"}"#.into()
            }]
        );
    }

    #[test]
    fn recorded_basic_stream() {
        let reply = replay(&mut MessagesStreamParser::new(), BASIC.as_bytes(), &[]).unwrap();
        assert_eq!(reply.text, "Hello there!");
        assert_eq!(reply.usage, usage(11, 6));
        assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        assert_eq!(reply.model.as_deref(), Some("claude-3-opus-latest"));
    }

    #[test]
    fn recorded_tool_use_stream() {
        let reply = replay(&mut MessagesStreamParser::new(), TOOL_USE.as_bytes(), &[]).unwrap();
        assert_eq!(
            reply.text,
            "I'll check the current weather in Paris for you."
        );
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                id: Some("toolu_01NRLabsLyVHZPKxbKvkfSMn".into()),
                name: "get_weather".into(),
                arguments: r#"{"location": "Paris"}"#.into()
            }]
        );
        assert_eq!(reply.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(reply.usage, usage(377, 65));
    }

    #[test]
    fn thinking_deltas_are_reasoning() {
        let stream = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4","usage":{"input_tokens":5,"output_tokens":1}}}"#,
            "\n\n",
            "event: content_block_start\n",
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            "\n\n",
            "event: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Risk is high."}}"#,
            "\n\n",
            "event: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            "\n\n",
            "event: content_block_stop\n",
            r#"data: {"type":"content_block_stop","index":0}"#,
            "\n\n",
            "event: content_block_start\n",
            r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            "\n\n",
            "event: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"CLOSE_ALL"}}"#,
            "\n\n",
            "event: content_block_stop\n",
            r#"data: {"type":"content_block_stop","index":1}"#,
            "\n\n",
            "event: message_delta\n",
            r#"data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":12}}"#,
            "\n\n",
            "event: message_stop\n",
            r#"data: {"type":"message_stop"}"#,
            "\n\n",
        );
        let reply = replay(&mut MessagesStreamParser::new(), stream.as_bytes(), &[]).unwrap();
        assert_eq!(reply.text, "CLOSE_ALL");
        assert_eq!(reply.reasoning.as_deref(), Some("Risk is high."));
        assert_eq!(reply.finish_reason, Some(FinishReason::Length));
        assert_eq!(reply.usage, usage(5, 12));
    }

    #[test]
    fn an_error_event_after_200_is_a_typed_unavailable() {
        let cut = BASIC.find("event: content_block_stop").unwrap();
        let body = format!(
            "{}event: error\ndata: {{\"type\": \"error\", \"error\": {{\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}}}\n\n",
            &BASIC[..cut]
        );
        let mut parser = MessagesStreamParser::new();
        let err = parser.feed(body.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            ProviderWireError::Provider {
                provider: ProviderKind::Anthropic,
                class: ErrorClass::Unavailable,
                status: None,
                message: "overloaded_error: Overloaded".into()
            }
        );
        assert_eq!(parser.finish().unwrap_err(), err);
    }

    #[test]
    fn error_events_of_every_type_keep_their_class() {
        let cases = [
            (
                "rate_limit_error",
                ErrorClass::RateLimited { retry_after: None },
            ),
            ("api_error", ErrorClass::Unavailable),
            ("invalid_request_error", ErrorClass::BadRequest),
            ("authentication_error", ErrorClass::Auth),
        ];
        for (kind, class) in cases {
            let body = format!("event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":\"m\"}}}}\n\n");
            let err = MessagesStreamParser::new()
                .feed(body.as_bytes())
                .unwrap_err();
            assert_eq!(err.class(), class, "{kind}");
        }
        let err = MessagesStreamParser::new()
            .feed(b"event: error\ndata: upstream overloaded\n\n")
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unavailable);
        assert!(err.to_string().contains("upstream overloaded"));
    }

    #[test]
    fn a_stream_without_message_stop_is_truncated() {
        let cut = BASIC.find("event: message_stop").unwrap();
        let mut parser = MessagesStreamParser::new();
        parser.feed(&BASIC.as_bytes()[..cut]).unwrap();
        assert_eq!(
            parser.finish().unwrap_err(),
            ProviderWireError::Truncated {
                provider: ProviderKind::Anthropic,
                expected: "`message_stop`"
            }
        );
        // Cut inside the last JSON: still truncated.
        let mut parser = MessagesStreamParser::new();
        parser.feed(&BASIC.as_bytes()[..BASIC.len() - 3]).unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_event_types_are_skipped_but_bad_json_is_not() {
        let body = BASIC.replacen(
            "event: ping\n",
            "event: future_event\ndata: {\"type\":\"future_event\",\"x\":1}\n\nevent: ping\n",
            1,
        );
        assert_eq!(
            replay(&mut MessagesStreamParser::new(), body.as_bytes(), &[])
                .unwrap()
                .text,
            "Hello there!"
        );
        let mut parser = MessagesStreamParser::new();
        let err = parser
            .feed(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\n\n")
            .unwrap_err();
        assert!(
            matches!(err, ProviderWireError::Malformed { .. }),
            "{err:?}"
        );
    }

    proptest! {
        #[test]
        fn recorded_streams_parse_the_same_under_any_chunking(
            cuts in proptest::collection::vec(0usize..2500, 0..12),
            crlf in any::<bool>(),
        ) {
            let basic = if crlf { BASIC.replace('\n', "\r\n") } else { BASIC.to_string() };
            let reply = replay(&mut MessagesStreamParser::new(), basic.as_bytes(), &cuts).unwrap();
            prop_assert_eq!(reply.text.as_str(), "Hello there!");
            prop_assert_eq!(reply.usage, usage(11, 6));
            let tool = if crlf { TOOL_USE.replace('\n', "\r\n") } else { TOOL_USE.to_string() };
            let reply = replay(&mut MessagesStreamParser::new(), tool.as_bytes(), &cuts).unwrap();
            prop_assert_eq!(reply.tool_calls[0].arguments.as_str(), r#"{"location": "Paris"}"#);
            prop_assert_eq!(reply.usage, usage(377, 65));
        }

        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut parser = MessagesStreamParser::new();
            for chunk in &chunks {
                let _ = parser.feed(chunk);
            }
            let _ = parser.finish();
            let _ = parse_messages_response(&chunks.concat());
        }

        #[test]
        fn event_shaped_garbage_never_panics(
            kinds in proptest::collection::vec(prop_oneof![
                Just("message_start"), Just("content_block_start"), Just("content_block_delta"),
                Just("content_block_stop"), Just("message_delta"), Just("message_stop"), Just("error"),
            ], 0..8),
            extra in "[\\[\\]{}\":,a-z0-9_]{0,20}",
        ) {
            let mut body = String::new();
            for kind in kinds {
                body.push_str(&format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"index\":0,{extra}\n\n"));
                body.push_str(&format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"index\":0}}\n\n"));
            }
            let mut parser = MessagesStreamParser::new();
            let _ = parser.feed(body.as_bytes());
            let _ = parser.finish();
        }
    }
}
