//! Configuration of a Binance spot venue account.
//!
//! Owns: the serde shape of a `kind = "binance"` venue section, its defaults (including
//! the documented request-weight and order-rate limits), validation with key paths, and
//! the symbol mapping between this engine's symbols (`BTC`) and Binance pairs (`BTCUSDT`).
//! Never: reads the environment (keys come through the venue's injectable env lookup) or
//! does I/O.
//!
//! Request weights (Binance Spot REST API docs, `/api/v3`, as of 2025): exchangeInfo 20,
//! bookTicker (one symbol) 2, klines 2, time 1, POST order 1, GET order 4, DELETE order 1,
//! openOrders (one symbol) 6, myTrades 20, account 20, depth with `limit` 501..=1000 50,
//! userDataStream (POST / PUT / DELETE) 2. The IP budget is 6000 weight per
//! rolling minute (`REQUEST_WEIGHT`); the account may place 100 orders per 10 s
//! (`ORDERS`). The defaults below stay under both with some headroom.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::signing::{DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS};
use crate::resilience::config::{LimitConfig, RateLimitedRetry, RetryConfig};
use crate::resilience::ResilienceConfig;
use crate::validate::{join, Issues};

/// Production REST endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.binance.com";
/// Name of the weight pool the `X-MBX-USED-WEIGHT-1M` header is observed into.
pub const WEIGHT_POOL: &str = "weight";
/// Name of the order-rate pool.
pub const ORDERS_POOL: &str = "orders";
/// Binance's documented IP request-weight budget per minute.
pub const WEIGHT_PER_MINUTE: u64 = 6000;

/// Endpoint names used with the rate limits, with their documented weights.
pub const ENDPOINT_WEIGHTS: [(&str, u64); 12] = [
    ("exchange_info", 20),
    ("book_ticker", 2),
    ("klines", 2),
    ("time", 1),
    ("order", 1),
    ("query_order", 4),
    ("cancel", 1),
    ("open_orders", 6),
    ("my_trades", 20),
    ("account", 20),
    // `GET /api/v3/depth?limit=1000` (the diff-depth stream's snapshot).
    ("depth", 50),
    // POST / PUT / DELETE `/api/v3/userDataStream` (the user stream's listen key).
    ("user_data_stream", 2),
];

/// A Binance spot account. Keys are read from `BINANCE_API_KEY` / `BINANCE_API_SECRET`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceConfig {
    /// REST base URL. Default `https://api.binance.com`; the testnet is
    /// `https://testnet.binance.vision`.
    pub base_url: String,
    /// Several base URLs of this one account (Binance documents `api.binance.com`,
    /// `api-gcp.binance.com`, `api1`..`api4.binance.com`), each served by its own connector;
    /// reads and orders go to a healthy one. Instead of `base_url`.
    pub base_urls: Option<Vec<String>>,
    /// Quote asset of every pair; also the account's cash, counted 1:1 as USD. Default USDT.
    pub quote_asset: String,
    /// Symbols this account trades (positions, open orders and fills are read for these).
    /// Default BTC, ETH, SOL.
    pub symbols: Vec<String>,
    /// Explicit symbol → pair overrides (e.g. `BTC = "BTCFDUSD"`); others are
    /// symbol + quote asset.
    pub pairs: BTreeMap<String, String>,
    /// `recvWindow` of signed requests in ms (1..=60000). Default 5000.
    pub recv_window_ms: u64,
    /// Deadline of one HTTP request. Default 10s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long exchangeInfo filters are cached. Default 1h.
    #[serde(with = "humantime_serde")]
    pub exchange_info_ttl: Duration,
    /// Rate limits; the default draws the documented weight of each endpoint from a
    /// 6000/min pool and one unit per order from a 100/10s pool. Also the connector's
    /// queue and the market-data fallback levels and cache TTL.
    pub resilience: ResilienceConfig,
    /// Another configured venue whose quotes and candles stand in when this one's fail
    /// (never its orders).
    pub market_data_fallback: Option<String>,
    /// Websocket streams: market data (`bookTicker`, `aggTrade`, `kline_<interval>`,
    /// diff-depth of the symbols) on one connection, the account's user data stream
    /// (orders, fills, balances) on another. Quotes come from the stream while fresh.
    /// Default on.
    pub streams: bool,
    /// Replaces the websocket base URL derived from the REST URL: `api*.binance.com` →
    /// `wss://stream.binance.com:9443`, `testnet.binance.vision` →
    /// `wss://stream.testnet.binance.vision`, any other URL with `http(s)` turned into
    /// `ws(s)`.
    pub ws_url: Option<String>,
    /// A streamed quote or channel older than this is stale: reads use REST until it is
    /// fresh again. Default 10s.
    #[serde(with = "humantime_serde")]
    pub stream_stale_after: Duration,
    /// A websocket connection is replaced after this long (Binance ends connections at
    /// 24 h; replacing earlier avoids the gap). Default 23h50m.
    #[serde(with = "humantime_serde")]
    pub stream_max_lifetime: Duration,
}

/// Production websocket base URL.
pub const DEFAULT_WS_URL: &str = "wss://stream.binance.com:9443";
/// Spot testnet websocket base URL.
pub const TESTNET_WS_URL: &str = "wss://stream.testnet.binance.vision";
/// Binance ends a websocket connection at 24 hours.
pub const VENUE_CONNECTION_LIMIT: Duration = Duration::from_secs(24 * 3600);

impl Default for BinanceConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            base_urls: None,
            quote_asset: "USDT".to_string(),
            symbols: ["BTC", "ETH", "SOL"].map(String::from).to_vec(),
            pairs: BTreeMap::new(),
            recv_window_ms: DEFAULT_RECV_WINDOW_MS,
            request_timeout: Duration::from_secs(10),
            exchange_info_ttl: Duration::from_secs(3600),
            resilience: default_resilience(),
            market_data_fallback: None,
            streams: true,
            ws_url: None,
            stream_stale_after: Duration::from_secs(10),
            stream_max_lifetime: Duration::from_secs(23 * 3600 + 50 * 60),
        }
    }
}

/// Weight pool of 6000 per sliding minute, orders pool of 100 per 10 s, and every endpoint
/// drawing its documented weight.
pub fn default_resilience() -> ResilienceConfig {
    let mut endpoints = BTreeMap::new();
    for (name, weight) in ENDPOINT_WEIGHTS {
        let mut draws = BTreeMap::new();
        draws.insert(WEIGHT_POOL.to_string(), weight);
        if name == "order" {
            draws.insert(ORDERS_POOL.to_string(), 1);
        }
        endpoints.insert(name.to_string(), draws);
    }
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
                capacity: 100,
                refill_amount: 100,
                refill_every: Duration::from_secs(10),
                shared: None,
                local_share: None,
                batch: None,
            },
        ],
        endpoints,
        retry: RetryConfig {
            // A 429/418 blocks every request of the key and IP until its Retry-After; a
            // read then fails fast with that wait rather than every waiting read waking
            // at the block's end at once (Binance bans IPs that keep pushing).
            rate_limited: RateLimitedRetry {
                max_retries: 0,
                ..RateLimitedRetry::default()
            },
            ..RetryConfig::default()
        },
        ..ResilienceConfig::default()
    }
}

fn valid_asset(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl BinanceConfig {
    /// The Binance pair of one of our symbols.
    pub fn pair_of(&self, symbol: &str) -> String {
        self.pairs
            .get(symbol)
            .cloned()
            .unwrap_or_else(|| format!("{}{}", symbol.to_ascii_uppercase(), self.quote_asset))
    }

    /// Our symbol of a Binance pair: a configured symbol whose pair it is, else the pair
    /// without the quote asset.
    pub fn symbol_of(&self, pair: &str) -> Option<String> {
        if let Some(s) = self.symbols.iter().find(|s| self.pair_of(s) == pair) {
            return Some(s.clone());
        }
        if let Some((s, _)) = self.pairs.iter().find(|(_, p)| p.as_str() == pair) {
            return Some(s.clone());
        }
        pair.strip_suffix(self.quote_asset.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Every base URL of the account, one connector each: `base_urls`, or `base_url`.
    pub fn endpoints(&self) -> Vec<String> {
        crate::exchanges::account::endpoint_urls(self.base_urls.as_deref(), &self.base_url)
    }

    /// The websocket base URL: `ws_url`, else derived from the first REST endpoint (see
    /// `ws_url`'s doc).
    pub fn stream_url(&self) -> String {
        if let Some(url) = &self.ws_url {
            return url.trim_end_matches('/').to_string();
        }
        let api = self
            .endpoints()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.base_url.clone());
        let host = reqwest::Url::parse(&api)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if host == "testnet.binance.vision" {
            TESTNET_WS_URL.to_string()
        } else if host.ends_with("binance.com") {
            DEFAULT_WS_URL.to_string()
        } else if let Some(rest) = api.strip_prefix("https://") {
            format!("wss://{}", rest.trim_end_matches('/'))
        } else if let Some(rest) = api.strip_prefix("http://") {
            format!("ws://{}", rest.trim_end_matches('/'))
        } else {
            api
        }
    }

    pub fn validate(&self, path: &str, issues: &mut Issues) {
        let url_ok = (self.base_url.starts_with("https://")
            || self.base_url.starts_with("http://"))
            && reqwest::Url::parse(&self.base_url).is_ok();
        issues.check(
            url_ok,
            join(path, "base_url"),
            &self.base_url,
            "an http(s) URL such as https://api.binance.com",
        );
        crate::exchanges::account::validate_base_urls(
            self.base_urls.as_deref(),
            self.base_url != DEFAULT_BASE_URL,
            path,
            issues,
        );
        issues.check(
            valid_asset(&self.quote_asset),
            join(path, "quote_asset"),
            &self.quote_asset,
            "an asset code of letters and digits, e.g. USDT",
        );
        issues.check(
            !self.symbols.is_empty(),
            join(path, "symbols"),
            &self.symbols,
            "at least one symbol, e.g. [\"BTC\"]",
        );
        for (i, s) in self.symbols.iter().enumerate() {
            issues.check(
                valid_asset(s),
                format!("{}[{i}]", join(path, "symbols")),
                s,
                "an asset code of letters and digits, e.g. BTC",
            );
        }
        for (s, p) in &self.pairs {
            issues.check(
                valid_asset(p) && p.to_ascii_uppercase() == *p,
                join(&join(path, "pairs"), s),
                p,
                "an upper-case Binance pair such as BTCUSDT",
            );
        }
        issues.check(
            (1..=MAX_RECV_WINDOW_MS).contains(&self.recv_window_ms),
            join(path, "recv_window_ms"),
            self.recv_window_ms,
            "milliseconds from 1 to 60000",
        );
        let ms = self.request_timeout.as_millis();
        issues.check(
            (100..=120_000).contains(&ms),
            join(path, "request_timeout"),
            humantime::format_duration(self.request_timeout).to_string(),
            "a duration from 100ms to 2m",
        );
        issues.check(
            self.exchange_info_ttl >= Duration::from_secs(1),
            join(path, "exchange_info_ttl"),
            humantime::format_duration(self.exchange_info_ttl).to_string(),
            "a duration of at least 1s",
        );
        self.resilience.validate(&join(path, "resilience"), issues);
        if let Some(url) = &self.ws_url {
            issues.check(
                (url.starts_with("ws://") || url.starts_with("wss://"))
                    && reqwest::Url::parse(url).is_ok(),
                join(path, "ws_url"),
                url,
                "a ws(s) URL such as wss://stream.binance.com:9443",
            );
        }
        let stale = self.stream_stale_after.as_millis();
        issues.check(
            (100..=600_000).contains(&stale),
            join(path, "stream_stale_after"),
            humantime::format_duration(self.stream_stale_after).to_string(),
            "a duration from 100ms to 10m",
        );
        issues.check(
            self.stream_max_lifetime >= Duration::from_secs(1)
                && self.stream_max_lifetime < VENUE_CONNECTION_LIMIT,
            join(path, "stream_max_lifetime"),
            humantime::format_duration(self.stream_max_lifetime).to_string(),
            "a duration from 1s to under 24h (Binance ends connections at 24h)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_map_symbols() {
        let c = BinanceConfig::default();
        let mut issues = Issues::default();
        c.validate("exchanges.venues.binance", &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(c.pair_of("BTC"), "BTCUSDT");
        assert_eq!(c.symbol_of("ETHUSDT").as_deref(), Some("ETH"));
        let mut c = c;
        c.pairs.insert("BTC".into(), "BTCFDUSD".into());
        assert_eq!(c.pair_of("BTC"), "BTCFDUSD");
        assert_eq!(c.symbol_of("BTCFDUSD").as_deref(), Some("BTC"));
    }

    #[test]
    fn bad_values_are_reported_with_their_key_path() {
        let c = BinanceConfig {
            base_url: "ftp://x".into(),
            recv_window_ms: 90_000,
            quote_asset: "".into(),
            ..BinanceConfig::default()
        };
        let mut issues = Issues::default();
        c.validate("exchanges.venues.bn", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.clone()).collect();
        assert!(keys.contains(&"exchanges.venues.bn.base_url".to_string()));
        assert!(keys.contains(&"exchanges.venues.bn.recv_window_ms".to_string()));
        assert!(keys.contains(&"exchanges.venues.bn.quote_asset".to_string()));
    }

    #[test]
    fn stream_settings_default_and_bad_values_are_named() {
        let c = BinanceConfig::default();
        assert!(c.streams);
        assert_eq!(c.stream_url(), "wss://stream.binance.com:9443");
        assert_eq!(
            c.stream_max_lifetime,
            Duration::from_secs(23 * 3600 + 50 * 60)
        );
        let testnet = BinanceConfig {
            base_url: "https://testnet.binance.vision".into(),
            ..BinanceConfig::default()
        };
        assert_eq!(testnet.stream_url(), "wss://stream.testnet.binance.vision");
        let local = BinanceConfig {
            base_url: "http://127.0.0.1:9000/".into(),
            ..BinanceConfig::default()
        };
        assert_eq!(local.stream_url(), "ws://127.0.0.1:9000");
        let bad = BinanceConfig {
            ws_url: Some("https://stream.binance.com".into()),
            stream_stale_after: Duration::from_millis(10),
            stream_max_lifetime: Duration::from_secs(24 * 3600),
            ..BinanceConfig::default()
        };
        let mut issues = Issues::default();
        bad.validate("v", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            ["v.ws_url", "v.stream_stale_after", "v.stream_max_lifetime"]
        );
    }
}
