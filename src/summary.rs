//! The one-screen summary `orrery run` prints on stdout when it stops on `--for`, SIGINT
//! or SIGTERM: how long it ran, decisions made, orders by status, fills, fees, realized
//! and unrealized PnL.
//!
//! Owns: collecting those figures for the run's window from what the engine keeps — the
//! decision journal, the order ledger and its fills (all from sled), and each venue's
//! unrealized PnL (asked while the gateway still runs, right after a last reconciliation
//! copies the newest fills into the ledger). Never: changes state, or fails the exit (a
//! figure that cannot be read is shown as unavailable).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use orrery_actors::agents::DecisionRecord;
use orrery_actors::clock::Millis;
use orrery_actors::exchanges::gateway::{GetAccount, Reconcile};
use orrery_actors::exchanges::ledger::{FillRecord, LedgerEntry};
use orrery_actors::store::{trees, Store};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::EngineHandle;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub duration_ms: u64,
    pub decisions: usize,
    /// Orders created during the run, by their status now.
    pub orders: BTreeMap<String, usize>,
    pub fills: usize,
    pub fees: Decimal,
    pub realized_pnl: Decimal,
    /// Summed over venues that answered at the end of the run.
    pub unrealized_pnl: Option<Decimal>,
    /// Figures that could not be read, and why.
    pub unavailable: Vec<String>,
}

/// Unrealized PnL per venue, read from the running gateway after one last reconciliation
/// (so fills of the last interval are in the ledger for [`collect`]).
pub async fn venue_marks(engine: &EngineHandle) -> (Option<Decimal>, Vec<String>) {
    let mut total = Some(Decimal::ZERO);
    let mut unavailable = Vec::new();
    for venue in engine.config.exchanges.venues.keys() {
        let reconciled = tokio::time::timeout(
            Duration::from_secs(15),
            engine.gateway.send(Reconcile {
                venue: venue.clone(),
            }),
        )
        .await;
        if !matches!(reconciled, Ok(Ok(Ok(_)))) {
            unavailable.push(format!(
                "{venue}: newest fills (reconciliation did not finish)"
            ));
        }
        let account = tokio::time::timeout(
            Duration::from_secs(15),
            engine.gateway.send(GetAccount {
                venue: venue.clone(),
            }),
        )
        .await;
        match account {
            Ok(Ok(Ok(a))) => {
                total = total.map(|t| t + a.unrealized_pnl);
            }
            _ => {
                total = None;
                unavailable.push(format!("{venue}: unrealized PnL (account read failed)"));
            }
        }
    }
    (total, unavailable)
}

/// The figures of the window from `started_ms`, read from the store.
pub fn collect(
    store: &Store,
    started_ms: Millis,
    duration: Duration,
    marks: (Option<Decimal>, Vec<String>),
) -> RunSummary {
    let mut s = RunSummary {
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        unrealized_pnl: marks.0,
        unavailable: marks.1,
        ..RunSummary::default()
    };
    // Journal keys start with the 13-digit time, so the window is a key range.
    match store.tree::<DecisionRecord>(trees::DECISIONS) {
        Ok(t) => s.decisions = t.entries_after(Some(&format!("{started_ms:013}"))).count(),
        Err(e) => s.unavailable.push(format!("decisions: {e}")),
    }
    match store.tree::<LedgerEntry>(trees::ORDERS) {
        Ok(t) => {
            for item in t.iter() {
                match item {
                    Ok((_, e)) if e.created_ms >= started_ms => {
                        *s.orders.entry(e.status.to_string()).or_default() += 1;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        s.unavailable.push(format!("orders: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => s.unavailable.push(format!("orders: {e}")),
    }
    match store.tree::<FillRecord>(trees::FILLS) {
        Ok(t) => {
            for item in t.iter() {
                match item {
                    Ok((_, r)) if r.fill.time_ms >= started_ms => {
                        s.fills += 1;
                        s.fees += r.fill.fee;
                        s.realized_pnl += r.fill.closed_pnl;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        s.unavailable.push(format!("fills: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => s.unavailable.push(format!("fills: {e}")),
    }
    s
}

/// The summary as printed at exit.
pub fn render(s: &RunSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "--- run summary ---");
    let _ = writeln!(
        o,
        "duration:       {}",
        humantime::format_duration(Duration::from_secs(s.duration_ms / 1000))
    );
    let _ = writeln!(o, "decisions:      {}", s.decisions);
    let total: usize = s.orders.values().sum();
    let by_status = s
        .orders
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        o,
        "orders:         {total}{}",
        if by_status.is_empty() {
            String::new()
        } else {
            format!(" ({by_status})")
        }
    );
    let _ = writeln!(o, "fills:          {}", s.fills);
    let _ = writeln!(o, "fees:           {} USD", s.fees.round_dp(4).normalize());
    let _ = writeln!(
        o,
        "realized PnL:   {} USD",
        s.realized_pnl.round_dp(4).normalize()
    );
    let _ = writeln!(
        o,
        "unrealized PnL: {}",
        s.unrealized_pnl
            .map(|u| format!("{} USD", u.round_dp(4).normalize()))
            .unwrap_or_else(|| "unavailable".into())
    );
    for u in &s.unavailable {
        let _ = writeln!(o, "unavailable:    {u}");
    }
    o
}
