//! Models: request/response types, one module per provider wire format, the pool actor per
//! deployment, and the router in front of them. Agents see only [`types`] and the router's
//! messages.

pub mod client;
pub mod decision;
pub mod http;
pub mod local;
pub mod pool;
pub mod prices;
pub mod providers;
pub mod roles;
pub mod router;
pub mod types;

pub use client::ModelClient;
pub use types::*;
