//! Token bucket: holds up to `capacity` tokens, refilled by `refill_amount` every
//! `refill_every`, continuously.
//!
//! A token bucket admits exactly what a leaky bucket metering the same rate admits (a full
//! bucket of tokens is an empty bucket of water; see [`super::leaky_bucket`]), so it is
//! one: [`LeakyBucket::token_bucket`] builds a [`LeakyBucket`] in [`LeakMode::Meter`]. One
//! implementation behind both names, which stay because operators and venue docs use both
//! (`kind = "token_bucket"`).

use std::time::Duration;

use super::leaky_bucket::{LeakMode, LeakyBucket};
use crate::resilience::mono::Nanos;

impl LeakyBucket {
    /// A full token bucket. `capacity`, `refill_amount` and `refill_every` must be non-zero
    /// (config validation guarantees it; zero values are raised to 1 unit here).
    pub fn token_bucket(
        capacity: u64,
        refill_amount: u64,
        refill_every: Duration,
        now: Nanos,
    ) -> Self {
        Self::new(capacity, refill_amount, refill_every, LeakMode::Meter, now)
    }
}
