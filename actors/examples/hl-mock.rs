//! The mock Hyperliquid (`exchanges::hyperliquid::mock`) as its own process, so it outlives
//! the engine processes a harness kills and its record stays the venue's truth.
//!
//! ```text
//! cargo run -p orrery-actors --example hl-mock --features testkit -- \
//!     --wallet 0x14791697260E4c9A71f18484C9f997B308e59325 [--network testnet] [--seed 7] \
//!     [--lag-ms 500-3000] [--lag-share 0.3] [--exchange-faults 0.08] [--info-faults 0.03] \
//!     [--candle-wave]
//! ```
//!
//! Prints `url=http://127.0.0.1:PORT` and then `ws_url=ws://127.0.0.1:PORT/ws` on stdout
//! (two lines in one write) once it serves, then serves until killed. The websocket is the
//! loopback mock (`exchanges::hyperliquid::ws_mock`) driven by this REST mock's account: an
//! order placed over REST produces its `orderUpdates`, `userFills` and `userEvents` frames. `GET /_mock/record` answers the venue's record (orders, sends per cloid, actions
//! still in the lag queue, /info requests per type); `GET /_mock/calm` turns lag and faults
//! off; `POST /_mock/leader` with `{"user","coin","szi","entryPx"}` sets another account's
//! position (a leader to copy, see `config/examples/copy-trading.toml`). Lag and faults are drawn from a generator seeded by `--seed`.

use std::io::Write;
use std::time::Duration;

use orrery_actors::exchanges::hyperliquid::mock::{Chaos, MockHyperliquid};
use orrery_actors::exchanges::hyperliquid::signing::Address;
use orrery_actors::exchanges::hyperliquid::ws_mock::HlWsMock;
use orrery_actors::exchanges::hyperliquid::Network;

#[derive(Debug)]
struct Args {
    wallet: Address,
    network: Network,
    chaos: Chaos,
    lag: Option<(Duration, Duration)>,
    candle_wave: bool,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut wallet = None;
    let mut network = Network::Testnet;
    let mut lag = None;
    let mut candle_wave = false;
    let mut chaos = Chaos {
        seed: 0,
        lag_share: 1.0,
        exchange_fault_rate: 0.0,
        info_fault_rate: 0.0,
    };
    while let Some(flag) = argv.next() {
        if flag == "--candle-wave" {
            candle_wave = true;
            continue;
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let rate = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("{flag}: `{v}` is not a share between 0 and 1"))
        };
        match flag.as_str() {
            "--wallet" => {
                wallet = Some(
                    value
                        .parse::<Address>()
                        .map_err(|e| format!("--wallet: {e}"))?,
                )
            }
            "--network" => {
                network = match value.as_str() {
                    "testnet" => Network::Testnet,
                    "mainnet" => Network::Mainnet,
                    other => return Err(format!("--network: `{other}` is not testnet or mainnet")),
                }
            }
            "--seed" => {
                chaos.seed = value
                    .parse()
                    .map_err(|_| format!("--seed: `{value}` is not a number"))?
            }
            "--lag-ms" => {
                let (min, max) = value
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| format!("--lag-ms: `{value}` is not MIN-MAX milliseconds"))?;
                lag = Some((Duration::from_millis(min), Duration::from_millis(max)));
            }
            "--lag-share" => chaos.lag_share = rate(&value)?,
            "--exchange-faults" => chaos.exchange_fault_rate = rate(&value)?,
            "--info-faults" => chaos.info_fault_rate = rate(&value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        wallet: wallet.ok_or("--wallet is required")?,
        network,
        chaos,
        lag,
        candle_wave,
    })
}

fn main() -> std::process::ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hl-mock: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mock = MockHyperliquid::start(args.wallet, args.network);
    mock.set_apply_lag(args.lag);
    mock.set_chaos(Some(args.chaos));
    mock.set_candle_wave(args.candle_wave);
    // The websocket's tasks run on this runtime while the main thread parks below.
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hl-mock: cannot start the websocket's runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let ws = match runtime.block_on(HlWsMock::start()) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("hl-mock: cannot listen for the websocket: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    ws.follow(mock.user_feed());
    // One write: a harness that reads only the first line and closes the pipe never
    // makes a second write fail.
    print!("url={}\nws_url={}\n", mock.url(), ws.url());
    // A harness reads the line through a pipe: flush it now, not at exit.
    if std::io::stdout().flush().is_err() {
        return std::process::ExitCode::FAILURE;
    }
    loop {
        std::thread::park();
    }
}
