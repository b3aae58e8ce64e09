//! The funding agent inside the crate, end to end: the Hyperliquid mock and the Binance
//! USDⓈ-M mock (with its websocket mock for the `markPrice` stream) behind the real venue
//! readers, the real signal bus, the router over the offline `local` rules, sled state
//! across restarts, and a manual clock where the venue allows one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::{system_clock, ManualClock};
use crate::exchanges::binance_futures::mock::MockBinanceFutures;
use crate::exchanges::binance_futures::ws_mock::{self, FuturesWsMock};
use crate::exchanges::binance_futures::{open_public, BinanceFuturesConfig};
use crate::exchanges::hyperliquid::mock::{MockFunding, MockHyperliquid};
use crate::exchanges::hyperliquid::{HyperliquidConfig, HyperliquidVenue, Network, PrivateKey};
use crate::exchanges::stream::binance_futures::FuturesMarketProtocol;
use crate::exchanges::stream::{StreamFeed, StreamSettings};
use crate::models::pool::{HealthTable, ModelPool};
use crate::models::router::{
    build_provider_with_env, DeploymentConfig, DeploymentRoute, ModelRouter, RoutingStrategy,
};
use crate::signals::{Direction, Recent, SignalFilter, SignalsConfig};
use crate::store::Store;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const HOUR: Millis = 3_600_000;
/// 2026-12-03 09:10 UTC.
const NOW: Millis = 1_796_288_400_000 + 600_000;

fn hl_mock() -> MockHyperliquid {
    MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    )
}

fn hl_reader(mock: &MockHyperliquid, clock: SharedClock) -> Arc<dyn DerivativesData> {
    let cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(mock.url()),
        wallet_address: PrivateKey::from_hex(KEY).unwrap().address().to_string(),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    Arc::new(HyperliquidVenue::open("hl", &cfg, &|_| None, clock).unwrap())
}

/// 90 hourly settlements before `now` alternating 0.00001 and 0.000015: mean 0.0000125,
/// sample sd about 0.0000025.
fn calm_history(now: Millis) -> Vec<MockFunding> {
    let last = now.div_euclid(HOUR) * HOUR;
    (0..90)
        .map(|i| MockFunding {
            time: last - i * HOUR,
            rate: if i % 2 == 0 {
                dec!(0.00001)
            } else {
                dec!(0.000015)
            },
            premium: None,
        })
        .collect()
}

fn config(venue: &str) -> FundingAgentConfig {
    FundingAgentConfig {
        name: "funding-watch".into(),
        venue: Some(venue.into()),
        venues: vec![],
        symbols: vec!["BTC".into()],
        interval: Duration::from_secs(60),
        initial_delay: Duration::from_secs(1),
        jitter: 0.0,
        run_timeout: None,
        history: 90,
        annualized_pct: 50.0,
        zscore: 3.0,
        model: None,
        model_timeout: Duration::from_secs(5),
        signal_ttl: Duration::from_secs(4 * 3600),
    }
}

fn local() -> ModelClient {
    let deployment = DeploymentConfig::local("local");
    let health = HealthTable::new();
    let provider = build_provider_with_env(&deployment, &|_| None).expect("provider builds");
    let pool = ModelPool::new(
        deployment.id.clone(),
        provider,
        deployment.pool_settings(),
        health.entry(&deployment.id),
    )
    .start();
    let route = DeploymentRoute::new(deployment.id.clone(), Arc::new(pool));
    let addr = ModelRouter::new(health, Store::temporary().unwrap())
        .with_model("default", RoutingStrategy::OrderedFallback, vec![route])
        .start();
    let slot = Slot::<ModelRouter>::new();
    slot.fill(addr, slot.next_token(), "test/router");
    ModelClient::from_slot(slot)
}

struct World {
    store: Store,
    clock: SharedClock,
    bus: Slot<SignalBus>,
    models: ModelClient,
}

fn world(clock: SharedClock) -> World {
    let store = Store::temporary().unwrap();
    let bus = Slot::<SignalBus>::new();
    bus.fill(
        SignalBus::open(&store, SignalsConfig::default(), clock.clone())
            .unwrap()
            .start(),
        bus.next_token(),
        "test/signals",
    );
    World {
        store,
        clock,
        bus,
        models: local(),
    }
}

impl World {
    /// A fresh agent on the world's store (as after a restart).
    fn deps(
        &self,
        readers: &[(&str, Arc<dyn DerivativesData>)],
        streams: Option<StreamBook>,
    ) -> FundingDeps {
        FundingDeps {
            readers: readers
                .iter()
                .map(|(n, r)| (n.to_string(), r.clone()))
                .collect::<BTreeMap<_, _>>(),
            streams,
            models: self.models.clone(),
            signals: self.bus.clone(),
            journal: DecisionJournal::open(&self.store).unwrap(),
            state: FundingAgentState::open(&self.store, "funding-watch").unwrap(),
            clock: self.clock.clone(),
        }
    }

    async fn funding_signals(&self) -> Vec<crate::signals::Signal> {
        self.bus
            .send(Recent(SignalFilter {
                kinds: vec![SignalKind::Funding],
                ..SignalFilter::default()
            }))
            .await
            .unwrap()
    }
}

#[actix::test]
async fn hyperliquid_crossing_a_threshold_signals_once_and_a_restart_does_not_repeat_it() {
    let mock = hl_mock();
    mock.set_funding_history("BTC", calm_history(NOW));
    let clock = ManualClock::new(NOW);
    let w = world(clock.clone());
    let reader = hl_reader(&mock, clock.clone());
    let cfg = config("hl");
    let deps = w.deps(&[("hl", reader.clone())], None);

    // The baseline 0.0000125 per hour: 10.95 %/year, z 0 — normal, nothing published.
    let r = run_once(&cfg, &deps).await.unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.readings.len(), 1);
    let b = &r.readings[0];
    assert_eq!(
        (b.rate, b.annualized_pct, b.interval_hours),
        (dec!(0.0000125), dec!(10.95), 1)
    );
    assert_eq!((b.source, b.history, b.history_fetched), ("rest", 90, true));
    assert!(b.zscore.unwrap().abs() < 1e-9, "{:?}", b.zscore);
    assert_eq!(b.state, FundingState::Normal);
    assert!(r.signals.is_empty());
    assert!(w.funding_signals().await.is_empty());

    // Funding jumps to 0.0001 per hour (87.6 %/year): extreme positive, one signal.
    mock.set_funding("BTC", dec!(0.0001));
    clock.advance(60_000);
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(
        r.signals,
        [(
            "hl".to_string(),
            "BTC".to_string(),
            FundingState::ExtremePositive
        )]
    );
    // Within the same hour the history is the cached one.
    assert!(!r.readings[0].history_fetched);
    let z = r.readings[0].zscore.unwrap();
    let sd = (90.0f64 / 89.0).sqrt() * 0.0000025;
    assert!((z - (0.0001 - 0.0000125) / sd).abs() < 1e-6, "{z}");
    let found = w.funding_signals().await;
    assert_eq!(found.len(), 1);
    let s = &found[0];
    assert_eq!(
        (s.source.as_str(), s.symbol.as_str()),
        ("funding-watch", "BTC")
    );
    assert_eq!(s.direction, Direction::Short);
    assert_eq!(s.value, dec!(0.0001));
    assert_eq!(s.ttl_ms, 4 * 3_600_000);
    assert!(
        s.confidence > 0.5 && s.confidence <= 1.0,
        "{}",
        s.confidence
    );
    for part in [
        "hl BTC: funding 0.0100% per 1h",
        "87.60%/year annualized",
        &format!("z-score {z:+.2} vs the last 90 settled"),
        "extreme_positive (longs pay shorts: crowded longs)",
    ] {
        assert!(s.evidence.contains(part), "{part} not in {}", s.evidence);
    }

    // Staying extreme publishes nothing more.
    clock.advance(60_000);
    let r = run_once(&cfg, &deps).await.unwrap();
    assert!(r.signals.is_empty(), "{r:?}");
    assert_eq!(r.readings[0].state, FundingState::ExtremePositive);

    // A restart (new agent and reader on the same data) does not publish it again, nor
    // refetch the history before the next settlement.
    let fresh = hl_reader(&mock, clock.clone());
    let deps = w.deps(&[("hl", fresh)], None);
    clock.advance(60_000);
    let r = run_once(&cfg, &deps).await.unwrap();
    assert!(r.signals.is_empty(), "{r:?}");
    assert!(!r.readings[0].history_fetched);
    assert_eq!(w.funding_signals().await.len(), 1);
    assert_eq!(mock.info_count("fundingHistory"), 1);

    // The next hour settles: the history is read again (once).
    clock.advance(HOUR);
    let r = run_once(&cfg, &deps).await.unwrap();
    assert!(r.readings[0].history_fetched);
    run_once(&cfg, &deps).await.unwrap();
    assert_eq!(mock.info_count("fundingHistory"), 2);

    // Shorts pay now: a change of state, one more signal, leaning long.
    mock.set_funding("BTC", dec!(-0.0001));
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(r.signals[0].2, FundingState::ExtremeNegative);
    let found = w.funding_signals().await;
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].direction, Direction::Long);
    // Back to normal: a neutral signal, then quiet.
    mock.set_funding("BTC", dec!(0.0000125));
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(r.signals[0].2, FundingState::Normal);
    assert_eq!(w.funding_signals().await[0].direction, Direction::Neutral);
    assert!(run_once(&cfg, &deps).await.unwrap().signals.is_empty());

    // Every run is journaled with its inputs and outputs.
    let journal = DecisionJournal::open(&w.store).unwrap();
    let runs: Vec<_> = journal
        .recent(50)
        .unwrap()
        .into_iter()
        .filter(|d| d.action.as_deref() == Some("FUNDING"))
        .collect();
    assert_eq!(runs.len(), 9);
    let crossed = runs
        .iter()
        .find(|d| d.outcome.contains("hl:BTC extreme_positive"))
        .unwrap();
    assert!(
        crossed
            .reason
            .as_deref()
            .unwrap()
            .contains("hl:BTC rate 0.0001 per 1h (rest) -> 87.60%/year"),
        "{:?}",
        crossed.reason
    );
}

#[actix::test]
async fn a_model_comment_rides_on_the_signal_and_a_failing_model_costs_only_the_comment() {
    let mock = hl_mock();
    mock.set_funding_history("BTC", calm_history(NOW));
    mock.set_funding_history("ETH", calm_history(NOW));
    mock.set_funding("BTC", dec!(0.0001));
    mock.set_funding("ETH", dec!(0.0001));
    let clock = ManualClock::new(NOW);
    let w = world(clock.clone());
    let deps = w.deps(&[("hl", hl_reader(&mock, clock.clone()))], None);
    let mut cfg = config("hl");
    cfg.model = Some("default".into());
    let r = run_once(&cfg, &deps).await.unwrap();
    assert!(r.comment_failures.is_empty(), "{:?}", r.comment_failures);
    let s = &w.funding_signals().await[0];
    // The offline rules engine's answer to free text, as its comment.
    assert!(s.evidence.contains(". Comment: "), "{}", s.evidence);
    assert!(
        s.evidence.contains("not a language model"),
        "{}",
        s.evidence
    );
    let journal = DecisionJournal::open(&w.store).unwrap();
    let asked = journal
        .recent(10)
        .unwrap()
        .into_iter()
        .find(|d| d.action.as_deref() == Some("COMMENT"))
        .unwrap();
    assert!(
        asked
            .prompt
            .contains("Funding rate: 0.0001 per 1h settlement"),
        "{}",
        asked.prompt
    );
    assert_eq!(asked.system, comment::SYSTEM);

    // A model the router does not know: the signal still goes out, the failure is
    // journaled.
    cfg.model = Some("missing-model".into());
    cfg.symbols = vec!["ETH".into()];
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(r.signals.len(), 1);
    assert_eq!(r.comment_failures.len(), 1);
    assert!(r.failures.is_empty());
    let eth = w
        .funding_signals()
        .await
        .into_iter()
        .find(|s| s.symbol == "ETH")
        .unwrap();
    assert!(!eth.evidence.contains("Comment:"), "{}", eth.evidence);
    let failed = journal
        .recent(10)
        .unwrap()
        .into_iter()
        .find(|d| d.outcome == "no_comment")
        .unwrap();
    assert!(
        failed.error.as_deref().unwrap().contains("missing-model"),
        "{failed:?}"
    );
}

#[actix::test]
async fn a_venue_error_is_journaled_and_reported_and_the_other_venue_still_reads() {
    let mock = hl_mock();
    mock.set_funding_history("BTC", calm_history(NOW));
    mock.set_funding("BTC", dec!(0.0001));
    // A venue that refuses connections: nothing listens on this port any more.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead_cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(format!("http://127.0.0.1:{dead}")),
        wallet_address: PrivateKey::from_hex(KEY).unwrap().address().to_string(),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let clock = ManualClock::new(NOW);
    let dead_reader: Arc<dyn DerivativesData> =
        Arc::new(HyperliquidVenue::open("down", &dead_cfg, &|_| None, clock.clone()).unwrap());
    let w = world(clock.clone());
    let deps = w.deps(
        &[
            ("down", dead_reader),
            ("hl", hl_reader(&mock, clock.clone())),
        ],
        None,
    );
    let mut cfg = config("down");
    cfg.venues = vec!["hl".into()];
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(
        r.failures[0].starts_with("down BTC funding: "),
        "{:?}",
        r.failures
    );
    // The other venue was read and signalled.
    assert_eq!(
        r.signals,
        [(
            "hl".to_string(),
            "BTC".to_string(),
            FundingState::ExtremePositive
        )]
    );
    let journal = DecisionJournal::open(&w.store).unwrap();
    let summary = journal
        .recent(5)
        .unwrap()
        .into_iter()
        .find(|d| d.action.as_deref() == Some("FUNDING"))
        .unwrap();
    assert!(
        summary
            .error
            .as_deref()
            .unwrap()
            .contains("down BTC funding"),
        "{summary:?}"
    );
    // The runtime sees the run as failed, with the venue's words.
    let agent = FundingAgent::new(cfg.clone(), deps.clone());
    let ctx = RunCtx {
        memory: crate::agents::MemoryStore::open(&w.store, "funding-watch").unwrap(),
        journal: DecisionJournal::open(&w.store).unwrap(),
        clock: w.clock.clone(),
        trigger: crate::agents::runtime::Trigger::RunNow,
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
    };
    let outcome = agent.run(ctx).await;
    assert!(
        matches!(outcome, RunOutcome::Error(ref e) if e.contains("down BTC funding")),
        "{outcome:?}"
    );
}

/// Binance USDⓈ-M: the rate comes from the fresh `markPrice` stream, REST (`premiumIndex`)
/// once the feed goes stale; the interval is the symbol's from `fundingInfo`.
#[actix::test]
async fn binance_reads_the_fresh_mark_price_stream_and_rest_when_it_is_stale() {
    let rest = MockBinanceFutures::start();
    // 30 calm settlements around 0.0001, then the stream says 0.0009 (98.55 %/year at 8 h).
    rest.set_funding_history(
        "BTCUSDT",
        (0..30)
            .map(|i| {
                if i % 2 == 0 {
                    dec!(0.00009)
                } else {
                    dec!(0.00011)
                }
            })
            .collect(),
    );
    let ws = FuturesWsMock::start().await.unwrap();
    let fcfg = BinanceFuturesConfig {
        base_url: rest.url(),
        ws_url: ws.url(),
        symbols: vec!["BTC".into()],
        request_timeout: Duration::from_secs(3),
        ..BinanceFuturesConfig::default()
    };
    let book = StreamBook::new();
    let stale_after = Duration::from_millis(700);
    let feed = book.register("bnf", &ws.url(), stale_after);
    let mut settings = StreamSettings::new("bnf", &ws.url(), stale_after);
    settings.ping_interval = Duration::from_secs(180);
    settings.pong_timeout = Duration::from_secs(60);
    let _stream = StreamFeed::new(
        settings,
        Box::new(FuturesMarketProtocol::new(&fcfg)),
        feed.clone(),
    )
    .start();
    let now = system_clock().now_ms();
    let next = (now.div_euclid(8 * HOUR) + 1) * 8 * HOUR;
    // Wait for the connection, then push a mark price.
    for _ in 0..2000 {
        ws.send_market(
            "btcusdt@markPrice@1s",
            ws_mock::mark_price_event("BTCUSDT", "60000", "0.0009", next),
        );
        if book.fresh_mark("bnf", "BTC").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        book.fresh_mark("bnf", "BTC").is_some(),
        "the stream never delivered"
    );
    let w = world(system_clock());
    let reader: Arc<dyn DerivativesData> = open_public("bnf", &fcfg, system_clock()).unwrap();
    let mut cfg = config("bnf");
    cfg.history = 30;
    let deps = w.deps(&[("bnf", reader)], Some(book.clone()));
    let r = run_once(&cfg, &deps).await.unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let b = &r.readings[0];
    // The interval is not known before the first REST snapshot: it is read once.
    assert_eq!(
        (b.source, b.rate, b.interval_hours),
        ("stream", dec!(0.0009), 8)
    );
    assert_eq!(b.annualized_pct, dec!(98.55));
    assert_eq!(r.signals[0].2, FundingState::ExtremePositive);
    assert_eq!(rest.count("/fapi/v1/premiumIndex"), 1);
    assert_eq!(rest.count("/fapi/v1/fundingRate"), 1);
    // While the stream is fresh no REST snapshot is asked.
    ws.send_market(
        "btcusdt@markPrice@1s",
        ws_mock::mark_price_event("BTCUSDT", "60000", "0.00095", next),
    );
    for _ in 0..2000 {
        if book.fresh_mark("bnf", "BTC").and_then(|m| m.funding_rate) == Some(dec!(0.00095)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(
        (r.readings[0].source, r.readings[0].rate),
        ("stream", dec!(0.00095))
    );
    assert!(r.signals.is_empty(), "still extreme: {r:?}");
    assert_eq!(rest.count("/fapi/v1/premiumIndex"), 1);

    // The feed goes quiet: once stale, the rate is premiumIndex's (the mock's 0.0001).
    ws.set_silent(true);
    for _ in 0..2000 {
        if book.fresh_mark("bnf", "BTC").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = run_once(&cfg, &deps).await.unwrap();
    assert_eq!(
        (r.readings[0].source, r.readings[0].rate),
        ("rest", dec!(0.0001))
    );
    assert_eq!(r.signals[0].2, FundingState::Normal);
    assert_eq!(rest.count("/fapi/v1/premiumIndex"), 2);
    // Same settlement window: the history was not read again.
    assert_eq!(rest.count("/fapi/v1/fundingRate"), 1);
}
