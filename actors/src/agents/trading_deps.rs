//! What a trading agent's run reaches: the gateway, the model router, the journal, its
//! memory, the clock, the risk baselines and the signal bus. Its own module so the swarm
//! (which a trading run calls) can take it without importing the trading agent.

use super::journal::DecisionJournal;
use super::memory::MemoryStore;
use super::risk::BaselineBook;
use crate::clock::SharedClock;
use crate::exchanges::gateway::OrderGateway;
use crate::models::ModelClient;
use crate::signals::SignalBus;
use crate::supervisor::Slot;

/// Everything a run needs, cloneable into the run's future.
#[derive(Clone)]
pub struct TradingDeps {
    pub gateway: Slot<OrderGateway>,
    pub models: ModelClient,
    pub journal: DecisionJournal,
    pub memory: MemoryStore,
    pub clock: SharedClock,
    /// The risk window's baselines: an entry first ensures one from the account value
    /// read before it, so PnL is measured from before the window's first order.
    pub baselines: BaselineBook,
    /// The signal bus: verdicts are published on it, `signal_kinds` read from it.
    pub signals: Slot<SignalBus>,
}
