//! A fixed-length rolling window with a running sum, shared by SMA and Bollinger.
//!
//! The running sum is recomputed from the window once per `period` pushes: that keeps the
//! per-bar cost O(1) amortised while stopping rounding error from accumulating over millions
//! of bars (an add-and-subtract running sum drifts; a fresh sum of n values does not).

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub(super) struct Window {
    period: usize,
    values: VecDeque<f64>,
    sum: f64,
    since_resum: usize,
}

impl Window {
    pub(super) fn new(period: usize) -> Self {
        Self {
            period,
            values: VecDeque::with_capacity(period),
            sum: 0.0,
            since_resum: 0,
        }
    }

    /// Pushes `x`; returns the value that fell out of a full window.
    pub(super) fn push(&mut self, x: f64) -> Option<f64> {
        let evicted = if self.values.len() == self.period {
            self.values.pop_front()
        } else {
            None
        };
        self.values.push_back(x);
        self.since_resum += 1;
        if self.since_resum >= self.period {
            self.sum = self.values.iter().sum();
            self.since_resum = 0;
        } else {
            self.sum += x - evicted.unwrap_or(0.0);
        }
        evicted
    }

    pub(super) fn is_full(&self) -> bool {
        self.values.len() == self.period
    }

    pub(super) fn mean(&self) -> f64 {
        self.sum / self.values.len() as f64
    }

    pub(super) fn values(&self) -> impl Iterator<Item = f64> + Clone + '_ {
        self.values.iter().copied()
    }
}
