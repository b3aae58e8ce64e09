//! What the built-ins share: turning a bar's signals into actions, and protective exits.
//!
//! Every built-in decides four booleans per bar ([`Signals`]) and lets [`Signals::apply`]
//! turn them into actions the same way, so "exit", "flip" and "no pyramiding" mean one thing
//! across strategies:
//! 1. exits first: a long whose exit signal fires is closed, likewise a short;
//! 2. then entries: a long entry pushes `ClosePosition` (a no-op when flat, the close of a
//!    short otherwise) and a buy; a short entry likewise with a sell. This is backtesting.py's
//!    `self.position.close(); self.buy()` idiom, so a rule written that way elsewhere gives
//!    the same actions. At most one `ClosePosition` is pushed per bar;
//! 3. an entry on the side already held is skipped ([`SameSide::Hold`], no pyramiding) or,
//!    for the crossover rules that copy backtesting.py's `SmaCross`, closes and re-opens the
//!    position ([`SameSide::Reopen`]: after the averages touch and part the same way again,
//!    `SmaCross` does exactly that);
//! 4. if both entries fire on the same bar the signal is ambiguous and neither is taken.
//!
//! Owns: that translation and the stop/take-profit prices. Never: indicator arithmetic.

use crate::strategies::api::{Actions, PositionView, Side, Size};
use crate::strategies::params::{ParamSpec, Params};

/// `stop_loss_pct` / `take_profit_pct`: optional protective exits of every built-in but
/// `sma_cross` (which is backtesting.py's example exactly and has none).
pub(super) const STOP_LOSS: ParamSpec = ParamSpec::float(
    "stop_loss_pct",
    0.0,
    99.0,
    0.0,
    "stop-loss distance in percent of the signal bar's close (0 = none)",
);
pub(super) const TAKE_PROFIT: ParamSpec = ParamSpec::float(
    "take_profit_pct",
    0.0,
    1000.0,
    0.0,
    "take-profit distance in percent of the signal bar's close (0 = none)",
);
/// `short`: whether the symmetric short rule trades (1) or only longs do (0).
pub(super) const SHORT: ParamSpec = ParamSpec::int(
    "short",
    0,
    1,
    1,
    "1: also trade the symmetric short rule; 0: long only",
);

/// Protective exits attached to every entry, as percentages of the signal bar's close (the
/// entry price is not known when the strategy decides: it fills at the next open by default).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Protection {
    /// Percent below (long) / above (short) the close; 0 = none.
    pub stop_loss_pct: f64,
    /// Percent above (long) / below (short) the close; 0 = none.
    pub take_profit_pct: f64,
}

impl Protection {
    pub(super) fn from_params(p: &Params) -> Self {
        Self {
            stop_loss_pct: p.get(STOP_LOSS.name),
            take_profit_pct: p.get(TAKE_PROFIT.name),
        }
    }

    /// Stop-loss and take-profit prices for an entry on `side` at a bar closing at `close`.
    pub fn prices(&self, side: Side, close: f64) -> (Option<f64>, Option<f64>) {
        let at = |pct: f64, sign: f64| (pct > 0.0).then(|| close * (1.0 + sign * pct / 100.0));
        // A long's stop is below the close (sign -1) and its target above; a short mirrors.
        let s = side.sign();
        (at(self.stop_loss_pct, -s), at(self.take_profit_pct, s))
    }
}

/// One bar's decision, before the position is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals {
    pub enter_long: bool,
    pub exit_long: bool,
    pub enter_short: bool,
    pub exit_short: bool,
}

/// What an entry on the side already held does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSide {
    /// Nothing: the position is kept as it is.
    Hold,
    /// Close it and open a new one (backtesting.py's `position.close(); buy()` when long).
    Reopen,
}

impl Signals {
    /// Pushes the actions for this bar (see the module docs for the order), each entry with
    /// `size` and the stop / take-profit prices `protect` gives.
    pub fn apply(
        self,
        same_side: SameSide,
        position: &PositionView,
        close: f64,
        size: Size,
        protect: impl Fn(Side, f64) -> (Option<f64>, Option<f64>),
        actions: &mut Actions,
    ) {
        let mut side = if position.is_long() {
            1
        } else if position.is_short() {
            -1
        } else {
            0
        };
        let mut closed = false;
        if (side > 0 && self.exit_long) || (side < 0 && self.exit_short) {
            actions.close();
            closed = true;
            side = 0;
        }
        let reopen = same_side == SameSide::Reopen;
        let entry = match (self.enter_long, self.enter_short) {
            (true, false) if side <= 0 || reopen => Some(Side::Buy),
            (false, true) if side >= 0 || reopen => Some(Side::Sell),
            _ => None,
        };
        if let Some(entry) = entry {
            if !closed {
                actions.close();
            }
            let (stop, target) = protect(entry, close);
            actions.order(entry, size, stop, target);
        }
    }
}

/// Fast-below-slow to fast-above-slow (and back): the crossover rule of `sma_cross`,
/// `ema_cross` and `macd`, as four signals (entries only: the opposite entry flips).
pub(super) fn crossover_signals(prev: (f64, f64), now: (f64, f64)) -> Signals {
    Signals {
        enter_long: super::crossed_above(prev.0, prev.1, now.0, now.1),
        enter_short: super::crossed_above(prev.1, prev.0, now.1, now.0),
        ..Signals::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::api::Action;

    fn long() -> PositionView {
        PositionView {
            size: 1.0,
            entry_price: Some(10.0),
        }
    }

    #[test]
    fn protection_prices_sit_on_the_right_side() {
        let p = Protection {
            stop_loss_pct: 2.0,
            take_profit_pct: 5.0,
        };
        let (sl, tp) = p.prices(Side::Buy, 100.0);
        assert!((sl.unwrap() - 98.0).abs() < 1e-9 && (tp.unwrap() - 105.0).abs() < 1e-9);
        let (sl, tp) = p.prices(Side::Sell, 100.0);
        assert!((sl.unwrap() - 102.0).abs() < 1e-9 && (tp.unwrap() - 95.0).abs() < 1e-9);
        assert_eq!(Protection::default().prices(Side::Buy, 100.0), (None, None));
    }

    #[test]
    fn exits_then_entries_one_close_no_pyramiding() {
        let none = |_: Side, _: f64| (None, None);
        let mut a = Actions::new();
        // Long + exit + short entry: one close, then the sell.
        Signals {
            exit_long: true,
            enter_short: true,
            ..Default::default()
        }
        .apply(SameSide::Hold, &long(), 10.0, Size::ALL, none, &mut a);
        assert_eq!(a.as_slice().len(), 2);
        assert_eq!(a.as_slice()[0], Action::ClosePosition);
        assert!(matches!(a.as_slice()[1], Action::Order(o) if o.side == Side::Sell));
        // Already long: a long entry adds nothing.
        a.clear();
        Signals {
            enter_long: true,
            ..Default::default()
        }
        .apply(SameSide::Hold, &long(), 10.0, Size::ALL, none, &mut a);
        assert!(a.is_empty());
        // Unless the rule re-opens: close, then buy again.
        Signals {
            enter_long: true,
            ..Default::default()
        }
        .apply(SameSide::Reopen, &long(), 10.0, Size::ALL, none, &mut a);
        assert_eq!(a.as_slice().len(), 2);
        assert_eq!(a.as_slice()[0], Action::ClosePosition);
        a.clear();
        // Both entries: ambiguous, nothing.
        Signals {
            enter_long: true,
            enter_short: true,
            ..Default::default()
        }
        .apply(
            SameSide::Hold,
            &PositionView::FLAT,
            10.0,
            Size::ALL,
            none,
            &mut a,
        );
        assert!(a.is_empty());
        // Exit of a side we do not hold: nothing.
        Signals {
            exit_short: true,
            ..Default::default()
        }
        .apply(SameSide::Hold, &long(), 10.0, Size::ALL, none, &mut a);
        assert!(a.is_empty());
    }
}
