//! The per-symbol sentiment index: a decayed mean of headline scores, and when it becomes a
//! signal.
//!
//! Owns: the arithmetic, with these known answers. Each scored headline adds `score · w`
//! to a sum `S` and `w` to a weight `W`, where `w = 2^(−age / half_life)` and `age` is the
//! headline's age (from its publication time) at the moment it is added; both `S` and `W`
//! then halve every `half_life`. The index is `S / max(W, 1)`:
//! - one headline scored 0.8 reads 0.8; one half-life later 0.4 (`S = 0.4`, `W = 0.5`);
//! - two fresh headlines 0.8 and 0.4 read 0.6, and still 0.6 one half-life later
//!   (`S = 0.6`, `W = 1`), then 0.3 after the next;
//! - so many headlines give their decayed mean, and old news fades toward 0 once less than
//!   one headline's weight is left.
//!
//! A signal is due ([`signal_due`]) when the index enters another band (long at or above
//! `+threshold`, short at or below `−threshold`, neutral between) than the last signal's —
//! the first signal only when it leaves neutral — or moves more than `min_move` from the
//! last signal's value within its band. Never: stores, publishes or reads a clock (the
//! caller passes `now`).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::signals::Direction;

/// One symbol's index state (key `index/<SYMBOL>` of the agent's tree).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexState {
    /// Decayed sum of score × weight, as of `updated_ms`.
    pub sum: f64,
    /// Decayed sum of weights, as of `updated_ms`.
    pub weight: f64,
    pub updated_ms: Millis,
    /// The last signal published from this index.
    pub last_signal: Option<LastSignal>,
}

impl crate::store::Record for IndexState {}

/// What the last signal said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSignal {
    pub direction: Direction,
    pub index: f64,
    pub time_ms: Millis,
}

/// `2^(−dt / half_life)` for `dt` ms (no decay for a negative `dt`).
pub fn decay(dt_ms: Millis, half_life_ms: u64) -> f64 {
    if dt_ms <= 0 || half_life_ms == 0 {
        return 1.0;
    }
    (-(dt_ms as f64) / half_life_ms as f64).exp2()
}

impl IndexState {
    /// `S` and `W` as of `now`.
    fn decayed(&self, now_ms: Millis, half_life_ms: u64) -> (f64, f64) {
        let f = decay(now_ms - self.updated_ms, half_life_ms);
        (self.sum * f, self.weight * f)
    }

    /// The index at `now`, in `[-1, 1]`.
    pub fn value_at(&self, now_ms: Millis, half_life_ms: u64) -> f64 {
        let (s, w) = self.decayed(now_ms, half_life_ms);
        (s / w.max(1.0)).clamp(-1.0, 1.0)
    }

    /// Adds a headline scored `score`, published at `published_ms` (not after `now`).
    pub fn add(&mut self, score: f64, published_ms: Millis, now_ms: Millis, half_life_ms: u64) {
        let (s, w) = self.decayed(now_ms, half_life_ms);
        let weight = decay(now_ms - published_ms.min(now_ms), half_life_ms);
        self.sum = s + score * weight;
        self.weight = w + weight;
        self.updated_ms = now_ms;
    }
}

/// The band an index is in.
pub fn band(index: f64, threshold: f64) -> Direction {
    if index >= threshold {
        Direction::Long
    } else if index <= -threshold {
        Direction::Short
    } else {
        Direction::Neutral
    }
}

/// The direction of the signal due for `index`, if one is (see the module docs).
pub fn signal_due(
    last: Option<&LastSignal>,
    index: f64,
    threshold: f64,
    min_move: f64,
) -> Option<Direction> {
    let now = band(index, threshold);
    match last {
        None => (now != Direction::Neutral).then_some(now),
        Some(l) if l.direction != now => Some(now),
        Some(l) => ((index - l.index).abs() > min_move).then_some(now),
    }
}

/// A signal's confidence: how far the index is past the neutral band's middle, `|index|`
/// for long and short; for neutral, how close it is to 0 (`1 − |index| / threshold`).
pub fn confidence(index: f64, direction: Direction, threshold: f64) -> f64 {
    let c = match direction {
        Direction::Neutral => 1.0 - index.abs() / threshold,
        _ => index.abs(),
    };
    (c.clamp(0.0, 1.0) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn decay_known_answers() {
        let mut i = IndexState::default();
        i.add(0.8, 0, 0, H);
        assert!(close(i.value_at(0, H), 0.8));
        assert!(close(i.value_at(H as i64, H), 0.4));
        assert!(close(i.value_at(2 * H as i64, H), 0.2));

        let mut two = IndexState::default();
        two.add(0.8, 0, 0, H);
        two.add(0.4, 0, 0, H);
        assert!(close(two.value_at(0, H), 0.6));
        assert!(close(two.value_at(H as i64, H), 0.6));
        assert!(close(two.value_at(2 * H as i64, H), 0.3));
    }

    #[test]
    fn an_old_headline_weighs_less_and_adding_later_decays_first() {
        // Published one half-life before it is added: weight 0.5, so S = 0.4, W = 0.5.
        let mut i = IndexState::default();
        i.add(0.8, 0, H as i64, H);
        assert!(close(i.value_at(H as i64, H), 0.4));
        // A fresh -1 one half-life later: S = 0.2 - 1 = -0.8, W = 0.25 + 1 = 1.25.
        i.add(-1.0, 2 * H as i64, 2 * H as i64, H);
        assert!(close(i.value_at(2 * H as i64, H), -0.8 / 1.25));
        // A publication time in the future counts as now.
        let mut f = IndexState::default();
        f.add(0.5, 10 * H as i64, 0, H);
        assert!(close(f.value_at(0, H), 0.5));
    }

    #[test]
    fn signals_on_band_changes_and_large_moves() {
        assert_eq!(signal_due(None, 0.1, 0.3, 0.2), None);
        assert_eq!(signal_due(None, 0.3, 0.3, 0.2), Some(Direction::Long));
        assert_eq!(signal_due(None, -0.5, 0.3, 0.2), Some(Direction::Short));
        let last = LastSignal {
            direction: Direction::Long,
            index: 0.4,
            time_ms: 0,
        };
        assert_eq!(signal_due(Some(&last), 0.55, 0.3, 0.2), None);
        assert_eq!(
            signal_due(Some(&last), 0.65, 0.3, 0.2),
            Some(Direction::Long)
        );
        assert_eq!(
            signal_due(Some(&last), 0.1, 0.3, 0.2),
            Some(Direction::Neutral)
        );
        assert_eq!(
            signal_due(Some(&last), -0.3, 0.3, 0.2),
            Some(Direction::Short)
        );
        assert_eq!(confidence(0.62, Direction::Long, 0.3), 0.62);
        assert_eq!(confidence(0.15, Direction::Neutral, 0.3), 0.5);
    }
}
