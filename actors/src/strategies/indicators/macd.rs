//! Moving average convergence/divergence (TA-Lib `MACD`).

use super::ema::{ema_from, Ema};
use super::{check_finite, check_period, IndicatorError};

const NAME: &str = "MACD";

/// One MACD reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    /// EMA(fast) − EMA(slow).
    pub macd: f64,
    /// EMA(signal) of `macd`.
    pub signal: f64,
    /// `macd − signal`.
    pub histogram: f64,
}

/// Streaming MACD(fast, slow, signal), e.g. 12/26/9. First value at input
/// `slow + signal − 1` (index 33 for 12/26/9), as TA-Lib, which writes nothing before the
/// signal line exists.
///
/// TA-Lib starts both EMAs on the same bar: the fast EMA's SMA seed is the `fast` inputs that
/// end at the slow seed's last input, not the first `fast` inputs. Feeding the fast EMA only
/// from input `slow − fast` on reproduces that exactly.
#[derive(Debug, Clone)]
pub struct Macd {
    fast_offset: usize,
    seen: usize,
    fast: Ema,
    slow: Ema,
    signal: Ema,
}

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Result<Self, IndicatorError> {
        check_periods(fast, slow, signal)?;
        Ok(Self {
            fast_offset: slow - fast,
            seen: 0,
            fast: Ema::new(fast)?,
            slow: Ema::new(slow)?,
            signal: Ema::new(signal)?,
        })
    }

    /// Feeds one close; `None` during warm-up or for a non-finite input (state unchanged).
    pub fn update(&mut self, x: f64) -> Option<MacdValue> {
        if !x.is_finite() {
            return None;
        }
        let fast = if self.seen >= self.fast_offset {
            self.fast.update(x)
        } else {
            None
        };
        self.seen = self.seen.saturating_add(1);
        let slow = self.slow.update(x);
        let macd = fast? - slow?;
        let signal = self.signal.update(macd)?;
        Some(MacdValue {
            macd,
            signal,
            histogram: macd - signal,
        })
    }

    /// MACD over a whole series, index-aligned with it.
    pub fn batch(
        fast: usize,
        slow: usize,
        signal: usize,
        values: &[f64],
    ) -> Result<Vec<Option<MacdValue>>, IndicatorError> {
        check_periods(fast, slow, signal)?;
        check_finite(NAME, values)?;
        let fast_line = ema_from(values, fast, slow - fast);
        let slow_line = ema_from(values, slow, 0);
        let mut out = vec![None; values.len()];
        if values.len() < slow {
            return Ok(out);
        }
        // Both lines exist from index slow-1 on, so nothing is dropped and macd[j] belongs
        // to input slow-1+j.
        let macd: Vec<f64> = fast_line[slow - 1..]
            .iter()
            .zip(&slow_line[slow - 1..])
            .filter_map(|(f, s)| Some((*f)? - (*s)?))
            .collect();
        let signal_line = ema_from(&macd, signal, 0);
        for (j, s) in signal_line.iter().enumerate() {
            if let Some(s) = s {
                out[slow - 1 + j] = Some(MacdValue {
                    macd: macd[j],
                    signal: *s,
                    histogram: macd[j] - s,
                });
            }
        }
        Ok(out)
    }
}

fn check_periods(fast: usize, slow: usize, signal: usize) -> Result<(), IndicatorError> {
    check_period(NAME, fast)?;
    check_period(NAME, slow)?;
    check_period(NAME, signal)?;
    if fast >= slow {
        return Err(IndicatorError::MacdPeriods { fast, slow });
    }
    Ok(())
}
