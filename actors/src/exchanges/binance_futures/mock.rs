//! A stateful mock Binance USDⓈ-M futures exchange on loopback, for tests (feature
//! `testkit`).
//!
//! Owns: a small one-way futures account (USDT wallet, a net position per contract with
//! its leverage and margin type, orders, conditional algo orders, trades) and a book per
//! contract, answering `/fapi` in Binance's documented shapes and error bodies. Signed
//! requests are checked exactly as the spot mock checks them (the same code: API key
//! -2015, signature -1022, timestamp/`recvWindow` -1021 against a clock that can be
//! skewed). Every answer carries `X-MBX-USED-WEIGHT-1M`; order endpoints also
//! `X-MBX-ORDER-COUNT-10S` / `-1M`. Orders are judged as Binance documents: quantity and
//! price on the exchangeInfo grid (-1111), `MIN_NOTIONAL` unless reduce-only (-4164
//! "Order's notional must be no smaller than 5 (unless you choose reduce only)."), a
//! reduce-only order that would not reduce the position (-2022 "ReduceOnly Order is
//! rejected."), initial margin over the available balance (-2019 "Margin is
//! insufficient."), conditional types on `/fapi/v1/order` (-4120), unknown orders
//! (-2013), a margin type already set (-4046). MARKET orders fill at the touch; LIMIT
//! orders rest until [`MockBinanceFutures::set_book`] crosses them (GTX that would cross
//! expires); conditional orders trigger when `set_book` passes their trigger price and
//! then fill as MARKET orders. Commission is 0.05% taker / 0.02% maker in USDT.
//!
//! Faults ([`Fault`], the spot mock's) are queued and consumed one per request: 429 with
//! Retry-After (-1003), 418 bans, 503 before execution (-1001), the answer lost after an
//! order or cancel was applied (connection reset) or answered 503 after it was applied, a
//! hang, malformed JSON. Binance's refusals (-2019, -2022, -4164, -1021, ...) come from the
//! account's state, as at Binance: set it with `set_wallet`, `set_position`,
//! `set_min_notional`, `set_clock_offset_ms`, `set_dual_side`.
//!
//! Shapes: order, positionRisk v2, account v2 and openAlgoOrders follow the recorded
//! NautilusTrader fixtures of Binance answers; premiumIndex, fundingRate, fundingInfo, openInterest,
//! openInterestHist, leverage, marginType and positionSide/dual follow the examples of
//! Binance's USDⓈ-M API documentation. Not confirmed by a recording or example: the
//! algo order query/cancel answer for an unknown `clientAlgoId` (assumed to be the
//! regular -2013 "Order does not exist."), and the exact response of `POST
//! /fapi/v1/algoOrder` beyond the fields the venue reads (`algoId`, `clientAlgoId`,
//! `algoStatus`, `symbol`, `side`, `quantity`, `triggerPrice`, `price`, `reduceOnly`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::config::WEIGHT_PER_MINUTE;
use std::sync::Arc;

use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::exchanges::binance::mock::{
    after_fault, authenticate, d8, err, params_of, take_fault, wall_ms,
};
use crate::exchanges::binance::signing::ApiSecret;
use crate::testkit::{MockServer, RecordedRequest, Reply};

/// API key the mock accepts.
pub const MOCK_API_KEY: &str = crate::exchanges::binance::mock::MOCK_API_KEY;
/// API secret the mock verifies signatures with.
pub const MOCK_API_SECRET: &str = crate::exchanges::binance::mock::MOCK_API_SECRET;

/// 0.05% taker, 0.02% maker (regular tier).
const TAKER_FEE: Decimal = Decimal::from_parts(5, 0, 0, false, 4);
const MAKER_FEE: Decimal = Decimal::from_parts(2, 0, 0, false, 4);

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// Faults are the spot mock's, answered by the same code (the documented 429/418 bodies
/// with this API's 2400 weight budget named, 5xx, reset after an order or cancel was
/// applied, a proxy's 502 before a cancel, malformed JSON, hang); "order" is `POST
/// /fapi/v1/order` or `/fapi/v1/algoOrder`, "cancel" their `DELETE`.
pub use crate::exchanges::binance::mock::Fault;

#[derive(Debug, Clone)]
struct Contract {
    bid: Decimal,
    ask: Decimal,
    tick: Decimal,
    step: Decimal,
    min_notional: Decimal,
    funding_rate: Decimal,
    open_interest: Decimal,
    /// Listed in `fundingInfo` with this interval; `None`: not listed (8 h).
    funding_interval_hours: Option<u32>,
    /// Settled rates, oldest first, that `fundingRate` answers; `None`: a generated series
    /// around the current rate.
    funding_history: Option<Vec<Decimal>>,
    leverage: u32,
    margin_type: &'static str,
    /// Net position (negative: short) and its entry price.
    amt: Decimal,
    entry: Decimal,
}

impl Contract {
    fn mid(&self) -> Decimal {
        (self.bid + self.ask) / Decimal::TWO
    }

    fn funding_period_ms(&self) -> i64 {
        i64::from(self.funding_interval_hours.unwrap_or(8)) * 3_600_000
    }
}

#[derive(Debug, Clone)]
struct Order {
    symbol: String,
    order_id: i64,
    client_order_id: String,
    side: String,
    ty: String,
    tif: String,
    price: Decimal,
    orig_qty: Decimal,
    executed_qty: Decimal,
    cum_quote: Decimal,
    reduce_only: bool,
    status: String,
    time: i64,
    update_time: i64,
}

#[derive(Debug, Clone)]
struct AlgoOrder {
    algo_id: i64,
    client_algo_id: String,
    symbol: String,
    side: String,
    ty: String,
    qty: Decimal,
    trigger: Decimal,
    price: Decimal,
    reduce_only: bool,
    status: String,
    executed_qty: Decimal,
    avg_price: Decimal,
    actual_order_id: Option<i64>,
    time: i64,
    update_time: i64,
}

#[derive(Debug, Clone)]
struct Trade {
    symbol: String,
    id: i64,
    order_id: i64,
    side: String,
    price: Decimal,
    qty: Decimal,
    realized_pnl: Decimal,
    commission: Decimal,
    time: i64,
    maker: bool,
}

struct State {
    /// Candle history served by klines with `startTime`/`endTime` (see [`MockBinanceFutures::set_klines`]).
    klines: crate::exchanges::binance::mock::KlineHistory,
    secret: ApiSecret,
    clock_offset_ms: i64,
    contracts: BTreeMap<String, Contract>,
    wallet: Decimal,
    dual_side: bool,
    orders: Vec<Order>,
    algos: Vec<AlgoOrder>,
    trades: Vec<Trade>,
    next_id: i64,
    faults: VecDeque<Fault>,
    /// The account's active user-data listen key, and how many were made.
    listen_key: Option<String>,
    listen_keys_made: u64,
    /// (minute, weight used in it).
    weight: (i64, u64),
    /// Order times (server ms), for the order-count headers.
    order_times: Vec<i64>,
}

fn weight_of(method: &str, route: &str) -> u64 {
    match (method, route) {
        ("GET", "/fapi/v1/ticker/bookTicker") => 2,
        ("GET", "/fapi/v1/klines") => 5,
        ("GET", "/fapi/v1/userTrades") | ("GET", "/fapi/v2/account") => 5,
        ("GET", "/fapi/v2/positionRisk") => 5,
        ("GET", "/fapi/v1/positionSide/dual") => 30,
        ("POST", "/fapi/v1/order") | ("POST", "/fapi/v1/algoOrder") => 0,
        _ => 1,
    }
}

/// The mock exchange; stops when dropped.
pub struct MockBinanceFutures {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MockBinanceFutures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBinanceFutures")
            .field("url", &self.server.url())
            .finish()
    }
}

impl MockBinanceFutures {
    /// BTCUSDT (59990/60010, tick 0.1, step 0.001), ETHUSDT (2999/3001, tick 0.01, step
    /// 0.001) and SOLUSDT (149.9/150.1, tick 0.01, step 0.01), min notional 5 each,
    /// leverage 20 (cross), one-way mode, a wallet of 10000 USDT.
    pub fn start() -> Self {
        let mut contracts = BTreeMap::new();
        for (pair, bid, ask, tick, step, rate, oi) in [
            (
                "BTCUSDT",
                "59990",
                "60010",
                "0.1",
                "0.001",
                "0.00010000",
                "81234.567",
            ),
            (
                "ETHUSDT",
                "2999",
                "3001",
                "0.01",
                "0.001",
                "0.00005000",
                "1523456.789",
            ),
            (
                "SOLUSDT",
                "149.9",
                "150.1",
                "0.01",
                "0.01",
                "-0.00002500",
                "9876543.21",
            ),
        ] {
            contracts.insert(
                pair.to_string(),
                Contract {
                    bid: d(bid),
                    ask: d(ask),
                    tick: d(tick),
                    step: d(step),
                    min_notional: d("5"),
                    funding_rate: d(rate),
                    open_interest: d(oi),
                    funding_interval_hours: None,
                    funding_history: None,
                    leverage: 20,
                    margin_type: "cross",
                    amt: Decimal::ZERO,
                    entry: Decimal::ZERO,
                },
            );
        }
        let state = Arc::new(Mutex::new(State {
            klines: Default::default(),
            // Invariant: the constant secret is not empty.
            secret: ApiSecret::new(MOCK_API_SECRET).expect("mock secret"),
            clock_offset_ms: 0,
            contracts,
            wallet: d("10000"),
            dual_side: false,
            orders: Vec::new(),
            algos: Vec::new(),
            trades: Vec::new(),
            next_id: 1,
            faults: VecDeque::new(),
            listen_key: None,
            listen_keys_made: 0,
            weight: (0, 0),
            order_times: Vec::new(),
        }));
        let handler_state = state.clone();
        let server = MockServer::start(move |req| handle(&handler_state, req));
        Self { server, state }
    }

    /// The active user-data listen key, if any.
    pub fn listen_key(&self) -> Option<String> {
        self.state.lock().listen_key.clone()
    }

    /// Listen keys made so far.
    pub fn listen_keys_made(&self) -> u64 {
        self.state.lock().listen_keys_made
    }

    /// Forgets the active listen key, as the venue does 60 minutes after its last
    /// keep-alive: a PUT or DELETE of it is then -1125.
    pub fn expire_listen_key(&self) {
        self.state.lock().listen_key = None;
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `GET /fapi/v1/klines` of `pair` at `interval` answers from `candles` (oldest first)
    /// as Binance documents it (limit up to 1500; see the spot mock's `kline_answer`).
    pub fn set_klines(&self, pair: &str, interval: &str, candles: Vec<crate::exchanges::Candle>) {
        self.state.lock().klines.set(pair, interval, candles);
    }

    /// Wall-clock ms at which each klines request arrived, rate-limited ones included.
    pub fn kline_request_times(&self) -> Vec<i64> {
        self.state.lock().klines.arrivals.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    pub fn count(&self, route: &str) -> usize {
        self.server.count(route)
    }

    /// How many order sends (`POST /fapi/v1/order` with `newClientOrderId`, or `POST
    /// /fapi/v1/algoOrder` with `clientAlgoId`) carried this client id.
    pub fn order_posts(&self, client_id: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && ((r.route() == "/fapi/v1/order"
                        && r.query("newClientOrderId") == Some(client_id))
                        || (r.route() == "/fapi/v1/algoOrder"
                            && r.query("clientAlgoId") == Some(client_id)))
            })
            .count()
    }

    /// Skews the mock's clock relative to the wall clock (server ahead when positive).
    pub fn set_clock_offset_ms(&self, ms: i64) {
        self.state.lock().clock_offset_ms = ms;
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state.lock().faults.push_back(fault);
    }

    /// Sets the USDT wallet balance.
    pub fn set_wallet(&self, usdt: Decimal) {
        self.state.lock().wallet = usdt;
    }

    /// Switches the account's position mode (`true`: hedge mode).
    pub fn set_dual_side(&self, dual: bool) {
        self.state.lock().dual_side = dual;
    }

    /// Sets a contract's net position (negative: short) at `entry`.
    pub fn set_position(&self, pair: &str, amt: Decimal, entry: Decimal) {
        if let Some(c) = self.state.lock().contracts.get_mut(pair) {
            c.amt = amt;
            c.entry = entry;
        }
    }

    /// A contract's net position.
    pub fn position(&self, pair: &str) -> Decimal {
        self.state
            .lock()
            .contracts
            .get(pair)
            .map(|c| c.amt)
            .unwrap_or_default()
    }

    /// A contract's leverage and margin type (`cross` / `isolated`).
    pub fn leverage_and_margin(&self, pair: &str) -> Option<(u32, String)> {
        self.state
            .lock()
            .contracts
            .get(pair)
            .map(|c| (c.leverage, c.margin_type.to_string()))
    }

    /// Counts `n` orders as placed now by another client of the same account (they show
    /// in the order-count headers).
    pub fn add_orders_placed_elsewhere(&self, n: usize) {
        let mut st = self.state.lock();
        let now = wall_ms() + st.clock_offset_ms;
        st.order_times.extend(std::iter::repeat_n(now, n));
    }

    /// Changes a contract's MIN_NOTIONAL.
    pub fn set_min_notional(&self, pair: &str, min_notional: Decimal) {
        if let Some(c) = self.state.lock().contracts.get_mut(pair) {
            c.min_notional = min_notional;
        }
    }

    /// Status of the order (or algo order) with this client id.
    pub fn order_status(&self, client_id: &str) -> Option<String> {
        let st = self.state.lock();
        st.orders
            .iter()
            .find(|o| o.client_order_id == client_id)
            .map(|o| o.status.clone())
            .or_else(|| {
                st.algos
                    .iter()
                    .find(|a| a.client_algo_id == client_id)
                    .map(|a| a.status.clone())
            })
    }

    /// Sets a contract's open interest (what `openInterest` answers now; the history ends
    /// at the value before).
    pub fn set_open_interest(&self, pair: &str, open_interest: Decimal) {
        if let Some(c) = self.state.lock().contracts.get_mut(pair) {
            c.open_interest = open_interest;
        }
    }

    /// The funding rate of the period in progress (`premiumIndex`'s `lastFundingRate`).
    pub fn set_funding_rate(&self, pair: &str, rate: Decimal) {
        if let Some(c) = self.state.lock().contracts.get_mut(pair) {
            c.funding_rate = rate;
        }
    }

    /// Lists `pair` in `fundingInfo` with this interval (Binance lists only adjusted
    /// symbols; an unlisted one settles every 8 h).
    pub fn set_funding_interval_hours(&self, pair: &str, hours: u32) {
        if let Some(c) = self.state.lock().contracts.get_mut(pair) {
            c.funding_interval_hours = Some(hours);
        }
    }

    /// The settled rates `fundingRate` answers, oldest first, the newest settled at the
    /// last interval boundary.
    pub fn set_funding_history(&self, pair: &str, rates: Vec<Decimal>) {
        if let Some(c) = self.state.lock().contracts.get_mut(pair) {
            c.funding_history = Some(rates);
        }
    }

    /// Moves the book: resting LIMIT orders it crosses fill at their price, conditional
    /// orders whose trigger it passes fire and fill at the new touch.
    pub fn set_book(&self, pair: &str, bid: Decimal, ask: Decimal) {
        let mut st = self.state.lock();
        let now = wall_ms() + st.clock_offset_ms;
        if let Some(c) = st.contracts.get_mut(pair) {
            c.bid = bid;
            c.ask = ask;
        }
        let crossing: Vec<usize> = st
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.symbol == pair
                    && matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED")
                    && o.ty == "LIMIT"
                    && ((o.side == "BUY" && ask <= o.price) || (o.side == "SELL" && bid >= o.price))
            })
            .map(|(i, _)| i)
            .collect();
        for i in crossing {
            let (price, qty) = (
                st.orders[i].price,
                st.orders[i].orig_qty - st.orders[i].executed_qty,
            );
            execute(&mut st, i, price, qty, true, now);
        }
        let firing: Vec<usize> = st
            .algos
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.symbol == pair
                    && a.status == "NEW"
                    && triggers(&a.ty, &a.side, bid, ask, a.trigger)
            })
            .map(|(i, _)| i)
            .collect();
        for i in firing {
            let a = st.algos[i].clone();
            let order_id = st.next_id;
            st.next_id += 1;
            st.orders.push(Order {
                symbol: a.symbol.clone(),
                order_id,
                client_order_id: format!("algo{}", a.algo_id),
                side: a.side.clone(),
                ty: "MARKET".into(),
                tif: "GTC".into(),
                price: Decimal::ZERO,
                orig_qty: a.qty,
                executed_qty: Decimal::ZERO,
                cum_quote: Decimal::ZERO,
                reduce_only: a.reduce_only,
                status: "NEW".into(),
                time: now,
                update_time: now,
            });
            let oi = st.orders.len() - 1;
            let touch = if a.side == "BUY" { ask } else { bid };
            let qty = if a.reduce_only {
                a.qty.min(st.contracts[pair].amt.abs())
            } else {
                a.qty
            };
            execute(&mut st, oi, touch, qty, false, now);
            let algo = &mut st.algos[i];
            algo.status = "FINISHED".into();
            algo.executed_qty = qty;
            algo.avg_price = touch;
            algo.actual_order_id = Some(order_id);
            algo.update_time = now;
        }
    }
}

fn handle(state: &Arc<Mutex<State>>, req: &RecordedRequest) -> Reply {
    let mut st = state.lock();
    let now = wall_ms() + st.clock_offset_ms;
    let minute = now.div_euclid(60_000);
    if st.weight.0 != minute {
        st.weight = (minute, 0);
    }
    st.weight.1 += weight_of(&req.method, req.route());
    let used = st.weight.1.to_string();
    if req.route() == "/fapi/v1/klines" {
        st.klines.arrivals.push(wall_ms());
    }
    let is_order =
        req.method == "POST" && matches!(req.route(), "/fapi/v1/order" | "/fapi/v1/algoOrder");
    let reply = route(&mut st, req, now, is_order);
    let reply = reply.with_header("X-MBX-USED-WEIGHT-1M", &used);
    if is_order {
        st.order_times.retain(|t| now - t < 60_000);
        let in_10s = st.order_times.iter().filter(|t| now - **t < 10_000).count();
        let in_1m = st.order_times.len();
        reply
            .with_header("X-MBX-ORDER-COUNT-10S", &in_10s.to_string())
            .with_header("X-MBX-ORDER-COUNT-1M", &in_1m.to_string())
    } else {
        reply
    }
}

fn route(st: &mut State, req: &RecordedRequest, now: i64, is_order: bool) -> Reply {
    let is_cancel =
        req.method == "DELETE" && matches!(req.route(), "/fapi/v1/order" | "/fapi/v1/algoOrder");
    let after = match take_fault(&mut st.faults, WEIGHT_PER_MINUTE, is_order, is_cancel, now) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let p = params_of(req);
    let public = matches!(
        req.route(),
        "/fapi/v1/time"
            | "/fapi/v1/exchangeInfo"
            | "/fapi/v1/ticker/bookTicker"
            | "/fapi/v1/klines"
            | "/fapi/v1/premiumIndex"
            | "/fapi/v1/fundingRate"
            | "/fapi/v1/fundingInfo"
            | "/fapi/v1/openInterest"
            | "/futures/data/openInterestHist"
            | "/fapi/v1/listenKey"
    );
    if !public {
        if let Err(reply) = authenticate(&st.secret, req, &p, now) {
            return reply;
        }
    }
    if is_order {
        st.order_times.push(now);
    }
    let reply = match (req.method.as_str(), req.route()) {
        ("GET", "/fapi/v1/time") => Reply::json(200, &json!({ "serverTime": now })),
        (method, "/fapi/v1/listenKey") => listen_key(st, req, method),
        ("GET", "/fapi/v1/exchangeInfo") => exchange_info(st, &p, now),
        ("GET", "/fapi/v1/ticker/bookTicker") => match contract(st, &p) {
            Ok((pair, c)) => Reply::json(
                200,
                &json!({"symbol": pair, "bidPrice": d8(c.bid), "bidQty": "3.000", "askPrice": d8(c.ask), "askQty": "2.500", "time": now}),
            ),
            Err(r) => r,
        },
        ("GET", "/fapi/v1/klines") if st.klines.has(&p) => st.klines.answer(&p, 1500),
        ("GET", "/fapi/v1/klines") => match contract(st, &p) {
            Ok((_, c)) => {
                let n: i64 = p.get("limit").and_then(|l| l.parse().ok()).unwrap_or(500);
                let mid = d8(c.mid());
                let rows: Vec<Value> = (0..n)
                    .map(|i| {
                        let t = (now.div_euclid(60_000) - (n - 1 - i)) * 60_000;
                        json!([
                            t,
                            mid,
                            mid,
                            mid,
                            mid,
                            "1.000",
                            t + 59_999,
                            mid,
                            1,
                            "0.500",
                            mid,
                            "0"
                        ])
                    })
                    .collect();
                Reply::json(200, &Value::Array(rows))
            }
            Err(r) => r,
        },
        ("GET", "/fapi/v1/premiumIndex") => match contract(st, &p) {
            Ok((pair, c)) => {
                let period = c.funding_period_ms();
                let next = (now.div_euclid(period) + 1) * period;
                Reply::json(
                    200,
                    &json!({"symbol": pair, "markPrice": d8(c.mid()), "indexPrice": d8(c.mid() - d("1.5")),
                    "estimatedSettlePrice": d8(c.mid()), "lastFundingRate": d8(c.funding_rate), "interestRate": "0.00010000",
                    "nextFundingTime": next, "time": now}),
                )
            }
            Err(r) => r,
        },
        ("GET", "/fapi/v1/fundingRate") => match contract(st, &p) {
            Ok((pair, c)) => {
                let n: i64 = p
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(100)
                    .clamp(1, 1000);
                let period = c.funding_period_ms();
                let last = now.div_euclid(period) * period;
                let rates: Vec<Decimal> = match &c.funding_history {
                    Some(h) => {
                        let keep = usize::try_from(n).unwrap_or(0).min(h.len());
                        h[h.len() - keep..].to_vec()
                    }
                    None => (0..n)
                        .map(|i| c.funding_rate + Decimal::new(i, 8))
                        .collect(),
                };
                let k = rates.len() as i64;
                let rows: Vec<Value> = rates
                    .into_iter()
                    .enumerate()
                    .map(|(i, rate)| {
                        let t = last - (k - 1 - i as i64) * period;
                        json!({"symbol": pair, "fundingRate": d8(rate), "fundingTime": t, "markPrice": d8(c.mid())})
                    })
                    .collect();
                Reply::json(200, &Value::Array(rows))
            }
            Err(r) => r,
        },
        // Only the symbols whose interval (or cap/floor) was adjusted, as Binance lists them.
        ("GET", "/fapi/v1/fundingInfo") => {
            let rows: Vec<Value> = st
                .contracts
                .iter()
                .filter_map(|(pair, c)| {
                    let hours = c.funding_interval_hours?;
                    Some(json!({"symbol": pair, "adjustedFundingRateCap": "0.02000000",
                        "adjustedFundingRateFloor": "-0.02000000", "fundingIntervalHours": hours, "disclaimer": false}))
                })
                .collect();
            Reply::json(200, &Value::Array(rows))
        }
        ("GET", "/fapi/v1/openInterest") => match contract(st, &p) {
            Ok((pair, c)) => Reply::json(
                200,
                &json!({"openInterest": c.open_interest.to_string(), "symbol": pair, "time": now}),
            ),
            Err(r) => r,
        },
        ("GET", "/futures/data/openInterestHist") => open_interest_hist(st, &p, now),
        ("GET", "/fapi/v1/positionSide/dual") => {
            Reply::json(200, &json!({"dualSidePosition": st.dual_side}))
        }
        ("POST", "/fapi/v1/positionSide/dual") => {
            let dual = p.get("dualSidePosition").map(String::as_str) == Some("true");
            if dual == st.dual_side {
                err(400, -4059, "No need to change position side.")
            } else {
                st.dual_side = dual;
                Reply::json(200, &json!({"code": 200, "msg": "success"}))
            }
        }
        ("POST", "/fapi/v1/leverage") => {
            let lev: Option<u32> = p.get("leverage").and_then(|l| l.parse().ok());
            match (contract_mut(st, &p), lev) {
                (Ok((pair, c)), Some(l)) if (1..=125).contains(&l) => {
                    c.leverage = l;
                    Reply::json(
                        200,
                        &json!({"leverage": l, "maxNotionalValue": "1000000", "symbol": pair}),
                    )
                }
                (Err(r), _) => r,
                _ => err(400, -4028, "Leverage is not valid"),
            }
        }
        ("POST", "/fapi/v1/marginType") => {
            let wanted = match p.get("marginType").map(String::as_str) {
                Some("ISOLATED") => "isolated",
                Some("CROSSED") => "cross",
                _ => return err(400, -4044, "The margin type is invalid."),
            };
            match contract_mut(st, &p) {
                Ok((_, c)) if c.margin_type == wanted => {
                    err(400, -4046, "No need to change margin type.")
                }
                Ok((_, c)) => {
                    c.margin_type = wanted;
                    Reply::json(200, &json!({"code": 200, "msg": "success"}))
                }
                Err(r) => r,
            }
        }
        ("POST", "/fapi/v1/order") => new_order(st, &p, now),
        ("GET", "/fapi/v1/order") => match find_order(st, &p) {
            Some(i) => Reply::json(200, &order_json(&st.orders[i])),
            None => err(400, -2013, "Order does not exist."),
        },
        ("DELETE", "/fapi/v1/order") => match find_order(st, &p) {
            Some(i) if matches!(st.orders[i].status.as_str(), "NEW" | "PARTIALLY_FILLED") => {
                st.orders[i].status = "CANCELED".into();
                st.orders[i].update_time = now;
                Reply::json(200, &order_json(&st.orders[i]))
            }
            Some(_) => err(400, -2011, "Unknown order sent."),
            None => err(400, -2011, "Unknown order sent."),
        },
        ("GET", "/fapi/v1/openOrders") => {
            let sym = p.get("symbol");
            let rows: Vec<Value> = st
                .orders
                .iter()
                .filter(|o| matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED"))
                .filter(|o| sym.is_none_or(|s| *s == o.symbol))
                .map(order_json)
                .collect();
            Reply::json(200, &Value::Array(rows))
        }
        ("POST", "/fapi/v1/algoOrder") => new_algo_order(st, &p, now),
        ("GET", "/fapi/v1/algoOrder") => match find_algo(st, &p) {
            Some(i) => Reply::json(200, &algo_json(&st.algos[i])),
            None => err(400, -2013, "Order does not exist."),
        },
        ("DELETE", "/fapi/v1/algoOrder") => match find_algo(st, &p) {
            Some(i) if st.algos[i].status == "NEW" => {
                st.algos[i].status = "CANCELED".into();
                st.algos[i].update_time = now;
                let a = &st.algos[i];
                Reply::json(
                    200,
                    &json!({"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}),
                )
            }
            _ => err(400, -2011, "Unknown order sent."),
        },
        ("GET", "/fapi/v1/openAlgoOrders") => {
            let sym = p.get("symbol");
            let rows: Vec<Value> = st
                .algos
                .iter()
                .filter(|a| a.status == "NEW")
                .filter(|a| sym.is_none_or(|s| *s == a.symbol))
                .map(algo_json)
                .collect();
            Reply::json(200, &Value::Array(rows))
        }
        ("GET", "/fapi/v1/userTrades") => {
            let Some(sym) = p.get("symbol") else {
                return err(
                    400,
                    -1102,
                    "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                );
            };
            let start: i64 = p.get("startTime").and_then(|s| s.parse().ok()).unwrap_or(0);
            let rows: Vec<Value> = st
                .trades
                .iter()
                .filter(|t| t.symbol == *sym && t.time >= start)
                .map(|t| json!({"buyer": t.side == "BUY", "commission": d8(t.commission), "commissionAsset": "USDT",
                    "id": t.id, "maker": t.maker, "orderId": t.order_id, "price": d8(t.price), "qty": t.qty.to_string(),
                    "quoteQty": d8(t.price * t.qty), "realizedPnl": d8(t.realized_pnl), "side": t.side,
                    "positionSide": "BOTH", "symbol": t.symbol, "time": t.time}))
                .collect();
            Reply::json(200, &Value::Array(rows))
        }
        ("GET", "/fapi/v2/positionRisk") => {
            let sym = p.get("symbol");
            let rows: Vec<Value> = st
                .contracts
                .iter()
                .filter(|(pair, _)| sym.is_none_or(|s| s == *pair))
                .map(|(pair, c)| position_json(pair, c, now))
                .collect();
            Reply::json(200, &Value::Array(rows))
        }
        ("GET", "/fapi/v2/account") => account_json(st, now),
        _ => err(
            404,
            -1000,
            "An unknown error occurred while processing the request.",
        ),
    };
    after_fault(after, reply)
}

fn contract<'a>(
    st: &'a State,
    p: &HashMap<String, String>,
) -> Result<(String, &'a Contract), Reply> {
    let pair = p.get("symbol").cloned().unwrap_or_default();
    match st.contracts.get(&pair) {
        Some(c) => Ok((pair, c)),
        None => Err(err(400, -1121, "Invalid symbol.")),
    }
}

fn contract_mut<'a>(
    st: &'a mut State,
    p: &HashMap<String, String>,
) -> Result<(String, &'a mut Contract), Reply> {
    let pair = p.get("symbol").cloned().unwrap_or_default();
    match st.contracts.get_mut(&pair) {
        Some(c) => Ok((pair, c)),
        None => Err(err(400, -1121, "Invalid symbol.")),
    }
}

fn exchange_info(st: &State, p: &HashMap<String, String>, now: i64) -> Reply {
    if !p.is_empty() {
        return err(
            400,
            -1104,
            &format!(
                "Not all sent parameters were read; read '0' parameter(s) but was sent '{}'.",
                p.len()
            ),
        );
    }
    let symbols: Vec<Value> = st
        .contracts
        .iter()
        .map(|(pair, c)| {
            let base = pair.trim_end_matches("USDT");
            json!({
                "symbol": pair, "pair": pair, "contractType": "PERPETUAL", "status": "TRADING",
                "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
                "underlyingType": "COIN", "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": c.tick.to_string(), "maxPrice": "4529764", "tickSize": c.tick.to_string()},
                    {"filterType": "LOT_SIZE", "minQty": c.step.to_string(), "maxQty": "1000", "stepSize": c.step.to_string()},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": c.step.to_string(), "maxQty": "120", "stepSize": c.step.to_string()},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": c.min_notional.to_string()},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"}
                ]
            })
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "timezone": "UTC", "serverTime": now, "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}
            ],
            "exchangeFilters": [], "assets": [], "symbols": symbols
        }),
    )
}

fn open_interest_hist(st: &State, p: &HashMap<String, String>, now: i64) -> Reply {
    let (pair, c) = match contract(st, p) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let period_ms: i64 = match p.get("period").map(String::as_str) {
        Some("5m") => 300_000,
        Some("15m") => 900_000,
        Some("30m") => 1_800_000,
        Some("1h") => 3_600_000,
        Some("2h") => 7_200_000,
        Some("4h") => 14_400_000,
        Some("6h") => 21_600_000,
        Some("12h") => 43_200_000,
        Some("1d") => 86_400_000,
        _ => return err(400, -1130, "Invalid data sent for a parameter."),
    };
    let n: i64 = p
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(30)
        .clamp(1, 500);
    let last = now.div_euclid(period_ms) * period_ms;
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            let oi = c.open_interest - Decimal::from(n - 1 - i);
            json!({"symbol": pair, "sumOpenInterest": d8(oi), "sumOpenInterestValue": d8(oi * c.mid()),
                "CMCCirculatingSupply": "19000000.00000000", "timestamp": last - (n - 1 - i) * period_ms})
        })
        .collect();
    Reply::json(200, &Value::Array(rows))
}

fn order_json(o: &Order) -> Value {
    let avg = if o.executed_qty.is_zero() {
        Decimal::ZERO
    } else {
        o.cum_quote / o.executed_qty
    };
    json!({"orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_order_id,
        "price": o.price.to_string(), "avgPrice": avg.normalize().to_string(), "origQty": o.orig_qty.to_string(),
        "executedQty": o.executed_qty.to_string(), "cumQty": o.executed_qty.to_string(), "cumQuote": d8(o.cum_quote),
        "timeInForce": o.tif, "type": o.ty, "reduceOnly": o.reduce_only, "closePosition": false, "side": o.side,
        "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": false,
        "origType": o.ty, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
        "time": o.time, "updateTime": o.update_time})
}

fn algo_json(a: &AlgoOrder) -> Value {
    json!({"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL", "orderType": a.ty,
        "symbol": a.symbol, "side": a.side, "positionSide": "BOTH", "timeInForce": "GTC", "quantity": a.qty.to_string(),
        "algoStatus": a.status, "triggerPrice": a.trigger.to_string(), "price": a.price.to_string(),
        "icebergQuantity": null, "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE", "closePosition": false, "priceProtect": false, "reduceOnly": a.reduce_only,
        "executedQty": a.executed_qty.to_string(), "avgPrice": a.avg_price.to_string(),
        "actualOrderId": a.actual_order_id.map(|i| i.to_string()).unwrap_or_default(),
        "createTime": a.time, "updateTime": a.update_time, "triggerTime": 0, "goodTillDate": 0})
}

fn position_json(pair: &str, c: &Contract, now: i64) -> Value {
    let mark = c.mid();
    let upnl = (mark - c.entry) * c.amt;
    let notional = c.amt * mark;
    let liq = if c.amt > Decimal::ZERO {
        c.entry * (Decimal::ONE - Decimal::ONE / Decimal::from(c.leverage))
    } else if c.amt < Decimal::ZERO {
        c.entry * (Decimal::ONE + Decimal::ONE / Decimal::from(c.leverage))
    } else {
        Decimal::ZERO
    };
    let isolated = if c.margin_type == "isolated" {
        notional.abs() / Decimal::from(c.leverage)
    } else {
        Decimal::ZERO
    };
    json!({"symbol": pair, "positionAmt": c.amt.to_string(), "entryPrice": c.entry.to_string(), "breakEvenPrice": c.entry.to_string(),
        "markPrice": d8(mark), "unRealizedProfit": d8(upnl), "liquidationPrice": liq.round_dp(2).to_string(),
        "leverage": c.leverage.to_string(), "maxNotionalValue": "250000", "marginType": c.margin_type,
        "isolatedMargin": d8(isolated), "isAutoAddMargin": "false", "positionSide": "BOTH",
        "notional": notional.to_string(), "isolatedWallet": d8(isolated), "updateTime": now})
}

/// Unrealised PnL and initial margin over every position.
fn margins(st: &State) -> (Decimal, Decimal) {
    st.contracts
        .values()
        .fold((Decimal::ZERO, Decimal::ZERO), |(u, m), c| {
            let mark = c.mid();
            (
                u + (mark - c.entry) * c.amt,
                m + (c.amt * mark).abs() / Decimal::from(c.leverage),
            )
        })
}

fn available(st: &State) -> Decimal {
    let (upnl, im) = margins(st);
    st.wallet + upnl - im
}

fn account_json(st: &State, now: i64) -> Reply {
    let (upnl, im) = margins(st);
    let margin_balance = st.wallet + upnl;
    let avail = available(st);
    let positions: Vec<Value> = st
        .contracts
        .iter()
        .map(|(pair, c)| json!({"symbol": pair, "initialMargin": d8((c.amt * c.mid()).abs() / Decimal::from(c.leverage)),
            "maintMargin": "0", "unrealizedProfit": d8((c.mid() - c.entry) * c.amt), "positionInitialMargin": "0",
            "openOrderInitialMargin": "0", "leverage": c.leverage.to_string(), "isolated": c.margin_type == "isolated",
            "entryPrice": c.entry.to_string(), "maxNotional": "250000", "bidNotional": "0", "askNotional": "0",
            "positionSide": "BOTH", "positionAmt": c.amt.to_string(), "updateTime": now}))
        .collect();
    Reply::json(
        200,
        &json!({
            "feeTier": 0, "canTrade": true, "canDeposit": true, "canWithdraw": true, "updateTime": 0,
            "multiAssetsMargin": false, "tradeGroupId": -1,
            "totalInitialMargin": d8(im), "totalMaintMargin": "0.00000000", "totalWalletBalance": d8(st.wallet),
            "totalUnrealizedProfit": d8(upnl), "totalMarginBalance": d8(margin_balance),
            "totalPositionInitialMargin": d8(im), "totalOpenOrderInitialMargin": "0.00000000",
            "totalCrossWalletBalance": d8(st.wallet), "totalCrossUnPnl": d8(upnl),
            "availableBalance": d8(avail), "maxWithdrawAmount": d8(avail),
            "assets": [{"asset": "USDT", "walletBalance": d8(st.wallet), "unrealizedProfit": d8(upnl),
                "marginBalance": d8(margin_balance), "maintMargin": "0", "initialMargin": d8(im),
                "positionInitialMargin": d8(im), "openOrderInitialMargin": "0", "crossWalletBalance": d8(st.wallet),
                "crossUnPnl": d8(upnl), "availableBalance": d8(avail), "maxWithdrawAmount": d8(avail),
                "marginAvailable": true, "updateTime": now}],
            "positions": positions
        }),
    )
}

fn find_order(st: &State, p: &HashMap<String, String>) -> Option<usize> {
    let sym = p.get("symbol")?;
    if let Some(cid) = p.get("origClientOrderId") {
        return st
            .orders
            .iter()
            .position(|o| o.symbol == *sym && o.client_order_id == *cid);
    }
    let id: i64 = p.get("orderId")?.parse().ok()?;
    st.orders
        .iter()
        .position(|o| o.symbol == *sym && o.order_id == id)
}

fn find_algo(st: &State, p: &HashMap<String, String>) -> Option<usize> {
    if let Some(cid) = p.get("clientAlgoId") {
        return st.algos.iter().position(|a| a.client_algo_id == *cid);
    }
    let id: i64 = p.get("algoId")?.parse().ok()?;
    st.algos.iter().position(|a| a.algo_id == id)
}

fn on_grid(v: Decimal, step: Decimal) -> bool {
    step.is_zero() || (v % step).is_zero()
}

/// The checks Binance makes of any new order before it exists, in its order. `price` is
/// what the order's notional is judged at.
fn judge(
    st: &State,
    pair: &str,
    side: &str,
    qty: Decimal,
    price: Decimal,
    reduce_only: bool,
) -> Result<(), Reply> {
    let c = &st.contracts[pair];
    if qty <= Decimal::ZERO {
        return Err(err(400, -4003, "Quantity less than or equal to zero."));
    }
    if !on_grid(qty, c.step) || !on_grid(price, c.tick) {
        return Err(err(
            400,
            -1111,
            "Precision is over the maximum defined for this asset.",
        ));
    }
    if st.dual_side {
        return Err(err(
            400,
            -4061,
            "Order's position side does not match user's setting.",
        ));
    }
    let signed = if side == "BUY" { qty } else { -qty };
    if reduce_only {
        let reduces = !c.amt.is_zero() && c.amt.is_sign_positive() != signed.is_sign_positive();
        if !reduces || qty > c.amt.abs() {
            return Err(err(400, -2022, "ReduceOnly Order is rejected."));
        }
        return Ok(());
    }
    if qty * price < c.min_notional {
        return Err(err(
            400,
            -4164,
            &format!(
                "Order's notional must be no smaller than {} (unless you choose reduce only).",
                c.min_notional.normalize()
            ),
        ));
    }
    // Only the part that opens new exposure needs margin.
    let opening = if c.amt.is_zero() || c.amt.is_sign_positive() == signed.is_sign_positive() {
        qty
    } else {
        (qty - c.amt.abs()).max(Decimal::ZERO)
    };
    if opening * price / Decimal::from(c.leverage) > available(st) {
        return Err(err(400, -2019, "Margin is insufficient."));
    }
    Ok(())
}

fn new_order(st: &mut State, p: &HashMap<String, String>, now: i64) -> Reply {
    let Some(pair) = p
        .get("symbol")
        .filter(|s| st.contracts.contains_key(*s))
        .cloned()
    else {
        return err(400, -1121, "Invalid symbol.");
    };
    let ty = p.get("type").cloned().unwrap_or_default();
    if matches!(
        ty.as_str(),
        "STOP" | "STOP_MARKET" | "TAKE_PROFIT" | "TAKE_PROFIT_MARKET" | "TRAILING_STOP_MARKET"
    ) {
        return err(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.");
    }
    let side = p.get("side").cloned().unwrap_or_default();
    let qty = p.get("quantity").map(|q| d(q)).unwrap_or_default();
    let reduce_only = p.get("reduceOnly").map(String::as_str) == Some("true");
    let cid = p
        .get("newClientOrderId")
        .cloned()
        .unwrap_or_else(|| format!("web_{}", st.next_id));
    if st.orders.iter().any(|o| {
        o.client_order_id == cid && matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED")
    }) {
        return err(400, -4015, "Client order id is not valid.");
    }
    let c = st.contracts[&pair].clone();
    let touch = if side == "BUY" { c.ask } else { c.bid };
    let (price, tif) = match ty.as_str() {
        "MARKET" => (Decimal::ZERO, "GTC".to_string()),
        "LIMIT" => match (p.get("price").map(|x| d(x)), p.get("timeInForce")) {
            (Some(px), Some(tif)) if px > Decimal::ZERO => (px, tif.clone()),
            _ => return err(400, -1102, "Mandatory parameter 'price' or 'timeInForce' was not sent, was empty/null, or malformed."),
        },
        _ => return err(400, -1116, "Invalid orderType."),
    };
    let judged_at = if ty == "MARKET" { touch } else { price };
    if let Err(r) = judge(st, &pair, &side, qty, judged_at, reduce_only) {
        return r;
    }
    let order_id = st.next_id;
    st.next_id += 1;
    st.orders.push(Order {
        symbol: pair.clone(),
        order_id,
        client_order_id: cid,
        side: side.clone(),
        ty: ty.clone(),
        tif: tif.clone(),
        price,
        orig_qty: qty,
        executed_qty: Decimal::ZERO,
        cum_quote: Decimal::ZERO,
        reduce_only,
        status: "NEW".into(),
        time: now,
        update_time: now,
    });
    let i = st.orders.len() - 1;
    let crosses =
        ty == "MARKET" || (side == "BUY" && c.ask <= price) || (side == "SELL" && c.bid >= price);
    if crosses && tif == "GTX" {
        // Post-only that would take: Binance expires it instead of trading.
        st.orders[i].status = "EXPIRED".into();
    } else if crosses {
        execute(st, i, touch, qty, false, now);
    } else if tif == "IOC" || tif == "FOK" {
        st.orders[i].status = "EXPIRED".into();
    }
    Reply::json(200, &order_json(&st.orders[i]))
}

fn new_algo_order(st: &mut State, p: &HashMap<String, String>, now: i64) -> Reply {
    let Some(pair) = p
        .get("symbol")
        .filter(|s| st.contracts.contains_key(*s))
        .cloned()
    else {
        return err(400, -1121, "Invalid symbol.");
    };
    if p.get("algoType").map(String::as_str) != Some("CONDITIONAL") {
        return err(
            400,
            -1102,
            "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.",
        );
    }
    let ty = p.get("type").cloned().unwrap_or_default();
    if !matches!(
        ty.as_str(),
        "STOP" | "STOP_MARKET" | "TAKE_PROFIT" | "TAKE_PROFIT_MARKET"
    ) {
        return err(400, -1116, "Invalid orderType.");
    }
    let side = p.get("side").cloned().unwrap_or_default();
    let qty = p.get("quantity").map(|q| d(q)).unwrap_or_default();
    let Some(trigger) = p
        .get("triggerPrice")
        .map(|t| d(t))
        .filter(|t| *t > Decimal::ZERO)
    else {
        return err(
            400,
            -1102,
            "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.",
        );
    };
    let price = p.get("price").map(|x| d(x)).unwrap_or_default();
    let reduce_only = p.get("reduceOnly").map(String::as_str) == Some("true");
    let c = st.contracts[&pair].clone();
    if !on_grid(trigger, c.tick) {
        return err(
            400,
            -1111,
            "Precision is over the maximum defined for this asset.",
        );
    }
    // A stop that would fire at once is refused (Binance: -2021 "Order would immediately trigger.").
    if triggers(&ty, &side, c.bid, c.ask, trigger) {
        return err(400, -2021, "Order would immediately trigger.");
    }
    let judged_at = if price > Decimal::ZERO {
        price
    } else {
        trigger
    };
    if let Err(r) = judge(st, &pair, &side, qty, judged_at, reduce_only) {
        return r;
    }
    let cid = p
        .get("clientAlgoId")
        .cloned()
        .unwrap_or_else(|| format!("algo_{}", st.next_id));
    let algo_id = st.next_id;
    st.next_id += 1;
    st.algos.push(AlgoOrder {
        algo_id,
        client_algo_id: cid,
        symbol: pair,
        side,
        ty,
        qty,
        trigger,
        price,
        reduce_only,
        status: "NEW".into(),
        executed_qty: Decimal::ZERO,
        avg_price: Decimal::ZERO,
        actual_order_id: None,
        time: now,
        update_time: now,
    });
    Reply::json(200, &algo_json(&st.algos[st.algos.len() - 1]))
}

/// Whether a conditional order of type `ty` and `side` fires at this book: a stop when the
/// price moves against the position it protects (a SELL stop at or below its trigger), a
/// take-profit when it moves in its favour.
fn triggers(ty: &str, side: &str, bid: Decimal, ask: Decimal, trigger: Decimal) -> bool {
    match (side, ty.starts_with("STOP")) {
        ("SELL", true) => bid <= trigger,
        ("BUY", true) => ask >= trigger,
        ("SELL", false) => bid >= trigger,
        _ => ask <= trigger,
    }
}

/// Fills `qty` of order `i` at `price`: the position, realised PnL, commission and wallet
/// move as Binance settles them.
fn execute(st: &mut State, i: usize, price: Decimal, qty: Decimal, maker: bool, now: i64) {
    let (pair, side, order_id) = {
        let o = &st.orders[i];
        (o.symbol.clone(), o.side.clone(), o.order_id)
    };
    let signed = if side == "BUY" { qty } else { -qty };
    let Some(c) = st.contracts.get_mut(&pair) else {
        return;
    };
    let mut realized = Decimal::ZERO;
    if c.amt.is_zero() || c.amt.is_sign_positive() == signed.is_sign_positive() {
        let new_amt = c.amt + signed;
        c.entry = (c.entry * c.amt.abs() + price * qty) / new_amt.abs();
        c.amt = new_amt;
    } else {
        let closing = qty.min(c.amt.abs());
        let dir = if c.amt.is_sign_positive() {
            Decimal::ONE
        } else {
            -Decimal::ONE
        };
        realized = (price - c.entry) * closing * dir;
        let new_amt = c.amt + signed;
        if new_amt.is_zero() {
            c.entry = Decimal::ZERO;
        } else if new_amt.is_sign_positive() != c.amt.is_sign_positive() {
            // Flipped: the remainder opens at this price.
            c.entry = price;
        }
        c.amt = new_amt;
    }
    let fee = (price * qty * if maker { MAKER_FEE } else { TAKER_FEE }).round_dp(8);
    st.wallet += realized - fee;
    let id = st.next_id;
    st.next_id += 1;
    st.trades.push(Trade {
        symbol: pair,
        id,
        order_id,
        side,
        price,
        qty,
        realized_pnl: realized,
        commission: fee,
        time: now,
        maker,
    });
    let o = &mut st.orders[i];
    o.executed_qty += qty;
    o.cum_quote += price * qty;
    o.status = if o.executed_qty >= o.orig_qty {
        "FILLED".into()
    } else {
        "PARTIALLY_FILLED".into()
    };
    o.update_time = now;
}

/// `/fapi/v1/listenKey` (USDⓈ-M "User Data Streams"): POST answers the account's active
/// key (extended) or a new one, PUT keeps the active key alive, DELETE closes it; with no
/// active key PUT and DELETE are -1125. Only `X-MBX-APIKEY` is checked: not signed.
fn listen_key(st: &mut State, req: &RecordedRequest, method: &str) -> Reply {
    if req.header("x-mbx-apikey") != Some(MOCK_API_KEY) {
        return err(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        );
    }
    match (method, st.listen_key.clone()) {
        ("POST", Some(key)) => Reply::json(200, &json!({ "listenKey": key })),
        ("POST", None) => {
            st.listen_keys_made += 1;
            let key = format!("mockFuturesListenKey{:044}", st.listen_keys_made);
            st.listen_key = Some(key.clone());
            Reply::json(200, &json!({ "listenKey": key }))
        }
        ("PUT", Some(key)) => Reply::json(200, &json!({ "listenKey": key })),
        ("DELETE", Some(_)) => {
            st.listen_key = None;
            Reply::json(200, &json!({}))
        }
        _ => err(400, -1125, "This listenKey does not exist."),
    }
}
