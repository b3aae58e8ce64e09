//! The trade tape: per venue and symbol, the newest public trades as the stream printed
//! them — aggressor side, size, price, time and the venue's trade id — so an agent can read
//! the prints newer than its cursor (the open-interest agent's whale prints).
//!
//! Owns: [`TapeTrade`], the bounded per-symbol ring ([`TradeTape`], the newest
//! [`TradeTape::PER_SYMBOL`] trades of each symbol) and its dedup by trade id: a trade the
//! ring already holds is not added again, so the snapshot Hyperliquid replays after every
//! (re)subscription, or a frame a reconnect repeats, is not counted twice. Never: I/O,
//! decides what a large trade is, or keeps anything across a restart of the engine (the
//! reader keeps its own cursor in sled).
//!
//! Sides are the *aggressor's*: Hyperliquid `trades` says it directly (`B`: the buyer took
//! liquidity, `A`: the seller did); Binance `aggTrade` says whether the buyer was the maker
//! (`m = true`: the seller was the aggressor).

use std::collections::{HashMap, HashSet, VecDeque};

use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::exchanges::types::Side;

/// One public trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeTrade {
    /// The engine's symbol (`BTC`).
    pub symbol: String,
    /// The aggressor's side: `buy` lifted an offer, `sell` hit a bid.
    pub side: Side,
    /// Base units.
    pub size: Decimal,
    pub price: Decimal,
    /// The venue's trade time (ms).
    pub time_ms: Millis,
    /// The venue's trade id (Hyperliquid `tid`, Binance aggregate trade id `a`).
    pub id: u64,
}

impl TapeTrade {
    /// Size × price, in the quote asset (USD/USDT/USDC counted 1:1 as USD).
    pub fn notional(&self) -> Decimal {
        self.size * self.price
    }
}

/// Hyperliquid's side letter: `B` the buyer was the aggressor, `A` the seller.
pub fn hyperliquid_side(side: &str) -> Option<Side> {
    match side {
        "B" => Some(Side::Buy),
        "A" => Some(Side::Sell),
        _ => None,
    }
}

/// Binance's `m` (the buyer was the maker) as the aggressor's side.
pub fn binance_aggressor(buyer_is_maker: bool) -> Side {
    if buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    }
}

#[derive(Debug, Default)]
struct SymbolTape {
    ring: VecDeque<TapeTrade>,
    ids: HashSet<u64>,
}

/// The newest trades of each symbol of one venue.
#[derive(Debug, Default)]
pub struct TradeTape {
    symbols: Mutex<HashMap<String, SymbolTape>>,
}

impl TradeTape {
    /// Trades kept per symbol: a busy BTC perpetual prints a few thousand aggregate trades
    /// a minute at peaks, so this holds at least the last minute there and hours on a quiet
    /// symbol; a reader that runs every few seconds misses none.
    pub const PER_SYMBOL: usize = 5_000;

    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `t` unless its symbol's ring already holds its id; the oldest trade goes when
    /// the ring is full. Returns whether it was added.
    pub fn push(&self, t: TapeTrade) -> bool {
        let mut symbols = self.symbols.lock();
        let tape = symbols.entry(t.symbol.clone()).or_default();
        if !tape.ids.insert(t.id) {
            return false;
        }
        if tape.ring.len() == Self::PER_SYMBOL {
            if let Some(old) = tape.ring.pop_front() {
                tape.ids.remove(&old.id);
            }
        }
        tape.ring.push_back(t);
        true
    }

    /// The kept trades of `symbol` at or after `since_ms`, in the order they arrived.
    pub fn since(&self, symbol: &str, since_ms: Millis) -> Vec<TapeTrade> {
        self.symbols
            .lock()
            .get(symbol)
            .map(|t| {
                t.ring
                    .iter()
                    .filter(|x| x.time_ms >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many trades of `symbol` are kept.
    pub fn len(&self, symbol: &str) -> usize {
        self.symbols.lock().get(symbol).map_or(0, |t| t.ring.len())
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.lock().values().all(|t| t.ring.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn t(id: u64, time_ms: Millis) -> TapeTrade {
        TapeTrade {
            symbol: "BTC".into(),
            side: Side::Buy,
            size: dec!(1),
            price: dec!(100),
            time_ms,
            id,
        }
    }

    #[test]
    fn a_trade_id_is_kept_once_and_the_ring_is_bounded() {
        let tape = TradeTape::new();
        assert!(tape.push(t(1, 10)));
        assert!(!tape.push(t(1, 10)), "a replayed trade is not added again");
        assert!(tape.push(t(2, 20)));
        assert_eq!(tape.since("BTC", 15).len(), 1);
        assert_eq!(tape.since("ETH", 0).len(), 0);
        for i in 3..(TradeTape::PER_SYMBOL as u64 + 10) {
            tape.push(t(i, i as Millis));
        }
        assert_eq!(tape.len("BTC"), TradeTape::PER_SYMBOL);
        // Id 1 left the ring: it would be taken again (the reader's own cursor stops it).
        assert!(tape.push(t(1, 10)));
    }

    #[test]
    fn sides_are_the_aggressors() {
        assert_eq!(hyperliquid_side("B"), Some(Side::Buy));
        assert_eq!(hyperliquid_side("A"), Some(Side::Sell));
        assert_eq!(hyperliquid_side("X"), None);
        assert_eq!(binance_aggressor(true), Side::Sell);
        assert_eq!(binance_aggressor(false), Side::Buy);
    }

    /// Hyperliquid's recorded `recentTrades` answer for BTC (vectors
    /// `hyperliquid/http_recent_trades_btc.json`): the same `WsTrade` objects the `trades`
    /// channel pushes, newest first.
    const HL_TRADES: &str = r#"[
      {"coin":"BTC","side":"A","px":"104320.0","sz":"0.01500","hash":"0x0000000000000000000000000000000000000000000000000000000000000003","time":1769916002000,"tid":300003,"users":["0xbuyer3","0xseller3"]},
      {"coin":"BTC","side":"B","px":"104310.5","sz":"0.02000","hash":"0x0000000000000000000000000000000000000000000000000000000000000002","time":1769916001000,"tid":300002,"users":["0xbuyer2","0xseller2"]},
      {"coin":"BTC","side":"A","px":"104300.0","sz":"0.00500","hash":"0x0000000000000000000000000000000000000000000000000000000000000001","time":1769916000000,"tid":300001,"users":["0xbuyer1","0xseller1"]}
    ]"#;

    /// Binance's documented `aggTrade` (vectors
    /// `binance/futures/market_data_json/agg_trade_stream.json`).
    const AGG_TRADE: &str = r#"{"e":"aggTrade","E":123456789,"a":5933014,"s":"BTCUSDT","p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true,"st":1}"#;

    fn feed(venue: &str) -> std::sync::Arc<crate::exchanges::stream::VenueFeed> {
        crate::exchanges::stream::StreamBook::new().register(
            venue,
            "ws://127.0.0.1:1",
            std::time::Duration::from_secs(5),
        )
    }

    #[test]
    fn hyperliquid_trades_frames_fill_the_tape_once_per_tid() {
        use crate::exchanges::stream::hyperliquid::{apply, parse};
        let feed = feed("hl");
        let frame = format!(r#"{{"channel":"trades","data":{HL_TRADES}}}"#);
        let now = tokio::time::Instant::now();
        assert_eq!(apply(parse(&frame).unwrap(), &feed, now), "trades");
        // The snapshot again (as after a resubscription): nothing new.
        apply(parse(&frame).unwrap(), &feed, now);
        let kept = feed.tape().since("BTC", 0);
        assert_eq!(kept.len(), 3);
        let t = kept.iter().find(|t| t.id == 300002).unwrap();
        assert_eq!(
            (t.side, t.size, t.price, t.time_ms),
            (Side::Buy, dec!(0.02000), dec!(104310.5), 1769916001000)
        );
        assert_eq!(t.notional(), dec!(2086.21));
        let a = kept.iter().find(|t| t.id == 300003).unwrap();
        assert_eq!(a.side, Side::Sell, "A: the seller was the aggressor");
        assert_eq!(feed.tape().since("BTC", 1769916001000).len(), 2);
    }

    #[test]
    fn binance_agg_trades_fill_the_tape_with_the_aggressor_side() {
        use crate::exchanges::binance_futures::BinanceFuturesConfig;
        use crate::exchanges::stream::binance_futures::{market, parse_combined, ContractNames};
        let cfg = BinanceFuturesConfig {
            symbols: vec!["BTC".into()],
            ..BinanceFuturesConfig::default()
        };
        let fut = feed("bnf");
        let frame = format!(r#"{{"stream":"btcusdt@aggTrade","data":{AGG_TRADE}}}"#);
        let now = tokio::time::Instant::now();
        let names = ContractNames::new(&cfg);
        market::apply(parse_combined(&frame).unwrap(), &names, &fut, now).unwrap();
        market::apply(parse_combined(&frame).unwrap(), &names, &fut, now).unwrap();
        let kept = fut.tape().since("BTC", 0);
        assert_eq!(kept.len(), 1, "one aggregate trade id, kept once");
        assert_eq!(
            (
                kept[0].side,
                kept[0].size,
                kept[0].price,
                kept[0].time_ms,
                kept[0].id
            ),
            (Side::Sell, dec!(100), dec!(0.001), 123456785, 5933014)
        );

        // Spot streams the same payload.
        use crate::exchanges::binance::BinanceConfig;
        use crate::exchanges::stream::binance::spot::{parse, SpotMarketProtocol};
        let spot = feed("bn");
        let mut p = SpotMarketProtocol::new(
            "bn",
            &BinanceConfig::default(),
            &["BTC".to_string()],
            &[],
            None,
            crate::clock::system_clock(),
        );
        let frame = format!(r#"{{"stream":"btcusdt@aggTrade","data":{AGG_TRADE}}}"#);
        p.apply(parse(&frame).unwrap(), &spot, now);
        let kept = spot.tape().since("BTC", 0);
        assert_eq!(
            (kept.len(), kept[0].side, kept[0].id),
            (1, Side::Sell, 5933014)
        );
    }
}
