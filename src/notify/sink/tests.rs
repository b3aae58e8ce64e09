//! Delivery against loopback receivers that answer as Slack, Discord, Telegram and a
//! generic webhook do (`orrery_actors::testkit`, whose docs cite the services' own).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orrery_actors::supervisor::Backoff;
use orrery_actors::testkit::{
    discord_receiver, refused_addr, slack_receiver, telegram_receiver, webhook_receiver,
    MockServer, Reply, DISCORD_CONTENT_MAX,
};
use rand::SeedableRng;
use serde_json::json;

use super::*;
use crate::notify::config::{ChatId, EventKind, ResolvedSink, Secret, SinkKind, Target};

fn sink(kind: SinkKind, url: &str) -> ResolvedSink {
    ResolvedSink {
        name: format!("{}-sink", kind.label()),
        kind,
        target: Target::Url {
            url: Secret::new(url),
            bearer: None,
        },
        events: BTreeSet::from([EventKind::Fill]),
        min_interval: Duration::ZERO,
    }
}

fn notice(text: &str) -> Notice {
    Notice::new(
        EventKind::Fill,
        "fill/paper/1",
        "Fill",
        text,
        1_764_720_000_000,
    )
}

fn plan(max_attempts: u32, timeout: Duration) -> RetryPlan {
    RetryPlan {
        max_attempts,
        timeout,
        backoff: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            multiplier: 2.0,
            jitter: 0.2,
            seed: Some(7),
        },
        max_wait: Duration::from_millis(50),
    }
}

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(7)
}

async fn send(s: &ResolvedSink, n: &Notice, p: &RetryPlan) -> Delivery {
    let client = reqwest::Client::new();
    deliver(&client, s, n, p, &mut rng()).await
}

#[actix_rt::test]
async fn slack_gets_a_text_payload_and_answers_ok() {
    let server = slack_receiver();
    let s = sink(
        SinkKind::Slack,
        &format!("{}/services/T0/B0/XXX", server.url()),
    );
    let d = send(
        &s,
        &notice("paper BTC buy 0.01 @ 60000"),
        &plan(1, Duration::from_secs(5)),
    )
    .await;
    assert_eq!(
        d,
        Delivery {
            attempts: 1,
            error: None
        }
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].route(), "/services/T0/B0/XXX");
    assert_eq!(
        reqs[0].body_json(),
        Some(json!({"text": "[orrery] Fill: paper BTC buy 0.01 @ 60000"}))
    );
}

#[actix_rt::test]
async fn discord_content_is_cut_to_2000_characters_and_mentions_are_off() {
    let server = discord_receiver();
    let s = sink(
        SinkKind::Discord,
        &format!("{}/api/webhooks/1/tok", server.url()),
    );
    // Multi-unit characters near the cut: the limit counts UTF-16 units.
    let long = "é🚀".repeat(1500);
    let d = send(&s, &notice(&long), &plan(1, Duration::from_secs(5))).await;
    assert_eq!(d.error, None, "the receiver refused the payload");
    let body = server.requests()[0].body_json().unwrap();
    let content = body["content"].as_str().unwrap();
    assert!(content.encode_utf16().count() <= DISCORD_CONTENT_MAX);
    assert!(content.encode_utf16().count() >= DISCORD_CONTENT_MAX - 2);
    assert!(content.starts_with("[orrery] Fill: é🚀"));
    assert!(content.ends_with('…'));
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
}

#[actix_rt::test]
async fn the_discord_receiver_refuses_an_uncut_message() {
    // The receiver itself enforces the limit, so the test above proves the cut.
    let server = discord_receiver();
    let resp = reqwest::Client::new()
        .post(server.url())
        .json(&json!({"content": "x".repeat(2001)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[actix_rt::test]
async fn telegram_send_message_goes_to_the_bot_path_with_chat_id_and_text() {
    let server = telegram_receiver("123:ABC", json!(-1001234));
    let s = ResolvedSink {
        name: "tg".into(),
        kind: SinkKind::Telegram,
        target: Target::Telegram {
            api_base: server.url(),
            token: Secret::new("123:ABC"),
            chat_id: ChatId::Id(-1001234),
        },
        events: BTreeSet::from([EventKind::Fill]),
        min_interval: Duration::ZERO,
    };
    let d = send(&s, &notice("a fill"), &plan(1, Duration::from_secs(5))).await;
    assert_eq!(d.error, None);
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.route(), "/bot123:ABC/sendMessage");
    assert_eq!(
        r.body_json(),
        Some(json!({"chat_id": -1001234, "text": "[orrery] Fill: a fill"}))
    );
}

#[actix_rt::test]
async fn a_wrong_telegram_token_is_not_retried_and_the_error_holds_no_token() {
    let server = telegram_receiver("123:RIGHT", json!(5));
    let s = ResolvedSink {
        name: "tg".into(),
        kind: SinkKind::Telegram,
        target: Target::Telegram {
            api_base: server.url(),
            token: Secret::new("999:WRONGSECRET"),
            chat_id: ChatId::Id(5),
        },
        events: BTreeSet::from([EventKind::Fill]),
        min_interval: Duration::ZERO,
    };
    let d = send(&s, &notice("x"), &plan(5, Duration::from_secs(5))).await;
    assert_eq!(d.attempts, 1, "a 401 is not worth a retry");
    let e = d.error.unwrap();
    assert!(
        matches!(e, DeliveryError::Status { status: 401, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("Unauthorized"), "{text}");
    assert!(!text.contains("WRONGSECRET"), "{text}");
}

#[actix_rt::test]
async fn the_generic_webhook_gets_the_whole_notice_and_the_bearer_token() {
    let server = webhook_receiver();
    let mut s = sink(SinkKind::Webhook, &format!("{}/hook", server.url()));
    s.target = Target::Url {
        url: Secret::new(format!("{}/hook", server.url())),
        bearer: Some(Secret::new("s3cret")),
    };
    let n = notice("paper BTC").with_fields(json!({"venue": "paper"}));
    let d = send(&s, &n, &plan(1, Duration::from_secs(5))).await;
    assert_eq!(d.error, None);
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
    let b = r.body_json().unwrap();
    assert_eq!(b["source"], "orrery");
    assert_eq!(b["kind"], "fill");
    assert_eq!(b["title"], "Fill");
    assert_eq!(b["text"], "paper BTC");
    assert_eq!(b["key"], "fill/paper/1");
    assert_eq!(b["time_ms"], 1_764_720_000_000i64);
    assert_eq!(b["time"], "2025-12-03T00:00:00.000Z");
    assert_eq!(b["fields"]["venue"], "paper");
}

#[actix_rt::test]
async fn server_errors_are_retried_with_backoff_until_delivered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let server = MockServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::raw(503, "text/plain", "busy")
        } else {
            Reply::raw(200, "text/plain", "ok")
        }
    });
    let s = sink(SinkKind::Slack, &server.url());
    let d = send(&s, &notice("x"), &plan(5, Duration::from_secs(5))).await;
    assert_eq!(
        d,
        Delivery {
            attempts: 3,
            error: None
        }
    );
    assert_eq!(server.requests().len(), 3);
}

#[actix_rt::test]
async fn a_429_waits_for_the_receivers_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let server = MockServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            // Discord's rate-limit answer (seconds in the body).
            Reply::json(
                429,
                &json!({"message": "You are being rate limited.", "retry_after": 0.01, "global": false}),
            )
        } else {
            Reply::raw(204, "text/plain", "")
        }
    });
    let s = sink(SinkKind::Discord, &server.url());
    let d = send(&s, &notice("x"), &plan(3, Duration::from_secs(5))).await;
    assert_eq!(
        d,
        Delivery {
            attempts: 2,
            error: None
        }
    );
}

#[actix_rt::test]
async fn a_hanging_receiver_times_out_on_every_attempt() {
    let server = MockServer::start(|_| Reply::Hang);
    let s = sink(SinkKind::Webhook, &server.url());
    let d = send(&s, &notice("x"), &plan(2, Duration::from_millis(200))).await;
    assert_eq!(d.attempts, 2);
    assert_eq!(
        d.error,
        Some(DeliveryError::Timeout(Duration::from_millis(200)))
    );
    assert_eq!(server.requests().len(), 2);
}

#[actix_rt::test]
async fn a_receiver_that_is_down_fails_without_naming_its_url() {
    let addr = refused_addr();
    let url = format!("http://{addr}/services/SECRETPATH");
    let s = sink(SinkKind::Slack, &url);
    let d = send(&s, &notice("x"), &plan(2, Duration::from_secs(2))).await;
    assert_eq!(d.attempts, 2);
    let e = d.error.unwrap();
    assert!(matches!(e, DeliveryError::Transport(_)), "{e:?}");
    assert!(
        e.to_string().to_lowercase().contains("refused"),
        "the cause is told: {e}"
    );
    assert!(!e.to_string().contains("SECRETPATH"), "{e}");
    assert!(!format!("{e:?}").contains("SECRETPATH"), "{e:?}");
}

#[test]
fn truncation_keeps_short_text_and_cuts_long_text_on_a_character() {
    assert_eq!(truncate_utf16("short", 10), "short");
    let cut = truncate_utf16(&"🚀".repeat(10), 5);
    // Each rocket is 2 units: two fit before the ellipsis.
    assert_eq!(cut, "🚀🚀…");
}

#[test]
fn which_failures_are_retried() {
    let status = |s| DeliveryError::Status {
        status: s,
        detail: String::new(),
        retry_after: None,
    };
    for s in [408, 429, 500, 502, 503] {
        assert!(status(s).retriable(), "{s}");
    }
    for s in [400, 401, 403, 404, 413] {
        assert!(!status(s).retriable(), "{s}");
    }
    assert!(DeliveryError::Timeout(Duration::from_secs(1)).retriable());
    assert!(!DeliveryError::Refused("ok false".into()).retriable());
}
