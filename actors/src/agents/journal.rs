//! The decision journal: what each agent asked, who answered, what was parsed and done —
//! enough to replay a decision. Stored in the `decisions` tree, keyed by time.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::gateway::OrderReport;
use crate::store::{trees, Record, Store, StoreError, Tree};

/// One journaled decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub time_ms: Millis,
    pub agent: String,
    pub venue: String,
    pub symbol: String,
    /// Logical model asked.
    pub model: String,
    /// Deployment that answered, if any did.
    pub deployment: Option<String>,
    pub prompt: String,
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

impl DecisionRecord {
    /// The one line per decision the operator reads in the log: `info` for a decision,
    /// `debug` for a symbol the trading mode skipped without asking a model.
    pub fn log(&self) {
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

static SEQ: AtomicU32 = AtomicU32::new(0);

impl DecisionJournal {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(trees::DECISIONS)?,
        })
    }

    /// Records a decision. The key sorts by time, then by a process-wide sequence so two
    /// decisions in the same millisecond both stay.
    pub fn record(&self, record: &DecisionRecord) -> Result<(), StoreError> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let key = format!("{:013}-{seq:06}", record.time_ms.max(0));
        self.tree.put(&key, record)
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
