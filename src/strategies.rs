//! `orrery strategies list|show|promote`, `orrery research run`, and their control API
//! routes: the operator's side of the strategy library and the RBI pipeline.
//!
//! Routes: `GET /api/strategies?status=S` ([`StrategiesReport`]), `GET
//! /api/strategies/{name}` (the [`StrategyRecord`]: spec, provenance, results), `POST
//! /api/strategies/{name}/promote` ([`PromoteBody`] → [`PromotionReport`]; a POST, so it
//! needs a trading token where tokens are configured), `POST /api/research/run`
//! ([`ResearchRunBody`] → the attempt's [`RbiReport`]).
//!
//! Promotion: to a `paper` venue by default; a venue of any other kind trades real money
//! and is refused unless `live` (`--live`) is given. A rejected attempt, or one without a
//! valid spec, is refused. The promotion (venue, who, and the strategy agent it asks for:
//! name, symbol, timeframe, size limits) is recorded in the library; a running engine
//! starts its strategy agent at once ([`promote_running`]: added to the live tree), and an
//! engine runs one for every recorded promotion from its start ([`add_promoted_agents`]),
//! which the answer (`starts`) and the log lines state.
//!
//! Owns: the shapes of those routes, the CLI's choice between the running engine (asked
//! over its control API: sled lets one process hold the data dir) and a stopped one (the
//! library read and written in place; `research run` boots the models in-process as
//! `orrery ask` does), and the tables. Never: runs a backtest or a strategy itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::{Args, Subcommand};
use orrery_actors::agents::rbi::{Rbi, RbiError, RbiReport, Source};
use orrery_actors::clock::system_clock;
use orrery_actors::models::ModelClient;
use orrery_actors::store::Store;
use orrery_actors::strategies::library::{
    LibraryError, PromotedAgent, ResearchSource, StrategyLibrary, StrategyRecord, StrategyStatus,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::{Engine, EngineHandle};
use crate::http::ApiError;
use crate::operate::CliError;

/// One line of `orrery strategies list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategySummary {
    pub name: String,
    pub id: String,
    pub status: StrategyStatus,
    pub created_ms: i64,
    /// `file:PATH`, `url:URL` (redacted) or `inline`.
    pub source: String,
    pub model: Option<String>,
    /// Validation rounds the spec went through.
    pub rounds: usize,
    /// The first data set's in-sample numbers, if backtested.
    pub return_pct: Option<f64>,
    pub sharpe_ratio: Option<f64>,
    pub max_drawdown_pct: Option<f64>,
    pub num_trades: Option<u64>,
    /// The first data set's out-of-sample return.
    pub oos_return_pct: Option<f64>,
    /// The current status's reasons.
    pub reasons: Vec<String>,
    pub promotions: usize,
}

impl StrategySummary {
    pub fn of(r: &StrategyRecord) -> Self {
        let first = r.backtests.first();
        Self {
            name: r.name.clone(),
            id: r.id.clone(),
            status: r.status,
            created_ms: r.created_ms,
            source: match &r.source {
                ResearchSource::File(p) => format!("file:{p}"),
                ResearchSource::Url(u) => format!("url:{u}"),
                ResearchSource::Inline => "inline".into(),
            },
            model: r.model.as_ref().map(|m| m.model.clone()),
            rounds: r.validation_rounds.len(),
            return_pct: first.and_then(|b| b.summary.return_pct),
            sharpe_ratio: first.and_then(|b| b.summary.sharpe_ratio),
            max_drawdown_pct: first.and_then(|b| b.summary.max_drawdown_pct),
            num_trades: first.map(|b| b.summary.num_trades),
            oos_return_pct: first
                .and_then(|b| b.out_of_sample)
                .and_then(|o| o.return_pct),
            reasons: r.reasons.clone(),
            promotions: r.promotions.len(),
        }
    }
}

/// `orrery strategies list --json` and `GET /api/strategies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategiesReport {
    pub strategies: Vec<StrategySummary>,
}

fn default_venue() -> String {
    "paper".into()
}

/// Body of `POST /api/strategies/{name}/promote`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// A venue under `[exchanges.venues]`.
    #[serde(default = "default_venue")]
    pub venue: String,
    /// Required for a venue that is not `paper`: it trades real money.
    #[serde(default)]
    pub live: bool,
    /// The symbol the agent trades (`BTC`).
    pub symbol: String,
    /// The bar width it is fed (`1h`).
    pub timeframe: String,
    /// Largest position (USD) its orders may build.
    pub max_position_usd: Decimal,
    /// Share of the account's equity the spec's sizing reads as all of it; default 0.1.
    #[serde(default)]
    pub equity_fraction: Option<Decimal>,
    /// The agent's name; default `<strategy>-<venue>`.
    #[serde(default)]
    pub agent: Option<String>,
    /// Who promotes (recorded); default `operator`.
    #[serde(default)]
    pub by: Option<String>,
}

/// The answer to a promotion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionReport {
    pub strategy: String,
    pub venue: String,
    /// `paper`, `hyperliquid`, `binance`, ...
    pub venue_kind: String,
    pub agent: PromotedAgent,
    /// When the strategy agent starts: `now` (promoted through a running engine, whose
    /// tree took the agent) or `next_engine_start` (the engine was stopped, or could not
    /// take the agent now: `message` says why).
    pub starts: String,
    /// One sentence for people.
    pub message: String,
}

/// Why a promotion was refused.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("no venue `{venue}` under [exchanges.venues]: {known}")]
    UnknownVenue { venue: String, known: String },
    #[error("venue `{venue}` is a live {kind} venue: a strategy promoted there trades real money. Promote to a paper venue first, or confirm with --live (API: \"live\": true)")]
    LiveNotConfirmed { venue: String, kind: String },
    #[error("strategy `{name}` has no valid spec to run ({why}); only an attempt whose spec validated can be promoted")]
    NoValidSpec { name: String, why: String },
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Library(#[from] LibraryError),
}

impl PromoteError {
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            PromoteError::UnknownVenue { .. } => (StatusCode::BAD_REQUEST, "unknown_venue"),
            PromoteError::LiveNotConfirmed { .. } => {
                (StatusCode::BAD_REQUEST, "live_not_confirmed")
            }
            PromoteError::NoValidSpec { .. } => (StatusCode::CONFLICT, "no_valid_spec"),
            PromoteError::BadInput(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            PromoteError::Library(e) => library_status(e),
        }
    }
}

fn library_status(e: &LibraryError) -> (StatusCode, &'static str) {
    match e {
        LibraryError::NotFound(_) => (StatusCode::NOT_FOUND, "unknown_strategy"),
        LibraryError::Rejected { .. } => (StatusCode::CONFLICT, "strategy_rejected"),
        LibraryError::AgentNameTaken(_) => (StatusCode::CONFLICT, "agent_name_taken"),
        LibraryError::BadName { .. } => (StatusCode::BAD_REQUEST, "bad_name"),
        LibraryError::Store(_) | LibraryError::DanglingName { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "store")
        }
    }
}

/// Promotes `name` (see the module docs): checks, records, logs.
pub fn promote(
    config: &Config,
    library: &StrategyLibrary,
    name: &str,
    body: PromoteBody,
) -> Result<PromotionReport, PromoteError> {
    let Some(venue_cfg) = config.exchanges.venues.get(&body.venue) else {
        return Err(PromoteError::UnknownVenue {
            venue: body.venue,
            known: config.venue_names(),
        });
    };
    let kind = venue_cfg.kind();
    if kind != "paper" && !body.live {
        return Err(PromoteError::LiveNotConfirmed {
            venue: body.venue,
            kind: kind.to_string(),
        });
    }
    let record = library
        .get(name)?
        .ok_or_else(|| LibraryError::NotFound(name.to_string()))?;
    // The verdict first: it is the reason an operator acts on.
    if record.status == StrategyStatus::Rejected {
        return Err(LibraryError::Rejected {
            reasons: record.reasons.join("; "),
            name: record.name,
        }
        .into());
    }
    match record.spec() {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            return Err(PromoteError::NoValidSpec {
                name: record.name,
                why: e.to_string(),
            })
        }
        None => {
            return Err(PromoteError::NoValidSpec {
                name: record.name,
                why: "the model never wrote one".into(),
            })
        }
    }
    let symbol = body.symbol.trim().to_ascii_uppercase();
    if symbol.is_empty() || symbol.len() > 32 || !symbol.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(PromoteError::BadInput(format!(
            "symbol `{}`: give a symbol of A-Z and 0-9, e.g. BTC",
            body.symbol
        )));
    }
    let timeframe: orrery_actors::exchanges::Timeframe =
        body.timeframe.parse().map_err(|e: String| {
            PromoteError::BadInput(format!("timeframe `{}`: {e}", body.timeframe))
        })?;
    if body.max_position_usd <= Decimal::ZERO {
        return Err(PromoteError::BadInput(format!(
            "max_position_usd {}: give a USD amount above 0",
            body.max_position_usd
        )));
    }
    let equity_fraction = body.equity_fraction.unwrap_or(Decimal::new(1, 1));
    if equity_fraction <= Decimal::ZERO || equity_fraction > Decimal::ONE {
        return Err(PromoteError::BadInput(format!(
            "equity_fraction {equity_fraction}: give a fraction in (0, 1], e.g. 0.1"
        )));
    }
    let agent_name = body
        .agent
        .clone()
        .unwrap_or_else(|| format!("{}-{}", record.name, body.venue));
    if agent_name.is_empty()
        || agent_name.len() > 64
        || !agent_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(PromoteError::BadInput(format!(
            "agent name `{agent_name}`: use 1 to 64 characters of a-z, A-Z, 0-9, - and _"
        )));
    }
    let agent = PromotedAgent {
        name: agent_name,
        symbol,
        timeframe: timeframe.to_string(),
        max_position_usd: body.max_position_usd,
        equity_fraction,
    };
    let by = body.by.clone().unwrap_or_else(|| "operator".into());
    // The configured agents' names; the library adds the earlier promotions' under its lock.
    let mut reserved = crate::agents::configured_agent_names(config);
    reserved.push(orrery_actors::agents::risk::RISK_AGENT.to_string());
    let record = library.record_promotion_with_agent(
        name,
        &body.venue,
        &by,
        Some(agent.clone()),
        &reserved,
    )?;
    tracing::info!(
        strategy = %record.name,
        venue = %body.venue,
        venue_kind = kind,
        agent = %agent.name,
        symbol = %agent.symbol,
        timeframe = %agent.timeframe,
        by = %by,
        "strategy promoted"
    );
    Ok(PromotionReport {
        message: format!(
            "strategy {} promoted to {} ({kind}); strategy agent `{}` ({} {}) starts at the next engine start",
            record.name, body.venue, agent.name, agent.symbol, agent.timeframe
        ),
        strategy: record.name,
        venue: body.venue,
        venue_kind: kind.to_string(),
        agent,
        starts: "next_engine_start".into(),
    })
}

/// Adds a strategy agent (`[[agents.strategy]]`) for every promotion recorded in the
/// library, running the promoted spec: called by the engine at start, after the config was
/// validated and before the tree is planned. A promotion whose agent is no longer valid (its
/// venue was removed from the config, its name is now a configured agent's, its spec no
/// longer validates) is skipped with an error line; the engine starts without it. Nothing
/// is added for the CLI's one-shot engines (`agents.skip_promoted`).
pub fn add_promoted_agents(
    config: &mut Config,
    store: &Store,
    clock: &orrery_actors::clock::SharedClock,
) {
    if config.agents.skip_promoted {
        return;
    }
    let library = match StrategyLibrary::open(store, clock.clone()) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the strategy library; no promoted strategy agent starts");
            return;
        }
    };
    let promoted = match library.list(Some(StrategyStatus::Promoted)) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the strategy library; no promoted strategy agent starts");
            return;
        }
    };
    // Oldest promotion first, so a name's first holder keeps it.
    for record in promoted.iter().rev() {
        for p in &record.promotions {
            let Some(agent) = &p.agent else { continue };
            match promoted_agent(config, record, &p.venue, agent) {
                Ok(a) => {
                    tracing::info!(
                        agent = %a.name,
                        strategy = %record.name,
                        venue = %a.venue,
                        symbol = %a.symbol,
                        timeframe = %a.timeframe,
                        "promoted strategy agent added"
                    );
                    config.agents.strategy.push(a);
                }
                Err(why) => tracing::error!(
                    agent = %agent.name,
                    strategy = %record.name,
                    venue = %p.venue,
                    error = %why,
                    "promoted strategy agent not started"
                ),
            }
        }
    }
}

fn promoted_agent(
    config: &Config,
    record: &StrategyRecord,
    venue: &str,
    agent: &PromotedAgent,
) -> Result<orrery_actors::agents::strategy::StrategyAgentConfig, String> {
    use orrery_actors::agents::strategy::StrategyAgentConfig;
    if !config.exchanges.venues.contains_key(venue) {
        return Err(format!(
            "venue `{venue}` is no longer under [exchanges.venues]"
        ));
    }
    let spec = match record.spec() {
        Some(Ok(spec)) => spec,
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("the attempt has no spec".into()),
    };
    if crate::agents::configured_agent_names(config).contains(&agent.name)
        || agent.name == orrery_actors::agents::risk::RISK_AGENT
    {
        return Err(format!(
            "the agent name `{}` is taken by another agent",
            agent.name
        ));
    }
    let mut a: StrategyAgentConfig = serde_json::from_value(serde_json::json!({
        "name": agent.name,
        "venue": venue,
        "symbol": crate::symbols::normalize(config, venue, &agent.symbol),
        "timeframe": agent.timeframe,
        "strategy": format!("library:{}", record.name),
        "max_position_usd": agent.max_position_usd,
        "equity_fraction": agent.equity_fraction,
    }))
    .map_err(|e| e.to_string())?;
    a.spec = Some(Box::new(spec));
    let mut issues = orrery_actors::validate::Issues::default();
    a.validate("promoted agent", &mut issues);
    if issues.is_empty() {
        Ok(a)
    } else {
        Err(format!("{issues:?}"))
    }
}

/// Body of `POST /api/research/run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResearchRunBody {
    /// A file path (as the engine sees it) or an `http(s)://` URL.
    pub source: String,
    /// Overrides `[research] model`.
    #[serde(default)]
    pub model: Option<String>,
    /// Overrides `[research] data`.
    #[serde(default)]
    pub data: Option<Vec<PathBuf>>,
}

/// The pipeline of `config` with the body's overrides.
fn pipeline(
    config: &Config,
    models: ModelClient,
    store: &Store,
    body: &ResearchRunBody,
) -> Result<Rbi, CliError> {
    let mut settings = config.research.clone();
    if let Some(m) = &body.model {
        if !config.models.models.contains_key(m) {
            return Err(CliError::new(
                "unknown_model",
                format!("no model `{m}` under [models]: {}", config.model_names()),
            ));
        }
        settings.model = m.clone();
    }
    if let Some(d) = &body.data {
        settings.data = d.clone();
    }
    let library = StrategyLibrary::open(store, system_clock())
        .map_err(|e| CliError::new("store", e.to_string()))?;
    Rbi::new(settings, models, library).map_err(|e| rbi_error(&e))
}

fn rbi_error(e: &RbiError) -> CliError {
    let code = match e {
        RbiError::Research(_) => "research_unreadable",
        RbiError::NoData => "no_data",
        RbiError::Library(_) => "store",
        RbiError::Client(_) => "failed",
    };
    CliError::new(code, e.to_string())
}

fn cli_status(e: &CliError) -> StatusCode {
    match e.code.as_str() {
        "research_unreadable" => StatusCode::UNPROCESSABLE_ENTITY,
        "no_data" | "unknown_model" => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Registers the strategy library and research routes on the control API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/strategies", web::get().to(list_route))
        .route("/api/strategies/{name}", web::get().to(show_route))
        .route(
            "/api/strategies/{name}/promote",
            web::post().to(promote_route),
        )
        .route("/api/research/run", web::post().to(research_route));
}

fn library_of(engine: &EngineHandle) -> Result<StrategyLibrary, LibraryError> {
    StrategyLibrary::open(&engine.store, system_clock())
}

fn library_response(e: &LibraryError) -> HttpResponse {
    let (status, code) = library_status(e);
    ApiError::new(code, e.to_string()).response(status)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
}

fn parse_status(s: &str) -> Result<StrategyStatus, String> {
    match s {
        "candidate" => Ok(StrategyStatus::Candidate),
        "promoted" => Ok(StrategyStatus::Promoted),
        "rejected" => Ok(StrategyStatus::Rejected),
        other => Err(format!(
            "status `{other}` is not one of candidate, promoted, rejected"
        )),
    }
}

fn list(library: &StrategyLibrary, status: Option<&str>) -> Result<StrategiesReport, CliError> {
    let status = status
        .map(parse_status)
        .transpose()
        .map_err(|m| CliError::new("bad_status", m))?;
    let records = library
        .list(status)
        .map_err(|e| CliError::new(library_status(&e).1, e.to_string()))?;
    Ok(StrategiesReport {
        strategies: records.iter().map(StrategySummary::of).collect(),
    })
}

async fn list_route(engine: web::Data<EngineHandle>, q: web::Query<ListQuery>) -> HttpResponse {
    let library = match library_of(&engine) {
        Ok(l) => l,
        Err(e) => return library_response(&e),
    };
    match list(&library, q.status.as_deref()) {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => ApiError::new(&e.code, e.message).response(StatusCode::BAD_REQUEST),
    }
}

async fn show_route(engine: web::Data<EngineHandle>, name: web::Path<String>) -> HttpResponse {
    let library = match library_of(&engine) {
        Ok(l) => l,
        Err(e) => return library_response(&e),
    };
    let name = name.into_inner();
    match library.get(&name) {
        Ok(Some(r)) => HttpResponse::Ok().json(crate::json::to_json_value(&r)),
        Ok(None) => {
            let e = LibraryError::NotFound(name);
            ApiError::new("unknown_strategy", e.to_string()).response(StatusCode::NOT_FOUND)
        }
        Err(e) => library_response(&e),
    }
}

/// Promotes `name` through the running `engine` and starts its strategy agent at once:
/// [`promote`], then the agent is added to the running tree
/// (`crate::strategy_agents::start_runtime`). If the agent cannot start now, the promotion
/// stands (it is recorded) and the agent starts at the next engine start; the answer and
/// an error line say why.
pub async fn promote_running(
    engine: &EngineHandle,
    name: &str,
    body: PromoteBody,
) -> Result<PromotionReport, PromoteError> {
    let library = library_of(engine)?;
    let mut report = promote(&engine.config, &library, name, body)?;
    if engine.config.agents.skip_promoted {
        return Ok(report);
    }
    let started = match library.get(&report.strategy)? {
        Some(record) => {
            match promoted_agent(&engine.config, &record, &report.venue, &report.agent) {
                Ok(agent) => crate::strategy_agents::start_runtime(&engine.tree_deps, agent)
                    .await
                    .map_err(|e| e.to_string()),
                Err(why) => Err(why),
            }
        }
        None => Err("the library lost the record".into()),
    };
    match started {
        Ok(path) => {
            tracing::info!(
                agent = %report.agent.name,
                strategy = %report.strategy,
                venue = %report.venue,
                path = %path,
                "promoted strategy agent started"
            );
            report.starts = "now".into();
            report.message = format!(
                "strategy {} promoted to {} ({}); strategy agent `{}` ({} {}) started ({path})",
                report.strategy,
                report.venue,
                report.venue_kind,
                report.agent.name,
                report.agent.symbol,
                report.agent.timeframe
            );
        }
        Err(why) => {
            tracing::error!(
                agent = %report.agent.name,
                strategy = %report.strategy,
                error = %why,
                "promoted strategy agent not started now; it starts at the next engine start"
            );
            report.message = format!("{}; it could not start now: {why}", report.message);
        }
    }
    Ok(report)
}

async fn promote_route(
    engine: web::Data<EngineHandle>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let body: PromoteBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                "bad_json",
                format!("the body is {{\"venue\", \"symbol\", \"timeframe\", \"max_position_usd\", \"live\"?, \"equity_fraction\"?, \"agent\"?}}: {e}"),
            )
            .response(StatusCode::BAD_REQUEST)
        }
    };
    match promote_running(&engine, &name.into_inner(), body).await {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => {
            let (status, code) = e.status();
            ApiError::new(code, e.to_string()).response(status)
        }
    }
}

async fn research_route(engine: web::Data<EngineHandle>, body: web::Bytes) -> HttpResponse {
    if let Some(refused) = crate::resources::refuse_if_shedding(
        &engine.shedding,
        orrery_actors::shedding::LowPriorityWork::ApiResearch,
    ) {
        return refused;
    }
    let body: ResearchRunBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                "bad_json",
                format!("the body is {{\"source\", \"model\"?, \"data\"?: [paths]}}: {e}"),
            )
            .response(StatusCode::BAD_REQUEST)
        }
    };
    let models = ModelClient::from_slot(engine.router.clone());
    let rbi = match pipeline(&engine.config, models, &engine.store, &body) {
        Ok(r) => r,
        Err(e) => return ApiError::new(&e.code, e.message.clone()).response(cli_status(&e)),
    };
    match rbi.attempt(&Source::parse(&body.source)).await {
        Ok(report) => HttpResponse::Ok().json(crate::json::to_json_value(&report)),
        Err(e) => {
            let e = rbi_error(&e);
            ApiError::new(&e.code, e.message.clone()).response(cli_status(&e))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The CLI side.

/// `orrery strategies list|show|promote`.
#[derive(Debug, Args)]
pub struct StrategiesArgs {
    #[arg(long, env = "ORRERY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: StrategiesAction,
}

#[derive(Debug, Subcommand)]
pub enum StrategiesAction {
    /// Every attempt in the library, newest first.
    List {
        /// Only `candidate`, `promoted` or `rejected` attempts.
        #[arg(long)]
        status: Option<String>,
    },
    /// One attempt: its spec, provenance (source, model, prompts), results and history.
    Show { name: String },
    /// Promote an attempt: its strategy agent runs from the next engine start. A paper
    /// venue by default; a live venue only with --live.
    Promote {
        name: String,
        /// A venue under [exchanges.venues].
        #[arg(long, default_value = "paper")]
        venue: String,
        /// Confirm a venue that is not paper: the agent trades real money there.
        #[arg(long)]
        live: bool,
        /// The symbol the agent trades (BTC).
        #[arg(long)]
        symbol: String,
        /// The bar width it is fed (1m, 5m, 1h, 1d, ...).
        #[arg(long)]
        timeframe: String,
        /// Largest position in USD its orders may build.
        #[arg(long)]
        max_position_usd: Decimal,
        /// Share of the account's equity the spec's sizing reads as all of it (default 0.1).
        #[arg(long)]
        equity_fraction: Option<Decimal>,
        /// The agent's name (default <strategy>-<venue>).
        #[arg(long)]
        agent: Option<String>,
    },
}

/// `orrery research run`.
#[derive(Debug, Args)]
pub struct ResearchArgs {
    #[arg(long, env = "ORRERY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: ResearchAction,
}

#[derive(Debug, Subcommand)]
pub enum ResearchAction {
    /// One research -> backtest attempt: the model writes a spec from the research, it is
    /// validated (and repaired), backtested, judged and stored in the strategy library.
    Run {
        /// A research file (Markdown, text, HTML) or an http(s):// URL.
        #[arg(long)]
        source: String,
        /// A logical model under [models] (default: [research] model).
        #[arg(long)]
        model: Option<String>,
        /// OHLCV CSV files to backtest on, comma-separated (default: [research] data).
        #[arg(long, value_delimiter = ',')]
        data: Option<Vec<PathBuf>>,
    },
}

fn runtime() -> Result<actix::SystemRunner, CliError> {
    Ok(actix::System::new())
}

fn print_error(what: &str, e: &CliError, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({"error": {"code": e.code, "message": e.message}})
        );
    }
    eprintln!("orrery: {what} failed: {}", e.message);
    ExitCode::from(1)
}

/// Opens the library of a stopped engine; `None` while an engine holds the data dir.
fn local_library(config: &Config, create: bool) -> Result<Option<StrategyLibrary>, CliError> {
    let store = if !config.engine.data_dir.exists() && !create {
        Some(Store::temporary().map_err(|e| CliError::new("store", e.to_string()))?)
    } else {
        crate::operate::open_store(config).map_err(|e| CliError::new("store", e))?
    };
    store
        .map(|s| {
            StrategyLibrary::open(&s, system_clock())
                .map_err(|e| CliError::new("store", e.to_string()))
        })
        .transpose()
}

fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

enum Done {
    List(StrategiesReport),
    Show(Box<StrategyRecord>),
    Promote(PromotionReport),
}

/// Runs `orrery strategies ...`; exit 0 on success, 1 on a failure.
pub fn command(config: Config, args: StrategiesArgs) -> ExitCode {
    // A promotion's log line is part of its record; listings print only their table.
    crate::logging::init(if matches!(args.action, StrategiesAction::Promote { .. }) {
        "info"
    } else {
        "warn"
    });
    let json = args.json;
    let what = match &args.action {
        StrategiesAction::List { .. } => "strategies list",
        StrategiesAction::Show { .. } => "strategies show",
        StrategiesAction::Promote { .. } => "strategies promote",
    };
    let system = match runtime() {
        Ok(s) => s,
        Err(e) => return print_error(what, &e, json),
    };
    match system.block_on(strategies(&config, args.action)) {
        Ok(done) => {
            print_done(&done, json);
            ExitCode::SUCCESS
        }
        Err(e) => print_error(what, &e, json),
    }
}

fn promote_body_of(action: &StrategiesAction) -> Option<(String, PromoteBody)> {
    match action {
        StrategiesAction::Promote {
            name,
            venue,
            live,
            symbol,
            timeframe,
            max_position_usd,
            equity_fraction,
            agent,
        } => Some((
            name.clone(),
            PromoteBody {
                venue: venue.clone(),
                live: *live,
                symbol: symbol.clone(),
                timeframe: timeframe.clone(),
                max_position_usd: *max_position_usd,
                equity_fraction: *equity_fraction,
                agent: agent.clone(),
                by: Some("operator".into()),
            },
        )),
        _ => None,
    }
}

async fn strategies(config: &Config, action: StrategiesAction) -> Result<Done, CliError> {
    let promotion = promote_body_of(&action);
    let within = Duration::from_secs(30);
    match local_library(config, promotion.is_some())? {
        Some(library) => {
            if let Some((name, body)) = promotion {
                return promote(config, &library, &name, body)
                    .map(Done::Promote)
                    .map_err(|e| CliError::new(e.status().1, e.to_string()));
            }
            match action {
                StrategiesAction::List { status } => {
                    Ok(Done::List(list(&library, status.as_deref())?))
                }
                StrategiesAction::Show { name } => match library.get(&name) {
                    Ok(Some(r)) => Ok(Done::Show(Box::new(r))),
                    Ok(None) => Err(CliError::new(
                        "unknown_strategy",
                        LibraryError::NotFound(name).to_string(),
                    )),
                    Err(e) => Err(CliError::new(library_status(&e).1, e.to_string())),
                },
                StrategiesAction::Promote { .. } => Err(CliError::new(
                    "failed",
                    "promotion body missing (an invariant of promote_body_of)",
                )),
            }
        }
        None => {
            if let Some((name, body)) = promotion {
                let path = format!("/api/strategies/{}/promote", encode(&name));
                return Ok(Done::Promote(
                    crate::operate::call_api_within(
                        config,
                        reqwest::Method::POST,
                        &path,
                        Some(&body),
                        within,
                    )
                    .await?,
                ));
            }
            let path = match &action {
                StrategiesAction::List { status: Some(s) } => {
                    format!("/api/strategies?status={}", encode(s))
                }
                StrategiesAction::Show { name } => format!("/api/strategies/{}", encode(name)),
                _ => "/api/strategies".into(),
            };
            let get = |path: String| async move {
                crate::operate::call_api_within::<(), serde_json::Value>(
                    config,
                    reqwest::Method::GET,
                    &path,
                    None,
                    within,
                )
                .await
            };
            let value = get(path).await?;
            let parse = |e: serde_json::Error| {
                CliError::new(
                    "failed",
                    format!("the engine's answer is not readable: {e}"),
                )
            };
            match action {
                StrategiesAction::Show { .. } => Ok(Done::Show(Box::new(
                    serde_json::from_value(value).map_err(parse)?,
                ))),
                _ => Ok(Done::List(serde_json::from_value(value).map_err(parse)?)),
            }
        }
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The `orrery strategies list` table.
pub fn render_list(r: &StrategiesReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    if r.strategies.is_empty() {
        let _ = writeln!(
            o,
            "the strategy library is empty; `orrery research run --source FILE` adds an attempt"
        );
        return o;
    }
    let _ = writeln!(
        o,
        "{:<28} {:<10} {:<16} {:>6} {:>9} {:>7} {:>8} {:>6} {:>9}  SOURCE",
        "NAME", "STATUS", "CREATED", "ROUNDS", "RETURN%", "SHARPE", "MAXDD%", "TRADES", "OOS RET%"
    );
    for s in &r.strategies {
        let _ = writeln!(
            o,
            "{:<28} {:<10} {:<16} {:>6} {:>9} {:>7} {:>8} {:>6} {:>9}  {}",
            s.name,
            s.status.as_str(),
            when(s.created_ms),
            s.rounds,
            pct(s.return_pct),
            pct(s.sharpe_ratio),
            pct(s.max_drawdown_pct),
            s.num_trades.map_or_else(|| "-".into(), |n| n.to_string()),
            pct(s.oos_return_pct),
            s.source
        );
    }
    o
}

/// `orrery strategies show`: the record for people.
pub fn render_record(r: &StrategyRecord) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "strategy {} (id {}, version {})",
        r.name, r.id, r.version
    );
    let _ = writeln!(o, "status:   {}", r.status);
    for reason in &r.reasons {
        let _ = writeln!(o, "  - {reason}");
    }
    let source = match &r.source {
        ResearchSource::File(p) => format!("file {p}"),
        ResearchSource::Url(u) => format!("url {u}"),
        ResearchSource::Inline => "inline text".into(),
    };
    let _ = writeln!(o, "created:  {}", when(r.created_ms));
    let _ = writeln!(
        o,
        "source:   {source} ({} characters, sha256 {})",
        r.research.chars, r.research.sha256
    );
    if let Some(m) = &r.model {
        let _ = writeln!(
            o,
            "model:    {} (provider {}, deployment {})",
            m.model,
            m.provider,
            m.deployment.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(o, "rounds:   {}", r.validation_rounds.len());
    for v in &r.validation_rounds {
        if v.problems.is_empty() {
            let _ = writeln!(o, "  round {}: valid", v.round);
        } else {
            let _ = writeln!(o, "  round {}: {} problem(s)", v.round, v.problems.len());
            for p in &v.problems {
                let _ = writeln!(o, "    {p}");
            }
        }
    }
    for b in &r.backtests {
        let s = &b.summary;
        let _ = writeln!(
            o,
            "backtest {}: in-sample return {} % (buy & hold {} %), Sharpe {}, max drawdown {} %, {} trades",
            b.dataset,
            pct(s.return_pct),
            pct(s.buy_hold_return_pct),
            pct(s.sharpe_ratio),
            pct(s.max_drawdown_pct),
            s.num_trades
        );
        if let Some(oos) = &b.out_of_sample {
            let _ = writeln!(
                o,
                "  out-of-sample: return {} % (buy & hold {} %), Sharpe {}, max drawdown {} %, {} trades",
                pct(oos.return_pct),
                pct(oos.buy_hold_return_pct),
                pct(oos.sharpe_ratio),
                pct(oos.max_drawdown_pct),
                oos.num_trades
            );
        }
    }
    for p in &r.promotions {
        let agent = p.agent.as_ref().map_or_else(String::new, |a| {
            format!(
                ": agent {} on {} {} (max {} USD)",
                a.name, a.symbol, a.timeframe, a.max_position_usd
            )
        });
        let _ = writeln!(
            o,
            "promoted to {} by {} at {}{agent}",
            p.venue,
            p.by,
            when(p.time_ms)
        );
    }
    if let Some(spec) = &r.spec {
        let _ = writeln!(o, "spec:");
        let _ = writeln!(
            o,
            "{}",
            serde_json::to_string_pretty(spec).unwrap_or_else(|_| spec.to_string())
        );
    }
    let _ = writeln!(
        o,
        "({} model exchange(s) recorded; --json shows every prompt and answer)",
        r.exchanges.len()
    );
    o
}

fn print_done(done: &Done, json: bool) {
    match done {
        Done::List(r) if json => println!("{}", crate::json::to_pretty(r)),
        Done::Show(r) if json => println!("{}", crate::json::to_pretty(r)),
        Done::Promote(r) if json => println!("{}", crate::json::to_pretty(r)),
        Done::List(r) => print!("{}", render_list(r)),
        Done::Show(r) => print!("{}", render_record(r)),
        Done::Promote(r) => println!("{}", r.message),
    }
}

/// Runs `orrery research run`; exit 0 when the attempt was stored (whatever its verdict),
/// 1 when none could be made.
pub fn research(mut config: Config, args: ResearchArgs) -> ExitCode {
    crate::logging::init("info");
    let json = args.json;
    let ResearchAction::Run {
        source,
        model,
        data,
    } = args.action;
    // Paths as this shell sees them: the engine may run elsewhere.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let source = match Source::parse(&source) {
        Source::File(p) => absolute(p).display().to_string(),
        _ => source,
    };
    let body = ResearchRunBody {
        source,
        model,
        data: data
            .map(|d| d.into_iter().map(absolute).collect())
            .or_else(|| Some(config.research.data.iter().cloned().map(absolute).collect())),
    };
    let system = match runtime() {
        Ok(s) => s,
        Err(e) => return print_error("research run", &e, json),
    };
    let settings = &config.research;
    let within = settings.model_timeout * (settings.fix_rounds + 1)
        + settings.fetch.timeout
        + Duration::from_secs(120);
    let result: Result<RbiReport, CliError> = system.block_on(async move {
        match crate::operate::open_store(&config).map_err(|e| CliError::new("store", e))? {
            Some(store) => {
                // The engine is stopped: boot its models only (no agents, no HTTP).
                drop(store);
                let a = &mut config.agents;
                a.trading.clear();
                a.pipeline.clear();
                a.sentiment.clear();
                a.open_interest.clear();
                a.liquidations.clear();
                a.copy.clear();
                a.funding.clear();
                a.rbi.clear();
                a.strategy.clear();
                a.skip_promoted = true;
                a.risk.enabled = false;
                config.telemetry.disabled = true;
                let engine = Engine::start(config)
                    .await
                    .map_err(|e| CliError::new("failed", e.to_string()))?;
                let models = ModelClient::from_slot(engine.router.clone());
                let answer = match pipeline(&engine.config, models, &engine.store, &body) {
                    Ok(rbi) => rbi
                        .attempt(&Source::parse(&body.source))
                        .await
                        .map_err(|e| rbi_error(&e)),
                    Err(e) => Err(e),
                };
                engine.shutdown().await;
                answer
            }
            None => {
                crate::operate::call_api_within(
                    &config,
                    reqwest::Method::POST,
                    "/api/research/run",
                    Some(&body),
                    within,
                )
                .await
            }
        }
    });
    match result {
        Ok(r) if json => {
            println!("{}", crate::json::to_pretty(&r));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "strategy {}: {} ({}), {} fix round(s)",
                r.record.name,
                r.verdict.as_str(),
                r.record.status,
                r.fix_rounds
            );
            print!("{}", render_record(&r.record));
            ExitCode::SUCCESS
        }
        Err(e) => print_error("research run", &e, json),
    }
}
