//! The strategy agent (issue 14, item 8) in an embedded engine with a manual clock, on a
//! paper venue replaying an hourly candle file: its orders are the actions of the same
//! strategy run directly over the same bars (computed here from the strategy, bar by bar),
//! a restart in the middle (with bars closing while it is down) neither doubles nor skips
//! one, and with `approve_model` a veto — and a failing model — is journaled and trades
//! nothing, while an approval trades.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orrery::{Config, Engine, EngineHandle};
use orrery_actors::agents::runtime::RunNowAnswer;
use orrery_actors::agents::strategy::state::order_client_id;
use orrery_actors::agents::{DecisionJournal, DecisionRecord};
use orrery_actors::clock::{ManualClock, SharedClock};
use orrery_actors::exchanges::gateway::GetCandles;
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::{Side, Timeframe};
use orrery_actors::store::trees;
use orrery_actors::strategies::api::{self, Action, Actions, Bar, PositionView};
use orrery_actors::strategies::builtin;
use orrery_actors::testkit::{MockServer, Reply};
use parking_lot::Mutex;
use rust_decimal::Decimal;

const H: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z: the paper market's anchor (00:00 UTC of the account's first day).
const ANCHOR: i64 = 1_767_225_600_000;
const KEY_ENV: &str = "ORRERY_STRATEGY_TEST_KEY";

/// Row `j` of the looped replay (any integer; the file holds `n` rows, a whole number of
/// waves, so the loop is seamless): closes on a sine wave around 60 000, each row opening
/// at the previous close, wicks of 50.
fn close_at(j: i64, n: i64, period: i64) -> i64 {
    let j = j.rem_euclid(n);
    60_000 + (3000.0 * (2.0 * std::f64::consts::PI * j as f64 / period as f64).sin()).round() as i64
}

fn row(j: i64, n: i64, period: i64) -> (i64, i64, i64, i64) {
    let (o, c) = (close_at(j - 1, n, period), close_at(j, n, period));
    (o, o.max(c) + 50, o.min(c) - 50, c)
}

fn write_replay(path: &Path, n: i64, period: i64) {
    let mut s = String::from("timestamp,open,high,low,close,volume\n");
    for j in 0..n {
        let (o, h, l, c) = row(j, n, period);
        s.push_str(&format!("{},{o},{h},{l},{c},10\n", ANCHOR + j * H));
    }
    std::fs::write(path, s).unwrap();
}

fn bar(j: i64, n: i64, period: i64) -> Bar {
    let (o, h, l, c) = row(j, n, period);
    Bar {
        time_ms: ANCHOR + j * H,
        open: o as f64,
        high: h as f64,
        low: l as f64,
        close: c as f64,
        volume: 10.0,
    }
}

/// The shipped config without its trading agent, BTC replaying `replay`, one strategy
/// agent `strat` that runs only when asked, and `extra` (models).
fn config(data: &Path, replay: &Path, agent_extra: &str, extra: &str) -> Config {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .unwrap();
    let cut = shipped
        .find("[[agents.trading]]")
        .expect("the shipped config ends with its trading agent");
    let text = format!(
        r#"{}
{extra}
[[agents.strategy]]
name = "strat"
venue = "paper"
symbol = "BTC"
timeframe = "1h"
strategy = "sma_cross"
equity_fraction = 0.1
max_position_usd = 5000
interval = "1day"
initial_delay = "1day"
{agent_extra}
"#,
        shipped[..cut].replace(
            "[exchanges.venues.paper.symbols.BTC]\n",
            &format!(
                "[exchanges.venues.paper.symbols.BTC]\nreplay_csv = {:?}\n",
                replay.display().to_string()
            ),
        ),
    );
    std::env::set_var(KEY_ENV, "sk-test-strategy");
    let env = [
        ("ORRERY__ENGINE__DATA_DIR", data.display().to_string()),
        ("ORRERY__TELEMETRY__DISABLED", "true".to_string()),
        ("ORRERY__AGENTS__RISK__ENABLED", "false".to_string()),
    ];
    Config::load_str(
        &text,
        "strategy-test.toml",
        env.into_iter().map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap()
}

async fn runs(engine: &EngineHandle) -> u64 {
    engine
        .agents()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "strat")
        .map(|a| a.runs)
        .unwrap()
}

/// One run of `strat`, waited for until recorded.
async fn run(engine: &EngineHandle) {
    let before = runs(engine).await;
    assert_eq!(
        engine.run_agent_now("strat").await.unwrap(),
        RunNowAnswer::Started
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while runs(engine).await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not end"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ledger(engine: &EngineHandle) -> BTreeMap<String, LedgerEntry> {
    engine
        .store
        .tree::<LedgerEntry>(trees::ORDERS)
        .unwrap()
        .iter()
        .map(|item| item.unwrap().1)
        .map(|e| (e.client_id.to_string(), e))
        .collect()
}

fn journal(engine: &EngineHandle) -> Vec<DecisionRecord> {
    let mut r: Vec<DecisionRecord> = DecisionJournal::open(&engine.store)
        .unwrap()
        .recent(10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.agent == "strat")
        .collect();
    r.reverse();
    r
}

/// What the strategy run directly decides on bars `live` after warming up on `warm`: per
/// live bar its actions, with the position a runner that executes them would hold.
fn direct_actions(
    params: &BTreeMap<String, f64>,
    warm: &[Bar],
    live: &[Bar],
) -> Vec<(i64, u32, Action, f64)> {
    let mut s = builtin::build("sma_cross", params).unwrap();
    let mut actions = Actions::new();
    for b in warm {
        s.on_bar(b, &PositionView::FLAT, &mut actions);
        actions.clear();
    }
    let mut pos = 0.0f64;
    let mut out = Vec::new();
    for b in live {
        let view = PositionView {
            size: pos,
            entry_price: (pos != 0.0).then_some(b.close),
        };
        s.on_bar(b, &view, &mut actions);
        for (i, a) in actions.drain().enumerate() {
            out.push((b.time_ms, i as u32, a, pos));
            pos = match a {
                Action::ClosePosition => 0.0,
                Action::Order(o) => pos + o.side.sign(),
            };
        }
    }
    out
}

async fn start(config: Config, clock: &Arc<ManualClock>) -> EngineHandle {
    let shared: SharedClock = clock.clone();
    Engine::start_with_clock(config, shared).await.unwrap()
}

#[test]
fn the_agent_trades_what_the_strategy_decides_on_the_replayed_bars_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (n, period) = (240, 48);
    let replay = dir.path().join("btc-1h.csv");
    write_replay(&replay, n, period);
    let data = dir.path().join("data");
    let clock = ManualClock::new(ANCHOR + 30 * 60_000);
    let live_bars = 90i64;
    // The warm-up the agent feeds: the 71 closed bars before the first live one.
    let warm: Vec<Bar> = (-71..0).map(|j| bar(j, n, period)).collect();
    let live: Vec<Bar> = (0..live_bars).map(|j| bar(j, n, period)).collect();
    let expected = direct_actions(&BTreeMap::new(), &warm, &live);
    // The engine is down while the bar of a signal (and the one after it) closes.
    let down = expected
        .iter()
        .map(|(t, _, a, _)| ((t - ANCHOR) / H, a))
        .find(|(j, a)| *j >= 10 && matches!(a, Action::Order(_)))
        .map(|(j, _)| j)
        .expect("a signal after the tenth bar");
    actix::System::new().block_on(async {
        let mut engine = start(config(&data, &replay, "", ""), &clock).await;
        // The first run warms up on history only.
        run(&engine).await;
        assert!(ledger(&engine).is_empty());
        // The paper venue's candles are the file's rows, mapped onto the clock.
        let candles = engine
            .gateway
            .send(GetCandles {
                venue: "paper".into(),
                symbol: "BTC".into(),
                timeframe: Timeframe::H1,
                lookback: 40,
            })
            .await
            .unwrap()
            .unwrap();
        for c in candles.iter().filter(|c| c.open_time_ms + H <= ANCHOR) {
            let b = bar((c.open_time_ms - ANCHOR) / H, n, period);
            let f = |d: Decimal| d.to_string().parse::<f64>().unwrap();
            assert_eq!(
                (f(c.open), f(c.high), f(c.low), f(c.close)),
                (b.open, b.high, b.low, b.close),
                "candle at {}",
                c.open_time_ms
            );
        }
        for j in 0..live_bars {
            if j == down + 1 {
                // Restart with two bars closing while the engine is down, the older one
                // the signal's.
                engine.close(Duration::from_secs(60)).await.unwrap();
                clock.set(ANCHOR + (j + 1) * H + 1000);
                engine = start(config(&data, &replay, "", ""), &clock).await;
                run(&engine).await;
                continue;
            }
            if j == down {
                continue;
            }
            clock.set(ANCHOR + (j + 1) * H + 1000);
            run(&engine).await;
        }
        assert!(
            expected
                .iter()
                .filter(|(_, _, a, _)| matches!(a, Action::Order(_)))
                .count()
                >= 3,
            "the wave should cross several times: {expected:?}"
        );
        let ledger = ledger(&engine);
        let mut ours = 0;
        for (bar_ms, i, action, pos) in &expected {
            let id = order_client_id("strat", "paper", "BTC", *bar_ms, *i).to_string();
            match action {
                Action::ClosePosition if *pos == 0.0 => {
                    assert!(
                        !ledger.contains_key(&id),
                        "a close of nothing was sent at {bar_ms}"
                    )
                }
                Action::ClosePosition => {
                    let e = ledger
                        .get(&id)
                        .unwrap_or_else(|| panic!("no close at {bar_ms}"));
                    assert!(e.request.reduce_only, "{e:?}");
                    let side = if *pos > 0.0 { Side::Sell } else { Side::Buy };
                    assert_eq!(e.request.side, side);
                    ours += 1;
                }
                Action::Order(o) => {
                    let e = ledger
                        .get(&id)
                        .unwrap_or_else(|| panic!("no order at {bar_ms}"));
                    let side = match o.side {
                        api::Side::Buy => Side::Buy,
                        api::Side::Sell => Side::Sell,
                    };
                    assert_eq!(e.request.side, side, "{e:?}");
                    assert!(!e.request.reduce_only);
                    // 0.1 of the equity at the bar's close, rounded down to the lot.
                    let notional = e.request.size
                        * Decimal::from(live[((bar_ms - ANCHOR) / H) as usize].close as i64);
                    assert!(
                        notional > Decimal::from(900) && notional <= Decimal::from(1010),
                        "{notional}"
                    );
                    ours += 1;
                }
            }
        }
        assert_eq!(
            ledger.len(),
            ours,
            "no order beyond the strategy's: {ledger:#?}"
        );
        // One journal record per decision, each bar once.
        let records = journal(&engine);
        assert_eq!(records.len(), expected.len(), "{records:#?}");
        let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
        assert!(
            outcomes
                .iter()
                .all(|o| ["placed", "nothing_to_close"].contains(o)),
            "{outcomes:?}"
        );
        engine.close(Duration::from_secs(60)).await.unwrap();
    });
}

#[test]
fn a_veto_and_a_failing_model_are_journaled_and_trade_nothing_an_approval_trades() {
    let dir = tempfile::tempdir().unwrap();
    let (n, period) = (240, 12);
    let replay = dir.path().join("btc-1h.csv");
    write_replay(&replay, n, period);
    let data = dir.path().join("data");
    let answer = Arc::new(Mutex::new(String::from(
        "VETO: volume is too thin to trust this cross",
    )));
    let a = answer.clone();
    let server = MockServer::start(move |_| {
        let text = a.lock().clone();
        if text == "fail" {
            Reply::json(
                500,
                &serde_json::json!({"error": {"message": "upstream down"}}),
            )
        } else {
            Reply::openai_chat_completion(&text)
        }
    });
    let models = format!(
        r#"
[models.approver]
[[models.approver.deployments]]
id = "approver-dep"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
api_key_env = "{KEY_ENV}"
timeout = "5s"
"#,
        server.url()
    );
    let agent =
        "params = { fast = 2, slow = 5 }\napprove_model = \"approver\"\nmodel_timeout = \"5s\"";
    let clock = ManualClock::new(ANCHOR + 30 * 60_000);
    actix::System::new().block_on(async {
        let engine = start(config(&data, &replay, agent, &models), &clock).await;
        run(&engine).await;
        // The next bar to close: each step moves the clock past one more bar.
        let mut j = 0;
        let mut next_bar = || {
            j += 1;
            j
        };
        // Bars until the first order signal: vetoed.
        let first_order = |records: &[DecisionRecord]| {
            records
                .iter()
                .find(|r| matches!(r.action.as_deref(), Some("BUY") | Some("SELL")))
                .cloned()
        };
        let mut vetoed = None;
        for _ in 0..24 {
            let k = next_bar();
            clock.set(ANCHOR + k * H + 1000);
            run(&engine).await;
            if let Some(r) = first_order(&journal(&engine)) {
                vetoed = Some(r);
                break;
            }
        }
        let vetoed = vetoed.expect("a signal within two waves");
        assert_eq!(vetoed.outcome, "vetoed", "{vetoed:#?}");
        assert_eq!(vetoed.model, "approver");
        assert_eq!(
            vetoed.raw_answer.as_deref(),
            Some("VETO: volume is too thin to trust this cross")
        );
        assert!(
            vetoed.prompt.contains("Signal: ") && vetoed.prompt.contains("APPROVE or VETO?"),
            "{}",
            vetoed.prompt
        );
        assert!(
            vetoed
                .reason
                .as_deref()
                .unwrap()
                .contains("volume is too thin"),
            "{vetoed:#?}"
        );
        assert!(
            ledger(&engine).is_empty(),
            "a vetoed signal placed an order"
        );

        // An approval trades.
        *answer.lock() = "APPROVE\nThe cross is clean.".into();
        let seen = journal(&engine).len();
        let mut approved = None;
        for _ in 0..24 {
            let k = next_bar();
            clock.set(ANCHOR + k * H + 1000);
            run(&engine).await;
            if let Some(r) = first_order(&journal(&engine)[seen..]) {
                approved = Some(r);
                break;
            }
        }
        let approved = approved.expect("a second signal");
        assert_eq!(approved.outcome, "placed", "{approved:#?}");
        assert_eq!(approved.orders.len(), 1);
        assert_eq!(
            ledger(&engine).len(),
            1 + journal(&engine)[seen..]
                .iter()
                .filter(|r| r.action.as_deref() == Some("CLOSE") && r.outcome == "placed")
                .count()
        );

        // A model that fails vetoes (fail closed).
        *answer.lock() = "fail".into();
        let seen = journal(&engine).len();
        let orders_before = ledger(&engine).len();
        let mut failed = None;
        for _ in 0..24 {
            let k = next_bar();
            clock.set(ANCHOR + k * H + 1000);
            run(&engine).await;
            if let Some(r) = first_order(&journal(&engine)[seen..]) {
                failed = Some(r);
                break;
            }
        }
        let failed = failed.expect("a third signal");
        assert_eq!(failed.outcome, "vetoed", "{failed:#?}");
        assert!(
            failed
                .error
                .as_deref()
                .unwrap_or("")
                .contains("fail closed"),
            "{failed:#?}"
        );
        let closes = journal(&engine)[seen..]
            .iter()
            .filter(|r| r.action.as_deref() == Some("CLOSE") && r.outcome == "placed")
            .count();
        assert_eq!(
            ledger(&engine).len(),
            orders_before + closes,
            "only the close (not put to the model) was sent"
        );
        engine.close(Duration::from_secs(60)).await.unwrap();
    });
}
