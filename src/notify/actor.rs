//! The `Notifier` actor: receives the engine's events, turns them into notices, and
//! delivers them to every sink that asked for their kind, each sink on its own task.
//!
//! Owns: one [`SinkGate`] (dedup, bounded queue, rate limit) and one delivery task per
//! sink, the daily PnL summary's schedule, and each sink's status record (sled
//! `notifications`, key `sink/<name>`: counts, last delivery, last failure — never a URL or
//! a token). Never: blocks or slows trading. Events come from the broadcast of
//! [`crate::events`], which never waits for a receiver; a sink that hangs holds only its
//! own task, whose requests each have a deadline, and its own queue, which drops its
//! oldest notice (counted) when full; the mailbox takes only `orrery notify test` and
//! status reads.
//!
//! Events that arrive while the notifier restarts are not notified (the broadcast keeps
//! no history for a new receiver); the facts stay in sled and in `orrery status`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{NaiveDate, NaiveTime};
use orrery_actors::clock::{Millis, SharedClock};
use orrery_actors::exchanges::gateway::{GetAccount, OrderGateway};
use orrery_actors::exchanges::ledger::FillRecord;
use orrery_actors::store::{trees, Store, Tree};
use orrery_actors::supervisor::Slot;
use parking_lot::Mutex;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};

use super::config::{EventKind, NotificationsConfig, ResolvedSink};
use super::gate::{Next, Offer, SinkGate};
use super::notice::{daily_summary, summary_due, Notice, NoticeMaker};
use super::sink::{deliver, kinds_of, Delivery, RetryPlan};
use super::{
    SinkStatus, METRIC_DEDUPLICATED, METRIC_DROPPED, METRIC_FAILED, METRIC_LAGGED, METRIC_QUEUED,
    METRIC_RETRIES, METRIC_SENT, NOTIFICATIONS_TREE,
};
use crate::events::EngineEvent;

/// How often the daily summary's time is checked.
const SUMMARY_TICK: Duration = Duration::from_secs(1);
/// Longest a rate-limited sink sleeps before it looks at the clock again (the clock is
/// injectable: a test that moves it must not wait out a long interval).
const MAX_IDLE_WAIT: Duration = Duration::from_millis(250);
/// Deadline of each gateway read of the daily summary.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the last summary day in the `notifications` tree.
const SUMMARY_KEY: &str = "summary/last_day";

/// The day the last summary was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub day: NaiveDate,
}
impl orrery_actors::store::Record for SummaryRecord {}

/// Why a notifier call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("no notification sink named `{name}`; configured: {known}")]
    UnknownSink { name: String, known: String },
    #[error("no notification sinks are configured; add [[notifications.sinks]]")]
    NoSinks,
    #[error("notification sink {0}")]
    Resolve(#[from] super::config::ResolveError),
    #[error("cannot build the HTTP client of the notification sinks: {0}")]
    Client(String),
}

/// One sink: its gate, its wake-up, its status.
pub(crate) struct SinkWorker {
    pub(crate) sink: ResolvedSink,
    gate: Mutex<SinkGate>,
    wake: Notify,
    status: Mutex<SinkStatus>,
    records: Option<Tree<SinkStatus>>,
}

impl SinkWorker {
    pub(crate) fn new(
        sink: ResolvedSink,
        config: &NotificationsConfig,
        records: Option<Tree<SinkStatus>>,
    ) -> Self {
        let status = records
            .as_ref()
            .and_then(|t| t.get(&super::status_key(&sink.name)).ok().flatten())
            .unwrap_or_else(|| SinkStatus::new(&sink.name, sink.kind, &sink.events));
        let gate = SinkGate::new(ms(config.dedup_window), ms(sink.min_interval), config.queue);
        for kind in kinds_of(&sink) {
            let labels = [
                ("sink", sink.name.clone()),
                ("kind", kind.label().to_string()),
            ];
            for name in [
                METRIC_SENT,
                METRIC_FAILED,
                METRIC_DROPPED,
                METRIC_RETRIES,
                METRIC_DEDUPLICATED,
            ] {
                metrics::counter!(name, &labels).increment(0);
            }
        }
        metrics::gauge!(METRIC_QUEUED, "sink" => sink.name.clone()).set(0.0);
        Self {
            sink,
            gate: Mutex::new(gate),
            wake: Notify::new(),
            status: Mutex::new(status),
            records,
        }
    }

    fn offer(&self, notice: Notice, now: Millis) {
        let kind = notice.kind;
        let offered = self.gate.lock().offer(notice, now);
        let labels = [
            ("sink", self.sink.name.clone()),
            ("kind", kind.label().to_string()),
        ];
        match offered {
            Offer::Queued => {}
            Offer::QueuedDropped(old) => {
                let labels = [
                    ("sink", self.sink.name.clone()),
                    ("kind", old.kind.label().to_string()),
                ];
                metrics::counter!(METRIC_DROPPED, &labels).increment(1);
                tracing::warn!(sink = %self.sink.name, kind = old.kind.label(), key = %old.key, "notification queue full; dropped its oldest notice");
                self.update(|s| s.dropped += 1);
            }
            Offer::Duplicate => {
                metrics::counter!(METRIC_DEDUPLICATED, &labels).increment(1);
                self.update(|s| s.deduplicated += 1);
                return;
            }
        }
        self.queued_gauge();
        self.wake.notify_one();
    }

    fn queued_gauge(&self) {
        let n = self.gate.lock().queued();
        metrics::gauge!(METRIC_QUEUED, "sink" => self.sink.name.clone()).set(n as f64);
    }

    fn update(&self, f: impl FnOnce(&mut SinkStatus)) {
        let snapshot = {
            let mut s = self.status.lock();
            f(&mut s);
            s.clone()
        };
        if let Some(t) = &self.records {
            // Status only: not flushed here (sled flushes within a second).
            if let Err(e) = t.put(&super::status_key(&self.sink.name), &snapshot) {
                tracing::warn!(sink = %self.sink.name, error = %e, "cannot record the notification sink's status");
            }
        }
    }

    pub(crate) fn record(&self, delivery: &Delivery, now: Millis) {
        self.update(|s| {
            s.retries += u64::from(delivery.attempts.saturating_sub(1));
            match &delivery.error {
                None => {
                    s.sent += 1;
                    s.last_delivery_ms = Some(now);
                }
                Some(e) => {
                    s.failed += 1;
                    s.last_failure_ms = Some(now);
                    s.last_error = Some(e.to_string());
                }
            }
        });
    }

    pub(crate) fn status(&self) -> SinkStatus {
        let mut s = self.status.lock().clone();
        s.queued = self.gate.lock().queued();
        s
    }
}

fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX / 4)
}

/// The HTTP client of the sinks: one per notifier (connection reuse), no redirects (a
/// webhook that redirects is misconfigured, and a redirect would carry the body elsewhere).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("orrery/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NotifyError::Client(e.without_url().to_string()))
}

/// The notifier.
pub struct Notifier {
    workers: Vec<Arc<SinkWorker>>,
    events: Option<broadcast::Receiver<EngineEvent>>,
    maker: NoticeMaker,
    clock: SharedClock,
    plan: RetryPlan,
    client: reqwest::Client,
    store: Store,
    gateway: Slot<OrderGateway>,
    venues: Vec<String>,
    summary_at: Option<NaiveTime>,
    last_summary: Option<NaiveDate>,
    summary_busy: bool,
    messages: metrics::Counter,
}

/// What the factory hands the notifier.
pub struct NotifierDeps {
    pub events: broadcast::Receiver<EngineEvent>,
    pub clock: SharedClock,
    pub store: Store,
    pub gateway: Slot<OrderGateway>,
    pub venues: Vec<String>,
}

impl Notifier {
    /// A notifier for `config`'s sinks, secrets read through `env`.
    pub fn new(
        config: &NotificationsConfig,
        env: orrery_actors::env::EnvLookup<'_>,
        deps: NotifierDeps,
    ) -> Result<Self, NotifyError> {
        let records = deps.store.tree::<SinkStatus>(NOTIFICATIONS_TREE).ok();
        let workers = config
            .resolve(env)?
            .into_iter()
            .map(|s| Arc::new(SinkWorker::new(s, config, records.clone())))
            .collect();
        let last_summary = deps
            .store
            .tree::<SummaryRecord>(NOTIFICATIONS_TREE)
            .ok()
            .and_then(|t| t.get(SUMMARY_KEY).ok().flatten())
            .map(|r| r.day);
        Ok(Self {
            workers,
            events: Some(deps.events),
            maker: NoticeMaker::default(),
            clock: deps.clock,
            plan: RetryPlan::from_config(config),
            client: client(config.timeout)?,
            store: deps.store,
            gateway: deps.gateway,
            venues: deps.venues,
            summary_at: config
                .daily_summary
                .as_deref()
                .and_then(super::config::parse_time_of_day),
            last_summary,
            summary_busy: false,
            messages: metrics::Counter::noop(),
        })
    }

    /// Counts every message and event handled in `counter` (the supervisor's
    /// per-actor series).
    pub fn counting_messages_in(mut self, counter: metrics::Counter) -> Self {
        self.messages = counter;
        self
    }

    fn offer(&self, notice: Notice) {
        let now = self.clock.now_ms();
        for w in self
            .workers
            .iter()
            .filter(|w| w.sink.events.contains(&notice.kind))
        {
            w.offer(notice.clone(), now);
        }
    }

    fn check_summary(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.summary_at else { return };
        if self.summary_busy {
            return;
        }
        let now = self.clock.now_ms();
        let Some(day) = summary_due(at, self.last_summary, now) else {
            return;
        };
        self.summary_busy = true;
        let (gateway, venues, store) = (
            self.gateway.clone(),
            self.venues.clone(),
            self.store.clone(),
        );
        let compose = async move {
            let mut accounts = BTreeMap::new();
            for venue in venues {
                let answer = tokio::time::timeout(
                    ACCOUNT_TIMEOUT,
                    gateway.send(GetAccount {
                        venue: venue.clone(),
                    }),
                )
                .await;
                let account = match answer {
                    Ok(Ok(Ok(a))) => Some(a),
                    _ => None,
                };
                accounts.insert(venue, account);
            }
            let fills: Vec<FillRecord> = match store.tree::<FillRecord>(trees::FILLS) {
                Ok(t) => t.iter().filter_map(Result::ok).map(|(_, f)| f).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "daily PnL summary: cannot read the fills");
                    Vec::new()
                }
            };
            daily_summary(day, now, fills, accounts)
        };
        ctx.spawn(actix::fut::wrap_future(compose).map(move |notice, act: &mut Self, _| {
            act.summary_busy = false;
            act.last_summary = Some(day);
            if let Ok(t) = act.store.tree::<SummaryRecord>(NOTIFICATIONS_TREE) {
                if let Err(e) = t.put(SUMMARY_KEY, &SummaryRecord { day }) {
                    tracing::warn!(error = %e, "cannot record the daily summary's day; it may be sent again after a restart");
                }
            }
            tracing::info!(day = %day, "daily PnL summary queued for the notification sinks");
            act.offer(notice);
        }));
    }
}

/// One delivery task: takes what its gate lets through and delivers it.
async fn run_sink(
    worker: Arc<SinkWorker>,
    client: reqwest::Client,
    plan: RetryPlan,
    clock: SharedClock,
) {
    let mut rng = rand::rngs::StdRng::from_entropy();
    loop {
        let next = worker.gate.lock().next(clock.now_ms());
        match next {
            Next::Idle => worker.wake.notified().await,
            Next::Wait(wait) => {
                let wait =
                    Duration::from_millis(u64::try_from(wait).unwrap_or(0)).min(MAX_IDLE_WAIT);
                tokio::time::sleep(wait).await;
            }
            Next::Send(notice) => {
                worker.queued_gauge();
                let delivery = deliver(&client, &worker.sink, &notice, &plan, &mut rng).await;
                worker.record(&delivery, clock.now_ms());
            }
        }
    }
}

/// What the broadcast gave.
enum Incoming {
    // Boxed: an event (a decision record with its prompt) is large beside a count.
    Event(Box<EngineEvent>),
    Lagged(u64),
}

impl Message for Incoming {
    type Result = ();
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for w in &self.workers {
            ctx.spawn(actix::fut::wrap_future(run_sink(
                w.clone(),
                self.client.clone(),
                self.plan.clone(),
                self.clock.clone(),
            )));
        }
        if let Some(rx) = self.events.take() {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Ok(e) => Some((Incoming::Event(Box::new(e)), rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => Some((Incoming::Lagged(n), rx)),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            });
            ctx.add_stream(stream);
        }
        ctx.run_interval(SUMMARY_TICK, |act, ctx| act.check_summary(ctx));
        self.check_summary(ctx);
        tracing::info!(
            sinks = ?self.workers.iter().map(|w| format!("{} ({})", w.sink.name, w.sink.kind.label())).collect::<Vec<_>>(),
            daily_summary = ?self.summary_at,
            "notifier started"
        );
    }
}

impl StreamHandler<Incoming> for Notifier {
    fn handle(&mut self, item: Incoming, _: &mut Context<Self>) {
        self.messages.increment(1);
        match item {
            Incoming::Event(e) => {
                if let Some(notice) = self.maker.notice(&e, self.clock.now_ms()) {
                    self.offer(notice);
                }
            }
            Incoming::Lagged(n) => {
                metrics::counter!(METRIC_LAGGED).increment(n);
                tracing::warn!(
                    missed = n,
                    "the notifier fell behind the event stream; {n} event(s) were not notified"
                );
            }
        }
    }

    /// The stream ends when the engine shuts down; the actor stops with the tree.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

/// `orrery notify test`: one test message to `sink` (every sink when `None`), delivered
/// at once with the usual retries (not through the queue, so a sink stuck behind a slow
/// receiver still gets its test now).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<TestOutcome>, NotifyError>")]
pub struct SendTest {
    pub sink: Option<String>,
}

/// The result of one sink's test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub sink: String,
    pub kind: String,
    pub delivered: bool,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every sink's status now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<SinkStatus>")]
pub struct GetSinks;

impl Handler<GetSinks> for Notifier {
    type Result = MessageResult<GetSinks>;
    fn handle(&mut self, _: GetSinks, _: &mut Context<Self>) -> Self::Result {
        self.messages.increment(1);
        MessageResult(self.workers.iter().map(|w| w.status()).collect())
    }
}

/// The workers `sink` names (all when `None`).
pub(crate) fn pick(
    workers: &[Arc<SinkWorker>],
    sink: Option<&str>,
) -> Result<Vec<Arc<SinkWorker>>, NotifyError> {
    if workers.is_empty() {
        return Err(NotifyError::NoSinks);
    }
    match sink {
        None => Ok(workers.to_vec()),
        Some(name) => workers
            .iter()
            .find(|w| w.sink.name == name)
            .map(|w| vec![w.clone()])
            .ok_or_else(|| NotifyError::UnknownSink {
                name: name.to_string(),
                known: workers
                    .iter()
                    .map(|w| w.sink.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
    }
}

/// Sends a test notice to each of `workers` and records the outcomes.
pub(crate) async fn send_tests(
    workers: Vec<Arc<SinkWorker>>,
    client: reqwest::Client,
    plan: RetryPlan,
    clock: SharedClock,
) -> Vec<TestOutcome> {
    let now = clock.now_ms();
    let notice = Notice::new(
        EventKind::Test,
        format!("test/{now}"),
        "Test",
        "a test message from `orrery notify test`: this sink works",
        now,
    );
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut out = Vec::new();
    for w in workers {
        let d = deliver(&client, &w.sink, &notice, &plan, &mut rng).await;
        w.record(&d, clock.now_ms());
        out.push(TestOutcome {
            sink: w.sink.name.clone(),
            kind: w.sink.kind.label().to_string(),
            delivered: d.error.is_none(),
            attempts: d.attempts,
            error: d.error.map(|e| e.to_string()),
        });
    }
    out
}

impl Handler<SendTest> for Notifier {
    type Result = ResponseFuture<Result<Vec<TestOutcome>, NotifyError>>;
    fn handle(&mut self, msg: SendTest, _: &mut Context<Self>) -> Self::Result {
        self.messages.increment(1);
        let picked = pick(&self.workers, msg.sink.as_deref());
        let (client, plan, clock) = (self.client.clone(), self.plan.clone(), self.clock.clone());
        Box::pin(async move { Ok(send_tests(picked?, client, plan, clock).await) })
    }
}

#[cfg(test)]
mod tests;
