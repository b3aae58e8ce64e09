//! The RBI pipeline inside the crate: the real router over an OpenAI-compatible loopback
//! mock (OpenAI's recorded chat-completion envelope), real research servers on loopback,
//! backtests on backtesting.py's GOOG.csv, and the library in a temporary sled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use parking_lot::Mutex;

use super::*;
use crate::clock::ManualClock;
use crate::models::pool::{HealthTable, ModelPool};
use crate::models::router::{
    build_provider_with_env, DeploymentConfig, DeploymentRoute, ModelRouter, RoutingStrategy,
};
use crate::store::Store;
use crate::strategies::library::ResearchSource;
use crate::strategies::library::StrategyStatus;
use crate::supervisor::Slot;
use crate::testkit::{MockServer, RecordedRequest, Reply};

fn goog() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/GOOG.csv"))
}

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_API_KEY").then(|| "sk-test-rbi".to_string())
}

/// A router whose `default` model is an OpenAI deployment at `server`.
fn router(server: &MockServer) -> ModelClient {
    let mut d = DeploymentConfig::http("mock", "openai", "gpt-4o-mini");
    d.base_url = Some(format!("{}/v1", server.url()));
    d.timeout = Duration::from_secs(5);
    d.health_check_interval = Duration::ZERO;
    let health = HealthTable::new();
    let provider = build_provider_with_env(&d, &env).expect("provider builds");
    let pool = ModelPool::new(
        d.id.clone(),
        provider,
        d.pool_settings(),
        health.entry(&d.id),
    )
    .start();
    let route = DeploymentRoute::new(d.id.clone(), Arc::new(pool));
    let addr = ModelRouter::new(health, Store::temporary().unwrap())
        .with_model("default", RoutingStrategy::OrderedFallback, vec![route])
        .start();
    let slot = Slot::<ModelRouter>::new();
    slot.fill(addr, slot.next_token(), "test/router");
    ModelClient::from_slot(slot)
}

/// A model that answers `answers` in turn, the last one forever after.
fn scripted(answers: Vec<String>) -> MockServer {
    let answers = Arc::new(Mutex::new(answers));
    MockServer::start(move |_| {
        let mut a = answers.lock();
        let next = if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        };
        Reply::openai_chat_completion(&next)
    })
}

/// The user prompt of a recorded chat-completion request.
fn user_prompt(r: &RecordedRequest) -> String {
    let body = r.body_json().expect("JSON body");
    let messages = body["messages"].as_array().expect("messages").clone();
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .expect("a user message")
        .to_string()
}

/// Thresholds SmaCross(10, 20) on GOOG passes.
fn lenient() -> Thresholds {
    Thresholds {
        beat_buy_hold: false,
        min_sharpe: 0.0,
        max_drawdown_pct: 100.0,
        min_trades: 1,
        oos_min_return_pct: -100.0,
        oos_sharpe_fraction: 0.0,
    }
}

fn settings(fix_rounds: u32, thresholds: Thresholds) -> RbiSettings {
    RbiSettings {
        fix_rounds,
        data: vec![goog()],
        thresholds,
        backtest: crate::backtest::BacktestConfig {
            commission: 0.002,
            ..Default::default()
        },
        model_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn library() -> StrategyLibrary {
    StrategyLibrary::open(
        &Store::temporary().unwrap(),
        ManualClock::new(1_700_000_000_000),
    )
    .unwrap()
}

/// SmaCross as a spec.
const SMA_CROSS: &str = r#"{"name": "goog_sma_cross",
  "description": "Fast SMA crossing the slow one, both ways.",
  "indicators": {"fast": {"sma": {"period": 10}}, "slow": {"sma": {"period": 20}}},
  "long": {"entry": {"crosses_above": ["fast", "slow"]}, "exit": {"crosses_below": ["fast", "slow"]}},
  "short": {"entry": {"crosses_below": ["fast", "slow"]}, "exit": {"crosses_above": ["fast", "slow"]}}
}"#;

/// The same idea with a period of 0 and a reference to an indicator it never defined.
const BROKEN: &str = r#"{"name": "goog_sma_cross",
  "indicators": {"fast": {"sma": {"period": 0}}, "slow": {"sma": {"period": 20}}},
  "long": {"entry": {"crosses_above": ["fast", "slowest"]}}
}"#;

fn research(text: &str) -> Source {
    Source::Inline {
        label: "sma-idea".into(),
        text: text.into(),
    }
}

#[actix::test]
async fn a_refused_spec_is_repaired_through_the_loop_then_backtested_and_stored() {
    let llm = scripted(vec![
        format!("Here is a first try:\n```json\n{BROKEN}\n```"),
        format!("```json\n{SMA_CROSS}\n```"),
    ]);
    let lib = library();
    let rbi = Rbi::new(settings(3, lenient()), router(&llm), lib.clone()).unwrap();
    let report = rbi
        .attempt(&research(
            "Trade the 10/20 moving-average crossover on GOOG.",
        ))
        .await
        .unwrap();

    // Two requests: the second carries the validator's problems with their paths.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let first = user_prompt(&requests[0]);
    assert!(
        first.contains("Trade the 10/20 moving-average crossover"),
        "{first}"
    );
    let body = requests[0].body_json().unwrap();
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("\"indicators\" (required)"),
        "the format is in the system prompt: {body}"
    );
    let fix = user_prompt(&requests[1]);
    assert!(fix.contains("/indicators/fast/sma/period"), "{fix}");
    assert!(fix.contains("slowest"), "{fix}");
    assert!(
        fix.contains("\"period\": 0"),
        "the refused answer is quoted: {fix}"
    );

    assert_eq!(
        report.verdict,
        Verdict::Passed,
        "{:?}",
        report.record.reasons
    );
    assert_eq!(report.fix_rounds, 1);
    let r = lib.get("goog_sma_cross").unwrap().unwrap();
    assert_eq!(r.status, StrategyStatus::Candidate);
    assert_eq!(r.exchanges.len(), 2);
    assert_eq!(r.exchanges[1].round, 1);
    assert!(r.exchanges[0].answer.contains("\"period\": 0"));
    assert_eq!(r.validation_rounds.len(), 2);
    assert!(!r.validation_rounds[0].problems.is_empty());
    assert!(r.validation_rounds[1].problems.is_empty());
    let model = r.model.clone().unwrap();
    assert_eq!(
        (model.model.as_str(), model.provider.as_str()),
        ("default", "openai")
    );
    assert_eq!(r.source, ResearchSource::Inline);
    // The stored spec is the repaired one and reads back valid.
    assert_eq!(r.spec().unwrap().unwrap().indicators.len(), 2);
    // One data set, in- and out-of-sample.
    assert_eq!(r.backtests.len(), 1);
    let b = &r.backtests[0];
    assert!(b.dataset.ends_with("GOOG.csv"));
    assert!(b.summary.num_trades > 10, "{b:?}");
    assert!(b.out_of_sample.is_some());
    // GOOG.csv has 2148 bars: 30 % held out.
    assert_eq!(b.stats["split"]["in_sample_bars"], 1504);
    assert_eq!(b.stats["split"]["out_of_sample_bars"], 644);
    assert!(
        b.stats["in_sample"]["sharpe_ratio"].is_number(),
        "{}",
        b.stats
    );
    assert!(
        r.reasons[0].contains("passed every threshold"),
        "{:?}",
        r.reasons
    );
    assert_eq!(r.status_history.last().unwrap().by, "rbi");
}

#[actix::test]
async fn a_model_that_never_writes_a_valid_spec_stops_after_the_fix_rounds_and_is_rejected() {
    let llm = scripted(vec![BROKEN.to_string()]);
    let lib = library();
    let rbi = Rbi::new(settings(2, lenient()), router(&llm), lib.clone()).unwrap();
    let report = rbi.attempt(&research("Some idea.")).await.unwrap();
    // The first request and two repairs, no more.
    assert_eq!(llm.requests().len(), 3);
    assert_eq!(report.verdict, Verdict::InvalidSpec);
    assert_eq!(report.fix_rounds, 2);
    let r = lib.get(&report.record.id).unwrap().unwrap();
    assert_eq!(r.status, StrategyStatus::Rejected);
    // Stored rejected in one write: never listed (nor promotable) as a candidate meanwhile.
    assert_eq!(
        r.status_history
            .iter()
            .map(|c| (c.status, c.by.as_str()))
            .collect::<Vec<_>>(),
        [(StrategyStatus::Rejected, "rbi")]
    );
    assert_eq!(
        r.name, "goog_sma_cross",
        "the name the broken spec asked for"
    );
    assert_eq!(r.exchanges.len(), 3);
    assert_eq!(r.validation_rounds.len(), 3);
    assert!(r.backtests.is_empty());
    assert!(
        r.reasons[0].contains("after 2 fix round(s)"),
        "{:?}",
        r.reasons
    );
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("/indicators/fast/sma/period")),
        "{:?}",
        r.reasons
    );
    // The broken spec is kept for the record.
    assert_eq!(
        r.spec.as_ref().unwrap()["indicators"]["fast"]["sma"]["period"],
        0
    );

    // An answer that is not JSON at all: stored under a name from the source.
    let prose = scripted(vec!["I cannot help with that.".into()]);
    let rbi = Rbi::new(settings(0, lenient()), router(&prose), lib.clone()).unwrap();
    let report = rbi.attempt(&research("Another idea.")).await.unwrap();
    assert_eq!(prose.requests().len(), 1);
    assert_eq!(report.verdict, Verdict::InvalidSpec);
    assert_eq!(report.record.name, "rbi-sma_idea");
    assert!(report.record.spec.is_none());
}

#[actix::test]
async fn a_model_error_is_stored_as_a_rejected_attempt() {
    let llm = MockServer::start(|_| {
        Reply::json(
            401,
            &serde_json::json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
    });
    let lib = library();
    let rbi = Rbi::new(settings(3, lenient()), router(&llm), lib.clone()).unwrap();
    let report = rbi.attempt(&research("Idea.")).await.unwrap();
    assert_eq!(report.verdict, Verdict::ModelError);
    // An auth failure is not retried, nor repaired.
    assert_eq!(llm.requests().len(), 1);
    let r = lib.get(&report.record.id).unwrap().unwrap();
    assert_eq!(r.status, StrategyStatus::Rejected);
    assert!(r.reasons[0].contains("gave no answer"), "{:?}", r.reasons);
    assert!(!serde_json::to_string(&r).unwrap().contains("sk-test-rbi"));
}

#[actix::test]
async fn thresholds_decide_the_verdict_and_every_miss_is_a_reason() {
    let strict = Thresholds {
        min_sharpe: 50.0,
        min_trades: 100_000,
        max_drawdown_pct: 1.0,
        ..Thresholds::default()
    };
    let llm = scripted(vec![SMA_CROSS.to_string()]);
    let lib = library();
    let rbi = Rbi::new(settings(3, strict), router(&llm), lib.clone()).unwrap();
    let report = rbi.attempt(&research("Idea.")).await.unwrap();
    assert_eq!(report.verdict, Verdict::FailedThresholds);
    let r = &report.record;
    assert_eq!(r.status, StrategyStatus::Rejected);
    let all = r.reasons.join("\n");
    assert!(all.contains("GOOG.csv: in-sample Sharpe"), "{all}");
    assert!(all.contains("< min_trades 100000"), "{all}");
    assert!(all.contains("deeper than max_drawdown_pct 1"), "{all}");
    assert_eq!(r.backtests.len(), 1, "results are kept with a rejection");

    // The out-of-sample checks, on numbers set by hand.
    let mut result = r.backtests[0].clone();
    result.summary = crate::strategies::library::BacktestSummary {
        return_pct: Some(30.0),
        buy_hold_return_pct: Some(10.0),
        sharpe_ratio: Some(1.2),
        max_drawdown_pct: Some(-12.0),
        num_trades: 20,
    };
    let t = Thresholds::default();
    result.out_of_sample = Some(crate::strategies::library::BacktestSummary {
        return_pct: Some(4.0),
        sharpe_ratio: Some(0.7),
        ..Default::default()
    });
    assert!(judge::misses(&result, &t, true).is_empty());
    result.out_of_sample = Some(crate::strategies::library::BacktestSummary {
        return_pct: Some(-1.0),
        sharpe_ratio: Some(0.5),
        ..Default::default()
    });
    let m = judge::misses(&result, &t, true);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].contains("out-of-sample return -1.00 %"), "{m:?}");
    assert!(
        m[1].contains("out-of-sample Sharpe 0.50 < 0.5 × in-sample Sharpe 1.20"),
        "{m:?}"
    );
    result.summary.return_pct = Some(5.0);
    assert!(judge::misses(&result, &t, false)[0].contains("does not beat buy & hold 10.00 %"));
    result.out_of_sample = None;
    assert!(judge::misses(&result, &t, true)
        .iter()
        .any(|x| x.contains("no out-of-sample part")));
}

#[actix::test]
async fn research_from_a_url_is_fetched_reduced_to_text_and_bounded() {
    let page = r#"<!doctype html><html><head><title>t</title><script>var secret = "do not send";</script>
<style>p { color: red }</style></head><body><h1>RSI &amp; trend</h1><p>Buy when RSI&lt;30 and&nbsp;price is above the 200-bar SMA.</p>
<!-- a comment --><p>Sell at RSI &#62; 70.</p></body></html>"#;
    let site = MockServer::start(move |r| match r.route() {
        "/paper" => Reply::raw(200, "text/html; charset=utf-8", page),
        "/moved" => Reply::raw(302, "text/plain", "").with_header("location", "/paper"),
        "/loop" => Reply::raw(302, "text/plain", "").with_header("location", "/loop"),
        "/big" => Reply::raw(200, "text/plain", vec![b'x'; 4096]),
        "/pdf" => Reply::raw(200, "application/pdf", "%PDF-1.7"),
        "/slow" => Reply::Hang,
        _ => Reply::raw(404, "text/plain", "no"),
    });
    let llm = scripted(vec![SMA_CROSS.to_string()]);
    let lib = library();
    let rbi = Rbi::new(settings(0, lenient()), router(&llm), lib.clone()).unwrap();
    let url = format!("{}/moved?id=3&api_key=sk-research", site.url());
    let report = rbi.attempt(&Source::parse(&url)).await.unwrap();
    let prompt = user_prompt(&llm.requests()[0]);
    assert!(prompt.contains("RSI & trend"), "{prompt}");
    assert!(
        prompt.contains("Buy when RSI<30 and price is above the 200-bar SMA."),
        "{prompt}"
    );
    assert!(prompt.contains("Sell at RSI > 70."), "{prompt}");
    assert!(
        !prompt.contains("do not send") && !prompt.contains("color"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("sk-research"),
        "the key is not in the prompt: {prompt}"
    );
    let ResearchSource::Url(stored) = &report.record.source else {
        panic!("{:?}", report.record.source)
    };
    assert!(stored.ends_with("/moved?id=3&api_key=***"), "{stored}");

    let limits = FetchLimits {
        timeout: Duration::from_millis(500),
        max_bytes: 1024,
        max_redirects: 3,
        ..Default::default()
    };
    let client = research::client(&limits).unwrap();
    let read = |path: &str| {
        let (client, url) = (client.clone(), format!("{}{path}", site.url()));
        async move { research::read(&client, &Source::Url(url), &limits).await }
    };
    assert!(matches!(
        read("/loop").await,
        Err(ResearchError::TooManyRedirects { max: 3, .. })
    ));
    assert!(matches!(
        read("/big").await,
        Err(ResearchError::TooLarge {
            max_bytes: 1024,
            ..
        })
    ));
    assert!(matches!(
        read("/pdf").await,
        Err(ResearchError::NotText { .. })
    ));
    assert!(matches!(
        read("/nope").await,
        Err(ResearchError::Status { status: 404, .. })
    ));
    assert!(matches!(
        read("/slow").await,
        Err(ResearchError::Timeout { .. })
    ));
    // Nothing is stored for research that could not be read.
    let before = lib.list(None).unwrap().len();
    let e = rbi
        .attempt(&Source::parse(&format!("{}/nope", site.url())))
        .await
        .unwrap_err();
    assert!(
        matches!(e, RbiError::Research(ResearchError::Status { .. })),
        "{e}"
    );
    assert_eq!(lib.list(None).unwrap().len(), before);
}

#[test]
fn html_is_reduced_to_readable_text() {
    let text = research::html_to_text(
        "<html><head><title>x</title></head><body><div>One<br>two &amp; <b>three</b></div>\n\n\n<ul><li>a</li><li>b &#x263A;</li></ul><SCRIPT>x()</SCRIPT>end</body></html>",
    );
    assert_eq!(text, "One\ntwo & three\na\nb ☺\nend");
}

#[test]
fn settings_are_checked_with_their_paths() {
    let mut issues = crate::validate::Issues::default();
    let mut s = RbiSettings {
        fix_rounds: 99,
        out_of_sample: 0.95,
        ..Default::default()
    };
    s.thresholds.max_drawdown_pct = 0.0;
    s.backtest.cash = -1.0;
    s.validate("research", &mut issues);
    let text = format!("{issues:?}");
    for key in [
        "research.fix_rounds",
        "research.out_of_sample",
        "research.thresholds.max_drawdown_pct",
        "research.backtest.cash",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
    let mut issues = crate::validate::Issues::default();
    RbiSettings::default().validate("research", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");
}
