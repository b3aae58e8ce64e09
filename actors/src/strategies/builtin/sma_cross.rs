//! SMA crossover, as backtesting.py's documented `SmaCross` example:
//!
//! ```python
//! def next(self):
//!     if crossover(self.sma1, self.sma2):   # fast crossed above slow
//!         self.position.close(); self.buy()
//!     elif crossover(self.sma2, self.sma1): # fast crossed below slow
//!         self.position.close(); self.sell()
//! ```

use crate::strategies::api::{Actions, Bar, PositionView, Strategy};
use crate::strategies::indicators::{IndicatorError, Sma};
use crate::strategies::params::ParamSpec;

use super::crossed_above;

pub(super) const PARAMS: [ParamSpec; 2] = [
    ParamSpec::int("fast", 1, 1000, 10, "fast SMA period, in bars"),
    ParamSpec::int("slow", 2, 5000, 20, "slow SMA period, in bars"),
];

#[derive(Debug, Clone)]
pub struct SmaCross {
    fast: Sma,
    slow: Sma,
    slow_period: usize,
    /// Both averages on the previous bar, once both are warm.
    prev: Option<(f64, f64)>,
}

impl SmaCross {
    pub fn new(fast: usize, slow: usize) -> Result<Self, IndicatorError> {
        Ok(Self {
            fast: Sma::new(fast)?,
            slow: Sma::new(slow)?,
            slow_period: slow.max(fast),
            prev: None,
        })
    }
}

impl Strategy for SmaCross {
    fn name(&self) -> &str {
        "sma_cross"
    }

    /// The longer average's warm-up plus one bar: a cross needs two values of each.
    fn warmup_bars(&self) -> usize {
        self.slow_period + 1
    }

    fn on_bar(&mut self, bar: &Bar, _position: &PositionView, actions: &mut Actions) {
        let (Some(fast), Some(slow)) = (self.fast.update(bar.close), self.slow.update(bar.close))
        else {
            return;
        };
        if let Some((prev_fast, prev_slow)) = self.prev {
            if crossed_above(prev_fast, prev_slow, fast, slow) {
                actions.close();
                actions.buy();
            } else if crossed_above(prev_slow, prev_fast, slow, fast) {
                actions.close();
                actions.sell();
            }
        }
        self.prev = Some((fast, slow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::api::{Action, Side};

    fn bar(close: f64) -> Bar {
        Bar {
            time_ms: 0,
            open: close,
            high: close,
            low: close,
            close,
            volume: 0.0,
        }
    }

    #[test]
    fn crossing_up_closes_and_buys_crossing_down_closes_and_sells() {
        let mut s = SmaCross::new(2, 3).unwrap();
        let mut actions = Actions::new();
        let mut seen = Vec::new();
        for (i, c) in [10.0, 9.0, 8.0, 7.0, 12.0, 14.0, 9.0, 5.0]
            .into_iter()
            .enumerate()
        {
            actions.clear();
            s.on_bar(&bar(c), &PositionView::FLAT, &mut actions);
            if !actions.is_empty() {
                seen.push((i, actions.as_slice().to_vec()));
            }
        }
        let sides: Vec<(usize, Option<Side>)> = seen
            .iter()
            .map(|(i, a)| {
                assert_eq!(a[0], Action::ClosePosition);
                match a[1] {
                    Action::Order(o) => (*i, Some(o.side)),
                    Action::ClosePosition => (*i, None),
                }
            })
            .collect();
        // fast SMA(2) vs slow SMA(3): 9.5 > 9 at bar 4 (after 7.5 < 8), 11.5 < 11.67 at bar 6.
        assert_eq!(sides, vec![(4, Some(Side::Buy)), (6, Some(Side::Sell))]);
    }

    #[test]
    fn equal_averages_are_no_cross() {
        let mut s = SmaCross::new(1, 2).unwrap();
        let mut actions = Actions::new();
        for c in [5.0, 5.0, 5.0, 5.0] {
            s.on_bar(&bar(c), &PositionView::FLAT, &mut actions);
        }
        assert!(actions.is_empty());
    }
}
