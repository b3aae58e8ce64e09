//! The mock Binance charges commission as the recordings show (issue #10.13): without BNB
//! burn from the asset received, so a buy pays in the base asset (the recorded
//! `executionReport` of an ETHUSDT BUY of 1 ETH: `"n":"0.00100000","N":"ETH"`) and a sell
//! in the quote asset (the recorded FULL answer of a BTCUSDT SELL: commission 4.00000000
//! USDT on 4000 USDT), at the regular tier's 0.1%. Expected values are worked out here.

use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;

use super::mock::{MockBinance, MOCK_API_KEY, MOCK_API_SECRET};
use super::signing::{signed_query, ApiSecret, RecvWindow, API_KEY_HEADER};

/// A signed MARKET order with a FULL answer, sent as a client would.
async fn market(mock: &MockBinance, side: &str, quantity: &str) -> Value {
    let secret = ApiSecret::new(MOCK_API_SECRET).unwrap();
    let query = signed_query(
        &secret,
        &[
            ("symbol", "ETHUSDT"),
            ("side", side),
            ("type", "MARKET"),
            ("quantity", quantity),
            ("newOrderRespType", "FULL"),
        ],
        chrono::Utc::now().timestamp_millis(),
        RecvWindow::new(5_000).unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(format!("{}/api/v3/order?{query}", mock.url()))
        .header(API_KEY_HEADER, MOCK_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn dec_at(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_buy_pays_commission_in_the_base_asset_and_a_sell_in_the_quote_asset() {
    let mock = MockBinance::start();
    // 1 ETH at the ask 3001: commission 0.1% of 1 ETH = 0.001 ETH.
    let buy = market(&mock, "BUY", "1").await;
    assert_eq!(buy["status"], "FILLED", "{buy}");
    let fill = &buy["fills"][0];
    assert_eq!(fill["commissionAsset"], "ETH", "{buy}");
    assert_eq!(dec_at(&fill["commission"]), dec!(0.001));
    assert_eq!(fill["commission"], "0.00100000");
    assert_eq!(mock.balance("ETH").0, dec!(0.999));
    assert_eq!(mock.balance("USDT").0, dec!(10000) - dec!(3001));

    // 0.5 ETH at the bid 2999: 1499.5 USDT, commission 0.1% = 1.4995 USDT.
    let sell = market(&mock, "SELL", "0.5").await;
    let fill = &sell["fills"][0];
    assert_eq!(fill["commissionAsset"], "USDT", "{sell}");
    assert_eq!(dec_at(&fill["commission"]), dec!(1.4995));
    assert_eq!(mock.balance("ETH").0, dec!(0.499));
    assert_eq!(
        mock.balance("USDT").0,
        dec!(10000) - dec!(3001) + dec!(1499.5) - dec!(1.4995)
    );
}
