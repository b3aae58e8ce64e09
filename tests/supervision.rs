//! Supervision shape of the engine's tree (issue #10.4): a panicking model pool or venue
//! connector is restarted alone. The router and the gateway reach their siblings only
//! through slots, so they keep running (restart count 0) and keep serving: the router
//! through the other pool, the gateway with orders for the other venue.

use std::time::Duration;

use orrery::{Config, Engine, EngineHandle};
use orrery_actors::exchanges::gateway::{Amount, OrderIntent, Pricing};
use orrery_actors::exchanges::{OrderStatus, Side};
use orrery_actors::models::{ModelRequest, Purpose};
use orrery_actors::supervisor::{NodeState, Strategy};
use rust_decimal::Decimal;

/// The shipped default plus a second paper venue and a second local deployment, so each
/// supervisor has two siblings before its router / gateway.
fn config(data: &std::path::Path) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let extra = r#"
[exchanges.venues.paper2]
kind = "paper"
starting_balance_usd = 10000
seed = 7

[exchanges.venues.paper2.symbols.BTC]

[[models.default.deployments]]
id = "local2"
provider = "local"
model = "rules-v1"
"#;
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
    ];
    let mut config = Config::load_str(
        &format!("{shipped}{extra}"),
        "config/default.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    // No agent trades meanwhile: the orders below are the only ones.
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

/// Polls (on the actix system, never racing a fixed sleep) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn market_buy(venue: &str) -> OrderIntent {
    OrderIntent {
        venue: venue.into(),
        symbol: "BTC".into(),
        side: Side::Buy,
        amount: Amount::Usd(Decimal::from(100)),
        pricing: Pricing::Market,
        reduce_only: false,
        origin: "test".into(),
    }
}

#[test]
fn a_pool_panic_restarts_only_that_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("data"));
    actix::System::new().block_on(async move {
        let engine = Engine::start(config).await.unwrap();
        for sup in [
            "engine",
            "engine/models",
            "engine/exchanges",
            "engine/agents",
        ] {
            assert_eq!(
                node(&engine, sup).strategy,
                Some(Strategy::OneForOne),
                "{sup}"
            );
        }
        let pool = "engine/models/pool-local";
        eventually("every model actor running", || {
            [
                "engine/models/pool-local",
                "engine/models/pool-local2",
                "engine/models/router",
            ]
            .iter()
            .all(|p| node(&engine, p).state == NodeState::Running)
        })
        .await;

        assert!(
            engine.root.view().inject_panic(pool),
            "no running pool to panic"
        );
        eventually("the pool restarted and running", || {
            let n = node(&engine, pool);
            n.restarts == 1 && n.state == NodeState::Running
        })
        .await;
        let pool_node = node(&engine, pool);
        assert!(
            pool_node
                .last_failure
                .as_deref()
                .is_some_and(|f| f.contains("injected panic")),
            "{pool_node:?}"
        );
        let router = node(&engine, "engine/models/router");
        assert_eq!((router.restarts, router.state), (0, NodeState::Running));
        let other = node(&engine, "engine/models/pool-local2");
        assert_eq!((other.restarts, other.state), (0, NodeState::Running));

        // The router that was never restarted still answers.
        let answer = engine
            .ask(ModelRequest::new(
                "default",
                Purpose::Freeform,
                "BTC: buy or sell?",
            ))
            .await
            .unwrap();
        assert!(!answer.text.is_empty());
        engine.shutdown().await;
    });
}

#[test]
fn a_connector_panic_restarts_only_the_connector_and_the_gateway_keeps_taking_orders() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("data"));
    actix::System::new().block_on(async move {
        let engine = Engine::start(config).await.unwrap();
        let connector = "engine/exchanges/connector-paper";
        eventually("the exchanges running", || {
            [
                connector,
                "engine/exchanges/connector-paper2",
                "engine/exchanges/gateway",
            ]
            .iter()
            .all(|p| node(&engine, p).state == NodeState::Running)
        })
        .await;
        let first = engine.place_order(market_buy("paper2")).await.unwrap();
        assert_eq!(first.status, OrderStatus::Filled);

        assert!(engine.root.view().inject_panic(connector));
        // Right after the panic, while `paper` restarts, the gateway takes an order for
        // the other venue.
        let during = engine.place_order(market_buy("paper2")).await.unwrap();
        assert_eq!(during.status, OrderStatus::Filled, "{during:?}");

        eventually("the connector restarted and running", || {
            let n = node(&engine, connector);
            n.restarts == 1 && n.state == NodeState::Running
        })
        .await;
        let gateway = node(&engine, "engine/exchanges/gateway");
        assert_eq!((gateway.restarts, gateway.state), (0, NodeState::Running));
        let other = node(&engine, "engine/exchanges/connector-paper2");
        assert_eq!((other.restarts, other.state), (0, NodeState::Running));

        // The restarted connector serves the same gateway again.
        let after = engine.place_order(market_buy("paper")).await.unwrap();
        assert_eq!(after.status, OrderStatus::Filled, "{after:?}");
        engine.shutdown().await;
    });
}

/// The Hyperliquid mock's test wallet key; the engine reads it from the environment, as in
/// production (`HYPER_LIQUID_ETH_PRIVATE_KEY`).
const HL_KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

/// The ledger status a Hyperliquid order status must end as, stated here (not taken from
/// the production mapping) for the statuses a resting limit order can have at the mock.
fn expected_status(venue_status: &str, filled: Decimal) -> OrderStatus {
    match venue_status {
        "filled" => OrderStatus::Filled,
        "canceled" => OrderStatus::Cancelled,
        "open" if filled.is_zero() => OrderStatus::Acked,
        "open" => OrderStatus::PartiallyFilled,
        other => panic!("no stated mapping for venue status `{other}`"),
    }
}

/// Issue #10.4's test, end to end: the engine's own tree with a Hyperliquid account on the
/// mock venue (a real HTTP server on loopback, answering slowly), 50 orders in flight when
/// the gateway actor panics. The supervisor rebuilds it; after its reconciliation every
/// client id reached the venue at most once, and the ledger equals the venue: each venue
/// order is in the ledger with its state, and each entry the venue lacks was never sent.
#[test]
fn a_gateway_panic_with_50_orders_in_flight_to_a_slow_venue_sends_each_client_id_at_most_once() {
    use orrery_actors::exchanges::gateway::{GatewayError, PlaceOrder, Reconcile};
    use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
    use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
    use orrery_actors::exchanges::ledger::OrderLedger;
    use orrery_actors::exchanges::TimeInForce;
    use orrery_actors::supervisor::SlotError;

    let wallet = PrivateKey::from_hex(HL_KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    // The engine reads the key from the process environment; no other test of this file
    // reads this variable.
    std::env::set_var("HYPER_LIQUID_ETH_PRIVATE_KEY", HL_KEY);
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let venue = format!(
        r#"
[exchanges.venues.hyperliquid]
kind = "hyperliquid"
network = "testnet"
base_url = "{}"
wallet_address = "{wallet}"
request_timeout = "10s"
"#,
        mock.url()
    );
    let env = [
        (
            "ORRERY__ENGINE__DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
    ];
    let mut config = Config::load_str(
        &format!("{shipped}{venue}"),
        "config/default.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    config.agents.trading.clear();
    let gateway_path = "engine/exchanges/gateway";

    actix::System::new().block_on(async move {
        let engine = Engine::start(config).await.unwrap();
        eventually("the gateway running", || {
            node(&engine, gateway_path).state == NodeState::Running
        })
        .await;
        // A slow venue: every answer takes 20 ms, so orders queue on the venue's turn.
        mock.set_latency(Duration::from_millis(20));
        let resting_buy = || OrderIntent {
            venue: "hyperliquid".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            amount: Amount::Usd(Decimal::from(20)),
            pricing: Pricing::Limit {
                price: Decimal::from(58_000),
                tif: TimeInForce::Gtc,
            },
            reduce_only: false,
            origin: "test".into(),
        };
        let flows: Vec<_> = (0..50)
            .map(|_| {
                actix_rt::spawn(engine.gateway.send(PlaceOrder {
                    intent: resting_buy(),
                }))
            })
            .collect();
        eventually("an order at the venue", || !mock.order_actions().is_empty()).await;
        assert!(
            engine.root.view().inject_panic(gateway_path),
            "no running gateway to panic"
        );
        eventually("the gateway restarted and running", || {
            let n = node(&engine, gateway_path);
            n.restarts == 1 && n.state == NodeState::Running
        })
        .await;

        // Every flow ends: placed, stopped by the fence, or lost with the dead mailbox.
        let (mut placed, mut superseded, mut lost) = (0, 0, 0);
        for flow in flows {
            match flow.await.unwrap() {
                Ok(Ok(_)) => placed += 1,
                Ok(Err(GatewayError::Superseded { .. })) => superseded += 1,
                Err(SlotError::Closed { .. }) | Err(SlotError::Vacant { .. }) => lost += 1,
                other => panic!("unexpected answer: {other:?}"),
            }
        }
        assert_eq!(placed + superseded + lost, 50);
        assert!(
            placed < 50,
            "the panic came after every order was placed: nothing was in flight"
        );
        // Reconciliation of the new generation (it also ran at its start).
        let report = loop {
            match engine
                .gateway
                .send(Reconcile {
                    venue: "hyperliquid".into(),
                })
                .await
            {
                Ok(Ok(report)) => break report,
                Ok(Err(e)) => panic!("reconciliation failed: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert_eq!(report.drift(), 0, "{report:?}");

        // Every client id reached the venue at most once.
        let ledger = OrderLedger::open(&engine.store, orrery_actors::clock::system_clock())
            .unwrap()
            .all()
            .unwrap();
        let entries: Vec<_> = ledger
            .into_iter()
            .filter(|e| e.venue == "hyperliquid")
            .collect();
        for entry in &entries {
            let sends = mock.sends_of_cloid(&entry.client_id.to_hex128());
            assert!(sends <= 1, "{} sent {sends} times", entry.client_id);
        }
        // Ledger == venue.
        for entry in &entries {
            match mock.order(&entry.client_id.to_hex128()) {
                None => assert_eq!(
                    entry.status,
                    OrderStatus::Rejected,
                    "{} is {:?} in the ledger but unknown to the venue",
                    entry.client_id,
                    entry.status
                ),
                Some(o) => {
                    let filled = o.orig_sz - o.sz;
                    assert_eq!(
                        (entry.status, entry.filled_size),
                        (expected_status(&o.status, filled), filled),
                        "{}",
                        entry.client_id
                    );
                }
            }
        }
        let in_ledger: std::collections::BTreeSet<String> =
            entries.iter().map(|e| e.client_id.to_hex128()).collect();
        let at_venue = mock.orders();
        for o in &at_venue {
            let cloid = o.cloid.clone().unwrap();
            assert!(
                in_ledger.contains(&cloid),
                "venue order {cloid} missing from the ledger"
            );
        }
        assert!(at_venue.len() >= placed, "a placed order is missing at the venue");
        eprintln!(
            "gateway panic with 50 orders in flight: {placed} placed, {superseded} stopped by the fence, {lost} lost with the mailbox, {} at the venue, {} in the ledger",
            at_venue.len(),
            entries.len()
        );
        engine.shutdown().await;
    });
}
