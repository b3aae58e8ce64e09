//! This engine as a member of the cluster (only with `[cluster]`).
//!
//! Owns: starting and stopping what makes an engine a cluster member beyond its Redis
//! link — the shared circuit breakers (a [`BreakerBoard`] attached to the engine's store
//! before any connector or model pool is built, so every persisted breaker joins it, and
//! the bridge that publishes and applies openings) and the node record with its heartbeat
//! (started once the control API's address is known, removed at shutdown). Never: starts
//! anything for an engine without `[cluster]`, or blocks start-up on Redis (both parts
//! work through the lazy link and catch up when Redis answers).

use parking_lot::Mutex;

use orrery_actors::cluster::{ClusterConfig, NodeRegistry, RedisLink, SharedBreakers};
use orrery_actors::resilience::BreakerBoard;
use orrery_actors::store::Store;

/// The running member parts of one engine.
#[derive(Debug)]
pub struct ClusterMember {
    link: RedisLink,
    breakers: Mutex<Option<SharedBreakers>>,
    registry: Mutex<Option<NodeRegistry>>,
}

impl ClusterMember {
    /// Attaches the breaker board to `store` and starts sharing breakers. Call before the
    /// supervisor tree is built, inside the engine's runtime.
    pub fn start(link: RedisLink, store: &Store) -> Self {
        // The link's gauge exists from start (0 until a command reaches Redis), so an
        // alert on it fires for a Redis that was never reachable too.
        if link.health() == orrery_actors::cluster::RedisHealth::Unknown {
            metrics::gauge!(orrery_actors::cluster::link::METRIC_REDIS_UP).set(0.0);
        }
        let board = BreakerBoard::new();
        board.attach_to(store);
        let breakers = SharedBreakers::start(link.clone(), board);
        Self {
            link,
            breakers: Mutex::new(Some(breakers)),
            registry: Mutex::new(None),
        }
    }

    /// Starts the node record's heartbeat, with the control API's address.
    pub fn join(&self, config: &ClusterConfig, listen: Option<String>) {
        let registry = NodeRegistry::start(
            self.link.clone(),
            config.heartbeat,
            env!("CARGO_PKG_VERSION"),
            listen,
        );
        *self.registry.lock() = Some(registry);
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Removes the node record and stops sharing breakers (each bounded by the link's
    /// deadlines). Idempotent.
    pub async fn leave(&self) {
        let registry = self.registry.lock().take();
        if let Some(registry) = registry {
            registry.leave().await;
        }
        let breakers = self.breakers.lock().take();
        if let Some(breakers) = breakers {
            breakers.stop().await;
        }
    }
}
