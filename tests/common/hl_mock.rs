//! Comparing the engine's ledger with the Hyperliquid mock's record.

use std::collections::BTreeSet;

use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::exchanges::OrderStatus;
use rust_decimal::Decimal;

/// The ledger status a Hyperliquid order status (with the size filled) must end as, stated
/// here rather than taken from the production mapping (`order_status_of`), so the tests do
/// not grade the code by itself. Hyperliquid documents the strings (info endpoint, "Query
/// order status"); only those the mock produces are listed, and any other fails the test.
pub fn expected_status(venue_status: &str, filled: Decimal) -> OrderStatus {
    match venue_status {
        "filled" => OrderStatus::Filled,
        // An IOC that filled in part and had its rest cancelled is a cancellation (its
        // filled size is compared beside the status).
        "canceled" => OrderStatus::Cancelled,
        "open" if filled.is_zero() => OrderStatus::Acked,
        "open" => OrderStatus::PartiallyFilled,
        "rejected"
        | "tickRejected"
        | "minTradeNtlRejected"
        | "reduceOnlyRejected"
        | "badAloPxRejected"
        | "iocCancelRejected" => OrderStatus::Rejected,
        other => panic!("no stated mapping for venue status `{other}`"),
    }
}

/// Ledger == venue: each entry the venue does not know was never sent (rejected), each it
/// knows has the venue's status and filled size, and each venue order is in the ledger.
/// `entries` are the ledger's entries of the mock's venue. Returns how many were never
/// sent.
pub fn assert_ledger_equals_mock(mock: &MockHyperliquid, entries: &[LedgerEntry]) -> usize {
    let mut never_sent = 0;
    for entry in entries {
        match mock.order(&entry.client_id.to_hex128()) {
            None => {
                assert_eq!(
                    entry.status,
                    OrderStatus::Rejected,
                    "{} is {:?} in the ledger but unknown to the venue ({:?})",
                    entry.client_id,
                    entry.status,
                    entry.reason
                );
                never_sent += 1;
            }
            Some(o) => {
                let filled = o.orig_sz - o.sz;
                assert_eq!(
                    (entry.status, entry.filled_size),
                    (expected_status(&o.status, filled), filled),
                    "{}: the venue has it {}, the ledger says {:?} ({:?})",
                    entry.client_id,
                    o.status,
                    entry.status,
                    entry.reason
                );
            }
        }
    }
    let in_ledger: BTreeSet<String> = entries.iter().map(|e| e.client_id.to_hex128()).collect();
    for o in mock.orders() {
        let cloid = o.cloid.clone().unwrap();
        assert!(
            in_ledger.contains(&cloid),
            "venue order {cloid} missing from the ledger"
        );
    }
    never_sent
}

/// The config section of a venue `hyperliquid` on the mock at `url`, trading as `wallet`.
pub fn hl_venue_section(url: &str, wallet: &str, request_timeout: &str) -> String {
    format!(
        r#"
[exchanges.venues.hyperliquid]
kind = "hyperliquid"
network = "testnet"
base_url = "{url}"
wallet_address = "{wallet}"
request_timeout = "{request_timeout}"
"#
    )
}

/// Every order the venue received, in arrival order: (cloid, is_buy, size, reduce_only).
pub fn sent_orders(mock: &MockHyperliquid) -> Vec<(String, bool, Decimal, bool)> {
    mock.order_actions()
        .iter()
        .flat_map(|b| {
            b["action"]["orders"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|o| {
            (
                o["c"].as_str().unwrap_or("").to_string(),
                o["b"].as_bool().unwrap(),
                o["s"].as_str().unwrap().parse().unwrap(),
                o["r"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The venue received exactly `want` — (is_buy, size, reduce_only) per order, in arrival
/// order — each client id once; returns the client ids in that order.
pub fn assert_sent_once_each(mock: &MockHyperliquid, want: &[(bool, &str, bool)]) -> Vec<String> {
    let sent = sent_orders(mock);
    assert_eq!(sent.len(), want.len(), "one order per step: {sent:?}");
    for ((cloid, buy, size, reduce), (w_buy, w_size, w_reduce)) in sent.iter().zip(want) {
        let w_size: Decimal = w_size.parse().unwrap();
        assert_eq!(
            (*buy, *size, *reduce),
            (*w_buy, w_size, *w_reduce),
            "{sent:?}"
        );
        assert_eq!(mock.sends_of_cloid(cloid), 1, "{cloid} sent more than once");
    }
    sent.into_iter().map(|(cloid, ..)| cloid).collect()
}

/// A copy agent `copier` mirroring `leader`'s BTC on `hyperliquid` at ratio 0.1, checking
/// every 200 ms and reading the leader every `poll_interval`.
pub fn copier_section(leader: &str, poll_interval: &str) -> String {
    format!(
        r#"
[[agents.copy]]
name = "copier"
leader_venue = "hyperliquid"
wallets = ["{leader}"]
venue = "hyperliquid"
ratio = 0.1
symbols = ["btc"]
max_position_usd = 20000
max_total_usd = 30000
stale_pct = 5
poll_interval = "{poll_interval}"
check_interval = "200ms"
initial_delay = "300ms"
"#
    )
}
