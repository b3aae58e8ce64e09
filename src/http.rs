//! The engine's HTTP surface on the telemetry address: Prometheus metrics, health, and the
//! control API used by `orrery status` / `orrery order` / `orrery models` / `orrery ask`
//! while the engine runs (sled lets one process own the data dir, so a second process asks
//! the running one): `GET /api/status`, `POST /api/orders`, `POST /api/kill-switch`,
//! `GET /api/models` (deployments with live health and usage), `POST /api/ask` (one
//! prompt through the model router; the body is [`crate::models::AskBody`], the answer a
//! `ModelResponse`) and `POST /api/ask/stream` (the same body; the answer streamed as
//! NDJSON, one [`crate::models::StreamLine`] a line: text deltas as they arrive, then
//! `done` with the `ModelResponse` or `error`), and `GET /api/tree` (the live supervisor
//! tree, [`crate::tree::TreeReport`], as `orrery tree --json`), and the agent routes
//! (`GET /api/agents`, `POST /api/agents/{name}/pause|resume|run-now`, in
//! [`crate::agents`]), and the web dashboard (`GET /`, its assets, `GET /api/events` and
//! `GET /api/dashboard/*`, in [`crate::dashboard`]), and `GET /api/cluster` (the
//! cluster as Redis holds it, with `[cluster]`; in [`crate::cluster_status`]).
//!
//! Errors are JSON `{"error":{"code","message"}}` everywhere, including actix's own
//! extractor errors and unknown routes ([`ApiError`], [`gateway_error_response`],
//! [`model_error_response`]); statuses: 400 bad input, 401/403 token, 404 unknown venue,
//! symbol, order, model or route, 405 wrong method, 409 the trading mode forbids it, 413
//! body too large, 422 the risk gate or the venue refused, 502/504 the venue or provider
//! failed, 503 not ready or no healthy deployment right now.
//!
//! Owns: routing, the error envelope and status mapping, token checks ([`crate::config::ApiTokens`]:
//! read scope for `GET`, trading scope for everything else; `GET /health` is open), the body
//! limit (`api.max_body_bytes`), and the request counter `orrery_api_requests_total{route,status}`
//! (route is the matched pattern, `unmatched` otherwise). Never: logs or echoes a token, or
//! decides anything about money by reading an error's text.

use std::net::SocketAddr;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use orrery_actors::exchanges::gateway::{
    Amount, DeliveryFailure, GatewayError, KillSwitch, OrderIntent, PlaceOrder, Pricing,
};
use orrery_actors::exchanges::risk_gate::Refusal;
use orrery_actors::exchanges::{Side, TimeInForce, TriggerKind, VenueError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use orrery_actors::models::{ModelClient, ModelError};
use orrery_actors::supervisor::SlotError;

use crate::config::Scope;
use crate::engine::EngineHandle;
use crate::json::{to_json_value, AskAnswer};
use crate::models::{self, AskBody, StreamLine};
use crate::status;

/// Requests answered by the control API, by matched route pattern and status code.
pub const API_REQUESTS_TOTAL: &str = "orrery_api_requests_total";

/// Describes the control API's metrics (HELP lines).
pub fn describe() {
    metrics::describe_counter!(
        API_REQUESTS_TOTAL,
        "Control API requests answered, by route pattern (`unmatched` for unknown paths) and HTTP status"
    );
}

/// Starts the server on the current actix system; returns its handle and bound address.
pub fn serve(
    engine: EngineHandle,
    addr: SocketAddr,
) -> std::io::Result<(actix_web::dev::ServerHandle, SocketAddr)> {
    describe();
    let limit = engine.config.api.max_body_bytes;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(engine.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(json_error),
            )
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                let msg = e.to_string();
                actix_web::error::InternalError::from_response(
                    e,
                    ApiError::new("bad_path", msg).response(StatusCode::BAD_REQUEST),
                )
                .into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                let msg = e.to_string();
                actix_web::error::InternalError::from_response(
                    e,
                    ApiError::new("bad_query", msg).response(StatusCode::BAD_REQUEST),
                )
                .into()
            }))
            .wrap(from_fn(guard))
            .route("/metrics", web::get().to(metrics))
            .route("/health", web::get().to(health))
            .route("/api/status", web::get().to(status_report))
            .route("/api/orders", web::post().to(place_order))
            .route("/api/kill-switch", web::post().to(kill_switch))
            .route("/api/models", web::get().to(models_report))
            .route("/api/ask", web::post().to(ask))
            .route("/api/ask/stream", web::post().to(ask_stream))
            .route("/api/tree", web::get().to(tree_report))
            .configure(crate::operate::routes)
            .configure(crate::agents::routes)
            .configure(crate::strategies::routes)
            .configure(crate::signals::routes)
            .configure(crate::sentiment::routes)
            .configure(crate::journal::routes)
            .configure(crate::replay::routes)
            .configure(crate::market::routes)
            .configure(crate::liquidations::routes)
            .configure(crate::dashboard::routes)
            .configure(crate::notify::routes)
            .configure(crate::cluster_status::routes)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let running = server.run();
    let handle = running.handle();
    actix_rt::spawn(running);
    Ok((handle, bound))
}

/// Error body of the control API: `{"error":{"code":"...","message":"..."}}`. `code` is a
/// stable snake_case label for programs; `message` says what failed and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ApiErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    /// This error as a JSON response with `status`.
    pub fn response(&self, status: StatusCode) -> HttpResponse {
        HttpResponse::build(status).json(self)
    }
}

/// The status and code of a gateway error. The one place this mapping lives: extend it
/// here when `GatewayError` grows.
pub fn gateway_error_status(e: &GatewayError) -> (StatusCode, &'static str) {
    match e {
        GatewayError::UnknownVenue { .. } => (StatusCode::NOT_FOUND, "unknown_venue"),
        GatewayError::UnknownOrder(_) => (StatusCode::NOT_FOUND, "unknown_order"),
        GatewayError::Invalid { .. } | GatewayError::InvalidOrder(_) => {
            (StatusCode::BAD_REQUEST, "invalid_order")
        }
        GatewayError::NotReady { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        GatewayError::ConnectorDown { delivery, .. } => match delivery {
            DeliveryFailure::Vacant | DeliveryFailure::Full => {
                (StatusCode::SERVICE_UNAVAILABLE, "connector_down")
            }
            DeliveryFailure::Closed | DeliveryFailure::Timeout => {
                (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown")
            }
        },
        GatewayError::Refused { refusal, .. } => match refusal {
            Refusal::Halted { .. } | Refusal::ReducingOnly { .. } => {
                (StatusCode::CONFLICT, "mode_forbids")
            }
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "risk_refused"),
        },
        GatewayError::Venue(v) => match v {
            VenueError::UnknownSymbol { .. } => (StatusCode::NOT_FOUND, "unknown_symbol"),
            VenueError::OrderNotFound { .. } => (StatusCode::NOT_FOUND, "unknown_order"),
            VenueError::Rejected { .. }
            | VenueError::InvalidRequest { .. }
            | VenueError::InsufficientBalance { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "venue_rejected")
            }
            VenueError::Unavailable { .. }
            | VenueError::RateLimited { .. }
            | VenueError::Overloaded { .. }
            | VenueError::NotSent { .. } => (StatusCode::SERVICE_UNAVAILABLE, "venue_unavailable"),
            VenueError::Timeout { .. } | VenueError::OutcomeUnknown { .. } => {
                (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown")
            }
            VenueError::Auth { .. } => (StatusCode::BAD_GATEWAY, "venue_auth"),
            VenueError::Malformed { .. } => (StatusCode::BAD_GATEWAY, "venue_malformed"),
            VenueError::Unsupported { .. } => (StatusCode::BAD_REQUEST, "venue_unsupported"),
        },
        GatewayError::NotApplied { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not_applied"),
        GatewayError::Unresolved { .. } => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
        GatewayError::Ledger(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ledger"),
        GatewayError::Superseded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "superseded"),
        // Another node trades this account: 409, the request belongs on the owner.
        GatewayError::NotOwner { .. } => (StatusCode::CONFLICT, "not_owner"),
        GatewayError::NotReplicated { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_replicated"),
    }
}

/// A gateway error as the API's JSON error with its status.
pub fn gateway_error_response(e: &GatewayError) -> HttpResponse {
    let (status, code) = gateway_error_status(e);
    ApiError::new(code, e.to_string()).response(status)
}

/// The gateway's slot did not deliver an answer. `Vacant`/`Full`: the message never
/// reached it (503, safe to retry). `Closed`/`Timeout`: it may have been handled, so for
/// an order the outcome is unknown (504; check `orrery status`, do not blindly resend).
pub fn slot_error_response(e: &SlotError) -> HttpResponse {
    let (status, code) = match e {
        SlotError::Vacant { .. } | SlotError::Full { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        }
        SlotError::Closed { .. } | SlotError::Timeout { .. } => {
            (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown")
        }
    };
    ApiError::new(code, e.to_string()).response(status)
}

/// A model error as the API's JSON error. `known_model` says whether the logical model
/// is configured: a `NoDeployment` for a configured model is a temporary outage (every
/// deployment cooling down or unhealthy), not bad input.
pub fn model_error_response(e: &ModelError, known_model: bool) -> HttpResponse {
    let (status, code) = match e {
        ModelError::NoDeployment { .. } if !known_model => (StatusCode::NOT_FOUND, "unknown_model"),
        ModelError::NoDeployment { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "no_healthy_deployment")
        }
        ModelError::DeadlineExceeded { .. } | ModelError::Abandoned { .. } => {
            (StatusCode::GATEWAY_TIMEOUT, "deadline")
        }
        ModelError::RouterUnavailable { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "router_unavailable")
        }
        ModelError::AllFailed { .. } => (StatusCode::BAD_GATEWAY, "all_failed"),
        ModelError::ContextTooLong { .. } => (StatusCode::BAD_REQUEST, "context_too_long"),
        ModelError::Provider { .. } | ModelError::Malformed { .. } => {
            (StatusCode::BAD_GATEWAY, "provider_failed")
        }
    };
    ApiError::new(code, e.to_string()).response(status)
}

/// A body that is not the JSON the route takes: 400 (413 when too large), never text.
fn json_error(e: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let (status, code) = match &e {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        }
        J::ContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type"),
        _ => (StatusCode::BAD_REQUEST, "bad_json"),
    };
    let message = match &e {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            format!("{e}; raise api.max_body_bytes to accept larger bodies")
        }
        J::ContentType => "send the body as JSON with `Content-Type: application/json`".into(),
        _ => format!("the body is not what this endpoint takes: {e}"),
    };
    actix_web::error::InternalError::from_response(e, ApiError::new(code, message).response(status))
        .into()
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    // The path is a route, the method is not one of its own.
    if let Some(pattern) = req.match_pattern() {
        return ApiError::new(
            "method_not_allowed",
            format!("{} is not allowed on {pattern}", req.method()),
        )
        .response(StatusCode::METHOD_NOT_ALLOWED);
    }
    ApiError::new(
        "not_found",
        format!(
            "no endpoint {} {}; see the README's HTTP section",
            req.method(),
            req.path()
        ),
    )
    .response(StatusCode::NOT_FOUND)
}

/// Token check, JSON for every error (actix's own 405 included), and the request counter.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let needed = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Trade
    };
    let refused = match req.app_data::<web::Data<EngineHandle>>() {
        // The dashboard's page and assets hold no data: the page asks for a token itself.
        Some(engine)
            if route != "/health" && !crate::dashboard::ASSET_ROUTES.contains(&route.as_str()) =>
        {
            let api = &engine.config.api;
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            api.tokens.authorize(api, presented, needed).err()
        }
        _ => None,
    };
    let res = match refused {
        Some(e) => {
            let status = match e {
                crate::config::AuthError::ReadOnly { .. } => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let code = match e {
                crate::config::AuthError::ReadOnly { .. } => "forbidden",
                _ => "unauthorized",
            };
            let resp = ApiError::new(code, e.to_string())
                .response(status)
                .map_into_boxed_body();
            req.into_response(resp)
        }
        None => {
            let method = req.method().clone();
            let path = req.path().to_string();
            let res = next.call(req).await?.map_into_boxed_body();
            let status = res.status();
            let is_json = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if (status.is_client_error() || status.is_server_error()) && !is_json {
                let message = if status == StatusCode::METHOD_NOT_ALLOWED {
                    format!("{method} is not allowed on {path}")
                } else {
                    status
                        .canonical_reason()
                        .unwrap_or("request failed")
                        .to_string()
                };
                let code = status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
                    .replace(' ', "_");
                let (req, _) = res.into_parts();
                ServiceResponse::new(
                    req,
                    ApiError::new(code, message)
                        .response(status)
                        .map_into_boxed_body(),
                )
            } else {
                res
            }
        }
    };
    metrics::counter!(
        API_REQUESTS_TOTAL,
        "route" => route,
        "status" => res.status().as_u16().to_string()
    )
    .increment(1);
    Ok(res)
}

async fn metrics(engine: web::Data<EngineHandle>) -> HttpResponse {
    match &engine.metrics {
        Some(h) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(orrery_actors::telemetry::render(h)),
        None => ApiError::new(
            "metrics_elsewhere",
            "metrics go to a recorder this process installed before the engine started; serve them from there",
        )
        .response(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// Body of `GET /health`: `{"status":"ok"}`, or `stopping` with why (503).
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

async fn health(engine: web::Data<EngineHandle>) -> HttpResponse {
    match engine.root.exit() {
        None => HttpResponse::Ok().json(Health {
            status: "ok".into(),
            reason: None,
        }),
        Some(exit) => HttpResponse::ServiceUnavailable().json(Health {
            status: "stopping".into(),
            reason: Some(match exit {
                orrery_actors::supervisor::RootExit::Normal => "shutting down".into(),
                orrery_actors::supervisor::RootExit::Escalated(why) => why,
            }),
        }),
    }
}

async fn status_report(engine: web::Data<EngineHandle>) -> HttpResponse {
    match status::live(&engine).await {
        Ok(report) => HttpResponse::Ok().json(to_json_value(&report)),
        Err(e) => ApiError::new("status_failed", e).response(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Body of `POST /api/orders`: exactly one of `usd` (notional) and `size` (base units);
/// `limit` makes it a limit order (`tif` `gtc` by default), else a market order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rust_decimal::serde::str_option::serialize",
        deserialize_with = "decimal_string_or_number"
    )]
    pub usd: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rust_decimal::serde::str_option::serialize",
        deserialize_with = "decimal_string_or_number"
    )]
    pub size: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rust_decimal::serde::str_option::serialize",
        deserialize_with = "decimal_string_or_number"
    )]
    pub limit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tif: Option<TimeInForce>,
    #[serde(default)]
    pub reduce_only: bool,
    /// A stop loss: rests at the venue until the price reaches this, then trades at
    /// market (or at `limit`, when given).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rust_decimal::serde::str_option::serialize",
        deserialize_with = "decimal_string_or_number"
    )]
    pub stop: Option<Decimal>,
    /// A take profit: like `stop`, triggered the other way.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rust_decimal::serde::str_option::serialize",
        deserialize_with = "decimal_string_or_number"
    )]
    pub take_profit: Option<Decimal>,
}

/// A decimal written as a JSON string (`"500.5"`, exact) or number (`500.5`, read through
/// its shortest decimal text).
fn decimal_string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Decimal>, D::Error> {
    use serde::de::Error;
    let text = match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "expected a decimal number or string, got {other}"
            )))
        }
    };
    text.trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map(Some)
        .map_err(|e| D::Error::custom(format!("`{text}` is not a decimal number: {e}")))
}

impl OrderRequest {
    /// The gateway's intent, or what is wrong with the body.
    pub fn into_intent(self, origin: &str) -> Result<OrderIntent, String> {
        let amount = match (self.usd, self.size) {
            (Some(usd), None) => Amount::Usd(usd),
            (None, Some(size)) => Amount::Base(size),
            (Some(_), Some(_)) => return Err("give either `usd` or `size`, not both".into()),
            (None, None) => {
                return Err("give `usd` (notional in USD) or `size` (base units)".into())
            }
        };
        let trigger = match (self.stop, self.take_profit) {
            (Some(_), Some(_)) => {
                return Err("give either `stop` or `take_profit`, not both".into())
            }
            (Some(p), None) => Some((p, TriggerKind::StopLoss)),
            (None, Some(p)) => Some((p, TriggerKind::TakeProfit)),
            (None, None) => None,
        };
        let pricing = match (trigger, self.limit, self.tif) {
            (Some(_), _, Some(_)) => return Err(
                "`tif` is for limit orders; a `stop`/`take_profit` order rests until it triggers"
                    .into(),
            ),
            (Some((trigger_price, kind)), limit_price, None) => Pricing::Trigger {
                trigger_price,
                kind,
                limit_price,
            },
            (None, Some(price), tif) => Pricing::Limit {
                price,
                tif: tif.unwrap_or(TimeInForce::Gtc),
            },
            (None, None, None) => Pricing::Market,
            (None, None, Some(_)) => return Err("`tif` needs a `limit` price".into()),
        };
        Ok(OrderIntent {
            venue: self.venue,
            symbol: self.symbol,
            side: self.side,
            amount,
            pricing,
            reduce_only: self.reduce_only,
            origin: origin.to_string(),
        })
    }
}

/// `POST /api/orders` takes the documented [`OrderRequest`], or the gateway's own
/// [`OrderIntent`] (`amount`, `pricing`, `origin`), told apart by its `amount` key so each
/// form gets its own precise error.
async fn place_order(
    engine: web::Data<EngineHandle>,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    let body = body.into_inner();
    let intent = if body.get("amount").is_some() {
        serde_json::from_value::<OrderIntent>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_value::<OrderRequest>(body)
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_intent("api"))
    };
    let mut intent = match intent {
        Ok(i) => i,
        Err(e) => {
            return ApiError::new("bad_order", format!("the order body is not valid: {e}"))
                .response(StatusCode::BAD_REQUEST)
        }
    };
    intent.symbol = crate::symbols::normalize(&engine.config, &intent.venue, &intent.symbol);
    match engine.gateway.send(PlaceOrder { intent }).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(to_json_value(&report)),
        Ok(Err(e)) => gateway_error_response(&e),
        Err(e) => slot_error_response(&e),
    }
}

/// Body of `POST /api/kill-switch`; `reason` is optional (disengaging rarely has one).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchRequest {
    pub engaged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

async fn kill_switch(
    engine: web::Data<EngineHandle>,
    req: web::Json<KillSwitchRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    let reason = req.reason.unwrap_or_else(|| {
        if req.engaged {
            "kill switch engaged through the control API".into()
        } else {
            "kill switch released through the control API".into()
        }
    });
    match engine
        .gateway
        .send(KillSwitch {
            engaged: req.engaged,
            reason,
        })
        .await
    {
        Ok(Ok(state)) => HttpResponse::Ok().json(state),
        Ok(Err(e)) => gateway_error_response(&e),
        Err(e) => slot_error_response(&e),
    }
}

/// `GET /api/tree`: the live supervisor tree ([`crate::tree::TreeReport`]).
async fn tree_report(engine: web::Data<EngineHandle>) -> HttpResponse {
    HttpResponse::Ok().json(crate::tree::TreeReport {
        engine_running: true,
        actors: engine.root.tree(),
    })
}

async fn models_report(engine: web::Data<EngineHandle>) -> HttpResponse {
    match models::live(&engine).await {
        Ok(report) => HttpResponse::Ok().json(to_json_value(&report)),
        Err(e) => ApiError::new("not_ready", e).response(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// One prompt through the router; the answer is a `ModelResponse`.
async fn ask(engine: web::Data<EngineHandle>, body: web::Json<AskBody>) -> HttpResponse {
    let client = ModelClient::from_slot(engine.router.clone());
    let body = body.into_inner();
    let known = engine.config.models.models.contains_key(&body.model);
    let started = std::time::Instant::now();
    match client.ask(body.into_request()).await {
        Ok(response) => HttpResponse::Ok().json(AskAnswer::new(response, started.elapsed())),
        Err(e) => model_error_response(&e, known),
    }
}

/// One prompt through the router, streamed: `application/x-ndjson`, one [`StreamLine`] a
/// line, flushed as each arrives. The status is 200 once streaming starts; a failure is
/// the last line (`{"event":"error",...}`).
async fn ask_stream(engine: web::Data<EngineHandle>, body: web::Json<AskBody>) -> HttpResponse {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<StreamLine>(64);
    let router = engine.router.clone();
    let request = body.into_inner().into_request();
    actix_rt::spawn(async move { models::ask_streaming(&router, request, tx).await });
    let lines = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|line| Ok::<_, std::convert::Infallible>(ndjson(&line)));
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(lines)
}

/// `line` as one line of JSON.
fn ndjson(line: &StreamLine) -> web::Bytes {
    let mut bytes = serde_json::to_vec(line).unwrap_or_else(|e| {
        // Every field is a string, number or plain struct: not expected, but never a
        // panic and never a silent gap.
        serde_json::to_vec(&StreamLine::Error {
            error: format!("cannot encode a stream line: {e}"),
        })
        .unwrap_or_default()
    });
    bytes.push(b'\n');
    web::Bytes::from(bytes)
}
