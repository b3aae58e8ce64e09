//! `orrery notify` (each sink's status) and `orrery notify test [--sink NAME]` (one test
//! message, so an operator can check a sink before relying on it).
//!
//! Owns: the clap arguments, the choice between the running engine (its control API) and
//! this process (the engine is stopped: the sinks are resolved from this process's
//! environment and the test is sent from here, its outcome recorded in the data dir), and
//! printing. Never: prints a URL or a token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use orrery_actors::clock::system_clock;
use orrery_actors::store::Store;

use super::actor::{client, pick, send_tests, SinkWorker};
use super::sink::RetryPlan;
use super::{render, status, SinkStatus, SinksReport, TestOutcome, TestReport, TestRequest};
use crate::config::Config;
use crate::operate::CliError;

#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[arg(long, env = "ORRERY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<NotifyAction>,
}

#[derive(Debug, Subcommand)]
pub enum NotifyAction {
    /// Send a test message to one sink (or every sink) now, with the usual retries.
    Test {
        /// The sink's name (`[[notifications.sinks]] name`); every sink without it.
        #[arg(long)]
        sink: Option<String>,
    },
}

enum Done {
    List(Vec<SinkStatus>),
    Test(Vec<TestOutcome>),
}

/// Runs `orrery notify ...`: exit 0, or 1 when a test message was not delivered or the
/// command failed.
pub fn run(config: Config, args: NotifyArgs) -> ExitCode {
    crate::logging::init("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orrery: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let what = match &args.action {
        None => "notify",
        Some(NotifyAction::Test { .. }) => "notify test",
    };
    match runtime.block_on(execute(&config, args.action)) {
        Ok(Done::List(sinks)) => {
            if args.json {
                println!("{}", crate::json::to_pretty(&SinksReport { sinks }));
            } else if sinks.is_empty() {
                println!("no notification sinks configured ([[notifications.sinks]])");
            } else {
                let mut o = String::new();
                render(&sinks, &mut o);
                print!("{}", o.trim_start_matches('\n'));
            }
            ExitCode::SUCCESS
        }
        Ok(Done::Test(outcomes)) => {
            let all = outcomes.iter().all(|o| o.delivered);
            if args.json {
                println!(
                    "{}",
                    crate::json::to_pretty(&TestReport {
                        outcomes: outcomes.clone()
                    })
                );
            } else {
                for o in &outcomes {
                    match &o.error {
                        None => println!(
                            "sink {} ({}): test message delivered ({} attempt(s))",
                            o.sink, o.kind, o.attempts
                        ),
                        Some(e) => println!(
                            "sink {} ({}): NOT delivered after {} attempt(s): {e}",
                            o.sink, o.kind, o.attempts
                        ),
                    }
                }
            }
            if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": e.code, "message": e.message}})
                );
            }
            eprintln!("orrery: {what} failed: {}", e.message);
            ExitCode::from(1)
        }
    }
}

async fn execute(config: &Config, action: Option<NotifyAction>) -> Result<Done, CliError> {
    // A data dir that does not exist yet has no records; this command creates none.
    let store = if !config.engine.data_dir.exists() {
        Some(Store::temporary().map_err(|e| CliError::new("store", e.to_string()))?)
    } else {
        crate::operate::open_store(config).map_err(|e| CliError::new("store", e))?
    };
    let n = &config.notifications;
    match (store, action) {
        (Some(store), None) => Ok(Done::List(status(config, &store))),
        (Some(store), Some(NotifyAction::Test { sink })) => {
            let records = store.tree::<SinkStatus>(super::NOTIFICATIONS_TREE).ok();
            let sinks = n
                .resolve(&orrery_actors::env::process_env)
                .map_err(|e| CliError::new("missing_secret", e.to_string()))?;
            let workers: Vec<Arc<SinkWorker>> = sinks
                .into_iter()
                .map(|s| Arc::new(SinkWorker::new(s, n, records.clone())))
                .collect();
            let picked = pick(&workers, sink.as_deref()).map_err(|e| {
                let code = match e {
                    super::NotifyError::UnknownSink { .. } => "unknown_sink",
                    _ => "no_sinks",
                };
                CliError::new(code, e.to_string())
            })?;
            let client = client(n.timeout).map_err(|e| CliError::new("failed", e.to_string()))?;
            let outcomes =
                send_tests(picked, client, RetryPlan::from_config(n), system_clock()).await;
            let _ = store.flush();
            Ok(Done::Test(outcomes))
        }
        (None, None) => {
            let r: SinksReport = crate::operate::call_api_within(
                config,
                reqwest::Method::GET,
                "/api/notifications",
                None::<&()>,
                Duration::from_secs(30),
            )
            .await?;
            Ok(Done::List(r.sinks))
        }
        (None, Some(NotifyAction::Test { sink })) => {
            let bound = (n.timeout + n.backoff_max) * n.max_attempts * n.sinks.len().max(1) as u32
                + Duration::from_secs(10);
            let r: TestReport = crate::operate::call_api_within(
                config,
                reqwest::Method::POST,
                "/api/notifications/test",
                Some(&TestRequest { sink }),
                bound,
            )
            .await?;
            Ok(Done::Test(r.outcomes))
        }
    }
}
