//! One paper market: the price source of a symbol mapped onto clock time, its quotes and
//! its candles.
//!
//! Owns: clock time ↔ simulation step, tick rounding of everything that leaves the
//! simulator, bid/ask around the mid, and candle aggregation. Never: orders or balances.
//!
//! Step `k` is the instant `anchor + k · step`; the anchor is 00:00 UTC of the day the paper
//! account was created (stored with the account), so a restarted venue continues the same
//! path. A candle's open is the price at its first step, its close the price at its last
//! step (for the forming candle: now, so its close is the quote's mid), and its high/low the
//! extremes over points sampled at the finest level that keeps at most a few hundred points
//! per candle (1 step up to 5 minutes, then 60, 3 600 or 86 400 steps): a 1d × 100 request
//! reads 2 400 hourly points, never 8.6 million seconds. Sampled highs and lows can miss a
//! finer excursion; open and close are always exact.

use std::sync::Arc;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use super::replay::ReplayPath;
use super::sim::{SimPath, SPACING};
use crate::clock::Millis;
use crate::exchanges::types::{Candle, Instrument, Timeframe};
use crate::exchanges::venue::{VenueError, VenueResult};

/// Most candles one request may ask for.
pub const MAX_LOOKBACK: usize = 1_500;
/// Most points sampled inside one candle.
const MAX_POINTS_PER_CANDLE: i64 = 300;
/// Simulated traded notional per second at normal activity (about $860M a day).
const SIM_VOLUME_USD_PER_SECOND: f64 = 10_000.0;

pub enum PriceSource {
    Sim(SimPath),
    Replay(Arc<ReplayPath>),
}

/// Top of book at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top {
    pub bid: Decimal,
    pub ask: Decimal,
    pub mid: Decimal,
    /// The instrument's tick, for rounding prices derived from this quote.
    pub tick: Decimal,
}

pub struct Market {
    venue: String,
    pub instrument: Instrument,
    /// Half the spread, as a fraction of the mid.
    half_spread: Decimal,
    anchor_ms: Millis,
    step_ms: Millis,
    source: PriceSource,
}

impl Market {
    pub fn new(
        venue: &str,
        instrument: Instrument,
        spread_bps: Decimal,
        anchor_ms: Millis,
        step_ms: Millis,
        source: PriceSource,
    ) -> Self {
        Self {
            venue: venue.to_string(),
            instrument,
            half_spread: spread_bps / Decimal::from(20_000),
            anchor_ms,
            step_ms,
            source,
        }
    }

    /// The step in force at `t` (the last step at or before it).
    pub fn step_at(&self, t: Millis) -> i64 {
        (t - self.anchor_ms).div_euclid(self.step_ms)
    }

    pub fn time_of(&self, k: i64) -> Millis {
        self.anchor_ms + k * self.step_ms
    }

    /// First step at or after `t`.
    fn step_from(&self, t: Millis) -> i64 {
        -(self.anchor_ms - t).div_euclid(self.step_ms)
    }

    fn raw_price(&mut self, k: i64) -> f64 {
        match &mut self.source {
            PriceSource::Sim(sim) => sim.ln_price(k).exp(),
            PriceSource::Replay(replay) => replay.price(k * self.step_ms),
        }
    }

    /// Base-unit volume traded from step `from` to step `to` (> from), ending at `price_to`.
    /// A replayed span takes its volume from the row it starts in.
    fn volume(&mut self, from: i64, to: i64, price_from: f64, price_to: f64) -> f64 {
        let span_ms = (to - from) * self.step_ms;
        match &mut self.source {
            PriceSource::Sim(sim) => {
                // Busier when the price moves more than usual over the span.
                let usual = sim.step_sigma() * ((to - from) as f64).sqrt();
                let moved = (price_to / price_from).ln().abs();
                let activity = if usual > 0.0 {
                    (0.5 + moved / usual).min(5.0)
                } else {
                    1.0
                };
                SIM_VOLUME_USD_PER_SECOND * span_ms as f64 / 1_000.0 * activity / price_to
            }
            PriceSource::Replay(replay) => replay.volume(from * self.step_ms, span_ms),
        }
    }

    fn to_price(&self, raw: f64, round: fn(Decimal) -> Decimal) -> VenueResult<Decimal> {
        let tick = self.instrument.tick_size;
        let unavailable = || {
            VenueError::Unavailable {
            venue: self.venue.clone(),
            reason: format!(
                "the simulated price of {} left the representable range ({raw}); lower volatility_annual/drift_annual or reset the paper account",
                self.instrument.symbol
            ),
        }
        };
        let d = Decimal::from_f64(raw).ok_or_else(unavailable)?;
        let ticks = d.checked_div(tick).ok_or_else(unavailable)?;
        // A price never rounds down to zero: the smallest price is one tick.
        Ok((round(ticks).max(Decimal::ONE) * tick).normalize())
    }

    /// The mid at step `k`, rounded to the tick.
    pub fn mid(&mut self, k: i64) -> VenueResult<Decimal> {
        let raw = self.raw_price(k);
        self.to_price(raw, |d| d.round())
    }

    /// Bid and ask at step `k`: the mid ± half the spread, rounded outward to the tick.
    pub fn top(&mut self, k: i64) -> VenueResult<Top> {
        let mid = self.mid(k)?;
        let half = mid * self.half_spread;
        let tick = self.instrument.tick_size;
        let bid = (((mid - half) / tick).floor() * tick).normalize();
        let ask = (((mid + half) / tick).ceil() * tick).normalize();
        Ok(Top {
            bid: if bid > Decimal::ZERO { bid } else { tick },
            ask,
            mid,
            tick,
        })
    }

    /// The newest `lookback` candles at `now`, oldest first; the last one is forming.
    pub fn candles(
        &mut self,
        timeframe: Timeframe,
        lookback: usize,
        now: Millis,
    ) -> VenueResult<Vec<Candle>> {
        if lookback > MAX_LOOKBACK {
            return Err(VenueError::InvalidRequest {
                venue: self.venue.clone(),
                reason: format!(
                    "lookback {lookback} exceeds the paper venue's limit of {MAX_LOOKBACK} candles; ask for fewer"
                ),
            });
        }
        let tf_ms = timeframe.millis();
        let last_open = now.div_euclid(tf_ms) * tf_ms;
        let tf_steps = (tf_ms / self.step_ms).max(1);
        let resolution = SPACING
            .iter()
            .rev()
            .copied()
            .find(|r| tf_steps / r <= MAX_POINTS_PER_CANDLE)
            .unwrap_or(SPACING[0]);
        let k_now = self.step_at(now);
        let mut out = Vec::with_capacity(lookback);
        for i in (0..lookback as i64).rev() {
            let open_ms = last_open - i * tf_ms;
            let k0 = self.step_from(open_ms);
            let k1 = self.step_from(open_ms + tf_ms).min(k_now);
            out.push(self.candle(open_ms, k0, k1.max(k0), resolution)?);
        }
        Ok(out)
    }

    fn candle(
        &mut self,
        open_ms: Millis,
        k0: i64,
        k1: i64,
        resolution: i64,
    ) -> VenueResult<Candle> {
        let first = self.raw_price(k0);
        let (mut high, mut low) = (first, first);
        let (mut prev_k, mut prev_p) = (k0, first);
        let mut volume = 0.0;
        let mut k = (k0.div_euclid(resolution) + 1) * resolution;
        while prev_k < k1 {
            let next = k.min(k1);
            let p = self.raw_price(next);
            high = high.max(p);
            low = low.min(p);
            volume += self.volume(prev_k, next, prev_p, p);
            prev_k = next;
            prev_p = p;
            k += resolution;
        }
        if k1 == k0 {
            volume = self.volume(k0 - 1, k0, first, first);
        }
        let open = self.to_price(first, |d| d.round())?;
        let close = self.to_price(prev_p, |d| d.round())?;
        let lot = self.instrument.lot_size;
        let volume = Decimal::from_f64(volume)
            .map(|v| crate::exchanges::types::round_down_to(v, lot))
            .unwrap_or_default();
        Ok(Candle {
            open_time_ms: open_ms,
            open,
            high: self.to_price(high, |d| d.round())?.max(open).max(close),
            low: self.to_price(low, |d| d.round())?.min(open).min(close),
            close,
            volume,
        })
    }
}
