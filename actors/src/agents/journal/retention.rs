//! Retention of the decision journal: by age (`[journal] max_age`) and by count
//! (`max_decisions`), swept every `sweep_interval` by the [`JournalRetention`] actor the
//! engine starts (and once at its start).
//!
//! Owns: the `[journal]` config and its validation, the sweep, and the metrics
//! `orrery_journal_decisions` (gauge) and `orrery_journal_pruned_total{reason}`. Never:
//! touches the ledger (an order's record lives on in `orders`/`fills` after its decision
//! is pruned), or removes more than [`SWEEP_BATCH`] decisions per sweep (a backlog is
//! worked off over the next sweeps, so a sweep never holds the actor's thread for long).

use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message};
use serde::{Deserialize, Serialize};

use super::{id_time, names, DecisionJournal};
use crate::clock::{Millis, SharedClock};
use crate::store::StoreError;
use crate::validate::{join, Issues};

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Decisions older than this are removed.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// At most this many decisions are kept; the oldest go first.
    pub max_decisions: usize,
    /// How often retention runs.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 86_400),
            max_decisions: 100_000,
            sweep_interval: Duration::from_secs(600),
        }
    }
}

impl JournalConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.max_age >= Duration::from_secs(60)
                && self.max_age <= Duration::from_secs(3650 * 86_400),
            join(path, "max_age"),
            humantime::format_duration(self.max_age).to_string(),
            "a duration from 1m to 3650d",
        );
        issues.check(
            (1..=100_000_000).contains(&self.max_decisions),
            join(path, "max_decisions"),
            self.max_decisions,
            "an integer from 1 to 100000000",
        );
        issues.check(
            self.sweep_interval >= Duration::from_secs(1)
                && self.sweep_interval <= Duration::from_secs(86_400),
            join(path, "sweep_interval"),
            humantime::format_duration(self.sweep_interval).to_string(),
            "a duration from 1s to 1d",
        );
    }
}

/// Most decisions one sweep removes.
pub const SWEEP_BATCH: usize = 10_000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub pruned_age: usize,
    pub pruned_count: usize,
    /// Decisions left.
    pub remaining: usize,
}

/// Removes, oldest first, every decision older than `max_age` before `now_ms` and then as
/// many of the oldest as exceed `max_decisions` (at most [`SWEEP_BATCH`] in all).
pub fn sweep(
    journal: &DecisionJournal,
    config: &JournalConfig,
    now_ms: Millis,
) -> Result<SweepReport, StoreError> {
    let cutoff = now_ms.saturating_sub(config.max_age.as_millis().min(i64::MAX as u128) as i64);
    let mut len = journal.len();
    let mut report = SweepReport::default();
    let mut doomed: Vec<(String, &'static str)> = Vec::new();
    for key in journal.tree.keys() {
        let key = key?;
        if doomed.len() >= SWEEP_BATCH {
            break;
        }
        // Keys start with the decision's time; a key of another shape is read for it.
        let time = match id_time(&key) {
            Some(t) => t,
            None => match journal.get(&key) {
                Ok(Some(r)) => r.time_ms,
                // Unreadable or gone: age cannot be told, count still applies.
                _ => Millis::MAX,
            },
        };
        if time < cutoff {
            doomed.push((key, "age"));
        } else if len - doomed.len() > config.max_decisions {
            doomed.push((key, "count"));
        } else {
            break;
        }
    }
    for (key, reason) in doomed {
        journal.remove(&key)?;
        len -= 1;
        match reason {
            "age" => report.pruned_age += 1,
            _ => report.pruned_count += 1,
        }
        metrics::counter!(names::PRUNED, "reason" => reason).increment(1);
    }
    report.remaining = len;
    metrics::gauge!(names::DECISIONS).set(len as f64);
    Ok(report)
}

/// Runs [`sweep`] at start and every `sweep_interval`.
pub struct JournalRetention {
    journal: DecisionJournal,
    config: JournalConfig,
    clock: SharedClock,
}

impl JournalRetention {
    pub fn new(journal: DecisionJournal, config: JournalConfig, clock: SharedClock) -> Self {
        Self {
            journal,
            config,
            clock,
        }
    }

    fn run(&mut self) {
        match sweep(&self.journal, &self.config, self.clock.now_ms()) {
            Ok(r) if r.pruned_age + r.pruned_count > 0 => tracing::info!(
                pruned_age = r.pruned_age,
                pruned_count = r.pruned_count,
                remaining = r.remaining,
                "journal retention"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "journal retention sweep failed; retried at the next interval")
            }
        }
    }
}

impl Actor for JournalRetention {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.run();
        ctx.run_interval(self.config.sweep_interval, |this, _| this.run());
    }
}

/// Stops the retention actor (the engine's shutdown), so it drops its store handles.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopRetention;

impl Handler<StopRetention> for JournalRetention {
    type Result = ();

    fn handle(&mut self, _: StopRetention, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}
