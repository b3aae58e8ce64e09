//! The built-in strategies and their registry.
//!
//! Each built-in is a [`Builtin`] row: its name, a one-line summary, its declared
//! parameters, and a constructor from a checked [`Params`] set. The CLI, the backtester,
//! sweeps and the strategy agent all build strategies through [`build`], so a name or a
//! parameter means the same thing everywhere.
//!
//! Owns: the list of built-ins and how a name plus `k=v` pairs becomes a strategy.
//! Never: running one (the backtester and the strategy agent do).

mod sma_cross;

use std::collections::BTreeMap;

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
}

/// One registered built-in strategy.
pub struct Builtin {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    construct: fn(&Params) -> Result<Box<dyn Strategy>, IndicatorError>,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtin").field("name", &self.name).finish()
    }
}

impl Builtin {
    /// Checks `given` against the declared parameters (defaults filled in).
    pub fn resolve(&self, given: &BTreeMap<String, f64>) -> Result<Params, StrategyError> {
        Params::resolve(self.params, given).map_err(|source| StrategyError::Params {
            strategy: self.name.to_string(),
            source,
        })
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

static BUILTINS: [Builtin; 1] = [Builtin {
    name: "sma_cross",
    summary: "fast SMA crosses above slow: close any short and buy; below: close any long and sell (backtesting.py's SmaCross)",
    params: &sma_cross::PARAMS,
    construct: |p| Ok(Box::new(SmaCross::new(p.period("fast"), p.period("slow"))?)),
}];

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
