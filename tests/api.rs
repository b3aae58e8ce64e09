//! The control API end to end through the real binary: the README's HTTP examples replayed
//! in order (so the docs cannot drift), JSON errors with the right status everywhere, the
//! body limit, the request metric, tokens with scopes, and the log format.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// One raw HTTP/1.1 exchange with extra headers: (status, body).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    http(port, &head)
}

/// One README example: the request block and the answer block after it.
#[derive(Debug)]
struct Example {
    method: String,
    path: String,
    body: String,
    kind: String,
    status: u16,
    answer: String,
}

/// Every ```http block of the README's HTTP section with the answer block that follows it.
fn readme_examples() -> Vec<Example> {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = readme
        .split_once("## HTTP")
        .expect("README has an HTTP section")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let mut text = Vec::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                text.push(l);
            }
            blocks.push((lang.to_string(), text.join("\n")));
        }
    }
    let mut examples = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        if blocks[i].0 != "http" {
            i += 1;
            continue;
        }
        let (req, (kind, answer)) = (&blocks[i].1, &blocks[i + 1]);
        let (first, body) = req.split_once('\n').unwrap_or((req, ""));
        let (method, path) = first.split_once(' ').unwrap();
        let (status, answer) = answer.split_once('\n').unwrap_or((answer, ""));
        examples.push(Example {
            method: method.into(),
            path: path.into(),
            body: body.trim().into(),
            kind: kind.clone(),
            status: status.trim().parse().unwrap(),
            answer: answer.into(),
        });
        i += 2;
    }
    examples
}

/// Keys whose documented values are part of the contract, not an example value.
const EXACT: &[&str] = &[
    "code",
    "status",
    "mode",
    "event",
    "kill_switch",
    "outcome",
    "side",
];

/// `actual` has the documented shape: every key of `expected` (recursively), values of
/// the same JSON type, and the documented value for the keys in [`EXACT`].
fn same_shape(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .ok_or_else(|| format!("{path}.{k} is missing from {actual}"))?;
                if EXACT.contains(&k.as_str()) && !ev.is_object() && ev != av {
                    return Err(format!("{path}.{k}: documented {ev}, got {av}"));
                }
                same_shape(ev, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => match (e.first(), a.first()) {
            (Some(e0), Some(a0)) => same_shape(e0, a0, &format!("{path}[0]")),
            _ => Ok(()),
        },
        // A documented null may be filled in; a documented value may not become null
        // unless it is documented as optional (null).
        (Value::Null, _) => Ok(()),
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        _ => Err(format!("{path}: documented {expected}, got {actual}")),
    }
}

fn check_answer(ex: &Example, body: &str) -> Result<(), String> {
    match ex.kind.as_str() {
        "json" => {
            let expected: Value = serde_json::from_str(&ex.answer)
                .map_err(|e| format!("README example is not JSON: {e}"))?;
            let actual: Value = serde_json::from_str(body)
                .map_err(|e| format!("answer is not JSON ({e}): {body}"))?;
            same_shape(&expected, &actual, "")
        }
        "ndjson" => {
            let expected: Vec<Value> = ex
                .answer
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let actual: Vec<Value> = body
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(|e| format!("line {l}: {e}")))
                .collect::<Result<_, _>>()?;
            if actual.is_empty() {
                return Err("no lines".into());
            }
            same_shape(&expected[0], &actual[0], "first line")?;
            same_shape(
                expected.last().unwrap(),
                actual.last().unwrap(),
                "last line",
            )
        }
        "text" => {
            for line in ex.answer.lines() {
                let found = if line.starts_with('#') {
                    body.lines().any(|l| l == line)
                } else {
                    let series = line.rsplit_once(' ').map(|(s, _)| s).unwrap_or(line);
                    body.lines().any(|l| l.starts_with(&format!("{series} ")))
                };
                if !found {
                    return Err(format!("line `{line}` is not in the answer"));
                }
            }
            Ok(())
        }
        other => Err(format!("unknown answer block kind `{other}`")),
    }
}

fn start(dir: &std::path::Path, extra: &str, env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port = free_port();
    let config = test_config(dir, port, extra);
    let engine = spawn_engine(&config, dir, &[], env);
    wait_for(Duration::from_secs(30), "the engine's /health", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    (engine, port)
}

fn stop(mut engine: std::process::Child) {
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}

#[test]
fn the_readme_http_examples_replay_against_the_engine() {
    let examples = readme_examples();
    assert!(
        examples.len() >= 15,
        "the README documents every endpoint: {examples:#?}"
    );
    for route in [
        "/health",
        "/metrics",
        "/api/status",
        "/api/orders",
        "/api/kill-switch",
        "/api/models",
        "/api/ask",
        "/api/ask/stream",
    ] {
        assert!(
            examples.iter().any(|e| e.path == route),
            "no README example for {route}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    // No trading agent: the examples' mode and orders are the test's own.
    let (engine, port) = start(dir.path(), "", &[("ORRERY__AGENTS__TRADING", "[]")]);
    for ex in &examples {
        let (status, body) = request(port, &ex.method, &ex.path, &[], &ex.body)
            .unwrap_or_else(|| panic!("{} {} got no answer", ex.method, ex.path));
        assert_eq!(
            status, ex.status,
            "{} {} {}: documented {}, got {status}: {body}",
            ex.method, ex.path, ex.body, ex.status
        );
        if let Err(e) = check_answer(ex, &body) {
            panic!("{} {} {}: {e}", ex.method, ex.path, ex.body);
        }
    }
    // Money without trailing noise (`"1998.6845250"`, `"9991.154176436000000000000000"`).
    let (_, status) = http_get(port, "/api/status").unwrap();
    let v: Value = serde_json::from_str(&status).unwrap();
    let mut noisy = Vec::new();
    trailing_zero_decimals(&v, &mut noisy);
    assert!(
        noisy.is_empty(),
        "decimals with trailing zeros: {noisy:?} in {status}"
    );
    assert!(
        v["venues"][0]["account"]["account_value"].is_string(),
        "{status}"
    );
    stop(engine);
}

fn trailing_zero_decimals(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let plain = s.split_once('.').is_some_and(|(i, f)| {
                !i.is_empty()
                    && i.trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                    && f.bytes().all(|b| b.is_ascii_digit())
            });
            if plain && s.ends_with('0') {
                out.push(s.clone());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| trailing_zero_decimals(x, out)),
        Value::Object(m) => m.values().for_each(|x| trailing_zero_decimals(x, out)),
        _ => {}
    }
}

#[test]
fn errors_are_json_bodies_are_bounded_by_config_and_requests_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, port) = start(dir.path(), "", &[("ORRERY__AGENTS__TRADING", "[]")]);
    let error_of = |status: u16, body: &str| -> String {
        let v: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body}"));
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: no error.message: {body}"));
        v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: no error.code: {body}"))
            .to_string()
    };

    // Not JSON at all, wrong content type, wrong method, unknown path: JSON errors.
    let (s, b) = request(port, "POST", "/api/orders", &[], "{\"venue\":").unwrap();
    assert_eq!((s, error_of(s, &b).as_str()), (400, "bad_json"), "{b}");
    let (s, b) = request(port, "POST", "/api/kill-switch", &[], "{}").unwrap();
    assert_eq!((s, error_of(s, &b).as_str()), (400, "bad_json"), "{b}");
    let (s, b) = request(port, "DELETE", "/health", &[], "").unwrap();
    assert_eq!(
        (s, error_of(s, &b).as_str()),
        (405, "method_not_allowed"),
        "{b}"
    );

    // A prompt of 1 MiB goes through (the old 64 KiB limit answered 413 in plain text).
    let prompt = "BTC ".repeat(256 * 1024);
    let body = serde_json::json!({"model": "default", "prompt": prompt}).to_string();
    let (s, b) = request(port, "POST", "/api/ask", &[], &body).unwrap();
    assert_eq!(s, 200, "{}", &b[..b.len().min(500)]);
    let answer: Value = serde_json::from_str(&b).unwrap();
    assert!(answer["latency_ms"].is_number(), "{answer}");
    assert!(answer["total_ms"].is_number(), "{answer}");
    assert_eq!(answer["attempts"][0]["outcome"], "ok", "{answer}");
    assert!(answer["attempts"][0]["ms"].is_number(), "{answer}");
    stop(engine);

    // The limit is the operator's: below it, a large body is 413 with a JSON error that
    // names the key.
    let dir = tempfile::tempdir().unwrap();
    let (engine, port) = start(
        dir.path(),
        "\n[api]\nmax_body_bytes = 4096\n",
        &[("ORRERY__AGENTS__TRADING", "[]")],
    );
    let body = serde_json::json!({"model": "default", "prompt": "x".repeat(8192)}).to_string();
    let (s, b) = request(port, "POST", "/api/ask", &[], &body).unwrap();
    assert_eq!(
        (s, error_of(s, &b).as_str()),
        (413, "body_too_large"),
        "{b}"
    );
    assert!(b.contains("api.max_body_bytes"), "{b}");

    // The request counter, by matched route pattern and status.
    request(port, "GET", "/api/nothing-here", &[], "").unwrap();
    request(
        port,
        "POST",
        "/api/orders",
        &[],
        r#"{"venue":"paper","symbol":"NOPE","side":"buy","usd":"10"}"#,
    )
    .unwrap();
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("# TYPE orrery_api_requests_total counter"),
        "described and typed"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_api_requests_total",
            &["route=\"/api/ask\"", "status=\"413\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_api_requests_total",
            &["route=\"unmatched\"", "status=\"404\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "orrery_api_requests_total",
            &["route=\"/api/orders\"", "status=\"404\""]
        ),
        1.0,
        "an unknown symbol is 404, not 502: {metrics}"
    );
    assert!(
        !metrics.contains("route=\"/api/nothing-here\""),
        "raw paths never become labels"
    );
    stop(engine);
}

#[test]
fn tokens_guard_the_api_by_scope_and_the_cli_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = [
        ("ORRERY_API_TOKEN_READ", "read-token-1"),
        ("ORRERY_API_TOKEN_TRADE", "trade-token-2"),
        ("ORRERY__AGENTS__TRADING", "[]"),
    ];
    let (engine, port) = start(dir.path(), "", &tokens);
    let read = [("Authorization", "Bearer read-token-1")];
    let trade = [("Authorization", "Bearer trade-token-2")];
    let wrong = [("Authorization", "Bearer trade-token-3")];
    let order = r#"{"venue":"paper","symbol":"BTC","side":"buy","usd":"50"}"#;

    assert_eq!(
        request(port, "GET", "/health", &[], "").unwrap().0,
        200,
        "health is open"
    );
    let (s, b) = request(port, "GET", "/api/status", &[], "").unwrap();
    assert_eq!(s, 401, "{b}");
    assert!(
        b.contains("\"unauthorized\"") && b.contains("ORRERY_API_TOKEN_READ"),
        "{b}"
    );
    assert!(!b.contains("read-token-1"), "a token is never echoed: {b}");
    assert_eq!(
        request(port, "GET", "/api/status", &wrong, "").unwrap().0,
        401
    );
    assert_eq!(request(port, "GET", "/metrics", &[], "").unwrap().0, 401);
    assert_eq!(
        request(port, "GET", "/api/status", &read, "").unwrap().0,
        200
    );
    assert_eq!(
        request(port, "GET", "/api/status", &trade, "").unwrap().0,
        200
    );
    let (s, b) = request(port, "POST", "/api/orders", &read, order).unwrap();
    assert_eq!(s, 403, "a read token cannot trade: {b}");
    assert!(b.contains("ORRERY_API_TOKEN_TRADE"), "{b}");
    assert_eq!(
        request(port, "POST", "/api/orders", &[], order).unwrap().0,
        401
    );
    let (s, b) = request(port, "POST", "/api/orders", &trade, order).unwrap();
    assert_eq!(s, 200, "{b}");

    // The CLI talks to the running engine with the token from the same variable.
    let config = dir.path().join("orrery.toml");
    let cli = |env: &[(&str, &str)], args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .env_remove("ORRERY_CONFIG")
            .env_remove("ORRERY_API_TOKEN_READ")
            .env_remove("ORRERY_API_TOKEN_TRADE")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = cli(&tokens, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&[], &["status", "--json"]);
    assert!(
        !out.status.success(),
        "without the token the engine refuses"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &tokens,
        &[
            "order", "--venue", "paper", "--symbol", "ETH", "--side", "buy", "--usd", "50",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(engine);
}

#[test]
fn a_listen_address_beyond_loopback_needs_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let run = |env: &[(&str, &str)]| {
        std::process::Command::new(BIN)
            .args(["check-config", "--config", config.to_str().unwrap()])
            .env_remove("ORRERY_CONFIG")
            .env_remove("ORRERY_API_TOKEN_READ")
            .env_remove("ORRERY_API_TOKEN_TRADE")
            .env("ORRERY__TELEMETRY__LISTEN", "0.0.0.0:9898")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("telemetry.listen"), "{err}");
    assert!(err.contains("ORRERY_API_TOKEN_TRADE"), "{err}");
    let out = run(&[("ORRERY_API_TOKEN_TRADE", "t")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every line a `run` writes, with stderr to a file (not a terminal).
fn run_briefly(extra_args: &[&str]) -> String {
    run_piped(extra_args, &["run", "--for", "2s"])
}

/// One command on a fresh data dir with stdout and stderr piped; both, as text.
fn run_piped(extra_args: &[&str], command: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let out = std::process::Command::new(BIN)
        .args(extra_args)
        .args(command)
        .args(["--config", config.to_str().unwrap()])
        .env_remove("ORRERY_CONFIG")
        // tracing's own default colours unless NO_COLOR is set; the engine must decide.
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn logs_have_no_colour_off_a_terminal_and_json_lines_with_log_format_json() {
    let text = run_briefly(&[]);
    assert!(text.contains("engine started"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no ANSI escapes when piped: {text:?}"
    );

    // Commands that boot the gateway on a stopped data dir log the same way.
    let offline = run_piped(&[], &["kill-switch", "--engage", "--reason", "drill"]);
    assert!(offline.contains("trading mode changed"), "{offline}");
    assert!(
        !offline.contains('\x1b'),
        "no ANSI escapes when piped: {offline:?}"
    );

    let json = run_briefly(&["--log-format", "json"]);
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{json}");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("engine started")), "{json}");
    assert!(lines.iter().any(|l| l.contains("run summary")), "{json}");
}
