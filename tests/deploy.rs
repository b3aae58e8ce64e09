//! The deploy files under `deploy/`: the Prometheus alert rules pass `promtool check rules`
//! and their unit tests (`promtool test rules`), and every metric the Grafana dashboard and
//! the alert rules query exists in a live scrape of the engine (after some activity on the
//! paper venue and with a Hyperliquid venue on the project's mock, so that labelled series
//! such as breakers and rate-limit headroom exist, and with a `[cluster]` section on a
//! real `redis-server`, so that the cluster's series exist).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::testkit::RedisServer;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// `promtool` with `args` in `deploy/prometheus`; `None` when promtool is not installed and
/// the test command did not require it (scripts/test sets ORRERY_REQUIRE_PROMTOOL=1).
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
    {
        Ok(out) => Some((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Err(e) => {
            assert!(
                std::env::var("ORRERY_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "ORRERY_REQUIRE_PROMTOOL=1 but promtool cannot run ({e}); apt-get install prometheus"
            );
            eprintln!("promtool not installed: the alert rules were not checked (scripts/test installs it and requires it)");
            None
        }
    }
}

#[test]
fn the_alert_rules_and_the_scrape_config_pass_promtool_and_the_rules_unit_tests() {
    let Some((ok, out)) = promtool(&["check", "rules", "alerts.yml"]) else {
        return;
    };
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // The scrape config example loads the rules.
    let Some((ok, out)) = promtool(&["check", "config", "prometheus.yml"]) else {
        return;
    };
    assert!(
        ok && out.contains("1 rule files found"),
        "promtool check config:\n{out}"
    );
    let Some((ok, out)) = promtool(&["test", "rules", "alerts.test.yml"]) else {
        return;
    };
    assert!(ok, "promtool test rules:\n{out}");

    // Every alert has a unit test, and each test checks it both quiet and firing.
    let rules = alert_rules();
    let tests = &yaml_rust2::YamlLoader::load_from_str(
        &std::fs::read_to_string(deploy("prometheus/alerts.test.yml")).unwrap(),
    )
    .unwrap()[0];
    for (alert, _) in &rules {
        let checks: Vec<&yaml_rust2::Yaml> = tests["tests"]
            .as_vec()
            .unwrap()
            .iter()
            .flat_map(|t| t["alert_rule_test"].as_vec().unwrap().iter())
            .filter(|c| c["alertname"].as_str() == Some(alert))
            .collect();
        let fires = checks
            .iter()
            .any(|c| !c["exp_alerts"].as_vec().unwrap().is_empty());
        let quiet = checks
            .iter()
            .any(|c| c["exp_alerts"].as_vec().unwrap().is_empty());
        assert!(
            fires && quiet,
            "alert {alert}: a unit test where it fires ({fires}) and one where it does not ({quiet})"
        );
    }
}

/// Every `(alert, expr)` of `deploy/prometheus/alerts.yml`.
fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let mut rules = Vec::new();
    for group in doc["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            rules.push((
                rule["alert"].as_str().expect("alert name").to_string(),
                rule["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    rules
}

/// Collects the metric names of every selector.
struct Names(BTreeSet<String>);

impl ExprVisitor for Names {
    type Error = String;
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let selector = match expr {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(vs) = selector {
            // Every query here names its metric; a selector by labels only would match
            // anything and prove nothing.
            let name = vs
                .name
                .clone()
                .ok_or_else(|| format!("a selector without a metric name: {vs}"))?;
            self.0.insert(name);
        }
        Ok(true)
    }
}

/// The metric names `promql` selects; Grafana's interval variables replaced first.
fn metric_names(promql: &str) -> Result<BTreeSet<String>, String> {
    let promql = promql
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let expr = parser::parse(&promql).map_err(|e| format!("{e}: {promql}"))?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &expr)?;
    Ok(names.0)
}

#[test]
fn the_metric_name_extraction_sees_every_selector_and_nothing_else() {
    let names = metric_names(
        r#"sum by (le, venue) (rate(a_bucket{venue=~"$venue",x="orrery_not_a_metric"}[$__rate_interval]))
           / on (instance) b or c offset 5m"#,
    )
    .unwrap();
    assert_eq!(
        names,
        BTreeSet::from(["a_bucket".into(), "b".into(), "c".into()])
    );
    assert!(
        metric_names("sum(rate(x[5m]").is_err(),
        "a broken query is an error"
    );
}

/// Every `(what, PromQL)` of the Grafana dashboard: panel targets, annotations, and the
/// selectors of its `label_values(...)` variables.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m
                    .get("title")
                    .or_else(|| m.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or(title);
                if let Some(Value::String(expr)) = m.get("expr") {
                    out.push((title.to_string(), expr.clone()));
                }
                for (_, child) in m {
                    walk(child, title, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], "", &mut out);
    walk(&dashboard["annotations"], "", &mut out);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = var["query"]["query"].as_str() else {
            continue;
        };
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _)| selector.to_string())
            .unwrap_or_else(|| {
                panic!("variable query {query} is not label_values(selector, label)")
            });
        out.push((format!("variable {}", var["name"]), inner));
    }
    out
}

/// Sample names of an exposition (histograms as their `_bucket`, `_sum`, `_count`).
fn scraped_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_metric_of_the_dashboard_and_the_alerts_exists_in_a_live_scrape() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/orrery.json")).unwrap())
            .expect("the dashboard is JSON");
    // The Prometheus data source is a variable, and every panel and query uses it.
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "a Prometheus datasource variable"
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
        }
    }

    let mut wanted: Vec<(String, String)> = Vec::new();
    for (what, promql) in dashboard_queries(&dashboard) {
        let names = metric_names(&promql).unwrap_or_else(|e| panic!("dashboard {what}: {e}"));
        wanted.extend(
            names
                .into_iter()
                .map(|n| (format!("dashboard `{what}`"), n)),
        );
    }
    for (alert, promql) in alert_rules() {
        let names = metric_names(&promql).unwrap_or_else(|e| panic!("alert {alert}: {e}"));
        wanted.extend(names.into_iter().map(|n| (format!("alert {alert}"), n)));
    }
    let all: BTreeSet<&str> = wanted.iter().map(|(_, n)| n.as_str()).collect();
    // The panels and alerts the operator needs are there.
    for needed in [
        "orrery_engine_trading_mode",
        "orrery_exchange_account_value_usd",
        "orrery_position_realized_pnl_usd",
        "orrery_exchange_orders_total",
        "orrery_model_request_duration_seconds_bucket",
        "orrery_model_requests_total",
        "orrery_ratelimit_headroom_units",
        "orrery_breaker_state",
        "orrery_actor_restarts_total",
        "orrery_resource_level",
        "orrery_queue_depth",
        "orrery_exchange_reconciliation_drift_total",
        "orrery_swarm_quorum_lost",
        "orrery_resource_rss_bytes",
        "orrery_cluster_redis_up",
        "orrery_cluster_breaker_messages_total",
    ] {
        assert!(all.contains(needed), "nothing queries {needed}");
    }

    // A live engine: the default paper venue and agents, plus a Hyperliquid account on
    // the mock (breakers, rate limits), a cluster on a real redis-server, and one order
    // on paper.
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mock = MockHyperliquid::start(wallet, Network::Testnet);
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let section = common::hl_mock::hl_venue_section(&mock.url(), &wallet.to_string(), "3s")
        + &format!(
            "\n[cluster]\nurl = \"{}\"\nnode_id = \"deploy-test\"\n",
            redis.url()
        );
    let config = test_config(dir.path(), port, &section);
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[("HYPER_LIQUID_ETH_PRIVATE_KEY", KEY)],
    );
    wait_for(Duration::from_secs(60), "the engine's health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let buy = r#"{"venue":"paper","symbol":"BTC","side":"buy","amount":{"usd":"100"},"pricing":"market","reduce_only":false,"origin":"test"}"#;
    // 503 until the gateway has reconciled, 409 `not_owner` until the node's first lease
    // answer (a cluster node trades a venue only once it holds its lease).
    let (code, answer) = wait_for(Duration::from_secs(60), "the paper order", || {
        http_post_json(port, "/api/orders", buy).filter(|(s, _)| *s != 503 && *s != 409)
    });
    assert_eq!(code, 200, "{answer}");

    // Polled: agents, models and venues record their series within seconds of the start.
    let mut seen = (String::new(), Vec::new());
    wait_for_or_last(Duration::from_secs(60), || {
        let (status, body) = http_get(port, "/metrics")?;
        if status != 200 {
            return None;
        }
        let names = scraped_names(&body);
        let missing: Vec<(String, String)> = wanted
            .iter()
            .filter(|(_, n)| n != "up" && !names.contains(n))
            .cloned()
            .collect();
        let done = missing.is_empty();
        seen = (body, missing);
        done.then_some(())
    });
    let (scrape, missing) = seen;
    assert!(
        missing.is_empty(),
        "queried but not in a live scrape: {missing:#?}\n\nscrape:\n{scrape}"
    );
    // `up` is the one name Prometheus records itself (per scrape target), so the engine
    // never exports it; nothing else may be missing.
    assert!(!scraped_names(&scrape).contains("up"));

    signal(&engine, libc::SIGINT);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes; the caller then
/// asserts on what it saw last (so a timeout reports what was missing).
fn wait_for_or_last<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
