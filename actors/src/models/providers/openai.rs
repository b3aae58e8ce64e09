//! OpenAI chat completions (`POST {base}/chat/completions`), and the deployments that
//! speak it: Groq, DeepSeek, xAI, OpenRouter.
//!
//! Owns: the request body, the whole-response reading and the SSE stream parser of this
//! format, and each compatible provider's quirks. Never does: I/O.
//!
//! Wire facts this module relies on:
//! - Auth `Authorization: Bearer <key>`. OpenRouter also takes optional `HTTP-Referer`
//!   and `X-Title` (app attribution).
//! - Token limit: OpenAI and Groq take `max_completion_tokens` (OpenAI's reasoning models
//!   reject the older `max_tokens`); DeepSeek, xAI and OpenRouter take `max_tokens`.
//!   OpenAI reasoning models (`o1`, `o3`, `o4-*`, `gpt-5*`) reject any `temperature`
//!   other than the default, so it is left out for them.
//! - Streaming: `stream: true` with `stream_options.include_usage: true`; chunks are SSE
//!   `data:` lines, then a usage-only chunk with `"choices": []`, then `data: [DONE]`.
//!   Without `[DONE]` the stream is truncated (the usage chunk may be missing too).
//!   Tool-call arguments arrive as fragments keyed by `tool_calls[].index`; `id` and
//!   `function.name` come once, in the first fragment.
//! - Quirks tolerated: Groq's usage extras (`queue_time`, `prompt_time`, …) and its older
//!   `x_groq.usage` in the last chunk; DeepSeek's `prompt_cache_hit_tokens`; DeepSeek's
//!   `reasoning_content` and OpenRouter/Groq's `reasoning` (kept as reasoning, never as the
//!   answer); `<think>…</think>` inline in the answer (moved to reasoning); OpenRouter's
//!   `: OPENROUTER PROCESSING` SSE comments and its mid-stream `{"error":…}` chunk; xAI's
//!   usage on every chunk (the last one wins).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::classify::ErrorDetail;
use super::framed::{Decoded, Events, Framed, StreamDecode};
use super::lines::SseDecoder;
use super::think::{answer_and_reasoning, ThinkSplitter};
use super::wire::{chat_messages, parse_json_body, temperature_json, AuthHeader, ReplyBuilder};
use super::{
    FinishReason, HttpMethod, ProviderKind, ProviderWireError, Reply, StreamEvent, ToolCall,
    WireRequest, WireTarget, MAX_BODY_BYTES,
};
use crate::models::types::{ModelRequest, Usage};

/// Which field carries the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLimitField {
    MaxTokens,
    MaxCompletionTokens,
}

impl TokenLimitField {
    fn key(self) -> &'static str {
        match self {
            TokenLimitField::MaxTokens => "max_tokens",
            TokenLimitField::MaxCompletionTokens => "max_completion_tokens",
        }
    }

    pub fn for_provider(provider: ProviderKind) -> Self {
        match provider {
            ProviderKind::OpenAi | ProviderKind::Groq => TokenLimitField::MaxCompletionTokens,
            _ => TokenLimitField::MaxTokens,
        }
    }
}

/// Whether OpenAI will refuse a non-default `temperature` for this model.
pub fn rejects_temperature(provider: ProviderKind, model: &str) -> bool {
    if provider != ProviderKind::OpenAi {
        return false;
    }
    let model = model.trim().to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|prefix| {
        model == *prefix
            || model
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
    })
}

/// `POST {base}/chat/completions` with system + user messages.
pub fn build_chat_request(
    target: &WireTarget,
    request: &ModelRequest,
    stream: bool,
) -> Result<WireRequest, ProviderWireError> {
    let key = target.required_key()?;
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    body.insert("messages".into(), chat_messages(request));
    body.insert(
        TokenLimitField::for_provider(target.provider).key().into(),
        json!(request.max_tokens),
    );
    if !rejects_temperature(target.provider, &target.model) {
        body.insert("temperature".into(), temperature_json(request.temperature));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }

    let mut wire = WireRequest::new(HttpMethod::Post, target.url("/chat/completions"));
    wire.headers
        .push(("content-type", "application/json".into()));
    wire.headers.push((
        "accept",
        if stream {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into(),
    ));
    if target.provider == ProviderKind::OpenRouter {
        if let Some(url) = &target.app_url {
            wire.headers.push(("http-referer", url.clone()));
        }
        if let Some(title) = &target.app_title {
            wire.headers.push(("x-title", title.clone()));
        }
    }
    wire.auth = Some(AuthHeader::Bearer(key));
    wire.body = Some(Value::Object(body));
    wire.stream = stream;
    Ok(wire)
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
        }
    }
}

#[derive(Debug, Deserialize)]
struct XGroq {
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    index: Option<usize>,
    id: Option<String>,
    function: Option<WireFunction>,
}

/// `message` of a whole response and `delta` of a chunk share these fields.
#[derive(Debug, Deserialize)]
struct WireMessage {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    index: Option<u64>,
    message: Option<WireMessage>,
    delta: Option<WireMessage>,
    finish_reason: Option<String>,
}

/// A whole response or one stream chunk.
#[derive(Debug, Deserialize)]
struct WireCompletion {
    model: Option<String>,
    choices: Option<Vec<WireChoice>>,
    usage: Option<WireUsage>,
    x_groq: Option<XGroq>,
    error: Option<Value>,
}

impl WireCompletion {
    fn usage(&self) -> Option<Usage> {
        self.usage
            .as_ref()
            .or_else(|| self.x_groq.as_ref().and_then(|x| x.usage.as_ref()))
            .map(WireUsage::usage)
    }

    /// The first choice; `n > 1` is never requested.
    fn first_choice(&self) -> Option<&WireChoice> {
        self.choices
            .as_deref()
            .and_then(|choices| choices.iter().find(|c| c.index.unwrap_or(0) == 0))
    }

    fn provider_error(
        &self,
        provider: ProviderKind,
        status: Option<u16>,
    ) -> Option<ProviderWireError> {
        let error = self.error.as_ref()?;
        let detail = ErrorDetail::from_value(&json!({ "error": error }));
        Some(ProviderWireError::Provider {
            provider,
            class: detail.stream_class(),
            status: status.or(detail.status),
            message: detail.describe(),
        })
    }
}

pub fn finish_reason(raw: &str) -> FinishReason {
    match raw {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// Read a whole 2xx chat-completions body.
pub fn parse_chat_response(
    provider: ProviderKind,
    body: &[u8],
) -> Result<Reply, ProviderWireError> {
    let completion: WireCompletion = parse_json_body(provider, "a chat completion", body)?;
    let Some(choice) = completion.first_choice() else {
        // OpenRouter (and some proxies) answer 200 with an error object.
        return Err(completion.provider_error(provider, None).unwrap_or(
            ProviderWireError::Malformed {
                provider,
                what: "a chat completion",
                detail: "it has no choices".into(),
            },
        ));
    };
    let message = choice.message.as_ref();
    let (text, reasoning) = answer_and_reasoning(
        message.and_then(|m| m.content.as_deref()).unwrap_or(""),
        message
            .and_then(|m| m.reasoning_content.as_deref().or(m.reasoning.as_deref()))
            .unwrap_or(""),
    );
    let tool_calls = message
        .and_then(|m| m.tool_calls.as_ref())
        .map(|calls| {
            calls
                .iter()
                .map(|call| ToolCall {
                    id: call.id.clone(),
                    name: call
                        .function
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default(),
                    arguments: call
                        .function
                        .as_ref()
                        .and_then(|f| f.arguments.clone())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        text,
        reasoning,
        usage: completion.usage().unwrap_or_default(),
        finish_reason: choice.finish_reason.as_deref().map(finish_reason),
        tool_calls,
        model: completion.model.clone(),
    })
}

/// Incremental parser of a chat-completions SSE stream.
pub type ChatStreamParser = Framed<SseDecoder, ChatDecode>;

impl ChatStreamParser {
    pub fn new(provider: ProviderKind) -> Self {
        Framed::with(
            provider,
            "`data: [DONE]`",
            SseDecoder::new(MAX_BODY_BYTES),
            ChatDecode {
                provider,
                think: ThinkSplitter::default(),
                done: false,
            },
        )
    }
}

/// What one chat-completions SSE event means; see [`Framed`].
#[derive(Debug)]
pub struct ChatDecode {
    provider: ProviderKind,
    think: ThinkSplitter,
    done: bool,
}

impl StreamDecode for ChatDecode {
    fn unit(&mut self, data: &str, reply: &mut ReplyBuilder, events: &mut Events) -> Decoded {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            self.think.finish_events(events);
            return Ok(());
        }
        let chunk: WireCompletion =
            super::wire::parse_json_unit(self.provider, "a stream chunk", data)?;
        if let Some(err) = chunk.provider_error(self.provider, None) {
            return Err(err);
        }
        if reply.model.is_none() {
            reply.model = chunk.model.clone();
        }
        if let Some(choice) = chunk.first_choice() {
            if let Some(delta) = &choice.delta {
                if let Some(reasoning) = delta
                    .reasoning_content
                    .as_ref()
                    .or(delta.reasoning.as_ref())
                {
                    if !reasoning.is_empty() {
                        events.push(StreamEvent::ReasoningDelta(reasoning.clone()));
                    }
                }
                if let Some(content) = &delta.content {
                    self.think.push_events(content, events);
                }
                for (position, call) in delta.tool_calls.iter().flatten().enumerate() {
                    events.push(StreamEvent::ToolCallDelta {
                        index: call.index.unwrap_or(position),
                        id: call.id.clone(),
                        name: call.function.as_ref().and_then(|f| f.name.clone()),
                        arguments: call
                            .function
                            .as_ref()
                            .and_then(|f| f.arguments.clone())
                            .unwrap_or_default(),
                    });
                }
            }
            if let Some(reason) = &choice.finish_reason {
                events.push(StreamEvent::Finish(finish_reason(reason)));
            }
        }
        if let Some(usage) = chunk.usage() {
            events.push(StreamEvent::Usage(usage));
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::providers::testkit::{replay, request};
    use crate::models::providers::ApiKey;
    use crate::models::providers::StreamParser;
    use crate::resilience::ErrorClass;
    use proptest::prelude::*;

    /// openai-python's recorded stream (gpt-4o-2024-08-06) with logprobs: "Foo!".
    pub(crate) const TEXT_WITH_LOGPROBS: &str = concat!(
        r#"data: {"id":"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c","object":"chat.completion.chunk","created":1727346173,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":{"content":[],"refusal":null},"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c","object":"chat.completion.chunk","created":1727346173,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"content":"Foo"},"logprobs":{"content":[{"token":"Foo","logprob":-0.0025094282,"bytes":[70,111,111],"top_logprobs":[]}],"refusal":null},"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c","object":"chat.completion.chunk","created":1727346173,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"content":"!"},"logprobs":{"content":[{"token":"!","logprob":-0.26638845,"bytes":[33],"top_logprobs":[]}],"refusal":null},"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c","object":"chat.completion.chunk","created":1727346173,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c","object":"chat.completion.chunk","created":1727346173,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        "\n\n",
        "data: [DONE]\n\n",
    );

    /// openai-python's recorded stream cut by `max_tokens`: `{"` then `length`.
    const LENGTH_CUT: &str = concat!(
        r#"data: {"id":"chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh","object":"chat.completion.chunk","created":1727346171,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh","object":"chat.completion.chunk","created":1727346171,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"content":"{\""},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh","object":"chat.completion.chunk","created":1727346171,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh","object":"chat.completion.chunk","created":1727346171,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[],"usage":{"prompt_tokens":79,"completion_tokens":1,"total_tokens":80,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        "\n\n",
        "data: [DONE]\n\n",
    );

    /// openai-python's recorded tool-call stream: get_weather({"city":"New York City"}).
    /// Repeated envelope fields (`id`, `created`, `system_fingerprint`) trimmed.
    const TOOL_CALL: &str = concat!(
        r#"data: {"object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_4XzlGBLtUe9dy3GVNV4jhq7h","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\":\""}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"New"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" York"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" City"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
        "\n\n",
        r#"data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":44,"completion_tokens":16,"total_tokens":60,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        "\n\n",
        "data: [DONE]\n\n",
    );

    /// Recorded non-streamed answers (api.openai.com, Groq, DeepSeek).
    pub(crate) const OPENAI_BODY: &str = "{\n  \"id\": \"chatcmpl-CcWj9dBmozYrIh53F5tkednY14t4r\",\n  \"object\": \"chat.completion\",\n  \"created\": 1763298303,\n  \"model\": \"gpt-5.1-chat-latest\",\n  \"choices\": [\n    {\n      \"index\": 0,\n      \"message\": {\n        \"role\": \"assistant\",\n        \"content\": \"Hello! How can I help you today?\",\n        \"refusal\": null,\n        \"annotations\": []\n      },\n      \"finish_reason\": \"stop\"\n    }\n  ],\n  \"usage\": {\n    \"prompt_tokens\": 20,\n    \"completion_tokens\": 18,\n    \"total_tokens\": 38,\n    \"prompt_tokens_details\": {\n      \"cached_tokens\": 0,\n      \"audio_tokens\": 0\n    },\n    \"completion_tokens_details\": {\n      \"reasoning_tokens\": 0,\n      \"audio_tokens\": 0,\n      \"accepted_prediction_tokens\": 0,\n      \"rejected_prediction_tokens\": 0\n    }\n  },\n  \"service_tier\": \"default\",\n  \"system_fingerprint\": null\n}\n";
    pub(crate) const GROQ_BODY: &str = "{\"id\":\"chatcmpl-59364eff-df3b-4826-b4d6-1562b9cdf2be\",\"object\":\"chat.completion\",\"created\":1763298164,\"model\":\"moonshotai/kimi-k2-instruct-0905\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How can I help you today?\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"queue_time\":0.190203705,\"prompt_tokens\":30,\"prompt_time\":0.010721307,\"completion_tokens\":10,\"completion_time\":0.012596456,\"total_tokens\":40,\"total_time\":0.023317763},\"usage_breakdown\":null,\"system_fingerprint\":\"fp_05df423bab\",\"x_groq\":{\"id\":\"req_01ka6c5fgseaksg4wxp79d43hm\"},\"service_tier\":\"on_demand\"}\n";
    pub(crate) const DEEPSEEK_BODY: &str = "{\"id\":\"b55e6172-d379-4806-b4e0-d21dd4b243b7\",\"object\":\"chat.completion\",\"created\":1755780061,\"model\":\"deepseek-v4-pro\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How can I assist you today?\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":9,\"total_tokens\":23,\"prompt_tokens_details\":{\"cached_tokens\":0},\"prompt_cache_hit_tokens\":0,\"prompt_cache_miss_tokens\":14},\"system_fingerprint\":\"fp_feb633d1f5_prod0820_fp8_kvcache\"}";

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    fn target(kind: ProviderKind, model: &str) -> WireTarget {
        WireTarget::new(kind, model).with_api_key(ApiKey::new("k"))
    }

    #[test]
    fn openai_streaming_request_body_and_headers() {
        let wire = build_chat_request(
            &target(ProviderKind::OpenAi, "gpt-4o-mini"),
            &request(),
            true,
        )
        .unwrap();
        assert_eq!(wire.method, HttpMethod::Post);
        assert_eq!(wire.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(wire.auth_header_name(), Some("authorization"));
        assert_eq!(
            wire.body.unwrap(),
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are a careful trader."},
                    {"role": "user", "content": "BTC at 97k. Buy?"}
                ],
                "max_completion_tokens": 300,
                "temperature": 0.2,
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
        assert!(wire
            .headers
            .contains(&("accept", "text/event-stream".into())));
    }

    #[test]
    fn compatible_providers_get_their_url_token_field_and_headers() {
        let mut req = request();
        req.system.clear();
        let deepseek = build_chat_request(
            &target(ProviderKind::DeepSeek, "deepseek-chat"),
            &req,
            false,
        )
        .unwrap();
        assert_eq!(deepseek.url, "https://api.deepseek.com/chat/completions");
        let body = deepseek.body.unwrap();
        assert_eq!(body["max_tokens"], json!(300));
        assert_eq!(
            body["messages"].as_array().unwrap().len(),
            1,
            "no empty system message"
        );
        assert!(body.get("stream").is_none());

        let groq = build_chat_request(
            &target(ProviderKind::Groq, "llama-3.3-70b-versatile"),
            &req,
            false,
        )
        .unwrap();
        assert_eq!(groq.url, "https://api.groq.com/openai/v1/chat/completions");
        assert_eq!(groq.body.unwrap()["max_completion_tokens"], json!(300));

        let xai = build_chat_request(&target(ProviderKind::Xai, "grok-4"), &req, false).unwrap();
        assert_eq!(xai.url, "https://api.x.ai/v1/chat/completions");

        let openrouter = target(ProviderKind::OpenRouter, "anthropic/claude-sonnet-4")
            .with_attribution(Some("https://orrery.example".into()), Some("Orrery".into()));
        let wire = build_chat_request(&openrouter, &req, false).unwrap();
        assert_eq!(wire.url, "https://openrouter.ai/api/v1/chat/completions");
        let map = wire.header_map().unwrap();
        assert_eq!(map["http-referer"], "https://orrery.example");
        assert_eq!(map["x-title"], "Orrery");
        // Attribution is OpenRouter's alone.
        let plain = build_chat_request(
            &target(ProviderKind::OpenAi, "gpt-4o").with_attribution(Some("u".into()), None),
            &req,
            false,
        )
        .unwrap();
        assert!(plain.header_map().unwrap().get("http-referer").is_none());
    }

    #[test]
    fn openai_reasoning_models_get_no_temperature() {
        for model in [
            "o1",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5.1-chat-latest",
            "gpt-5-mini",
        ] {
            assert!(rejects_temperature(ProviderKind::OpenAi, model), "{model}");
            let wire = build_chat_request(&target(ProviderKind::OpenAi, model), &request(), false)
                .unwrap();
            assert!(wire.body.unwrap().get("temperature").is_none(), "{model}");
        }
        for model in ["gpt-4o", "gpt-4.1-mini", "o1x", "gpt-50"] {
            assert!(!rejects_temperature(ProviderKind::OpenAi, model), "{model}");
        }
        assert!(!rejects_temperature(ProviderKind::OpenRouter, "o3-mini"));
    }

    #[test]
    fn recorded_whole_answers() {
        let reply = parse_chat_response(ProviderKind::OpenAi, OPENAI_BODY.as_bytes()).unwrap();
        assert_eq!(reply.text, "Hello! How can I help you today?");
        assert_eq!(reply.usage, usage(20, 18));
        assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        assert_eq!(reply.model.as_deref(), Some("gpt-5.1-chat-latest"));

        let reply = parse_chat_response(ProviderKind::Groq, GROQ_BODY.as_bytes()).unwrap();
        assert_eq!(reply.text, "Hello! How can I help you today?");
        assert_eq!(reply.usage, usage(30, 10));

        let reply = parse_chat_response(ProviderKind::DeepSeek, DEEPSEEK_BODY.as_bytes()).unwrap();
        assert_eq!(reply.text, "Hello! How can I assist you today?");
        assert_eq!(reply.usage, usage(14, 9));
        assert_eq!(reply.reasoning, None);
    }

    #[test]
    fn deepseek_reasoning_content_and_think_blocks_stay_out_of_the_answer() {
        let body = r#"{"id":"x","object":"chat.completion","model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"BUY","reasoning_content":"Price broke resistance."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":50,"total_tokens":70,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":20,"completion_tokens_details":{"reasoning_tokens":45}}}"#;
        let reply = parse_chat_response(ProviderKind::DeepSeek, body.as_bytes()).unwrap();
        assert_eq!(reply.text, "BUY");
        assert_eq!(reply.reasoning.as_deref(), Some("Price broke resistance."));

        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"<think>\nfunding is negative\n</think>\n\nSELL"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
        let reply = parse_chat_response(ProviderKind::Groq, body.as_bytes()).unwrap();
        assert_eq!(reply.text, "SELL");
        assert_eq!(reply.reasoning.as_deref(), Some("\nfunding is negative\n"));
    }

    #[test]
    fn whole_answer_with_tool_calls_and_null_content() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_price","arguments":"{\"symbol\":\"BTC\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let reply = parse_chat_response(ProviderKind::OpenAi, body.as_bytes()).unwrap();
        assert_eq!(reply.text, "");
        assert_eq!(reply.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                id: Some("call_1".into()),
                name: "get_price".into(),
                arguments: r#"{"symbol":"BTC"}"#.into()
            }]
        );
    }

    #[test]
    fn a_200_error_body_is_a_provider_error() {
        let body = r#"{"error":{"code":502,"message":"Provider returned error","metadata":{"provider_name":"Fireworks"}}}"#;
        match parse_chat_response(ProviderKind::OpenRouter, body.as_bytes()) {
            Err(ProviderWireError::Provider {
                class,
                status,
                message,
                ..
            }) => {
                assert_eq!(class, ErrorClass::Unavailable);
                assert_eq!(status, Some(502));
                assert!(message.contains("Provider returned error"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_chat_response(ProviderKind::OpenAi, br#"{"choices":[]}"#),
            Err(ProviderWireError::Malformed { .. })
        ));
    }

    #[test]
    fn recorded_text_stream() {
        let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
        let reply = replay(&mut parser, TEXT_WITH_LOGPROBS.as_bytes(), &[]).unwrap();
        assert_eq!(reply.text, "Foo!");
        assert_eq!(reply.usage, usage(9, 2));
        assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
        assert_eq!(reply.model.as_deref(), Some("gpt-4o-2024-08-06"));
    }

    #[test]
    fn recorded_length_cut_stream() {
        let reply = replay(
            &mut ChatStreamParser::new(ProviderKind::OpenAi),
            LENGTH_CUT.as_bytes(),
            &[],
        )
        .unwrap();
        assert_eq!(reply.text, "{\"");
        assert_eq!(reply.usage, usage(79, 1));
        assert_eq!(reply.finish_reason, Some(FinishReason::Length));
    }

    #[test]
    fn recorded_tool_call_stream_accumulates_arguments() {
        let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
        let reply = replay(&mut parser, TOOL_CALL.as_bytes(), &[]).unwrap();
        assert_eq!(reply.text, "");
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                id: Some("call_4XzlGBLtUe9dy3GVNV4jhq7h".into()),
                name: "get_weather".into(),
                arguments: r#"{"city":"New York City"}"#.into()
            }]
        );
        assert_eq!(reply.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(reply.usage, usage(44, 16));
    }

    #[test]
    fn stream_events_arrive_in_order() {
        let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
        let events = parser.feed(TEXT_WITH_LOGPROBS.as_bytes()).unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta("Foo".into()),
                StreamEvent::TextDelta("!".into()),
                StreamEvent::Finish(FinishReason::Stop),
                StreamEvent::Usage(usage(9, 2)),
            ]
        );
    }

    #[test]
    fn a_stream_without_done_is_truncated_even_after_finish_reason() {
        let cut = TEXT_WITH_LOGPROBS.find("data: [DONE]").unwrap();
        let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
        parser.feed(&TEXT_WITH_LOGPROBS.as_bytes()[..cut]).unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
        // Cut in the middle of a JSON line: still truncated, not a parse error.
        let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
        parser.feed(&TEXT_WITH_LOGPROBS.as_bytes()[..400]).unwrap();
        assert!(matches!(
            parser.finish(),
            Err(ProviderWireError::Truncated { .. })
        ));
    }

    #[test]
    fn deepseek_reasoning_stream_and_think_tags_split_across_chunks() {
        let stream = concat!(
            r#"data: {"model":"deepseek-reasoner","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Think"},"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"ing."},"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"content":"<thi"},"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"content":"nk>more</think>\n\nHOLD"},"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":10}}"#,
            "\n\n",
            "data: [DONE]\n\n",
        );
        let reply = replay(
            &mut ChatStreamParser::new(ProviderKind::DeepSeek),
            stream.as_bytes(),
            &[],
        )
        .unwrap();
        assert_eq!(reply.text, "HOLD");
        assert_eq!(reply.reasoning.as_deref(), Some("Thinking.more"));
        assert_eq!(reply.usage, usage(10, 20));
    }

    #[test]
    fn groq_x_groq_usage_and_openrouter_comments_are_read() {
        let stream = concat!(
            ": OPENROUTER PROCESSING\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}],"x_groq":{"id":"req_1"}}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"queue_time":0.02,"prompt_tokens":12,"prompt_time":0.001,"completion_tokens":2,"completion_time":0.002,"total_tokens":14,"total_time":0.003}}}"#,
            "\n\n",
            "data: [DONE]\n\n",
        );
        let reply = replay(
            &mut ChatStreamParser::new(ProviderKind::Groq),
            stream.as_bytes(),
            &[],
        )
        .unwrap();
        assert_eq!((reply.text.as_str(), reply.usage), ("ok", usage(12, 2)));
    }

    #[test]
    fn a_mid_stream_error_chunk_ends_the_stream_with_its_class() {
        let stream = concat!(
            r#"data: {"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"id":"gen-1","object":"chat.completion.chunk","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
            "\n\n",
        );
        let mut parser = ChatStreamParser::new(ProviderKind::OpenRouter);
        let err = parser.feed(stream.as_bytes()).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unavailable);
        assert!(err.to_string().contains("Provider disconnected"), "{err}");
        assert_eq!(
            parser.finish().unwrap_err(),
            err,
            "a failed parser stays failed"
        );
    }

    #[test]
    fn malformed_json_in_a_chunk_is_a_typed_error() {
        let mut parser = ChatStreamParser::new(ProviderKind::Xai);
        let err = parser.feed(b"data: {\"choices\": [\n\n").unwrap_err();
        assert!(
            matches!(
                err,
                ProviderWireError::Malformed {
                    provider: ProviderKind::Xai,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    proptest! {
        #[test]
        fn recorded_streams_parse_the_same_under_any_chunking(
            cuts in proptest::collection::vec(0usize..4000, 0..12),
            which in 0usize..3,
        ) {
            let (body, text, used, finish) = [
                (TEXT_WITH_LOGPROBS, "Foo!", usage(9, 2), FinishReason::Stop),
                (LENGTH_CUT, "{\"", usage(79, 1), FinishReason::Length),
                (TOOL_CALL, "", usage(44, 16), FinishReason::ToolCalls),
            ][which].clone();
            let crlf = body.replace('\n', "\r\n");
            for body in [body, crlf.as_str()] {
                let reply = replay(&mut ChatStreamParser::new(ProviderKind::OpenAi), body.as_bytes(), &cuts).unwrap();
                prop_assert_eq!(reply.text.as_str(), text);
                prop_assert_eq!(reply.usage, used);
                prop_assert_eq!(reply.finish_reason.clone(), Some(finish.clone()));
            }
        }

        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
            for chunk in &chunks {
                let _ = parser.feed(chunk);
            }
            let _ = parser.finish();
            let flat: Vec<u8> = chunks.concat();
            let _ = parse_chat_response(ProviderKind::OpenAi, &flat);
        }

        #[test]
        fn sse_shaped_garbage_never_panics(lines in proptest::collection::vec("(data: |event: |: )?[\\[\\]{}\":,a-z0-9 ]{0,30}", 0..10)) {
            let body = lines.join("\n");
            let mut parser = ChatStreamParser::new(ProviderKind::OpenAi);
            let _ = parser.feed(body.as_bytes());
            let _ = parser.finish();
        }
    }
}
