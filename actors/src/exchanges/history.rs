//! Candle history by time range: the reads `orrery data fetch` pages through.
//!
//! Owns: the [`CandleHistory`] contract — closed-or-not candles whose open time lies in
//! `[start_ms, end_ms]`, oldest first, at most [`CandleHistory::page_limit`] of them per
//! call — and its implementations for the venues that publish history: Hyperliquid
//! (`candleSnapshot`, 5000 candles per answer), Binance spot (`GET /api/v3/klines`, 1000
//! rows) and Binance USDⓈ-M futures (`GET /fapi/v1/klines`, asked 1000 rows: the endpoint
//! allows 1500, but charges weight 10 above 1000 rows and 5 up to 1000, so 1000 rows a page
//! is the cheaper rate per row). Every call goes through the venue's own request machinery:
//! its deadline, weight accounting, 429 pause (Retry-After honoured) and read retries.
//!
//! Never: pages, retries across pages, drops the still-forming candle or writes files —
//! the caller (`orrery data fetch`) does; nor does it change what `Venue::candles` (the
//! newest N candles, for agents) returns.

use async_trait::async_trait;

use super::types::{Candle, Timeframe};
use super::venue::VenueResult;
use crate::clock::Millis;

/// Candles of one symbol by open time.
#[async_trait]
pub trait CandleHistory: Send + Sync {
    /// Most candles one call returns (the venue's documented maximum per response).
    fn page_limit(&self) -> usize;

    /// Candles whose open time is in `[start_ms, end_ms]`, oldest first, strictly
    /// increasing, at most [`Self::page_limit`]: the oldest ones of the range when it
    /// holds more. The candle still forming may be among them.
    async fn candles_between(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: Millis,
        end_ms: Millis,
    ) -> VenueResult<Vec<Candle>>;
}

/// Keeps what the contract promises from an answer: open time in range, strictly
/// increasing (a venue repeating or reordering a row does not make a duplicate), at most
/// `limit`. Hyperliquid answers every candle that overlaps the range (the recorded
/// `candleSnapshot` for a start of 13:26:47 begins with the 13:00 candle), so one opening
/// before `start_ms` is dropped here.
pub(crate) fn within(
    mut candles: Vec<Candle>,
    start_ms: Millis,
    end_ms: Millis,
    limit: usize,
) -> Vec<Candle> {
    candles.retain(|c| c.open_time_ms >= start_ms && c.open_time_ms <= end_ms);
    candles.sort_by_key(|c| c.open_time_ms);
    candles.dedup_by_key(|c| c.open_time_ms);
    candles.truncate(limit);
    candles
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn c(t: i64) -> Candle {
        Candle {
            open_time_ms: t,
            open: Decimal::ONE,
            high: Decimal::ONE,
            low: Decimal::ONE,
            close: Decimal::ONE,
            volume: Decimal::ZERO,
        }
    }

    #[test]
    fn within_drops_the_overlapping_first_candle_duplicates_and_the_excess() {
        let got = within(vec![c(0), c(20), c(10), c(10), c(30), c(40)], 5, 35, 2);
        let times: Vec<i64> = got.iter().map(|c| c.open_time_ms).collect();
        assert_eq!(times, vec![10, 20]);
        let all = within(vec![c(30), c(10), c(20)], 10, 30, 10);
        let times: Vec<i64> = all.iter().map(|c| c.open_time_ms).collect();
        assert_eq!(times, vec![10, 20, 30]);
    }
}
