//! A stateful mock Binance spot exchange on loopback, for tests (feature `testkit`).
//!
//! Owns: a small Binance spot account (balances, orders, trades) and book per pair,
//! answering `/api/v3` in Binance's own shapes and error bodies: it checks `X-MBX-APIKEY`
//! and the HMAC signature (-1022), the timestamp against its own clock and `recvWindow`
//! (-1021; the clock can be skewed), filters (-1013), balances (-2010), and returns
//! `X-MBX-USED-WEIGHT-1M` on every answer. MARKET orders fill at its book (up to an
//! optional touch quantity), LIMIT orders rest until the test moves the price. Faults are
//! queued and consumed one per request: 429/418 with Retry-After, 5xx or reset after an
//! order or a cancel was applied, a proxy's 502 instead of a cancel, a 503 (-1001)
//! instead of any request, malformed JSON, hang. Commission is the regular tier's 0.1% of
//! the trade, taken by default as Binance takes it without BNB burn: from the asset
//! received, so a buy pays in the base asset (the recorded `executionReport` of an ETHUSDT
//! BUY carries `"n":"0.00100000","N":"ETH"` for 1 ETH) and a sell in the quote asset (the
//! recorded FULL answer of a BTCUSDT SELL: `"commission":"4.00000000","commissionAsset":
//! "USDT"` for 4000 USDT). [`MockBinance::set_fee_asset`] makes it paid in BNB at the
//! `BNBUSDT` book's mid, as an account with BNB burn pays it (the recorded `myTrades`
//! answer carries `"commissionAsset": "BNB"`), or always in the quote asset.
//!
//! Parameters are read as Binance reads them: percent-decoded (`+` is a space), from the
//! query string and, for POST/PUT/DELETE, an `application/x-www-form-urlencoded` body, the
//! query's value winning when both carry one. The signature is checked over the bytes as
//! received — the query string (without `signature`) followed directly by the body — and
//! compared case-insensitively: Binance signs the percent-encoded payload (required since
//! 2026-01-15), so a client that signs the decoded text of an encoded request gets -1022.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::signing::{ApiSecret, RecvWindow};
use crate::testkit::{MockServer, RecordedRequest, Reply};

/// API key the mock accepts.
pub const MOCK_API_KEY: &str = "orreryMockBinanceApiKey000000000000000000000000000000000000000000";
/// API secret the mock verifies signatures with.
pub const MOCK_API_SECRET: &str =
    "orreryMockBinanceSecret00000000000000000000000000000000000000000";

/// 0.1%.
const FEE_RATE: Decimal = Decimal::from_parts(1, 0, 0, false, 3);

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// A fault applied to the next request (or the next order send, for the "after" kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 `{"code":-1003,…}` with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 418 IP ban with `Retry-After: secs`, the message naming "banned until".
    Banned { retry_after_secs: u64 },
    /// HTTP 418 with no Retry-After: only the message's "banned until <ms>" tells the end.
    BannedUntil { secs: u64 },
    /// The next POST /api/v3/order is applied, then answered with HTTP 503.
    ServerErrorAfterOrder,
    /// The next POST /api/v3/order is applied, then the connection is closed unanswered.
    ResetAfterOrder,
    /// The next DELETE /api/v3/order is applied, then answered with HTTP 503.
    ServerErrorAfterCancel,
    /// The next DELETE /api/v3/order is applied, then the connection is closed unanswered.
    ResetAfterCancel,
    /// The next DELETE /api/v3/order never reaches the exchange: the proxy in front
    /// answers HTTP 502.
    BadGatewayBeforeCancel,
    /// The next request gets HTTP 200 with a body that is not JSON.
    Malformed,
    /// The next request is not executed and gets HTTP 503 with Binance's -1001
    /// ("Internal error; unable to process your request. Please try again.").
    ServerError,
    /// The next request is never answered.
    Hang,
}

#[derive(Debug, Clone)]
struct Book {
    bid: Decimal,
    ask: Decimal,
    /// Quantity available at the touch for each taking order; unlimited when `None`.
    touch_qty: Option<Decimal>,
}

#[derive(Debug, Clone)]
struct PairRules {
    base: String,
    quote: String,
    tick: Decimal,
    step: Decimal,
    min_qty: Decimal,
    min_notional: Decimal,
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
    stop_price: Decimal,
    orig_qty: Decimal,
    executed_qty: Decimal,
    cum_quote: Decimal,
    status: String,
    time: i64,
    update_time: i64,
}

#[derive(Debug, Clone)]
struct Trade {
    symbol: String,
    id: i64,
    order_id: i64,
    price: Decimal,
    qty: Decimal,
    commission: Decimal,
    commission_asset: String,
    time: i64,
    is_buyer: bool,
    is_maker: bool,
}

struct State {
    secret: ApiSecret,
    clock_offset_ms: i64,
    books: BTreeMap<String, Book>,
    rules: BTreeMap<String, PairRules>,
    /// Asset → (free, locked).
    balances: BTreeMap<String, (Decimal, Decimal)>,
    orders: Vec<Order>,
    trades: Vec<Trade>,
    next_id: i64,
    faults: VecDeque<Fault>,
    /// (minute, weight used in it).
    weight: (i64, u64),
    /// How commission is charged: `None` always in the quote asset, else a [`FeeAsset`].
    fee_asset: Option<FeeAsset>,
    /// Listen keys handed out, with whether each is still valid.
    listen_keys: Vec<(String, bool)>,
    /// Diff-depth book per pair: `lastUpdateId` and its levels (see [`MockBinance::set_depth`]).
    depth: BTreeMap<String, DepthBook>,
    /// Every execution, in order, as the user data stream reports it (an `executionReport`
    /// per order change; see [`MockBinance::take_execution_reports`]).
    executions: Vec<Value>,
    /// Candle history served by klines with `startTime`/`endTime` (see [`MockBinance::set_klines`]).
    klines: KlineHistory,
}

/// A pair's order book as the depth endpoint serves it.
#[derive(Debug, Clone, Default)]
pub struct DepthBook {
    pub last_update_id: u64,
    /// (price, quantity) from the best bid down.
    pub bids: Vec<(String, String)>,
    /// (price, quantity) from the best ask up.
    pub asks: Vec<(String, String)>,
}

/// How the mock charges commission (see [`MockBinance::set_fee_asset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeAsset {
    /// In the asset received: the base asset on a buy, the quote asset on a sell.
    Received,
    /// In BNB, converted at the `BNBUSDT` book's mid.
    Bnb,
}

pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub(crate) fn d8(d: Decimal) -> String {
    format!("{:.8}", d)
}

/// Binance's error body `{"code","msg"}` with `status`.
pub(crate) fn err(status: u16, code: i64, msg: &str) -> Reply {
    Reply::json(status, &json!({ "code": code, "msg": msg }))
}

fn weight_of(route: &str, method: &str) -> u64 {
    match (method, route) {
        ("GET", "/api/v3/depth") => 50,
        (_, "/api/v3/userDataStream") => 2,
        ("GET", "/api/v3/exchangeInfo") => 20,
        ("GET", "/api/v3/ticker/bookTicker") | ("GET", "/api/v3/klines") => 2,
        ("GET", "/api/v3/order") => 4,
        ("GET", "/api/v3/openOrders") => 6,
        ("GET", "/api/v3/myTrades") | ("GET", "/api/v3/account") => 20,
        _ => 1,
    }
}

/// The mock exchange; stops when dropped.
pub struct MockBinance {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MockBinance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBinance")
            .field("url", &self.server.url())
            .finish()
    }
}

impl MockBinance {
    /// BTCUSDT (59990/60010, tick 0.01, step 0.00001, min notional 5), ETHUSDT
    /// (2999/3001, tick 0.01, step 0.0001) and SOLUSDT (149.9/150.1), 10000 USDT free.
    pub fn start() -> Self {
        let mut books = BTreeMap::new();
        let mut rules = BTreeMap::new();
        for (base, bid, ask, tick, step) in [
            ("BTC", d("59990"), d("60010"), d("0.01"), d("0.00001")),
            ("ETH", d("2999"), d("3001"), d("0.01"), d("0.0001")),
            ("SOL", d("149.9"), d("150.1"), d("0.01"), d("0.001")),
        ] {
            let pair = format!("{base}USDT");
            books.insert(
                pair.clone(),
                Book {
                    bid,
                    ask,
                    touch_qty: None,
                },
            );
            rules.insert(
                pair,
                PairRules {
                    base: base.into(),
                    quote: "USDT".into(),
                    tick,
                    step,
                    min_qty: step,
                    min_notional: d("5"),
                },
            );
        }
        let mut balances = BTreeMap::new();
        balances.insert("USDT".to_string(), (d("10000"), Decimal::ZERO));
        let state = Arc::new(Mutex::new(State {
            // Invariant: the constant secret is not empty.
            secret: ApiSecret::new(MOCK_API_SECRET).expect("mock secret"),
            clock_offset_ms: 0,
            books,
            rules,
            balances,
            orders: Vec::new(),
            trades: Vec::new(),
            next_id: 1,
            faults: VecDeque::new(),
            weight: (0, 0),
            fee_asset: Some(FeeAsset::Received),
            listen_keys: Vec::new(),
            depth: BTreeMap::new(),
            executions: Vec::new(),
            klines: KlineHistory::default(),
        }));
        let handler_state = state.clone();
        let server = MockServer::start(move |req| handle(&handler_state, req));
        Self { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `GET /api/v3/klines` of `pair` at `interval` answers from `candles` (oldest first)
    /// as Binance documents it (see [`kline_answer`]), instead of flat candles at the mid.
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

    /// How many `POST /api/v3/order` carried this `newClientOrderId`.
    pub fn order_posts(&self, client_id: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.route() == "/api/v3/order"
                    && r.query("newClientOrderId") == Some(client_id)
            })
            .count()
    }

    /// How many `DELETE /api/v3/order` named this `origClientOrderId`.
    pub fn cancel_requests(&self, client_id: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method == "DELETE"
                    && r.route() == "/api/v3/order"
                    && r.query("origClientOrderId") == Some(client_id)
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

    pub fn set_balance(&self, asset: &str, free: Decimal) {
        self.state
            .lock()
            .balances
            .entry(asset.to_string())
            .or_default()
            .0 = free;
    }

    /// (free, locked) of an asset.
    pub fn balance(&self, asset: &str) -> (Decimal, Decimal) {
        self.state
            .lock()
            .balances
            .get(asset)
            .copied()
            .unwrap_or_default()
    }

    /// Adds weight as if other clients of the same IP had used it this minute.
    pub fn add_used_weight(&self, weight: u64) {
        let mut st = self.state.lock();
        let minute = (wall_ms() + st.clock_offset_ms).div_euclid(60_000);
        if st.weight.0 != minute {
            st.weight = (minute, 0);
        }
        st.weight.1 += weight;
    }

    /// Charges commission in another asset from now on (`None`: always the quote asset,
    /// which no recording shows for a buy; the default is [`FeeAsset::Received`]).
    pub fn set_fee_asset(&self, fee: Option<FeeAsset>) {
        self.state.lock().fee_asset = fee;
    }

    /// Adds (or moves) a book that orders are not placed on, e.g. `BNBUSDT` for quotes.
    pub fn add_book(&self, pair: &str, bid: Decimal, ask: Decimal) {
        let mut st = self.state.lock();
        let b = st.books.entry(pair.to_string()).or_insert(Book {
            bid,
            ask,
            touch_qty: None,
        });
        b.bid = bid;
        b.ask = ask;
    }

    /// Changes a pair's NOTIONAL filter (as Binance does from time to time): orders below
    /// it get `-1013 Filter failure: NOTIONAL`, and exchangeInfo reports it.
    pub fn set_min_notional(&self, pair: &str, min_notional: Decimal) {
        if let Some(r) = self.state.lock().rules.get_mut(pair) {
            r.min_notional = min_notional;
        }
    }

    /// Limits the quantity each taking order finds at the touch.
    pub fn set_touch_qty(&self, pair: &str, qty: Option<Decimal>) {
        if let Some(b) = self.state.lock().books.get_mut(pair) {
            b.touch_qty = qty;
        }
    }

    /// Moves the book; resting LIMIT orders the new price crosses fill at their price.
    pub fn set_book(&self, pair: &str, bid: Decimal, ask: Decimal) {
        let mut st = self.state.lock();
        if let Some(b) = st.books.get_mut(pair) {
            b.bid = bid;
            b.ask = ask;
        }
        let now = wall_ms() + st.clock_offset_ms;
        let crossing: Vec<usize> = st
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.symbol == pair
                    && matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED")
                    && o.ty.starts_with("LIMIT")
                    && ((o.side == "BUY" && ask <= o.price) || (o.side == "SELL" && bid >= o.price))
            })
            .map(|(i, _)| i)
            .collect();
        for i in crossing {
            let (price, qty) = {
                let o = &st.orders[i];
                (o.price, o.orig_qty - o.executed_qty)
            };
            unlock(&mut st, i, qty);
            execute(&mut st, i, price, qty, true, now);
        }
    }

    /// Executions since the last call, each an `executionReport` event as the user data
    /// stream sends it (the websocket mock `BinanceWsMock` pushes them).
    pub fn take_execution_reports(&self) -> Vec<Value> {
        std::mem::take(&mut self.state.lock().executions)
    }

    /// The balances as an `outboundAccountPosition` event.
    pub fn account_position_event(&self) -> Value {
        let st = self.state.lock();
        let now = wall_ms() + st.clock_offset_ms;
        let b: Vec<Value> = st
            .balances
            .iter()
            .map(|(a, (f, l))| json!({"a": a, "f": d8(*f), "l": d8(*l)}))
            .collect();
        json!({"e": "outboundAccountPosition", "E": now, "u": now, "B": b})
    }

    /// Sets the depth snapshot `GET /api/v3/depth` answers for `pair`.
    pub fn set_depth(&self, pair: &str, book: DepthBook) {
        self.state.lock().depth.insert(pair.to_string(), book);
    }

    /// Invalidates every listen key (as a key 60 minutes without keep-alive): PUT and
    /// DELETE then answer -1125.
    pub fn expire_listen_keys(&self) {
        for k in self.state.lock().listen_keys.iter_mut() {
            k.1 = false;
        }
    }

    /// Listen keys handed out so far, and whether each is valid.
    pub fn listen_keys(&self) -> Vec<(String, bool)> {
        self.state.lock().listen_keys.clone()
    }

    /// Requests of `method` to `route` so far.
    pub fn count_method(&self, method: &str, route: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == method && r.route() == route)
            .count()
    }

    /// Status string of the order with this client id, if any.
    pub fn order_status(&self, client_id: &str) -> Option<String> {
        self.state
            .lock()
            .orders
            .iter()
            .find(|o| o.client_order_id == client_id)
            .map(|o| o.status.clone())
    }
}

fn raw_query(req: &RecordedRequest) -> &str {
    req.path.split_once('?').map(|(_, q)| q).unwrap_or("")
}

/// The form body, for methods that may carry one.
fn raw_form(req: &RecordedRequest) -> &str {
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form && req.method != "GET" {
        req.body_str()
    } else {
        ""
    }
}

/// Decoded parameters: the body's, then the query's over them.
pub(crate) fn params_of(req: &RecordedRequest) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = form_urlencoded::parse(raw_form(req).as_bytes())
        .into_owned()
        .collect();
    params.extend(form_urlencoded::parse(raw_query(req).as_bytes()).into_owned());
    params
}

/// Splits `…&signature=<hex>` (or a lone `signature=<hex>`) off a raw parameter string.
fn split_signature(raw: &str) -> Option<(&str, &str)> {
    raw.rsplit_once("&signature=")
        .or_else(|| raw.strip_prefix("signature=").map(|sig| ("", sig)))
}

fn handle(state: &Arc<Mutex<State>>, req: &RecordedRequest) -> Reply {
    let mut st = state.lock();
    let server_now = wall_ms() + st.clock_offset_ms;
    let minute = server_now.div_euclid(60_000);
    if st.weight.0 != minute {
        st.weight = (minute, 0);
    }
    st.weight.1 += weight_of(req.route(), &req.method);
    let used = st.weight.1.to_string();
    if req.route() == "/api/v3/klines" {
        st.klines.arrivals.push(wall_ms());
    }
    let reply = route(&mut st, req, server_now);
    reply.with_header("X-MBX-USED-WEIGHT-1M", &used)
}

/// The fault at the front of `faults` for this request, as Binance answers it: `Err` with
/// the answer that replaces the request's (consumed), or `Ok` with a fault to apply after
/// the order or cancel was executed ([`after_fault`]). `weight_limit` is the API's
/// documented budget, named in a 429's message.
pub(crate) fn take_fault(
    faults: &mut VecDeque<Fault>,
    weight_limit: u64,
    is_order_post: bool,
    is_cancel: bool,
    now: i64,
) -> Result<Option<Fault>, Reply> {
    let fault = match faults.front() {
        Some(Fault::RateLimited { retry_after_secs }) => {
            let s = *retry_after_secs;
            faults.pop_front();
            return Err(err(429, -1003, &format!("Too much request weight used; current limit is {weight_limit} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."))
                .with_header("Retry-After", &s.to_string()));
        }
        Some(Fault::Banned { retry_after_secs }) => {
            let s = *retry_after_secs;
            faults.pop_front();
            let until = now + (s as i64) * 1000;
            return Err(err(418, -1003, &format!("Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for live updates to avoid bans."))
                .with_header("Retry-After", &s.to_string()));
        }
        Some(Fault::BannedUntil { secs }) => {
            let until = now + (*secs as i64) * 1000;
            faults.pop_front();
            return Err(err(418, -1003, &format!("Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for live updates to avoid bans.")));
        }
        Some(Fault::Malformed) => {
            faults.pop_front();
            return Err(Reply::raw(
                200,
                "application/json",
                "{\"symbol\":\"BTCUSDT\",\"bidPrice\":",
            ));
        }
        Some(Fault::Hang) => {
            faults.pop_front();
            return Err(Reply::Hang);
        }
        Some(Fault::ServerError) => {
            faults.pop_front();
            return Err(err(
                503,
                -1001,
                "Internal error; unable to process your request. Please try again.",
            ));
        }
        Some(f @ (Fault::ServerErrorAfterOrder | Fault::ResetAfterOrder)) if is_order_post => {
            let f = f.clone();
            faults.pop_front();
            Some(f)
        }
        Some(Fault::BadGatewayBeforeCancel) if is_cancel => {
            faults.pop_front();
            return Err(Reply::raw(
                502,
                "text/html",
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            ));
        }
        Some(f @ (Fault::ServerErrorAfterCancel | Fault::ResetAfterCancel)) if is_cancel => {
            let f = f.clone();
            faults.pop_front();
            Some(f)
        }
        _ => None,
    };
    Ok(fault)
}

/// The answer of a request executed under a fault from [`take_fault`]: a 503 page or a
/// reset instead of `reply`.
pub(crate) fn after_fault(fault: Option<Fault>, reply: Reply) -> Reply {
    match fault {
        Some(Fault::ServerErrorAfterOrder | Fault::ServerErrorAfterCancel) => Reply::raw(
            503,
            "text/html",
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
        ),
        Some(Fault::ResetAfterOrder | Fault::ResetAfterCancel) => Reply::Reset,
        _ => reply,
    }
}

fn route(st: &mut State, req: &RecordedRequest, now: i64) -> Reply {
    let is_order_post = req.method == "POST" && req.route() == "/api/v3/order";
    let is_cancel = req.method == "DELETE" && req.route() == "/api/v3/order";
    let fault = match take_fault(&mut st.faults, 6000, is_order_post, is_cancel, now) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let p = params_of(req);
    let signed = !matches!(
        req.route(),
        "/api/v3/time"
            | "/api/v3/exchangeInfo"
            | "/api/v3/ticker/bookTicker"
            | "/api/v3/klines"
            | "/api/v3/depth"
            | "/api/v3/userDataStream"
    );
    if signed {
        if let Err(reply) = authenticate(&st.secret, req, &p, now) {
            return reply;
        }
    }
    let reply = match (req.method.as_str(), req.route()) {
        ("GET", "/api/v3/time") => Reply::json(200, &json!({ "serverTime": now })),
        ("GET", "/api/v3/depth") => depth(st, &p),
        (m, "/api/v3/userDataStream") => user_data_stream(st, req, m, &p),
        ("GET", "/api/v3/exchangeInfo") => exchange_info(st, &p, now),
        ("GET", "/api/v3/ticker/bookTicker") => match book_of(st, &p) {
            Ok((pair, b)) => Reply::json(
                200,
                &json!({"symbol": pair, "bidPrice": d8(b.bid), "bidQty": "1.00000000", "askPrice": d8(b.ask), "askQty": "1.00000000"}),
            ),
            Err(r) => r,
        },
        ("GET", "/api/v3/klines") if st.klines.has(&p) => st.klines.answer(&p, 1000),
        ("GET", "/api/v3/klines") => match book_of(st, &p) {
            Ok((_, b)) => {
                let n: i64 = p.get("limit").and_then(|l| l.parse().ok()).unwrap_or(500);
                let mid = (b.bid + b.ask) / d("2");
                let rows: Vec<Value> = (0..n)
                    .map(|i| {
                        let t = (now.div_euclid(60_000) - (n - 1 - i)) * 60_000;
                        json!([
                            t,
                            d8(mid),
                            d8(mid),
                            d8(mid),
                            d8(mid),
                            "1.00000000",
                            t + 59_999,
                            d8(mid),
                            1,
                            "0.5",
                            d8(mid / d("2")),
                            "0"
                        ])
                    })
                    .collect();
                Reply::json(200, &Value::Array(rows))
            }
            Err(r) => r,
        },
        ("POST", "/api/v3/order") => new_order(st, &p, now),
        ("GET", "/api/v3/order") => match find_order(st, &p) {
            Some(i) => Reply::json(200, &order_json(&st.orders[i])),
            None => err(400, -2013, "Order does not exist."),
        },
        ("DELETE", "/api/v3/order") => cancel(st, &p, now),
        ("GET", "/api/v3/openOrders") => {
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
        ("GET", "/api/v3/myTrades") => {
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
                .map(|t| json!({"symbol": t.symbol, "id": t.id, "orderId": t.order_id, "orderListId": -1, "price": d8(t.price), "qty": d8(t.qty), "quoteQty": d8(t.price * t.qty), "commission": d8(t.commission), "commissionAsset": t.commission_asset, "time": t.time, "isBuyer": t.is_buyer, "isMaker": t.is_maker, "isBestMatch": true}))
                .collect();
            Reply::json(200, &Value::Array(rows))
        }
        ("GET", "/api/v3/account") => {
            let omit = p.get("omitZeroBalances").map(String::as_str) == Some("true");
            let balances: Vec<Value> = st
                .balances
                .iter()
                .filter(|(_, (f, l))| !(omit && f.is_zero() && l.is_zero()))
                .map(|(a, (f, l))| json!({"asset": a, "free": d8(*f), "locked": d8(*l)}))
                .collect();
            Reply::json(
                200,
                &json!({"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                    "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"},
                    "canTrade": true, "canWithdraw": true, "canDeposit": true, "brokered": false,
                    "requireSelfTradePrevention": false, "preventSor": false, "updateTime": now,
                    "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 354937868}),
            )
        }
        _ => err(
            404,
            -1000,
            "An unknown error occurred while processing the request.",
        ),
    };
    after_fault(fault, reply)
}

/// `GET /api/v3/depth`: the book set by [`MockBinance::set_depth`] (at most `limit`
/// levels a side), else the pair's touch with `lastUpdateId` 1.
fn depth(st: &State, p: &HashMap<String, String>) -> Reply {
    let (pair, b) = match book_of(st, p) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let limit: usize = p.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let book = st.depth.get(&pair).cloned().unwrap_or_else(|| DepthBook {
        last_update_id: 1,
        bids: vec![(d8(b.bid), "1.00000000".into())],
        asks: vec![(d8(b.ask), "1.00000000".into())],
    });
    let side = |levels: &[(String, String)]| -> Vec<Value> {
        levels
            .iter()
            .take(limit)
            .map(|(p, q)| json!([p, q]))
            .collect()
    };
    Reply::json(
        200,
        &json!({"lastUpdateId": book.last_update_id, "bids": side(&book.bids), "asks": side(&book.asks)}),
    )
}

/// `/api/v3/userDataStream`: POST creates a key (or returns the account's active one),
/// PUT keeps `listenKey` alive, DELETE closes it; an unknown or closed key is -1125. Only
/// the API key header is checked (these endpoints are not signed).
fn user_data_stream(
    st: &mut State,
    req: &RecordedRequest,
    method: &str,
    p: &HashMap<String, String>,
) -> Reply {
    if req.header("x-mbx-apikey") != Some(MOCK_API_KEY) {
        return err(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        );
    }
    if method == "POST" {
        if let Some((k, _)) = st.listen_keys.iter().find(|(_, live)| *live) {
            return Reply::json(200, &json!({ "listenKey": k }));
        }
        let key = format!("mockListenKey{:051}", st.listen_keys.len() + 1);
        st.listen_keys.push((key.clone(), true));
        return Reply::json(200, &json!({ "listenKey": key }));
    }
    let Some(key) = p.get("listenKey") else {
        return err(
            400,
            -1102,
            "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.",
        );
    };
    let Some(entry) = st
        .listen_keys
        .iter_mut()
        .find(|(k, live)| k == key && *live)
    else {
        return err(400, -1125, "This listenKey does not exist.");
    };
    match method {
        "PUT" => Reply::json(200, &json!({})),
        "DELETE" => {
            entry.1 = false;
            Reply::json(200, &json!({}))
        }
        _ => err(
            404,
            -1000,
            "An unknown error occurred while processing the request.",
        ),
    }
}

/// Binance's checks of a SIGNED request, in its order: API key (-2015), signature over
/// the bytes as received (-1102, -1022), timestamp within `recvWindow` (-1102, -1021).
pub(crate) fn authenticate(
    secret: &ApiSecret,
    req: &RecordedRequest,
    p: &HashMap<String, String>,
    now: i64,
) -> Result<(), Reply> {
    if req.header("x-mbx-apikey") != Some(MOCK_API_KEY) {
        return Err(err(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        ));
    }
    let (query, body) = (raw_query(req), raw_form(req));
    let signed = match (split_signature(query), split_signature(body)) {
        (Some((q, sig)), _) => Some((q, body, sig)),
        (None, Some((b, sig))) => Some((query, b, sig)),
        (None, None) => None,
    };
    let Some((query, body, sig)) = signed else {
        return Err(err(
            400,
            -1102,
            "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        ));
    };
    if !secret
        .sign_query_and_body(query, body)
        .eq_ignore_ascii_case(sig)
    {
        return Err(err(400, -1022, "Signature for this request is not valid."));
    }
    let Some(ts) = p.get("timestamp").and_then(|t| t.parse::<i64>().ok()) else {
        return Err(err(
            400,
            -1102,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        ));
    };
    let window = p
        .get("recvWindow")
        .and_then(|w| w.parse::<u64>().ok())
        .and_then(|w| RecvWindow::new(w).ok())
        .unwrap_or_default();
    if !window.accepts(ts, now) {
        return Err(err(
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    Ok(())
}

fn book_of<'a>(st: &'a State, p: &HashMap<String, String>) -> Result<(String, &'a Book), Reply> {
    let pair = p.get("symbol").cloned().unwrap_or_default();
    match st.books.get(&pair) {
        Some(b) => Ok((pair, b)),
        None => Err(err(400, -1121, "Invalid symbol.")),
    }
}

fn exchange_info(st: &State, p: &HashMap<String, String>, now: i64) -> Reply {
    let wanted = p.get("symbol");
    if let Some(w) = wanted {
        if !st.rules.contains_key(w) {
            return err(400, -1121, "Invalid symbol.");
        }
    }
    let symbols: Vec<Value> = st
        .rules
        .iter()
        .filter(|(pair, _)| wanted.is_none_or(|w| w == *pair))
        .map(|(pair, r)| json!({
            "symbol": pair, "status": "TRADING", "baseAsset": r.base, "baseAssetPrecision": 8,
            "quoteAsset": r.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": true, "ocoAllowed": true, "isSpotTradingAllowed": true, "isMarginTradingAllowed": false,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": d8(r.tick), "maxPrice": "1000000.00000000", "tickSize": d8(r.tick)},
                {"filterType": "LOT_SIZE", "minQty": d8(r.min_qty), "maxQty": "9000.00000000", "stepSize": d8(r.step)},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000", "stepSize": "0.00000000"},
                {"filterType": "NOTIONAL", "minNotional": d8(r.min_notional), "applyMinToMarket": true, "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}
            ],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER"
        }))
        .collect();
    Reply::json(
        200,
        &json!({"timezone": "UTC", "serverTime": now, "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000}
    ], "exchangeFilters": [], "symbols": symbols}),
    )
}

fn order_json(o: &Order) -> Value {
    json!({"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
        "price": d8(o.price), "origQty": d8(o.orig_qty), "executedQty": d8(o.executed_qty),
        "cummulativeQuoteQty": d8(o.cum_quote), "status": o.status, "timeInForce": o.tif, "type": o.ty,
        "side": o.side, "stopPrice": d8(o.stop_price), "icebergQty": "0.00000000", "time": o.time,
        "updateTime": o.update_time, "isWorking": o.status != "CANCELED", "workingTime": o.time,
        "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"})
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

fn on_grid(v: Decimal, anchor: Decimal, step: Decimal) -> bool {
    step.is_zero() || ((v - anchor) % step).is_zero()
}

/// Returns funds locked for `qty` of a resting order to free.
fn unlock(st: &mut State, i: usize, qty: Decimal) {
    let o = &st.orders[i];
    let Some(r) = st.rules.get(&o.symbol) else {
        return;
    };
    let (asset, amount) = if o.side == "BUY" {
        (r.quote.clone(), qty * o.price)
    } else {
        (r.base.clone(), qty)
    };
    let b = st.balances.entry(asset).or_default();
    b.1 -= amount;
    b.0 += amount;
}

/// Trades `qty` of order `i` at `price` against free balances.
fn execute(st: &mut State, i: usize, price: Decimal, qty: Decimal, maker: bool, now: i64) -> Value {
    let id = st.next_id;
    st.next_id += 1;
    let (symbol, order_id, side) = {
        let o = &mut st.orders[i];
        o.executed_qty += qty;
        o.cum_quote += qty * price;
        o.update_time = now;
        o.status = if o.executed_qty >= o.orig_qty {
            "FILLED".into()
        } else {
            "PARTIALLY_FILLED".into()
        };
        (o.symbol.clone(), o.order_id, o.side.clone())
    };
    let (base, quote) = match st.rules.get(&symbol) {
        Some(r) => (r.base.clone(), r.quote.clone()),
        None => return Value::Null,
    };
    let notional = qty * price;
    let buy = side == "BUY";
    let bnb_mid = st
        .books
        .get("BNBUSDT")
        .map(|b| (b.bid + b.ask) / Decimal::TWO);
    let (commission, commission_asset) = match (st.fee_asset, bnb_mid) {
        (Some(FeeAsset::Received), _) if buy => ((qty * FEE_RATE).round_dp(8), base.clone()),
        (Some(FeeAsset::Bnb), Some(mid)) if !mid.is_zero() => {
            ((notional * FEE_RATE / mid).round_dp(8), "BNB".to_string())
        }
        _ => ((notional * FEE_RATE).round_dp(8), quote.clone()),
    };
    // The quote and base legs, then the commission from whichever asset paid it.
    {
        let q = st.balances.entry(quote.clone()).or_default();
        if buy {
            q.0 -= notional;
        } else {
            q.0 += notional;
        }
    }
    {
        let b = st.balances.entry(base).or_default();
        if buy {
            b.0 += qty;
        } else {
            b.0 -= qty;
        }
    }
    st.balances.entry(commission_asset.clone()).or_default().0 -= commission;
    st.trades.push(Trade {
        symbol,
        id,
        order_id,
        price,
        qty,
        commission,
        commission_asset: commission_asset.clone(),
        time: now,
        is_buyer: buy,
        is_maker: maker,
    });
    let o = &st.orders[i];
    let report = execution_report(
        o,
        "TRADE",
        Some((price, qty, commission, &commission_asset, id, maker)),
        now,
    );
    st.executions.push(report);
    json!({"price": d8(price), "qty": d8(qty), "commission": d8(commission), "commissionAsset": commission_asset, "tradeId": id})
}

fn new_order(st: &mut State, p: &HashMap<String, String>, now: i64) -> Reply {
    let dec_param = |k: &str| p.get(k).and_then(|v| v.parse::<Decimal>().ok());
    let Some(pair) = p.get("symbol").cloned() else {
        return err(
            400,
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        );
    };
    let (Some(rules), Some(book)) = (st.rules.get(&pair).cloned(), st.books.get(&pair).cloned())
    else {
        return err(400, -1121, "Invalid symbol.");
    };
    let side = p.get("side").cloned().unwrap_or_default();
    if side != "BUY" && side != "SELL" {
        return err(
            400,
            -1102,
            "Mandatory parameter 'side' was not sent, was empty/null, or malformed.",
        );
    }
    let ty = p.get("type").cloned().unwrap_or_default();
    let Some(qty) = dec_param("quantity").filter(|q| *q > Decimal::ZERO) else {
        return err(
            400,
            -1102,
            "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
        );
    };
    let cid = p
        .get("newClientOrderId")
        .cloned()
        .unwrap_or_else(|| format!("mock{}", st.next_id));
    if st.orders.iter().any(|o| {
        o.client_order_id == cid && matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED")
    }) {
        return err(400, -2010, "Duplicate order sent.");
    }
    let buy = side == "BUY";
    let price = dec_param("price").unwrap_or_default();
    let stop_price = dec_param("stopPrice").unwrap_or_default();
    let is_limit = matches!(
        ty.as_str(),
        "LIMIT" | "LIMIT_MAKER" | "STOP_LOSS_LIMIT" | "TAKE_PROFIT_LIMIT"
    );
    let known = matches!(
        ty.as_str(),
        "MARKET"
            | "LIMIT"
            | "LIMIT_MAKER"
            | "STOP_LOSS"
            | "STOP_LOSS_LIMIT"
            | "TAKE_PROFIT"
            | "TAKE_PROFIT_LIMIT"
    );
    if !known {
        return err(400, -1116, "Invalid orderType.");
    }
    if is_limit && price <= Decimal::ZERO {
        return err(
            400,
            -1102,
            "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
        );
    }
    if is_limit && !on_grid(price, rules.tick, rules.tick) {
        return err(400, -1013, "Filter failure: PRICE_FILTER");
    }
    if ty != "MARKET" && (qty < rules.min_qty || !on_grid(qty, rules.min_qty, rules.step)) {
        return err(400, -1013, "Filter failure: LOT_SIZE");
    }
    let touch = if buy { book.ask } else { book.bid };
    let ref_price = if is_limit { price } else { touch };
    if qty * ref_price < rules.min_notional {
        return err(400, -1013, "Filter failure: NOTIONAL");
    }
    let marketable = match ty.as_str() {
        "MARKET" => true,
        "LIMIT" | "LIMIT_MAKER" => (buy && price >= book.ask) || (!buy && price <= book.bid),
        _ => false,
    };
    if ty == "LIMIT_MAKER" && marketable {
        return err(400, -2010, "Order would immediately match and take.");
    }
    // Funds for the whole order must be free, as on Binance.
    let (need_asset, need) = if buy {
        (
            rules.quote.clone(),
            qty * ref_price * (Decimal::ONE + FEE_RATE),
        )
    } else {
        (rules.base.clone(), qty)
    };
    let free = st
        .balances
        .get(&need_asset)
        .map(|b| b.0)
        .unwrap_or_default();
    if free < need {
        return err(
            400,
            -2010,
            "Account has insufficient balance for requested action.",
        );
    }
    let tif = if ty == "LIMIT" {
        p.get("timeInForce")
            .cloned()
            .unwrap_or_else(|| "GTC".into())
    } else {
        "GTC".into()
    };
    let order_id = st.next_id;
    st.next_id += 1;
    st.orders.push(Order {
        symbol: pair.clone(),
        order_id,
        client_order_id: cid,
        side,
        ty: ty.clone(),
        tif: tif.clone(),
        price: if ty == "MARKET" { Decimal::ZERO } else { price },
        stop_price,
        orig_qty: qty,
        executed_qty: Decimal::ZERO,
        cum_quote: Decimal::ZERO,
        status: "NEW".into(),
        time: now,
        update_time: now,
    });
    let i = st.orders.len() - 1;
    let mut fills = Vec::new();
    if marketable {
        let take = book.touch_qty.map_or(qty, |t| t.min(qty));
        if take > Decimal::ZERO {
            fills.push(execute(st, i, touch, take, false, now));
        }
    }
    let rest = qty - st.orders[i].executed_qty;
    if rest > Decimal::ZERO {
        let rests = ty != "MARKET" && !(ty == "LIMIT" && tif != "GTC");
        if rests {
            let (asset, amount) = if buy {
                (rules.quote.clone(), rest * price)
            } else {
                (rules.base.clone(), rest)
            };
            let b = st.balances.entry(asset).or_default();
            b.0 -= amount;
            b.1 += amount;
        } else {
            st.orders[i].status = "EXPIRED".into();
        }
    }
    let o = &st.orders[i];
    match p.get("newOrderRespType").map(String::as_str) {
        Some("ACK") => Reply::json(
            200,
            &json!({"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id, "transactTime": now}),
        ),
        resp => {
            let mut v = json!({"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
                "transactTime": now, "price": d8(o.price), "origQty": d8(o.orig_qty), "executedQty": d8(o.executed_qty),
                "origQuoteOrderQty": "0.00000000", "cummulativeQuoteQty": d8(o.cum_quote), "status": o.status,
                "timeInForce": o.tif, "type": o.ty, "side": o.side, "workingTime": now, "selfTradePreventionMode": "EXPIRE_MAKER"});
            if resp != Some("RESULT") {
                v["fills"] = Value::Array(fills);
            }
            Reply::json(200, &v)
        }
    }
}

fn cancel(st: &mut State, p: &HashMap<String, String>, now: i64) -> Reply {
    let Some(i) = find_order(st, p)
        .filter(|i| matches!(st.orders[*i].status.as_str(), "NEW" | "PARTIALLY_FILLED"))
    else {
        return err(400, -2011, "Unknown order sent.");
    };
    let rest = st.orders[i].orig_qty - st.orders[i].executed_qty;
    if st.orders[i].ty != "MARKET"
        && !st.orders[i].ty.ends_with("LOSS")
        && !st.orders[i].ty.ends_with("PROFIT")
    {
        unlock(st, i, rest);
    }
    let new_cid = format!("cancel{}", st.next_id);
    st.next_id += 1;
    let o = &mut st.orders[i];
    o.status = "CANCELED".into();
    o.update_time = now;
    // The user stream reports a cancel under the cancel request's new client id, the
    // order's own in `C`.
    let mut report = execution_report(o, "CANCELED", None, now);
    report["c"] = Value::String(new_cid.clone());
    report["C"] = Value::String(o.client_order_id.clone());
    let o = &st.orders[i];
    let mut v = order_json(o);
    v["origClientOrderId"] = Value::String(o.client_order_id.clone());
    v["clientOrderId"] = Value::String(new_cid);
    v["transactTime"] = json!(now);
    st.executions.push(report);
    Reply::json(200, &v)
}

/// An `executionReport` of the user data stream for order `o` (fields as in Binance's
/// recorded spot `executionReport` of a TRADE: `x` the execution type, `X` the order's
/// status, `l`/`L` the last fill's quantity and price, `n`/`N` its commission, `t` the
/// trade id, -1 without a trade).
fn execution_report(
    o: &Order,
    exec_type: &str,
    fill: Option<(Decimal, Decimal, Decimal, &str, i64, bool)>,
    now: i64,
) -> Value {
    let (l, lp, n, na, t, m) = match fill {
        Some((p, q, c, a, id, maker)) => {
            (d8(q), d8(p), d8(c), Value::String(a.to_string()), id, maker)
        }
        None => (
            d8(Decimal::ZERO),
            d8(Decimal::ZERO),
            "0".to_string(),
            Value::Null,
            -1,
            false,
        ),
    };
    json!({"e": "executionReport", "E": now, "s": o.symbol, "c": o.client_order_id, "S": o.side,
        "o": o.ty, "f": o.tif, "q": d8(o.orig_qty), "p": d8(o.price), "P": d8(o.stop_price),
        "F": "0.00000000", "g": -1, "C": "", "x": exec_type, "X": o.status, "r": "NONE",
        "i": o.order_id, "l": l, "z": d8(o.executed_qty), "L": lp, "n": n, "N": na, "T": now,
        "t": t, "I": 1, "w": o.status == "NEW", "m": m, "M": false, "O": o.time,
        "Z": d8(o.cum_quote), "Y": "0.00000000", "Q": "0.00000000", "W": o.time, "V": "NONE"})
}

/// Kline history per (pair, interval) for the klines endpoints of the spot and futures
/// mocks, and the arrival time of every klines request.
#[derive(Debug, Default)]
pub(crate) struct KlineHistory {
    series: HashMap<(String, String), Vec<crate::exchanges::Candle>>,
    pub(crate) arrivals: Vec<i64>,
}

impl KlineHistory {
    pub(crate) fn set(
        &mut self,
        pair: &str,
        interval: &str,
        candles: Vec<crate::exchanges::Candle>,
    ) {
        self.series
            .insert((pair.to_string(), interval.to_string()), candles);
    }

    fn series_of(&self, p: &HashMap<String, String>) -> Option<&Vec<crate::exchanges::Candle>> {
        let pair = p.get("symbol")?;
        let interval = p.get("interval")?;
        self.series.get(&(pair.clone(), interval.clone()))
    }

    pub(crate) fn has(&self, p: &HashMap<String, String>) -> bool {
        self.series_of(p).is_some()
    }

    pub(crate) fn answer(&self, p: &HashMap<String, String>, max_limit: usize) -> Reply {
        match self.series_of(p) {
            Some(series) => kline_answer(series, p, max_limit),
            None => err(400, -1121, "Invalid symbol."),
        }
    }
}

/// A klines answer from `series` as Binance documents the endpoint: `startTime` and
/// `endTime` bound the open time (inclusive); with both or only `startTime` the oldest
/// `limit` rows of the range, with only `endTime` the newest `limit` up to it, with
/// neither the newest `limit`; `limit` defaults to 500 and is served as at most
/// `max_limit` (1000 spot, 1500 USDⓈ-M). Rows are the documented 12-field arrays.
pub(crate) fn kline_answer(
    series: &[crate::exchanges::Candle],
    p: &HashMap<String, String>,
    max_limit: usize,
) -> Reply {
    let num = |k: &str| p.get(k).map(|v| v.parse::<i64>());
    let (start, end, limit) = match (num("startTime"), num("endTime"), num("limit")) {
        (Some(Err(_)), _, _) | (_, Some(Err(_)), _) | (_, _, Some(Err(_))) => {
            return err(400, -1100, "Illegal characters found in a parameter.")
        }
        (s, e, l) => (
            s.and_then(Result::ok),
            e.and_then(Result::ok),
            l.and_then(Result::ok)
                .unwrap_or(500)
                .clamp(1, max_limit as i64) as usize,
        ),
    };
    let step = match p
        .get("interval")
        .map(|i| i.parse::<crate::exchanges::Timeframe>())
    {
        Some(Ok(t)) => t.millis(),
        _ => return err(400, -1120, "Invalid interval."),
    };
    let in_range: Vec<&crate::exchanges::Candle> = series
        .iter()
        .filter(|c| start.is_none_or(|s| c.open_time_ms >= s))
        .filter(|c| end.is_none_or(|e| c.open_time_ms <= e))
        .collect();
    let picked: Vec<&crate::exchanges::Candle> = if start.is_some() {
        in_range.into_iter().take(limit).collect()
    } else {
        let skip = in_range.len().saturating_sub(limit);
        in_range.into_iter().skip(skip).collect()
    };
    let rows: Vec<Value> = picked
        .iter()
        .map(|c| {
            json!([
                c.open_time_ms,
                d8(c.open),
                d8(c.high),
                d8(c.low),
                d8(c.close),
                d8(c.volume),
                c.open_time_ms + step - 1,
                d8(c.close * c.volume),
                1,
                "0",
                "0",
                "0"
            ])
        })
        .collect();
    Reply::json(200, &Value::Array(rows))
}
