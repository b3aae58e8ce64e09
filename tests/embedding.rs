//! The embedding API (issue #10.14): an engine driven through the typed face of
//! `EngineHandle` — orders, read-back, cancels, closes, the kill switch, status, model
//! questions, agent pause/resume, the event stream — and two engines in one process
//! sharing the process-global metrics recorder.

mod common;

use std::time::Duration;

use orrery::{Config, Engine, EngineCallError, EngineEvent};
use orrery_actors::agents::runtime::RunNowAnswer;
use orrery_actors::exchanges::gateway::{Amount, GatewayError, OrderIntent, Pricing};
use orrery_actors::exchanges::risk_gate::TradingMode;
use orrery_actors::exchanges::{OrderStatus, Side, TimeInForce};
use orrery_actors::models::{ModelRequest, Purpose};
use rust_decimal::Decimal;
use tokio::sync::broadcast::Receiver;

fn config(data: &std::path::Path, port: u16) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    // The trading agent leaves ETH to the test, so the close below finds the position the
    // test opened, whatever the agent did with BTC meanwhile.
    let agent_symbols = r#"symbols = ["BTC", "ETH", "SOL"]"#;
    assert!(
        shipped.contains(agent_symbols),
        "the shipped agent's symbols"
    );
    let shipped = shipped.replace(agent_symbols, r#"symbols = ["BTC", "SOL"]"#);
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__LISTEN", format!("127.0.0.1:{port}")),
        (
            "ORRERY__AGENTS__TRADING__0__INITIAL_DELAY",
            "100ms".to_string(),
        ),
        ("ORRERY__AGENTS__TRADING__0__INTERVAL", "200ms".to_string()),
        // Fills reach the fills tree (and the event stream) at the ledger's next
        // reconciliation with the venue; every second instead of every 30 here.
        ("ORRERY__EXCHANGES__RECONCILE_INTERVAL", "1s".to_string()),
    ];
    Config::load_str(
        &shipped,
        "config/default.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap()
}

fn intent(symbol: &str, side: Side, pricing: Pricing) -> OrderIntent {
    OrderIntent {
        venue: "paper".into(),
        symbol: symbol.into(),
        side,
        amount: Amount::Usd(Decimal::from(100)),
        pricing,
        reduce_only: false,
        origin: "embedding-test".into(),
    }
}

/// The next event `pick` accepts, skipping others; fails after a minute.
async fn next_event<T>(
    events: &mut Receiver<EngineEvent>,
    mut pick: impl FnMut(&EngineEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.recv().await.expect("the event stream is open");
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    })
    .await
    .expect("the expected event within a minute")
}

#[test]
fn the_typed_face_drives_orders_modes_agents_and_models_and_streams_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("data"), common::free_port());
    actix::System::new().block_on(async move {
        let engine = Engine::start(config).await.unwrap();
        let mut events = engine.events();

        // A market order fills; the ledger, the order events and the fill event agree.
        let filled = engine
            .place_order(intent("btc", Side::Buy, Pricing::Market))
            .await
            .unwrap();
        assert_eq!(
            (filled.symbol.as_str(), filled.status),
            ("BTC", OrderStatus::Filled)
        );
        let read = engine.order(&filled.client_id).unwrap().unwrap();
        assert_eq!(read, filled);
        let id = filled.client_id.clone();
        let origin = next_event(&mut events, |e| match e {
            EngineEvent::Order { report, origin, .. }
                if report.client_id == id && report.status == OrderStatus::Filled =>
            {
                Some(origin.clone())
            }
            _ => None,
        })
        .await;
        assert_eq!(origin, "embedding-test");
        let fill = next_event(&mut events, |e| match e {
            EngineEvent::Fill(f) if f.fill.client_id.as_ref() == Some(&id) => Some(f.clone()),
            _ => None,
        })
        .await;
        assert_eq!(fill.venue, "paper");

        // A resting limit order is cancelled by its client id.
        let resting = engine
            .place_order(intent(
                "ETH",
                Side::Buy,
                Pricing::Limit {
                    price: Decimal::from(1000),
                    tif: TimeInForce::Gtc,
                },
            ))
            .await
            .unwrap();
        assert_eq!(resting.status, OrderStatus::Acked);
        let cancelled = engine.cancel(resting.client_id.clone()).await.unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);

        // Half of the ETH position (the test's own) is closed with reduce-only orders.
        let bought = engine
            .place_order(intent("ETH", Side::Buy, Pricing::Market))
            .await
            .unwrap();
        assert_eq!(bought.status, OrderStatus::Filled);
        let closed = engine.close_position("paper", "ETH", 50).await.unwrap();
        assert_eq!(closed.size_before, bought.filled_size, "{closed:?}");
        assert!(closed.size_after < closed.size_before, "{closed:?}");
        assert!(closed.size_after > Decimal::ZERO, "{closed:?}");

        // The kill switch halts trading: orders are refused with the gateway's typed error,
        // and the mode change is an event.
        let halted = engine.kill_switch(true, "embedding test").await.unwrap();
        assert_eq!(halted.state.mode, TradingMode::Halted);
        let mode = next_event(&mut events, |e| match e {
            EngineEvent::Mode(m) if m.kill_switch => Some(m.clone()),
            _ => None,
        })
        .await;
        assert_eq!(
            (mode.mode, mode.reason.as_str()),
            (TradingMode::Halted, "embedding test")
        );
        let refused = engine
            .place_order(intent("BTC", Side::Buy, Pricing::Market))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                EngineCallError::Refused(GatewayError::Refused { .. })
            ),
            "{refused:?}"
        );
        engine.kill_switch(false, "released").await.unwrap();

        // The status report and a model question.
        let status = engine.status().await.unwrap();
        assert!(status.engine_running);
        assert!(status.orders_in_ledger >= 3);
        let answer = engine
            .ask(ModelRequest::new("default", Purpose::Freeform, "hello"))
            .await
            .unwrap();
        assert_eq!(answer.deployment, "local");

        // Decisions of the trading agent arrive on the stream; a paused agent makes none.
        next_event(&mut events, |e| {
            matches!(e, EngineEvent::Decision(d) if d.agent == "trend").then_some(())
        })
        .await;
        let unknown = engine.pause_agent("nobody", "test").unwrap_err();
        assert!(
            matches!(unknown, EngineCallError::UnknownAgent { .. }),
            "{unknown:?}"
        );
        let paused = engine.pause_agent("trend", "embedding test").unwrap();
        assert!(paused.paused);
        let metrics = engine
            .metrics
            .clone()
            .expect("the first engine installs the recorder");
        let skipped = || {
            common::metric_sum(
                &metrics.render(),
                "orrery_agent_runs_total",
                &["agent=\"trend\"", "outcome=\"skipped_paused\""],
            )
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while skipped() < 2.0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the paused agent never skipped a run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Two skipped ticks in a row: the runs counter of the agent's memory stands still
        // while paused (a run in progress at the pause may still finish first).
        let runs = |s: &orrery::status::StatusReport| {
            s.agents
                .iter()
                .find(|a| a.name == "trend")
                .map(|a| a.memory.runs)
                .unwrap_or(0)
        };
        let before = runs(&engine.status().await.unwrap());
        let start = skipped();
        while skipped() < start + 2.0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the paused agent stopped ticking"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            runs(&engine.status().await.unwrap()),
            before,
            "a paused agent ran"
        );
        engine.resume_agent("trend", "go on").unwrap();
        next_event(&mut events, |e| {
            matches!(e, EngineEvent::Decision(d) if d.agent == "trend").then_some(())
        })
        .await;

        // The runtime's view through the handle: both agents, run-now, unknown names.
        let agents = engine.agents().await.unwrap();
        let names: Vec<_> = agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["risk", "trend"]);
        assert!(agents.iter().all(|a| !a.paused), "{agents:?}");
        let answer = engine.run_agent_now("trend").await.unwrap();
        assert!(
            matches!(answer, RunNowAnswer::Started | RunNowAnswer::Busy { .. }),
            "{answer:?}"
        );
        assert!(matches!(
            engine.run_agent_now("nobody").await,
            Err(EngineCallError::UnknownAgent { .. })
        ));

        // The live tree is there through the handle too.
        assert!(engine
            .tree()
            .iter()
            .any(|n| n.path == "engine/exchanges/gateway"));

        engine.close(Duration::from_secs(60)).await.unwrap();
        // After shutdown the stream ends.
        use tokio::sync::broadcast::error::RecvError;
        while let Ok(_) | Err(RecvError::Lagged(_)) = events.recv().await {}
    });
}

#[test]
fn two_engines_in_one_process_both_serve_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (common::free_port(), common::free_port());
    let a = config(&dir.path().join("a"), port_a);
    let b = config(&dir.path().join("b"), port_b);
    actix::System::new().block_on(async move {
        let first = Engine::start(a).await.unwrap();
        let second = Engine::start(b).await.unwrap();
        assert!(
            second.metrics.is_some(),
            "the second engine shares the recorder"
        );
        for port in [port_a, port_b] {
            let answer = tokio::task::spawn_blocking(move || common::http_get(port, "/metrics"))
                .await
                .unwrap();
            let (status, body) = answer.expect("metrics answer");
            assert_eq!(status, 200, "port {port}: {body}");
            assert!(body.contains("orrery_engine_up"), "{body}");
        }
        second.close(Duration::from_secs(60)).await.unwrap();
        first.close(Duration::from_secs(60)).await.unwrap();
    });
}
