//! The copy agent in process: leader on the mock Hyperliquid (REST), follower on a paper
//! venue behind a real gateway. The crash windows a SIGKILL rarely hits are set up here
//! exactly, by writing the sled state a crash would have left.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::leader::LeaderReader;
use super::state::{step_client_id, CopyState, Mirror, PendingStep};
use super::{CopyAgent, CopyConfig, CopyDeps};
use crate::agents::journal::DecisionJournal;
use crate::agents::runtime::RunOutcome;
use crate::clock::{ManualClock, SharedClock};
use crate::exchanges::connector::Connector;
use crate::exchanges::gateway::{GatewayConfig, GatewayCore, OrderGateway};
use crate::exchanges::hyperliquid::mock::MockHyperliquid;
use crate::exchanges::hyperliquid::signing::Address;
use crate::exchanges::hyperliquid::Network;
use crate::exchanges::paper::{PaperConfig, PaperVenue};
use crate::exchanges::risk_gate::RiskConfig;
use crate::exchanges::{OrderStatus, Venue};
use crate::store::Store;
use crate::supervisor::Slot;

const LEADER: &str = "0x360878d351f05975e25f1807a27895e1e5e004fb";

fn config() -> CopyConfig {
    CopyConfig {
        name: "copier".into(),
        leader_venue: "hl".into(),
        wallets: vec![LEADER.into()],
        venue: "paper".into(),
        ratio: Some(dec!(0.01)),
        fixed_usd: None,
        symbols: vec!["BTC".into()],
        max_position_usd: dec!(2000),
        max_total_usd: dec!(2000),
        max_slippage_pct: dec!(1),
        stale_pct: dec!(100),
        min_step_usd: Decimal::ZERO,
        poll_interval: Duration::from_secs(1),
        check_interval: Duration::from_secs(1),
        initial_delay: Duration::ZERO,
        jitter: 0.0,
        run_timeout: None,
        request_timeout: Duration::from_secs(5),
    }
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    paper: Arc<PaperVenue>,
    core: Arc<GatewayCore>,
    mock: MockHyperliquid,
    agent: CopyAgent,
}

async fn world() -> World {
    let store = Store::temporary().unwrap();
    let manual = ManualClock::new(1_763_000_000_000);
    let clock: SharedClock = manual.clone();
    let paper = Arc::new(
        PaperVenue::open("paper", &PaperConfig::default(), &store, clock.clone()).unwrap(),
    );
    let connector = Slot::<Connector>::new();
    connector.fill(
        Connector::new(paper.clone()).start(),
        connector.next_token(),
        "test/paper",
    );
    let mut venues = BTreeMap::new();
    venues.insert("paper".to_string(), connector);
    let core = GatewayCore::open(
        &store,
        venues,
        RiskConfig::default(),
        GatewayConfig::default(),
        clock.clone(),
    )
    .unwrap();
    core.reconcile_all().await.unwrap();
    let gateway = Slot::<OrderGateway>::new();
    gateway.fill(
        OrderGateway::new(core.clone()).start(),
        gateway.next_token(),
        "test/gateway",
    );
    let other: Address = "0x0000000000000000000000000000000000000001"
        .parse()
        .unwrap();
    let mock = MockHyperliquid::start(other, Network::Testnet);
    let deps = CopyDeps {
        gateway,
        journal: DecisionJournal::open(&store).unwrap(),
        state: CopyState::open(&store, "copier").unwrap(),
        clock,
        leader: LeaderReader::new("hl", &mock.url(), Duration::from_secs(5), None).unwrap(),
    };
    let symbols = BTreeMap::from([("BTC".to_string(), "BTC".to_string())]);
    let agent = CopyAgent::new(config(), symbols, deps);
    World {
        store,
        clock: manual,
        paper,
        core,
        mock,
        agent,
    }
}

async fn paper_btc(w: &World) -> Decimal {
    w.paper
        .positions()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.symbol == "BTC")
        .map(|p| p.size)
        .unwrap_or_default()
}

/// Sets the leader's BTC position; the next check's poll is due.
fn leader_holds(w: &World, size: Decimal) {
    w.clock.advance(2_000);
    w.mock
        .set_other_position(LEADER.parse().unwrap(), "BTC", size, dec!(60000));
}

#[actix::test]
async fn a_step_on_disk_but_not_in_the_ledger_is_sent_once_under_its_id() {
    let w = world().await;
    leader_holds(&w, dec!(1));
    // A crash after the step was written (pending) and before the gateway wrote it.
    let id = step_client_id("copier", LEADER, "BTC", 0);
    let state = CopyState::open(&w.store, "copier").unwrap();
    let crashed = Mirror {
        pending: Some(PendingStep {
            client_id: id.clone(),
            size: dec!(0.01),
            target: dec!(0.01),
            anchor: None,
            leader_size: dec!(1),
            written_ms: 0,
        }),
        ..Mirror::default()
    };
    state.put(LEADER, "BTC", &crashed).await.unwrap();
    assert_eq!(w.agent.check().await, RunOutcome::Ok);
    assert_eq!(paper_btc(&w).await, dec!(0.01));
    let entry = w
        .core
        .ledger()
        .get(&id)
        .unwrap()
        .expect("sent under the derived id");
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(w.core.ledger().len(), 1);
    let m = state.get(LEADER, "BTC").unwrap();
    assert_eq!((m.mirrored, m.steps, m.pending), (dec!(0.01), 1, None));

    // A crash after the order filled and before its outcome reached the copy state: the
    // same step comes back from disk. It is settled from the ledger, not sent again.
    state.put(LEADER, "BTC", &crashed).await.unwrap();
    assert_eq!(w.agent.check().await, RunOutcome::Ok);
    assert_eq!(w.core.ledger().len(), 1, "the step was sent again");
    assert_eq!(paper_btc(&w).await, dec!(0.01));
    let m = state.get(LEADER, "BTC").unwrap();
    assert_eq!((m.mirrored, m.steps, m.pending), (dec!(0.01), 1, None));

    // The next step has the next id.
    leader_holds(&w, dec!(2));
    assert_eq!(w.agent.check().await, RunOutcome::Ok);
    assert_eq!(paper_btc(&w).await, dec!(0.02));
    let next = step_client_id("copier", LEADER, "BTC", 1);
    assert!(w.core.ledger().get(&next).unwrap().is_some());
    assert_eq!(w.core.ledger().len(), 2);
}

#[actix::test]
async fn a_refused_step_moves_nothing_and_a_later_step_gets_a_new_id() {
    let w = world().await;
    // 0.05 BTC at ~60000 is 3000 USD: past the risk gate's 25 % margin of 10000, within
    // the agent's own limit (raised here).
    let mut cfg = config();
    cfg.max_position_usd = dec!(5000);
    cfg.max_total_usd = dec!(5000);
    let agent = CopyAgent::new(
        cfg,
        BTreeMap::from([("BTC".to_string(), "BTC".to_string())]),
        w.agent.deps_for_test(),
    );
    leader_holds(&w, dec!(5));
    assert_eq!(agent.check().await, RunOutcome::Ok);
    let state = CopyState::open(&w.store, "copier").unwrap();
    let m = state.get(LEADER, "BTC").unwrap();
    assert_eq!((m.mirrored, m.steps, m.pending), (Decimal::ZERO, 1, None));
    let refused = w
        .core
        .ledger()
        .get(&step_client_id("copier", LEADER, "BTC", 0))
        .unwrap()
        .unwrap();
    assert_eq!(refused.status, OrderStatus::Rejected);
    assert_eq!(paper_btc(&w).await, Decimal::ZERO);
    // The leader comes down to a size the gate admits: step 1, a new id.
    leader_holds(&w, dec!(1));
    assert_eq!(agent.check().await, RunOutcome::Ok);
    assert_eq!(paper_btc(&w).await, dec!(0.01));
    assert!(w
        .core
        .ledger()
        .get(&step_client_id("copier", LEADER, "BTC", 1))
        .unwrap()
        .is_some());
}
