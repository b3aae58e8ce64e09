//! A local order book kept in sync with Binance's diff-depth stream by the documented
//! procedure.
//!
//! Binance spot "WebSocket Streams", "How to manage a local order book correctly": open the
//! `<symbol>@depth` stream and buffer its events; get a snapshot from
//! `GET /api/v3/depth?symbol=...&limit=1000`; if the snapshot ends before the first
//! buffered event's `U` (here: leaves a hole, `lastUpdateId` + 1 < `U`), get a new one; drop buffered events whose `u` <=
//! `lastUpdateId`; the first event applied has `U` <= `lastUpdateId`+1 <= `u`; every next
//! event's `U` is the previous event's `u` + 1 — otherwise the book is out of sync and is
//! rebuilt from a new snapshot. An event's quantities are absolute: a level with quantity
//! 0 is removed (and removing an unknown level is not an error).
//!
//! Owns: that state machine per symbol ([`DepthSync`]: buffering, or a synced
//! [`LocalBook`]) and the book's levels. Never: I/O (the protocol fetches snapshots and
//! hands them in), never a panic on an event, and never a book built on a gap.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::clock::Millis;

/// One price level as Binance sends it: `["price","quantity"]`.
pub type Level = [Decimal; 2];

/// `depthUpdate` of the diff-depth stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DepthUpdate {
    /// Event time, ms.
    #[serde(rename = "E")]
    pub event_time: Millis,
    /// The Binance pair.
    #[serde(rename = "s")]
    pub pair: String,
    /// First update id in the event.
    #[serde(rename = "U")]
    pub first_update_id: u64,
    /// Final update id in the event.
    #[serde(rename = "u")]
    pub final_update_id: u64,
    #[serde(rename = "b")]
    pub bids: Vec<Level>,
    #[serde(rename = "a")]
    pub asks: Vec<Level>,
}

/// The answer of `GET /api/v3/depth`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DepthSnapshot {
    #[serde(rename = "lastUpdateId")]
    pub last_update_id: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// Levels of one side, best first: (price, quantity).
pub type Levels = Vec<(Decimal, Decimal)>;

/// A symbol's book: price → quantity per side, and the last update id applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalBook {
    pub bids: BTreeMap<Decimal, Decimal>,
    pub asks: BTreeMap<Decimal, Decimal>,
    pub last_update_id: u64,
}

impl LocalBook {
    fn from_snapshot(s: &DepthSnapshot) -> Self {
        let mut book = Self {
            last_update_id: s.last_update_id,
            ..Self::default()
        };
        set_levels(&mut book.bids, &s.bids);
        set_levels(&mut book.asks, &s.asks);
        book
    }

    fn apply(&mut self, e: &DepthUpdate) {
        set_levels(&mut self.bids, &e.bids);
        set_levels(&mut self.asks, &e.asks);
        self.last_update_id = e.final_update_id;
    }

    /// Best bid (price, quantity).
    pub fn best_bid(&self) -> Option<(Decimal, Decimal)> {
        self.bids.iter().next_back().map(|(p, q)| (*p, *q))
    }

    /// Best ask (price, quantity).
    pub fn best_ask(&self) -> Option<(Decimal, Decimal)> {
        self.asks.iter().next().map(|(p, q)| (*p, *q))
    }

    /// The best `n` bids (highest first) and asks (lowest first).
    pub fn top(&self, n: usize) -> (Levels, Levels) {
        (
            self.bids
                .iter()
                .rev()
                .take(n)
                .map(|(p, q)| (*p, *q))
                .collect(),
            self.asks.iter().take(n).map(|(p, q)| (*p, *q)).collect(),
        )
    }
}

fn set_levels(side: &mut BTreeMap<Decimal, Decimal>, levels: &[Level]) {
    for [price, qty] in levels {
        if qty.is_zero() {
            side.remove(price);
        } else {
            side.insert(*price, *qty);
        }
    }
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Kept until a snapshot arrives.
    Buffered,
    /// Applied to the synced book.
    Applied,
    /// Older than the book (`u` <= the book's last update id): dropped.
    Dropped,
    /// Does not continue the book: the book is dropped and the event buffered; a new
    /// snapshot is needed.
    Gap { expected: u64, first: u64 },
}

/// What a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// The book is synced (the buffered events that continue it applied).
    Synced { applied: usize, dropped: usize },
    /// The snapshot is older than the first buffered event: fetch another.
    TooOld {
        last_update_id: u64,
        first_buffered: u64,
    },
    /// The buffered events do not continue the snapshot: fetch another.
    Gap { expected: u64, first: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Buffering(Vec<DepthUpdate>),
    /// `first_pending`: no event applied since the snapshot yet (the first one follows the
    /// looser rule `U` <= lastUpdateId+1 <= `u`).
    Synced {
        book: LocalBook,
        first_pending: bool,
    },
}

/// One symbol's diff-depth synchronisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthSync {
    state: State,
    max_buffered: usize,
}

impl Default for DepthSync {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl DepthSync {
    /// Buffers at most `max_buffered` events while waiting for a snapshot (older ones are
    /// dropped: the snapshot that follows is newer than them anyway).
    pub fn new(max_buffered: usize) -> Self {
        Self {
            state: State::Buffering(Vec::new()),
            max_buffered: max_buffered.max(1),
        }
    }

    /// The synced book, `None` while buffering.
    pub fn book(&self) -> Option<&LocalBook> {
        match &self.state {
            State::Synced { book, .. } => Some(book),
            State::Buffering(_) => None,
        }
    }

    /// Buffering with at least one event: a snapshot is due.
    pub fn needs_snapshot(&self) -> bool {
        matches!(&self.state, State::Buffering(b) if !b.is_empty())
    }

    /// Forgets everything (a new connection starts buffering afresh).
    pub fn reset(&mut self) {
        self.state = State::Buffering(Vec::new());
    }

    pub fn on_event(&mut self, e: DepthUpdate) -> EventOutcome {
        match &mut self.state {
            State::Buffering(buf) => {
                if buf.len() >= self.max_buffered {
                    buf.remove(0);
                }
                buf.push(e);
                EventOutcome::Buffered
            }
            State::Synced {
                book,
                first_pending,
            } => {
                let last = book.last_update_id;
                if e.final_update_id <= last {
                    return EventOutcome::Dropped;
                }
                let continues = if *first_pending {
                    e.first_update_id <= last + 1
                } else {
                    e.first_update_id == last + 1
                };
                if !continues {
                    let first = e.first_update_id;
                    self.state = State::Buffering(vec![e]);
                    return EventOutcome::Gap {
                        expected: last + 1,
                        first,
                    };
                }
                book.apply(&e);
                *first_pending = false;
                EventOutcome::Applied
            }
        }
    }

    /// Applies a snapshot to the buffered events (a snapshot while synced replaces the
    /// book: the caller asked for it).
    pub fn on_snapshot(&mut self, snapshot: &DepthSnapshot) -> SnapshotOutcome {
        let buffered = match std::mem::replace(&mut self.state, State::Buffering(Vec::new())) {
            State::Buffering(buf) => buf,
            State::Synced { .. } => Vec::new(),
        };
        let last = snapshot.last_update_id;
        if let Some(first) = buffered.first() {
            // The docs refetch when `lastUpdateId` < the first event's `U`; a snapshot
            // that ends just before it (`lastUpdateId` + 1 == `U`) is continued by that
            // very event, so only a real hole between them refetches.
            if last + 1 < first.first_update_id {
                let first_buffered = first.first_update_id;
                self.state = State::Buffering(buffered);
                return SnapshotOutcome::TooOld {
                    last_update_id: last,
                    first_buffered,
                };
            }
        }
        let mut book = LocalBook::from_snapshot(snapshot);
        let mut first_pending = true;
        let (mut applied, mut dropped) = (0, 0);
        let mut rest = buffered.into_iter();
        while let Some(e) = rest.next() {
            if e.final_update_id <= book.last_update_id {
                dropped += 1;
                continue;
            }
            let next = book.last_update_id + 1;
            let continues = if first_pending {
                e.first_update_id <= next
            } else {
                e.first_update_id == next
            };
            if !continues {
                let first = e.first_update_id;
                let mut keep = vec![e];
                keep.extend(rest);
                self.state = State::Buffering(keep);
                return SnapshotOutcome::Gap {
                    expected: next,
                    first,
                };
            }
            book.apply(&e);
            first_pending = false;
            applied += 1;
        }
        self.state = State::Synced {
            book,
            first_pending,
        };
        SnapshotOutcome::Synced { applied, dropped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn ev(first: u64, last: u64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> DepthUpdate {
        let lv = |v: &[(&str, &str)]| v.iter().map(|(p, q)| [d(p), d(q)]).collect();
        DepthUpdate {
            event_time: 0,
            pair: "BNBBTC".into(),
            first_update_id: first,
            final_update_id: last,
            bids: lv(bids),
            asks: lv(asks),
        }
    }

    fn snap(last: u64) -> DepthSnapshot {
        DepthSnapshot {
            last_update_id: last,
            bids: vec![[d("0.0024"), d("10")], [d("0.0023"), d("5")]],
            asks: vec![[d("0.0026"), d("100")], [d("0.0027"), d("7")]],
        }
    }

    #[test]
    fn the_documented_depth_update_parses() {
        // The spot docs' `depthUpdate` payload.
        let e: DepthUpdate = serde_json::from_str(
            r#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#,
        )
        .unwrap();
        assert_eq!(e, {
            let mut x = ev(157, 160, &[("0.0024", "10")], &[("0.0026", "100")]);
            x.event_time = 1672515782136;
            x
        });
        // The recorded `GET /api/v3/depth` answer.
        let s: DepthSnapshot = serde_json::from_str(
            r#"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#,
        )
        .unwrap();
        assert_eq!(s.last_update_id, 1027024);
        assert_eq!(s.asks, vec![[d("4.00000200"), d("12")]]);
    }

    #[test]
    fn snapshot_and_buffered_events_give_the_exact_book() {
        let mut sync = DepthSync::default();
        assert!(!sync.needs_snapshot());
        // Buffered before the snapshot: 95..=99 is older than it, 100..=103 straddles it.
        assert_eq!(
            sync.on_event(ev(95, 99, &[("0.0020", "1")], &[])),
            EventOutcome::Buffered
        );
        sync.on_event(ev(
            100,
            103,
            &[("0.0024", "0"), ("0.0025", "3")],
            &[("0.0026", "90")],
        ));
        sync.on_event(ev(104, 104, &[], &[("0.0027", "0"), ("0.0028", "2")]));
        assert!(sync.needs_snapshot());
        assert_eq!(
            sync.on_snapshot(&snap(101)),
            SnapshotOutcome::Synced {
                applied: 2,
                dropped: 1
            }
        );
        let book = sync.book().unwrap();
        assert_eq!(book.last_update_id, 104);
        let bids: Vec<_> = book.bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
        let asks: Vec<_> = book.asks.iter().map(|(p, q)| (*p, *q)).collect();
        assert_eq!(bids, vec![(d("0.0025"), d("3")), (d("0.0023"), d("5"))]);
        assert_eq!(asks, vec![(d("0.0026"), d("90")), (d("0.0028"), d("2"))]);
        assert_eq!(book.best_bid(), Some((d("0.0025"), d("3"))));
        assert_eq!(book.best_ask(), Some((d("0.0026"), d("90"))));
        // The next event continues at 105.
        assert_eq!(
            sync.on_event(ev(105, 106, &[("0.0025", "4")], &[])),
            EventOutcome::Applied
        );
        assert_eq!(sync.book().unwrap().best_bid(), Some((d("0.0025"), d("4"))));
    }

    #[test]
    fn an_out_of_order_event_is_dropped_and_a_missing_one_forces_a_resync() {
        let mut sync = DepthSync::default();
        sync.on_event(ev(101, 102, &[("0.0024", "11")], &[]));
        assert!(matches!(
            sync.on_snapshot(&snap(100)),
            SnapshotOutcome::Synced { applied: 1, .. }
        ));
        // An event that arrives late (already covered): dropped, the book unchanged.
        let before = sync.book().unwrap().clone();
        assert_eq!(
            sync.on_event(ev(99, 101, &[("0.0024", "999")], &[])),
            EventOutcome::Dropped
        );
        assert_eq!(sync.book().unwrap(), &before);
        // 103..=104 never arrives: 105 is a gap; the book is gone until a new snapshot.
        assert_eq!(
            sync.on_event(ev(105, 106, &[("0.0024", "1")], &[])),
            EventOutcome::Gap {
                expected: 103,
                first: 105
            }
        );
        assert!(sync.book().is_none());
        assert!(sync.needs_snapshot());
        // A snapshot older than the buffered event: fetch again.
        assert_eq!(
            sync.on_snapshot(&snap(102)),
            SnapshotOutcome::TooOld {
                last_update_id: 102,
                first_buffered: 105
            }
        );
        assert!(sync.needs_snapshot());
        assert!(matches!(
            sync.on_snapshot(&snap(105)),
            SnapshotOutcome::Synced {
                applied: 1,
                dropped: 0
            }
        ));
        assert_eq!(sync.book().unwrap().last_update_id, 106);
        assert_eq!(sync.book().unwrap().best_bid(), Some((d("0.0024"), d("1"))));
    }

    #[test]
    fn buffered_events_with_a_hole_after_the_snapshot_are_a_gap() {
        let mut sync = DepthSync::default();
        sync.on_event(ev(100, 101, &[], &[]));
        sync.on_event(ev(103, 104, &[], &[]));
        assert_eq!(
            sync.on_snapshot(&snap(100)),
            SnapshotOutcome::Gap {
                expected: 102,
                first: 103
            }
        );
        assert!(sync.needs_snapshot());
        assert!(sync.book().is_none());
        // A snapshot past the hole syncs from the kept events.
        assert!(matches!(
            sync.on_snapshot(&snap(103)),
            SnapshotOutcome::Synced { applied: 1, .. }
        ));
    }
}
