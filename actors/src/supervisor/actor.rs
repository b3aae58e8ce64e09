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
use super::runner::{ChildExit, FailureSignal, StopHandle};
use super::spec::{ChildSpec, RestartType, Strategy, SupervisorSpec};
use super::start::StartCtx;
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
    /// Keeps the mailbox connected so the supervisor only stops when it decides to.
    self_addr: Option<Addr<Supervisor>>,
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
}

enum Status {
    /// Never started.
    Idle,
    Running(StopHandle),
    /// Asked to stop; waiting for its exit.
    Stopping,
    /// Exited; restarts only as a member of a restart group.
    Down,
    /// A temporary child that exited; never started again.
    Gone,
}

/// Children to start together, in start order, once all are down and `not_before` passed.
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

/// Asks a supervisor to stop its children in reverse order and then itself.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ShutDown;

impl Supervisor {
    /// A supervisor to spawn from a factory: its path is the child's path, it shares the
    /// tree's store, and it escalates through the child's failure signal.
    pub fn nested(spec: SupervisorSpec, ctx: &StartCtx<'_>) -> Self {
        Self::build(
            spec,
            ctx.path().to_string(),
            ctx.store().cloned(),
            ctx.failure_signal(),
        )
    }

    pub(crate) fn build(
        spec: SupervisorSpec,
        path: String,
        store: Option<Store>,
        failure: FailureSignal,
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
            .map(|spec| {
                let child_path = format!("{path}/{}", spec.id);
                let record = match log.as_ref().map(|l| l.load(&child_path)) {
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
                }
            })
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
            self_addr: None,
        }
    }

    /// The supervisor's path in the tree, e.g. `engine/models`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn in_group(&self, i: usize) -> bool {
        self.groups.iter().any(|g| g.members.contains(&i))
    }

    fn drive(&mut self, ctx: &mut Context<Self>) {
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
            let running = |c: &Child| matches!(c.status, Status::Running(_));
            if matches!(self.mode, Mode::ShuttingDown | Mode::Escalating(_)) {
                match (0..self.children.len())
                    .rev()
                    .find(|&i| running(&self.children[i]))
                {
                    Some(i) => self.stop_child(i),
                    None => self.finish(ctx),
                }
                return;
            }
            if let Some(i) = (0..self.children.len())
                .rev()
                .find(|&i| running(&self.children[i]) && self.in_group(i))
            {
                self.stop_child(i);
                return;
            }
            let now = Instant::now();
            if let Some(g) = self.groups.iter().position(|g| g.not_before <= now) {
                let group = self.groups.swap_remove(g);
                self.start_group(group, ctx);
                continue;
            }
            if let Some(at) = self.groups.iter().map(|g| g.not_before).min() {
                self.wake_at(at, ctx);
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

    fn start_group(&mut self, group: RestartGroup, ctx: &mut Context<Self>) {
        for i in group.members {
            if self.mode != Mode::Running {
                return;
            }
            let child = &mut self.children[i];
            match child.status {
                Status::Gone | Status::Running(_) | Status::Stopping => continue,
                // A temporary sibling stopped for this restart is not started again.
                Status::Down if child.spec.restart == RestartType::Temporary => {
                    child.status = Status::Gone;
                    continue;
                }
                Status::Down | Status::Idle => {}
            }
            // A failure earlier in this loop may have rescheduled this child with its group.
            if self.in_group(i) {
                continue;
            }
            self.start_child(i, ctx);
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
        );
        // Dropping `start` on an error stops whatever the factory spawned.
        let started = (child.spec.factory)(&mut start).and_then(|()| start.finish());
        match started {
            Ok(stop) => {
                child.status = Status::Running(stop);
                child.last_start = Some(Instant::now());
                child.up.set(1.0);
                tracing::debug!(child = %child.path, generation, "child started");
            }
            Err(e) => {
                child.status = Status::Down;
                child.last_start = Some(Instant::now());
                let exit = ChildExit::Failed(format!("start failed: {e}"));
                self.on_failure(i, exit, ctx);
            }
        }
    }

    fn stop_child(&mut self, i: usize) {
        let child = &mut self.children[i];
        if let Status::Running(mut stop) = std::mem::replace(&mut child.status, Status::Stopping) {
            tracing::debug!(child = %child.path, "stopping child");
            stop.stop();
        }
    }

    /// Records an exit of child `i` (already marked down) and decides what follows.
    fn on_failure(&mut self, i: usize, exit: ChildExit, _ctx: &mut Context<Self>) {
        self.note_exit(i, &exit);
        if self.mode != Mode::Running || self.in_group(i) {
            return;
        }
        let child = &mut self.children[i];
        match (child.spec.restart, exit.is_abnormal()) {
            (RestartType::Temporary, _) => {
                child.status = Status::Gone;
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
                Status::Running(_) | Status::Stopping | Status::Idle
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
    }

    fn begin_shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.mode == Mode::Running {
            tracing::info!(supervisor = %self.path, "stopping children in reverse order");
            self.mode = Mode::ShuttingDown;
            self.groups.clear();
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
        match child.status {
            Status::Stopping => {
                child.status = Status::Down;
                if msg.exit.is_abnormal() {
                    self.note_exit(msg.index, &msg.exit);
                } else {
                    child.up.set(0.0);
                }
            }
            Status::Running(_) => {
                child.status = Status::Down;
                self.on_failure(msg.index, msg.exit, ctx);
            }
            Status::Idle | Status::Down | Status::Gone => return,
        }
        self.drive(ctx);
    }
}

impl Handler<ShutDown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: ShutDown, ctx: &mut Context<Self>) {
        self.begin_shutdown(ctx);
        self.drive(ctx);
    }
}
