//! Swarm mode end to end (issue 11, items 3 and 4): the real `orrery` binary on the paper
//! venue, each swarm member an OpenAI-compatible deployment served by its own loopback
//! server speaking the chat-completions wire format, answering BUY, BUY, SELL, never
//! (hung) or garbage. The journal is read from sled once the engine has stopped.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use orrery_actors::agents::{Abstention, DecisionJournal, DecisionMode, DecisionRecord};
use orrery_actors::store::Store;
use orrery_actors::testkit::{MockServer, Reply};
use serde_json::Value;

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test-swarm");

fn answering(content: &'static str) -> MockServer {
    MockServer::start(move |_| Reply::openai_chat_completion(content))
}

const BUY: &str = r#"{"action":"BUY","confidence":0.8,"reason":"higher lows, volume rising"}"#;
const BUY_TOO: &str = r#"{"action":"BUY","confidence":0.7,"reason":"breakout over resistance"}"#;
const SELL: &str = r#"{"action":"SELL","confidence":0.9,"reason":"funding overheated"}"#;
const NOTHING: &str = r#"{"action":"NOTHING","confidence":0.6,"reason":"no edge"}"#;
const GARBAGE: &str = "I am not sure what the market will do today.";
const REVIEW: &str = "Two members see an uptrend, one sees overheated funding; one timed out and one answered off-format.";

/// One `[models.<name>]` with one OpenAI deployment at `server`.
fn member_model(name: &str, server: &MockServer) -> String {
    format!(
        r#"
[models.{name}]
[[models.{name}.deployments]]
id = "{name}-dep"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
timeout = "5s"
"#,
        server.url()
    )
}

/// The shipped config with a private data dir and port, its agent replaced by `agents`
/// (each trading BTC only, every 300 ms), and `models` added.
fn swarm_config(
    dir: &std::path::Path,
    port: u16,
    models: &str,
    agents: &str,
) -> std::path::PathBuf {
    let path = test_config(dir, port, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text
        .find("[[agents.trading]]")
        .expect("the shipped config ends with its trading agent");
    let text = format!("{}\n{models}\n{agents}", &text[..cut]);
    std::fs::write(&path, text).unwrap();
    path
}

fn agent(name: &str, members: &[&str], quorum: &str, extra: &str) -> String {
    let members: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    format!(
        r#"
[[agents.trading]]
name = "{name}"
venue = "paper"
symbols = ["BTC"]
timeframe = "1m"
lookback = 30
interval = "300ms"
initial_delay = "300ms"
mode = "swarm"
members = [{}]
quorum = {quorum}
member_timeout = "500ms"
decision_timeout = "5s"
min_confidence = 0.6
position_pct = 10
leverage = 2
{extra}
"#,
        members.join(", ")
    )
}

fn status(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/api/status")?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn stop(mut engine: std::process::Child) {
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}

/// Every journaled decision, oldest first (the engine has stopped).
fn journal(dir: &std::path::Path) -> Vec<DecisionRecord> {
    let store = Store::open(data_dir(dir)).unwrap();
    let mut all = DecisionJournal::open(&store)
        .unwrap()
        .recent(100_000)
        .unwrap();
    all.reverse();
    all
}

fn engine_log(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            text += &std::fs::read_to_string(path).unwrap();
        }
    }
    text
}

#[test]
fn a_met_quorum_trades_and_the_journal_shows_every_member_the_cut_hang_and_the_review() {
    let (buy_a, buy_b, sell) = (answering(BUY), answering(BUY_TOO), answering(SELL));
    let hung = MockServer::start(|_| Reply::Hang);
    let garbage = answering(GARBAGE);
    let reviewer = answering(REVIEW);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let models = [
        member_model("buy-a", &buy_a),
        member_model("buy-b", &buy_b),
        member_model("sell", &sell),
        member_model("hung", &hung),
        member_model("garbage", &garbage),
        member_model("reviewer", &reviewer),
    ]
    .concat();
    // 5 members, a count quorum of 2: BUY (2 votes) has it, SELL (1) has not.
    let agents = agent(
        "swarm",
        &["buy-a", "buy-b", "sell", "hung", "garbage"],
        "2",
        "reviewer = \"reviewer\"",
    );
    let config = swarm_config(dir.path(), port, &models, &agents);
    let engine = spawn_engine(&config, dir.path(), &[], &[KEY]);

    let report = wait_for(
        Duration::from_secs(60),
        "a swarm decision that entered a long",
        || {
            let s = status(port)?;
            s["decisions"]
                .as_array()?
                .iter()
                .any(|d| d["outcome"] == "enter_long")
                .then_some(s)
        },
    );
    // The first entry (decisions are newest first): later ones may find the hung
    // deployment cooling down (an `error` abstention rather than a `timeout`).
    let decision = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|d| d["outcome"] == "enter_long")
        .unwrap();
    assert_eq!(decision["action"], "BUY", "{decision}");
    assert_eq!(
        decision["votes"], "BUY:2 SELL:1 abstain:2(timeout,unparseable)",
        "{decision}"
    );
    // Mean of the agreeing members' confidences (0.8, 0.7).
    assert!(
        (decision["confidence"].as_f64().unwrap() - 0.75).abs() < 1e-9,
        "{decision}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    for vote in ["buy", "sell", "timeout", "unparseable"] {
        assert!(
            metric_sum(
                &metrics,
                "orrery_swarm_votes_total",
                &["agent=\"swarm\"", &format!("vote=\"{vote}\"")]
            ) >= 1.0,
            "{vote} votes counted:\n{metrics}"
        );
    }
    assert!(
        metric_sum(
            &metrics,
            "orrery_swarm_verdicts_total",
            &["agent=\"swarm\"", "verdict=\"BUY\"", "reason=\"quorum\""]
        ) >= 1.0
    );
    let filled = report["recent_orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["status"] == "filled" && o["symbol"] == "BTC");
    assert!(filled, "the swarm's BUY filled on paper: {report}");
    stop(engine);

    let records = journal(dir.path());
    let entered = records
        .iter()
        .find(|r| r.outcome == "enter_long")
        .expect("the entry is journaled");
    assert_eq!(entered.mode, DecisionMode::Swarm);
    assert_eq!(entered.quorum.as_deref(), Some("2"));
    assert_eq!(entered.model, "buy-a,buy-b,sell,hung,garbage");
    assert!(!entered.orders.is_empty(), "{entered:?}");
    assert!(
        entered
            .reason
            .as_deref()
            .unwrap()
            .starts_with("quorum: BUY 2 of 5"),
        "{entered:?}"
    );
    let member = |name: &str| {
        entered
            .members
            .iter()
            .find(|m| m.member == name)
            .unwrap_or_else(|| panic!("member {name} journaled: {:?}", entered.members))
    };
    assert_eq!(entered.members.len(), 5);
    let a = member("buy-a");
    assert_eq!(
        (a.verdict.as_deref(), a.confidence, a.abstention),
        (Some("BUY"), Some(0.8), None)
    );
    assert_eq!(a.deployment.as_deref(), Some("buy-a-dep"));
    assert_eq!(a.raw_answer.as_deref(), Some(BUY));
    assert_eq!((a.prompt_tokens, a.completion_tokens), (412, 19));
    assert_eq!(member("sell").verdict.as_deref(), Some("SELL"));
    // The hung member was cut at member_timeout and journaled as a timeout (never waited
    // for): the whole decision stayed far below the 5 s decision deadline.
    let hang = member("hung");
    assert_eq!(hang.abstention, Some(Abstention::Timeout), "{hang:?}");
    assert_eq!(hang.latency_ms, Some(500), "{hang:?}");
    assert!(entered.latency_ms.unwrap() < 5_000, "{entered:?}");
    let g = member("garbage");
    assert_eq!(g.abstention, Some(Abstention::Unparseable), "{g:?}");
    assert_eq!(g.raw_answer.as_deref(), Some(GARBAGE));
    assert!(g.error.is_some());
    // The reviewer saw every member's answer and its summary is journaled.
    assert_eq!(entered.review.as_deref(), Some(REVIEW), "{entered:?}");
    let asked = reviewer.requests();
    let prompt = asked[0].body_json().unwrap()["messages"].to_string();
    for expected in [
        "buy-a: BUY, confidence 0.80",
        "sell: SELL, confidence 0.90",
        "hung: abstained (timeout)",
        "garbage: abstained (unparseable)",
        "Verdict: BUY",
    ] {
        assert!(prompt.contains(expected), "{expected} in {prompt}");
    }
    // The decision's log line shows the tally.
    let log = engine_log(dir.path());
    assert!(
        log.lines().any(|l| l.contains(" decision")
            && l.contains("agent=swarm")
            && l.contains("votes=\"BUY:2 SELL:1 abstain:2(timeout,unparseable)\"")),
        "{log}"
    );
}

#[test]
fn without_quorum_nothing_trades_and_all_abstaining_is_nothing() {
    let (buy_a, buy_b, sell) = (answering(BUY), answering(BUY_TOO), answering(SELL));
    let hung = MockServer::start(|_| Reply::Hang);
    let garbage = answering(GARBAGE);
    let nothing = answering(NOTHING);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let models = [
        member_model("buy-a", &buy_a),
        member_model("buy-b", &buy_b),
        member_model("sell", &sell),
        member_model("hung", &hung),
        member_model("garbage", &garbage),
        member_model("nothing", &nothing),
    ]
    .concat();
    // A majority of 5 is 3 and BUY has 2. The second agent's members all abstain; its
    // failures must not degrade the engine in this test (min_answers out of reach).
    let agents = agent(
        "split",
        &["buy-a", "buy-b", "sell", "hung", "garbage"],
        "\"majority\"",
        "",
    ) + &agent(
        "silent",
        &["hung", "garbage", "nothing"],
        "1",
        "quorum_loss = { min_answers = 100000 }",
    );
    let config = swarm_config(dir.path(), port, &models, &agents);
    let engine = spawn_engine(&config, dir.path(), &[], &[KEY]);

    wait_for(
        Duration::from_secs(60),
        "three decisions of each agent",
        || {
            let (_, m) = http_get(port, "/metrics")?;
            let n = |agent: &str| {
                metric_sum(
                    &m,
                    "orrery_swarm_verdicts_total",
                    &[&format!("agent=\"{agent}\"")],
                )
            };
            (n("split") >= 3.0 && n("silent") >= 3.0).then_some(())
        },
    );
    let s = status(port).unwrap();
    assert_eq!(s["orders_in_ledger"], 0, "no quorum, no order: {s}");
    assert_eq!(s["mode"]["mode"], "normal", "{s}");
    stop(engine);

    let records = journal(dir.path());
    let split: Vec<_> = records.iter().filter(|r| r.agent == "split").collect();
    let silent: Vec<_> = records.iter().filter(|r| r.agent == "silent").collect();
    assert!(split.len() >= 3 && silent.len() >= 3);
    for r in &split {
        assert_eq!(r.action.as_deref(), Some("NOTHING"), "{r:?}");
        assert!(
            r.reason.as_deref().unwrap().starts_with("no quorum"),
            "{r:?}"
        );
        assert!(r.orders.is_empty());
        assert_eq!(r.members.len(), 5);
    }
    for r in &silent {
        assert_eq!(r.action.as_deref(), Some("NOTHING"), "{r:?}");
        assert!(
            r.reason.as_deref().unwrap().starts_with("no quorum"),
            "{r:?}"
        );
        assert!(
            r.members.iter().all(|m| m.abstention.is_some()),
            "every member abstained: {r:?}"
        );
        let nothing = r.members.iter().find(|m| m.member == "nothing").unwrap();
        assert_eq!(nothing.abstention, Some(Abstention::Nothing));
        assert_eq!(
            r.votes()
                .as_deref()
                .map(|v| v.starts_with("BUY:0 SELL:0 abstain:3")),
            Some(true)
        );
    }
}

#[test]
fn losing_the_quorum_reduces_the_engine_until_the_members_are_healthy_again() {
    let healthy = Arc::new(AtomicBool::new(false));
    let server = {
        let healthy = healthy.clone();
        move || {
            let healthy = healthy.clone();
            MockServer::start(move |_| {
                if healthy.load(Ordering::SeqCst) {
                    Reply::openai_chat_completion(BUY)
                } else {
                    Reply::openai_chat_completion(GARBAGE)
                }
            })
        }
    };
    let (a, b, c) = (server(), server(), server());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let models = [
        member_model("m-a", &a),
        member_model("m-b", &b),
        member_model("m-c", &c),
    ]
    .concat();
    let agents = agent(
        "flaky",
        &["m-a", "m-b", "m-c"],
        "\"majority\"",
        "quorum_loss = { window = \"3s\", max_failed_share = 0.5, recover_after = \"1s\", min_answers = 3 }",
    );
    let config = swarm_config(dir.path(), port, &models, &agents);
    let engine = spawn_engine(&config, dir.path(), &[], &[KEY]);

    let reduced = wait_for(Duration::from_secs(60), "reducing for swarm quorum", || {
        let s = status(port)?;
        (s["mode"]["mode"] == "reducing").then_some(s)
    });
    let mode = &reduced["mode"];
    assert_eq!(mode["cause"], "swarm_quorum", "{mode}");
    let reason = mode["reason"].as_str().unwrap();
    assert!(
        reason.contains("swarm flaky") && reason.contains("100% of member answers failed"),
        "{reason}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(&metrics, "orrery_swarm_quorum_lost", &["agent=\"flaky\""]),
        1.0
    );
    assert_eq!(
        metric_sum(&metrics, "orrery_engine_trading_mode", &[]),
        1.0,
        "{metrics}"
    );
    // The swarm keeps asking while reducing (flat: nothing it may do), so it sees the
    // members recover, and the engine returns to normal by itself.
    healthy.store(true, Ordering::SeqCst);
    let normal = wait_for(Duration::from_secs(60), "normal again", || {
        let s = status(port)?;
        (s["mode"]["mode"] == "normal").then_some(s)
    });
    assert_eq!(normal["mode"]["cause"], "swarm_quorum", "{normal}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(&metrics, "orrery_swarm_quorum_lost", &["agent=\"flaky\""]),
        0.0
    );
    // Back to normal, the healthy swarm's BUY trades.
    wait_for(Duration::from_secs(60), "an entry after recovery", || {
        let s = status(port)?;
        s["decisions"]
            .as_array()?
            .iter()
            .any(|d| d["outcome"] == "enter_long")
            .then_some(())
    });
    stop(engine);

    let records = journal(dir.path());
    // While reducing, flat, the BUY verdicts were journaled and skipped by the mode.
    let first_entry = records
        .iter()
        .position(|r| r.outcome == "enter_long")
        .unwrap();
    assert!(
        records[..first_entry].iter().all(|r| r.orders.is_empty()),
        "no order before the recovery"
    );
    let log = engine_log(dir.path());
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("swarm quorum lost")
            && l.contains("swarm flaky")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("INFO") && l.contains("swarm quorum restored")),
        "{log}"
    );
}

#[test]
fn swarm_keys_are_checked_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let check = |agents: &str| {
        let config = swarm_config(dir.path(), port, "", agents);
        let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = check(&agent("s", &["default", "nope"], "\"majority\"", ""));
    assert!(
        err.contains("agents.trading[0].members[1]") && err.contains("nope"),
        "{err}"
    );
    let err = check(&agent("s", &["default", "default"], "\"majority\"", ""));
    assert!(
        err.contains("agents.trading[0].members[1]") && err.contains("listed once"),
        "{err}"
    );
    let err = check(&agent("s", &["default"], "\"majority\"", ""));
    assert!(err.contains("agents.trading[0].members"), "{err}");
    let err = check(&agent("s", &["default", "local"], "3", ""));
    assert!(err.contains("agents.trading[0].quorum"), "{err}");
    let err = check(&agent("s", &["default", "local"], "\"most\"", ""));
    assert!(
        err.contains("quorum") && err.contains("supermajority"),
        "{err}"
    );
    let err = check(&agent(
        "s",
        &["default", "local"],
        "\"majority\"",
        "reviewer = \"ghost\"",
    ));
    assert!(err.contains("agents.trading[0].reviewer"), "{err}");
    // member_timeout past decision_timeout (5 s).
    let err = check(
        &agent("s", &["default", "local"], "\"majority\"", "")
            .replace("member_timeout = \"500ms\"", "member_timeout = \"6s\""),
    );
    assert!(err.contains("agents.trading[0].member_timeout"), "{err}");
    // Swarm keys in single mode.
    let err = check(
        &agent("s", &["default", "local"], "\"majority\"", "")
            .replace("mode = \"swarm\"", "mode = \"single\""),
    );
    assert!(
        err.contains("agents.trading[0].members") && err.contains("single mode"),
        "{err}"
    );
    // An unknown local rule set names the key and lists the known ones.
    let models = "\n[models.odd]\n[[models.odd.deployments]]\nid = \"odd\"\nprovider = \"local\"\nmodel = \"macd\"\n";
    let config = swarm_config(
        dir.path(),
        port,
        models,
        &agent("s", &["default", "odd"], "\"majority\"", ""),
    );
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("models.odd.deployments[0].model")
            && err.contains("sma-cross, rsi, momentum, breakout"),
        "{err}"
    );
}
