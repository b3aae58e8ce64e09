//! Orrery's actor system: the supervisor tree and everything actors share.
//!
//! Dependencies point one way: the `orrery` process crate depends on this crate, never the
//! reverse. Inside, agents talk to the model router and the order gateway through message
//! types only, never to a concrete provider or venue.

pub mod agents;
pub mod backtest;
pub mod clock;
pub mod cluster;
pub mod env;
pub mod exchanges;
pub mod models;
pub mod resilience;
pub mod shedding;
pub mod signals;
pub mod store;
pub mod strategies;
pub mod supervisor;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod validate;
