//! What the leaders hold and do: their positions from Hyperliquid `clearinghouseState`
//! (the truth, read on a schedule and whenever the stream shows a new fill) and their
//! newest fills from the leader venue's stream (`follow_wallets`, kept by
//! [`FollowedWallets`](crate::exchanges::stream::FollowedWallets)).
//!
//! Owns: the one HTTP client of the agent's leader reads (a public `POST /info` of
//! another account: no key, no signature, nothing of ours), its deadline, and the reading
//! of fills from the stream's ring. Never: a read of our own account (the gateway owns
//! it), a retry within a run (the next check reads again), or a panic on a malformed
//! answer (it is a [`LeaderError`]).
//!
//! Why not through the gateway: the gateway reaches the accounts this engine trades; a
//! leader is someone else's account on a venue we may not even trade on, read with one
//! `clearinghouseState` request (weight 2 of Hyperliquid's 1200 per minute) per wallet
//! per `poll_interval` or per new fill, bounded below by `check_interval`.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::clock::Millis;
use crate::exchanges::hyperliquid::info::{parse_clearinghouse_state, InfoError};
use crate::exchanges::stream::StreamBook;
use crate::exchanges::types::{Fill, Side};

/// A leader read that failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("clearinghouseState of {wallet} at {url}: no answer within {timeout:?}")]
    Timeout {
        wallet: String,
        url: String,
        timeout: Duration,
    },
    #[error("clearinghouseState of {wallet} at {url}: {source}")]
    Http {
        wallet: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("clearinghouseState of {wallet} at {url}: HTTP {status}")]
    Status {
        wallet: String,
        url: String,
        status: u16,
    },
    #[error("clearinghouseState of {wallet}: {source}")]
    Malformed {
        wallet: String,
        #[source]
        source: InfoError,
    },
}

/// One leader's position in one coin, as the venue reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderPosition {
    /// Signed size (negative: short).
    pub size: Decimal,
    /// The leader's average entry price.
    pub entry_price: Decimal,
}

/// Reads leaders on one Hyperliquid venue.
#[derive(Clone)]
pub struct LeaderReader {
    client: reqwest::Client,
    info_url: String,
    timeout: Duration,
    /// The venue's name in the stream book, and the book (absent in tests without streams).
    venue: String,
    streams: Option<StreamBook>,
}

impl LeaderReader {
    /// `api_url`: the leader venue's API root (`…/info` is appended).
    pub fn new(
        venue: &str,
        api_url: &str,
        timeout: Duration,
        streams: Option<StreamBook>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self {
            client,
            info_url: format!("{}/info", api_url.trim_end_matches('/')),
            timeout,
            venue: venue.to_string(),
            streams,
        })
    }

    /// The leader's open positions by coin; a coin it does not hold is absent.
    pub async fn positions(
        &self,
        wallet: &str,
        now_ms: Millis,
    ) -> Result<BTreeMap<String, LeaderPosition>, LeaderError> {
        let body = serde_json::json!({"type": "clearinghouseState", "user": wallet});
        let request = self.client.post(&self.info_url).json(&body).send();
        let http = |source| LeaderError::Http {
            wallet: wallet.to_string(),
            url: self.info_url.clone(),
            source,
        };
        let response = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| self.timeout_error(wallet))?
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(LeaderError::Status {
                wallet: wallet.to_string(),
                url: self.info_url.clone(),
                status: response.status().as_u16(),
            });
        }
        let bytes = tokio::time::timeout(self.timeout, response.bytes())
            .await
            .map_err(|_| self.timeout_error(wallet))?
            .map_err(http)?;
        let state =
            parse_clearinghouse_state(&bytes, now_ms).map_err(|source| LeaderError::Malformed {
                wallet: wallet.to_string(),
                source,
            })?;
        Ok(state
            .positions
            .into_iter()
            .filter(|p| !p.size.is_zero())
            .map(|p| {
                (
                    p.symbol,
                    LeaderPosition {
                        size: p.size,
                        entry_price: p.entry_price,
                    },
                )
            })
            .collect())
    }

    fn timeout_error(&self, wallet: &str) -> LeaderError {
        LeaderError::Timeout {
            wallet: wallet.to_string(),
            url: self.info_url.clone(),
            timeout: self.timeout,
        }
    }

    /// The leader's newest fills the stream kept (oldest first); none without a stream.
    pub fn recent_fills(&self, wallet: &str) -> Vec<Fill> {
        self.streams
            .as_ref()
            .and_then(|s| s.feed(&self.venue))
            .map(|feed| feed.followed().recent(wallet))
            .unwrap_or_default()
    }
}

/// The newest fill per coin of `fills`: its id and price (the staleness reference).
pub fn newest_by_coin(fills: &[Fill]) -> BTreeMap<String, (String, Decimal, Side)> {
    let mut out = BTreeMap::new();
    for f in fills {
        // `fills` is oldest first: later ones replace earlier ones.
        out.insert(f.symbol.clone(), (f.fill_id.clone(), f.price, f.side));
    }
    out
}
