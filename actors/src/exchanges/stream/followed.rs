//! Fills of other addresses the operator follows (`follow_wallets`), kept for copy-trading.
//!
//! Owns: per followed wallet, a bounded ring of its newest fills ([`FollowedWallets::KEPT`]),
//! how many distinct fills were seen and when the last one happened, and the view of it
//! that `orrery status` and `GET /api/status` show. Never: the ledger, positions or PnL of
//! this engine (a followed wallet's fill is not ours), disk (the ring is rebuilt from the
//! venue's snapshot after a restart), or a lock held across an await.
//!
//! The venue replays recent history when a `userFills` subscription starts (again after
//! every reconnect); a fill already in the ring, or older than the fills the ring has
//! dropped, is not counted again.

use std::collections::{BTreeMap, VecDeque};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::types::Fill;

/// One followed wallet as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowedWallet {
    pub wallet: String,
    /// Distinct fills seen since the engine started.
    pub fills_seen: u64,
    /// Time of its newest fill (venue time, ms since the epoch).
    pub last_fill_ms: Option<Millis>,
}

#[derive(Default)]
struct Ring {
    fills: VecDeque<Fill>,
    seen: u64,
    /// Time of the newest fill dropped from the ring: a replayed fill older than it was
    /// counted already.
    dropped_until: Option<Millis>,
}

/// Every followed wallet of one venue.
#[derive(Default)]
pub struct FollowedWallets {
    wallets: RwLock<BTreeMap<String, Ring>>,
}

impl std::fmt::Debug for FollowedWallets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowedWallets")
            .field("wallets", &self.wallets.read().len())
            .finish()
    }
}

impl FollowedWallets {
    /// Fills kept per wallet.
    pub const KEPT: usize = 500;

    /// Lists `wallets` (lower case) even before their first fill.
    pub fn watch(&self, wallets: &[String]) {
        let mut map = self.wallets.write();
        for w in wallets {
            map.entry(w.clone()).or_default();
        }
    }

    /// Adds `fills` of `wallet` (lower case), oldest first, skipping those already seen.
    /// Returns how many were new.
    pub fn record(&self, wallet: &str, mut fills: Vec<Fill>) -> usize {
        fills.sort_by_key(|f| f.time_ms);
        let mut map = self.wallets.write();
        let ring = map.entry(wallet.to_string()).or_default();
        let mut new = 0;
        for fill in fills {
            let old = ring.dropped_until.is_some_and(|t| fill.time_ms <= t);
            if old || ring.fills.iter().any(|f| f.fill_id == fill.fill_id) {
                continue;
            }
            ring.fills.push_back(fill);
            ring.seen += 1;
            new += 1;
            if ring.fills.len() > Self::KEPT {
                if let Some(gone) = ring.fills.pop_front() {
                    ring.dropped_until = Some(ring.dropped_until.unwrap_or(0).max(gone.time_ms));
                }
            }
        }
        // Frames may arrive out of time order (a replay after live fills).
        ring.fills.make_contiguous().sort_by_key(|f| f.time_ms);
        new
    }

    /// The newest fills of `wallet`, oldest first (at most [`Self::KEPT`]).
    pub fn recent(&self, wallet: &str) -> Vec<Fill> {
        self.wallets
            .read()
            .get(&wallet.to_ascii_lowercase())
            .map(|r| r.fills.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every followed wallet, by address.
    pub fn summary(&self) -> Vec<FollowedWallet> {
        self.wallets
            .read()
            .iter()
            .map(|(wallet, r)| FollowedWallet {
                wallet: wallet.clone(),
                fills_seen: r.seen,
                last_fill_ms: r.fills.iter().map(|f| f.time_ms).max(),
            })
            .collect()
    }
}
