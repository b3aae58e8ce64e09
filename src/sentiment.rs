//! `orrery sentiment [--agent NAME] [--headlines N] [--json]` and the control API's
//! `GET /api/sentiment?agent=&headlines=`: each sentiment agent's index per symbol (as of
//! now, decayed), its last signal, its sources' poll state and its last scored headlines.
//!
//! Owns: the query, the CLI's choice between the running engine (asked over its control
//! API: sled lets one process hold the data dir) and a stopped one (the agents' trees are
//! read in this process), and the text rendering. Never: polls, scores or publishes (the
//! agent does; see `orrery_actors::agents::sentiment`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::Args;
use orrery_actors::agents::sentiment::report::{report, SentimentReport};
use orrery_actors::clock::{Clock, Millis, SystemClock};
use orrery_actors::store::Store;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::history::rfc3339;
use crate::operate::{call_api, error_response, open_store, CliError};

/// Headlines per agent when the query does not say.
pub const DEFAULT_HEADLINES: usize = 10;
/// Most headlines per agent a query may ask for.
pub const MAX_HEADLINES: usize = 1000;

/// Query of `GET /api/sentiment`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentQuery {
    /// One agent; every sentiment agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headlines: Option<usize>,
}

/// What `orrery sentiment --json` prints and `GET /api/sentiment` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentimentAnswer {
    /// `true`: read by the running engine; `false`: from a stopped engine's data dir.
    pub engine_running: bool,
    /// When the indexes were decayed to, Unix ms.
    pub time_ms: Millis,
    pub agents: Vec<SentimentReport>,
}

/// The answer for `query` from `store`, or why the query is wrong (the message names the
/// parameter).
pub fn answer(
    config: &Config,
    store: &Store,
    query: &SentimentQuery,
    engine_running: bool,
) -> Result<SentimentAnswer, CliError> {
    let headlines = query.headlines.unwrap_or(DEFAULT_HEADLINES);
    if headlines > MAX_HEADLINES {
        return Err(CliError::new(
            "bad_request",
            format!("headlines {headlines} is out of range; 0 to {MAX_HEADLINES}"),
        ));
    }
    let agents: Vec<_> = config
        .agents
        .sentiment
        .iter()
        .filter(|a| query.agent.as_ref().is_none_or(|n| *n == a.name))
        .collect();
    if let Some(name) = &query.agent {
        if agents.is_empty() {
            let known: Vec<&str> = config
                .agents
                .sentiment
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            return Err(CliError::new(
                "unknown_agent",
                format!(
                    "unknown sentiment agent `{name}`; sentiment agents: {}",
                    if known.is_empty() {
                        "none configured".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let now = SystemClock.now_ms();
    let mut out = Vec::new();
    for a in agents {
        out.push(
            report(store, a, now, headlines)
                .map_err(|e| CliError::new("store_failed", e.to_string()))?,
        );
    }
    Ok(SentimentAnswer {
        engine_running,
        time_ms: now,
        agents: out,
    })
}

/// Registers `GET /api/sentiment` on the control API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/sentiment").route(web::get().to(route)));
}

async fn route(engine: web::Data<EngineHandle>, query: web::Query<SentimentQuery>) -> HttpResponse {
    match answer(&engine.config, &engine.store, &query, true) {
        Ok(a) => HttpResponse::Ok().json(a),
        Err(e) => {
            let status = match e.code.as_str() {
                "bad_request" => StatusCode::BAD_REQUEST,
                "unknown_agent" => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error_response(status, &e.code, e.message)
        }
    }
}

/// `orrery sentiment`.
#[derive(Debug, Args)]
pub struct SentimentArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only this sentiment agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Last scored headlines shown per agent (0 to 1000; default 10).
    #[arg(long)]
    pub headlines: Option<usize>,
    /// Print the report as JSON (the same as `GET /api/sentiment`).
    #[arg(long)]
    pub json: bool,
}

/// Runs `orrery sentiment`: exit 0, 1 on a failure, 2 on a bad query.
pub fn command(config: Config, args: SentimentArgs) -> ExitCode {
    let query = SentimentQuery {
        agent: args.agent,
        headlines: args.headlines,
    };
    match fetch(&config, &query) {
        Ok(a) => {
            if args.json {
                match serde_json::to_string_pretty(&a) {
                    Ok(t) => println!("{t}"),
                    Err(e) => {
                        eprintln!("orrery: cannot print JSON: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print!("{}", render(&a));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            e.print(args.json, "sentiment");
            ExitCode::from(if e.code == "bad_request" || e.code == "unknown_agent" {
                2
            } else {
                1
            })
        }
    }
}

/// From the running engine, else from the data dir.
fn fetch(config: &Config, query: &SentimentQuery) -> Result<SentimentAnswer, CliError> {
    if !config.engine.data_dir.exists() {
        return Err(CliError::from(format!(
            "no data dir at {}; the engine has not run with this config yet",
            config.engine.data_dir.display()
        )));
    }
    match open_store(config)? {
        Some(store) => answer(config, &store, query, false),
        None => {
            let mut path = "/api/sentiment".to_string();
            let mut sep = '?';
            if let Some(a) = &query.agent {
                let _ = write!(path, "{sep}agent={}", encode(a));
                sep = '&';
            }
            if let Some(h) = query.headlines {
                let _ = write!(path, "{sep}headlines={h}");
            }
            actix::System::new().block_on(call_api::<(), SentimentAnswer>(
                config,
                reqwest::Method::GET,
                &path,
                None,
            ))
        }
    }
}

/// Agent names are `a-z A-Z 0-9 - _` (validated), so only an invalid name needs escaping.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The report as text.
pub fn render(a: &SentimentAnswer) -> String {
    let mut o = String::new();
    if a.agents.is_empty() {
        let _ = writeln!(o, "no sentiment agents configured ([[agents.sentiment]])");
        return o;
    }
    for r in &a.agents {
        let _ = writeln!(o, "{} (as of {})", r.agent, rfc3339(a.time_ms));
        let _ = writeln!(
            o,
            "  {:<8} {:>7}  {:<24}  last signal",
            "symbol", "index", "updated"
        );
        for s in &r.symbols {
            let index = s.index.map_or("-".to_string(), |v| format!("{v:+.3}"));
            let updated = s.updated_ms.map_or("-".to_string(), rfc3339);
            let signal = s.last_signal.as_ref().map_or("-".to_string(), |l| {
                format!("{} at {:+.3}, {}", l.direction, l.index, rfc3339(l.time_ms))
            });
            let _ = writeln!(o, "  {:<8} {index:>7}  {updated:<24}  {signal}", s.symbol);
        }
        let _ = writeln!(o, "  sources:");
        for s in &r.sources {
            let last = s.last_poll_ms.map_or("never".to_string(), rfc3339);
            let _ = writeln!(
                o,
                "    {} ({}) {}: polled {last}, {} items, {} not modified, {} errors{}",
                s.name,
                s.kind,
                s.url,
                s.items,
                s.not_modified,
                s.errors,
                s.last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; last error: {e}"))
            );
        }
        if r.headlines.is_empty() {
            let _ = writeln!(o, "  no headlines scored yet");
        } else {
            let _ = writeln!(o, "  last headlines:");
            for h in &r.headlines {
                let scores: Vec<String> = h
                    .scores
                    .iter()
                    .map(|(s, v)| format!("{s} {v:+.2}"))
                    .collect();
                let _ = writeln!(
                    o,
                    "    {}  [{}] {}  ({}{})",
                    rfc3339(h.time_ms),
                    h.source,
                    h.title,
                    scores.join(", "),
                    if h.cached { ", cached" } else { "" }
                );
            }
        }
    }
    o
}
