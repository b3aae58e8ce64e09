//! The gateway's settings (`[exchanges]`: slippage, request deadline, reconciliation
//! interval, readiness wait, default leverage) and their validation.
//!
//! Owns: the defaults and the allowed range of each key. Never: reads the environment or
//! a file (the config loader does) or acts on a value.

use super::*;

/// `[exchanges]` settings that shape order handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Furthest a market order may fill from the quote, in percent.
    pub market_slippage_pct: Decimal,
    /// Deadline of one venue request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often the ledger is reconciled with each venue.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How often a venue whose stream pushes the account's fills is reconciled (and at
    /// once after that stream reconnects).
    #[serde(with = "humantime_serde")]
    pub reconcile_interval_streamed: Duration,
    /// How long an order may wait for the first reconciliation before it is refused.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// Leverage assumed for a symbol until an agent sets one.
    pub default_leverage: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            market_slippage_pct: Decimal::ONE,
            request_timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
            reconcile_interval_streamed: Duration::from_secs(300),
            ready_timeout: Duration::from_secs(15),
            default_leverage: 1,
        }
    }
}

impl GatewayConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.market_slippage_pct > Decimal::ZERO
                && self.market_slippage_pct <= Decimal::from(10),
            join(path, "market_slippage_pct"),
            self.market_slippage_pct,
            "a percentage in (0, 10]",
        );
        for (key, d, min, max) in [
            ("request_timeout", self.request_timeout, 100u64, 120_000u64),
            (
                "reconcile_interval",
                self.reconcile_interval,
                1_000,
                3_600_000,
            ),
            (
                "reconcile_interval_streamed",
                self.reconcile_interval_streamed,
                1_000,
                3_600_000,
            ),
            ("ready_timeout", self.ready_timeout, 100, 600_000),
        ] {
            let ms = d.as_millis() as u64;
            issues.check(
                (min..=max).contains(&ms),
                join(path, key),
                humantime::format_duration(d).to_string(),
                format!(
                    "a duration from {} to {}",
                    humantime::format_duration(Duration::from_millis(min)),
                    humantime::format_duration(Duration::from_millis(max))
                ),
            );
        }
        issues.check(
            (1..=100).contains(&self.default_leverage),
            join(path, "default_leverage"),
            self.default_leverage,
            "an integer from 1 to 100",
        );
    }
}
