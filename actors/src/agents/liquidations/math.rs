//! The liquidation agent's arithmetic, as pure functions: the grid of windows, the rolling
//! baseline of window sums, and how far a window's sum stands above it.
//!
//! Owns: [`Baseline`] (the last window sums of one symbol and side, bounded), [`Stats`]
//! (mean and population standard deviation), [`spike_threshold`] (mean + k·σ, never below
//! `min_usd`), [`spike_ratio`] and [`closed_windows`] (which grid windows closed since the
//! last run and lie wholly inside what the agent observed). Never: I/O, clocks or state.

use std::collections::VecDeque;

use rust_decimal::{Decimal, MathematicalOps};
use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// The sums of the last closed windows of one symbol and side, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// (window start, liquidated notional in USD).
    pub windows: VecDeque<(Millis, Decimal)>,
}

impl crate::store::Record for Baseline {}

impl Baseline {
    /// Adds the sum of the window starting at `start`, keeping the newest `keep`.
    pub fn push(&mut self, start: Millis, sum: Decimal, keep: usize) {
        if self.windows.back().is_some_and(|(s, _)| *s >= start) {
            return;
        }
        self.windows.push_back((start, sum));
        while self.windows.len() > keep {
            self.windows.pop_front();
        }
    }

    pub fn stats(&self) -> Stats {
        let values: Vec<Decimal> = self.windows.iter().map(|(_, v)| *v).collect();
        Stats::of(&values)
    }
}

/// Mean and population standard deviation of window sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub count: usize,
    pub mean: Decimal,
    pub sd: Decimal,
}

impl Stats {
    pub fn of(values: &[Decimal]) -> Self {
        if values.is_empty() {
            return Stats {
                count: 0,
                mean: Decimal::ZERO,
                sd: Decimal::ZERO,
            };
        }
        let n = Decimal::from(values.len());
        let mean = values.iter().copied().sum::<Decimal>() / n;
        let var = values
            .iter()
            .map(|v| (*v - mean) * (*v - mean))
            .sum::<Decimal>()
            / n;
        Stats {
            count: values.len(),
            mean,
            // The square root of a non-negative number exists; zero stays zero.
            sd: var.sqrt().unwrap_or(Decimal::ZERO),
        }
    }
}

/// The sum a window must reach to be a spike: mean + k·σ of the baseline, and never less
/// than `min_usd` (a quiet baseline of zeros would make any liquidation a spike).
pub fn spike_threshold(stats: &Stats, k: Decimal, min_usd: Decimal) -> Decimal {
    (stats.mean + k * stats.sd).max(min_usd)
}

/// The window's sum over its threshold: 1 or more is a spike. A threshold of zero
/// (`min_usd` 0 and a baseline of zeros) makes any sum a spike of ratio `sum`, and none 0.
pub fn spike_ratio(sum: Decimal, threshold: Decimal) -> Decimal {
    if threshold > Decimal::ZERO {
        sum / threshold
    } else if sum > Decimal::ZERO {
        sum.max(Decimal::ONE)
    } else {
        Decimal::ZERO
    }
}

/// The grid windows (`[start, start + window)`, starts at multiples of `window`) that
/// closed after `last_closed_end` (or, the first time, after `observed_from`) and at or
/// before `now`, oldest first, only those starting at or after `observed_from` (a window
/// before the agent watched the stream is unknown, not empty), and at most `keep` (the
/// newest).
pub fn closed_windows(
    last_closed_end: Option<Millis>,
    observed_from: Millis,
    now: Millis,
    window: i64,
    keep: usize,
) -> Vec<(Millis, Millis)> {
    if window <= 0 {
        return Vec::new();
    }
    let newest_end = now.div_euclid(window) * window;
    let first_start = {
        let after = last_closed_end.unwrap_or(Millis::MIN).max(observed_from);
        // The first grid start at or after `after`.
        let s = after.div_euclid(window) * window;
        if s < after {
            s + window
        } else {
            s
        }
    };
    let mut out = Vec::new();
    let mut start = first_start.max(newest_end - window * keep as i64);
    while start + window <= newest_end {
        out.push((start, start + window));
        start += window;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    #[test]
    fn mean_and_standard_deviation_known_answers() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population sd 2.
        let s = Stats::of(&[
            dec!(2),
            dec!(4),
            dec!(4),
            dec!(4),
            dec!(5),
            dec!(5),
            dec!(7),
            dec!(9),
        ]);
        assert_eq!((s.count, s.mean), (8, dec!(5)));
        assert_eq!(s.sd.round_dp(10), dec!(2));
        assert_eq!(Stats::of(&[]).count, 0);
        // Threshold 5 + 3·2 = 11; a window of 22 is a spike of ratio 2.
        let t = spike_threshold(&s, dec!(3), dec!(1));
        assert_eq!(t.round_dp(10), dec!(11));
        assert_eq!(spike_ratio(dec!(22), t).round_dp(6), dec!(2));
        // The floor: a quiet baseline never makes 500 USD a spike against min_usd 10000.
        let quiet = Stats::of(&[dec!(0), dec!(0)]);
        assert_eq!(spike_threshold(&quiet, dec!(3), dec!(10000)), dec!(10000));
        assert_eq!(spike_ratio(dec!(500), dec!(10000)), dec!(0.05));
        assert_eq!(spike_ratio(dec!(0), dec!(0)), dec!(0));
    }

    #[test]
    fn the_baseline_rolls_and_ignores_a_window_it_has() {
        let mut b = Baseline::default();
        for i in 0..5 {
            b.push(i * 10, Decimal::from(i), 3);
        }
        b.push(30, dec!(99), 3);
        let starts: Vec<i64> = b.windows.iter().map(|(s, _)| *s).collect();
        assert_eq!(starts, [20, 30, 40]);
        assert_eq!(b.stats().mean, dec!(3));
    }

    #[test]
    fn closed_windows_on_the_grid() {
        // Observing from 12 s, window 10 s, now 47 s: [20,30), [30,40) (not [10,20)).
        assert_eq!(
            closed_windows(None, 12_000, 47_000, 10_000, 100),
            vec![(20_000, 30_000), (30_000, 40_000)]
        );
        // Next run at 55 s after closing up to 40 s: [40,50).
        assert_eq!(
            closed_windows(Some(40_000), 12_000, 55_000, 10_000, 100),
            vec![(40_000, 50_000)]
        );
        // Nothing new within the same window.
        assert!(closed_windows(Some(50_000), 12_000, 59_999, 10_000, 100).is_empty());
        // A long gap keeps only the newest `keep`.
        assert_eq!(
            closed_windows(Some(0), 0, 1_000_000, 10_000, 2),
            vec![(980_000, 990_000), (990_000, 1_000_000)]
        );
    }

    proptest! {
        /// Run at any times, the windows closed are contiguous, on the grid, never repeated
        /// and never start before the agent observed.
        #[test]
        fn windows_close_once_each(mut times in proptest::collection::vec(0i64..1_000_000, 1..30), from in 0i64..100_000) {
            times.sort();
            let w = 7_000;
            let mut last = None;
            let mut seen: Vec<(i64, i64)> = Vec::new();
            for now in times {
                for (s, e) in closed_windows(last, from, now, w, 10_000) {
                    prop_assert_eq!(s % w, 0);
                    prop_assert_eq!(e - s, w);
                    prop_assert!(s >= from && e <= now);
                    if let Some((_, pe)) = seen.last() { prop_assert_eq!(*pe, s); }
                    seen.push((s, e));
                    last = Some(e);
                }
            }
        }

        /// The threshold is never below the floor nor below the mean.
        #[test]
        fn threshold_bounds(values in proptest::collection::vec(0u32..1_000_000, 0..50), k in 0u32..10, floor in 0u32..100_000) {
            let v: Vec<Decimal> = values.iter().map(|x| Decimal::from(*x)).collect();
            let s = Stats::of(&v);
            let t = spike_threshold(&s, Decimal::from(k), Decimal::from(floor));
            prop_assert!(t >= Decimal::from(floor));
            prop_assert!(t >= s.mean);
            prop_assert!(s.sd >= Decimal::ZERO);
        }
    }
}
