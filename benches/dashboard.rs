//! The dashboard's first load under a long-running engine's data (issue #15: first paint
//! ≤ 1 s with 10 000 orders and 10 000 decisions in sled, data paginated, never sent whole).
//!
//! An engine runs in-process on the shipped default config (paper venue, offline models,
//! its agents trading) over a data dir seeded with 10 000 finished orders and 10 000
//! journaled decisions (`support/dashboard_seed.rs`). Each bench times, over loopback HTTP,
//! the API calls one tab of the page makes before it can draw, in the order it makes them:
//! - `dashboard_first_load/overview`: session, status, equity history.
//! - `dashboard_first_load/positions`: session, status, the first page of orders.
//! - `dashboard_first_load/journal`: session, status, the first page of decisions.
//! - `dashboard_page/orders_older`: a page of orders from a cursor 5 000 orders deep.
//! - `dashboard_page/decision_detail`: one decision with its prompt and member answers.
//! - `dashboard_assets`: the HTML, JS and CSS of the page.
//!
//! The browser's own figure (navigation start to the first tab drawn, same seeded load) is
//! recorded by `tests/dashboard.rs` in `target/test-artifacts/dashboard-timing.json`.
//!
//! Run: `cargo bench --bench dashboard -- --warm-up-time 1 --measurement-time 5`

#[path = "support/dashboard_seed.rs"]
mod dashboard_seed;

use criterion::{criterion_group, criterion_main, Criterion};
use orrery::{Config, Engine};

const SEEDED: usize = 10_000;

async fn get(client: &reqwest::Client, url: String) -> serde_json::Value {
    let res = client.get(&url).send().await.expect("the engine answers");
    assert!(res.status().is_success(), "{url}: {}", res.status());
    let text = res.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dashboard_seed::seed(&data, SEEDED);
    let env = vec![
        (
            "ORRERY__ENGINE__DATA_DIR".to_string(),
            data.display().to_string(),
        ),
        (
            "ORRERY__TELEMETRY__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("ORRERY__ENGINE__LOG".to_string(), "warn".to_string()),
    ];
    let config = Config::load_str(
        include_str!("../config/default.toml"),
        "config/default.toml",
        env,
    )
    .unwrap();
    let sys = actix::System::new();
    let engine = sys.block_on(Engine::start(config)).unwrap();
    let base = format!("http://{}", engine.listen_addr().unwrap());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        // Below the server's keep-alive (5 s), so a pause between benches never reuses a
        // connection the server has just closed.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();

    // The cursor 5 000 orders deep, and one decision's id.
    let (deep, decision) = sys.block_on(async {
        let mut cursor = None::<String>;
        for _ in 0..10 {
            let url = match &cursor {
                Some(c) => format!("{base}/api/dashboard/orders?limit=500&before={c}"),
                None => format!("{base}/api/dashboard/orders?limit=500"),
            };
            let page = get(&client, url).await;
            cursor = page["next"].as_str().map(String::from);
        }
        let decisions = get(&client, format!("{base}/api/dashboard/decisions?limit=1")).await;
        (
            cursor.expect("5 000 orders deep"),
            decisions["items"][0]["id"].as_str().unwrap().to_string(),
        )
    });

    let mut group = c.benchmark_group("dashboard_first_load");
    for (name, third) in [
        ("overview", "/api/dashboard/equity?points=400"),
        ("positions", "/api/dashboard/orders?limit=50"),
        ("journal", "/api/dashboard/decisions?limit=50"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                sys.block_on(async {
                    get(&client, format!("{base}/api/dashboard/session")).await;
                    get(&client, format!("{base}/api/status")).await;
                    get(&client, format!("{base}{third}")).await
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("dashboard_page");
    group.bench_function("orders_older", |b| {
        b.iter(|| {
            sys.block_on(get(
                &client,
                format!("{base}/api/dashboard/orders?limit=50&before={deep}"),
            ))
        })
    });
    group.bench_function("decision_detail", |b| {
        b.iter(|| sys.block_on(get(&client, format!("{base}/api/journal/{decision}"))))
    });
    group.finish();

    c.bench_function("dashboard_assets", |b| {
        b.iter(|| {
            sys.block_on(async {
                for path in ["/", "/dashboard/app.js", "/dashboard/app.css"] {
                    get(&client, format!("{base}{path}")).await;
                }
            })
        })
    });
    println!(
        "embedded dashboard assets: {} bytes",
        orrery::dashboard::ASSET_BYTES
    );
    sys.block_on(engine.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
