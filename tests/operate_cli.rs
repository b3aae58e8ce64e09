//! The operator's commands through the real binary: `cancel`, `close --percent`,
//! `kill-switch`, `trades`, `orders`, `paper reset`, the run summary, and the CLI's input
//! handling (`--usd -500`, `--side long`, `btc`) — with the engine stopped (the CLI opens
//! the data dir) and running (the CLI and raw HTTP calls go through the control API).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cli(cfg: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", cfg]);
    Command::new(BIN)
        .args(&all)
        .env_remove("ORRERY_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dec(v: &serde_json::Value) -> f64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn operator_commands_on_a_stopped_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let cfg = config.to_str().unwrap();
    let order = |args: &[&str]| {
        let mut all = vec!["order", "--venue", "paper", "--json"];
        all.extend_from_slice(args);
        cli(cfg, &all)
    };

    // Input handling: a lower-case symbol is the venue's symbol; `long` is refused with
    // the way out; a negative amount reaches the order validation instead of clap (below).
    let long = order(&["--symbol", "BTC", "--side", "long", "--usd", "100"]);
    assert_eq!(long.status.code(), Some(2), "{}", stderr(&long));
    assert!(stderr(&long).contains("use `buy`"), "{}", stderr(&long));
    let help = ok(cli(cfg, &["order", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("buy|sell"), "{help}");
    assert!(help.contains("Print the order report"), "{help}");

    // Two resting buys far below the market, and a filled position.
    let btc_rest = json(&ok(order(&[
        "--symbol", "btc", "--side", "buy", "--usd", "200", "--limit", "1000",
    ])));
    assert_eq!(btc_rest["status"], "acked", "{btc_rest}");
    assert_eq!(btc_rest["symbol"], "BTC");
    let eth_rest = json(&ok(order(&[
        "--symbol", "eth", "--side", "buy", "--usd", "200", "--limit", "100",
    ])));
    assert_eq!(eth_rest["status"], "acked", "{eth_rest}");
    let bought = json(&ok(order(&[
        "--symbol", "BTC", "--side", "buy", "--usd", "1000",
    ])));
    assert_eq!(bought["status"], "filled", "{bought}");

    // Status lists each open order once, with its price and age.
    let human = ok(cli(cfg, &["status"]));
    let human = String::from_utf8_lossy(&human.stdout);
    let btc_id = btc_rest["client_id"].as_str().unwrap();
    assert_eq!(human.matches(btc_id).count(), 1, "{human}");
    assert!(human.contains("price 1000"), "{human}");

    // Cancel every open order of the venue.
    let cancelled = json(&ok(cli(
        cfg,
        &["cancel", "--venue", "paper", "--all", "--json"],
    )));
    assert_eq!(cancelled["failed"], serde_json::json!([]), "{cancelled}");
    let mut ids: Vec<&str> = cancelled["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["status"], "cancelled", "{o}");
            o["client_id"].as_str().unwrap()
        })
        .collect();
    ids.sort();
    let mut want = vec![btc_id, eth_rest["client_id"].as_str().unwrap()];
    want.sort();
    assert_eq!(ids, want);
    let open = json(&ok(cli(cfg, &["orders", "--status", "open", "--json"])));
    assert_eq!(open, serde_json::json!([]));
    let all = json(&ok(cli(cfg, &["orders", "--json"])));
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "cancelled", "filled"], "{all}");
    assert_eq!(all[0]["limit_price"], "1000");
    assert!(all[0]["created"].as_str().unwrap().ends_with('Z'), "{all}");

    // Close half of the position in reduce-only sells.
    let closed = json(&ok(cli(
        cfg,
        &[
            "close",
            "--venue",
            "paper",
            "--symbol",
            "btc",
            "--percent",
            "50",
            "--json",
        ],
    )));
    let (before, after) = (dec(&closed["size_before"]), dec(&closed["size_after"]));
    assert!(before > 0.0, "{closed}");
    assert!(
        (after - before / 2.0).abs() <= before * 0.01,
        "half closed: {closed}"
    );
    assert!(closed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["side"] == "sell" && o["status"] == "filled"));
    let bad = cli(
        cfg,
        &[
            "close",
            "--venue",
            "paper",
            "--symbol",
            "BTC",
            "--percent",
            "0",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    // Fills as CSV: the filled buy (recorded by the reconciliation of a later boot).
    let csv = ok(cli(cfg, &["trades", "--csv"]));
    let csv = String::from_utf8_lossy(&csv.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time,venue,symbol,side,price,size,fee,realized_pnl,fee_unpriced,client_id,venue_order_id,fill_id")
    );
    let buy = lines
        .find(|l| l.contains(bought["client_id"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("the buy's fill in:\n{csv}"));
    let cols: Vec<&str> = buy.split(',').collect();
    assert_eq!(&cols[1..4], ["paper", "BTC", "buy"], "{buy}");
    assert!(cols[6].parse::<f64>().unwrap() > 0.0, "a fee: {buy}");
    let since = json(&ok(cli(cfg, &["trades", "--since", "1h", "--json"])));
    assert!(!since.as_array().unwrap().is_empty());
    let bad_since = cli(cfg, &["trades", "--since", "yesterday"]);
    assert_eq!(bad_since.status.code(), Some(1));
    assert!(stderr(&bad_since).contains("24h"), "{}", stderr(&bad_since));

    // The kill switch cancels a resting order first, then closes the rest; cancels still
    // work while halted, orders do not.
    let rest = json(&ok(order(&[
        "--symbol", "SOL", "--side", "buy", "--usd", "200", "--limit", "10",
    ])));
    let killed = json(&ok(cli(
        cfg,
        &["kill-switch", "--engage", "--reason", "test", "--json"],
    )));
    assert_eq!(killed["mode"], "halted", "{killed}");
    assert_eq!(
        killed["cancelled"][0]["client_id"], rest["client_id"],
        "{killed}"
    );
    assert_eq!(killed["cancelled"][0]["status"], "cancelled");
    assert!(!killed["closed"].as_array().unwrap().is_empty(), "{killed}");
    let refused = order(&["--symbol", "BTC", "--side", "buy", "--usd", "100"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("only cancels are accepted"));
    ok(cli(cfg, &["cancel", "--venue", "paper", "--symbol", "SOL"]));
    let released = json(&ok(cli(cfg, &["kill-switch", "--release", "--json"])));
    assert_eq!(released["mode"], "normal", "{released}");

    // Paper reset: needs --yes without a terminal; then a fresh account, history kept.
    ok(order(&["--symbol", "ETH", "--side", "buy", "--usd", "500"]));
    let unconfirmed = cli(cfg, &["paper", "reset"]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(2),
        "{}",
        stderr(&unconfirmed)
    );
    assert!(stderr(&unconfirmed).contains("--yes"));
    let reset = json(&ok(cli(cfg, &["paper", "reset", "--yes", "--json"])));
    assert_eq!(reset["positions_removed"], 1, "{reset}");
    let status = json(&ok(cli(cfg, &["status", "--json"])));
    let venue = &status["venues"][0];
    assert_eq!(venue["positions"], serde_json::json!([]), "{venue}");
    assert_eq!(dec(&venue["account"]["account_value"]), 10000.0, "{venue}");
    let history = json(&ok(cli(cfg, &["orders", "--json"])));
    assert!(history.as_array().unwrap().len() >= 5, "history kept");
    // The fresh account trades, and its fills do not collide with the old ones.
    ok(order(&["--symbol", "BTC", "--side", "buy", "--usd", "300"]));
    let trades_before = json(&ok(cli(cfg, &["trades", "--json"])))
        .as_array()
        .unwrap()
        .len();
    ok(cli(cfg, &["orders", "--json"]));
    ok(order(&[
        "--symbol",
        "BTC",
        "--side",
        "sell",
        "--usd",
        "100",
        "--reduce-only",
    ]));
    let trades_after = json(&ok(cli(cfg, &["trades", "--json"])))
        .as_array()
        .unwrap()
        .len();
    assert!(
        trades_after > trades_before,
        "new fills are recorded after a reset"
    );

    // Last, as it may leave a refused entry in the ledger.
    let negative = order(&["--symbol", "BTC", "--side", "buy", "--usd", "-500"]);
    assert!(!stderr(&negative).contains("unexpected argument"));
    assert_eq!(negative.status.code(), Some(1), "{}", stderr(&negative));
    assert!(
        stderr(&negative).contains("order failed"),
        "{}",
        stderr(&negative)
    );
}

#[test]
fn operator_commands_and_api_on_a_running_engine() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h")],
    );
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let order = |args: &[&str]| {
        let mut all = vec!["order", "--venue", "paper", "--json"];
        all.extend_from_slice(args);
        json(&ok(cli(cfg, &all)))
    };
    let rest = order(&[
        "--symbol", "btc", "--side", "buy", "--usd", "200", "--limit", "1000",
    ]);
    assert_eq!(rest["status"], "acked");
    order(&["--symbol", "ETH", "--side", "buy", "--usd", "1000"]);

    // The README's examples of the control API.
    let (status, body) = http_post_json(
        port,
        "/api/orders/cancel",
        r#"{"venue":"paper","symbol":"btc"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["orders"][0]["client_id"], rest["client_id"]);
    assert_eq!(v["orders"][0]["status"], "cancelled");
    assert_eq!(v["failed"], serde_json::json!([]));
    let (status, body) = http_post_json(
        port,
        "/api/orders/cancel",
        r#"{"venue":"paper","symbol":"BTC","all":true}"#,
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "bad_request", "{body}");
    let (status, body) =
        http_post_json(port, "/api/orders/cancel", r#"{"venue":"moon","all":true}"#).unwrap();
    assert_eq!(status, 404, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "unknown_venue");
    let (status, body) = http(
        port,
        "DELETE",
        "/api/orders/0190f0a0b0c07d8e9fa0b1c2d3e4f5a6",
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(r#""code":"unknown_order""#), "{body}");
    let (status, body) = http_post_json(
        port,
        "/api/positions/close",
        r#"{"venue":"paper","symbol":"eth","percent":50}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["symbol"], "ETH");
    assert!(dec(&v["size_after"]) < dec(&v["size_before"]), "{body}");
    let (status, body) = http_get(port, "/api/orders?status=cancelled").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{body}");
    let (status, body) = http_get(port, "/api/orders?status=nope").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown status"), "{body}");
    let (status, body) = http_get(port, "/api/trades?venue=paper&symbol=eth").unwrap();
    assert_eq!(status, 200, "{body}");

    // The order API takes the venue's symbol in any case.
    let (status, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"paper","symbol":"eth","side":"buy","amount":{"usd":"100"},"pricing":"market","reduce_only":false,"origin":"manual"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""symbol":"ETH""#), "{body}");

    // The CLI through the API.
    let listed = json(&ok(cli(cfg, &["orders", "--venue", "paper", "--json"])));
    assert!(listed.as_array().unwrap().len() >= 3, "{listed}");
    let closed = json(&ok(cli(
        cfg,
        &[
            "close",
            "--venue",
            "paper",
            "--symbol",
            "ETH",
            "--percent",
            "100",
            "--json",
        ],
    )));
    assert_eq!(dec(&closed["size_after"]), 0.0, "{closed}");
    let none = json(&ok(cli(
        cfg,
        &["cancel", "--venue", "paper", "--all", "--json"],
    )));
    assert_eq!(none["orders"], serde_json::json!([]), "{none}");
    let running = cli(cfg, &["paper", "reset", "--yes"]);
    assert_eq!(running.status.code(), Some(1));
    assert!(
        stderr(&running).contains("stop it first"),
        "{}",
        stderr(&running)
    );
    let halted = json(&ok(cli(
        cfg,
        &["kill-switch", "--engage", "--reason", "api test", "--json"],
    )));
    assert_eq!(halted["kill_switch"], true, "{halted}");
    let (status, body) = http_post_json(
        port,
        "/api/orders",
        r#"{"venue":"paper","symbol":"BTC","side":"buy","amount":{"usd":"100"},"pricing":"market","reduce_only":false,"origin":"manual"}"#,
    )
    .unwrap();
    assert_ne!(status, 200, "halted refuses: {body}");

    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}

#[test]
fn run_for_prints_a_summary_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let out = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap(), "--for", "4s"])
        .env_remove("ORRERY_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("--- run summary ---"), "{stdout}");
    for line in [
        "duration:",
        "decisions:",
        "orders:",
        "fills:",
        "fees:",
        "realized PnL:",
        "unrealized PnL:",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
    let decisions: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("decisions:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(decisions >= 1, "{stdout}");
    assert!(!stdout.contains("unrealized PnL: unavailable"), "{stdout}");
}

/// One raw HTTP request without a body.
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// With API tokens set, the CLI's calls to the running engine carry the token of their
/// scope: a cancel (trading scope) goes through, and the same command without the token
/// in its environment is refused by the API (401), naming nothing secret.
#[test]
fn the_cli_sends_the_api_token_of_its_scope_to_a_running_engine() {
    const TRADE_TOKEN: &str = "trade-token-for-the-cli-test";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let cfg = config.to_str().unwrap();
    let mut engine = spawn_engine(
        &config,
        dir.path(),
        &[],
        &[
            ("ORRERY__AGENTS__TRADING__0__INITIAL_DELAY", "1h"),
            ("ORRERY_API_TOKEN_TRADE", TRADE_TOKEN),
        ],
    );
    wait_for(Duration::from_secs(30), "the engine to serve", || {
        http_get(port, "/health").filter(|(s, _)| *s == 200)
    });
    let cancel = |token: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "cancel", "--venue", "paper", "--all", "--json", "--config", cfg,
        ])
        .env_remove("ORRERY_CONFIG")
        .env_remove("ORRERY_API_TOKEN_TRADE")
        .env_remove("ORRERY_API_TOKEN_READ")
        .stdin(Stdio::null());
        if let Some(t) = token {
            cmd.env("ORRERY_API_TOKEN_TRADE", t);
        }
        cmd.output().unwrap()
    };
    let with_token = ok(cancel(Some(TRADE_TOKEN)));
    assert!(json(&with_token).is_object(), "{}", stderr(&with_token));
    let without = cancel(None);
    assert!(!without.status.success());
    let refused = json(&without);
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");
    assert!(!stderr(&without).contains(TRADE_TOKEN));
    // Nothing was ordered (the agent waits an hour), so a plain stop is clean.
    signal(&engine, libc::SIGTERM);
    assert!(wait_exit(&mut engine, Duration::from_secs(30)).success());
}
