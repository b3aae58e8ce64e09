//! Market data for the agents and the gateway's reference price: quotes and candles read
//! through a venue's connector, degrading through the fallback levels when it fails.
//!
//! Owns: per venue, a [`FallbackChain`] of quotes and one of candles (the last good values,
//! served for `resilience.fallback.cache_ttl`), the secondary venue named by the venue's
//! `market_data_fallback`, the marking of every quote that is not the asked venue's live
//! answer ([`QuoteFallback`]), and the move to `resilience.fallback.emergency_mode` when
//! every level failed. Never: orders — an order goes to its own venue or fails; and never
//! account state (positions, balances, open orders): another venue's account is not this
//! one's, so those reads fail plainly.
//!
//! Levels, in the order [`FallbackChain`] tries them: none (the venue answered) → partial
//! (its last good value, younger than the TTL; a quote is marked with its age and the venue
//! whose book it is) → full (the secondary venue's live answer through that venue's own
//! connector, marked with its name) → emergency (with `max_level = "emergency"`: no price
//! is a safe default, so the read fails and the engine moves to `emergency_mode` — never
//! lifting a stricter mode; the operator lifts it). Each use is counted in
//! `orrery_fallback_total{target="<venue>/quote"|"<venue>/candles", level}`.
//!
//! Only availability failures fall back (timeout, unavailable, rate limited, overloaded,
//! an unreadable answer, the connector down: the host says which, [`VenueReads::falls_back`]);
//! a venue that calls the symbol unknown is believed.
//!
//! Market data reaches venues only through [`VenueReads`], a narrow trait its host (the
//! order gateway) implements: this module names no gateway type, so the gateway depends
//! on market data and not the other way round. One hop only: the secondary's own fallback is not followed. Candles carry no
//! mark (their open times show their age); their fallbacks are counted and logged.

use std::collections::BTreeMap;

use futures::future::{ready, BoxFuture};

use super::risk_gate::TradingMode;
use super::types::{Candle, Quote, QuoteFallback, Timeframe};
use crate::resilience::config::FallbackConfig;
use crate::resilience::fallback::EmergencyMode;
use crate::resilience::{FallbackChain, FallbackError, FallbackLevel, Served, SharedMonotonic};

/// What market data needs from its host: live reads through a venue's connector, which
/// failures may be served from elsewhere, and the trading mode (read, and restricted when
/// every fallback level failed).
pub trait VenueReads: Sync {
    type Error: std::fmt::Display + Send;

    /// The venue's live quote.
    fn live_quote<'a>(
        &'a self,
        venue: &'a str,
        symbol: &'a str,
    ) -> BoxFuture<'a, Result<Quote, Self::Error>>;

    /// The venue's newest `lookback` candles, live.
    fn live_candles<'a>(
        &'a self,
        venue: &'a str,
        symbol: &'a str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> BoxFuture<'a, Result<Vec<Candle>, Self::Error>>;

    /// Whether a failed read may be served from elsewhere: the venue could not answer, as
    /// opposed to answering that the request is wrong.
    fn falls_back(err: &Self::Error) -> bool;

    /// The trading mode now.
    fn mode(&self) -> TradingMode;

    /// Moves the trading mode to `mode` (never called with a milder one than [`Self::mode`]).
    fn restrict(&self, mode: TradingMode, reason: &str) -> Result<(), Self::Error>;
}

/// One venue's market-data fallback, from its config section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedConfig {
    /// The venue whose market data stands in when this venue's fails (`market_data_fallback`).
    pub secondary: Option<String>,
    /// Deepest level, cache TTL and emergency mode (`resilience.fallback`).
    pub fallback: FallbackConfig,
}

/// Every venue's market-data reads.
pub struct MarketData {
    feeds: BTreeMap<String, Feed>,
}

struct Feed {
    secondary: Option<String>,
    config: FallbackConfig,
    quotes: FallbackChain<Quote>,
    candles: FallbackChain<Vec<Candle>>,
}

impl MarketData {
    /// Feeds for `venues`; a venue without an entry in `config` gets the defaults (its
    /// own cache, no secondary).
    pub fn new<'a>(
        venues: impl IntoIterator<Item = &'a str>,
        config: &BTreeMap<String, FeedConfig>,
        clock: SharedMonotonic,
    ) -> Self {
        let feeds = venues
            .into_iter()
            .map(|venue| {
                let c = config.get(venue).cloned().unwrap_or_default();
                let chain = |what: &str| format!("{venue}/{what}");
                let feed = Feed {
                    quotes: FallbackChain::new(chain("quote"), c.fallback.clone(), clock.clone()),
                    candles: FallbackChain::new(
                        chain("candles"),
                        c.fallback.clone(),
                        clock.clone(),
                    ),
                    secondary: c.secondary,
                    config: c.fallback,
                };
                (venue.to_string(), feed)
            })
            .collect();
        Self { feeds }
    }

    /// The venue's quote, or its fallback (marked).
    pub async fn quote<R: VenueReads>(
        &self,
        core: &R,
        venue: &str,
        symbol: &str,
    ) -> Result<Quote, R::Error> {
        let primary = core.live_quote(venue, symbol).await;
        let Some(feed) = self.feeds.get(venue) else {
            return primary;
        };
        if primary.as_ref().is_err_and(|e| !R::falls_back(e)) {
            return primary;
        }
        // Collected first: a lazy `map` would keep its closure inside this future, and
        // rustc cannot then prove the future `Send` (a higher-ranked lifetime limitation).
        let siblings: Vec<_> = feed
            .secondary
            .iter()
            .map(|secondary| sibling_quote(core, secondary, symbol))
            .collect();
        match feed.quotes.read(symbol, ready(primary), siblings).await {
            Ok(served) => Ok(marked(venue, symbol, served)),
            Err(FallbackError::Exhausted { primary, .. }) => {
                degrade(core, feed, venue, "quote", symbol);
                Err(primary)
            }
        }
    }

    /// The venue's newest `lookback` candles, or their fallback.
    pub async fn candles<R: VenueReads>(
        &self,
        core: &R,
        venue: &str,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> Result<Vec<Candle>, R::Error> {
        let primary = core.live_candles(venue, symbol, timeframe, lookback).await;
        let Some(feed) = self.feeds.get(venue) else {
            return primary;
        };
        if primary.as_ref().is_err_and(|e| !R::falls_back(e)) {
            return primary;
        }
        let key = format!("{symbol}/{}/{lookback}", timeframe.as_str());
        let siblings: Vec<_> = feed
            .secondary
            .iter()
            .map(|secondary| core.live_candles(secondary, symbol, timeframe, lookback))
            .collect();
        match feed.candles.read(&key, ready(primary), siblings).await {
            Ok(served) => {
                if served.level != FallbackLevel::None {
                    tracing::info!(venue, symbol, level = served.level.label(), age = ?served.age, secondary = ?feed.secondary, "candles served from a fallback");
                }
                Ok(served.value)
            }
            Err(FallbackError::Exhausted { primary, .. }) => {
                degrade(core, feed, venue, "candles", symbol);
                Err(primary)
            }
        }
    }
}

/// Marks a quote served from the cache with its age and the venue whose book it is.
fn marked(venue: &str, symbol: &str, served: Served<Quote>) -> Quote {
    let mut quote = served.value;
    if served.level == FallbackLevel::Partial {
        let source = quote
            .fallback
            .take()
            .map_or_else(|| venue.to_string(), |f| f.venue);
        quote.fallback = Some(QuoteFallback {
            venue: source,
            level: FallbackLevel::Partial,
            age_ms: served
                .age
                .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
        });
    }
    if let Some(f) = &quote.fallback {
        tracing::info!(venue, symbol, level = f.level.label(), from = %f.venue, age_ms = ?f.age_ms, "quote served from a fallback");
    }
    quote
}

/// At the emergency level, moves the engine to the configured mode (never to a milder one
/// than it is in).
fn degrade<R: VenueReads>(core: &R, feed: &Feed, venue: &str, what: &str, symbol: &str) {
    if feed.config.max_level < FallbackLevel::Emergency {
        return;
    }
    let target = match feed.config.emergency_mode {
        EmergencyMode::Reducing => TradingMode::Reducing,
        EmergencyMode::Halted => TradingMode::Halted,
    };
    if severity(core.mode()) >= severity(target) {
        return;
    }
    let also = feed
        .secondary
        .as_deref()
        .map(|s| format!(" or `{s}`"))
        .unwrap_or_default();
    let reason = format!(
        "market data: no {what} of {symbol} from `{venue}`{also}, and no cached one younger than {}",
        humantime::format_duration(feed.config.cache_ttl)
    );
    if let Err(e) = core.restrict(target, &reason) {
        tracing::error!(venue, error = %e, "could not degrade the trading mode after a market-data emergency");
    }
}

fn severity(mode: TradingMode) -> u8 {
    match mode {
        TradingMode::Normal => 0,
        TradingMode::Reducing => 1,
        TradingMode::Halted => 2,
    }
}

#[cfg(test)]
mod tests;

/// A sibling venue's live quote, marked as a full fallback.
async fn sibling_quote<R: VenueReads>(
    core: &R,
    secondary: &str,
    symbol: &str,
) -> Result<Quote, R::Error> {
    let mut quote = core.live_quote(secondary, symbol).await?;
    quote.fallback = Some(QuoteFallback {
        venue: secondary.to_string(),
        level: FallbackLevel::Full,
        age_ms: None,
    });
    Ok(quote)
}
