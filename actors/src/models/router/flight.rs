//! Single-flight: identical requests in flight at the same time share one upstream call.
//!
//! Owns: the table of calls in flight by [`RequestKey`], seating a caller as the leader of
//! a new call or as a follower of the one running, handing the leader's answer to every
//! follower, and the `orrery_model_coalesced_total` counter. Never: caches an answer past
//! the call (the response cache does, when asked) or extends a caller's deadline: each
//! follower waits at most until its own deadline, while the call itself runs under the
//! deadline of the caller that leads it.
//!
//! The leader makes the upstream call in its own task and reports the answer with
//! [`Lead::finish`]; each follower gets a clone through a oneshot channel. Nothing is
//! boxed or shared for a request nobody joins, which is almost every request: the table
//! entry is the whole cost. A leader that goes away unfinished (its future dropped, e.g.
//! a swarm member abandoned at its deadline) removes its entry, and its followers see the
//! channel close: the router then seats them again, so one that still has time starts or
//! joins a fresh call. The same happens when the answer is the leader's own deadline
//! error and a follower's deadline is later.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::cache::RequestKey;
use crate::models::types::{ModelError, ModelResponse};

type Answer = Result<ModelResponse, ModelError>;
type Table = HashMap<RequestKey, Flight, BuildHasherDefault<KeyHasher>>;

/// The table's hasher. A key is already a SHA-256 digest, so an FxHash-style fold of its
/// bytes spreads as well as SipHash would, for a fraction of the cost, and nobody can
/// choose prompts whose digests collide in it.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One call in flight: who leads it and who waits for its answer.
struct Flight {
    id: u64,
    followers: Vec<oneshot::Sender<Answer>>,
}

/// Calls in flight. Cheap to clone; the lock is held only to look up, insert or remove.
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

/// Where [`Flights::join`] seated a caller.
pub enum Seat {
    /// Make the upstream call, then hand its answer to [`Lead::finish`].
    Lead(Lead),
    /// Wait for the leader's answer; a closed channel means the leader went away.
    Follow(oneshot::Receiver<Answer>),
}

impl Seat {
    pub fn joined(&self) -> Joined {
        match self {
            Seat::Lead(_) => Joined::Led,
            Seat::Follow(_) => Joined::Coalesced,
        }
    }
}

impl Flights {
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows the call in flight for `key`, or leads a new one. `model` labels the
    /// coalesced counter.
    pub fn join(&self, model: &str, key: &RequestKey) -> Seat {
        let mut calls = self.calls.lock();
        let id = match calls.entry(*key) {
            Entry::Occupied(mut flight) => {
                let (tx, rx) = oneshot::channel();
                flight.get_mut().followers.push(tx);
                metrics::counter!("orrery_model_coalesced_total", "model" => model.to_string())
                    .increment(1);
                return Seat::Follow(rx);
            }
            Entry::Vacant(slot) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                slot.insert(Flight {
                    id,
                    followers: Vec::new(),
                });
                id
            }
        };
        Seat::Lead(Lead {
            table: self.calls.clone(),
            key: *key,
            id,
            finished: false,
        })
    }

    /// Calls in flight now.
    pub fn len(&self) -> usize {
        self.calls.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caller making the upstream call for everyone seated behind it. Dropped unfinished,
/// it removes its entry and its followers' channels close.
pub struct Lead {
    table: Arc<parking_lot::Mutex<Table>>,
    key: RequestKey,
    id: u64,
    finished: bool,
}

impl Lead {
    /// Ends the call: the entry is removed (a later identical request makes a new call)
    /// and every follower gets a copy of `answer`.
    pub fn finish(mut self, answer: &Answer) {
        self.finished = true;
        for follower in self.take_followers() {
            // A follower that stopped waiting (its deadline passed) dropped its end.
            let _ = follower.send(answer.clone());
        }
    }

    /// Removes this call's entry, never a newer call's under the same key.
    fn take_followers(&self) -> Vec<oneshot::Sender<Answer>> {
        let mut calls = self.table.lock();
        match calls.remove_entry(&self.key) {
            Some((_, flight)) if flight.id == self.id => flight.followers,
            // A newer call's entry (this one's was already taken): put it back.
            Some((key, flight)) => {
                calls.insert(key, flight);
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.finished {
            // The followers' channels close here, outside the lock.
            drop(self.take_followers());
        }
    }
}
