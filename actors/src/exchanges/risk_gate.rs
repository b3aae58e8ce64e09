//! The risk gate: the checks every order passes before its intent is written, and the
//! engine's trading state.
//!
//! Owns: risk limits configuration, [`TradingMode`] with its typed [`ModeCause`], the pure
//! decision "may this order go out, given the account, the position and the mode", and the
//! only constructor of [`RiskApproved`]. Never: fetches data or sends orders (the gateway
//! gives it a [`GateView`] and acts on the answer); never blocks an order that only reduces
//! risk unless trading is halted.
//!
//! ## Risk-approved orders
//!
//! [`approve`] judges an [`OrderRequest`] and, when the gate admits it, wraps it in
//! [`RiskApproved`]. The wrapper's fields are private and it has no other constructor, so
//! the ledger's intent write ([`super::ledger::OrderLedger::record_intent`]) and
//! [`super::venue::Venue::place_order`], which accept only `RiskApproved<OrderRequest>`,
//! cannot be reached by an order that skipped the gate: such code does not compile.
//!
//! The gate's way (compiles):
//!
//! ```
//! use orrery_actors::exchanges::risk_gate::{self, GateView, Judgement, RiskConfig, TradingMode};
//! use orrery_actors::exchanges::{ClientOrderId, OrderRequest, OrderType, Side, TimeInForce};
//! use rust_decimal::Decimal;
//!
//! let request = OrderRequest {
//!     client_id: ClientOrderId::generate(),
//!     symbol: "BTC".into(),
//!     side: Side::Buy,
//!     size: Decimal::ONE,
//!     order_type: OrderType::Limit { price: Decimal::ONE, tif: TimeInForce::Gtc },
//!     reduce_only: false,
//!     valid_until_ms: None,
//! };
//! let view = GateView {
//!     mode: TradingMode::Normal,
//!     mode_reason: String::new(),
//!     account_value: Decimal::from(10_000),
//!     position_size: Decimal::ZERO,
//! };
//! let judgement = Judgement {
//!     price: Decimal::ONE,
//!     reference_price: Decimal::ONE,
//!     leverage: 1,
//!     emergency_close: false,
//! };
//! let approved = risk_gate::approve(&RiskConfig::default(), request, judgement, &view).unwrap();
//! assert_eq!(approved.reference_price(), Decimal::ONE);
//! ```
//!
//! Skipping it does not compile:
//!
//! ```compile_fail
//! use orrery_actors::exchanges::risk_gate::RiskApproved;
//! use orrery_actors::exchanges::{ClientOrderId, OrderRequest, OrderType, Side, TimeInForce};
//! use rust_decimal::Decimal;
//!
//! let request = OrderRequest {
//!     client_id: ClientOrderId::generate(),
//!     symbol: "BTC".into(),
//!     side: Side::Buy,
//!     size: Decimal::ONE,
//!     order_type: OrderType::Limit { price: Decimal::ONE, tif: TimeInForce::Gtc },
//!     reduce_only: false,
//!     valid_until_ms: None,
//! };
//! // Private fields: only `risk_gate::approve` can make one.
//! let skipped_the_gate = RiskApproved { order: request, reference_price: Decimal::ONE };
//! ```
//!
//! (Barter's `RiskApproved<T>` is the model.) Only the gateway calls [`approve`]; the tests
//! of the venue modules and the benches call it too, with a view that admits their order.

use std::fmt;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::types::{OrderRequest, Side};
use crate::clock::Millis;
use crate::store::Record;
use crate::validate::{join, Issues};

/// What the engine may do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TradingMode {
    /// Any order the limits allow.
    #[default]
    Normal,
    /// Only orders that reduce an existing position.
    Reducing,
    /// No new orders; cancels only.
    Halted,
}

impl TradingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TradingMode::Normal => "normal",
            TradingMode::Reducing => "reducing",
            TradingMode::Halted => "halted",
        }
    }
    /// Value of the `orrery_engine_trading_mode` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            TradingMode::Normal => 0.0,
            TradingMode::Reducing => 1.0,
            TradingMode::Halted => 2.0,
        }
    }
}

impl fmt::Display for TradingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who set the trading mode. Decisions about a mode (may the risk agent lift it?) are
/// made on this type, never on the mode's reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModeCause {
    /// A mode record written before causes were recorded, or the initial `Normal`. The risk
    /// agent never lifts it: nothing proves the restriction was its own.
    #[default]
    Unattributed,
    /// The operator (releasing the kill switch).
    Operator,
    /// The operator's kill switch; only the operator clears it.
    KillSwitch,
    /// The risk agent, on a loss or minimum-balance breach; it lifts only this cause.
    RiskAgent,
    /// Market data at the emergency fallback level.
    MarketData,
    /// A swarm agent lost its quorum of working members; lifted (only from `Reducing`)
    /// once no swarm agent is degraded.
    SwarmQuorum,
    /// The resource monitor at its critical level (RSS or CPU); lifted (only from
    /// `Reducing`) by the monitor once the readings fall back below the threshold minus
    /// the hysteresis margin (see `crate::shedding`).
    ResourceShedding,
}

impl ModeCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeCause::Unattributed => "unattributed",
            ModeCause::Operator => "operator",
            ModeCause::KillSwitch => "kill_switch",
            ModeCause::RiskAgent => "risk_agent",
            ModeCause::MarketData => "market_data",
            ModeCause::SwarmQuorum => "swarm_quorum",
            ModeCause::ResourceShedding => "resource_shedding",
        }
    }
}

impl fmt::Display for ModeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The trading mode with who set it, why and since when; persisted so a halt survives a
/// restart.
///
/// Records written before `cause` existed load with [`ModeCause::Unattributed`] (or
/// [`ModeCause::KillSwitch`] when their `kill_switch` flag is set): the stricter reading,
/// so an old restriction is kept until the operator clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ModeState {
    pub mode: TradingMode,
    /// Who set the mode; decides who may lift it.
    pub cause: ModeCause,
    /// What happened, for people (logs, status); never read by code.
    pub reason: String,
    pub since_ms: Millis,
    /// Set by the operator's kill switch; only the operator clears it. Same as
    /// `cause == KillSwitch`, kept in the record and the API for readers of the old shape.
    pub kill_switch: bool,
}
impl Record for ModeState {}

impl<'de> Deserialize<'de> for ModeState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The stored shape, old (no `cause`) or new.
        #[derive(Deserialize)]
        struct Stored {
            mode: TradingMode,
            #[serde(default)]
            cause: Option<ModeCause>,
            reason: String,
            since_ms: Millis,
            #[serde(default)]
            kill_switch: bool,
        }
        let s = Stored::deserialize(d)?;
        let cause = match (s.cause, s.kill_switch) {
            (Some(cause), _) => cause,
            (None, true) => ModeCause::KillSwitch,
            (None, false) => ModeCause::Unattributed,
        };
        Ok(ModeState {
            mode: s.mode,
            cause,
            reason: s.reason,
            since_ms: s.since_ms,
            kill_switch: s.kill_switch,
        })
    }
}

/// An order the risk gate admitted. Fields are private and [`approve`] is the only
/// constructor, so whatever accepts this type (the ledger's intent write, a venue's
/// `place_order`) cannot be handed an order that skipped the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskApproved<T> {
    order: T,
    reference_price: Decimal,
}

impl<T> RiskApproved<T> {
    /// The approved order.
    pub fn order(&self) -> &T {
        &self.order
    }

    /// The market price the approval was made against: the mid of the quote the gateway
    /// read for this order. A market order's slippage bound is taken from it, so the venue
    /// never reads a second, different price for the same order.
    pub fn reference_price(&self) -> Decimal {
        self.reference_price
    }

    /// The order itself, leaving the approval behind (e.g. to persist it).
    pub fn into_order(self) -> T {
        self.order
    }
}

impl<T> std::ops::Deref for RiskApproved<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.order
    }
}

/// What the gate needs besides the order itself to judge it.
#[derive(Debug, Clone, Copy)]
pub struct Judgement {
    /// Expected fill price, for notional checks (the touch for a market order, the limit
    /// price otherwise).
    pub price: Decimal,
    /// The market price the order is sent against (the quote's mid); see
    /// [`RiskApproved::reference_price`].
    pub reference_price: Decimal,
    pub leverage: u32,
    /// A close the kill switch ordered: admitted while halted, as long as it only reduces.
    pub emergency_close: bool,
}

/// Judges `request` against the limits and, if the gate admits it, returns it approved.
/// The order judged is the order approved: side, size and reduce-only come from `request`.
pub fn approve(
    limits: &RiskConfig,
    request: OrderRequest,
    judgement: Judgement,
    view: &GateView,
) -> Result<RiskApproved<OrderRequest>, Refusal> {
    let proposed = ProposedOrder {
        side: request.side,
        size: request.size,
        price: judgement.price,
        reduce_only: request.reduce_only,
        leverage: judgement.leverage,
        emergency_close: judgement.emergency_close,
    };
    check(limits, &proposed, view)?;
    Ok(RiskApproved {
        order: request,
        reference_price: judgement.reference_price,
    })
}

/// For the venue modules' own tests, which exercise a venue without a gateway: the gate
/// judges `request` against a view that admits it (no limits, a position it reduces if
/// it is reduce-only). Still the real [`approve`].
#[cfg(test)]
pub(crate) fn approve_for_venue_test(
    request: OrderRequest,
    reference_price: Decimal,
) -> RiskApproved<OrderRequest> {
    let limits = RiskConfig {
        max_position_pct: Decimal::from(100),
        max_leverage: 100,
        min_balance_usd: Decimal::ZERO,
        ..RiskConfig::default()
    };
    let view = GateView {
        mode: TradingMode::Normal,
        mode_reason: String::new(),
        account_value: Decimal::from(1_000_000_000_000_000u64),
        position_size: if request.reduce_only {
            -request.side.sign() * request.size
        } else {
            Decimal::ZERO
        },
    };
    let judgement = Judgement {
        price: Decimal::ZERO,
        reference_price,
        leverage: 1,
        emergency_close: false,
    };
    match approve(&limits, request, judgement, &view) {
        Ok(approved) => approved,
        Err(refusal) => panic!("the venue test's order was refused by the gate: {refusal}"),
    }
}

/// Risk limits, from `[risk]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Largest margin (notional / leverage) in one symbol, in percent of account value.
    pub max_position_pct: Decimal,
    /// Highest leverage an order may use.
    pub max_leverage: u32,
    /// Below this account value no new risk is taken and the risk agent halts trading.
    pub min_balance_usd: Decimal,
    /// Loss over the window that triggers closing everything (USD), if set.
    pub max_loss_usd: Option<Decimal>,
    /// Loss over the window, in percent of the window's baseline, if set.
    pub max_loss_pct: Option<Decimal>,
    /// Gain over the window that triggers taking profit (USD), if set.
    pub max_gain_usd: Option<Decimal>,
    /// Gain over the window, in percent of the baseline, if set.
    pub max_gain_pct: Option<Decimal>,
    /// Length of the PnL window; the baseline is reset when it has passed.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How often the risk agent checks the limits.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Ask the model CLOSE_ALL or HOLD before acting on a loss or gain breach; any error
    /// or timeout counts as CLOSE_ALL (fail closed).
    pub ai_confirmation: bool,
    /// Logical model asked when `ai_confirmation` is on.
    pub model: String,
    #[serde(with = "humantime_serde")]
    pub confirmation_timeout: Duration,
    /// Largest single order when closing a position; bigger positions close in chunks.
    pub close_chunk_usd: Decimal,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            max_position_pct: Decimal::from(25),
            max_leverage: 5,
            min_balance_usd: Decimal::from(100),
            max_loss_usd: None,
            max_loss_pct: Some(Decimal::from(10)),
            max_gain_usd: None,
            max_gain_pct: None,
            window: Duration::from_secs(24 * 3600),
            check_interval: Duration::from_secs(10),
            ai_confirmation: false,
            model: "default".into(),
            confirmation_timeout: Duration::from_secs(20),
            close_chunk_usd: Decimal::from(10_000),
        }
    }
}

impl RiskConfig {
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        let hundred = Decimal::from(100);
        let pct_ok = |v: Decimal| v > Decimal::ZERO && v <= hundred;
        issues.check(
            pct_ok(self.max_position_pct),
            join(path, "max_position_pct"),
            self.max_position_pct,
            "a percentage in (0, 100]",
        );
        issues.check(
            (1..=100).contains(&self.max_leverage),
            join(path, "max_leverage"),
            self.max_leverage,
            "an integer from 1 to 100",
        );
        issues.check(
            self.min_balance_usd >= Decimal::ZERO,
            join(path, "min_balance_usd"),
            self.min_balance_usd,
            "zero or a positive USD amount",
        );
        for (key, v) in [
            ("max_loss_usd", self.max_loss_usd),
            ("max_gain_usd", self.max_gain_usd),
        ] {
            if let Some(v) = v {
                issues.check(
                    v > Decimal::ZERO,
                    join(path, key),
                    v,
                    "a positive USD amount, or leave it out",
                );
            }
        }
        for (key, v) in [
            ("max_loss_pct", self.max_loss_pct),
            ("max_gain_pct", self.max_gain_pct),
        ] {
            if let Some(v) = v {
                issues.check(
                    pct_ok(v),
                    join(path, key),
                    v,
                    "a percentage in (0, 100], or leave it out",
                );
            }
        }
        issues.check(
            self.window >= Duration::from_secs(60),
            join(path, "window"),
            humantime::format_duration(self.window).to_string(),
            "a duration of at least 1m, e.g. \"24h\"",
        );
        issues.check(
            self.check_interval >= Duration::from_millis(100) && self.check_interval <= self.window,
            join(path, "check_interval"),
            humantime::format_duration(self.check_interval).to_string(),
            "a duration from 100ms up to the window",
        );
        issues.check(
            !self.model.trim().is_empty(),
            join(path, "model"),
            &self.model,
            "the name of a logical model under [models]",
        );
        issues.check(
            self.confirmation_timeout >= Duration::from_millis(100)
                && self.confirmation_timeout <= Duration::from_secs(600),
            join(path, "confirmation_timeout"),
            humantime::format_duration(self.confirmation_timeout).to_string(),
            "a duration from 100ms to 10m",
        );
        issues.check(
            self.close_chunk_usd > Decimal::ZERO,
            join(path, "close_chunk_usd"),
            self.close_chunk_usd,
            "a positive USD amount",
        );
    }
}

/// What the gate sees of the account when judging one order.
#[derive(Debug, Clone)]
pub struct GateView {
    pub mode: TradingMode,
    pub mode_reason: String,
    pub account_value: Decimal,
    /// Signed size of the current position in the order's symbol.
    pub position_size: Decimal,
}

/// The order being judged.
#[derive(Debug, Clone)]
pub struct ProposedOrder {
    pub side: Side,
    pub size: Decimal,
    /// Expected fill price, for notional checks.
    pub price: Decimal,
    pub reduce_only: bool,
    pub leverage: u32,
    /// A close the kill switch ordered: admitted while halted, as long as it only reduces.
    pub emergency_close: bool,
}

/// Why the gate refused an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("trading is halted ({reason}); only cancels are accepted")]
    Halted { reason: String },
    #[error("trading is reducing-only ({reason}); this order would not reduce a position")]
    ReducingOnly { reason: String },
    #[error("leverage {requested}x exceeds risk.max_leverage {max}x")]
    Leverage { requested: u32, max: u32 },
    #[error("account value {account_value} USD is below risk.min_balance_usd {min} USD; no new risk is taken")]
    MinBalance {
        account_value: Decimal,
        min: Decimal,
    },
    #[error("resulting position margin {margin} USD would exceed risk.max_position_pct {pct}% of account value {account_value} USD (limit {limit} USD)")]
    PositionLimit {
        margin: Decimal,
        limit: Decimal,
        pct: Decimal,
        account_value: Decimal,
    },
    #[error("reduce-only order but there is no {side} position to reduce")]
    NothingToReduce { side: Side },
}

impl Refusal {
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Halted { .. } => "halted",
            Refusal::ReducingOnly { .. } => "reducing_only",
            Refusal::Leverage { .. } => "leverage",
            Refusal::MinBalance { .. } => "min_balance",
            Refusal::PositionLimit { .. } => "position_limit",
            Refusal::NothingToReduce { .. } => "nothing_to_reduce",
        }
    }
}

/// Whether an order only shrinks the current position (never opens or flips one).
pub fn is_risk_reducing(position_size: Decimal, side: Side, size: Decimal) -> bool {
    let reduces_long = position_size > Decimal::ZERO && side == Side::Sell;
    let reduces_short = position_size < Decimal::ZERO && side == Side::Buy;
    (reduces_long || reduces_short) && size <= position_size.abs()
}

/// Judges one order against the limits.
pub fn check(limits: &RiskConfig, order: &ProposedOrder, view: &GateView) -> Result<(), Refusal> {
    let reducing = is_risk_reducing(view.position_size, order.side, order.size);
    if order.reduce_only && !reducing {
        // A sell reduces a long, a buy reduces a short.
        let reducible_side = order.side.opposite();
        let has_reducible = match reducible_side {
            Side::Buy => view.position_size > Decimal::ZERO,
            Side::Sell => view.position_size < Decimal::ZERO,
        };
        if !has_reducible {
            return Err(Refusal::NothingToReduce {
                side: reducible_side,
            });
        }
    }
    match view.mode {
        TradingMode::Halted if !(order.emergency_close && reducing) => {
            return Err(Refusal::Halted {
                reason: view.mode_reason.clone(),
            })
        }
        TradingMode::Reducing if !reducing => {
            return Err(Refusal::ReducingOnly {
                reason: view.mode_reason.clone(),
            })
        }
        _ => {}
    }
    if reducing {
        // Shrinking a position always lowers risk; limits below only guard new exposure.
        return Ok(());
    }
    if order.leverage > limits.max_leverage {
        return Err(Refusal::Leverage {
            requested: order.leverage,
            max: limits.max_leverage,
        });
    }
    if view.account_value < limits.min_balance_usd {
        return Err(Refusal::MinBalance {
            account_value: view.account_value,
            min: limits.min_balance_usd,
        });
    }
    let resulting = view.position_size + order.side.sign() * order.size;
    let leverage = Decimal::from(order.leverage.max(1));
    let margin = (resulting.abs() * order.price / leverage).round_dp(2);
    let limit = (view.account_value * limits.max_position_pct / Decimal::from(100)).round_dp(2);
    if margin > limit {
        return Err(Refusal::PositionLimit {
            margin,
            limit,
            pct: limits.max_position_pct,
            account_value: view.account_value,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn view(mode: TradingMode, position: Decimal) -> GateView {
        GateView {
            mode,
            mode_reason: "test".into(),
            account_value: dec!(10000),
            position_size: position,
        }
    }

    fn order(side: Side, size: Decimal) -> ProposedOrder {
        ProposedOrder {
            side,
            size,
            price: dec!(100),
            reduce_only: false,
            leverage: 1,
            emergency_close: false,
        }
    }

    #[test]
    fn position_limit_is_margin_over_account_value() {
        let limits = RiskConfig::default(); // 25% of 10000 = 2500 USD margin
        assert!(check(
            &limits,
            &order(Side::Buy, dec!(25)),
            &view(TradingMode::Normal, dec!(0))
        )
        .is_ok());
        let refused = check(
            &limits,
            &order(Side::Buy, dec!(26)),
            &view(TradingMode::Normal, dec!(0)),
        );
        assert!(
            matches!(refused, Err(Refusal::PositionLimit { margin, limit, .. }) if margin == dec!(2600) && limit == dec!(2500))
        );
        // With 2x leverage the same notional needs half the margin.
        let mut o = order(Side::Buy, dec!(50));
        o.leverage = 2;
        assert!(check(&limits, &o, &view(TradingMode::Normal, dec!(0))).is_ok());
    }

    #[test]
    fn modes_restrict_new_risk_but_not_reductions() {
        let limits = RiskConfig::default();
        let sell_part = order(Side::Sell, dec!(5));
        assert!(check(&limits, &sell_part, &view(TradingMode::Reducing, dec!(10))).is_ok());
        assert!(matches!(
            check(
                &limits,
                &order(Side::Buy, dec!(1)),
                &view(TradingMode::Reducing, dec!(10))
            ),
            Err(Refusal::ReducingOnly { .. })
        ));
        // Selling more than the long would flip it: not reducing.
        assert!(matches!(
            check(
                &limits,
                &order(Side::Sell, dec!(11)),
                &view(TradingMode::Reducing, dec!(10))
            ),
            Err(Refusal::ReducingOnly { .. })
        ));
        assert!(matches!(
            check(&limits, &sell_part, &view(TradingMode::Halted, dec!(10))),
            Err(Refusal::Halted { .. })
        ));
    }

    #[test]
    fn only_reducing_emergency_closes_pass_a_halt() {
        let limits = RiskConfig::default();
        let mut close = order(Side::Sell, dec!(10));
        close.emergency_close = true;
        assert!(check(&limits, &close, &view(TradingMode::Halted, dec!(10))).is_ok());
        let mut flip = order(Side::Sell, dec!(11));
        flip.emergency_close = true;
        assert!(matches!(
            check(&limits, &flip, &view(TradingMode::Halted, dec!(10))),
            Err(Refusal::Halted { .. })
        ));
        assert!(matches!(
            check(
                &limits,
                &order(Side::Sell, dec!(10)),
                &view(TradingMode::Halted, dec!(10))
            ),
            Err(Refusal::Halted { .. })
        ));
    }

    #[test]
    fn leverage_and_min_balance() {
        let limits = RiskConfig::default();
        let mut o = order(Side::Buy, dec!(1));
        o.leverage = 6;
        assert_eq!(
            check(&limits, &o, &view(TradingMode::Normal, dec!(0))),
            Err(Refusal::Leverage {
                requested: 6,
                max: 5
            })
        );
        let mut poor = view(TradingMode::Normal, dec!(0));
        poor.account_value = dec!(50);
        assert!(matches!(
            check(&limits, &order(Side::Buy, dec!(0.1)), &poor),
            Err(Refusal::MinBalance { .. })
        ));
        // A poor account may still close what it has.
        poor.position_size = dec!(1);
        assert!(check(&limits, &order(Side::Sell, dec!(1)), &poor).is_ok());
    }

    #[test]
    fn reduce_only_needs_a_position_on_the_other_side() {
        let limits = RiskConfig::default();
        let mut o = order(Side::Sell, dec!(1));
        o.reduce_only = true;
        assert!(matches!(
            check(&limits, &o, &view(TradingMode::Normal, dec!(0))),
            Err(Refusal::NothingToReduce { .. })
        ));
        assert!(matches!(
            check(&limits, &o, &view(TradingMode::Normal, dec!(-2))),
            Err(Refusal::NothingToReduce { .. })
        ));
        assert!(check(&limits, &o, &view(TradingMode::Normal, dec!(2))).is_ok());
    }

    #[test]
    fn a_mode_record_of_the_old_shape_loads_with_a_cause_no_one_lifts() {
        // Written before `cause` existed: the risk agent's own reduction, a halt by the
        // kill switch, and a record from before `kill_switch` existed too.
        let risk: ModeState = serde_json::from_str(
            r#"{"mode":"reducing","reason":"risk: loss 12% > 10%","since_ms":5,"kill_switch":false}"#,
        )
        .unwrap();
        assert_eq!(
            (risk.mode, risk.cause, risk.since_ms),
            (TradingMode::Reducing, ModeCause::Unattributed, 5)
        );
        let halted: ModeState = serde_json::from_str(
            r#"{"mode":"halted","reason":"manual stop","since_ms":7,"kill_switch":true}"#,
        )
        .unwrap();
        assert_eq!(halted.cause, ModeCause::KillSwitch);
        assert!(halted.kill_switch);
        let oldest: ModeState =
            serde_json::from_str(r#"{"mode":"normal","reason":"","since_ms":0}"#).unwrap();
        assert_eq!(oldest, ModeState::default());
        // The new shape round-trips with its cause.
        let now = ModeState {
            mode: TradingMode::Reducing,
            cause: ModeCause::RiskAgent,
            reason: "risk: loss".into(),
            since_ms: 9,
            kill_switch: false,
        };
        let json = serde_json::to_string(&now).unwrap();
        assert!(json.contains(r#""cause":"risk_agent""#), "{json}");
        assert_eq!(serde_json::from_str::<ModeState>(&json).unwrap(), now);
    }

    #[test]
    fn only_an_order_the_gate_admits_is_approved_and_it_is_the_order_judged() {
        let limits = RiskConfig::default();
        let request = |side, size, reduce_only| OrderRequest {
            client_id: crate::exchanges::ClientOrderId::generate(),
            symbol: "BTC".into(),
            side,
            size,
            order_type: crate::exchanges::OrderType::Market {
                max_slippage: dec!(0.01),
            },
            reduce_only,
            valid_until_ms: None,
        };
        let judgement = Judgement {
            price: dec!(101),
            reference_price: dec!(100),
            leverage: 1,
            emergency_close: false,
        };
        let buy = request(Side::Buy, dec!(5), false);
        let approved = approve(
            &limits,
            buy.clone(),
            judgement,
            &view(TradingMode::Normal, dec!(0)),
        )
        .unwrap();
        assert_eq!(approved.order(), &buy);
        assert_eq!(approved.reference_price(), dec!(100));
        // Side, size and reduce-only are the request's: a reduce-only sell with no long
        // is judged as such.
        assert!(matches!(
            approve(
                &limits,
                request(Side::Sell, dec!(1), true),
                judgement,
                &view(TradingMode::Normal, dec!(0))
            ),
            Err(Refusal::NothingToReduce { .. })
        ));
        assert!(matches!(
            approve(&limits, buy, judgement, &view(TradingMode::Halted, dec!(0))),
            Err(Refusal::Halted { .. })
        ));
        // The notional is judged at the judgement's price: 25 × 101 = 2525 > 2500.
        assert!(matches!(
            approve(
                &limits,
                request(Side::Buy, dec!(25), false),
                judgement,
                &view(TradingMode::Normal, dec!(0))
            ),
            Err(Refusal::PositionLimit { .. })
        ));
    }

    #[test]
    fn validation_names_keys() {
        let c = RiskConfig {
            max_position_pct: dec!(150),
            max_leverage: 0,
            window: Duration::from_secs(1),
            ..RiskConfig::default()
        };
        let mut issues = Issues::default();
        c.validate("risk", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "risk.max_position_pct",
                "risk.max_leverage",
                "risk.window",
                "risk.check_interval"
            ]
        );
    }
}
