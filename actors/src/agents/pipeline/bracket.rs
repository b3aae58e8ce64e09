//! The exit legs a pipeline left working, per symbol, in its memory (`agents/<name>`,
//! key `bracket/<symbol>`), so the leg that did not fire is cancelled once the position
//! is gone.
//!
//! A reduce-only trigger order outlives its position on some venues (the paper venue
//! cancels one only when it fires with nothing to reduce): a take-profit left behind by a
//! stop that fired would close part of the next position opened on the symbol, by this
//! agent or any other, at the old target. So the collector of every run, finding the
//! symbol flat, cancels the remembered legs first.
//!
//! Owns: that record and the cancels. Never: cancels an order it did not place, or one
//! while the position it protects is still open.

use serde::{Deserialize, Serialize};

use super::{PipelineConfig, PipelineDeps};
use crate::agents::gateway_call;
use crate::exchanges::gateway::CancelOrder;
use crate::exchanges::{ClientOrderId, OrderStatus};
use crate::store::{trees, Record, StoreError, Tree};

/// The legs working for one symbol's position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenBracket {
    pub legs: Vec<ClientOrderId>,
}

impl Record for OpenBracket {}

fn key(symbol: &str) -> String {
    format!("bracket/{symbol}")
}

fn tree(config: &PipelineConfig, deps: &PipelineDeps) -> Result<Tree<OpenBracket>, StoreError> {
    deps.journal
        .store()
        .tree(&format!("{}{}", trees::AGENTS_PREFIX, config.name))
}

/// Remembers the legs just placed for `symbol`.
pub fn remember(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
    legs: Vec<ClientOrderId>,
) -> Result<(), StoreError> {
    tree(config, deps)?.put(&key(symbol), &OpenBracket { legs })
}

/// Cancels the remembered legs of `symbol` (called while it is flat); the ids now
/// cancelled (a leg that filled is forgotten, not listed). A leg whose cancel failed stays remembered for the next
/// run (logged at `warn`).
pub async fn cancel_stale(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
) -> Result<Vec<ClientOrderId>, StoreError> {
    let tree = tree(config, deps)?;
    let Some(open) = tree.get(&key(symbol))? else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    let mut kept = Vec::new();
    for leg in open.legs {
        match gateway_call(
            &deps.gateway,
            CancelOrder {
                client_id: leg.clone(),
            },
        )
        .await
        {
            // A leg that filled (the one that fired) is simply forgotten.
            Ok(report) if report.status == OrderStatus::Cancelled => done.push(leg),
            Ok(report) if report.status.is_terminal() => {}
            Ok(report) => {
                tracing::warn!(agent = %config.name, symbol, client_id = %leg, status = %report.status, "pipeline: a stale exit leg is not cancelled yet; trying again next run");
                kept.push(leg);
            }
            Err(e) => {
                tracing::warn!(agent = %config.name, symbol, client_id = %leg, error = %e, "pipeline: cannot cancel a stale exit leg; trying again next run");
                kept.push(leg);
            }
        }
    }
    if kept.is_empty() {
        tree.remove(&key(symbol))?;
    } else {
        tree.put(&key(symbol), &OpenBracket { legs: kept })?;
    }
    if !done.is_empty() {
        tracing::info!(agent = %config.name, symbol, legs = done.len(), "pipeline: the position is gone; its remaining exit legs are cancelled");
    }
    Ok(done)
}
