//! When the periodic reconciliation visits a venue.
//!
//! Owns: the rule that stretches REST reconciliation while a venue pushes the account's
//! fills over its stream: such a venue is reconciled every `reconcile_interval_streamed`
//! instead of every `reconcile_interval`, and at once after its stream reconnected (a lost
//! connection may have missed pushes). Never: skips a venue whose fills are not streamed,
//! or the passes that the start, an operator or an order's deadline ask for (those call
//! [`GatewayCore::reconcile`] directly).
//!
//! Why: REST stays the reconciliation truth, but with fills pushed as they happen a pass
//! every 30 s mostly re-reads what the ledger already has; on Hyperliquid its open-orders
//! and fills reads cost 40 of the 1 200 weight per minute an IP may spend.

use std::time::Instant;

use super::*;

/// A venue's last successful pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastPass {
    at: Instant,
    /// The stream's connection count at that pass.
    connections: u64,
}

/// Whether a venue is due, given its last pass and its stream now. Pure, for the tests.
pub(super) fn due(
    last: Option<LastPass>,
    streamed: Option<u64>,
    now: Instant,
    streamed_interval: Duration,
) -> bool {
    match (last, streamed) {
        (Some(last), Some(connections)) => {
            connections != last.connections
                || now.saturating_duration_since(last.at) >= streamed_interval
        }
        _ => true,
    }
}

impl GatewayCore {
    /// The connection count of `venue`'s stream while it pushes the account's fills.
    fn streamed_connections(&self, venue: &str) -> Option<u64> {
        let feed = self.feed(venue)?;
        feed.fills_streamed().then(|| feed.connections())
    }

    pub(super) fn note_pass(&self, venue: &str) {
        let connections = self.feed(venue).map_or(0, |f| f.connections());
        self.last_pass.lock().insert(
            venue.to_string(),
            LastPass {
                at: Instant::now(),
                connections,
            },
        );
    }

    /// Reconciles each venue that is due (see the module doc).
    pub async fn reconcile_due(&self) -> GatewayResult<()> {
        let mut first_err = None;
        for venue in self.venue_names() {
            let last = self.last_pass.lock().get(&venue).copied();
            let streamed = self.streamed_connections(&venue);
            if !due(
                last,
                streamed,
                Instant::now(),
                self.config.reconcile_interval_streamed,
            ) {
                continue;
            }
            if let Err(e) = self.reconcile(&venue).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_venue_waits_for_its_interval_or_a_reconnect() {
        let t0 = Instant::now();
        let long = Duration::from_secs(300);
        let last = Some(LastPass {
            at: t0,
            connections: 1,
        });
        // Not streamed: every tick.
        assert!(due(last, None, t0, long));
        // Never reconciled: due.
        assert!(due(None, Some(1), t0, long));
        // Streamed, same connection, recent: not due.
        assert!(!due(last, Some(1), t0 + Duration::from_secs(30), long));
        // The interval passed: due.
        assert!(due(last, Some(1), t0 + long, long));
        // Reconnected since: due at once.
        assert!(due(last, Some(2), t0 + Duration::from_secs(1), long));
    }
}
