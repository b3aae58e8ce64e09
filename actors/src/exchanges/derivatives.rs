//! Perpetual-futures market data beyond quotes and candles: funding and open interest.
//!
//! Owns: the venue-neutral, typed (`Decimal`) shapes of a funding snapshot, a past funding
//! rate and open interest, the periods open-interest history is kept at, the
//! annualization of a funding rate by its venue's interval, and the [`DerivativesData`]
//! trait a venue with perpetuals implements (the Binance USDⓈ-M and Hyperliquid venues
//! do) so market-intelligence agents and the operator's `orrery market` read them the
//! same way. Never: I/O of its own, or choosing a venue.
//!
//! Annualized funding is `rate × periods per year`, a period being the venue's funding
//! interval (Hyperliquid 1 h; Binance 8 h unless `fundingInfo` lists another for the
//! symbol) and a year 365 days: simple, not compounded, as venues and dashboards quote it.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::VenueResult;

/// Mark and index price with the current funding of one perpetual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingInfo {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub mark_price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub index_price: Decimal,
    /// The rate of the funding period in progress, as a fraction (0.0001 = 0.01%).
    #[serde(with = "rust_decimal::serde::str")]
    pub funding_rate: Decimal,
    /// When that rate is next settled (ms since the epoch).
    pub next_funding_time_ms: Millis,
    /// The venue's time of this snapshot.
    pub time_ms: Millis,
    /// Hours between two settlements of this symbol (Hyperliquid 1, Binance 8 by default).
    pub funding_interval_hours: u32,
}

impl FundingInfo {
    /// [`annualized_pct`] of this snapshot's rate at its interval.
    pub fn annualized_pct(&self) -> Decimal {
        annualized_pct(self.funding_rate, self.funding_interval_hours)
    }
}

/// Hours in the 365-day year funding is annualized over.
pub const HOURS_PER_YEAR: u32 = 365 * 24;

/// Settlements per year at an interval of `interval_hours` (0 is treated as 1 h, the
/// shortest interval any venue uses, so a bad value never divides by zero).
pub fn periods_per_year(interval_hours: u32) -> Decimal {
    Decimal::from(HOURS_PER_YEAR) / Decimal::from(interval_hours.max(1))
}

/// A funding rate per period (a fraction) as a percentage per year, not compounded:
/// `rate × periods per year × 100`.
pub fn annualized_pct(rate: Decimal, interval_hours: u32) -> Decimal {
    rate * periods_per_year(interval_hours) * Decimal::ONE_HUNDRED
}

/// One settled funding rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingRate {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    pub time_ms: Millis,
    /// Mark price at settlement, where the venue reports it.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub mark_price: Option<Decimal>,
}

/// Open interest now, in base units (contracts of one base unit each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterest {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub open_interest: Decimal,
    pub time_ms: Millis,
}

/// Open interest at the end of one period of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterestPoint {
    pub symbol: String,
    /// In base units.
    #[serde(with = "rust_decimal::serde::str")]
    pub open_interest: Decimal,
    /// In the quote asset (USD).
    #[serde(with = "rust_decimal::serde::str")]
    pub open_interest_value: Decimal,
    pub time_ms: Millis,
}

/// The periods open-interest history is kept at (Binance `openInterestHist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OiPeriod {
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "2h")]
    H2,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "6h")]
    H6,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "1d")]
    D1,
}

impl OiPeriod {
    pub const ALL: [OiPeriod; 9] = [
        OiPeriod::M5,
        OiPeriod::M15,
        OiPeriod::M30,
        OiPeriod::H1,
        OiPeriod::H2,
        OiPeriod::H4,
        OiPeriod::H6,
        OiPeriod::H12,
        OiPeriod::D1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OiPeriod::M5 => "5m",
            OiPeriod::M15 => "15m",
            OiPeriod::M30 => "30m",
            OiPeriod::H1 => "1h",
            OiPeriod::H2 => "2h",
            OiPeriod::H4 => "4h",
            OiPeriod::H6 => "6h",
            OiPeriod::H12 => "12h",
            OiPeriod::D1 => "1d",
        }
    }

    /// The period's length in milliseconds.
    pub fn millis(self) -> Millis {
        const MINUTE: Millis = 60_000;
        MINUTE
            * match self {
                OiPeriod::M5 => 5,
                OiPeriod::M15 => 15,
                OiPeriod::M30 => 30,
                OiPeriod::H1 => 60,
                OiPeriod::H2 => 120,
                OiPeriod::H4 => 240,
                OiPeriod::H6 => 360,
                OiPeriod::H12 => 720,
                OiPeriod::D1 => 1440,
            }
    }
}

impl fmt::Display for OiPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A period that is not one of the nine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an open-interest period; use one of 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d")]
pub struct BadOiPeriod(pub String);

impl FromStr for OiPeriod {
    type Err = BadOiPeriod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        OiPeriod::ALL
            .into_iter()
            .find(|p| p.as_str() == t)
            .ok_or_else(|| BadOiPeriod(s.to_string()))
    }
}

/// Funding and open interest of a venue's perpetuals. Every call has the venue's request
/// deadline; errors are the venue's ([`crate::exchanges::VenueError`]). A venue that does
/// not publish one of these answers [`crate::exchanges::VenueError::Unsupported`], never a
/// made-up series.
#[async_trait]
pub trait DerivativesData: Send + Sync {
    /// Mark, index and the current funding rate of `symbol`.
    async fn funding(&self, symbol: &str) -> VenueResult<FundingInfo>;
    /// The newest `limit` settled funding rates, oldest first.
    async fn funding_history(&self, symbol: &str, limit: usize) -> VenueResult<Vec<FundingRate>>;
    /// Open interest now.
    async fn open_interest(&self, symbol: &str) -> VenueResult<OpenInterest>;
    /// The newest `limit` points of open interest at `period`, oldest first.
    async fn open_interest_history(
        &self,
        symbol: &str,
        period: OiPeriod,
        limit: usize,
    ) -> VenueResult<Vec<OpenInterestPoint>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annualization_counts_the_venue_s_periods_in_a_365_day_year() {
        use rust_decimal_macros::dec;
        // Hyperliquid's baseline 0.00125 %/h is 10.95 %/year.
        assert_eq!(annualized_pct(dec!(0.0000125), 1), dec!(10.95));
        // Binance's baseline 0.01 % per 8 h is 10.95 %/year too; 4 h doubles the periods.
        assert_eq!(annualized_pct(dec!(0.0001), 8), dec!(10.95));
        assert_eq!(annualized_pct(dec!(0.0001), 4), dec!(21.90));
        assert_eq!(annualized_pct(dec!(-0.0003), 8), dec!(-32.85));
        assert_eq!(periods_per_year(8), dec!(1095));
        assert_eq!(periods_per_year(0), dec!(8760));
    }

    #[test]
    fn periods_parse_and_print_as_binance_names_them() {
        for p in OiPeriod::ALL {
            assert_eq!(p.as_str().parse::<OiPeriod>(), Ok(p));
        }
        assert_eq!("1H".parse::<OiPeriod>(), Ok(OiPeriod::H1));
        let e = "3h".parse::<OiPeriod>().unwrap_err();
        assert!(e.to_string().contains("5m, 15m"), "{e}");
    }
}
