//! The process's one link to the cluster's Redis.
//!
//! Owns: the `redis` connection manager (it reconnects by itself after a drop), a deadline
//! on every command, the key prefix and node id every cluster key and record carries, and
//! [`RedisHealth`] — whether the last command reached Redis — which shared limits, breakers
//! and leases read to decide whether to fall back. Never: retries a command (each caller
//! knows whether a retry is safe) or blocks start-up on Redis: the link connects lazily, so
//! an engine starts (in its fallback modes) while Redis is down and joins once it is up.
//!
//! Errors are typed ([`ClusterError`]): callers decide on `Unreachable` versus `Refused`
//! (Redis answered, and said no — a script's error), never on error text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue, RedisError};
use tokio::sync::watch;

use super::config::{ClusterConfig, RedisPassword};

/// Metric: 1 while the last Redis command succeeded, 0 after one failed or timed out.
pub const METRIC_REDIS_UP: &str = "orrery_cluster_redis_up";
/// Metric: Redis commands that failed, by reason (`timeout`, `io`, `unusable`, `refused`).
pub const METRIC_REDIS_ERRORS: &str = "orrery_cluster_redis_errors_total";
/// Metric: latency of Redis commands that got an answer.
pub const METRIC_REDIS_LATENCY: &str = "orrery_cluster_redis_command_seconds";

/// Why a cluster command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer within the deadline, or the connection failed: the command
    /// may or may not have been applied.
    #[error("redis at {url} unreachable: {reason}; the node works on its local fallbacks until it answers again")]
    Unreachable { url: String, reason: String },
    /// Redis answered with an error (a script refused, a wrong type): the command was not
    /// applied.
    #[error("redis at {url} refused a command: {reason}")]
    Refused { url: String, reason: String },
    /// The cluster settings cannot open a client (bad URL); reported at start.
    #[error("cluster.url: {0}")]
    Config(String),
}

/// Whether Redis answers, as the last command found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisHealth {
    /// No command has run yet.
    Unknown,
    Up,
    /// Down since this wall-clock millisecond, for this reason.
    Down {
        since_ms: i64,
        reason: String,
    },
}

impl RedisHealth {
    pub fn is_up(&self) -> bool {
        matches!(self, RedisHealth::Up)
    }
}

struct Inner {
    manager: ConnectionManager,
    id: Identity,
    health: watch::Sender<RedisHealth>,
    /// Commands that succeeded / failed since start (for status).
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Who a link speaks as and its deadlines; each link over them gets its own connection.
#[derive(Clone)]
struct Identity {
    client: Client,
    /// Shown in errors and status: the URL without user info.
    url: String,
    prefix: String,
    node_id: String,
    /// This process among nodes of one id (see [`RedisLink::instance`]).
    instance: String,
    command_timeout: Duration,
    connect_timeout: Duration,
}

impl Inner {
    /// A link's state over `id`, with a lazy connection manager of its own (it connects on
    /// its first command), health unknown and counters at 0.
    fn new(id: Identity) -> Result<Self, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(id.connect_timeout))
            .set_response_timeout(Some(id.command_timeout))
            // Reconnection is retried by the next command, not by a long backoff inside
            // the manager: a command has its own deadline.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(id.client.clone(), config)
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        let (health, _) = watch::channel(RedisHealth::Unknown);
        Ok(Self {
            manager,
            id,
            health,
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }
}

/// The link; cheap to clone (one connection manager behind an `Arc`).
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.inner.id.url)
            .field("node_id", &self.inner.id.node_id)
            .field("prefix", &self.inner.id.prefix)
            .finish()
    }
}

impl RedisLink {
    /// Opens the link without connecting (the first command connects). Call inside a
    /// tokio runtime, on a validated config.
    pub fn open(
        config: &ClusterConfig,
        password: Option<RedisPassword>,
    ) -> Result<Self, ClusterError> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        if let Some(pw) = &password {
            let settings = info.redis_settings().clone().set_password(pw.expose());
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner::new(Identity {
                client,
                url: config.shown_url(),
                prefix: config.key_prefix.clone(),
                node_id: config.node_id(),
                instance: uuid::Uuid::new_v4().simple().to_string(),
                command_timeout: config.command_timeout,
                connect_timeout: config.connect_timeout,
            })?),
        })
    }

    /// A second link to the same Redis (its own connection, deadlines as this one's), with
    /// a health of its own: for the operator's reads (`GET /api/cluster`), whose SCANs must
    /// not queue ahead of lease renewals on this link, nor mark Redis down for the node's
    /// shared limits when one of them times out.
    pub fn side_link(&self) -> Result<RedisLink, ClusterError> {
        Ok(Self {
            inner: Arc::new(Inner::new(self.inner.id.clone())?),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.id.node_id
    }

    /// A random id of this process, fixed for its life: two processes that share a node id
    /// (a copied config, a restart while the old process still runs) still differ by it,
    /// so a lease is never theirs both.
    pub fn instance(&self) -> &str {
        &self.inner.id.instance
    }

    /// `prefix + name`: every key the cluster writes.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.inner.id.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.inner.id.prefix
    }

    /// The URL as shown (no user info).
    pub fn url(&self) -> &str {
        &self.inner.id.url
    }

    pub fn command_timeout(&self) -> Duration {
        self.inner.id.command_timeout
    }

    /// Deadline of one connection attempt (for connections of their own, e.g. pub/sub).
    pub fn connect_timeout(&self) -> Duration {
        self.inner.id.connect_timeout
    }

    /// Every key matching `pattern` (a glob over full keys, prefix included), by SCAN:
    /// each round trip has the command deadline, and at most `max_keys` are returned so a
    /// huge keyspace cannot hold the caller.
    pub async fn scan(&self, pattern: &str, max_keys: usize) -> Result<Vec<String>, ClusterError> {
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500),
                )
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= max_keys {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        keys.truncate(max_keys);
        Ok(keys)
    }

    /// The health as the last command found it.
    pub fn health(&self) -> RedisHealth {
        self.inner.health.borrow().clone()
    }

    /// Changes of [`RedisHealth`], for whoever switches between shared and fallback.
    pub fn watch_health(&self) -> watch::Receiver<RedisHealth> {
        self.inner.health.subscribe()
    }

    /// Commands that succeeded and failed since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.ok.load(Ordering::Relaxed),
            self.inner.failed.load(Ordering::Relaxed),
        )
    }

    /// The client, for connections the manager cannot multiplex (pub/sub).
    pub fn client(&self) -> &Client {
        &self.inner.id.client
    }

    /// Runs `cmd` with the command deadline. A failure marks Redis down; an answer marks
    /// it up.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ClusterError> {
        let mut con = self.inner.manager.clone();
        self.deadline(async move { cmd.query_async::<T>(&mut con).await })
            .await
    }

    /// Runs a script invocation (EVALSHA, loading the script on NOSCRIPT) with the
    /// command deadline.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterError> {
        let mut con = self.inner.manager.clone();
        self.deadline(async move { invocation.invoke_async::<T>(&mut con).await })
            .await
    }

    /// Runs a pipeline (atomic when built with `.atomic()`) with the command deadline.
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, ClusterError> {
        let mut con = self.inner.manager.clone();
        self.deadline(async move { pipe.query_async::<T>(&mut con).await })
            .await
    }

    /// Pings Redis (health probes and `orrery cluster status`).
    pub async fn ping(&self) -> Result<Duration, ClusterError> {
        let started = std::time::Instant::now();
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }

    async fn deadline<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, ClusterError> {
        let started = std::time::Instant::now();
        let unreachable = |label: &'static str, reason: String| {
            (
                Some(label),
                Err(ClusterError::Unreachable {
                    url: self.inner.id.url.clone(),
                    reason,
                }),
            )
        };
        let (failure, result) = match tokio::time::timeout(self.inner.id.command_timeout, fut).await
        {
            Ok(Ok(value)) => (None, Ok(value)),
            Ok(Err(e)) if is_refusal(&e) => (
                None,
                Err(ClusterError::Refused {
                    url: self.inner.id.url.clone(),
                    reason: e.to_string(),
                }),
            ),
            // The manager's own response timeout fires first: still a timeout.
            Ok(Err(e)) if e.is_timeout() => unreachable("timeout", e.to_string()),
            Ok(Err(e)) if unusable(&e) => unreachable("unusable", e.to_string()),
            Ok(Err(e)) => unreachable("io", e.to_string()),
            Err(_) => unreachable(
                "timeout",
                format!(
                    "no answer within {}",
                    humantime::format_duration(self.inner.id.command_timeout)
                ),
            ),
        };
        match (failure, &result) {
            (Some(label), Err(ClusterError::Unreachable { reason, .. })) => {
                metrics::counter!(METRIC_REDIS_ERRORS, "reason" => label).increment(1);
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                let since_ms = match &*self.inner.health.borrow() {
                    RedisHealth::Down { since_ms, .. } => *since_ms,
                    _ => chrono::Utc::now().timestamp_millis(),
                };
                self.mark(RedisHealth::Down {
                    since_ms,
                    reason: reason.clone(),
                });
            }
            // An answer, even a refusal: Redis is up.
            _ => {
                metrics::histogram!(METRIC_REDIS_LATENCY).record(started.elapsed().as_secs_f64());
                if result.is_err() {
                    metrics::counter!(METRIC_REDIS_ERRORS, "reason" => "refused").increment(1);
                }
                self.inner.ok.fetch_add(1, Ordering::Relaxed);
                self.mark(RedisHealth::Up);
            }
        }
        result
    }

    fn mark(&self, health: RedisHealth) {
        let changed = self.inner.health.send_if_modified(|h| {
            let was_up = h.is_up();
            let now_up = health.is_up();
            let same_kind = was_up == now_up && !matches!(h, RedisHealth::Unknown);
            *h = health.clone();
            !same_kind
        });
        if changed {
            metrics::gauge!(METRIC_REDIS_UP).set(if health.is_up() { 1.0 } else { 0.0 });
            match &health {
                RedisHealth::Up => {
                    tracing::info!(url = %self.inner.id.url, node = %self.inner.id.node_id, "redis reachable")
                }
                RedisHealth::Down { reason, .. } => {
                    tracing::warn!(url = %self.inner.id.url, node = %self.inner.id.node_id, reason = %reason, "redis unreachable; shared limits fall back to local shares, leases cannot be renewed")
                }
                RedisHealth::Unknown => {}
            }
        }
    }
}

/// Whether Redis answered with an error of its own (the command was not applied), as
/// opposed to an I/O failure or a dropped connection, where it may have been.
fn is_refusal(e: &RedisError) -> bool {
    !(e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || unusable(e))
}

/// Errors with which Redis answers every command of this node alike — not authenticated,
/// a read-only replica, still loading, its master down: it answers, but serves nothing,
/// so the node works on its fallbacks as if Redis were unreachable.
fn unusable(e: &RedisError) -> bool {
    matches!(
        e.code(),
        Some("NOAUTH" | "WRONGPASS" | "READONLY" | "LOADING" | "MASTERDOWN")
    )
}

/// HELP texts of the link's metrics.
pub fn describe() {
    metrics::describe_gauge!(
        METRIC_REDIS_UP,
        "1 while the cluster's Redis answers this node's commands, 0 after a command failed or timed out."
    );
    metrics::describe_counter!(
        METRIC_REDIS_ERRORS,
        "Redis commands of this node that failed, by reason (timeout, io, unusable: NOAUTH, READONLY, LOADING or MASTERDOWN, refused)."
    );
    metrics::describe_histogram!(
        METRIC_REDIS_LATENCY,
        metrics::Unit::Seconds,
        "Latency of this node's Redis commands that got an answer."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::RedisServer;

    fn config(url: String) -> ClusterConfig {
        ClusterConfig {
            url,
            node_id: "n1".into(),
            key_prefix: "t:".into(),
            command_timeout: Duration::from_millis(300),
            ..ClusterConfig::default()
        }
    }

    #[tokio::test]
    async fn health_follows_a_redis_that_dies_and_returns() {
        let mut server = RedisServer::start().unwrap();
        let link = RedisLink::open(&config(server.url()), None).unwrap();
        assert_eq!(link.health(), RedisHealth::Unknown);
        assert_eq!(link.key("lease:x"), "t:lease:x");
        link.ping().await.unwrap();
        assert!(link.health().is_up());

        server.kill();
        let err = link.ping().await.unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
        assert!(matches!(link.health(), RedisHealth::Down { .. }));

        server.restart().unwrap();
        // The manager reconnects on the next command (the first may still see the drop).
        let mut up = false;
        for _ in 0..20 {
            if link.ping().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "the link never reconnected");
        assert!(link.health().is_up());
        let (ok, failed) = link.counts();
        assert!(ok >= 2 && failed >= 1, "{ok} {failed}");
    }

    #[tokio::test]
    async fn a_hung_redis_is_unreachable_within_the_command_deadline() {
        let server = RedisServer::start().unwrap();
        let link = RedisLink::open(&config(server.url()), None).unwrap();
        link.ping().await.unwrap();
        server.pause();
        let started = std::time::Instant::now();
        let err = link.ping().await.unwrap_err();
        server.resume();
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    /// The operator's reads go over a side link: one that times out marks only that link
    /// down, never the one the node's shared limits and leases watch.
    #[tokio::test]
    async fn a_side_link_fails_on_its_own() {
        let server = RedisServer::start().unwrap();
        let link = RedisLink::open(&config(server.url()), None).unwrap();
        link.ping().await.unwrap();
        let side = link.side_link().unwrap();
        assert_eq!(
            (side.node_id(), side.instance(), side.prefix()),
            (link.node_id(), link.instance(), link.prefix())
        );
        side.ping().await.unwrap();
        server.pause();
        let err = side.scan("t:*", 10).await.unwrap_err();
        server.resume();
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
        assert!(matches!(side.health(), RedisHealth::Down { .. }));
        assert!(link.health().is_up(), "{:?}", link.health());
        link.ping().await.unwrap();
    }

    #[tokio::test]
    async fn the_password_is_sent_and_a_redis_error_is_a_refusal() {
        let server = RedisServer::start_with(Some("pw-1")).unwrap();
        let c = ClusterConfig {
            password_env: Some("PW".into()),
            ..config(server.url())
        };
        let env = |n: &str| (n == "PW").then(|| "pw-1".to_string());
        let link = RedisLink::open(&c, c.password(&env)).unwrap();
        link.ping().await.unwrap();
        let without = RedisLink::open(&c, None).unwrap();
        let err = without.ping().await.unwrap_err();
        assert!(!format!("{err}").contains("pw-1"), "{err}");
        // Not authenticated: Redis answers but serves nothing, so it counts as down.
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
        assert!(matches!(without.health(), RedisHealth::Down { .. }));
        // A wrong-type command is answered with an error: Redis is up, nothing applied.
        let _: () = link
            .query(redis::cmd("SET").arg("t:k").arg("v"))
            .await
            .unwrap();
        let err = link
            .query::<i64>(redis::cmd("INCR").arg("t:k"))
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::Refused { .. }), "{err:?}");
        assert!(link.health().is_up());
    }
}
