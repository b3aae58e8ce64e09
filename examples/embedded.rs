//! Embedding Orrery in another program: start the engine on the default config, place a
//! paper order through the typed API, read it back from the ledger, watch it arrive on
//! the event stream, and shut down (draining in-flight work and flushing the data dir).
//!
//! ```sh
//! cargo run --example embedded
//! ```
//!
//! The default config keeps state in `./data` and serves metrics and the control API on
//! `127.0.0.1:9898`; override them like for `orrery run`, e.g.
//! `ORRERY__ENGINE__DATA_DIR=/tmp/orrery ORRERY__TELEMETRY__LISTEN=127.0.0.1:0`.
//! The output is one `key: value` line per step, for programs (and the test suite) to read.

use std::process::ExitCode;
use std::time::Duration;

use orrery::{Config, Engine, EngineEvent};
use orrery_actors::exchanges::gateway::{Amount, OrderIntent, Pricing};
use orrery_actors::exchanges::Side;
use rust_decimal::Decimal;

fn main() -> ExitCode {
    let config = match Config::load_str(
        include_str!("../config/default.toml"),
        "config/default.toml",
        std::env::vars(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embedded: bad config: {e}");
            return ExitCode::from(2);
        }
    };
    // The engine runs on an actix System; this program owns it.
    actix::System::new().block_on(async move {
        match run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("embedded: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::start(config).await?;
    println!(
        "engine started: data dir {}",
        engine.config.engine.data_dir.display()
    );
    let mut events = engine.events();

    let report = engine
        .place_order(OrderIntent {
            venue: "paper".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            amount: Amount::Usd(Decimal::from(100)),
            pricing: Pricing::Market,
            reduce_only: false,
            origin: "embedded-example".into(),
        })
        .await?;
    println!("order placed: {} {}", report.client_id, report.status);

    let stored = engine
        .order(&report.client_id)?
        .ok_or("the order is not in the ledger")?;
    println!(
        "order read back: {} {} filled {}",
        stored.client_id, stored.status, stored.filled_size
    );

    // The ledger's transitions of this order arrive on the event stream.
    let final_event = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(EngineEvent::Order { report: r, .. })
                    if r.client_id == report.client_id && r.status == report.status =>
                {
                    return Ok(r);
                }
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .map_err(|_| "no order event within 30s")??;
    println!(
        "order event: {} {}",
        final_event.client_id, final_event.status
    );

    let exit = engine.close(Duration::from_secs(30)).await?;
    println!("engine stopped: {exit:?}");
    Ok(())
}
