//! The built-in strategies and their registry.
//!
//! Each built-in is a [`Builtin`] row: its name, a one-line summary, its declared
//! parameters, and a constructor from a checked [`Params`] set. The CLI, the backtester,
//! sweeps and the strategy agent all build strategies through [`build`], so a name or a
//! parameter means the same thing everywhere.
//!
//! Owns: the list of built-ins and how a name plus `k=v` pairs becomes a strategy.
//! Never: running one (the backtester and the strategy agent do).

mod bollinger_reversion;
mod donchian_breakout;
mod ema_cross;
mod macd;
mod rsi_reversion;
mod rules;
mod sma_cross;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;

pub use bollinger_reversion::BollingerReversion;
pub use donchian_breakout::DonchianBreakout;
pub use ema_cross::EmaCross;
pub use macd::MacdCross;
pub use rsi_reversion::RsiReversion;
pub use rules::{Protection, SameSide, Signals};
pub use sma_cross::SmaCross;

use super::api::Strategy;
use super::indicators::IndicatorError;
use super::params::{ParamError, ParamSpec, Params};

/// Why a strategy could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("unknown strategy '{name}'; built-ins: {known}")]
    Unknown { name: String, known: String },
    #[error("{strategy}: {source}")]
    Params {
        strategy: String,
        #[source]
        source: ParamError,
    },
    #[error("{strategy}: {source}")]
    Indicator {
        strategy: String,
        #[source]
        source: IndicatorError,
    },
    /// A declarative spec (from the strategy library) that does not compile.
    #[error("{strategy}: {source}")]
    Spec {
        strategy: String,
        #[source]
        source: crate::strategies::spec::SpecErrors,
    },
}

/// One registered built-in strategy.
pub struct Builtin {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    /// Constraints between parameters (`fast < slow`), checked by [`Builtin::resolve`].
    constraint: fn(&Params) -> Result<(), ParamError>,
    construct: fn(&Params) -> Result<Box<dyn Strategy>, IndicatorError>,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtin").field("name", &self.name).finish()
    }
}

impl Builtin {
    /// Checks `given` against the declared parameters (defaults filled in) and the
    /// constraints between them ([`ParamError::Constraint`]).
    pub fn resolve(&self, given: &BTreeMap<String, f64>) -> Result<Params, StrategyError> {
        let err = |source| StrategyError::Params {
            strategy: self.name.to_string(),
            source,
        };
        let params = Params::resolve(self.params, given).map_err(err)?;
        (self.constraint)(&params).map_err(err)?;
        Ok(params)
    }

    /// Builds the strategy from a set resolved by [`Builtin::resolve`].
    pub fn build(&self, params: &Params) -> Result<Box<dyn Strategy>, StrategyError> {
        (self.construct)(params).map_err(|source| StrategyError::Indicator {
            strategy: self.name.to_string(),
            source,
        })
    }
}

/// Every built-in, in the order `orrery` lists them.
pub fn builtins() -> &'static [Builtin] {
    &BUILTINS
}

static BUILTINS: [Builtin; 6] = [
    Builtin {
        name: "sma_cross",
        summary: "fast SMA crosses above slow: close any short and buy; below: close any long and sell (backtesting.py's SmaCross)",
        params: &sma_cross::PARAMS,
        // backtesting.py's SmaCross takes any pair (a sweep states `fast<slow` itself).
        constraint: |_| Ok(()),
        construct: |p| Ok(Box::new(SmaCross::new(p.period("fast"), p.period("slow"))?)),
    },
    Builtin {
        name: "ema_cross",
        summary: "fast EMA crosses above slow: close any short and buy; below: close any long and sell",
        params: &ema_cross::PARAMS,
        constraint: |p| less_than(p, "fast", "slow"),
        construct: |p| {
            Ok(Box::new(EmaCross::new(
                p.period("fast"),
                p.period("slow"),
                Protection::from_params(p),
            )?))
        },
    },
    Builtin {
        name: "rsi_reversion",
        summary: "RSI crosses up through lower: buy; up through upper: close the long (short=1: the mirror for shorts)",
        params: &rsi_reversion::PARAMS,
        constraint: |p| less_than(p, "lower", "upper"),
        construct: |p| {
            Ok(Box::new(RsiReversion::new(
                p.period("period"),
                p.get("lower"),
                p.get("upper"),
                p.get("short") == 1.0,
                Protection::from_params(p),
            )?))
        },
    },
    Builtin {
        name: "bollinger_reversion",
        summary: "close crosses back above the lower band: buy; at the middle band: close (short=1: the mirror at the upper band)",
        params: &bollinger_reversion::PARAMS,
        constraint: |_| Ok(()),
        construct: |p| {
            Ok(Box::new(BollingerReversion::new(
                p.period("period"),
                p.get("k"),
                p.get("short") == 1.0,
                Protection::from_params(p),
            )?))
        },
    },
    Builtin {
        name: "macd",
        summary: "MACD crosses above its signal line: close any short and buy; below: close any long and sell",
        params: &macd::PARAMS,
        constraint: |p| less_than(p, "fast", "slow"),
        construct: |p| {
            Ok(Box::new(MacdCross::new(
                p.period("fast"),
                p.period("slow"),
                p.period("signal"),
                Protection::from_params(p),
            )?))
        },
    },
    Builtin {
        name: "donchian_breakout",
        summary: "close above the prior entry-bar high: buy; below the prior exit-bar low: close (short=1: the mirror)",
        params: &donchian_breakout::PARAMS,
        constraint: |_| Ok(()),
        construct: |p| {
            Ok(Box::new(DonchianBreakout::new(
                p.period("entry"),
                p.period("exit"),
                p.get("short") == 1.0,
                Protection::from_params(p),
            )?))
        },
    },
];

/// `a < b`, as a [`ParamError::Constraint`] naming both values when it does not hold.
fn less_than(p: &Params, a: &str, b: &str) -> Result<(), ParamError> {
    let (va, vb) = (p.get(a), p.get(b));
    if va < vb {
        Ok(())
    } else {
        Err(ParamError::Constraint {
            constraint: format!("{a} < {b}"),
            detail: format!("{a}={va} is not below {b}={vb}; choose a smaller {a} or a larger {b}"),
        })
    }
}

/// The built-in called `name` (case-insensitive).
pub fn find(name: &str) -> Result<&'static Builtin, StrategyError> {
    let wanted = name.trim().to_ascii_lowercase();
    BUILTINS
        .iter()
        .find(|b| b.name == wanted)
        .ok_or_else(|| StrategyError::Unknown {
            name: name.to_string(),
            known: BUILTINS
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Builds built-in `name` from raw `k=v` values (see [`Params::parse_pairs`]).
pub fn build(
    name: &str,
    given: &BTreeMap<String, f64>,
) -> Result<Box<dyn Strategy>, StrategyError> {
    let builtin = find(name)?;
    builtin.build(&builtin.resolve(given)?)
}

/// Strict crossover as backtesting.py's `crossover(a, b)` defines it: `a` was below `b` on
/// the previous bar and is above it on this one (equal values are no cross).
pub fn crossed_above(prev_a: f64, prev_b: f64, a: f64, b: f64) -> bool {
    prev_a < prev_b && a > b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_builds_with_its_defaults() {
        for b in builtins() {
            let s = build(b.name, &BTreeMap::new()).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert_eq!(s.name(), b.name);
            assert!(s.warmup_bars() > 0, "{}", b.name);
            for p in b.params {
                assert!(
                    p.min <= p.default && p.default <= p.max,
                    "{}.{}",
                    b.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn parameter_constraints_are_checked_on_build() {
        for (name, pairs, constraint) in [
            ("ema_cross", &["fast=30", "slow=20"][..], "fast < slow"),
            ("ema_cross", &["fast=20", "slow=20"][..], "fast < slow"),
            ("macd", &["fast=26", "slow=12"][..], "fast < slow"),
            (
                "rsi_reversion",
                &["lower=70", "upper=30"][..],
                "lower < upper",
            ),
        ] {
            let given = Params::parse_pairs(pairs).unwrap();
            let e = build(name, &given).err().expect("constraint refused");
            match &e {
                StrategyError::Params {
                    source: ParamError::Constraint { constraint: c, .. },
                    ..
                } => assert_eq!(c, constraint, "{name}"),
                other => panic!("{name}: {other}"),
            }
            assert!(e.to_string().contains(name), "{e}");
        }
        // The defaults satisfy them, and sma_cross (backtesting.py's) takes any pair.
        let given = Params::parse_pairs(&["fast=30", "slow=20"]).unwrap();
        assert!(build("sma_cross", &given).is_ok());
    }

    #[test]
    fn every_builtin_is_listed_with_its_parameters() {
        let names: Vec<&str> = builtins().iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            [
                "sma_cross",
                "ema_cross",
                "rsi_reversion",
                "bollinger_reversion",
                "macd",
                "donchian_breakout"
            ]
        );
        let given =
            Params::parse_pairs(&["stop_loss_pct=2", "take_profit_pct=4", "short=0"]).unwrap();
        for name in ["rsi_reversion", "bollinger_reversion", "donchian_breakout"] {
            build(name, &given).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let e = build(
            "donchian_breakout",
            &Params::parse_pairs(&["short=2"]).unwrap(),
        )
        .err()
        .expect("short=2 refused");
        assert!(e.to_string().contains("'short'"), "{e}");
    }

    #[test]
    fn unknown_names_and_params_are_refused_by_name() {
        let e = build("sma_crossx", &BTreeMap::new())
            .err()
            .expect("unknown name refused");
        assert!(e.to_string().contains("sma_cross"), "{e}");
        let given = Params::parse_pairs(&["fast=0"]).unwrap();
        let e = build("SMA_CROSS", &given).err().expect("fast=0 refused");
        assert!(
            matches!(e, StrategyError::Params { .. }) && e.to_string().contains("'fast'"),
            "{e}"
        );
    }
}
