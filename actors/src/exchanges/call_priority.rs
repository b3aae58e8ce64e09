//! The priority a task runs at: the gateway's flows, and the venue call a connector serves.
//!
//! Owns: one task-local [`Priority`] and its two uses.
//! - The gateway runs a close, a kill-switch close, a cancel, an order or a reconciliation
//!   inside [`within`], so every venue command that flow issues is stamped with the flow's
//!   priority ([`super::command::VenueRequest::in_flow`]): a close's instrument, quote and
//!   position reads are High instead of queueing behind market data.
//! - The connector serves each [`super::command::VenueRequest`] inside [`within`] its
//!   stamped priority, so the venue's own limiter waits read it with [`current`]. That is
//!   the only way a venue learns a call's priority; it never derives one itself (from
//!   `reduce_only` or the endpoint).
//!
//! Never: decides a priority (the command and the flow do, see
//! [`super::command::VenueCommand::priority`]) or queues anything (the connector's priority
//! queue does).

use std::future::Future;

use crate::resilience::Priority;

tokio::task_local! {
    static FLOW: Priority;
}

/// Runs `fut` at `priority`. Inside a more urgent flow, that flow's priority holds: a
/// close's reads never drop to Medium because they pass through code that starts a Medium
/// flow.
pub async fn within<F: Future>(priority: Priority, fut: F) -> F::Output {
    let priority = current().map_or(priority, |outer| priority.min(outer));
    FLOW.scope(priority, fut).await
}

/// The priority this task runs at, if any: the gateway flow's, or inside a connector the
/// priority its venue call is served at.
pub fn current() -> Option<Priority> {
    FLOW.try_with(|p| *p).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_nested_flow_never_lowers_the_outer_one() {
        assert_eq!(current(), None);
        within(Priority::High, async {
            assert_eq!(current(), Some(Priority::High));
            within(Priority::Medium, async {
                assert_eq!(current(), Some(Priority::High));
            })
            .await;
        })
        .await;
        within(Priority::Medium, async {
            within(Priority::High, async {
                assert_eq!(current(), Some(Priority::High));
            })
            .await;
            assert_eq!(current(), Some(Priority::Medium));
        })
        .await;
    }
}
