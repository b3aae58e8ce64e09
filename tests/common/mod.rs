//! Helpers for end-to-end tests: run the real `orrery` binary on a private data dir and a
//! free loopback port, talk to it over HTTP, and read its data dir afterwards.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod hl_mock;

pub const BIN: &str = env!("CARGO_BIN_EXE_orrery");

/// The live tree's node at `path` of an in-process engine.
pub fn node(engine: &orrery::EngineHandle, path: &str) -> orrery_actors::supervisor::ActorNode {
    engine
        .tree()
        .into_iter()
        .find(|n| n.path == path)
        .unwrap_or_else(|| panic!("no actor {path} in {:#?}", engine.tree()))
}

/// Polls (on the actix system, never racing a fixed sleep) until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free loopback port (bound and released; the engine binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config for tests: the shipped default with a private data dir and port, faster
/// agents, and extra symbols so the rules engine finds a directional signal quickly.
pub fn test_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
            .unwrap();
    let text = shipped
        .replace(
            "data_dir = \"./data\"",
            &format!("data_dir = {:?}", dir.join("data").display().to_string()),
        )
        .replace(
            "listen = \"127.0.0.1:9898\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("sample_interval = \"5s\"", "sample_interval = \"500ms\"")
        .replace(
            "interval = \"10s\"\ninitial_delay = \"2s\"",
            "interval = \"1s\"\ninitial_delay = \"300ms\"",
        )
        + extra;
    let path = dir.join("orrery.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Starts `orrery run` with `config`, logs to `dir/engine-N.log`.
pub fn spawn_engine(config: &Path, dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Child {
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let log = std::fs::File::create(dir.join(format!("engine-{n}.log"))).unwrap();
    Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(extra_args)
        .env("RUST_LOG", "info")
        .env_remove("ORRERY_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn run_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .output()
        .unwrap()
}

/// Blocking GET on loopback with a short timeout; `None` while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

/// Blocking JSON POST on loopback; `None` if the connection fails or is cut.
pub fn http_post_json(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Sends one raw HTTP/1.1 request and reads the whole answer: (status, body), a chunked
/// body joined.
pub fn http(port: u16, request: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls until `f` returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sum of the samples of `metric` whose labels contain every `label`.
pub fn metric_sum(exposition: &str, metric: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({sig}) failed");
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    wait_for(timeout, "the engine to exit", || child.try_wait().unwrap())
}

/// `promtool check metrics` on an exposition; returns its exit status and output.
pub fn promtool_check(exposition: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package `prometheus`); scripts/test installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Extra paper symbols (with their own simulated paths) for tests that need activity.
pub const EXTRA_SYMBOLS: &str = r#"
[exchanges.venues.paper.symbols.AVAX]
initial_price = 35
[exchanges.venues.paper.symbols.LINK]
initial_price = 15
[exchanges.venues.paper.symbols.DOGE]
initial_price = 0.15
[exchanges.venues.paper.symbols.ARB]
initial_price = 1.2
[exchanges.venues.paper.symbols.OP]
initial_price = 2.5
"#;

/// Starts the engine once more so reconciliation settles what the kills left open, waits
/// until no order is open, and stops it cleanly.
pub fn settle_and_stop(config: &Path, dir: &Path, port: u16, env: &[(&str, &str)]) {
    let engine = spawn_engine(config, dir, &[], env);
    // Generous: an order cut by a kill stays unknown until its venue deadline has passed
    // (plus the skew margin), and a loaded machine slows every step before that.
    wait_settled_then_stop(
        engine,
        port,
        Duration::from_secs(120),
        Duration::from_secs(30),
    );
}

/// Waits (up to `settle_within`) until the running `engine` on `port` reports no open
/// order, then stops it with SIGTERM and asserts a clean exit within `stop_within`.
pub fn wait_settled_then_stop(
    mut engine: Child,
    port: u16,
    settle_within: Duration,
    stop_within: Duration,
) {
    wait_for(
        settle_within,
        "reconciliation to settle every open order",
        || {
            let (status, body) = http_get(port, "/api/status")?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && v["open_orders"].as_array()?.is_empty()).then_some(())
        },
    );
    signal(&engine, libc::SIGTERM);
    assert!(
        wait_exit(&mut engine, stop_within).success(),
        "clean stop after settling"
    );
}

/// Turns the shipped trading agent (a swarm of local rule sets) into a single-model agent
/// asking `default` (the `local` deployment), for tests that watch that deployment work.
pub fn single_model_agent(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(
        text.contains("\nmode = \"swarm\"\n"),
        "the shipped agent is a swarm"
    );
    let swarm_keys = [
        "members = ",
        "quorum = ",
        "member_timeout = ",
        "quorum_loss = ",
    ];
    let text: Vec<String> = text
        .lines()
        .filter(|l| !swarm_keys.iter().any(|k| l.starts_with(k)))
        .map(|l| {
            if l == "mode = \"swarm\"" {
                "mode = \"single\"\nmodel = \"default\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(config, text.join("\n") + "\n").unwrap();
}

/// The shipped config as it was before its agent became a swarm: [`single_model_agent`],
/// and without the swarm's three local rule-set models (`sma-cross`, `rsi`, `momentum`),
/// for tests that check the exact set of pools.
pub fn single_model_default(config: &Path) {
    single_model_agent(config);
    let text = std::fs::read_to_string(config).unwrap();
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if ["[models.sma-cross]", "[models.rsi]", "[models.momentum]"].contains(&line) {
            skipping = true;
        }
        if skipping {
            skipping = !line.is_empty();
            continue;
        }
        out.push(line);
    }
    let text = out.join("\n") + "\n";
    assert!(
        !text.contains("local-sma-cross"),
        "the rule-set models are gone"
    );
    std::fs::write(config, text).unwrap();
}

/// Every file below `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether any file below `dir` contains one of `secrets`.
pub fn any_file_contains(dir: &Path, secrets: &[&str]) -> bool {
    walk(dir).into_iter().any(|p| {
        std::fs::read(&p)
            .map(|b| {
                let s = String::from_utf8_lossy(&b);
                secrets.iter().any(|secret| s.contains(secret))
            })
            .unwrap_or(false)
    })
}

/// Debian's chromium for the browser tests, or `None` when it is not installed — which
/// `scripts/test` (`ORRERY_REQUIRE_CHROMIUM=1`) does not allow: then this panics. `skipped`
/// says what goes untested without it.
pub fn chromium(skipped: &str) -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("ORRERY_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "ORRERY_REQUIRE_CHROMIUM=1 but no chromium at /usr/bin/chromium: {skipped} (apt-get install chromium)"
        );
        eprintln!("chromium not installed: {skipped} (scripts/test installs it and requires it)");
    }
    found
}

/// `target/test-artifacts/`, created: screenshots and timings tests leave for people.
pub fn test_artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every `engine-N.log` of `dir`, in order, for a failure's message.
pub fn engine_logs(dir: &Path) -> String {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("engine-"))
    });
    logs.sort();
    logs.iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// `s` without ANSI colour codes (`ESC [ ... m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// [`engine_logs`] without ANSI colour codes, for matching whole log lines.
pub fn plain_engine_logs(dir: &Path) -> String {
    strip_ansi(&engine_logs(dir))
}

/// Panics with the engine's log if it has exited (a start that failed, e.g. a port taken
/// by another process between `free_port` and the bind), instead of waiting out a timeout.
pub fn assert_running(engine: &mut Child, dir: &Path) {
    if let Ok(Some(status)) = engine.try_wait() {
        panic!("the engine exited ({status}):\n{}", engine_logs(dir));
    }
}

/// `n` funding agents `{prefix}-{i}` reading BTC and ETH on `venue` every 100 ms.
pub fn funding_agents(prefix: &str, venue: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"
[[agents.funding]]
name = "{prefix}-{i}"
venue = "{venue}"
symbols = ["BTC", "ETH"]
interval = "100ms"
initial_delay = "0s"
history = 2
"#
            )
        })
        .collect()
}
