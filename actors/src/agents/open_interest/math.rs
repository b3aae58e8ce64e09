//! The open-interest agent's arithmetic, as pure functions: the change of open interest
//! (and of price) over a window of a sampled series, what the pair of moves says about
//! positioning, and the edge trigger that publishes once per crossing of the threshold.
//!
//! Owns: [`Sample`], [`window_change`] (which samples bound a window, the % and USD change),
//! [`Positioning`] (the label and the direction it leans), [`edge`] (when a crossing is
//! due). Never: I/O, clocks or state — callers pass the series and the previous state.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::signals::Direction;

/// One sample of a symbol's open interest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub time_ms: Millis,
    /// Open interest in base units.
    pub oi: Decimal,
    /// The mark (or the history's implied price: value ÷ contracts) at that time; `None`
    /// when the venue did not say.
    pub price: Option<Decimal>,
}

impl crate::store::Record for Sample {}

/// The change of open interest over one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowChange {
    pub from: Sample,
    pub to: Sample,
    /// (to − from) ÷ from × 100.
    pub change_pct: Decimal,
    /// (to − from) × the price at `to`, in USD; `None` without a price.
    pub change_usd: Option<Decimal>,
    /// The price's change over the same samples, in %; `None` without both prices.
    pub price_change_pct: Option<Decimal>,
}

/// The change over the last `window_ms` of `series` (oldest first): from the newest sample
/// at or before `newest − window` to the newest sample. `None` while the series does not
/// reach back that far, when the sample that bounds the window is more than a whole window
/// older than the window's start (a gap, e.g. while the engine was stopped: that change
/// would span more than twice the window; a seeded history at the window's own period
/// lies up to one period before it), or when the start has no open interest.
pub fn window_change(series: &[Sample], window_ms: i64) -> Option<WindowChange> {
    let to = series.last()?;
    let start = to.time_ms.checked_sub(window_ms)?;
    let from = series.iter().rev().find(|s| s.time_ms <= start)?;
    if from.time_ms < start - window_ms || from.oi <= Decimal::ZERO {
        return None;
    }
    let hundred = Decimal::ONE_HUNDRED;
    let change_pct = ((to.oi - from.oi) / from.oi * hundred).round_dp(4);
    let change_usd = to.price.map(|p| ((to.oi - from.oi) * p).round_dp(2));
    let price_change_pct = match (from.price, to.price) {
        (Some(a), Some(b)) if a > Decimal::ZERO => Some(((b - a) / a * hundred).round_dp(4)),
        _ => None,
    };
    Some(WindowChange {
        from: from.clone(),
        to: to.clone(),
        change_pct,
        change_usd,
        price_change_pct,
    })
}

/// What rising or falling open interest with a rising or falling price says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positioning {
    /// OI up, price up: new longs are opening.
    NewLongs,
    /// OI up, price down: new shorts are opening.
    NewShorts,
    /// OI down, price up: shorts are closing.
    ShortCovering,
    /// OI down, price down: longs are closing.
    LongUnwinding,
    /// The price did not move, or is unknown.
    Indeterminate,
}

impl Positioning {
    pub fn of(change_pct: Decimal, price_change_pct: Option<Decimal>) -> Self {
        let Some(price) = price_change_pct.filter(|p| !p.is_zero()) else {
            return Positioning::Indeterminate;
        };
        match (change_pct > Decimal::ZERO, price > Decimal::ZERO) {
            (true, true) => Positioning::NewLongs,
            (true, false) => Positioning::NewShorts,
            (false, true) => Positioning::ShortCovering,
            (false, false) => Positioning::LongUnwinding,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Positioning::NewLongs => "new longs",
            Positioning::NewShorts => "new shorts",
            Positioning::ShortCovering => "short covering",
            Positioning::LongUnwinding => "long unwinding",
            Positioning::Indeterminate => "price flat or unknown",
        }
    }

    /// The way the price is being pushed: opening positions lead it, closing ones only
    /// follow it (so they lean the same way with less confidence).
    pub fn direction(self) -> Direction {
        match self {
            Positioning::NewLongs | Positioning::ShortCovering => Direction::Long,
            Positioning::NewShorts | Positioning::LongUnwinding => Direction::Short,
            Positioning::Indeterminate => Direction::Neutral,
        }
    }

    /// The signal's confidence: new positions 0.7, closing ones 0.4, no price 0.2.
    pub fn confidence(self) -> f64 {
        match self {
            Positioning::NewLongs | Positioning::NewShorts => 0.7,
            Positioning::ShortCovering | Positioning::LongUnwinding => 0.4,
            Positioning::Indeterminate => 0.2,
        }
    }
}

/// Which side of the threshold a window's change is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossed {
    /// At or above +threshold.
    Rising,
    /// At or below −threshold.
    Falling,
}

/// The edge trigger of one window: `prev` is the crossing in effect (the last one
/// published and not yet re-armed). Answers the state to keep and the crossing to
/// publish now, if any: one publication when the change crosses the threshold, none while
/// it stays beyond it, re-armed once it is back inside, and a new one at once when it
/// swings to the other side.
pub fn edge(
    prev: Option<Crossed>,
    change_pct: Decimal,
    threshold_pct: Decimal,
) -> (Option<Crossed>, Option<Crossed>) {
    let now = if change_pct >= threshold_pct {
        Some(Crossed::Rising)
    } else if change_pct <= -threshold_pct {
        Some(Crossed::Falling)
    } else {
        None
    };
    match now {
        Some(c) if prev == Some(c) => (prev, None),
        Some(c) => (Some(c), Some(c)),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn s(t: Millis, oi: Decimal, px: Decimal) -> Sample {
        Sample {
            time_ms: t,
            oi,
            price: Some(px),
        }
    }

    const M: i64 = 60_000;

    #[test]
    fn the_window_is_bounded_by_the_sample_at_or_before_its_start() {
        let series = vec![
            s(0, dec!(1000), dec!(100)),
            s(5 * M, dec!(1010), dec!(101)),
            s(10 * M, dec!(1050), dec!(99)),
            s(15 * M, dec!(1100), dec!(102)),
        ];
        // 5 minutes: 1050 → 1100 = +4.7619 %; USD (1100-1050) × 102; price 99 → 102.
        let c = window_change(&series, 5 * M).unwrap();
        assert_eq!((c.from.time_ms, c.to.time_ms), (10 * M, 15 * M));
        assert_eq!(c.change_pct, dec!(4.7619));
        assert_eq!(c.change_usd, Some(dec!(5100)));
        assert_eq!(c.price_change_pct, Some(dec!(3.0303)));
        // 12 minutes: the start (3 min) falls between samples: the one before it (0).
        let c = window_change(&series, 12 * M).unwrap();
        assert_eq!(c.from.time_ms, 0);
        assert_eq!(c.change_pct, dec!(10));
        assert_eq!(c.price_change_pct, Some(dec!(2)));
        // 16 minutes: the series does not reach back that far.
        assert_eq!(window_change(&series, 16 * M), None);
        // 5 minutes with a gap: the only sample before the start is 10 minutes older.
        let gap = vec![s(0, dec!(1), dec!(1)), s(20 * M, dec!(2), dec!(1))];
        assert_eq!(window_change(&gap, 5 * M), None);
        assert!(window_change(&gap, 20 * M).is_some());
        // Without a price: a % change only.
        let bare = vec![
            Sample {
                time_ms: 0,
                oi: dec!(200),
                price: None,
            },
            Sample {
                time_ms: M,
                oi: dec!(150),
                price: None,
            },
        ];
        let c = window_change(&bare, M).unwrap();
        assert_eq!((c.change_pct, c.change_usd), (dec!(-25), None));
        assert_eq!(c.price_change_pct, None);
    }

    #[test]
    fn positioning_labels_the_four_quadrants() {
        let p = |oi, px| Positioning::of(oi, px);
        assert_eq!(p(dec!(5), Some(dec!(1))), Positioning::NewLongs);
        assert_eq!(p(dec!(5), Some(dec!(-1))), Positioning::NewShorts);
        assert_eq!(p(dec!(-5), Some(dec!(1))), Positioning::ShortCovering);
        assert_eq!(p(dec!(-5), Some(dec!(-1))), Positioning::LongUnwinding);
        assert_eq!(p(dec!(5), Some(dec!(0))), Positioning::Indeterminate);
        assert_eq!(p(dec!(5), None), Positioning::Indeterminate);
        assert_eq!(Positioning::NewShorts.direction(), Direction::Short);
        assert_eq!(Positioning::ShortCovering.label(), "short covering");
    }

    #[test]
    fn the_edge_fires_once_per_crossing() {
        let t = dec!(2);
        assert_eq!(edge(None, dec!(1.9), t), (None, None));
        assert_eq!(
            edge(None, dec!(2), t),
            (Some(Crossed::Rising), Some(Crossed::Rising))
        );
        assert_eq!(
            edge(Some(Crossed::Rising), dec!(5), t),
            (Some(Crossed::Rising), None),
            "no republish while it stays beyond"
        );
        assert_eq!(
            edge(Some(Crossed::Rising), dec!(-3), t),
            (Some(Crossed::Falling), Some(Crossed::Falling))
        );
        assert_eq!(edge(Some(Crossed::Falling), dec!(0.5), t), (None, None));
    }

    proptest! {
        /// The % change is exactly what the bounding samples say, whatever lies between.
        #[test]
        fn change_matches_its_bounds(ois in proptest::collection::vec(1u32..1_000_000, 2..40), w in 1usize..39) {
            let series: Vec<Sample> = ois.iter().enumerate()
                .map(|(i, oi)| s(i as i64 * M, Decimal::from(*oi), dec!(10))).collect();
            let w = w.min(series.len() - 1);
            let c = window_change(&series, w as i64 * M).unwrap();
            let from = Decimal::from(ois[ois.len() - 1 - w]);
            let to = Decimal::from(ois[ois.len() - 1]);
            prop_assert_eq!(c.change_pct, ((to - from) / from * dec!(100)).round_dp(4));
            prop_assert_eq!(c.change_usd, Some(((to - from) * dec!(10)).round_dp(2)));
            prop_assert_eq!(c.price_change_pct, Some(dec!(0)));
        }

        /// Over any path, the edge publishes at most once between two re-arms, and every
        /// publication is a value beyond the threshold.
        #[test]
        fn the_edge_never_repeats_a_crossing(path in proptest::collection::vec(-50i64..50, 1..100)) {
            let t = dec!(10);
            let mut state = None;
            let mut last_fired = None;
            for v in path {
                let v = Decimal::from(v);
                let (next, fire) = edge(state, v, t);
                if let Some(f) = fire {
                    prop_assert!(v.abs() >= t);
                    prop_assert_ne!(Some(f), last_fired.filter(|_| state.is_some()));
                    last_fired = Some(f);
                }
                state = next;
            }
        }
    }
}
