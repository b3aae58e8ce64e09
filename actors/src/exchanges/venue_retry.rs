//! The retry loop around one venue read, shared by the HTTP venues.
//!
//! Owns: classifying a [`VenueError`] for the resilience kit (retry and breaker) and
//! turning the retry loop's outcome back into the venue's own error. Never: order sends or cancels —
//! those go out at most once; an unknown outcome is resolved by client id, not re-sent.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::venue::{VenueError, VenueResult};
use crate::resilience::{Classify, ErrorClass, RetryError, RetryPolicy};

impl Classify for VenueError {
    fn class(&self) -> ErrorClass {
        VenueError::class(self)
    }
}

/// Runs `attempt` under `retry` until it succeeds, the policy gives up or `deadline`
/// passes; the error is the last attempt's, or a timeout naming `what` when no attempt
/// finished in time.
pub(crate) async fn read_with_retry<T, F, Fut>(
    retry: &RetryPolicy,
    venue: &str,
    what: String,
    timeout: Duration,
    deadline: Instant,
    mut attempt: F,
) -> VenueResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = VenueResult<T>>,
{
    retry
        .run(deadline, &mut attempt)
        .await
        .map_err(|e| match e {
            RetryError::NotRetryable { error, .. }
            | RetryError::Exhausted { error, .. }
            | RetryError::WouldPassDeadline { error, .. } => error,
            RetryError::DeadlineElapsed { .. } => VenueError::Timeout {
                venue: venue.to_string(),
                what,
                after: timeout,
            },
        })
}
