//! Restart intensity: how many restarts a supervisor tolerates within a period before it
//! gives up and escalates to its parent.
//!
//! Owns: the sliding window of restart instants and its config section. Never: restarts or
//! escalation themselves; the supervisor acts on the verdict.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::validate::{join, Issues};

/// At most `max_restarts` restarts within any `period`; one more escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intensity {
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            period: Duration::from_secs(30),
        }
    }
}

impl Intensity {
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }

    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            !self.period.is_zero(),
            join(path, "period"),
            self.period,
            "a positive duration, e.g. \"30s\"",
        );
    }
}

/// Instants of the restarts that happened within the last period.
#[derive(Debug, Default)]
pub struct RestartWindow {
    stamps: VecDeque<Instant>,
}

/// What the window says about one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; the count includes this restart.
    Allowed { in_period: u32 },
    /// Over the limit; the count includes this restart.
    Exceeded { in_period: u32 },
}

impl RestartWindow {
    /// Records a restart at `now` and judges it against `limit`.
    pub fn record(&mut self, now: Instant, limit: &Intensity) -> Verdict {
        while let Some(oldest) = self.stamps.front() {
            if now.saturating_duration_since(*oldest) >= limit.period {
                self.stamps.pop_front();
            } else {
                break;
            }
        }
        self.stamps.push_back(now);
        let in_period = u32::try_from(self.stamps.len()).unwrap_or(u32::MAX);
        if in_period > limit.max_restarts {
            Verdict::Exceeded { in_period }
        } else {
            Verdict::Allowed { in_period }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_restarts_then_exceeds() {
        let limit = Intensity::new(2, Duration::from_secs(10));
        let mut w = RestartWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.record(t0, &limit), Verdict::Allowed { in_period: 1 });
        assert_eq!(
            w.record(t0 + Duration::from_secs(1), &limit),
            Verdict::Allowed { in_period: 2 }
        );
        assert_eq!(
            w.record(t0 + Duration::from_secs(2), &limit),
            Verdict::Exceeded { in_period: 3 }
        );
    }

    #[test]
    fn restarts_older_than_the_period_are_forgotten() {
        let limit = Intensity::new(2, Duration::from_secs(10));
        let mut w = RestartWindow::default();
        let t0 = Instant::now();
        w.record(t0, &limit);
        w.record(t0 + Duration::from_secs(5), &limit);
        // t0 has left the window; t0+5 has not.
        assert_eq!(
            w.record(t0 + Duration::from_secs(10), &limit),
            Verdict::Allowed { in_period: 2 }
        );
        assert_eq!(
            w.record(t0 + Duration::from_secs(11), &limit),
            Verdict::Exceeded { in_period: 3 }
        );
    }

    #[test]
    fn zero_max_restarts_escalates_on_first_failure() {
        let limit = Intensity::new(0, Duration::from_secs(1));
        let mut w = RestartWindow::default();
        assert_eq!(
            w.record(Instant::now(), &limit),
            Verdict::Exceeded { in_period: 1 }
        );
    }

    #[test]
    fn zero_period_is_rejected() {
        let mut issues = Issues::default();
        Intensity::new(3, Duration::ZERO).validate("sup.intensity", &mut issues);
        assert_eq!(issues.0.len(), 1);
        assert_eq!(issues.0[0].key, "sup.intensity.period");
    }
}
