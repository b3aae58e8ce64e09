//! A data dir as a long-running engine leaves it, for the dashboard's load figures: `n`
//! finished orders in the ledger and `n` journaled decisions (one member answer each, a
//! prompt of realistic size), all within the last hours so retention keeps them. Shared by
//! `benches/dashboard.rs` and `tests/dashboard.rs` (`#[path]`).

use std::path::Path;

use orrery_actors::agents::journal::{wait_all, DecisionJournal, DecisionRecord, MemberAnswer};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::TimeInForce;
use orrery_actors::exchanges::{ClientOrderId, OrderRequest, OrderStatus, OrderType, Side};
use orrery_actors::store::{trees, Store};
use rust_decimal::Decimal;

/// Writes `n` cancelled limit orders and `n` decisions into the data dir at `dir`, spaced
/// 100 ms apart and ending a minute ago; returns once everything is on disk and the store
/// is released.
pub fn seed(dir: &Path, n: usize) {
    let store = Store::open(dir).expect("open the data dir to seed");
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - 60_000 - (n as i64) * 100;
    let orders = store
        .tree::<LedgerEntry>(trees::ORDERS)
        .expect("orders tree");
    for i in 0..n {
        let request = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: ["BTC", "ETH", "SOL"][i % 3].into(),
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            size: Decimal::new(15, 3),
            order_type: OrderType::Limit {
                price: Decimal::new(1_000, 0),
                tif: TimeInForce::Gtc,
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        let mut e = LedgerEntry::new_intent("paper", request, "seed", t0 + i as i64 * 100);
        e.status = OrderStatus::Cancelled;
        e.updated_ms = e.created_ms + 50;
        orders
            .put(e.client_id.as_str(), &e)
            .expect("write a seeded order");
    }
    let journal = DecisionJournal::open(&store).expect("open the journal");
    let prompt =
        "Market context for the decision: 60 one-minute candles, position, signals. ".repeat(20);
    let receipts: Vec<_> = (0..n)
        .map(|i| {
            let symbol = ["BTC", "ETH", "SOL"][i % 3];
            let mut r =
                DecisionRecord::begin(t0 + i as i64 * 100, "trend", "paper", symbol, "default");
            r.set_prompt("You are a trading agent.", &prompt);
            let answer = r#"{"action":"NOTHING","confidence":0.4,"reason":"no clear trend"}"#;
            r.members.push(MemberAnswer {
                member: "default".into(),
                deployment: Some("local".into()),
                raw_answer: Some(answer.into()),
                verdict: Some("NOTHING".into()),
                confidence: Some(0.4),
                reason: Some("no clear trend".into()),
                latency_ms: Some(3),
                prompt_tokens: 400,
                completion_tokens: 20,
                ..MemberAnswer::default()
            });
            r.raw_answer = Some(answer.into());
            r.action = Some("NOTHING".into());
            r.confidence = Some(0.4);
            r.outcome = "hold".into();
            journal.append(r)
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime to wait for the journal writer");
    let written = rt.block_on(wait_all(receipts));
    assert!(
        written.iter().all(Result::is_ok),
        "a seeded decision was not written"
    );
    store.flush().expect("flush the seeded data dir");
    drop(journal);
    drop(orders);
    rt.block_on(store.close(std::time::Duration::from_secs(10)))
        .expect("release the seeded data dir");
}
