//! Trading strategies: what will live here, and the part that does already.
//!
//! This tree will hold the strategy API (a strategy sees bars through `on_bar` and answers
//! with order intents), the built-in strategies, and the declarative strategy specs that the
//! research agent produces. The same strategy code runs live and in the backtester
//! (`actors/src/backtest/`), so nothing here knows whether a bar came from a venue stream or
//! from history.
//!
//! Today it holds [`indicators`]: the technical indicators the built-in strategies read.
//!
//! Owns: indicator arithmetic (and, later, strategy decision logic).
//! Never does: talk to a venue, touch the ledger, or size orders in money — an indicator is a
//! signal in `f64`; turning it into an order in `Decimal` is the strategy's and the gateway's job.

pub mod indicators;
