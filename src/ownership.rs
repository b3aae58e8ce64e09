//! This process's part in the cluster's ownership: which venue accounts and agents it
//! holds leases on, and the ledger replica.
//!
//! Owns: starting the [`LeaseKeeper`] for every configured venue account (`venue:<name>`),
//! the replica's writer, and releasing the leases on a clean shutdown (after the
//! supervisor tree stopped, so nothing sends once the next owner can take over). Never:
//! decides what a lease allows — the gateway (`orrery_actors::exchanges::gateway::ownership`)
//! and the agent runtime (`AgentRunner::owned_through`) read the lease book — or lists the
//! agents: each agent's runner adds `agent:<name>` to the book when it starts (one that
//! trades follows its venue's lease, so agent and gateway move together on a takeover),
//! and the keeper takes it at its next tick. Without `[cluster]` nothing here runs.
//!
//! The risk agent has no lease: it runs on every node, so the node that owns a venue (the
//! only one whose gateway sends, including the risk agent's closes) always has its loss
//! limits watched; on the other nodes its orders are refused as not owner.
//!
//! An agent started while the engine runs (a promoted strategy) joins the book the same
//! way, so promoted on several nodes, it runs on one.

use std::sync::Arc;
use std::time::Duration;

use orrery_actors::cluster::lease::LeaseTimings;
use orrery_actors::cluster::{
    venue_resource, ClusterConfig, LeaseKeeper, LeaseStatus, Leases, LedgerReplica, RedisLink,
};
use orrery_actors::exchanges::gateway::VenueOwnership;
use tokio::sync::watch;

/// The node's leases and replica; cheap to clone (every clone drives the same keeper).
#[derive(Clone)]
pub struct ClusterOwnership {
    pub leases: Leases,
    pub replica: LedgerReplica,
    stop: Arc<watch::Sender<bool>>,
    keeper: Arc<parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    command_timeout: Duration,
}

impl ClusterOwnership {
    /// Starts the keeper (first acquire attempts at once) on the current runtime.
    pub fn start(
        link: &RedisLink,
        config: &ClusterConfig,
        venues: impl IntoIterator<Item = String>,
    ) -> Self {
        let resources: Vec<String> = venues.into_iter().map(|v| venue_resource(&v)).collect();
        let timings = LeaseTimings::of(config);
        tracing::info!(
            node = %link.node_id(),
            resources = ?resources,
            lease_ttl = %humantime::format_duration(whole_ms(timings.ttl)),
            renew_every = %humantime::format_duration(whole_ms(timings.renew_every)),
            margin = %humantime::format_duration(whole_ms(timings.margin)),
            "leases: venues (and the agents, as their runners start) trade only on the node holding their lease"
        );
        let leases = Leases::new(link.node_id(), resources);
        let keeper = LeaseKeeper::new(link.clone(), leases.clone(), timings);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(keeper.run(stop_rx));
        Self {
            leases,
            replica: LedgerReplica::start(link.clone()),
            stop: Arc::new(stop),
            keeper: Arc::new(parking_lot::Mutex::new(Some(task))),
            command_timeout: link.command_timeout(),
        }
    }

    /// What the order gateway needs.
    pub fn venue_ownership(&self) -> VenueOwnership {
        VenueOwnership {
            leases: self.leases.clone(),
            replica: self.replica.clone(),
        }
    }

    /// Every lease and its state, for status.
    pub fn snapshot(&self) -> Vec<LeaseStatus> {
        self.leases.snapshot()
    }

    /// Writes what is queued for the replica, then releases every lease held (each Redis
    /// call under its deadline). Call after the tree stopped.
    pub async fn release(&self) {
        self.replica.drained(self.command_timeout * 4).await;
        let _ = self.stop.send(true);
        let task = self.keeper.lock().take();
        if let Some(task) = task {
            // The release is bounded by one command deadline per lease.
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// `d` cut to whole milliseconds, for log lines (`1s 666ms`, not `1s 666ms 666us 666ns`).
fn whole_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
