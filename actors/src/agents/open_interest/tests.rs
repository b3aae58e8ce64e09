//! The open-interest agent inside the crate: the Binance USDⓈ-M REST mock as the venue
//! (its public reads through the real venue), the futures websocket mock replaying
//! documented `aggTrade` frames into a real stream feed, the real signal bus, sled state
//! across restarts of the agent, and a manual clock.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::ManualClock;
use crate::exchanges::binance_futures::mock::MockBinanceFutures;
use crate::exchanges::binance_futures::ws_mock::{agg_trade_print, Conn, FuturesWsMock};
use crate::exchanges::binance_futures::{open_public, BinanceFuturesConfig};
use crate::exchanges::stream::binance_futures::FuturesMarketProtocol;
use crate::exchanges::stream::{StreamFeed, StreamSettings};
use crate::signals::{Recent, Signal, SignalFilter, SignalsConfig};
use crate::store::Store;

fn wall_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    bus: Slot<SignalBus>,
    rest: MockBinanceFutures,
    venue: BinanceFuturesConfig,
}

fn world() -> World {
    let store = Store::temporary().unwrap();
    // The venue mock stamps its history with the wall clock: the agent's clock starts there.
    let clock = ManualClock::new(wall_ms());
    let bus = Slot::<SignalBus>::new();
    let shared: SharedClock = clock.clone();
    bus.fill(
        SignalBus::open(&store, SignalsConfig::default(), shared)
            .unwrap()
            .start(),
        bus.next_token(),
        "test/signals",
    );
    let rest = MockBinanceFutures::start();
    let venue = BinanceFuturesConfig {
        base_url: rest.url(),
        symbols: vec!["BTC".into(), "ETH".into()],
        request_timeout: Duration::from_secs(5),
        ..BinanceFuturesConfig::default()
    };
    World {
        store,
        clock,
        bus,
        rest,
        venue,
    }
}

fn config() -> OpenInterestAgentConfig {
    OpenInterestAgentConfig {
        name: "oi".into(),
        venue: "bnf".into(),
        symbols: vec!["BTC".into()],
        interval: Duration::from_secs(60),
        initial_delay: Duration::ZERO,
        jitter: 0.0,
        run_timeout: None,
        windows: vec!["5m".into(), "1h".into()],
        change_pct: ChangeThreshold::All(2.0),
        whale_usd: dec!(100000),
        signal_ttl: Duration::from_secs(3600),
    }
}

impl World {
    /// A fresh agent on the world's store (as after a restart).
    fn agent(
        &self,
        config: &OpenInterestAgentConfig,
        streams: Option<StreamBook>,
    ) -> OpenInterestAgent {
        let shared: SharedClock = self.clock.clone();
        let reader = open_public("bnf", &self.venue, shared.clone()).unwrap();
        OpenInterestAgent::new(
            config.clone(),
            OpenInterestDeps {
                reader,
                streams,
                signals: self.bus.clone(),
                journal: DecisionJournal::open(&self.store).unwrap(),
                state: OiState::open(&self.store, &config.name).unwrap(),
                clock: shared,
            },
        )
    }

    async fn signals(&self, kind: SignalKind) -> Vec<Signal> {
        self.bus
            .send(Recent(SignalFilter {
                kinds: vec![kind],
                ..SignalFilter::default()
            }))
            .await
            .unwrap()
    }
}

async fn run(agent: &OpenInterestAgent) -> RunReport {
    run_once(&agent.config, &agent.deps, &agent.notes)
        .await
        .unwrap()
}

#[actix::test]
async fn binance_open_interest_is_seeded_crosses_once_and_survives_a_restart() {
    let w = world();
    let cfg = config();
    let agent = w.agent(&cfg, None);
    let first = run(&agent).await;
    assert_eq!(first.failures, Vec::<String>::new());
    // The longest window (1 h) and half again at 5 minutes: 90 m / 5 m + 1 = 19 points.
    assert_eq!(first.seeded, vec![("BTC".to_string(), 19)]);
    assert_eq!(first.sampled, vec![("BTC".to_string(), dec!(81234.567))]);
    // The mock's history rises by 1 contract per period: far under 2 %.
    assert_eq!(first.changes.len(), 2, "{first:?}");
    assert!(first.signals.is_empty());
    let seeded_len = agent.deps.state.series("BTC").unwrap().len();
    assert_eq!(seeded_len, 20, "19 seeded and 1 sampled");
    assert!(agent.note().unwrap().contains("no stream configured"));

    // Open interest +10.8 % and the price up: new longs, over both windows, once.
    w.rest.set_open_interest("BTCUSDT", dec!(90000));
    w.rest.set_book("BTCUSDT", dec!(61990), dec!(62010));
    w.clock.advance(60_000);
    let second = run(&agent).await;
    let crossed: Vec<(String, Crossed)> = second
        .signals
        .iter()
        .map(|(_, win, c)| (win.clone(), *c))
        .collect();
    assert_eq!(
        crossed,
        vec![
            ("5m".to_string(), Crossed::Rising),
            ("1h".to_string(), Crossed::Rising)
        ]
    );
    let on_bus = w.signals(SignalKind::OpenInterest).await;
    assert_eq!(on_bus.len(), 2);
    let s = &on_bus[0];
    assert_eq!((s.symbol.as_str(), s.direction), ("BTC", Direction::Long));
    assert!(
        s.evidence.starts_with("new longs: open interest +10."),
        "{}",
        s.evidence
    );
    assert!(s.evidence.contains("price +3.33%"), "{}", s.evidence);
    assert!(s.value > dec!(10.7) && s.value < dec!(10.9), "{}", s.value);

    // The state persists: no republish, in this agent or a restarted one.
    w.clock.advance(60_000);
    assert!(run(&agent).await.signals.is_empty());
    let restarted = w.agent(&cfg, None);
    w.clock.advance(60_000);
    let after = run(&restarted).await;
    assert!(after.signals.is_empty(), "{after:?}");
    assert!(
        restarted.deps.state.series("BTC").unwrap().len() >= seeded_len + 3,
        "the series survives the restart"
    );
    assert_eq!(w.signals(SignalKind::OpenInterest).await.len(), 2);

    // Back inside the threshold re-arms the 5-minute window; out again, a new signal.
    w.rest.set_open_interest("BTCUSDT", dec!(81234.567));
    w.clock.advance(60_000);
    let back = run(&restarted).await;
    assert!(back.signals.is_empty());
    let edge = restarted.deps.state.edge("BTC", "5m").unwrap();
    assert_eq!(edge.crossed, None, "{edge:?}");
    w.rest.set_open_interest("BTCUSDT", dec!(70000));
    w.clock.advance(60_000);
    let down = run(&restarted).await;
    assert!(down
        .signals
        .iter()
        .any(|(s, win, c)| s == "BTC" && win == "5m" && *c == Crossed::Falling));

    // Every run was journaled.
    let rows = DecisionJournal::open(&w.store)
        .unwrap()
        .list(&crate::agents::journal::JournalFilter {
            agent: Some("oi".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(rows.len() >= 6, "{}", rows.len());
    assert!(rows
        .iter()
        .all(|r| r.action.as_deref() == Some("OPEN_INTEREST")));
}

#[actix::test]
async fn whale_prints_from_the_futures_stream_are_published_once() {
    let w = world();
    let ws = FuturesWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register("bnf", &ws.url(), Duration::from_secs(3600));
    let mut venue = w.venue.clone();
    venue.ws_url = ws.url();
    let _actor = StreamFeed::new(
        StreamSettings::new("bnf", &ws.url(), Duration::from_secs(3600)),
        Box::new(FuturesMarketProtocol::new(&venue)),
        feed.clone(),
    )
    .start();
    until("connected", || {
        feed.is_connected() && ws.has_connection(Conn::Market)
    })
    .await;
    let t = wall_ms();
    let print =
        |id, qty: &str, maker| agg_trade_print("BTCUSDT", id, "60000", qty, maker, t + id as i64);
    // A taker buy of 2 BTC (120 000 USD), a small one, a taker sell of 3 BTC.
    assert!(ws.send_market("btcusdt@aggTrade", print(1, "2", false)));
    assert!(ws.send_market("btcusdt@aggTrade", print(2, "0.1", false)));
    assert!(ws.send_market("btcusdt@aggTrade", print(3, "3", true)));
    until("three trades on the tape", || feed.tape().len("BTC") == 3).await;

    let cfg = config();
    let agent = w.agent(&cfg, Some(book.clone()));
    assert_eq!(agent.note(), None, "the venue streams");
    let first = run(&agent).await;
    assert_eq!(first.failures, Vec::<String>::new());
    assert_eq!(
        first.whales,
        vec![("BTC".to_string(), 1), ("BTC".to_string(), 3)]
    );
    let whales = w.signals(SignalKind::Whale).await;
    assert_eq!(whales.len(), 2);
    let sell = whales
        .iter()
        .find(|s| s.direction == Direction::Short)
        .unwrap();
    assert_eq!(sell.value, dec!(180000));
    assert!(
        sell.evidence
            .contains("whale sold 3 BTC at 60000 = 180000 USD on bnf"),
        "{}",
        sell.evidence
    );

    // A replay of print 3 (a reconnect), and a small new one: nothing new.
    assert!(ws.send_market("btcusdt@aggTrade", print(3, "3", true)));
    assert!(ws.send_market("btcusdt@aggTrade", print(4, "0.01", true)));
    until("the fourth trade", || feed.tape().len("BTC") == 4).await;
    assert!(run(&agent).await.whales.is_empty());
    // A restarted agent with the same tape (the feed outlives it): nothing twice.
    let restarted = w.agent(&cfg, Some(book.clone()));
    assert!(run(&restarted).await.whales.is_empty());
    // A new whale after the restart is published.
    assert!(ws.send_market("btcusdt@aggTrade", print(5, "10", false)));
    until("the fifth trade", || feed.tape().len("BTC") == 5).await;
    assert_eq!(run(&restarted).await.whales, vec![("BTC".to_string(), 5)]);
    assert_eq!(w.signals(SignalKind::Whale).await.len(), 3);
    assert_eq!(restarted.deps.state.whale("BTC").unwrap().prints, 3);
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

/// Hyperliquid keeps no open-interest history: the agent says so once, in the log and its
/// status, samples from `metaAndAssetCtxs`, measures a window once it has sampled that
/// long, and reads whale prints from the `trades` channel (a replayed snapshot once).
#[actix::test]
async fn hyperliquid_samples_only_and_reads_whales_from_the_trades_channel() {
    use crate::exchanges::hyperliquid::config::HyperliquidConfig;
    use crate::exchanges::hyperliquid::mock::MockHyperliquid;
    use crate::exchanges::hyperliquid::signing::{Network, PrivateKey};
    use crate::exchanges::hyperliquid::venue::HyperliquidVenue;
    use crate::exchanges::hyperliquid::ws_mock::{trade_print_frame, HlWsMock};
    use crate::exchanges::stream::hyperliquid::HyperliquidProtocol;

    const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
    let w = world();
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let rest = MockHyperliquid::start(wallet, Network::Testnet);
    rest.set_asset_ctx(
        "BTC",
        dec!(0.0000125),
        dec!(27353.17682),
        Some(dec!(77562.0)),
        None,
    );
    let hl = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(rest.url()),
        wallet_address: wallet.to_string(),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let shared: SharedClock = w.clock.clone();
    let reader: Arc<dyn DerivativesData> =
        Arc::new(HyperliquidVenue::open("hl", &hl, &|_| None, shared.clone()).unwrap());
    let ws = HlWsMock::start().await.unwrap();
    let book = StreamBook::new();
    let feed = book.register("hl", &ws.url(), Duration::from_secs(3600));
    let _actor = StreamFeed::new(
        StreamSettings::new("hl", &ws.url(), Duration::from_secs(3600)),
        Box::new(HyperliquidProtocol::public(&["BTC".to_string()])),
        feed.clone(),
    )
    .start();
    until("connected", || feed.is_connected() && ws.has_connection()).await;

    let mut cfg = config();
    cfg.venue = "hl".into();
    cfg.windows = vec!["5m".into()];
    let agent = OpenInterestAgent::new(
        cfg.clone(),
        OpenInterestDeps {
            reader,
            streams: Some(book.clone()),
            signals: w.bus.clone(),
            journal: DecisionJournal::open(&w.store).unwrap(),
            state: OiState::open(&w.store, "oi").unwrap(),
            clock: shared,
        },
    );
    let first = run(&agent).await;
    assert_eq!(first.failures, Vec::<String>::new());
    assert!(first.seeded.is_empty());
    assert_eq!(first.sampled, vec![("BTC".to_string(), dec!(27353.17682))]);
    assert!(first.changes.is_empty(), "one sample measures no window");
    let note = agent.note().unwrap();
    assert!(
        note.starts_with("no open-interest history from venue `hl`"),
        "{note}"
    );

    // Five minutes of samples later, +5 % at a lower mark: new shorts.
    for _ in 0..4 {
        w.clock.advance(60_000);
        assert!(run(&agent).await.signals.is_empty());
    }
    rest.set_asset_ctx(
        "BTC",
        dec!(0.0000125),
        dec!(28720.8356610),
        Some(dec!(76000)),
        None,
    );
    w.clock.advance(60_000);
    let fifth = run(&agent).await;
    assert_eq!(
        fifth.signals,
        vec![("BTC".to_string(), "5m".to_string(), Crossed::Rising)]
    );
    let s = &w.signals(SignalKind::OpenInterest).await[0];
    assert_eq!(s.direction, Direction::Short);
    assert!(
        s.evidence
            .starts_with("new shorts: open interest +5.00% over 5m"),
        "{}",
        s.evidence
    );
    assert_eq!(agent.note().unwrap(), note, "said once");

    // Whale prints on `trades`: 2 BTC bought by a taker (B), and the same frame again.
    let t = wall_ms();
    let frame = trade_print_frame("BTC", "B", "77000", "2", 900_001, t);
    assert!(ws.send_text(frame.clone()));
    assert!(ws.send_text(trade_print_frame(
        "BTC",
        "A",
        "77000",
        "0.5",
        900_002,
        t + 1
    )));
    until("two prints on the tape", || feed.tape().len("BTC") == 2).await;
    w.clock.advance(60_000);
    assert_eq!(run(&agent).await.whales, vec![("BTC".to_string(), 900_001)]);
    assert!(ws.send_text(frame));
    w.clock.advance(60_000);
    assert!(run(&agent).await.whales.is_empty());
    let whale = &w.signals(SignalKind::Whale).await[0];
    assert_eq!(
        (whale.direction, whale.value),
        (Direction::Long, dec!(154000))
    );
    assert!(
        whale
            .evidence
            .contains("on hl (aggressor buy, trade 900001)"),
        "{}",
        whale.evidence
    );
}
