//! The ledger replica: a shared account's intents and venue answers, in Redis, so the node
//! that takes the account over knows everything its dead owner wrote.
//!
//! Owns: `P ledger:{venue}` (HASH client_id → JSON ledger entry) and the write script that
//! refuses a stale owner — it writes only while `P lease:venue:{venue}` names this node
//! with the writer's token, checked inside Redis in the same atomic run, so a node whose
//! lease was taken cannot overwrite what the new owner sees. Never: decides what is sent
//! (the gateway sends only after [`LedgerReplica::write`] said yes) or merges (the gateway
//! merges what [`LedgerReplica::read`] returns into its sled; see its `ownership` module).
//!
//! Writes of venue answers are asynchronous and ordered: [`LedgerReplica::queue`] hands
//! them to one writer task per replica, which applies them in the order they were
//! queued (a later state never overwritten by an earlier one). A queued write that fails
//! is dropped with a `warn`: the venue keeps that answer and the next owner's
//! reconciliation restores it by client id.
//!
//! The payload is generic JSON (`serde_json::Value`) so this module does not depend on the
//! exchange types; the gateway serialises its `LedgerEntry`.

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::lease::venue_resource;
use super::link::{ClusterError, RedisLink};

/// Metric: replica writes by venue and outcome (ok, stale, unreachable, dropped).
pub const METRIC_REPLICA_WRITES: &str = "orrery_cluster_replica_writes_total";

/// Write-if-owner. KEYS: lease, ledger. ARGV: node, token, client_id, json. Answers
/// {1, ''} when written, {0, owner} when this node does not hold the lease with `token`.
const WRITE_LUA: &str = r#"
local owner = redis.call('HGET', KEYS[1], 'owner')
local token = redis.call('HGET', KEYS[1], 'token')
if owner ~= ARGV[1] or token ~= ARGV[2] then
  return {0, owner or ''}
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return {1, ''}
"#;

/// Why a replica write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// Redis refused it: the lease is not this node's with that token (`owner` holds it,
    /// empty when nobody does).
    #[error("stale owner: the lease on venue `{venue}` is not this node's with token {token} (held by {owner})")]
    Stale {
        venue: String,
        token: u64,
        owner: String,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("replica entry of venue `{venue}` cannot be encoded or decoded: {reason}")]
    Encoding { venue: String, reason: String },
}

struct Queued {
    venue: String,
    token: u64,
    client_id: String,
    json: String,
}

/// The replica over one link; cheap to clone.
#[derive(Clone)]
pub struct LedgerReplica {
    link: RedisLink,
    script: Arc<redis::Script>,
    queue: mpsc::UnboundedSender<Queued>,
    /// Queued writes not yet tried.
    pending: Arc<AtomicUsize>,
}

impl std::fmt::Debug for LedgerReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerReplica").finish()
    }
}

impl LedgerReplica {
    /// A replica and its writer task (spawned on the current tokio runtime; it ends when
    /// every clone is dropped).
    pub fn start(link: RedisLink) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<Queued>();
        let replica = Self {
            link,
            script: Arc::new(redis::Script::new(WRITE_LUA)),
            queue,
            pending: Arc::new(AtomicUsize::new(0)),
        };
        let writer = Self {
            link: replica.link.clone(),
            script: replica.script.clone(),
            // Never used to queue: the writer only drains.
            queue: mpsc::unbounded_channel().0,
            pending: replica.pending.clone(),
        };
        tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                if let Err(e) = writer
                    .write_raw(&q.venue, q.token, &q.client_id, &q.json)
                    .await
                {
                    metrics::counter!(METRIC_REPLICA_WRITES, "venue" => q.venue.clone(), "outcome" => "dropped").increment(1);
                    tracing::warn!(venue = %q.venue, client_id = %q.client_id, error = %e, "venue answer not replicated; the next owner's reconciliation restores it from the venue");
                }
                writer.pending.fetch_sub(1, Ordering::AcqRel);
            }
        });
        replica
    }

    fn ledger_key(&self, venue: &str) -> String {
        self.link.key(&format!("ledger:{venue}"))
    }

    /// Writes one entry if this node holds `venue`'s lease with `token`; the send may
    /// follow only on `Ok`.
    pub async fn write(
        &self,
        venue: &str,
        token: u64,
        client_id: &str,
        entry: &impl serde::Serialize,
    ) -> Result<(), ReplicaError> {
        let json = serde_json::to_string(entry).map_err(|e| ReplicaError::Encoding {
            venue: venue.to_string(),
            reason: e.to_string(),
        })?;
        self.write_raw(venue, token, client_id, &json).await
    }

    async fn write_raw(
        &self,
        venue: &str,
        token: u64,
        client_id: &str,
        json: &str,
    ) -> Result<(), ReplicaError> {
        let mut inv = self.script.prepare_invoke();
        inv.key(self.link.key(&format!("lease:{}", venue_resource(venue))))
            .key(self.ledger_key(venue))
            .arg(self.link.node_id())
            .arg(token)
            .arg(client_id)
            .arg(json);
        let answer: Result<(i64, String), ClusterError> = self.link.invoke(inv).await;
        let outcome = match &answer {
            Ok((1, _)) => "ok",
            Ok(_) => "stale",
            Err(ClusterError::Unreachable { .. }) => "unreachable",
            Err(_) => "refused",
        };
        metrics::counter!(METRIC_REPLICA_WRITES, "venue" => venue.to_string(), "outcome" => outcome)
            .increment(1);
        match answer? {
            (1, _) => Ok(()),
            (_, owner) => Err(ReplicaError::Stale {
                venue: venue.to_string(),
                token,
                owner: if owner.is_empty() {
                    "nobody".into()
                } else {
                    owner
                },
            }),
        }
    }

    /// Queues a write (a venue's answer, a reconciliation result) for the ordered writer.
    pub fn queue(&self, venue: &str, token: u64, client_id: &str, entry: &impl serde::Serialize) {
        match serde_json::to_string(entry) {
            Ok(json) => {
                self.pending.fetch_add(1, Ordering::AcqRel);
                let sent = self.queue.send(Queued {
                    venue: venue.to_string(),
                    token,
                    client_id: client_id.to_string(),
                    json,
                });
                if sent.is_err() {
                    self.pending.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(e) => {
                tracing::warn!(venue, client_id, error = %e, "ledger entry not replicated: it cannot be encoded")
            }
        }
    }

    /// Every entry of `venue`'s replica, decoded. One HGETALL under the command deadline;
    /// an entry that does not decode is an error (never silently skipped).
    pub async fn read<T: serde::de::DeserializeOwned>(
        &self,
        venue: &str,
    ) -> Result<Vec<T>, ReplicaError> {
        let raw: Vec<(String, String)> = self
            .link
            .query(redis::cmd("HGETALL").arg(self.ledger_key(venue)))
            .await?;
        raw.into_iter()
            .map(|(client_id, json)| {
                serde_json::from_str(&json).map_err(|e| ReplicaError::Encoding {
                    venue: venue.to_string(),
                    reason: format!("{client_id}: {e}"),
                })
            })
            .collect()
    }

    /// Waits until every write queued so far has been tried (tests, clean shutdown), at
    /// most `within`.
    pub async fn drained(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while self.pending.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// HELP texts of the replica's metrics.
pub fn describe() {
    metrics::describe_counter!(
        METRIC_REPLICA_WRITES,
        "Writes of ledger entries to the Redis replica by venue and outcome (ok, stale: refused for a stale lease token, unreachable, refused, dropped: a queued answer not written)."
    );
}
