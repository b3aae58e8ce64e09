//! One venue account reached through several base endpoints (Binance documents
//! `api.binance.com`, `api-gcp.binance.com` and `api1`..`api4.binance.com`; a Hyperliquid
//! account can have a standby URL or a proxy), each served by its own connector.
//!
//! Owns: [`AccountLimits`] (the rate limits and the 429/418 pause gate that every connector
//! of one account shares, because the venue counts per account / IP, never per
//! connection), [`Endpoint`] (one base URL, the name of the connector serving it, and the
//! account's shared limits), the naming of sibling connectors ([`connector_name`]) and
//! [`display_url`] (an endpoint as status and logs may show it). Never: signs anything
//! (signing keys stay in each venue object, read from the environment per account) or
//! routes a call (the gateway's [`super::siblings::ConnectorSet`] does).
//!
//! What is per endpoint and what per account: the HTTP client, the circuit breaker (its
//! target and its record in the `breakers` tree are the connector's name, so one failing
//! endpoint is skipped while its siblings serve), the clock offset and metadata caches are
//! per endpoint; the weight / order pools, the pause gate and the signing nonce are per
//! account, built once per process (the engine's account book) and handed to every
//! connector factory and to the account's readers, so a connector that restarts keeps
//! drawing from the same budget and a reader never spends a second one.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::cluster::SharedLimits;
use crate::resilience::config::{BreakerConfig, SharedBudgets};
use crate::resilience::limiter::LinkedLimitError;
use crate::resilience::{
    CircuitBreaker, Guard, PauseGate, RateLimits, ResilienceConfig, RetryPolicy, TokioClock,
};
use crate::validate::{join, Issues};

/// The rate limits and pause gate of one venue account, shared by all its connectors.
#[derive(Clone, Debug)]
pub struct AccountLimits {
    /// The account's pools (request weight, orders), drawn by every connector's calls.
    pub limits: Arc<RateLimits>,
    /// "Send nothing before", set by a 429 / 418 seen through any of its endpoints.
    pub pause: Arc<PauseGate>,
    /// The last nonce signed for the account: Hyperliquid wants each signer's nonces
    /// unique, so siblings signing in the same millisecond must not pick the same one.
    pub nonce: Arc<AtomicU64>,
}

impl AccountLimits {
    /// The limits of account `venue` from its (validated) resilience section.
    pub fn build(venue: &str, resilience: &ResilienceConfig) -> Result<Self, LinkedLimitError> {
        Self::build_shared(venue, resilience, None)
    }

    /// As [`AccountLimits::build`]; pools naming a `shared` scope also draw from the
    /// cluster's budget through `cluster` (see `crate::cluster::limits`).
    pub fn build_shared(
        venue: &str,
        resilience: &ResilienceConfig,
        cluster: Option<&SharedLimits>,
    ) -> Result<Self, LinkedLimitError> {
        Ok(Self {
            limits: Arc::new(RateLimits::build_shared(
                venue,
                resilience,
                TokioClock::shared(),
                cluster.map(|c| c as &dyn SharedBudgets),
            )?),
            pause: Arc::new(PauseGate::default()),
            nonce: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// One base endpoint of an account and the connector that serves it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The API root, without a trailing slash.
    pub base_url: String,
    /// The serving connector's name ([`connector_name`]): its breaker's target and key in
    /// the `breakers` tree, and the `connector` label of its metrics.
    pub connector: String,
    /// Shared with the account's other connectors.
    pub account: AccountLimits,
    /// A breaker this endpoint's user shares with others (the account's market-data
    /// readers share one per process); `None`: the guard gets a breaker of its own, named
    /// after `connector`.
    pub breaker: Option<CircuitBreaker>,
}

impl Endpoint {
    /// The guard of the connector serving this endpoint: its shared breaker, else a breaker
    /// of its own (target and `breakers` key: the connector's name), the account's shared
    /// pause gate.
    pub fn guard(
        &self,
        target: &str,
        breaker: BreakerConfig,
        clock: SharedClock,
        retry: RetryPolicy,
    ) -> Guard {
        Guard::new(
            target,
            self.breaker.clone().unwrap_or_else(|| {
                CircuitBreaker::new(self.connector.clone(), breaker, clock, None)
            }),
            retry,
        )
        .with_pause_gate(self.account.pause.clone())
    }
}

/// Every base URL of an account, without trailing slashes: `listed` (`base_urls`) when
/// set and not empty, else the `single` one.
pub fn endpoint_urls(listed: Option<&[String]>, single: &str) -> Vec<String> {
    match listed {
        Some(urls) if !urls.is_empty() => urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect(),
        _ => vec![single.trim_end_matches('/').to_string()],
    }
}

/// The name of connector `index` (0-based) of `count` serving account `venue`: the venue's
/// own name when it has one endpoint (as before sibling connectors existed, so persisted
/// breaker records and metric series stay the same), `<venue>#<n>` (1-based) otherwise.
pub fn connector_name(venue: &str, index: usize, count: usize) -> String {
    if count <= 1 {
        venue.to_string()
    } else {
        format!("{venue}#{}", index + 1)
    }
}

/// `url` as status and logs show it: scheme, host, port and path only. A proxy URL may
/// carry credentials (`https://user:secret@proxy/`) or a token in its query; neither is
/// ever shown.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

/// The config key listing an account's base endpoints (`[exchanges.venues.<name>]`).
pub const BASE_URLS_KEY: &str = "base_urls";

/// Checks `base_urls` of the venue at `path`: when given, a non-empty list of distinct
/// http(s) URLs, and not beside an explicit `base_url` (`base_url_set`). Values are shown
/// without credentials ([`display_url`]).
pub fn validate_base_urls(
    urls: Option<&[String]>,
    base_url_set: bool,
    path: &str,
    issues: &mut Issues,
) {
    let Some(urls) = urls else {
        return;
    };
    let key = join(path, BASE_URLS_KEY);
    if urls.is_empty() {
        issues.push(
            key.clone(),
            "[]",
            "at least one http(s) URL; leave `base_urls` out to use `base_url`",
        );
    }
    if base_url_set {
        issues.push(
            key.clone(),
            urls.iter().map(|u| display_url(u)).collect::<Vec<_>>(),
            "either `base_url` (one endpoint) or `base_urls` (one connector per endpoint), not both",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, url) in urls.iter().enumerate() {
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        // Anything that parses as a URL is shown without its credentials and query (an
        // `ftp://` entry names itself); text that does not parse is not echoed, since it
        // cannot be stripped of a secret it may hold.
        let shown = if reqwest::Url::parse(url).is_ok() {
            display_url(url)
        } else {
            "(not a URL)".to_string()
        };
        issues.check(
            parsed.is_some(),
            format!("{key}[{i}]"),
            &shown,
            "an http(s) URL such as https://api1.binance.com",
        );
        issues.check(
            seen.insert(url.trim_end_matches('/').to_ascii_lowercase()),
            format!("{key}[{i}]"),
            &shown,
            "each endpoint once: this one is listed twice",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_with_their_key() {
        let keys = |urls: Option<Vec<&str>>, base_set: bool| {
            let urls: Option<Vec<String>> = urls.map(|u| u.into_iter().map(String::from).collect());
            let mut issues = Issues::default();
            validate_base_urls(
                urls.as_deref(),
                base_set,
                "exchanges.venues.bn",
                &mut issues,
            );
            issues
                .0
                .iter()
                .map(|i| (i.key.clone(), i.value.clone()))
                .collect::<Vec<_>>()
        };
        assert!(keys(None, true).is_empty());
        assert!(keys(
            Some(vec!["https://api.binance.com", "https://api1.binance.com"]),
            false
        )
        .is_empty());
        assert_eq!(
            keys(Some(vec![]), false)[0].0,
            "exchanges.venues.bn.base_urls"
        );
        assert_eq!(
            keys(Some(vec!["https://a.example"]), true)[0].0,
            "exchanges.venues.bn.base_urls"
        );
        let bad = keys(Some(vec!["https://a.example", "ftp://user:pw@b"]), false);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, "exchanges.venues.bn.base_urls[1]");
        assert!(!bad[0].1.contains("pw"), "{bad:?}");
        // The wrong scheme is shown, so the operator sees what is wrong; text that is no
        // URL at all is not echoed.
        assert_eq!(bad[0].1, "\"ftp://b\"", "{bad:?}");
        let junk = keys(Some(vec!["api key=s3cret"]), false);
        assert_eq!(junk[0].1, "\"(not a URL)\"", "{junk:?}");
        let dup = keys(Some(vec!["https://a.example", "https://A.example/"]), false);
        assert_eq!(dup.len(), 1, "{dup:?}");
        assert_eq!(dup[0].0, "exchanges.venues.bn.base_urls[1]");
    }

    #[test]
    fn one_endpoint_keeps_the_venue_name_and_siblings_are_numbered() {
        assert_eq!(connector_name("binance", 0, 1), "binance");
        assert_eq!(connector_name("binance", 0, 3), "binance#1");
        assert_eq!(connector_name("binance", 2, 3), "binance#3");
    }

    #[test]
    fn a_displayed_endpoint_never_shows_credentials_or_query() {
        assert_eq!(
            display_url("https://user:s3cret@proxy.example:8443/hl/?token=abc"),
            "https://proxy.example:8443/hl"
        );
        assert_eq!(
            display_url("https://api1.binance.com"),
            "https://api1.binance.com"
        );
        assert_eq!(display_url("not a url"), "<invalid url>");
    }
}
