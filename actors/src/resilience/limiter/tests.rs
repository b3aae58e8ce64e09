use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::resilience::mono::{ManualMonotonic, MonotonicClock};
use crate::resilience::priority::Priority;

const MS: u64 = 1_000_000;

/// Sum of admitted costs in every half-open window `[t_i, t_i + len)` that starts at an
/// admission; the maximum over all windows is the maximum over all windows of that length.
fn max_in_window(admitted: &[(u64, u64)], len: u64) -> u64 {
    let mut best = 0;
    for (i, &(start, _)) in admitted.iter().enumerate() {
        let sum: u64 = admitted[i..]
            .iter()
            .take_while(|(t, _)| *t < start + len)
            .map(|(_, c)| c)
            .sum();
        best = best.max(sum);
    }
    best
}

/// Drives `limiter` through `steps` of (advance, cost) and returns what it admitted.
fn drive(
    limiter: &dyn RateLimit,
    clock: &ManualMonotonic,
    steps: &[(u64, u64)],
) -> Vec<(u64, u64)> {
    let mut admitted = Vec::new();
    for &(advance, cost) in steps {
        clock.advance(Duration::from_nanos(advance));
        let now = clock.now();
        if limiter.try_acquire(cost, now).is_ok() {
            admitted.push((now, cost));
        }
    }
    admitted
}

fn steps(max_advance: u64, max_cost: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0..max_advance, 1..=max_cost), 1..400)
}

/// Window lengths to check, as multiples of a base period (in tenths).
const WINDOW_TENTHS: [u64; 5] = [1, 5, 10, 15, 30];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sliding_window_never_exceeds_limit_in_any_window(
        limit in 1u64..50, window_ms in 1u64..200, s in steps(40 * MS, 10),
    ) {
        let clock = ManualMonotonic::new(0);
        let w = SlidingWindow::new(limit, Duration::from_millis(window_ms));
        let admitted = drive(&w, &clock, &s);
        prop_assert!(max_in_window(&admitted, window_ms * MS) <= limit);
        // Any costlier call than the limit is refused for good.
        prop_assert_eq!(w.try_acquire(limit + 1, clock.now()), Err(Denied::Exceeds { max: limit }));
    }

    /// Above 1024 units the window groups calls into slices: still never over the limit,
    /// the log stays small however fast calls come, and a unit is held at most one slice
    /// (window / 1024) longer than the exact window would hold it.
    #[test]
    fn sliced_sliding_window_holds_the_limit_with_a_small_log(
        limit in 1025u64..3000, window_ms in 1u64..200, costs in prop::collection::vec(1u64..=20, 1..600),
        pace in 1u64..2000,
    ) {
        let window = window_ms * MS;
        let slice = window / 1024;
        let clock = ManualMonotonic::new(0);
        let w = SlidingWindow::new(limit, Duration::from_nanos(window));
        // Calls `window / pace` apart: many per slice when `pace` is above 1024.
        let s: Vec<(u64, u64)> = costs.iter().map(|c| (window / pace, *c)).collect();
        let mut admitted = Vec::new();
        for &(advance, cost) in &s {
            clock.advance(Duration::from_nanos(advance));
            let now = clock.now();
            if w.try_acquire(cost, now).is_ok() {
                admitted.push((now, cost));
            }
            prop_assert!(w.entries() <= 1026, "log grew to {} entries", w.entries());
            let held = limit - w.headroom(now).unwrap();
            let exact: u64 = admitted.iter().filter(|(t, _)| t + window > now).map(|(_, c)| c).sum();
            let at_most: u64 = admitted.iter().filter(|(t, _)| t + window + slice > now).map(|(_, c)| c).sum();
            prop_assert!(exact <= held && held <= at_most, "held {held}, exact {exact}, bound {at_most}");
        }
        prop_assert!(max_in_window(&admitted, window) <= limit);
    }

    #[test]
    fn token_bucket_admits_at_most_capacity_plus_refill(
        capacity in 1u64..50, amount in 1u64..50, every_ms in 1u64..200, s in steps(40 * MS, 10),
    ) {
        let clock = ManualMonotonic::new(0);
        let b = LeakyBucket::token_bucket(capacity, amount, Duration::from_millis(every_ms), 0);
        let admitted = drive(&b, &clock, &s);
        for tenths in WINDOW_TENTHS {
            let len = every_ms * MS * tenths / 10;
            // capacity + len × (amount / every), exactly, in integers.
            let budget_x = u128::from(capacity) * u128::from(every_ms * MS) + u128::from(len) * u128::from(amount);
            let got = u128::from(max_in_window(&admitted, len)) * u128::from(every_ms * MS);
            prop_assert!(got <= budget_x, "window {len}ns: admitted {got} > budget {budget_x} (scaled)");
        }
    }

    #[test]
    fn leaky_bucket_meter_admits_at_most_capacity_plus_leak(
        capacity in 1u64..50, amount in 1u64..50, every_ms in 1u64..200, s in steps(40 * MS, 10),
    ) {
        let clock = ManualMonotonic::new(0);
        let b = LeakyBucket::new(capacity, amount, Duration::from_millis(every_ms), LeakMode::Meter, 0);
        let admitted = drive(&b, &clock, &s);
        for tenths in WINDOW_TENTHS {
            let len = every_ms * MS * tenths / 10;
            let budget_x = u128::from(capacity) * u128::from(every_ms * MS) + u128::from(len) * u128::from(amount);
            let got = u128::from(max_in_window(&admitted, len)) * u128::from(every_ms * MS);
            prop_assert!(got <= budget_x);
        }
    }

    #[test]
    fn leaky_bucket_queue_meters_out_at_the_leak_rate(
        amount in 1u64..20, every_ms in 1u64..100, s in steps(20 * MS, 5),
    ) {
        let clock = ManualMonotonic::new(0);
        let b = LeakyBucket::new(10, amount, Duration::from_millis(every_ms), LeakMode::Queue, 0);
        let admitted = drive(&b, &clock, &s);
        // Each call leaves only after the previous one has leaked out completely.
        for pair in admitted.windows(2) {
            let ((t0, c0), (t1, _)) = (pair[0], pair[1]);
            prop_assert!(u128::from(t1 - t0) * u128::from(amount) >= u128::from(c0) * u128::from(every_ms * MS));
        }
    }

    #[test]
    fn gcra_admits_at_most_burst_plus_refill(
        burst in 1u32..30, period_ms in 1u64..200, s in steps(40 * MS, 5),
    ) {
        let clock = ManualMonotonic::new(0);
        let g = GcraLimiter::new(burst, Duration::from_millis(period_ms));
        let admitted = drive(&g, &clock, &s);
        let period = period_ms * MS;
        for tenths in WINDOW_TENTHS {
            let len = period * tenths / 10;
            // governor spaces cells `period / burst` apart (integer nanoseconds), so allow
            // for that rounding: budget = burst + len / floor(period / burst).
            let t = period / u64::from(burst);
            let budget = u64::from(burst) + len / t.max(1);
            prop_assert!(max_in_window(&admitted, len) <= budget);
        }
    }

    #[test]
    fn linked_and_weighted_limits_hold_together(
        s in prop::collection::vec((0u64..30 * MS, 0usize..3), 1..400),
    ) {
        let clock = ManualMonotonic::new(0);
        // Request weight 100 per 100 ms, orders 3 per 50 ms, and a GCRA pool last.
        let weight: Arc<dyn RateLimit> = Arc::new(SlidingWindow::new(100, Duration::from_millis(100)));
        let orders: Arc<dyn RateLimit> = Arc::new(LeakyBucket::token_bucket(3, 3, Duration::from_millis(50), 0));
        let burst: Arc<dyn RateLimit> = Arc::new(GcraLimiter::new(4, Duration::from_millis(20)));
        let depth = LinkedLimit::new(vec![(weight.clone(), 20, true)]).unwrap();
        let order = LinkedLimit::new(vec![(burst.clone(), 1, false), (weight.clone(), 1, true), (orders.clone(), 1, true)]).unwrap();
        let ticker = LinkedLimit::new(vec![(weight.clone(), 2, true), (burst.clone(), 1, false)]).unwrap();
        let endpoints = [(&depth, [20, 0, 0]), (&order, [1, 1, 1]), (&ticker, [2, 0, 1])];
        // Per pool: (time, units drawn).
        let mut drawn: [Vec<(u64, u64)>; 3] = Default::default();
        for (advance, which) in s {
            clock.advance(Duration::from_nanos(advance));
            let now = clock.now();
            let (limit, weights) = endpoints[which];
            if limit.try_acquire(1, now).is_ok() {
                for (pool, w) in weights.iter().enumerate() {
                    if *w > 0 {
                        drawn[pool].push((now, *w));
                    }
                }
            }
        }
        prop_assert!(max_in_window(&drawn[0], 100 * MS) <= 100);
        // Orders: capacity 3 + 3 per 50 ms.
        prop_assert!(max_in_window(&drawn[1], 50 * MS) <= 6);
        // GCRA: burst 4 + one per 5 ms.
        prop_assert!(max_in_window(&drawn[2], 20 * MS) <= 8);
        // Refunds are exact: the weight pool's own log agrees with what calls drew.
        let used_now: u64 = drawn[0].iter().filter(|(t, _)| *t + 100 * MS > clock.now()).map(|(_, c)| c).sum();
        prop_assert_eq!(weight.headroom(clock.now()), Some(100 - used_now));
    }
}

#[test]
fn sliding_window_allows_no_double_burst_at_the_edge() {
    let w = SlidingWindow::new(10, Duration::from_millis(1000));
    // The whole budget just before a fixed-window edge...
    let t0 = 999 * MS;
    for _ in 0..10 {
        w.try_acquire(1, t0).unwrap();
    }
    // ...is still counted just after it: a fixed-window counter would admit 10 more here.
    assert_eq!(
        w.try_acquire(1, 1000 * MS),
        Err(Denied::Wait(Duration::from_millis(999)))
    );
    assert!(w.try_acquire(1, 1998 * MS).is_err());
    assert!(w.try_acquire(1, 1999 * MS).is_ok());
}

#[test]
fn denied_linked_call_draws_nothing() {
    let weight: Arc<dyn RateLimit> = Arc::new(SlidingWindow::new(100, Duration::from_secs(60)));
    let orders: Arc<dyn RateLimit> =
        Arc::new(LeakyBucket::token_bucket(1, 1, Duration::from_secs(10), 0));
    let order =
        LinkedLimit::new(vec![(weight.clone(), 5, true), (orders.clone(), 1, true)]).unwrap();
    order.try_acquire(1, 0).unwrap();
    assert_eq!(weight.headroom(0), Some(95));
    // The order pool is empty: the call is denied and the weight pool keeps its 95.
    assert!(matches!(order.try_acquire(1, MS), Err(Denied::Wait(_))));
    assert_eq!(weight.headroom(MS), Some(95));
    assert_eq!(orders.headroom(MS), Some(0));
}

#[test]
fn linked_limit_refuses_two_gcra_pools_and_puts_one_last() {
    let g1: Arc<dyn RateLimit> = Arc::new(GcraLimiter::new(1, Duration::from_secs(1)));
    let g2: Arc<dyn RateLimit> = Arc::new(GcraLimiter::new(1, Duration::from_secs(1)));
    let tb: Arc<dyn RateLimit> =
        Arc::new(LeakyBucket::token_bucket(1, 1, Duration::from_secs(1), 0));
    assert_eq!(
        LinkedLimit::new(vec![(g1.clone(), 1, false), (g2, 1, false)]).unwrap_err(),
        LinkedLimitError::TooManyNonRefunding(2)
    );
    let linked = LinkedLimit::new(vec![(g1.clone(), 1, false), (tb.clone(), 1, true)]).unwrap();
    // GCRA checked last: with the bucket empty the GCRA cell is never spent.
    tb.try_acquire(1, 0).unwrap();
    assert!(linked.try_acquire(1, 0).is_err());
    assert!(
        g1.try_acquire(1, 0).is_ok(),
        "gcra cell was consumed by a denied linked call"
    );
}

#[test]
fn weighted_cost_above_capacity_can_never_pass() {
    let w = LeakyBucket::token_bucket(10, 10, Duration::from_secs(1), 0);
    assert_eq!(w.try_acquire(20, 0), Err(Denied::Exceeds { max: 10 }));
    let linked = LinkedLimit::new(vec![(Arc::new(w) as Arc<dyn RateLimit>, 20, true)]).unwrap();
    assert_eq!(linked.max_cost(), 0);
    assert_eq!(linked.try_acquire(1, 0), Err(Denied::Exceeds { max: 0 }));
}

#[test]
fn server_quota_lowers_and_gates_each_algorithm() {
    let quota = ServerQuota {
        limit: None,
        remaining: 0,
        reset_after: Duration::from_secs(5),
    };
    let limiters: Vec<Box<dyn RateLimit>> = vec![
        Box::new(LeakyBucket::token_bucket(10, 10, Duration::from_secs(1), 0)),
        Box::new(SlidingWindow::new(10, Duration::from_secs(10))),
        Box::new(LeakyBucket::new(
            10,
            10,
            Duration::from_secs(1),
            LeakMode::Meter,
            0,
        )),
        Box::new(GcraLimiter::new(10, Duration::from_secs(1))),
    ];
    for l in &limiters {
        l.observe(quota, 0);
        assert!(
            l.try_acquire(1, 4_999 * MS).is_err(),
            "{l:?} admitted before the server's reset"
        );
        // After the reset the limiter's own rate applies again (10 per second here).
        assert!(
            l.try_acquire(1, 5_200 * MS).is_ok(),
            "{l:?} still closed after the server's reset"
        );
    }
}

#[test]
fn server_quota_caps_remaining_and_adopts_limit() {
    let b = LeakyBucket::token_bucket(100, 100, Duration::from_secs(60), 0);
    b.observe(
        ServerQuota {
            limit: None,
            remaining: 3,
            reset_after: Duration::from_secs(60),
        },
        0,
    );
    assert_eq!(b.headroom(0), Some(3));
    let w = SlidingWindow::new(100, Duration::from_secs(60));
    let t = 100_000 * MS;
    w.try_acquire(5, t).unwrap();
    w.observe(
        ServerQuota {
            limit: Some(50),
            remaining: 10,
            reset_after: Duration::from_secs(30),
        },
        t,
    );
    assert_eq!(w.headroom(t), Some(10));
    assert_eq!(w.max_cost(), 50);
    // The unseen usage leaves at the server's reset, ours a full window after it was made.
    assert_eq!(w.headroom(t + 30_000 * MS - 1), Some(10));
    assert_eq!(w.headroom(t + 30_000 * MS), Some(45));
    assert_eq!(w.headroom(t + 60_000 * MS), Some(50));
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Spawns one acquire per (priority, cost) in order, each queued before the next starts,
/// and returns the order in which they were admitted.
async fn admission_order(throttle: Arc<Throttle>, calls: &[(Priority, u64)]) -> Vec<usize> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut handles = Vec::new();
    for (i, &(p, cost)) in calls.iter().enumerate() {
        let t = throttle.clone();
        let tx = tx.clone();
        let before = throttle.waiting();
        handles.push(tokio::spawn(async move {
            t.acquire(cost, p, deadline).await.unwrap();
            tx.send(i).unwrap();
        }));
        // Let the task run until it is queued (or admitted at once).
        while throttle.waiting() == before && !handles.last().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
    }
    drop(tx);
    for h in handles {
        h.await.unwrap();
    }
    let mut order = Vec::new();
    while let Some(i) = rx.recv().await {
        order.push(i);
    }
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn acquire_is_fifo_within_a_priority(
        calls in prop::collection::vec((prop::sample::select(Priority::ALL.to_vec()), 1u64..4), 1..30),
    ) {
        let rt = paused_runtime();
        let order = rt.block_on(async {
            let clock = crate::resilience::mono::TokioClock::shared();
            let bucket = Arc::new(LeakyBucket::token_bucket(3, 1, Duration::from_millis(100), clock.now()));
            admission_order(Arc::new(Throttle::new("t", bucket, clock)), &calls).await
        });
        prop_assert_eq!(order.len(), calls.len());
        for p in Priority::ALL {
            let admitted: Vec<usize> = order.iter().copied().filter(|&i| calls[i].0 == p).collect();
            let mut pushed = admitted.clone();
            pushed.sort_unstable();
            prop_assert_eq!(admitted, pushed, "{} calls admitted out of order", p);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_for_capacity_and_admits_high_first() {
    let clock = crate::resilience::mono::TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::token_bucket(
        1,
        1,
        Duration::from_secs(1),
        clock.now(),
    ));
    let throttle = Arc::new(Throttle::new("t", bucket, clock));
    let start = tokio::time::Instant::now();
    let order = admission_order(
        throttle,
        &[
            (Priority::Low, 1),
            (Priority::Low, 1),
            (Priority::Medium, 1),
            (Priority::High, 1),
        ],
    )
    .await;
    // The first passes at once; the rest queue, the highest priority first.
    assert_eq!(order, vec![0, 3, 2, 1]);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn acquire_fails_at_once_when_the_wait_passes_the_deadline() {
    let clock = crate::resilience::mono::TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::token_bucket(
        5,
        5,
        Duration::from_secs(10),
        clock.now(),
    ));
    let throttle = Throttle::new("binance/order", bucket, clock);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    throttle
        .acquire(5, Priority::Medium, deadline)
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = throttle
        .acquire(1, Priority::High, deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LimitError::WouldPassDeadline { wait, .. } if wait == Duration::from_secs(2)),
        "{err}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "failed without waiting");
    assert!(err.to_string().contains("binance/order"));
    assert_eq!(
        throttle
            .acquire(6, Priority::High, deadline)
            .await
            .unwrap_err(),
        LimitError::CostExceedsCapacity {
            limit: "binance/order".into(),
            cost: 6,
            max: 5
        }
    );
}

#[tokio::test(start_paused = true)]
async fn queued_caller_gives_up_at_its_deadline_and_leaves_the_queue() {
    let clock = crate::resilience::mono::TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::token_bucket(
        1,
        1,
        Duration::from_secs(1),
        clock.now(),
    ));
    let throttle = Arc::new(Throttle::new("t", bucket, clock));
    let far = tokio::time::Instant::now() + Duration::from_secs(60);
    throttle.acquire(1, Priority::Low, far).await.unwrap();
    // Head waits 1 s; the second caller's deadline passes while it is queued behind it.
    let t = throttle.clone();
    let head = tokio::spawn(async move { t.acquire(1, Priority::Low, far).await });
    tokio::task::yield_now().await;
    let near = tokio::time::Instant::now() + Duration::from_millis(500);
    let err = throttle.acquire(1, Priority::Low, near).await.unwrap_err();
    assert!(matches!(err, LimitError::WouldPassDeadline { .. }), "{err}");
    assert_eq!(throttle.waiting(), 1);
    head.await.unwrap().unwrap();
    assert_eq!(throttle.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn leaky_queue_bounds_the_waiting_units() {
    let clock = crate::resilience::mono::TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::new(
        2,
        1,
        Duration::from_secs(1),
        LeakMode::Queue,
        clock.now(),
    ));
    let throttle = Arc::new(Throttle::new("t", bucket, clock));
    let far = tokio::time::Instant::now() + Duration::from_secs(60);
    throttle.acquire(1, Priority::Low, far).await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let t = throttle.clone();
        waiting.push(tokio::spawn(async move {
            t.acquire(1, Priority::Low, far).await
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(throttle.waiting(), 2);
    let err = throttle.acquire(1, Priority::Low, far).await.unwrap_err();
    assert!(
        matches!(
            err,
            LimitError::QueueFull {
                queued: 2,
                bound: 2,
                ..
            }
        ),
        "{err}"
    );
    let start = tokio::time::Instant::now();
    for w in waiting {
        w.await.unwrap().unwrap();
    }
    // Metered out one per second.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn dropped_head_wakes_the_next_caller() {
    let clock = crate::resilience::mono::TokioClock::shared();
    let bucket = Arc::new(LeakyBucket::token_bucket(
        1,
        1,
        Duration::from_secs(1),
        clock.now(),
    ));
    let throttle = Arc::new(Throttle::new("t", bucket, clock));
    let far = tokio::time::Instant::now() + Duration::from_secs(60);
    throttle.acquire(1, Priority::Low, far).await.unwrap();
    let t = throttle.clone();
    let head = tokio::spawn(async move { t.acquire(1, Priority::Low, far).await });
    tokio::task::yield_now().await;
    let t = throttle.clone();
    let next = tokio::spawn(async move { t.acquire(1, Priority::Low, far).await });
    tokio::task::yield_now().await;
    assert_eq!(throttle.waiting(), 2);
    head.abort();
    let start = tokio::time::Instant::now();
    next.await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(throttle.waiting(), 0);
}
