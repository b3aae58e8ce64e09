//! API keys of the HTTP providers, read from the environment through an injectable lookup.
//!
//! Owns: which variables hold each provider's key (the provider's usual name first, then
//! the seed project's aliases) and the startup error when none is set. Never: logs, prints
//! or stores a key — it only ever travels as an [`ApiKey`], whose `Debug`/`Display` print
//! `***`, and errors name the variables tried, never a value.
//!
//! The lookup is the crate's one [`EnvLookup`] (see [`crate::env`]), so tests hand in a
//! closure instead of mutating the process environment, which other tests share.

use crate::env::{non_empty, EnvLookup};
use crate::models::providers::{ApiKey, ProviderKind};

/// Variables tried, in order, for `kind`'s key when the deployment names none
/// (`api_key_env`). Empty for Ollama, which needs no key.
pub fn key_variables(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::OpenAi => &["OPENAI_API_KEY", "OPENAI_KEY"],
        ProviderKind::Anthropic => &["ANTHROPIC_API_KEY", "ANTHROPIC_KEY"],
        ProviderKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_KEY"],
        ProviderKind::Groq => &["GROQ_API_KEY"],
        ProviderKind::DeepSeek => &["DEEPSEEK_API_KEY", "DEEPSEEK_KEY"],
        ProviderKind::Xai => &["XAI_API_KEY", "GROK_API_KEY"],
        ProviderKind::OpenRouter => &["OPENROUTER_API_KEY"],
        ProviderKind::Ollama => &[],
    }
}

/// No key was found: the variables tried, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no API key for {provider}: none of {} is set (or it is empty); export one of them, or point `api_key_env` at the variable that holds the key", tried.join(", "))]
pub struct MissingKey {
    pub provider: ProviderKind,
    pub tried: Vec<String>,
}

/// The key for `kind`. When `api_key_env` is given only that variable is read (a named
/// variable that is missing must not silently fall back to another account's key).
/// Ollama needs a key only when `api_key_env` names one (a proxy in front of it).
pub fn resolve_api_key(
    kind: ProviderKind,
    api_key_env: Option<&str>,
    env: EnvLookup<'_>,
) -> Result<Option<ApiKey>, MissingKey> {
    let tried: Vec<&str> = match api_key_env {
        Some(name) => vec![name],
        None if kind == ProviderKind::Ollama => return Ok(None),
        None => key_variables(kind).to_vec(),
    };
    if let Some(value) = tried.iter().find_map(|name| non_empty(env, name)) {
        return Ok(Some(ApiKey::new(value)));
    }
    Err(MissingKey {
        provider: kind,
        tried: tried.into_iter().map(str::to_string).collect(),
    })
}
