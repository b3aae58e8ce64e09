//! The engine's event stream for an embedding program: every decision, order transition,
//! fill, trading-mode change, circuit-breaker state change and failed actor, as typed
//! [`EngineEvent`]s on a tokio broadcast channel ([`crate::EngineHandle::events`]; the
//! notifier, [`crate::notify`], is one of its receivers).
//!
//! Owns: watching the sled trees where those facts are recorded — `decisions` (the
//! journal), `orders` (the ledger), `fills`, the `mode` key of `risk`, the breaker records
//! of model deployments (`breakers`) and venue endpoints (`venue_breakers`), and the
//! supervisor's restart records (`meta`, `restarts/<path>`) — and turning each write into
//! an event. Never: sends anything, or slows down the writer: the watches are
//! drained by a thread of their own (sled makes a writer wait once a watch has 1024
//! undelivered writes, so a watch must never be drained by a task on a thread that also
//! writes), and the broadcast never waits for a slow receiver.
//!
//! Why the store and not a channel threaded through every actor: the store is where each
//! of these facts becomes true (an order transition exists once the ledger has it), every
//! actor of one engine writes to the same store and no other engine's actors do, so the
//! stream is complete and per engine, and the order path, the agents and the gateway need
//! no extra dependency.
//!
//! An order write that changes neither the status nor the filled size (a reason or a
//! venue id filled in) is not a transition and sends no event. A breaker record whose
//! state did not change, and a restart record whose last failure did not change (the
//! restart count of a sibling going up), send none either: the states and failures found
//! at start are the baseline, so a restart of the engine does not replay old failures. A receiver that falls
//! more than [`CAPACITY`] events behind gets `RecvError::Lagged(n)` and continues with
//! newer events; the data dir keeps everything it missed.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use orrery_actors::agents::DecisionRecord;
use orrery_actors::exchanges::gateway::OrderReport;
use orrery_actors::exchanges::ledger::{FillRecord, LedgerEntry};
use orrery_actors::exchanges::risk_gate::ModeState;
use orrery_actors::exchanges::OrderStatus;
use orrery_actors::resilience::{BreakerRecord, BreakerState};
use orrery_actors::store::{trees, Record, Store, StoreError, Watch};
use orrery_actors::supervisor::{restart_records, RestartRecord};
use parking_lot::Mutex;
use rust_decimal::Decimal;
use tokio::sync::broadcast;

/// Events a receiver may fall behind by before it loses the oldest.
pub const CAPACITY: usize = 1024;

/// Key of the trading mode in the `risk` tree (written by the gateway).
const MODE_KEY: &str = "mode";

/// Prefix of the supervisor's restart records in the `meta` tree.
const RESTARTS_PREFIX: &str = "restarts/";

/// One thing that happened in the engine.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// An agent's decision, as journaled (prompt, answers, verdict, outcome, orders).
    Decision(Arc<DecisionRecord>),
    /// An order changed status or filled size in the ledger.
    Order {
        /// The order as the ledger now has it.
        report: OrderReport,
        /// Who asked for it (`api`, `manual`, an agent's name, `external`, ...).
        origin: String,
        /// When the ledger recorded this transition, in Unix milliseconds.
        updated_ms: i64,
    },
    /// A fill was recorded (each venue fill once).
    Fill(FillRecord),
    /// The trading mode changed (normal, reducing, halted; the kill switch).
    Mode(ModeState),
    /// A circuit breaker changed state (`record.state`; `Open` is a target being refused).
    Breaker {
        /// The breaker's target (a model deployment, or a venue endpoint).
        target: String,
        /// The tree it is recorded in: `breakers` (models) or `venue_breakers`.
        tree: &'static str,
        /// Its state before, when it was known (recorded at start or seen since).
        from: Option<BreakerState>,
        /// The breaker's record as now written.
        record: BreakerRecord,
    },
    /// A supervised actor exited abnormally or failed to start (`record.last_reason`); its
    /// supervisor restarts it, or gives up past its restart intensity.
    ChildFailed {
        /// The actor's path in the tree, e.g. `engine/agents/trading-trend`.
        path: String,
        /// Its restart record as now written (count, last reason, when).
        record: RestartRecord,
    },
    /// A record was written that this binary cannot decode; the data dir still has it.
    Unreadable {
        /// The tree it was written to.
        tree: &'static str,
        /// Its key.
        key: String,
        /// Why it could not be decoded.
        error: String,
    },
}

/// The broadcast sender and the thread that feeds it.
#[derive(Clone)]
pub(crate) struct EventHub {
    tx: broadcast::Sender<EngineEvent>,
    stop: Arc<Mutex<Option<futures::channel::oneshot::Sender<()>>>>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("receivers", &self.tx.receiver_count())
            .finish()
    }
}

/// One write seen by a watch, before it becomes an event.
// A `Raw` is moved once from its watch into its event (a decision record, now with its
// prompt and members, is the large one); boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Raw {
    Decision(String, Result<DecisionRecord, StoreError>),
    Order(String, Result<LedgerEntry, StoreError>),
    Fill(String, Result<FillRecord, StoreError>),
    Mode(String, Result<ModeState, StoreError>),
    ModelBreaker(String, Result<BreakerRecord, StoreError>),
    VenueBreaker(String, Result<BreakerRecord, StoreError>),
    Restart(String, Result<RestartRecord, StoreError>),
}

fn stream<T: Record + Send + 'static>(
    watch: Watch<T>,
    wrap: fn(String, Result<T, StoreError>) -> Raw,
) -> BoxStream<'static, Raw> {
    futures::stream::unfold(watch, move |mut w| async move {
        let (key, value) = w.next().await?;
        Some((wrap(key, value), w))
    })
    .boxed()
}

impl EventHub {
    /// Watches `store` and starts the thread that turns its writes into events. The
    /// thread holds no store handle, so it never keeps the data dir open.
    pub(crate) fn start(store: &Store) -> Result<Self, StoreError> {
        let decisions = store.tree::<DecisionRecord>(trees::DECISIONS)?.watch("");
        let orders = store.tree::<LedgerEntry>(trees::ORDERS)?.watch("");
        let fills = store.tree::<FillRecord>(trees::FILLS)?.watch("");
        let mode = store.tree::<ModeState>(trees::RISK)?.watch(MODE_KEY);
        let model_tree = store.tree::<BreakerRecord>(trees::BREAKERS)?;
        let venue_tree = store.tree::<BreakerRecord>(trees::VENUE_BREAKERS)?;
        let model_breakers = model_tree.watch("");
        let venue_breakers = venue_tree.watch("");
        let restarts = store
            .tree::<RestartRecord>(trees::META)?
            .watch(RESTARTS_PREFIX);
        // The baseline, read after the watches exist so no write falls between the two (a
        // write seen by both only repeats a known state, which sends nothing).
        let mut baseline = Baseline::default();
        for (tree, t) in [
            (trees::BREAKERS, &model_tree),
            (trees::VENUE_BREAKERS, &venue_tree),
        ] {
            for (key, rec) in t.iter().flatten() {
                baseline.breakers.insert((tree, key), rec.state);
            }
        }
        for (path, rec) in restart_records(store)? {
            baseline.failures.insert(path, rec.last_failure_ms);
        }
        let (tx, _) = broadcast::channel(CAPACITY);
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        let raw = futures::stream::select_all([
            stream(decisions, Raw::Decision),
            stream(orders, Raw::Order),
            stream(fills, Raw::Fill),
            stream(mode, Raw::Mode),
            stream(model_breakers, Raw::ModelBreaker),
            stream(venue_breakers, Raw::VenueBreaker),
            stream(restarts, Raw::Restart),
        ])
        .take_until(stopped);
        let sender = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("orrery-events".into())
            .spawn(move || futures::executor::block_on(pump(raw, sender, baseline)));
        if let Err(e) = spawned {
            // Without the thread there are no events; the engine itself is unaffected.
            tracing::error!(error = %e, "cannot start the event stream thread; EngineHandle::events will stay silent");
        }
        Ok(Self {
            tx,
            stop: Arc::new(Mutex::new(Some(stop))),
        })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.tx.subscribe()
    }

    /// Ends the stream; receivers see `RecvError::Closed` once they have read what was
    /// sent before.
    pub(crate) fn stop(&self) {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
    }
}

/// What the breaker and restart records said when the stream started.
#[derive(Default)]
struct Baseline {
    breakers: HashMap<(&'static str, String), BreakerState>,
    failures: HashMap<String, Option<i64>>,
}

async fn pump(
    mut raw: impl futures::Stream<Item = Raw> + Unpin,
    tx: broadcast::Sender<EngineEvent>,
    mut baseline: Baseline,
) {
    // The last (status, filled) of every order not yet terminal, to send transitions only.
    let mut orders: HashMap<String, (OrderStatus, Decimal)> = HashMap::new();
    let mut mode: Option<ModeState> = None;
    while let Some(item) = raw.next().await {
        let event = match item {
            Raw::Decision(_, Ok(d)) => Some(EngineEvent::Decision(Arc::new(d))),
            Raw::Order(key, Ok(entry)) => {
                let now = (entry.status, entry.filled_size);
                let changed = orders.get(&key) != Some(&now);
                if entry.status.is_terminal() {
                    orders.remove(&key);
                } else {
                    orders.insert(key, now);
                }
                changed.then(|| EngineEvent::Order {
                    report: OrderReport::from(&entry),
                    origin: entry.origin.clone(),
                    updated_ms: entry.updated_ms,
                })
            }
            Raw::Fill(_, Ok(f)) => Some(EngineEvent::Fill(f)),
            Raw::Mode(_, Ok(m)) => {
                let same = mode.as_ref().is_some_and(|last| {
                    (last.mode, last.kill_switch, &last.reason)
                        == (m.mode, m.kill_switch, &m.reason)
                });
                mode = Some(m.clone());
                (!same).then_some(EngineEvent::Mode(m))
            }
            Raw::ModelBreaker(key, Ok(record)) => {
                breaker_event(&mut baseline, trees::BREAKERS, key, record)
            }
            Raw::VenueBreaker(key, Ok(record)) => {
                breaker_event(&mut baseline, trees::VENUE_BREAKERS, key, record)
            }
            Raw::Restart(key, Ok(record)) => {
                let path = key
                    .strip_prefix(RESTARTS_PREFIX)
                    .unwrap_or(&key)
                    .to_string();
                let before = baseline
                    .failures
                    .insert(path.clone(), record.last_failure_ms);
                (record.last_failure_ms.is_some() && before != Some(record.last_failure_ms))
                    .then_some(EngineEvent::ChildFailed { path, record })
            }
            Raw::Decision(key, Err(e)) => Some(unreadable(trees::DECISIONS, key, e)),
            Raw::Order(key, Err(e)) => Some(unreadable(trees::ORDERS, key, e)),
            Raw::Fill(key, Err(e)) => Some(unreadable(trees::FILLS, key, e)),
            Raw::Mode(key, Err(e)) => Some(unreadable(trees::RISK, key, e)),
            Raw::ModelBreaker(key, Err(e)) => Some(unreadable(trees::BREAKERS, key, e)),
            Raw::VenueBreaker(key, Err(e)) => Some(unreadable(trees::VENUE_BREAKERS, key, e)),
            Raw::Restart(key, Err(e)) => Some(unreadable(trees::META, key, e)),
        };
        if let Some(event) = event {
            // No receiver is not an error: nobody listens yet.
            let _ = tx.send(event);
        }
    }
}

/// A breaker write is an event when its state differs from the last one known.
fn breaker_event(
    baseline: &mut Baseline,
    tree: &'static str,
    target: String,
    record: BreakerRecord,
) -> Option<EngineEvent> {
    let from = baseline
        .breakers
        .insert((tree, target.clone()), record.state);
    (from != Some(record.state)).then_some(EngineEvent::Breaker {
        target,
        tree,
        from,
        record,
    })
}

fn unreadable(tree: &'static str, key: String, e: StoreError) -> EngineEvent {
    EngineEvent::Unreadable {
        tree,
        key,
        error: e.to_string(),
    }
}
