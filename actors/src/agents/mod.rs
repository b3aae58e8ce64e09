//! Agents: one module per agent kind. Each runs on its own schedule as a supervised actor
//! and reaches models and venues only through the router's and gateway's messages.

pub mod journal;
pub mod memory;
pub mod prompt;
pub mod risk;
pub mod trading;

pub use journal::{DecisionJournal, DecisionRecord};
pub use memory::{AgentMemory, MemoryStore};

#[cfg(test)]
mod tests;
