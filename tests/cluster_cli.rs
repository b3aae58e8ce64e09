//! `orrery cluster status [--json]` and `GET /api/cluster` through the real binary (issue
//! #16.5), against a real `redis-server` on a free loopback port: a running engine with
//! `[cluster]` appears as a node (and leaves on a clean stop); leases, shared limits and
//! breakers seeded per the key schema are rendered; without `[cluster]` the command says
//! so and exits 0; with Redis down it says so and exits 1.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::cluster::{redis, ClusterConfig, RedisLink};
use orrery_actors::testkit::RedisServer;
use serde_json::Value;

fn cluster_section(url: &str) -> String {
    format!(
        "\n[cluster]\nurl = \"{url}\"\nnode_id = \"node-e2e\"\nkey_prefix = \"e2e:\"\nheartbeat = \"300ms\"\n"
    )
}

/// Runs Redis commands from the test (seeding the records other nodes would write).
fn redis(url: &str, commands: &[&[&str]]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = ClusterConfig {
            url: url.into(),
            node_id: "seeder".into(),
            ..ClusterConfig::default()
        };
        let link = RedisLink::open(&config, None).unwrap();
        for args in commands {
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            let _: redis::Value = link.query(&cmd).await.unwrap();
        }
    });
}

fn status_json(cfg: &str) -> (bool, Value) {
    let out = run_cli(&["cluster", "status", "--json", "--config", cfg]);
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (out.status.success(), value)
}

/// The lease of `resource` in a status document.
fn lease<'a>(status: &'a Value, resource: &str) -> Option<&'a Value> {
    status["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == resource)
}

fn node<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id)
}

#[test]
fn cluster_status_shows_the_running_node_and_the_records_of_the_cluster() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, &cluster_section(&url));
    let cfg = config.to_str().unwrap();
    let mut engine = spawn_engine(&config, dir.path(), &[], &[]);
    wait_for(Duration::from_secs(60), "the engine's health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });

    let now = chrono::Utc::now().timestamp_millis();
    let until = (now + 60_000).to_string();
    let breaker = format!(
        r#"{{"target":"hyperliquid","state":"open","until_ms":{until},"node":"node-x","reason":"failure threshold reached"}}"#
    );
    redis(
        &url,
        &[
            &[
                "HSET",
                "e2e:lease:venue:hl",
                "owner",
                "node-x",
                "token",
                "3",
                "since_ms",
                "1",
                "renewed_ms",
                "2",
            ],
            &["PEXPIRE", "e2e:lease:venue:hl", "30000"],
            &["SET", "e2e:fence:venue:hl", "3"],
            &[
                "HSET",
                "e2e:limit:hl-weight:meta",
                "kind",
                "sliding_window",
                "limit",
                "1200",
                "window_ms",
                "60000",
                "used",
                "450",
                "updated_ms",
                "5",
            ],
            &[
                "HSET",
                "e2e:limit:hl-weight:nodes",
                "node-e2e",
                "300",
                "node-x",
                "150",
            ],
            &["SET", "e2e:breaker:hyperliquid", &breaker, "PX", "60000"],
        ],
    );

    // The engine's node record appears once its first heartbeat is in.
    let status = wait_for(Duration::from_secs(20), "the engine's node record", || {
        let (ok, status) = status_json(cfg);
        assert!(ok, "{status:#}");
        node(&status, "node-e2e").is_some().then_some(status)
    });
    assert_eq!(status["redis"]["up"], true);
    assert_eq!(status["redis"]["url"], url.as_str());
    assert!(
        status["redis"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{status:#}"
    );
    let me = node(&status, "node-e2e").unwrap();
    assert_eq!(me["pid"], engine.id());
    assert_eq!(me["listen"], format!("127.0.0.1:{port}"));
    assert_eq!(me["alive"], true);
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    // The seeded lease of another node on a venue this engine does not trade stands (one
    // seeded on `paper` would take the engine's own venue, and its trading agent with it,
    // or not, depending on which came first); the engine holds its venue and agents.
    let other = lease(&status, "venue:hl").expect("the seeded lease");
    assert_eq!(other["owner"], "node-x");
    assert_eq!(other["token"], 3);
    assert_eq!(other["fence"], 3);
    let status = wait_for(Duration::from_secs(20), "the engine's agent lease", || {
        let (_, status) = status_json(cfg);
        ["venue:paper", "agent:trend"]
            .iter()
            .all(|r| lease(&status, r).is_some_and(|l| l["owner"] == "node-e2e"))
            .then_some(status)
    });
    let limit = &status["limits"][0];
    assert_eq!(limit["scope"], "hl-weight");
    assert_eq!(limit["limit"], 1200);
    assert_eq!(limit["used"], 450);
    assert_eq!(limit["nodes"]["node-x"], 150);
    let open = &status["breakers"][0];
    assert_eq!(open["target"], "hyperliquid");
    assert_eq!(open["node"], "node-x");
    assert!(
        status["problems"].as_array().unwrap().is_empty(),
        "{status:#}"
    );

    // The text form shows the same.
    let out = run_cli(&["cluster", "status", "--config", cfg]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "redis: redis://127.0.0.1",
        "nodes (1):",
        "node-e2e",
        "venue:hl",
        "node-x",
        "hl-weight",
        "node-e2e=300",
        "shared breakers open (1):",
        "hyperliquid",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }

    // The running engine serves it too, and its status has the cluster line.
    let (code, body) = http_get(port, "/api/cluster").unwrap();
    assert_eq!(code, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    assert!(node(&api, "node-e2e").is_some(), "{api:#}");
    let (code, body) = http_get(port, "/api/status").unwrap();
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["cluster"]["node_id"], "node-e2e");
    assert_eq!(report["cluster"]["redis"], "up");

    // A clean stop removes the node record.
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    let (_, after) = status_json(cfg);
    assert!(node(&after, "node-e2e").is_none(), "{after:#}");

    // Redis down: a clear message and exit 1 (text and JSON).
    server.kill();
    let out = run_cli(&["cluster", "status", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreachable"), "{err}");
    let out = run_cli(&["cluster", "status", "--json", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["code"], "redis_unreachable");
}

#[test]
fn without_a_cluster_section_the_command_says_so_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let cfg = config.to_str().unwrap();
    let out = run_cli(&["cluster", "status", "--config", cfg]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no [cluster] section"),
        "{out:?}"
    );
    let (ok, body) = status_json(cfg);
    assert!(ok);
    assert_eq!(body["configured"], false);
}

#[test]
fn the_example_config_checks_and_a_bad_cluster_value_is_named() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/cluster.toml");
    let check = |env: &[(&str, &str)]| {
        std::process::Command::new(BIN)
            .args(["check-config", "--config", example])
            .env_remove("ORRERY_CONFIG")
            .env_remove("ORRERY_REDIS_PASSWORD")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    // As shipped it needs no password (a local Redis without AUTH, as in the README's
    // two-node walk-through).
    let out = check(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A password variable that is named must be set: the engine never connects without it.
    let named = ("ORRERY__CLUSTER__PASSWORD_ENV", "ORRERY_REDIS_PASSWORD");
    let out = check(&[named]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.password_env"), "{err}");
    let out = check(&[named, ("ORRERY_REDIS_PASSWORD", "s3cret-pw")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(&[
        ("ORRERY_REDIS_PASSWORD", "s3cret-pw"),
        ("ORRERY__CLUSTER__HEARTBEAT", "10ms"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.heartbeat"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}
