//! The arithmetic of a funding reading: the z-score of the current rate against the
//! settled history, the state a reading puts a symbol in, and a signal's confidence.
//!
//! Owns: these definitions. Never: reads a venue, a clock or the store.
//!
//! Decided here:
//! - The z-score is `(rate − mean) / sd` with the sample standard deviation (n − 1) of the
//!   settled rates; with fewer than two rates, or all of them equal, there is none (a
//!   flat history says nothing about how unusual a rate is).
//! - The state is who pays: `extreme_positive` (longs pay shorts: crowded longs) when the
//!   rate is above zero and its annualized value reaches `annualized_pct` or its z-score
//!   reaches `+zscore`; `extreme_negative` (shorts pay longs) mirrored; else `normal`. A
//!   z-score against the rate's sign (a positive rate far below its usual level) is not
//!   extreme: nobody is paying unusually.
//! - Statistics are `f64`: the z-score is a measure, not money; the rate and its
//!   annualized value stay `Decimal`.

use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::signals::Direction;

/// Where a symbol's funding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FundingState {
    Normal,
    /// Longs pay shorts, unusually much: crowded longs.
    ExtremePositive,
    /// Shorts pay longs, unusually much: crowded shorts.
    ExtremeNegative,
}

impl FundingState {
    pub fn as_str(self) -> &'static str {
        match self {
            FundingState::Normal => "normal",
            FundingState::ExtremePositive => "extreme_positive",
            FundingState::ExtremeNegative => "extreme_negative",
        }
    }

    /// The lean a signal of this state carries: against the crowd that pays (crowded
    /// longs lean short), neutral once funding is back to normal.
    pub fn direction(self) -> Direction {
        match self {
            FundingState::Normal => Direction::Neutral,
            FundingState::ExtremePositive => Direction::Short,
            FundingState::ExtremeNegative => Direction::Long,
        }
    }

    /// Who pays, in words, for the signal's evidence and the log.
    pub fn meaning(self) -> &'static str {
        match self {
            FundingState::Normal => "funding back within its normal range",
            FundingState::ExtremePositive => "longs pay shorts: crowded longs",
            FundingState::ExtremeNegative => "shorts pay longs: crowded shorts",
        }
    }
}

impl fmt::Display for FundingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The z-score of `rate` against `history` (see the module docs); `None` without one.
pub fn zscore(rate: Decimal, history: &[Decimal]) -> Option<f64> {
    if history.len() < 2 {
        return None;
    }
    let xs: Vec<f64> = history.iter().filter_map(|r| r.to_f64()).collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = var.sqrt();
    if !sd.is_finite() || sd <= f64::EPSILON * mean.abs().max(1e-12) {
        return None;
    }
    Some((rate.to_f64()? - mean) / sd)
}

/// The thresholds a reading is judged by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Annualized percentage, compared with the absolute value.
    pub annualized_pct: f64,
    /// Standard deviations.
    pub zscore: f64,
}

/// The state of a reading (see the module docs).
pub fn classify(
    rate: Decimal,
    annualized_pct: Decimal,
    z: Option<f64>,
    t: Thresholds,
) -> FundingState {
    let ann = annualized_pct.to_f64().unwrap_or(0.0);
    let z = z.unwrap_or(0.0);
    if rate > Decimal::ZERO && (ann >= t.annualized_pct || z >= t.zscore) {
        FundingState::ExtremePositive
    } else if rate < Decimal::ZERO && (ann <= -t.annualized_pct || z <= -t.zscore) {
        FundingState::ExtremeNegative
    } else {
        FundingState::Normal
    }
}

/// Confidence of a signal: 0.5 at a threshold, rising towards 1 the further past the
/// stronger of the two (`1 − 0.5 / strength`); 0.5 for a return to normal.
pub fn confidence(annualized_pct: Decimal, z: Option<f64>, t: Thresholds, s: FundingState) -> f64 {
    if s == FundingState::Normal {
        return 0.5;
    }
    let ann = annualized_pct.to_f64().unwrap_or(0.0).abs() / t.annualized_pct;
    let zs = z.map_or(0.0, f64::abs) / t.zscore;
    let strength = ann.max(zs).max(1.0);
    // Four places, as every confidence the engine shows.
    crate::models::decision::round_confidence((1.0 - 0.5 / strength).clamp(0.5, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const T: Thresholds = Thresholds {
        annualized_pct: 50.0,
        zscore: 3.0,
    };

    #[test]
    fn zscore_known_answers() {
        // mean 0.0001, sample sd 0.0001 (values 0, 0.0001, 0.0002).
        let h = [dec!(0), dec!(0.0001), dec!(0.0002)];
        let z = zscore(dec!(0.0004), &h).unwrap();
        assert!((z - 3.0).abs() < 1e-9, "{z}");
        let z = zscore(dec!(-0.0001), &h).unwrap();
        assert!((z + 2.0).abs() < 1e-9, "{z}");
        // 1, 2, 3, 4: mean 2.5, sd sqrt(5/3) = 1.29099...
        let h = [dec!(1), dec!(2), dec!(3), dec!(4)];
        let z = zscore(dec!(5), &h).unwrap();
        assert!((z - 2.5 / (5.0f64 / 3.0).sqrt()).abs() < 1e-12, "{z}");
        assert_eq!(zscore(dec!(1), &[dec!(0.0001)]), None);
        assert_eq!(zscore(dec!(1), &[dec!(0.0001), dec!(0.0001)]), None);
    }

    #[test]
    fn the_state_is_who_pays_past_either_threshold() {
        // 0.0001 per 8 h = 10.95 %/year: normal, unless far from its history.
        assert_eq!(
            classify(dec!(0.0001), dec!(10.95), Some(0.5), T),
            FundingState::Normal
        );
        assert_eq!(
            classify(dec!(0.0001), dec!(10.95), Some(3.0), T),
            FundingState::ExtremePositive
        );
        assert_eq!(
            classify(dec!(0.0005), dec!(54.75), None, T),
            FundingState::ExtremePositive
        );
        assert_eq!(
            classify(dec!(-0.0005), dec!(-54.75), Some(-0.1), T),
            FundingState::ExtremeNegative
        );
        assert_eq!(
            classify(dec!(-0.00001), dec!(-1.095), Some(-3.5), T),
            FundingState::ExtremeNegative
        );
        // A positive rate far below its usual level: nobody pays unusually.
        assert_eq!(
            classify(dec!(0.00001), dec!(1.095), Some(-4.0), T),
            FundingState::Normal
        );
        assert_eq!(
            classify(dec!(0), dec!(0), Some(9.0), T),
            FundingState::Normal
        );
        assert_eq!(FundingState::ExtremePositive.direction(), Direction::Short);
        assert_eq!(FundingState::ExtremeNegative.direction(), Direction::Long);
    }

    #[test]
    fn confidence_grows_past_the_threshold() {
        let c = |ann, z, s| confidence(ann, z, T, s);
        assert_eq!(c(dec!(50), None, FundingState::ExtremePositive), 0.5);
        assert_eq!(c(dec!(100), Some(1.0), FundingState::ExtremePositive), 0.75);
        assert_eq!(
            c(dec!(-10), Some(-6.0), FundingState::ExtremeNegative),
            0.75
        );
        assert_eq!(c(dec!(10), None, FundingState::Normal), 0.5);
    }
}
