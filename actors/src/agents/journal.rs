//! The decision journal: what each agent asked, who answered, what was parsed and done —
//! enough to replay a decision. Stored in the `decisions` tree, keyed by the decision's id,
//! which sorts by time ([`DecisionRecord::begin`] assigns it), with a small header per
//! decision in `decisions_index` (same key) so a listing never decodes prompts.
//!
//! A record holds the exact prompt bytes (`system` and `prompt`) and their hash, the
//! structured context sent beside them, and one [`MemberAnswer`] per model asked: one for a
//! single-model decision, one per member of a swarm (with the abstentions and their
//! reasons). The final verdict (`action`, `confidence`, `reason`) is the one acted on.
//!
//! Owns: the record and header shapes, the write path ([`DecisionJournal::append`], group
//! committed on a writer thread, see `writer`), listing and lookup with filters
//! ([`JournalFilter`]), retention by age and count (`retention`), and settling each
//! decision's orders against the ledger at read time (`settle`). Never: decides anything,
//! sends an order, or changes the ledger (it only reads `orders` and `fills`).

mod retention;
mod settle;
mod writer;

pub use retention::{sweep, JournalConfig, JournalRetention, StopRetention, SweepReport};
pub use settle::{settle, FillSums, LedgerView, OrderOutcome};
pub use writer::{wait_all, JournalError, JournalReceipt};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::gateway::OrderReport;
use crate::models::StructuredContext;

pub use super::member::{Abstention, MemberAnswer};
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
    /// One run of the five-role analysis pipeline; its stages are in
    /// [`DecisionRecord::pipeline`].
    Pipeline,
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
    /// A pipeline run's stages, their inputs and outputs, and its plan (mode `pipeline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::agents::pipeline::trace::PipelineTrace>,
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
            pipeline: None,
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
            .then(|| crate::agents::swarm::consensus::Tally::of_members(&self.members).to_string())
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

/// Name of the tree of decision headers (one per decision, keyed like the record).
pub const INDEX_TREE: &str = "decisions_index";

/// Metric names of the journal.
pub mod names {
    /// Decisions in the journal (after the last sweep or write batch).
    pub const DECISIONS: &str = "orrery_journal_decisions";
    /// Decisions removed by retention, by reason (`age`, `count`).
    pub const PRUNED: &str = "orrery_journal_pruned_total";
    /// Decisions handed to the journal writer, by outcome (`ok`: on disk, `failed`).
    pub const WRITES: &str = "orrery_journal_writes_total";
    /// Flushes of the journal writer: `WRITES / FLUSHES` is the group-commit batch size.
    pub const FLUSHES: &str = "orrery_journal_flushes_total";
}

/// Registers the journal's metric descriptions.
pub fn describe() {
    metrics::describe_gauge!(
        names::DECISIONS,
        "Decisions kept in the journal, as of the last retention sweep."
    );
    metrics::describe_counter!(
        names::PRUNED,
        "Journaled decisions removed by retention, by reason (age, count)."
    );
    metrics::describe_counter!(
        names::WRITES,
        "Decisions handed to the journal writer, by outcome (ok: flushed to disk; failed: logged with its id)."
    );
    metrics::describe_counter!(
        names::FLUSHES,
        "Flushes to disk by the journal writer; decisions written per flush is the group-commit batch size."
    );
}

/// How the members of a decision voted: a verdict backed by a member, or an abstention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteTally {
    pub members: u32,
    pub buy: u32,
    pub sell: u32,
    /// Members that answered NOTHING (a vote to stay out).
    pub nothing: u32,
    /// Members that failed (timeout, error, unreadable answer).
    pub failed: u32,
    /// Other verdicts (a risk agent's CLOSE_ALL / HOLD).
    pub other: u32,
}

impl VoteTally {
    pub fn of(members: &[MemberAnswer]) -> Self {
        let mut t = VoteTally {
            members: members.len() as u32,
            ..VoteTally::default()
        };
        for m in members {
            match (m.abstention, m.verdict.as_deref()) {
                (Some(Abstention::Nothing), _) => t.nothing += 1,
                (Some(_), _) => t.failed += 1,
                (None, Some("BUY")) => t.buy += 1,
                (None, Some("SELL")) => t.sell += 1,
                (None, Some("NOTHING")) => t.nothing += 1,
                (None, _) => t.other += 1,
            }
        }
        t
    }

    /// `BUY 2 SELL 0 NOTHING 1 failed 1 of 4`; `-` when no model was asked.
    pub fn summary(&self) -> String {
        if self.members == 0 {
            return "-".into();
        }
        let mut s = format!(
            "BUY {} SELL {} NOTHING {} failed {}",
            self.buy, self.sell, self.nothing, self.failed
        );
        if self.other > 0 {
            s.push_str(&format!(" other {}", self.other));
        }
        s.push_str(&format!(" of {}", self.members));
        s
    }
}

/// What a listing shows of a decision, kept beside the record so a listing of thousands
/// of decisions never decodes their prompts and contexts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionHeader {
    pub id: String,
    pub time_ms: Millis,
    pub agent: String,
    pub venue: String,
    pub symbol: String,
    pub model: String,
    pub mode: DecisionMode,
    pub action: Option<String>,
    pub confidence: Option<f64>,
    pub votes: VoteTally,
    pub outcome: String,
    pub error: Option<String>,
    /// Client ids of the orders the decision placed.
    pub orders: Vec<String>,
    /// Whether the record holds prompt bytes (a decision a model was asked for), i.e.
    /// whether it can be replayed.
    pub replayable: bool,
}

impl Record for DecisionHeader {}

impl DecisionHeader {
    pub fn of(r: &DecisionRecord) -> Self {
        Self {
            id: r.id.clone(),
            time_ms: r.time_ms,
            agent: r.agent.clone(),
            venue: r.venue.clone(),
            symbol: r.symbol.clone(),
            model: r.model.clone(),
            mode: r.mode,
            action: r.action.clone(),
            confidence: r.confidence,
            votes: VoteTally::of(&r.members),
            outcome: r.outcome.clone(),
            error: r.error.clone(),
            orders: r.orders.iter().map(|o| o.client_id.to_string()).collect(),
            replayable: !r.prompt.is_empty(),
        }
    }
}

/// Which decisions a listing returns: newest first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalFilter {
    pub agent: Option<String>,
    /// Compared case-insensitively.
    pub symbol: Option<String>,
    /// Only decisions at or after this time.
    pub since_ms: Option<Millis>,
    pub limit: usize,
}

impl Default for JournalFilter {
    fn default() -> Self {
        Self {
            agent: None,
            symbol: None,
            since_ms: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Rows a listing returns when no limit is given.
pub const DEFAULT_LIMIT: usize = 100;

impl JournalFilter {
    pub fn matches(&self, h: &DecisionHeader) -> bool {
        self.agent.as_deref().is_none_or(|a| a == h.agent)
            && self
                .symbol
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&h.symbol))
            && self.since_ms.is_none_or(|t| h.time_ms >= t)
    }
}

/// The time a decision id starts with (its first 13 digits), if it has that shape.
fn id_time(id: &str) -> Option<Millis> {
    id.get(..13)?.parse().ok()
}

/// Appends to and reads the journal. Cheap to clone; clones share one writer thread.
#[derive(Clone)]
pub struct DecisionJournal {
    tree: Tree<DecisionRecord>,
    index: Tree<DecisionHeader>,
    store: Store,
    /// Started at the first [`DecisionJournal::append`], so a journal opened only to read
    /// (status, listings) never starts a thread.
    writer: Arc<OnceLock<writer::Writer>>,
}

impl std::fmt::Debug for DecisionJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionJournal")
            .field("tree", &self.tree)
            .finish()
    }
}

impl DecisionJournal {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(trees::DECISIONS)?,
            index: store.tree(INDEX_TREE)?,
            store: store.clone(),
            writer: Arc::new(OnceLock::new()),
        })
    }

    /// Hands `record` to the journal writer and returns at once (the agent's path: one
    /// channel send). The writer encodes it, writes it with its header, and flushes once
    /// for every record queued meanwhile (group commit); the receipt resolves once the
    /// record is on disk, or with the error, which the writer has also logged and counted.
    pub fn append(&self, record: DecisionRecord) -> JournalReceipt {
        self.writer
            .get_or_init(|| {
                writer::Writer::start(writer::Trees {
                    records: self.tree.clone(),
                    index: self.index.clone(),
                    store: self.store.clone(),
                })
            })
            .submit(record)
    }

    /// Records a decision under its id at once, without waiting for a flush (sled
    /// flushes on its own within a second). Prefer [`DecisionJournal::append`] on an
    /// agent's path; this is for tools and tests. A record without an id, written by
    /// older code, gets one from its time.
    pub fn record(&self, record: &DecisionRecord) -> Result<(), StoreError> {
        write_both(&self.tree, &self.index, record)
    }

    /// One decision by id.
    pub fn get(&self, id: &str) -> Result<Option<DecisionRecord>, StoreError> {
        self.tree.get(id)
    }

    /// Newest first.
    pub fn recent(&self, n: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        Ok(self.tree.last_n(n)?.into_iter().map(|(_, r)| r).collect())
    }

    /// Headers of the decisions matching `filter`, newest first. Decisions without a
    /// header (journaled before headers existed, or whose header write a crash cut off)
    /// get one built from the record, so nothing journaled is ever missing from a listing.
    pub fn list(&self, filter: &JournalFilter) -> Result<Vec<DecisionHeader>, StoreError> {
        self.heal_index()?;
        let mut out = Vec::new();
        for item in self.index.iter_rev() {
            let (key, header) = item?;
            if let (Some(since), Some(t)) = (filter.since_ms, id_time(&key)) {
                // Keys sort by time: everything further is older.
                if t < since {
                    break;
                }
            }
            if filter.matches(&header) {
                out.push(header);
                if out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Writes the headers the records have and the index lacks. Cheap when nothing is
    /// missing (two counts).
    fn heal_index(&self) -> Result<(), StoreError> {
        // Records and headers are written in that order and removed together, so a
        // missing header shows as different newest keys (a cut write, or a data dir from
        // before headers); only then are the keys walked.
        if self.tree.last_key()? == self.index.last_key()? {
            return Ok(());
        }
        for key in self.tree.keys() {
            let key = key?;
            if self.index.get(&key)?.is_none() {
                if let Some(record) = self.tree.get(&key)? {
                    let mut header = DecisionHeader::of(&record);
                    header.id = key.clone();
                    self.index.put(&key, &header)?;
                }
            }
        }
        Ok(())
    }

    /// Removes one decision: its header first, so a crash in between leaves a record
    /// without a header (removed by the next sweep, which walks the records), never a
    /// listed header without its record.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.index.remove(id)?;
        self.tree.remove(id)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The store the journal lives in (for reading the ledger beside it).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Writes a record and its header (record first: a header never points at nothing).
fn write_both(
    tree: &Tree<DecisionRecord>,
    index: &Tree<DecisionHeader>,
    record: &DecisionRecord,
) -> Result<(), StoreError> {
    let id = if record.id.is_empty() {
        next_decision_id(record.time_ms)
    } else {
        record.id.clone()
    };
    tree.put(&id, record)?;
    let mut header = DecisionHeader::of(record);
    header.id = id.clone();
    index.put(&id, &header)
}

#[cfg(test)]
mod tests;
