//! Hyperliquid perpetuals: the exactness-critical pieces of the connector.
//!
//! - [`wire`]: decimal wire strings (`float_to_wire`) and each asset's price/size grid;
//! - [`actions`]: /exchange actions in their hashed field order, built from our
//!   [`OrderRequest`](crate::exchanges::OrderRequest);
//! - [`signing`]: msgpack → keccak → EIP-712 → secp256k1 signing, the wallet key, address
//!   derivation and signer recovery;
//! - [`info`]: readers for /info responses and /exchange statuses into venue-neutral types.
//!
//! This module never does I/O; the HTTP connector composes these pieces.

pub mod actions;
pub mod info;
pub mod signing;
pub mod wire;

pub use actions::{Action, ActionError, ExchangeRequest, OrderWire};
pub use signing::{Address, Network, PrivateKey, Signature, SigningError};
pub use wire::{float_to_wire, AssetRules, Rounding, WireError};
