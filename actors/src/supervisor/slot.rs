//! [`Slot`]: the stable handle through which the engine reaches a supervised actor whose
//! address changes at every restart.
//!
//! Owns: the current address of one child (set by its factory, cleared by the runner when
//! the actor exits), and the per-actor message metrics: mailbox depth (messages sent and
//! not yet answered) and messages handled. Never: retries or re-routing; a caller that gets
//! [`SlotError::Vacant`] or [`SlotError::Closed`] decides whether to wait or go to a sibling.
//!
//! Most messages in the engine pass through a slot, so the send path is one uncontended
//! read lock, the actix send itself, and two metric updates; no allocation beyond actix's.
//! Work a slot does not see (timer ticks, a pool's same-thread lane) is counted by the
//! actor itself into the same `orrery_actor_messages_total` series (see the module docs
//! of `supervisor`).

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix::dev::ToEnvelope;
use actix::prelude::SendError;
use actix::{Actor, Addr, Handler, MailboxError, Message};
use metrics::{Counter, Gauge};
use parking_lot::RwLock;

/// Why a message could not be delivered or answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("no live actor in slot `{actor}`: it is restarting or stopped; retry after its backoff or use a sibling")]
    Vacant { actor: String },
    #[error("actor `{actor}` stopped before answering (it died with the message in its mailbox); the message may or may not have been handled")]
    Closed { actor: String },
    #[error("mailbox of actor `{actor}` is full; send with backpressure (`send`) or shed load")]
    Full { actor: String },
    #[error("actor `{actor}` did not answer in time")]
    Timeout { actor: String },
}

struct Live<A: Actor> {
    addr: Addr<A>,
    token: u64,
}

struct Metrics {
    label: String,
    depth: Gauge,
    /// The same count as `depth`, readable: the live tree shows it ([`super::TreeView`]).
    pending: Arc<AtomicI64>,
    handled: Counter,
}

struct Inner<A: Actor> {
    live: RwLock<Option<Live<A>>>,
    /// Set at the first fill from the child's path; a slot serves one child for life.
    metrics: OnceLock<Arc<Metrics>>,
}

/// Shared handle to the current address of a supervised actor. Clones share the slot.
pub struct Slot<A: Actor> {
    inner: Arc<Inner<A>>,
}

impl<A: Actor> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Actor> Default for Slot<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Actor> std::fmt::Debug for Slot<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("actor", &self.label())
            .field("live", &self.is_live())
            .finish()
    }
}

/// Distinguishes one filling of a slot from the next, so a late exit of an old actor
/// cannot clear its successor.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

impl<A: Actor> Slot<A> {
    /// An empty slot; hand a clone to the child's factory ([`super::ChildSpec::in_slot`]).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                live: RwLock::new(None),
                metrics: OnceLock::new(),
            }),
        }
    }

    /// The actor's label (its path in the tree), once it has started.
    pub fn label(&self) -> &str {
        self.inner
            .metrics
            .get()
            .map(|m| m.label.as_str())
            .unwrap_or("<not started>")
    }

    /// The current address, if an actor is live.
    pub fn addr(&self) -> Option<Addr<A>> {
        self.inner.live.read().as_ref().map(|l| l.addr.clone())
    }

    /// `f` applied to the current address, if an actor is live; unlike [`Slot::addr`]
    /// it does not clone the address (a clone allocates), for callers on a hot path.
    pub fn with_addr<R>(&self, f: impl FnOnce(&Addr<A>) -> R) -> Option<R> {
        self.inner.live.read().as_ref().map(|l| f(&l.addr))
    }

    pub fn is_live(&self) -> bool {
        self.inner.live.read().is_some()
    }

    /// Whether an actor is live and its mailbox still open: `false` also in the moment
    /// between an actor's death and its slot being cleared, so a router can skip it before
    /// sending.
    pub fn is_connected(&self) -> bool {
        self.with_addr(|a| a.connected()).unwrap_or(false)
    }

    /// Messages sent through this slot and not answered yet (waiting in the actor's queue
    /// or in flight there): how busy the actor is, as a router choosing among siblings
    /// sees it.
    pub fn pending(&self) -> u64 {
        self.inner
            .metrics
            .get()
            .map(|m| m.pending.load(Ordering::Relaxed).max(0) as u64)
            .unwrap_or(0)
    }

    /// Sends `msg` and waits for the answer; waits for mailbox space when it is full.
    pub fn send<M>(&self, msg: M) -> impl Future<Output = Result<M::Result, SlotError>> + 'static
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let sent = {
            let live = self.inner.live.read();
            match (live.as_ref(), self.inner.metrics.get()) {
                (Some(live), Some(metrics)) => {
                    let request = live.addr.send(msg);
                    Ok((request, InFlight::new(metrics)))
                }
                _ => Err(self.vacant()),
            }
        };
        async move {
            let (request, in_flight) = sent?;
            let answer = request.await;
            match answer {
                Ok(value) => {
                    in_flight.answered();
                    Ok(value)
                }
                Err(MailboxError::Closed) => Err(SlotError::Closed {
                    actor: in_flight.label(),
                }),
                Err(MailboxError::Timeout) => Err(SlotError::Timeout {
                    actor: in_flight.label(),
                }),
            }
        }
    }

    /// Sends without waiting for an answer or for mailbox space. Counted as handled when
    /// enqueued, since no answer will tell when it was; not part of the mailbox depth.
    pub fn do_send<M>(&self, msg: M) -> Result<(), SlotError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let live = self.inner.live.read();
        let Some(live) = live.as_ref() else {
            return Err(self.vacant());
        };
        if !live.addr.connected() {
            return Err(SlotError::Closed {
                actor: self.label().to_string(),
            });
        }
        live.addr.do_send(msg);
        if let Some(m) = self.inner.metrics.get() {
            m.handled.increment(1);
        }
        Ok(())
    }

    /// Enqueues `msg` unless the mailbox is full; no answer. Counted like [`Slot::do_send`].
    pub fn try_send<M>(&self, msg: M) -> Result<(), SlotError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let live = self.inner.live.read();
        let Some(live) = live.as_ref() else {
            return Err(self.vacant());
        };
        let actor = || self.label().to_string();
        match live.addr.try_send(msg) {
            Ok(()) => {
                if let Some(m) = self.inner.metrics.get() {
                    m.handled.increment(1);
                }
                Ok(())
            }
            Err(SendError::Full(_)) => Err(SlotError::Full { actor: actor() }),
            Err(SendError::Closed(_)) => Err(SlotError::Closed { actor: actor() }),
        }
    }

    fn vacant(&self) -> SlotError {
        SlotError::Vacant {
            actor: self.label().to_string(),
        }
    }

    pub(crate) fn next_token(&self) -> u64 {
        NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn fill(&self, addr: Addr<A>, token: u64, path: &str) {
        self.inner.metrics.get_or_init(|| {
            Arc::new(Metrics {
                label: path.to_string(),
                depth: metrics::gauge!("orrery_actor_mailbox_depth", "actor" => path.to_string()),
                pending: Arc::new(AtomicI64::new(0)),
                handled: super::messages_counter(path),
            })
        });
        *self.inner.live.write() = Some(Live { addr, token });
    }

    /// The readable mailbox depth, once the slot has been filled.
    pub(crate) fn depth_probe(&self) -> Option<Arc<AtomicI64>> {
        self.inner.metrics.get().map(|m| m.pending.clone())
    }

    /// Clears the slot if it still holds the actor filled with `token`.
    pub(crate) fn vacate(&self, token: u64) {
        let mut live = self.inner.live.write();
        if live.as_ref().is_some_and(|l| l.token == token) {
            *live = None;
        }
    }
}

/// One message between send and answer: counted in the mailbox depth until answered or
/// dropped (a caller that gives up still stops counting).
struct InFlight {
    metrics: Arc<Metrics>,
}

impl InFlight {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.depth.increment(1.0);
        metrics.pending.fetch_add(1, Ordering::Relaxed);
        Self {
            metrics: metrics.clone(),
        }
    }

    fn answered(&self) {
        self.metrics.handled.increment(1);
    }

    fn label(&self) -> String {
        self.metrics.label.clone()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.depth.decrement(1.0);
        self.metrics.pending.fetch_sub(1, Ordering::Relaxed);
    }
}
