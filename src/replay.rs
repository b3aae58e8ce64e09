//! `orrery replay`: a journaled decision's exact prompt bytes (system + prompt, their
//! SHA-256 checked first) and its structured context sent again, to the model it was asked
//! or another one, and the recorded verdict set against the new one; one decision by id, or
//! a batch (an agent's decisions since a time) in parallel within the model's limits, with
//! the agreement table and the PnL comparison. `POST /api/replay` does one decision inside
//! the running engine; a stopped engine's data dir is read and its models started in this
//! process.
//!
//! Owns: the replay request and result, the agreement table and the counterfactual PnL.
//! Never: sends an order. That is structural: this module holds no gateway handle and
//! imports no gateway message; it is given a model router (the engine's, or one started
//! here from the config's `[models]` alone, without any venue) and the journal.
//!
//! # PnL of what was done vs what the new verdict would have done
//!
//! Only decisions that traded count: those with orders whose realized PnL is known (every
//! order final in the ledger; see [`orrery_actors::agents::journal::LedgerView`] for the
//! figure: the average-cost PnL the order's fills realized, less their fees). For each such
//! order, with `gross` its fills' realized PnL and `fees` their fees, at the same fills:
//!
//! - new verdict NOTHING (or HOLD, or none: an error) -> no trade: `0`;
//! - the order's side (BUY for a buy order, SELL for a sell order) -> the same trade:
//!   `gross - fees`;
//! - the other side -> the mirrored trade: `-gross - fees` (the fees are paid either way).
//!
//! "As done" is the sum of `gross - fees`; "with the new verdicts" the sum of the above.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::Args;
use futures::StreamExt;
use orrery_actors::agents::journal::{
    prompt_sha256, DecisionJournal, DecisionMode, DecisionRecord, LedgerView, OrderOutcome,
};
use orrery_actors::exchanges::Side;
use orrery_actors::models::decision::{parse_risk_verdict, parse_trade_decision_for};
use orrery_actors::models::pool::{HealthTable, ModelPool};
use orrery_actors::models::router::{pool_for, ModelRouter, PoolHandle, Swarm};
use orrery_actors::models::{ModelRequest, Purpose, RiskVerdict, StructuredContext, TradeAction};
use orrery_actors::store::Store;
use orrery_actors::supervisor::Slot;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Scope};
use crate::engine::EngineHandle;
use crate::history::rfc3339;
use crate::journal::{total_pnl, JournalQuery, JournalRow};
use crate::operate::{error_response, open_store};

/// Body of `POST /api/replay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The decision's id.
    pub id: String,
    /// A logical model or a deployment id; the model asked originally when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Longest wait for the answer, failover included (at most 10 minutes).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

/// A verdict with its confidence and reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub action: Option<String>,
    pub confidence: Option<f64>,
    pub reason: Option<String>,
}

impl Verdict {
    fn label(&self) -> &str {
        self.action.as_deref().unwrap_or("-")
    }
}

/// One decision replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayResult {
    pub id: String,
    pub time: String,
    pub agent: String,
    pub symbol: String,
    /// The model (or deployment) the prompt was sent to now.
    pub model: String,
    /// The deployment that answered now.
    pub deployment: Option<String>,
    pub recorded: Verdict,
    pub new: Verdict,
    /// Why there is no new verdict (the model failed or its answer was unreadable).
    pub error: Option<String>,
    pub raw_answer: Option<String>,
    pub latency_ms: Option<u64>,
    /// Both verdicts exist and are the same.
    pub agree: bool,
    /// The decision placed orders whose realized PnL is known.
    pub traded: bool,
    /// Realized PnL of what was done (USD, fees included), when it traded.
    pub pnl_done: Option<Decimal>,
    /// What the new verdict would have made at the same fills, when it traded.
    pub pnl_new: Option<Decimal>,
}

/// Why a decision cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no decision `{id}` in the journal; `orrery journal` lists their ids")]
    NotFound { id: String },
    #[error("decision {id}: the recorded prompt hash {recorded} does not match its prompt bytes (sha256 {actual}); the record was altered or damaged, so it is not replayed")]
    HashMismatch {
        id: String,
        recorded: String,
        actual: String,
    },
    #[error("decision {id} cannot be replayed: {why}")]
    NotReplayable { id: String, why: String },
    #[error("unknown model `{model}`; give a logical model ({models}) or a deployment id ({deployments})")]
    UnknownModel {
        model: String,
        models: String,
        deployments: String,
    },
    #[error("{0}")]
    Store(String),
    #[error("the model router did not answer: {0}")]
    Router(String),
}

impl ReplayError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ReplayError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ReplayError::HashMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "prompt_hash_mismatch")
            }
            ReplayError::NotReplayable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "not_replayable")
            }
            ReplayError::UnknownModel { .. } => (StatusCode::BAD_REQUEST, "unknown_model"),
            ReplayError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
            ReplayError::Router(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        }
    }
}

/// The model router replay asks: the engine's slot, or one started here. Only models.
#[derive(Clone)]
pub enum Router {
    Slot(Slot<ModelRouter>),
    Addr(actix::Addr<ModelRouter>),
}

impl Router {
    async fn ask(
        &self,
        msg: Swarm,
    ) -> Result<Vec<orrery_actors::models::router::SwarmReply>, String> {
        // The router answers within the swarm's deadline; the grace only covers a router
        // that stopped answering altogether.
        let within = msg.deadline + Duration::from_secs(2);
        let sent = async {
            match self {
                Router::Slot(s) => s.send(msg).await.map_err(|e| e.to_string()),
                Router::Addr(a) => a.send(msg).await.map_err(|e| e.to_string()),
            }
        };
        tokio::time::timeout(within, sent)
            .await
            .map_err(|_| format!("no answer within {within:?}"))?
    }
}

/// Whether `model` names a logical model or a deployment of `config`.
fn check_model(config: &Config, model: &str) -> Result<(), ReplayError> {
    let models = &config.models.models;
    let deployments: Vec<&str> = models
        .values()
        .flat_map(|m| m.deployments.iter().map(|d| d.id.as_str()))
        .collect();
    if models.contains_key(model) || deployments.contains(&model) {
        return Ok(());
    }
    Err(ReplayError::UnknownModel {
        model: model.to_string(),
        models: config.model_names(),
        deployments: deployments.join(", "),
    })
}

/// How many calls to `model` may run at once: the sum of its deployments'
/// `max_concurrent` (a deployment id: its own).
pub fn concurrency(config: &Config, model: &str) -> usize {
    let models = &config.models.models;
    let n = match models.get(model) {
        Some(m) => m.deployments.iter().map(|d| d.max_concurrent).sum(),
        None => models
            .values()
            .flat_map(|m| m.deployments.iter())
            .find(|d| d.id == model)
            .map(|d| d.max_concurrent)
            .unwrap_or(1),
    };
    n.max(1)
}

/// The model a decision is replayed against when none is named: the one it asked.
fn default_model(record: &DecisionRecord) -> Result<String, ReplayError> {
    match record.mode {
        DecisionMode::Single if !record.model.is_empty() => Ok(record.model.clone()),
        _ => Err(ReplayError::NotReplayable {
            id: record.id.clone(),
            why: format!(
                "it was a swarm decision (members {}); name the model to replay it against with --model",
                record.model
            ),
        }),
    }
}

fn side_of(action: Option<&str>) -> Option<Side> {
    match action {
        Some("BUY") => Some(Side::Buy),
        Some("SELL") => Some(Side::Sell),
        _ => None,
    }
}

/// What an order of `order_side` that realized `gross` and paid `fees` would have made
/// under a verdict for `new_side` (`None`: no trade), at the same fills; see the module docs.
pub fn counterfactual_pnl(
    order_side: Side,
    new_side: Option<Side>,
    gross: Decimal,
    fees: Decimal,
) -> Decimal {
    match new_side {
        None => Decimal::ZERO,
        Some(s) if s == order_side => gross - fees,
        Some(_) => -gross - fees,
    }
}

/// PnL as done and with `new_action`, over the decision's orders, when all are known.
fn pnl_pair(outcomes: &[OrderOutcome], new_action: Option<&str>) -> Option<(Decimal, Decimal)> {
    let done = total_pnl(outcomes)?;
    let new_side = side_of(new_action);
    let mut new = Decimal::ZERO;
    for o in outcomes {
        let side = o.side?;
        new += counterfactual_pnl(side, new_side, o.gross_pnl_usd, o.fees_usd);
    }
    Some((done, new.normalize()))
}

/// Replays one decision: reads it, checks its prompt hash, sends its prompt bytes and
/// context to `model` through `router`, reads the verdict, and compares.
pub async fn replay_one(
    store: &Store,
    config: &Config,
    router: &Router,
    request: &ReplayRequest,
) -> Result<ReplayResult, ReplayError> {
    let journal = DecisionJournal::open(store).map_err(|e| ReplayError::Store(e.to_string()))?;
    let id = request.id.trim();
    let record = journal
        .get(id)
        .map_err(|e| ReplayError::Store(e.to_string()))?
        .ok_or_else(|| ReplayError::NotFound { id: id.to_string() })?;
    if record.mode == DecisionMode::Pipeline {
        return Err(ReplayError::NotReplayable {
            id: id.to_string(),
            why: "it is a pipeline run: each stage's exact prompt and answer are shown by `orrery journal show ID`; replay resends single and swarm decisions only".to_string(),
        });
    }
    if record.prompt.is_empty() {
        return Err(ReplayError::NotReplayable {
            id: id.to_string(),
            why: format!(
                "no model was asked (outcome `{}`), so there is no prompt to send",
                record.outcome
            ),
        });
    }
    if matches!(record.context, Some(StructuredContext::Headlines(_))) {
        // Replay compares trade and risk verdicts; a headline-scoring request has none.
        return Err(ReplayError::NotReplayable {
            id: id.to_string(),
            why: "it is a sentiment agent's headline-scoring request, not a trade or risk decision; its prompt and answer are in `orrery journal show`".into(),
        });
    }
    let actual = prompt_sha256(&record.system, &record.prompt);
    if actual != record.prompt_sha256 {
        return Err(ReplayError::HashMismatch {
            id: id.to_string(),
            recorded: if record.prompt_sha256.is_empty() {
                "(none)".into()
            } else {
                record.prompt_sha256.clone()
            },
            actual,
        });
    }
    let model = match &request.model {
        Some(m) => m.trim().to_string(),
        None => default_model(&record)?,
    };
    check_model(config, &model)?;
    let risk = matches!(record.context, Some(StructuredContext::Risk(_)))
        || matches!(record.action.as_deref(), Some("CLOSE_ALL" | "HOLD"));
    let timeout = request.timeout.min(Duration::from_secs(600));
    let ask = ModelRequest {
        model: model.clone(),
        purpose: if risk {
            Purpose::RiskConfirmation
        } else {
            Purpose::TradeDecision
        },
        system: record.system.clone(),
        prompt: record.prompt.clone(),
        context: record.context.clone(),
        max_tokens: if risk { 200 } else { 300 },
        temperature: 0.0,
        timeout,
        // A replay asks anew: a cached answer would only repeat the past.
        cacheable: false,
    };
    // A one-member swarm: the router takes a logical model or a deployment id there.
    let replies = router
        .ask(Swarm {
            models: vec![model.clone()],
            request: ask,
            deadline: timeout,
        })
        .await
        .map_err(ReplayError::Router)?;
    let reply = replies.into_iter().next().map(|r| r.result);
    let mut result = ReplayResult {
        id: record.id.clone(),
        time: rfc3339(record.time_ms),
        agent: record.agent.clone(),
        symbol: record.symbol.clone(),
        model,
        deployment: None,
        recorded: Verdict {
            action: record.action.clone(),
            confidence: record.confidence,
            reason: record.reason.clone(),
        },
        new: Verdict::default(),
        error: None,
        raw_answer: None,
        latency_ms: None,
        agree: false,
        traded: false,
        pnl_done: None,
        pnl_new: None,
    };
    match reply {
        None => result.error = Some("the router gave no answer".into()),
        Some(Err(e)) => result.error = Some(format!("model: {e}")),
        Some(Ok(answer)) => {
            result.deployment = Some(answer.deployment.clone());
            result.latency_ms = Some(answer.latency.as_millis() as u64);
            result.raw_answer = Some(answer.text.clone());
            if risk {
                match parse_risk_verdict(&answer.text) {
                    Ok(v) => {
                        result.new = Verdict {
                            action: Some(
                                match v.verdict {
                                    RiskVerdict::CloseAll => "CLOSE_ALL",
                                    RiskVerdict::Hold => "HOLD",
                                }
                                .into(),
                            ),
                            confidence: None,
                            reason: Some(v.reason),
                        }
                    }
                    Err(e) => result.error = Some(format!("unreadable answer: {e}")),
                }
            } else {
                match parse_trade_decision_for(&answer.text, &record.symbol) {
                    Ok(p) => {
                        result.new = Verdict {
                            action: Some(
                                match p.decision.action {
                                    TradeAction::Buy => "BUY",
                                    TradeAction::Sell => "SELL",
                                    TradeAction::Nothing => "NOTHING",
                                }
                                .into(),
                            ),
                            confidence: Some(p.decision.confidence),
                            reason: Some(p.decision.reason),
                        }
                    }
                    Err(e) => result.error = Some(format!("unreadable answer: {e}")),
                }
            }
        }
    }
    result.agree = result.new.action.is_some() && result.new.action == result.recorded.action;
    if !record.orders.is_empty() {
        let ledger = LedgerView::load(store).map_err(|e| ReplayError::Store(e.to_string()))?;
        let outcomes = record
            .orders
            .iter()
            .map(|o| ledger.outcome(o.client_id.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ReplayError::Store(e.to_string()))?;
        if let Some((done, new)) = pnl_pair(&outcomes, result.new.action.as_deref()) {
            result.traded = true;
            result.pnl_done = Some(done);
            result.pnl_new = Some(new);
        }
    }
    Ok(result)
}

/// Registers `POST /api/replay`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/replay", web::post().to(replay_route));
}

async fn replay_route(
    engine: web::Data<EngineHandle>,
    body: web::Json<ReplayRequest>,
) -> HttpResponse {
    if let Some(refused) = crate::resources::refuse_if_shedding(
        &engine.shedding,
        orrery_actors::shedding::LowPriorityWork::ApiReplay,
    ) {
        return refused;
    }
    // Only the router and the store go to replay: never the gateway.
    let router = Router::Slot(engine.router.clone());
    match replay_one(&engine.store, &engine.config, &router, &body).await {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => {
            let (status, code) = e.status_and_code();
            error_response(status, code, e.to_string())
        }
    }
}

/// The models of `config` started in this process (pools and router, nothing else), for
/// a stopped engine's data dir.
fn start_models(config: &Config, store: &Store) -> Result<Router, String> {
    let health = HealthTable::new();
    let mut pools: BTreeMap<String, actix::Addr<ModelPool>> = BTreeMap::new();
    for d in config
        .models
        .models
        .values()
        .flat_map(|m| m.deployments.iter())
    {
        let pool = pool_for(d, &health, Some(store)).map_err(|e| e.to_string())?;
        pools.insert(d.id.clone(), pool.start());
    }
    let router = ModelRouter::from_config(
        &config.models,
        &config.model_cache,
        health,
        store.clone(),
        |d| match pools.get(&d.id) {
            Some(addr) => Arc::new(addr.clone()) as Arc<dyn PoolHandle>,
            // Every deployment got a pool above; an empty slot reads as a pool that is down.
            None => Arc::new(Slot::<ModelPool>::new()) as Arc<dyn PoolHandle>,
        },
    );
    Ok(Router::Addr(router.start()))
}

/// Where a replay runs: the running engine (over its control API) or this process.
enum Backend {
    Live {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
    },
    Local {
        store: Store,
        router: Router,
        config: Arc<Config>,
    },
}

impl Backend {
    async fn replay(&self, request: ReplayRequest) -> Result<ReplayResult, String> {
        match self {
            Backend::Local {
                store,
                router,
                config,
            } => replay_one(store, config, router, &request)
                .await
                .map_err(|e| e.to_string()),
            Backend::Live { client, url, token } => {
                let mut req = client.post(url).json(&request);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.map_err(|e| {
                    format!("the engine holds the data dir but {url} did not answer: {e}")
                })?;
                let status = resp.status();
                let text = resp.text().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(match serde_json::from_str::<crate::http::ApiError>(&text) {
                        Ok(e) => e.error.message,
                        Err(_) => format!("{status}: {text}"),
                    });
                }
                serde_json::from_str(&text)
                    .map_err(|e| format!("unreadable answer from {url}: {e}"))
            }
        }
    }
}

/// The agreement table and totals of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    pub model: String,
    pub concurrency: usize,
    /// Decisions selected for replay.
    pub selected: usize,
    /// Decisions the model gave a new verdict for.
    pub replayed: usize,
    pub agreed: usize,
    /// `agreed / replayed`, when anything was replayed.
    pub agreement_rate: Option<f64>,
    /// recorded verdict -> new verdict -> count (`-` for no recorded verdict).
    pub table: BTreeMap<String, BTreeMap<String, usize>>,
    /// Decisions without a new verdict, with why.
    pub errors: Vec<BatchError>,
    /// Decisions that traded (orders with known realized PnL) among those replayed.
    pub traded: usize,
    pub pnl_done: Decimal,
    pub pnl_new: Decimal,
    pub results: Vec<ReplayResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    pub id: String,
    pub error: String,
}

impl BatchReport {
    /// Folds the outcomes (in any order) into the report; results sorted newest first.
    pub fn collect(
        model: String,
        concurrency: usize,
        outcomes: Vec<(String, Result<ReplayResult, String>)>,
    ) -> Self {
        let mut r = BatchReport {
            model,
            concurrency,
            selected: outcomes.len(),
            ..BatchReport::default()
        };
        for (id, outcome) in outcomes {
            match outcome {
                Err(error) => r.errors.push(BatchError { id, error }),
                Ok(x) if x.new.action.is_none() => {
                    r.errors.push(BatchError {
                        id,
                        error: x.error.clone().unwrap_or_else(|| "no verdict".into()),
                    });
                    r.results.push(x);
                }
                Ok(x) => {
                    r.replayed += 1;
                    if x.agree {
                        r.agreed += 1;
                    }
                    *r.table
                        .entry(x.recorded.label().to_string())
                        .or_default()
                        .entry(x.new.label().to_string())
                        .or_default() += 1;
                    if let (true, Some(done), Some(new)) = (x.traded, x.pnl_done, x.pnl_new) {
                        r.traded += 1;
                        r.pnl_done += done;
                        r.pnl_new += new;
                    }
                    r.results.push(x);
                }
            }
        }
        r.agreement_rate = (r.replayed > 0).then(|| r.agreed as f64 / r.replayed as f64);
        r.pnl_done = r.pnl_done.normalize();
        r.pnl_new = r.pnl_new.normalize();
        r.errors.sort_by(|a, b| b.id.cmp(&a.id));
        r.results.sort_by(|a, b| b.id.cmp(&a.id));
        r
    }

    /// The report as text.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "replayed {} of {} decision(s) against {} (concurrency {})",
            self.replayed, self.selected, self.model, self.concurrency
        );
        let _ = writeln!(
            o,
            "agreement: {} of {} = {}",
            self.agreed,
            self.replayed,
            self.agreement_rate
                .map(|a| format!("{:.1}%", a * 100.0))
                .unwrap_or_else(|| "-".into())
        );
        let mut columns: Vec<&String> = self.table.values().flat_map(|m| m.keys()).collect();
        columns.sort();
        columns.dedup();
        let _ = write!(o, "\n{:<18}", "recorded \\ new");
        for c in &columns {
            let _ = write!(o, " {c:>9}");
        }
        let _ = writeln!(o);
        for (recorded, row) in &self.table {
            let _ = write!(o, "{recorded:<18}");
            for c in &columns {
                let _ = write!(o, " {:>9}", row.get(*c).copied().unwrap_or(0));
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "\nerrors: {}", self.errors.len());
        for e in &self.errors {
            let _ = writeln!(o, "  {}: {}", e.id, e.error);
        }
        let _ = writeln!(
            o,
            "\ndecisions that traded: {}; realized PnL as done {} USD, with the new verdicts at the same fills {} USD",
            self.traded,
            self.pnl_done.round_dp(4),
            self.pnl_new.round_dp(4)
        );
        o
    }
}

/// `orrery replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The decision to replay (`orrery journal` lists ids). Without it, a batch: give
    /// --agent and --since.
    pub id: Option<String>,
    /// A logical model or a deployment id; for one decision, the model it asked when absent.
    #[arg(long)]
    pub model: Option<String>,
    /// Batch: the agent whose decisions are replayed.
    #[arg(long, requires = "since", conflicts_with = "id")]
    pub agent: Option<String>,
    /// Batch: decisions at or after this (a date, an RFC 3339 time, or a duration back
    /// from now such as 24h).
    #[arg(long, conflicts_with = "id")]
    pub since: Option<String>,
    /// Batch: most decisions replayed, newest first (default 1000).
    #[arg(long, conflicts_with = "id")]
    pub limit: Option<usize>,
    /// Longest wait for each answer.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the result as JSON (no progress bar).
    #[arg(long)]
    pub json: bool,
}

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Runs `orrery replay ...`.
pub fn run(config: Config, a: ReplayArgs) -> ExitCode {
    crate::logging::init("warn");
    let fail = |json: bool, code: u8, message: String| {
        if json {
            println!("{}", serde_json::json!({"error": {"message": message}}));
        }
        eprintln!("orrery: replay failed: {message}");
        ExitCode::from(code)
    };
    if a.id.is_none() && (a.agent.is_none() || a.since.is_none()) {
        return fail(
            a.json,
            EXIT_USAGE,
            "give a decision id, or --agent A --since 24h --model M for a batch".into(),
        );
    }
    if a.id.is_none() && a.model.is_none() {
        return fail(
            a.json,
            EXIT_USAGE,
            "a batch needs --model (the model to replay the decisions against)".into(),
        );
    }
    if let Some(m) = &a.model {
        if let Err(e) = check_model(&config, m) {
            return fail(a.json, EXIT_USAGE, e.to_string());
        }
    }
    if let Some(since) = &a.since {
        if let Err(e) = crate::history::parse_since(since, chrono::Utc::now().timestamp_millis()) {
            return fail(a.json, EXIT_USAGE, e);
        }
    }
    if !config.engine.data_dir.exists() {
        return fail(
            a.json,
            EXIT_FAILURE,
            format!(
                "no data dir at {}; the engine has not run with this config yet",
                config.engine.data_dir.display()
            ),
        );
    }
    let config = Arc::new(config);
    let json = a.json;
    let outcome = actix::System::new().block_on(async move {
        let backend = backend(&config, a.timeout)?;
        match a.id {
            Some(id) => {
                let request = ReplayRequest {
                    id,
                    model: a.model,
                    timeout: a.timeout,
                };
                backend.replay(request).await.map(Outcome::One)
            }
            None => batch(&config, &backend, &a, json).await.map(Outcome::Batch),
        }
    });
    match outcome {
        Ok(Outcome::One(r)) => {
            if json {
                println!("{}", crate::json::to_pretty(&r));
            } else {
                print!("{}", render_one(&r));
            }
            if r.new.action.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Ok(Outcome::Batch(b)) => {
            if json {
                println!("{}", crate::json::to_pretty(&b));
            } else {
                print!("{}", b.render());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(json, EXIT_FAILURE, e),
    }
}

enum Outcome {
    One(ReplayResult),
    Batch(BatchReport),
}

fn backend(config: &Arc<Config>, timeout: Duration) -> Result<Backend, String> {
    match open_store(config)? {
        Some(store) => {
            let router = start_models(config, &store)?;
            Ok(Backend::Local {
                store,
                router,
                config: config.clone(),
            })
        }
        None => Ok(Backend::Live {
            client: reqwest::Client::builder()
                .timeout(timeout.min(Duration::from_secs(600)) + Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| e.to_string())?,
            url: format!("http://{}/api/replay", config.telemetry.listen),
            token: config
                .api
                .tokens
                .for_scope(Scope::Trade)
                .map(|t| t.expose().to_string()),
        }),
    }
}

async fn batch(
    config: &Arc<Config>,
    backend: &Backend,
    a: &ReplayArgs,
    json: bool,
) -> Result<BatchReport, String> {
    let model = a.model.clone().unwrap_or_default();
    let query = JournalQuery {
        agent: a.agent.clone(),
        symbol: None,
        since: a.since.clone(),
        limit: Some(a.limit.unwrap_or(1000)),
    };
    let rows: Vec<JournalRow> = match backend {
        Backend::Local { store, .. } => {
            crate::journal::list(store, &query).map_err(|e| e.message)?
        }
        Backend::Live { .. } => {
            let path = format!("/api/journal{}", query_string(&query));
            crate::operate::call_api::<(), Vec<JournalRow>>(
                config,
                reqwest::Method::GET,
                &path,
                None,
            )
            .await
            .map_err(|e| e.message)?
        }
    };
    let ids: Vec<String> = rows
        .into_iter()
        .filter(|r| r.replayable)
        .map(|r| r.id)
        .collect();
    let limit = concurrency(config, &model);
    let bar = indicatif::ProgressBar::new(ids.len() as u64);
    if json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "replaying {bar:40} {pos}/{len} [{elapsed_precise}, eta {eta}]",
        ) {
            bar.set_style(style);
        }
    }
    let outcomes: Vec<(String, Result<ReplayResult, String>)> =
        futures::stream::iter(ids.into_iter().map(|id| {
            let request = ReplayRequest {
                id: id.clone(),
                model: Some(model.clone()),
                timeout: a.timeout,
            };
            let bar = bar.clone();
            async move {
                let r = backend.replay(request).await;
                bar.inc(1);
                (id, r)
            }
        }))
        .buffer_unordered(limit)
        .collect()
        .await;
    bar.finish_and_clear();
    Ok(BatchReport::collect(model, limit, outcomes))
}

fn query_string(q: &JournalQuery) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if let Some(a) = &q.agent {
        s.append_pair("agent", a);
    }
    if let Some(x) = &q.since {
        s.append_pair("since", x);
    }
    if let Some(l) = q.limit {
        s.append_pair("limit", &l.to_string());
    }
    format!("?{}", s.finish())
}

fn render_one(r: &ReplayResult) -> String {
    use std::fmt::Write;
    let v = |v: &Verdict| {
        format!(
            "{} confidence {}{}",
            v.label(),
            v.confidence
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".into()),
            v.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "decision {} ({} {} at {}) replayed against {}{}",
        r.id,
        r.agent,
        r.symbol,
        r.time,
        r.model,
        r.deployment
            .as_ref()
            .map(|d| format!(" (answered by {d})"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "  recorded: {}", v(&r.recorded));
    match &r.error {
        Some(e) => {
            let _ = writeln!(o, "  new:      none: {e}");
        }
        None => {
            let _ = writeln!(o, "  new:      {}", v(&r.new));
        }
    }
    let _ = writeln!(o, "  {}", if r.agree { "agree" } else { "differ" });
    if let (Some(done), Some(new)) = (r.pnl_done, r.pnl_new) {
        let _ = writeln!(
            o,
            "  realized PnL as done {} USD, with the new verdict at the same fills {} USD",
            done.round_dp(4),
            new.round_dp(4)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn counterfactual_pnl_has_known_answers() {
        // A buy that realized +100 and paid 2 in fees.
        let (g, f) = (dec!(100), dec!(2));
        assert_eq!(counterfactual_pnl(Side::Buy, None, g, f), dec!(0));
        assert_eq!(
            counterfactual_pnl(Side::Buy, Some(Side::Buy), g, f),
            dec!(98)
        );
        assert_eq!(
            counterfactual_pnl(Side::Buy, Some(Side::Sell), g, f),
            dec!(-102)
        );
        // A sell that lost 40.5 and paid 0.25.
        let (g, f) = (dec!(-40.5), dec!(0.25));
        assert_eq!(
            counterfactual_pnl(Side::Sell, Some(Side::Sell), g, f),
            dec!(-40.75)
        );
        assert_eq!(
            counterfactual_pnl(Side::Sell, Some(Side::Buy), g, f),
            dec!(40.25)
        );
    }

    fn outcome(side: Side, gross: Decimal, fees: Decimal, known: bool) -> OrderOutcome {
        OrderOutcome {
            client_id: "c".into(),
            venue: Some("paper".into()),
            symbol: Some("BTC".into()),
            side: Some(side),
            status: None,
            filled_size: dec!(1),
            avg_fill_price: None,
            fees_usd: fees,
            gross_pnl_usd: gross,
            realized_pnl_usd: known.then_some(gross - fees),
        }
    }

    #[test]
    fn a_decisions_pnl_pair_sums_its_orders_and_needs_all_known() {
        let orders = [
            outcome(Side::Sell, dec!(30), dec!(1), true),
            outcome(Side::Sell, dec!(-10), dec!(0.5), true),
        ];
        assert_eq!(
            pnl_pair(&orders, Some("BUY")),
            Some((dec!(18.5), dec!(-21.5)))
        );
        assert_eq!(
            pnl_pair(&orders, Some("NOTHING")),
            Some((dec!(18.5), dec!(0)))
        );
        assert_eq!(
            pnl_pair(&orders, Some("SELL")),
            Some((dec!(18.5), dec!(18.5)))
        );
        let pending = [outcome(Side::Buy, dec!(5), dec!(1), false)];
        assert_eq!(pnl_pair(&pending, Some("BUY")), None);
    }

    fn result(
        recorded: &str,
        new: Option<&str>,
        traded: Option<(Decimal, Decimal)>,
    ) -> ReplayResult {
        ReplayResult {
            id: format!("{recorded}-{new:?}"),
            time: String::new(),
            agent: "trend".into(),
            symbol: "BTC".into(),
            model: "m".into(),
            deployment: None,
            recorded: Verdict {
                action: Some(recorded.into()),
                ..Verdict::default()
            },
            new: Verdict {
                action: new.map(str::to_string),
                ..Verdict::default()
            },
            error: new.is_none().then(|| "model: timeout".into()),
            raw_answer: None,
            latency_ms: None,
            agree: new == Some(recorded),
            traded: traded.is_some(),
            pnl_done: traded.map(|t| t.0),
            pnl_new: traded.map(|t| t.1),
        }
    }

    #[test]
    fn the_batch_report_counts_agreement_the_table_errors_and_pnl() {
        let outcomes = vec![
            (
                "1".into(),
                Ok(result("BUY", Some("SELL"), Some((dec!(10), dec!(-12))))),
            ),
            (
                "2".into(),
                Ok(result("BUY", Some("BUY"), Some((dec!(-3), dec!(-3))))),
            ),
            ("3".into(), Ok(result("NOTHING", Some("NOTHING"), None))),
            ("4".into(), Ok(result("SELL", None, None))),
            ("5".into(), Err("prompt hash mismatch".into())),
        ];
        let r = BatchReport::collect("m".into(), 4, outcomes);
        assert_eq!((r.selected, r.replayed, r.agreed), (5, 3, 2));
        assert_eq!(r.agreement_rate, Some(2.0 / 3.0));
        assert_eq!(r.table["BUY"]["SELL"], 1);
        assert_eq!(r.table["BUY"]["BUY"], 1);
        assert_eq!(r.table["NOTHING"]["NOTHING"], 1);
        assert_eq!(r.errors.len(), 2);
        assert_eq!((r.traded, r.pnl_done, r.pnl_new), (2, dec!(7), dec!(-15)));
        let text = r.render();
        assert!(text.contains("agreement: 2 of 3 = 66.7%"), "{text}");
        assert!(text.contains("recorded \\ new"), "{text}");
    }
}
