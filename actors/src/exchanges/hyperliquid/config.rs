//! Configuration of a Hyperliquid venue account (`kind = "hyperliquid"`), its validation
//! with key paths, and where the wallet key comes from.
//!
//! Owns: the serde shape, defaults (including Hyperliquid's published IP weight limit of
//! 1200 per minute as the default rate-limit pool), validation, and the lookup of the
//! private key in the environment through the crate's injectable [`EnvLookup`]. Never: reads the key
//! from the file (there is no field for it), prints it, or does I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::signing::{Address, Network, PrivateKey};
use crate::env::{non_empty, EnvLookup};
use crate::resilience::config::LimitConfig;
use crate::resilience::ResilienceConfig;
use crate::validate::{join, Issues};

/// The environment variable holding the wallet (or API agent wallet) private key.
pub const KEY_VAR: &str = "HYPER_LIQUID_ETH_PRIVATE_KEY";
/// The seed project's alias for [`KEY_VAR`], read when the main name is unset.
pub const KEY_VAR_ALIAS: &str = "HYPER_LIQUID_KEY";

/// Rate-limit pool every request draws its Hyperliquid weight from.
pub const WEIGHT_POOL: &str = "weight";

/// `[exchanges.venues.<name>]` with `kind = "hyperliquid"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyperliquidConfig {
    /// `mainnet` or `testnet`: picks the API URL and the signature's network byte.
    pub network: Network,
    /// Replaces the network's API URL (a mock in tests, a proxy). `None`: the network's.
    pub base_url: Option<String>,
    /// Several API roots of this one account (a standby URL, a proxy), each served by its
    /// own connector; reads and orders go to a healthy one. Instead of `base_url`.
    pub base_urls: Option<Vec<String>>,
    /// The account's public address (0x + 40 hex). Required.
    pub wallet_address: String,
    /// Trade for this vault or sub-account instead of the wallet itself.
    pub vault_address: Option<String>,
    /// Deadline of one HTTP request (connect, send, whole answer).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Furthest a market order (an aggressive IOC limit) may be from mid, as a fraction
    /// (0.05 = 5%), when the order itself does not say.
    pub slippage: Decimal,
    /// How long the `meta` answer (asset indices and size decimals) is trusted.
    #[serde(with = "humantime_serde")]
    pub meta_refresh: Duration,
    /// Pause of every request after a 429 that carries no `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub rate_limited_pause: Duration,
    /// Rate limits (pool `weight` is drawn by every request), breaker and retry of reads,
    /// the connector's queue, and the market-data fallback levels and cache TTL.
    pub resilience: ResilienceConfig,
    /// Another configured venue whose quotes and candles stand in when this one's fail
    /// (never its orders).
    pub market_data_fallback: Option<String>,
    /// Market data over the venue's websocket (`allMids`, `bbo`, `l2Book`, `trades`,
    /// `candle` of the configured symbols): quotes come from it while fresh. Default on.
    pub streams: bool,
    /// A streamed quote or channel older than this is stale: reads use REST until it is
    /// fresh again.
    #[serde(with = "humantime_serde")]
    pub stream_stale_after: Duration,
    /// Replaces the websocket URL derived from the API URL (`https://host` →
    /// `wss://host/ws`): mainnet `wss://api.hyperliquid.xyz/ws`, testnet
    /// `wss://api.hyperliquid-testnet.xyz/ws`.
    pub ws_url: Option<String>,
    /// Other accounts (0x + 40 hex each) whose fills the stream follows for copy-trading
    /// (`userFills` of each, on this venue's connection): kept in memory and shown by
    /// `orrery status`, never written to this engine's ledger. Needs `streams`.
    pub follow_wallets: Vec<String>,
}

impl Default for HyperliquidConfig {
    fn default() -> Self {
        Self {
            network: Network::Mainnet,
            base_url: None,
            base_urls: None,
            wallet_address: String::new(),
            vault_address: None,
            request_timeout: Duration::from_secs(10),
            slippage: Decimal::new(5, 2),
            meta_refresh: Duration::from_secs(300),
            rate_limited_pause: Duration::from_secs(1),
            resilience: default_resilience(),
            market_data_fallback: None,
            streams: true,
            stream_stale_after: Duration::from_secs(10),
            ws_url: None,
            follow_wallets: Vec::new(),
        }
    }
}

/// Hyperliquid's REST limit: an aggregated weight of 1200 per minute per IP.
pub fn default_resilience() -> ResilienceConfig {
    let mut endpoints = BTreeMap::new();
    for ep in ["info", "exchange"] {
        endpoints.insert(
            ep.to_string(),
            BTreeMap::from([(WEIGHT_POOL.to_string(), 1)]),
        );
    }
    ResilienceConfig {
        limits: vec![LimitConfig::SlidingWindow {
            name: WEIGHT_POOL.to_string(),
            limit: 1200,
            window: Duration::from_secs(60),
            shared: None,
            local_share: None,
            batch: None,
        }],
        endpoints,
        ..ResilienceConfig::default()
    }
}

impl HyperliquidConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.wallet_address.parse::<Address>().is_ok(),
            join(path, "wallet_address"),
            &self.wallet_address,
            "the account's public address, 0x followed by 40 hex digits (the private key comes only from HYPER_LIQUID_ETH_PRIVATE_KEY)",
        );
        if let Some(v) = &self.vault_address {
            issues.check(
                v.parse::<Address>().is_ok(),
                join(path, "vault_address"),
                v,
                "a vault or sub-account address, 0x followed by 40 hex digits",
            );
        }
        if let Some(url) = &self.base_url {
            issues.check(
                (url.starts_with("http://") || url.starts_with("https://"))
                    && reqwest::Url::parse(url).is_ok(),
                join(path, "base_url"),
                url,
                "an http(s) URL such as https://api.hyperliquid.xyz",
            );
        }
        crate::exchanges::account::validate_base_urls(
            self.base_urls.as_deref(),
            self.base_url.is_some(),
            path,
            issues,
        );
        let ms = self.request_timeout.as_millis();
        issues.check(
            (100..=120_000).contains(&ms),
            join(path, "request_timeout"),
            humantime::format_duration(self.request_timeout).to_string(),
            "a duration from 100ms to 2m",
        );
        issues.check(
            self.slippage > Decimal::ZERO && self.slippage < Decimal::new(5, 1),
            join(path, "slippage"),
            self.slippage,
            "a fraction in (0, 0.5), e.g. 0.05 for 5%",
        );
        let refresh = self.meta_refresh.as_millis();
        issues.check(
            (1_000..=86_400_000).contains(&refresh),
            join(path, "meta_refresh"),
            humantime::format_duration(self.meta_refresh).to_string(),
            "a duration from 1s to 24h",
        );
        issues.check(
            self.rate_limited_pause <= Duration::from_secs(300),
            join(path, "rate_limited_pause"),
            humantime::format_duration(self.rate_limited_pause).to_string(),
            "a duration up to 5m",
        );
        self.resilience.validate(&join(path, "resilience"), issues);
        if let Some(url) = &self.ws_url {
            issues.check(
                (url.starts_with("ws://") || url.starts_with("wss://"))
                    && reqwest::Url::parse(url).is_ok(),
                join(path, "ws_url"),
                url,
                "a ws(s) URL such as wss://api.hyperliquid.xyz/ws",
            );
        }
        for (i, wallet) in self.follow_wallets.iter().enumerate() {
            issues.check(
                wallet.len() == 42 && wallet.starts_with("0x") && wallet.parse::<Address>().is_ok(),
                join(path, &format!("follow_wallets[{i}]")),
                wallet,
                "an account address to follow, 0x followed by 40 hex digits",
            );
        }
        issues.check(
            self.follow_wallets.is_empty() || self.streams,
            join(path, "follow_wallets"),
            self.follow_wallets.join(", "),
            "followed wallets are read from the venue's websocket: set streams = true, or remove follow_wallets",
        );
        let stale = self.stream_stale_after.as_millis();
        issues.check(
            (100..=600_000).contains(&stale),
            join(path, "stream_stale_after"),
            humantime::format_duration(self.stream_stale_after).to_string(),
            "a duration from 100ms to 10m",
        );
    }

    /// The address whose user channels the stream subscribes: the vault or sub-account
    /// when trading for one (the venue keeps its orders and fills), else the wallet.
    pub fn account_address(&self) -> &str {
        self.vault_address
            .as_deref()
            .unwrap_or(&self.wallet_address)
    }

    /// The websocket URL: `ws_url`, else the API URL with `http(s)` turned into `ws(s)`
    /// and `/ws` appended (mainnet `wss://api.hyperliquid.xyz/ws`).
    pub fn ws_url(&self) -> String {
        if let Some(url) = &self.ws_url {
            return url.clone();
        }
        let api = self.api_url();
        let ws = if let Some(rest) = api.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = api.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            api
        };
        format!("{ws}/ws")
    }

    /// Every API root of the account, one connector each: `base_urls`, or the one
    /// [`HyperliquidConfig::api_url`].
    pub fn endpoints(&self) -> Vec<String> {
        crate::exchanges::account::endpoint_urls(self.base_urls.as_deref(), &self.api_url())
    }

    /// The API root: `base_url`, else the first of `base_urls`, else the network's, without
    /// a trailing slash.
    pub fn api_url(&self) -> String {
        self.base_url
            .clone()
            .or_else(|| self.base_urls.as_ref().and_then(|u| u.first().cloned()))
            .unwrap_or_else(|| self.network.api_url().to_string())
            .trim_end_matches('/')
            .to_string()
    }
}

/// The wallet key from the environment: `Ok(None)` when neither variable is set, an error
/// (naming the variable, never the value) when one is set but unreadable.
pub fn key_from_env(env: EnvLookup<'_>) -> Result<Option<PrivateKey>, String> {
    for var in [KEY_VAR, KEY_VAR_ALIAS] {
        if let Some(value) = non_empty(env, var) {
            return PrivateKey::from_hex(&value)
                .map(Some)
                .map_err(|e| format!("{var} is set but unusable: {e}"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_a_wallet() {
        let mut issues = Issues::default();
        HyperliquidConfig::default().validate("exchanges.venues.hl", &mut issues);
        assert_eq!(issues.0.len(), 1);
        assert_eq!(issues.0[0].key, "exchanges.venues.hl.wallet_address");
        let cfg = HyperliquidConfig {
            wallet_address: "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955".into(),
            ..Default::default()
        };
        let mut issues = Issues::default();
        cfg.validate("x", &mut issues);
        assert!(issues.is_empty(), "{:?}", issues.0);
    }

    #[test]
    fn bad_values_name_their_keys() {
        let cfg = HyperliquidConfig {
            wallet_address: "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955".into(),
            vault_address: Some("nope".into()),
            base_url: Some("ftp://x".into()),
            slippage: Decimal::ONE,
            request_timeout: Duration::from_millis(1),
            ..Default::default()
        };
        let mut issues = Issues::default();
        cfg.validate("v", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.as_str()).collect();
        for k in [
            "v.vault_address",
            "v.base_url",
            "v.slippage",
            "v.request_timeout",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn ws_url_is_derived_from_the_api_url_or_given_and_validated() {
        let mainnet = HyperliquidConfig::default();
        assert_eq!(mainnet.ws_url(), "wss://api.hyperliquid.xyz/ws");
        let testnet = HyperliquidConfig {
            network: Network::Testnet,
            ..Default::default()
        };
        assert_eq!(testnet.ws_url(), "wss://api.hyperliquid-testnet.xyz/ws");
        let local = HyperliquidConfig {
            base_url: Some("http://127.0.0.1:9000/".into()),
            ..Default::default()
        };
        assert_eq!(local.ws_url(), "ws://127.0.0.1:9000/ws");
        assert!(local.streams, "streams default on for hyperliquid");
        let bad = HyperliquidConfig {
            wallet_address: "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955".into(),
            ws_url: Some("http://127.0.0.1:9000/ws".into()),
            stream_stale_after: Duration::from_millis(10),
            ..Default::default()
        };
        let mut issues = Issues::default();
        bad.validate("v", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["v.ws_url", "v.stream_stale_after"]);
        let given = HyperliquidConfig {
            ws_url: Some("wss://proxy.example/ws".into()),
            ..Default::default()
        };
        assert_eq!(given.ws_url(), "wss://proxy.example/ws");
    }

    #[test]
    fn key_comes_from_either_variable_and_is_never_printed() {
        let key = "0x0123456789012345678901234567890123456789012345678901234567890123";
        let env = move |k: &str| (k == KEY_VAR_ALIAS).then(|| key.to_string());
        let found = key_from_env(&env).unwrap().unwrap();
        assert_eq!(format!("{found:?}"), "***");
        assert!(key_from_env(&|_| None).unwrap().is_none());
        let bad = |k: &str| (k == KEY_VAR).then(|| "0xdeadbeef".to_string());
        let err = key_from_env(&bad).unwrap_err();
        assert!(err.contains(KEY_VAR) && !err.contains("deadbeef"), "{err}");
    }
}
