//! The decision journal: what each agent asked, who answered, what was parsed and done —
//! enough to replay a decision. Stored in the `decisions` tree, keyed by the decision's id,
//! which sorts by time ([`DecisionRecord::begin`] assigns it).
//!
//! A record holds the exact prompt bytes (`system` and `prompt`) and their hash, the
//! structured context sent beside them, and one [`MemberAnswer`] per model asked: one for a
//! single-model decision, one per member of a swarm (with the abstentions and their
//! reasons). The final verdict (`action`, `confidence`, `reason`) is the one acted on.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::gateway::OrderReport;
use crate::models::StructuredContext;
use crate::store::{trees, Record, Store, StoreError, Tree};

/// How a decision was reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMode {
    /// One logical model was asked.
    #[default]
    Single,
    /// Several members voted; the verdict needed a quorum.
    Swarm,
}

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

/// One journaled decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Unique, sorts by time: the journal key ([`DecisionRecord::begin`]).
    #[serde(default)]
    pub id: String,
    pub time_ms: Millis,
    pub agent: String,
    pub venue: String,
    pub symbol: String,
    /// Logical model asked (for a swarm: the members joined by `,`).
    pub model: String,
    /// Deployment that answered, if any did (single-model decisions).
    pub deployment: Option<String>,
    #[serde(default)]
    pub mode: DecisionMode,
    /// The exact system prompt sent.
    #[serde(default)]
    pub system: String,
    /// The exact prompt sent.
    pub prompt: String,
    /// Hex SHA-256 of `system`, a NUL byte, then `prompt` ([`prompt_sha256`]).
    #[serde(default)]
    pub prompt_sha256: String,
    /// The structured context sent beside the prompt.
    #[serde(default)]
    pub context: Option<StructuredContext>,
    /// Every model asked and what it answered.
    #[serde(default)]
    pub members: Vec<MemberAnswer>,
    /// The quorum a swarm decision needed, as configured (`majority`, `3`, ...).
    #[serde(default)]
    pub quorum: Option<String>,
    /// The swarm reviewer's consensus summary; it never changes the vote.
    #[serde(default)]
    pub review: Option<String>,
    pub raw_answer: Option<String>,
    /// The parsed verdict (`BUY`, `SELL`, `NOTHING`, `CLOSE_ALL`, `HOLD`).
    pub action: Option<String>,
    pub confidence: Option<f64>,
    /// The answer gave no confidence; the parser's documented default was used.
    #[serde(default)]
    pub confidence_defaulted: bool,
    pub reason: Option<String>,
    /// Why no decision could be used (model error, parse error).
    pub error: Option<String>,
    /// What the agent did about it.
    pub outcome: String,
    pub orders: Vec<OrderReport>,
    pub latency_ms: Option<u64>,
}

impl Record for DecisionRecord {}

/// Hex SHA-256 of the prompt bytes a model was sent: the system prompt, one NUL byte, the
/// prompt. Replay checks it before resending.
pub fn prompt_sha256(system: &str, prompt: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(system.as_bytes());
    h.update([0u8]);
    h.update(prompt.as_bytes());
    hex::encode(h.finalize())
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A new decision id: the time in ms (13 digits) then a process-wide sequence, so ids sort
/// by time and two decisions in the same millisecond both stay.
pub fn next_decision_id(time_ms: Millis) -> String {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{:013}-{seq:06}", time_ms.max(0))
}

impl DecisionRecord {
    /// An empty record for a decision starting now, with its id.
    pub fn begin(time_ms: Millis, agent: &str, venue: &str, symbol: &str, model: &str) -> Self {
        Self {
            id: next_decision_id(time_ms),
            time_ms,
            agent: agent.to_string(),
            venue: venue.to_string(),
            symbol: symbol.to_string(),
            model: model.to_string(),
            deployment: None,
            mode: DecisionMode::Single,
            system: String::new(),
            prompt: String::new(),
            prompt_sha256: String::new(),
            context: None,
            members: Vec::new(),
            quorum: None,
            review: None,
            raw_answer: None,
            action: None,
            confidence: None,
            confidence_defaulted: false,
            reason: None,
            error: None,
            outcome: String::new(),
            orders: Vec::new(),
            latency_ms: None,
        }
    }

    /// Records the exact prompt bytes sent and their hash.
    pub fn set_prompt(&mut self, system: &str, prompt: &str) {
        self.prompt_sha256 = prompt_sha256(system, prompt);
        self.system = system.to_string();
        self.prompt = prompt.to_string();
    }

    /// A swarm decision's vote count, `BUY:3 SELL:1 abstain:1(timeout)`, for the log line
    /// and status; `None` for a single-model decision.
    pub fn votes(&self) -> Option<String> {
        (self.mode == DecisionMode::Swarm)
            .then(|| crate::agents::swarm::Tally::of_members(&self.members).to_string())
    }

    /// The one line per decision the operator reads in the log: `info` for a decision,
    /// `debug` for a symbol the trading mode skipped without asking a model. A swarm
    /// decision's line carries its vote count (`votes`).
    pub fn log(&self) {
        let votes = self.votes();
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    agent = %self.agent,
                    venue = %self.venue,
                    symbol = %self.symbol,
                    verdict = %self.action.as_deref().unwrap_or("-"),
                    confidence = self.confidence,
                    confidence_defaulted = self.confidence_defaulted,
                    votes = votes.as_deref(),
                    model = %self.model,
                    deployment = %self.deployment.as_deref().unwrap_or("-"),
                    latency_ms = self.latency_ms,
                    orders = self.orders.len(),
                    outcome = %self.outcome,
                    error = self.error.as_deref(),
                    "decision"
                )
            };
        }
        if self.outcome == "skipped_mode" && self.action.is_none() {
            line!(tracing::Level::DEBUG);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}

/// Appends to and reads the journal.
#[derive(Debug, Clone)]
pub struct DecisionJournal {
    tree: Tree<DecisionRecord>,
}

impl DecisionJournal {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(trees::DECISIONS)?,
        })
    }

    /// Records a decision under its id (a record without one, written by older code, gets
    /// one from its time).
    pub fn record(&self, record: &DecisionRecord) -> Result<(), StoreError> {
        if record.id.is_empty() {
            return self.tree.put(&next_decision_id(record.time_ms), record);
        }
        self.tree.put(&record.id, record)
    }

    /// Newest first.
    pub fn recent(&self, n: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        Ok(self.tree.last_n(n)?.into_iter().map(|(_, r)| r).collect())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}
