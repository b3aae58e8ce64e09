//! Funding and open interest of the paper venue, replayed from a file.
//!
//! Owns: parsing a symbol's `derivatives_csv` (header `timestamp,funding_rate,
//! open_interest,mark_price`; rows in strictly increasing time), the values at any instant
//! of the looped file, and [`PaperDerivatives`], the paper venue's [`DerivativesData`]: what
//! `orrery market funding|open-interest --venue <paper>` and the funding and open-interest
//! agents read offline. Never: the paper account, its orders or its price path (the
//! replayed mark is the file's own), or I/O after the file is loaded.
//!
//! The file is looped on its own time axis: at instant `t` the replay stands at
//! `first + (t − first) mod period`, where `period` runs from the first row to the last
//! row's end (a row lasts until the next one; the last as long as the one before it). So a
//! CLI call and a running engine read the same values at the same moment without sharing
//! state. Funding and the mark step from row to row (a venue's rate holds for its period);
//! open interest moves linearly between rows, as a sampled level does. Funding settles
//! every `funding_interval` on the epoch grid (1 h by default, as on Hyperliquid); a
//! settled rate is the rate in force just before its settlement instant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::replay::{parse_time, read_timed_rows, ReplayError};
use super::PaperConfig;
use crate::clock::{Millis, SharedClock};
use crate::exchanges::derivatives::{
    DerivativesData, FundingInfo, FundingRate, OiPeriod, OpenInterest, OpenInterestPoint,
};
use crate::exchanges::venue::{VenueError, VenueResult};

const HEADER: [&str; 4] = ["timestamp", "funding_rate", "open_interest", "mark_price"];
/// Open interest is reported to this many decimal places (Hyperliquid reports 5; Binance 3).
const OI_DP: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    time_ms: Millis,
    funding_rate: Decimal,
    open_interest: Decimal,
    mark_price: Decimal,
}

/// One symbol's parsed derivatives file.
#[derive(Debug, PartialEq, Eq)]
pub struct DerivativesReplay {
    rows: Vec<Row>,
    period_ms: Millis,
}

impl DerivativesReplay {
    pub fn load(file: &Path) -> Result<Self, ReplayError> {
        let rows = read_timed_rows(file, &HEADER, parse_row, |r| r.time_ms)?;
        let n = rows.len();
        let last_width = rows[n - 1].time_ms - rows[n - 2].time_ms;
        Ok(Self {
            period_ms: rows[n - 1].time_ms + last_width - rows[0].time_ms,
            rows,
        })
    }

    /// The row in force at `t`, the next row (wrapping), and the fraction of the way.
    fn at(&self, t: Millis) -> (&Row, &Row, Decimal) {
        let first = self.rows[0].time_ms;
        let local = first + (t - first).rem_euclid(self.period_ms);
        let i = self
            .rows
            .partition_point(|r| r.time_ms <= local)
            .saturating_sub(1);
        let row = &self.rows[i];
        let (next, end) = match self.rows.get(i + 1) {
            Some(next) => (next, next.time_ms),
            None => (&self.rows[0], first + self.period_ms),
        };
        let frac = Decimal::from(local - row.time_ms) / Decimal::from(end - row.time_ms);
        (row, next, frac)
    }

    fn funding_rate(&self, t: Millis) -> Decimal {
        self.at(t).0.funding_rate
    }

    fn mark_price(&self, t: Millis) -> Decimal {
        self.at(t).0.mark_price
    }

    fn open_interest(&self, t: Millis) -> Decimal {
        let (row, next, frac) = self.at(t);
        (row.open_interest + (next.open_interest - row.open_interest) * frac)
            .round_dp(OI_DP)
            .normalize()
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
    let number = |i: usize| -> Result<Decimal, String> {
        let field = &record[i];
        field
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(field))
            .map_err(|_| format!("{} `{field}` is not a number", HEADER[i]))
    };
    let row = Row {
        time_ms: parse_time(&record[0])?,
        funding_rate: number(1)?,
        open_interest: number(2)?,
        mark_price: number(3)?,
    };
    if row.funding_rate.abs() >= Decimal::ONE {
        return Err(format!(
            "funding_rate {} is not a fraction of one period (0.0001 = 0.01%)",
            row.funding_rate
        ));
    }
    if row.open_interest.is_sign_negative() {
        return Err(format!("open_interest {} is negative", row.open_interest));
    }
    if row.mark_price <= Decimal::ZERO {
        return Err(format!("mark_price {} is not positive", row.mark_price));
    }
    Ok(row)
}

/// The paper venue's funding and open interest, from each symbol's `derivatives_csv`.
pub struct PaperDerivatives {
    venue: String,
    interval_ms: Millis,
    clock: SharedClock,
    symbols: BTreeMap<String, Arc<DerivativesReplay>>,
}

impl std::fmt::Debug for PaperDerivatives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperDerivatives")
            .field("venue", &self.venue)
            .field("symbols", &self.symbols.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PaperDerivatives {
    /// The derivatives of the paper venue `venue` as `config` replays them.
    pub fn from_config(
        venue: &str,
        config: &PaperConfig,
        clock: SharedClock,
    ) -> Result<Option<Self>, ReplayError> {
        Self::open(
            venue,
            &config.derivatives_files(),
            config.funding_interval.as_millis() as Millis,
            clock,
        )
    }

    /// Loads every `derivatives_csv` of `files` (symbol → file). `None` when no symbol has
    /// one: the venue then has no perpetuals to report.
    pub fn open(
        venue: &str,
        files: &BTreeMap<String, PathBuf>,
        funding_interval_ms: Millis,
        clock: SharedClock,
    ) -> Result<Option<Self>, ReplayError> {
        if files.is_empty() {
            return Ok(None);
        }
        let mut symbols = BTreeMap::new();
        for (symbol, file) in files {
            symbols.insert(symbol.clone(), Arc::new(DerivativesReplay::load(file)?));
        }
        Ok(Some(Self {
            venue: venue.to_string(),
            interval_ms: funding_interval_ms.max(1),
            clock,
            symbols,
        }))
    }

    fn replay(&self, symbol: &str) -> VenueResult<&DerivativesReplay> {
        self.symbols
            .get(symbol)
            .map(Arc::as_ref)
            .ok_or_else(|| VenueError::InvalidRequest {
                venue: self.venue.clone(),
                reason: format!(
                    "paper symbol `{symbol}` has no derivatives_csv; replayed funding and open interest exist for {}",
                    self.symbols.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
    }

    /// The latest settlement instant at or before `t`.
    fn settled_at_or_before(&self, t: Millis) -> Millis {
        t.div_euclid(self.interval_ms) * self.interval_ms
    }
}

#[async_trait]
impl DerivativesData for PaperDerivatives {
    async fn funding(&self, symbol: &str) -> VenueResult<FundingInfo> {
        let replay = self.replay(symbol)?;
        let now = self.clock.now_ms();
        let mark = replay.mark_price(now);
        Ok(FundingInfo {
            symbol: symbol.to_string(),
            mark_price: mark,
            index_price: mark,
            funding_rate: replay.funding_rate(now),
            next_funding_time_ms: self.settled_at_or_before(now) + self.interval_ms,
            time_ms: now,
            // Invariant: validation keeps the interval to whole hours of at most a day.
            funding_interval_hours: (self.interval_ms / 3_600_000).max(1) as u32,
        })
    }

    async fn funding_history(&self, symbol: &str, limit: usize) -> VenueResult<Vec<FundingRate>> {
        let replay = self.replay(symbol)?;
        let last = self.settled_at_or_before(self.clock.now_ms());
        Ok((0..limit as i64)
            .rev()
            .map(|k| {
                let at = last - k * self.interval_ms;
                FundingRate {
                    symbol: symbol.to_string(),
                    rate: replay.funding_rate(at - 1),
                    time_ms: at,
                    mark_price: Some(replay.mark_price(at)),
                }
            })
            .collect())
    }

    async fn open_interest(&self, symbol: &str) -> VenueResult<OpenInterest> {
        let replay = self.replay(symbol)?;
        let now = self.clock.now_ms();
        Ok(OpenInterest {
            symbol: symbol.to_string(),
            open_interest: replay.open_interest(now),
            time_ms: now,
        })
    }

    async fn open_interest_history(
        &self,
        symbol: &str,
        period: OiPeriod,
        limit: usize,
    ) -> VenueResult<Vec<OpenInterestPoint>> {
        let replay = self.replay(symbol)?;
        let step = period.millis();
        let last = self.clock.now_ms().div_euclid(step) * step;
        Ok((0..limit as i64)
            .rev()
            .map(|k| {
                let at = last - k * step;
                let oi = replay.open_interest(at);
                OpenInterestPoint {
                    symbol: symbol.to_string(),
                    open_interest: oi,
                    open_interest_value: (oi * replay.mark_price(at)).round_dp(2),
                    time_ms: at,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::io::Write;

    fn write(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    const HOUR: Millis = 3_600_000;

    /// Three hourly rows; the file loops every 3 h.
    fn file() -> tempfile::NamedTempFile {
        write(
            "timestamp,funding_rate,open_interest,mark_price\n\
             0,0.0000125,27000,77000\n\
             1970-01-01T01:00:00Z,-0.0000081,30000,78000\n\
             7200000,1.25e-5,24000,76000\n",
        )
    }

    fn venue(at: Millis) -> (PaperDerivatives, Arc<ManualClock>) {
        let f = file();
        let clock = ManualClock::new(at);
        let files = BTreeMap::from([("BTC".to_string(), f.path().to_path_buf())]);
        let d = PaperDerivatives::open("lab", &files, HOUR, clock.clone())
            .unwrap()
            .unwrap();
        (d, clock)
    }

    #[tokio::test]
    async fn values_step_and_interpolate_and_loop() {
        let (d, clock) = venue(HOUR / 2);
        let f = d.funding("BTC").await.unwrap();
        assert_eq!(f.funding_rate, Decimal::new(125, 7));
        assert_eq!(f.mark_price, Decimal::from(77_000));
        assert_eq!(f.next_funding_time_ms, HOUR);
        // Half way from 27000 to 30000.
        let oi = d.open_interest("BTC").await.unwrap();
        assert_eq!(oi.open_interest, Decimal::from(28_500));
        // The last row runs as long as the one before it, then wraps to the first.
        clock.set(2 * HOUR + HOUR / 4);
        let oi = d.open_interest("BTC").await.unwrap();
        assert_eq!(oi.open_interest, Decimal::from(24_750));
        // One loop later the same values.
        clock.set(3 * HOUR + HOUR / 2);
        assert_eq!(
            d.open_interest("BTC").await.unwrap().open_interest,
            Decimal::from(28_500)
        );
    }

    #[tokio::test]
    async fn history_is_settled_rates_oldest_first() {
        let (d, _clock) = venue(3 * HOUR + 10);
        let h = d.funding_history("BTC", 3).await.unwrap();
        let times: Vec<Millis> = h.iter().map(|r| r.time_ms).collect();
        assert_eq!(times, vec![HOUR, 2 * HOUR, 3 * HOUR]);
        // The rate settled at 01:00 is the one in force during 00:00-01:00.
        let rates: Vec<Decimal> = h.iter().map(|r| r.rate).collect();
        assert_eq!(
            rates,
            vec![
                Decimal::new(125, 7),
                Decimal::new(-81, 7),
                Decimal::new(125, 7)
            ]
        );
        let oi = d
            .open_interest_history("BTC", OiPeriod::H1, 2)
            .await
            .unwrap();
        assert_eq!(oi[0].time_ms, 2 * HOUR);
        assert_eq!(oi[0].open_interest, Decimal::from(24_000));
        assert_eq!(oi[0].open_interest_value, Decimal::from(24_000 * 76_000));
        assert_eq!(oi[1].open_interest, Decimal::from(27_000));
    }

    #[tokio::test]
    async fn unknown_symbol_names_the_replayed_ones() {
        let (d, _clock) = venue(0);
        let e = d.funding("ETH").await.unwrap_err();
        assert!(matches!(e, VenueError::InvalidRequest { .. }));
        assert!(e.to_string().contains("derivatives_csv"), "{e}");
        assert!(e.to_string().contains("BTC"), "{e}");
    }

    #[test]
    fn bad_files_name_the_line() {
        for (content, needle) in [
            ("time,funding\n0,1\n", "header"),
            (
                "timestamp,funding_rate,open_interest,mark_price\n0,0.0001,1,1\n0,0.0001,1,1\n",
                "increasing",
            ),
            (
                "timestamp,funding_rate,open_interest,mark_price\n0,1.5,1,1\n1,0,1,1\n",
                "fraction",
            ),
            (
                "timestamp,funding_rate,open_interest,mark_price\n0,0,-1,1\n1,0,1,1\n",
                "negative",
            ),
            (
                "timestamp,funding_rate,open_interest,mark_price\n0,0,1,0\n1,0,1,1\n",
                "positive",
            ),
            (
                "timestamp,funding_rate,open_interest,mark_price\n0,x,1,1\n1,0,1,1\n",
                "not a number",
            ),
            (
                "timestamp,funding_rate,open_interest,mark_price\n0,0,1,1\n",
                "at least 2",
            ),
        ] {
            let f = write(content);
            let e = DerivativesReplay::load(f.path()).unwrap_err();
            assert!(e.to_string().contains(needle), "{content:?}: {e}");
        }
    }
}
