//! `orrery data fetch --venue V --symbol S --timeframe 1h --since 2024-01-01 [--until ...]
//! --out FILE`: candle history from a venue into the OHLCV CSV the backtester reads.
//!
//! Owns: the range (bars whose open time is in `[--since, --until)`, `--until` defaulting
//! to now; only closed bars are written, so the candle still forming never lands in the
//! file to be skipped later), the paging through the venue's
//! [`CandleHistory`] (Hyperliquid `candleSnapshot` 5000 per answer, Binance klines 1000),
//! the retry of a page with backoff on 429 / 5xx / timeouts (the server's `Retry-After`
//! honoured), resuming an existing file, the file itself, progress on stderr and the
//! summary line on stdout.
//!
//! Decisions:
//! - `--venue` names a venue configured under `[exchanges.venues]` (as `orrery market`
//!   does): its base URL, timeouts, weights and limiter come from the config, so the same
//!   command reads the testnet, production or a mock. Public endpoints only: no key is
//!   needed or read. A paper venue is refused: it has no history to download (its prices
//!   are a simulation, or a replay file the user already has).
//! - The file is `timestamp,open,high,low,close,volume`, epoch milliseconds, the decimal
//!   strings exactly as the venue sent them. Rows are appended a page at a time, each page
//!   one `write` of whole lines followed by `fsync`, so a kill between pages leaves a
//!   loadable file, and a kill inside a write leaves at most a partial last line.
//! - Resume: when `--out` exists, its partial last line (if any) is cut off, the rest is
//!   read with the backtester's loader, and fetching continues at the bar after its last
//!   one: never a duplicate, never a gap that the venue does not have. A file whose header
//!   is not ours, or whose bars are not on the `--timeframe` grid, is refused rather than
//!   mixed.
//! - Gaps: a missing interval between two bars is the venue's (it answered the range and
//!   left it out) and is reported in the summary, never filled.
//!
//! Never: fills gaps, rewrites rows already in the file, sends a signed request, or places
//! orders.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use orrery_actors::clock::{system_clock, Millis};
use orrery_actors::exchanges::binance::BinanceSpotVenue;
use orrery_actors::exchanges::binance_futures::open_public;
use orrery_actors::exchanges::gateway::GatewayError;
use orrery_actors::exchanges::history::CandleHistory;
use orrery_actors::exchanges::hyperliquid::HyperliquidVenue;
use orrery_actors::exchanges::{Candle, Timeframe, VenueError};
use orrery_actors::resilience::config::{BackoffConfig, ClassRetry, RateLimitedRetry, RetryConfig};
use orrery_actors::resilience::retry::BackoffKind;
use orrery_actors::resilience::{RetryError, RetryPolicy};

use crate::config::{Config, VenueConfig};

/// The header `orrery data fetch` writes (and requires of a file it resumes).
pub const HEADER: &str = "timestamp,open,high,low,close,volume";

/// How long one page may take, retries and `Retry-After` waits included.
const PAGE_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download candle history of a configured venue into an OHLCV CSV (resumable).
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    /// A venue under [exchanges.venues] of kind hyperliquid, binance or binance_futures.
    #[arg(long)]
    pub venue: String,
    #[arg(long)]
    pub symbol: String,
    /// 1m 3m 5m 15m 30m 1h 2h 4h 8h 12h 1d 1w.
    #[arg(long)]
    pub timeframe: String,
    /// First bar: a date (2024-01-01), an RFC 3339 time, or epoch milliseconds.
    #[arg(long)]
    pub since: String,
    /// Bars opening before this (same forms); default now.
    #[arg(long)]
    pub until: Option<String>,
    /// The CSV to write; an existing one is continued after its last bar.
    #[arg(long)]
    pub out: PathBuf,
}

impl DataArgs {
    pub fn config(&self) -> Option<PathBuf> {
        match &self.command {
            DataCommand::Fetch(a) => a.config.clone(),
        }
    }
}

/// Why a fetch stopped.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    UnknownVenue(GatewayError),
    #[error("venue `{venue}` is a paper venue: it has no candle history to download; fetch from a hyperliquid, binance or binance_futures venue (a paper venue replays a file you already have)")]
    Paper { venue: String },
    #[error("cannot open venue `{venue}`: {reason}")]
    Open { venue: String, reason: String },
    #[error("{file}: {reason}")]
    File { file: PathBuf, reason: String },
    #[error("fetching {symbol} from `{venue}` at {from}: {error}; the rows before it are in the file, run the same command again to continue")]
    Venue {
        venue: String,
        symbol: String,
        from: String,
        error: Box<RetryError<VenueError>>,
    },
}

impl FetchError {
    fn exit_code(&self) -> ExitCode {
        match self {
            FetchError::Usage(_)
            | FetchError::UnknownVenue(_)
            | FetchError::Paper { .. }
            | FetchError::File { .. } => ExitCode::from(2),
            FetchError::Open { .. } | FetchError::Venue { .. } => ExitCode::from(1),
        }
    }
}

/// A time argument: a date (midnight UTC), an RFC 3339 time, a datetime without offset
/// (UTC), or an integer of epoch milliseconds.
pub fn parse_time(flag: &str, s: &str) -> Result<Millis, FetchError> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err(FetchError::Usage(format!(
        "{flag} `{s}` is not a time; use a date (2024-01-01), an RFC 3339 time (2024-01-01T12:00:00Z) or epoch milliseconds"
    )))
}

/// `ms` as `YYYY-MM-DD HH:MM UTC`.
pub fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The open times to fetch: from the first grid point at or after `since`, through the
/// last bar that opens before `until` and has closed by `now`. `None` when that is empty.
pub fn bar_range(
    since: Millis,
    until: Millis,
    now: Millis,
    step: Millis,
) -> Option<(Millis, Millis)> {
    let first = since.div_euclid(step) * step + if since.rem_euclid(step) == 0 { 0 } else { step };
    // Last open time < until, and open + step <= now (closed).
    let last = (until - 1).min(now - step).div_euclid(step) * step;
    (first <= last).then_some((first, last))
}

/// Intervals the venue left out between consecutive bars: (count of gaps, bars missing).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gaps {
    pub gaps: u64,
    pub missing_bars: u64,
}

impl Gaps {
    fn between(&mut self, previous: Millis, next: Millis, step: Millis) {
        if next - previous > step {
            self.gaps += 1;
            self.missing_bars += u64::try_from((next - previous) / step - 1).unwrap_or(0);
        }
    }
}

/// What the output file held before this run.
#[derive(Debug, Default)]
pub struct Existing {
    pub rows: usize,
    pub first_ms: Option<Millis>,
    pub last_ms: Option<Millis>,
    /// Bytes of a partial last line that were cut off.
    pub cut_bytes: u64,
}

/// Opens `--out` for appending: a new file gets the header; an existing one has a partial
/// last line cut off and is read with the backtester's loader, to continue after its
/// last bar. Its header must be ours and its bars on the `step` grid.
pub fn open_out(path: &Path, step: Millis) -> Result<(File, Existing), FetchError> {
    let bad = |reason: String| FetchError::File {
        file: path.to_path_buf(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| bad(format!("cannot open for writing: {e}")))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    // Only whole lines count; a kill inside a write can leave a partial last one.
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let cut_bytes = (text.len() - whole) as u64;
    if cut_bytes > 0 {
        file.set_len(whole as u64)
            .map_err(|e| bad(format!("cannot cut its partial last line: {e}")))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| bad(format!("cannot seek: {e}")))?;
    }
    if whole == 0 {
        file.write_all(format!("{HEADER}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| bad(format!("cannot write: {e}")))?;
        return Ok((
            file,
            Existing {
                cut_bytes,
                ..Existing::default()
            },
        ));
    }
    let first_line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line);
    if first_line.trim_end_matches('\r') != HEADER {
        return Err(bad(format!(
            "exists with the header `{first_line}`, not `{HEADER}`: it was not written by `orrery data fetch`, so it is not continued; choose another --out"
        )));
    }
    if whole == first_line.len() + 1 {
        // The header alone: a run that stopped before its first page.
        return Ok((
            file,
            Existing {
                cut_bytes,
                ..Existing::default()
            },
        ));
    }
    let bars = orrery_actors::backtest::data::load_reader(
        &text[..whole],
        path,
        orrery_actors::backtest::data::DEFAULT_MAX_ROWS,
    )
    .map_err(|e| bad(format!("cannot be continued: {e}")))?;
    if let Some(off) = bars.time_ms.iter().find(|t| t.rem_euclid(step) != 0) {
        return Err(bad(format!(
            "holds a bar at {} ({off} ms), which is not on the {} ms grid of --timeframe; was it fetched with another timeframe?",
            time(*off),
            step
        )));
    }
    Ok((
        file,
        Existing {
            rows: bars.len(),
            first_ms: bars.time_ms.first().copied(),
            last_ms: bars.time_ms.last().copied(),
            cut_bytes,
        },
    ))
}

/// One CSV line per candle, the venue's decimals as sent.
pub fn csv_lines(candles: &[Candle]) -> String {
    let mut out = String::with_capacity(candles.len() * 64);
    for c in candles {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            c.open_time_ms, c.open, c.high, c.low, c.close, c.volume
        ));
    }
    out
}

/// The history reader of a configured venue (public endpoints, no key read).
fn open_history(config: &Config, venue: &str) -> Result<Arc<dyn CandleHistory>, FetchError> {
    let Some(v) = config.exchanges.venues.get(venue) else {
        return Err(FetchError::UnknownVenue(crate::operate::unknown_venue(
            config, venue,
        )));
    };
    let open_err = |reason: String| FetchError::Open {
        venue: venue.to_string(),
        reason,
    };
    match v {
        VenueConfig::Paper(_) => Err(FetchError::Paper {
            venue: venue.to_string(),
        }),
        VenueConfig::Hyperliquid(h) => {
            let no_key = |_: &str| None;
            HyperliquidVenue::open(venue, h, &no_key, system_clock())
                .map(|v| Arc::new(v) as Arc<dyn CandleHistory>)
                .map_err(|e| open_err(e.to_string()))
        }
        VenueConfig::Binance(b) => {
            // klines is a public endpoint: no key is sent, so a placeholder stands in for
            // a key the user need not have.
            let env = |var: &str| {
                orrery_actors::env::process_env(var).or_else(|| {
                    [
                        orrery_actors::exchanges::binance::API_KEY_ENV,
                        orrery_actors::exchanges::binance::API_SECRET_ENV,
                    ]
                    .contains(&var)
                    .then(|| "public-reads-only".to_string())
                })
            };
            BinanceSpotVenue::open_with_env(venue, b, system_clock(), &env)
                .map(|v| Arc::new(v) as Arc<dyn CandleHistory>)
                .map_err(|e| open_err(e.to_string()))
        }
        VenueConfig::BinanceFutures(f) => open_public(venue, f, system_clock())
            .map(|v| v as Arc<dyn CandleHistory>)
            .map_err(|e| open_err(e.to_string())),
    }
}

/// Retries of one page: 429s after their `Retry-After` (up to 2 minutes), 5xx and
/// timeouts with exponential backoff from 1 s to 30 s; bad requests and auth never.
fn page_retry() -> RetryPolicy {
    RetryPolicy::new(
        "data_fetch",
        RetryConfig {
            max_attempts: 10,
            backoff: BackoffConfig {
                kind: BackoffKind::Exponential,
                base: Duration::from_secs(1),
                multiplier: 2.0,
                cap: Duration::from_secs(30),
                jitter: 0.2,
            },
            timeout: ClassRetry { max_retries: 6 },
            unavailable: ClassRetry { max_retries: 6 },
            rate_limited: RateLimitedRetry {
                max_retries: 9,
                retry_after_cap: Duration::from_secs(120),
            },
        },
    )
}

/// The result of a fetch, for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows_before: usize,
    pub rows_added: usize,
    pub first_ms: Option<Millis>,
    pub last_ms: Option<Millis>,
    pub gaps: Gaps,
    pub pages: usize,
}

async fn fetch(config: &Config, a: &FetchArgs) -> Result<Summary, FetchError> {
    let timeframe: Timeframe = a
        .timeframe
        .parse()
        .map_err(|e: String| FetchError::Usage(format!("--timeframe: {e}")))?;
    let step = timeframe.millis();
    let since = parse_time("--since", &a.since)?;
    let now = system_clock().now_ms();
    let until = match &a.until {
        Some(u) => parse_time("--until", u)?,
        None => now,
    };
    if until <= since {
        return Err(FetchError::Usage(format!(
            "--until {} is not after --since {}; give a range that ends after it starts",
            time(until),
            time(since)
        )));
    }
    let venue = open_history(config, &a.venue)?;
    let symbol = crate::symbols::normalize(config, &a.venue, &a.symbol);
    let (mut file, existing) = open_out(&a.out, step)?;
    if existing.cut_bytes > 0 {
        eprintln!(
            "{}: cut a partial last line ({} bytes) left by an interrupted write",
            a.out.display(),
            existing.cut_bytes
        );
    }
    let mut summary = Summary {
        rows_before: existing.rows,
        first_ms: existing.first_ms,
        last_ms: existing.last_ms,
        ..Summary::default()
    };
    let Some((first, last)) = bar_range(since, until, now, step) else {
        return Ok(summary);
    };
    let mut cursor = match existing.last_ms {
        Some(l) => {
            eprintln!(
                "{}: {} rows up to {}; continuing after it",
                a.out.display(),
                existing.rows,
                time(l)
            );
            first.max(l + step)
        }
        None => first,
    };
    let retry = page_retry();
    while cursor <= last {
        let deadline = tokio::time::Instant::now() + PAGE_DEADLINE;
        let page = retry
            .run(deadline, || {
                venue.candles_between(&symbol, timeframe, cursor, last)
            })
            .await
            .map_err(|error| FetchError::Venue {
                venue: a.venue.clone(),
                symbol: symbol.clone(),
                from: time(cursor),
                error: Box::new(error),
            })?;
        // The contract keeps rows in range and increasing; a row at or before what the
        // file holds is still never written twice.
        let page: Vec<Candle> = page
            .into_iter()
            .filter(|c| summary.last_ms.is_none_or(|l| c.open_time_ms > l))
            .collect();
        let Some(newest) = page.last().map(|c| c.open_time_ms) else {
            break;
        };
        let mut previous = summary.last_ms;
        for c in &page {
            if let Some(p) = previous {
                summary.gaps.between(p, c.open_time_ms, step);
            }
            previous = Some(c.open_time_ms);
        }
        file.write_all(csv_lines(&page).as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| FetchError::File {
                file: a.out.clone(),
                reason: format!("cannot write: {e}"),
            })?;
        summary.pages += 1;
        summary.rows_added += page.len();
        summary.first_ms = summary.first_ms.or(page.first().map(|c| c.open_time_ms));
        summary.last_ms = Some(newest);
        eprintln!(
            "page {}: {} rows, up to {} ({} written)",
            summary.pages,
            page.len(),
            time(newest),
            summary.rows_added
        );
        cursor = newest + step;
    }
    Ok(summary)
}

/// Runs `orrery data ...`: 0 on success, 2 for bad arguments, an unknown or paper venue or
/// a file that cannot be continued, 1 when the venue could not be read.
pub fn run(config: Config, args: DataArgs) -> ExitCode {
    let DataCommand::Fetch(a) = args.command;
    let outcome = actix::System::new().block_on(fetch(&config, &a));
    match outcome {
        Ok(s) => {
            let range = match (s.first_ms, s.last_ms) {
                (Some(f), Some(l)) => format!("{} .. {}", time(f), time(l)),
                _ => "no bars".to_string(),
            };
            println!(
                "{}: {} rows ({} new in {} pages), {} {} {}, {}; gaps in the venue's history: {} ({} bars missing)",
                a.out.display(),
                s.rows_before + s.rows_added,
                s.rows_added,
                s.pages,
                a.venue,
                a.symbol,
                a.timeframe,
                range,
                s.gaps.gaps,
                s.gaps.missing_bars
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orrery: data fetch: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Millis = 3_600_000;

    #[test]
    fn the_range_starts_on_the_grid_and_ends_at_the_last_closed_bar_before_until() {
        // since on the grid, until far in the past of now.
        assert_eq!(bar_range(0, 10 * H, 100 * H, H), Some((0, 9 * H)));
        // since inside a bar: the next bar; until inside a bar: that bar opens before it.
        assert_eq!(bar_range(1, 10 * H + 5, 100 * H, H), Some((H, 10 * H)));
        // now inside bar 7: bar 7 is still forming, 6 is the last closed one.
        assert_eq!(bar_range(0, 10 * H, 7 * H + 10, H), Some((0, 6 * H)));
        assert_eq!(
            bar_range(5 * H, 5 * H + 1, 100 * H, H),
            Some((5 * H, 5 * H))
        );
        assert_eq!(bar_range(5 * H + 1, 6 * H, 100 * H, H), None);
    }

    #[test]
    fn times_parse_as_dates_rfc3339_and_epoch_ms() {
        assert_eq!(
            parse_time("--since", "2024-01-01").unwrap(),
            1_704_067_200_000
        );
        assert_eq!(
            parse_time("--since", "2024-01-01T01:00:00Z").unwrap(),
            1_704_070_800_000
        );
        assert_eq!(
            parse_time("--since", "2024-01-01 01:00").unwrap(),
            1_704_070_800_000
        );
        assert_eq!(
            parse_time("--since", "1704070800000").unwrap(),
            1_704_070_800_000
        );
        let e = parse_time("--until", "yesterday").unwrap_err().to_string();
        assert!(e.contains("--until `yesterday` is not a time"), "{e}");
    }

    #[test]
    fn gaps_count_intervals_and_missing_bars() {
        let mut g = Gaps::default();
        g.between(0, H, H);
        assert_eq!(g, Gaps::default());
        g.between(H, 4 * H, H);
        g.between(4 * H, 6 * H, H);
        assert_eq!(
            g,
            Gaps {
                gaps: 2,
                missing_bars: 3
            }
        );
    }

    #[test]
    fn a_partial_last_line_is_cut_and_the_file_continues_after_its_last_bar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        // 2024-01-01T00:00Z and the two hours after it.
        let t0: Millis = 1_704_067_200_000;
        std::fs::write(
            &path,
            format!(
                "{HEADER}\n{t0},1,2,0.5,1.5,10\n{},1.5,2,1,1.2,3\n{},1.2,1.",
                t0 + H,
                t0 + 2 * H
            ),
        )
        .unwrap();
        let (mut file, existing) = open_out(&path, H).unwrap();
        assert_eq!(existing.rows, 2);
        assert_eq!(existing.last_ms, Some(t0 + H));
        assert_eq!(
            existing.cut_bytes,
            format!("{},1.2,1.", t0 + 2 * H).len() as u64
        );
        file.write_all(format!("{},1.2,1.3,1.1,1.25,4\n", t0 + 2 * H).as_bytes())
            .unwrap();
        drop(file);
        let bars = orrery_actors::backtest::data::load(&path).unwrap();
        assert_eq!(bars.time_ms, vec![t0, t0 + H, t0 + 2 * H]);
    }

    #[test]
    fn a_new_file_gets_the_header_and_a_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.csv");
        let (_, existing) = open_out(&path, H).unwrap();
        assert_eq!(existing.rows, 0);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n")
        );
        // Header only: still empty, nothing written twice.
        let (_, again) = open_out(&path, H).unwrap();
        assert_eq!(again.rows, 0);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n")
        );

        let foreign = dir.path().join("goog.csv");
        std::fs::write(
            &foreign,
            ",Open,High,Low,Close,Volume\n2004-08-19,100,104,95,100,1\n",
        )
        .unwrap();
        let e = open_out(&foreign, H).unwrap_err().to_string();
        assert!(e.contains("not written by `orrery data fetch`"), "{e}");

        let off_grid = dir.path().join("m1.csv");
        std::fs::write(&off_grid, format!("{HEADER}\n1704067260000,1,1,1,1,1\n")).unwrap();
        let e = open_out(&off_grid, H).unwrap_err().to_string();
        assert!(e.contains("not on the 3600000 ms grid"), "{e}");
    }

    #[test]
    fn csv_lines_keep_the_venues_decimals() {
        let c = Candle {
            open_time_ms: 1,
            open: "0.001601".parse().unwrap(),
            high: "0.001616".parse().unwrap(),
            low: "0.001601".parse().unwrap(),
            close: "0.001604".parse().unwrap(),
            volume: "520665683.0".parse().unwrap(),
        };
        assert_eq!(
            csv_lines(&[c]),
            "1,0.001601,0.001616,0.001601,0.001604,520665683.0\n"
        );
    }
}
