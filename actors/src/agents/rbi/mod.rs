//! The RBI agent — research → backtest → implement: a model turns research text into a
//! declarative strategy spec, the engine validates it (feeding the problems back to the
//! model for up to `fix_rounds` repairs), backtests it on the configured data sets in
//! parallel with an in-sample / out-of-sample split, judges it against the promotion
//! thresholds, and stores the attempt — every attempt, failures included — in the
//! strategy library with its provenance.
//!
//! One attempt ([`Rbi::attempt`]):
//! 1. the research is read ([`research`]: a file, or a URL with a deadline, a size cap
//!    and bounded redirects; HTML reduced to text); a source that cannot be read is an
//!    error and stores nothing (there is no research to attribute an attempt to);
//! 2. the model (through the router, like every agent) gets the format
//!    ([`crate::strategies::spec::schema_help`]) and the research; the JSON object is taken
//!    from its answer ([`answer::extract_json`]: code fences and prose around it are
//!    tolerated) and validated; on problems, they go back to the model with its answer, up
//!    to `fix_rounds` times;
//! 3. a valid spec is backtested on every data set at once ([`judge`], rayon, on a
//!    blocking thread) and judged ([`judge::misses`]);
//! 4. the attempt is stored ([`StrategyLibrary::put`]) with the source, the research's
//!    hash and excerpt, the model and deployment, every prompt and answer, every
//!    validation round, the results, and the verdict ([`Verdict`]) with its reasons: a pass
//!    stays `candidate` (for an operator to promote), anything else is `rejected`.
//!
//! One log line per attempt (name, rounds, verdict, reasons), and the metrics in
//! [`names`].
//!
//! Owns: the loop and the verdict. Never: executes anything the model wrote (a spec is
//! data, compiled to the built-in indicators), trades, promotes, or starts an agent —
//! promotion is an operator's command (`orrery strategies promote`).

pub mod agent;
pub mod answer;
pub mod config;
pub mod judge;
pub mod research;
#[cfg(test)]
mod tests;

pub use agent::{RbiAgent, RbiDeps};
pub use config::{FetchLimits, RbiAgentConfig, RbiSettings, Thresholds};
pub use research::{ResearchError, Source};

use serde::{Deserialize, Serialize};

use crate::models::{
    ModelClient, ModelError, ModelRequest, Purpose, ResearchText, StructuredContext,
};
use crate::strategies::library::{
    Attempt, BacktestResult, FirstVerdict, LibraryError, ModelExchange, ModelRef, ResearchRef,
    StrategyLibrary, StrategyRecord, ValidationRound,
};
use crate::strategies::spec::{self, SpecErrors, StrategySpec};

/// Metric names of the RBI pipeline.
pub mod names {
    /// Attempts stored, by verdict.
    pub const ATTEMPTS: &str = "orrery_rbi_attempts_total";
    /// Repair requests sent to the model (a spec refused by the validator, sent back).
    pub const FIX_ROUNDS: &str = "orrery_rbi_fix_rounds_total";
    /// Research sources that could not be read, by kind (`file`, `url`).
    pub const RESEARCH_ERRORS: &str = "orrery_rbi_research_errors_total";
}

/// HELP texts of the metrics in [`names`], and every verdict's series at zero.
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(
        names::ATTEMPTS,
        "Research -> backtest attempts stored in the strategy library, by verdict."
    );
    describe_counter!(
        names::FIX_ROUNDS,
        "Repair requests sent to the model after the validator refused its strategy spec."
    );
    describe_counter!(
        names::RESEARCH_ERRORS,
        "Research sources the RBI pipeline could not read, by kind (file, url)."
    );
    for v in Verdict::ALL {
        metrics::counter!(names::ATTEMPTS, "verdict" => v.as_str()).absolute(0);
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Valid, backtested, and every threshold met on every data set: kept as a candidate.
    Passed,
    /// Valid and backtested, but a threshold missed: rejected with the misses as reasons.
    FailedThresholds,
    /// Still invalid after the fix rounds: rejected with the last problems.
    InvalidSpec,
    /// The model gave no answer (timeout, provider down): rejected with the error.
    ModelError,
    /// Valid, but no data set could be backtested (unreadable file, too few bars).
    BacktestError,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Passed,
        Verdict::FailedThresholds,
        Verdict::InvalidSpec,
        Verdict::ModelError,
        Verdict::BacktestError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::FailedThresholds => "failed_thresholds",
            Verdict::InvalidSpec => "invalid_spec",
            Verdict::ModelError => "model_error",
            Verdict::BacktestError => "backtest_error",
        }
    }

    /// The library status an attempt with this verdict is stored under.
    /// What the library stores the attempt as, with `reasons` for a rejection.
    pub fn stored_as(self, reasons: Vec<String>) -> FirstVerdict {
        match self {
            Verdict::Passed => FirstVerdict::Candidate(reasons),
            _ => FirstVerdict::Rejected(reasons),
        }
    }
}

/// Why an attempt could not be made (nothing was stored).
#[derive(Debug, thiserror::Error)]
pub enum RbiError {
    #[error(transparent)]
    Research(#[from] ResearchError),
    #[error("no data sets to backtest on: give --data a.csv,b.csv or set `data` in [research] / [[agents.rbi]]")]
    NoData,
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("the research HTTP client could not be built: {0}")]
    Client(String),
}

/// What one attempt produced: the record as stored, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RbiReport {
    pub verdict: Verdict,
    /// Repair requests sent (0: the first spec was valid, or there was none).
    pub fix_rounds: u32,
    pub record: StrategyRecord,
}

/// One pipeline: settings, the router, the library and the research client.
#[derive(Clone)]
pub struct Rbi {
    settings: RbiSettings,
    models: ModelClient,
    library: StrategyLibrary,
    http: reqwest::Client,
}

impl std::fmt::Debug for Rbi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rbi")
            .field("model", &self.settings.model)
            .finish_non_exhaustive()
    }
}

/// What the model loop ended with.
struct Written {
    exchanges: Vec<ModelExchange>,
    rounds: Vec<ValidationRound>,
    /// The last answer's JSON, if it was JSON.
    spec_json: Option<serde_json::Value>,
    model: Option<ModelRef>,
    outcome: Result<StrategySpec, Failure>,
    fix_rounds: u32,
}

enum Failure {
    Invalid(SpecErrors),
    Model(ModelError),
}

impl Rbi {
    pub fn new(
        settings: RbiSettings,
        models: ModelClient,
        library: StrategyLibrary,
    ) -> Result<Self, RbiError> {
        let http =
            research::client(&settings.fetch).map_err(|e| RbiError::Client(e.to_string()))?;
        Ok(Self {
            settings,
            models,
            library,
            http,
        })
    }

    pub fn settings(&self) -> &RbiSettings {
        &self.settings
    }

    /// One attempt on `source` (see the module docs); the stored record and its verdict.
    pub async fn attempt(&self, source: &Source) -> Result<RbiReport, RbiError> {
        if self.settings.data.is_empty() {
            return Err(RbiError::NoData);
        }
        let text = match research::read(&self.http, source, &self.settings.fetch).await {
            Ok(t) => t,
            Err(e) => {
                let kind = if matches!(source, Source::Url(_)) {
                    "url"
                } else {
                    "file"
                };
                metrics::counter!(names::RESEARCH_ERRORS, "kind" => kind).increment(1);
                tracing::warn!(source = %source.display(), error = %e, "rbi: research not read; nothing stored");
                return Err(e.into());
            }
        };
        let written = self.write_spec(source, &text).await;
        let (verdict, reasons, backtests) = match &written.outcome {
            Err(Failure::Invalid(errors)) => (
                Verdict::InvalidSpec,
                std::iter::once(format!(
                    "spec still invalid after {} fix round(s)",
                    written.fix_rounds
                ))
                .chain(errors.0.iter().map(|p| p.to_string()))
                .collect(),
                Vec::new(),
            ),
            Err(Failure::Model(e)) => (
                Verdict::ModelError,
                vec![format!(
                    "model `{}` gave no answer: {e}",
                    self.settings.model
                )],
                Vec::new(),
            ),
            Ok(spec) => self.judge(spec).await,
        };
        let name = match &written.outcome {
            Ok(spec) => spec.name.clone(),
            Err(_) => written
                .spec_json
                .as_ref()
                .and_then(|v| v.get("name"))
                .and_then(|n| n.as_str())
                .filter(|n| valid_name(n))
                .map(str::to_string)
                .unwrap_or_else(|| format!("rbi-{}", source.stem())),
        };
        let attempt = Attempt {
            name,
            source: source.as_record(),
            research: ResearchRef::of(&text),
            model: written.model.clone(),
            exchanges: written.exchanges,
            spec: written.spec_json,
            validation_rounds: written.rounds,
            backtests,
        };
        let record = self
            .library
            .put_judged(attempt, verdict.stored_as(reasons.clone()), "rbi")?;
        metrics::counter!(names::ATTEMPTS, "verdict" => verdict.as_str()).increment(1);
        tracing::info!(
            strategy = %record.name,
            source = %source.display(),
            rounds = written.fix_rounds,
            verdict = verdict.as_str(),
            status = %record.status,
            reasons = %reasons.join("; "),
            "rbi attempt stored"
        );
        Ok(RbiReport {
            verdict,
            fix_rounds: written.fix_rounds,
            record,
        })
    }

    /// Asks for a spec and repairs it until it validates or the fix rounds are spent.
    async fn write_spec(&self, source: &Source, text: &str) -> Written {
        let system = answer::system();
        let first = answer::first_prompt(&source.display(), text, self.settings.fetch.max_chars);
        let mut prompt = first.clone();
        let mut w = Written {
            exchanges: Vec::new(),
            rounds: Vec::new(),
            spec_json: None,
            model: None,
            outcome: Err(Failure::Invalid(SpecErrors(Vec::new()))),
            fix_rounds: 0,
        };
        for round in 0..=self.settings.fix_rounds {
            if round > 0 {
                w.fix_rounds = round;
                metrics::counter!(names::FIX_ROUNDS).increment(1);
            }
            let mut request = ModelRequest::new(
                self.settings.model.clone(),
                Purpose::Freeform,
                prompt.clone(),
            );
            request.system = system.clone();
            // The research itself, for rules-based deployments that do not read prose.
            request.context = Some(StructuredContext::Research(ResearchText {
                text: text.chars().take(self.settings.fetch.max_chars).collect(),
            }));
            request.max_tokens = self.settings.max_tokens;
            request.timeout = self.settings.model_timeout;
            let response = match self.models.ask(request).await {
                Ok(r) => r,
                Err(e) => {
                    w.outcome = Err(Failure::Model(e));
                    return w;
                }
            };
            w.model = Some(ModelRef {
                model: self.settings.model.clone(),
                provider: response.provider.clone(),
                deployment: Some(response.deployment.clone()),
            });
            w.exchanges.push(ModelExchange {
                round,
                system: system.clone(),
                prompt: prompt.clone(),
                answer: response.text.clone(),
                journal_id: None,
            });
            let json = answer::extract_json(&response.text);
            w.spec_json = serde_json::from_str(json).ok();
            match spec::validate(json).and_then(|s| s.compile().map(|_| s)) {
                Ok(valid) => {
                    w.rounds.push(ValidationRound {
                        round,
                        problems: Vec::new(),
                    });
                    w.outcome = Ok(valid);
                    return w;
                }
                Err(errors) => {
                    tracing::info!(
                        round,
                        problems = errors.0.len(),
                        "rbi: the model's spec was refused by the validator"
                    );
                    w.rounds.push(ValidationRound {
                        round,
                        problems: errors.0.clone(),
                    });
                    prompt = answer::fix_prompt(&first, &response.text, &errors);
                    w.outcome = Err(Failure::Invalid(errors));
                }
            }
        }
        w
    }

    /// Backtests a valid spec on every data set (rayon, off the async thread) and judges it.
    async fn judge(&self, spec: &StrategySpec) -> (Verdict, Vec<String>, Vec<BacktestResult>) {
        let (spec_c, data, oos, config) = (
            spec.clone(),
            self.settings.data.clone(),
            self.settings.out_of_sample,
            self.settings.backtest,
        );
        let results = match tokio::task::spawn_blocking(move || {
            judge::backtest_all(&spec_c, &data, oos, &config)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                return (
                    Verdict::BacktestError,
                    vec![format!("the backtest task failed: {e}")],
                    Vec::new(),
                )
            }
        };
        let mut reasons = Vec::new();
        let mut done = Vec::new();
        let mut failed = false;
        for r in results {
            match r {
                Ok(result) => {
                    reasons.extend(judge::misses(&result, &self.settings.thresholds, oos > 0.0));
                    done.push(result);
                }
                Err(e) => {
                    failed = true;
                    reasons.push(e.to_string());
                }
            }
        }
        let verdict = if failed {
            Verdict::BacktestError
        } else if reasons.is_empty() {
            reasons.push(format!(
                "passed every threshold on {} data set(s); an operator may promote it",
                done.len()
            ));
            Verdict::Passed
        } else {
            Verdict::FailedThresholds
        };
        (verdict, reasons, done)
    }
}

/// Whether the library accepts `name` as a strategy name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
