//! Loss of a swarm's quorum as a cause of the trading mode ([`ModeCause::SwarmQuorum`]).
//!
//! Owns: the set of swarm agents whose quorum is lost, and the two mode changes it makes:
//! `Normal → Reducing` when an agent reports a loss, `Reducing → Normal` when the last
//! degraded agent recovers and the mode is still this cause's own. Never: overrides a
//! halt, the kill switch or another cause's `Reducing` (the kill switch and the risk
//! agent's limits take precedence), or lifts a mode it did not set — decided on the
//! mode's [`ModeCause`], never on its reason text.
//!
//! Swarm agents report after every swarm decision, so the set is rebuilt after a gateway
//! restart, and a loss re-asserts `Reducing` once another cause's restriction is lifted.

use super::*;

impl GatewayCore {
    /// Records that `agent`'s swarm lost its quorum; moves `Normal` to `Reducing` (cause
    /// [`ModeCause::SwarmQuorum`], `reason` for people) and leaves any other mode as is.
    pub fn swarm_quorum_lost(&self, agent: &str, reason: &str) -> GatewayResult<ModeState> {
        self.swarm_degraded
            .lock()
            .insert(agent.to_string(), reason.to_string());
        self.reduce_for(ModeCause::SwarmQuorum, reason)
    }

    /// Records that `agent`'s swarm has its quorum; back to `Normal` when the mode is a
    /// [`ModeCause::SwarmQuorum`] `Reducing` and no other swarm agent is degraded. While
    /// another one is, the mode stays and its reason names that one.
    pub fn swarm_quorum_restored(&self, agent: &str) -> GatewayResult<ModeState> {
        let still = {
            let mut degraded = self.swarm_degraded.lock();
            degraded.remove(agent);
            degraded.iter().next().map(|(a, r)| (a.clone(), r.clone()))
        };
        self.lift_own(ModeCause::SwarmQuorum, |now| match still {
            Some((_, reason)) if now.reason == reason => None,
            Some((_, reason)) => Some(ModeState {
                reason,
                ..now.clone()
            }),
            None => Some(self.normal_after(
                ModeCause::SwarmQuorum,
                format!("swarm {agent}: quorum restored"),
            )),
        })
    }
}

gateway_message!(
    /// A swarm agent lost its quorum: `Normal` becomes `Reducing` (see
    /// [`GatewayCore::swarm_quorum_lost`]); any other mode stays.
    SwarmQuorumLost { agent: String, reason: String } -> ModeState,
    |core, msg| core.swarm_quorum_lost(&msg.agent, &msg.reason)
);
gateway_message!(
    /// A swarm agent has its quorum: lifts only a swarm-quorum `Reducing`, once no swarm
    /// agent is degraded (see [`GatewayCore::swarm_quorum_restored`]).
    SwarmQuorumRestored { agent: String } -> ModeState,
    |core, msg| core.swarm_quorum_restored(&msg.agent)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::gateway::tests_support::core;

    #[test]
    fn a_loss_reduces_and_the_last_recovery_lifts_only_its_own_cause() {
        let core = core();
        let s = core.swarm_quorum_lost("a", "swarm a: 67% failed").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::SwarmQuorum)
        );
        assert_eq!(s.reason, "swarm a: 67% failed");
        core.swarm_quorum_lost("b", "swarm b: 100% failed").unwrap();
        // a recovers, b does not: still reducing, and the reason now names b.
        let s = core.swarm_quorum_restored("a").unwrap();
        assert_eq!(s.mode, TradingMode::Reducing);
        assert_eq!(s.reason, "swarm b: 100% failed");
        let s = core.swarm_quorum_restored("b").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Normal, ModeCause::SwarmQuorum)
        );
    }

    #[test]
    fn never_overrides_a_halt_the_kill_switch_or_another_causes_reduction() {
        let core = core();
        core.set_mode(
            TradingMode::Halted,
            ModeCause::RiskAgent,
            "risk: min balance",
        )
        .unwrap();
        let s = core.swarm_quorum_lost("a", "swarm a").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Halted, ModeCause::RiskAgent)
        );
        let s = core.swarm_quorum_restored("a").unwrap();
        assert_eq!(s.mode, TradingMode::Halted);

        core.set_mode(TradingMode::Reducing, ModeCause::RiskAgent, "risk: loss")
            .unwrap();
        core.swarm_quorum_lost("a", "swarm a").unwrap();
        let s = core.swarm_quorum_restored("a").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::RiskAgent)
        );

        core.kill_switch(true, "operator").unwrap();
        let s = core.swarm_quorum_lost("a", "swarm a").unwrap();
        assert!(s.kill_switch);
        assert_eq!(s.mode, TradingMode::Halted);

        // Released to Normal by the operator: a swarm still degraded re-asserts Reducing.
        core.kill_switch(false, "operator").unwrap();
        let s = core.swarm_quorum_lost("a", "swarm a").unwrap();
        assert_eq!(
            (s.mode, s.cause),
            (TradingMode::Reducing, ModeCause::SwarmQuorum)
        );
    }
}
