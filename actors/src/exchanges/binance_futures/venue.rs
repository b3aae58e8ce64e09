//! The Binance USDⓈ-M futures venue: [`Venue`] and [`DerivativesData`] over the `/fapi`
//! REST API.
//!
//! Owns: the fapi wire shapes and their conversion to venue-neutral types; the order
//! mapping (MARKET, LIMIT GTC/IOC/GTX for post-only, `reduceOnly`; the engine's
//! [`OrderType::Trigger`] as a conditional order of the Algo Order API: `STOP_MARKET` /
//! `TAKE_PROFIT_MARKET` with `triggerPrice`, `STOP` / `TAKE_PROFIT` with a limit price);
//! the one-way position-mode check before the first order; the margin type of each
//! symbol (`margin_type`, set once per symbol per run; -4046 "No need to change margin
//! type" is success, decided on the code); leverage (`POST /fapi/v1/leverage`, read back
//! from positionRisk); funding and open interest, and each symbol's funding interval
//! (`GET /fapi/v1/fundingInfo` lists only the symbols whose interval, cap or floor was
//! adjusted; any other symbol settles every 8 h; the list is cached for an hour). Never: signs, limits, paces, resyncs
//! the clock or caches filters itself — every request goes through the shared Binance
//! request machinery ([`BinanceSpotVenue::send`] opened with the [`FUTURES`] dialect),
//! so spot and futures follow one implementation of Binance's rules; never retries an
//! order send (a 5xx, timeout or reset after the bytes may have left is
//! [`VenueError::OutcomeUnknown`], resolved by the gateway with [`Venue::query_order`]
//! by `origClientOrderId` / `clientAlgoId`); never prints or stores the keys.
//!
//! Decided here:
//! - Conditional orders: since 2025-12-09 `POST /fapi/v1/order` refuses `STOP_MARKET`,
//!   `TAKE_PROFIT_MARKET`, `STOP` and `TAKE_PROFIT` with -4120; they are placed with
//!   `POST /fapi/v1/algoOrder` (`algoType=CONDITIONAL`, `clientAlgoId` = the ledger's
//!   client id), looked up with `GET /fapi/v1/algoOrder`, listed with
//!   `GET /fapi/v1/openAlgoOrders` and cancelled with `DELETE /fapi/v1/algoOrder`. A
//!   query or cancel by client id asks the regular order first, then the algo order.
//!   An algo order is `acked` until it finishes: `FINISHED` is filled (or cancelled when
//!   nothing executed), `CANCELED`/`EXPIRED` cancelled, `REJECTED` rejected.
//! - Positions are one-way (`positionSide` BOTH): an account in hedge mode is refused
//!   with a message that says how to switch, before any order is sent.
//! - The account value is `totalMarginBalance` (wallet plus unrealised PnL), the free
//!   balance `availableBalance`, margin used `totalInitialMargin`.
//! - Local refusals before the ledger's send: quantity on the lot (`MARKET_LOT_SIZE` for
//!   market orders), price on the tick, `MIN_NOTIONAL` (`notional`) at the order's price
//!   or, for a market order, the approval's reference price — except for reduce-only
//!   orders, which Binance exempts — and `PERCENT_PRICE` of a limit price against the
//!   reference price (the mid the gate judged, standing in for the mark price).
//! - `max_leverage` of an instrument is 125, Binance's highest bracket; a symbol's own
//!   bracket is enforced by Binance when leverage is set (an error, never a silent cap).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use reqwest::Method;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use super::config::{
    BinanceFuturesConfig, MarginType, API_KEY_ENV, API_SECRET_ENV, ORDERS_1M_POOL, ORDERS_PER_10S,
    ORDERS_PER_MINUTE, WEIGHT_PER_MINUTE,
};
use crate::clock::{Millis, SharedClock};
use crate::env::{process_env, EnvLookup};
use crate::exchanges::account::Endpoint;
use crate::exchanges::binance::config::ORDERS_POOL;
use crate::exchanges::binance::dialect::{Dialect, OrderCount};
use crate::exchanges::binance::errors::RequestKind;
use crate::exchanges::binance::filters::{to_wire, FilterError, SymbolRules};
use crate::exchanges::binance::venue::{order_status, parse_side, Call, TradeFee};
use crate::exchanges::binance::{BinanceOpenError, BinanceSpotVenue};
use crate::exchanges::derivatives::{
    DerivativesData, FundingInfo, FundingRate, OiPeriod, OpenInterest, OpenInterestPoint,
};
use crate::exchanges::risk_gate::RiskApproved;
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError, VenueResult};
use crate::resilience::{BreakerRecord, BreakerState, Priority};
use crate::store::Tree;

/// Binance USDⓈ-M futures, `/fapi`, for the shared request machinery.
pub const FUTURES: Dialect = Dialect {
    time_path: "/fapi/v1/time",
    exchange_info_path: "/fapi/v1/exchangeInfo",
    exchange_info_per_symbol: false,
    book_ticker_path: "/fapi/v1/ticker/bookTicker",
    klines_path: "/fapi/v1/klines",
    weight_per_minute: WEIGHT_PER_MINUTE,
    // GET /fapi/v1/positionSide/dual.
    heaviest_weight: 30,
    order_counts: &[
        OrderCount {
            header: "X-MBX-ORDER-COUNT-10S",
            pool: ORDERS_POOL,
            limit: ORDERS_PER_10S,
            window: Duration::from_secs(10),
        },
        OrderCount {
            header: "X-MBX-ORDER-COUNT-1M",
            pool: ORDERS_1M_POOL,
            limit: ORDERS_PER_MINUTE,
            window: Duration::from_secs(60),
        },
    ],
    api_key_env: API_KEY_ENV,
    api_secret_env: API_SECRET_ENV,
};

/// Binance's highest leverage bracket.
const MAX_LEVERAGE: u32 = 125;
/// "No need to change margin type." (the symbol already has it).
const NO_NEED_TO_CHANGE_MARGIN_TYPE: i64 = -4046;

/// One Binance USDⓈ-M futures account.
pub struct BinanceFuturesVenue {
    /// The shared request machinery (signing, limits, pause, breaker, clock offset,
    /// filter cache), speaking [`FUTURES`]. Its spot `Venue` methods are used only where
    /// the wire is the same (bookTicker, klines, exchangeInfo → instrument).
    rest: BinanceSpotVenue,
    config: BinanceFuturesConfig,
    /// Symbols whose margin type was set (or found already set) in this run.
    margin_set: Mutex<HashSet<String>>,
    /// The account was seen in one-way mode in this run.
    one_way: AtomicBool,
    /// `fundingInfo`'s adjusted intervals by pair, and when they were read.
    funding_intervals: Mutex<Option<FundingIntervals>>,
}

impl fmt::Debug for BinanceFuturesVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceFuturesVenue")
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

/// A decimal Binance sends as a string (or, in a few answers, a number).
fn dec<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if s.is_empty() => Ok(Decimal::ZERO),
        serde_json::Value::String(s) => s
            .parse()
            .or_else(|_| Decimal::from_scientific(&s))
            .map_err(D::Error::custom),
        serde_json::Value::Number(n) => n.to_string().parse().map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("not a decimal: {other}"))),
    }
}

fn opt_dec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    dec(d).map(Some)
}

/// A time Binance sends as a number (or, in `openInterestHist`, sometimes a string).
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom(format!("not a time in ms: {n}"))),
        serde_json::Value::String(s) => s.trim().parse().map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("not a time in ms: {other}"))),
    }
}

/// An order as `POST/GET/DELETE /fapi/v1/order` and `openOrders` return it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderWire {
    symbol: String,
    order_id: i64,
    client_order_id: String,
    #[serde(deserialize_with = "dec")]
    price: Decimal,
    #[serde(default, deserialize_with = "opt_dec")]
    avg_price: Option<Decimal>,
    #[serde(deserialize_with = "dec")]
    orig_qty: Decimal,
    #[serde(deserialize_with = "dec")]
    executed_qty: Decimal,
    status: String,
    side: String,
    #[serde(default)]
    reduce_only: bool,
    #[serde(default)]
    update_time: Option<i64>,
    #[serde(default)]
    time: Option<i64>,
}

/// A conditional order of the Algo Order API.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlgoOrderWire {
    algo_id: i64,
    client_algo_id: String,
    symbol: String,
    side: String,
    #[serde(default, deserialize_with = "opt_dec")]
    quantity: Option<Decimal>,
    #[serde(default)]
    algo_status: Option<String>,
    #[serde(default, deserialize_with = "opt_dec")]
    price: Option<Decimal>,
    #[serde(default)]
    reduce_only: bool,
    #[serde(default, deserialize_with = "opt_dec")]
    executed_qty: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    avg_price: Option<Decimal>,
    #[serde(default)]
    update_time: Option<i64>,
    #[serde(default)]
    create_time: Option<i64>,
    /// The regular order placed when it triggered (a string, empty before).
    #[serde(default)]
    actual_order_id: Option<serde_json::Value>,
}

impl AlgoOrderWire {
    /// The order id its fills carry once triggered (`actualOrderId`), else
    /// `algo-<algoId>`: so the ledger finds the fills of a triggered stop by its order id.
    fn venue_order_id(&self) -> String {
        match &self.actual_order_id {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s != "0" => s.clone(),
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some_and(|n| n > 0) => {
                n.to_string()
            }
            _ => format!("algo-{}", self.algo_id),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TradeWire {
    id: i64,
    order_id: i64,
    side: String,
    #[serde(deserialize_with = "dec")]
    price: Decimal,
    #[serde(deserialize_with = "dec")]
    qty: Decimal,
    #[serde(deserialize_with = "dec")]
    realized_pnl: Decimal,
    #[serde(deserialize_with = "dec")]
    commission: Decimal,
    commission_asset: String,
    time: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionRiskWire {
    symbol: String,
    #[serde(deserialize_with = "dec")]
    position_amt: Decimal,
    #[serde(deserialize_with = "dec")]
    entry_price: Decimal,
    #[serde(deserialize_with = "dec")]
    mark_price: Decimal,
    #[serde(deserialize_with = "dec")]
    un_realized_profit: Decimal,
    #[serde(deserialize_with = "dec")]
    liquidation_price: Decimal,
    #[serde(deserialize_with = "dec")]
    leverage: Decimal,
    #[serde(default)]
    margin_type: String,
    #[serde(default, deserialize_with = "opt_dec")]
    isolated_margin: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    notional: Option<Decimal>,
    #[serde(default)]
    position_side: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountWire {
    #[serde(deserialize_with = "dec")]
    total_initial_margin: Decimal,
    #[serde(deserialize_with = "dec")]
    total_unrealized_profit: Decimal,
    #[serde(deserialize_with = "dec")]
    total_margin_balance: Decimal,
    #[serde(deserialize_with = "dec")]
    available_balance: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PremiumIndexWire {
    symbol: String,
    #[serde(deserialize_with = "dec")]
    mark_price: Decimal,
    #[serde(deserialize_with = "dec")]
    index_price: Decimal,
    #[serde(deserialize_with = "dec")]
    last_funding_rate: Decimal,
    next_funding_time: i64,
    time: i64,
}

/// One row of `GET /fapi/v1/fundingInfo` (the fields read here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FundingInfoWire {
    symbol: String,
    funding_interval_hours: u32,
}

/// `fundingInfo`'s intervals (hours) by pair, and when they were read.
type FundingIntervals = (Arc<HashMap<String, u32>>, tokio::time::Instant);

/// Hours between settlements of a symbol `fundingInfo` does not list.
pub const DEFAULT_FUNDING_INTERVAL_HOURS: u32 = 8;
/// How long the `fundingInfo` list is reused: Binance changes an interval rarely and
/// announces it in advance.
const FUNDING_INFO_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FundingRateWire {
    symbol: String,
    #[serde(deserialize_with = "dec")]
    funding_rate: Decimal,
    funding_time: i64,
    #[serde(default, deserialize_with = "opt_dec")]
    mark_price: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenInterestWire {
    symbol: String,
    #[serde(deserialize_with = "dec")]
    open_interest: Decimal,
    time: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenInterestHistWire {
    symbol: String,
    #[serde(deserialize_with = "dec")]
    sum_open_interest: Decimal,
    #[serde(deserialize_with = "dec")]
    sum_open_interest_value: Decimal,
    #[serde(deserialize_with = "millis")]
    timestamp: Millis,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionModeWire {
    dual_side_position: bool,
}

fn wire_side(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

impl BinanceFuturesVenue {
    /// Opens the account with keys from the process environment.
    pub fn open(
        name: &str,
        config: &BinanceFuturesConfig,
        clock: SharedClock,
    ) -> Result<Self, BinanceOpenError> {
        Self::open_at(name, config, clock, &process_env, None)
    }

    /// Opens the account with keys from `env` (tests inject their own lookup).
    pub fn open_with_env(
        name: &str,
        config: &BinanceFuturesConfig,
        clock: SharedClock,
        env: EnvLookup<'_>,
    ) -> Result<Self, BinanceOpenError> {
        Self::open_at(name, config, clock, env, None)
    }

    /// Served through `endpoint` (its URL, its own breaker, the account's shared pools and
    /// 429/418 pause), or the configured `base_url` with limits of its own.
    pub fn open_at(
        name: &str,
        config: &BinanceFuturesConfig,
        clock: SharedClock,
        env: &dyn Fn(&str) -> Option<String>,
        endpoint: Option<&Endpoint>,
    ) -> Result<Self, BinanceOpenError> {
        let rest = BinanceSpotVenue::open_dialect(
            name,
            &config.rest_config(),
            clock,
            env,
            endpoint,
            &FUTURES,
        )?;
        Ok(Self {
            rest,
            config: config.clone(),
            margin_set: Mutex::new(HashSet::new()),
            one_way: AtomicBool::new(false),
            funding_intervals: Mutex::new(None),
        })
    }

    /// Keeps the circuit breaker's state in `tree` (the store's `breakers`).
    pub fn with_breaker_store(mut self, tree: Tree<BreakerRecord>) -> Self {
        self.rest = self.rest.with_breaker_store(tree);
        self
    }

    /// Reads `GET /fapi/v1/time` and keeps server minus local time.
    pub async fn sync_time_now(&self) -> VenueResult<i64> {
        self.rest.sync_time_now().await
    }

    /// Request weight this venue may still spend now.
    pub fn weight_headroom(&self) -> Option<u64> {
        self.rest.weight_headroom()
    }

    /// Units pool `pool` (`weight`, `orders`, `orders_1m`) could admit now.
    pub fn pool_headroom(&self, pool: &str) -> Option<u64> {
        self.rest.pool_headroom(pool)
    }

    fn pair(&self, symbol: &str) -> String {
        self.config.pair_of(symbol)
    }

    fn name_str(&self) -> &str {
        self.rest.name()
    }

    /// A signed state change (order, cancel, leverage, margin type): sent at most once;
    /// a lost answer is an unknown outcome.
    fn change(
        method: Method,
        path: &'static str,
        endpoint: &'static str,
        kind: RequestKind,
        priority: Priority,
    ) -> Call {
        let mut call = Call::get(path, endpoint).signed();
        call.method = method;
        call.kind = kind;
        call.priority = priority;
        call
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        call: &Call,
        symbol: Option<&str>,
    ) -> VenueResult<T> {
        let body = self.rest.send(call, symbol).await?;
        serde_json::from_slice(&body).map_err(|e| {
            self.rest
                .err_malformed(&format!("{} {}", call.method, call.path), e)
        })
    }

    /// Hours between funding settlements of `symbol`: `fundingInfo`'s value where it
    /// lists the pair, else [`DEFAULT_FUNDING_INTERVAL_HOURS`].
    pub async fn funding_interval_hours(&self, symbol: &str) -> VenueResult<u32> {
        let cached = self
            .funding_intervals
            .lock()
            .as_ref()
            .filter(|(_, at)| at.elapsed() < FUNDING_INFO_TTL)
            .map(|(m, _)| m.clone());
        let intervals = match cached {
            Some(m) => m,
            None => {
                let call = Call::get("/fapi/v1/fundingInfo", "funding_info");
                let rows: Vec<FundingInfoWire> = self.read_json(&call, None).await?;
                let m: Arc<HashMap<String, u32>> = Arc::new(
                    rows.into_iter()
                        .filter(|r| r.funding_interval_hours > 0)
                        .map(|r| (r.symbol, r.funding_interval_hours))
                        .collect(),
                );
                *self.funding_intervals.lock() = Some((m.clone(), tokio::time::Instant::now()));
                m
            }
        };
        Ok(intervals
            .get(&self.pair(symbol))
            .copied()
            .unwrap_or(DEFAULT_FUNDING_INTERVAL_HOURS))
    }

    /// Whether the account is in hedge mode (`GET /fapi/v1/positionSide/dual`).
    pub async fn hedge_mode(&self) -> VenueResult<bool> {
        let call = Call::get("/fapi/v1/positionSide/dual", "position_mode").signed();
        let w: PositionModeWire = self.read_json(&call, None).await?;
        Ok(w.dual_side_position)
    }

    /// Refuses to trade an account in hedge mode: the engine keeps one net position per
    /// symbol (`positionSide` BOTH). Checked once per run, before the first order.
    async fn ensure_one_way(&self) -> VenueResult<()> {
        if self.one_way.load(Ordering::Relaxed) {
            return Ok(());
        }
        if self.hedge_mode().await? {
            return Err(self.rest.invalid(
                "the account is in hedge mode (dualSidePosition=true) and this engine trades one-way positions; \
                 switch it to one-way mode (POST /fapi/v1/positionSide/dual dualSidePosition=false, or \
                 Preferences → Position Mode in the UI) with no open positions or orders, then retry; nothing was sent"
                    .to_string(),
            ));
        }
        self.one_way.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Sets `symbol`'s margin type (`POST /fapi/v1/marginType`). Already having it
    /// (-4046) is success.
    pub async fn set_margin_type(&self, symbol: &str, margin: MarginType) -> VenueResult<()> {
        let mut call = Self::change(
            Method::POST,
            "/fapi/v1/marginType",
            "margin_type",
            // Not an order: a lost answer is settled by reading positionRisk, never by
            // sending it twice blindly (sending it twice is harmless anyway: -4046).
            RequestKind::Cancel,
            Priority::Medium,
        )
        .param("symbol", self.pair(symbol))
        .param("marginType", margin.as_wire());
        call.success_codes = &[NO_NEED_TO_CHANGE_MARGIN_TYPE];
        self.rest.send(&call, Some(symbol)).await.map(|_| ())
    }

    /// The configured margin type of `symbol`, once per run.
    async fn ensure_margin_type(&self, symbol: &str) -> VenueResult<()> {
        let Some(margin) = self.config.margin_type else {
            return Ok(());
        };
        if self.margin_set.lock().contains(symbol) {
            return Ok(());
        }
        self.set_margin_type(symbol, margin).await?;
        self.margin_set.lock().insert(symbol.to_string());
        Ok(())
    }

    fn not_sent(&self, e: FilterError) -> VenueError {
        self.rest.invalid(format!(
            "{e}; the order cannot be represented on Binance futures and was not sent"
        ))
    }

    /// The local checks of an order against the symbol's filters (see the module docs).
    fn check_filters(
        &self,
        rules: &SymbolRules,
        order: &OrderRequest,
        reference: Decimal,
    ) -> VenueResult<()> {
        let market_like = matches!(
            order.order_type,
            OrderType::Market { .. }
                | OrderType::Trigger {
                    limit_price: None,
                    ..
                }
        );
        rules
            .check_qty(order.size, market_like)
            .map_err(|e| self.not_sent(e))?;
        let buy = order.side == Side::Buy;
        let price = match &order.order_type {
            OrderType::Market { .. } => reference,
            OrderType::Limit { price, .. } => {
                rules.check_price(*price).map_err(|e| self.not_sent(e))?;
                rules
                    .check_percent_price(*price, buy, reference)
                    .map_err(|e| self.not_sent(e))?;
                *price
            }
            OrderType::Trigger {
                trigger_price,
                limit_price,
                ..
            } => {
                rules
                    .check_price(*trigger_price)
                    .map_err(|e| self.not_sent(e))?;
                if let Some(p) = limit_price {
                    rules.check_price(*p).map_err(|e| self.not_sent(e))?;
                }
                limit_price.unwrap_or(*trigger_price)
            }
        };
        if !order.reduce_only && price > Decimal::ZERO {
            rules
                .check_notional(price, order.size)
                .map_err(|e| self.not_sent(e))?;
        }
        Ok(())
    }

    fn to_venue_order(&self, w: OrderWire) -> VenueResult<VenueOrder> {
        let side =
            parse_side(&w.side).ok_or_else(|| self.rest.err_malformed("order side", &w.side))?;
        let status = order_status(&w.status)
            .ok_or_else(|| self.rest.err_malformed("order status", &w.status))?;
        Ok(VenueOrder {
            client_id: ClientOrderId::parse(&w.client_order_id).ok(),
            venue_order_id: w.order_id.to_string(),
            symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
            side,
            size: w.orig_qty.normalize(),
            filled_size: w.executed_qty.normalize(),
            avg_fill_price: w
                .avg_price
                .filter(|p| *p > Decimal::ZERO && w.executed_qty > Decimal::ZERO)
                .map(|p| p.normalize()),
            limit_price: (w.price > Decimal::ZERO).then(|| w.price.normalize()),
            status,
            reduce_only: w.reduce_only,
            reject_reason: None,
            updated_ms: w
                .update_time
                .or(w.time)
                .unwrap_or_else(|| self.rest.clock().now_ms()),
        })
    }

    fn algo_to_venue_order(&self, w: AlgoOrderWire) -> VenueResult<VenueOrder> {
        let side = parse_side(&w.side)
            .ok_or_else(|| self.rest.err_malformed("algo order side", &w.side))?;
        let executed = w.executed_qty.unwrap_or_default();
        let size = w.quantity.unwrap_or_default();
        let status = match w.algo_status.as_deref().unwrap_or("NEW") {
            "NEW" | "TRIGGERING" | "TRIGGERED" => OrderStatus::Acked,
            "FINISHED" if executed > Decimal::ZERO && executed < size => OrderStatus::Cancelled,
            "FINISHED" if executed > Decimal::ZERO => OrderStatus::Filled,
            "FINISHED" | "CANCELED" | "EXPIRED" => OrderStatus::Cancelled,
            "REJECTED" => OrderStatus::Rejected,
            other => return Err(self.rest.err_malformed("algo order status", other)),
        };
        Ok(VenueOrder {
            client_id: ClientOrderId::parse(&w.client_algo_id).ok(),
            venue_order_id: w.venue_order_id(),
            symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
            side,
            size: size.normalize(),
            filled_size: executed.normalize(),
            avg_fill_price: w
                .avg_price
                .filter(|p| *p > Decimal::ZERO && executed > Decimal::ZERO)
                .map(|p| p.normalize()),
            limit_price: w
                .price
                .filter(|p| *p > Decimal::ZERO)
                .map(|p| p.normalize()),
            status,
            reduce_only: w.reduce_only,
            reject_reason: None,
            updated_ms: w
                .update_time
                .or(w.create_time)
                .unwrap_or_else(|| self.rest.clock().now_ms()),
        })
    }

    async fn position_risk(&self) -> VenueResult<Vec<PositionRiskWire>> {
        let call = Call::get("/fapi/v2/positionRisk", "position_risk").signed();
        self.read_json(&call, None).await
    }

    fn to_position(&self, w: PositionRiskWire) -> Option<Position> {
        if w.position_amt.is_zero() {
            return None;
        }
        let symbol = self.config.symbol_of(&w.symbol)?;
        let leverage = w.leverage.trunc().to_u32().unwrap_or(1).max(1);
        let notional = w.notional.unwrap_or(w.position_amt * w.mark_price).abs();
        let margin_used = match w.isolated_margin {
            Some(m) if w.margin_type.eq_ignore_ascii_case("isolated") => m,
            _ => notional / Decimal::from(leverage),
        };
        Some(Position {
            symbol,
            size: w.position_amt.normalize(),
            entry_price: w.entry_price.normalize(),
            mark_price: w.mark_price.normalize(),
            unrealized_pnl: w.un_realized_profit,
            leverage,
            liquidation_price: (w.liquidation_price > Decimal::ZERO)
                .then(|| w.liquidation_price.normalize()),
            margin_used,
        })
    }

    async fn account_wire(&self) -> VenueResult<AccountWire> {
        let call = Call::get("/fapi/v2/account", "account").signed();
        self.read_json(&call, None).await
    }

    fn to_snapshot(&self, w: &AccountWire) -> AccountSnapshot {
        AccountSnapshot {
            account_value: w.total_margin_balance,
            free_balance: w.available_balance,
            margin_used: w.total_initial_margin,
            unrealized_pnl: w.total_unrealized_profit,
            time_ms: self.rest.clock().now_ms(),
        }
    }

    /// `DELETE` of a regular order by `key`, or of an algo order by `algo_key`.
    async fn send_cancel(
        &self,
        symbol: &str,
        path: &'static str,
        key: &'static str,
        id: &str,
    ) -> VenueResult<()> {
        let call = Self::change(
            Method::DELETE,
            path,
            "cancel",
            RequestKind::Cancel,
            Priority::High,
        )
        .param("symbol", self.pair(symbol))
        .param(key, id);
        self.rest.send(&call, Some(symbol)).await.map(|_| ())
    }
}

#[async_trait]
impl Venue for BinanceFuturesVenue {
    fn name(&self) -> &str {
        self.name_str()
    }

    async fn instrument(&self, symbol: &str) -> VenueResult<Instrument> {
        let mut i = self.rest.instrument(symbol).await?;
        i.max_leverage = MAX_LEVERAGE;
        Ok(i)
    }

    /// `GET /fapi/v1/ticker/bookTicker` (the spot venue's reading of the same shape).
    async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
        self.rest.quote(symbol).await
    }

    /// `GET /fapi/v1/klines` (the spot venue's reading of the same rows).
    async fn candles(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> VenueResult<Vec<Candle>> {
        self.rest.candles(symbol, timeframe, lookback).await
    }

    /// The configured `recvWindow`: an order is signed so that `timestamp` + `recvWindow`
    /// is its deadline.
    fn order_validity(&self) -> Duration {
        self.rest.order_validity()
    }

    async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
        let rules = self.rest.rules_for(&order.symbol).await?;
        self.check_filters(&rules, order, order.reference_price())?;
        self.ensure_one_way().await?;
        self.ensure_margin_type(&order.symbol).await?;
        let conditional = matches!(order.order_type, OrderType::Trigger { .. });
        let (path, what) = if conditional {
            ("/fapi/v1/algoOrder", "POST /fapi/v1/algoOrder")
        } else {
            ("/fapi/v1/order", "POST /fapi/v1/order")
        };
        let mut call = Self::change(
            Method::POST,
            path,
            "order",
            RequestKind::OrderSend,
            Priority::Medium,
        );
        call.valid_until = order.valid_until_ms;
        if conditional {
            call = call.param("algoType", "CONDITIONAL");
        }
        call = call
            .param("symbol", self.pair(&order.symbol))
            .param("side", wire_side(order.side));
        match &order.order_type {
            OrderType::Market { .. } => {
                call = call
                    .param("type", "MARKET")
                    .param("quantity", to_wire(order.size));
            }
            OrderType::Limit { price, tif } => {
                let tif = match tif {
                    TimeInForce::Gtc => "GTC",
                    TimeInForce::Ioc => "IOC",
                    // Post-only: Good Till Crossing.
                    TimeInForce::Alo => "GTX",
                };
                call = call
                    .param("type", "LIMIT")
                    .param("timeInForce", tif)
                    .param("quantity", to_wire(order.size))
                    .param("price", to_wire(*price));
            }
            OrderType::Trigger {
                trigger_price,
                kind,
                limit_price,
            } => {
                let ty = match (kind, limit_price) {
                    (TriggerKind::StopLoss, None) => "STOP_MARKET",
                    (TriggerKind::StopLoss, Some(_)) => "STOP",
                    (TriggerKind::TakeProfit, None) => "TAKE_PROFIT_MARKET",
                    (TriggerKind::TakeProfit, Some(_)) => "TAKE_PROFIT",
                };
                call = call.param("type", ty);
                if let Some(p) = limit_price {
                    call = call.param("timeInForce", "GTC").param("price", to_wire(*p));
                }
                call = call
                    .param("quantity", to_wire(order.size))
                    .param("triggerPrice", to_wire(*trigger_price));
            }
        }
        if order.reduce_only {
            call = call.param("reduceOnly", "true");
        }
        call = if conditional {
            call.param("clientAlgoId", order.client_id.as_str())
        } else {
            call.param("newClientOrderId", order.client_id.as_str())
                .param("newOrderRespType", "RESULT")
        };
        let body = self.rest.send(&call, Some(&order.symbol)).await?;
        // The venue answered 2xx: the order exists. An answer we cannot read still leaves
        // its state unknown to us, so the gateway asks by client id.
        let unreadable = |e: serde_json::Error| VenueError::OutcomeUnknown {
            venue: self.name_str().to_string(),
            reason: format!("{what} answered with a body we cannot read: {e}"),
        };
        if conditional {
            let w: AlgoOrderWire = serde_json::from_slice(&body).map_err(unreadable)?;
            self.algo_to_venue_order(w)
        } else {
            let w: OrderWire = serde_json::from_slice(&body).map_err(unreadable)?;
            self.to_venue_order(w)
        }
    }

    async fn cancel_order(&self, symbol: &str, client_id: &ClientOrderId) -> VenueResult<()> {
        let not_found = |venue: String| VenueError::OrderNotFound {
            venue,
            client_id: client_id.to_string(),
        };
        match self
            .send_cancel(
                symbol,
                "/fapi/v1/order",
                "origClientOrderId",
                client_id.as_str(),
            )
            .await
        {
            Err(VenueError::OrderNotFound { .. }) => {}
            other => return other,
        }
        // Not a regular order: a conditional one has the same client id on the Algo API.
        match self
            .send_cancel(
                symbol,
                "/fapi/v1/algoOrder",
                "clientAlgoId",
                client_id.as_str(),
            )
            .await
        {
            Err(VenueError::OrderNotFound { venue, .. }) => Err(not_found(venue)),
            other => other,
        }
    }

    async fn cancel_by_venue_id(&self, symbol: &str, venue_order_id: &str) -> VenueResult<()> {
        match venue_order_id.strip_prefix("algo-") {
            Some(algo_id) => {
                self.send_cancel(symbol, "/fapi/v1/algoOrder", "algoId", algo_id)
                    .await
            }
            None => {
                self.send_cancel(symbol, "/fapi/v1/order", "orderId", venue_order_id)
                    .await
            }
        }
    }

    async fn query_order(
        &self,
        symbol: &str,
        client_id: &ClientOrderId,
    ) -> VenueResult<Option<VenueOrder>> {
        let mut call = Call::get("/fapi/v1/order", "query_order")
            .signed()
            .param("symbol", self.pair(symbol))
            .param("origClientOrderId", client_id.as_str());
        call.priority = Priority::High;
        match self.read_json::<OrderWire>(&call, Some(symbol)).await {
            Ok(w) => return self.to_venue_order(w).map(Some),
            Err(VenueError::OrderNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut call = Call::get("/fapi/v1/algoOrder", "query_order")
            .signed()
            .param("clientAlgoId", client_id.as_str());
        call.priority = Priority::High;
        match self.read_json::<AlgoOrderWire>(&call, Some(symbol)).await {
            Ok(w) => self.algo_to_venue_order(w).map(Some),
            Err(VenueError::OrderNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
        let mut out = Vec::new();
        for symbol in &self.config.symbols {
            let call = Call::get("/fapi/v1/openOrders", "open_orders")
                .signed()
                .param("symbol", self.pair(symbol));
            let rows: Vec<OrderWire> = self.read_json(&call, Some(symbol)).await?;
            for w in rows {
                out.push(self.to_venue_order(w)?);
            }
            let call = Call::get("/fapi/v1/openAlgoOrders", "open_orders")
                .signed()
                .param("symbol", self.pair(symbol));
            let rows: Vec<AlgoOrderWire> = self.read_json(&call, Some(symbol)).await?;
            for w in rows {
                out.push(self.algo_to_venue_order(w)?);
            }
        }
        Ok(out)
    }

    async fn fills_since(&self, since_ms: Millis) -> VenueResult<Vec<Fill>> {
        let mut out = Vec::new();
        let mut prices: HashMap<String, Option<Decimal>> = HashMap::new();
        for symbol in &self.config.symbols {
            let mut call = Call::get("/fapi/v1/userTrades", "my_trades")
                .signed()
                .param("symbol", self.pair(symbol));
            if since_ms > 0 {
                call = call.param("startTime", since_ms.to_string());
            }
            call = call.param("limit", "1000");
            let rows: Vec<TradeWire> = self.read_json(&call, Some(symbol)).await?;
            for t in rows.into_iter().filter(|t| t.time >= since_ms) {
                let side = parse_side(&t.side)
                    .ok_or_else(|| self.rest.err_malformed("trade side", &t.side))?;
                // USDT, or BNB with the fee discount: priced as the spot venue prices it.
                let (fee, fee_asset) = self
                    .rest
                    .fee_in_usd(
                        symbol,
                        &TradeFee {
                            asset: &t.commission_asset,
                            commission: t.commission,
                            trade_price: t.price,
                        },
                        &mut prices,
                    )
                    .await;
                out.push(Fill {
                    fill_id: t.id.to_string(),
                    client_id: None,
                    venue_order_id: t.order_id.to_string(),
                    symbol: symbol.clone(),
                    side,
                    price: t.price,
                    size: t.qty,
                    fee,
                    closed_pnl: t.realized_pnl,
                    time_ms: t.time,
                    fee_asset,
                });
            }
        }
        out.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.fill_id.cmp(&b.fill_id)));
        Ok(out)
    }

    async fn positions(&self) -> VenueResult<Vec<Position>> {
        Ok(self
            .position_risk()
            .await?
            .into_iter()
            .filter(|w| w.position_side.as_deref().is_none_or(|s| s == "BOTH"))
            .filter_map(|w| self.to_position(w))
            .collect())
    }

    async fn account(&self) -> VenueResult<AccountSnapshot> {
        let w = self.account_wire().await?;
        Ok(self.to_snapshot(&w))
    }

    async fn set_leverage(&self, symbol: &str, leverage: u32) -> VenueResult<()> {
        let call = Self::change(
            Method::POST,
            "/fapi/v1/leverage",
            "leverage",
            // A state change sent once; a lost answer is settled with `leverage()`.
            RequestKind::Cancel,
            Priority::Medium,
        )
        .param("symbol", self.pair(symbol))
        .param("leverage", leverage.to_string());
        self.rest.send(&call, Some(symbol)).await.map(|_| ())
    }

    fn saturated(&self) -> bool {
        self.rest.saturated()
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        self.rest.breaker_state()
    }

    /// positionRisk's `leverage` of the symbol (Binance reports it also without a
    /// position).
    async fn leverage(&self, symbol: &str) -> VenueResult<u32> {
        let pair = self.pair(symbol);
        let call = Call::get("/fapi/v2/positionRisk", "position_risk")
            .signed()
            .param("symbol", pair.clone());
        let rows: Vec<PositionRiskWire> = self.read_json(&call, Some(symbol)).await?;
        let row = rows.into_iter().find(|w| w.symbol == pair).ok_or_else(|| {
            VenueError::UnknownSymbol {
                venue: self.name_str().to_string(),
                symbol: symbol.to_string(),
            }
        })?;
        row.leverage.trunc().to_u32().ok_or_else(|| {
            self.rest
                .err_malformed("positionRisk leverage", row.leverage)
        })
    }
}

#[async_trait]
impl DerivativesData for BinanceFuturesVenue {
    /// `GET /fapi/v1/premiumIndex`, and the interval from `fundingInfo` (cached).
    async fn funding(&self, symbol: &str) -> VenueResult<FundingInfo> {
        let call =
            Call::get("/fapi/v1/premiumIndex", "premium_index").param("symbol", self.pair(symbol));
        let w: PremiumIndexWire = self.read_json(&call, Some(symbol)).await?;
        let funding_interval_hours = self.funding_interval_hours(symbol).await?;
        Ok(FundingInfo {
            funding_interval_hours,
            symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
            mark_price: w.mark_price.normalize(),
            index_price: w.index_price.normalize(),
            funding_rate: w.last_funding_rate.normalize(),
            next_funding_time_ms: w.next_funding_time,
            time_ms: w.time,
        })
    }

    /// `GET /fapi/v1/fundingRate` (at most 1000 rows).
    async fn funding_history(&self, symbol: &str, limit: usize) -> VenueResult<Vec<FundingRate>> {
        let call = Call::get("/fapi/v1/fundingRate", "funding_rate")
            .param("symbol", self.pair(symbol))
            .param("limit", limit.clamp(1, 1000).to_string());
        let mut rows: Vec<FundingRateWire> = self.read_json(&call, Some(symbol)).await?;
        rows.sort_by_key(|r| r.funding_time);
        Ok(rows
            .into_iter()
            .map(|w| FundingRate {
                symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
                rate: w.funding_rate.normalize(),
                time_ms: w.funding_time,
                mark_price: w
                    .mark_price
                    .filter(|p| *p > Decimal::ZERO)
                    .map(|p| p.normalize()),
            })
            .collect())
    }

    /// `GET /fapi/v1/openInterest`.
    async fn open_interest(&self, symbol: &str) -> VenueResult<OpenInterest> {
        let call =
            Call::get("/fapi/v1/openInterest", "open_interest").param("symbol", self.pair(symbol));
        let w: OpenInterestWire = self.read_json(&call, Some(symbol)).await?;
        Ok(OpenInterest {
            symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
            open_interest: w.open_interest.normalize(),
            time_ms: w.time,
        })
    }

    /// `GET /futures/data/openInterestHist` (at most 500 rows; Binance keeps the last 30
    /// days).
    async fn open_interest_history(
        &self,
        symbol: &str,
        period: OiPeriod,
        limit: usize,
    ) -> VenueResult<Vec<OpenInterestPoint>> {
        let call = Call::get("/futures/data/openInterestHist", "open_interest_hist")
            .param("symbol", self.pair(symbol))
            .param("period", period.as_str())
            .param("limit", limit.clamp(1, 500).to_string());
        let mut rows: Vec<OpenInterestHistWire> = self.read_json(&call, Some(symbol)).await?;
        rows.sort_by_key(|r| r.timestamp);
        Ok(rows
            .into_iter()
            .map(|w| OpenInterestPoint {
                symbol: self.config.symbol_of(&w.symbol).unwrap_or(w.symbol),
                open_interest: w.sum_open_interest.normalize(),
                open_interest_value: w.sum_open_interest_value.normalize(),
                time_ms: w.timestamp,
            })
            .collect())
    }
}

/// Opens a venue for public reads only (funding, open interest, quotes): no key is sent
/// for them, so none is needed; a real key, if exported, is used as is.
pub fn open_public(
    name: &str,
    config: &BinanceFuturesConfig,
    clock: SharedClock,
) -> Result<Arc<BinanceFuturesVenue>, BinanceOpenError> {
    open_public_at(name, config, clock, None)
}

/// As [`open_public`], served through `endpoint` (the account's shared pools, e.g. a
/// cluster's shared weight scope) instead of limits of its own.
pub fn open_public_at(
    name: &str,
    config: &BinanceFuturesConfig,
    clock: SharedClock,
    endpoint: Option<&Endpoint>,
) -> Result<Arc<BinanceFuturesVenue>, BinanceOpenError> {
    let env = |var: &str| {
        process_env(var).or_else(|| {
            [API_KEY_ENV, API_SECRET_ENV]
                .contains(&var)
                .then(|| "public-reads-only".to_string())
        })
    };
    BinanceFuturesVenue::open_at(name, config, clock, &env, endpoint).map(Arc::new)
}

/// `GET /fapi/v1/klines` by range through the shared Binance machinery (1000 rows a page,
/// weight 5; see [`crate::exchanges::binance::venue::KLINES_PER_PAGE`]).
#[async_trait]
impl crate::exchanges::history::CandleHistory for BinanceFuturesVenue {
    fn page_limit(&self) -> usize {
        crate::exchanges::binance::KLINES_PER_PAGE
    }

    async fn candles_between(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: Millis,
        end_ms: Millis,
    ) -> VenueResult<Vec<Candle>> {
        self.rest
            .klines_between(symbol, timeframe, start_ms, end_ms)
            .await
    }
}
