//! One sink's admission: deduplication, the bounded queue, and the rate limit.
//!
//! Owns: which notices a sink will send and when, as a pure function of wall-clock
//! milliseconds handed in (the engine's injectable clock), so tests drive it by hand.
//! Never: sends, sleeps or reads a clock itself.
//!
//! - Dedup: a notice whose key was offered within `dedup_window` is refused as a
//!   duplicate (the key is remembered from the first offer, so a repeat that arrives while
//!   the first still waits is refused too).
//! - Queue: at most `capacity` notices wait; a new one past it drops the oldest (the
//!   newest says more about now), and the caller counts the drop.
//! - Rate limit: at most one send per `min_interval`; [`SinkGate::next`] says how long
//!   the head of the queue has to wait.

use std::collections::{HashMap, VecDeque};

use orrery_actors::clock::Millis;

use super::notice::Notice;

/// What became of an offered notice.
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    /// Queued.
    Queued,
    /// Queued; the oldest waiting notice was dropped to make room (returned for counting).
    QueuedDropped(Box<Notice>),
    /// The same key was offered within the dedup window; not queued.
    Duplicate,
}

/// What the sink should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Send this notice now.
    Send(Box<Notice>),
    /// The rate limit holds the head of the queue for this many more milliseconds.
    Wait(Millis),
    /// Nothing waits.
    Idle,
}

/// Keys remembered past which the expired ones are swept.
const SWEEP_AT: usize = 4096;

#[derive(Debug)]
pub struct SinkGate {
    dedup_window_ms: Millis,
    min_interval_ms: Millis,
    capacity: usize,
    seen: HashMap<String, Millis>,
    queue: VecDeque<Notice>,
    last_sent_ms: Option<Millis>,
}

impl SinkGate {
    pub fn new(dedup_window_ms: Millis, min_interval_ms: Millis, capacity: usize) -> Self {
        Self {
            dedup_window_ms,
            min_interval_ms,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            queue: VecDeque::new(),
            last_sent_ms: None,
        }
    }

    /// Offers `notice` at `now`.
    pub fn offer(&mut self, notice: Notice, now: Millis) -> Offer {
        if let Some(&at) = self.seen.get(&notice.key) {
            if now - at < self.dedup_window_ms {
                return Offer::Duplicate;
            }
        }
        if self.seen.len() >= SWEEP_AT {
            let window = self.dedup_window_ms;
            self.seen.retain(|_, at| now - *at < window);
        }
        self.seen.insert(notice.key.clone(), now);
        let dropped = if self.queue.len() >= self.capacity {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.push_back(notice);
        match dropped {
            Some(d) => Offer::QueuedDropped(Box::new(d)),
            None => Offer::Queued,
        }
    }

    /// The next notice to send at `now`, or how long to wait. Taking a notice counts as a
    /// send for the rate limit (retries of it do not take another slot).
    pub fn next(&mut self, now: Millis) -> Next {
        if self.queue.is_empty() {
            return Next::Idle;
        }
        if let Some(last) = self.last_sent_ms {
            let ready = last + self.min_interval_ms;
            if now < ready {
                return Next::Wait(ready - now);
            }
        }
        match self.queue.pop_front() {
            Some(n) => {
                self.last_sent_ms = Some(now);
                Next::Send(Box::new(n))
            }
            None => Next::Idle,
        }
    }

    /// Notices waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::EventKind;
    use orrery_actors::clock::{Clock, ManualClock};

    fn notice(key: &str) -> Notice {
        Notice::new(EventKind::Fill, key, "fill", format!("text {key}"), 0)
    }

    #[test]
    fn the_same_key_within_the_window_is_sent_once_and_again_after_it() {
        let clock = ManualClock::new(1_000_000);
        let mut gate = SinkGate::new(60_000, 0, 16);
        assert_eq!(gate.offer(notice("a"), clock.now_ms()), Offer::Queued);
        clock.advance(59_999);
        assert_eq!(gate.offer(notice("a"), clock.now_ms()), Offer::Duplicate);
        assert_eq!(gate.offer(notice("b"), clock.now_ms()), Offer::Queued);
        clock.advance(1);
        // 60 s after the first offer of `a`: a new occurrence.
        assert_eq!(gate.offer(notice("a"), clock.now_ms()), Offer::Queued);
        assert_eq!(gate.queued(), 3);
    }

    #[test]
    fn the_rate_limit_spaces_sends_by_min_interval() {
        let clock = ManualClock::new(5_000);
        let mut gate = SinkGate::new(0, 2_000, 16);
        for k in ["a", "b", "c"] {
            assert_eq!(gate.offer(notice(k), clock.now_ms()), Offer::Queued);
        }
        assert!(matches!(gate.next(clock.now_ms()), Next::Send(n) if n.key == "a"));
        assert_eq!(gate.next(clock.now_ms()), Next::Wait(2_000));
        clock.advance(1_500);
        assert_eq!(gate.next(clock.now_ms()), Next::Wait(500));
        clock.advance(500);
        assert!(matches!(gate.next(clock.now_ms()), Next::Send(n) if n.key == "b"));
        clock.advance(2_000);
        assert!(matches!(gate.next(clock.now_ms()), Next::Send(n) if n.key == "c"));
        assert_eq!(gate.next(clock.now_ms()), Next::Idle);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let mut gate = SinkGate::new(0, 0, 2);
        assert_eq!(gate.offer(notice("a"), 1), Offer::Queued);
        assert_eq!(gate.offer(notice("b"), 1), Offer::Queued);
        match gate.offer(notice("c"), 1) {
            Offer::QueuedDropped(d) => assert_eq!(d.key, "a"),
            other => panic!("expected a drop, got {other:?}"),
        }
        assert_eq!(gate.queued(), 2);
        assert!(matches!(gate.next(1), Next::Send(n) if n.key == "b"));
        assert!(matches!(gate.next(1), Next::Send(n) if n.key == "c"));
    }

    #[test]
    fn no_dedup_window_sends_every_repeat() {
        let mut gate = SinkGate::new(0, 0, 8);
        assert_eq!(gate.offer(notice("a"), 10), Offer::Queued);
        assert_eq!(gate.offer(notice("a"), 10), Offer::Queued);
    }
}
