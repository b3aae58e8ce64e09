//! The engine's event stream for an embedding program: every decision, order transition,
//! fill and trading-mode change, as typed [`EngineEvent`]s on a tokio broadcast channel
//! ([`crate::EngineHandle::events`]).
//!
//! Owns: watching the sled trees where those facts are recorded — `decisions` (the
//! journal), `orders` (the ledger), `fills` and the `mode` key of `risk` — and turning each
//! write into an event. Never: sends anything, or slows down the writer: the watches are
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
//! venue id filled in) is not a transition and sends no event. A receiver that falls
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
use orrery_actors::store::{trees, Record, Store, StoreError, Watch};
use parking_lot::Mutex;
use rust_decimal::Decimal;
use tokio::sync::broadcast;

/// Events a receiver may fall behind by before it loses the oldest.
pub const CAPACITY: usize = 1024;

/// Key of the trading mode in the `risk` tree (written by the gateway).
const MODE_KEY: &str = "mode";

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
// Each value lives only from its watch to the broadcast (one at a time per stream), and the
// decision is moved into an `Arc` right after, so boxing it here would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Raw {
    Decision(String, Result<DecisionRecord, StoreError>),
    Order(String, Result<LedgerEntry, StoreError>),
    Fill(String, Result<FillRecord, StoreError>),
    Mode(String, Result<ModeState, StoreError>),
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
        let (tx, _) = broadcast::channel(CAPACITY);
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        let raw = futures::stream::select_all([
            stream(decisions, Raw::Decision),
            stream(orders, Raw::Order),
            stream(fills, Raw::Fill),
            stream(mode, Raw::Mode),
        ])
        .take_until(stopped);
        let sender = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("orrery-events".into())
            .spawn(move || futures::executor::block_on(pump(raw, sender)));
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

async fn pump(
    mut raw: impl futures::Stream<Item = Raw> + Unpin,
    tx: broadcast::Sender<EngineEvent>,
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
            Raw::Decision(key, Err(e)) => Some(unreadable(trees::DECISIONS, key, e)),
            Raw::Order(key, Err(e)) => Some(unreadable(trees::ORDERS, key, e)),
            Raw::Fill(key, Err(e)) => Some(unreadable(trees::FILLS, key, e)),
            Raw::Mode(key, Err(e)) => Some(unreadable(trees::RISK, key, e)),
        };
        if let Some(event) = event {
            // No receiver is not an error: nobody listens yet.
            let _ = tx.send(event);
        }
    }
}

fn unreadable(tree: &'static str, key: String, e: StoreError) -> EngineEvent {
    EngineEvent::Unreadable {
        tree,
        key,
        error: e.to_string(),
    }
}
