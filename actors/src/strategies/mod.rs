//! Trading strategies: the strategy API, indicators and built-in strategies.
//!
//! A strategy sees closed bars through [`api::Strategy::on_bar`] and answers with order
//! intents ([`api::Action`]). The same strategy code runs live (a strategy agent, through the
//! gateway and its risk gate) and in the backtester (`crate::backtest`), so nothing here
//! knows whether a bar came from a venue stream or from history.
//!
//! - [`api`]: the contract (bars, positions, actions, fills, signals).
//! - [`params`]: parameters declared with a type and a range, given as `k=v`.
//! - [`builtin`]: the built-in strategies and the registry that builds them by name.
//! - [`indicators`]: the technical indicators, defined as TA-Lib defines them.
//! - [`spec`]: the declarative strategy format a model writes, its validation and compilation.
//! - [`library`]: every research → backtest attempt with its provenance, in sled.
//!
//! Owns: indicator arithmetic and strategy decision logic.
//! Never does: talk to a venue, touch the ledger, or size orders in money — an indicator is a
//! signal in `f64`; turning an intent into an order in `Decimal` is the runner's and the
//! gateway's job.

pub mod api;
pub mod builtin;
pub mod indicators;
pub mod library;
pub mod params;
pub mod spec;

pub use api::{Action, Actions, Bar, FillView, OrderIntent, PositionView, Side, Size, Strategy};
pub use builtin::{builtins, Builtin, StrategyError};
pub use params::{ParamKind, ParamSpec, Params};
