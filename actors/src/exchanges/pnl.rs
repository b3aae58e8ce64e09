//! Position accounting from fills: size, average entry price, realized PnL, fees paid and
//! unrealized PnL of each position, by the **average-cost method**.
//!
//! Owns: the pure arithmetic ([`PositionBook::apply`]) and the per-position report built
//! from the `fills` tree ([`position_pnl`]), plus the per-position metrics it exports
//! ([`record_metrics`], [`init_metrics`]). Never: talks to a venue, writes to sled, or
//! decides whether to trade.
//!
//! # Method
//!
//! A fill that opens or adds to a position moves the average entry price to the
//! size-weighted mean of the old entry and the fill's price. A fill against the position
//! realizes `closed size × (fill price − average entry)` (sign flipped for a short) and
//! leaves the average entry of what remains unchanged; a fill that crosses zero closes the
//! whole position and opens the rest at the fill's price. Fees are kept apart from
//! realized PnL (both are reported), so for any sequence of fills and any mark price:
//!
//! `realized + unrealized(mark) − fees = size × mark − Σ signed fill notional − fees`,
//!
//! i.e. the mark-to-market change of the account caused by these fills (the property tests
//! check it). A fee the venue charged in an asset that could not be priced in USD at the
//! fill's time is kept in its asset ([`PositionPnl::unconverted_fees`]), never counted as 0.
//!
//! Positions are tracked from the fills the engine recorded; a position opened before the
//! venue's fill history reaches (or moved by a transfer) shows the venue's size next to
//! this accounting in `orrery status`, so a difference is visible.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::types::{Fill, Position, Side};

/// One position's running accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionBook {
    /// Signed size: positive long, negative short.
    pub size: Decimal,
    /// Average entry price of the open size (0 when flat).
    pub avg_entry_price: Decimal,
    /// PnL realized by reducing fills, before fees.
    pub realized_pnl: Decimal,
    /// Fees paid in USD (negative for rebates).
    pub fees_usd: Decimal,
    /// Fees that could not be converted to USD, by asset.
    pub unconverted_fees: BTreeMap<String, Decimal>,
}

impl PositionBook {
    /// Applies one fill; returns the PnL it realized (before its fee).
    pub fn apply(&mut self, side: Side, size: Decimal, price: Decimal) -> Decimal {
        let qty = match side {
            Side::Buy => size,
            Side::Sell => -size,
        };
        if qty.is_zero() {
            return Decimal::ZERO;
        }
        let same_direction =
            self.size.is_zero() || (self.size > Decimal::ZERO) == (qty > Decimal::ZERO);
        if same_direction {
            let total = self.size.abs() + qty.abs();
            self.avg_entry_price =
                (self.size.abs() * self.avg_entry_price + qty.abs() * price) / total;
            self.size += qty;
            return Decimal::ZERO;
        }
        let closing = qty.abs().min(self.size.abs());
        let direction = if self.size > Decimal::ZERO {
            Decimal::ONE
        } else {
            -Decimal::ONE
        };
        let realized = closing * (price - self.avg_entry_price) * direction;
        self.realized_pnl += realized;
        self.size += qty;
        if self.size.is_zero() {
            self.avg_entry_price = Decimal::ZERO;
        } else if (self.size > Decimal::ZERO) != (direction > Decimal::ZERO) {
            // Crossed zero: the remainder is a new position opened at this price.
            self.avg_entry_price = price;
        }
        realized
    }

    /// Applies a recorded fill, fee included.
    pub fn apply_fill(&mut self, fill: &Fill) -> Decimal {
        let realized = self.apply(fill.side, fill.size, fill.price);
        match &fill.fee_asset {
            Some(f) if f.usd_price.is_none() => {
                *self.unconverted_fees.entry(f.asset.clone()).or_default() += f.amount;
            }
            _ => self.fees_usd += fill.fee,
        }
        realized
    }

    /// Unrealized PnL at `mark`.
    pub fn unrealized(&self, mark: Decimal) -> Decimal {
        self.size * (mark - self.avg_entry_price)
    }

    /// Absolute USD value of the open size at `mark`.
    pub fn exposure(&self, mark: Decimal) -> Decimal {
        (self.size * mark).abs()
    }
}

/// One position's accounting as `orrery status` and the metrics report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionPnl {
    pub symbol: String,
    /// Signed size from the fills (positive long).
    pub size: Decimal,
    pub avg_entry_price: Decimal,
    /// The venue's mark price, when it reported one.
    pub mark_price: Option<Decimal>,
    pub unrealized_pnl_usd: Decimal,
    pub exposure_usd: Decimal,
    pub realized_pnl_usd: Decimal,
    pub fees_usd: Decimal,
    /// Fees kept in their own asset because no USD price was available, by asset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unconverted_fees: BTreeMap<String, Decimal>,
}

/// Per-symbol accounting of `fills` (any order; they are applied oldest first), valued at
/// the venue's marks in `positions`. Every symbol in `symbols` gets a row, traded or not.
pub fn position_pnl(
    fills: &[Fill],
    positions: &[Position],
    symbols: &[String],
) -> Vec<PositionPnl> {
    let mut ordered: Vec<&Fill> = fills.iter().collect();
    ordered.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.fill_id.cmp(&b.fill_id)));
    let mut books: BTreeMap<String, PositionBook> = symbols
        .iter()
        .map(|s| (s.clone(), PositionBook::default()))
        .collect();
    for fill in ordered {
        books
            .entry(fill.symbol.clone())
            .or_default()
            .apply_fill(fill);
    }
    books
        .into_iter()
        .map(|(symbol, book)| {
            let mark = positions
                .iter()
                .find(|p| p.symbol == symbol && !p.mark_price.is_zero())
                .map(|p| p.mark_price);
            let at = mark.unwrap_or(book.avg_entry_price);
            PositionPnl {
                unrealized_pnl_usd: book.unrealized(at),
                exposure_usd: book.exposure(at),
                symbol,
                size: book.size.normalize(),
                avg_entry_price: book.avg_entry_price.round_dp(8).normalize(),
                mark_price: mark,
                realized_pnl_usd: book.realized_pnl.round_dp(8).normalize(),
                fees_usd: book.fees_usd.normalize(),
                unconverted_fees: book.unconverted_fees,
            }
        })
        .collect()
}

/// The recorded fills plus any the venue reports that are not recorded yet (fills reach
/// the ledger at reconciliation; a report made between two passes should not miss them),
/// one per fill id, oldest first.
pub fn merge_fills(recorded: Vec<Fill>, from_venue: Vec<Fill>) -> Vec<Fill> {
    let mut seen: std::collections::HashSet<String> =
        recorded.iter().map(|f| f.fill_id.clone()).collect();
    let mut all = recorded;
    for f in from_venue {
        if seen.insert(f.fill_id.clone()) {
            all.push(f);
        }
    }
    all.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.fill_id.cmp(&b.fill_id)));
    all
}

/// One fill with what it did to its position, for trade history (`orrery trades`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillPnl {
    pub fill: Fill,
    /// PnL this fill realized by reducing its position (average cost), before its fee.
    pub realized_pnl_usd: Decimal,
    /// Its fee in USD, or `None` when it was kept in another asset (see `fill.fee_asset`).
    pub fee_usd: Option<Decimal>,
}

/// Every fill (any order; reported oldest first) with the PnL it realized.
pub fn fill_history(fills: &[Fill]) -> Vec<FillPnl> {
    let mut ordered: Vec<&Fill> = fills.iter().collect();
    ordered.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.fill_id.cmp(&b.fill_id)));
    let mut books: BTreeMap<&str, PositionBook> = BTreeMap::new();
    ordered
        .into_iter()
        .map(|f| {
            let realized = books.entry(f.symbol.as_str()).or_default().apply_fill(f);
            FillPnl {
                fill: f.clone(),
                realized_pnl_usd: realized.round_dp(8).normalize(),
                fee_usd: match &f.fee_asset {
                    Some(a) if a.usd_price.is_none() => None,
                    _ => Some(f.fee),
                },
            }
        })
        .collect()
}

/// Metric names of this module.
pub mod names {
    pub const POSITION_SIZE: &str = "orrery_position_size";
    pub const POSITION_UNREALIZED_PNL_USD: &str = "orrery_position_unrealized_pnl_usd";
    pub const POSITION_EXPOSURE_USD: &str = "orrery_position_exposure_usd";
    pub const POSITION_REALIZED_PNL_USD: &str = "orrery_position_realized_pnl_usd";
    pub const POSITION_FEES_USD: &str = "orrery_position_fees_paid_usd";
}

/// HELP texts of this module's metrics.
pub fn describe() {
    use metrics::describe_gauge;
    describe_gauge!(
        names::POSITION_SIZE,
        "Signed position size in the base asset (positive long), from recorded fills, by venue and symbol."
    );
    describe_gauge!(
        names::POSITION_UNREALIZED_PNL_USD,
        "Unrealized PnL in USD at the venue's mark price (average-cost method), by venue and symbol."
    );
    describe_gauge!(
        names::POSITION_EXPOSURE_USD,
        "Absolute position value in USD at the venue's mark price, by venue and symbol."
    );
    describe_gauge!(
        names::POSITION_REALIZED_PNL_USD,
        "PnL in USD realized by reducing fills since the first recorded fill, before fees, by venue and symbol."
    );
    describe_gauge!(
        names::POSITION_FEES_USD,
        "Fees paid in USD since the first recorded fill (negative for rebates), by venue and symbol; fees that could not be priced in USD are not included (see orrery status)."
    );
}

/// Sets every per-position series of `venue` to 0 for `symbols`, so dashboards and
/// alerts see them from start, before the first fill.
pub fn init_metrics(venue: &str, symbols: &[String]) {
    for s in symbols {
        let zero = PositionPnl {
            symbol: s.clone(),
            size: Decimal::ZERO,
            avg_entry_price: Decimal::ZERO,
            mark_price: None,
            unrealized_pnl_usd: Decimal::ZERO,
            exposure_usd: Decimal::ZERO,
            realized_pnl_usd: Decimal::ZERO,
            fees_usd: Decimal::ZERO,
            unconverted_fees: BTreeMap::new(),
        };
        record_metrics(venue, std::slice::from_ref(&zero));
    }
}

/// Exports the per-position series of `venue`.
pub fn record_metrics(venue: &str, rows: &[PositionPnl]) {
    let f = |d: Decimal| f64::try_from(d).unwrap_or(0.0);
    for r in rows {
        let labels = [("venue", venue.to_string()), ("symbol", r.symbol.clone())];
        metrics::gauge!(names::POSITION_SIZE, &labels).set(f(r.size));
        metrics::gauge!(names::POSITION_UNREALIZED_PNL_USD, &labels).set(f(r.unrealized_pnl_usd));
        metrics::gauge!(names::POSITION_EXPOSURE_USD, &labels).set(f(r.exposure_usd));
        metrics::gauge!(names::POSITION_REALIZED_PNL_USD, &labels).set(f(r.realized_pnl_usd));
        metrics::gauge!(names::POSITION_FEES_USD, &labels).set(f(r.fees_usd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::types::FeeInAsset;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn fill(id: &str, side: Side, size: Decimal, price: Decimal, fee: Decimal) -> Fill {
        Fill {
            fill_id: id.into(),
            client_id: None,
            venue_order_id: "1".into(),
            symbol: "BTC".into(),
            side,
            price,
            size,
            fee,
            closed_pnl: Decimal::ZERO,
            time_ms: id.parse().unwrap_or(0),
            fee_asset: None,
        }
    }

    #[test]
    fn average_cost_realizes_against_the_mean_entry() {
        let mut b = PositionBook::default();
        b.apply(Side::Buy, dec!(1), dec!(100));
        b.apply(Side::Buy, dec!(1), dec!(200));
        assert_eq!(b.avg_entry_price, dec!(150));
        assert_eq!(b.apply(Side::Sell, dec!(0.5), dec!(170)), dec!(10));
        assert_eq!(b.avg_entry_price, dec!(150), "a reduction keeps the entry");
        assert_eq!(b.unrealized(dec!(160)), dec!(15));
        // Crossing zero: 1.5 closed at 140 (-15), 0.5 short opened at 140.
        assert_eq!(b.apply(Side::Sell, dec!(2), dec!(140)), dec!(-15));
        assert_eq!((b.size, b.avg_entry_price), (dec!(-0.5), dec!(140)));
        assert_eq!(b.unrealized(dec!(130)), dec!(5));
        assert_eq!(b.realized_pnl, dec!(-5));
    }

    #[test]
    fn unconverted_fees_are_kept_in_their_asset() {
        let mut f = fill("1", Side::Buy, dec!(1), dec!(100), Decimal::ZERO);
        f.fee_asset = Some(FeeInAsset {
            asset: "BNB".into(),
            amount: dec!(0.0002),
            usd_price: None,
        });
        let rows = position_pnl(&[f], &[], &["BTC".into(), "ETH".into()]);
        assert_eq!(rows.len(), 2, "every configured symbol has a row");
        assert_eq!(rows[0].fees_usd, Decimal::ZERO);
        assert_eq!(rows[0].unconverted_fees.get("BNB"), Some(&dec!(0.0002)));
        assert_eq!(rows[1].symbol, "ETH");
        assert_eq!(rows[1].size, Decimal::ZERO);
    }

    #[test]
    fn fill_records_written_before_fee_asset_existed_still_decode() {
        let old = r#"{"fill_id":"t1","client_id":null,"venue_order_id":"1","symbol":"BTC","side":"buy","price":"100","size":"1","fee":"0.05","closed_pnl":"0","time_ms":42}"#;
        let f: Fill = serde_json::from_str(old).unwrap();
        assert_eq!(f.fee_asset, None);
        assert_eq!(f.fee, dec!(0.05));
    }

    #[test]
    fn merged_fills_keep_one_per_id() {
        let a = fill("1", Side::Buy, dec!(1), dec!(100), dec!(0));
        let b = fill("2", Side::Sell, dec!(1), dec!(101), dec!(0));
        let merged = merge_fills(vec![a.clone()], vec![b.clone(), a.clone()]);
        assert_eq!(merged, vec![a, b]);
    }

    #[test]
    fn fill_history_reports_each_fills_realized_pnl() {
        let fills = [
            fill("2", Side::Sell, dec!(1), dec!(110), dec!(0.1)),
            fill("1", Side::Buy, dec!(2), dec!(100), dec!(0.2)),
        ];
        let h = fill_history(&fills);
        assert_eq!(h[0].fill.fill_id, "1", "oldest first");
        assert_eq!(h[0].realized_pnl_usd, Decimal::ZERO);
        assert_eq!(h[1].realized_pnl_usd, dec!(10));
        assert_eq!(h[1].fee_usd, Some(dec!(0.1)));
    }

    proptest! {
        /// realized + unrealized − fees equals the mark-to-market change minus fees.
        #[test]
        fn realized_plus_unrealized_is_the_mark_to_market_change(
            trades in proptest::collection::vec((any::<bool>(), 1u32..5_000, 1u32..100_000, 0u32..500), 1..40),
            mark in 1u32..100_000,
        ) {
            let mut fills = Vec::new();
            let (mut cash, mut size, mut fees) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
            for (i, (buy, sz, px, fee)) in trades.into_iter().enumerate() {
                let (sz, px, fee) = (Decimal::new(sz.into(), 3), Decimal::new(px.into(), 2), Decimal::new(fee.into(), 4));
                let side = if buy { Side::Buy } else { Side::Sell };
                let signed = if buy { sz } else { -sz };
                cash -= signed * px;
                size += signed;
                fees += fee;
                fills.push(fill(&i.to_string(), side, sz, px, fee));
            }
            let mark = Decimal::new(mark.into(), 2);
            let mut book = PositionBook::default();
            let mut realized_sum = Decimal::ZERO;
            let mut ordered = fills.clone();
            ordered.sort_by_key(|f| f.time_ms);
            for f in &ordered {
                realized_sum += book.apply_fill(f);
            }
            prop_assert_eq!(book.size, size);
            prop_assert_eq!(book.fees_usd, fees);
            prop_assert_eq!(realized_sum, book.realized_pnl);
            let lhs = book.realized_pnl + book.unrealized(mark) - book.fees_usd;
            let rhs = size * mark + cash - fees;
            // The average price is a division: allow its last-digit rounding.
            prop_assert!((lhs - rhs).abs() < dec!(0.000001), "{} vs {}", lhs, rhs);
        }
    }
}
