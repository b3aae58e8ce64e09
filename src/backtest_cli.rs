//! `orrery backtest`: one backtest, or a parameter sweep with optional walk-forward, from
//! the command line.
//!
//! Owns: the command's options, turning them into a [`BacktestConfig`], a strategy (a
//! built-in with `--param k=v`, or a declarative `--spec FILE.json`) and data sets, and
//! printing the outcome — an aligned statistics table and a trade summary, or `--json` —
//! plus the `--report` HTML file and a one-line summary on stderr (bars, time, bars/s).
//! Never: a config file, the data dir, the engine, or the network; it works on a fresh
//! checkout with nothing but a CSV file.
//!
//! Exit codes: 0 done; 2 the input was refused (an unreadable or malformed data file, an
//! unknown strategy, parameter or statistic, a bad option or spec), with one message on
//! stderr and nothing on stdout; 1 the run itself failed (a strategy asked for an invalid
//! order, the report could not be written, no worker threads).
//!
//! `--json` of one backtest: `{"strategy", "params", "spec", "data", "bars", "config",
//! "stats", "trades", "open_trades", "cancelled_orders", "first_trading_bar",
//! "out_of_money_bar", "equity"}`, where `equity` is `{"bars", "points", "time_ms", "equity",
//! "drawdown"}`: the per-bar curves, or with more bars than `--equity-points` (default
//! 2000; 0 = all) the value at the last bar of each of that many equal groups of bars
//! (always including the last bar). `--json` of a sweep: `{"strategy", "maximize", "data",
//! "grid", "results", "walk_forward"}` (see the README).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use orrery_actors::backtest::data::{self, DataError};
use orrery_actors::backtest::report::{self, format_number, format_stat, format_time};
use orrery_actors::backtest::sweep::{self, Constraint, Dataset, Metric, ParamRange, SweepError};
use orrery_actors::backtest::{
    self as bt, BacktestConfig, BacktestError, BacktestResult, Bars, ConfigError, Fill,
};
use orrery_actors::strategies::api::Strategy;
use orrery_actors::strategies::builtin::{self, StrategyError};
use orrery_actors::strategies::params::{ParamError, Params};
use orrery_actors::strategies::spec::{self, SpecErrors, StrategySpec};
use serde_json::{json, Value};

/// `--fractional` without `--fractional-unit`: one satoshi, backtesting.py
/// `FractionalBacktest`'s default unit.
pub const DEFAULT_FRACTIONAL_UNIT: f64 = 1e-8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FillArg {
    /// At the next bar's open (default; backtesting.py's default).
    #[value(name = "next_open", alias = "next-open")]
    NextOpen,
    /// At this bar's close (backtesting.py `trade_on_close=True`).
    Close,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Built-in strategy: sma_cross, ema_cross, rsi_reversion, bollinger_reversion, macd,
    /// donchian_breakout.
    #[arg(long, required_unless_present = "spec", conflicts_with = "spec")]
    pub strategy: Option<String>,
    /// Backtest a declarative strategy spec (a JSON file) instead of a built-in.
    #[arg(long, value_name = "FILE.json")]
    pub spec: Option<PathBuf>,
    /// OHLCV CSV file; several (comma-separated or repeated) only with --sweep.
    #[arg(long, value_name = "FILE", value_delimiter = ',', required = true)]
    pub data: Vec<PathBuf>,
    /// A strategy parameter, repeatable: --param fast=10 --param slow=30.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Starting cash.
    #[arg(long, default_value_t = 10_000.0)]
    pub cash: f64,
    /// Commission as a fraction of traded value, on entry and on exit (0.002 = 0.2 %).
    #[arg(long, default_value_t = 0.0)]
    pub commission: f64,
    /// A fixed commission per fill, in quote currency.
    #[arg(long, default_value_t = 0.0)]
    pub commission_fixed: f64,
    /// Bid-ask spread as a fraction of price: buys fill that much higher, sells lower.
    #[arg(long, default_value_t = 0.0)]
    pub spread: f64,
    /// Margin per unit of position value, in (0, 1]: 0.5 is 2x leverage.
    #[arg(long, conflicts_with = "leverage")]
    pub margin: Option<f64>,
    /// Leverage >= 1 (sets --margin to 1 / leverage).
    #[arg(long)]
    pub leverage: Option<f64>,
    /// When market orders fill.
    #[arg(long, value_enum, default_value_t = FillArg::NextOpen)]
    pub fill: FillArg,
    /// Fractional sizes in lots of 1e-8 (backtesting.py's FractionalBacktest).
    #[arg(long)]
    pub fractional: bool,
    /// Fractional sizes in lots of this many units (implies --fractional).
    #[arg(long, value_name = "UNIT")]
    pub fractional_unit: Option<f64>,
    /// Close trades still open after the last bar so they count in the statistics.
    #[arg(long)]
    pub finalize_trades: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write a self-contained HTML report (charts, statistics, every trade) to this file.
    #[arg(long, value_name = "FILE.html", conflicts_with = "sweep")]
    pub report: Option<PathBuf>,
    /// Points of the equity curve in --json (0: every bar).
    #[arg(long, default_value_t = 2000)]
    pub equity_points: usize,
    /// Sweep a parameter, repeatable: fast=5..50:5 (inclusive, with a step) or fast=5,10,20.
    #[arg(long, value_name = "K=A..B:STEP")]
    pub sweep: Vec<String>,
    /// Statistic (a numeric key of the JSON stats) to rank sweep results by, highest first.
    #[arg(long, default_value = "sharpe_ratio", value_name = "STAT")]
    pub maximize: String,
    /// Keep only parameter sets where this holds, repeatable: "fast<slow",
    /// "slow - fast >= 10 and fast <= 30".
    #[arg(long, value_name = "EXPR", requires = "sweep")]
    pub constraint: Vec<String>,
    /// Walk-forward analysis with K folds: K+1 equal segments, optimise on the ones before
    /// each fold's segment, test on it.
    #[arg(long, value_name = "K", requires = "sweep")]
    pub walk_forward: Option<usize>,
    /// Rows of the ranked table (and of the JSON results).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Worker threads of a sweep (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Why `orrery backtest` stopped.
#[derive(Debug, thiserror::Error)]
pub enum BacktestCliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    #[error("cannot read spec file {path}: {reason}")]
    SpecUnreadable { path: PathBuf, reason: String },
    #[error("spec file {path}: {source}")]
    Spec {
        path: PathBuf,
        #[source]
        source: SpecErrors,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error("backtest on {data}: {source}")]
    Backtest {
        data: String,
        #[source]
        source: BacktestError,
    },
    #[error("cannot write the report {path}: {reason}")]
    Report { path: PathBuf, reason: String },
    #[error("cannot start {threads} worker thread(s): {reason}")]
    Threads { threads: usize, reason: String },
}

impl BacktestCliError {
    /// 1 when the run failed, 2 when the input was refused (see the module doc).
    pub fn exit_code(&self) -> u8 {
        let invalid_order = |e: &BacktestError| matches!(e, BacktestError::InvalidOrder { .. });
        match self {
            BacktestCliError::Report { .. } | BacktestCliError::Threads { .. } => 1,
            BacktestCliError::Backtest { source, .. } if invalid_order(source) => 1,
            BacktestCliError::Sweep(SweepError::Backtest { source, .. })
                if invalid_order(source) =>
            {
                1
            }
            _ => 2,
        }
    }
}

/// Runs the command; prints the outcome or one error line.
pub fn run(args: BacktestArgs) -> ExitCode {
    let outcome = if args.sweep.is_empty() {
        single(&args)
    } else {
        sweep_command(&args)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orrery backtest: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn config(a: &BacktestArgs) -> Result<BacktestConfig, BacktestCliError> {
    let margin = match (a.margin, a.leverage) {
        (Some(m), _) => m,
        (None, Some(l)) if l.is_finite() && l >= 1.0 => 1.0 / l,
        (None, Some(l)) => {
            return Err(BacktestCliError::Usage(format!(
                "--leverage {l} is invalid: it must be a finite number >= 1 (e.g. 2 for 2x)"
            )))
        }
        (None, None) => 1.0,
    };
    let config = BacktestConfig {
        cash: a.cash,
        commission: a.commission,
        commission_fixed: a.commission_fixed,
        spread: a.spread,
        margin,
        fill: match a.fill {
            FillArg::NextOpen => Fill::NextOpen,
            FillArg::Close => Fill::Close,
        },
        fractional_unit: a
            .fractional_unit
            .or(a.fractional.then_some(DEFAULT_FRACTIONAL_UNIT)),
        finalize_trades: a.finalize_trades,
    };
    config.validate()?;
    Ok(config)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

fn json_text(v: &Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn rate(bars: usize, secs: f64) -> String {
    if secs <= 0.0 {
        return "n/a".into();
    }
    let r = bars as f64 / secs;
    if r >= 1e6 {
        format!("{:.1} M bars/s", r / 1e6)
    } else {
        format!("{:.0} bars/s", r)
    }
}

fn ms(secs: f64) -> String {
    format!("{:.1} ms", secs * 1000.0)
}

/// The strategy to run once: a built-in (and its resolved parameters) or a compiled spec.
struct Chosen {
    name: String,
    params: Option<Params>,
    spec: Option<StrategySpec>,
    strategy: Box<dyn Strategy>,
}

fn choose(a: &BacktestArgs) -> Result<Chosen, BacktestCliError> {
    if let Some(path) = &a.spec {
        if !a.params.is_empty() {
            return Err(BacktestCliError::Usage(
                "--param applies to built-in strategies; a spec states its own values".into(),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| BacktestCliError::SpecUnreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let bad = |source| BacktestCliError::Spec {
            path: path.clone(),
            source,
        };
        let spec = spec::validate(&text).map_err(bad)?;
        let strategy = spec.compile().map_err(bad)?;
        return Ok(Chosen {
            name: spec.name.clone(),
            params: None,
            spec: Some(spec),
            strategy: Box::new(strategy),
        });
    }
    // clap requires --strategy when --spec is absent.
    let name = a.strategy.as_deref().unwrap_or_default();
    let b = builtin::find(name)?;
    let params = b.resolve(&Params::parse_pairs(&a.params)?)?;
    let strategy = b.build(&params)?;
    Ok(Chosen {
        name: b.name.to_string(),
        params: Some(params),
        spec: None,
        strategy,
    })
}

fn single(a: &BacktestArgs) -> Result<(), BacktestCliError> {
    if a.data.len() != 1 {
        return Err(BacktestCliError::Usage(format!(
            "one backtest reads one --data file, got {}; several files need --sweep",
            a.data.len()
        )));
    }
    let config = config(a)?;
    let mut chosen = choose(a)?;
    let path = &a.data[0];
    let t0 = Instant::now();
    let bars = data::load(path)?;
    let parsed = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let result = bt::run(&bars, chosen.strategy.as_mut(), &config).map_err(|source| {
        BacktestCliError::Backtest {
            data: path.display().to_string(),
            source,
        }
    })?;
    let ran = t1.elapsed().as_secs_f64();
    let params_text = chosen
        .params
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "(spec)".into());
    let data_name = path.display().to_string();
    if let Some(report_path) = &a.report {
        let html = report::html(&report::ReportInput {
            strategy: &chosen.name,
            params: &params_text,
            data: &data_name,
            time_ms: &bars.time_ms,
            config: &config,
            result: &result,
        });
        std::fs::write(report_path, html).map_err(|e| BacktestCliError::Report {
            path: report_path.clone(),
            reason: e.to_string(),
        })?;
    }
    if a.json {
        out(&json_text(&single_json(
            &chosen,
            &data_name,
            &bars,
            &config,
            &result,
            a.equity_points,
        )));
    } else {
        out(&human(
            &chosen.name,
            &params_text,
            &data_name,
            &bars,
            &result,
        ));
    }
    eprintln!(
        "orrery backtest: {} {} on {}: {} bars parsed in {} ({}), backtested in {} ({}); {} closed trade(s), {} open{}",
        chosen.name,
        params_text,
        data_name,
        bars.len(),
        ms(parsed),
        rate(bars.len(), parsed),
        ms(ran),
        rate(bars.len(), ran),
        result.trades.len(),
        result.open_trades.len(),
        a.report
            .as_ref()
            .map(|p| format!("; report written to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// Indexes of the equity points `--json` carries (see the module doc).
pub fn equity_indexes(n: usize, points: usize) -> Vec<usize> {
    if points == 0 || n <= points {
        (0..n).collect()
    } else {
        (0..points).map(|j| (j + 1) * n / points - 1).collect()
    }
}

fn single_json(
    chosen: &Chosen,
    data_name: &str,
    bars: &Bars,
    config: &BacktestConfig,
    r: &BacktestResult,
    points: usize,
) -> Value {
    let idx = equity_indexes(r.equity.len(), points);
    let finite = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
    json!({
        "strategy": chosen.name,
        "params": chosen.params.as_ref().map(|p| p.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()),
        "spec": chosen.spec,
        "data": data_name,
        "bars": bars.len(),
        "config": config,
        "stats": r.stats,
        "trades": r.trades,
        "open_trades": r.open_trades,
        "cancelled_orders": r.cancelled_orders,
        "first_trading_bar": r.first_trading_bar,
        "out_of_money_bar": r.out_of_money_bar,
        "equity": {
            "bars": r.equity.len(),
            "points": idx.len(),
            "time_ms": idx.iter().map(|&i| bars.time_ms[i]).collect::<Vec<_>>(),
            "equity": idx.iter().map(|&i| finite(r.equity[i])).collect::<Vec<_>>(),
            "drawdown": idx.iter().map(|&i| finite(r.drawdown[i])).collect::<Vec<_>>(),
        },
    })
}

/// The statistics table (labels as backtesting.py prints them) and a trade summary.
pub fn human(strategy: &str, params: &str, data: &str, bars: &Bars, r: &BacktestResult) -> String {
    let mut s = format!("{strategy} {params} on {data} ({} bars)\n\n", bars.len());
    let stats = serde_json::to_value(&r.stats).unwrap_or_default();
    let width = report::STAT_LABELS
        .iter()
        .map(|(_, l)| l.len())
        .max()
        .unwrap_or(0)
        + 2;
    for (key, label) in report::STAT_LABELS {
        let v = stats
            .get(key)
            .map(format_stat)
            .unwrap_or_else(|| "n/a".into());
        s += &format!("{label:<width$}{v:>20}\n");
    }
    let won = r.trades.iter().filter(|t| t.pnl > 0.0).count();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for t in &r.trades {
        let reason = serde_json::to_value(t.exit_reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *reasons.entry(reason).or_default() += 1;
    }
    s += &format!(
        "\nTrades: {} closed ({} won, {} lost or flat), {} open; exits: {}; {} order(s) cancelled for lack of margin\n",
        r.trades.len(),
        won,
        r.trades.len() - won,
        r.open_trades.len(),
        if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        r.cancelled_orders
    );
    let last: Vec<_> = r
        .trades
        .iter()
        .chain(&r.open_trades)
        .rev()
        .take(5)
        .collect();
    if !last.is_empty() {
        s += &format!(
            "Last {} trade(s):\n  {:<6}{:>12}  {:<17}{:>12}  {:<17}{:>12}{:>12}{:>10}  exit\n",
            last.len(),
            "side",
            "size",
            "entry time",
            "entry",
            "exit time",
            "exit",
            "P&L",
            "return %"
        );
        for t in last.into_iter().rev() {
            let reason = serde_json::to_value(t.exit_reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            s += &format!(
                "  {:<6}{:>12}  {:<17}{:>12}  {:<17}{:>12}{:>12}{:>10}  {}\n",
                if t.size > 0.0 { "long" } else { "short" },
                format_number(t.size.abs()),
                format_time(t.entry_time_ms),
                format_number(t.entry_price),
                format_time(t.exit_time_ms),
                format_number(t.exit_price),
                format_number(t.pnl),
                format_number(t.return_pct),
                reason
            );
        }
    }
    s
}

fn sweep_command(a: &BacktestArgs) -> Result<(), BacktestCliError> {
    if a.spec.is_some() {
        return Err(BacktestCliError::Usage(
            "--sweep runs built-in strategies (--strategy NAME); a spec has no parameters to sweep"
                .into(),
        ));
    }
    let config = config(a)?;
    let name = a.strategy.as_deref().unwrap_or_default();
    let b = builtin::find(name)?;
    let fixed = Params::parse_pairs(&a.params)?;
    let ranges = a
        .sweep
        .iter()
        .map(|s| ParamRange::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let known: Vec<&str> = b.params.iter().map(|p| p.name).collect();
    let constraints = a
        .constraint
        .iter()
        .map(|c| Constraint::parse(c, &known))
        .collect::<Result<Vec<_>, _>>()?;
    let metric = Metric::parse(&a.maximize)?;
    let plan = sweep::plan(b, &fixed, &ranges, &constraints)?;
    if a.walk_forward == Some(0) {
        return Err(SweepError::NoFolds.into());
    }
    if a.threads == Some(0) {
        return Err(BacktestCliError::Usage(
            "--threads must be at least 1".into(),
        ));
    }
    let t0 = Instant::now();
    let datasets = a
        .data
        .iter()
        .map(|p| {
            Ok(Dataset {
                name: p.display().to_string(),
                bars: data::load(p)?,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    let parsed = t0.elapsed().as_secs_f64();
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = a.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder.build().map_err(|e| BacktestCliError::Threads {
        threads: a.threads.unwrap_or(0),
        reason: e.to_string(),
    })?;
    let files = datasets.len() as u64;
    let sets = plan.sets.len() as u64;
    let k = a.walk_forward.unwrap_or(0) as u64;
    let total = sets * files + k * (sets * files + files);
    let bar = indicatif::ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "backtests {bar:40} {pos}/{len} [{elapsed_precise}, eta {eta}]",
        ) {
            bar.set_style(style);
        }
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let tick = || bar.inc(1);
    let t1 = Instant::now();
    let (rows, wf) = pool.install(|| -> Result<_, SweepError> {
        let mut rows = sweep::evaluate(b, &plan.sets, &datasets, &config, metric, &tick)?;
        sweep::rank(&mut rows);
        let wf = match a.walk_forward {
            Some(k) => Some(sweep::walk_forward(
                &plan, &datasets, k, &config, metric, &tick,
            )?),
            None => None,
        };
        Ok((rows, wf))
    })?;
    bar.finish_and_clear();
    let ran = t1.elapsed().as_secs_f64();
    let top = &rows[..a.top.min(rows.len())];
    if a.json {
        out(&json_text(&sweep_json(
            b.name,
            metric,
            &plan,
            &datasets,
            top,
            wf.as_ref(),
        )));
    } else {
        out(&sweep_human(
            b.name,
            metric,
            &plan,
            &datasets,
            top,
            wf.as_ref(),
        ));
    }
    // Bars backtested: the full grid on every file, then per fold the grid on its
    // in-sample bars and the chosen set on its out-of-sample bars.
    let bars_run: usize = datasets
        .iter()
        .map(|d| {
            let n = d.bars.len();
            let folds = a
                .walk_forward
                .map(|k| sweep::fold_bounds(n, k))
                .unwrap_or_default();
            n * plan.sets.len()
                + folds
                    .iter()
                    .map(|f| f.in_sample.len() * plan.sets.len() + f.out_of_sample.len())
                    .sum::<usize>()
        })
        .sum();
    eprintln!(
        "orrery backtest: sweep of {} on {} file(s): {} bars parsed in {}; {} backtest(s) in {:.2} s on {} thread(s) ({})",
        b.name,
        datasets.len(),
        datasets.iter().map(|d| d.bars.len()).sum::<usize>(),
        ms(parsed),
        bar.position(),
        ran,
        pool.current_num_threads(),
        rate(bars_run, ran),
    );
    Ok(())
}

fn params_json(p: &Params) -> Value {
    Value::Object(p.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

fn sweep_json(
    strategy: &str,
    metric: Metric,
    plan: &sweep::Plan,
    datasets: &[Dataset],
    top: &[sweep::Row],
    wf: Option<&sweep::WalkForward>,
) -> Value {
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
    json!({
        "strategy": strategy,
        "maximize": metric.name(),
        "data": names,
        "grid": {
            "total": plan.total,
            "rejected_by_constraint": plan.rejected_by_constraint,
            "rejected_by_strategy": plan.rejected_by_strategy,
            "run": plan.sets.len(),
        },
        "results": top.iter().enumerate().map(|(i, r)| json!({
            "rank": i + 1,
            "params": params_json(&r.params),
            "metric": finite(r.score),
            "per_data": r.stats.iter().zip(&names).map(|(s, n)| json!({"data": n, "stats": s})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "walk_forward": wf.map(|w| json!({
            "folds": w.folds.iter().map(|f| json!({
                "fold": f.fold,
                "params": params_json(&f.params),
                "in_sample": f.in_sample,
                "out_of_sample": f.out_of_sample,
                "in_sample_metric": finite(f.in_sample_metric),
                "out_of_sample_metric": finite(f.out_of_sample_metric),
                "out_of_sample_stats": f.out_of_sample_stats,
            })).collect::<Vec<_>>(),
            "in_sample_metric": finite(w.in_sample_metric),
            "out_of_sample_metric": finite(w.out_of_sample_metric),
            "out_of_sample_return_pct": finite(w.out_of_sample_return_pct),
            "out_of_sample_trades": w.out_of_sample_trades,
            "overfit": w.overfit,
        })),
    })
}

fn mean_of(stats: &[bt::Stats], f: impl Fn(&bt::Stats) -> f64) -> f64 {
    stats.iter().map(&f).sum::<f64>() / stats.len().max(1) as f64
}

fn sweep_human(
    strategy: &str,
    metric: Metric,
    plan: &sweep::Plan,
    datasets: &[Dataset],
    top: &[sweep::Row],
    wf: Option<&sweep::WalkForward>,
) -> String {
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
    let mut s = format!(
        "sweep of {strategy}: {} set(s) in the grid, {} rejected by --constraint, {} by the strategy; {} run on {} ({}); ranked by {} (mean over files), best first\n\n",
        plan.total,
        plan.rejected_by_constraint,
        plan.rejected_by_strategy,
        plan.sets.len(),
        if names.len() == 1 { "1 file".to_string() } else { format!("{} files", names.len()) },
        names.join(", "),
        metric.name()
    );
    let param_text = |p: &Params| p.to_string();
    let pw = top
        .iter()
        .map(|r| param_text(&r.params).len())
        .max()
        .unwrap_or(6)
        .max(6)
        + 2;
    let mw = metric.name().len().max(8) + 2;
    s += &format!(
        "{:>4}  {:>mw$}  {:<pw$}{:>10}{:>10}{:>10}{:>8}{:>10}\n",
        "rank",
        metric.name(),
        "params",
        "return %",
        "sharpe",
        "max dd %",
        "trades",
        "win %"
    );
    for (i, r) in top.iter().enumerate() {
        s += &format!(
            "{:>4}  {:>mw$}  {:<pw$}{:>10}{:>10}{:>10}{:>8}{:>10}\n",
            i + 1,
            format_number(r.score),
            param_text(&r.params),
            format_number(mean_of(&r.stats, |s| s.return_pct)),
            format_number(mean_of(&r.stats, |s| s.sharpe_ratio)),
            format_number(mean_of(&r.stats, |s| s.max_drawdown_pct)),
            format_number(mean_of(&r.stats, |s| s.num_trades as f64)),
            format_number(mean_of(&r.stats, |s| s.win_rate_pct)),
        );
    }
    if let Some(w) = wf {
        s += &format!(
            "\nwalk-forward, {} fold(s): {} equal segments per file, in-sample anchored at the first bar, out-of-sample the next segment\n",
            w.folds.len(),
            w.folds.len() + 1
        );
        s += &format!(
            "{:>4}  {:<38}{:<38}{:<pw$}{:>12}{:>12}{:>10}{:>8}\n",
            "fold",
            "in-sample",
            "out-of-sample",
            "params",
            "IS metric",
            "OOS metric",
            "OOS ret %",
            "trades"
        );
        for f in &w.folds {
            let when = |spans: &[sweep::Span]| {
                spans
                    .first()
                    .map(|sp| {
                        format!(
                            "{} .. {}",
                            format_time(sp.start_ms),
                            format_time(sp.last_ms)
                        )
                    })
                    .unwrap_or_default()
            };
            s += &format!(
                "{:>4}  {:<38}{:<38}{:<pw$}{:>12}{:>12}{:>10}{:>8}\n",
                f.fold,
                when(&f.in_sample),
                when(&f.out_of_sample),
                param_text(&f.params),
                format_number(f.in_sample_metric),
                format_number(f.out_of_sample_metric),
                format_number(mean_of(&f.out_of_sample_stats, |s| s.return_pct)),
                f.out_of_sample_stats
                    .iter()
                    .map(|s| s.num_trades)
                    .sum::<usize>(),
            );
        }
        s += &format!(
            "out-of-sample: mean {} {} (in-sample {}), return {} % compounded over the folds, {} trade(s)\n",
            metric.name(),
            format_number(w.out_of_sample_metric),
            format_number(w.in_sample_metric),
            format_number(w.out_of_sample_return_pct),
            w.out_of_sample_trades
        );
        s += &if w.overfit {
            format!(
                "OVERFIT: the out-of-sample {} keeps less than {} % of the in-sample one; the best in-sample sets do not hold on unseen bars\n",
                metric.name(),
                sweep::OVERFIT_KEEP * 100.0
            )
        } else {
            format!(
                "holds out of sample: the out-of-sample {} keeps at least {} % of the in-sample one\n",
                metric.name(),
                sweep::OVERFIT_KEEP * 100.0
            )
        };
    }
    s
}
