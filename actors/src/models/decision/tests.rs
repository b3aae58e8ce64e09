use proptest::prelude::*;

use super::*;

/// What a row of the table expects.
#[derive(Debug)]
enum Want {
    /// Action, confidence, whether the confidence was defaulted.
    Decision(TradeAction, f64, bool),
    Err(&'static str),
}

use TradeAction::{Buy, Nothing, Sell};
use Want::{Decision as D, Err as E};

/// Realistic answers, including the seed project's failure modes.
fn table() -> Vec<(&'static str, Want)> {
    vec![
        // Structured answers.
        (r#"{"action":"BUY","confidence":0.72,"reason":"trend up"}"#, D(Buy, 0.72, false)),
        (r#"{"decision": "sell", "confidence": 85, "reasoning": "breakdown"}"#, D(Sell, 0.85, false)),
        (r#"{"signal":"NOTHING","confidence":"85%","reason":"chop"}"#, D(Nothing, 0.85, false)),
        ("```json\n{\"action\": \"BUY\", \"confidence\": 0.9, \"reason\": \"breakout\"}\n```", D(Buy, 0.9, false)),
        ("Here is my analysis. The market is trending.\n{\"action\":\"SELL\",\"confidence\":0.61,\"reason\":\"lower highs\"}\nLet me know.", D(Sell, 0.61, false)),
        ("<think>Maybe BUY? Or SELL... confidence 99</think>\n{\"action\":\"NOTHING\",\"confidence\":0.4,\"reason\":\"unclear\"}", D(Nothing, 0.4, false)),
        ("Okay so the user wants... SELL looks risky</think>{\"action\":\"BUY\",\"confidence\":0.55}", D(Buy, 0.55, false)),
        (r#"{"action":"BUY","reason":"no confidence given"}"#, D(Buy, DEFAULT_CONFIDENCE, true)),
        (r#"{"Action":"Hold","Confidence":"0.3"}"#, D(Nothing, 0.3, false)),
        (r#"{"decision":{"action":"sell","confidence":0.7,"reason":"nested"}}"#, D(Sell, 0.7, false)),
        (r#"{"action":"long","confidence":1}"#, D(Buy, 1.0, false)),
        (r#"{"note":"context"} then {"action":"SELL","confidence":"8/10"}"#, D(Sell, 0.8, false)),
        (r#"{"action":"BUY","confidence":150}"#, E("confidence_out_of_range")),
        (r#"{"action":"BUY","confidence":-0.2}"#, E("confidence_out_of_range")),
        (r#"{"action":"BUY","confidence":"very high"}"#, E("bad_confidence")),
        (r#"{"action":"MOON","confidence":0.9}"#, E("unknown_action")),
        // Text answers.
        ("BUY with 72% confidence", D(Buy, 0.72, false)),
        ("Decision: SELL (confidence: 0.6)", D(Sell, 0.6, false)),
        ("I recommend doing NOTHING until the range breaks.", D(Nothing, DEFAULT_CONFIDENCE, true)),
        ("Based on the RSI of 71 and the 5% move today, my recommendation is SELL. Confidence level: 65%", D(Sell, 0.65, false)),
        ("**BUY**\nThe 9 SMA crossed above the 21 SMA at 64,250.", D(Buy, DEFAULT_CONFIDENCE, true)),
        ("Final answer: buy. I'm 80% sure.", D(Buy, 0.8, false)),
        ("SELL 65%", D(Sell, 0.65, false)),
        ("After weighing it up, we should buy here. Certainty 7/10.", D(Buy, 0.7, false)),
        ("Don't BUY into this pump. SELL is the better call, confidence 0.55", D(Sell, 0.55, false)),
        // The seed project's failure mode: digits glued together across the line.
        ("BUY 7 0.5", D(Buy, DEFAULT_CONFIDENCE, true)),
        ("Decision: BUY, position size 2, price 64000, confidence 0.8", D(Buy, 0.8, false)),
        ("Price fell 12% today. Decision: NOTHING", D(Nothing, DEFAULT_CONFIDENCE, true)),
        // The seed's other failure mode: every digit on the confidence line glued together.
        ("BUY\nConfidence: 75% based on 3 indicators and 2 timeframes", D(Buy, 0.75, false)),
        ("Decision: SELL\nConfidence level: 8 out of 10", D(Sell, 0.8, false)),
        ("Decision: SELL\nConfidence: 12 out of 10", E("confidence_out_of_range")),
        // Competing verdicts and non-answers.
        ("BUY or SELL, hard to say. Confidence 50%", E("ambiguous")),
        ("Signal: BUY.\nOn second thought, final decision: SELL.", E("ambiguous")),
        ("The chart looks interesting but I cannot tell.", E("no_verdict")),
        ("", E("empty")),
        ("<think>BUY BUY BUY</think>   ", E("empty")),
        ("Decision: SELL, confidence: 250", E("confidence_out_of_range")),
    ]
}

#[test]
fn parses_the_table_of_realistic_answers() {
    let mut failures = Vec::new();
    for (text, want) in table() {
        let got = parse_trade_decision(text);
        let ok = match (&want, &got) {
            (D(action, conf, defaulted), Ok(p)) => {
                p.decision.action == *action
                    && (p.decision.confidence - conf).abs() < 1e-9
                    && p.confidence_defaulted == *defaulted
            }
            (E(label), Err(e)) => e.label() == *label,
            _ => false,
        };
        if !ok {
            failures.push(format!("{text:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_reason_and_format_are_kept() {
    let p =
        parse_trade_decision(r#"{"action":"BUY","confidence":0.72,"reason":"trend up"}"#).unwrap();
    assert_eq!(p.decision.reason, "trend up");
    assert_eq!(p.format, AnswerFormat::Json);
    let p = parse_trade_decision("BUY with 72% confidence").unwrap();
    assert_eq!(p.format, AnswerFormat::Text);
    assert_eq!(p.decision.reason, "BUY with 72% confidence");
}

#[test]
fn errors_carry_a_truncated_excerpt() {
    let long = format!("no verdict here {}", "x".repeat(2_000));
    let err = parse_trade_decision(&long).unwrap_err();
    let DecisionError::NoVerdict { excerpt, .. } = &err else {
        panic!("want NoVerdict, got {err:?}");
    };
    assert!(excerpt.chars().count() <= EXCERPT_CHARS + 1, "{excerpt}");
    assert!(excerpt.starts_with("no verdict here"));
    assert!(err.to_string().contains("no verdict here"));
}

#[test]
fn risk_verdicts_from_json_and_text() {
    let cases: Vec<(&str, Result<RiskVerdict, &str>)> = vec![
        (
            r#"{"action":"CLOSE_ALL","reason":"loss limit"}"#,
            Ok(RiskVerdict::CloseAll),
        ),
        (
            r#"{"decision":"hold","reason":"trend intact"}"#,
            Ok(RiskVerdict::Hold),
        ),
        (
            "```json\n{\"verdict\": \"close all\"}\n```",
            Ok(RiskVerdict::CloseAll),
        ),
        (
            "CLOSE_ALL - the drawdown is accelerating",
            Ok(RiskVerdict::CloseAll),
        ),
        (
            "I recommend to hold; the positions are recovering.",
            Ok(RiskVerdict::Hold),
        ),
        (
            "Decision: CLOSE ALL positions now.",
            Ok(RiskVerdict::CloseAll),
        ),
        ("HOLD or CLOSE_ALL, I am not sure", Err("ambiguous")),
        (r#"{"action":"PANIC"}"#, Err("unknown_action")),
        ("The market is volatile.", Err("no_verdict")),
    ];
    for (text, want) in cases {
        let got = parse_risk_verdict(text);
        match (&want, &got) {
            (Ok(v), Ok(p)) => assert_eq!(p.verdict, *v, "{text:?}"),
            (Err(label), Err(e)) => assert_eq!(e.label(), *label, "{text:?}"),
            _ => panic!("{text:?}: want {want:?}, got {got:?}"),
        }
    }
    let p = parse_risk_verdict(&render_risk_verdict(RiskVerdict::Hold, "winners running")).unwrap();
    assert_eq!(
        (p.verdict, p.reason.as_str()),
        (RiskVerdict::Hold, "winners running")
    );
}

fn action() -> impl Strategy<Value = TradeAction> {
    prop_oneof![Just(Buy), Just(Sell), Just(Nothing)]
}

/// What any text parses to, where it is known: blank text is `Empty`; a decision has a
/// confidence within 0..=1, the default one exactly when it says it was defaulted, and a
/// `BUY`/`SELL` action only when the text names it.
fn check_what_is_parsed(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    let parsed = parse_trade_decision(text);
    if text.trim().is_empty() {
        prop_assert!(matches!(parsed, Err(DecisionError::Empty)), "{:?}", parsed);
    }
    if let Ok(p) = parsed {
        let c = p.decision.confidence;
        prop_assert!((0.0..=1.0).contains(&c), "confidence {} from {:?}", c, text);
        if p.confidence_defaulted {
            prop_assert_eq!(c, DEFAULT_CONFIDENCE);
        }
        let upper = text.to_ascii_uppercase();
        match p.decision.action {
            Buy => prop_assert!(
                upper.contains("BUY") || upper.contains("LONG"),
                "{:?}",
                text
            ),
            Sell => prop_assert!(
                upper.contains("SELL") || upper.contains("SHORT"),
                "{:?}",
                text
            ),
            Nothing => {}
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        check_what_is_parsed(&text)?;
        let _ = parse_risk_verdict(&text);
    }

    #[test]
    fn never_panics_on_answer_shaped_text(
        text in r#"(<think>|</think>|\{|\}|"action"|:|"BUY"|SELL|confidence|[0-9.%/]{1,6}| |\n|```json)*"#
    ) {
        check_what_is_parsed(&text)?;
        let _ = parse_risk_verdict(&text);
    }

    #[test]
    fn a_rendered_decision_parses_back_identically(
        action in action(),
        steps in 0u32..=10_000,
        reason in any::<String>(),
    ) {
        let decision = TradeDecision { action, confidence: f64::from(steps) / 10_000.0, reason };
        let parsed = parse_trade_decision(&render_trade_decision(&decision)).unwrap();
        prop_assert_eq!(&parsed.decision, &decision);
        prop_assert!(!parsed.confidence_defaulted);
    }

    #[test]
    fn any_confidence_reads_back_to_four_decimals(confidence in 0.0f64..=1.0) {
        let decision = TradeDecision { action: Buy, confidence, reason: String::new() };
        let parsed = parse_trade_decision(&render_trade_decision(&decision)).unwrap();
        prop_assert!((parsed.decision.confidence - confidence).abs() <= 0.00005 + 1e-12);
        prop_assert_eq!(parsed.decision.confidence, round_confidence(confidence));
    }
}

/// The answer seen in the field: asked about SOL, the model talked about BTC.
#[test]
fn an_answer_about_another_symbol_is_no_decision() {
    for (answer, asked) in [
        ("I think you should buy BTC now.", "SOL"),
        ("SELL some eth here, momentum is fading.", "SOL"),
        (
            r#"{"action":"BUY","confidence":0.9,"symbol":"BTCUSDT"}"#,
            "SOL",
        ),
        (
            "Analysis below.\n{\"symbol\":\"ETH-PERP\",\"action\":\"SELL\",\"confidence\":0.8}",
            "BTC",
        ),
    ] {
        let err = parse_trade_decision_for(answer, asked).unwrap_err();
        assert_eq!(err.label(), "wrong_symbol", "{answer}: {err}");
        assert!(err.to_string().contains(asked), "{err}");
    }
    // The plain parser still reads these answers; the symbol check is the caller's choice.
    assert_eq!(
        parse_trade_decision("I think you should buy BTC now.")
            .unwrap()
            .decision
            .action,
        Buy
    );
}

#[test]
fn an_answer_about_the_asked_symbol_passes_the_symbol_check() {
    for (answer, asked, action) in [
        ("I think you should buy SOL now.", "SOL", Buy),
        ("BUY NOW, confidence 0.7", "SOL", Buy),
        (
            r#"{"action":"SELL","confidence":0.9,"symbol":"SOLUSDT"}"#,
            "SOL",
            Sell,
        ),
        (
            r#"{"action":"BUY","confidence":0.9,"coin":"bitcoin"}"#,
            "BTC",
            Buy,
        ),
        (
            "BTC dominance rises, but we should buy SOL. Confidence 0.8",
            "SOL",
            Buy,
        ),
        (
            "Decision: BUY on the RSI divergence. Confidence: 70%",
            "ETH",
            Buy,
        ),
        ("Decision: NOTHING", "ETH", Nothing),
        ("Don't buy BTC; SELL ETH here, confidence 0.6", "ETH", Sell),
    ] {
        let parsed =
            parse_trade_decision_for(answer, asked).unwrap_or_else(|e| panic!("{answer}: {e}"));
        assert_eq!(parsed.decision.action, action, "{answer}");
    }
}

#[test]
fn base_symbols_ignore_quote_suffixes_and_case() {
    for (name, base) in [
        ("SOLUSDT", "SOL"),
        ("sol/usd", "SOL"),
        ("BTC-PERP", "BTC"),
        ("eth", "ETH"),
        ("Solana", "SOL"),
        ("USDT", "USDT"),
    ] {
        assert_eq!(base_symbol(name), base, "{name}");
    }
}
