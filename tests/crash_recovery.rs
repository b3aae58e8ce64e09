//! SIGKILL in the middle of an order flow: after a restart every order the engine had
//! acknowledged is in the ledger as acknowledged, the venue and the ledger agree on every
//! order, and no order reached the venue twice.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use orrery::config::Config;
use orrery::engine::open_venue;
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::ledger::OrderLedger;
use orrery_actors::exchanges::{ClientOrderId, OrderStatus, Side};
use orrery_actors::store::Store;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
struct Ack {
    client_id: String,
    status: String,
    filled: Decimal,
    avg_price: Option<Decimal>,
}

fn send_orders(port: u16, stop: Arc<AtomicBool>, acks: Arc<Mutex<Vec<Ack>>>, worker: usize) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let side = if (i + worker).is_multiple_of(2) {
            "buy"
        } else {
            "sell"
        };
        let symbol = ["BTC", "ETH", "SOL"][(i + worker) % 3];
        let body = format!(
            r#"{{"venue":"paper","symbol":"{symbol}","side":"{side}","amount":{{"usd":"150"}},"pricing":"market","reduce_only":false,"origin":"crash-test"}}"#
        );
        match http_post_json(port, "/api/orders", &body) {
            Some((200, report)) => {
                let v: serde_json::Value = serde_json::from_str(&report).unwrap();
                acks.lock().unwrap().push(Ack {
                    client_id: v["client_id"].as_str().unwrap().to_string(),
                    status: v["status"].as_str().unwrap().to_string(),
                    filled: v["filled_size"].as_str().unwrap().parse().unwrap(),
                    avg_price: v["avg_fill_price"].as_str().map(|p| p.parse().unwrap()),
                });
            }
            // Refusals are fine (they are recorded, never sent); a cut connection is the kill.
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(20)),
        }
        i += 1;
    }
}

#[test]
fn sigkill_mid_order_flow_keeps_every_acknowledged_order_and_sends_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = test_config(dir.path(), port, "");
    // Only this test's orders: the trading agent is held back.
    let env = [("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h")];
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));

    for round in 0..6u64 {
        let mut engine = spawn_engine(&config_path, dir.path(), &[], &env);
        wait_for(Duration::from_secs(30), "the engine to serve", || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let (stop, acks) = (stop.clone(), acks.clone());
                std::thread::spawn(move || send_orders(port, stop, acks, w))
            })
            .collect();
        let before = acks.lock().unwrap().len();
        wait_for(
            Duration::from_secs(30),
            "some orders to be acknowledged",
            || (acks.lock().unwrap().len() >= before + 5).then_some(()),
        );
        // Kill at a varying point of the flow.
        std::thread::sleep(Duration::from_millis(37 * (round + 1)));
        signal(&engine, libc::SIGKILL);
        wait_exit(&mut engine, Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
    }

    // A clean start reconciles what the kills left open, then a clean stop.
    settle_and_stop(&config_path, dir.path(), port, &env);

    let acks = acks.lock().unwrap().clone();
    assert!(
        acks.len() >= 20,
        "the flow acknowledged only {} orders",
        acks.len()
    );
    let config = Config::load(Some(&config_path), Vec::new()).unwrap();
    let store = Store::open(&config.engine.data_dir).unwrap();
    let ledger = OrderLedger::open(&store, system_clock()).unwrap();
    let venue = open_venue(
        "paper",
        &config.exchanges.venues["paper"],
        &store,
        system_clock(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Every acknowledged order is in the ledger exactly as acknowledged: the answer is not
    // flushed before the reply, so after a kill reconciliation must restore it.
    for ack in &acks {
        let id = ClientOrderId::parse(&ack.client_id).unwrap();
        let entry = ledger
            .get(&id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged order {} lost", ack.client_id));
        assert_eq!(entry.status.as_str(), ack.status, "{}", ack.client_id);
        assert_eq!(entry.filled_size, ack.filled, "{}", ack.client_id);
        assert_eq!(entry.avg_fill_price, ack.avg_price, "{}", ack.client_id);
    }

    // The ledger and the venue agree on every order, and nothing is left in doubt.
    let mut net: BTreeMap<String, Decimal> = BTreeMap::new();
    let entries = ledger.all().unwrap();
    for entry in &entries {
        assert!(
            entry.status.is_terminal(),
            "{} left {:?}",
            entry.client_id,
            entry.status
        );
        let at_venue = rt
            .block_on(venue.query_order(&entry.request.symbol, &entry.client_id))
            .unwrap();
        match (entry.status, at_venue) {
            (OrderStatus::Rejected, None) => {}
            (OrderStatus::Rejected, Some(o)) => {
                assert_eq!(
                    o.status,
                    OrderStatus::Rejected,
                    "{} rejected in the ledger but {:?} at the venue",
                    entry.client_id,
                    o.status
                )
            }
            (status, Some(o)) => {
                assert_eq!(
                    (status, entry.filled_size),
                    (o.status, o.filled_size),
                    "{}",
                    entry.client_id
                );
            }
            (status, None) => panic!(
                "{} is {status:?} in the ledger but unknown to the venue",
                entry.client_id
            ),
        }
        let signed = match entry.request.side {
            Side::Buy => entry.filled_size,
            Side::Sell => -entry.filled_size,
        };
        *net.entry(entry.request.symbol.clone()).or_default() += signed;
    }
    let settled_after_kill = entries
        .iter()
        .filter(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.contains("never accepted"))
                || e.updated_ms - e.created_ms > 1_000
        })
        .count();
    eprintln!(
        "crash test: {} acknowledged, {} in the ledger, {} settled by reconciliation after a kill",
        acks.len(),
        entries.len(),
        settled_after_kill
    );
    // None twice: the venue's positions are exactly the ledger's fills.
    let positions = rt.block_on(venue.positions()).unwrap();
    for (symbol, expected) in &net {
        let held = positions
            .iter()
            .find(|p| &p.symbol == symbol)
            .map(|p| p.size)
            .unwrap_or_default();
        assert_eq!(
            held, *expected,
            "{symbol}: venue holds {held}, ledger fills sum to {expected}"
        );
    }
    assert_eq!(
        positions
            .iter()
            .filter(|p| !p.size.is_zero() && !net.contains_key(&p.symbol))
            .count(),
        0
    );
}
