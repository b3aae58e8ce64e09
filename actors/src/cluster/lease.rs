//! Leases: exactly one owner at a time per venue account and per agent, with a fencing
//! token that grows with every new owner.
//!
//! Owns: the lease scripts (acquire-if-free-or-mine / renew-if-mine, release-if-mine —
//! each one atomic Lua run) and the [`LeaseKeeper`] task that acquires and renews this node's
//! resources on a timer (a follower only while its parent is held here, see
//! [`Leases::follow`]), feeding each answer to [`Leases`] (the shared read side every
//! sender consults, [`Leases::held`]; see [`super::lease_book`]). Never: sends orders or
//! writes the ledger (the gateway does, with the token it reads here), or trusts Redis to
//! tell it when to stop.
//!
//! ## Keys (`P` = the cluster's key prefix)
//!
//! - `P lease:{resource}` HASH {owner, token, since_ms, renewed_ms}, PEXPIRE = `lease_ttl`;
//!   resource is `venue:{name}` or `agent:{name}`.
//! - `P fence:{resource}`: the fencing counter, INCR'd once per new owner, never expires,
//!   so a token is never handed out twice even after the lease key expired.
//!
//! ## Stopping before expiry, whatever Redis does
//!
//! Each successful acquire or renew sets the holder's *safe until* instant: the monotonic
//! time at which the request was **sent**, plus `lease_ttl`, minus a safety margin
//! (`max(lease_ttl / 5, 2 × command_timeout)`). Redis started the key's TTL no earlier
//! than the send, so the lease cannot expire in Redis before `sent + ttl`; the holder
//! stops `margin` before that. [`Leases::held`] answers `None` past safe-until, so every
//! send that checks it stops in time even while Redis hangs (SIGSTOP) and no renewal gets
//! an answer. Clocks: only this process's monotonic clock and Redis's own TTL are used; no
//! wall clocks are compared across machines. The margin covers a Redis whose clock runs
//! faster than ours by up to `margin / ttl` (20% by default) and a send that is checked
//! just before safe-until and takes up to `2 × command_timeout` to reach the venue's door.
//!
//! ## Log lines and metrics
//!
//! `info` `lease acquired` (by the gateway, after its takeover) / `lease held` (here: resource,
//! token, previous owner), `warn` on a failed renewal and on a lease lost (expired locally or
//! taken), `info` on release. Metrics: [`METRIC_LEASE_HELD`], [`METRIC_LEASE_CHANGES`],
//! [`METRIC_LEASE_TOKEN`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::ClusterConfig;
pub use super::lease_book::{HeldLease, LeaseStatus, Leases};
use super::link::{ClusterError, RedisLink};

/// Metric: 1 while this node holds the lease on `resource`, else 0.
pub const METRIC_LEASE_HELD: &str = "orrery_cluster_lease_held";
/// Metric: lease changes by resource and change (acquired, renewed_failed, lost, released).
pub const METRIC_LEASE_CHANGES: &str = "orrery_cluster_lease_changes_total";
/// Metric: the fencing token of the lease this node holds on `resource` (0: none).
pub const METRIC_LEASE_TOKEN: &str = "orrery_cluster_lease_token";

/// Acquire-if-free-or-mine, renew-if-mine. KEYS: lease, fence. ARGV: node, ttl_ms, now_ms,
/// instance. Answers {code, token, owner, pttl}: 2 newly acquired (fence INCR'd), 1 renewed,
/// 0 held by `owner` for `pttl` more ms. "Mine" is this node id *and* this process
/// (`instance`): a second process started with the same node id, or a restarted one while
/// its predecessor's lease lasts, is refused like any other node, never handed the same
/// token.
const ACQUIRE_LUA: &str = r#"
local owner, instance = unpack(redis.call('HMGET', KEYS[1], 'owner', 'instance'))
if owner == ARGV[1] and instance == ARGV[4] then
  redis.call('HSET', KEYS[1], 'renewed_ms', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('HGET', KEYS[1], 'token')), owner, tonumber(ARGV[2])}
elseif owner then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'token')) or 0, owner, redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'instance', ARGV[4], 'token', token, 'since_ms', ARGV[3], 'renewed_ms', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {2, token, ARGV[1], tonumber(ARGV[2])}
"#;

/// Release-if-mine. KEYS: lease. ARGV: node, token, instance. Answers 1 when deleted.
const RELEASE_LUA: &str = r#"
local owner, token, instance = unpack(redis.call('HMGET', KEYS[1], 'owner', 'token', 'instance'))
if owner == ARGV[1] and token == ARGV[2] and instance == ARGV[3] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// `venue:{name}`.
pub fn venue_resource(venue: &str) -> String {
    format!("venue:{venue}")
}

/// `agent:{name}`.
pub fn agent_resource(agent: &str) -> String {
    format!("agent:{agent}")
}

/// What one acquire/renew attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// This node holds the lease with `token`; `new` when it just became the owner.
    Held { token: u64, new: bool },
    /// Another node holds it (`token`), for `pttl_ms` more.
    Taken {
        owner: String,
        token: u64,
        pttl_ms: i64,
    },
}

/// The lease scripts over one link: one atomic round trip each.
#[derive(Clone)]
pub struct LeaseScripts {
    link: RedisLink,
    acquire: Arc<redis::Script>,
    release: Arc<redis::Script>,
}

impl LeaseScripts {
    pub fn new(link: RedisLink) -> Self {
        Self {
            link,
            acquire: Arc::new(redis::Script::new(ACQUIRE_LUA)),
            release: Arc::new(redis::Script::new(RELEASE_LUA)),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Acquires `resource` if it is free, renews it if this node holds it.
    pub async fn acquire(
        &self,
        resource: &str,
        ttl: Duration,
    ) -> Result<LeaseAnswer, ClusterError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut inv = self.acquire.prepare_invoke();
        inv.key(self.link.key(&format!("lease:{resource}")))
            .key(self.link.key(&format!("fence:{resource}")))
            .arg(self.link.node_id())
            .arg(ttl.as_millis() as u64)
            .arg(now_ms)
            .arg(self.link.instance());
        let (code, token, owner, pttl): (i64, i64, String, i64) = self.link.invoke(inv).await?;
        let token =
            u64::try_from(token).map_err(|_| self.malformed(resource, "a negative token"))?;
        match code {
            2 | 1 => Ok(LeaseAnswer::Held {
                token,
                new: code == 2,
            }),
            0 => Ok(LeaseAnswer::Taken {
                owner,
                token,
                pttl_ms: pttl,
            }),
            _ => Err(self.malformed(resource, "an unknown answer code")),
        }
    }

    /// Releases `resource` if this node holds it with `token`; true when released.
    pub async fn release(&self, resource: &str, token: u64) -> Result<bool, ClusterError> {
        let mut inv = self.release.prepare_invoke();
        inv.key(self.link.key(&format!("lease:{resource}")))
            .arg(self.link.node_id())
            .arg(token)
            .arg(self.link.instance());
        let released: i64 = self.link.invoke(inv).await?;
        Ok(released == 1)
    }

    fn malformed(&self, resource: &str, what: &str) -> ClusterError {
        ClusterError::Refused {
            url: self.link.url().to_string(),
            reason: format!("the lease script for {resource} answered {what}"),
        }
    }
}

/// The lease timings of one node, from `[cluster]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    pub ttl: Duration,
    pub renew_every: Duration,
    /// Stop using a lease this long before `sent + ttl`.
    pub margin: Duration,
}

impl LeaseTimings {
    pub fn of(config: &ClusterConfig) -> Self {
        Self {
            ttl: config.lease_ttl,
            renew_every: config.renew_period(),
            margin: config.lease_margin(),
        }
    }

    fn usable(&self) -> Duration {
        self.ttl.saturating_sub(self.margin)
    }
}

/// Acquires and renews this node's leases on a timer; releases them on shutdown.
pub struct LeaseKeeper {
    scripts: LeaseScripts,
    leases: Leases,
    timings: LeaseTimings,
}

impl LeaseKeeper {
    /// A keeper for every resource of `leases` (see [`Leases::new`]).
    pub fn new(link: RedisLink, leases: Leases, timings: LeaseTimings) -> Self {
        Self {
            scripts: LeaseScripts::new(link),
            leases,
            timings,
        }
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// One round: every resource is acquired or renewed, concurrently (each under the
    /// link's command deadline), then the followers ([`Leases::follow`]): each is acquired
    /// or renewed while this node holds the lease it follows, else handed back; then
    /// expired leases are marked lost.
    pub async fn tick(&self) {
        let (own, followers) = self.leases.resources();
        futures::future::join_all(own.iter().map(|r| self.attempt(r))).await;
        let beside = followers.iter().map(|(resource, parent)| async move {
            if self.leases.held(parent).is_some() {
                self.attempt(resource).await;
            } else {
                self.hand_back(resource, parent).await;
            }
        });
        futures::future::join_all(beside).await;
        self.leases.expire(Instant::now());
    }

    async fn attempt(&self, resource: &str) {
        let sent = Instant::now();
        let outcome = self.scripts.acquire(resource, self.timings.ttl).await;
        self.leases
            .apply(resource, sent, self.timings.usable(), &outcome);
    }

    /// A follower whose parent this node does not hold: released if held (the parent's
    /// owner takes it at its next tick instead of after the TTL), then left waiting.
    async fn hand_back(&self, resource: &str, parent: &str) {
        if let Some(held) = self.leases.held(resource) {
            match self.scripts.release(resource, held.token).await {
                Ok(_) => tracing::info!(
                    resource,
                    parent,
                    token = held.token,
                    "lease handed back: it follows a lease this node no longer holds"
                ),
                Err(e) => {
                    tracing::warn!(resource, parent, error = %e, "lease hand-back failed; it expires by its TTL")
                }
            }
            self.leases.released(resource);
        }
        self.leases.waiting(resource);
    }

    /// Runs until `stop` turns true, then releases every lease it holds. A tick runs at
    /// once, then every `renew_every`; between ticks, a held lease's safe-until is
    /// watched so it is marked lost on time even while a tick waits for a hung Redis.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(self.timings.renew_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let tick = self.tick();
                    tokio::pin!(tick);
                    // Expiry is checked while the tick waits for Redis.
                    loop {
                        let next_expiry = self.next_safe_until();
                        tokio::select! {
                            _ = &mut tick => break,
                            _ = sleep_until_opt(next_expiry) => self.leases.expire(Instant::now()),
                        }
                    }
                }
                _ = sleep_until_opt(self.next_safe_until()) => self.leases.expire(Instant::now()),
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        self.release_all().await;
    }

    fn next_safe_until(&self) -> Option<Instant> {
        self.leases.next_safe_until()
    }

    /// Releases every lease this node holds (clean shutdown), so another node takes over
    /// at once instead of after the TTL.
    pub async fn release_all(&self) {
        for (resource, token) in self.leases.held_all() {
            match self.scripts.release(&resource, token).await {
                Ok(true) => tracing::info!(resource = %resource, token, "lease released"),
                Ok(false) => {
                    tracing::info!(resource = %resource, token, "lease already gone at release")
                }
                Err(e) => {
                    tracing::warn!(resource = %resource, token, error = %e, "lease release failed; it expires by its TTL")
                }
            }
            self.leases.released(&resource);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// HELP texts of the lease metrics.
pub fn describe() {
    metrics::describe_gauge!(
        METRIC_LEASE_HELD,
        "1 while this node holds the lease on a resource (venue:<name> or agent:<name>) and may use it, else 0."
    );
    metrics::describe_counter!(
        METRIC_LEASE_CHANGES,
        "Lease changes on this node by resource and change (acquired, renewed_failed, lost, released)."
    );
    metrics::describe_gauge!(
        METRIC_LEASE_TOKEN,
        "Fencing token of the lease this node holds on a resource (0 while it holds none)."
    );
}

#[cfg(test)]
mod tests;
