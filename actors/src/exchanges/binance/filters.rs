//! Binance spot symbol filters from `GET /api/v3/exchangeInfo`, and price/quantity rounding
//! against them.
//!
//! Owns: reading `PRICE_FILTER` (minPrice, maxPrice, tickSize), `LOT_SIZE` (minQty, maxQty,
//! stepSize), `MARKET_LOT_SIZE`, `MIN_NOTIONAL` and `NOTIONAL` (minNotional, maxNotional);
//! moving a desired price/quantity onto that grid; refusing what cannot be represented
//! (below the minimum, above the maximum, under the minimum notional). Never does: I/O, or
//! choosing a price; other filter types are accepted and ignored.
//!
//! Binance's grid is anchored at the minimum: a price is valid when
//! `(price − minPrice) % tickSize == 0`, a quantity when `(qty − minQty) % stepSize == 0`.
//! A zero `tickSize`/`stepSize`/`maxPrice` means that part of the filter is disabled.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

use crate::exchanges::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("cannot read Binance exchangeInfo: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{symbol} is not in Binance exchangeInfo")]
    UnknownSymbol { symbol: String },
    #[error("{symbol}: {what} {value} is below the minimum {min}")]
    BelowMin {
        symbol: String,
        what: &'static str,
        value: Decimal,
        min: Decimal,
    },
    #[error("{symbol}: {what} {value} is above the maximum {max}")]
    AboveMax {
        symbol: String,
        what: &'static str,
        value: Decimal,
        max: Decimal,
    },
    #[error("{symbol}: {what} {value} is not on the {step} grid; round it first")]
    OffGrid {
        symbol: String,
        what: &'static str,
        value: Decimal,
        step: Decimal,
    },
    #[error("{symbol}: order value {notional} is below the minimum notional {min}")]
    BelowMinNotional {
        symbol: String,
        notional: Decimal,
        min: Decimal,
    },
    #[error("{symbol}: order value {notional} is above the maximum notional {max}")]
    AboveMaxNotional {
        symbol: String,
        notional: Decimal,
        max: Decimal,
    },
    #[error("{symbol}: {what} must be positive, got {value}")]
    NotPositive {
        symbol: String,
        what: &'static str,
        value: Decimal,
    },
}

/// Prices move onto the tick grid by the exchanges' one [`Rounding`]; Binance's nearest
/// tick takes halves away from zero.
pub use crate::exchanges::rounding::Rounding;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "filterType", rename_all = "SCREAMING_SNAKE_CASE")]
enum FilterWire {
    #[serde(rename_all = "camelCase")]
    PriceFilter {
        min_price: Decimal,
        max_price: Decimal,
        tick_size: Decimal,
    },
    #[serde(rename_all = "camelCase")]
    LotSize {
        min_qty: Decimal,
        max_qty: Decimal,
        step_size: Decimal,
    },
    #[serde(rename_all = "camelCase")]
    MarketLotSize {
        min_qty: Decimal,
        max_qty: Decimal,
        step_size: Decimal,
    },
    /// Spot's older filter (`minNotional`); USD-M futures' only one, whose field is
    /// `notional`.
    #[serde(rename_all = "camelCase")]
    MinNotional {
        #[serde(alias = "notional")]
        min_notional: Decimal,
    },
    /// USD-M futures: a limit price must lie within multipliers of the mark price.
    #[serde(rename_all = "camelCase")]
    PercentPrice {
        multiplier_up: Decimal,
        multiplier_down: Decimal,
    },
    #[serde(rename_all = "camelCase")]
    Notional {
        min_notional: Decimal,
        max_notional: Option<Decimal>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymbolWire {
    symbol: String,
    status: String,
    base_asset: String,
    quote_asset: String,
    filters: Vec<FilterWire>,
}

#[derive(Debug, Deserialize)]
struct ExchangeInfoWire {
    symbols: Vec<SymbolWire>,
}

/// `PRICE_FILTER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceFilter {
    pub min_price: Decimal,
    /// Zero: no maximum.
    pub max_price: Decimal,
    /// Zero: any precision.
    pub tick_size: Decimal,
}

/// `LOT_SIZE` / `MARKET_LOT_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotSize {
    pub min_qty: Decimal,
    pub max_qty: Decimal,
    pub step_size: Decimal,
}

/// The trading rules of one spot symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolRules {
    pub symbol: String,
    /// `TRADING`, `BREAK`, `HALT`, ...
    pub status: String,
    pub base_asset: String,
    pub quote_asset: String,
    pub price: Option<PriceFilter>,
    pub lot: Option<LotSize>,
    pub market_lot: Option<LotSize>,
    /// From `NOTIONAL`, or the older `MIN_NOTIONAL`.
    pub min_notional: Option<Decimal>,
    pub max_notional: Option<Decimal>,
    /// USD-M futures' `PERCENT_PRICE` (`multiplierUp`, `multiplierDown`) against the
    /// mark price.
    pub percent_price: Option<PercentPrice>,
}

/// `PERCENT_PRICE` of a USD-M futures symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentPrice {
    pub multiplier_up: Decimal,
    pub multiplier_down: Decimal,
}

/// All symbols of an `exchangeInfo` response.
pub fn parse_exchange_info(body: &[u8]) -> Result<Vec<SymbolRules>, FilterError> {
    let wire: ExchangeInfoWire = serde_json::from_slice(body)?;
    Ok(wire
        .symbols
        .into_iter()
        .map(|s| {
            let mut rules = SymbolRules {
                symbol: s.symbol,
                status: s.status,
                base_asset: s.base_asset,
                quote_asset: s.quote_asset,
                price: None,
                lot: None,
                market_lot: None,
                min_notional: None,
                max_notional: None,
                percent_price: None,
            };
            for f in s.filters {
                match f {
                    FilterWire::PriceFilter {
                        min_price,
                        max_price,
                        tick_size,
                    } => {
                        rules.price = Some(PriceFilter {
                            min_price,
                            max_price,
                            tick_size,
                        })
                    }
                    FilterWire::LotSize {
                        min_qty,
                        max_qty,
                        step_size,
                    } => {
                        rules.lot = Some(LotSize {
                            min_qty,
                            max_qty,
                            step_size,
                        })
                    }
                    FilterWire::MarketLotSize {
                        min_qty,
                        max_qty,
                        step_size,
                    } => {
                        rules.market_lot = Some(LotSize {
                            min_qty,
                            max_qty,
                            step_size,
                        })
                    }
                    // NOTIONAL supersedes MIN_NOTIONAL when both are present.
                    FilterWire::MinNotional { min_notional } => {
                        rules.min_notional.get_or_insert(min_notional);
                    }
                    FilterWire::Notional {
                        min_notional,
                        max_notional,
                    } => {
                        rules.min_notional = Some(min_notional);
                        rules.max_notional = max_notional.filter(|m| !m.is_zero());
                    }
                    FilterWire::PercentPrice {
                        multiplier_up,
                        multiplier_down,
                    } => {
                        rules.percent_price = Some(PercentPrice {
                            multiplier_up,
                            multiplier_down,
                        })
                    }
                    FilterWire::Other => {}
                }
            }
            rules
        })
        .collect())
}

/// The rules of one symbol from an `exchangeInfo` response.
pub fn symbol_rules(body: &[u8], symbol: &str) -> Result<SymbolRules, FilterError> {
    parse_exchange_info(body)?
        .into_iter()
        .find(|s| s.symbol == symbol)
        .ok_or_else(|| FilterError::UnknownSymbol {
            symbol: symbol.to_string(),
        })
}

/// `anchor + k·step` for the integer `k` chosen by `strategy`.
fn snap(value: Decimal, anchor: Decimal, step: Decimal, strategy: RoundingStrategy) -> Decimal {
    let k = ((value - anchor) / step).round_dp_with_strategy(0, strategy);
    (anchor + k * step).normalize()
}

fn on_grid(value: Decimal, anchor: Decimal, step: Decimal) -> bool {
    step.is_zero() || ((value - anchor) % step).is_zero()
}

impl SymbolRules {
    fn err_not_positive(&self, what: &'static str, value: Decimal) -> FilterError {
        FilterError::NotPositive {
            symbol: self.symbol.clone(),
            what,
            value,
        }
    }

    /// Moves `price` onto the tick grid and checks it against min/max.
    pub fn round_price(&self, price: Decimal, rounding: Rounding) -> Result<Decimal, FilterError> {
        if price <= Decimal::ZERO {
            return Err(self.err_not_positive("price", price));
        }
        let Some(f) = self.price else {
            return Ok(price.normalize());
        };
        // Below the minimum there is no valid price in the asked direction worth sending;
        // checked before snapping, which would otherwise cross the anchor.
        if price < f.min_price {
            return Err(FilterError::BelowMin {
                symbol: self.symbol.clone(),
                what: "price",
                value: price,
                min: f.min_price,
            });
        }
        let rounded = if f.tick_size.is_zero() {
            price.normalize()
        } else {
            snap(
                price,
                f.min_price,
                f.tick_size,
                rounding.strategy(RoundingStrategy::MidpointAwayFromZero),
            )
        };
        self.check_price(rounded)?;
        Ok(rounded)
    }

    /// Whether `price` passes `PRICE_FILTER` exactly.
    pub fn check_price(&self, price: Decimal) -> Result<(), FilterError> {
        if price <= Decimal::ZERO {
            return Err(self.err_not_positive("price", price));
        }
        let Some(f) = self.price else { return Ok(()) };
        // The price is positive here, so a zero minPrice (none) never refuses it.
        self.check_band("price", price, f.min_price, f.max_price, f.tick_size)
    }

    fn lot_for(&self, market: bool) -> Option<LotSize> {
        if market {
            // MARKET_LOT_SIZE may come with a zero step ("use LOT_SIZE's").
            self.market_lot
                .filter(|l| !l.step_size.is_zero())
                .or(self.lot)
        } else {
            self.lot
        }
    }

    /// Rounds a quantity *down* onto the lot grid (never sends more than asked) and checks
    /// it against min/max. `market` selects `MARKET_LOT_SIZE` when the symbol has one.
    pub fn round_qty(&self, qty: Decimal, market: bool) -> Result<Decimal, FilterError> {
        if qty <= Decimal::ZERO {
            return Err(self.err_not_positive("quantity", qty));
        }
        let Some(l) = self.lot_for(market) else {
            return Ok(qty.normalize());
        };
        if qty < l.min_qty {
            return Err(FilterError::BelowMin {
                symbol: self.symbol.clone(),
                what: "quantity",
                value: qty,
                min: l.min_qty,
            });
        }
        let rounded = if l.step_size.is_zero() {
            qty.normalize()
        } else {
            snap(
                qty,
                l.min_qty,
                l.step_size,
                RoundingStrategy::ToNegativeInfinity,
            )
        };
        self.check_qty(rounded, market)?;
        Ok(rounded)
    }

    /// Whether `qty` passes the lot filter exactly.
    pub fn check_qty(&self, qty: Decimal, market: bool) -> Result<(), FilterError> {
        if qty <= Decimal::ZERO {
            return Err(self.err_not_positive("quantity", qty));
        }
        let Some(l) = self.lot_for(market) else {
            return Ok(());
        };
        self.check_band("quantity", qty, l.min_qty, l.max_qty, l.step_size)
    }

    /// `value` at least `min`, at most `max` (zero: no maximum) and on the grid
    /// `min + k × step`, as `PRICE_FILTER` and `LOT_SIZE` judge it.
    fn check_band(
        &self,
        what: &'static str,
        value: Decimal,
        min: Decimal,
        max: Decimal,
        step: Decimal,
    ) -> Result<(), FilterError> {
        let symbol = self.symbol.clone();
        if value < min {
            return Err(FilterError::BelowMin {
                symbol,
                what,
                value,
                min,
            });
        }
        if !max.is_zero() && value > max {
            return Err(FilterError::AboveMax {
                symbol,
                what,
                value,
                max,
            });
        }
        if !on_grid(value, min, step) {
            return Err(FilterError::OffGrid {
                symbol,
                what,
                value,
                step,
            });
        }
        Ok(())
    }

    /// Whether `price × qty` is within the notional limits.
    pub fn check_notional(&self, price: Decimal, qty: Decimal) -> Result<(), FilterError> {
        let notional = price * qty;
        if let Some(min) = self.min_notional {
            if notional < min {
                return Err(FilterError::BelowMinNotional {
                    symbol: self.symbol.clone(),
                    notional,
                    min,
                });
            }
        }
        if let Some(max) = self.max_notional {
            if notional > max {
                return Err(FilterError::AboveMaxNotional {
                    symbol: self.symbol.clone(),
                    notional,
                    max,
                });
            }
        }
        Ok(())
    }

    /// USD-M futures' `PERCENT_PRICE`: a BUY's price at most `mark × multiplierUp`, a
    /// SELL's at least `mark × multiplierDown` (a symbol without the filter passes).
    pub fn check_percent_price(
        &self,
        price: Decimal,
        buy: bool,
        mark: Decimal,
    ) -> Result<(), FilterError> {
        let Some(p) = self.percent_price else {
            return Ok(());
        };
        if buy && price > mark * p.multiplier_up {
            return Err(FilterError::AboveMax {
                symbol: self.symbol.clone(),
                what: "buy price (PERCENT_PRICE of the mark)",
                value: price,
                max: (mark * p.multiplier_up).normalize(),
            });
        }
        if !buy && price < mark * p.multiplier_down {
            return Err(FilterError::BelowMin {
                symbol: self.symbol.clone(),
                what: "sell price (PERCENT_PRICE of the mark)",
                value: price,
                min: (mark * p.multiplier_down).normalize(),
            });
        }
        Ok(())
    }

    /// Full check of a limit order as it will be sent.
    pub fn check_limit_order(&self, price: Decimal, qty: Decimal) -> Result<(), FilterError> {
        self.check_price(price)?;
        self.check_qty(qty, false)?;
        self.check_notional(price, qty)
    }

    /// The venue-neutral view (spot: leverage 1).
    pub fn to_instrument(&self) -> Instrument {
        Instrument {
            symbol: self.symbol.clone(),
            tick_size: self
                .price
                .map(|p| p.tick_size.normalize())
                .unwrap_or_default(),
            lot_size: self
                .lot
                .map(|l| l.step_size.normalize())
                .unwrap_or_default(),
            min_notional: self.min_notional.unwrap_or_default(),
            max_leverage: 1,
        }
    }
}

/// A decimal as Binance reads it: plain notation, trailing zeros stripped.
pub fn to_wire(value: Decimal) -> String {
    value.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// exchangeInfo in the shape Binance documents (filters trimmed to the ones we read,
    /// plus one we ignore).
    const EXCHANGE_INFO: &str = r#"{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[],"exchangeFilters":[],"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","baseAssetPrecision":8,"quoteAsset":"BTC","quotePrecision":8,"orderTypes":["LIMIT","MARKET"],"filters":[{"filterType":"PRICE_FILTER","minPrice":"0.00000100","maxPrice":"922327.00000000","tickSize":"0.00000100"},{"filterType":"LOT_SIZE","minQty":"0.00010000","maxQty":"100000.00000000","stepSize":"0.00010000"},{"filterType":"ICEBERG_PARTS","limit":10},{"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"2290.97","stepSize":"0.00000000"},{"filterType":"NOTIONAL","minNotional":"0.00010000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}]},{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},{"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},{"filterType":"MIN_NOTIONAL","minNotional":"5.00000000","applyToMarket":true,"avgPriceMins":5}]}]}"#;

    fn btcusdt() -> SymbolRules {
        symbol_rules(EXCHANGE_INFO.as_bytes(), "BTCUSDT").unwrap()
    }

    #[test]
    fn filters_parse() {
        let all = parse_exchange_info(EXCHANGE_INFO.as_bytes()).unwrap();
        assert_eq!(all.len(), 2);
        let eth = &all[0];
        assert_eq!(eth.price.unwrap().tick_size, dec!(0.000001));
        assert_eq!(eth.lot.unwrap().step_size, dec!(0.0001));
        assert_eq!(eth.min_notional, Some(dec!(0.0001)));
        assert_eq!(eth.max_notional, Some(dec!(9000000)));
        let btc = btcusdt();
        assert_eq!(btc.min_notional, Some(dec!(5)));
        assert_eq!(btc.max_notional, None);
        let inst = btc.to_instrument();
        assert_eq!(
            (inst.tick_size, inst.lot_size, inst.min_notional),
            (dec!(0.01), dec!(0.00001), dec!(5))
        );
        assert!(matches!(
            symbol_rules(EXCHANGE_INFO.as_bytes(), "NOPE"),
            Err(FilterError::UnknownSymbol { .. })
        ));
        assert!(matches!(
            parse_exchange_info(b"{\"symbols\":[{}]}"),
            Err(FilterError::Json(_))
        ));
    }

    #[test]
    fn price_rounds_to_tick_in_the_asked_direction() {
        let r = btcusdt();
        assert_eq!(
            r.round_price(dec!(30135.456), Rounding::Down).unwrap(),
            dec!(30135.45)
        );
        assert_eq!(
            r.round_price(dec!(30135.451), Rounding::Up).unwrap(),
            dec!(30135.46)
        );
        assert_eq!(
            r.round_price(dec!(30135.455), Rounding::Nearest).unwrap(),
            dec!(30135.46)
        );
        assert!(matches!(
            r.round_price(dec!(0.001), Rounding::Down),
            Err(FilterError::BelowMin { .. })
        ));
        assert!(matches!(
            r.round_price(dec!(2000000), Rounding::Down),
            Err(FilterError::AboveMax { .. })
        ));
        assert!(matches!(
            r.check_price(dec!(1.001)),
            Err(FilterError::OffGrid { .. })
        ));
    }

    #[test]
    fn quantity_rounds_down_to_step_and_respects_limits() {
        let r = btcusdt();
        assert_eq!(
            r.round_qty(dec!(0.123456789), false).unwrap(),
            dec!(0.12345)
        );
        assert!(matches!(
            r.round_qty(dec!(0.000009), false),
            Err(FilterError::BelowMin { value, .. }) if value == dec!(0.000009)
        ));
        assert!(matches!(
            r.round_qty(dec!(9001), false),
            Err(FilterError::AboveMax { .. })
        ));
        assert!(matches!(
            r.check_qty(dec!(0.000015), false),
            Err(FilterError::OffGrid { .. })
        ));
        // ETHBTC's MARKET_LOT_SIZE has a zero step: LOT_SIZE's grid applies.
        let eth = symbol_rules(EXCHANGE_INFO.as_bytes(), "ETHBTC").unwrap();
        assert_eq!(eth.round_qty(dec!(1.23456), true).unwrap(), dec!(1.2345));
    }

    proptest::proptest! {
        /// Whatever the rounding functions return passes the exact checks, and never moves
        /// past the input in the asked direction.
        #[test]
        fn rounded_values_pass_the_filters(m in 1i64..100_000_000_000, scale in 0u32..10) {
            let r = btcusdt();
            let v = Decimal::new(m, scale);
            if let Ok(p) = r.round_price(v, Rounding::Down) {
                r.check_price(p).unwrap();
                proptest::prop_assert!(p <= v);
            }
            if let Ok(p) = r.round_price(v, Rounding::Up) {
                r.check_price(p).unwrap();
                proptest::prop_assert!(p >= v);
            }
            if let Ok(q) = r.round_qty(v, false) {
                r.check_qty(q, false).unwrap();
                proptest::prop_assert!(q <= v);
            }
        }
    }

    #[test]
    fn notional_limits() {
        let r = btcusdt();
        r.check_limit_order(dec!(30000), dec!(0.001)).unwrap(); // 30 USDT
        assert!(matches!(
            r.check_limit_order(dec!(30000), dec!(0.0001)), // 3 USDT
            Err(FilterError::BelowMinNotional { .. })
        ));
        assert_eq!(to_wire(dec!(0.10000000)), "0.1");
    }
}
