//! Binance USDⓈ-M futures streams: the combined market connection ([`market`]) and the
//! account's user-data connection ([`user`]), over the typed frames of [`frames`].
//!
//! Owns: what each futures event means to the engine — quotes, last trades, mark prices
//! and funding, the venue's liquidations, and the account's order updates, fills, balances
//! and positions. Never: the truth about money (pushed fills go to the gateway, which
//! applies them with the ledger's rules; REST reconciliation stays the safety net), I/O
//! outside the connection loop's hooks, or a panic on a frame.

pub mod frames;
pub mod market;
#[cfg(test)]
mod tests;
pub mod user;

pub use frames::{parse_combined, parse_event, FuturesEvent};
pub use market::{ContractNames, FuturesMarketProtocol};
pub use user::FuturesUserProtocol;
