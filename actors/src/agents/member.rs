//! What one model asked for a decision answered ([`MemberAnswer`]) and why an answer
//! backs no action ([`Abstention`]): the journal records them, the swarm's consensus
//! counts them. A leaf module, so both can use it without importing each other.

use serde::{Deserialize, Serialize};

/// Why a model asked for a decision gave no usable vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Abstention {
    /// No answer within the member's deadline (cut, never awaited further).
    Timeout,
    /// The model call failed (provider error, no healthy deployment, ...).
    Error,
    /// An answer came that the decision parser could not read (or about another symbol).
    Unparseable,
    /// The member answered NOTHING: it backs no action.
    Nothing,
}

impl Abstention {
    pub fn as_str(self) -> &'static str {
        match self {
            Abstention::Timeout => "timeout",
            Abstention::Error => "error",
            Abstention::Unparseable => "unparseable",
            Abstention::Nothing => "nothing",
        }
    }

    /// The abstention a failed model call is: no answer in time (the caller's deadline, or
    /// a swarm member abandoned at it) is `Timeout`, any other failure `Error`.
    pub fn of_model_error(error: &crate::models::ModelError) -> Self {
        use crate::models::ModelError;
        match error {
            ModelError::Abandoned { .. } | ModelError::DeadlineExceeded { .. } => {
                Abstention::Timeout
            }
            _ => Abstention::Error,
        }
    }

    /// Whether the member *failed* (as opposed to disagreeing): NOTHING is a vote to stay
    /// out, every other abstention is a failure of the member.
    pub fn is_failure(self) -> bool {
        !matches!(self, Abstention::Nothing)
    }
}

/// What one model asked for a decision answered: the single model of a single-model
/// decision, or one member of a swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberAnswer {
    /// The name asked: a logical model or a deployment id.
    pub member: String,
    /// The deployment that answered, if any did.
    #[serde(default)]
    pub deployment: Option<String>,
    #[serde(default)]
    pub raw_answer: Option<String>,
    /// The parsed verdict (`BUY`, `SELL`, `NOTHING`), when the answer could be read.
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// What the answer cost at the deployment's configured prices, when it has any.
    #[serde(default)]
    pub cost_usd: Option<rust_decimal::Decimal>,
    /// Why this member's answer backs no action, if it does not.
    #[serde(default)]
    pub abstention: Option<Abstention>,
    /// The error or parse failure behind an abstention.
    #[serde(default)]
    pub error: Option<String>,
}

impl MemberAnswer {
    /// The answer of `member` before anything is known but how long it took.
    pub fn asked(member: &str, latency_ms: Option<u64>) -> Self {
        Self {
            member: member.to_string(),
            latency_ms,
            ..Self::default()
        }
    }

    /// Records who answered, what, and at what cost.
    pub fn answered(&mut self, answer: &crate::models::ModelResponse) {
        self.deployment = Some(answer.deployment.clone());
        self.raw_answer = Some(answer.text.clone());
        self.prompt_tokens = answer.usage.prompt_tokens;
        self.completion_tokens = answer.usage.completion_tokens;
        self.cost_usd = answer.cost_usd;
    }

    /// Records why the answer backs no action, and the error behind it.
    pub fn abstained(&mut self, abstention: Abstention, error: impl ToString) {
        self.abstention = Some(abstention);
        self.error = Some(error.to_string());
    }
}
