//! Temporary: replaced by the models branch on merge.
use super::types::{RiskVerdict, TradeDecision};
#[derive(Debug, thiserror::Error)]
#[error("cannot parse decision: {0}")]
pub struct DecisionError(pub String);
pub fn parse_trade_decision(text: &str) -> Result<TradeDecision, DecisionError> {
    serde_json::from_str(text).map_err(|e| DecisionError(e.to_string()))
}
pub fn parse_risk_verdict(text: &str) -> Result<RiskVerdict, DecisionError> {
    #[derive(serde::Deserialize)]
    struct V {
        action: RiskVerdict,
    }
    serde_json::from_str::<V>(text)
        .map(|v| v.action)
        .map_err(|e| DecisionError(e.to_string()))
}
