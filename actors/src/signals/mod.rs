//! The signal bus: agents tell each other what they see — typed [`Signal`]s with a TTL —
//! through one broker actor ([`SignalBus`]), never by calling each other.
//!
//! - [`signal`]: the type, its kinds and directions, validation on publish.
//! - [`store`]: the `signals` tree and the listing filter.
//! - [`bus`]: the broker actor (publish, subscribe, recent, sweep, metrics).
//! - [`config`]: the `[signals]` section.
//!
//! Owns: what a signal is and how it travels, plus the two helpers the trading agent
//! calls — [`publish_verdict`] (its BUY/SELL verdicts as `technical` signals) and
//! [`read_recent`] (other agents' signals for its prompt). Never: makes a trading
//! decision, or lets a slow bus hold an agent (publishing is a `try_send`, reading has a
//! deadline and degrades to "no signals").

pub mod bus;
pub mod config;
pub mod signal;
pub mod store;

pub use bus::{
    BusStats, Delivery, GetStats, Offer, Publish, PublishError, Recent, SignalBus, Subscribe,
    Unsubscribe,
};
pub use config::SignalsConfig;
pub use signal::{Direction, RecentSignal, Signal, SignalError, SignalInput, SignalKind, KINDS};
pub use store::{SignalFilter, SignalStore};

use std::time::Duration;

use rust_decimal::Decimal;

use crate::agents::DecisionRecord;
use crate::supervisor::{Slot, SlotError};
use crate::telemetry::names;

/// How long an agent waits for the bus's answer to [`read_recent`].
pub const READ_DEADLINE: Duration = Duration::from_secs(2);

/// The `technical` signal a trading agent's verdict becomes: `None` for anything but a
/// parsed BUY or SELL with a confidence. Direction long for BUY, short for SELL; value the
/// signed confidence (+c for BUY, -c for SELL) so a sum over sources reads as a net lean;
/// evidence the model's reason (cut to the bound on a character boundary).
pub fn verdict_signal(
    agent: &str,
    symbol: &str,
    action: Option<&str>,
    confidence: Option<f64>,
    reason: Option<&str>,
    ttl: Duration,
) -> Option<SignalInput> {
    let direction = match action? {
        "BUY" => Direction::Long,
        "SELL" => Direction::Short,
        _ => return None,
    };
    let confidence = confidence?.clamp(0.0, 1.0);
    let magnitude = Decimal::try_from(confidence)
        .unwrap_or_default()
        .round_dp(4);
    let value = match direction {
        Direction::Short => -magnitude,
        _ => magnitude,
    };
    let evidence: String = reason
        .unwrap_or_default()
        .trim()
        .chars()
        .take(signal::MAX_EVIDENCE_CHARS)
        .collect();
    Some(SignalInput {
        source: agent.to_string(),
        symbol: symbol.to_string(),
        kind: SignalKind::Technical.to_string(),
        value,
        direction: direction.to_string(),
        confidence,
        evidence,
        ttl: Some(ttl.clamp(Duration::from_secs(1), signal::MAX_TTL)),
    })
}

/// Publishes a trading agent's journaled BUY/SELL verdict on the bus
/// ([`verdict_signal`]); returns whether one was handed to the bus.
pub fn publish_verdict(bus: &Slot<SignalBus>, record: &DecisionRecord, ttl: Duration) -> bool {
    let Some(input) = verdict_signal(
        &record.agent,
        &record.symbol,
        record.action.as_deref(),
        record.confidence,
        record.reason.as_deref(),
        ttl,
    ) else {
        return false;
    };
    offer(bus, input)
}

/// Hands `input` to the bus without waiting: a bus that is restarting or whose mailbox is
/// full loses this one signal (counted as
/// `orrery_signals_dropped_total{reason="bus_unavailable"}`) and the caller goes on. The
/// bus validates it; a refusal is the bus's `warn` line.
pub fn offer(bus: &Slot<SignalBus>, input: SignalInput) -> bool {
    let source = input.source.clone();
    match bus.try_send(Offer(input)) {
        Ok(()) => true,
        Err(e) => {
            metrics::counter!(names::SIGNALS_DROPPED, "reason" => "bus_unavailable").increment(1);
            tracing::debug!(source = %source, error = %e, "signal not handed to the signal bus");
            false
        }
    }
}

/// Why [`read_recent`] came back empty-handed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Unreachable(#[from] SlotError),
    #[error("the signal bus did not answer within {0:?}")]
    Late(Duration),
}

/// The bus's recent signals matching `filter`, newest first, within `deadline`.
pub async fn read_recent(
    bus: &Slot<SignalBus>,
    filter: SignalFilter,
    deadline: Duration,
) -> Result<Vec<Signal>, ReadError> {
    match tokio::time::timeout(deadline, bus.send(Recent(filter))).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(ReadError::Late(deadline)),
    }
}

#[cfg(test)]
mod tests;
