//! `[[agents.strategy]]` in the engine: the config checks that need the whole config (a
//! name no other agent uses, a configured venue, the approval model under `[models]`) and
//! the child spec that builds a strategy agent's runner from config and sled at every
//! (re)start.
//!
//! Owns: those checks and that spec. Never: runs a strategy (see
//! `orrery_actors::agents::strategy`).

use std::collections::BTreeSet;
use std::sync::Arc;

use orrery_actors::agents::runtime::AgentRunner;
use orrery_actors::agents::strategy::{StrategyAgent, StrategyAgentState, StrategyDeps};
use orrery_actors::agents::DecisionJournal;
use orrery_actors::models::ModelClient;
use orrery_actors::supervisor::{ChildSpec, StartError};
use orrery_actors::validate::{join, Issues};

use crate::config::Config;
use crate::tree::{missing, Deps};

/// Every `[[agents.strategy]]`: its own keys, a name no other agent has, its venue and
/// its approval model.
pub(crate) fn check(config: &Config, issues: &mut Issues) {
    let a = &config.agents;
    let mut taken: BTreeSet<String> = crate::agents::scheduled_agents(config)
        .into_iter()
        .filter(|(_, kind, _)| *kind != orrery_actors::agents::runtime::Kind::Strategy)
        .map(|(name, _, _)| name.to_string())
        .collect();
    taken.insert(orrery_actors::agents::risk::RISK_AGENT.to_string());
    for (i, agent) in a.strategy.iter().enumerate() {
        let path = format!("agents.strategy[{i}]");
        agent.validate(&path, issues);
        issues.check(
            taken.insert(agent.name.clone()),
            join(&path, "name"),
            &agent.name,
            "a name no other agent uses (nor `risk`, the risk agent's)",
        );
        issues.check(
            config.exchanges.venues.contains_key(&agent.venue),
            join(&path, "venue"),
            &agent.venue,
            format!("a venue under [exchanges.venues]: {}", config.venue_names()),
        );
        if let Some(model) = &agent.approve_model {
            issues.check(
                config.models.models.contains_key(model),
                join(&path, "approve_model"),
                model,
                format!("a logical model under [models]: {}", config.model_names()),
            );
        }
    }
}

/// The child spec of one strategy agent.
pub(crate) fn spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .strategy
            .iter()
            .find(|a| a.name == agent)
            .cloned(),
        deps.agents.get(agent).cloned(),
    ) else {
        return missing(&id, format!("no strategy agent `{agent}` in the config"));
    };
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let run_deps = StrategyDeps {
            gateway: deps.gateway.clone(),
            models: ModelClient::from_slot(deps.router.clone()),
            journal: journal.clone(),
            state: StrategyAgentState::open(&deps.store, &agent.name)
                .map_err(StartError::failed)?,
            clock: deps.clock.clone(),
        };
        let kind = StrategyAgent::new(agent.clone(), run_deps);
        Ok(AgentRunner::new(
            Arc::new(kind),
            entry.memory.clone(),
            journal,
            deps.clock.clone(),
        )
        .counting_messages_in(ctx.messages_counter()))
    })
}
