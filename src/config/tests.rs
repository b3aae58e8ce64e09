use super::*;

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(
        Some(&path),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn defaults_are_valid() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert_eq!(c.telemetry.listen.to_string(), "127.0.0.1:9898");
    assert!(c.exchanges.venues.contains_key("paper"));
}

#[test]
fn shipped_default_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let c = Config::load(Some(&path), Vec::new()).unwrap();
    assert!(!c.agents.trading.is_empty(), "the default config trades");
}

#[test]
fn an_out_of_range_value_names_its_key_value_and_what_is_allowed() {
    let err = load_str("[risk]\nmax_leverage = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`risk.max_leverage`"), "{err}");
    assert!(err.contains("bad value 0"), "{err}");
    assert!(err.contains("an integer from 1 to 100"), "{err}");
}

#[test]
fn a_wrong_type_names_its_key() {
    let err = load_str("[telemetry]\nlisten = \"not an address\"\n", &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Shape { key, .. } if key == "telemetry.listen"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_is_rejected() {
    let err = load_str("[risk]\nmax_levrage = 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_levrage"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text =
        "[risk]\nmax_leverage = 0\nmax_position_pct = 500\n[supervisor]\nbackoff_jitter = 3.0\n";
    let ConfigError::Invalid(issues) = load_str(text, &[]).unwrap_err() else {
        panic!("expected value issues")
    };
    let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"risk.max_leverage"));
    assert!(keys.contains(&"risk.max_position_pct"));
    assert!(keys.contains(&"supervisor.backoff_jitter"));
}

#[test]
fn environment_overrides_win_and_are_typed() {
    let text = "[[agents.trading]]\nname = \"t\"\nvenue = \"paper\"\nsymbols = [\"BTC\"]\n";
    let c = load_str(
        text,
        &[
            ("ORRERY__RISK__MAX_LEVERAGE", "3"),
            ("ORRERY__TELEMETRY__LISTEN", "127.0.0.1:9999"),
            ("ORRERY__AGENTS__TRADING__0__INTERVAL", "5s"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.risk.max_leverage, 3);
    assert_eq!(c.telemetry.listen.port(), 9999);
    assert_eq!(c.agents.trading[0].interval, Duration::from_secs(5));
}

#[test]
fn a_bad_override_names_the_variable() {
    let err = load_str("", &[("ORRERY__AGENTS__TRADING__3__NAME", "x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("ORRERY__AGENTS__TRADING__3__NAME"), "{err}");
}

#[test]
fn cross_references_are_checked() {
    let text = "[[agents.trading]]\nname = \"t\"\nvenue = \"nowhere\"\nsymbols = [\"BTC\"]\nmodel = \"missing\"\n";
    let err = load_str(text, &[]).unwrap_err().to_string();
    assert!(err.contains("agents.trading[0].venue"), "{err}");
    assert!(err.contains("agents.trading[0].model"), "{err}");
}

#[test]
fn model_routing_and_cache_keys_load_and_bad_ones_are_named() {
    let text = r#"
[model_cache]
max_entries = 500

[models.default]
strategy = "lowest_latency"
cache_ttl = "10m"

[[models.default.deployments]]
id = "local"
provider = "local"
model = "rules-v1"
context_window = 8000
price_prompt_per_mtok = 0.15
"#;
    let c = load_str(
        text,
        &[(
            "ORRERY__MODELS__DEFAULT__DEPLOYMENTS__0__PRICE_COMPLETION_PER_MTOK",
            "0.6",
        )],
    )
    .unwrap();
    assert_eq!(c.model_cache.max_entries, 500);
    let m = &c.models.models["default"];
    assert_eq!(m.cache_ttl, Some(Duration::from_secs(600)));
    assert_eq!(m.deployments[0].context_window, Some(8000));
    assert_eq!(
        m.deployments[0].price_prompt_per_mtok,
        "0.15".parse().unwrap()
    );
    assert_eq!(
        m.deployments[0].price_completion_per_mtok,
        "0.6".parse().unwrap()
    );

    let err = load_str("[model_cache]\nmax_entries = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`model_cache.max_entries`"), "{err}");
    let err = load_str(&text.replace("10m", "0s"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`models.default.cache_ttl`"), "{err}");
}

#[test]
fn market_data_fallback_must_name_another_live_venue() {
    let hl = |fallback: &str| {
        format!(
            "[exchanges.venues.hl]\nkind = \"hyperliquid\"\nwallet_address = \"0x14dC79964da2C08b23698B3D3cc7Ca32193d9955\"\nmarket_data_fallback = \"{fallback}\"\n[exchanges.venues.bn]\nkind = \"binance\"\n[exchanges.venues.sim]\nkind = \"paper\"\n"
        )
    };
    let c = load_str(&hl("bn"), &[]).unwrap();
    let feeds = c.exchanges.feeds();
    assert_eq!(feeds["hl"].secondary.as_deref(), Some("bn"));
    assert_eq!(feeds["bn"].secondary, None);
    for bad in ["nowhere", "hl", "sim"] {
        let err = load_str(&hl(bad), &[]).unwrap_err().to_string();
        assert!(
            err.contains("`exchanges.venues.hl.market_data_fallback`"),
            "{bad}: {err}"
        );
        assert!(err.contains("another non-paper venue"), "{err}");
        assert!(err.contains(": bn"), "names the candidates: {err}");
    }
}

#[test]
fn connector_queue_settings_load_and_bad_ones_are_named() {
    let text = "[exchanges.venues.hl]\nkind = \"hyperliquid\"\nwallet_address = \"0x14dC79964da2C08b23698B3D3cc7Ca32193d9955\"\n[exchanges.venues.hl.resilience.queue]\nmax_in_flight = 4\nlow = 100\n[exchanges.venues.hl.resilience.fallback]\ncache_ttl = \"2s\"\n";
    let c = load_str(text, &[]).unwrap();
    let venue = &c.exchanges.venues["hl"];
    assert_eq!((venue.queue().max_in_flight, venue.queue().low), (4, 100));
    assert_eq!(venue.feed().fallback.cache_ttl, Duration::from_secs(2));
    let paper = &Config::default().exchanges.venues["paper"];
    assert_eq!(paper.queue(), QueueConfig::default());
    let err = load_str(&text.replace("= 4", "= 0"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`exchanges.venues.hl.resilience.queue.max_in_flight`"),
        "{err}"
    );
}

#[test]
fn a_partial_venue_resilience_section_keeps_the_venues_default_limits() {
    use orrery_actors::exchanges::binance::config::default_resilience;
    let venue = |c: &Config| match &c.exchanges.venues["bn"] {
        VenueConfig::Binance(b) => b.resilience.clone(),
        other => panic!("{other:?}"),
    };
    let base = "[exchanges.venues.bn]\nkind = \"binance\"\n";
    let queue_only = format!("{base}[exchanges.venues.bn.resilience.queue]\nmax_in_flight = 4\n");
    let r = venue(&load_str(&queue_only, &[]).unwrap());
    let defaults = default_resilience();
    assert_eq!(r.queue.max_in_flight, 4);
    assert_eq!(r.limits, defaults.limits, "the documented pools stay");
    assert_eq!(
        r.endpoints, defaults.endpoints,
        "and so do the endpoint weights"
    );
    assert_eq!(r.retry, defaults.retry);

    // Writing `limits` replaces the pools; default endpoint weights naming none of them go
    // (such endpoints draw 1 from every pool).
    let own_limits = format!(
        "{base}[exchanges.venues.bn.resilience]\nlimits = [{{ name = \"all\", kind = \"token_bucket\", capacity = 5, refill_amount = 5, refill_every = \"1s\" }}]\n"
    );
    let r = venue(&load_str(&own_limits, &[]).unwrap());
    assert_eq!(r.limits.len(), 1);
    assert!(r.endpoints.is_empty());
    // Rewriting the weight pool (to share it in a cluster, say) keeps every endpoint's
    // documented weight from it, and drops the draws from pools no longer there.
    let shared_weight = format!(
        "{base}[exchanges.venues.bn.resilience]\nlimits = [{{ name = \"weight\", kind = \"sliding_window\", limit = 6000, window = \"1m\", shared = \"bn-ip\" }}]\n"
    );
    let r = venue(&load_str(&shared_weight, &[]).unwrap());
    let weights = |endpoints: &std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, u64>,
    >| {
        endpoints
            .iter()
            .filter_map(|(e, draws)| draws.get("weight").map(|w| (e.clone(), *w)))
            .collect::<Vec<_>>()
    };
    assert!(!weights(&defaults.endpoints).is_empty());
    assert_eq!(weights(&r.endpoints), weights(&defaults.endpoints));
    assert!(
        r.endpoints
            .values()
            .all(|d| d.keys().all(|p| p == "weight")),
        "{:?}",
        r.endpoints
    );
    // An override of one key keeps the rest of the section.
    let r = venue(
        &load_str(
            base,
            &[(
                "ORRERY__EXCHANGES__VENUES__BN__RESILIENCE__BREAKER__FAILURE_COUNT",
                "9",
            )],
        )
        .unwrap(),
    );
    assert_eq!(r.breaker.failure_count, 9);
    assert_eq!(r.limits, defaults.limits);
}

#[test]
fn agent_runtime_keys_are_checked_and_the_risk_agents_name_is_taken() {
    let text = "[agents.risk]\nenabled = true\njitter = 0.2\nrun_timeout = \"10ms\"\n\
        [[agents.trading]]\nname = \"risk\"\nvenue = \"paper\"\nsymbols = [\"BTC\"]\njitter = 1.5\n";
    let ConfigError::Invalid(issues) = load_str(text, &[]).unwrap_err() else {
        panic!("expected value issues")
    };
    let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"agents.risk.run_timeout"), "{keys:?}");
    assert!(!keys.contains(&"agents.risk.jitter"), "{keys:?}");
    assert!(keys.contains(&"agents.trading[0].jitter"), "{keys:?}");
    assert!(keys.contains(&"agents.trading[0].name"), "{keys:?}");

    let ok = "[agents.risk]\nenabled = true\njitter = 0.1\n\
        [[agents.trading]]\nname = \"t\"\nvenue = \"paper\"\nsymbols = [\"BTC\", \"ETH\"]\n\
        decision_timeout = \"10s\"\nrun_timeout = \"90s\"\n";
    let c = load_str(ok, &[]).unwrap();
    assert_eq!(c.agents.risk.jitter, 0.1);
    assert_eq!(
        c.agents.trading[0].schedule().run_timeout,
        std::time::Duration::from_secs(90)
    );
    // Without the key: one decision deadline plus the margin per symbol.
    let mut derived = c.agents.trading[0].clone();
    derived.run_timeout = None;
    assert_eq!(
        derived.schedule().run_timeout,
        std::time::Duration::from_secs(2 * (10 + 60))
    );
}
