//! `orrery models` and `orrery ask` end to end, with the shipped default config (the offline
//! `local` rules engine): engine stopped (the CLI boots the models in-process and reads
//! usage from the data dir) and running (the CLI asks the engine's control API).

mod common;

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use orrery_actors::testkit::{MockServer, Reply, StreamEnd};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn decimal(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

#[test]
fn ask_and_models_offline_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();
    // Prices through the environment, so the cost accounting has something to count.
    let priced = [
        (
            "ORRERY__MODELS__DEFAULT__DEPLOYMENTS__0__PRICE_PROMPT_PER_MTOK",
            "3",
        ),
        (
            "ORRERY__MODELS__DEFAULT__DEPLOYMENTS__0__PRICE_COMPLETION_PER_MTOK",
            "15",
        ),
    ];
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env_remove("ORRERY_CONFIG")
            .envs(priced)
            .output()
            .unwrap()
    };

    // Never run: config only, no usage, "not running".
    let report = json(&ok(cli(&["models", "--config", cfg, "--json"])));
    assert_eq!(report["engine_running"], false);
    let d = &report["deployments"][0];
    assert_eq!(
        (
            d["model"].as_str(),
            d["deployment"].as_str(),
            d["provider"].as_str(),
            d["provider_model"].as_str(),
            d["state"].as_str()
        ),
        (
            Some("default"),
            Some("local"),
            Some("local"),
            Some("rules-v1"),
            Some("not running")
        )
    );
    assert_eq!(d["limits"]["max_concurrent"], 8);
    assert_eq!(d["usage"]["requests"], 0);

    // Engine stopped: `ask` boots the models in-process.
    let answer = json(&ok(cli(&[
        "ask",
        "--config",
        cfg,
        "--json",
        "what should I buy?",
    ])));
    assert_eq!(answer["deployment"], "local");
    assert_eq!(answer["cached"], false);
    assert!(answer["text"]
        .as_str()
        .unwrap()
        .contains("local rules engine"));
    let prompt_tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(prompt_tokens, 5, "18 chars at 4 a token");
    let human = ok(cli(&["ask", "--config", cfg, "--stream", "hello there"]));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("local rules engine") && text.contains("served by local (local/rules-v1)"),
        "{text}"
    );
    assert!(text.contains("tokens 3 prompt"), "{text}");

    // Unknown model: a clear error, exit 1.
    let bad = cli(&["ask", "--config", cfg, "--model", "gpt-9", "hi"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("configured: default"));

    // Usage was persisted: two answers, with their cost.
    let report = json(&ok(cli(&["models", "--config", cfg, "--json"])));
    let usage = &report["deployments"][0]["usage"];
    assert_eq!(usage["requests"], 2);
    let cost = decimal(&usage["cost_usd"]);
    assert!(cost > 0.0 && cost < 0.01, "{usage}");
    let human = String::from_utf8_lossy(&ok(cli(&["models", "--config", cfg])).stdout).to_string();
    assert!(
        human.contains("not running") && human.contains("usage: 2 requests"),
        "{human}"
    );
    let status = json(&ok(cli(&["status", "--config", cfg, "--json"])));
    assert_eq!(status["models"][0]["deployment"], "local");
    assert_eq!(status["models"][0]["requests"], 2);
    let human = String::from_utf8_lossy(&ok(cli(&["status", "--config", cfg])).stdout).to_string();
    assert!(
        human.contains("\nmodels:\n  local") && human.contains("2 requests"),
        "{human}"
    );

    // Engine running: the same commands through its control API.
    let mut env: Vec<(&str, &str)> = priced.to_vec();
    env.push(("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"));
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let answer = json(&ok(cli(&["ask", "--config", cfg, "--json", "and now?"])));
    assert_eq!(answer["deployment"], "local");
    let report = json(&ok(cli(&["models", "--config", cfg, "--json"])));
    assert_eq!(report["engine_running"], true);
    let d = &report["deployments"][0];
    assert_eq!(d["state"], "ok");
    assert_eq!(d["health"]["in_flight"], 0);
    assert!(d["health"]["ewma_latency_ms"].is_u64(), "{d}");
    assert_eq!(d["usage"]["requests"], 3);
    let human = String::from_utf8_lossy(&ok(cli(&["models", "--config", cfg])).stdout).to_string();
    assert!(
        human.contains("engine: running") && human.contains("state: ok"),
        "{human}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let cost_gauge = metric_sum(&metrics, "orrery_model_cost_usd", &["deployment=\"local\""]);
    assert!(
        (cost_gauge - cost).abs() < 1e-12 || cost_gauge > cost,
        "{cost_gauge} vs {cost}"
    );
    assert!(metrics.contains("# HELP orrery_model_cost_usd"));

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    let status = json(&ok(cli(&["status", "--config", cfg, "--json"])));
    assert_eq!(status["models"][0]["requests"], 3);
}

/// One chunk of an OpenAI chat-completions stream, in the API's envelope.
fn openai_chunk(delta: &str, finish: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c\",\"object\":\"chat.completion.chunk\",\"created\":1727346173,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_5050236cbd\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
    )
}

/// An OpenAI SSE stream of `pieces`, `pause` apart; finished (finish reason, usage chunk,
/// `[DONE]`) or cut after the pieces.
fn openai_stream(pieces: &[&str], pause: Duration, finished: bool) -> MockServer {
    let mut chunks = vec![(
        Duration::ZERO,
        openai_chunk(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            "null",
        ),
    )];
    for piece in pieces {
        let delta = format!("{{\"content\":{}}}", serde_json::to_string(piece).unwrap());
        chunks.push((pause, openai_chunk(&delta, "null")));
    }
    let end = if finished {
        chunks.push((pause, openai_chunk("{}", "\"stop\"")));
        chunks.push((
            Duration::ZERO,
            format!(
                "data: {{\"id\":\"chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c\",\"object\":\"chat.completion.chunk\",\"created\":1727346173,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_5050236cbd\",\"choices\":[],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
                9 + pieces.len(),
                n = pieces.len()
            ),
        ));
        StreamEnd::Finish
    } else {
        StreamEnd::Reset
    };
    MockServer::start(move |_| Reply::sse(chunks.clone(), end.clone()))
}

/// Runs the CLI, recording each piece of stdout with when it arrived.
fn run_timed(args: &[&str], env: &[(&str, &str)]) -> (Vec<(Instant, String)>, String, ExitStatus) {
    use std::io::Read;
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .env_remove("ORRERY_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut pieces = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pieces.push((
            Instant::now(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        ));
    }
    let out = child.wait_with_output().unwrap();
    (
        pieces,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status,
    )
}

/// `ask --stream` printed the text piece by piece, well before the closing line.
fn assert_streamed(
    pieces: &[(Instant, String)],
    stderr: &str,
    status: ExitStatus,
    pause: Duration,
) {
    let all: String = pieces.iter().map(|(_, p)| p.as_str()).collect();
    assert!(
        status.success(),
        "{status:?}\nstdout: {all}\nstderr: {stderr}"
    );
    let (text, last) = all.split_once('\n').unwrap_or((&all, ""));
    assert_eq!(text, "Funding is flat; hold.", "{all}");
    assert!(
        last.starts_with("-- served by gpt (openai/gpt-4o-mini) in ")
            && last.contains("tokens 9 prompt + 3 completion"),
        "{all}"
    );
    let first = pieces
        .iter()
        .find(|(_, p)| p.contains("Funding"))
        .map(|(at, _)| *at)
        .unwrap();
    let closing = pieces
        .iter()
        .find(|(_, p)| p.contains("-- served by"))
        .map(|(at, _)| *at)
        .unwrap();
    // Three more pauses passed at the provider between the first piece and the end;
    // a buffered answer would print both within a moment.
    assert!(
        closing.duration_since(first) >= pause * 3 / 2,
        "first piece {:?} before the closing line: {pieces:?}",
        closing.duration_since(first)
    );
    assert!(
        !pieces[0].1.contains("-- served by"),
        "the text came in its own pieces: {pieces:?}"
    );
}

#[test]
fn ask_stream_prints_the_answer_as_it_arrives_offline_and_live() {
    let pause = Duration::from_millis(600);
    let streamer = openai_stream(&["Funding ", "is flat", "; hold."], pause, true);
    let broken = openai_stream(&["Partial"], Duration::from_millis(50), false);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        r#"
[models.streamed]
[[models.streamed.deployments]]
id = "gpt"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
timeout = "20s"
# Whole answers (`ask --json`) are asked for as streams too.
stream = true

[models.broken]
[[models.broken.deployments]]
id = "cut"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
timeout = "20s"

[[models.broken.deployments]]
id = "never"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
"#,
        streamer.url(),
        broken.url(),
        streamer.url()
    );
    let config = test_config(dir.path(), port, &extra);
    let cfg = config.to_str().unwrap();
    let key = [("OPENAI_API_KEY", "sk-test-cli-stream")];
    let ask = |model: &str| {
        run_timed(
            &[
                "ask", "--config", cfg, "--model", model, "--stream", "funding?",
            ],
            &key,
        )
    };

    // Engine stopped: the CLI boots the models in-process and streams from the router.
    let (pieces, stderr, status) = ask("streamed");
    assert_streamed(&pieces, &stderr, status, pause);
    // A stream that breaks after its first piece: the piece is shown, the error said,
    // and the sibling is never asked (no splicing).
    let (pieces, stderr, status) = ask("broken");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let shown: String = pieces.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(shown, "Partial\n");
    assert!(stderr.contains("never spliced"), "{stderr}");
    // `--json` keeps the whole-answer JSON.
    let answer = json(&ok(std::process::Command::new(BIN)
        .args([
            "ask", "--config", cfg, "--model", "streamed", "--stream", "--json", "funding?",
        ])
        .env_remove("ORRERY_CONFIG")
        .envs(key)
        .output()
        .unwrap()));
    assert_eq!(answer["text"], "Funding is flat; hold.");
    assert_eq!(answer["deployment"], "gpt");

    // Engine running: the same through `POST /api/ask/stream`.
    let mut env: Vec<(&str, &str)> = key.to_vec();
    env.push(("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"));
    let mut engine = spawn_engine(&config, dir.path(), &[], &env);
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let (pieces, stderr, status) = ask("streamed");
    assert_streamed(&pieces, &stderr, status, pause);
    let (pieces, stderr, status) = ask("broken");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        pieces.iter().map(|(_, p)| p.as_str()).collect::<String>(),
        "Partial\n"
    );
    assert!(stderr.contains("never spliced"), "{stderr}");
    // The control API's own lines: deltas, then the answer.
    let (status, body) = http_post_json(
        port,
        "/api/ask/stream",
        r#"{"model":"streamed","prompt":"funding?"}"#,
    )
    .unwrap();
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deltas: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "delta")
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Funding ", "is flat", "; hold."]);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["response"]["text"], "Funding is flat; hold.");
    assert_eq!(last["response"]["deployment"], "gpt");

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
    assert_eq!(streamer.count("/v1/chat/completions"), 4);
    assert_eq!(broken.count("/v1/chat/completions"), 2);
    for sent in streamer.requests().iter().chain(&broken.requests()) {
        let body = sent.body_json().unwrap();
        assert_eq!(body["stream"], true, "{body}");
        assert_eq!(
            sent.header("authorization"),
            Some("Bearer sk-test-cli-stream")
        );
    }
}

/// Issue 10.8, end to end: a logical model of four deployments (Anthropic overloaded, an
/// OpenAI-format server that never answers, a proxy's HTML error page, a healthy one).
/// With a sibling left each failing deployment is called once and the request moves on;
/// `ask --json` lists every attempt and `ask --stream` reports them on stderr.
#[test]
fn a_failing_chain_calls_each_deployment_once_and_lists_the_attempts() {
    let overloaded = MockServer::start(|_| {
        Reply::raw(
            529,
            "application/json",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
    });
    let hung = MockServer::start(|_| Reply::Hang);
    let html = MockServer::start(|_| {
        Reply::raw(
            502,
            "text/html",
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
        )
    });
    let healthy = openai_stream(&["Funding ", "is flat", "; hold."], Duration::ZERO, true);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        r#"
[models.chain]
[[models.chain.deployments]]
id = "overloaded"
provider = "anthropic"
model = "claude-sonnet-4-20250514"
base_url = "{}"

[[models.chain.deployments]]
id = "hung"
provider = "openai"
model = "gpt-4o"
base_url = "{}/v1"
first_byte_timeout = "2s"

[[models.chain.deployments]]
id = "html"
provider = "openai"
model = "gpt-4o"
base_url = "{}/v1"

[[models.chain.deployments]]
id = "healthy"
provider = "openai"
model = "gpt-4o-mini"
base_url = "{}/v1"
stream = true
"#,
        overloaded.url(),
        hung.url(),
        html.url(),
        healthy.url()
    );
    let config = test_config(dir.path(), port, &extra);
    let cfg = config.to_str().unwrap();
    let keys = [
        ("OPENAI_API_KEY", "sk-test-chain"),
        ("ANTHROPIC_API_KEY", "sk-ant-test-chain"),
    ];
    let calls = || {
        [
            overloaded.requests().len(),
            hung.requests().len(),
            html.requests().len(),
            healthy.requests().len(),
        ]
    };

    let answer = json(&ok(std::process::Command::new(BIN)
        .args([
            "ask", "--config", cfg, "--model", "chain", "--json", "funding?",
        ])
        .env_remove("ORRERY_CONFIG")
        .envs(keys)
        .output()
        .unwrap()));
    assert_eq!(answer["deployment"], "healthy", "{answer}");
    assert_eq!(answer["text"], "Funding is flat; hold.");
    assert_eq!(calls(), [1, 1, 1, 1], "{answer}");
    let attempts = answer["attempts"].as_array().unwrap();
    let tried: Vec<(&str, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["deployment"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tried,
        [
            ("overloaded", "failed"),
            ("hung", "failed"),
            ("html", "failed"),
            ("healthy", "ok")
        ],
        "{answer}"
    );
    assert!(attempts.iter().all(|a| a["ms"].is_number()), "{answer}");
    assert!(
        attempts[0]["detail"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{answer}"
    );

    // Streamed: the same chain (a fresh process, so nothing is cooling down yet), the
    // attempts on stderr after the text.
    let (pieces, stderr, status) = run_timed(
        &[
            "ask", "--config", cfg, "--model", "chain", "--stream", "funding?",
        ],
        &keys,
    );
    let shown: String = pieces.iter().map(|(_, p)| p.as_str()).collect();
    assert!(status.success(), "{shown}\n{stderr}");
    assert!(
        shown.starts_with("Funding is flat; hold.\n-- served by healthy"),
        "{shown}"
    );
    assert_eq!(calls(), [2, 2, 2, 2]);
    let tried = stderr
        .lines()
        .find(|l| l.starts_with("-- tried: "))
        .unwrap_or_else(|| panic!("no attempts on stderr: {stderr}"));
    for part in [
        "overloaded failed in ",
        "hung failed in ",
        "html failed in ",
        "healthy ok in ",
    ] {
        assert!(tried.contains(part), "`{part}` missing: {tried}");
    }
}
