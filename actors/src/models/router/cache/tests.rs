//! The L2 sweep, with an injected wall clock.

use std::time::Duration;

use actix::Actor;

use super::*;
use crate::clock::ManualClock;
use crate::models::pool::tests::fakes::eventually;
use crate::models::pool::HealthTable;
use crate::models::router::ModelRouter;
use crate::models::types::{ModelResponse, Purpose, Usage};

const START_MS: Millis = 1_700_000_000_000;

fn answer(text: &str) -> ModelResponse {
    ModelResponse {
        text: text.into(),
        deployment: "a".into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        usage: Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        },
        latency: Duration::from_millis(12),
        finish_reason: Some("stop".into()),
        cached: false,
        attempts: Vec::new(),
        cost_usd: None,
    }
}

fn key(i: usize) -> RequestKey {
    RequestKey::of(
        "m",
        &ModelRequest::new("m", Purpose::Freeform, format!("prompt {i}")),
    )
}

fn l2(store: &Store) -> Tree<CachedAnswer> {
    store.tree::<CachedAnswer>(trees::CACHE).unwrap()
}

#[test]
fn the_sweep_removes_expired_entries_a_bounded_batch_at_a_time() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::models::router::describe();

    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(START_MS);
    let cache = ResponseCache::new(100, &store, clock.clone());
    // Six short-lived answers and four long-lived ones (every third prompt); keys are
    // hashes, so the two kinds are mixed in key order.
    let mut live = Vec::new();
    for i in 0..10 {
        let ttl = if i % 3 == 0 {
            live.push(key(i));
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(10)
        };
        cache.put(&key(i), &answer(&format!("answer {i}")), ttl);
    }
    assert_eq!(l2(&store).len(), 10);

    // Nothing has expired yet: a whole pass removes nothing.
    let idle = cache.sweep_l2(100);
    assert_eq!((idle.examined, idle.removed, idle.wrapped), (10, 0, true));

    clock.advance(20_000);
    let mut sweeps = Vec::new();
    loop {
        let sweep = cache.sweep_l2(4);
        assert!(sweep.examined <= 4, "{sweep:?}");
        sweeps.push(sweep);
        if sweep.wrapped {
            break;
        }
    }
    // Ten entries at four a sweep: three sweeps, each going on where the last stopped.
    let examined: Vec<usize> = sweeps.iter().map(|s| s.examined).collect();
    assert_eq!(examined, [4, 4, 2], "{sweeps:?}");
    assert_eq!(sweeps.iter().map(|s| s.removed).sum::<usize>(), 6);
    assert_eq!(live.len(), 4);
    assert_eq!(l2(&store).len(), 4);
    for k in &live {
        assert!(l2(&store).get(&k.hex()).unwrap().is_some());
        let (hit, _) = cache.get("m", k).expect("a live answer is still served");
        assert!(hit.cached);
    }
    // The next sweep starts over from the first entry and finds nothing more to do.
    let again = cache.sweep_l2(100);
    assert_eq!((again.examined, again.removed), (4, 0));

    let text = handle.render();
    assert!(
        text.contains("orrery_model_cache_swept_total 6"),
        "missing the sweep counter in:\n{text}"
    );
    assert!(text.contains("# HELP orrery_model_cache_swept_total"));
}

#[test]
fn the_sweep_removes_unreadable_entries_and_survives_an_empty_tree() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(START_MS);
    let cache = ResponseCache::new(100, &store, clock.clone());
    let empty = cache.sweep_l2(10);
    assert_eq!((empty.examined, empty.removed, empty.wrapped), (0, 0, true));
    // A record of another shape under the cache tree (e.g. from an older build).
    store
        .tree::<crate::resilience::BreakerRecord>(trees::CACHE)
        .unwrap()
        .put(
            "garbage",
            &crate::resilience::BreakerRecord {
                state: crate::resilience::BreakerState::Open,
                open_until_ms: 0,
                open_for_ms: 0,
                consecutive_opens: 0,
                changed_at_ms: 0,
            },
        )
        .unwrap();
    cache.put(&key(1), &answer("kept"), Duration::from_secs(60));
    let sweep = cache.sweep_l2(10);
    assert_eq!((sweep.examined, sweep.removed), (2, 1));
    assert_eq!(l2(&store).len(), 1);
}

#[actix::test]
async fn the_router_sweeps_expired_entries_on_its_interval() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(START_MS);
    // Left behind by an earlier run: two expired, one live.
    let tree = l2(&store);
    for (i, expires_at_ms) in [
        (1, START_MS - 1),
        (2, START_MS - 5_000),
        (3, START_MS + 60_000),
    ] {
        tree.put(
            &key(i).hex(),
            &CachedAnswer {
                response: answer("old"),
                expires_at_ms,
            },
        )
        .unwrap();
    }
    let _router = ModelRouter::new(HealthTable::new(), store.clone())
        .with_clock(clock.clone())
        .with_cache_sweep(Duration::from_millis(20), 1)
        .start();
    eventually("the expired entries swept, one a tick", || tree.len() == 1).await;
    assert!(tree.get(&key(3).hex()).unwrap().is_some());
    // Time passes: the last one expires and a later tick removes it.
    clock.advance(120_000);
    eventually("the last entry swept on an interval", || tree.is_empty()).await;
}

#[test]
fn the_key_is_lower_hex_sha256() {
    assert_eq!(lower_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    // Pinned: keys are stored in sled, so the same request must keep its key across
    // versions.
    let mut req = ModelRequest::new("m", Purpose::TradeDecision, "BTC?");
    req.system = "be brief".into();
    req.max_tokens = 64;
    assert_eq!(
        RequestKey::of("m", &req).hex(),
        "794b0cf89ee4fe30af5c02f54d1391071bce4e964d9e11a739f509f838ee5917"
    );
}

#[test]
fn the_purpose_in_the_key_is_what_serde_writes() {
    for purpose in [
        Purpose::TradeDecision,
        Purpose::RiskConfirmation,
        Purpose::Freeform,
    ] {
        assert_eq!(
            purpose_json(purpose),
            serde_json::to_string(&purpose).unwrap()
        );
    }
}
