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

/// `orrery` with the example's environment (so the CLI finds the running engine).
fn cli(env: &[(&str, String)], args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(common::BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orrery {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "orrery {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The shipped offline example through the real binary: a news signal is published, the
/// pipeline is run with `orrery agents run-now`, and the journal and the order ledger are
/// read back with `orrery journal` and `orrery orders`. The example's paper venue `lab` is
/// made to trend up (low volatility, upward drift) so the local analysts see a long case
/// the news confirms (trend 0.3 + news 0.3 at least, against at most RSI's 0.15 for the
/// short), and the plan trades.
#[test]
fn the_offline_example_runs_the_pipeline_end_to_end_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/agents.toml");
    let env: Vec<(&str, String)> = vec![
        (
            "ORRERY__ENGINE__DATA_DIR",
            common::data_dir(dir.path()).display().to_string(),
        ),
        ("ORRERY__TELEMETRY__LISTEN", format!("127.0.0.1:{port}")),
        (
            "ORRERY__EXCHANGES__VENUES__LAB__VOLATILITY_ANNUAL",
            "0.01".into(),
        ),
        ("ORRERY__EXCHANGES__VENUES__LAB__DRIFT_ANNUAL", "10".into()),
        // Runs only when asked.
        ("ORRERY__AGENTS__PIPELINE__0__INITIAL_DELAY", "1day".into()),
        ("ORRERY__AGENTS__PIPELINE__0__SYMBOLS", "[\"BTC\"]".into()),
        ("ORRERY__AGENTS__PIPELINE__0__TIMEFRAME", "1m".into()),
        ("ORRERY__AGENTS__PIPELINE__0__LOOKBACK", "30".into()),
    ];
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut engine = Stopped(Some(common::spawn_engine(
        std::path::Path::new(config),
        dir.path(),
        &[],
        &env_refs,
    )));
    common::wait_for(Duration::from_secs(60), "the engine's control API", || {
        common::http_get(port, "/health").filter(|(code, _)| *code == 200)
    });
    let with_config = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config, "--json"]);
        cli(&env, &all)
    };

    // `orrery agents` lists the pipeline.
    let agents = with_config(&["agents"]);
    let analysis = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "analysis")
        .unwrap_or_else(|| panic!("{agents}"))
        .clone();
    assert_eq!(analysis["kind"], "pipeline");

    with_config(&[
        "signals",
        "publish",
        "--symbol",
        "BTC",
        "--kind",
        "news",
        "--direction",
        "long",
        "--confidence",
        "1",
        "--evidence",
        "spot ETF inflows at a record",
        "--source",
        "newsdesk",
    ]);
    let started = with_config(&["agents", "run-now", "analysis"]);
    assert_eq!(started["status"], "started", "{started}");

    let row = common::wait_for(
        Duration::from_secs(60),
        "the pipeline run in the journal",
        || {
            let rows = with_config(&["journal", "--agent", "analysis"]);
            rows.as_array().and_then(|r| r.first().cloned())
        },
    );
    let id = row["id"].as_str().unwrap().to_string();
    let shown = with_config(&["journal", "show", &id]);
    let record = &shown;
    assert_eq!(record["mode"], "pipeline");
    assert_eq!(record["outcome"], "entered_long", "{shown:#}");
    let stages = record["pipeline"]["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "collector",
            "long_analyst",
            "short_analyst",
            "strategy_generator",
            "executor"
        ]
    );
    assert!(stages.iter().all(|s| s["outcome"] == "ok"), "{stages:#?}");
    // The news reached the long analyst through the collector.
    let long = &stages[1];
    assert_eq!(long["deployment"], "local-long-analyst");
    assert!(long["prompt"]
        .as_str()
        .unwrap()
        .contains("spot ETF inflows at a record"));
    assert!(
        long["output"]["evidence"].to_string().contains("newsdesk"),
        "{long:#}"
    );
    assert_eq!(record["pipeline"]["plan"]["direction"], "long");
    // The text form shows every stage in order, then the plan; a pipeline run has no
    // prompt of its own, so none is shown (nor a hash that could not match).
    let text = std::process::Command::new(common::BIN)
        .args(["journal", "show", &id, "--config", config])
        .env_remove("ORRERY_CONFIG")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
    };
    assert!(at("[collector] ok") < at("[long_analyst] ok"));
    assert!(at("[short_analyst] ok") < at("[strategy_generator] ok"));
    assert!(at("[executor] ok") < at("\nplan: "));
    assert!(
        text.contains("model long-analyst via local-long-analyst"),
        "{text}"
    );
    assert!(
        !text.contains("DOES NOT MATCH") && !text.contains("members ("),
        "{text}"
    );
    assert_eq!(shown["prompt_hash_ok"], true);

    // The ledger: the entry, then the reduce-only stop-loss and take-profit triggers.
    let orders = with_config(&["orders", "--venue", "lab"]);
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 3, "{orders:#?}");
    let plan = &record["pipeline"]["plan"];
    let of = |kind: &str| {
        orders
            .iter()
            .find(|o| o["trigger"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {orders:#?}"))
    };
    let entry = orders.iter().find(|o| o["trigger"].is_null()).unwrap();
    assert_eq!(
        (entry["side"].as_str(), entry["status"].as_str()),
        (Some("buy"), Some("filled"))
    );
    for (kind, price) in [
        ("stop_loss", &plan["stop_loss"]),
        ("take_profit", &plan["take_profit"]),
    ] {
        let leg = of(kind);
        assert_eq!(leg["side"], "sell");
        assert_eq!(leg["reduce_only"], true);
        assert_eq!(leg["status"], "acked");
        assert_eq!(leg["size"], entry["filled_size"]);
        assert_eq!(leg["origin"], "agent:analysis");
        let (a, b): (Decimal, Decimal) = (
            leg["trigger_price"].as_str().unwrap().parse().unwrap(),
            price.as_str().unwrap().parse().unwrap(),
        );
        // The venue rounds the plan's price to its tick.
        assert!((a - b).abs() <= Decimal::ONE, "{kind}: {a} vs plan {b}");
    }

    // Stage metrics, in a valid exposition.
    let (_, metrics) = common::http_get(port, "/metrics").unwrap();
    for stage in [
        "collector",
        "long_analyst",
        "short_analyst",
        "strategy_generator",
        "executor",
    ] {
        let n = common::metric_sum(
            &metrics,
            "orrery_pipeline_stages_total",
            &[
                "agent=\"analysis\"",
                &format!("stage=\"{stage}\""),
                "outcome=\"ok\"",
            ],
        );
        assert_eq!(n, 1.0, "{stage}");
    }
    assert_eq!(
        common::metric_sum(
            &metrics,
            "orrery_pipeline_runs_total",
            &["agent=\"analysis\"", "outcome=\"entered_long\""]
        ),
        1.0
    );
    let (ok, report) = common::promtool_check(&metrics);
    assert!(ok, "promtool check metrics: {report}");
    // The pipeline is an actor of the live tree.
    let (_, tree) = common::http_get(port, "/api/tree").unwrap();
    assert!(tree.contains("engine/agents/pipeline-analysis"), "{tree}");
    let mut engine = engine.0.take().unwrap();
    common::signal(&engine, libc::SIGTERM);
    assert!(common::wait_exit(&mut engine, Duration::from_secs(30)).success());
}

/// Kills the engine if the test fails before stopping it, so no engine outlives its test.
struct Stopped(Option<std::process::Child>);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A bad pipeline config is refused before anything starts, naming each key (exit 2).
#[test]
fn a_bad_pipeline_config_names_its_keys_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/examples/agents.toml"
    ))
    .unwrap()
    .replace(
        "include = [\"../default.toml\"]",
        &format!(
            "include = [{:?}]",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")
        ),
    );
    let check = |text: String, keys: &[&str]| {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = common::run_cli(&["check-config", "--config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{err}");
        for key in keys {
            assert!(err.contains(key), "{key} not named in: {err}");
        }
    };
    check(
        example
            .replace("model = \"short-analyst\"", "model = \"long-analyst\"")
            .replace("model = \"strategist\"", "model = \"nowhere\"")
            .replace("venue = \"lab\"", "venue = \"moon\"")
            .replace("max_position_pct = 5", "max_position_pct = 0"),
        &[
            "agents.pipeline[0].short_analyst.model",
            "agents.pipeline[0].strategy_generator.model",
            "agents.pipeline[0].venue",
            "agents.pipeline[0].max_position_pct",
        ],
    );
    // A symbol its paper venue does not simulate.
    check(
        example.replace(
            "symbols = [\"BTC\", \"ETH\"]",
            "symbols = [\"BTC\", \"DOGE\"]",
        ),
        &["agents.pipeline[0].symbols[1]"],
    );
}
