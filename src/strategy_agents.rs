//! `[[agents.strategy]]` in the engine: the config checks that need the whole config (a
//! name no other agent uses, a configured venue, the approval model under `[models]`) and
//! the child spec that builds a strategy agent's runner from config and sled at every
//! (re)start, and starting one in a running engine (a promotion, [`start_runtime`]).
//!
//! Owns: those checks and that spec. Never: runs a strategy (see
//! `orrery_actors::agents::strategy`).

use std::sync::Arc;

use std::time::Duration;

use orrery_actors::agents::runtime::{AgentError, AgentRunner, Kind};
use orrery_actors::agents::strategy::{
    StrategyAgent, StrategyAgentConfig, StrategyAgentState, StrategyDeps,
};
use orrery_actors::agents::DecisionJournal;
use orrery_actors::agents::MemoryStore;
use orrery_actors::models::ModelClient;
use orrery_actors::signals::store::SignalStore;
use orrery_actors::supervisor::{AddChild, ChildSpec, RestartType, StartError};
use orrery_actors::validate::{join, Issues};

use crate::config::Config;
use crate::tree::{missing, Deps};

/// Every `[[agents.strategy]]`: its own keys, a name no other agent has, its venue and
/// its approval model.
pub(crate) fn check(config: &Config, issues: &mut Issues) {
    let a = &config.agents;
    let mut taken = crate::agents::names_of_other_kinds(config, Kind::Strategy);
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

/// The child spec of configured strategy agent `agent`, or of one started while the
/// engine runs.
pub(crate) fn spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let configured = deps.config.agents.strategy.iter().find(|a| a.name == agent);
    let runtime = || {
        deps.runtime_strategies
            .lock()
            .iter()
            .find(|a| a.name == agent)
            .cloned()
    };
    match configured.cloned().or_else(runtime) {
        Some(agent) => agent_spec(id, agent, deps),
        None => missing(&id, format!("no strategy agent `{agent}` in the config")),
    }
}

/// The child spec of a strategy agent started while the engine runs: the worker the plan
/// would have made for it (`strategy-<name>`, permanent, the configured mailbox and
/// shutdown timeout).
pub(crate) fn child(agent: StrategyAgentConfig, deps: &Deps) -> ChildSpec {
    agent_spec(format!("strategy-{}", agent.name), agent, deps)
        .restart(RestartType::Permanent)
        .mailbox(deps.config.supervisor.mailbox)
        .shutdown(deps.config.engine.shutdown_timeout)
}

fn agent_spec(id: String, agent: StrategyAgentConfig, deps: &Deps) -> ChildSpec {
    let Ok(entry) = deps.agents.get(&agent.name) else {
        return missing(
            &id,
            format!("no strategy agent `{}` in the agent directory", agent.name),
        );
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
            signals: Some(SignalStore::open(&deps.store).map_err(StartError::failed)?),
        };
        let kind = StrategyAgent::new(agent.clone(), run_deps);
        Ok(AgentRunner::new(
            Arc::new(kind),
            entry.memory.clone(),
            journal,
            deps.clock.clone(),
        )
        .counting_messages_in(ctx.messages_counter())
        .owned_through(deps.leases()))
    })
}

/// How long the `agents` supervisor has to take a new child: it answers at once unless
/// it is stopping or restarting.
const ADD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a strategy agent could not be started in the running engine.
#[derive(Debug, thiserror::Error)]
pub enum StartAgentError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("the agent's memory in the data dir: {0}")]
    Store(#[from] orrery_actors::store::StoreError),
    #[error(
        "the agents supervisor took no new child ({0}); the agent starts at the next engine start"
    )]
    Supervisor(String),
}

/// Starts strategy agent `agent` in the running engine: registers it in the agent
/// directory (so the API, the CLI and the dashboard reach it), keeps it among the
/// runtime agents (so a restart of the `agents` subtree keeps it) and adds its worker to
/// the `agents` supervisor. Answers the worker's path in the tree.
pub(crate) async fn start_runtime(
    deps: &Deps,
    agent: StrategyAgentConfig,
) -> Result<String, StartAgentError> {
    let memory = MemoryStore::open(&deps.store, &agent.name)?;
    deps.agents
        .add(&agent.name, Kind::Strategy, agent.schedule(), memory)?;
    deps.runtime_strategies.lock().push(agent.clone());
    let make = {
        let deps = deps.clone();
        move || child(agent, &deps)
    };
    match tokio::time::timeout(ADD_TIMEOUT, deps.agents_sup.send(AddChild::new(make))).await {
        Ok(Ok(Ok(path))) => Ok(path),
        Ok(Ok(Err(e))) => Err(StartAgentError::Supervisor(e.to_string())),
        Ok(Err(e)) => Err(StartAgentError::Supervisor(e.to_string())),
        Err(_) => Err(StartAgentError::Supervisor(format!(
            "no answer within {}s",
            ADD_TIMEOUT.as_secs()
        ))),
    }
}
