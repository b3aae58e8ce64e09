//! EMA crossover: `sma_cross`'s rule on exponential averages. On the bar the fast EMA
//! crosses strictly above the slow one (below on the previous bar, above on this one), close
//! any short and buy; on the reverse cross, close any long and sell. EMAs are TA-Lib's
//! (SMA-seeded), so the first cross can happen once both have two values: bar `slow + 1`.
//! As in `SmaCross`, a cross to the side already held (the averages touched and parted the
//! same way again) closes the position and opens a new one.

use crate::strategies::api::{Actions, Bar, PositionView, Size, Strategy};
use crate::strategies::indicators::{Ema, IndicatorError};
use crate::strategies::params::ParamSpec;

use super::rules::{crossover_signals, Protection, SameSide, STOP_LOSS, TAKE_PROFIT};

pub(super) const PARAMS: [ParamSpec; 4] = [
    ParamSpec::int("fast", 1, 1000, 12, "fast EMA period, in bars"),
    ParamSpec::int("slow", 2, 5000, 26, "slow EMA period, in bars (> fast)"),
    STOP_LOSS,
    TAKE_PROFIT,
];

#[derive(Debug, Clone)]
pub struct EmaCross {
    fast: Ema,
    slow: Ema,
    slow_period: usize,
    protection: Protection,
    prev: Option<(f64, f64)>,
}

impl EmaCross {
    pub fn new(fast: usize, slow: usize, protection: Protection) -> Result<Self, IndicatorError> {
        Ok(Self {
            fast: Ema::new(fast)?,
            slow: Ema::new(slow)?,
            slow_period: slow.max(fast),
            protection,
            prev: None,
        })
    }
}

impl Strategy for EmaCross {
    fn name(&self) -> &str {
        "ema_cross"
    }

    fn warmup_bars(&self) -> usize {
        self.slow_period + 1
    }

    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions) {
        let (Some(fast), Some(slow)) = (self.fast.update(bar.close), self.slow.update(bar.close))
        else {
            return;
        };
        if let Some(prev) = self.prev {
            let p = self.protection;
            crossover_signals(prev, (fast, slow)).apply(
                SameSide::Reopen,
                position,
                bar.close,
                Size::ALL,
                |side, close| p.prices(side, close),
                actions,
            );
        }
        self.prev = Some((fast, slow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::builtin::testing::{closes, run_codes};

    #[test]
    fn crosses_flip_the_position() {
        // EMA(2) k=2/3 seeded at bar 1, EMA(3) k=1/2 seeded at bar 2:
        // bar 2: fast 8.5 (from 9.5), slow 9; bar 3: fast 7.5, slow 8 (below);
        // bar 4: fast 7.5+(12-7.5)*2/3 = 10.5, slow 8+(12-8)/2 = 10 -> cross up;
        // bar 5: fast 10.5+(6-10.5)*2/3 = 7.5, slow 10+(6-10)/2 = 8 -> cross down.
        let bars = closes(&[10.0, 9.0, 8.0, 7.0, 12.0, 6.0, 6.0]);
        let mut s = EmaCross::new(2, 3, Protection::default()).unwrap();
        assert_eq!(s.warmup_bars(), 4);
        assert_eq!(
            run_codes(&mut s, &bars),
            vec![(4, "CB".to_string()), (5, "CS".to_string())]
        );
    }

    #[test]
    fn entries_carry_the_protective_prices() {
        let bars = closes(&[10.0, 9.0, 8.0, 7.0, 12.0]);
        let mut s = EmaCross::new(
            2,
            3,
            Protection {
                stop_loss_pct: 10.0,
                take_profit_pct: 20.0,
            },
        )
        .unwrap();
        let acts = crate::strategies::builtin::testing::run(&mut s, &bars);
        let crate::strategies::api::Action::Order(o) = acts[0].1[1] else {
            panic!("{acts:?}")
        };
        assert!((o.stop_loss.unwrap() - 10.8).abs() < 1e-9, "{o:?}");
        assert!((o.take_profit.unwrap() - 14.4).abs() < 1e-9, "{o:?}");
    }
}
