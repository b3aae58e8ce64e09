//! Per-agent memory in `agents/<name>`: run counters and the last outcome, so a restarted
//! agent (or `orrery status`) knows what it did last; and whether the operator paused the
//! agent ([`AgentControl`], key `control`), so a pause survives restarts of the agent and
//! of the engine.

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
const CONTROL_KEY: &str = "control";
/// A swarm agent's quorum-health tracker ([`super::swarm::quorum_health::QuorumHealth`]), so a restart
/// remembers a lost quorum and the recovery under way.
const SWARM_HEALTH_KEY: &str = "swarm_health";

/// Whether an agent is paused: a paused agent skips its scheduled runs (counted as
/// `orrery_agent_runs_total{outcome="skipped_paused"}`) until it is resumed. Kept apart
/// from [`AgentMemory`] so a pause is never overwritten by a run recording its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentControl {
    pub paused: bool,
    /// Why it was paused or resumed.
    pub reason: String,
    /// When, in Unix milliseconds.
    pub since_ms: Millis,
}
impl Record for AgentControl {}

/// Reads and writes one agent's memory.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    tree: Tree<AgentMemory>,
    control: Tree<AgentControl>,
    swarm_health: Tree<super::swarm::quorum_health::QuorumHealth>,
}

impl MemoryStore {
    pub fn open(store: &Store, agent: &str) -> Result<Self, StoreError> {
        let name = format!("{}{agent}", trees::AGENTS_PREFIX);
        Ok(Self {
            tree: store.tree(&name)?,
            control: store.tree(&name)?,
            swarm_health: store.tree(&name)?,
        })
    }

    /// The agent's pause state (not paused when never set).
    pub fn control(&self) -> Result<AgentControl, StoreError> {
        Ok(self.control.get(CONTROL_KEY)?.unwrap_or_default())
    }

    /// Pauses or resumes the agent; durable before it returns, so a pause acknowledged to
    /// the operator holds across a crash.
    pub fn set_control(&self, control: &AgentControl) -> Result<(), StoreError> {
        self.control.put_durable_blocking(CONTROL_KEY, control)
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

    /// The swarm's quorum health (a fresh tracker when never recorded).
    pub fn swarm_health(&self) -> Result<super::swarm::quorum_health::QuorumHealth, StoreError> {
        Ok(self.swarm_health.get(SWARM_HEALTH_KEY)?.unwrap_or_default())
    }

    /// Records the swarm's quorum health after a decision (not flushed: a crash loses at
    /// most the last rounds, which the next decisions rebuild).
    pub fn set_swarm_health(
        &self,
        health: &super::swarm::quorum_health::QuorumHealth,
    ) -> Result<(), StoreError> {
        self.swarm_health.put(SWARM_HEALTH_KEY, health)
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
