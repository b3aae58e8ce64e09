//! The live tree: what every supervisor knows about its children, readable at any moment
//! without sending a message ([`TreeView`], [`ActorNode`]).
//!
//! Owns: one entry per actor path (restart type, state, restart count, last failure,
//! mailbox capacity and a probe of its mailbox depth), written by the supervisor that runs
//! the actor after every lifecycle event, and the depth-first snapshot in start order that
//! `orrery tree` and `GET /api/tree` show. Never: decides anything; a supervisor's own
//! state is the truth and this is its published copy.
//!
//! Why a shared table instead of asking each supervisor: nested supervisors' addresses
//! live only in their parents' factories, and a snapshot that needs a round trip through
//! every level would block on a supervisor busy restarting a subtree, which is exactly
//! when an operator looks. A supervisor writes its children's entries after each event
//! (a short `parking_lot` section, never across an await); readers copy the table.
//!
//! The mailbox depth is the one `orrery_actor_mailbox_depth` exports: messages sent
//! through the actor's [`super::Slot`] and not yet answered. Supervisors are reached only
//! by lifecycle messages of their own children and have no slot, so theirs is `null`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::spec::{RestartType, Strategy};

/// Where an actor is in its life, as its supervisor last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Its supervisor has not started it yet (ordered start: an earlier sibling is starting).
    NotStarted,
    /// Spawned, not yet ready (a gateway reconciling, a nested supervisor starting its own).
    Starting,
    /// Ready and serving.
    Running,
    /// Asked to stop; waiting for it to exit.
    Stopping,
    /// Exited abnormally; restarts once its backoff has passed.
    Restarting,
    /// Exited and not restarting (stopped by shutdown, or a transient child that ended normally).
    Down,
    /// A temporary child that exited; never started again.
    Gone,
    /// Not running at all: the engine is stopped (only in a tree planned from config).
    NotRunning,
}

impl NodeState {
    /// The snake_case name used in JSON and in `orrery tree`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::NotStarted => "not_started",
            NodeState::Starting => "starting",
            NodeState::Running => "running",
            NodeState::Stopping => "stopping",
            NodeState::Restarting => "restarting",
            NodeState::Down => "down",
            NodeState::Gone => "gone",
            NodeState::NotRunning => "not_running",
        }
    }
}

/// One actor of the tree, as shown by `orrery tree --json` and `GET /api/tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorNode {
    /// Path in the tree, e.g. `engine/models/router`; also the `actor` label of its metrics.
    pub path: String,
    /// Nesting level: 0 for the root.
    pub depth: usize,
    /// `supervisor` or `worker`.
    pub kind: NodeKind,
    /// For a supervisor, which siblings restart when one child fails.
    pub strategy: Option<Strategy>,
    /// Whether the actor is restarted after it exits; `None` for the root.
    pub restart: Option<RestartType>,
    pub state: NodeState,
    /// Restarts since the data dir was created (persisted across process restarts).
    pub restarts: u64,
    /// Reason of its last abnormal exit, if any.
    pub last_failure: Option<String>,
    /// Messages sent through its slot and not yet answered; `None` without a slot.
    pub mailbox_depth: Option<u64>,
    /// Bound of its mailbox.
    pub mailbox_capacity: Option<usize>,
}

/// Whether a node supervises others or does work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Supervisor,
    Worker,
}

/// Published copy of one actor's entry.
#[derive(Default)]
struct Entry {
    restart: Option<RestartType>,
    /// Set by the actor itself when it is a supervisor.
    strategy: Option<Strategy>,
    /// Ordered child paths, for a supervisor.
    children: Vec<String>,
    state: Option<NodeState>,
    restarts: u64,
    last_failure: Option<String>,
    mailbox_capacity: Option<usize>,
    depth: Option<Arc<AtomicI64>>,
}

#[derive(Default)]
struct Inner {
    root: Option<String>,
    entries: HashMap<String, Entry>,
    /// Injected-panic triggers of running actors, by path (tests only).
    #[cfg(any(test, feature = "testkit"))]
    crash: HashMap<String, futures::channel::oneshot::Sender<()>>,
}

/// The live tree of one root; clones share it. Every supervisor of the tree writes to it.
#[derive(Clone, Default)]
pub struct TreeView {
    inner: Arc<RwLock<Inner>>,
}

impl std::fmt::Debug for TreeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeView")
            .field("actors", &self.inner.read().entries.len())
            .finish()
    }
}

/// What a supervisor publishes about one child after an event.
pub(crate) struct ChildReport<'a> {
    pub path: &'a str,
    pub restart: RestartType,
    pub state: NodeState,
    pub restarts: u64,
    pub last_failure: Option<&'a str>,
    pub mailbox_capacity: usize,
}

impl TreeView {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A supervisor's own entry: its strategy and its children in start order; the root
    /// also sets its state (nobody above it does).
    pub(crate) fn publish_supervisor(
        &self,
        path: &str,
        strategy: Strategy,
        children: Vec<String>,
        root_state: Option<NodeState>,
    ) {
        let mut inner = self.inner.write();
        if root_state.is_some() && inner.root.is_none() {
            inner.root = Some(path.to_string());
        }
        let entry = inner.entries.entry(path.to_string()).or_default();
        entry.strategy = Some(strategy);
        entry.children = children;
        if let Some(state) = root_state {
            entry.state = Some(state);
            entry.mailbox_capacity = Some(super::root::ROOT_MAILBOX);
        }
    }

    /// A child's entry, as its supervisor sees it.
    pub(crate) fn publish_child(&self, report: ChildReport<'_>) {
        let mut inner = self.inner.write();
        let entry = inner.entries.entry(report.path.to_string()).or_default();
        entry.restart = Some(report.restart);
        entry.state = Some(report.state);
        entry.restarts = report.restarts;
        entry.last_failure = report.last_failure.map(str::to_string);
        entry.mailbox_capacity = Some(report.mailbox_capacity);
    }

    /// The mailbox depth probe of the actor at `path` (its slot's count of unanswered
    /// messages), registered when the actor is published in a slot.
    pub(crate) fn attach_depth(&self, path: &str, depth: Arc<AtomicI64>) {
        let mut inner = self.inner.write();
        inner.entries.entry(path.to_string()).or_default().depth = Some(depth);
    }

    /// Every actor, depth-first in start order from the root.
    pub fn snapshot(&self) -> Vec<ActorNode> {
        let inner = self.inner.read();
        let mut out = Vec::with_capacity(inner.entries.len());
        if let Some(root) = &inner.root {
            walk(&inner, root, 0, &mut out);
        }
        out
    }

    /// The node at `path`, if the tree has one.
    pub fn node(&self, path: &str) -> Option<ActorNode> {
        let inner = self.inner.read();
        inner.entries.get(path).map(|e| node(path, 0, e))
    }

    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn arm_crash(&self, path: &str) -> futures::channel::oneshot::Receiver<()> {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.inner.write().crash.insert(path.to_string(), tx);
        rx
    }

    /// Test fault injection: makes the running actor at `path` panic on its next poll,
    /// exactly as a panic in one of its handlers would. Returns whether an actor was there.
    #[cfg(any(test, feature = "testkit"))]
    pub fn inject_panic(&self, path: &str) -> bool {
        match self.inner.write().crash.remove(path) {
            Some(tx) => tx.send(()).is_ok(),
            None => false,
        }
    }
}

fn node(path: &str, depth: usize, e: &Entry) -> ActorNode {
    let is_supervisor = e.strategy.is_some();
    ActorNode {
        path: path.to_string(),
        depth,
        kind: if is_supervisor {
            NodeKind::Supervisor
        } else {
            NodeKind::Worker
        },
        strategy: e.strategy,
        restart: e.restart,
        state: e.state.unwrap_or(NodeState::NotStarted),
        restarts: e.restarts,
        last_failure: e.last_failure.clone(),
        // A depth below zero cannot happen (every decrement follows its increment); it
        // is clamped rather than trusted.
        mailbox_depth: e
            .depth
            .as_ref()
            .map(|d| d.load(Ordering::Relaxed).max(0) as u64),
        mailbox_capacity: e.mailbox_capacity,
    }
}

fn walk(inner: &Inner, path: &str, depth: usize, out: &mut Vec<ActorNode>) {
    let Some(e) = inner.entries.get(path) else {
        return;
    };
    out.push(node(path, depth, e));
    for child in &e.children {
        walk(inner, child, depth + 1, out);
    }
}

/// Renders nodes as an indented tree, one line per actor:
/// `name  strategy|restart  state  restarts=N  mailbox=D/C`.
pub fn render(nodes: &[ActorNode]) -> String {
    let mut out = String::new();
    let width = nodes
        .iter()
        .map(|n| n.depth * 2 + leaf(&n.path).len())
        .max()
        .unwrap_or(0);
    for n in nodes {
        let name = format!("{}{}", "  ".repeat(n.depth), leaf(&n.path));
        let how = match (n.strategy, n.restart) {
            (Some(s), Some(r)) => format!("{} {}", strategy_name(s), restart_name(r)),
            (Some(s), None) => strategy_name(s).to_string(),
            (None, Some(r)) => restart_name(r).to_string(),
            (None, None) => "-".to_string(),
        };
        let mailbox = match (n.mailbox_depth, n.mailbox_capacity) {
            (Some(d), Some(c)) => format!("{d}/{c}"),
            (None, Some(c)) => format!("-/{c}"),
            (Some(d), None) => format!("{d}/-"),
            (None, None) => "-".to_string(),
        };
        out.push_str(&format!(
            "{name:<width$}  {how:<22}  {:<11}  restarts={:<3}  mailbox={mailbox}",
            n.state.as_str(),
            n.restarts,
        ));
        if let Some(why) = &n.last_failure {
            out.push_str(&format!("  last failure: {why}"));
        }
        out.push('\n');
    }
    out
}

fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        Strategy::RestForOne => "rest_for_one",
    }
}

fn restart_name(r: RestartType) -> &'static str {
    match r {
        RestartType::Permanent => "permanent",
        RestartType::Transient => "transient",
        RestartType::Temporary => "temporary",
    }
}
