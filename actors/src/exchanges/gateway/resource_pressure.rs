//! Resource pressure as a cause of the trading mode ([`ModeCause::ResourceShedding`]).
//!
//! Owns: the two mode changes the resource monitor (`crate::shedding`) asks for:
//! `Normal → Reducing` while the process is at its critical resource level, and
//! `Reducing → Normal` once it is not, only when the mode is still this cause's own.
//! Never: overrides a halt, the kill switch or another cause's `Reducing`, or lifts a mode
//! it did not set — decided on the mode's [`ModeCause`], never on its reason text.
//!
//! The monitor repeats its request at every sample while it is critical, so after a
//! gateway restart, or once another cause's restriction is lifted, `Reducing` is
//! re-asserted without any state kept here.

use super::*;

impl GatewayCore {
    /// The process is at its critical resource level: `Normal` becomes `Reducing` (cause
    /// [`ModeCause::ResourceShedding`], `reason` for people); any other mode stays.
    pub fn resource_critical(&self, reason: &str) -> GatewayResult<ModeState> {
        self.reduce_for(ModeCause::ResourceShedding, reason)
    }

    /// The process is below its critical level again: lifts a
    /// [`ModeCause::ResourceShedding`] `Reducing` back to `Normal`; any other mode stays.
    pub fn resource_recovered(&self, reason: &str) -> GatewayResult<ModeState> {
        self.lift_own(ModeCause::ResourceShedding, |_| {
            Some(self.normal_after(ModeCause::ResourceShedding, reason.to_string()))
        })
    }
}

gateway_message!(
    /// The resource monitor is at its critical level: `Normal` becomes `Reducing` (see
    /// [`GatewayCore::resource_critical`]); any other mode stays.
    ResourceCritical { reason: String } -> ModeState,
    |core, msg| core.resource_critical(&msg.reason)
);
gateway_message!(
    /// The resource monitor is below its critical level: lifts only a resource-shedding
    /// `Reducing` (see [`GatewayCore::resource_recovered`]).
    ResourceRecovered { reason: String } -> ModeState,
    |core, msg| core.resource_recovered(&msg.reason)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::gateway::tests_support::core;

    #[test]
    fn critical_reduces_and_recovery_lifts_only_its_own_cause() {
        let core = core();
        let s = core
            .resource_critical("rss 5 GiB >= critical 4 GiB")
            .unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::ResourceShedding)
        );
        assert_eq!(s.reason, "rss 5 GiB >= critical 4 GiB");
        // Repeated while critical: nothing changes.
        let again = core.resource_critical("rss 5.1 GiB").unwrap();
        assert_eq!(again, s);
        let s = core.resource_recovered("rss back to 1 GiB").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Normal, ModeCause::ResourceShedding)
        );
        assert_eq!(core.mode().mode, TradingMode::Normal);
    }

    #[test]
    fn never_overrides_a_halt_the_kill_switch_or_another_causes_reduction() {
        let core = core();
        core.set_mode(TradingMode::Reducing, ModeCause::RiskAgent, "risk: loss")
            .unwrap();
        let s = core.resource_critical("rss").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::RiskAgent)
        );
        let s = core.resource_recovered("rss ok").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::RiskAgent)
        );

        core.kill_switch(true, "operator").unwrap();
        let s = core.resource_critical("rss").unwrap();
        assert!(s.kill_switch);
        assert_eq!(s.mode, TradingMode::Halted);

        // Released to Normal by the operator: a process still critical re-asserts Reducing.
        core.kill_switch(false, "operator").unwrap();
        let s = core.resource_critical("rss").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::ResourceShedding)
        );
        // A halt set on top is not lifted by a recovery.
        core.set_mode(
            TradingMode::Halted,
            ModeCause::RiskAgent,
            "risk: min balance",
        )
        .unwrap();
        let s = core.resource_recovered("rss ok").unwrap();
        assert_eq!(s.mode, TradingMode::Halted);
    }
}
