//! `orrery data fetch` through the real binary against the venue mocks on loopback: a
//! multi-page Hyperliquid fetch equals the mock's series (its gap reported, not filled), a
//! Binance spot fetch resumed after an interrupted file, a 429 with `Retry-After` on
//! Binance USDⓈ-M futures honoured, and the refusals (`--until` before `--since`, an
//! unknown venue, a paper venue).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use orrery_actors::exchanges::binance::mock::{Fault, MockBinance};
use orrery_actors::exchanges::binance_futures::mock::MockBinanceFutures;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::exchanges::Candle;
use rust_decimal::Decimal;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const H: i64 = 3_600_000;
/// 2024-01-01T00:00:00Z.
const JAN_1_2024: i64 = 1_704_067_200_000;

/// No keys in the environment: history is public.
fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .env_remove("HYPER_LIQUID_ETH_PRIVATE_KEY")
        .env_remove("HYPERLIQUID_PRIVATE_KEY")
        .env_remove("BINANCE_API_KEY")
        .env_remove("BINANCE_API_SECRET")
        .env_remove("BINANCE_FUTURES_API_KEY")
        .env_remove("BINANCE_FUTURES_API_SECRET")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `n` hourly candles from `start`, prices wandering deterministically with decimals of
/// the kind venues send.
fn series(start: i64, n: usize) -> Vec<Candle> {
    let mut out = Vec::with_capacity(n);
    let mut price = Decimal::new(4_200_000, 2);
    for i in 0..n {
        let step = Decimal::new(((i * 7919) % 401) as i64 - 200, 2);
        let open = price;
        let close = price + step;
        let wick = Decimal::new(((i * 31) % 97) as i64 + 1, 2);
        out.push(Candle {
            open_time_ms: start + i as i64 * H,
            open,
            high: open.max(close) + wick,
            low: open.min(close) - wick,
            close,
            volume: Decimal::new(((i * 104_729) % 100_000) as i64, 3),
        });
        price = close;
    }
    out
}

/// The CSV the command must write for `candles`, stated here rather than taken from the
/// production writer.
fn expected_csv(candles: &[Candle]) -> String {
    let mut s = String::from("timestamp,open,high,low,close,volume\n");
    for c in candles {
        s.push_str(&format!(
            "{},{},{},{},{},{}\n",
            c.open_time_ms, c.open, c.high, c.low, c.close, c.volume
        ));
    }
    s
}

/// Rows of a written file as numbers, so venue formatting (trailing zeros) does not matter.
fn rows(path: &Path) -> Vec<(i64, [Decimal; 5])> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,open,high,low,close,volume"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "line `{l}`");
            let d = |i: usize| f[i].parse::<Decimal>().unwrap();
            (f[0].parse().unwrap(), [d(1), d(2), d(3), d(4), d(5)])
        })
        .collect()
}

fn as_rows(candles: &[Candle]) -> Vec<(i64, [Decimal; 5])> {
    candles
        .iter()
        .map(|c| (c.open_time_ms, [c.open, c.high, c.low, c.close, c.volume]))
        .collect()
}

fn fetch(cfg: &str, venue: &str, symbol: &str, since: &str, until: &str, out: &Path) -> Output {
    cli(&[
        "data",
        "fetch",
        "--config",
        cfg,
        "--venue",
        venue,
        "--symbol",
        symbol,
        "--timeframe",
        "1h",
        "--since",
        since,
        "--until",
        until,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_multi_page_hyperliquid_fetch_equals_the_mock_series_and_reports_its_gap() {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    // 12 000 hourly candles (three answers of at most 5000), 5 missing in the middle.
    let mut history = series(JAN_1_2024, 12_000);
    history.drain(7000..7005);
    mock.set_candle_history("BTC", "1h", history.clone());
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[exchanges.venues.hl]\nkind = \"hyperliquid\"\nnetwork = \"testnet\"\nbase_url = \"{}\"\nwallet_address = \"{wallet}\"\nrequest_timeout = \"5s\"\n",
        mock.url()
    );
    let config = test_config(dir.path(), free_port(), &extra);
    let out_file = dir.path().join("btc-1h.csv");
    let until = (JAN_1_2024 + 12_000 * H).to_string();
    let out = fetch(
        config.to_str().unwrap(),
        "hl",
        "BTC",
        "2024-01-01",
        &until,
        &out_file,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        expected_csv(&history),
        "the file is the mock's series, row for row"
    );
    // The backtester's loader reads it.
    let bars = orrery_actors::backtest::data::load(&out_file).unwrap();
    assert_eq!(bars.len(), 11_995);
    assert!(
        mock.info_count("candleSnapshot") >= 3,
        "one answer holds at most 5000 candles: {} requests",
        mock.info_count("candleSnapshot")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("11995 rows")
            && stdout.contains("gaps in the venue's history: 1 (5 bars missing)"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("2024-01-01 00:00 UTC .."), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("page 3:"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_binance_fetch_resumes_after_an_interrupted_file_without_duplicates_or_gaps() {
    let mock = MockBinance::start();
    let history = series(JAN_1_2024, 2500);
    mock.set_klines("BTCUSDT", "1h", history.clone());
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[exchanges.venues.bn]\nkind = \"binance\"\nbase_url = {:?}\nsymbols = [\"BTC\"]\nrequest_timeout = \"5s\"\n",
        mock.url()
    );
    let config = test_config(dir.path(), free_port(), &extra);
    let cfg = config.to_str().unwrap();
    let out_file = dir.path().join("btc.csv");
    let until = (JAN_1_2024 + 2500 * H).to_string();

    // A first run that stopped after 1234 bars...
    let first = fetch(
        cfg,
        "bn",
        "BTC",
        "2024-01-01",
        &(JAN_1_2024 + 1234 * H).to_string(),
        &out_file,
    );
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(rows(&out_file), as_rows(&history[..1234]));
    // ...and was killed inside the write of the next line.
    let mut partial = std::fs::OpenOptions::new()
        .append(true)
        .open(&out_file)
        .unwrap();
    std::io::Write::write_all(
        &mut partial,
        format!("{},42000.1,420", JAN_1_2024 + 1234 * H).as_bytes(),
    )
    .unwrap();
    drop(partial);
    let requests_before = mock.requests().len();

    let resumed = fetch(cfg, "bn", "BTC", "2024-01-01", &until, &out_file);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(rows(&out_file), as_rows(&history), "no duplicate, no gap");
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains("cut a partial last line"),
        "{}",
        text(&resumed)
    );
    assert!(stderr.contains("1234 rows up to"), "{}", text(&resumed));
    // It asked only for what was missing, 1000 rows a page.
    let klines: Vec<_> = mock.requests()[requests_before..]
        .iter()
        .filter(|r| r.route() == "/api/v3/klines")
        .cloned()
        .collect();
    assert_eq!(
        klines[0].query("startTime"),
        Some((JAN_1_2024 + 1234 * H).to_string().as_str())
    );
    assert!(klines.iter().all(|r| r.query("limit") == Some("1000")));
    assert_eq!(klines.len(), 2, "1266 rows are two pages of 1000");
    assert!(
        String::from_utf8_lossy(&resumed.stdout).contains("2500 rows (1266 new"),
        "{}",
        text(&resumed)
    );

    // Run again: nothing new, nothing written twice.
    let again = fetch(cfg, "bn", "BTC", "2024-01-01", &until, &out_file);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(rows(&out_file), as_rows(&history));
}

#[test]
fn a_429_with_retry_after_is_waited_out_on_binance_futures() {
    let mock = MockBinanceFutures::start();
    let history = series(JAN_1_2024, 1600);
    mock.set_klines("BTCUSDT", "1h", history.clone());
    mock.push_fault(Fault::RateLimited {
        retry_after_secs: 2,
    });
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[exchanges.venues.bf]\nkind = \"binance_futures\"\nbase_url = {:?}\nsymbols = [\"BTC\"]\nrequest_timeout = \"5s\"\n",
        mock.url()
    );
    let config = test_config(dir.path(), free_port(), &extra);
    let out_file = dir.path().join("bf.csv");
    let out = fetch(
        config.to_str().unwrap(),
        "bf",
        "BTC",
        "2024-01-01",
        &(JAN_1_2024 + 1600 * H).to_string(),
        &out_file,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows(&out_file), as_rows(&history));
    let times = mock.kline_request_times();
    assert_eq!(
        times.len(),
        3,
        "the refused request, then two pages: {times:?}"
    );
    assert!(
        times[1] - times[0] >= 2000,
        "the retry came {} ms after a 429 that asked for 2 s",
        times[1] - times[0]
    );
}

#[test]
fn until_before_since_an_unknown_venue_and_a_paper_venue_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let cfg = config.to_str().unwrap();
    let out_file = dir.path().join("x.csv");

    let out = fetch(cfg, "paper", "BTC", "2024-02-01", "2024-01-01", &out_file);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--until 2024-01-01 00:00 UTC is not after --since 2024-02-01 00:00 UTC"),
        "{}",
        text(&out)
    );
    assert!(!out_file.exists(), "nothing is written for a refused range");

    let out = fetch(cfg, "nowhere", "BTC", "2024-01-01", "2024-02-01", &out_file);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nowhere") && stderr.contains("paper"),
        "{}",
        text(&out)
    );
    assert!(!out_file.exists());

    let out = fetch(cfg, "paper", "BTC", "2024-01-01", "2024-02-01", &out_file);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a paper venue: it has no candle history"),
        "{}",
        text(&out)
    );
    assert!(!out_file.exists());
}
