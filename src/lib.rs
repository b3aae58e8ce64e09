//! Orrery, the process: configuration, boot of the supervised actor tree, the control and
//! metrics HTTP API, status reports, and the embedding API
//! ([`Engine::start`] → [`EngineHandle`]).

pub mod commands;
pub mod config;
pub mod engine;
pub mod history;
pub mod http;
pub mod json;
pub mod logging;
pub mod models;
pub mod operate;
pub mod paper_mode;
pub mod status;
pub mod summary;
pub mod symbols;

pub use config::Config;
pub use engine::{Engine, EngineError, EngineHandle};
