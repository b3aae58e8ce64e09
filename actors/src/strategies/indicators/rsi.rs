//! Relative strength index with Wilder's smoothing (TA-Lib `RSI`).

use super::{check_finite, check_period, IndicatorError};

const NAME: &str = "RSI";

/// TA-Lib treats a gain+loss sum within ±1e-8 as zero and reports RSI 0 there (a perfectly
/// flat stretch), rather than the 50 some charting tools show; we match TA-Lib.
const TA_LIB_ZERO: f64 = 1e-8;

/// Streaming RSI(n): first value at the (n+1)-th input, once n price changes are known.
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    prev: Option<f64>,
    changes: usize,
    avg_gain: f64,
    avg_loss: f64,
}

impl Rsi {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(NAME, period)?;
        Ok(Self {
            period,
            prev: None,
            changes: 0,
            avg_gain: 0.0,
            avg_loss: 0.0,
        })
    }

    /// Feeds one close; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        let prev = self.prev.replace(x)?;
        let (gain, loss) = split(x - prev);
        let n = self.period as f64;
        self.changes += 1;
        if self.changes < self.period {
            self.avg_gain += gain;
            self.avg_loss += loss;
            return None;
        }
        if self.changes == self.period {
            self.avg_gain = (self.avg_gain + gain) / n;
            self.avg_loss = (self.avg_loss + loss) / n;
        } else {
            self.avg_gain = (self.avg_gain * (n - 1.0) + gain) / n;
            self.avg_loss = (self.avg_loss * (n - 1.0) + loss) / n;
        }
        Some(rsi(self.avg_gain, self.avg_loss))
    }

    /// RSI(n) over a whole series, index-aligned with it.
    pub fn batch(period: usize, values: &[f64]) -> Result<Vec<Option<f64>>, IndicatorError> {
        check_period(NAME, period)?;
        check_finite(NAME, values)?;
        let mut out = vec![None; values.len()];
        if values.len() <= period {
            return Ok(out);
        }
        let n = period as f64;
        let changes: Vec<(f64, f64)> = values.windows(2).map(|w| split(w[1] - w[0])).collect();
        let mut gain = changes[..period].iter().map(|c| c.0).sum::<f64>() / n;
        let mut loss = changes[..period].iter().map(|c| c.1).sum::<f64>() / n;
        out[period] = Some(rsi(gain, loss));
        for (i, &(g, l)) in changes.iter().enumerate().skip(period) {
            gain = (gain * (n - 1.0) + g) / n;
            loss = (loss * (n - 1.0) + l) / n;
            out[i + 1] = Some(rsi(gain, loss));
        }
        Ok(out)
    }
}

fn split(change: f64) -> (f64, f64) {
    if change < 0.0 {
        (0.0, -change)
    } else {
        (change, 0.0)
    }
}

fn rsi(avg_gain: f64, avg_loss: f64) -> f64 {
    let total = avg_gain + avg_loss;
    if total.abs() < TA_LIB_ZERO {
        0.0
    } else {
        100.0 * (avg_gain / total)
    }
}
