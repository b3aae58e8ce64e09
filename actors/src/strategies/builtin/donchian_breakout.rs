//! Donchian channel breakout (turtle style).
//!
//! "Prior N-bar high" is the highest high of the N bars *before* the current one (bars
//! `i−N ..= i−1`); the current bar is excluded, otherwise a close could never exceed it.
//! Likewise for lows.
//! - long entry: the close is strictly above the prior `entry`-bar high;
//! - long exit: the close is strictly below the prior `exit`-bar low;
//! - with `short=1`, the mirror image: short entry on a close strictly below the prior
//!   `entry`-bar low, short exit on a close strictly above the prior `exit`-bar high.
//!
//! Exits are applied before entries (see `rules`). The first decision is on bar
//! `max(entry, exit) + 1`, once both prior channels cover full windows.

use crate::strategies::api::{Actions, Bar, PositionView, Size, Strategy};
use crate::strategies::indicators::{Band, Donchian, IndicatorError};
use crate::strategies::params::ParamSpec;

use super::rules::{Protection, SameSide, Signals, SHORT, STOP_LOSS, TAKE_PROFIT};

pub(super) const PARAMS: [ParamSpec; 5] = [
    ParamSpec::int(
        "entry",
        1,
        1000,
        20,
        "entry channel length, in bars before the current one",
    ),
    ParamSpec::int(
        "exit",
        1,
        1000,
        10,
        "exit channel length, in bars before the current one",
    ),
    SHORT,
    STOP_LOSS,
    TAKE_PROFIT,
];

#[derive(Debug, Clone)]
pub struct DonchianBreakout {
    entry: Donchian,
    exit: Donchian,
    warmup: usize,
    short: bool,
    protection: Protection,
    /// The channels up to and including the previous bar: the "prior" channels of this one.
    prior: (Option<Band>, Option<Band>),
}

impl DonchianBreakout {
    pub fn new(
        entry: usize,
        exit: usize,
        short: bool,
        protection: Protection,
    ) -> Result<Self, IndicatorError> {
        Ok(Self {
            entry: Donchian::new(entry)?,
            exit: Donchian::new(exit)?,
            warmup: entry.max(exit) + 1,
            short,
            protection,
            prior: (None, None),
        })
    }
}

impl Strategy for DonchianBreakout {
    fn name(&self) -> &str {
        "donchian_breakout"
    }

    fn warmup_bars(&self) -> usize {
        self.warmup
    }

    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions) {
        if !(bar.high.is_finite() && bar.low.is_finite() && bar.close.is_finite()) {
            // The channels refuse such a bar too; deciding on it would compare NaN.
            return;
        }
        if let (Some(entry), Some(exit)) = self.prior {
            let close = bar.close;
            let signals = Signals {
                enter_long: close > entry.upper,
                exit_long: close < exit.lower,
                enter_short: self.short && close < entry.lower,
                exit_short: close > exit.upper,
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
        self.prior = (
            self.entry.update(bar.high, bar.low),
            self.exit.update(bar.high, bar.low),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::builtin::testing::{hlc, run_codes};

    #[test]
    fn breaks_out_above_the_prior_high_and_exits_below_the_prior_low() {
        let bars = [
            hlc(10.0, 8.0, 9.0),
            hlc(11.0, 9.0, 10.0),
            // prior 2-bar high 11: close 11 is not above it (the current high 12 is excluded).
            hlc(12.0, 10.0, 11.0),
            // prior 2-bar high 12 (bars 1, 2): close 12.5 breaks out -> buy.
            hlc(13.0, 11.0, 12.5),
            // prior 1-bar low 11 (bar 3): close 10.5 is below -> exit; prior 2-bar low 10:
            // not below it, so no short.
            hlc(12.0, 10.0, 10.5),
            // prior 2-bar low 10 (bars 3, 4): close 9 -> short entry (and prior 1-bar low 10).
            hlc(10.0, 8.5, 9.0),
        ];
        let mut s = DonchianBreakout::new(2, 1, true, Protection::default()).unwrap();
        assert_eq!(s.warmup_bars(), 3);
        assert_eq!(
            run_codes(&mut s, &bars),
            vec![
                (3, "CB".to_string()),
                (4, "C".to_string()),
                (5, "CS".to_string())
            ]
        );
        let mut long_only = DonchianBreakout::new(2, 1, false, Protection::default()).unwrap();
        assert_eq!(
            run_codes(&mut long_only, &bars),
            vec![(3, "CB".to_string()), (4, "C".to_string())]
        );
    }
}
