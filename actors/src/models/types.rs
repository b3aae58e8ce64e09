//! What agents send to the model router and what comes back.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::exchanges::{Candle, Position};
use crate::resilience::ErrorClass;

/// Why an agent asks; providers may use it to pick a system prompt, the offline rules
/// engine uses it to pick a rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Answer BUY / SELL / NOTHING with a confidence.
    TradeDecision,
    /// A risk limit was breached: answer CLOSE_ALL or HOLD.
    RiskConfirmation,
    /// Anything else; free text.
    Freeform,
    /// The analysis pipeline's long analyst: argue the long side with evidence
    /// (`StructuredContext::Pipeline`; see `agents::pipeline`).
    LongCase,
    /// The analysis pipeline's short analyst: argue the short side with evidence.
    ShortCase,
    /// The analysis pipeline's strategy generator: a trade plan from both cases.
    TradePlan,
    /// Score headlines' sentiment per symbol in [-1, 1] (the sentiment agent; its answer
    /// format is `agents::sentiment::score`'s).
    SentimentScore,
}

/// Market facts an agent sends alongside its prompt, in structured form, so rule-based
/// deployments read numbers instead of parsing prose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketContext {
    pub venue: String,
    pub symbol: String,
    pub timeframe: String,
    pub price: Decimal,
    /// Oldest first.
    pub candles: Vec<Candle>,
    pub position: Option<Position>,
    pub account_value: Decimal,
    /// Other agents' recent signals about the symbol, of the kinds the agent asked for
    /// (`signal_kinds`), newest first; empty when it asked for none.
    #[serde(default)]
    pub signals: Vec<crate::signals::RecentSignal>,
}

/// What the risk agent knows when it asks whether to close everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskContext {
    pub breach: String,
    pub account_value: Decimal,
    pub baseline_value: Decimal,
    pub pnl_usd: Decimal,
    pub pnl_pct: Decimal,
    pub positions: Vec<Position>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StructuredContext {
    Market(MarketContext),
    Risk(RiskContext),
    /// A stage of the analysis pipeline ([`super::roles`]).
    Pipeline(Box<super::roles::PipelineContext>),
    /// A batch of headlines to score (the sentiment agent).
    Headlines(HeadlineBatch),
    /// Research text to write a strategy spec from (the RBI pipeline); a language model
    /// reads the same text in the prompt.
    Research(ResearchText),
}

/// The research an RBI attempt works from, as its prompt quotes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResearchText {
    pub text: String,
}

/// Headlines a sentiment agent asks to be scored, numbered as in its prompt, each with the
/// symbols it mentions: a rules engine scores them from here, a language model from the
/// prompt text that lists the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineBatch {
    pub headlines: Vec<HeadlineToScore>,
}

/// One numbered headline of a [`HeadlineBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineToScore {
    /// Its number in the prompt, from 1.
    pub n: usize,
    pub title: String,
    /// Upper-case symbols it mentions (a score is asked for each).
    pub symbols: Vec<String>,
}

/// One request to a logical model name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRequest {
    /// Logical model name from config (`[models.<name>]`), e.g. `default`.
    pub model: String,
    pub purpose: Purpose,
    pub system: String,
    pub prompt: String,
    pub context: Option<StructuredContext>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// How long the caller will wait for an answer, failover included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Whether an identical earlier answer may be served from the response cache.
    pub cacheable: bool,
}

impl ModelRequest {
    pub fn new(model: impl Into<String>, purpose: Purpose, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            purpose,
            system: String::new(),
            prompt: prompt.into(),
            context: None,
            max_tokens: 512,
            temperature: 0.0,
            timeout: Duration::from_secs(30),
            cacheable: false,
        }
    }

    /// Characters the model reads: system prompt, prompt and structured context (as JSON).
    pub fn prompt_chars(&self) -> usize {
        let context_chars = self
            .context
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok())
            .map_or(0, |s| s.chars().count());
        self.system.chars().count() + self.prompt.chars().count() + context_chars
    }

    /// The one token estimate of a request (the router's context-window filter, the HTTP
    /// providers' tokens-per-minute draw): [`tokens_in`] its [`Self::prompt_chars`] plus
    /// `max_tokens` for the answer. Deliberately crude and provider-independent; it errs
    /// on the large side for English text, the safe side for a limit (a budget's
    /// overdraw is refunded from the provider's reported usage).
    pub fn estimated_tokens(&self) -> u64 {
        tokens_in(self.prompt_chars()) + u64::from(self.max_tokens)
    }
}

/// Tokens in `chars` characters of text, by the usual rule of thumb: four characters a
/// token, rounded up.
pub fn tokens_in(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One answer, with who served it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    pub text: String,
    /// The deployment that answered (`[[models.<name>.deployments]]` id).
    pub deployment: String,
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    /// The answering deployment's time, in milliseconds on the wire (`latency_ms`; older
    /// records wrote `latency` as text such as `"4us 496ns"`, still read).
    #[serde(rename = "latency_ms", alias = "latency", with = "duration_ms")]
    pub latency: Duration,
    pub finish_reason: Option<String>,
    /// Served from the response cache.
    pub cached: bool,
    /// Every deployment the router tried for this answer, in order, the one that answered
    /// last (empty for an answer that did not go through the router's failover, e.g. a
    /// cached or joined one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// What this answer cost upstream at the answering deployment's configured prices
    /// (absent when it has none, and for an answer from the cache, which cost nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<rust_decimal::Decimal>,
}

/// One deployment tried for an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub deployment: String,
    /// `ok`, `failed` or `skipped`.
    pub outcome: String,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Time spent on it, in milliseconds.
    pub ms: f64,
}

impl Attempt {
    /// A deployment passed over without a call (cooling down, too small, pool not running).
    pub fn skipped(deployment: &str, why: &str) -> Self {
        Self {
            deployment: deployment.to_string(),
            outcome: "skipped".into(),
            detail: Some(why.to_string()),
            ms: 0.0,
        }
    }
}

/// A `Duration` as a number of milliseconds (fractional, microsecond resolution); reads a
/// number of milliseconds or humantime text (`"4us 496ns"`, `"1.5s"`).
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(as_ms(*d))
    }

    /// `d` in milliseconds, rounded to the microsecond.
    pub fn as_ms(d: Duration) -> f64 {
        (d.as_micros() as f64) / 1000.0
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Ms(f64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Ms(ms) if ms.is_finite() && ms >= 0.0 => Ok(Duration::from_secs_f64(ms / 1000.0)),
            Wire::Ms(ms) => Err(D::Error::custom(format!("{ms} is not a duration in ms"))),
            Wire::Text(t) => humantime::parse_duration(&t).map_err(D::Error::custom),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("no deployment can serve model `{model}`: {reason}")]
    NoDeployment { model: String, reason: String },
    #[error("model `{model}` gave no answer within {timeout:?}")]
    DeadlineExceeded { model: String, timeout: Duration },
    #[error("deployment `{deployment}` failed ({}): {message}", class.label())]
    Provider {
        deployment: String,
        class: ErrorClass,
        message: String,
    },
    #[error("deployment `{deployment}` sent an answer we cannot read: {reason}")]
    Malformed { deployment: String, reason: String },
    /// The provider said the request does not fit the model's context window; the router
    /// moves on to a sibling with a larger `context_window`.
    #[error("deployment `{deployment}` cannot take a request this long: {message}")]
    ContextTooLong { deployment: String, message: String },
    #[error("every deployment of model `{model}` failed: {}", attempts.join("; "))]
    AllFailed {
        model: String,
        attempts: Vec<String>,
    },
    /// The router could not take the request: its supervisor slot is empty (restarting
    /// after a crash, within its backoff, or stopped at shutdown) or it died with the
    /// request. Asking again shortly reaches the restarted router.
    #[error("the model router could not take the request: {reason}")]
    RouterUnavailable { reason: String },
    /// A swarm member that had not answered when the swarm's deadline passed; its call was
    /// dropped, not awaited.
    #[error("`{model}` abandoned: deadline passed after {after:?}; its answer was not awaited")]
    Abandoned { model: String, after: Duration },
}

impl ModelError {
    pub fn label(&self) -> &'static str {
        match self {
            ModelError::NoDeployment { .. } => "no_deployment",
            ModelError::DeadlineExceeded { .. } => "deadline",
            ModelError::Provider { class, .. } => class.label(),
            ModelError::Malformed { .. } => "malformed",
            ModelError::ContextTooLong { .. } => "context_length",
            ModelError::AllFailed { .. } => "all_failed",
            ModelError::RouterUnavailable { .. } => "router_unavailable",
            ModelError::Abandoned { .. } => "abandoned",
        }
    }
}

/// Ask the router for one answer.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "Result<ModelResponse, ModelError>")]
pub struct Ask(pub ModelRequest);

/// What a trading agent can decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TradeAction {
    Buy,
    Sell,
    Nothing,
}

/// A parsed trading decision. `confidence` is in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeDecision {
    pub action: TradeAction,
    pub confidence: f64,
    pub reason: String,
}

/// A parsed answer to a risk confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskVerdict {
    CloseAll,
    Hold,
}
