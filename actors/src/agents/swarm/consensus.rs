//! Swarm consensus as a pure function: every member's ballot in, one verdict out.
//!
//! Owns: the counting rule. Never: asks a model, reads a clock, or applies the agent's
//! `min_confidence` (the trading agent applies it to the verdict as to a single model).
//!
//! # The rule
//!
//! - Quorum is counted over **all** members, not over those that answered: with `n`
//!   members, `majority` needs `floor(n/2) + 1` votes, `supermajority` `ceil(2n/3)`,
//!   `unanimous` `n`, a count `k` needs `k`.
//! - A timeout, an error, an unreadable answer (or one about another symbol) and a NOTHING
//!   are abstentions: each is counted with its reason and backs no action.
//! - The verdict is BUY or SELL when that action alone has at least the quorum of votes;
//!   when neither has, NOTHING with reason [`ConsensusReason::NoQuorum`]; when both have
//!   (possible only with a small count quorum) NOTHING with [`ConsensusReason::Conflict`].
//! - The verdict's confidence is the mean of the agreeing members' confidences; it is
//!   *defaulted* when any agreeing member stated none (so an answer without a confidence
//!   never trades by default, in a swarm as alone). A NOTHING verdict has confidence 0.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::config::Quorum;
use crate::agents::member::{Abstention, MemberAnswer};
use crate::models::decision::round_confidence;
use crate::models::TradeAction;

/// One member's ballot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ballot {
    /// A vote for BUY or SELL (never NOTHING: that is [`Abstention::Nothing`]).
    Vote {
        action: Direction,
        confidence: f64,
        /// The answer stated no confidence; the parser's default was used.
        confidence_defaulted: bool,
    },
    Abstain(Abstention),
}

/// An action a member can vote for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Buy,
    Sell,
}

impl Direction {
    pub fn action(self) -> TradeAction {
        match self {
            Direction::Buy => TradeAction::Buy,
            Direction::Sell => TradeAction::Sell,
        }
    }
}

impl Ballot {
    /// The ballot of a parsed answer: BUY and SELL vote, NOTHING abstains.
    pub fn of(action: TradeAction, confidence: f64, confidence_defaulted: bool) -> Self {
        let action = match action {
            TradeAction::Buy => Direction::Buy,
            TradeAction::Sell => Direction::Sell,
            TradeAction::Nothing => return Ballot::Abstain(Abstention::Nothing),
        };
        Ballot::Vote {
            action,
            confidence,
            confidence_defaulted,
        }
    }
}

/// Why the swarm reached its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusReason {
    /// The verdict's action had at least the quorum of votes.
    Quorum,
    /// No action had the quorum (all abstained included).
    NoQuorum,
    /// BUY and SELL both had the quorum (a count quorum of at most half the members).
    Conflict,
}

impl ConsensusReason {
    /// The metric label (`orrery_swarm_verdicts_total{reason}`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusReason::Quorum => "quorum",
            ConsensusReason::NoQuorum => "no_quorum",
            ConsensusReason::Conflict => "conflict",
        }
    }
}

/// The count of every ballot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub buy: usize,
    pub sell: usize,
    /// Abstentions by reason (only reasons that occurred).
    pub abstentions: BTreeMap<&'static str, usize>,
}

impl Tally {
    pub fn of(ballots: &[Ballot]) -> Self {
        let mut t = Tally::default();
        for b in ballots {
            match b {
                Ballot::Vote {
                    action: Direction::Buy,
                    ..
                } => t.buy += 1,
                Ballot::Vote {
                    action: Direction::Sell,
                    ..
                } => t.sell += 1,
                Ballot::Abstain(a) => *t.abstentions.entry(a.as_str()).or_default() += 1,
            }
        }
        t
    }

    /// The tally of journaled member answers (abstention first, else the verdict).
    pub fn of_members(members: &[MemberAnswer]) -> Self {
        let ballots: Vec<Ballot> = members
            .iter()
            .map(|m| match (m.abstention, m.verdict.as_deref()) {
                (Some(a), _) => Ballot::Abstain(a),
                (None, Some("BUY")) => {
                    Ballot::of(TradeAction::Buy, m.confidence.unwrap_or(0.0), false)
                }
                (None, Some("SELL")) => {
                    Ballot::of(TradeAction::Sell, m.confidence.unwrap_or(0.0), false)
                }
                (None, _) => Ballot::Abstain(Abstention::Nothing),
            })
            .collect();
        Tally::of(&ballots)
    }

    pub fn abstained(&self) -> usize {
        self.abstentions.values().sum()
    }
}

/// `BUY:3 SELL:1 abstain:1(timeout)`; several reasons read `abstain:3(nothing:2,timeout)`.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BUY:{} SELL:{} abstain:{}",
            self.buy,
            self.sell,
            self.abstained()
        )?;
        if !self.abstentions.is_empty() {
            let reasons: Vec<String> = self
                .abstentions
                .iter()
                .map(|(reason, n)| {
                    if *n == 1 {
                        reason.to_string()
                    } else {
                        format!("{reason}:{n}")
                    }
                })
                .collect();
            write!(f, "({})", reasons.join(","))?;
        }
        Ok(())
    }
}

/// The swarm's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Consensus {
    pub verdict: TradeAction,
    /// Mean confidence of the agreeing members; 0 for NOTHING.
    pub confidence: f64,
    /// Some agreeing member stated no confidence.
    pub confidence_defaulted: bool,
    pub reason: ConsensusReason,
    /// Votes an action needed.
    pub needed: usize,
    pub tally: Tally,
}

impl Consensus {
    /// The reason as journaled: `quorum: BUY 3 of 5 (needed 3)`, `no quorum: ...`,
    /// `conflict: ...`.
    pub fn describe(&self) -> String {
        let members = self.tally.buy + self.tally.sell + self.tally.abstained();
        match self.reason {
            ConsensusReason::Quorum => {
                let (label, votes) = match self.verdict {
                    TradeAction::Sell => ("SELL", self.tally.sell),
                    _ => ("BUY", self.tally.buy),
                };
                format!(
                    "quorum: {label} {votes} of {members} members (needed {}); {}",
                    self.needed, self.tally
                )
            }
            ConsensusReason::NoQuorum => format!(
                "no quorum: no action had {} of {members} members; {}",
                self.needed, self.tally
            ),
            ConsensusReason::Conflict => format!(
                "conflict: BUY and SELL both reached {} of {members} members; {}",
                self.needed, self.tally
            ),
        }
    }
}

/// The verdict of `ballots` (one per member, every member included) under `quorum`.
pub fn consensus(ballots: &[Ballot], quorum: Quorum) -> Consensus {
    let tally = Tally::of(ballots);
    let needed = quorum.needed(ballots.len());
    let reached = |votes: usize| votes > 0 && votes >= needed;
    let (winner, reason) = match (reached(tally.buy), reached(tally.sell)) {
        (true, false) => (Some(Direction::Buy), ConsensusReason::Quorum),
        (false, true) => (Some(Direction::Sell), ConsensusReason::Quorum),
        (true, true) => (None, ConsensusReason::Conflict),
        (false, false) => (None, ConsensusReason::NoQuorum),
    };
    let Some(winner) = winner else {
        return Consensus {
            verdict: TradeAction::Nothing,
            confidence: 0.0,
            confidence_defaulted: false,
            reason,
            needed,
            tally,
        };
    };
    let (mut sum, mut count, mut defaulted) = (0.0, 0usize, false);
    for b in ballots {
        if let Ballot::Vote {
            action,
            confidence,
            confidence_defaulted,
        } = b
        {
            if *action == winner {
                sum += confidence;
                count += 1;
                defaulted |= confidence_defaulted;
            }
        }
    }
    Consensus {
        verdict: winner.action(),
        // `count >= needed >= 1` here (the winner reached its quorum). Rounded as every
        // parsed confidence is, so a mean of equal votes is that vote.
        confidence: round_confidence(sum / count.max(1) as f64),
        confidence_defaulted: defaulted,
        reason,
        needed,
        tally,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn buy(c: f64) -> Ballot {
        Ballot::of(TradeAction::Buy, c, false)
    }
    fn sell(c: f64) -> Ballot {
        Ballot::of(TradeAction::Sell, c, false)
    }
    fn abstain(a: Abstention) -> Ballot {
        Ballot::Abstain(a)
    }

    #[test]
    fn the_issue_swarm_buy_buy_sell_hang_garbage_needs_three_for_a_majority() {
        let ballots = [
            buy(0.8),
            buy(0.6),
            sell(0.9),
            abstain(Abstention::Timeout),
            abstain(Abstention::Unparseable),
        ];
        // 5 members: a majority is 3; BUY has 2 → NOTHING, no quorum.
        let c = consensus(&ballots, Quorum::Majority);
        assert_eq!(c.verdict, TradeAction::Nothing);
        assert_eq!(c.reason, ConsensusReason::NoQuorum);
        assert_eq!(c.needed, 3);
        assert_eq!(
            c.tally.to_string(),
            "BUY:2 SELL:1 abstain:2(timeout,unparseable)"
        );
        assert!(c.describe().starts_with("no quorum"), "{}", c.describe());
        // A count of 2 is met by BUY alone: BUY at the mean of the two BUY confidences.
        let c = consensus(&ballots, Quorum::Count(2));
        assert_eq!(c.verdict, TradeAction::Buy);
        assert_eq!(c.reason, ConsensusReason::Quorum);
        assert!((c.confidence - 0.7).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn quorum_sizes_are_counted_over_all_members() {
        assert_eq!(Quorum::Majority.needed(5), 3);
        assert_eq!(Quorum::Majority.needed(4), 3);
        assert_eq!(Quorum::Majority.needed(2), 2);
        assert_eq!(Quorum::Supermajority.needed(3), 2);
        assert_eq!(Quorum::Supermajority.needed(4), 3);
        assert_eq!(Quorum::Supermajority.needed(6), 4);
        assert_eq!(Quorum::Supermajority.needed(7), 5);
        assert_eq!(Quorum::Unanimous.needed(7), 7);
        assert_eq!(Quorum::Count(2).needed(7), 2);
    }

    #[test]
    fn both_sides_at_a_small_count_quorum_is_a_conflict_and_nothing() {
        let c = consensus(
            &[buy(0.9), sell(0.9), buy(0.9), sell(0.9)],
            Quorum::Count(2),
        );
        assert_eq!(c.verdict, TradeAction::Nothing);
        assert_eq!(c.reason, ConsensusReason::Conflict);
        assert!(c.describe().starts_with("conflict"), "{}", c.describe());
    }

    #[test]
    fn all_abstaining_is_nothing_without_quorum() {
        let c = consensus(
            &[
                abstain(Abstention::Nothing),
                abstain(Abstention::Timeout),
                abstain(Abstention::Error),
            ],
            Quorum::Count(1),
        );
        assert_eq!(c.verdict, TradeAction::Nothing);
        assert_eq!(c.reason, ConsensusReason::NoQuorum);
        assert_eq!(
            c.tally.to_string(),
            "BUY:0 SELL:0 abstain:3(error,nothing,timeout)"
        );
    }

    #[test]
    fn a_defaulted_confidence_among_the_agreeing_members_marks_the_verdict() {
        let ballots = [
            Ballot::of(TradeAction::Sell, 0.5, true),
            sell(0.9),
            buy(0.9),
        ];
        let c = consensus(&ballots, Quorum::Majority);
        assert_eq!(c.verdict, TradeAction::Sell);
        assert!(c.confidence_defaulted);
        assert!((c.confidence - 0.7).abs() < 1e-12);
        // A defaulted confidence on the losing side does not mark it.
        let c = consensus(
            &[buy(0.8), buy(0.6), Ballot::of(TradeAction::Sell, 0.5, true)],
            Quorum::Majority,
        );
        assert!(!c.confidence_defaulted);
    }

    fn ballot() -> impl Strategy<Value = Ballot> {
        prop_oneof![
            (0.0..=1.0f64, any::<bool>()).prop_map(|(c, d)| Ballot::of(TradeAction::Buy, c, d)),
            (0.0..=1.0f64, any::<bool>()).prop_map(|(c, d)| Ballot::of(TradeAction::Sell, c, d)),
            prop_oneof![
                Just(Abstention::Timeout),
                Just(Abstention::Error),
                Just(Abstention::Unparseable),
                Just(Abstention::Nothing),
            ]
            .prop_map(Ballot::Abstain),
        ]
    }

    fn quorum_for(n: usize) -> impl Strategy<Value = Quorum> {
        prop_oneof![
            Just(Quorum::Majority),
            Just(Quorum::Supermajority),
            Just(Quorum::Unanimous),
            (1..=n as u32).prop_map(Quorum::Count),
        ]
    }

    fn swarm() -> impl Strategy<Value = (Vec<Ballot>, Quorum)> {
        prop::collection::vec(ballot(), 2..12).prop_flat_map(|b| {
            let n = b.len();
            (Just(b), quorum_for(n))
        })
    }

    fn votes_for(ballots: &[Ballot], action: TradeAction) -> usize {
        ballots
            .iter()
            .filter(|b| matches!(b, Ballot::Vote { action: a, .. } if a.action() == action))
            .count()
    }

    proptest! {
        #[test]
        fn never_an_action_with_fewer_than_the_quorum_of_all_members((ballots, quorum) in swarm()) {
            let c = consensus(&ballots, quorum);
            if c.verdict != TradeAction::Nothing {
                prop_assert!(votes_for(&ballots, c.verdict) >= quorum.needed(ballots.len()));
                prop_assert_eq!(c.reason, ConsensusReason::Quorum);
                let other = if c.verdict == TradeAction::Buy { TradeAction::Sell } else { TradeAction::Buy };
                prop_assert!(votes_for(&ballots, other) < quorum.needed(ballots.len()));
            }
        }

        #[test]
        fn abstentions_never_help_an_action((ballots, quorum) in swarm(), extra in 1usize..4) {
            let before = consensus(&ballots, quorum);
            // The reason of an abstention does not matter ...
            let relabelled: Vec<Ballot> = ballots.iter().map(|b| match b {
                Ballot::Abstain(_) => Ballot::Abstain(Abstention::Timeout),
                v => *v,
            }).collect();
            prop_assert_eq!(consensus(&relabelled, quorum).verdict, before.verdict);
            // ... and more abstaining members never turn NOTHING into an action.
            if before.verdict == TradeAction::Nothing {
                let mut more = ballots.clone();
                more.extend((0..extra).map(|_| Ballot::Abstain(Abstention::Error)));
                prop_assert_eq!(consensus(&more, quorum).verdict, TradeAction::Nothing);
            }
            // Turning a vote into an abstention never makes that vote's action the verdict
            // when it was not.
            for (i, b) in ballots.iter().enumerate() {
                if let Ballot::Vote { action, .. } = b {
                    if before.verdict != action.action() {
                        let mut fewer = ballots.clone();
                        fewer[i] = Ballot::Abstain(Abstention::Unparseable);
                        prop_assert_ne!(consensus(&fewer, quorum).verdict, action.action());
                    }
                }
            }
        }

        #[test]
        fn permutation_invariant((ballots, shuffled, quorum) in swarm().prop_flat_map(|(b, q)| (Just(b.clone()), Just(b).prop_shuffle(), Just(q)))) {
            let a = consensus(&ballots, quorum);
            let b = consensus(&shuffled, quorum);
            prop_assert_eq!(a.verdict, b.verdict);
            prop_assert_eq!(a.reason, b.reason);
            prop_assert_eq!(a.tally, b.tally);
            // Equal up to the four-decimal rounding of a mean summed in another order.
            prop_assert!((a.confidence - b.confidence).abs() <= 1e-4 + 1e-12);
            prop_assert_eq!(a.confidence_defaulted, b.confidence_defaulted);
        }

        #[test]
        fn unanimous_buy_is_buy_at_any_quorum(confidences in prop::collection::vec(0.0..=1.0f64, 2..12), pick in any::<prop::sample::Index>()) {
            let ballots: Vec<Ballot> = confidences.iter().map(|c| buy(*c)).collect();
            let n = ballots.len();
            for quorum in [Quorum::Majority, Quorum::Supermajority, Quorum::Unanimous, Quorum::Count(pick.index(n) as u32 + 1)] {
                let c = consensus(&ballots, quorum);
                prop_assert_eq!(c.verdict, TradeAction::Buy);
                let mean = confidences.iter().sum::<f64>() / n as f64;
                prop_assert!((c.confidence - mean).abs() <= 5e-5 + 1e-12);
            }
        }
    }
}
