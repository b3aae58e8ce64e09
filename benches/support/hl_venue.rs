//! Shared by the benches that trade on the Hyperliquid mock: the test key and one
//! `HyperliquidVenue` on the mock with a weight pool large enough never to throttle.

use std::time::Duration;

use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{
    HyperliquidConfig, HyperliquidVenue, Network, PrivateKey,
};
use orrery_actors::resilience::config::LimitConfig;

pub const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

/// The venue `hyperliquid` on `mock`, signing with [`KEY`].
pub fn venue(mock: &MockHyperliquid) -> HyperliquidVenue {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mut cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(mock.url()),
        wallet_address: wallet.to_string(),
        ..Default::default()
    };
    cfg.resilience.limits = vec![LimitConfig::SlidingWindow {
        name: "weight".into(),
        limit: 1_000_000,
        window: Duration::from_secs(60),
        shared: None,
        local_share: None,
        batch: None,
    }];
    let env = |k: &str| (k == "HYPER_LIQUID_ETH_PRIVATE_KEY").then(|| KEY.to_string());
    HyperliquidVenue::open("hyperliquid", &cfg, &env, system_clock()).unwrap()
}
