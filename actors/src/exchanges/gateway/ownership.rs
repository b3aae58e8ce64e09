//! The gateway in a cluster: it trades a venue account only while this node holds the
//! account's lease, carries the lease's fencing token on every intent, replicates each
//! intent before its send, and takes an account over before trading it.
//!
//! Owns: [`VenueOwnership`] (the lease book and the ledger replica, attached once by the
//! engine), the per-venue takeover (read `P ledger:{venue}` → merge into sled →
//! reconcile with the venue → accept orders), the checks each send makes
//! ([`GatewayCore::owned`] before the intent, [`GatewayCore::still_owned`] right before
//! the command is handed to the connector, and the lease's safe-until as the command's
//! send-by instant, which the connector and the venue's guard enforce until the bytes
//! leave), and the replication of the intent (synchronous, token-checked by
//! Redis) and of every later write of the ledger (queued, ordered). Never: acquires or
//! renews a lease (the [`LeaseKeeper`](crate::cluster::LeaseKeeper) does) or sends again
//! what a dead owner sent (an unknown outcome is settled by client id, as always).
//!
//! Without a `[cluster]` section nothing here is attached and every check passes: a
//! single process trades exactly as before, with `fencing_token: None` on its intents.
//!
//! ## Standby
//!
//! A venue whose lease this node does not hold is in standby: orders, cancels and
//! leverage changes are refused with [`GatewayError::NotOwner`] (nothing written, nothing
//! sent; one that arrives before Redis first answered for the lease since start waits for
//! that answer, at most `ready_timeout`), and reconciliation does not run (it would write
//! into this node's ledger what the owner is doing). When the keeper acquires the lease,
//! the takeover runs at once (a task that waits on the lease book's changes), and any
//! order that arrives first runs it itself; either way orders wait for it. It logs one
//! `info` line (`lease acquired`: resource, token, previous owner, merged entries,
//! took_ms). Orders the dead owner had in flight that the venue has not applied yet are
//! asked about again 1 to 16 s after the takeover ([`FollowUp`]), so the agent waiting for
//! them resumes within seconds.

use std::collections::HashMap;
use std::sync::Weak;

use futures::StreamExt;

use super::*;
use crate::cluster::{venue_resource, Leases, LedgerReplica, ReplicaError};
use crate::exchanges::ledger::MergeOutcome;

/// What a gateway in a cluster needs: the node's leases and the ledger replica.
#[derive(Clone, Debug)]
pub struct VenueOwnership {
    pub leases: Leases,
    pub replica: LedgerReplica,
}

/// Replica entries merged into sled at once during a takeover.
const MERGE_CONCURRENCY: usize = 64;

/// Metric: takeovers by venue and outcome (ok, failed).
pub const METRIC_TAKEOVERS: &str = "orrery_cluster_takeovers_total";
/// Metric: how long a takeover took (replica read, merge, reconciliation).
pub const METRIC_TAKEOVER_SECONDS: &str = "orrery_cluster_takeover_seconds";

/// HELP texts of the takeover's metrics.
pub fn describe() {
    metrics::describe_counter!(
        METRIC_TAKEOVERS,
        "Takeovers of a venue account by this node (replica merged, reconciled) by venue and outcome (ok, failed)."
    );
    metrics::describe_histogram!(
        METRIC_TAKEOVER_SECONDS,
        metrics::Unit::Seconds,
        "Time from acquiring a venue's lease to accepting orders for it (replica read, merge into sled, reconciliation)."
    );
}

impl GatewayCore {
    /// Trades the venues only under their leases, from now on (once; a second call is
    /// ignored and returns false). Spawns the takeover task with `actix::spawn`, so call
    /// it inside the actix system (the gateway's factory is); the task ends with the
    /// gateway.
    pub fn attach_ownership(self: &Arc<Self>, ownership: VenueOwnership) -> bool {
        if self.ownership.set(ownership.clone()).is_err() {
            return false;
        }
        // Every later write of an entry (venue answers, settlement, reconciliation) goes to
        // the replica in order, under the token held when it is written. Intents are
        // replicated synchronously by the order path instead, before their send.
        let leases = ownership.leases.clone();
        let replica = ownership.replica.clone();
        self.ledger.observe(Box::new(move |entry: &LedgerEntry| {
            if entry.status == OrderStatus::Intent {
                return;
            }
            if let Some(held) = leases.held(&venue_resource(&entry.venue)) {
                replica.queue(&entry.venue, held.token, entry.client_id.as_str(), entry);
            }
        }));
        let weak = Arc::downgrade(self);
        let changes = ownership.leases.watch();
        actix::spawn(take_over_when_acquired(weak, changes));
        true
    }

    fn ownership(&self) -> Option<&VenueOwnership> {
        self.ownership.get()
    }

    /// Whether the venue is held in standby (a cluster, and this node's lease on it is not
    /// usable or not yet taken over).
    pub fn standby(&self, venue: &str) -> bool {
        let Some(own) = self.ownership() else {
            return false;
        };
        let Ok(link) = self.link(venue) else {
            return true;
        };
        match own.leases.held(&venue_resource(venue)) {
            Some(held) => link.adopted_token.load(Ordering::Acquire) != held.token,
            None => true,
        }
    }

    /// Whether this node holds `venue`'s lease now (taken over or not).
    fn lease_held(&self, venue: &str) -> bool {
        self.ownership()
            .is_some_and(|own| own.leases.held(&venue_resource(venue)).is_some())
    }

    fn not_owner(&self, venue: &str, own: &VenueOwnership) -> GatewayError {
        GatewayError::NotOwner {
            venue: venue.to_string(),
            owner: own.leases.owner(&venue_resource(venue)),
        }
    }

    /// The fencing token an order on `venue` carries (`None` outside a cluster), once this
    /// node holds the venue's lease and has taken the venue over (the takeover runs here
    /// if the background task has not finished it yet). Otherwise [`GatewayError::NotOwner`].
    pub(super) async fn owned(&self, venue: &str) -> GatewayResult<Option<u64>> {
        let Some(own) = self.ownership() else {
            return Ok(None);
        };
        let resource = venue_resource(venue);
        if own.leases.held(&resource).is_none() {
            // Right after start nobody knows the owner yet: wait for Redis's first answer
            // (as an order waits for the first reconciliation), then decide.
            own.leases
                .first_answer(&resource, self.config.ready_timeout)
                .await;
        }
        let Some(held) = own.leases.held(&resource) else {
            return Err(self.not_owner(venue, own));
        };
        self.take_over(venue, held.token).await?;
        Ok(Some(held.token))
    }

    /// The instant a state change on `venue` must leave by: the lease's safe-until in a
    /// cluster (the connector and the venue's guard refuse it after that, so nothing is sent
    /// once another node could own the account); `None` outside a cluster.
    pub(super) fn send_by(&self, venue: &str) -> Option<tokio::time::Instant> {
        let own = self.ownership()?;
        own.leases
            .held(&venue_resource(venue))
            .map(|held| held.safe_until)
    }

    /// Right before bytes leave: the lease is still this node's with `token` and before
    /// its safe-until. A flow that waited past it stops here, nothing sent.
    pub(super) fn still_owned(&self, venue: &str, token: Option<u64>) -> GatewayResult<()> {
        let Some(own) = self.ownership() else {
            return Ok(());
        };
        match own.leases.held(&venue_resource(venue)) {
            Some(held) if Some(held.token) == token => Ok(()),
            _ => {
                tracing::warn!(venue, token = ?token, owner = %own.leases.owner(&venue_resource(venue)), "send stopped: this node no longer holds the venue's lease with the intent's token");
                metrics::counter!(names::GATEWAY_FENCED, "venue" => venue.to_string()).increment(1);
                Err(self.not_owner(venue, own))
            }
        }
    }

    /// A send that is not an order (a cancel, a leverage update) on a venue in a cluster:
    /// owned and taken over now.
    pub(super) async fn owned_now(&self, venue: &str) -> GatewayResult<()> {
        let token = self.owned(venue).await?;
        self.still_owned(venue, token)
    }

    /// [`GatewayCore::owned_now`] without running a takeover, for a flow that already holds
    /// the venue's turn (a takeover reconciles, which takes the turn).
    pub(super) fn owned_already(&self, venue: &str) -> GatewayResult<()> {
        match self.ownership() {
            Some(own) if self.standby(venue) => Err(self.not_owner(venue, own)),
            _ => Ok(()),
        }
    }

    /// Writes the intent to the replica before its send; the send follows only on `Ok`.
    /// A refusal (stale token) or an unreachable Redis is [`GatewayError::NotOwner`] /
    /// [`GatewayError::NotReplicated`]; the caller closes the intent as never sent.
    pub(super) async fn replicate_intent(&self, entry: &LedgerEntry) -> GatewayResult<()> {
        let (Some(own), Some(token)) = (self.ownership(), entry.fencing_token) else {
            return Ok(());
        };
        match own
            .replica
            .write(&entry.venue, token, entry.client_id.as_str(), entry)
            .await
        {
            Ok(()) => Ok(()),
            Err(ReplicaError::Stale { owner, .. }) => Err(GatewayError::NotOwner {
                venue: entry.venue.clone(),
                owner,
            }),
            Err(e) => Err(GatewayError::NotReplicated {
                venue: entry.venue.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Takes `venue` over under `token`, once per token: the replica's entries merged into
    /// sled, then a reconciliation pass with the venue; only then are orders accepted.
    async fn take_over(&self, venue: &str, token: u64) -> GatewayResult<()> {
        let link = self.link(venue)?;
        if link.adopted_token.load(Ordering::Acquire) == token {
            return Ok(());
        }
        let _one = link.takeover.lock().await;
        if link.adopted_token.load(Ordering::Acquire) == token {
            return Ok(());
        }
        let Some(own) = self.ownership() else {
            return Ok(());
        };
        let started = Instant::now();
        let outcome = self.merge_and_reconcile(venue, own).await;
        match outcome {
            Ok((inserted, advanced)) => {
                // The lease may have been lost while this ran: then nothing is accepted.
                match own.leases.held(&venue_resource(venue)) {
                    Some(held) if held.token == token => {}
                    _ => return Err(self.not_owner(venue, own)),
                }
                link.adopted_token.store(token, Ordering::Release);
                let took = started.elapsed();
                metrics::counter!(METRIC_TAKEOVERS, "venue" => venue.to_string(), "outcome" => "ok").increment(1);
                metrics::histogram!(METRIC_TAKEOVER_SECONDS, "venue" => venue.to_string())
                    .record(took.as_secs_f64());
                tracing::info!(
                    resource = %venue_resource(venue),
                    token,
                    previous_owner = %own.leases.previous_owner(&venue_resource(venue)).unwrap_or_else(|| "none seen".into()),
                    merged_new = inserted,
                    merged_advanced = advanced,
                    took_ms = took.as_millis() as u64,
                    "lease acquired; venue taken over, orders accepted"
                );
                Ok(())
            }
            Err(e) => {
                metrics::counter!(METRIC_TAKEOVERS, "venue" => venue.to_string(), "outcome" => "failed").increment(1);
                tracing::warn!(venue, token, error = %e, "takeover failed; the venue stays in standby and the takeover is tried again");
                Err(e)
            }
        }
    }

    async fn merge_and_reconcile(
        &self,
        venue: &str,
        own: &VenueOwnership,
    ) -> GatewayResult<(usize, usize)> {
        let entries: Vec<LedgerEntry> =
            own.replica
                .read(venue)
                .await
                .map_err(|e| GatewayError::NotReady {
                    venue: venue.to_string(),
                    reason: format!("the cluster's replica of the ledger cannot be read: {e}"),
                })?;
        let (mut inserted, mut advanced) = (0, 0);
        // Entries of distinct client ids merge independently; merged concurrently, their
        // durable writes share the store's flushes (group commit) instead of one flush
        // each, which is what the takeover's time grows with as the replica grows.
        let mut merges = futures::stream::iter(entries)
            .map(|entry| {
                let adopted = entry.origin == ADOPTED_ORIGIN;
                self.ledger.merge(entry, adopted)
            })
            .buffer_unordered(MERGE_CONCURRENCY);
        while let Some(outcome) = merges.next().await {
            match outcome? {
                MergeOutcome::Inserted => inserted += 1,
                MergeOutcome::Advanced => advanced += 1,
                MergeOutcome::Kept => {}
            }
        }
        // The merged entries are in sled and in the open index (the merge keeps it), so
        // the venue is asked about them by client id now.
        self.reconcile_owned(venue).await?;
        Ok((inserted, advanced))
    }
}

/// Runs each venue's takeover as soon as the keeper acquires its lease (and retries a
/// failed one every second), so orders do not wait for it; then follows each takeover up
/// ([`FollowUp`]); ends with the gateway.
async fn take_over_when_acquired(core: Weak<GatewayCore>, mut changes: watch::Receiver<u64>) {
    let mut follow_ups: HashMap<String, FollowUp> = HashMap::new();
    loop {
        {
            let Some(core) = core.upgrade() else { return };
            for venue in core.venue_names() {
                if core.standby(&venue) && core.lease_held(&venue) {
                    // Errors are logged by the takeover.
                    let _ = core.owned(&venue).await;
                }
                core.follow_up(&venue, &mut follow_ups).await;
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The passes after a takeover. The orders a dead owner had in flight are exactly those a
/// venue may still be applying when the takeover's pass asks about them; the pass keeps
/// them unknown (never judged before their deadline), and the agent that placed them waits
/// for their outcome. Rather than leave that to the periodic pass (`reconcile_interval`)
/// or their deadline, the new owner asks again 1, 2, 4, 8 and 16 s after the takeover
/// while any of them is unsettled: a few reads, only after a takeover.
#[derive(Debug, Clone, Copy)]
struct FollowUp {
    /// The takeover (its lease token) these passes follow.
    token: u64,
    /// The next pass and the wait it ended; `None` once nothing was left in flight or the
    /// last pass ran.
    next: Option<(Instant, Duration)>,
}

const FOLLOW_UP_FIRST: Duration = Duration::from_secs(1);
const FOLLOW_UP_LAST: Duration = Duration::from_secs(16);

impl GatewayCore {
    /// One step of `venue`'s follow-up (see [`FollowUp`]).
    async fn follow_up(&self, venue: &str, follow_ups: &mut HashMap<String, FollowUp>) {
        let (Some(own), Ok(link)) = (self.ownership(), self.link(venue)) else {
            return;
        };
        let adopted = link.adopted_token.load(Ordering::Acquire);
        if own.leases.held(&venue_resource(venue)).map(|h| h.token) != Some(adopted) {
            return;
        }
        let now = Instant::now();
        let f = follow_ups.entry(venue.to_string()).or_insert(FollowUp {
            token: 0,
            next: None,
        });
        if f.token != adopted {
            *f = FollowUp {
                token: adopted,
                next: Some((now + FOLLOW_UP_FIRST, FOLLOW_UP_FIRST)),
            };
            return;
        }
        let Some((at, wait)) = f.next else { return };
        if now < at {
            return;
        }
        let awaiting = self.awaiting_outcome(venue);
        if awaiting == 0 {
            f.next = None;
            return;
        }
        tracing::debug!(
            venue,
            awaiting,
            "takeover follow-up: asking the venue again about orders in flight"
        );
        if let Err(e) = self.reconcile_owned(venue).await {
            tracing::debug!(venue, error = %e, "takeover follow-up pass failed; the periodic pass tries again");
        }
        f.next = (wait < FOLLOW_UP_LAST).then(|| (Instant::now() + wait * 2, wait * 2));
    }

    /// Open entries of `venue` whose outcome the venue has not told yet.
    fn awaiting_outcome(&self, venue: &str) -> usize {
        self.ledger
            .open_entries()
            .iter()
            .filter(|e| e.venue == venue && e.status.awaits_outcome())
            .count()
    }
}
