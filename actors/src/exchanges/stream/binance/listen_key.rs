//! A Binance user-data-stream listen key's life over REST: created, kept alive, closed,
//! and replaced when it expired.
//!
//! Binance (spot "User Data Streams", legacy listen-key section; USDⓈ-M futures "User Data
//! Streams"): `POST <path>` with the `X-MBX-APIKEY` header and no signature answers
//! `{"listenKey":"..."}` (an account with an active key gets the same key back, its
//! validity extended); a key is valid for 60 minutes, a `PUT` extends it by 60 minutes
//! ("it's recommended to send a ping about every 30 minutes"); a `DELETE` closes the
//! stream. Spot's path is `/api/v3/userDataStream` and its `PUT`/`DELETE` name the key in a
//! `listenKey` parameter; futures' is `/fapi/v1/listenKey` with no parameter (one key per
//! account). A key that no longer exists is refused with code -1125 ("This listenKey does
//! not exist."); the websocket then also sends a `listenKeyExpired` event. The user stream
//! is read at `<ws_url>/ws/<listenKey>`.
//!
//! Owns: the REST calls (each under the configured deadline, drawing its documented weight
//! from the venue's rate limiter when one is given, the API key only in its header), the
//! typed outcome of a call ([`ListenKeyError`]: an expired key is a variant, never matched
//! from text), and [`ListenKeyLifecycle`], which a user-stream protocol runs: create before
//! connecting, keep alive on its periodic tick, forget an expired key so the next
//! connection creates a new one, close after a connection ends. Never: logs, stores or puts
//! in an error the API key or the listen key (both print `***`; the URL carrying the key is
//! never logged by the connection loop, which logs the configured URL).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::exchanges::binance::errors::{parse_error_response, RequestKind};
use crate::exchanges::binance::signing::API_KEY_HEADER;
use crate::exchanges::stream::connection::StreamError;
use crate::exchanges::venue::VenueError;
use crate::resilience::config::RateLimits;
use crate::resilience::Priority;

/// Binance's code for a listen key that does not exist (expired or closed).
pub const LISTEN_KEY_NOT_FOUND: i64 = -1125;

/// Keep-alive period Binance recommends (a key lives 60 minutes).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30 * 60);

/// Where a venue kind manages its listen key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenKeyEndpoint {
    /// REST path of POST / PUT / DELETE.
    pub path: &'static str,
    /// Whether PUT and DELETE name the key in a `listenKey` parameter (spot) or not
    /// (futures: one key per account).
    pub key_param: bool,
    /// The rate-limit endpoint name its calls draw from (see the venue's
    /// `ENDPOINT_WEIGHTS`).
    pub rate_endpoint: &'static str,
}

/// Binance spot: `/api/v3/userDataStream`, the key as a parameter.
pub const SPOT: ListenKeyEndpoint = ListenKeyEndpoint {
    path: "/api/v3/userDataStream",
    key_param: true,
    rate_endpoint: "user_data_stream",
};

/// Binance USDⓈ-M futures: `/fapi/v1/listenKey`, no parameter.
pub const USDM_FUTURES: ListenKeyEndpoint = ListenKeyEndpoint {
    path: "/fapi/v1/listenKey",
    key_param: false,
    rate_endpoint: "listen_key",
};

/// An API key; `Debug`/`Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A listen key: whoever holds it reads the account's stream, so it prints `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ListenKey(String);

impl ListenKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
    /// The key itself, for the websocket URL and the REST parameter only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ListenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListenKey(***)")
    }
}

/// Why a listen-key call failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenKeyError {
    /// The venue no longer knows the key (-1125): create a new one and reconnect.
    #[error("{venue}: the listen key no longer exists (expired or closed); a new one is created and the user stream reconnects")]
    Expired { venue: String },
    /// Any other failure, classified as the venue's REST errors are.
    #[error(transparent)]
    Venue(#[from] VenueError),
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "listenKey")]
    listen_key: ListenKey,
}

/// Counts of the calls made (tests and status read them).
#[derive(Debug, Default)]
pub struct ListenKeyCounts {
    pub created: AtomicU64,
    pub kept_alive: AtomicU64,
    pub closed: AtomicU64,
    pub expired: AtomicU64,
}

/// The REST side of one account's listen key.
pub struct ListenKeyApi {
    venue: String,
    http: reqwest::Client,
    base_url: String,
    endpoint: ListenKeyEndpoint,
    api_key: ApiKey,
    deadline: Duration,
    clock: SharedClock,
    limits: Option<Arc<RateLimits>>,
}

impl fmt::Debug for ListenKeyApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenKeyApi")
            .field("venue", &self.venue)
            .field("base_url", &self.base_url)
            .field("path", &self.endpoint.path)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl ListenKeyApi {
    /// `base_url` is the venue's REST base (`https://api.binance.com`,
    /// `https://fapi.binance.com`); every call gets `deadline`.
    pub fn new(
        venue: &str,
        base_url: &str,
        endpoint: ListenKeyEndpoint,
        api_key: ApiKey,
        deadline: Duration,
        clock: SharedClock,
    ) -> Result<Self, VenueError> {
        let http = reqwest::Client::builder()
            .timeout(deadline)
            .connect_timeout(deadline)
            .build()
            .map_err(|e| VenueError::Unavailable {
                venue: venue.to_string(),
                reason: format!("cannot build the HTTP client for the listen key: {e}"),
            })?;
        Ok(Self {
            venue: venue.to_string(),
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            endpoint,
            api_key,
            deadline,
            clock,
            limits: None,
        })
    }

    /// Draws each call's weight (endpoint [`ListenKeyEndpoint::rate_endpoint`]) from the
    /// venue's limits, so the stream's REST work shares the account's budget.
    pub fn with_limits(mut self, limits: Arc<RateLimits>) -> Self {
        self.limits = Some(limits);
        self
    }

    pub fn venue(&self) -> &str {
        &self.venue
    }

    /// POST: a new key (or the account's active one, extended).
    pub async fn create(&self) -> Result<ListenKey, ListenKeyError> {
        let body = self.call(Method::POST, None).await?;
        serde_json::from_slice::<Created>(&body)
            .map(|c| c.listen_key)
            .map_err(|e| {
                ListenKeyError::Venue(VenueError::Malformed {
                    venue: self.venue.clone(),
                    reason: format!(
                        "POST {}: no listenKey in the answer: {e}",
                        self.endpoint.path
                    ),
                })
            })
    }

    /// PUT: extends the key by 60 minutes.
    pub async fn keep_alive(&self, key: &ListenKey) -> Result<(), ListenKeyError> {
        self.call(Method::PUT, Some(key)).await.map(|_| ())
    }

    /// DELETE: closes the stream.
    pub async fn close(&self, key: &ListenKey) -> Result<(), ListenKeyError> {
        self.call(Method::DELETE, Some(key)).await.map(|_| ())
    }

    async fn call(
        &self,
        method: Method,
        key: Option<&ListenKey>,
    ) -> Result<Vec<u8>, ListenKeyError> {
        let until = Instant::now() + self.deadline;
        let what = format!("{method} {}", self.endpoint.path);
        if let Some(limits) = &self.limits {
            // Keeping the account's stream alive matters more than market data.
            limits
                .acquire(self.endpoint.rate_endpoint, 1, Priority::High, until)
                .await
                .map_err(|e| VenueError::RateLimited {
                    venue: self.venue.clone(),
                    retry_after: None,
                    reason: format!("{what}: {e}"),
                })?;
        }
        let mut url = format!("{}{}", self.base_url, self.endpoint.path);
        if let (Some(key), true) = (key, self.endpoint.key_param) {
            url.push_str("?listenKey=");
            url.push_str(key.as_str());
        }
        let left = until.saturating_duration_since(Instant::now());
        let req = self
            .http
            .request(method, url)
            .header(API_KEY_HEADER, self.api_key.expose())
            .timeout(left);
        let outcome = tokio::time::timeout(left, async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, body))
        })
        .await;
        let (status, retry_after, body) = match outcome {
            Err(_) => {
                return Err(VenueError::Timeout {
                    venue: self.venue.clone(),
                    what,
                    after: self.deadline,
                }
                .into())
            }
            // The URL may carry the listen key: never put it in the error.
            Ok(Err(e)) => {
                return Err(VenueError::Unavailable {
                    venue: self.venue.clone(),
                    reason: format!("{what}: {}", e.without_url()),
                }
                .into())
            }
            Ok(Ok(r)) => r,
        };
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        let api = parse_error_response(status, retry_after.as_deref(), &body, self.clock.now_ms());
        if api.code == Some(LISTEN_KEY_NOT_FOUND) {
            return Err(ListenKeyError::Expired {
                venue: self.venue.clone(),
            });
        }
        Err(api
            .into_venue_error(&self.venue, RequestKind::Read, None)
            .into())
    }
}

/// A user stream's listen key across connections: created when a connection starts, kept
/// alive while it lives, forgotten when it expired, closed when the connection ended.
#[derive(Debug)]
pub struct ListenKeyLifecycle {
    api: ListenKeyApi,
    keep_alive_every: Duration,
    key: Option<ListenKey>,
    kept_alive_at: Option<Instant>,
    /// Set by a `listenKeyExpired` event; the next tick ends the connection.
    expired: bool,
    counts: Arc<ListenKeyCounts>,
}

impl ListenKeyLifecycle {
    pub fn new(api: ListenKeyApi, keep_alive_every: Duration) -> Self {
        Self {
            api,
            keep_alive_every,
            key: None,
            kept_alive_at: None,
            expired: false,
            counts: Arc::default(),
        }
    }

    /// Calls made so far (shared: read it after the lifecycle moved into a stream).
    pub fn counts(&self) -> Arc<ListenKeyCounts> {
        self.counts.clone()
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Creates a key and answers the user stream's URL, `<ws_url>/ws/<listenKey>`.
    pub async fn open(&mut self, ws_url: &str) -> Result<String, StreamError> {
        let key = self
            .api
            .create()
            .await
            .map_err(|e| rest("creating the listen key", e))?;
        self.counts.created.fetch_add(1, Ordering::Relaxed);
        tracing::info!(venue = %self.api.venue, "user-data listen key created");
        let url = format!("{}/ws/{}", ws_url.trim_end_matches('/'), key.as_str());
        self.key = Some(key);
        self.kept_alive_at = Some(Instant::now());
        self.expired = false;
        Ok(url)
    }

    /// The venue said the key expired (`listenKeyExpired`): the next [`Self::tick`] ends
    /// the connection, and the next connection creates a new key.
    pub fn mark_expired(&mut self) {
        self.expired = true;
    }

    /// Keeps the key alive when `keep_alive_every` has passed; an expired key (the event,
    /// or -1125 on the PUT) ends the connection so a new key is made.
    pub async fn tick(&mut self, now: Instant) -> Result<(), StreamError> {
        if self.expired {
            return Err(self.forget_expired());
        }
        let (Some(key), Some(at)) = (&self.key, self.kept_alive_at) else {
            return Ok(());
        };
        if now.saturating_duration_since(at) < self.keep_alive_every {
            return Ok(());
        }
        match self.api.keep_alive(key).await {
            Ok(()) => {
                self.counts.kept_alive.fetch_add(1, Ordering::Relaxed);
                self.kept_alive_at = Some(now);
                tracing::debug!(venue = %self.api.venue, "user-data listen key kept alive");
                Ok(())
            }
            Err(ListenKeyError::Expired { .. }) => Err(self.forget_expired()),
            Err(e) => Err(rest("keeping the listen key alive", e)),
        }
    }

    fn forget_expired(&mut self) -> StreamError {
        self.key = None;
        self.kept_alive_at = None;
        self.expired = false;
        self.counts.expired.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(venue = %self.api.venue, "user-data listen key expired; creating a new one and reconnecting");
        StreamError::OutOfSync(format!(
            "{}: the listen key expired; the user stream reconnects with a new one",
            self.api.venue
        ))
    }

    /// DELETE of the current key, if any (after a connection ended). A failure is logged:
    /// an unclosed key expires on its own within 60 minutes.
    pub async fn close(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        self.kept_alive_at = None;
        match self.api.close(&key).await {
            Ok(()) | Err(ListenKeyError::Expired { .. }) => {
                self.counts.closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(venue = %self.api.venue, "user-data listen key closed");
            }
            Err(e) => {
                tracing::warn!(venue = %self.api.venue, error = %e, "cannot close the user-data listen key; it expires on its own within 60 minutes");
            }
        }
    }
}

fn rest(what: &'static str, e: ListenKeyError) -> StreamError {
    match e {
        ListenKeyError::Venue(source) => StreamError::Rest { what, source },
        ListenKeyError::Expired { venue } => {
            StreamError::OutOfSync(format!("{venue}: {what}: the listen key no longer exists"))
        }
    }
}
