//! The Binance spot venue: [`Venue`] over the `/api/v3` REST API.
//!
//! Owns: one reqwest client (connection reuse) with a deadline on every request; signing
//! of SIGNED endpoints (`timestamp`, `recvWindow`, HMAC `signature`, `X-MBX-APIKEY`); the
//! server-time offset (re-read from `GET /api/v3/time` after a -1021 and the request sent
//! once more, which is safe because Binance refuses such a request before executing it);
//! the request-weight and order-rate limits (documented weights in [`super::config`]) with
//! the `X-MBX-USED-WEIGHT-1M` header observed after every response; the 429/418 pause
//! (after a 429 or a ban, no request of this key/IP leaves before `Retry-After` or the
//! "banned until" time: every request goes through the resilience [`Guard`], so a read
//! waits out a pause that ends before its deadline and fails rate limited otherwise,
//! and an order or cancel is refused at once, not sent); the exchangeInfo filter cache used to round and refuse locally
//! what the venue could not represent (dropped after a -1013 filter failure, so stale
//! filters are re-read before the next order); and the conversions between Binance wire shapes and
//! venue-neutral types. Never: retries an order send (a 5xx, timeout or reset after the
//! bytes may have left is [`VenueError::OutcomeUnknown`], resolved by the gateway with
//! [`Venue::query_order`] by `origClientOrderId`), prints or stores the API key or secret.
//!
//! Deadlines: an order with [`OrderRequest::valid_until_ms`] is signed with the
//! `recvWindow` that is left of it, so `timestamp` + `recvWindow` is its deadline (also
//! when re-sent after a -1021) and Binance refuses it after that; one whose deadline has
//! passed is not sent. `order_validity` is the configured `recv_window_ms`.
//!
//! Spot specifics, decided here:
//! - A "position" is the base-asset holding (`free + locked`) of a configured symbol. Its
//!   entry price is not known to the venue (the ledger has the fills), so `entry_price` is
//!   the mark (mid) and unrealised PnL is zero; `margin_used` is the holding's notional.
//! - Account value counts the quote asset 1:1 as USD (a USD stablecoin) plus configured
//!   symbols' holdings at mid; other assets are ignored.
//! - `reduce_only` has no spot equivalent; the gateway already caps such orders at the
//!   holding. Market orders are native `MARKET` orders (`max_slippage` is not sent).
//! - Fees of fills are converted to USD when paid in the quote or base asset; fees paid in
//!   a third asset (BNB) are reported as zero.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;
use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::time::Instant;

use super::config::{BinanceConfig, WEIGHT_POOL};
use super::dialect::{Dialect, SPOT};
use super::errors::USED_WEIGHT_HEADER;
use super::errors::{parse_error_response, BinanceApiError, BinanceErrorKind, RequestKind};
use super::filters::{parse_exchange_info, to_wire, SymbolRules};
use super::signing::{
    signed_query, ApiSecret, BinanceSigningError, RecvWindow, API_KEY_HEADER, MAX_RECV_WINDOW_MS,
};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::account::Endpoint;

use crate::env::{non_empty, process_env, EnvLookup};
use crate::exchanges::call_priority;
use crate::exchanges::risk_gate::RiskApproved;
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError, VenueResult};
use crate::resilience::config::RateLimits;
use crate::resilience::BreakerState;
use crate::resilience::{
    BreakerRecord, Effect, Guard, GuardedCall, LimitError, Priority, Refusal, ServerQuota,
    SharedMonotonic, TargetResilience, TokioClock,
};
use crate::store::Tree;

/// Weight of the heaviest request the spot venue sends (exchangeInfo, myTrades, account).
pub(crate) const HEAVIEST_WEIGHT: u64 = 20;

/// Environment variable of the API key.
pub const API_KEY_ENV: &str = "BINANCE_API_KEY";
/// Environment variable of the API secret.
pub const API_SECRET_ENV: &str = "BINANCE_API_SECRET";

/// Why a Binance venue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BinanceOpenError {
    #[error(
        "binance venue `{venue}`: {var} is not set; export it with the account's API key/secret"
    )]
    MissingKey { venue: String, var: &'static str },
    #[error("binance venue `{venue}`: {source}")]
    Signing {
        venue: String,
        #[source]
        source: BinanceSigningError,
    },
    #[error("binance venue `{venue}`: cannot build the HTTP client or limits: {reason}")]
    Setup { venue: String, reason: String },
}

/// API key and secret; `Debug` never shows either.
#[derive(Clone)]
struct Credentials {
    api_key: String,
    secret: ApiSecret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// A failed attempt: either already a venue error, or Binance's own answer (which the
/// caller may act on, e.g. resync the clock after -1021).
pub(crate) enum Failure {
    Venue(VenueError),
    Api(BinanceApiError),
}

/// One REST call.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    /// Rate-limit endpoint name (see `config::ENDPOINT_WEIGHTS`).
    pub(crate) endpoint: &'static str,
    pub(crate) params: Vec<(&'static str, String)>,
    pub(crate) signed: bool,
    pub(crate) kind: RequestKind,
    /// The limiter priority of a call made outside a connector; inside one, the priority
    /// its command was served at holds.
    pub(crate) priority: Priority,
    /// An order's deadline (local clock, ms): the request is signed so that `timestamp` +
    /// `recvWindow` equals it, and is not sent once it has passed.
    pub(crate) valid_until: Option<Millis>,
    /// Binance error codes that mean the state asked for already holds (futures -4046
    /// "No need to change margin type"): the call succeeds with an empty body. Decided on
    /// the numeric code, never on the message.
    pub(crate) success_codes: &'static [i64],
}

impl Call {
    pub(crate) fn get(path: &'static str, endpoint: &'static str) -> Self {
        Self {
            method: Method::GET,
            path,
            endpoint,
            params: Vec::new(),
            signed: false,
            kind: RequestKind::Read,
            priority: Priority::Low,
            valid_until: None,
            success_codes: &[],
        }
    }
    pub(crate) fn signed(mut self) -> Self {
        self.signed = true;
        self
    }
    pub(crate) fn param(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.params.push((k, v.into()));
        self
    }
}

type RulesCache = HashMap<String, (Instant, Arc<SymbolRules>)>;

/// One Binance spot account.
pub struct BinanceSpotVenue {
    name: String,
    config: BinanceConfig,
    base_url: String,
    http: reqwest::Client,
    creds: Credentials,
    recv_window: RecvWindow,
    clock: SharedClock,
    /// The account's pools; shared by every connector of the account when it has several
    /// endpoints (see [`crate::exchanges::account`]).
    limits: Arc<RateLimits>,
    /// Pause gate (429 / 418), breaker (opens after repeated failures: requests then fail
    /// fast instead of piling up) and retry (reads only; orders and cancels go out at
    /// most once).
    guard: Guard,
    mono: SharedMonotonic,
    /// Spot or futures: the paths and budgets the shared request machinery uses.
    dialect: &'static Dialect,
    /// Server time minus local time, in ms.
    offset_ms: AtomicI64,
    rules: RwLock<RulesCache>,
}

impl fmt::Debug for BinanceSpotVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceSpotVenue")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("credentials", &self.creds)
            .finish_non_exhaustive()
    }
}

impl BinanceSpotVenue {
    /// Opens the account with keys from the process environment.
    pub fn open(
        name: &str,
        config: &BinanceConfig,
        clock: SharedClock,
    ) -> Result<Self, BinanceOpenError> {
        Self::open_with_env(name, config, clock, &process_env)
    }

    /// Opens the account with keys from `env` (tests inject their own lookup).
    pub fn open_with_env(
        name: &str,
        config: &BinanceConfig,
        clock: SharedClock,
        env: EnvLookup<'_>,
    ) -> Result<Self, BinanceOpenError> {
        Self::open_at(name, config, clock, env, None)
    }

    /// [`BinanceSpotVenue::open_with_env`] served through `endpoint`: its base URL
    /// instead of `base_url`, its own breaker (target: the connector's name), and the
    /// account's shared weight / order pools and 429/418 pause gate. `None`: the
    /// configured `base_url`, limits of its own.
    pub fn open_at(
        name: &str,
        config: &BinanceConfig,
        clock: SharedClock,
        env: &dyn Fn(&str) -> Option<String>,
        endpoint: Option<&Endpoint>,
    ) -> Result<Self, BinanceOpenError> {
        Self::open_dialect(name, config, clock, env, endpoint, &SPOT)
    }

    /// [`BinanceSpotVenue::open_at`] speaking `dialect`: the request machinery of another
    /// Binance API (the futures venue holds one of these and sends its own calls through
    /// [`BinanceSpotVenue::send`]).
    pub(crate) fn open_dialect(
        name: &str,
        config: &BinanceConfig,
        clock: SharedClock,
        env: &dyn Fn(&str) -> Option<String>,
        endpoint: Option<&Endpoint>,
        dialect: &'static Dialect,
    ) -> Result<Self, BinanceOpenError> {
        let read = |var: &'static str| {
            non_empty(env, var).ok_or_else(|| BinanceOpenError::MissingKey {
                venue: name.to_string(),
                var,
            })
        };
        let api_key = read(dialect.api_key_env)?;
        let secret = ApiSecret::new(&read(dialect.api_secret_env)?).map_err(|source| {
            BinanceOpenError::Signing {
                venue: name.to_string(),
                source,
            }
        })?;
        let recv_window =
            RecvWindow::new(config.recv_window_ms).map_err(|source| BinanceOpenError::Signing {
                venue: name.to_string(),
                source,
            })?;
        let setup = |reason: String| BinanceOpenError::Setup {
            venue: name.to_string(),
            reason,
        };
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let mono = TokioClock::shared();
        let TargetResilience {
            limits,
            breaker,
            retry,
        } = config
            .resilience
            .build(name, mono.clone(), clock.clone(), None)
            .map_err(|e| setup(e.to_string()))?;
        let (base_url, limits, guard) = match endpoint {
            // The first endpoint (`base_urls`' first, or `base_url`): a venue opened
            // outside a connector, e.g. by `orrery status` of a stopped engine.
            None => (
                config
                    .endpoints()
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| config.base_url.trim_end_matches('/').to_string()),
                Arc::new(limits),
                Guard::new(name, breaker, retry),
            ),
            Some(ep) => (
                ep.base_url.trim_end_matches('/').to_string(),
                ep.account.limits.clone(),
                ep.guard(
                    name,
                    config.resilience.breaker.clone(),
                    clock.clone(),
                    retry,
                ),
            ),
        };
        Ok(Self {
            name: name.to_string(),
            config: config.clone(),
            base_url,
            http,
            creds: Credentials { api_key, secret },
            recv_window,
            clock,
            limits,
            guard,
            mono,
            dialect,
            offset_ms: AtomicI64::new(0),
            rules: RwLock::new(HashMap::new()),
        })
    }

    /// Keeps the circuit breaker's state in `tree` (the store's `breakers`), restoring
    /// what an earlier run recorded for this venue.
    pub fn with_breaker_store(mut self, tree: Tree<BreakerRecord>) -> Self {
        self.guard = self.guard.persisted_in(tree);
        self
    }

    /// The clock requests are timed by (the futures venue stamps its conversions with it).
    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// `GET /api/v3/depth?symbol=<pair>&limit=<limit>` (the diff-depth stream's snapshot),
    /// through the guard like every read: its weight (50 for a limit of 501..=1000) drawn
    /// from the account's pool, the 429/418 pause honoured, the request deadline held.
    pub async fn depth_snapshot(
        &self,
        symbol: &str,
        limit: u32,
    ) -> VenueResult<crate::exchanges::stream::binance::depth::DepthSnapshot> {
        let call = Call::get("/api/v3/depth", "depth")
            .param("symbol", self.config.pair_of(symbol))
            .param("limit", limit.to_string());
        let body = self.send(&call, Some(symbol)).await?;
        serde_json::from_slice(&body).map_err(|e| self.err_malformed("GET /api/v3/depth", e))
    }

    /// The account's rate limits (shared with the stream's REST calls: listen key, depth).
    pub fn limits(&self) -> Arc<RateLimits> {
        self.limits.clone()
    }

    /// Current estimate of server time minus local time, in ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Request weight this venue may still spend now, after what Binance last reported
    /// in `X-MBX-USED-WEIGHT-1M` (None without a weight pool).
    pub fn weight_headroom(&self) -> Option<u64> {
        self.limits.pool(WEIGHT_POOL)?.headroom(self.mono.now())
    }

    /// Units pool `pool` could admit now (None for an unknown pool).
    pub(crate) fn pool_headroom(&self, pool: &str) -> Option<u64> {
        self.limits.pool(pool)?.headroom(self.mono.now())
    }

    /// A trade's commission in USD, and where it came from when not the quote asset: the
    /// base asset is priced at the trade's price; another asset (BNB) at its book's mid
    /// against the quote asset now (ingestion follows the fill within a reconciliation
    /// interval). If that quote cannot be read the fee is kept in its asset, `usd_price`
    /// `None`, and a warning says so: it is never counted as a 0 USD fee silently.
    pub(crate) async fn fee_in_usd(
        &self,
        symbol: &str,
        t: &TradeFee<'_>,
        prices: &mut HashMap<String, Option<Decimal>>,
    ) -> (Decimal, Option<FeeInAsset>) {
        let asset = t.asset;
        if asset.is_empty() || asset == self.config.quote_asset || t.commission.is_zero() {
            return (t.commission, None);
        }
        let base = self
            .config
            .pair_of(symbol)
            .strip_suffix(self.config.quote_asset.as_str())
            .map(str::to_string);
        let usd_price = if asset.eq_ignore_ascii_case(symbol) || base.as_deref() == Some(asset) {
            Some(t.trade_price)
        } else if let Some(known) = prices.get(asset) {
            *known
        } else {
            let price = match self.quote(asset).await {
                Ok(q) => Some(q.mid()),
                Err(e) => {
                    tracing::warn!(venue = %self.name, asset, error = %e, "no USD price for a fee asset; the fee is kept in its asset");
                    None
                }
            };
            prices.insert(asset.to_string(), price);
            price
        };
        let fee = FeeInAsset {
            asset: asset.to_string(),
            amount: t.commission,
            usd_price,
        };
        (fee.usd().unwrap_or_default(), Some(fee))
    }

    pub(crate) fn err_malformed(&self, what: &str, e: impl fmt::Display) -> VenueError {
        VenueError::Malformed {
            venue: self.name.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    /// The `recvWindow` of a signed call: the configured one, or for an order with a
    /// deadline what is left of it, so `timestamp` + `recvWindow` is the order's deadline
    /// (in the server's time, via the offset) also when the request is re-sent after a
    /// -1021. An order whose deadline has passed is not sent.
    fn recv_window_for(&self, call: &Call) -> Result<RecvWindow, Failure> {
        let Some(until) = call.valid_until else {
            return Ok(self.recv_window);
        };
        let left = until - self.clock.now_ms();
        let left = u64::try_from(left).unwrap_or(0).min(MAX_RECV_WINDOW_MS);
        RecvWindow::new(left).map_err(|_| {
            Failure::Venue(self.invalid(format!(
                "not sent: the order's deadline ({until} ms) passed while it waited to be sent"
            )))
        })
    }

    pub(crate) fn server_now_ms(&self) -> Millis {
        self.clock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    fn block_for(&self, wait: Duration) {
        self.guard.pause(
            wait,
            "Binance asked us to back off (429/418); no request is sent before its Retry-After",
        );
        self.limits.observe(
            WEIGHT_POOL,
            ServerQuota {
                limit: None,
                remaining: 0,
                reset_after: wait,
            },
        );
    }

    fn observe_weight(&self, headers: &reqwest::header::HeaderMap) {
        let Some(used) = headers
            .get(USED_WEIGHT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        // The weight counter is per calendar minute of the server's clock.
        let into_minute = self.server_now_ms().rem_euclid(60_000) as u64;
        let budget = self.dialect.weight_per_minute;
        self.limits.observe(
            WEIGHT_POOL,
            ServerQuota {
                limit: Some(budget),
                remaining: budget.saturating_sub(used),
                reset_after: Duration::from_millis(60_000 - into_minute),
            },
        );
    }

    /// The dialect's order-count headers (`X-MBX-ORDER-COUNT-10S` / `-1M`), each into its
    /// order pool: orders placed through another process or the web UI count too.
    fn observe_order_counts(&self, headers: &reqwest::header::HeaderMap) {
        for c in self.dialect.order_counts {
            let Some(used) = headers
                .get(c.header)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                continue;
            };
            let window = c.window.as_millis().max(1) as i64;
            let into = self.server_now_ms().rem_euclid(window) as u64;
            self.limits.observe(
                c.pool,
                ServerQuota {
                    limit: Some(c.limit),
                    remaining: c.limit.saturating_sub(used),
                    reset_after: Duration::from_millis(window as u64 - into),
                },
            );
        }
    }

    /// Transport failure: an order or cancel whose bytes may have left has an unknown
    /// outcome; a connection never made is plainly unavailable.
    fn transport_error(&self, call: &Call, e: reqwest::Error, after: Duration) -> VenueError {
        // The URL carries the signed query; the method and path say enough.
        let e = e.without_url();
        let affects_orders = matches!(call.kind, RequestKind::OrderSend | RequestKind::Cancel);
        let what = format!("{} {}", call.method, call.path);
        if e.is_connect() {
            return VenueError::Unavailable {
                venue: self.name.clone(),
                reason: format!("cannot connect for {what}: {e}"),
            };
        }
        if affects_orders {
            return VenueError::OutcomeUnknown {
                venue: self.name.clone(),
                reason: format!(
                    "{what}: {}",
                    if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        e.to_string()
                    }
                ),
            };
        }
        if e.is_timeout() {
            return VenueError::Timeout {
                venue: self.name.clone(),
                what,
                after,
            };
        }
        VenueError::Unavailable {
            venue: self.name.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    /// The limiter draw of `call`, waiting at most until `until`.
    async fn draw(&self, call: &Call, until: Instant) -> Result<(), LimitError> {
        self.limits
            .acquire(
                call.endpoint,
                1,
                // Inside a connector: the priority its command was served at (decided by
                // the gateway); the call's own only outside one.
                call_priority::current().unwrap_or(call.priority),
                until,
            )
            .await
            .map(|_| ())
    }

    /// One attempt, past the guard: no retry of any kind.
    async fn attempt(&self, call: &Call, deadline: Instant) -> Result<Vec<u8>, Failure> {
        let params: Vec<(&str, &str)> = call.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = if call.signed {
            signed_query(
                &self.creds.secret,
                &params,
                self.server_now_ms(),
                self.recv_window_for(call)?,
            )
        } else {
            super::signing::encode_query(&params)
        };
        let url = if query.is_empty() {
            format!("{}{}", self.base_url, call.path)
        } else {
            format!("{}{}?{}", self.base_url, call.path, query)
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let mut req = self.http.request(call.method.clone(), url).timeout(left);
        if call.signed {
            req = req.header(API_KEY_HEADER, &self.creds.api_key);
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(left, async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        })
        .await;
        let (status, headers, body) = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(Failure::Venue(self.transport_error(
                    call,
                    e,
                    started.elapsed(),
                )))
            }
            Err(_) => {
                let what = format!("{} {}", call.method, call.path);
                let e = if matches!(call.kind, RequestKind::OrderSend | RequestKind::Cancel) {
                    VenueError::OutcomeUnknown {
                        venue: self.name.clone(),
                        reason: format!("{what}: no answer within {left:?}"),
                    }
                } else {
                    VenueError::Timeout {
                        venue: self.name.clone(),
                        what,
                        after: left,
                    }
                };
                return Err(Failure::Venue(e));
            }
        };
        self.observe_weight(&headers);
        self.observe_order_counts(&headers);
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let api = parse_error_response(status, retry_after, &body, self.clock.now_ms());
        if matches!(
            api.kind(call.kind),
            BinanceErrorKind::RateLimited | BinanceErrorKind::Banned | BinanceErrorKind::Firewall
        ) {
            // Without a Retry-After, back off for the rest of the weight minute.
            let wait = api.retry_after.unwrap_or_else(|| {
                Duration::from_millis(60_000 - self.server_now_ms().rem_euclid(60_000) as u64)
            });
            tracing::warn!(venue = %self.name, status, ?wait, "Binance rate limit answer; blocking all requests until it ends");
            self.block_for(wait);
        }
        Err(Failure::Api(api))
    }

    /// Sends `call` through the guard: a read waits out a short pause and is retried per
    /// class, an order or cancel is refused during a pause and sent exactly once.
    pub(crate) async fn send(&self, call: &Call, symbol: Option<&str>) -> VenueResult<Vec<u8>> {
        let deadline = Instant::now() + self.config.request_timeout;
        let what = format!("{} {}", call.method, call.path);
        let terms = match call.kind {
            RequestKind::Read => GuardedCall::read(&what, deadline),
            RequestKind::OrderSend | RequestKind::Cancel => {
                GuardedCall::state_change(&what, deadline)
            }
        };
        self.guard
            .run(
                terms,
                |until| self.draw(call, until),
                |()| self.send_resyncing(call, symbol, deadline),
            )
            .await
    }

    /// One guarded attempt; after a -1021 re-reads server time and sends once more
    /// (Binance refuses such a request before executing it).
    async fn send_resyncing(
        &self,
        call: &Call,
        symbol: Option<&str>,
        deadline: Instant,
    ) -> VenueResult<Vec<u8>> {
        let mut resynced = false;
        loop {
            match self.attempt(call, deadline).await {
                Ok(body) => return Ok(body),
                Err(Failure::Venue(e)) => return Err(e),
                Err(Failure::Api(api)) => {
                    if api.code.is_some_and(|c| call.success_codes.contains(&c)) {
                        return Ok(Vec::new());
                    }
                    if call.signed
                        && !resynced
                        && api.kind(call.kind) == BinanceErrorKind::ClockSkew
                    {
                        resynced = true;
                        tracing::warn!(venue = %self.name, msg = %api.msg, "timestamp outside recvWindow; resyncing with server time");
                        self.sync_time(deadline).await?;
                        continue;
                    }
                    if call.kind == RequestKind::OrderSend && api.is_filter_failure() {
                        // The venue's filters refused what ours let through: they may be
                        // stale, so the next order of this symbol reads exchangeInfo again.
                        if let Some(symbol) = symbol {
                            self.forget_rules(symbol);
                        }
                    }
                    return Err(api.into_venue_error(&self.name, call.kind, symbol));
                }
            }
        }
    }

    /// Reads `GET /api/v3/time` and keeps server minus local time (at the midpoint).
    pub async fn sync_time_now(&self) -> VenueResult<i64> {
        let deadline = Instant::now() + self.config.request_timeout;
        self.sync_time(deadline).await
    }

    async fn sync_time(&self, deadline: Instant) -> VenueResult<i64> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TimeWire {
            server_time: i64,
        }
        let call = Call::get(self.dialect.time_path, "time");
        let what = format!("GET {}", self.dialect.time_path);
        let what = what.as_str();
        // Not a guarded call of its own: it runs inside one (a -1021 resync) or for the
        // operator; it still honours the pause and draws its weight.
        self.guard
            .pause_gate()
            .pass(&self.name, what, Effect::Read, deadline)
            .await?;
        self.draw(&call, deadline).await.map_err(|error| {
            VenueError::from(Refusal::Limited {
                target: self.name.clone(),
                what: what.to_string(),
                error,
            })
        })?;
        let before = self.clock.now_ms();
        let body = match self.attempt(&call, deadline).await {
            Ok(b) => b,
            Err(Failure::Venue(e)) => return Err(e),
            Err(Failure::Api(api)) => return Err(api.into_venue_error(&self.name, call.kind, None)),
        };
        let after = self.clock.now_ms();
        let t: TimeWire = serde_json::from_slice(&body).map_err(|e| self.err_malformed(what, e))?;
        let offset = t.server_time - (before + after) / 2;
        self.offset_ms.store(offset, Ordering::Relaxed);
        Ok(offset)
    }

    pub(crate) async fn rules_for(&self, symbol: &str) -> VenueResult<Arc<SymbolRules>> {
        let pair = self.config.pair_of(symbol);
        if let Some((at, r)) = self.rules.read().get(&pair) {
            if at.elapsed() < self.config.exchange_info_ttl {
                return Ok(r.clone());
            }
        }
        let mut call = Call::get(self.dialect.exchange_info_path, "exchange_info");
        if self.dialect.exchange_info_per_symbol {
            call = call.param("symbol", pair.clone());
        }
        let body = self.send(&call, Some(symbol)).await?;
        let all = parse_exchange_info(&body)
            .map_err(|e| self.err_malformed(&format!("GET {}", call.path), e))?;
        let now = Instant::now();
        let mut cache = self.rules.write();
        let mut found = None;
        for r in all {
            let r = Arc::new(r);
            if r.symbol == pair {
                found = Some(r.clone());
            }
            // An exchangeInfo of every symbol (futures) fills the cache of the
            // configured ones at once: one read instead of one per symbol.
            let configured = self
                .config
                .symbols
                .iter()
                .any(|s| self.config.pair_of(s) == r.symbol);
            if r.symbol == pair || configured {
                cache.insert(r.symbol.clone(), (now, r));
            }
        }
        found.ok_or_else(|| VenueError::UnknownSymbol {
            venue: self.name.clone(),
            symbol: symbol.to_string(),
        })
    }

    fn to_venue_order(&self, w: OrderWire) -> VenueResult<VenueOrder> {
        let side = parse_side(&w.side).ok_or_else(|| self.err_malformed("order side", &w.side))?;
        let status =
            order_status(&w.status).ok_or_else(|| self.err_malformed("order status", &w.status))?;
        let avg_fill_price = (w.executed_qty > Decimal::ZERO)
            .then(|| (w.cummulative_quote_qty / w.executed_qty).normalize());
        Ok(VenueOrder {
            client_id: ClientOrderId::parse(&w.client_order_id).ok(),
            venue_order_id: w.order_id.to_string(),
            symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
            side,
            size: w.orig_qty.normalize(),
            filled_size: w.executed_qty.normalize(),
            avg_fill_price,
            limit_price: (w.price > Decimal::ZERO).then(|| w.price.normalize()),
            status,
            reduce_only: false,
            reject_reason: None,
            updated_ms: w
                .update_time
                .or(w.transact_time)
                .or(w.time)
                .unwrap_or_else(|| self.clock.now_ms()),
        })
    }

    /// Asset → (free, locked).
    async fn balances(&self) -> VenueResult<HashMap<String, (Decimal, Decimal)>> {
        let call = Call::get("/api/v3/account", "account")
            .signed()
            .param("omitZeroBalances", "true");
        let body = self.send(&call, None).await?;
        let w: AccountWire = serde_json::from_slice(&body)
            .map_err(|e| self.err_malformed("GET /api/v3/account", e))?;
        Ok(w.balances
            .into_iter()
            .map(|b| (b.asset, (b.free, b.locked)))
            .collect())
    }

    /// Holdings of the configured symbols as positions, and the account's value: one
    /// account read, then the books of the symbols held, read concurrently.
    async fn holdings(&self) -> VenueResult<AccountState> {
        let balances = self.balances().await?;
        let held: Vec<(&String, Decimal)> = self
            .config
            .symbols
            .iter()
            .map(|s| (s, balances.get(s).map(|(f, l)| f + l).unwrap_or_default()))
            .filter(|(_, size)| *size > Decimal::ZERO)
            .collect();
        let marks = futures::future::try_join_all(held.iter().map(|(symbol, _)| async move {
            Ok::<_, VenueError>(self.quote(symbol).await?.mid())
        }))
        .await?;
        let (free_cash, locked_cash) = balances
            .get(&self.config.quote_asset)
            .copied()
            .unwrap_or_default();
        let mut value = free_cash + locked_cash;
        let mut positions = Vec::with_capacity(held.len());
        for ((symbol, size), mark) in held.into_iter().zip(marks) {
            value += size * mark;
            positions.push(Position {
                symbol: symbol.clone(),
                size,
                entry_price: mark,
                mark_price: mark,
                unrealized_pnl: Decimal::ZERO,
                leverage: 1,
                liquidation_price: None,
                margin_used: size * mark,
            });
        }
        Ok(AccountState {
            account: AccountSnapshot {
                account_value: value,
                free_balance: free_cash,
                margin_used: Decimal::ZERO,
                unrealized_pnl: Decimal::ZERO,
                time_ms: self.clock.now_ms(),
            },
            positions,
        })
    }

    /// Drops the cached filters of `symbol`, so the next order reads exchangeInfo again.
    pub(crate) fn forget_rules(&self, symbol: &str) {
        self.rules.write().remove(&self.config.pair_of(symbol));
    }

    pub(crate) fn invalid(&self, reason: String) -> VenueError {
        VenueError::InvalidRequest {
            venue: self.name.clone(),
            reason,
        }
    }
}

/// A trade's commission as Binance reports it (spot `myTrades`, futures `userTrades`).
pub(crate) struct TradeFee<'a> {
    pub(crate) asset: &'a str,
    pub(crate) commission: Decimal,
    pub(crate) trade_price: Decimal,
}

/// Binance's order status as the engine's (spot and futures name them alike).
pub(crate) fn order_status(s: &str) -> Option<OrderStatus> {
    Some(match s {
        "NEW" | "PENDING_NEW" | "PENDING_CANCEL" => OrderStatus::Acked,
        "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
        "FILLED" => OrderStatus::Filled,
        "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" => OrderStatus::Cancelled,
        "REJECTED" => OrderStatus::Rejected,
        _ => return None,
    })
}

pub(crate) fn parse_side(s: &str) -> Option<Side> {
    match s {
        "BUY" => Some(Side::Buy),
        "SELL" => Some(Side::Sell),
        _ => None,
    }
}

/// An order as `POST/GET /api/v3/order` and `openOrders` return it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderWire {
    symbol: String,
    order_id: i64,
    client_order_id: String,
    price: Decimal,
    orig_qty: Decimal,
    executed_qty: Decimal,
    cummulative_quote_qty: Decimal,
    status: String,
    side: String,
    #[serde(default)]
    transact_time: Option<i64>,
    #[serde(default)]
    time: Option<i64>,
    #[serde(default)]
    update_time: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookTickerWire {
    bid_price: Decimal,
    ask_price: Decimal,
}

#[derive(Debug, Deserialize)]
struct BalanceWire {
    asset: String,
    free: Decimal,
    locked: Decimal,
}

#[derive(Debug, Deserialize)]
struct AccountWire {
    balances: Vec<BalanceWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TradeWire {
    id: i64,
    order_id: i64,
    price: Decimal,
    qty: Decimal,
    commission: Decimal,
    commission_asset: String,
    time: i64,
    is_buyer: bool,
}

fn decimal_at(row: &[serde_json::Value], i: usize) -> Option<Decimal> {
    match row.get(i)? {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

impl BinanceSpotVenue {
    /// One `DELETE /api/v3/order`, naming the order by `key` (`origClientOrderId` for ours,
    /// `orderId` for one placed outside this engine).
    async fn send_cancel(&self, symbol: &str, key: &'static str, id: &str) -> VenueResult<()> {
        let call = Call {
            method: Method::DELETE,
            path: "/api/v3/order",
            endpoint: "cancel",
            params: Vec::new(),
            signed: true,
            kind: RequestKind::Cancel,
            priority: Priority::High,
            valid_until: None,
            success_codes: &[],
        }
        .param("symbol", self.config.pair_of(symbol))
        .param(key, id);
        self.send(&call, Some(symbol)).await.map(|_| ())
    }
}

#[async_trait]
impl Venue for BinanceSpotVenue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn instrument(&self, symbol: &str) -> VenueResult<Instrument> {
        let rules = self.rules_for(symbol).await?;
        let mut i = rules.to_instrument();
        i.symbol = symbol.to_string();
        Ok(i)
    }

    async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
        let call = Call::get(self.dialect.book_ticker_path, "book_ticker")
            .param("symbol", self.config.pair_of(symbol));
        let what = format!("GET {}", call.path);
        let body = self.send(&call, Some(symbol)).await?;
        let w: BookTickerWire =
            serde_json::from_slice(&body).map_err(|e| self.err_malformed(&what, e))?;
        if w.bid_price <= Decimal::ZERO || w.ask_price < w.bid_price {
            return Err(self.err_malformed(
                &what,
                format!("no usable book (bid {}, ask {})", w.bid_price, w.ask_price),
            ));
        }
        Ok(Quote {
            symbol: symbol.to_string(),
            bid: w.bid_price,
            ask: w.ask_price,
            time_ms: self.clock.now_ms(),
            fallback: None,
        })
    }

    async fn candles(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> VenueResult<Vec<Candle>> {
        let limit = lookback.clamp(1, 1000);
        let call = Call::get(self.dialect.klines_path, "klines")
            .param("symbol", self.config.pair_of(symbol))
            .param("interval", timeframe.as_str())
            .param("limit", limit.to_string());
        let body = self.send(&call, Some(symbol)).await?;
        let what = format!("GET {}", call.path);
        let rows: Vec<Vec<serde_json::Value>> =
            serde_json::from_slice(&body).map_err(|e| self.err_malformed(&what, e))?;
        let parse = |r: &[serde_json::Value]| {
            Some(Candle {
                open_time_ms: r.first()?.as_i64()?,
                open: decimal_at(r, 1)?,
                high: decimal_at(r, 2)?,
                low: decimal_at(r, 3)?,
                close: decimal_at(r, 4)?,
                volume: decimal_at(r, 5)?,
            })
        };
        rows.iter()
            .map(|r| {
                parse(r).ok_or_else(|| {
                    self.err_malformed(
                        &what,
                        "a kline row is not [time, open, high, low, close, volume, ...]",
                    )
                })
            })
            .collect()
    }

    /// The configured `recvWindow`: Binance refuses a request that arrives later than its
    /// `timestamp` + `recvWindow` (-1021), so an order it does not show after that never
    /// will be applied.
    fn order_validity(&self) -> Duration {
        Duration::from_millis(self.recv_window.millis())
    }

    /// Binance fills a MARKET order at its book; the approval's reference price bounds
    /// nothing here (spot has no slippage parameter).
    async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
        let rules = self.rules_for(&order.symbol).await?;
        let not_sent = |e: super::filters::FilterError| {
            self.invalid(format!(
                "{e}; the order cannot be represented on Binance and was not sent"
            ))
        };
        let market = matches!(order.order_type, OrderType::Market { .. });
        rules.check_qty(order.size, market).map_err(not_sent)?;
        let side = match order.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let mut call = Call {
            method: Method::POST,
            path: "/api/v3/order",
            endpoint: "order",
            params: Vec::new(),
            signed: true,
            kind: RequestKind::OrderSend,
            priority: Priority::Medium,
            valid_until: order.valid_until_ms,
            success_codes: &[],
        }
        .param("symbol", self.config.pair_of(&order.symbol))
        .param("side", side);
        match &order.order_type {
            OrderType::Market { .. } => {
                call = call
                    .param("type", "MARKET")
                    .param("quantity", to_wire(order.size));
            }
            OrderType::Limit { price, tif } => {
                rules
                    .check_limit_order(*price, order.size)
                    .map_err(not_sent)?;
                call = match tif {
                    TimeInForce::Alo => call.param("type", "LIMIT_MAKER"),
                    TimeInForce::Gtc => call.param("type", "LIMIT").param("timeInForce", "GTC"),
                    TimeInForce::Ioc => call.param("type", "LIMIT").param("timeInForce", "IOC"),
                };
                call = call
                    .param("quantity", to_wire(order.size))
                    .param("price", to_wire(*price));
            }
            OrderType::Trigger {
                trigger_price,
                kind,
                limit_price,
            } => {
                rules.check_price(*trigger_price).map_err(not_sent)?;
                let ty = match (kind, limit_price) {
                    (TriggerKind::StopLoss, Some(_)) => "STOP_LOSS_LIMIT",
                    (TriggerKind::StopLoss, None) => "STOP_LOSS",
                    (TriggerKind::TakeProfit, Some(_)) => "TAKE_PROFIT_LIMIT",
                    (TriggerKind::TakeProfit, None) => "TAKE_PROFIT",
                };
                call = call.param("type", ty);
                if let Some(p) = limit_price {
                    rules.check_limit_order(*p, order.size).map_err(not_sent)?;
                    call = call.param("timeInForce", "GTC");
                }
                call = call.param("quantity", to_wire(order.size));
                if let Some(p) = limit_price {
                    call = call.param("price", to_wire(*p));
                }
                call = call.param("stopPrice", to_wire(*trigger_price));
            }
        }
        call = call
            .param("newClientOrderId", order.client_id.as_str())
            .param("newOrderRespType", "FULL");
        // A filter failure (-1013) our cached filters did not foresee drops them in
        // `send_resyncing`, where the venue's code is still at hand.
        let body = self.send(&call, Some(&order.symbol)).await?;
        // The venue answered 2xx: the order exists. An answer we cannot read still leaves
        // its state unknown to us, so the gateway asks by client id.
        let wire: OrderWire =
            serde_json::from_slice(&body).map_err(|e| VenueError::OutcomeUnknown {
                venue: self.name.clone(),
                reason: format!("POST /api/v3/order answered with a body we cannot read: {e}"),
            })?;
        self.to_venue_order(wire)
    }

    async fn cancel_order(&self, symbol: &str, client_id: &ClientOrderId) -> VenueResult<()> {
        match self
            .send_cancel(symbol, "origClientOrderId", client_id.as_str())
            .await
        {
            Err(VenueError::OrderNotFound { venue, .. }) => Err(VenueError::OrderNotFound {
                venue,
                client_id: client_id.to_string(),
            }),
            other => other,
        }
    }

    async fn cancel_by_venue_id(&self, symbol: &str, venue_order_id: &str) -> VenueResult<()> {
        self.send_cancel(symbol, "orderId", venue_order_id).await
    }

    async fn query_order(
        &self,
        symbol: &str,
        client_id: &ClientOrderId,
    ) -> VenueResult<Option<VenueOrder>> {
        let mut call = Call::get("/api/v3/order", "query_order")
            .signed()
            .param("symbol", self.config.pair_of(symbol))
            .param("origClientOrderId", client_id.as_str());
        call.priority = Priority::High;
        match self.send(&call, Some(symbol)).await {
            Ok(body) => {
                let w: OrderWire = serde_json::from_slice(&body)
                    .map_err(|e| self.err_malformed("GET /api/v3/order", e))?;
                self.to_venue_order(w).map(Some)
            }
            Err(VenueError::OrderNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
        let mut out = Vec::new();
        for symbol in &self.config.symbols {
            let call = Call::get("/api/v3/openOrders", "open_orders")
                .signed()
                .param("symbol", self.config.pair_of(symbol));
            let body = self.send(&call, Some(symbol)).await?;
            let rows: Vec<OrderWire> = serde_json::from_slice(&body)
                .map_err(|e| self.err_malformed("GET /api/v3/openOrders", e))?;
            for w in rows {
                out.push(self.to_venue_order(w)?);
            }
        }
        Ok(out)
    }

    async fn fills_since(&self, since_ms: Millis) -> VenueResult<Vec<Fill>> {
        let mut out = Vec::new();
        // One quote per fee asset per read, however many trades paid in it.
        let mut asset_prices: HashMap<String, Option<Decimal>> = HashMap::new();
        for symbol in &self.config.symbols {
            let mut call = Call::get("/api/v3/myTrades", "my_trades")
                .signed()
                .param("symbol", self.config.pair_of(symbol));
            if since_ms > 0 {
                call = call.param("startTime", since_ms.to_string());
            }
            call = call.param("limit", "1000");
            let body = self.send(&call, Some(symbol)).await?;
            let rows: Vec<TradeWire> = serde_json::from_slice(&body)
                .map_err(|e| self.err_malformed("GET /api/v3/myTrades", e))?;
            for t in rows.into_iter().filter(|t| t.time >= since_ms) {
                let (fee, fee_asset) = self
                    .fee_in_usd(
                        symbol,
                        &TradeFee {
                            asset: &t.commission_asset,
                            commission: t.commission,
                            trade_price: t.price,
                        },
                        &mut asset_prices,
                    )
                    .await;
                out.push(Fill {
                    fill_id: t.id.to_string(),
                    client_id: None,
                    venue_order_id: t.order_id.to_string(),
                    symbol: symbol.clone(),
                    side: if t.is_buyer { Side::Buy } else { Side::Sell },
                    price: t.price,
                    size: t.qty,
                    fee,
                    closed_pnl: Decimal::ZERO,
                    time_ms: t.time,
                    fee_asset,
                });
            }
        }
        out.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.fill_id.cmp(&b.fill_id)));
        Ok(out)
    }

    async fn positions(&self) -> VenueResult<Vec<Position>> {
        Ok(self.holdings().await?.positions)
    }

    async fn account(&self) -> VenueResult<AccountSnapshot> {
        Ok(self.holdings().await?.account)
    }

    async fn account_state(&self) -> VenueResult<AccountState> {
        self.holdings().await
    }

    async fn set_leverage(&self, _symbol: &str, leverage: u32) -> VenueResult<()> {
        if leverage == 1 {
            return Ok(());
        }
        Err(self.invalid(format!(
            "spot has no leverage; only 1x is possible, {leverage}x was asked"
        )))
    }

    fn saturated(&self) -> bool {
        self.guard.is_paused()
            || self
                .weight_headroom()
                .is_some_and(|left| left < self.dialect.heaviest_weight)
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.guard.breaker().state())
    }

    /// Spot trades without leverage: always 1x (and `set_leverage` never sends anything).
    async fn leverage(&self, symbol: &str) -> VenueResult<u32> {
        if !self.config.symbols.iter().any(|s| s == symbol) {
            return Err(VenueError::UnknownSymbol {
                venue: self.name.clone(),
                symbol: symbol.to_string(),
            });
        }
        Ok(1)
    }
}

impl crate::exchanges::stream::binance::DepthSource for BinanceSpotVenue {
    fn depth_snapshot<'a>(
        &'a self,
        symbol: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        VenueResult<crate::exchanges::stream::binance::depth::DepthSnapshot>,
    > {
        Box::pin(BinanceSpotVenue::depth_snapshot(
            self,
            symbol,
            crate::exchanges::stream::binance::spot::SNAPSHOT_LIMIT,
        ))
    }
}

/// Most rows one klines answer is asked for: spot's documented maximum, and on USDⓈ-M
/// futures the largest `limit` still charged weight 5 (1001..=1500 rows cost 10).
pub const KLINES_PER_PAGE: usize = 1000;

impl BinanceSpotVenue {
    /// `GET <klines>` with `startTime`, `endTime` (both on open time, inclusive, as Binance
    /// documents) and `limit` [`KLINES_PER_PAGE`]: the oldest rows of the range.
    pub(crate) async fn klines_between(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: Millis,
        end_ms: Millis,
    ) -> VenueResult<Vec<Candle>> {
        let call = Call::get(self.dialect.klines_path, "klines")
            .param("symbol", self.config.pair_of(symbol))
            .param("interval", timeframe.as_str())
            .param("startTime", start_ms.to_string())
            .param("endTime", end_ms.to_string())
            .param("limit", KLINES_PER_PAGE.to_string());
        let body = self.send(&call, Some(symbol)).await?;
        let what = format!("GET {}", call.path);
        let rows: Vec<Vec<serde_json::Value>> =
            serde_json::from_slice(&body).map_err(|e| self.err_malformed(&what, e))?;
        let candles = rows
            .iter()
            .map(|r| {
                kline_row(r).ok_or_else(|| {
                    self.err_malformed(
                        &what,
                        "a kline row is not [time, open, high, low, close, volume, ...]",
                    )
                })
            })
            .collect::<VenueResult<Vec<Candle>>>()?;
        Ok(crate::exchanges::history::within(
            candles,
            start_ms,
            end_ms,
            KLINES_PER_PAGE,
        ))
    }
}

fn kline_row(r: &[serde_json::Value]) -> Option<Candle> {
    Some(Candle {
        open_time_ms: r.first()?.as_i64()?,
        open: decimal_at(r, 1)?,
        high: decimal_at(r, 2)?,
        low: decimal_at(r, 3)?,
        close: decimal_at(r, 4)?,
        volume: decimal_at(r, 5)?,
    })
}

#[async_trait]
impl crate::exchanges::history::CandleHistory for BinanceSpotVenue {
    fn page_limit(&self) -> usize {
        KLINES_PER_PAGE
    }

    async fn candles_between(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: Millis,
        end_ms: Millis,
    ) -> VenueResult<Vec<Candle>> {
        self.klines_between(symbol, timeframe, start_ms, end_ms)
            .await
    }
}
