//! Embedding: an application stops the engine and starts a new one on the same data dir in
//! the same process, as soon as [`EngineHandle::close`] returns.

use std::time::Duration;

use orrery::{Config, Engine};
use orrery_actors::store::Store;

fn config(data: &std::path::Path) -> Config {
    config_with(data, None)
}

/// With `listen`, the control API and metrics are served (the HTTP server holds a clone
/// of the engine handle, which `close` must also see go).
fn config_with(data: &std::path::Path, listen: Option<std::net::SocketAddr>) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let telemetry = match listen {
        Some(addr) => ("ORRERY__TELEMETRY__LISTEN", addr.to_string()),
        None => ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
    };
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        telemetry,
        (
            "ORRERY__AGENTS__TRADING__0__INITIAL_DELAY",
            "100ms".to_string(),
        ),
        ("ORRERY__AGENTS__TRADING__0__INTERVAL", "200ms".to_string()),
        ("ORRERY__RISK__CHECK_INTERVAL", "200ms".to_string()),
    ];
    Config::load_str(
        &shipped,
        "config/default.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap()
}

#[test]
fn the_data_dir_is_released_when_close_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(&data);
    let system = actix::System::new();
    system.block_on(async move {
        for i in 0..5 {
            let engine = Engine::start(config.clone())
                .await
                .unwrap_or_else(|e| panic!("start #{i}: {e}"));
            // Let the agents, the gateway and the connectors touch sled before stopping.
            tokio::time::sleep(Duration::from_millis(400)).await;
            engine
                .close(Duration::from_secs(60))
                .await
                .unwrap_or_else(|e| panic!("close #{i}: {e}"));
            // Not an engine: the bare store, which fails at once if anything still
            // holds the dir.
            let store = Store::open(&data).unwrap_or_else(|e| panic!("reopen #{i}: {e}"));
            assert!(store.tree_names().iter().any(|t| t == "orders"));
            drop(store);
        }
    });
}

#[test]
fn close_also_waits_for_the_control_api_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let system = actix::System::new();
    system.block_on(async move {
        for i in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let engine = Engine::start(config_with(&data, Some(port)))
                .await
                .unwrap_or_else(|e| panic!("start #{i}: {e}"));
            assert!(engine.listen_addr().is_some());
            engine
                .close(Duration::from_secs(60))
                .await
                .unwrap_or_else(|e| panic!("close #{i}: {e}"));
            drop(Store::open(&data).unwrap_or_else(|e| panic!("reopen #{i}: {e}")));
        }
    });
}
