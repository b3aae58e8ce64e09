//! Orrery, the process: configuration, boot of the supervised actor tree, the control and
//! metrics HTTP API, status reports, and the embedding API
//! ([`Engine::start`] → [`EngineHandle`]; its typed calls in [`embed`], its event stream
//! in [`events`], the supervisor tree as data in [`tree`]). `examples/embedded.rs` runs
//! an engine inside another program.

pub mod accounts;
pub mod agents;
pub mod backtest_cli;
mod binance_feeds;
pub mod cluster_member;
pub mod cluster_status;
pub mod commands;
pub mod config;
pub mod copy;
pub mod dashboard;
pub mod data;
pub mod embed;
pub mod engine;
pub mod events;
pub mod feeds;
pub mod flow_agents;
pub mod history;
pub mod http;
pub mod journal;
pub mod json;
pub mod liquidations;
pub mod logging;
pub mod market;
pub mod models;
pub mod notify;
pub mod operate;
pub mod ownership;
pub mod paper_mode;
pub mod replay;
pub mod resources;
pub mod sentiment;
pub mod signals;
pub mod status;
pub mod strategies;
pub mod strategy_agents;
pub mod summary;
pub mod symbols;
pub mod tree;

pub use config::Config;
pub use embed::EngineCallError;
pub use engine::{Engine, EngineError, EngineHandle};
pub use events::EngineEvent;
