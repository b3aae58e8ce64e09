//! Hyperliquid's user channels over the same websocket as the public ones: the account's
//! `orderUpdates`, `userFills` and `userEvents`, and `userFills` of other addresses the
//! operator follows (`follow_wallets`).
//!
//! Shapes follow the official docs (hyperliquid.gitbook.io/hyperliquid-docs/for-developers/
//! api/websocket/subscriptions): a subscription is `{"type":"orderUpdates"|"userFills"|
//! "userEvents","user":"0x…"}`; `orderUpdates` frames carry `WsOrder[]` (`{order:
//! WsBasicOrder, status, statusTimestamp}`, the same order object as the REST `orderStatus`
//! answer, read by [`OrderWithStatusWire`]); `userFills` frames carry `WsUserFills`
//! (`{isSnapshot?, user, fills: WsFill[]}`), whose first frame after subscribing replays
//! recent history with `isSnapshot: true`; `userEvents` frames arrive on channel `user`
//! (the official Python SDK maps channel `user` to `userEvents`, and the recorded
//! liquidation fill is `{"channel":"user","data":{"fills":[…]}}`) and carry one of
//! `{fills}`, `{funding}`, `{liquidation}`, `{nonUserCancel}`.
//!
//! Owns: those subscriptions, the typed frames, and what is done with them: the account's
//! order states and fills become a [`PushedUpdate`] handed to the order gateway's
//! [`PushSink`] (order statuses as the REST `orderStatus` mapping,
//! [`order_status_of`](crate::exchanges::hyperliquid::info::order_status_of); cloid →
//! client id; fill id = `tid`, as REST; the frame's `isSnapshot` → `snapshot`); followed
//! wallets' fills go to the feed's bounded ring ([`super::followed`]). Never: writes the
//! ledger (the gateway does, with the reconciliation rules), and never puts a followed
//! wallet's fill anywhere near it.
//!
//! `userEvents` fills repeat what `userFills` carries (same `tid`s), so they are not pushed
//! a second time; `funding` is logged at debug, `liquidation` at warn and each
//! `nonUserCancel` (an order the venue cancelled, e.g. for margin) at info — the order's
//! new state itself arrives on `orderUpdates`.
//!
//! ## Other addresses
//!
//! The websocket serves every user channel for any address without a signature, but
//! `orderUpdates` and `userEvents` frames do not say whose they are, and the official
//! Python SDK refuses a second subscription of either on one connection for that reason.
//! `userFills` frames name their `user`, so followed wallets get `userFills` only, on the
//! account's connection.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::book::VenueFeed;
use super::protocol::FrameError;
use super::pushed::{PushSink, PushedUpdate};
use crate::clock::Millis;
use crate::exchanges::hyperliquid::info::{FillWire, OrderWithStatusWire, WireSide};
use crate::exchanges::types::Fill;

/// Channel names the user frames are counted under.
pub const ORDER_UPDATES: &str = "orderUpdates";
pub const USER_FILLS: &str = "userFills";
pub const USER_EVENTS: &str = "userEvents";

/// One user-channel subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSubscription {
    OrderUpdates { user: String },
    UserFills { user: String },
    UserEvents { user: String },
}

impl UserSubscription {
    pub fn to_json(&self) -> serde_json::Value {
        let (kind, user) = match self {
            Self::OrderUpdates { user } => ("orderUpdates", user),
            Self::UserFills { user } => ("userFills", user),
            Self::UserEvents { user } => ("userEvents", user),
        };
        serde_json::json!({"type": kind, "user": user})
    }

    pub fn subscribe_message(&self) -> String {
        serde_json::json!({"method": "subscribe", "subscription": self.to_json()}).to_string()
    }
}

/// `FillLiquidation` of the docs: present on a fill that was part of a liquidation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FillLiquidation {
    #[serde(default)]
    pub liquidated_user: Option<String>,
    pub mark_px: Decimal,
    /// `market` or `backstop`.
    pub method: String,
}

/// `WsFill` of the docs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsFill {
    pub coin: String,
    pub px: Decimal,
    pub sz: Decimal,
    pub side: WireSide,
    pub time: Millis,
    pub start_position: Decimal,
    pub dir: String,
    pub closed_pnl: Decimal,
    pub hash: String,
    pub oid: u64,
    pub crossed: bool,
    pub fee: Decimal,
    pub tid: u64,
    #[serde(default)]
    pub fee_token: Option<String>,
    #[serde(default)]
    pub cloid: Option<String>,
    #[serde(default)]
    pub liquidation: Option<FillLiquidation>,
}

impl WsFill {
    /// The fill in the engine's terms, exactly as the REST `userFills` answer maps it.
    pub fn into_fill(self) -> Result<Fill, FrameError> {
        if self.sz <= Decimal::ZERO || self.px <= Decimal::ZERO {
            return Err(invalid(format!(
                "fill {} of order {} has size {} at price {}; both must be positive",
                self.tid, self.oid, self.sz, self.px
            )));
        }
        FillWire {
            coin: self.coin,
            px: self.px,
            sz: self.sz,
            side: self.side,
            time: self.time,
            start_position: self.start_position,
            closed_pnl: self.closed_pnl,
            hash: self.hash,
            oid: self.oid,
            fee: self.fee,
            tid: Some(self.tid),
            cloid: self.cloid,
            fee_token: self.fee_token,
        }
        .into_fill("userFills")
        .map_err(invalid)
    }
}

fn invalid(e: impl std::fmt::Display) -> FrameError {
    FrameError::Invalid {
        venue: "Hyperliquid",
        reason: e.to_string(),
    }
}

/// `WsUserFills` of the docs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsUserFills {
    /// Set on the first frame after subscribing: a replay of recent history.
    #[serde(default)]
    pub is_snapshot: bool,
    pub user: String,
    pub fills: Vec<WsFill>,
}

/// `WsUserFunding` of the docs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsUserFunding {
    pub time: Millis,
    pub coin: String,
    pub usdc: Decimal,
    pub szi: Decimal,
    pub funding_rate: Decimal,
}

/// `WsLiquidation` of the docs (its field names are snake_case there).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsLiquidation {
    pub lid: u64,
    pub liquidator: String,
    pub liquidated_user: String,
    pub liquidated_ntl_pos: Decimal,
    pub liquidated_account_value: Decimal,
}

/// `WsNonUserCancel` of the docs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsNonUserCancel {
    pub coin: String,
    pub oid: u64,
}

/// `WsUserEvent` of the docs: exactly one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WsUserEvent {
    Fills(Vec<WsFill>),
    Funding(WsUserFunding),
    Liquidation(WsLiquidation),
    NonUserCancel(Vec<WsNonUserCancel>),
}

/// The account's user channels and the followed wallets of one venue's stream.
#[derive(Debug, Clone)]
pub struct UserStreams {
    venue: String,
    /// The account's address, lower case (the vault when trading for one).
    user: String,
    sink: PushSink,
    /// Followed addresses, lower case.
    follow: Vec<String>,
}

impl UserStreams {
    /// `user` and `follow` are 0x addresses (validated by the config); compared without
    /// regard to letter case, as the venue does.
    pub fn new(venue: &str, user: &str, sink: PushSink, follow: &[String]) -> Self {
        Self {
            venue: venue.to_string(),
            user: user.to_ascii_lowercase(),
            sink,
            follow: follow
                .iter()
                .map(|w| w.to_ascii_lowercase())
                .filter(|w| *w != user.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The account's three channels, then `userFills` of each followed wallet.
    pub fn subscriptions(&self) -> Vec<UserSubscription> {
        let user = self.user.clone();
        let mut subs = vec![
            UserSubscription::OrderUpdates { user: user.clone() },
            UserSubscription::UserFills { user: user.clone() },
            UserSubscription::UserEvents { user },
        ];
        subs.extend(
            self.follow
                .iter()
                .map(|w| UserSubscription::UserFills { user: w.clone() }),
        );
        subs
    }

    /// Once connected: the user channels are event-driven (silence is normal, never
    /// stale), and the followed wallets are listed in the feed even before their first
    /// fill.
    pub fn on_connected(&self, feed: &VenueFeed) {
        for channel in [ORDER_UPDATES, USER_FILLS, USER_EVENTS] {
            feed.mark_event_driven(channel);
        }
        feed.followed().watch(&self.follow);
    }

    /// `orderUpdates`: every state to the gateway.
    pub fn on_order_updates(&self, orders: Vec<OrderWithStatusWire>) -> Result<(), FrameError> {
        let orders = orders
            .into_iter()
            .map(|o| o.into_venue_order("orderUpdates").map_err(invalid))
            .collect::<Result<Vec<_>, _>>()?;
        self.push(PushedUpdate {
            venue: self.venue.clone(),
            orders,
            fills: Vec::new(),
            snapshot: false,
        });
        Ok(())
    }

    /// `userFills`: the account's to the gateway, a followed wallet's to its ring.
    pub fn on_user_fills(&self, frame: WsUserFills, feed: &VenueFeed) -> Result<(), FrameError> {
        let who = frame.user.to_ascii_lowercase();
        let fills = frame
            .fills
            .into_iter()
            .map(WsFill::into_fill)
            .collect::<Result<Vec<_>, _>>()?;
        if who == self.user {
            self.push(PushedUpdate {
                venue: self.venue.clone(),
                orders: Vec::new(),
                fills,
                snapshot: frame.is_snapshot,
            });
        } else if self.follow.contains(&who) {
            for f in &fills {
                tracing::debug!(venue = %self.venue, wallet = %who, symbol = %f.symbol, side = %f.side, size = %f.size.normalize(), price = %f.price.normalize(), snapshot = frame.is_snapshot, "followed wallet fill");
            }
            feed.followed().record(&who, fills);
        } else {
            tracing::debug!(venue = %self.venue, user = %who, "userFills frame for an address not subscribed here; ignored");
        }
        Ok(())
    }

    /// `userEvents`: logged (fills arrive on `userFills`, order states on `orderUpdates`).
    pub fn on_user_event(&self, event: WsUserEvent) {
        match event {
            WsUserEvent::Fills(_) => {}
            WsUserEvent::Funding(f) => {
                tracing::debug!(venue = %self.venue, coin = %f.coin, usdc = %f.usdc.normalize(), size = %f.szi.normalize(), rate = %f.funding_rate.normalize(), "funding payment");
            }
            WsUserEvent::Liquidation(l) => {
                tracing::warn!(venue = %self.venue, lid = l.lid, liquidated_user = %l.liquidated_user, notional = %l.liquidated_ntl_pos.normalize(), account_value = %l.liquidated_account_value.normalize(), "the venue reports a liquidation of this account");
            }
            WsUserEvent::NonUserCancel(cancels) => {
                for c in cancels {
                    tracing::info!(venue = %self.venue, coin = %c.coin, venue_order_id = c.oid, "the venue cancelled an order (not this engine); its state reaches the ledger from orderUpdates or the next reconciliation");
                }
            }
        }
    }

    fn push(&self, update: PushedUpdate) {
        // A refused update was counted by the sink; REST reconciliation finds the same.
        let _ = self.sink.push(update);
    }
}
