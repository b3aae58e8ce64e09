//! Monotonic nanosecond time source for limiters, queues and fallback ages.
//!
//! Owns: the [`MonotonicClock`] trait, the default clock on tokio's `Instant` (so
//! `tokio::time::pause` drives it in tests), a cheaper TSC-based clock for hot paths
//! ([`QuantaMonotonic`], governor's quanta clock; it does not follow `pause`), and a
//! manual clock for property tests. Never: wall-clock time; breakers persist wall time
//! and use [`crate::clock::Clock`] instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Nanoseconds since an arbitrary, fixed origin of one clock.
pub type Nanos = u64;

/// A monotonic clock in nanoseconds since its own origin.
pub trait MonotonicClock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> Nanos;
}

/// Shared handle to a monotonic clock.
pub type SharedMonotonic = Arc<dyn MonotonicClock>;

/// Production clock: tokio's monotonic `Instant`, which follows `tokio::time::pause` and
/// `advance` in tests and is `std::time::Instant` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// A shared handle to a new clock.
    pub fn shared() -> SharedMonotonic {
        Arc::new(Self::new())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock for TokioClock {
    fn now(&self) -> Nanos {
        // u64 nanoseconds last 584 years past the origin.
        self.origin.elapsed().as_nanos() as u64
    }
}

/// governor's quanta (TSC) clock: about a third of the cost of reading `Instant`. Real
/// time only — tests that pause tokio's clock must use [`TokioClock`], or the limiter
/// would not see the paused time move.
#[derive(Debug, Clone)]
pub struct QuantaMonotonic {
    clock: governor::clock::QuantaClock,
    origin: governor::clock::QuantaInstant,
}

impl QuantaMonotonic {
    pub fn new() -> Self {
        use governor::clock::Clock;
        let clock = governor::clock::QuantaClock::default();
        let origin = clock.now();
        Self { clock, origin }
    }

    pub fn shared() -> SharedMonotonic {
        Arc::new(Self::new())
    }
}

impl Default for QuantaMonotonic {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock for QuantaMonotonic {
    fn now(&self) -> Nanos {
        use governor::clock::{Clock, Reference};
        self.clock.now().duration_since(self.origin).as_u64()
    }
}

/// A clock that moves only when told to; for deterministic tests and benches.
#[derive(Debug, Default)]
pub struct ManualMonotonic {
    now: AtomicU64,
}

impl ManualMonotonic {
    pub fn new(start: Nanos) -> Arc<Self> {
        Arc::new(Self {
            now: AtomicU64::new(start),
        })
    }
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(nanos_of(by), Ordering::SeqCst);
    }
    pub fn set(&self, now: Nanos) {
        self.now.store(now, Ordering::SeqCst);
    }
}

impl MonotonicClock for ManualMonotonic {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::SeqCst)
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub fn nanos_of(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quanta_clock_moves_forward_with_real_time() {
        let c = QuantaMonotonic::new();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.now();
        assert!(b - a >= 15_000_000, "{a} -> {b}");
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock::new();
        let a = c.now();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(c.now() - a, 5_000_000_000);
    }
}
