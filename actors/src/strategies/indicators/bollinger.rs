//! Bollinger bands: SMA(n) ± k·population standard deviation (TA-Lib `BBANDS`, SMA type).

use super::window::Window;
use super::{check_finite, check_period, Band, IndicatorError};

const NAME: &str = "Bollinger";

/// Variance below this fraction of mean² counts as near-flat (stddev < 1e-5 · mean).
const NEAR_FLAT: f64 = 1e-10;

/// Streaming Bollinger(n, k). The variance is kept with Welford's sliding-window update
/// (no `E[x²] − E[x]²` cancellation) and recomputed two-pass from the window once per n bars,
/// so error does not accumulate over a long live run. O(1) per bar amortised, except in a
/// near-flat window (stddev below 1e-5 of the price), which is recomputed exactly: O(n).
#[derive(Debug, Clone)]
pub struct Bollinger {
    period: usize,
    multiplier: f64,
    window: Window,
    mean: f64,
    m2: f64,
    since_exact: usize,
}

impl Bollinger {
    pub fn new(period: usize, multiplier: f64) -> Result<Self, IndicatorError> {
        check_period(NAME, period)?;
        check_multiplier(multiplier)?;
        Ok(Self {
            period,
            multiplier,
            window: Window::new(period),
            mean: 0.0,
            m2: 0.0,
            since_exact: 0,
        })
    }

    /// Feeds one close; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, x: f64) -> Option<Band> {
        if !x.is_finite() {
            return None;
        }
        let full_before = self.window.is_full();
        let evicted = self.window.push(x);
        let old_mean = self.mean;
        match evicted {
            Some(old) if full_before => {
                let n = self.period as f64;
                self.mean = old_mean + (x - old) / n;
                self.m2 += (x - old) * (x - self.mean + old - old_mean);
            }
            _ => {
                let count = self.since_exact as f64 + 1.0;
                let delta = x - old_mean;
                self.mean += delta / count;
                self.m2 += delta * (x - self.mean);
            }
        }
        self.since_exact += 1;
        // Only reached with a full window: warm-up takes exactly `period` pushes.
        // Near-flat windows also recompute: there the sliding update's rounding (a few ulps of
        // the price) is no longer small next to the variance, and the square root magnifies it
        // (a flat window would read a stddev of ~1e-7·price instead of 0). O(n) only while the
        // stddev is below 1e-5 of the price.
        let near_flat = self.window.is_full()
            && self.m2 / (self.period as f64) < NEAR_FLAT * self.mean * self.mean;
        if self.since_exact >= self.period || near_flat {
            let (mean, m2) = mean_m2(self.window.values(), self.period);
            self.mean = mean;
            self.m2 = m2;
            self.since_exact = 0;
        }
        if !self.window.is_full() {
            return None;
        }
        let stddev = (self.m2 / self.period as f64).max(0.0).sqrt();
        Some(band(self.mean, stddev, self.multiplier))
    }

    /// Bollinger(n, k) over a whole series, index-aligned with it.
    pub fn batch(
        period: usize,
        multiplier: f64,
        values: &[f64],
    ) -> Result<Vec<Option<Band>>, IndicatorError> {
        check_period(NAME, period)?;
        check_multiplier(multiplier)?;
        check_finite(NAME, values)?;
        Ok((0..values.len())
            .map(|i| {
                (i + 1 >= period).then(|| {
                    let w = &values[i + 1 - period..=i];
                    let n = period as f64;
                    let mean = w.iter().sum::<f64>() / n;
                    let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    band(mean, var.sqrt(), multiplier)
                })
            })
            .collect())
    }
}

fn check_multiplier(multiplier: f64) -> Result<(), IndicatorError> {
    if !multiplier.is_finite() || multiplier < 0.0 {
        return Err(IndicatorError::BadMultiplier {
            indicator: NAME,
            multiplier,
        });
    }
    Ok(())
}

fn mean_m2(values: impl Iterator<Item = f64> + Clone, n: usize) -> (f64, f64) {
    let mean = values.clone().sum::<f64>() / n as f64;
    let m2 = values.map(|v| (v - mean) * (v - mean)).sum();
    (mean, m2)
}

fn band(mean: f64, stddev: f64, k: f64) -> Band {
    Band {
        upper: mean + k * stddev,
        middle: mean,
        lower: mean - k * stddev,
    }
}
