use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures::future::{ready, BoxFuture, FutureExt};

use super::*;
use crate::resilience::mono::ManualMonotonic;

type Read = BoxFuture<'static, Result<u32, &'static str>>;

fn ok(v: u32) -> Read {
    ready(Ok(v)).boxed()
}
fn down() -> Read {
    ready(Err("down")).boxed()
}

fn chain(max_level: FallbackLevel) -> (FallbackChain<u32>, Arc<ManualMonotonic>) {
    let clock = ManualMonotonic::new(0);
    let cfg = FallbackConfig {
        max_level,
        cache_ttl: Duration::from_secs(5),
        cache_capacity: 100,
        emergency_mode: EmergencyMode::Reducing,
    };
    (FallbackChain::new("binance", cfg, clock.clone()), clock)
}

#[tokio::test]
async fn each_level_in_turn() {
    let (chain, clock) = chain(FallbackLevel::Emergency);
    let emergencies = Arc::new(AtomicU32::new(0));
    let e = emergencies.clone();
    let chain =
        chain
            .with_emergency_default(0)
            .on_emergency(Arc::new(move |ev: &EmergencyEvent| {
                assert_eq!(ev.mode, EmergencyMode::Reducing);
                assert_eq!((ev.target.as_str(), ev.key.as_str()), ("binance", "BTC"));
                e.fetch_add(1, Ordering::SeqCst);
            }));

    let s = chain
        .read("BTC", ok(100), Vec::<Read>::new())
        .await
        .unwrap();
    assert_eq!((s.value, s.level, s.age), (100, FallbackLevel::None, None));

    clock.advance(Duration::from_secs(2));
    let s = chain.read("BTC", down(), vec![ok(7)]).await.unwrap();
    assert_eq!(
        (s.value, s.level, s.age),
        (100, FallbackLevel::Partial, Some(Duration::from_secs(2)))
    );

    clock.advance(Duration::from_secs(3));
    let s = chain
        .read("BTC", down(), vec![down(), ok(101)])
        .await
        .unwrap();
    assert_eq!(
        (s.value, s.level, s.sibling),
        (101, FallbackLevel::Full, Some(1))
    );

    clock.advance(Duration::from_secs(6));
    assert_eq!(emergencies.load(Ordering::SeqCst), 0);
    let s = chain.read("BTC", down(), vec![down()]).await.unwrap();
    assert_eq!((s.value, s.level), (0, FallbackLevel::Emergency));
    assert_eq!(emergencies.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn max_level_stops_the_escalation_and_siblings_are_not_polled() {
    let (chain, _) = chain(FallbackLevel::Partial);
    let chain = chain.with_emergency_default(0);
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let sibling = async move {
        p.store(true, Ordering::SeqCst);
        Ok::<u32, &'static str>(5)
    }
    .boxed();
    let err = chain.read("ETH", down(), vec![sibling]).await.unwrap_err();
    assert!(!polled.load(Ordering::SeqCst));
    let FallbackError::Exhausted {
        primary, deepest, ..
    } = &err;
    assert_eq!((*primary, *deepest), ("down", "partial"));
    assert!(err.to_string().contains("`ETH` from `binance`"));
}

#[tokio::test]
async fn no_fallback_means_the_primary_error() {
    let (chain, _) = chain(FallbackLevel::None);
    chain.remember("SOL", 3);
    assert!(chain.read("SOL", down(), vec![ok(1)]).await.is_err());
}

#[tokio::test]
async fn emergency_without_a_default_is_an_error() {
    let recorder = crate::resilience::test_recorder::TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (chain, _) = chain(FallbackLevel::Emergency);
    let told = Arc::new(AtomicU32::new(0));
    let t = told.clone();
    let chain = chain.on_emergency(Arc::new(move |_: &EmergencyEvent| {
        t.fetch_add(1, Ordering::SeqCst);
    }));
    let err = chain
        .read("SOL", down(), vec![down(), down()])
        .await
        .unwrap_err();
    let FallbackError::Exhausted {
        siblings_failed, ..
    } = err;
    assert_eq!(siblings_failed, 2);
    // Nothing safe to serve, yet the engine is told to degrade and the use is counted.
    assert_eq!(told.load(Ordering::SeqCst), 1);
    assert_eq!(
        recorder.get("orrery_fallback_total{target=binance,level=emergency}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn every_read_is_counted_by_level() {
    let recorder = crate::resilience::test_recorder::TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (chain, _) = chain(FallbackLevel::Emergency);
    let chain = chain.with_emergency_default(0);
    chain.read("A", ok(1), Vec::<Read>::new()).await.unwrap();
    chain.read("A", ok(1), Vec::<Read>::new()).await.unwrap();
    chain.read("A", down(), Vec::<Read>::new()).await.unwrap();
    chain.read("B", down(), vec![ok(2)]).await.unwrap();
    chain.read("C", down(), vec![down()]).await.unwrap();
    for (level, n) in [
        ("none", 2.0),
        ("partial", 1.0),
        ("full", 1.0),
        ("emergency", 1.0),
    ] {
        assert_eq!(
            recorder.get(&format!(
                "orrery_fallback_total{{target=binance,level={level}}}"
            )),
            Some(n),
            "{level}"
        );
    }
}
