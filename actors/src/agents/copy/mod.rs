//! The copy-trading agent (`[[agents.copy]]`): follows one or more Hyperliquid wallets
//! (the leaders) and mirrors their positions on a venue of ours, scaled by a ratio or a
//! fixed USD size, within an allowlist and notional limits, through the risk gate.
//!
//! Owns: its config and checks ([`CopyConfig`]), the mirroring decision ([`step`], a pure
//! function), the leader reads ([`leader`]), the durable mirror state and the step client
//! ids ([`state`]), one check over every leader ([`run`]), one log line, one journal
//! record and one `orrery_copy_steps_total` count per step, and the leader-position gauge.
//! Never: sends an order except through the gateway (risk gate, ledger), sends a step
//! again after its outcome became unknown (the gateway settles it by client id), moves
//! its mirrored position on what it intended (only on what filled), or trades a symbol
//! outside `symbols`.
//!
//! # Mirroring by target position
//!
//! Per leader and symbol the agent keeps (in sled) our mirrored position: the sum of the
//! fills of its own steps for that pair. Each check computes the target (the leader's
//! position, scaled, clamped: see [`step`]) and sends the difference as one marketable
//! immediate-or-cancel limit order at our venue's mid ± `max_slippage_pct`: an open, an
//! add, a reduction (reduce-only), a flip (one order across zero: every venue adapter and
//! the paper venue net a position, so the close and the new side are one order) or a
//! close (reduce-only). What does not fill is cancelled by the venue; the next check sends
//! what is still missing.
//!
//! # Triggers
//!
//! A check runs every `check_interval`. It reads a leader's `clearinghouseState` (the
//! truth) when `poll_interval` has passed since the last read, or at once when the leader
//! venue's stream (`follow_wallets`) shows a new fill of that leader (the fast path), or
//! while a step of that leader is unsettled. The first check after a start reads every
//! leader: a restart resumes from the leaders' current positions. The stream's newest
//! fill price in a symbol is the staleness reference; without one (no stream, or a
//! position opened before the stream's history) the leader's average entry price is.
//!
//! # Exactly once across crashes
//!
//! A step's client id is derived from (agent, leader, symbol, number of steps settled for
//! the pair) ([`state::step_client_id`]). The step is written to sled (pending) before
//! it is handed to the gateway, which writes its intent under that id before sending and
//! answers an id already in its ledger with that entry, never sending it again
//! ([`PlaceKeyedOrder`](crate::exchanges::gateway::PlaceKeyedOrder)). After a crash at
//! any point the same step is recomputed with the same id: not yet in the ledger → sent
//! once; in the ledger → its outcome (settled by the gateway's reconciliation at start,
//! by client id) is taken, and the mirrored position moves by its fills. The step count
//! moves on only once an outcome is recorded.
//!
//! # Followed wallets
//!
//! When the leader venue streams (`streams = true`), every wallet must be in its
//! `follow_wallets` (checked at start): that is what subscribes their fills. Without
//! streams the agent works from `clearinghouseState` polls alone.

pub mod leader;
pub mod run;
pub mod state;
pub mod step;

use std::time::Duration;

use futures::future::LocalBoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use run::{CopyAgent, CopyDeps};
pub use state::{CopyState, Mirror};
pub use step::{Limits, Sizing};

use super::runtime::Schedule;
use crate::validate::{join, Issues};

fn default_slippage() -> Decimal {
    Decimal::new(5, 1)
}
fn default_stale() -> Decimal {
    Decimal::ONE
}
fn default_min_step() -> Decimal {
    Decimal::TEN
}
fn default_poll() -> Duration {
    Duration::from_secs(30)
}
fn default_check() -> Duration {
    Duration::from_secs(1)
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One `[[agents.copy]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    /// Unique agent name; its mirrors live in sled tree `copy/<name>`.
    pub name: String,
    /// The Hyperliquid venue (under `[exchanges.venues]`) the leaders are read on.
    pub leader_venue: String,
    /// Leader addresses, `0x` + 40 hex digits.
    pub wallets: Vec<String>,
    /// Our venue, where the mirrored positions are held.
    pub venue: String,
    /// Our size = leader size × ratio (exclusive with `fixed_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Decimal>,
    /// On open, `fixed_usd / price`; adds and reductions scale with the leader's size
    /// relative to its size at open (exclusive with `ratio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_usd: Option<Decimal>,
    /// The symbols mirrored (the leader's coin names, as written for any venue).
    pub symbols: Vec<String>,
    /// Largest notional a step may bring one mirrored position to.
    pub max_position_usd: Decimal,
    /// Largest notional a step may bring all of this agent's mirrored positions to.
    pub max_total_usd: Decimal,
    /// Limit price of a step: the mid ± this percentage (immediate-or-cancel).
    #[serde(default = "default_slippage")]
    pub max_slippage_pct: Decimal,
    /// A risk-increasing step is skipped when the price moved more than this percentage
    /// from the leader's fill.
    #[serde(default = "default_stale")]
    pub stale_pct: Decimal,
    /// Steps worth less are not sent (closes always are).
    #[serde(default = "default_min_step")]
    pub min_step_usd: Decimal,
    /// How often each leader's `clearinghouseState` is read.
    #[serde(with = "humantime_serde", default = "default_poll")]
    pub poll_interval: Duration,
    /// How often the stream's fills are looked at (and a due poll started).
    #[serde(with = "humantime_serde", default = "default_check")]
    pub check_interval: Duration,
    #[serde(with = "humantime_serde", default = "default_initial_delay")]
    pub initial_delay: Duration,
    #[serde(default)]
    pub jitter: f64,
    #[serde(with = "humantime_serde::option", default)]
    pub run_timeout: Option<Duration>,
    /// Deadline of one leader read.
    #[serde(with = "humantime_serde", default = "default_request_timeout")]
    pub request_timeout: Duration,
}

/// Beyond the leader reads: quotes and orders of one check.
const RUN_MARGIN: Duration = Duration::from_secs(60);

/// A leader address: `0x` and 40 hex digits.
pub fn is_address(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl CopyConfig {
    /// The sizing rule (`ratio` wins only when both are set, which validation refuses).
    pub fn sizing(&self) -> Sizing {
        match (self.ratio, self.fixed_usd) {
            (Some(r), _) => Sizing::Ratio(r),
            (None, Some(usd)) => Sizing::FixedUsd(usd),
            (None, None) => Sizing::Ratio(Decimal::ONE),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_position_usd: self.max_position_usd,
            max_total_usd: self.max_total_usd,
            stale_pct: self.stale_pct,
            min_step_usd: self.min_step_usd,
        }
    }

    /// The wallets as the stream keys them (lower case).
    pub fn leaders(&self) -> Vec<String> {
        self.wallets
            .iter()
            .map(|w| w.to_ascii_lowercase())
            .collect()
    }

    /// `ratio 0.1` or `fixed 500 USD`, for status.
    pub fn sizing_label(&self) -> String {
        match self.sizing() {
            Sizing::Ratio(r) => format!("ratio {}", r.normalize()),
            Sizing::FixedUsd(u) => format!("fixed {} USD", u.normalize()),
        }
    }

    /// One run per `check_interval`; its deadline covers the leader reads and a margin.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.check_interval,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            run_timeout: self.run_timeout.unwrap_or_else(|| {
                self.request_timeout * self.wallets.len().max(1) as u32 + RUN_MARGIN
            }),
        }
    }

    /// Checks its own values into `issues` (venues are checked by the process config).
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        super::runtime::validate_keys(path, self.jitter, self.run_timeout, issues);
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        issues.check(
            name_ok,
            join(path, "name"),
            &self.name,
            "1 to 64 characters of a-z, A-Z, 0-9, - and _",
        );
        issues.check(
            !self.wallets.is_empty(),
            join(path, "wallets"),
            &self.wallets,
            "at least one leader address",
        );
        for (i, w) in self.wallets.iter().enumerate() {
            issues.check(
                is_address(w),
                format!("{}[{i}]", join(path, "wallets")),
                w,
                "a leader address, 0x followed by 40 hex digits",
            );
        }
        let mut leaders = self.leaders();
        leaders.sort();
        leaders.dedup();
        issues.check(
            leaders.len() == self.wallets.len(),
            join(path, "wallets"),
            &self.wallets,
            "each leader once",
        );
        match (self.ratio, self.fixed_usd) {
            (Some(_), Some(_)) | (None, None) => issues.push(
                join(path, "ratio"),
                (self.ratio, self.fixed_usd),
                "exactly one of ratio and fixed_usd",
            ),
            (Some(r), None) => issues.check(
                r > Decimal::ZERO && r <= Decimal::ONE_HUNDRED,
                join(path, "ratio"),
                r,
                "a ratio in (0, 100]",
            ),
            (None, Some(u)) => issues.check(
                u > Decimal::ZERO,
                join(path, "fixed_usd"),
                u,
                "a positive USD size",
            ),
        }
        issues.check(
            !self.symbols.is_empty() && self.symbols.iter().all(|s| !s.trim().is_empty()),
            join(path, "symbols"),
            &self.symbols,
            "at least one symbol, none empty",
        );
        issues.check(
            self.max_position_usd > Decimal::ZERO,
            join(path, "max_position_usd"),
            self.max_position_usd,
            "a positive USD notional",
        );
        issues.check(
            self.max_total_usd >= self.max_position_usd,
            join(path, "max_total_usd"),
            self.max_total_usd,
            format!(
                "a USD notional at least max_position_usd ({})",
                self.max_position_usd
            ),
        );
        issues.check(
            self.max_slippage_pct > Decimal::ZERO && self.max_slippage_pct <= Decimal::TEN,
            join(path, "max_slippage_pct"),
            self.max_slippage_pct,
            "a percentage in (0, 10]",
        );
        issues.check(
            self.stale_pct > Decimal::ZERO && self.stale_pct <= Decimal::ONE_HUNDRED,
            join(path, "stale_pct"),
            self.stale_pct,
            "a percentage in (0, 100]",
        );
        issues.check(
            self.min_step_usd >= Decimal::ZERO,
            join(path, "min_step_usd"),
            self.min_step_usd,
            "a USD notional of 0 or more",
        );
        issues.check(
            self.poll_interval >= Duration::from_secs(1),
            join(path, "poll_interval"),
            humantime::format_duration(self.poll_interval).to_string(),
            "a duration of at least 1s",
        );
        issues.check(
            self.check_interval >= Duration::from_millis(100)
                && self.check_interval <= self.poll_interval,
            join(path, "check_interval"),
            humantime::format_duration(self.check_interval).to_string(),
            "a duration from 100ms to poll_interval",
        );
        issues.check(
            self.request_timeout >= Duration::from_millis(100)
                && self.request_timeout <= Duration::from_secs(60),
            join(path, "request_timeout"),
            humantime::format_duration(self.request_timeout).to_string(),
            "a duration from 100ms to 60s",
        );
    }
}

/// Metric names of the copy agent.
pub mod names {
    /// Steps by agent and outcome (`filled`, `partially_filled`, `unfilled`, `refused`,
    /// `rejected`, `invalid`, `unknown`, `failed`, `skipped_<why>`).
    pub const STEPS: &str = "orrery_copy_steps_total";
    /// A leader's position per symbol (signed base units) at the last read.
    pub const LEADER_POSITION: &str = "orrery_copy_leader_position";
}

/// Registers the copy agent's metric descriptions.
pub fn describe() {
    metrics::describe_counter!(
        names::STEPS,
        "Copy-trading steps, by agent and outcome (filled, partially_filled, unfilled, refused, rejected, invalid, unknown, failed, skipped_not_allowed, skipped_stale, skipped_at_limit, skipped_too_small)."
    );
    metrics::describe_gauge!(
        names::LEADER_POSITION,
        "A followed leader's position per symbol (signed base units; negative is short) at the last clearinghouseState read."
    );
}

/// The agent as the runtime runs it.
impl super::runtime::AgentKind for CopyAgent {
    fn name(&self) -> &str {
        &self.config().name
    }

    fn kind(&self) -> super::runtime::Kind {
        super::runtime::Kind::Copy
    }

    fn order_venue(&self) -> Option<&str> {
        Some(&self.config().venue)
    }

    fn schedule(&self) -> Schedule {
        self.config().schedule()
    }

    fn started(&self) {
        run::init_metrics(&self.config().name);
    }

    fn run(
        &self,
        _ctx: super::runtime::RunCtx,
    ) -> LocalBoxFuture<'static, super::runtime::RunOutcome> {
        let agent = self.clone();
        Box::pin(async move { agent.check().await })
    }
}

#[cfg(test)]
mod tests;
