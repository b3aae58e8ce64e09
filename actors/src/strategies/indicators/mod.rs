//! Technical indicators, defined exactly as TA-Lib defines them, in two forms that agree.
//!
//! - **Streaming**: a value type with `update(..) -> Option<output>`, O(1) per bar (amortised
//!   for the rolling max/min and the periodic re-summing), for a live strategy's `on_bar`.
//!   `None` means "not warmed up yet" (TA-Lib's lookback, where TA-Lib writes nothing).
//! - **Batch**: `batch(.., &[f64]) -> Result<Vec<Option<output>>, IndicatorError>`, aligned
//!   index for index with the input, `None` over the lookback. Batch forms are written from the
//!   definition (window re-summed each bar, two-pass variance) rather than by looping the
//!   streaming form, so the property test that the two agree checks something.
//!
//! | indicator | type | first value at index | definition (TA-Lib) |
//! |---|---|---|---|
//! | SMA(n) | [`Sma`] | n-1 | mean of the last n |
//! | EMA(n) | [`Ema`] | n-1 | k = 2/(n+1); seeded with the SMA of the first n inputs |
//! | RSI(n) | [`Rsi`] | n | Wilder: first averages are plain means of n gains/losses, then `(prev·(n-1)+x)/n`; `100·g/(g+l)`, and 0 when `g+l` is zero, as TA-Lib |
//! | Bollinger(n, k) | [`Bollinger`] | n-1 | SMA(n) ± k·population stddev(n), as `BBANDS` with `MA_Type.SMA` |
//! | MACD(fast, slow, signal) | [`Macd`] | slow+signal-2 | EMA(fast)−EMA(slow), signal = EMA(signal) of it, histogram = difference; the fast EMA is seeded on the `fast` inputs that end where the slow EMA's seed ends (TA-Lib's `MACD` does this, so its fast line is not `EMA(fast)` over the same series) |
//! | Donchian(n) | [`Donchian`] | n-1 | highest high / lowest low of the last n (`MAX`, `MIN`), middle their mean |
//! | ATR(n) | [`Atr`] | n | Wilder: true range from the second bar on, first ATR the mean of n true ranges, then `(prev·(n-1)+tr)/n` |
//!
//! Why own code and not a crate: the `ta` crate (the best kept Rust one) seeds its EMA with the
//! first input instead of the SMA of the first n, and its RSI smooths with that EMA
//! (k = 2/(n+1)) instead of Wilder's 1/n, so its values differ from TA-Lib's for the whole
//! series; no other maintained crate states TA-Lib compatibility. The arithmetic is a few lines
//! per indicator; the known-answer tests pin every one to values computed by TA-Lib itself.
//!
//! Numbers are `f64`: indicators are signals, not money (the project's `Decimal` rule is for
//! prices, sizes, balances and PnL). A strategy converts a `Decimal` price with `to_f64`, which
//! is always finite; a non-finite input is still refused — a batch form returns
//! [`IndicatorError::NonFinite`] naming the index, a streaming `update` returns `None` and
//! leaves its state exactly as it was, so one bad print cannot poison every later value.
//!
//! Owns: indicator arithmetic and its warm-up. Never does: I/O, allocation per bar after
//! warm-up, or any decision about orders.

mod atr;
mod bollinger;
mod donchian;
mod ema;
mod macd;
mod rsi;
mod sma;
#[cfg(test)]
mod tests;
mod window;

pub use atr::Atr;
pub use bollinger::Bollinger;
pub use donchian::Donchian;
pub use ema::Ema;
pub use macd::{Macd, MacdValue};
pub use rsi::Rsi;
pub use sma::Sma;

/// Upper, middle and lower line of a band indicator (Bollinger, Donchian).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub upper: f64,
    pub middle: f64,
    pub lower: f64,
}

/// Why an indicator could not be built or computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    #[error("{indicator}: period must be at least 1, got 0")]
    ZeroPeriod { indicator: &'static str },
    #[error("{indicator}: band multiplier must be a finite number >= 0, got {multiplier}")]
    BadMultiplier {
        indicator: &'static str,
        multiplier: f64,
    },
    #[error("MACD: fast period ({fast}) must be shorter than slow period ({slow})")]
    MacdPeriods { fast: usize, slow: usize },
    #[error("{indicator}: input {index} is {value}, not a finite number; fix the series")]
    NonFinite {
        indicator: &'static str,
        index: usize,
        value: f64,
    },
    #[error("{indicator}: input series differ in length ({lengths:?}); highs, lows and closes must be bar-aligned")]
    LengthMismatch {
        indicator: &'static str,
        lengths: Vec<usize>,
    },
}

fn check_period(indicator: &'static str, period: usize) -> Result<(), IndicatorError> {
    if period == 0 {
        return Err(IndicatorError::ZeroPeriod { indicator });
    }
    Ok(())
}

fn check_finite(indicator: &'static str, values: &[f64]) -> Result<(), IndicatorError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(IndicatorError::NonFinite {
            indicator,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

fn check_same_len(indicator: &'static str, series: &[&[f64]]) -> Result<(), IndicatorError> {
    let lengths: Vec<usize> = series.iter().map(|s| s.len()).collect();
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err(IndicatorError::LengthMismatch { indicator, lengths });
    }
    Ok(())
}
