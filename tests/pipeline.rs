//! The five-role analysis pipeline (issue 13, item 6) in an embedded engine on the paper
//! venue with a manual clock: each model role is an OpenAI-compatible deployment served
//! by its own loopback server speaking the chat-completions wire format, so every stage
//! gets a distinct answer. Runs are started with run-now; the journal and the ledger are
//! read from the engine's data dir.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use orrery::{Config, Engine, EngineHandle};
use orrery_actors::agents::pipeline::{Entry, Plan, Stage, StageOutcome};
use orrery_actors::agents::runtime::RunNowAnswer;
use orrery_actors::agents::{DecisionJournal, DecisionMode, DecisionRecord};
use orrery_actors::clock::{ManualClock, SharedClock};
use orrery_actors::exchanges::gateway::{GetQuote, Reconcile};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::{OrderStatus, OrderType, Side, TriggerKind};
use orrery_actors::store::trees;
use orrery_actors::testkit::{MockServer, Reply};
use parking_lot::Mutex;
use rust_decimal::Decimal;

const KEY_ENV: &str = "ORRERY_PIPELINE_TEST_KEY";
const T0: i64 = 1_767_268_800_000; // 2026-01-01T12:00:00Z

/// A loopback OpenAI-compatible server whose answer the test sets (it may depend on the
/// paper price, known only once the engine runs).
struct Role {
    server: MockServer,
    answer: Arc<Mutex<String>>,
}

impl Role {
    fn new() -> Self {
        let answer = Arc::new(Mutex::new(String::new()));
        let a = answer.clone();
        let server = MockServer::start(move |_| Reply::openai_chat_completion(&a.lock()));
        Self { server, answer }
    }

    fn hung() -> Self {
        Self {
            server: MockServer::start(|_| Reply::Hang),
            answer: Arc::new(Mutex::new(String::new())),
        }
    }

    fn say(&self, text: &str) {
        *self.answer.lock() = text.to_string();
    }

    fn model(&self, name: &str) -> String {
        format!(
            r#"
[models.{name}]
[[models.{name}.deployments]]
id = "{name}-dep"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
api_key_env = "{KEY_ENV}"
timeout = "5s"
"#,
            self.server.url()
        )
    }
}

struct Roles {
    long: Role,
    short: Role,
    strategist: Role,
}

/// The shipped config without its trading agent, the three role models, and one pipeline
/// `lab` on paper BTC that runs only when asked (its interval is a day).
fn config(data: &std::path::Path, roles: &Roles, short_timeout: &str) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let cut = shipped
        .find("[[agents.trading]]")
        .expect("the shipped config ends with its trading agent");
    let text = format!(
        r#"{}
{}{}{}
[[agents.pipeline]]
name = "lab"
venue = "paper"
symbols = ["BTC"]
interval = "1day"
initial_delay = "1day"
timeframe = "1m"
lookback = 30
max_position_pct = 5
min_confidence = 0.6
[agents.pipeline.long_analyst]
model = "long"
timeout = "5s"
[agents.pipeline.short_analyst]
model = "short"
timeout = "{short_timeout}"
[agents.pipeline.strategy_generator]
model = "strategist"
timeout = "5s"
"#,
        &shipped[..cut],
        roles.long.model("long"),
        roles.short.model("short"),
        roles.strategist.model("strategist"),
    );
    std::env::set_var(KEY_ENV, "sk-test-pipeline");
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
        ("ORRERY__AGENTS__RISK__ENABLED", "false".to_string()),
    ];
    Config::load_str(
        &text,
        "pipeline-test.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap()
}

async fn start(
    data: &std::path::Path,
    roles: &Roles,
    short_timeout: &str,
) -> (EngineHandle, Arc<ManualClock>) {
    let clock = ManualClock::new(T0);
    let shared: SharedClock = clock.clone();
    let engine = Engine::start_with_clock(config(data, roles, short_timeout), shared)
        .await
        .unwrap();
    (engine, clock)
}

async fn mid(engine: &EngineHandle) -> Decimal {
    engine
        .gateway
        .send(GetQuote {
            venue: "paper".into(),
            symbol: "BTC".into(),
        })
        .await
        .unwrap()
        .unwrap()
        .mid()
}

/// Starts a run and waits for its journal record and for the run to be over.
async fn run(engine: &EngineHandle) -> DecisionRecord {
    let journal = DecisionJournal::open(&engine.store).unwrap();
    let before: Vec<String> = journal
        .recent(100)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        engine.run_agent_now("lab").await.unwrap(),
        RunNowAnswer::Started
    );
    let mut found = None;
    eventually("the pipeline run in the journal", || {
        found = journal
            .recent(10)
            .unwrap()
            .into_iter()
            .find(|r| r.agent == "lab" && !before.contains(&r.id));
        found.is_some()
    })
    .await;
    // The run journals its record, then ends (and is recorded in the agent's memory).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lab = engine
            .agents()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.name == "lab")
            .unwrap();
        if !lab.running {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    found.unwrap()
}

fn ledger(engine: &EngineHandle) -> Vec<LedgerEntry> {
    engine
        .store
        .tree::<LedgerEntry>(trees::ORDERS)
        .unwrap()
        .iter()
        .map(|item| item.unwrap().1)
        .collect()
}

fn long_case(conviction: f64) -> String {
    format!(
        r#"{{"side":"long","conviction":{conviction},"thesis":"higher lows on rising volume","evidence":["SMA9 above SMA21","ETF inflows in the news"],"invalidation":1,"target":1000000}}"#
    )
}

const SHORT_CASE: &str =
    r#"{"side":"short","conviction":0.2,"thesis":"funding is warm","evidence":["funding +0.01%"]}"#;

fn plan(direction: &str, stop: Decimal, target: Decimal) -> String {
    format!(
        r#"{{"direction":"{direction}","entry":"market","stop_loss":"{stop}","take_profit":"{target}","size_pct":4,"horizon":"4h","confidence":0.75,"reason":"the long case leads"}}"#
    )
}

fn roles() -> Roles {
    Roles {
        long: Role::new(),
        short: Role::new(),
        strategist: Role::new(),
    }
}

#[test]
fn distinct_answers_per_stage_give_the_journaled_plan_and_a_bracket_on_paper() {
    let dir = tempfile::tempdir().unwrap();
    let roles = roles();
    actix::System::new().block_on(async {
        let (engine, _clock) = start(&dir.path().join("data"), &roles, "5s").await;
        let price = mid(&engine).await;
        let (stop, target) = (
            (price * Decimal::new(98, 2)).round_dp(0),
            (price * Decimal::new(105, 2)).round_dp(0),
        );
        roles.long.say(&long_case(0.8));
        roles.short.say(SHORT_CASE);
        roles.strategist.say(&plan("long", stop, target));

        let r = run(&engine).await;
        assert_eq!(r.mode, DecisionMode::Pipeline);
        assert_eq!(r.outcome, "entered_long", "{r:#?}");
        assert_eq!(r.action.as_deref(), Some("LONG"));
        assert_eq!(r.confidence, Some(0.75));
        let trace = r.pipeline.as_ref().unwrap();
        let stages: Vec<(Stage, StageOutcome)> =
            trace.stages.iter().map(|s| (s.stage, s.outcome)).collect();
        assert_eq!(
            stages,
            vec![
                (Stage::Collector, StageOutcome::Ok),
                (Stage::LongAnalyst, StageOutcome::Ok),
                (Stage::ShortAnalyst, StageOutcome::Ok),
                (Stage::StrategyGenerator, StageOutcome::Ok),
                (Stage::Executor, StageOutcome::Ok),
            ]
        );
        // Each stage journaled its own server's answer and the exact prompt it sent.
        let stage = |s| trace.stage(s).unwrap();
        assert_eq!(
            stage(Stage::LongAnalyst).raw_answer.as_deref(),
            Some(long_case(0.8).as_str())
        );
        assert_eq!(
            stage(Stage::ShortAnalyst).raw_answer.as_deref(),
            Some(SHORT_CASE)
        );
        assert_eq!(
            stage(Stage::LongAnalyst).deployment.as_deref(),
            Some("long-dep")
        );
        assert_eq!(
            stage(Stage::ShortAnalyst).deployment.as_deref(),
            Some("short-dep")
        );
        assert_eq!(
            stage(Stage::StrategyGenerator).deployment.as_deref(),
            Some("strategist-dep")
        );
        let sent = roles.strategist.server.requests();
        let body = sent[0].body_json().unwrap();
        let user = body["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(user, stage(Stage::StrategyGenerator).prompt);
        // The strategy generator read both cases.
        assert!(
            user.contains("higher lows on rising volume") && user.contains("funding is warm"),
            "{user}"
        );
        // The collector's output is the market the analysts read.
        assert!(
            stage(Stage::Collector).output.as_ref().unwrap()["candles"]
                .as_array()
                .unwrap()
                .len()
                >= 22
        );
        let Some(Plan::Long(t)) = &trace.plan else {
            panic!("{:?}", trace.plan)
        };
        assert_eq!(
            (t.entry, t.stop_loss, t.take_profit, t.size_pct),
            (Entry::Market, stop, target, Decimal::from(4))
        );

        // Entry, then the reduce-only stop-loss and take-profit triggers for what filled.
        assert_eq!(r.orders.len(), 3, "{:#?}", r.orders);
        assert_eq!(
            (r.orders[0].side, r.orders[0].status),
            (Side::Buy, OrderStatus::Filled)
        );
        let filled = r.orders[0].filled_size;
        let entries = ledger(&engine);
        let leg = |i: usize| {
            entries
                .iter()
                .find(|e| e.client_id == r.orders[i].client_id)
                .unwrap()
                .clone()
        };
        for (i, kind, price) in [
            (1, TriggerKind::StopLoss, stop),
            (2, TriggerKind::TakeProfit, target),
        ] {
            let e = leg(i);
            assert_eq!(e.request.side, Side::Sell);
            assert!(e.request.reduce_only);
            assert_eq!(e.request.size, filled);
            assert_eq!(e.status, OrderStatus::Acked, "{e:?}");
            assert_eq!(
                e.request.order_type,
                OrderType::Trigger {
                    trigger_price: price,
                    kind,
                    limit_price: None
                }
            );
        }
        // The entry is 4 % of the 10000 USD account.
        let notional = filled * r.orders[0].avg_fill_price.unwrap();
        assert!(
            notional > Decimal::from(390) && notional <= Decimal::from(401),
            "{notional}"
        );
        engine.close(Duration::from_secs(30)).await.unwrap();
    });
}

#[test]
fn the_stop_loss_fires_on_paper_when_the_price_crosses_it() {
    let dir = tempfile::tempdir().unwrap();
    let roles = roles();
    actix::System::new().block_on(async {
        let (engine, clock) = start(&dir.path().join("data"), &roles, "5s").await;
        let price = mid(&engine).await;
        // A tight stop (0.2 % under the mid) and a far target: the simulated walk reaches
        // the stop long before the target.
        let (stop, target) = (
            (price * Decimal::new(998, 3)).round_dp(0),
            (price * Decimal::new(150, 2)).round_dp(0),
        );
        roles.long.say(&long_case(0.8));
        roles.short.say(SHORT_CASE);
        roles.strategist.say(&plan("long", stop, target));
        let r = run(&engine).await;
        assert_eq!(r.outcome, "entered_long", "{r:#?}");
        let (sl, tp) = (r.orders[1].client_id.clone(), r.orders[2].client_id.clone());
        // Move the paper market on, a minute at a time, until the stop has filled; each
        // reconcile reads the venue's orders into the ledger.
        let mut crossed_at = None;
        for minute in 1..=60 * 24 * 7 {
            clock.advance(60_000);
            let now = mid(&engine).await;
            let _ = engine
                .gateway
                .send(Reconcile {
                    venue: "paper".into(),
                })
                .await;
            if engine.order(&sl).unwrap().unwrap().status == OrderStatus::Filled {
                crossed_at = Some((minute, now));
                break;
            }
        }
        let (minute, now) = crossed_at.expect("the stop filled within a simulated week");
        let sl = engine.order(&sl).unwrap().unwrap();
        assert_eq!(
            sl.filled_size, r.orders[0].filled_size,
            "after {minute} min at {now}"
        );
        // It fired because the market crossed it: filled at or below the stop.
        assert!(sl.avg_fill_price.unwrap() <= stop, "{sl:?} vs stop {stop}");
        // The position is gone; the take-profit still rests at the venue until the next
        // run finds the symbol flat and cancels it (it would close part of a new position).
        assert_eq!(
            engine.order(&tp).unwrap().unwrap().status,
            OrderStatus::Acked
        );
        roles
            .strategist
            .say(r#"{"direction":"stand_aside","confidence":0.9,"reason":"just stopped out"}"#);
        let next = run(&engine).await;
        assert_eq!(next.outcome, "stand_aside", "{next:#?}");
        let tp_report = engine.order(&tp).unwrap().unwrap();
        assert_eq!(tp_report.status, OrderStatus::Cancelled, "{tp_report:?}");
        let collector = next
            .pipeline
            .as_ref()
            .unwrap()
            .stage(Stage::Collector)
            .unwrap()
            .clone();
        assert_eq!(
            collector.output.unwrap()["cancelled_stale_legs"],
            serde_json::json!([tp.as_str()])
        );
        engine.close(Duration::from_secs(30)).await.unwrap();
    });
}

#[test]
fn a_hung_stage_ends_the_run_at_its_deadline_with_no_order() {
    let dir = tempfile::tempdir().unwrap();
    let roles = Roles {
        long: Role::new(),
        short: Role::hung(),
        strategist: Role::new(),
    };
    actix::System::new().block_on(async {
        let (engine, _clock) = start(&dir.path().join("data"), &roles, "500ms").await;
        roles.long.say(&long_case(0.8));
        roles
            .strategist
            .say(&plan("long", Decimal::ONE, Decimal::from(1_000_000)));
        let r = run(&engine).await;
        assert_eq!(r.outcome, "short_analyst_timeout", "{r:#?}");
        let trace = r.pipeline.as_ref().unwrap();
        assert_eq!(trace.stopped_at, Some(Stage::ShortAnalyst));
        let short = trace.stage(Stage::ShortAnalyst).unwrap();
        assert_eq!(short.outcome, StageOutcome::Timeout);
        assert!(
            short.error.as_deref().unwrap().contains("500ms"),
            "{short:?}"
        );
        // The long analyst answered and is journaled too; nothing after ran.
        assert_eq!(
            trace.stage(Stage::LongAnalyst).unwrap().outcome,
            StageOutcome::Ok
        );
        assert!(trace.stage(Stage::StrategyGenerator).is_none());
        assert_eq!(roles.strategist.server.requests().len(), 0);
        assert!(r.orders.is_empty());
        assert!(ledger(&engine).is_empty(), "{:?}", ledger(&engine));
        // The agent's memory records the failed run.
        let info = engine
            .agents()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.name == "lab")
            .unwrap();
        assert!(info.last_error.unwrap().contains("short_analyst_timeout"));
        engine.close(Duration::from_secs(30)).await.unwrap();
    });
}

#[test]
fn an_invalid_plan_or_standing_aside_sends_no_order_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let roles = roles();
    actix::System::new().block_on(async {
        let (engine, _clock) = start(&dir.path().join("data"), &roles, "5s").await;
        let price = mid(&engine).await;
        roles.long.say(&long_case(0.8));
        roles.short.say(SHORT_CASE);
        // A long whose stop is above the price.
        let above = (price * Decimal::new(102, 2)).round_dp(0);
        roles.strategist.say(&plan(
            "long",
            above,
            (price * Decimal::new(105, 2)).round_dp(0),
        ));
        let r = run(&engine).await;
        assert_eq!(r.outcome, "strategy_generator_invalid", "{r:#?}");
        let error = r.error.as_deref().unwrap();
        assert!(
            error.contains(&format!("stop-loss {above} is on the wrong side"))
                && error.contains("below"),
            "{error}"
        );
        let trace = r.pipeline.as_ref().unwrap();
        assert_eq!(trace.stopped_at, Some(Stage::StrategyGenerator));
        assert!(trace.plan.is_none() && trace.stage(Stage::Executor).is_none());
        assert!(ledger(&engine).is_empty());

        // Standing aside: a plan, no order.
        roles
            .strategist
            .say(r#"{"direction":"stand_aside","confidence":0.8,"reason":"the cases cancel out"}"#);
        let s = run(&engine).await;
        assert_eq!(
            (s.outcome.as_str(), s.action.as_deref()),
            ("stand_aside", Some("STAND_ASIDE"))
        );
        assert_eq!(s.reason.as_deref(), Some("the cases cancel out"));
        assert!(s.error.is_none() && s.orders.is_empty());
        assert!(ledger(&engine).is_empty());
        engine.close(Duration::from_secs(30)).await.unwrap();
    });
}
