//! Sliding window: at most `limit` units in any window of length `window`.
//!
//! Kept as a log of admissions (expiry, cost) so the window really slides; a fixed-window
//! counter would admit `2 × limit` across a window edge, and the two-bucket weighted
//! estimate can exceed the limit. Calls that expire at the same instant share one entry.
//! A limit up to 1024 is exact: each unit leaves exactly `window` after it came. A larger
//! limit rounds expiries up to `window / 1024` slices, so the log stays within ~1024
//! entries (16 KiB) at any call rate; a unit then leaves up to one slice (0.1% of the
//! window) late, never early, so the limit still holds in every window. Checks are
//! amortised O(1); only a denial walks the log to compute its wait.
//!
//! Why hand-written, and why not a mutex: governor has no exact sliding window, and the
//! log is several words updated together. Behind a `parking_lot` mutex the uncontended
//! check cost two atomic read-modify-writes (lock, and unlock, which must learn whether to
//! wake a sleeper) and ran at about twice governor's single compare-and-swap in the
//! `resilience` bench (~17 ns against ~9 ns). A spin lock released by a plain store (one
//! atomic) only got to ~1.5× (~1.7× with a real clock), because every read of the log
//! then waits behind the lock's compare-and-swap.
//!
//! So the log sits in atomics under a sequence lock, and an admission is optimistic:
//! read the sequence (even: no writer), read the head, tail, running sum and the few log
//! entries involved with plain (relaxed) loads, decide, and commit with one
//! compare-and-swap of the sequence to odd — which fails if any writer came in between,
//! so a decision made on a torn view is never applied. The winner writes its few words
//! and stores the sequence back to even. Everything else (a denial and its wait, more
//! than a few expiries at once, growing the log, `refund`, `observe`, `headroom`, and a
//! check that keeps losing races) takes the same sequence as a spin lock (a critical
//! section is tens of nanoseconds; waiters spin briefly, then yield) and uses the exact
//! logic. The `resilience` bench (BENCHMARKS.md) measures it against governor, with a
//! caller-supplied and a real clock, and with two threads contending.
//!
//! The log is a ring of atomic slots indexed by ever-growing positions; it starts small
//! and doubles under the lock when full. A reader that raced a resize may still be
//! reading the old ring, so superseded rings are kept (never freed before the limiter):
//! at most as much again as the largest ring. Choose `token_bucket` or `gcra` where a
//! window need not be exact.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::{wait_of, Denied, RateLimit, ServerQuota};
use crate::resilience::mono::{nanos_of, Nanos};

/// Capacity of the first ring; each later ring doubles it.
const FIRST_RING: usize = 16;
/// Rings a limiter may ever allocate: the last holds `16 << 39` (≈ 8.8e12) entries, more
/// than memory allows, so growth never runs out of generations in practice.
const GENERATIONS: usize = 40;
/// Expired entries the optimistic path drops itself before it leaves it to the lock.
const FAST_EXPIRIES: u32 = 4;
/// Optimistic attempts (each a fresh read and one compare-and-swap) before a check that
/// keeps losing races takes the lock instead.
const OPTIMISTIC_TRIES: u32 = 4;
/// Spins before a caller waiting for the lock starts yielding its thread.
const SPINS: u32 = 64;
/// Most log entries a window needs: limits up to this are exact; larger limits group
/// admissions into `window / SLICES` slices (see [`SlidingWindow::new`]).
const SLICES: u64 = 1024;

#[derive(Default)]
struct Slot {
    expiry: AtomicU64,
    cost: AtomicU64,
}

pub struct SlidingWindow {
    /// Even: no writer. Odd: one writer owns every field below.
    seq: AtomicU64,
    limit: AtomicU64,
    window: Nanos,
    /// 0: every admission expires exactly `window` after it. Otherwise expiries are
    /// rounded up to a multiple of this, so admissions in one slice share one entry.
    slice: Nanos,
    /// Units in the log (entries not yet dropped; some may already have expired).
    used: AtomicU64,
    /// Positions of the oldest entry and one past the newest; entry `i` lives in slot
    /// `i % ring.len()`. Admissions as (expiry, cost) in expiry order; an entry counts
    /// while `now < expiry`. Storing the expiry (admission + window) lets server-reported
    /// usage expire exactly at the server's reset.
    head: AtomicU64,
    tail: AtomicU64,
    /// Index into `rings` of the current ring.
    generation: AtomicUsize,
    rings: [OnceLock<Box<[Slot]>>; GENERATIONS],
}

/// What an optimistic admission will write once it owns the sequence.
struct Commit<'a> {
    ring: &'a [Slot],
    head: u64,
    used: u64,
    /// Position to write: one past the newest entry (a new entry), or the newest entry
    /// itself when this call expires at the same instant and joins it.
    at: u64,
    expiry: Nanos,
    /// The written entry's cost (the joined entry's grows by this call's).
    cost: u64,
}

/// Owns the sequence (odd) while alive; stores it back to even when dropped.
struct Locked<'a> {
    w: &'a SlidingWindow,
    seq: u64,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.w
            .seq
            .store(self.seq.wrapping_add(1), Ordering::Release);
    }
}

impl SlidingWindow {
    /// `limit` and `window` must be non-zero (config validation guarantees it).
    ///
    /// A limit up to 1024 is kept exactly (the log never holds more entries than units).
    /// A larger one rounds each expiry up to the next `window / 1024` slice, so calls in
    /// the same slice share one entry: the log stays within ~1024 entries (16 KiB)
    /// however fast calls come, and a unit leaves the window at most 0.1% of the window
    /// late, never early — the limit still holds in every window.
    pub fn new(limit: u64, window: Duration) -> Self {
        let limit = limit.max(1);
        let window = nanos_of(window).max(1);
        let slice = if limit > SLICES {
            (window / SLICES).max(1)
        } else {
            0
        };
        let first = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .clamp(FIRST_RING, 1024)
            .next_power_of_two();
        // Start at the generation whose capacity is `first`, so growth keeps doubling.
        let generation = (first / FIRST_RING).trailing_zeros() as usize;
        let rings: [OnceLock<Box<[Slot]>>; GENERATIONS] = std::array::from_fn(|_| OnceLock::new());
        let _ = rings[generation].set(new_ring(first));
        Self {
            seq: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
            window,
            slice,
            used: AtomicU64::new(0),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            generation: AtomicUsize::new(generation),
            rings,
        }
    }

    /// Entries in the log (live or not yet dropped).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> u64 {
        let _locked = self.lock();
        self.tail.load(Ordering::Relaxed) - self.head.load(Ordering::Relaxed)
    }

    /// When a unit admitted at `now` leaves the window.
    #[inline]
    fn expiry_of(&self, now: Nanos) -> Nanos {
        let exact = now.saturating_add(self.window);
        if self.slice == 0 {
            return exact;
        }
        exact
            .div_ceil(self.slice)
            .saturating_mul(self.slice)
            .max(exact)
    }

    /// The current ring. Invariant: `generation` only ever names a ring that was set
    /// before it was published (see [`Self::grow`]), so the fallback is unreachable.
    fn ring(&self) -> &[Slot] {
        let g = self.generation.load(Ordering::Acquire);
        self.rings.get(g).and_then(OnceLock::get).map_or(&[], |r| r)
    }

    fn slot(ring: &[Slot], i: u64) -> (Nanos, u64) {
        // A ring's length is a power of two, so the remainder is a mask.
        let s = &ring[(i as usize) & (ring.len() - 1)];
        (
            s.expiry.load(Ordering::Relaxed),
            s.cost.load(Ordering::Relaxed),
        )
    }

    fn set_slot(ring: &[Slot], i: u64, (expiry, cost): (Nanos, u64)) {
        let s = &ring[(i as usize) & (ring.len() - 1)];
        s.expiry.store(expiry, Ordering::Relaxed);
        s.cost.store(cost, Ordering::Relaxed);
    }

    /// The admission the lock-free path can decide alone: room without more than a few
    /// expiries, and space in the ring. Reads may be torn; the caller's compare-and-swap
    /// of the sequence discards the plan if they were.
    #[inline]
    fn plan(&self, cost: u64, now: Nanos, limit: u64) -> Option<Commit<'_>> {
        let ring = self.ring();
        if ring.is_empty() || cost == 0 {
            return None;
        }
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let mut used = self.used.load(Ordering::Relaxed);
        if tail < head || tail - head > ring.len() as u64 {
            return None;
        }
        let (last, last_cost) = if tail > head {
            Self::slot(ring, tail - 1)
        } else {
            (0, 0)
        };
        let mut expired = 0;
        while head < tail {
            let (expiry, c) = Self::slot(ring, head);
            if expiry > now {
                break;
            }
            if expired == FAST_EXPIRIES {
                return None;
            }
            expired += 1;
            head += 1;
            used = used.checked_sub(c)?;
        }
        if used.checked_add(cost)? > limit {
            return None;
        }
        let expiry = self.expiry_of(now).max(last);
        // The newest entry is still live here (its expiry `last` is past `now`, or it
        // would have expired above), so a call expiring with it joins it.
        let (at, entry_cost) = if head < tail && expiry == last {
            (tail - 1, last_cost.checked_add(cost)?)
        } else if tail - head >= ring.len() as u64 {
            return None;
        } else {
            (tail, cost)
        };
        Some(Commit {
            ring,
            head,
            used: used + cost,
            at,
            expiry,
            cost: entry_cost,
        })
    }

    /// Takes the sequence as a lock: spins on an odd (held) value, then yields.
    fn lock(&self) -> Locked<'_> {
        let mut spins = 0;
        loop {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(
                        seq,
                        seq.wrapping_add(1),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                return Locked {
                    w: self,
                    seq: seq.wrapping_add(1),
                };
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    // The methods below run only while the caller holds `Locked`.

    fn expire(&self, now: Nanos) {
        let ring = self.ring();
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let mut used = self.used.load(Ordering::Relaxed);
        while head < tail {
            let (expiry, c) = Self::slot(ring, head);
            if expiry > now {
                break;
            }
            head += 1;
            used -= c;
        }
        self.head.store(head, Ordering::Relaxed);
        self.used.store(used, Ordering::Relaxed);
    }

    /// Makes room for one more entry, doubling the ring when it is full. False only if
    /// every generation is spent (unreachable short of ~10^13 live entries); the caller
    /// then refuses, which never over-admits.
    fn reserve_one(&self) -> bool {
        let ring = self.ring();
        let (head, tail) = (
            self.head.load(Ordering::Relaxed),
            self.tail.load(Ordering::Relaxed),
        );
        if tail - head < ring.len() as u64 {
            return true;
        }
        self.grow(ring, head, tail)
    }

    fn grow(&self, old: &[Slot], head: u64, tail: u64) -> bool {
        let g = self.generation.load(Ordering::Relaxed) + 1;
        let Some(cell) = self.rings.get(g) else {
            return false;
        };
        let new = new_ring(old.len() * 2);
        for i in head..tail {
            Self::set_slot(&new, i, Self::slot(old, i));
        }
        if cell.set(new).is_err() {
            return false;
        }
        // Published after the ring is set: readers that see `g` find it (see `ring`).
        self.generation.store(g, Ordering::Release);
        true
    }

    /// Appends `cost` admitted at `now`, keeping the log ordered even when a thread
    /// arrives with a slightly older reading of the clock (it expires later, which is
    /// conservative). The caller has reserved room.
    fn record(&self, now: Nanos, cost: u64) {
        let ring = self.ring();
        let (head, tail) = (
            self.head.load(Ordering::Relaxed),
            self.tail.load(Ordering::Relaxed),
        );
        let mut expiry = self.expiry_of(now);
        if tail > head {
            let (last, last_cost) = Self::slot(ring, tail - 1);
            if expiry <= last {
                // Expires with the newest entry (same slice, or an older clock reading):
                // join it, as the lock-free path does.
                Self::set_slot(ring, tail - 1, (last, last_cost + cost));
                let used = self.used.load(Ordering::Relaxed);
                self.used.store(used + cost, Ordering::Relaxed);
                return;
            }
            expiry = expiry.max(last);
        }
        Self::set_slot(ring, tail, (expiry, cost));
        self.tail.store(tail + 1, Ordering::Relaxed);
        let used = self.used.load(Ordering::Relaxed);
        self.used.store(used + cost, Ordering::Relaxed);
    }

    fn try_acquire_locked(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        let limit = self.limit.load(Ordering::Relaxed);
        if cost > limit {
            return Err(Denied::Exceeds { max: limit });
        }
        self.expire(now);
        let used = self.used.load(Ordering::Relaxed);
        if used + cost <= limit {
            if cost > 0 {
                if !self.reserve_one() {
                    return Err(Denied::Wait(Duration::from_nanos(self.window)));
                }
                self.record(now, cost);
            }
            return Ok(());
        }
        let ring = self.ring();
        let (head, tail) = (
            self.head.load(Ordering::Relaxed),
            self.tail.load(Ordering::Relaxed),
        );
        let mut to_free = used + cost - limit;
        let mut wait = 0u128;
        for i in head..tail {
            let (expiry, c) = Self::slot(ring, i);
            to_free = to_free.saturating_sub(c);
            if to_free == 0 {
                wait = u128::from(expiry.saturating_sub(now));
                break;
            }
        }
        Err(Denied::Wait(wait_of(wait.max(1))))
    }
}

fn new_ring(len: usize) -> Box<[Slot]> {
    (0..len).map(|_| Slot::default()).collect()
}

impl fmt::Debug for SlidingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, tail) = (
            self.head.load(Ordering::Relaxed),
            self.tail.load(Ordering::Relaxed),
        );
        f.debug_struct("SlidingWindow")
            .field("limit", &self.limit.load(Ordering::Relaxed))
            .field("window", &Duration::from_nanos(self.window))
            .field("used", &self.used.load(Ordering::Relaxed))
            .field("entries", &tail.wrapping_sub(head))
            .finish()
    }
}

impl RateLimit for SlidingWindow {
    fn try_acquire(&self, cost: u64, now: Nanos) -> Result<(), Denied> {
        for _ in 0..OPTIMISTIC_TRIES {
            let seq = self.seq.load(Ordering::Acquire);
            let limit = self.limit.load(Ordering::Relaxed);
            if cost > limit {
                return Err(Denied::Exceeds { max: limit });
            }
            if seq & 1 == 1 {
                // A writer is in its few stores; its result decides ours.
                std::hint::spin_loop();
                continue;
            }
            let Some(c) = self.plan(cost, now, limit) else {
                break;
            };
            // Succeeds only if no writer ran since `seq` was read, so everything `plan`
            // read (the limit and the ring included) is one consistent state; the writes
            // below are then ours alone until the sequence is even again.
            if self
                .seq
                .compare_exchange(
                    seq,
                    seq.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let _locked = Locked {
                    w: self,
                    seq: seq.wrapping_add(1),
                };
                Self::set_slot(c.ring, c.at, (c.expiry, c.cost));
                self.head.store(c.head, Ordering::Relaxed);
                self.tail.store(c.at + 1, Ordering::Relaxed);
                self.used.store(c.used, Ordering::Relaxed);
                return Ok(());
            }
        }
        let _locked = self.lock();
        self.try_acquire_locked(cost, now)
    }

    fn refund(&self, cost: u64, now: Nanos) -> bool {
        let _locked = self.lock();
        let ring = self.ring();
        let (head, tail) = (
            self.head.load(Ordering::Relaxed),
            self.tail.load(Ordering::Relaxed),
        );
        // Our units sit in an entry expiring at or after `ours` (later if they joined an
        // entry or an older clock reading pushed them back). Taking them from the earliest
        // such entry that holds enough never shortens anyone's stay: every unit still in the
        // log expires no earlier than it would have, so the refund cannot over-admit.
        let ours = self.expiry_of(now);
        let mut found = None;
        for i in (head..tail).rev() {
            let (expiry, c) = Self::slot(ring, i);
            if expiry < ours {
                break;
            }
            if c >= cost {
                found = Some((i, expiry, c));
            }
        }
        if let Some((i, expiry, c)) = found {
            if c > cost {
                Self::set_slot(ring, i, (expiry, c - cost));
            } else {
                for j in i..tail - 1 {
                    Self::set_slot(ring, j, Self::slot(ring, j + 1));
                }
                self.tail.store(tail - 1, Ordering::Relaxed);
            }
            let used = self.used.load(Ordering::Relaxed);
            self.used.store(used - cost, Ordering::Relaxed);
        }
        true
    }

    fn max_cost(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    fn headroom(&self, now: Nanos) -> Option<u64> {
        let _locked = self.lock();
        self.expire(now);
        let (limit, used) = (
            self.limit.load(Ordering::Relaxed),
            self.used.load(Ordering::Relaxed),
        );
        Some(limit - used.min(limit))
    }

    fn observe(&self, quota: ServerQuota, now: Nanos) {
        let _locked = self.lock();
        self.expire(now);
        if let Some(limit) = quota.limit.filter(|l| *l > 0) {
            self.limit.store(limit, Ordering::Relaxed);
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let used = self.used.load(Ordering::Relaxed);
        let server_used = limit.saturating_sub(quota.remaining);
        if server_used > used && self.reserve_one() {
            // Usage we did not see (another process, or requests before a restart): add
            // it so it leaves the window when the server's window resets.
            let expiry = now.saturating_add(nanos_of(quota.reset_after).min(self.window));
            let deficit = server_used - used;
            let ring = self.ring();
            let (head, tail) = (
                self.head.load(Ordering::Relaxed),
                self.tail.load(Ordering::Relaxed),
            );
            // Insert in expiry order; it may expire before entries already logged.
            let (mut lo, mut hi) = (head, tail);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if Self::slot(ring, mid).0 <= expiry {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            for j in (lo..tail).rev() {
                Self::set_slot(ring, j + 1, Self::slot(ring, j));
            }
            Self::set_slot(ring, lo, (expiry, deficit));
            self.tail.store(tail + 1, Ordering::Relaxed);
            self.used.store(used + deficit, Ordering::Relaxed);
        }
    }
}
