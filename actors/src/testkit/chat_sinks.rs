//! Loopback receivers that answer as the chat services a notification sink posts to, and
//! refuse what the real service refuses, so a test that passes against them sent the
//! payload the service documents.
//!
//! Sources (the services' own documentation):
//! - Slack incoming webhooks, <https://api.slack.com/messaging/webhooks>: `POST` a JSON
//!   body with a `text` field; success is HTTP 200 with the plain-text body `ok`; a body
//!   that is not JSON is `400 invalid_payload`, one without text `400 no_text`.
//! - Discord execute webhook,
//!   <https://discord.com/developers/docs/resources/webhook#execute-webhook>: `POST` JSON
//!   with `content` (up to 2000 characters); success without `?wait=true` is
//!   `204 No Content`; a content over the limit is `400` with
//!   `{"message": "Invalid Form Body", "code": 50035, "errors": {...}}`.
//! - Telegram Bot API, <https://core.telegram.org/bots/api#making-requests> and
//!   <https://core.telegram.org/bots/api#sendmessage>: `POST /bot<token>/sendMessage`
//!   with `chat_id` and `text` (1-4096 characters); every answer is JSON with `ok`; success
//!   is `{"ok": true, "result": <Message>}`, failure `{"ok": false, "error_code",
//!   "description"}` (a wrong token is `401 Unauthorized`, an empty text
//!   `400 Bad Request: message text is empty`).

use super::http_mock::{MockServer, RecordedRequest, Reply};
use serde_json::json;

/// Discord's content limit (characters, counted as UTF-16 code units).
pub const DISCORD_CONTENT_MAX: usize = 2000;
/// Telegram's text limit.
pub const TELEGRAM_TEXT_MAX: usize = 4096;

fn is_json_post(r: &RecordedRequest) -> bool {
    r.method == "POST"
        && r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
}

/// A Slack incoming webhook at any path.
pub fn slack_receiver() -> MockServer {
    MockServer::start(|r| {
        let Some(body) = r.body_json().filter(|_| is_json_post(r)) else {
            return Reply::raw(400, "text/plain", "invalid_payload");
        };
        match body.get("text").and_then(|t| t.as_str()) {
            Some(t) if !t.trim().is_empty() => Reply::raw(200, "text/html", "ok"),
            _ => Reply::raw(400, "text/plain", "no_text"),
        }
    })
}

/// A Discord webhook at any path.
pub fn discord_receiver() -> MockServer {
    MockServer::start(|r| {
        let invalid = |field: &str, msg: &str| {
            Reply::json(
                400,
                &json!({
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {field: {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": msg}]}}
                }),
            )
        };
        let Some(body) = r.body_json().filter(|_| is_json_post(r)) else {
            return Reply::json(
                400,
                &json!({"message": "Cannot send an empty message", "code": 50006}),
            );
        };
        match body.get("content").and_then(|t| t.as_str()) {
            Some(c) if c.encode_utf16().count() > DISCORD_CONTENT_MAX => {
                invalid("content", "Must be 2000 or fewer in length.")
            }
            Some(c) if !c.trim().is_empty() => Reply::raw(204, "text/plain", ""),
            _ => Reply::json(
                400,
                &json!({"message": "Cannot send an empty message", "code": 50006}),
            ),
        }
    })
}

/// A Telegram Bot API server for the bot `token`, taking messages to `chat_id` only.
pub fn telegram_receiver(token: &str, chat_id: serde_json::Value) -> MockServer {
    let route = format!("/bot{token}/sendMessage");
    MockServer::start(move |r| {
        if !r.route().starts_with("/bot") {
            return Reply::json(
                404,
                &json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            );
        }
        if r.route() != route {
            return Reply::json(
                401,
                &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        let Some(body) = r.body_json().filter(|_| is_json_post(r)) else {
            return Reply::json(
                400,
                &json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}),
            );
        };
        if body.get("chat_id") != Some(&chat_id) {
            return Reply::json(
                400,
                &json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            );
        }
        let text = body.get("text").and_then(|t| t.as_str()).unwrap_or("");
        if text.trim().is_empty() {
            return Reply::json(
                400,
                &json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}),
            );
        }
        if text.chars().count() > TELEGRAM_TEXT_MAX {
            return Reply::json(
                400,
                &json!({"ok": false, "error_code": 400, "description": "Bad Request: message is too long"}),
            );
        }
        Reply::json(
            200,
            &json!({
                "ok": true,
                "result": {
                    "message_id": 42,
                    "from": {"id": 987654321, "is_bot": true, "first_name": "Orrery", "username": "orrery_bot"},
                    "chat": {"id": chat_id, "type": "private"},
                    "date": 1764720000,
                    "text": text
                }
            }),
        )
    })
}

/// A generic JSON webhook: 200 for any JSON body, 400 otherwise.
pub fn webhook_receiver() -> MockServer {
    MockServer::start(|r| match r.body_json().filter(|_| is_json_post(r)) {
        Some(_) => Reply::json(200, &json!({"received": true})),
        None => Reply::raw(400, "text/plain", "expected a JSON body"),
    })
}
