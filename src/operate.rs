//! Operator commands that change orders, positions and the trading mode — `orrery cancel`,
//! `orrery close`, `orrery kill-switch`, `orrery paper reset` — and the control-API routes
//! behind the first three (`POST /api/orders/cancel`, `DELETE /api/orders/{client_id}`,
//! `POST /api/positions/close`; the kill switch keeps `POST /api/kill-switch`).
//!
//! Owns: the request bodies, the CLI's choice between the running engine (asked over its
//! control API, because sled lets one process hold the data dir) and a stopped one (the
//! data dir is opened and the gateway booted in this process, without agents or HTTP), and
//! the paper reset. Errors use the control API's one envelope and status mapping in
//! [`crate::http`]. Never: sends an order or a cancel itself (the gateway does, through
//! the ledger), or resets a paper account while an engine holds the data dir (it refuses
//! and says to stop the engine).

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orrery_actors::exchanges::gateway::{
    CancelAll, CancelOrder, CancelReport, ClosePositionPct, CloseReport, GatewayError,
    GatewayResult, KillSwitch, KillSwitchReport, OrderGateway, OrderReport,
};
use orrery_actors::exchanges::ledger::OrderLedger;
use orrery_actors::exchanges::paper::{PaperReset, PaperVenue};
use orrery_actors::exchanges::{ClientOrderId, OrderStatus};
use orrery_actors::store::{trees, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Scope, VenueConfig};
use crate::engine::{Engine, EngineHandle};
use crate::http::{gateway_error_response, gateway_error_status, slot_error_response, ApiError};
use crate::symbols;

/// An error answer of the control API, in its one envelope ([`ApiError`]).
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    ApiError::new(code, message).response(status)
}

/// Body of `POST /api/orders/cancel`: the venue and exactly one of `client_id`, `symbol`
/// or `all: true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub venue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// What a cancel request selects, checked.
enum CancelTarget {
    One(ClientOrderId),
    Symbol(String),
    All,
}

impl CancelRequest {
    fn target(&self, config: &Config) -> Result<CancelTarget, String> {
        match (&self.client_id, &self.symbol, self.all) {
            (Some(id), None, false) => ClientOrderId::parse(id.trim())
                .map(CancelTarget::One)
                .map_err(|e| format!("client_id: {e}")),
            (None, Some(s), false) => Ok(CancelTarget::Symbol(symbols::normalize(
                config,
                &self.venue,
                s,
            ))),
            (None, None, true) => Ok(CancelTarget::All),
            _ => Err("name exactly one of client_id, symbol or all=true".into()),
        }
    }
}

/// Body of `POST /api/positions/close`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    pub venue: String,
    pub symbol: String,
    /// Share of the position to close, 1-100; 100 when absent.
    #[serde(default = "hundred")]
    pub percent: u32,
}

fn hundred() -> u32 {
    100
}

/// Registers this module's routes (and the history listings) on the control API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/orders/cancel")
            .app_data(json_config())
            .route(web::post().to(cancel_route)),
    )
    .service(web::resource("/api/orders/{client_id}").route(web::delete().to(delete_order_route)))
    .service(
        web::resource("/api/positions/close")
            .app_data(json_config())
            .route(web::post().to(close_route)),
    )
    .service(
        web::resource("/api/orders")
            .app_data(query_config())
            .guard(actix_web::guard::Get())
            .route(web::get().to(crate::history::orders_route)),
    )
    .service(
        web::resource("/api/trades")
            .app_data(query_config())
            .route(web::get().to(crate::history::trades_route)),
    );
}

/// Query parameters that could not be read: 400 in the error envelope.
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        let message = err.to_string();
        actix_web::error::InternalError::from_response(
            err,
            error_response(StatusCode::BAD_REQUEST, "bad_request", message),
        )
        .into()
    })
}

/// A JSON body that could not be read: 400 with serde's message.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _| {
            let message = err.to_string();
            actix_web::error::InternalError::from_response(
                err,
                error_response(StatusCode::BAD_REQUEST, "bad_request", message),
            )
            .into()
        })
}

async fn cancel_route(
    engine: web::Data<EngineHandle>,
    body: web::Json<CancelRequest>,
) -> HttpResponse {
    let body = body.into_inner();
    let target = match body.target(&engine.config) {
        Ok(t) => t,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    if !engine.config.exchanges.venues.contains_key(&body.venue) {
        let e = unknown_venue(&engine.config, &body.venue);
        return gateway_error_response(&e);
    }
    let answer =
        match target {
            CancelTarget::One(client_id) => engine
                .gateway
                .send(CancelOrder { client_id })
                .await
                .map(|r| {
                    r.map(|o| CancelReport {
                        orders: vec![o],
                        failed: vec![],
                    })
                }),
            CancelTarget::Symbol(s) => {
                engine
                    .gateway
                    .send(CancelAll {
                        venue: Some(body.venue.clone()),
                        symbol: Some(s),
                    })
                    .await
            }
            CancelTarget::All => {
                engine
                    .gateway
                    .send(CancelAll {
                        venue: Some(body.venue.clone()),
                        symbol: None,
                    })
                    .await
            }
        };
    match answer {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => gateway_error_response(&e),
        Err(e) => slot_error_response(&e),
    }
}

async fn delete_order_route(
    engine: web::Data<EngineHandle>,
    path: web::Path<String>,
) -> HttpResponse {
    let client_id = match ClientOrderId::parse(path.trim()) {
        Ok(id) => id,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    match engine.gateway.send(CancelOrder { client_id }).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => gateway_error_response(&e),
        Err(e) => slot_error_response(&e),
    }
}

async fn close_route(
    engine: web::Data<EngineHandle>,
    body: web::Json<CloseRequest>,
) -> HttpResponse {
    let body = body.into_inner();
    let msg = ClosePositionPct {
        symbol: symbols::normalize(&engine.config, &body.venue, &body.symbol),
        venue: body.venue,
        percent: body.percent,
        origin: "manual".into(),
    };
    match engine.gateway.send(msg).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => gateway_error_response(&e),
        Err(e) => slot_error_response(&e),
    }
}

pub(crate) fn unknown_venue(config: &Config, venue: &str) -> GatewayError {
    GatewayError::UnknownVenue {
        venue: venue.to_string(),
        known: config
            .exchanges
            .venues
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    }
}

// ---------------------------------------------------------------------------------------
// The CLI side.

/// A failed command: what to print, as `{"error":{...}}` with `--json`.
#[derive(Debug, Clone)]
pub struct CliError {
    pub code: String,
    pub message: String,
}

impl CliError {
    pub(crate) fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    fn gateway(e: &GatewayError) -> Self {
        Self::new(gateway_error_status(e).1, e.to_string())
    }

    /// Prints the error (JSON on stdout with `--json`, always a line on stderr).
    pub fn print(&self, json: bool, what: &str) {
        if json {
            println!(
                "{}",
                serde_json::json!({"error": {"code": self.code, "message": self.message}})
            );
        }
        eprintln!("orrery: {what} failed: {}", self.message);
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::new("failed", message)
    }
}

/// Opens the data dir, or `None` when a running engine holds it.
pub fn open_store(config: &Config) -> Result<Option<Store>, String> {
    match Store::open(&config.engine.data_dir) {
        Ok(s) => Ok(Some(s)),
        Err(StoreError::Busy { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// How long the CLI waits for the running engine's answer: a kill switch or a close of a
/// large position may take several venue round trips.
const API_ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// Calls the running engine's control API and reads the answer or its error envelope.
pub async fn call_api<B: Serialize, T: serde::de::DeserializeOwned>(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<&B>,
) -> Result<T, CliError> {
    call_api_within(config, method, path, body, API_ANSWER_WITHIN).await
}

/// [`call_api`] with its own deadline. The request carries the token of its scope when
/// `[api]` configures one (`GET`: the read token, anything else: the trading token), as
/// the API requires it once a token is set.
pub async fn call_api_within<B: Serialize, T: serde::de::DeserializeOwned>(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<&B>,
    within: Duration,
) -> Result<T, CliError> {
    let url = format!("http://{}{path}", config.telemetry.listen);
    let client = reqwest::Client::builder()
        .timeout(within)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| CliError::new("failed", e.to_string()))?;
    let scope = if method == reqwest::Method::GET {
        Scope::Read
    } else {
        Scope::Trade
    };
    let mut req = client.request(method, &url);
    if let Some(token) = config.api.tokens.for_scope(scope) {
        req = req.bearer_auth(token.expose());
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| {
        CliError::new(
            "not_ready",
            format!("the engine holds the data dir but {url} did not answer: {e}"),
        )
    })?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| CliError::new("failed", format!("reading the answer of {url}: {e}")))?;
    if !status.is_success() {
        return Err(match serde_json::from_str::<ApiError>(&text) {
            Ok(env) => CliError::new(&env.error.code, env.error.message),
            Err(_) => CliError::new("failed", format!("{status}: {text}")),
        });
    }
    serde_json::from_str(&text)
        .map_err(|e| CliError::new("failed", format!("unreadable answer from {url}: {e}")))
}

/// Boots the engine on a stopped data dir with only what orders need (no agents, no risk
/// agent, no HTTP), sends `msg` to its gateway, and stops it.
async fn offline_gateway<M, T>(mut config: Config, msg: M) -> Result<T, CliError>
where
    M: actix::Message<Result = GatewayResult<T>> + Send + 'static,
    T: Send + 'static,
    OrderGateway: actix::Handler<M>,
    actix::Context<OrderGateway>: actix::dev::ToEnvelope<OrderGateway, M>,
{
    config.agents.trading.clear();
    config.agents.skip_promoted = true;
    config.agents.pipeline.clear();
    config.agents.risk.enabled = false;
    config.telemetry.disabled = true;
    let engine = Engine::start(config)
        .await
        .map_err(|e| CliError::new("not_ready", e.to_string()))?;
    let answer = engine.gateway.send(msg).await;
    engine.shutdown().await;
    answer
        .map_err(|e| CliError::new("not_ready", e.to_string()))?
        .map_err(|e| CliError::gateway(&e))
}

/// Runs `f` in a fresh actix system with warnings-only logging.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    crate::logging::init("warn");
    actix::System::new().block_on(f)
}

fn check_venue(config: &Config, venue: &str) -> Result<(), CliError> {
    if config.exchanges.venues.contains_key(venue) {
        Ok(())
    } else {
        Err(CliError::gateway(&unknown_venue(config, venue)))
    }
}

/// `orrery cancel`: one order, a symbol's orders, or every order of a venue.
pub fn cancel(config: Config, request: CancelRequest) -> Result<CancelReport, CliError> {
    check_venue(&config, &request.venue)?;
    let target = request
        .target(&config)
        .map_err(|e| CliError::new("bad_request", e))?;
    block_on(async move {
        match open_store(&config)? {
            Some(store) => {
                drop(store);
                let venue = Some(request.venue.clone());
                match target {
                    CancelTarget::One(client_id) => {
                        offline_gateway(config, CancelOrder { client_id })
                            .await
                            .map(|o| CancelReport {
                                orders: vec![o],
                                failed: vec![],
                            })
                    }
                    CancelTarget::Symbol(s) => {
                        offline_gateway(
                            config,
                            CancelAll {
                                venue,
                                symbol: Some(s),
                            },
                        )
                        .await
                    }
                    CancelTarget::All => {
                        offline_gateway(
                            config,
                            CancelAll {
                                venue,
                                symbol: None,
                            },
                        )
                        .await
                    }
                }
            }
            None => {
                call_api(
                    &config,
                    reqwest::Method::POST,
                    "/api/orders/cancel",
                    Some(&request),
                )
                .await
            }
        }
    })
}

/// `orrery close`: `percent` of one position in reduce-only chunks.
pub fn close(config: Config, request: CloseRequest) -> Result<CloseReport, CliError> {
    check_venue(&config, &request.venue)?;
    let request = CloseRequest {
        symbol: symbols::normalize(&config, &request.venue, &request.symbol),
        ..request
    };
    block_on(async move {
        match open_store(&config)? {
            Some(store) => {
                drop(store);
                let msg = ClosePositionPct {
                    venue: request.venue,
                    symbol: request.symbol,
                    percent: request.percent,
                    origin: "manual".into(),
                };
                offline_gateway(config, msg).await
            }
            None => {
                call_api(
                    &config,
                    reqwest::Method::POST,
                    "/api/positions/close",
                    Some(&request),
                )
                .await
            }
        }
    })
}

/// `orrery kill-switch`: engage (halt, cancel every open order, close every position) or
/// release.
pub fn kill_switch(
    config: Config,
    engaged: bool,
    reason: String,
) -> Result<KillSwitchReport, CliError> {
    block_on(async move {
        match open_store(&config)? {
            Some(store) => {
                drop(store);
                offline_gateway(config, KillSwitch { engaged, reason }).await
            }
            None => {
                let body = serde_json::json!({"engaged": engaged, "reason": reason});
                call_api(
                    &config,
                    reqwest::Method::POST,
                    "/api/kill-switch",
                    Some(&body),
                )
                .await
            }
        }
    })
}

/// What `orrery paper reset` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaperResetReport {
    #[serde(flatten)]
    pub reset: PaperReset,
    /// Open ledger entries of the venue closed as cancelled by the reset.
    pub ledger_orders_closed: usize,
    /// Fills of the old account copied into the ledger's history before the reset.
    pub fills_kept: usize,
}

/// `orrery paper reset`: refuses while an engine runs; asks on a terminal unless `yes`.
pub fn paper_reset(config: Config, venue: &str, yes: bool) -> Result<PaperResetReport, CliError> {
    let paper = match config.exchanges.venues.get(venue) {
        Some(VenueConfig::Paper(p)) => p.clone(),
        Some(other) => {
            return Err(CliError::new(
                "bad_request",
                format!(
                    "venue `{venue}` is a {} venue; only paper accounts can be reset",
                    other.kind()
                ),
            ))
        }
        None => return Err(CliError::gateway(&unknown_venue(&config, venue))),
    };
    let Some(store) = open_store(&config)? else {
        return Err(CliError::new(
            "engine_running",
            format!(
                "the engine is running on {}; stop it first (a paper account is only reset while no engine uses it)",
                config.engine.data_dir.display()
            ),
        ));
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new(
                "bad_request",
                "not a terminal, so nothing can be confirmed: pass --yes to reset the paper account",
            ));
        }
        eprint!(
            "Reset paper account `{venue}` in {}? Its positions, open orders and balance are replaced by a fresh account of {} USD. Type `yes` to confirm: ",
            config.engine.data_dir.display(),
            paper.starting_balance_usd
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::new("failed", e.to_string()))?;
        if answer.trim() != "yes" {
            return Err(CliError::new(
                "cancelled",
                "not confirmed; nothing was changed",
            ));
        }
    }
    let clock = orrery_actors::clock::system_clock();
    block_on(async move {
        let err = |e: &dyn std::fmt::Display| CliError::new("failed", e.to_string());
        let ledger = OrderLedger::open(&store, clock.clone()).map_err(|e| err(&e))?;
        // The old account's fills stay in the ledger's history (reconciliation may not
        // have copied the newest yet).
        let mut fills_kept = 0;
        {
            let account =
                PaperVenue::open(venue, &paper, &store, clock.clone()).map_err(|e| err(&e))?;
            use orrery_actors::exchanges::Venue;
            for fill in account.fills_since(0).await.map_err(|e| err(&e))? {
                if ledger
                    .record_fill(venue, &fill)
                    .await
                    .map_err(|e| err(&e))?
                {
                    fills_kept += 1;
                }
            }
        }
        let mut closed = 0;
        for entry in ledger
            .open_entries()
            .into_iter()
            .filter(|e| e.venue == venue)
        {
            ledger
                .update(&entry.client_id, |e| {
                    e.status = OrderStatus::Cancelled;
                    e.reason = Some("paper account reset".into());
                })
                .await
                .map_err(|e| err(&e))?;
            closed += 1;
        }
        let reset = PaperVenue::reset(venue, &paper, &store, clock).map_err(|e| err(&e))?;
        // A new account starts a new risk window.
        let risk = store
            .tree::<orrery_actors::agents::risk::Baseline>(trees::RISK)
            .map_err(|e| err(&e))?;
        risk.remove(&format!("baseline/{venue}"))
            .map_err(|e| err(&e))?;
        store.flush().map_err(|e| err(&e))?;
        Ok(PaperResetReport {
            reset,
            ledger_orders_closed: closed,
            fills_kept,
        })
    })
}

/// One line per order of a report.
pub fn order_line(o: &OrderReport) -> String {
    format!(
        "{} {} {} {} size {} filled {} avg {} -> {}{}",
        o.client_id,
        o.venue,
        o.side,
        o.symbol,
        o.size.normalize(),
        o.filled_size.normalize(),
        o.avg_fill_price
            .map(|p| p.normalize().to_string())
            .unwrap_or_else(|| "-".into()),
        o.status,
        o.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )
}

pub fn render_cancel(r: &CancelReport) -> String {
    let mut o = format!(
        "cancelled {} order(s), {} failed\n",
        r.cancelled(),
        r.failed.len()
    );
    for order in &r.orders {
        o.push_str(&format!("  {}\n", order_line(order)));
    }
    for f in &r.failed {
        o.push_str(&format!(
            "  FAILED {} {} {}: {} ({})\n",
            f.venue,
            f.symbol.as_deref().unwrap_or("-"),
            f.client_id
                .as_ref()
                .map(|c| c.to_string())
                .or_else(|| f.venue_order_id.clone())
                .unwrap_or_else(|| "-".into()),
            f.message,
            f.code
        ));
    }
    o
}

pub fn render_close(r: &CloseReport) -> String {
    if r.orders.is_empty() && r.size_before.is_zero() {
        return format!(
            "no open position in {} on {}; nothing to close\n",
            r.symbol, r.venue
        );
    }
    let mut o = format!(
        "closed {}% of {} on {}: position {} -> {} in {} order(s)\n",
        r.percent,
        r.symbol,
        r.venue,
        r.size_before.normalize(),
        r.size_after.normalize(),
        r.orders.len()
    );
    for order in &r.orders {
        o.push_str(&format!("  {}\n", order_line(order)));
    }
    o
}

pub fn render_kill_switch(r: &KillSwitchReport) -> String {
    let mut o = format!(
        "trading: {} ({}), kill switch {}\n",
        r.state.mode,
        r.state.reason,
        if r.state.kill_switch {
            "engaged"
        } else {
            "released"
        }
    );
    if r.state.kill_switch {
        o.push_str(&format!(
            "cancelled {} order(s), {} close order(s), {} failure(s)\n",
            r.cancelled.len(),
            r.closed.len(),
            r.failed.len()
        ));
        for order in r.cancelled.iter().chain(&r.closed) {
            o.push_str(&format!("  {}\n", order_line(order)));
        }
        for f in &r.failed {
            o.push_str(&format!("  FAILED {} {}: {}\n", f.venue, f.code, f.message));
        }
    }
    o
}

pub fn render_paper_reset(r: &PaperResetReport) -> String {
    format!(
        "paper account `{}` reset: balance {} -> {} USD, {} position(s) and {} order(s) removed, {} open ledger order(s) closed as cancelled, {} fill(s) kept in the history\n",
        r.reset.venue,
        r.reset.balance_before.round_dp(2),
        r.reset.starting_balance,
        r.reset.positions_removed,
        r.reset.orders_removed,
        r.ledger_orders_closed,
        r.fills_kept
    )
}
