//! [`DerivativesData`] of the Hyperliquid venue against the loopback mock, with the values
//! of recorded answers (the `allDexsAssetCtxs` contexts of BTC and ETH, the three rows of
//! a recorded `fundingHistory`, a recorded `meta` with `null` flags).

use std::sync::Arc;
use std::time::Duration;

use rust_decimal_macros::dec;

use super::config::HyperliquidConfig;
use super::info;
use super::mock::{MockFunding, MockHyperliquid};
use super::signing::{Network, PrivateKey};
use super::venue::HyperliquidVenue;
use crate::clock::system_clock;
use crate::exchanges::derivatives::{DerivativesData, OiPeriod};
use crate::exchanges::venue::VenueError;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const HOUR: i64 = 3_600_000;

fn mock() -> MockHyperliquid {
    MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    )
}

/// A reads-only venue (no key), as `orrery market` and the agents open it.
fn reader(mock: &MockHyperliquid) -> Arc<HyperliquidVenue> {
    let cfg = HyperliquidConfig {
        network: Network::Testnet,
        base_url: Some(mock.url()),
        wallet_address: PrivateKey::from_hex(KEY).unwrap().address().to_string(),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    Arc::new(HyperliquidVenue::open("hl", &cfg, &|_| None, system_clock()).unwrap())
}

fn info_bodies(mock: &MockHyperliquid, kind: &str) -> Vec<serde_json::Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == "/info")
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|b| b["type"] == kind)
        .collect()
}

#[actix::test]
async fn funding_and_open_interest_come_from_the_asset_contexts() {
    let mock = mock();
    // The recorded contexts of BTC and ETH.
    mock.set_asset_ctx(
        "BTC",
        dec!(-0.0000015186),
        dec!(27353.17682),
        Some(dec!(77562.0)),
        Some(dec!(77605.0)),
    );
    mock.set_asset_ctx(
        "ETH",
        dec!(0.0000125),
        dec!(605822.2557999999),
        Some(dec!(2123.7)),
        Some(dec!(2124.6)),
    );
    let v = reader(&mock);
    let f = v.funding("BTC").await.unwrap();
    assert_eq!(f.symbol, "BTC");
    assert_eq!(f.funding_rate, dec!(-0.0000015186));
    assert_eq!(f.mark_price, dec!(77562));
    assert_eq!(f.index_price, dec!(77605));
    assert_eq!(f.funding_interval_hours, 1);
    // Hourly funding: the next settlement is the next full hour.
    assert_eq!(f.next_funding_time_ms % HOUR, 0);
    assert!(f.next_funding_time_ms > f.time_ms && f.next_funding_time_ms <= f.time_ms + HOUR);
    let eth = v.funding("ETH").await.unwrap();
    assert_eq!(eth.funding_rate, dec!(0.0000125));
    assert_eq!(eth.annualized_pct(), dec!(10.95));
    let oi = v.open_interest("ETH").await.unwrap();
    assert_eq!(oi.open_interest, dec!(605822.2557999999));
    assert_eq!(
        v.open_interest("BTC").await.unwrap().open_interest,
        dec!(27353.17682)
    );
    assert_eq!(info_bodies(&mock, "metaAndAssetCtxs").len(), 4);
    let unknown = v.funding("NOPE").await.unwrap_err();
    assert!(
        matches!(unknown, VenueError::UnknownSymbol { ref symbol, .. } if symbol == "NOPE"),
        "{unknown}"
    );
}

#[actix::test]
async fn funding_history_is_the_settled_rates_oldest_first() {
    let mock = mock();
    // The recorded rows' rates and premiums, settled in the last three hours.
    let last = chrono::Utc::now().timestamp_millis().div_euclid(HOUR) * HOUR;
    mock.set_funding_history(
        "BTC",
        vec![
            MockFunding {
                time: last,
                rate: dec!(0.0000033),
                premium: None,
            },
            MockFunding {
                time: last - 2 * HOUR,
                rate: dec!(0.0000125),
                premium: Some(dec!(0.00029005)),
            },
            MockFunding {
                time: last - HOUR,
                rate: dec!(-0.0000081),
                premium: Some(dec!(-0.000125)),
            },
        ],
    );
    let v = reader(&mock);
    let h = v.funding_history("BTC", 10).await.unwrap();
    let rates: Vec<_> = h.iter().map(|r| r.rate).collect();
    assert_eq!(rates, [dec!(0.0000125), dec!(-0.0000081), dec!(0.0000033)]);
    assert_eq!(h[2].time_ms, last);
    assert!(h
        .iter()
        .all(|r| r.symbol == "BTC" && r.mark_price.is_none()));
    let two = v.funding_history("BTC", 2).await.unwrap();
    assert_eq!(
        two.iter().map(|r| r.rate).collect::<Vec<_>>(),
        [dec!(-0.0000081), dec!(0.0000033)]
    );
    // Asked from `limit` + 1 hours back, by coin.
    let asked = info_bodies(&mock, "fundingHistory");
    assert_eq!(asked[0]["coin"], "BTC");
    let start = asked[0]["startTime"].as_i64().unwrap();
    assert!(
        start <= last - 10 * HOUR && start > last - 12 * HOUR,
        "{start}"
    );
}

#[actix::test]
async fn a_long_funding_history_is_paged_500_rows_at_a_time() {
    let mock = mock();
    let last = chrono::Utc::now().timestamp_millis().div_euclid(HOUR) * HOUR;
    let rows = (0..1200)
        .map(|i| MockFunding {
            time: last - i * HOUR,
            rate: rust_decimal::Decimal::new(i, 8),
            premium: None,
        })
        .collect();
    mock.set_funding_history("ETH", rows);
    let v = reader(&mock);
    let h = v.funding_history("ETH", 1000).await.unwrap();
    assert_eq!(h.len(), 1000);
    assert_eq!(h[999].time_ms, last);
    assert_eq!(h[999].rate, dec!(0));
    assert_eq!(h[0].time_ms, last - 999 * HOUR);
    assert!(h.windows(2).all(|w| w[1].time_ms - w[0].time_ms == HOUR));
    // 1001 hours: two full pages of 500 and the rest.
    assert_eq!(info_bodies(&mock, "fundingHistory").len(), 3);
}

#[actix::test]
async fn open_interest_history_is_a_typed_unsupported_error() {
    let mock = mock();
    let v = reader(&mock);
    let e = v
        .open_interest_history("BTC", OiPeriod::H1, 30)
        .await
        .unwrap_err();
    assert!(matches!(e, VenueError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("open-interest history"), "{e}");
    // Nothing was asked of the venue for it.
    assert!(mock.requests().is_empty());
}

#[test]
fn recorded_meta_with_null_flags_is_read() {
    // The recorded `meta` sample, verbatim in its flags.
    let body = br#"{"universe":[
        {"isDelisted":null,"maxLeverage":40,"name":"BTC","onlyIsolated":null,"szDecimals":5},
        {"isDelisted":null,"maxLeverage":25,"name":"ETH","onlyIsolated":null,"szDecimals":4},
        {"isDelisted":true,"maxLeverage":5,"name":"ATOM","onlyIsolated":null,"szDecimals":2}]}"#;
    let meta = info::parse_meta(body).unwrap();
    assert_eq!(meta.universe.len(), 3);
    assert!(!meta.universe[0].is_delisted && !meta.universe[0].only_isolated);
    assert_eq!(meta.tradable().len(), 2);
}

#[test]
fn a_funding_history_row_of_another_coin_is_inconsistent() {
    let body = br#"[{"coin":"ETH","fundingRate":"0.0000125","premium":"0.00029005","time":1769908800000}]"#;
    assert!(info::parse_funding_history(body, "BTC").is_err());
    let ok = br#"[{"coin":"BTC","fundingRate":"0.0000033","time":1769916000000},
        {"coin":"BTC","fundingRate":"-0.0000081","premium":"-0.00012500","time":1769912400000}]"#;
    let rows = info::parse_funding_history(ok, "BTC").unwrap();
    assert_eq!(rows[0].time, 1769912400000);
    assert_eq!(rows[0].premium, Some(dec!(-0.000125)));
    assert_eq!(rows[1].premium, None);
}
