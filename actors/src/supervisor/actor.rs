//! The supervisor actor: starts its children in order, restarts them by strategy, restart
//! type and backoff, escalates past its restart intensity, and stops them in reverse order.
//!
//! Owns: the lifecycle of its children and their restart history (persisted through
//! [`RestartLog`], exported as `orrery_actor_restarts_total` / `orrery_actor_up`). Never:
//! what a child does; children are opaque factories.
//!
//! All work is driven from one place, [`Supervisor::drive`], called after every event (an
//! exit, a timer, a stop request). It stops at most one child at a time, always the highest
//! in start order among those that must stop, which makes every stop reverse-ordered without
//! a separate queue; it starts a restart group only when all of its members are down and its
//! backoff has passed.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, Running, SpawnHandle,
};
use humantime_serde::re::humantime::format_duration;
use metrics::{Counter, Gauge};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::intensity::{Intensity, RestartWindow, Verdict};
use super::record::{RestartLog, RestartRecord};
use super::runner::{ChildExit, FailureSignal, ReadySignal, StopHandle};
use super::spec::{ChildSpec, RestartType, Strategy, SupervisorSpec};
use super::start::StartCtx;
use super::view::{ChildReport, NodeState, TreeView};
use crate::store::Store;

/// A supervisor in the tree. Start the root with [`super::start_root`]; nest one with
/// [`ChildSpec::supervisor`] (or [`Supervisor::nested`] in a custom factory).
pub struct Supervisor {
    name: String,
    path: String,
    strategy: Strategy,
    intensity: Intensity,
    backoff: Backoff,
    rng: ChaCha8Rng,
    children: Vec<Child>,
    groups: Vec<RestartGroup>,
    window: RestartWindow,
    store: Option<Store>,
    log: Option<RestartLog>,
    /// How this supervisor tells its parent (or the root handle) that it gave up.
    failure: FailureSignal,
    mode: Mode,
    /// A spec error found at construction; reported by escalating at start.
    invalid: Option<String>,
    timer: Option<SpawnHandle>,
    /// Members of the restart group being started, one at a time, in start order.
    starting: BTreeSet<usize>,
    /// Fired once the first start pass is done, so the parent may start our next sibling.
    ready: Option<ReadySignal>,
    /// Keeps the mailbox connected so the supervisor only stops when it decides to.
    self_addr: Option<Addr<Supervisor>>,
    /// Where this supervisor publishes its children's state (`orrery tree`).
    view: TreeView,
    /// The root publishes its own state; a nested supervisor's parent does that.
    is_root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Running,
    ShuttingDown,
    Escalating(String),
    Finished,
}

struct Child {
    spec: ChildSpec,
    path: String,
    /// Generation of the latest start attempt; exits of older ones are stale.
    generation: u64,
    status: Status,
    last_start: Option<Instant>,
    /// Restarts in a row without staying up a full intensity period; drives the backoff.
    consecutive: u32,
    record: RestartRecord,
    up: Gauge,
    restarts: Counter,
    /// Fails the start if the child is not ready in time; cancelled once it is, so timers
    /// of past starts do not pile up in the supervisor's context.
    start_timer: Option<SpawnHandle>,
}

enum Status {
    /// Never started.
    Idle,
    /// Spawned; waiting for its ready signal before the next sibling starts.
    Starting(StopHandle),
    Running(StopHandle),
    /// Asked to stop; waiting for its exit.
    Stopping,
    /// Exited; restarts only as a member of a restart group.
    Down,
    /// A temporary child that exited; never started again.
    Gone,
}

/// Children to start together, in start order, once all are down and `not_before` passed.
impl Child {
    fn is_live(&self) -> bool {
        matches!(self.status, Status::Starting(_) | Status::Running(_))
    }
}

struct RestartGroup {
    members: BTreeSet<usize>,
    not_before: Instant,
}

/// Sent by a child's runner when the child's actor ended.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ChildExited {
    pub index: usize,
    pub generation: u64,
    pub exit: ChildExit,
}

/// Sent by a child's ready signal.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ChildStarted {
    pub index: usize,
    pub generation: u64,
}

/// Asks a supervisor to stop its children in reverse order and then itself.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ShutDown;

/// Child `spec` of the supervisor at `path`, not yet started, with its restart history
/// reloaded from `log` and its metrics registered.
fn new_child(path: &str, log: Option<&RestartLog>, spec: ChildSpec) -> Child {
    let child_path = format!("{path}/{}", spec.id);
    let record = match log.map(|l| l.load(&child_path)) {
        Some(Ok(Some(record))) => record,
        Some(Err(e)) => {
            tracing::warn!(child = %child_path, error = %e, "cannot read the persisted restart record; counting from zero");
            RestartRecord::default()
        }
        _ => RestartRecord::default(),
    };
    let restarts = metrics::counter!("orrery_actor_restarts_total", "actor" => child_path.clone());
    restarts.absolute(record.count);
    let up = metrics::gauge!("orrery_actor_up", "actor" => child_path.clone());
    up.set(0.0);
    Child {
        spec,
        path: child_path,
        generation: 0,
        status: Status::Idle,
        last_start: None,
        consecutive: 0,
        record,
        up,
        restarts,
        start_timer: None,
    }
}

/// Adds a child to a running supervisor and starts it (OTP's `supervisor:start_child`):
/// it goes last in start order (so it stops first), follows the supervisor's strategy from
/// then on, and answers its path once started, i.e. spawned; whether its start succeeded
/// shows in the tree like any child's. Only this incarnation of the supervisor has it: a
/// supervisor restarted from its spec has the spec's children, so whoever adds a child
/// also makes the spec return it (the engine keeps its runtime-added agents for that).
///
/// It carries how to make the spec rather than the spec: a factory need not be `Send`,
/// a message between threads must be, so the spec is made on the supervisor's thread.
#[derive(Message)]
#[rtype(result = "Result<String, AddChildError>")]
pub struct AddChild(pub Box<dyn FnOnce() -> ChildSpec + Send>);

impl AddChild {
    pub fn new(make: impl FnOnce() -> ChildSpec + Send + 'static) -> Self {
        Self(Box::new(make))
    }
}

/// Why [`AddChild`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddChildError {
    #[error("supervisor {supervisor} already has a child `{id}`")]
    Duplicate { supervisor: String, id: String },
    #[error("supervisor {0} is stopping; it takes no new child")]
    NotRunning(String),
}

impl Supervisor {
    /// A supervisor to spawn from a factory: its path is the child's path, it shares the
    /// tree's store, and it escalates through the child's failure signal.
    /// It reports ready once its own children have started, so the parent starts the
    /// next sibling after the whole subtree.
    pub fn nested(spec: SupervisorSpec, ctx: &mut StartCtx<'_>) -> Self {
        let ready = ctx.defer_ready();
        Self::build(
            spec,
            ctx.path().to_string(),
            ctx.store().cloned(),
            ctx.failure_signal(),
            Some(ready),
            ctx.view().clone(),
            false,
        )
    }

    pub(crate) fn build(
        spec: SupervisorSpec,
        path: String,
        store: Option<Store>,
        failure: FailureSignal,
        ready: Option<ReadySignal>,
        view: TreeView,
        is_root: bool,
    ) -> Self {
        let invalid = spec.check().err().map(|e| e.to_string());
        let log = store.as_ref().and_then(|s| match RestartLog::open(s) {
            Ok(log) => Some(log),
            Err(e) => {
                tracing::warn!(supervisor = %path, error = %e, "cannot open the restart log; restart counts will not be persisted");
                None
            }
        });
        let children = spec
            .children
            .into_iter()
            .map(|spec| new_child(&path, log.as_ref(), spec))
            .collect();
        let rng = match spec.backoff.seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed),
            None => ChaCha8Rng::from_entropy(),
        };
        Self {
            name: spec.name,
            path,
            strategy: spec.strategy,
            intensity: spec.intensity,
            backoff: spec.backoff,
            rng,
            children,
            groups: Vec::new(),
            window: RestartWindow::default(),
            store,
            log,
            failure,
            mode: Mode::Running,
            invalid,
            timer: None,
            starting: BTreeSet::new(),
            ready,
            self_addr: None,
            view,
            is_root,
        }
    }

    /// The supervisor's path in the tree, e.g. `engine/models`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn in_group(&self, i: usize) -> bool {
        self.groups.iter().any(|g| g.members.contains(&i))
    }

    /// Runs [`Supervisor::step`], then publishes the children's state to the live view,
    /// so every event the supervisor handled is visible in `orrery tree`.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        self.step(ctx);
        self.publish();
    }

    fn publish(&self) {
        let root_state = self.is_root.then_some(match self.mode {
            Mode::Running => NodeState::Running,
            Mode::ShuttingDown | Mode::Escalating(_) => NodeState::Stopping,
            Mode::Finished => NodeState::Down,
        });
        self.view.publish_supervisor(
            &self.path,
            self.strategy,
            self.children.iter().map(|c| c.path.clone()).collect(),
            root_state,
        );
        for (i, child) in self.children.iter().enumerate() {
            let state = match child.status {
                Status::Idle => NodeState::NotStarted,
                Status::Starting(_) => NodeState::Starting,
                Status::Running(_) => NodeState::Running,
                Status::Stopping => NodeState::Stopping,
                Status::Down if self.in_group(i) || self.starting.contains(&i) => {
                    NodeState::Restarting
                }
                Status::Down => NodeState::Down,
                Status::Gone => NodeState::Gone,
            };
            self.view.publish_child(ChildReport {
                path: &child.path,
                restart: child.spec.restart,
                state,
                restarts: child.record.count,
                last_failure: child.record.last_reason.as_deref(),
                mailbox_capacity: child.spec.mailbox,
            });
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        loop {
            if self.mode == Mode::Finished {
                return;
            }
            if self
                .children
                .iter()
                .any(|c| matches!(c.status, Status::Stopping))
            {
                return;
            }
            if matches!(self.mode, Mode::ShuttingDown | Mode::Escalating(_)) {
                match (0..self.children.len())
                    .rev()
                    .find(|&i| self.children[i].is_live())
                {
                    Some(i) => self.stop_child(i),
                    None => self.finish(ctx),
                }
                return;
            }
            if self
                .children
                .iter()
                .any(|c| matches!(c.status, Status::Starting(_)))
            {
                return;
            }
            if let Some(i) = (0..self.children.len())
                .rev()
                .find(|&i| self.children[i].is_live() && self.in_group(i))
            {
                self.stop_child(i);
                return;
            }
            if let Some(i) = self.starting.pop_first() {
                if self.may_start(i) {
                    self.start_child(i, ctx);
                }
                continue;
            }
            let now = Instant::now();
            if let Some(g) = self.groups.iter().position(|g| g.not_before <= now) {
                self.starting = self.groups.swap_remove(g).members;
                continue;
            }
            if let Some(at) = self.groups.iter().map(|g| g.not_before).min() {
                self.wake_at(at, ctx);
            }
            // Nothing left to start now: the first pass is over (failed children wait for
            // their backoff), so the parent may move on to our next sibling.
            if let Some(ready) = self.ready.take() {
                ready.ready();
            }
            return;
        }
    }

    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        let delay = at.saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(delay, |sup, ctx| {
            sup.timer = None;
            sup.drive(ctx);
        }));
    }

    /// Whether member `i` of the group being started should start now.
    fn may_start(&mut self, i: usize) -> bool {
        let in_group = self.in_group(i);
        let child = &mut self.children[i];
        match child.status {
            Status::Gone | Status::Starting(_) | Status::Running(_) | Status::Stopping => false,
            // A temporary sibling stopped for this restart is not started again.
            Status::Down if child.spec.restart == RestartType::Temporary => {
                child.status = Status::Gone;
                false
            }
            // A failure since this group began may have rescheduled the child elsewhere.
            Status::Down | Status::Idle => !in_group,
        }
    }

    fn start_child(&mut self, i: usize, ctx: &mut Context<Self>) {
        let Some(sup) = self.self_addr.clone() else {
            // Invariant: children are started only after `started()` stored the address.
            return;
        };
        let child = &mut self.children[i];
        let is_restart = !matches!(child.status, Status::Idle);
        if is_restart {
            child.generation += 1;
            child.record.count += 1;
            child.restarts.increment(1);
            if let Some(log) = &self.log {
                if let Err(e) = log.save(&child.path, &child.record) {
                    tracing::warn!(child = %child.path, error = %e, "cannot persist the restart count");
                }
            }
        }
        let generation = child.generation;
        let on_ready = sup.clone();
        let ready = ReadySignal::new(move || {
            on_ready.do_send(ChildStarted {
                index: i,
                generation,
            })
        });
        let sink = Box::new(move |exit| {
            sup.do_send(ChildExited {
                index: i,
                generation,
                exit,
            })
        });
        let mut start = StartCtx::new(
            &child.path,
            generation,
            child.spec.mailbox,
            child.spec.shutdown,
            self.store.as_ref(),
            sink,
            ready,
            &self.view,
        );
        // Dropping `start` on an error stops whatever the factory spawned.
        let started = (child.spec.factory)(&mut start).and_then(|()| start.finish());
        child.last_start = Some(Instant::now());
        match started {
            Ok(stop) => {
                child.status = Status::Starting(stop);
                tracing::debug!(child = %child.path, generation, "child spawned");
                let timeout = child.spec.start_timeout;
                if timeout != Duration::MAX {
                    child.start_timer = Some(ctx.run_later(timeout, move |sup, ctx| {
                        sup.start_timed_out(i, generation, timeout, ctx)
                    }));
                }
            }
            Err(e) => {
                child.status = Status::Down;
                let exit = ChildExit::Failed(format!("start failed: {e}"));
                self.on_failure(i, exit);
            }
        }
    }

    fn start_timed_out(
        &mut self,
        i: usize,
        generation: u64,
        timeout: Duration,
        ctx: &mut Context<Self>,
    ) {
        let child = &mut self.children[i];
        child.start_timer = None;
        if child.generation != generation || !matches!(child.status, Status::Starting(_)) {
            return;
        }
        // Stopping, not down: restarts and the supervisor's own exit wait for it to go.
        if let Status::Starting(mut stop) = std::mem::replace(&mut child.status, Status::Stopping) {
            stop.stop();
        }
        let exit = ChildExit::Failed(format!(
            "start failed: not ready within {}",
            format_duration(timeout)
        ));
        self.on_failure(i, exit);
        self.drive(ctx);
    }

    fn stop_child(&mut self, i: usize) {
        let child = &mut self.children[i];
        match std::mem::replace(&mut child.status, Status::Stopping) {
            Status::Running(mut stop) | Status::Starting(mut stop) => {
                tracing::debug!(child = %child.path, "stopping child");
                stop.stop();
            }
            other => child.status = other,
        }
    }

    /// Records an exit of child `i` (already marked down) and decides what follows.
    fn on_failure(&mut self, i: usize, exit: ChildExit) {
        self.note_exit(i, &exit);
        if self.mode != Mode::Running || self.in_group(i) {
            return;
        }
        let child = &mut self.children[i];
        match (child.spec.restart, exit.is_abnormal()) {
            (RestartType::Temporary, _) => {
                // One still stopping (start timeout) becomes down on exit, and stays down.
                if !matches!(child.status, Status::Stopping) {
                    child.status = Status::Gone;
                }
                return;
            }
            (RestartType::Transient, false) => return,
            _ => {}
        }
        let now = Instant::now();
        if let Verdict::Exceeded { in_period } = self.window.record(now, &self.intensity) {
            let reason = format!(
                "restart intensity exceeded: {in_period} restarts in {}; last failure of {}: {exit}",
                format_duration(self.intensity.period),
                self.children[i].path
            );
            self.escalate(reason);
            return;
        }
        let child = &mut self.children[i];
        let stayed_up = child
            .last_start
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or(Duration::ZERO);
        child.consecutive = if stayed_up > self.intensity.period {
            1
        } else {
            child.consecutive.saturating_add(1)
        };
        let delay = self.backoff.delay(child.consecutive, &mut self.rng);
        let mut members: BTreeSet<usize> = match self.strategy {
            Strategy::OneForOne => BTreeSet::from([i]),
            Strategy::OneForAll => (0..self.children.len())
                .filter(|&j| self.joins_restart(i, j))
                .collect(),
            Strategy::RestForOne => (i..self.children.len())
                .filter(|&j| self.joins_restart(i, j))
                .collect(),
        };
        let mut not_before = now + delay;
        self.groups.retain(|g| {
            if g.members.is_disjoint(&members) {
                true
            } else {
                members.extend(g.members.iter().copied());
                not_before = not_before.max(g.not_before);
                false
            }
        });
        tracing::info!(
            child = %self.children[i].path,
            delay_ms = delay.as_millis() as u64,
            restarting = members.len(),
            "restarting after {exit}"
        );
        self.groups.push(RestartGroup {
            members,
            not_before,
        });
    }

    /// Whether sibling `j` is stopped and restarted along with failed child `i`: it is if it
    /// is live or still waiting to start, not if it exited for good.
    fn joins_restart(&self, i: usize, j: usize) -> bool {
        j == i
            || self.in_group(j)
            || matches!(
                self.children[j].status,
                Status::Starting(_) | Status::Running(_) | Status::Stopping | Status::Idle
            )
    }

    fn note_exit(&mut self, i: usize, exit: &ChildExit) {
        let child = &mut self.children[i];
        child.up.set(0.0);
        if !exit.is_abnormal() {
            tracing::info!(child = %child.path, "child exited normally");
            return;
        }
        tracing::warn!(child = %child.path, "child {exit}");
        child.record.last_reason = Some(exit.to_string());
        child.record.last_failure_ms = Some(chrono::Utc::now().timestamp_millis());
        if let Some(log) = &self.log {
            if let Err(e) = log.save(&child.path, &child.record) {
                tracing::warn!(child = %child.path, error = %e, "cannot persist the last failure");
            }
        }
    }

    fn escalate(&mut self, reason: String) {
        tracing::error!(supervisor = %self.path, "{reason}; stopping all children and escalating");
        metrics::counter!("orrery_supervisor_escalations_total", "supervisor" => self.path.clone())
            .increment(1);
        self.mode = Mode::Escalating(reason);
        self.groups.clear();
        self.starting.clear();
    }

    fn begin_shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.mode == Mode::Running {
            tracing::info!(supervisor = %self.path, "stopping children in reverse order");
            self.mode = Mode::ShuttingDown;
            self.groups.clear();
            self.starting.clear();
            if let Some(t) = self.timer.take() {
                ctx.cancel_future(t);
            }
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        if let Mode::Escalating(reason) = std::mem::replace(&mut self.mode, Mode::Finished) {
            self.failure.fail(reason);
        }
        if let Some(store) = &self.store {
            if let Err(e) = store.flush() {
                tracing::warn!(supervisor = %self.path, error = %e, "cannot flush restart records");
            }
        }
        self.self_addr = None;
        ctx.stop();
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.self_addr = Some(ctx.address());
        tracing::debug!(supervisor = %self.path, name = %self.name, "supervisor starting");
        if let Some(reason) = self.invalid.take() {
            self.escalate(reason);
        } else {
            self.groups.push(RestartGroup {
                members: (0..self.children.len()).collect(),
                not_before: Instant::now(),
            });
        }
        self.drive(ctx);
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        // A stop from outside (the parent's shutdown) first takes the children down.
        self.begin_shutdown(ctx);
        self.drive(ctx);
        if self.mode == Mode::Finished {
            Running::Stop
        } else {
            Running::Continue
        }
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(msg.index) else {
            return;
        };
        if child.generation != msg.generation {
            tracing::debug!(child = %child.path, generation = msg.generation, "ignoring the exit of an older generation");
            return;
        }
        if let Some(timer) = child.start_timer.take() {
            ctx.cancel_future(timer);
        }
        match child.status {
            Status::Stopping => {
                child.status = Status::Down;
                if msg.exit.is_abnormal() {
                    self.note_exit(msg.index, &msg.exit);
                } else {
                    child.up.set(0.0);
                }
            }
            Status::Starting(_) | Status::Running(_) => {
                child.status = Status::Down;
                self.on_failure(msg.index, msg.exit);
            }
            Status::Idle | Status::Down | Status::Gone => return,
        }
        self.drive(ctx);
    }
}

impl Handler<ChildStarted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildStarted, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(msg.index) else {
            return;
        };
        if child.generation != msg.generation {
            return;
        }
        if let Some(timer) = child.start_timer.take() {
            ctx.cancel_future(timer);
        }
        // A child already stopping or down stays as it is.
        if !matches!(child.status, Status::Starting(_)) {
            return;
        }
        if let Status::Starting(stop) = std::mem::replace(&mut child.status, Status::Down) {
            child.status = Status::Running(stop);
        }
        child.up.set(1.0);
        tracing::debug!(child = %child.path, generation = msg.generation, "child ready");
        self.drive(ctx);
    }
}

impl Handler<AddChild> for Supervisor {
    type Result = Result<String, AddChildError>;

    fn handle(&mut self, msg: AddChild, ctx: &mut Context<Self>) -> Self::Result {
        if self.mode != Mode::Running {
            return Err(AddChildError::NotRunning(self.path.clone()));
        }
        let spec = (msg.0)();
        if self.children.iter().any(|c| c.spec.id == spec.id) {
            return Err(AddChildError::Duplicate {
                supervisor: self.path.clone(),
                id: spec.id,
            });
        }
        let child = new_child(&self.path, self.log.as_ref(), spec);
        let path = child.path.clone();
        tracing::info!(supervisor = %self.path, child = %path, "child added at runtime");
        self.children.push(child);
        self.groups.push(RestartGroup {
            members: BTreeSet::from([self.children.len() - 1]),
            not_before: Instant::now(),
        });
        self.drive(ctx);
        Ok(path)
    }
}

impl Handler<ShutDown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: ShutDown, ctx: &mut Context<Self>) {
        self.begin_shutdown(ctx);
        self.drive(ctx);
    }
}
