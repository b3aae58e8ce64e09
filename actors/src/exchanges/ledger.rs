//! The order ledger: every order this engine ever meant to send, keyed by client order id.
//!
//! Owns: the `orders` and `fills` trees, the in-memory index of orders that are not yet
//! final, and the rule that an intent is on disk before any byte of the order leaves the
//! process. Never: talks to a venue (the gateway does) or decides whether to trade. An
//! intent is written only for a [`RiskApproved`] order (the risk gate's type); a refused
//! order is written final, as rejected ([`OrderLedger::record_refusal`]).
//!
//! Every write is durable before it returns except [`OrderLedger::record_answer`], the
//! venue's answer to a send, which reaches disk with sled's next flush (its own timer, or
//! the next durable write of anything): the venue keeps that answer too, and reconciliation
//! reads it back by client id after a crash (the argument is in the gateway's docs).
//!
//! Keys are client order ids, which are time-ordered, so key order is creation order.
//!
//! Also owns the `adopted` tree: venue orders placed outside this engine (no client id of
//! ours), keyed by venue and the venue's order id, each pointing at the ledger entry made
//! for it, so reconciliation adopts such an order once and a restart does not adopt it
//! again.
//!
//! Logging: every write that changes an order's status (or its filled size or reason) logs
//! one `info` line with the client id, venue, symbol, side, size, price, status and reason;
//! every new fill logs one `info` line. They are logged here, on the write paths, so no
//! caller can change an order silently.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::risk_gate::RiskApproved;
use super::types::*;
use crate::clock::{Millis, SharedClock};
use crate::store::{trees, Record, Store, StoreError, Tree};

/// Who asked for an order.
pub type Origin = String;

/// One order's record in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub client_id: ClientOrderId,
    pub venue: String,
    pub request: OrderRequest,
    pub status: OrderStatus,
    pub filled_size: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub venue_order_id: Option<String>,
    /// Why the order was rejected or refused, what made its outcome unknown, or why a
    /// cancel did not take.
    pub reason: Option<String>,
    pub origin: Origin,
    pub created_ms: Millis,
    pub updated_ms: Millis,
    /// The fencing token of the venue lease this node held when it wrote the intent
    /// (cluster only; `None` for a single process and for records written before leases).
    #[serde(default)]
    pub fencing_token: Option<u64>,
}

impl Record for LedgerEntry {}

impl LedgerEntry {
    pub fn new_intent(venue: &str, request: OrderRequest, origin: &str, now: Millis) -> Self {
        Self {
            client_id: request.client_id.clone(),
            venue: venue.to_string(),
            request,
            status: OrderStatus::Intent,
            filled_size: Decimal::ZERO,
            avg_fill_price: None,
            venue_order_id: None,
            reason: None,
            origin: origin.to_string(),
            created_ms: now,
            updated_ms: now,
            fencing_token: None,
        }
    }

    /// Takes over the venue's view of this order. Returns whether anything changed.
    pub fn apply_venue_order(&mut self, order: &VenueOrder, now: Millis) -> bool {
        let before = (
            self.status,
            self.filled_size,
            self.avg_fill_price,
            self.venue_order_id.clone(),
        );
        // Some venues' order lookups carry no average price (Hyperliquid's orderStatus):
        // one known for the same filled size stays.
        if order.avg_fill_price.is_some() || order.filled_size != self.filled_size {
            self.avg_fill_price = order.avg_fill_price;
        }
        self.status = order.status;
        self.filled_size = order.filled_size;
        self.venue_order_id = Some(order.venue_order_id.clone());
        if order.reject_reason.is_some() {
            self.reason = order.reject_reason.clone();
        } else if order.status != OrderStatus::Rejected {
            // The venue gave a definite state: an earlier "outcome unknown" or "waiting for
            // its deadline" text no longer describes this order.
            self.reason = None;
        }
        let changed = before
            != (
                self.status,
                self.filled_size,
                self.avg_fill_price,
                self.venue_order_id.clone(),
            );
        if changed {
            self.updated_ms = now;
        }
        changed
    }

    /// Takes the average fill price from the venue's fills of this order when the venue's
    /// order answer had none, provided `fills` hold every fill of it (their sizes add up to
    /// the filled size; fills of other orders are ignored). Returns whether it changed
    /// anything.
    pub fn price_from_fills<'a>(&mut self, fills: impl IntoIterator<Item = &'a Fill>) -> bool {
        if self.avg_fill_price.is_some() || self.filled_size.is_zero() {
            return false;
        }
        let Some(oid) = self.venue_order_id.as_deref() else {
            return false;
        };
        let (mut size, mut notional) = (Decimal::ZERO, Decimal::ZERO);
        for f in fills.into_iter().filter(|f| f.venue_order_id == oid) {
            size += f.size;
            notional += f.size * f.price;
        }
        if size != self.filled_size {
            return false;
        }
        self.avg_fill_price = Some((notional / size).normalize());
        true
    }

    /// USD value filled so far.
    pub fn filled_notional(&self) -> Decimal {
        self.avg_fill_price
            .map(|p| p * self.filled_size)
            .unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("order ledger: {0}")]
    Store(#[from] StoreError),
    #[error("order ledger: no order with client id {0}")]
    NotFound(ClientOrderId),
    #[error("order ledger: client id {0} is already in the ledger; an order is never sent twice")]
    Duplicate(ClientOrderId),
}

/// Fill record key: venue and the venue's unique fill id, so re-reading fills is harmless.
fn fill_key(venue: &str, fill_id: &str) -> String {
    format!("{venue}/{fill_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRecord {
    pub venue: String,
    pub fill: Fill,
}
impl Record for FillRecord {}

/// The ledger entry made for a venue order placed outside this engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedOrder {
    pub client_id: ClientOrderId,
    pub adopted_ms: Millis,
}
impl Record for AdoptedOrder {}

fn adopted_key(venue: &str, venue_order_id: &str) -> String {
    format!("{venue}/{venue_order_id}")
}

/// One `info` line for an order whose status, filled size or reason changed.
fn log_transition(before: Option<&LedgerEntry>, after: &LedgerEntry) {
    let changed = before.is_none_or(|b| {
        (b.status, b.filled_size, &b.reason) != (after.status, after.filled_size, &after.reason)
    });
    if !changed {
        return;
    }
    let price = after
        .avg_fill_price
        .or(after.request.order_type.limit_price())
        .map(|p| p.normalize().to_string());
    tracing::info!(
        client_id = %after.client_id,
        venue = %after.venue,
        symbol = %after.request.symbol,
        side = %after.request.side,
        size = %after.request.size.normalize(),
        filled = %after.filled_size.normalize(),
        price = %price.as_deref().unwrap_or("market"),
        from = %before.map(|b| b.status.as_str()).unwrap_or("new"),
        status = %after.status,
        reason = %after.reason.as_deref().unwrap_or("-"),
        origin = %after.origin,
        "order {}",
        after.status
    );
}

/// The ledger. Cheap to share behind an `Arc`.
pub struct OrderLedger {
    orders: Tree<LedgerEntry>,
    fills: Tree<FillRecord>,
    adopted: Tree<AdoptedOrder>,
    /// Orders not yet final, by client id; rebuilt from disk at open.
    open: RwLock<BTreeMap<ClientOrderId, LedgerEntry>>,
    clock: SharedClock,
    /// Told of every written entry after the write (the cluster's replica; see
    /// [`OrderLedger::observe`]).
    observer: std::sync::OnceLock<EntryObserver>,
}

/// Called with every entry the ledger wrote, after the write; must not block.
pub type EntryObserver = Box<dyn Fn(&LedgerEntry) + Send + Sync>;

/// What [`OrderLedger::merge`] did with an entry from elsewhere (another node's replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Unknown here: inserted.
    Inserted,
    /// Known here, and the other copy is further along: taken.
    Advanced,
    /// Known here and at least as far along (a terminal status is never regressed): kept.
    Kept,
}

/// How far along an order is, for merging two copies of it: a terminal status beats
/// everything, then the venue's answers beat an intent, then the filled size decides.
fn progress(e: &LedgerEntry) -> (u8, Decimal) {
    let rank = match e.status {
        OrderStatus::Intent => 0,
        OrderStatus::Submitted => 1,
        OrderStatus::Unknown => 2,
        OrderStatus::Acked => 3,
        OrderStatus::PartiallyFilled => 4,
        OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::Rejected => 5,
    };
    (rank, e.filled_size)
}

impl std::fmt::Debug for OrderLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderLedger")
            .field("orders", &self.orders.len())
            .field("open", &self.open.read().len())
            .finish()
    }
}

impl OrderLedger {
    /// Opens the ledger and rebuilds the index of open orders. A record that cannot be
    /// decoded is an error: the ledger never silently forgets an order.
    pub fn open(store: &Store, clock: SharedClock) -> Result<Self, LedgerError> {
        let orders = store.tree::<LedgerEntry>(trees::ORDERS)?;
        let fills = store.tree::<FillRecord>(trees::FILLS)?;
        let adopted = store.tree::<AdoptedOrder>(trees::ADOPTED)?;
        let mut open = BTreeMap::new();
        for item in orders.iter() {
            let (_, entry) = item?;
            if !entry.status.is_terminal() {
                open.insert(entry.client_id.clone(), entry);
            }
        }
        Ok(Self {
            orders,
            fills,
            adopted,
            open: RwLock::new(open),
            clock,
            observer: std::sync::OnceLock::new(),
        })
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Writes the intent of an order the risk gate approved and returns it once it is on
    /// disk. Only a [`RiskApproved`] order can become an intent: one that skipped the gate
    /// does not compile (see [`super::risk_gate`]).
    pub async fn record_intent(
        &self,
        venue: &str,
        order: &RiskApproved<OrderRequest>,
        origin: &str,
        now: Millis,
    ) -> Result<LedgerEntry, LedgerError> {
        self.record_fenced_intent(venue, order, origin, now, None)
            .await
    }

    /// [`OrderLedger::record_intent`] carrying the fencing token of the venue lease held
    /// while it is written (see `crate::cluster::lease`).
    pub async fn record_fenced_intent(
        &self,
        venue: &str,
        order: &RiskApproved<OrderRequest>,
        origin: &str,
        now: Millis,
        fencing_token: Option<u64>,
    ) -> Result<LedgerEntry, LedgerError> {
        let mut entry = LedgerEntry::new_intent(venue, order.order().clone(), origin, now);
        entry.fencing_token = fencing_token;
        self.insert(&entry).await?;
        Ok(entry)
    }

    /// Records an order the risk gate refused: final (`Rejected`, with `reason`) from the
    /// start, so nothing ever sends it. Durable on return.
    pub async fn record_refusal(
        &self,
        venue: &str,
        request: OrderRequest,
        origin: &str,
        now: Millis,
        reason: String,
    ) -> Result<LedgerEntry, LedgerError> {
        let mut entry = LedgerEntry::new_intent(venue, request, origin, now);
        entry.status = OrderStatus::Rejected;
        entry.reason = Some(reason);
        self.insert(&entry).await?;
        Ok(entry)
    }

    /// Writes a new entry durably; a client id is written once.
    async fn insert(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        self.insert_unobserved(entry).await?;
        self.written(entry);
        Ok(())
    }

    /// [`OrderLedger::insert`] without telling the observer (a merge writes what the
    /// replica already holds).
    async fn insert_unobserved(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let key = entry.client_id.as_str();
        if self.open.read().contains_key(&entry.client_id) || self.orders.get(key)?.is_some() {
            return Err(LedgerError::Duplicate(entry.client_id.clone()));
        }
        self.orders.put_durable(key, entry).await?;
        log_transition(None, entry);
        if !entry.status.is_terminal() {
            self.open
                .write()
                .insert(entry.client_id.clone(), entry.clone());
        }
        Ok(())
    }

    /// Applies `change` to an entry and makes it durable.
    pub async fn update(
        &self,
        client_id: &ClientOrderId,
        change: impl FnOnce(&mut LedgerEntry),
    ) -> Result<LedgerEntry, LedgerError> {
        let (before, entry) = self.changed(client_id, change)?;
        self.orders.put_durable(client_id.as_str(), &entry).await?;
        log_transition(Some(&before), &entry);
        self.written(&entry);
        Ok(self.index(entry))
    }

    /// Records the venue's answer to a sent order without waiting for the disk. Only for
    /// what the venue itself keeps and [`Venue::query_order`] returns: if a crash loses
    /// this write, the entry is back to its durable intent and reconciliation takes the
    /// same answer from the venue by client id before any new order is accepted.
    ///
    /// [`Venue::query_order`]: crate::exchanges::Venue::query_order
    pub fn record_answer(
        &self,
        client_id: &ClientOrderId,
        change: impl FnOnce(&mut LedgerEntry),
    ) -> Result<LedgerEntry, LedgerError> {
        let (before, entry) = self.changed(client_id, change)?;
        self.orders.put(client_id.as_str(), &entry)?;
        log_transition(Some(&before), &entry);
        self.written(&entry);
        Ok(self.index(entry))
    }

    fn changed(
        &self,
        client_id: &ClientOrderId,
        change: impl FnOnce(&mut LedgerEntry),
    ) -> Result<(LedgerEntry, LedgerEntry), LedgerError> {
        let before = self
            .get(client_id)?
            .ok_or_else(|| LedgerError::NotFound(client_id.clone()))?;
        let mut entry = before.clone();
        change(&mut entry);
        entry.updated_ms = self.now();
        Ok((before, entry))
    }

    /// Keeps the open-order index in step with a written entry.
    fn index(&self, entry: LedgerEntry) -> LedgerEntry {
        let mut open = self.open.write();
        if entry.status.is_terminal() {
            open.remove(&entry.client_id);
        } else {
            open.insert(entry.client_id.clone(), entry.clone());
        }
        entry
    }

    /// Tells `observer` of every entry written from now on (once; a second call is
    /// ignored and returns false).
    pub fn observe(&self, observer: EntryObserver) -> bool {
        self.observer.set(observer).is_ok()
    }

    fn written(&self, entry: &LedgerEntry) {
        if let Some(observer) = self.observer.get() {
            observer(entry);
        }
    }

    /// Merges a copy of an entry written elsewhere (the replica of a node that owned the
    /// venue before): inserted when unknown, taken when it is further along ([`progress`]),
    /// otherwise kept — a terminal status here is never regressed. Durable on return.
    /// `adopted`: the entry is an adoption of a venue order placed outside the engine, so
    /// its index entry is written too (reconciliation then never adopts it a second time).
    pub async fn merge(
        &self,
        remote: LedgerEntry,
        adopted: bool,
    ) -> Result<MergeOutcome, LedgerError> {
        if adopted {
            if let Some(oid) = remote.venue_order_id.as_deref() {
                let key = adopted_key(&remote.venue, oid);
                if self.adopted.get(&key)?.is_none() {
                    let record = AdoptedOrder {
                        client_id: remote.client_id.clone(),
                        adopted_ms: remote.created_ms,
                    };
                    self.adopted.put_durable(&key, &record).await?;
                }
            }
        }
        // Neither path tells the observer: the replica the entry came from holds it.
        // The open-order index is kept by both, so no reload is needed after a merge.
        let Some(local) = self.get(&remote.client_id)? else {
            self.insert_unobserved(&remote).await?;
            return Ok(MergeOutcome::Inserted);
        };
        if local.status.is_terminal() || progress(&remote) <= progress(&local) {
            return Ok(MergeOutcome::Kept);
        }
        let mut entry = remote;
        entry.fencing_token = entry.fencing_token.or(local.fencing_token);
        self.orders
            .put_durable(entry.client_id.as_str(), &entry)
            .await?;
        log_transition(Some(&local), &entry);
        self.index(entry);
        Ok(MergeOutcome::Advanced)
    }

    pub fn get(&self, client_id: &ClientOrderId) -> Result<Option<LedgerEntry>, LedgerError> {
        if let Some(e) = self.open.read().get(client_id) {
            return Ok(Some(e.clone()));
        }
        Ok(self.orders.get(client_id.as_str())?)
    }

    /// Orders not yet final (intent, submitted, acked, partially filled, unknown).
    pub fn open_entries(&self) -> Vec<LedgerEntry> {
        self.open.read().values().cloned().collect()
    }

    /// Re-reads the open entries of `venue` from disk into the open-order index: another
    /// handle on the same store (the gateway generation a restart replaced, whose last
    /// order flows finish after this one opened) may have written them since.
    pub fn reload_open(&self, venue: &str) -> Result<(), LedgerError> {
        let fresh: Vec<LedgerEntry> = self
            .all()?
            .into_iter()
            .filter(|e| e.venue == venue && !e.status.is_terminal())
            .collect();
        let mut open = self.open.write();
        open.retain(|_, e| e.venue != venue);
        for e in fresh {
            open.insert(e.client_id.clone(), e);
        }
        Ok(())
    }

    /// The newest `n` orders, newest first.
    pub fn recent(&self, n: usize) -> Result<Vec<LedgerEntry>, LedgerError> {
        Ok(self.orders.last_n(n)?.into_iter().map(|(_, e)| e).collect())
    }

    /// Every order, oldest first.
    pub fn all(&self) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.orders
            .iter()
            .map(|r| r.map(|(_, e)| e).map_err(LedgerError::from))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// Records a fill once; returns false if it was already known.
    pub async fn record_fill(&self, venue: &str, fill: &Fill) -> Result<bool, LedgerError> {
        let key = fill_key(venue, &fill.fill_id);
        if self.fills.get(&key)?.is_some() {
            return Ok(false);
        }
        let record = FillRecord {
            venue: venue.to_string(),
            fill: fill.clone(),
        };
        self.fills.put_durable(&key, &record).await?;
        tracing::info!(
            venue = %venue,
            symbol = %fill.symbol,
            side = %fill.side,
            size = %fill.size.normalize(),
            price = %fill.price.normalize(),
            fee = %fill.fee.normalize(),
            client_id = %fill.client_id.as_ref().map(|c| c.as_str()).unwrap_or("-"),
            venue_order_id = %fill.venue_order_id,
            "fill"
        );
        Ok(true)
    }

    /// Every recorded fill of a venue, oldest first (for position accounting and history).
    pub fn fills(&self, venue: &str) -> Result<Vec<Fill>, LedgerError> {
        let mut out = Vec::new();
        for item in self.fills.scan_prefix(&format!("{venue}/")) {
            let (_, record) = item?;
            out.push(record.fill);
        }
        out.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.fill_id.cmp(&b.fill_id)));
        Ok(out)
    }

    /// The ledger entry made for a venue order adopted earlier, if any.
    pub fn adopted(
        &self,
        venue: &str,
        venue_order_id: &str,
    ) -> Result<Option<ClientOrderId>, LedgerError> {
        Ok(self
            .adopted
            .get(&adopted_key(venue, venue_order_id))?
            .map(|a| a.client_id))
    }

    /// Adopts a venue order placed outside this engine: the index entry first (durable),
    /// then the ledger entry, so a crash between the two leaves an index entry that the
    /// next pass completes with the same client id, never a second entry. The order is
    /// already at the venue and never sent by this engine, so it needs no risk approval.
    pub async fn record_adoption(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let oid = entry.venue_order_id.as_deref().unwrap_or_default();
        let record = AdoptedOrder {
            client_id: entry.client_id.clone(),
            adopted_ms: entry.created_ms,
        };
        self.adopted
            .put_durable(&adopted_key(&entry.venue, oid), &record)
            .await?;
        if self.get(&entry.client_id)?.is_none() {
            self.insert(entry).await?;
        }
        Ok(())
    }

    /// Recorded fills of one venue order.
    pub fn fills_of(&self, venue: &str, venue_order_id: &str) -> Result<Vec<Fill>, LedgerError> {
        let mut out = Vec::new();
        for item in self.fills.scan_prefix(&format!("{venue}/")) {
            let (_, r) = item?;
            if r.fill.venue_order_id == venue_order_id {
                out.push(r.fill);
            }
        }
        Ok(out)
    }

    /// Recorded fills of a venue grouped by the venue's order id.
    pub fn fills_by_order(&self, venue: &str) -> Result<HashMap<String, Vec<Fill>>, LedgerError> {
        let mut by_order: HashMap<String, Vec<Fill>> = HashMap::new();
        for item in self.fills.scan_prefix(&format!("{venue}/")) {
            let (_, r) = item?;
            by_order
                .entry(r.fill.venue_order_id.clone())
                .or_default()
                .push(r.fill);
        }
        Ok(by_order)
    }

    /// Time of the newest recorded fill of a venue, for incremental fill reads.
    pub fn last_fill_ms(&self, venue: &str) -> Result<Option<Millis>, LedgerError> {
        let mut newest = None;
        for item in self.fills.scan_prefix(&format!("{venue}/")) {
            let (_, r) = item?;
            newest = newest.max(Some(r.fill.time_ms));
        }
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::exchanges::risk_gate::approve_for_venue_test;
    use rust_decimal_macros::dec;

    fn request() -> OrderRequest {
        OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "BTC".into(),
            side: Side::Buy,
            size: dec!(0.01),
            order_type: OrderType::Market {
                max_slippage: dec!(0.01),
            },
            reduce_only: false,
            valid_until_ms: None,
        }
    }

    /// Another node's copies (a replica) merge in without ever moving an order back: an
    /// unknown entry is inserted, a further-along copy is taken, a terminal status here is
    /// kept, and an old record without a fencing token still decodes.
    #[tokio::test]
    async fn a_replica_merges_in_and_never_regresses_a_terminal_status() {
        let store = Store::temporary().unwrap();
        let ledger = OrderLedger::open(&store, ManualClock::new(1_000)).unwrap();
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = seen.clone();
        assert!(ledger.observe(Box::new(move |e: &LedgerEntry| sink.lock().push(e.status))));
        let (open_here, filled_here, unknown_here) = (request(), request(), request());
        for r in [&open_here, &filled_here] {
            ledger
                .record_fenced_intent(
                    "hl",
                    &approve_for_venue_test(r.clone(), dec!(1)),
                    "t",
                    1_000,
                    Some(4),
                )
                .await
                .unwrap();
        }
        ledger
            .update(&filled_here.client_id, |e| {
                e.status = OrderStatus::Filled;
                e.filled_size = dec!(0.01);
            })
            .await
            .unwrap();
        assert_eq!(
            *seen.lock(),
            [
                OrderStatus::Intent,
                OrderStatus::Intent,
                OrderStatus::Filled
            ]
        );

        let mut acked = ledger.get(&open_here.client_id).unwrap().unwrap();
        acked.status = OrderStatus::Acked;
        let mut regressed = ledger.get(&filled_here.client_id).unwrap().unwrap();
        regressed.status = OrderStatus::Acked;
        regressed.filled_size = Decimal::ZERO;
        let mut other = LedgerEntry::new_intent("hl", unknown_here.clone(), "t", 900);
        other.status = OrderStatus::Cancelled;
        other.fencing_token = Some(3);

        assert_eq!(
            ledger.merge(acked, false).await.unwrap(),
            MergeOutcome::Advanced
        );
        assert_eq!(
            ledger.merge(regressed, false).await.unwrap(),
            MergeOutcome::Kept
        );
        assert_eq!(
            ledger.merge(other.clone(), false).await.unwrap(),
            MergeOutcome::Inserted
        );
        assert_eq!(
            ledger.merge(other, false).await.unwrap(),
            MergeOutcome::Kept
        );
        let get = |id: &ClientOrderId| ledger.get(id).unwrap().unwrap();
        assert_eq!(get(&open_here.client_id).status, OrderStatus::Acked);
        assert_eq!(get(&open_here.client_id).fencing_token, Some(4));
        assert_eq!(get(&filled_here.client_id).status, OrderStatus::Filled);
        assert_eq!(get(&unknown_here.client_id).fencing_token, Some(3));
        assert_eq!(ledger.open_entries().len(), 1);

        // A record written before leases (no `fencing_token` field) decodes as `None`.
        let mut old = serde_json::to_value(get(&open_here.client_id)).unwrap();
        old.as_object_mut().unwrap().remove("fencing_token");
        let decoded: LedgerEntry = serde_json::from_value(old).unwrap();
        assert_eq!(decoded.fencing_token, None);
    }

    #[tokio::test]
    async fn intent_is_durable_and_open_index_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let (a, b) = (request(), request());
        {
            let store = Store::open(dir.path()).unwrap();
            let ledger = OrderLedger::open(&store, clock.clone()).unwrap();
            ledger
                .record_intent(
                    "paper",
                    &approve_for_venue_test(a.clone(), dec!(1)),
                    "test",
                    1_000,
                )
                .await
                .unwrap();
            ledger
                .record_intent(
                    "paper",
                    &approve_for_venue_test(b.clone(), dec!(1)),
                    "test",
                    1_000,
                )
                .await
                .unwrap();
            ledger
                .update(&b.client_id, |e| e.status = OrderStatus::Filled)
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let ledger = OrderLedger::open(&store, clock).unwrap();
        let open: Vec<_> = ledger
            .open_entries()
            .into_iter()
            .map(|e| e.client_id)
            .collect();
        assert_eq!(open, vec![a.client_id.clone()]);
        assert_eq!(
            ledger.get(&b.client_id).unwrap().unwrap().status,
            OrderStatus::Filled
        );
        assert_eq!(ledger.len(), 2);
    }

    #[tokio::test]
    async fn a_client_id_is_recorded_once() {
        let store = Store::temporary().unwrap();
        let ledger = OrderLedger::open(&store, ManualClock::new(0)).unwrap();
        let approved = approve_for_venue_test(request(), dec!(1));
        ledger
            .record_intent("paper", &approved, "test", 0)
            .await
            .unwrap();
        assert!(matches!(
            ledger.record_intent("paper", &approved, "test", 0).await,
            Err(LedgerError::Duplicate(_))
        ));
        // A refusal is no way around it either.
        assert!(matches!(
            ledger
                .record_refusal("paper", approved.into_order(), "test", 0, "r".into())
                .await,
            Err(LedgerError::Duplicate(_))
        ));
    }

    #[tokio::test]
    async fn a_refused_order_is_recorded_final_and_never_open() {
        let store = Store::temporary().unwrap();
        let ledger = OrderLedger::open(&store, ManualClock::new(0)).unwrap();
        let refused = ledger
            .record_refusal("paper", request(), "test", 0, "risk gate: halted".into())
            .await
            .unwrap();
        assert_eq!(refused.status, OrderStatus::Rejected);
        assert_eq!(refused.reason.as_deref(), Some("risk gate: halted"));
        assert!(ledger.open_entries().is_empty());
        assert_eq!(ledger.get(&refused.client_id).unwrap(), Some(refused));
    }

    #[tokio::test]
    async fn fills_are_idempotent() {
        let store = Store::temporary().unwrap();
        let ledger = OrderLedger::open(&store, ManualClock::new(0)).unwrap();
        let fill = Fill {
            fill_id: "t1".into(),
            client_id: None,
            venue_order_id: "1".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            price: dec!(100),
            size: dec!(1),
            fee: dec!(0.05),
            closed_pnl: dec!(0),
            time_ms: 42,
            fee_asset: None,
        };
        assert!(ledger.record_fill("paper", &fill).await.unwrap());
        assert!(!ledger.record_fill("paper", &fill).await.unwrap());
        assert_eq!(ledger.last_fill_ms("paper").unwrap(), Some(42));
        assert_eq!(ledger.last_fill_ms("other").unwrap(), None);
    }

    #[test]
    fn average_price_comes_from_all_of_an_orders_fills_or_not_at_all() {
        let fill = |id: &str, oid: &str, price, size| Fill {
            fill_id: id.into(),
            client_id: None,
            venue_order_id: oid.into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            price,
            size,
            fee: Decimal::ZERO,
            closed_pnl: Decimal::ZERO,
            time_ms: 1,
            fee_asset: None,
        };
        let mut entry = LedgerEntry::new_intent("hyperliquid", request(), "test", 0);
        entry.status = OrderStatus::Filled;
        entry.filled_size = dec!(0.03);
        entry.venue_order_id = Some("7".into());
        let first = fill("a", "7", dec!(100), dec!(0.01));
        let second = fill("b", "7", dec!(103), dec!(0.02));
        let other = fill("c", "8", dec!(1), dec!(5));
        // One fill missing: the sizes do not add up, so no price is made up.
        assert!(!entry.clone().price_from_fills([&first, &other]));
        assert!(entry.price_from_fills([&first, &other, &second]));
        assert_eq!(entry.avg_fill_price, Some(dec!(102)));
        // A lookup without a price keeps the known one for the same filled size.
        let looked_up = VenueOrder {
            client_id: Some(entry.client_id.clone()),
            venue_order_id: "7".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            size: dec!(0.03),
            filled_size: dec!(0.03),
            avg_fill_price: None,
            limit_price: None,
            status: OrderStatus::Filled,
            reduce_only: false,
            reject_reason: None,
            updated_ms: 2,
        };
        assert!(!entry.apply_venue_order(&looked_up, 2));
        assert_eq!(entry.avg_fill_price, Some(dec!(102)));
    }

    #[test]
    fn newest_first() {
        let store = Store::temporary().unwrap();
        let ledger = OrderLedger::open(&store, ManualClock::new(0)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ids: Vec<_> = (0..3)
            .map(|_| {
                let r = request();
                let id = r.client_id.clone();
                rt.block_on(ledger.record_intent(
                    "paper",
                    &approve_for_venue_test(r, dec!(1)),
                    "t",
                    0,
                ))
                .unwrap();
                id
            })
            .collect();
        let recent: Vec<_> = ledger
            .recent(2)
            .unwrap()
            .into_iter()
            .map(|e| e.client_id)
            .collect();
        assert_eq!(recent, vec![ids[2].clone(), ids[1].clone()]);
    }
}
