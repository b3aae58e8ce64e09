//! The few ways a remote call fails, as far as retrying and circuit breaking care.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// No answer in time (connect, first byte or total deadline).
    Timeout,
    /// Refused connection, reset, 5xx, 503/529 overloaded, unreadable body.
    Unavailable,
    /// 429 (or 418): slow down, optionally until the server's Retry-After.
    RateLimited { retry_after: Option<Duration> },
    /// 401/403: never retried; retrying cannot help and may lock the key.
    Auth,
    /// 400/404/422 and venue rejections: never retried; the request itself is wrong.
    BadRequest,
}

impl ErrorClass {
    pub fn label(&self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::RateLimited { .. } => "rate_limited",
            ErrorClass::Auth => "auth",
            ErrorClass::BadRequest => "bad_request",
        }
    }

    /// Whether this failure says anything about the target's health (counts toward a
    /// circuit breaker). A bad request is our fault, not the target's.
    pub fn counts_against_target(&self) -> bool {
        matches!(
            self,
            ErrorClass::Timeout | ErrorClass::Unavailable | ErrorClass::RateLimited { .. }
        )
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorClass::RateLimited {
                retry_after: Some(after),
            } => write!(f, "rate_limited (retry after {after:?})"),
            other => f.write_str(other.label()),
        }
    }
}
