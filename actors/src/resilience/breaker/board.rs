//! The live circuit breakers of one engine, by target, for sharing them beyond the process.
//!
//! Owns: a registry of the engine's live breakers (weak references, so a stopped
//! connector's breaker goes with it), the openings this process's breakers made (a bounded
//! queue with one reader: the cluster's shared breakers, `cluster::breakers`), and the
//! openings peers announced: applied to every live breaker of the target at once, and to a
//! breaker that joins later (a restarted connector, a pool built after the announcement)
//! while the opening is still in force. Never: talks to the network or knows about Redis;
//! never re-announces an opening that came from a peer.
//!
//! Pause gates (a venue account's 429 / 418 / Retry-After pause, a model deployment's)
//! are shared the same way, as target `pause:{guard target}` (the venue's name, or the
//! deployment id): a guard whose breaker is on a board puts its gate there too, announces
//! a pause it sets or extends, and a peer's pause extends the gate for the same time.
//!
//! How breakers join: [`CircuitBreaker::join_board`], or — for every breaker the engine
//! keeps in sled — automatically in [`CircuitBreaker::persisted_in`], when a board was
//! attached to that store's data dir ([`BreakerBoard::attach_to`]). The data dir names
//! the engine (sled allows one open store per dir), so the connectors and model pools,
//! built deep in the supervisor tree from their specs, need no extra parameter to share
//! their breakers, and an engine without `[cluster]` attaches no board and is unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{CircuitBreaker, Shared};
use crate::clock::{Clock, Millis, SystemClock};
use crate::resilience::PauseGate;
use crate::store::Store;

/// The board target of `guard_target`'s pause gate.
pub fn pause_target(guard_target: &str) -> String {
    format!("{PAUSE_PREFIX}{guard_target}")
}

const PAUSE_PREFIX: &str = "pause:";

/// Local openings a board holds for its reader before it drops the oldest news (the
/// reader publishes them; a full queue means Redis is far behind, and the breakers
/// themselves keep protecting this process).
const QUEUE: usize = 1024;

/// A breaker of this process opened on its own failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOpening {
    pub target: String,
    /// Wall-clock ms until which it refuses calls.
    pub until_ms: Millis,
    /// Why: the failure threshold, or a failed half-open probe.
    pub reason: String,
}

/// A peer node announced that its breaker of `target` opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOpening {
    pub target: String,
    pub until_ms: Millis,
    /// The peer's node id.
    pub node: String,
    pub reason: String,
}

/// One engine's board; cheap to clone.
#[derive(Clone)]
pub struct BreakerBoard {
    inner: Arc<BoardInner>,
}

struct BoardInner {
    live: Mutex<HashMap<String, Vec<Weak<Shared>>>>,
    /// Pause gates by board target (`pause:{guard target}`).
    pauses: Mutex<HashMap<String, Vec<Weak<PauseGate>>>>,
    peer: Mutex<HashMap<String, PeerOpening>>,
    openings_tx: mpsc::Sender<LocalOpening>,
    openings_rx: Mutex<Option<mpsc::Receiver<LocalOpening>>>,
}

impl std::fmt::Debug for BreakerBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerBoard")
            .field("targets", &self.targets())
            .finish()
    }
}

/// Boards attached to data dirs (see the module docs).
static ATTACHED: LazyLock<Mutex<HashMap<PathBuf, Weak<BoardInner>>>> =
    LazyLock::new(Default::default);

impl Default for BreakerBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl BreakerBoard {
    pub fn new() -> Self {
        let (openings_tx, rx) = mpsc::channel(QUEUE);
        Self {
            inner: Arc::new(BoardInner {
                live: Mutex::default(),
                pauses: Mutex::default(),
                peer: Mutex::default(),
                openings_tx,
                openings_rx: Mutex::new(Some(rx)),
            }),
        }
    }

    /// Makes every breaker persisted in `store` from now on join this board. Attach
    /// before the engine builds its connectors and pools. The board stays attached while
    /// a clone of it lives.
    pub fn attach_to(&self, store: &Store) {
        let mut attached = ATTACHED.lock();
        attached.retain(|_, w| w.strong_count() > 0);
        attached.insert(store.dir().to_path_buf(), Arc::downgrade(&self.inner));
    }

    /// The board attached to the store at `dir`, if one is.
    pub(super) fn attached_to(dir: &Path) -> Option<BreakerBoard> {
        ATTACHED
            .lock()
            .get(dir)
            .and_then(Weak::upgrade)
            .map(|inner| BreakerBoard { inner })
    }

    /// The queue of this process's own openings; the first caller gets it, later callers
    /// `None` (one reader publishes them).
    pub fn take_openings(&self) -> Option<mpsc::Receiver<LocalOpening>> {
        self.inner.openings_rx.lock().take()
    }

    /// Targets with a live breaker on this board.
    pub fn targets(&self) -> Vec<String> {
        let mut live = self.inner.live.lock();
        live.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
        let mut targets: Vec<String> = live.keys().cloned().collect();
        targets.sort();
        targets
    }

    /// Forces every live breaker of the opening's target open until its `until_ms`, and
    /// remembers it for breakers of that target that join before then. Returns how many
    /// live breakers it opened or kept open longer (0: none here, or all already open at
    /// least as long).
    pub fn apply_peer(&self, opening: PeerOpening) -> usize {
        if opening.target.starts_with(PAUSE_PREFIX) {
            return self.apply_peer_pause(opening);
        }
        let breakers: Vec<CircuitBreaker> = {
            let mut live = self.inner.live.lock();
            let list = live.entry(opening.target.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.iter()
                .filter_map(Weak::upgrade)
                .map(|shared| CircuitBreaker { shared })
                .collect()
        };
        let applied = breakers
            .iter()
            .filter(|b| b.open_by_peer(opening.until_ms, &opening.node, &opening.reason))
            .count();
        self.remember(opening);
        applied
    }

    /// A pause announced by a peer: every gate of the target pauses until `until_ms`.
    fn apply_peer_pause(&self, opening: PeerOpening) -> usize {
        let gates: Vec<Arc<PauseGate>> = {
            let mut pauses = self.inner.pauses.lock();
            let list = pauses.entry(opening.target.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let applied = gates.iter().filter(|g| pause_by_peer(g, &opening)).count();
        self.remember(opening);
        applied
    }

    fn remember(&self, opening: PeerOpening) {
        let mut peer = self.inner.peer.lock();
        let longer = peer
            .get(&opening.target)
            .is_none_or(|known| known.until_ms < opening.until_ms);
        if longer {
            peer.insert(opening.target.clone(), opening);
        }
    }

    /// Registers the pause gate of the guard of `guard_target`; a peer's pause of it
    /// still in force applies at once. A gate shared by sibling guards joins once.
    pub(crate) fn join_pause(&self, guard_target: &str, gate: &Arc<PauseGate>) {
        let target = pause_target(guard_target);
        {
            let mut pauses = self.inner.pauses.lock();
            let list = pauses.entry(target.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            if list
                .iter()
                .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(gate)))
            {
                return;
            }
            list.push(Arc::downgrade(gate));
        }
        let known = self.inner.peer.lock().get(&target).cloned();
        if let Some(p) = known {
            pause_by_peer(gate, &p);
        }
    }

    /// The guard of `guard_target` paused for `wait` on its own: queued for the reader.
    pub(crate) fn paused(&self, guard_target: &str, wait: std::time::Duration, reason: &str) {
        let wait_ms = Millis::try_from(wait.as_millis()).unwrap_or(Millis::MAX / 4);
        self.opened(LocalOpening {
            target: pause_target(guard_target),
            until_ms: SystemClock.now_ms().saturating_add(wait_ms),
            reason: reason.to_string(),
        });
    }

    /// Registers `breaker`; a peer opening of its target still in force applies at once.
    pub(super) fn join(&self, breaker: &CircuitBreaker) {
        let target = breaker.target().to_string();
        self.inner
            .live
            .lock()
            .entry(target.clone())
            .or_default()
            .push(Arc::downgrade(&breaker.shared));
        let known = self.inner.peer.lock().get(&target).cloned();
        if let Some(p) = known {
            breaker.open_by_peer(p.until_ms, &p.node, &p.reason);
        }
    }

    /// A breaker of this process opened on its own: queued for the reader. Never waits.
    pub(crate) fn opened(&self, opening: LocalOpening) {
        if let Err(e) = self.inner.openings_tx.try_send(opening) {
            tracing::warn!(error = %e, "breaker opening not shared with the cluster: its queue is full or closed; the breaker still protects this node");
        }
    }
}

/// Pauses `gate` until the peer's deadline (by the wall clock); whether that set or
/// extended it. Not announced again: the gate is paused directly, not through its guard.
fn pause_by_peer(gate: &PauseGate, opening: &PeerOpening) -> bool {
    let left = opening.until_ms - SystemClock.now_ms();
    if left <= 0 {
        return false;
    }
    let extended = gate.pause(
        std::time::Duration::from_millis(left as u64),
        &format!("paused by peer {}: {}", opening.node, opening.reason),
    );
    if extended {
        tracing::info!(target_name = %opening.target, peer = %opening.node, reason = %opening.reason, pause_ms = left, "pause gate paused by peer");
    }
    extended
}
