//! The streams' shared state: per venue, the newest quote per symbol, the mids, the last
//! trade prices, and when each channel last spoke.
//!
//! Owns: freshness (a quote is served only while the venue's connection is up and the
//! quote is younger than the venue's `stream_stale_after`), the feed states shown by
//! `orrery status` (connected / stale / disconnected, with ages), and the per-channel age
//! and resync metrics. Never: I/O — the connection loop writes here, the gateway and status
//! read. Maps are `DashMap`s: many readers, one writer per venue, no lock held across an
//! await. Ages use tokio's clock, so tests with paused time are deterministic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::derivatives::{DerivativesFeed, DerivativesHealth, MarkHealth, MarkPrice};
use crate::exchanges::types::{AccountState, Candle, Quote, Timeframe};
use crate::telemetry::names;

/// Every venue's stream state. Cloning shares it.
#[derive(Clone, Default)]
pub struct StreamBook {
    venues: Arc<DashMap<String, Arc<VenueFeed>>>,
}

impl std::fmt::Debug for StreamBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBook")
            .field("venues", &self.venues.len())
            .finish()
    }
}

impl StreamBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// The venue's feed state, created on first use. A restarted connection actor gets the
    /// same state back (its quotes age out on their own; the connected flag is reset by the
    /// new connection).
    pub fn register(&self, venue: &str, url: &str, stale_after: Duration) -> Arc<VenueFeed> {
        self.venues
            .entry(venue.to_string())
            .or_insert_with(|| Arc::new(VenueFeed::new(venue, url, stale_after)))
            .clone()
    }

    pub fn feed(&self, venue: &str) -> Option<Arc<VenueFeed>> {
        self.venues.get(venue).map(|f| f.clone())
    }

    /// The venue's streamed quote for `symbol` if the connection is up and the quote is
    /// fresh; `None` sends the reader to REST.
    pub fn fresh_quote(&self, venue: &str, symbol: &str) -> Option<Quote> {
        self.venues.get(venue)?.fresh_quote(symbol)
    }

    /// The venue's streamed mid (`allMids`) for `symbol` under the same freshness rule.
    pub fn fresh_mid(&self, venue: &str, symbol: &str) -> Option<Decimal> {
        self.venues.get(venue)?.fresh_mid(symbol)
    }

    /// The venue's streamed mark price and funding for `symbol` under the same freshness
    /// rule.
    pub fn fresh_mark(&self, venue: &str, symbol: &str) -> Option<MarkPrice> {
        self.venues.get(venue)?.fresh_mark(symbol)
    }

    /// The venue's feed health, `None` when the venue has no stream; a user-data stream
    /// on a connection of its own ([`Self::register_user`]) is in its `user`.
    pub fn health(&self, venue: &str) -> Option<FeedHealth> {
        let user = self
            .venues
            .get(&user_key(venue))
            .map(|f| Box::new(f.health()));
        let mut health = self.venues.get(venue).map(|f| f.health())?;
        health.user = user;
        Some(health)
    }

    /// The state of a venue's user-data stream when it has a connection of its own
    /// (Binance's listen-key stream), kept apart from the market feed so its connection
    /// never decides whether quotes are fresh.
    pub fn register_user(&self, venue: &str, url: &str, stale_after: Duration) -> Arc<VenueFeed> {
        let key = user_key(venue);
        self.venues
            .entry(key.clone())
            .or_insert_with(|| Arc::new(VenueFeed::new(&key, url, stale_after)))
            .clone()
    }
}

/// Key of a venue's separate user-data stream.
fn user_key(venue: &str) -> String {
    format!("{venue}/user")
}

/// One asset's balance as the user stream last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetBalance {
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
    /// Milliseconds since the report.
    pub age_ms: u64,
}

/// A feed's state as the operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// Connected and the channel spoke within `stream_stale_after`.
    Connected,
    /// Connected but silent longer than `stream_stale_after`: reads use REST.
    Stale,
    /// No connection (connecting, backing off, refused): reads use REST.
    Disconnected,
}

impl FeedState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Stale => "stale",
            Self::Disconnected => "disconnected",
        }
    }
}

/// One venue's stream: the connection and each channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedHealth {
    pub venue: String,
    pub url: String,
    /// `connected` while the websocket is up and subscribed.
    pub state: FeedState,
    pub reconnects: u64,
    pub malformed: u64,
    pub channels: Vec<ChannelHealth>,
    /// Marks, funding, liquidation counts and the pushed account of a derivatives venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivatives: Option<DerivativesHealth>,
    /// Balances pushed by the account's user stream (Binance `outboundAccountPosition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub balances: Vec<AssetBalance>,
    /// The venue's user-data stream, when it runs on a connection of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Box<FeedHealth>>,
    /// Other addresses whose fills this stream follows (`follow_wallets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followed: Vec<super::followed::FollowedWallet>,
}

/// One channel of a venue's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelHealth {
    pub channel: String,
    pub state: FeedState,
    /// Milliseconds since its last message.
    pub age_ms: u64,
    pub messages: u64,
}

struct ChannelEntry {
    last: Instant,
    messages: u64,
    /// Marked stale by the last sweep (a transition to stale counts one resync).
    stale: bool,
}

struct Stamped<T> {
    value: T,
    at: Instant,
}

/// A gapless run of candles, oldest first, at most [`CandleSeries::KEPT`].
#[derive(Default)]
struct CandleSeries {
    candles: std::collections::VecDeque<Candle>,
}

impl CandleSeries {
    const KEPT: usize = 1000;

    /// Adds or updates `candle`; `false` when it does not continue the series (a gap or
    /// an older candle), which the caller answers by dropping the series.
    fn push(&mut self, timeframe: Timeframe, candle: Candle) -> bool {
        match self.candles.back_mut() {
            Some(last) if last.open_time_ms == candle.open_time_ms => *last = candle,
            Some(last) if last.open_time_ms + timeframe.millis() == candle.open_time_ms => {
                self.candles.push_back(candle)
            }
            Some(_) => return false,
            None => self.candles.push_back(candle),
        }
        if self.candles.len() > Self::KEPT {
            self.candles.pop_front();
        }
        true
    }
}

/// One venue's stream state, written by its connection loop.
pub struct VenueFeed {
    venue: String,
    url: String,
    stale_after: Duration,
    connected: AtomicBool,
    reconnects: AtomicU64,
    malformed: AtomicU64,
    quotes: DashMap<String, Stamped<Quote>>,
    mids: DashMap<String, Stamped<Decimal>>,
    trades: DashMap<String, Stamped<Decimal>>,
    candles: DashMap<(String, Timeframe), Stamped<CandleSeries>>,
    /// The account's balances and positions as the venue last pushed them.
    account: parking_lot::Mutex<Option<Stamped<AccountState>>>,
    /// The connection subscribes the account's fills, so pushed fills reach the ledger
    /// as they happen (the gateway then reconciles over REST less often).
    fills_streamed: AtomicBool,
    /// Connections made so far: a change tells the gateway a reconnect may have missed
    /// pushed fills, and it reconciles over REST at once.
    connections: AtomicU64,
    channels: DashMap<&'static str, ChannelEntry>,
    marks: DashMap<String, Stamped<MarkPrice>>,
    derivatives: DerivativesFeed,
    /// The newest public trades per symbol (side, size, price, time, id).
    tape: super::tape::TradeTape,
    /// Asset → (free, locked), from a user stream.
    balances: DashMap<String, Stamped<(Decimal, Decimal)>>,
    /// Channels that speak only when something happens (a user's orders and fills): their
    /// silence is no staleness.
    event_driven: DashMap<&'static str, ()>,
    followed: super::followed::FollowedWallets,
}

impl VenueFeed {
    fn new(venue: &str, url: &str, stale_after: Duration) -> Self {
        metrics::gauge!(names::STREAM_CONNECTED, "venue" => venue.to_string()).set(0.0);
        Self {
            venue: venue.to_string(),
            url: url.to_string(),
            stale_after,
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            quotes: DashMap::new(),
            mids: DashMap::new(),
            trades: DashMap::new(),
            candles: DashMap::new(),
            account: parking_lot::Mutex::new(None),
            fills_streamed: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            channels: DashMap::new(),
            marks: DashMap::new(),
            derivatives: DerivativesFeed::new(venue),
            tape: super::tape::TradeTape::new(),
            balances: DashMap::new(),
            event_driven: DashMap::new(),
            followed: super::followed::FollowedWallets::default(),
        }
    }

    /// `channel` speaks only when something happens: it is shown connected while the
    /// connection is up, never stale.
    pub fn mark_event_driven(&self, channel: &'static str) {
        self.event_driven.insert(channel, ());
    }

    /// Fills of the wallets this stream follows.
    pub fn followed(&self) -> &super::followed::FollowedWallets {
        &self.followed
    }

    pub fn venue(&self) -> &str {
        &self.venue
    }

    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Up (subscribed) or down. Going down counts one resync: every reader falls back to
    /// REST until the stream is fresh again.
    pub fn set_connected(&self, up: bool) {
        let was = self.connected.swap(up, Ordering::AcqRel);
        if up {
            self.connections.fetch_add(1, Ordering::AcqRel);
        } else {
            self.candles.clear();
            *self.account.lock() = None;
        }
        metrics::gauge!(names::STREAM_CONNECTED, "venue" => self.venue.clone()).set(if up {
            1.0
        } else {
            0.0
        });
        if was && !up {
            metrics::counter!(names::STREAM_RESYNCS, "venue" => self.venue.clone()).increment(1);
        }
    }

    pub fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::STREAM_RECONNECTS, "venue" => self.venue.clone()).increment(1);
    }

    pub fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::STREAM_MALFORMED, "venue" => self.venue.clone()).increment(1);
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// A message arrived on `channel` (a venue channel name: a small fixed set).
    pub fn record(&self, channel: &'static str, now: Instant) {
        let mut e = self.channels.entry(channel).or_insert(ChannelEntry {
            last: now,
            messages: 0,
            stale: false,
        });
        e.last = now;
        e.messages += 1;
        e.stale = false;
        metrics::counter!(names::STREAM_MESSAGES, "venue" => self.venue.clone(), "channel" => channel)
            .increment(1);
    }

    pub fn put_quote(&self, quote: Quote, now: Instant) {
        self.quotes.insert(
            quote.symbol.clone(),
            Stamped {
                value: quote,
                at: now,
            },
        );
    }

    pub fn put_mid(&self, symbol: &str, mid: Decimal, now: Instant) {
        self.mids.insert(
            symbol.to_string(),
            Stamped {
                value: mid,
                at: now,
            },
        );
    }

    /// An asset's balance as the account's user stream reported it.
    pub fn put_balance(&self, asset: &str, free: Decimal, locked: Decimal, now: Instant) {
        self.balances.insert(
            asset.to_string(),
            Stamped {
                value: (free, locked),
                at: now,
            },
        );
    }

    /// The balances the user stream reported, by asset.
    pub fn balances(&self) -> Vec<AssetBalance> {
        let now = Instant::now();
        let mut out: Vec<AssetBalance> = self
            .balances
            .iter()
            .map(|e| AssetBalance {
                asset: e.key().clone(),
                free: e.value.0,
                locked: e.value.1,
                age_ms: u64::try_from(now.saturating_duration_since(e.at).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect();
        out.sort_by(|a, b| a.asset.cmp(&b.asset));
        out
    }

    /// A public trade: kept on the tape (once per trade id) and its price as the symbol's
    /// last trade.
    pub fn put_tape_trade(&self, trade: super::tape::TapeTrade, now: Instant) {
        self.put_trade(&trade.symbol, trade.price, now);
        self.tape.push(trade);
    }

    /// The trade tape (the newest public trades per symbol).
    pub fn tape(&self) -> &super::tape::TradeTape {
        &self.tape
    }

    pub fn put_trade(&self, symbol: &str, px: Decimal, now: Instant) {
        self.trades
            .insert(symbol.to_string(), Stamped { value: px, at: now });
    }

    /// A candle from the stream (the current one, updated as it forms, or a new one). It
    /// joins the series seeded from REST only when it continues it; otherwise the series
    /// is dropped and the next read reseeds it from REST.
    pub fn put_candle(&self, symbol: &str, timeframe: Timeframe, candle: Candle, now: Instant) {
        let key = (symbol.to_string(), timeframe);
        let Some(mut series) = self.candles.get_mut(&key) else {
            return;
        };
        if series.value.push(timeframe, candle) {
            series.at = now;
        } else {
            drop(series);
            self.candles.remove(&key);
        }
    }

    /// Seeds the series of `symbol`/`timeframe` with REST history, oldest first; streamed
    /// candles then extend it. Called by the gateway after a REST candles read.
    pub fn seed_candles(&self, symbol: &str, timeframe: Timeframe, history: &[Candle]) {
        if !self.is_connected() || history.is_empty() {
            return;
        }
        let key = (symbol.to_string(), timeframe);
        let mut series = CandleSeries::default();
        for c in history {
            if !series.push(timeframe, c.clone()) {
                return;
            }
        }
        // A seed is fresh as of now: REST just answered.
        self.candles.insert(
            key,
            Stamped {
                value: series,
                at: Instant::now(),
            },
        );
    }

    /// The last `lookback` candles of `symbol`/`timeframe` from the stream, when the
    /// connection is up, the series holds that many without a gap, and the newest update is
    /// younger than `stale_after` plus one candle (a quiet market may not trade every
    /// second, but it updates the current candle at least once per candle).
    pub fn fresh_candles(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> Option<Vec<Candle>> {
        if !self.is_connected() || lookback == 0 {
            return None;
        }
        let series = self.candles.get(&(symbol.to_string(), timeframe))?;
        let budget = self.stale_after + Duration::from_millis(timeframe.millis().max(0) as u64);
        if series.at.elapsed() > budget || series.value.candles.len() < lookback {
            return None;
        }
        let c = &series.value.candles;
        Some(c.range(c.len() - lookback..).cloned().collect())
    }

    /// The account as the venue pushed it (balances and every position).
    pub fn put_account(&self, state: AccountState, now: Instant) {
        *self.account.lock() = Some(Stamped {
            value: state,
            at: now,
        });
    }

    /// The pushed account while the connection is up and the push is younger than
    /// `stale_after`; `None` sends the reader to REST.
    pub fn fresh_account(&self) -> Option<AccountState> {
        if !self.is_connected() {
            return None;
        }
        let account = self.account.lock();
        let a = account.as_ref()?;
        (a.at.elapsed() <= self.stale_after).then(|| a.value.clone())
    }

    /// Whether this connection carries the account's fills (set by the protocol).
    pub fn set_fills_streamed(&self, on: bool) {
        self.fills_streamed.store(on, Ordering::Release);
    }

    /// The account's fills arrive over a connection that is up now.
    pub fn fills_streamed(&self) -> bool {
        self.is_connected() && self.fills_streamed.load(Ordering::Acquire)
    }

    /// How many connections were made (each after a loss may have missed pushes).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }

    /// Forgets the candle series (a lost connection may have missed candles).
    pub fn clear_candles(&self) {
        self.candles.clear();
    }

    fn fresh<T: Clone>(&self, map: &DashMap<String, Stamped<T>>, symbol: &str) -> Option<T> {
        if !self.is_connected() {
            return None;
        }
        let entry = map.get(symbol)?;
        (entry.at.elapsed() <= self.stale_after).then(|| entry.value.clone())
    }

    pub fn fresh_quote(&self, symbol: &str) -> Option<Quote> {
        self.fresh(&self.quotes, symbol)
    }

    pub fn fresh_mid(&self, symbol: &str) -> Option<Decimal> {
        self.fresh(&self.mids, symbol)
    }

    pub fn fresh_trade(&self, symbol: &str) -> Option<Decimal> {
        self.fresh(&self.trades, symbol)
    }

    pub fn put_mark(&self, mark: MarkPrice, now: Instant) {
        self.marks.insert(
            mark.symbol.clone(),
            Stamped {
                value: mark,
                at: now,
            },
        );
    }

    /// The streamed mark price and funding of `symbol` while connected and younger than
    /// `stale_after`.
    pub fn fresh_mark(&self, symbol: &str) -> Option<MarkPrice> {
        self.fresh(&self.marks, symbol)
    }

    /// The liquidation tape and pushed account of a derivatives venue.
    pub fn derivatives(&self) -> &DerivativesFeed {
        &self.derivatives
    }

    /// Marks with their ages, liquidation counts and the pushed account; `None` when the
    /// venue's streams carry none of them.
    fn derivatives_health(&self, now: Instant, up: bool) -> Option<DerivativesHealth> {
        let liquidations = self.derivatives.liquidations.counts();
        let account = self.derivatives.account();
        if self.marks.is_empty() && liquidations.kept == 0 && account.is_none() {
            return None;
        }
        let mut marks: Vec<MarkHealth> = self
            .marks
            .iter()
            .map(|e| {
                let age = now.saturating_duration_since(e.at);
                MarkHealth {
                    symbol: e.key().clone(),
                    mark: e.value.mark,
                    funding_rate: e.value.funding_rate,
                    next_funding_ms: e.value.next_funding_ms,
                    age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                    fresh: up && age <= self.stale_after,
                }
            })
            .collect();
        marks.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        Some(DerivativesHealth {
            marks,
            liquidations,
            account,
        })
    }

    /// Staleness check: sets each channel's age gauge and counts a resync (and logs) for
    /// each channel that went stale since the last sweep.
    pub fn sweep(&self, now: Instant) {
        for mut e in self.channels.iter_mut() {
            let age = now.saturating_duration_since(e.last);
            metrics::gauge!(names::STREAM_LAST_MESSAGE_AGE, "venue" => self.venue.clone(), "channel" => *e.key())
                .set(age.as_secs_f64());
            let stale = age > self.stale_after && !self.event_driven.contains_key(e.key());
            if stale && !e.stale {
                tracing::warn!(venue = %self.venue, channel = *e.key(), age = ?age, "stream channel is stale; its reads fall back to REST until it is fresh");
                metrics::counter!(names::STREAM_RESYNCS, "venue" => self.venue.clone())
                    .increment(1);
            }
            e.stale = stale;
        }
    }

    pub fn health(&self) -> FeedHealth {
        let now = Instant::now();
        let up = self.is_connected();
        let mut channels: Vec<ChannelHealth> = self
            .channels
            .iter()
            .map(|e| {
                let age = now.saturating_duration_since(e.last);
                let state = if !up {
                    FeedState::Disconnected
                } else if age > self.stale_after && !self.event_driven.contains_key(e.key()) {
                    FeedState::Stale
                } else {
                    FeedState::Connected
                };
                ChannelHealth {
                    channel: e.key().to_string(),
                    state,
                    age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                    messages: e.messages,
                }
            })
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        FeedHealth {
            venue: self.venue.clone(),
            url: self.url.clone(),
            state: if up {
                FeedState::Connected
            } else {
                FeedState::Disconnected
            },
            reconnects: self.reconnects(),
            malformed: self.malformed(),
            channels,
            derivatives: self.derivatives_health(now, up),
            balances: self.balances(),
            user: None,
            followed: self.followed.summary(),
        }
    }
}
