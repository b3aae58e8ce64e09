use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::exchanges::ledger::LedgerEntry;
use crate::exchanges::{ClientOrderId, OrderRequest, OrderStatus, OrderType, Side};

const T0: Millis = 1_767_268_800_000; // 2026-01-01T12:00:00Z

fn record(time_ms: Millis, agent: &str, symbol: &str) -> DecisionRecord {
    let mut r = DecisionRecord::begin(time_ms, agent, "paper", symbol, "default");
    r.set_prompt("sys", &format!("prompt {symbol}"));
    r.action = Some("BUY".into());
    r.outcome = "enter_long".into();
    r
}

#[test]
fn the_tally_counts_votes_and_abstentions_apart() {
    let m = |verdict: Option<&str>, abstention| MemberAnswer {
        verdict: verdict.map(str::to_string),
        abstention,
        ..MemberAnswer::default()
    };
    let t = VoteTally::of(&[
        m(Some("BUY"), None),
        m(Some("BUY"), None),
        m(Some("SELL"), None),
        m(Some("NOTHING"), Some(Abstention::Nothing)),
        m(None, Some(Abstention::Timeout)),
        m(None, Some(Abstention::Unparseable)),
    ]);
    assert_eq!(
        (t.members, t.buy, t.sell, t.nothing, t.failed, t.other),
        (6, 2, 1, 1, 2, 0)
    );
    assert_eq!(t.summary(), "BUY 2 SELL 1 NOTHING 1 failed 2 of 6");
    assert_eq!(VoteTally::default().summary(), "-");
}

#[test]
fn listing_filters_by_agent_symbol_and_time_newest_first_with_a_limit() {
    let store = Store::temporary().unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    for (i, (agent, symbol)) in [
        ("trend", "BTC"),
        ("trend", "ETH"),
        ("swing", "BTC"),
        ("trend", "BTC"),
    ]
    .iter()
    .enumerate()
    {
        journal
            .record(&record(T0 + i as i64 * 60_000, agent, symbol))
            .unwrap();
    }
    let all = journal.list(&JournalFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0].time_ms > w[1].time_ms),
        "newest first"
    );
    let trend_btc = journal
        .list(&JournalFilter {
            agent: Some("trend".into()),
            symbol: Some("btc".into()),
            ..JournalFilter::default()
        })
        .unwrap();
    assert_eq!(
        trend_btc.iter().map(|h| h.time_ms).collect::<Vec<_>>(),
        vec![T0 + 180_000, T0]
    );
    let recent = journal
        .list(&JournalFilter {
            since_ms: Some(T0 + 120_000),
            ..JournalFilter::default()
        })
        .unwrap();
    assert_eq!(recent.len(), 2);
    let one = journal
        .list(&JournalFilter {
            limit: 1,
            ..JournalFilter::default()
        })
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].time_ms, T0 + 180_000);
    assert!(one[0].replayable);
}

#[test]
fn a_record_without_a_header_is_listed_all_the_same() {
    let store = Store::temporary().unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    journal.record(&record(T0, "trend", "BTC")).unwrap();
    // As a data dir from before headers (or a write cut between record and header).
    let lone = record(T0 + 1000, "trend", "ETH");
    store
        .tree::<DecisionRecord>(trees::DECISIONS)
        .unwrap()
        .put(&lone.id, &lone)
        .unwrap();
    let listed = journal.list(&JournalFilter::default()).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, lone.id);
    assert_eq!(listed[0].symbol, "ETH");
}

#[actix_rt::test]
async fn appended_decisions_are_on_disk_when_their_receipts_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = {
        let store = Store::open(dir.path()).unwrap();
        let journal = DecisionJournal::open(&store).unwrap();
        let receipts: Vec<JournalReceipt> = (0..50)
            .map(|i| journal.append(record(T0 + i, "trend", "BTC")))
            .collect();
        let ids = receipts.iter().map(|r| r.id().to_string()).collect();
        for r in receipts {
            r.wait().await.unwrap();
        }
        ids
    };
    let store = Store::open(dir.path()).unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    for id in &ids {
        assert!(journal.get(id).unwrap().is_some(), "{id}");
    }
    let listed = journal
        .list(&JournalFilter {
            limit: 1000,
            ..JournalFilter::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 50);
}

#[test]
fn retention_removes_by_age_then_by_count_oldest_first() {
    let store = Store::temporary().unwrap();
    let journal = DecisionJournal::open(&store).unwrap();
    let day = 86_400_000;
    // Ten decisions, one a day, the newest at T0.
    for i in 0..10 {
        journal
            .record(&record(T0 - i * day, "trend", "BTC"))
            .unwrap();
    }
    let config = JournalConfig {
        max_age: Duration::from_secs(7 * 86_400),
        max_decisions: 5,
        sweep_interval: Duration::from_secs(60),
    };
    let r = sweep(&journal, &config, T0).unwrap();
    // Ages 8 and 9 days go by age (7 days exactly stays), then 3 more by count.
    assert_eq!((r.pruned_age, r.pruned_count, r.remaining), (2, 3, 5));
    let left = journal.list(&JournalFilter::default()).unwrap();
    assert_eq!(left.len(), 5);
    assert_eq!(left.last().unwrap().time_ms, T0 - 4 * day);
    // Headers go with their records.
    assert_eq!(store.tree::<DecisionHeader>(INDEX_TREE).unwrap().len(), 5);
    // A second sweep finds nothing to do.
    assert_eq!(
        sweep(&journal, &config, T0).unwrap(),
        SweepReport {
            remaining: 5,
            ..SweepReport::default()
        }
    );
}

#[test]
fn journal_config_is_validated() {
    let mut issues = crate::validate::Issues::default();
    JournalConfig::default().validate("journal", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");
    let bad = JournalConfig {
        max_age: Duration::from_secs(1),
        max_decisions: 0,
        sweep_interval: Duration::ZERO,
    };
    let mut issues = crate::validate::Issues::default();
    bad.validate("journal", &mut issues);
    let keys: Vec<String> = issues.0.into_iter().map(|i| i.key).collect();
    assert_eq!(
        keys,
        vec![
            "journal.max_age",
            "journal.max_decisions",
            "journal.sweep_interval"
        ]
    );
}

fn entry(status: OrderStatus) -> LedgerEntry {
    let request = OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: dec!(0.1),
        order_type: OrderType::Market {
            max_slippage: dec!(0.01),
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    let mut e = LedgerEntry::new_intent("paper", request, "agent:trend", T0);
    e.status = status;
    e
}

#[test]
fn an_orders_realized_pnl_is_its_fills_pnl_less_fees_once_final_and_all_fills_are_in() {
    let mut filled = entry(OrderStatus::Filled);
    filled.filled_size = dec!(0.1);
    let id = filled.client_id.to_string();
    let sums = FillSums {
        gross: dec!(12.5),
        fees: dec!(0.75),
        size: dec!(0.1),
    };
    let o = settle::settle(&id, Some(&filled), sums);
    assert_eq!(o.realized_pnl_usd, Some(dec!(11.75)));
    assert_eq!(o.status, Some(OrderStatus::Filled));
    // Final, but reconciliation has not brought all its fills yet: not known.
    let part = FillSums {
        size: dec!(0.05),
        ..sums
    };
    assert_eq!(
        settle::settle(&id, Some(&filled), part).realized_pnl_usd,
        None
    );
    // Not final yet: not known.
    let open = entry(OrderStatus::Acked);
    assert_eq!(
        settle::settle(&id, Some(&open), sums).realized_pnl_usd,
        None
    );
    // Cancelled with nothing filled: known, zero.
    let cancelled = entry(OrderStatus::Cancelled);
    assert_eq!(
        settle::settle(&id, Some(&cancelled), FillSums::default()).realized_pnl_usd,
        Some(Decimal::ZERO)
    );
    // Not in the ledger.
    let o = settle::settle(&id, None, FillSums::default());
    assert_eq!((o.status, o.realized_pnl_usd), (None, None));
}
