//! Configuration of a Binance USDⓈ-M futures venue account (`kind = "binance_futures"`).
//!
//! Owns: the serde shape of the venue section, its defaults (including the documented fapi
//! request weights and order-rate limits), validation with key paths, and the REST settings
//! handed to the shared Binance request machinery ([`BinanceFuturesConfig::rest_config`]:
//! the symbol ↔ pair mapping, `recvWindow`, timeouts and limits are the spot venue's code,
//! never a copy). Never: reads the environment (keys come through the venue's injectable
//! env lookup) or does I/O.
//!
//! Request weights (Binance USDⓈ-M Futures REST docs, `/fapi`, as of 2025): exchangeInfo 1,
//! bookTicker (one symbol) 2, klines 1..10 by `limit` (the engine asks ≤ 1000 rows, 5 is
//! charged), time 1, POST order 0 weight and 1 order on each order counter, GET order 1,
//! DELETE order 1, openOrders (one symbol) 1, userTrades 5, account 5, positionRisk 5,
//! leverage 1, marginType 1, positionSide/dual GET 30, premiumIndex 1,
//! fundingRate 1 (its own 500 per 5 min per IP budget is far above what the CLI asks),
//! fundingInfo 0 (it shares fundingRate's 500 per 5 min; charged 1 here, as an endpoint
//! must draw from some pool, and read once an hour), openInterest 1, openInterestHist 1. The IP budget is 2400 weight per rolling minute
//! (`REQUEST_WEIGHT`); an account may place 1200 orders per minute and 300 per 10 s
//! (`ORDERS`), reported in `X-MBX-ORDER-COUNT-1M` / `X-MBX-ORDER-COUNT-10S`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exchanges::binance::config::{ORDERS_POOL, WEIGHT_POOL};
use crate::exchanges::binance::signing::DEFAULT_RECV_WINDOW_MS;
use crate::exchanges::binance::BinanceConfig;
use crate::resilience::config::{LimitConfig, RateLimitedRetry, RetryConfig};
use crate::resilience::ResilienceConfig;
use crate::validate::{join, Issues};

/// Environment variable of the API key.
pub const API_KEY_ENV: &str = "BINANCE_FUTURES_API_KEY";
/// Environment variable of the API secret.
pub const API_SECRET_ENV: &str = "BINANCE_FUTURES_API_SECRET";
/// Production REST endpoint.
pub const DEFAULT_BASE_URL: &str = "https://fapi.binance.com";
/// The futures testnet's REST endpoint.
pub const TESTNET_BASE_URL: &str = "https://testnet.binancefuture.com";
/// Production market/user-data websocket endpoint.
pub const DEFAULT_WS_URL: &str = "wss://fstream.binance.com";
/// The futures testnet's websocket endpoint.
pub const TESTNET_WS_URL: &str = "wss://stream.binancefuture.com";
/// Binance's documented futures IP request-weight budget per minute.
pub const WEIGHT_PER_MINUTE: u64 = 2400;
/// Name of the per-minute order pool (`X-MBX-ORDER-COUNT-1M`); the per-10 s one is the
/// spot venue's [`ORDERS_POOL`] (`X-MBX-ORDER-COUNT-10S`).
pub const ORDERS_1M_POOL: &str = "orders_1m";
/// Orders per 10 s and per minute an account may place.
pub const ORDERS_PER_10S: u64 = 300;
pub const ORDERS_PER_MINUTE: u64 = 1200;

/// Endpoint names used with the rate limits, with their documented weights.
pub const ENDPOINT_WEIGHTS: [(&str, u64); 19] = [
    ("exchange_info", 1),
    ("book_ticker", 2),
    ("klines", 5),
    ("time", 1),
    ("order", 0),
    ("query_order", 1),
    ("cancel", 1),
    ("open_orders", 1),
    ("my_trades", 5),
    ("account", 5),
    ("position_risk", 5),
    ("leverage", 1),
    ("margin_type", 1),
    ("position_mode", 30),
    ("premium_index", 1),
    ("funding_rate", 1),
    ("funding_info", 1),
    ("open_interest", 1),
    ("open_interest_hist", 1),
];

/// Margin mode of the account's positions in the configured symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarginType {
    /// `ISOLATED`: each position has its own margin.
    Isolated,
    /// `CROSSED`: positions share the account's margin.
    Cross,
}

impl MarginType {
    /// Binance's wire name (`POST /fapi/v1/marginType`'s `marginType`).
    pub fn as_wire(self) -> &'static str {
        match self {
            MarginType::Isolated => "ISOLATED",
            MarginType::Cross => "CROSSED",
        }
    }
}

/// A Binance USDⓈ-M futures account. Keys are read from `BINANCE_FUTURES_API_KEY` /
/// `BINANCE_FUTURES_API_SECRET` (futures keys are often separate ones, with futures
/// permission; the spot venue's variables are never read for them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceFuturesConfig {
    /// REST base URL. Default `https://fapi.binance.com`; the testnet is
    /// `https://testnet.binancefuture.com`.
    pub base_url: String,
    /// Several base URLs of this one account, one connector each. Instead of `base_url`.
    pub base_urls: Option<Vec<String>>,
    /// Websocket base URL of the market and user-data streams. Default
    /// `wss://fstream.binance.com`; the testnet is `wss://stream.binancefuture.com`.
    pub ws_url: String,
    /// Market and user data over the websocket; quotes come from it while fresh. Default on.
    pub streams: bool,
    /// A streamed value older than this is stale: reads use REST until it is fresh again.
    #[serde(with = "humantime_serde")]
    pub stream_stale_after: Duration,
    /// Margin asset of every contract (BTC → BTCUSDT); also the account's cash, counted
    /// 1:1 as USD. Default USDT.
    pub quote_asset: String,
    /// Symbols this account trades (positions, open orders and fills are read for these).
    /// Default BTC, ETH, SOL.
    pub symbols: Vec<String>,
    /// Explicit symbol → contract overrides (e.g. `PEPE = "1000PEPEUSDT"`); others are
    /// symbol + quote asset.
    pub pairs: BTreeMap<String, String>,
    /// Margin mode set on each symbol before its first order (`POST /fapi/v1/marginType`);
    /// unset: the account's current mode is left as it is.
    pub margin_type: Option<MarginType>,
    /// `recvWindow` of signed requests in ms (1..=60000). Default 5000.
    pub recv_window_ms: u64,
    /// Deadline of one HTTP request. Default 10s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long exchangeInfo filters are cached. Default 1h.
    #[serde(with = "humantime_serde")]
    pub exchange_info_ttl: Duration,
    /// Rate limits; the default draws each endpoint's documented weight from a 2400/min
    /// pool and one unit per order from a 300/10s and a 1200/min pool. Also the
    /// connector's queue and the market-data fallback levels and cache TTL.
    pub resilience: ResilienceConfig,
    /// Another configured venue whose quotes and candles stand in when this one's fail
    /// (never its orders).
    pub market_data_fallback: Option<String>,
}

impl Default for BinanceFuturesConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            base_urls: None,
            ws_url: DEFAULT_WS_URL.to_string(),
            streams: true,
            stream_stale_after: Duration::from_secs(10),
            quote_asset: "USDT".to_string(),
            symbols: ["BTC", "ETH", "SOL"].map(String::from).to_vec(),
            pairs: BTreeMap::new(),
            margin_type: None,
            recv_window_ms: DEFAULT_RECV_WINDOW_MS,
            request_timeout: Duration::from_secs(10),
            exchange_info_ttl: Duration::from_secs(3600),
            resilience: default_resilience(),
            market_data_fallback: None,
        }
    }
}

/// Weight pool of 2400 per sliding minute, order pools of 300 per 10 s and 1200 per
/// minute, and every endpoint drawing its documented weight.
pub fn default_resilience() -> ResilienceConfig {
    let mut endpoints = BTreeMap::new();
    for (name, weight) in ENDPOINT_WEIGHTS {
        let mut draws = BTreeMap::new();
        if weight > 0 {
            draws.insert(WEIGHT_POOL.to_string(), weight);
        }
        if name == "order" {
            draws.insert(ORDERS_POOL.to_string(), 1);
            draws.insert(ORDERS_1M_POOL.to_string(), 1);
        }
        endpoints.insert(name.to_string(), draws);
    }
    let spot = crate::exchanges::binance::config::default_resilience();
    ResilienceConfig {
        limits: vec![
            LimitConfig::SlidingWindow {
                name: WEIGHT_POOL.to_string(),
                limit: WEIGHT_PER_MINUTE,
                window: Duration::from_secs(60),
                shared: None,
                local_share: None,
                batch: None,
            },
            LimitConfig::TokenBucket {
                name: ORDERS_POOL.to_string(),
                capacity: ORDERS_PER_10S,
                refill_amount: ORDERS_PER_10S,
                refill_every: Duration::from_secs(10),
                shared: None,
                local_share: None,
                batch: None,
            },
            LimitConfig::SlidingWindow {
                name: ORDERS_1M_POOL.to_string(),
                limit: ORDERS_PER_MINUTE,
                window: Duration::from_secs(60),
                shared: None,
                local_share: None,
                batch: None,
            },
        ],
        endpoints,
        // The same 429/418 policy as spot: a read fails fast with the block's wait.
        retry: RetryConfig {
            rate_limited: RateLimitedRetry {
                max_retries: 0,
                ..RateLimitedRetry::default()
            },
            ..spot.retry
        },
        ..ResilienceConfig::default()
    }
}

impl BinanceFuturesConfig {
    /// The settings of the shared Binance request machinery (signing, limits, filters,
    /// symbol mapping) for this account.
    pub fn rest_config(&self) -> BinanceConfig {
        BinanceConfig {
            base_url: self.base_url.clone(),
            base_urls: self.base_urls.clone(),
            quote_asset: self.quote_asset.clone(),
            symbols: self.symbols.clone(),
            pairs: self.pairs.clone(),
            recv_window_ms: self.recv_window_ms,
            request_timeout: self.request_timeout,
            exchange_info_ttl: self.exchange_info_ttl,
            resilience: self.resilience.clone(),
            market_data_fallback: self.market_data_fallback.clone(),
            // The spot streams' settings: the futures streams have their own
            // (`ws_url`, `streams`, `stream_stale_after` above).
            streams: false,
            ws_url: None,
            stream_stale_after: self.stream_stale_after,
            stream_max_lifetime: crate::exchanges::stream::binance_futures::market::ROTATE_AFTER,
        }
    }

    /// The contract of one of our symbols (`BTC` → `BTCUSDT`).
    pub fn pair_of(&self, symbol: &str) -> String {
        self.rest_config().pair_of(symbol)
    }

    /// Our symbol of a contract.
    pub fn symbol_of(&self, pair: &str) -> Option<String> {
        self.rest_config().symbol_of(pair)
    }

    /// Every base URL of the account, one connector each: `base_urls`, or `base_url`.
    pub fn endpoints(&self) -> Vec<String> {
        crate::exchanges::account::endpoint_urls(self.base_urls.as_deref(), &self.base_url)
    }

    pub fn validate(&self, path: &str, issues: &mut Issues) {
        // The shared keys are checked by the spot section's rules, under this path. Its
        // `base_url`/`base_urls` rule treats a non-spot-default URL as set explicitly, so
        // `base_urls` are checked here against the futures default instead.
        let mut rest = self.rest_config();
        rest.base_urls = None;
        rest.validate(path, issues);
        crate::exchanges::account::validate_base_urls(
            self.base_urls.as_deref(),
            self.base_url != DEFAULT_BASE_URL,
            path,
            issues,
        );
        issues.check(
            (self.ws_url.starts_with("ws://") || self.ws_url.starts_with("wss://"))
                && reqwest::Url::parse(&self.ws_url).is_ok(),
            join(path, "ws_url"),
            &self.ws_url,
            "a ws(s) URL such as wss://fstream.binance.com",
        );
        let stale = self.stream_stale_after.as_millis();
        issues.check(
            (100..=600_000).contains(&stale),
            join(path, "stream_stale_after"),
            humantime::format_duration(self.stream_stale_after).to_string(),
            "a duration from 100ms to 10m",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_map_symbols() {
        let c = BinanceFuturesConfig::default();
        let mut issues = Issues::default();
        c.validate("exchanges.venues.bnf", &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(c.pair_of("BTC"), "BTCUSDT");
        assert_eq!(c.symbol_of("ETHUSDT").as_deref(), Some("ETH"));
        assert_eq!(c.ws_url, "wss://fstream.binance.com");
        assert!(c.streams);
        assert_eq!(c.endpoints(), ["https://fapi.binance.com"]);
    }

    #[test]
    fn parses_from_toml_and_names_bad_keys() {
        let c: BinanceFuturesConfig = toml::from_str(
            r#"
            base_url = "https://testnet.binancefuture.com"
            ws_url = "wss://stream.binancefuture.com"
            streams = false
            stream_stale_after = "5s"
            symbols = ["BTC"]
            margin_type = "isolated"
            "#,
        )
        .unwrap();
        assert_eq!(c.base_url, TESTNET_BASE_URL);
        assert_eq!(c.ws_url, TESTNET_WS_URL);
        assert!(!c.streams);
        assert_eq!(c.stream_stale_after, Duration::from_secs(5));
        assert_eq!(c.margin_type, Some(MarginType::Isolated));
        assert_eq!(MarginType::Cross.as_wire(), "CROSSED");
        let err = toml::from_str::<BinanceFuturesConfig>("leverag = 3").unwrap_err();
        assert!(err.to_string().contains("leverag"), "{err}");

        let bad = BinanceFuturesConfig {
            ws_url: "https://x".into(),
            recv_window_ms: 0,
            stream_stale_after: Duration::from_millis(1),
            ..BinanceFuturesConfig::default()
        };
        let mut issues = Issues::default();
        bad.validate("exchanges.venues.bnf", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.clone()).collect();
        for key in ["ws_url", "recv_window_ms", "stream_stale_after"] {
            assert!(
                keys.contains(&format!("exchanges.venues.bnf.{key}")),
                "{key} missing in {keys:?}"
            );
        }
    }

    #[test]
    fn default_limits_draw_the_documented_weights() {
        let r = default_resilience();
        assert_eq!(r.endpoints["position_mode"][WEIGHT_POOL], 30);
        assert_eq!(r.endpoints["order"].get(WEIGHT_POOL), None);
        assert_eq!(r.endpoints["order"][ORDERS_POOL], 1);
        assert_eq!(r.endpoints["order"][ORDERS_1M_POOL], 1);
        assert!(matches!(
            r.limits[0],
            LimitConfig::SlidingWindow {
                limit: WEIGHT_PER_MINUTE,
                ..
            }
        ));
        assert_eq!(r.limits.len(), 3);
    }
}
