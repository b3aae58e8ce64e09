//! One check of a copy agent: for each leader that is due, read its positions, then for
//! each symbol it holds or we mirror, settle the step in flight, decide the next one
//! ([`super::step::decide`]) and send it through the gateway under its derived client id.
//!
//! Owns: the order of those actions, what is written to sled before and after each send,
//! the step's log line, journal record and metric. Never: sends a step whose predecessor
//! is unsettled, moves the mirrored position on anything but the ledger's fills, or
//! decides on error text (the gateway's error types say whether an order may have been
//! sent).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::leader::{newest_by_coin, LeaderPosition, LeaderReader};
use super::state::{step_client_id, CopyState, Mirror, PendingStep};
use super::step::{decide, Action, StepInput};
use super::{names, CopyConfig};
use crate::agents::journal::{DecisionJournal, DecisionRecord};
use crate::agents::runtime::RunOutcome;
use crate::agents::{gateway_call, GatewayCallError};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::gateway::{
    Amount, GatewayError, GetOrder, GetQuote, OrderGateway, OrderIntent, OrderReport,
    PlaceKeyedOrder, Pricing,
};
use crate::exchanges::{Side, TimeInForce};
use crate::supervisor::Slot;

/// What a copy agent reaches.
#[derive(Clone)]
pub struct CopyDeps {
    pub gateway: Slot<OrderGateway>,
    pub journal: DecisionJournal,
    pub state: CopyState,
    pub clock: SharedClock,
    pub leader: LeaderReader,
}

/// What the agent remembers between checks in memory only: a restart reads every leader
/// at once, which is what a start needs.
#[derive(Default)]
struct Tracker {
    last_read_ms: BTreeMap<String, Millis>,
    /// The newest stream fill seen per leader.
    last_fill: BTreeMap<String, String>,
    /// The leader size last reported for a symbol outside the allowlist (logged once per
    /// change).
    not_allowed: BTreeMap<(String, String), Decimal>,
}

/// One copy agent: its config, its leader symbol → our symbol map, its deps.
#[derive(Clone)]
pub struct CopyAgent {
    config: Arc<CopyConfig>,
    /// Leader coin → our venue's symbol (the allowlist).
    symbols: Arc<BTreeMap<String, String>>,
    deps: CopyDeps,
    tracker: Arc<Mutex<Tracker>>,
}

/// Sets every step counter of `agent` to 0, so they are exported before the first step.
pub fn init_metrics(agent: &str) {
    for outcome in [
        "filled",
        "partially_filled",
        "unfilled",
        "refused",
        "rejected",
        "invalid",
        "unknown",
        "failed",
        "skipped_not_allowed",
        "skipped_stale",
        "skipped_at_limit",
        "skipped_too_small",
    ] {
        metrics::counter!(names::STEPS, "agent" => agent.to_string(), "outcome" => outcome)
            .increment(0);
    }
}

/// What became of one step, for its log line, journal record and metric.
struct StepRecord<'a> {
    leader: &'a str,
    coin: &'a str,
    leader_size: Decimal,
    target: Decimal,
    mirrored: Decimal,
    outcome: &'static str,
    why: String,
    order: Option<OrderReport>,
    error: Option<String>,
}

impl CopyAgent {
    /// `symbols`: each allowlisted leader coin and the symbol our venue knows it by.
    pub fn new(config: CopyConfig, symbols: BTreeMap<String, String>, deps: CopyDeps) -> Self {
        Self {
            config: Arc::new(config),
            symbols: Arc::new(symbols),
            deps,
            tracker: Arc::default(),
        }
    }

    pub fn config(&self) -> &CopyConfig {
        &self.config
    }

    #[cfg(test)]
    pub(crate) fn deps_for_test(&self) -> CopyDeps {
        self.deps.clone()
    }

    /// One check over every leader (see the module docs).
    pub async fn check(&self) -> RunOutcome {
        let mut errors = Vec::new();
        for wallet in self.config.leaders() {
            if let Err(e) = self.check_leader(&wallet).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            RunOutcome::Ok
        } else {
            RunOutcome::Error(errors.join("; "))
        }
    }

    async fn check_leader(&self, wallet: &str) -> Result<(), String> {
        let now = self.deps.clock.now_ms();
        let fills = self.deps.leader.recent_fills(wallet);
        let newest_fill = fills.last().map(|f| f.fill_id.clone());
        let mirrors: Vec<(String, Mirror)> = self
            .deps
            .state
            .all()
            .map_err(|e| format!("copy state: {e}"))?
            .into_iter()
            .filter(|(l, _, _)| l == wallet)
            .map(|(_, s, m)| (s, m))
            .collect();
        let unsettled = mirrors.iter().any(|(_, m)| m.pending.is_some());
        let due = {
            let t = self.tracker.lock();
            let poll_ms = self.config.poll_interval.as_millis() as i64;
            let read_due = t
                .last_read_ms
                .get(wallet)
                .is_none_or(|last| now - last >= poll_ms);
            read_due || unsettled || newest_fill.as_ref() != t.last_fill.get(wallet)
        };
        if !due {
            return Ok(());
        }
        let positions = match self.deps.leader.positions(wallet, now).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(agent = %self.config.name, leader = wallet, error = %e, "copy: cannot read the leader's positions; next check tries again");
                return Err(e.to_string());
            }
        };
        {
            let mut t = self.tracker.lock();
            t.last_read_ms.insert(wallet.to_string(), now);
            if let Some(f) = &newest_fill {
                t.last_fill.insert(wallet.to_string(), f.clone());
            }
        }
        let prices = newest_by_coin(&fills);
        let mut coins: BTreeSet<String> = positions.keys().cloned().collect();
        coins.extend(
            mirrors
                .iter()
                .filter(|(_, m)| {
                    !m.mirrored.is_zero() || m.pending.is_some() || !m.leader_size.is_zero()
                })
                .map(|(s, _)| s.clone()),
        );
        // A symbol outside the allowlist the leader held at the last read: its close is
        // logged, and its gauge goes to 0.
        coins.extend(
            self.tracker
                .lock()
                .not_allowed
                .iter()
                .filter(|((w, _), size)| w == wallet && !size.is_zero())
                .map(|((_, c), _)| c.clone()),
        );
        let mut errors = Vec::new();
        for coin in coins {
            let held = positions.get(&coin).copied();
            let size = held.map(|p| p.size).unwrap_or_default();
            metrics::gauge!(names::LEADER_POSITION, "wallet" => wallet.to_string(), "symbol" => coin.clone())
                .set(size.to_f64().unwrap_or(0.0));
            if !self.symbols.contains_key(&coin) {
                self.not_allowed(wallet, &coin, size);
                continue;
            }
            let reference = prices
                .get(&coin)
                .map(|(_, price, _)| *price)
                .or(held.map(|p| p.entry_price).filter(|p| *p > Decimal::ZERO));
            if let Err(e) = self.mirror(wallet, &coin, held, reference).await {
                tracing::warn!(agent = %self.config.name, leader = wallet, symbol = %coin, error = %e, "copy: step not taken; next check tries again");
                errors.push(format!("{coin}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("leader {wallet}: {}", errors.join("; ")))
        }
    }

    /// A leader's position in a symbol outside the allowlist: logged and counted once per
    /// change of its size.
    fn not_allowed(&self, wallet: &str, coin: &str, size: Decimal) {
        let changed = {
            let mut t = self.tracker.lock();
            let key = (wallet.to_string(), coin.to_string());
            let before = t.not_allowed.insert(key, size);
            before != Some(size) && !(before.is_none() && size.is_zero())
        };
        if changed {
            self.finish(StepRecord {
                leader: wallet,
                coin,
                leader_size: size,
                target: Decimal::ZERO,
                mirrored: Decimal::ZERO,
                outcome: "skipped_not_allowed",
                why: format!("{coin} is not in symbols"),
                order: None,
                error: None,
            });
        }
    }

    /// Settles the step in flight for (`wallet`, `coin`), then decides and sends the next.
    async fn mirror(
        &self,
        wallet: &str,
        coin: &str,
        held: Option<LeaderPosition>,
        reference: Option<Decimal>,
    ) -> Result<(), String> {
        let state = &self.deps.state;
        let mut m = state.get(wallet, coin).map_err(|e| e.to_string())?;
        if m.pending.is_some() {
            let lookup = self.lookup_pending(&m).await?;
            if !self.settle(wallet, coin, &mut m, lookup, None).await? {
                // Still unsettled at the venue: the gateway resolves it by client id.
                return Ok(());
            }
        }
        let symbol = &self.symbols[coin];
        let leader_size = held.map(|p| p.size).unwrap_or_default();
        let quote = gateway_call(
            &self.deps.gateway,
            GetQuote {
                venue: self.config.venue.clone(),
                symbol: symbol.clone(),
            },
        )
        .await
        .map_err(|e| format!("quote of {symbol} on {}: {e}", self.config.venue))?;
        let price = (quote.bid + quote.ask) / Decimal::TWO;
        if price <= Decimal::ZERO {
            return Err(format!("quote of {symbol} has no price"));
        }
        let other_usd: Decimal = state
            .all()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(l, s, _)| !(l == wallet && s == coin))
            .map(|(_, _, o)| o.mirrored.abs() * o.last_price)
            .sum();
        let step = decide(&StepInput {
            sizing: self.config.sizing(),
            limits: self.config.limits(),
            leader_size,
            mirrored: m.mirrored,
            anchor: m.anchor,
            price,
            leader_price: reference,
            other_usd,
            allowed: true,
        });
        let leader_moved = m.leader_size != leader_size;
        m.leader_size = leader_size;
        m.last_price = price;
        let (size, reduce_only) = match step.action {
            Action::Hold => {
                if leader_moved {
                    state
                        .put(wallet, coin, &m)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                return Ok(());
            }
            Action::Skip(why) => {
                state
                    .put(wallet, coin, &m)
                    .await
                    .map_err(|e| e.to_string())?;
                // Logged once per move of the leader, not at every check.
                if leader_moved {
                    self.finish(StepRecord {
                        leader: wallet,
                        coin,
                        leader_size,
                        target: step.raw_target,
                        mirrored: m.mirrored,
                        outcome: why.label(),
                        why: skip_text(why, price, reference, &self.config),
                        order: None,
                        error: None,
                    });
                }
                return Ok(());
            }
            Action::Send { size, reduce_only } => (size, reduce_only),
        };
        let client_id = step_client_id(&self.config.name, wallet, coin, m.steps);
        m.pending = Some(PendingStep {
            client_id: client_id.clone(),
            size,
            target: step.target,
            anchor: step.anchor,
            leader_size,
            written_ms: self.deps.clock.now_ms(),
        });
        // On disk before the gateway hears of it: a crash from here on recomputes this
        // step under the same id.
        state
            .put(wallet, coin, &m)
            .await
            .map_err(|e| e.to_string())?;
        let side = if size > Decimal::ZERO {
            Side::Buy
        } else {
            Side::Sell
        };
        let slip = self.config.max_slippage_pct / Decimal::ONE_HUNDRED;
        let limit = match side {
            Side::Buy => price * (Decimal::ONE + slip),
            Side::Sell => price * (Decimal::ONE - slip),
        };
        let intent = OrderIntent {
            venue: self.config.venue.clone(),
            symbol: symbol.clone(),
            side,
            amount: Amount::Base(size.abs()),
            pricing: Pricing::Limit {
                price: limit,
                tif: TimeInForce::Ioc,
            },
            reduce_only,
            origin: format!("agent:{}", self.config.name),
        };
        let sent = gateway_call(&self.deps.gateway, PlaceKeyedOrder { intent, client_id }).await;
        self.settle(wallet, coin, &mut m, Lookup::Sent(sent), Some(price))
            .await?;
        Ok(())
    }

    async fn lookup_pending(&self, m: &Mirror) -> Result<Lookup, String> {
        let Some(p) = &m.pending else {
            return Ok(Lookup::Ledger(None));
        };
        gateway_call(
            &self.deps.gateway,
            GetOrder {
                client_id: p.client_id.clone(),
            },
        )
        .await
        .map(Lookup::Ledger)
        .map_err(|e| format!("ledger lookup of {}: {e}", p.client_id))
    }

    /// Takes the outcome of the pending step into `m` (durably). `true`: settled, the
    /// next step may be decided; `false`: its outcome is still unknown.
    async fn settle(
        &self,
        wallet: &str,
        coin: &str,
        m: &mut Mirror,
        lookup: Lookup,
        price: Option<Decimal>,
    ) -> Result<bool, String> {
        let Some(pending) = m.pending.clone() else {
            return Ok(true);
        };
        let (report, error, refused) = match lookup {
            Lookup::Sent(Ok(report)) => (Some(report), None, false),
            Lookup::Sent(Err(e)) if e.order_outcome_unknown() => {
                self.record_unknown(wallet, coin, m, &pending, e.to_string());
                return Ok(false);
            }
            Lookup::Sent(Err(e)) => {
                let invalid =
                    matches!(&e, GatewayCallError::Gateway(GatewayError::InvalidOrder(_)));
                let refused = e.refusal().is_some();
                // What the ledger holds under the id says what was done.
                let held = gateway_call(
                    &self.deps.gateway,
                    GetOrder {
                        client_id: pending.client_id.clone(),
                    },
                )
                .await
                .map_err(|le| format!("{e}; ledger lookup: {le}"))?;
                match held {
                    Some(report) => (Some(report), Some(e.to_string()), refused),
                    None => {
                        // Never in the ledger: nothing was sent. The step is decided
                        // again at the next check under the same id.
                        m.pending = None;
                        self.deps
                            .state
                            .put(wallet, coin, m)
                            .await
                            .map_err(|se| se.to_string())?;
                        self.finish(StepRecord {
                            leader: wallet,
                            coin,
                            leader_size: pending.leader_size,
                            target: pending.target,
                            mirrored: m.mirrored,
                            outcome: if invalid { "invalid" } else { "failed" },
                            why: format!("step of {} not sent", pending.size.normalize()),
                            order: None,
                            error: Some(e.to_string()),
                        });
                        return Ok(true);
                    }
                }
            }
            Lookup::Ledger(Some(report)) => (Some(report), None, false),
            Lookup::Ledger(None) => (None, None, false),
        };
        let Some(report) = report else {
            // Written as pending but never reached the ledger (a crash in between):
            // nothing was sent; decide again under the same id.
            m.pending = None;
            self.deps
                .state
                .put(wallet, coin, m)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(true);
        };
        if !report.status.is_terminal() {
            self.record_unknown(
                wallet,
                coin,
                m,
                &pending,
                format!("order {} is {:?}", report.client_id, report.status),
            );
            return Ok(false);
        }
        let filled = match report.side {
            Side::Buy => report.filled_size,
            Side::Sell => -report.filled_size,
        };
        m.mirrored += filled;
        if !filled.is_zero() {
            m.anchor = if m.mirrored.is_zero() {
                None
            } else {
                pending.anchor
            };
        }
        m.steps += 1;
        m.pending = None;
        if let Some(p) = price {
            m.last_price = p;
        }
        self.deps
            .state
            .put(wallet, coin, m)
            .await
            .map_err(|e| e.to_string())?;
        let outcome = if refused {
            "refused"
        } else if report.filled_size >= report.size && !report.filled_size.is_zero() {
            "filled"
        } else if !report.filled_size.is_zero() {
            "partially_filled"
        } else if report.status == crate::exchanges::OrderStatus::Rejected {
            "rejected"
        } else {
            "unfilled"
        };
        self.finish(StepRecord {
            leader: wallet,
            coin,
            leader_size: pending.leader_size,
            target: pending.target,
            mirrored: m.mirrored,
            outcome,
            // The ledger's order under this step's id may differ from the step decided
            // now: it was placed earlier (before a crash, or by the node that owned the
            // account before this one) and is taken as it is, never sent again.
            why: if report.size == pending.size.abs() {
                format!(
                    "step {} {}, filled {}",
                    pending.size.normalize(),
                    coin,
                    report.filled_size.normalize()
                )
            } else {
                format!(
                    "step {} {} found placed earlier under its id as {} {}, filled {}",
                    pending.size.normalize(),
                    coin,
                    report.side.as_str(),
                    report.size.normalize(),
                    report.filled_size.normalize()
                )
            },
            error: error.or_else(|| report.reason.clone()),
            order: Some(report),
        });
        Ok(true)
    }

    fn record_unknown(&self, wallet: &str, coin: &str, m: &Mirror, p: &PendingStep, error: String) {
        self.finish(StepRecord {
            leader: wallet,
            coin,
            leader_size: p.leader_size,
            target: p.target,
            mirrored: m.mirrored,
            outcome: "unknown",
            why: format!(
                "step {} {} under {}: the gateway settles it by client id; no step for this pair until then",
                p.size.normalize(),
                coin,
                p.client_id
            ),
            order: None,
            error: Some(error),
        });
    }

    /// The step's log line, metric and journal record.
    fn finish(&self, r: StepRecord<'_>) {
        let agent = &self.config.name;
        metrics::counter!(names::STEPS, "agent" => agent.clone(), "outcome" => r.outcome)
            .increment(1);
        tracing::info!(
            agent = %agent,
            leader = r.leader,
            symbol = r.coin,
            leader_size = %r.leader_size.normalize(),
            target = %r.target.normalize(),
            mirrored = %r.mirrored.normalize(),
            outcome = r.outcome,
            why = %r.why,
            client_id = r.order.as_ref().map(|o| o.client_id.to_string()).unwrap_or_default(),
            error = r.error.as_deref().unwrap_or(""),
            "copy step"
        );
        let mut record = DecisionRecord::begin(
            self.deps.clock.now_ms(),
            agent,
            &self.config.venue,
            self.symbols
                .get(r.coin)
                .map(String::as_str)
                .unwrap_or(r.coin),
            "",
        );
        record.action = r.order.as_ref().map(|o| o.side.to_string().to_uppercase());
        record.reason = Some(format!(
            "leader {} {} size {}; target {}; mirrored {}; {}",
            r.leader,
            r.coin,
            r.leader_size.normalize(),
            r.target.normalize(),
            r.mirrored.normalize(),
            r.why
        ));
        record.error = r.error;
        record.outcome = format!("copy_{}", r.outcome);
        record.orders = r.order.into_iter().collect();
        // The receipt is not awaited: a journal that cannot keep up costs the record,
        // which the writer logs, never the step.
        drop(self.deps.journal.append(record));
    }
}

/// What is known of a pending step: the gateway's answer to its send, or the ledger's
/// entry under its client id (`None`: not in the ledger).
enum Lookup {
    Sent(Result<OrderReport, GatewayCallError>),
    Ledger(Option<OrderReport>),
}

fn skip_text(
    why: super::step::Skip,
    price: Decimal,
    reference: Option<Decimal>,
    config: &CopyConfig,
) -> String {
    use super::step::Skip;
    match why {
        Skip::NotAllowed => "not in symbols".into(),
        Skip::Stale => format!(
            "price {} moved more than {}% from the leader's {}",
            price.round_dp(6).normalize(),
            config.stale_pct.normalize(),
            reference
                .map(|r| r.normalize().to_string())
                .unwrap_or_default()
        ),
        Skip::AtLimit => format!(
            "at max_position_usd {} / max_total_usd {}",
            config.max_position_usd.normalize(),
            config.max_total_usd.normalize()
        ),
        Skip::TooSmall => format!(
            "worth less than min_step_usd {}",
            config.min_step_usd.normalize()
        ),
    }
}
