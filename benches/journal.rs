//! Decision journal benchmarks (issue #11):
//! - `journal_write/agent_path`: what a trading agent's run pays per decision to journal
//!   it — the record cloned and handed by value to the group-committing writer (`append`,
//!   one channel send). Target ≤ 50 µs.
//! - `journal_write/durable_per_decision`: a run of 8 decisions appended and waited for
//!   until all are on disk (encoding, insert and the shared flush on an on-disk store),
//!   per decision. The cost a run's end waits for, not the agent's path.
//! - `journal_list/10k`: listing 10 000 decisions as `orrery journal --limit 10000` does
//!   (headers newest first, orders settled from the ledger). Target ≤ 200 ms.
//!
//! Records are realistic: a 60-candle market context and the prompt built from it, one
//! member answer; one decision in ten placed an order that is in the ledger with a fill.
//!
//! Set `ORRERY_BENCH_JOURNAL_DIR` to keep the 10k data dir there (to time the real CLI on
//! it: `orrery journal --config <a config with that data_dir> --limit 10000`).
//!
//! Run: `cargo bench --bench journal -- --warm-up-time 1 --measurement-time 5`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use orrery::journal::{list, JournalQuery};
use orrery_actors::agents::journal::{wait_all, DecisionJournal, DecisionRecord, MemberAnswer};
use orrery_actors::agents::prompt;
use orrery_actors::exchanges::gateway::OrderReport;
use orrery_actors::exchanges::ledger::{FillRecord, LedgerEntry};
use orrery_actors::exchanges::*;
use orrery_actors::models::{MarketContext, StructuredContext};
use orrery_actors::store::{trees, Store};
use rust_decimal::Decimal;

const T0: i64 = 1_767_268_800_000;

fn context(symbol: &str) -> MarketContext {
    let candles = (0..60)
        .map(|i| {
            let p = Decimal::new(6_012_345 + i * 37, 2);
            Candle {
                open_time_ms: T0 - (60 - i) * 60_000,
                open: p,
                high: p + Decimal::new(1234, 2),
                low: p - Decimal::new(987, 2),
                close: p + Decimal::new(321, 2),
                volume: Decimal::new(512_345, 2),
            }
        })
        .collect();
    MarketContext {
        venue: "paper".into(),
        symbol: symbol.into(),
        timeframe: "1m".into(),
        price: Decimal::new(6_014_567, 2),
        candles,
        position: None,
        account_value: Decimal::new(1_000_000, 2),
        signals: Vec::new(),
    }
}

fn record(i: i64, order: Option<&LedgerEntry>) -> DecisionRecord {
    let symbol = ["BTC", "ETH", "SOL"][(i % 3) as usize];
    let ctx = context(symbol);
    let mut r = DecisionRecord::begin(T0 + i * 1000, "trend", "paper", symbol, "default");
    r.set_prompt(prompt::TRADE_SYSTEM, &prompt::trade_prompt(&ctx));
    r.context = Some(StructuredContext::Market(ctx));
    let answer =
        r#"{"action":"BUY","confidence":0.72,"reason":"SMA9 above SMA21, RSI 61, momentum +0.8%"}"#;
    r.members.push(MemberAnswer {
        member: "default".into(),
        deployment: Some("local".into()),
        raw_answer: Some(answer.into()),
        verdict: Some("BUY".into()),
        confidence: Some(0.72),
        reason: Some("SMA9 above SMA21".into()),
        latency_ms: Some(3),
        prompt_tokens: 900,
        completion_tokens: 25,
        ..MemberAnswer::default()
    });
    r.deployment = Some("local".into());
    r.raw_answer = Some(answer.into());
    r.action = Some("BUY".into());
    r.confidence = Some(0.72);
    r.reason = Some("SMA9 above SMA21".into());
    r.outcome = "enter_long".into();
    r.latency_ms = Some(3);
    if let Some(e) = order {
        r.orders.push(OrderReport::from(e));
    }
    r
}

fn order(i: i64) -> (LedgerEntry, FillRecord) {
    let request = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: Decimal::new(15, 3),
        order_type: OrderType::Market {
            max_slippage: Decimal::new(1, 2),
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    let mut e = LedgerEntry::new_intent("paper", request, "agent:trend", T0 + i * 1000);
    e.status = OrderStatus::Filled;
    e.filled_size = e.request.size;
    e.avg_fill_price = Some(Decimal::new(6_014_567, 2));
    let fill = Fill {
        fill_id: format!("f{i}"),
        client_id: Some(e.client_id.clone()),
        venue_order_id: i.to_string(),
        symbol: "BTC".into(),
        side: Side::Buy,
        price: Decimal::new(6_014_567, 2),
        size: e.request.size,
        fee: Decimal::new(40_598, 5),
        closed_pnl: Decimal::ZERO,
        time_ms: T0 + i * 1000,
        fee_asset: None,
    };
    (
        e,
        FillRecord {
            venue: "paper".into(),
            fill,
        },
    )
}

fn write_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    let template = record(0, None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("journal_write");
    g.bench_function("agent_path", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let ids: Vec<String> = (0..iters)
                .map(|i| format!("{:013}-{:06}", T0 + i as i64, i % 1_000_000))
                .collect();
            // In chunks well under the writer's queue, each drained untimed (as a run's
            // end waits for its decisions), so no append ever meets a full queue.
            for chunk in ids.chunks(2048) {
                let mut receipts = Vec::with_capacity(chunk.len());
                for id in chunk {
                    // The agent's path as `run_once` has it: the record cloned (the run
                    // keeps its own) and handed over.
                    let started = Instant::now();
                    let mut r = template.clone();
                    r.id = id.clone();
                    receipts.push(journal.append(r));
                    spent += started.elapsed();
                }
                for w in runtime.block_on(wait_all(receipts)) {
                    w.unwrap();
                }
            }
            spent
        })
    });
    g.bench_function("durable_per_decision", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for run in 0..iters {
                let receipts = (0..8)
                    .map(|s| {
                        let mut r = template.clone();
                        r.id = format!("{:013}-{:06}", T0 + run as i64, s);
                        journal.append(r)
                    })
                    .collect();
                for w in runtime.block_on(wait_all(receipts)) {
                    w.unwrap();
                }
            }
            started.elapsed() / 8
        })
    });
    g.finish();
}

const LISTED: i64 = 10_000;

fn seed(dir: &std::path::Path) {
    let store = Store::open(dir).unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    let orders = store.tree::<LedgerEntry>(trees::ORDERS).unwrap();
    let fills = store.tree::<FillRecord>(trees::FILLS).unwrap();
    for i in 0..LISTED {
        let placed = (i % 10 == 0).then(|| {
            let (e, f) = order(i);
            orders.put(e.client_id.as_str(), &e).unwrap();
            fills.put(&format!("paper/{}", f.fill.fill_id), &f).unwrap();
            e
        });
        journal.record(&record(i, placed.as_ref())).unwrap();
    }
    store.flush().unwrap();
}

fn listing(c: &mut Criterion) {
    let kept = std::env::var_os("ORRERY_BENCH_JOURNAL_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = kept.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    if !dir.join("db").exists() {
        seed(&dir);
    }
    let store = Store::open(&dir).unwrap();
    let query = JournalQuery {
        limit: Some(LISTED as usize),
        ..JournalQuery::default()
    };
    assert_eq!(list(&store, &query).unwrap().len(), LISTED as usize);
    let mut g = c.benchmark_group("journal_list");
    g.sample_size(20);
    g.bench_function("10k", |b| b.iter(|| list(&store, &query).unwrap()));
    g.finish();
}

criterion_group!(benches, write_path, listing);
criterion_main!(benches);
