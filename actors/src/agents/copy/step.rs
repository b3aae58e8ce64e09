//! The mirroring decision: from the leader's position and ours, the one step that brings
//! ours to the scaled, clamped target — a pure function, so every rule is tested on its
//! own and by properties (see the tests below), as NautilusTrader tests reconciliation.
//!
//! Owns: the sizing rule (`ratio` or `fixed_usd` with its anchor), the limits
//! (`max_position_usd`, `max_total_usd`), the staleness rule and the allowlist verdict.
//! Never: reads a venue or the clock, rounds to a venue's lot (the gateway does), or
//! decides whether a step was done (the ledger's fills do).
//!
//! Rules, in order:
//! - **Target.** `ratio`: leader size × ratio. `fixed_usd`: when the leader opens (or
//!   flips), our size is `fixed_usd / price` and the pair (leader size, our size) is kept
//!   as the [`Anchor`]; after that our target is our size at open × leader size / leader
//!   size at open, so adds and reductions scale with the leader. A flat leader clears it.
//! - **Limits.** They bound what a step *adds*: a risk-increasing step stops at
//!   `max_position_usd` and at what `max_total_usd` leaves beside this agent's other
//!   mirrored positions (both at `price`). A position above a limit only because the
//!   price moved is not cut: it follows the leader down, never the price.
//! - **Staleness.** A risk-increasing step is skipped when `price` moved more than
//!   `stale_pct` % from the leader's fill price. A flip whose new side is stale still
//!   closes (the closing part reduces). Reductions and closes are never skipped.
//! - **Small steps.** A step worth less than `min_step_usd` is not sent (a lot's rounding
//!   left over is not chased), unless it closes the position.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Decimals a target keeps.
const DP: u32 = 12;

/// How the follower's size follows the leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sizing {
    /// Our size = leader size × ratio.
    Ratio(Decimal),
    /// On open, `fixed_usd / price`; then scaled by the leader's size relative to its size
    /// at open.
    FixedUsd(Decimal),
}

/// The leader's size and ours when the mirrored position opened (`fixed_usd` sizing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub leader: Decimal,
    pub follower: Decimal,
}

/// The limits of one copy agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_position_usd: Decimal,
    pub max_total_usd: Decimal,
    pub stale_pct: Decimal,
    pub min_step_usd: Decimal,
}

/// What one decision sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepInput {
    pub sizing: Sizing,
    pub limits: Limits,
    /// The leader's position (signed: negative is short).
    pub leader_size: Decimal,
    /// Our mirrored position for this leader and symbol (signed), from our fills.
    pub mirrored: Decimal,
    pub anchor: Option<Anchor>,
    /// The price now (our venue's mid); positive.
    pub price: Decimal,
    /// The price of the leader's newest fill in this symbol, when known.
    pub leader_price: Option<Decimal>,
    /// USD notional of this agent's other mirrored positions (all leaders and symbols).
    pub other_usd: Decimal,
    /// Whether the symbol is in the allowlist.
    pub allowed: bool,
}

/// Why a step was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// The symbol is not in `symbols`.
    NotAllowed,
    /// The price moved more than `stale_pct` since the leader's fill (risk-increasing only).
    Stale,
    /// A limit leaves no room to add.
    AtLimit,
    /// Worth less than `min_step_usd`.
    TooSmall,
}

impl Skip {
    pub fn label(self) -> &'static str {
        match self {
            Skip::NotAllowed => "skipped_not_allowed",
            Skip::Stale => "skipped_stale",
            Skip::AtLimit => "skipped_at_limit",
            Skip::TooSmall => "skipped_too_small",
        }
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Already at the target.
    Hold,
    /// Send `size` (signed: positive buys); `reduce_only` when it only reduces.
    Send {
        size: Decimal,
        reduce_only: bool,
    },
    Skip(Skip),
}

/// The decision for one leader and symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The scaled leader position before the limits.
    pub raw_target: Decimal,
    /// Where the step takes our position (= `mirrored` when nothing is sent).
    pub target: Decimal,
    /// The anchor to keep once the step is done.
    pub anchor: Option<Anchor>,
    pub action: Action,
}

fn sign(d: Decimal) -> i32 {
    if d > Decimal::ZERO {
        1
    } else if d < Decimal::ZERO {
        -1
    } else {
        0
    }
}

fn with_sign(magnitude: Decimal, s: i32) -> Decimal {
    if s < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The scaled leader position and the anchor it rests on.
fn raw_target(input: &StepInput) -> (Decimal, Option<Anchor>) {
    let leader = input.leader_size;
    match input.sizing {
        Sizing::Ratio(ratio) => (leader * ratio, None),
        Sizing::FixedUsd(usd) => {
            if leader.is_zero() {
                return (Decimal::ZERO, None);
            }
            match input.anchor {
                Some(a) if sign(a.leader) == sign(leader) && !a.leader.is_zero() => {
                    (a.follower * leader / a.leader, Some(a))
                }
                // A new open (or the other side after a flip): fixed_usd at the price now.
                _ => {
                    let follower = with_sign(usd / input.price, sign(leader));
                    (follower, Some(Anchor { leader, follower }))
                }
            }
        }
    }
}

/// The one step for `input` (see the module docs for the rules).
pub fn decide(input: &StepInput) -> Step {
    let (raw, anchor) = raw_target(input);
    // Sizes past 12 decimals mean nothing at any venue (the gateway rounds to the lot);
    // cut there so a step and the position it leads to add up exactly.
    let raw = raw.round_dp_with_strategy(DP, RoundingStrategy::ToZero);
    let mirrored = input.mirrored;
    let hold = |action| Step {
        raw_target: raw,
        target: mirrored,
        anchor: input.anchor,
        action,
    };
    if !input.allowed {
        return hold(Action::Skip(Skip::NotAllowed));
    }
    let price = input.price;
    // What a risk-increasing step may reach, in base units.
    let room_total = (input.limits.max_total_usd - input.other_usd).max(Decimal::ZERO);
    let cap = (input.limits.max_position_usd.min(room_total) / price)
        .round_dp_with_strategy(DP, RoundingStrategy::ToZero);
    let same_side = sign(raw) == sign(mirrored) || mirrored.is_zero() || raw.is_zero();
    let target = if same_side && raw.abs() <= mirrored.abs() {
        // A reduction (or nothing): never bounded.
        raw
    } else if same_side {
        // Adding: up to the cap, and never below what we hold (no cut for a price move).
        with_sign(raw.abs().min(cap.max(mirrored.abs())), sign(raw))
    } else {
        // A flip: the close is free, the new side is capped.
        with_sign(raw.abs().min(cap), sign(raw))
    };
    let increases = target.abs() > mirrored.abs() || sign(target) == -sign(mirrored);
    let stale = match input.leader_price {
        Some(lp) if lp > Decimal::ZERO => {
            (price - lp).abs() / lp * Decimal::ONE_HUNDRED > input.limits.stale_pct
        }
        _ => false,
    };
    let target = if increases && stale {
        if sign(target) == -sign(mirrored) && !mirrored.is_zero() {
            // The stale new side is skipped; the close is not.
            Decimal::ZERO
        } else {
            return hold(Action::Skip(Skip::Stale));
        }
    } else {
        target
    };
    let size = target - mirrored;
    if size.is_zero() {
        return if raw != mirrored && raw.abs() > mirrored.abs() {
            hold(Action::Skip(Skip::AtLimit))
        } else {
            hold(Action::Hold)
        };
    }
    let closes = target.is_zero();
    if !closes && size.abs() * price < input.limits.min_step_usd {
        return hold(Action::Skip(Skip::TooSmall));
    }
    let reduce_only = sign(target) == sign(mirrored) && target.abs() < mirrored.abs() || closes;
    Step {
        raw_target: raw,
        target,
        anchor: if target.is_zero() { None } else { anchor },
        action: Action::Send { size, reduce_only },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn limits() -> Limits {
        Limits {
            max_position_usd: dec!(10000),
            max_total_usd: dec!(15000),
            stale_pct: dec!(1),
            min_step_usd: dec!(0),
        }
    }

    fn input(leader: Decimal, mirrored: Decimal) -> StepInput {
        StepInput {
            sizing: Sizing::Ratio(dec!(0.5)),
            limits: limits(),
            leader_size: leader,
            mirrored,
            anchor: None,
            price: dec!(100),
            leader_price: Some(dec!(100)),
            other_usd: Decimal::ZERO,
            allowed: true,
        }
    }

    #[test]
    fn ratio_opens_adds_reduces_flips_and_closes() {
        let open = decide(&input(dec!(10), dec!(0)));
        assert_eq!(
            open.action,
            Action::Send {
                size: dec!(5),
                reduce_only: false
            }
        );
        let add = decide(&input(dec!(14), dec!(5)));
        assert_eq!(add.target, dec!(7));
        let reduce = decide(&input(dec!(4), dec!(7)));
        assert_eq!(
            reduce.action,
            Action::Send {
                size: dec!(-5),
                reduce_only: true
            }
        );
        let flip = decide(&input(dec!(-6), dec!(2)));
        assert_eq!(
            flip.action,
            Action::Send {
                size: dec!(-5),
                reduce_only: false
            }
        );
        let close = decide(&input(dec!(0), dec!(-3)));
        assert_eq!(
            close.action,
            Action::Send {
                size: dec!(3),
                reduce_only: true
            }
        );
    }

    #[test]
    fn fixed_usd_opens_at_the_price_then_scales_with_the_leader() {
        let mut i = input(dec!(2), dec!(0));
        i.sizing = Sizing::FixedUsd(dec!(1000));
        let open = decide(&i);
        assert_eq!(open.target, dec!(10));
        assert_eq!(
            open.anchor,
            Some(Anchor {
                leader: dec!(2),
                follower: dec!(10)
            })
        );
        // The leader adds half: we add half, whatever the price is now.
        i.leader_size = dec!(3);
        i.mirrored = dec!(10);
        i.anchor = open.anchor;
        i.price = dec!(100.5);
        assert_eq!(decide(&i).target, dec!(15));
        // The leader flips: a new open on the other side at the price now.
        i.leader_size = dec!(-1);
        i.mirrored = dec!(15);
        i.price = dec!(100);
        i.leader_price = Some(dec!(100));
        let flip = decide(&i);
        assert_eq!(flip.target, dec!(-10));
        assert_eq!(flip.anchor.map(|a| a.leader), Some(dec!(-1)));
    }

    #[test]
    fn limits_cap_what_a_step_adds() {
        let mut i = input(dec!(400), dec!(0));
        // ratio 0.5 → 200 × 100 = 20000 USD, capped at 10000.
        assert_eq!(decide(&i).target, dec!(100));
        i.other_usd = dec!(12000);
        // 15000 − 12000 leaves 3000.
        assert_eq!(decide(&i).target, dec!(30));
        i.mirrored = dec!(30);
        assert_eq!(decide(&i).action, Action::Skip(Skip::AtLimit));
        // A price rise does not cut the position.
        i.price = dec!(200);
        i.leader_price = Some(dec!(200));
        assert_eq!(decide(&i).action, Action::Skip(Skip::AtLimit));
    }

    #[test]
    fn staleness_skips_adds_never_reductions() {
        let mut i = input(dec!(10), dec!(0));
        i.leader_price = Some(dec!(98));
        assert_eq!(decide(&i).action, Action::Skip(Skip::Stale));
        i.leader_size = dec!(2);
        i.mirrored = dec!(5);
        assert_eq!(decide(&i).target, dec!(1));
        // A stale flip still closes.
        i.leader_size = dec!(-10);
        assert_eq!(
            decide(&i).action,
            Action::Send {
                size: dec!(-5),
                reduce_only: true
            }
        );
    }

    #[test]
    fn the_allowlist_and_small_steps() {
        let mut i = input(dec!(10), dec!(0));
        i.allowed = false;
        assert_eq!(decide(&i).action, Action::Skip(Skip::NotAllowed));
        let mut i = input(dec!(10.1), dec!(5));
        i.limits.min_step_usd = dec!(10);
        assert_eq!(decide(&i).action, Action::Skip(Skip::TooSmall));
        // A close is sent whatever its size.
        let mut i = input(dec!(0), dec!(0.01));
        i.limits.min_step_usd = dec!(10);
        assert!(matches!(decide(&i).action, Action::Send { .. }));
    }

    fn size() -> impl Strategy<Value = Decimal> {
        (-2000i64..=2000).prop_map(|n| Decimal::new(n, 2))
    }

    proptest! {
        /// Applying each sent step in full takes the mirrored position to the clamped
        /// target; a step that adds never goes past the limits; a reduction or close is
        /// never skipped for staleness.
        #[test]
        fn mirrored_follows_the_clamped_target(
            leaders in proptest::collection::vec(size(), 1..30),
            prices in proptest::collection::vec(50i64..150, 30),
            fills in proptest::collection::vec(90i64..110, 30),
            fixed in any::<bool>(),
            other_usd in 0i64..20000,
        ) {
            let mut mirrored = Decimal::ZERO;
            let mut anchor = None;
            for (k, leader) in leaders.iter().enumerate() {
                let price = Decimal::from(prices[k]);
                let leader_price = price * Decimal::from(fills[k]) / dec!(100);
                let i = StepInput {
                    sizing: if fixed { Sizing::FixedUsd(dec!(500)) } else { Sizing::Ratio(dec!(0.3)) },
                    limits: limits(),
                    leader_size: *leader,
                    mirrored,
                    anchor,
                    price,
                    leader_price: Some(leader_price),
                    other_usd: Decimal::from(other_usd),
                    allowed: true,
                };
                let step = decide(&i);
                let reduces = step.raw_target.abs() < mirrored.abs() && sign(step.raw_target) == sign(mirrored)
                    || (!mirrored.is_zero() && sign(step.raw_target) != sign(mirrored));
                match step.action {
                    Action::Send { size, reduce_only } => {
                        let before = mirrored;
                        mirrored += size;
                        prop_assert_eq!(mirrored, step.target);
                        if reduce_only {
                            prop_assert!(mirrored.abs() < before.abs() && sign(mirrored) * sign(before) >= 0);
                        }
                        if mirrored.abs() > before.abs() || sign(mirrored) == -sign(before) {
                            let room = limits().max_position_usd.min((limits().max_total_usd - Decimal::from(other_usd)).max(Decimal::ZERO));
                            prop_assert!(mirrored.abs() * price <= room + dec!(0.000001), "{} at {} over {}", mirrored, price, room);
                        }
                        anchor = step.anchor;
                    }
                    Action::Skip(Skip::Stale) => prop_assert!(!reduces, "a reduction was skipped as stale"),
                    Action::Skip(_) | Action::Hold => prop_assert_eq!(step.target, mirrored),
                }
                if let Action::Hold = step.action {
                    prop_assert_eq!(step.raw_target, mirrored);
                }
            }
        }

        /// With no limit and no staleness in the way, the mirrored position is the leader's
        /// scaled exactly after every step.
        #[test]
        fn unbounded_ratio_mirrors_exactly(leaders in proptest::collection::vec(size(), 1..30)) {
            let mut mirrored = Decimal::ZERO;
            for leader in leaders {
                let mut i = input(leader, mirrored);
                i.limits.max_position_usd = dec!(1000000000);
                i.limits.max_total_usd = dec!(1000000000);
                if let Action::Send { size, .. } = decide(&i).action {
                    mirrored += size;
                }
                prop_assert_eq!(mirrored, leader * dec!(0.5));
            }
        }
    }
}
