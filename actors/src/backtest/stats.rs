//! Backtest statistics, each defined exactly as backtesting.py 0.6's `compute_stats`
//! (`backtesting/_stats.py`) defines it, `risk_free_rate = 0`.
//!
//! Owns: the [`Stats`] numbers and their JSON shape. Never: simulating trades.
//!
//! Definitions worth knowing (all as backtesting.py):
//! - Annualised figures use "day returns": the equity's last value per calendar day (per
//!   week, month or year when the bar period is 7, 31 or 365 days), percentage change
//!   between them. A year has 252 of them, or 365 when more than 60 % of the weekly share
//!   of weekend bars is present (`have_weekends`), 52 / 12 / 1 for those periods.
//!   `return_ann_pct` compounds their geometric mean; `volatility_ann_pct` is the
//!   compounded variance formula; Sharpe and Sortino use them with a zero risk-free rate.
//! - `cagr_pct` uses calendar time (365.25-day years) between the first and last bar.
//! - Trade statistics count closed trades only; `avg_trade_pct` is the geometric mean of
//!   trade returns; `expectancy_pct` the arithmetic one.
//! - Durations (`*_days`) are rounded up to the resolution of the bar period (whole days
//!   for daily bars) and given in days. One backtesting.py quirk is kept: when the only
//!   drawdown is on the last bar (no drawdown period ends before it), its "durations" are
//!   the drawdown fractions themselves.
//! - Exposure counts bars from each closed trade's entry bar to its exit bar inclusive.
//! - A statistic that is undefined (no trades, no losing trade, zero volatility...) is NaN
//!   in memory and `null` in JSON; infinities are `null` too.
//!
//! Sums are numpy's pairwise summation where backtesting.py sums with numpy or pandas, and
//! left-to-right where it uses Python's `sum`, so values agree to ~1e-15, not just roughly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::result::Trade;

const DAY_MS: i64 = 86_400_000;
const NS_PER_MS: i64 = 1_000_000;

/// The statistics of one backtest. Percentages are in percent; ratios are plain numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(with = "nullable")]
    pub duration_days: f64,
    #[serde(with = "nullable")]
    pub exposure_time_pct: f64,
    #[serde(with = "nullable")]
    pub equity_final: f64,
    #[serde(with = "nullable")]
    pub equity_peak: f64,
    #[serde(with = "nullable")]
    pub commissions: f64,
    #[serde(with = "nullable")]
    pub return_pct: f64,
    #[serde(with = "nullable")]
    pub buy_hold_return_pct: f64,
    #[serde(with = "nullable")]
    pub return_ann_pct: f64,
    #[serde(with = "nullable")]
    pub volatility_ann_pct: f64,
    #[serde(with = "nullable")]
    pub cagr_pct: f64,
    #[serde(with = "nullable")]
    pub sharpe_ratio: f64,
    #[serde(with = "nullable")]
    pub sortino_ratio: f64,
    #[serde(with = "nullable")]
    pub calmar_ratio: f64,
    #[serde(with = "nullable")]
    pub max_drawdown_pct: f64,
    #[serde(with = "nullable")]
    pub avg_drawdown_pct: f64,
    #[serde(with = "nullable")]
    pub max_drawdown_duration_days: f64,
    #[serde(with = "nullable")]
    pub avg_drawdown_duration_days: f64,
    pub num_trades: usize,
    #[serde(with = "nullable")]
    pub win_rate_pct: f64,
    #[serde(with = "nullable")]
    pub best_trade_pct: f64,
    #[serde(with = "nullable")]
    pub worst_trade_pct: f64,
    #[serde(with = "nullable")]
    pub avg_trade_pct: f64,
    #[serde(with = "nullable")]
    pub max_trade_duration_days: f64,
    #[serde(with = "nullable")]
    pub avg_trade_duration_days: f64,
    #[serde(with = "nullable")]
    pub profit_factor: f64,
    #[serde(with = "nullable")]
    pub expectancy_pct: f64,
    #[serde(with = "nullable")]
    pub sqn: f64,
    #[serde(with = "nullable")]
    pub kelly_criterion: f64,
}

/// Non-finite numbers as JSON `null` (JSON has no NaN), read back as NaN.
mod nullable {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

pub(crate) struct Input<'a> {
    pub trades: &'a [Trade],
    pub equity: &'a [f64],
    pub time_ms: &'a [i64],
    pub close: &'a [f64],
    /// Bar buy & hold is measured from.
    pub buy_hold_from: usize,
}

/// numpy's `add.reduce` over a contiguous float64 array: pairwise summation in blocks of
/// 128 with eight accumulators, so sums match numpy's bit for bit.
pub(crate) fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut r = 0.0;
        for &x in a {
            r += x;
        }
        r
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (acc, x) in r.iter_mut().zip(&a[i..i + 8]) {
                *acc += x;
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// pandas `Series.mean()`: NaN when empty.
fn mean(a: &[f64]) -> f64 {
    np_sum(a) / a.len() as f64
}

/// pandas `Series.var(ddof=1)`: NaN with fewer than two values.
fn var(a: &[f64]) -> f64 {
    if a.len() < 2 {
        return f64::NAN;
    }
    let avg = np_sum(a) / a.len() as f64;
    let sq: Vec<f64> = a.iter().map(|x| (avg - x) * (avg - x)).collect();
    np_sum(&sq) / (a.len() - 1) as f64
}

/// backtesting.py's `geometric_mean`: 0 when any return is <= -100 %, NaN when empty.
fn geometric_mean(returns: &[f64]) -> f64 {
    if returns.iter().any(|r| r + 1.0 <= 0.0) {
        return 0.0;
    }
    let logs: Vec<f64> = returns.iter().map(|r| (r + 1.0).ln()).collect();
    (np_sum(&logs) / returns.len() as f64).exp() - 1.0
}

/// `x or nan` in Python: zero (falsy) becomes NaN.
fn or_nan(x: f64) -> f64 {
    if x == 0.0 {
        f64::NAN
    } else {
        x
    }
}

fn to_utc(ms: i64) -> DateTime<Utc> {
    // Bar times come from `data`, which only produces representable instants; the epoch
    // stands in for an out-of-range hand-built time rather than failing a whole backtest.
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Day number since the epoch (UTC) of a time in ms.
fn day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Bucket of a time for resampling to the period's calendar unit.
#[derive(Clone, Copy)]
enum Resample {
    Day,
    /// Weeks ending Sunday (pandas `W`).
    Week,
    Month,
    Year,
}

impl Resample {
    /// The bucket of day number `d` (days since 1970-01-01).
    fn key(self, d: i64) -> i64 {
        match self {
            Resample::Day => d,
            // Day 0 (1970-01-01) is a Thursday: +3 puts each Monday at a multiple of 7.
            Resample::Week => (d + 3).div_euclid(7),
            Resample::Month | Resample::Year => {
                use chrono::Datelike;
                let d = to_utc(d.saturating_mul(DAY_MS));
                match self {
                    Resample::Month => d.year() as i64 * 12 + d.month0() as i64,
                    _ => d.year() as i64,
                }
            }
        }
    }
}

/// The bar period: median spacing of the last 100 bars (backtesting.py `_data_period`),
/// in ns; `None` with a single bar.
fn period_ns(time_ms: &[i64]) -> Option<f64> {
    let tail = &time_ms[time_ms.len().saturating_sub(100)..];
    let mut diffs: Vec<i64> = tail.windows(2).map(|w| w[1] - w[0]).collect();
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_unstable();
    let m = diffs.len();
    let med = if m % 2 == 1 {
        diffs[m / 2] as f64
    } else {
        (diffs[m / 2 - 1] as f64 + diffs[m / 2] as f64) / 2.0
    };
    Some(med * NS_PER_MS as f64)
}

/// pandas `Timedelta.resolution_string` as a unit in ns: the smallest non-zero component
/// (ns, us, ms, s, min, h, else days).
fn resolution_ns(period_ns: f64) -> i64 {
    const UNITS: [i64; 7] = [
        1,
        1_000,
        1_000_000,
        1_000_000_000,
        60_000_000_000,
        3_600_000_000_000,
        86_400_000_000_000,
    ];
    let p = period_ns.round() as i64;
    UNITS
        .windows(2)
        .find(|w| p % w[1] != 0)
        .map_or(UNITS[6], |w| w[0])
}

/// A duration in ns rounded up to `res` ns (`Timedelta.ceil`), in days.
fn ceil_days(ns: f64, res: i64) -> f64 {
    if !ns.is_finite() {
        return f64::NAN;
    }
    let ns = ns.round() as i64;
    let up = ns.div_euclid(res) * res + if ns.rem_euclid(res) != 0 { res } else { 0 };
    up as f64 / 86_400_000_000_000.0
}

/// The statistics, and the drawdown curve they are computed from (an output too, so it is
/// built in the same pass).
pub(crate) fn compute(input: Input<'_>) -> (Stats, Vec<f64>) {
    let Input {
        trades,
        equity,
        time_ms,
        close,
        buy_hold_from,
    } = input;
    let n = equity.len();
    let start_ms = time_ms[0];
    let end_ms = time_ms[n - 1];
    let duration_ms = end_ms - start_ms;

    // Exposure: union of [entry, exit] bar ranges.
    let mut spans: Vec<(usize, usize)> = trades.iter().map(|t| (t.entry_bar, t.exit_bar)).collect();
    spans.sort_unstable();
    let mut covered = 0usize;
    let mut reach = 0usize; // first bar not yet counted
    for &(a, b) in &spans {
        let a = a.max(reach);
        if b + 1 > a {
            covered += b + 1 - a;
            reach = b + 1;
        }
    }
    let exposure_time_pct = covered as f64 / n as f64 * 100.0;

    // One pass over equity: the drawdown curve (`1 - equity / running peak`), its maximum,
    // and drawdown periods: from one zero-drawdown bar to the next (or to the last bar)
    // with drawdown in between (backtesting.py `compute_drawdown_duration_peaks`).
    let mut dd = Vec::with_capacity(n);
    let mut equity_peak = f64::NEG_INFINITY;
    let mut max_dd = f64::NEG_INFINITY;
    let mut durations: Vec<f64> = Vec::new();
    let mut peaks: Vec<f64> = Vec::new();
    let mut prev: Option<usize> = None;
    let mut deepest = 0.0f64;
    for (i, &e) in equity.iter().enumerate() {
        equity_peak = equity_peak.max(e);
        let d = 1.0 - e / equity_peak;
        dd.push(d);
        max_dd = max_dd.max(d);
        if i > 0 {
            deepest = deepest.max(d);
        }
        if d == 0.0 || i == n - 1 {
            if let Some(p) = prev {
                if i > p + 1 {
                    durations.push(((time_ms[i] - time_ms[p]) * NS_PER_MS) as f64);
                    peaks.push(deepest);
                }
            }
            prev = Some(i);
            deepest = d;
        }
    }
    let equity_final = equity[n - 1];
    let commissions = trades.iter().fold(0.0, |acc, t| acc + t.commission);
    let return_pct = (equity_final - equity[0]) / equity[0] * 100.0;
    let buy_hold_return_pct = match close.get(buy_hold_from) {
        Some(&c0) => (close[n - 1] - c0) / c0 * 100.0,
        None => f64::NAN,
    };

    // Day returns and annualisation.
    let period = period_ns(time_ms);
    let (gmean, day_returns, annual_days) = match period {
        None => (f64::NAN, Vec::new(), f64::NAN),
        Some(p) => {
            let freq_days = (p / 86_400_000_000_000.0).floor() as i64;
            let rs = match freq_days {
                7 => Resample::Week,
                31 => Resample::Month,
                365 => Resample::Year,
                _ => Resample::Day,
            };
            // One pass: weekend bars, and the last equity of each bucket. Times increase,
            // so the calendar day is only worked out when a bar crosses into a new one.
            let mut lasts: Vec<f64> = Vec::new();
            let mut cur_key = None;
            let mut last_e = f64::NAN;
            let mut day_end = i64::MIN;
            let mut weekend_day = false;
            let mut weekend_bars = 0usize;
            for (&t, &e) in time_ms.iter().zip(equity) {
                if t >= day_end {
                    let d = day(t);
                    day_end = (d + 1).saturating_mul(DAY_MS);
                    weekend_day = (d + 3).rem_euclid(7) >= 5;
                    let k = rs.key(d);
                    if cur_key != Some(k) {
                        if cur_key.is_some() {
                            lasts.push(last_e);
                        }
                        cur_key = Some(k);
                    }
                }
                weekend_bars += usize::from(weekend_day);
                last_e = e;
            }
            if cur_key.is_some() {
                lasts.push(last_e);
            }
            let have_weekends = weekend_bars as f64 / n as f64 > 2.0 / 7.0 * 0.6;
            let annual = match freq_days {
                7 => 52.0,
                31 => 12.0,
                365 => 1.0,
                _ if have_weekends => 365.0,
                _ => 252.0,
            };
            let rets: Vec<f64> = lasts
                .windows(2)
                .map(|w| w[1] / w[0] - 1.0)
                .filter(|r| !r.is_nan())
                .collect();
            (geometric_mean(&rets), rets, annual)
        }
    };
    let annualized = (1.0 + gmean).powf(annual_days) - 1.0;
    let return_ann_pct = annualized * 100.0;
    let volatility_ann_pct = ((var(&day_returns) + (1.0 + gmean).powi(2)).powf(annual_days)
        - (1.0 + gmean).powf(2.0 * annual_days))
    .sqrt()
        * 100.0;
    let years = (duration_ms.div_euclid(DAY_MS) as f64
        + (duration_ms.rem_euclid(DAY_MS) / 1000) as f64 / 86400.0)
        / 365.25;
    let cagr_pct = if years != 0.0 {
        ((equity_final / equity[0]).powf(1.0 / years) - 1.0) * 100.0
    } else {
        f64::NAN
    };
    let sharpe_ratio = return_ann_pct / or_nan(volatility_ann_pct);
    let downside: Vec<f64> = day_returns.iter().map(|r| r.min(0.0).powi(2)).collect();
    let sortino_ratio = annualized / (mean(&downside).sqrt() * annual_days.sqrt());
    let max_dd = if max_dd.is_finite() { max_dd } else { 0.0 };
    let calmar_ratio = annualized / or_nan(max_dd);

    let res = period.map(resolution_ns).unwrap_or(86_400_000_000_000);
    let (max_drawdown_duration_days, avg_drawdown_duration_days, avg_dd) = if durations.is_empty() {
        // backtesting.py returns `dd.replace(0, nan)` for both series here.
        let nz: Vec<f64> = dd.iter().copied().filter(|&d| d != 0.0).collect();
        let mx = nz.iter().copied().fold(f64::NAN, f64::max);
        (mx, mean(&nz), mean(&nz))
    } else {
        let mx = durations.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (
            ceil_days(mx, res),
            ceil_days(mean_ns(&durations), res),
            mean(&peaks),
        )
    };

    // Trades.
    let num_trades = trades.len();
    let pl: Vec<f64> = trades.iter().map(|t| t.pnl).collect();
    let returns: Vec<f64> = trades.iter().map(|t| t.return_pct / 100.0).collect();
    let win_rate = if num_trades == 0 {
        f64::NAN
    } else {
        pl.iter().filter(|&&p| p > 0.0).count() as f64 / num_trades as f64
    };
    let best = returns.iter().copied().fold(f64::NAN, f64::max);
    let worst = returns.iter().copied().fold(f64::NAN, f64::min);
    let trade_durs: Vec<f64> = trades
        .iter()
        .map(|t| ((t.exit_time_ms - t.entry_time_ms) * NS_PER_MS) as f64)
        .collect();
    let max_trade_dur = trade_durs.iter().copied().fold(f64::NAN, f64::max);
    let pos: Vec<f64> = returns.iter().copied().filter(|&r| r > 0.0).collect();
    let neg: Vec<f64> = returns.iter().copied().filter(|&r| r < 0.0).collect();
    let profit_factor = np_sum(&pos) / or_nan(np_sum(&neg).abs());
    let pl_std = var(&pl).sqrt();
    let sqn = (num_trades as f64).sqrt() * mean(&pl) / or_nan(pl_std);
    let wins: Vec<f64> = pl.iter().copied().filter(|&p| p > 0.0).collect();
    let losses: Vec<f64> = pl.iter().copied().filter(|&p| p < 0.0).collect();
    let kelly = win_rate - (1.0 - win_rate) / (mean(&wins) / -mean(&losses));

    let stats = Stats {
        start: to_utc(start_ms),
        end: to_utc(end_ms),
        duration_days: duration_ms as f64 / DAY_MS as f64,
        exposure_time_pct,
        equity_final,
        equity_peak,
        commissions,
        return_pct,
        buy_hold_return_pct,
        return_ann_pct,
        volatility_ann_pct,
        cagr_pct,
        sharpe_ratio,
        sortino_ratio,
        calmar_ratio,
        max_drawdown_pct: -max_dd * 100.0,
        avg_drawdown_pct: -avg_dd * 100.0,
        max_drawdown_duration_days,
        avg_drawdown_duration_days,
        num_trades,
        win_rate_pct: win_rate * 100.0,
        best_trade_pct: best * 100.0,
        worst_trade_pct: worst * 100.0,
        avg_trade_pct: geometric_mean(&returns) * 100.0,
        max_trade_duration_days: ceil_days(max_trade_dur, res),
        avg_trade_duration_days: ceil_days(mean_ns(&trade_durs), res),
        profit_factor,
        expectancy_pct: mean(&returns) * 100.0,
        sqn,
        kelly_criterion: kelly,
    };
    (stats, dd)
}

/// Mean of durations in ns (NaN when empty), summed exactly in integers.
fn mean_ns(ns: &[f64]) -> f64 {
    if ns.is_empty() {
        return f64::NAN;
    }
    let sum: i128 = ns.iter().map(|&x| x as i128).sum();
    (sum / ns.len() as i128) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn np_sum_matches_numpy_pairwise() {
        // numpy 2.4: np.sum(np.arange(1, 201) * 0.1) == 2010.0, while Python's
        // left-to-right sum(0.1 * i for i in range(1, 201)) == 2010.0000000000002.
        let a: Vec<f64> = (1..=200).map(|i| i as f64 * 0.1).collect();
        assert_eq!(np_sum(&a), 2010.0);
        assert_eq!(a.iter().fold(0.0, |s, x| s + x), 2010.0000000000002);
    }

    #[test]
    fn resolution_and_ceil_follow_pandas() {
        assert_eq!(resolution_ns(86_400e9), 86_400_000_000_000);
        assert_eq!(resolution_ns(3_600e9), 3_600_000_000_000);
        assert_eq!(resolution_ns(90e9), 1_000_000_000);
        // 31.2 days ceiled to days is 32.
        assert_eq!(ceil_days(31.2 * 86_400e9, 86_400_000_000_000), 32.0);
        assert_eq!(ceil_days(31.0 * 86_400e9, 86_400_000_000_000), 31.0);
    }
}
