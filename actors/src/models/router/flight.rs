//! Single-flight: identical requests in flight at the same time share one upstream call.
//!
//! Owns: the table of calls in flight by [`RequestKey`], joining a caller to a call already
//! running, and the `orrery_model_coalesced_total` counter. Never: caches an answer past the
//! call (the response cache does, when asked) or extends a caller's deadline: each caller
//! waits at most until its own deadline, while the call itself runs under the deadline of
//! the caller that started it. (When a joined call runs out of its starter's shorter
//! deadline, the router starts a fresh call for a caller that still has time.)
//!
//! The call is a [`futures::future::Shared`] future: it runs as long as at least one caller
//! still waits for it, and every caller gets a clone of the one result. The entry is
//! removed when the call finishes (by the call itself, so that it happens once even if the
//! starter gave up), or when the last waiter drops it unfinished.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};

use super::cache::RequestKey;
use crate::models::types::{ModelError, ModelResponse};

type Answer = Result<ModelResponse, ModelError>;
type Call = Shared<BoxFuture<'static, Answer>>;
/// The table holds weak handles: a call nobody waits for any more is dropped, not kept
/// alive by the table.
type Table = HashMap<RequestKey, (u64, WeakShared<BoxFuture<'static, Answer>>)>;

/// Calls in flight. Cheap to clone; the lock is held only to look up or insert.
#[derive(Clone, Default)]
pub struct Flights {
    calls: Arc<parking_lot::Mutex<Table>>,
    next_id: Arc<AtomicU64>,
}

/// How a caller got its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// This caller started the upstream call.
    Led,
    /// This caller shared a call another caller started.
    Coalesced,
}

impl Flights {
    pub fn new() -> Self {
        Self::default()
    }

    /// The call for `key`: joins the one in flight, or starts `start()` as a new one.
    /// `model` labels the coalesced counter.
    pub fn join(
        &self,
        model: &str,
        key: RequestKey,
        start: impl FnOnce() -> BoxFuture<'static, Answer>,
    ) -> (Call, Joined) {
        let mut calls = self.calls.lock();
        if let Some(call) = calls.get(&key).and_then(|(_, weak)| weak.upgrade()) {
            metrics::counter!("orrery_model_coalesced_total", "model" => model.to_string())
                .increment(1);
            return (call, Joined::Coalesced);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inner = start();
        let table = self.calls.clone();
        let cleanup = Cleanup {
            table: table.clone(),
            key: key.clone(),
            id,
        };
        let call: Call = async move {
            let answer = inner.await;
            drop(cleanup);
            answer
        }
        .boxed()
        .shared();
        if let Some(weak) = call.downgrade() {
            calls.insert(key, (id, weak));
        }
        (call, Joined::Led)
    }

    /// Calls in flight now.
    pub fn len(&self) -> usize {
        self.calls.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a call's entry when the call finishes or is dropped unfinished (every waiter
/// gave up), but never a newer call's entry under the same key.
struct Cleanup {
    table: Arc<parking_lot::Mutex<Table>>,
    key: RequestKey,
    id: u64,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut calls = self.table.lock();
        if calls.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            calls.remove(&self.key);
        }
    }
}
