//! The root of the tree: [`start_root`] and the [`RootHandle`] the engine keeps.
//!
//! Owns: running the root supervisor under the same panic-capturing runner as every child,
//! and turning its end into a [`RootExit`]. Never: process exit; the engine decides what to
//! do once [`RootHandle::terminated`] resolves.

use std::time::Duration;

use actix::Addr;
use tokio::sync::watch;

use super::actor::{ShutDown, Supervisor};
use super::runner::{self, ChildExit, FailureSignal, RunSettings};
use super::spec::SupervisorSpec;
use super::view::TreeView;
use crate::store::Store;

/// How the whole tree ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootExit {
    /// Shut down on request; every child stopped in reverse order.
    Normal,
    /// The root gave up: a failure escalated all the way up. The reason names the child.
    Escalated(String),
}

/// Handle to a running tree. Cloneable: one clone may wait on termination while another
/// triggers shutdown.
#[derive(Debug, Clone)]
pub struct RootHandle {
    addr: Addr<Supervisor>,
    exit: watch::Receiver<Option<RootExit>>,
    view: TreeView,
}

/// Mailbox bound of the root supervisor (it receives only its children's lifecycle
/// messages and the shutdown request).
pub const ROOT_MAILBOX: usize = 1024;

/// Starts the tree described by `spec`, its children in order. Call inside a running actix
/// `System`; the tree lives on the current arbiter. With a store, restart counts persist.
pub fn start_root(spec: SupervisorSpec, store: Option<Store>) -> RootHandle {
    let (tx, exit) = watch::channel(None);
    let failure = FailureSignal::new();
    let name = spec.name.clone();
    let view = TreeView::new();
    let supervisor = Supervisor::build(
        spec,
        name.clone(),
        store,
        failure.clone(),
        None,
        view.clone(),
        true,
    );
    let on_exit = Box::new(move |exit: ChildExit| {
        let root_exit = match exit {
            ChildExit::Normal => RootExit::Normal,
            ChildExit::Failed(reason) => RootExit::Escalated(reason),
            ChildExit::Panicked(msg) => {
                RootExit::Escalated(format!("root supervisor `{name}` panicked: {msg}"))
            }
            ChildExit::Killed => RootExit::Escalated(format!(
                "root supervisor `{name}` was dropped before its children stopped (the actix system stopped first)"
            )),
        };
        match &root_exit {
            RootExit::Normal => tracing::info!(tree = %name, "supervisor tree stopped"),
            RootExit::Escalated(reason) => tracing::error!(
                tree = %name,
                "supervisor tree gave up, the engine is shutting down: {reason}"
            ),
        }
        let _ = tx.send(Some(root_exit));
    });
    let settings = RunSettings {
        mailbox: ROOT_MAILBOX,
        // The root is never stopped through its runner, only by `ShutDown`.
        shutdown: Duration::MAX,
        failure,
        on_started: None,
        on_down: None,
        on_exit,
        crash: None,
    };
    let (addr, _) = runner::run(supervisor, settings, false);
    RootHandle { addr, exit, view }
}

impl RootHandle {
    /// Stops every child in reverse start order (each within its shutdown timeout), then
    /// the root; returns how the tree ended.
    pub async fn shutdown(&self) -> RootExit {
        self.addr.do_send(ShutDown);
        self.terminated().await
    }

    /// Resolves once the tree has ended, by shutdown or escalation.
    pub async fn terminated(&self) -> RootExit {
        let mut exit = self.exit.clone();
        let ended = exit.wait_for(|e| e.is_some()).await.map(|e| e.clone());
        match ended {
            Ok(Some(e)) => e,
            // The sender lives in the root's runner; it is gone only if the runner was
            // dropped without reporting, which it never does (see runner's Drop).
            _ => {
                RootExit::Escalated("the root supervisor vanished without reporting an exit".into())
            }
        }
    }

    /// The live tree: every actor's path, restart type, state, restarts and mailbox.
    pub fn tree(&self) -> Vec<super::ActorNode> {
        self.view.snapshot()
    }

    /// The shared live view of this tree (cheap to clone).
    pub fn view(&self) -> &TreeView {
        &self.view
    }

    /// How the tree ended, if it has.
    pub fn exit(&self) -> Option<RootExit> {
        self.exit.borrow().clone()
    }
}
