//! Delay between a child's failure and its restart: exponential, capped, with jitter.
//!
//! Owns: the delay formula and its config section. Never: timers or restart decisions; the
//! supervisor asks for a delay and schedules the restart itself.
//!
//! Jitter spreads restarts of many children that failed together (say, every pool after a
//! provider outage) so they do not hit the same dependency at the same instant. The random
//! source is passed in, so tests and benches use a seeded generator and get the same delays
//! on every run.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::validate::{join, Issues};

/// Backoff between restarts of one child.
///
/// The delay before the `n`-th consecutive restart is
/// `min(initial * multiplier^(n-1), max)`, then scaled by a uniform factor in
/// `[1 - jitter, 1 + jitter]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of the delay, in `[0, 1)`, by which it may be moved either way.
    pub jitter: f64,
    /// Seed of the jitter generator; `None` seeds from the OS. Set it for reproducible runs.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            seed: None,
        }
    }
}

impl Backoff {
    /// No delay at all; for tests and benches that measure the restart itself.
    pub fn immediate() -> Self {
        Self {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 1.0,
            jitter: 0.0,
            seed: Some(0),
        }
    }

    /// A fixed delay without jitter.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            initial: delay,
            max: delay,
            multiplier: 1.0,
            jitter: 0.0,
            seed: Some(0),
        }
    }

    /// The delay before the `consecutive`-th restart in a row (1 for the first), before
    /// jitter.
    pub fn base_delay(&self, consecutive: u32) -> Duration {
        let exponent = consecutive.saturating_sub(1).min(1024) as i32;
        let factor = self.multiplier.max(1.0).powi(exponent);
        let secs = self.initial.as_secs_f64() * factor;
        // f64 overflow or a huge product ends at the cap; the cap is what the operator set.
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        Duration::from_secs_f64(secs)
    }

    /// The delay before the `consecutive`-th restart in a row, with jitter drawn from `rng`.
    pub fn delay(&self, consecutive: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay(consecutive);
        let jitter = self.jitter.clamp(0.0, 0.999);
        if jitter == 0.0 || base.is_zero() {
            return base;
        }
        let scale = 1.0 + rng.gen_range(-jitter..=jitter);
        base.mul_f64(scale)
    }

    /// Reports bad values under the config key `path`.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.initial <= self.max,
            join(path, "initial"),
            self.initial,
            format!("at most `max` ({:?})", self.max),
        );
        issues.check(
            self.multiplier.is_finite() && self.multiplier >= 1.0,
            join(path, "multiplier"),
            self.multiplier,
            "a finite number >= 1.0",
        );
        issues.check(
            (0.0..1.0).contains(&self.jitter),
            join(path, "jitter"),
            self.jitter,
            "a fraction in [0, 1)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delay_doubles_then_caps() {
        let b = Backoff {
            initial: ms(100),
            max: ms(1000),
            multiplier: 2.0,
            jitter: 0.0,
            seed: None,
        };
        let delays: Vec<_> = (1..=6).map(|n| b.base_delay(n)).collect();
        assert_eq!(
            delays,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(b.base_delay(u32::MAX), ms(1000));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_is_reproducible() {
        let b = Backoff {
            initial: ms(1000),
            max: ms(1000),
            multiplier: 2.0,
            jitter: 0.25,
            seed: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let first: Vec<_> = (0..200).map(|_| b.delay(1, &mut rng)).collect();
        assert!(first.iter().all(|d| *d >= ms(750) && *d <= ms(1250)));
        // Not all equal: jitter actually moves the delay.
        assert!(first.iter().any(|d| *d != first[0]));
        let mut again = ChaCha8Rng::seed_from_u64(7);
        let second: Vec<_> = (0..200).map(|_| b.delay(1, &mut again)).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn validation_names_each_bad_key() {
        let b = Backoff {
            initial: ms(10),
            max: ms(5),
            multiplier: 0.5,
            jitter: 1.5,
            seed: None,
        };
        let mut issues = Issues::default();
        b.validate("supervisor.backoff", &mut issues);
        let keys: Vec<_> = issues.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "supervisor.backoff.initial",
                "supervisor.backoff.multiplier",
                "supervisor.backoff.jitter"
            ]
        );
        let mut ok = Issues::default();
        Backoff::default().validate("b", &mut ok);
        assert!(ok.is_empty());
    }
}
