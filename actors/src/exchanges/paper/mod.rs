//! The paper venue: a complete [`Venue`] with no keys and no network, so the engine runs end
//! to end offline.
//!
//! Owns: a seeded simulated market per symbol ([`sim`]) or a replayed CSV ([`replay`]),
//! quotes and candles from it ([`market`]), and a paper account with positions, orders and
//! fills ([`account`]) that lives in the store's `paper` tree. Never: network I/O, retries,
//! or risk decisions (the gateway's risk gate makes those before an order gets here).
//!
//! Time comes from the injected [`Clock`](crate::clock::Clock). Every call first advances
//! the account to the clock's now: resting limit and trigger orders are matched against
//! every simulated step since the last call (after a gap of more than an hour of steps,
//! e.g. a restart, against every 60th or 3 600th step), so a quote read after a crossing
//! sees the order filled, at the time it crossed. With the same seed, the same account
//! creation day and the same clock times, prices and candles are identical whatever the
//! call pattern.
//!
//! Storage: the `paper` tree holds `<name>/account` (cash, positions, leverage, counters,
//! market anchor), `<name>/order/<client id>` and `<name>/fill/<seq>`, so several paper
//! accounts can share one store. The starting balance applies only when `<name>/account`
//! does not exist yet.
//!
//! Durability: every state change is on disk before the call returns. The new fills, the
//! changed orders and the account record (cash, positions, counters) of one change are
//! one atomic sled batch, so a crash never leaves an order marked filled without its fill
//! and position. [`PaperVenue::open`] still re-applies fills that an account record does
//! not count, for data written by builds that wrote them separately. Concurrent calls are serialised by an async write
//! lock (held across the store awaits, so records reach disk in the order their changes
//! were made); the account itself sits behind a `parking_lot` mutex held only while
//! computing, never across an await.
//!
//! Memory: one record per resting order in memory; terminal orders and fills are read
//! back from sled on demand (`fills_since` scans the venue's fills). Simulation caches are
//! bounded (see [`sim`]).

mod account;
mod config;
mod derivatives;
mod market;
mod replay;
mod sim;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rust_decimal::prelude::ToPrimitive;

pub use config::{PaperConfig, PaperSymbolConfig};
pub use derivatives::PaperDerivatives;
pub use market::MAX_LOOKBACK;
pub use replay::{ReplayError, MAX_ROWS as MAX_REPLAY_ROWS};

use account::{AccountRecord, Book, Changes, Markets, PaperOrder, PaperRecord, Terms};
use market::{Market, PriceSource};
use replay::ReplayPath;
use sim::SimPath;

use crate::clock::{Millis, SharedClock};
use crate::exchanges::risk_gate::RiskApproved;
use crate::exchanges::types::*;
use crate::exchanges::venue::{Venue, VenueError, VenueResult};
use crate::store::{trees, Store, StoreError, Tree};
use crate::validate::Issues;

const DAY_MS: Millis = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum PaperError {
    #[error("paper venue `{venue}` has an invalid config: {issues}")]
    Config { venue: String, issues: String },
    #[error("paper venue `{venue}`: {source}")]
    Replay {
        venue: String,
        #[source]
        source: ReplayError,
    },
    #[error("paper venue `{venue}`: cannot load or create its account: {source}")]
    Store {
        venue: String,
        #[source]
        source: StoreError,
    },
    #[error("paper venue `{venue}`: stored record `{key}` is not what it should be ({reason}); restore the data dir from a backup, or remove the `{venue}/` keys of the `paper` tree to start a fresh paper account")]
    Corrupt {
        venue: String,
        key: String,
        reason: String,
    },
}

/// Markets by symbol, each behind its own lock so candle requests for one symbol do not
/// block the others. Lock order: the book, then one market at a time.
struct MarketTable(BTreeMap<String, Mutex<Market>>);

impl Markets for MarketTable {
    fn with_market<R>(&self, symbol: &str, f: impl FnOnce(&mut Market) -> R) -> Option<R> {
        self.0.get(symbol).map(|m| f(&mut m.lock()))
    }
}

/// The paper exchange. See the module docs.
pub struct PaperVenue {
    name: String,
    clock: SharedClock,
    tree: Tree<PaperRecord>,
    markets: MarketTable,
    book: Mutex<Book>,
    /// Serialises state changes with their writes; see the module docs.
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PaperVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperVenue")
            .field("name", &self.name)
            .finish()
    }
}

fn account_key(venue: &str) -> String {
    format!("{venue}/account")
}
fn order_key(venue: &str, client_id: &ClientOrderId) -> String {
    format!("{venue}/order/{client_id}")
}
fn fill_key(venue: &str, seq: u64) -> String {
    format!("{venue}/fill/{seq:020}")
}

impl PaperVenue {
    /// Opens the paper account `name` in `store`, creating it with the configured starting
    /// balance if it does not exist yet, and builds its markets.
    pub fn open(
        name: &str,
        config: &PaperConfig,
        store: &Store,
        clock: SharedClock,
    ) -> Result<PaperVenue, PaperError> {
        let mut issues = Issues::default();
        config.validate("", &mut issues);
        if !issues.is_empty() {
            return Err(PaperError::Config {
                venue: name.to_string(),
                issues: issues
                    .0
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let store_err = |source| PaperError::Store {
            venue: name.to_string(),
            source,
        };
        let corrupt = |key: &str, reason: &str| PaperError::Corrupt {
            venue: name.to_string(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let tree = store.tree::<PaperRecord>(trees::PAPER).map_err(store_err)?;
        let now = clock.now_ms();
        let key = account_key(name);
        let account = match tree.get(&key).map_err(store_err)? {
            Some(PaperRecord::Account(a)) => a,
            Some(_) => return Err(corrupt(&key, "expected an account record")),
            None => {
                let account = AccountRecord {
                    balance: config.starting_balance_usd,
                    created_ms: now,
                    market_anchor_ms: now.div_euclid(DAY_MS) * DAY_MS,
                    checked_ms: now,
                    next_order_seq: 0,
                    next_fill_seq: 0,
                    positions: BTreeMap::new(),
                    leverage: BTreeMap::new(),
                };
                tree.put_durable_blocking(&key, &PaperRecord::Account(account.clone()))
                    .map_err(store_err)?;
                account
            }
        };

        let mut open = Vec::new();
        let mut max_seq = None;
        for entry in tree.scan_prefix(&format!("{name}/order/")) {
            let (key, record) = entry.map_err(store_err)?;
            let PaperRecord::Order(order) = record else {
                return Err(corrupt(&key, "expected an order record"));
            };
            if order.order.client_id.is_none() {
                return Err(corrupt(&key, "order record without a client id"));
            }
            max_seq = max_seq.max(Some(order.seq));
            if order.order.status.is_open() {
                open.push(order);
            }
        }
        open.sort_by_key(|o: &PaperOrder| o.seq);
        let mut uncommitted = Vec::new();
        loop {
            let key = fill_key(name, account.next_fill_seq + uncommitted.len() as u64);
            match tree.get(&key).map_err(store_err)? {
                Some(PaperRecord::Fill(f)) => uncommitted.push(f),
                Some(_) => return Err(corrupt(&key, "expected a fill record")),
                None => break,
            }
        }

        let step_ms = config.step.as_millis() as Millis;
        let mut markets = BTreeMap::new();
        for (symbol, rules) in config.rules() {
            let source = match &rules.replay_csv {
                Some(file) => {
                    PriceSource::Replay(Arc::new(ReplayPath::load(file).map_err(|source| {
                        PaperError::Replay {
                            venue: name.to_string(),
                            source,
                        }
                    })?))
                }
                None => {
                    // Invariant: validation requires a positive initial price for
                    // simulated symbols, and a positive Decimal always has an f64 value.
                    let initial = rules.initial_price.and_then(|p| p.to_f64()).unwrap_or(1.0);
                    PriceSource::Sim(SimPath::new(
                        config.seed,
                        &symbol,
                        initial,
                        rules.volatility_annual,
                        config.drift_annual,
                        step_ms,
                    ))
                }
            };
            let market = Market::new(
                name,
                rules.instrument,
                config.spread_bps,
                account.market_anchor_ms,
                step_ms,
                source,
            );
            markets.insert(symbol, Mutex::new(market));
        }

        // An account holding a symbol the config no longer lists could never be marked or
        // matched again; refuse to start rather than fail every call later.
        let orphaned: Vec<&str> = account
            .positions
            .keys()
            .map(String::as_str)
            .chain(open.iter().map(|o: &PaperOrder| o.order.symbol.as_str()))
            .filter(|s| !markets.contains_key(*s))
            .collect();
        if let Some(symbol) = orphaned.first() {
            return Err(PaperError::Config {
                venue: name.to_string(),
                issues: format!(
                    "the paper account holds a position or open order in `{symbol}`, which is not in `symbols`; add it back to the config"
                ),
            });
        }

        let bps = rust_decimal::Decimal::from(10_000);
        let mut book = Book {
            venue: name.to_string(),
            account,
            open,
            terms: Terms {
                taker_fee: config.fee_taker_bps / bps,
                maker_fee: config.fee_maker_bps / bps,
                slippage: config.slippage_bps / bps,
                top_of_book_usd: config.top_of_book_usd,
                default_leverage: config.default_leverage,
            },
        };
        if let Some(seq) = max_seq {
            book.account.next_order_seq = book.account.next_order_seq.max(seq + 1);
        }
        if !uncommitted.is_empty() {
            tracing::warn!(
                venue = name,
                fills = uncommitted.len(),
                "paper account record missed fills written before a crash; re-applying them"
            );
            book.replay_uncommitted(&uncommitted);
            tree.put_durable_blocking(&key, &PaperRecord::Account(book.account.clone()))
                .map_err(store_err)?;
        }
        Ok(PaperVenue {
            name: name.to_string(),
            clock,
            tree,
            markets: MarketTable(markets),
            book: Mutex::new(book),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    fn unknown_symbol(&self, symbol: &str) -> VenueError {
        VenueError::UnknownSymbol {
            venue: self.name.clone(),
            symbol: symbol.to_string(),
        }
    }

    fn check_symbol(&self, symbol: &str) -> VenueResult<()> {
        if self.markets.0.contains_key(symbol) {
            Ok(())
        } else {
            Err(self.unknown_symbol(symbol))
        }
    }

    fn store_failed(&self, what: &str, e: StoreError) -> VenueError {
        VenueError::Unavailable {
            venue: self.name.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    /// Advances the book to now, runs `op` on it, and writes what changed before returning
    /// `op`'s result. A failed write is reported as `on_write_error` says.
    async fn with_book<R>(
        &self,
        on_write_error: fn(&Self, StoreError) -> VenueError,
        op: impl FnOnce(&mut Book, &MarketTable, Millis, &mut Changes) -> VenueResult<R>,
    ) -> VenueResult<(R, Millis)> {
        let _serial = self.writes.lock().await;
        let now = self.clock.now_ms();
        let mut changes = Changes::default();
        let (result, account) = {
            let mut book = self.book.lock();
            let result = book
                .advance(&self.markets, now, &mut changes)
                .and_then(|()| op(&mut book, &self.markets, now, &mut changes));
            let account = changes.account.then(|| book.account.clone());
            (result, account)
        };
        if !changes.is_empty() {
            self.write(changes, account)
                .await
                .map_err(|e| on_write_error(self, e))?;
        }
        result.map(|r| (r, now))
    }

    /// Writes one change of the book — its fills, orders and the account — as a single
    /// atomic batch: after a crash the venue never holds an order marked filled without
    /// the fill and the position that go with it (the gateway reconciles from these
    /// records, so a torn write would make the ledger and the venue disagree).
    async fn write(
        &self,
        changes: Changes,
        account: Option<AccountRecord>,
    ) -> Result<(), StoreError> {
        let mut records: Vec<(String, PaperRecord)> = Vec::new();
        for (seq, fill) in changes.fills {
            records.push((fill_key(&self.name, seq), PaperRecord::Fill(fill)));
        }
        for order in changes.orders {
            records.push((
                order_key(&self.name, order.client_id()),
                PaperRecord::Order(order),
            ));
        }
        if let Some(account) = account {
            records.push((account_key(&self.name), PaperRecord::Account(account)));
        }
        self.tree.put_durable_batch(&records).await
    }

    fn state_write_failed(&self, e: StoreError) -> VenueError {
        self.store_failed("cannot write the paper account's state", e)
    }

    fn order_write_failed(&self, e: StoreError) -> VenueError {
        VenueError::OutcomeUnknown {
            venue: self.name.clone(),
            reason: format!("the paper account's state could not be written ({e}); query the order by client id"),
        }
    }

    fn stored_order(&self, client_id: &ClientOrderId) -> VenueResult<Option<PaperOrder>> {
        let key = order_key(&self.name, client_id);
        match self.tree.get(&key) {
            Ok(Some(PaperRecord::Order(o))) => Ok(Some(o)),
            Ok(Some(_)) => Err(VenueError::Unavailable {
                venue: self.name.clone(),
                reason: format!(
                    "stored record `{key}` is not an order; the paper tree looks corrupt"
                ),
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(self.store_failed("cannot read the paper order", e)),
        }
    }
}

#[async_trait]
impl Venue for PaperVenue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn instrument(&self, symbol: &str) -> VenueResult<Instrument> {
        self.markets
            .with_market(symbol, |m| m.instrument.clone())
            .ok_or_else(|| self.unknown_symbol(symbol))
    }

    async fn quote(&self, symbol: &str) -> VenueResult<Quote> {
        self.check_symbol(symbol)?;
        let (top, now) = self
            .with_book(Self::state_write_failed, |book, markets, now, _| {
                markets
                    .with_market(symbol, |m| m.top(m.step_at(now)))
                    .ok_or_else(|| VenueError::UnknownSymbol {
                        venue: book.venue.clone(),
                        symbol: symbol.to_string(),
                    })?
            })
            .await?;
        Ok(Quote {
            symbol: symbol.to_string(),
            bid: top.bid,
            ask: top.ask,
            time_ms: now,
            fallback: None,
        })
    }

    async fn candles(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> VenueResult<Vec<Candle>> {
        self.check_symbol(symbol)?;
        let ((), now) = self
            .with_book(Self::state_write_failed, |_, _, _, _| Ok(()))
            .await?;
        self.markets
            .with_market(symbol, |m| m.candles(timeframe, lookback, now))
            .ok_or_else(|| self.unknown_symbol(symbol))?
    }

    /// Fills at this venue's own simulated book: the order's reference price is not needed
    /// (the book is the market here, read in the same step as the fill).
    async fn place_order(&self, order: &RiskApproved<OrderRequest>) -> VenueResult<VenueOrder> {
        self.check_symbol(&order.symbol)?;
        let (placed, _) = self
            .with_book(Self::order_write_failed, |book, markets, now, changes| {
                let known = book.open.iter().any(|o| o.client_id() == &order.client_id)
                    || self.stored_order(&order.client_id)?.is_some();
                if known {
                    return Err(VenueError::InvalidRequest {
                        venue: self.name.clone(),
                        reason: format!(
                            "client order id {} was already used; resolve the earlier order with query_order instead of sending again",
                            order.client_id
                        ),
                    });
                }
                book.place(markets, order, now, changes)
            })
            .await?;
        Ok(placed.order)
    }

    async fn cancel_order(&self, symbol: &str, client_id: &ClientOrderId) -> VenueResult<()> {
        self.check_symbol(symbol)?;
        let (cancelled, _) = self
            .with_book(Self::order_write_failed, |book, _, now, changes| {
                book.cancel(symbol, client_id, now, changes)
            })
            .await?;
        if cancelled.is_some() {
            return Ok(());
        }
        match self.stored_order(client_id)? {
            None => Err(VenueError::OrderNotFound {
                venue: self.name.clone(),
                client_id: client_id.to_string(),
            }),
            Some(o) if o.order.symbol != symbol => Err(VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: format!("order {client_id} is for {}, not {symbol}", o.order.symbol),
            }),
            // Cancelling twice is harmless.
            Some(o) if o.order.status == OrderStatus::Cancelled => Ok(()),
            Some(o) => Err(VenueError::Rejected {
                venue: self.name.clone(),
                reason: format!(
                    "order {client_id} is already {} and cannot be cancelled",
                    o.order.status
                ),
            }),
        }
    }

    async fn query_order(
        &self,
        symbol: &str,
        client_id: &ClientOrderId,
    ) -> VenueResult<Option<VenueOrder>> {
        self.check_symbol(symbol)?;
        let (open, _) = self
            .with_book(Self::state_write_failed, |book, _, _, _| {
                Ok(book
                    .open
                    .iter()
                    .find(|o| o.client_id() == client_id)
                    .cloned())
            })
            .await?;
        let found = match open {
            Some(o) => Some(o),
            None => self.stored_order(client_id)?,
        };
        match found {
            Some(o) if o.order.symbol != symbol => Err(VenueError::InvalidRequest {
                venue: self.name.clone(),
                reason: format!("order {client_id} is for {}, not {symbol}", o.order.symbol),
            }),
            other => Ok(other.map(|o| o.order)),
        }
    }

    async fn cancel_by_venue_id(&self, symbol: &str, venue_order_id: &str) -> VenueResult<()> {
        // Every paper order carries a client id; the venue's own id leads to it.
        let open = self.open_orders().await?;
        match open
            .into_iter()
            .find(|o| o.venue_order_id == venue_order_id)
            .and_then(|o| o.client_id)
        {
            Some(client_id) => self.cancel_order(symbol, &client_id).await,
            None => Err(VenueError::OrderNotFound {
                venue: self.name.clone(),
                client_id: format!("(venue order {venue_order_id})"),
            }),
        }
    }

    async fn open_orders(&self) -> VenueResult<Vec<VenueOrder>> {
        let (orders, _) = self
            .with_book(Self::state_write_failed, |book, _, _, _| {
                Ok(book
                    .open
                    .iter()
                    .map(|o| o.order.clone())
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(orders)
    }

    async fn fills_since(&self, since_ms: Millis) -> VenueResult<Vec<Fill>> {
        self.with_book(Self::state_write_failed, |_, _, _, _| Ok(()))
            .await?;
        let mut fills = Vec::new();
        for entry in self.tree.scan_prefix(&format!("{}/fill/", self.name)) {
            let (key, record) =
                entry.map_err(|e| self.store_failed("cannot read paper fills", e))?;
            match record {
                PaperRecord::Fill(f) if f.time_ms >= since_ms => fills.push(f),
                PaperRecord::Fill(_) => {}
                _ => {
                    return Err(VenueError::Unavailable {
                        venue: self.name.clone(),
                        reason: format!(
                            "stored record `{key}` is not a fill; the paper tree looks corrupt"
                        ),
                    })
                }
            }
        }
        // Keys are in sequence order; a clock set backwards could break time order.
        fills.sort_by_key(|f| f.time_ms);
        Ok(fills)
    }

    async fn positions(&self) -> VenueResult<Vec<Position>> {
        let (positions, _) = self
            .with_book(Self::state_write_failed, |book, markets, now, _| {
                book.positions(markets, now)
            })
            .await?;
        Ok(positions)
    }

    async fn account(&self) -> VenueResult<AccountSnapshot> {
        let (snapshot, _) = self
            .with_book(Self::state_write_failed, |book, markets, now, _| {
                book.snapshot(markets, now)
            })
            .await?;
        Ok(snapshot)
    }

    async fn account_state(&self) -> VenueResult<AccountState> {
        let (state, _) = self
            .with_book(Self::state_write_failed, |book, markets, now, _| {
                Ok(AccountState {
                    account: book.snapshot(markets, now)?,
                    positions: book.positions(markets, now)?,
                })
            })
            .await?;
        Ok(state)
    }

    async fn leverage(&self, symbol: &str) -> VenueResult<u32> {
        self.check_symbol(symbol)?;
        Ok(self.book.lock().leverage(symbol))
    }

    async fn set_leverage(&self, symbol: &str, leverage: u32) -> VenueResult<()> {
        self.check_symbol(symbol)?;
        self.with_book(Self::state_write_failed, |book, markets, now, changes| {
            book.set_leverage(markets, symbol, leverage, now, changes)
        })
        .await?;
        Ok(())
    }
}

/// What [`PaperVenue::reset`] removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PaperReset {
    pub venue: String,
    /// Cash of the account before the reset (positions are dropped, not valued).
    pub balance_before: rust_decimal::Decimal,
    pub positions_removed: usize,
    pub orders_removed: usize,
    pub fills_removed: usize,
    pub starting_balance: rust_decimal::Decimal,
}

impl PaperVenue {
    /// Starts the paper account `name` afresh: its orders and fills are removed and the
    /// account is written again with the configured starting balance and no positions.
    /// The order and fill sequence numbers continue where they were, so fill ids stay
    /// unique in the order ledger's `fills` tree (which keeps the old account's history).
    /// Must not run while a [`PaperVenue`] of this account is open (the engine refuses to
    /// share its data dir, which guarantees that). Idempotent: an interrupted reset is
    /// completed by running it again.
    pub fn reset(
        name: &str,
        config: &PaperConfig,
        store: &Store,
        clock: SharedClock,
    ) -> Result<PaperReset, PaperError> {
        let store_err = |source| PaperError::Store {
            venue: name.to_string(),
            source,
        };
        let tree = store.tree::<PaperRecord>(trees::PAPER).map_err(store_err)?;
        let key = account_key(name);
        let old = match tree.get(&key).map_err(store_err)? {
            Some(PaperRecord::Account(a)) => Some(a),
            _ => None,
        };
        // Orders first: a crash part-way leaves no resting order of the old account to be
        // matched against the new one.
        let mut removed = [0usize; 2];
        for (i, prefix) in [format!("{name}/order/"), format!("{name}/fill/")]
            .iter()
            .enumerate()
        {
            let keys: Vec<String> = tree
                .scan_prefix(prefix)
                .map(|r| r.map(|(k, _)| k))
                .collect::<Result<_, _>>()
                .map_err(store_err)?;
            for k in &keys {
                tree.remove(k).map_err(store_err)?;
            }
            removed[i] = keys.len();
        }
        let now = clock.now_ms();
        let account = AccountRecord {
            balance: config.starting_balance_usd,
            created_ms: now,
            market_anchor_ms: now.div_euclid(DAY_MS) * DAY_MS,
            checked_ms: now,
            next_order_seq: old.as_ref().map_or(0, |a| a.next_order_seq),
            next_fill_seq: old.as_ref().map_or(0, |a| a.next_fill_seq),
            positions: BTreeMap::new(),
            leverage: BTreeMap::new(),
        };
        // Durable, and covers the removals above (one flush covers every earlier write).
        tree.put_durable_blocking(&key, &PaperRecord::Account(account))
            .map_err(store_err)?;
        tracing::warn!(
            venue = name,
            orders = removed[0],
            fills = removed[1],
            "paper account reset"
        );
        Ok(PaperReset {
            venue: name.to_string(),
            balance_before: old
                .as_ref()
                .map_or(config.starting_balance_usd, |a| a.balance),
            positions_removed: old.as_ref().map_or(0, |a| {
                a.positions.values().filter(|h| !h.size.is_zero()).count()
            }),
            orders_removed: removed[0],
            fills_removed: removed[1],
            starting_balance: config.starting_balance_usd,
        })
    }
}
