//! What a supervisor runs and how it reacts to failure: child specs and supervisor specs.
//!
//! Owns: the declarative description of a supervisor (strategy, restart types, intensity,
//! backoff, ordered children with their factories) and its checks. Never: running anything;
//! [`super::Supervisor`] interprets a spec.
//!
//! A child is described by a factory rather than an actor value because every restart must
//! start clean: the factory runs again, reads config and reloads state from sled, and hands
//! a fresh actor to [`StartCtx::spawn`].

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use actix::{Actor, Context};
use serde::{Deserialize, Serialize};

use super::backoff::Backoff;
use super::intensity::Intensity;
use super::slot::Slot;
use super::start::StartCtx;
use super::Supervisor;
use crate::store::StoreError;

/// Which children restart when one of them fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only the failed child.
    #[default]
    OneForOne,
    /// Every child: the others are stopped in reverse order, then all start in order.
    OneForAll,
    /// The failed child and every child started after it.
    RestForOne,
}

/// Whether a child is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted, even after a normal exit.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (failure, panic, kill).
    Transient,
    /// Never restarted; removed from the supervisor once it exits.
    Temporary,
}

/// A factory's reason for not starting its child. Counts as a failure of the child.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Failed(String),
    #[error("cannot load the child's state from the store: {0}")]
    Store(#[from] StoreError),
    #[error("the factory returned without spawning an actor; a child's factory must call StartCtx::spawn exactly once")]
    NothingSpawned,
    #[error("the factory spawned {0} actors; a child's factory must call StartCtx::spawn exactly once (the extra actors were stopped)")]
    SpawnedMore(u32),
}

impl StartError {
    pub fn failed(reason: impl fmt::Display) -> Self {
        Self::Failed(reason.to_string())
    }
}

/// Builds a child at every (re)start.
pub type Factory = Box<dyn FnMut(&mut StartCtx<'_>) -> Result<(), StartError>>;

/// One child of a supervisor.
pub struct ChildSpec {
    /// Unique among its siblings; the last segment of the child's path. No `/`.
    pub id: String,
    pub restart: RestartType,
    /// How long a graceful stop may take before the child is killed. `Duration::MAX` waits
    /// forever (the default for nested supervisors, which bound their own children).
    pub shutdown: Duration,
    /// Mailbox capacity of the child's actor.
    pub mailbox: usize,
    /// How long the child may take to become ready (see [`StartCtx::defer_ready`]) before
    /// its start counts as failed. `Duration::MAX` waits forever.
    pub start_timeout: Duration,
    pub factory: Factory,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("mailbox", &self.mailbox)
            .field("start_timeout", &self.start_timeout)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);
    pub const DEFAULT_MAILBOX: usize = 64;
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

    /// A permanent child built by `factory`, which must call [`StartCtx::spawn`] once.
    pub fn new(
        id: impl Into<String>,
        factory: impl FnMut(&mut StartCtx<'_>) -> Result<(), StartError> + 'static,
    ) -> Self {
        Self {
            id: id.into(),
            restart: RestartType::Permanent,
            shutdown: Self::DEFAULT_SHUTDOWN,
            mailbox: Self::DEFAULT_MAILBOX,
            start_timeout: Self::DEFAULT_START_TIMEOUT,
            factory: Box::new(factory),
        }
    }

    /// A child whose actor is built by `build` and published in `slot` at every start.
    pub fn in_slot<A, F>(id: impl Into<String>, slot: Slot<A>, mut build: F) -> Self
    where
        A: Actor<Context = Context<A>>,
        F: FnMut(&mut StartCtx<'_>) -> Result<A, StartError> + 'static,
    {
        Self::new(id, move |ctx| {
            let actor = build(ctx)?;
            ctx.spawn_in(&slot, actor);
            Ok(())
        })
    }

    /// A nested supervisor; `spec` is called at every (re)start so the subtree restarts
    /// from a fresh spec. It is ready once its own children are, so later siblings start
    /// after the whole subtree. Start and shutdown wait for the subtree, whose children
    /// have their own timeouts.
    pub fn supervisor(
        id: impl Into<String>,
        mut spec: impl FnMut() -> SupervisorSpec + 'static,
    ) -> Self {
        let mut child = Self::new(id, move |ctx| {
            let sup = Supervisor::nested(spec(), ctx);
            ctx.spawn(sup);
            Ok(())
        });
        child.shutdown = Duration::MAX;
        child.start_timeout = Duration::MAX;
        child
    }

    /// As [`ChildSpec::supervisor`], the supervisor's address published in `slot`, so
    /// children can be added to it while it runs ([`super::AddChild`]).
    pub fn supervisor_in_slot(
        id: impl Into<String>,
        slot: Slot<Supervisor>,
        mut spec: impl FnMut() -> SupervisorSpec + 'static,
    ) -> Self {
        let mut child = Self::new(id, move |ctx| {
            let sup = Supervisor::nested(spec(), ctx);
            ctx.spawn_in(&slot, sup);
            Ok(())
        });
        child.shutdown = Duration::MAX;
        child.start_timeout = Duration::MAX;
        child
    }

    pub fn restart(mut self, restart: RestartType) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity.max(1);
        self
    }
}

/// A supervisor: its children in start order and how it treats their failures.
#[derive(Debug)]
pub struct SupervisorSpec {
    /// Path segment of the root (`engine`); for a nested supervisor, the child id in its
    /// parent names the path and this name only appears in logs.
    pub name: String,
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: Backoff,
    pub children: Vec<ChildSpec>,
}

/// A spec that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("supervisor `{supervisor}` has two children with id `{id}`; child ids must be unique among siblings")]
    DuplicateChild { supervisor: String, id: String },
    #[error("supervisor `{supervisor}` has a child id {id:?} that is empty or contains `/`; use a non-empty id without `/`")]
    BadChildId { supervisor: String, id: String },
    #[error("supervisor `{supervisor}` has an intensity period of zero; use a positive period")]
    ZeroPeriod { supervisor: String },
}

impl SupervisorSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            children: Vec::new(),
        }
    }

    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Checks what a supervisor needs before it can start any child.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.intensity.period.is_zero() {
            return Err(SpecError::ZeroPeriod {
                supervisor: self.name.clone(),
            });
        }
        let mut seen = HashSet::new();
        for child in &self.children {
            if child.id.is_empty() || child.id.contains('/') {
                return Err(SpecError::BadChildId {
                    supervisor: self.name.clone(),
                    id: child.id.clone(),
                });
            }
            if !seen.insert(child.id.as_str()) {
                return Err(SpecError::DuplicateChild {
                    supervisor: self.name.clone(),
                    id: child.id.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(id: &str) -> ChildSpec {
        ChildSpec::new(id, |_| Ok(()))
    }

    #[test]
    fn strategy_and_restart_type_use_snake_case() {
        let s: Strategy = serde_json::from_str("\"rest_for_one\"").unwrap();
        assert_eq!(s, Strategy::RestForOne);
        assert_eq!(
            serde_json::to_string(&Strategy::OneForAll).unwrap(),
            "\"one_for_all\""
        );
        let r: RestartType = serde_json::from_str("\"transient\"").unwrap();
        assert_eq!(r, RestartType::Transient);
    }

    #[test]
    fn check_rejects_duplicate_and_malformed_ids() {
        let dup = SupervisorSpec::new("s").child(noop("a")).child(noop("a"));
        assert_eq!(
            dup.check(),
            Err(SpecError::DuplicateChild {
                supervisor: "s".into(),
                id: "a".into()
            })
        );
        let slash = SupervisorSpec::new("s").child(noop("a/b"));
        assert!(matches!(slash.check(), Err(SpecError::BadChildId { .. })));
        let ok = SupervisorSpec::new("s").child(noop("a")).child(noop("b"));
        assert_eq!(ok.check(), Ok(()));
    }
}
