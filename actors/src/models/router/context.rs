//! Context-window fallback: when a deployment's provider says the request does not fit
//! its model's context window ([`ModelError::ContextTooLong`]), failover goes on only to
//! siblings whose configured `context_window` is larger than that deployment's; the
//! others would refuse it the same way, so they are skipped, not called.
//!
//! Owns: the floor (the largest window already found too small) and the skip decision.
//! Never: estimates sizes (the strategy's filter drops deployments too small for the
//! estimate before anything is sent; this catches what the estimate missed). A failed
//! deployment without a `context_window` sets the floor at 0: only siblings with a
//! configured window, which the operator vouched for, are tried after it.

use super::DeploymentRoute;
use crate::models::types::ModelError;

/// The largest context window already found too small for this request, if any.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ContextFloor(Option<u32>);

impl ContextFloor {
    /// Why `d` is not tried: a sibling already found the request too long and `d`'s
    /// window is not known to be larger.
    pub(super) fn skip_reason(&self, d: &DeploymentRoute) -> Option<String> {
        let floor = self.0?;
        match d.context_window {
            Some(window) if window > floor => None,
            Some(window) => Some(format!(
                "{}: skipped, its context_window {window} is not larger than {floor}, already too small for this request",
                d.deployment
            )),
            None => Some(format!(
                "{}: skipped, it has no context_window to show it takes more than {floor} tokens, already too small for this request",
                d.deployment
            )),
        }
    }

    /// Whether `d` may still be tried ([`ContextFloor::skip_reason`] without the text).
    pub(super) fn admits(&self, d: &DeploymentRoute) -> bool {
        match (self.0, d.context_window) {
            (None, _) => true,
            (Some(floor), Some(window)) => window > floor,
            (Some(_), None) => false,
        }
    }

    /// Raises the floor to `d`'s window when `e` says the request did not fit it.
    pub(super) fn raise(&mut self, model: &str, d: &DeploymentRoute, e: &ModelError) {
        if !matches!(e, ModelError::ContextTooLong { .. }) {
            return;
        }
        let window = d.context_window.unwrap_or(0);
        self.0 = Some(self.0.map_or(window, |floor| floor.max(window)));
        metrics::counter!("orrery_model_context_fallbacks_total", "model" => model.to_string(), "from" => d.deployment.clone())
            .increment(1);
    }
}

/// Describes this module's metrics (HELP lines); [`super::describe`] calls it.
pub(super) fn describe() {
    metrics::describe_counter!(
        "orrery_model_context_fallbacks_total",
        "Model requests a deployment refused as longer than its context window, by logical model and deployment; the router then tries only siblings with a larger context_window."
    );
}

#[cfg(test)]
mod tests;
