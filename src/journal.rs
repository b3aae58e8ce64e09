//! `orrery journal` and `orrery journal show ID`: the decision journal as a table, JSON or
//! CSV, filtered by agent, symbol and time; and the same as `GET /api/journal` and
//! `GET /api/journal/{id}` while the engine runs (the CLI asks the running engine's control
//! API, because sled lets one process hold the data dir; a stopped engine's data dir is
//! read directly).
//!
//! Owns: the row and detail shapes, the query (`since` as `orrery trades` takes it), and
//! the renderings. A decision's orders are settled at read time from the ledger
//! ([`orrery_actors::agents::journal::LedgerView`]): status and realized PnL (the PnL its
//! fills realized at average cost, less their fees; known once the order is final and its
//! fills are recorded).
//! Never: writes to the store.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::{Args, Subcommand};
use orrery_actors::agents::journal::{
    prompt_sha256, DecisionHeader, DecisionJournal, DecisionRecord, JournalFilter, LedgerView,
    OrderOutcome, VoteTally,
};
use orrery_actors::clock::Millis;
use orrery_actors::store::Store;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::history::{parse_since, rfc3339, write_csv, Format};
use crate::operate::{call_api, error_response, open_store, CliError};

/// Largest `limit` a listing takes.
pub const MAX_LIMIT: usize = 1_000_000;

/// Query of `GET /api/journal` and the filters of `orrery journal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// RFC 3339 date or time, or a duration back from now (`2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Most rows, newest first (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl JournalQuery {
    /// The checked filter; a bad `since` or `limit` is an error naming it.
    pub fn filter(&self, now_ms: Millis) -> Result<JournalFilter, String> {
        let since_ms = match &self.since {
            Some(s) => Some(parse_since(s, now_ms)?),
            None => None,
        };
        let limit = self
            .limit
            .unwrap_or(orrery_actors::agents::journal::DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(format!(
                "limit {limit} is out of range; give 1 to {MAX_LIMIT}"
            ));
        }
        Ok(JournalFilter {
            agent: self.agent.clone(),
            symbol: self.symbol.as_ref().map(|s| s.trim().to_string()),
            since_ms,
            limit,
        })
    }

    fn query_string(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("agent", self.agent.clone()),
            ("symbol", self.symbol.clone()),
            ("since", self.since.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
        ] {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        let q = q.finish();
        if q.is_empty() {
            q
        } else {
            format!("?{q}")
        }
    }
}

/// One decision in a listing (the same fields as JSON and as CSV columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRow {
    pub id: String,
    pub time: String,
    pub agent: String,
    pub venue: String,
    pub symbol: String,
    pub mode: String,
    /// The final verdict (`BUY`, `SELL`, `NOTHING`, `CLOSE_ALL`, `HOLD`), `-` if none.
    pub verdict: String,
    pub confidence: Option<f64>,
    /// How the models asked voted: `BUY 2 SELL 0 NOTHING 1 failed 1 of 4`.
    pub votes: String,
    pub outcome: String,
    /// Client ids of the orders placed, space-separated.
    pub orders: String,
    /// Their ledger statuses, space-separated (`-` when no order was placed).
    pub order_status: String,
    /// Realized PnL of the decision's orders (USD, fees included) once all are final.
    pub pnl_usd: Option<Decimal>,
    /// Whether the decision can be replayed (a model was asked).
    pub replayable: bool,
}

impl JournalRow {
    fn new(h: &DecisionHeader, outcomes: &[OrderOutcome]) -> Self {
        Self {
            id: h.id.clone(),
            time: rfc3339(h.time_ms),
            agent: h.agent.clone(),
            venue: h.venue.clone(),
            symbol: h.symbol.clone(),
            mode: mode_label(h.mode).into(),
            verdict: h.action.clone().unwrap_or_else(|| "-".into()),
            confidence: h.confidence,
            votes: h.votes.summary(),
            outcome: h.outcome.clone(),
            orders: h.orders.join(" "),
            order_status: order_status(outcomes),
            pnl_usd: total_pnl(outcomes),
            replayable: h.replayable,
        }
    }
}

fn mode_label(m: orrery_actors::agents::DecisionMode) -> &'static str {
    match m {
        orrery_actors::agents::DecisionMode::Single => "single",
        orrery_actors::agents::DecisionMode::Swarm => "swarm",
        orrery_actors::agents::DecisionMode::Pipeline => "pipeline",
    }
}

fn order_status(outcomes: &[OrderOutcome]) -> String {
    if outcomes.is_empty() {
        return "-".into();
    }
    outcomes
        .iter()
        .map(|o| {
            o.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "not_in_ledger".into())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sum of the orders' realized PnL once every one is known; `None` while any is not
/// (or when no order was placed).
pub fn total_pnl(outcomes: &[OrderOutcome]) -> Option<Decimal> {
    if outcomes.is_empty() {
        return None;
    }
    outcomes
        .iter()
        .map(|o| o.realized_pnl_usd)
        .sum::<Option<Decimal>>()
        .map(|d| d.normalize())
}

/// Everything journaled about one decision, with its orders settled from the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalDetail {
    #[serde(flatten)]
    pub record: DecisionRecord,
    pub time: String,
    /// Whether `prompt_sha256` matches the recorded prompt bytes (replay refuses it if not).
    pub prompt_hash_ok: bool,
    pub votes: VoteTally,
    pub order_outcomes: Vec<OrderOutcome>,
    /// Realized PnL of the orders (USD, fees included) once all are final.
    pub pnl_usd: Option<Decimal>,
}

impl JournalDetail {
    pub fn new(record: DecisionRecord, ledger: &LedgerView) -> Result<Self, String> {
        let outcomes = record
            .orders
            .iter()
            .map(|o| ledger.outcome(o.client_id.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            time: rfc3339(record.time_ms),
            // A pipeline run's prompt bytes are its stages'.
            prompt_hash_ok: match &record.pipeline {
                Some(trace) => trace
                    .stages
                    .iter()
                    .filter(|s| !s.prompt.is_empty())
                    .all(|s| prompt_sha256(&s.system, &s.prompt) == s.prompt_sha256),
                None => prompt_sha256(&record.system, &record.prompt) == record.prompt_sha256,
            },
            votes: VoteTally::of(&record.members),
            pnl_usd: total_pnl(&outcomes),
            order_outcomes: outcomes,
            record,
        })
    }
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The rows of a listing, read from `store`.
pub fn list(store: &Store, query: &JournalQuery) -> Result<Vec<JournalRow>, CliError> {
    let filter = query.filter(now_ms()).map_err(bad_request)?;
    let journal = DecisionJournal::open(store).map_err(failed)?;
    let headers = journal.list(&filter).map_err(failed)?;
    let ledger = LedgerView::load(store).map_err(failed)?;
    headers
        .iter()
        .map(|h| {
            let outcomes = h
                .orders
                .iter()
                .map(|id| ledger.outcome(id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(failed)?;
            Ok(JournalRow::new(h, &outcomes))
        })
        .collect()
}

/// One decision, read from `store`; `not_found` when there is none with `id`.
pub fn show(store: &Store, id: &str) -> Result<JournalDetail, CliError> {
    let journal = DecisionJournal::open(store).map_err(failed)?;
    let record = journal.get(id.trim()).map_err(failed)?.ok_or_else(|| CliError {
        code: "not_found".into(),
        message: format!(
            "no decision `{id}` in the journal; `orrery journal` lists their ids (retention may have removed it)"
        ),
    })?;
    let ledger = LedgerView::load(store).map_err(failed)?;
    JournalDetail::new(record, &ledger).map_err(|m| CliError {
        code: "failed".into(),
        message: m,
    })
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError {
        code: "failed".into(),
        message: e.to_string(),
    }
}

fn bad_request(message: String) -> CliError {
    CliError {
        code: "bad_request".into(),
        message,
    }
}

fn api_error(e: CliError) -> HttpResponse {
    let status = match e.code.as_str() {
        "bad_request" => StatusCode::BAD_REQUEST,
        "not_found" => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, &e.code, e.message)
}

/// Registers `GET /api/journal` and `GET /api/journal/{id}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/journal", web::get().to(list_route))
        .route("/api/journal/{id}", web::get().to(show_route));
}

async fn list_route(
    engine: web::Data<EngineHandle>,
    query: web::Query<JournalQuery>,
) -> HttpResponse {
    let store = engine.store.clone();
    let query = query.into_inner();
    // Reading thousands of headers and the fills is blocking work: off the server's thread.
    match web::block(move || list(&store, &query)).await {
        Ok(Ok(rows)) => HttpResponse::Ok().json(rows),
        Ok(Err(e)) => api_error(e),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()),
    }
}

async fn show_route(engine: web::Data<EngineHandle>, id: web::Path<String>) -> HttpResponse {
    let store = engine.store.clone();
    let id = id.into_inner();
    match web::block(move || show(&store, &id)).await {
        Ok(Ok(detail)) => HttpResponse::Ok().json(detail),
        Ok(Err(e)) => api_error(e),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()),
    }
}

/// Reads from the data dir, or from the running engine's API.
fn fetch<T: serde::de::DeserializeOwned>(
    config: &Config,
    path: &str,
    offline: impl FnOnce(&Store) -> Result<T, CliError>,
) -> Result<T, CliError> {
    if !config.engine.data_dir.exists() {
        return Err(failed(format!(
            "no data dir at {}; the engine has not run with this config yet",
            config.engine.data_dir.display()
        )));
    }
    match open_store(config).map_err(failed)? {
        Some(store) => offline(&store),
        None => actix::System::new().block_on(call_api::<(), T>(
            config,
            reqwest::Method::GET,
            path,
            None,
        )),
    }
}

/// `orrery journal` rows, from the data dir or the running engine.
pub fn list_cmd(config: &Config, query: &JournalQuery) -> Result<Vec<JournalRow>, CliError> {
    // Checked here too, so a bad value is refused before anything is opened or asked.
    query.filter(now_ms()).map_err(bad_request)?;
    fetch(
        config,
        &format!("/api/journal{}", query.query_string()),
        |s| list(s, query),
    )
}

/// `orrery journal show ID`, from the data dir or the running engine.
pub fn show_cmd(config: &Config, id: &str) -> Result<JournalDetail, CliError> {
    let path = format!(
        "/api/journal/{}",
        form_urlencoded::byte_serialize(id.trim().as_bytes()).collect::<String>()
    );
    fetch(config, &path, |s| show(s, id))
}

fn opt_f(v: Option<f64>) -> String {
    v.map(|c| format!("{c:.2}")).unwrap_or_else(|| "-".into())
}

fn opt_d(v: Option<Decimal>) -> String {
    v.map(|d| d.round_dp(4).to_string())
        .unwrap_or_else(|| "-".into())
}

/// The listing's table.
pub fn table(rows: &[JournalRow]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<20} {:<24} {:<10} {:<8} {:<6} {:<9} {:>5} {:<36} {:<24} {:<12} {:>10}",
        "id",
        "time",
        "agent",
        "symbol",
        "mode",
        "verdict",
        "conf",
        "votes",
        "outcome",
        "order",
        "pnl"
    );
    for r in rows {
        let _ = writeln!(
            o,
            "{:<20} {:<24} {:<10} {:<8} {:<6} {:<9} {:>5} {:<36} {:<24} {:<12} {:>10}",
            r.id,
            r.time,
            r.agent,
            r.symbol,
            r.mode,
            r.verdict,
            opt_f(r.confidence),
            r.votes,
            r.outcome,
            r.order_status,
            opt_d(r.pnl_usd)
        );
    }
    let _ = writeln!(o, "{} decision(s), newest first", rows.len());
    o
}

/// `orrery journal show`'s text: everything journaled.
pub fn render_detail(d: &JournalDetail) -> String {
    let r = &d.record;
    let mut o = String::new();
    let _ = writeln!(o, "decision {}", r.id);
    let _ = writeln!(
        o,
        "  time {}  agent {}  venue {}  symbol {}  mode {}",
        d.time,
        r.agent,
        r.venue,
        r.symbol,
        mode_label(r.mode)
    );
    let _ = writeln!(
        o,
        "  model {}{}{}",
        r.model,
        r.deployment
            .as_ref()
            .map(|x| format!("  deployment {x}"))
            .unwrap_or_default(),
        r.quorum
            .as_ref()
            .map(|q| format!("  quorum {q}"))
            .unwrap_or_default()
    );
    // A pipeline run's prompts are its stages' (below); it has none of its own.
    let single_prompt = r.pipeline.is_none();
    if single_prompt {
        let _ = writeln!(
            o,
            "  prompt sha256 {} ({})",
            if r.prompt_sha256.is_empty() {
                "-"
            } else {
                &r.prompt_sha256
            },
            if d.prompt_hash_ok {
                "matches the prompt bytes"
            } else {
                "DOES NOT MATCH the prompt bytes"
            }
        );
    }
    if let Some(c) = &r.context {
        let _ = writeln!(o, "  context {}", context_summary(c));
    }
    if single_prompt {
        let _ = writeln!(
            o,
            "\nsystem prompt ({} bytes):\n{}",
            r.system.len(),
            r.system
        );
        let _ = writeln!(o, "\nprompt ({} bytes):\n{}", r.prompt.len(), r.prompt);
    }
    if let Some(trace) = &r.pipeline {
        render_pipeline(&mut o, trace);
    } else {
        let _ = writeln!(o, "\nmembers ({}): {}", r.members.len(), d.votes.summary());
    }
    for m in &r.members {
        let _ = writeln!(
            o,
            "  - {} via {}: verdict {} confidence {} latency {} tokens {}+{} cost {}{}",
            m.member,
            m.deployment.as_deref().unwrap_or("-"),
            m.verdict.as_deref().unwrap_or("-"),
            opt_f(m.confidence),
            m.latency_ms
                .map(|l| format!("{l} ms"))
                .unwrap_or_else(|| "-".into()),
            m.prompt_tokens,
            m.completion_tokens,
            opt_d(m.cost_usd),
            m.abstention
                .map(|a| format!(
                    "  abstained: {}{}",
                    a.as_str(),
                    m.error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
        );
        if let Some(raw) = &m.raw_answer {
            let _ = writeln!(o, "    raw answer: {raw}");
        }
    }
    let _ = writeln!(
        o,
        "\nfinal: {} confidence {}{}",
        r.action.as_deref().unwrap_or("-"),
        opt_f(r.confidence),
        if r.confidence_defaulted {
            " (defaulted)"
        } else {
            ""
        }
    );
    if let Some(reason) = &r.reason {
        let _ = writeln!(o, "  reason: {reason}");
    }
    if let Some(review) = &r.review {
        let _ = writeln!(o, "  review: {review}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "  error: {e}");
    }
    let _ = writeln!(o, "  outcome: {}", r.outcome);
    let _ = writeln!(o, "\norders ({}):", d.order_outcomes.len());
    for x in &d.order_outcomes {
        let _ = writeln!(
            o,
            "  {} {} {} status {} filled {} avg {} fees {} realized PnL {}",
            x.client_id,
            x.symbol.as_deref().unwrap_or("-"),
            x.side.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            x.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "not_in_ledger".into()),
            x.filled_size,
            opt_d(x.avg_fill_price),
            x.fees_usd.round_dp(4),
            opt_d(x.realized_pnl_usd)
        );
    }
    let _ = writeln!(o, "  total realized PnL {}", opt_d(d.pnl_usd));
    o
}

fn context_summary(c: &orrery_actors::models::StructuredContext) -> String {
    use orrery_actors::models::StructuredContext;
    match c {
        StructuredContext::Market(m) => format!(
            "market {} {} {} price {} candles {} position {} account value {}",
            m.venue,
            m.symbol,
            m.timeframe,
            m.price,
            m.candles.len(),
            m.position
                .as_ref()
                .map(|p| p.size.normalize().to_string())
                .unwrap_or_else(|| "none".into()),
            m.account_value.round_dp(2)
        ),
        StructuredContext::Risk(r) => format!(
            "risk breach `{}` account value {} baseline {}",
            r.breach,
            r.account_value.round_dp(2),
            r.baseline_value.round_dp(2)
        ),
        StructuredContext::Pipeline(p) => format!(
            "pipeline {}",
            context_summary(&StructuredContext::Market(p.market.clone()))
        ),
        StructuredContext::Headlines(b) => format!("{} headlines to score", b.headlines.len()),
        StructuredContext::Research(r) => {
            format!("research text, {} characters", r.text.chars().count())
        }
    }
}

/// A pipeline run's stages, in order: outcome, time, model, the exact prompt bytes, the
/// raw answer and what the stage produced.
fn render_pipeline(o: &mut String, trace: &orrery_actors::agents::pipeline::PipelineTrace) {
    let _ = writeln!(
        o,
        "\npipeline stages ({}){}:",
        trace.stages.len(),
        trace
            .stopped_at
            .map(|s| format!(", stopped at {}", s.as_str()))
            .unwrap_or_default()
    );
    for st in &trace.stages {
        let _ = writeln!(
            o,
            "\n  [{}] {} in {} ms{}{}",
            st.stage.as_str(),
            st.outcome.as_str(),
            st.duration_ms,
            st.model
                .as_ref()
                .map(|m| format!(
                    "  model {m} via {}",
                    st.deployment.as_deref().unwrap_or("-")
                ))
                .unwrap_or_default(),
            if st.prompt_tokens + st.completion_tokens > 0 {
                format!("  tokens {}+{}", st.prompt_tokens, st.completion_tokens)
            } else {
                String::new()
            }
        );
        if let Some(e) = &st.error {
            let _ = writeln!(o, "    error: {e}");
        }
        if let Some(input) = &st.input {
            let _ = writeln!(o, "    input: {input}");
        }
        if !st.prompt.is_empty() {
            let _ = writeln!(
                o,
                "    prompt sha256 {} ({} the prompt bytes)",
                st.prompt_sha256,
                if prompt_sha256(&st.system, &st.prompt) == st.prompt_sha256 {
                    "matches"
                } else {
                    "DOES NOT MATCH"
                }
            );
            let _ = writeln!(
                o,
                "    system prompt ({} bytes):\n{}",
                st.system.len(),
                st.system
            );
            let _ = writeln!(o, "    prompt ({} bytes):\n{}", st.prompt.len(), st.prompt);
        }
        if let Some(raw) = &st.raw_answer {
            let _ = writeln!(o, "    raw answer: {raw}");
        }
        match (&st.output, st.stage) {
            // The collector's output is the market context, summarised above.
            (Some(_), orrery_actors::agents::pipeline::Stage::Collector) => {}
            (Some(out), _) => {
                let _ = writeln!(o, "    output: {out}");
            }
            (None, _) => {}
        }
    }
    if let Some(plan) = &trace.plan {
        let _ = writeln!(
            o,
            "\nplan: {}",
            serde_json::to_string(plan).unwrap_or_else(|e| format!("(unprintable: {e})"))
        );
    }
}

/// `orrery journal`.
#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    pub command: Option<JournalCommand>,
    #[arg(long, env = "ORRERY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Only this agent's decisions.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only decisions about this symbol (case-insensitive).
    #[arg(long)]
    pub symbol: Option<String>,
    /// Only decisions at or after this: a date (2026-01-31), an RFC 3339 time, or a
    /// duration back from now (2h, 90m).
    #[arg(long)]
    pub since: Option<String>,
    /// Most decisions listed, newest first (default 100).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the rows as a JSON array (the same as `GET /api/journal`).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV with a header line.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Everything journaled about one decision: prompt bytes and hash, context, each
    /// model's answer, the final decision, its orders with status and realized PnL.
    Show {
        id: String,
        /// Print it as JSON (the same as `GET /api/journal/{id}`).
        #[arg(long)]
        json: bool,
    },
}

/// Exit code of a bad argument (as `orrery trades`).
const EXIT_USAGE: u8 = 2;
const EXIT_FAILURE: u8 = 1;

fn exit_for(e: &CliError) -> ExitCode {
    ExitCode::from(if e.code == "bad_request" {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    })
}

/// Runs `orrery journal ...`.
pub fn run(config: Config, a: JournalArgs) -> ExitCode {
    crate::logging::init("warn");
    match a.command {
        Some(JournalCommand::Show { id, json }) => match show_cmd(&config, &id) {
            Ok(d) => {
                if json {
                    println!("{}", crate::json::to_pretty(&d));
                } else {
                    print!("{}", render_detail(&d));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                e.print(json, "journal show");
                exit_for(&e)
            }
        },
        None => {
            let query = JournalQuery {
                agent: a.agent,
                symbol: a.symbol,
                since: a.since,
                limit: a.limit,
            };
            let fmt = match (a.json, a.csv) {
                (true, _) => Format::Json,
                (_, true) => Format::Csv,
                _ => Format::Table,
            };
            let printed = list_cmd(&config, &query).and_then(|rows| match fmt {
                Format::Json => {
                    println!("{}", crate::json::to_pretty(&rows));
                    Ok(())
                }
                Format::Csv => write_csv(&rows, std::io::stdout().lock()).map_err(failed),
                Format::Table => {
                    print!("{}", table(&rows));
                    Ok(())
                }
            });
            match printed {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    e.print(fmt == Format::Json, "journal");
                    exit_for(&e)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: &str) -> JournalRow {
        JournalRow {
            id: "1767268800000-000001".into(),
            time: rfc3339(1_767_268_800_000),
            agent: "trend".into(),
            venue: "paper".into(),
            symbol: "BTC".into(),
            mode: "single".into(),
            verdict: "BUY".into(),
            confidence: Some(0.75),
            votes: "BUY 1 SELL 0 NOTHING 0 failed 0 of 1".into(),
            outcome: outcome.into(),
            orders: "a b".into(),
            order_status: "filled filled".into(),
            pnl_usd: Some(Decimal::new(-125, 2)),
            replayable: true,
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines_and_reads_back() {
        let tricky = "order: refused, \"max leverage\"\nsecond line";
        let rows = vec![row(tricky), row("hold")];
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("id,time,agent,venue,symbol,mode,verdict,confidence,votes,outcome,orders,order_status,pnl_usd,replayable\n"),
            "{text}"
        );
        assert!(
            text.contains("\"order: refused, \"\"max leverage\"\"\nsecond line\""),
            "{text}"
        );
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let back: Vec<JournalRow> = reader.deserialize().map(Result::unwrap).collect();
        assert_eq!(back, rows);
    }

    #[test]
    fn the_query_checks_since_and_limit() {
        let now = 1_767_268_800_000;
        let q = JournalQuery {
            since: Some("2h".into()),
            limit: Some(5),
            ..JournalQuery::default()
        };
        let f = q.filter(now).unwrap();
        assert_eq!((f.since_ms, f.limit), (Some(now - 7_200_000), 5));
        let bad = JournalQuery {
            since: Some("soon".into()),
            ..JournalQuery::default()
        };
        assert!(bad.filter(now).unwrap_err().contains("soon"));
        let zero = JournalQuery {
            limit: Some(0),
            ..JournalQuery::default()
        };
        assert!(zero.filter(now).unwrap_err().contains("limit 0"));
        assert_eq!(
            JournalQuery::default().filter(now).unwrap().limit,
            orrery_actors::agents::journal::DEFAULT_LIMIT
        );
    }

    #[test]
    fn the_pnl_of_a_decision_needs_every_order_known() {
        let known = |pnl: Option<Decimal>| OrderOutcome {
            client_id: "c".into(),
            venue: None,
            symbol: None,
            side: None,
            status: None,
            filled_size: Decimal::ZERO,
            avg_fill_price: None,
            fees_usd: Decimal::ZERO,
            gross_pnl_usd: Decimal::ZERO,
            realized_pnl_usd: pnl,
        };
        assert_eq!(total_pnl(&[]), None);
        assert_eq!(
            total_pnl(&[
                known(Some(Decimal::new(15, 1))),
                known(Some(Decimal::new(-5, 1)))
            ]),
            Some(Decimal::ONE)
        );
        assert_eq!(total_pnl(&[known(Some(Decimal::ONE)), known(None)]), None);
    }
}
