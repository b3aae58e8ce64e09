//! Binance spot user data stream: order updates, fills and balances of the account, pushed
//! on a connection of its own at `<ws_url>/ws/<listenKey>`.
//!
//! Shapes from Binance spot "User Data Streams" (and the recorded spot events): every event
//! names its type in `e`. `executionReport` carries the order (`s` pair, `c` client order
//! id — on a cancel the cancel request's id, the order's own then in `C` —, `S` side, `q`
//! quantity, `p` price, `X` the order's status, `i` order id, `z` cumulative filled
//! quantity, `Z` cumulative quote quantity, `O` creation time) and the execution (`x`
//! execution type; on `TRADE`: `t` trade id, `l` last filled quantity, `L` last price, `n`
//! commission in asset `N`, `T` transaction time). `outboundAccountPosition` lists the
//! changed balances (`B`: `a` asset, `f` free, `l` locked). `listenKeyExpired` says the key
//! is gone: a new one is made and the stream reconnects.
//!
//! Owns: reading those events, turning an `executionReport` into a [`PushedUpdate`] (the
//! order's state, and the fill of a `TRADE`, whose id is the trade id — the same id REST
//! `myTrades` gives, so the ledger records it once whichever path brings it first) for the
//! gateway's [`PushSink`], the balances kept in the user feed (shown by `orrery status`),
//! and the listen key's life ([`super::listen_key::ListenKeyLifecycle`]). Never: decides
//! anything about an order (the gateway applies pushed updates with its reconciliation
//! rules), logs the listen key, or panics on an event.

use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::time::Instant;

use futures::future::BoxFuture;

use super::listen_key::ListenKeyLifecycle;
use crate::clock::Millis;
use crate::exchanges::binance::BinanceConfig;
use crate::exchanges::stream::book::VenueFeed;
use crate::exchanges::stream::connection::StreamError;
use crate::exchanges::stream::protocol::{FrameError, Protocol};
use crate::exchanges::stream::pushed::{PushSink, PushedUpdate};
use crate::exchanges::stream::StreamBook;
use crate::exchanges::types::{ClientOrderId, FeeInAsset, Fill, OrderStatus, Side, VenueOrder};

/// `executionReport`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecutionReport {
    #[serde(rename = "E")]
    pub event_time: Millis,
    #[serde(rename = "s")]
    pub pair: String,
    #[serde(rename = "c")]
    pub client_order_id: String,
    /// The original client order id of a cancelled order ("" otherwise).
    #[serde(rename = "C", default)]
    pub orig_client_order_id: Option<String>,
    #[serde(rename = "S")]
    pub side: String,
    #[serde(rename = "o")]
    pub order_type: String,
    #[serde(rename = "q")]
    pub qty: Decimal,
    #[serde(rename = "p")]
    pub price: Decimal,
    /// Execution type: NEW, CANCELED, REPLACED, REJECTED, TRADE, EXPIRED, TRADE_PREVENTION.
    #[serde(rename = "x")]
    pub execution_type: String,
    /// Order status: NEW, PARTIALLY_FILLED, FILLED, CANCELED, PENDING_CANCEL, REJECTED,
    /// EXPIRED, EXPIRED_IN_MATCH.
    #[serde(rename = "X")]
    pub status: String,
    #[serde(rename = "r")]
    pub reject_reason: String,
    #[serde(rename = "i")]
    pub order_id: i64,
    #[serde(rename = "l")]
    pub last_qty: Decimal,
    #[serde(rename = "z")]
    pub cum_qty: Decimal,
    #[serde(rename = "L")]
    pub last_price: Decimal,
    #[serde(rename = "n")]
    pub commission: Decimal,
    #[serde(rename = "N")]
    pub commission_asset: Option<String>,
    #[serde(rename = "T")]
    pub transaction_time: Millis,
    /// Trade id, -1 without a trade.
    #[serde(rename = "t")]
    pub trade_id: i64,
    #[serde(rename = "Z")]
    pub cum_quote: Decimal,
}

/// One balance of `outboundAccountPosition`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsBalance {
    #[serde(rename = "a")]
    pub asset: String,
    #[serde(rename = "f")]
    pub free: Decimal,
    #[serde(rename = "l")]
    pub locked: Decimal,
}

/// `outboundAccountPosition`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountPosition {
    #[serde(rename = "E")]
    pub event_time: Millis,
    #[serde(rename = "B")]
    pub balances: Vec<WsBalance>,
}

/// One user-stream event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "e")]
pub enum UserEvent {
    #[serde(rename = "executionReport")]
    ExecutionReport(Box<ExecutionReport>),
    #[serde(rename = "outboundAccountPosition")]
    AccountPosition(AccountPosition),
    #[serde(rename = "listenKeyExpired")]
    ListenKeyExpired,
    /// Deposits, withdrawals, transfers: the next `outboundAccountPosition` has the result.
    #[serde(rename = "balanceUpdate")]
    BalanceUpdate,
    /// Order-list (OCO) status: the legs' own `executionReport`s carry what we need.
    #[serde(rename = "listStatus")]
    ListStatus,
    /// The stream was terminated (WebSocket API sessions); the connection ends next.
    #[serde(rename = "eventStreamTerminated")]
    StreamTerminated,
}

impl UserEvent {
    pub fn channel(&self) -> &'static str {
        match self {
            Self::ExecutionReport(_) => "executionReport",
            Self::AccountPosition(_) => "outboundAccountPosition",
            Self::ListenKeyExpired => "listenKeyExpired",
            Self::BalanceUpdate => "balanceUpdate",
            Self::ListStatus => "listStatus",
            Self::StreamTerminated => "eventStreamTerminated",
        }
    }
}

/// Parses one frame of the user connection.
pub fn parse(text: &str) -> Result<UserEvent, FrameError> {
    serde_json::from_str(text).map_err(|source| FrameError::malformed("Binance", source, text))
}

fn invalid(reason: String) -> FrameError {
    FrameError::Invalid {
        venue: "Binance",
        reason,
    }
}

/// The order state and, for a `TRADE`, the fill of an `executionReport`, in the engine's
/// types. `quote_price` prices a commission paid in a third asset (BNB) from the stream's
/// quotes; without one the fee is kept in its asset, as the REST path does.
pub fn to_update(
    venue: &str,
    config: &BinanceConfig,
    r: &ExecutionReport,
    quote_price: impl Fn(&str) -> Option<Decimal>,
) -> Result<PushedUpdate, FrameError> {
    let side = match r.side.as_str() {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        other => return Err(invalid(format!("executionReport side `{other}`"))),
    };
    let status = match r.status.as_str() {
        "NEW" | "PENDING_NEW" | "PENDING_CANCEL" => OrderStatus::Acked,
        "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
        "FILLED" => OrderStatus::Filled,
        "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" => OrderStatus::Cancelled,
        "REJECTED" => OrderStatus::Rejected,
        other => return Err(invalid(format!("executionReport order status `{other}`"))),
    };
    if r.qty < Decimal::ZERO || r.cum_qty < Decimal::ZERO || r.last_qty < Decimal::ZERO {
        return Err(invalid("executionReport with a negative quantity".into()));
    }
    // On a cancel `c` is the cancel request's id and `C` the order's.
    let own_id = match r.orig_client_order_id.as_deref() {
        Some(orig) if !orig.is_empty() => orig,
        _ => r.client_order_id.as_str(),
    };
    let client_id = ClientOrderId::parse(own_id).ok();
    let symbol = config.symbol_of(&r.pair).unwrap_or_else(|| r.pair.clone());
    let order = VenueOrder {
        client_id: client_id.clone(),
        venue_order_id: r.order_id.to_string(),
        symbol: symbol.clone(),
        side,
        size: r.qty.normalize(),
        filled_size: r.cum_qty.normalize(),
        avg_fill_price: (r.cum_qty > Decimal::ZERO).then(|| (r.cum_quote / r.cum_qty).normalize()),
        limit_price: (r.price > Decimal::ZERO).then(|| r.price.normalize()),
        status,
        reduce_only: false,
        reject_reason: (status == OrderStatus::Rejected).then(|| r.reject_reason.clone()),
        updated_ms: r.transaction_time,
    };
    let mut fills = Vec::new();
    if r.execution_type == "TRADE" {
        if r.trade_id < 0 || r.last_qty.is_zero() {
            return Err(invalid(format!(
                "executionReport TRADE without a trade (t {}, l {})",
                r.trade_id, r.last_qty
            )));
        }
        let (fee, fee_asset) = fee_in_usd(config, &symbol, r, quote_price);
        fills.push(Fill {
            fill_id: r.trade_id.to_string(),
            client_id,
            venue_order_id: r.order_id.to_string(),
            symbol,
            side,
            price: r.last_price,
            size: r.last_qty,
            fee,
            closed_pnl: Decimal::ZERO,
            time_ms: r.transaction_time,
            fee_asset,
        });
    }
    Ok(PushedUpdate {
        venue: venue.to_string(),
        orders: vec![order],
        fills,
        snapshot: false,
    })
}

/// As the REST path prices fees: the quote asset as is, the base asset at the fill's
/// price, another asset at its quote (from the stream) or kept in its asset.
fn fee_in_usd(
    config: &BinanceConfig,
    symbol: &str,
    r: &ExecutionReport,
    quote_price: impl Fn(&str) -> Option<Decimal>,
) -> (Decimal, Option<FeeInAsset>) {
    let asset = r.commission_asset.as_deref().unwrap_or("");
    if asset.is_empty() || asset == config.quote_asset || r.commission.is_zero() {
        return (r.commission, None);
    }
    let base = config
        .pair_of(symbol)
        .strip_suffix(config.quote_asset.as_str())
        .map(str::to_string);
    let usd_price = if asset.eq_ignore_ascii_case(symbol) || base.as_deref() == Some(asset) {
        Some(r.last_price)
    } else {
        quote_price(asset)
    };
    let fee = FeeInAsset {
        asset: asset.to_string(),
        amount: r.commission,
        usd_price,
    };
    (fee.usd().unwrap_or_default(), Some(fee))
}

/// The spot user-data protocol.
pub struct SpotUserProtocol {
    venue: String,
    config: BinanceConfig,
    listen_key: ListenKeyLifecycle,
    sink: Option<PushSink>,
    /// The market streams, for pricing a fee paid in BNB.
    market: Option<StreamBook>,
    pushed: u64,
    dropped: u64,
}

impl SpotUserProtocol {
    pub fn new(venue: &str, config: &BinanceConfig, listen_key: ListenKeyLifecycle) -> Self {
        Self {
            venue: venue.to_string(),
            config: config.clone(),
            listen_key,
            sink: None,
            market: None,
            pushed: 0,
            dropped: 0,
        }
    }

    /// Where order updates and fills go (the gateway).
    pub fn with_sink(mut self, sink: PushSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Prices fees paid in a third asset from the venue's market stream.
    pub fn with_market(mut self, streams: StreamBook) -> Self {
        self.market = Some(streams);
        self
    }

    fn apply(
        &mut self,
        event: UserEvent,
        feed: &VenueFeed,
        now: Instant,
    ) -> Result<&'static str, FrameError> {
        let channel = event.channel();
        match event {
            UserEvent::ExecutionReport(r) => {
                let market = self.market.clone();
                let venue = self.venue.clone();
                let update = to_update(&self.venue, &self.config, &r, |asset| {
                    market
                        .as_ref()
                        .and_then(|m| m.fresh_quote(&venue, asset))
                        .map(|q| q.mid())
                })?;
                tracing::info!(venue = %self.venue, pair = %r.pair, order_id = r.order_id, execution = %r.execution_type, status = %r.status, "user stream: order update");
                match &self.sink {
                    Some(sink) => {
                        if sink.push(update) {
                            self.pushed += 1;
                        } else {
                            self.dropped += 1;
                            tracing::warn!(venue = %self.venue, "user stream update not taken by the gateway; REST reconciliation will find it");
                        }
                    }
                    None => self.dropped += 1,
                }
            }
            UserEvent::AccountPosition(p) => {
                for b in p.balances {
                    feed.put_balance(&b.asset, b.free, b.locked, now);
                }
            }
            UserEvent::ListenKeyExpired => self.listen_key.mark_expired(),
            UserEvent::BalanceUpdate | UserEvent::ListStatus => {}
            UserEvent::StreamTerminated => self.listen_key.mark_expired(),
        }
        Ok(channel)
    }

    /// Updates handed to the sink, and not taken.
    pub fn pushed(&self) -> (u64, u64) {
        (self.pushed, self.dropped)
    }
}

impl Protocol for SpotUserProtocol {
    fn connect_url<'a>(
        &'a mut self,
        configured: &'a str,
    ) -> BoxFuture<'a, Result<String, StreamError>> {
        Box::pin(self.listen_key.open(configured))
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
        let event = parse(text)?;
        self.apply(event, feed, now)
    }

    fn on_tick<'a>(
        &'a mut self,
        _feed: &'a VenueFeed,
        now: Instant,
    ) -> BoxFuture<'a, Result<(), StreamError>> {
        Box::pin(self.listen_key.tick(now))
    }

    fn on_disconnected<'a>(&'a mut self, _feed: &'a VenueFeed) -> BoxFuture<'a, ()> {
        Box::pin(self.listen_key.close())
    }
}
