//! Bollinger-band mean reversion (TA-Lib `BBANDS`, SMA middle, population stddev).
//!
//! - long entry: the close crosses back above the lower band: it was strictly below the
//!   lower band on the previous bar and is strictly above it on this one;
//! - long exit: the close is at or above the middle band (the mean it reverted to);
//! - with `short=1`, the mirror image: short entry when the close crosses back below the
//!   upper band, short exit when it is at or below the middle band.
//!
//! Exits are applied before entries (see `rules`). The first decision needs two band
//! values: bar `period + 1`.

use crate::strategies::api::{Actions, Bar, PositionView, Size, Strategy};
use crate::strategies::indicators::{Band, Bollinger, IndicatorError};
use crate::strategies::params::ParamSpec;

use super::rules::{Protection, SameSide, Signals, SHORT, STOP_LOSS, TAKE_PROFIT};

pub(super) const PARAMS: [ParamSpec; 5] = [
    ParamSpec::int("period", 2, 1000, 20, "band period, in bars"),
    ParamSpec::float("k", 0.1, 10.0, 2.0, "band width, in standard deviations"),
    SHORT,
    STOP_LOSS,
    TAKE_PROFIT,
];

#[derive(Debug, Clone)]
pub struct BollingerReversion {
    bands: Bollinger,
    period: usize,
    short: bool,
    protection: Protection,
    /// The previous bar's close and bands.
    prev: Option<(f64, Band)>,
}

impl BollingerReversion {
    pub fn new(
        period: usize,
        k: f64,
        short: bool,
        protection: Protection,
    ) -> Result<Self, IndicatorError> {
        Ok(Self {
            bands: Bollinger::new(period, k)?,
            period,
            short,
            protection,
            prev: None,
        })
    }
}

impl Strategy for BollingerReversion {
    fn name(&self) -> &str {
        "bollinger_reversion"
    }

    fn warmup_bars(&self) -> usize {
        self.period + 1
    }

    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions) {
        let Some(band) = self.bands.update(bar.close) else {
            return;
        };
        let close = bar.close;
        if let Some((prev_close, prev)) = self.prev {
            let signals = Signals {
                enter_long: prev_close < prev.lower && close > band.lower,
                exit_long: close >= band.middle,
                enter_short: self.short && prev_close > prev.upper && close < band.upper,
                exit_short: close <= band.middle,
            };
            let p = self.protection;
            signals.apply(
                SameSide::Hold,
                position,
                close,
                Size::ALL,
                |side, c| p.prices(side, c),
                actions,
            );
        }
        self.prev = Some((close, band));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::builtin::testing::{closes, run_codes};

    #[test]
    fn buys_the_return_inside_the_lower_band_and_exits_at_the_middle() {
        // period 2: the population stddev of two closes is |a−b|/2, so with k = 0.5 the
        // bands are mean ± |a−b|/4 and the latest close lies outside them.
        // bar 1 (10, 6): mean 8, lower 7, upper 9; close 6 < 7 (below lower).
        // bar 2 (6, 7): mean 6.5, lower 6.25, upper 6.75; close 7 > 6.25: long entry.
        // bar 3 (7, 7): mean 7, bands 7: close 7 >= middle: long exit.
        let bars = closes(&[10.0, 6.0, 7.0, 7.0]);
        let mut s = BollingerReversion::new(2, 0.5, true, Protection::default()).unwrap();
        assert_eq!(s.warmup_bars(), 3);
        assert_eq!(
            run_codes(&mut s, &bars),
            vec![(2, "CB".to_string()), (3, "C".to_string())]
        );
    }

    #[test]
    fn shorts_the_return_inside_the_upper_band_when_enabled() {
        // bar 1 (6, 10): mean 8, upper 9; close 10 > 9 (above upper).
        // bar 2 (10, 9): mean 9.5, upper 9.75; close 9 < 9.75: short entry.
        // bar 3 (9, 9): middle 9: close 9 <= middle: short exit.
        let bars = closes(&[6.0, 10.0, 9.0, 9.0]);
        let mut s = BollingerReversion::new(2, 0.5, true, Protection::default()).unwrap();
        assert_eq!(
            run_codes(&mut s, &bars),
            vec![(2, "CS".to_string()), (3, "C".to_string())]
        );
        let mut long_only = BollingerReversion::new(2, 0.5, false, Protection::default()).unwrap();
        assert!(run_codes(&mut long_only, &bars).is_empty());
    }
}
