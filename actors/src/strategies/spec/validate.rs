//! Reading and checking a spec: every problem, each with a path and a sentence to act on.
//!
//! Reading goes section by section (each top-level field, each indicator, each side's entry
//! and exit parsed on its own), so a type error in one indicator does not hide a range
//! error in another. The typed checks ([`check`]) then run over what parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Condition, ExitRule, IndicatorSpec, Operand, PriceField, SideRules, StrategySpec};
use crate::signals::signal::{Direction, SignalKind};
use crate::strategies::api::Size;

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// JSON-pointer-like path of the offending value (`/indicators/fast/sma/period`); empty
    /// for the document as a whole.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "/: {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem of a spec that was refused, one per line in `Display`: the text to feed back
/// to the model that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the strategy spec has {} problem(s):\n{}", .0.len(), lines(.0))]
pub struct SpecErrors(pub Vec<Problem>);

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("- {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

const FIELDS: [&str; 8] = [
    "name",
    "description",
    "indicators",
    "long",
    "short",
    "sizing",
    "stop_loss",
    "take_profit",
];
const PERIOD_MAX: i64 = 1000;
const NAME_MAX: usize = 64;

/// Reads a spec from JSON text: the typed spec, or every problem found. One surrounding
/// Markdown code fence (```` ```json ... ``` ````), which models often add, is ignored.
pub fn validate(text: &str) -> Result<StrategySpec, SpecErrors> {
    let value: Value = serde_json::from_str(crate::models::roles::unfence(text)).map_err(|e| {
        SpecErrors(vec![Problem::new(
            "",
            format!(
                "not valid JSON ({e}); answer with exactly one JSON object and nothing around it"
            ),
        )])
    })?;
    let Value::Object(top) = value else {
        return Err(SpecErrors(vec![Problem::new(
            "",
            format!("must be a JSON object, got {}", kind_of(&value)),
        )]));
    };
    let mut problems = Vec::new();
    for key in top.keys() {
        if !FIELDS.contains(&key.as_str()) {
            problems.push(Problem::new(
                format!("/{}", escape(key)),
                format!("unknown field; allowed fields: {}", FIELDS.join(", ")),
            ));
        }
    }
    let name: Option<String> = required(&top, "name", &mut problems);
    let description: Option<String> = optional(&top, "description", &mut problems);
    let indicators = read_indicators(top.get("indicators"), &mut problems);
    // Every condition that parsed, with its path, even where its side as a whole did not.
    let mut conditions = Vec::new();
    let long = read_side(&top, "long", &mut conditions, &mut problems);
    let short = read_side(&top, "short", &mut conditions, &mut problems);
    let sizing: Option<Size> = optional(&top, "sizing", &mut problems);
    let stop_loss: Option<ExitRule> = optional(&top, "stop_loss", &mut problems);
    let take_profit: Option<ExitRule> = optional(&top, "take_profit", &mut problems);

    // The typed checks run over what did parse; names that exist but whose parameters did
    // not parse still count as defined, so a reference to them is not reported twice.
    let defined: BTreeSet<String> = match top.get("indicators") {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let spec = StrategySpec {
        name: name.clone().unwrap_or_default(),
        description: description.unwrap_or_default(),
        indicators: indicators.clone().unwrap_or_default(),
        long: long.clone().flatten(),
        short: short.clone().flatten(),
        sizing: sizing.unwrap_or(Size::ALL),
        stop_loss,
        take_profit,
    };
    // A side that was written but did not parse is reported where it failed, not as missing.
    let side_given = long.is_some() || short.is_some();
    problems.extend(check_with(
        &spec,
        &defined,
        &conditions,
        name.is_some(),
        !side_given,
    ));
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems.dedup();
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(problems))
    }
}

/// The typed checks of a parsed spec.
pub(super) fn check(spec: &StrategySpec) -> Vec<Problem> {
    let defined = spec.indicators.keys().cloned().collect();
    let mut conditions = Vec::new();
    for (side, rules) in [("long", &spec.long), ("short", &spec.short)] {
        if let Some(rules) = rules {
            conditions.push((format!("/{side}/entry"), rules.entry.clone()));
            if let Some(exit) = &rules.exit {
                conditions.push((format!("/{side}/exit"), exit.clone()));
            }
        }
    }
    check_with(spec, &defined, &conditions, true, true)
}

fn check_with(
    spec: &StrategySpec,
    defined: &BTreeSet<String>,
    conditions: &[(String, Condition)],
    check_name: bool,
    check_sides: bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    if check_name {
        check_spec_name(&spec.name, &mut out);
    }
    for (name, ind) in &spec.indicators {
        check_indicator(name, ind, &mut out);
    }
    let refs = Refs {
        indicators: &spec.indicators,
        defined,
    };
    if check_sides && spec.long.is_none() && spec.short.is_none() {
        out.push(Problem::new(
            "",
            "needs \"long\" and/or \"short\" with an \"entry\" condition; without them the strategy never trades",
        ));
    }
    for (path, condition) in conditions {
        refs.condition(path, condition, &mut out);
    }
    match spec.sizing {
        Size::Equity(f) if !(f.is_finite() && f > 0.0 && f <= 1.0) => out.push(Problem::new(
            "/sizing/equity",
            format!("must be a fraction of equity with 0 < equity <= 1 (0.5 = half), got {f}"),
        )),
        Size::Units(u) if !(u.is_finite() && u > 0.0) => out.push(Problem::new(
            "/sizing/units",
            format!("must be a quantity greater than 0, got {u}"),
        )),
        _ => {}
    }
    for (field, rule, max_pct) in [
        ("stop_loss", &spec.stop_loss, 100.0),
        ("take_profit", &spec.take_profit, 1000.0),
    ] {
        match rule {
            Some(ExitRule::Pct(p)) => {
                let ok = p.is_finite()
                    && *p > 0.0
                    && (*p < max_pct || (field == "take_profit" && *p == max_pct));
                if !ok {
                    let allowed = if field == "stop_loss" {
                        "0 < pct < 100"
                    } else {
                        "0 < pct <= 1000"
                    };
                    out.push(Problem::new(
                        format!("/{field}/pct"),
                        format!("must be a percent of the close with {allowed}, got {p}"),
                    ));
                }
            }
            Some(ExitRule::Atr {
                indicator,
                multiple,
            }) => {
                match spec.indicators.get(indicator) {
                    Some(IndicatorSpec::Atr { .. }) => {}
                    Some(other) => out.push(Problem::new(
                        format!("/{field}/atr/indicator"),
                        format!(
                            "'{indicator}' ({}) is not an atr instance; {}",
                            other.kind(),
                            atr_hint(&spec.indicators)
                        ),
                    )),
                    None if defined.contains(indicator) => {}
                    None => out.push(Problem::new(
                        format!("/{field}/atr/indicator"),
                        format!(
                            "no indicator named '{indicator}'; {}",
                            atr_hint(&spec.indicators)
                        ),
                    )),
                }
                if !(multiple.is_finite() && *multiple > 0.0 && *multiple <= 100.0) {
                    out.push(Problem::new(
                        format!("/{field}/atr/multiple"),
                        format!("must be between 0 (exclusive) and 100, got {multiple}"),
                    ));
                }
            }
            None => {}
        }
    }
    out
}

fn atr_hint(indicators: &BTreeMap<String, IndicatorSpec>) -> String {
    let atrs: Vec<&str> = indicators
        .iter()
        .filter(|(_, i)| matches!(i, IndicatorSpec::Atr { .. }))
        .map(|(n, _)| n.as_str())
        .collect();
    if atrs.is_empty() {
        "define one under \"indicators\", e.g. \"atr\": {\"atr\": {\"period\": 14}}".into()
    } else {
        format!("atr instances: {}", atrs.join(", "))
    }
}

fn check_spec_name(name: &str, out: &mut Vec<Problem>) {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        out.push(Problem::new(
            "/name",
            format!("must be 1 to {NAME_MAX} characters of a-z, 0-9, '_' or '-', got {name:?}"),
        ));
    }
}

fn check_indicator(name: &str, ind: &IndicatorSpec, out: &mut Vec<Problem>) {
    let base = format!("/indicators/{}/{}", escape(name), ind.kind());
    let mut period = |field: &str, value: i64, min: i64| {
        if value < min || value > PERIOD_MAX {
            out.push(Problem::new(
                format!("{base}/{field}"),
                format!("must be between {min} and {PERIOD_MAX}, got {value}"),
            ));
        }
    };
    match *ind {
        IndicatorSpec::Sma { period: p, .. }
        | IndicatorSpec::Ema { period: p, .. }
        | IndicatorSpec::Rsi { period: p, .. }
        | IndicatorSpec::Donchian { period: p }
        | IndicatorSpec::Atr { period: p } => period("period", p, 1),
        IndicatorSpec::Bollinger { period: p, k, .. } => {
            period("period", p, 2);
            if !(k.is_finite() && (0.0..=10.0).contains(&k)) {
                out.push(Problem::new(
                    format!("{base}/k"),
                    format!("must be between 0 and 10 (standard deviations), got {k}"),
                ));
            }
        }
        IndicatorSpec::Macd {
            fast, slow, signal, ..
        } => {
            period("fast", fast, 1);
            period("slow", slow, 1);
            period("signal", signal, 1);
            if fast >= slow {
                out.push(Problem::new(
                    format!("{base}/fast"),
                    format!("must be less than slow ({slow}), got {fast}"),
                ));
            }
        }
    }
    check_instance_name(name, out);
}

fn check_instance_name(name: &str, out: &mut Vec<Problem>) {
    let path = format!("/indicators/{}", escape(name));
    let ok = name.len() <= NAME_MAX
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        out.push(Problem::new(
            path,
            format!("instance name {name:?} must start with a letter and use only letters, digits and '_' (at most {NAME_MAX})"),
        ));
    } else if PriceField::parse(name).is_some() {
        out.push(Problem::new(
            path,
            format!("instance name {name:?} is a price field; choose another name (e.g. \"{name}_sma\")"),
        ));
    }
}

/// What operands may refer to.
struct Refs<'a> {
    indicators: &'a BTreeMap<String, IndicatorSpec>,
    /// Every name under "indicators", parsed or not.
    defined: &'a BTreeSet<String>,
}

impl Refs<'_> {
    fn condition(&self, path: &str, c: &Condition, out: &mut Vec<Problem>) {
        match c {
            Condition::Above(a, b)
            | Condition::Below(a, b)
            | Condition::CrossesAbove(a, b)
            | Condition::CrossesBelow(a, b) => {
                let kind = condition_kind(c);
                if matches!((a, b), (Operand::Number(_), Operand::Number(_))) {
                    out.push(Problem::new(
                        format!("{path}/{kind}"),
                        "compares two numbers, which never changes; make one side an indicator or a price field",
                    ));
                }
                self.operand(&format!("{path}/{kind}/0"), a, out);
                self.operand(&format!("{path}/{kind}/1"), b, out);
            }
            Condition::Signal(sc) => {
                let path = format!("{path}/signal");
                if let Err(e) = sc.kind.parse::<SignalKind>() {
                    out.push(Problem::new(format!("{path}/kind"), e.to_string()));
                }
                if let Some(d) = &sc.direction {
                    if d.parse::<Direction>().is_err() {
                        out.push(Problem::new(
                            format!("{path}/direction"),
                            format!("direction {d:?} is not one of long, short, neutral"),
                        ));
                    }
                }
                if let Some(c) = sc.min_confidence {
                    if !(0.0..=1.0).contains(&c) {
                        out.push(Problem::new(
                            format!("{path}/min_confidence"),
                            format!("{c} is outside 0 to 1"),
                        ));
                    }
                }
            }
            Condition::All(list) | Condition::Any(list) => {
                let kind = condition_kind(c);
                if list.is_empty() {
                    out.push(Problem::new(
                        format!("{path}/{kind}"),
                        "needs at least one condition in the list",
                    ));
                }
                for (i, inner) in list.iter().enumerate() {
                    self.condition(&format!("{path}/{kind}/{i}"), inner, out);
                }
            }
        }
    }

    fn operand(&self, path: &str, op: &Operand, out: &mut Vec<Problem>) {
        let name = match op {
            Operand::Number(n) => {
                if !n.is_finite() {
                    out.push(Problem::new(
                        path,
                        format!("must be a finite number, got {n}"),
                    ));
                }
                return;
            }
            Operand::Name(name) => name,
        };
        if PriceField::parse(name).is_some() {
            return;
        }
        let (base, output) = match name.split_once('.') {
            Some((b, o)) => (b, Some(o)),
            None => (name.as_str(), None),
        };
        match self.indicators.get(base) {
            Some(ind) => {
                let outputs = ind.outputs();
                match (output, outputs.is_empty()) {
                    (None, true) => {}
                    (None, false) => out.push(Problem::new(
                        path,
                        format!(
                            "'{base}' ({}) has several outputs; write one of: {}",
                            ind.kind(),
                            outputs
                                .iter()
                                .map(|o| format!("{base}.{o}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                    (Some(o), true) => out.push(Problem::new(
                        path,
                        format!(
                            "'{base}' ({}) has a single value and no output '{o}'; write \"{base}\"",
                            ind.kind()
                        ),
                    )),
                    (Some(o), false) if !outputs.contains(&o) => out.push(Problem::new(
                        path,
                        format!(
                            "'{base}' ({}) has no output '{o}'; its outputs: {}",
                            ind.kind(),
                            outputs.join(", ")
                        ),
                    )),
                    (Some(_), false) => {}
                }
            }
            // Defined but its parameters did not parse: reported there already.
            None if self.defined.contains(base) => {}
            None => {
                let defined = if self.defined.is_empty() {
                    "no indicators are defined (add them under \"indicators\")".to_string()
                } else {
                    format!(
                        "defined indicators: {}",
                        self.defined.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                };
                out.push(Problem::new(
                    path,
                    format!(
                        "'{name}' is neither a defined indicator nor a price field; {defined}; price fields: open, high, low, close, volume"
                    ),
                ));
            }
        }
    }
}

fn condition_kind(c: &Condition) -> &'static str {
    match c {
        Condition::Above(..) => ">",
        Condition::Below(..) => "<",
        Condition::CrossesAbove(..) => "crosses_above",
        Condition::CrossesBelow(..) => "crosses_below",
        Condition::All(_) => "all",
        Condition::Any(_) => "any",
        Condition::Signal(_) => "signal",
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON-pointer escaping of one path segment (`~` → `~0`, `/` → `~1`).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Parses `value` as `T`; on failure, one problem at `base` + the path serde reached.
fn parse_at<T: DeserializeOwned>(base: &str, value: &Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = base.to_string();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Seq { index } => path.push_str(&format!("/{index}")),
                Segment::Map { key } => path.push_str(&format!("/{}", escape(key))),
                Segment::Enum { variant } => path.push_str(&format!("/{}", escape(variant))),
                Segment::Unknown => {}
            }
        }
        Problem::new(path, e.into_inner().to_string())
    })
}

fn required<T: DeserializeOwned>(
    top: &serde_json::Map<String, Value>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match top.get(field) {
        None => {
            problems.push(Problem::new(
                format!("/{field}"),
                "required field is missing",
            ));
            None
        }
        Some(v) => parse_at(&format!("/{field}"), v)
            .map_err(|p| problems.push(p))
            .ok(),
    }
}

fn optional<T: DeserializeOwned>(
    top: &serde_json::Map<String, Value>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match top.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => parse_at(&format!("/{field}"), v)
            .map_err(|p| problems.push(p))
            .ok(),
    }
}

fn read_indicators(
    value: Option<&Value>,
    problems: &mut Vec<Problem>,
) -> Option<BTreeMap<String, IndicatorSpec>> {
    let map = match value {
        None => {
            problems.push(Problem::new(
                "/indicators",
                "required field is missing; write {} if no indicator is needed",
            ));
            return None;
        }
        Some(Value::Object(m)) => m,
        Some(other) => {
            problems.push(Problem::new(
                "/indicators",
                format!(
                    "must be an object of named indicators, got {}",
                    kind_of(other)
                ),
            ));
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let path = format!("/indicators/{}", escape(name));
        // Unknown kinds get the list of known ones in our words, before serde's.
        if let Value::Object(inner) = v {
            if inner.len() == 1 {
                let kind = inner.keys().next().map(String::as_str).unwrap_or("");
                if !IndicatorSpec::KINDS.contains(&kind) {
                    problems.push(Problem::new(
                        format!("{path}/{}", escape(kind)),
                        format!(
                            "unknown indicator '{kind}'; known indicators: {}",
                            IndicatorSpec::KINDS.join(", ")
                        ),
                    ));
                    continue;
                }
            } else {
                problems.push(Problem::new(
                    path,
                    format!(
                        "must be an object with exactly one indicator kind as its key (one of: {}), e.g. {{\"sma\": {{\"period\": 10}}}}",
                        IndicatorSpec::KINDS.join(", ")
                    ),
                ));
                continue;
            }
        }
        match parse_at::<IndicatorSpec>(&path, v) {
            Ok(ind) => {
                out.insert(name.clone(), ind);
            }
            Err(p) => problems.push(p),
        }
    }
    Some(out)
}

/// `Some(None)`: the side was given but did not parse (so "no side" is not reported too).
/// Each condition that parsed is added to `conditions` for the reference checks.
fn read_side(
    top: &serde_json::Map<String, Value>,
    side: &str,
    conditions: &mut Vec<(String, Condition)>,
    problems: &mut Vec<Problem>,
) -> Option<Option<SideRules>> {
    let value = top.get(side)?;
    if value.is_null() {
        return None;
    }
    let base = format!("/{side}");
    let Value::Object(map) = value else {
        problems.push(Problem::new(
            base,
            format!(
                "must be an object {{\"entry\": CONDITION, \"exit\": CONDITION}}, got {}",
                kind_of(value)
            ),
        ));
        return Some(None);
    };
    for key in map.keys() {
        if key != "entry" && key != "exit" {
            problems.push(Problem::new(
                format!("{base}/{}", escape(key)),
                "unknown field; allowed fields: entry, exit",
            ));
        }
    }
    let entry = match map.get("entry") {
        None => {
            problems.push(Problem::new(
                format!("{base}/entry"),
                "required field is missing",
            ));
            None
        }
        Some(v) => read_condition(&format!("{base}/entry"), v, problems),
    };
    if let Some(c) = &entry {
        conditions.push((format!("{base}/entry"), c.clone()));
    }
    let exit = match map.get("exit") {
        None | Some(Value::Null) => Some(None),
        Some(v) => read_condition(&format!("{base}/exit"), v, problems).map(Some),
    };
    if let Some(Some(c)) = &exit {
        conditions.push((format!("{base}/exit"), c.clone()));
    }
    Some(match (entry, exit) {
        (Some(entry), Some(exit)) => Some(SideRules { entry, exit }),
        _ => None,
    })
}

fn read_condition(path: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<Condition> {
    if let Value::Object(m) = v {
        if m.len() != 1 {
            problems.push(Problem::new(
                path,
                format!(
                    "a condition is an object with exactly one key, one of: {}; combine several with \"all\" or \"any\"",
                    Condition::KINDS.join(", ")
                ),
            ));
            return None;
        }
        let (kind, inner) = m.iter().next()?;
        if !Condition::KINDS.contains(&kind.as_str()) {
            problems.push(Problem::new(
                format!("{path}/{}", escape(kind)),
                format!(
                    "unknown condition '{kind}'; known conditions: {}",
                    Condition::KINDS.join(", ")
                ),
            ));
            return None;
        }
        // Read a list's members one by one so every bad member is reported.
        if kind == "all" || kind == "any" {
            let Value::Array(items) = inner else {
                problems.push(Problem::new(
                    format!("{path}/{kind}"),
                    format!("must be a list of conditions, got {}", kind_of(inner)),
                ));
                return None;
            };
            // The members that parsed are kept so their references are checked too; the
            // spec is refused anyway because the others were reported.
            let list: Vec<Condition> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    read_condition(&format!("{path}/{kind}/{i}"), item, problems)
                })
                .collect();
            if list.is_empty() && !items.is_empty() {
                return None;
            }
            return Some(if kind == "all" {
                Condition::All(list)
            } else {
                Condition::Any(list)
            });
        }
        if kind != "signal" && !matches!(inner, Value::Array(a) if a.len() == 2) {
            problems.push(Problem::new(
                format!("{path}/{}", escape(kind)),
                format!(
                    "must be a list of exactly two operands [A, B] (numbers, price fields or indicator outputs), got {}",
                    inner
                ),
            ));
            return None;
        }
    }
    parse_at::<Condition>(path, v)
        .map_err(|p| problems.push(p))
        .ok()
}
