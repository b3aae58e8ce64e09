//! How urgent a venue call is: the class of its endpoint, raised by the flow it serves.
//!
//! Owns: the endpoint → [`Priority`] table of the connector API, the priority of an order
//! (reduce-only orders cut risk, so they are High like cancels), and the flow priority a
//! task inherits. The gateway runs a close, a kill-switch close or a cancel inside
//! [`within`]`(High, …)`, so the instrument, quote and position reads that flow needs are
//! High too instead of queueing behind market data; the connector runs each venue call
//! inside its priority, so a venue's own rate-limit waits use it ([`effective`]). Never:
//! queues anything (the connector's priority queue does) or judges what reduces risk
//! beyond `reduce_only`.

use std::future::Future;

use crate::resilience::Priority;

tokio::task_local! {
    static FLOW: Priority;
}

/// Runs `fut` as part of a flow of priority `priority`. Inside a more urgent flow, that
/// flow's priority holds: a close's reads never drop to Medium because they pass through
/// code that starts a Medium flow.
pub async fn within<F: Future>(priority: Priority, fut: F) -> F::Output {
    FLOW.scope(effective(priority), fut).await
}

/// The priority of the flow this task runs in, if any.
pub fn inherited() -> Option<Priority> {
    FLOW.try_with(|p| *p).ok()
}

/// The more urgent of a call's own priority and its flow's.
pub fn effective(own: Priority) -> Priority {
    // `Priority` orders High < Medium < Low.
    inherited().map_or(own, |flow| own.min(flow))
}

/// The priority of a call to a connector endpoint on its own, outside any flow.
///
/// Cancels are High; new orders and leverage changes Medium; market data, account and
/// order-status reads Low (an order-status read made while resolving an order runs inside
/// that order's flow and takes its priority).
pub fn of_endpoint(endpoint: &str) -> Priority {
    match endpoint {
        "cancel_order" => Priority::High,
        "place_order" | "set_leverage" => Priority::Medium,
        _ => Priority::Low,
    }
}

/// The priority of an order: reduce-only orders (closes, kill-switch closes) go before
/// new orders.
pub fn of_order(reduce_only: bool) -> Priority {
    if reduce_only {
        Priority::High
    } else {
        Priority::Medium
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flow_raises_its_calls_and_a_nested_flow_never_lowers_it() {
        assert_eq!(inherited(), None);
        assert_eq!(effective(of_endpoint("quote")), Priority::Low);
        within(Priority::High, async {
            assert_eq!(effective(of_endpoint("quote")), Priority::High);
            within(Priority::Medium, async {
                assert_eq!(inherited(), Some(Priority::High));
                assert_eq!(effective(Priority::Low), Priority::High);
            })
            .await;
        })
        .await;
        within(Priority::Medium, async {
            assert_eq!(effective(of_endpoint("cancel_order")), Priority::High);
            assert_eq!(effective(of_endpoint("positions")), Priority::Medium);
        })
        .await;
        assert_eq!(of_order(true), Priority::High);
        assert_eq!(of_order(false), Priority::Medium);
    }
}
