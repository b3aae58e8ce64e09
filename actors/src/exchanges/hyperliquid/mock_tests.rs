//! The mock Hyperliquid answers in the shapes and with the values the venue was recorded
//! sending (issue #10.13): fills with fees by the documented schedule, closed PnL and
//! direction, `cloid` only when the order had one; an account whose margin and withdrawable
//! follow the recorded relations; `openOrders` without a `cloid` key for orders placed
//! without one; frontend orders with trigger conditions and TP/SL children; a duplicate
//! cloid refused. Each expected value is worked out here from the facts stated beside it,
//! never read back from the mock's own code.

use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

use super::actions::{Action, Grouping, OrderTypeWire, OrderWire, Tif, Tpsl};
use super::config::{HyperliquidConfig, KEY_VAR};
use super::mock::MockHyperliquid;
use super::signing::{Network, PrivateKey};
use super::venue::HyperliquidVenue;
use crate::clock::system_clock;
use crate::exchanges::venue::Venue;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const BTC: u32 = 0;
const SOL: u32 = 2;

fn wallet() -> super::signing::Address {
    PrivateKey::from_hex(KEY).unwrap().address()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn info(mock: &MockHyperliquid, body: Value) -> Value {
    client()
        .post(format!("{}/info", mock.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn user(mock: &MockHyperliquid, kind: &str) -> Value {
    info(mock, json!({"type": kind, "user": wallet().to_string()})).await
}

/// Signs and sends one order action, as the venue does (without an expiry).
async fn send(mock: &MockHyperliquid, orders: Vec<OrderWire>, grouping: Grouping) -> Value {
    let nonce = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
    let key = PrivateKey::from_hex(KEY).unwrap();
    let body = Action::Order { orders, grouping }
        .sign(&key, nonce, None, Network::Testnet)
        .unwrap();
    client()
        .post(format!("{}/exchange", mock.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn order(a: u32, b: bool, p: &str, s: &str, t: OrderTypeWire, c: Option<&str>) -> OrderWire {
    OrderWire {
        a,
        b,
        p: p.into(),
        s: s.into(),
        r: false,
        t,
        c: c.map(String::from),
    }
}

fn ioc() -> OrderTypeWire {
    OrderTypeWire::Limit { tif: Tif::Ioc }
}

fn dec_at(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

const CLOID: &str = "0x0000000000000000000000000000abcd";

#[tokio::test]
async fn fills_carry_fees_by_the_schedule_closed_pnl_direction_and_cloid_only_when_set() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    // A taker buy: 0.1 BTC crosses the ask 60001.
    let answer = send(
        &mock,
        vec![order(BTC, true, "61000", "0.1", ioc(), Some(CLOID))],
        Grouping::Na,
    )
    .await;
    assert!(
        answer["response"]["data"]["statuses"][0]["filled"].is_object(),
        "{answer}"
    );
    // A maker sell placed in the venue's UI (no cloid), hit when the book moves up to it:
    // it closes the 0.1 long and opens a 0.05 short.
    mock.insert_resting_without_cloid("BTC", false, dec!(60100), dec!(0.15));
    mock.set_book("BTC", dec!(60100), dec!(60102), dec!(10));

    let fills = user(&mock, "userFills").await;
    let fills = fills.as_array().unwrap();
    assert_eq!(fills.len(), 2, "{fills:?}");
    // Newest first, as the venue answers.
    let (maker, taker) = (&fills[0], &fills[1]);

    // Base tier taker fee 0.045%: 60001 * 0.1 * 0.00045 = 2.7000450.
    assert_eq!(dec_at(&taker["fee"]), dec!(2.700045));
    assert_eq!(taker["feeToken"], "USDC");
    assert_eq!(taker["crossed"], true);
    assert_eq!(taker["dir"], "Open Long");
    assert_eq!(dec_at(&taker["closedPnl"]), Decimal::ZERO);
    assert_eq!(dec_at(&taker["startPosition"]), Decimal::ZERO);
    assert_eq!(taker["cloid"], CLOID);

    // Maker fee 0.015%: 60100 * 0.15 * 0.00015 = 1.35225; the 0.1 closed realizes
    // 0.1 * (60100 - 60001) = 9.9; a long that becomes a short is "Long > Short".
    assert_eq!(dec_at(&maker["fee"]), dec!(1.35225));
    assert_eq!(maker["crossed"], false);
    assert_eq!(maker["dir"], "Long > Short");
    assert_eq!(dec_at(&maker["closedPnl"]), dec!(9.9));
    assert_eq!(dec_at(&maker["startPosition"]), dec!(0.1));
    // The recorded fills of orders without a cloid have no `cloid` key at all.
    assert!(maker.as_object().unwrap().get("cloid").is_none(), "{maker}");
    for key in ["tid", "hash", "oid", "time", "twapId"] {
        assert!(
            maker.as_object().unwrap().contains_key(key),
            "{key}: {maker}"
        );
    }

    // The venue's fill reader takes the fees as they are.
    let venue =
        HyperliquidVenue::open("hyperliquid", &config(&mock), &env, system_clock()).unwrap();
    let read = venue.fills_since(0).await.unwrap();
    let total: Decimal = read.iter().map(|f| f.fee).sum();
    assert_eq!(total, dec!(2.700045) + dec!(1.35225));
}

#[tokio::test]
async fn the_account_follows_the_recorded_margin_and_withdrawable_relations() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    send(
        &mock,
        vec![order(BTC, true, "61000", "0.1", ioc(), Some(CLOID))],
        Grouping::Na,
    )
    .await;
    let state = user(&mock, "clearinghouseState").await;
    let summary = &state["marginSummary"];
    // 0.1 BTC at the mid 60000 at the default 20x: positionValue 6000, marginUsed 300
    // (the recorded state has marginUsed = positionValue / leverage).
    let position = &state["assetPositions"][0]["position"];
    assert_eq!(dec_at(&position["positionValue"]), dec!(6000));
    assert_eq!(dec_at(&position["marginUsed"]), dec!(300));
    assert_eq!(dec_at(&summary["totalMarginUsed"]), dec!(300));
    // Cash 100000 less the taker fee 2.700045; unrealized 0.1 * (60000 - 60001) = -0.1.
    let value = dec!(100000) - dec!(2.700045) - dec!(0.1);
    assert_eq!(dec_at(&summary["accountValue"]), value);
    // Recorded: withdrawable = accountValue - totalMarginUsed (1182.312496 - 171.740766 =
    // 1010.57173), and totalRawUsd = accountValue - the signed notional at mark.
    assert_eq!(dec_at(&state["withdrawable"]), value - dec!(300));
    assert_eq!(dec_at(&summary["totalRawUsd"]), value - dec!(6000));
    // Recorded: returnOnEquity = unrealizedPnl / marginUsed.
    assert_eq!(
        dec_at(&position["returnOnEquity"]),
        (dec!(-0.1) / dec!(300)).round_dp(8)
    );

    let venue =
        HyperliquidVenue::open("hyperliquid", &config(&mock), &env, system_clock()).unwrap();
    let account = venue.account().await.unwrap();
    assert_eq!(account.margin_used, dec!(300));
    assert_eq!(account.free_balance, value - dec!(300));
}

#[tokio::test]
async fn open_orders_omit_a_missing_cloid_and_frontend_orders_show_triggers_and_children() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    mock.insert_resting_without_cloid("ETH", true, dec!(2900), dec!(1));
    let open = user(&mock, "openOrders").await;
    assert!(
        open[0].as_object().unwrap().get("cloid").is_none(),
        "the recorded openOrders carry no cloid key for such orders: {open}"
    );
    // The frontend shape keeps the key, null (as the recorded historicalOrders).
    let front = user(&mock, "frontendOpenOrders").await;
    assert_eq!(front[0]["cloid"], Value::Null, "{front}");

    // A resting entry with a take profit and a stop loss, grouped `normalTpsl`.
    let trigger = |px: &str, tpsl| OrderTypeWire::Trigger {
        is_market: true,
        trigger_px: px.into(),
        tpsl,
    };
    let answer = send(
        &mock,
        vec![
            order(
                SOL,
                true,
                "140",
                "1",
                OrderTypeWire::Limit { tif: Tif::Gtc },
                Some("0x00000000000000000000000000000001"),
            ),
            order(SOL, false, "160", "1", trigger("160", Tpsl::Tp), None),
            order(SOL, false, "130", "1", trigger("130", Tpsl::Sl), None),
        ],
        Grouping::NormalTpsl,
    )
    .await;
    let statuses = answer["response"]["data"]["statuses"].as_array().unwrap();
    let oid = |i: usize| statuses[i]["resting"]["oid"].as_u64().unwrap();
    let (entry, tp, sl) = (oid(0), oid(1), oid(2));

    let front = user(&mock, "frontendOpenOrders").await;
    let find = |o: u64| {
        front
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["oid"] == o)
            .cloned()
            .unwrap()
    };
    let parent = find(entry);
    assert_eq!(parent["triggerCondition"], "N/A");
    assert_eq!(parent["isTrigger"], false);
    assert_eq!(parent["triggerPx"], "0.0");
    assert_eq!(parent["orderType"], "Limit");
    assert_eq!(parent["tif"], "Gtc");
    let children: Vec<u64> = parent["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["oid"].as_u64().unwrap())
        .collect();
    assert_eq!(children, vec![tp, sl]);
    // Recorded: a sell take profit "Price above 10.004", a sell stop "Price below 9.995",
    // market triggers with tif null, listed at the top level too with no children.
    let take = find(tp);
    assert_eq!(take["triggerCondition"], "Price above 160");
    assert_eq!(take["orderType"], "Take Profit Market");
    assert_eq!(take["isTrigger"], true);
    assert_eq!(take["tif"], Value::Null);
    assert_eq!(take["children"], json!([]));
    let stop = find(sl);
    assert_eq!(stop["triggerCondition"], "Price below 130");
    assert_eq!(stop["orderType"], "Stop Market");
    assert_eq!(parent["children"][1]["triggerCondition"], "Price below 130");
}

#[tokio::test]
async fn a_second_order_with_the_same_cloid_is_refused_and_counted_as_a_second_send() {
    let mock = MockHyperliquid::start(wallet(), Network::Testnet);
    let gtc = || OrderTypeWire::Limit { tif: Tif::Gtc };
    let first = send(
        &mock,
        vec![order(BTC, true, "50000", "0.001", gtc(), Some(CLOID))],
        Grouping::Na,
    )
    .await;
    assert!(first["response"]["data"]["statuses"][0]["resting"].is_object());
    let second = send(
        &mock,
        vec![order(BTC, true, "50000", "0.001", gtc(), Some(CLOID))],
        Grouping::Na,
    )
    .await;
    // An order-level error in the batch's status vector, the shape of every documented
    // order error; nothing is applied.
    let error = second["response"]["data"]["statuses"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{second}"));
    assert!(error.to_ascii_lowercase().contains("cloid"), "{error}");
    assert_eq!(mock.orders().len(), 1);
    assert_eq!(mock.sends_of_cloid(CLOID), 2);
    assert_eq!(mock.record()["sends"][CLOID], 2);
}

fn env(k: &str) -> Option<String> {
    (k == KEY_VAR).then(|| KEY.to_string())
}

fn config(mock: &MockHyperliquid) -> HyperliquidConfig {
    HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(mock.url()),
        wallet_address: wallet().to_string(),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}
