//! The acceptance of `orrery strategies promote` (issue 14, item 7): a spec from the
//! strategy library, promoted to the paper venue, runs as a strategy agent from the next
//! engine start, and that agent trades the signals the backtester produced for the same
//! spec on the same data — the paper venue replaying the very CSV file the backtest read,
//! under a manual clock, bar by bar.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use orrery::strategies::{promote, promote_running, PromoteBody};
use orrery::{Config, Engine, EngineHandle};
use orrery_actors::agents::runtime::RunNowAnswer;
use orrery_actors::agents::strategy::state::order_client_id;
use orrery_actors::backtest::{self, BacktestConfig};
use orrery_actors::clock::{ManualClock, SharedClock};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::Side;
use orrery_actors::store::{trees, Store};
use orrery_actors::strategies::library::{
    Attempt, ResearchRef, ResearchSource, StrategyLibrary, StrategyStatus,
};
use rust_decimal::Decimal;

const H: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z: the paper market's anchor.
const ANCHOR: i64 = 1_767_225_600_000;

/// The SMA crossover both ways, as a model would write it.
const SPEC: &str = r#"{"name": "wave_cross",
  "indicators": {"fast": {"sma": {"period": 10}}, "slow": {"sma": {"period": 20}}},
  "long": {"entry": {"crosses_above": ["fast", "slow"]}, "exit": {"crosses_below": ["fast", "slow"]}},
  "short": {"entry": {"crosses_below": ["fast", "slow"]}, "exit": {"crosses_above": ["fast", "slow"]}}
}"#;

/// Closes on a sine wave around 60 000 (period `period` bars), each row opening at the previous
/// close; `n` rows, a whole number of waves, so the paper venue's loop is seamless.
fn write_replay(path: &Path, n: i64, period: i64) {
    let close = |j: i64| {
        let j = j.rem_euclid(n);
        60_000
            + (3000.0 * (2.0 * std::f64::consts::PI * j as f64 / period as f64).sin()).round()
                as i64
    };
    let mut s = String::from("timestamp,open,high,low,close,volume\n");
    for j in 0..n {
        let (o, c) = (close(j - 1), close(j));
        s.push_str(&format!(
            "{},{o},{},{},{c},10\n",
            ANCHOR + j * H,
            o.max(c) + 50,
            o.min(c) - 50
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// The shipped config without its trading agent, the paper venue's BTC replaying `replay`.
fn config(data: &Path, replay: &Path) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let cut = shipped
        .find("[[agents.trading]]")
        .expect("the shipped config ends with its trading agent");
    let text = shipped[..cut].replace(
        "[exchanges.venues.paper.symbols.BTC]\n",
        &format!(
            "[exchanges.venues.paper.symbols.BTC]\nreplay_csv = {:?}\n",
            replay.display().to_string()
        ),
    );
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
        ("ORRERY__AGENTS__RISK__ENABLED", "false".to_string()),
    ];
    Config::load_str(
        &text,
        "promotion-test.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap()
}

async fn runs(engine: &EngineHandle, agent: &str) -> u64 {
    engine
        .agents()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == agent)
        .map(|a| a.runs)
        .unwrap_or_else(|| panic!("no agent {agent}"))
}

/// One run of `agent`, waited for until recorded (a scheduled run in progress is waited
/// out first).
async fn run(engine: &EngineHandle, agent: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let before = loop {
        let before = runs(engine, agent).await;
        match engine.run_agent_now(agent).await.unwrap() {
            RunNowAnswer::Started => break before,
            RunNowAnswer::Busy { .. } => {
                assert!(tokio::time::Instant::now() < deadline, "always busy");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    while runs(engine, agent).await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not end"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The attempt `wave_cross` in the library of `data`, not promoted.
fn put_attempt(data: &Path, clock: &std::sync::Arc<ManualClock>) {
    let store = Store::open(data).unwrap();
    let library = StrategyLibrary::open(&store, clock.clone()).unwrap();
    library
        .put(Attempt {
            name: "wave_cross".into(),
            source: ResearchSource::Inline,
            research: ResearchRef::of("Trade the crossover of the 10- and 20-bar SMAs."),
            model: None,
            exchanges: vec![],
            spec: Some(serde_json::from_str(SPEC).unwrap()),
            validation_rounds: vec![],
            backtests: vec![],
        })
        .unwrap();
    store.flush().unwrap();
}

/// The promotion to paper, as `orrery strategies promote wave_cross --symbol BTC ...` asks.
fn promote_body() -> PromoteBody {
    serde_json::from_value(serde_json::json!({
        "symbol": "BTC", "timeframe": "1h", "max_position_usd": 5000, "equity_fraction": 0.1
    }))
    .unwrap()
}

const LIVE_BARS: i64 = 90;

/// The backtest of the same spec on the same file: each trade's signal is the bar before
/// its entry (market orders fill at the next bar's open). (signal bar's open time, a buy),
/// in the window where both have warmed up.
fn backtest_signals(replay: &Path) -> BTreeSet<(i64, bool)> {
    let bars = backtest::data::load(replay).unwrap();
    let spec = orrery_actors::strategies::spec::validate(SPEC).unwrap();
    let result = backtest::run(
        &bars,
        &mut spec.compile().unwrap(),
        // Enough cash for whole bitcoins at 60 000 (the default 10 000 buys none).
        &BacktestConfig {
            cash: 1_000_000.0,
            ..Default::default()
        },
    )
    .unwrap();
    let signals: BTreeSet<(i64, bool)> = result
        .trades
        .iter()
        .chain(&result.open_trades)
        .map(|t| {
            let signal = t.entry_bar as i64 - 1;
            let side = t.size > 0.0;
            (signal, side)
        })
        .filter(|(j, _)| WINDOW.contains(j))
        .map(|(j, side)| (ANCHOR + j * H, side))
        .collect();
    assert!(
        signals.len() >= 3,
        "the wave crosses several times in the window: {signals:?}"
    );
    signals
}

/// From bar 30 on, the agent's warm-up (history before its first live bar) and the
/// backtest's (the file from its first row) have both filled the slow SMA.
const WINDOW: std::ops::Range<i64> = 30..LIVE_BARS;

/// Runs the promoted agent bar by bar over the replay and answers its entries, as
/// [`backtest_signals`] does for the backtest.
async fn agent_signals(engine: &EngineHandle, clock: &ManualClock) -> BTreeSet<(i64, bool)> {
    let agent = engine
        .agents()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "wave_cross-paper")
        .expect("the promotion's agent runs");
    assert_eq!(agent.kind.as_str(), "strategy");
    // The first run warms up on history only.
    run(engine, "wave_cross-paper").await;
    for j in 0..LIVE_BARS {
        clock.set(ANCHOR + (j + 1) * H + 1000);
        run(engine, "wave_cross-paper").await;
    }
    let ledger: std::collections::BTreeMap<String, LedgerEntry> = engine
        .store
        .tree::<LedgerEntry>(trees::ORDERS)
        .unwrap()
        .iter()
        .map(|item| item.unwrap().1)
        .map(|e| (e.client_id.to_string(), e))
        .collect();
    let mut signals = BTreeSet::new();
    for j in WINDOW {
        let bar_ms = ANCHOR + j * H;
        for i in 0..3 {
            let id = order_client_id("wave_cross-paper", "paper", "BTC", bar_ms, i);
            if let Some(e) = ledger.get(&id.to_string()) {
                if !e.request.reduce_only {
                    assert!(e.request.size > Decimal::ZERO, "{e:?}");
                    signals.insert((bar_ms, e.request.side == Side::Buy));
                }
            }
        }
    }
    signals
}

#[test]
fn a_promoted_spec_runs_as_a_paper_agent_that_trades_the_backtests_signals() {
    let dir = tempfile::tempdir().unwrap();
    let (n, period) = (240, 24);
    let replay = dir.path().join("btc-1h.csv");
    write_replay(&replay, n, period);
    let data = dir.path().join("data");
    let config = config(&data, &replay);
    let clock = ManualClock::new(ANCHOR + 30 * 60_000);

    // Promoted while the engine is stopped, as `orrery strategies promote` does then.
    put_attempt(&data, &clock);
    {
        let store = Store::open(&data).unwrap();
        let library = StrategyLibrary::open(&store, clock.clone()).unwrap();
        let report = promote(&config, &library, "wave_cross", promote_body()).unwrap();
        assert_eq!(report.agent.name, "wave_cross-paper");
        assert_eq!(report.starts, "next_engine_start");
        assert_eq!(
            library.get("wave_cross").unwrap().unwrap().status,
            StrategyStatus::Promoted
        );
        store.flush().unwrap();
    }
    let expected = backtest_signals(&replay);

    actix::System::new().block_on(async {
        let shared: SharedClock = clock.clone();
        let engine = Engine::start_with_clock(config.clone(), shared)
            .await
            .unwrap();
        assert_eq!(
            agent_signals(&engine, &clock).await,
            expected,
            "the paper agent's entries are the backtest's"
        );
        engine.close(Duration::from_secs(60)).await.unwrap();
    });
}

/// Promoted through a running engine (what `POST /api/strategies/{name}/promote` and the
/// CLI against a running engine do): the agent joins the live tree at once and trades the
/// backtest's signals.
#[test]
fn a_spec_promoted_while_the_engine_runs_starts_trading_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("btc-1h.csv");
    write_replay(&replay, 240, 24);
    let data = dir.path().join("data");
    let config = config(&data, &replay);
    let clock = ManualClock::new(ANCHOR + 30 * 60_000);
    put_attempt(&data, &clock);
    let expected = backtest_signals(&replay);

    actix::System::new().block_on(async {
        let shared: SharedClock = clock.clone();
        let engine = Engine::start_with_clock(config.clone(), shared)
            .await
            .unwrap();
        let before = engine.agents().await.unwrap();
        assert!(before.iter().all(|a| a.name != "wave_cross-paper"));

        let report = promote_running(&engine, "wave_cross", promote_body())
            .await
            .unwrap();
        assert_eq!(report.starts, "now", "{}", report.message);
        assert!(
            report
                .message
                .contains("started (engine/agents/strategy-wave_cross-paper)"),
            "{}",
            report.message
        );
        let path = "engine/agents/strategy-wave_cross-paper";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while engine
            .root
            .view()
            .node(path)
            .is_none_or(|n| n.state != orrery_actors::supervisor::NodeState::Running)
        {
            assert!(tokio::time::Instant::now() < deadline, "{path} never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A second promotion under the same agent name is refused.
        let again = promote_running(&engine, "wave_cross", promote_body()).await;
        assert!(
            matches!(
                again,
                Err(orrery::strategies::PromoteError::Library(
                    orrery_actors::strategies::library::LibraryError::AgentNameTaken(_)
                ))
            ),
            "{again:?}"
        );

        assert_eq!(
            agent_signals(&engine, &clock).await,
            expected,
            "the agent started at runtime enters where the backtest does"
        );
        engine.close(Duration::from_secs(60)).await.unwrap();
    });
}
