//! This node's record in the cluster: `P node:{node_id}`.
//!
//! Owns: the heartbeat task that writes the record (HASH `started_ms`, `seen_ms`, `pid`,
//! `version`, `listen` — the control API's address — with PEXPIRE 3 × heartbeat, both in
//! one atomic round trip), its removal on a clean shutdown, and reading records back
//! ([`NodeRecord::from_fields`]) for `orrery cluster status`. Never: decides anything from
//! other nodes' records (leases do that); a node whose beats fail keeps running on its
//! own and its record expires after three missed beats, which is what "not alive" means.
//!
//! Logs `cluster node joined` at the first beat that reaches Redis, `cluster node
//! rejoined` at the first after failures, and `cluster node left` when the record is
//! removed at shutdown.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::link::{ClusterError, RedisLink};
use crate::clock::Millis;

/// Metric: heartbeats of this node by outcome (`ok`, `failed`).
pub const METRIC_HEARTBEATS: &str = "orrery_cluster_heartbeats_total";

/// A node's record, as written and as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub started_ms: Millis,
    pub seen_ms: Millis,
    pub pid: u32,
    pub version: String,
    /// The control API's address (`host:port`), empty when the node serves none.
    pub listen: String,
}

impl NodeRecord {
    /// The record from the HASH fields of `node:{node_id}`; a missing or malformed field
    /// is an error naming it.
    pub fn from_fields(node_id: &str, fields: &HashMap<String, String>) -> Result<Self, String> {
        let int = |name: &str| -> Result<i64, String> {
            fields
                .get(name)
                .ok_or_else(|| format!("node {node_id}: field {name} missing"))?
                .parse::<i64>()
                .map_err(|e| format!("node {node_id}: field {name}: {e}"))
        };
        Ok(Self {
            node_id: node_id.to_string(),
            started_ms: int("started_ms")?,
            seen_ms: int("seen_ms")?,
            pid: u32::try_from(int("pid")?).map_err(|e| format!("node {node_id}: pid: {e}"))?,
            version: fields.get("version").cloned().unwrap_or_default(),
            listen: fields.get("listen").cloned().unwrap_or_default(),
        })
    }
}

/// The key of `node_id`'s record.
pub fn node_key(link: &RedisLink, node_id: &str) -> String {
    link.key(&format!("node:{node_id}"))
}

/// The running heartbeat; [`NodeRegistry::leave`] stops it and removes the record.
#[derive(Debug)]
pub struct NodeRegistry {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    bound: Duration,
}

impl NodeRegistry {
    /// Starts beating every `heartbeat`. `version` is the engine's, `listen` the control
    /// API's address if it serves one. Call inside a tokio runtime.
    pub fn start(
        link: RedisLink,
        heartbeat: Duration,
        version: &str,
        listen: Option<String>,
    ) -> Self {
        for outcome in ["ok", "failed"] {
            metrics::counter!(METRIC_HEARTBEATS, "outcome" => outcome).increment(0);
        }
        let (stop, stopped) = oneshot::channel();
        let bound = link.command_timeout() * 2 + Duration::from_millis(200);
        let beat = Beat {
            key: node_key(&link, link.node_id()),
            ttl_ms: u64::try_from(heartbeat.as_millis() * 3).unwrap_or(u64::MAX),
            started_ms: chrono::Utc::now().timestamp_millis(),
            version: version.to_string(),
            listen: listen.unwrap_or_default(),
            link,
        };
        let task = tokio::spawn(beat.run(heartbeat, stopped));
        Self {
            stop: Some(stop),
            task: Some(task),
            bound,
        }
    }

    /// Stops the beats and deletes the record (bounded by the command deadline).
    pub async fn leave(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(self.bound, task).await.is_err() {
                tracing::warn!("cluster node record not removed in time; it expires on its own");
            }
        }
    }
}

impl Drop for NodeRegistry {
    fn drop(&mut self) {
        // Dropped without `leave`: stop beating; the record expires after 3 beats.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Beat {
    link: RedisLink,
    key: String,
    ttl_ms: u64,
    started_ms: Millis,
    version: String,
    listen: String,
}

impl Beat {
    async fn run(self, heartbeat: Duration, mut stopped: oneshot::Receiver<()>) {
        let mut ticks = tokio::time::interval(heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = Joined::Never;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = ticks.tick() => {}
            }
            match self.once().await {
                Ok(()) => {
                    metrics::counter!(METRIC_HEARTBEATS, "outcome" => "ok").increment(1);
                    match state {
                        Joined::Never => {
                            tracing::info!(node = %self.link.node_id(), key = %self.key, listen = %self.listen, "cluster node joined")
                        }
                        Joined::Lost => {
                            tracing::info!(node = %self.link.node_id(), "cluster node rejoined")
                        }
                        Joined::Yes => {}
                    }
                    state = Joined::Yes;
                }
                Err(e) => {
                    metrics::counter!(METRIC_HEARTBEATS, "outcome" => "failed").increment(1);
                    if state == Joined::Yes {
                        tracing::warn!(node = %self.link.node_id(), error = %e, "cluster heartbeat failed; the node record expires after 3 missed beats");
                        state = Joined::Lost;
                    }
                }
            }
        }
        match self
            .link
            .query::<i64>(redis::cmd("DEL").arg(&self.key))
            .await
        {
            Ok(_) => tracing::info!(node = %self.link.node_id(), "cluster node left"),
            Err(e) => {
                tracing::warn!(node = %self.link.node_id(), error = %e, "cluster node record not removed; it expires on its own")
            }
        }
    }

    async fn once(&self) -> Result<(), ClusterError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&self.key)
            .arg("started_ms")
            .arg(self.started_ms)
            .arg("seen_ms")
            .arg(chrono::Utc::now().timestamp_millis())
            .arg("pid")
            .arg(std::process::id())
            .arg("version")
            .arg(&self.version)
            .arg("listen")
            .arg(&self.listen)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.key)
            .arg(self.ttl_ms)
            .ignore();
        self.link.pipeline::<()>(&pipe).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joined {
    Never,
    Yes,
    Lost,
}

/// HELP text of the registry's metric.
pub fn describe() {
    metrics::describe_counter!(
        METRIC_HEARTBEATS,
        "Heartbeats of this node's cluster record (node:{node_id}), by outcome (ok, failed)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::testkit::RedisServer;

    #[tokio::test]
    async fn the_record_is_written_with_a_ttl_and_removed_on_leave() {
        let server = RedisServer::start().unwrap();
        let config = ClusterConfig {
            url: server.url(),
            node_id: "n1".into(),
            key_prefix: "t:".into(),
            ..ClusterConfig::default()
        };
        let link = RedisLink::open(&config, None).unwrap();
        let registry = NodeRegistry::start(
            link.clone(),
            Duration::from_millis(200),
            "1.2.3",
            Some("127.0.0.1:9000".into()),
        );
        let key = node_key(&link, "n1");
        assert_eq!(key, "t:node:n1");
        // The first beat is immediate; wait for it on the server (bounded).
        let mut fields = HashMap::new();
        for _ in 0..100 {
            fields = link
                .query::<HashMap<String, String>>(redis::cmd("HGETALL").arg(&key))
                .await
                .unwrap();
            if !fields.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let record = NodeRecord::from_fields("n1", &fields).unwrap();
        assert_eq!(record.pid, std::process::id());
        assert_eq!(record.version, "1.2.3");
        assert_eq!(record.listen, "127.0.0.1:9000");
        assert!(record.seen_ms >= record.started_ms);
        let pttl: i64 = link.query(redis::cmd("PTTL").arg(&key)).await.unwrap();
        assert!(pttl > 0 && pttl <= 600, "{pttl}");

        registry.leave().await;
        let exists: i64 = link.query(redis::cmd("EXISTS").arg(&key)).await.unwrap();
        assert_eq!(exists, 0);

        fields.remove("pid");
        let err = NodeRecord::from_fields("n1", &fields).unwrap_err();
        assert!(err.contains("pid"), "{err}");
    }
}
