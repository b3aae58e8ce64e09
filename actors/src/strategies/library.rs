//! The strategy library: every attempt of the research → backtest → implement pipeline, with
//! its provenance, in sled.
//!
//! One [`StrategyRecord`] per attempt: where the idea came from (file path or URL, the
//! research text's SHA-256 and an excerpt — never the whole text), the model and provider
//! that wrote the spec, every prompt sent and answer received (or a reference to the
//! decision journal entry holding them), the spec JSON, each validation round's problems,
//! the backtest results per data set (the full statistics as JSON plus the summary numbers
//! the promotion thresholds read), the verdict and its reasons, and every promotion.
//!
//! Keys and names:
//! - records live in the `strategies` tree keyed by id, `<created ms, 13 digits>-<n, 6
//!   digits>` (n counts the attempts created in that millisecond), so key order is creation
//!   order and a listing newest-first is a reverse scan;
//! - names are unique: the first attempt under a name keeps it, a later attempt under the
//!   same name is stored as `<name>-v2`, `<name>-v3`, ... (`base_name` keeps the name the
//!   spec asked for, `version` the number), so `orrery strategies show|promote NAME` always
//!   means one attempt. The `strategy_names` tree maps each name to its id.
//!
//! Every write is flushed before it returns (attempts are rare; losing one loses its
//! provenance). Writes are serialized by a lock inside the handle, so parallel pipeline
//! tasks sharing one handle never assign the same name or id; one process owns a data dir.
//!
//! No secrets: a source URL is stored without its user-info and with the values of
//! credential-like query parameters (`key`, `token`, `secret`, `signature`, `password`,
//! `auth`, ...) replaced by `***`; model and provider are names, never keys. Prompts and
//! answers are stored as given: the pipeline never puts a key in a prompt.
//!
//! Owns: the record shape, naming, ids, the status and promotion history. Never: runs a
//! backtest, decides a verdict, or starts an agent (the RBI agent and the CLI do).

use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Millis};
use crate::store::{Record, Store, StoreError, Tree};

/// The tree holding the records, keyed by id.
pub const TREE: &str = "strategies";
/// The tree mapping each unique name to its record's id.
pub const NAMES_TREE: &str = "strategy_names";

/// How many characters of the research text are kept beside its hash.
pub const EXCERPT_CHARS: usize = 500;
const NAME_MAX: usize = 64;

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("strategy library: {0}")]
    Store(#[from] StoreError),
    #[error(
        "no strategy named or with id '{0}' in the library; `orrery strategies list` shows them"
    )]
    NotFound(String),
    #[error("strategy name {name:?} is not usable: {reason}")]
    BadName { name: String, reason: String },
    #[error(
        "strategy '{name}' is rejected ({reasons}); set it back to candidate before promoting it"
    )]
    Rejected { name: String, reasons: String },
    #[error("agent name `{0}` is taken (by a configured agent or an earlier promotion); give another with --agent")]
    AgentNameTaken(String),
    #[error("the names index maps '{name}' to id '{id}', which has no record; the library is inconsistent (was the data dir edited?)")]
    DanglingName { name: String, id: String },
}

/// Where the research came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "location")]
pub enum ResearchSource {
    File(String),
    /// Stored redacted (see the module docs).
    Url(String),
    /// Text given inline (a prompt, a test).
    Inline,
}

/// The research text, by hash and excerpt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResearchRef {
    /// Hex SHA-256 of the text's UTF-8 bytes.
    pub sha256: String,
    /// The first [`EXCERPT_CHARS`] characters.
    pub excerpt: String,
    /// Length of the whole text, in characters.
    pub chars: usize,
}

impl ResearchRef {
    pub fn of(text: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            excerpt: text.chars().take(EXCERPT_CHARS).collect(),
            chars: text.chars().count(),
        }
    }
}

/// Which model wrote the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The logical model asked (config name).
    pub model: String,
    /// The provider that answered (`openai`, `anthropic`, `local`, ...).
    pub provider: String,
    /// The deployment that answered, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

/// One request to the model and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelExchange {
    /// 0 for the first spec, n for the n-th repair.
    pub round: u32,
    #[serde(default)]
    pub system: String,
    pub prompt: String,
    pub answer: String,
    /// The decision journal entry holding the same exchange, if one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_id: Option<String>,
}

/// One validation of a spec the model wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRound {
    pub round: u32,
    /// Empty when the spec was valid.
    pub problems: Vec<super::spec::Problem>,
}

/// The numbers the promotion thresholds read, as the backtester's `stats` define them
/// (`None` where backtesting.py gives NaN, e.g. a Sharpe ratio without trades).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BacktestSummary {
    pub return_pct: Option<f64>,
    pub buy_hold_return_pct: Option<f64>,
    pub sharpe_ratio: Option<f64>,
    pub max_drawdown_pct: Option<f64>,
    pub num_trades: u64,
}

/// A backtest of the spec on one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestResult {
    /// The data set (file path or name).
    pub dataset: String,
    pub summary: BacktestSummary,
    /// Walk-forward out-of-sample numbers, when run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_sample: Option<BacktestSummary>,
    /// The backtester's full output (statistics, options), as it gave it.
    #[serde(default)]
    pub stats: serde_json::Value,
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyStatus {
    /// Stored, not (yet) judged, or judged good enough to keep but not promoted.
    Candidate,
    Promoted,
    Rejected,
}

impl StrategyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyStatus::Candidate => "candidate",
            StrategyStatus::Promoted => "promoted",
            StrategyStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for StrategyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict an attempt is stored with (promotion comes later, through
/// [`StrategyLibrary::record_promotion`]).
#[derive(Debug, Clone, PartialEq, Eq)]
/// Each with its reasons (thresholds met or missed, spec problems, the model's error).
pub enum FirstVerdict {
    Candidate(Vec<String>),
    Rejected(Vec<String>),
}

/// A change of status, kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub time_ms: Millis,
    pub status: StrategyStatus,
    /// Why (thresholds missed, operator's note); empty when none was given.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Who: `rbi` (the pipeline), `operator`, an API token's name.
    pub by: String,
}

/// A promotion to a venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub venue: String,
    pub time_ms: Millis,
    pub by: String,
    /// The strategy agent the promotion asks for (absent in promotions recorded without
    /// one, e.g. by an older binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<PromotedAgent>,
}

/// The strategy agent a promotion runs the attempt's spec in: what the spec itself does not
/// say (where, on what, how large).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotedAgent {
    /// The agent's name, unique among the engine's agents.
    pub name: String,
    pub symbol: String,
    /// Bar width, as the config writes it (`1h`).
    pub timeframe: String,
    /// Largest position (USD) the agent's orders may build.
    pub max_position_usd: rust_decimal::Decimal,
    /// The share of the account's equity the spec's sizing reads as "all of it".
    pub equity_fraction: rust_decimal::Decimal,
}

/// What a pipeline stage knows when it stores an attempt; the library assigns the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The name the spec asked for (validated as a spec name).
    pub name: String,
    pub source: ResearchSource,
    pub research: ResearchRef,
    #[serde(default)]
    pub model: Option<ModelRef>,
    #[serde(default)]
    pub exchanges: Vec<ModelExchange>,
    /// The last spec the model wrote, as JSON (valid or not: see `validation_rounds`).
    #[serde(default)]
    pub spec: Option<serde_json::Value>,
    #[serde(default)]
    pub validation_rounds: Vec<ValidationRound>,
    #[serde(default)]
    pub backtests: Vec<BacktestResult>,
}

/// One stored attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyRecord {
    /// Time-ordered, unique: the key.
    pub id: String,
    /// Unique in the library: `base_name`, or `base_name-v<version>` from the second on.
    pub name: String,
    pub base_name: String,
    /// 1 for the first attempt under `base_name`.
    pub version: u32,
    pub created_ms: Millis,
    pub source: ResearchSource,
    pub research: ResearchRef,
    #[serde(default)]
    pub model: Option<ModelRef>,
    #[serde(default)]
    pub exchanges: Vec<ModelExchange>,
    #[serde(default)]
    pub spec: Option<serde_json::Value>,
    #[serde(default)]
    pub validation_rounds: Vec<ValidationRound>,
    #[serde(default)]
    pub backtests: Vec<BacktestResult>,
    pub status: StrategyStatus,
    /// Reasons of the current status (a rejection's thresholds missed).
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub status_history: Vec<StatusChange>,
    #[serde(default)]
    pub promotions: Vec<Promotion>,
}

impl Record for StrategyRecord {}

impl StrategyRecord {
    /// The stored spec, validated again (a library written by an older binary may hold a
    /// spec this one reads differently); `None` if the attempt never produced one.
    pub fn spec(&self) -> Option<Result<super::spec::StrategySpec, super::spec::SpecErrors>> {
        self.spec
            .as_ref()
            .map(|v| super::spec::validate(&v.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NameEntry {
    id: String,
}

impl Record for NameEntry {}

/// The library over one store. Cheap to clone; clones share the write lock.
#[derive(Clone)]
pub struct StrategyLibrary {
    records: Tree<StrategyRecord>,
    names: Tree<NameEntry>,
    store: Store,
    clock: Arc<dyn Clock>,
    write: Arc<Mutex<()>>,
}

impl std::fmt::Debug for StrategyLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrategyLibrary").finish_non_exhaustive()
    }
}

impl StrategyLibrary {
    pub fn open(store: &Store, clock: Arc<dyn Clock>) -> Result<Self, LibraryError> {
        Ok(Self {
            records: store.tree(TREE)?,
            names: store.tree(NAMES_TREE)?,
            store: store.clone(),
            clock,
            write: Arc::new(Mutex::new(())),
        })
    }

    /// Stores a new attempt as a candidate, under a unique name (see the module docs), and
    /// returns the record as stored.
    pub fn put(&self, attempt: Attempt) -> Result<StrategyRecord, LibraryError> {
        self.put_judged(attempt, FirstVerdict::Candidate(Vec::new()), "library")
    }

    /// Stores a new attempt with the verdict `by` already gave it, in the same write: a
    /// rejected attempt is never listed (nor promotable) as a candidate, not even for the
    /// moment between storing and judging, and a crash there cannot leave it one.
    pub fn put_judged(
        &self,
        attempt: Attempt,
        verdict: FirstVerdict,
        by: &str,
    ) -> Result<StrategyRecord, LibraryError> {
        check_name(&attempt.name)?;
        let (status, reasons) = match verdict {
            FirstVerdict::Candidate(reasons) => (StrategyStatus::Candidate, reasons),
            FirstVerdict::Rejected(reasons) => (StrategyStatus::Rejected, reasons),
        };
        let _guard = self.write.lock();
        let now = self.clock.now_ms();
        let (name, version) = self.free_name(&attempt.name)?;
        let id = self.next_id(now)?;
        let record = StrategyRecord {
            id: id.clone(),
            name: name.clone(),
            base_name: attempt.name,
            version,
            created_ms: now,
            source: redact_source(attempt.source),
            research: attempt.research,
            model: attempt.model,
            exchanges: attempt.exchanges,
            spec: attempt.spec,
            validation_rounds: attempt.validation_rounds,
            backtests: attempt.backtests,
            status,
            reasons: reasons.clone(),
            status_history: vec![StatusChange {
                time_ms: now,
                status,
                reasons,
                by: by.to_string(),
            }],
            promotions: Vec::new(),
        };
        // The record first, then its name: a crash between the two leaves a record the
        // name index does not know (found by id and in listings), never a dangling name.
        self.records.put(&id, &record)?;
        self.names.put(&name, &NameEntry { id })?;
        self.store.flush()?;
        Ok(record)
    }

    /// The attempt with this id, or else this name.
    pub fn get(&self, name_or_id: &str) -> Result<Option<StrategyRecord>, LibraryError> {
        if let Some(r) = self.records.get(name_or_id)? {
            return Ok(Some(r));
        }
        self.get_by_name(name_or_id)
    }

    pub fn get_by_id(&self, id: &str) -> Result<Option<StrategyRecord>, LibraryError> {
        Ok(self.records.get(id)?)
    }

    pub fn get_by_name(&self, name: &str) -> Result<Option<StrategyRecord>, LibraryError> {
        let Some(entry) = self.names.get(name)? else {
            return Ok(None);
        };
        match self.records.get(&entry.id)? {
            Some(r) => Ok(Some(r)),
            None => Err(LibraryError::DanglingName {
                name: name.to_string(),
                id: entry.id,
            }),
        }
    }

    /// Every attempt, newest first, optionally only those with `status`.
    pub fn list(
        &self,
        status: Option<StrategyStatus>,
    ) -> Result<Vec<StrategyRecord>, LibraryError> {
        let mut out = Vec::new();
        for item in self.records.iter_rev() {
            let (_, record) = item?;
            if status.is_none_or(|s| s == record.status) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Changes an attempt's record in place (adds validation rounds, backtests, exchanges).
    /// Its identity (id, name, base name, version, creation time), status and promotions
    /// are kept whatever `change` does: those change only through [`Self::set_status`] and
    /// [`Self::record_promotion`].
    pub fn update(
        &self,
        name_or_id: &str,
        change: impl FnOnce(&mut StrategyRecord),
    ) -> Result<StrategyRecord, LibraryError> {
        self.modify(name_or_id, |r| {
            let kept = r.clone();
            change(r);
            r.id = kept.id;
            r.name = kept.name;
            r.base_name = kept.base_name;
            r.version = kept.version;
            r.created_ms = kept.created_ms;
            r.status = kept.status;
            r.reasons = kept.reasons;
            r.status_history = kept.status_history;
            r.promotions = kept.promotions;
            r.source = redact_source(r.source.clone());
            Ok(())
        })
    }

    /// Sets the verdict (a rejection with its reasons, back to candidate, ...) and appends it
    /// to the history.
    pub fn set_status(
        &self,
        name_or_id: &str,
        status: StrategyStatus,
        reasons: Vec<String>,
        by: &str,
    ) -> Result<StrategyRecord, LibraryError> {
        let now = self.clock.now_ms();
        self.modify(name_or_id, |r| {
            r.status = status;
            r.reasons = reasons.clone();
            r.status_history.push(StatusChange {
                time_ms: now,
                status,
                reasons,
                by: by.to_string(),
            });
            Ok(())
        })
    }

    /// Records a promotion to `venue` and marks the attempt promoted. A rejected attempt is
    /// refused ([`LibraryError::Rejected`]): set it back to candidate first, on purpose.
    pub fn record_promotion(
        &self,
        name_or_id: &str,
        venue: &str,
        by: &str,
    ) -> Result<StrategyRecord, LibraryError> {
        self.record_promotion_with_agent(name_or_id, venue, by, None, &[])
    }

    /// As [`Self::record_promotion`], with the strategy agent the promotion asks for. Its
    /// name must be free: not in `reserved` (the configured agents') nor taken by an earlier
    /// promotion, checked under the write lock so two promotions at once cannot both take it.
    pub fn record_promotion_with_agent(
        &self,
        name_or_id: &str,
        venue: &str,
        by: &str,
        agent: Option<PromotedAgent>,
        reserved: &[String],
    ) -> Result<StrategyRecord, LibraryError> {
        let now = self.clock.now_ms();
        let guard = self.write.lock();
        if let Some(a) = &agent {
            if reserved.contains(&a.name) || self.promoted_agent_names()?.contains(&a.name) {
                return Err(LibraryError::AgentNameTaken(a.name.clone()));
            }
        }
        self.modify_locked(&guard, name_or_id, |r| {
            if r.status == StrategyStatus::Rejected {
                return Err(LibraryError::Rejected {
                    name: r.name.clone(),
                    reasons: if r.reasons.is_empty() {
                        "no reason recorded".into()
                    } else {
                        r.reasons.join("; ")
                    },
                });
            }
            r.promotions.push(Promotion {
                venue: venue.to_string(),
                time_ms: now,
                by: by.to_string(),
                agent,
            });
            if r.status != StrategyStatus::Promoted {
                r.status = StrategyStatus::Promoted;
                r.reasons = Vec::new();
                r.status_history.push(StatusChange {
                    time_ms: now,
                    status: StrategyStatus::Promoted,
                    reasons: vec![format!("promoted to {venue}")],
                    by: by.to_string(),
                });
            }
            Ok(())
        })
    }

    /// The names of the agents every promotion so far asked for.
    pub fn promoted_agent_names(&self) -> Result<Vec<String>, LibraryError> {
        Ok(self
            .list(Some(StrategyStatus::Promoted))?
            .into_iter()
            .flat_map(|r| r.promotions)
            .filter_map(|p| p.agent.map(|a| a.name))
            .collect())
    }

    fn modify(
        &self,
        name_or_id: &str,
        change: impl FnOnce(&mut StrategyRecord) -> Result<(), LibraryError>,
    ) -> Result<StrategyRecord, LibraryError> {
        let guard = self.write.lock();
        self.modify_locked(&guard, name_or_id, change)
    }

    /// `modify` for a caller that already holds the write lock (`_held` proves it).
    fn modify_locked(
        &self,
        _held: &parking_lot::MutexGuard<'_, ()>,
        name_or_id: &str,
        change: impl FnOnce(&mut StrategyRecord) -> Result<(), LibraryError>,
    ) -> Result<StrategyRecord, LibraryError> {
        let mut record = self
            .get(name_or_id)?
            .ok_or_else(|| LibraryError::NotFound(name_or_id.to_string()))?;
        change(&mut record)?;
        self.records.put(&record.id, &record)?;
        self.store.flush()?;
        Ok(record)
    }

    /// `base` if free, else the first free `base-vN` (N >= 2). Called under the write lock.
    fn free_name(&self, base: &str) -> Result<(String, u32), LibraryError> {
        if self.names.get(base)?.is_none() {
            return Ok((base.to_string(), 1));
        }
        let mut version = 2u32;
        loop {
            let candidate = format!("{base}-v{version}");
            if self.names.get(&candidate)?.is_none() {
                return Ok((candidate, version));
            }
            version = version.saturating_add(1);
        }
    }

    /// `<ms:013>-<n:06>`, n one past the attempts already created in that millisecond.
    /// Called under the write lock.
    fn next_id(&self, now: Millis) -> Result<String, LibraryError> {
        let prefix = format!("{:013}-", now.max(0));
        let taken = self.records.scan_prefix(&prefix).count();
        Ok(format!("{prefix}{taken:06}"))
    }
}

fn check_name(name: &str) -> Result<(), LibraryError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LibraryError::BadName {
            name: name.to_string(),
            reason: format!("use 1 to {NAME_MAX} characters of a-z, 0-9, '_' or '-'"),
        })
    }
}

/// Query parameter names whose values are credentials.
const SECRET_PARAMS: [&str; 9] = [
    "key",
    "token",
    "secret",
    "signature",
    "sig",
    "password",
    "passwd",
    "auth",
    "credential",
];

fn redact_source(source: ResearchSource) -> ResearchSource {
    match source {
        ResearchSource::Url(url) => ResearchSource::Url(redact_url(&url)),
        other => other,
    }
}

/// A URL without user-info and with credential-like query values replaced by `***`. A
/// string that does not parse as a URL is kept only up to its first `?` or `@`-bearing
/// authority, so nothing after them can leak.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        let cut = url.find(['?', '@', '#']).unwrap_or(url.len());
        return url[..cut].to_string();
    };
    // Both only fail for URLs that cannot have user-info (e.g. `data:`), which have none.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = SECRET_PARAMS.iter().any(|s| lower.contains(s));
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn attempt(name: &str) -> Attempt {
        Attempt {
            name: name.into(),
            source: ResearchSource::File("ideas/rsi.md".into()),
            research: ResearchRef::of("Buy oversold RSI dips in an uptrend."),
            model: Some(ModelRef {
                model: "strategist".into(),
                provider: "local".into(),
                deployment: None,
            }),
            exchanges: vec![ModelExchange {
                round: 0,
                system: "You write strategy specs.".into(),
                prompt: "research: ...".into(),
                answer: "{\"name\": \"rsi_dip\"}".into(),
                journal_id: None,
            }],
            spec: Some(serde_json::json!({"name": "rsi_dip"})),
            validation_rounds: vec![ValidationRound {
                round: 0,
                problems: vec![],
            }],
            backtests: vec![],
        }
    }

    #[test]
    fn attempts_survive_a_reopen_with_names_ids_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let clock = ManualClock::new(1_700_000_000_000);
        let (first, second, third) = {
            let store = Store::open(&path).unwrap();
            let lib = StrategyLibrary::open(&store, clock.clone()).unwrap();
            let first = lib.put(attempt("rsi_dip")).unwrap();
            // Same millisecond: the id still differs and sorts after.
            let second = lib.put(attempt("rsi_dip")).unwrap();
            clock.advance(1_000);
            let third = lib.put(attempt("bb_fade")).unwrap();
            lib.update(&second.id, |r| {
                r.backtests.push(BacktestResult {
                    dataset: "BTC-1h.csv".into(),
                    summary: BacktestSummary {
                        return_pct: Some(12.5),
                        buy_hold_return_pct: Some(8.0),
                        sharpe_ratio: None,
                        max_drawdown_pct: Some(-9.5),
                        num_trades: 14,
                    },
                    out_of_sample: Some(BacktestSummary {
                        return_pct: Some(3.0),
                        num_trades: 4,
                        ..Default::default()
                    }),
                    stats: serde_json::json!({"stats": {"sqn": 1.2}}),
                });
                // Identity cannot be changed through `update`.
                r.name = "hijack".into();
                r.status = StrategyStatus::Promoted;
            })
            .unwrap();
            lib.set_status(
                "bb_fade",
                StrategyStatus::Rejected,
                vec!["sharpe 0.4 < 1.0".into()],
                "rbi",
            )
            .unwrap();
            (first, second, third)
        };
        assert_eq!(
            (first.name.as_str(), first.version),
            ("rsi_dip", 1),
            "{first:?}"
        );
        assert_eq!((second.name.as_str(), second.version), ("rsi_dip-v2", 2));
        assert_eq!(second.base_name, "rsi_dip");
        assert!(first.id < second.id && second.id < third.id);
        assert_eq!(first.id, "1700000000000-000000");
        assert_eq!(second.id, "1700000000000-000001");

        let store = Store::open(&path).unwrap();
        let lib = StrategyLibrary::open(&store, clock.clone()).unwrap();
        let got = lib.get("rsi_dip-v2").unwrap().unwrap();
        assert_eq!(got.id, second.id);
        assert_eq!(got.backtests.len(), 1);
        assert_eq!(got.backtests[0].summary.num_trades, 14);
        assert_eq!(
            got.backtests[0].out_of_sample.unwrap().return_pct,
            Some(3.0)
        );
        assert_eq!(got.name, "rsi_dip-v2");
        assert_eq!(got.status, StrategyStatus::Candidate);
        assert_eq!(lib.get(&first.id).unwrap().unwrap().name, "rsi_dip");
        assert_eq!(got.exchanges[0].prompt, "research: ...");
        assert_eq!(got.research.sha256.len(), 64);
        // The stored spec is read back through validation (this one is incomplete).
        let problems = got.spec().unwrap().unwrap_err();
        assert!(problems.to_string().contains("/indicators"), "{problems}");

        let names = |v: Vec<StrategyRecord>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(
            names(lib.list(None).unwrap()),
            ["bb_fade", "rsi_dip-v2", "rsi_dip"]
        );
        assert_eq!(
            names(lib.list(Some(StrategyStatus::Rejected)).unwrap()),
            ["bb_fade"]
        );
        let rejected = lib.get("bb_fade").unwrap().unwrap();
        assert_eq!(rejected.reasons, ["sharpe 0.4 < 1.0"]);
        assert_eq!(rejected.status_history.len(), 2);

        // A third attempt after the reopen continues the versions.
        let again = lib.put(attempt("rsi_dip")).unwrap();
        assert_eq!(again.name, "rsi_dip-v3");
    }

    #[test]
    fn promotions_are_recorded_and_rejected_attempts_refused() {
        let store = Store::temporary().unwrap();
        let clock = ManualClock::new(5_000);
        let lib = StrategyLibrary::open(&store, clock.clone()).unwrap();
        lib.put(attempt("macd_trend")).unwrap();
        clock.advance(10);
        let r = lib
            .record_promotion("macd_trend", "paper", "operator")
            .unwrap();
        assert_eq!(r.status, StrategyStatus::Promoted);
        assert!(r.spec().is_some());
        assert_eq!(
            r.promotions,
            [Promotion {
                venue: "paper".into(),
                time_ms: 5_010,
                by: "operator".into(),
                agent: None,
            }]
        );
        let r = lib
            .record_promotion("macd_trend", "hyperliquid", "operator")
            .unwrap();
        assert_eq!(r.promotions.len(), 2);
        assert_eq!(lib.list(Some(StrategyStatus::Promoted)).unwrap().len(), 1);

        let stored = lib
            .put_judged(
                attempt("bad_idea"),
                FirstVerdict::Rejected(vec!["0 trades".into()]),
                "rbi",
            )
            .unwrap();
        assert_eq!(stored.status, StrategyStatus::Rejected);
        assert_eq!(lib.get("bad_idea").unwrap().unwrap(), stored);
        assert!(lib
            .list(Some(StrategyStatus::Candidate))
            .unwrap()
            .iter()
            .all(|r| r.name != "bad_idea"));
        let e = lib
            .record_promotion("bad_idea", "paper", "operator")
            .unwrap_err();
        assert!(
            matches!(e, LibraryError::Rejected { .. }) && e.to_string().contains("0 trades"),
            "{e}"
        );
        assert!(lib.get("bad_idea").unwrap().unwrap().promotions.is_empty());

        let e = lib
            .record_promotion("nope", "paper", "operator")
            .unwrap_err();
        assert!(matches!(e, LibraryError::NotFound(_)), "{e}");
        let e = lib.put(attempt("Has Spaces")).unwrap_err();
        assert!(matches!(e, LibraryError::BadName { .. }), "{e}");
        assert!(lib.get("nope").unwrap().is_none());
    }

    #[test]
    fn an_agent_name_goes_to_one_promotion_even_when_several_ask_at_once() {
        let store = Store::temporary().unwrap();
        let lib = StrategyLibrary::open(&store, ManualClock::new(1)).unwrap();
        let agent = |name: &str| PromotedAgent {
            name: name.into(),
            symbol: "BTC".into(),
            timeframe: "1h".into(),
            max_position_usd: rust_decimal::Decimal::from(500),
            equity_fraction: rust_decimal::Decimal::new(1, 1),
        };
        let strategies: Vec<String> = (0..8)
            .map(|i| lib.put(attempt(&format!("s{i}"))).unwrap().name)
            .collect();
        let won: Vec<bool> = std::thread::scope(|scope| {
            let asks: Vec<_> = strategies
                .iter()
                .map(|s| {
                    let lib = &lib;
                    scope.spawn(move || {
                        lib.record_promotion_with_agent(s, "paper", "op", Some(agent("x")), &[])
                    })
                })
                .collect();
            asks.into_iter()
                .map(|h| match h.join().unwrap() {
                    Ok(_) => true,
                    Err(LibraryError::AgentNameTaken(n)) => {
                        assert_eq!(n, "x");
                        false
                    }
                    Err(e) => panic!("{e}"),
                })
                .collect()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        assert_eq!(lib.promoted_agent_names().unwrap(), ["x"]);
        // A configured agent's name is refused the same way, and nothing is recorded.
        let e = lib
            .record_promotion_with_agent(
                "s0",
                "paper",
                "op",
                Some(agent("trader")),
                &["trader".into()],
            )
            .unwrap_err();
        assert!(matches!(e, LibraryError::AgentNameTaken(_)), "{e}");
        assert_eq!(lib.promoted_agent_names().unwrap(), ["x"]);
    }

    #[test]
    fn secrets_in_a_source_url_are_not_stored() {
        let store = Store::temporary().unwrap();
        let lib = StrategyLibrary::open(&store, ManualClock::new(1)).unwrap();
        let mut a = attempt("from_web");
        a.source = ResearchSource::Url(
            "https://user:hunter2@example.com/paper?id=7&api_key=sk-live-123&Token=abc".into(),
        );
        let r = lib.put(a).unwrap();
        let ResearchSource::Url(url) = &r.source else {
            panic!("{:?}", r.source)
        };
        assert_eq!(url, "https://example.com/paper?id=7&api_key=***&Token=***");
        // And what is on disk is the redacted form.
        let raw = serde_json::to_string(&lib.get_by_id(&r.id).unwrap().unwrap()).unwrap();
        assert!(
            !raw.contains("hunter2") && !raw.contains("sk-live-123"),
            "{raw}"
        );
        // An update cannot put it back.
        let r = lib
            .update("from_web", |r| {
                r.source = ResearchSource::Url("https://a:b@x.org/?secret=s3".into())
            })
            .unwrap();
        assert_eq!(
            r.source,
            ResearchSource::Url("https://x.org/?secret=***".into())
        );
        assert_eq!(redact_url("not a url?token=x"), "not a url");
    }

    #[test]
    fn research_is_kept_as_hash_and_excerpt() {
        let long = "x".repeat(2_000);
        let r = ResearchRef::of(&long);
        assert_eq!(r.excerpt.chars().count(), EXCERPT_CHARS);
        assert_eq!(r.chars, 2_000);
        // Known answer: SHA-256 of "abc".
        assert_eq!(
            ResearchRef::of("abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
