//! `[[agents.rbi]]`: the RBI pipeline as a scheduled agent. Each run works through the
//! research not processed yet — the configured `sources`, then the files of the `inbox`
//! directory in name order — one attempt at a time (low priority: one model request in
//! flight, backtests on rayon's pool), until none is left or the run's deadline.
//!
//! A source counts as processed once its attempt is stored, whatever the verdict; one that
//! could not be read is logged, counted, kept as the run's error and tried again next run.
//! An inbox file is known by path and content hash, so an edited file is processed again.
//!
//! Owns: the sled tree `rbi/<name>` (processed sources). Never: trades, promotes, or
//! re-processes a stored attempt.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{Rbi, RbiError, RbiSettings, Source};
use crate::agents::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use crate::clock::{Millis, SharedClock};
use crate::models::ModelClient;
use crate::store::{Record, Store, StoreError, Tree};
use crate::strategies::library::StrategyLibrary;

use super::config::RbiAgentConfig;

/// One processed source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    pub time_ms: Millis,
    /// Hex SHA-256 of an inbox file's bytes (empty for a configured source).
    #[serde(default)]
    pub sha256: String,
    /// The library name of the attempt stored for it.
    pub strategy: String,
}

impl Record for Processed {}

/// What an RBI agent needs from the engine.
#[derive(Clone)]
pub struct RbiDeps {
    pub models: ModelClient,
    pub store: Store,
    pub library: StrategyLibrary,
    pub clock: SharedClock,
}

/// One RBI agent.
pub struct RbiAgent {
    config: RbiAgentConfig,
    pipeline: Rbi,
    processed: Tree<Processed>,
    clock: SharedClock,
}

impl RbiAgent {
    pub fn new(config: RbiAgentConfig, deps: RbiDeps) -> Result<Self, String> {
        let settings: RbiSettings = config.settings();
        let pipeline = Rbi::new(settings, deps.models, deps.library).map_err(|e| e.to_string())?;
        let processed = deps
            .store
            .tree(&format!("rbi/{}", config.name))
            .map_err(|e: StoreError| e.to_string())?;
        Ok(Self {
            config,
            pipeline,
            processed,
            clock: deps.clock,
        })
    }
}

/// A pending piece of research: its key in `rbi/<name>`, the source, an inbox file's hash.
struct Pending {
    key: String,
    source: Source,
    sha256: String,
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

fn inbox_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension()
                        .and_then(|e| e.to_str())
                        .map(str::to_ascii_lowercase)
                        .as_deref(),
                    Some("md" | "txt" | "html" | "htm")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Everything not processed yet, configured sources first; errors reading the inbox are
/// returned beside what could be listed.
fn pending(config: &RbiAgentConfig, processed: &Tree<Processed>) -> (Vec<Pending>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for s in &config.sources {
        match processed.get(s) {
            Ok(Some(_)) => {}
            Ok(None) => out.push(Pending {
                key: s.clone(),
                source: Source::parse(s),
                sha256: String::new(),
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(dir) = &config.inbox {
        match inbox_files(dir) {
            Ok(files) => {
                for f in files {
                    let key = f.display().to_string();
                    let sha = match sha256_file(&f) {
                        Ok(s) => s,
                        Err(e) => {
                            errors.push(format!("inbox file {key}: {e}"));
                            continue;
                        }
                    };
                    match processed.get(&key) {
                        Ok(Some(p)) if p.sha256 == sha => {}
                        Ok(_) => out.push(Pending {
                            key,
                            source: Source::File(f),
                            sha256: sha,
                        }),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
            Err(e) => errors.push(format!("inbox {}: {e}", dir.display())),
        }
    }
    (out, errors)
}

impl AgentKind for RbiAgent {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> Kind {
        Kind::Rbi
    }

    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }

    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, pipeline, processed, clock) = (
            self.config.clone(),
            self.pipeline.clone(),
            self.processed.clone(),
            Arc::clone(&self.clock),
        );
        Box::pin(async move {
            let (todo, mut errors) = pending(&config, &processed);
            for p in todo {
                match pipeline.attempt(&p.source).await {
                    Ok(report) => {
                        let entry = Processed {
                            time_ms: clock.now_ms(),
                            sha256: p.sha256,
                            strategy: report.record.name.clone(),
                        };
                        if let Err(e) = processed.put(&p.key, &entry) {
                            errors.push(format!("{}: cannot record it as processed: {e}", p.key));
                        }
                    }
                    // Unreadable research: tried again next run.
                    Err(RbiError::Research(e)) => errors.push(e.to_string()),
                    Err(e) => return RunOutcome::Error(e.to_string()),
                }
            }
            if errors.is_empty() {
                RunOutcome::Ok
            } else {
                RunOutcome::Error(errors.join("; "))
            }
        })
    }
}
