//! Shared rate limits across engine processes (issue 16, point 2): three `orrery run`
//! processes with `[cluster]` on one real `redis-server`, each reaching one Hyperliquid
//! mock through its own door (so the mock's record tells the nodes apart), each with
//! funding agents that read far more weight than the IP's budget allows. The mock keeps
//! Hyperliquid's per-IP budget and answers 429 past it.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use orrery_actors::exchanges::binance_futures::mock::{
    MockBinanceFutures, MOCK_API_KEY, MOCK_API_SECRET,
};
use orrery_actors::exchanges::binance_futures::{API_KEY_ENV, API_SECRET_ENV};
use orrery_actors::exchanges::hyperliquid::mock::MockHyperliquid;
use orrery_actors::exchanges::hyperliquid::{Network, PrivateKey};
use orrery_actors::testkit::{RecordedRequest, RedisServer};

const KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
const SCOPE: &str = "hl-ip";

fn hl_mock() -> MockHyperliquid {
    MockHyperliquid::start(
        PrivateKey::from_hex(KEY).unwrap().address(),
        Network::Testnet,
    )
}

/// Hyperliquid's documented weight of a request, as the mock charges it (the answers
/// here are short, so no per-item extra).
fn weight(r: &RecordedRequest) -> u64 {
    if r.path.ends_with("/exchange") {
        return 1;
    }
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    match body["type"].as_str().unwrap_or("") {
        "l2Book"
        | "allMids"
        | "clearinghouseState"
        | "orderStatus"
        | "spotClearinghouseState"
        | "exchangeStatus" => 2,
        "userRole" => 60,
        _ => 20,
    }
}

fn weight_of(requests: &[RecordedRequest]) -> u64 {
    requests.iter().map(weight).sum()
}

/// One node's config: the cluster, the venue through `door` with the shared weight pool,
/// and three funding agents reading it every 100 ms. The agents are named after the node:
/// an agent runs only on the node holding its lease, so agents of one name would all run
/// on whichever node took their leases first.
fn node_config(
    dir: &Path,
    port: u16,
    node: &str,
    redis: &str,
    door: &str,
    (limit, window, share): (u64, &str, f64),
) -> std::path::PathBuf {
    let wallet = PrivateKey::from_hex(KEY).unwrap().address();
    let mut extra = format!(
        r#"
[cluster]
url = "{redis}"
node_id = "{node}"
key_prefix = "t:"
expected_nodes = 3

[exchanges.venues.hl]
kind = "hyperliquid"
network = "testnet"
base_url = "{door}"
wallet_address = "{wallet}"
request_timeout = "2s"
streams = false

[exchanges.venues.hl.resilience]
limits = [
  {{ name = "weight", kind = "sliding_window", limit = {limit}, window = "{window}", shared = "{SCOPE}", local_share = {share} }},
]
"#
    );
    extra.push_str(&funding_agents(&format!("funding-{node}"), "hl", 3));
    test_config(dir, port, &extra)
}

struct Node {
    engine: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.engine.kill();
        let _ = self.engine.wait();
    }
}

fn start_nodes(redis: &str, doors: &[String], budget: (u64, &str, f64)) -> Vec<Node> {
    start_nodes_with(doors.len(), &[], |dir, port, i| {
        node_config(dir, port, &format!("n{i}"), redis, &doors[i], budget)
    })
}

/// `n` engines, node `i` with the config `config(dir, port, i)` writes, and `env`; each
/// serving before this returns.
fn start_nodes_with(
    n: usize,
    env: &[(&str, &str)],
    config: impl Fn(&Path, u16, usize) -> std::path::PathBuf,
) -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let config = config(dir.path(), port, i);
            let engine = spawn_engine(&config, dir.path(), &[], env);
            Node {
                engine,
                port,
                _dir: dir,
            }
        })
        .collect();
    for n in nodes.iter_mut() {
        let started = Instant::now();
        while http_get(n.port, "/health")
            .filter(|(s, _)| *s == 200)
            .is_none()
        {
            let exited = n.engine.try_wait().ok().flatten().is_some();
            if exited || started.elapsed() > Duration::from_secs(40) {
                let logs: String = walk(n._dir.path())
                    .iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "log"))
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                    .collect();
                let tail: String = logs.lines().rev().take(30).collect::<Vec<_>>().join("\n");
                panic!(
                    "the engine on port {} never served; log tail (newest first):\n{tail}",
                    n.port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    nodes
}

fn metric(port: u16, name: &str, labels: &[&str]) -> Option<f64> {
    let (status, text) = http_get(port, "/metrics")?;
    (status == 200 && text.contains(name)).then(|| metric_sum(&text, name, labels))
}

/// The real figure: 1 200 weight per minute, saturated early by three nodes. The mock
/// never refuses, and the combined weight in its window never passes 1 200.
#[test]
fn three_nodes_never_pass_hyperliquids_1200_per_minute_together() {
    let redis = RedisServer::start().unwrap();
    let mock = hl_mock();
    mock.set_ip_weight_limit(1200, Duration::from_secs(60));
    let doors = [mock.another_endpoint(), mock.another_endpoint()];
    let urls = [mock.url(), doors[0].url(), doors[1].url()];
    let nodes = start_nodes(&redis.url(), &urls, (1200, "1m", 0.33));

    // Saturate: the agents want far more than 1 200 a minute.
    wait_for(Duration::from_secs(30), "the budget to be spent", || {
        (mock.ip_weight_used() >= 1150).then_some(())
    });
    let started = Instant::now();
    // The mock admits no more than 1 200 in its minute whatever the nodes do, so what can
    // fail is that it had to refuse: watched while the nodes keep contending.
    while started.elapsed() < Duration::from_secs(4) {
        let refused = mock.ip_refusals();
        assert_eq!(
            refused, 0,
            "the mock answered 429 for weight {refused} times"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mock.ip_refusals(), 0, "the mock answered 429 for weight");
    let per_door = [
        weight_of(&mock.requests()),
        weight_of(&doors[0].requests()),
        weight_of(&doors[1].requests()),
    ];
    assert!(per_door.iter().sum::<u64>() <= 1200, "{per_door:?}");
    // Every node drew from the cluster budget, and none fell back.
    for n in &nodes {
        let admitted = metric(
            n.port,
            "orrery_cluster_limit_draws_total",
            &[&format!("scope=\"{SCOPE}\""), "outcome=\"admitted\""],
        )
        .unwrap_or(0.0);
        assert!(admitted > 0.0, "node on port {} never drew", n.port);
        assert_eq!(
            metric(n.port, "orrery_cluster_limit_fallback", &[SCOPE]),
            Some(0.0)
        );
    }
}

/// A short window so contention lasts many windows within the test: each node gets
/// about a third of what was admitted while all three contended; then Redis is killed
/// (each node falls back to its local share and says so) and restarted (they rejoin).
#[test]
fn contending_nodes_share_fairly_fall_back_and_rejoin() {
    let mut redis = RedisServer::start().unwrap();
    let mock = hl_mock();
    // The cluster budget: 600 per 2 s.
    mock.set_ip_weight_limit(600, Duration::from_secs(2));
    let doors = [mock.another_endpoint(), mock.another_endpoint()];
    let urls = [mock.url(), doors[0].url(), doors[1].url()];
    let nodes = start_nodes(&redis.url(), &urls, (600, "2s", 0.33));
    let record = || {
        [
            weight_of(&mock.requests()),
            weight_of(&doors[0].requests()),
            weight_of(&doors[1].requests()),
        ]
    };

    // Greedy nodes spend a window's budget in one burst as soon as it frees, so the
    // record is read between bursts (no request for 300 ms): a boundary inside a burst
    // would count one node's part of it and not another's.
    let between_bursts = || {
        let mut last = record();
        let mut quiet = 0;
        while quiet < 3 {
            std::thread::sleep(Duration::from_millis(100));
            let now = record();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
        last
    };
    // All three serve and contend: measure over about 10 s (four windows and the hold).
    std::thread::sleep(Duration::from_secs(2));
    let before = between_bursts();
    std::thread::sleep(Duration::from_secs(10));
    let after = between_bursts();
    let got: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let total: u64 = got.iter().sum();
    assert!(total >= 1500, "the nodes did not contend: {got:?}");
    eprintln!("weight per node while contending for 10 s: {got:?} (total {total})");
    let third = total as f64 / 3.0;
    for g in &got {
        assert!(
            (*g as f64 - third).abs() <= third * 0.15,
            "unfair split of {total}: {got:?}"
        );
    }
    assert_eq!(mock.ip_refusals(), 0, "the mock answered 429 for weight");

    // Redis dies: every node falls back to 0.33 × 600 = 198 per 2 s, and says so.
    redis.kill();
    for n in &nodes {
        wait_for(Duration::from_secs(10), "the fallback gauge", || {
            (metric(n.port, "orrery_cluster_limit_fallback", &[SCOPE]) == Some(1.0)).then_some(())
        });
    }
    // ... and says so in its status too.
    for n in &nodes {
        let (_, body) = http_get(n.port, "/api/status").expect("status served");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let line = &status["shared_limits"][0];
        assert_eq!(
            (line["scope"].as_str(), line["mode"].as_str()),
            (Some(SCOPE), Some("fallback")),
            "{body}"
        );
    }
    // From the switch on (what a node drew from the cluster in the window counts against
    // its share), each stays within its share over any stretch shorter than a window.
    let before = record();
    std::thread::sleep(Duration::from_millis(1900));
    let after = record();
    eprintln!(
        "weight per node over 1.9 s in fallback: {:?}",
        after
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>()
    );
    for (i, (a, b)) in after.iter().zip(before).enumerate() {
        // 198 is nine 20-weight reads; one more may have been admitted just before.
        assert!(a - b <= 200 + 20, "node {i} drew {} in fallback", a - b);
    }
    for n in &nodes {
        let fallback = metric(
            n.port,
            "orrery_cluster_limit_draws_total",
            &[&format!("scope=\"{SCOPE}\""), "outcome=\"fallback\""],
        )
        .unwrap_or(0.0);
        assert!(
            fallback > 0.0,
            "node on port {} served nothing locally",
            n.port
        );
    }

    // Redis returns (empty): they rejoin.
    redis.restart().unwrap();
    for n in &nodes {
        wait_for(Duration::from_secs(10), "the rejoin", || {
            (metric(n.port, "orrery_cluster_limit_fallback", &[SCOPE]) == Some(0.0)).then_some(())
        });
        let (_, body) = http_get(n.port, "/api/status").expect("status served");
        assert!(body.contains(r#""mode":"shared""#), "{body}");
    }
}

/// Binance USDⓈ-M, as its documentation weighs each request (the mock charges the same).
fn futures_weight(r: &RecordedRequest) -> u64 {
    let route = r.path.split('?').next().unwrap_or("");
    match (r.method.as_str(), route) {
        ("GET", "/fapi/v1/ticker/bookTicker") => 2,
        ("GET", "/fapi/v1/klines") => 5,
        ("GET", "/fapi/v1/userTrades" | "/fapi/v2/account" | "/fapi/v2/positionRisk") => 5,
        ("GET", "/fapi/v1/positionSide/dual") => 30,
        ("POST", "/fapi/v1/order") => 0,
        _ => 1,
    }
}

const FUTURES_SCOPE: &str = "bnf-ip";
const FUTURES_BUDGET: u64 = 300;

/// A node trading a Binance USDⓈ-M account whose IP weight names a shared scope, with two
/// funding agents reading the venue every 100 ms (node 0 only: node 1's reads are the
/// account's connector and the market route).
fn futures_node_config(
    dir: &Path,
    port: u16,
    i: usize,
    redis: &str,
    url: &str,
) -> std::path::PathBuf {
    let mut extra = format!(
        r#"
[cluster]
url = "{redis}"
node_id = "f{i}"
key_prefix = "bnf:"
expected_nodes = 2

[exchanges.venues.bnf]
kind = "binance_futures"
base_url = "{url}"
symbols = ["BTC", "ETH"]
request_timeout = "2s"
streams = false

[exchanges.venues.bnf.resilience]
limits = [
  {{ name = "weight", kind = "sliding_window", limit = {FUTURES_BUDGET}, window = "1m", shared = "{FUTURES_SCOPE}", local_share = 0.5 }},
  {{ name = "orders", kind = "token_bucket", capacity = 300, refill_amount = 300, refill_every = "10s" }},
  {{ name = "orders_1m", kind = "sliding_window", limit = 1200, window = "1m" }},
]
"#
    );
    if i == 0 {
        extra.push_str(&funding_agents("funding", "bnf", 2));
    }
    test_config(dir, port, &extra)
}

/// Two nodes on one Binance USDⓈ-M account (one IP): node 0's funding agents (the
/// derivatives reader) spend the minute's shared budget; the accounts' connectors draw
/// from it too, and so does the market route of node 1, which has no agents. Within the
/// minute the mock records no more than the budget, and once it is spent node 1's route
/// is refused by the cluster budget without reaching the venue.
#[test]
fn binance_futures_readers_connectors_and_market_routes_share_one_budget() {
    let redis = RedisServer::start().unwrap();
    let mock = MockBinanceFutures::start();
    let keys = [
        (API_KEY_ENV, MOCK_API_KEY),
        (API_SECRET_ENV, MOCK_API_SECRET),
        // Holds the shipped trading agent back.
        ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
    ];
    let started = Instant::now();
    let nodes = start_nodes_with(2, &keys, |dir, port, i| {
        futures_node_config(dir, port, i, &redis.url(), &mock.url())
    });
    let spent = || mock.requests().iter().map(futures_weight).sum::<u64>();

    // Node 1's route reads the venue while the budget lasts.
    let route = "/api/market/funding?venue=bnf&symbol=BTC&history=1";
    wait_for(Duration::from_secs(30), "the budget to be spent", || {
        (spent() >= FUTURES_BUDGET - 5).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = mock.requests().len();
    let (status, body) = http_get(nodes[1].port, route).expect("the route answers");
    assert_ne!(
        status, 200,
        "node 1's route read past the spent budget: {body}"
    );
    assert_eq!(
        mock.requests().len(),
        before,
        "the refused read reached the venue: {body}"
    );
    let total = spent();
    eprintln!(
        "binance futures: {total} weight at the venue within the minute (budget {FUTURES_BUDGET}); node 1's route answered {status}: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(55),
        "the check must run within the budget's first minute"
    );
    assert!(total <= FUTURES_BUDGET, "{total} weight reached the venue");
    for n in &nodes {
        let admitted = metric(
            n.port,
            "orrery_cluster_limit_draws_total",
            &[
                &format!("scope=\"{FUTURES_SCOPE}\""),
                "outcome=\"admitted\"",
            ],
        )
        .unwrap_or(0.0);
        assert!(admitted > 0.0, "node on port {} never drew", n.port);
    }
}

#[test]
fn the_example_loads_and_bad_shared_keys_are_named() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/cluster.toml");
    let config = orrery::config::Config::load(Some(&path), Vec::new()).unwrap();
    let cluster = config.cluster.as_ref().expect("[cluster]");
    assert_eq!(cluster.expected_nodes, 3);
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "include = [\"../default.toml\"]",
            &format!("include = [{:?}]", default.display().to_string()),
        )
        .replace("local_share = 0.33", "local_share = 3")
        .replace("expected_nodes = 3", "expected_nodes = 0");
    let err = orrery::config::Config::load_str(&text, "example", Vec::new())
        .unwrap_err()
        .to_string();
    for key in [
        "exchanges.venues.hl.resilience.limits[0].local_share",
        "cluster.expected_nodes",
    ] {
        assert!(err.contains(key), "{key}: {err}");
    }
}
