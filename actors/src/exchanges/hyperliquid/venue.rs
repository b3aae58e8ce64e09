//! [`HyperliquidVenue`]: the [`Venue`] of one Hyperliquid perpetuals account over HTTP.
//!
//! Owns: one keep-alive `reqwest` client (every request under the configured deadline),
//! the cached `meta` (asset indices and size decimals, refreshed after `meta_refresh` or
//! when the venue says a price or size is off its grid), nonces (current ms, strictly
//! increasing per process and wallet), signing of /exchange actions, Hyperliquid's request
//! weights drawn from the resilience kit (info 20, l2Book/allMids/clearinghouseState/
//! orderStatus 2, exchange actions 1 + ⌊orders/40⌋, fundingHistory 20 + 1 per 20 rows it
//! returns; the default pool is 1200 per minute), the pause after a 429, and the mapping
//! of answers into venue-neutral types, [`DerivativesData`] included: funding and open
//! interest from `metaAndAssetCtxs` (the oracle price stands for the index; funding
//! settles every hour, so the next settlement is the next full hour), settled rates from
//! `fundingHistory` (paged by `startTime`, 500 rows per answer), and
//! [`VenueError::Unsupported`] for open-interest history, which Hyperliquid does not
//! publish.
//!
//! Never: retries an action. A timeout, connection reset, HTTP 5xx or unreadable answer to
//! an order, a cancel or a leverage update is [`VenueError::OutcomeUnknown`], which the
//! gateway settles by a read (`orderStatus` by cloid, `activeAssetData` for leverage),
//! never by sending again. Reads retry per the resilience policy. The private key is only
//! ever read from the environment, held as [`PrivateKey`] (prints `***`), and never appears
//! in an error, a log line or `Debug`. Without a key, reads work and every action fails
//! with an auth error that names the variables.
//!
//! Market orders are aggressive IOC limits at most `max_slippage` (or the configured
//! `slippage` when the order carries none) from the order's reference price — the mid the
//! gateway read and the risk gate judged, carried by the approved order, never read again
//! here — rounded onto the tick grid toward it. A call's limiter priority is the one its
//! command was served at by the connector; this module derives none. A 429 (Hyperliquid answers `null` with no `Retry-After`; see the mock's module
//! doc) pauses every request of this venue for `rate_limited_pause`, or until a
//! `Retry-After` should one ever come: nothing is sent before that time. Every request
//! goes through the resilience [`Guard`] (pause gate, weight draw, breaker, retry): during
//! a pause, reads wait if it ends before their deadline, and orders, cancels and leverage
//! updates are refused at once ([`VenueError::RateLimited`] with the time left, not sent).
//!
//! Deadlines: an order is signed with `expiresAfter` = its [`OrderRequest::valid_until_ms`]
//! (part of the signed hash and of the body, as the Python SDK does), so the exchange
//! refuses it once that time has passed; an order whose deadline passed while it waited
//! for the weight budget is not sent at all. `order_validity` is the
//! request timeout. Cancels and leverage updates carry no expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rust_decimal::Decimal;
use serde_json::json;
use tokio::time::Instant;

use super::actions::Action;
use super::config::{key_from_env, HyperliquidConfig, KEY_VAR, KEY_VAR_ALIAS, WEIGHT_POOL};
use super::info::{self, ExchangeResponse, Meta};
use super::signing::{Address, Network, PrivateKey};
use super::wire::AssetRules;
use crate::clock::{Millis, SharedClock};
use crate::exchanges::account::Endpoint;
use crate::exchanges::derivatives::{
    DerivativesData, FundingInfo, FundingRate, OiPeriod, OpenInterest, OpenInterestPoint,
};

use crate::env::EnvLookup;
use crate::exchanges::call_priority;
use crate::exchanges::risk_gate::RiskApproved;
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError, VenueResult};
use crate::resilience::{
    BreakerRecord, BreakerState, Guard, GuardedCall, LimitError, Priority, RateLimits,
    TargetResilience, TokioClock,
};
use crate::store::Tree;
use crate::validate::Issues;

/// Weight of the info requests Hyperliquid counts as light.
const LIGHT: u64 = 2;
/// Weight of every other info request.
const HEAVY: u64 = 20;
/// Hyperliquid settles funding every hour.
pub const FUNDING_INTERVAL_HOURS: u32 = 1;
const HOUR_MS: Millis = 3_600_000;
/// Most rows one `fundingHistory` answer carries; a longer span is paged by `startTime`.
const FUNDING_HISTORY_PAGE: usize = 500;
/// Most settled rates [`DerivativesData::funding_history`] returns (as on Binance).
pub const MAX_FUNDING_HISTORY: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum HyperliquidError {
    #[error("venue `{venue}`: invalid configuration: {issues}")]
    Config { venue: String, issues: String },
    #[error("venue `{venue}`: {reason}")]
    Key { venue: String, reason: String },
    #[error("venue `{venue}`: cannot build the HTTP client: {reason}")]
    Client { venue: String, reason: String },
}

/// One Hyperliquid account (the wallet, or the vault it trades for).
pub struct HyperliquidVenue {
    name: String,
    http: reqwest::Client,
    info_url: String,
    exchange_url: String,
    network: Network,
    /// The account whose orders and positions are read: the vault if set, else the wallet.
    user: Address,
    vault: Option<Address>,
    signer: Option<PrivateKey>,
    timeout: Duration,
    slippage: Decimal,
    meta_refresh: Duration,
    rate_limited_pause: Duration,
    meta: RwLock<Option<(Arc<Meta>, Instant)>>,
    /// Shared by the account's sibling connectors (one signer, unique nonces).
    last_nonce: Arc<AtomicU64>,
    /// Hyperliquid's weight pools, drawn by each request; shared by every connector of the
    /// account when it has several endpoints (see [`crate::exchanges::account`]).
    limits: Arc<RateLimits>,
    /// Pause gate (set by a 429), breaker and retry of every request.
    guard: Guard,
    clock: SharedClock,
}

impl std::fmt::Debug for HyperliquidVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperliquidVenue")
            .field("name", &self.name)
            .field("api", &self.info_url)
            .field("user", &self.user)
            .field("signer", &self.signer.as_ref().map(|_| "***"))
            .finish()
    }
}

impl HyperliquidVenue {
    /// Builds the venue; the key is looked up in `env` (never in the config).
    pub fn open(
        name: &str,
        config: &HyperliquidConfig,
        env: EnvLookup<'_>,
        clock: SharedClock,
    ) -> Result<Self, HyperliquidError> {
        Self::open_at(name, config, env, clock, None)
    }

    /// [`HyperliquidVenue::open`] served through `endpoint`: its base URL instead of the
    /// configured one, its own breaker (target: the connector's name), and the account's
    /// shared weight pool and pause gate. `None`: the configured URL, limits of its own.
    pub fn open_at(
        name: &str,
        config: &HyperliquidConfig,
        env: EnvLookup<'_>,
        clock: SharedClock,
        endpoint: Option<&Endpoint>,
    ) -> Result<Self, HyperliquidError> {
        let mut issues = Issues::default();
        config.validate("", &mut issues);
        let cfg_err = |issues: String| HyperliquidError::Config {
            venue: name.to_string(),
            issues,
        };
        if !issues.is_empty() {
            return Err(cfg_err(
                issues
                    .0
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let wallet: Address = config
            .wallet_address
            .parse()
            .map_err(|e| cfg_err(format!("wallet_address: {e}")))?;
        let vault = config
            .vault_address
            .as_deref()
            .map(str::parse::<Address>)
            .transpose()
            .map_err(|e| cfg_err(format!("vault_address: {e}")))?;
        let signer = key_from_env(env).map_err(|reason| HyperliquidError::Key {
            venue: name.to_string(),
            reason,
        })?;
        if let Some(key) = &signer {
            if vault.is_none() && key.address() != wallet {
                // An API agent wallet signs for the account: allowed, but worth knowing.
                tracing::info!(venue = name, signer = %key.address(), wallet = %wallet, "signing with an API agent wallet");
            }
        } else {
            tracing::warn!(
                venue = name,
                "no {KEY_VAR} (or {KEY_VAR_ALIAS}) in the environment: reads only"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| HyperliquidError::Client {
                venue: name.to_string(),
                reason: e.to_string(),
            })?;
        let TargetResilience {
            limits,
            breaker,
            retry,
        } = config
            .resilience
            .build(name, TokioClock::shared(), clock.clone(), None)
            .map_err(|e| cfg_err(format!("resilience: {e}")))?;
        let (api, limits, last_nonce, guard) = match endpoint {
            None => (
                config.api_url(),
                Arc::new(limits),
                Arc::new(AtomicU64::new(0)),
                Guard::new(name, breaker, retry),
            ),
            Some(ep) => (
                ep.base_url.trim_end_matches('/').to_string(),
                ep.account.limits.clone(),
                ep.account.nonce.clone(),
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
            http,
            info_url: format!("{api}/info"),
            exchange_url: format!("{api}/exchange"),
            network: config.network,
            user: vault.unwrap_or(wallet),
            vault,
            signer,
            timeout: config.request_timeout,
            slippage: config.slippage,
            meta_refresh: config.meta_refresh,
            rate_limited_pause: config.rate_limited_pause,
            meta: RwLock::new(None),
            last_nonce,
            limits,
            guard,
            clock,
        })
    }

    /// Keeps the circuit breaker's state in `tree` (the store's `breakers`), restoring
    /// what an earlier run recorded for this venue.
    pub fn with_breaker_store(mut self, tree: Tree<BreakerRecord>) -> Self {
        self.guard = self.guard.persisted_in(tree);
        self
    }

    /// The account this venue reads and trades.
    pub fn user(&self) -> Address {
        self.user
    }

    fn err_unavailable(&self, reason: impl Into<String>) -> VenueError {
        VenueError::Unavailable {
            venue: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn malformed(&self, e: info::InfoError) -> VenueError {
        e.into_venue_error(&self.name)
    }

    /// Current ms, strictly above every nonce this venue has used.
    pub(super) fn next_nonce(&self) -> u64 {
        let now = u64::try_from(self.clock.now_ms()).unwrap_or(0);
        let mut last = self.last_nonce.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_nonce.compare_exchange_weak(
                last,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    fn pause_for(&self, headers: &reqwest::header::HeaderMap) -> Duration {
        let cap = self.guard.retry().config().rate_limited.retry_after_cap;
        headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                crate::resilience::parse_retry_after(v, std::time::SystemTime::now(), cap)
            })
            .unwrap_or(self.rate_limited_pause)
    }

    fn set_pause(&self, pause: Duration, reason: &str) {
        self.guard.pause(pause, reason);
    }

    /// The weight draw of one request, waiting at most until `until`.
    async fn draw(
        &self,
        endpoint: &str,
        cost: u64,
        priority: Priority,
        until: Instant,
    ) -> Result<(), LimitError> {
        // Inside a connector the call waits at the priority its command was served at
        // (decided by the gateway); `priority` only for calls made outside one.
        let priority = call_priority::current().unwrap_or(priority);
        self.limits
            .acquire(endpoint, cost, priority, until)
            .await
            .map(|_| ())
    }

    /// POST /info through the guard (a read: waits out a short pause, retried per
    /// class); `weight` is Hyperliquid's cost of this request.
    async fn info(
        &self,
        what: &'static str,
        body: serde_json::Value,
        weight: u64,
    ) -> VenueResult<Bytes> {
        let deadline = Instant::now() + self.timeout;
        let body = Bytes::from(body.to_string());
        let label = format!("info {what}");
        self.guard
            .run(
                GuardedCall::read(&label, deadline),
                |until| self.draw("info", weight, Priority::Low, until),
                |()| self.post(&self.info_url, body.clone(), deadline, what, false),
            )
            .await
    }

    /// One HTTP POST. `changes_state`: a failure that may hide an applied action is
    /// `OutcomeUnknown` rather than a plain transport error.
    async fn post(
        &self,
        url: &str,
        body: Bytes,
        deadline: Instant,
        what: &str,
        changes_state: bool,
    ) -> VenueResult<Bytes> {
        let unknown = |reason: String| VenueError::OutcomeUnknown {
            venue: self.name.clone(),
            reason,
        };
        let send = async {
            let resp = self
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        };
        let answered = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => Err(None),
            Ok(Err(e)) => Err(Some(e)),
            Ok(Ok(r)) => Ok(r),
        };
        let (status, headers, bytes) = match answered {
            Ok(r) => r,
            Err(e) => {
                let timed_out = e.as_ref().is_none_or(|e| e.is_timeout());
                let never_sent = e
                    .as_ref()
                    .is_some_and(|e| e.is_connect() && !e.is_timeout());
                let reason = match &e {
                    None => format!("no answer to {what} within {:?}", self.timeout),
                    Some(e) => format!("{what}: {}", error_chain(e)),
                };
                return Err(if never_sent {
                    self.err_unavailable(reason)
                } else if changes_state {
                    unknown(reason)
                } else if timed_out {
                    VenueError::Timeout {
                        venue: self.name.clone(),
                        what: what.to_string(),
                        after: self.timeout,
                    }
                } else {
                    self.err_unavailable(reason)
                });
            }
        };
        let text = || {
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(300)
                .collect::<String>()
        };
        match status.as_u16() {
            200..=299 => Ok(bytes),
            429 => {
                let pause = self.pause_for(&headers);
                self.set_pause(
                    pause,
                    "after a 429 from Hyperliquid, nothing is sent before it ends",
                );
                // Hyperliquid's 429 carries the body `null` (see the mock's module doc).
                let detail = match text().trim() {
                    "" | "null" => {
                        "the IP's request weight budget is used up (Hyperliquid sends no details)"
                            .to_string()
                    }
                    other => other.to_string(),
                };
                Err(VenueError::RateLimited {
                    venue: self.name.clone(),
                    retry_after: Some(pause),
                    reason: format!("HTTP 429 on {what}: {detail}"),
                })
            }
            s @ 500..=599 => {
                let reason = format!("HTTP {s} on {what}: {}", text());
                Err(if changes_state {
                    unknown(reason)
                } else {
                    self.err_unavailable(reason)
                })
            }
            401 | 403 => Err(VenueError::Auth {
                venue: self.name.clone(),
                reason: format!("HTTP {} on {what}: {}", status.as_u16(), text()),
            }),
            s => Err(VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: format!("HTTP {s} on {what}: {}", text()),
            }),
        }
    }

    /// Sends one cancel action (by cloid or by oid) and reads its one status.
    async fn send_cancel(&self, action: Action) -> VenueResult<()> {
        let response = self.exchange(action, 1, Priority::High, true, None).await?;
        match response {
            ExchangeResponse::Ok { outcomes, .. } => match outcomes.first() {
                Some(info::ActionOutcome::Error(error)) => Err(VenueError::Rejected {
                    venue: self.name.clone(),
                    reason: error.message.clone(),
                }),
                _ => Ok(()),
            },
            ExchangeResponse::Err(msg) => Err(VenueError::Rejected {
                venue: self.name.clone(),
                reason: msg,
            }),
        }
    }

    /// Signs and sends one action, once. `changes_state` marks an action (order, cancel,
    /// leverage update) whose ambiguous outcome the gateway must settle by a read.
    /// `expires_after` (ms) is signed into the action: the exchange refuses it after that
    /// time, and it is not sent at all once that time has passed here (after the waits for
    /// a 429 pause and the weight budget).
    async fn exchange(
        &self,
        action: Action,
        orders: u64,
        priority: Priority,
        changes_state: bool,
        expires_after: Option<Millis>,
    ) -> VenueResult<ExchangeResponse> {
        let key = self.signer.as_ref().ok_or_else(|| VenueError::Auth {
            venue: self.name.clone(),
            reason: format!(
                "no wallet key: set {KEY_VAR} (or {KEY_VAR_ALIAS}) in the environment to trade; reads work without it"
            ),
        })?;
        let deadline = Instant::now() + self.timeout;
        let label = action.label();
        // A state change: refused at once during a pause, sent at most once — so the
        // guard calls the op once and it can take the action to sign it.
        let action = Mutex::new(Some(action));
        let response = self
            .guard
            .run(
                GuardedCall::state_change(label, deadline),
                |until| self.draw("exchange", 1 + orders / 40, priority, until),
                |()| {
                    let action = action.lock().take();
                    self.sign_and_send(key, action, changes_state, expires_after, deadline)
                },
            )
            .await?;
        if let Some(refusal) = response.refusal(&self.name) {
            return Err(refusal);
        }
        Ok(response)
    }

    /// The one attempt of an action: nonce, deadline check, signature, POST, answer.
    async fn sign_and_send(
        &self,
        key: &PrivateKey,
        action: Option<Action>,
        changes_state: bool,
        expires_after: Option<Millis>,
        deadline: Instant,
    ) -> VenueResult<ExchangeResponse> {
        let Some(action) = action else {
            // The guard runs a state change's attempt once; a second one would be a
            // resend, which this refuses rather than signing anything.
            return Err(VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: "an action is sent at most once; not sent again".into(),
            });
        };
        let label = action.label();
        let nonce = self.next_nonce();
        if let Some(expires) = expires_after {
            if self.clock.now_ms() >= expires {
                return Err(VenueError::InvalidRequest {
                    venue: self.name.clone(),
                    reason: format!(
                        "not sent: the {label}'s deadline ({expires} ms) passed while it waited to be sent"
                    ),
                });
            }
        }
        let expires_after = expires_after.and_then(|ms| u64::try_from(ms).ok());
        let request = action
            .sign_expiring(key, nonce, self.vault, expires_after, self.network)
            .map_err(|e| VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: e.to_string(),
            })?;
        let body = serde_json::to_vec(&request).map_err(|e| VenueError::InvalidRequest {
            venue: self.name.clone(),
            reason: format!("cannot encode {label}: {e}"),
        })?;
        let sent = self
            .post(
                &self.exchange_url,
                Bytes::from(body),
                deadline,
                label,
                changes_state,
            )
            .await;
        sent.and_then(|bytes| {
            info::parse_exchange_response(&bytes).map_err(|e| {
                if changes_state {
                    VenueError::OutcomeUnknown {
                        venue: self.name.clone(),
                        reason: format!("unreadable answer to {label}: {e}"),
                    }
                } else {
                    self.malformed(e)
                }
            })
        })
    }

    /// Asset rules and indices, cached for `meta_refresh`; `force` refetches.
    pub async fn meta(&self, force: bool) -> VenueResult<Arc<Meta>> {
        if !force {
            if let Some((meta, at)) = self.meta.read().as_ref() {
                if at.elapsed() < self.meta_refresh {
                    return Ok(meta.clone());
                }
            }
        }
        let body = self.info("meta", json!({"type": "meta"}), HEAVY).await?;
        let meta = Arc::new(info::parse_meta(&body).map_err(|e| self.malformed(e))?);
        *self.meta.write() = Some((meta.clone(), Instant::now()));
        Ok(meta)
    }

    async fn asset(&self, symbol: &str) -> VenueResult<AssetRules> {
        if let Some(a) = self.meta(false).await?.asset(symbol) {
            return Ok(a);
        }
        // Maybe listed since the cache was filled.
        self.meta(true)
            .await?
            .asset(symbol)
            .ok_or_else(|| VenueError::UnknownSymbol {
                venue: self.name.clone(),
                symbol: symbol.to_string(),
            })
    }

    async fn clearinghouse(&self) -> VenueResult<info::ClearinghouseState> {
        let body = self
            .info(
                "clearinghouseState",
                json!({"type": "clearinghouseState", "user": self.user.to_string()}),
                LIGHT,
            )
            .await?;
        info::parse_clearinghouse_state(&body, self.clock.now_ms()).map_err(|e| self.malformed(e))
    }

    /// Dead man's switch: the venue cancels every open order at `at_ms`; `None` unsets it.
    pub async fn schedule_cancel(&self, at_ms: Option<Millis>) -> VenueResult<()> {
        let time = at_ms.map(|t| u64::try_from(t).unwrap_or(0));
        self.exchange(
            Action::ScheduleCancel { time },
            0,
            Priority::High,
            false,
            None,
        )
        .await
        .map(|_| ())
    }

    /// The address-based request budget; exported as a gauge. With no headroom left,
    /// requests pause for `rate_limited_pause` (the venue then allows one per 10 s).
    pub async fn user_rate_limit(&self) -> VenueResult<info::UserRateLimit> {
        let body = self
            .info(
                "userRateLimit",
                json!({"type": "userRateLimit", "user": self.user.to_string()}),
                HEAVY,
            )
            .await?;
        let limit = info::parse_user_rate_limit(&body).map_err(|e| self.malformed(e))?;
        metrics::gauge!(crate::resilience::limiter::METRIC_HEADROOM, "limit" => format!("{}/address", self.name))
            .set(limit.headroom() as f64);
        if limit.headroom() == 0 {
            self.set_pause(
                self.rate_limited_pause,
                "the address's request budget (userRateLimit) has no headroom left",
            );
        }
        Ok(limit)
    }
}

impl HyperliquidVenue {
    /// The live context of `coin` (`metaAndAssetCtxs`, weight 20).
    async fn asset_ctx(&self, coin: &str) -> VenueResult<info::AssetCtx> {
        let body = self
            .info(
                "metaAndAssetCtxs",
                json!({"type": "metaAndAssetCtxs"}),
                HEAVY,
            )
            .await?;
        let (meta, ctxs) = info::parse_meta_and_asset_ctxs(&body).map_err(|e| self.malformed(e))?;
        info::AssetCtx::of(&meta, &ctxs, coin)
            .cloned()
            .ok_or_else(|| VenueError::UnknownSymbol {
                venue: self.name.clone(),
                symbol: coin.to_string(),
            })
    }
}

#[async_trait]
impl DerivativesData for HyperliquidVenue {
    /// `metaAndAssetCtxs`: `funding`, `markPx`, `oraclePx` as the index.
    async fn funding(&self, symbol: &str) -> VenueResult<FundingInfo> {
        let ctx = self.asset_ctx(symbol).await?;
        let now = self.clock.now_ms();
        Ok(FundingInfo {
            symbol: symbol.to_string(),
            mark_price: ctx.mark_px.normalize(),
            index_price: ctx.oracle_px.normalize(),
            funding_rate: ctx.funding.normalize(),
            next_funding_time_ms: (now.div_euclid(HOUR_MS) + 1) * HOUR_MS,
            time_ms: now,
            funding_interval_hours: FUNDING_INTERVAL_HOURS,
        })
    }

    /// `fundingHistory` from `limit` hours (plus one, for a late settlement) back, paged
    /// by `startTime`; the newest `limit` rows (at most [`MAX_FUNDING_HISTORY`]).
    async fn funding_history(&self, symbol: &str, limit: usize) -> VenueResult<Vec<FundingRate>> {
        let limit = limit.clamp(1, MAX_FUNDING_HISTORY);
        let hours = i64::try_from(limit).unwrap_or(i64::MAX / HOUR_MS - 1) + 1;
        let mut start = self.clock.now_ms().saturating_sub(hours * HOUR_MS);
        let expected = u64::try_from((limit + 1).min(FUNDING_HISTORY_PAGE)).unwrap_or(0);
        let mut rows: Vec<info::FundingHistoryRow> = Vec::new();
        // Enough pages for `limit` rows; a venue that keeps answering full pages past that
        // is not followed further.
        for _ in 0..=limit.div_ceil(FUNDING_HISTORY_PAGE) {
            let body = self
                .info(
                    "fundingHistory",
                    json!({"type": "fundingHistory", "coin": symbol, "startTime": start}),
                    HEAVY + expected / 20,
                )
                .await?;
            let page = info::parse_funding_history(&body, symbol).map_err(|e| self.malformed(e))?;
            let full = page.len() >= FUNDING_HISTORY_PAGE;
            match page.last() {
                Some(last) if full => start = last.time + 1,
                _ => {
                    rows.extend(page);
                    break;
                }
            }
            rows.extend(page);
        }
        rows.dedup_by_key(|r| r.time);
        if rows.len() > limit {
            rows.drain(..rows.len() - limit);
        }
        Ok(rows
            .into_iter()
            .map(|r| FundingRate {
                symbol: r.coin,
                rate: r.funding_rate.normalize(),
                time_ms: r.time,
                mark_price: None,
            })
            .collect())
    }

    /// `metaAndAssetCtxs`: `openInterest`, in coins.
    async fn open_interest(&self, symbol: &str) -> VenueResult<OpenInterest> {
        let ctx = self.asset_ctx(symbol).await?;
        Ok(OpenInterest {
            symbol: symbol.to_string(),
            open_interest: ctx.open_interest.normalize(),
            time_ms: self.clock.now_ms(),
        })
    }

    /// Hyperliquid publishes no open-interest history: a typed refusal, never a series
    /// made up from the current value.
    async fn open_interest_history(
        &self,
        _symbol: &str,
        _period: OiPeriod,
        _limit: usize,
    ) -> VenueResult<Vec<OpenInterestPoint>> {
        Err(VenueError::Unsupported {
            venue: self.name.clone(),
            what: "open-interest history: Hyperliquid publishes only the current open interest (metaAndAssetCtxs)".into(),
        })
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[async_trait]
impl Venue for HyperliquidVenue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn instrument(&self, symbol: &str) -> VenueResult<Instrument> {
        Ok(self.asset(symbol).await?.to_instrument())
    }

    async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
        let body = self
            .info("l2Book", json!({"type": "l2Book", "coin": symbol}), LIGHT)
            .await?;
        let book = info::parse_l2_book(&body).map_err(|e| self.malformed(e))?;
        book.quote().map_err(|e| self.malformed(e))
    }

    async fn candles(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> VenueResult<Vec<Candle>> {
        let end = self.clock.now_ms();
        let span = timeframe.millis() * i64::try_from(lookback.max(1)).unwrap_or(i64::MAX / 2);
        let start = end.saturating_sub(span);
        let body = self
            .info(
                "candleSnapshot",
                json!({"type": "candleSnapshot", "req": {"coin": symbol, "interval": timeframe.as_str(), "startTime": start, "endTime": end}}),
                HEAVY,
            )
            .await?;
        let mut candles = info::parse_candles(&body).map_err(|e| self.malformed(e))?;
        if candles.len() > lookback {
            candles.drain(..candles.len() - lookback);
        }
        Ok(candles)
    }

    /// The request timeout: an order the venue has not applied by then was abandoned by
    /// us anyway, and its signed `expiresAfter` makes sure the venue never applies it later.
    fn order_validity(&self) -> Duration {
        self.timeout
    }

    async fn place_order(&self, approved: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
        let asset = self.asset(&approved.symbol).await?;
        let mut order = approved.order().clone();
        let reference = match &mut order.order_type {
            OrderType::Market { max_slippage } => {
                if max_slippage.is_zero() {
                    *max_slippage = self.slippage;
                }
                // The price the gateway read and the risk gate judged; no second read.
                Some(approved.reference_price())
            }
            _ => None,
        };
        let wire =
            super::actions::OrderWire::from_request(&order, &asset, reference).map_err(|e| {
                VenueError::InvalidRequest {
                    venue: self.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let response = self
            .exchange(
                Action::orders(vec![wire]),
                1,
                Priority::Medium,
                true,
                order.valid_until_ms,
            )
            .await?;
        let ExchangeResponse::Ok { outcomes, .. } = response else {
            // refusal() already turned an Err answer into an error.
            return Err(self.err_unavailable("unexpected /exchange answer"));
        };
        let Some(outcome) = outcomes.first() else {
            return Err(VenueError::OutcomeUnknown {
                venue: self.name.clone(),
                reason: "the answer to the order carried no status".into(),
            });
        };
        if let info::ActionOutcome::Error(error) = outcome {
            if error.kind.off_the_grid() {
                // Our grid may be stale: refetch meta before the next order.
                *self.meta.write() = None;
            }
        }
        Ok(info::placed_order(&order, outcome, self.clock.now_ms()))
    }

    async fn cancel_order(&self, symbol: &str, client_id: &ClientOrderId) -> VenueResult<()> {
        let asset = self.asset(symbol).await?;
        self.send_cancel(Action::cancel_by_cloid(&asset, client_id))
            .await
    }

    async fn cancel_by_venue_id(&self, symbol: &str, venue_order_id: &str) -> VenueResult<()> {
        let oid: u64 = venue_order_id
            .parse()
            .map_err(|_| VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: format!("`{venue_order_id}` is not a Hyperliquid order id (oid)"),
            })?;
        let asset = self.asset(symbol).await?;
        self.send_cancel(Action::cancel(&asset, oid)).await
    }
    async fn query_order(
        &self,
        _symbol: &str,
        client_id: &ClientOrderId,
    ) -> VenueResult<Option<VenueOrder>> {
        let body = self
            .info(
                "orderStatus",
                json!({"type": "orderStatus", "user": self.user.to_string(), "oid": client_id.to_hex128()}),
                LIGHT,
            )
            .await?;
        info::parse_order_status(&body).map_err(|e| self.malformed(e))
    }

    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
        let body = self
            .info(
                "frontendOpenOrders",
                json!({"type": "frontendOpenOrders", "user": self.user.to_string()}),
                HEAVY,
            )
            .await?;
        info::parse_open_orders(&body).map_err(|e| self.malformed(e))
    }

    async fn fills_since(&self, since_ms: Millis) -> VenueResult<Vec<Fill>> {
        let body = self
            .info(
                "userFillsByTime",
                json!({"type": "userFillsByTime", "user": self.user.to_string(), "startTime": since_ms}),
                HEAVY,
            )
            .await?;
        let fills = info::parse_user_fills(&body).map_err(|e| self.malformed(e))?;
        Ok(fills
            .into_iter()
            .filter(|f| f.time_ms >= since_ms)
            .collect())
    }

    async fn positions(&self) -> VenueResult<Vec<Position>> {
        Ok(self.clearinghouse().await?.positions)
    }

    async fn account(&self) -> VenueResult<AccountSnapshot> {
        Ok(self.clearinghouse().await?.account)
    }

    /// clearinghouseState carries both: one request, weight 2.
    async fn account_state(&self) -> VenueResult<AccountState> {
        let state = self.clearinghouse().await?;
        Ok(AccountState {
            account: state.account,
            positions: state.positions,
        })
    }

    async fn set_leverage(&self, symbol: &str, leverage: u32) -> VenueResult<()> {
        let asset = self.asset(symbol).await?;
        let action = Action::update_leverage(&asset, leverage, true).map_err(|e| {
            VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: e.to_string(),
            }
        })?;
        self.exchange(action, 0, Priority::High, true, None)
            .await
            .map(|_| ())
    }

    fn saturated(&self) -> bool {
        self.guard.is_paused()
            || self
                .limits
                .headroom(WEIGHT_POOL)
                .is_some_and(|left| left < HEAVY)
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.guard.breaker().state())
    }

    async fn leverage(&self, symbol: &str) -> VenueResult<u32> {
        let body = self
            .info(
                "activeAssetData",
                json!({"type": "activeAssetData", "user": self.user.to_string(), "coin": symbol}),
                HEAVY,
            )
            .await?;
        info::parse_active_asset_data(&body, symbol).map_err(|e| self.malformed(e))
    }
}

/// Most candles one `candleSnapshot` answer holds (Hyperliquid's info-endpoint docs).
pub const CANDLES_PER_ANSWER: usize = 5000;

/// `candleSnapshot` by range, weighed as the venue weighs it: 20, plus 1 per 60 candles
/// returned, drawn up front for a full answer.
#[async_trait]
impl crate::exchanges::history::CandleHistory for HyperliquidVenue {
    fn page_limit(&self) -> usize {
        CANDLES_PER_ANSWER
    }

    async fn candles_between(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: Millis,
        end_ms: Millis,
    ) -> VenueResult<Vec<Candle>> {
        let body = self
            .info(
                "candleSnapshot",
                json!({"type": "candleSnapshot", "req": {"coin": symbol, "interval": timeframe.as_str(), "startTime": start_ms, "endTime": end_ms}}),
                HEAVY + (CANDLES_PER_ANSWER / 60) as u64,
            )
            .await?;
        let candles = info::parse_candles(&body).map_err(|e| self.malformed(e))?;
        Ok(crate::exchanges::history::within(
            candles,
            start_ms,
            end_ms,
            CANDLES_PER_ANSWER,
        ))
    }
}
