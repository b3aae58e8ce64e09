//! The runtime's schedule, deadline, run-now and pause, on tokio's paused clock: time only
//! moves when every task waits, so the counts below are exact, never raced against a
//! wall-clock bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::LocalBoxFuture;

use super::*;
use crate::clock::ManualClock;
use crate::store::Store;

/// An agent kind that counts its runs and how many overlap; each run takes `work`, or
/// never ends with `hang`.
#[derive(Clone)]
struct Probe {
    schedule: Schedule,
    kind: Kind,
    work: Duration,
    hang: bool,
    started: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
}

impl Probe {
    fn new(schedule: Schedule, work: Duration) -> Self {
        Self {
            schedule,
            kind: Kind::Trading,
            work,
            hang: false,
            started: Arc::default(),
            active: Arc::default(),
            max_active: Arc::default(),
        }
    }
    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

impl AgentKind for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn schedule(&self) -> Schedule {
        self.schedule
    }
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let this = self.clone();
        Box::pin(async move {
            this.started.fetch_add(1, Ordering::SeqCst);
            let now = this.active.fetch_add(1, Ordering::SeqCst) + 1;
            this.max_active.fetch_max(now, Ordering::SeqCst);
            if this.hang {
                futures::future::pending::<()>().await;
            }
            tokio::time::sleep(this.work).await;
            this.active.fetch_sub(1, Ordering::SeqCst);
            RunOutcome::Ok
        })
    }
}

fn schedule(interval_ms: u64, initial_ms: u64, run_timeout_ms: u64) -> Schedule {
    Schedule {
        interval: Duration::from_millis(interval_ms),
        initial_delay: Duration::from_millis(initial_ms),
        jitter: 0.0,
        run_timeout: Duration::from_millis(run_timeout_ms),
    }
}

fn start(store: &Store, probe: &Probe) -> Addr<AgentRunner> {
    AgentRunner::new(
        Arc::new(probe.clone()),
        MemoryStore::open(store, "probe").unwrap(),
        DecisionJournal::open(store).unwrap(),
        ManualClock::new(1_763_000_000_000),
    )
    .with_rng_seed(7)
    .start()
}

async fn advance(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[test]
fn jitter_delays_stay_within_their_bound_and_spread_over_it() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let s = Schedule {
        jitter: 0.2,
        ..schedule(10_000, 0, 1_000)
    };
    let bound = Duration::from_millis(2_000);
    let delays: Vec<Duration> = (0..2_000).map(|_| s.jitter_delay(&mut rng)).collect();
    assert!(
        delays.iter().all(|d| *d <= bound),
        "a delay past 20% of 10s"
    );
    // Spread over the whole range, not stuck at one end.
    assert!(delays.iter().any(|d| *d < Duration::from_millis(200)));
    assert!(delays.iter().any(|d| *d > Duration::from_millis(1_800)));
    // No jitter: on the beat.
    let on_beat = schedule(10_000, 0, 1_000);
    assert_eq!(on_beat.jitter_delay(&mut rng), Duration::ZERO);
}

#[actix::test]
async fn jittered_runs_start_within_their_slot_window() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    // Slots at 0, 1000, 2000, ... ms; each run starts up to 500 ms after its slot.
    let probe = Probe::new(
        Schedule {
            jitter: 0.5,
            ..schedule(1_000, 0, 900)
        },
        Duration::from_millis(1),
    );
    let _runner = start(&store, &probe);
    for slot in 0..5u64 {
        // Just before the slot's window closes, its run has started; just after the slot
        // opens (and before the previous window could run it twice) it is one more.
        advance(if slot == 0 { 501 } else { 1_000 }).await;
        assert_eq!(probe.started(), slot as usize + 1, "slot {slot}");
    }
}

#[actix::test]
async fn a_run_longer_than_the_interval_is_not_doubled() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    // A tick every second, each run takes 2.5 s: the ticks at 1 s and 2 s find it busy.
    let probe = Probe::new(schedule(1_000, 0, 60_000), Duration::from_millis(2_500));
    let _runner = start(&store, &probe);
    advance(10_500).await;
    assert_eq!(
        probe.max_active.load(Ordering::SeqCst),
        1,
        "two runs overlapped"
    );
    // Runs at 0, 3, 6 and 9 s; doubled it would be eleven.
    assert_eq!(probe.started(), 4);
    let memory = MemoryStore::open(&store, "probe").unwrap().load().unwrap();
    assert_eq!(
        (memory.runs, memory.failures),
        (3, 0),
        "the fourth is running"
    );
}

#[actix::test]
async fn a_hung_run_is_cut_at_its_deadline_and_counted_as_a_failure() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    let mut probe = Probe::new(schedule(10_000, 0, 2_000), Duration::ZERO);
    probe.hang = true;
    let _runner = start(&store, &probe);
    let memory = MemoryStore::open(&store, "probe").unwrap();
    advance(1_900).await;
    assert_eq!(memory.load().unwrap().runs, 0, "cut before its deadline");
    advance(200).await;
    let m = memory.load().unwrap();
    assert_eq!((m.runs, m.failures), (1, 1));
    assert!(
        m.last_error.as_deref().unwrap_or("").contains("deadline"),
        "{:?}",
        m.last_error
    );
    // The cut run no longer counts as running: the next slot starts a new run.
    advance(8_000).await;
    assert_eq!(probe.started(), 2);
}

#[actix::test]
async fn run_now_runs_at_once_unless_busy_or_paused() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    // The schedule alone would not run it for an hour.
    let probe = Probe::new(
        schedule(3_600_000, 3_600_000, 60_000),
        Duration::from_secs(5),
    );
    let runner = start(&store, &probe);
    assert_eq!(runner.send(RunNow).await.unwrap(), RunNowAnswer::Started);
    advance(1).await;
    assert_eq!(probe.started(), 1);
    assert!(matches!(
        runner.send(RunNow).await.unwrap(),
        RunNowAnswer::Busy { .. }
    ));
    let info = runner.send(DescribeAgent).await.unwrap().unwrap();
    assert_eq!((info.state, info.running), (AgentState::Running, true));
    advance(5_100).await;
    assert_eq!(probe.started(), 1, "a busy answer started nothing");

    runner
        .send(PauseAgent {
            reason: "maintenance".into(),
        })
        .await
        .unwrap()
        .unwrap();
    match runner.send(RunNow).await.unwrap() {
        RunNowAnswer::Paused { reason, .. } => assert_eq!(reason, "maintenance"),
        other => panic!("expected paused, got {other:?}"),
    }
    let info = runner.send(DescribeAgent).await.unwrap().unwrap();
    assert_eq!(info.state, AgentState::Paused);
    assert_eq!(info.pause_reason.as_deref(), Some("maintenance"));
    assert_eq!(
        info.warning, None,
        "a paused trading agent is no risk warning"
    );
    runner
        .send(ResumeAgent {
            reason: "done".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runner.send(RunNow).await.unwrap(), RunNowAnswer::Started);
    advance(1).await;
    assert_eq!(probe.started(), 2);
}

#[actix::test]
async fn a_pause_holds_for_a_new_runner_on_the_same_data_dir() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    let probe = Probe::new(schedule(1_000, 0, 900), Duration::from_millis(10));
    let first = start(&store, &probe);
    advance(1).await;
    assert_eq!(probe.started(), 1);
    first
        .send(PauseAgent {
            reason: "hold".into(),
        })
        .await
        .unwrap()
        .unwrap();
    advance(3_000).await;
    assert_eq!(probe.started(), 1, "paused, yet it ran");
    // A restart (a new runner from the same data dir) is still paused.
    drop(first);
    let second = start(&store, &probe);
    advance(3_000).await;
    assert_eq!(probe.started(), 1, "the restarted runner forgot the pause");
    second
        .send(ResumeAgent {
            reason: "go".into(),
        })
        .await
        .unwrap()
        .unwrap();
    advance(1_000).await;
    assert!(probe.started() >= 2, "no run after resume");
}

#[actix::test]
async fn the_directory_names_the_known_agents_and_answers_for_a_stopped_engine() {
    let store = Store::temporary().unwrap();
    let clock: SharedClock = ManualClock::new(5_000);
    let dir = AgentDirectory::new(false, clock)
        .with(
            "risk",
            Kind::Risk,
            schedule(1_000, 0, 900),
            MemoryStore::open(&store, "risk").unwrap(),
        )
        .with(
            "trend",
            Kind::Trading,
            schedule(1_000, 0, 900),
            MemoryStore::open(&store, "trend").unwrap(),
        );
    match dir.run_now("nobody").await {
        Err(AgentError::Unknown { known, .. }) => assert_eq!(known, "risk, trend"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(matches!(
        dir.run_now("trend").await,
        Err(AgentError::NotRunning)
    ));
    let control = dir.set_paused("risk", true, "test").await.unwrap();
    assert_eq!((control.paused, control.since_ms), (true, 5_000));
    let all = dir.describe_all().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state, AgentState::Paused);
    assert_eq!(all[0].warning.as_deref(), Some(RISK_PAUSED_WARNING));
    assert_eq!(all[1].state, AgentState::Stopped);
}

/// A low-priority kind (sentiment, research) skips its scheduled runs and refuses a run-now
/// while the gate sheds, without touching its pause state, and runs again once the level
/// falls; a trading agent under the same gate never stops.
#[actix::test]
async fn low_priority_agents_pause_while_shedding_and_resume_by_themselves() {
    use crate::shedding::{ResourceLevel, ResourceStatus, ShedGate};
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    let gate = ShedGate::new();
    let start_with = |name: &str, probe: &Probe| {
        AgentRunner::new(
            Arc::new(probe.clone()),
            MemoryStore::open(&store, name).unwrap(),
            DecisionJournal::open(&store).unwrap(),
            ManualClock::new(1_763_000_000_000),
        )
        .shedding(gate.clone())
        .start()
    };
    let sentiment = Probe {
        kind: Kind::Sentiment,
        ..Probe::new(schedule(1_000, 0, 60_000), Duration::from_millis(1))
    };
    let trading = Probe::new(schedule(1_000, 0, 60_000), Duration::from_millis(1));
    gate.set(ResourceStatus {
        level: ResourceLevel::Shed,
        reason: "rss 2100 MiB, shed threshold 2048 MiB".into(),
        ..ResourceStatus::default()
    });
    let shed_runner = start_with("sentiment", &sentiment);
    let trading_runner = start_with("trading", &trading);
    advance(3_500).await;
    assert_eq!(sentiment.started(), 0, "every slot skipped while shedding");
    assert_eq!(trading.started(), 4, "slots at 0, 1, 2 and 3 s");
    match shed_runner.send(RunNow).await.unwrap() {
        RunNowAnswer::Shed { reason } => {
            assert!(reason.contains("rss 2100 MiB"), "{reason}")
        }
        other => panic!("expected shed, got {other:?}"),
    }
    let info = shed_runner.send(DescribeAgent).await.unwrap().unwrap();
    assert!(!info.paused, "shedding is not the operator's pause");

    gate.set(ResourceStatus::default());
    advance(1_000).await;
    assert_eq!(sentiment.started(), 1, "the next slot runs");
    assert_eq!(
        shed_runner.send(RunNow).await.unwrap(),
        RunNowAnswer::Started
    );
    drop(trading_runner);
}

/// In a cluster an agent runs only on the node holding its lease: standby ticks are
/// skipped (and run-now refused, naming the owner), and the first tick after the lease is
/// acquired runs; past the lease's safe-until it stops again.
#[actix::test]
async fn an_agent_runs_only_while_its_node_holds_the_agents_lease() {
    tokio::time::pause();
    let store = Store::temporary().unwrap();
    let leases = crate::cluster::Leases::new("n1", ["agent:probe".to_string()]);
    let probe = Probe::new(schedule(1_000, 0, 60_000), Duration::from_millis(1));
    let runner = AgentRunner::new(
        Arc::new(probe.clone()),
        MemoryStore::open(&store, "probe").unwrap(),
        DecisionJournal::open(&store).unwrap(),
        ManualClock::new(1_763_000_000_000),
    )
    .owned_through(Some(leases.clone()))
    .start();
    advance(2_500).await;
    assert_eq!(probe.started(), 0, "standby: every slot skipped");
    match runner.send(RunNow).await.unwrap() {
        RunNowAnswer::NotOwner { owner } => assert!(owner.starts_with("unknown"), "{owner}"),
        other => panic!("expected not-owner, got {other:?}"),
    }

    leases.grant_for_test("agent:probe", 3, Duration::from_millis(2_200));
    advance(1_000).await;
    assert_eq!(probe.started(), 1, "the first slot after the lease runs");
    advance(1_000).await;
    assert_eq!(probe.started(), 2);
    // Past safe-until (not renewed): standby again.
    advance(2_000).await;
    assert_eq!(probe.started(), 2, "no run past the lease's safe-until");

    // An agent the book did not list (started while the engine runs) joins it, so the
    // keeper's next tick takes its lease.
    let late = crate::cluster::Leases::new("n1", Vec::<String>::new());
    assert!(!late.covers("agent:probe"));
    let _late_runner = AgentRunner::new(
        Arc::new(probe.clone()),
        MemoryStore::open(&store, "probe").unwrap(),
        DecisionJournal::open(&store).unwrap(),
        ManualClock::new(1_763_000_000_000),
    )
    .owned_through(Some(late.clone()));
    assert!(late.covers("agent:probe"));
    assert!(!late.want("agent:probe"), "added once");
}
