//! Notifications: fills, trading-mode changes, the kill switch, circuit breakers that
//! open, failed actors and a daily PnL summary, sent to webhook and chat sinks (generic
//! JSON webhook, Slack, Discord, Telegram) by an actor of their own, so delivery never
//! blocks trading.
//!
//! Owns: the `[notifications]` config ([`config`]), the notices ([`notice`]), each sink's
//! dedup / queue / rate limit ([`gate`]), the wire formats and retries ([`sink`]), the
//! `Notifier` actor ([`actor`]), the `notifications` sled tree (sink status and the last
//! summary day; never a secret), the control API routes `GET /api/notifications` and
//! `POST /api/notifications/test`, and `orrery notify [test]`. Never: touches an order, a
//! position or the trading mode, or waits on anything trading waits on.
//!
//! The notifier is a child of the root supervisor (`engine/notifier`, between the signal
//! bus and the agents), present only when sinks are configured.

pub mod actor;
pub mod cli;
pub mod config;
pub mod gate;
pub mod notice;
pub mod sink;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orrery_actors::clock::Millis;
use orrery_actors::store::{Record, Store};
use serde::{Deserialize, Serialize};

pub use actor::{GetSinks, Notifier, NotifierDeps, NotifyError, SendTest, TestOutcome};
pub use config::{EventKind, NotificationsConfig, SinkConfig, SinkKind};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::operate::error_response;

/// Notices delivered, by sink and kind.
pub const METRIC_SENT: &str = "orrery_notifications_sent_total";
/// Notices given up on after their last attempt, by sink and kind.
pub const METRIC_FAILED: &str = "orrery_notifications_failed_total";
/// Notices dropped from a full sink queue (the oldest), by sink and kind.
pub const METRIC_DROPPED: &str = "orrery_notifications_dropped_total";
/// Attempts after the first, by sink and kind.
pub const METRIC_RETRIES: &str = "orrery_notifications_retries_total";
/// Notices not queued because the same event was queued within the dedup window.
pub const METRIC_DEDUPLICATED: &str = "orrery_notifications_deduplicated_total";
/// Notices waiting per sink.
pub const METRIC_QUEUED: &str = "orrery_notifications_queued";
/// Engine events the notifier missed because it fell behind the event stream.
pub const METRIC_LAGGED: &str = "orrery_notifications_events_lagged_total";

/// The sled tree of the sinks' status and the last summary day.
pub const NOTIFICATIONS_TREE: &str = "notifications";

/// Registers the notification metrics' descriptions.
pub fn describe() {
    metrics::describe_counter!(
        METRIC_SENT,
        "Notifications delivered, by sink and event kind."
    );
    metrics::describe_counter!(
        METRIC_FAILED,
        "Notifications given up on after their last delivery attempt, by sink and event kind."
    );
    metrics::describe_counter!(
        METRIC_DROPPED,
        "Notifications dropped (the oldest) because the sink's queue was full, by sink and event kind."
    );
    metrics::describe_counter!(
        METRIC_RETRIES,
        "Notification delivery attempts after the first, by sink and event kind."
    );
    metrics::describe_counter!(
        METRIC_DEDUPLICATED,
        "Notifications not sent because the same event was sent within the dedup window, by sink and event kind."
    );
    metrics::describe_gauge!(METRIC_QUEUED, "Notifications waiting in each sink's queue.");
    metrics::describe_counter!(
        METRIC_LAGGED,
        "Engine events the notifier missed because it fell behind the event stream."
    );
}

/// One sink as `orrery status`, `orrery notify` and `GET /api/notifications` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStatus {
    pub name: String,
    pub kind: SinkKind,
    pub events: Vec<EventKind>,
    /// Waiting now (0 when the engine is stopped).
    #[serde(default)]
    pub queued: usize,
    pub sent: u64,
    pub failed: u64,
    pub retries: u64,
    pub dropped: u64,
    pub deduplicated: u64,
    pub last_delivery_ms: Option<Millis>,
    pub last_failure_ms: Option<Millis>,
    /// The last failure's reason (never a URL or a token).
    pub last_error: Option<String>,
}
impl Record for SinkStatus {}

impl SinkStatus {
    fn new<'a>(
        name: &str,
        kind: SinkKind,
        events: impl IntoIterator<Item = &'a EventKind>,
    ) -> Self {
        Self {
            name: name.to_string(),
            kind,
            events: events.into_iter().copied().collect(),
            queued: 0,
            sent: 0,
            failed: 0,
            retries: 0,
            dropped: 0,
            deduplicated: 0,
            last_delivery_ms: None,
            last_failure_ms: None,
            last_error: None,
        }
    }
}

fn status_key(sink: &str) -> String {
    format!("sink/{sink}")
}

/// Every configured sink's recorded status (a sink never used yet shows zeros).
pub fn status(config: &Config, store: &Store) -> Vec<SinkStatus> {
    let tree = store.tree::<SinkStatus>(NOTIFICATIONS_TREE).ok();
    config
        .notifications
        .sinks
        .iter()
        .map(|s| {
            let recorded = tree
                .as_ref()
                .and_then(|t| t.get(&status_key(&s.name)).ok().flatten());
            let mut st = recorded.unwrap_or_else(|| SinkStatus::new(&s.name, s.kind, &s.events));
            st.kind = s.kind;
            st.events = s.events.clone();
            st.queued = 0;
            st
        })
        .collect()
}

/// The running engine's sinks: live from the notifier, else as recorded.
pub async fn live_status(engine: &EngineHandle) -> Vec<SinkStatus> {
    if engine.config.notifications.sinks.is_empty() {
        return Vec::new();
    }
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        engine.notifier.send(GetSinks),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => status(&engine.config, &engine.store),
    }
}

fn fmt_time(ms: Option<Millis>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

/// The `notifications:` section of `orrery status` and the body of `orrery notify`.
pub fn render(sinks: &[SinkStatus], o: &mut String) {
    use std::fmt::Write;
    if sinks.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nnotifications:");
    for s in sinks {
        let _ = writeln!(
            o,
            "  {:<16} {:<9} sent {}, failed {}, retries {}, dropped {}, deduplicated {}, queued {}; last delivery {}",
            s.name,
            s.kind.label(),
            s.sent,
            s.failed,
            s.retries,
            s.dropped,
            s.deduplicated,
            s.queued,
            fmt_time(s.last_delivery_ms)
        );
        if let Some(e) = &s.last_error {
            let _ = writeln!(o, "    last failure {}: {e}", fmt_time(s.last_failure_ms));
        }
    }
}

/// `GET /api/notifications` and `POST /api/notifications/test`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/notifications", web::get().to(list_route))
        .route("/api/notifications/test", web::post().to(test_route));
}

/// Body of `POST /api/notifications/test`: the sink to test, every sink when absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default)]
    pub sink: Option<String>,
}

/// Answer of `GET /api/notifications`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinksReport {
    pub sinks: Vec<SinkStatus>,
}

/// Answer of `POST /api/notifications/test`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestReport {
    pub outcomes: Vec<TestOutcome>,
}

async fn list_route(engine: web::Data<EngineHandle>) -> HttpResponse {
    HttpResponse::Ok().json(SinksReport {
        sinks: live_status(&engine).await,
    })
}

async fn test_route(engine: web::Data<EngineHandle>, body: web::Bytes) -> HttpResponse {
    let request: TestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("expected {{\"sink\": \"NAME\"}} or an empty body: {e}"),
                )
            }
        }
    };
    if engine.config.notifications.sinks.is_empty() {
        return error_response(
            StatusCode::NOT_FOUND,
            "no_sinks",
            NotifyError::NoSinks.to_string(),
        );
    }
    // Each sink: at most `max_attempts` requests with their deadlines and backoff between.
    let n = &engine.config.notifications;
    let bound = (n.timeout + n.backoff_max) * n.max_attempts * n.sinks.len() as u32;
    let sent =
        tokio::time::timeout(bound, engine.notifier.send(SendTest { sink: request.sink })).await;
    match sent {
        Ok(Ok(Ok(outcomes))) => HttpResponse::Ok().json(TestReport { outcomes }),
        Ok(Ok(Err(e @ NotifyError::UnknownSink { .. }))) => {
            error_response(StatusCode::NOT_FOUND, "unknown_sink", e.to_string())
        }
        Ok(Ok(Err(e))) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "notify_failed",
            e.to_string(),
        ),
        Ok(Err(e)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "notifier_unavailable",
            format!("the notifier is not running ({e}); see `orrery tree`"),
        ),
        Err(_) => error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the test did not finish within {bound:?}"),
        ),
    }
}
