//! Hyperliquid's number rules: the decimal strings that go on the wire (`float_to_wire`) and
//! the price/size grid of a perpetual asset.
//!
//! Owns: turning a `Decimal` into the exact string Hyperliquid hashes and parses, and rounding
//! or validating a desired price/size against an asset's `szDecimals`. Never does: I/O,
//! signing, or choosing a price (the caller decides; this module only says what is
//! representable).
//!
//! # `float_to_wire` and the Python SDK
//!
//! The official SDK's `float_to_wire(x: float)` formats `x` with 8 decimals, raises
//! `("float_to_wire causes rounding", x)` when that changed the value by 1e-12 or more,
//! strips trailing zeros (`Decimal.normalize()`) and prints without exponent. Here the input
//! is already a `Decimal`, so there is no binary float noise, but the rules are kept:
//! - at most 8 decimals: a value needing more is rejected with [`WireError::Rounding`] unless
//!   the difference is below 1e-12 (the SDK's tolerance), in which case the 8-decimal
//!   rounding (half to even, as Python's `format`) is used;
//! - trailing zeros stripped and no exponent: `30135.0 → "30135"`, `1.231e-05 → "0.00001231"`;
//! - zero is `"0"`, negative zero included. The SDK *intends* `"-0" → "0"` but its check runs
//!   before normalisation, so the recorded SDK output for `-0.0` is `"-0"`. We emit `"0"`:
//!   no wire field can be a negative zero in meaning, and what we sign is what we send, so the
//!   difference cannot break a signature.
//!
//! # Price and size grid (perpetuals)
//!
//! - Size: at most `szDecimals` decimals.
//! - Price: at most 5 significant figures *and* at most `6 − szDecimals` decimals; an integer
//!   price is always valid whatever its number of significant figures.
//!
//! Rounding functions take a [`Rounding`] so a caller can round a buy limit down and a sell
//! limit up (never paying more than asked) or to the nearest valid value for a mid price.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

/// Decimals Hyperliquid allows in a perpetual price, before subtracting `szDecimals`.
pub const PERP_MAX_PRICE_DECIMALS: u32 = 6;
/// Significant figures allowed in a non-integer price.
pub const MAX_PRICE_SIG_FIGS: u32 = 5;
/// Decimals `float_to_wire` keeps.
pub const WIRE_DECIMALS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{value} needs more than 8 decimals and cannot be sent to Hyperliquid without rounding; round it to the asset's grid first")]
    Rounding { value: Decimal },
    #[error("{what} {value} must be positive")]
    NotPositive { what: &'static str, value: Decimal },
    #[error("price {value} has {sig_figs} significant figures; Hyperliquid allows at most 5 for a non-integer price (use round_price)")]
    TooManySigFigs { value: Decimal, sig_figs: u32 },
    #[error("{what} {value} has more than {max_decimals} decimals allowed for this asset (szDecimals {sz_decimals}); round it first")]
    TooManyDecimals {
        what: &'static str,
        value: Decimal,
        max_decimals: u32,
        sz_decimals: u32,
    },
    #[error("size {value} rounds to zero at {sz_decimals} decimals; the order is smaller than the asset's lot")]
    SizeRoundsToZero { value: Decimal, sz_decimals: u32 },
    #[error("szDecimals {sz_decimals} is above 6; a perpetual asset cannot have it (bad meta?)")]
    BadSzDecimals { sz_decimals: u32 },
}

/// Values move onto the grid by the exchanges' one [`Rounding`]; Hyperliquid's nearest
/// value ties to even (as Python's `round`, which the SDK uses).
pub use crate::exchanges::rounding::Rounding;

/// The wire string of a number, as the SDK's `float_to_wire` (see the module docs).
pub fn float_to_wire(value: Decimal) -> Result<String, WireError> {
    let rounded =
        value.round_dp_with_strategy(WIRE_DECIMALS, RoundingStrategy::MidpointNearestEven);
    // The SDK's tolerance: below 1e-12 the difference is float noise, not a real digit.
    if (rounded - value).abs() >= Decimal::new(1, 12) {
        return Err(WireError::Rounding { value });
    }
    // normalize() strips trailing zeros and turns -0 into 0; Display never uses an exponent.
    Ok(rounded.normalize().to_string())
}

/// Decimal exponent of the leading digit: 1670.1 → 3, 0.0147 → -2. `value` must be non-zero.
fn leading_exponent(value: Decimal) -> i64 {
    let digits = value
        .mantissa()
        .unsigned_abs()
        .checked_ilog10()
        .unwrap_or(0) as i64
        + 1;
    digits - 1 - value.scale() as i64
}

/// Significant figures of a non-zero value, trailing zeros not counted.
fn sig_figs(value: Decimal) -> u32 {
    let m = value.normalize().mantissa().unsigned_abs();
    m.checked_ilog10().map_or(1, |d| d + 1)
}

fn max_price_decimals(sz_decimals: u32) -> Result<u32, WireError> {
    PERP_MAX_PRICE_DECIMALS
        .checked_sub(sz_decimals)
        .ok_or(WireError::BadSzDecimals { sz_decimals })
}

/// Whether `price` is on the asset's price grid; the error says why not.
pub fn check_price(price: Decimal, sz_decimals: u32) -> Result<(), WireError> {
    if price <= Decimal::ZERO {
        return Err(WireError::NotPositive {
            what: "price",
            value: price,
        });
    }
    let max_decimals = max_price_decimals(sz_decimals)?;
    let price = price.normalize();
    if price.scale() == 0 {
        return Ok(()); // integer prices are always allowed
    }
    let figs = sig_figs(price);
    if figs > MAX_PRICE_SIG_FIGS {
        return Err(WireError::TooManySigFigs {
            value: price,
            sig_figs: figs,
        });
    }
    if price.scale() > max_decimals {
        return Err(WireError::TooManyDecimals {
            what: "price",
            value: price,
            max_decimals,
            sz_decimals,
        });
    }
    Ok(())
}

/// Whether `size` is a positive multiple of the asset's lot (10^-szDecimals).
pub fn check_size(size: Decimal, sz_decimals: u32) -> Result<(), WireError> {
    if size <= Decimal::ZERO {
        return Err(WireError::NotPositive {
            what: "size",
            value: size,
        });
    }
    let size = size.normalize();
    if size.scale() > sz_decimals {
        return Err(WireError::TooManyDecimals {
            what: "size",
            value: size,
            max_decimals: sz_decimals,
            sz_decimals,
        });
    }
    Ok(())
}

/// Moves a desired price onto the asset's grid: 5 significant figures, at most
/// `6 − szDecimals` decimals, integers always allowed (so prices ≥ 100000 round to whole
/// units rather than losing digits to the significant-figure rule).
pub fn round_price(
    price: Decimal,
    sz_decimals: u32,
    rounding: Rounding,
) -> Result<Decimal, WireError> {
    if price <= Decimal::ZERO {
        return Err(WireError::NotPositive {
            what: "price",
            value: price,
        });
    }
    let max_decimals = max_price_decimals(sz_decimals)? as i64;
    // Decimals that keep 5 significant figures; negative means the integer part alone has
    // more, and an integer is always valid, so clamp at 0.
    let sig_decimals = MAX_PRICE_SIG_FIGS as i64 - 1 - leading_exponent(price);
    let decimals = sig_decimals.min(max_decimals).max(0) as u32;
    let rounded = price
        .round_dp_with_strategy(
            decimals,
            rounding.strategy(RoundingStrategy::MidpointNearestEven),
        )
        .normalize();
    if rounded <= Decimal::ZERO {
        // Only Down can get here: a price below the smallest tick.
        return Err(WireError::NotPositive {
            what: "price (after rounding down to the asset's tick)",
            value: rounded,
        });
    }
    // Rounding up can carry into a new leading digit (9.99996 → 10); the result then has
    // fewer significant figures, so it is still on the grid. Checked anyway: cheap, and it
    // keeps this function honest.
    check_price(rounded, sz_decimals)?;
    Ok(rounded)
}

/// Rounds a desired size down to the lot (never sends more than asked); a size that rounds
/// to zero is rejected rather than silently dropped.
pub fn round_size(size: Decimal, sz_decimals: u32) -> Result<Decimal, WireError> {
    if size <= Decimal::ZERO {
        return Err(WireError::NotPositive {
            what: "size",
            value: size,
        });
    }
    let rounded = size
        .round_dp_with_strategy(sz_decimals, RoundingStrategy::ToZero)
        .normalize();
    if rounded.is_zero() {
        return Err(WireError::SizeRoundsToZero {
            value: size,
            sz_decimals,
        });
    }
    Ok(rounded)
}

/// The trading rules of one perpetual asset, from `meta` (its index is its position in
/// `universe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRules {
    pub name: String,
    pub index: u32,
    pub sz_decimals: u32,
    pub max_leverage: u32,
}

impl AssetRules {
    pub fn round_price(&self, price: Decimal, rounding: Rounding) -> Result<Decimal, WireError> {
        round_price(price, self.sz_decimals, rounding)
    }
    pub fn round_size(&self, size: Decimal) -> Result<Decimal, WireError> {
        round_size(size, self.sz_decimals)
    }
    pub fn check_price(&self, price: Decimal) -> Result<(), WireError> {
        check_price(price, self.sz_decimals)
    }
    pub fn check_size(&self, size: Decimal) -> Result<(), WireError> {
        check_size(size, self.sz_decimals)
    }
    /// The venue-neutral view. Hyperliquid's price tick depends on the price's magnitude,
    /// so `tick_size` here is the finest tick the decimals rule allows (10^-(6−szDecimals));
    /// exact rounding must go through [`AssetRules::round_price`]. Hyperliquid's minimum
    /// order value is $10.
    pub fn to_instrument(&self) -> crate::exchanges::Instrument {
        let price_decimals = PERP_MAX_PRICE_DECIMALS.saturating_sub(self.sz_decimals);
        crate::exchanges::Instrument {
            symbol: self.name.clone(),
            tick_size: Decimal::new(1, price_decimals),
            lot_size: Decimal::new(1, self.sz_decimals),
            min_notional: Decimal::TEN,
            max_leverage: self.max_leverage,
        }
    }
}

impl fmt::Display for AssetRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (asset {}, szDecimals {})",
            self.name, self.index, self.sz_decimals
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// Every `float_to_wire` case recorded from the Python SDK.
    #[test]
    fn float_to_wire_matches_sdk_cases() {
        let cases = [
            (dec!(100), "100"),
            (dec!(1670.1), "1670.1"),
            (dec!(0.0147), "0.0147"),
            (dec!(103), "103"),
            (dec!(0.1), "0.1"),
            (dec!(0.00000001), "0.00000001"), // 1e-08
            (dec!(123456.789), "123456.789"),
            (dec!(30135.0), "30135"),
            (dec!(0.00001231), "0.00001231"), // 1.231e-05
        ];
        for (input, want) in cases {
            assert_eq!(
                float_to_wire(input).unwrap(),
                want,
                "float_to_wire({input})"
            );
        }
    }

    /// SDK: `float_to_wire(-0.0)` records "-0"; we deliberately emit "0" (module docs).
    #[test]
    fn negative_zero_is_sent_as_zero() {
        let neg_zero = -dec!(0.0);
        assert!(neg_zero.is_sign_negative());
        assert_eq!(float_to_wire(neg_zero).unwrap(), "0");
    }

    /// SDK: `float_to_wire(1e-9)` raises ('float_to_wire causes rounding', 1e-09).
    #[test]
    fn float_to_wire_rejects_a_ninth_decimal() {
        assert_eq!(
            float_to_wire(dec!(0.000000001)),
            Err(WireError::Rounding {
                value: dec!(0.000000001)
            })
        );
        // Below the SDK's 1e-12 tolerance the 8-decimal rounding is used.
        assert_eq!(float_to_wire(dec!(1.0000000000001)).unwrap(), "1");
    }

    #[test]
    fn price_grid_follows_sig_figs_and_decimals() {
        // szDecimals 1 → at most 5 decimals; szDecimals 5 (BTC) → at most 1.
        check_price(dec!(1670.1), 4).unwrap();
        check_price(dec!(2.1105), 1).unwrap();
        check_price(dec!(123456), 5).unwrap(); // integer: always allowed
        assert!(matches!(
            check_price(dec!(1670.12), 4),
            Err(WireError::TooManySigFigs { sig_figs: 6, .. })
        ));
        assert!(matches!(
            check_price(dec!(0.0001234), 2),
            Err(WireError::TooManyDecimals {
                max_decimals: 4,
                ..
            })
        ));
        check_price(dec!(0.001565), 0).unwrap(); // kPEPE from allMids
        assert!(matches!(
            check_price(dec!(0), 0),
            Err(WireError::NotPositive { .. })
        ));
    }

    #[test]
    fn round_price_moves_onto_the_grid_in_the_asked_direction() {
        assert_eq!(
            round_price(dec!(1670.123), 4, Rounding::Nearest).unwrap(),
            dec!(1670.1)
        );
        assert_eq!(
            round_price(dec!(1670.123), 4, Rounding::Up).unwrap(),
            dec!(1670.2)
        );
        assert_eq!(
            round_price(dec!(30135.7), 5, Rounding::Down).unwrap(),
            dec!(30135)
        );
        // Above 5 integer digits round to a whole price, not to 5 significant figures.
        assert_eq!(
            round_price(dec!(123456.7), 5, Rounding::Nearest).unwrap(),
            dec!(123457)
        );
        // Decimals rule binds before sig figs: szDecimals 2 → 4 decimals.
        assert_eq!(
            round_price(dec!(0.0123456), 2, Rounding::Down).unwrap(),
            dec!(0.0123)
        );
        // Carry into a new digit stays valid.
        assert_eq!(
            round_price(dec!(9.99996), 1, Rounding::Up).unwrap(),
            dec!(10)
        );
        // Below the finest tick, rounding down has nothing left.
        assert!(round_price(dec!(0.0000001), 0, Rounding::Down).is_err());
        assert!(matches!(
            round_price(dec!(1), 7, Rounding::Nearest),
            Err(WireError::BadSzDecimals { sz_decimals: 7 })
        ));
    }

    #[test]
    fn round_size_truncates_and_rejects_zero() {
        assert_eq!(round_size(dec!(0.014799), 4).unwrap(), dec!(0.0147));
        assert_eq!(round_size(dec!(12.99), 0).unwrap(), dec!(12));
        assert!(matches!(
            round_size(dec!(0.00009), 4),
            Err(WireError::SizeRoundsToZero { .. })
        ));
        check_size(dec!(0.0147), 4).unwrap();
        assert!(check_size(dec!(0.01475), 4).is_err());
        assert!(check_size(dec!(-1), 4).is_err());
    }

    proptest::proptest! {
        /// Whatever comes out of round_price is accepted by check_price and float_to_wire,
        /// and Down/Up bracket the input.
        #[test]
        fn rounded_prices_are_valid(mantissa in 1i64..10_000_000_000, scale in 0u32..12, szd in 0u32..=6) {
            let price = Decimal::new(mantissa, scale);
            for r in [Rounding::Nearest, Rounding::Down, Rounding::Up] {
                if let Ok(p) = round_price(price, szd, r) {
                    check_price(p, szd).unwrap();
                    float_to_wire(p).unwrap();
                    match r {
                        Rounding::Down => proptest::prop_assert!(p <= price),
                        Rounding::Up => proptest::prop_assert!(p >= price),
                        Rounding::Nearest => {}
                    }
                }
            }
        }
    }
}
