//! Each decision's order outcome, settled at read time from the ledger.
//!
//! A journaled decision keeps the client ids of the orders it placed. Their status and
//! realized PnL are not copied into the journal (they change after the decision: fills
//! arrive through reconciliation, an order is cancelled later); they are read from the
//! ledger's `orders` (by client id) and `fills` trees whenever a decision is shown, so
//! the journal is never stale and never needs a second write.
//!
//! **Realized PnL of an order** (`realized_pnl_usd`): the sum over that order's fills of
//! the PnL each fill realized by reducing a position at the engine's average cost (the
//! same figure `orrery trades` lists, computed over every recorded fill of the venue in
//! time order), minus the fees of those fills in USD. An order that opened or added to a
//! position realizes only minus its fees; the PnL of the position shows on the order that
//! reduces it. It is "known" (`Some`) once the order is final in the ledger (filled,
//! cancelled, rejected) and the fills recorded for it add up to its filled size (fills
//! reach the `fills` tree through reconciliation, possibly after the order's status);
//! until then it is `None`.
//!
//! Owns: reading, never writing, the ledger. Never: asks a venue.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::exchanges::ledger::{FillRecord, LedgerEntry};
use crate::exchanges::pnl::fill_history;
use crate::exchanges::{Fill, OrderStatus, Side};
use crate::store::{trees, Store, StoreError, Tree};

/// The state of one order a decision placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderOutcome {
    pub client_id: String,
    pub venue: Option<String>,
    pub symbol: Option<String>,
    pub side: Option<Side>,
    /// The ledger's status; `None` when the ledger has no such order (it never left the
    /// risk gate, or the ledger was reset).
    pub status: Option<OrderStatus>,
    pub filled_size: Decimal,
    pub avg_fill_price: Option<Decimal>,
    /// Fees of its fills, USD.
    pub fees_usd: Decimal,
    /// Average-cost PnL its fills realized, before fees.
    pub gross_pnl_usd: Decimal,
    /// `gross_pnl_usd - fees_usd` once the order is final and its fills are in; see the
    /// module docs.
    pub realized_pnl_usd: Option<Decimal>,
}

/// What the recorded fills of one order add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillSums {
    /// Average-cost PnL the fills realized, before fees.
    pub gross: Decimal,
    pub fees: Decimal,
    pub size: Decimal,
}

/// The ledger as read once for settling many decisions: orders by point read, the PnL of
/// every fill computed once per view.
pub struct LedgerView {
    orders: Tree<LedgerEntry>,
    by_client: HashMap<String, FillSums>,
}

impl LedgerView {
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let orders = store.tree::<LedgerEntry>(trees::ORDERS)?;
        let fills = store.tree::<FillRecord>(trees::FILLS)?;
        let mut by_venue: HashMap<String, Vec<Fill>> = HashMap::new();
        for item in fills.iter() {
            let (_, r) = item?;
            by_venue.entry(r.venue).or_default().push(r.fill);
        }
        let mut by_client: HashMap<String, FillSums> = HashMap::new();
        for fills in by_venue.values() {
            for p in fill_history(fills) {
                let Some(client) = &p.fill.client_id else {
                    continue;
                };
                let e = by_client.entry(client.to_string()).or_default();
                e.gross += p.realized_pnl_usd;
                e.fees += p.fee_usd.unwrap_or(Decimal::ZERO);
                e.size += p.fill.size;
            }
        }
        Ok(Self { orders, by_client })
    }

    /// The outcome of the order with `client_id`.
    pub fn outcome(&self, client_id: &str) -> Result<OrderOutcome, StoreError> {
        let entry = self.orders.get(client_id)?;
        let sums = self.by_client.get(client_id).copied().unwrap_or_default();
        Ok(settle(client_id, entry.as_ref(), sums))
    }
}

/// The outcome of one order from its ledger entry and its recorded fills.
pub fn settle(client_id: &str, entry: Option<&LedgerEntry>, fills: FillSums) -> OrderOutcome {
    let FillSums { gross, fees, size } = fills;
    let status = entry.map(|e| e.status);
    let known = entry.is_some_and(|e| e.status.is_terminal() && size >= e.filled_size);
    OrderOutcome {
        client_id: client_id.to_string(),
        venue: entry.map(|e| e.venue.clone()),
        symbol: entry.map(|e| e.request.symbol.clone()),
        side: entry.map(|e| e.request.side),
        status,
        filled_size: entry.map(|e| e.filled_size.normalize()).unwrap_or_default(),
        avg_fill_price: entry.and_then(|e| e.avg_fill_price.map(|p| p.normalize())),
        fees_usd: fees.normalize(),
        gross_pnl_usd: gross.normalize(),
        realized_pnl_usd: known.then(|| (gross - fees).normalize()),
    }
}
