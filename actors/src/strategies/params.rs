//! Strategy parameters: declared with a type and a range, given as `k=v` strings.
//!
//! Each built-in strategy declares its parameters as [`ParamSpec`]s (name, kind, range,
//! default). [`Params::resolve`] turns the user's `k=v` pairs into a complete, checked set:
//! unknown names, wrong types and out-of-range values are errors that name the parameter
//! and say what is allowed, so a typo never silently backtests the default.
//!
//! Owns: parsing and checking parameter values. Never: what a parameter means.

use std::collections::BTreeMap;
use std::fmt;

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// A whole number (a period in bars).
    Int,
    /// A real number (a band width, a threshold).
    Float,
}

/// One declared parameter: `min <= value <= max`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub help: &'static str,
}

impl ParamSpec {
    pub const fn int(
        name: &'static str,
        min: i64,
        max: i64,
        default: i64,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind: ParamKind::Int,
            min: min as f64,
            max: max as f64,
            default: default as f64,
            help,
        }
    }
    pub const fn float(
        name: &'static str,
        min: f64,
        max: f64,
        default: f64,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind: ParamKind::Float,
            min,
            max,
            default,
            help,
        }
    }

    /// Checks one value against the kind and range.
    pub fn check(&self, value: f64) -> Result<f64, ParamError> {
        let bad = |reason: String| ParamError::Invalid {
            name: self.name.to_string(),
            value: value.to_string(),
            reason,
        };
        if !value.is_finite() {
            return Err(bad("not a finite number".into()));
        }
        if self.kind == ParamKind::Int && value.fract() != 0.0 {
            return Err(bad("must be a whole number".into()));
        }
        if value < self.min || value > self.max {
            return Err(bad(format!(
                "must be between {} and {}",
                self.min, self.max
            )));
        }
        Ok(value)
    }
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter '{name}'; this strategy takes: {known}")]
    Unknown { name: String, known: String },
    #[error("parameter '{name}' = '{value}': {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("'{given}' is not k=v (e.g. fast=10)")]
    NotKeyValue { given: String },
    #[error("parameter '{name}' given twice")]
    Duplicate { name: String },
    #[error("parameters break the constraint {constraint}: {detail}")]
    Constraint { constraint: String, detail: String },
}

/// A complete, checked parameter set: every declared name has a value.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Params {
    values: BTreeMap<String, f64>,
}

impl Params {
    /// Parses `k=v` pairs (v a number) into a raw map, refusing malformed pairs and repeats.
    pub fn parse_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<BTreeMap<String, f64>, ParamError> {
        let mut out = BTreeMap::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ParamError::NotKeyValue {
                    given: pair.to_string(),
                })?;
            let k = k.trim().to_ascii_lowercase();
            if k.is_empty() {
                return Err(ParamError::NotKeyValue {
                    given: pair.to_string(),
                });
            }
            let v: f64 = v.trim().parse().map_err(|_| ParamError::Invalid {
                name: k.clone(),
                value: v.trim().to_string(),
                reason: "not a number".into(),
            })?;
            if out.insert(k.clone(), v).is_some() {
                return Err(ParamError::Duplicate { name: k });
            }
        }
        Ok(out)
    }

    /// Fills defaults for the names not given and checks every value against `specs`.
    pub fn resolve(
        specs: &[ParamSpec],
        given: &BTreeMap<String, f64>,
    ) -> Result<Params, ParamError> {
        if let Some(unknown) = given
            .keys()
            .find(|k| !specs.iter().any(|s| s.name == k.as_str()))
        {
            return Err(ParamError::Unknown {
                name: unknown.clone(),
                known: specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
            });
        }
        let mut values = BTreeMap::new();
        for spec in specs {
            let v = given.get(spec.name).copied().unwrap_or(spec.default);
            values.insert(spec.name.to_string(), spec.check(v)?);
        }
        Ok(Params { values })
    }

    /// The value of a declared parameter. Only call with a name from the specs the set was
    /// resolved against; an undeclared name is a programming error and reads as NaN, which
    /// every indicator constructor refuses.
    pub fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(f64::NAN)
    }

    /// A declared `Int` parameter as a bar count (checked whole and in range on resolve).
    pub fn period(&self, name: &str) -> usize {
        let v = self.get(name);
        if v.is_finite() && v >= 0.0 {
            v as usize
        } else {
            0
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.values {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: [ParamSpec; 2] = [
        ParamSpec::int("fast", 1, 500, 10, "fast period"),
        ParamSpec::float("k", 0.0, 10.0, 2.0, "width"),
    ];

    #[test]
    fn defaults_fill_and_values_are_checked() {
        let given = Params::parse_pairs(&["fast=20"]).unwrap();
        let p = Params::resolve(&SPECS, &given).unwrap();
        assert_eq!(p.period("fast"), 20);
        assert_eq!(p.get("k"), 2.0);
        assert_eq!(p.to_string(), "fast=20 k=2");
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let e = Params::resolve(&SPECS, &Params::parse_pairs(&["fast=2.5"]).unwrap()).unwrap_err();
        assert!(
            e.to_string().contains("'fast'") && e.to_string().contains("whole"),
            "{e}"
        );
        let e = Params::resolve(&SPECS, &Params::parse_pairs(&["k=11"]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("between 0 and 10"), "{e}");
        let e = Params::resolve(&SPECS, &Params::parse_pairs(&["slow=3"]).unwrap()).unwrap_err();
        assert!(
            matches!(e, ParamError::Unknown { .. }) && e.to_string().contains("fast, k"),
            "{e}"
        );
        assert!(matches!(
            Params::parse_pairs(&["fast"]),
            Err(ParamError::NotKeyValue { .. })
        ));
        assert!(matches!(
            Params::parse_pairs(&["fast=x"]),
            Err(ParamError::Invalid { .. })
        ));
        assert!(matches!(
            Params::parse_pairs(&["fast=1", "FAST=2"]),
            Err(ParamError::Duplicate { .. })
        ));
    }
}
