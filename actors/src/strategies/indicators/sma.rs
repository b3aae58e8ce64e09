//! Simple moving average (TA-Lib `SMA`).

use super::window::Window;
use super::{check_finite, check_period, IndicatorError};

const NAME: &str = "SMA";

/// Streaming SMA(n): the mean of the last n inputs, from the n-th input on.
#[derive(Debug, Clone)]
pub struct Sma {
    window: Window,
}

impl Sma {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        check_period(NAME, period)?;
        Ok(Self {
            window: Window::new(period),
        })
    }

    /// Feeds one input; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        self.window.push(x);
        self.window.is_full().then(|| self.window.mean())
    }

    /// SMA(n) over a whole series, index-aligned with it.
    pub fn batch(period: usize, values: &[f64]) -> Result<Vec<Option<f64>>, IndicatorError> {
        check_period(NAME, period)?;
        check_finite(NAME, values)?;
        Ok((0..values.len())
            .map(|i| {
                (i + 1 >= period)
                    .then(|| values[i + 1 - period..=i].iter().sum::<f64>() / period as f64)
            })
            .collect())
    }
}
