//! MACD signal-line crossover (TA-Lib `MACD`), `sma_cross`'s rule on the MACD and signal
//! lines: on the bar MACD crosses strictly above its signal line, close any short and buy;
//! on the reverse cross, close any long and sell. The first decision needs two MACD values:
//! bar `slow + signal`. As in `SmaCross`, a cross to the side already held (the lines touched
//! and parted the same way again) closes the position and opens a new one.

use crate::strategies::api::{Actions, Bar, PositionView, Size, Strategy};
use crate::strategies::indicators::{IndicatorError, Macd};
use crate::strategies::params::ParamSpec;

use super::rules::{crossover_signals, Protection, SameSide, STOP_LOSS, TAKE_PROFIT};

pub(super) const PARAMS: [ParamSpec; 5] = [
    ParamSpec::int("fast", 1, 1000, 12, "fast EMA period, in bars"),
    ParamSpec::int("slow", 2, 5000, 26, "slow EMA period, in bars (> fast)"),
    ParamSpec::int("signal", 1, 1000, 9, "signal line EMA period, in bars"),
    STOP_LOSS,
    TAKE_PROFIT,
];

#[derive(Debug, Clone)]
pub struct MacdCross {
    macd: Macd,
    warmup: usize,
    protection: Protection,
    prev: Option<(f64, f64)>,
}

impl MacdCross {
    pub fn new(
        fast: usize,
        slow: usize,
        signal: usize,
        protection: Protection,
    ) -> Result<Self, IndicatorError> {
        Ok(Self {
            macd: Macd::new(fast, slow, signal)?,
            warmup: slow + signal,
            protection,
            prev: None,
        })
    }
}

impl Strategy for MacdCross {
    fn name(&self) -> &str {
        "macd"
    }

    fn warmup_bars(&self) -> usize {
        self.warmup
    }

    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions) {
        let Some(v) = self.macd.update(bar.close) else {
            return;
        };
        let now = (v.macd, v.signal);
        if let Some(prev) = self.prev {
            let p = self.protection;
            crossover_signals(prev, now).apply(
                SameSide::Reopen,
                position,
                bar.close,
                Size::ALL,
                |side, close| p.prices(side, close),
                actions,
            );
        }
        self.prev = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::builtin::testing::{closes, run_codes};

    #[test]
    fn macd_crossing_its_signal_line_flips_the_position() {
        // MACD(1, 2, 2): the fast EMA(1) is the close, the slow EMA(2) and the signal
        // EMA(2) have k = 2/3 (a signal period of 1 would equal MACD and never cross it).
        // closes 10, 10, 10: slow seed at bar 1 = 10, MACD 0 at bars 1, 2; signal 0 at bar 2.
        // bar 3 close 13: slow 10+(3)·2/3 = 12, MACD 1, signal 0+(1)·2/3 = 0.667: MACD above
        //   (was equal: no strict cross).
        // bar 4 close 10: slow 12+(−2)·2/3 = 10.667, MACD −0.667, signal 0.667−1.333·2/3 =
        //   −0.222: MACD below: cross down (was above) -> sell.
        // bar 5 close 13: slow 10.667+2.333·2/3 = 12.222, MACD 0.778, signal
        //   −0.222+1·2/3 = 0.444: cross up -> buy.
        let bars = closes(&[10.0, 10.0, 10.0, 13.0, 10.0, 13.0]);
        let mut s = MacdCross::new(1, 2, 2, Protection::default()).unwrap();
        assert_eq!(s.warmup_bars(), 4);
        assert_eq!(
            run_codes(&mut s, &bars),
            vec![(4, "CS".to_string()), (5, "CB".to_string())]
        );
    }
}
