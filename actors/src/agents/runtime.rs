//! The agent runtime: one supervised actor ([`AgentRunner`]) that runs any agent kind
//! ([`AgentKind`]) on its schedule, and the directory ([`AgentDirectory`]) through which
//! the control API, the CLI and an embedding program reach the agents by name.
//!
//! Owns, for every agent kind alike:
//! - **the schedule**: the first run `initial_delay` after start, then one run per
//!   `interval` on a fixed grid (a slow run does not shift later slots), each run started
//!   up to `jitter × interval` after its slot (uniformly at random; `jitter = 0` runs on
//!   the beat). A slot whose time passed while the process stalled is not made up.
//! - **no overlapping runs**: a tick that finds the previous run still going starts none
//!   and counts `orrery_agent_runs_total{outcome="skipped_busy"}`.
//! - **a deadline per run** (`run_timeout`): a run still going at its deadline is cut (its
//!   future is dropped; a request it had already handed to the gateway or the router is
//!   still carried out there, and settled by their own rules) and counted
//!   `outcome="timeout"`, recorded in the agent's memory as a failure.
//! - **pause / resume** ([`AgentControl`] in sled, key `control` of `agents/<name>`):
//!   read at every tick, so a pause holds across restarts of the agent and of the engine,
//!   whoever wrote it (the running engine, or the CLI on a stopped engine's data dir). A
//!   paused agent's ticks count `outcome="skipped_paused"`. A run in progress when the
//!   pause arrives finishes.
//! - **memory** ([`MemoryStore`]: runs, failures, last run, last error) and the run
//!   metrics: `orrery_agent_runs_total{agent,outcome}`,
//!   `orrery_agent_run_duration_seconds{agent}`,
//!   `orrery_agent_last_run_timestamp_seconds{agent}`.
//! - **run-now**: [`RunNow`] starts a run at once unless one is in progress or the agent
//!   is paused; the answer ([`RunNowAnswer`]) says which. It does not move the schedule.
//! - **ownership in a cluster** ([`AgentRunner::owned_through`]): an agent runs only on
//!   the node that holds the lease `agent:<name>` (see `crate::cluster::lease`; an agent
//!   that trades takes it only beside its venue's lease); on the other nodes its ticks
//!   count `outcome="skipped_not_owner"` and run-now answers [`RunNowAnswer::NotOwner`]. The lease is read at every tick, so a standby agent runs
//!   at the first tick after its node acquires the lease, and stops at the first tick
//!   after it lost it (a run in progress finishes; its orders still pass the gateway's
//!   own venue lease check).
//!
//! Never: decides anything an agent kind decides (what to ask, what to trade), or lifts a
//! pause by itself. Pausing the risk agent is allowed, but logged as a warning and shown
//! with [`RISK_PAUSED_WARNING`]: loss/gain windows and the minimum balance are then not
//! watched, and only the gateway's risk gate still checks each order.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture,
};
use futures::future::LocalBoxFuture;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::journal::DecisionJournal;
use super::memory::{AgentControl, MemoryStore};
use crate::clock::{Millis, SharedClock};
use crate::store::StoreError;
use crate::supervisor::{Slot, SlotError};
use crate::telemetry::names;

/// What an agent is; decides how the runtime treats a pause (see
/// [`Kind::enforces_risk_limits`]) and what `orrery agents` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A trading agent (`[[agents.trading]]`).
    Trading,
    /// The risk agent (`[agents.risk]`).
    Risk,
    /// A five-role analysis pipeline (`[[agents.pipeline]]`).
    Pipeline,
    /// A sentiment and news agent (`[[agents.sentiment]]`).
    Sentiment,
    /// An open-interest and whale agent (`[[agents.open_interest]]`).
    OpenInterest,
    /// A liquidation agent (`[[agents.liquidations]]`).
    Liquidations,
    /// A copy-trading agent (`[[agents.copy]]`).
    Copy,
    /// A funding agent (`[[agents.funding]]`).
    Funding,
    /// A strategy agent (`[[agents.strategy]]`).
    Strategy,
    /// A research -> backtest -> implement agent (`[[agents.rbi]]`).
    Rbi,
}

impl Kind {
    /// The low-priority work this kind is, if it pauses first when the engine sheds load
    /// (see `crate::shedding`): research runs and sentiment polling.
    pub fn low_priority_work(self) -> Option<crate::shedding::LowPriorityWork> {
        use crate::shedding::LowPriorityWork;
        match self {
            Kind::Rbi => Some(LowPriorityWork::ResearchAgent),
            Kind::Sentiment => Some(LowPriorityWork::SentimentAgent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Trading => "trading",
            Kind::Risk => "risk",
            Kind::Pipeline => "pipeline",
            Kind::Sentiment => "sentiment",
            Kind::OpenInterest => "open_interest",
            Kind::Liquidations => "liquidations",
            Kind::Copy => "copy",
            Kind::Funding => "funding",
            Kind::Strategy => "strategy",
            Kind::Rbi => "rbi",
        }
    }

    /// Whether pausing this agent leaves risk limits unwatched (the loss/gain window and
    /// the minimum balance): such a pause is logged as a warning and shown prominently.
    pub fn enforces_risk_limits(self) -> bool {
        matches!(self, Kind::Risk)
    }
}

/// Shown (and logged) while the risk agent is paused.
pub const RISK_PAUSED_WARNING: &str = "the risk agent is paused: loss/gain limits and the minimum balance are not watched; only the gateway's risk gate (position size, leverage, trading mode) checks orders";

/// When an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Time between two runs' slots.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time from the agent's start to its first slot.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Each run starts up to this fraction of `interval` after its slot, at random
    /// (0: on the beat). Spreads agents that share an interval.
    pub jitter: f64,
    /// Deadline of one run; a run still going then is cut and counted `timeout`.
    #[serde(with = "humantime_serde")]
    pub run_timeout: Duration,
}

impl Schedule {
    /// The random delay after a slot at which its run starts: uniform in
    /// `[0, jitter × interval]` (jitter clamped to `[0, 1]`).
    pub fn jitter_delay(&self, rng: &mut impl Rng) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return Duration::ZERO;
        }
        self.interval.mul_f64(jitter * rng.gen_range(0.0..=1.0))
    }
}

/// Checks the runtime keys of one agent (`jitter`, `run_timeout`) into `issues`.
pub fn validate_keys(
    path: &str,
    jitter: f64,
    run_timeout: Option<Duration>,
    issues: &mut crate::validate::Issues,
) {
    use crate::validate::join;
    issues.check(
        (0.0..1.0).contains(&jitter),
        join(path, "jitter"),
        jitter,
        "a fraction of the interval from 0 (on the beat) up to but excluding 1",
    );
    if let Some(t) = run_timeout {
        issues.check(
            t >= Duration::from_millis(100) && t <= Duration::from_secs(3600),
            join(path, "run_timeout"),
            humantime::format_duration(t).to_string(),
            "a duration from 100ms to 1h",
        );
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its slot in the schedule came.
    Schedule,
    /// An operator asked for it ([`RunNow`]).
    RunNow,
}

/// What one run gets from the runtime.
#[derive(Clone)]
pub struct RunCtx {
    /// The agent's memory (`agents/<name>`).
    pub memory: MemoryStore,
    /// The decision journal.
    pub journal: DecisionJournal,
    pub clock: SharedClock,
    pub trigger: Trigger,
    /// When the runtime cuts this run (tokio's clock).
    pub deadline: tokio::time::Instant,
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// It ran.
    Ok,
    /// The trading mode allowed no model call: nothing was asked or done.
    SkippedMode,
    /// It ran and something failed; the text goes to the agent's memory (`last_error`).
    Error(String),
    /// The runtime cut it at its deadline.
    Timeout(Duration),
}

impl RunOutcome {
    /// The `outcome` label of `orrery_agent_runs_total`.
    pub fn label(&self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::SkippedMode => "skipped_mode",
            RunOutcome::Error(_) => "error",
            RunOutcome::Timeout(_) => "timeout",
        }
    }

    /// The failure kept as the agent's `last_error`, if this run failed.
    pub fn error_text(&self) -> Option<String> {
        match self {
            RunOutcome::Ok | RunOutcome::SkippedMode => None,
            RunOutcome::Error(e) => Some(e.clone()),
            RunOutcome::Timeout(t) => Some(format!(
                "run cut at its deadline (run_timeout {})",
                humantime::format_duration(*t)
            )),
        }
    }
}

/// One kind of agent: what the runtime needs to run it. The kind owns its decisions; the
/// runtime owns when it runs and everything around a run (see the module docs).
pub trait AgentKind: 'static {
    /// Unique agent name; its memory lives in `agents/<name>`.
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    fn schedule(&self) -> Schedule;
    /// Called once when the runner starts, before the first run.
    fn started(&self) {}
    /// Something about how the agent runs that the operator should know (a feature off
    /// for want of a stream, say), shown as the agent's `warning` by `orrery agents`.
    fn note(&self) -> Option<String> {
        None
    }
    /// The venue this agent sends orders to, if it trades. In a cluster its lease follows
    /// that venue's ([`AgentRunner::owned_through`]): it runs on the node whose gateway
    /// may send for the account.
    fn order_venue(&self) -> Option<&str> {
        None
    }
    /// One run. The runtime cuts it at `ctx.deadline` and records its outcome.
    fn run(&self, ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome>;
}

/// Records one run's outcome: the run metrics and the agent's memory. The runner calls it
/// after every run; `trading::run_once` too, so a run driven by a test is recorded alike.
pub fn record_outcome(
    agent: &str,
    memory: &MemoryStore,
    clock: &SharedClock,
    outcome: &RunOutcome,
    elapsed: Duration,
) {
    let now = clock.now_ms();
    metrics::counter!(names::AGENT_RUNS, "agent" => agent.to_string(), "outcome" => outcome.label())
        .increment(1);
    metrics::histogram!(names::AGENT_RUN_DURATION, "agent" => agent.to_string())
        .record(elapsed.as_secs_f64());
    metrics::gauge!(names::AGENT_LAST_RUN, "agent" => agent.to_string()).set(now as f64 / 1000.0);
    if let Err(e) = memory.record_run(now, outcome.error_text()) {
        tracing::error!(agent, error = %e, "cannot record agent memory");
    }
}

/// Pauses or resumes an agent: durable in sled before it returns, one log line (a warning
/// when the risk agent is paused). The one code path of the runner's [`PauseAgent`] /
/// [`ResumeAgent`], the directory, and the CLI on a stopped engine.
pub fn set_paused(
    memory: &MemoryStore,
    name: &str,
    kind: Kind,
    paused: bool,
    reason: &str,
    now_ms: Millis,
) -> Result<AgentControl, StoreError> {
    let control = AgentControl {
        paused,
        reason: reason.to_string(),
        since_ms: now_ms,
    };
    memory.set_control(&control)?;
    match (paused, kind.enforces_risk_limits()) {
        (true, true) => {
            tracing::warn!(agent = %name, kind = kind.as_str(), reason, "agent paused; {RISK_PAUSED_WARNING}")
        }
        (true, false) => {
            tracing::info!(agent = %name, kind = kind.as_str(), reason, "agent paused")
        }
        (false, _) => tracing::info!(agent = %name, kind = kind.as_str(), reason, "agent resumed"),
    }
    Ok(control)
}

/// What an agent is doing, as `orrery agents` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// A run is in progress.
    Running,
    /// Waiting for its next slot.
    Idle,
    /// Paused by an operator; its slots are skipped.
    Paused,
    /// The engine runs but the agent's actor is restarting.
    Restarting,
    /// The engine is not running.
    Stopped,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Running => "running",
            AgentState::Idle => "idle",
            AgentState::Paused => "paused",
            AgentState::Restarting => "restarting",
            AgentState::Stopped => "stopped",
        }
    }
}

/// One agent as `orrery agents --json` and `GET /api/agents` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub kind: Kind,
    pub schedule: Schedule,
    pub state: AgentState,
    pub paused: bool,
    /// Why it was paused (or last resumed).
    pub pause_reason: Option<String>,
    /// Since when it is paused, Unix ms.
    pub paused_since_ms: Option<Millis>,
    pub running: bool,
    /// When the run in progress started, Unix ms.
    pub running_since_ms: Option<Millis>,
    pub runs: u64,
    pub failures: u64,
    pub last_run_ms: Option<Millis>,
    pub last_ok_ms: Option<Millis>,
    pub last_error: Option<String>,
    /// When the next scheduled run is due, Unix ms (a paused agent's slot still comes,
    /// and is skipped).
    pub next_run_ms: Option<Millis>,
    /// Set while pausing this agent leaves risk limits unwatched ([`RISK_PAUSED_WARNING`]).
    pub warning: Option<String>,
}

impl AgentInfo {
    /// The agent as its data dir has it, with `state` unless it is paused.
    pub fn from_store(
        name: &str,
        kind: Kind,
        schedule: Schedule,
        memory: &MemoryStore,
        state: AgentState,
    ) -> Result<Self, StoreError> {
        let m = memory.load()?;
        let control = memory.control()?;
        let changed = control.since_ms != 0;
        Ok(Self {
            name: name.to_string(),
            kind,
            schedule,
            state: if control.paused {
                AgentState::Paused
            } else {
                state
            },
            paused: control.paused,
            pause_reason: changed.then(|| control.reason.clone()),
            paused_since_ms: control.paused.then_some(control.since_ms),
            running: false,
            running_since_ms: None,
            runs: m.runs,
            failures: m.failures,
            last_run_ms: m.last_run_ms,
            last_ok_ms: m.last_ok_ms,
            last_error: m.last_error,
            next_run_ms: None,
            warning: (control.paused && kind.enforces_risk_limits())
                .then(|| RISK_PAUSED_WARNING.to_string()),
        })
    }
}

/// Pauses the agent (durably) from its next slot on.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AgentControl, StoreError>")]
pub struct PauseAgent {
    pub reason: String,
}

/// Resumes a paused agent from its next slot on.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AgentControl, StoreError>")]
pub struct ResumeAgent {
    pub reason: String,
}

/// Starts a run at once, unless one is in progress or the agent is paused.
#[derive(Debug, Clone, Message)]
#[rtype(result = "RunNowAnswer")]
pub struct RunNow;

/// What [`RunNow`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunNowAnswer {
    /// A run started.
    Started,
    /// A run is in progress (since `since_ms`); no second one was started.
    Busy { since_ms: Millis },
    /// The agent is paused; nothing was started.
    Paused { reason: String, since_ms: Millis },
    /// The engine sheds load and this agent is low-priority work; nothing was started.
    Shed { reason: String },
    /// Another node of the cluster owns this agent (its lease); nothing was started here.
    NotOwner { owner: String },
}

/// The agent's [`AgentInfo`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AgentInfo, StoreError>")]
pub struct DescribeAgent;

/// The supervised actor that runs one agent (see the module docs).
pub struct AgentRunner {
    agent: Arc<dyn AgentKind>,
    schedule: Schedule,
    memory: MemoryStore,
    journal: DecisionJournal,
    clock: SharedClock,
    running_since_ms: Option<Millis>,
    /// The current slot on the schedule's grid.
    slot_at: tokio::time::Instant,
    next_run_ms: Option<Millis>,
    rng: rand::rngs::StdRng,
    /// `orrery_actor_messages_total` of the supervised actor: one per tick.
    messages: metrics::Counter,
    /// Consulted before each run of a low-priority kind ([`Kind::low_priority_work`]).
    shedding: Option<crate::shedding::ShedGate>,
    /// In a cluster: the node's leases; the agent runs only while it holds `agent:<name>`.
    ownership: Option<crate::cluster::Leases>,
}

/// Whether a run could start.
enum Start {
    Started,
    Busy(Millis),
    Paused(AgentControl),
    /// The engine sheds load (not written to the agent's pause state: it lifts by itself).
    Shed(crate::shedding::Shed),
    /// Another node holds the agent's lease (its name as last seen).
    NotOwner(String),
}

impl AgentRunner {
    pub fn new(
        agent: Arc<dyn AgentKind>,
        memory: MemoryStore,
        journal: DecisionJournal,
        clock: SharedClock,
    ) -> Self {
        Self {
            schedule: agent.schedule(),
            agent,
            memory,
            journal,
            clock,
            running_since_ms: None,
            slot_at: tokio::time::Instant::now(),
            next_run_ms: None,
            rng: rand::rngs::StdRng::from_entropy(),
            messages: metrics::Counter::noop(),
            shedding: None,
            ownership: None,
        }
    }

    /// Runs only while this node holds the lease `agent:<name>` in `leases` (a cluster);
    /// `None` (a single process) changes nothing. The lease is added to the book if it is
    /// not there yet (an agent started while the engine runs), so the keeper takes it; an
    /// agent that trades ([`AgentKind::order_venue`]) follows its venue's lease.
    pub fn owned_through(mut self, leases: Option<crate::cluster::Leases>) -> Self {
        if let Some(leases) = &leases {
            let resource = crate::cluster::agent_resource(&self.name());
            match self.agent.order_venue() {
                Some(venue) => leases.follow(&resource, &crate::cluster::venue_resource(venue)),
                None => leases.want(&resource),
            };
        }
        self.ownership = leases;
        self
    }

    /// Runs of a low-priority kind ([`Kind::low_priority_work`]) are skipped (scheduled)
    /// or refused (run-now) while `gate` sheds load; other kinds never consult it.
    pub fn shedding(mut self, gate: crate::shedding::ShedGate) -> Self {
        self.shedding = Some(gate);
        self
    }

    /// Counts every tick in `counter`; see [`crate::supervisor::StartCtx::messages_counter`].
    /// The agent works on its own timer, so its slot alone would count only control
    /// messages.
    pub fn counting_messages_in(mut self, counter: metrics::Counter) -> Self {
        self.messages = counter;
        self
    }

    /// A fixed jitter sequence (tests).
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng = rand::rngs::StdRng::seed_from_u64(seed);
        self
    }

    fn name(&self) -> String {
        self.agent.name().to_string()
    }

    /// Waits for the slot at `slot` (plus its jitter), then ticks.
    fn arm(&mut self, ctx: &mut Context<Self>, slot: tokio::time::Instant) {
        self.slot_at = slot;
        let fire = slot + self.schedule.jitter_delay(&mut self.rng);
        let delay = fire.saturating_duration_since(tokio::time::Instant::now());
        self.next_run_ms = Some(self.clock.now_ms() + delay.as_millis() as Millis);
        ctx.run_later(delay, |this, ctx| this.tick(ctx));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.messages.increment(1);
        let now = tokio::time::Instant::now();
        let interval = self.schedule.interval.max(Duration::from_millis(1));
        let mut next = self.slot_at + interval;
        // Slots that passed while the process stalled are not made up in a burst.
        while next <= now {
            next += interval;
        }
        self.arm(ctx, next);
        match self.try_start(ctx, Trigger::Schedule) {
            Start::Started => {}
            Start::Busy(_) => {
                metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => "skipped_busy").increment(1)
            }
            Start::Paused(_) => {
                metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => "skipped_paused").increment(1)
            }
            Start::Shed(_) => {
                metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => "skipped_shed").increment(1)
            }
            Start::NotOwner(_) => {
                metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => "skipped_not_owner").increment(1)
            }
        }
    }

    fn try_start(&mut self, ctx: &mut Context<Self>, trigger: Trigger) -> Start {
        // Read at every start (a point read), so a pause takes effect whoever wrote it.
        let control = match self.memory.control() {
            Ok(c) => c,
            Err(e) => {
                // An operator's pause must hold: when it cannot be read, nothing runs.
                tracing::error!(agent = %self.agent.name(), error = %e, "cannot read the agent's pause state; not running");
                AgentControl {
                    paused: true,
                    reason: format!("pause state unreadable: {e}"),
                    since_ms: self.clock.now_ms(),
                }
            }
        };
        if control.paused {
            return Start::Paused(control);
        }
        if let Some(leases) = &self.ownership {
            let resource = crate::cluster::agent_resource(self.agent.name());
            if leases.held(&resource).is_none() {
                return Start::NotOwner(leases.owner(&resource));
            }
        }
        if let (Some(gate), Some(work)) = (&self.shedding, self.agent.kind().low_priority_work()) {
            if let Err(shed) = gate.admit(work) {
                return Start::Shed(shed);
            }
        }
        if let Some(since) = self.running_since_ms {
            return Start::Busy(since);
        }
        self.running_since_ms = Some(self.clock.now_ms());
        let started = tokio::time::Instant::now();
        let timeout = self.schedule.run_timeout;
        let run = self.agent.run(RunCtx {
            memory: self.memory.clone(),
            journal: self.journal.clone(),
            clock: self.clock.clone(),
            trigger,
            deadline: started + timeout,
        });
        ctx.spawn(
            async move {
                match tokio::time::timeout(timeout, run).await {
                    Ok(outcome) => outcome,
                    Err(_) => RunOutcome::Timeout(timeout),
                }
            }
            .into_actor(self)
            .map(move |outcome, this, _| this.finish(outcome, started)),
        );
        Start::Started
    }

    fn finish(&mut self, outcome: RunOutcome, started: tokio::time::Instant) {
        self.running_since_ms = None;
        let name = self.name();
        if let RunOutcome::Timeout(t) = &outcome {
            tracing::warn!(agent = %name, run_timeout = %humantime::format_duration(*t), "agent run cut at its deadline");
        }
        record_outcome(
            &name,
            &self.memory,
            &self.clock,
            &outcome,
            started.elapsed(),
        );
    }
}

impl Actor for AgentRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The series exist from start, so an alert on their increase works before the
        // first failure.
        for outcome in ["ok", "error", "timeout", "skipped_busy", "skipped_paused"] {
            metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => outcome)
                .increment(0);
        }
        if self.ownership.is_some() {
            metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => "skipped_not_owner")
                .increment(0);
        }
        if self.shedding.is_some() && self.agent.kind().low_priority_work().is_some() {
            metrics::counter!(names::AGENT_RUNS, "agent" => self.name(), "outcome" => "skipped_shed")
                .increment(0);
        }
        self.agent.started();
        let first = tokio::time::Instant::now() + self.schedule.initial_delay;
        self.arm(ctx, first);
    }
}

impl AgentRunner {
    /// Pauses or resumes this agent (durable), as [`PauseAgent`] and [`ResumeAgent`] ask.
    fn set_paused(&self, paused: bool, reason: &str) -> Result<AgentControl, StoreError> {
        set_paused(
            &self.memory,
            self.agent.name(),
            self.agent.kind(),
            paused,
            reason,
            self.clock.now_ms(),
        )
    }
}

impl Handler<PauseAgent> for AgentRunner {
    type Result = Result<AgentControl, StoreError>;
    fn handle(&mut self, msg: PauseAgent, _: &mut Context<Self>) -> Self::Result {
        self.set_paused(true, &msg.reason)
    }
}

impl Handler<ResumeAgent> for AgentRunner {
    type Result = Result<AgentControl, StoreError>;
    fn handle(&mut self, msg: ResumeAgent, _: &mut Context<Self>) -> Self::Result {
        self.set_paused(false, &msg.reason)
    }
}

impl Handler<RunNow> for AgentRunner {
    type Result = MessageResult<RunNow>;
    fn handle(&mut self, _: RunNow, ctx: &mut Context<Self>) -> Self::Result {
        let answer = match self.try_start(ctx, Trigger::RunNow) {
            Start::Started => RunNowAnswer::Started,
            Start::Busy(since_ms) => RunNowAnswer::Busy { since_ms },
            Start::Paused(c) => RunNowAnswer::Paused {
                reason: c.reason,
                since_ms: c.since_ms,
            },
            Start::Shed(shed) => RunNowAnswer::Shed {
                reason: shed.to_string(),
            },
            Start::NotOwner(owner) => RunNowAnswer::NotOwner { owner },
        };
        tracing::info!(agent = %self.agent.name(), answer = ?answer, "run-now requested");
        MessageResult(answer)
    }
}

impl Handler<DescribeAgent> for AgentRunner {
    type Result = Result<AgentInfo, StoreError>;
    fn handle(&mut self, _: DescribeAgent, _: &mut Context<Self>) -> Self::Result {
        let mut info = AgentInfo::from_store(
            self.agent.name(),
            self.agent.kind(),
            self.schedule,
            &self.memory,
            if self.running_since_ms.is_some() {
                AgentState::Running
            } else {
                AgentState::Idle
            },
        )?;
        info.running = self.running_since_ms.is_some();
        info.running_since_ms = self.running_since_ms;
        info.warning = info.warning.or_else(|| self.agent.note());
        info.next_run_ms = self.next_run_ms;
        Ok(info)
    }
}

/// Why a request through the [`AgentDirectory`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("unknown agent `{name}`; known agents: {known}")]
    Unknown { name: String, known: String },
    #[error("an agent `{0}` exists already; agent names are unique")]
    Exists(String),
    #[error("the engine is not running: `run-now` needs a running engine (start it with `orrery run`); pause and resume work on a stopped engine")]
    NotRunning,
    #[error("agent `{name}` did not answer (restarting?): {source}")]
    Unreachable {
        name: String,
        #[source]
        source: SlotError,
    },
    #[error("agent state in the data dir: {0}")]
    Store(#[from] StoreError),
}

/// How long the directory waits for a runner's answer: its handlers answer at once (a
/// point read or a flushed write), so a runner that takes longer is stuck or stopping.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// `msg` to `e`'s runner, answered within [`CONTROL_TIMEOUT`].
async fn ask<M>(e: &AgentEntry, msg: M) -> Result<M::Result, SlotError>
where
    M: Message + Send + 'static,
    M::Result: Send,
    AgentRunner: Handler<M>,
{
    match tokio::time::timeout(CONTROL_TIMEOUT, e.slot.send(msg)).await {
        Ok(answer) => answer,
        Err(_) => Err(SlotError::Timeout {
            actor: e.slot.label().to_string(),
        }),
    }
}

/// One agent in the directory.
#[derive(Clone)]
pub struct AgentEntry {
    pub name: String,
    pub kind: Kind,
    pub schedule: Schedule,
    /// Where its runner lives while the engine runs (kept across the runner's restarts).
    pub slot: Slot<AgentRunner>,
    pub memory: MemoryStore,
}

impl AgentEntry {
    fn new(name: &str, kind: Kind, schedule: Schedule, memory: MemoryStore) -> Self {
        Self {
            name: name.to_string(),
            kind,
            schedule,
            slot: Slot::new(),
            memory,
        }
    }
}

/// Every configured agent by name, in config order: how the control API, the CLI and
/// the embedding API reach agents, whose runners restart (their slots stay). Built from
/// the config before the tree starts, so every agent is known from the first request;
/// an agent started while the engine runs (a promoted strategy) is added with
/// [`AgentDirectory::add`], and every clone of the directory sees it.
/// A directory of a stopped engine (`live = false`) answers from the data dir.
#[derive(Clone)]
pub struct AgentDirectory {
    entries: Arc<parking_lot::RwLock<Vec<AgentEntry>>>,
    live: bool,
    clock: SharedClock,
}

impl AgentDirectory {
    pub fn new(live: bool, clock: SharedClock) -> Self {
        Self {
            entries: Arc::default(),
            live,
            clock,
        }
    }

    /// Adds an agent (while the directory is being built).
    pub fn with(self, name: &str, kind: Kind, schedule: Schedule, memory: MemoryStore) -> Self {
        self.entries
            .write()
            .push(AgentEntry::new(name, kind, schedule, memory));
        self
    }

    /// Adds an agent to a directory in use (an agent started while the engine runs) and
    /// answers its entry, whose slot its runner is to fill; a name already known is refused.
    pub fn add(
        &self,
        name: &str,
        kind: Kind,
        schedule: Schedule,
        memory: MemoryStore,
    ) -> Result<AgentEntry, AgentError> {
        let mut entries = self.entries.write();
        if entries.iter().any(|e| e.name == name) {
            return Err(AgentError::Exists(name.to_string()));
        }
        let entry = AgentEntry::new(name, kind, schedule, memory);
        entries.push(entry.clone());
        Ok(entry)
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.read().iter().map(|e| e.name.clone()).collect()
    }

    /// The agent `name`, or [`AgentError::Unknown`] listing the known ones.
    pub fn get(&self, name: &str) -> Result<AgentEntry, AgentError> {
        let entries = self.entries.read();
        match entries.iter().find(|e| e.name == name) {
            Some(e) => Ok(e.clone()),
            None => Err(AgentError::Unknown {
                name: name.to_string(),
                known: if entries.is_empty() {
                    "none configured".to_string()
                } else {
                    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
                    names.join(", ")
                },
            }),
        }
    }

    /// Every agent, described by its runner (or from the data dir while it is not live).
    pub async fn describe_all(&self) -> Result<Vec<AgentInfo>, AgentError> {
        // A snapshot: the lock is not held across the runners' answers.
        let entries = self.entries.read().clone();
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            out.push(self.describe_entry(e).await?);
        }
        Ok(out)
    }

    pub async fn describe(&self, name: &str) -> Result<AgentInfo, AgentError> {
        let e = self.get(name)?;
        self.describe_entry(&e).await
    }

    async fn describe_entry(&self, e: &AgentEntry) -> Result<AgentInfo, AgentError> {
        if self.live {
            // A runner that does not answer (restarting, stopping) is shown from sled.
            if let Ok(answer) = ask(e, DescribeAgent).await {
                return Ok(answer?);
            }
        }
        let state = if self.live {
            AgentState::Restarting
        } else {
            AgentState::Stopped
        };
        Ok(AgentInfo::from_store(
            &e.name, e.kind, e.schedule, &e.memory, state,
        )?)
    }

    /// Pauses (`paused`) or resumes `name` through its runner; written directly when the
    /// runner cannot take it (engine stopped, runner restarting): the runner reads the
    /// pause at its next tick either way.
    pub async fn set_paused(
        &self,
        name: &str,
        paused: bool,
        reason: &str,
    ) -> Result<AgentControl, AgentError> {
        let e = self.get(name)?;
        if self.live {
            let reason = reason.to_string();
            let answer = if paused {
                ask(&e, PauseAgent { reason }).await
            } else {
                ask(&e, ResumeAgent { reason }).await
            };
            if let Ok(written) = answer {
                return Ok(written?);
            }
        }
        self.set_paused_direct(name, paused, reason)
    }

    /// As [`AgentDirectory::set_paused`], written to sled at once without asking the
    /// runner (which reads it at its next tick): for synchronous callers.
    pub fn set_paused_direct(
        &self,
        name: &str,
        paused: bool,
        reason: &str,
    ) -> Result<AgentControl, AgentError> {
        let e = self.get(name)?;
        Ok(set_paused(
            &e.memory,
            &e.name,
            e.kind,
            paused,
            reason,
            self.clock.now_ms(),
        )?)
    }

    /// Starts a run of `name` at once (see [`RunNow`]).
    pub async fn run_now(&self, name: &str) -> Result<RunNowAnswer, AgentError> {
        let e = self.get(name)?;
        if !self.live {
            return Err(AgentError::NotRunning);
        }
        ask(&e, RunNow)
            .await
            .map_err(|source| AgentError::Unreachable {
                name: name.to_string(),
                source,
            })
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
