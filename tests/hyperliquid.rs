//! The engine process against the mock Hyperliquid (in this test process, on loopback):
//! `orrery order` signs with the key from the environment, and SIGKILL at random points of
//! 200 orders leaves the ledger and the venue in exact agreement, each cloid sent at most
//! once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hl_mock::assert_ledger_equals_mock;
use common::*;
use orrery::config::Config;
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::hyperliquid::actions::Action;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::signing::{
    recover_l1_signer_expiring, Address, Signature,
};
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::exchanges::ledger::OrderLedger;
use orrery_actors::exchanges::ClientOrderId;
use orrery_actors::store::Store;
use rust_decimal::Decimal;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const KEY_ENV: (&str, &str) = ("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY);
/// Holds the shipped trading agent back: only this test's orders.
const QUIET: (&str, &str) = ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h");

fn wallet() -> Address {
    PrivateKey::from_hex(KEY).unwrap().address()
}

fn hl_section(mock: &MockHyperliquid) -> String {
    hl_section_with_timeout(mock, "3s")
}

fn hl_section_with_timeout(mock: &MockHyperliquid, timeout: &str) -> String {
    common::hl_mock::hl_venue_section(&mock.url(), &wallet().to_string(), timeout)
}

fn signer_of(body: &serde_json::Value) -> Address {
    let action: Action = serde_json::from_value(body["action"].clone()).unwrap();
    let signature: Signature = serde_json::from_value(body["signature"].clone()).unwrap();
    // Orders carry their deadline (`expiresAfter`), which is part of the signed hash.
    recover_l1_signer_expiring(
        &action,
        action.label(),
        body["nonce"].as_u64().unwrap(),
        None,
        body["expiresAfter"].as_u64(),
        Network::Testnet,
        &signature,
    )
    .unwrap()
}

#[test]
fn order_cli_signs_with_the_key_from_the_environment() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &hl_section(&mock));
    let out = Command::new(BIN)
        .args(["order", "--config", config.to_str().unwrap()])
        .args(["--venue", "hyperliquid", "--symbol", "BTC", "--side", "buy"])
        .args(["--usd", "100", "--json"])
        .env_remove("ORRERY_CONFIG")
        .env_remove("HYPER_LIQUID_KEY")
        .env(KEY_ENV.0, KEY_ENV.1)
        .env(QUIET.0, QUIET.1)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(&KEY[2..]) && !stderr.contains(&KEY[2..]));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["status"], "filled", "{report}");
    let sent = mock.order_actions();
    assert_eq!(sent.len(), 1);
    assert_eq!(signer_of(&sent[0]), wallet());
    let cloid = sent[0]["action"]["orders"][0]["c"].as_str().unwrap();
    assert_eq!(
        ClientOrderId::parse(cloid).unwrap().as_str(),
        report["client_id"].as_str().unwrap()
    );
    // 100 USD at the ask 60001, 5 size decimals.
    assert_eq!(mock.position("BTC"), "0.00166".parse::<Decimal>().unwrap());

    // Without the key the same order fails with an auth error naming the variable.
    let out = Command::new(BIN)
        .args(["order", "--config", config.to_str().unwrap()])
        .args(["--venue", "hyperliquid", "--symbol", "BTC", "--side", "buy"])
        .args(["--usd", "100", "--json"])
        .env_remove("ORRERY_CONFIG")
        .env_remove("HYPER_LIQUID_KEY")
        .env_remove(KEY_ENV.0)
        .env(QUIET.0, QUIET.1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("HYPER_LIQUID_ETH_PRIVATE_KEY"), "{text}");
    assert_eq!(mock.order_actions().len(), 1);
}

#[derive(Debug, Clone)]
struct Ack {
    client_id: String,
    status: String,
    filled: Decimal,
    avg_price: Option<Decimal>,
}

const TOTAL_ORDERS: usize = 200;

fn send_orders(
    port: u16,
    total: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    acks: Arc<Mutex<Vec<Ack>>>,
    worker: usize,
) {
    let mut i = 0usize;
    // `sent` counts orders the engine acknowledged; one cut by a kill, or refused while
    // the restarted engine was not ready yet (how often depends on the machine's load),
    // is retried as a new order (new client id), as an operator would. So the flow always
    // reaches `total` acknowledged orders, however slow the machine.
    while !stop.load(Ordering::SeqCst) && sent.load(Ordering::SeqCst) < total {
        let side = if (i + worker).is_multiple_of(2) {
            "buy"
        } else {
            "sell"
        };
        let symbol = ["BTC", "ETH", "SOL"][(i + worker) % 3];
        let body = format!(
            r#"{{"venue":"hyperliquid","symbol":"{symbol}","side":"{side}","amount":{{"usd":"150"}},"pricing":"market","reduce_only":false,"origin":"crash-test"}}"#
        );
        match http_post_json(port, "/api/orders", &body) {
            Some((200, report)) => {
                sent.fetch_add(1, Ordering::SeqCst);
                let v: serde_json::Value = serde_json::from_str(&report).unwrap();
                acks.lock().unwrap().push(Ack {
                    client_id: v["client_id"].as_str().unwrap().to_string(),
                    status: v["status"].as_str().unwrap().to_string(),
                    filled: v["filled_size"].as_str().unwrap().parse().unwrap(),
                    avg_price: v["avg_fill_price"].as_str().map(|p| p.parse().unwrap()),
                });
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
            // The kill cut this one: it may or may not have been sent.
            None => std::thread::sleep(Duration::from_millis(20)),
        }
        i += 1;
    }
}

/// A pseudo-random delay in `0..max_ms` (no RNG crate in this test's dependencies).
fn jitter_ms(max_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos.wrapping_mul(6364136223846793005) >> 33) % max_ms
}

#[test]
fn sigkill_during_200_orders_leaves_ledger_and_venue_in_exact_agreement() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = test_config(dir.path(), port, &hl_section(&mock));
    let env = [QUIET, KEY_ENV];
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut kills = 0;

    let mut rounds = 0;
    while sent.load(Ordering::SeqCst) < TOTAL_ORDERS {
        rounds += 1;
        // Each round acknowledges orders unless the engine refuses everything; a bound
        // on rounds (not on time) turns that into a failure instead of a hang.
        assert!(
            rounds <= 500,
            "only {} of {TOTAL_ORDERS} orders acknowledged in 500 rounds",
            sent.load(Ordering::SeqCst)
        );
        let mut engine = spawn_engine(&config_path, dir.path(), &[], &env);
        wait_for(Duration::from_secs(30), "the engine to serve", || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let (stop, sent, acks) = (stop.clone(), sent.clone(), acks.clone());
                std::thread::spawn(move || send_orders(port, TOTAL_ORDERS, stop, sent, acks, w))
            })
            .collect();
        // Kill at a random point of the flow (or let the last orders finish).
        std::thread::sleep(Duration::from_millis(100 + jitter_ms(400)));
        if sent.load(Ordering::SeqCst) < TOTAL_ORDERS {
            signal(&engine, libc::SIGKILL);
            kills += 1;
        } else {
            for w in workers.iter() {
                while !w.is_finished() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            signal(&engine, libc::SIGKILL);
        }
        wait_exit(&mut engine, Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
    }

    // A clean start reconciles what the kills left open, then a clean stop.
    settle_and_stop(&config_path, dir.path(), port, &env);

    let acks = acks.lock().unwrap().clone();
    assert!(kills >= 3, "only {kills} kills");
    let config = Config::load(Some(&config_path), Vec::new()).unwrap();
    let store = Store::open(&config.engine.data_dir).unwrap();
    let ledger = OrderLedger::open(&store, system_clock()).unwrap();

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

    // Each cloid reached the venue at most once.
    let mut sends: BTreeMap<String, usize> = BTreeMap::new();
    for body in mock.order_actions() {
        for o in body["action"]["orders"].as_array().unwrap() {
            *sends
                .entry(o["c"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = sends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");

    // The ledger and the venue agree exactly: nothing missing on either side.
    let entries: Vec<_> = ledger
        .all()
        .unwrap()
        .into_iter()
        .filter(|e| e.venue == "hyperliquid")
        .collect();
    for entry in &entries {
        assert!(
            entry.status.is_terminal(),
            "{} left {:?}",
            entry.client_id,
            entry.status
        );
    }
    let never_sent = assert_ledger_equals_mock(&mock, &entries);
    eprintln!(
        "hyperliquid crash test: {kills} kills, {} acknowledged, {} in the ledger, {} at the venue, {never_sent} never sent",
        acks.len(),
        entries.len(),
        mock.orders().len()
    );
}

/// The example's text with its `include` made absolute, for `load_str`.
fn example_text(path: &std::path::Path) -> String {
    let default = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    std::fs::read_to_string(path).unwrap().replace(
        "include = [\"../default.toml\"]",
        &format!("include = [{:?}]", default.display().to_string()),
    )
}

/// Checks the ledger against the venue after the last settling run: every entry final,
/// each exactly as the venue has it (an entry the venue does not know is rejected, never
/// sent), every venue order in the ledger, each cloid sent at most once, and every
/// acknowledged order as acknowledged. Returns (entries, never sent).
fn assert_ledger_equals_venue(
    mock: &MockHyperliquid,
    config_path: &std::path::Path,
    acks: &[Ack],
) -> (usize, usize) {
    let config = Config::load(Some(config_path), Vec::new()).unwrap();
    let store = Store::open(&config.engine.data_dir).unwrap();
    let ledger = OrderLedger::open(&store, system_clock()).unwrap();
    for ack in acks {
        let id = ClientOrderId::parse(&ack.client_id).unwrap();
        let entry = ledger
            .get(&id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged order {} lost", ack.client_id));
        assert_eq!(entry.status.as_str(), ack.status, "{}", ack.client_id);
        assert_eq!(entry.filled_size, ack.filled, "{}", ack.client_id);
    }
    let mut sends: BTreeMap<String, usize> = BTreeMap::new();
    for body in mock.order_actions() {
        for o in body["action"]["orders"].as_array().unwrap() {
            *sends
                .entry(o["c"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = sends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let entries: Vec<_> = ledger
        .all()
        .unwrap()
        .into_iter()
        .filter(|e| e.venue == "hyperliquid")
        .collect();
    for entry in &entries {
        assert!(
            entry.status.is_terminal(),
            "{} left {:?}",
            entry.client_id,
            entry.status
        );
        let filled_at_venue = mock
            .order(&entry.client_id.to_hex128())
            .is_some_and(|o| o.status == "filled");
        if filled_at_venue {
            assert!(
                entry.reason.is_none(),
                "{}: stale reason {:?}",
                entry.client_id,
                entry.reason
            );
        }
    }
    let never_sent = assert_ledger_equals_mock(mock, &entries);
    (entries.len(), never_sent)
}

const LAGGED_ORDERS: usize = 12;

/// Issue 9 item 0: a busy venue applies orders 0.5–3 s after they arrive. The engine is
/// killed while an order waits in the venue's queue (so after the kill the venue applies
/// an order the ledger holds as a bare intent), restarted, and so on; at the end the
/// ledger equals the venue: no order the venue filled is recorded rejected.
#[test]
fn sigkill_while_the_venue_applies_orders_late_leaves_ledger_and_venue_equal() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    mock.set_apply_lag(Some((
        Duration::from_millis(500),
        Duration::from_millis(3_000),
    )));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = test_config(dir.path(), port, &hl_section_with_timeout(&mock, "5s"));
    let env = [QUIET, KEY_ENV];
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut kills = 0;
    while sent.load(Ordering::SeqCst) < LAGGED_ORDERS {
        let mut engine = spawn_engine(&config_path, dir.path(), &[], &env);
        wait_for(Duration::from_secs(30), "the engine to serve", || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (stop, sent, acks) = (stop.clone(), sent.clone(), acks.clone());
                std::thread::spawn(move || send_orders(port, LAGGED_ORDERS, stop, sent, acks, w))
            })
            .collect();
        if kills < 4 {
            // Kill while an order sits in the venue's queue, a little into its lag.
            wait_for(
                Duration::from_secs(20),
                "an order in the venue's queue",
                || (mock.pending_actions() > 0).then_some(()),
            );
            std::thread::sleep(Duration::from_millis(jitter_ms(300)));
            signal(&engine, libc::SIGKILL);
            kills += 1;
        } else {
            for w in workers.iter() {
                while !w.is_finished() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            signal(&engine, libc::SIGKILL);
        }
        wait_exit(&mut engine, Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
    }
    settle_and_stop(&config_path, dir.path(), port, &env);
    assert_eq!(mock.pending_actions(), 0);

    let acks = acks.lock().unwrap().clone();
    assert_eq!(kills, 4);
    // Orders the venue applied that no client heard about: each was in the venue's
    // queue when the engine died (at least the one of each kill that had not expired).
    let acked: BTreeSet<String> = acks
        .iter()
        .map(|a| ClientOrderId::parse(&a.client_id).unwrap().to_hex128())
        .collect();
    let applied_unheard = mock
        .orders()
        .iter()
        .filter(|o| !acked.contains(o.cloid.as_deref().unwrap()))
        .count();
    assert!(applied_unheard >= 1, "no order was applied after a kill");
    let (entries, never_sent) = assert_ledger_equals_venue(&mock, &config_path, &acks);

    // The log tells the story at info: transitions, fills, and what each start restored.
    let log = plain_engine_logs(dir.path());
    for line in [
        "order unknown",
        "order filled",
        "from=unknown",
        "reconciliation venue=hyperliquid first_pass=true",
        "fill venue=hyperliquid symbol=",
        "fee=",
    ] {
        assert!(log.contains(line), "no `{line}` in the engine logs:\n{log}");
    }
    eprintln!(
        "lagged hyperliquid crash test: {kills} kills, {} acknowledged, {entries} in the ledger, {} at the venue ({applied_unheard} applied after a kill), {never_sent} never sent",
        acks.len(),
        mock.orders().len()
    );
}

#[test]
fn example_config_loads_and_bad_values_name_their_keys() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/hyperliquid.toml");
    let c = Config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(c.exchanges.venues["hyperliquid"].kind(), "hyperliquid");
    let text = example_text(&path)
        .replace(
            "wallet_address = \"0x0000000000000000000000000000000000000000\"",
            "wallet_address = \"0xabc\"\nbase_url = \"ftp://nowhere\"",
        )
        .replace("slippage = 0.05", "slippage = 2");
    let err = Config::load_str(&text, "example", Vec::new())
        .unwrap_err()
        .to_string();
    for key in ["wallet_address", "base_url", "slippage"] {
        assert!(
            err.contains(&format!("exchanges.venues.hyperliquid.{key}")),
            "{key}: {err}"
        );
    }
    // The key is never a config field.
    let with_key = format!(
        "{}\nprivate_key = \"{KEY}\"\n",
        example_text(&path)
            .split("\n[exchanges.venues.hyperliquid.resilience]")
            .next()
            .unwrap()
    );
    let err = Config::load_str(&with_key, "example", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("private_key") && !err.contains(&KEY[2..]),
        "{err}"
    );
}
