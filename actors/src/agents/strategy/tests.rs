//! The strategy agent in process against a paper venue behind a real gateway: the
//! protective levels it keeps in sled close a position on the next bar, and a bar decided
//! before a crash is not sent twice. The crash windows are set up exactly by writing the
//! sled state a crash would have left.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::run::run_once;
use super::state::{order_client_id, PendingBar, Protection};
use super::{StrategyAgentConfig, StrategyAgentState, StrategyDeps};
use crate::agents::journal::DecisionJournal;
use crate::clock::{ManualClock, SharedClock};
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{
    Amount, GatewayConfig, GatewayCore, OrderGateway, OrderIntent, PlaceKeyedOrder, Pricing,
};
use crate::exchanges::ledger::LedgerEntry;
use crate::exchanges::paper::{PaperConfig, PaperVenue};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::{Side, Timeframe, Venue};
use crate::models::ModelClient;
use crate::store::{trees, Store};
use crate::strategies::api::{Action, OrderIntent as StrategyIntent, Side as StrategySide, Size};
use crate::supervisor::Slot;

const H: i64 = 3_600_000;

fn config() -> StrategyAgentConfig {
    StrategyAgentConfig {
        name: "strat".into(),
        venue: "paper".into(),
        symbol: "BTC".into(),
        timeframe: Timeframe::H1,
        strategy: "sma_cross".into(),
        params: BTreeMap::new(),
        equity_fraction: dec!(0.1),
        max_position_usd: dec!(5000),
        history: None,
        catch_up_bars: 3,
        approve_model: None,
        model_timeout: Duration::from_secs(5),
        interval: Duration::from_secs(60),
        initial_delay: Duration::ZERO,
        jitter: 0.0,
        run_timeout: None,
        spec: None,
    }
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    paper: Arc<PaperVenue>,
    deps: StrategyDeps,
}

async fn world() -> World {
    let store = Store::temporary().unwrap();
    // 2025-11-13T00:30:00Z: half an hour into a bar.
    let manual = ManualClock::new(1_762_993_800_000);
    let clock: SharedClock = manual.clone();
    let paper = Arc::new(
        PaperVenue::open("paper", &PaperConfig::default(), &store, clock.clone()).unwrap(),
    );
    let connector = Slot::<Connector>::new();
    connector.fill(
        Connector::new(paper.clone()).start(),
        connector.next_token(),
        "test/paper",
    );
    let venues = BTreeMap::from([("paper".to_string(), connector)]);
    let core = GatewayCore::open(
        &store,
        venues,
        RiskConfig::default(),
        GatewayConfig::default(),
        clock.clone(),
    )
    .unwrap();
    core.reconcile_all().await.unwrap();
    let gateway = Slot::<OrderGateway>::new();
    gateway.fill(
        OrderGateway::new(core).start(),
        gateway.next_token(),
        "test/gateway",
    );
    let deps = StrategyDeps {
        gateway,
        // Never asked: no approve_model in these tests.
        models: ModelClient::from_slot(Slot::<crate::models::router::ModelRouter>::new()),
        journal: DecisionJournal::open(&store).unwrap(),
        state: StrategyAgentState::open(&store, "strat").unwrap(),
        clock,
        signals: Some(crate::signals::store::SignalStore::open(&store).unwrap()),
    };
    World {
        store,
        clock: manual,
        paper,
        deps,
    }
}

async fn btc(w: &World) -> Decimal {
    w.paper
        .positions()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.symbol == "BTC")
        .map(|p| p.size)
        .unwrap_or_default()
}

fn orders(w: &World) -> Vec<LedgerEntry> {
    w.store
        .tree::<LedgerEntry>(trees::ORDERS)
        .unwrap()
        .iter()
        .map(|i| i.unwrap().1)
        .collect()
}

async fn buy(w: &World, client: crate::exchanges::ClientOrderId) {
    w.deps
        .gateway
        .send(PlaceKeyedOrder {
            intent: OrderIntent {
                venue: "paper".into(),
                symbol: "BTC".into(),
                side: Side::Buy,
                amount: Amount::Usd(dec!(1000)),
                pricing: Pricing::Market,
                reduce_only: false,
                origin: "test".into(),
            },
            client_id: client,
        })
        .await
        .unwrap()
        .unwrap();
}

#[actix::test]
async fn the_levels_kept_in_sled_close_the_position_on_the_next_bar_stop_first() {
    let w = world().await;
    let cfg = config();
    // The first run only warms up.
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!((r.bars, r.decisions.len()), (0, 0), "{r:?}");
    buy(&w, order_client_id("test", "paper", "BTC", 0, 0)).await;
    assert!(btc(&w).await > Decimal::ZERO);
    // A long whose stop every bar's low is under, and whose target every high is over:
    // both touched, the stop wins.
    let mut cursor = w.deps.state.get().unwrap();
    cursor.protection = Some(Protection {
        side: Side::Buy,
        stop_loss: Some(dec!(10000000)),
        take_profit: Some(dec!(1)),
        bar_ms: 0,
    });
    w.deps.state.put(&cursor).await.unwrap();
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!(r.bars, 1, "{r:?}");
    assert_eq!(r.decisions[0].1, "stop_loss", "{r:?}");
    assert_eq!(r.decisions[0].2, "placed", "{r:?}");
    assert_eq!(btc(&w).await, Decimal::ZERO, "the stop closed the long");
    assert_eq!(w.deps.state.get().unwrap().protection, None);
    let exit = orders(&w)
        .into_iter()
        .find(|e| e.origin.contains("strat"))
        .expect("the exit order");
    assert!(
        exit.request.reduce_only && exit.request.side == Side::Sell,
        "{exit:?}"
    );

    // A target alone.
    buy(&w, order_client_id("test", "paper", "BTC", 0, 1)).await;
    let mut cursor = w.deps.state.get().unwrap();
    cursor.protection = Some(Protection {
        side: Side::Buy,
        stop_loss: None,
        take_profit: Some(dec!(1)),
        bar_ms: 0,
    });
    w.deps.state.put(&cursor).await.unwrap();
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!(r.decisions[0].1, "take_profit", "{r:?}");
    assert_eq!(btc(&w).await, Decimal::ZERO);
}

#[actix::test]
async fn a_bar_decided_and_sent_before_a_crash_is_not_sent_again() {
    let w = world().await;
    let cfg = config();
    run_once(&cfg, &w.deps).await.unwrap();
    let mut cursor = w.deps.state.get().unwrap();
    let last = cursor.last_fed_ms.unwrap();
    let bar = last + H;
    // The crash left: the bar's decision (buy) written, its order sent, the bar not marked fed.
    cursor.pending = Some(PendingBar {
        bar_ms: bar,
        exit: None,
        actions: vec![Action::Order(StrategyIntent {
            side: StrategySide::Buy,
            size: Size::ALL,
            stop_loss: None,
            take_profit: None,
        })],
    });
    w.deps.state.put(&cursor).await.unwrap();
    let id = order_client_id("strat", "paper", "BTC", bar, 0);
    buy(&w, id.clone()).await;
    let held = btc(&w).await;
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!(
        r.decisions,
        vec![(bar, "buy".to_string(), "placed".to_string())],
        "{r:?}"
    );
    assert_eq!(
        btc(&w).await,
        held,
        "the decided buy was not sent a second time"
    );
    assert_eq!(orders(&w).len(), 1);
    let cursor = w.deps.state.get().unwrap();
    assert_eq!((cursor.last_fed_ms, cursor.pending), (Some(bar), None));
}

/// A library spec entering long on a bullish sentiment signal: the agent hears the signal
/// on the bus's disk (`on_signal`) and buys on the next bar; its order and fill are kept
/// in the cursor, so later runs tell the rebuilt strategy of the fill (`on_fill`).
#[actix::test]
async fn a_signal_on_the_bus_reaches_the_strategy_and_its_fill_is_kept() {
    let w = world().await;
    let mut cfg = config();
    cfg.strategy = "library:on_sentiment".into();
    cfg.spec = Some(Box::new(
        crate::strategies::spec::validate(
            r#"{"name": "on_sentiment", "indicators": {},
                "long": {"entry": {"signal": {"kind": "sentiment", "direction": "long", "min_confidence": 0.6}}}}"#,
        )
        .unwrap(),
    ));
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!((r.bars, r.decisions.len()), (0, 0), "warm-up only: {r:?}");
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!(
        (r.bars, r.decisions.len()),
        (1, 0),
        "no signal, no trade: {r:?}"
    );

    let now = || crate::clock::Clock::now_ms(&*w.clock);
    let signals = crate::signals::store::SignalStore::open(&w.store).unwrap();
    let bullish = |id: &str, symbol: &str| crate::signals::Signal {
        id: id.into(),
        source: "sentiment-bot".into(),
        symbol: symbol.into(),
        kind: crate::signals::SignalKind::Sentiment,
        value: dec!(0.8),
        direction: crate::signals::Direction::Long,
        confidence: 0.9,
        evidence: "ETF inflows".into(),
        // Published now: the strategy hears it before the bar that closes next.
        time_ms: now(),
        ttl_ms: 4 * 3_600_000,
    };
    // Another symbol's signal is not this agent's.
    signals.put(&bullish("a", "ETH")).unwrap();
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!(r.decisions.len(), 0, "{r:?}");
    signals.put(&bullish("b", "BTC")).unwrap();
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    // An entry closes any position first (nothing here), then buys.
    let taken: Vec<(&str, &str)> = r
        .decisions
        .iter()
        .map(|d| (d.1.as_str(), d.2.as_str()))
        .collect();
    assert_eq!(
        taken,
        vec![("close", "nothing_to_close"), ("buy", "placed")]
    );
    let held = btc(&w).await;
    assert!(held > Decimal::ZERO);
    let bar = r.decisions[1].0;
    let cursor = w.deps.state.get().unwrap();
    assert_eq!(cursor.orders.len(), 1, "{cursor:?}");
    let own = &cursor.orders[0];
    assert_eq!(
        own.client_id,
        order_client_id("strat", "paper", "BTC", bar, 1)
    );
    assert_eq!((own.bar_ms, own.side, own.filled), (bar, Side::Buy, held));
    assert!(own.settled && own.avg_price.is_some(), "{own:?}");

    // The signal stays alive for the next bar: held, so no second entry.
    w.clock.advance(H);
    let r = run_once(&cfg, &w.deps).await.unwrap();
    assert_eq!(r.decisions.len(), 0, "{r:?}");
    assert_eq!(btc(&w).await, held);
}
