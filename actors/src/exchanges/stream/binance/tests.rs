//! Tests of the Binance stream pieces against the loopback mocks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::listen_key::{self, ApiKey, ListenKeyApi, ListenKeyError, ListenKeyLifecycle};
use crate::clock::system_clock;
use crate::exchanges::binance::mock::{MockBinance, MOCK_API_KEY};
use crate::exchanges::stream::connection::StreamError;
use crate::exchanges::venue::VenueError;

const ROUTE: &str = "/api/v3/userDataStream";

fn api(mock: &MockBinance, key: &str) -> ListenKeyApi {
    ListenKeyApi::new(
        "bn",
        &mock.url(),
        listen_key::SPOT,
        ApiKey::new(key),
        Duration::from_secs(5),
        system_clock(),
    )
    .unwrap()
}

#[tokio::test]
async fn listen_key_is_created_kept_alive_and_closed_with_the_api_key_header() {
    let mock = MockBinance::start();
    let mut life = ListenKeyLifecycle::new(api(&mock, MOCK_API_KEY), Duration::from_secs(1800));
    let counts = life.counts();
    let url = life.open("ws://127.0.0.1:1").await.unwrap();
    let keys = mock.listen_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(url, format!("ws://127.0.0.1:1/ws/{}", keys[0].0));
    assert_eq!(mock.count_method("POST", ROUTE), 1);

    // Not due yet: no PUT.
    life.tick(Instant::now()).await.unwrap();
    assert_eq!(mock.count_method("PUT", ROUTE), 0);
    // 30 minutes later: one PUT naming the key, with the API key header.
    life.tick(Instant::now() + Duration::from_secs(1801))
        .await
        .unwrap();
    assert_eq!(mock.count_method("PUT", ROUTE), 1);
    let put = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.query("listenKey"), Some(keys[0].0.as_str()));
    assert_eq!(put.header("x-mbx-apikey"), Some(MOCK_API_KEY));
    assert!(
        put.query("signature").is_none(),
        "listen-key calls are not signed"
    );

    life.close().await;
    assert_eq!(mock.count_method("DELETE", ROUTE), 1);
    assert!(!mock.listen_keys()[0].1, "the key was closed at the venue");
    assert!(!life.has_key());
    assert_eq!(counts.created.load(Ordering::Relaxed), 1);
    assert_eq!(counts.kept_alive.load(Ordering::Relaxed), 1);
    assert_eq!(counts.closed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_expired_listen_key_ends_the_connection_and_a_new_one_is_created() {
    let mock = MockBinance::start();
    let mut life = ListenKeyLifecycle::new(api(&mock, MOCK_API_KEY), Duration::from_secs(1800));
    life.open("ws://h").await.unwrap();
    mock.expire_listen_keys();
    // The keep-alive meets -1125: a typed expiry, the connection must end.
    let end = life
        .tick(Instant::now() + Duration::from_secs(1801))
        .await
        .unwrap_err();
    assert!(matches!(end, StreamError::OutOfSync(_)), "{end:?}");
    assert!(!life.has_key());
    let url = life.open("ws://h").await.unwrap();
    let keys = mock.listen_keys();
    assert_eq!(keys.len(), 2, "a new key was created");
    assert!(keys[1].1);
    assert!(url.ends_with(&keys[1].0));

    // The `listenKeyExpired` event: the next tick ends the connection without a call.
    let puts = mock.count_method("PUT", ROUTE);
    life.mark_expired();
    assert!(matches!(
        life.tick(Instant::now()).await,
        Err(StreamError::OutOfSync(_))
    ));
    assert_eq!(mock.count_method("PUT", ROUTE), puts);
    assert_eq!(life.counts().expired.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn listen_key_errors_are_typed_and_never_show_the_keys() {
    let mock = MockBinance::start();
    let bad = api(&mock, "not-the-key");
    match bad.create().await {
        Err(ListenKeyError::Venue(VenueError::Auth { reason, .. })) => {
            assert!(!reason.contains("not-the-key"), "{reason}")
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let good = api(&mock, MOCK_API_KEY);
    let key = good.create().await.unwrap();
    assert_eq!(format!("{key:?}"), "ListenKey(***)");
    assert!(!format!("{good:?}").contains(MOCK_API_KEY));
    good.close(&key).await.unwrap();
    assert!(matches!(
        good.keep_alive(&key).await,
        Err(ListenKeyError::Expired { .. })
    ));
    // Unreachable venue: an error under the deadline, not a hang.
    let addr = crate::testkit::refused_addr();
    let gone = ListenKeyApi::new(
        "bn",
        &format!("http://{addr}"),
        listen_key::SPOT,
        ApiKey::new(MOCK_API_KEY),
        Duration::from_secs(2),
        system_clock(),
    )
    .unwrap();
    let e = gone.keep_alive(&key).await.unwrap_err();
    assert!(
        matches!(e, ListenKeyError::Venue(VenueError::Unavailable { .. })),
        "{e:?}"
    );
    assert!(!e.to_string().contains(key.as_str()), "{e}");
}
