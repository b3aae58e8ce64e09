//! Exponential moving average (TA-Lib `EMA`, default compatibility: SMA-seeded).

use super::{check_finite, check_period, IndicatorError};

const NAME: &str = "EMA";

/// Streaming EMA(n) with k = 2/(n+1); the first value (at the n-th input) is the SMA of the
/// first n inputs, after that `prev + k·(x − prev)`.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    k: f64,
    seed_sum: f64,
    seen: usize,
    value: Option<f64>,
}

impl Ema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(NAME, period)?;
        Ok(Self {
            period,
            k: 2.0 / (period as f64 + 1.0),
            seed_sum: 0.0,
            seen: 0,
            value: None,
        })
    }

    /// Feeds one input; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        let next = match self.value {
            // TA-Lib's operation order, so values match it to the last bits.
            Some(prev) => (x - prev) * self.k + prev,
            None => {
                self.seed_sum += x;
                self.seen += 1;
                if self.seen < self.period {
                    return None;
                }
                self.seed_sum / self.period as f64
            }
        };
        self.value = Some(next);
        self.value
    }

    /// EMA(n) over a whole series, index-aligned with it.
    pub fn batch(period: usize, values: &[f64]) -> Result<Vec<Option<f64>>, IndicatorError> {
        check_period(NAME, period)?;
        check_finite(NAME, values)?;
        Ok(ema_from(values, period, 0))
    }
}

/// EMA(period) whose SMA seed is taken over `values[start..start + period]`; outputs before
/// the seed's last index are `None`. Shared with MACD, whose fast line starts late.
pub(super) fn ema_from(values: &[f64], period: usize, start: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; values.len()];
    let seed_end = start + period;
    if seed_end > values.len() {
        return out;
    }
    let k = 2.0 / (period as f64 + 1.0);
    let mut prev = values[start..seed_end].iter().sum::<f64>() / period as f64;
    out[seed_end - 1] = Some(prev);
    for (i, &x) in values.iter().enumerate().skip(seed_end) {
        prev = (x - prev) * k + prev;
        out[i] = Some(prev);
    }
    out
}
