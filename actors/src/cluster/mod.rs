//! The cluster: several engine processes coordinating through Redis.
//!
//! Owns: the `[cluster]` settings ([`ClusterConfig`]), the one Redis link of a process
//! ([`RedisLink`]: connection manager, a deadline on every command, key prefix, node id,
//! and the link's health that everything cluster-wide falls back on). Never: anything for
//! a process without a `[cluster]` section — such a process never opens a socket to Redis
//! and behaves exactly as a single engine.
//!
//! Redis is shared state, not the truth: each node's sled stays its own durable record.
//! What the cluster adds is coordination — budgets several nodes draw from, breakers they
//! share, and exactly one owner at a time per venue account and per agent.

pub mod config;
pub mod limits;
pub mod link;

pub use config::{ClusterConfig, RedisPassword};
pub use limits::{SharedLimits, SharedPoolState};
pub use link::{ClusterError, RedisHealth, RedisLink};

/// HELP texts of every cluster metric.
pub fn describe() {
    link::describe();
    limits::describe();
}
