//! What a factory gets while it builds a child: [`StartCtx`].
//!
//! Owns: spawning the child's actor under the runner with the spec's mailbox and shutdown
//! timeout, publishing it in a [`Slot`], and handing out the child's path, generation,
//! store and [`FailureSignal`]. Never: restart policy.

use std::time::Duration;

use actix::{Actor, Addr, Context};

use super::runner::{self, ExitSink, FailureSignal, ReadySignal, RunSettings, StopHandle};
use super::slot::Slot;
use super::view::TreeView;
use crate::store::Store;

/// Context of one (re)start of a child, passed to its factory.
pub struct StartCtx<'a> {
    path: &'a str,
    generation: u64,
    mailbox: usize,
    shutdown: Duration,
    store: Option<&'a Store>,
    failure: FailureSignal,
    sink: Option<ExitSink>,
    ready: ReadySignal,
    /// The actor took the ready signal; the runner must not fire it.
    ready_deferred: bool,
    stop: Option<StopHandle>,
    spawned: u32,
    view: &'a TreeView,
}

impl<'a> StartCtx<'a> {
    // Crate-internal: only the supervisor builds one, from the parts of one child's start.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        path: &'a str,
        generation: u64,
        mailbox: usize,
        shutdown: Duration,
        store: Option<&'a Store>,
        sink: ExitSink,
        ready: ReadySignal,
        view: &'a TreeView,
    ) -> Self {
        Self {
            path,
            generation,
            mailbox,
            shutdown,
            store,
            failure: FailureSignal::new(),
            sink: Some(sink),
            ready,
            ready_deferred: false,
            stop: None,
            spawned: 0,
            view,
        }
    }

    /// The live view of the tree this child belongs to (a nested supervisor writes to it).
    pub(crate) fn view(&self) -> &TreeView {
        self.view
    }

    /// The child's path in the tree, e.g. `engine/models/router`; also its metric label.
    pub fn path(&self) -> &str {
        self.path
    }

    /// The child's `orrery_actor_messages_total` counter, for work the actor handles
    /// without a message through its slot (timer ticks, lane calls).
    pub fn messages_counter(&self) -> metrics::Counter {
        super::messages_counter(self.path)
    }

    /// 0 at the first start, then one more at every restart.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The engine's store, if the tree was started with one.
    pub fn store(&self) -> Option<&Store> {
        self.store
    }

    /// A signal the actor keeps and calls before `ctx.stop()` so its exit counts as a
    /// failure with that reason.
    pub fn failure_signal(&self) -> FailureSignal {
        self.failure.clone()
    }

    /// Takes over this child's ready signal: the supervisor starts the next sibling only
    /// once the actor calls [`ReadySignal::ready`], instead of right after `started()`.
    /// An actor that never calls it holds its later siblings back until its start timeout
    /// ([`super::ChildSpec::start_timeout`]) fails it.
    pub fn defer_ready(&mut self) -> ReadySignal {
        self.ready_deferred = true;
        self.ready.clone()
    }

    /// Starts `actor` as this child. Call exactly once per factory run.
    pub fn spawn<A>(&mut self, actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        self.spawn_with(actor, None)
    }

    /// Starts `actor` as this child and publishes its address in `slot` until it exits.
    pub fn spawn_in<A>(&mut self, slot: &Slot<A>, actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        let token = slot.next_token();
        let clear = slot.clone();
        let addr = self.spawn_with(actor, Some(Box::new(move || clear.vacate(token))));
        slot.fill(addr.clone(), token, self.path);
        if let Some(depth) = slot.depth_probe() {
            self.view.attach_depth(self.path, depth);
        }
        addr
    }

    fn spawn_with<A>(&mut self, actor: A, on_down: Option<runner::DownHook>) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        self.spawned += 1;
        // Only the first actor reports to the supervisor; extras are stopped at once and
        // the start is failed in `finish`.
        let on_exit = self.sink.take().unwrap_or_else(|| Box::new(|_| {}));
        let first = self.spawned == 1;
        let on_started = (!self.ready_deferred && first).then(|| self.ready.clone());
        #[cfg(any(test, feature = "testkit"))]
        let crash = first.then(|| self.view.arm_crash(self.path));
        #[cfg(not(any(test, feature = "testkit")))]
        let crash = None;
        let settings = RunSettings {
            mailbox: self.mailbox,
            shutdown: self.shutdown,
            failure: self.failure.clone(),
            on_started,
            on_down,
            on_exit,
            crash,
        };
        let (addr, stop) = runner::run(actor, settings, true);
        match stop {
            Some(stop) if self.stop.is_none() => self.stop = Some(stop),
            Some(mut extra) => extra.stop(),
            None => {}
        }
        addr
    }

    /// Ends the factory run: the stop handle of the one spawned actor, or why there is none.
    pub(crate) fn finish(mut self) -> Result<StopHandle, super::spec::StartError> {
        use super::spec::StartError;
        match (self.spawned, self.stop.take()) {
            (1, Some(stop)) => Ok(stop),
            (0, _) | (_, None) => Err(StartError::NothingSpawned),
            (n, Some(mut stop)) => {
                stop.stop();
                Err(StartError::SpawnedMore(n))
            }
        }
    }
}
