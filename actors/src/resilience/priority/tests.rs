use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::resilience::mono::ManualMonotonic;

fn queue(
    capacity: usize,
    aging_step: Option<Duration>,
) -> (PriorityQueue<u32>, Arc<ManualMonotonic>) {
    let clock = ManualMonotonic::new(0);
    let q = PriorityQueue::new(
        "test",
        QueueBounds {
            capacity: [capacity; 3],
            aging_step,
        },
        clock.clone(),
    );
    (q, clock)
}

#[test]
fn higher_priority_first_fifo_within() {
    let (q, _) = queue(10, None);
    q.push(1, Priority::Low).unwrap();
    q.push(2, Priority::Medium).unwrap();
    q.push(3, Priority::High).unwrap();
    q.push(4, Priority::High).unwrap();
    let order: Vec<u32> = std::iter::from_fn(|| q.try_pop().map(|p| p.item)).collect();
    assert_eq!(order, vec![3, 4, 2, 1]);
}

#[test]
fn a_full_level_refuses_and_hands_the_item_back() {
    let (q, _) = queue(2, None);
    q.push(1, Priority::Low).unwrap();
    q.push(2, Priority::Low).unwrap();
    let full = q.push(3, Priority::Low).unwrap_err();
    assert_eq!(
        (full.item, full.priority, full.capacity),
        (3, Priority::Low, 2)
    );
    assert!(full.to_string().contains("overloaded"));
    // Other levels keep their own room.
    q.push(4, Priority::High).unwrap();
    assert_eq!(q.len(), 3);
}

#[test]
fn pop_reports_the_wait() {
    let (q, clock) = queue(2, None);
    q.push(1, Priority::Medium).unwrap();
    clock.advance(Duration::from_millis(250));
    let popped = q.try_pop().unwrap();
    assert_eq!(popped.waited, Duration::from_millis(250));
    assert_eq!(popped.priority, Priority::Medium);
}

/// Under sustained High load (one High pushed per pop, with a backlog), returns after
/// how many pops the single Low item came out, or `None` within `horizon` pops.
fn pops_until_low(aging_step: Option<Duration>, backlog: u32, horizon: u32) -> Option<u32> {
    let (q, clock) = queue(100_000, aging_step);
    for i in 0..backlog {
        q.push(i, Priority::High).unwrap();
    }
    q.push(u32::MAX, Priority::Low).unwrap();
    for n in 1..=horizon {
        clock.advance(Duration::from_millis(10));
        q.push(n, Priority::High).unwrap();
        if q.try_pop().unwrap().item == u32::MAX {
            return Some(n);
        }
    }
    None
}

proptest! {
    #[test]
    fn fifo_within_each_priority(ops in prop::collection::vec(prop::option::of(0usize..3), 1..300)) {
        let (q, clock) = queue(1_000, Some(Duration::from_millis(50)));
        let mut next = 0u32;
        let mut popped: Vec<(Priority, u32)> = Vec::new();
        for op in ops {
            clock.advance(Duration::from_millis(7));
            match op {
                Some(p) => { q.push(next, Priority::ALL[p]).unwrap(); next += 1; }
                None => popped.extend(q.try_pop().map(|p| (p.priority, p.item))),
            }
        }
        popped.extend(std::iter::from_fn(|| q.try_pop().map(|p| (p.priority, p.item))));
        prop_assert_eq!(popped.len() as u32, next);
        for p in Priority::ALL {
            let items: Vec<u32> = popped.iter().filter(|(q, _)| *q == p).map(|(_, i)| *i).collect();
            prop_assert!(items.windows(2).all(|w| w[0] < w[1]), "{} out of order: {:?}", p, items);
        }
    }

    #[test]
    fn low_is_never_starved_with_aging(backlog in 0u32..50, step_ms in 10u64..200) {
        // Low reaches High rank after 2 steps, then only the High items pushed before it
        // (the backlog, plus those pushed while it aged) may still go first.
        let step = Duration::from_millis(step_ms);
        let aged_after = (2 * step_ms).div_ceil(10) as u32;
        let bound = aged_after + backlog + aged_after + 1;
        let n = pops_until_low(Some(step), backlog, 10_000);
        prop_assert!(n.is_some_and(|n| n <= bound), "low popped after {:?} pops, bound {}", n, bound);
    }
}

#[test]
fn without_aging_low_starves_under_sustained_high_load() {
    // The control for the property above: strict priority never serves Low here.
    assert_eq!(pops_until_low(None, 5, 10_000), None);
}

#[tokio::test]
async fn pop_waits_for_a_push() {
    let (q, _) = queue(4, None);
    let q = Arc::new(q);
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.pop().await.item });
    tokio::task::yield_now().await;
    q.push(7, Priority::Low).unwrap();
    assert_eq!(waiter.await.unwrap(), 7);
}

#[test]
fn depth_wait_and_rejections_are_exported_per_level() {
    let recorder = crate::resilience::test_recorder::TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (q, clock) = queue(1, None);
    q.push(1, Priority::Low).unwrap();
    assert_eq!(
        recorder.get("orrery_queue_depth{queue=test,priority=low}"),
        Some(1.0)
    );
    assert!(q.push(2, Priority::Low).is_err());
    assert_eq!(
        recorder.get("orrery_queue_rejected_total{queue=test,priority=low}"),
        Some(1.0)
    );
    clock.advance(Duration::from_millis(5));
    q.try_pop().unwrap();
    assert_eq!(
        recorder.get("orrery_queue_depth{queue=test,priority=low}"),
        Some(0.0)
    );
    assert_eq!(
        recorder.get("orrery_queue_wait_seconds{queue=test,priority=low}"),
        Some(1.0),
        "one wait sample"
    );
}
