//! The market connection of a Binance USDⓈ-M futures venue: one combined stream
//! (`<ws_url>/stream?streams=btcusdt@markPrice@1s/btcusdt@aggTrade/btcusdt@bookTicker/
//! .../!forceOrder@arr`) applied to the venue's [`VenueFeed`].
//!
//! Facts (developers.binance.com, USDⓈ-M futures "Websocket Market Streams"): combined
//! streams are named in the URL, so nothing is sent after connecting; stream names are
//! lowercase; the server pings every 3 minutes and tungstenite answers with a pong; a
//! connection lives at most 24 hours, so this protocol asks the loop to rotate it a little
//! before ([`ROTATE_AFTER`]).
//!
//! Owns: the stream names, the contract ↔ symbol mapping of frames, and where each event
//! goes: `bookTicker` → the quote the gateway serves while fresh, `aggTrade` → last trade and the trade tape,
//! `markPrice` → mark/index/funding (`fresh_mark`), `forceOrder` → the liquidation tape.
//! Never: I/O of its own, orders, or the account (that is the user connection,
//! [`super::user`]).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::frames::{self, FuturesEvent};
use crate::exchanges::binance_futures::BinanceFuturesConfig;
use crate::exchanges::stream::book::VenueFeed;
use crate::exchanges::stream::derivatives::{Liquidation, MarkPrice};
use crate::exchanges::stream::protocol::{FrameError, Protocol};
use crate::exchanges::types::{Quote, Side};

/// Binance ends a connection at 24 h; the loop replaces it 10 minutes earlier, at a moment
/// of its choosing, and resubscribes at once.
pub const ROTATE_AFTER: Duration = Duration::from_secs(24 * 3600 - 600);

/// The all-market liquidation stream.
pub const LIQUIDATIONS_STREAM: &str = "!forceOrder@arr";

/// Maps the venue's contract names to the engine's symbols.
#[derive(Debug, Clone, Default)]
pub struct ContractNames {
    /// Configured (and overridden) contracts → symbol.
    known: HashMap<String, String>,
    quote_asset: String,
}

impl ContractNames {
    pub fn new(cfg: &BinanceFuturesConfig) -> Self {
        let mut known: HashMap<String, String> = cfg
            .symbols
            .iter()
            .map(|s| (cfg.pair_of(s), s.clone()))
            .collect();
        for (symbol, pair) in &cfg.pairs {
            known.insert(pair.clone(), symbol.clone());
        }
        Self {
            known,
            quote_asset: cfg.quote_asset.clone(),
        }
    }

    /// The engine's symbol of `pair`: a configured one, else the pair without the quote
    /// asset (`DOGEUSDT` → `DOGE`), else the pair itself (`BTCUSDC` on a USDT account).
    pub fn symbol(&self, pair: &str) -> String {
        if let Some(s) = self.known.get(pair) {
            return s.clone();
        }
        pair.strip_suffix(self.quote_asset.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(pair)
            .to_string()
    }

    /// The configured contracts (lowercase, as stream names want them), sorted.
    pub fn stream_pairs(&self) -> Vec<String> {
        let mut pairs: Vec<String> = self.known.keys().map(|p| p.to_lowercase()).collect();
        pairs.sort();
        pairs
    }
}

/// `BUY`/`SELL`.
pub fn parse_side(s: &str) -> Option<Side> {
    match s {
        "BUY" => Some(Side::Buy),
        "SELL" => Some(Side::Sell),
        _ => None,
    }
}

/// The combined market stream of one futures venue.
#[derive(Debug, Clone)]
pub struct FuturesMarketProtocol {
    names: ContractNames,
    streams: Vec<String>,
}

impl FuturesMarketProtocol {
    /// Mark price (every second), aggregate trades and the book ticker of each configured
    /// contract, and the all-market liquidations.
    pub fn new(cfg: &BinanceFuturesConfig) -> Self {
        let names = ContractNames::new(cfg);
        let mut streams = Vec::new();
        for pair in names.stream_pairs() {
            streams.push(format!("{pair}@markPrice@1s"));
            streams.push(format!("{pair}@aggTrade"));
            streams.push(format!("{pair}@bookTicker"));
        }
        streams.push(LIQUIDATIONS_STREAM.to_string());
        Self { names, streams }
    }

    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// `<base>/stream?streams=a/b/c`.
    pub fn url(&self, base: &str) -> String {
        crate::exchanges::stream::binance::combined_url(base, &self.streams)
    }
}

impl Protocol for FuturesMarketProtocol {
    fn connect_url<'a>(
        &'a mut self,
        configured: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<String, crate::exchanges::stream::StreamError>> {
        let url = self.url(configured);
        Box::pin(async move { Ok(url) })
    }

    fn subscribe_messages(&self) -> Vec<String> {
        Vec::new()
    }

    fn heartbeat(&self) -> Option<String> {
        None
    }

    fn on_text(
        &mut self,
        text: &str,
        feed: &VenueFeed,
        now: Instant,
    ) -> Result<&'static str, FrameError> {
        let event = frames::parse_combined(text)?;
        apply(event, &self.names, feed, now)
    }

    fn max_lifetime(&self) -> Option<Duration> {
        Some(ROTATE_AFTER)
    }
}

fn invalid(reason: String) -> FrameError {
    FrameError::Invalid {
        venue: "Binance futures",
        reason,
    }
}

/// Applies one market event; returns its channel. A user-stream event on this connection
/// is not expected and is only counted.
pub fn apply(
    event: FuturesEvent,
    names: &ContractNames,
    feed: &VenueFeed,
    now: Instant,
) -> Result<&'static str, FrameError> {
    let channel = event.channel();
    match event {
        FuturesEvent::BookTicker(b) => {
            if b.bid > b.ask || b.bid <= rust_decimal::Decimal::ZERO {
                return Err(invalid(format!(
                    "bookTicker {} has bid {} and ask {}",
                    b.pair, b.bid, b.ask
                )));
            }
            feed.put_quote(
                Quote {
                    symbol: names.symbol(&b.pair),
                    bid: b.bid,
                    ask: b.ask,
                    time_ms: b.transaction_ms,
                    fallback: None,
                },
                now,
            );
        }
        FuturesEvent::AggTrade(t) => feed.put_tape_trade(
            crate::exchanges::stream::tape::TapeTrade {
                symbol: names.symbol(&t.pair),
                side: crate::exchanges::stream::tape::binance_aggressor(t.buyer_is_maker),
                size: t.qty,
                price: t.price,
                time_ms: t.trade_ms,
                id: t.agg_id,
            },
            now,
        ),
        FuturesEvent::MarkPrice(m) => feed.put_mark(
            MarkPrice {
                symbol: names.symbol(&m.pair),
                mark: m.mark,
                index: m.index,
                funding_rate: m.funding_rate,
                next_funding_ms: (m.next_funding_ms > 0).then_some(m.next_funding_ms),
                time_ms: m.event_ms,
            },
            now,
        ),
        FuturesEvent::ForceOrder(f) => {
            let o = f.order;
            let side = parse_side(&o.side)
                .ok_or_else(|| invalid(format!("forceOrder side `{}`", o.side)))?;
            if o.filled < rust_decimal::Decimal::ZERO || o.avg_price < rust_decimal::Decimal::ZERO {
                return Err(invalid(format!(
                    "forceOrder {} with negative quantity or price",
                    o.pair
                )));
            }
            feed.derivatives().liquidations.push(Liquidation {
                symbol: names.symbol(&o.pair),
                side,
                price: o.price,
                qty: o.filled,
                avg_price: o.avg_price,
                status: o.status,
                time_ms: o.trade_ms,
            });
        }
        FuturesEvent::OrderTradeUpdate(_)
        | FuturesEvent::AccountUpdate(_)
        | FuturesEvent::AlgoUpdate(_)
        | FuturesEvent::ListenKeyExpired(_)
        | FuturesEvent::Other => {}
    }
    Ok(channel)
}
