//! The Binance USDⓈ-M futures venue through the real binary: `orrery order` (market,
//! reduce-only, stop-market), `orrery market funding` / `open-interest` and their API
//! routes, the shipped example under `--paper`, and a SIGKILLed engine that restarts
//! without losing or doubling an order. The mock futures exchange runs in this test
//! process, the engine in a child process with the keys in its environment.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use orrery::config::Config;
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::binance_futures::mock::{
    MockBinanceFutures, MOCK_API_KEY, MOCK_API_SECRET,
};
use orrery_actors::exchanges::binance_futures::{API_KEY_ENV, API_SECRET_ENV};
use orrery_actors::exchanges::ledger::OrderLedger;
use orrery_actors::exchanges::ClientOrderId;
use orrery_actors::store::Store;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const KEYS: [(&str, &str); 2] = [
    (API_KEY_ENV, MOCK_API_KEY),
    (API_SECRET_ENV, MOCK_API_SECRET),
];

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .envs(KEYS)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn section(mock: &MockBinanceFutures) -> String {
    format!(
        "\n[exchanges.venues.bnf]\nkind = \"binance_futures\"\nbase_url = {:?}\nsymbols = [\"BTC\"]\nrequest_timeout = \"5s\"\nstreams = false\n",
        mock.url()
    )
}

fn order(cfg: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "order", "--config", cfg, "--venue", "bnf", "--symbol", "BTC", "--json",
    ];
    args.extend_from_slice(extra);
    let out = cli(&args);
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

#[test]
fn orders_on_binance_futures_market_reduce_only_and_stop_market() {
    let mock = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &section(&mock));
    let cfg = config.to_str().unwrap();

    // 100 USD at the ask 60010: 0.001 BTC (the lot), a long position.
    let bought = order(cfg, &["--side", "buy", "--usd", "100"]);
    assert_eq!(bought["status"], "filled", "{bought}");
    assert_eq!(bought["venue"], "bnf");
    let id = bought["client_id"].as_str().unwrap();
    assert_eq!(mock.order_posts(id), 1);
    assert_eq!(mock.position("BTCUSDT"), dec!(0.001));

    // A stop-market below the market, reduce-only: rests on Binance's Algo Order API.
    let stop = order(
        cfg,
        &[
            "--side",
            "sell",
            "--usd",
            "60",
            "--stop",
            "58000",
            "--reduce-only",
        ],
    );
    assert_eq!(stop["status"], "acked", "{stop}");
    let stop_id = stop["client_id"].as_str().unwrap();
    let sent = mock
        .requests()
        .into_iter()
        .find(|r| r.route() == "/fapi/v1/algoOrder" && r.method == "POST")
        .expect("the stop went to the Algo Order API");
    assert_eq!(sent.query("type"), Some("STOP_MARKET"));
    assert_eq!(sent.query("triggerPrice"), Some("58000"));
    assert_eq!(sent.query("reduceOnly"), Some("true"));
    assert_eq!(sent.query("clientAlgoId"), Some(stop_id));
    assert_eq!(mock.order_status(stop_id).as_deref(), Some("NEW"));

    // A reduce-only market sell closes the position, never more than it.
    let closed = order(cfg, &["--side", "sell", "--usd", "500", "--reduce-only"]);
    assert_eq!(closed["status"], "filled", "{closed}");
    assert_eq!(closed["size"], "0.001", "capped at the position: {closed}");
    let close_id = closed["client_id"].as_str().unwrap();
    let sent = mock
        .requests()
        .into_iter()
        .find(|r| r.route() == "/fapi/v1/order" && r.query("newClientOrderId") == Some(close_id))
        .unwrap();
    assert_eq!(sent.query("reduceOnly"), Some("true"));
    assert_eq!(mock.position("BTCUSDT"), Decimal::ZERO);

    // `orrery status` lists the futures venue and its orders.
    let status = json(&cli(&["status", "--config", cfg, "--json"]));
    let recent = status["recent_orders"].as_array().unwrap();
    for want in [id, stop_id, close_id] {
        assert!(
            recent
                .iter()
                .any(|o| o["client_id"] == want && o["venue"] == "bnf"),
            "{want} missing: {status}"
        );
    }
    assert!(
        status["venues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.to_string().contains("bnf")),
        "{status}"
    );

    // The keys never reach the data dir.
    let leaked = any_file_contains(&dir.path().join("data"), &[MOCK_API_SECRET, MOCK_API_KEY]);
    assert!(!leaked, "an API key or secret was written to the data dir");
}

#[test]
fn market_funding_and_open_interest_from_the_cli_and_the_api() {
    let mock = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, &section(&mock));
    let cfg = config.to_str().unwrap();

    // Public endpoints: no key is needed for them.
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("ORRERY_CONFIG")
            .env_remove(API_KEY_ENV)
            .env_remove(API_SECRET_ENV)
            .output()
            .unwrap()
    };
    let out = run(&[
        "market",
        "funding",
        "--config",
        cfg,
        "--venue",
        "bnf",
        "--symbol",
        "btc",
        "--history",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = json(&out);
    assert_eq!(f["symbol"], "BTC");
    assert_eq!(f["current"]["funding_rate"], "0.0001");
    assert_eq!(f["current"]["mark_price"], "60000");
    assert_eq!(f["history"].as_array().unwrap().len(), 3);
    let out = run(&[
        "market", "funding", "--config", cfg, "--venue", "bnf", "--symbol", "BTC",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bnf BTC: mark 60000") && text.contains("funding 0.0100%"),
        "{text}"
    );

    let out = run(&[
        "market",
        "open-interest",
        "--config",
        cfg,
        "--venue",
        "bnf",
        "--symbol",
        "BTC",
        "--period",
        "1h",
        "--limit",
        "4",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oi = json(&out);
    assert_eq!(oi["current"]["open_interest"], "81234.567");
    assert_eq!(oi["period"], "1h");
    assert_eq!(oi["history"].as_array().unwrap().len(), 4);

    // Bad input: named, exit 2, nothing asked of the venue.
    let before = mock.requests().len();
    let out = run(&[
        "market",
        "open-interest",
        "--config",
        cfg,
        "--venue",
        "bnf",
        "--symbol",
        "BTC",
        "--period",
        "3h",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("5m, 15m"));
    let out = run(&[
        "market", "funding", "--config", cfg, "--venue", "paper", "--symbol", "BTC",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binance_futures"));
    assert_eq!(mock.requests().len(), before);

    // The same reports from the control API of a running engine.
    let mut engine = spawn_engine(&config, dir.path(), &[], &KEYS);
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let (status, body) =
        http_get(port, "/api/market/funding?venue=bnf&symbol=BTC&history=2").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["current"]["funding_rate"], "0.0001");
    assert_eq!(v["history"].as_array().unwrap().len(), 2);
    let (status, body) = http_get(
        port,
        "/api/market/open-interest?venue=bnf&symbol=BTC&period=4h&limit=2",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["period"], "4h");
    let (status, body) = http_get(port, "/api/market/funding?venue=nope&symbol=BTC").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("unknown_venue"), "{body}");
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}

#[test]
fn the_shipped_binance_futures_example_is_valid_and_runs_on_paper() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/examples/binance-futures.toml");
    let c = Config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(
        c.exchanges.venues["binance_futures"].kind(),
        "binance_futures"
    );
    let err = Config::load_str(
        "[exchanges.venues.f]\nkind = \"binance_futures\"\nws_url = \"http://x\"\nleverag = 2\n",
        "t.toml",
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("leverag"), "{err}");

    // `orrery run --paper` with the example: its venue read once (here the mock, in place
    // of fapi.binance.com), then a paper venue trades.
    let mock = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{port}");
    let env = [
        (
            "ORRERY__EXCHANGES__VENUES__BINANCE_FUTURES__BASE_URL",
            mock.url(),
        ),
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__LISTEN", listen),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut engine = spawn_engine(&path, dir.path(), &["--paper"], &env);
    wait_for(Duration::from_secs(30), "the paper twin's /health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let (status, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"binance_futures","symbol":"BTC","side":"buy","usd":"1000"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"filled\""), "{body}");
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.route() != "/fapi/v1/order"),
        "--paper sends no order to the live venue"
    );
}

#[test]
fn missing_futures_keys_are_named_and_nothing_starts() {
    let mock = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &section(&mock));
    let out = Command::new(BIN)
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env_remove("ORRERY_CONFIG")
        .env_remove(API_KEY_ENV)
        .env_remove(API_SECRET_ENV)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BINANCE_FUTURES_API_KEY") && err.contains("exchanges.venues.bnf"),
        "{err}"
    );
}

#[derive(Debug, Clone)]
struct Ack {
    client_id: String,
    status: String,
    filled: Decimal,
}

fn send_orders(port: u16, stop: Arc<AtomicBool>, acks: Arc<Mutex<Vec<Ack>>>) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let side = if i.is_multiple_of(2) { "buy" } else { "sell" };
        let body = format!(r#"{{"venue":"bnf","symbol":"BTC","side":"{side}","usd":"100"}}"#);
        match http_post_json(port, "/api/orders", &body) {
            Some((200, report)) => {
                let v: serde_json::Value = serde_json::from_str(&report).unwrap();
                acks.lock().unwrap().push(Ack {
                    client_id: v["client_id"].as_str().unwrap().to_string(),
                    status: v["status"].as_str().unwrap().to_string(),
                    filled: v["filled_size"].as_str().unwrap().parse().unwrap(),
                });
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(20)),
        }
        i += 1;
    }
}

#[test]
fn a_sigkilled_engine_restarts_without_losing_or_doubling_a_futures_order() {
    let mock = MockBinanceFutures::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = test_config(dir.path(), port, &section(&mock));
    let mut env: Vec<(&str, &str)> = KEYS.to_vec();
    env.push(("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"));
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));

    for round in 0..3u64 {
        let mut engine = spawn_engine(&config_path, dir.path(), &[], &env);
        wait_for(Duration::from_secs(30), "the engine to serve", || {
            http_get(port, "/health").filter(|(s, _)| *s == 200)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (stop, acks) = (stop.clone(), acks.clone());
            std::thread::spawn(move || send_orders(port, stop, acks))
        };
        let before = acks.lock().unwrap().len();
        wait_for(
            Duration::from_secs(30),
            "some orders to be acknowledged",
            || (acks.lock().unwrap().len() >= before + 3).then_some(()),
        );
        std::thread::sleep(Duration::from_millis(29 * (round + 1)));
        signal(&engine, libc::SIGKILL);
        wait_exit(&mut engine, Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        worker.join().unwrap();
    }
    settle_and_stop(&config_path, dir.path(), port, &env);

    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 9, "only {} orders acknowledged", acks.len());
    let config = Config::load(Some(&config_path), Vec::new()).unwrap();
    let store = Store::open(&config.engine.data_dir).unwrap();
    let ledger = OrderLedger::open(&store, system_clock()).unwrap();
    for ack in &acks {
        let entry = ledger
            .get(&ClientOrderId::parse(&ack.client_id).unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged order {} lost", ack.client_id));
        assert_eq!(entry.status.as_str(), ack.status, "{}", ack.client_id);
        assert_eq!(entry.filled_size, ack.filled, "{}", ack.client_id);
    }
    // No order reached Binance twice, and the ledger agrees with it on every order.
    let mut posted = std::collections::BTreeMap::<String, usize>::new();
    for r in mock.requests() {
        if r.method == "POST" && r.route() == "/fapi/v1/order" {
            *posted
                .entry(r.query("newClientOrderId").unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    for (id, n) in &posted {
        assert_eq!(*n, 1, "order {id} was sent {n} times");
    }
    let mut net = Decimal::ZERO;
    for entry in ledger
        .all()
        .unwrap()
        .into_iter()
        .filter(|e| e.venue == "bnf")
    {
        assert!(
            entry.status.is_terminal(),
            "{} left {:?}",
            entry.client_id,
            entry.status
        );
        let at_venue = mock.order_status(entry.client_id.as_str());
        match entry.status.as_str() {
            "filled" => {
                assert_eq!(at_venue.as_deref(), Some("FILLED"), "{}", entry.client_id);
                let signed = match entry.request.side {
                    orrery_actors::exchanges::Side::Buy => entry.filled_size,
                    orrery_actors::exchanges::Side::Sell => -entry.filled_size,
                };
                net += signed;
            }
            // Never applied (refused, or concluded unsent after its deadline).
            _ => assert_ne!(at_venue.as_deref(), Some("FILLED"), "{}", entry.client_id),
        }
    }
    assert_eq!(
        mock.position("BTCUSDT"),
        net,
        "the venue's position is the ledger's"
    );
}

#[test]
fn an_account_in_hedge_mode_is_refused_with_a_clear_message() {
    let mock = MockBinanceFutures::start();
    mock.set_dual_side(true);
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), &section(&mock));
    let out = cli(&[
        "order",
        "--config",
        config.to_str().unwrap(),
        "--venue",
        "bnf",
        "--symbol",
        "BTC",
        "--side",
        "buy",
        "--usd",
        "100",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hedge mode") && err.contains("one-way"),
        "{err}"
    );
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.route() != "/fapi/v1/order"),
        "nothing was sent"
    );
}
