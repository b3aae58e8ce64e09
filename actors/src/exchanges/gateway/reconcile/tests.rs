//! Properties of the pure reconciliation planner over generated ledgers and venues: it
//! never resends (no entry is put back to a state from which it would be sent, and an
//! order is concluded never sent only past its deadline), never drops a fill, running it
//! twice equals running it once, and adopts every open venue order the ledger lacks once.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::exchanges::types::{OrderRequest, OrderType, Side};

const VENUE: &str = "v";
const NOW: Millis = 1_000_000;
const GRACE: i64 = 20_000;

fn cid(n: u32) -> ClientOrderId {
    ClientOrderId::parse(&format!("{n:032x}")).expect("32 hex digits")
}

fn status(i: u8) -> OrderStatus {
    [
        OrderStatus::Intent,
        OrderStatus::Submitted,
        OrderStatus::Acked,
        OrderStatus::PartiallyFilled,
        OrderStatus::Filled,
        OrderStatus::Cancelled,
        OrderStatus::Rejected,
        OrderStatus::Unknown,
    ][usize::from(i % 8)]
}

/// One order of the engine as the ledger and the venue may each hold it.
#[derive(Debug, Clone)]
struct Ours {
    ledger: Option<(u8, u8, bool, Option<i64>, bool, i64)>,
    venue: Option<(u8, u8)>,
    /// Fills at the venue: (carries the client id, already recorded).
    fills: Vec<(bool, bool)>,
}

/// An order placed outside the engine: open at the venue, maybe adopted already.
#[derive(Debug, Clone)]
struct Theirs {
    has_client_id: bool,
    adopted_before: bool,
    fills: Vec<bool>,
}

#[derive(Debug, Clone)]
struct World {
    ours: Vec<Ours>,
    theirs: Vec<Theirs>,
}

fn world() -> impl Strategy<Value = World> {
    let ours = (
        proptest::option::weighted(
            0.85,
            (
                any::<u8>(),
                0u8..=4,
                any::<bool>(),
                proptest::option::of(-10_000i64..10_000),
                proptest::bool::weighted(0.15),
                -40_000i64..0,
            ),
        ),
        proptest::option::of((any::<u8>(), 0u8..=4)),
        proptest::collection::vec((any::<bool>(), any::<bool>()), 0..3),
    )
        .prop_map(|(ledger, venue, fills)| Ours {
            ledger,
            venue,
            fills,
        });
    let theirs = (
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), 0..2),
    )
        .prop_map(|(has_client_id, adopted_before, fills)| Theirs {
            has_client_id,
            adopted_before,
            fills,
        });
    (
        proptest::collection::vec(ours, 0..7),
        proptest::collection::vec(theirs, 0..3),
    )
        .prop_map(|(ours, theirs)| World { ours, theirs })
}

fn fill(id: String, client_id: Option<ClientOrderId>, oid: &str) -> Fill {
    Fill {
        fill_id: id,
        client_id,
        venue_order_id: oid.to_string(),
        symbol: "BTC".into(),
        side: Side::Buy,
        price: Decimal::from(100),
        size: Decimal::ONE,
        fee: Decimal::ZERO,
        closed_pnl: Decimal::ZERO,
        time_ms: NOW - 1,
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
        size: Decimal::from(4),
        filled_size: Decimal::from(filled),
        avg_fill_price: None,
        limit_price: Some(Decimal::from(100)),
        status: st,
        reduce_only: false,
        reject_reason: None,
        updated_ms: NOW - 1,
    }
}

/// The ledger snapshot, the venue's open orders and fills, and what the venue answers
/// for each client id.
struct Built {
    ledger: LedgerSnapshot,
    open_orders: Vec<VenueOrder>,
    fills: Vec<Fill>,
    truth: BTreeMap<ClientOrderId, VenueOrder>,
}

fn build(w: &World) -> Built {
    let mut b = Built {
        ledger: LedgerSnapshot::default(),
        open_orders: Vec::new(),
        fills: Vec::new(),
        truth: BTreeMap::new(),
    };
    for (i, o) in w.ours.iter().enumerate() {
        let id = cid(i as u32 + 1);
        let oid = format!("o{i}");
        if let Some((st, filled, acked, deadline, adopted, age)) = o.ledger {
            let request = OrderRequest {
                client_id: id.clone(),
                symbol: "BTC".into(),
                side: Side::Buy,
                size: Decimal::from(4),
                order_type: OrderType::Limit {
                    price: Decimal::from(100),
                    tif: TimeInForce::Gtc,
                },
                reduce_only: false,
                valid_until_ms: deadline.map(|d| NOW + d),
            };
            let origin = if adopted { ADOPTED_ORIGIN } else { "agent:t" };
            let mut e = LedgerEntry::new_intent(VENUE, request, origin, NOW + age);
            e.status = status(st);
            e.filled_size = Decimal::from(filled);
            e.venue_order_id = (acked || adopted).then(|| oid.clone());
            if adopted {
                b.ledger.adopted.insert(oid.clone(), id.clone());
            }
            b.ledger.entries.insert(id.clone(), e);
        }
        if let Some((st, filled)) = o.venue {
            // What a venue reports: never an intent, a submission or an unknown.
            let st = [
                OrderStatus::Acked,
                OrderStatus::PartiallyFilled,
                OrderStatus::Filled,
                OrderStatus::Cancelled,
                OrderStatus::Rejected,
            ][usize::from(st % 5)];
            let order = venue_order(Some(id.clone()), &oid, st, filled);
            if order.status.is_open() {
                b.open_orders.push(order.clone());
            }
            b.truth.insert(id.clone(), order);
        }
        for (j, (with_id, recorded)) in o.fills.iter().enumerate() {
            let f = fill(format!("f{i}-{j}"), with_id.then(|| id.clone()), &oid);
            if *recorded {
                b.ledger.fills.push(f.clone());
            }
            b.fills.push(f);
        }
    }
    for (i, t) in w.theirs.iter().enumerate() {
        let oid = format!("x{i}");
        let id = t.has_client_id.then(|| cid(1_000 + i as u32));
        b.open_orders
            .push(venue_order(id, &oid, OrderStatus::Acked, 0));
        if t.adopted_before {
            let adopted_id = cid(2_000 + i as u32);
            let order = venue_order(None, &oid, OrderStatus::Acked, 0);
            b.ledger.adopted.insert(oid.clone(), adopted_id.clone());
            b.ledger.entries.insert(
                adopted_id.clone(),
                adoption(VENUE, &order, adopted_id, NOW - 5_000),
            );
        }
        for (j, recorded) in t.fills.iter().enumerate() {
            let f = fill(format!("x{i}-{j}"), None, &oid);
            if *recorded {
                b.ledger.fills.push(f.clone());
            }
            b.fills.push(f);
        }
    }
    b
}

fn rules() -> Rules {
    Rules {
        now: NOW,
        legacy_grace_ms: GRACE,
    }
}

/// One pass: the planner's lookups answered from the venue's truth, then the plan.
fn pass(b: &Built, ledger: &LedgerSnapshot) -> Plan {
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

/// The ledger's writes, as `reconcile_apply` makes them.
fn apply(ledger: &mut LedgerSnapshot, plan: &Plan, fresh: &mut u32) {
    for action in &plan.actions {
        match action {
            Action::RecordFill(f) => ledger.fills.push(f.clone()),
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
                let id = client_id.clone().unwrap_or_else(|| {
                    *fresh += 1;
                    cid(9_000 + *fresh)
                });
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn running_it_twice_equals_once(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        let first = pass(&b, &ledger);
        apply(&mut ledger, &first, &mut 0);
        let second = pass(&b, &ledger);
        prop_assert!(second.actions.is_empty(), "second pass: {:?}\nfirst: {:?}", second.actions, first.actions);
        prop_assert!(!second.report.changed());
    }

    #[test]
    fn never_resends(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        let plan = pass(&b, &ledger);
        let before = ledger.entries.clone();
        apply(&mut ledger, &plan, &mut 0);
        for (id, was) in &before {
            let now = &ledger.entries[id];
            if now == was {
                continue;
            }
            // Nothing is put back to a state from which it would be sent.
            prop_assert!(!matches!(now.status, OrderStatus::Intent | OrderStatus::Submitted), "{id}: {:?} -> {:?}", was.status, now.status);
            // Concluded never sent only when the venue does not have it and can no longer
            // apply it.
            if now.status == OrderStatus::Rejected && b.truth.get(id).is_none_or(|o| o.status != OrderStatus::Rejected) {
                prop_assert!(!b.truth.contains_key(id), "{id} is at the venue but was rejected");
                match was.request.valid_until_ms {
                    Some(deadline) => prop_assert!(NOW > deadline + DEADLINE_MARGIN_MS, "{id} rejected before its deadline"),
                    None => prop_assert!(was.status == OrderStatus::Intent || NOW - was.updated_ms >= GRACE),
                }
            }
        }
    }

    #[test]
    fn never_drops_a_fill(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        let plan = pass(&b, &ledger);
        let recorded = plan.actions.iter().filter(|a| matches!(a, Action::RecordFill(_))).count();
        prop_assert_eq!(recorded, plan.report.new_fills);
        apply(&mut ledger, &plan, &mut 0);
        for f in &b.fills {
            let times = ledger.fills.iter().filter(|r| r.fill_id == f.fill_id).count();
            prop_assert_eq!(times, 1, "fill {} recorded {} times", f.fill_id, times);
        }
        // An entry a new fill names that the pass finished holds what its fills say was
        // filled, unless it took the venue's own answer.
        let fresh: Vec<&Fill> = b.fills.iter().filter(|f| !b.ledger.fills.iter().any(|r| r.fill_id == f.fill_id)).collect();
        for f in fresh {
            let Some(id) = &f.client_id else { continue };
            let Some(e) = ledger.entries.get(id) else { continue };
            if !e.status.is_terminal() {
                continue;
            }
            let filled: Decimal = ledger.fills.iter().filter(|r| r.venue_order_id == f.venue_order_id).map(|r| r.size).sum();
            let venue_said = b.truth.get(id).is_some_and(|o| o.filled_size == e.filled_size && o.status == e.status);
            prop_assert!(filled <= e.filled_size || venue_said,
                "{} {:?} filled {} but its fills add up to {}", e.client_id, e.status, e.filled_size, filled);
        }
    }

    #[test]
    fn external_orders_are_adopted_once(w in world()) {
        let b = build(&w);
        let mut ledger = b.ledger.clone();
        let plan = pass(&b, &ledger);
        apply(&mut ledger, &plan, &mut 0);
        for o in &b.open_orders {
            let by_id = o.client_id.as_ref().is_some_and(|id| ledger.entries.contains_key(id));
            let by_index = ledger.adopted.get(&o.venue_order_id).is_some_and(|id| ledger.entries.contains_key(id));
            prop_assert!(by_id || by_index, "open venue order {} is not in the ledger", o.venue_order_id);
        }
        let adopted = plan.actions.iter().filter(|a| matches!(a, Action::Adopt { .. })).count();
        prop_assert_eq!(adopted, plan.report.adopted);
        // Already adopted ones are not adopted again.
        for (i, t) in w.theirs.iter().enumerate() {
            if t.adopted_before {
                let oid = format!("x{i}");
                prop_assert!(!plan.actions.iter().any(|a| matches!(a, Action::Adopt { order, .. } if order.venue_order_id == oid)), "{} adopted twice", oid);
            }
        }
    }
}

/// The rules as stated in the gateway docs, on one case each.
#[test]
fn an_order_the_venue_does_not_show_waits_for_its_deadline_then_is_never_sent() {
    let w = World {
        ours: vec![
            Ours {
                ledger: Some((0, 0, false, Some(1_000), false, -100)),
                venue: None,
                fills: vec![],
            },
            Ours {
                ledger: Some((0, 0, false, Some(-(DEADLINE_MARGIN_MS + 1)), false, -100)),
                venue: None,
                fills: vec![],
            },
        ],
        theirs: vec![],
    };
    let b = build(&w);
    let plan = pass(&b, &b.ledger);
    assert_eq!(plan.report.awaiting_deadline, 1);
    assert_eq!(plan.report.never_sent, 1);
    let statuses: Vec<_> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Update {
                client_id,
                change: Change::Status { status, .. },
                ..
            } => Some((client_id.clone(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (cid(1), OrderStatus::Unknown),
            (cid(2), OrderStatus::Rejected)
        ]
    );
}

#[test]
fn a_new_fill_for_a_rejected_entry_corrects_it_from_the_venue() {
    let w = World {
        ours: vec![Ours {
            ledger: Some((6, 0, false, Some(-50_000), false, -60_000)),
            venue: Some((2, 4)),
            fills: vec![(true, false)],
        }],
        theirs: vec![],
    };
    let b = build(&w);
    let plan = pass(&b, &b.ledger);
    assert_eq!(plan.report.new_fills, 1);
    assert_eq!(plan.report.corrected, 1);
    let mut ledger = b.ledger.clone();
    apply(&mut ledger, &plan, &mut 0);
    let e = &ledger.entries[&cid(1)];
    assert_eq!(
        (e.status, e.filled_size),
        (OrderStatus::Filled, Decimal::from(4))
    );
}
