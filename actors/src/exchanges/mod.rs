//! Exchanges: the unified venue API, one module per venue, the connector actor that wraps a
//! venue, the order ledger, the risk gate and the order gateway in front of them all.
//!
//! Agents reach this module only through the gateway's message types.

pub mod account;
pub mod binance;
pub mod binance_futures;
pub mod call_priority;
pub mod command;
pub mod connector;
pub mod derivatives;
pub mod gateway;
pub mod history;
pub mod hyperliquid;
pub mod ledger;
pub mod market_data;
pub mod paper;
pub mod pnl;
pub mod risk_gate;
pub mod rounding;
pub mod siblings;
pub mod stream;
pub mod types;
pub mod venue;
mod venue_retry;

pub use types::*;
pub use venue::{Venue, VenueError, VenueResult};
