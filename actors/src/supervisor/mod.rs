//! The supervisor tree: child specs, restart policies, panic capture, escalation.
//!
//! Owns: running every long-lived actor of the engine under a [`Supervisor`], restarting it
//! from its spec when it fails, and the [`Slot`] through which everything else reaches it.
//! Never: what the actors do, or process exit (the engine watches [`RootHandle`]).
//!
//! Semantics follow OTP:
//! - strategies `one_for_one`, `one_for_all`, `rest_for_one`; restart types `permanent`,
//!   `transient` (only after an abnormal exit), `temporary` (never; removed once it exits);
//! - restart intensity: more than `max_restarts` restarts within `period` makes the
//!   supervisor stop its children in reverse order and fail, so its parent applies its own
//!   policy; at the root the tree ends with [`RootExit::Escalated`] naming the child;
//! - exponential backoff with jitter before each restart (per child: the count of restarts
//!   in a row resets once the child stayed up longer than the intensity period);
//! - ordered start, reverse-ordered stop with a per-child shutdown timeout, then a kill.
//!
//! - ordered start means each child is *ready* before the next starts: right after its
//!   `started()`, or, for a child that took [`StartCtx::defer_ready`] (a nested supervisor,
//!   a gateway that reconciles first), when it calls [`ReadySignal::ready`], bounded by
//!   [`ChildSpec::start_timeout`]. A factory returning `Err` counts as a failure.
//!
//! Restart history per child path (count, last abnormal exit and its time) is kept in the
//! `meta` tree at `restarts/<path>` and reloaded at start, so `orrery_actor_restarts_total`
//! keeps counting across process restarts; [`restart_records`] lists it for `orrery status`.
//! The count includes restarts caused by a sibling under `one_for_all` / `rest_for_one`.
//!
//! `orrery_actor_messages_total{actor}` counts the work an actor handled: every message
//! answered through its [`Slot`] (or accepted, when sent without waiting), plus what an
//! actor does that no slot sees — a timer tick of an agent or the process sampler, a
//! request a model pool served through its same-thread lane. Such actors take the
//! counter from [`StartCtx::messages_counter`] (or [`messages_counter`]) and count there.
//!
//! Every supervisor publishes its children's state (restart type, state, restarts, last
//! failure, mailbox capacity, and the slot's mailbox depth) to the tree's [`TreeView`]
//! after each event, so [`RootHandle::tree`] (and `orrery tree`) reads the live tree
//! without a message. With the `testkit` feature, [`TreeView::inject_panic`] makes an
//! actor panic by path, for fault-injection tests of the shape of a tree.
//!
//! Unlike actix's own `Supervisor`, a panic in a handler or in a future on the actor's
//! context is caught ([`ChildExit::Panicked`]), and a restart rebuilds the actor by calling
//! its factory again (the factory reloads its state from sled), so a restart starts clean.
//!
//! ```text
//! let router: Slot<ModelRouter> = Slot::new();
//! let models = {
//!     let router = router.clone();
//!     move || SupervisorSpec::new("models")
//!         .strategy(Strategy::RestForOne)
//!         .child(ChildSpec::in_slot("router", router.clone(), |ctx| {
//!             Ok(ModelRouter::load(ctx.store())?)
//!         }))
//! };
//! let root = start_root(
//!     SupervisorSpec::new("engine").child(ChildSpec::supervisor("models", models)),
//!     Some(store),
//! );
//! let answer = router.send(Ask { .. }).await?;
//! ```

mod actor;
mod backoff;
mod intensity;
mod panic_hook;
mod record;
mod root;
mod runner;
mod slot;
mod spec;
mod start;
mod view;

pub use actor::{AddChild, AddChildError, Supervisor};
pub use backoff::Backoff;
pub use intensity::{Intensity, RestartWindow, Verdict};
pub use panic_hook::install_panic_hook;
pub use record::{restart_records, RestartRecord};
pub use root::{start_root, RootExit, RootHandle, ROOT_MAILBOX};
pub use runner::{panic_message, ChildExit, FailureSignal, ReadySignal};
pub use slot::{Slot, SlotError};
pub use spec::{ChildSpec, Factory, RestartType, SpecError, StartError, Strategy, SupervisorSpec};
pub use start::StartCtx;
pub use view::{render as render_tree, ActorNode, NodeKind, NodeState, TreeView};

/// Name of the per-actor counter of handled work; see the module docs.
pub const MESSAGES_TOTAL: &str = "orrery_actor_messages_total";

/// The handled-work counter of the actor at `path` (its path in the tree, the label every
/// per-actor metric uses). The slot counts the messages it delivers into the same series.
pub fn messages_counter(path: &str) -> metrics::Counter {
    metrics::counter!(MESSAGES_TOTAL, "actor" => path.to_string())
}

/// Describes this module's metrics to the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!(
        "orrery_actor_restarts_total",
        Unit::Count,
        "Restarts of a supervised actor, by its path in the tree; persisted across process restarts"
    );
    describe_gauge!(
        "orrery_actor_up",
        Unit::Count,
        "1 while a supervised actor is running, 0 while it is down or restarting"
    );
    describe_gauge!(
        "orrery_actor_mailbox_depth",
        Unit::Count,
        "Messages sent to an actor through its slot and not yet answered"
    );
    describe_counter!(
        MESSAGES_TOTAL,
        Unit::Count,
        "Work an actor handled: messages answered (or accepted, when sent without waiting), timer ticks, and requests served through a same-thread lane"
    );
    describe_counter!(
        "orrery_supervisor_escalations_total",
        Unit::Count,
        "Times a supervisor exceeded its restart intensity and escalated to its parent"
    );
}

#[cfg(test)]
mod tests;
