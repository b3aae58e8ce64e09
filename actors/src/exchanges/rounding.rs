//! [`Rounding`]: the one direction type for moving a price or size onto a venue's grid
//! (tick, lot, significant figures). Owns: the direction. Never: the grid itself or how a
//! venue breaks a tie under `Nearest` (each venue module passes its rule: Binance rounds
//! halves away from zero, Hyperliquid's SDK ties to even like Python's `round`).

use rust_decimal::RoundingStrategy;

/// Direction in which a value is moved onto the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Nearest valid value; a value exactly between two is decided by the venue's rule.
    Nearest,
    /// Largest valid value not above the input.
    Down,
    /// Smallest valid value not below the input.
    Up,
}

impl Rounding {
    /// The decimal rounding of this direction, `ties` deciding a midpoint under
    /// `Nearest`.
    pub fn strategy(self, ties: RoundingStrategy) -> RoundingStrategy {
        match self {
            Rounding::Nearest => ties,
            Rounding::Down => RoundingStrategy::ToNegativeInfinity,
            Rounding::Up => RoundingStrategy::ToPositiveInfinity,
        }
    }
}
