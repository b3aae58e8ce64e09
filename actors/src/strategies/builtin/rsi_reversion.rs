//! RSI mean reversion (Wilder's RSI, as TA-Lib).
//!
//! "Crosses up through x" is strict, as backtesting.py's `crossover`: RSI was below `x` on the
//! previous bar and is above it on this one (touching `x` is no cross).
//! - long entry: RSI crosses up through `lower` (leaving oversold);
//! - long exit: RSI crosses up through `upper` (reaching overbought);
//! - with `short=1`, the mirror image: short entry when RSI crosses down through `upper`,
//!   short exit when it crosses down through `lower`.
//!
//! Exits are applied before entries, and an entry against an open position flips it (see
//! `rules`). The first decision needs two RSI values: bar `period + 2`.

use crate::strategies::api::{Actions, Bar, PositionView, Size, Strategy};
use crate::strategies::indicators::{IndicatorError, Rsi};
use crate::strategies::params::ParamSpec;

use super::crossed_above;
use super::rules::{Protection, SameSide, Signals, SHORT, STOP_LOSS, TAKE_PROFIT};

pub(super) const PARAMS: [ParamSpec; 6] = [
    ParamSpec::int("period", 1, 1000, 14, "RSI period, in bars"),
    ParamSpec::float("lower", 0.0, 100.0, 30.0, "oversold level (< upper)"),
    ParamSpec::float("upper", 0.0, 100.0, 70.0, "overbought level (> lower)"),
    SHORT,
    STOP_LOSS,
    TAKE_PROFIT,
];

#[derive(Debug, Clone)]
pub struct RsiReversion {
    rsi: Rsi,
    period: usize,
    lower: f64,
    upper: f64,
    short: bool,
    protection: Protection,
    prev: Option<f64>,
}

impl RsiReversion {
    pub fn new(
        period: usize,
        lower: f64,
        upper: f64,
        short: bool,
        protection: Protection,
    ) -> Result<Self, IndicatorError> {
        Ok(Self {
            rsi: Rsi::new(period)?,
            period,
            lower,
            upper,
            short,
            protection,
            prev: None,
        })
    }
}

impl Strategy for RsiReversion {
    fn name(&self) -> &str {
        "rsi_reversion"
    }

    fn warmup_bars(&self) -> usize {
        self.period + 2
    }

    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions) {
        let Some(rsi) = self.rsi.update(bar.close) else {
            return;
        };
        if let Some(prev) = self.prev {
            let up = |level: f64| crossed_above(prev, level, rsi, level);
            let down = |level: f64| crossed_above(level, prev, level, rsi);
            let signals = Signals {
                enter_long: up(self.lower),
                exit_long: up(self.upper),
                enter_short: self.short && down(self.upper),
                exit_short: down(self.lower),
            };
            let p = self.protection;
            signals.apply(
                SameSide::Hold,
                position,
                bar.close,
                Size::ALL,
                |side, close| p.prices(side, close),
                actions,
            );
        }
        self.prev = Some(rsi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::builtin::testing::{closes, run_codes};

    // RSI(1) is 100 after a rise and 0 after a fall (Wilder with n=1 is the last change), so
    // with levels 30/70 every direction change is a cross through both levels.
    #[test]
    fn enters_on_leaving_oversold_and_exits_on_reaching_overbought() {
        // changes: -, -, +, +(RSI stays 100), -, +
        let bars = closes(&[10.0, 9.0, 8.0, 9.0, 10.0, 9.0, 10.0]);
        let mut long_only = RsiReversion::new(1, 30.0, 70.0, false, Protection::default()).unwrap();
        // bar 3: RSI 0 -> 100 crosses up through 30 (enter) and through 70: the exit only
        // applies to a position held before the bar, so the entry stands.
        // bar 5: 100 -> 0: no long exit (that is an up-cross), no short (long only).
        // bar 6: 0 -> 100 crosses up through 70 (exit the long) and through 30 (entry):
        // exits come first, so the long is closed, then the entry opens a new one.
        assert_eq!(
            run_codes(&mut long_only, &bars),
            vec![(3, "CB".to_string()), (6, "CB".to_string())]
        );
    }

    #[test]
    fn shorts_mirror_longs_when_enabled() {
        // RSI(2) on a hand-checkable series; values (Wilder, n=2):
        // closes 10, 11, 12 -> first RSI at bar 2 = 100 (two gains).
        // bar 3: 11 (-1): gain (1·1+0)/2 = 0.5, loss (0+1)/2 = 0.5 -> 50: down through 70.
        // bar 4: 10 (-1): gain 0.25, loss 0.75 -> 25: down through 30.
        // bar 5: 12 (+2): gain 1.125, loss 0.375 -> 75: up through 30 and 70.
        let bars = closes(&[10.0, 11.0, 12.0, 11.0, 10.0, 12.0]);
        let mut s = RsiReversion::new(2, 30.0, 70.0, true, Protection::default()).unwrap();
        assert_eq!(s.warmup_bars(), 4);
        // bar 3: short entry; bar 4: short exit; bar 5: long entry (exit long needs a long
        // held before the bar).
        assert_eq!(
            run_codes(&mut s, &bars),
            vec![
                (3, "CS".to_string()),
                (4, "C".to_string()),
                (5, "CB".to_string())
            ]
        );
        let mut long_only = RsiReversion::new(2, 30.0, 70.0, false, Protection::default()).unwrap();
        assert_eq!(
            run_codes(&mut long_only, &bars),
            vec![(5, "CB".to_string())]
        );
    }
}
