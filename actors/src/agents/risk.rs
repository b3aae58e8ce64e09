//! The risk agent: watches each venue's account value against a baseline and acts on
//! breaches of the loss, gain and minimum-balance limits.
//!
//! Owns: the PnL window and its persisted baseline (tree `risk`, key `baseline/<venue>`),
//! the breach journal (`breach/<time>`), and the response to a breach: close every
//! position in chunks, then move the engine to `Reducing` (loss) or `Halted` (minimum
//! balance). With `ai_confirmation` it first asks the model CLOSE_ALL or HOLD, and any
//! error, timeout or unreadable answer counts as CLOSE_ALL: it fails closed. Never: places
//! new exposure, or lifts a halt it did not set.
//!
//! # Where the PnL window starts
//!
//! The baseline is the account value **before the first order of the window**. Two paths
//! write it through [`BaselineBook::ensure`], whichever comes first: the risk agent's first
//! check, which runs as soon as the agent starts (not one `check_interval` later), and the
//! trading agent, which ensures a baseline from the account value it read *before* sending
//! an entry. So on a fresh account whose first trades land before the risk agent's first
//! check, PnL is still measured from the value before those trades (10 000 on a fresh paper
//! account), not from the value after them. An existing baseline younger than
//! `risk.window` is never overwritten, except by a taken profit (max gain).
//!
//! A `Reducing` mode this agent set (cause [`ModeCause::RiskAgent`]; the reason text reads
//! `risk: ...` for people) is lifted once a newer window has started: when the window rolls
//! here, or when the current baseline is newer than the mode's `since_ms` (a trading agent
//! started the new window first). Whose mode it is is decided on the cause's type, never on
//! the reason text: a restriction set by anyone else (the kill switch, market data, a
//! record written before causes existed) is never lifted here.
//!
//! The runtime ([`super::runtime`]) runs the checks: schedule, deadline, pause (allowed,
//! with a warning: while paused the limits here are not watched) and run metrics.
//!
//! Each check also exports the per-position accounting of the venue's recorded fills
//! (`orrery_position_*`, see `exchanges::pnl`).

use std::time::Duration;

use futures::future::LocalBoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::journal::{Abstention, DecisionJournal, DecisionRecord, MemberAnswer};
use super::prompt;
use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use super::{gateway_call, GatewayCallError};
use crate::clock::{Millis, SharedClock};
use crate::exchanges::gateway::{
    CloseAll, GetAccount, GetMode, GetPositionPnl, GetPositions, LiftRiskReduction, OrderGateway,
    OrderReport, SetMode,
};
use crate::exchanges::risk_gate::{ModeCause, RiskConfig, TradingMode};
use crate::models::decision::parse_risk_verdict;
use crate::models::{
    ModelClient, ModelRequest, Purpose, RiskContext, RiskVerdict, StructuredContext,
};
use crate::store::{trees, Record, Store, StoreError, Tree};
use crate::supervisor::Slot;
use crate::telemetry::names;

/// Account value at the start of the current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub value: Decimal,
    pub set_ms: Millis,
}
impl Record for Baseline {}

/// Reads and writes the risk window's baselines (`risk` tree, `baseline/<venue>`).
#[derive(Clone)]
pub struct BaselineBook {
    tree: Tree<Baseline>,
    window: std::time::Duration,
    clock: SharedClock,
}

impl BaselineBook {
    pub fn new(tree: Tree<Baseline>, window: std::time::Duration, clock: SharedClock) -> Self {
        Self {
            tree,
            window,
            clock,
        }
    }

    /// The baseline of `venue`'s current window, if one was taken.
    pub fn current(&self, venue: &str) -> Result<Option<Baseline>, StoreError> {
        let now = self.clock.now_ms();
        let window_ms = self.window.as_millis() as i64;
        Ok(self
            .tree
            .get(&baseline_key(venue))?
            .filter(|b| now - b.set_ms < window_ms))
    }

    /// The current window's baseline; if there is none, `value_before` (the account value
    /// read before the caller's order) starts a new window and is on disk on return.
    pub async fn ensure(&self, venue: &str, value_before: Decimal) -> Result<Baseline, StoreError> {
        if let Some(b) = self.current(venue)? {
            return Ok(b);
        }
        let fresh = Baseline {
            value: value_before,
            set_ms: self.clock.now_ms(),
        };
        self.tree.put_durable(&baseline_key(venue), &fresh).await?;
        tracing::info!(venue, baseline_usd = %fresh.value.round_dp(2), "risk window started");
        Ok(fresh)
    }
}

/// One breach and what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachRecord {
    pub venue: String,
    pub limit: String,
    pub detail: String,
    pub action: String,
    pub time_ms: Millis,
}
impl Record for BreachRecord {}

/// Which limit was breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    MaxLoss,
    MaxGain,
    MinBalance,
}

impl Breach {
    pub fn label(self) -> &'static str {
        match self {
            Breach::MaxLoss => "max_loss",
            Breach::MaxGain => "max_gain",
            Breach::MinBalance => "min_balance",
        }
    }
}

/// PnL of an account against its baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pnl {
    pub usd: Decimal,
    pub pct: Decimal,
}

impl Pnl {
    pub fn of(value: Decimal, baseline: Decimal) -> Self {
        let usd = value - baseline;
        let pct = if baseline.is_zero() {
            Decimal::ZERO
        } else {
            usd / baseline * Decimal::from(100)
        };
        Self { usd, pct }
    }
}

/// The first limit the account breaches, if any; min balance first, then loss, then gain.
pub fn evaluate(limits: &RiskConfig, value: Decimal, pnl: &Pnl) -> Option<(Breach, String)> {
    if value < limits.min_balance_usd {
        return Some((
            Breach::MinBalance,
            format!(
                "account value {} USD is below risk.min_balance_usd {}",
                value.round_dp(2),
                limits.min_balance_usd
            ),
        ));
    }
    let loss = -pnl.usd;
    let loss_pct = -pnl.pct;
    if let Some(max) = limits.max_loss_usd.filter(|m| loss >= *m) {
        return Some((
            Breach::MaxLoss,
            format!(
                "loss {} USD reached risk.max_loss_usd {max}",
                loss.round_dp(2)
            ),
        ));
    }
    if let Some(max) = limits.max_loss_pct.filter(|m| loss_pct >= *m) {
        return Some((
            Breach::MaxLoss,
            format!(
                "loss {}% reached risk.max_loss_pct {max}%",
                loss_pct.round_dp(2)
            ),
        ));
    }
    if let Some(max) = limits.max_gain_usd.filter(|m| pnl.usd >= *m) {
        return Some((
            Breach::MaxGain,
            format!(
                "gain {} USD reached risk.max_gain_usd {max}",
                pnl.usd.round_dp(2)
            ),
        ));
    }
    if let Some(max) = limits.max_gain_pct.filter(|m| pnl.pct >= *m) {
        return Some((
            Breach::MaxGain,
            format!(
                "gain {}% reached risk.max_gain_pct {max}%",
                pnl.pct.round_dp(2)
            ),
        ));
    }
    None
}

/// What the risk agent needs, cloneable into a check's future.
#[derive(Clone)]
pub struct RiskDeps {
    pub gateway: Slot<OrderGateway>,
    pub models: ModelClient,
    pub journal: DecisionJournal,
    pub clock: SharedClock,
    pub baselines: Tree<Baseline>,
    pub breaches: Tree<BreachRecord>,
}

impl RiskDeps {
    pub fn trees(store: &Store) -> Result<(Tree<Baseline>, Tree<BreachRecord>), StoreError> {
        Ok((store.tree(trees::RISK)?, store.tree(trees::RISK)?))
    }
}

/// The risk agent as the runtime runs it ([`super::runtime::AgentRunner`], name
/// [`RISK_AGENT`]): one run checks every venue.
pub struct RiskAgent {
    limits: RiskConfig,
    venues: Vec<String>,
    deps: RiskDeps,
    schedule: Schedule,
}

/// The risk agent's name (its memory lives in `agents/risk`).
pub const RISK_AGENT: &str = "risk";

/// Per venue of a check, beyond its model confirmation: the account, mode and position
/// reads and, on a breach, the close of every position in chunks.
const RUN_MARGIN_PER_VENUE: Duration = Duration::from_secs(120);

/// When the runtime runs the risk agent: the first check at once (it takes the window's
/// baseline before agents trade), then every `check_interval`. `run_timeout` defaults to
/// `confirmation_timeout` plus [`RUN_MARGIN_PER_VENUE`] per venue, so it cuts a hung check,
/// never one closing positions.
pub fn schedule(
    limits: &RiskConfig,
    venues: usize,
    jitter: f64,
    run_timeout: Option<Duration>,
) -> Schedule {
    let per_venue = limits.confirmation_timeout + RUN_MARGIN_PER_VENUE;
    Schedule {
        interval: limits.check_interval,
        initial_delay: Duration::ZERO,
        jitter,
        run_timeout: run_timeout.unwrap_or_else(|| per_venue * venues.max(1) as u32),
    }
}

impl RiskAgent {
    pub fn new(
        limits: RiskConfig,
        venues: Vec<String>,
        deps: RiskDeps,
        schedule: Schedule,
    ) -> Self {
        Self {
            limits,
            venues,
            deps,
            schedule,
        }
    }
}

/// Registers the breach counter of every venue and limit at 0, so the series exist (and
/// an alert on their increase works) before the first breach.
fn register_breach_series(venues: &[String]) {
    for venue in venues {
        for breach in [Breach::MaxLoss, Breach::MaxGain, Breach::MinBalance] {
            metrics::counter!(names::RISK_BREACHES, "venue" => venue.clone(), "limit" => breach.label())
                .increment(0);
        }
    }
}

impl AgentKind for RiskAgent {
    fn name(&self) -> &str {
        RISK_AGENT
    }

    fn kind(&self) -> Kind {
        Kind::Risk
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn started(&self) {
        register_breach_series(&self.venues);
    }

    /// Checks every venue; a venue whose check fails does not stop the others, and the run
    /// is an error naming each failed venue.
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (limits, venues, deps) = (self.limits.clone(), self.venues.clone(), self.deps.clone());
        Box::pin(async move {
            let mut failed = Vec::new();
            for venue in &venues {
                if let Err(e) = check_venue(&limits, &deps, venue).await {
                    tracing::warn!(venue, error = %e, "risk check failed");
                    failed.push(format!("{venue}: {e}"));
                }
            }
            if failed.is_empty() {
                RunOutcome::Ok
            } else {
                RunOutcome::Error(failed.join("; "))
            }
        })
    }
}

/// Why one risk check could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RiskCheckError {
    #[error(transparent)]
    Gateway(#[from] GatewayCallError),
    #[error("risk baseline: {0}")]
    Store(#[from] StoreError),
}

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Within,
    Held { breach: Breach },
    Closed { breach: Breach, orders: usize },
}

fn baseline_key(venue: &str) -> String {
    format!("baseline/{venue}")
}

/// One risk check of one venue.
pub async fn check_venue(
    limits: &RiskConfig,
    deps: &RiskDeps,
    venue: &str,
) -> Result<CheckOutcome, RiskCheckError> {
    let account = gateway_call(
        &deps.gateway,
        GetAccount {
            venue: venue.to_string(),
        },
    )
    .await?;
    let now = deps.clock.now_ms();
    let window_ms = limits.window.as_millis() as i64;
    let key = baseline_key(venue);
    let baseline = match deps.baselines.get(&key)? {
        Some(b) if now - b.set_ms < window_ms => b,
        previous => {
            let fresh = Baseline {
                value: account.account_value,
                set_ms: now,
            };
            deps.baselines.put_durable(&key, &fresh).await?;
            if previous.is_some() {
                lift_reduction(deps).await;
            }
            fresh
        }
    };
    // A trading agent may have started this window (its baseline is newer than the
    // reduction the last window's loss set): lift that reduction too.
    match gateway_call(&deps.gateway, GetMode {}).await {
        Ok(mode)
            if mode.mode == TradingMode::Reducing
                && mode.cause == ModeCause::RiskAgent
                && baseline.set_ms > mode.since_ms =>
        {
            lift_reduction(deps).await
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(venue, error = %e, "risk check cannot read the trading mode"),
    }
    match gateway_call(
        &deps.gateway,
        GetPositionPnl {
            venue: venue.to_string(),
            symbols: vec![],
        },
    )
    .await
    {
        Ok(rows) => crate::exchanges::pnl::record_metrics(venue, &rows),
        Err(e) => tracing::warn!(venue, error = %e, "cannot compute position PnL"),
    }
    let pnl = Pnl::of(account.account_value, baseline.value);
    if let Ok(v) = f64::try_from(pnl.usd) {
        metrics::gauge!(names::RISK_PNL_USD, "venue" => venue.to_string()).set(v);
    }
    let Some((breach, detail)) = evaluate(limits, account.account_value, &pnl) else {
        return Ok(CheckOutcome::Within);
    };
    let positions = gateway_call(
        &deps.gateway,
        GetPositions {
            venue: venue.to_string(),
        },
    )
    .await?;
    let open: Vec<_> = positions
        .into_iter()
        .filter(|p| !p.size.is_zero())
        .collect();
    if open.is_empty() && breach != Breach::MinBalance {
        // Nothing to close; a loss breach still restricts new risk for the window.
        if breach == Breach::MaxLoss {
            set_mode(deps, TradingMode::Reducing, &format!("risk: {detail}")).await;
        }
        return Ok(CheckOutcome::Within);
    }
    metrics::counter!(names::RISK_BREACHES, "venue" => venue.to_string(), "limit" => breach.label()).increment(1);

    let verdict = if limits.ai_confirmation && breach != Breach::MinBalance {
        confirm(
            limits,
            deps,
            venue,
            &detail,
            &account.account_value,
            &baseline,
            &pnl,
            open,
        )
        .await
    } else {
        RiskVerdict::CloseAll
    };
    if verdict == RiskVerdict::Hold {
        record_breach(deps, venue, breach, &detail, "held (model answered HOLD)").await;
        return Ok(CheckOutcome::Held { breach });
    }
    let closed: Vec<OrderReport> = gateway_call(
        &deps.gateway,
        CloseAll {
            venue: Some(venue.to_string()),
            origin: "risk".into(),
        },
    )
    .await?;
    match breach {
        Breach::MaxLoss => set_mode(deps, TradingMode::Reducing, &format!("risk: {detail}")).await,
        Breach::MinBalance => set_mode(deps, TradingMode::Halted, &format!("risk: {detail}")).await,
        Breach::MaxGain => {
            // Profit taken: the next window starts from here.
            let fresh = Baseline {
                value: account.account_value,
                set_ms: now,
            };
            deps.baselines.put_durable(&key, &fresh).await?;
        }
    }
    record_breach(
        deps,
        venue,
        breach,
        &detail,
        &format!("closed all positions ({} orders)", closed.len()),
    )
    .await;
    Ok(CheckOutcome::Closed {
        breach,
        orders: closed.len(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn confirm(
    limits: &RiskConfig,
    deps: &RiskDeps,
    venue: &str,
    detail: &str,
    value: &Decimal,
    baseline: &Baseline,
    pnl: &Pnl,
    positions: Vec<crate::exchanges::Position>,
) -> RiskVerdict {
    let context = RiskContext {
        breach: detail.to_string(),
        account_value: *value,
        baseline_value: baseline.value,
        pnl_usd: pnl.usd,
        pnl_pct: pnl.pct,
        positions,
    };
    let text = prompt::risk_prompt(&context);
    let request = ModelRequest {
        model: limits.model.clone(),
        purpose: Purpose::RiskConfirmation,
        system: prompt::RISK_SYSTEM.to_string(),
        prompt: text.clone(),
        context: Some(StructuredContext::Risk(context)),
        max_tokens: 200,
        temperature: 0.0,
        timeout: limits.confirmation_timeout,
        cacheable: false,
    };
    let mut record = DecisionRecord::begin(deps.clock.now_ms(), "risk", venue, "*", &limits.model);
    record.set_prompt(&request.system, &text);
    record.context = request.context.clone();
    let asked = std::time::Instant::now();
    let answer = deps.models.ask(request).await;
    let latency_ms = asked.elapsed().as_millis() as u64;
    record.latency_ms = Some(latency_ms);
    // The one model asked, as the journal lists every model asked for a decision.
    let mut member = MemberAnswer::asked(&limits.model, Some(latency_ms));
    let verdict = match answer {
        Ok(answer) => {
            record.deployment = Some(answer.deployment.clone());
            record.raw_answer = Some(answer.text.clone());
            member.answered(&answer);
            match parse_risk_verdict(&answer.text) {
                Ok(parsed) => {
                    record.reason = Some(parsed.reason.clone());
                    member.reason = Some(parsed.reason);
                    parsed.verdict
                }
                Err(e) => {
                    record.error = Some(format!("unreadable answer, failing closed: {e}"));
                    member.abstained(Abstention::Unparseable, &e);
                    RiskVerdict::CloseAll
                }
            }
        }
        Err(e) => {
            record.error = Some(format!("model error, failing closed: {e}"));
            member.abstained(Abstention::of_model_error(&e), &e);
            RiskVerdict::CloseAll
        }
    };
    record.action = Some(match verdict {
        RiskVerdict::CloseAll => "CLOSE_ALL".into(),
        RiskVerdict::Hold => "HOLD".into(),
    });
    if member.abstention.is_none() {
        member.verdict = record.action.clone();
    }
    record.members.push(member);
    record.outcome = record.action.clone().unwrap_or_default();
    record.log();
    // The writer logs and counts a failure with the decision's id.
    let _ = deps.journal.append(record).wait().await;
    verdict
}

/// A new window lifts a reducing state that the last window's loss set.
async fn lift_reduction(deps: &RiskDeps) {
    let lift = LiftRiskReduction {};
    if let Err(e) = gateway_call(&deps.gateway, lift).await {
        tracing::error!(error = %e, "cannot lift the risk reduction of the last window");
    }
}

async fn set_mode(deps: &RiskDeps, mode: TradingMode, reason: &str) {
    let msg = SetMode {
        mode,
        cause: ModeCause::RiskAgent,
        reason: reason.to_string(),
    };
    if let Err(e) = gateway_call(&deps.gateway, msg).await {
        tracing::error!(error = %e, "risk agent cannot set the trading mode");
    }
}

async fn record_breach(deps: &RiskDeps, venue: &str, breach: Breach, detail: &str, action: &str) {
    tracing::warn!(
        venue,
        limit = breach.label(),
        detail,
        action,
        "risk limit breached"
    );
    let now = deps.clock.now_ms();
    let record = BreachRecord {
        venue: venue.to_string(),
        limit: breach.label().to_string(),
        detail: detail.to_string(),
        action: action.to_string(),
        time_ms: now,
    };
    if let Err(e) = deps
        .breaches
        .put_durable(&format!("breach/{now:013}"), &record)
        .await
    {
        tracing::error!(error = %e, "cannot record a breach");
    }
}
