//! What a strategy agent keeps in sled (tree `strategy/<agent>`, key `cursor`): the last
//! bar it fed, the decisions of the bar being acted on, the protective levels it
//! enforces, and its recent orders with their fills.
//!
//! Owns: that key and the derivation of the agent's client ids. Never: decides anything.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::exchanges::gateway::OrderReport;
use crate::exchanges::{ClientOrderId, Side};
use crate::store::{Record, Store, StoreError, Tree};
use crate::strategies::api::Action;

const KEY: &str = "cursor";

/// The tree of agent `name`.
pub fn tree_name(agent: &str) -> String {
    format!("strategy/{agent}")
}

/// Which protective level closed a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    StopLoss,
    TakeProfit,
}

impl ExitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::StopLoss => "stop_loss",
            ExitKind::TakeProfit => "take_profit",
        }
    }
}

/// Stop-loss / take-profit of the position an intent opened, enforced by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protection {
    /// The side of the position they protect (`Buy`: a long).
    pub side: Side,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub stop_loss: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub take_profit: Option<Decimal>,
    /// Open time of the bar whose intent set them.
    pub bar_ms: Millis,
}

impl Protection {
    /// The level a bar with this `high` / `low` reaches, the stop first (the worse one
    /// when both are touched).
    pub fn touched(&self, high: Decimal, low: Decimal) -> Option<ExitKind> {
        let (stop_hit, target_hit) = match self.side {
            Side::Buy => (
                self.stop_loss.is_some_and(|s| low <= s),
                self.take_profit.is_some_and(|t| high >= t),
            ),
            Side::Sell => (
                self.stop_loss.is_some_and(|s| high >= s),
                self.take_profit.is_some_and(|t| low <= t),
            ),
        };
        if stop_hit {
            Some(ExitKind::StopLoss)
        } else if target_hit {
            Some(ExitKind::TakeProfit)
        } else {
            None
        }
    }
}

/// The decisions of one bar, written before any of its orders is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingBar {
    pub bar_ms: Millis,
    /// A protective exit taken before the strategy's actions.
    pub exit: Option<ExitKind>,
    /// The strategy's actions for the bar, in push order.
    pub actions: Vec<Action>,
}

/// An order the agent placed, kept while its bar is within the history a run feeds
/// again, so the rebuilt strategy is told of its fill (`on_fill`) before the next bar,
/// as the backtester tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnOrder {
    pub client_id: ClientOrderId,
    /// Open time of the bar whose decision placed it.
    pub bar_ms: Millis,
    pub side: Side,
    /// Base units filled so far.
    #[serde(with = "rust_decimal::serde::str")]
    pub filled: Decimal,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub avg_price: Option<Decimal>,
    /// Filled, cancelled or rejected: its fill no longer changes, so it is not asked again.
    pub settled: bool,
}

impl OwnOrder {
    pub fn of(bar_ms: Millis, order: &OrderReport) -> Self {
        Self {
            client_id: order.client_id.clone(),
            bar_ms,
            side: order.side,
            filled: order.filled_size,
            avg_price: order.avg_fill_price,
            settled: order.status.is_terminal(),
        }
    }

    /// What the ledger says of it now.
    pub fn update(&mut self, order: &OrderReport) {
        self.filled = order.filled_size;
        self.avg_price = order.avg_fill_price;
        self.settled = order.status.is_terminal();
    }
}

/// The agent's whole durable state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StrategyCursor {
    /// Open time of the last bar fed (acted on or skipped); `None` before the first run.
    pub last_fed_ms: Option<Millis>,
    pub pending: Option<PendingBar>,
    pub protection: Option<Protection>,
    /// Its orders of the bars a run feeds again, oldest first (see [`OwnOrder`]).
    #[serde(default)]
    pub orders: Vec<OwnOrder>,
}
impl Record for StrategyCursor {}

/// The typed view of one agent's tree.
#[derive(Clone)]
pub struct StrategyAgentState {
    tree: Tree<StrategyCursor>,
}

impl StrategyAgentState {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(&tree_name(agent))?,
        })
    }

    pub fn get(&self) -> Result<StrategyCursor, StoreError> {
        Ok(self.tree.get(KEY)?.unwrap_or_default())
    }

    /// Written and flushed: it decides what is sent after a crash.
    pub async fn put(&self, cursor: &StrategyCursor) -> Result<(), StoreError> {
        self.tree.put_durable(KEY, cursor).await
    }
}

/// The client id of action `index` of the bar opening at `bar_ms` (the exit is index
/// `u32::MAX`): the same decision after a restart has the same id, so the gateway never
/// sends it twice.
pub fn order_client_id(
    agent: &str,
    venue: &str,
    symbol: &str,
    bar_ms: Millis,
    index: u32,
) -> ClientOrderId {
    let mut h = Sha256::new();
    for part in ["orrery-strategy", agent, venue, symbol] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.update(bar_ms.to_be_bytes());
    h.update(index.to_be_bytes());
    let digest = h.finalize();
    // Invariant: 16 bytes hex-encode to 32 hex digits, which is what `parse` accepts.
    ClientOrderId::parse(&hex::encode(&digest[..16])).expect("32 hex digits are a client order id")
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn a_bar_touching_both_levels_takes_the_stop() {
        let long = Protection {
            side: Side::Buy,
            stop_loss: Some(dec!(95)),
            take_profit: Some(dec!(110)),
            bar_ms: 0,
        };
        assert_eq!(long.touched(dec!(111), dec!(94)), Some(ExitKind::StopLoss));
        assert_eq!(
            long.touched(dec!(110), dec!(96)),
            Some(ExitKind::TakeProfit)
        );
        assert_eq!(long.touched(dec!(109), dec!(96)), None);
        let short = Protection {
            side: Side::Sell,
            stop_loss: Some(dec!(110)),
            take_profit: Some(dec!(95)),
            bar_ms: 0,
        };
        assert_eq!(short.touched(dec!(109), dec!(96)), None);
        assert_eq!(short.touched(dec!(110), dec!(90)), Some(ExitKind::StopLoss));
        assert_eq!(
            short.touched(dec!(100), dec!(95)),
            Some(ExitKind::TakeProfit)
        );
    }

    #[test]
    fn client_ids_differ_by_bar_and_index_and_repeat_for_the_same_decision() {
        let a = order_client_id("s", "paper", "BTC", 1000, 0);
        assert_eq!(a, order_client_id("s", "paper", "BTC", 1000, 0));
        assert_ne!(a, order_client_id("s", "paper", "BTC", 1000, 1));
        assert_ne!(a, order_client_id("s", "paper", "BTC", 2000, 0));
        assert_ne!(a, order_client_id("t", "paper", "BTC", 1000, 0));
    }
}
