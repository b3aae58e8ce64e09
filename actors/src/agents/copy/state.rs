//! What a copy agent keeps in sled (tree `copy/<agent>`), so a restart resumes without
//! doubling or missing a step.
//!
//! Keys: `mirror/<leader>/<symbol>` ([`Mirror`]): our mirrored position for that leader
//! and symbol (from our fills), the `fixed_usd` anchor, the number of steps settled (the
//! next step's client id is derived from it, see [`step_client_id`]) and the step in
//! flight, if any.
//!
//! Owns: those records, their durable writes and the client-id derivation. Never:
//! decides a step (see [`super::step`]) or talks to the gateway.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::step::Anchor;
use crate::clock::Millis;
use crate::exchanges::ClientOrderId;
use crate::store::{Record, Store, StoreError, Tree};

/// The tree of agent `name`.
pub fn tree_name(agent: &str) -> String {
    format!("copy/{agent}")
}

/// A step handed to the gateway whose outcome is not recorded here yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStep {
    pub client_id: ClientOrderId,
    /// Signed size asked.
    pub size: Decimal,
    /// Where it takes the mirrored position.
    pub target: Decimal,
    /// The anchor to keep once it fills.
    pub anchor: Option<Anchor>,
    /// The leader's size that asked for it.
    pub leader_size: Decimal,
    pub written_ms: Millis,
}

/// One leader and symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    /// Our mirrored position (signed), the sum of our steps' fills.
    pub mirrored: Decimal,
    pub anchor: Option<Anchor>,
    /// Steps settled so far (sent and answered, whatever the answer).
    pub steps: u64,
    pub pending: Option<PendingStep>,
    /// The leader's size at the last check.
    pub leader_size: Decimal,
    /// The price of the last decision (values this position in `max_total_usd`).
    pub last_price: Decimal,
}
impl Record for Mirror {}

/// The client id of step number `steps` of (`agent`, `leader`, `symbol`): the same step
/// recomputed after a restart has the same id, so the gateway finds it in its ledger and
/// never sends it again; the next step (after this one settled) has a new one.
pub fn step_client_id(agent: &str, leader: &str, symbol: &str, steps: u64) -> ClientOrderId {
    let mut h = Sha256::new();
    for part in ["orrery-copy", agent, leader, symbol] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.update(steps.to_be_bytes());
    let digest = h.finalize();
    // 32 hex digits: a Hyperliquid cloid and a Binance client order id alike.
    let hex = hex::encode(&digest[..16]);
    // Invariant: 16 bytes hex-encode to 32 hex digits, which is what `parse` accepts.
    ClientOrderId::parse(&hex).expect("32 hex digits are a client order id")
}

/// The agent's mirrors.
#[derive(Clone)]
pub struct CopyState {
    tree: Tree<Mirror>,
}

impl CopyState {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(&tree_name(agent))?,
        })
    }

    fn key(leader: &str, symbol: &str) -> String {
        format!("mirror/{leader}/{symbol}")
    }

    pub fn get(&self, leader: &str, symbol: &str) -> Result<Mirror, StoreError> {
        Ok(self
            .tree
            .get(&Self::key(leader, symbol))?
            .unwrap_or_default())
    }

    /// Written and flushed before the caller goes on: a pending step is on disk before it
    /// is sent, its outcome before the next step is decided.
    pub async fn put(&self, leader: &str, symbol: &str, m: &Mirror) -> Result<(), StoreError> {
        self.tree.put_durable(&Self::key(leader, symbol), m).await
    }

    /// Every mirror: (leader, symbol, record).
    pub fn all(&self) -> Result<Vec<(String, String, Mirror)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix("mirror/") {
            let (key, m) = item?;
            let mut parts = key.splitn(3, '/').skip(1);
            if let (Some(leader), Some(symbol)) = (parts.next(), parts.next()) {
                out.push((leader.to_string(), symbol.to_string(), m));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_stable_per_step_and_differ_between_steps() {
        let a = step_client_id("copy", "0xab", "BTC", 3);
        assert_eq!(a, step_client_id("copy", "0xab", "BTC", 3));
        assert_ne!(a, step_client_id("copy", "0xab", "BTC", 4));
        assert_ne!(a, step_client_id("copy", "0xab", "ETH", 3));
        assert_ne!(a, step_client_id("other", "0xab", "BTC", 3));
        assert_eq!(a.as_str().len(), 32);
    }
}
