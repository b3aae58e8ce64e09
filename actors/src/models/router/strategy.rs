//! The order in which a logical model's deployments are tried, per [`RoutingStrategy`], and the
//! context-window filter.
//!
//! Owns: ranking deployments from the shared health table (in flight, EWMA latency), the
//! weighted shuffle. Never: estimates sizes (`ModelRequest::estimated_tokens`, the one
//! estimate), sends anything, or skips a
//! deployment for health reasons (cooldown and pool liveness are checked by the router at
//! the moment it tries a deployment, since they change while it fails over).

use rand::Rng;

use super::{DeploymentRoute, RoutingStrategy};
use crate::models::pool::HealthTable;

/// Deployments in the order to try them, after dropping those whose context window is
/// too small for `needed` tokens.
pub fn order<'a>(
    strategy: RoutingStrategy,
    deployments: &'a [DeploymentRoute],
    health: &HealthTable,
    needed: u64,
    rng: &mut impl Rng,
) -> Vec<&'a DeploymentRoute> {
    let mut fits: Vec<&DeploymentRoute> = deployments
        .iter()
        .filter(|d| !matches!(d.context_window, Some(w) if u64::from(w) < needed))
        .collect();
    match strategy {
        RoutingStrategy::OrderedFallback => {}
        RoutingStrategy::LeastBusy => {
            // Stable sort: ties keep the configured order.
            fits.sort_by_key(|d| {
                health
                    .get(&d.deployment)
                    .map_or(0, |h| h.in_flight() + h.queued())
            });
        }
        RoutingStrategy::LowestLatency => {
            // `None` (no sample yet) sorts before every `Some`: new deployments get probed.
            fits.sort_by_key(|d| health.get(&d.deployment).and_then(|h| h.ewma_latency()));
        }
        RoutingStrategy::WeightedShuffle => {
            // Efraimidis–Spirakis: key u^(1/w), largest first, is a weighted random
            // permutation without replacement.
            let mut keyed: Vec<(f64, &DeploymentRoute)> = fits
                .into_iter()
                .map(|d| {
                    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                    (u.powf(1.0 / f64::from(d.weight.max(1))), d)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            fits = keyed.into_iter().map(|(_, d)| d).collect();
        }
    }
    fits
}
