//! The engine's HTTP surface on the telemetry address: Prometheus metrics, health, and the
//! control API used by `orrery status` / `orrery order` / `orrery models` / `orrery ask`
//! while the engine runs (sled lets one process own the data dir, so a second process asks
//! the running one): `GET /api/status`, `POST /api/orders`, `POST /api/kill-switch`,
//! `GET /api/models` (deployments with live health and usage), `POST /api/ask` (one
//! prompt through the model router; the body is [`crate::models::AskBody`], the answer a
//! `ModelResponse`) and `POST /api/ask/stream` (the same body; the answer streamed as
//! NDJSON, one [`crate::models::StreamLine`] a line: text deltas as they arrive, then
//! `done` with the `ModelResponse` or `error`).
//!
//! Keep `telemetry.listen` on loopback: the control API places orders and has no
//! authentication of its own.

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;
use orrery_actors::exchanges::gateway::{GatewayError, KillSwitch, OrderIntent, PlaceOrder};
use serde::{Deserialize, Serialize};

use orrery_actors::models::{ModelClient, ModelError};

use crate::engine::EngineHandle;
use crate::models::{self, AskBody, StreamLine};
use crate::status;

/// Starts the server on the current actix system; returns its handle and bound address.
pub fn serve(
    engine: EngineHandle,
    addr: SocketAddr,
) -> std::io::Result<(actix_web::dev::ServerHandle, SocketAddr)> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(engine.clone()))
            .app_data(web::JsonConfig::default().limit(64 * 1024))
            .route("/metrics", web::get().to(metrics))
            .route("/health", web::get().to(health))
            .route("/api/status", web::get().to(status_report))
            .route("/api/orders", web::post().to(place_order))
            .route("/api/kill-switch", web::post().to(kill_switch))
            .route("/api/models", web::get().to(models_report))
            .route("/api/ask", web::post().to(ask))
            .route("/api/ask/stream", web::post().to(ask_stream))
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

async fn metrics(engine: web::Data<EngineHandle>) -> HttpResponse {
    match &engine.metrics {
        Some(h) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(orrery_actors::telemetry::render(h)),
        None => HttpResponse::ServiceUnavailable()
            .body("metrics are recorded by another engine in this process\n"),
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    tree: Option<String>,
}

async fn health(engine: web::Data<EngineHandle>) -> HttpResponse {
    match engine.root.exit() {
        None => HttpResponse::Ok().json(Health {
            status: "ok",
            tree: None,
        }),
        Some(exit) => HttpResponse::ServiceUnavailable().json(Health {
            status: "stopping",
            tree: Some(format!("{exit:?}")),
        }),
    }
}

async fn status_report(engine: web::Data<EngineHandle>) -> HttpResponse {
    match status::live(&engine).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => HttpResponse::InternalServerError().json(ApiError { error: e }),
    }
}

/// Error body of the control API.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

async fn place_order(
    engine: web::Data<EngineHandle>,
    intent: web::Json<OrderIntent>,
) -> HttpResponse {
    let answer = engine
        .gateway
        .send(PlaceOrder {
            intent: intent.into_inner(),
        })
        .await;
    match answer {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => {
            let body = ApiError {
                error: e.to_string(),
            };
            match e {
                GatewayError::Refused { .. } | GatewayError::Invalid { .. } => {
                    HttpResponse::UnprocessableEntity().json(body)
                }
                GatewayError::UnknownVenue { .. } => HttpResponse::BadRequest().json(body),
                _ => HttpResponse::BadGateway().json(body),
            }
        }
        Err(e) => HttpResponse::ServiceUnavailable().json(ApiError {
            error: e.to_string(),
        }),
    }
}

/// Body of `POST /api/kill-switch`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KillSwitchRequest {
    pub engaged: bool,
    pub reason: String,
}

async fn kill_switch(
    engine: web::Data<EngineHandle>,
    req: web::Json<KillSwitchRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    match engine
        .gateway
        .send(KillSwitch {
            engaged: req.engaged,
            reason: req.reason,
        })
        .await
    {
        Ok(Ok(state)) => HttpResponse::Ok().json(state),
        Ok(Err(e)) => HttpResponse::InternalServerError().json(ApiError {
            error: e.to_string(),
        }),
        Err(e) => HttpResponse::ServiceUnavailable().json(ApiError {
            error: e.to_string(),
        }),
    }
}

async fn models_report(engine: web::Data<EngineHandle>) -> HttpResponse {
    match models::live(&engine).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => HttpResponse::ServiceUnavailable().json(ApiError { error: e }),
    }
}

/// One prompt through the router; the answer is a `ModelResponse`.
async fn ask(engine: web::Data<EngineHandle>, body: web::Json<AskBody>) -> HttpResponse {
    let client = ModelClient::from_slot(engine.router.clone());
    match client.ask(body.into_inner().into_request()).await {
        Ok(response) => HttpResponse::Ok().json(response),
        Err(e) => {
            let body = ApiError {
                error: e.to_string(),
            };
            match e {
                ModelError::NoDeployment { .. } => HttpResponse::BadRequest().json(body),
                ModelError::DeadlineExceeded { .. } => HttpResponse::GatewayTimeout().json(body),
                ModelError::ShuttingDown => HttpResponse::ServiceUnavailable().json(body),
                _ => HttpResponse::BadGateway().json(body),
            }
        }
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
