//! Binance spot market streams on one combined connection: `<pair>@bookTicker` → quotes,
//! `<pair>@aggTrade` → last trade and the trade tape, `<pair>@kline_<interval>` → candles, and
//! `<pair>@depth@100ms` → a local order book per symbol kept in sync with REST snapshots.
//!
//! Shapes from Binance spot "WebSocket Streams" (developers.binance.com): the connection
//! is `<ws_url>/stream?streams=<name>/<name>...` with lower-case pairs; each frame is the
//! combined envelope ([`super::envelope`]); the bookTicker payload is
//! `{"u","s","b","B","a","A"}` (no event type or time), aggTrade
//! `{"e":"aggTrade","E","s","a","p","q","f","l","T","m","M"}`, kline
//! `{"e":"kline","E","s","k":{"t","T","s","i","f","L","o","c","h","l","v","n","x","q","V",
//! "Q","B"}}`, depthUpdate `{"e":"depthUpdate","E","s","U","u","b","a"}`. The server pings
//! every 20 s and drops a connection that does not pong within a minute (tungstenite answers
//! pings as it reads); a connection lives at most 24 hours, so this one is rotated before
//! (`stream_max_lifetime`).
//!
//! Owns: the stream names of a venue's symbols and timeframes, reading each payload,
//! applying it to the [`VenueFeed`] (quotes from bookTicker; the depth book's top as the
//! quote while that symbol's bookTicker is stale), the depth books ([`DepthBooks`], read
//! without a round trip) and their resync from snapshots fetched on the loop's periodic
//! tick through a [`DepthSource`] (the spot venue: its weight drawn from the account's
//! limiter), with a growing wait after a failed snapshot. Counts each resync (a gap in
//! the depth stream) in `orrery_stream_resyncs_total` and logs it. Never: a panic on a
//! frame, a book served while out of sync, orders.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use tokio::time::Instant;

use super::depth::{
    DepthSnapshot, DepthSync, DepthUpdate, EventOutcome, Levels, LocalBook, SnapshotOutcome,
};
use super::envelope::{combined_url, parse_combined, StreamPayload};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::binance::BinanceConfig;
use crate::exchanges::stream::book::VenueFeed;
use crate::exchanges::stream::connection::{StreamError, StreamSettings};
use crate::exchanges::stream::protocol::{FrameError, Protocol};
use crate::exchanges::types::{Candle, Quote, Timeframe};
use crate::exchanges::venue::VenueError;
use crate::telemetry::names;

/// Levels of the depth snapshot (`limit=1000`, weight 50).
pub const SNAPSHOT_LIMIT: u32 = 1000;

/// The connection settings of a Binance stream: the server pings every 20 s (spot; the
/// client sends no heartbeat of its own), so a connection that sent nothing — not even a
/// ping — for 20 s + 20 s is presumed dead and replaced.
pub fn settings(venue: &str, url: &str, stale_after: Duration) -> StreamSettings {
    let mut s = StreamSettings::new(venue, url, stale_after);
    s.ping_interval = Duration::from_secs(20);
    s.pong_timeout = Duration::from_secs(20);
    s
}

/// `<symbol>@bookTicker`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BookTicker {
    /// Order book update id.
    pub u: u64,
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "b")]
    pub bid: Decimal,
    #[serde(rename = "B")]
    pub bid_qty: Decimal,
    #[serde(rename = "a")]
    pub ask: Decimal,
    #[serde(rename = "A")]
    pub ask_qty: Decimal,
}

/// `<symbol>@aggTrade`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AggTrade {
    #[serde(rename = "E")]
    pub event_time: Millis,
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "a")]
    pub id: u64,
    #[serde(rename = "p")]
    pub price: Decimal,
    #[serde(rename = "q")]
    pub qty: Decimal,
    #[serde(rename = "T")]
    pub trade_time: Millis,
    /// The buyer was the maker.
    #[serde(rename = "m")]
    pub buyer_maker: bool,
}

/// The `k` object of `<symbol>@kline_<interval>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KlineData {
    #[serde(rename = "t")]
    pub open_time: Millis,
    #[serde(rename = "T")]
    pub close_time: Millis,
    #[serde(rename = "i")]
    pub interval: String,
    #[serde(rename = "o")]
    pub open: Decimal,
    #[serde(rename = "c")]
    pub close: Decimal,
    #[serde(rename = "h")]
    pub high: Decimal,
    #[serde(rename = "l")]
    pub low: Decimal,
    #[serde(rename = "v")]
    pub volume: Decimal,
    /// The candle is closed.
    #[serde(rename = "x")]
    pub closed: bool,
}

/// `<symbol>@kline_<interval>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Kline {
    #[serde(rename = "E")]
    pub event_time: Millis,
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "k")]
    pub kline: KlineData,
}

/// One spot market payload, by stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpotMarket {
    BookTicker(BookTicker),
    AggTrade(AggTrade),
    Kline(Kline),
    Depth(DepthUpdate),
}

impl SpotMarket {
    pub fn channel(&self) -> &'static str {
        match self {
            Self::BookTicker(_) => "bookTicker",
            Self::AggTrade(_) => "aggTrade",
            Self::Kline(_) => "kline",
            Self::Depth(_) => "depth",
        }
    }
}

impl StreamPayload for SpotMarket {
    fn from_stream<'de, D: Deserializer<'de>>(stream: &str, d: D) -> Result<Self, D::Error> {
        let kind = stream.split_once('@').map(|(_, k)| k).unwrap_or("");
        if kind == "bookTicker" {
            BookTicker::deserialize(d).map(Self::BookTicker)
        } else if kind == "aggTrade" {
            AggTrade::deserialize(d).map(Self::AggTrade)
        } else if kind.starts_with("kline_") {
            Kline::deserialize(d).map(Self::Kline)
        } else if kind.starts_with("depth") {
            DepthUpdate::deserialize(d).map(Self::Depth)
        } else {
            Err(de::Error::custom(format_args!(
                "stream `{stream}` is not one this engine subscribes to"
            )))
        }
    }
}

/// Parses one frame of the market connection.
pub fn parse(text: &str) -> Result<SpotMarket, FrameError> {
    parse_combined::<SpotMarket>(text)
        .map(|c| c.data)
        .map_err(|source| FrameError::malformed("Binance", source, text))
}

/// Where depth snapshots come from (the spot venue; a test's fake).
pub trait DepthSource: Send + Sync + 'static {
    /// `GET /api/v3/depth?symbol=<pair of symbol>&limit=1000`, under its own deadline.
    fn depth_snapshot<'a>(
        &'a self,
        symbol: &'a str,
    ) -> BoxFuture<'a, Result<DepthSnapshot, VenueError>>;
}

/// The venue's depth books, readable without a round trip. Cloning shares them.
#[derive(Clone, Default)]
pub struct DepthBooks {
    books: Arc<DashMap<String, DepthSync>>,
}

impl std::fmt::Debug for DepthBooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepthBooks")
            .field("symbols", &self.books.len())
            .finish()
    }
}

impl DepthBooks {
    /// The best `levels` bids (highest first) and asks (lowest first) of `symbol`, while
    /// its book is in sync; `None` while it is being (re)built.
    pub fn top(&self, symbol: &str, levels: usize) -> Option<(Levels, Levels)> {
        self.books.get(symbol)?.book().map(|b| b.top(levels))
    }

    /// A copy of `symbol`'s synced book.
    pub fn book(&self, symbol: &str) -> Option<LocalBook> {
        self.books.get(symbol)?.book().cloned()
    }

    fn reset_all(&self) {
        for mut b in self.books.iter_mut() {
            b.reset();
        }
    }
}

/// Counts a test or status may read.
#[derive(Debug, Default)]
pub struct DepthCounts {
    /// Gaps in the depth stream (each rebuilt from a new snapshot).
    pub resyncs: AtomicU64,
    /// Snapshots fetched.
    pub snapshots: AtomicU64,
    /// Books synced from a snapshot.
    pub synced: AtomicU64,
}

struct Retry {
    at: Instant,
    failures: u32,
}

/// The spot market-data protocol.
pub struct SpotMarketProtocol {
    venue: String,
    streams: Vec<String>,
    /// Binance pair → our symbol.
    symbols: HashMap<String, String>,
    depth: Option<Arc<dyn DepthSource>>,
    books: DepthBooks,
    retry: HashMap<String, Retry>,
    /// When each symbol's bookTicker last spoke (the depth book's top stands in while it is
    /// older than the feed's `stale_after`).
    ticker_at: HashMap<String, Instant>,
    max_lifetime: Option<Duration>,
    snapshot_timeout: Duration,
    clock: SharedClock,
    counts: Arc<DepthCounts>,
}

impl SpotMarketProtocol {
    /// Streams for `symbols` (ours: `BTC`) with candles of each of `timeframes`; the depth
    /// stream only with a `depth` source.
    pub fn new(
        venue: &str,
        config: &BinanceConfig,
        symbols: &[String],
        timeframes: &[Timeframe],
        depth: Option<Arc<dyn DepthSource>>,
        clock: SharedClock,
    ) -> Self {
        let mut streams = Vec::new();
        let mut pairs = HashMap::new();
        for symbol in symbols {
            let pair = config.pair_of(symbol);
            let lower = pair.to_ascii_lowercase();
            streams.push(format!("{lower}@bookTicker"));
            streams.push(format!("{lower}@aggTrade"));
            for tf in timeframes {
                streams.push(format!("{lower}@kline_{}", tf.as_str()));
            }
            if depth.is_some() {
                streams.push(format!("{lower}@depth@100ms"));
            }
            pairs.insert(pair, symbol.clone());
        }
        Self {
            venue: venue.to_string(),
            streams,
            symbols: pairs,
            depth,
            books: DepthBooks::default(),
            retry: HashMap::new(),
            ticker_at: HashMap::new(),
            max_lifetime: None,
            snapshot_timeout: config.request_timeout + Duration::from_secs(5),
            clock,
            counts: Arc::default(),
        }
    }

    /// Rotates each connection after `life` (Binance ends connections at 24 h).
    pub fn with_max_lifetime(mut self, life: Duration) -> Self {
        self.max_lifetime = Some(life);
        self
    }

    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    pub fn books(&self) -> DepthBooks {
        self.books.clone()
    }

    pub fn counts(&self) -> Arc<DepthCounts> {
        self.counts.clone()
    }

    fn symbol(&self, pair: &str) -> Option<&String> {
        self.symbols.get(pair)
    }

    /// Applies a parsed payload.
    pub fn apply(&mut self, frame: SpotMarket, feed: &VenueFeed, now: Instant) -> &'static str {
        let channel = frame.channel();
        match frame {
            SpotMarket::BookTicker(t) => {
                if let Some(symbol) = self.symbol(&t.pair).cloned() {
                    self.ticker_at.insert(symbol.clone(), now);
                    feed.put_quote(
                        Quote {
                            symbol,
                            bid: t.bid,
                            ask: t.ask,
                            // The payload carries no time: it is the book as of receipt.
                            time_ms: self.clock.now_ms(),
                            fallback: None,
                        },
                        now,
                    );
                }
            }
            SpotMarket::AggTrade(t) => {
                if let Some(symbol) = self.symbol(&t.pair).cloned() {
                    feed.put_tape_trade(
                        crate::exchanges::stream::tape::TapeTrade {
                            symbol,
                            side: crate::exchanges::stream::tape::binance_aggressor(t.buyer_maker),
                            size: t.qty,
                            price: t.price,
                            time_ms: t.trade_time,
                            id: t.id,
                        },
                        now,
                    );
                }
            }
            SpotMarket::Kline(k) => {
                if let (Some(symbol), Ok(tf)) =
                    (self.symbol(&k.pair), k.kline.interval.parse::<Timeframe>())
                {
                    let c = &k.kline;
                    feed.put_candle(
                        symbol,
                        tf,
                        Candle {
                            open_time_ms: c.open_time,
                            open: c.open,
                            high: c.high,
                            low: c.low,
                            close: c.close,
                            volume: c.volume,
                        },
                        now,
                    );
                }
            }
            SpotMarket::Depth(e) => {
                if let Some(symbol) = self.symbol(&e.pair).cloned() {
                    self.on_depth(&symbol, e, feed, now);
                }
            }
        }
        channel
    }

    fn on_depth(&mut self, symbol: &str, e: DepthUpdate, feed: &VenueFeed, now: Instant) {
        let event_time = e.event_time;
        let mut sync = self.books.books.entry(symbol.to_string()).or_default();
        match sync.on_event(e) {
            EventOutcome::Gap { expected, first } => {
                drop(sync);
                self.counts.resyncs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::STREAM_RESYNCS, "venue" => self.venue.clone())
                    .increment(1);
                tracing::warn!(venue = %self.venue, symbol, expected, first, "depth update missing; the book is rebuilt from a new snapshot");
            }
            EventOutcome::Applied => {
                let top = sync.book().map(|b| (b.best_bid(), b.best_ask()));
                drop(sync);
                if let Some((Some((bid, _)), Some((ask, _)))) = top {
                    self.quote_from_book(symbol, bid, ask, event_time, feed, now);
                }
            }
            EventOutcome::Buffered | EventOutcome::Dropped => {}
        }
    }

    /// Fetches a snapshot for every symbol whose book waits for one (and whose wait after
    /// a failure is over), and applies it.
    pub async fn resync_due(&mut self, feed: &VenueFeed, now: Instant) {
        let Some(source) = self.depth.clone() else {
            return;
        };
        let due: Vec<String> = self
            .books
            .books
            .iter()
            .filter(|b| b.needs_snapshot())
            .map(|b| b.key().clone())
            .filter(|s| self.retry.get(s).is_none_or(|r| now >= r.at))
            .collect();
        for symbol in due {
            self.counts.snapshots.fetch_add(1, Ordering::Relaxed);
            let got =
                tokio::time::timeout(self.snapshot_timeout, source.depth_snapshot(&symbol)).await;
            let snapshot = match got {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    self.snapshot_failed(&symbol, now, &e.to_string());
                    continue;
                }
                Err(_) => {
                    self.snapshot_failed(
                        &symbol,
                        now,
                        &format!("no answer within {:?}", self.snapshot_timeout),
                    );
                    continue;
                }
            };
            let Some(mut sync) = self.books.books.get_mut(&symbol) else {
                continue;
            };
            match sync.on_snapshot(&snapshot) {
                SnapshotOutcome::Synced { applied, dropped } => {
                    let top = sync.book().map(|b| (b.best_bid(), b.best_ask()));
                    drop(sync);
                    if let Some((Some((bid, _)), Some((ask, _)))) = top {
                        self.quote_from_book(&symbol, bid, ask, self.clock.now_ms(), feed, now);
                    }
                    self.retry.remove(&symbol);
                    self.counts.synced.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(venue = %self.venue, symbol, last_update_id = snapshot.last_update_id, applied, dropped, "depth book in sync");
                }
                SnapshotOutcome::TooOld {
                    last_update_id,
                    first_buffered,
                } => {
                    tracing::debug!(venue = %self.venue, symbol, last_update_id, first_buffered, "depth snapshot older than the buffered events; fetching another");
                }
                SnapshotOutcome::Gap { expected, first } => {
                    tracing::warn!(venue = %self.venue, symbol, expected, first, "buffered depth events do not continue the snapshot; fetching another");
                }
            }
        }
    }

    /// The depth book's top as the quote, only while the symbol's bookTicker is stale
    /// (bookTicker is the quote stream: it is pushed on every change of the touch).
    fn quote_from_book(
        &self,
        symbol: &str,
        bid: Decimal,
        ask: Decimal,
        time_ms: Millis,
        feed: &VenueFeed,
        now: Instant,
    ) {
        let ticker_fresh = self
            .ticker_at
            .get(symbol)
            .is_some_and(|at| now.saturating_duration_since(*at) <= feed.stale_after());
        if ticker_fresh || bid >= ask {
            return;
        }
        feed.put_quote(
            Quote {
                symbol: symbol.to_string(),
                bid,
                ask,
                time_ms,
                fallback: None,
            },
            now,
        );
    }

    fn snapshot_failed(&mut self, symbol: &str, now: Instant, why: &str) {
        let r = self.retry.entry(symbol.to_string()).or_insert(Retry {
            at: now,
            failures: 0,
        });
        r.failures = r.failures.saturating_add(1);
        // 1 s, 2 s, 4 s ... at most a minute: a snapshot costs 50 weight.
        let wait = Duration::from_secs(1 << r.failures.min(6).saturating_sub(1))
            .min(Duration::from_secs(60));
        r.at = now + wait;
        tracing::warn!(venue = %self.venue, symbol, error = why, retry_in = ?wait, "depth snapshot failed; the book stays unserved until one arrives");
    }
}

impl Protocol for SpotMarketProtocol {
    fn connect_url<'a>(
        &'a mut self,
        configured: &'a str,
    ) -> BoxFuture<'a, Result<String, StreamError>> {
        let url = combined_url(configured, &self.streams);
        Box::pin(async move { Ok(url) })
    }

    fn subscribe_messages(&self) -> Vec<String> {
        // The URL names the streams.
        Vec::new()
    }

    fn heartbeat(&self) -> Option<String> {
        // The server pings; tungstenite answers with pongs.
        None
    }

    fn on_text(
        &mut self,
        text: &str,
        feed: &VenueFeed,
        now: Instant,
    ) -> Result<&'static str, FrameError> {
        let frame = parse(text)?;
        Ok(self.apply(frame, feed, now))
    }

    fn on_connected(&mut self, _feed: &VenueFeed) {
        // A new connection: every book is rebuilt from its events and a new snapshot.
        self.books.reset_all();
        self.retry.clear();
        self.ticker_at.clear();
    }

    fn on_tick<'a>(
        &'a mut self,
        feed: &'a VenueFeed,
        now: Instant,
    ) -> BoxFuture<'a, Result<(), StreamError>> {
        Box::pin(async move {
            self.resync_due(feed, now).await;
            Ok(())
        })
    }

    fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    fn on_disconnected<'a>(&'a mut self, _feed: &'a VenueFeed) -> BoxFuture<'a, ()> {
        self.books.reset_all();
        Box::pin(async {})
    }
}
