//! Swarm mode of the trading agent: several models ("members") are asked the same prompt at
//! once, each answer is a ballot, and the verdict needs a quorum of all members.
//!
//! Owns: asking the members (through the router's [`crate::models::router::Swarm`], under
//! `member_timeout`), turning each member's outcome into a journaled [`MemberAnswer`] and a
//! [`consensus::Ballot`], the verdict ([`mod@consensus`]), the optional reviewer's summary, the
//! swarm metrics, and feeding the quorum-health tracker ([`quorum_health`]) whose losses
//! move the engine to `Reducing` (through the gateway's [`SwarmQuorumLost`] /
//! [`SwarmQuorumRestored`]). Never: places orders (the trading agent acts on the verdict,
//! with `min_confidence`, `allow_defaulted_confidence` and the trading mode applied as for
//! one model), waits for a member past its deadline, or lets the reviewer change the vote.
//!
//! # Abstentions
//!
//! A member abstains with a reason: `timeout` (no answer by `member_timeout`; its call is
//! dropped, never awaited), `error` (the model call failed), `unparseable` (an answer the
//! decision parser cannot read, or one about another symbol) or `nothing` (it answered
//! NOTHING). Abstentions back no action; the quorum is still counted over all members.
//!
//! # Reviewer
//!
//! With `reviewer = "<model>"`, once the votes are counted the reviewer gets every member's
//! answer (member, verdict, confidence, reason, abstention) and the verdict, and writes a
//! short summary journaled as the decision's `review`. It runs beside the agent acting on
//! the verdict, under its own deadline (the agent's `decision_timeout`); its failure is
//! journaled as `review failed: ...` and changes nothing else.

pub mod config;
pub mod consensus;
pub mod quorum_health;

pub use config::{AgentMode, Quorum, QuorumLossConfig, SwarmKeys, SwarmSettings};
pub use consensus::{consensus, Ballot, Consensus, ConsensusReason, Tally};
pub use quorum_health::{QuorumHealth, Transition};

use std::fmt::Write as _;
use std::time::Instant;

use super::gateway_call;
use super::journal::{Abstention, DecisionMode, DecisionRecord, MemberAnswer};
use super::trading_deps::TradingDeps;
use crate::exchanges::gateway::{SwarmQuorumLost, SwarmQuorumRestored};
use crate::models::decision::parse_trade_decision_for;
use crate::models::router::SwarmReply;
use crate::models::{ModelRequest, Purpose, TradeAction, TradeDecision};
use crate::telemetry::names;

/// Longest review journaled, in characters; a longer answer is cut.
const MAX_REVIEW_CHARS: usize = 2000;

/// The reviewer's instructions.
pub const REVIEW_SYSTEM: &str = "You review the votes of a swarm of trading models. In at most three sentences, summarise where the members agree and disagree, and the strongest reason on each side. Do not cast a vote of your own.";

/// A reviewer's summary on its way; awaited once the agent has acted on the verdict.
pub type PendingReview = tokio::task::JoinHandle<String>;

/// Asks every member, counts the votes and fills `record` (mode, quorum, members, reason,
/// latency). Returns the verdict to act on, and the reviewer's pending summary when one
/// is configured. Also feeds the quorum-health tracker and reports it to the gateway.
pub async fn decide(
    agent: &str,
    settings: &SwarmSettings,
    deps: &TradingDeps,
    request: ModelRequest,
    symbol: &str,
    record: &mut DecisionRecord,
) -> (TradeDecision, Option<PendingReview>) {
    record.mode = DecisionMode::Swarm;
    record.quorum = Some(settings.quorum.to_string());
    let asked = Instant::now();
    let replies = deps
        .models
        .swarm(
            settings.members.clone(),
            request.clone(),
            settings.member_timeout,
        )
        .await;
    record.latency_ms = Some(asked.elapsed().as_millis() as u64);
    let replies: Vec<SwarmReply> = match replies {
        Ok(replies) => replies,
        // The router did not answer: every member failed the same way.
        Err(e) => settings
            .members
            .iter()
            .map(|m| SwarmReply {
                member: m.clone(),
                result: Err(e.clone()),
            })
            .collect(),
    };
    let (members, ballots): (Vec<MemberAnswer>, Vec<Ballot>) = replies
        .into_iter()
        .map(|reply| member_answer(reply, symbol, settings))
        .unzip();
    let verdict = consensus(&ballots, settings.quorum);
    for m in &members {
        let vote = m
            .abstention
            .map(Abstention::as_str)
            .or(match m.verdict.as_deref() {
                Some("BUY") => Some("buy"),
                Some("SELL") => Some("sell"),
                _ => None,
            })
            .unwrap_or("error");
        metrics::counter!(names::SWARM_VOTES, "agent" => agent.to_string(), "vote" => vote)
            .increment(1);
    }
    metrics::counter!(
        names::SWARM_VERDICTS,
        "agent" => agent.to_string(),
        "verdict" => action_label(verdict.verdict),
        "reason" => verdict.reason.as_str()
    )
    .increment(1);
    let failed = members
        .iter()
        .filter(|m| m.abstention.is_some_and(Abstention::is_failure))
        .count();
    record.members = members;
    record.confidence_defaulted = verdict.confidence_defaulted;
    let review = settings.reviewer.as_ref().map(|reviewer| {
        let mut ask = request;
        ask.model = reviewer.clone();
        ask.purpose = Purpose::Freeform;
        ask.system = REVIEW_SYSTEM.to_string();
        ask.prompt = review_prompt(symbol, &record.members, &verdict);
        ask.context = None;
        ask.max_tokens = 300;
        ask.timeout = settings.review_timeout;
        let models = deps.models.clone();
        tokio::spawn(async move {
            match models.ask(ask).await {
                Ok(answer) => answer.text.trim().chars().take(MAX_REVIEW_CHARS).collect(),
                Err(e) => format!("review failed: {e}"),
            }
        })
    });
    report_quorum(agent, settings, deps, record.members.len(), failed).await;
    (
        TradeDecision {
            action: verdict.verdict,
            confidence: verdict.confidence,
            reason: verdict.describe(),
        },
        review,
    )
}

fn action_label(action: TradeAction) -> &'static str {
    match action {
        TradeAction::Buy => "BUY",
        TradeAction::Sell => "SELL",
        TradeAction::Nothing => "NOTHING",
    }
}

/// One member's outcome as journaled, and its ballot.
pub fn member_answer(
    reply: SwarmReply,
    symbol: &str,
    settings: &SwarmSettings,
) -> (MemberAnswer, Ballot) {
    let mut m = MemberAnswer::asked(&reply.member, None);
    let answer = match reply.result {
        Ok(answer) => answer,
        Err(e) => {
            let abstention = Abstention::of_model_error(&e);
            if abstention == Abstention::Timeout {
                m.latency_ms = Some(settings.member_timeout.as_millis() as u64);
            }
            m.abstained(abstention, &e);
            return (m, Ballot::Abstain(abstention));
        }
    };
    m.answered(&answer);
    m.latency_ms = Some(answer.latency.as_millis() as u64);
    match parse_trade_decision_for(&answer.text, symbol) {
        Ok(parsed) => {
            let d = parsed.decision;
            m.verdict = Some(action_label(d.action).to_string());
            m.confidence = Some(d.confidence);
            m.reason = Some(d.reason);
            let ballot = Ballot::of(d.action, d.confidence, parsed.confidence_defaulted);
            if let Ballot::Abstain(a) = ballot {
                m.abstention = Some(a);
            }
            (m, ballot)
        }
        Err(e) => {
            m.abstained(Abstention::Unparseable, &e);
            (m, Ballot::Abstain(Abstention::Unparseable))
        }
    }
}

/// The reviewer's prompt: every member's answer, then the verdict.
pub fn review_prompt(symbol: &str, members: &[MemberAnswer], verdict: &Consensus) -> String {
    let mut p = format!(
        "Swarm decision on {symbol}: {} members voted.\n\n",
        members.len()
    );
    for m in members {
        let _ = write!(p, "- {}: ", m.member);
        match (&m.verdict, m.abstention) {
            (Some(v), abstention) => {
                let _ = write!(
                    p,
                    "{v}, confidence {}",
                    m.confidence
                        .map(|c| format!("{c:.2}"))
                        .unwrap_or_else(|| "-".into())
                );
                if abstention == Some(Abstention::Nothing) {
                    p.push_str(" (abstains: nothing)");
                }
                let _ = write!(p, "; reason: {}", m.reason.as_deref().unwrap_or("-"));
            }
            (None, Some(a)) => {
                let _ = write!(
                    p,
                    "abstained ({}): {}",
                    a.as_str(),
                    m.error.as_deref().unwrap_or("-")
                );
            }
            (None, None) => p.push_str("no answer"),
        }
        p.push('\n');
    }
    let _ = write!(
        p,
        "\nVerdict: {} ({}).\nSummarise the consensus.",
        action_label(verdict.verdict),
        verdict.describe()
    );
    p
}

/// Feeds one decision's member outcomes to the agent's quorum-health tracker (kept in its
/// sled memory), exports its gauges, logs a loss (`warn`) or a recovery (`info`), and tells
/// the gateway whether this swarm has lost its quorum. The gateway sets `Reducing` only
/// from `Normal` and lifts only its own cause once no swarm is degraded, so the kill switch
/// and the risk agent keep precedence.
async fn report_quorum(
    agent: &str,
    settings: &SwarmSettings,
    deps: &TradingDeps,
    asked: usize,
    failed: usize,
) {
    let cfg = &settings.quorum_loss;
    let mut health = deps.memory.swarm_health().unwrap_or_else(|e| {
        tracing::error!(agent, error = %e, "cannot read the swarm's quorum health; starting afresh");
        QuorumHealth::default()
    });
    let now = deps.clock.now_ms();
    let transition = health.observe(cfg, now, asked, failed);
    if let Err(e) = deps.memory.set_swarm_health(&health) {
        tracing::error!(agent, error = %e, "cannot record the swarm's quorum health");
    }
    let (failed_in_window, answers, share) = health.failures();
    metrics::gauge!(names::SWARM_FAILED_SHARE, "agent" => agent.to_string()).set(share);
    metrics::gauge!(names::SWARM_QUORUM_LOST, "agent" => agent.to_string())
        .set(if health.is_lost() { 1.0 } else { 0.0 });
    let window = humantime::format_duration(cfg.window);
    let reason = format!(
        "swarm {agent}: {:.0}% of member answers failed over {window} ({failed_in_window} of {answers}, more than {:.0}%)",
        share * 100.0,
        cfg.max_failed_share * 100.0
    );
    match transition {
        Transition::Lost { .. } => tracing::warn!(
            agent,
            failed = failed_in_window,
            answers,
            share,
            "swarm quorum lost: {reason}; asking the gateway for reducing-only trading"
        ),
        Transition::Restored { healthy_ms } => tracing::info!(
            agent,
            healthy_ms,
            "swarm quorum restored: members healthy for {}",
            humantime::format_duration(std::time::Duration::from_millis(healthy_ms))
        ),
        Transition::Unchanged => {}
    }
    let reported = if health.is_lost() {
        gateway_call(
            &deps.gateway,
            SwarmQuorumLost {
                agent: agent.to_string(),
                reason,
            },
        )
        .await
    } else {
        gateway_call(
            &deps.gateway,
            SwarmQuorumRestored {
                agent: agent.to_string(),
            },
        )
        .await
    };
    if let Err(e) = reported {
        tracing::warn!(agent, error = %e, "cannot report the swarm's quorum health to the gateway");
    }
}
