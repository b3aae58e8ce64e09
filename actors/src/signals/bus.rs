//! [`SignalBus`]: the broker actor. Agents (and the control API) publish through it,
//! subscribers get each matching signal as a [`Delivery`], and listings read its recent
//! signals.
//!
//! Owns: validation on publish (with its clock and `[signals] default_ttl`), the recent
//! signals in memory (a mirror of the `signals` tree, bounded by `max_kept`, the oldest
//! evicted first), expiry (a sweep every `sweep_interval` and before every listing), the
//! subscriptions, and the `orrery_signals_*` metrics. Never: waits on a subscriber — a
//! delivery is a `try_send`, so a full mailbox drops that one delivery (counted,
//! `reason="subscriber_full"`) and a stopped subscriber is dropped from the list
//! (`reason="subscriber_gone"`); the bus keeps serving either way.
//!
//! A restart (of the bus or of the engine) reloads every unexpired signal from sled, so a
//! restarted agent still reads what was said before; subscriptions are not persisted (a
//! subscriber re-subscribes when it starts, as its address changed anyway).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};

use crate::clock::{Millis, SharedClock};
use crate::store::{Store, StoreError};
use crate::telemetry::names;

use super::config::SignalsConfig;
use super::signal::{Signal, SignalError, SignalInput, SignalKind};
use super::store::{SignalFilter, SignalStore};

/// Every `reason` label of `orrery_signals_dropped_total`.
pub const DROP_REASONS: &[&str] = &[
    "subscriber_full",
    "subscriber_gone",
    "evicted",
    "expired",
    "bus_unavailable",
];

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The signal is not valid; [`SignalError::field`] names the field.
    #[error(transparent)]
    Invalid(#[from] SignalError),
    /// It could not be written to the data dir; nothing was delivered.
    #[error("cannot keep the signal: {0}")]
    Store(#[from] StoreError),
}

/// Publishes one signal: validated, stamped with the bus's clock, kept, then delivered.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Signal, PublishError>")]
pub struct Publish(pub SignalInput);

/// [`Publish`] without an answer, for publishers that never wait on the bus (an agent's
/// verdict): a refused signal is logged at `warn` by the bus, since nobody reads the
/// answer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Offer(pub SignalInput);

/// What a subscriber receives, one message per matching signal.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Delivery(pub Arc<Signal>);

/// Subscribes `recipient` to signals of `kinds` (empty: every kind) about `symbols`
/// (empty: every symbol). Answers the subscription's id.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Subscribe {
    pub kinds: Vec<SignalKind>,
    pub symbols: Vec<String>,
    pub recipient: Recipient<Delivery>,
}

/// Ends a subscription; answers whether it existed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
pub struct Unsubscribe(pub u64);

/// The recent signals matching the filter, newest first (expired ones are swept first).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Signal>")]
pub struct Recent(pub SignalFilter);

/// The bus's counters since it started, for tests and the operator.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "BusStats")]
pub struct GetStats;

/// Counters of one bus incarnation (the metrics carry the totals across restarts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    pub kept: usize,
    pub subscribers: usize,
    pub published: u64,
    pub delivered: u64,
    pub dropped_subscriber_full: u64,
    pub dropped_subscriber_gone: u64,
    pub evicted: u64,
    pub expired: u64,
}

struct Subscription {
    id: u64,
    kinds: Vec<SignalKind>,
    symbols: Vec<String>,
    recipient: Recipient<Delivery>,
}

impl Subscription {
    fn wants(&self, s: &Signal) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&s.kind))
            && (self.symbols.is_empty()
                || self
                    .symbols
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(&s.symbol)))
    }
}

/// The broker actor; see the module docs.
pub struct SignalBus {
    config: SignalsConfig,
    store: SignalStore,
    clock: SharedClock,
    /// Every unexpired signal by its tree key (oldest first), mirroring sled.
    kept: BTreeMap<String, Signal>,
    subscriptions: Vec<Subscription>,
    next_subscription: u64,
    stats: BusStats,
    /// `orrery_actor_messages_total` of the supervised actor, for the sweep timer.
    messages: metrics::Counter,
}

impl SignalBus {
    /// Opens the `signals` tree and reloads what is still alive (expired and unreadable
    /// records are removed, counted as `expired`), then applies `max_kept`.
    pub fn open(
        store: &Store,
        config: SignalsConfig,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let store = SignalStore::open(store)?;
        // Every series exists at 0 from the start, so `increase()` alerts see the first
        // drop and the families carry their HELP text before anything happened.
        metrics::counter!(names::SIGNALS_DELIVERED).increment(0);
        for reason in DROP_REASONS {
            metrics::counter!(names::SIGNALS_DROPPED, "reason" => *reason).increment(0);
        }
        let (alive, removed) = store.load_alive(clock.now_ms())?;
        let mut bus = Self {
            config,
            store,
            clock,
            kept: alive.into_iter().map(|s| (s.key(), s)).collect(),
            subscriptions: Vec::new(),
            next_subscription: 1,
            stats: BusStats::default(),
            messages: metrics::Counter::noop(),
        };
        bus.count_dropped("expired", removed as u64);
        bus.stats.expired += removed as u64;
        bus.evict_over_bound();
        bus.set_kept_gauge();
        if !bus.kept.is_empty() {
            tracing::info!(
                kept = bus.kept.len(),
                expired_removed = removed,
                "signal bus reloaded unexpired signals"
            );
        }
        Ok(bus)
    }

    /// Counts every sweep tick in `counter`; see
    /// [`crate::supervisor::StartCtx::messages_counter`].
    pub fn counting_messages_in(mut self, counter: metrics::Counter) -> Self {
        self.messages = counter;
        self
    }

    fn count_dropped(&self, reason: &'static str, n: u64) {
        if n > 0 {
            metrics::counter!(names::SIGNALS_DROPPED, "reason" => reason).increment(n);
        }
    }

    fn set_kept_gauge(&self) {
        metrics::gauge!(names::SIGNALS_KEPT).set(self.kept.len() as f64);
    }

    /// Removes the oldest signals beyond `max_kept`.
    fn evict_over_bound(&mut self) {
        let mut evicted = 0;
        while self.kept.len() > self.config.max_kept {
            let Some((_, s)) = self.kept.pop_first() else {
                break;
            };
            if let Err(e) = self.store.remove(&s) {
                tracing::warn!(error = %e, id = %s.id, "cannot remove an evicted signal from the data dir");
            }
            evicted += 1;
        }
        self.stats.evicted += evicted;
        self.count_dropped("evicted", evicted);
    }

    /// Removes every signal expired at `now_ms`.
    fn sweep(&mut self, now_ms: Millis) {
        let expired: Vec<String> = self
            .kept
            .iter()
            .filter(|(_, s)| s.is_expired(now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for key in &expired {
            if let Some(s) = self.kept.remove(key) {
                if let Err(e) = self.store.remove(&s) {
                    tracing::warn!(error = %e, id = %s.id, "cannot remove an expired signal from the data dir");
                }
            }
        }
        self.stats.expired += expired.len() as u64;
        self.count_dropped("expired", expired.len() as u64);
        self.set_kept_gauge();
    }

    fn deliver(&mut self, signal: &Arc<Signal>) {
        let mut delivered = 0u64;
        let (mut full, mut gone) = (0u64, 0u64);
        self.subscriptions.retain(|sub| {
            if !sub.wants(signal) {
                return true;
            }
            match sub.recipient.try_send(Delivery(signal.clone())) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(actix::prelude::SendError::Full(_)) => {
                    full += 1;
                    true
                }
                Err(actix::prelude::SendError::Closed(_)) => {
                    gone += 1;
                    tracing::debug!(
                        subscription = sub.id,
                        "dropping a stopped signal subscriber"
                    );
                    false
                }
            }
        });
        self.stats.delivered += delivered;
        self.stats.dropped_subscriber_full += full;
        self.stats.dropped_subscriber_gone += gone;
        if delivered > 0 {
            metrics::counter!(names::SIGNALS_DELIVERED).increment(delivered);
        }
        self.count_dropped("subscriber_full", full);
        self.count_dropped("subscriber_gone", gone);
    }
}

impl Actor for SignalBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.config.sweep_interval.is_zero() {
            ctx.run_interval(self.config.sweep_interval, |this, _| {
                this.messages.increment(1);
                let now = this.clock.now_ms();
                this.sweep(now);
            });
        }
    }
}

impl Handler<Publish> for SignalBus {
    type Result = Result<Signal, PublishError>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now_ms();
        let signal = msg.0.validate(now, self.config.default_ttl)?;
        self.store.put(&signal)?;
        metrics::counter!(
            names::SIGNALS_PUBLISHED,
            "kind" => signal.kind.label(),
            "source" => signal.source.clone()
        )
        .increment(1);
        self.stats.published += 1;
        tracing::debug!(
            id = %signal.id,
            source = %signal.source,
            symbol = %signal.symbol,
            kind = %signal.kind,
            direction = %signal.direction,
            confidence = signal.confidence,
            "signal published"
        );
        self.kept.insert(signal.key(), signal.clone());
        self.evict_over_bound();
        self.set_kept_gauge();
        self.deliver(&Arc::new(signal.clone()));
        Ok(signal)
    }
}

impl Handler<Offer> for SignalBus {
    type Result = ();

    fn handle(&mut self, msg: Offer, ctx: &mut Context<Self>) {
        let source = msg.0.source.clone();
        if let Err(e) = <Self as Handler<Publish>>::handle(self, Publish(msg.0), ctx) {
            tracing::warn!(source = %source, error = %e, "signal refused by the signal bus");
        }
    }
}

impl Handler<Subscribe> for SignalBus {
    type Result = u64;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> u64 {
        let id = self.next_subscription;
        self.next_subscription += 1;
        self.subscriptions.push(Subscription {
            id,
            kinds: msg.kinds,
            symbols: msg.symbols,
            recipient: msg.recipient,
        });
        id
    }
}

impl Handler<Unsubscribe> for SignalBus {
    type Result = bool;

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) -> bool {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|s| s.id != msg.0);
        self.subscriptions.len() != before
    }
}

impl Handler<Recent> for SignalBus {
    type Result = Vec<Signal>;

    fn handle(&mut self, msg: Recent, _: &mut Context<Self>) -> Vec<Signal> {
        let now = self.clock.now_ms();
        self.sweep(now);
        let filter = msg.0;
        let limit = filter.limit();
        self.kept
            .values()
            .rev()
            .take_while(|s| filter.since_ms.is_none_or(|t| s.time_ms >= t))
            .filter(|s| filter.matches(s, now))
            .take(limit)
            .cloned()
            .collect()
    }
}

impl Handler<GetStats> for SignalBus {
    type Result = actix::MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(BusStats {
            kept: self.kept.len(),
            subscribers: self.subscriptions.len(),
            ..self.stats
        })
    }
}
