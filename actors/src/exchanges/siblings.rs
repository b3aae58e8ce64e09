//! The connectors of one venue account as the gateway sees them: one logical venue, one
//! or more connector slots (a sibling per base endpoint, see [`super::account`]).
//!
//! Owns: [`ConnectorSet`] (the account's slots in config order), the choice of the
//! connector a call goes to ([`ConnectorSet::ranked`]), the rule for when a failed call may
//! move on to a sibling ([`move_on`]), and the per-connector view that status shows
//! ([`ConnectorHealth`]). Never: sends anything itself (the gateway sends through the slot
//! it picked), re-sends a call that may have reached the venue, or reads a venue's error
//! text.
//!
//! # Routing rule
//!
//! Every call (reads, new orders, cancels, leverage, the queries that settle an unknown
//! outcome) goes to the best-ranked connector: first those that are live with their
//! breaker closed, then one whose breaker is half-open (it may probe), then one whose
//! breaker is open, and last one whose slot is empty (dead or restarting); within a tier
//! the least busy (calls sent to it and not answered yet: queued in its priority queue or
//! in flight), and among equally busy ones the next in turn, so idle siblings share the
//! work. A connector with an empty slot or an open breaker is thus skipped at once while a
//! sibling can take the call; with no sibling left the call still goes to it and fails with
//! its own typed error (`Vacant`: never sent).
//!
//! When a call fails the gateway asks [`move_on`] whether the next candidate may take it:
//! - a read (idempotent) moves on after anything that is the endpoint's fault: its
//!   connector never answered (any [`SlotError`]), or the venue call failed as unavailable
//!   or timed out (including its breaker refusing). A refusal by the account's rate limits
//!   does not move: the siblings share them.
//! - a call that changes state (an order, a cancel, a leverage update) moves on only when it
//!   is known not to have been delivered: the slot was empty or full (`Vacant`, `Full`),
//!   the connector's queue refused it (`Overloaded`) or the connector stopped while it
//!   still waited in that queue (`NotSent`). If it may have been sent (`Closed`,
//!   `Timeout`, `OutcomeUnknown`) it never goes to a sibling: the gateway settles it by a
//!   query by client id, which is a read and so goes to any healthy sibling.
//!
//! Priority is kept: each connector queues what it is given by the request's priority,
//! exactly as a lone connector does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::connector::Connector;
pub use super::connector::ConnectorProbe;
use super::venue::VenueError;
use crate::resilience::BreakerState;
use crate::supervisor::{Slot, SlotError};

/// One connector of an account: its name, the endpoint it serves, its slot and probe.
#[derive(Clone, Debug)]
pub struct ConnectorSlot {
    /// The connector's name (`hyperliquid`, or `binance#2` among siblings): the
    /// `connector` label of its metrics.
    pub name: String,
    /// The endpoint it serves, as [`super::account::display_url`] shows it; `None` for a
    /// venue in this process (paper).
    pub endpoint: Option<String>,
    pub slot: Slot<Connector>,
    pub probe: ConnectorProbe,
}

/// What the gateway accepts as a venue's connectors: one slot (a venue with one endpoint,
/// as tests and benches build it) or a [`ConnectorSet`].
pub trait IntoConnectors {
    fn into_connectors(self, venue: &str) -> ConnectorSet;
}

impl IntoConnectors for Slot<Connector> {
    fn into_connectors(self, venue: &str) -> ConnectorSet {
        ConnectorSet::single(venue, self)
    }
}

impl IntoConnectors for ConnectorSet {
    fn into_connectors(self, _venue: &str) -> ConnectorSet {
        self
    }
}

/// How a connector looks to the router now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    /// Live, breaker closed: takes calls first.
    Ready,
    /// Live, breaker half-open: may take a probe call; after every ready sibling.
    Probing,
    /// Live, breaker open: skipped while any sibling is ready or probing.
    BreakerOpen,
    /// No live actor (dead, restarting or stopped): skipped while any sibling is live.
    Down,
    /// The engine is not running (`orrery status` of a stopped engine); never routed to.
    NotRunning,
}

impl ConnectorState {
    pub fn label(self) -> &'static str {
        match self {
            ConnectorState::Ready => "ready",
            ConnectorState::Probing => "probing",
            ConnectorState::BreakerOpen => "breaker_open",
            ConnectorState::Down => "down",
            ConnectorState::NotRunning => "not_running",
        }
    }

    fn of(slot: &ConnectorSlot) -> Self {
        if !slot.slot.is_connected() {
            return ConnectorState::Down;
        }
        match slot.probe.breaker() {
            Some(BreakerState::Open) => ConnectorState::BreakerOpen,
            Some(BreakerState::HalfOpen) => ConnectorState::Probing,
            Some(BreakerState::Closed) | None => ConnectorState::Ready,
        }
    }
}

/// One connector in `orrery status` / `GET /api/status` (`venues[].connectors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorHealth {
    /// The connector's name (the `connector` metric label).
    pub connector: String,
    /// The endpoint it serves (no credentials), if it reaches one over the network.
    pub endpoint: Option<String>,
    pub state: ConnectorState,
    /// Calls sent to it and not answered yet (queued or in flight).
    pub in_flight: u64,
}

/// The connectors of one venue account, in config order. Cheap to clone; clones share the
/// turn counter that spreads calls over idle siblings.
#[derive(Clone, Debug)]
pub struct ConnectorSet {
    members: Arc<[ConnectorSlot]>,
    turn: Arc<AtomicUsize>,
}

impl ConnectorSet {
    /// An account served by `members`; an empty list is a plan error, and every call to
    /// it fails as "connector down, never sent".
    pub fn new(members: Vec<ConnectorSlot>) -> Self {
        Self {
            members: members.into(),
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// An account with one connector, named after the venue.
    pub fn single(venue: &str, slot: Slot<Connector>) -> Self {
        Self::new(vec![ConnectorSlot {
            name: venue.to_string(),
            endpoint: None,
            slot,
            probe: ConnectorProbe::default(),
        }])
    }

    pub fn members(&self) -> &[ConnectorSlot] {
        &self.members
    }

    /// Every connector's state and load now.
    pub fn health(&self) -> Vec<ConnectorHealth> {
        self.members
            .iter()
            .map(|m| ConnectorHealth {
                connector: m.name.clone(),
                endpoint: m.endpoint.clone(),
                state: ConnectorState::of(m),
                in_flight: m.slot.pending(),
            })
            .collect()
    }

    /// The connectors in the order one call tries them (see the module docs). Every call
    /// advances the turn, so equally busy siblings take calls in rotation.
    pub fn ranked(&self) -> Vec<&ConnectorSlot> {
        if let [only] = &self.members[..] {
            return vec![only];
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let looks: Vec<(ConnectorState, u64)> = self
            .members
            .iter()
            .map(|m| (ConnectorState::of(m), m.slot.pending()))
            .collect();
        rank(&looks, turn)
            .into_iter()
            .map(|i| &self.members[i])
            .collect()
    }
}

/// Indices of `looks` (state, calls pending) in the order to try them: by state tier, then
/// least busy, then rotation from `turn` (ties go to the next in turn).
pub fn rank(looks: &[(ConnectorState, u64)], turn: usize) -> Vec<usize> {
    let n = looks.len().max(1);
    let mut order: Vec<usize> = (0..looks.len()).collect();
    order.sort_by_key(|&i| (looks[i].0, looks[i].1, (i + n - turn % n) % n));
    order
}

/// Why a call left one connector for a sibling: the `reason` label of
/// `orrery_exchange_failovers_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOn {
    /// The connector did not answer (`SlotError`): for a state change only when the call
    /// was never delivered.
    ConnectorDown,
    /// The venue call failed as the endpoint's fault (read), or the connector's queue
    /// refused it unsent (any call).
    EndpointFailed,
}

impl MoveOn {
    pub fn label(self) -> &'static str {
        match self {
            MoveOn::ConnectorDown => "connector_down",
            MoveOn::EndpointFailed => "endpoint_failed",
        }
    }
}

/// What failed on one connector, for [`move_on`].
#[derive(Debug)]
pub enum Failure<'a> {
    /// The connector did not answer.
    Slot(&'a SlotError),
    /// The venue call answered with an error.
    Venue(&'a VenueError),
}

/// Whether a call that failed with `failure` may be given to the next sibling (see the
/// module docs); decided on types only.
pub fn move_on(changes_state: bool, failure: Failure<'_>) -> Option<MoveOn> {
    match failure {
        Failure::Slot(e) => {
            let unsent = matches!(e, SlotError::Vacant { .. } | SlotError::Full { .. });
            (unsent || !changes_state).then_some(MoveOn::ConnectorDown)
        }
        Failure::Venue(VenueError::Overloaded { .. } | VenueError::NotSent { .. }) => {
            Some(MoveOn::EndpointFailed)
        }
        Failure::Venue(_) if changes_state => None,
        Failure::Venue(
            VenueError::Unavailable { .. }
            | VenueError::Timeout { .. }
            | VenueError::Malformed { .. }
            | VenueError::OutcomeUnknown { .. },
        ) => Some(MoveOn::EndpointFailed),
        Failure::Venue(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectorState::*;

    #[test]
    fn the_least_busy_ready_connector_goes_first() {
        assert_eq!(
            rank(&[(Ready, 5), (Ready, 1), (Ready, 3)], 0),
            vec![1, 2, 0]
        );
        // Busy but ready beats idle but probing.
        assert_eq!(rank(&[(Probing, 0), (Ready, 9)], 0), vec![1, 0]);
    }

    #[test]
    fn idle_siblings_take_calls_in_turn() {
        let firsts: Vec<usize> = (0..6)
            .map(|turn| rank(&[(Ready, 0), (Ready, 0), (Ready, 0)], turn)[0])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_breaker_open_or_down_sibling_is_skipped_while_another_can_serve() {
        for turn in 0..4 {
            assert_eq!(rank(&[(BreakerOpen, 0), (Ready, 7)], turn)[0], 1);
            assert_eq!(
                rank(&[(Down, 0), (BreakerOpen, 0), (Ready, 7)], turn),
                vec![2, 1, 0]
            );
        }
        // With no sibling left the call still goes somewhere, to fail with its own error.
        assert_eq!(rank(&[(Down, 0)], 3), vec![0]);
    }

    #[test]
    fn a_read_moves_on_after_any_endpoint_failure_but_not_a_shared_limit() {
        let actor = || "a".to_string();
        let v = || "v".to_string();
        for e in [
            SlotError::Vacant { actor: actor() },
            SlotError::Closed { actor: actor() },
            SlotError::Timeout { actor: actor() },
            SlotError::Full { actor: actor() },
        ] {
            assert_eq!(
                move_on(false, Failure::Slot(&e)),
                Some(MoveOn::ConnectorDown)
            );
        }
        let unavailable = VenueError::Unavailable {
            venue: v(),
            reason: "breaker open".into(),
        };
        assert!(move_on(false, Failure::Venue(&unavailable)).is_some());
        let limited = VenueError::RateLimited {
            venue: v(),
            retry_after: None,
            reason: "429".into(),
        };
        assert_eq!(move_on(false, Failure::Venue(&limited)), None);
        let unknown_symbol = VenueError::UnknownSymbol {
            venue: v(),
            symbol: "X".into(),
        };
        assert_eq!(move_on(false, Failure::Venue(&unknown_symbol)), None);
    }

    #[test]
    fn a_state_change_moves_on_only_when_it_was_never_delivered() {
        let actor = || "a".to_string();
        let v = || "v".to_string();
        assert!(move_on(true, Failure::Slot(&SlotError::Vacant { actor: actor() })).is_some());
        assert!(move_on(true, Failure::Slot(&SlotError::Full { actor: actor() })).is_some());
        assert_eq!(
            move_on(true, Failure::Slot(&SlotError::Closed { actor: actor() })),
            None
        );
        assert_eq!(
            move_on(true, Failure::Slot(&SlotError::Timeout { actor: actor() })),
            None
        );
        let overloaded = VenueError::Overloaded {
            venue: v(),
            reason: "full".into(),
        };
        assert!(move_on(true, Failure::Venue(&overloaded)).is_some());
        let queued_when_it_died = VenueError::NotSent {
            venue: v(),
            reason: "the connector stopped".into(),
        };
        assert!(move_on(true, Failure::Venue(&queued_when_it_died)).is_some());
        for e in [
            VenueError::OutcomeUnknown {
                venue: v(),
                reason: "reset".into(),
            },
            VenueError::Timeout {
                venue: v(),
                what: "order".into(),
                after: std::time::Duration::from_secs(1),
            },
            VenueError::Unavailable {
                venue: v(),
                reason: "503".into(),
            },
        ] {
            assert_eq!(move_on(true, Failure::Venue(&e)), None, "{e}");
        }
    }
}
