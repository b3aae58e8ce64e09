//! The `orrery` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use orrery::config::Config;
use orrery::config::Scope;
use orrery::engine::{Engine, EngineHandle};
use orrery::http::{ApiError, OrderRequest};
use orrery::logging::LogFormat;
use orrery::models::{AskBody, ModelsReport, StreamLine};
use orrery::operate::open_store;
use orrery::status::{self, StatusReport};
use orrery_actors::exchanges::gateway::{OrderReport, PlaceOrder};
use orrery_actors::exchanges::Side;
use orrery_actors::models::{ModelClient, ModelResponse};
use orrery_actors::supervisor::RootExit;
use rust_decimal::Decimal;

/// The configuration compiled into the binary; used when no file is given and
/// `config/default.toml` is not in the working directory.
const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "Supervised actor engine for LLM-driven crypto trading agents"
)]
struct Cli {
    /// Log line format on stderr: `text` (colour only on a terminal) or `json` (one JSON
    /// object a line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine until Ctrl-C / SIGTERM (or for a fixed duration).
    Run {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Stop cleanly after this long, e.g. `60s`, `5m`.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        run_for: Option<Duration>,
        /// Dry run: every live venue is replaced by a paper venue of the same name, seeded
        /// from that venue's current prices; state goes to `<data_dir>/paper`.
        #[arg(long)]
        paper: bool,
    },
    /// Show positions, balances, PnL, orders, decisions and restarts.
    Status {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Print the report as JSON (the same as `GET /api/status`).
        #[arg(long)]
        json: bool,
    },
    /// Show the supervisor tree: path, restart type, state, restarts, mailbox depth and
    /// capacity of every actor. Live from the running engine; while it is stopped, the tree
    /// this config would build (every actor `not_running`, restarts from the data dir).
    Tree {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Print the tree as JSON (the same as `GET /api/tree`).
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and exit.
    CheckConfig {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Check the `--paper` twin: live venues' prices are read to seed it.
        #[arg(long)]
        paper: bool,
    },
    /// Place one order through the gateway, ledger and risk gate.
    Order {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        venue: String,
        /// Symbol, case-insensitive where the venue is (`btc`); Binance also takes its pair
        /// (`BTCUSDT`).
        #[arg(long)]
        symbol: String,
        /// buy or sell (`long`/`short` are refused: use buy or sell).
        #[arg(long, value_name = "buy|sell", value_parser = parse_side)]
        side: Side,
        /// Notional in USD.
        #[arg(long, allow_negative_numbers = true)]
        usd: Decimal,
        /// Limit price; a market order without it.
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<Decimal>,
        #[arg(long)]
        reduce_only: bool,
        /// A stop loss resting at the venue until the price reaches this, then a market
        /// order (a limit order with --limit). Binance futures: STOP_MARKET / STOP.
        #[arg(long, allow_negative_numbers = true, conflicts_with = "take_profit")]
        stop: Option<Decimal>,
        /// A take profit resting until the price reaches this (TAKE_PROFIT_MARKET /
        /// TAKE_PROFIT on Binance futures).
        #[arg(long, allow_negative_numbers = true)]
        take_profit: Option<Decimal>,
        /// Print the order report (or the error) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List model deployments: provider, model, health and cooldown (engine running),
    /// limits, prices, tokens and cost.
    Models {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Print the report as JSON (the same as `GET /api/models`).
        #[arg(long)]
        json: bool,
    },
    /// Send one prompt through the model router and print the answer, who served it,
    /// the latency and the tokens. Uses the running engine if there is one, else boots the
    /// models in this process.
    Ask {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Logical model name (`[models.<name>]`).
        #[arg(long, default_value = "default")]
        model: String,
        /// Print the answer's text as it arrives, then who served it. Deployments that
        /// do not stream (`local`) send their answer as one piece. With `--json` the
        /// whole answer is printed as JSON as usual.
        #[arg(long)]
        stream: bool,
        /// Print the whole answer (or the error) as JSON.
        #[arg(long)]
        json: bool,
        /// Longest wait for the answer, failover included.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        prompt: String,
    },
    /// Cancel open orders: one by client id, every order of a symbol, or all of a venue.
    Cancel(orrery::commands::CancelArgs),
    /// Close a position, or a percentage of it, in reduce-only chunks.
    Close(orrery::commands::CloseArgs),
    /// Engage (halt, cancel every open order, close every position) or release the kill switch.
    KillSwitch(orrery::commands::KillSwitchArgs),
    /// List fills: time, venue, symbol, side, price, size, fee, realized PnL.
    Trades(orrery::commands::TradesArgs),
    /// List every order in the ledger.
    Orders(orrery::commands::OrdersArgs),
    /// Paper account maintenance.
    #[command(subcommand)]
    Paper(orrery::commands::PaperCommand),
    /// List the agents (name, kind, state, interval, last run, runs/failures, last error),
    /// or pause, resume or run one now.
    Agents(orrery::agents::AgentsArgs),
    /// List recent signals of the signal bus (newest first), or `publish` one.
    Signals(orrery::signals::SignalsArgs),
    /// The sentiment agents: index per symbol, last signal, sources, last headlines.
    Sentiment(orrery::sentiment::SentimentArgs),
    /// List journaled decisions (newest first), or `journal show ID` for everything about one.
    Journal(orrery::journal::JournalArgs),
    /// Send a journaled decision's exact prompt to a model again and compare verdicts (one
    /// by id, or a batch with --agent --since --model). Never sends an order.
    Replay(orrery::replay::ReplayArgs),
    /// Perpetual-futures market data: `market funding` (mark, index, funding rate, history)
    /// and `market open-interest` (now, and its history at a period).
    Market(orrery::market::MarketArgs),
    /// Candle history: `data fetch` downloads a venue's candles into an OHLCV CSV
    /// (paginated, within the venue's rate limits, resumable).
    Data(orrery::data::DataArgs),
    /// Backtest a strategy on an OHLCV CSV file (statistics as backtesting.py, --json,
    /// --report out.html), or sweep its parameters (--sweep, --walk-forward). Needs no
    /// config file or data dir.
    Backtest(Box<orrery::backtest_cli::BacktestArgs>),
    /// The strategy library: list, show and promote research -> backtest attempts.
    Strategies(orrery::strategies::StrategiesArgs),
    /// The RBI pipeline: research -> strategy spec -> backtest -> library.
    Research(orrery::strategies::ResearchArgs),
    /// Notification sinks: their status (sent, failed, last delivery), or `notify test
    /// [--sink NAME]` to send a test message.
    Notify(orrery::notify::cli::NotifyArgs),
    /// The cluster (`[cluster]`, Redis scale-out): `cluster status [--json]` shows Redis
    /// health, nodes, leases, shared limits in use and shared breakers.
    Cluster(orrery::cluster_status::ClusterArgs),
}

fn parse_side(s: &str) -> Result<Side, String> {
    orrery::commands::parse_cli_side(s)
}

/// Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage.
const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    orrery::logging::set_format(cli.log_format);
    let command = cli.command.unwrap_or(Command::Run {
        config: std::env::var_os("ORRERY_CONFIG").map(PathBuf::from),
        run_for: None,
        paper: false,
    });
    match command {
        Command::Run {
            config,
            run_for,
            paper,
        } => with_config(config.as_deref(), |c| {
            let c = match paper_if(c, paper) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(code) = check_keys(&c) {
                return code;
            }
            if let Err(code) = check_live_symbols(&c) {
                return code;
            }
            run(c, run_for)
        }),
        Command::Status { config, json } => {
            with_config(config.as_deref(), |c| show_status(c, json))
        }
        Command::Tree { config, json } => with_config(config.as_deref(), |c| show_tree(c, json)),
        Command::CheckConfig { config, paper } => with_config(config.as_deref(), |c| {
            let c = match paper_if(c, paper) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(code) = check_keys(&c) {
                return code;
            }
            println!(
                "config OK: data dir {}, venues [{}], models [{}], {} trading agent(s), metrics on {}",
                c.engine.data_dir.display(),
                c.exchanges.venues.keys().cloned().collect::<Vec<_>>().join(", "),
                c.model_names(),
                c.agents.trading.len(),
                c.telemetry.listen
            );
            ExitCode::SUCCESS
        }),
        Command::Order {
            config,
            venue,
            symbol,
            side,
            usd,
            limit,
            reduce_only,
            stop,
            take_profit,
            json,
        } => with_config(config.as_deref(), |c| {
            let request = OrderRequest {
                symbol: orrery::symbols::normalize(&c, &venue, &symbol),
                venue,
                side,
                usd: Some(usd),
                size: None,
                limit,
                tif: None,
                reduce_only,
                stop,
                take_profit,
            };
            place_order(c, request, json)
        }),
        Command::Models { config, json } => with_config(config.as_deref(), |c| models(c, json)),
        Command::Ask {
            config,
            model,
            stream,
            json,
            timeout,
            prompt,
        } => with_config(config.as_deref(), |c| {
            let mut body = AskBody::new(model, prompt);
            body.timeout = timeout;
            ask(c, body, stream, json)
        }),
        Command::Cancel(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::commands::cancel(c, a)
        }),
        Command::Close(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::commands::close(c, a)
        }),
        Command::KillSwitch(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::commands::kill_switch(c, a)
        }),
        Command::Trades(a) => with_config(a.listing.config.clone().as_deref(), |c| {
            orrery::commands::trades(c, a)
        }),
        Command::Orders(a) => with_config(a.listing.config.clone().as_deref(), |c| {
            orrery::commands::orders(c, a)
        }),
        Command::Paper(p) => with_config(p.config().as_deref(), |c| orrery::commands::paper(c, p)),
        Command::Cluster(a) => {
            with_config(a.config().as_deref(), |c| orrery::cluster_status::run(c, a))
        }
        Command::Notify(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::notify::cli::run(c, a)
        }),
        Command::Agents(a) => {
            with_config(a.config.clone().as_deref(), |c| orrery::agents::run(c, a))
        }
        Command::Signals(a) => {
            with_config(a.config().as_deref(), |c| orrery::signals::command(c, a))
        }
        Command::Sentiment(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::sentiment::command(c, a)
        }),
        Command::Journal(a) => {
            with_config(a.config.clone().as_deref(), |c| orrery::journal::run(c, a))
        }
        Command::Replay(a) => {
            with_config(a.config.clone().as_deref(), |c| orrery::replay::run(c, a))
        }
        Command::Market(a) => with_config(a.config().as_deref(), |c| orrery::market::run(c, a)),
        Command::Data(a) => with_config(a.config().as_deref(), |c| orrery::data::run(c, a)),
        Command::Backtest(a) => orrery::backtest_cli::run(*a),
        Command::Strategies(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::strategies::command(c, a)
        }),
        Command::Research(a) => with_config(a.config.clone().as_deref(), |c| {
            orrery::strategies::research(c, a)
        }),
    }
}

/// Loads the configuration (file, `./config/default.toml`, or the embedded default), applies
/// `ORRERY__*` overrides, validates, and runs `f`; a bad config exits 2 before anything starts.
fn with_config(path: Option<&Path>, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    let env = std::env::vars();
    let loaded = match path {
        Some(p) => Config::load(Some(p), env),
        None if Path::new("config/default.toml").is_file() => {
            Config::load(Some(Path::new("config/default.toml")), env)
        }
        None => Config::load_str(EMBEDDED_DEFAULT, "<embedded default>", env),
    };
    match loaded {
        Ok(config) => f(config),
        Err(e) => {
            eprintln!("orrery: {e}");
            eprintln!("orrery: nothing was started");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// With `--paper`, the paper twin of `config` (live venues read once for their prices);
/// a venue that cannot be read stops here with one message.
fn paper_if(config: Config, paper: bool) -> Result<Config, ExitCode> {
    if !paper {
        return Ok(config);
    }
    orrery::logging::init(&config.engine.log);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("orrery: cannot start a runtime for --paper: {e}");
            ExitCode::from(EXIT_FAILURE)
        })?;
    let twin = runtime
        .block_on(orrery::paper_mode::paper_twin(config))
        .map_err(|e| {
            eprintln!("orrery: {e}");
            eprintln!("orrery: nothing was started");
            ExitCode::from(EXIT_FAILURE)
        })?;
    twin.validate().map_err(|e| {
        eprintln!("orrery: the --paper twin of this config is not valid: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok(twin)
}

/// Agent symbols against each live venue's instrument list, before anything starts.
fn check_live_symbols(config: &Config) -> Result<(), ExitCode> {
    if config
        .exchanges
        .venues
        .values()
        .all(|v| matches!(v, orrery::config::VenueConfig::Paper(_)))
    {
        return Ok(());
    }
    orrery::logging::init(&config.engine.log);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("orrery: cannot start a runtime for the start-up checks: {e}");
            ExitCode::from(EXIT_FAILURE)
        })?;
    runtime
        .block_on(orrery::paper_mode::check_live_symbols(config))
        .map_err(|unknown| {
            for u in unknown {
                eprintln!("orrery: {u}");
            }
            eprintln!("orrery: nothing was started");
            ExitCode::from(EXIT_CONFIG)
        })
}

/// The API keys of every model deployment are in the environment; else one message
/// naming each deployment's key path and the variables tried, and exit 2.
fn check_keys(config: &Config) -> Result<(), ExitCode> {
    config
        .check_keys(&orrery_actors::env::process_env)
        .map_err(|e| {
            eprintln!("orrery: {e}");
            eprintln!("orrery: nothing was started");
            ExitCode::from(EXIT_CONFIG)
        })
}

fn run(config: Config, run_for: Option<Duration>) -> ExitCode {
    orrery::logging::init(&config.engine.log);
    orrery_actors::supervisor::install_panic_hook();
    let system = actix::System::new();
    system.block_on(async move {
        let engine = match Engine::start(config).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("orrery: cannot start: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        let (started, started_ms) = (
            std::time::Instant::now(),
            chrono::Utc::now().timestamp_millis(),
        );
        let reason = wait_for_stop(&engine, run_for).await;
        let exit = match reason {
            Stop::Tree(exit) => exit,
            Stop::Requested(why) => {
                tracing::info!("{why}: stopping intake, draining in-flight work, flushing state");
                let marks = orrery::summary::venue_marks(&engine).await;
                let exit = engine.shutdown().await;
                let summary =
                    orrery::summary::collect(&engine.store, started_ms, started.elapsed(), marks);
                match orrery::logging::format() {
                    // Machines reading JSON lines get the summary as one more JSON event.
                    LogFormat::Json => tracing::info!(
                        summary = %serde_json::to_string(&summary).unwrap_or_default(),
                        "run summary"
                    ),
                    LogFormat::Text => print!("{}", orrery::summary::render(&summary)),
                }
                exit
            }
        };
        match exit {
            RootExit::Normal => {
                tracing::info!("engine stopped cleanly");
                ExitCode::SUCCESS
            }
            RootExit::Escalated(reason) => {
                let _ = engine.store.flush();
                eprintln!("orrery: the supervisor tree gave up and the engine stopped: {reason}");
                ExitCode::from(EXIT_FAILURE)
            }
        }
    })
}

enum Stop {
    Requested(&'static str),
    Tree(RootExit),
}

async fn wait_for_stop(engine: &EngineHandle, run_for: Option<Duration>) -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the engine with SIGKILL only");
        return Stop::Tree(engine.terminated().await);
    };
    let deadline = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = int.recv() => Stop::Requested("SIGINT"),
        _ = term.recv() => Stop::Requested("SIGTERM"),
        _ = deadline => Stop::Requested("--for elapsed"),
        exit = engine.terminated() => Stop::Tree(exit),
    }
}

fn control_url(config: &Config, path: &str) -> String {
    format!("http://{}{path}", config.telemetry.listen)
}

/// GETs a report from the running engine's control API.
async fn fetch_live<T: serde::de::DeserializeOwned>(
    config: &Config,
    path: &str,
) -> Result<T, String> {
    let url = control_url(config, path);
    let sent = with_token(http_client()?.get(&url), config, Scope::Read)
        .send()
        .await;
    live_answer(sent, &url).await
}

/// The control API's answer to a request sent to `url`: its JSON, or why there is none
/// (no answer, a refusal, an unreadable body).
async fn live_answer<T: serde::de::DeserializeOwned>(
    sent: reqwest::Result<reqwest::Response>,
    url: &str,
) -> Result<T, String> {
    let resp =
        sent.map_err(|e| format!("the engine holds the data dir but {url} did not answer: {e}"))?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    resp.json::<T>()
        .await
        .map_err(|e| format!("unreadable answer from {url}: {e}"))
}

/// Adds the API token for `scope` (from the variables of `[api]`) when one is set.
fn with_token(
    request: reqwest::RequestBuilder,
    config: &Config,
    scope: Scope,
) -> reqwest::RequestBuilder {
    match config.api.tokens.for_scope(scope) {
        Some(token) => request.bearer_auth(token.expose()),
        None => request,
    }
}

/// POSTs `body` to the running engine's control API and reads its answer.
async fn post_live<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    client: reqwest::Client,
    config: &Config,
    url: &str,
    body: &B,
) -> Result<T, String> {
    let sent = with_token(client.post(url), config, Scope::Trade)
        .json(body)
        .send()
        .await;
    live_answer(sent, url).await
}

/// A refusal from the control API as "status: message" (the raw body if it is not the
/// API's error JSON).
async fn api_error(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let error = serde_json::from_str::<ApiError>(&text)
        .map(|b| b.error.message)
        .unwrap_or(text);
    format!("{status}: {error}")
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())
}

fn show_status(config: Config, json: bool) -> ExitCode {
    let system = actix::System::new();
    let report: Result<StatusReport, String> = system.block_on(async {
        if !config.engine.data_dir.exists() {
            return Err(format!(
                "no data dir at {}; the engine has not run with this config yet",
                config.engine.data_dir.display()
            ));
        }
        match open_store(&config)? {
            Some(store) => status::offline(&config, &store).await,
            None => fetch_live::<StatusReport>(&config, "/api/status").await,
        }
    });
    match report {
        Ok(r) if json => {
            println!("{}", orrery::json::to_pretty(&r));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            print!("{}", status::render(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orrery: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `orrery tree`: the running engine's live tree over its control API, else the tree the
/// config would build with the restart counts persisted in the data dir.
fn show_tree(config: Config, json: bool) -> ExitCode {
    use orrery::tree::{plan, planned_nodes, TreeReport};
    let system = actix::System::new();
    let report: Result<TreeReport, String> = system.block_on(async {
        let planned = |records: &[(String, orrery_actors::supervisor::RestartRecord)]| TreeReport {
            engine_running: false,
            actors: planned_nodes(&plan(&config), records),
        };
        if !config.engine.data_dir.exists() {
            return Ok(planned(&[]));
        }
        match open_store(&config)? {
            Some(store) => {
                let records = orrery_actors::supervisor::restart_records(&store)
                    .map_err(|e| e.to_string())?;
                Ok(planned(&records))
            }
            None => tokio::time::timeout(
                orrery::tree::FETCH_TIMEOUT,
                fetch_live::<TreeReport>(&config, "/api/tree"),
            )
            .await
            .map_err(|_| {
                format!(
                    "the engine holds the data dir but its control API did not answer within {:?}",
                    orrery::tree::FETCH_TIMEOUT
                )
            })?,
        }
    });
    match report {
        Ok(r) if json => {
            println!("{}", orrery::json::to_pretty(&r));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            if r.engine_running {
                println!(
                    "live supervisor tree of the engine on {}:",
                    config.telemetry.listen
                );
            } else {
                println!(
                    "the engine is not running; the tree this config would build (restarts as recorded in {}):",
                    config.engine.data_dir.display()
                );
            }
            print!("{}", orrery_actors::supervisor::render_tree(&r.actors));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orrery: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn place_order(mut config: Config, request: OrderRequest, json: bool) -> ExitCode {
    orrery::logging::init("warn");
    let system = actix::System::new();
    let result: Result<OrderReport, String> = system.block_on(async move {
        match open_store(&config)? {
            // The engine is stopped: boot the gateway and its connectors only.
            Some(store) => {
                drop(store);
                let intent = request.into_intent("manual")?;
                config.agents.trading.clear();
                config.agents.skip_promoted = true;
                config.agents.pipeline.clear();
                config.agents.risk.enabled = false;
                config.telemetry.disabled = true;
                let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
                let answer = engine.gateway.send(PlaceOrder { intent }).await;
                engine.shutdown().await;
                answer
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            None => {
                let url = control_url(&config, "/api/orders");
                post_live(http_client()?, &config, &url, &request).await
            }
        }
    });
    match result {
        Ok(report) => {
            if json {
                println!("{}", orrery::json::to_pretty(&report));
            } else {
                println!(
                    "{} {} {} {} size {} filled {} avg {} -> {}",
                    report.client_id,
                    report.venue,
                    report.side,
                    report.symbol,
                    report.size,
                    report.filled_size,
                    report
                        .avg_fill_price
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                    report.status
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e }));
            }
            eprintln!("orrery: order failed: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn models(config: Config, json: bool) -> ExitCode {
    let system = actix::System::new();
    let report: Result<ModelsReport, String> = system.block_on(async {
        if !config.engine.data_dir.exists() {
            return orrery::models::offline(&config, None);
        }
        match open_store(&config)? {
            Some(store) => orrery::models::offline(&config, Some(&store)),
            None => fetch_live::<ModelsReport>(&config, "/api/models").await,
        }
    });
    match report {
        Ok(r) if json => {
            println!("{}", orrery::json::to_pretty(&r));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            print!("{}", orrery::models::render(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orrery: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn ask(mut config: Config, body: AskBody, stream: bool, json: bool) -> ExitCode {
    if stream && !json {
        return ask_streamed(config, body);
    }
    orrery::logging::init("warn");
    let system = actix::System::new();
    let started = std::time::Instant::now();
    let result: Result<ModelResponse, String> = system.block_on(async move {
        match open_store(&config)? {
            // The engine is stopped: boot it without agents or HTTP, ask, stop.
            Some(store) => {
                drop(store);
                config.agents.trading.clear();
                config.agents.skip_promoted = true;
                config.agents.pipeline.clear();
                config.agents.risk.enabled = false;
                config.telemetry.disabled = true;
                let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
                let answer = ModelClient::from_slot(engine.router.clone())
                    .ask(body.into_request())
                    .await;
                engine.shutdown().await;
                answer.map_err(|e| e.to_string())
            }
            None => {
                let url = control_url(&config, "/api/ask");
                post_live(http_client_for(body.timeout)?, &config, &url, &body).await
            }
        }
    });
    match result {
        Ok(r) if json => {
            let answer = orrery::json::AskAnswer::new(r, started.elapsed());
            println!("{}", orrery::json::to_pretty(&answer));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!("{}", r.text);
            println!("{}", served_by(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e }));
            }
            eprintln!("orrery: ask failed: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A client whose overall timeout covers a model answer of up to `answer_within`.
fn http_client_for(answer_within: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(answer_within + Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())
}

/// The line after an answer: who served it, how fast, how many tokens.
fn served_by(r: &ModelResponse) -> String {
    format!(
        "-- served by {} ({}/{}) in {} ms, tokens {} prompt + {} completion{}",
        r.deployment,
        r.provider,
        r.model,
        r.latency.as_millis(),
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
        if r.cached { ", from cache" } else { "" }
    )
}

/// `ask --stream`: the text printed as it arrives, then who served it. The running
/// engine streams it over `POST /api/ask/stream`; a stopped one is booted in-process and
/// streams the same lines.
fn ask_streamed(mut config: Config, body: AskBody) -> ExitCode {
    orrery::logging::init("warn");
    let system = actix::System::new();
    let result: Result<ModelResponse, String> = system.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::channel::<StreamLine>(64);
        match open_store(&config)? {
            Some(store) => {
                drop(store);
                config.agents.trading.clear();
                config.agents.skip_promoted = true;
                config.agents.pipeline.clear();
                config.agents.risk.enabled = false;
                config.telemetry.disabled = true;
                let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
                let asked = orrery::models::ask_streaming(&engine.router, body.into_request(), tx);
                let ((), printed) = tokio::join!(asked, print_stream(rx));
                engine.shutdown().await;
                printed
            }
            None => {
                let url = control_url(&config, "/api/ask/stream");
                let (fetched, printed) =
                    tokio::join!(fetch_stream(&config, &url, &body, tx), print_stream(rx));
                fetched.and(printed)
            }
        }
    });
    match result {
        Ok(r) => {
            println!("{}", served_by(&r));
            // The text is stdout's; who was tried before the answer goes to stderr.
            if r.attempts.len() > 1 {
                eprintln!("{}", tried(&r));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orrery: ask failed: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `ask --stream`'s stderr line when the answer took more than one deployment: each one
/// tried, in order, with its outcome and time.
fn tried(r: &ModelResponse) -> String {
    let each: Vec<String> = r
        .attempts
        .iter()
        .map(|a| match &a.detail {
            Some(why) => format!("{} {} in {} ms ({why})", a.deployment, a.outcome, a.ms),
            None => format!("{} {} in {} ms", a.deployment, a.outcome, a.ms),
        })
        .collect();
    format!("-- tried: {}", each.join("; "))
}

/// Prints each delta as it arrives (flushed), ends the text with a newline, and returns
/// the stream's outcome.
async fn print_stream(
    mut lines: tokio::sync::mpsc::Receiver<StreamLine>,
) -> Result<ModelResponse, String> {
    use std::io::Write;
    let mut out = std::io::stdout();
    let mut open_line = false;
    let mut outcome = None;
    while let Some(line) = lines.recv().await {
        match line {
            StreamLine::Delta { text } => {
                // A closed stdout (`| head`) is the reader's choice, not a failure.
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                open_line = !text.ends_with('\n');
            }
            StreamLine::Done { response } => outcome = Some(Ok(response)),
            StreamLine::Error { error } => outcome = Some(Err(error)),
        }
    }
    if open_line {
        let _ = writeln!(out);
    }
    outcome.unwrap_or_else(|| Err("the answer stream ended without a result".into()))
}

/// Largest line of `POST /api/ask/stream` the CLI accepts.
const MAX_STREAM_LINE: usize = 4 * 1024 * 1024;

/// Reads the running engine's NDJSON stream into `lines`. The client's timeout (the
/// request's plus a margin) bounds the whole exchange.
async fn fetch_stream(
    config: &Config,
    url: &str,
    body: &AskBody,
    lines: tokio::sync::mpsc::Sender<StreamLine>,
) -> Result<(), String> {
    let mut resp = with_token(
        http_client_for(body.timeout)?.post(url),
        config,
        Scope::Trade,
    )
    .json(body)
    .send()
    .await
    .map_err(|e| format!("the engine holds the data dir but {url} did not answer: {e}"))?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| format!("the answer stream from {url} broke: {e}"))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let parsed = serde_json::from_slice::<StreamLine>(line)
                .map_err(|e| format!("unreadable line in the answer stream from {url}: {e}"))?;
            if lines.send(parsed).await.is_err() {
                return Ok(());
            }
        }
        if pending.len() > MAX_STREAM_LINE {
            return Err(format!(
                "a line of the answer stream from {url} is longer than {MAX_STREAM_LINE} bytes"
            ));
        }
    }
}
