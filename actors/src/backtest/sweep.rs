//! Parameter sweeps and walk-forward analysis of a built-in strategy.
//!
//! - [`ParamRange::parse`] reads `fast=5..50:5` (inclusive, with a step; the step defaults
//!   to 1), or a list `k=1,2,5`, or a single value.
//! - [`Constraint::parse`] reads an expression over parameter names (`fast < slow`,
//!   `slow - fast >= 10 and fast * 3 <= slow`): numbers, names, `+ - * /`, parentheses,
//!   `< <= > >= == !=`, `and`/`&&`, `or`/`||`, `not`/`!`. A name that is not a parameter
//!   of the strategy is refused when parsed, never silently false.
//! - [`plan`] expands the grid (cartesian product of the ranges, the fixed `--param`
//!   values and defaults filled in), drops the sets a constraint rejects, and checks every
//!   remaining set against the strategy's declared ranges and its own constraints.
//! - [`evaluate`] backtests every set on every data set with rayon (in the caller's pool,
//!   so the CLI's `--threads` decides the width) and [`rank`]s the sets by the *mean* of
//!   the metric over the data sets, best first. A NaN metric (undefined: no trades, zero
//!   volatility, ...) on any data set makes the mean NaN, and NaN ranks last; ties keep
//!   grid order.
//! - [`walk_forward`] splits each data set into `k + 1` consecutive segments of equal bar
//!   count. Fold `i` (1..=k) optimises on segments `0..i` (anchored: the in-sample window
//!   grows) and runs the best set on segment `i`, out of sample. The out-of-sample run is
//!   fed the bars just before the segment for indicator warm-up only, so it trades from the
//!   segment's first bar; its statistics cover the segment alone (plus the one bar before
//!   it that buy & hold is measured from, as every backtest's first trading bar has).
//!   The in-sample optimiser is handed a copy of the in-sample bars only: the out-of-sample
//!   bars cannot influence the chosen set. [`WalkForward::overfit`] flags a mean
//!   out-of-sample metric that keeps less than half of the in-sample one (see
//!   [`OVERFIT_KEEP`]).
//!
//! The constraint parser is a few dozen lines of our own rather than `evalexpr`: that
//! crate divides integer literals as integers (`slow / 2` of 25 would be 12) and spells
//! `and`/`or` as `&&`/`||`, while parameters here are real numbers and users write `and`.
//!
//! Owns: grids, ranking, folds. Never: I/O, printing, or a progress bar (the caller passes
//! a callback that is told each finished backtest).

use std::collections::BTreeMap;
use std::ops::Range;

use rayon::prelude::*;
use serde::Serialize;

use super::config::BacktestConfig;
use super::data::Bars;
use super::engine::{run, BacktestError};
use super::stats::{self, Stats};
use crate::strategies::builtin::{Builtin, StrategyError};
use crate::strategies::params::{ParamError, Params};

/// Most parameter sets a sweep expands to before constraints (a typo like `1..1000000:1`
/// is refused rather than exhausting memory).
pub const MAX_SETS: usize = 1_000_000;

/// A fold is flagged as overfit when the mean out-of-sample metric keeps less than this
/// fraction of the in-sample one: `oos < is - (1 - OVERFIT_KEEP) * |is|`.
pub const OVERFIT_KEEP: f64 = 0.5;

/// Why a sweep could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    #[error("--sweep '{given}': {reason} (write NAME=START..END:STEP, e.g. fast=5..50:5, or NAME=V1,V2,...)")]
    Range { given: String, reason: String },
    #[error("--sweep names '{name}', which {strategy} does not take; its parameters: {known}")]
    UnknownParam {
        name: String,
        strategy: String,
        known: String,
    },
    #[error("parameter '{name}' is both swept and fixed with --param; give it once")]
    SweptAndFixed { name: String },
    #[error("parameter '{name}' is swept twice; give one --sweep per parameter")]
    SweptTwice { name: String },
    #[error("constraint \"{expr}\": {reason}")]
    Constraint { expr: String, reason: String },
    #[error(
        "the grid has {sets} parameter sets, more than the {max} a sweep accepts; use larger steps"
    )]
    TooLarge { sets: u128, max: usize },
    #[error("no parameter set is left: {total} set(s) in the grid, {by_constraint} rejected by --constraint, {by_strategy} by the strategy{}", .first_reason.as_ref().map(|r| format!(" (e.g. {r})")).unwrap_or_default())]
    Empty {
        total: usize,
        by_constraint: usize,
        by_strategy: usize,
        first_reason: Option<String>,
    },
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    #[error("unknown statistic '{given}' to maximize; numeric statistics: {}", METRICS.map(|(name, _)| name).join(", "))]
    UnknownMetric { given: String },
    #[error("walk-forward needs at least 1 fold, got 0")]
    NoFolds,
    #[error("data set '{data}' has {bars} bars, too few for {segments} walk-forward segments (each needs at least 2 bars)")]
    TooFewBars {
        data: String,
        bars: usize,
        segments: usize,
    },
    #[error("backtest on '{data}' with {params}: {source}")]
    Backtest {
        data: String,
        params: String,
        #[source]
        source: Box<BacktestError>,
    },
}

/// The values one parameter takes in a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamRange {
    pub name: String,
    pub values: Vec<f64>,
}

impl ParamRange {
    /// `name=START..END:STEP` (inclusive; STEP defaults to 1), `name=V1,V2,...` or `name=V`.
    pub fn parse(given: &str) -> Result<Self, SweepError> {
        let bad = |reason: &str| SweepError::Range {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let (name, spec) = given.split_once('=').ok_or_else(|| bad("no '='"))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(bad("no parameter name before '='"));
        }
        let num = |s: &str, what: &str| -> Result<f64, SweepError> {
            let v: f64 = s
                .trim()
                .parse()
                .map_err(|_| bad(&format!("{what} '{}' is not a number", s.trim())))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad(&format!("{what} is not a finite number")))
            }
        };
        let values = if let Some((start, rest)) = spec.split_once("..") {
            let (end, step) = match rest.split_once(':') {
                Some((e, s)) => (e, num(s, "step")?),
                None => (rest, 1.0),
            };
            let (start, end) = (num(start, "start")?, num(end, "end")?);
            if step <= 0.0 {
                return Err(bad("the step must be > 0"));
            }
            if end < start {
                return Err(bad("the end is below the start"));
            }
            // Counted, not accumulated, so 0.1 steps do not drift past the end.
            let count = ((end - start) / step + 1e-9).floor() + 1.0;
            if count > MAX_SETS as f64 {
                return Err(SweepError::TooLarge {
                    sets: count as u128,
                    max: MAX_SETS,
                });
            }
            (0..count as usize)
                .map(|i| round9(start + i as f64 * step))
                .collect()
        } else {
            let mut values = Vec::new();
            for v in spec.split(',') {
                let v = num(v, "value")?;
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            values
        };
        Ok(ParamRange { name, values })
    }
}

/// Rounds to 9 decimals: `0.1 * 3` is `0.3`, as the user wrote it.
fn round9(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// A parsed constraint over parameter names.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Var(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(char, Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn is_bool(&self) -> bool {
        matches!(
            self,
            Expr::Not(_) | Expr::Cmp(..) | Expr::And(..) | Expr::Or(..)
        )
    }

    fn num(&self, p: &BTreeMap<String, f64>) -> f64 {
        match self {
            Expr::Num(v) => *v,
            // Names are checked against the strategy's parameters on parse and every set
            // carries all of them; a missing one reads NaN, which fails every comparison.
            Expr::Var(n) => p.get(n).copied().unwrap_or(f64::NAN),
            Expr::Neg(e) => -e.num(p),
            Expr::Arith(op, a, b) => {
                let (a, b) = (a.num(p), b.num(p));
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => a / b,
                }
            }
            _ => f64::NAN,
        }
    }

    fn truth(&self, p: &BTreeMap<String, f64>) -> bool {
        match self {
            Expr::Not(e) => !e.truth(p),
            Expr::And(a, b) => a.truth(p) && b.truth(p),
            Expr::Or(a, b) => a.truth(p) || b.truth(p),
            Expr::Cmp(op, a, b) => {
                let (a, b) = (a.num(p), b.num(p));
                match *op {
                    "<" => a < b,
                    "<=" => a <= b,
                    ">" => a > b,
                    ">=" => a >= b,
                    "==" => a == b,
                    _ => a != b,
                }
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let t = &s[start..i];
            out.push(Tok::Num(
                t.parse().map_err(|_| format!("'{t}' is not a number"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let w = s[start..i].to_ascii_lowercase();
            out.push(match w.as_str() {
                "and" => Tok::Op("&&"),
                "or" => Tok::Op("||"),
                "not" => Tok::Op("!"),
                _ => Tok::Name(w),
            });
        } else {
            const OPS: [&str; 16] = [
                "<=", ">=", "==", "!=", "&&", "||", "<", ">", "=", "+", "-", "*", "/", "(", ")",
                "!",
            ];
            let op = OPS
                .iter()
                .find(|o| s[i..].starts_with(*o))
                .ok_or_else(|| format!("unexpected character '{c}'"))?;
            i += op.len();
            // A lone `=` is read as `==`: `fast=10` is meant as a comparison here.
            out.push(Tok::Op(if *op == "=" { "==" } else { op }));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(o)) => Some(o),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn boolean(e: Expr, ctx: &str) -> Result<Expr, String> {
        if e.is_bool() {
            Ok(e)
        } else {
            Err(format!(
                "{ctx} needs a comparison (e.g. fast < slow) on each side"
            ))
        }
    }

    fn number(e: Expr, ctx: &str) -> Result<Expr, String> {
        if e.is_bool() {
            Err(format!("{ctx} needs numbers, not a comparison"))
        } else {
            Ok(e)
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = Self::boolean(self.and()?, "'or'")?;
            left = Expr::Or(Box::new(Self::boolean(left, "'or'")?), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.cmp()?;
        while self.eat("&&") {
            let right = Self::boolean(self.cmp()?, "'and'")?;
            left = Expr::And(Box::new(Self::boolean(left, "'and'")?), Box::new(right));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.sum()?;
        for op in ["<=", ">=", "==", "!=", "<", ">"] {
            if self.eat(op) {
                let right = Self::number(self.sum()?, op)?;
                return Ok(Expr::Cmp(
                    op,
                    Box::new(Self::number(left, op)?),
                    Box::new(right),
                ));
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat("+") {
                '+'
            } else if self.eat("-") {
                '-'
            } else {
                return Ok(left);
            };
            let right = Self::number(self.product()?, "arithmetic")?;
            left = Expr::Arith(
                op,
                Box::new(Self::number(left, "arithmetic")?),
                Box::new(right),
            );
        }
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                '*'
            } else if self.eat("/") {
                '/'
            } else {
                return Ok(left);
            };
            let right = Self::number(self.unary()?, "arithmetic")?;
            left = Expr::Arith(
                op,
                Box::new(Self::number(left, "arithmetic")?),
                Box::new(right),
            );
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(Self::number(self.unary()?, "'-'")?)));
        }
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(Self::boolean(self.unary()?, "'not'")?)));
        }
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err("a '(' is not closed".into());
            }
            return Ok(e);
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Num(v)) => {
                self.pos += 1;
                Ok(Expr::Num(v))
            }
            Some(Tok::Name(n)) => {
                self.pos += 1;
                Ok(Expr::Var(n))
            }
            Some(Tok::Op(o)) => Err(format!("unexpected '{o}'")),
            None => Err("the expression ends too early".into()),
        }
    }
}

impl Constraint {
    /// Parses `text`; every name must be one of `known` (the strategy's parameters).
    pub fn parse(text: &str, known: &[&str]) -> Result<Self, SweepError> {
        let err = |reason: String| SweepError::Constraint {
            expr: text.to_string(),
            reason,
        };
        let toks = tokenize(text).map_err(err)?;
        for t in &toks {
            if let Tok::Name(n) = t {
                if !known.contains(&n.as_str()) {
                    return Err(err(format!(
                        "'{n}' is not a parameter of this strategy; its parameters: {}",
                        known.join(", ")
                    )));
                }
            }
        }
        let mut p = Parser { toks, pos: 0 };
        let expr = p.or().map_err(err)?;
        if p.pos != p.toks.len() {
            return Err(err(format!(
                "unexpected text after the expression (token {})",
                p.pos + 1
            )));
        }
        if !expr.is_bool() {
            return Err(err(
                "must be a comparison such as fast < slow, not a number".into(),
            ));
        }
        Ok(Constraint {
            text: text.to_string(),
            expr,
        })
    }

    /// Whether the parameter set satisfies the constraint.
    pub fn holds(&self, params: &BTreeMap<String, f64>) -> bool {
        self.expr.truth(params)
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The parameter sets a sweep runs, and how many the grid had.
#[derive(Debug, Clone)]
pub struct Plan {
    pub strategy: &'static Builtin,
    /// Sets that passed every constraint, in grid order (last range varies fastest).
    pub sets: Vec<Params>,
    /// Sets in the full grid.
    pub total: usize,
    pub rejected_by_constraint: usize,
    /// Rejected by the strategy's own constraints (e.g. `ema_cross`'s `fast < slow`).
    pub rejected_by_strategy: usize,
}

/// Expands the grid of `ranges` over the `fixed` values and keeps the sets every
/// constraint and the strategy accept. A value outside a parameter's declared range is an
/// error (the range was mistyped), not a skipped set.
pub fn plan(
    strategy: &'static Builtin,
    fixed: &BTreeMap<String, f64>,
    ranges: &[ParamRange],
    constraints: &[Constraint],
) -> Result<Plan, SweepError> {
    let known: Vec<&str> = strategy.params.iter().map(|p| p.name).collect();
    for (i, r) in ranges.iter().enumerate() {
        if !known.contains(&r.name.as_str()) {
            return Err(SweepError::UnknownParam {
                name: r.name.clone(),
                strategy: strategy.name.to_string(),
                known: known.join(", "),
            });
        }
        if fixed.contains_key(&r.name) {
            return Err(SweepError::SweptAndFixed {
                name: r.name.clone(),
            });
        }
        if ranges[..i].iter().any(|o| o.name == r.name) {
            return Err(SweepError::SweptTwice {
                name: r.name.clone(),
            });
        }
    }
    let total = ranges
        .iter()
        .try_fold(1u128, |acc, r| acc.checked_mul(r.values.len() as u128))
        .unwrap_or(u128::MAX);
    if total > MAX_SETS as u128 {
        return Err(SweepError::TooLarge {
            sets: total,
            max: MAX_SETS,
        });
    }
    let total = total as usize;
    let mut sets = Vec::new();
    let (mut by_constraint, mut by_strategy, mut first_reason) = (0, 0, None);
    let mut index = vec![0usize; ranges.len()];
    for _ in 0..total {
        let mut given = fixed.clone();
        for (r, &i) in ranges.iter().zip(&index) {
            given.insert(r.name.clone(), r.values[i]);
        }
        // Odometer: the last range varies fastest.
        for d in (0..ranges.len()).rev() {
            index[d] += 1;
            if index[d] < ranges[d].values.len() {
                break;
            }
            index[d] = 0;
        }
        // Constraints see defaults too, so `fast < slow` works when only `fast` is swept.
        let mut full = given.clone();
        for p in strategy.params {
            full.entry(p.name.to_string()).or_insert(p.default);
        }
        if !constraints.iter().all(|c| c.holds(&full)) {
            by_constraint += 1;
            continue;
        }
        match strategy.resolve(&given) {
            Ok(params) => sets.push(params),
            Err(StrategyError::Params {
                source: source @ ParamError::Constraint { .. },
                ..
            }) => {
                by_strategy += 1;
                first_reason.get_or_insert_with(|| source.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if sets.is_empty() {
        return Err(SweepError::Empty {
            total,
            by_constraint,
            by_strategy,
            first_reason,
        });
    }
    Ok(Plan {
        strategy,
        sets,
        total,
        rejected_by_constraint: by_constraint,
        rejected_by_strategy: by_strategy,
    })
}

/// How a metric is read off the statistics.
pub type MetricOf = fn(&Stats) -> f64;

/// The numeric statistics a sweep can maximize (the keys of [`Stats`]'s JSON but `start`
/// and `end`), each with how to read it: one table, so a name and its value cannot part.
pub const METRICS: [(&str, MetricOf); 28] = [
    ("duration_days", |s| s.duration_days),
    ("exposure_time_pct", |s| s.exposure_time_pct),
    ("equity_final", |s| s.equity_final),
    ("equity_peak", |s| s.equity_peak),
    ("commissions", |s| s.commissions),
    ("return_pct", |s| s.return_pct),
    ("buy_hold_return_pct", |s| s.buy_hold_return_pct),
    ("return_ann_pct", |s| s.return_ann_pct),
    ("volatility_ann_pct", |s| s.volatility_ann_pct),
    ("cagr_pct", |s| s.cagr_pct),
    ("sharpe_ratio", |s| s.sharpe_ratio),
    ("sortino_ratio", |s| s.sortino_ratio),
    ("calmar_ratio", |s| s.calmar_ratio),
    ("max_drawdown_pct", |s| s.max_drawdown_pct),
    ("avg_drawdown_pct", |s| s.avg_drawdown_pct),
    ("max_drawdown_duration_days", |s| {
        s.max_drawdown_duration_days
    }),
    ("avg_drawdown_duration_days", |s| {
        s.avg_drawdown_duration_days
    }),
    ("num_trades", |s| s.num_trades as f64),
    ("win_rate_pct", |s| s.win_rate_pct),
    ("best_trade_pct", |s| s.best_trade_pct),
    ("worst_trade_pct", |s| s.worst_trade_pct),
    ("avg_trade_pct", |s| s.avg_trade_pct),
    ("max_trade_duration_days", |s| s.max_trade_duration_days),
    ("avg_trade_duration_days", |s| s.avg_trade_duration_days),
    ("profit_factor", |s| s.profit_factor),
    ("expectancy_pct", |s| s.expectancy_pct),
    ("sqn", |s| s.sqn),
    ("kelly_criterion", |s| s.kelly_criterion),
];

/// A statistic to maximize, checked to be one of [`METRICS`] (its index there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric(usize);

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Metric {
    pub fn parse(given: &str) -> Result<Self, SweepError> {
        let g = given.trim().to_ascii_lowercase();
        METRICS
            .iter()
            .position(|(name, _)| *name == g)
            .map(Metric)
            .ok_or_else(|| SweepError::UnknownMetric {
                given: given.to_string(),
            })
    }

    pub fn name(self) -> &'static str {
        METRICS[self.0].0
    }

    /// The statistic's value (NaN when undefined).
    pub fn of(self, s: &Stats) -> f64 {
        (METRICS[self.0].1)(s)
    }
}

/// One data set of a sweep.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What the user calls it (the file name).
    pub name: String,
    pub bars: Bars,
}

/// One parameter set's outcome over every data set.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub params: Params,
    /// Mean of the metric over the data sets (NaN when any is NaN).
    #[serde(serialize_with = "nullable")]
    pub score: f64,
    /// Statistics per data set, in the order of the data sets.
    pub stats: Vec<Stats>,
}

fn nullable<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Backtests every set of `sets` on every data set in parallel (the current rayon pool),
/// calling `progress` after each backtest. Rows come back in the order of `sets`.
pub fn evaluate(
    strategy: &'static Builtin,
    sets: &[Params],
    datasets: &[Dataset],
    config: &BacktestConfig,
    metric: Metric,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Row>, SweepError> {
    sets.par_iter()
        .map(|params| {
            let stats = datasets
                .iter()
                .map(|d| {
                    let s = backtest(strategy, params, &d.bars, config, &d.name).map(|r| r.stats);
                    progress();
                    s
                })
                .collect::<Result<Vec<_>, _>>()?;
            let score = mean(stats.iter().map(|s| metric.of(s)));
            Ok(Row {
                params: params.clone(),
                score,
                stats,
            })
        })
        .collect()
}

fn backtest(
    strategy: &'static Builtin,
    params: &Params,
    bars: &Bars,
    config: &BacktestConfig,
    data: &str,
) -> Result<super::result::BacktestResult, SweepError> {
    let mut s = strategy.build(params)?;
    run(bars, s.as_mut(), config).map_err(|source| SweepError::Backtest {
        data: data.to_string(),
        params: params.to_string(),
        source: Box::new(source),
    })
}

/// Sorts rows best first: higher score first, NaN last, ties in their given order.
pub fn rank(rows: &mut [Row]) {
    rows.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => b.score.total_cmp(&a.score),
    });
}

/// A run of bars in one data set: indexes `start..end` and their open times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    pub data: String,
    pub start: usize,
    pub end: usize,
    pub start_ms: i64,
    /// Open time of the last bar of the span.
    pub last_ms: i64,
}

/// Bar ranges of one walk-forward fold in one data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldBounds {
    pub in_sample: Range<usize>,
    pub out_of_sample: Range<usize>,
}

/// The `k` folds of `n` bars: `k + 1` segments of equal size (the remainder spread by
/// integer division), in-sample anchored at bar 0.
pub fn fold_bounds(n: usize, k: usize) -> Vec<FoldBounds> {
    let cut = |j: usize| j * n / (k + 1);
    (1..=k)
        .map(|i| FoldBounds {
            in_sample: 0..cut(i),
            out_of_sample: cut(i)..cut(i + 1),
        })
        .collect()
}

/// One walk-forward fold.
#[derive(Debug, Clone, Serialize)]
pub struct FoldResult {
    /// 1-based.
    pub fold: usize,
    pub in_sample: Vec<Span>,
    pub out_of_sample: Vec<Span>,
    /// The set that ranked first in sample.
    pub params: Params,
    /// Its mean in-sample metric.
    #[serde(serialize_with = "nullable")]
    pub in_sample_metric: f64,
    /// Its mean out-of-sample metric.
    #[serde(serialize_with = "nullable")]
    pub out_of_sample_metric: f64,
    /// Out-of-sample statistics per data set.
    pub out_of_sample_stats: Vec<Stats>,
}

/// A walk-forward analysis.
#[derive(Debug, Clone, Serialize)]
pub struct WalkForward {
    pub folds: Vec<FoldResult>,
    /// Mean over folds of the in-sample and out-of-sample metrics.
    #[serde(serialize_with = "nullable")]
    pub in_sample_metric: f64,
    #[serde(serialize_with = "nullable")]
    pub out_of_sample_metric: f64,
    /// Out-of-sample return compounded over the folds, in percent, mean over data sets.
    #[serde(serialize_with = "nullable")]
    pub out_of_sample_return_pct: f64,
    /// Closed out-of-sample trades over every fold and data set.
    pub out_of_sample_trades: usize,
    /// True when the out-of-sample metric keeps less than [`OVERFIT_KEEP`] of the
    /// in-sample one, or is undefined while the in-sample one is not.
    pub overfit: bool,
}

impl Bars {
    /// A copy of bars `range`.
    pub fn slice(&self, range: Range<usize>) -> Bars {
        Bars {
            time_ms: self.time_ms[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }
}

fn span(d: &Dataset, r: &Range<usize>) -> Span {
    Span {
        data: d.name.clone(),
        start: r.start,
        end: r.end,
        start_ms: d.bars.time_ms[r.start],
        last_ms: d.bars.time_ms[r.end - 1],
    }
}

/// Walk-forward analysis with `k` folds (see the module doc). `progress` is told each
/// backtest: `plan.sets.len() * datasets.len() * k` in sample, `datasets.len() * k` out.
pub fn walk_forward(
    plan: &Plan,
    datasets: &[Dataset],
    k: usize,
    config: &BacktestConfig,
    metric: Metric,
    progress: &(dyn Fn() + Sync),
) -> Result<WalkForward, SweepError> {
    if k == 0 {
        return Err(SweepError::NoFolds);
    }
    let bounds: Vec<Vec<FoldBounds>> = datasets
        .iter()
        .map(|d| {
            // Each segment needs 2 bars: a first bar to measure buy & hold from and one to
            // trade on.
            if d.bars.len() < 2 * (k + 1) {
                Err(SweepError::TooFewBars {
                    data: d.name.clone(),
                    bars: d.bars.len(),
                    segments: k + 1,
                })
            } else {
                Ok(fold_bounds(d.bars.len(), k))
            }
        })
        .collect::<Result<_, _>>()?;
    let mut folds = Vec::with_capacity(k);
    for f in 0..k {
        // Only the in-sample bars are copied into the optimiser's data sets.
        let in_sample: Vec<Dataset> = datasets
            .iter()
            .zip(&bounds)
            .map(|(d, b)| Dataset {
                name: d.name.clone(),
                bars: d.bars.slice(b[f].in_sample.clone()),
            })
            .collect();
        let chosen = optimise(plan, &in_sample, config, metric, progress)?;
        let oos_stats = datasets
            .iter()
            .zip(&bounds)
            .map(|(d, b)| {
                let s = out_of_sample(
                    plan.strategy,
                    &chosen.params,
                    d,
                    b[f].out_of_sample.clone(),
                    config,
                );
                progress();
                s
            })
            .collect::<Result<Vec<_>, _>>()?;
        folds.push(FoldResult {
            fold: f + 1,
            in_sample: datasets
                .iter()
                .zip(&bounds)
                .map(|(d, b)| span(d, &b[f].in_sample))
                .collect(),
            out_of_sample: datasets
                .iter()
                .zip(&bounds)
                .map(|(d, b)| span(d, &b[f].out_of_sample))
                .collect(),
            out_of_sample_metric: mean(oos_stats.iter().map(|s| metric.of(s))),
            in_sample_metric: chosen.score,
            params: chosen.params,
            out_of_sample_stats: oos_stats,
        });
    }
    let is = mean(folds.iter().map(|f| f.in_sample_metric));
    let oos = mean(folds.iter().map(|f| f.out_of_sample_metric));
    let compounded = mean((0..datasets.len()).map(|d| {
        let growth: f64 = folds
            .iter()
            .map(|f| 1.0 + f.out_of_sample_stats[d].return_pct / 100.0)
            .product();
        (growth - 1.0) * 100.0
    }));
    let overfit = overfit(is, oos);
    Ok(WalkForward {
        out_of_sample_trades: folds
            .iter()
            .flat_map(|f| f.out_of_sample_stats.iter().map(|s| s.num_trades))
            .sum(),
        folds,
        in_sample_metric: is,
        out_of_sample_metric: oos,
        out_of_sample_return_pct: compounded,
        overfit,
    })
}

/// Whether an out-of-sample metric `oos` is much worse than the in-sample `is`: it keeps
/// less than [`OVERFIT_KEEP`] of it, or is undefined while `is` is not.
pub fn overfit(is: f64, oos: f64) -> bool {
    if is.is_finite() {
        !oos.is_finite() || oos < is - (1.0 - OVERFIT_KEEP) * is.abs()
    } else {
        false
    }
}

/// The best set of `plan` on `datasets`.
pub fn optimise(
    plan: &Plan,
    datasets: &[Dataset],
    config: &BacktestConfig,
    metric: Metric,
    progress: &(dyn Fn() + Sync),
) -> Result<Row, SweepError> {
    let mut rows = evaluate(
        plan.strategy,
        &plan.sets,
        datasets,
        config,
        metric,
        progress,
    )?;
    rank(&mut rows);
    // `plan` refuses an empty set list, so there is a first row.
    rows.into_iter().next().ok_or(SweepError::Empty {
        total: plan.total,
        by_constraint: plan.rejected_by_constraint,
        by_strategy: plan.rejected_by_strategy,
        first_reason: None,
    })
}

/// Backtests `params` on bars `oos` of `d`, warmed up on the bars before it, and returns
/// the statistics of the segment alone (from the bar before its first, which buy & hold
/// is measured from, as in any backtest).
pub fn out_of_sample(
    strategy: &'static Builtin,
    params: &Params,
    d: &Dataset,
    oos: Range<usize>,
    config: &BacktestConfig,
) -> Result<Stats, SweepError> {
    let warmup = strategy.build(params)?.warmup_bars();
    // The engine trades from bar max(1, warmup - 1) of what it is given: start the slice
    // that many bars before the segment so its first trading bar is the segment's first.
    let lead = warmup.saturating_sub(1).max(1).min(oos.start);
    let from = oos.start - lead;
    let bars = d.bars.slice(from..oos.end);
    let result = backtest(strategy, params, &bars, config, &d.name)?;
    // Statistics from the bar before the segment: the warm-up bars, where the account
    // holds its cash, would dilute every per-bar figure.
    let skip = lead - 1;
    let trades: Vec<_> = result
        .trades
        .iter()
        .map(|t| {
            let mut t = *t;
            t.entry_bar -= skip.min(t.entry_bar);
            t.exit_bar -= skip.min(t.exit_bar);
            t
        })
        .collect();
    let (stats, _) = stats::compute(stats::Input {
        trades: &trades,
        equity: &result.equity[skip..],
        time_ms: &bars.time_ms[skip..],
        close: &bars.close[skip..],
        buy_hold_from: 0,
    });
    Ok(stats)
}

#[cfg(test)]
mod tests;
