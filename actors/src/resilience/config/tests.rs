use std::time::Duration;

use super::*;
use crate::resilience::mono::TokioClock;

fn binance() -> ResilienceConfig {
    serde_json::from_value(serde_json::json!({
        "limits": [
            { "name": "weight", "kind": "sliding_window", "limit": 100, "window": "1m" },
            { "name": "orders", "kind": "token_bucket", "capacity": 2, "refill_amount": 2, "refill_every": "10s" },
            { "name": "burst", "kind": "gcra", "burst": 50, "period": "1s" },
        ],
        "endpoints": {
            "order": { "weight": 1, "orders": 1 },
            "depth": { "weight": 20 },
        },
        "breaker": { "failure_count": 3, "adaptive": {} },
        "retry": { "backoff": { "kind": "fibonacci", "base": "50ms" } },
        "queue": { "low": 10, "aging_step": "500ms" },
        "fallback": { "max_level": "emergency", "emergency_mode": "reducing" },
    }))
    .unwrap()
}

#[test]
fn parses_with_defaults_and_validates_clean() {
    let cfg = binance();
    assert_eq!(cfg.breaker.failure_count, 3);
    assert_eq!(cfg.breaker.open_for, Duration::from_secs(30));
    assert_eq!(cfg.breaker.adaptive, Some(AdaptiveConfig::default()));
    assert_eq!(cfg.retry.backoff.kind, BackoffKind::Fibonacci);
    assert_eq!(cfg.queue.bounds().capacity, [1024, 1024, 10]);
    assert_eq!(cfg.fallback.emergency_mode, EmergencyMode::Reducing);
    let mut issues = Issues::default();
    cfg.validate("exchanges.binance.resilience", &mut issues);
    assert!(issues.is_empty(), "{:?}", issues.0);
    let mut issues = Issues::default();
    ResilienceConfig::default().validate("x", &mut issues);
    assert!(issues.is_empty(), "defaults are valid: {:?}", issues.0);
}

#[test]
fn unknown_keys_are_rejected() {
    for bad in [
        serde_json::json!({ "limitz": [] }),
        serde_json::json!({ "breaker": { "threshold": 3 } }),
        serde_json::json!({ "limits": [{ "name": "w", "kind": "sliding_window", "limit": 1, "window": "1s", "burst": 2 }] }),
        serde_json::json!({ "limits": [{ "name": "w", "kind": "fixed_window", "limit": 1, "window": "1s" }] }),
    ] {
        assert!(
            serde_json::from_value::<ResilienceConfig>(bad.clone()).is_err(),
            "accepted {bad}"
        );
    }
}

#[test]
fn bad_values_are_reported_with_their_key_path() {
    let mut cfg = binance();
    cfg.limits[0] = LimitConfig::SlidingWindow {
        name: "weight".into(),
        limit: 0,
        window: Duration::ZERO,
        shared: None,
        local_share: None,
        batch: None,
    };
    cfg.limits.push(LimitConfig::Gcra {
        name: "orders".into(),
        burst: 1,
        period: Duration::from_secs(1),
        shared: None,
        local_share: None,
        batch: None,
    });
    cfg.endpoints
        .get_mut("depth")
        .unwrap()
        .insert("nope".into(), 1);
    cfg.endpoints
        .get_mut("order")
        .unwrap()
        .insert("orders".into(), 5);
    cfg.breaker.failure_ratio = 1.5;
    cfg.breaker.max_open_for = Duration::from_secs(1);
    cfg.retry.backoff.jitter = 2.0;
    cfg.retry.max_attempts = 0;
    cfg.queue.high = 0;
    cfg.queue.aging_step = Some(Duration::ZERO);
    cfg.queue.max_in_flight = 0;
    cfg.fallback.cache_ttl = Duration::ZERO;
    let mut issues = Issues::default();
    cfg.validate("ex.b", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    for expected in [
        "ex.b.limits[0].limit",
        "ex.b.limits[0].window",
        "ex.b.limits[3].name",
        "ex.b.limits",
        "ex.b.endpoints.depth.nope",
        "ex.b.endpoints.order.orders",
        "ex.b.breaker.failure_ratio",
        "ex.b.breaker.max_open_for",
        "ex.b.retry.backoff.jitter",
        "ex.b.retry.max_attempts",
        "ex.b.queue.high",
        "ex.b.queue.aging_step",
        "ex.b.queue.max_in_flight",
        "ex.b.fallback.cache_ttl",
    ] {
        assert!(
            keys.contains(&expected),
            "no issue for {expected}; got {keys:?}"
        );
    }
    let ratio = issues
        .0
        .iter()
        .find(|i| i.key == "ex.b.breaker.failure_ratio")
        .unwrap();
    assert_eq!(ratio.value, "1.5");
    assert!(ratio.to_string().contains("at most 1"));
}

#[tokio::test(start_paused = true)]
async fn rate_limits_draw_each_endpoint_from_its_pools() {
    let mut cfg = binance();
    cfg.limits.pop(); // no gcra: every endpoint not listed draws from all pools
    let limits = RateLimits::build("binance", &cfg, TokioClock::shared()).unwrap();
    let soon = Instant::now() + Duration::from_millis(10);
    // Depth costs 20 weight: five fit in 100.
    for _ in 0..5 {
        limits
            .acquire("depth", 1, Priority::Low, soon)
            .await
            .unwrap();
    }
    let err = limits
        .acquire("depth", 1, Priority::Low, soon)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LimitError::WouldPassDeadline { ref limit, .. } if limit == "binance/depth"),
        "{err}"
    );
    // Orders draw weight too: the weight pool is empty, so they wait for it.
    let err = limits
        .acquire("order", 1, Priority::High, soon)
        .await
        .unwrap_err();
    assert!(matches!(err, LimitError::WouldPassDeadline { .. }));
    // A fresh target whose server says no orders remain for 30 s: orders wait for that
    // even though the local bucket is full, while depth (weight only) still passes.
    let fresh = RateLimits::build("binance", &cfg, TokioClock::shared()).unwrap();
    fresh.observe(
        "orders",
        ServerQuota {
            limit: None,
            remaining: 0,
            reset_after: Duration::from_secs(30),
        },
    );
    let err = fresh
        .acquire("order", 1, Priority::High, soon)
        .await
        .unwrap_err();
    // 30 s until the server's reset, then 5 s for one order to refill at 2 per 10 s.
    assert!(
        matches!(err, LimitError::WouldPassDeadline { wait, .. } if wait == Duration::from_secs(35)),
        "{err}"
    );
    fresh
        .acquire("depth", 1, Priority::Low, soon)
        .await
        .unwrap();
    let later = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    fresh
        .acquire("order", 1, Priority::High, later)
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(35));
    // Unknown endpoints draw one unit from every pool; unknown pools are ignored.
    fresh
        .acquire("ticker", 1, Priority::Low, later)
        .await
        .unwrap();
    fresh.observe(
        "nope",
        ServerQuota {
            limit: None,
            remaining: 0,
            reset_after: Duration::from_secs(1),
        },
    );
}

#[tokio::test(start_paused = true)]
async fn builds_a_targets_kit_from_config() {
    let cfg = binance();
    let wall = crate::clock::ManualClock::new(0);
    let kit = cfg
        .build("binance", TokioClock::shared(), wall, None)
        .unwrap();
    assert_eq!(kit.limits.target(), "binance");
    assert_eq!(kit.breaker.target(), "binance");
    assert_eq!(kit.retry.config().backoff.kind, BackoffKind::Fibonacci);
    let queue = cfg.priority_queue::<u8>("binance", TokioClock::shared());
    for i in 0..10 {
        queue.push(i, Priority::Low).unwrap();
    }
    assert!(
        queue.push(10, Priority::Low).is_err(),
        "low level bounded at 10 by config"
    );
    let chain = cfg
        .fallback::<u8>("binance", TokioClock::shared())
        .with_emergency_default(0);
    let served = chain
        .read(
            "x",
            async { Err::<u8, ()>(()) },
            Vec::<futures::future::Ready<Result<u8, ()>>>::new(),
        )
        .await
        .unwrap();
    assert_eq!(served.level, crate::resilience::FallbackLevel::Emergency);
    // Two gcra pools drawn by one endpoint cannot be built.
    let mut two = cfg.clone();
    two.limits.push(LimitConfig::Gcra {
        name: "g2".into(),
        burst: 1,
        period: Duration::from_secs(1),
        shared: None,
        local_share: None,
        batch: None,
    });
    assert!(matches!(
        RateLimits::build("binance", &two, TokioClock::shared()),
        Err(LinkedLimitError::TooManyNonRefunding(2))
    ));
}

#[test]
fn shared_pool_keys_are_validated_with_their_paths() {
    let cfg: ResilienceConfig = serde_json::from_value(serde_json::json!({
        "limits": [
            { "name": "weight", "kind": "sliding_window", "limit": 1200, "window": "1m",
              "shared": "hl-ip", "local_share": 0.34, "batch": 20 },
            { "name": "rpm", "kind": "gcra", "burst": 60, "period": "1m", "shared": "openai-key-1" },
        ],
    }))
    .unwrap();
    let mut issues = Issues::default();
    cfg.validate("exchanges.venues.hl.resilience", &mut issues);
    assert!(issues.is_empty(), "{:?}", issues.0);
    let s = cfg.limits[0].sharing().unwrap();
    assert_eq!((s.scope, s.local_share, s.batch), ("hl-ip", Some(0.34), 20));
    assert_eq!(cfg.limits[1].sharing().unwrap().batch, 1);

    let bad: ResilienceConfig = serde_json::from_value(serde_json::json!({
        "limits": [
            { "name": "a", "kind": "sliding_window", "limit": 10, "window": "1s",
              "shared": "bad scope", "local_share": 1.5, "batch": 9 },
            { "name": "b", "kind": "leaky_bucket", "capacity": 5, "leak_amount": 1,
              "leak_every": "1s", "shared": "q" },
            { "name": "c", "kind": "token_bucket", "capacity": 5, "refill_amount": 1,
              "refill_every": "1s", "local_share": 0.5 },
        ],
    }))
    .unwrap();
    let mut issues = Issues::default();
    bad.validate("r", &mut issues);
    let keys: Vec<_> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "r.limits[0].shared",
            "r.limits[0].local_share",
            "r.limits[0].batch",
            "r.limits[1].shared",
            "r.limits[2].local_share",
        ]
    );
    assert!(
        issues.0[3].allowed.contains("leaky bucket"),
        "{:?}",
        issues.0[3]
    );
}
