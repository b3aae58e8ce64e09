//! `GET /api/events`: the engine's [`EngineEvent`]s as Server-Sent Events, one JSON object
//! a `data:` line (`{"kind":"decision"|"order"|"fill"|"mode"|"unreadable",...}`), for the
//! dashboard and any other client.
//!
//! The stream opens with `{"kind":"hello"}`, sends `{"kind":"heartbeat"}` every
//! `[dashboard] heartbeat_interval` while nothing else is sent, and `{"kind":"lagged",
//! "missed":n}` when this client fell more than [`crate::events::CAPACITY`] events behind
//! (the page then reloads what it shows from the API). Authorization is the API's: the
//! `Authorization` header with the read token, which the page sends through a streaming
//! `fetch` (so no token ever sits in a URL or an access log).
//!
//! Owns: the event's JSON shape on the wire. Never: buffers events for a client that does
//! not read (the broadcast drops the oldest for it), or sends a decision's prompt and raw
//! answers (the journal route has those; an event carries the summary the log line has).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::EngineHandle;
use crate::events::EngineEvent;
use crate::status::DecisionSummary;

/// One message of the stream.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The stream is open.
    Hello,
    /// Nothing happened for a heartbeat interval.
    Heartbeat,
    /// This client missed `missed` events; reload what is shown.
    Lagged { missed: u64 },
    /// A journaled decision (without prompt and raw answers).
    Decision {
        id: String,
        #[serde(flatten)]
        decision: Box<DecisionSummary>,
    },
    /// An order changed status or filled size.
    Order {
        order: serde_json::Value,
        origin: String,
        updated_ms: i64,
    },
    /// A fill was recorded.
    Fill {
        venue: String,
        fill: serde_json::Value,
    },
    /// The trading mode changed.
    Mode { mode: serde_json::Value },
    /// A circuit breaker changed state (a model deployment's or a venue endpoint's).
    Breaker {
        target: String,
        tree: String,
        from: serde_json::Value,
        record: serde_json::Value,
    },
    /// A supervised actor failed; its supervisor restarts it.
    ChildFailed {
        path: String,
        record: serde_json::Value,
    },
    /// A record this binary cannot decode was written.
    Unreadable {
        tree: String,
        key: String,
        error: String,
    },
}

impl LiveMessage {
    /// The message an engine event becomes.
    pub fn of(event: EngineEvent) -> Self {
        match event {
            EngineEvent::Decision(d) => {
                let id = d.id.clone();
                LiveMessage::Decision {
                    id,
                    decision: Box::new(DecisionSummary::from((*d).clone())),
                }
            }
            EngineEvent::Order {
                report,
                origin,
                updated_ms,
            } => LiveMessage::Order {
                order: crate::json::to_json_value(&report),
                origin,
                updated_ms,
            },
            EngineEvent::Fill(f) => LiveMessage::Fill {
                venue: f.venue,
                fill: crate::json::to_json_value(&f.fill),
            },
            EngineEvent::Mode(m) => LiveMessage::Mode {
                mode: crate::json::to_json_value(&m),
            },
            EngineEvent::Breaker {
                target,
                tree,
                from,
                record,
            } => LiveMessage::Breaker {
                target,
                tree: tree.to_string(),
                from: crate::json::to_json_value(&from),
                record: crate::json::to_json_value(&record),
            },
            EngineEvent::ChildFailed { path, record } => LiveMessage::ChildFailed {
                path,
                record: crate::json::to_json_value(&record),
            },
            EngineEvent::Unreadable { tree, key, error } => LiveMessage::Unreadable {
                tree: tree.to_string(),
                key,
                error,
            },
        }
    }

    /// This message as one SSE frame: `data: <json>\n\n`.
    pub fn frame(&self) -> web::Bytes {
        // Every field is a string, number or a value already turned into JSON: encoding
        // cannot fail; if it ever did, the client gets a comment line, not a broken frame.
        match serde_json::to_string(self) {
            Ok(json) => web::Bytes::from(format!("data: {json}\n\n")),
            Err(e) => web::Bytes::from(format!(": cannot encode an event: {e}\n\n")),
        }
    }
}

struct State {
    rx: tokio::sync::broadcast::Receiver<EngineEvent>,
    heartbeat: Duration,
    hello: bool,
}

pub(super) async fn route(engine: web::Data<EngineHandle>) -> HttpResponse {
    let state = State {
        rx: engine.events.subscribe(),
        heartbeat: engine.config.dashboard.heartbeat_interval,
        hello: true,
    };
    let frames = futures::stream::unfold(state, |mut s| async move {
        if s.hello {
            s.hello = false;
            return Some((Ok(LiveMessage::Hello.frame()), s));
        }
        let message = match tokio::time::timeout(s.heartbeat, s.rx.recv()).await {
            Err(_) => LiveMessage::Heartbeat,
            Ok(Ok(event)) => LiveMessage::of(event),
            Ok(Err(RecvError::Lagged(missed))) => LiveMessage::Lagged { missed },
            // The engine is shutting down: the stream ends and the page reconnects.
            Ok(Err(RecvError::Closed)) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(message.frame()), s))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Tells a reverse proxy (nginx) not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_data_line_of_json_with_its_kind() {
        let f = LiveMessage::Lagged { missed: 3 }.frame();
        assert_eq!(&f[..], b"data: {\"kind\":\"lagged\",\"missed\":3}\n\n");
        let f = LiveMessage::Heartbeat.frame();
        assert_eq!(&f[..], b"data: {\"kind\":\"heartbeat\"}\n\n");
    }
}
