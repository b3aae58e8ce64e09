//! The trading mode and the operator's kill switch, durable in the `risk` tree.
//!
//! Owns: mode changes (the kill switch wins over every other source) and their
//! persistence, gauge and log line. Never: cancels or closes anything (the kill switch's
//! sequence is in [`super::operations`]).

use super::*;

impl GatewayCore {
    /// Sets the trading mode (risk agent, reconciliation). The kill switch wins: while
    /// it is engaged only the operator can change the mode.
    /// Setting the mode it already has changes nothing (reason and `since_ms` stay, nothing
    /// is persisted or logged): the risk agent re-asserts `Reducing` on every check.
    pub fn set_mode(
        &self,
        mode: TradingMode,
        cause: ModeCause,
        reason: &str,
    ) -> GatewayResult<ModeState> {
        let mut guard = self.mode.write();
        if guard.kill_switch || guard.mode == mode {
            return Ok(guard.clone());
        }
        let next = ModeState {
            mode,
            cause,
            reason: reason.to_string(),
            since_ms: self.clock.now_ms(),
            kill_switch: false,
        };
        self.persist_mode(&next)?;
        *guard = next.clone();
        Ok(next)
    }

    /// `Normal → Reducing` for `cause` (a restriction of the engine's own: swarm quorum,
    /// resource pressure); any other mode stays — a halt, the kill switch and another
    /// cause's `Reducing` are never replaced by this weaker restriction. The check and the
    /// change are made under one write lock.
    pub(super) fn reduce_for(&self, cause: ModeCause, reason: &str) -> GatewayResult<ModeState> {
        let mut guard = self.mode.write();
        if guard.mode != TradingMode::Normal || guard.kill_switch {
            return Ok(guard.clone());
        }
        let next = ModeState {
            mode: TradingMode::Reducing,
            cause,
            reason: reason.to_string(),
            since_ms: self.clock.now_ms(),
            kill_switch: false,
        };
        self.persist_mode(&next)?;
        *guard = next.clone();
        Ok(next)
    }

    /// While the mode is `cause`'s own `Reducing` (decided on the cause, never on the
    /// reason text), replaces it with what `next` makes of it (`None`: it stays); any
    /// other mode stays.
    pub(super) fn lift_own(
        &self,
        cause: ModeCause,
        next: impl FnOnce(&ModeState) -> Option<ModeState>,
    ) -> GatewayResult<ModeState> {
        let mut guard = self.mode.write();
        if guard.mode != TradingMode::Reducing || guard.cause != cause || guard.kill_switch {
            return Ok(guard.clone());
        }
        let Some(next) = next(&guard) else {
            return Ok(guard.clone());
        };
        self.persist_mode(&next)?;
        *guard = next.clone();
        Ok(next)
    }

    /// `Normal` again after `cause`'s own restriction, `reason` for people.
    pub(super) fn normal_after(&self, cause: ModeCause, reason: String) -> ModeState {
        ModeState {
            mode: TradingMode::Normal,
            cause,
            reason,
            since_ms: self.clock.now_ms(),
            kill_switch: false,
        }
    }

    /// Engages or releases the operator's kill switch.
    pub fn kill_switch(&self, engaged: bool, reason: &str) -> GatewayResult<ModeState> {
        let next = ModeState {
            mode: if engaged {
                TradingMode::Halted
            } else {
                TradingMode::Normal
            },
            cause: if engaged {
                ModeCause::KillSwitch
            } else {
                ModeCause::Operator
            },
            reason: reason.to_string(),
            since_ms: self.clock.now_ms(),
            kill_switch: engaged,
        };
        self.persist_mode(&next)?;
        *self.mode.write() = next.clone();
        Ok(next)
    }

    pub(super) fn persist_mode(&self, state: &ModeState) -> GatewayResult<()> {
        self.mode_tree
            .put_durable_blocking(MODE_KEY, state)
            .map_err(LedgerError::from)?;
        metrics::gauge!(names::TRADING_MODE).set(state.mode.gauge());
        tracing::warn!(mode = %state.mode, cause = %state.cause, reason = %state.reason, kill_switch = state.kill_switch, "trading mode changed");
        Ok(())
    }
}
