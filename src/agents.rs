//! `orrery agents` and the control API's agent routes: list the agents (name, kind, state,
//! schedule, last run, runs and failures, last error), pause, resume and run-now.
//!
//! Routes: `GET /api/agents` ([`AgentsReport`]), `POST /api/agents/{name}/pause` and
//! `POST /api/agents/{name}/resume` (body optional: `{"reason": "..."}`; the answer is the
//! agent's [`AgentInfo`] afterwards), `POST /api/agents/{name}/run-now` (200
//! `{"agent","status":"started"}`; 409 `agent_busy` while a run is in progress, 409
//! `agent_paused` while it is paused). An unknown name is 404 `unknown_agent` naming the
//! known ones.
//!
//! Owns: the agent directory of an engine built from the config ([`directory`]: the risk
//! agent if enabled, then the trading agents, then the sentiment, open-interest,
//! liquidation, copy-trading and funding agents, in config order), the request bodies, the
//! CLI's choice between the running engine (asked over its control API, since sled lets
//! one process hold the data dir) and a stopped one (list, pause and resume work on the
//! data dir; run-now says the engine is not running and exits 1), and the table. Never:
//! runs an agent itself; the runtime (`orrery_actors::agents::runtime`) does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::{Args, Subcommand};
use orrery_actors::agents::risk::{self, RISK_AGENT};
use orrery_actors::agents::runtime::{
    AgentDirectory, AgentError, AgentInfo, Kind, RunNowAnswer, Schedule, RISK_PAUSED_WARNING,
};
use orrery_actors::agents::MemoryStore;
use orrery_actors::clock::{system_clock, Millis, SharedClock};
use orrery_actors::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::http::ApiError;
use crate::json::to_json_value;
use crate::operate::CliError;

/// The agents of `config` on `store`: the risk agent (if enabled), then every trading
/// agent in config order. `live`: the directory of the engine that runs them; else of a
/// stopped engine (answers from the data dir).
pub fn directory(
    config: &Config,
    store: &Store,
    clock: SharedClock,
    live: bool,
) -> Result<AgentDirectory, StoreError> {
    let mut dir = AgentDirectory::new(live, clock);
    if config.agents.risk.enabled {
        let schedule = risk::schedule(
            &config.risk,
            config.exchanges.venues.len(),
            config.agents.risk.jitter,
            config.agents.risk.run_timeout,
        );
        dir = dir.with(
            RISK_AGENT,
            Kind::Risk,
            schedule,
            MemoryStore::open(store, RISK_AGENT)?,
        );
    }
    for (name, kind, schedule) in scheduled_agents(config) {
        dir = dir.with(name, kind, schedule, MemoryStore::open(store, name)?);
    }
    Ok(dir)
}

/// The names agents of every kind but `kind` hold, the risk agent's included: what a
/// `[[agents.<kind>]]` entry's name must differ from (its own kind's duplicates are found
/// as the entries are checked).
pub(crate) fn names_of_other_kinds(
    config: &Config,
    kind: Kind,
) -> std::collections::BTreeSet<String> {
    let mut taken: std::collections::BTreeSet<String> = scheduled_agents(config)
        .into_iter()
        .filter(|(_, k, _)| *k != kind)
        .map(|(name, _, _)| name.to_string())
        .collect();
    taken.insert(RISK_AGENT.to_string());
    taken
}

/// Every configured agent but the risk agent, in config order by kind: its name, kind and
/// schedule (one list, so a new kind is registered once).
pub(crate) fn scheduled_agents(config: &Config) -> Vec<(&str, Kind, Schedule)> {
    let a = &config.agents;
    let mut all: Vec<(&str, Kind, Schedule)> = Vec::new();
    all.extend(
        a.trading
            .iter()
            .map(|x| (x.name.as_str(), Kind::Trading, x.schedule())),
    );
    all.extend(
        a.pipeline
            .iter()
            .map(|x| (x.name.as_str(), Kind::Pipeline, x.schedule())),
    );
    all.extend(
        a.sentiment
            .iter()
            .map(|x| (x.name.as_str(), Kind::Sentiment, x.schedule())),
    );
    all.extend(
        a.open_interest
            .iter()
            .map(|x| (x.name.as_str(), Kind::OpenInterest, x.schedule())),
    );
    all.extend(
        a.liquidations
            .iter()
            .map(|x| (x.name.as_str(), Kind::Liquidations, x.schedule())),
    );
    all.extend(
        a.copy
            .iter()
            .map(|x| (x.name.as_str(), Kind::Copy, x.schedule())),
    );
    all.extend(
        a.funding
            .iter()
            .map(|x| (x.name.as_str(), Kind::Funding, x.schedule())),
    );
    all.extend(
        a.strategy
            .iter()
            .map(|x| (x.name.as_str(), Kind::Strategy, x.schedule())),
    );
    all.extend(
        a.rbi
            .iter()
            .map(|x| (x.name.as_str(), Kind::Rbi, x.schedule())),
    );
    all
}

/// The names of every configured agent but the risk agent, in config order.
pub fn configured_agent_names(config: &Config) -> Vec<String> {
    scheduled_agents(config)
        .into_iter()
        .map(|(name, _, _)| name.to_string())
        .collect()
}

/// `orrery agents --json` and `GET /api/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentsReport {
    /// `true`: as the running engine's runners report them; `false`: from the data dir.
    pub engine_running: bool,
    pub agents: Vec<AgentInfo>,
}

/// Body of `POST /api/agents/{name}/pause|resume`; the whole body is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer of `POST /api/agents/{name}/run-now` when a run started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunNowReport {
    pub agent: String,
    #[serde(flatten)]
    pub answer: RunNowAnswer,
}

/// The status and code of an agent request's error.
pub fn agent_error_status(e: &AgentError) -> (StatusCode, &'static str) {
    match e {
        AgentError::Unknown { .. } => (StatusCode::NOT_FOUND, "unknown_agent"),
        AgentError::Exists(_) => (StatusCode::CONFLICT, "agent_exists"),
        AgentError::NotRunning => (StatusCode::SERVICE_UNAVAILABLE, "engine_not_running"),
        AgentError::Unreachable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable"),
        AgentError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
    }
}

fn agent_error_response(e: &AgentError) -> HttpResponse {
    let (status, code) = agent_error_status(e);
    ApiError::new(code, e.to_string()).response(status)
}

/// What a run-now answer that started nothing means, as the API's error: (code, message).
fn not_started(name: &str, answer: &RunNowAnswer) -> Option<(&'static str, String)> {
    let now = chrono::Utc::now().timestamp_millis();
    match answer {
        RunNowAnswer::Started => None,
        RunNowAnswer::Busy { since_ms } => Some((
            "agent_busy",
            format!(
                "agent `{name}` is running (started {} ago); run-now starts no second run",
                age(now, *since_ms)
            ),
        )),
        RunNowAnswer::Paused { reason, since_ms } => Some((
            "agent_paused",
            format!(
                "agent `{name}` is paused (since {} ago: {reason}); resume it first",
                age(now, *since_ms)
            ),
        )),
        RunNowAnswer::Shed { reason } => {
            Some((SHEDDING, format!("agent `{name}` did not run: {reason}")))
        }
        RunNowAnswer::NotOwner { owner } => Some((
            "not_owner",
            format!("agent `{name}` runs on node {owner}, which holds its lease; ask that node"),
        )),
    }
}

/// The error code of work refused while the engine sheds load (answered 503).
pub const SHEDDING: &str = "shedding";

/// Registers the agent routes on the control API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/agents", web::get().to(list_route))
        .route("/api/agents/{name}/pause", web::post().to(pause_route))
        .route("/api/agents/{name}/resume", web::post().to(resume_route))
        .route("/api/agents/{name}/run-now", web::post().to(run_now_route));
}

async fn list_route(engine: web::Data<EngineHandle>) -> HttpResponse {
    match engine.agents.describe_all().await {
        Ok(agents) => HttpResponse::Ok().json(to_json_value(&AgentsReport {
            engine_running: true,
            agents,
        })),
        Err(e) => agent_error_response(&e),
    }
}

/// The optional `{"reason"}` body: empty is fine, anything else must be that JSON; the
/// error is the API's 400 message.
fn control_body(body: &[u8]) -> Result<ControlBody, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ControlBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("the body is optional; when given it is {{\"reason\": \"...\"}}: {e}"))
}

async fn set_paused_route(
    engine: web::Data<EngineHandle>,
    name: String,
    body: web::Bytes,
    paused: bool,
) -> HttpResponse {
    let body = match control_body(&body) {
        Ok(b) => b,
        Err(message) => {
            return ApiError::new("bad_json", message).response(StatusCode::BAD_REQUEST)
        }
    };
    let reason = body
        .reason
        .unwrap_or_else(|| default_reason(paused, "the control API"));
    if let Err(e) = engine.agents.set_paused(&name, paused, &reason).await {
        return agent_error_response(&e);
    }
    match engine.agents.describe(&name).await {
        Ok(info) => HttpResponse::Ok().json(to_json_value(&info)),
        Err(e) => agent_error_response(&e),
    }
}

async fn pause_route(
    engine: web::Data<EngineHandle>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    set_paused_route(engine, name.into_inner(), body, true).await
}

async fn resume_route(
    engine: web::Data<EngineHandle>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    set_paused_route(engine, name.into_inner(), body, false).await
}

async fn run_now_route(engine: web::Data<EngineHandle>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match engine.agents.run_now(&name).await {
        Ok(answer) => match not_started(&name, &answer) {
            None => HttpResponse::Ok().json(RunNowReport {
                agent: name,
                answer,
            }),
            // Shedding is the engine's own temporary state: 503, retry later.
            Some((SHEDDING, message)) => {
                ApiError::new(SHEDDING, message).response(StatusCode::SERVICE_UNAVAILABLE)
            }
            Some((code, message)) => ApiError::new(code, message).response(StatusCode::CONFLICT),
        },
        Err(e) => agent_error_response(&e),
    }
}

fn default_reason(paused: bool, via: &str) -> String {
    format!(
        "{} through {via}",
        if paused { "paused" } else { "resumed" }
    )
}

// ---------------------------------------------------------------------------------------
// The CLI side.

/// `orrery agents [--json]`, `orrery agents pause|resume|run-now NAME`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[arg(long, env = "ORRERY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<AgentsAction>,
}

#[derive(Debug, Subcommand)]
pub enum AgentsAction {
    /// Pause an agent: its scheduled runs are skipped (no model call, no order) until it is
    /// resumed, across restarts. Pausing `risk` leaves loss/gain limits unwatched.
    Pause {
        /// The agent's name, as `orrery agents` lists it.
        name: String,
        /// Why; recorded with the pause and shown by `orrery agents`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused agent from its next scheduled run.
    Resume {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Start a run at once (the engine must be running); refused while a run is in
    /// progress or the agent is paused.
    RunNow { name: String },
}

impl From<AgentError> for CliError {
    fn from(e: AgentError) -> Self {
        Self::new(agent_error_status(&e).1, e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        Self::new("store", e.to_string())
    }
}

/// What one agents command printed.
enum Done {
    List(AgentsReport),
    Info(AgentInfo),
    RunNow(RunNowReport),
}

/// Runs `orrery agents ...`; exit 0 on success, 1 on a failure (unknown agent, engine
/// not running for run-now, agent busy or paused for run-now).
pub fn run(config: Config, args: AgentsArgs) -> ExitCode {
    crate::logging::init("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orrery: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = args.json;
    let what = match &args.action {
        None => "agents",
        Some(AgentsAction::Pause { .. }) => "agents pause",
        Some(AgentsAction::Resume { .. }) => "agents resume",
        Some(AgentsAction::RunNow { .. }) => "agents run-now",
    };
    match runtime.block_on(execute(&config, args.action)) {
        Ok(done) => {
            print_done(&config, &done, json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": e.code, "message": e.message}})
                );
            }
            eprintln!("orrery: {what} failed: {}", e.message);
            ExitCode::from(1)
        }
    }
}

async fn execute(config: &Config, action: Option<AgentsAction>) -> Result<Done, CliError> {
    // A data dir that does not exist yet has no agent state; listing it creates nothing.
    let store = if !config.engine.data_dir.exists() && action.is_none() {
        Some(Store::temporary()?)
    } else {
        crate::operate::open_store(config).map_err(|e| CliError::new("store", e))?
    };
    match store {
        Some(store) => {
            let dir = directory(config, &store, system_clock(), false)?;
            match action {
                None => Ok(Done::List(AgentsReport {
                    engine_running: false,
                    agents: dir.describe_all().await?,
                })),
                Some(AgentsAction::Pause { name, reason }) => {
                    let reason = reason.unwrap_or_else(|| default_reason(true, "the CLI"));
                    dir.set_paused(&name, true, &reason).await?;
                    Ok(Done::Info(dir.describe(&name).await?))
                }
                Some(AgentsAction::Resume { name, reason }) => {
                    let reason = reason.unwrap_or_else(|| default_reason(false, "the CLI"));
                    dir.set_paused(&name, false, &reason).await?;
                    Ok(Done::Info(dir.describe(&name).await?))
                }
                Some(AgentsAction::RunNow { name }) => {
                    // An unknown name is reported as such before "not running".
                    dir.get(&name)?;
                    Err(AgentError::NotRunning.into())
                }
            }
        }
        None => match action {
            None => Ok(Done::List(
                call(config, reqwest::Method::GET, "/api/agents", None).await?,
            )),
            Some(AgentsAction::Pause { name, reason }) => {
                let body = ControlBody {
                    reason: Some(reason.unwrap_or_else(|| default_reason(true, "the CLI"))),
                };
                let path = format!("/api/agents/{}/pause", encode(&name));
                Ok(Done::Info(
                    call(config, reqwest::Method::POST, &path, Some(&body)).await?,
                ))
            }
            Some(AgentsAction::Resume { name, reason }) => {
                let body = ControlBody {
                    reason: Some(reason.unwrap_or_else(|| default_reason(false, "the CLI"))),
                };
                let path = format!("/api/agents/{}/resume", encode(&name));
                Ok(Done::Info(
                    call(config, reqwest::Method::POST, &path, Some(&body)).await?,
                ))
            }
            Some(AgentsAction::RunNow { name }) => {
                let path = format!("/api/agents/{}/run-now", encode(&name));
                Ok(Done::RunNow(
                    call(config, reqwest::Method::POST, &path, None).await?,
                ))
            }
        },
    }
}

/// `name` as one URL path segment.
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

/// Calls the running engine's control API (with the token of the call's scope, if
/// configured) and reads its answer or its error envelope.
async fn call<T: serde::de::DeserializeOwned>(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<&ControlBody>,
) -> Result<T, CliError> {
    crate::operate::call_api_within(config, method, path, body, Duration::from_secs(30)).await
}

fn print_done(config: &Config, done: &Done, json: bool) {
    let now = chrono::Utc::now().timestamp_millis();
    match done {
        Done::List(r) if json => println!("{}", crate::json::to_pretty(r)),
        Done::Info(i) if json => println!("{}", crate::json::to_pretty(i)),
        Done::RunNow(r) if json => println!("{}", crate::json::to_pretty(r)),
        Done::List(r) => {
            if r.engine_running {
                println!("agents of the engine on {}:", config.telemetry.listen);
            } else {
                println!(
                    "the engine is not running; agents as recorded in {}:",
                    config.engine.data_dir.display()
                );
            }
            print!("{}", render(&r.agents, now));
        }
        Done::Info(i) => {
            if i.paused {
                println!(
                    "agent {} paused: {}",
                    i.name,
                    i.pause_reason.as_deref().unwrap_or("-")
                );
            } else {
                println!("agent {} resumed ({})", i.name, i.state.as_str());
            }
            if let Some(w) = &i.warning {
                println!("WARNING: {w}");
            }
        }
        Done::RunNow(r) => println!("agent {}: run started", r.agent),
    }
}

/// `when` as an age from `now` ("3s", "2m 5s").
fn age(now: Millis, when: Millis) -> String {
    let secs = ((now - when).max(0) / 1000) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The `orrery agents` table; below it a paused agent's reason, the risk agent's warning and
/// what an agent says about how it runs (its `warning`).
pub fn render(agents: &[AgentInfo], now: Millis) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    if agents.is_empty() {
        let _ = writeln!(o, "  no agents configured");
        return o;
    }
    let _ = writeln!(
        o,
        "{:<16} {:<13} {:<11} {:<9} {:<12} {:<16} LAST ERROR",
        "NAME", "KIND", "STATE", "INTERVAL", "LAST RUN", "RUNS/FAILURES"
    );
    for a in agents {
        let last_run = a
            .last_run_ms
            .map(|t| format!("{} ago", age(now, t)))
            .unwrap_or_else(|| "never".into());
        let mut error: String = a.last_error.clone().unwrap_or_else(|| "-".into());
        if error.chars().count() > 72 {
            error = error.chars().take(71).collect::<String>() + "…";
        }
        let _ = writeln!(
            o,
            "{:<16} {:<13} {:<11} {:<9} {:<12} {:<16} {}",
            a.name,
            a.kind.as_str(),
            a.state.as_str(),
            humantime::format_duration(a.schedule.interval).to_string(),
            last_run,
            format!("{}/{}", a.runs, a.failures),
            error
        );
    }
    for a in agents.iter().filter(|a| a.paused) {
        let _ = writeln!(
            o,
            "{} paused {} ago: {}",
            a.name,
            age(now, a.paused_since_ms.unwrap_or(now)),
            a.pause_reason.as_deref().unwrap_or("-")
        );
    }
    if agents
        .iter()
        .any(|a| a.warning.as_deref() == Some(RISK_PAUSED_WARNING))
    {
        let _ = writeln!(o, "WARNING: {RISK_PAUSED_WARNING}");
    }
    // What an agent says about how it runs (an open-interest agent without a stream).
    for a in agents {
        if let Some(w) = a.warning.as_deref().filter(|w| *w != RISK_PAUSED_WARNING) {
            let _ = writeln!(o, "{}: {w}", a.name);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_risk_agent_is_flagged_below_the_table() {
        let store = Store::temporary().unwrap();
        let config = Config::load_str(
            include_str!("../config/default.toml"),
            "config/default.toml",
            std::iter::empty(),
        )
        .unwrap();
        let dir = directory(&config, &store, system_clock(), false).unwrap();
        assert_eq!(dir.names(), vec!["risk", "trend"]);
        dir.set_paused_direct("risk", true, "maintenance").unwrap();
        let agents = futures::executor::block_on(dir.describe_all()).unwrap();
        let text = render(&agents, chrono::Utc::now().timestamp_millis());
        assert!(text.contains("risk paused"), "{text}");
        assert!(text.contains("maintenance"), "{text}");
        assert!(
            text.contains(&format!("WARNING: {RISK_PAUSED_WARNING}")),
            "{text}"
        );
        let trend = text.lines().find(|l| l.starts_with("trend")).unwrap();
        assert!(trend.contains("stopped"), "{trend}");
    }

    #[test]
    fn an_agents_own_warning_is_shown_as_its_own_not_as_the_risk_warning() {
        let store = Store::temporary().unwrap();
        let config = Config::load_str(
            include_str!("../config/default.toml"),
            "config/default.toml",
            std::iter::empty(),
        )
        .unwrap();
        let dir = directory(&config, &store, system_clock(), false).unwrap();
        let mut agents = futures::executor::block_on(dir.describe_all()).unwrap();
        let mut oi = agents[1].clone();
        oi.name = "oi".into();
        oi.kind = Kind::OpenInterest;
        oi.warning = Some("venue `paper` has no stream configured".into());
        agents.push(oi);
        let text = render(&agents, chrono::Utc::now().timestamp_millis());
        assert!(!text.contains("WARNING"), "{text}");
        assert!(
            text.contains("oi: venue `paper` has no stream configured"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("oi               open_interest ")),
            "{text}"
        );
    }
}
