//! Order states and fills a venue pushes over its user stream, on their way to the ledger.
//!
//! Owns: the [`PushedUpdate`] a user-stream protocol produces (already in the engine's
//! types: [`VenueOrder`] and [`Fill`]) and the [`PushSink`] it hands them to. Never: the
//! ledger itself — the order gateway applies a pushed update with the same rules as a
//! reconciliation pass, and REST reconciliation stays the safety net: an update the sink
//! could not take (full, or the gateway restarting) is counted and dropped, and the next
//! pass finds the same truth at the venue.

use std::sync::Arc;

use crate::exchanges::types::{Fill, VenueOrder};

/// What one user-stream frame said about the account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushedUpdate {
    pub venue: String,
    /// Order states as the venue now reports them (new, partially filled, filled,
    /// cancelled, rejected, triggered).
    pub orders: Vec<VenueOrder>,
    /// Executions. A fill already recorded (same venue fill id) is not recorded again.
    pub fills: Vec<Fill>,
    /// The venue's replay of recent history at subscription (Hyperliquid's `userFills`
    /// first frame with `isSnapshot: true`): every item may already be in the ledger.
    pub snapshot: bool,
}

impl PushedUpdate {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.fills.is_empty()
    }
}

/// Where a user stream delivers its updates; cloning shares the destination. Built by
/// whoever owns the destination (the gateway's mailbox, a test's channel) from a function
/// that must not block: it returns `false` when the update was not taken.
#[derive(Clone)]
pub struct PushSink {
    deliver: Arc<dyn Fn(PushedUpdate) -> bool + Send + Sync>,
}

impl std::fmt::Debug for PushSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushSink")
    }
}

impl PushSink {
    pub fn new(deliver: impl Fn(PushedUpdate) -> bool + Send + Sync + 'static) -> Self {
        Self {
            deliver: Arc::new(deliver),
        }
    }

    /// A sink on a bounded tokio channel (tests, and consumers that are not actors).
    pub fn channel(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<PushedUpdate>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        (Self::new(move |u| tx.try_send(u).is_ok()), rx)
    }

    /// Hands `update` over; `false` when the destination did not take it (REST
    /// reconciliation will find the same facts). Empty updates are not sent.
    pub fn push(&self, update: PushedUpdate) -> bool {
        update.is_empty() || (self.deliver)(update)
    }
}
