//! Supervision shape of the engine's tree (issue #10.4): a panicking model pool or venue
//! connector is restarted alone. The router and the gateway reach their siblings only
//! through slots, so they keep running (restart count 0) and keep serving: the router
//! through the other pool, the gateway with orders for the other venue.

mod common;

use common::{eventually, node};
use orrery::{Config, Engine};
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
