//! Configuration of the paper venue: account terms, market simulation and per-symbol rules.
//!
//! Owns: the serde shape of `[exchanges.paper]`-style sections, their defaults, validation
//! with key paths, and the resolution of a symbol's rules (known defaults for BTC, ETH and
//! SOL, derived defaults for any other symbol). Never: simulation or account logic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::replay;
use crate::exchanges::types::Instrument;
use crate::validate::{join, Issues};

/// The paper venue's configuration. Every field has a default, so an empty section runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Cash credited when the paper account is created (never re-applied later). Default 10000.
    pub starting_balance_usd: Decimal,
    /// Seed of the simulated markets; with the clock it fixes every simulated price. Default 42.
    pub seed: u64,
    /// Fee on fills that take liquidity, in basis points of notional. Default 4.5.
    pub fee_taker_bps: Decimal,
    /// Fee on fills of resting orders, in basis points of notional. Default 1.5.
    pub fee_maker_bps: Decimal,
    /// Full bid/ask spread around the simulated mid, in basis points. Default 2.
    pub spread_bps: Decimal,
    /// Price impact of market (and marketable) orders beyond the touch, in bps. Default 5.
    pub slippage_bps: Decimal,
    /// USD notional available at the touch for a marketable limit order; the rest of a GTC
    /// order rests, the rest of an IOC order is cancelled. Default 250000.
    pub top_of_book_usd: Decimal,
    /// Venue-wide leverage cap; each symbol's own cap is at most this. Default 50.
    pub max_leverage: u32,
    /// Leverage of a symbol until `set_leverage` is called. Default 1.
    pub default_leverage: u32,
    /// Annualised volatility of the simulated log price (0.6 = 60%). Default 0.6.
    pub volatility_annual: f64,
    /// Annualised drift of the simulated price (0.0 = none). Default 0.
    pub drift_annual: f64,
    /// Simulation step: the finest time resolution of the price path. Must divide one
    /// minute. Default 1s.
    #[serde(with = "humantime_serde")]
    pub step: Duration,
    /// How often replayed funding settles (`derivatives_csv`), on the epoch grid.
    /// Default 1h, as on Hyperliquid (Binance settles every 8h).
    #[serde(with = "humantime_serde")]
    pub funding_interval: Duration,
    /// Tradable symbols. Replaces the default set (BTC, ETH, SOL) when given.
    pub symbols: BTreeMap<String, PaperSymbolConfig>,
}

/// One symbol's rules. Unset fields take the symbol's known default (BTC, ETH, SOL) or one
/// derived from its initial price (5 significant digits of tick, a lot worth under $1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperSymbolConfig {
    /// Simulated price at 00:00 UTC of the day the paper account was created. Required
    /// for symbols other than BTC (60000), ETH (3000) and SOL (150) unless replayed.
    pub initial_price: Option<Decimal>,
    pub tick_size: Option<Decimal>,
    pub lot_size: Option<Decimal>,
    /// Smallest order value in USD. Default 10.
    pub min_notional: Option<Decimal>,
    pub max_leverage: Option<u32>,
    /// Overrides the venue-wide `volatility_annual` for this symbol.
    pub volatility_annual: Option<f64>,
    /// Replay this CSV (`timestamp,open,high,low,close,volume`) instead of simulating.
    pub replay_csv: Option<PathBuf>,
    /// Replay funding and open interest from this CSV
    /// (`timestamp,funding_rate,open_interest,mark_price`), for `orrery market` and the
    /// funding and open-interest agents. Without it the symbol has no derivatives data.
    pub derivatives_csv: Option<PathBuf>,
}

impl Default for PaperConfig {
    fn default() -> Self {
        let symbols = ["BTC", "ETH", "SOL"]
            .into_iter()
            .map(|s| (s.to_string(), PaperSymbolConfig::default()))
            .collect();
        Self {
            starting_balance_usd: Decimal::from(10_000),
            seed: 42,
            fee_taker_bps: Decimal::new(45, 1),
            fee_maker_bps: Decimal::new(15, 1),
            spread_bps: Decimal::TWO,
            slippage_bps: Decimal::from(5),
            top_of_book_usd: Decimal::from(250_000),
            max_leverage: 50,
            default_leverage: 1,
            volatility_annual: 0.6,
            drift_annual: 0.0,
            step: Duration::from_secs(1),
            funding_interval: Duration::from_secs(3600),
            symbols,
        }
    }
}

/// Rules of the symbols this venue knows without configuration:
/// (symbol, initial price, tick, lot, max leverage).
const KNOWN: [(&str, i64, Decimal, Decimal, u32); 3] = [
    (
        "BTC",
        60_000,
        Decimal::ONE,
        Decimal::from_parts(1, 0, 0, false, 5),
        40,
    ),
    (
        "ETH",
        3_000,
        Decimal::from_parts(1, 0, 0, false, 1),
        Decimal::from_parts(1, 0, 0, false, 4),
        25,
    ),
    (
        "SOL",
        150,
        Decimal::from_parts(1, 0, 0, false, 2),
        Decimal::from_parts(1, 0, 0, false, 2),
        20,
    ),
];
const DEFAULT_MIN_NOTIONAL: i64 = 10;
const BPS_CAP_FEE: i64 = 1_000;
const BPS_FULL: i64 = 10_000;
const LEVERAGE_CAP: u32 = 100;

/// A symbol's rules after defaults are applied.
#[derive(Debug, Clone)]
pub(super) struct SymbolRules {
    pub instrument: Instrument,
    /// `None` only for replayed symbols without a configured price.
    pub initial_price: Option<Decimal>,
    pub volatility_annual: f64,
    pub replay_csv: Option<PathBuf>,
}

impl PaperConfig {
    /// Pushes one issue per out-of-range value, each with its key path under `path`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        let key = |k: &str| join(path, k);
        issues.check(
            self.starting_balance_usd > Decimal::ZERO,
            key("starting_balance_usd"),
            self.starting_balance_usd,
            "a positive amount of USD",
        );
        for (name, v) in [
            ("fee_taker_bps", self.fee_taker_bps),
            ("fee_maker_bps", self.fee_maker_bps),
        ] {
            issues.check(
                v >= Decimal::ZERO && v <= Decimal::from(BPS_CAP_FEE),
                key(name),
                v,
                "0 to 1000 basis points",
            );
        }
        for (name, v) in [
            ("spread_bps", self.spread_bps),
            ("slippage_bps", self.slippage_bps),
        ] {
            issues.check(
                v >= Decimal::ZERO && v < Decimal::from(BPS_FULL),
                key(name),
                v,
                "at least 0 and below 10000 basis points",
            );
        }
        issues.check(
            self.top_of_book_usd > Decimal::ZERO,
            key("top_of_book_usd"),
            self.top_of_book_usd,
            "a positive amount of USD",
        );
        issues.check(
            (1..=LEVERAGE_CAP).contains(&self.max_leverage),
            key("max_leverage"),
            self.max_leverage,
            "1 to 100",
        );
        issues.check(
            self.default_leverage >= 1 && self.default_leverage <= self.max_leverage,
            key("default_leverage"),
            self.default_leverage,
            format!("1 to max_leverage ({})", self.max_leverage),
        );
        check_volatility(issues, key("volatility_annual"), self.volatility_annual);
        issues.check(
            self.drift_annual.is_finite() && self.drift_annual.abs() <= 10.0,
            key("drift_annual"),
            self.drift_annual,
            "a finite fraction between -10 and 10 (0.1 = +10% a year)",
        );
        let step_ms = self.step.as_millis();
        issues.check(
            Duration::from_millis(step_ms as u64) == self.step
                && (1..=60_000).contains(&step_ms)
                && 60_000 % step_ms == 0,
            key("step"),
            self.step,
            "whole milliseconds from 1ms to 60s that divide one minute (e.g. 250ms, 1s, 5s)",
        );
        let interval_ms = self.funding_interval.as_millis();
        issues.check(
            (3_600_000..=86_400_000).contains(&interval_ms)
                && interval_ms.is_multiple_of(3_600_000)
                && 86_400_000 % interval_ms == 0,
            key("funding_interval"),
            humantime::format_duration(self.funding_interval).to_string(),
            "whole hours from 1h to 24h, dividing one day (1h, 4h, 8h ...)",
        );
        if self.symbols.is_empty() {
            issues.push(key("symbols"), "{}", "at least one symbol");
        }
        for (symbol, sc) in &self.symbols {
            let skey = |k: &str| join(&key(&format!("symbols.{symbol}")), k);
            if symbol.is_empty()
                || !symbol
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                issues.push(
                    key("symbols"),
                    symbol,
                    "symbol names of ASCII letters, digits, '-', '_' or '.'",
                );
            }
            let known = known(symbol);
            match sc.initial_price {
                Some(p) => issues.check(
                    p > Decimal::ZERO,
                    skey("initial_price"),
                    p,
                    "a positive price in USD",
                ),
                None => issues.check(
                    known.is_some() || sc.replay_csv.is_some(),
                    skey("initial_price"),
                    "<unset>",
                    "a positive price in USD (required for symbols other than BTC, ETH, SOL unless replay_csv is set)",
                ),
            }
            for (name, v) in [("tick_size", sc.tick_size), ("lot_size", sc.lot_size)] {
                if let Some(v) = v {
                    issues.check(v > Decimal::ZERO, skey(name), v, "a positive step");
                }
            }
            if let Some(v) = sc.min_notional {
                issues.check(v >= Decimal::ZERO, skey("min_notional"), v, "0 or more USD");
            }
            if let Some(v) = sc.max_leverage {
                issues.check(
                    (1..=LEVERAGE_CAP).contains(&v),
                    skey("max_leverage"),
                    v,
                    "1 to 100",
                );
            }
            if let Some(v) = sc.volatility_annual {
                check_volatility(issues, skey("volatility_annual"), v);
            }
            if let Some(file) = &sc.derivatives_csv {
                if let Err(e) = super::derivatives::DerivativesReplay::load(file) {
                    issues.push(
                        skey("derivatives_csv"),
                        file,
                        format!(
                            "a readable CSV with header timestamp,funding_rate,open_interest,mark_price ({e})"
                        ),
                    );
                }
            }
            if let Some(file) = &sc.replay_csv {
                if let Err(e) = replay::ReplayPath::load(file) {
                    issues.push(
                        skey("replay_csv"),
                        file,
                        format!(
                            "a readable CSV with header timestamp,open,high,low,close,volume ({e})"
                        ),
                    );
                }
            }
        }
    }

    /// Each symbol's `derivatives_csv`, where one is set.
    pub fn derivatives_files(&self) -> BTreeMap<String, PathBuf> {
        self.symbols
            .iter()
            .filter_map(|(s, sc)| sc.derivatives_csv.clone().map(|f| (s.clone(), f)))
            .collect()
    }

    /// The rules of every configured symbol, defaults applied. Assumes a validated config.
    pub(super) fn rules(&self) -> BTreeMap<String, SymbolRules> {
        self.symbols
            .iter()
            .map(|(symbol, sc)| (symbol.clone(), self.symbol_rules(symbol, sc)))
            .collect()
    }

    fn symbol_rules(&self, symbol: &str, sc: &PaperSymbolConfig) -> SymbolRules {
        let known = known(symbol);
        let initial_price = sc
            .initial_price
            .or_else(|| known.map(|k| Decimal::from(k.1)));
        // Derived defaults need some price scale; a replayed symbol without one gets the
        // generic scale of 1 USD until its own tick_size/lot_size are configured.
        let scale = initial_price.unwrap_or(Decimal::ONE);
        let tick_size = sc
            .tick_size
            .or_else(|| known.map(|k| k.2))
            .unwrap_or_else(|| power_of_ten_step(scale, -4));
        let lot_size = sc
            .lot_size
            .or_else(|| known.map(|k| k.3))
            .unwrap_or_else(|| {
                let inverse = if scale.is_zero() {
                    Decimal::ONE
                } else {
                    Decimal::ONE / scale
                };
                power_of_ten_step(inverse, 0)
            });
        let max_leverage = sc
            .max_leverage
            .or_else(|| known.map(|k| k.4))
            .unwrap_or(self.max_leverage)
            .min(self.max_leverage);
        SymbolRules {
            instrument: Instrument {
                symbol: symbol.to_string(),
                tick_size,
                lot_size,
                min_notional: sc
                    .min_notional
                    .unwrap_or(Decimal::from(DEFAULT_MIN_NOTIONAL)),
                max_leverage,
            },
            initial_price,
            volatility_annual: sc.volatility_annual.unwrap_or(self.volatility_annual),
            replay_csv: sc.replay_csv.clone(),
        }
    }
}

fn check_volatility(issues: &mut Issues, key: String, v: f64) {
    issues.check(
        v.is_finite() && (0.0..=10.0).contains(&v),
        key,
        v,
        "a finite fraction from 0 to 10 (0.6 = 60% a year)",
    );
}

fn known(symbol: &str) -> Option<(&'static str, i64, Decimal, Decimal, u32)> {
    KNOWN.into_iter().find(|k| k.0 == symbol)
}

/// `10^(floor(log10(value)) + shift)`: the power of ten just below `value`, shifted.
/// 60000 with shift -4 gives 1; 0.0166 with shift 0 gives 0.01.
fn power_of_ten_step(value: Decimal, shift: i32) -> Decimal {
    let exponent = value
        .to_f64()
        .filter(|v| *v > 0.0 && v.is_finite())
        .map(|v| v.log10().floor() as i32)
        .unwrap_or(0)
        + shift;
    let exponent = exponent.clamp(-20, 18);
    if exponent >= 0 {
        Decimal::from(10u64.pow(exponent as u32))
    } else {
        Decimal::new(1, (-exponent) as u32)
    }
}
