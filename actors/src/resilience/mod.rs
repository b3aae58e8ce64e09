//! Resilience building blocks shared by model pools and exchange connectors: rate limiters,
//! priority queue, circuit breakers, retry policies and fallback levels.

mod class;

pub use class::ErrorClass;
