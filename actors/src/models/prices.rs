//! Built-in list prices of common models, so cost accounting is not 0 by default.
//!
//! Owns: a table of USD per million prompt / completion tokens for the usual models of each
//! provider, looked up by provider and model name. Never: overrides a price the operator
//! wrote (`price_prompt_per_mtok` / `price_completion_per_mtok` on a deployment win), calls
//! a pricing API, or guesses a price for a model it does not list (unknown models cost 0,
//! and `orrery models` shows that).
//!
//! Prices are the providers' published standard (non-batch, non-cached, short-context)
//! rates, as listed on 2026-12-02 from: platform.openai.com/docs/pricing (OpenAI),
//! docs.claude.com "Model pricing" (Anthropic), ai.google.dev/gemini-api/docs/pricing
//! (Gemini), groq.com/pricing (Groq), api-docs.deepseek.com/quick_start/pricing (DeepSeek),
//! docs.x.ai/docs/models (xAI). OpenRouter passes the upstream provider's price through, so
//! `openai/gpt-4o-mini` on OpenRouter costs what `gpt-4o-mini` costs at OpenAI. Ollama
//! runs locally and costs 0. Providers change prices: check before relying on the totals,
//! and set the two keys on a deployment to override.
//!
//! Matching: the model name as configured, else the longest listed prefix (so dated
//! snapshots such as `claude-sonnet-4-20250514` or `gpt-4o-mini-2024-07-18` match their
//! family).

use rust_decimal::Decimal;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub prompt_per_mtok: Decimal,
    pub completion_per_mtok: Decimal,
}

/// (model name or family prefix, USD per million prompt tokens, per million completion
/// tokens), one table per provider. Written as decimal strings so they stay exact.
const OPENAI: &[(&str, &str, &str)] = &[
    ("gpt-4o-mini", "0.15", "0.60"),
    ("gpt-4o", "2.50", "10.00"),
    ("gpt-4.1-nano", "0.10", "0.40"),
    ("gpt-4.1-mini", "0.40", "1.60"),
    ("gpt-4.1", "2.00", "8.00"),
    ("gpt-5-nano", "0.05", "0.40"),
    ("gpt-5-mini", "0.25", "2.00"),
    ("gpt-5", "1.25", "10.00"),
    ("o4-mini", "1.10", "4.40"),
    ("o3-mini", "1.10", "4.40"),
    ("o3", "2.00", "8.00"),
    ("gpt-3.5-turbo", "0.50", "1.50"),
];

const ANTHROPIC: &[(&str, &str, &str)] = &[
    ("claude-opus-4-5", "5.00", "25.00"),
    ("claude-opus-4", "15.00", "75.00"),
    ("claude-3-opus", "15.00", "75.00"),
    ("claude-sonnet-4", "3.00", "15.00"),
    ("claude-3-7-sonnet", "3.00", "15.00"),
    ("claude-3-5-sonnet", "3.00", "15.00"),
    ("claude-haiku-4-5", "1.00", "5.00"),
    ("claude-3-5-haiku", "0.80", "4.00"),
    ("claude-3-haiku", "0.25", "1.25"),
];

const GEMINI: &[(&str, &str, &str)] = &[
    ("gemini-2.5-pro", "1.25", "10.00"),
    ("gemini-2.5-flash-lite", "0.10", "0.40"),
    ("gemini-2.5-flash", "0.30", "2.50"),
    ("gemini-2.0-flash-lite", "0.075", "0.30"),
    ("gemini-2.0-flash", "0.10", "0.40"),
];

const GROQ: &[(&str, &str, &str)] = &[
    ("llama-3.3-70b-versatile", "0.59", "0.79"),
    ("llama-3.1-8b-instant", "0.05", "0.08"),
    ("openai/gpt-oss-120b", "0.15", "0.75"),
    ("openai/gpt-oss-20b", "0.10", "0.50"),
];

const DEEPSEEK: &[(&str, &str, &str)] = &[
    ("deepseek-chat", "0.27", "1.10"),
    ("deepseek-reasoner", "0.55", "2.19"),
];

const XAI: &[(&str, &str, &str)] = &[
    ("grok-3-mini", "0.30", "0.50"),
    ("grok-3", "3.00", "15.00"),
    ("grok-4", "3.00", "15.00"),
];

/// The built-in price of `model` at `provider` (a [`super::providers::ProviderKind`]
/// name), or `None` when the table does not list it.
pub fn builtin_price(provider: &str, model: &str) -> Option<ModelPrice> {
    let table = match provider {
        "openai" => OPENAI,
        "anthropic" => ANTHROPIC,
        "gemini" => GEMINI,
        "groq" => GROQ,
        "deepseek" => DEEPSEEK,
        "xai" => XAI,
        "ollama" | "local" => {
            return Some(ModelPrice {
                prompt_per_mtok: Decimal::ZERO,
                completion_per_mtok: Decimal::ZERO,
            })
        }
        // `vendor/model`: the upstream vendor's price.
        "openrouter" => {
            let (vendor, upstream) = model.split_once('/')?;
            let vendor = match vendor {
                "openai" => "openai",
                "anthropic" => "anthropic",
                "google" => "gemini",
                "deepseek" => "deepseek",
                "x-ai" => "xai",
                _ => return None,
            };
            return builtin_price(vendor, upstream);
        }
        _ => return None,
    };
    let model = model.to_ascii_lowercase();
    table
        .iter()
        .filter(|(name, _, _)| model == *name || model.starts_with(&format!("{name}-")))
        .max_by_key(|(name, _, _)| name.len())
        .and_then(|(_, p, c)| {
            Some(ModelPrice {
                prompt_per_mtok: p.parse().ok()?,
                completion_per_mtok: c.parse().ok()?,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn known_models_of_every_provider_have_a_price() {
        let p = |prov, model| {
            builtin_price(prov, model).map(|p| (p.prompt_per_mtok, p.completion_per_mtok))
        };
        assert_eq!(p("openai", "gpt-4o-mini"), Some((dec!(0.15), dec!(0.60))));
        // A dated snapshot takes its family's price, not the shorter `gpt-4o` prefix.
        assert_eq!(
            p("openai", "gpt-4o-mini-2024-07-18"),
            Some((dec!(0.15), dec!(0.60)))
        );
        assert_eq!(p("openai", "gpt-4o"), Some((dec!(2.50), dec!(10.00))));
        assert_eq!(
            p("anthropic", "claude-sonnet-4-20250514"),
            Some((dec!(3), dec!(15)))
        );
        assert_eq!(
            p("gemini", "gemini-2.5-flash"),
            Some((dec!(0.30), dec!(2.50)))
        );
        assert_eq!(
            p("groq", "llama-3.3-70b-versatile"),
            Some((dec!(0.59), dec!(0.79)))
        );
        assert_eq!(
            p("deepseek", "deepseek-chat"),
            Some((dec!(0.27), dec!(1.10)))
        );
        assert_eq!(p("xai", "grok-3-mini"), Some((dec!(0.30), dec!(0.50))));
        assert_eq!(
            p("openrouter", "openai/gpt-4o-mini"),
            Some((dec!(0.15), dec!(0.60)))
        );
        assert_eq!(p("ollama", "gemma2"), Some((dec!(0), dec!(0))));
        assert_eq!(
            p("openai", "gpt-4"),
            None,
            "a family prefix must be followed by a dash"
        );
        assert_eq!(p("openrouter", "mistralai/mixtral"), None);
        assert_eq!(p("openai", "my-finetune"), None);
    }
}
