//! Replay of recorded candles as the paper venue's price path.
//!
//! Owns: parsing a CSV with header `timestamp,open,high,low,close,volume` (timestamp as
//! integer milliseconds since the Unix epoch or as an RFC 3339 string; rows in strictly
//! increasing time), and the price and volume at any point of the looped file. Never: time
//! mapping of the clock (the market does that) or order matching.
//!
//! Inside one row the price moves linearly open → low → high → close for a rising row
//! (open → high → low → close for a falling one), one third of the row's duration each, so
//! re-aggregated candles keep the file's highs and lows. A row lasts until the next row's
//! timestamp; the last row lasts as long as the first. The whole file is held in memory
//! (48 bytes a row), capped at [`MAX_ROWS`] rows to keep the engine within its RSS budget.

use std::path::{Path, PathBuf};

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// Most rows a replay file may have (about 4.8 MB in memory).
pub const MAX_ROWS: usize = 100_000;
const HEADER: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read replay file {file}: {reason}; check the configured path (relative paths start at the working directory) and its permissions")]
    Unreadable { file: PathBuf, reason: String },
    #[error(
        "replay file {file} line {line}: {reason}; fix the row or remove the file from the config"
    )]
    Malformed {
        file: PathBuf,
        line: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Row {
    time_ms: i64,
    duration_ms: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// A parsed replay file.
#[derive(Debug)]
pub struct ReplayPath {
    rows: Vec<Row>,
    /// Length of one loop: from the first row's start to the last row's end.
    period_ms: i64,
}

impl ReplayPath {
    pub fn load(file: &Path) -> Result<Self, ReplayError> {
        let mut rows = read_timed_rows(file, &HEADER, parse_row, |r| r.time_ms)?;
        for i in 1..rows.len() {
            rows[i - 1].duration_ms = rows[i].time_ms - rows[i - 1].time_ms;
        }
        let first_duration = rows[0].duration_ms;
        if let Some(last) = rows.last_mut() {
            last.duration_ms = first_duration;
        }
        let (first, last) = (rows[0], rows[rows.len() - 1]);
        Ok(Self {
            period_ms: last.time_ms + last.duration_ms - first.time_ms,
            rows,
        })
    }

    fn row_at(&self, offset_ms: i64) -> (&Row, f64) {
        let t = self.rows[0].time_ms + offset_ms.rem_euclid(self.period_ms);
        let i = self
            .rows
            .partition_point(|r| r.time_ms <= t)
            .saturating_sub(1);
        let row = &self.rows[i];
        let frac = ((t - row.time_ms) as f64 / row.duration_ms as f64).clamp(0.0, 1.0);
        (row, frac)
    }

    /// Price at `offset_ms` after the start of the first loop (negative offsets loop too).
    pub fn price(&self, offset_ms: i64) -> f64 {
        let (row, frac) = self.row_at(offset_ms);
        let path = if row.close >= row.open {
            [row.open, row.low, row.high, row.close]
        } else {
            [row.open, row.high, row.low, row.close]
        };
        let pos = frac * 3.0;
        let seg = (pos.floor() as usize).min(2);
        let within = pos - seg as f64;
        path[seg] + (path[seg + 1] - path[seg]) * within
    }

    /// Base-unit volume traded during `span_ms` starting at `offset_ms`, prorated from the
    /// row that contains `offset_ms`.
    pub fn volume(&self, offset_ms: i64, span_ms: i64) -> f64 {
        let (row, _) = self.row_at(offset_ms);
        row.volume * span_ms as f64 / row.duration_ms as f64
    }
}

fn parse_row(record: &csv::StringRecord) -> Result<Row, String> {
    if record.len() != HEADER.len() {
        return Err(format!(
            "{} fields, expected {} ({})",
            record.len(),
            HEADER.len(),
            HEADER.join(",")
        ));
    }
    let time_ms = parse_time(&record[0])?;
    let mut values = [0f64; 5];
    for (i, value) in values.iter_mut().enumerate() {
        let field = &record[i + 1];
        let name = HEADER[i + 1];
        let d: Decimal = field
            .parse()
            .map_err(|_| format!("{name} `{field}` is not a number"))?;
        *value = d
            .to_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{name} `{field}` is out of range"))?;
    }
    let [open, high, low, close, volume] = values;
    if open <= 0.0 || high <= 0.0 || low <= 0.0 || close <= 0.0 {
        return Err("open, high, low and close must be positive prices".into());
    }
    if volume < 0.0 {
        return Err(format!("volume {volume} is negative"));
    }
    if low > open.min(close) || high < open.max(close) {
        return Err(format!(
            "low {low} / high {high} do not bound open {open} and close {close}"
        ));
    }
    Ok(Row {
        time_ms,
        duration_ms: 0,
        open,
        high,
        low,
        close,
        volume,
    })
}

/// The rows of a replay CSV: the exact `header` (any case), at most [`MAX_ROWS`] rows each
/// read by `parse`, their times (`time_of`) strictly increasing, and at least two of them
/// (a row lasts until the next). Errors name the file and the line.
pub(super) fn read_timed_rows<R>(
    file: &Path,
    header: &[&str],
    parse: impl Fn(&csv::StringRecord) -> Result<R, String>,
    time_of: impl Fn(&R) -> i64,
) -> Result<Vec<R>, ReplayError> {
    let malformed = |line: u64, reason: String| ReplayError::Malformed {
        file: file.to_path_buf(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| ReplayError::Unreadable {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })?;
    let found = reader
        .headers()
        .map_err(|e| malformed(1, e.to_string()))?
        .clone();
    let names: Vec<String> = found.iter().map(|h| h.to_ascii_lowercase()).collect();
    if names != header {
        return Err(malformed(
            1,
            format!(
                "header is `{}`, expected `{}`",
                found.iter().collect::<Vec<_>>().join(","),
                header.join(",")
            ),
        ));
    }
    let mut rows: Vec<R> = Vec::new();
    let mut last_line = 1;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(last_line + 1);
            malformed(line, e.to_string())
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(last_line + 1);
        last_line = line;
        if rows.len() == MAX_ROWS {
            return Err(malformed(
                line,
                format!("the file has more than {MAX_ROWS} rows; use coarser rows"),
            ));
        }
        let row = parse(&record).map_err(|reason| malformed(line, reason))?;
        if let Some(prev) = rows.last() {
            let (t, before) = (time_of(&row), time_of(prev));
            if t <= before {
                return Err(malformed(
                    line,
                    format!(
                        "timestamp {t} ms is not after the previous row's {before} ms; rows must be in increasing time"
                    ),
                ));
            }
        }
        rows.push(row);
    }
    if rows.len() < 2 {
        return Err(malformed(
            last_line,
            format!(
                "the file has {} data rows; at least 2 are needed to know how long a row lasts",
                rows.len()
            ),
        ));
    }
    Ok(rows)
}

pub(super) fn parse_time(field: &str) -> Result<i64, String> {
    if let Ok(ms) = field.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(field)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("timestamp `{field}` is neither integer milliseconds nor RFC 3339"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn parses_ms_and_rfc3339_and_loops() {
        let f = write(
            "timestamp,open,high,low,close,volume\n\
             0,100,130,90,120,60\n\
             1970-01-01T00:01:00Z,120,125,100,110,30\n",
        );
        let r = ReplayPath::load(f.path()).unwrap();
        assert_eq!(r.period_ms, 120_000);
        // Rising first row: open, then low at 1/3, high at 2/3, close at the end.
        assert_eq!(r.price(0), 100.0);
        assert_eq!(r.price(20_000), 90.0);
        assert_eq!(r.price(40_000), 130.0);
        assert_eq!(r.price(60_000), 120.0);
        // Falling second row visits its high first.
        assert_eq!(r.price(80_000), 125.0);
        // One loop later the same prices come back, also before the start.
        assert_eq!(r.price(120_000 + 40_000), 130.0);
        assert_eq!(r.price(-80_000), 130.0);
        assert_eq!(r.volume(10_000, 30_000), 30.0);
    }

    #[test]
    fn bad_line_is_named() {
        let f = write(
            "timestamp,open,high,low,close,volume\n\
             0,100,130,90,120,60\n\
             60000,120,125,100,110,30\n\
             120000,120,abc,100,110,30\n",
        );
        let err = ReplayPath::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("high `abc`"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
    }

    #[test]
    fn rejects_bad_header_order_and_bounds() {
        let f = write("time,open,high,low,close,volume\n0,1,1,1,1,1\n");
        let err = ReplayPath::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("header"), "{err}");

        let f = write("timestamp,open,high,low,close,volume\n60000,1,1,1,1,1\n0,1,1,1,1,1\n");
        let err = ReplayPath::load(f.path()).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("increasing"),
            "{err}"
        );

        let f = write("timestamp,open,high,low,close,volume\n0,10,11,9,12,1\n60000,1,1,1,1,1\n");
        let err = ReplayPath::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("bound"), "{err}");

        let err = ReplayPath::load(Path::new("/nonexistent/replay.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/replay.csv"), "{err}");
    }
}
