//! Donchian channel: highest high and lowest low of the last n bars (TA-Lib `MAX`, `MIN`).

use std::collections::VecDeque;

use super::{check_finite, check_period, check_same_len, Band, IndicatorError};

const NAME: &str = "Donchian";

/// Streaming Donchian(n). Monotonic deques of (bar number, value) give the window's max and
/// min in amortised O(1): a value that can never again be the extreme is dropped on arrival.
#[derive(Debug, Clone)]
pub struct Donchian {
    period: usize,
    bar: usize,
    highs: VecDeque<(usize, f64)>,
    lows: VecDeque<(usize, f64)>,
}

impl Donchian {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(NAME, period)?;
        // +1: a deque briefly holds the new bar before the expired one leaves.
        Ok(Self {
            period,
            bar: 0,
            highs: VecDeque::with_capacity(period + 1),
            lows: VecDeque::with_capacity(period + 1),
        })
    }

    /// Feeds one bar; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, high: f64, low: f64) -> Option<Band> {
        if !high.is_finite() || !low.is_finite() {
            return None;
        }
        let bar = self.bar;
        self.bar += 1;
        while self.highs.back().is_some_and(|&(_, v)| v <= high) {
            self.highs.pop_back();
        }
        self.highs.push_back((bar, high));
        while self.lows.back().is_some_and(|&(_, v)| v >= low) {
            self.lows.pop_back();
        }
        self.lows.push_back((bar, low));
        // Drop what fell out of the window [bar + 1 - period, bar].
        while self
            .highs
            .front()
            .is_some_and(|&(i, _)| i + self.period <= bar)
        {
            self.highs.pop_front();
        }
        while self
            .lows
            .front()
            .is_some_and(|&(i, _)| i + self.period <= bar)
        {
            self.lows.pop_front();
        }
        if self.bar < self.period {
            return None;
        }
        // Invariant: each deque holds at least the bar just pushed.
        let upper = self.highs.front().map_or(high, |&(_, v)| v);
        let lower = self.lows.front().map_or(low, |&(_, v)| v);
        Some(channel(upper, lower))
    }

    /// Donchian(n) over bar-aligned highs and lows, index-aligned with them.
    pub fn batch(
        period: usize,
        highs: &[f64],
        lows: &[f64],
    ) -> Result<Vec<Option<Band>>, IndicatorError> {
        check_period(NAME, period)?;
        check_same_len(NAME, &[highs, lows])?;
        check_finite(NAME, highs)?;
        check_finite(NAME, lows)?;
        Ok((0..highs.len())
            .map(|i| {
                (i + 1 >= period).then(|| {
                    let from = i + 1 - period;
                    let upper = highs[from..=i].iter().copied().fold(f64::MIN, f64::max);
                    let lower = lows[from..=i].iter().copied().fold(f64::MAX, f64::min);
                    channel(upper, lower)
                })
            })
            .collect())
    }
}

fn channel(upper: f64, lower: f64) -> Band {
    Band {
        upper,
        middle: (upper + lower) / 2.0,
        lower,
    }
}
