//! Per-agent memory in `agents/<name>`: run counters and the last outcome, so a restarted
//! agent (or `orrery status`) knows what it did last.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::store::{trees, Record, Store, StoreError, Tree};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMemory {
    pub runs: u64,
    pub failures: u64,
    pub last_run_ms: Option<Millis>,
    pub last_ok_ms: Option<Millis>,
    pub last_error: Option<String>,
}
impl Record for AgentMemory {}

const KEY: &str = "memory";

/// Reads and writes one agent's memory.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    tree: Tree<AgentMemory>,
}

impl MemoryStore {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(&format!("{}{agent}", trees::AGENTS_PREFIX))?,
        })
    }

    pub fn load(&self) -> Result<AgentMemory, StoreError> {
        Ok(self.tree.get(KEY)?.unwrap_or_default())
    }

    /// Records one run's outcome.
    pub fn record_run(
        &self,
        now: Millis,
        error: Option<String>,
    ) -> Result<AgentMemory, StoreError> {
        let mut m = self.load()?;
        m.runs += 1;
        m.last_run_ms = Some(now);
        match error {
            None => m.last_ok_ms = Some(now),
            Some(e) => {
                m.failures += 1;
                m.last_error = Some(e);
            }
        }
        self.tree.put(KEY, &m)?;
        Ok(m)
    }

    /// Names of every agent with memory in this store.
    pub fn agents(store: &Store) -> Vec<String> {
        store
            .tree_names()
            .into_iter()
            .filter_map(|n| n.strip_prefix(trees::AGENTS_PREFIX).map(str::to_string))
            .collect()
    }
}
