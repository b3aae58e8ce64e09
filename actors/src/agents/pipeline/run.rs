//! One pipeline run for one symbol: the mode check, the five stages in order (the two
//! analysts side by side), each under its own deadline, and the journal record that keeps
//! every stage's input and output under the run's id (the decision id).
//!
//! Owns: stage deadlines, what ends a run (see the [module docs](super)), the per-stage
//! and per-run log lines and metrics. Never: retries a stage, or sends an order for a
//! run that a stage ended.

use std::future::Future;
use std::time::Duration;

use super::analyst;
use super::bracket;
use super::collector;
use super::executor::{self, Execution};
use super::plan::parse_plan;
use super::strategist;
use super::trace::{PipelineTrace, Stage, StageOutcome, StageTrace};
use super::{names, ModelStage, PipelineConfig, PipelineDeps};
use crate::agents::gateway_call;
use crate::agents::journal::{prompt_sha256, DecisionMode, DecisionRecord};
use crate::agents::runtime::{record_outcome, RunOutcome};
use crate::exchanges::gateway::GetMode;
use crate::exchanges::risk_gate::TradingMode;
use crate::models::roles::{parse_case, AnalystCase, CaseSide, PipelineContext};
use crate::models::{ModelError, ModelRequest, StructuredContext};

/// One run's record, for tests and the embedding API (the journal has the same).
pub type PipelineRun = DecisionRecord;

/// The series of one pipeline agent exist from its start, so an alert on their increase
/// works before the first failure.
pub fn init_metrics(agent: &str) {
    for stage in Stage::ALL {
        for outcome in super::StageOutcome::ALL {
            metrics::counter!(names::STAGES, "agent" => agent.to_string(), "stage" => stage.as_str(), "outcome" => outcome.as_str())
                .increment(0);
        }
    }
}

/// One run over every symbol, recorded (metrics, memory) as the runtime records a run.
pub async fn run_once(config: &PipelineConfig, deps: &PipelineDeps) -> Vec<PipelineRun> {
    let started = tokio::time::Instant::now();
    let (records, outcome) = run_symbols(config, deps).await;
    record_outcome(
        &config.name,
        &deps.memory,
        &deps.clock,
        &outcome,
        started.elapsed(),
    );
    records
}

/// Every symbol through the pipeline, each journaled; the runtime (or [`run_once`])
/// records the outcome: an error names the first symbol whose run a stage or an order
/// ended.
pub(super) async fn run_symbols(
    config: &PipelineConfig,
    deps: &PipelineDeps,
) -> (Vec<PipelineRun>, RunOutcome) {
    let mut records = Vec::with_capacity(config.symbols.len());
    let mut receipts = Vec::with_capacity(config.symbols.len());
    let mut first_error = None;
    for symbol in &config.symbols {
        let (record, failed) = run_symbol(config, deps, symbol).await;
        if failed {
            first_error.get_or_insert_with(|| {
                format!(
                    "{symbol}: {}: {}",
                    record.outcome,
                    record.error.as_deref().unwrap_or("-")
                )
            });
        }
        receipts.push(deps.journal.append(record.clone()));
        records.push(record);
    }
    for written in crate::agents::journal::wait_all(receipts).await {
        if let Err(e) = written {
            first_error.get_or_insert_with(|| format!("journal: {e}"));
        }
    }
    let skipped = !records.is_empty() && records.iter().all(|r| r.outcome == "skipped_mode");
    let outcome = match first_error {
        Some(e) => RunOutcome::Error(e),
        None if skipped => RunOutcome::SkippedMode,
        None => RunOutcome::Ok,
    };
    (records, outcome)
}

/// The logical models of the three model stages, as the journal's `model`.
fn models_label(config: &PipelineConfig) -> String {
    format!(
        "{},{},{}",
        config.long_analyst.model, config.short_analyst.model, config.strategy_generator.model
    )
}

/// How a stage that ended the run ended: its outcome and why.
struct Stop {
    outcome: StageOutcome,
    error: String,
}

/// The run for one symbol; `true` when it failed (a stage or an order).
async fn run_symbol(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
) -> (PipelineRun, bool) {
    let started = tokio::time::Instant::now();
    let mut record = DecisionRecord::begin(
        deps.clock.now_ms(),
        &config.name,
        &config.venue,
        symbol,
        &models_label(config),
    );
    record.mode = DecisionMode::Pipeline;
    let mut trace = PipelineTrace::default();
    let failed = stages(config, deps, symbol, &mut record, &mut trace).await;
    record.latency_ms = Some(started.elapsed().as_millis() as u64);
    metrics::counter!(names::RUNS, "agent" => config.name.clone(), "outcome" => record.outcome.clone())
        .increment(1);
    tracing::info!(
        agent = %config.name,
        run = %record.id,
        venue = %config.venue,
        symbol,
        plan = %record.action.as_deref().unwrap_or("-"),
        confidence = record.confidence,
        stopped_at = trace.stopped_at.map(|s| s.as_str()),
        orders = record.orders.len(),
        outcome = %record.outcome,
        error = record.error.as_deref(),
        duration_ms = record.latency_ms,
        "pipeline run"
    );
    record.pipeline = Some(trace);
    (record, failed)
}

/// The stages of one run; fills `record` and `trace`. `true` when the run failed.
async fn stages(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
    record: &mut DecisionRecord,
    trace: &mut PipelineTrace,
) -> bool {
    // A mode that allows no new position costs no stage at all. The read is bounded by
    // the collector's deadline, as every read of the run is.
    let mode = within(
        config.collector.timeout,
        gateway_call(&deps.gateway, GetMode {}),
        failed,
    )
    .await;
    match mode {
        Ok(state) if state.mode != TradingMode::Normal => {
            record.outcome = "skipped_mode".into();
            record.reason = Some(format!(
                "trading mode {:?} ({}): the pipeline opens positions only in Normal",
                state.mode, state.reason
            ));
            return false;
        }
        Ok(_) => {}
        Err(stop) => {
            record.outcome = "no_data".into();
            record.error = Some(format!("trading mode: {}", stop.error));
            return true;
        }
    }

    // 1. Collector.
    let mut stage = StageTrace::new(Stage::Collector);
    stage.input = Some(collector::input(config, symbol));
    let begun = tokio::time::Instant::now();
    let collected = within(
        config.collector.timeout,
        collector::collect(config, deps, symbol),
        |e| failed(format!("market data: {e}")),
    )
    .await;
    let market = match collected {
        Ok(market) => {
            stage.output = serde_json::to_value(&market).ok();
            finish(config, symbol, record, trace, stage, begun);
            market
        }
        Err(stop) => return stopped(config, symbol, record, trace, stage, begun, stop),
    };
    record.context = Some(StructuredContext::Market(market.clone()));
    if market.position.as_ref().is_none_or(|p| p.size.is_zero()) {
        // Flat: the leg of an earlier bracket that did not fire goes now, before it can
        // close part of a new position (see `bracket`).
        let cleaned = tokio::time::timeout(
            config.collector.timeout,
            bracket::cancel_stale(config, deps, symbol),
        )
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(agent = %config.name, symbol, "pipeline: cancelling the stale exit legs took longer than the collector's timeout; trying again next run");
            Ok(Vec::new())
        });
        match cleaned {
            Ok(cancelled) if !cancelled.is_empty() => {
                if let Some(collector) = trace.stages.last_mut() {
                    if let Some(out) = collector.output.as_mut().and_then(|o| o.as_object_mut()) {
                        out.insert("cancelled_stale_legs".into(), serde_json::json!(cancelled));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(agent = %config.name, symbol, error = %e, "pipeline: cannot read the remembered exit legs");
            }
        }
    }
    if let Some(p) = market.position.as_ref().filter(|p| !p.size.is_zero()) {
        // The bracket of an earlier run manages a held position (module docs).
        record.outcome = "position_held".into();
        record.reason = Some(format!(
            "a position of {} {symbol} is held; the pipeline opens positions, its bracket closes them",
            p.size.normalize()
        ));
        return false;
    }
    let mut context = PipelineContext {
        market: market.clone(),
        long_case: None,
        short_case: None,
        max_position_pct: config.max_position_pct,
    };

    // 2. The analysts, side by side.
    let (long, short) = futures::join!(
        analyst_stage(config, deps, CaseSide::Long, &context),
        analyst_stage(config, deps, CaseSide::Short, &context),
    );
    let mut cases = Vec::with_capacity(2);
    let mut first_stop = None;
    for (mut stage, begun, answer) in [long, short] {
        match answer {
            Ok(case) => {
                stage.output = serde_json::to_value(&case).ok();
                finish(config, symbol, record, trace, stage, begun);
                cases.push(case);
            }
            Err(stop) => {
                // Both analysts are journaled; the first that failed ends the run.
                let failed_stage = stage.stage;
                stage.outcome = stop.outcome;
                stage.error = Some(stop.error.clone());
                finish(config, symbol, record, trace, stage, begun);
                first_stop.get_or_insert((failed_stage, stop));
            }
        }
    }
    if let Some((failed_stage, stop)) = first_stop {
        end_run(record, trace, failed_stage, &stop);
        return true;
    }
    let (Some(long), Some(short)) = (cases.first().cloned(), cases.get(1).cloned()) else {
        // Two analysts ran and neither stopped the run: both cases are here.
        return true;
    };
    context.long_case = Some(long.clone());
    context.short_case = Some(short.clone());

    // 3. Strategy generator.
    let begun = tokio::time::Instant::now();
    let mut stage = StageTrace::new(Stage::StrategyGenerator);
    let answer = ask(
        deps,
        &config.strategy_generator,
        crate::models::Purpose::TradePlan,
        strategist::system(config.max_position_pct),
        strategist::prompt(&market, &long, &short),
        context,
        &mut stage,
    )
    .await;
    let plan = match answer.and_then(|text| {
        parse_plan(&text, market.price, config.max_position_pct).map_err(|e| Stop {
            outcome: StageOutcome::Invalid,
            error: format!("no valid plan: {e}"),
        })
    }) {
        Ok(plan) => {
            stage.output = serde_json::to_value(&plan).ok();
            finish(config, symbol, record, trace, stage, begun);
            plan
        }
        Err(stop) => return stopped(config, symbol, record, trace, stage, begun, stop),
    };
    record.action = Some(plan.label().to_string());
    record.confidence = Some(plan.confidence());
    record.reason = Some(plan.reason().to_string());
    trace.plan = Some(plan.clone());
    let Some((side, trade)) = plan.trade() else {
        record.outcome = "stand_aside".into();
        return false;
    };
    // Trades at or above the threshold: `min_confidence = 0.6` acts on 0.6.
    if trade.confidence < config.min_confidence {
        record.outcome = "below_min_confidence".into();
        return false;
    }

    // 4. Executor.
    let begun = tokio::time::Instant::now();
    let mut stage = StageTrace::new(Stage::Executor);
    stage.input = serde_json::to_value(&plan).ok();
    let executed = within(
        config.executor.timeout,
        async {
            Ok::<Execution, std::convert::Infallible>(
                executor::execute(config, deps, symbol, side, trade, market.account_value).await,
            )
        },
        |never| match never {},
    )
    .await;
    match executed {
        Ok(done) => {
            stage.output = serde_json::to_value(&done.orders).ok();
            if done.failed {
                stage.outcome = StageOutcome::Error;
                stage.error = done.error.clone();
            }
            finish(config, symbol, record, trace, stage, begun);
            record.orders = done.orders;
            record.outcome = done.outcome;
            record.error = done.error;
            done.failed
        }
        Err(stop) => {
            // Cut at its deadline: an order it had handed to the gateway is still carried
            // out there and settled by the gateway's own rules; the ledger has it.
            stopped(config, symbol, record, trace, stage, begun, stop)
        }
    }
}

/// A failed stage: [`StageOutcome::Error`] with the error's text.
fn failed(e: impl std::fmt::Display) -> Stop {
    Stop {
        outcome: StageOutcome::Error,
        error: e.to_string(),
    }
}

/// Runs `work` under `timeout`: a late stage is [`StageOutcome::Timeout`], a failed one
/// what `on_error` makes of its error.
async fn within<T, E>(
    timeout: Duration,
    work: impl Future<Output = Result<T, E>>,
    on_error: impl FnOnce(E) -> Stop,
) -> Result<T, Stop> {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(on_error(e)),
        Err(_) => Err(Stop {
            outcome: StageOutcome::Timeout,
            error: format!(
                "no result within its timeout of {}",
                humantime::format_duration(timeout)
            ),
        }),
    }
}

/// One analyst: asks its model and reads its case strictly.
async fn analyst_stage(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    side: CaseSide,
    context: &PipelineContext,
) -> (StageTrace, tokio::time::Instant, Result<AnalystCase, Stop>) {
    let (stage, model) = match side {
        CaseSide::Long => (Stage::LongAnalyst, &config.long_analyst),
        CaseSide::Short => (Stage::ShortAnalyst, &config.short_analyst),
    };
    let begun = tokio::time::Instant::now();
    let mut trace = StageTrace::new(stage);
    let answer = ask(
        deps,
        model,
        analyst::purpose(side),
        analyst::system(side),
        analyst::prompt(side, &context.market),
        context.clone(),
        &mut trace,
    )
    .await;
    let case = answer.and_then(|text| {
        parse_case(&text, side).map_err(|e| Stop {
            outcome: StageOutcome::Invalid,
            error: format!("unreadable {} case: {e}", side.as_str()),
        })
    });
    (trace, begun, case)
}

/// Asks a model stage, under the stage's deadline, and journals the exact prompt and the
/// answer in `trace`. The answer's text, or why there is none.
async fn ask(
    deps: &PipelineDeps,
    stage: &ModelStage,
    purpose: crate::models::Purpose,
    system: String,
    prompt: String,
    context: PipelineContext,
    trace: &mut StageTrace,
) -> Result<String, Stop> {
    trace.model = Some(stage.model.clone());
    trace.prompt_sha256 = prompt_sha256(&system, &prompt);
    let request = ModelRequest {
        model: stage.model.clone(),
        purpose,
        system: system.clone(),
        prompt: prompt.clone(),
        context: Some(StructuredContext::Pipeline(Box::new(context))),
        max_tokens: 600,
        temperature: 0.0,
        timeout: stage.timeout,
        cacheable: false,
    };
    trace.system = system;
    trace.prompt = prompt;
    let response = within(stage.timeout, deps.models.ask(request), |e: ModelError| {
        Stop {
            // The router's own deadline is the stage's: a timeout either way.
            outcome: match e {
                ModelError::DeadlineExceeded { .. } | ModelError::Abandoned { .. } => {
                    StageOutcome::Timeout
                }
                _ => StageOutcome::Error,
            },
            error: format!("model: {e}"),
        }
    })
    .await?;
    trace.deployment = Some(response.deployment.clone());
    trace.raw_answer = Some(response.text.clone());
    trace.prompt_tokens = response.usage.prompt_tokens;
    trace.completion_tokens = response.usage.completion_tokens;
    Ok(response.text)
}

/// Records a stage that produced its output: duration, metrics, log line.
fn finish(
    config: &PipelineConfig,
    symbol: &str,
    record: &DecisionRecord,
    trace: &mut PipelineTrace,
    mut stage: StageTrace,
    begun: tokio::time::Instant,
) {
    let took = begun.elapsed();
    stage.duration_ms = took.as_millis() as u64;
    metrics::counter!(names::STAGES, "agent" => config.name.clone(), "stage" => stage.stage.as_str(), "outcome" => stage.outcome.as_str())
        .increment(1);
    metrics::histogram!(names::STAGE_DURATION, "agent" => config.name.clone(), "stage" => stage.stage.as_str())
        .record(took.as_secs_f64());
    let level_ok = stage.outcome == StageOutcome::Ok;
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level,
                agent = %config.name,
                run = %record.id,
                symbol,
                stage = stage.stage.as_str(),
                outcome = stage.outcome.as_str(),
                duration_ms = stage.duration_ms,
                model = stage.model.as_deref(),
                deployment = stage.deployment.as_deref(),
                error = stage.error.as_deref(),
                "pipeline stage"
            )
        };
    }
    if level_ok {
        line!(tracing::Level::INFO);
    } else {
        line!(tracing::Level::WARN);
    }
    trace.stages.push(stage);
}

/// A stage that ended the run: recorded as it ended, and the run's outcome names it.
fn stopped(
    config: &PipelineConfig,
    symbol: &str,
    record: &mut DecisionRecord,
    trace: &mut PipelineTrace,
    mut stage: StageTrace,
    begun: tokio::time::Instant,
    stop: Stop,
) -> bool {
    let which = stage.stage;
    stage.outcome = stop.outcome;
    stage.error = Some(stop.error.clone());
    finish(config, symbol, record, trace, stage, begun);
    end_run(record, trace, which, &stop);
    true
}

fn end_run(record: &mut DecisionRecord, trace: &mut PipelineTrace, stage: Stage, stop: &Stop) {
    trace.stopped_at = Some(stage);
    record.outcome = format!("{}_{}", stage.as_str(), stop.outcome.as_str());
    record.error = Some(format!("{}: {}", stage.as_str(), stop.error));
}
