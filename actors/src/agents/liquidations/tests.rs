//! The liquidation agent inside the crate: the futures websocket mock replaying documented
//! `forceOrder` frames into a real stream feed, the real signal bus, sled state across
//! restarts of the agent, and a manual clock on the window grid.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::ManualClock;
use crate::exchanges::binance_futures::ws_mock::{force_order_event, Conn, FuturesWsMock};
use crate::exchanges::binance_futures::BinanceFuturesConfig;
use crate::exchanges::stream::binance_futures::FuturesMarketProtocol;
use crate::exchanges::stream::{StreamFeed, StreamSettings, VenueFeed};
use crate::signals::{Recent, Signal, SignalFilter, SignalsConfig};
use crate::store::Store;

const MINUTE: Millis = 60_000;

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    bus: Slot<SignalBus>,
    ws: FuturesWsMock,
    book: StreamBook,
    feed: Arc<VenueFeed>,
    /// The start of a grid minute.
    t0: Millis,
}

async fn world() -> World {
    let store = Store::temporary().unwrap();
    let t0 = chrono::Utc::now().timestamp_millis().div_euclid(MINUTE) * MINUTE;
    let clock = ManualClock::new(t0);
    let bus = Slot::<SignalBus>::new();
    let shared: SharedClock = clock.clone();
    bus.fill(
        SignalBus::open(&store, SignalsConfig::default(), shared)
            .unwrap()
            .start(),
        bus.next_token(),
        "test/signals",
    );
    let ws = FuturesWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register("bnf", &ws.url(), Duration::from_secs(3600));
    let venue = BinanceFuturesConfig {
        ws_url: ws.url(),
        symbols: vec!["BTC".into()],
        ..BinanceFuturesConfig::default()
    };
    StreamFeed::new(
        StreamSettings::new("bnf", &ws.url(), Duration::from_secs(3600)),
        Box::new(FuturesMarketProtocol::new(&venue)),
        feed.clone(),
    )
    .start();
    until("connected", || {
        feed.is_connected() && ws.has_connection(Conn::Market)
    })
    .await;
    World {
        store,
        clock,
        bus,
        ws,
        book,
        feed,
        t0,
    }
}

fn config() -> LiquidationAgentConfig {
    LiquidationAgentConfig {
        name: "liq".into(),
        venue: "bnf".into(),
        symbols: vec!["BTC".into(), "ETH".into()],
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        jitter: 0.0,
        run_timeout: None,
        window: Duration::from_secs(60),
        baseline: Duration::from_secs(600),
        spike_factor: 3.0,
        min_usd: dec!(10000),
        signal_ttl: Duration::from_secs(1800),
    }
}

impl World {
    /// A fresh agent on the world's store (as after a restart), watching from now.
    fn agent(&self) -> LiquidationAgent {
        let shared: SharedClock = self.clock.clone();
        LiquidationAgent::new(
            config(),
            LiquidationDeps {
                streams: self.book.clone(),
                signals: self.bus.clone(),
                journal: DecisionJournal::open(&self.store).unwrap(),
                state: LiqState::open(&self.store, "liq").unwrap(),
                clock: shared,
            },
        )
    }

    async fn signals(&self) -> Vec<Signal> {
        self.bus
            .send(Recent(SignalFilter {
                kinds: vec![SignalKind::Liquidations],
                ..SignalFilter::default()
            }))
            .await
            .unwrap()
    }

    async fn liquidate(&self, pair: &str, side: &str, qty: &str, px: &str, at: Millis) {
        let before = self.feed.derivatives().liquidations.counts().kept;
        assert!(self.ws.send_market(
            "!forceOrder@arr",
            force_order_event(pair, side, qty, px, at)
        ));
        until("the liquidation is kept", || {
            self.feed.derivatives().liquidations.counts().kept == before + 1
        })
        .await;
    }
}

async fn run(agent: &LiquidationAgent) -> RunReport {
    run_once(&agent.config, &agent.deps, agent.observed_from)
        .await
        .unwrap()
}

#[actix::test]
async fn a_cascade_and_a_squeeze_are_published_once_and_the_baseline_survives_a_restart() {
    let w = world().await;
    let agent = w.agent();
    let quiet = run(&agent).await;
    assert_eq!(quiet.failures, Vec::<String>::new());
    assert!(quiet.signals.is_empty());

    // Longs liquidated: 0.5 BTC at 59 000 = 29 500 USD in the window, over min_usd.
    w.liquidate("BTCUSDT", "SELL", "0.5", "59000", w.t0 + 1_000)
        .await;
    // Not watched: SOL.
    w.liquidate("SOLUSDT", "SELL", "1000", "150", w.t0 + 1_500)
        .await;
    w.clock.set(w.t0 + 2_000);
    let spike = run(&agent).await;
    assert_eq!(
        spike.signals,
        vec![("BTC".to_string(), Side::Sell, dec!(2.95))]
    );
    assert!(spike.measured.iter().all(|m| m.symbol != "SOL"));
    let on_bus = w.signals().await;
    assert_eq!(on_bus.len(), 1);
    assert_eq!(on_bus[0].direction, Direction::Short);
    assert_eq!(on_bus[0].value, dec!(29500));
    assert!(
        on_bus[0]
            .evidence
            .starts_with("long-liquidation cascade: 1 BTC longs liquidated for 29500 USD in 1m"),
        "{}",
        on_bus[0].evidence
    );

    // The spike persists: no republish, here or in a restarted agent.
    w.clock.set(w.t0 + 3_000);
    assert!(run(&agent).await.signals.is_empty());
    let restarted = w.agent();
    w.clock.set(w.t0 + 4_000);
    assert!(run(&restarted).await.signals.is_empty());

    // Shorts liquidated in two orders: 6 000 alone is under min_usd, 15 000 is a squeeze.
    w.liquidate("ETHUSDT", "BUY", "2", "3000", w.t0 + 5_000)
        .await;
    w.clock.set(w.t0 + 6_000);
    let under = run(&restarted).await;
    assert!(under.signals.is_empty());
    let eth = under
        .measured
        .iter()
        .find(|m| m.symbol == "ETH" && m.side == Side::Buy)
        .unwrap();
    assert_eq!(eth.ratio, dec!(0.6));
    w.liquidate("ETHUSDT", "BUY", "3", "3000", w.t0 + 7_000)
        .await;
    w.clock.set(w.t0 + 8_000);
    let squeeze = run(&restarted).await;
    assert_eq!(
        squeeze.signals,
        vec![("ETH".to_string(), Side::Buy, dec!(1.5))]
    );
    let eth_signal = w
        .signals()
        .await
        .into_iter()
        .find(|s| s.symbol == "ETH")
        .unwrap();
    assert_eq!(eth_signal.direction, Direction::Long);
    assert!(eth_signal
        .evidence
        .starts_with("short squeeze: 2 ETH shorts"));

    // The grid minute closes: both windows enter the baselines (the restarted agent began
    // watching inside it, so a third agent that started at t0 closes it).
    let from_start = LiquidationAgent {
        observed_from: w.t0,
        ..w.agent()
    };
    w.clock.set(w.t0 + MINUTE + 5_000);
    let closed = run(&from_start).await;
    assert_eq!(closed.windows_closed, 1);
    let b = from_start.deps.state.baseline("BTC", Side::Sell).unwrap();
    assert_eq!(
        b.windows.iter().map(|(s, v)| (*s, *v)).collect::<Vec<_>>(),
        vec![(w.t0, dec!(29500))]
    );
    // Out of the trailing window: re-armed.
    assert!(
        !from_start
            .deps
            .state
            .spike("BTC", Side::Sell)
            .unwrap()
            .active
    );

    // A restart keeps the baseline; the next minute (quiet) adds a zero.
    let again = LiquidationAgent {
        observed_from: w.t0,
        ..w.agent()
    };
    w.clock.set(w.t0 + 2 * MINUTE + 1_000);
    assert_eq!(run(&again).await.windows_closed, 1);
    let b = again.deps.state.baseline("BTC", Side::Sell).unwrap();
    assert_eq!(b.windows.len(), 2);
    assert_eq!(b.stats().mean, dec!(14750));
    // Now a 29 500 window is measured against mean 14 750 + 3 × 14 750 = 59 000: no spike.
    w.liquidate("BTCUSDT", "SELL", "0.5", "59000", w.t0 + 2 * MINUTE + 2_000)
        .await;
    w.clock.set(w.t0 + 2 * MINUTE + 3_000);
    let calm = run(&again).await;
    assert!(calm.signals.is_empty());
    let btc = calm
        .measured
        .iter()
        .find(|m| m.symbol == "BTC" && m.side == Side::Sell)
        .unwrap();
    assert_eq!((btc.threshold, btc.ratio), (dec!(59000), dec!(0.5)));
    assert_eq!(w.signals().await.len(), 2);
}

/// Polls `cond` every 5 ms until it holds; fails after a generous bound (a hang, not a
/// latency assertion).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// With no symbols configured the agent watches every contract the venue liquidates, and
/// keeps a baseline for each one it has seen.
#[actix::test]
async fn an_agent_without_symbols_watches_every_contract() {
    let w = world().await;
    let mut cfg = config();
    cfg.symbols = Vec::new();
    let shared: SharedClock = w.clock.clone();
    let agent = LiquidationAgent::new(
        cfg,
        LiquidationDeps {
            streams: w.book.clone(),
            signals: w.bus.clone(),
            journal: DecisionJournal::open(&w.store).unwrap(),
            state: LiqState::open(&w.store, "liq").unwrap(),
            clock: shared,
        },
    );
    // 1000PEPEUSDT is no configured contract: its symbol is the pair without USDT.
    w.liquidate("1000PEPEUSDT", "BUY", "2000000", "0.01", w.t0 + 1_000)
        .await;
    w.liquidate("SOLUSDT", "SELL", "1000", "150", w.t0 + 2_000)
        .await;
    w.clock.set(w.t0 + 3_000);
    let r = run(&agent).await;
    let mut fired: Vec<(String, Side)> = r
        .signals
        .iter()
        .map(|(s, side, _)| (s.clone(), *side))
        .collect();
    fired.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        fired,
        vec![
            ("1000PEPE".to_string(), Side::Buy),
            ("SOL".to_string(), Side::Sell)
        ]
    );
    w.clock.set(w.t0 + MINUTE + 1_000);
    assert_eq!(run(&agent).await.windows_closed, 1);
    assert_eq!(
        agent.deps.state.symbols().unwrap(),
        vec!["1000PEPE".to_string(), "SOL".to_string()]
    );
    let sol = agent.deps.state.baseline("SOL", Side::Sell).unwrap();
    assert_eq!(sol.windows.back().map(|(_, v)| *v), Some(dec!(150000)));
}
