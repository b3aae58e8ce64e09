//! Venue-neutral trading types. Money is `Decimal`; each venue module converts to and from
//! its own wire strings.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::resilience::FallbackLevel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    /// +1 for buys, -1 for sells: the sign of the position change.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "buy" | "long" | "b" => Ok(Side::Buy),
            "sell" | "short" | "s" => Ok(Side::Sell),
            other => Err(format!("unknown side `{other}`; expected buy or sell")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel.
    Ioc,
    /// Add liquidity only (post-only).
    Alo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    TakeProfit,
    StopLoss,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderType {
    /// Fill now at the best available price; venues without native market orders send an
    /// aggressive IOC limit at most `max_slippage` (a fraction, 0.01 = 1%) away from mid.
    Market {
        max_slippage: Decimal,
    },
    Limit {
        price: Decimal,
        tif: TimeInForce,
    },
    /// Becomes a market (or limit at `limit_price`) order when `trigger_price` trades.
    Trigger {
        trigger_price: Decimal,
        kind: TriggerKind,
        limit_price: Option<Decimal>,
    },
}

impl OrderType {
    pub fn limit_price(&self) -> Option<Decimal> {
        match self {
            OrderType::Limit { price, .. } => Some(*price),
            OrderType::Trigger { limit_price, .. } => *limit_price,
            OrderType::Market { .. } => None,
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            OrderType::Market { .. } => "market",
            OrderType::Limit { .. } => "limit",
            OrderType::Trigger { .. } => "trigger",
        }
    }
}

/// The id this engine gives an order before it is sent; the key of the ledger and the
/// handle by which an order of unknown outcome is looked up at the venue.
///
/// 32 lowercase hex digits (128 bits, time-ordered UUIDv7): valid as a Hyperliquid cloid
/// (with `0x`) and as a Binance `newClientOrderId` (≤ 36 chars of `[a-z0-9]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientOrderId(String);

impl ClientOrderId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }
    /// Accepts 32 hex digits, with or without a `0x` prefix.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("0x").unwrap_or(s);
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(hex.to_ascii_lowercase()))
        } else {
            Err(format!("`{s}` is not a client order id (32 hex digits)"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The `0x`-prefixed form Hyperliquid expects.
    pub fn to_hex128(&self) -> String {
        format!("0x{}", self.0)
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One order as this engine asks a venue to place it. Sizes are in base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub client_id: ClientOrderId,
    pub symbol: String,
    pub side: Side,
    pub size: Decimal,
    pub order_type: OrderType,
    pub reduce_only: bool,
    /// The last moment (ms since the epoch, the gateway's clock) at which the venue may
    /// still apply this order; stamped by the gateway before the intent is written, from
    /// the venue's [`order_validity`](super::Venue::order_validity). The venue sends it
    /// with the order (Hyperliquid `expiresAfter`, Binance `timestamp` + `recvWindow`) and
    /// never sends the order once it has passed, so an order the venue does not show after
    /// it is known never to have been applied. `None` on entries written before deadlines
    /// existed and on adopted orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<Millis>,
}

/// Life cycle of an order in the ledger and at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Written to the ledger, not yet sent.
    Intent,
    /// Bytes may have left the process; no answer yet.
    Submitted,
    /// Accepted and resting on the book (or waiting for its trigger).
    Acked,
    PartiallyFilled,
    Filled,
    Cancelled,
    Rejected,
    /// The send's outcome is not known (timeout, reset, 5xx); resolved by querying the
    /// venue by client id, never by sending again.
    Unknown,
}

impl OrderStatus {
    /// No further change can happen at the venue.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }
    /// The venue has not told this order's outcome yet (written, maybe sent, not acked):
    /// settled by client id, never sent again.
    pub fn awaits_outcome(self) -> bool {
        matches!(
            self,
            OrderStatus::Intent | OrderStatus::Submitted | OrderStatus::Unknown
        )
    }
    /// Still working (or possibly working) at the venue.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Submitted
                | OrderStatus::Acked
                | OrderStatus::PartiallyFilled
                | OrderStatus::Unknown
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Intent => "intent",
            OrderStatus::Submitted => "submitted",
            OrderStatus::Acked => "acked",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueOrder {
    pub client_id: Option<ClientOrderId>,
    pub venue_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub size: Decimal,
    pub filled_size: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub status: OrderStatus,
    pub reduce_only: bool,
    /// The venue's reason when `status` is `Rejected`.
    pub reject_reason: Option<String>,
    pub updated_ms: Millis,
}

/// One execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Unique per venue (trade id); the key that makes fill ingestion idempotent.
    pub fill_id: String,
    pub client_id: Option<ClientOrderId>,
    pub venue_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    /// Fee paid in USD (negative for a rebate). When the venue charged it in another asset,
    /// this is its USD value at the fill's time, or 0 if no price could be had — then
    /// `fee_asset` says so (its `usd_price` is `None`).
    pub fee: Decimal,
    /// Realised PnL of this fill, where the venue reports it.
    pub closed_pnl: Decimal,
    pub time_ms: Millis,
    /// The fee as charged when that was not USD or the account's quote asset (Binance
    /// `commissionAsset` BNB or the base asset; Hyperliquid `feeToken`). `None` for fees
    /// charged in USD/the quote, and for records written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_asset: Option<FeeInAsset>,
}

/// A fee charged in an asset other than USD or the quote asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeInAsset {
    /// The asset charged (`BNB`, `BTC`, `USOL`, ...).
    pub asset: String,
    /// The amount charged, in `asset`.
    pub amount: Decimal,
    /// The asset's USD price used to convert it (the fill's price for the base asset, the
    /// venue's quote at ingestion otherwise). `None`: no price could be had, the fee is kept
    /// in its asset and `Fill::fee` does not include it.
    pub usd_price: Option<Decimal>,
}

impl FeeInAsset {
    /// The fee in USD, if it could be priced.
    pub fn usd(&self) -> Option<Decimal> {
        self.usd_price.map(|p| self.amount * p)
    }
}

/// A position in one symbol. `size` is signed: positive long, negative short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub symbol: String,
    pub size: Decimal,
    pub entry_price: Decimal,
    pub mark_price: Decimal,
    pub unrealized_pnl: Decimal,
    pub leverage: u32,
    pub liquidation_price: Option<Decimal>,
    pub margin_used: Decimal,
}

impl Position {
    pub fn side(&self) -> Option<Side> {
        if self.size > Decimal::ZERO {
            Some(Side::Buy)
        } else if self.size < Decimal::ZERO {
            Some(Side::Sell)
        } else {
            None
        }
    }
    /// Absolute value at the mark price, in USD.
    pub fn notional(&self) -> Decimal {
        (self.size * self.mark_price).abs()
    }
}

/// Top of book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub time_ms: Millis,
    /// Set when this is not the live answer of the venue asked (market-data fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<QuoteFallback>,
}

/// How a quote was obtained when the venue asked could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteFallback {
    /// The venue whose book this is: the configured secondary venue, or the venue asked
    /// (its own last good quote).
    pub venue: String,
    /// `partial`: a cached quote younger than its TTL; `full`: the secondary's live quote.
    pub level: FallbackLevel,
    /// Age of a cached quote when it was served, in ms.
    pub age_ms: Option<u64>,
}

impl Quote {
    pub fn mid(&self) -> Decimal {
        (self.bid + self.ask) / Decimal::TWO
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    pub open_time_ms: Millis,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
}

/// Candle width, spelled as venues spell it (`1m`, `15m`, `1h`, `1d`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timeframe {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "3m")]
    M3,
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
    #[serde(rename = "8h")]
    H8,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "1w")]
    W1,
}

impl Timeframe {
    pub const ALL: [Timeframe; 12] = [
        Timeframe::M1,
        Timeframe::M3,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H2,
        Timeframe::H4,
        Timeframe::H8,
        Timeframe::H12,
        Timeframe::D1,
        Timeframe::W1,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M3 => "3m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::M30 => "30m",
            Timeframe::H1 => "1h",
            Timeframe::H2 => "2h",
            Timeframe::H4 => "4h",
            Timeframe::H8 => "8h",
            Timeframe::H12 => "12h",
            Timeframe::D1 => "1d",
            Timeframe::W1 => "1w",
        }
    }
    pub fn millis(self) -> Millis {
        const MIN: Millis = 60_000;
        match self {
            Timeframe::M1 => MIN,
            Timeframe::M3 => 3 * MIN,
            Timeframe::M5 => 5 * MIN,
            Timeframe::M15 => 15 * MIN,
            Timeframe::M30 => 30 * MIN,
            Timeframe::H1 => 60 * MIN,
            Timeframe::H2 => 120 * MIN,
            Timeframe::H4 => 240 * MIN,
            Timeframe::H8 => 480 * MIN,
            Timeframe::H12 => 720 * MIN,
            Timeframe::D1 => 1440 * MIN,
            Timeframe::W1 => 7 * 1440 * MIN,
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Timeframe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown timeframe `{s}`; expected one of 1m 3m 5m 15m 30m 1h 2h 4h 8h 12h 1d 1w"))
    }
}

/// Trading rules of one symbol on one venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    pub symbol: String,
    /// Smallest price increment.
    pub tick_size: Decimal,
    /// Smallest size increment.
    pub lot_size: Decimal,
    /// Smallest order value in USD.
    pub min_notional: Decimal,
    pub max_leverage: u32,
}

impl Instrument {
    /// Rounds a size down to the lot (never sends more than asked).
    pub fn round_size_down(&self, size: Decimal) -> Decimal {
        round_down_to(size, self.lot_size)
    }
    /// Rounds a price to the nearest tick.
    pub fn round_price(&self, price: Decimal) -> Decimal {
        if self.tick_size.is_zero() {
            return price;
        }
        ((price / self.tick_size).round() * self.tick_size).normalize()
    }
}

/// Rounds `value` toward zero to a multiple of `step` (no-op for a zero step).
pub fn round_down_to(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    ((value / step).trunc() * step).normalize()
}

/// Balances of a venue account in USD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// Equity: cash plus unrealised PnL.
    pub account_value: Decimal,
    /// What can be used for new positions or withdrawn.
    pub free_balance: Decimal,
    pub margin_used: Decimal,
    pub unrealized_pnl: Decimal,
    pub time_ms: Millis,
}

/// Balances and positions from one read of the account, so an order is judged against a
/// position and a balance of the same moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub account: AccountSnapshot,
    /// Open positions (venues may omit flat ones).
    pub positions: Vec<Position>,
}

impl AccountState {
    /// The open position in `symbol`, if any.
    pub fn position(&self, symbol: &str) -> Option<&Position> {
        self.positions
            .iter()
            .find(|p| p.symbol == symbol && !p.size.is_zero())
    }
}
