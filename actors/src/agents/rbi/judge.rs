//! Backtesting a valid spec on the configured data sets and judging it against the
//! promotion thresholds.
//!
//! The split: each data set's last `out_of_sample` fraction of bars is held out. The spec
//! is backtested on the first part (in-sample) and, with a fresh strategy, on the held-out
//! part (out-of-sample); the strategy warms its indicators up inside each part, so the
//! first `warmup` bars of the out-of-sample part trade nothing. This is one split, not a
//! walk-forward: enough to catch a spec that only fits the history it was written
//! against, cheap enough to run on every attempt. (Walk-forward sweeps are
//! `orrery backtest`'s.)
//!
//! Data sets run in parallel on rayon's pool (each loads its CSV, splits, and runs both
//! parts); the caller runs [`backtest_all`] on a blocking thread.
//!
//! Owns: the split, the per-data-set results and the threshold checks with their reasons.
//! Never: asks a model, stores anything, or trades.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::config::Thresholds;
use crate::backtest::{self, BacktestConfig, Bars};
use crate::strategies::library::{BacktestResult, BacktestSummary};
use crate::strategies::spec::StrategySpec;

/// Why a data set could not be backtested.
#[derive(Debug, Clone, thiserror::Error)]
#[error("data set {dataset}: {message}")]
pub struct DatasetError {
    pub dataset: String,
    pub message: String,
}

/// Fewest bars in a part for a backtest to mean anything beyond the warm-up.
const MIN_PART_BARS: usize = 2;

/// Backtests `spec` on every data set at once; one result (or error) per data set, in
/// the order given.
pub fn backtest_all(
    spec: &StrategySpec,
    data: &[PathBuf],
    out_of_sample: f64,
    config: &BacktestConfig,
) -> Vec<Result<BacktestResult, DatasetError>> {
    data.par_iter()
        .map(|path| {
            let bars = backtest::data::load(path).map_err(|e| DatasetError {
                dataset: path.display().to_string(),
                message: e.to_string(),
            })?;
            backtest_one(
                spec,
                &path.display().to_string(),
                &bars,
                out_of_sample,
                config,
            )
        })
        .collect()
}

/// Backtests `spec` on one loaded data set, in-sample and out-of-sample.
pub fn backtest_one(
    spec: &StrategySpec,
    dataset: &str,
    bars: &Bars,
    out_of_sample: f64,
    config: &BacktestConfig,
) -> Result<BacktestResult, DatasetError> {
    let err = |message: String| DatasetError {
        dataset: dataset.to_string(),
        message,
    };
    let n = bars.len();
    // The in-sample part keeps at least the warm-up plus a bar; `out_of_sample` is at most 0.9.
    let oos_bars = (n as f64 * out_of_sample).floor() as usize;
    let split = n - oos_bars;
    let warmup = spec.warmup_bars();
    if split < warmup + MIN_PART_BARS {
        return Err(err(format!(
            "{n} bars leave {split} in-sample, fewer than the spec's warm-up ({warmup}) + {MIN_PART_BARS}; give a longer data set"
        )));
    }
    let run = |part: &Bars| -> Result<backtest::BacktestResult, DatasetError> {
        let mut strategy = spec.compile().map_err(|e| err(e.to_string()))?;
        backtest::run(part, &mut strategy, config).map_err(|e| err(e.to_string()))
    };
    let is_bars = slice(bars, 0, split);
    let is = run(&is_bars)?;
    let oos = if oos_bars >= warmup + MIN_PART_BARS {
        Some(run(&slice(bars, split, n))?)
    } else {
        None
    };
    let stats = serde_json::json!({
        "split": {
            "in_sample_bars": split,
            "out_of_sample_bars": oos_bars,
            "out_of_sample_fraction": out_of_sample,
        },
        "in_sample": is.stats,
        "out_of_sample": oos.as_ref().map(|r| &r.stats),
    });
    Ok(BacktestResult {
        dataset: dataset.to_string(),
        summary: summary(&is.stats),
        out_of_sample: oos.as_ref().map(|r| summary(&r.stats)),
        stats,
    })
}

/// Bars `from..to` of `bars`.
pub fn slice(bars: &Bars, from: usize, to: usize) -> Bars {
    Bars {
        time_ms: bars.time_ms[from..to].to_vec(),
        open: bars.open[from..to].to_vec(),
        high: bars.high[from..to].to_vec(),
        low: bars.low[from..to].to_vec(),
        close: bars.close[from..to].to_vec(),
        volume: bars.volume[from..to].to_vec(),
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The numbers the thresholds read, from the backtester's statistics.
pub fn summary(s: &backtest::Stats) -> BacktestSummary {
    BacktestSummary {
        return_pct: finite(s.return_pct),
        buy_hold_return_pct: finite(s.buy_hold_return_pct),
        sharpe_ratio: finite(s.sharpe_ratio),
        max_drawdown_pct: finite(s.max_drawdown_pct),
        num_trades: s.num_trades as u64,
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| format!("{v:.2}"))
}

/// Every threshold `result` misses, as a sentence naming the data set; empty: it passes.
/// `oos_required`: whether an out-of-sample part was asked for (a data set too short to
/// have one then fails).
pub fn misses(result: &BacktestResult, t: &Thresholds, oos_required: bool) -> Vec<String> {
    let d = Path::new(&result.dataset)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| result.dataset.clone());
    let s = &result.summary;
    let mut out = Vec::new();
    if t.beat_buy_hold {
        let beats = matches!((s.return_pct, s.buy_hold_return_pct), (Some(r), Some(b)) if r > b);
        if !beats {
            out.push(format!(
                "{d}: in-sample return {} % does not beat buy & hold {} %",
                show(s.return_pct),
                show(s.buy_hold_return_pct)
            ));
        }
    }
    if !s.sharpe_ratio.is_some_and(|x| x >= t.min_sharpe) {
        out.push(format!(
            "{d}: in-sample Sharpe {} < min_sharpe {}",
            show(s.sharpe_ratio),
            t.min_sharpe
        ));
    }
    // Drawdowns are negative percentages (-33.9); the threshold is a magnitude.
    if !s.max_drawdown_pct.is_some_and(|x| -x <= t.max_drawdown_pct) {
        out.push(format!(
            "{d}: in-sample max drawdown {} % deeper than max_drawdown_pct {}",
            show(s.max_drawdown_pct),
            t.max_drawdown_pct
        ));
    }
    if s.num_trades < t.min_trades {
        out.push(format!(
            "{d}: {} in-sample trades < min_trades {}",
            s.num_trades, t.min_trades
        ));
    }
    if oos_required {
        match &result.out_of_sample {
            None => out.push(format!(
                "{d}: no out-of-sample part (too few bars after the split for the warm-up)"
            )),
            Some(o) => {
                if !o.return_pct.is_some_and(|r| r > t.oos_min_return_pct) {
                    out.push(format!(
                        "{d}: out-of-sample return {} % not above oos_min_return_pct {}",
                        show(o.return_pct),
                        t.oos_min_return_pct
                    ));
                }
                let need = s.sharpe_ratio.map(|x| x * t.oos_sharpe_fraction);
                let holds = match (o.sharpe_ratio, need) {
                    (Some(o), Some(need)) => o >= need,
                    _ => false,
                };
                if !holds {
                    out.push(format!(
                        "{d}: out-of-sample Sharpe {} < {} × in-sample Sharpe {}",
                        show(o.sharpe_ratio),
                        t.oos_sharpe_fraction,
                        show(s.sharpe_ratio)
                    ));
                }
            }
        }
    }
    out
}
