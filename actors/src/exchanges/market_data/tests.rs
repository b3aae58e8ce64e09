//! Market-data fallback through the gateway: a primary that refuses connections, a
//! secondary venue on a loopback mock, the cache, the emergency level.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::system_clock;
use crate::exchanges::binance::mock::{MockBinance, MOCK_API_KEY, MOCK_API_SECRET};
use crate::exchanges::binance::{BinanceConfig, BinanceSpotVenue, API_KEY_ENV, API_SECRET_ENV};
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{
    Amount, GatewayConfig, GatewayCore, GatewayError, OrderIntent, Pricing,
};
use crate::exchanges::hyperliquid::{HyperliquidConfig, HyperliquidVenue};
use crate::exchanges::hyperliquid::{Network, PrivateKey};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::types::Side;
use crate::exchanges::venue::{Venue, VenueError};
use crate::resilience::test_recorder::TestRecorder;
use crate::store::Store;
use crate::supervisor::Slot;
use crate::testkit::refused_addr;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

/// A Hyperliquid account whose API refuses every connection.
fn unreachable_hyperliquid() -> Arc<dyn Venue> {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mut cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(format!("http://{}", refused_addr())),
        wallet_address: wallet.to_string(),
        request_timeout: Duration::from_secs(1),
        ..HyperliquidConfig::default()
    };
    cfg.resilience.retry.backoff.base = Duration::from_millis(5);
    let env = |k: &str| (k == "HYPER_LIQUID_ETH_PRIVATE_KEY").then(|| KEY.to_string());
    Arc::new(HyperliquidVenue::open("hyperliquid", &cfg, &env, system_clock()).unwrap())
}

fn binance(name: &str, mock: &MockBinance) -> Arc<dyn Venue> {
    let cfg = BinanceConfig {
        base_url: mock.url(),
        request_timeout: Duration::from_secs(2),
        ..BinanceConfig::default()
    };
    let env = |k: &str| match k {
        API_KEY_ENV => Some(MOCK_API_KEY.to_string()),
        API_SECRET_ENV => Some(MOCK_API_SECRET.to_string()),
        _ => None,
    };
    Arc::new(BinanceSpotVenue::open_with_env(name, &cfg, system_clock(), &env).unwrap())
}

fn gateway(
    store: &Store,
    venues: Vec<Arc<dyn Venue>>,
    feeds: BTreeMap<String, FeedConfig>,
) -> Arc<GatewayCore> {
    let slots = venues
        .into_iter()
        .map(|v| {
            let name = v.name().to_string();
            let slot = Slot::<Connector>::new();
            slot.fill(Connector::new(v).start(), slot.next_token(), "test");
            (name, slot)
        })
        .collect();
    let config = GatewayConfig {
        request_timeout: Duration::from_secs(3),
        ready_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    GatewayCore::open_with_market_data(
        store,
        slots,
        RiskConfig::default(),
        config,
        feeds,
        system_clock(),
    )
    .unwrap()
}

fn feed(secondary: Option<&str>, fallback: FallbackConfig) -> FeedConfig {
    FeedConfig {
        secondary: secondary.map(str::to_string),
        fallback,
    }
}

#[actix::test]
async fn a_dead_primary_is_served_by_the_secondary_then_by_the_cache_and_orders_stay_put() {
    let recorder = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mock = MockBinance::start();
    let store = Store::temporary().unwrap();
    let feeds = BTreeMap::from([(
        "hyperliquid".to_string(),
        feed(Some("binance"), FallbackConfig::default()),
    )]);
    let core = gateway(
        &store,
        vec![unreachable_hyperliquid(), binance("binance", &mock)],
        feeds,
    );

    let from_secondary = core.quote("hyperliquid", "BTC").await.unwrap();
    assert_eq!(
        (from_secondary.bid, from_secondary.ask),
        (dec!(59990), dec!(60010))
    );
    assert_eq!(
        from_secondary.fallback,
        Some(QuoteFallback {
            venue: "binance".into(),
            level: FallbackLevel::Full,
            age_ms: None,
        })
    );

    let from_cache = core.quote("hyperliquid", "BTC").await.unwrap();
    let mark = from_cache.fallback.clone().unwrap();
    assert_eq!(
        (mark.venue.as_str(), mark.level),
        ("binance", FallbackLevel::Partial)
    );
    assert!(mark.age_ms.is_some_and(|ms| ms < 5_000), "{mark:?}");
    assert_eq!(
        (from_cache.bid, from_cache.ask),
        (from_secondary.bid, from_secondary.ask)
    );
    assert_eq!(
        mock.count("/api/v3/ticker/bookTicker"),
        1,
        "the cache answered"
    );

    let candles = core
        .candles("hyperliquid", "BTC", Timeframe::M1, 5)
        .await
        .unwrap();
    assert_eq!(candles.len(), 5);
    assert_eq!(mock.count("/api/v3/klines"), 1);

    for (target, level) in [
        ("hyperliquid/quote", "full"),
        ("hyperliquid/quote", "partial"),
        ("hyperliquid/candles", "full"),
    ] {
        assert_eq!(
            recorder.get(&format!(
                "orrery_fallback_total{{target={target},level={level}}}"
            )),
            Some(1.0),
            "{target} {level}"
        );
    }
    // The secondary's own reads are live.
    let own = core.quote("binance", "BTC").await.unwrap();
    assert_eq!(own.fallback, None);

    // An order for the dead venue fails there; nothing reaches the secondary.
    assert!(core.reconcile("hyperliquid").await.is_err());
    let err = core
        .place(OrderIntent {
            venue: "hyperliquid".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            amount: Amount::Usd(dec!(100)),
            pricing: Pricing::Market,
            reduce_only: false,
            origin: "test".into(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hyperliquid"), "{err}");
    assert!(mock
        .requests()
        .iter()
        .all(|r| r.method == "GET" && r.route() != "/api/v3/order"));
}

#[actix::test]
async fn when_every_level_fails_the_read_fails_and_the_engine_degrades() {
    let recorder = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let store = Store::temporary().unwrap();
    let emergency = FallbackConfig {
        max_level: FallbackLevel::Emergency,
        emergency_mode: EmergencyMode::Reducing,
        ..FallbackConfig::default()
    };
    let feeds = BTreeMap::from([("hyperliquid".to_string(), feed(None, emergency))]);
    let core = gateway(&store, vec![unreachable_hyperliquid()], feeds);
    assert_eq!(core.mode().mode, TradingMode::Normal);
    let err = core.quote("hyperliquid", "BTC").await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Venue(VenueError::Unavailable { .. })),
        "{err}"
    );
    let mode = core.mode();
    assert_eq!(mode.mode, TradingMode::Reducing);
    assert!(mode.reason.contains("market data"), "{}", mode.reason);
    assert_eq!(
        mode.cause,
        crate::exchanges::risk_gate::ModeCause::MarketData
    );
    assert_eq!(
        recorder.get("orrery_fallback_total{target=hyperliquid/quote,level=emergency}"),
        Some(1.0)
    );
    // A stricter mode is never lifted by it.
    core.set_mode(
        TradingMode::Halted,
        crate::exchanges::risk_gate::ModeCause::Operator,
        "operator",
    )
    .unwrap();
    assert!(core.quote("hyperliquid", "BTC").await.is_err());
    assert_eq!(core.mode().mode, TradingMode::Halted);
}

#[actix::test]
async fn a_venue_that_calls_the_symbol_unknown_is_believed() {
    let (primary, secondary) = (MockBinance::start(), MockBinance::start());
    let store = Store::temporary().unwrap();
    let feeds = BTreeMap::from([(
        "primary".to_string(),
        feed(Some("secondary"), FallbackConfig::default()),
    )]);
    let core = gateway(
        &store,
        vec![
            binance("primary", &primary),
            binance("secondary", &secondary),
        ],
        feeds,
    );
    let err = core.quote("primary", "DOGE").await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Venue(VenueError::UnknownSymbol { .. })),
        "{err}"
    );
    assert!(
        secondary.requests().is_empty(),
        "no fallback for a bad request"
    );
}
