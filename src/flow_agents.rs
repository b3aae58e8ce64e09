//! The market-flow agents in the process: the open-interest and whale agents
//! (`[[agents.open_interest]]`) and the liquidation agents (`[[agents.liquidations]]`) —
//! their checks against the rest of the config, the symbols they add to a venue's stream,
//! and how the tree builds each one's runner.
//!
//! Owns: the cross-section checks (a name no other agent has; an open-interest venue whose
//! kind has derivatives data — [`crate::market::offers_funding`], which follows the one
//! venue factory [`crate::market::open_reader`], so any venue it opens works; a
//! liquidation venue that is a `binance_futures`
//! venue with `streams = true`), the stream symbols ([`streamed_symbols`]: an
//! open-interest agent's symbols are subscribed on its venue's stream, so their trades
//! reach the tape), and the child specs. Never: the agents' logic
//! (`orrery_actors::agents::open_interest`, `orrery_actors::agents::liquidations`), or a
//! venue reader of its own.

use std::collections::BTreeSet;
use std::sync::Arc;

use orrery_actors::agents::liquidations::{
    LiqState, LiquidationAgent, LiquidationAgentConfig, LiquidationDeps,
};
use orrery_actors::agents::open_interest::{
    OiState, OpenInterestAgent, OpenInterestAgentConfig, OpenInterestDeps,
};
use orrery_actors::agents::runtime::AgentRunner;
use orrery_actors::agents::DecisionJournal;
use orrery_actors::exchanges::binance_futures::BinanceFuturesConfig;
use orrery_actors::supervisor::{ChildSpec, StartError};
use orrery_actors::validate::{join, Issues};

use crate::config::{Config, VenueConfig};
use crate::tree::{missing, Deps};

/// Whether `venue` streams public trades (the whale prints' tape).
fn streams_trades(v: &VenueConfig) -> bool {
    match v {
        VenueConfig::Hyperliquid(h) => h.streams,
        VenueConfig::BinanceFutures(f) => f.streams,
        VenueConfig::Binance(b) => b.streams,
        _ => false,
    }
}

/// The open-interest agents' symbols on `venue`, as the venue names them: added to its
/// market stream's subscriptions so their trades reach the tape.
pub(crate) fn streamed_symbols(config: &Config, venue: &str) -> Vec<String> {
    let Some(v) = config.exchanges.venues.get(venue) else {
        return Vec::new();
    };
    config
        .agents
        .open_interest
        .iter()
        .filter(|a| a.venue == venue)
        .flat_map(|a| a.symbols.iter())
        .map(|s| crate::symbols::normalize_for(v, s))
        .collect()
}

/// The futures venue's config with the open-interest agents' symbols added to the ones
/// its market stream subscribes.
pub(crate) fn futures_stream_config(
    config: &Config,
    venue: &str,
    f: &BinanceFuturesConfig,
) -> BinanceFuturesConfig {
    let mut f = f.clone();
    for s in streamed_symbols(config, venue) {
        if !f.symbols.contains(&s) {
            f.symbols.push(s);
        }
    }
    f
}

/// The `[[agents.open_interest]]` and `[[agents.liquidations]]` checks; `taken`: the names
/// other agents have.
pub(crate) fn check(config: &Config, taken: &mut BTreeSet<String>, issues: &mut Issues) {
    for (i, a) in config.agents.open_interest.iter().enumerate() {
        let path = format!("agents.open_interest[{i}]");
        a.validate(&path, issues);
        issues.check(
            taken.insert(a.name.clone()),
            join(&path, "name"),
            &a.name,
            "a name no other agent uses (nor `risk`, the risk agent's)",
        );
        match config.exchanges.venues.get(&a.venue) {
            None => issues.push(
                join(&path, "venue"),
                &a.venue,
                format!("a venue under [exchanges.venues]: {}", config.venue_names()),
            ),
            Some(v) => issues.check(
                // The venue factory decides which kinds have open interest.
                crate::market::offers_funding(v),
                join(&path, "venue"),
                &a.venue,
                format!(
                    "a venue with open interest: {}",
                    crate::market::FUNDING_KINDS
                ),
            ),
        }
    }
    for (i, a) in config.agents.liquidations.iter().enumerate() {
        let path = format!("agents.liquidations[{i}]");
        a.validate(&path, issues);
        issues.check(
            taken.insert(a.name.clone()),
            join(&path, "name"),
            &a.name,
            "a name no other agent uses (nor `risk`, the risk agent's)",
        );
        let ok = matches!(
            config.exchanges.venues.get(&a.venue),
            Some(VenueConfig::BinanceFutures(f)) if f.streams
        );
        issues.check(
            ok,
            join(&path, "venue"),
            &a.venue,
            "a `binance_futures` venue with `streams = true` (its `!forceOrder@arr` stream carries the liquidations)",
        );
    }
}

/// `a` with its symbols as its venue names them.
fn normalized_oi(config: &Config, a: &OpenInterestAgentConfig) -> OpenInterestAgentConfig {
    let mut a = a.clone();
    if let Some(v) = config.exchanges.venues.get(&a.venue) {
        a.symbols = a
            .symbols
            .iter()
            .map(|s| crate::symbols::normalize_for(v, s))
            .collect();
    }
    a
}

fn normalized_liq(config: &Config, a: &LiquidationAgentConfig) -> LiquidationAgentConfig {
    let mut a = a.clone();
    if let Some(v) = config.exchanges.venues.get(&a.venue) {
        a.symbols = a
            .symbols
            .iter()
            .map(|s| crate::symbols::normalize_for(v, s))
            .collect();
    }
    a
}

/// The child spec of open-interest agent `agent`: its runner, rebuilt from config and sled
/// on every start, its reader from the venue factory.
pub(crate) fn open_interest_spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .open_interest
            .iter()
            .find(|a| a.name == agent)
            .map(|a| normalized_oi(&deps.config, a)),
        deps.agents.get(agent),
    ) else {
        return missing(
            &id,
            format!("no open-interest agent `{agent}` in the config"),
        );
    };
    let streams = deps
        .config
        .exchanges
        .venues
        .get(&agent.venue)
        .is_some_and(streams_trades)
        .then(|| deps.streams.clone());
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        let reader =
            crate::market::open_reader_in(&deps.config, &agent.venue, Some(&deps.accounts))
                .map_err(StartError::failed)?;
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let kind = OpenInterestAgent::new(
            agent.clone(),
            OpenInterestDeps {
                reader,
                streams: streams.clone(),
                signals: deps.signals.clone(),
                journal: journal.clone(),
                state: OiState::open(&deps.store, &agent.name).map_err(StartError::failed)?,
                clock: deps.clock.clone(),
            },
        );
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

/// The child spec of liquidation agent `agent`.
pub(crate) fn liquidation_spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .liquidations
            .iter()
            .find(|a| a.name == agent)
            .map(|a| normalized_liq(&deps.config, a)),
        deps.agents.get(agent),
    ) else {
        return missing(&id, format!("no liquidation agent `{agent}` in the config"));
    };
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let kind = LiquidationAgent::new(
            agent.clone(),
            LiquidationDeps {
                streams: deps.streams.clone(),
                signals: deps.signals.clone(),
                journal: journal.clone(),
                state: LiqState::open(&deps.store, &agent.name).map_err(StartError::failed)?,
                clock: deps.clock.clone(),
            },
        );
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
