//! Hyperliquid's websocket protocol: subscription messages, the heartbeat, and the typed
//! frames of the public `allMids`, `l2Book`, `bbo`, `trades` and `candle` channels (the
//! user channels' frames are typed and handled in [`super::hyperliquid_user`]).
//!
//! Shapes follow the official docs (hyperliquid.gitbook.io/hyperliquid-docs/for-developers/
//! api/websocket and its `subscriptions` and `timeouts-and-heartbeats` pages) and the
//! official Python SDK's `websocket_manager.py`: a subscription is
//! `{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}`, acknowledged by
//! `{"channel":"subscriptionResponse","data":{...}}`; data frames are
//! `{"channel":<name>,"data":<payload>}`; the client sends `{"method":"ping"}` and the server
//! answers `{"channel":"pong"}`; the server closes a connection that sent nothing for 60 s
//! (the SDK pings every 50 s).
//!
//! Owns: parsing one frame into an [`HlFrame`] (one pass of serde over the text),
//! applying it to a [`VenueFeed`], and the [`HyperliquidProtocol`] the connection loop runs. Never: I/O, and never a panic on bad input — a frame that
//! is not JSON or not a known shape is a [`FrameError`].

use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::time::Instant;

use super::book::VenueFeed;
use super::hyperliquid_user::{self as user, UserStreams, WsUserEvent, WsUserFills};
pub use super::protocol::FrameError;
use super::protocol::Protocol;
use crate::clock::Millis;
use crate::exchanges::hyperliquid::info::parse_clearinghouse_state;
use crate::exchanges::hyperliquid::info::{BookLevel, L2Book, OrderWithStatusWire};
use crate::exchanges::types::{AccountState, Candle, Quote, Timeframe};

/// The heartbeat the client sends.
pub const PING: &str = r#"{"method":"ping"}"#;

/// One subscription of the public market-data channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    AllMids,
    L2Book {
        coin: String,
    },
    Bbo {
        coin: String,
    },
    Trades {
        coin: String,
    },
    Candle {
        coin: String,
        interval: String,
    },
    /// The account's balances and positions, pushed as they change.
    ClearinghouseState {
        user: String,
    },
}

impl Subscription {
    /// The channel's name as the server labels its frames.
    pub fn channel(&self) -> &'static str {
        match self {
            Self::AllMids => "allMids",
            Self::L2Book { .. } => "l2Book",
            Self::Bbo { .. } => "bbo",
            Self::Trades { .. } => "trades",
            Self::Candle { .. } => "candle",
            Self::ClearinghouseState { .. } => "clearinghouseState",
        }
    }

    /// The `subscription` object.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::AllMids => json!({"type": "allMids"}),
            Self::L2Book { coin } => json!({"type": "l2Book", "coin": coin}),
            Self::Bbo { coin } => json!({"type": "bbo", "coin": coin}),
            Self::Trades { coin } => json!({"type": "trades", "coin": coin}),
            Self::Candle { coin, interval } => {
                json!({"type": "candle", "coin": coin, "interval": interval})
            }
            Self::ClearinghouseState { user } => {
                json!({"type": "clearinghouseState", "user": user})
            }
        }
    }

    /// The message that subscribes.
    pub fn subscribe_message(&self) -> String {
        serde_json::json!({"method": "subscribe", "subscription": self.to_json()}).to_string()
    }

    /// The public subscriptions for `coins`: `allMids` once, then `bbo`, `l2Book`, `trades`
    /// and 1-minute `candle` per coin.
    pub fn public_set(coins: &[String]) -> Vec<Self> {
        Self::public_set_with(coins, &[Timeframe::M1])
    }

    /// As [`Self::public_set`], with a `candle` subscription per coin for each of
    /// `timeframes` (the agents' timeframes on this venue).
    pub fn public_set_with(coins: &[String], timeframes: &[Timeframe]) -> Vec<Self> {
        let mut subs = vec![Self::AllMids];
        for coin in coins {
            subs.push(Self::Bbo { coin: coin.clone() });
            subs.push(Self::L2Book { coin: coin.clone() });
            subs.push(Self::Trades { coin: coin.clone() });
            for tf in timeframes {
                subs.push(Self::Candle {
                    coin: coin.clone(),
                    interval: tf.as_str().into(),
                });
            }
        }
        subs
    }
}

/// `WsTrade` of the docs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsTrade {
    pub coin: String,
    /// `B` (the buyer was the aggressor) or `A` (the seller was).
    pub side: String,
    pub px: Decimal,
    pub sz: Decimal,
    pub time: Millis,
    pub tid: u64,
}

/// `Candle` of the docs (prices and volume arrive as decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsCandle {
    /// Open time, ms.
    pub t: Millis,
    /// Close time, ms.
    #[serde(rename = "T")]
    pub close_time: Millis,
    /// Coin.
    pub s: String,
    /// Interval.
    pub i: String,
    pub o: Decimal,
    pub c: Decimal,
    pub h: Decimal,
    pub l: Decimal,
    pub v: Decimal,
    /// Number of trades.
    pub n: u64,
}

/// `WsBbo` of the docs: best bid and ask, either side may be absent (`null`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsBbo {
    pub coin: String,
    pub time: Millis,
    pub bbo: [Option<BookLevel>; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllMids {
    pub mids: std::collections::HashMap<String, Decimal>,
}

/// The `clearinghouseState` channel's data: the same account object the REST
/// `clearinghouseState` request answers, wrapped with the user and the dex (`""` for the
/// main perp dex). Shape from the official TypeScript SDK's subscription types
/// (`ClearinghouseStateEvent`); no recorded frame was available.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsClearinghouse {
    pub user: String,
    #[serde(default)]
    pub dex: String,
    #[serde(rename = "clearinghouseState")]
    pub state: serde_json::Value,
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "channel", content = "data")]
pub enum HlFrame {
    #[serde(rename = "pong")]
    Pong,
    #[serde(rename = "subscriptionResponse")]
    Subscribed(serde_json::Value),
    #[serde(rename = "allMids")]
    AllMids(AllMids),
    #[serde(rename = "l2Book")]
    L2Book(L2Book),
    #[serde(rename = "bbo")]
    Bbo(WsBbo),
    #[serde(rename = "trades")]
    Trades(Vec<WsTrade>),
    #[serde(rename = "candle")]
    Candle(WsCandle),
    #[serde(rename = "clearinghouseState")]
    ClearinghouseState(WsClearinghouse),
    /// The server refused something (e.g. an unknown coin): the text says what.
    #[serde(rename = "error")]
    Error(serde_json::Value),
    /// The account's order states (`WsOrder[]`).
    #[serde(rename = "orderUpdates")]
    OrderUpdates(Vec<OrderWithStatusWire>),
    /// A user's fills (`WsUserFills`).
    #[serde(rename = "userFills")]
    UserFills(WsUserFills),
    /// The account's events (`WsUserEvent`), on channel `user`.
    #[serde(rename = "user")]
    UserEvents(WsUserEvent),
}

impl HlFrame {
    pub fn channel(&self) -> &'static str {
        match self {
            Self::Pong => "pong",
            Self::Subscribed(_) => "subscriptionResponse",
            Self::AllMids(_) => "allMids",
            Self::L2Book(_) => "l2Book",
            Self::Bbo(_) => "bbo",
            Self::Trades(_) => "trades",
            Self::Candle(_) => "candle",
            Self::ClearinghouseState(_) => "clearinghouseState",
            Self::Error(_) => "error",
            Self::OrderUpdates(_) => user::ORDER_UPDATES,
            Self::UserFills(_) => user::USER_FILLS,
            Self::UserEvents(_) => user::USER_EVENTS,
        }
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<HlFrame, FrameError> {
    serde_json::from_str(text).map_err(|source| FrameError::malformed("Hyperliquid", source, text))
}

/// Hyperliquid's protocol for the connection loop: subscribe after connecting, ping every
/// `ping_interval`, one frame type per channel.
#[derive(Debug, Clone)]
pub struct HyperliquidProtocol {
    pub subscriptions: Vec<Subscription>,
    /// The account's user channels and followed wallets, if any.
    user: Option<UserStreams>,
}

impl HyperliquidProtocol {
    /// The public market-data channels for `coins` ([`Subscription::public_set`]).
    pub fn public(coins: &[String]) -> Self {
        Self {
            subscriptions: Subscription::public_set(coins),
            user: None,
        }
    }

    /// The public channels for `coins`, with candles of each of `timeframes`.
    pub fn public_with(coins: &[String], timeframes: &[Timeframe]) -> Self {
        Self {
            subscriptions: Subscription::public_set_with(coins, timeframes),
            user: None,
        }
    }

    /// Adds the account's `clearinghouseState` (`user`: the account address): its
    /// balances and positions as they change.
    pub fn with_account(mut self, user: &str) -> Self {
        self.subscriptions.push(Subscription::ClearinghouseState {
            user: user.to_string(),
        });
        self
    }

    /// Also subscribes the account's user channels and the followed wallets' fills
    /// (after the public channels), delivering the account's to `user`'s sink.
    pub fn with_user(mut self, user: UserStreams) -> Self {
        self.user = Some(user);
        self
    }
}

impl Protocol for HyperliquidProtocol {
    fn subscribe_messages(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .subscriptions
            .iter()
            .map(Subscription::subscribe_message)
            .collect();
        if let Some(user) = &self.user {
            out.extend(user.subscriptions().iter().map(|s| s.subscribe_message()));
        }
        out
    }

    fn on_connected(&mut self, feed: &VenueFeed) {
        if let Some(user) = &self.user {
            user.on_connected(feed);
        }
        // The account's fills arrive on this connection: the gateway reconciles less often.
        feed.set_fills_streamed(self.user.is_some());
        if self
            .subscriptions
            .iter()
            .any(|s| matches!(s, Subscription::ClearinghouseState { .. }))
        {
            // Pushed on change: silence is not staleness (its reads have their own age rule).
            feed.mark_event_driven("clearinghouseState");
        }
    }

    fn heartbeat(&self) -> Option<String> {
        Some(PING.to_string())
    }

    fn on_text(
        &mut self,
        text: &str,
        feed: &VenueFeed,
        now: Instant,
    ) -> Result<&'static str, FrameError> {
        let frame = parse(text)?;
        let channel = frame.channel();
        match (frame, &self.user) {
            (HlFrame::OrderUpdates(orders), Some(user)) => user.on_order_updates(orders)?,
            (HlFrame::UserFills(fills), Some(user)) => user.on_user_fills(fills, feed)?,
            (HlFrame::UserEvents(event), Some(user)) => user.on_user_event(event),
            (frame, _) => return Ok(apply(frame, feed, now)),
        }
        Ok(channel)
    }
}

/// Applies a parsed frame to the venue's state: quotes from `bbo` and `l2Book` (only when
/// both sides are present: a one-sided book has no quote), mids from `allMids`, the last
/// trade price from `trades`. Returns the channel name for counting.
pub fn apply(frame: HlFrame, feed: &VenueFeed, now: Instant) -> &'static str {
    let channel = frame.channel();
    match frame {
        HlFrame::Bbo(b) => {
            if let [Some(bid), Some(ask)] = &b.bbo {
                feed.put_quote(
                    Quote {
                        symbol: b.coin,
                        bid: bid.px,
                        ask: ask.px,
                        time_ms: b.time,
                        fallback: None,
                    },
                    now,
                );
            }
        }
        HlFrame::L2Book(book) => {
            if let Ok(q) = book.quote() {
                feed.put_quote(q, now);
            }
        }
        HlFrame::AllMids(m) => {
            for (coin, mid) in m.mids {
                feed.put_mid(&coin, mid, now);
            }
        }
        HlFrame::Trades(trades) => {
            // Every print goes on the tape (the snapshot sent after a subscription holds
            // trades the tape may have: their ids are kept once); the last one is the
            // last trade price.
            for t in trades {
                match super::tape::hyperliquid_side(&t.side) {
                    Some(side) => feed.put_tape_trade(
                        super::tape::TapeTrade {
                            symbol: t.coin,
                            side,
                            size: t.sz,
                            price: t.px,
                            time_ms: t.time,
                            id: t.tid,
                        },
                        now,
                    ),
                    None => {
                        feed.count_malformed();
                        tracing::warn!(venue = feed.venue(), side = %t.side, tid = t.tid, "trade with an unknown side dropped from the tape");
                        feed.put_trade(&t.coin, t.px, now);
                    }
                }
            }
        }
        HlFrame::Error(e) => {
            tracing::warn!(venue = feed.venue(), error = %e, "the venue's websocket reported an error");
        }
        HlFrame::Candle(c) => {
            // An interval this engine has no timeframe for is not subscribed; ignore it.
            if let Ok(timeframe) = c.i.parse::<Timeframe>() {
                let candle = Candle {
                    open_time_ms: c.t,
                    open: c.o,
                    high: c.h,
                    low: c.l,
                    close: c.c,
                    volume: c.v,
                };
                feed.put_candle(&c.s, timeframe, candle, now);
            }
        }
        HlFrame::ClearinghouseState(c) => {
            // Only the main perp dex is this engine's account.
            if c.dex.is_empty() {
                let body = c.state.to_string();
                match parse_clearinghouse_state(
                    body.as_bytes(),
                    crate::clock::system_clock().now_ms(),
                ) {
                    Ok(state) => feed.put_account(
                        AccountState {
                            account: state.account,
                            positions: state.positions,
                        },
                        now,
                    ),
                    Err(e) => {
                        feed.count_malformed();
                        tracing::warn!(venue = feed.venue(), error = %e, "pushed account state dropped; account reads use REST");
                    }
                }
            }
        }
        // User frames go to the protocol's user streams; without them nothing subscribed
        // to these channels.
        HlFrame::Pong
        | HlFrame::Subscribed(_)
        | HlFrame::OrderUpdates(_)
        | HlFrame::UserFills(_)
        | HlFrame::UserEvents(_) => {}
    }
    channel
}
