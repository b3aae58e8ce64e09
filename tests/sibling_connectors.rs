//! Sibling connectors for one venue account (issue #10.11): a Hyperliquid account listed
//! with two base endpoints (`base_urls`) gets one supervised connector per endpoint; the
//! gateway reads and trades through whichever is healthy. One connector panics while a loop
//! trades and reads: no read fails, no order is lost or doubled (ledger == the mock's
//! record, each cloid sent at most once), and the restarted connector receives work again.
//! Also: a bad `base_urls` stops the process before anything starts, naming the key.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use orrery::{Config, Engine, EngineHandle};
use orrery_actors::exchanges::gateway::{
    Amount, GetAccount, GetConnectors, GetPositions, GetQuote, GetSnapshot, OrderIntent, Pricing,
    Reconcile,
};
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::exchanges::siblings::ConnectorState;
use orrery_actors::exchanges::{OrderStatus, Side};
use orrery_actors::supervisor::NodeState;
use rust_decimal::Decimal;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const FIRST: &str = "engine/exchanges/connector-hl#1";
const SECOND: &str = "engine/exchanges/connector-hl#2";

/// The ledger status a Hyperliquid order status must end as, stated here (not taken from
/// the production mapping); only the statuses the mock produces for these market orders.
fn expected_status(venue_status: &str, filled: Decimal) -> OrderStatus {
    match venue_status {
        "filled" => OrderStatus::Filled,
        "canceled" => OrderStatus::Cancelled,
        "open" if filled.is_zero() => OrderStatus::Acked,
        "open" => OrderStatus::PartiallyFilled,
        s if s.ends_with("Rejected") || s == "rejected" => OrderStatus::Rejected,
        other => panic!("no stated mapping for venue status `{other}`"),
    }
}

fn hl_section(urls: &[String]) -> String {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    format!(
        r#"
[exchanges.venues.hl]
kind = "hyperliquid"
network = "testnet"
base_urls = [{}]
wallet_address = "{wallet}"
request_timeout = "3s"
# The REST mock speaks no websocket: stream upgrade attempts would count as its requests.
streams = false

# One call at a time at each endpoint: the rest wait in the connector's priority queue,
# where a panic finds them.
[exchanges.venues.hl.resilience.queue]
max_in_flight = 1
"#,
        urls.iter()
            .map(|u| format!("{u:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn config(data: &std::path::Path, hl: &str) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
    ];
    let mut config = Config::load_str(
        &format!("{shipped}{hl}"),
        "config/default.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    // The loop below is the only trader.
    config.agents.trading.clear();
    config
}

fn node(engine: &EngineHandle, path: &str) -> orrery_actors::supervisor::ActorNode {
    engine
        .tree()
        .into_iter()
        .find(|n| n.path == path)
        .unwrap_or_else(|| panic!("no actor {path} in {:#?}", engine.tree()))
}

/// Polls (never racing a fixed sleep) until `done` holds.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn market(side: Side) -> OrderIntent {
    OrderIntent {
        venue: "hl".into(),
        symbol: "BTC".into(),
        side,
        amount: Amount::Base(Decimal::new(1, 3)),
        pricing: Pricing::Market,
        reduce_only: false,
        origin: "test".into(),
    }
}

/// One round of the loop: an order and three reads, all at once. Every read must answer.
async fn round(engine: &EngineHandle, i: usize) {
    let side = if i.is_multiple_of(2) {
        Side::Buy
    } else {
        Side::Sell
    };
    let venue = || "hl".to_string();
    let (order, quote, account, positions) = futures::join!(
        engine.place_order(market(side)),
        engine.gateway.send(GetQuote {
            venue: venue(),
            symbol: "BTC".into()
        }),
        engine.gateway.send(GetAccount { venue: venue() }),
        engine.gateway.send(GetPositions { venue: venue() }),
    );
    let quote = quote
        .unwrap()
        .unwrap_or_else(|e| panic!("quote failed in round {i}: {e}"));
    assert!(quote.fallback.is_none(), "round {i}: {quote:?}");
    account
        .unwrap()
        .unwrap_or_else(|e| panic!("account read failed in round {i}: {e}"));
    positions
        .unwrap()
        .unwrap_or_else(|e| panic!("positions read failed in round {i}: {e}"));
    // Every order is taken. One in flight on the connector that died may stay unknown
    // (its query went to the sibling; reconciliation settles it below, never re-sent).
    let order = order.unwrap_or_else(|e| panic!("order refused in round {i}: {e}"));
    assert!(
        matches!(order.status, OrderStatus::Filled | OrderStatus::Unknown),
        "round {i}: {order:?}"
    );
}

#[test]
fn a_connector_panic_moves_work_to_its_sibling_and_nothing_is_lost_or_doubled() {
    // The venue reads its key from the process environment; no other test of this binary
    // reads it.
    std::env::set_var("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY);
    let mock = MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    );
    let second = mock.another_endpoint();
    // Calls take a while at the venue, so the panic catches some in flight.
    mock.set_latency(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &dir.path().join("data"),
        &hl_section(&[mock.url(), second.url()]),
    );
    actix::System::new().block_on(async move {
        let engine = Engine::start(config).await.unwrap();
        eventually("both connectors and the gateway running", || {
            let ok = [FIRST, SECOND, "engine/exchanges/gateway"]
                .iter()
                .all(|p| node(&engine, p).state == NodeState::Running);
            async move { ok }
        })
        .await;

        for i in 0..10 {
            round(&engine, i).await;
        }
        let (first_before, second_before) = (mock.requests().len(), second.requests().len());
        assert!(
            first_before > 0 && second_before > 0,
            "both endpoints served: {first_before} / {second_before}"
        );

        // Panic #1 while calls of a round are at it: one in flight at the (slow) venue, the
        // rest queued. The queued ones were never sent and move to #2; the one in flight
        // finishes (an order there is settled by a query through #2 if its answer is lost).
        mock.set_latency(Duration::from_millis(300));
        let panicked = {
            let engine = engine.clone();
            async move {
                eventually("calls in flight at #1", || {
                    let busy = node(&engine, FIRST).mailbox_depth.unwrap_or(0) >= 3;
                    async move { busy }
                })
                .await;
                assert!(engine.root.view().inject_panic(FIRST), "no running {FIRST}");
            }
        };
        // Extra reads in the same round, so each connector has several calls at once.
        let extra = futures::future::join_all(
            (0..4).map(|_| engine.gateway.send(GetAccount { venue: "hl".into() })),
        );
        let (_, (), extra) = futures::join!(round(&engine, 10), panicked, extra);
        for read in extra {
            read.unwrap()
                .expect("an account read during the panic failed");
        }
        mock.set_latency(Duration::from_millis(20));
        // Right after the panic, while #1 restarts, the work goes to #2.
        for i in 11..20 {
            round(&engine, i).await;
        }
        eventually("the connector restarted and running", || {
            let n = node(&engine, FIRST);
            let ok = n.restarts == 1 && n.state == NodeState::Running;
            async move { ok }
        })
        .await;
        let gateway = node(&engine, "engine/exchanges/gateway");
        assert_eq!((gateway.restarts, gateway.state), (0, NodeState::Running));
        assert_eq!(node(&engine, SECOND).restarts, 0);

        // The restarted connector rejoins: it receives work again.
        let rejoined = mock.requests().len();
        for i in 20..30 {
            round(&engine, i).await;
        }
        assert!(
            mock.requests().len() > rejoined,
            "the restarted connector got no work"
        );
        let connectors = engine
            .gateway
            .send(GetConnectors { venue: "hl".into() })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            connectors
                .iter()
                .map(|c| (c.connector.as_str(), c.state))
                .collect::<Vec<_>>(),
            vec![
                ("hl#1", ConnectorState::Ready),
                ("hl#2", ConnectorState::Ready)
            ]
        );

        // Status and metrics show each connector.
        let status = engine.status().await.unwrap();
        let hl = status.venues.iter().find(|v| v.name == "hl").unwrap();
        assert_eq!(
            hl.connectors
                .iter()
                .map(|c| (c.connector.as_str(), c.endpoint.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("hl#1", Some(mock.url().trim_end_matches('/').to_string())),
                ("hl#2", Some(second.url().trim_end_matches('/').to_string()))
            ]
        );
        let metrics = engine.metrics.as_ref().unwrap().render();
        let series = |name: &str, labels: &[&str]| {
            metrics
                .lines()
                .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum::<f64>()
        };
        for c in ["hl#1", "hl#2"] {
            let label = format!("connector=\"{c}\"");
            assert!(
                series(
                    "orrery_exchange_connector_requests_total{",
                    &[&label, "outcome=\"ok\""]
                ) > 0.0,
                "{c}"
            );
            assert_eq!(
                series("orrery_exchange_connector_up{", &[&label]),
                1.0,
                "{c}"
            );
        }
        assert!(
            series(
                "orrery_exchange_failovers_total{",
                &["connector=\"hl#1\"", "venue=\"hl\""]
            ) >= 1.0,
            "the calls queued at #1 when it died moved to #2"
        );

        // Every order settles (an unknown one by reading the venue once its deadline
        // passed), and the ledger equals the venue's record.
        eventually("every order settled", || {
            let engine = engine.clone();
            async move {
                let _ = engine.gateway.send(Reconcile { venue: "hl".into() }).await;
                let snap = engine
                    .gateway
                    .send(GetSnapshot { recent: 10_000 })
                    .await
                    .unwrap()
                    .unwrap();
                snap.recent_orders.iter().all(|o| o.status.is_terminal())
            }
        })
        .await;
        let snap = engine
            .gateway
            .send(GetSnapshot { recent: 10_000 })
            .await
            .unwrap()
            .unwrap();
        let entries: Vec<_> = snap
            .recent_orders
            .iter()
            .filter(|o| o.venue == "hl")
            .collect();
        assert_eq!(entries.len(), 30, "one ledger entry per order placed");
        for entry in &entries {
            let cloid = entry.client_id.to_hex128();
            assert!(mock.sends_of_cloid(&cloid) <= 1, "{cloid} sent twice");
            match mock.order(&cloid) {
                None => assert_eq!(
                    entry.status,
                    OrderStatus::Rejected,
                    "{cloid} is {:?} in the ledger but unknown to the venue",
                    entry.status
                ),
                Some(o) => {
                    let filled = o.orig_sz - o.sz;
                    assert_eq!(
                        (entry.status, entry.filled_size),
                        (expected_status(&o.status, filled), filled),
                        "{cloid}"
                    );
                }
            }
        }
        let in_ledger: BTreeSet<String> = entries.iter().map(|e| e.client_id.to_hex128()).collect();
        for o in mock.orders() {
            let cloid = o.cloid.clone().unwrap();
            assert!(
                in_ledger.contains(&cloid),
                "venue order {cloid} missing from the ledger"
            );
        }
        engine.shutdown().await;
    });
}

#[test]
fn a_bad_base_urls_list_exits_2_naming_the_key_and_a_good_one_plans_a_connector_each() {
    let cases = [
        ("[]", "base_urls"),
        (
            r#"["https://a.example", "https://a.example/"]"#,
            "base_urls[1]",
        ),
        (r#"["https://a.example", "nope"]"#, "base_urls[1]"),
    ];
    for (list, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let wallet = PrivateKey::from_hex(KEY).unwrap().address();
        let section = format!(
            "\n[exchanges.venues.hl]\nkind = \"hyperliquid\"\nwallet_address = \"{wallet}\"\nbase_urls = {list}\n"
        );
        let config = test_config(dir.path(), port, &section);
        for command in ["check-config", "run"] {
            let out = run_cli(&[command, "--config", config.to_str().unwrap()]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {list}: {err}");
            assert!(
                err.contains(&format!("`exchanges.venues.hl.{key}`")),
                "{command} {list}: {err}"
            );
        }
        assert!(!data_dir(dir.path()).exists(), "nothing may start");
    }

    // A good list: `orrery tree` plans one connector per endpoint.
    let dir = tempfile::tempdir().unwrap();
    // Never contacted (the plan is read from the config); loopback all the same.
    let urls = [
        "http://127.0.0.1:9/".to_string(),
        "http://127.0.0.1:9/standby".to_string(),
    ];
    let config = test_config(dir.path(), free_port(), &hl_section(&urls));
    let out = run_cli(&["tree", "--json", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = tree["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&FIRST) && paths.contains(&SECOND),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&"engine/exchanges/connector-hl"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"engine/exchanges/connector-paper"),
        "a single endpoint keeps its name: {paths:?}"
    );
}
