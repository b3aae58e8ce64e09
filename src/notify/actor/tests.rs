//! The notifier actor with an injected clock: the rate limit holds a second notice until
//! the clock moves, a repeat within the dedup window is counted and not sent, and the
//! daily summary goes out once its time has come (and is remembered across a restart).

use std::time::Duration;

use orrery_actors::clock::{Clock, ManualClock};
use orrery_actors::exchanges::ledger::FillRecord;
use orrery_actors::exchanges::{Fill, Side};
use orrery_actors::testkit::webhook_receiver;
use rust_decimal_macros::dec;

use super::*;
use crate::notify::config::{SinkConfig, SinkKind};

fn config(url: &str, min_interval: Duration, daily: Option<&str>) -> NotificationsConfig {
    NotificationsConfig {
        sinks: vec![SinkConfig {
            name: "hook".into(),
            kind: SinkKind::Webhook,
            url: Some(url.into()),
            url_env: None,
            token_env: None,
            chat_id: None,
            api_base: super::super::config::TELEGRAM_API.into(),
            events: EventKind::CONFIGURABLE.to_vec(),
            min_interval,
        }],
        dedup_window: Duration::from_secs(600),
        timeout: Duration::from_secs(5),
        daily_summary: daily.map(str::to_string),
        ..NotificationsConfig::default()
    }
}

fn fill(id: &str, t: Millis) -> EngineEvent {
    EngineEvent::Fill(FillRecord {
        venue: "paper".into(),
        fill: Fill {
            fill_id: id.into(),
            client_id: None,
            venue_order_id: "7".into(),
            symbol: "BTC".into(),
            side: Side::Buy,
            price: dec!(60000),
            size: dec!(0.001),
            fee: dec!(0.03),
            closed_pnl: dec!(0),
            time_ms: t,
            fee_asset: None,
        },
    })
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn sinks(addr: &Addr<Notifier>) -> SinkStatus {
    addr.send(GetSinks).await.unwrap().remove(0)
}

#[test]
fn the_rate_limit_and_the_dedup_window_follow_the_injected_clock() {
    actix::System::new().block_on(async {
        let hook = webhook_receiver();
        let clock = ManualClock::new(1_764_750_000_000);
        let (tx, rx) = broadcast::channel(16);
        let store = Store::temporary().unwrap();
        let notifier = Notifier::new(
            &config(&hook.url(), Duration::from_secs(3_600), None),
            &|_| None,
            NotifierDeps {
                events: rx,
                clock: clock.clone(),
                store,
                gateway: Slot::new(),
                venues: vec![],
            },
        )
        .unwrap()
        .start();
        until("the notifier subscribed", || tx.receiver_count() == 1).await;
        let now = clock.now_ms();
        tx.send(fill("f1", now)).unwrap();
        tx.send(fill("f1", now)).unwrap();
        tx.send(fill("f2", now)).unwrap();

        until("the first fill delivered", || hook.requests().len() == 1).await;
        // f1's repeat was deduplicated at once; f2 waits for the hour of the rate limit.
        let mut s = sinks(&notifier).await;
        for _ in 0..300 {
            if s.deduplicated == 1 && s.queued == 1 && s.sent == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            s = sinks(&notifier).await;
        }
        assert_eq!((s.sent, s.deduplicated, s.queued), (1, 1, 1), "{s:?}");
        assert_eq!(hook.requests().len(), 1);
        assert_eq!(
            hook.requests()[0].body_json().unwrap()["fields"]["fill_id"],
            "f1"
        );

        clock.advance(3_599_000);
        // Still within the interval: held (the task re-checks the clock at least every
        // 250 ms; the state, not the wait, is asserted).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sinks(&notifier).await.queued, 1);
        clock.advance(1_000);
        until("the second fill delivered", || hook.requests().len() == 2).await;
        assert_eq!(
            hook.requests()[1].body_json().unwrap()["fields"]["fill_id"],
            "f2"
        );

        // Past the dedup window (and the next rate-limit slot), f1 happening again is a
        // new notice.
        clock.advance(3_600_000);
        tx.send(fill("f1", clock.now_ms())).unwrap();
        until("f1 again after the window", || hook.requests().len() == 3).await;
        System::current().stop();
    });
}

#[test]
fn the_daily_summary_goes_out_at_its_time_once() {
    actix::System::new().block_on(async {
        let hook = webhook_receiver();
        // 2026-12-03 07:59:59 UTC.
        let clock = ManualClock::new(1_796_284_799_000);
        let store = Store::temporary().unwrap();
        let cfg = config(&hook.url(), Duration::ZERO, Some("08:00"));
        let deps = |rx| NotifierDeps {
            events: rx,
            clock: clock.clone(),
            store: store.clone(),
            gateway: Slot::new(),
            venues: vec!["paper".into()],
        };
        let (_tx, rx) = broadcast::channel(16);
        let notifier = Notifier::new(&cfg, &|_| None, deps(rx)).unwrap().start();
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        assert!(hook.requests().is_empty(), "not before 08:00");
        clock.advance(1_000);
        until("the summary", || !hook.requests().is_empty()).await;
        let b = hook.requests()[0].body_json().unwrap();
        assert_eq!(b["kind"], "daily_pnl");
        assert_eq!(b["fields"]["day"], "2026-12-03");
        assert!(
            b["text"].as_str().unwrap().contains("paper: 0 fill(s)"),
            "{b}"
        );
        until("the day recorded", || {
            store
                .tree::<SummaryRecord>(NOTIFICATIONS_TREE)
                .unwrap()
                .get(SUMMARY_KEY)
                .unwrap()
                .is_some()
        })
        .await;
        drop(notifier);
        // A notifier started again the same day knows the summary was sent.
        let (_tx2, rx2) = broadcast::channel(16);
        let again = Notifier::new(&cfg, &|_| None, deps(rx2)).unwrap();
        assert_eq!(
            again.last_summary,
            chrono::NaiveDate::from_ymd_opt(2026, 12, 3)
        );
        assert_eq!(
            summary_due(
                again.summary_at.unwrap(),
                again.last_summary,
                clock.now_ms()
            ),
            None
        );
        System::current().stop();
    });
}
