//! The copy-trading agents in the process: the checks of `[[agents.copy]]` that need the
//! rest of the config (venues, other agents' names), the agent's child spec in the tree,
//! and its part of `orrery status` / `GET /api/status` (followed wallets, sizing, limits
//! and the mirrored position per leader and symbol, read from sled).
//!
//! Owns: those three. Never: decides or sends a step (`orrery_actors::agents::copy` does).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Arc;

use orrery_actors::agents::copy::leader::LeaderReader;
use orrery_actors::agents::copy::{CopyAgent, CopyConfig, CopyDeps, CopyState};
use orrery_actors::agents::runtime::AgentRunner;
use orrery_actors::agents::DecisionJournal;
use orrery_actors::store::Store;
use orrery_actors::supervisor::{ChildSpec, StartError};
use orrery_actors::validate::{join, Issues};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::{Config, VenueConfig};
use crate::tree::{missing, Deps};

/// `[[agents.copy]]`: each agent's own keys, a name no other agent has, its venue, and a
/// Hyperliquid leader venue whose stream (when it streams) follows every wallet.
pub(crate) fn check(config: &Config, issues: &mut Issues) {
    let mut names: BTreeSet<&str> = config
        .agents
        .trading
        .iter()
        .map(|a| a.name.as_str())
        .chain(config.agents.pipeline.iter().map(|a| a.name.as_str()))
        .chain(config.agents.sentiment.iter().map(|a| a.name.as_str()))
        .collect();
    names.insert(orrery_actors::agents::risk::RISK_AGENT);
    for (i, agent) in config.agents.copy.iter().enumerate() {
        let path = format!("agents.copy[{i}]");
        agent.validate(&path, issues);
        issues.check(
            names.insert(&agent.name),
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
        match config.exchanges.venues.get(&agent.leader_venue) {
            Some(VenueConfig::Hyperliquid(h)) => {
                if h.streams {
                    let followed: BTreeSet<String> = h
                        .follow_wallets
                        .iter()
                        .map(|w| w.to_ascii_lowercase())
                        .collect();
                    for (j, w) in agent.wallets.iter().enumerate() {
                        issues.check(
                            followed.contains(&w.to_ascii_lowercase()),
                            format!("{}[{j}]", join(&path, "wallets")),
                            w,
                            format!(
                                "a wallet listed in exchanges.venues.{}.follow_wallets (the stream of its fills), or set streams = false there to copy from clearinghouseState polls alone",
                                agent.leader_venue
                            ),
                        );
                    }
                }
            }
            _ => issues.push(
                join(&path, "leader_venue"),
                &agent.leader_venue,
                format!(
                    "a Hyperliquid venue under [exchanges.venues] (kind = \"hyperliquid\"): {}",
                    config.venue_names()
                ),
            ),
        }
    }
}

/// The child spec of one copy agent: rebuilt from config and sled on every start.
pub(crate) fn spec(id: String, agent: &str, deps: &Deps) -> ChildSpec {
    let (Some(agent), Ok(entry)) = (
        deps.config
            .agents
            .copy
            .iter()
            .find(|a| a.name == agent)
            .cloned(),
        deps.agents.get(agent),
    ) else {
        return missing(&id, format!("no copy agent `{agent}` in the config"));
    };
    let Some(VenueConfig::Hyperliquid(leader_venue)) = deps
        .config
        .exchanges
        .venues
        .get(&agent.leader_venue)
        .cloned()
    else {
        return missing(
            &id,
            format!(
                "no hyperliquid venue `{}` in the config",
                agent.leader_venue
            ),
        );
    };
    let symbols = symbol_map(&deps.config, &agent);
    let deps = deps.clone();
    ChildSpec::in_slot(id, entry.slot.clone(), move |ctx| {
        let journal = DecisionJournal::open(&deps.store).map_err(StartError::failed)?;
        let leader = LeaderReader::new(
            &agent.leader_venue,
            &leader_venue.api_url(),
            agent.request_timeout,
            Some(deps.streams.clone()),
        )
        .map_err(StartError::failed)?;
        let run_deps = CopyDeps {
            gateway: deps.gateway.clone(),
            journal: journal.clone(),
            state: CopyState::open(&deps.store, &agent.name).map_err(StartError::failed)?,
            clock: deps.clock.clone(),
            leader,
        };
        let kind = CopyAgent::new(agent.clone(), symbols.clone(), run_deps);
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

/// Each allowlisted symbol as the leader venue names it → as our venue names it.
pub(crate) fn symbol_map(config: &Config, agent: &CopyConfig) -> BTreeMap<String, String> {
    agent
        .symbols
        .iter()
        .map(|s| {
            (
                crate::symbols::normalize(config, &agent.leader_venue, s),
                crate::symbols::normalize(config, &agent.venue, s),
            )
        })
        .collect()
}

/// One copy agent in `orrery status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyStatus {
    pub name: String,
    pub leader_venue: String,
    pub venue: String,
    /// The followed wallets.
    pub wallets: Vec<String>,
    /// `ratio 0.1` or `fixed 500 USD`.
    pub sizing: String,
    pub ratio: Option<Decimal>,
    pub fixed_usd: Option<Decimal>,
    pub max_position_usd: Decimal,
    pub max_total_usd: Decimal,
    pub mirrors: Vec<MirrorStatus>,
    /// Why the mirrors could not be read, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One leader and symbol: the leader's size at the last check and ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorStatus {
    pub leader: String,
    pub symbol: String,
    pub leader_size: Decimal,
    pub mirrored: Decimal,
    /// Steps settled so far.
    pub steps: u64,
    /// Client id of the step in flight, if one is.
    pub pending: Option<String>,
}

/// Every configured copy agent, its mirrors read from sled.
pub(crate) fn status(config: &Config, store: &Store) -> Vec<CopyStatus> {
    config
        .agents
        .copy
        .iter()
        .map(|a| {
            let (mirrors, error) = match CopyState::open(store, &a.name).and_then(|s| s.all()) {
                Ok(all) => (
                    all.into_iter()
                        .map(|(leader, symbol, m)| MirrorStatus {
                            leader,
                            symbol,
                            leader_size: m.leader_size,
                            mirrored: m.mirrored,
                            steps: m.steps,
                            pending: m.pending.map(|p| p.client_id.to_string()),
                        })
                        .collect(),
                    None,
                ),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            CopyStatus {
                name: a.name.clone(),
                leader_venue: a.leader_venue.clone(),
                venue: a.venue.clone(),
                wallets: a.leaders(),
                sizing: a.sizing_label(),
                ratio: a.ratio,
                fixed_usd: a.fixed_usd,
                max_position_usd: a.max_position_usd,
                max_total_usd: a.max_total_usd,
                mirrors,
                error,
            }
        })
        .collect()
}

/// The copy agents' lines of `orrery status`.
pub(crate) fn render_status(o: &mut String, agents: &[CopyStatus]) {
    if agents.is_empty() {
        return;
    }
    let _ = writeln!(o, "\ncopy trading:");
    for a in agents {
        let _ = writeln!(
            o,
            "  {} follows {} on {} → {}: {}, max {} USD per position, {} USD in total",
            a.name,
            a.wallets.join(", "),
            a.leader_venue,
            a.venue,
            a.sizing,
            a.max_position_usd.normalize(),
            a.max_total_usd.normalize()
        );
        if let Some(e) = &a.error {
            let _ = writeln!(o, "    mirrors unreadable: {e}");
        }
        for m in &a.mirrors {
            let _ = writeln!(
                o,
                "    {} {:<8} leader {:<12} mirrored {:<12} steps {}{}",
                m.leader,
                m.symbol,
                m.leader_size.normalize(),
                m.mirrored.normalize(),
                m.steps,
                m.pending
                    .as_deref()
                    .map(|p| format!("  step in flight {p}"))
                    .unwrap_or_default()
            );
        }
    }
}
