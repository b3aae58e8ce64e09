//! Properties of pushed updates against the reconciliation planner: a push followed by a
//! REST pass leaves the ledger a REST pass alone leaves; a fill is recorded once however
//! often and by whichever path it arrives; the order of order-update and fill frames does
//! not matter; a push never moves an entry backwards; an order placed outside the engine
//! is adopted once, as reconciliation adopts it.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::clock::Millis;
use crate::exchanges::gateway::reconcile::{adoption, lookups, plan, Action};
use crate::exchanges::types::{OrderRequest, OrderType, Side, TimeInForce};

const VENUE: &str = "v";
const NOW: Millis = 1_000_000;
const GRACE: i64 = 20_000;
const SIZE: u8 = 4;

fn cid(n: u32) -> ClientOrderId {
    ClientOrderId::parse(&format!("{n:032x}")).expect("32 hex digits")
}

fn rules() -> Rules {
    Rules {
        now: NOW,
        legacy_grace_ms: GRACE,
    }
}

fn fill(id: String, client_id: Option<ClientOrderId>, oid: &str, n: u8) -> Fill {
    Fill {
        fill_id: id,
        client_id,
        venue_order_id: oid.to_string(),
        symbol: "BTC".into(),
        side: Side::Buy,
        // Prices differ per fill, so an average from the wrong set of fills shows.
        price: Decimal::from(100 + u32::from(n)),
        size: Decimal::ONE,
        fee: Decimal::ZERO,
        closed_pnl: Decimal::ZERO,
        time_ms: NOW - 100 + i64::from(n),
        fee_asset: None,
    }
}

fn venue_order(
    client_id: Option<ClientOrderId>,
    oid: &str,
    st: OrderStatus,
    filled: u8,
) -> VenueOrder {
    VenueOrder {
        client_id,
        venue_order_id: oid.to_string(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: Decimal::from(SIZE),
        filled_size: Decimal::from(filled),
        avg_fill_price: None,
        limit_price: Some(Decimal::from(100)),
        status: st,
        reduce_only: false,
        reject_reason: None,
        updated_ms: NOW - 1,
    }
}

/// The venue's state of an order with `filled` of [`SIZE`] filled: open or finished.
fn state(filled: u8, finished: bool) -> OrderStatus {
    match (filled, finished) {
        (0, false) => OrderStatus::Acked,
        (f, false) if f < SIZE => OrderStatus::PartiallyFilled,
        (f, _) if f >= SIZE => OrderStatus::Filled,
        _ => OrderStatus::Cancelled,
    }
}

/// One order of ours: the ledger's view, the venue's truth (filled, finished), which of
/// its fills the ledger recorded, and what a push says (an earlier state, which fills,
/// twice or once).
#[derive(Debug, Clone)]
struct Ours {
    /// 0 intent, 1 submitted, 2 unknown, 3 acked/partly filled (as far as recorded),
    /// 4 rejected (wrongly: never sent), 5 cancelled with what was recorded, 6 as the
    /// venue's truth.
    ledger_kind: u8,
    deadline_passed: bool,
    /// `None`: the venue has no such order.
    truth: Option<(u8, bool)>,
    fills_carry_id: bool,
    recorded: u8,
    /// Filled size of the pushed state (at most the truth's), or no state pushed.
    pushed_state: Option<u8>,
    pushed_fills: Vec<bool>,
}

/// An order placed outside the engine, open at the venue.
#[derive(Debug, Clone)]
struct Theirs {
    filled: u8,
    pushed_state: Option<u8>,
    pushed_fills: Vec<bool>,
    adopted_before: bool,
}

#[derive(Debug, Clone)]
struct World {
    ours: Vec<Ours>,
    theirs: Vec<Theirs>,
}

fn world() -> impl Strategy<Value = World> {
    let ours = (
        (0u8..=6, any::<bool>()),
        proptest::option::weighted(0.85, (0u8..=SIZE, any::<bool>())),
        (any::<bool>(), 0u8..=SIZE),
        proptest::option::of(0u8..=SIZE),
        proptest::collection::vec(any::<bool>(), SIZE as usize),
    )
        .prop_map(
            |(
                (ledger_kind, deadline_passed),
                truth,
                (fills_carry_id, recorded),
                pushed_state,
                pushed_fills,
            )| Ours {
                ledger_kind,
                deadline_passed,
                truth,
                fills_carry_id,
                recorded,
                pushed_state,
                pushed_fills,
            },
        );
    let theirs = (
        0u8..SIZE,
        proptest::option::of(0u8..SIZE),
        proptest::collection::vec(any::<bool>(), SIZE as usize),
        any::<bool>(),
    )
        .prop_map(
            |(filled, pushed_state, pushed_fills, adopted_before)| Theirs {
                filled,
                pushed_state,
                pushed_fills,
                adopted_before,
            },
        );
    (
        proptest::collection::vec(ours, 0..6),
        proptest::collection::vec(theirs, 0..3),
    )
        .prop_map(|(ours, theirs)| World { ours, theirs })
}

/// The ledger, the venue's truth (open orders, fills, answers by client id) and the push.
struct Built {
    ledger: LedgerSnapshot,
    open_orders: Vec<VenueOrder>,
    fills: Vec<Fill>,
    truth: BTreeMap<ClientOrderId, VenueOrder>,
    push: PushedUpdate,
}

fn build(w: &World) -> Built {
    let mut b = Built {
        ledger: LedgerSnapshot::default(),
        open_orders: Vec::new(),
        fills: Vec::new(),
        truth: BTreeMap::new(),
        push: PushedUpdate {
            venue: VENUE.into(),
            ..PushedUpdate::default()
        },
    };
    for (i, o) in w.ours.iter().enumerate() {
        let id = cid(i as u32 + 1);
        let oid = format!("o{i}");
        let (filled, finished) = o.truth.unwrap_or((0, false));
        let fills: Vec<Fill> = (0..filled)
            .map(|j| {
                fill(
                    format!("f{i}-{j}"),
                    o.fills_carry_id.then(|| id.clone()),
                    &oid,
                    j,
                )
            })
            .collect();
        // The ledger has recorded a prefix of the fills (REST reads fills in time order).
        let recorded = o.recorded.min(filled);
        b.ledger
            .fills
            .extend(fills[..usize::from(recorded)].iter().cloned());
        let request = OrderRequest {
            client_id: id.clone(),
            symbol: "BTC".into(),
            side: Side::Buy,
            size: Decimal::from(SIZE),
            order_type: OrderType::Limit {
                price: Decimal::from(100),
                tif: TimeInForce::Gtc,
            },
            reduce_only: false,
            valid_until_ms: Some(if o.deadline_passed {
                NOW - 10_000
            } else {
                NOW + 10_000
            }),
        };
        let mut e = LedgerEntry::new_intent(VENUE, request, "agent:t", NOW - 30_000);
        let acked = o.truth.is_some();
        match o.ledger_kind {
            0 => {}
            1 => e.status = OrderStatus::Submitted,
            2 => e.status = OrderStatus::Unknown,
            3 if acked => {
                e.status = state(recorded, false);
                e.filled_size = Decimal::from(recorded);
                e.venue_order_id = Some(oid.clone());
            }
            4 => {
                e.status = OrderStatus::Rejected;
                e.reason = Some("never reached the venue".into());
            }
            5 if acked => {
                e.status = OrderStatus::Cancelled;
                e.filled_size = Decimal::from(recorded);
                e.venue_order_id = Some(oid.clone());
            }
            6 if acked => {
                let t = venue_order(Some(id.clone()), &oid, state(filled, finished), filled);
                e.apply_venue_order(&t, NOW - 20_000);
                e.price_from_fills(&b.ledger.fills);
            }
            _ => e.status = OrderStatus::Unknown,
        }
        b.ledger.entries.insert(id.clone(), e);
        if let Some((filled, finished)) = o.truth {
            let t = venue_order(Some(id.clone()), &oid, state(filled, finished), filled);
            if t.status.is_open() {
                b.open_orders.push(t.clone());
            }
            b.truth.insert(id.clone(), t);
            if let Some(at) = o.pushed_state {
                // An earlier state, or the truth itself.
                let at = at.min(filled);
                let st = if at == filled {
                    state(filled, finished)
                } else {
                    state(at, false)
                };
                b.push
                    .orders
                    .push(venue_order(Some(id.clone()), &oid, st, at));
            }
        }
        for (f, pushed) in fills.iter().zip(&o.pushed_fills) {
            if *pushed {
                b.push.fills.push(f.clone());
            }
        }
        b.fills.extend(fills);
    }
    for (i, t) in w.theirs.iter().enumerate() {
        let oid = format!("x{i}");
        let truth = venue_order(None, &oid, state(t.filled, false), t.filled);
        b.open_orders.push(truth);
        if t.adopted_before {
            let id = cid(2_000 + i as u32);
            let seen = venue_order(None, &oid, OrderStatus::Acked, 0);
            b.ledger.adopted.insert(oid.clone(), id.clone());
            b.ledger
                .entries
                .insert(id.clone(), adoption(VENUE, &seen, id, NOW - 5_000));
        }
        if let Some(at) = t.pushed_state {
            let at = at.min(t.filled);
            b.push
                .orders
                .push(venue_order(None, &oid, state(at, false), at));
        }
        let fills: Vec<Fill> = (0..t.filled)
            .map(|j| fill(format!("x{i}-{j}"), None, &oid, j))
            .collect();
        for (f, pushed) in fills.iter().zip(&t.pushed_fills) {
            if *pushed {
                b.push.fills.push(f.clone());
            }
        }
        b.fills.extend(fills);
    }
    b
}

/// A REST pass: the planner's lookups answered from the venue's truth.
fn rest(b: &Built, ledger: &LedgerSnapshot) -> Plan {
    let lookups = lookups(VENUE, ledger, &b.open_orders, &b.fills)
        .into_iter()
        .map(|(_, id)| {
            let found = b.truth.get(&id).cloned();
            (id, found)
        })
        .collect();
    let venue = VenueSnapshot {
        open_orders: b.open_orders.clone(),
        fills: b.fills.clone(),
        lookups,
    };
    plan(VENUE, ledger, &venue, rules())
}

/// The ledger's writes, as `reconcile_apply` makes them. Adopted entries get ids from
/// the venue order id, so two paths that adopt the same order make the same entry.
fn apply(ledger: &mut LedgerSnapshot, plan: &Plan) {
    for action in &plan.actions {
        match action {
            Action::RecordFill(f) => {
                if !ledger.fills.iter().any(|r| r.fill_id == f.fill_id) {
                    ledger.fills.push(f.clone());
                }
            }
            Action::Update {
                client_id, change, ..
            } => {
                let e = ledger
                    .entries
                    .get_mut(client_id)
                    .expect("an update names an entry of the snapshot");
                change.apply(e, NOW);
                e.updated_ms = NOW;
            }
            Action::Adopt { order, client_id } => {
                let n: u32 = order.venue_order_id[1..].parse().expect("x<n>");
                let id = client_id.clone().unwrap_or_else(|| cid(9_000 + n));
                ledger
                    .adopted
                    .insert(order.venue_order_id.clone(), id.clone());
                ledger
                    .entries
                    .entry(id.clone())
                    .or_insert_with(|| adoption(VENUE, order, id, NOW));
            }
        }
    }
}

fn push(ledger: &mut LedgerSnapshot, update: &PushedUpdate) -> Plan {
    let p = plan_pushed(VENUE, ledger, update, rules());
    apply(ledger, &p);
    p
}

/// What the ledger says, without write times: per entry its state, and the fills.
type View = (
    BTreeMap<
        ClientOrderId,
        (
            OrderStatus,
            Decimal,
            Option<Decimal>,
            Option<String>,
            Option<String>,
        ),
    >,
    BTreeMap<String, ClientOrderId>,
    Vec<String>,
);

fn view(l: &LedgerSnapshot) -> View {
    let entries = l
        .entries
        .iter()
        .map(|(id, e)| {
            (
                id.clone(),
                (
                    e.status,
                    e.filled_size,
                    e.avg_fill_price,
                    e.venue_order_id.clone(),
                    e.reason.clone(),
                ),
            )
        })
        .collect();
    let mut fills: Vec<String> = l.fills.iter().map(|f| f.fill_id.clone()).collect();
    fills.sort();
    (entries, l.adopted.clone(), fills)
}

fn only_orders(u: &PushedUpdate) -> PushedUpdate {
    PushedUpdate {
        fills: Vec::new(),
        ..u.clone()
    }
}

fn only_fills(u: &PushedUpdate) -> PushedUpdate {
    PushedUpdate {
        orders: Vec::new(),
        ..u.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_push_then_a_rest_pass_equals_the_rest_pass_alone(w in world()) {
        let b = build(&w);
        let mut alone = b.ledger.clone();
        let p = rest(&b, &alone);
        apply(&mut alone, &p);

        let mut pushed = b.ledger.clone();
        push(&mut pushed, &b.push);
        let p = rest(&b, &pushed);
        apply(&mut pushed, &p);
        prop_assert_eq!(view(&pushed), view(&alone));
    }

    #[test]
    fn order_and_fill_frames_in_either_order_give_one_ledger(w in world()) {
        let b = build(&w);
        let mut orders_first = b.ledger.clone();
        push(&mut orders_first, &only_orders(&b.push));
        push(&mut orders_first, &only_fills(&b.push));
        let mut fills_first = b.ledger.clone();
        push(&mut fills_first, &only_fills(&b.push));
        push(&mut fills_first, &only_orders(&b.push));
        let mut together = b.ledger.clone();
        push(&mut together, &b.push);
        // Whatever the order, the REST pass that follows settles the same ledger.
        for l in [&mut orders_first, &mut fills_first, &mut together] {
            let p = rest(&b, l);
            apply(l, &p);
        }
        prop_assert_eq!(view(&orders_first), view(&fills_first));
        prop_assert_eq!(view(&orders_first), view(&together));
    }

    #[test]
    fn every_fill_is_recorded_once_however_often_it_is_pushed(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        // Live, then the same again as a snapshot replay after a reconnect, then REST.
        let live = push(&mut ledger, &b.push);
        let replay = PushedUpdate { snapshot: true, ..b.push.clone() };
        let again = plan_pushed(VENUE, &ledger, &replay, rules());
        prop_assert!(!again.actions.iter().any(|a| matches!(a, Action::RecordFill(_))), "a replayed fill recorded again: {:?}", again.actions);
        apply(&mut ledger, &again);
        let rest_plan = rest(&b, &ledger);
        // Only fills the push left to the pass (they show a finished entry wrong) are new
        // to it.
        let deferred = pushed_snapshot(&b.ledger, &b.push).deferred;
        for a in &rest_plan.actions {
            if let Action::RecordFill(f) = a {
                let pushed = b.push.fills.iter().any(|p| p.fill_id == f.fill_id);
                prop_assert!(!pushed || deferred.contains(&f.venue_order_id), "REST recorded pushed fill {} again", f.fill_id);
            }
        }
        apply(&mut ledger, &rest_plan);
        let mut ids: Vec<&str> = ledger.fills.iter().map(|f| f.fill_id.as_str()).collect();
        let total = ids.len();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), total, "a fill recorded twice");
        prop_assert_eq!(total, b.fills.len(), "a venue fill is missing");
        let recorded = live.actions.iter().filter(|a| matches!(a, Action::RecordFill(_))).count();
        prop_assert_eq!(recorded, live.report.new_fills);
    }

    #[test]
    fn a_push_never_moves_an_entry_backwards(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        let before = ledger.entries.clone();
        let p = push(&mut ledger, &b.push);
        for (id, was) in &before {
            let now = &ledger.entries[id];
            // Never concluded from silence: a push neither rejects nor cancels what it
            // does not report.
            if now.status != was.status && matches!(now.status, OrderStatus::Rejected | OrderStatus::Unknown | OrderStatus::Intent | OrderStatus::Submitted) {
                prop_assert!(false, "{id}: {:?} -> {:?} from a push", was.status, now.status);
            }
            if was.status.is_terminal() && now.status != was.status {
                // Only a fill that shows the finished entry wrong reopens it, as in a pass.
                let corrected = p.actions.iter().any(|a| matches!(a, Action::Update { client_id, drift: Some(reconcile::Drift::Corrected), .. } if client_id == id));
                prop_assert!(corrected, "{id}: finished {:?} changed to {:?} without a correction", was.status, now.status);
            } else if !was.status.is_terminal() {
                prop_assert!(now.filled_size >= was.filled_size, "{id}: filled {} -> {}", was.filled_size, now.filled_size);
            }
        }
    }

    #[test]
    fn an_order_placed_outside_is_adopted_once_as_a_pass_adopts_it(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        let first = push(&mut ledger, &b.push);
        let second = plan_pushed(VENUE, &ledger, &b.push, rules());
        prop_assert!(!second.actions.iter().any(|a| matches!(a, Action::Adopt { .. })), "adopted twice: {:?}", second.actions);
        for (i, t) in w.theirs.iter().enumerate() {
            let oid = format!("x{i}");
            let adopted = first.actions.iter().any(|a| matches!(a, Action::Adopt { order, .. } if order.venue_order_id == oid));
            prop_assert_eq!(adopted, t.pushed_state.is_some() && !t.adopted_before, "{}", oid);
        }
        // What the REST pass then adopts, it adopts only if the push did not.
        let rest_plan = rest(&b, &ledger);
        let adopted_by_push = |oid: &str| first.actions.iter().any(|f| matches!(f, Action::Adopt { order: o, .. } if o.venue_order_id == oid));
        let twice = rest_plan.actions.iter().any(|a| matches!(a, Action::Adopt { order, .. } if adopted_by_push(&order.venue_order_id)));
        prop_assert!(!twice, "the pass adopted again what the push adopted");
    }
}

#[test]
fn a_finished_order_placed_outside_is_not_adopted_but_its_fill_is_recorded() {
    let ledger = LedgerSnapshot::default();
    let mut update = PushedUpdate {
        venue: VENUE.into(),
        ..PushedUpdate::default()
    };
    update
        .orders
        .push(venue_order(None, "x1", OrderStatus::Filled, SIZE));
    update.fills.push(fill("x1-0".into(), None, "x1", 0));
    let p = plan_pushed(VENUE, &ledger, &update, rules());
    assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
    assert!(matches!(&p.actions[0], Action::RecordFill(f) if f.fill_id == "x1-0"));
}

#[test]
fn a_finished_state_pushed_before_its_fills_takes_its_price_from_them() {
    let id = cid(1);
    let mut ledger = LedgerSnapshot::default();
    let request = OrderRequest {
        client_id: id.clone(),
        symbol: "BTC".into(),
        side: Side::Buy,
        size: Decimal::from(2),
        order_type: OrderType::Market {
            max_slippage: Decimal::ONE,
        },
        reduce_only: false,
        valid_until_ms: Some(NOW + 10_000),
    };
    let mut e = LedgerEntry::new_intent(VENUE, request, "agent:t", NOW - 10);
    e.status = OrderStatus::Submitted;
    ledger.entries.insert(id.clone(), e);
    let mut filled = venue_order(Some(id.clone()), "o1", OrderStatus::Filled, 2);
    filled.size = Decimal::from(2);
    let orders = PushedUpdate {
        venue: VENUE.into(),
        orders: vec![filled],
        ..PushedUpdate::default()
    };
    push(&mut ledger, &orders);
    assert_eq!(ledger.entries[&id].status, OrderStatus::Filled);
    assert_eq!(ledger.entries[&id].avg_fill_price, None, "no fills yet");
    let fills = PushedUpdate {
        venue: VENUE.into(),
        fills: vec![
            fill("a".into(), Some(id.clone()), "o1", 0),
            fill("b".into(), Some(id.clone()), "o1", 2),
        ],
        ..PushedUpdate::default()
    };
    push(&mut ledger, &fills);
    assert_eq!(ledger.entries[&id].avg_fill_price, Some(Decimal::from(101)));
}
