//! The swarm keys of a `[[agents.trading]]` entry: `mode`, `members`, `quorum`,
//! `member_timeout`, `reviewer` and `quorum_loss`, and their validation.
//!
//! Owns: the shape and the rules of those keys (what is allowed with which mode). Never:
//! checks that a member names a configured model (the process's config validation does
//! that, where the `[models]` table is known).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validate::{join, Issues};

/// How a trading agent reaches its verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// Ask the logical model `model`.
    #[default]
    Single,
    /// Ask every one of `members` at once and count their votes; `model` is ignored.
    Swarm,
}

/// Votes an action needs, counted over all members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Quorum {
    /// More than half: `floor(n/2) + 1`.
    #[default]
    Majority,
    /// At least two thirds: `ceil(2n/3)`.
    Supermajority,
    /// Every member: `n`.
    Unanimous,
    /// A fixed number of votes, from 1 to the number of members.
    Count(u32),
}

impl Quorum {
    /// Votes an action needs among `members` members.
    pub fn needed(self, members: usize) -> usize {
        match self {
            Quorum::Majority => members / 2 + 1,
            Quorum::Supermajority => (2 * members).div_ceil(3),
            Quorum::Unanimous => members,
            Quorum::Count(k) => k as usize,
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Majority => f.write_str("majority"),
            Quorum::Supermajority => f.write_str("supermajority"),
            Quorum::Unanimous => f.write_str("unanimous"),
            Quorum::Count(k) => write!(f, "{k}"),
        }
    }
}

const QUORUM_EXPECTED: &str = "\"majority\", \"supermajority\", \"unanimous\" or a count of votes";

impl Serialize for Quorum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Quorum::Count(k) => s.serialize_u32(*k),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quorum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(QUORUM_EXPECTED)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quorum, E> {
                u32::try_from(v)
                    .map(Quorum::Count)
                    .map_err(|_| E::custom(format!("quorum {v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quorum, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("quorum {v}: expected {QUORUM_EXPECTED}")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quorum, E> {
                match v {
                    "majority" => Ok(Quorum::Majority),
                    "supermajority" => Ok(Quorum::Supermajority),
                    "unanimous" => Ok(Quorum::Unanimous),
                    // Environment overrides arrive as text.
                    n => n.parse::<u32>().map(Quorum::Count).map_err(|_| {
                        E::custom(format!("unknown quorum `{v}`: expected {QUORUM_EXPECTED}"))
                    }),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// When a swarm's failing members degrade the engine to `Reducing`, and when it recovers
/// (see [`super::quorum_health`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumLossConfig {
    /// How far back member answers are counted.
    #[serde(with = "humantime_serde", default = "default_window")]
    pub window: Duration,
    /// Quorum is lost when more than this share of the answers in the window failed
    /// (timeout, error, unreadable); NOTHING and disagreement are not failures.
    #[serde(default = "default_max_failed_share")]
    pub max_failed_share: f64,
    /// How long the members must stay healthy (each decision's failed share at most
    /// `max_failed_share`) before the engine returns to `Normal`.
    #[serde(with = "humantime_serde", default = "default_recover_after")]
    pub recover_after: Duration,
    /// Fewest answers in the window before the share is judged at all.
    #[serde(default = "default_min_answers")]
    pub min_answers: usize,
}

fn default_window() -> Duration {
    Duration::from_secs(600)
}
fn default_max_failed_share() -> f64 {
    0.5
}
fn default_recover_after() -> Duration {
    Duration::from_secs(300)
}
fn default_min_answers() -> usize {
    6
}

impl Default for QuorumLossConfig {
    fn default() -> Self {
        Self {
            window: default_window(),
            max_failed_share: default_max_failed_share(),
            recover_after: default_recover_after(),
            min_answers: default_min_answers(),
        }
    }
}

impl QuorumLossConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.window >= Duration::from_millis(100) && self.window <= Duration::from_secs(86_400),
            join(path, "window"),
            humantime::format_duration(self.window).to_string(),
            "a duration from 100ms to 24h",
        );
        issues.check(
            (0.0..1.0).contains(&self.max_failed_share),
            join(path, "max_failed_share"),
            self.max_failed_share,
            "a share from 0 (any failure degrades) to below 1",
        );
        issues.check(
            self.recover_after <= Duration::from_secs(86_400),
            join(path, "recover_after"),
            humantime::format_duration(self.recover_after).to_string(),
            "a duration of at most 24h",
        );
        issues.check(
            (1..=100_000).contains(&self.min_answers),
            join(path, "min_answers"),
            self.min_answers,
            "a number of answers from 1 to 100000",
        );
    }
}

/// The swarm keys as the agent reads them once validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmSettings {
    pub members: Vec<String>,
    pub quorum: Quorum,
    pub member_timeout: Duration,
    pub reviewer: Option<String>,
    /// Deadline of the reviewer's summary.
    pub review_timeout: Duration,
    pub quorum_loss: QuorumLossConfig,
}

/// The swarm keys of one agent, as written (for validation).
pub struct SwarmKeys<'a> {
    pub mode: AgentMode,
    pub members: &'a [String],
    pub quorum: Option<Quorum>,
    pub member_timeout: Option<Duration>,
    pub reviewer: Option<&'a str>,
    pub quorum_loss: Option<&'a QuorumLossConfig>,
    pub decision_timeout: Duration,
}

impl SwarmKeys<'_> {
    /// Checks what each key allows with the agent's mode; issues name the key.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        if self.mode == AgentMode::Single {
            let only_swarm = "nothing in single mode (set mode = \"swarm\" to use it)";
            issues.check(
                self.members.is_empty(),
                join(path, "members"),
                self.members,
                only_swarm,
            );
            issues.check(
                self.quorum.is_none(),
                join(path, "quorum"),
                self.quorum.map(|q| q.to_string()),
                only_swarm,
            );
            issues.check(
                self.member_timeout.is_none(),
                join(path, "member_timeout"),
                self.member_timeout
                    .map(|d| humantime::format_duration(d).to_string()),
                only_swarm,
            );
            issues.check(
                self.reviewer.is_none(),
                join(path, "reviewer"),
                self.reviewer,
                only_swarm,
            );
            issues.check(
                self.quorum_loss.is_none(),
                join(path, "quorum_loss"),
                self.quorum_loss,
                only_swarm,
            );
            return;
        }
        let n = self.members.len();
        issues.check(
            (2..=32).contains(&n),
            join(path, "members"),
            self.members,
            "2 to 32 logical model names or deployment ids",
        );
        for (i, m) in self.members.iter().enumerate() {
            issues.check(
                !m.trim().is_empty(),
                format!("{}[{i}]", join(path, "members")),
                m,
                "a logical model name or a deployment id",
            );
            issues.check(
                !self.members[..i].contains(m),
                format!("{}[{i}]", join(path, "members")),
                m,
                "a member listed once (each member has one vote)",
            );
        }
        if let Some(Quorum::Count(k)) = self.quorum {
            issues.check(
                k >= 1 && k as usize <= n,
                join(path, "quorum"),
                k,
                format!("\"majority\", \"supermajority\", \"unanimous\" or a count from 1 to the number of members ({n})"),
            );
        }
        if let Some(t) = self.member_timeout {
            issues.check(
                t >= Duration::from_millis(10) && t <= self.decision_timeout,
                join(path, "member_timeout"),
                humantime::format_duration(t).to_string(),
                format!(
                    "a duration from 10ms to decision_timeout ({})",
                    humantime::format_duration(self.decision_timeout)
                ),
            );
        }
        if let Some(r) = self.reviewer {
            issues.check(
                !r.trim().is_empty(),
                join(path, "reviewer"),
                r,
                "a logical model name or a deployment id",
            );
        }
        if let Some(q) = self.quorum_loss {
            q.validate(&join(path, "quorum_loss"), issues);
        }
    }
}
