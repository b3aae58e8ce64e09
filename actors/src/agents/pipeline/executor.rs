//! The executor stage: a validated trade plan becomes orders, all through the gateway
//! (risk gate, ledger): the entry, then the stop-loss and the take-profit as reduce-only
//! trigger orders for the size that filled (see "Orders" in the [module docs](super)).
//!
//! Owns: sizing the entry from the plan's share of equity, the bracket, and what to do
//! when a leg fails: a stop-loss that cannot be placed closes the new position at once;
//! a take-profit that cannot be placed leaves the position under its stop (and says so).
//! Never: sends an order again after an unknown outcome (the gateway settles it by a
//! read), or decides on error text (the gateway's error types decide).

use rust_decimal::Decimal;

use super::plan::{Entry, TradePlan};
use super::{PipelineConfig, PipelineDeps};
use crate::agents::{gateway_call, GatewayCallError};
use crate::exchanges::gateway::{
    Amount, ClosePosition, OrderIntent, OrderReport, PlaceOrder, Pricing,
};
use crate::exchanges::{Side, TimeInForce, TriggerKind};

/// What the executor did.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The run's outcome: `entered_long`, `entry_refused`, `stop_failed_closed`, ...
    pub outcome: String,
    /// Every order sent (entry, stop-loss, take-profit, or the emergency close).
    pub orders: Vec<OrderReport>,
    /// What went wrong, if anything did.
    pub error: Option<String>,
    /// Whether the stage failed (an order that should have been placed was not).
    pub failed: bool,
}

/// `<what>_refused` (the risk gate refused), `<what>_unknown` (it may have reached the
/// venue; the gateway settles it), `<what>_failed` (anything else): decided on the type.
fn failure_label(what: &str, e: &GatewayCallError) -> String {
    let suffix = if e.refusal().is_some() {
        "refused"
    } else if e.order_outcome_unknown() {
        "unknown"
    } else {
        "failed"
    };
    format!("{what}_{suffix}")
}

fn exit_leg(
    config: &PipelineConfig,
    symbol: &str,
    exit: Side,
    size: Decimal,
    trigger_price: Decimal,
    kind: TriggerKind,
) -> PlaceOrder {
    PlaceOrder {
        intent: OrderIntent {
            venue: config.venue.clone(),
            symbol: symbol.to_string(),
            side: exit,
            amount: Amount::Base(size),
            pricing: Pricing::Trigger {
                trigger_price,
                kind,
                limit_price: None,
            },
            reduce_only: true,
            origin: format!("agent:{}", config.name),
        },
    }
}

/// Sends `plan` for `symbol` on a side (`Buy`: long).
pub async fn execute(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
    side: Side,
    plan: &TradePlan,
    account_value: Decimal,
) -> Execution {
    let direction = if side == Side::Buy { "long" } else { "short" };
    let mut done = Execution {
        outcome: String::new(),
        orders: Vec::new(),
        error: None,
        failed: false,
    };
    // The risk window's baseline is taken before the window's first order, as for a
    // trading agent's entry.
    if let Err(e) = deps.baselines.ensure(&config.venue, account_value).await {
        done.outcome = "entry_failed".into();
        done.error = Some(format!(
            "cannot record the risk baseline before the entry: {e}"
        ));
        done.failed = true;
        return done;
    }
    let usd = (account_value * plan.size_pct / Decimal::from(100)).round_dp(2);
    let pricing = match plan.entry {
        Entry::Market => Pricing::Market,
        // Immediate-or-cancel: an entry never rests unprotected (module docs).
        Entry::Limit { price } => Pricing::Limit {
            price,
            tif: TimeInForce::Ioc,
        },
    };
    let entry = PlaceOrder {
        intent: OrderIntent {
            venue: config.venue.clone(),
            symbol: symbol.to_string(),
            side,
            amount: Amount::Usd(usd),
            pricing,
            reduce_only: false,
            origin: format!("agent:{}", config.name),
        },
    };
    let report = match gateway_call(&deps.gateway, entry).await {
        Ok(r) => r,
        Err(e) => {
            done.outcome = failure_label("entry", &e);
            done.error = Some(format!("entry {usd} USD {direction}: {e}"));
            done.failed = true;
            return done;
        }
    };
    let filled = report.filled_size;
    done.orders.push(report);
    if filled <= Decimal::ZERO {
        done.outcome = "entry_not_filled".into();
        done.error = Some(format!(
            "the {direction} entry did not fill at once ({}); nothing to protect",
            done.orders[0].status
        ));
        return done;
    }
    let exit = side.opposite();
    let stop = exit_leg(
        config,
        symbol,
        exit,
        filled,
        plan.stop_loss,
        TriggerKind::StopLoss,
    );
    let stop_id = match gateway_call(&deps.gateway, stop).await {
        Ok(r) => {
            let id = r.client_id.clone();
            done.orders.push(r);
            id
        }
        Err(e) if e.order_outcome_unknown() => {
            // The stop may be working at the venue: closing now could leave it to open
            // a position the other way. The gateway settles it by a read (the ledger and
            // `orrery orders` show it).
            done.outcome = "stop_unknown".into();
            done.error = Some(format!("stop-loss at {}: {e}", plan.stop_loss));
            done.failed = true;
            return done;
        }
        Err(e) => {
            let why = format!("stop-loss at {}: {e}", plan.stop_loss);
            tracing::warn!(agent = %config.name, symbol, error = %why, "pipeline: the stop-loss could not be placed; closing the new position");
            let close = ClosePosition {
                venue: config.venue.clone(),
                symbol: symbol.to_string(),
                origin: format!("agent:{}", config.name),
            };
            match gateway_call(&deps.gateway, close).await {
                Ok(orders) => {
                    done.orders.extend(orders);
                    done.outcome = "stop_failed_closed".into();
                    done.error = Some(why);
                }
                Err(close_err) => {
                    done.outcome = failure_label("stop_failed_close", &close_err);
                    done.error = Some(format!(
                        "{why}; closing the position failed too: {close_err}"
                    ));
                }
            }
            done.failed = true;
            return done;
        }
    };
    let target = exit_leg(
        config,
        symbol,
        exit,
        filled,
        plan.take_profit,
        TriggerKind::TakeProfit,
    );
    let mut legs = vec![stop_id];
    match gateway_call(&deps.gateway, target).await {
        Ok(r) => {
            legs.push(r.client_id.clone());
            done.orders.push(r);
            done.outcome = format!("entered_{direction}");
        }
        Err(e) => {
            // The stop protects the position; only the target is missing.
            done.outcome = format!("entered_{direction}_{}", failure_label("take_profit", &e));
            done.error = Some(format!("take-profit at {}: {e}", plan.take_profit));
            done.failed = true;
        }
    }
    keep_legs(config, deps, symbol, legs);
    done
}

/// Remembers the exit legs working for the position ([`super::bracket`]); a store that
/// cannot take it costs the later clean-up, never the orders (logged).
fn keep_legs(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
    legs: Vec<crate::exchanges::ClientOrderId>,
) {
    if let Err(e) = super::bracket::remember(config, deps, symbol, legs) {
        tracing::error!(agent = %config.name, symbol, error = %e, "pipeline: cannot remember the exit legs; cancel the one left when the position closes (orrery cancel)");
    }
}
