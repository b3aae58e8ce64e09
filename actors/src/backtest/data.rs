//! OHLCV bars from CSV files as users have them.
//!
//! Owns: reading an OHLCV CSV into [`Bars`] (columnar, times in epoch milliseconds UTC) and
//! checking it: a header row naming the columns, rows in strictly increasing time, every
//! number finite, `high >= max(open, close)`, `low <= min(open, close)`, `volume >= 0`, at
//! most `max_rows` rows. Every error names the file, and the line (and column) where it is
//! known. Never: fetching data, resampling, filling gaps, or money arithmetic.
//!
//! Accepted shapes:
//! - Header names are matched case-insensitively after trimming: `open`, `high`, `low`,
//!   `close` are required; `volume` is optional and is 0 on every bar when the column is
//!   absent (backtesting.py's GOOG.csv / EURUSD.csv have it, many exports do not). Other
//!   columns (`Adj Close`, Binance's `close_time`, `trades`, ...) are ignored.
//! - The time column is the one named `timestamp`, `date`, `time`, `open_time` or
//!   `datetime`, or an unnamed first column (what pandas `df.to_csv()` writes for an unnamed
//!   index, and what backtesting.py ships). Exactly one time column may exist.
//! - Time values: ISO dates (`2004-08-19`, midnight), ISO datetimes with `T` or a space
//!   between date and time, seconds and fractional seconds optional (`2017-04-19 09:00`,
//!   `2021-01-01T00:00:00.250`), with a `Z`, `±HH:MM`, `±HHMM` or `±HH` offset or none. A
//!   datetime without an offset is taken as UTC. Digits past milliseconds are truncated.
//! - Or integers since the Unix epoch, the unit decided by magnitude: below 10^11 seconds
//!   (10^11 s is the year 5138; 10^11 ms would be March 1973, older than any market data
//!   this engine trades), below 10^14 milliseconds, below 10^17 microseconds (Binance spot
//!   klines can be in µs), else nanoseconds. The first row fixes the unit; a later row of a
//!   different magnitude is an error rather than a silent factor-of-1000 jump.
//!
//! Bars are `f64`, not `Decimal`: a backtest reads each bar many times per parameter set and
//! sweeps run thousands of sets, and `f64` arithmetic is an order of magnitude faster and
//! vectorises; no money is moved by a backtest, so `Decimal`'s exactness buys nothing here.
//! Money stays `Decimal` wherever an order or the ledger is involved. Columns are separate
//! `Vec`s so an indicator over closes walks contiguous memory (48 bytes a bar in total).
//!
//! A file is read whole into memory (about 60 bytes a row, freed when the bars are built).
//! Files with no quote and no bare `\r` (what exchanges and pandas write) are split by the
//! plain reader (`memchr` for line ends and commas); any other file goes through the `csv`
//! crate. Both parse fields in place and share one row-to-bar step, so a row costs no
//! allocation once the vectors have grown, and both give the same bars and errors. Line
//! numbers in errors are the lines an editor shows (empty lines counted).
//!
//! The plain reader splits a file of 1 MiB or more into runs of whole lines and parses them
//! on the rayon pool, then joins them in order, checking what no run can see alone (times
//! increasing across a join, one epoch unit, the row cap). A file with any error is read
//! again in one pass, so the error reported is the first in the file with its true line.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rust_decimal::prelude::ToPrimitive;

use crate::exchanges::Candle;

/// Default cap on rows per file: 2 000 000 bars are 96 MB in memory (about 3.8 years of
/// one-minute bars). Callers with more memory pass their own cap to [`load_reader`].
pub const DEFAULT_MAX_ROWS: usize = 2_000_000;

/// Names the time column may have (compared lowercase); an unnamed first column also counts.
pub const TIME_COLUMN_NAMES: [&str; 5] = ["timestamp", "date", "time", "open_time", "datetime"];

/// Historical bars, column by column; index `i` of every vector is bar `i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    /// Bar open time, milliseconds since the Unix epoch (UTC), strictly increasing.
    pub time_ms: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    /// Base-unit volume; all zeros when the file had no volume column.
    pub volume: Vec<f64>,
}

impl Bars {
    pub fn len(&self) -> usize {
        self.time_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time_ms.is_empty()
    }

    /// Bars from venue candles (e.g. live klines), so strategy code written against
    /// [`Bars`] runs on live data too. A `Decimal` too large for `f64` (beyond 1e308, which no
    /// price reaches) would become NaN; `Decimal`'s range ends at 7.9e28, so it cannot.
    pub fn from_candles(candles: &[Candle]) -> Self {
        let f = |d: rust_decimal::Decimal| d.to_f64().unwrap_or(f64::NAN);
        let mut bars = Bars::with_capacity(candles.len());
        for c in candles {
            bars.time_ms.push(c.open_time_ms);
            bars.open.push(f(c.open));
            bars.high.push(f(c.high));
            bars.low.push(f(c.low));
            bars.close.push(f(c.close));
            bars.volume.push(f(c.volume));
        }
        bars
    }

    fn with_capacity(n: usize) -> Self {
        Bars {
            time_ms: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        }
    }
}

/// Unit of integer epoch timestamps, decided by magnitude (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    fn of(v: i64) -> Self {
        match v.unsigned_abs() {
            a if a < 100_000_000_000 => EpochUnit::Seconds,
            a if a < 100_000_000_000_000 => EpochUnit::Millis,
            a if a < 100_000_000_000_000_000 => EpochUnit::Micros,
            _ => EpochUnit::Nanos,
        }
    }

    fn to_ms(self, v: i64) -> Option<i64> {
        match self {
            EpochUnit::Seconds => v.checked_mul(1000),
            EpochUnit::Millis => Some(v),
            EpochUnit::Micros => Some(v.div_euclid(1000)),
            EpochUnit::Nanos => Some(v.div_euclid(1_000_000)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read bar file {file}: {reason}; check the path and its permissions")]
    Unreadable { file: PathBuf, reason: String },
    #[error("bar file {file} line 1 (header): {reason}; the header must name open, high, low, close (any case), optionally volume, and one time column ({}) or leave the first column unnamed", TIME_COLUMN_NAMES.join("/"))]
    Header { file: PathBuf, reason: String },
    #[error("bar file {file} line {line}: {reason}")]
    Malformed {
        file: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("bar file {file} line {line} column `{column}`: `{value}` is not a finite number")]
    BadNumber {
        file: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("bar file {file} line {line} column `{column}`: time `{value}` {reason}")]
    BadTime {
        file: PathBuf,
        line: u64,
        column: String,
        value: String,
        reason: String,
    },
    #[error("bar file {file} line {line}: time {time_ms} ms is not after the previous row's {previous_ms} ms; rows must be in strictly increasing time (no duplicates, sort the file)")]
    NotIncreasing {
        file: PathBuf,
        line: u64,
        time_ms: i64,
        previous_ms: i64,
    },
    #[error("bar file {file} line {line}: low {low} / high {high} do not bound open {open} and close {close}")]
    HighLow {
        file: PathBuf,
        line: u64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
    },
    #[error("bar file {file} line {line}: volume {volume} is negative")]
    NegativeVolume {
        file: PathBuf,
        line: u64,
        volume: f64,
    },
    #[error("bar file {file} line {line}: more than {max} rows; split the file or load it with a higher cap")]
    TooManyRows {
        file: PathBuf,
        line: u64,
        max: usize,
    },
    #[error("bar file {file} has a header but no data rows")]
    NoRows { file: PathBuf },
}

/// Loads `file` with [`DEFAULT_MAX_ROWS`].
pub fn load(file: &Path) -> Result<Bars, DataError> {
    load_with_cap(file, DEFAULT_MAX_ROWS)
}

/// Loads `file`, refusing more than `max_rows` data rows.
pub fn load_with_cap(file: &Path, max_rows: usize) -> Result<Bars, DataError> {
    let bytes = std::fs::read(file).map_err(|e| DataError::Unreadable {
        file: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    load_bytes(&bytes, file, max_rows)
}

/// Column positions found in the header.
#[derive(Clone)]
struct Columns {
    time: usize,
    ohlc: [usize; 4],
    volume: Option<usize>,
    /// Header cells as written, for error messages.
    names: Vec<String>,
}

fn columns(headers: &csv::ByteRecord, file: &Path) -> Result<Columns, DataError> {
    let header_err = |reason: String| DataError::Header {
        file: file.to_path_buf(),
        reason,
    };
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let mut time = None;
    let mut ohlcv: [Option<usize>; 5] = [None; 5];
    const OHLCV: [&str; 5] = ["open", "high", "low", "close", "volume"];
    for (i, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let is_time = (i == 0 && lower.is_empty()) || TIME_COLUMN_NAMES.contains(&lower.as_str());
        if is_time {
            if let Some(prev) = time {
                return Err(header_err(format!(
                    "two time columns, `{}` (column {}) and `{name}` (column {})",
                    names[prev],
                    prev + 1,
                    i + 1
                )));
            }
            time = Some(i);
        } else if let Some(k) = OHLCV.iter().position(|c| *c == lower) {
            if let Some(prev) = ohlcv[k] {
                return Err(header_err(format!(
                    "column `{}` appears twice (columns {} and {})",
                    OHLCV[k],
                    prev + 1,
                    i + 1
                )));
            }
            ohlcv[k] = Some(i);
        }
    }
    let time =
        time.ok_or_else(|| header_err(format!("no time column in `{}`", names.join(","))))?;
    let mut ohlc = [0; 4];
    for k in 0..4 {
        ohlc[k] = ohlcv[k].ok_or_else(|| {
            header_err(format!("no `{}` column in `{}`", OHLCV[k], names.join(",")))
        })?;
    }
    Ok(Columns {
        time,
        ohlc,
        volume: ohlcv[4],
        names,
    })
}

/// Loads bars from any reader; `file` is only the name errors carry.
pub fn load_reader<R: Read>(
    mut reader: R,
    file: &Path,
    max_rows: usize,
) -> Result<Bars, DataError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::Unreadable {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })?;
    load_bytes(&bytes, file, max_rows)
}

/// Loads bars from a whole file's bytes: the plain reader when the bytes allow it, else
/// the `csv` crate's reader. Both give the same bars and the same errors (a property test
/// holds them to it).
pub fn load_bytes(bytes: &[u8], file: &Path, max_rows: usize) -> Result<Bars, DataError> {
    if is_plain(bytes) {
        read_plain(bytes, file, max_rows)
    } else {
        read_bars(bytes, file, max_rows, Some(bytes.len() as u64))
    }
}

/// Whether every line ends in `\n` or `\r\n` and no field is quoted: then a row is the
/// bytes up to the next newline and its fields are what lies between commas, and the
/// plain reader may split it itself.
fn is_plain(bytes: &[u8]) -> bool {
    memchr::memchr(b'"', bytes).is_none()
        && memchr::memchr_iter(b'\r', bytes).all(|i| bytes.get(i + 1) == Some(&b'\n'))
}

/// The plain reader: rows found with `memchr` and split at commas in place.
///
/// Why not only the `csv` crate: on the 1M-row bench its state machine was about half of a
/// load (3.8-4.4 M rows/s in all, under the 5 M rows/s target). Files as exchanges and
/// pandas write them have no quotes, so their rows can be split directly; anything with a
/// quote or a bare `\r` still goes through `csv`. The header line is always read by `csv`,
/// so both readers see the same column names.
fn read_plain(bytes: &[u8], file: &Path, max_rows: usize) -> Result<Bars, DataError> {
    let header_end = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |i| i + 1);
    let headers = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&bytes[..header_end])
        .byte_headers()
        .map_err(|e| DataError::Malformed {
            file: file.to_path_buf(),
            line: 1,
            reason: e.to_string(),
        })?
        .clone();
    let cols = header_columns(&headers, file)?;
    let body = &bytes[header_end..];
    let chunks = line_chunks(body, rayon::current_num_threads() * 2);
    if chunks.len() > 1 {
        let parts: Result<Vec<PlainPart>, DataError> = chunks
            .par_iter()
            .map(|range| plain_rows(&body[range.clone()], 1, file, cols.clone(), max_rows))
            .collect();
        if let Some(bars) = parts.ok().and_then(|parts| join_parts(parts, max_rows)) {
            return Ok(bars);
        }
        // Something in the file is wrong. Its first error, with the right line, is what
        // one pass from the top finds; errors are rare, so the second pass costs nothing
        // that matters and the chunks never need to know their line numbers.
    }
    plain_rows(body, 1, file, cols, max_rows)?.into_bars(file)
}

/// Files below this many bytes (about 16 000 rows) are parsed on one thread: the pool's
/// hand-off and the join's copy cost more than they save.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// `body` cut into about `n` byte ranges that each end just after a `\n` (the last at the
/// end of `body`), or one range when `body` is small.
fn line_chunks(body: &[u8], n: usize) -> Vec<std::ops::Range<usize>> {
    if body.len() < PARALLEL_MIN_BYTES || n < 2 {
        // One range (the whole body), not a vector of its indices.
        return std::iter::once(0..body.len()).collect();
    }
    let step = body.len() / n;
    let mut ranges = Vec::with_capacity(n);
    let mut start = 0;
    while start < body.len() {
        let target = (start + step).min(body.len());
        let end = match memchr::memchr(b'\n', &body[target..]) {
            Some(i) if target < body.len() => target + i + 1,
            _ => body.len(),
        };
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// The bars of one run of whole lines, and the epoch unit its first integer time fixed.
struct PlainPart {
    bars: Bars,
    epoch_unit: Option<EpochUnit>,
}

impl PlainPart {
    fn into_bars(self, file: &Path) -> Result<Bars, DataError> {
        if self.bars.is_empty() {
            return Err(DataError::NoRows {
                file: file.to_path_buf(),
            });
        }
        Ok(self.bars)
    }
}

/// Chunks in file order into one [`Bars`], or `None` when the joins break a rule a chunk
/// could not see alone: times increasing across a join, one epoch unit per file, the row
/// cap, at least one row. The caller then re-reads the file in one pass for the exact error.
fn join_parts(parts: Vec<PlainPart>, max_rows: usize) -> Option<Bars> {
    let total: usize = parts.iter().map(|p| p.bars.len()).sum();
    if total == 0 || total > max_rows {
        return None;
    }
    let mut units = parts.iter().filter_map(|p| p.epoch_unit);
    let first_unit = units.next();
    if units.any(|u| Some(u) != first_unit) {
        return None;
    }
    let mut bars = Bars::with_capacity(total);
    for part in parts {
        if let (Some(last), Some(first)) = (bars.time_ms.last(), part.bars.time_ms.first()) {
            if first <= last {
                return None;
            }
        }
        bars.time_ms.extend_from_slice(&part.bars.time_ms);
        bars.open.extend_from_slice(&part.bars.open);
        bars.high.extend_from_slice(&part.bars.high);
        bars.low.extend_from_slice(&part.bars.low);
        bars.close.extend_from_slice(&part.bars.close);
        bars.volume.extend_from_slice(&part.bars.volume);
    }
    Some(bars)
}

/// Rows of `body` (whole lines, no header); `header_line` is the line number just before
/// `body`'s first line. Rows are found with `memchr` and split at commas in place.
fn plain_rows(
    body: &[u8],
    header_line: u64,
    file: &Path,
    cols: Columns,
    max_rows: usize,
) -> Result<PlainPart, DataError> {
    let fields = cols.names.len();
    let mut sink = RowSink::new(file, cols, max_rows, Some(body.len() as u64));
    // Start offset of each field of the current row, reused row to row.
    let mut starts: Vec<usize> = Vec::with_capacity(fields);
    let mut line = header_line;
    let mut pos = 0;
    while pos < body.len() {
        line += 1;
        let end = memchr::memchr(b'\n', &body[pos..]).map_or(body.len(), |i| pos + i);
        let row = &body[pos..end];
        pos = end + 1;
        let row = row.strip_suffix(b"\r").unwrap_or(row);
        if row.is_empty() {
            // `csv` skips empty lines too.
            continue;
        }
        starts.clear();
        starts.push(0);
        starts.extend(memchr::memchr_iter(b',', row).map(|i| i + 1));
        if starts.len() != fields {
            return Err(DataError::Malformed {
                file: file.to_path_buf(),
                line,
                reason: format!(
                    "found a row with {} fields, but the header has {fields}",
                    starts.len()
                ),
            });
        }
        sink.push(line, row.len() + 1, |i| {
            let end = starts.get(i + 1).map_or(row.len(), |next| next - 1);
            &row[starts[i]..end]
        })?;
    }
    Ok(PlainPart {
        epoch_unit: sink.epoch_unit,
        bars: sink.bars,
    })
}

/// The `csv` crate's reader, for files the plain reader does not take (quoted fields,
/// bare `\r` line ends).
fn read_bars<R: Read>(
    reader: R,
    file: &Path,
    max_rows: usize,
    size_bytes: Option<u64>,
) -> Result<Bars, DataError> {
    let malformed = |line: u64, reason: String| DataError::Malformed {
        file: file.to_path_buf(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let headers = reader
        .byte_headers()
        .map_err(|e| malformed(1, e.to_string()))?
        .clone();
    let cols = header_columns(&headers, file)?;
    let mut sink = RowSink::new(file, cols, max_rows, size_bytes);
    let mut record = csv::ByteRecord::new();
    let mut line = 1;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let at = e.position().map(|p| p.line()).unwrap_or(line + 1);
                return Err(malformed(at, e.to_string()));
            }
        }
        // The reader sets the position of every record it reads; the fallback only keeps
        // numbering sensible if that ever changed.
        line = record.position().map(|p| p.line()).unwrap_or(line + 1);
        // Field counts equal the header's (the reader is not `flexible`), so indexing holds.
        let row_len = record.as_slice().len() + record.len();
        sink.push(line, row_len, |i| &record[i])?;
    }
    sink.finish()
}

/// The header's columns, or why the header is unusable.
fn header_columns(headers: &csv::ByteRecord, file: &Path) -> Result<Columns, DataError> {
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(DataError::Header {
            file: file.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    columns(headers, file)
}

/// Turns rows into bars and checks them; both readers feed it, so a row means the same
/// bar, or the same error, whichever reader split it.
struct RowSink<'a> {
    file: &'a Path,
    cols: Columns,
    max_rows: usize,
    /// When known, lets the vectors be sized once from the first row's length instead of
    /// doubling (growth copies were about a tenth of a load).
    size_bytes: Option<u64>,
    epoch_unit: Option<EpochUnit>,
    bars: Bars,
}

impl<'a> RowSink<'a> {
    fn new(file: &'a Path, cols: Columns, max_rows: usize, size_bytes: Option<u64>) -> Self {
        Self {
            file,
            cols,
            max_rows,
            size_bytes,
            epoch_unit: None,
            bars: Bars::default(),
        }
    }

    /// One data row at `line`, `row_len` bytes long with its line end; `field(i)` is its
    /// `i`-th cell (every index below the header's width is valid).
    fn push<'r>(
        &mut self,
        line: u64,
        row_len: usize,
        field: impl Fn(usize) -> &'r [u8],
    ) -> Result<(), DataError> {
        let file = self.file;
        let cols = &self.cols;
        let bars = &mut self.bars;
        if bars.len() == self.max_rows {
            return Err(DataError::TooManyRows {
                file: file.to_path_buf(),
                line,
                max: self.max_rows,
            });
        }
        if let (true, Some(size)) = (bars.is_empty(), self.size_bytes) {
            // Row lengths vary a little; 10 % headroom avoids one last doubling.
            let estimate = (size / row_len.max(1) as u64) as usize;
            *bars = Bars::with_capacity((estimate + estimate / 10 + 1).min(self.max_rows));
        }
        let raw_time = trim(field(cols.time));
        let time_ms =
            parse_time(raw_time, &mut self.epoch_unit).map_err(|reason| DataError::BadTime {
                file: file.to_path_buf(),
                line,
                column: cols.names[cols.time].clone(),
                value: String::from_utf8_lossy(raw_time).into_owned(),
                reason,
            })?;
        let number = |i: usize| -> Result<f64, DataError> {
            let raw = trim(field(i));
            parse_f64(raw)
                .filter(|v| v.is_finite())
                .ok_or_else(|| DataError::BadNumber {
                    file: file.to_path_buf(),
                    line,
                    column: cols.names[i].clone(),
                    value: String::from_utf8_lossy(raw).into_owned(),
                })
        };
        let open = number(cols.ohlc[0])?;
        let high = number(cols.ohlc[1])?;
        let low = number(cols.ohlc[2])?;
        let close = number(cols.ohlc[3])?;
        let volume = match cols.volume {
            Some(i) => number(i)?,
            None => 0.0,
        };
        if let Some(&previous_ms) = bars.time_ms.last() {
            if time_ms <= previous_ms {
                return Err(DataError::NotIncreasing {
                    file: file.to_path_buf(),
                    line,
                    time_ms,
                    previous_ms,
                });
            }
        }
        if high < open.max(close) || low > open.min(close) {
            return Err(DataError::HighLow {
                file: file.to_path_buf(),
                line,
                open,
                high,
                low,
                close,
            });
        }
        if volume < 0.0 {
            return Err(DataError::NegativeVolume {
                file: file.to_path_buf(),
                line,
                volume,
            });
        }
        bars.time_ms.push(time_ms);
        bars.open.push(open);
        bars.high.push(high);
        bars.low.push(low);
        bars.close.push(close);
        bars.volume.push(volume);
        Ok(())
    }

    fn finish(self) -> Result<Bars, DataError> {
        if self.bars.is_empty() {
            return Err(DataError::NoRows {
                file: self.file.to_path_buf(),
            });
        }
        Ok(self.bars)
    }
}

/// Exact powers of ten as `f64` (every one up to 1e22 is representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal number to the nearest `f64`, identical to `str::parse::<f64>`.
///
/// Float parsing was the largest cost of a load (about 40 % with `from_utf8` + `str::parse`),
/// so plain decimals (`[-+]digits[.digits]`, at most 15 digits — every price and volume in
/// exchange exports) take Clinger's fast path: the digits as an integer below 2^53 and a
/// power of ten up to 10^15 are both exact `f64`s, so one IEEE division is correctly
/// rounded, the same result the standard parser gives. Anything else (exponents, longer
/// digit strings, `NaN`) goes to the standard parser.
fn parse_f64(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let standard = || std::str::from_utf8(b).ok()?.parse().ok();
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    let count = int.len() + frac.len();
    if count == 0 || count > 15 {
        // Nothing but a sign or a dot (no number), or too many digits for the fast path.
        return if count == 0 { None } else { standard() };
    }
    let mut mantissa: u64 = 0;
    for part in [int, frac] {
        for &c in part {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                // An exponent, a second dot, `inf`, `NaN`, ...
                return standard();
            }
            mantissa = mantissa * 10 + u64::from(d);
        }
    }
    // count <= 15 bounds both: mantissa < 10^15 < 2^53 and the fraction's length <= 15.
    let v = mantissa as f64 / POW10[frac.len()];
    Some(if negative { -v } else { v })
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// One time value to epoch milliseconds; `unit` is the epoch unit fixed by the first
/// integer value of the file.
fn parse_time(b: &[u8], unit: &mut Option<EpochUnit>) -> Result<i64, String> {
    if b.is_empty() {
        return Err("is empty".into());
    }
    let (negative, digits) = match b.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, b),
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        // Digits checked above; accumulated negative so i64::MIN parses, as `str::parse`.
        let v = digits
            .iter()
            .try_fold(0i64, |acc, d| {
                acc.checked_mul(10)?.checked_sub(i64::from(d - b'0'))
            })
            .and_then(|v| if negative { Some(v) } else { v.checked_neg() })
            .ok_or("is out of range")?;
        let this = EpochUnit::of(v);
        let fixed = *unit.get_or_insert(this);
        if fixed != this {
            return Err(format!(
                "looks like epoch {this:?} by its magnitude while the first row's time was epoch {fixed:?}; one file must use one unit"
            ));
        }
        return this.to_ms(v).ok_or_else(|| "is out of range".into());
    }
    parse_iso(b).ok_or_else(|| {
        "is neither an ISO date/datetime (2004-08-19, 2004-08-19 09:30:00, 2004-08-19T09:30:00Z, ...+02:00) nor integer epoch seconds/milliseconds".into()
    })
}

/// Fixed-width decimal number at `b[at..at + n]`.
fn num(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fff…]]][Z|±HH[:MM]|±HHMM]`, naive = UTC. Hand-parsed because
/// chrono's format-string parser is the slowest step of a load otherwise; chrono still does
/// the calendar (validating the date and counting days).
fn parse_iso(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(b, 0, 4)? as i32, num(b, 5, 2)?, num(b, 8, 2)?)?;
    let days = date
        .signed_duration_since(chrono::NaiveDate::default())
        .num_days();
    let mut ms = days * 86_400_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    rest = &rest[1..];
    let (h, m) = (num(rest, 0, 2)?, num(rest, 3, 2)?);
    if rest[2] != b':' || h > 23 || m > 59 {
        return None;
    }
    ms += i64::from(h * 3_600_000 + m * 60_000);
    rest = &rest[5..];
    if rest.first() == Some(&b':') {
        let s = num(rest, 1, 2)?;
        if s > 59 {
            return None;
        }
        ms += i64::from(s * 1000);
        rest = &rest[3..];
        if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
            let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if frac_len == 0 {
                return None;
            }
            let mut frac = 0;
            for k in 0..3 {
                frac = frac * 10
                    + if k < frac_len {
                        i64::from(rest[1 + k] - b'0')
                    } else {
                        0
                    };
            }
            ms += frac;
            rest = &rest[1 + frac_len..];
        }
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(ms),
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (oh, om) = match tz.len() {
                2 => (num(tz, 0, 2)?, 0),
                4 => (num(tz, 0, 2)?, num(tz, 2, 2)?),
                5 if tz[2] == b':' => (num(tz, 0, 2)?, num(tz, 3, 2)?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = i64::from(oh * 3_600_000 + om * 60_000);
            // Local time = UTC + offset, so UTC = local − offset.
            Some(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn load_str(csv: &str) -> Result<Bars, DataError> {
        load_reader(csv.as_bytes(), Path::new("bars.csv"), DEFAULT_MAX_ROWS)
    }

    /// 2004-08-19T00:00:00Z in ms.
    const GOOG_DAY1: i64 = 1_092_873_600_000;
    const DAY: i64 = 86_400_000;

    #[test]
    fn goog_style_unnamed_first_column_with_dates() {
        // The first lines of backtesting.py's GOOG.csv.
        let bars = load_str(
            ",Open,High,Low,Close,Volume\n\
             2004-08-19,100.0,104.06,95.96,100.34,22351900\n\
             2004-08-20,101.01,109.08,100.5,108.31,11428600\n",
        )
        .unwrap();
        assert_eq!(bars.time_ms, vec![GOOG_DAY1, GOOG_DAY1 + DAY]);
        assert_eq!(bars.open, vec![100.0, 101.01]);
        assert_eq!(bars.high, vec![104.06, 109.08]);
        assert_eq!(bars.low, vec![95.96, 100.5]);
        assert_eq!(bars.close, vec![100.34, 108.31]);
        assert_eq!(bars.volume, vec![22_351_900.0, 11_428_600.0]);
    }

    #[test]
    fn pandas_datetime_index_naive_t_zulu_and_offsets() {
        // EURUSD.csv style (naive, space) plus the other ISO spellings; all the same instant
        // grid an hour apart once offsets are applied, and naive is UTC.
        let bars = load_str(
            ",Open,High,Low,Close,Volume\n\
             2017-04-19 09:00:00,1.0713,1.0716,1.0709,1.0711,1413\n\
             2017-04-19T10:00:00Z,1.0711,1.0716,1.0706,1.0709,1241\n\
             2017-04-19 12:00:00+01:00,1.0709,1.0710,1.0700,1.0705,1000\n\
             2017-04-19T07:00:00-0500,1.0705,1.0709,1.0701,1.0708,900\n\
             2017-04-19 13:00:00.250,1.0708,1.0711,1.0704,1.0710,800\n\
             2017-04-19 14:00,1.0710,1.0712,1.0706,1.0707,700\n",
        )
        .unwrap();
        let nine = 1_492_592_400_000; // 2017-04-19T09:00:00Z
        let h = 3_600_000;
        assert_eq!(
            bars.time_ms,
            vec![
                nine,
                nine + h,
                nine + 2 * h,
                nine + 3 * h,
                nine + 4 * h + 250,
                nine + 5 * h
            ]
        );
    }

    #[test]
    fn named_datetime_index_column() {
        let bars = load_str(
            "Datetime,Open,High,Low,Close,Volume\n2021-01-01 00:00:00+00:00,1,2,0.5,1.5,3\n",
        )
        .unwrap();
        assert_eq!(bars.time_ms, vec![1_609_459_200_000]);
    }

    proptest::proptest! {
        /// The integer time path reads what `str::parse::<i64>` reads, overflow included.
        #[test]
        fn integer_times_parse_as_the_standard_parser(v in proptest::num::i64::ANY, wide in proptest::bool::ANY) {
            let text = if wide { format!("{v}0") } else { v.to_string() };
            let mut unit = None;
            let ours = parse_time(text.as_bytes(), &mut unit);
            match text.parse::<i64>() {
                Ok(n) => {
                    let expected = EpochUnit::of(n).to_ms(n);
                    match expected {
                        Some(ms) => proptest::prop_assert_eq!(ours, Ok(ms)),
                        None => proptest::prop_assert!(ours.is_err()),
                    }
                }
                Err(_) => proptest::prop_assert_eq!(ours, Err("is out of range".to_string())),
            }
        }
    }

    #[test]
    fn epoch_seconds() {
        let bars = load_str("timestamp,open,high,low,close,volume\n1609459200,1,2,0.5,1.5,3\n1609459260,1,2,0.5,1.5,3\n").unwrap();
        assert_eq!(bars.time_ms, vec![1_609_459_200_000, 1_609_459_260_000]);
    }

    #[test]
    fn epoch_milliseconds_and_microseconds() {
        let ms = load_str(
            "time,open,high,low,close\n1609459200000,1,2,0.5,1.5\n1609459260000,1,2,0.5,1.5\n",
        )
        .unwrap();
        assert_eq!(ms.time_ms, vec![1_609_459_200_000, 1_609_459_260_000]);
        let us = load_str("time,open,high,low,close\n1609459200000000,1,2,0.5,1.5\n").unwrap();
        assert_eq!(us.time_ms, vec![1_609_459_200_000]);
    }

    #[test]
    fn binance_open_time_with_extra_columns() {
        let bars = load_str(
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
             1609459200000,28923.63,29031.34,28690.17,28995.13,2311.811445,1609462799999,66768830.34,58389,1215.1,35103.4,0\n",
        )
        .unwrap();
        assert_eq!(bars.time_ms, vec![1_609_459_200_000]);
        assert_eq!(bars.close, vec![28995.13]);
        assert_eq!(bars.volume, vec![2311.811445]);
    }

    #[test]
    fn mixed_case_headers_padding_and_column_order() {
        let bars =
            load_str(" CLOSE , date ,oPeN,HIGH,Low,VoLuMe\n 1.5 , 2004-08-19 , 1 , 2 , 0.5 , 7 \n")
                .unwrap();
        assert_eq!(bars.time_ms, vec![GOOG_DAY1]);
        assert_eq!(
            (
                bars.open[0],
                bars.high[0],
                bars.low[0],
                bars.close[0],
                bars.volume[0]
            ),
            (1.0, 2.0, 0.5, 1.5, 7.0)
        );
    }

    #[test]
    fn no_volume_column_gives_zero_volume() {
        let bars =
            load_str("Date,Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n2004-08-20,1,2,0.5,1.5\n")
                .unwrap();
        assert_eq!(bars.volume, vec![0.0, 0.0]);
    }

    #[test]
    fn loads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goog.csv");
        std::fs::write(&path, ",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n").unwrap();
        assert_eq!(load(&path).unwrap().time_ms, vec![GOOG_DAY1]);
        let missing = dir.path().join("missing.csv");
        assert!(
            matches!(load(&missing), Err(DataError::Unreadable { file, .. }) if file == missing)
        );
    }

    #[test]
    fn header_errors() {
        for (csv, wants) in [
            (
                "Date,Open,High,Low\n2004-08-19,1,2,0.5\n",
                "no `close` column",
            ),
            ("Open,High,Low,Close\n1,2,0.5,1.5\n", "no time column"),
            ("Date,Time,Open,High,Low,Close\n", "two time columns"),
            ("Date,Open,High,Low,Close,close\n", "appears twice"),
            ("", "empty"),
        ] {
            match load_str(csv) {
                Err(DataError::Header { reason, .. }) => {
                    assert!(reason.contains(wants), "{csv:?}: {reason}")
                }
                other => panic!("{csv:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_rows_is_an_error() {
        assert!(matches!(
            load_str("Date,Open,High,Low,Close\n"),
            Err(DataError::NoRows { .. })
        ));
    }

    #[test]
    fn bad_number_names_line_and_column() {
        for bad in ["abc", "", "NaN", "inf"] {
            let csv = format!(
                ",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n2004-08-20,1,{bad},0.5,1.5\n"
            );
            match load_str(&csv) {
                Err(DataError::BadNumber {
                    line,
                    column,
                    value,
                    ..
                }) => {
                    assert_eq!((line, column.as_str(), value.as_str()), (3, "High", bad));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_time_names_line() {
        for bad in [
            "2004-13-01",
            "2004-02-30",
            "19/08/2004",
            "2004-08-19 25:00",
            "2004-08-19T10:00:00+5",
            "",
            "12.5",
        ] {
            let csv =
                format!("date,open,high,low,close\n2004-08-18,1,2,0.5,1.5\n{bad},1,2,0.5,1.5\n");
            match load_str(&csv) {
                Err(DataError::BadTime {
                    line,
                    column,
                    value,
                    ..
                }) => {
                    assert_eq!((line, column.as_str(), value.as_str()), (3, "date", bad));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn epoch_unit_change_is_an_error() {
        let err = load_str(
            "time,open,high,low,close\n1609459200000,1,2,0.5,1.5\n1609459260,1,2,0.5,1.5\n",
        )
        .unwrap_err();
        assert!(
            matches!(err, DataError::BadTime { line: 3, ref reason, .. } if reason.contains("Seconds")),
            "{err}"
        );
    }

    #[test]
    fn duplicate_and_disordered_times_name_the_line() {
        let dup = load_str(",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n2004-08-20,1,2,0.5,1.5\n2004-08-20,1,2,0.5,1.5\n").unwrap_err();
        assert!(
            matches!(dup, DataError::NotIncreasing { line: 4, time_ms, previous_ms, .. } if time_ms == previous_ms),
            "{dup}"
        );
        let back =
            load_str(",Open,High,Low,Close\n2004-08-20,1,2,0.5,1.5\n2004-08-19,1,2,0.5,1.5\n")
                .unwrap_err();
        assert!(
            matches!(
                back,
                DataError::NotIncreasing {
                    line: 3,
                    time_ms: GOOG_DAY1,
                    ..
                }
            ),
            "{back}"
        );
    }

    #[test]
    fn high_and_low_must_bound_open_and_close() {
        for (row, line) in [
            ("1,1.4,0.5,1.5", 2),    // high below close
            ("1.6,1.55,0.5,1.5", 2), // high below open
            ("1,2,1.2,1.5", 2),      // low above open
            ("2,3,1.8,1.5", 2),      // low above close
        ] {
            let err = load_str(&format!(",Open,High,Low,Close\n2004-08-19,{row}\n")).unwrap_err();
            assert!(
                matches!(err, DataError::HighLow { line: l, .. } if l == line),
                "{row}: {err}"
            );
        }
    }

    #[test]
    fn negative_volume_is_an_error() {
        let err = load_str(",Open,High,Low,Close,Volume\n2004-08-19,1,2,0.5,1.5,-1\n").unwrap_err();
        assert!(
            matches!(err, DataError::NegativeVolume { line: 2, .. }),
            "{err}"
        );
    }

    /// Both readers on the same bytes: same bars, or errors of the same kind at the same line.
    fn both_readers(text: &str) -> (Result<Bars, DataError>, Result<Bars, DataError>) {
        let file = Path::new("bars.csv");
        (
            read_plain(text.as_bytes(), file, DEFAULT_MAX_ROWS),
            read_bars(text.as_bytes(), file, DEFAULT_MAX_ROWS, None),
        )
    }

    /// Line numbers are compared only on files of `\n` lines with no empty line: the `csv`
    /// crate's record positions do not count empty lines and count `\r\n` lines short, while
    /// the plain reader (which reads all such files) names the line an editor shows.
    fn same_outcome(text: &str) {
        let (plain, csv) = both_readers(text);
        let crlf = text.contains("\r\n") || text.contains("\n\n");
        match (&plain, &csv) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
            (Err(a), Err(b)) => {
                assert_eq!(
                    std::mem::discriminant(a),
                    std::mem::discriminant(b),
                    "{text:?}: {a} / {b}"
                );
                let line = |e: &DataError| match e {
                    DataError::Malformed { line, .. }
                    | DataError::BadTime { line, .. }
                    | DataError::BadNumber { line, .. }
                    | DataError::NotIncreasing { line, .. }
                    | DataError::HighLow { line, .. }
                    | DataError::NegativeVolume { line, .. }
                    | DataError::TooManyRows { line, .. } => Some(*line),
                    _ => None,
                };
                if !crlf {
                    assert_eq!(line(a), line(b), "{text:?}: {a} / {b}");
                }
            }
            _ => panic!("readers disagree on {text:?}: plain {plain:?}, csv {csv:?}"),
        }
    }

    /// A file large enough for the parallel plain reader, `rows` minute bars.
    fn big_file(rows: usize) -> String {
        let mut text = String::from("timestamp,open,high,low,close,volume\n");
        for i in 0..rows {
            let t = 1_700_000_000_000i64 + i as i64 * 60_000;
            let o = 100.0 + (i % 50) as f64 / 4.0;
            text.push_str(&format!(
                "{t},{o},{},{},{},{}\n",
                o + 1.5,
                o - 1.25,
                o + 0.5,
                i % 7
            ));
        }
        text
    }

    /// The one-pass reader over the same bytes: what the parallel reader must equal.
    fn one_pass(text: &str) -> Result<Bars, DataError> {
        let body_start = text.find('\n').expect("header line") + 1;
        let headers = csv::ReaderBuilder::new()
            .from_reader(&text.as_bytes()[..body_start])
            .byte_headers()
            .expect("header")
            .clone();
        let cols = header_columns(&headers, Path::new("bars.csv")).expect("columns");
        plain_rows(
            &text.as_bytes()[body_start..],
            1,
            Path::new("bars.csv"),
            cols,
            DEFAULT_MAX_ROWS,
        )?
        .into_bars(Path::new("bars.csv"))
    }

    #[test]
    fn the_parallel_plain_reader_equals_one_pass() {
        let text = big_file(60_000);
        assert!(
            text.len() > 2 * PARALLEL_MIN_BYTES,
            "the file must be split"
        );
        let body = &text.as_bytes()[text.find('\n').unwrap() + 1..];
        let chunks = line_chunks(body, 4);
        assert!(chunks.len() >= 4, "{chunks:?}");
        assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|r| body[r.end - 1] == b'\n'));
        let parallel = read_plain(text.as_bytes(), Path::new("bars.csv"), DEFAULT_MAX_ROWS)
            .expect("valid file");
        assert_eq!(parallel.len(), 60_000);
        assert_eq!(parallel, one_pass(&text).expect("valid file"));
    }

    /// Errors a single run cannot see (at a join) and errors inside a later run are reported
    /// as one pass reports them: the first in the file, at its true line.
    #[test]
    fn the_parallel_plain_reader_reports_the_first_error_at_its_line() {
        let text = big_file(60_000);
        let lines: Vec<&str> = text.lines().collect();
        let body = &text.as_bytes()[text.find('\n').unwrap() + 1..];
        // Line number (1-based, header = 1) of the first row of the second run.
        let join_line = 2 + body[..line_chunks(body, rayon::current_num_threads() * 2)[1].start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let with_line = |n: usize, row: &str| {
            let mut l = lines.clone();
            l[n - 1] = row;
            l.join("\n") + "\n"
        };
        let previous_time: i64 = lines[join_line - 2]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let duplicate = format!("{previous_time},1,2,0.5,1.5,0");
        let seconds = format!("{},1,2,0.5,1.5,0", previous_time / 1000 + 60);
        for (text, line) in [
            (with_line(join_line, &duplicate), join_line),
            (with_line(join_line, &seconds), join_line),
            (with_line(50_000, "1,2,3"), 50_000),
            (with_line(59_000, &duplicate), 59_000),
        ] {
            let parallel = read_plain(text.as_bytes(), Path::new("bars.csv"), DEFAULT_MAX_ROWS)
                .expect_err("the file has an error");
            let serial = one_pass(&text).expect_err("the file has an error");
            assert_eq!(parallel.to_string(), serial.to_string());
            assert!(
                parallel.to_string().contains(&format!("line {line}")),
                "{parallel}"
            );
        }
        let capped = read_plain(text.as_bytes(), Path::new("bars.csv"), 59_999)
            .expect_err("one row over the cap");
        assert!(
            matches!(capped, DataError::TooManyRows { line: 60_001, .. }),
            "{capped}"
        );
    }

    #[test]
    fn the_plain_reader_agrees_with_csv_on_edge_shapes() {
        for text in [
            ",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n",
            ",Open,High,Low,Close\r\n2004-08-19,1,2,0.5,1.5\r\n2004-08-20,1,2,0.5,1.5",
            ",Open,High,Low,Close\n\n2004-08-19,1,2,0.5,1.5\n\n2004-08-20,1,2,0.5,1.5\n\n",
            ",Open,High,Low,Close\n2004-08-19,1,2,0.5\n",
            ",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5,9\n",
            ",Open,High,Low,Close\n",
            ",Open,High,Low,Close",
            "",
            "timestamp, open ,HIGH,low,close,volume\n 1700000000000 , 1 ,2,0.5,1.5, 3 \n",
            "timestamp,open,high,low,close\n1700000000000,1,2,0.5,x\n",
            "timestamp,open,high,low,close\n1700000000000,1,2,0.5,1\n1700000000000,1,2,0.5,1\n",
        ] {
            same_outcome(text);
        }
        assert!(!is_plain(b"a,b\r1,2"), "a bare CR goes to csv");
        assert!(!is_plain(b"a,b\n\"1\",2"), "a quote goes to csv");
    }

    proptest::proptest! {
        #[test]
        fn the_plain_reader_agrees_with_csv(
            rows in proptest::collection::vec(
                (0i64..3, 1u32..5000, 0u32..300, 0u32..300, 0u32..3, 0u8..8),
                0..25,
            ),
            crlf in proptest::bool::ANY,
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("timestamp,Open,High,Low,Close,Volume{nl}");
            let mut t = 1_700_000_000_000i64;
            for (step, open, up, down, vol, quirk) in rows {
                t += step * 60_000;
                let o = f64::from(open) / 100.0;
                let (h, l) = (o + f64::from(up) / 100.0, o - f64::from(down) / 100.0);
                let c = (h + l) / 2.0;
                match quirk {
                    0 => text.push_str(nl),
                    1 => text.push_str(&format!("{t},{o},{h},{l}{nl}")),
                    2 => text.push_str(&format!(" {t} , {o} ,{h},{l},{c},{vol}{nl}")),
                    3 => text.push_str(&format!("{t},{o},{l},{h},{c},{vol}{nl}")),
                    _ => text.push_str(&format!("{t},{o},{h},{l},{c},{vol}{nl}")),
                }
            }
            same_outcome(&text);
        }
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        let err = load_str(",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n2004-08-20,1,2,0.5\n")
            .unwrap_err();
        assert!(matches!(err, DataError::Malformed { line: 3, .. }), "{err}");
    }

    #[test]
    fn more_rows_than_the_cap_is_an_error() {
        let csv = ",Open,High,Low,Close\n2004-08-19,1,2,0.5,1.5\n2004-08-20,1,2,0.5,1.5\n2004-08-21,1,2,0.5,1.5\n";
        assert_eq!(
            load_reader(csv.as_bytes(), Path::new("b.csv"), 3)
                .unwrap()
                .len(),
            3
        );
        let err = load_reader(csv.as_bytes(), Path::new("b.csv"), 2).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TooManyRows {
                    line: 4,
                    max: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn fast_float_path_matches_the_standard_parser() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "+1.5",
            ".5",
            "5.",
            "28995.13",
            "0.1",
            "0.3",
            "1.0713",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "9007199254740993",
            "1e3",
            "2.5E-3",
            "1.7976931348623157e308",
            "NaN",
            "inf",
            "-inf",
            "1..2",
            "1.2.3",
            "",
            "-",
            ".",
            "1-2",
            "0x10",
            "١",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Deterministic spread of prices with 0..=9 decimals, like exchange exports.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let decimals = (x % 10) as usize;
            let int = (x >> 8) % 10_000_000;
            let frac = (x >> 32) % 10u64.pow(decimals as u32);
            cases.push(if decimals == 0 {
                int.to_string()
            } else {
                format!("{int}.{frac:0decimals$}")
            });
        }
        for case in &cases {
            let std = case.parse::<f64>().ok();
            let fast = parse_f64(case.as_bytes());
            assert_eq!(
                fast.map(f64::to_bits),
                std.map(f64::to_bits),
                "{case:?}: fast {fast:?} std {std:?}"
            );
        }
    }

    #[test]
    fn from_candles_converts_decimals() {
        let bars = Bars::from_candles(&[Candle {
            open_time_ms: 5,
            open: dec!(1.5),
            high: dec!(2.25),
            low: dec!(1),
            close: dec!(2),
            volume: dec!(10.5),
        }]);
        assert_eq!(bars.time_ms, vec![5]);
        assert_eq!(
            (
                bars.open[0],
                bars.high[0],
                bars.low[0],
                bars.close[0],
                bars.volume[0]
            ),
            (1.5, 2.25, 1.0, 2.0, 10.5)
        );
    }
}
