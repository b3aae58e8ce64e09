//! The sentiment and news agent through the real binary (issue 13, item 4): a loopback
//! news server serving an RSS 2.0 feed with an ETag (304 to a matching If-None-Match) and
//! a malformed feed; the offline `local` model scoring the headlines; the signal on the
//! bus, in `orrery signals`, in `orrery sentiment` and in the prompt of a trading agent
//! subscribed to `sentiment`; the metrics; and a restart that sends the validators at
//! once and scores nothing twice.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use orrery_actors::testkit::{MockServer, Reply};
use parking_lot::Mutex;
use serde_json::Value;

const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
<title>Crypto Wire</title><link>https://wire.example/</link><description>Markets</description>
<item><title>Bitcoin ETF inflows hit a record</title><link>https://wire.example/1</link><guid isPermaLink="false">w-1</guid></item>
<item><title>Bitcoin miners see gains</title><link>https://wire.example/2</link><guid isPermaLink="false">w-2</guid></item>
<item><title>Central bank keeps rates unchanged</title><link>https://wire.example/3</link><guid isPermaLink="false">w-3</guid></item>
</channel></rss>"#;
const ETAG: &str = "\"wire-v1\"";

fn cli_json(args: &[&str]) -> Value {
    let out = run_cli(args);
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn api(port: u16, path: &str) -> Option<Value> {
    let (status, body) = http_get(port, path)?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

#[test]
fn headlines_become_a_sentiment_signal_that_reaches_the_trading_prompt() {
    let seen = Arc::new(Mutex::new(Vec::<(String, Option<String>)>::new()));
    let log = seen.clone();
    let news = MockServer::start(move |r| {
        let inm = r.header("if-none-match").map(str::to_string);
        log.lock().push((r.route().to_string(), inm.clone()));
        match r.route() {
            "/rss.xml" if inm.as_deref() == Some(ETAG) => Reply::Full {
                status: 304,
                headers: vec![("etag".into(), ETAG.into())],
                body: vec![],
            },
            "/rss.xml" => {
                Reply::raw(200, "application/rss+xml; charset=utf-8", RSS).with_header("etag", ETAG)
            }
            "/broken.xml" => Reply::raw(
                200,
                "application/rss+xml",
                "<rss version=\"2.0\"><channel><item><title>Bitcoin",
            ),
            _ => Reply::raw(404, "text/plain", "not found"),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        r#"
[[agents.sentiment]]
name = "news"
interval = "300ms"
initial_delay = "100ms"
half_life = "6h"
threshold = 0.3
[agents.sentiment.symbols]
BTC = ["bitcoin"]
ETH = ["ether", "ethereum"]
[[agents.sentiment.sources]]
name = "wire"
kind = "rss"
url = "{0}/rss.xml"
poll_interval = "300ms"
[[agents.sentiment.sources]]
name = "broken"
kind = "rss"
url = "{0}/broken.xml"
poll_interval = "300ms"
"#,
        news.url()
    );
    let cfg = test_config(dir.path(), port, &extra);
    single_model_agent(&cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("signal_kinds = []"));
    std::fs::write(
        &cfg,
        text.replace("signal_kinds = []", "signal_kinds = [\"sentiment\"]"),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();

    let mut engine = spawn_engine(&cfg, dir.path(), &[], &[]);
    // The CLI opens a stopped engine's data dir itself: ask only once the engine holds it.
    wait_for(Duration::from_secs(60), "the engine's health", || {
        assert_running(&mut engine, dir.path());
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    // The index, as `orrery sentiment` reads it from the running engine.
    let report = wait_for(Duration::from_secs(60), "a BTC sentiment signal", || {
        assert_running(&mut engine, dir.path());
        let out = run_cli(&["sentiment", "--config", c, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let btc = v["agents"][0]["symbols"]
            .as_array()?
            .iter()
            .find(|s| s["symbol"] == "BTC")?
            .clone();
        btc["last_signal"].is_object().then_some(v)
    });
    assert_eq!(report["engine_running"], true);
    let agent = &report["agents"][0];
    let btc = agent["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "BTC")
        .unwrap();
    // Lexicon: "inflows" + "record" = 1.0, "gains" = 0.5; fresh (no pubDate): mean 0.75.
    // Decay only lowers it; the weighted mean's rounding may land one ulp above 0.75.
    let index = btc["index"].as_f64().unwrap();
    assert!((0.74..=0.75 + 1e-12).contains(&index), "{btc}");
    assert_eq!(btc["last_signal"]["direction"], "long");
    let eth = agent["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "ETH")
        .unwrap();
    assert!(eth["index"].is_null(), "no ETH headline: {eth}");
    let titles: Vec<&str> = agent["headlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles.len(),
        2,
        "the rates headline names no symbol: {titles:?}"
    );
    let broken = agent["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "broken")
        .unwrap();
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("not a readable rss feed"),
        "{broken}"
    );
    let text = String::from_utf8(run_cli(&["sentiment", "--config", c]).stdout).unwrap();
    assert!(text.contains("Bitcoin ETF inflows hit a record"), "{text}");

    // On the bus and in `orrery signals`.
    let signals = cli_json(&["signals", "--config", c, "--kind", "sentiment", "--json"]);
    let s = &signals[0];
    assert_eq!(
        (s["source"].as_str(), s["symbol"].as_str()),
        (Some("news"), Some("BTC"))
    );
    assert_eq!(s["direction"], "long");
    assert!(s["evidence"]
        .as_str()
        .unwrap()
        .contains("Bitcoin ETF inflows hit a record"));

    // An agent under the runtime: `orrery agents`.
    let agents = cli_json(&["agents", "--config", c, "--json"]);
    let news_agent = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "news")
        .expect("the sentiment agent is listed");
    assert_eq!(news_agent["kind"], "sentiment");

    // Conditional GET: the next poll sends the ETag and gets 304.
    wait_for(Duration::from_secs(30), "a conditional poll", || {
        seen.lock()
            .iter()
            .any(|(route, inm)| route == "/rss.xml" && inm.as_deref() == Some(ETAG))
            .then_some(())
    });
    let metrics = wait_for(Duration::from_secs(30), "the news metrics", || {
        let (_, m) = http_get(port, "/metrics")?;
        (metric_sum(&m, "orrery_news_not_modified_total", &["source=\"wire\""]) >= 1.0
            && metric_sum(
                &m,
                "orrery_news_fetch_errors_total",
                &["source=\"broken\"", "kind=\"parse\""],
            ) >= 1.0)
            .then_some(m)
    });
    assert_eq!(
        metric_sum(&metrics, "orrery_news_items_total", &["source=\"wire\""]),
        3.0
    );
    let gauge = metric_sum(&metrics, "orrery_sentiment_index", &["symbol=\"BTC\""]);
    assert!((0.74..=0.75 + 1e-12).contains(&gauge), "{gauge}");
    let (ok, why) = promtool_check(&metrics);
    assert!(ok, "{why}");

    // The trading agent subscribed to `sentiment` sees it in its prompt and context.
    let detail = wait_for(
        Duration::from_secs(60),
        "a trading prompt with the signal",
        || {
            let rows = api(port, "/api/journal?agent=trend&symbol=BTC&limit=5")?;
            rows.as_array()?.iter().find_map(|r| {
                let d = api(port, &format!("/api/journal/{}", r["id"].as_str()?))?;
                d["prompt"]
                    .as_str()?
                    .contains("sentiment,news,long")
                    .then_some(d)
            })
        },
    );
    let signals_ctx = detail["context"]["signals"].as_array().unwrap();
    assert!(
        signals_ctx
            .iter()
            .any(|s| s["kind"] == "sentiment" && s["source"] == "news"),
        "{}",
        detail["context"]
    );

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());

    // Stopped: `orrery sentiment` reads the data dir.
    let stopped = cli_json(&["sentiment", "--config", c, "--json"]);
    assert_eq!(stopped["engine_running"], false);
    assert_eq!(
        stopped["agents"][0]["headlines"].as_array().unwrap().len(),
        2
    );

    // Restart: the first poll already sends the ETag (kept in sled), nothing is new.
    let before = seen.lock().len();
    let mut engine = spawn_engine(&cfg, dir.path(), &[], &[]);
    let first = wait_for(Duration::from_secs(60), "a poll after the restart", || {
        assert_running(&mut engine, dir.path());
        seen.lock()[before..]
            .iter()
            .find(|(route, _)| route == "/rss.xml")
            .cloned()
    });
    assert_eq!(first.1.as_deref(), Some(ETAG));
    wait_for(Duration::from_secs(30), "a 304 after the restart", || {
        let (_, m) = http_get(port, "/metrics")?;
        (metric_sum(&m, "orrery_news_not_modified_total", &["source=\"wire\""]) >= 1.0)
            .then_some(())
    });
    let (_, m) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(&m, "orrery_news_items_total", &["source=\"wire\""]),
        0.0
    );
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());
    let after = cli_json(&["sentiment", "--config", c, "--json"]);
    assert_eq!(
        after["agents"][0]["headlines"].as_array().unwrap().len(),
        2,
        "nothing scored twice"
    );

    // Journaled: the scoring request (exact prompt, the model's answer) and each run's
    // summary; a scoring request is not a trade decision, so replay says so.
    let rows = cli_json(&["journal", "--config", c, "--agent", "news", "--json"]);
    let rows = rows.as_array().unwrap();
    let scored = rows
        .iter()
        .find(|r| r["verdict"] == "SCORED" || r["action"] == "SCORED")
        .unwrap_or_else(|| panic!("a SCORED decision: {rows:?}"));
    let id = scored["id"].as_str().unwrap();
    let detail = cli_json(&["journal", "--config", c, "show", id, "--json"]);
    assert!(detail["prompt"]
        .as_str()
        .unwrap()
        .contains("[BTC] Bitcoin ETF inflows hit a record"));
    assert!(detail["members"][0]["raw_answer"]
        .as_str()
        .unwrap()
        .contains("\"scores\""));
    assert!(rows
        .iter()
        .any(|r| r["verdict"] == "INDEX" || r["action"] == "INDEX"));
    let replay = run_cli(&["replay", "--config", c, id]);
    assert!(!replay.status.success());
    assert!(
        String::from_utf8_lossy(&replay.stderr).contains("headline-scoring request"),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
}

#[test]
fn a_bad_sentiment_section_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[agents.sentiment]]
name = "news"
batch_size = 0
[agents.sentiment.symbols]
BTC = ["bitcoin"]
[[agents.sentiment.sources]]
name = "wire"
kind = "rss"
url = "ftp://wire.example/rss.xml"
"#;
    let cfg = test_config(dir.path(), free_port(), extra);
    let out = run_cli(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agents.sentiment[0].batch_size"), "{err}");
    assert!(err.contains("agents.sentiment[0].sources[0].url"), "{err}");

    let unknown = run_cli(&[
        "check-config",
        "--config",
        test_config(
            dir.path(),
            free_port(),
            &extra.replace("batch_size = 0", "sources_typo = 1"),
        )
        .to_str()
        .unwrap(),
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("sources_typo"));
}

#[test]
fn the_offline_example_runs_as_is() {
    // config/examples/agents.toml, on a private data dir and port, from the repo root
    // (its file:// source is relative to the working directory).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("agents.toml");
    let text = std::fs::read_to_string(root.join("config/examples/agents.toml"))
        .unwrap()
        .replace(
            "include = [\"../default.toml\"]",
            &format!(
                "include = [{:?}]\n[engine]\ndata_dir = {:?}\n[telemetry]\nlisten = \"127.0.0.1:{port}\"",
                root.join("config/default.toml").display().to_string(),
                dir.path().join("data").display().to_string()
            ),
        )
        .replace("initial_delay = \"2s\"", "initial_delay = \"100ms\"");
    std::fs::write(&cfg, text).unwrap();
    let c = cfg.to_str().unwrap();
    let mut engine = std::process::Command::new(BIN)
        .args(["run", "--config", c])
        .current_dir(root)
        .env_remove("ORRERY_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("engine.log")).unwrap())
        .spawn()
        .unwrap();
    let v = wait_for(Duration::from_secs(60), "the demo's signals", || {
        let (_, body) = http_get(port, "/api/sentiment")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let with_signal = v["agents"][0]["symbols"]
            .as_array()?
            .iter()
            .filter(|s| s["last_signal"].is_object())
            .count();
        (with_signal == 3).then_some(v)
    });
    let dir_of = |sym: &str| {
        v["agents"][0]["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["symbol"] == sym)
            .unwrap()["last_signal"]["direction"]
            .clone()
    };
    assert_eq!(dir_of("BTC"), "long");
    assert_eq!(dir_of("ETH"), "long");
    assert_eq!(dir_of("SOL"), "short");
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(60)).success());
}
