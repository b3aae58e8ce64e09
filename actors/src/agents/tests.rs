//! Agents end to end inside the crate: paper venue, real gateway, and a scripted model
//! actor that answers, fails or hangs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, ResponseFuture};
use parking_lot::Mutex;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::risk::{check_venue, Baseline, BaselineBook, Breach, CheckOutcome, RiskDeps};
use super::swarm::{AgentMode, QuorumLossConfig};
use super::trading::{run_once, TradingAgentConfig, TradingDeps};
use super::{DecisionJournal, MemoryStore};
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{GatewayConfig, GatewayCore, OrderGateway};
use crate::exchanges::paper::{PaperConfig, PaperVenue};
use crate::exchanges::risk_gate::{ModeCause, RiskConfig, TradingMode};
use crate::exchanges::{Timeframe, Venue};
use crate::models::router::{Swarm, SwarmReply};
use crate::models::{Ask, ModelClient, ModelError, ModelResponse, Purpose, Usage};
use crate::store::{trees, Store};
use crate::supervisor::Slot;

#[derive(Clone)]
enum Script {
    Answer(String),
    Fail,
    Hang,
}

struct ScriptedModel {
    script: Arc<Mutex<Script>>,
    calls: Arc<AtomicUsize>,
    purposes: Arc<Mutex<Vec<Purpose>>>,
}

impl Actor for ScriptedModel {
    type Context = Context<Self>;
}

impl Handler<Ask> for ScriptedModel {
    type Result = ResponseFuture<Result<ModelResponse, ModelError>>;
    fn handle(&mut self, msg: Ask, _: &mut Context<Self>) -> Self::Result {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.purposes.lock().push(msg.0.purpose);
        let script = self.script.lock().clone();
        Box::pin(async move {
            match script {
                Script::Answer(text) => Ok(ModelResponse {
                    text,
                    deployment: "scripted".into(),
                    provider: "test".into(),
                    model: "scripted".into(),
                    usage: Usage::default(),
                    latency: Duration::ZERO,
                    finish_reason: Some("stop".into()),
                    cached: false,
                    attempts: Vec::new(),
                    cost_usd: None,
                }),
                Script::Fail => Err(ModelError::AllFailed {
                    model: "default".into(),
                    attempts: vec!["scripted: 503".into()],
                }),
                Script::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    unreachable!("the caller's deadline ends this first")
                }
            }
        })
    }
}

/// Every member of a swarm gets the script's answer, all at once (swarms of members that
/// answer differently run through the real router in `tests/swarm.rs`).
impl Handler<Swarm> for ScriptedModel {
    type Result = ResponseFuture<Vec<SwarmReply>>;
    fn handle(&mut self, msg: Swarm, ctx: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = msg
            .models
            .iter()
            .map(|m| {
                let mut request = msg.request.clone();
                request.model = m.clone();
                (m.clone(), self.handle(Ask(request), ctx))
            })
            .collect();
        let deadline = msg.deadline;
        Box::pin(futures::future::join_all(asks.into_iter().map(
            move |(member, ask)| async move {
                let result = match tokio::time::timeout(deadline, ask).await {
                    Ok(r) => r,
                    Err(_) => Err(ModelError::Abandoned {
                        model: member.clone(),
                        after: deadline,
                    }),
                };
                SwarmReply { member, result }
            },
        )))
    }
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    venue: Arc<PaperVenue>,
    gateway: Slot<OrderGateway>,
    core: Arc<GatewayCore>,
    script: Arc<Mutex<Script>>,
    calls: Arc<AtomicUsize>,
    models: ModelClient,
}

async fn world(limits: RiskConfig) -> World {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(1_763_000_000_000);
    let shared: SharedClock = clock.clone();
    let venue = Arc::new(
        PaperVenue::open("paper", &PaperConfig::default(), &store, shared.clone()).unwrap(),
    );
    let connector = Slot::<Connector>::new();
    connector.fill(
        Connector::new(venue.clone()).start(),
        connector.next_token(),
        "test/paper",
    );
    let mut venues = BTreeMap::new();
    venues.insert("paper".to_string(), connector);
    let core = GatewayCore::open(&store, venues, limits, GatewayConfig::default(), shared).unwrap();
    core.reconcile_all().await.unwrap();
    let gateway = Slot::<OrderGateway>::new();
    gateway.fill(
        OrderGateway::new(core.clone()).start(),
        gateway.next_token(),
        "test/gateway",
    );
    let script = Arc::new(Mutex::new(Script::Answer(String::new())));
    let calls = Arc::new(AtomicUsize::new(0));
    let model = ScriptedModel {
        script: script.clone(),
        calls: calls.clone(),
        purposes: Arc::new(Mutex::new(Vec::new())),
    }
    .start();
    let router = Slot::<ScriptedModel>::new();
    router.fill(model, router.next_token(), "test/model");
    World {
        store,
        clock,
        venue,
        gateway,
        core,
        script,
        calls,
        models: ModelClient::from_slot(router),
    }
}

fn agent() -> TradingAgentConfig {
    TradingAgentConfig {
        name: "t".into(),
        venue: "paper".into(),
        symbols: vec!["BTC".into()],
        timeframe: Timeframe::M1,
        lookback: 30,
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        model: "default".into(),
        min_confidence: 0.6,
        allow_defaulted_confidence: false,
        position_pct: dec!(10),
        leverage: 2,
        allow_short: false,
        decision_timeout: Duration::from_millis(300),
        jitter: 0.0,
        run_timeout: None,
        signal_kinds: Vec::new(),
        signal_max_age: Duration::from_secs(3600),
        mode: AgentMode::Single,
        members: vec![],
        quorum: None,
        member_timeout: None,
        reviewer: None,
        quorum_loss: None,
    }
}

fn trading_deps(w: &World) -> TradingDeps {
    TradingDeps {
        gateway: w.gateway.clone(),
        models: w.models.clone(),
        journal: DecisionJournal::open(&w.store).unwrap(),
        memory: MemoryStore::open(&w.store, "t").unwrap(),
        clock: w.clock.clone(),
        baselines: BaselineBook::new(
            w.store.tree(trees::RISK).unwrap(),
            RiskConfig::default().window,
            w.clock.clone(),
        ),
        signals: Default::default(),
    }
}

async fn btc_size(w: &World) -> Decimal {
    w.venue
        .positions()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.symbol == "BTC")
        .map(|p| p.size)
        .unwrap_or_default()
}

#[actix::test]
async fn buy_enters_at_the_configured_size_and_sell_closes_the_long() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    *w.script.lock() =
        Script::Answer(r#"{"action":"BUY","confidence":0.8,"reason":"trend up"}"#.into());
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "enter_long", "{:?}", records[0]);
    assert_eq!(records[0].error, None);
    // 10% of 10000 USD at 2x leverage: 2000 USD notional.
    let quote = w.venue.quote("BTC").await.unwrap();
    let notional = btc_size(&w).await * quote.mid();
    assert!(
        notional > dec!(1900) && notional <= dec!(2000),
        "notional {notional}"
    );
    let prompt_calls = w.calls.load(Ordering::SeqCst);
    assert_eq!(prompt_calls, 1);

    w.clock.advance(60_000);
    *w.script.lock() = Script::Answer("SELL — confidence: 75%. The trend broke.".into());
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "close_long", "{:?}", records[0]);
    assert_eq!(btc_size(&w).await, Decimal::ZERO);
    // Both decisions are journaled with the raw answer, and the memory counts runs.
    let journal = DecisionJournal::open(&w.store).unwrap().recent(2).unwrap();
    assert_eq!(
        journal[0].raw_answer.as_deref(),
        Some("SELL — confidence: 75%. The trend broke.")
    );
    assert_eq!(journal[1].action.as_deref(), Some("BUY"));
    assert_eq!(
        MemoryStore::open(&w.store, "t")
            .unwrap()
            .load()
            .unwrap()
            .runs,
        2
    );
}

#[actix::test]
async fn low_confidence_unreadable_answers_and_model_errors_place_nothing() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    for (script, outcome) in [
        (
            Script::Answer(r#"{"action":"BUY","confidence":0.4}"#.into()),
            "below_min_confidence_0.6",
        ),
        (
            Script::Answer("I cannot decide today.".into()),
            "parse_error",
        ),
        (Script::Fail, "model_error"),
    ] {
        *w.script.lock() = script;
        let records = run_once(&agent(), &deps).await;
        assert_eq!(records[0].outcome, outcome, "{:?}", records[0]);
    }
    assert_eq!(w.core.ledger().len(), 0, "no order was even intended");
    let memory = MemoryStore::open(&w.store, "t").unwrap().load().unwrap();
    assert_eq!((memory.runs, memory.failures), (3, 2));
}

#[actix::test]
async fn a_hung_model_does_not_hold_the_agent_past_its_deadline() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    *w.script.lock() = Script::Hang;
    // Paused tokio time: the run's elapsed time is the deadline's, not the machine's
    // load; a run held by the hung model would take its hour.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "model_error");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

fn risk_deps(w: &World) -> RiskDeps {
    let (baselines, breaches) = RiskDeps::trees(&w.store).unwrap();
    RiskDeps {
        gateway: w.gateway.clone(),
        models: w.models.clone(),
        journal: DecisionJournal::open(&w.store).unwrap(),
        clock: w.clock.clone(),
        baselines,
        breaches,
    }
}

/// Opens a long and pretends the window started at 11000 USD: a 9% loss.
async fn losing_account(w: &World, deps: &RiskDeps) {
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.9,"reason":"x"}"#.into());
    run_once(&agent(), &trading_deps(w)).await;
    assert!(btc_size(w).await > Decimal::ZERO);
    deps.baselines
        .put(
            "baseline/paper",
            &Baseline {
                value: dec!(11000),
                set_ms: w.clock.now_ms(),
            },
        )
        .unwrap();
}

fn loss_limits(ai_confirmation: bool) -> RiskConfig {
    RiskConfig {
        max_loss_pct: Some(dec!(5)),
        ai_confirmation,
        confirmation_timeout: Duration::from_millis(200),
        ..RiskConfig::default()
    }
}

#[actix::test]
async fn a_loss_breach_closes_everything_and_restricts_to_reducing() {
    let limits = loss_limits(false);
    let w = world(limits.clone()).await;
    let deps = risk_deps(&w);
    losing_account(&w, &deps).await;
    let outcome = check_venue(&limits, &deps, "paper").await.unwrap();
    assert!(
        matches!(outcome, CheckOutcome::Closed { breach: Breach::MaxLoss, orders } if orders >= 1),
        "{outcome:?}"
    );
    assert_eq!(btc_size(&w).await, Decimal::ZERO);
    let mode = w.core.mode();
    assert_eq!(mode.mode, TradingMode::Reducing);
    assert!(mode.reason.starts_with("risk: loss"), "{}", mode.reason);
    let breaches = w
        .store
        .tree::<super::risk::BreachRecord>(trees::RISK)
        .unwrap();
    assert_eq!(breaches.scan_prefix("breach/").count(), 1);
    // New risk is now refused before it costs a model call: with no position to reduce
    // the agent skips the symbol (it used to ask and have the gateway refuse the BUY).
    let calls = w.calls.load(Ordering::SeqCst);
    let records = run_once(&agent(), &trading_deps(&w)).await;
    assert_eq!(records[0].outcome, "skipped_mode", "{:?}", records[0]);
    assert_eq!(w.calls.load(Ordering::SeqCst), calls, "no model call");
    assert_eq!(btc_size(&w).await, Decimal::ZERO);
}

#[actix::test]
async fn with_ai_confirmation_hold_keeps_positions_and_failure_closes_them() {
    let limits = loss_limits(true);
    let w = world(limits.clone()).await;
    let deps = risk_deps(&w);
    losing_account(&w, &deps).await;

    *w.script.lock() = Script::Answer(r#"{"action":"HOLD","reason":"temporary dip"}"#.into());
    let outcome = check_venue(&limits, &deps, "paper").await.unwrap();
    assert_eq!(
        outcome,
        CheckOutcome::Held {
            breach: Breach::MaxLoss
        }
    );
    assert!(btc_size(&w).await > Decimal::ZERO);
    assert_eq!(w.core.mode().mode, TradingMode::Normal);

    // A model that hangs past the confirmation timeout: fail closed.
    *w.script.lock() = Script::Hang;
    // The hung model answers after an hour; the confirmation timeout (200 ms) must end the
    // wait. The bound is generous for a loaded machine (not paused time: closing
    // positions waits on the store's writer thread, which a paused clock would skip past).
    let started = Instant::now();
    let outcome = check_venue(&limits, &deps, "paper").await.unwrap();
    assert!(
        matches!(outcome, CheckOutcome::Closed { .. }),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(btc_size(&w).await, Decimal::ZERO);
    let journal = DecisionJournal::open(&w.store).unwrap().recent(1).unwrap();
    assert_eq!(journal[0].action.as_deref(), Some("CLOSE_ALL"));
    assert!(journal[0]
        .error
        .as_deref()
        .unwrap()
        .contains("failing closed"));
}

#[actix::test]
async fn an_unreadable_confirmation_fails_closed() {
    let limits = loss_limits(true);
    let w = world(limits.clone()).await;
    let deps = risk_deps(&w);
    losing_account(&w, &deps).await;
    *w.script.lock() = Script::Answer("maybe?".into());
    let outcome = check_venue(&limits, &deps, "paper").await.unwrap();
    assert!(
        matches!(outcome, CheckOutcome::Closed { .. }),
        "{outcome:?}"
    );
}

#[actix::test]
async fn below_minimum_balance_halts_trading() {
    let limits = RiskConfig {
        min_balance_usd: dec!(20000),
        max_loss_pct: None,
        ..RiskConfig::default()
    };
    let w = world(RiskConfig::default()).await;
    let deps = risk_deps(&w);
    let outcome = check_venue(&limits, &deps, "paper").await.unwrap();
    assert!(
        matches!(
            outcome,
            CheckOutcome::Closed {
                breach: Breach::MinBalance,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(w.core.mode().mode, TradingMode::Halted);
}

#[actix::test]
async fn the_baseline_persists_and_resets_when_the_window_passes() {
    let limits = RiskConfig::default();
    let w = world(limits.clone()).await;
    let deps = risk_deps(&w);
    assert_eq!(
        check_venue(&limits, &deps, "paper").await.unwrap(),
        CheckOutcome::Within
    );
    let first = deps.baselines.get("baseline/paper").unwrap().unwrap();
    assert_eq!(first.value, dec!(10000));
    w.clock.advance(60_000);
    check_venue(&limits, &deps, "paper").await.unwrap();
    assert_eq!(
        deps.baselines
            .get("baseline/paper")
            .unwrap()
            .unwrap()
            .set_ms,
        first.set_ms
    );
    w.clock.advance(limits.window.as_millis() as i64);
    check_venue(&limits, &deps, "paper").await.unwrap();
    assert!(
        deps.baselines
            .get("baseline/paper")
            .unwrap()
            .unwrap()
            .set_ms
            > first.set_ms
    );
}

#[actix::test]
async fn a_missing_confidence_is_flagged_not_counted_as_a_failure() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    *w.script.lock() = Script::Answer("Decision: BUY. The trend is up.".into());
    let config = TradingAgentConfig {
        min_confidence: 0.5,
        ..agent()
    };
    let records = run_once(&config, &deps).await;
    assert!(records[0].confidence_defaulted, "{:?}", records[0]);
    assert_eq!(records[0].error, None);
    // The defaulted 0.5 meets `min_confidence = 0.5`, but an unqualified answer never
    // trades unless the agent opts in.
    assert_eq!(records[0].outcome, "defaulted_confidence");
    assert_eq!(w.core.ledger().len(), 0, "no order was even intended");
    let memory = MemoryStore::open(&w.store, "t").unwrap().load().unwrap();
    assert_eq!((memory.runs, memory.failures), (1, 0));

    let opted_in = TradingAgentConfig {
        allow_defaulted_confidence: true,
        ..config
    };
    let records = run_once(&opted_in, &deps).await;
    assert!(records[0].confidence_defaulted, "{:?}", records[0]);
    assert_eq!(records[0].outcome, "enter_long", "{:?}", records[0]);
    assert!(btc_size(&w).await > Decimal::ZERO);
}

fn sol_agent() -> TradingAgentConfig {
    TradingAgentConfig {
        symbols: vec!["SOL".into()],
        min_confidence: 0.5,
        ..agent()
    }
}

/// The exact case seen: asked about SOL, the prose answer `I think you should buy BTC now.`
/// became `SOL BUY conf 0.5 (confidence_defaulted) -> enter_long` and filled.
#[actix::test]
async fn a_prose_answer_about_another_symbol_places_no_order() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    for allow_defaulted_confidence in [false, true] {
        *w.script.lock() = Script::Answer("I think you should buy BTC now.".into());
        let config = TradingAgentConfig {
            allow_defaulted_confidence,
            ..sol_agent()
        };
        let records = run_once(&config, &deps).await;
        assert_eq!(records[0].outcome, "wrong_symbol", "{:?}", records[0]);
        assert!(
            records[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("BTC"),
            "{:?}",
            records[0]
        );
        assert_eq!(records[0].action, None, "no verdict was taken");
    }
    // Also in JSON, even with a stated confidence.
    *w.script.lock() =
        Script::Answer(r#"{"action":"BUY","confidence":0.9,"symbol":"BTC","reason":"x"}"#.into());
    let records = run_once(&sol_agent(), &deps).await;
    assert_eq!(records[0].outcome, "wrong_symbol", "{:?}", records[0]);
    assert_eq!(w.core.ledger().len(), 0, "no order was even intended");
    let journal = DecisionJournal::open(&w.store).unwrap().recent(3).unwrap();
    assert!(journal.iter().all(|r| r.outcome == "wrong_symbol"));
}

/// `min_confidence` is inclusive: a verdict at the threshold trades, one just below does not.
#[actix::test]
async fn the_confidence_threshold_is_inclusive() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.5999}"#.into());
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "below_min_confidence_0.6");
    assert_eq!(w.core.ledger().len(), 0);
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.6}"#.into());
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "enter_long", "{:?}", records[0]);
    assert!(btc_size(&w).await > Decimal::ZERO);
}

#[actix::test]
async fn reducing_and_halted_modes_skip_model_calls_that_cannot_trade() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    w.core
        .set_mode(TradingMode::Reducing, ModeCause::RiskAgent, "risk: test")
        .unwrap();
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.9}"#.into());
    // Flat: nothing to reduce, so no model call and no order.
    for _ in 0..3 {
        let records = run_once(&agent(), &deps).await;
        assert_eq!(records[0].outcome, "skipped_mode", "{:?}", records[0]);
    }
    assert_eq!(w.calls.load(Ordering::SeqCst), 0);
    assert_eq!(w.core.ledger().len(), 0);

    // Holding a long: the agent still asks, ignores BUY and acts on SELL.
    w.core
        .set_mode(TradingMode::Normal, ModeCause::Operator, "test")
        .unwrap();
    run_once(&agent(), &deps).await;
    let held = btc_size(&w).await;
    assert!(held > Decimal::ZERO);
    let orders = w.core.ledger().len();
    w.core
        .set_mode(TradingMode::Reducing, ModeCause::RiskAgent, "risk: test")
        .unwrap();
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "skipped_mode", "{:?}", records[0]);
    assert_eq!(records[0].action.as_deref(), Some("BUY"));
    assert_eq!(
        w.core.ledger().len(),
        orders,
        "no refused order in the ledger"
    );
    assert_eq!(btc_size(&w).await, held);
    *w.script.lock() = Script::Answer(r#"{"action":"SELL","confidence":0.9}"#.into());
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "close_long", "{:?}", records[0]);
    assert_eq!(btc_size(&w).await, Decimal::ZERO);

    // Halted: no model call at all.
    w.core
        .set_mode(TradingMode::Halted, ModeCause::Operator, "test")
        .unwrap();
    let calls = w.calls.load(Ordering::SeqCst);
    let records = run_once(&agent(), &deps).await;
    assert_eq!(records[0].outcome, "skipped_mode");
    assert_eq!(w.calls.load(Ordering::SeqCst), calls);
}

/// The risk agent re-asserts `Reducing` on every check while the loss lasts; the mode is
/// persisted (and logged) once, when it changes.
#[actix::test]
async fn repeated_risk_checks_without_change_persist_the_mode_once() {
    let limits = loss_limits(false);
    let w = world(limits.clone()).await;
    let deps = risk_deps(&w);
    deps.baselines
        .put(
            "baseline/paper",
            &Baseline {
                value: dec!(11000),
                set_ms: w.clock.now_ms(),
            },
        )
        .unwrap();
    check_venue(&limits, &deps, "paper").await.unwrap();
    let first = w.core.mode();
    assert_eq!(first.mode, TradingMode::Reducing);
    let mode_tree = w
        .store
        .tree::<crate::exchanges::risk_gate::ModeState>(trees::RISK)
        .unwrap();
    let persisted = mode_tree.get("mode").unwrap();
    assert_eq!(persisted.as_ref(), Some(&first));
    for _ in 0..3 {
        w.clock.advance(1_000);
        check_venue(&limits, &deps, "paper").await.unwrap();
    }
    assert_eq!(
        w.core.mode(),
        first,
        "same mode, same reason, same since_ms"
    );
    assert_eq!(
        mode_tree.get("mode").unwrap(),
        persisted,
        "nothing new persisted"
    );
}

/// The case seen on a fresh account: the first trades happen before the risk agent's first
/// check. PnL must be measured from the 10 000 USD before them, not from the value after.
#[actix::test]
async fn the_baseline_is_the_value_before_the_first_order_of_the_window() {
    let limits = RiskConfig::default();
    let w = world(limits.clone()).await;
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.9,"reason":"x"}"#.into());
    run_once(&agent(), &trading_deps(&w)).await;
    assert!(btc_size(&w).await > Decimal::ZERO);
    // The paper venue charged a fee and crossed the spread: the account is below 10 000.
    w.clock.advance(5_000);
    let after = w.core.account("paper").await.unwrap().account_value;
    assert!(after < dec!(10000), "{after}");

    let deps = risk_deps(&w);
    assert_eq!(
        check_venue(&limits, &deps, "paper").await.unwrap(),
        CheckOutcome::Within
    );
    let baseline = deps.baselines.get("baseline/paper").unwrap().unwrap();
    assert_eq!(
        baseline.value,
        dec!(10000),
        "measured from before the first order"
    );
    let pnl = super::risk::Pnl::of(after, baseline.value);
    assert!(pnl.usd < Decimal::ZERO, "down, not 0: {pnl:?}");
}

/// Per-position accounting from the recorded fills: realized PnL and fees after a round
/// trip, every configured symbol reported.
#[actix::test]
async fn position_pnl_follows_the_fills() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.9}"#.into());
    run_once(&agent(), &deps).await;
    w.clock.advance(60_000);
    *w.script.lock() = Script::Answer(r#"{"action":"SELL","confidence":0.9}"#.into());
    run_once(&agent(), &deps).await;
    w.core.reconcile_all().await.unwrap();
    let fills = w.core.ledger().fills("paper").unwrap();
    assert!(fills.len() >= 2, "{fills:?}");
    let rows = crate::exchanges::pnl::position_pnl(&fills, &[], &["BTC".into(), "ETH".into()]);
    let btc = rows.iter().find(|r| r.symbol == "BTC").unwrap();
    assert_eq!(btc.size, Decimal::ZERO, "{btc:?}");
    let fees: Decimal = fills.iter().map(|f| f.fee).sum();
    assert!(fees > Decimal::ZERO);
    assert_eq!(btc.fees_usd, fees.normalize());
    // Closed: realized equals the round trip's price change, and nothing is unrealized.
    let bought = fills
        .iter()
        .find(|f| f.side == crate::exchanges::Side::Buy)
        .unwrap();
    let sold = fills
        .iter()
        .find(|f| f.side == crate::exchanges::Side::Sell)
        .unwrap();
    assert_eq!(bought.size, sold.size);
    assert_eq!(
        btc.realized_pnl_usd,
        ((sold.price - bought.price) * sold.size)
            .round_dp(8)
            .normalize()
    );
    assert_eq!(btc.unrealized_pnl_usd, Decimal::ZERO);
    assert!(rows.iter().any(|r| r.symbol == "ETH" && r.size.is_zero()));
}

/// Whose restriction a mode is, is its cause's type: the risk agent lifts its own
/// `Reducing` at a new window whatever its reason says, and never another's, even one whose
/// reason reads like its own.
#[actix::test]
async fn a_new_window_lifts_only_the_risk_agents_own_reduction_by_its_cause() {
    let limits = RiskConfig::default();
    let w = world(limits.clone()).await;
    let deps = risk_deps(&w);
    w.core
        .set_mode(
            TradingMode::Reducing,
            ModeCause::MarketData,
            "risk: no quote of BTC",
        )
        .unwrap();
    w.clock.advance(1_000);
    // The first check starts a window newer than that mode.
    check_venue(&limits, &deps, "paper").await.unwrap();
    let mode = w.core.mode();
    assert_eq!(
        (mode.mode, mode.cause),
        (TradingMode::Reducing, ModeCause::MarketData),
        "not the risk agent's to lift"
    );

    w.core
        .set_mode(TradingMode::Normal, ModeCause::Operator, "test")
        .unwrap();
    w.core
        .set_mode(
            TradingMode::Reducing,
            ModeCause::RiskAgent,
            "loss 6% over the window",
        )
        .unwrap();
    w.clock.advance(limits.window.as_millis() as i64 + 1_000);
    check_venue(&limits, &deps, "paper").await.unwrap();
    let mode = w.core.mode();
    assert_eq!(mode.mode, TradingMode::Normal, "{mode:?}");
    assert_eq!(mode.cause, ModeCause::RiskAgent);
}

/// The agent receives the gateway's error typed and journals the outcome by its kind: a
/// risk-gate refusal is `<outcome>_refused`, not a failure to send.
#[actix::test]
async fn an_entry_the_risk_gate_refuses_is_journaled_as_refused() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    // 90% of the account as margin: above risk.max_position_pct (25%).
    let greedy = TradingAgentConfig {
        position_pct: dec!(90),
        ..agent()
    };
    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.9}"#.into());
    let records = run_once(&greedy, &deps).await;
    assert_eq!(records[0].outcome, "enter_long_refused", "{:?}", records[0]);
    assert!(
        records[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("risk.max_position_pct")),
        "{:?}",
        records[0]
    );
    assert_eq!(btc_size(&w).await, Decimal::ZERO);
}

/// The trading agent reads other agents' signals of its `signal_kinds` into its prompt and
/// structured context (never its own, never other kinds), and publishes its own BUY/SELL
/// verdict as a `technical` signal after journaling it.
#[actix::test]
async fn the_trading_agent_reads_chosen_signals_into_its_prompt_and_publishes_its_verdicts() {
    use crate::signals::{Publish, Recent, SignalBus, SignalFilter, SignalInput, SignalsConfig};

    let w = world(RiskConfig::default()).await;
    let mut deps = trading_deps(&w);
    let bus = Slot::<SignalBus>::new();
    bus.fill(
        SignalBus::open(&w.store, SignalsConfig::default(), w.clock.clone())
            .unwrap()
            .start(),
        bus.next_token(),
        "test/signals",
    );
    deps.signals = bus.clone();
    let publish = |source: &str, kind: &str, evidence: &str| {
        bus.send(Publish(SignalInput {
            source: source.into(),
            symbol: "btc".into(),
            kind: kind.into(),
            value: dec!(0.4),
            direction: "long".into(),
            confidence: 0.7,
            evidence: evidence.into(),
            ttl: None,
        }))
    };
    publish("news-bot", "sentiment", "ETF \"inflows\" at a record")
        .await
        .unwrap()
        .unwrap();
    publish("funding-watch", "funding", "funding negative")
        .await
        .unwrap()
        .unwrap();
    publish("t", "sentiment", "my own earlier word")
        .await
        .unwrap()
        .unwrap();
    w.clock.advance(5_000);

    let mut config = agent();
    config.signal_kinds = vec![crate::signals::SignalKind::Sentiment];
    *w.script.lock() =
        Script::Answer(r#"{"action":"BUY","confidence":0.8,"reason":"trend up"}"#.into());
    let records = run_once(&config, &deps).await;
    let prompt = &records[0].prompt;
    assert!(
        prompt.contains("Recent signals from other agents (1), newest first:"),
        "{prompt}"
    );
    assert!(
        prompt.contains("5,sentiment,news-bot,long,0.7,0.4,\"ETF \"\"inflows\"\" at a record\""),
        "{prompt}"
    );
    assert!(!prompt.contains("funding negative"), "{prompt}");
    assert!(!prompt.contains("my own earlier word"), "{prompt}");

    // The verdict is on the bus as the agent's technical signal.
    let technical = bus
        .send(Recent(SignalFilter {
            kinds: vec![crate::signals::SignalKind::Technical],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(technical.len(), 1, "{technical:?}");
    let v = &technical[0];
    assert_eq!(
        (v.source.as_str(), v.symbol.as_str(), v.evidence.as_str()),
        ("t", "BTC", "trend up")
    );
    assert_eq!(v.direction, crate::signals::Direction::Long);
    assert_eq!(v.confidence, 0.8);
    assert_eq!(v.value, dec!(0.8));
    assert_eq!(v.ttl_ms, 30_000, "three intervals of 10s");

    // An agent that asks for no signals sends no section (its prompt is as before).
    let records = run_once(&agent(), &deps).await;
    assert!(
        !records[0].prompt.contains("Recent signals"),
        "{}",
        records[0].prompt
    );
}

fn swarm_agent() -> TradingAgentConfig {
    TradingAgentConfig {
        mode: AgentMode::Swarm,
        members: vec!["a".into(), "b".into(), "c".into()],
        member_timeout: Some(Duration::from_millis(200)),
        quorum_loss: Some(QuorumLossConfig {
            window: Duration::from_secs(60),
            max_failed_share: 0.5,
            recover_after: Duration::from_secs(10),
            min_answers: 3,
        }),
        ..agent()
    }
}

/// Items 3 and 4 of issue 11 on the agent's path, on the injectable clock: a hung swarm
/// is NOTHING without quorum and moves the gateway to a `SwarmQuorum` `Reducing`; while it
/// holds, the swarm still asks (flat: acting on nothing), and `recover_after` of healthy
/// answers later the gateway is back to `Normal` and the swarm's BUY trades.
#[actix::test]
async fn a_hung_swarm_reduces_the_engine_until_its_members_recover() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    *w.script.lock() = Script::Hang;
    let records = run_once(&swarm_agent(), &deps).await;
    let r = &records[0];
    assert_eq!(r.mode, super::DecisionMode::Swarm);
    assert_eq!(r.model, "a,b,c");
    assert_eq!(r.action.as_deref(), Some("NOTHING"), "{r:?}");
    assert!(
        r.reason.as_deref().unwrap().starts_with("no quorum"),
        "{r:?}"
    );
    assert!(r
        .members
        .iter()
        .all(|m| m.abstention == Some(super::Abstention::Timeout)));
    assert_eq!(
        r.votes().as_deref(),
        Some("BUY:0 SELL:0 abstain:3(timeout:3)")
    );
    let mode = w.core.mode();
    assert_eq!(
        (mode.mode, mode.cause),
        (TradingMode::Reducing, ModeCause::SwarmQuorum)
    );
    assert!(mode.reason.contains("swarm t: 100%"), "{}", mode.reason);
    assert!(
        DecisionJournal::open(&w.store).unwrap().recent(1).unwrap()[0]
            .members
            .len()
            == 3
    );

    *w.script.lock() = Script::Answer(r#"{"action":"BUY","confidence":0.8,"reason":"up"}"#.into());
    let calls = w.calls.load(Ordering::SeqCst);
    let records = run_once(&swarm_agent(), &deps).await;
    assert_eq!(
        w.calls.load(Ordering::SeqCst),
        calls + 3,
        "asked while reducing"
    );
    assert_eq!(records[0].action.as_deref(), Some("BUY"));
    assert_eq!(records[0].outcome, "skipped_mode");
    assert_eq!(
        w.core.mode().mode,
        TradingMode::Reducing,
        "not healthy long enough"
    );
    w.clock.advance(9_999);
    run_once(&swarm_agent(), &deps).await;
    assert_eq!(w.core.mode().mode, TradingMode::Reducing);
    w.clock.advance(1);
    run_once(&swarm_agent(), &deps).await;
    assert_eq!(w.core.mode().mode, TradingMode::Normal);
    assert_eq!(w.core.ledger().len(), 0, "nothing traded while reducing");
    let records = run_once(&swarm_agent(), &deps).await;
    assert_eq!(records[0].outcome, "enter_long", "{:?}", records[0]);
    assert_eq!(records[0].confidence, Some(0.8));
    assert!(btc_size(&w).await > Decimal::ZERO);
}

/// A swarm never lifts a restriction it did not set, nor replaces a halt.
#[actix::test]
async fn a_lost_swarm_quorum_never_overrides_the_risk_agent_or_a_halt() {
    let w = world(RiskConfig::default()).await;
    let deps = trading_deps(&w);
    w.core
        .set_mode(
            TradingMode::Halted,
            ModeCause::RiskAgent,
            "risk: min balance",
        )
        .unwrap();
    *w.script.lock() = Script::Hang;
    run_once(&swarm_agent(), &deps).await;
    assert_eq!(w.calls.load(Ordering::SeqCst), 0, "halted: nothing asked");
    w.core
        .set_mode(TradingMode::Normal, ModeCause::Operator, "test")
        .unwrap();
    w.core
        .set_mode(TradingMode::Reducing, ModeCause::RiskAgent, "risk: loss")
        .unwrap();
    // Reducing by the risk agent and flat: no call, no change of cause.
    run_once(&swarm_agent(), &deps).await;
    assert_eq!(w.calls.load(Ordering::SeqCst), 0);
    assert_eq!(w.core.mode().cause, ModeCause::RiskAgent);
}
