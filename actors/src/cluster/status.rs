//! What the cluster looks like in Redis, read in one pass: for `orrery cluster status`
//! and `GET /api/cluster`.
//!
//! Owns: [`ClusterStatus::read`] — Redis health (URL without user info, ping latency,
//! server version from `INFO server`), the node records (`P node:*`), the leases
//! (`P lease:*` with their fencing counters `P fence:*`), the shared limits in use
//! (`P limit:{scope}:meta` and `:nodes`) and the shared breakers still in force
//! (`P breaker:*`), per the key schema of the cluster (README, "Cluster"). Never: writes
//! anything, or fails on one malformed record: it is listed in `problems` and the rest
//! is shown. Every read has the link's command deadline; an unreachable Redis is an error
//! ([`ClusterError::Unreachable`]) so the caller can say so and exit non-zero.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::breakers::{self, BreakerNotice};
use super::link::{ClusterError, RedisLink};
use super::registry::NodeRecord;
use crate::clock::Millis;

/// At most this many records of each kind are read.
const MAX_KEYS: usize = 10_000;

/// Redis as this reader found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisStatus {
    /// The URL without user info.
    pub url: String,
    pub up: bool,
    /// Round trip of one PING, in milliseconds.
    pub ping_ms: f64,
    /// `redis_version` from `INFO server`, when Redis reports it.
    pub version: Option<String>,
}

/// One node record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: String,
    pub started_ms: Millis,
    pub seen_ms: Millis,
    /// Milliseconds since the node's last heartbeat (by this reader's clock).
    pub seen_ago_ms: Millis,
    pub pid: u32,
    pub version: String,
    /// The node's control API address; empty when it serves none.
    pub listen: String,
    /// The record has not expired: the node beat within its last 3 heartbeats.
    pub alive: bool,
    /// Time until the record expires unless the node beats again.
    pub expires_in_ms: Option<i64>,
}

/// One ownership lease (`P lease:{resource}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// `venue:{name}` or `agent:{name}`.
    pub resource: String,
    pub owner: String,
    pub token: u64,
    pub since_ms: Option<Millis>,
    pub renewed_ms: Option<Millis>,
    /// Time until the lease expires unless renewed.
    pub expires_in_ms: Option<i64>,
    /// The resource's fencing counter (`P fence:{resource}`): the last token handed out.
    pub fence: Option<u64>,
}

/// One shared limit scope (`P limit:{scope}:meta` and `:nodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitStatus {
    pub scope: String,
    pub kind: String,
    pub limit: Option<serde_json::Number>,
    pub window_ms: Option<serde_json::Number>,
    pub used: Option<serde_json::Number>,
    pub updated_ms: Option<Millis>,
    /// Units used by each node in the current window.
    pub nodes: BTreeMap<String, serde_json::Number>,
}

/// One shared breaker still in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerStatus {
    #[serde(flatten)]
    pub notice: BreakerNotice,
    /// Time until the record expires (the cooldown left).
    pub expires_in_ms: Option<i64>,
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub redis: RedisStatus,
    pub key_prefix: String,
    /// The node id of whoever read this status (`[cluster] node_id`, or hostname-pid).
    pub reader_node: String,
    /// When it was read (Unix ms).
    pub read_ms: Millis,
    pub nodes: Vec<NodeStatus>,
    pub leases: Vec<LeaseStatus>,
    pub limits: Vec<LimitStatus>,
    pub breakers: Vec<BreakerStatus>,
    /// Records that could not be read (key and why); the rest is still shown.
    pub problems: Vec<String>,
}

impl ClusterStatus {
    /// Reads everything through `link`.
    pub async fn read(link: &RedisLink) -> Result<Self, ClusterError> {
        // The first command may open the connection; the second measures the round trip.
        link.ping().await?;
        let ping = link.ping().await?;
        let info: String = link.query(redis::cmd("INFO").arg("server")).await?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_string());
        let now = chrono::Utc::now().timestamp_millis();
        let mut problems = Vec::new();
        let nodes = read_nodes(link, now, &mut problems).await?;
        let leases = read_leases(link, &mut problems).await?;
        let limits = read_limits(link, &mut problems).await?;
        let breakers = read_breakers(link, now).await?;
        Ok(Self {
            redis: RedisStatus {
                url: link.url().to_string(),
                up: true,
                ping_ms: ping.as_secs_f64() * 1000.0,
                version,
            },
            key_prefix: link.prefix().to_string(),
            reader_node: link.node_id().to_string(),
            read_ms: now,
            nodes,
            leases,
            limits,
            breakers,
            problems,
        })
    }
}

/// The part of `key` after `prefix` and before `suffix`.
fn middle<'a>(key: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)?.strip_suffix(suffix)
}

/// A hash and its PTTL in one round trip (PTTL: `None` when the key has no expiry or is
/// gone).
async fn hash_and_ttl(
    link: &RedisLink,
    key: &str,
) -> Result<(HashMap<String, String>, Option<i64>), ClusterError> {
    let mut pipe = redis::pipe();
    pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key);
    let (fields, pttl): (HashMap<String, String>, i64) = link.pipeline(&pipe).await?;
    Ok((fields, (pttl >= 0).then_some(pttl)))
}

async fn read_nodes(
    link: &RedisLink,
    now: Millis,
    problems: &mut Vec<String>,
) -> Result<Vec<NodeStatus>, ClusterError> {
    let prefix = link.key("node:");
    let mut nodes = Vec::new();
    for key in link.scan(&format!("{prefix}*"), MAX_KEYS).await? {
        let Some(id) = key.strip_prefix(&prefix) else {
            continue;
        };
        let (fields, ttl) = hash_and_ttl(link, &key).await?;
        if fields.is_empty() {
            continue; // expired between SCAN and the read
        }
        match NodeRecord::from_fields(id, &fields) {
            Ok(r) => nodes.push(NodeStatus {
                seen_ago_ms: (now - r.seen_ms).max(0),
                alive: ttl.is_some_and(|t| t > 0),
                expires_in_ms: ttl,
                node_id: r.node_id,
                started_ms: r.started_ms,
                seen_ms: r.seen_ms,
                pid: r.pid,
                version: r.version,
                listen: r.listen,
            }),
            Err(e) => problems.push(format!("{key}: {e}")),
        }
    }
    Ok(nodes)
}

fn parse_opt<T: std::str::FromStr>(
    fields: &HashMap<String, String>,
    name: &str,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    let raw = fields.get(name)?;
    match raw.parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{key}: field {name} `{raw}`: {e}"));
            None
        }
    }
}

async fn read_leases(
    link: &RedisLink,
    problems: &mut Vec<String>,
) -> Result<Vec<LeaseStatus>, ClusterError> {
    let prefix = link.key("lease:");
    let mut leases = Vec::new();
    for key in link.scan(&format!("{prefix}*"), MAX_KEYS).await? {
        let Some(resource) = key.strip_prefix(&prefix) else {
            continue;
        };
        let (fields, ttl) = hash_and_ttl(link, &key).await?;
        if fields.is_empty() {
            continue;
        }
        let Some(owner) = fields.get("owner").cloned() else {
            problems.push(format!("{key}: field owner missing"));
            continue;
        };
        let Some(token) = parse_opt::<u64>(&fields, "token", &key, problems) else {
            if !fields.contains_key("token") {
                problems.push(format!("{key}: field token missing"));
            }
            continue;
        };
        let fence: Option<String> = link
            .query(redis::cmd("GET").arg(link.key(&format!("fence:{resource}"))))
            .await?;
        let fence = match fence.map(|f| f.parse::<u64>()) {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                problems.push(format!("fence:{resource}: {e}"));
                None
            }
            None => None,
        };
        leases.push(LeaseStatus {
            resource: resource.to_string(),
            owner,
            token,
            since_ms: parse_opt(&fields, "since_ms", &key, problems),
            renewed_ms: parse_opt(&fields, "renewed_ms", &key, problems),
            expires_in_ms: ttl,
            fence,
        });
    }
    Ok(leases)
}

async fn read_limits(
    link: &RedisLink,
    problems: &mut Vec<String>,
) -> Result<Vec<LimitStatus>, ClusterError> {
    let prefix = link.key("limit:");
    let mut limits = Vec::new();
    for key in link.scan(&format!("{prefix}*:meta"), MAX_KEYS).await? {
        let Some(scope) = middle(&key, &prefix, ":meta") else {
            continue;
        };
        let meta: HashMap<String, String> = link.query(redis::cmd("HGETALL").arg(&key)).await?;
        if meta.is_empty() {
            continue;
        }
        let nodes_key = link.key(&format!("limit:{scope}:nodes"));
        let per_node: HashMap<String, String> =
            link.query(redis::cmd("HGETALL").arg(&nodes_key)).await?;
        let mut nodes = BTreeMap::new();
        for (node, units) in per_node {
            match units.parse::<serde_json::Number>() {
                Ok(n) => {
                    nodes.insert(node, n);
                }
                Err(e) => problems.push(format!("{nodes_key}: node {node} `{units}`: {e}")),
            }
        }
        limits.push(LimitStatus {
            scope: scope.to_string(),
            kind: meta.get("kind").cloned().unwrap_or_default(),
            limit: parse_opt(&meta, "limit", &key, problems),
            window_ms: parse_opt(&meta, "window_ms", &key, problems),
            used: parse_opt(&meta, "used", &key, problems),
            updated_ms: parse_opt(&meta, "updated_ms", &key, problems),
            nodes,
        });
    }
    Ok(limits)
}

async fn read_breakers(link: &RedisLink, now: Millis) -> Result<Vec<BreakerStatus>, ClusterError> {
    Ok(breakers::read_records(link)
        .await?
        .into_iter()
        .filter(|n| n.until_ms > now)
        .map(|notice| BreakerStatus {
            expires_in_ms: Some(notice.until_ms - now),
            notice,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::testkit::RedisServer;

    #[tokio::test]
    async fn reads_every_kind_of_record_and_lists_malformed_ones() {
        let server = RedisServer::start().unwrap();
        let config = ClusterConfig {
            url: server.url(),
            node_id: "reader".into(),
            key_prefix: "s:".into(),
            ..ClusterConfig::default()
        };
        let link = RedisLink::open(&config, None).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let run = |args: &[&str]| {
            let mut c = redis::cmd(args[0]);
            for a in &args[1..] {
                c.arg(*a);
            }
            c
        };
        let seen = (now - 500).to_string();
        for cmd in [
            run(&[
                "HSET",
                "s:node:a",
                "started_ms",
                "1",
                "seen_ms",
                &seen,
                "pid",
                "42",
                "version",
                "0.1.0",
                "listen",
                "127.0.0.1:9",
            ]),
            run(&["PEXPIRE", "s:node:a", "3000"]),
            run(&["HSET", "s:node:bad", "seen_ms", "x"]),
            run(&[
                "HSET",
                "s:lease:venue:hl",
                "owner",
                "a",
                "token",
                "7",
                "since_ms",
                "5",
                "renewed_ms",
                "6",
            ]),
            run(&["PEXPIRE", "s:lease:venue:hl", "9000"]),
            run(&["SET", "s:fence:venue:hl", "7"]),
            run(&[
                "HSET",
                "s:limit:hl-weight:meta",
                "kind",
                "sliding_window",
                "limit",
                "1200",
                "window_ms",
                "60000",
                "used",
                "300",
                "updated_ms",
                "9",
            ]),
            run(&["HSET", "s:limit:hl-weight:nodes", "a", "200", "b", "100"]),
        ] {
            let _: redis::Value = link.query(&cmd).await.unwrap();
        }
        let notice = BreakerNotice {
            target: "hl".into(),
            state: crate::resilience::BreakerState::Open,
            until_ms: now + 20_000,
            node: "a".into(),
            reason: "failure threshold reached".into(),
        };
        let _: () = link
            .query(
                redis::cmd("SET")
                    .arg("s:breaker:hl")
                    .arg(serde_json::to_string(&notice).unwrap())
                    .arg("PX")
                    .arg(20_000),
            )
            .await
            .unwrap();

        let status = ClusterStatus::read(&link).await.unwrap();
        assert!(status.redis.up);
        assert!(status
            .redis
            .version
            .as_deref()
            .is_some_and(|v| !v.is_empty()));
        assert_eq!(status.nodes.len(), 1, "{status:?}");
        let a = &status.nodes[0];
        assert_eq!((a.node_id.as_str(), a.pid, a.alive), ("a", 42, true));
        assert!(a.seen_ago_ms >= 500, "{}", a.seen_ago_ms);
        assert_eq!(status.problems.len(), 1, "{:?}", status.problems);
        assert!(status.problems[0].contains("s:node:bad"));
        let lease = &status.leases[0];
        assert_eq!(
            (
                lease.resource.as_str(),
                lease.owner.as_str(),
                lease.token,
                lease.fence
            ),
            ("venue:hl", "a", 7, Some(7))
        );
        assert!(lease.expires_in_ms.is_some_and(|t| t > 0 && t <= 9000));
        let limit = &status.limits[0];
        assert_eq!(limit.scope, "hl-weight");
        assert_eq!(
            limit.limit.as_ref().map(|n| n.to_string()),
            Some("1200".into())
        );
        assert_eq!(limit.nodes.len(), 2);
        assert_eq!(status.breakers[0].notice, notice);

        drop(server);
        let err = ClusterStatus::read(&link).await.unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
    }
}
