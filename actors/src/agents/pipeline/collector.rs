//! The collector stage: what the analysts will read about one symbol — candles, the
//! quote, the position, the account value — through the gateway, and the recent signals
//! of the configured kinds (news and sentiment by default, from whichever agent or
//! operator published them) from the signal bus.
//!
//! Owns: those reads and the [`MarketContext`] they make. Never: asks a model, or fails a
//! run over the signal bus (a bus that does not answer within
//! [`crate::signals::READ_DEADLINE`] leaves the signals out, logged at `warn`; market
//! data is required).

use super::{PipelineConfig, PipelineDeps};
use crate::agents::{gateway_call, GatewayCallError};
use crate::exchanges::gateway::{GetAccount, GetCandles, GetPosition, GetQuote};
use crate::models::MarketContext;
use crate::signals::{self, RecentSignal, SignalFilter};

/// Most signals one run reads, newest first.
pub const MAX_SIGNALS: usize = 20;

/// The stage's input as journaled: what it was asked to read.
pub fn input(config: &PipelineConfig, symbol: &str) -> serde_json::Value {
    serde_json::json!({
        "venue": config.venue,
        "symbol": symbol,
        "timeframe": config.timeframe.as_str(),
        "lookback": config.lookback,
        "signal_kinds": config.signal_kinds.iter().map(|k| k.label()).collect::<Vec<_>>(),
        "signal_max_age": humantime::format_duration(config.signal_max_age).to_string(),
    })
}

/// Reads everything about `symbol` the analysts get.
pub async fn collect(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
) -> Result<MarketContext, GatewayCallError> {
    let venue = config.venue.clone();
    let candles = GetCandles {
        venue: venue.clone(),
        symbol: symbol.to_string(),
        timeframe: config.timeframe,
        lookback: config.lookback,
    };
    let quote = GetQuote {
        venue: venue.clone(),
        symbol: symbol.to_string(),
    };
    let position = GetPosition {
        venue: venue.clone(),
        symbol: symbol.to_string(),
    };
    let account = GetAccount {
        venue: venue.clone(),
    };
    // Independent reads, in flight together.
    let (candles, quote, position, account, signals) = futures::join!(
        gateway_call(&deps.gateway, candles),
        gateway_call(&deps.gateway, quote),
        gateway_call(&deps.gateway, position),
        gateway_call(&deps.gateway, account),
        recent_signals(config, deps, symbol),
    );
    Ok(MarketContext {
        venue,
        symbol: symbol.to_string(),
        timeframe: config.timeframe.as_str().to_string(),
        price: quote?.mid(),
        candles: candles?,
        position: position?,
        account_value: account?.account_value,
        signals,
    })
}

async fn recent_signals(
    config: &PipelineConfig,
    deps: &PipelineDeps,
    symbol: &str,
) -> Vec<RecentSignal> {
    if config.signal_kinds.is_empty() {
        return Vec::new();
    }
    let now = deps.clock.now_ms();
    let max_age = i64::try_from(config.signal_max_age.as_millis()).unwrap_or(i64::MAX);
    let filter = SignalFilter {
        kinds: config.signal_kinds.clone(),
        symbol: Some(symbol.to_string()),
        since_ms: Some(now.saturating_sub(max_age)),
        limit: MAX_SIGNALS,
        exclude_source: Some(config.name.clone()),
    };
    match signals::read_recent(&deps.signals, filter, signals::READ_DEADLINE).await {
        Ok(found) => found.iter().map(|s| RecentSignal::of(s, now)).collect(),
        Err(e) => {
            tracing::warn!(agent = %config.name, symbol, error = %e, "pipeline collector: no signals this run, the signal bus did not answer");
            Vec::new()
        }
    }
}
