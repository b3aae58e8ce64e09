use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::exchanges::{Candle, Position};
use crate::models::decision::{parse_risk_verdict, parse_trade_decision};

/// Candles whose closes take the given steps from 100.
fn candles(steps: impl IntoIterator<Item = Decimal>) -> Vec<Candle> {
    let mut close = dec!(100);
    let mut out = vec![];
    for (i, step) in std::iter::once(Decimal::ZERO).chain(steps).enumerate() {
        close += step;
        out.push(Candle {
            open_time_ms: i as i64 * 60_000,
            open: close - step,
            high: close.max(close - step),
            low: close.min(close - step),
            close,
            volume: dec!(10),
        });
    }
    out
}

/// A trend with pullbacks: `up` then `down`, repeated, so RSI stays out of the extremes.
fn zigzag(up: Decimal, down: Decimal, n: usize) -> Vec<Candle> {
    candles((0..n).map(|i| if i % 2 == 0 { up } else { -down }))
}

fn position(size: Decimal, upnl: Decimal) -> Position {
    Position {
        symbol: "BTC".into(),
        size,
        entry_price: dec!(100),
        mark_price: dec!(100),
        unrealized_pnl: upnl,
        leverage: 1,
        liquidation_price: None,
        margin_used: dec!(100),
    }
}

fn market(candles: Vec<Candle>, position: Option<Position>) -> MarketContext {
    let price = candles.last().map_or(Decimal::ZERO, |c| c.close);
    MarketContext {
        venue: "paper".into(),
        symbol: "BTC".into(),
        timeframe: "15m".into(),
        price,
        candles,
        position,
        account_value: dec!(10000),
        signals: Vec::new(),
    }
}

fn trade_request(ctx: MarketContext) -> ModelRequest {
    let mut req = ModelRequest::new(
        "default",
        Purpose::TradeDecision,
        "ignored prose: SELL SELL",
    );
    req.context = Some(StructuredContext::Market(ctx));
    req
}

fn uptrend() -> Vec<Candle> {
    zigzag(dec!(2), dec!(1), 40)
}
fn downtrend() -> Vec<Candle> {
    zigzag(dec!(-2), dec!(-1), 40)
}

#[test]
fn uptrend_when_flat_is_a_buy_with_the_numbers_in_the_reason() {
    let d = decide_trade(&market(uptrend(), None));
    assert_eq!(d.action, TradeAction::Buy, "{d:?}");
    assert!(d.confidence > 0.5 && d.confidence <= 0.95, "{d:?}");
    assert!(
        d.reason.contains("SMA9") && d.reason.contains("RSI14"),
        "{}",
        d.reason
    );
}

#[test]
fn downtrend_when_flat_is_a_sell() {
    let d = decide_trade(&market(downtrend(), None));
    assert_eq!(d.action, TradeAction::Sell, "{d:?}");
    assert!(d.confidence > 0.5, "{d:?}");
}

#[test]
fn a_flat_market_is_nothing_with_high_confidence() {
    let d = decide_trade(&market(candles(vec![Decimal::ZERO; 40]), None));
    assert_eq!(d.action, TradeAction::Nothing);
    assert_eq!(d.confidence, 0.9);
    let chop = decide_trade(&market(zigzag(dec!(1), dec!(1), 40), None));
    assert_eq!(chop.action, TradeAction::Nothing, "{chop:?}");
}

#[test]
fn overbought_without_pullbacks_is_not_chased() {
    let straight_up = decide_trade(&market(candles(vec![dec!(1); 40]), None));
    assert_eq!(straight_up.action, TradeAction::Nothing, "{straight_up:?}");
    assert!(
        straight_up.reason.contains("RSI14 100.0"),
        "{}",
        straight_up.reason
    );
}

#[test]
fn decisions_depend_on_the_position() {
    let long = Some(position(dec!(1), dec!(5)));
    let short = Some(position(dec!(-1), dec!(5)));
    assert_eq!(
        decide_trade(&market(uptrend(), long.clone())).action,
        TradeAction::Nothing
    );
    assert_eq!(
        decide_trade(&market(downtrend(), long)).action,
        TradeAction::Sell
    );
    assert_eq!(
        decide_trade(&market(uptrend(), short.clone())).action,
        TradeAction::Buy
    );
    assert_eq!(
        decide_trade(&market(downtrend(), short)).action,
        TradeAction::Nothing
    );
}

#[test]
fn a_stronger_trend_gives_more_confidence() {
    let gentle = decide_trade(&market(zigzag(dec!(0.2), dec!(0.1), 40), None));
    let steep = decide_trade(&market(uptrend(), None));
    assert_eq!(
        (gentle.action, steep.action),
        (TradeAction::Buy, TradeAction::Buy)
    );
    assert!(
        steep.confidence > gentle.confidence,
        "{gentle:?} vs {steep:?}"
    );
}

#[test]
fn too_few_candles_is_nothing_with_zero_confidence() {
    let d = decide_trade(&market(zigzag(dec!(2), dec!(1), MIN_CANDLES - 2), None));
    assert_eq!((d.action, d.confidence), (TradeAction::Nothing, 0.0));
    assert!(
        d.reason.contains(&format!("need {MIN_CANDLES}")),
        "{}",
        d.reason
    );
}

#[actix::test]
async fn answers_in_the_llm_json_format_deterministically() {
    let rules = LocalRules::new("local");
    assert_eq!(
        (rules.provider(), rules.model(), rules.name()),
        ("local", "rules-v1", "local")
    );
    let req = trade_request(market(uptrend(), None));
    let a = rules.complete(&req).await.unwrap();
    let b = rules.complete(&req).await.unwrap();
    assert_eq!(a, b);
    assert!(
        a.text.starts_with(r#"{"action":"BUY","confidence":"#),
        "{}",
        a.text
    );
    let parsed = parse_trade_decision(&a.text).unwrap();
    assert_eq!(parsed.decision, decide_trade(&market(uptrend(), None)));
    assert!(!parsed.confidence_defaulted);
    assert_eq!(
        a.usage.completion_tokens,
        (a.text.chars().count() as u64).div_ceil(4)
    );
    assert!(a.usage.prompt_tokens > a.usage.completion_tokens);
}

#[actix::test]
async fn missing_or_wrong_context_is_a_bad_request() {
    let rules = LocalRules::new("local");
    let bare = ModelRequest::new("default", Purpose::TradeDecision, "BUY?");
    let err = rules.complete(&bare).await.unwrap_err();
    let ModelError::Provider {
        class,
        message,
        deployment,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (*class, deployment.as_str()),
        (ErrorClass::BadRequest, "local")
    );
    assert!(message.contains("StructuredContext::Market"), "{message}");

    let mut wrong = ModelRequest::new("default", Purpose::RiskConfirmation, "close?");
    wrong.context = Some(StructuredContext::Market(market(uptrend(), None)));
    let err = rules.complete(&wrong).await.unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Provider {
                class: ErrorClass::BadRequest,
                ..
            }
        ),
        "{err:?}"
    );
}

#[actix::test]
async fn freeform_says_it_is_a_rules_engine() {
    let rules = LocalRules::new("local");
    let a = rules
        .complete(&ModelRequest::new(
            "default",
            Purpose::Freeform,
            "what do you think of ETH?",
        ))
        .await
        .unwrap();
    assert!(
        a.text.contains("rules engine") && a.text.contains("not a language model"),
        "{}",
        a.text
    );
}

fn risk(pnl: Decimal, positions: Vec<Position>) -> RiskContext {
    RiskContext {
        breach: "max_loss_usd".into(),
        account_value: dec!(1000) + pnl,
        baseline_value: dec!(1000),
        pnl_usd: pnl,
        pnl_pct: pnl / dec!(10),
        positions,
    }
}

#[test]
fn risk_rules() {
    let win = position(dec!(1), dec!(5));
    let lose = position(dec!(1), dec!(-5));
    let cases = [
        (risk(dec!(-50), vec![]), RiskVerdict::Hold),
        (risk(dec!(-50), vec![win.clone()]), RiskVerdict::CloseAll),
        (
            risk(dec!(50), vec![win.clone(), lose]),
            RiskVerdict::CloseAll,
        ),
        (risk(dec!(50), vec![win.clone(), win]), RiskVerdict::Hold),
    ];
    for (ctx, want) in cases {
        let (verdict, reason) = confirm_risk(&ctx);
        assert_eq!(verdict, want, "{reason}");
        assert!(reason.starts_with("max_loss_usd"), "{reason}");
    }
}

#[actix::test]
async fn risk_answers_parse_back() {
    let rules = LocalRules::new("local");
    let mut req = ModelRequest::new("default", Purpose::RiskConfirmation, "");
    req.context = Some(StructuredContext::Risk(risk(
        dec!(-50),
        vec![position(dec!(1), dec!(-5))],
    )));
    let a = rules.complete(&req).await.unwrap();
    let parsed = parse_risk_verdict(&a.text).unwrap();
    assert_eq!(parsed.verdict, RiskVerdict::CloseAll);
    assert!(parsed.reason.contains("loss limit"), "{}", parsed.reason);
}
