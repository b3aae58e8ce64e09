//! Whether a swarm still has its quorum of working members: a pure tracker fed with each
//! decision's member outcomes and the time (from the injectable clock), kept in the
//! agent's sled memory so a restart remembers a loss.
//!
//! Owns: the loss and recovery rule. Never: reads a clock, changes the trading mode (the
//! agent reports each decision to the gateway, see the `swarm` module), or counts a
//! NOTHING or a disagreement as a failure.
//!
//! # The rule
//!
//! - Each decision adds a round: how many members were asked and how many *failed*
//!   (timeout, error, unreadable answer). Rounds older than `window` are dropped.
//! - Quorum is **lost** when the rounds in the window hold at least `min_answers` answers
//!   and more than `max_failed_share` of them failed.
//! - While lost, a round is *healthy* when at most `max_failed_share` of its members
//!   failed; the first healthy round starts the recovery clock, an unhealthy one stops it.
//!   Quorum is **restored** once the members have been healthy for `recover_after`; the
//!   window is then cleared, so the failures that caused the loss do not count again.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::QuorumLossConfig;
use crate::clock::Millis;
use crate::store::Record;

/// Rounds kept at most, so a tiny interval under a long window stays bounded.
const MAX_ROUNDS: usize = 10_000;

/// One decision's member outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Round {
    at_ms: Millis,
    asked: u32,
    failed: u32,
}

/// What changed with a round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// Nothing changed.
    Unchanged,
    /// Quorum just got lost: `failed` of `answers` in the window.
    Lost {
        failed: u64,
        answers: u64,
        share: f64,
    },
    /// Quorum is back after the members were healthy for `healthy_ms`.
    Restored { healthy_ms: u64 },
}

/// The tracker of one swarm agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuorumHealth {
    rounds: VecDeque<Round>,
    /// When quorum was lost; `None` while it holds.
    lost_since_ms: Option<Millis>,
    /// While lost: when the members' current healthy stretch began.
    healthy_since_ms: Option<Millis>,
}

impl Record for QuorumHealth {}

impl QuorumHealth {
    pub fn is_lost(&self) -> bool {
        self.lost_since_ms.is_some()
    }

    pub fn lost_since_ms(&self) -> Option<Millis> {
        self.lost_since_ms
    }

    /// Failed answers, all answers and their share over the rounds kept (the window as of
    /// the last round).
    pub fn failures(&self) -> (u64, u64, f64) {
        let failed: u64 = self.rounds.iter().map(|r| u64::from(r.failed)).sum();
        let answers: u64 = self.rounds.iter().map(|r| u64::from(r.asked)).sum();
        let share = if answers == 0 {
            0.0
        } else {
            failed as f64 / answers as f64
        };
        (failed, answers, share)
    }

    /// Adds one decision's outcomes at `now_ms`: `asked` members, `failed` of them failed.
    pub fn observe(
        &mut self,
        cfg: &QuorumLossConfig,
        now_ms: Millis,
        asked: usize,
        failed: usize,
    ) -> Transition {
        let asked = u32::try_from(asked).unwrap_or(u32::MAX);
        let failed = u32::try_from(failed).unwrap_or(u32::MAX).min(asked);
        let window_ms = Millis::try_from(cfg.window.as_millis()).unwrap_or(Millis::MAX);
        self.rounds.push_back(Round {
            at_ms: now_ms,
            asked,
            failed,
        });
        while self
            .rounds
            .front()
            .is_some_and(|r| r.at_ms <= now_ms.saturating_sub(window_ms))
            || self.rounds.len() > MAX_ROUNDS
        {
            self.rounds.pop_front();
        }
        if self.lost_since_ms.is_none() {
            let (failed, answers, share) = self.failures();
            if answers >= cfg.min_answers as u64 && share > cfg.max_failed_share {
                self.lost_since_ms = Some(now_ms);
                self.healthy_since_ms = None;
                return Transition::Lost {
                    failed,
                    answers,
                    share,
                };
            }
            return Transition::Unchanged;
        }
        let healthy = asked > 0 && f64::from(failed) / f64::from(asked) <= cfg.max_failed_share;
        if !healthy {
            self.healthy_since_ms = None;
            return Transition::Unchanged;
        }
        let since = *self.healthy_since_ms.get_or_insert(now_ms);
        let healthy_ms = now_ms.saturating_sub(since);
        let recover_ms = Millis::try_from(cfg.recover_after.as_millis()).unwrap_or(Millis::MAX);
        if healthy_ms >= recover_ms {
            self.lost_since_ms = None;
            self.healthy_since_ms = None;
            self.rounds.clear();
            return Transition::Restored {
                healthy_ms: u64::try_from(healthy_ms).unwrap_or(0),
            };
        }
        Transition::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cfg() -> QuorumLossConfig {
        QuorumLossConfig {
            window: Duration::from_secs(60),
            max_failed_share: 0.5,
            recover_after: Duration::from_secs(30),
            min_answers: 6,
        }
    }

    #[test]
    fn more_than_the_share_failing_over_the_window_loses_quorum() {
        let mut h = QuorumHealth::default();
        // 3 members, 2 fail: 2 of 3 is above 0.5 but only 3 answers (< min_answers 6).
        assert_eq!(h.observe(&cfg(), 0, 3, 2), Transition::Unchanged);
        assert!(!h.is_lost());
        // 4 of 6 failed: lost.
        match h.observe(&cfg(), 10_000, 3, 2) {
            Transition::Lost {
                failed,
                answers,
                share,
            } => {
                assert_eq!((failed, answers), (4, 6));
                assert!((share - 4.0 / 6.0).abs() < 1e-12);
            }
            other => panic!("expected Lost, got {other:?}"),
        }
        assert!(h.is_lost());
        assert_eq!(h.lost_since_ms(), Some(10_000));
    }

    #[test]
    fn exactly_the_share_and_nothing_votes_keep_quorum() {
        let mut h = QuorumHealth::default();
        // Half failing is not *more* than half.
        for t in 0..10 {
            assert_eq!(h.observe(&cfg(), t * 1000, 4, 2), Transition::Unchanged);
        }
        assert!(!h.is_lost());
    }

    #[test]
    fn failures_older_than_the_window_no_longer_count() {
        let mut h = QuorumHealth::default();
        h.observe(&cfg(), 0, 3, 3);
        // 61 s later the first round is out of the window: 2 of 6 would have been 5 of 9.
        assert_eq!(h.observe(&cfg(), 61_000, 3, 1), Transition::Unchanged);
        assert_eq!(h.observe(&cfg(), 62_000, 3, 1), Transition::Unchanged);
        let (failed, answers, _) = h.failures();
        assert_eq!((failed, answers), (2, 6));
        assert!(!h.is_lost());
    }

    #[test]
    fn recovers_only_after_recover_after_of_healthy_rounds() {
        let mut h = QuorumHealth::default();
        h.observe(&cfg(), 0, 3, 3);
        assert!(matches!(
            h.observe(&cfg(), 1_000, 3, 3),
            Transition::Lost { .. }
        ));
        // Healthy from 2 s: the clock starts.
        assert_eq!(h.observe(&cfg(), 2_000, 3, 0), Transition::Unchanged);
        assert_eq!(h.observe(&cfg(), 20_000, 3, 1), Transition::Unchanged);
        // An unhealthy round restarts the recovery clock.
        assert_eq!(h.observe(&cfg(), 25_000, 3, 2), Transition::Unchanged);
        assert_eq!(h.observe(&cfg(), 40_000, 3, 0), Transition::Unchanged);
        assert_eq!(h.observe(&cfg(), 69_999, 3, 0), Transition::Unchanged);
        assert!(h.is_lost());
        assert_eq!(
            h.observe(&cfg(), 70_000, 3, 0),
            Transition::Restored { healthy_ms: 30_000 }
        );
        assert!(!h.is_lost());
        // The failures that caused the loss are forgotten: one bad round of 3 answers is
        // below min_answers.
        assert_eq!(h.observe(&cfg(), 71_000, 3, 3), Transition::Unchanged);
        assert!(!h.is_lost());
    }

    #[test]
    fn a_zero_share_degrades_on_any_failure_and_the_state_round_trips() {
        let zero = QuorumLossConfig {
            max_failed_share: 0.0,
            min_answers: 1,
            ..cfg()
        };
        let mut h = QuorumHealth::default();
        assert_eq!(h.observe(&zero, 0, 3, 0), Transition::Unchanged);
        assert!(matches!(h.observe(&zero, 1, 3, 1), Transition::Lost { .. }));
        let json = serde_json::to_string(&h).unwrap();
        let back: QuorumHealth = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }
}
