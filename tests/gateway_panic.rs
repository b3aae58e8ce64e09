//! Issue #10.4's test, end to end: the engine's own supervision tree with a Hyperliquid
//! account on the mock venue (a real HTTP server on loopback, answering slowly) and 50
//! orders in flight when the gateway actor panics.
//!
//! Its own test binary: the engine reads the wallet key from the process environment, as
//! in production, and setting a variable is only sound while no other thread of the
//! process reads the environment (cargo runs test binaries one after another).

mod common;

use std::time::Duration;

use common::hl_mock::assert_ledger_equals_mock;
use common::{eventually, node};
use orrery::{Config, Engine};
use orrery_actors::exchanges::gateway::{Amount, OrderIntent, Pricing};
use orrery_actors::exchanges::Side;
use orrery_actors::supervisor::NodeState;
use rust_decimal::Decimal;

/// The Hyperliquid mock's test wallet key; the engine reads it from the environment, as in
/// production (`HYPER_LIQUID_ETH_PRIVATE_KEY`).
const HL_KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

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
    // The engine reads the key from the process environment (see the module docs).
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
        assert_ledger_equals_mock(&mock, &entries);
        let at_venue = mock.orders();
        assert!(at_venue.len() >= placed, "a placed order is missing at the venue");
        eprintln!(
            "gateway panic with 50 orders in flight: {placed} placed, {superseded} stopped by the fence, {lost} lost with the mailbox, {} at the venue, {} in the ledger",
            at_venue.len(),
            entries.len()
        );
        engine.shutdown().await;
    });
}
