//! Behaviour of the tree inside a real actix system: panics, restarts, strategies, restart
//! types, escalation, ordered shutdown, kills and persistence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;
use crate::store::Store;

/// Shared log of lifecycle events, e.g. `started a#0`, `stopped b#1`.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().clone()
    }
    /// Lines with `prefix`, with the prefix removed, in order.
    fn with(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .collect()
    }
    fn clear(&self) {
        self.0.lock().clear();
    }
}

struct Worker {
    name: String,
    generation: u64,
    journal: Journal,
    failure: FailureSignal,
    /// Refuses to stop, to exercise the shutdown timeout.
    stubborn: bool,
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.journal
            .push(format!("started {}#{}", self.name, self.generation));
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if self.stubborn {
            Running::Continue
        } else {
            Running::Stop
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.journal
            .push(format!("stopped {}#{}", self.name, self.generation));
    }
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping;

#[derive(Message)]
#[rtype(result = "()")]
struct Panic;

#[derive(Message)]
#[rtype(result = "()")]
struct PanicInFuture;

#[derive(Message)]
#[rtype(result = "()")]
struct Fail(&'static str);

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

#[derive(Message)]
#[rtype(result = "()")]
struct Sleep(Duration);

impl Handler<Ping> for Worker {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        self.generation
    }
}

impl Handler<Panic> for Worker {
    type Result = ();
    fn handle(&mut self, _: Panic, _: &mut Context<Self>) {
        panic!("boom in {}", self.name);
    }
}

impl Handler<PanicInFuture> for Worker {
    type Result = ();
    fn handle(&mut self, _: PanicInFuture, ctx: &mut Context<Self>) {
        ctx.spawn(
            async {
                actix_rt::time::sleep(Duration::from_millis(1)).await;
                panic!("boom in a future");
            }
            .into_actor(self),
        );
    }
}

impl Handler<Fail> for Worker {
    type Result = ();
    fn handle(&mut self, msg: Fail, ctx: &mut Context<Self>) {
        self.failure.fail(msg.0);
        ctx.stop();
    }
}

impl Handler<Stop> for Worker {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Sleep> for Worker {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Sleep, _: &mut Context<Self>) -> Self::Result {
        Box::pin(actix_rt::time::sleep(msg.0).into_actor(self))
    }
}

/// Slots and factory-call counts of every worker in a test tree.
#[derive(Clone, Default)]
struct Probe {
    journal: Journal,
    slots: Arc<Mutex<HashMap<String, Slot<Worker>>>>,
    calls: Arc<Mutex<HashMap<String, Arc<AtomicU32>>>>,
}

impl Probe {
    fn worker(&self, name: &str) -> ChildSpec {
        self.worker_with(name, false)
    }

    fn worker_with(&self, name: &str, stubborn: bool) -> ChildSpec {
        let slot = self
            .slots
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone();
        let calls = self
            .calls
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone();
        let journal = self.journal.clone();
        let name = name.to_string();
        ChildSpec::in_slot(name.clone(), slot, move |ctx| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Worker {
                name: name.clone(),
                generation: ctx.generation(),
                journal: journal.clone(),
                failure: ctx.failure_signal(),
                stubborn,
            })
        })
    }

    fn slot(&self, name: &str) -> Slot<Worker> {
        self.slots
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn calls(&self, name: &str) -> u32 {
        self.calls.lock()[name].load(Ordering::SeqCst)
    }
}

const PATIENCE: Duration = Duration::from_secs(5);

/// Waits until the worker in `slot` answers with generation `generation`.
async fn serving(slot: &Slot<Worker>, generation: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(g) = slot.send(Ping).await {
            if g == generation {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "worker `{}` did not serve generation {generation} within {PATIENCE:?}",
            slot.label()
        );
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

fn spec(name: &str, strategy: Strategy, backoff: Backoff) -> SupervisorSpec {
    SupervisorSpec::new(name)
        .strategy(strategy)
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .backoff(backoff)
}

#[actix::test]
async fn handler_panic_restarts_after_backoff_and_serves_again() {
    // Paused time: tokio's clock moves only while every task waits, so the slot is
    // certainly still vacant when asked right after the panic however busy the machine
    // is, and the restart comes once the test waits (the clock jumps to the backoff's end).
    tokio::time::pause();
    let probe = Probe::default();
    let backoff = Duration::from_secs(1);
    let root = start_root(
        spec("engine", Strategy::OneForOne, Backoff::fixed(backoff))
            .child(probe.worker("a"))
            .child(probe.worker("b")),
        None,
    );
    let a = probe.slot("a");
    serving(&a, 0).await;
    assert_eq!(a.label(), "engine/a");

    let panicked_at = Instant::now();
    assert_eq!(
        a.send(Panic).await,
        Err(SlotError::Closed {
            actor: "engine/a".into()
        })
    );
    // Down during the backoff: the slot says so instead of queueing into a dead mailbox.
    assert!(matches!(a.send(Ping).await, Err(SlotError::Vacant { .. })));
    serving(&a, 1).await;
    assert!(
        panicked_at.elapsed() >= backoff,
        "restarted after {:?}, before the {backoff:?} backoff",
        panicked_at.elapsed()
    );
    assert_eq!(probe.calls("a"), 2);
    assert_eq!(probe.calls("b"), 1, "one_for_one must leave siblings alone");
    assert_eq!(probe.slot("b").send(Ping).await, Ok(0));
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn panic_in_a_spawned_actor_future_is_captured() {
    let probe = Probe::default();
    let store = Store::temporary().unwrap();
    let root = start_root(
        spec("engine", Strategy::OneForOne, Backoff::immediate()).child(probe.worker("a")),
        Some(store.clone()),
    );
    let a = probe.slot("a");
    serving(&a, 0).await;
    a.send(PanicInFuture).await.unwrap();
    serving(&a, 1).await;
    let records = restart_records(&store).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, "engine/a");
    assert_eq!(records[0].1.count, 1);
    assert_eq!(
        records[0].1.last_reason.as_deref(),
        Some("panicked: boom in a future")
    );
    assert!(records[0].1.last_failure_ms.is_some());
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn exceeding_intensity_escalates_and_the_parent_restarts_the_subtree_fresh() {
    let probe = Probe::default();
    let sub_starts = Arc::new(AtomicU32::new(0));
    let sub = {
        let probe = probe.clone();
        let sub_starts = sub_starts.clone();
        move || {
            sub_starts.fetch_add(1, Ordering::SeqCst);
            SupervisorSpec::new("models")
                .intensity(Intensity::new(1, Duration::from_secs(10)))
                .backoff(Backoff::immediate())
                .child(probe.worker("w"))
        }
    };
    let root = start_root(
        spec("engine", Strategy::OneForOne, Backoff::immediate())
            .child(probe.worker("before"))
            .child(ChildSpec::supervisor("models", sub)),
        None,
    );
    let w = probe.slot("w");
    serving(&w, 0).await;
    assert_eq!(w.label(), "engine/models/w");

    let _ = w.send(Panic).await;
    serving(&w, 1).await; // within the sub-supervisor's intensity: restarted in place
    assert_eq!(sub_starts.load(Ordering::SeqCst), 1);

    let _ = w.send(Panic).await; // 2 restarts in 10 s > 1: the sub-supervisor gives up
    eventually("the parent to restart the sub-supervisor", || {
        sub_starts.load(Ordering::SeqCst) == 2
    })
    .await;
    // A fresh sub-supervisor starts its child fresh: generation 0 again.
    serving(&w, 0).await;
    assert_eq!(probe.calls("w"), 3);
    assert_eq!(probe.calls("before"), 1, "one_for_one at the root");
    assert_eq!(root.exit(), None);
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn escalation_at_the_root_ends_the_tree_with_a_reason_naming_the_child() {
    let probe = Probe::default();
    let root = start_root(
        SupervisorSpec::new("engine")
            .intensity(Intensity::new(0, Duration::from_secs(10)))
            .backoff(Backoff::immediate())
            .child(probe.worker("a"))
            .child(probe.worker("b")),
        None,
    );
    serving(&probe.slot("b"), 0).await;
    let _ = probe.slot("b").send(Panic).await;
    let exit = tokio::time::timeout(PATIENCE, root.terminated())
        .await
        .expect("the root did not end after escalating");
    let RootExit::Escalated(reason) = exit else {
        panic!("expected an escalation, got {exit:?}");
    };
    assert_eq!(
        reason,
        "restart intensity exceeded: 1 restarts in 10s; last failure of engine/b: panicked: boom in b"
    );
    // The rest of the tree was stopped cleanly on the way out.
    assert!(probe.journal.lines().contains(&"stopped a#0".to_string()));
    assert!(!probe.slot("a").is_live());
    assert_eq!(probe.calls("b"), 1);
}

#[actix::test]
async fn escalation_through_a_nested_supervisor_names_both_levels() {
    let probe = Probe::default();
    let sub = {
        let probe = probe.clone();
        move || {
            SupervisorSpec::new("agents")
                .intensity(Intensity::new(0, Duration::from_secs(10)))
                .child(probe.worker("w"))
        }
    };
    let root = start_root(
        SupervisorSpec::new("engine")
            .intensity(Intensity::new(0, Duration::from_secs(10)))
            .child(ChildSpec::supervisor("agents", sub)),
        None,
    );
    serving(&probe.slot("w"), 0).await;
    let _ = probe.slot("w").send(Fail("lost the venue")).await;
    let exit = tokio::time::timeout(PATIENCE, root.terminated())
        .await
        .unwrap();
    assert_eq!(
        exit,
        RootExit::Escalated(
            "restart intensity exceeded: 1 restarts in 10s; last failure of engine/agents: \
             failed: restart intensity exceeded: 1 restarts in 10s; last failure of \
             engine/agents/w: failed: lost the venue"
                .into()
        )
    );
}

#[actix::test]
async fn one_for_all_restarts_every_child_stopping_the_others_in_reverse() {
    let probe = Probe::default();
    let root = start_root(
        spec("engine", Strategy::OneForAll, Backoff::immediate())
            .child(probe.worker("a"))
            .child(probe.worker("b"))
            .child(probe.worker("c")),
        None,
    );
    serving(&probe.slot("c"), 0).await;
    probe.journal.clear();
    let _ = probe.slot("b").send(Panic).await;
    for name in ["a", "b", "c"] {
        serving(&probe.slot(name), 1).await;
    }
    assert_eq!(
        [probe.calls("a"), probe.calls("b"), probe.calls("c")],
        [2, 2, 2]
    );
    let stopped: Vec<_> = probe
        .journal
        .with("stopped ")
        .into_iter()
        .filter(|s| s != "b#0") // the panicked actor, torn down where it failed
        .collect();
    assert_eq!(stopped, ["c#0", "a#0"]);
    assert_eq!(probe.journal.with("started "), ["a#1", "b#1", "c#1"]);
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let probe = Probe::default();
    let root = start_root(
        spec("engine", Strategy::RestForOne, Backoff::immediate())
            .child(probe.worker("a"))
            .child(probe.worker("b"))
            .child(probe.worker("c"))
            .child(probe.worker("d")),
        None,
    );
    serving(&probe.slot("d"), 0).await;
    probe.journal.clear();
    let _ = probe.slot("b").send(Panic).await;
    for name in ["b", "c", "d"] {
        serving(&probe.slot(name), 1).await;
    }
    assert_eq!(probe.slot("a").send(Ping).await, Ok(0));
    assert_eq!(["a", "b", "c", "d"].map(|n| probe.calls(n)), [1, 2, 2, 2]);
    let stopped: Vec<_> = probe
        .journal
        .with("stopped ")
        .into_iter()
        .filter(|s| s != "b#0")
        .collect();
    assert_eq!(stopped, ["d#0", "c#0"]);
    assert_eq!(probe.journal.with("started "), ["b#1", "c#1", "d#1"]);
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn temporary_children_are_never_restarted() {
    let probe = Probe::default();
    let root = start_root(
        spec(
            "engine",
            Strategy::OneForOne,
            Backoff::fixed(Duration::from_millis(5)),
        )
        .child(probe.worker("t").restart(RestartType::Temporary))
        .child(probe.worker("p")),
        None,
    );
    serving(&probe.slot("p"), 0).await;
    let _ = probe.slot("t").send(Panic).await;
    // `p` fails after `t` with the same backoff; once `p` is back, a restart of `t` would
    // have happened too.
    let _ = probe.slot("p").send(Panic).await;
    serving(&probe.slot("p"), 1).await;
    assert_eq!(probe.calls("t"), 1);
    assert!(!probe.slot("t").is_live());
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn transient_children_restart_only_after_an_abnormal_exit() {
    let probe = Probe::default();
    let store = Store::temporary().unwrap();
    let root = start_root(
        spec(
            "engine",
            Strategy::OneForOne,
            Backoff::fixed(Duration::from_millis(5)),
        )
        .child(probe.worker("done").restart(RestartType::Transient))
        .child(probe.worker("crash").restart(RestartType::Transient))
        .child(probe.worker("fail").restart(RestartType::Transient)),
        Some(store.clone()),
    );
    serving(&probe.slot("fail"), 0).await;
    probe.slot("done").send(Stop).await.unwrap();
    let _ = probe.slot("crash").send(Panic).await;
    let _ = probe.slot("fail").send(Fail("feed went stale")).await;
    serving(&probe.slot("crash"), 1).await;
    serving(&probe.slot("fail"), 1).await;
    assert_eq!(
        probe.calls("done"),
        1,
        "a normal exit of a transient child is final"
    );
    assert!(!probe.slot("done").is_live());
    let records: HashMap<_, _> = restart_records(&store).unwrap().into_iter().collect();
    assert_eq!(
        records["engine/fail"].last_reason.as_deref(),
        Some("failed: feed went stale")
    );
    assert_eq!(records["engine/crash"].count, 1);
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn shutdown_stops_children_in_reverse_start_order_across_levels() {
    let probe = Probe::default();
    let sub = {
        let probe = probe.clone();
        move || {
            SupervisorSpec::new("models")
                .child(probe.worker("x"))
                .child(probe.worker("y"))
        }
    };
    let root = start_root(
        SupervisorSpec::new("engine")
            .child(probe.worker("a"))
            .child(ChildSpec::supervisor("models", sub))
            .child(probe.worker("c")),
        None,
    );
    serving(&probe.slot("c"), 0).await;
    assert_eq!(probe.journal.with("started "), ["a#0", "x#0", "y#0", "c#0"]);
    let other = root.clone();
    let waiter = actix_rt::spawn(async move { other.terminated().await });
    assert_eq!(root.shutdown().await, RootExit::Normal);
    assert_eq!(waiter.await.unwrap(), RootExit::Normal);
    assert_eq!(probe.journal.with("stopped "), ["c#0", "y#0", "x#0", "a#0"]);
    for name in ["a", "x", "y", "c"] {
        assert!(!probe.slot(name).is_live(), "{name} still in its slot");
    }
}

#[actix::test]
async fn a_child_that_will_not_stop_is_killed_after_its_shutdown_timeout() {
    let probe = Probe::default();
    let store = Store::temporary().unwrap();
    let timeout = Duration::from_millis(80);
    let root = start_root(
        SupervisorSpec::new("engine")
            .child(probe.worker("a"))
            .child(probe.worker_with("stuck", true).shutdown(timeout)),
        Some(store.clone()),
    );
    serving(&probe.slot("stuck"), 0).await;
    let asked = Instant::now();
    let exit = tokio::time::timeout(PATIENCE, root.shutdown())
        .await
        .unwrap();
    assert_eq!(exit, RootExit::Normal);
    assert!(asked.elapsed() >= timeout);
    // Killed means dropped: `stopped()` never ran, but the earlier sibling still stopped.
    assert!(!probe.journal.lines().iter().any(|l| l == "stopped stuck#0"));
    assert_eq!(probe.journal.with("stopped "), ["a#0"]);
    let records: HashMap<_, _> = restart_records(&store).unwrap().into_iter().collect();
    assert_eq!(
        records["engine/stuck"].last_reason.as_deref(),
        Some("killed: did not stop within its shutdown timeout")
    );
}

#[actix::test]
async fn a_failing_factory_counts_toward_intensity_and_escalates() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let root = start_root(
        SupervisorSpec::new("engine")
            .intensity(Intensity::new(2, Duration::from_secs(10)))
            .backoff(Backoff::immediate())
            .child(ChildSpec::new("db", move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Err(StartError::failed("data dir is locked"))
            })),
        None,
    );
    let exit = tokio::time::timeout(PATIENCE, root.terminated())
        .await
        .unwrap();
    assert_eq!(
        exit,
        RootExit::Escalated(
            "restart intensity exceeded: 3 restarts in 10s; last failure of engine/db: \
             failed: start failed: data dir is locked"
                .into()
        )
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[actix::test]
async fn a_factory_that_spawns_nothing_fails_its_start() {
    let root = start_root(
        SupervisorSpec::new("engine")
            .intensity(Intensity::new(0, Duration::from_secs(1)))
            .child(ChildSpec::new("empty", |_| Ok(()))),
        None,
    );
    let exit = tokio::time::timeout(PATIENCE, root.terminated())
        .await
        .unwrap();
    let RootExit::Escalated(reason) = exit else {
        panic!("expected an escalation, got {exit:?}");
    };
    assert!(reason.contains("engine/empty"), "{reason}");
    assert!(
        reason.contains("must call StartCtx::spawn exactly once"),
        "{reason}"
    );
}

#[actix::test]
async fn an_invalid_spec_ends_the_tree_with_the_spec_error() {
    let probe = Probe::default();
    let root = start_root(
        SupervisorSpec::new("engine")
            .child(probe.worker("a"))
            .child(probe.worker("a")),
        None,
    );
    let exit = tokio::time::timeout(PATIENCE, root.terminated())
        .await
        .unwrap();
    assert_eq!(
        exit,
        RootExit::Escalated(
            SpecError::DuplicateChild {
                supervisor: "engine".into(),
                id: "a".into()
            }
            .to_string()
        )
    );
    assert_eq!(probe.calls("a"), 0, "nothing starts from an invalid spec");
}

fn restart_tree(probe: &Probe) -> SupervisorSpec {
    spec("engine", Strategy::OneForOne, Backoff::immediate()).child(probe.worker("w"))
}

#[actix::test]
async fn restart_counts_survive_a_process_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let probe = Probe::default();
        let root = start_root(restart_tree(&probe), Some(store.clone()));
        let w = probe.slot("w");
        serving(&w, 0).await;
        let _ = w.send(Panic).await;
        serving(&w, 1).await;
        let _ = w.send(Panic).await;
        serving(&w, 2).await;
        assert_eq!(root.shutdown().await, RootExit::Normal);
    }
    let store = Store::open(dir.path()).unwrap();
    let records = restart_records(&store).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, "engine/w");
    assert_eq!(records[0].1.count, 2);
    assert_eq!(
        records[0].1.last_reason.as_deref(),
        Some("panicked: boom in w")
    );

    // The next run keeps counting from the persisted value.
    let probe = Probe::default();
    let root = start_root(restart_tree(&probe), Some(store.clone()));
    let w = probe.slot("w");
    serving(&w, 0).await;
    let _ = w.send(Panic).await;
    serving(&w, 1).await;
    assert_eq!(root.shutdown().await, RootExit::Normal);
    assert_eq!(restart_records(&store).unwrap()[0].1.count, 3);
}

#[actix::test]
async fn restarts_mailbox_depth_and_messages_are_exported() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The actix test system runs every actor on this thread, so a thread-local recorder
    // sees all of them without installing a global one.
    let _guard = metrics::set_default_local_recorder(&recorder);
    describe();

    let probe = Probe::default();
    let root = start_root(restart_tree(&probe), None);
    let w = probe.slot("w");
    serving(&w, 0).await;
    // Three requests held in the actor's hands make a depth of 3 until they are answered.
    let slow: Vec<_> = (0..3)
        .map(|_| w.send(Sleep(Duration::from_millis(30))))
        .collect();
    let rendered = handle.render();
    assert!(
        rendered.contains("orrery_actor_mailbox_depth{actor=\"engine/w\"} 3"),
        "{rendered}"
    );
    for r in futures::future::join_all(slow).await {
        r.unwrap();
    }
    let _ = w.send(Panic).await;
    serving(&w, 1).await;
    let rendered = handle.render();
    assert!(
        rendered.contains("orrery_actor_mailbox_depth{actor=\"engine/w\"} 0"),
        "{rendered}"
    );
    assert!(
        rendered.contains("orrery_actor_restarts_total{actor=\"engine/w\"} 1"),
        "{rendered}"
    );
    assert!(
        rendered.contains("orrery_actor_up{actor=\"engine/w\"} 1"),
        "{rendered}"
    );
    assert!(
        rendered.contains("# HELP orrery_actor_restarts_total"),
        "{rendered}"
    );
    // 1 + 3 answered before the panic, 1 after; the panicking message was never answered.
    let handled = rendered
        .lines()
        .find(|l| l.starts_with("orrery_actor_messages_total{actor=\"engine/w\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("messages_total for engine/w");
    assert!(handled >= 5, "{rendered}");
    assert_eq!(root.shutdown().await, RootExit::Normal);
    assert!(handle
        .render()
        .contains("orrery_actor_up{actor=\"engine/w\"} 0"));
}

#[actix::test]
async fn slot_reports_vacant_full_and_closed() {
    let slot: Slot<Worker> = Slot::new();
    assert!(matches!(
        slot.send(Ping).await,
        Err(SlotError::Vacant { .. })
    ));
    assert!(matches!(slot.do_send(Ping), Err(SlotError::Vacant { .. })));

    let probe = Probe::default();
    let root = start_root(
        spec(
            "engine",
            Strategy::OneForOne,
            Backoff::fixed(Duration::from_secs(60)),
        )
        .child(probe.worker("w").mailbox(1)),
        None,
    );
    let w = probe.slot("w");
    serving(&w, 0).await;
    // Occupy the actor, then fill its one-message mailbox.
    let busy = w.send(Sleep(Duration::from_millis(50)));
    let busy = actix_rt::spawn(busy);
    actix_rt::time::sleep(Duration::from_millis(5)).await;
    w.try_send(Ping).unwrap();
    assert_eq!(
        w.try_send(Ping),
        Err(SlotError::Full {
            actor: "engine/w".into()
        })
    );
    busy.await.unwrap().unwrap();
    let _ = w.send(Panic).await;
    // 60 s backoff: the slot stays vacant for the rest of the test.
    assert!(matches!(w.send(Ping).await, Err(SlotError::Vacant { .. })));
    assert!(matches!(w.try_send(Ping), Err(SlotError::Vacant { .. })));
    // Shutdown does not wait for a pending restart.
    assert_eq!(root.shutdown().await, RootExit::Normal);
    assert_eq!(probe.calls("w"), 1);
}

/// A child that reports ready only when the test says so.
fn gated(probe: &Probe, name: &str, gate: Arc<Mutex<Option<ReadySignal>>>) -> ChildSpec {
    let mut inner = probe.worker(name);
    ChildSpec::new(name, move |ctx| {
        *gate.lock() = Some(ctx.defer_ready());
        (inner.factory)(ctx)
    })
}

#[actix::test]
async fn a_deferred_ready_signal_holds_back_later_siblings() {
    let probe = Probe::default();
    let gate = Arc::new(Mutex::new(None));
    let root = start_root(
        SupervisorSpec::new("engine")
            .child(gated(&probe, "gateway", gate.clone()))
            .child(probe.worker("agent")),
        None,
    );
    serving(&probe.slot("gateway"), 0).await;
    // Without the gate the agent would have been spawned together with the gateway.
    assert_eq!(probe.calls("agent"), 0);
    let signal = gate
        .lock()
        .take()
        .expect("the factory took the ready signal");
    signal.ready();
    serving(&probe.slot("agent"), 0).await;
    assert_eq!(probe.journal.with("started "), ["gateway#0", "agent#0"]);
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn a_child_that_never_becomes_ready_fails_its_start_after_the_timeout() {
    let probe = Probe::default();
    let gate = Arc::new(Mutex::new(None));
    let root = start_root(
        SupervisorSpec::new("engine")
            .intensity(Intensity::new(0, Duration::from_secs(10)))
            .child(gated(&probe, "gateway", gate.clone()).start_timeout(Duration::from_millis(40)))
            .child(probe.worker("agent")),
        None,
    );
    let exit = tokio::time::timeout(PATIENCE, root.terminated())
        .await
        .unwrap();
    assert_eq!(
        exit,
        RootExit::Escalated(
            "restart intensity exceeded: 1 restarts in 10s; last failure of engine/gateway: \
             failed: start failed: not ready within 40ms"
                .into()
        )
    );
    assert_eq!(probe.calls("agent"), 0);
    // The tree ended only after the timed-out child had stopped.
    assert_eq!(probe.journal.with("stopped "), ["gateway#0"]);
}

#[actix::test]
async fn the_live_view_lists_every_actor_in_start_order_with_state_restarts_and_mailbox() {
    let probe = Probe::default();
    let sub = {
        let probe = probe.clone();
        move || spec("inner", Strategy::RestForOne, Backoff::immediate()).child(probe.worker("x"))
    };
    let root = start_root(
        spec("engine", Strategy::OneForOne, Backoff::immediate())
            .child(probe.worker("a").mailbox(7))
            .child(ChildSpec::supervisor("sub", sub))
            .child(probe.worker("b").restart(RestartType::Transient)),
        None,
    );
    let (a, b, x) = (probe.slot("a"), probe.slot("b"), probe.slot("x"));
    serving(&b, 0).await;
    serving(&x, 0).await;
    let paths: Vec<_> = root.tree().into_iter().map(|n| (n.path, n.depth)).collect();
    assert_eq!(
        paths,
        vec![
            ("engine".to_string(), 0),
            ("engine/a".to_string(), 1),
            ("engine/sub".to_string(), 1),
            ("engine/sub/x".to_string(), 2),
            ("engine/b".to_string(), 1),
        ]
    );
    let view = root.view().clone();
    let sub_node = view.node("engine/sub").unwrap();
    assert_eq!(sub_node.kind, NodeKind::Supervisor);
    assert_eq!(sub_node.strategy, Some(Strategy::RestForOne));
    assert_eq!(sub_node.mailbox_depth, None);
    let b_node = view.node("engine/b").unwrap();
    assert_eq!(b_node.kind, NodeKind::Worker);
    assert_eq!(b_node.restart, Some(RestartType::Transient));
    assert_eq!(b_node.state, NodeState::Running);

    // Two requests held by `a` show as its mailbox depth, against its capacity of 7.
    let slow: Vec<_> = (0..2)
        .map(|_| a.send(Sleep(Duration::from_millis(50))))
        .collect();
    let a_node = view.node("engine/a").unwrap();
    assert_eq!(
        (a_node.mailbox_depth, a_node.mailbox_capacity),
        (Some(2), Some(7))
    );
    for r in futures::future::join_all(slow).await {
        r.unwrap();
    }
    assert_eq!(view.node("engine/a").unwrap().mailbox_depth, Some(0));

    let _ = a.send(Panic).await;
    serving(&a, 1).await;
    eventually("a running again in the view", || {
        view.node("engine/a").unwrap().state == NodeState::Running
    })
    .await;
    let a_node = view.node("engine/a").unwrap();
    assert_eq!(a_node.restarts, 1);
    assert_eq!(a_node.last_failure.as_deref(), Some("panicked: boom in a"));
    assert_eq!(view.node("engine/b").unwrap().restarts, 0);

    assert_eq!(root.shutdown().await, RootExit::Normal);
    let states: Vec<_> = root.tree().into_iter().map(|n| n.state).collect();
    assert!(states.iter().all(|s| *s == NodeState::Down), "{states:?}");
    let text = render_tree(&root.tree());
    assert!(text.contains("engine  one_for_one"), "{text}");
    assert!(text.contains("\n    x "), "{text}");
}

#[actix::test]
async fn an_injected_panic_restarts_the_actor_like_a_handler_panic() {
    let probe = Probe::default();
    let root = start_root(
        spec("engine", Strategy::OneForOne, Backoff::immediate())
            .child(probe.worker("a"))
            .child(probe.worker("b")),
        None,
    );
    let a = probe.slot("a");
    serving(&a, 0).await;
    serving(&probe.slot("b"), 0).await;
    assert!(root.view().inject_panic("engine/a"));
    serving(&a, 1).await;
    assert_eq!(probe.calls("b"), 1);
    let node = root.view().node("engine/a").unwrap();
    assert_eq!(node.restarts, 1);
    assert_eq!(
        node.last_failure.as_deref(),
        Some("panicked: injected panic (test fault injection)")
    );
    assert!(!root.view().inject_panic("engine/nobody"));
    assert_eq!(root.shutdown().await, RootExit::Normal);
}

#[actix::test]
async fn a_child_added_at_runtime_starts_restarts_and_stops_first() {
    let probe = Probe::default();
    let sub_slot: Slot<super::Supervisor> = Slot::new();
    let sub = {
        let probe = probe.clone();
        move || spec("agents", Strategy::OneForOne, Backoff::immediate()).child(probe.worker("a"))
    };
    let root = start_root(
        spec("engine", Strategy::OneForOne, Backoff::immediate()).child(
            ChildSpec::supervisor_in_slot("agents", sub_slot.clone(), sub),
        ),
        None,
    );
    serving(&probe.slot("a"), 0).await;

    let path = sub_slot
        .send(AddChild::new({
            let probe = probe.clone();
            move || probe.worker("late")
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, "engine/agents/late");
    let late = probe.slot("late");
    serving(&late, 0).await;
    let view = root.view().clone();
    eventually("the added child in the live view", || {
        view.node("engine/agents/late")
            .is_some_and(|n| n.state == NodeState::Running)
    })
    .await;

    // Its id is taken now, in this supervisor.
    assert_eq!(
        sub_slot
            .send(AddChild::new({
                let probe = probe.clone();
                move || probe.worker("late")
            }))
            .await
            .unwrap(),
        Err(AddChildError::Duplicate {
            supervisor: "engine/agents".into(),
            id: "late".into()
        })
    );
    assert_eq!(probe.calls("late"), 1, "a refused add starts nothing");

    // Supervised like any child: a panic restarts it.
    let _ = late.send(Panic).await;
    serving(&late, 1).await;
    assert_eq!(view.node("engine/agents/late").unwrap().restarts, 1);

    // Last in start order, so first to stop.
    probe.journal.clear();
    assert_eq!(root.shutdown().await, RootExit::Normal);
    assert_eq!(
        probe.journal.with("stopped "),
        vec!["late#1".to_string(), "a#0".to_string()]
    );
}
