//! Hyperliquid perpetuals: the exactness-critical pieces of the connector.
//!
//! - [`wire`]: decimal wire strings (`float_to_wire`) and each asset's price/size grid;
//! - [`actions`]: /exchange actions in their hashed field order, built from our
//!   [`OrderRequest`](crate::exchanges::OrderRequest);
//! - [`signing`]: msgpack → keccak → EIP-712 → secp256k1 signing, the wallet key, address
//!   derivation and signer recovery;
//! - [`info`]: readers for /info responses and /exchange statuses into venue-neutral types.
//!
//! - [`config`]: the `kind = "hyperliquid"` venue section and the key from the environment;
//! - [`venue`]: [`HyperliquidVenue`], the HTTP [`Venue`](crate::exchanges::Venue) composing
//!   the pieces above (the only part that does I/O);
//! - `mock` (tests and the `testkit` feature): a stateful loopback Hyperliquid.

pub mod actions;
pub mod config;
#[cfg(test)]
mod derivatives_tests;
pub mod info;
#[cfg(any(test, feature = "testkit"))]
pub mod mock;
#[cfg(test)]
mod mock_tests;
pub mod signing;
#[cfg(test)]
mod tests;
pub mod venue;
pub mod wire;
#[cfg(any(test, feature = "testkit"))]
pub mod ws_mock;

pub use config::HyperliquidConfig;
pub use venue::{HyperliquidError, HyperliquidVenue};

pub use actions::{Action, ActionError, ExchangeRequest, OrderWire};
pub use signing::{Address, Network, PrivateKey, Signature, SigningError};
pub use wire::{float_to_wire, AssetRules, Rounding, WireError};
