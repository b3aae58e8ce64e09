//! Notifications end to end (issue #15.5): the real binary with sinks on loopback receivers
//! that check the payload shapes as Slack, Discord, Telegram and a generic webhook document
//! them (`orrery_actors::testkit`), beside a receiver that hangs and one that is down, while
//! orders are placed and filled on paper; and an in-process engine whose breaker opens and
//! whose actor fails, each told once.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use orrery::{Config, Engine, EngineEvent};
use orrery_actors::clock::system_clock;
use orrery_actors::resilience::config::BreakerConfig;
use orrery_actors::resilience::{BreakerState, CircuitBreaker, ErrorClass};
use orrery_actors::store::trees;
use orrery_actors::testkit::{
    discord_receiver, refused_addr, slack_receiver, telegram_receiver, webhook_receiver,
    MockServer, RecordedRequest, Reply,
};
use serde_json::{json, Value};

const TG_TOKEN: &str = "4242:SECRET-bot-token";
const SLACK_PATH: &str = "/services/T000/B000/SECRETSLACKPATH";

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .requests()
        .iter()
        .filter_map(RecordedRequest::body_json)
        .collect()
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn log_of(dir: &Path) -> String {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

#[test]
fn sinks_get_their_payloads_while_a_hung_and_a_down_sink_leave_trading_alone() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let slack = slack_receiver();
    let discord = discord_receiver();
    let telegram = telegram_receiver(TG_TOKEN, json!(-100777));
    let hook = webhook_receiver();
    let hung = MockServer::start(|_| Reply::Hang);
    let down = refused_addr();
    let extra = format!(
        r#"
[notifications]
timeout = "300ms"
max_attempts = 3
backoff_initial = "20ms"
backoff_max = "100ms"
queue = 8

[[notifications.sinks]]
name = "ops-slack"
kind = "slack"
url_env = "T_SLACK_WEBHOOK_URL"
events = ["fill", "kill_switch"]

[[notifications.sinks]]
name = "ops-discord"
kind = "discord"
url_env = "T_DISCORD_WEBHOOK_URL"
events = ["fill", "kill_switch"]

[[notifications.sinks]]
name = "tg"
kind = "telegram"
token_env = "T_TELEGRAM_TOKEN"
chat_id = -100777
api_base = "{tg}"
events = ["kill_switch"]

[[notifications.sinks]]
name = "hook"
kind = "webhook"
url = "{hook}/orrery"
events = ["fill", "kill_switch", "mode"]

[[notifications.sinks]]
name = "hung"
kind = "slack"
url = "{hung}/hook"
events = ["fill"]

[[notifications.sinks]]
name = "down"
kind = "discord"
url = "http://{down}/hook"
events = ["fill"]
"#,
        tg = telegram.url(),
        hook = hook.url(),
        hung = hung.url(),
    );
    let config = test_config(dir.path(), port, &extra);
    let cfg = config.to_str().unwrap();
    let slack_url = format!("{}{SLACK_PATH}", slack.url());
    let discord_url = format!("{}/api/webhooks/1/SECRETDISCORD", discord.url());
    let env = [
        ("T_SLACK_WEBHOOK_URL", slack_url.as_str()),
        ("T_DISCORD_WEBHOOK_URL", discord_url.as_str()),
        ("T_TELEGRAM_TOKEN", TG_TOKEN),
    ];
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    wait_for(Duration::from_secs(60), "the engine to answer", || {
        http_get(port, "/api/status").filter(|(s, _)| *s == 200)
    });
    let tree = cli(&["tree", "--config", cfg, "--json"], &env);
    assert!(
        String::from_utf8_lossy(&tree.stdout).contains("engine/notifier"),
        "the notifier is in the tree: {}",
        String::from_utf8_lossy(&tree.stdout)
    );

    // Trading is unaffected by the hung and the down sink: every order is placed and
    // filled on paper while their deliveries time out and fail.
    for _ in 0..3 {
        let out = cli(
            &[
                "order", "--config", cfg, "--venue", "paper", "--symbol", "BTC", "--side", "buy",
                "--usd", "200", "--json",
            ],
            &env,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json_of(&out);
        assert_eq!(v["status"], "filled", "{v}");
    }

    // Slack: {"text": ...}; Discord: {"content": ..., "allowed_mentions": ...}; the
    // generic webhook: the whole notice. The receivers refuse any other shape.
    let fill_text = wait_for(Duration::from_secs(30), "a fill on slack", || {
        let got = slack.requests();
        got.iter().find_map(|r| {
            let t = r.body_json()?["text"].as_str()?.to_string();
            (r.route() == SLACK_PATH && t.starts_with("[orrery] Fill: paper BTC buy")).then_some(t)
        })
    });
    assert!(fill_text.contains(" @ "), "{fill_text}");
    wait_for(Duration::from_secs(30), "a fill on discord", || {
        bodies(&discord).into_iter().find(|b| {
            b["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("[orrery] Fill: paper BTC buy"))
                && b["allowed_mentions"] == json!({"parse": []})
        })
    });
    let fill = wait_for(Duration::from_secs(30), "a fill on the webhook", || {
        bodies(&hook).into_iter().find(|b| b["kind"] == "fill")
    });
    assert_eq!(fill["source"], "orrery");
    assert_eq!(fill["fields"]["venue"], "paper");
    assert_eq!(fill["fields"]["symbol"], "BTC");
    assert!(fill["fields"]["fill_id"].is_string(), "{fill}");
    assert!(hook.requests().iter().all(|r| r.route() == "/orrery"));

    // The kill switch: Telegram sendMessage to the bot's path with the chat id.
    let out = cli(
        &[
            "kill-switch",
            "--config",
            cfg,
            "--engage",
            "--reason",
            "notification drill",
            "--json",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tg = wait_for(
        Duration::from_secs(30),
        "the kill switch on telegram",
        || {
            telegram.requests().into_iter().find(|r| {
                r.body_json()
                    .and_then(|b| {
                        b["text"]
                            .as_str()
                            .map(|t| t.starts_with("[orrery] Kill switch engaged"))
                    })
                    .unwrap_or(false)
            })
        },
    );
    assert_eq!(tg.route(), format!("/bot{TG_TOKEN}/sendMessage"));
    let body = tg.body_json().unwrap();
    assert_eq!(body["chat_id"], json!(-100777));
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("notification drill"),
        "{body}"
    );
    wait_for(
        Duration::from_secs(30),
        "the kill switch on the webhook",
        || {
            bodies(&hook)
                .into_iter()
                .find(|b| b["kind"] == "kill_switch")
        },
    );
    let out = cli(
        &["kill-switch", "--config", cfg, "--release", "--json"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(Duration::from_secs(30), "the release on telegram", || {
        bodies(&telegram).into_iter().find(|b| {
            b["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[orrery] Kill switch released"))
        })
    });

    // Retries and failures are counted per sink; the hung sink's requests each timed out.
    let metrics = wait_for(
        Duration::from_secs(30),
        "retries and failures counted",
        || {
            let (_, m) = http_get(port, "/metrics")?;
            (metric_sum(&m, "orrery_notifications_retries_total", &["sink=\"hung\""]) >= 2.0
                && metric_sum(&m, "orrery_notifications_failed_total", &["sink=\"down\""]) >= 1.0
                && metric_sum(&m, "orrery_notifications_failed_total", &["sink=\"hung\""]) >= 1.0)
                .then_some(m)
        },
    );
    assert!(
        metric_sum(
            &metrics,
            "orrery_notifications_sent_total",
            &["sink=\"ops-slack\"", "kind=\"fill\""]
        ) >= 1.0
    );
    assert!(
        metric_sum(
            &metrics,
            "orrery_notifications_sent_total",
            &["sink=\"tg\"", "kind=\"kill_switch\""]
        ) >= 2.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_notifications_failed_total",
            &["sink=\"ops-slack\""]
        ),
        0.0
    );
    assert!(
        hung.requests().len() >= 2,
        "the hung receiver was asked again"
    );
    let (ok, out) = promtool_check(&metrics);
    assert!(ok, "promtool: {out}");

    // `orrery status` shows each sink: sent, failures, last delivery, the last error.
    let status = json_of(&cli(&["status", "--config", cfg, "--json"], &env));
    let sinks = status["notifications"]
        .as_array()
        .expect("notifications in status");
    let sink = |name: &str| sinks.iter().find(|s| s["name"] == name).unwrap().clone();
    assert!(sink("ops-slack")["sent"].as_u64().unwrap() >= 1);
    assert!(sink("ops-slack")["last_delivery_ms"].is_i64());
    let down_sink = sink("down");
    assert!(down_sink["failed"].as_u64().unwrap() >= 1, "{down_sink}");
    let err = down_sink["last_error"].as_str().unwrap();
    assert!(err.contains("cannot reach"), "{err}");
    let text = cli(&["status", "--config", cfg], &env);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("notifications:") && text.contains("ops-slack"),
        "{text}"
    );

    // `orrery notify test`: one sink, through the running engine.
    let before = telegram.requests().len();
    let out = cli(
        &["notify", "test", "--config", cfg, "--sink", "tg", "--json"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert_eq!(v["outcomes"][0]["sink"], "tg");
    assert_eq!(v["outcomes"][0]["delivered"], true);
    assert_eq!(telegram.requests().len(), before + 1);
    let last = telegram.requests().last().unwrap().body_json().unwrap();
    assert!(
        last["text"].as_str().unwrap().starts_with("[orrery] Test:"),
        "{last}"
    );
    // A sink that is down fails its test with exit 1; an unknown sink is named.
    let out = cli(&["notify", "test", "--config", cfg, "--sink", "down"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT delivered"));
    let out = cli(&["notify", "test", "--config", cfg, "--sink", "nope"], &env);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no notification sink named `nope`") && err.contains("ops-slack"),
        "{err}"
    );

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());

    // Stopped: `orrery notify test` sends from the CLI itself and records the outcome.
    let out = cli(
        &["notify", "test", "--config", cfg, "--sink", "ops-slack"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(slack
        .requests()
        .iter()
        .any(|r| r.body_json().is_some_and(|b| b["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[orrery] Test:")))));

    // Secrets never reach the log, the data dir or the CLI's output.
    let secrets = ["SECRET-bot-token", "SECRETSLACKPATH", "SECRETDISCORD"];
    assert!(
        !any_file_contains(dir.path(), &secrets),
        "a secret was written to disk"
    );
    let log = log_of(dir.path());
    assert!(
        log.contains("notification not delivered"),
        "one log line per failure"
    );
    for s in secrets {
        assert!(!log.contains(s));
    }
}

#[test]
fn a_bad_notification_config_names_the_key_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cases = [
        (
            "[[notifications.sinks]]\nname = \"s\"\nkind = \"slack\"\n",
            "notifications.sinks[0].url_env",
        ),
        (
            "[[notifications.sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\nevents = [\"fills\"]\n",
            "notifications.sinks[0].events",
        ),
        (
            "[[notifications.sinks]]\nname = \"t\"\nkind = \"telegram\"\ntoken_env = \"T_TOKEN\"\n",
            "notifications.sinks[0].chat_id",
        ),
        (
            "[notifications]\ndaily_summary = \"25:00\"\n",
            "notifications.daily_summary",
        ),
    ];
    for (extra, key) in cases {
        let config = test_config(dir.path(), port, extra);
        let out = cli(&["check-config", "--config", config.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{key} not named in: {err}");
    }
    // A secret variable that is not set stops `run` before anything starts.
    let config = test_config(
        dir.path(),
        port,
        "[[notifications.sinks]]\nname = \"s\"\nkind = \"discord\"\nurl_env = \"T_UNSET_DISCORD_URL\"\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap(), "--for", "5s"])
        .env_remove("ORRERY_CONFIG")
        .env_remove("T_UNSET_DISCORD_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notifications.sinks[0].url_env") && err.contains("T_UNSET_DISCORD_URL"),
        "{err}"
    );
    assert!(!data_dir(dir.path()).exists(), "nothing started");
}

#[test]
fn the_example_config_checks_with_its_secrets_and_names_the_missing_one() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/examples/notifications.toml"
    );
    let all = [
        (
            "ORRERY_SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/X",
        ),
        (
            "ORRERY_DISCORD_WEBHOOK_URL",
            "https://discord.com/api/webhooks/1/x",
        ),
        ("TELEGRAM_BOT_TOKEN", "1:x"),
    ];
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config", example])
        .env_remove("ORRERY_CONFIG")
        .envs(all)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config", example])
        .env_remove("ORRERY_CONFIG")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .envs(all[..2].iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notifications.sinks[2].token_env") && err.contains("TELEGRAM_BOT_TOKEN"),
        "{err}"
    );
}

/// An engine in this process: a real breaker on its store opens, and an actor panics
/// twice; each reaches the event stream as a typed event and the webhook once (the second
/// panic has the same key within the dedup window).
#[test]
fn a_breaker_that_opens_and_a_failed_actor_are_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook_receiver();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
            .unwrap();
    let extra = format!(
        "\n[[notifications.sinks]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/n\"\nevents = [\"breaker_open\", \"agent_failure\"]\n",
        hook.url()
    );
    let env = [
        (
            "ORRERY__ENGINE__DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
    ];
    let mut config = Config::load_str(
        &format!("{shipped}{extra}"),
        "config/default.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    config.agents.trading.clear();
    actix::System::new().block_on(async move {
        let engine = Engine::start(config).await.unwrap();
        let mut events = engine.events();
        eventually("the notifier running", || {
            node(&engine, "engine/notifier").state == orrery_actors::supervisor::NodeState::Running
        })
        .await;

        // A real breaker persisted in the engine's `venue_breakers` tree.
        let tree = engine.store.tree(trees::VENUE_BREAKERS).unwrap();
        let breaker = CircuitBreaker::new(
            "paper-test-endpoint",
            BreakerConfig {
                failure_count: 2,
                ..BreakerConfig::default()
            },
            system_clock(),
            Some(tree),
        );
        for _ in 0..2 {
            breaker.check().unwrap().failure(&ErrorClass::Unavailable);
        }
        assert_eq!(breaker.state(), BreakerState::Open);

        let signals = "engine/signals";
        assert!(
            engine.root.view().inject_panic(signals),
            "no running signal bus"
        );
        let mut saw = (false, false);
        while saw != (true, true) {
            let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("events within 30s")
                .unwrap();
            match e {
                EngineEvent::Breaker {
                    target,
                    record,
                    tree,
                    ..
                } if target == "paper-test-endpoint" => {
                    assert_eq!(record.state, BreakerState::Open);
                    assert_eq!(tree, trees::VENUE_BREAKERS);
                    saw.0 = true;
                }
                EngineEvent::ChildFailed { path, record } if path == signals => {
                    assert!(record.last_reason.unwrap().contains("injected panic"));
                    saw.1 = true;
                }
                _ => {}
            }
        }
        let hook = Arc::new(hook);
        let count = |kind: &str| bodies(&hook).iter().filter(|b| b["kind"] == kind).count();
        eventually("both on the webhook", || {
            count("breaker_open") == 1 && count("agent_failure") == 1
        })
        .await;
        let b = bodies(&hook);
        let opened = b.iter().find(|b| b["kind"] == "breaker_open").unwrap();
        assert_eq!(opened["fields"]["target"], "paper-test-endpoint");
        let failed = b.iter().find(|b| b["kind"] == "agent_failure").unwrap();
        assert_eq!(failed["fields"]["path"], signals);

        // The same failure again within the dedup window: counted, not sent.
        eventually("the signal bus running again", || {
            node(&engine, signals).state == orrery_actors::supervisor::NodeState::Running
        })
        .await;
        assert!(engine.root.view().inject_panic(signals));
        let deduplicated = || {
            let sinks = orrery::notify::status(&engine.config, &engine.store);
            sinks[0].deduplicated
        };
        eventually("the repeat deduplicated", || deduplicated() == 1).await;
        assert_eq!(count("agent_failure"), 1);
        engine.shutdown().await;
    });
}
