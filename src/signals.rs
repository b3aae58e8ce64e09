//! The operator's side of the signal bus: `orrery signals [--symbol S] [--kind K]
//! [--since 1h] [--limit N] [--json]`, `orrery signals publish ...`, and the control API's
//! `GET /api/signals?symbol=&kind=&since=&limit=` and `POST /api/signals`.
//!
//! Owns: the query and its checks (`kind` takes one kind or several, comma-separated;
//! `since` a date, an RFC 3339 time or a duration back from now, as `orrery trades`), the
//! CLI's choice between the running engine (asked over its control API: sled lets one
//! process hold the data dir) and a stopped one (the `signals` tree is read, or written,
//! in this process; the bus reloads it at start), and the table. Never: validates a
//! signal itself (the bus and [`SignalInput::validate`] do, so every path refuses the
//! same input with the same message) or keeps signals anywhere but the bus and its tree.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::{Args, Subcommand};
use orrery_actors::clock::{Clock, Millis, SystemClock};
use orrery_actors::signals::store::{DEFAULT_LIMIT, MAX_LIMIT};
use orrery_actors::signals::{
    Publish, PublishError, Recent, Signal, SignalError, SignalFilter, SignalInput, SignalKind,
    SignalStore,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::history::{parse_since, rfc3339};
use crate::http::slot_error_response;
use crate::operate::{call_api, error_response, json_config, open_store, CliError};

/// Query of `GET /api/signals` and the filters of `orrery signals`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// One kind, or several separated by commas (`sentiment,funding`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Newest first, at most this many (1 to 10000; 100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl SignalQuery {
    /// The bus's filter, or what is wrong, naming the parameter.
    pub fn filter(&self, now_ms: Millis) -> Result<SignalFilter, String> {
        let kinds = match &self.kind {
            None => Vec::new(),
            Some(k) => k
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .map(|k| k.parse::<SignalKind>())
                .collect::<Result<Vec<_>, SignalError>>()
                .map_err(|e| format!("kind: {e}"))?,
        };
        let since_ms = match &self.since {
            None => None,
            Some(s) => Some(parse_since(s, now_ms).map_err(|e| format!("since: {e}"))?),
        };
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => return Err(format!("limit: {n} is out of range; 1 to {MAX_LIMIT}")),
        };
        Ok(SignalFilter {
            kinds,
            symbol: self
                .symbol
                .as_deref()
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty()),
            since_ms,
            limit,
            exclude_source: None,
        })
    }

    fn query_string(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("symbol", &self.symbol),
            ("kind", &self.kind),
            ("since", &self.since),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(n) = self.limit {
            q.append_pair("limit", &n.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            q
        } else {
            format!("?{q}")
        }
    }
}

/// A signal as the API and `--json` show it: every field of [`Signal`], plus its time
/// and expiry in RFC 3339 UTC beside the `_ms` numbers (the API's convention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalView {
    #[serde(flatten)]
    pub signal: Signal,
    pub time: String,
    pub expires_ms: Millis,
    pub expires: String,
}

impl From<Signal> for SignalView {
    fn from(signal: Signal) -> Self {
        Self {
            time: rfc3339(signal.time_ms),
            expires_ms: signal.expires_ms(),
            expires: rfc3339(signal.expires_ms()),
            signal,
        }
    }
}

fn views(signals: Vec<Signal>) -> Vec<SignalView> {
    signals.into_iter().map(SignalView::from).collect()
}

/// The message of a refused signal: the field first, so a script can tell which.
pub fn refusal_message(e: &SignalError) -> String {
    format!("signal field `{}`: {e}", e.field())
}

/// Registers `GET` and `POST /api/signals` on the control API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/signals")
            .app_data(json_config())
            .route(web::get().to(list_route))
            .route(web::post().to(publish_route)),
    );
}

async fn list_route(
    engine: web::Data<EngineHandle>,
    query: web::Query<SignalQuery>,
) -> HttpResponse {
    let filter = match query.filter(SystemClock.now_ms()) {
        Ok(f) => f,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    match engine.signals.send(Recent(filter)).await {
        Ok(signals) => HttpResponse::Ok().json(views(signals)),
        Err(e) => slot_error_response(&e),
    }
}

async fn publish_route(
    engine: web::Data<EngineHandle>,
    body: web::Json<SignalInput>,
) -> HttpResponse {
    match engine.signals.send(Publish(body.into_inner())).await {
        Ok(Ok(signal)) => {
            tracing::info!(
                id = %signal.id,
                source = %signal.source,
                symbol = %signal.symbol,
                kind = %signal.kind,
                direction = %signal.direction,
                confidence = signal.confidence,
                "signal published through the control API"
            );
            HttpResponse::Created().json(SignalView::from(signal))
        }
        Ok(Err(PublishError::Invalid(e))) => {
            error_response(StatusCode::BAD_REQUEST, "bad_request", refusal_message(&e))
        }
        Ok(Err(e @ PublishError::Store(_))) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_failed",
            e.to_string(),
        ),
        Err(e) => slot_error_response(&e),
    }
}

// ---------------------------------------------------------------------------------------
// The CLI side.

/// `orrery signals`: list recent signals, or `publish` one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SignalsArgs {
    #[command(subcommand)]
    pub action: Option<SignalsAction>,
    #[command(flatten)]
    pub list: ListArgs,
}

impl SignalsArgs {
    /// The `--config` of whichever form was used.
    pub fn config(&self) -> Option<PathBuf> {
        match &self.action {
            Some(SignalsAction::Publish(p)) => p.config.clone(),
            None => self.list.config.clone(),
        }
    }
}

/// Filters of the listing.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub symbol: Option<String>,
    /// One kind or several, comma-separated: sentiment, funding, open_interest,
    /// liquidations, whale, technical, news, other:<name>.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only signals published at or after this: a date (2026-01-31), an RFC 3339 time, or
    /// a duration back from now (1h, 90m).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many, newest first (1 to 10000; default 100).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the signals as a JSON array (the same as `GET /api/signals`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SignalsAction {
    /// Publish one signal (as an external source: a script, an operator).
    Publish(PublishArgs),
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub symbol: String,
    /// sentiment, funding, open_interest, liquidations, whale, technical, news or
    /// other:<name>.
    #[arg(long)]
    pub kind: String,
    /// long, short or neutral.
    #[arg(long)]
    pub direction: String,
    /// 0 to 1.
    #[arg(long, allow_negative_numbers = true)]
    pub confidence: f64,
    /// The measurement (a score, a rate, a volume); 0 when absent.
    #[arg(long, allow_negative_numbers = true, default_value = "0")]
    pub value: Decimal,
    /// Why (at most 1000 characters).
    #[arg(long, default_value = "")]
    pub evidence: String,
    /// How long the signal stays relevant (1s to 7days); `[signals] default_ttl` when absent.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,
    /// Who publishes it.
    #[arg(long, default_value = "cli")]
    pub source: String,
    /// Print the published signal (or the error) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit codes: 0 success, 1 runtime failure, 2 bad input.
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Runs `orrery signals ...`.
pub fn command(config: Config, args: SignalsArgs) -> ExitCode {
    match args.action {
        Some(SignalsAction::Publish(p)) => {
            let json = p.json;
            let input = SignalInput {
                source: p.source,
                symbol: p.symbol,
                kind: p.kind,
                value: p.value,
                direction: p.direction,
                confidence: p.confidence,
                evidence: p.evidence,
                ttl: p.ttl,
            };
            finish(publish_cmd(&config, &input), json, "publish", |s| {
                let v = &s.signal;
                format!(
                    "published {} {} {} (confidence {}) as {}, expires {}\n",
                    v.symbol, v.kind, v.direction, v.confidence, v.id, s.expires
                )
            })
        }
        None => {
            let l = args.list;
            let query = SignalQuery {
                symbol: l.symbol,
                kind: l.kind,
                since: l.since,
                limit: l.limit,
            };
            finish(list_cmd(&config, &query), l.json, "listing", |rows| {
                table(rows, SystemClock.now_ms())
            })
        }
    }
}

fn finish<T: Serialize>(
    result: Result<T, CliError>,
    json: bool,
    what: &str,
    render: impl Fn(&T) -> String,
) -> ExitCode {
    match result {
        Ok(r) => {
            if json {
                match serde_json::to_string_pretty(&r) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("orrery: cannot print JSON: {e}");
                        return ExitCode::from(EXIT_FAILURE);
                    }
                }
            } else {
                print!("{}", render(&r));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            e.print(json, what);
            ExitCode::from(if e.code == "bad_request" {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            })
        }
    }
}

fn bad_request(message: String) -> CliError {
    CliError {
        code: "bad_request".into(),
        message,
    }
}

/// `orrery signals`: from the running engine's bus, else from the data dir.
pub fn list_cmd(config: &Config, query: &SignalQuery) -> Result<Vec<SignalView>, CliError> {
    let now = SystemClock.now_ms();
    let filter = query.filter(now).map_err(bad_request)?;
    if !config.engine.data_dir.exists() {
        return Err(CliError::from(format!(
            "no data dir at {}; the engine has not run with this config yet",
            config.engine.data_dir.display()
        )));
    }
    match open_store(config)? {
        Some(store) => {
            let tree = SignalStore::open(&store).map_err(|e| CliError::from(e.to_string()))?;
            Ok(views(
                tree.list(&filter, now)
                    .map_err(|e| CliError::from(e.to_string()))?,
            ))
        }
        None => actix::System::new().block_on(call_api::<(), Vec<SignalView>>(
            config,
            reqwest::Method::GET,
            &format!("/api/signals{}", query.query_string()),
            None,
        )),
    }
}

/// `orrery signals publish`: through the running engine's bus, else written to the data
/// dir (validated the same way), where the bus finds it at its next start.
pub fn publish_cmd(config: &Config, input: &SignalInput) -> Result<SignalView, CliError> {
    match open_store(config)? {
        Some(store) => {
            let signal = input
                .validate(SystemClock.now_ms(), config.signals.default_ttl)
                .map_err(|e| bad_request(refusal_message(&e)))?;
            let tree = SignalStore::open(&store).map_err(|e| CliError::from(e.to_string()))?;
            tree.put(&signal)
                .and_then(|()| store.flush())
                .map_err(|e| CliError::from(e.to_string()))?;
            Ok(signal.into())
        }
        None => actix::System::new().block_on(call_api::<SignalInput, SignalView>(
            config,
            reqwest::Method::POST,
            "/api/signals",
            Some(input),
        )),
    }
}

/// The listing as a table, newest first.
pub fn table(rows: &[SignalView], now_ms: Millis) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<24} {:<8} {:<16} {:<8} {:>5} {:>12} {:<16} {:>10}  evidence",
        "time", "symbol", "kind", "dir", "conf", "value", "source", "expires_in"
    );
    for s in rows.iter().map(|v| &v.signal) {
        let left = Duration::from_millis(u64::try_from(s.expires_ms() - now_ms).unwrap_or(0));
        // Whole seconds: the table is read by people.
        let left = humantime::format_duration(Duration::from_secs(left.as_secs())).to_string();
        let evidence: String = s.evidence.chars().take(60).collect();
        let _ = writeln!(
            o,
            "{:<24} {:<8} {:<16} {:<8} {:>5} {:>12} {:<16} {:>10}  {}",
            rfc3339(s.time_ms),
            s.symbol,
            s.kind.to_string(),
            s.direction.to_string(),
            format!("{:.2}", s.confidence),
            s.value.normalize().to_string(),
            s.source,
            left,
            evidence
        );
    }
    let _ = writeln!(o, "{} signal(s)", rows.len());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_parameter_at_fault() {
        let now = 1_767_268_800_000;
        let q = |kind: Option<&str>, since: Option<&str>, limit: Option<usize>| SignalQuery {
            symbol: Some(" btc".into()),
            kind: kind.map(str::to_string),
            since: since.map(str::to_string),
            limit,
        };
        let f = q(Some("sentiment, funding"), Some("1h"), Some(5))
            .filter(now)
            .unwrap();
        assert_eq!(f.kinds, [SignalKind::Sentiment, SignalKind::Funding]);
        assert_eq!(f.symbol.as_deref(), Some("BTC"));
        assert_eq!(f.since_ms, Some(now - 3_600_000));
        assert_eq!(f.limit, 5);
        assert!(q(Some("gossip"), None, None)
            .filter(now)
            .unwrap_err()
            .starts_with("kind:"));
        assert!(q(None, Some("soon"), None)
            .filter(now)
            .unwrap_err()
            .starts_with("since:"));
        assert!(q(None, None, Some(0))
            .filter(now)
            .unwrap_err()
            .starts_with("limit:"));
        assert_eq!(
            q(None, None, None).filter(now).unwrap().limit,
            DEFAULT_LIMIT
        );
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::{Config, ConfigError};

    fn load() -> Result<Config, ConfigError> {
        Config::load_str(
            include_str!("../config/default.toml"),
            "config/default.toml",
            std::iter::empty(),
        )
    }

    #[test]
    fn a_bad_signals_section_or_signal_kind_is_refused_with_its_key() {
        let config = load().unwrap();
        assert_eq!(config.signals.max_kept, 10_000);
        assert!(config.agents.trading[0].signal_kinds.is_empty());

        let mut bad = config.clone();
        bad.signals.max_kept = 0;
        bad.signals.default_ttl = std::time::Duration::from_secs(30 * 24 * 3600);
        let text = bad.validate().unwrap_err().to_string();
        assert!(text.contains("signals.max_kept"), "{text}");
        assert!(text.contains("signals.default_ttl"), "{text}");

        let e = Config::load_str(
            &include_str!("../config/default.toml")
                .replace("signal_kinds = []", "signal_kinds = [\"gossip\"]"),
            "config/default.toml",
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("agents.trading[0].signal_kinds") && e.contains("unknown signal kind"),
            "{e}"
        );
    }
}
