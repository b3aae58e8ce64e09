//! The `[cluster]` section: where Redis is, who this node is, and how its keys are named.
//!
//! Owns: the serde shape (unknown keys rejected), defaults, validation with key paths, and
//! reading the password from the environment. Never: connects (see [`super::link`]) or
//! prints the password (it is a [`RedisPassword`], shown as `***`).
//!
//! ```toml
//! [cluster]
//! url = "redis://10.0.0.5:6379/0"   # or rediss:// for TLS
//! password_env = "ORRERY_REDIS_PASSWORD"
//! node_id = "node-a"
//! key_prefix = "orrery:prod:"
//! heartbeat = "1s"                  # node record refresh; expires after 3 missed beats
//! lease_ttl = "5s"                  # ownership of venue accounts and agents
//! renew_every = "1666ms"            # default: lease_ttl / 3
//! expected_nodes = 3                # fallback share of shared limits: 1/3 each
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::env::{non_empty, EnvLookup};
use crate::validate::{join, Issues};

/// How this process reaches the cluster's Redis and names itself there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://host:port/db` or `rediss://` (TLS). A password in the URL is refused:
    /// use `password_env`.
    pub url: String,
    /// Environment variable holding Redis's password (`AUTH`); unset: no password.
    pub password_env: Option<String>,
    /// This node's name in leases, limits and `orrery cluster status`; unique per
    /// process. Empty: `<hostname>-<pid>`.
    pub node_id: String,
    /// Prefix of every key this cluster writes, so several clusters can share one Redis.
    pub key_prefix: String,
    /// Deadline of one connection attempt.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline of one command (a script run, a read); past it the command counts as
    /// failed and Redis as unreachable until a command succeeds again.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// How often this node refreshes its record `node:{node_id}` (see
    /// [`super::registry`]); the record expires after three missed beats.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// How long a lease on a venue account or an agent lasts without renewal (see
    /// [`super::lease`]). A node that cannot renew stops trading before this runs out.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often the owner renews (and a standby node tries to acquire); unset:
    /// `lease_ttl / 3`.
    #[serde(with = "humantime_serde")]
    pub renew_every: Option<Duration>,
    /// Nodes expected to share the cluster's budgets: a shared rate-limit pool without its
    /// own `local_share` uses 1 / this (or 1 / the most nodes seen active, if more) of
    /// the limit while Redis is unreachable.
    pub expected_nodes: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            password_env: None,
            node_id: String::new(),
            key_prefix: "orrery:".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(250),
            heartbeat: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(5),
            renew_every: None,
            expected_nodes: 1,
        }
    }
}

/// A Redis password from the environment; prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword(String);

impl RedisPassword {
    /// The value, for the connection's `AUTH` only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for RedisPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Characters allowed in a node id and a key prefix: they appear in keys, metric labels
/// and log lines.
fn plain(s: &str, extra: &[char]) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c))
}

impl ClusterConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        let url_ok = (self.url.starts_with("redis://") || self.url.starts_with("rediss://"))
            && redis::Client::open(self.url.as_str()).is_ok();
        issues.check(
            url_ok,
            join(path, "url"),
            self.shown_url(),
            "a Redis URL: redis://host:port/db, or rediss:// for TLS",
        );
        if url_ok {
            let has_password = redis::Client::open(self.url.as_str())
                .map(|c| {
                    c.get_connection_info()
                        .redis_settings()
                        .password()
                        .is_some()
                })
                .unwrap_or(false);
            issues.check(
                !has_password,
                join(path, "url"),
                "(a URL with a password)",
                "a URL without a password: put the password in an environment variable and name it in cluster.password_env",
            );
        }
        if let Some(var) = &self.password_env {
            issues.check(
                !var.trim().is_empty(),
                join(path, "password_env"),
                var,
                "the name of an environment variable holding Redis's password",
            );
        }
        issues.check(
            plain(&self.node_id, &[]) && self.node_id.len() <= 64,
            join(path, "node_id"),
            &self.node_id,
            "letters, digits, '-', '_' or '.', at most 64 (empty: hostname-pid)",
        );
        issues.check(
            !self.key_prefix.is_empty() && plain(&self.key_prefix, &[':']),
            join(path, "key_prefix"),
            &self.key_prefix,
            "a non-empty prefix of letters, digits, '-', '_', '.' or ':', e.g. \"orrery:\"",
        );
        issues.check(
            (1..=1000).contains(&self.expected_nodes),
            join(path, "expected_nodes"),
            self.expected_nodes,
            "the number of nodes sharing the budgets, from 1 to 1000",
        );
        for (key, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            issues.check(
                !d.is_zero() && d <= Duration::from_secs(30),
                join(path, key),
                humantime::format_duration(d).to_string(),
                "a duration above zero and at most 30s",
            );
        }
        issues.check(
            self.heartbeat >= Duration::from_millis(100)
                && self.heartbeat <= Duration::from_secs(60)
                && self.heartbeat > self.command_timeout,
            join(path, "heartbeat"),
            humantime::format_duration(self.heartbeat).to_string(),
            "a duration from 100ms to 60s, longer than cluster.command_timeout",
        );
        self.validate_leases(path, issues);
    }

    /// The renewal period in force: `renew_every`, or `lease_ttl / 3`.
    pub fn renew_period(&self) -> Duration {
        self.renew_every.unwrap_or(self.lease_ttl / 3)
    }

    /// How long before a lease's expiry its holder stops sending:
    /// `max(lease_ttl / 5, 2 × command_timeout)` (see [`super::lease`]).
    pub fn lease_margin(&self) -> Duration {
        (self.lease_ttl / 5).max(self.command_timeout * 2)
    }

    /// A lease must be renewable (a renewal and its answer fit, twice, before the holder
    /// stops at `ttl − margin`), or the owner would stop trading between renewals.
    fn validate_leases(&self, path: &str, issues: &mut Issues) {
        let ttl = self.lease_ttl;
        let ttl_ok = ttl >= Duration::from_millis(500) && ttl <= Duration::from_secs(300);
        issues.check(
            ttl_ok,
            join(path, "lease_ttl"),
            humantime::format_duration(ttl).to_string(),
            "a duration from 500ms to 5m",
        );
        if !ttl_ok {
            return;
        }
        let renew = self.renew_period();
        let margin = self.lease_margin();
        let room = ttl.saturating_sub(margin);
        let renew_ok = !renew.is_zero()
            && renew < ttl / 2
            && renew + self.command_timeout < room
            && margin < ttl;
        issues.check(
            renew_ok,
            join(path, "renew_every"),
            humantime::format_duration(renew).to_string(),
            format!(
                "above zero, below lease_ttl / 2 ({}) and with command_timeout below lease_ttl minus the safety margin max(lease_ttl/5, 2*command_timeout) ({}); raise lease_ttl or lower renew_every / command_timeout",
                humantime::format_duration(ttl / 2),
                humantime::format_duration(room)
            ),
        );
    }

    /// The password variable is set when one is named. Run before anything starts; the
    /// issue names the key and the variable, never a value.
    pub fn check_env(&self, path: &str, env: EnvLookup<'_>, issues: &mut Issues) {
        if let Some(var) = &self.password_env {
            issues.check(
                non_empty(env, var).is_some(),
                join(path, "password_env"),
                var,
                format!("an environment variable that is set: export {var} with Redis's password"),
            );
        }
    }

    /// The URL as it may be shown: any user info before `@` is replaced by `***`.
    pub fn shown_url(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &self.url[..scheme + 3], &self.url[at..])
            }
            _ => self.url.clone(),
        }
    }

    /// The password, read through `env`.
    pub fn password(&self, env: EnvLookup<'_>) -> Option<RedisPassword> {
        self.password_env
            .as_deref()
            .and_then(|var| non_empty(env, var))
            .map(RedisPassword)
    }

    /// The configured node id, or `<hostname>-<pid>`.
    pub fn node_id(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && plain(h, &[]))
            .unwrap_or_else(|| "node".into());
        format!("{host}-{}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(c: &ClusterConfig) -> Vec<String> {
        let mut issues = Issues::default();
        c.validate("cluster", &mut issues);
        issues.0.iter().map(|i| i.key.clone()).collect()
    }

    #[test]
    fn the_default_is_valid_and_each_bad_key_is_named() {
        assert!(issues_of(&ClusterConfig::default()).is_empty());
        let bad = ClusterConfig {
            url: "http://x".into(),
            node_id: "a b".into(),
            key_prefix: String::new(),
            command_timeout: Duration::ZERO,
            heartbeat: Duration::from_millis(50),
            ..ClusterConfig::default()
        };
        assert_eq!(
            issues_of(&bad),
            [
                "cluster.url",
                "cluster.node_id",
                "cluster.key_prefix",
                "cluster.command_timeout",
                "cluster.heartbeat"
            ]
        );
        // A heartbeat must outlast a command: a beat that cannot finish before the next.
        let slow = ClusterConfig {
            heartbeat: Duration::from_millis(200),
            command_timeout: Duration::from_millis(250),
            ..ClusterConfig::default()
        };
        assert_eq!(issues_of(&slow), ["cluster.heartbeat"]);
        let tls = ClusterConfig {
            url: "rediss://cache.example:6380/2".into(),
            ..ClusterConfig::default()
        };
        assert!(issues_of(&tls).is_empty());
        let slow_renewal = ClusterConfig {
            lease_ttl: Duration::from_secs(3),
            renew_every: Some(Duration::from_secs(2)),
            ..ClusterConfig::default()
        };
        assert_eq!(issues_of(&slow_renewal), ["cluster.renew_every"]);
        let hung_commands = ClusterConfig {
            lease_ttl: Duration::from_secs(1),
            command_timeout: Duration::from_millis(400),
            ..ClusterConfig::default()
        };
        assert_eq!(issues_of(&hung_commands), ["cluster.renew_every"]);
        let short = ClusterConfig {
            lease_ttl: Duration::from_millis(100),
            ..ClusterConfig::default()
        };
        assert_eq!(issues_of(&short), ["cluster.lease_ttl"]);
        let d = ClusterConfig::default();
        assert_eq!(d.renew_period(), Duration::from_secs(5) / 3);
        assert_eq!(d.lease_margin(), Duration::from_secs(1));
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_printed() {
        let c = ClusterConfig {
            url: "redis://:hunter2@127.0.0.1:6379/0".into(),
            ..ClusterConfig::default()
        };
        let mut issues = Issues::default();
        c.validate("cluster", &mut issues);
        let text = format!("{:?}", issues.0);
        assert!(text.contains("cluster.url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let odd = ClusterConfig {
            url: "http://:hunter2@x".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(odd.shown_url(), "http://***@x");
    }

    #[test]
    fn the_password_comes_from_the_environment_and_prints_stars() {
        let c = ClusterConfig {
            password_env: Some("REDIS_PW".into()),
            ..ClusterConfig::default()
        };
        let env = |n: &str| (n == "REDIS_PW").then(|| "s3cret".to_string());
        let pw = c.password(&env).unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert_eq!(format!("{pw} {pw:?}"), "*** ***");
        let mut issues = Issues::default();
        c.check_env("cluster", &|_| None, &mut issues);
        assert_eq!(issues.0[0].key, "cluster.password_env");
        assert!(c.node_id().ends_with(&std::process::id().to_string()));
    }
}
