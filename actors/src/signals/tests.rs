//! The signal bus inside the crate: validation, TTL expiry on the injectable clock, the
//! count bound, reload after a restart, subscriber filtering, and subscribers that are
//! gone or full (they never hold the bus).

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, Context, Handler, Message};
use parking_lot::Mutex;
use rust_decimal_macros::dec;

use super::*;
use crate::clock::{ManualClock, SharedClock};
use crate::store::Store;

const T0: i64 = 1_763_000_000_000;

fn input(symbol: &str, kind: &str) -> SignalInput {
    SignalInput {
        source: "news-bot".into(),
        symbol: symbol.into(),
        kind: kind.into(),
        value: dec!(0.4),
        direction: "long".into(),
        confidence: 0.7,
        evidence: "headline".into(),
        ttl: None,
    }
}

fn bus_on(store: &Store, config: SignalsConfig, clock: &Arc<ManualClock>) -> Addr<SignalBus> {
    let shared: SharedClock = clock.clone();
    SignalBus::open(store, config, shared).unwrap().start()
}

async fn publish(bus: &Addr<SignalBus>, i: SignalInput) -> Signal {
    bus.send(Publish(i)).await.unwrap().unwrap()
}

async fn all(bus: &Addr<SignalBus>) -> Vec<Signal> {
    bus.send(Recent(SignalFilter::default())).await.unwrap()
}

#[test]
fn publish_validation_names_the_field_at_fault() {
    let ttl = Duration::from_secs(3600);
    let refused = |f: &dyn Fn(&mut SignalInput)| {
        let mut i = input("BTC", "sentiment");
        f(&mut i);
        i.validate(T0, ttl).unwrap_err()
    };
    let e = refused(&|i| i.kind = "gossip".into());
    assert_eq!(e.field(), "kind");
    assert!(e.to_string().contains("open_interest"), "{e}");
    assert_eq!(refused(&|i| i.kind = "other:".into()).field(), "kind");
    assert_eq!(
        refused(&|i| i.kind = "other:Has Space".into()).field(),
        "kind"
    );
    assert_eq!(refused(&|i| i.confidence = 1.5).field(), "confidence");
    assert_eq!(refused(&|i| i.confidence = -0.1).field(), "confidence");
    assert_eq!(refused(&|i| i.confidence = f64::NAN).field(), "confidence");
    assert_eq!(refused(&|i| i.symbol = "  ".into()).field(), "symbol");
    assert_eq!(refused(&|i| i.symbol = "BTC USD".into()).field(), "symbol");
    assert_eq!(refused(&|i| i.source = String::new()).field(), "source");
    assert_eq!(refused(&|i| i.direction = "up".into()).field(), "direction");
    assert_eq!(refused(&|i| i.ttl = Some(Duration::ZERO)).field(), "ttl");
    assert_eq!(
        refused(&|i| i.ttl = Some(signal::MAX_TTL + Duration::from_secs(1))).field(),
        "ttl"
    );
    let e = refused(&|i| i.evidence = "x".repeat(signal::MAX_EVIDENCE_CHARS + 1));
    assert_eq!(e.field(), "evidence");

    // Accepted: the symbol upper-cased, the default TTL applied, `other:<name>` kept.
    let mut i = input(" btc ", "other:whale_alert");
    i.evidence = "é".repeat(signal::MAX_EVIDENCE_CHARS);
    let s = i.validate(T0, ttl).unwrap();
    assert_eq!(s.symbol, "BTC");
    assert_eq!(s.kind, SignalKind::Other("whale_alert".into()));
    assert_eq!(s.kind.to_string(), "other:whale_alert");
    assert_eq!((s.time_ms, s.ttl_ms), (T0, 3_600_000));
    assert_eq!(s.expires_ms(), T0 + 3_600_000);
    assert!(!s.is_expired(T0 + 3_599_999) && s.is_expired(T0 + 3_600_000));
    assert_eq!(
        "Open-Interest".parse::<SignalKind>(),
        Ok(SignalKind::OpenInterest)
    );
    // The kind round-trips through JSON as its wire name.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["kind"], "other:whale_alert");
    assert_eq!(serde_json::from_value::<Signal>(json).unwrap(), s);
}

#[test]
fn the_config_section_is_validated_with_key_names() {
    let mut issues = crate::validate::Issues::default();
    SignalsConfig::default().validate("signals", &mut issues);
    assert!(issues.is_empty(), "{:?}", issues.0);
    let bad = SignalsConfig {
        max_kept: 0,
        default_ttl: Duration::ZERO,
        sweep_interval: Duration::from_millis(10),
    };
    bad.validate("signals", &mut issues);
    let keys: Vec<_> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "signals.max_kept",
            "signals.default_ttl",
            "signals.sweep_interval"
        ]
    );
}

#[actix::test]
async fn signals_expire_by_ttl_on_the_injected_clock_in_memory_and_on_disk() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let config = SignalsConfig {
        sweep_interval: Duration::ZERO,
        ..Default::default()
    };
    let bus = bus_on(&store, config, &clock);
    let mut short = input("BTC", "sentiment");
    short.ttl = Some(Duration::from_secs(10));
    publish(&bus, short).await;
    publish(&bus, input("ETH", "funding")).await;
    assert_eq!(all(&bus).await.len(), 2);

    clock.advance(9_999);
    assert_eq!(all(&bus).await.len(), 2);
    clock.advance(1);
    let left = all(&bus).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].symbol, "ETH");
    let stats = bus.send(GetStats).await.unwrap();
    assert_eq!((stats.kept, stats.expired), (1, 1));
    // The sweep at read removed it from sled too.
    let disk = SignalStore::open(&store).unwrap();
    let on_disk = disk.list(&SignalFilter::default(), T0).unwrap();
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
}

#[actix::test]
async fn the_bus_keeps_at_most_max_kept_signals_evicting_the_oldest() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let config = SignalsConfig {
        max_kept: 3,
        ..Default::default()
    };
    let bus = bus_on(&store, config, &clock);
    for i in 0..5 {
        let mut s = input("BTC", "sentiment");
        s.evidence = format!("n{i}");
        publish(&bus, s).await;
        clock.advance(1);
    }
    let kept: Vec<_> = all(&bus).await.into_iter().map(|s| s.evidence).collect();
    assert_eq!(kept, ["n4", "n3", "n2"], "newest first");
    assert_eq!(bus.send(GetStats).await.unwrap().evicted, 2);
    let disk = SignalStore::open(&store).unwrap();
    assert_eq!(
        disk.list(&SignalFilter::default(), T0 + 10).unwrap().len(),
        3
    );
}

#[actix::test]
async fn a_restarted_bus_reloads_unexpired_signals_and_drops_expired_ones() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let bus = bus_on(&store, SignalsConfig::default(), &clock);
    let mut short = input("BTC", "whale");
    short.ttl = Some(Duration::from_secs(5));
    publish(&bus, short).await;
    let long = publish(&bus, input("BTC", "news")).await;
    bus.send(StopBus).await.unwrap();

    clock.advance(5_000);
    let again = bus_on(&store, SignalsConfig::default(), &clock);
    assert_eq!(all(&again).await, vec![long]);
    let stats = again.send(GetStats).await.unwrap();
    assert_eq!((stats.kept, stats.expired), (1, 1));
}

#[actix::test]
async fn recent_filters_by_kind_symbol_since_source_and_limit() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let bus = bus_on(&store, SignalsConfig::default(), &clock);
    for (sym, kind, source) in [
        ("BTC", "sentiment", "a"),
        ("ETH", "sentiment", "a"),
        ("BTC", "funding", "b"),
        ("BTC", "sentiment", "b"),
    ] {
        let mut i = input(sym, kind);
        i.source = source.into();
        publish(&bus, i).await;
        clock.advance(1_000);
    }
    let got = |f: SignalFilter| {
        let bus = bus.clone();
        async move {
            bus.send(Recent(f))
                .await
                .unwrap()
                .into_iter()
                .map(|s| format!("{}/{}/{}", s.symbol, s.kind, s.source))
                .collect::<Vec<_>>()
        }
    };
    let sentiment = vec![SignalKind::Sentiment];
    assert_eq!(
        got(SignalFilter {
            kinds: sentiment.clone(),
            symbol: Some("btc".into()),
            ..Default::default()
        })
        .await,
        ["BTC/sentiment/b", "BTC/sentiment/a"]
    );
    assert_eq!(
        got(SignalFilter {
            kinds: sentiment.clone(),
            symbol: Some("BTC".into()),
            exclude_source: Some("b".into()),
            ..Default::default()
        })
        .await,
        ["BTC/sentiment/a"]
    );
    assert_eq!(
        got(SignalFilter {
            since_ms: Some(T0 + 2_000),
            ..Default::default()
        })
        .await,
        ["BTC/sentiment/b", "BTC/funding/b"]
    );
    assert_eq!(
        got(SignalFilter {
            limit: 1,
            ..Default::default()
        })
        .await,
        ["BTC/sentiment/b"]
    );
}

/// A subscriber that records what it is delivered; `Block` parks its thread until told.
struct Collector {
    got: Arc<Mutex<Vec<String>>>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Collector {
    type Result = ();
    fn handle(&mut self, msg: Delivery, _: &mut Context<Self>) {
        let s = &msg.0;
        self.got.lock().push(format!("{}/{}", s.symbol, s.kind));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Block {
    entered: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl Handler<Block> for Collector {
    type Result = ();
    fn handle(&mut self, msg: Block, _: &mut Context<Self>) {
        let _ = msg.entered.send(());
        let _ = msg.release.recv();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for Collector {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Stops the bus actor (a test's stand-in for the supervisor stopping it).
#[derive(Message)]
#[rtype(result = "()")]
struct StopBus;

impl Handler<StopBus> for SignalBus {
    type Result = ();
    fn handle(&mut self, _: StopBus, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[actix::test]
async fn subscribers_get_only_their_kinds_and_symbols_and_a_stopped_one_is_dropped() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let bus = bus_on(&store, SignalsConfig::default(), &clock);
    let got = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector { got: got.clone() }.start();
    let everything = Arc::new(Mutex::new(Vec::new()));
    let all_kinds = Collector {
        got: everything.clone(),
    }
    .start();
    bus.send(Subscribe {
        kinds: vec![SignalKind::Sentiment, SignalKind::Whale],
        symbols: vec!["btc".into()],
        recipient: collector.clone().recipient(),
    })
    .await
    .unwrap();
    bus.send(Subscribe {
        kinds: vec![],
        symbols: vec![],
        recipient: all_kinds.clone().recipient(),
    })
    .await
    .unwrap();
    publish(&bus, input("BTC", "sentiment")).await;
    publish(&bus, input("ETH", "sentiment")).await;
    publish(&bus, input("BTC", "funding")).await;
    publish(&bus, input("BTC", "whale")).await;
    // Deliveries were enqueued before the publish answered; a later message to the
    // collector is handled after them (one mailbox, in order).
    collector.send(Stop).await.unwrap();
    assert_eq!(*got.lock(), ["BTC/sentiment", "BTC/whale"]);
    poll_until("the collector to stop", || !collector.connected()).await;

    publish(&bus, input("BTC", "sentiment")).await;
    let stats = bus.send(GetStats).await.unwrap();
    assert_eq!(stats.subscribers, 1, "the stopped subscriber was dropped");
    assert_eq!(stats.dropped_subscriber_gone, 1);
    assert_eq!(stats.delivered, 2 + 5);
    poll_until("every delivery to the catch-all", || {
        everything.lock().len() == 5
    })
    .await;
}

#[actix::test]
async fn a_full_subscriber_mailbox_drops_deliveries_and_never_blocks_the_bus() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let bus = bus_on(&store, SignalsConfig::default(), &clock);
    let arbiter = actix::Arbiter::new();
    let got = Arc::new(Mutex::new(Vec::new()));
    let slow = {
        let got = got.clone();
        Collector::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(1);
            Collector { got }
        })
    };
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    slow.do_send(Block {
        entered: entered_tx,
        release: release_rx,
    });
    poll_until("the subscriber to block", || entered.try_recv().is_ok()).await;
    bus.send(Subscribe {
        kinds: vec![],
        symbols: vec![],
        recipient: slow.clone().recipient(),
    })
    .await
    .unwrap();

    for _ in 0..20 {
        publish(&bus, input("BTC", "sentiment")).await;
    }
    // The bus answered every publish and still answers reads.
    assert_eq!(all(&bus).await.len(), 20);
    let stats = bus.send(GetStats).await.unwrap();
    assert!(stats.dropped_subscriber_full > 0, "{stats:?}");
    assert_eq!(stats.delivered + stats.dropped_subscriber_full, 20);
    assert_eq!(stats.subscribers, 1, "a full subscriber stays subscribed");

    release.send(()).unwrap();
    let delivered = stats.delivered as usize;
    poll_until("the slow subscriber to catch up", || {
        got.lock().len() == delivered
    })
    .await;
    arbiter.stop();
}

#[test]
fn only_buy_and_sell_verdicts_become_technical_signals() {
    let ttl = Duration::from_secs(30);
    let reason = "x".repeat(5000);
    let verdict = |action: Option<&str>| {
        verdict_signal("trend", "ETH", action, Some(0.65), Some(&reason), ttl)
    };
    let s = verdict(Some("SELL"))
        .unwrap()
        .validate(T0, Duration::from_secs(60))
        .unwrap();
    assert_eq!(s.kind, SignalKind::Technical);
    assert_eq!((s.source.as_str(), s.symbol.as_str()), ("trend", "ETH"));
    assert_eq!(s.direction, Direction::Short);
    assert_eq!(s.value, dec!(-0.65));
    assert_eq!(s.ttl_ms, 30_000);
    assert_eq!(s.evidence.chars().count(), signal::MAX_EVIDENCE_CHARS);
    assert_eq!(verdict(Some("BUY")).unwrap().direction, "long");
    assert!(verdict(Some("NOTHING")).is_none());
    assert!(verdict(None).is_none());
    assert!(verdict_signal("trend", "ETH", Some("BUY"), None, None, ttl).is_none());
    // A bus that is not running loses the signal without waiting.
    assert!(!offer(&Default::default(), verdict(Some("BUY")).unwrap()));
}

#[actix::test]
async fn an_offer_is_published_like_a_publish_and_a_bad_one_keeps_nothing() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let bus = bus_on(&store, SignalsConfig::default(), &clock);
    let mut bad = input("BTC", "sentiment");
    bad.confidence = 3.0;
    bus.send(Offer(bad)).await.unwrap();
    bus.send(Offer(input("BTC", "news"))).await.unwrap();
    let kept = all(&bus).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].kind, SignalKind::News);
    assert_eq!(bus.send(GetStats).await.unwrap().published, 1);
}
