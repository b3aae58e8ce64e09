//! The pipeline's config: defaults, the derived run deadline, and every bad value named
//! by its key.

use std::time::Duration;

use super::*;

fn config(text: &str) -> PipelineConfig {
    toml::from_str(text).unwrap()
}

const MINIMAL: &str = r#"
name = "lab"
venue = "paper"
symbols = ["BTC", "ETH"]
[long_analyst]
model = "long"
[short_analyst]
model = "short"
[strategy_generator]
model = "strategist"
timeout = "20s"
"#;

#[test]
fn defaults_and_the_derived_run_deadline() {
    let c = config(MINIMAL);
    assert_eq!(
        c.signal_kinds,
        vec![SignalKind::News, SignalKind::Sentiment]
    );
    assert_eq!(c.max_position_pct, Decimal::from(5));
    assert_eq!(c.long_analyst.timeout, Duration::from_secs(60));
    // Per symbol: collector 30s + the slower analyst 60s + strategy 20s + executor 60s
    // + 15s margin = 185s; two symbols.
    assert_eq!(c.schedule().run_timeout, Duration::from_secs(370));
    let mut issues = Issues::default();
    c.validate("agents.pipeline[0]", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn bad_values_name_their_keys() {
    let mut c = config(MINIMAL);
    c.short_analyst.model = "long".into();
    c.max_position_pct = Decimal::ZERO;
    c.min_confidence = 1.5;
    c.symbols.clear();
    c.executor.timeout = Duration::from_millis(10);
    let mut issues = Issues::default();
    c.validate("agents.pipeline[0]", &mut issues);
    let keys: Vec<String> = issues.0.iter().map(|i| i.key.clone()).collect();
    for key in [
        "agents.pipeline[0].short_analyst.model",
        "agents.pipeline[0].max_position_pct",
        "agents.pipeline[0].min_confidence",
        "agents.pipeline[0].symbols",
        "agents.pipeline[0].executor.timeout",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    // An unknown key is refused when the config is read.
    let typo = format!("{MINIMAL}\n[executor]\ntimout = \"5s\"\n");
    assert!(toml::from_str::<PipelineConfig>(&typo).is_err());
}
