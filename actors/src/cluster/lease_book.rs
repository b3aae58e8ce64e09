//! The lease book: which leases this node holds, as every sender reads it.
//!
//! Owns: [`Leases`] (per resource: held with a token and a *safe until* instant, standby
//! with the owner seen, waiting beside the lease it follows, or unknown), which resources
//! follow another ([`Leases::follow`]: an agent that trades a venue is taken only by the
//! node holding that venue's lease), the rule that a lease is used only before its
//! safe-until ([`Leases::held`]), the change notices senders and the gateway's takeover wait
//! on, the lease metrics' values and the `lease held` / `lease lost` / `lease released` log
//! lines. Never: talks to Redis — the [`LeaseKeeper`](super::lease::LeaseKeeper) feeds it
//! each answer (see [`super::lease`] for why safe-until counts from the request's send).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::lease::{LeaseAnswer, METRIC_LEASE_CHANGES, METRIC_LEASE_HELD, METRIC_LEASE_TOKEN};
use super::link::ClusterError;

/// A lease this node holds, as a sender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLease {
    pub token: u64,
    /// Past this instant the lease is no longer used, renewed or not.
    pub safe_until: Instant,
}

/// One resource's state on this node.
#[derive(Debug, Clone)]
enum LeaseState {
    /// Not yet asked, or Redis has not answered since start.
    Unknown,
    Held {
        token: u64,
        safe_until: Instant,
        /// When this node's holding with this token began (the acquire's send).
        since: Instant,
    },
    /// Another node holds it.
    Standby { owner: String, token: u64 },
    /// Not asked for: it follows a lease this node does not hold.
    Waiting,
}

/// One resource as `orrery status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub resource: String,
    /// `held`, `standby`, `expired` (held, but past safe-until: not used), `waiting` (it
    /// follows a lease another node holds, and is not asked for here), `unknown`.
    pub state: String,
    /// The owner as last seen (this node when held).
    pub owner: Option<String>,
    pub token: Option<u64>,
    /// Milliseconds left before this node stops using the lease (held only).
    pub safe_for_ms: Option<u64>,
    /// Milliseconds since this node acquired it with this token (held only).
    pub held_for_ms: Option<u64>,
    /// The lease this one is taken beside (an agent's: the venue it trades).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
}

struct Book {
    node_id: String,
    states: RwLock<BTreeMap<String, LeaseState>>,
    /// Last owner seen per resource (for the takeover's "previous owner").
    last_seen: RwLock<BTreeMap<String, String>>,
    /// Follower → the lease it is taken beside.
    follows: RwLock<BTreeMap<String, String>>,
    /// Resources Redis has answered for at least once since start (senders that arrive
    /// before that answer wait on it).
    answered: watch::Sender<std::collections::BTreeSet<String>>,
    /// Bumped on every change of a held lease (acquired, lost, released).
    changes: watch::Sender<u64>,
}

/// The shared read side of this node's leases; cheap to clone.
#[derive(Clone)]
pub struct Leases {
    book: Arc<Book>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("node_id", &self.book.node_id)
            .finish()
    }
}

impl Leases {
    /// A book for `resources`, all unknown (not held) until the keeper's first answers.
    pub fn new(node_id: &str, resources: impl IntoIterator<Item = String>) -> Self {
        let states = resources
            .into_iter()
            .map(|r| {
                metrics::gauge!(METRIC_LEASE_HELD, "resource" => r.clone()).set(0.0);
                (r, LeaseState::Unknown)
            })
            .collect();
        let (changes, _) = watch::channel(0);
        Self {
            book: Arc::new(Book {
                node_id: node_id.to_string(),
                states: RwLock::new(states),
                last_seen: RwLock::new(BTreeMap::new()),
                follows: RwLock::new(BTreeMap::new()),
                answered: watch::channel(Default::default()).0,
                changes,
            }),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.book.node_id
    }

    /// Adds `resource` to the book (not held until the keeper's next tick acquires it);
    /// returns false when it was there already. For what starts while the engine runs,
    /// e.g. a strategy agent promoted at run time.
    pub fn want(&self, resource: &str) -> bool {
        let mut states = self.book.states.write();
        if states.contains_key(resource) {
            return false;
        }
        metrics::gauge!(METRIC_LEASE_HELD, "resource" => resource.to_string()).set(0.0);
        states.insert(resource.to_string(), LeaseState::Unknown);
        tracing::info!(node = %self.book.node_id, resource, "lease wanted; acquired at the keeper's next tick when free");
        true
    }

    /// Takes `resource` only beside `parent`: the keeper asks for it only while this node
    /// holds `parent`, and hands it back when it holds it without `parent`. An agent that
    /// trades a venue follows the venue's lease, so it runs where its orders can be sent
    /// (its venue's gateway trades only on the venue's owner). Adds `resource` like
    /// [`Leases::want`]; a `parent` outside the book is not followed (it is never held).
    /// Call before the keeper's first tick for resources known at start.
    pub fn follow(&self, resource: &str, parent: &str) -> bool {
        let added = self.want(resource);
        if self.covers(parent) {
            self.book
                .follows
                .write()
                .insert(resource.to_string(), parent.to_string());
        } else {
            tracing::warn!(
                resource,
                parent,
                "lease follows one outside this node's book; taken on its own"
            );
        }
        added
    }

    /// The lease `resource` is taken beside, if any.
    pub fn follows(&self, resource: &str) -> Option<String> {
        self.book.follows.read().get(resource).cloned()
    }

    /// Whether this book covers `resource` (leases are taken only for configured ones).
    pub fn covers(&self, resource: &str) -> bool {
        self.book.states.read().contains_key(resource)
    }

    /// The lease on `resource` if this node holds it and it is safe to use now.
    pub fn held(&self, resource: &str) -> Option<HeldLease> {
        self.held_at(resource, Instant::now())
    }

    /// [`Leases::held`] at `now`.
    pub fn held_at(&self, resource: &str, now: Instant) -> Option<HeldLease> {
        match self.book.states.read().get(resource) {
            Some(LeaseState::Held {
                token, safe_until, ..
            }) if now < *safe_until => Some(HeldLease {
                token: *token,
                safe_until: *safe_until,
            }),
            _ => None,
        }
    }

    /// Who holds `resource` as this node last saw it (itself when held), for errors.
    pub fn owner(&self, resource: &str) -> String {
        match self.book.states.read().get(resource) {
            Some(LeaseState::Held { safe_until, .. }) if Instant::now() < *safe_until => {
                self.book.node_id.clone()
            }
            Some(LeaseState::Held { .. }) => "none (this node's lease ran out)".into(),
            Some(LeaseState::Standby { owner, .. }) => owner.clone(),
            Some(LeaseState::Waiting) => match self.follows(resource) {
                Some(parent) => format!("the node holding {parent} ({})", self.owner(&parent)),
                None => "unknown".into(),
            },
            _ => "unknown (Redis has not answered)".into(),
        }
    }

    /// The owner seen before this node's current lease, if any. A lease that follows
    /// another and was only waited for (never seen held elsewhere) had the owner of the
    /// lease it follows: the agent ran where its venue was.
    pub fn previous_owner(&self, resource: &str) -> Option<String> {
        let parent = self.follows(resource);
        let seen = self.book.last_seen.read();
        seen.get(resource)
            .or_else(|| parent.and_then(|p| seen.get(&p)))
            .cloned()
    }

    /// Waits, at most `within`, until Redis has answered for `resource` at least once
    /// since start (held here or by another node); true once it has. A sender that arrives
    /// in the first moments after start waits for this answer instead of being refused as
    /// not owner while nobody knows the owner yet.
    pub async fn first_answer(&self, resource: &str, within: Duration) -> bool {
        let mut answered = self.book.answered.subscribe();
        let seen = async {
            answered
                .wait_for(|set| set.contains(resource))
                .await
                .is_ok()
        };
        tokio::time::timeout(within, seen).await.unwrap_or(false)
    }

    /// Changes of held leases; a sender or the gateway's takeover waits on it.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.book.changes.subscribe()
    }

    /// Every resource and its state, for status.
    pub fn snapshot(&self) -> Vec<LeaseStatus> {
        let now = Instant::now();
        let follows = self.book.follows.read().clone();
        self.book
            .states
            .read()
            .iter()
            .map(|(resource, s)| {
                let (state, owner, token, safe_for_ms, held_for_ms) = match s {
                    LeaseState::Unknown => ("unknown", None, None, None, None),
                    LeaseState::Waiting => ("waiting", None, None, None, None),
                    LeaseState::Held {
                        token,
                        safe_until,
                        since,
                    } if now < *safe_until => (
                        "held",
                        Some(self.book.node_id.clone()),
                        Some(*token),
                        Some(safe_until.duration_since(now).as_millis() as u64),
                        Some(now.duration_since(*since).as_millis() as u64),
                    ),
                    LeaseState::Held { token, .. } => ("expired", None, Some(*token), None, None),
                    LeaseState::Standby { owner, token } => {
                        ("standby", Some(owner.clone()), Some(*token), None, None)
                    }
                };
                LeaseStatus {
                    resource: resource.clone(),
                    state: state.into(),
                    owner,
                    token,
                    safe_for_ms,
                    held_for_ms,
                    follows: follows.get(resource).cloned(),
                }
            })
            .collect()
    }

    fn bump(&self) {
        self.book.changes.send_modify(|v| *v += 1);
    }

    fn set_held_metrics(resource: &str, token: u64) {
        metrics::gauge!(METRIC_LEASE_HELD, "resource" => resource.to_string()).set(1.0);
        metrics::gauge!(METRIC_LEASE_TOKEN, "resource" => resource.to_string()).set(token as f64);
    }

    fn change(resource: &str, change: &'static str) {
        metrics::counter!(METRIC_LEASE_CHANGES, "resource" => resource.to_string(), "change" => change)
            .increment(1);
    }

    /// Takes one attempt's outcome: `sent` is when the request left (safe-until counts
    /// from it), `ttl − margin` how long the lease is used after that.
    pub(super) fn apply(
        &self,
        resource: &str,
        sent: Instant,
        usable: Duration,
        outcome: &Result<LeaseAnswer, ClusterError>,
    ) {
        if outcome.is_ok() {
            self.book
                .answered
                .send_if_modified(|set| set.insert(resource.to_string()));
        }
        let now = Instant::now();
        let mut states = self.book.states.write();
        let Some(state) = states.get_mut(resource) else {
            return;
        };
        let was = state.clone();
        let held_before = match &was {
            LeaseState::Held {
                token, safe_until, ..
            } if now < *safe_until => Some(*token),
            _ => None,
        };
        match outcome {
            Ok(LeaseAnswer::Held { token, new }) => {
                let safe_until = sent + usable;
                let since = match (&was, held_before) {
                    (LeaseState::Held { since, .. }, Some(t)) if t == *token => *since,
                    _ => sent,
                };
                *state = LeaseState::Held {
                    token: *token,
                    safe_until,
                    since,
                };
                drop(states);
                Self::set_held_metrics(resource, *token);
                if held_before != Some(*token) {
                    Self::change(resource, "acquired");
                    tracing::info!(
                        resource,
                        token,
                        new_owner = new,
                        previous_owner = %self.previous_owner(resource).unwrap_or_else(|| "none seen".into()),
                        "lease held"
                    );
                    self.bump();
                }
            }
            Ok(LeaseAnswer::Taken { owner, token, .. }) => {
                *state = LeaseState::Standby {
                    owner: owner.clone(),
                    token: *token,
                };
                drop(states);
                self.book
                    .last_seen
                    .write()
                    .insert(resource.to_string(), owner.clone());
                metrics::gauge!(METRIC_LEASE_HELD, "resource" => resource.to_string()).set(0.0);
                if held_before.is_some() {
                    Self::change(resource, "lost");
                    tracing::warn!(resource, owner = %owner, token, "lease lost to another node; its work stops here");
                    metrics::gauge!(METRIC_LEASE_TOKEN, "resource" => resource.to_string())
                        .set(0.0);
                    self.bump();
                }
            }
            Err(e) => {
                drop(states);
                if held_before.is_some() {
                    Self::change(resource, "renewed_failed");
                    tracing::warn!(resource, error = %e, "lease renewal failed; the lease is used until its safe-until only");
                }
            }
        }
    }

    /// Records a lease as held with `token` for `usable` from now, as a keeper's answer
    /// would (tests of what consults the book, on tokio's paused clock).
    #[cfg(test)]
    pub(crate) fn grant_for_test(&self, resource: &str, token: u64, usable: Duration) {
        self.apply(
            resource,
            Instant::now(),
            usable,
            &Ok(LeaseAnswer::Held { token, new: true }),
        );
    }

    /// Marks held leases past their safe-until as lost (metric, log, change notice). The
    /// senders already stopped using them at that instant ([`Leases::held`]); this makes
    /// it visible.
    pub(super) fn expire(&self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut states = self.book.states.write();
            for (resource, state) in states.iter_mut() {
                if let LeaseState::Held {
                    token, safe_until, ..
                } = state
                {
                    if now >= *safe_until {
                        expired.push((resource.clone(), *token));
                        *state = LeaseState::Unknown;
                    }
                }
            }
        }
        for (resource, token) in expired {
            Self::change(&resource, "lost");
            metrics::gauge!(METRIC_LEASE_HELD, "resource" => resource.clone()).set(0.0);
            metrics::gauge!(METRIC_LEASE_TOKEN, "resource" => resource.clone()).set(0.0);
            tracing::warn!(resource = %resource, token, "lease not renewed in time; this node stopped using it before it could expire (venue standby, agent paused)");
            self.bump();
        }
    }

    /// Every resource of the book: those taken on their own, then the followers with the
    /// lease each follows (the keeper asks for these after the others).
    pub(super) fn resources(&self) -> (Vec<String>, Vec<(String, String)>) {
        let follows = self.book.follows.read();
        let mut own = Vec::new();
        let mut followers = Vec::new();
        for resource in self.book.states.read().keys() {
            match follows.get(resource) {
                Some(parent) => followers.push((resource.clone(), parent.clone())),
                None => own.push(resource.clone()),
            }
        }
        (own, followers)
    }

    /// Marks a follower as not asked for (its parent is held elsewhere or not yet here).
    pub(super) fn waiting(&self, resource: &str) {
        if let Some(state) = self.book.states.write().get_mut(resource) {
            if !matches!(state, LeaseState::Held { .. }) {
                *state = LeaseState::Waiting;
            }
        }
    }

    /// The earliest safe-until of a lease still marked held (the keeper marks it lost then).
    pub(super) fn next_safe_until(&self) -> Option<Instant> {
        self.book
            .states
            .read()
            .values()
            .filter_map(|s| match s {
                LeaseState::Held { safe_until, .. } => Some(*safe_until),
                _ => None,
            })
            .min()
    }

    /// Held leases and their tokens (for release).
    pub(super) fn held_all(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        self.book
            .states
            .read()
            .iter()
            .filter_map(|(r, s)| match s {
                LeaseState::Held {
                    token, safe_until, ..
                } if now < *safe_until => Some((r.clone(), *token)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn released(&self, resource: &str) {
        if let Some(state) = self.book.states.write().get_mut(resource) {
            *state = LeaseState::Unknown;
        }
        Self::change(resource, "released");
        metrics::gauge!(METRIC_LEASE_HELD, "resource" => resource.to_string()).set(0.0);
        metrics::gauge!(METRIC_LEASE_TOKEN, "resource" => resource.to_string()).set(0.0);
        self.bump();
    }
}
