//! REST weight with market-data streams on versus off, on the shipped Hyperliquid example
//! config (`config/examples/hyperliquid.toml`: the agent `trend-hyperliquid` on BTC, ETH and
//! SOL, 60 candles of 1m every 60 s, reconciliation and account reads as shipped).
//!
//! Target: REST weight per minute with streams on is at most 20 % of streams off.
//!
//! Two engine processes (the release-built `orrery` binary) run side by side for the same
//! time, each against its own Hyperliquid REST mock (which charges every request the weight
//! Hyperliquid documents, see `MockHyperliquid::ip_weight_used`); the one with streams on
//! also gets a loopback websocket mock that streams `bbo`, `allMids`, the account's
//! `clearinghouseState` and the current 1m `candle` of each coin every 250 ms, and pushes
//! the account's order updates and fills as the REST mock makes them, as a live venue does. Weight is counted over a
//! window that starts after start-up (the first reconciliation and metadata reads are the
//! same with or without streams) and printed per minute, with the /info requests per type.
//!
//! Run: `cargo bench --bench stream_rest_weight` (about 4 minutes; `STREAM_WEIGHT_SECS`
//! sets the measured window, default 180 s).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::ws_mock::{
    all_mids_frame, candle_frame, clearinghouse_frame, HlWsMock,
};
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const COINS: [&str; 3] = ["BTC", "ETH", "SOL"];
const WARM_UP: Duration = Duration::from_secs(30);

/// The example config's venue and agent, pointed at the mocks.
fn config(dir: &Path, port: u16, rest: &str, ws: Option<&str>, wallet: &str) -> std::path::PathBuf {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/hyperliquid.toml"),
    )
    .unwrap();
    let body: String = example
        .lines()
        .filter(|l| !l.starts_with("include"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "wallet_address = \"0x0000000000000000000000000000000000000000\"",
            &format!("wallet_address = \"{wallet}\"\nbase_url = \"{rest}\""),
        )
        .replace(
            "streams = true",
            &match ws {
                Some(url) => format!("streams = true\nws_url = \"{url}\""),
                None => "streams = false".to_string(),
            },
        );
    assert!(body.contains(rest), "the example config changed shape");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
            .unwrap()
            .replace(
                "data_dir = \"./data\"",
                &format!("data_dir = {:?}", dir.join("data").display().to_string()),
            )
            .replace(
                "listen = \"127.0.0.1:9898\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            );
    let path = dir.join("orrery.toml");
    std::fs::write(&path, format!("{shipped}\n{body}\n")).unwrap();
    path
}

struct Run {
    rest: Arc<MockHyperliquid>,
    engine: std::process::Child,
    _dir: tempfile::TempDir,
}

fn start(streams: Option<&HlWsMock>) -> Run {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let rest = MockHyperliquid::start(wallet, Network::Testnet);
    // A budget no run reaches, over an hour: the mock charges and never refuses.
    rest.set_ip_weight_limit(u64::MAX / 4, Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ws_url = streams.map(HlWsMock::url);
    let cfg = config(
        dir.path(),
        port,
        &rest.url(),
        ws_url.as_deref(),
        &wallet.to_string(),
    );
    let engine = spawn_engine(
        &cfg,
        dir.path(),
        &[],
        &[("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY)],
    );
    wait_for(Duration::from_secs(60), "the engine's API", || {
        http_get(port, "/api/status").filter(|(c, _)| *c == 200)
    });
    Run {
        rest: Arc::new(rest),
        engine,
        _dir: dir,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let window = Duration::from_secs(
        std::env::var("STREAM_WEIGHT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(180),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(HlWsMock::start()).unwrap();
    let mut off = start(None);
    let mut on = start(Some(&ws));
    // The account's own orders and fills are pushed as the venue makes them.
    ws.follow(on.rest.user_feed());

    // The venue's live data: top of book from the REST mock's books, the current candle.
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let running = running.clone();
        let rest = on.rest.clone();
        let user = PrivateKey::from_hex(KEY).unwrap().address().to_string();
        let books: Vec<(String, String, String)> = COINS
            .iter()
            .map(|c| {
                let (bid, ask) = rest.top_of_book(c).unwrap();
                (c.to_string(), bid.to_string(), ask.to_string())
            })
            .collect();
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                ws.send_text(all_mids_frame());
                ws.send_text(clearinghouse_frame(&user, &rest.clearinghouse_state()));
                let minute = now_ms() / 60_000 * 60_000;
                for (coin, bid, ask) in &books {
                    ws.send_bbo(coin, bid, ask, now_ms());
                    ws.send_text(candle_frame(coin, minute));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    std::thread::sleep(WARM_UP);
    let (off0, on0) = (off.rest.ip_weight_used(), on.rest.ip_weight_used());
    let started = Instant::now();
    std::thread::sleep(window);
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let off_w = (off.rest.ip_weight_used() - off0) as f64 / minutes;
    let on_w = (on.rest.ip_weight_used() - on0) as f64 / minutes;
    running.store(false, Ordering::Relaxed);
    feeder.join().unwrap();

    println!(
        "stream_rest_weight: window {:.0} s after {} s warm-up",
        window.as_secs_f64(),
        WARM_UP.as_secs()
    );
    println!("  streams off: {off_w:.1} weight/min");
    println!("  streams on:  {on_w:.1} weight/min");
    println!(
        "  ratio: {:.1} % (target <= 20 %)",
        if off_w > 0.0 {
            100.0 * on_w / off_w
        } else {
            0.0
        }
    );
    println!(
        "  /info requests, streams off: {}",
        off.rest.record()["info_requests"]
    );
    println!(
        "  /info requests, streams on:  {}",
        on.rest.record()["info_requests"]
    );
    for r in [&mut off, &mut on] {
        let _ = r.engine.kill();
        let _ = r.engine.wait();
    }
}
