//! Runs one actor under supervision: captures its panics, stops it on request, kills it
//! when it outlives its shutdown timeout, and reports how it ended.
//!
//! Owns: the task that polls an actor's context future, and the [`ChildExit`] it reports.
//! Never: restart decisions; the exit goes to whoever spawned the run (a supervisor, or the
//! root handle).
//!
//! Why not `Actor::start`: actix runs an actor as a plain task, so a panic in a handler or
//! in a future spawned on the context unwinds that task, the actor silently disappears and
//! its address reports `Closed`; nobody is told. Here the context future is polled inside
//! `catch_unwind`, so a panic becomes a [`ChildExit::Panicked`] with its message. Stopping
//! calls `ctx.stop()` and keeps polling so `stopping()`/`stopped()` run; past the timeout
//! the future is dropped (a brutal kill).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::dev::ContextFut;
use actix::{Actor, ActorContext, Addr, AsyncContext, Context};
use futures::channel::oneshot;
use futures::FutureExt;
use parking_lot::Mutex;

/// How a supervised actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildExit {
    /// Stopped by itself or on request, without reporting a failure.
    Normal,
    /// Stopped after calling [`FailureSignal::fail`], or its factory failed.
    Failed(String),
    /// A handler or a future on its context panicked.
    Panicked(String),
    /// Did not stop within its shutdown timeout and was dropped.
    Killed,
}

impl ChildExit {
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ChildExit::Normal)
    }
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Normal => f.write_str("exited normally"),
            ChildExit::Failed(reason) => write!(f, "failed: {reason}"),
            ChildExit::Panicked(msg) => write!(f, "panicked: {msg}"),
            ChildExit::Killed => f.write_str("killed: did not stop within its shutdown timeout"),
        }
    }
}

/// Lets an actor mark its coming stop as a failure: call [`FailureSignal::fail`], then
/// `ctx.stop()`. Cloneable and `Send`, so the actor may hand it to its own tasks.
#[derive(Debug, Clone, Default)]
pub struct FailureSignal {
    reason: Arc<Mutex<Option<String>>>,
}

impl FailureSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `reason`. The first reason wins: it is the cause, later ones are fallout.
    pub fn fail(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock();
        if slot.is_none() {
            *slot = Some(reason.into());
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }
}

/// Text of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Tells the supervisor that a child has finished starting, so the next sibling may start.
/// Fires once; later calls do nothing. An actor gets one from
/// [`super::StartCtx::defer_ready`] when it must finish asynchronous work (a reconciliation,
/// its own children) before its later siblings may rely on it; otherwise the runner fires
/// it right after `started()`.
#[derive(Clone)]
pub struct ReadySignal {
    notify: Arc<Mutex<Option<ReadyNotify>>>,
}

type ReadyNotify = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for ReadySignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadySignal")
            .field("fired", &self.notify.lock().is_none())
            .finish()
    }
}

impl ReadySignal {
    pub(crate) fn new(notify: impl FnOnce() + Send + 'static) -> Self {
        Self {
            notify: Arc::new(Mutex::new(Some(Box::new(notify)))),
        }
    }

    /// A signal nobody listens to (the root, or an actor outside a supervisor).
    pub fn detached() -> Self {
        Self {
            notify: Arc::new(Mutex::new(None)),
        }
    }

    pub fn ready(&self) {
        let notify = self.notify.lock().take();
        if let Some(notify) = notify {
            notify();
        }
    }
}

/// Asks a running actor to stop. Dropping it asks too: an actor never outlives the
/// supervisor that started it.
#[derive(Debug)]
pub(crate) struct StopHandle {
    tx: Option<oneshot::Sender<()>>,
}

impl StopHandle {
    pub(crate) fn stop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) type ExitSink = Box<dyn FnOnce(ChildExit)>;
pub(crate) type DownHook = Box<dyn FnOnce()>;

/// What a run needs besides the actor.
pub(crate) struct RunSettings {
    pub mailbox: usize,
    pub shutdown: Duration,
    pub failure: FailureSignal,
    /// Fired after the actor's first poll (its `started()`), unless the actor took it over.
    pub on_started: Option<ReadySignal>,
    /// Runs before the exit is reported (clears the actor's slot).
    pub on_down: Option<DownHook>,
    pub on_exit: ExitSink,
    /// Test fault injection ([`super::TreeView::inject_panic`]): when it fires, the actor
    /// panics on its next poll. A dropped sender means nothing.
    pub crash: Option<oneshot::Receiver<()>>,
}

/// Starts `actor` on the current arbiter. With `stoppable`, returns a handle whose
/// `stop()` (or drop) begins a graceful stop.
pub(crate) fn run<A>(
    actor: A,
    settings: RunSettings,
    stoppable: bool,
) -> (Addr<A>, Option<StopHandle>)
where
    A: Actor<Context = Context<A>>,
{
    let mut ctx = Context::<A>::new();
    ctx.set_mailbox_capacity(settings.mailbox);
    let addr = ctx.address();
    let fut = ctx.into_future(actor);
    let (stop, stop_rx) = if stoppable {
        let (tx, rx) = oneshot::channel();
        (Some(StopHandle { tx: Some(tx) }), Some(rx))
    } else {
        (None, None)
    };
    actix::spawn(ChildTask {
        fut: Some(fut),
        stop_rx,
        kill_timer: None,
        shutdown: settings.shutdown,
        failure: settings.failure,
        on_started: settings.on_started,
        on_down: settings.on_down,
        on_exit: Some(settings.on_exit),
        crash: settings.crash,
    });
    (addr, stop)
}

struct ChildTask<A: Actor<Context = Context<A>>> {
    fut: Option<ContextFut<A, Context<A>>>,
    stop_rx: Option<oneshot::Receiver<()>>,
    kill_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    shutdown: Duration,
    failure: FailureSignal,
    on_started: Option<ReadySignal>,
    on_down: Option<DownHook>,
    on_exit: Option<ExitSink>,
    crash: Option<oneshot::Receiver<()>>,
}

impl<A: Actor<Context = Context<A>>> ChildTask<A> {
    fn finish(&mut self, exit: ChildExit) {
        if let Some(fut) = self.fut.take() {
            // Dropping a context future that did not complete stops the actor and polls it
            // once more, which can panic again in a poisoned actor; that must not unwind
            // through the arbiter.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(fut)));
        }
        if let Some(hook) = self.on_down.take() {
            hook();
        }
        if let Some(sink) = self.on_exit.take() {
            sink(exit);
        }
    }

    fn begin_stop(&mut self) {
        if let Some(fut) = self.fut.as_mut() {
            fut.ctx().stop();
        }
        // tokio's sleep saturates far-future deadlines, so Duration::MAX waits forever.
        self.kill_timer = Some(Box::pin(tokio::time::sleep(self.shutdown)));
    }
}

impl<A: Actor<Context = Context<A>>> Future for ChildTask<A> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        // Every field is Unpin (actors are Unpin by actix's contract).
        let this = self.get_mut();
        if this.fut.is_none() {
            return Poll::Ready(());
        }
        if let Some(rx) = this.stop_rx.as_mut() {
            // A sent value or a dropped sender both mean: stop.
            if rx.poll_unpin(cx).is_ready() {
                this.stop_rx = None;
                this.begin_stop();
            }
        }
        let crash = match this.crash.as_mut().map(|rx| rx.poll_unpin(cx)) {
            Some(Poll::Ready(Ok(()))) => {
                this.crash = None;
                true
            }
            Some(Poll::Ready(Err(_))) => {
                this.crash = None;
                false
            }
            _ => false,
        };
        let Some(fut) = this.fut.as_mut() else {
            return Poll::Ready(());
        };
        match catch_unwind(AssertUnwindSafe(|| {
            if crash {
                panic!("injected panic (test fault injection)");
            }
            Pin::new(fut).poll(cx)
        })) {
            Ok(Poll::Ready(())) => {
                let exit = match this.failure.reason() {
                    Some(reason) => ChildExit::Failed(reason),
                    None => ChildExit::Normal,
                };
                this.finish(exit);
                return Poll::Ready(());
            }
            Ok(Poll::Pending) => {
                if let Some(ready) = this.on_started.take() {
                    ready.ready();
                }
            }
            Err(payload) => {
                this.finish(ChildExit::Panicked(panic_message(payload.as_ref())));
                return Poll::Ready(());
            }
        }
        if let Some(timer) = this.kill_timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                this.finish(ChildExit::Killed);
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

impl<A: Actor<Context = Context<A>>> Drop for ChildTask<A> {
    fn drop(&mut self) {
        // The arbiter is shutting down with the actor still running; report it as killed so
        // slots are cleared and nobody waits for an exit that will not come.
        if self.fut.is_some() {
            self.finish(ChildExit::Killed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_messages() {
        let p = catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "static text");
        let n = 7;
        let p = catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "formatted 7");
        let p = catch_unwind(|| std::panic::panic_any(42u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "panic with a non-string payload");
    }

    #[test]
    fn first_failure_reason_wins() {
        let f = FailureSignal::new();
        assert_eq!(f.reason(), None);
        let g = f.clone();
        g.fail("cause");
        f.fail("fallout");
        assert_eq!(f.reason().as_deref(), Some("cause"));
    }
}
