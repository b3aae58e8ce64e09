//! A stateful mock Hyperliquid on loopback, for tests (feature `testkit`).
//!
//! Owns: a small perpetuals exchange behind [`MockServer`]: `meta`, a book per coin (the test
//! moves it), orders by oid and cloid, positions, fills and leverage of one account, and
//! the positions a test sets for other accounts (a copy-trading leader, see
//! [`MockHyperliquid::set_other_position`]). It
//! answers `POST /info` in the shapes of the recorded cassettes (`meta`, `allMids`,
//! `l2Book`, `clearinghouseState`, `openOrders`, `frontendOpenOrders`, `orderStatus`,
//! `userFills`, `userFillsByTime`, `candleSnapshot`, `userRateLimit`; `metaAndAssetCtxs`
//! and `fundingHistory` in the shapes of the recorded `allDexsAssetCtxs` contexts and
//! `fundingHistory` answer, with funding and open interest settable per coin
//! ([`MockHyperliquid::set_asset_ctx`], [`MockHyperliquid::set_funding_history`]);
//! `activeAssetData` in the shape of the API documentation's example) and `POST /exchange`
//! (`order`, `cancelByCloid`, `updateLeverage`, `scheduleCancel`) after recovering the
//! signer from the action, nonce and `expiresAfter`: a signer other than the configured
//! wallet gets the venue's "User or API Wallet … does not exist." refusal. An action whose
//! `expiresAfter` has passed when the venue would apply it is refused and never applied
//! (the documented rule; the text of that refusal is not documented nor recorded, so the
//! mock's `"Action expired"` is ours, and the engine does not depend on it).
//!
//! Venue lag ([`MockHyperliquid::set_apply_lag`]): an order action is taken into a pending
//! queue and applied 0.5–3 s (the configured range) later, as a busy venue does; until
//! then `orderStatus` by its cloid answers `unknownOid` and it is in no open-order list.
//! The answer to the request comes when it is applied; the order is applied at that time
//! even when the client is gone (killed), and refused then if its `expiresAfter` passed.
//!
//! Fills, the account and order lists follow the recordings (`userFills`, the liquidation
//! fill, `clearinghouseState`, `openOrders`, `frontendOpenOrders`, `historicalOrders`):
//! each fill pays the documented base-tier fee (taker 0.045% when the order crossed, maker
//! 0.015% when it rested and was hit; 6 decimals rounded down, `feeToken` USDC), carries
//! its closed PnL and direction (`Open Long`, `Close Short`, `Long > Short`, ...) and a
//! `cloid` key only when the order had one; cash moves by closed PnL less fees;
//! `marginUsed` = position value / leverage, `withdrawable` = account value − total margin
//! used, `totalRawUsd` = account value − signed notional; `openOrders` omits `cloid` for
//! an order without one while the frontend shape keeps it `null`; trigger orders show
//! `Price above/below X`, and TP/SL orders sent in a `normalTpsl` group are the `children`
//! of the group's entry order.
//!
//! A second order with a cloid the venue already has is refused with a per-order
//! `{"error": "Duplicate cloid. asset=<n>"}` in the batch's status vector and never
//! applied. Hyperliquid does not document this case (its "Error responses" page lists no
//! duplicate-cloid error) and we found no recording of it: the shape is that of every
//! documented order error, the text is ours, and the engine never depends on it (it never
//! sends a client id twice; the harness counts sends per cloid, [`MockHyperliquid::record`]).
//!
//! Chaos ([`MockHyperliquid::set_chaos`]): a seeded share of order actions lagged and a
//! seeded chance of 429 / 502 (not applied) or 500 / reset (applied) per request, as a busy
//! venue does. Two control routes no venue has serve a harness in another process
//! (`actors/examples/hl-mock.rs`): [`RECORD_ROUTE`] and [`CALM_ROUTE`].
//!
//! Matching: IOC and marketable GTC orders fill at the touch up to the size shown there
//! (less size = a partial fill); the rest of a GTC order rests until [`MockHyperliquid::set_book`]
//! makes it marketable; trigger orders wait until the mid crosses their trigger price.
//! Order-level rejections use Hyperliquid's own messages and record the order with the
//! venue's `*Rejected` status. Fault switches act on the next /exchange request: 429 or a
//! proxy's 502 (not applied), or 500 / connection reset / malformed JSON / hang *after*
//! applying it. Every answer can be delayed ([`MockHyperliquid::set_latency`]), as a slow
//! venue.
//! Never: talks to the internet, or models funding payments to the account, liquidation, fee tiers above the base
//! one, or margin checks.
//!
//! Rate limiting: the mock keeps Hyperliquid's documented per-IP budget, an aggregated
//! request weight of 1200 per rolling minute (info: l2Book, allMids, clearinghouseState,
//! orderStatus, spotClearinghouseState and exchangeStatus weigh 2, userRole 60, the rest
//! 20, plus 1 per 20 items returned by the fill and history requests and 1 per 60 candles;
//! exchange actions 1 + ⌊batch length / 40⌋) once [`MockHyperliquid::set_ip_weight_limit`]
//! turns it on (off by default, so load tests and benches that raise the client's own
//! limit are not throttled by a shared mock). A request over the budget is not applied and
//! gets the same answer as [`Fault::RateLimited`]: HTTP 429, `Content-Type:
//! application/json`, body `null`, no `Retry-After`. Hyperliquid documents no format for
//! this answer and we found no authoritative recording of one. The shape rests on indirect
//! evidence: the official Python SDK (`hyperliquid/api.py`, since v0.4.0) handles a 4xx
//! whose body parses as JSON `null`, and users of the nomeida TypeScript SDK report
//! "Cannot read properties of null (reading 'code')" from its 4xx handler while hitting
//! 429s. No source shows a `Retry-After` header, so the client pauses for its configured
//! `rate_limited_pause` (and would honour a `Retry-After` if one ever came).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::actions::{Action, Grouping, OrderTypeWire, OrderWire, Tif, Tpsl};
use super::signing::{recover_l1_signer_expiring, Address, Network, Signature};
use super::wire::{check_price, check_size};
use crate::testkit::{Deferred, MockServer, RecordedRequest, Reply};

/// What the next /exchange request meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Hyperliquid's rate-limit answer (see the module doc), before anything is applied.
    RateLimited,
    /// Apply, then answer HTTP 500.
    ServerErrorAfterApply,
    /// Answer HTTP 502 from the proxy in front of the venue; nothing is applied.
    BadGatewayNotApplied,
    /// Apply, then close the connection without an answer.
    ResetAfterApply,
    /// Apply, then answer 200 with a body that is not JSON.
    MalformedAfterApply,
    /// Apply, then never answer.
    HangAfterApply,
}

/// A busy venue's random misbehaviour ([`MockHyperliquid::set_chaos`]), drawn per request
/// from a seeded generator so a run can be repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    pub seed: u64,
    /// Share (0..=1) of order actions applied late, within [`MockHyperliquid::set_apply_lag`]'s
    /// range; the rest are applied at once.
    pub lag_share: f64,
    /// Chance (0..=1) that an /exchange request meets a fault, split evenly between 429 and
    /// a proxy's 502 (not applied) and a 500 or a connection reset after applying it.
    pub exchange_fault_rate: f64,
    /// Chance (0..=1) that an /info request is answered 429, 500 or with a reset.
    pub info_fault_rate: f64,
}

#[derive(Debug, Clone)]
struct Asset {
    name: String,
    sz_decimals: u32,
    max_leverage: u32,
}

/// The live context of one coin that `metaAndAssetCtxs` answers.
#[derive(Debug, Clone)]
struct Ctx {
    funding: Decimal,
    open_interest: Decimal,
    /// `None`: the book's mid.
    mark_px: Option<Decimal>,
    /// `None`: the book's mid.
    oracle_px: Option<Decimal>,
}

/// One settled rate that `fundingHistory` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockFunding {
    pub time: i64,
    pub rate: Decimal,
    pub premium: Option<Decimal>,
}

/// Rows one `fundingHistory` answer carries at most.
const FUNDING_HISTORY_PAGE: usize = 500;

#[derive(Debug, Clone)]
struct Book {
    bid: Decimal,
    ask: Decimal,
    /// Size available at each touch.
    depth: Decimal,
}

/// One order as the mock keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOrder {
    pub oid: u64,
    pub cloid: Option<String>,
    pub coin: String,
    pub is_buy: bool,
    pub limit_px: Decimal,
    pub orig_sz: Decimal,
    /// Remaining size.
    pub sz: Decimal,
    /// Hyperliquid's status string: open, filled, canceled, triggered, *Rejected.
    pub status: String,
    pub reduce_only: bool,
    pub tif: Option<Tif>,
    pub trigger: Option<(Decimal, bool, Tpsl)>,
    pub timestamp: i64,
}

#[derive(Debug, Clone)]
struct MockFill {
    coin: String,
    px: Decimal,
    sz: Decimal,
    is_buy: bool,
    time: i64,
    start_position: Decimal,
    oid: u64,
    tid: u64,
    cloid: Option<String>,
    /// Taker (the order crossed the book) or maker (it rested and was hit).
    crossed: bool,
    /// Fee in USDC, by the base tier of the documented schedule.
    fee: Decimal,
    /// Realized PnL of the part that reduced the position, before the fee.
    closed_pnl: Decimal,
    /// Hyperliquid's direction: `Open Long`, `Close Short`, `Short > Long`, ...
    dir: &'static str,
}

/// Hyperliquid's perpetuals fee schedule, base tier (under 5M 14-day volume): taker
/// 0.045%, maker 0.015% of the notional, charged in USDC. The fee string has 6 decimals,
/// rounded down: the recorded liquidation fill (`px` 66653.0, `sz` 0.001, maker) carries
/// `"fee":"0.009997"` for 0.00999795.
const TAKER_FEE: Decimal = Decimal::from_parts(45, 0, 0, false, 5);
const MAKER_FEE: Decimal = Decimal::from_parts(15, 0, 0, false, 5);

#[derive(Debug)]
struct State {
    wallet: Address,
    network: Network,
    assets: Vec<Asset>,
    books: BTreeMap<String, Book>,
    orders: Vec<MockOrder>,
    by_cloid: HashMap<String, usize>,
    positions: BTreeMap<String, (Decimal, Decimal)>,
    /// Positions of other accounts (a copy-trading leader): `clearinghouseState` answers
    /// them for that `user`, marked at this venue's books, with no balance of their own.
    others: BTreeMap<Address, BTreeMap<String, (Decimal, Decimal)>>,
    leverage: BTreeMap<String, u32>,
    fills: Vec<MockFill>,
    balance: Decimal,
    next_oid: u64,
    next_tid: u64,
    faults: VecDeque<Fault>,
    info_faults: VecDeque<Fault>,
    scheduled_cancel: Option<u64>,
    exchange_arrivals: Vec<std::time::Instant>,
    rate_limit_used: u64,
    /// Per-IP weight budget (limit, window), when on, and the weight each answered
    /// request used.
    ip_budget: Option<(u64, std::time::Duration)>,
    ip_used: VecDeque<(std::time::Instant, u64)>,
    /// Requests refused because the per-IP budget was spent.
    ip_refused: u64,
    latency: std::time::Duration,
    /// Lag range of order actions (see the module doc), when on.
    apply_lag: Option<(std::time::Duration, std::time::Duration)>,
    /// Order actions waiting for their lag: (apply at, request id, action, expiresAfter).
    pending: Vec<(std::time::Instant, u64, Action, Option<u64>)>,
    /// Answers of applied pending actions, by request id, until the request answers.
    applied: HashMap<u64, Value>,
    next_request: u64,
    /// How many order actions named each cloid (arrivals, whatever the answer was).
    sends: BTreeMap<String, u64>,
    /// How many /info requests of each type arrived.
    info_counts: BTreeMap<String, u64>,
    /// TP/SL orders placed in a `normalTpsl` group, by the oid of the order they belong to.
    children: HashMap<u64, Vec<u64>>,
    /// TP/SL orders placed with `positionTpsl` grouping (they act on the whole position).
    position_tpsl: std::collections::HashSet<u64>,
    chaos: Option<(Chaos, ChaCha8Rng)>,
    /// Candles follow a wave instead of the flat mid (see [`MockHyperliquid::set_candle_wave`]).
    candle_wave: bool,
    /// Recorded-style candle history per (coin, interval), oldest first, served by
    /// `candleSnapshot` instead of the flat mid (see [`MockHyperliquid::set_candle_history`]).
    candle_history: HashMap<(String, String), Vec<crate::exchanges::Candle>>,
    ctxs: BTreeMap<String, Ctx>,
    /// Settled rates per coin, oldest first; a coin without one gets an hourly series at
    /// its current funding.
    funding_history: BTreeMap<String, Vec<MockFunding>>,
}

/// Hyperliquid's per-IP REST budget: aggregated request weight per rolling minute.
pub const IP_WEIGHT_PER_MINUTE: u64 = 1200;

/// The running mock; stops when dropped.
pub struct MockHyperliquid {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MockHyperliquid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHyperliquid")
            .field("url", &self.server.url())
            .finish()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ok(kind: &str, statuses: Option<Vec<Value>>) -> Value {
    match statuses {
        Some(s) => json!({"status": "ok", "response": {"type": kind, "data": {"statuses": s}}}),
        None => json!({"status": "ok", "response": {"type": kind}}),
    }
}

impl MockHyperliquid {
    /// A mock exchange accepting signatures of `wallet` on `network`, with BTC (szDecimals
    /// 5, book 59999/60001, 10 BTC at each touch), ETH (4, 2999.9/3000.1, 100 ETH) and SOL
    /// (2, 149.99/150.01, 10000 SOL), and 100000 USD of equity. Each coin's funding is
    /// 0.0000125 per hour (the recorded ETH context's), its open interest 1000, mark and
    /// oracle price the book's mid.
    pub fn start(wallet: Address, network: Network) -> Self {
        let assets = [("BTC", 5, 50), ("ETH", 4, 50), ("SOL", 2, 20)]
            .into_iter()
            .map(|(n, d, l)| Asset {
                name: n.into(),
                sz_decimals: d,
                max_leverage: l,
            })
            .collect();
        let mut books = BTreeMap::new();
        books.insert(
            "BTC".into(),
            Book {
                bid: Decimal::from(59_999),
                ask: Decimal::from(60_001),
                depth: Decimal::from(10),
            },
        );
        books.insert(
            "ETH".into(),
            Book {
                bid: Decimal::new(29_999, 1),
                ask: Decimal::new(30_001, 1),
                depth: Decimal::from(100),
            },
        );
        books.insert(
            "SOL".into(),
            Book {
                bid: Decimal::new(14_999, 2),
                ask: Decimal::new(15_001, 2),
                depth: Decimal::from(10_000),
            },
        );
        let state = Arc::new(Mutex::new(State {
            wallet,
            network,
            assets,
            books,
            orders: Vec::new(),
            by_cloid: HashMap::new(),
            positions: BTreeMap::new(),
            others: BTreeMap::new(),
            leverage: BTreeMap::new(),
            fills: Vec::new(),
            balance: Decimal::from(100_000),
            next_oid: 1_000,
            next_tid: 1,
            faults: VecDeque::new(),
            info_faults: VecDeque::new(),
            scheduled_cancel: None,
            exchange_arrivals: Vec::new(),
            rate_limit_used: 0,
            ip_budget: None,
            ip_used: VecDeque::new(),
            ip_refused: 0,
            latency: std::time::Duration::ZERO,
            apply_lag: None,
            pending: Vec::new(),
            applied: HashMap::new(),
            next_request: 0,
            sends: BTreeMap::new(),
            info_counts: BTreeMap::new(),
            children: HashMap::new(),
            position_tpsl: std::collections::HashSet::new(),
            chaos: None,
            candle_wave: false,
            candle_history: HashMap::new(),
            ctxs: ["BTC", "ETH", "SOL"]
                .into_iter()
                .map(|c| {
                    (
                        c.to_string(),
                        Ctx {
                            funding: Decimal::new(125, 7),
                            open_interest: Decimal::from(1000),
                            mark_px: None,
                            oracle_px: None,
                        },
                    )
                })
                .collect(),
            funding_history: BTreeMap::new(),
        }));
        let shared = state.clone();
        let server = MockServer::start(move |req| handle(&shared, req));
        Self { server, state }
    }

    /// The base URL to configure as `base_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Another door to this same exchange on a new loopback port: a second base endpoint
    /// of one account, as a standby URL or a proxy is. Requests through it act on the same
    /// books, orders, fills and record (a cloid sent through both doors is a duplicate);
    /// they are recorded by the returned server's `requests()`, not in
    /// [`MockHyperliquid::requests`]. Stops when dropped.
    pub fn another_endpoint(&self) -> MockServer {
        let shared = self.state.clone();
        MockServer::start(move |req| handle(&shared, req))
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The /exchange order actions received (signed bodies as JSON), including rejected ones.
    pub fn order_actions(&self) -> Vec<Value> {
        self.actions("order")
    }

    /// The signed /exchange actions of one type (`order`, `cancelByCloid`,
    /// `updateLeverage`, ...) received, including refused and faulted ones.
    pub fn actions(&self, kind: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.route() == "/exchange")
            .filter_map(|r| r.body_json())
            .filter(|b| b["action"]["type"] == kind)
            .collect()
    }

    /// How many cancelByCloid actions named `cloid` (0x form).
    pub fn cancels_of_cloid(&self, cloid: &str) -> usize {
        self.actions("cancelByCloid")
            .iter()
            .filter(|b| {
                b["action"]["cancels"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["cloid"] == cloid))
            })
            .count()
    }

    /// How many order actions carried `cloid` (0x form).
    pub fn order_sends_with_cloid(&self, cloid: &str) -> usize {
        self.order_actions()
            .iter()
            .filter(|b| {
                b["action"]["orders"]
                    .as_array()
                    .is_some_and(|os| os.iter().any(|o| o["c"] == cloid))
            })
            .count()
    }

    /// Arrival times of /exchange requests.
    pub fn exchange_arrivals(&self) -> Vec<std::time::Instant> {
        self.state.lock().exchange_arrivals.clone()
    }

    /// Queues a fault for the next /exchange request (faults apply in order).
    pub fn fail_next_exchange(&self, fault: Fault) {
        self.state.lock().faults.push_back(fault);
    }

    /// Turns on the per-IP weight budget: `limit` weight per rolling `window` (Hyperliquid's
    /// is [`IP_WEIGHT_PER_MINUTE`] per minute).
    pub fn set_ip_weight_limit(&self, limit: u64, window: std::time::Duration) {
        let mut s = self.state.lock();
        s.ip_budget = Some((limit, window));
        s.ip_used.clear();
    }

    /// Applies order actions `min..=max` after they arrive (see the module doc); `None`
    /// applies them at once again.
    pub fn set_apply_lag(&self, lag: Option<(std::time::Duration, std::time::Duration)>) {
        self.state.lock().apply_lag = lag;
    }

    /// Order actions taken but not yet applied (venue lag).
    pub fn pending_actions(&self) -> usize {
        let mut s = self.state.lock();
        s.apply_due();
        s.pending.len()
    }

    /// Delays every answer by `latency` (a slow venue).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.state.lock().latency = latency;
    }

    /// Turns random lag and faults on (`None`: off). Queued faults
    /// ([`MockHyperliquid::fail_next_exchange`]) still come first.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.state.lock().chaos = chaos.map(|c| {
            let rng = ChaCha8Rng::seed_from_u64(c.seed);
            (c, rng)
        });
    }

    /// Candle closes follow a slow wave around the mid (±2%, phase moving with the wall
    /// clock) instead of the flat mid, so a rules-based agent sees trends that turn.
    pub fn set_candle_wave(&self, on: bool) {
        self.state.lock().candle_wave = on;
    }

    /// `candleSnapshot` of `coin` at `interval` answers from `candles` (oldest first, one
    /// per interval step): as the recorded answer does, every candle whose span
    /// `[t, t + interval)` overlaps `[startTime, endTime]` (a start inside a candle
    /// includes that candle), oldest first, at most 5000 (the documented maximum).
    pub fn set_candle_history(
        &self,
        coin: &str,
        interval: &str,
        candles: Vec<crate::exchanges::Candle>,
    ) {
        self.state
            .lock()
            .candle_history
            .insert((coin.to_string(), interval.to_string()), candles);
    }

    /// How many order actions carried `cloid` (0x form or bare hex), counted on arrival
    /// whatever the venue answered.
    pub fn sends_of_cloid(&self, cloid: &str) -> u64 {
        self.state
            .lock()
            .sends
            .get(&normal_cloid(cloid))
            .copied()
            .unwrap_or(0)
    }

    /// The venue's record as JSON, as `GET /_mock/record` answers it: every order (cloid,
    /// oid, coin, side, status, origSz, sz), the sends per cloid, the actions still in the
    /// lag queue and the /info requests per type.
    pub fn record(&self) -> Value {
        let mut s = self.state.lock();
        s.apply_due();
        s.record_json()
    }

    /// Queues a fault for the next /info request (only `MalformedAfterApply`,
    /// `ServerErrorAfterApply`, `ResetAfterApply` and `HangAfterApply` make sense).
    pub fn fail_next_info(&self, fault: Fault) {
        self.state.lock().info_faults.push_back(fault);
    }

    /// The funding rate (per hour) and open interest `metaAndAssetCtxs` reports for `coin`;
    /// mark and oracle price too when given (else the book's mid).
    pub fn set_asset_ctx(
        &self,
        coin: &str,
        funding: Decimal,
        open_interest: Decimal,
        mark_px: Option<Decimal>,
        oracle_px: Option<Decimal>,
    ) {
        self.state.lock().ctxs.insert(
            coin.to_string(),
            Ctx {
                funding,
                open_interest,
                mark_px,
                oracle_px,
            },
        );
    }

    /// Only the funding rate of `coin` (the rest of its context unchanged).
    pub fn set_funding(&self, coin: &str, funding: Decimal) {
        if let Some(c) = self.state.lock().ctxs.get_mut(coin) {
            c.funding = funding;
        }
    }

    /// The settled rates `fundingHistory` answers for `coin` (any order; answered oldest
    /// first, at most 500 from `startTime`).
    pub fn set_funding_history(&self, coin: &str, rows: Vec<MockFunding>) {
        self.state
            .lock()
            .funding_history
            .insert(coin.to_string(), rows);
    }

    /// How many /info requests of `kind` arrived.
    pub fn info_count(&self, kind: &str) -> u64 {
        self.state
            .lock()
            .info_counts
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Moves a coin's book; resting orders that become marketable fill at their limit, and
    /// trigger orders whose trigger the new mid crosses fire.
    pub fn set_book(&self, coin: &str, bid: Decimal, ask: Decimal, depth: Decimal) {
        let mut s = self.state.lock();
        s.books.insert(coin.to_string(), Book { bid, ask, depth });
        s.match_resting(coin);
    }

    /// Sets another account's position (`szi` signed, 0 removes it) at `entry_px`, as
    /// `clearinghouseState` for `user` answers it from now on: a leader a copy-trading
    /// agent follows. [`LEADER_ROUTE`] does the same over HTTP.
    pub fn set_other_position(&self, user: Address, coin: &str, szi: Decimal, entry_px: Decimal) {
        self.state.lock().set_other(user, coin, szi, entry_px);
    }

    /// The account's `clearinghouseState` as the REST endpoint would answer it now, without
    /// recording or charging a request (what the websocket mock pushes).
    pub fn clearinghouse_state(&self) -> Value {
        let s = self.state.lock();
        let body = json!({"type": "clearinghouseState", "user": s.wallet.to_string()});
        s.info(&body).unwrap_or(Value::Null)
    }

    /// A coin's best bid and ask, as the venue quotes them now.
    pub fn top_of_book(&self, coin: &str) -> Option<(Decimal, Decimal)> {
        self.state.lock().books.get(coin).map(|b| (b.bid, b.ask))
    }

    /// Request weight charged to the per-IP budget inside its current window (turn the
    /// budget on with [`MockHyperliquid::set_ip_weight_limit`]; a large limit measures
    /// without refusing).
    pub fn ip_weight_used(&self) -> u64 {
        let s = self.state.lock();
        let Some((_, window)) = s.ip_budget else {
            return 0;
        };
        let now = std::time::Instant::now();
        s.ip_used
            .iter()
            .filter(|(at, _)| now.duration_since(*at) < window)
            .map(|(_, w)| w)
            .sum()
    }

    /// Requests answered 429 because the per-IP weight budget was spent (through any door).
    pub fn ip_refusals(&self) -> u64 {
        self.state.lock().ip_refused
    }

    /// Changes an asset's size decimals (as if the venue re-listed it).
    pub fn set_sz_decimals(&self, coin: &str, sz_decimals: u32) {
        let mut s = self.state.lock();
        if let Some(a) = s.assets.iter_mut().find(|a| a.name == coin) {
            a.sz_decimals = sz_decimals;
        }
    }

    /// Puts a resting GTC order on the book directly (seeding for benches and tests),
    /// returning its oid.
    pub fn insert_resting(
        &self,
        cloid: &str,
        coin: &str,
        is_buy: bool,
        limit_px: Decimal,
        sz: Decimal,
    ) -> u64 {
        self.rest(Some(normal_cloid(cloid)), coin, is_buy, limit_px, sz)
    }

    /// Rests an order placed in the venue's own UI: no cloid. Returns its oid.
    pub fn insert_resting_without_cloid(
        &self,
        coin: &str,
        is_buy: bool,
        limit_px: Decimal,
        sz: Decimal,
    ) -> u64 {
        self.rest(None, coin, is_buy, limit_px, sz)
    }

    fn rest(
        &self,
        cloid: Option<String>,
        coin: &str,
        is_buy: bool,
        limit_px: Decimal,
        sz: Decimal,
    ) -> u64 {
        let mut s = self.state.lock();
        let oid = s.next_oid;
        s.next_oid += 1;
        s.record(MockOrder {
            oid,
            cloid,
            coin: coin.to_string(),
            is_buy,
            limit_px,
            orig_sz: sz,
            sz,
            status: "open".into(),
            reduce_only: false,
            tif: Some(Tif::Gtc),
            trigger: None,
            timestamp: now_ms(),
        });
        oid
    }

    /// The account's orders and fills for the websocket mock's user channels.
    pub fn user_feed(&self) -> UserFeed {
        UserFeed {
            state: self.state.clone(),
        }
    }

    /// Every order the mock knows, in arrival order.
    pub fn orders(&self) -> Vec<MockOrder> {
        let mut s = self.state.lock();
        s.apply_due();
        s.orders.clone()
    }

    /// The order with this cloid (`0x` form or bare hex).
    pub fn order(&self, cloid: &str) -> Option<MockOrder> {
        let mut s = self.state.lock();
        s.apply_due();
        s.by_cloid
            .get(&normal_cloid(cloid))
            .map(|&i| s.orders[i].clone())
    }

    /// Signed position size of a coin.
    pub fn position(&self, coin: &str) -> Decimal {
        let mut s = self.state.lock();
        s.apply_due();
        s.positions.get(coin).map(|p| p.0).unwrap_or_default()
    }

    pub fn leverage(&self, coin: &str) -> Option<u32> {
        {
            let mut s = self.state.lock();
            s.apply_due();
            s
        }
        .leverage
        .get(coin)
        .copied()
    }

    pub fn scheduled_cancel(&self) -> Option<u64> {
        self.state.lock().scheduled_cancel
    }
}

/// Whether an action's `expiresAfter` has passed by the venue's clock.
fn expired(expires_after: Option<u64>) -> bool {
    expires_after.is_some_and(|at| u64::try_from(now_ms()).unwrap_or(0) > at)
}

/// The venue's refusal of an expired action (text ours; see the module doc).
fn expired_answer() -> Value {
    json!({"status": "err", "response": "Action expired"})
}

fn normal_cloid(c: &str) -> String {
    let c = c.to_ascii_lowercase();
    if c.starts_with("0x") {
        c
    } else {
        format!("0x{c}")
    }
}

fn handle(state: &Arc<Mutex<State>>, req: &RecordedRequest) -> Reply {
    let reply = answer(state, req);
    let latency = state.lock().latency;
    if latency.is_zero() {
        reply
    } else {
        Reply::Delayed(latency, Box::new(reply))
    }
}

/// Hyperliquid's answer when the IP's weight budget is used up (see the module doc).
fn rate_limited() -> Reply {
    Reply::raw(429, "application/json", "null")
}

fn answer(state: &Arc<Mutex<State>>, req: &RecordedRequest) -> Reply {
    if req.route() == RECORD_ROUTE {
        let mut s = state.lock();
        s.apply_due();
        return Reply::json(200, &s.record_json());
    }
    if req.route() == LEADER_ROUTE {
        let body = req.body_json().unwrap_or(Value::Null);
        let user = body["user"]
            .as_str()
            .and_then(|u| u.parse::<Address>().ok());
        let dec = |k: &str| body[k].as_str().and_then(|v| v.parse::<Decimal>().ok());
        return match (user, body["coin"].as_str(), dec("szi"), dec("entryPx")) {
            (Some(user), Some(coin), Some(szi), Some(px)) => {
                state.lock().set_other(user, coin, szi, px);
                Reply::json(200, &json!({"user": user.to_string(), "coin": coin, "szi": szi.to_string()}))
            }
            _ => Reply::raw(
                422,
                "text/plain",
                "expected {\"user\":\"0x…\",\"coin\":\"BTC\",\"szi\":\"0.5\",\"entryPx\":\"60000\"}",
            ),
        };
    }
    if req.route() == CALM_ROUTE {
        let mut s = state.lock();
        s.chaos = None;
        s.apply_lag = None;
        return Reply::json(200, &json!({"calm": true}));
    }
    let Some(body) = req.body_json() else {
        return Reply::raw(
            422,
            "text/plain",
            "Failed to deserialize the JSON body into the target type",
        );
    };
    let mut s = state.lock();
    s.apply_due();
    match req.route() {
        "/info" => {
            let kind = body["type"].as_str().unwrap_or("").to_string();
            *s.info_counts.entry(kind).or_default() += 1;
            if !s.ip_admits(info_weight(&body)) {
                return rate_limited();
            }
            let fault = match s.info_faults.pop_front() {
                Some(f) => Some(f),
                None => s.chaos_info_fault(),
            };
            let answer = s.info(&body);
            if let Ok(v) = &answer {
                s.ip_charge(extra_info_weight(&body, v));
            }
            drop(s);
            match (answer, fault) {
                (Err(msg), _) => Reply::raw(422, "text/plain", msg),
                (Ok(v), None) => Reply::json(200, &v),
                (Ok(v), Some(f)) => faulty(f, v),
            }
        }
        "/exchange" => {
            s.exchange_arrivals.push(std::time::Instant::now());
            if body["action"]["type"] == "order" {
                for o in body["action"]["orders"].as_array().into_iter().flatten() {
                    if let Some(c) = o["c"].as_str() {
                        *s.sends.entry(normal_cloid(c)).or_default() += 1;
                    }
                }
            }
            if !s.ip_admits(exchange_weight(&body)) {
                return rate_limited();
            }
            let fault = match s.faults.pop_front() {
                Some(f) => Some(f),
                None => s.chaos_exchange_fault(),
            };
            match fault {
                Some(Fault::RateLimited) => return rate_limited(),
                Some(Fault::BadGatewayNotApplied) => return bad_gateway(),
                _ => {}
            }
            s.rate_limit_used += 1;
            if let (Some((min, max)), None) = (s.apply_lag, &fault) {
                if body["action"]["type"] == "order" && s.chaos_lags() {
                    let (action, expires) = match s.verify(&body) {
                        Ok(Ok(verified)) => verified,
                        Ok(Err(refusal)) => return Reply::json(200, &refusal),
                        Err(msg) => return Reply::raw(422, "text/plain", msg),
                    };
                    let lag = s.lag_within(min, max);
                    let id = s.next_request;
                    s.next_request += 1;
                    s.pending
                        .push((std::time::Instant::now() + lag, id, action, expires));
                    let shared = state.clone();
                    return Reply::Later(
                        lag,
                        Deferred(Arc::new(move || {
                            let mut s = shared.lock();
                            s.apply_due();
                            match s.applied.remove(&id) {
                                Some(v) => Reply::json(200, &v),
                                None => Reply::raw(500, "text/plain", "not applied yet"),
                            }
                        })),
                    );
                }
            }
            let answer = s.exchange(&body);
            drop(s);
            match (answer, fault) {
                (Err(msg), _) => Reply::raw(422, "text/plain", msg),
                (Ok(v), None) => Reply::json(200, &v),
                (Ok(v), Some(f)) => faulty(f, v),
            }
        }
        _ => Reply::raw(404, "text/plain", "not found"),
    }
}

/// Documented weight of an /info request, before its answer.
fn info_weight(body: &Value) -> u64 {
    match body["type"].as_str().unwrap_or("") {
        "l2Book"
        | "allMids"
        | "clearinghouseState"
        | "orderStatus"
        | "spotClearinghouseState"
        | "exchangeStatus" => 2,
        "userRole" => 60,
        _ => 20,
    }
}

/// Documented extra weight of an /info answer by its length.
fn extra_info_weight(body: &Value, answer: &Value) -> u64 {
    let items = answer.as_array().map_or(0, Vec::len) as u64;
    match body["type"].as_str().unwrap_or("") {
        "recentTrades"
        | "historicalOrders"
        | "userFills"
        | "userFillsByTime"
        | "fundingHistory"
        | "userFunding"
        | "nonUserFundingUpdates"
        | "twapHistory"
        | "userTwapSliceFills"
        | "userTwapSliceFillsByTime"
        | "delegatorHistory"
        | "delegatorRewards"
        | "validatorStats" => items / 20,
        "candleSnapshot" => items / 60,
        _ => 0,
    }
}

/// Documented weight of an /exchange action: 1 + ⌊batch length / 40⌋.
fn exchange_weight(body: &Value) -> u64 {
    let action = &body["action"];
    let batch = ["orders", "cancels", "modifies"]
        .iter()
        .find_map(|k| action[*k].as_array())
        .map_or(0, Vec::len) as u64;
    1 + batch / 40
}

/// What an nginx proxy answers when the service behind it does not.
fn bad_gateway() -> Reply {
    Reply::raw(
        502,
        "text/html",
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
    )
}

fn faulty(fault: Fault, v: Value) -> Reply {
    match fault {
        Fault::RateLimited => rate_limited(),
        Fault::BadGatewayNotApplied => bad_gateway(),
        Fault::ServerErrorAfterApply => Reply::raw(500, "text/plain", "Internal Server Error"),
        Fault::ResetAfterApply => Reply::Reset,
        Fault::MalformedAfterApply => {
            let text = v.to_string();
            Reply::raw(200, "application/json", &text[..text.len() / 2])
        }
        Fault::HangAfterApply => Reply::Hang,
    }
}

/// A decimal as the venue writes one: at least one decimal place (`"0.0"`, `"12.5"`).
fn wire_dec(d: Decimal) -> String {
    let d = d.normalize();
    if d.scale() == 0 {
        format!("{d}.0")
    } else {
        d.to_string()
    }
}

/// Adds `cloid` to an order object when the order has one; the venue omits the key
/// otherwise (recorded `openOrders` and `historicalOrders` without it).
/// One fill as `userFills` answers it and the websocket's `WsFill` carries it.
fn fill_json(f: &MockFill) -> Value {
    let mut v = json!({"coin": f.coin, "px": f.px.to_string(), "sz": f.sz.to_string(), "side": if f.is_buy {"B"} else {"A"}, "time": f.time, "startPosition": f.start_position.to_string(), "dir": f.dir, "closedPnl": wire_dec(f.closed_pnl), "hash": format!("0x{:064x}", f.tid), "oid": f.oid, "crossed": f.crossed, "fee": wire_dec(f.fee), "tid": f.tid, "feeToken": "USDC", "twapId": null});
    // The venue omits `cloid` for an order placed without one.
    if let (Some(c), Value::Object(m)) = (&f.cloid, &mut v) {
        m.insert("cloid".into(), json!(c));
    }
    v
}

/// The account's order states and fills as the websocket's user channels carry them,
/// read from the mock's own state: the loopback websocket mock
/// ([`super::ws_mock::HlWsMock::follow`]) turns each new fill into `userFills` and
/// `userEvents` frames and each order change into an `orderUpdates` frame, so an order
/// placed through this REST mock produces the frames the venue would push.
#[derive(Clone)]
pub struct UserFeed {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for UserFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserFeed")
    }
}

/// One order's state as an `orderUpdates` element (`WsOrder`), with what identifies the
/// state for change detection.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderUpdate {
    pub oid: u64,
    pub status: String,
    /// Remaining size.
    pub sz: Decimal,
    /// `{"order": WsBasicOrder, "status", "statusTimestamp"}`.
    pub json: Value,
}

impl UserFeed {
    /// The account the mock serves.
    pub fn wallet(&self) -> Address {
        self.state.lock().wallet
    }

    /// Every fill, oldest first, in the `WsFill` shape.
    pub fn fills(&self) -> Vec<Value> {
        let mut s = self.state.lock();
        s.apply_due();
        s.fills.iter().map(fill_json).collect()
    }

    /// Every order's current state in the `WsOrder` shape (`WsBasicOrder`: coin, side,
    /// limitPx, sz, oid, timestamp, origSz, and cloid when it has one).
    pub fn orders(&self) -> Vec<OrderUpdate> {
        let mut s = self.state.lock();
        s.apply_due();
        let at = now_ms();
        s.orders
            .iter()
            .map(|o| {
                let basic = json!({"coin": o.coin, "side": if o.is_buy {"B"} else {"A"}, "limitPx": o.limit_px.to_string(), "sz": o.sz.to_string(), "oid": o.oid, "timestamp": o.timestamp, "origSz": o.orig_sz.to_string()});
                let basic = match (&o.cloid, basic) {
                    (Some(c), Value::Object(mut m)) => {
                        m.insert("cloid".into(), json!(c));
                        Value::Object(m)
                    }
                    (_, v) => v,
                };
                OrderUpdate {
                    oid: o.oid,
                    status: o.status.clone(),
                    sz: o.sz,
                    json: json!({"order": basic, "status": o.status, "statusTimestamp": at}),
                }
            })
            .collect()
    }
}

fn with_cloid(mut v: Value, cloid: &Option<String>) -> Value {
    if let (Some(c), Value::Object(m)) = (cloid, &mut v) {
        m.insert("cloid".into(), json!(c));
    }
    v
}

fn dec_of(v: &Value) -> Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Decimal::ZERO)
}

/// The control route of the mock's record ([`MockHyperliquid::record`]): for a harness
/// in another process. No venue has it.
pub const RECORD_ROUTE: &str = "/_mock/record";

/// The control route that turns chaos and lag off (actions already in the lag queue are
/// still applied at their time): a busy venue calming down, so a harness can settle.
pub const CALM_ROUTE: &str = "/_mock/calm";
/// `POST /_mock/leader` with `{"user","coin","szi","entryPx"}`: sets another account's
/// position ([`MockHyperliquid::set_other_position`]).
pub const LEADER_ROUTE: &str = "/_mock/leader";

impl State {
    fn set_other(&mut self, user: Address, coin: &str, szi: Decimal, entry_px: Decimal) {
        let held = self.others.entry(user).or_default();
        if szi.is_zero() {
            held.remove(coin);
        } else {
            held.insert(coin.to_string(), (szi, entry_px));
        }
    }

    fn record_json(&self) -> Value {
        let orders: Vec<Value> = self
            .orders
            .iter()
            .map(|o| json!({"cloid": o.cloid, "oid": o.oid, "coin": o.coin, "side": if o.is_buy {"B"} else {"A"}, "status": o.status, "origSz": o.orig_sz.to_string(), "sz": o.sz.to_string()}))
            .collect();
        json!({"orders": orders, "sends": self.sends, "pending": self.pending.len(), "info_requests": self.info_counts})
    }

    /// Whether this order action is applied late (always, without chaos).
    fn chaos_lags(&mut self) -> bool {
        match &mut self.chaos {
            Some((c, rng)) => rng.gen_bool(c.lag_share.clamp(0.0, 1.0)),
            None => true,
        }
    }

    fn chaos_exchange_fault(&mut self) -> Option<Fault> {
        let (c, rng) = self.chaos.as_mut()?;
        if !rng.gen_bool(c.exchange_fault_rate.clamp(0.0, 1.0)) {
            return None;
        }
        Some(match rng.gen_range(0..4) {
            0 => Fault::RateLimited,
            1 => Fault::BadGatewayNotApplied,
            2 => Fault::ServerErrorAfterApply,
            _ => Fault::ResetAfterApply,
        })
    }

    fn chaos_info_fault(&mut self) -> Option<Fault> {
        let (c, rng) = self.chaos.as_mut()?;
        if !rng.gen_bool(c.info_fault_rate.clamp(0.0, 1.0)) {
            return None;
        }
        Some(match rng.gen_range(0..3) {
            0 => Fault::RateLimited,
            1 => Fault::ServerErrorAfterApply,
            _ => Fault::ResetAfterApply,
        })
    }

    /// A candle close: the flat mid, or the wave of [`MockHyperliquid::set_candle_wave`].
    fn candle_close(&self, mid: Decimal, open_ms: i64) -> Decimal {
        if !self.candle_wave {
            return mid;
        }
        // Synthetic test prices, so f64 is fine here: a 12-candle period whose phase moves
        // one candle every 15 s of wall clock.
        let phase = open_ms as f64 / 60_000.0 + now_ms() as f64 / 15_000.0;
        let factor = 1.0 + 0.02 * (std::f64::consts::TAU * phase / 12.0).sin();
        Decimal::from_f64(factor).map_or(mid, |f| (mid * f).round_dp(2).normalize())
    }

    /// Charges `weight` to the IP's rolling budget if it fits; a request that does not fit
    /// is refused and not charged.
    fn ip_admits(&mut self, weight: u64) -> bool {
        let Some((limit, window)) = self.ip_budget else {
            return true;
        };
        let now = std::time::Instant::now();
        while self
            .ip_used
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= window)
        {
            self.ip_used.pop_front();
        }
        let used: u64 = self.ip_used.iter().map(|(_, w)| w).sum();
        if used + weight > limit {
            self.ip_refused += 1;
            return false;
        }
        self.ip_used.push_back((now, weight));
        true
    }

    fn ip_charge(&mut self, weight: u64) {
        if weight > 0 && self.ip_budget.is_some() {
            self.ip_used.push_back((std::time::Instant::now(), weight));
        }
    }

    /// The account's leverage in `coin`: what it set, else the venue's default of 20x
    /// (capped at the asset's maximum).
    fn leverage_of(&self, coin: &str, max_leverage: u32) -> u32 {
        self.leverage
            .get(coin)
            .copied()
            .unwrap_or(20.min(max_leverage))
    }

    fn mid(&self, coin: &str) -> Option<Decimal> {
        self.books.get(coin).map(|b| (b.bid + b.ask) / Decimal::TWO)
    }

    fn info(&self, body: &Value) -> Result<Value, String> {
        let user_ok = |b: &Value| {
            b["user"]
                .as_str()
                .and_then(|u| u.parse::<Address>().ok())
                .is_some_and(|u| u == self.wallet)
        };
        Ok(match body["type"].as_str().unwrap_or("") {
            "meta" => json!({"universe": self.assets.iter().map(|a| json!({"maxLeverage": a.max_leverage, "name": a.name, "szDecimals": a.sz_decimals})).collect::<Vec<_>>()}),
            "allMids" => Value::Object(
                self.books
                    .keys()
                    .filter_map(|c| Some((c.clone(), json!(self.mid(c)?.normalize().to_string()))))
                    .collect(),
            ),
            "l2Book" => {
                let coin = body["coin"].as_str().unwrap_or("");
                let b = self.books.get(coin).ok_or("Failed to deserialize the JSON body into the target type")?;
                json!({"coin": coin, "levels": [
                    [{"n": 1, "px": b.bid.to_string(), "sz": b.depth.to_string()}],
                    [{"n": 1, "px": b.ask.to_string(), "sz": b.depth.to_string()}]
                ], "time": now_ms()})
            }
            "clearinghouseState" => {
                let mut positions = Vec::new();
                let mut ntl = Decimal::ZERO;
                let mut upnl = Decimal::ZERO;
                let mut signed_ntl = Decimal::ZERO;
                let mut margin = Decimal::ZERO;
                let user = body["user"].as_str().and_then(|u| u.parse::<Address>().ok());
                let other = user.and_then(|u| self.others.get(&u));
                let (held, balance) = match (user_ok(body), other) {
                    (true, _) => (Some(&self.positions), self.balance),
                    (false, Some(other)) => (Some(other), Decimal::ZERO),
                    (false, None) => (None, self.balance),
                };
                if let Some(held) = held {
                    for (coin, (szi, entry)) in held {
                        if szi.is_zero() {
                            continue;
                        }
                        let mark = self.mid(coin).unwrap_or(*entry);
                        let value = (szi.abs() * mark).normalize();
                        let pnl = (*szi * (mark - entry)).normalize();
                        let lev = self.leverage_of(coin, 20);
                        // The recorded state: marginUsed = positionValue / leverage.
                        let used = (value / Decimal::from(lev)).round_dp(6).normalize();
                        ntl += value;
                        upnl += pnl;
                        signed_ntl += *szi * mark;
                        margin += used;
                        // Recorded: returnOnEquity = unrealizedPnl / marginUsed.
                        let roe = if used.is_zero() {
                            Decimal::ZERO
                        } else {
                            (pnl / used).round_dp(8).normalize()
                        };
                        positions.push(json!({"position": {"coin": coin, "entryPx": entry.to_string(), "leverage": {"type": "cross", "value": lev}, "liquidationPx": null, "marginUsed": wire_dec(used), "maxTradeSzs": ["0", "0"], "positionValue": value.to_string(), "returnOnEquity": wire_dec(roe), "szi": szi.to_string(), "unrealizedPnl": pnl.to_string()}, "type": "oneWay"}));
                    }
                }
                // As recorded: accountValue = totalRawUsd + signed notional (mark),
                // withdrawable = accountValue - totalMarginUsed.
                let value = balance + upnl;
                let raw = value - signed_ntl;
                let withdrawable = (value - margin).max(Decimal::ZERO);
                let summary = json!({"accountValue": wire_dec(value), "totalMarginUsed": wire_dec(margin), "totalNtlPos": wire_dec(ntl), "totalRawUsd": wire_dec(raw)});
                json!({"assetPositions": positions, "crossMarginSummary": summary, "marginSummary": summary, "withdrawable": wire_dec(withdrawable), "time": now_ms()})
            }
            kind @ ("openOrders" | "frontendOpenOrders") => Value::Array(
                self.orders
                    .iter()
                    .rev()
                    .filter(|o| user_ok(body) && o.status == "open")
                    .map(|o| {
                        let v = json!({"coin": o.coin, "limitPx": o.limit_px.to_string(), "oid": o.oid, "side": if o.is_buy {"B"} else {"A"}, "sz": o.sz.to_string(), "timestamp": o.timestamp});
                        if kind == "frontendOpenOrders" {
                            self.frontend(o, v)
                        } else {
                            // The recorded openOrders answer has no `cloid` key for orders
                            // placed without one.
                            with_cloid(v, &o.cloid)
                        }
                    })
                    .collect(),
            ),
            "orderStatus" => {
                let found = match &body["oid"] {
                    Value::String(c) => self.by_cloid.get(&normal_cloid(c)).map(|&i| &self.orders[i]),
                    Value::Number(n) => n.as_u64().and_then(|oid| self.orders.iter().find(|o| o.oid == oid)),
                    _ => return Err("Failed to deserialize the JSON body into the target type".into()),
                };
                match found.filter(|_| user_ok(body)) {
                    None => json!({"status": "unknownOid"}),
                    Some(o) => {
                        let order = self.frontend(o, json!({"coin": o.coin, "side": if o.is_buy {"B"} else {"A"}, "limitPx": o.limit_px.to_string(), "sz": o.sz.to_string(), "oid": o.oid, "timestamp": o.timestamp}));
                        json!({"status": "order", "order": {"order": order, "status": o.status, "statusTimestamp": now_ms()}})
                    }
                }
            }
            "userFills" | "userFillsByTime" => {
                let start = body["startTime"].as_i64().unwrap_or(i64::MIN);
                Value::Array(
                    self.fills
                        .iter()
                        .rev()
                        .filter(|f| user_ok(body) && f.time >= start)
                        .map(fill_json)
                        .collect(),
                )
            }
            "candleSnapshot" => {
                let coin = body["req"]["coin"].as_str().unwrap_or("BTC");
                let interval = body["req"]["interval"].as_str().unwrap_or("1m");
                let start = body["req"]["startTime"].as_i64().unwrap_or(0);
                let end = body["req"]["endTime"].as_i64().unwrap_or(0);
                if let Some(history) = self.candle_history.get(&(coin.to_string(), interval.to_string())) {
                    let step = interval
                        .parse::<crate::exchanges::Timeframe>()
                        .map(|t| t.millis())
                        .map_err(|e| e.to_string())?;
                    let rows: Vec<Value> = history
                        .iter()
                        .filter(|c| c.open_time_ms + step > start && c.open_time_ms <= end)
                        .take(5000)
                        .map(|c| json!({"T": c.open_time_ms + step - 1, "c": c.close.to_string(), "h": c.high.to_string(), "i": interval, "l": c.low.to_string(), "n": 1, "o": c.open.to_string(), "s": coin, "t": c.open_time_ms, "v": c.volume.to_string()}))
                        .collect();
                    return Ok(Value::Array(rows));
                }
                let mid = self.mid(coin).unwrap_or(Decimal::ONE);
                let step = 60_000i64;
                let first = (start / step + 1) * step;
                Value::Array(
                    (0..)
                        .map(|i| first + i * step)
                        .take_while(|t| *t <= end)
                        .take(5000)
                        .map(|t| {
                            let (o, c) = (self.candle_close(mid, t - step), self.candle_close(mid, t));
                            let (h, l) = (o.max(c).to_string(), o.min(c).to_string());
                            json!({"T": t + step - 1, "c": c.to_string(), "h": h, "i": interval, "l": l, "n": 1, "o": o.to_string(), "s": coin, "t": t, "v": "1.0"})
                        })
                        .collect(),
                )
            }
            "activeAssetData" => {
                let coin = body["coin"].as_str().unwrap_or("");
                let asset = self
                    .assets
                    .iter()
                    .find(|a| a.name == coin)
                    .ok_or("Failed to deserialize the JSON body into the target type")?;
                if !user_ok(body) {
                    return Err("Failed to deserialize the JSON body into the target type".into());
                }
                let lev = self.leverage_of(coin, asset.max_leverage);
                let mark = self.mid(coin).unwrap_or(Decimal::ONE);
                let room = self.balance * Decimal::from(lev);
                let size = (room / mark).round_dp(asset.sz_decimals).normalize().to_string();
                let room = room.round_dp(4).normalize().to_string();
                json!({"user": self.wallet.to_string(), "coin": coin, "leverage": {"type": "cross", "value": lev}, "maxTradeSzs": [size, size], "availableToTrade": [room, room], "markPx": mark.normalize().to_string()})
            }
            "userRateLimit" => json!({"cumVlm": "0.0", "nRequestsUsed": self.rate_limit_used, "nRequestsCap": 10000}),
            "metaAndAssetCtxs" => {
                let meta = json!({"universe": self.assets.iter().map(|a| json!({"maxLeverage": a.max_leverage, "name": a.name, "szDecimals": a.sz_decimals})).collect::<Vec<_>>()});
                let ctxs: Vec<Value> = self.assets.iter().map(|a| self.ctx_json(&a.name)).collect();
                json!([meta, ctxs])
            }
            "fundingHistory" => {
                let coin = body["coin"].as_str().ok_or("Failed to deserialize the JSON body into the target type")?;
                let start = body["startTime"].as_i64().ok_or("Failed to deserialize the JSON body into the target type")?;
                let end = body["endTime"].as_i64();
                Value::Array(self.funding_rows(coin, start, end))
            }
            other => return Err(format!("Failed to deserialize the JSON body into the target type: unknown variant `{other}`")),
        })
    }

    /// One coin's context in the recorded shape (`allDexsAssetCtxs`' elements).
    fn ctx_json(&self, coin: &str) -> Value {
        let mid = self.mid(coin).unwrap_or_default();
        let c = self.ctxs.get(coin).cloned().unwrap_or(Ctx {
            funding: Decimal::ZERO,
            open_interest: Decimal::ZERO,
            mark_px: None,
            oracle_px: None,
        });
        let mark = c.mark_px.unwrap_or(mid);
        let oracle = c.oracle_px.unwrap_or(mid);
        let premium = if oracle.is_zero() {
            Decimal::ZERO
        } else {
            ((mark - oracle) / oracle).round_dp(10)
        };
        let (bid, ask) = self.books.get(coin).map_or((mid, mid), |b| (b.bid, b.ask));
        json!({
            "funding": c.funding.normalize().to_string(),
            "openInterest": c.open_interest.normalize().to_string(),
            "prevDayPx": mid.normalize().to_string(),
            "dayNtlVlm": "0.0",
            "premium": premium.normalize().to_string(),
            "oraclePx": oracle.normalize().to_string(),
            "markPx": mark.normalize().to_string(),
            "midPx": mid.normalize().to_string(),
            "impactPxs": [bid.normalize().to_string(), ask.normalize().to_string()],
            "dayBaseVlm": "0.0"
        })
    }

    /// `fundingHistory` rows of `coin` from `start` to `end` (default: now), oldest first,
    /// at most 500: the set ones (a test's clock may run ahead of the wall clock, so they
    /// are cut at `end` only when it is given), or one per full hour at the coin's current
    /// funding.
    fn funding_rows(&self, coin: &str, start: i64, end: Option<i64>) -> Vec<Value> {
        let mut rows: Vec<MockFunding> = match self.funding_history.get(coin) {
            Some(h) => h.clone(),
            None => {
                let Some(c) = self.ctxs.get(coin) else {
                    return Vec::new();
                };
                let first = start.div_euclid(3_600_000) + 1;
                let last = end.unwrap_or_else(now_ms).div_euclid(3_600_000);
                (first..=last)
                    .map(|h| MockFunding {
                        time: h * 3_600_000,
                        rate: c.funding,
                        premium: None,
                    })
                    .collect()
            }
        };
        rows.retain(|r| r.time >= start && end.is_none_or(|e| r.time <= e));
        rows.sort_by_key(|r| r.time);
        rows.truncate(FUNDING_HISTORY_PAGE);
        rows.into_iter()
            .map(|r| {
                let mut v = json!({"coin": coin, "fundingRate": r.rate.normalize().to_string(), "time": r.time});
                if let Some(p) = r.premium {
                    v["premium"] = json!(p.normalize().to_string());
                }
                v
            })
            .collect()
    }

    /// The frontend shape of an order (`frontendOpenOrders`, `orderStatus`): the base
    /// fields plus trigger condition, children (the TP/SL orders placed with it in a
    /// `normalTpsl` group, while they are open), order type, origSz, tif and `cloid`
    /// (`null` without one, as the recorded `historicalOrders` answer has it).
    fn frontend(&self, o: &MockOrder, mut v: Value) -> Value {
        let (is_trigger, trigger_px, condition, order_type) = match o.trigger {
            Some((px, is_market, tpsl)) => {
                // A sell TP and a buy SL fire as the price rises to the trigger; the others
                // as it falls (the same rule as `fire_triggers`).
                let above = matches!((o.is_buy, tpsl), (false, Tpsl::Tp) | (true, Tpsl::Sl));
                let condition = format!(
                    "Price {} {}",
                    if above { "above" } else { "below" },
                    px.normalize()
                );
                let order_type = match (tpsl, is_market) {
                    (Tpsl::Tp, true) => "Take Profit Market",
                    (Tpsl::Tp, false) => "Take Profit Limit",
                    (Tpsl::Sl, true) => "Stop Market",
                    (Tpsl::Sl, false) => "Stop Limit",
                };
                (true, wire_dec(px), condition, order_type)
            }
            None => (false, "0.0".to_string(), "N/A".to_string(), "Limit"),
        };
        let children: Vec<Value> = self
            .children
            .get(&o.oid)
            .into_iter()
            .flatten()
            .filter_map(|oid| self.orders.iter().find(|c| c.oid == *oid && c.status == "open"))
            .map(|c| {
                // A child has no children of its own, so this does not recurse further.
                self.frontend(c, json!({"coin": c.coin, "side": if c.is_buy {"B"} else {"A"}, "limitPx": c.limit_px.to_string(), "sz": c.sz.to_string(), "oid": c.oid, "timestamp": c.timestamp}))
            })
            .collect();
        let extra = json!({"triggerCondition": condition, "isTrigger": is_trigger, "triggerPx": trigger_px, "children": children, "isPositionTpsl": self.position_tpsl.contains(&o.oid), "reduceOnly": o.reduce_only, "orderType": order_type, "origSz": o.orig_sz.to_string(), "tif": o.tif.map(|t| format!("{t:?}")), "cloid": o.cloid});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }

    /// Checks the signature (over the action, nonce, vault and `expiresAfter`) and the
    /// expiry: `Ok(Ok(action, expiresAfter))` to apply, `Ok(Err(answer))` for the venue's
    /// refusal, `Err` for a body the venue cannot read.
    fn verify(&self, body: &Value) -> Result<Result<(Action, Option<u64>), Value>, String> {
        const BAD: &str = "Failed to deserialize the JSON body into the target type";
        let action: Action =
            serde_json::from_value(body["action"].clone()).map_err(|e| format!("{BAD}: {e}"))?;
        let nonce = body["nonce"].as_u64().ok_or(BAD)?;
        let signature: Signature =
            serde_json::from_value(body["signature"].clone()).map_err(|e| format!("{BAD}: {e}"))?;
        let vault = match &body["vaultAddress"] {
            Value::String(v) => Some(v.parse::<Address>().map_err(|e| format!("{BAD}: {e}"))?),
            _ => None,
        };
        let expires = match &body["expiresAfter"] {
            Value::Null => None,
            v => Some(v.as_u64().ok_or(BAD)?),
        };
        let signer = recover_l1_signer_expiring(
            &action,
            action.label(),
            nonce,
            vault.as_ref(),
            expires,
            self.network,
            &signature,
        );
        match signer {
            Ok(a) if a == self.wallet => {}
            Ok(a) => {
                return Ok(Err(
                    json!({"status": "err", "response": format!("User or API Wallet {a} does not exist.")}),
                ))
            }
            Err(_) => {
                return Ok(Err(
                    json!({"status": "err", "response": "Invalid signature."}),
                ))
            }
        }
        if expired(expires) {
            return Ok(Err(expired_answer()));
        }
        Ok(Ok((action, expires)))
    }

    /// A pseudo-random lag in `min..=max` (deterministic sequence; no RNG dependency).
    fn lag_within(
        &mut self,
        min: std::time::Duration,
        max: std::time::Duration,
    ) -> std::time::Duration {
        let span = max.saturating_sub(min).as_millis() as u64;
        let x = (self.next_request + 1).wrapping_mul(6364136223846793005) >> 33;
        min + std::time::Duration::from_millis(if span == 0 { 0 } else { x % (span + 1) })
    }

    /// Applies every pending order action whose lag is over, in arrival order; one whose
    /// `expiresAfter` passed in the meantime is refused and never applied.
    fn apply_due(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.0 <= now);
        self.pending = waiting;
        for (_, id, action, expires) in due {
            let answer = if expired(expires) {
                expired_answer()
            } else {
                self.apply(action)
            };
            self.applied.insert(id, answer);
        }
    }

    fn exchange(&mut self, body: &Value) -> Result<Value, String> {
        Ok(match self.verify(body)? {
            Ok((action, _)) => self.apply(action),
            Err(refusal) => refusal,
        })
    }

    /// Applies a verified action; returns the venue's answer.
    fn apply(&mut self, action: Action) -> Value {
        match action {
            Action::Order { orders, grouping } => {
                let statuses: Vec<Value> = orders.iter().map(|o| self.place(o)).collect();
                self.group(&orders, &statuses, grouping);
                ok("order", Some(statuses))
            }
            Action::CancelByCloid { cancels } => {
                let statuses = cancels
                    .iter()
                    .map(|c| {
                        let idx = self.by_cloid.get(&normal_cloid(&c.cloid)).copied();
                        match idx {
                            Some(i) if self.orders[i].status == "open" => {
                                self.orders[i].status = "canceled".into();
                                json!("success")
                            }
                            _ => json!({"error": format!("Order was never placed, already canceled, or filled. asset={}", c.asset)}),
                        }
                    })
                    .collect();
                ok("cancel", Some(statuses))
            }
            Action::Cancel { cancels } => {
                let statuses = cancels
                    .iter()
                    .map(|c| match self.orders.iter_mut().find(|o| o.oid == c.o && o.status == "open") {
                        Some(o) => {
                            o.status = "canceled".into();
                            json!("success")
                        }
                        None => json!({"error": format!("Order was never placed, already canceled, or filled. asset={}", c.a)}),
                    })
                    .collect();
                ok("cancel", Some(statuses))
            }
            Action::UpdateLeverage {
                asset, leverage, ..
            } => {
                let Some(a) = self.assets.get(asset as usize).cloned() else {
                    return json!({"status": "err", "response": "Invalid asset."});
                };
                if leverage > a.max_leverage {
                    return json!({"status": "err", "response": "Invalid leverage value"});
                }
                self.leverage.insert(a.name, leverage);
                ok("default", None)
            }
            Action::ScheduleCancel { time } => {
                self.scheduled_cancel = time;
                ok("default", None)
            }
            other => {
                json!({"status": "err", "response": format!("{} is not supported by the mock", other.label())})
            }
        }
    }

    /// Records a TP/SL group: with `normalTpsl` the trigger orders are the children of the
    /// batch's first plain order; with `positionTpsl` they are position TP/SL.
    fn group(&mut self, orders: &[OrderWire], statuses: &[Value], grouping: Grouping) {
        let oid_of = |v: &Value| {
            v["resting"]["oid"]
                .as_u64()
                .or_else(|| v["filled"]["oid"].as_u64())
        };
        let is_trigger = |w: &OrderWire| matches!(w.t, OrderTypeWire::Trigger { .. });
        let triggers: Vec<u64> = orders
            .iter()
            .zip(statuses)
            .filter(|(w, _)| is_trigger(w))
            .filter_map(|(_, v)| oid_of(v))
            .collect();
        match grouping {
            Grouping::Na => {}
            Grouping::NormalTpsl => {
                let parent = orders
                    .iter()
                    .zip(statuses)
                    .find(|(w, _)| !is_trigger(w))
                    .and_then(|(_, v)| oid_of(v));
                if let Some(parent) = parent {
                    self.children.insert(parent, triggers);
                }
            }
            Grouping::PositionTpsl => self.position_tpsl.extend(triggers),
        }
    }

    /// Applies one order; returns its status entry.
    fn place(&mut self, w: &OrderWire) -> Value {
        let Some(asset) = self.assets.get(w.a as usize).cloned() else {
            return json!({"error": "Invalid asset."});
        };
        let px: Decimal = w.p.parse().unwrap_or_default();
        let sz: Decimal = w.s.parse().unwrap_or_default();
        let oid = self.next_oid;
        self.next_oid += 1;
        let mut order = MockOrder {
            oid,
            cloid: w.c.as_deref().map(normal_cloid),
            coin: asset.name.clone(),
            is_buy: w.b,
            limit_px: px,
            orig_sz: sz,
            sz,
            status: "open".into(),
            reduce_only: w.r,
            tif: None,
            trigger: None,
            timestamp: now_ms(),
        };
        if let Some(c) = &order.cloid {
            if self.by_cloid.contains_key(c) {
                return json!({"error": format!("Duplicate cloid. asset={}", w.a)});
            }
        }
        let reject = |me: &mut Self, mut order: MockOrder, status: &str, msg: String| {
            order.status = status.into();
            me.record(order);
            json!({ "error": msg })
        };
        if check_size(sz, asset.sz_decimals).is_err() {
            return reject(self, order, "rejected", "Order has invalid size.".into());
        }
        if check_price(px, asset.sz_decimals).is_err() {
            return reject(
                self,
                order,
                "tickRejected",
                format!("Price must be divisible by tick size. asset={}", w.a),
            );
        }
        let book = self.books.get(&asset.name).cloned();
        let Some(book) = book else {
            return reject(self, order, "rejected", "Invalid asset.".into());
        };
        let reference = match &w.t {
            OrderTypeWire::Trigger { trigger_px, .. } => dec_of(&json!(trigger_px)),
            _ => px,
        };
        if sz * reference < Decimal::TEN && !w.r {
            return reject(
                self,
                order,
                "minTradeNtlRejected",
                format!("Order must have minimum value of $10. asset={}", w.a),
            );
        }
        if w.r {
            let pos = self
                .positions
                .get(&asset.name)
                .map(|p| p.0)
                .unwrap_or_default();
            let reduces = (w.b && pos < Decimal::ZERO) || (!w.b && pos > Decimal::ZERO);
            if !reduces {
                return reject(
                    self,
                    order,
                    "reduceOnlyRejected",
                    format!("Reduce only order would increase position. asset={}", w.a),
                );
            }
        }
        match &w.t {
            OrderTypeWire::Trigger {
                is_market,
                trigger_px,
                tpsl,
            } => {
                order.trigger = Some((dec_of(&json!(trigger_px)), *is_market, *tpsl));
                let i = self.record(order);
                self.fire_triggers(&asset.name);
                let o = &self.orders[i];
                if o.status == "filled" {
                    json!({"filled": {"totalSz": o.orig_sz.to_string(), "avgPx": o.limit_px.to_string(), "oid": o.oid}})
                } else {
                    json!({"resting": {"oid": oid, "cloid": o.cloid}})
                }
            }
            OrderTypeWire::Limit { tif } => {
                order.tif = Some(*tif);
                let touch = if w.b { book.ask } else { book.bid };
                let marketable = if w.b { px >= touch } else { px <= touch };
                match tif {
                    Tif::Alo if marketable => {
                        return reject(self, order, "badAloPxRejected", format!("Post only order would have immediately matched, bbo was {}@{}. asset={}", book.bid, book.ask, w.a));
                    }
                    Tif::Ioc if !marketable => {
                        return reject(self, order, "iocCancelRejected", format!("Order could not immediately match against any resting orders. asset={}", w.a));
                    }
                    _ => {}
                }
                let i = self.record(order);
                let filled = if marketable {
                    let qty = sz.min(book.depth);
                    self.fill(i, touch, qty, true);
                    qty
                } else {
                    Decimal::ZERO
                };
                let o = &mut self.orders[i];
                if filled == sz {
                    o.status = "filled".into();
                    json!({"filled": {"totalSz": filled.to_string(), "avgPx": touch.to_string(), "oid": oid}})
                } else if *tif == Tif::Ioc {
                    o.status = "canceled".into();
                    json!({"filled": {"totalSz": filled.to_string(), "avgPx": touch.to_string(), "oid": oid}})
                } else {
                    json!({"resting": {"oid": oid, "cloid": o.cloid}})
                }
            }
        }
    }

    fn record(&mut self, order: MockOrder) -> usize {
        let i = self.orders.len();
        if let Some(c) = &order.cloid {
            self.by_cloid.insert(c.clone(), i);
        }
        self.orders.push(order);
        i
    }

    /// Fills `qty` of order `i` at `px`: fill record (fee, closed PnL, direction),
    /// position, cash (realized PnL less the fee), remaining size. `crossed`: the order
    /// took liquidity (taker) rather than resting until it was hit (maker).
    fn fill(&mut self, i: usize, px: Decimal, qty: Decimal, crossed: bool) {
        if qty <= Decimal::ZERO {
            return;
        }
        let o = &mut self.orders[i];
        o.sz -= qty;
        let (coin, is_buy, oid, cloid) = (o.coin.clone(), o.is_buy, o.oid, o.cloid.clone());
        let pos = self.positions.entry(coin.clone()).or_default();
        let start = pos.0;
        let entry = pos.1;
        let signed = if is_buy { qty } else { -qty };
        let next = pos.0 + signed;
        // The part of this fill that reduces the position realizes PnL against its entry.
        let reducing = !start.is_zero() && (start > Decimal::ZERO) != (signed > Decimal::ZERO);
        let closed = if reducing {
            qty.min(start.abs())
        } else {
            Decimal::ZERO
        };
        let closed_pnl = if start > Decimal::ZERO {
            closed * (px - entry)
        } else {
            closed * (entry - px)
        };
        let dir = if !reducing {
            if is_buy {
                "Open Long"
            } else {
                "Open Short"
            }
        } else if is_buy {
            if next > Decimal::ZERO {
                "Short > Long"
            } else {
                "Close Short"
            }
        } else if next < Decimal::ZERO {
            "Long > Short"
        } else {
            "Close Long"
        };
        if pos.0.is_zero() || (pos.0 > Decimal::ZERO) == (signed > Decimal::ZERO) {
            pos.1 = ((pos.0.abs() * pos.1 + qty * px) / next.abs())
                .round_dp(8)
                .normalize();
        } else if next.is_zero() || (next > Decimal::ZERO) != (pos.0 > Decimal::ZERO) {
            pos.1 = px;
        }
        pos.0 = next;
        let rate = if crossed { TAKER_FEE } else { MAKER_FEE };
        let fee = (px * qty * rate)
            .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::ToZero)
            .normalize();
        let closed_pnl = closed_pnl.round_dp(6).normalize();
        self.balance += closed_pnl - fee;
        let tid = self.next_tid;
        self.next_tid += 1;
        self.fills.push(MockFill {
            coin,
            px,
            sz: qty,
            is_buy,
            time: now_ms(),
            start_position: start,
            oid,
            tid,
            cloid,
            crossed,
            fee,
            closed_pnl,
            dir,
        });
    }

    fn match_resting(&mut self, coin: &str) {
        let Some(book) = self.books.get(coin).cloned() else {
            return;
        };
        for i in 0..self.orders.len() {
            let o = &self.orders[i];
            if o.coin != coin || o.status != "open" || o.trigger.is_some() {
                continue;
            }
            let marketable = if o.is_buy {
                o.limit_px >= book.ask
            } else {
                o.limit_px <= book.bid
            };
            if marketable {
                let (px, qty) = (o.limit_px, o.sz);
                self.fill(i, px, qty, false);
                self.orders[i].status = "filled".into();
            }
        }
        self.fire_triggers(coin);
    }

    fn fire_triggers(&mut self, coin: &str) {
        let Some(mid) = self.mid(coin) else {
            return;
        };
        let Some(book) = self.books.get(coin).cloned() else {
            return;
        };
        for i in 0..self.orders.len() {
            let o = &self.orders[i];
            let Some((trigger, _, tpsl)) = o.trigger else {
                continue;
            };
            if o.coin != coin || o.status != "open" {
                continue;
            }
            // A sell TP fires at or above its trigger, a sell SL at or below; buys mirror.
            let fires = match (o.is_buy, tpsl) {
                (false, Tpsl::Tp) | (true, Tpsl::Sl) => mid >= trigger,
                (false, Tpsl::Sl) | (true, Tpsl::Tp) => mid <= trigger,
            };
            if fires {
                let touch = if o.is_buy { book.ask } else { book.bid };
                let qty = o.sz;
                self.fill(i, touch, qty, true);
                self.orders[i].status = "filled".into();
            }
        }
    }
}
