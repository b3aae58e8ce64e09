//! Execution options of a backtest, validated before a single bar is read.
//!
//! Owns: the knobs of the execution model (cash, commission, spread, margin, fill timing,
//! lot size, closing open trades at the end) and their validation, with an error naming the
//! field, its value and the accepted range. Never: reading files or knowing a strategy.
//!
//! Each option is the backtesting.py 0.6 option of the same meaning (named in its doc), so
//! numbers carry over: `Backtest(data, S, cash=, commission=, spread=, margin=,
//! trade_on_close=, finalize_trades=)` and `FractionalBacktest(..., fractional_unit=)`.
//! backtesting.py's `hedging` and `exclusive_orders` are fixed at their defaults (`False`):
//! this engine nets (an opposite order closes open trades first-in first-out).
//!
//! Amounts are `f64` like the bars (see `data`'s module doc): a backtest moves no money.

use serde::{Deserialize, Serialize};

/// When a market order an action asks for is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// At the next bar's open (backtesting.py's default).
    #[default]
    NextOpen,
    /// At the close of the bar the action was taken on (backtesting.py `trade_on_close=True`).
    Close,
}

/// How a backtest executes a strategy's actions. `Default` is backtesting.py's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacktestConfig {
    /// Starting cash, in quote currency; > 0 (`cash`, default 10 000).
    pub cash: f64,
    /// Commission as a fraction of traded value, charged on entry and again on exit;
    /// in [-0.1, 0.1): negative is a maker rebate (`commission`).
    pub commission: f64,
    /// A fixed commission per fill in quote currency, >= 0 (the first element of
    /// backtesting.py's `commission=(fixed, relative)`).
    pub commission_fixed: f64,
    /// Bid-ask spread as a fraction of price, in [0, 0.1): buys fill that fraction higher,
    /// sells lower (`spread`).
    pub spread: f64,
    /// Margin required per unit of position value, in (0, 1]: leverage is `1 / margin`
    /// (`margin`).
    pub margin: f64,
    /// When market orders fill (`trade_on_close`).
    pub fill: Fill,
    /// `None`: whole units only. `Some(u)`: quantities are whole multiples of `u` base units,
    /// as backtesting.py's `FractionalBacktest(fractional_unit=u)` (e.g. 1e-8, a satoshi).
    pub fractional_unit: Option<f64>,
    /// Close trades still open after the last bar (at that bar, as backtesting.py's
    /// `finalize_trades=True` does) so they count in the statistics. When false they stay
    /// open: the equity curve values them at the last close, the statistics of trades do
    /// not include them.
    pub finalize_trades: bool,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            cash: 10_000.0,
            commission: 0.0,
            commission_fixed: 0.0,
            spread: 0.0,
            margin: 1.0,
            fill: Fill::NextOpen,
            fractional_unit: None,
            finalize_trades: false,
        }
    }
}

/// A backtest option outside its accepted range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("backtest option `{field}` = {value} is invalid: it must be {expected}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: f64,
    pub expected: &'static str,
}

impl BacktestConfig {
    /// Checks every option; the first out-of-range one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field, value: f64, ok: bool, expected| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(ConfigError {
                    field,
                    value,
                    expected,
                })
            }
        };
        check("cash", self.cash, self.cash > 0.0, "a finite amount > 0")?;
        check(
            "commission",
            self.commission,
            (-0.1..0.1).contains(&self.commission),
            "a fraction of traded value in [-0.1, 0.1), e.g. 0.001 for 0.1 %",
        )?;
        check(
            "commission_fixed",
            self.commission_fixed,
            self.commission_fixed >= 0.0,
            "a finite amount >= 0",
        )?;
        check(
            "spread",
            self.spread,
            (0.0..0.1).contains(&self.spread),
            "a fraction of price in [0, 0.1), e.g. 0.0002",
        )?;
        check(
            "margin",
            self.margin,
            self.margin > 0.0 && self.margin <= 1.0,
            "a fraction in (0, 1]: 1 / leverage, e.g. 0.5 for 2x",
        )?;
        if let Some(u) = self.fractional_unit {
            check(
                "fractional_unit",
                u,
                u > 0.0 && u <= 1.0,
                "a fraction of a unit in (0, 1], e.g. 1e-8",
            )?;
        }
        Ok(())
    }

    /// The lot size in base units: 1 for whole units.
    pub(crate) fn unit(&self) -> f64 {
        self.fractional_unit.unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_option_is_named() {
        assert_eq!(BacktestConfig::default().validate(), Ok(()));
        let bad = [
            BacktestConfig {
                cash: -1.0,
                ..Default::default()
            },
            BacktestConfig {
                cash: f64::NAN,
                ..Default::default()
            },
            BacktestConfig {
                commission: 1.0,
                ..Default::default()
            },
            BacktestConfig {
                commission_fixed: -0.5,
                ..Default::default()
            },
            BacktestConfig {
                spread: -0.01,
                ..Default::default()
            },
            BacktestConfig {
                margin: 0.0,
                ..Default::default()
            },
            BacktestConfig {
                fractional_unit: Some(0.0),
                ..Default::default()
            },
        ];
        let fields: Vec<&str> = bad
            .iter()
            .map(|c| c.validate().unwrap_err().field)
            .collect();
        assert_eq!(
            fields,
            [
                "cash",
                "cash",
                "commission",
                "commission_fixed",
                "spread",
                "margin",
                "fractional_unit"
            ]
        );
        let msg = bad[2].validate().unwrap_err().to_string();
        assert!(
            msg.contains("`commission` = 1") && msg.contains("[-0.1, 0.1)"),
            "{msg}"
        );
    }

    #[test]
    fn config_reads_from_json_with_defaults() {
        let c: BacktestConfig =
            serde_json::from_str(r#"{"commission":0.002,"fill":"close"}"#).unwrap();
        assert_eq!(c.commission, 0.002);
        assert_eq!(c.fill, Fill::Close);
        assert_eq!(c.cash, 10_000.0);
        assert!(serde_json::from_str::<BacktestConfig>(r#"{"cassh":1}"#).is_err());
    }
}
