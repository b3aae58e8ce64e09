//! The user-data connection of a Binance USDⓈ-M futures account: `<ws_url>/ws/<listenKey>`,
//! its key made, kept alive (every 30 minutes; a key lives 60) and closed over
//! `/fapi/v1/listenKey` by the shared [`ListenKeyLifecycle`].
//!
//! Facts (developers.binance.com, USDⓈ-M futures "User Data Streams"): events arrive raw
//! (no combined envelope); `ORDER_TRADE_UPDATE` carries an order's status `X`, the
//! execution type `x` (`TRADE` is a fill: trade id `t`, last filled `l` at `L`, commission
//! `n` in `N`), the client id `c`, reduce-only `R` and the order type `o`;
//! `ALGO_UPDATE` carries a conditional order of the Algo Order API (client algo id `caid`,
//! algo id `aid`, status `X`, executed `aq` at `ap`); `ACCOUNT_UPDATE` carries only the
//! balances and positions that changed; `listenKeyExpired` says no more events come on
//! this connection until a new key is used.
//!
//! Owns: turning those events into [`PushedUpdate`]s for the gateway's [`PushSink`] and
//! into the feed's pushed account, and reacting to an expired key (the next tick ends the
//! connection; the next connection makes a new key). Never: the ledger (the gateway applies
//! pushed updates with the reconciliation rules; a fill already recorded under the same
//! trade id — REST `userTrades` `id` is the same number as `t` — is not recorded again), and
//! never the listen key in a log, an error or a metric.
//!
//! What is pushed: an order state only for orders this engine placed (a client id that is
//! a [`ClientOrderId`]); the venue's own orders (`autoclose-` liquidations, `adl_autoclose`,
//! `settlement_autoclose-`, the market order a triggered algo order becomes) are not ledger
//! entries, but their fills are pushed, as REST `userTrades` lists them too. Fills are the
//! executions `TRADE` and `CALCULATED` (a liquidation or ADL execution) with a trade id and
//! a quantity. A conditional order type reported `EXPIRED` is its trigger (the venue
//! re-issues it as a market order) or a true expiry; the stream cannot tell them apart, so
//! that state is left to REST reconciliation.

use std::time::Duration;

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use tokio::time::Instant;

use super::frames::{self, AccountUpdate, AlgoOrderUpdate, FuturesEvent, OrderTradeUpdate};
use super::market::{parse_side, ContractNames, ROTATE_AFTER};
use crate::clock::Millis;
use crate::exchanges::stream::binance::ListenKeyLifecycle;
use crate::exchanges::stream::book::VenueFeed;
use crate::exchanges::stream::connection::StreamError;
use crate::exchanges::stream::derivatives::{PushedBalance, PushedPosition};
use crate::exchanges::stream::protocol::{FrameError, Protocol};
use crate::exchanges::stream::pushed::{PushSink, PushedUpdate};
use crate::exchanges::types::{ClientOrderId, FeeInAsset, Fill, OrderStatus, VenueOrder};

/// Whether `order_type` waits for a trigger.
fn is_conditional(order_type: &str) -> bool {
    matches!(
        order_type,
        "STOP" | "STOP_MARKET" | "TAKE_PROFIT" | "TAKE_PROFIT_MARKET" | "TRAILING_STOP_MARKET"
    )
}

fn invalid(reason: String) -> FrameError {
    FrameError::Invalid {
        venue: "Binance futures",
        reason,
    }
}

/// What one `ORDER_TRADE_UPDATE` says, in the engine's types. `quote_asset` is the
/// account's margin asset (a fee in it counts 1:1 as USD).
pub fn order_update(
    venue: &str,
    names: &ContractNames,
    quote_asset: &str,
    u: &OrderTradeUpdate,
) -> Result<PushedUpdate, FrameError> {
    let o = &u.order;
    let side =
        parse_side(&o.side).ok_or_else(|| invalid(format!("order update side `{}`", o.side)))?;
    if o.qty < Decimal::ZERO || o.last_qty < Decimal::ZERO || o.filled < Decimal::ZERO {
        return Err(invalid(format!(
            "order update {} with a negative quantity",
            o.order_id
        )));
    }
    let symbol = names.symbol(&o.pair);
    let client_id = ClientOrderId::parse(&o.client_id).ok();
    let mut update = PushedUpdate {
        venue: venue.to_string(),
        ..PushedUpdate::default()
    };
    let status = match o.status.as_str() {
        "NEW" => Some(OrderStatus::Acked),
        "PARTIALLY_FILLED" => Some(OrderStatus::PartiallyFilled),
        "FILLED" => Some(OrderStatus::Filled),
        "EXPIRED" if is_conditional(&o.order_type) => None,
        "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" => Some(OrderStatus::Cancelled),
        "REJECTED" => Some(OrderStatus::Rejected),
        // The venue's own close-outs (`NEW_ADL`, `NEW_INSURANCE`) are never ours.
        _ => None,
    };
    if let (Some(status), Some(cid)) = (status, &client_id) {
        update.orders.push(VenueOrder {
            client_id: Some(cid.clone()),
            venue_order_id: o.order_id.to_string(),
            symbol: symbol.clone(),
            side,
            size: o.qty.normalize(),
            filled_size: o.filled.normalize(),
            avg_fill_price: (o.avg_price > Decimal::ZERO && o.filled > Decimal::ZERO)
                .then(|| o.avg_price.normalize()),
            limit_price: (o.price > Decimal::ZERO).then(|| o.price.normalize()),
            status,
            reduce_only: o.reduce_only,
            reject_reason: None,
            updated_ms: u.transaction_ms,
        });
    }
    let executed = matches!(o.execution.as_str(), "TRADE" | "CALCULATED");
    if executed && o.trade_id != 0 && o.last_qty > Decimal::ZERO {
        let commission = o.fee.unwrap_or_default();
        let (fee, fee_asset) = match o.fee_asset.as_deref() {
            Some(asset) if asset != quote_asset && !commission.is_zero() => (
                // No price at hand on the stream: kept in its asset, never counted as 0
                // USD silently (the REST read of the same trade prices it).
                Decimal::ZERO,
                Some(FeeInAsset {
                    asset: asset.to_string(),
                    amount: commission,
                    usd_price: None,
                }),
            ),
            _ => (commission, None),
        };
        update.fills.push(Fill {
            fill_id: o.trade_id.to_string(),
            client_id,
            venue_order_id: o.order_id.to_string(),
            symbol,
            side,
            price: o.last_price,
            size: o.last_qty,
            fee,
            closed_pnl: o.realized_pnl.unwrap_or_default(),
            time_ms: o.trade_ms,
            fee_asset,
        });
    }
    Ok(update)
}

/// What one `ALGO_UPDATE` says about a conditional order this engine placed (named
/// `algo-<algoId>` until it triggers, then by the order it became, as the REST venue
/// names it); empty for other algo orders.
pub fn algo_update(
    venue: &str,
    names: &ContractNames,
    event_ms: Millis,
    a: &AlgoOrderUpdate,
) -> Result<PushedUpdate, FrameError> {
    let mut update = PushedUpdate {
        venue: venue.to_string(),
        ..PushedUpdate::default()
    };
    let Ok(cid) = ClientOrderId::parse(&a.client_algo_id) else {
        return Ok(update);
    };
    let side =
        parse_side(&a.side).ok_or_else(|| invalid(format!("algo update side `{}`", a.side)))?;
    let status = match a.status.as_str() {
        "NEW" | "TRIGGERING" | "TRIGGERED" => OrderStatus::Acked,
        "FINISHED" if a.executed > Decimal::ZERO && a.executed < a.qty => OrderStatus::Cancelled,
        "FINISHED" if a.executed > Decimal::ZERO => OrderStatus::Filled,
        "FINISHED" | "CANCELED" | "EXPIRED" => OrderStatus::Cancelled,
        "REJECTED" => OrderStatus::Rejected,
        other => return Err(invalid(format!("algo order status `{other}`"))),
    };
    update.orders.push(VenueOrder {
        client_id: Some(cid),
        venue_order_id: a.venue_order_id(),
        symbol: names.symbol(&a.pair),
        side,
        size: a.qty.normalize(),
        filled_size: a.executed.normalize(),
        avg_fill_price: (a.avg_price > Decimal::ZERO && a.executed > Decimal::ZERO)
            .then(|| a.avg_price.normalize()),
        limit_price: (a.price > Decimal::ZERO).then(|| a.price.normalize()),
        status,
        reduce_only: a.reduce_only,
        reject_reason: None,
        updated_ms: event_ms,
    });
    Ok(update)
}

/// Merges an `ACCOUNT_UPDATE` into the feed's pushed account.
pub fn apply_account(names: &ContractNames, a: &AccountUpdate, feed: &VenueFeed) {
    let balances = a
        .change
        .balances
        .iter()
        .map(|b| PushedBalance {
            asset: b.asset.clone(),
            wallet_balance: b.wallet_balance,
            cross_wallet_balance: b.cross_wallet_balance,
            balance_change: b.balance_change,
        })
        .collect();
    let positions = a
        .change
        .positions
        .iter()
        .map(|p| PushedPosition {
            symbol: names.symbol(&p.pair),
            position_side: p.position_side.clone(),
            amount: p.amount,
            entry_price: p.entry_price,
            unrealized_pnl: p.unrealized_pnl,
            margin_type: p.margin_type.clone(),
        })
        .collect();
    feed.derivatives()
        .apply_account(&a.change.reason, a.transaction_ms, balances, positions);
}

/// The futures user data stream of one account.
pub struct FuturesUserProtocol {
    venue: String,
    names: ContractNames,
    quote_asset: String,
    keys: ListenKeyLifecycle,
    sink: PushSink,
}

impl std::fmt::Debug for FuturesUserProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuturesUserProtocol")
            .field("venue", &self.venue)
            .finish_non_exhaustive()
    }
}

impl FuturesUserProtocol {
    /// `venue` names the pushed updates (the venue's name, not its user feed's).
    pub fn new(
        venue: &str,
        cfg: &crate::exchanges::binance_futures::BinanceFuturesConfig,
        keys: ListenKeyLifecycle,
        sink: PushSink,
    ) -> Self {
        Self {
            venue: venue.to_string(),
            names: ContractNames::new(cfg),
            quote_asset: cfg.quote_asset.clone(),
            keys,
            sink,
        }
    }

    fn deliver(&self, update: PushedUpdate) {
        let (orders, fills) = (update.orders.len(), update.fills.len());
        if !self.sink.push(update) {
            tracing::warn!(venue = %self.venue, orders, fills, "the gateway did not take a pushed order update; REST reconciliation will find it");
        }
    }
}

impl Protocol for FuturesUserProtocol {
    fn connect_url<'a>(
        &'a mut self,
        configured: &'a str,
    ) -> BoxFuture<'a, Result<String, StreamError>> {
        Box::pin(self.keys.open(configured))
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
        _now: Instant,
    ) -> Result<&'static str, FrameError> {
        let event = frames::parse_event(text)?;
        let channel = event.channel();
        match event {
            FuturesEvent::OrderTradeUpdate(u) => {
                let update = order_update(&self.venue, &self.names, &self.quote_asset, &u)?;
                self.deliver(update);
            }
            FuturesEvent::AlgoUpdate(a) => {
                let update = algo_update(&self.venue, &self.names, a.event_ms, &a.order)?;
                self.deliver(update);
            }
            FuturesEvent::AccountUpdate(a) => apply_account(&self.names, &a, feed),
            FuturesEvent::ListenKeyExpired(_) => self.keys.mark_expired(),
            _ => {}
        }
        Ok(channel)
    }

    fn on_tick<'a>(
        &'a mut self,
        _feed: &'a VenueFeed,
        now: Instant,
    ) -> BoxFuture<'a, Result<(), StreamError>> {
        Box::pin(self.keys.tick(now))
    }

    fn max_lifetime(&self) -> Option<Duration> {
        Some(ROTATE_AFTER)
    }

    fn on_disconnected<'a>(&'a mut self, _feed: &'a VenueFeed) -> BoxFuture<'a, ()> {
        Box::pin(self.keys.close())
    }
}
