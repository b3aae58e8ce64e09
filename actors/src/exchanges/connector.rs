//! The connector actor: one per venue account, the only way to reach a [`Venue`].
//!
//! Owns: the venue's mailbox (bounded by the supervisor), the order in which calls reach the
//! venue, and per-venue request metrics. It receives typed [`VenueRequest`]s (a
//! [`super::command::VenueCommand`] and its priority), never closures, and answers each
//! with a [`VenueReply`]. Never: the ledger or risk decisions (the
//! gateway's), retries of order sends, or a venue's wire format, rate limits, breaker and
//! read retries (each venue module keeps its own: Hyperliquid a weight pool, breaker and
//! retry policy; Binance its weight and order pools and the 429/418 gate).
//!
//! Ordering. At most `resilience.queue.max_in_flight` calls run at the venue at once; the
//! rest wait in a bounded [`PriorityQueue`] named after the venue: High (cancels,
//! reduce-only orders, and every call of a close, kill-switch or cancel flow), Medium (new
//! orders, leverage, reconciliation), Low (market data and account reads, which age up one
//! level per `aging_step` so they are never starved). A full level refuses the call at once
//! with [`VenueError::Overloaded`], never buffering without bound. The priority is the
//! request's, decided where it was made; the connector never re-derives it. Each call runs
//! inside it ([`call_priority::within`]), so the venue's own limiter waits use it too.
//!
//! The venue's limiter as the bottleneck. Venues draw their weights inside the call, from
//! one wait queue per endpoint: a cancel and a quote waiting for the same exhausted pool
//! would race each other there. So while the venue reports no headroom
//! ([`Venue::saturated`]) the connector lets only one call into it at a time (it waits in
//! the venue's limiter, or fails fast when the wait would pass its deadline) and keeps the
//! rest here, in priority order; it looks again when a call finishes and every
//! [`SATURATION_RECHECK`].
//!
//! A call whose caller stopped waiting while it was queued (its deadline passed) is dropped
//! unsent: an order the gateway already treats as timed out must not leave afterwards.
//!
//! Siblings. An account with several base endpoints has one connector per endpoint
//! ([`Connector::sibling`]), each with its own queue (named after the connector, e.g.
//! `binance#2`), its own venue object (HTTP client, breaker) and the account's shared rate
//! limits. Each publishes its venue's breaker state to its [`ConnectorProbe`] for the
//! gateway's routing (see [`super::siblings`]) and counts its calls in
//! `orrery_exchange_connector_requests_total{venue,connector,outcome}` and
//! `orrery_exchange_connector_up{venue,connector}`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, ResponseFuture, WrapFuture};
use futures::FutureExt;
use parking_lot::RwLock;
use tokio::sync::{oneshot, Notify};

use super::call_priority;
use super::command::{VenueCommand, VenueReply, VenueRequest};
use super::venue::{Venue, VenueError, VenueResult};
use crate::resilience::config::QueueConfig;
use crate::resilience::{BreakerState, Priority, PriorityQueue, TokioClock};
use crate::telemetry::names;

/// How often a saturated venue is asked again whether it has headroom, when no call
/// finishes in between.
pub const SATURATION_RECHECK: Duration = Duration::from_millis(10);

/// A queued request and where its answer goes.
struct Job {
    command: VenueCommand,
    priority: Priority,
    send_by: Option<tokio::time::Instant>,
    reply: oneshot::Sender<VenueResult<VenueReply>>,
}

/// Calls in flight, and a wake-up when one finishes.
#[derive(Default)]
struct Slots {
    in_flight: AtomicUsize,
    finished: Notify,
}

/// Wraps one venue account (or one endpoint of it, among siblings).
pub struct Connector {
    venue: Arc<dyn Venue>,
    /// The connector's name: the venue's, or `<venue>#<n>` among siblings.
    name: Arc<str>,
    probe: ConnectorProbe,
    queue: Arc<PriorityQueue<Job>>,
    max_in_flight: usize,
    slots: Arc<Slots>,
}

impl Connector {
    /// A connector with the default queue (see [`QueueConfig`]).
    pub fn new(venue: Arc<dyn Venue>) -> Self {
        Self::with_queue(venue, &QueueConfig::default())
    }

    /// A connector whose queue bounds, aging and concurrency come from `queue` (the venue
    /// section's `resilience.queue`, validated at start).
    pub fn with_queue(venue: Arc<dyn Venue>, queue: &QueueConfig) -> Self {
        let name = venue.name().to_string();
        Self::sibling(venue, queue, &name, ConnectorProbe::default())
    }

    /// One of an account's connectors: `name` names its queue and its metrics, and
    /// `probe` (the gateway's view of it) is pointed at `venue` when it starts.
    pub fn sibling(
        venue: Arc<dyn Venue>,
        queue: &QueueConfig,
        name: &str,
        probe: ConnectorProbe,
    ) -> Self {
        Self {
            venue,
            name: Arc::from(name),
            probe,
            queue: Arc::new(PriorityQueue::new(
                name.to_string(),
                queue.bounds(),
                TokioClock::shared(),
            )),
            max_in_flight: queue.max_in_flight.max(1),
            slots: Arc::new(Slots::default()),
        }
    }

    fn up(&self, up: bool) {
        metrics::gauge!(names::CONNECTOR_UP, "venue" => self.venue.name().to_string(), "connector" => self.name.to_string())
            .set(if up { 1.0 } else { 0.0 });
    }
}

impl Drop for Connector {
    /// Also on a panic: the actor is dropped when its context unwinds.
    fn drop(&mut self) {
        self.up(false);
    }
}

impl Actor for Connector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.probe.attach(&self.venue);
        self.up(true);
        // Spawned in the actor's context: it stops with the actor, and queued calls are
        // dropped with the queue (their callers get an error, nothing is sent).
        let dispatch = dispatch(
            self.venue.clone(),
            self.name.clone(),
            self.queue.clone(),
            self.slots.clone(),
            self.max_in_flight,
        );
        ctx.spawn(dispatch.into_actor(self));
    }
}

/// Takes queued calls in priority order whenever a slot is free and the venue can take
/// one, and runs each in its own task.
async fn dispatch(
    venue: Arc<dyn Venue>,
    name: Arc<str>,
    queue: Arc<PriorityQueue<Job>>,
    slots: Arc<Slots>,
    max_in_flight: usize,
) {
    loop {
        queue.wait_non_empty().await;
        let in_flight = slots.in_flight.load(Ordering::Acquire);
        if in_flight >= max_in_flight {
            slots.finished.notified().await;
            continue;
        }
        if in_flight > 0 && venue.saturated() {
            tokio::select! {
                _ = slots.finished.notified() => {}
                _ = tokio::time::sleep(SATURATION_RECHECK) => {}
            }
            continue;
        }
        let Some(popped) = queue.try_pop() else {
            continue;
        };
        slots.in_flight.fetch_add(1, Ordering::AcqRel);
        let (venue, name, slots) = (venue.clone(), name.clone(), slots.clone());
        actix::spawn(async move {
            serve(venue, &name, popped.item).await;
            slots.in_flight.fetch_sub(1, Ordering::AcqRel);
            slots.finished.notify_one();
        });
    }
}

/// Runs one request against the venue and hands the answer to its caller.
async fn serve(venue: Arc<dyn Venue>, connector: &str, job: Job) {
    let Job {
        command,
        priority,
        send_by,
        reply,
    } = job;
    let venue_name = venue.name().to_string();
    let endpoint = command.endpoint();
    if reply.is_closed() {
        // The caller gave up while the call waited: never send it now.
        count(&venue_name, endpoint, "abandoned");
        return;
    }
    if command.changes_state() && send_by.is_some_and(|at| tokio::time::Instant::now() >= at) {
        // Queued past the sender's right to send (its lease on the account): never sent.
        count(&venue_name, endpoint, "send_by_passed");
        let _ = reply.send(Err(VenueError::NotSent {
            venue: venue_name,
            reason: format!("{endpoint} waited in the connector's queue past its send-by instant (the sender's lease on the account ends there)"),
        }));
        return;
    }
    let started = Instant::now();
    // Served at the request's priority: the venue's limiter waits read it.
    let run = call_priority::within(
        priority,
        crate::resilience::guard::sending_by(send_by, command.run(venue)),
    );
    let result = match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        // The caller always gets an answer and the slot is always freed; a call that
        // panicked may have reached the venue.
        Err(_) => Err(VenueError::OutcomeUnknown {
            venue: venue_name.clone(),
            reason: format!(
                "the {endpoint} call panicked; whether it reached the venue is unknown"
            ),
        }),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    count(&venue_name, endpoint, outcome);
    metrics::counter!(names::CONNECTOR_REQUESTS, "venue" => venue_name.clone(), "connector" => connector.to_string(), "outcome" => outcome).increment(1);
    metrics::histogram!(names::VENUE_REQUEST_DURATION, "venue" => venue_name, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    let _ = reply.send(result);
}

impl Handler<VenueRequest> for Connector {
    type Result = ResponseFuture<VenueResult<VenueReply>>;

    fn handle(&mut self, msg: VenueRequest, _: &mut Context<Self>) -> Self::Result {
        let venue_name = self.venue.name().to_string();
        let VenueRequest {
            command,
            priority,
            send_by,
        } = msg;
        let endpoint = command.endpoint();
        let (reply, rx) = oneshot::channel();
        let job = Job {
            command,
            priority,
            send_by,
            reply,
        };
        if let Err(full) = self.queue.push(job, priority) {
            count(&venue_name, endpoint, "overloaded");
            let refused = VenueError::Overloaded {
                venue: venue_name,
                reason: full.to_string(),
            };
            return Box::pin(async move { Err(refused) });
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(VenueError::NotSent {
                    venue: venue_name,
                    reason: "the connector stopped before the call was sent; it was not sent"
                        .into(),
                })
            })
        })
    }
}

fn count(venue: &str, endpoint: &'static str, outcome: &'static str) {
    metrics::counter!(names::VENUE_REQUESTS, "venue" => venue.to_string(), "endpoint" => endpoint, "outcome" => outcome).increment(1);
}

/// What the gateway reads of a connector's venue without a message round trip: the
/// state of its breaker. Filled by the connector when it starts (a restarted one replaces
/// it); holds only a weak reference, so a dead connector's venue is freed.
#[derive(Clone, Default)]
pub struct ConnectorProbe {
    venue: Arc<RwLock<Option<Weak<dyn Venue>>>>,
}

impl std::fmt::Debug for ConnectorProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorProbe")
            .field("breaker", &self.breaker())
            .finish()
    }
}

impl ConnectorProbe {
    /// Points the probe at the venue a (re)started connector serves.
    pub(crate) fn attach(&self, venue: &Arc<dyn Venue>) {
        *self.venue.write() = Some(Arc::downgrade(venue));
    }

    /// The breaker state of the connector's venue, if it is alive and has a breaker.
    pub fn breaker(&self) -> Option<BreakerState> {
        let venue = self.venue.read().as_ref()?.upgrade()?;
        venue.breaker_state()
    }
}

#[cfg(test)]
mod tests;
