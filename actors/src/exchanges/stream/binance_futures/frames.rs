//! The typed frames of Binance USDⓈ-M futures' websocket streams, as documented on
//! developers.binance.com (derivatives → USDⓈ-M futures → "Websocket Market Streams":
//! Mark Price Stream, Liquidation Order Streams / All Market Liquidation Order Streams,
//! Aggregate Trade Streams, Individual Symbol Book Ticker Streams; "User Data Streams":
//! Event Order Update, Event Balance and Position Update, Event User Data Stream Expired).
//!
//! Owns: one pass of serde over a text frame into a [`FuturesEvent`], for both the combined
//! market connection (`{"stream":..,"data":{..}}`) and the raw user-data connection (the
//! event itself). Never: I/O, state, or a panic on bad input — a frame that is not JSON or
//! not a documented shape is a [`FrameError`]. Events the engine does not use (the user
//! stream's `TRADE_LITE`, `MARGIN_CALL`, `ACCOUNT_CONFIG_UPDATE`, ...) parse
//! to [`FuturesEvent::Other`] and are counted, not reported as malformed.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::clock::Millis;
use crate::exchanges::stream::binance::envelope::{self, StreamPayload};
use crate::exchanges::stream::protocol::FrameError;

/// `<symbol>@markPrice[@1s]`: mark price, index price and funding of one perpetual.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarkPriceUpdate {
    /// Event time.
    #[serde(rename = "E")]
    pub event_ms: Millis,
    /// Contract (`BTCUSDT`).
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "p")]
    pub mark: Decimal,
    #[serde(rename = "i")]
    pub index: Decimal,
    /// Estimated settle price (meaningful only in the last hour before a delivery).
    #[serde(rename = "P", default)]
    pub estimated_settle: Option<Decimal>,
    /// Funding rate; `""` for a delivery contract.
    #[serde(rename = "r", deserialize_with = "empty_is_none", default)]
    pub funding_rate: Option<Decimal>,
    /// Next funding time; `0` for a delivery contract.
    #[serde(rename = "T")]
    pub next_funding_ms: Millis,
}

/// The order inside a `forceOrder` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ForceOrder {
    #[serde(rename = "s")]
    pub pair: String,
    /// `BUY` or `SELL`.
    #[serde(rename = "S")]
    pub side: String,
    #[serde(rename = "o")]
    pub order_type: String,
    #[serde(rename = "f")]
    pub time_in_force: String,
    /// Original quantity.
    #[serde(rename = "q")]
    pub qty: Decimal,
    #[serde(rename = "p")]
    pub price: Decimal,
    /// Average price.
    #[serde(rename = "ap")]
    pub avg_price: Decimal,
    /// `FILLED`, `PARTIALLY_FILLED`, ...
    #[serde(rename = "X")]
    pub status: String,
    /// Last filled quantity.
    #[serde(rename = "l")]
    pub last_filled: Decimal,
    /// Accumulated filled quantity.
    #[serde(rename = "z")]
    pub filled: Decimal,
    /// Trade time.
    #[serde(rename = "T")]
    pub trade_ms: Millis,
}

/// `!forceOrder@arr` / `<symbol>@forceOrder`: the newest liquidation of a symbol within
/// each second (a snapshot; none when nothing was liquidated).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ForceOrderEvent {
    #[serde(rename = "E")]
    pub event_ms: Millis,
    #[serde(rename = "o")]
    pub order: ForceOrder,
}

/// `<symbol>@aggTrade`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AggTrade {
    #[serde(rename = "E")]
    pub event_ms: Millis,
    #[serde(rename = "a")]
    pub agg_id: u64,
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "p")]
    pub price: Decimal,
    #[serde(rename = "q")]
    pub qty: Decimal,
    #[serde(rename = "T")]
    pub trade_ms: Millis,
    /// The buyer was the maker (the seller was the aggressor).
    #[serde(rename = "m")]
    pub buyer_is_maker: bool,
}

/// `<symbol>@bookTicker`: best bid and ask.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BookTicker {
    /// Order book update id.
    #[serde(rename = "u")]
    pub update_id: u64,
    #[serde(rename = "E")]
    pub event_ms: Millis,
    /// Transaction time.
    #[serde(rename = "T")]
    pub transaction_ms: Millis,
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

/// The order inside an `ORDER_TRADE_UPDATE` (only the fields the engine uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderUpdate {
    #[serde(rename = "s")]
    pub pair: String,
    /// Client order id (the engine's id, or the venue's `autoclose-`/`adl_autoclose`/
    /// `settlement_autoclose-` for orders it placed itself).
    #[serde(rename = "c")]
    pub client_id: String,
    #[serde(rename = "S")]
    pub side: String,
    /// Order type: `LIMIT`, `MARKET`, `STOP`, `STOP_MARKET`, `TAKE_PROFIT`,
    /// `TAKE_PROFIT_MARKET`, `TRAILING_STOP_MARKET`, `LIQUIDATION`.
    #[serde(rename = "o")]
    pub order_type: String,
    #[serde(rename = "q")]
    pub qty: Decimal,
    #[serde(rename = "p")]
    pub price: Decimal,
    #[serde(rename = "ap")]
    pub avg_price: Decimal,
    /// Stop price of a STOP/TAKE_PROFIT order.
    #[serde(rename = "sp", default)]
    pub stop_price: Option<Decimal>,
    /// Execution type: `NEW`, `CANCELED`, `CALCULATED`, `EXPIRED`, `TRADE`, `AMENDMENT`.
    #[serde(rename = "x")]
    pub execution: String,
    /// Order status: `NEW`, `PARTIALLY_FILLED`, `FILLED`, `CANCELED`, `EXPIRED`,
    /// `EXPIRED_IN_MATCH` (and, for the venue's own close-outs, `NEW_ADL`/`NEW_INSURANCE`).
    #[serde(rename = "X")]
    pub status: String,
    #[serde(rename = "i")]
    pub order_id: u64,
    /// Last filled quantity.
    #[serde(rename = "l")]
    pub last_qty: Decimal,
    /// Accumulated filled quantity.
    #[serde(rename = "z")]
    pub filled: Decimal,
    /// Last filled price.
    #[serde(rename = "L")]
    pub last_price: Decimal,
    /// Commission asset (absent when there is no commission).
    #[serde(rename = "N", default)]
    pub fee_asset: Option<String>,
    /// Commission of this execution (absent when none).
    #[serde(rename = "n", default)]
    pub fee: Option<Decimal>,
    /// Trade time.
    #[serde(rename = "T")]
    pub trade_ms: Millis,
    /// Trade id (0 when not a trade).
    #[serde(rename = "t")]
    pub trade_id: u64,
    #[serde(rename = "m", default)]
    pub maker: bool,
    #[serde(rename = "R")]
    pub reduce_only: bool,
    /// Realized profit of this trade.
    #[serde(rename = "rp", default)]
    pub realized_pnl: Option<Decimal>,
}

/// `ORDER_TRADE_UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderTradeUpdate {
    #[serde(rename = "E")]
    pub event_ms: Millis,
    #[serde(rename = "T")]
    pub transaction_ms: Millis,
    #[serde(rename = "o")]
    pub order: OrderUpdate,
}

/// A balance in an `ACCOUNT_UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceUpdate {
    #[serde(rename = "a")]
    pub asset: String,
    #[serde(rename = "wb")]
    pub wallet_balance: Decimal,
    #[serde(rename = "cw")]
    pub cross_wallet_balance: Decimal,
    #[serde(rename = "bc", default)]
    pub balance_change: Decimal,
}

/// A position in an `ACCOUNT_UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PositionUpdate {
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "pa")]
    pub amount: Decimal,
    #[serde(rename = "ep")]
    pub entry_price: Decimal,
    #[serde(rename = "up")]
    pub unrealized_pnl: Decimal,
    #[serde(rename = "mt")]
    pub margin_type: String,
    #[serde(rename = "ps")]
    pub position_side: String,
}

/// The `a` object of an `ACCOUNT_UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountChange {
    /// Reason: `ORDER`, `FUNDING_FEE`, `DEPOSIT`, `WITHDRAW`, ...
    #[serde(rename = "m")]
    pub reason: String,
    #[serde(rename = "B", default)]
    pub balances: Vec<BalanceUpdate>,
    #[serde(rename = "P", default)]
    pub positions: Vec<PositionUpdate>,
}

/// `ACCOUNT_UPDATE`: only what changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountUpdate {
    #[serde(rename = "E")]
    pub event_ms: Millis,
    #[serde(rename = "T")]
    pub transaction_ms: Millis,
    #[serde(rename = "a")]
    pub change: AccountChange,
}

/// The `o` object of an `ALGO_UPDATE` (only what the engine uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlgoOrderUpdate {
    #[serde(rename = "caid")]
    pub client_algo_id: String,
    #[serde(rename = "aid")]
    pub algo_id: u64,
    /// The regular order placed when it triggered (`""` before).
    #[serde(rename = "ai", default)]
    pub actual_order_id: Option<serde_json::Value>,
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "S")]
    pub side: String,
    #[serde(rename = "q")]
    pub qty: Decimal,
    /// `NEW`, `CANCELED`, `EXPIRED`, `TRIGGERING`, `TRIGGERED`, `FINISHED`, `REJECTED`.
    #[serde(rename = "X")]
    pub status: String,
    #[serde(rename = "aq", default)]
    pub executed: Decimal,
    #[serde(rename = "ap", default)]
    pub avg_price: Decimal,
    #[serde(rename = "p", default)]
    pub price: Decimal,
    #[serde(rename = "R", default)]
    pub reduce_only: bool,
}

impl AlgoOrderUpdate {
    /// The order id its fills carry once triggered (`ai`), else `algo-<aid>`: the id the
    /// REST venue reports for the same order, so both paths name one ledger entry alike.
    pub fn venue_order_id(&self) -> String {
        match &self.actual_order_id {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s != "0" => s.clone(),
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some_and(|n| n > 0) => {
                n.to_string()
            }
            _ => format!("algo-{}", self.algo_id),
        }
    }
}

/// `ALGO_UPDATE`: a conditional order of the Algo Order API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlgoUpdate {
    #[serde(rename = "E")]
    pub event_ms: Millis,
    #[serde(rename = "o")]
    pub order: AlgoOrderUpdate,
}

/// `listenKeyExpired`: no more user events on this connection until a new key is used.
/// (Its `E` has been seen both as a number and as a string, so it is not read.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListenKeyExpired {
    #[serde(rename = "listenKey", default)]
    pub listen_key: Option<String>,
}

/// One event of a futures stream, by its `e`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "e")]
pub enum FuturesEvent {
    #[serde(rename = "markPriceUpdate")]
    MarkPrice(MarkPriceUpdate),
    #[serde(rename = "forceOrder")]
    ForceOrder(ForceOrderEvent),
    #[serde(rename = "aggTrade")]
    AggTrade(AggTrade),
    #[serde(rename = "bookTicker")]
    BookTicker(BookTicker),
    #[serde(rename = "ORDER_TRADE_UPDATE")]
    OrderTradeUpdate(OrderTradeUpdate),
    #[serde(rename = "ACCOUNT_UPDATE")]
    AccountUpdate(AccountUpdate),
    #[serde(rename = "ALGO_UPDATE")]
    AlgoUpdate(AlgoUpdate),
    #[serde(rename = "listenKeyExpired")]
    ListenKeyExpired(ListenKeyExpired),
    /// A documented event the engine does not use.
    #[serde(other)]
    Other,
}

impl FuturesEvent {
    /// The channel it is counted under.
    pub fn channel(&self) -> &'static str {
        match self {
            Self::MarkPrice(_) => "markPrice",
            Self::ForceOrder(_) => "forceOrder",
            Self::AggTrade(_) => "aggTrade",
            Self::BookTicker(_) => "bookTicker",
            Self::OrderTradeUpdate(_) => "ORDER_TRADE_UPDATE",
            Self::AccountUpdate(_) => "ACCOUNT_UPDATE",
            Self::AlgoUpdate(_) => "ALGO_UPDATE",
            Self::ListenKeyExpired(_) => "listenKeyExpired",
            Self::Other => "other",
        }
    }
}

const VENUE: &str = "Binance futures";

/// The payload of a combined market stream, read straight into the type its stream name
/// selects (one serde pass, no tag buffering); any other stream by its `e`.
impl StreamPayload for FuturesEvent {
    fn from_stream<'de, D: Deserializer<'de>>(stream: &str, data: D) -> Result<Self, D::Error> {
        if stream.ends_with("@bookTicker") {
            BookTicker::deserialize(data).map(Self::BookTicker)
        } else if stream.ends_with("@aggTrade") {
            AggTrade::deserialize(data).map(Self::AggTrade)
        } else if stream.contains("@markPrice") {
            MarkPriceUpdate::deserialize(data).map(Self::MarkPrice)
        } else if stream.contains("forceOrder") {
            ForceOrderEvent::deserialize(data).map(Self::ForceOrder)
        } else {
            Self::deserialize(data)
        }
    }
}

/// Parses one frame of the combined market connection.
pub fn parse_combined(text: &str) -> Result<FuturesEvent, FrameError> {
    envelope::parse_combined::<FuturesEvent>(text)
        .map(|c| c.data)
        .map_err(|source| FrameError::malformed(VENUE, source, text))
}

/// Parses one frame of the raw user-data connection (the event itself).
pub fn parse_event(text: &str) -> Result<FuturesEvent, FrameError> {
    serde_json::from_str(text).map_err(|source| FrameError::malformed(VENUE, source, text))
}

/// `""` (and absence) is `None`; otherwise a decimal string or number.
fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(Decimal),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(s)) if s.is_empty() => Ok(None),
        Some(Raw::Text(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}
