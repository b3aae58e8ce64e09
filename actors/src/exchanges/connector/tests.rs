//! The connector's ordering: a slow venue at its concurrency limit, a venue whose own rate
//! limit is the bottleneck, a full queue, and aging.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use async_trait::async_trait;
use futures::future::join_all;
use parking_lot::Mutex;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::{system_clock, Millis};
use crate::exchanges::command::FromReply;
use crate::exchanges::hyperliquid::mock::MockHyperliquid;
use crate::exchanges::hyperliquid::{HyperliquidConfig, HyperliquidVenue};
use crate::exchanges::hyperliquid::{Network, PrivateKey};
use crate::exchanges::risk_gate::{approve_for_venue_test, RiskApproved};
use crate::exchanges::types::*;
use crate::resilience::config::{LimitConfig, RateLimits};
use crate::resilience::test_recorder::TestRecorder;
use crate::resilience::{ResilienceConfig, TokioClock};

/// What a call does at the venue: `(label, priority the venue saw)`.
type Log = Mutex<Vec<(&'static str, Priority)>>;

/// An in-process venue: every call draws one unit from its rate limit (reads and trades
/// through separate endpoint queues over one pool, as the HTTP venues do), is logged once
/// admitted, then takes `latency`.
struct TestVenue {
    limits: Option<RateLimits>,
    latency: Duration,
    entered: AtomicUsize,
    log: Log,
}

impl TestVenue {
    fn new(latency: Duration) -> Self {
        Self {
            limits: None,
            latency,
            entered: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    /// One unit per `window` for every call, reads and trades alike.
    fn limited(window: Duration) -> Self {
        let draw = BTreeMap::from([("weight".to_string(), 1)]);
        let cfg = ResilienceConfig {
            limits: vec![LimitConfig::SlidingWindow {
                name: "weight".into(),
                limit: 1,
                window,
                shared: None,
                local_share: None,
                batch: None,
            }],
            endpoints: BTreeMap::from([
                ("read".to_string(), draw.clone()),
                ("trade".to_string(), draw),
            ]),
            ..ResilienceConfig::default()
        };
        Self {
            limits: Some(RateLimits::build("test", &cfg, TokioClock::shared()).unwrap()),
            ..Self::new(Duration::ZERO)
        }
    }

    async fn enter(&self, label: &'static str, endpoint: &str) -> VenueResult<()> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        // The priority the connector serves the call at; the venue decides none itself.
        let priority = call_priority::current().unwrap_or(Priority::Low);
        if let Some(limits) = &self.limits {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            limits
                .acquire(endpoint, 1, priority, deadline)
                .await
                .map_err(|e| VenueError::RateLimited {
                    venue: "test".into(),
                    retry_after: None,
                    reason: e.to_string(),
                })?;
        }
        self.log.lock().push((label, priority));
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(())
    }

    fn labels(&self) -> Vec<&'static str> {
        self.log.lock().iter().map(|(l, _)| *l).collect()
    }
}

fn unsupported() -> VenueError {
    VenueError::InvalidRequest {
        venue: "test".into(),
        reason: "not used by these tests".into(),
    }
}

#[async_trait]
impl Venue for TestVenue {
    fn name(&self) -> &str {
        "test"
    }
    async fn instrument(&self, _: &str) -> VenueResult<Instrument> {
        Err(unsupported())
    }
    async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
        self.enter("quote", "read").await?;
        Ok(Quote {
            symbol: symbol.into(),
            bid: dec!(99),
            ask: dec!(101),
            time_ms: 0,
            fallback: None,
        })
    }
    async fn candles(&self, _: &str, _: Timeframe, _: usize) -> VenueResult<Vec<Candle>> {
        self.enter("candles", "read").await?;
        Ok(Vec::new())
    }
    async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
        self.enter("place", "trade").await?;
        Ok(VenueOrder {
            client_id: Some(order.client_id.clone()),
            venue_order_id: "1".into(),
            symbol: order.symbol.clone(),
            side: order.side,
            size: order.size,
            filled_size: Decimal::ZERO,
            avg_fill_price: None,
            limit_price: order.order_type.limit_price(),
            status: OrderStatus::Acked,
            reduce_only: order.reduce_only,
            reject_reason: None,
            updated_ms: 0,
        })
    }
    async fn cancel_order(&self, _: &str, _: &ClientOrderId) -> VenueResult<()> {
        self.enter("cancel", "trade").await
    }
    async fn query_order(&self, _: &str, _: &ClientOrderId) -> VenueResult<Option<VenueOrder>> {
        Err(unsupported())
    }
    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
        Err(unsupported())
    }
    async fn fills_since(&self, _: Millis) -> VenueResult<Vec<Fill>> {
        Err(unsupported())
    }
    async fn positions(&self) -> VenueResult<Vec<Position>> {
        Err(unsupported())
    }
    async fn account(&self) -> VenueResult<AccountSnapshot> {
        Err(unsupported())
    }
    async fn set_leverage(&self, _: &str, _: u32) -> VenueResult<()> {
        Err(unsupported())
    }
    async fn leverage(&self, _: &str) -> VenueResult<u32> {
        Err(unsupported())
    }
    fn saturated(&self) -> bool {
        self.limits
            .as_ref()
            .is_some_and(|l| l.headroom("weight") == Some(0))
    }
}

fn quote() -> VenueRequest {
    VenueRequest::new(VenueCommand::Quote {
        symbol: "BTC".into(),
    })
}

fn candles() -> VenueRequest {
    VenueRequest::new(VenueCommand::Candles {
        symbol: "BTC".into(),
        timeframe: Timeframe::M1,
        lookback: 10,
    })
}

fn new_order(price: Decimal) -> VenueRequest {
    let order = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(0.01),
        order_type: OrderType::Limit {
            price,
            tif: TimeInForce::Gtc,
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    VenueRequest::new(VenueCommand::PlaceOrder {
        order: approve_for_venue_test(order, price),
    })
}

fn cancel(client_id: ClientOrderId) -> VenueRequest {
    VenueRequest::new(VenueCommand::CancelOrder {
        symbol: "BTC".into(),
        client_id,
    })
}

fn queue(max_in_flight: usize) -> QueueConfig {
    QueueConfig {
        max_in_flight,
        ..QueueConfig::default()
    }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends the reads, new orders and the cancel, in that order, and waits for them all.
async fn reads_orders_then_cancel(addr: &Addr<Connector>) {
    let reads = (addr.send(quote()), addr.send(candles()));
    let orders = join_all([
        addr.send(new_order(dec!(50000))),
        addr.send(new_order(dec!(50001))),
    ]);
    let cancelled = addr.send(cancel(ClientOrderId::generate()));
    let (read_quote, read_candles, orders, cancelled) =
        futures::join!(reads.0, reads.1, orders, cancelled);
    read_quote.unwrap().unwrap();
    read_candles.unwrap().unwrap();
    for o in orders {
        o.unwrap().unwrap();
    }
    cancelled.unwrap().unwrap();
}

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

#[actix::test]
async fn at_a_slow_venue_a_cancel_is_sent_before_queued_reads_and_new_orders() {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    let cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(mock.url()),
        wallet_address: wallet.to_string(),
        ..HyperliquidConfig::default()
    };
    let env = |k: &str| (k == "HYPER_LIQUID_ETH_PRIVATE_KEY").then(|| KEY.to_string());
    let venue =
        Arc::new(HyperliquidVenue::open("hyperliquid", &cfg, &env, system_clock()).unwrap());
    venue.instrument("BTC").await.unwrap(); // asset indices cached: one request per call below
    let resting = ClientOrderId::generate();
    mock.insert_resting(resting.as_str(), "BTC", true, dec!(50000), dec!(0.01));
    mock.set_latency(Duration::from_millis(100));
    let addr = Connector::with_queue(venue, &queue(1)).start();

    let first = addr.send(quote());
    let sent_before = mock.requests().len();
    let first = actix::spawn(first);
    until("the first read reaches the venue", || {
        mock.requests().len() > sent_before
    })
    .await;
    let reads = (addr.send(quote()), addr.send(candles()));
    let orders = join_all([
        addr.send(new_order(dec!(50000))),
        addr.send(new_order(dec!(50001))),
    ]);
    let cancelled = addr.send(cancel(resting.clone()));
    let (q, c, orders, cancelled) = futures::join!(reads.0, reads.1, orders, cancelled);
    first.await.unwrap().unwrap().unwrap();
    q.unwrap().unwrap();
    c.unwrap().unwrap();
    for o in orders {
        let placed = VenueOrder::from_reply(o.unwrap().unwrap()).unwrap();
        assert_eq!(placed.status, OrderStatus::Acked);
    }
    cancelled.unwrap().unwrap();

    let sent: Vec<String> = mock.requests()[sent_before..]
        .iter()
        .map(|r| {
            let b = r.body_json().unwrap();
            match r.route() {
                "/info" => b["type"].as_str().unwrap().to_string(),
                _ => b["action"]["type"].as_str().unwrap().to_string(),
            }
        })
        .collect();
    assert_eq!(
        sent,
        [
            "l2Book",
            "cancelByCloid",
            "order",
            "order",
            "l2Book",
            "candleSnapshot"
        ],
        "the read in flight, then High, Medium, Low"
    );
    assert_eq!(mock.order(resting.as_str()).unwrap().status, "canceled");
}

#[actix::test]
async fn when_the_venues_rate_limit_is_the_bottleneck_the_cancel_still_goes_first() {
    // Paused time (the limiter reads tokio's clock): the window cannot pass while the
    // calls below are still being queued, however busy the machine is.
    tokio::time::pause();
    let venue = Arc::new(TestVenue::limited(Duration::from_millis(200)));
    // Plenty of slots: only the venue's limit holds calls back.
    let addr = Connector::with_queue(venue.clone(), &queue(16)).start();
    addr.send(quote()).await.unwrap().unwrap();
    assert!(venue.saturated(), "the first read used the whole window");
    // The next read goes into the venue and waits in its limiter for the window to pass.
    let first = actix::spawn(addr.send(quote()));
    until("the second read enters the venue", || {
        venue.entered.load(Ordering::SeqCst) == 2
    })
    .await;
    reads_orders_then_cancel(&addr).await;
    first.await.unwrap().unwrap().unwrap();
    assert_eq!(
        venue.labels(),
        ["quote", "quote", "cancel", "place", "place", "quote", "candles"]
    );
    // Inside the venue each call waited at its own priority.
    let seen = venue.log.lock().clone();
    assert_eq!(seen[2].1, Priority::High);
    assert_eq!(seen[3].1, Priority::Medium);
    assert_eq!(seen[6].1, Priority::Low);
}

#[actix::test]
async fn a_full_level_is_refused_at_once_and_other_levels_still_pass() {
    // Paused time: "at once" means before tokio's clock moves at all, and the first read's
    // latency cannot end while the queue is being filled.
    tokio::time::pause();
    let recorder = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let venue = Arc::new(TestVenue::new(Duration::from_millis(300)));
    let bounds = QueueConfig { low: 1, ..queue(1) };
    let addr = Connector::with_queue(venue.clone(), &bounds).start();
    let first = actix::spawn(addr.send(quote()));
    until("the first read is in flight", || {
        venue.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    let waiting = actix::spawn(addr.send(quote()));
    let refused = tokio::time::timeout(Duration::from_millis(100), addr.send(candles()))
        .await
        .expect("a full queue answers at once")
        .unwrap()
        .unwrap_err();
    let VenueError::Overloaded {
        venue: name,
        reason,
    } = &refused
    else {
        panic!("expected overloaded, got {refused}");
    };
    assert_eq!(name, "test");
    assert!(reason.contains("full at low priority"), "{reason}");
    assert_eq!(refused.label(), "overloaded");
    addr.send(cancel(ClientOrderId::generate()))
        .await
        .unwrap()
        .unwrap();
    first.await.unwrap().unwrap().unwrap();
    waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(venue.labels(), ["quote", "cancel", "quote"]);
    assert_eq!(
        recorder.get("orrery_queue_rejected_total{queue=test,priority=low}"),
        Some(1.0)
    );
    assert_eq!(
        recorder
            .get("orrery_exchange_requests_total{venue=test,endpoint=candles,outcome=overloaded}"),
        Some(1.0)
    );
    // Depth and wait time per level, labelled with the venue's name.
    assert_eq!(
        recorder.get("orrery_queue_depth{queue=test,priority=low}"),
        Some(0.0)
    );
    assert_eq!(
        recorder.get("orrery_queue_wait_seconds{queue=test,priority=low}"),
        Some(2.0)
    );
    assert_eq!(
        recorder.get("orrery_queue_wait_seconds{queue=test,priority=high}"),
        Some(1.0)
    );
}

/// Position of the one read among `cancels` cancels queued right after it, at a venue
/// that takes one call at a time.
async fn position_of_read_among_cancels(aging_step: Option<Duration>, cancels: usize) -> usize {
    let venue = Arc::new(TestVenue::new(Duration::from_millis(40)));
    let bounds = QueueConfig {
        aging_step,
        ..queue(1)
    };
    let addr = Connector::with_queue(venue.clone(), &bounds).start();
    let first = actix::spawn(addr.send(cancel(ClientOrderId::generate())));
    until("the first cancel is in flight", || {
        venue.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    let read = addr.send(quote());
    let rest = join_all((0..cancels).map(|_| addr.send(cancel(ClientOrderId::generate()))));
    let (read, rest) = futures::join!(read, rest);
    read.unwrap().unwrap();
    assert!(rest.into_iter().all(|r| r.unwrap().is_ok()));
    first.await.unwrap().unwrap().unwrap();
    let labels = venue.labels();
    labels.iter().position(|l| *l == "quote").unwrap()
}

#[actix::test]
async fn aging_lets_a_read_through_a_stream_of_cancels() {
    // Fewer than the mailbox holds (16), so every call is queued at once.
    let cancels = 12;
    let strict = position_of_read_among_cancels(None, cancels).await;
    assert_eq!(strict, cancels + 1, "without aging the read goes last");
    // With a 100 ms step the read is High after 200 ms (about five 40 ms calls) and then
    // older than every cancel.
    let aged = position_of_read_among_cancels(Some(Duration::from_millis(100)), cancels).await;
    assert!(
        aged <= 8,
        "the read went at position {aged} of {}",
        cancels + 2
    );
}

/// A state change still queued when its send-by instant (the sender's lease) passes is
/// answered "not sent" and never reaches the venue; a read is not bound by it.
#[actix::test]
async fn an_order_queued_past_its_send_by_instant_is_never_sent() {
    tokio::time::pause();
    let venue = Arc::new(TestVenue::new(Duration::ZERO));
    let addr = Connector::with_queue(venue.clone(), &queue(16)).start();
    let past = tokio::time::Instant::now();
    tokio::time::advance(Duration::from_millis(1)).await;
    let mut order = new_order(dec!(50000));
    order.send_by = Some(past);
    let answer = addr.send(order).await.unwrap();
    assert!(
        matches!(answer, Err(VenueError::NotSent { .. })),
        "{answer:?}"
    );
    let mut read = quote();
    read.send_by = Some(past);
    addr.send(read).await.unwrap().unwrap();
    assert_eq!(
        venue.labels(),
        ["quote"],
        "the order never reached the venue"
    );
}
