//! One run of a strategy agent (see the module docs of `super` for what it does and why):
//! candles → warm-up → per new bar the protective exit, the strategy's actions, the
//! optional model approval, the orders under derived client ids, and the cursor in sled.
//!
//! Owns: the order of those steps, sizing an intent in money, what is written before and
//! after each send, the decision's log line, journal record and metric. Never: decides on
//! error text whether an order may have been sent (the gateway's error types say), or
//! sends an order the approval model did not approve.

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;

use super::state::{order_client_id, ExitKind, OwnOrder, PendingBar, Protection, StrategyCursor};
use super::{names, StrategyAgentConfig, StrategyDeps};
use crate::agents::journal::{Abstention, DecisionRecord, MemberAnswer};
use crate::agents::{gateway_call, GatewayCallError};
use crate::clock::Millis;
use crate::exchanges::gateway::{
    Amount, GetAccount, GetCandles, GetOrder, GetPosition, OrderIntent, OrderReport,
    PlaceKeyedOrder, Pricing,
};
use crate::exchanges::{Candle, ClientOrderId, Side};
use crate::models::{ModelRequest, Purpose};
use crate::signals::store::{SignalFilter, MAX_LIMIT};
use crate::signals::Signal;
use crate::strategies::api::{self, Action, Actions, Bar, PositionView, Size};

/// System prompt of the approval request.
pub const APPROVAL_SYSTEM: &str = "You review the signals of a rule-based trading strategy before they are traded. Answer with exactly one word on the first line, APPROVE or VETO, then one sentence with your reason. Anything else counts as a veto.";

/// Index of the protective exit among a bar's decisions (strategy actions count from 0).
const EXIT_INDEX: u32 = u32::MAX;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Bars fed live (acted on).
    pub bars: usize,
    /// (bar open time, action label, outcome) of each decision.
    pub decisions: Vec<(Millis, String, String)>,
    /// What failed, one line each: the run's error.
    pub failures: Vec<String>,
    /// Orders the gateway placed (or had placed before a restart) for the bar being acted
    /// on, taken into the cursor after it.
    placed: Vec<OrderReport>,
}

fn bar_of(c: &Candle) -> Bar {
    let f = |d: Decimal| d.to_f64().unwrap_or(f64::NAN);
    Bar {
        time_ms: c.open_time_ms,
        open: f(c.open),
        high: f(c.high),
        low: f(c.low),
        close: f(c.close),
        volume: f(c.volume),
    }
}

/// The position as the gateway observes it: signed size and entry price.
async fn position(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
) -> Result<(Decimal, Option<Decimal>), String> {
    let p = gateway_call(
        &deps.gateway,
        GetPosition {
            venue: config.venue.clone(),
            symbol: config.symbol.clone(),
        },
    )
    .await
    .map_err(|e| format!("position of {} on {}: {e}", config.symbol, config.venue))?;
    Ok(p.map_or((Decimal::ZERO, None), |p| (p.size, Some(p.entry_price))))
}

fn view(size: Decimal, entry: Option<Decimal>) -> PositionView {
    PositionView {
        size: size.to_f64().unwrap_or(0.0),
        entry_price: entry.and_then(|e| e.to_f64()),
    }
}

/// One run. `Err` only when the agent's own state cannot be read or written, or the
/// strategy cannot be built; a failed read of the venue ends the run with a failure.
pub async fn run_once(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
) -> Result<RunReport, String> {
    let mut report = RunReport::default();
    let mut strategy = config
        .source()
        .build()
        .map_err(|e| format!("strategy of agent {}: {e}", config.name))?;
    let mut cursor = deps
        .state
        .get()
        .map_err(|e| format!("strategy state in the data dir: {e}"))?;
    let now = deps.clock.now_ms();
    let tf = config.timeframe.millis();
    let lookback = config.lookback(strategy.warmup_bars());
    let candles = match gateway_call(
        &deps.gateway,
        GetCandles {
            venue: config.venue.clone(),
            symbol: config.symbol.clone(),
            timeframe: config.timeframe,
            lookback: lookback + 1,
        },
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            report.failures.push(format!(
                "candles of {} on {}: {e}",
                config.symbol, config.venue
            ));
            return Ok(report);
        }
    };
    // Only closed bars: the one still forming is fed once it has closed.
    let closed: Vec<&Candle> = candles
        .iter()
        .filter(|c| c.open_time_ms + tf <= now)
        .collect();
    settle_orders(deps, &mut cursor, &mut report).await;
    let signals = live_signals(config, deps, now);
    let mut next_signal = 0;
    let mut actions = Actions::new();
    let first_run = cursor.last_fed_ms.is_none();
    let new_from = closed
        .iter()
        .position(|c| cursor.last_fed_ms.is_none_or(|l| c.open_time_ms > l))
        .unwrap_or(closed.len());
    // The first run only warms up: the agent acts on bars that close after it started.
    let act_from = if first_run {
        closed.len()
    } else {
        new_from.max(closed.len().saturating_sub(config.catch_up_bars))
    };
    for (i, c) in closed.iter().enumerate() {
        let bar = bar_of(c);
        // What reached the strategy between the previous bar and this one's close, in
        // the backtester's order: the fills of the previous bar's orders, then signals.
        if let Some(prev) = i.checked_sub(1).map(|p| closed[p].open_time_ms) {
            for o in cursor.orders.iter().filter(|o| o.bar_ms == prev) {
                if let Some(fill) = fill_view(o, c.open_time_ms) {
                    strategy.on_fill(&fill);
                }
            }
        }
        while let Some(s) = signals
            .get(next_signal)
            .filter(|s| s.time_ms < c.open_time_ms + tf)
        {
            strategy.on_signal(s);
            next_signal += 1;
        }
        if i < act_from {
            strategy.on_bar(&bar, &PositionView::FLAT, &mut actions);
            actions.clear();
            if !first_run && i >= new_from {
                metrics::counter!(names::BARS, "agent" => config.name.clone(), "kind" => "skipped_stale").increment(1);
                tracing::warn!(agent = %config.name, bar = c.open_time_ms, "strategy bar skipped_stale: closed while the engine was down, beyond catch_up_bars; fed as warm-up, not acted on");
                cursor.last_fed_ms = Some(c.open_time_ms);
            }
            continue;
        }
        let (size, entry) = match position(config, deps).await {
            Ok(p) => p,
            Err(e) => {
                report.failures.push(e);
                break;
            }
        };
        strategy.on_bar(&bar, &view(size, entry), &mut actions);
        let fresh: Vec<Action> = actions.drain().collect();
        tracing::info!(agent = %config.name, bar = c.open_time_ms, close = %c.close, position = %size, actions = fresh.len(), "strategy bar fed");
        let pending = match cursor.pending.clone() {
            // A bar decided before a crash: its decisions stand (same ids, same orders).
            Some(p) if p.bar_ms == c.open_time_ms => p,
            _ => {
                let exit = cursor
                    .protection
                    .as_ref()
                    .filter(|p| size.is_sign_positive() == (p.side == Side::Buy) && !size.is_zero())
                    .and_then(|p| p.touched(c.high, c.low));
                PendingBar {
                    bar_ms: c.open_time_ms,
                    exit,
                    actions: fresh,
                }
            }
        };
        cursor.pending = Some(pending.clone());
        deps.state
            .put(&cursor)
            .await
            .map_err(|e| format!("strategy state in the data dir: {e}"))?;
        let acted = act_on_bar(config, deps, c, &pending, &mut cursor, &mut report).await;
        for placed in std::mem::take(&mut report.placed) {
            match cursor
                .orders
                .iter_mut()
                .find(|o| o.client_id == placed.client_id)
            {
                Some(known) => known.update(&placed),
                None => cursor.orders.push(OwnOrder::of(c.open_time_ms, &placed)),
            }
        }
        match acted {
            Ok(()) => {}
            Err(stop) => {
                // Unknown outcome or an unreadable venue: the bar stays pending and the
                // next run continues it under the same ids.
                report.failures.push(stop);
                deps.state
                    .put(&cursor)
                    .await
                    .map_err(|e| format!("strategy state in the data dir: {e}"))?;
                return Ok(report);
            }
        }
        cursor.pending = None;
        cursor.last_fed_ms = Some(c.open_time_ms);
        deps.state
            .put(&cursor)
            .await
            .map_err(|e| format!("strategy state in the data dir: {e}"))?;
        report.bars += 1;
        metrics::counter!(names::BARS, "agent" => config.name.clone(), "kind" => "live")
            .increment(1);
    }
    if first_run {
        if let Some(last) = closed.last() {
            cursor.last_fed_ms = Some(last.open_time_ms);
            tracing::info!(agent = %config.name, bars = closed.len(), last_bar = last.open_time_ms, "strategy warmed up; acting on bars that close from now on");
        }
    }
    // Orders of bars the next run no longer feeds are of no use to it.
    if let Some(first) = closed.first() {
        cursor.orders.retain(|o| o.bar_ms >= first.open_time_ms);
    }
    if let Some(l) = cursor.last_fed_ms {
        metrics::gauge!(names::LAST_BAR, "agent" => config.name.clone()).set(l as f64 / 1000.0);
    }
    deps.state
        .put(&cursor)
        .await
        .map_err(|e| format!("strategy state in the data dir: {e}"))?;
    Ok(report)
}

/// Asks the ledger for the fills of the agent's unsettled orders (a live venue may fill
/// a market order after answering it). A failed lookup is the run's failure; the order
/// is asked again next run.
async fn settle_orders(deps: &StrategyDeps, cursor: &mut StrategyCursor, report: &mut RunReport) {
    for o in cursor.orders.iter_mut().filter(|o| !o.settled) {
        match already_sent(deps, &o.client_id).await {
            Ok(Some(order)) => o.update(&order),
            Ok(None) => o.settled = true,
            Err(e) => report.failures.push(e),
        }
    }
}

/// The fill of `o` as the strategy sees it, at `time_ms` (the open of the bar after its
/// own, where the backtester fills a market order); `None` before anything filled.
fn fill_view(o: &OwnOrder, time_ms: Millis) -> Option<api::FillView> {
    let units = o.filled.to_f64().filter(|u| *u > 0.0)?;
    Some(api::FillView {
        time_ms,
        side: match o.side {
            Side::Buy => api::Side::Buy,
            Side::Sell => api::Side::Sell,
        },
        units,
        price: o.avg_price.and_then(|p| p.to_f64())?,
    })
}

/// The signals about the agent's symbol still alive on the bus's disk, oldest first: a
/// rebuilt strategy hears each again before the first bar that closed after it was
/// published, so a signal counts as long as its TTL. Unreadable: none (and a warning).
fn live_signals(config: &StrategyAgentConfig, deps: &StrategyDeps, now: Millis) -> Vec<Signal> {
    let Some(store) = &deps.signals else {
        return Vec::new();
    };
    let filter = SignalFilter {
        symbol: Some(config.symbol.to_ascii_uppercase()),
        limit: MAX_LIMIT,
        ..SignalFilter::default()
    };
    match store.list(&filter, now) {
        Ok(mut signals) => {
            signals.reverse();
            signals
        }
        Err(e) => {
            tracing::warn!(agent = %config.name, error = %e, "signals unreadable; the strategy runs without them this run");
            Vec::new()
        }
    }
}

/// One decision's record, line and metric.
struct Decision<'a> {
    config: &'a StrategyAgentConfig,
    bar: &'a Candle,
    action: &'static str,
    outcome: &'static str,
    why: String,
    order: Option<OrderReport>,
    error: Option<String>,
    record: Option<DecisionRecord>,
}

fn finish(deps: &StrategyDeps, report: &mut RunReport, d: Decision<'_>) {
    let c = d.config;
    let mut record = d.record.unwrap_or_else(|| {
        DecisionRecord::begin(deps.clock.now_ms(), &c.name, &c.venue, &c.symbol, "")
    });
    record.action = Some(d.action.to_ascii_uppercase());
    record.reason = Some(format!(
        "{} bar {} (o {} h {} l {} c {}): {}",
        c.source().label(),
        d.bar.open_time_ms,
        d.bar.open,
        d.bar.high,
        d.bar.low,
        d.bar.close,
        d.why
    ));
    record.outcome = d.outcome.to_string();
    if record.error.is_none() {
        record.error = d.error.clone();
    }
    record.orders = d.order.iter().cloned().collect();
    tracing::info!(
        agent = %c.name,
        venue = %c.venue,
        symbol = %c.symbol,
        bar = d.bar.open_time_ms,
        action = d.action,
        outcome = d.outcome,
        why = %d.why,
        client_id = d.order.as_ref().map(|o| o.client_id.to_string()).unwrap_or_default(),
        error = d.error.as_deref().unwrap_or(""),
        "strategy decision"
    );
    metrics::counter!(names::DECISIONS, "agent" => c.name.clone(), "action" => d.action, "outcome" => d.outcome)
        .increment(1);
    report.decisions.push((
        d.bar.open_time_ms,
        d.action.to_string(),
        d.outcome.to_string(),
    ));
    // The journal writer flushes in groups; a lost record costs the history, not money.
    drop(deps.journal.append(record));
}

/// The protective exit and the strategy's actions of one bar, in order. `Err`: stop the
/// run here (an outcome is unknown, or the venue could not be read).
async fn act_on_bar(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
    bar: &Candle,
    pending: &PendingBar,
    cursor: &mut StrategyCursor,
    report: &mut RunReport,
) -> Result<(), String> {
    if let Some(exit) = pending.exit {
        let id = order_client_id(
            &config.name,
            &config.venue,
            &config.symbol,
            bar.open_time_ms,
            EXIT_INDEX,
        );
        let label = exit.as_str();
        let level = cursor.protection.as_ref().and_then(|p| match exit {
            ExitKind::StopLoss => p.stop_loss,
            ExitKind::TakeProfit => p.take_profit,
        });
        close(
            config,
            deps,
            bar,
            id,
            label,
            format!(
                "bar reached the {label} at {}",
                level.map(|l| l.to_string()).unwrap_or_default()
            ),
            report,
        )
        .await?;
        cursor.protection = None;
    }
    for (i, action) in pending.actions.iter().enumerate() {
        let id = order_client_id(
            &config.name,
            &config.venue,
            &config.symbol,
            bar.open_time_ms,
            i as u32,
        );
        match action {
            Action::ClosePosition => {
                close(
                    config,
                    deps,
                    bar,
                    id,
                    "close",
                    "the strategy closes the position".into(),
                    report,
                )
                .await?;
                cursor.protection = None;
            }
            Action::Order(intent) => {
                order(config, deps, bar, id, intent, cursor, report).await?;
            }
        }
    }
    Ok(())
}

/// What the ledger holds under `id`: a decision taken before a crash.
async fn already_sent(
    deps: &StrategyDeps,
    id: &ClientOrderId,
) -> Result<Option<OrderReport>, String> {
    gateway_call(
        &deps.gateway,
        GetOrder {
            client_id: id.clone(),
        },
    )
    .await
    .map_err(|e| format!("ledger lookup of {id}: {e}"))
}

/// Records a decision the ledger already holds under `id` (taken and sent before a crash)
/// as placed, so it is never sent again; `false` when the ledger has no such order.
async fn sent_before_restart(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
    bar: &Candle,
    id: &ClientOrderId,
    action: &'static str,
    why: &str,
    report: &mut RunReport,
) -> Result<bool, String> {
    let Some(done) = already_sent(deps, id).await? else {
        return Ok(false);
    };
    report.placed.push(done.clone());
    finish(
        deps,
        report,
        Decision {
            config,
            bar,
            action,
            outcome: "placed",
            why: format!("{why} (sent before a restart)"),
            order: Some(done),
            error: None,
            record: None,
        },
    );
    Ok(true)
}

/// Sends `intent` under `id` and records the outcome; `Err` when it may have been sent
/// but its outcome is not known.
#[allow(clippy::too_many_arguments)]
async fn send(
    config: &StrategyDeps,
    agent: &StrategyAgentConfig,
    bar: &Candle,
    id: ClientOrderId,
    intent: OrderIntent,
    action: &'static str,
    why: String,
    record: Option<DecisionRecord>,
    report: &mut RunReport,
) -> Result<Option<OrderReport>, String> {
    let deps = config;
    let sent = gateway_call(
        &deps.gateway,
        PlaceKeyedOrder {
            intent,
            client_id: id.clone(),
        },
    )
    .await;
    match sent {
        Ok(order) => {
            report.placed.push(order.clone());
            finish(
                deps,
                report,
                Decision {
                    config: agent,
                    bar,
                    action,
                    outcome: "placed",
                    why,
                    order: Some(order.clone()),
                    error: None,
                    record,
                },
            );
            Ok(Some(order))
        }
        Err(e) if e.order_outcome_unknown() => {
            let text = e.to_string();
            finish(
                deps,
                report,
                Decision {
                    config: agent,
                    bar,
                    action,
                    outcome: "unknown",
                    why,
                    order: None,
                    error: Some(text.clone()),
                    record,
                },
            );
            Err(format!("order {id} of bar {}: outcome unknown ({text}); the gateway settles it by client id, the next run continues", bar.open_time_ms))
        }
        Err(e) => {
            let outcome = if e.refusal().is_some() {
                "refused"
            } else {
                "failed"
            };
            // A refusal is recorded in the ledger; take its entry when there is one.
            let held = already_sent(deps, &id).await.ok().flatten();
            finish(
                deps,
                report,
                Decision {
                    config: agent,
                    bar,
                    action,
                    outcome,
                    why,
                    order: held,
                    error: Some(e.to_string()),
                    record,
                },
            );
            if matches!(e, GatewayCallError::Unreachable(_)) {
                return Err(format!("gateway unreachable: {e}"));
            }
            Ok(None)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn close(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
    bar: &Candle,
    id: ClientOrderId,
    action: &'static str,
    why: String,
    report: &mut RunReport,
) -> Result<(), String> {
    if sent_before_restart(config, deps, bar, &id, action, &why, report).await? {
        return Ok(());
    }
    let (size, _) = position(config, deps).await?;
    if size.is_zero() {
        finish(
            deps,
            report,
            Decision {
                config,
                bar,
                action,
                outcome: "nothing_to_close",
                why,
                order: None,
                error: None,
                record: None,
            },
        );
        return Ok(());
    }
    let intent = OrderIntent {
        venue: config.venue.clone(),
        symbol: config.symbol.clone(),
        side: if size > Decimal::ZERO {
            Side::Sell
        } else {
            Side::Buy
        },
        amount: Amount::Base(size.abs()),
        pricing: Pricing::Market,
        reduce_only: true,
        origin: format!("agent:{}", config.name),
    };
    send(deps, config, bar, id, intent, action, why, None, report).await?;
    Ok(())
}

/// The base units an intent asks for at `price`, capped by `max_position_usd` given the
/// signed position `pos`. Zero when the cap leaves nothing.
pub fn sized_units(
    config: &StrategyAgentConfig,
    intent: &api::OrderIntent,
    pos: Decimal,
    equity: Decimal,
    price: Decimal,
) -> Decimal {
    if price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let wanted = match intent.size {
        Size::Equity(f) => {
            let f = Decimal::from_f64(f).unwrap_or(Decimal::ZERO);
            f * config.equity_fraction * equity.max(Decimal::ZERO) / price
        }
        Size::Units(u) => Decimal::from_f64(u).unwrap_or(Decimal::ZERO),
    };
    let sign = match intent.side {
        api::Side::Buy => Decimal::ONE,
        api::Side::Sell => -Decimal::ONE,
    };
    let after = pos + sign * wanted;
    let cap = config.max_position_usd / price;
    if after.abs() <= cap {
        return wanted.max(Decimal::ZERO);
    }
    // Trade only as far as the cap on the side the order ends on.
    let target = if after > Decimal::ZERO { cap } else { -cap };
    let allowed = (target - pos) * sign;
    allowed.max(Decimal::ZERO)
}

async fn order(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
    bar: &Candle,
    id: ClientOrderId,
    intent: &api::OrderIntent,
    cursor: &mut StrategyCursor,
    report: &mut RunReport,
) -> Result<(), String> {
    let side = match intent.side {
        api::Side::Buy => Side::Buy,
        api::Side::Sell => Side::Sell,
    };
    let action = match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    };
    if sent_before_restart(
        config,
        deps,
        bar,
        &id,
        action,
        "the strategy's order",
        report,
    )
    .await?
    {
        return Ok(());
    }
    let (pos, entry) = position(config, deps).await?;
    let account = gateway_call(
        &deps.gateway,
        GetAccount {
            venue: config.venue.clone(),
        },
    )
    .await
    .map_err(|e| format!("account of {}: {e}", config.venue))?;
    let price = bar.close;
    let units = sized_units(config, intent, pos, account.account_value, price);
    let why = format!(
        "{:?} at {price}: {} units (position {pos}, equity {}, equity_fraction {}, max_position_usd {})",
        intent.size,
        units.round_dp(8).normalize(),
        account.account_value.round_dp(2),
        config.equity_fraction,
        config.max_position_usd
    );
    if units <= Decimal::ZERO {
        finish(
            deps,
            report,
            Decision {
                config,
                bar,
                action,
                outcome: "capped",
                why,
                order: None,
                error: None,
                record: None,
            },
        );
        return Ok(());
    }
    let mut record = None;
    if let Some(model) = &config.approve_model {
        let (verdict, rec) = approve(config, deps, bar, action, units, pos, entry, model).await;
        match verdict {
            Ok(reason) => {
                record = Some(rec);
                tracing::info!(agent = %config.name, bar = bar.open_time_ms, action, model = %model, reason = %reason, "strategy signal approved");
            }
            Err(reason) => {
                finish(
                    deps,
                    report,
                    Decision {
                        config,
                        bar,
                        action,
                        outcome: "vetoed",
                        why: format!("{why}; vetoed: {reason}"),
                        order: None,
                        error: None,
                        record: Some(rec),
                    },
                );
                return Ok(());
            }
        }
    }
    let reduces =
        !pos.is_zero() && (pos > Decimal::ZERO) != (side == Side::Buy) && units <= pos.abs();
    let order_intent = OrderIntent {
        venue: config.venue.clone(),
        symbol: config.symbol.clone(),
        side,
        amount: Amount::Base(units),
        pricing: Pricing::Market,
        reduce_only: reduces,
        origin: format!("agent:{}", config.name),
    };
    let placed = send(
        deps,
        config,
        bar,
        id,
        order_intent,
        action,
        why,
        record,
        report,
    )
    .await?;
    if placed.is_some_and(|o| o.filled_size > Decimal::ZERO) {
        let (after, _) = position(config, deps).await?;
        let level = |v: Option<f64>| v.and_then(Decimal::from_f64);
        cursor.protection = if after.is_zero() {
            None
        } else if intent.stop_loss.is_some() || intent.take_profit.is_some() {
            Some(Protection {
                side: if after > Decimal::ZERO {
                    Side::Buy
                } else {
                    Side::Sell
                },
                stop_loss: level(intent.stop_loss),
                take_profit: level(intent.take_profit),
                bar_ms: bar.open_time_ms,
            })
        } else {
            // Levels protect the position their intent opened; one that flipped it drops them.
            cursor
                .protection
                .take()
                .filter(|p| (p.side == Side::Buy) == (after > Decimal::ZERO))
        };
    }
    Ok(())
}

/// The approval prompt of one signal.
pub fn approval_prompt(
    config: &StrategyAgentConfig,
    bar: &Candle,
    action: &str,
    units: Decimal,
    pos: Decimal,
    entry: Option<Decimal>,
) -> String {
    format!(
        "Strategy: {}\nVenue: {}\nSymbol: {}\nTimeframe: {}\nBar closed (open time {} ms): open {} high {} low {} close {} volume {}\nPosition: {} units{}\nSignal: {} {} units at market\n\nAPPROVE or VETO?",
        config.source().label(),
        config.venue,
        config.symbol,
        config.timeframe,
        bar.open_time_ms,
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
        pos.normalize(),
        entry.map(|e| format!(" (entry {})", e.normalize())).unwrap_or_default(),
        action.to_ascii_uppercase(),
        units.round_dp(8).normalize(),
    )
}

/// The verdict of an approval answer: `Ok(reason)` for APPROVE, `Err(reason)` otherwise.
pub fn parse_verdict(text: &str) -> Result<String, String> {
    let text = text.trim();
    let word: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    let reason = text[word.len()..]
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let reason: String = reason.chars().take(300).collect();
    match word.as_str() {
        "APPROVE" | "APPROVED" => Ok(reason),
        "VETO" | "VETOED" => Err(if reason.is_empty() {
            "no reason given".into()
        } else {
            reason
        }),
        _ => Err(format!(
            "the answer is neither APPROVE nor VETO (fail closed): {}",
            text.chars().take(120).collect::<String>()
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn approve(
    config: &StrategyAgentConfig,
    deps: &StrategyDeps,
    bar: &Candle,
    action: &str,
    units: Decimal,
    pos: Decimal,
    entry: Option<Decimal>,
    model: &str,
) -> (Result<String, String>, DecisionRecord) {
    let mut record = DecisionRecord::begin(
        deps.clock.now_ms(),
        &config.name,
        &config.venue,
        &config.symbol,
        model,
    );
    let prompt = approval_prompt(config, bar, action, units, pos, entry);
    record.set_prompt(APPROVAL_SYSTEM, &prompt);
    let mut request = ModelRequest::new(model.to_string(), Purpose::Freeform, prompt);
    request.system = APPROVAL_SYSTEM.to_string();
    request.timeout = config.model_timeout;
    request.max_tokens = 120;
    request.temperature = 0.0;
    let started = std::time::Instant::now();
    let answer = deps.models.ask(request).await;
    let latency = started.elapsed().as_millis() as u64;
    record.latency_ms = Some(latency);
    let mut member = MemberAnswer::asked(model, Some(latency));
    let verdict = match answer {
        Ok(resp) => {
            member.answered(&resp);
            record.deployment = Some(resp.deployment.clone());
            record.raw_answer = Some(resp.text.clone());
            let v = parse_verdict(&resp.text);
            if let Err(why) = &v {
                if !resp
                    .text
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("VETO")
                {
                    member.abstained(Abstention::Unparseable, why);
                }
            }
            v
        }
        Err(e) => {
            member.abstained(Abstention::of_model_error(&e), &e);
            let text = format!("approval model `{model}` failed (fail closed): {e}");
            record.error = Some(text.clone());
            Err(text)
        }
    };
    record.members.push(member);
    (verdict, record)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rust_decimal_macros::dec;

    use super::*;
    use crate::exchanges::Timeframe;

    fn config() -> StrategyAgentConfig {
        StrategyAgentConfig {
            name: "s".into(),
            venue: "paper".into(),
            symbol: "BTC".into(),
            timeframe: Timeframe::H1,
            strategy: "sma_cross".into(),
            params: BTreeMap::new(),
            equity_fraction: dec!(0.5),
            max_position_usd: dec!(3000),
            history: None,
            catch_up_bars: 3,
            approve_model: None,
            model_timeout: std::time::Duration::from_secs(5),
            interval: std::time::Duration::from_secs(60),
            initial_delay: std::time::Duration::from_secs(1),
            jitter: 0.0,
            run_timeout: None,
            spec: None,
        }
    }

    fn intent(side: api::Side, size: Size) -> api::OrderIntent {
        api::OrderIntent {
            side,
            size,
            stop_loss: None,
            take_profit: None,
        }
    }

    #[test]
    fn equity_sizing_takes_the_configured_share_and_stops_at_the_cap() {
        let c = config();
        // 0.5 × 0.5 × 10 000 = 2 500 USD at 100: 25 units, under the 30-unit cap.
        assert_eq!(
            sized_units(
                &c,
                &intent(api::Side::Buy, Size::Equity(0.5)),
                dec!(0),
                dec!(10000),
                dec!(100)
            ),
            dec!(25)
        );
        // All equity would be 50 units; the cap is 3000 / 100 = 30, 10 already held.
        let mut big = c.clone();
        big.equity_fraction = dec!(1);
        assert_eq!(
            sized_units(
                &big,
                &intent(api::Side::Buy, Size::ALL),
                dec!(10),
                dec!(10000),
                dec!(100)
            ),
            dec!(20)
        );
        // A flip from +30 long: selling 80 would end at -50, capped at -30: 60 units.
        assert_eq!(
            sized_units(
                &big,
                &intent(api::Side::Sell, Size::Units(80.0)),
                dec!(30),
                dec!(10000),
                dec!(100)
            ),
            dec!(60)
        );
        // Already at the cap on that side: nothing.
        assert_eq!(
            sized_units(
                &big,
                &intent(api::Side::Buy, Size::Units(1.0)),
                dec!(30),
                dec!(10000),
                dec!(100)
            ),
            dec!(0)
        );
    }

    #[test]
    fn the_verdict_is_approve_or_else_a_veto() {
        assert_eq!(
            parse_verdict("APPROVE\nTrend is up."),
            Ok("Trend is up.".into())
        );
        assert_eq!(
            parse_verdict(" veto: volume is thin"),
            Err("volume is thin".into())
        );
        assert!(parse_verdict("Sure, go ahead")
            .unwrap_err()
            .contains("fail closed"));
        assert!(parse_verdict("").is_err());
    }
}
