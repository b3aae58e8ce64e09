//! Behaviour of the paper venue through the `Venue` trait, driven by a manual clock.

use std::io::Write;
use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::market::Top;
use super::*;
use crate::clock::{Clock, ManualClock};

/// 2026-01-01T12:00:00Z.
const T0: Millis = 1_767_268_800_000;

/// Through the real risk gate, with a view that admits the order: these tests are about
/// the venue. Paper fills at its own book, so the reference price is not used.
fn approved(request: &OrderRequest) -> RiskApproved<OrderRequest> {
    crate::exchanges::risk_gate::approve_for_venue_test(request.clone(), Decimal::ONE)
}

fn open_venue(config: &PaperConfig, store: &Store, clock: &Arc<ManualClock>) -> PaperVenue {
    PaperVenue::open("paper", config, store, clock.clone()).unwrap()
}

fn fresh(config: &PaperConfig) -> (PaperVenue, Arc<ManualClock>) {
    let clock = ManualClock::new(T0);
    let store = Store::temporary().unwrap();
    (open_venue(config, &store, &clock), clock)
}

fn request(
    symbol: &str,
    side: Side,
    size: Decimal,
    order_type: OrderType,
    reduce_only: bool,
) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::generate(),
        symbol: symbol.into(),
        side,
        size,
        order_type,
        reduce_only,
        valid_until_ms: None,
    }
}

fn market_order(symbol: &str, side: Side, size: Decimal) -> OrderRequest {
    request(
        symbol,
        side,
        size,
        OrderType::Market {
            max_slippage: dec!(0.05),
        },
        false,
    )
}

fn limit(price: Decimal, tif: TimeInForce) -> OrderType {
    OrderType::Limit { price, tif }
}

fn top_at(v: &PaperVenue, symbol: &str, t: Millis) -> Top {
    v.markets
        .with_market(symbol, |m| m.top(m.step_at(t)))
        .unwrap()
        .unwrap()
}

/// The quotes of the next `steps` steps after `from` (clock time of each step, top).
fn scan(v: &PaperVenue, symbol: &str, from: Millis, steps: i64) -> Vec<(Millis, Top)> {
    v.markets
        .with_market(symbol, |m| {
            let k0 = m.step_at(from);
            (1..=steps)
                .map(|i| (m.time_of(k0 + i), m.top(k0 + i).unwrap()))
                .collect()
        })
        .unwrap()
}

fn bps(x: i64) -> Decimal {
    Decimal::from(x) / Decimal::from(10_000)
}

#[tokio::test]
async fn same_seed_and_clock_give_the_same_market_whatever_the_call_pattern() {
    let config = PaperConfig::default();
    let (a, clock_a) = fresh(&config);
    let (b, clock_b) = fresh(&config);
    // `a` is asked every second, `b` only at the end and for older candles first.
    let mut seen = Vec::new();
    for _ in 0..30 {
        clock_a.advance(1_000);
        seen.push(a.quote("ETH").await.unwrap());
    }
    clock_b.advance(30_000);
    let candles_b = b.candles("ETH", Timeframe::M5, 50).await.unwrap();
    assert_eq!(b.quote("ETH").await.unwrap(), *seen.last().unwrap());
    assert_eq!(
        a.candles("ETH", Timeframe::M5, 50).await.unwrap(),
        candles_b
    );
    assert_eq!(
        a.candles("BTC", Timeframe::H1, 24).await.unwrap(),
        b.candles("BTC", Timeframe::H1, 24).await.unwrap()
    );

    let other = PaperConfig {
        seed: 43,
        ..PaperConfig::default()
    };
    let (c, clock_c) = fresh(&other);
    clock_c.advance(30_000);
    assert_ne!(c.quote("ETH").await.unwrap(), *seen.last().unwrap());
    assert_ne!(
        c.candles("ETH", Timeframe::M5, 50).await.unwrap(),
        candles_b
    );
    // The price does move from second to second.
    assert!(seen.windows(2).any(|w| w[0].bid != w[1].bid));
}

#[tokio::test]
async fn candles_agree_with_quotes_and_across_timeframes() {
    let (v, clock) = fresh(&PaperConfig::default());
    clock.advance(3 * 3_600_000 + 17_345);
    let now = clock.now_ms();
    let tick = v.instrument("BTC").await.unwrap().tick_size;
    let quote = v.quote("BTC").await.unwrap();
    let minutes = v.candles("BTC", Timeframe::M1, 200).await.unwrap();
    assert_eq!(minutes.len(), 200);
    let last = minutes.last().unwrap();
    assert_eq!(last.open_time_ms, now - now % 60_000);
    assert_eq!(last.close, top_at(&v, "BTC", now).mid);
    assert!((last.close - quote.mid()).abs() <= tick);
    for (c, next) in minutes.iter().zip(minutes.iter().skip(1)) {
        assert_eq!(next.open_time_ms - c.open_time_ms, 60_000);
        assert!(c.high >= c.open.max(c.close) && c.low <= c.open.min(c.close));
        assert!(c.volume > Decimal::ZERO);
        // A candle closes where the next one opens.
        assert_eq!(c.close, next.open);
    }
    // An hour candle opens where its first minute opens and closes where its last closes.
    let hours = v.candles("BTC", Timeframe::H1, 3).await.unwrap();
    let first_hour = &hours[0];
    let inside: Vec<&Candle> = minutes
        .iter()
        .filter(|m| {
            m.open_time_ms >= first_hour.open_time_ms
                && m.open_time_ms < first_hour.open_time_ms + 3_600_000
        })
        .collect();
    assert_eq!(inside.len(), 60);
    assert_eq!(first_hour.open, inside[0].open);
    assert_eq!(first_hour.close, inside[59].close);
    // The 1 s path and the daily candles are the same path: a day's open is the quote mid
    // at that midnight.
    let days = v.candles("BTC", Timeframe::D1, 100).await.unwrap();
    assert_eq!(days.len(), 100);
    let day = &days[40];
    assert_eq!(day.open, top_at(&v, "BTC", day.open_time_ms).mid);
    assert_eq!(days.last().unwrap().close, last.close);
    let weeks = v.candles("BTC", Timeframe::W1, 100).await.unwrap();
    assert_eq!(weeks.len(), 100);
    assert!(weeks
        .iter()
        .all(|w| w.low > Decimal::ZERO && w.high >= w.low));
    assert!(matches!(
        v.candles("BTC", Timeframe::M1, 100_000).await,
        Err(VenueError::InvalidRequest { .. })
    ));
    assert!(matches!(
        v.candles("DOGE", Timeframe::M1, 10).await,
        Err(VenueError::UnknownSymbol { .. })
    ));
}

#[tokio::test]
async fn market_buy_fills_at_ask_plus_slippage_with_taker_fee() {
    let config = PaperConfig::default();
    let (v, _clock) = fresh(&config);
    let quote = v.quote("ETH").await.unwrap();
    let order = v
        .place_order(&approved(&market_order("ETH", Side::Buy, dec!(1.5))))
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    assert_eq!(order.filled_size, dec!(1.5));
    let slipped = quote.ask * (Decimal::ONE + bps(5));
    let expected = (slipped / dec!(0.1)).ceil() * dec!(0.1);
    assert_eq!(order.avg_fill_price, Some(expected));
    assert!(expected > quote.ask);

    let fills = v.fills_since(0).await.unwrap();
    assert_eq!(fills.len(), 1);
    let fee = dec!(1.5) * expected * dec!(4.5) / dec!(10000);
    assert_eq!(fills[0].fee, fee);
    assert_eq!(fills[0].closed_pnl, Decimal::ZERO);
    assert_eq!(fills[0].client_id.as_ref(), order.client_id.as_ref());

    let positions = v.positions().await.unwrap();
    assert_eq!(positions.len(), 1);
    let p = &positions[0];
    assert_eq!(
        (p.symbol.as_str(), p.size, p.entry_price),
        ("ETH", dec!(1.5), expected)
    );
    assert_eq!(p.unrealized_pnl, dec!(1.5) * (p.mark_price - expected));
    assert_eq!(p.leverage, 1);
    assert_eq!(p.margin_used, dec!(1.5) * p.mark_price);

    let account = v.account().await.unwrap();
    assert_eq!(account.account_value, dec!(10000) - fee + p.unrealized_pnl);
    assert_eq!(account.margin_used, p.margin_used);
    assert_eq!(
        account.free_balance,
        account.account_value - account.margin_used
    );
}

#[tokio::test]
async fn increase_reduce_flip_close_pnl_is_exact() {
    let config = PaperConfig {
        max_leverage: 10,
        ..PaperConfig::default()
    };
    let (v, clock) = fresh(&config);
    v.set_leverage("BTC", 10).await.unwrap();
    let mut fills = Vec::new();
    for (side, size) in [
        (Side::Buy, dec!(0.1)),
        (Side::Buy, dec!(0.05)),
        (Side::Sell, dec!(0.03)),
        (Side::Sell, dec!(0.2)),
        (Side::Buy, dec!(0.08)),
    ] {
        clock.advance(37_000);
        let o = v
            .place_order(&approved(&market_order("BTC", side, size)))
            .await
            .unwrap();
        assert_eq!(o.status, OrderStatus::Filled);
        fills.push((size, o.avg_fill_price.unwrap()));
    }
    let [(s1, p1), (s2, p2), (s3, p3), (s4, p4), (s5, p5)] = fills[..] else {
        unreachable!()
    };
    let entry = (s1 * p1 + s2 * p2) / (s1 + s2);
    // The flip leaves a short exactly as large as the final buy.
    assert_eq!(s4 - (s1 + s2 - s3), s5);
    let expected_pnl = [
        Decimal::ZERO,
        Decimal::ZERO,
        s3 * (p3 - entry),
        // The flip closes the remaining 0.12 long and opens 0.08 short at p4.
        (s1 + s2 - s3) * (p4 - entry),
        // Closing the short opened at p4.
        s5 * (p4 - p5),
    ];
    let recorded = v.fills_since(0).await.unwrap();
    let pnl: Vec<Decimal> = recorded.iter().map(|f| f.closed_pnl).collect();
    assert_eq!(pnl, expected_pnl);
    assert!(v.positions().await.unwrap().is_empty());
    let fees: Decimal = recorded.iter().map(|f| f.fee).sum();
    let account = v.account().await.unwrap();
    assert_eq!(
        account.account_value,
        dec!(10000) + expected_pnl.iter().sum::<Decimal>() - fees
    );
    assert_eq!(account.unrealized_pnl, Decimal::ZERO);
}

#[tokio::test]
async fn position_entry_follows_increase_and_flip() {
    let (v, clock) = fresh(&PaperConfig::default());
    v.set_leverage("SOL", 5).await.unwrap();
    let a = v
        .place_order(&approved(&market_order("SOL", Side::Sell, dec!(10))))
        .await
        .unwrap();
    clock.advance(120_000);
    let b = v
        .place_order(&approved(&market_order("SOL", Side::Sell, dec!(5))))
        .await
        .unwrap();
    let p = v.positions().await.unwrap().remove(0);
    let (pa, pb) = (a.avg_fill_price.unwrap(), b.avg_fill_price.unwrap());
    assert_eq!(p.size, dec!(-15));
    assert_eq!(p.entry_price, (dec!(10) * pa + dec!(5) * pb) / dec!(15));
    clock.advance(60_000);
    let c = v
        .place_order(&approved(&market_order("SOL", Side::Buy, dec!(20))))
        .await
        .unwrap();
    let p = v.positions().await.unwrap().remove(0);
    assert_eq!(p.size, dec!(5));
    assert_eq!(p.entry_price, c.avg_fill_price.unwrap());
    assert_eq!(p.margin_used, dec!(5) * p.mark_price / dec!(5));
}

#[tokio::test]
async fn resting_limit_fills_when_a_later_quote_crosses() {
    let (v, clock) = fresh(&PaperConfig::default());
    let now = clock.now_ms();
    let current = top_at(&v, "BTC", now);
    // The lowest ask of the next ten minutes, first reached at `hit`.
    let ahead = scan(&v, "BTC", now, 600);
    let (hit, best) = ahead
        .iter()
        .min_by(|x, y| x.1.ask.cmp(&y.1.ask).then(x.0.cmp(&y.0)))
        .map(|(t, top)| (*t, top.ask))
        .unwrap();
    assert!(best < current.ask, "the path should dip within ten minutes");
    let req = request(
        "BTC",
        Side::Buy,
        dec!(0.01),
        limit(best, TimeInForce::Gtc),
        false,
    );
    let placed = v.place_order(&approved(&req)).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Acked);
    assert_eq!(v.open_orders().await.unwrap().len(), 1);

    clock.set(hit - 1_000);
    let before = v.query_order("BTC", &req.client_id).await.unwrap().unwrap();
    assert_eq!(before.status, OrderStatus::Acked);

    clock.set(hit + 5_000);
    // Any call advances the book; here a quote.
    v.quote("BTC").await.unwrap();
    let after = v.query_order("BTC", &req.client_id).await.unwrap().unwrap();
    assert_eq!(after.status, OrderStatus::Filled);
    assert_eq!(after.avg_fill_price, Some(best));
    let fills = v.fills_since(now).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].time_ms, hit);
    assert_eq!(fills[0].fee, dec!(0.01) * best * dec!(1.5) / dec!(10000));
    assert!(v.open_orders().await.unwrap().is_empty());
    assert_eq!(v.positions().await.unwrap()[0].size, dec!(0.01));
}

#[tokio::test]
async fn cancel_and_query_by_client_id() {
    let (v, _clock) = fresh(&PaperConfig::default());
    let bid = v.quote("ETH").await.unwrap().bid;
    let price = ((bid * dec!(0.9)) / dec!(0.1)).floor() * dec!(0.1);
    let req = request(
        "ETH",
        Side::Buy,
        dec!(0.1),
        limit(price, TimeInForce::Gtc),
        false,
    );
    v.place_order(&approved(&req)).await.unwrap();
    let before = v.account().await.unwrap();
    assert_eq!(before.margin_used, dec!(0.1) * price);
    v.cancel_order("ETH", &req.client_id).await.unwrap();
    assert!(v.open_orders().await.unwrap().is_empty());
    let q = v.query_order("ETH", &req.client_id).await.unwrap().unwrap();
    assert_eq!(q.status, OrderStatus::Cancelled);
    assert_eq!(v.account().await.unwrap().margin_used, Decimal::ZERO);
    // Cancelling twice is harmless; unknown ids are reported as such.
    v.cancel_order("ETH", &req.client_id).await.unwrap();
    let unknown = ClientOrderId::generate();
    assert!(matches!(
        v.cancel_order("ETH", &unknown).await,
        Err(VenueError::OrderNotFound { .. })
    ));
    assert_eq!(v.query_order("ETH", &unknown).await.unwrap(), None);
    // A filled order cannot be cancelled.
    let filled = market_order("ETH", Side::Buy, dec!(0.1));
    v.place_order(&approved(&filled)).await.unwrap();
    assert!(matches!(
        v.cancel_order("ETH", &filled.client_id).await,
        Err(VenueError::Rejected { .. })
    ));
}

#[tokio::test]
async fn ioc_remainder_is_cancelled_and_alo_never_crosses() {
    let config = PaperConfig {
        top_of_book_usd: dec!(1000),
        ..PaperConfig::default()
    };
    let (v, _clock) = fresh(&config);
    v.set_leverage("ETH", 10).await.unwrap();
    let quote = v.quote("ETH").await.unwrap();
    let through = quote.ask + dec!(20);
    let ioc = request(
        "ETH",
        Side::Buy,
        dec!(1),
        limit(through, TimeInForce::Ioc),
        false,
    );
    let o = v.place_order(&approved(&ioc)).await.unwrap();
    let price = o.avg_fill_price.unwrap();
    assert!(price <= through);
    assert_eq!(
        o.filled_size,
        (dec!(1000) / price / dec!(0.0001)).floor() * dec!(0.0001)
    );
    assert!(o.filled_size > Decimal::ZERO && o.filled_size < dec!(1));
    assert_eq!(o.status, OrderStatus::Cancelled);
    assert!(v.open_orders().await.unwrap().is_empty());

    // Not marketable at all: nothing fills.
    let below = request(
        "ETH",
        Side::Buy,
        dec!(1),
        limit(quote.bid - dec!(50), TimeInForce::Ioc),
        false,
    );
    let o = v.place_order(&approved(&below)).await.unwrap();
    assert_eq!(
        (o.status, o.filled_size),
        (OrderStatus::Cancelled, Decimal::ZERO)
    );

    // The same order as GTC keeps its remainder resting.
    let gtc = request(
        "ETH",
        Side::Buy,
        dec!(1),
        limit(through, TimeInForce::Gtc),
        false,
    );
    let o = v.place_order(&approved(&gtc)).await.unwrap();
    assert_eq!(o.status, OrderStatus::PartiallyFilled);
    assert_eq!(v.open_orders().await.unwrap().len(), 1);

    let alo = request(
        "ETH",
        Side::Sell,
        dec!(1),
        limit(quote.bid - dec!(1), TimeInForce::Alo),
        false,
    );
    assert!(matches!(
        v.place_order(&approved(&alo)).await,
        Err(VenueError::Rejected { .. })
    ));
    assert_eq!(v.query_order("ETH", &alo.client_id).await.unwrap(), None);
}

#[tokio::test]
async fn market_order_respects_max_slippage() {
    let (v, _clock) = fresh(&PaperConfig::default());
    let tight = request(
        "BTC",
        Side::Buy,
        dec!(0.01),
        OrderType::Market {
            max_slippage: dec!(0.0001),
        },
        false,
    );
    assert!(matches!(
        v.place_order(&approved(&tight)).await,
        Err(VenueError::Rejected { .. })
    ));
    assert!(v.positions().await.unwrap().is_empty());
}

#[tokio::test]
async fn stop_loss_trigger_fires_when_the_price_falls_through() {
    let (v, clock) = fresh(&PaperConfig::default());
    v.place_order(&approved(&market_order("BTC", Side::Buy, dec!(0.01))))
        .await
        .unwrap();
    let now = clock.now_ms();
    let mid = top_at(&v, "BTC", now).mid;
    let ahead = scan(&v, "BTC", now, 900);
    let (hit, low) = ahead
        .iter()
        .min_by(|x, y| x.1.mid.cmp(&y.1.mid).then(x.0.cmp(&y.0)))
        .map(|(t, top)| (*t, top.mid))
        .unwrap();
    assert!(low < mid);
    let stop = request(
        "BTC",
        Side::Sell,
        dec!(0.01),
        OrderType::Trigger {
            trigger_price: low,
            kind: TriggerKind::StopLoss,
            limit_price: None,
        },
        true,
    );
    assert_eq!(
        v.place_order(&approved(&stop)).await.unwrap().status,
        OrderStatus::Acked
    );
    clock.set(hit - 1_000);
    assert_eq!(v.positions().await.unwrap()[0].size, dec!(0.01));
    clock.set(hit + 60_000);
    assert!(v.positions().await.unwrap().is_empty());
    let o = v
        .query_order("BTC", &stop.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    let bid = top_at(&v, "BTC", hit).bid;
    let expected = (bid * (Decimal::ONE - bps(5))).floor();
    assert_eq!(o.avg_fill_price, Some(expected));
    let fills = v.fills_since(hit).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].time_ms, hit);
}

#[tokio::test]
async fn insufficient_balance_and_leverage_bounds() {
    let (v, _clock) = fresh(&PaperConfig::default());
    let big = market_order("BTC", Side::Buy, dec!(1));
    assert!(matches!(
        v.place_order(&approved(&big)).await,
        Err(VenueError::InsufficientBalance { .. })
    ));
    assert!(v.positions().await.unwrap().is_empty());
    assert!(matches!(
        v.set_leverage("BTC", 41).await,
        Err(VenueError::InvalidRequest { .. })
    ));
    assert!(matches!(
        v.set_leverage("BTC", 0).await,
        Err(VenueError::InvalidRequest { .. })
    ));
    v.set_leverage("BTC", 10).await.unwrap();
    // The same client id may be reused after a refusal: nothing was placed.
    v.place_order(&approved(&big)).await.unwrap();
    let p = v.positions().await.unwrap().remove(0);
    assert_eq!(p.margin_used, p.mark_price / dec!(10));
    // Back to 1x would need ~60000 USD of margin.
    assert!(matches!(
        v.set_leverage("BTC", 1).await,
        Err(VenueError::InsufficientBalance { .. })
    ));
    assert_eq!(v.positions().await.unwrap()[0].leverage, 10);
}

#[tokio::test]
async fn reduce_only_never_grows_or_flips() {
    let (v, _clock) = fresh(&PaperConfig::default());
    let nothing = request(
        "SOL",
        Side::Sell,
        dec!(1),
        OrderType::Market {
            max_slippage: dec!(0.05),
        },
        true,
    );
    assert!(matches!(
        v.place_order(&approved(&nothing)).await,
        Err(VenueError::Rejected { .. })
    ));
    v.place_order(&approved(&market_order("SOL", Side::Buy, dec!(2))))
        .await
        .unwrap();
    let same_way = request(
        "SOL",
        Side::Buy,
        dec!(1),
        OrderType::Market {
            max_slippage: dec!(0.05),
        },
        true,
    );
    assert!(matches!(
        v.place_order(&approved(&same_way)).await,
        Err(VenueError::Rejected { .. })
    ));
    let too_big = request(
        "SOL",
        Side::Sell,
        dec!(5),
        OrderType::Market {
            max_slippage: dec!(0.05),
        },
        true,
    );
    let o = v.place_order(&approved(&too_big)).await.unwrap();
    assert_eq!(o.filled_size, dec!(2));
    assert!(v.positions().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_orders_are_refused_and_never_filled_twice() {
    let (v, _clock) = fresh(&PaperConfig::default());
    let cases = [
        market_order("BTC", Side::Buy, dec!(0)),
        market_order("BTC", Side::Buy, dec!(-0.01)),
        market_order("BTC", Side::Buy, dec!(0.000015)),
        market_order("BTC", Side::Buy, dec!(0.0001)), // about 6 USD, below 10
        request(
            "BTC",
            Side::Buy,
            dec!(0.01),
            limit(dec!(50000.5), TimeInForce::Gtc),
            false,
        ),
        request(
            "BTC",
            Side::Buy,
            dec!(0.01),
            limit(dec!(-1), TimeInForce::Gtc),
            false,
        ),
        request(
            "BTC",
            Side::Buy,
            dec!(0.01),
            OrderType::Market {
                max_slippage: dec!(-0.1),
            },
            false,
        ),
    ];
    for case in &cases {
        let err = v.place_order(&approved(case)).await.unwrap_err();
        assert!(
            matches!(err, VenueError::InvalidRequest { .. }),
            "{case:?}: {err}"
        );
    }
    assert!(matches!(
        v.place_order(&approved(&market_order("DOGE", Side::Buy, dec!(1))))
            .await,
        Err(VenueError::UnknownSymbol { .. })
    ));
    let once = market_order("BTC", Side::Buy, dec!(0.01));
    v.place_order(&approved(&once)).await.unwrap();
    let err = v.place_order(&approved(&once)).await.unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert_eq!(v.positions().await.unwrap()[0].size, dec!(0.01));
    assert_eq!(v.fills_since(0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn reopening_the_store_continues_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = PaperConfig::default();
    let (resting, fills, positions, account, quote) = {
        let store = Store::open(dir.path()).unwrap();
        let v = open_venue(&config, &store, &clock);
        v.set_leverage("ETH", 3).await.unwrap();
        v.place_order(&approved(&market_order("ETH", Side::Buy, dec!(2))))
            .await
            .unwrap();
        let bid = v.quote("ETH").await.unwrap().bid;
        let resting = request(
            "ETH",
            Side::Buy,
            dec!(0.5),
            limit((bid * dec!(0.8)).floor(), TimeInForce::Gtc),
            false,
        );
        v.place_order(&approved(&resting)).await.unwrap();
        clock.advance(10_000);
        (
            resting,
            v.fills_since(0).await.unwrap(),
            v.positions().await.unwrap(),
            v.account().await.unwrap(),
            v.quote("ETH").await.unwrap(),
        )
    };
    // Everything dropped: sled is closed. A different starting balance must not apply.
    let reconfigured = PaperConfig {
        starting_balance_usd: dec!(99999),
        ..config
    };
    let store = Store::open(dir.path()).unwrap();
    let v = open_venue(&reconfigured, &store, &clock);
    assert_eq!(v.fills_since(0).await.unwrap(), fills);
    assert_eq!(v.positions().await.unwrap(), positions);
    assert_eq!(v.account().await.unwrap(), account);
    assert_eq!(v.quote("ETH").await.unwrap(), quote);
    let open = v.open_orders().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].client_id.as_ref(), Some(&resting.client_id));
    // The reopened account keeps issuing fresh ids and refusing reused client ids.
    let err = v.place_order(&approved(&resting)).await.unwrap_err();
    assert!(matches!(err, VenueError::InvalidRequest { .. }));
    let more = v
        .place_order(&approved(&market_order("ETH", Side::Buy, dec!(0.1))))
        .await
        .unwrap();
    assert!(fills
        .iter()
        .all(|f| f.venue_order_id != more.venue_order_id));
    assert_eq!(v.fills_since(0).await.unwrap().len(), fills.len() + 1);
}

#[tokio::test]
async fn replayed_csv_drives_quotes_and_candles() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "timestamp,open,high,low,close,volume\n\
         2025-06-01T00:00:00Z,100,102,99,101,10\n\
         2025-06-01T00:01:00Z,101,101.5,97,98,20\n\
         2025-06-01T00:02:00Z,98,103,98,103,30\n"
    )
    .unwrap();
    let mut config = PaperConfig::default();
    config.symbols.insert(
        "XYZ".into(),
        PaperSymbolConfig {
            tick_size: Some(dec!(0.01)),
            lot_size: Some(dec!(0.1)),
            replay_csv: Some(file.path().to_path_buf()),
            ..PaperSymbolConfig::default()
        },
    );
    // The first row plays at 00:00 UTC of the account's creation day.
    let midnight = T0 - T0 % 86_400_000;
    let clock = ManualClock::new(midnight);
    let store = Store::temporary().unwrap();
    let v = open_venue(&config, &store, &clock);
    assert_eq!(v.quote("XYZ").await.unwrap().mid(), dec!(100));
    clock.set(midnight + 60_000);
    assert_eq!(top_at(&v, "XYZ", clock.now_ms()).mid, dec!(101));
    clock.set(midnight + 120_000 + 59_000);
    let candles = v.candles("XYZ", Timeframe::M1, 3).await.unwrap();
    let ohlc: Vec<_> = candles.iter().map(|c| (c.open, c.high, c.low)).collect();
    assert_eq!(
        ohlc,
        vec![
            (dec!(100), dec!(102), dec!(99)),
            (dec!(101), dec!(101.5), dec!(97)),
            (dec!(98), dec!(103), dec!(98))
        ]
    );
    let closes: Vec<_> = candles.iter().map(|c| c.close).collect();
    assert_eq!(closes, vec![dec!(101), dec!(98), dec!(103)]);
    assert!(candles[1].volume > dec!(19.8) && candles[1].volume <= dec!(20));
    // After the file ends it loops.
    clock.set(midnight + 180_000);
    assert_eq!(v.quote("XYZ").await.unwrap().mid(), dec!(100));

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    write!(
        bad,
        "timestamp,open,high,low,close,volume\n0,1,1,1,1,1\n60000,1,1,1,1\n"
    )
    .unwrap();
    config.symbols.get_mut("XYZ").unwrap().replay_csv = Some(bad.path().to_path_buf());
    let err = PaperVenue::open("paper", &config, &store, clock.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 3") && err.contains("replay_csv"),
        "{err}"
    );
}

#[test]
fn config_validation_names_the_bad_keys() {
    let mut issues = Issues::default();
    PaperConfig::default().validate("exchanges.paper", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");

    let mut config = PaperConfig {
        fee_taker_bps: dec!(-1),
        spread_bps: dec!(10000),
        max_leverage: 101,
        default_leverage: 0,
        volatility_annual: f64::NAN,
        step: std::time::Duration::from_millis(7_000),
        starting_balance_usd: dec!(0),
        ..PaperConfig::default()
    };
    config.symbols.insert(
        "BTC".into(),
        PaperSymbolConfig {
            initial_price: Some(dec!(-5)),
            tick_size: Some(dec!(0)),
            max_leverage: Some(0),
            replay_csv: Some("/nonexistent/btc.csv".into()),
            ..PaperSymbolConfig::default()
        },
    );
    config
        .symbols
        .insert("NEW".into(), PaperSymbolConfig::default());
    let mut issues = Issues::default();
    config.validate("exchanges.paper", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "exchanges.paper.fee_taker_bps",
        "exchanges.paper.spread_bps",
        "exchanges.paper.max_leverage",
        "exchanges.paper.default_leverage",
        "exchanges.paper.volatility_annual",
        "exchanges.paper.step",
        "exchanges.paper.starting_balance_usd",
        "exchanges.paper.symbols.BTC.initial_price",
        "exchanges.paper.symbols.BTC.tick_size",
        "exchanges.paper.symbols.BTC.max_leverage",
        "exchanges.paper.symbols.BTC.replay_csv",
        "exchanges.paper.symbols.NEW.initial_price",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(keys.len(), 12, "{keys:?}");
    let err = PaperVenue::open(
        "paper",
        &config,
        &Store::temporary().unwrap(),
        ManualClock::new(T0),
    )
    .unwrap_err();
    assert!(matches!(err, PaperError::Config { .. }));
}

#[test]
fn config_reads_from_serde_with_defaults_and_rejects_unknown_keys() {
    let config: PaperConfig = serde_json::from_str(
        r#"{"seed": 7, "step": "250ms", "symbols": {"DOGE": {"initial_price": "0.15"}}}"#,
    )
    .unwrap();
    assert_eq!(config.seed, 7);
    assert_eq!(config.step, std::time::Duration::from_millis(250));
    assert_eq!(config.starting_balance_usd, dec!(10000));
    let rules = config.rules();
    assert_eq!(rules.keys().collect::<Vec<_>>(), vec!["DOGE"]);
    let doge = &rules["DOGE"].instrument;
    assert_eq!(
        (doge.tick_size, doge.lot_size, doge.max_leverage),
        (dec!(0.00001), dec!(1), 50)
    );
    let btc = &PaperConfig::default().rules()["BTC"].instrument;
    assert_eq!(
        (btc.tick_size, btc.lot_size, btc.max_leverage),
        (dec!(1), dec!(0.00001), 40)
    );
    assert!(serde_json::from_str::<PaperConfig>(r#"{"sped": "1s"}"#).is_err());
    assert!(serde_json::from_str::<PaperConfig>(r#"{"symbols": {"BTC": {"tick": "1"}}}"#).is_err());
}

#[tokio::test]
async fn market_anchor_survives_a_restart_on_another_day() {
    let config = PaperConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (control, control_clock) = fresh(&config);
    {
        let store = Store::open(dir.path()).unwrap();
        let v = open_venue(&config, &store, &clock);
        assert_eq!(
            v.quote("SOL").await.unwrap(),
            control.quote("SOL").await.unwrap()
        );
    }
    // Two days later the reopened account prices the market exactly as a venue that never
    // stopped, because the path stays anchored at the account's creation day.
    clock.advance(2 * 86_400_000 + 1_234);
    control_clock.advance(2 * 86_400_000 + 1_234);
    let store = Store::open(dir.path()).unwrap();
    let v = open_venue(&config, &store, &clock);
    assert_eq!(
        v.quote("SOL").await.unwrap(),
        control.quote("SOL").await.unwrap()
    );
    assert_eq!(
        v.candles("SOL", Timeframe::H4, 30).await.unwrap(),
        control.candles("SOL", Timeframe::H4, 30).await.unwrap()
    );
}

#[tokio::test]
async fn resting_orders_fill_during_downtime() {
    let config = PaperConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (req, hit, best) = {
        let store = Store::open(dir.path()).unwrap();
        let v = open_venue(&config, &store, &clock);
        let now = clock.now_ms();
        let (hit, best) = scan(&v, "ETH", now, 1_200)
            .into_iter()
            .max_by(|x, y| x.1.bid.cmp(&y.1.bid).then(y.0.cmp(&x.0)))
            .map(|(t, top)| (t, top.bid))
            .unwrap();
        assert!(best > top_at(&v, "ETH", now).bid);
        // A short: sell 0.1 ETH at the highest bid of the next 20 minutes.
        v.set_leverage("ETH", 2).await.unwrap();
        let req = request(
            "ETH",
            Side::Sell,
            dec!(0.1),
            limit(best, TimeInForce::Gtc),
            false,
        );
        v.place_order(&approved(&req)).await.unwrap();
        (req, hit, best)
    };
    clock.set(hit + 600_000);
    let store = Store::open(dir.path()).unwrap();
    let v = open_venue(&config, &store, &clock);
    let o = v.query_order("ETH", &req.client_id).await.unwrap().unwrap();
    assert_eq!(
        (o.status, o.avg_fill_price),
        (OrderStatus::Filled, Some(best))
    );
    let fills = v.fills_since(0).await.unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].time_ms, hit);
    assert_eq!(v.positions().await.unwrap()[0].size, dec!(-0.1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_are_all_recorded_durably() {
    let config = PaperConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (fills, account) = {
        let store = Store::open(dir.path()).unwrap();
        let v = Arc::new(open_venue(&config, &store, &clock));
        v.set_leverage("BTC", 10).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let v = v.clone();
                tokio::spawn(async move {
                    v.place_order(&approved(&market_order("BTC", Side::Buy, dec!(0.001))))
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().status, OrderStatus::Filled);
        }
        (v.fills_since(0).await.unwrap(), v.account().await.unwrap())
    };
    assert_eq!(fills.len(), 16);
    let store = Store::open(dir.path()).unwrap();
    let v = open_venue(&config, &store, &clock);
    assert_eq!(v.fills_since(0).await.unwrap(), fills);
    assert_eq!(v.account().await.unwrap(), account);
    assert_eq!(v.positions().await.unwrap()[0].size, dec!(0.016));
}

#[tokio::test]
async fn fills_missing_from_the_account_record_are_reapplied_on_open() {
    let config = PaperConfig::default();
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let v = open_venue(&config, &store, &clock);
    let tree = store.tree::<PaperRecord>(trees::PAPER).unwrap();
    let before = tree.get("paper/account").unwrap().unwrap();
    let first = v
        .place_order(&approved(&market_order("ETH", Side::Buy, dec!(1))))
        .await
        .unwrap();
    let positions = v.positions().await.unwrap();
    let account = v.account().await.unwrap();
    drop(v);
    // As if the process died after writing the fill and the order but not the account.
    tree.put_durable_blocking("paper/account", &before).unwrap();
    let v = open_venue(&config, &store, &clock);
    assert_eq!(v.positions().await.unwrap(), positions);
    assert_eq!(v.account().await.unwrap(), account);
    let second = v
        .place_order(&approved(&market_order("ETH", Side::Buy, dec!(1))))
        .await
        .unwrap();
    assert_ne!(first.venue_order_id, second.venue_order_id);
    let ids: Vec<String> = v
        .fills_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.fill_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn reopening_without_a_held_symbol_is_refused() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let v = open_venue(&PaperConfig::default(), &store, &clock);
    v.place_order(&approved(&market_order("SOL", Side::Buy, dec!(1))))
        .await
        .unwrap();
    drop(v);
    let mut config = PaperConfig::default();
    config.symbols.remove("SOL");
    let err = PaperVenue::open("paper", &config, &store, clock.clone()).unwrap_err();
    assert!(err.to_string().contains("`SOL`"), "{err}");
    // Another account name in the same store is independent and starts fresh.
    let other = PaperVenue::open("paper2", &config, &store, clock.clone()).unwrap();
    assert!(other.positions().await.unwrap().is_empty());
    assert_eq!(other.account().await.unwrap().account_value, dec!(10000));
}

#[tokio::test]
async fn resting_reduce_only_trigger_is_cancelled_once_the_position_is_gone() {
    let (v, clock) = fresh(&PaperConfig::default());
    v.place_order(&approved(&market_order("BTC", Side::Buy, dec!(0.01))))
        .await
        .unwrap();
    let now = clock.now_ms();
    let (hit, high) = scan(&v, "BTC", now, 900)
        .into_iter()
        .max_by(|x, y| x.1.mid.cmp(&y.1.mid).then(y.0.cmp(&x.0)))
        .map(|(t, top)| (t, top.mid))
        .unwrap();
    assert!(high > top_at(&v, "BTC", now).mid);
    let take_profit = request(
        "BTC",
        Side::Sell,
        dec!(0.01),
        OrderType::Trigger {
            trigger_price: high,
            kind: TriggerKind::TakeProfit,
            limit_price: None,
        },
        true,
    );
    v.place_order(&approved(&take_profit)).await.unwrap();
    // The reserve of a reduce-only order is nothing: it can only free margin.
    let margin = v.account().await.unwrap().margin_used;
    assert_eq!(margin, v.positions().await.unwrap()[0].margin_used);
    // The position is closed by hand before the take profit fires.
    v.place_order(&approved(&market_order("BTC", Side::Sell, dec!(0.01))))
        .await
        .unwrap();
    clock.set(hit + 1_000);
    let o = v
        .query_order("BTC", &take_profit.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (o.status, o.filled_size),
        (OrderStatus::Cancelled, Decimal::ZERO)
    );
    assert!(o.reject_reason.unwrap().contains("reduce-only"));
    assert!(v.positions().await.unwrap().is_empty());
    assert_eq!(v.fills_since(0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_order_still_persists_fills_found_while_advancing() {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(T0);
    let v = open_venue(&PaperConfig::default(), &store, &clock);
    let now = clock.now_ms();
    let (hit, best) = scan(&v, "BTC", now, 600)
        .into_iter()
        .min_by(|x, y| x.1.ask.cmp(&y.1.ask).then(x.0.cmp(&y.0)))
        .map(|(t, top)| (t, top.ask))
        .unwrap();
    let resting = request(
        "BTC",
        Side::Buy,
        dec!(0.01),
        limit(best, TimeInForce::Gtc),
        false,
    );
    v.place_order(&approved(&resting)).await.unwrap();
    clock.set(hit + 1_000);
    // The first call after the crossing is a refused order; the crossing's fill must still
    // reach the stored account record.
    let refused = request(
        "BTC",
        Side::Buy,
        dec!(0.01),
        OrderType::Market {
            max_slippage: Decimal::ZERO,
        },
        false,
    );
    assert!(matches!(
        v.place_order(&approved(&refused)).await,
        Err(VenueError::Rejected { .. })
    ));
    let tree = store.tree::<PaperRecord>(trees::PAPER).unwrap();
    let Some(PaperRecord::Account(stored)) = tree.get("paper/account").unwrap() else {
        panic!("no account record");
    };
    assert_eq!(stored.next_fill_seq, 1);
    assert_eq!(stored.positions["BTC"].size, dec!(0.01));
}
