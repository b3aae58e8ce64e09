//! The HTML report of one backtest: one self-contained file.
//!
//! Owns: turning a [`BacktestResult`] into HTML text: a header (strategy, parameters, data,
//! options), the equity and drawdown charts as inline SVG, the statistics table and the
//! table of every trade (closed, then still open). Never: writing the file (the CLI does),
//! or referring to anything outside the file — no CDN, no external URL, no script: the CSS
//! is inline and the charts are static SVG paths, so the report opens offline and renders
//! the same in any browser.
//!
//! Long series are downsampled for plotting: bars are split into at most [`CHART_COLUMNS`]
//! equal groups (one per horizontal pixel) and each group is drawn by its minimum and
//! maximum, so a 1 000 000-bar report keeps every spike and stays a few hundred kB.
//!
//! Numbers in the tables use [`format_number`] and times [`format_time`], which the CLI's
//! human output shares, so the report and the terminal agree.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::config::BacktestConfig;
use super::result::{BacktestResult, Trade};

/// Horizontal resolution of the charts, in columns (pixels of the SVG's view box).
pub const CHART_COLUMNS: usize = 1000;

/// Every statistic in the order backtesting.py prints them: JSON key and its label there.
pub const STAT_LABELS: [(&str, &str); 30] = [
    ("start", "Start"),
    ("end", "End"),
    ("duration_days", "Duration [days]"),
    ("exposure_time_pct", "Exposure Time [%]"),
    ("equity_final", "Equity Final [$]"),
    ("equity_peak", "Equity Peak [$]"),
    ("commissions", "Commissions [$]"),
    ("return_pct", "Return [%]"),
    ("buy_hold_return_pct", "Buy & Hold Return [%]"),
    ("return_ann_pct", "Return (Ann.) [%]"),
    ("volatility_ann_pct", "Volatility (Ann.) [%]"),
    ("cagr_pct", "CAGR [%]"),
    ("sharpe_ratio", "Sharpe Ratio"),
    ("sortino_ratio", "Sortino Ratio"),
    ("calmar_ratio", "Calmar Ratio"),
    ("max_drawdown_pct", "Max. Drawdown [%]"),
    ("avg_drawdown_pct", "Avg. Drawdown [%]"),
    (
        "max_drawdown_duration_days",
        "Max. Drawdown Duration [days]",
    ),
    (
        "avg_drawdown_duration_days",
        "Avg. Drawdown Duration [days]",
    ),
    ("num_trades", "# Trades"),
    ("win_rate_pct", "Win Rate [%]"),
    ("best_trade_pct", "Best Trade [%]"),
    ("worst_trade_pct", "Worst Trade [%]"),
    ("avg_trade_pct", "Avg. Trade [%]"),
    ("max_trade_duration_days", "Max. Trade Duration [days]"),
    ("avg_trade_duration_days", "Avg. Trade Duration [days]"),
    ("profit_factor", "Profit Factor"),
    ("expectancy_pct", "Expectancy [%]"),
    ("sqn", "SQN"),
    ("kelly_criterion", "Kelly Criterion"),
];

/// A number as the report and the CLI show it: whole numbers without decimals, others
/// rounded to 4 decimals (trailing zeros kept off), undefined as `n/a`.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A bar time (ms since the epoch, UTC) as `YYYY-MM-DD HH:MM`.
pub fn format_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// One statistic's value from the statistics' JSON, formatted.
pub fn format_stat(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => format_number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Null => "n/a".into(),
        serde_json::Value::String(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => format_time(t.timestamp_millis()),
            Err(_) => s.clone(),
        },
        other => other.to_string(),
    }
}

/// What the report is about.
pub struct ReportInput<'a> {
    /// Strategy name.
    pub strategy: &'a str,
    /// Parameters as `k=v` text.
    pub params: &'a str,
    /// Data file as the user named it.
    pub data: &'a str,
    /// Bar open times (ms), one per equity point.
    pub time_ms: &'a [i64],
    pub config: &'a BacktestConfig,
    pub result: &'a BacktestResult,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Minimum and maximum of `values` per column, at most `columns` columns of equal bar
/// counts; one column per value when there are fewer values.
pub fn envelope(values: &[f64], columns: usize) -> Vec<(f64, f64)> {
    let n = values.len();
    let cols = columns.min(n).max(1);
    if n == 0 {
        return Vec::new();
    }
    (0..cols)
        .map(|c| {
            let (from, to) = (c * n / cols, ((c + 1) * n / cols).max(c * n / cols + 1));
            values[from..to.min(n)]
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                })
        })
        .collect()
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}\
.meta{color:#555;font-size:13px}svg{display:block;background:#fafafa;border:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}.pos{color:#1a7f37}.neg{color:#c62828}\
.axis{font-size:11px;fill:#666}";

/// Builds the report.
pub fn html(input: &ReportInput<'_>) -> String {
    let r = input.result;
    let mut h = String::with_capacity(64 * 1024 + 256 * (r.trades.len() + r.open_trades.len()));
    let title = format!("{} {} on {}", input.strategy, input.params, input.data);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let c = input.config;
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} bars, {} to {}; cash {}, commission {}, spread {}, margin {}, fill {}, {}, finalize trades {}; {} order(s) cancelled for lack of margin{}</p>",
        input.time_ms.len(),
        escape(&input.time_ms.first().map(|t| format_time(*t)).unwrap_or_default()),
        escape(&input.time_ms.last().map(|t| format_time(*t)).unwrap_or_default()),
        format_number(c.cash),
        format_number(c.commission),
        format_number(c.spread),
        format_number(c.margin),
        match c.fill {
            super::config::Fill::NextOpen => "next open",
            super::config::Fill::Close => "close",
        },
        match c.fractional_unit {
            None => "whole units".to_string(),
            Some(u) => format!("lots of {u}"),
        },
        c.finalize_trades,
        r.cancelled_orders,
        match r.out_of_money_bar {
            Some(b) => format!("; out of money on bar {b}"),
            None => String::new(),
        }
    );

    h.push_str("<h2>Equity</h2>\n");
    chart_line(&mut h, &r.equity, input.time_ms, 260.0);
    h.push_str("<h2>Drawdown</h2>\n");
    chart_drawdown(&mut h, &r.drawdown, input.time_ms, 140.0);

    h.push_str("<h2>Statistics</h2>\n<table id=\"stats\">\n");
    let stats = serde_json::to_value(&r.stats).unwrap_or_default();
    for (key, label) in STAT_LABELS {
        let v = stats
            .get(key)
            .map(format_stat)
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            h,
            "<tr data-key=\"{key}\"><td class=\"l\">{}</td><td>{}</td></tr>",
            escape(label),
            escape(&v)
        );
    }
    h.push_str("</table>\n");

    let _ = writeln!(
        h,
        "<h2>Trades ({} closed, {} open)</h2>\n<table id=\"trades\">\n<tr><th>#</th><th class=\"l\">side</th><th>size</th><th class=\"l\">entry time</th><th>entry price</th><th class=\"l\">exit time</th><th>exit price</th><th>P&amp;L</th><th>return %</th><th>commission</th><th>stop-loss</th><th>take-profit</th><th class=\"l\">exit</th></tr>",
        r.trades.len(),
        r.open_trades.len()
    );
    for (i, t) in r.trades.iter().chain(&r.open_trades).enumerate() {
        trade_row(&mut h, i + 1, t);
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

fn trade_row(h: &mut String, n: usize, t: &Trade) {
    let class = if t.pnl >= 0.0 { "pos" } else { "neg" };
    let opt = |v: Option<f64>| v.map(format_number).unwrap_or_default();
    let reason = serde_json::to_value(t.exit_reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<tr class=\"trade\"><td>{n}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{reason}</td></tr>",
        if t.size > 0.0 { "long" } else { "short" },
        format_number(t.size.abs()),
        format_time(t.entry_time_ms),
        format_number(t.entry_price),
        format_time(t.exit_time_ms),
        format_number(t.exit_price),
        format_number(t.pnl),
        format_number(t.return_pct),
        format_number(t.commission),
        opt(t.stop_loss),
        opt(t.take_profit),
    );
}

const W: f64 = CHART_COLUMNS as f64;
const LEFT: f64 = 70.0;

fn x_of(col: usize, cols: usize) -> f64 {
    if cols <= 1 {
        LEFT
    } else {
        LEFT + col as f64 * (W - 1.0) / (cols - 1) as f64
    }
}

fn svg_open(h: &mut String, height: f64, id: &str, label: &str) {
    let _ = write!(
        h,
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {} {}\" width=\"100%\" preserveAspectRatio=\"none\">",
        W + LEFT + 10.0,
        height + 20.0
    );
}

fn time_axis(h: &mut String, time_ms: &[i64], height: f64) {
    if let (Some(first), Some(last)) = (time_ms.first(), time_ms.last()) {
        let _ = write!(
            h,
            "<text class=\"axis\" x=\"{LEFT}\" y=\"{}\">{}</text><text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            height + 16.0,
            format_time(*first),
            LEFT + W,
            height + 16.0,
            format_time(*last)
        );
    }
}

/// The equity line: each column drawn from its maximum to its minimum.
fn chart_line(h: &mut String, values: &[f64], time_ms: &[i64], height: f64) {
    let env = envelope(values, CHART_COLUMNS);
    let (lo, hi) = env
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(l, u)| {
            (a.min(l), b.max(u))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y = |v: f64| 4.0 + (hi - v) / span * (height - 8.0);
    svg_open(h, height, "equity-chart", "equity curve");
    let mut d = String::with_capacity(env.len() * 24);
    for (c, &(l, u)) in env.iter().enumerate() {
        let x = x_of(c, env.len());
        let _ = write!(
            d,
            "{}{x:.1} {:.1}L{x:.1} {:.1}",
            if c == 0 { "M" } else { "L" },
            y(u),
            y(l)
        );
    }
    let _ = write!(
        h,
        "<path d=\"{d}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.2\"/>\
         <text class=\"axis\" x=\"{}\" y=\"12\" text-anchor=\"end\">{}</text>\
         <text class=\"axis\" x=\"{}\" y=\"{height}\" text-anchor=\"end\">{}</text>",
        LEFT - 4.0,
        format_number(hi),
        LEFT - 4.0,
        format_number(lo)
    );
    time_axis(h, time_ms, height);
    h.push_str("</svg>\n");
}

/// The drawdown area: each column at its deepest drawdown, 0 at the top.
fn chart_drawdown(h: &mut String, dd: &[f64], time_ms: &[i64], height: f64) {
    let env = envelope(dd, CHART_COLUMNS);
    let deepest = env.iter().fold(0.0f64, |a, &(_, u)| a.max(u));
    let span = if deepest > 0.0 { deepest } else { 1.0 };
    let y = |v: f64| 4.0 + v / span * (height - 8.0);
    svg_open(h, height, "drawdown-chart", "drawdown");
    let mut d = format!("M{LEFT:.1} 4.0");
    for (c, &(_, u)) in env.iter().enumerate() {
        let _ = write!(d, "L{:.1} {:.1}", x_of(c, env.len()), y(u));
    }
    let _ = write!(
        d,
        "L{:.1} 4.0Z",
        x_of(env.len().saturating_sub(1), env.len())
    );
    let _ = write!(
        h,
        "<path d=\"{d}\" fill=\"#ef9a9a\" stroke=\"#c62828\" stroke-width=\"1\"/>\
         <text class=\"axis\" x=\"{}\" y=\"12\" text-anchor=\"end\">0 %</text>\
         <text class=\"axis\" x=\"{}\" y=\"{height}\" text-anchor=\"end\">-{} %</text>",
        LEFT - 4.0,
        LEFT - 4.0,
        format_number(deepest * 100.0)
    );
    time_axis(h, time_ms, height);
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_extremes_per_column() {
        let mut v: Vec<f64> = (0..10_000).map(|i| i as f64).collect();
        v[5_001] = -50.0; // a spike inside column 500
        let env = envelope(&v, 1000);
        assert_eq!(env.len(), 1000);
        assert_eq!(env[0], (0.0, 9.0));
        assert_eq!(env[500], (-50.0, 5_009.0));
        assert_eq!(env[999], (9_990.0, 9_999.0));
        assert_eq!(envelope(&[1.0, 2.0], 1000), vec![(1.0, 1.0), (2.0, 2.0)]);
        assert!(envelope(&[], 1000).is_empty());
    }

    #[test]
    fn a_million_bar_chart_stays_small_and_keeps_its_spikes() {
        let n = 1_000_000;
        let mut equity: Vec<f64> = (0..n).map(|i| 10_000.0 + (i as f64 * 1e-3).sin()).collect();
        equity[654_321] = 25_000.0;
        let time: Vec<i64> = (0..n as i64).map(|i| i * 60_000).collect();
        let mut h = String::new();
        chart_line(&mut h, &equity, &time, 260.0);
        let drawdown: Vec<f64> = equity.iter().map(|e| (25_000.0 - e) / 25_000.0).collect();
        chart_drawdown(&mut h, &drawdown, &time, 140.0);
        assert!(h.len() < 80_000, "{} bytes", h.len());
        // One column per pixel: each is drawn by two points (line) or one (area).
        assert_eq!(
            h.matches('L').count(),
            2 * CHART_COLUMNS - 1 + CHART_COLUMNS + 1
        );
        // The one-bar spike is the chart's top.
        assert!(h.contains(">25000</text>"), "{h:.300}");
    }

    #[test]
    fn numbers_and_text_are_formatted_and_escaped() {
        assert_eq!(format_number(93.0), "93");
        assert_eq!(format_number(462.6397), "462.6397");
        assert_eq!(format_number(-33.929_999_9), "-33.93");
        assert_eq!(format_number(f64::NAN), "n/a");
        assert_eq!(format_number(-0.00001), "0");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(format_time(0), "1970-01-01 00:00");
    }
}
