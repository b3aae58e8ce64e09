use proptest::prelude::*;

use super::*;
use crate::strategies::api::{Action, Actions, Bar, PositionView, Side, Strategy};
use crate::strategies::builtin::testing::{closes, hlc, run, run_codes};
use crate::strategies::builtin::SmaCross;

fn compile(json: &str) -> SpecStrategy {
    validate(json)
        .unwrap_or_else(|e| panic!("{e}"))
        .compile()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn problems(json: &str) -> Vec<Problem> {
    match validate(json) {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(SpecErrors(p)) => p,
    }
}

fn sma_cross_spec(fast: usize, slow: usize) -> String {
    format!(
        r#"{{"name": "sma_cross_spec",
            "indicators": {{"fast": {{"sma": {{"period": {fast}, "source": "close"}}}},
                            "slow": {{"sma": {{"period": {slow}}}}}}},
            "long": {{"entry": {{"crosses_above": ["fast", "slow"]}}}},
            "short": {{"entry": {{"crosses_below": ["fast", "slow"]}}}}}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The spec written like sma_cross takes exactly SmaCross's actions, bar for bar.
    #[test]
    fn a_spec_like_sma_cross_acts_exactly_as_sma_cross(
        fast in 1usize..15,
        extra in 1usize..20,
        steps in proptest::collection::vec(-3i32..=3, 30..300),
    ) {
        let slow = fast + extra;
        let mut price = 100.0;
        let bars: Vec<Bar> = steps
            .iter()
            .map(|s| {
                // Half-unit steps: flat runs and exact ties between the averages happen.
                price = f64::max(price + f64::from(*s) * 0.5, 1.0);
                crate::strategies::builtin::testing::bar(price)
            })
            .collect();
        let mut builtin = SmaCross::new(fast, slow).unwrap();
        let mut spec = compile(&sma_cross_spec(fast, slow));
        prop_assert_eq!(spec.warmup_bars(), builtin.warmup_bars());
        let expected = run(&mut builtin, &bars);
        prop_assert_eq!(run(&mut spec, &bars), expected);
    }
}

#[test]
fn the_sma_cross_equivalence_is_not_vacuous() {
    // The same series the SmaCross unit test checks by hand: a buy at 4, a sell at 6.
    let bars = closes(&[10.0, 9.0, 8.0, 7.0, 12.0, 14.0, 9.0, 5.0]);
    assert_eq!(
        run_codes(&mut compile(&sma_cross_spec(2, 3)), &bars),
        vec![(4, "CB".to_string()), (6, "CS".to_string())]
    );
}

fn spec_with(indicators: &str, long: &str, extra: &str) -> String {
    format!(r#"{{"name": "t", "indicators": {{{indicators}}}, "long": {long}{extra}}}"#)
}

#[test]
fn comparisons_hold_strictly_on_this_bar() {
    // `>` against a number and a price field: enter when close > 10, exit when close < 9.
    let json = spec_with(
        "",
        r#"{"entry": {">": ["close", 10]}, "exit": {"<": ["close", 9]}}"#,
        "",
    );
    let bars = closes(&[10.0, 10.0, 11.0, 12.0, 9.0, 8.5, 11.0]);
    // bar 1: 10 > 10 false; bar 2: enter; 3: already long; 4: 9 < 9 false; 5: exit; 6: enter.
    assert_eq!(
        run_codes(&mut compile(&json), &bars),
        vec![(2, "CB".into()), (5, "C".into()), (6, "CB".into())]
    );
}

#[test]
fn crosses_need_the_previous_bar_on_the_other_side() {
    let json = spec_with(
        "",
        r#"{"entry": {"crosses_above": ["close", 10]}, "exit": {"crosses_below": ["close", 10]}}"#,
        "",
    );
    // 10 -> 11: previous bar equal, not below: no cross. 9 -> 11: cross up.
    let bars = closes(&[10.0, 11.0, 9.0, 11.0, 12.0, 10.0, 9.0]);
    // bar 2: 11 -> 9 crosses below (exit, but flat); bar 3: cross up; bar 5: 12 -> 10 is
    // equal, not below; bar 6: 10 -> 9 was not above 10: no cross either.
    assert_eq!(
        run_codes(&mut compile(&json), &bars),
        vec![(3, "CB".into())]
    );
}

#[test]
fn all_needs_every_condition_and_any_one() {
    let all = spec_with(
        "",
        r#"{"entry": {"all": [{">": ["close", 10]}, {"<": ["volume", 5]}]}}"#,
        "",
    );
    let any = spec_with(
        "",
        r#"{"entry": {"any": [{">": ["close", 10]}, {"<": ["volume", 5]}]}}"#,
        "",
    );
    let bar = |close: f64, volume: f64| Bar {
        time_ms: 0,
        open: close,
        high: close,
        low: close,
        close,
        volume,
    };
    // bar 1: close only; bar 2: both.
    let bars_all = [bar(1.0, 9.0), bar(11.0, 9.0), bar(11.0, 1.0)];
    assert_eq!(
        run_codes(&mut compile(&all), &bars_all),
        vec![(2, "CB".into())]
    );
    // bar 1: volume only.
    let bars_any = [bar(1.0, 9.0), bar(1.0, 1.0)];
    assert_eq!(
        run_codes(&mut compile(&any), &bars_any),
        vec![(1, "CB".into())]
    );
}

#[test]
fn multi_output_indicators_are_read_by_output() {
    // Bollinger(2, 0.5) reversion written as a spec: the same rule as the built-in.
    let json = r#"{"name": "bb", "indicators": {"bb": {"bollinger": {"period": 2, "k": 0.5}}},
        "long": {"entry": {"crosses_above": ["close", "bb.lower"]}, "exit": {"any": [{">": ["close", "bb.middle"]}, {"crosses_above": ["close", "bb.middle"]}]}}}"#;
    let bars = closes(&[10.0, 6.0, 7.0, 7.5, 8.0]);
    // bar 2: 6 < 7 (lower) then 7 > 6.25: entry; bar 3: (7, 7.5) middle 7.25: 7.5 > 7.25 exit.
    assert_eq!(
        run_codes(&mut compile(json), &bars),
        vec![(2, "CB".into()), (3, "C".into())]
    );
    // MACD outputs: macd.macd crossing macd.signal is the built-in macd rule.
    let json = r#"{"name": "m", "indicators": {"m": {"macd": {"fast": 1, "slow": 2, "signal": 2}}},
        "long": {"entry": {"crosses_above": ["m.macd", "m.signal"]}},
        "short": {"entry": {"crosses_below": ["m.macd", "m.signal"]}}}"#;
    let bars = closes(&[10.0, 10.0, 10.0, 13.0, 10.0, 13.0]);
    assert_eq!(
        run_codes(&mut compile(json), &bars),
        vec![(4, "CS".into()), (5, "CB".into())]
    );
}

#[test]
fn donchian_is_the_channel_before_the_current_bar() {
    let json = r#"{"name": "dc", "indicators": {"dc": {"donchian": {"period": 2}}},
        "long": {"entry": {">": ["close", "dc.upper"]}, "exit": {"<": ["close", "dc.lower"]}}}"#;
    let bars = [
        hlc(10.0, 8.0, 9.0),
        hlc(11.0, 9.0, 10.0),
        hlc(12.0, 10.0, 11.0), // prior high 11: not above
        hlc(13.0, 11.0, 12.5), // prior high 12: breakout
        hlc(12.0, 10.0, 10.5), // prior low 10 (bars 2, 3): not below
        hlc(10.0, 8.5, 9.5),   // prior low 10: exit
    ];
    let mut s = compile(json);
    assert_eq!(s.warmup_bars(), 4);
    assert_eq!(
        run_codes(&mut s, &bars),
        vec![(3, "CB".into()), (5, "C".into())]
    );
}

fn first_order(s: &mut SpecStrategy, bars: &[Bar]) -> crate::strategies::api::OrderIntent {
    run(s, bars)
        .into_iter()
        .flat_map(|(_, a)| a)
        .find_map(|a| match a {
            Action::Order(o) => Some(o),
            Action::ClosePosition => None,
        })
        .expect("an order")
}

#[test]
fn stops_and_targets_in_percent_and_atr_multiples() {
    let pct = spec_with(
        "",
        r#"{"entry": {">": ["close", 10]}}"#,
        r#", "sizing": {"units": 3}, "stop_loss": {"pct": 2}, "take_profit": {"pct": 5}"#,
    );
    let o = first_order(&mut compile(&pct), &closes(&[1.0, 100.0]));
    assert_eq!((o.side, o.size), (Side::Buy, Size::Units(3.0)));
    assert!((o.stop_loss.unwrap() - 98.0).abs() < 1e-9, "{o:?}");
    assert!((o.take_profit.unwrap() - 105.0).abs() < 1e-9, "{o:?}");

    let atr = r#"{"name": "a", "indicators": {"atr": {"atr": {"period": 1}}},
        "short": {"entry": {"<": ["close", 11]}},
        "sizing": {"equity": 0.25},
        "stop_loss": {"atr": {"indicator": "atr", "multiple": 1.5}},
        "take_profit": {"atr": {"indicator": "atr", "multiple": 2}}}"#;
    assert_eq!(compile(atr).warmup_bars(), 3);
    // ATR(1) on bar 1 is 0 (a flat bar), on bar 2 the range 12-8 = 4: the signal bar's ATR
    // prices the exits (the short enters at bar 2, the first decision).
    let bars2 = [
        hlc(10.0, 10.0, 10.0),
        hlc(10.0, 10.0, 10.0),
        hlc(12.0, 8.0, 10.0),
    ];
    let o = first_order(&mut compile(atr), &bars2);
    assert_eq!((o.side, o.size), (Side::Sell, Size::Equity(0.25)));
    assert!((o.stop_loss.unwrap() - 16.0).abs() < 1e-9, "{o:?}");
    assert!((o.take_profit.unwrap() - 2.0).abs() < 1e-9, "{o:?}");
}

#[test]
fn the_help_example_is_valid_and_round_trips() {
    let spec = validate(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert!(schema_help().contains(EXAMPLE));
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(validate(&text).unwrap(), spec);
    spec.compile().unwrap();
}

fn messages(p: &[Problem]) -> Vec<String> {
    p.iter().map(|p| p.to_string()).collect()
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let json = r#"{
        "name": "Bad Name",
        "colour": "red",
        "indicators": {
            "fast": {"sma": {"period": 0}},
            "st": {"supertrend": {"period": 10}},
            "m": {"macd": {"fast": 30, "slow": 20}},
            "bb": {"bollinger": {"period": 20, "k": 11}},
            "close": {"ema": {"period": 5}},
            "x": {"ema": {"period": 5, "lenght": 3}}
        },
        "long": {"entry": {"all": [{"crosses_above": ["fast", "slwo"]}, {">": ["bb", 1]}, {"<": [1, 2]}, {">=": ["fast", 1]}]}, "exit": {"any": []}},
        "short": {"entry": {">": ["m.hist", "fast.value"]}, "when": 1},
        "sizing": {"equity": 2},
        "stop_loss": {"atr": {"indicator": "fast", "multiple": 0}},
        "take_profit": {"pct": -1}
    }"#;
    let got = messages(&problems(json));
    let expect = [
        "/colour: unknown field; allowed fields: name, description, indicators, long, short, sizing, stop_loss, take_profit",
        "/name: must be 1 to 64 characters",
        "/indicators/fast/sma/period: must be between 1 and 1000, got 0",
        "/indicators/st/supertrend: unknown indicator 'supertrend'; known indicators: sma, ema, rsi, bollinger, macd, donchian, atr",
        "/indicators/m/macd/fast: must be less than slow (20), got 30",
        "/indicators/bb/bollinger/k: must be between 0 and 10",
        "/indicators/close: instance name \"close\" is a price field",
        "/indicators/x/ema/lenght: unknown field `lenght`",
        "/long/entry/all/0/crosses_above/1: 'slwo' is neither a defined indicator nor a price field; defined indicators: bb, close, fast, m, st, x",
        "/long/entry/all/1/>/0: 'bb' (bollinger) has several outputs; write one of: bb.upper, bb.middle, bb.lower",
        "/long/entry/all/2/<: compares two numbers",
        "/long/entry/all/3/>=: unknown condition '>='; known conditions: >, <, crosses_above, crosses_below, all, any",
        "/long/exit/any: needs at least one condition",
        "/short/when: unknown field; allowed fields: entry, exit",
        "/short/entry/>/0: 'm' (macd) has no output 'hist'; its outputs: macd, signal, histogram",
        "/short/entry/>/1: 'fast' (sma) has a single value and no output 'value'; write \"fast\"",
        "/sizing/equity: must be a fraction of equity with 0 < equity <= 1",
        "/stop_loss/atr/indicator: 'fast' (sma) is not an atr instance; define one under \"indicators\"",
        "/stop_loss/atr/multiple: must be between 0 (exclusive) and 100, got 0",
        "/take_profit/pct: must be a percent of the close with 0 < pct <= 1000, got -1",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in\n{}",
            got.join("\n")
        );
    }
    // The entry with an unparsable member did not parse, so nothing else about it was
    // invented; and nothing was reported twice.
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), got.len());
}

#[test]
fn a_markdown_fence_around_the_json_is_ignored() {
    let fenced = format!("```json\n{}\n```\n", sma_cross_spec(2, 3));
    assert_eq!(
        validate(&fenced).unwrap(),
        validate(&sma_cross_spec(2, 3)).unwrap()
    );
    let bare = format!("```\n{}```", sma_cross_spec(2, 3));
    assert!(validate(&bare).is_ok());
    // Prose around it is still refused, with the reason.
    let p = problems(&format!("Here it is: {}", sma_cross_spec(2, 3)));
    assert!(p[0].message.starts_with("not valid JSON"), "{p:?}");
}

#[test]
fn structural_problems_are_sentences_too() {
    let p = problems("buy when the sma crosses");
    assert!(p[0].message.starts_with("not valid JSON"), "{p:?}");
    let p = problems("[1, 2]");
    assert_eq!(p[0].to_string(), "/: must be a JSON object, got an array");
    let got = messages(&problems(r#"{"indicators": 3}"#));
    assert!(
        got.contains(&"/name: required field is missing".to_string()),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("/indicators: must be an object")),
        "{got:?}"
    );
    let got = messages(&problems(r#"{"name": "x", "indicators": {}}"#));
    assert!(
        got.iter()
            .any(|g| g.contains("needs \"long\" and/or \"short\"")),
        "{got:?}"
    );
    let got = messages(&problems(
        r#"{"name": "x", "indicators": {"a": {"sma": {"period": 2}, "ema": {"period": 3}}},
            "long": {"entry": {">": ["a", 1], "<": ["a", 2]}}, "short": {"entry": {">": ["a"]}}}"#,
    ));
    assert!(
        got.iter()
            .any(|g| g
                .starts_with("/indicators/a: must be an object with exactly one indicator kind")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("/long/entry: a condition is an object with exactly one key")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("/short/entry/>: must be a list of exactly two operands")),
        "{got:?}"
    );
    let got = messages(&problems(
        r#"{"name": "x", "indicators": {"a": {"sma": {"period": "ten"}}}, "long": {"entry": {">": ["a", 1]}}}"#,
    ));
    assert!(
        got.iter()
            .any(|g| g.starts_with("/indicators/a/sma/period: invalid type: string \"ten\"")),
        "{got:?}"
    );
    assert_eq!(
        got.len(),
        1,
        "a reference to an indicator whose params did not parse is not reported: {got:?}"
    );
    let got = messages(&problems(
        r#"{"name": "x", "indicators": {}, "long": {"entry": {">": ["close", 1]}}, "stop_loss": {"atr": {"indicator": "atr", "multiple": 2}}}"#,
    ));
    assert!(
        got.iter().any(
            |g| g.starts_with("/stop_loss/atr/indicator: no indicator named 'atr'; define one")
        ),
        "{got:?}"
    );
}

#[test]
fn the_remaining_range_and_name_checks() {
    let got = messages(&problems(
        r#"{"name": "r", "indicators": {"b": {"bollinger": {"period": 1}}, "9x": {"sma": {"period": 1001}},
              "m": {"macd": {"fast": 0, "signal": 2000}}, "a": {"atr": {"period": 5}}},
            "long": {"entry": {"crosses_above": ["close", "a.value"]}},
            "sizing": {"units": -1},
            "stop_loss": {"pct": 100},
            "take_profit": {"atr": {"indicator": "b", "multiple": 1}}}"#,
    ));
    let expect = [
        "/indicators/b/bollinger/period: must be between 2 and 1000, got 1",
        "/indicators/9x/sma/period: must be between 1 and 1000, got 1001",
        "/indicators/9x: instance name \"9x\" must start with a letter",
        "/indicators/m/macd/fast: must be between 1 and 1000, got 0",
        "/indicators/m/macd/signal: must be between 1 and 1000, got 2000",
        "/long/entry/crosses_above/1: 'a' (atr) has a single value and no output 'value'",
        "/sizing/units: must be a quantity greater than 0, got -1",
        "/stop_loss/pct: must be a percent of the close with 0 < pct < 100, got 100",
        "/take_profit/atr/indicator: 'b' (bollinger) is not an atr instance; atr instances: a",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in\n{}",
            got.join("\n")
        );
    }
    assert_eq!(got.len(), expect.len(), "{got:#?}");
}

#[test]
fn compile_refuses_an_unchecked_invalid_spec() {
    let mut spec = validate(&sma_cross_spec(2, 3)).unwrap();
    spec.indicators.insert(
        "z".into(),
        IndicatorSpec::Sma {
            period: -1,
            source: PriceField::Close,
        },
    );
    let e = spec.compile().unwrap_err();
    assert!(e.to_string().contains("/indicators/z/sma/period"), "{e}");
}

#[test]
fn warmup_is_the_longest_indicator_plus_one() {
    let spec = validate(EXAMPLE).unwrap();
    // bollinger 20, sma 30, rsi 15, atr 15: 30 + 1.
    assert_eq!(spec.warmup_bars(), 31);
    let macd = IndicatorSpec::Macd {
        fast: 12,
        slow: 26,
        signal: 9,
        source: PriceField::Close,
    };
    assert_eq!(macd.warmup_bars(), 34);
}

fn signal_at(
    time_ms: i64,
    direction: crate::signals::Direction,
    confidence: f64,
) -> crate::signals::Signal {
    crate::signals::Signal {
        id: format!("s{time_ms}"),
        source: "sentiment-bot".into(),
        symbol: "BTC".into(),
        kind: crate::signals::SignalKind::Sentiment,
        value: rust_decimal::Decimal::ONE,
        direction,
        confidence,
        evidence: "headline".into(),
        time_ms,
        ttl_ms: 2 * 3_600_000,
    }
}

#[test]
fn a_signal_condition_holds_while_a_matching_signal_is_alive() {
    use crate::signals::Direction;
    let json = spec_with(
        "",
        r#"{"entry": {"signal": {"kind": "sentiment", "direction": "long", "min_confidence": 0.6}}}"#,
        "",
    );
    let mut s = compile(&json);
    let h = 3_600_000i64;
    // Signals heard before each bar (hour i), as a runner delivers them.
    let heard = |i: i64| -> Vec<crate::signals::Signal> {
        match i {
            2 => vec![signal_at(h + h / 2, Direction::Long, 0.5)], // too unsure
            3 => vec![signal_at(2 * h + h / 2, Direction::Short, 0.9)], // other way
            4 => vec![signal_at(3 * h + h / 2, Direction::Long, 0.9)], // alive until 5.5 h
            7 => vec![signal_at(6 * h + h / 2, Direction::Long, 0.7)],
            _ => vec![],
        }
    };
    let mut acted = Vec::new();
    let mut actions = Actions::new();
    for i in 0..9 {
        for sig in heard(i) {
            s.on_signal(&sig);
        }
        let bar = Bar {
            time_ms: i * h,
            ..closes(&[100.0])[0]
        };
        actions.clear();
        s.on_bar(&bar, &PositionView::FLAT, &mut actions);
        if !actions.is_empty() {
            acted.push(i);
        }
    }
    // Bar 4 enters; bar 5 still sees it (no second entry); at bar 6 it expired, so the
    // signal heard before bar 7 enters again.
    assert_eq!(acted, vec![4, 7]);

    // In a backtest (no signals) it never holds.
    assert!(run(&mut compile(&json), &closes(&[100.0; 20])).is_empty());
}

#[test]
fn a_signal_condition_is_checked_field_by_field() {
    let json = spec_with(
        "",
        r#"{"entry": {"signal": {"kind": "vibes", "direction": "up", "min_confidence": 1.5}}}"#,
        "",
    );
    let m = messages(&problems(&json));
    assert_eq!(m.len(), 3, "{m:?}");
    // Sorted by path.
    assert!(m[0].starts_with("/long/entry/signal/direction:"), "{m:?}");
    assert!(m[1].starts_with("/long/entry/signal/kind:"), "{m:?}");
    assert!(m[1].contains("sentiment"), "{m:?}");
    assert!(
        m[2].starts_with("/long/entry/signal/min_confidence:"),
        "{m:?}"
    );
    let unknown = spec_with(
        "",
        r#"{"entry": {"signal": {"kind": "news", "strength": 3}}}"#,
        "",
    );
    let m = messages(&problems(&unknown));
    assert!(m.iter().any(|p| p.contains("strength")), "{m:?}");
}
