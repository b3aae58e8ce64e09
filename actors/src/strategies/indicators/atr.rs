//! Average true range with Wilder's smoothing (TA-Lib `ATR`).

use super::{check_finite, check_period, check_same_len, IndicatorError};

const NAME: &str = "ATR";

/// Streaming ATR(n): first value at the (n+1)-th bar (the first bar has no previous close, so
/// no true range), the mean of n true ranges, then `(prev·(n−1) + tr)/n`.
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    prev_close: Option<f64>,
    ranges: usize,
    sum: f64,
    value: Option<f64>,
}

impl Atr {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(NAME, period)?;
        Ok(Self {
            period,
            prev_close: None,
            ranges: 0,
            sum: 0.0,
            value: None,
        })
    }

    /// Feeds one bar; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> Option<f64> {
        if !(high.is_finite() && low.is_finite() && close.is_finite()) {
            return None;
        }
        let prev_close = self.prev_close.replace(close)?;
        let tr = true_range(high, low, prev_close);
        let n = self.period as f64;
        let next = match self.value {
            Some(prev) => (prev * (n - 1.0) + tr) / n,
            None => {
                self.sum += tr;
                self.ranges += 1;
                if self.ranges < self.period {
                    return None;
                }
                self.sum / n
            }
        };
        self.value = Some(next);
        self.value
    }

    /// ATR(n) over bar-aligned highs, lows and closes, index-aligned with them.
    pub fn batch(
        period: usize,
        highs: &[f64],
        lows: &[f64],
        closes: &[f64],
    ) -> Result<Vec<Option<f64>>, IndicatorError> {
        check_period(NAME, period)?;
        check_same_len(NAME, &[highs, lows, closes])?;
        check_finite(NAME, highs)?;
        check_finite(NAME, lows)?;
        check_finite(NAME, closes)?;
        let mut out = vec![None; closes.len()];
        if closes.len() <= period {
            return Ok(out);
        }
        let n = period as f64;
        let tr: Vec<f64> = (1..closes.len())
            .map(|i| true_range(highs[i], lows[i], closes[i - 1]))
            .collect();
        let mut atr = tr[..period].iter().sum::<f64>() / n;
        out[period] = Some(atr);
        for (j, &r) in tr.iter().enumerate().skip(period) {
            atr = (atr * (n - 1.0) + r) / n;
            out[j + 1] = Some(atr);
        }
        Ok(out)
    }
}

fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    (high - low)
        .max((high - prev_close).abs())
        .max((low - prev_close).abs())
}
