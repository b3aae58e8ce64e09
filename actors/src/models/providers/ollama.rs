//! Ollama: `POST /api/chat`, `POST /api/generate` and `GET /api/tags`.
//!
//! Owns: the request bodies, the NDJSON stream parser, whole-response reading, and the
//! `/api/tags` check that the deployment's model is pulled. Never does: I/O or pulling
//! models (that is an operator's decision: a pull can be many gigabytes).
//!
//! Wire facts this module relies on:
//! - Base `http://localhost:11434`, no auth (a bearer key is sent when configured, for
//!   Ollama behind an authenticating proxy).
//! - `stream` defaults to **true** on Ollama, so whole answers send `"stream": false`.
//!   Limits go in `options`: `num_predict` (max tokens), `temperature`.
//! - A stream is NDJSON: one JSON object per line, `done: false` with a `message.content`
//!   (chat) or `response` (generate) fragment, then one `done: true` object with
//!   `done_reason` (`stop`, `length`, `load`, `unload`), `prompt_eval_count`, `eval_count`
//!   and durations in nanoseconds. No `done: true` line → truncated. `prompt_eval_count`
//!   is omitted when the prompt was served from Ollama's cache: zero prompt tokens then.
//! - Errors: `{"error":"…"}` as the body of a 4xx/5xx, or as a line mid-stream.
//! - Thinking models: `message.thinking` / `thinking` (newer Ollama), or `<think>` inline
//!   in the content (older Ollama with DeepSeek-R1): both become reasoning.
//! - `/api/tags` lists `models[].name` as `name:tag`; a name without tag means `:latest`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::framed::{Decoded, Events, Framed, StreamDecode};
use super::lines::LineSplitter;
use super::think::{answer_and_reasoning, ThinkSplitter};
use super::wire::{
    chat_messages, excerpt, parse_json_body, parse_json_unit, temperature_json, AuthHeader,
    ReplyBuilder,
};
use super::{
    FinishReason, HttpMethod, ProviderKind, ProviderWireError, Reply, StreamEvent, WireRequest,
    WireTarget, MAX_BODY_BYTES,
};
use crate::models::types::{ModelRequest, Usage};

const PROVIDER: ProviderKind = ProviderKind::Ollama;

fn base_request(
    target: &WireTarget,
    path: &str,
    stream: bool,
    mut body: Map<String, Value>,
    request: &ModelRequest,
) -> WireRequest {
    body.insert("model".into(), json!(target.model));
    body.insert("stream".into(), json!(stream));
    body.insert(
        "options".into(),
        json!({
            "num_predict": request.max_tokens,
            "temperature": temperature_json(request.temperature),
        }),
    );
    let mut wire = WireRequest::new(HttpMethod::Post, target.url(path));
    wire.headers
        .push(("content-type", "application/json".into()));
    if let Some(key) = target.api_key.as_ref().filter(|k| !k.is_empty()) {
        wire.auth = Some(AuthHeader::Bearer(key.clone()));
    }
    wire.body = Some(Value::Object(body));
    wire.stream = stream;
    wire
}

/// `POST {base}/api/chat` with system + user messages.
pub fn build_chat_request(
    target: &WireTarget,
    request: &ModelRequest,
    stream: bool,
) -> Result<WireRequest, ProviderWireError> {
    let mut body = Map::new();
    body.insert("messages".into(), chat_messages(request));
    Ok(base_request(target, "/api/chat", stream, body, request))
}

/// `POST {base}/api/generate` with `prompt` and `system`.
pub fn build_generate_request(
    target: &WireTarget,
    request: &ModelRequest,
    stream: bool,
) -> Result<WireRequest, ProviderWireError> {
    let mut body = Map::new();
    body.insert("prompt".into(), json!(request.prompt));
    if !request.system.trim().is_empty() {
        body.insert("system".into(), json!(request.system));
    }
    Ok(base_request(target, "/api/generate", stream, body, request))
}

/// `GET {base}/api/tags`: the health probe, and the list to check the model against.
pub fn build_tags_request(target: &WireTarget) -> WireRequest {
    let mut wire = WireRequest::new(HttpMethod::Get, target.url("/api/tags"));
    if let Some(key) = target.api_key.as_ref().filter(|k| !k.is_empty()) {
        wire.auth = Some(AuthHeader::Bearer(key.clone()));
    }
    wire
}

pub fn done_reason(raw: &str) -> FinishReason {
    match raw {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        other => FinishReason::Other(other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    content: Option<String>,
    thinking: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

/// One `/api/chat` or `/api/generate` object (a whole answer or one NDJSON line).
#[derive(Debug, Deserialize)]
struct WireLine {
    model: Option<String>,
    message: Option<WireMessage>,
    response: Option<String>,
    thinking: Option<String>,
    done: Option<bool>,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<Value>,
}

impl WireLine {
    fn content(&self) -> Option<&str> {
        self.message
            .as_ref()
            .and_then(|m| m.content.as_deref())
            .or(self.response.as_deref())
    }

    fn thinking(&self) -> Option<&str> {
        self.message
            .as_ref()
            .and_then(|m| m.thinking.as_deref())
            .or(self.thinking.as_deref())
    }

    fn is_done(&self) -> bool {
        self.done == Some(true)
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_eval_count.unwrap_or(0),
            completion_tokens: self.eval_count.unwrap_or(0),
        }
    }

    fn provider_error(&self) -> Option<ProviderWireError> {
        let error = self.error.as_ref()?;
        let message = match error {
            Value::String(message) => message.clone(),
            other => other.to_string(),
        };
        Some(ProviderWireError::Provider {
            provider: PROVIDER,
            // Mid-stream Ollama errors are runner failures (out of memory, a crashed
            // llama server), not faults of the request.
            class: crate::resilience::ErrorClass::Unavailable,
            status: None,
            message: excerpt(&message, 400),
        })
    }

    /// Tool calls of this line; Ollama sends each call whole, arguments as an object.
    fn tool_call_events(&self, base: usize, events: &mut Vec<StreamEvent>) {
        let calls = self
            .message
            .as_ref()
            .and_then(|m| m.tool_calls.as_deref())
            .unwrap_or(&[]);
        for (offset, call) in calls.iter().enumerate() {
            let function = call.function.as_ref();
            events.push(StreamEvent::ToolCallDelta {
                index: base + offset,
                id: None,
                name: function.and_then(|f| f.name.clone()),
                arguments: function
                    .and_then(|f| f.arguments.as_ref())
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            });
        }
    }
}

fn whole(body: &[u8]) -> Result<Reply, ProviderWireError> {
    let line: WireLine = parse_json_body(PROVIDER, "an answer", body)?;
    if let Some(err) = line.provider_error() {
        return Err(err);
    }
    if !line.is_done() {
        return Err(ProviderWireError::Malformed {
            provider: PROVIDER,
            what: "an answer",
            detail: "it is not `\"done\": true` (was the request sent with `\"stream\": false`?)"
                .into(),
        });
    }
    let (text, reasoning) =
        answer_and_reasoning(line.content().unwrap_or(""), line.thinking().unwrap_or(""));
    let mut events = Vec::new();
    line.tool_call_events(0, &mut events);
    let mut builder = ReplyBuilder::default();
    for event in &events {
        builder.apply(event);
    }
    Ok(Reply {
        text,
        reasoning,
        usage: line.usage(),
        finish_reason: line.done_reason.as_deref().map(done_reason),
        tool_calls: builder.build().tool_calls,
        model: line.model.clone(),
    })
}

/// Read a whole `/api/chat` answer (`"stream": false`).
pub fn parse_chat_response(body: &[u8]) -> Result<Reply, ProviderWireError> {
    whole(body)
}

/// Read a whole `/api/generate` answer (`"stream": false`).
pub fn parse_generate_response(body: &[u8]) -> Result<Reply, ProviderWireError> {
    whole(body)
}

/// Incremental parser of an `/api/chat` or `/api/generate` NDJSON stream (the two differ
/// only in where the text is, which [`WireLine`] reads from either place).
pub type OllamaStreamParser = Framed<LineSplitter, OllamaDecode>;

impl OllamaStreamParser {
    pub fn chat() -> Self {
        Self::ollama()
    }

    pub fn generate() -> Self {
        Self::ollama()
    }

    fn ollama() -> Self {
        Framed::with(
            PROVIDER,
            "the `\"done\": true` line",
            LineSplitter::new(MAX_BODY_BYTES),
            OllamaDecode {
                think: ThinkSplitter::default(),
                done: false,
            },
        )
    }
}

/// What one NDJSON line of Ollama's stream means; see [`Framed`].
#[derive(Debug)]
pub struct OllamaDecode {
    think: ThinkSplitter,
    done: bool,
}

impl StreamDecode for OllamaDecode {
    fn unit(&mut self, text: &str, reply: &mut ReplyBuilder, events: &mut Events) -> Decoded {
        if self.done || text.trim().is_empty() {
            return Ok(());
        }
        if text.trim_start().starts_with('<') {
            return Err(super::wire::not_a_stream(PROVIDER, text));
        }
        let line: WireLine = parse_json_unit(PROVIDER, "a stream line", text)?;
        if let Some(err) = line.provider_error() {
            return Err(err);
        }
        if reply.model.is_none() {
            reply.model = line.model.clone();
        }
        if let Some(thinking) = line.thinking().filter(|t| !t.is_empty()) {
            events.push(StreamEvent::ReasoningDelta(thinking.to_string()));
        }
        if let Some(content) = line.content() {
            self.think.push_events(content, events);
        }
        line.tool_call_events(reply.tool_calls.len(), events);
        if line.is_done() {
            self.done = true;
            self.think.finish_events(events);
            if let Some(reason) = &line.done_reason {
                events.push(StreamEvent::Finish(done_reason(reason)));
            }
            events.push(StreamEvent::Usage(line.usage()));
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        self.done
    }
}

/// One installed model from `/api/tags`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstalledModel {
    pub name: String,
    pub model: Option<String>,
    pub size: Option<u64>,
    pub digest: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireTags {
    models: Option<Vec<InstalledModel>>,
}

/// Read a `/api/tags` body.
pub fn parse_tags(body: &[u8]) -> Result<Vec<InstalledModel>, ProviderWireError> {
    let tags: WireTags = parse_json_body(PROVIDER, "a model list", body)?;
    tags.models.ok_or_else(|| ProviderWireError::Malformed {
        provider: PROVIDER,
        what: "a model list",
        detail: "it has no `models` array (is this an Ollama server?)".into(),
    })
}

/// `name` with the implicit `:latest` tag made explicit.
fn with_tag(name: &str) -> String {
    let name = name.trim();
    // A `:` inside the last path segment is a tag; `host:port/x` has it before a `/`.
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Ok if `model` is installed; otherwise the error that says to `ollama pull` it.
pub fn ensure_model_present(
    installed: &[InstalledModel],
    model: &str,
) -> Result<(), ProviderWireError> {
    let wanted = with_tag(model);
    let present = installed.iter().any(|m| {
        with_tag(&m.name) == wanted || m.model.as_deref().is_some_and(|id| with_tag(id) == wanted)
    });
    if present {
        return Ok(());
    }
    let names: Vec<&str> = installed.iter().map(|m| m.name.as_str()).collect();
    Err(ProviderWireError::ModelNotPulled {
        model: model.trim().to_string(),
        installed: if names.is_empty() {
            "none".to_string()
        } else {
            excerpt(&names.join(", "), 300)
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::providers::testkit::{replay, request};
    use crate::models::providers::StreamParser;
    use crate::models::providers::{ApiKey, ToolCall};
    use proptest::prelude::*;

    /// Recorded whole `/api/chat` answer (gemma2 on localhost, 2025-08-21).
    pub(crate) const WHOLE: &str = "{\"model\":\"gemma2\",\"created_at\":\"2025-08-21T12:41:21.294827Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hello! 👋  How can I help you today?\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":9819624917,\"load_duration\":4533008625,\"prompt_eval_count\":26,\"prompt_eval_duration\":4819809375,\"eval_count\":12,\"eval_duration\":462770333}";

    /// The same answer as Ollama streams it: fragments, then the `done` line with counts.
    pub(crate) const STREAM: &str = concat!(
        "{\"model\":\"gemma2\",\"created_at\":\"2025-08-21T12:41:20.900Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"done\":false}\n",
        "{\"model\":\"gemma2\",\"created_at\":\"2025-08-21T12:41:20.950Z\",\"message\":{\"role\":\"assistant\",\"content\":\"! 👋 \"},\"done\":false}\n",
        "{\"model\":\"gemma2\",\"created_at\":\"2025-08-21T12:41:21.100Z\",\"message\":{\"role\":\"assistant\",\"content\":\" How can I help you today?\"},\"done\":false}\n",
        "{\"model\":\"gemma2\",\"created_at\":\"2025-08-21T12:41:21.294827Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":9819624917,\"load_duration\":4533008625,\"prompt_eval_count\":26,\"prompt_eval_duration\":4819809375,\"eval_count\":12,\"eval_duration\":462770333}\n",
    );

    pub(crate) const TAGS: &str = r#"{"models":[{"name":"gemma2:latest","model":"gemma2:latest","modified_at":"2025-08-20T10:00:00.000000+02:00","size":5443152417,"digest":"ff02c3702f32","details":{"parent_model":"","format":"gguf","family":"gemma2","families":["gemma2"],"parameter_size":"9.2B","quantization_level":"Q4_0"}},{"name":"deepseek-r1:8b","model":"deepseek-r1:8b","modified_at":"2025-08-19T09:00:00+02:00","size":5225376047,"digest":"6995872bfe4c","details":{"format":"gguf","family":"qwen3","parameter_size":"8.2B","quantization_level":"Q4_K_M"}}]}"#;

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    #[test]
    fn chat_and_generate_requests() {
        let target = WireTarget::new(ProviderKind::Ollama, "gemma2");
        let wire = build_chat_request(&target, &request(), false).unwrap();
        assert_eq!(wire.url, "http://localhost:11434/api/chat");
        assert_eq!(wire.auth_header_name(), None);
        assert_eq!(
            wire.body.unwrap(),
            json!({
                "model": "gemma2",
                "messages": [
                    {"role": "system", "content": "You are a careful trader."},
                    {"role": "user", "content": "BTC at 97k. Buy?"}
                ],
                "stream": false,
                "options": {"num_predict": 300, "temperature": 0.2}
            })
        );
        let wire = build_generate_request(
            &target.clone().with_api_key(ApiKey::new("proxy-k")),
            &request(),
            true,
        )
        .unwrap();
        assert_eq!(wire.url, "http://localhost:11434/api/generate");
        assert_eq!(wire.auth_header_name(), Some("authorization"));
        let body = wire.body.unwrap();
        assert_eq!(
            (
                body["prompt"].as_str(),
                body["system"].as_str(),
                &body["stream"]
            ),
            (
                Some("BTC at 97k. Buy?"),
                Some("You are a careful trader."),
                &json!(true)
            )
        );
        let tags = build_tags_request(&target.with_base_url("http://gpu-box:11434/"));
        assert_eq!(
            (tags.method, tags.url.as_str()),
            (HttpMethod::Get, "http://gpu-box:11434/api/tags")
        );
    }

    #[test]
    fn recorded_whole_answer() {
        let reply = parse_chat_response(WHOLE.as_bytes()).unwrap();
        assert_eq!(reply.text, "Hello! 👋  How can I help you today?");
        assert_eq!(reply.usage, usage(26, 12));
        assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        assert_eq!(reply.model.as_deref(), Some("gemma2"));
    }

    #[test]
    fn streamed_answer_matches_the_whole_one() {
        let reply = replay(&mut OllamaStreamParser::chat(), STREAM.as_bytes(), &[]).unwrap();
        assert_eq!(reply, parse_chat_response(WHOLE.as_bytes()).unwrap());
    }

    #[test]
    fn generate_stream_with_inline_think_and_cached_prompt() {
        let stream = concat!(
            "{\"model\":\"deepseek-r1:8b\",\"created_at\":\"t\",\"response\":\"<think>\",\"done\":false}\n",
            "{\"model\":\"deepseek-r1:8b\",\"created_at\":\"t\",\"response\":\"volume is thin\",\"done\":false}\n",
            "{\"model\":\"deepseek-r1:8b\",\"created_at\":\"t\",\"response\":\"</think>\\n\\n\",\"done\":false}\n",
            "{\"model\":\"deepseek-r1:8b\",\"created_at\":\"t\",\"response\":\"NOTHING\",\"done\":false}\n",
            // prompt_eval_count omitted: the prompt came from Ollama's cache.
            "{\"model\":\"deepseek-r1:8b\",\"created_at\":\"t\",\"response\":\"\",\"done\":true,\"done_reason\":\"length\",\"context\":[1,2,3],\"total_duration\":1,\"eval_count\":40}",
        );
        let reply = replay(&mut OllamaStreamParser::generate(), stream.as_bytes(), &[]).unwrap();
        assert_eq!(reply.text, "NOTHING");
        assert_eq!(reply.reasoning.as_deref(), Some("volume is thin"));
        assert_eq!(reply.usage, usage(0, 40));
        assert_eq!(reply.finish_reason, Some(FinishReason::Length));
    }

    #[test]
    fn thinking_field_and_tool_calls() {
        let body = r#"{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"","thinking":"need price","tool_calls":[{"function":{"name":"get_price","arguments":{"symbol":"SOL"}}}]},"done_reason":"stop","done":true,"prompt_eval_count":9,"eval_count":7}"#;
        let reply = parse_chat_response(body.as_bytes()).unwrap();
        assert_eq!(reply.reasoning.as_deref(), Some("need price"));
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                id: None,
                name: "get_price".into(),
                arguments: r#"{"symbol":"SOL"}"#.into()
            }]
        );
    }

    #[test]
    fn an_error_line_mid_stream_and_a_missing_done_line() {
        let stream = format!(
            "{}{{\"error\":\"llama runner process has terminated: signal: killed\"}}\n",
            &STREAM[..STREAM.find('\n').unwrap() + 1]
        );
        let mut parser = OllamaStreamParser::chat();
        let err = parser.feed(stream.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("llama runner process has terminated"),
            "{err}"
        );

        let cut = STREAM.rfind("{\"model\"").unwrap();
        let mut parser = OllamaStreamParser::chat();
        parser.feed(&STREAM.as_bytes()[..cut]).unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
        let mut parser = OllamaStreamParser::chat();
        parser
            .feed(&STREAM.as_bytes()[..STREAM.len() - 10])
            .unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
    }

    #[test]
    fn a_streamed_body_is_not_a_whole_answer() {
        assert!(matches!(
            parse_chat_response(&STREAM.as_bytes()[..STREAM.find('\n').unwrap()]),
            Err(ProviderWireError::Malformed { .. })
        ));
    }

    #[test]
    fn tags_find_models_with_and_without_the_latest_tag() {
        let installed = parse_tags(TAGS.as_bytes()).unwrap();
        assert_eq!(installed.len(), 2);
        assert!(ensure_model_present(&installed, "gemma2").is_ok());
        assert!(ensure_model_present(&installed, "gemma2:latest").is_ok());
        assert!(ensure_model_present(&installed, "deepseek-r1:8b").is_ok());
        let err = ensure_model_present(&installed, "deepseek-r1").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`ollama pull deepseek-r1`"), "{text}");
        assert!(text.contains("gemma2:latest, deepseek-r1:8b"), "{text}");
        assert_eq!(err.class(), crate::resilience::ErrorClass::Unavailable);
        assert!(ensure_model_present(&[], "llama3.2")
            .unwrap_err()
            .to_string()
            .contains("installed: none"));
        assert!(matches!(
            parse_tags(b"{\"object\":\"list\",\"data\":[]}"),
            Err(ProviderWireError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn stream_parses_the_same_under_any_chunking(cuts in proptest::collection::vec(0usize..900, 0..12), crlf in any::<bool>()) {
            let body = if crlf { STREAM.replace('\n', "\r\n") } else { STREAM.to_string() };
            let reply = replay(&mut OllamaStreamParser::chat(), body.as_bytes(), &cuts).unwrap();
            prop_assert_eq!(reply.text.as_str(), "Hello! 👋  How can I help you today?");
            prop_assert_eq!(reply.usage, usage(26, 12));
        }

        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut parser = OllamaStreamParser::chat();
            for chunk in &chunks {
                let _ = parser.feed(chunk);
            }
            let _ = parser.finish();
            let flat = chunks.concat();
            let _ = parse_chat_response(&flat);
            let _ = parse_tags(&flat);
        }
    }
}
