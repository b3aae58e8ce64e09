//! The cluster: several engine processes coordinating through Redis.
//!
//! Owns: the `[cluster]` settings ([`ClusterConfig`]), the one Redis link of a process
//! ([`RedisLink`]: connection manager, a deadline on every command, key prefix, node id,
//! and the link's health that everything cluster-wide falls back on), this node's record
//! in the cluster ([`NodeRegistry`]), and the shared circuit breakers ([`SharedBreakers`]). Never: anything for
//! a process without a `[cluster]` section — such a process never opens a socket to Redis
//! and behaves exactly as a single engine.
//!
//! Redis is shared state, not the truth: each node's sled stays its own durable record.
//! What the cluster adds is coordination — budgets several nodes draw from, breakers they
//! share, and exactly one owner at a time per venue account and per agent ([`lease`],
//! with the ledger's replica in [`replica`] for the node that takes an account over).

pub mod breakers;
pub mod config;
pub mod lease;
pub mod lease_book;
pub mod limits;
pub mod link;
pub mod registry;
pub mod replica;
pub mod status;

/// The `redis` crate [`RedisLink`]'s commands are built with, for callers without their
/// own dependency on it.
pub use redis;

pub use breakers::{BreakerNotice, SharedBreakers};
pub use config::{ClusterConfig, RedisPassword};
pub use lease::{agent_resource, venue_resource, HeldLease, LeaseKeeper, LeaseStatus, Leases};
pub use limits::{SharedLimits, SharedPoolState};
pub use link::{ClusterError, RedisHealth, RedisLink};
pub use registry::{NodeRecord, NodeRegistry};
pub use replica::{LedgerReplica, ReplicaError};
pub use status::ClusterStatus;

/// HELP texts of every cluster metric.
pub fn describe() {
    link::describe();
    breakers::describe();
    registry::describe();
    lease::describe();
    replica::describe();
    limits::describe();
}
