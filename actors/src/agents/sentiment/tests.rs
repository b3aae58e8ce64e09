//! The sentiment agent inside the crate: real loopback feed servers (RSS 2.0, Atom, JSON)
//! that answer conditional requests with 304, the real router over the offline `local`
//! rules or an OpenAI-compatible mock, the real signal bus, sled state across restarts,
//! and a manual clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use parking_lot::Mutex;

use super::*;
use crate::clock::ManualClock;
use crate::models::pool::{HealthTable, ModelPool};
use crate::models::router::{
    build_provider_with_env, DeploymentConfig, DeploymentRoute, ModelRouter, RoutingStrategy,
};
use crate::signals::{Recent, SignalFilter, SignalsConfig};
use crate::store::Store;
use crate::testkit::{MockServer, RecordedRequest, Reply};

/// 09:10 UTC on the day the feeds below were published (09:00).
const NOW: Millis = 1_796_288_400_000 + 600_000;

fn rss(items: &[(&str, &str)]) -> String {
    let mut out = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
<title>Crypto Wire</title><link>https://wire.example/</link><description>Markets</description>
<lastBuildDate>Thu, 03 Dec 2026 09:00:00 GMT</lastBuildDate>
"#,
    );
    for (guid, title) in items {
        out.push_str(&format!(
            "<item><title>{title}</title><link>https://wire.example/{guid}</link><guid isPermaLink=\"false\">{guid}</guid><pubDate>Thu, 03 Dec 2026 09:00:00 GMT</pubDate><description>...</description></item>\n"
        ));
    }
    out.push_str("</channel></rss>");
    out
}

fn atom(entries: &[(&str, &str)]) -> String {
    let mut out = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Chain Daily</title><id>urn:uuid:60a76c80-d399-11d9-b91C-0003939e0af6</id>
<updated>2026-12-03T09:00:00Z</updated><link href="https://daily.example/"/>
"#,
    );
    for (id, title) in entries {
        out.push_str(&format!(
            "<entry><title>{title}</title><id>urn:daily:{id}</id><link href=\"https://daily.example/{id}\"/><updated>2026-12-03T09:00:00Z</updated><published>2026-12-03T09:00:00Z</published><summary>...</summary></entry>\n"
        ));
    }
    out.push_str("</feed>");
    out
}

fn json_doc(items: &[(&str, &str)]) -> String {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|(id, title)| {
            serde_json::json!({"id": id, "headline": title, "url": format!("https://api.example/{id}"), "published": "2026-12-03T09:00:00Z"})
        })
        .collect();
    serde_json::json!({"status": "ok", "data": {"items": items}}).to_string()
}

/// What the feed server serves; tests change it between polls.
#[derive(Clone)]
struct Feeds {
    rss: Arc<Mutex<String>>,
    atom: Arc<Mutex<String>>,
    json: Arc<Mutex<String>>,
}

const LAST_MODIFIED: &str = "Thu, 03 Dec 2026 09:00:00 GMT";

/// A server as news sites answer: `/rss.xml` with an ETag, `/atom.xml` with a
/// Last-Modified, `/api/news` (JSON) with both; a request whose validator matches the
/// current document gets 304 with no body. The ETag is a hash of the body, so a changed
/// document is served whole.
fn feed_server(feeds: &Feeds) -> MockServer {
    let f = feeds.clone();
    MockServer::start(move |r: &RecordedRequest| {
        let (body, ct) = match r.route() {
            "/rss.xml" => (f.rss.lock().clone(), "application/rss+xml; charset=utf-8"),
            "/atom.xml" => (f.atom.lock().clone(), "application/atom+xml"),
            "/api/news" => (f.json.lock().clone(), "application/json"),
            _ => return Reply::raw(404, "text/plain", "not found"),
        };
        let etag = format!("\"{}\"", &state::digest(&body)[..40]);
        let lm = LAST_MODIFIED.to_string();
        let uses_etag = r.route() != "/atom.xml";
        let uses_lm = r.route() != "/rss.xml";
        let etag_hit = uses_etag && r.header("if-none-match") == Some(etag.as_str());
        let lm_hit = uses_lm && !uses_etag && r.header("if-modified-since") == Some(lm.as_str());
        if etag_hit || lm_hit {
            return Reply::Full {
                status: 304,
                headers: vec![],
                body: vec![],
            };
        }
        let mut reply = Reply::raw(200, ct, body);
        if uses_etag {
            reply = reply.with_header("etag", &etag);
        }
        if uses_lm {
            reply = reply.with_header("last-modified", &lm);
        }
        reply
    })
}

fn source(name: &str, kind: SourceKind, url: String) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        kind,
        url,
        poll_interval: Duration::from_secs(60),
        max_items_per_poll: 50,
        timeout: Duration::from_secs(5),
        max_bytes: 1 << 20,
        items: (kind == SourceKind::Json).then(|| "/data/items".into()),
        id: None,
        title: (kind == SourceKind::Json).then(|| "/headline".into()),
        link: None,
        published: None,
    }
}

fn config(sources: Vec<SourceConfig>) -> SentimentAgentConfig {
    let mut symbols = BTreeMap::new();
    symbols.insert("BTC".to_string(), vec!["bitcoin".to_string()]);
    symbols.insert(
        "ETH".to_string(),
        vec!["ether".to_string(), "ethereum".to_string()],
    );
    SentimentAgentConfig {
        name: "news".into(),
        interval: Duration::from_secs(60),
        initial_delay: Duration::ZERO,
        jitter: 0.0,
        run_timeout: None,
        symbols,
        model: "default".into(),
        batch_size: 20,
        score_timeout: Duration::from_secs(5),
        half_life: Duration::from_secs(3600),
        threshold: 0.3,
        min_move: 0.2,
        signal_ttl: Duration::from_secs(3600),
        max_item_age: Duration::from_secs(24 * 3600),
        seen_ttl: Duration::from_secs(7 * 24 * 3600),
        max_seen: 10_000,
        headlines_kept: 100,
        sources,
    }
}

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_API_KEY").then(|| "sk-test-news".to_string())
}

/// A router whose `default` model is `deployment`.
fn router(deployment: DeploymentConfig) -> ModelClient {
    let health = HealthTable::new();
    let provider = build_provider_with_env(&deployment, &env).expect("provider builds");
    let pool = ModelPool::new(
        deployment.id.clone(),
        provider,
        deployment.pool_settings(),
        health.entry(&deployment.id),
    )
    .start();
    let route = DeploymentRoute::new(deployment.id.clone(), Arc::new(pool));
    let addr = ModelRouter::new(health, Store::temporary().unwrap())
        .with_model("default", RoutingStrategy::OrderedFallback, vec![route])
        .start();
    let slot = Slot::<ModelRouter>::new();
    slot.fill(addr, slot.next_token(), "test/router");
    ModelClient::from_slot(slot)
}

fn openai(server: &MockServer) -> DeploymentConfig {
    let mut d = DeploymentConfig::http("mock", "openai", "gpt-4o-mini");
    d.base_url = Some(format!("{}/v1", server.url()));
    d.timeout = Duration::from_secs(5);
    d.health_check_interval = Duration::ZERO;
    d
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    bus: Slot<SignalBus>,
    models: ModelClient,
}

fn world(models: ModelClient) -> World {
    let store = Store::temporary().unwrap();
    let clock = ManualClock::new(NOW);
    let bus = Slot::<SignalBus>::new();
    let shared: SharedClock = clock.clone();
    bus.fill(
        SignalBus::open(&store, SignalsConfig::default(), shared)
            .unwrap()
            .start(),
        bus.next_token(),
        "test/signals",
    );
    World {
        store,
        clock,
        bus,
        models,
    }
}

impl World {
    /// A fresh agent on the world's store (as after a restart).
    fn deps(&self) -> SentimentDeps {
        SentimentDeps {
            models: self.models.clone(),
            signals: self.bus.clone(),
            journal: DecisionJournal::open(&self.store).unwrap(),
            state: SentimentState::open(&self.store, "news").unwrap(),
            clock: self.clock.clone(),
        }
    }

    async fn run(&self, config: &SentimentAgentConfig) -> RunReport {
        let matcher = SymbolMatcher::new(&config.symbols);
        let client = fetch::client().unwrap();
        run_once(config, &self.deps(), &matcher, &client)
            .await
            .unwrap()
    }
}

fn local() -> ModelClient {
    router(DeploymentConfig::local("local"))
}

fn feeds() -> Feeds {
    Feeds {
        rss: Arc::new(Mutex::new(rss(&[
            ("r1", "Bitcoin ETF inflows hit a record"),
            ("r2", "Weather is mild today"),
        ]))),
        atom: Arc::new(Mutex::new(atom(&[(
            "a1",
            "Ether rallies after the upgrade",
        )]))),
        json: Arc::new(Mutex::new(json_doc(&[("j1", "Bitcoin miners see gains")]))),
    }
}

fn three_sources(server: &MockServer) -> Vec<SourceConfig> {
    vec![
        source("wire", SourceKind::Rss, format!("{}/rss.xml", server.url())),
        source(
            "daily",
            SourceKind::Atom,
            format!("{}/atom.xml", server.url()),
        ),
        source(
            "api",
            SourceKind::Json,
            format!("{}/api/news", server.url()),
        ),
    ]
}

#[actix::test]
async fn conditional_gets_send_the_validators_and_304_is_handled_across_a_restart() {
    let f = feeds();
    let server = feed_server(&f);
    let w = world(local());
    let cfg = config(three_sources(&server));

    let first = w.run(&cfg).await;
    assert_eq!(first.failures, Vec::<String>::new());
    assert_eq!(first.polled.len(), 3);
    assert_eq!(first.not_modified, Vec::<String>::new());
    assert_eq!(
        first.new_headlines, 3,
        "the weather headline names no symbol"
    );
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("if-none-match").is_none() && r.header("if-modified-since").is_none()));

    // Not due yet: nothing is fetched.
    w.clock.advance(30_000);
    assert_eq!(w.run(&cfg).await.polled, Vec::<String>::new());
    assert_eq!(server.requests().len(), 3);

    // Due, unchanged: every source sends its validators and gets 304.
    w.clock.advance(30_000);
    let second = w.run(&cfg).await;
    assert_eq!(second.not_modified.len(), 3, "{second:?}");
    assert_eq!(second.new_headlines, 0);
    let reqs = server.requests();
    let last = |route: &str| {
        reqs.iter()
            .rev()
            .find(|r| r.route() == route)
            .unwrap()
            .clone()
    };
    assert!(last("/rss.xml").header("if-none-match").is_some());
    assert_eq!(
        last("/atom.xml").header("if-modified-since"),
        Some(LAST_MODIFIED)
    );
    assert!(last("/api/news").header("if-none-match").is_some());
    assert_eq!(
        last("/api/news").header("if-modified-since"),
        Some(LAST_MODIFIED)
    );

    // A restarted agent (same data dir) still sends them.
    w.clock.advance(60_000);
    let after_restart = w.run(&cfg).await;
    assert_eq!(after_restart.not_modified.len(), 3);

    // A changed feed is fetched whole; only the new item is new.
    *f.rss.lock() = rss(&[
        ("r3", "Bitcoin slumps as exchange is hacked"),
        ("r1", "Bitcoin ETF inflows hit a record"),
    ]);
    w.clock.advance(60_000);
    let changed = w.run(&cfg).await;
    assert_eq!(changed.not_modified.len(), 2);
    assert_eq!(changed.new_headlines, 1);
    let st = w.deps().state.source("wire").unwrap();
    assert_eq!((st.items, st.not_modified, st.errors), (3, 2, 0));
}

#[actix::test]
async fn items_are_deduplicated_across_polls_and_restarts() {
    // A server that ignores validators: every poll is a full 200.
    let body = Arc::new(Mutex::new(rss(&[
        ("g1", "Bitcoin surges"),
        ("g2", "Ether slumps"),
    ])));
    let b = body.clone();
    let server =
        MockServer::start(move |_| Reply::raw(200, "application/rss+xml", b.lock().clone()));
    let w = world(local());
    let cfg = config(vec![source(
        "wire",
        SourceKind::Rss,
        format!("{}/feed", server.url()),
    )]);
    assert_eq!(w.run(&cfg).await.new_headlines, 2);
    w.clock.advance(60_000);
    assert_eq!(w.run(&cfg).await.new_headlines, 0);
    // The same guid with an edited title is the same item; a new guid is new.
    *body.lock() = rss(&[("g1", "Bitcoin surges again"), ("g3", "Bitcoin climbs")]);
    w.clock.advance(60_000);
    let r = w.run(&cfg).await;
    assert_eq!(r.new_headlines, 1);
    assert_eq!(r.scored, 1);
    // After a restart (fresh deps on the same store), nothing is new either.
    w.clock.advance(60_000);
    assert_eq!(w.run(&cfg).await.new_headlines, 0);
    let headlines = w.deps().state.headlines(10).unwrap();
    assert_eq!(
        headlines.len(),
        3,
        "each headline scored once: {headlines:?}"
    );
}

#[actix::test]
async fn a_malformed_feed_is_an_error_of_that_source_only() {
    let f = feeds();
    let server = feed_server(&f);
    let broken = MockServer::start(|_| {
        Reply::raw(
            200,
            "application/rss+xml",
            "<rss version=\"2.0\"><channel><item><title>Bitcoin",
        )
    });
    let down = MockServer::start(|_| Reply::raw(503, "text/plain", "maintenance"));
    let w = world(local());
    let mut sources = three_sources(&server);
    sources.push(source(
        "broken",
        SourceKind::Rss,
        format!("{}/feed", broken.url()),
    ));
    sources.push(source(
        "down",
        SourceKind::Rss,
        format!("{}/feed", down.url()),
    ));
    let cfg = config(sources);
    let r = w.run(&cfg).await;
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert!(
        r.failures[0].contains("source `broken`"),
        "{:?}",
        r.failures
    );
    assert!(
        r.failures[1].contains("source `down`: HTTP 503"),
        "{:?}",
        r.failures
    );
    assert_eq!(r.new_headlines, 3, "the healthy sources are read");
    assert_eq!(r.scored, 3);
    let st = w.deps().state.source("broken").unwrap();
    assert_eq!(st.errors, 1);
    assert_eq!(st.validators, fetch::Validators::default());
    assert!(st.last_error.unwrap().contains("not a readable rss feed"));
    // The run's failure is journaled in its summary.
    let journal = DecisionJournal::open(&w.store).unwrap();
    let summary = journal.recent(1).unwrap().pop().unwrap();
    assert_eq!(summary.action.as_deref(), Some("INDEX"));
    assert!(summary.error.unwrap().contains("source `down`"));
}

#[actix::test]
async fn the_offline_local_model_scores_and_the_index_signals_on_the_bus() {
    let f = feeds();
    let server = feed_server(&f);
    let w = world(local());
    let cfg = config(three_sources(&server));
    let r = w.run(&cfg).await;
    assert_eq!(r.scored, 3);
    // Lexicon: "inflows" + "record" = 1.0; "gains" = 0.5; "rallies" + "upgrade" = 1.0.
    // All published 10 minutes ago with a 1 h half-life: weight 2^(-1/6) each.
    let w10 = (-1.0f64 / 6.0).exp2();
    let btc = (1.0 * w10 + 0.5 * w10) / (2.0 * w10);
    let eth = (1.0 * w10) / 1.0;
    assert!((r.index["BTC"] - btc).abs() < 1e-9, "{:?}", r.index);
    assert!((r.index["ETH"] - eth).abs() < 1e-9, "{:?}", r.index);
    assert_eq!(
        r.signals,
        vec![
            ("BTC".to_string(), Direction::Long),
            ("ETH".to_string(), Direction::Long)
        ]
    );
    let found = w
        .bus
        .send(Recent(SignalFilter {
            kinds: vec![SignalKind::Sentiment],
            symbol: Some("BTC".into()),
            ..SignalFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let s = &found[0];
    assert_eq!(s.source, "news");
    assert_eq!(s.direction, Direction::Long);
    assert_eq!(s.value, Decimal::try_from(btc).unwrap().round_dp(4));
    assert!(
        s.evidence.contains("Bitcoin ETF inflows hit a record"),
        "{}",
        s.evidence
    );
    assert!(
        s.evidence.contains("Bitcoin miners see gains"),
        "{}",
        s.evidence
    );
    assert_eq!(s.ttl_ms, 3_600_000);

    // No news: the index decays; one half-life later BTC reads half (W < 1 by then) and
    // has not moved by more than min_move, so no new signal; two more and it is neutral.
    w.clock.advance(3_600_000);
    let later = w.run(&cfg).await;
    let expected = {
        let (s, ww) = (1.5 * w10 * 0.5, 2.0 * w10 * 0.5);
        s / ww.max(1.0)
    };
    assert!(
        (later.index["BTC"] - expected).abs() < 1e-9,
        "{:?}",
        later.index
    );
    w.clock.advance(2 * 3_600_000);
    let faded = w.run(&cfg).await;
    assert!(
        faded
            .signals
            .contains(&("BTC".to_string(), Direction::Neutral)),
        "{faded:?}"
    );
}

const SCORES_OK: &str =
    r#"{"scores":[{"n":1,"symbol":"BTC","score":0.7},{"n":2,"symbol":"ETH","score":-0.6}]}"#;

#[actix::test]
async fn batches_go_to_an_openai_compatible_model_and_answers_are_cached() {
    let answers = Arc::new(Mutex::new(vec![
        "Bitcoin looks strong, ether weak.".to_string(),
        r#"{"scores":[{"n":1,"symbol":"BTC","score":-0.2}]}"#.to_string(),
        SCORES_OK.to_string(),
    ]));
    let a = answers.clone();
    let llm = MockServer::start(move |_| {
        let mut a = a.lock();
        let next = if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        };
        Reply::openai_chat_completion(&next)
    });
    let f = Feeds {
        rss: Arc::new(Mutex::new(rss(&[
            ("r1", "Bitcoin ETF inflows hit a record"),
            ("r2", "Ether slumps"),
            ("r3", "Bitcoin trades sideways"),
        ]))),
        atom: Arc::new(Mutex::new(atom(&[]))),
        json: Arc::new(Mutex::new(json_doc(&[]))),
    };
    let server = feed_server(&f);
    let w = world(router(openai(&llm)));
    let mut cfg = config(vec![source(
        "wire",
        SourceKind::Rss,
        format!("{}/rss.xml", server.url()),
    )]);
    cfg.batch_size = 2;

    // First run: batch 1 (headlines 1 and 2, in feed order) is answered in prose and
    // refused; batch 2 (headline 3) is scored.
    let r = w.run(&cfg).await;
    assert_eq!(r.new_headlines, 3);
    assert_eq!(r.scored, 1, "{r:?}");
    assert_eq!(r.failures.len(), 1);
    assert!(
        r.failures[0].contains("unreadable scores"),
        "{:?}",
        r.failures
    );
    let bodies: Vec<serde_json::Value> = llm
        .requests()
        .iter()
        .filter_map(|r| r.body_json())
        .collect();
    assert_eq!(bodies.len(), 2);
    let prompt = bodies[0]["messages"].to_string();
    assert!(
        prompt.contains("1. [BTC] Bitcoin ETF inflows hit a record"),
        "{prompt}"
    );
    assert!(prompt.contains("2. [ETH] Ether slumps"), "{prompt}");
    let journal = DecisionJournal::open(&w.store).unwrap();
    let refused = journal
        .recent(10)
        .unwrap()
        .into_iter()
        .find(|d| d.outcome == "not_scored")
        .expect("the refused batch is journaled");
    assert!(refused.error.unwrap().contains("not a JSON object"));
    assert_eq!(
        refused.raw_answer.as_deref(),
        Some("Bitcoin looks strong, ether weak.")
    );
    assert!(refused.prompt.contains("Bitcoin ETF inflows"));

    // Next run: the two pending headlines are asked again and scored.
    w.clock.advance(60_000);
    let r = w.run(&cfg).await;
    assert_eq!(r.scored, 2, "{r:?}");
    assert_eq!(r.failures, Vec::<String>::new());
    let h = w.deps().state.headlines(10).unwrap();
    let scores: BTreeMap<&str, f64> = h
        .iter()
        .flat_map(|h| h.scores.values().map(move |v| (h.title.as_str(), *v)))
        .collect();
    assert_eq!(scores["Bitcoin ETF inflows hit a record"], 0.7);
    assert_eq!(scores["Ether slumps"], -0.6);
    assert_eq!(scores["Bitcoin trades sideways"], -0.2);

    // The same headline from another source is scored from the cache: no request.
    let asked = llm.requests().len();
    *f.json.lock() = json_doc(&[("other-id", "Ether slumps")]);
    let mut cfg2 = cfg.clone();
    cfg2.sources.push(source(
        "api",
        SourceKind::Json,
        format!("{}/api/news", server.url()),
    ));
    w.clock.advance(60_000);
    let r = w.run(&cfg2).await;
    assert_eq!((r.new_headlines, r.scored), (1, 1));
    assert_eq!(llm.requests().len(), asked);
    assert!(w.deps().state.headlines(1).unwrap()[0].cached);
}

#[actix::test]
async fn file_sources_read_a_local_feed_and_an_unchanged_file_is_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.xml");
    std::fs::write(&path, rss(&[("f1", "Bitcoin surges")])).unwrap();
    let w = world(local());
    let cfg = config(vec![source(
        "local-file",
        SourceKind::Rss,
        format!("file://{}", path.display()),
    )]);
    assert_eq!(w.run(&cfg).await.new_headlines, 1);
    w.clock.advance(60_000);
    assert_eq!(
        w.run(&cfg).await.not_modified,
        vec!["local-file".to_string()]
    );
    let missing = config(vec![source(
        "gone",
        SourceKind::Rss,
        "file:///nonexistent/feed.xml".into(),
    )]);
    let r = w.run(&missing).await;
    assert!(
        r.failures[0].contains("cannot read /nonexistent/feed.xml"),
        "{:?}",
        r.failures
    );
}

#[test]
fn symbols_are_matched_by_whole_words_and_aliases() {
    let m = SymbolMatcher::new(&config(vec![]).symbols);
    assert_eq!(m.symbols_in("Bitcoin and Ethereum rally"), ["BTC", "ETH"]);
    assert_eq!(m.symbols_in("BTC dips"), ["BTC"]);
    assert_eq!(m.symbols_in("Bitcoiners gather"), Vec::<String>::new());
    assert_eq!(m.symbols_in("Tether mints more"), Vec::<String>::new());
}

#[test]
fn bad_config_names_the_key() {
    let mut c = config(vec![source("wire", SourceKind::Rss, "ftp://x/feed".into())]);
    c.batch_size = 0;
    c.sources[0].items = Some("data".into());
    c.symbols.insert("B-T".into(), vec![]);
    let mut issues = crate::validate::Issues::default();
    c.validate("agents.sentiment[0]", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"agents.sentiment[0].batch_size"), "{keys:?}");
    assert!(
        keys.contains(&"agents.sentiment[0].sources[0].url"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"agents.sentiment[0].sources[0].items"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"agents.sentiment[0].symbols.B-T"),
        "{keys:?}"
    );
    let mut none = config(vec![]);
    none.sources.clear();
    let mut issues = crate::validate::Issues::default();
    none.validate("a", &mut issues);
    assert_eq!(issues.0[0].key, "a.sources");
}

#[actix::test]
async fn a_hung_or_oversized_source_fails_alone_within_its_deadline() {
    let f = feeds();
    let server = feed_server(&f);
    let hung = MockServer::start(|_| Reply::Hang);
    let big = MockServer::start(|_| Reply::raw(200, "application/rss+xml", vec![b' '; 4096]));
    let w = world(local());
    let mut sources = vec![source(
        "wire",
        SourceKind::Rss,
        format!("{}/rss.xml", server.url()),
    )];
    let mut slow = source("hung", SourceKind::Rss, format!("{}/feed", hung.url()));
    slow.timeout = Duration::from_millis(200);
    sources.push(slow);
    let mut small = source("big", SourceKind::Rss, format!("{}/feed", big.url()));
    small.max_bytes = 1024;
    sources.push(small);
    let r = w.run(&config(sources)).await;
    assert_eq!(r.new_headlines, 1, "the healthy source is read: {r:?}");
    let kinds: Vec<String> = ["hung", "big"]
        .iter()
        .map(|s| w.deps().state.source(s).unwrap().last_error.unwrap())
        .collect();
    assert!(kinds[0].contains("no answer within 200ms"), "{kinds:?}");
    assert!(kinds[1].contains("larger than max_bytes"), "{kinds:?}");
}
