//! The venue side of the resilience guard ([`crate::resilience::Guard`]), shared by the
//! HTTP venues.
//!
//! Owns: classifying a [`VenueError`] for the guard (retry and breaker) and turning a
//! guard's [`Refusal`] into the venue's own error, each naming what it means for an
//! order: a pause, limiter or breaker refusal was never sent. Never: decides what is
//! retried — the guard's rule does (orders, cancels and leverage changes go out at most
//! once; an unknown outcome is resolved by client id, not re-sent).

use crate::resilience::{Classify, ErrorClass, LimitError, Refusal};

use super::venue::VenueError;

impl Classify for VenueError {
    fn class(&self) -> ErrorClass {
        VenueError::class(self)
    }
}

impl From<Refusal> for VenueError {
    fn from(refusal: Refusal) -> Self {
        let venue = refusal.target().to_string();
        let reason = refusal.to_string();
        match refusal {
            Refusal::Paused { retry_in, .. } => VenueError::RateLimited {
                venue,
                retry_after: Some(retry_in),
                reason,
            },
            Refusal::Limited { error, .. } => match error {
                LimitError::WouldPassDeadline { wait, .. } => VenueError::RateLimited {
                    venue,
                    retry_after: Some(wait),
                    reason,
                },
                LimitError::QueueFull { .. } => VenueError::Unavailable { venue, reason },
                LimitError::CostExceedsCapacity { .. } | LimitError::UnknownEndpoint { .. } => {
                    VenueError::InvalidRequest { venue, reason }
                }
            },
            Refusal::Breaker(e) => VenueError::Unavailable {
                venue,
                reason: e.to_string(),
            },
            Refusal::SendByPassed { .. } => VenueError::NotSent { venue, reason },
            Refusal::DeadlineElapsed { what, after, .. } => {
                VenueError::Timeout { venue, what, after }
            }
        }
    }
}
