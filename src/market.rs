//! Perpetual-futures market data for the operator: `orrery market funding --venue V
//! --symbol S [--history N] [--json]`, `orrery market open-interest --venue V --symbol S
//! [--period 1h] [--limit N] [--json]`, and the control API's `GET /api/market/funding`
//! and `GET /api/market/open-interest` (same parameters, same JSON).
//!
//! Owns: the two reports, their checks (a configured venue of a kind with perpetuals,
//! `history` 0..=1000, `limit` 1..=500, a Binance period), [`open_reader`] — the one
//! factory from a venue's config to its [`DerivativesData`] (Binance USDⓈ-M and
//! Hyperliquid), which the agents built in `tree.rs` use too — the public-reads venue
//! objects the routes keep (one per venue, so one HTTP client each) and the tables. The
//! CLI reads the venue directly, engine running or not: these are public endpoints,
//! needing no key and no data dir. Never: places orders or reads the account, or talks
//! to a venue except through its [`DerivativesData`] (the venue's own request machinery,
//! with its deadlines, weights and 429 handling). Hyperliquid publishes no open-interest
//! history: `--period` there is the venue's `Unsupported` error, a usage error (exit 2,
//! HTTP 400).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use clap::{Args, Subcommand};
use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::binance_futures::open_public_at;
use orrery_actors::exchanges::derivatives::{
    DerivativesData, FundingInfo, FundingRate, OiPeriod, OpenInterest, OpenInterestPoint,
};
use orrery_actors::exchanges::gateway::GatewayError;
use orrery_actors::exchanges::hyperliquid::HyperliquidVenue;
use orrery_actors::exchanges::paper::PaperDerivatives;
use orrery_actors::exchanges::VenueError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{Config, VenueConfig};
use crate::engine::EngineHandle;
use crate::http::{gateway_error_status, ApiError};

/// Most settled funding rates one report lists (Binance's `fundingRate` limit).
pub const MAX_HISTORY: usize = 1000;
/// Most open-interest points one report lists (Binance's `openInterestHist` limit).
pub const MAX_OI_POINTS: usize = 500;

#[derive(Debug, Args)]
pub struct MarketArgs {
    #[command(subcommand)]
    pub command: MarketCommand,
}

#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// Mark and index price, the current funding rate and when it settles; with
    /// --history N the last N settled rates too.
    Funding {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        venue: String,
        #[arg(long)]
        symbol: String,
        /// Also list the last N settled funding rates (up to 1000).
        #[arg(long, default_value_t = 0)]
        history: usize,
        #[arg(long)]
        json: bool,
    },
    /// Open interest now; with --period its history at that period.
    OpenInterest {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        venue: String,
        #[arg(long)]
        symbol: String,
        /// 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h or 1d.
        #[arg(long)]
        period: Option<String>,
        /// Points of history at --period (1 to 500).
        #[arg(long, default_value_t = 30)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Recent forced liquidations on the venue (everyone's, from the running engine's
    /// `!forceOrder@arr` stream): sums per symbol and side, then the newest first.
    Liquidations {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        venue: String,
        #[arg(long)]
        symbol: Option<String>,
        /// Window: a duration back from now (15m, 1h), a date or an RFC 3339 time.
        #[arg(long, default_value = crate::liquidations::DEFAULT_SINCE)]
        since: String,
        /// Most liquidations listed, newest first (1 to 1000).
        #[arg(long, default_value_t = crate::liquidations::DEFAULT_LIMIT)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

impl MarketArgs {
    pub fn config(&self) -> Option<std::path::PathBuf> {
        match &self.command {
            MarketCommand::Funding { config, .. }
            | MarketCommand::OpenInterest { config, .. }
            | MarketCommand::Liquidations { config, .. } => config.clone(),
        }
    }
}

/// `GET /api/market/funding` and `orrery market funding --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingReport {
    pub venue: String,
    pub symbol: String,
    pub current: FundingInfo,
    /// Oldest first; empty unless asked for.
    pub history: Vec<FundingRate>,
}

/// `GET /api/market/open-interest` and `orrery market open-interest --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterestReport {
    pub venue: String,
    pub symbol: String,
    pub current: OpenInterest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<OiPeriod>,
    /// Oldest first; empty without a period.
    pub history: Vec<OpenInterestPoint>,
}

/// Why a market-data report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The gateway's own unknown-venue error, as every operator command reports it.
    #[error(transparent)]
    UnknownVenue(GatewayError),
    #[error("venue `{venue}` is of kind `{kind}`, which has no funding or open interest; use a `binance_futures` or `hyperliquid` venue, or a paper venue whose symbols set `derivatives_csv`")]
    NoDerivatives { venue: String, kind: &'static str },
    #[error("{0}")]
    BadRequest(String),
    #[error("cannot open venue `{venue}`: {reason}")]
    Open { venue: String, reason: String },
    #[error(transparent)]
    Venue(#[from] VenueError),
}

impl MarketError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            MarketError::UnknownVenue(e) => gateway_error_status(e),
            MarketError::NoDerivatives { .. } | MarketError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            MarketError::Open { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "venue_open"),
            // One mapping of venue errors to statuses: the gateway's.
            MarketError::Venue(e) => gateway_error_status(&GatewayError::Venue(e.clone())),
        }
    }
}

/// Venue kinds [`open_reader`] reads funding and open interest from, for messages.
pub(crate) const FUNDING_KINDS: &str =
    "binance_futures, hyperliquid, or paper with a derivatives_csv";

/// Whether [`open_reader`] opens a venue of this kind (the config check of the funding
/// agent asks this, so it follows the factory).
pub(crate) fn offers_funding(v: &VenueConfig) -> bool {
    match v {
        VenueConfig::BinanceFutures(_) | VenueConfig::Hyperliquid(_) => true,
        VenueConfig::Paper(p) => !p.derivatives_files().is_empty(),
        _ => false,
    }
}

/// The public-reads venue of `venue`: funding and open interest of a `binance_futures` or
/// `hyperliquid` venue, each with its own HTTP client, limits and deadlines (public
/// endpoints: no key needed; a Hyperliquid key in the environment is never used here), or
/// of a paper venue replaying its symbols' `derivatives_csv`.
pub(crate) fn open_reader(
    config: &Config,
    venue: &str,
) -> Result<Arc<dyn DerivativesData>, MarketError> {
    open_reader_in(config, venue, None)
}

/// As [`open_reader`]; inside the engine (`accounts`), the reader draws from the
/// account's own rate limits and honours its pause gate, as the account's connectors do
/// (pools that name a `shared` scope draw from the cluster's budget): see
/// [`crate::accounts`]. `None` (the CLI, a process of its own): limits of its own.
pub(crate) fn open_reader_in(
    config: &Config,
    venue: &str,
    accounts: Option<&crate::accounts::AccountBook>,
) -> Result<Arc<dyn DerivativesData>, MarketError> {
    let Some(v) = config.exchanges.venues.get(venue) else {
        return Err(MarketError::UnknownVenue(crate::operate::unknown_venue(
            config, venue,
        )));
    };
    match v {
        VenueConfig::BinanceFutures(f) => {
            let open_err = |reason: String| MarketError::Open {
                venue: venue.to_string(),
                reason,
            };
            let endpoint = accounts
                .map(|book| {
                    let url = f.rest_config().endpoints().into_iter().next();
                    book.reader(
                        venue,
                        url.unwrap_or_else(|| f.base_url.clone()),
                        &f.resilience,
                    )
                })
                .transpose()
                .map_err(open_err)?;
            let reader = open_public_at(venue, f, system_clock(), endpoint.as_ref())
                .map_err(|e| open_err(e.to_string()))?;
            Ok(reader as Arc<dyn DerivativesData>)
        }
        VenueConfig::Paper(p) => match PaperDerivatives::from_config(venue, p, system_clock()) {
            Ok(Some(reader)) => Ok(Arc::new(reader) as Arc<dyn DerivativesData>),
            Ok(None) => Err(MarketError::NoDerivatives {
                venue: venue.to_string(),
                kind: "paper without derivatives_csv",
            }),
            Err(e) => Err(MarketError::Open {
                venue: venue.to_string(),
                reason: e.to_string(),
            }),
        },
        VenueConfig::Hyperliquid(h) => {
            // Reads only: the key is not looked up, so none is loaded into this object.
            let no_key = |_: &str| None;
            let open_err = |reason: String| MarketError::Open {
                venue: venue.to_string(),
                reason,
            };
            let endpoint = accounts
                .map(|book| book.reader(venue, h.api_url(), &h.resilience))
                .transpose()
                .map_err(open_err)?;
            let reader =
                HyperliquidVenue::open_at(venue, h, &no_key, system_clock(), endpoint.as_ref())
                    .map_err(|e| open_err(e.to_string()))?;
            Ok(Arc::new(reader) as Arc<dyn DerivativesData>)
        }
        other => Err(MarketError::NoDerivatives {
            venue: venue.to_string(),
            kind: other.kind(),
        }),
    }
}

fn check_history(history: usize) -> Result<(), MarketError> {
    if history > MAX_HISTORY {
        return Err(MarketError::BadRequest(format!(
            "history {history} is more than {MAX_HISTORY} rates; ask for 0 to {MAX_HISTORY}"
        )));
    }
    Ok(())
}

fn check_oi(period: Option<&str>, limit: usize) -> Result<Option<OiPeriod>, MarketError> {
    if !(1..=MAX_OI_POINTS).contains(&limit) {
        return Err(MarketError::BadRequest(format!(
            "limit {limit} is outside 1..={MAX_OI_POINTS}"
        )));
    }
    period
        .map(|p| p.parse::<OiPeriod>())
        .transpose()
        .map_err(|e| MarketError::BadRequest(e.to_string()))
}

async fn funding_report(
    reader: &dyn DerivativesData,
    venue: &str,
    symbol: &str,
    history: usize,
) -> Result<FundingReport, MarketError> {
    let current = reader.funding(symbol).await?;
    let history = if history > 0 {
        reader.funding_history(symbol, history).await?
    } else {
        Vec::new()
    };
    Ok(FundingReport {
        venue: venue.to_string(),
        symbol: symbol.to_string(),
        current,
        history,
    })
}

async fn open_interest_report(
    reader: &dyn DerivativesData,
    venue: &str,
    symbol: &str,
    period: Option<OiPeriod>,
    limit: usize,
) -> Result<OpenInterestReport, MarketError> {
    let current = reader.open_interest(symbol).await?;
    let history = match period {
        Some(p) => reader.open_interest_history(symbol, p, limit).await?,
        None => Vec::new(),
    };
    Ok(OpenInterestReport {
        venue: venue.to_string(),
        symbol: symbol.to_string(),
        current,
        period,
        history,
    })
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A rate as a percentage with at least 4 decimals and none lost (0.0001 → 0.0100%,
/// Hyperliquid's hourly 0.0000125 → 0.00125%).
fn pct(rate: rust_decimal::Decimal) -> String {
    let p = (rate * rust_decimal::Decimal::ONE_HUNDRED).normalize();
    if p.scale() < 4 {
        format!("{p:.4}%")
    } else {
        format!("{p}%")
    }
}

fn print_funding(r: &FundingReport) {
    let c = &r.current;
    println!(
        "{} {}: mark {} index {} funding {} per {}h ({}%/year; next settles {})",
        r.venue,
        r.symbol,
        c.mark_price,
        c.index_price,
        pct(c.funding_rate),
        c.funding_interval_hours,
        c.annualized_pct().round_dp(2),
        time(c.next_funding_time_ms)
    );
    for h in &r.history {
        println!("  {}  {}", time(h.time_ms), pct(h.rate));
    }
}

fn print_open_interest(r: &OpenInterestReport) {
    println!(
        "{} {}: open interest {} {} at {}",
        r.venue,
        r.symbol,
        r.current.open_interest,
        r.symbol,
        time(r.current.time_ms)
    );
    for h in &r.history {
        println!(
            "  {}  {} {}  ({} USD)",
            time(h.time_ms),
            h.open_interest,
            r.symbol,
            h.open_interest_value.round_dp(2)
        );
    }
}

/// Runs `orrery market ...`: 0 on success, 2 for a bad venue or parameter, 1 when the
/// venue could not answer.
pub fn run(config: Config, args: MarketArgs) -> ExitCode {
    let outcome = actix::System::new().block_on(async {
        match args.command {
            MarketCommand::Funding {
                venue,
                symbol,
                history,
                json,
                ..
            } => {
                check_history(history)?;
                let reader = open_reader(&config, &venue)?;
                let symbol = crate::symbols::normalize(&config, &venue, &symbol);
                let r = funding_report(reader.as_ref(), &venue, &symbol, history).await?;
                if json {
                    println!("{}", crate::json::to_pretty(&r));
                } else {
                    print_funding(&r);
                }
                Ok::<_, MarketError>(ExitCode::SUCCESS)
            }
            MarketCommand::OpenInterest {
                venue,
                symbol,
                period,
                limit,
                json,
                ..
            } => {
                let period = check_oi(period.as_deref(), limit)?;
                let reader = open_reader(&config, &venue)?;
                let symbol = crate::symbols::normalize(&config, &venue, &symbol);
                let r =
                    open_interest_report(reader.as_ref(), &venue, &symbol, period, limit).await?;
                if json {
                    println!("{}", crate::json::to_pretty(&r));
                } else {
                    print_open_interest(&r);
                }
                Ok(ExitCode::SUCCESS)
            }
            MarketCommand::Liquidations {
                venue,
                symbol,
                since,
                limit,
                json,
                ..
            } => {
                let q = crate::liquidations::LiquidationsQuery {
                    venue,
                    symbol,
                    since: Some(since),
                    limit: Some(limit),
                };
                Ok(crate::liquidations::run(&config, &q, json).await)
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orrery: {e}");
            let usage = matches!(
                e,
                MarketError::UnknownVenue(_)
                    | MarketError::NoDerivatives { .. }
                    | MarketError::BadRequest(_)
                    | MarketError::Venue(VenueError::Unsupported { .. })
            );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Query of `GET /api/market/funding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundingQuery {
    pub venue: String,
    pub symbol: String,
    #[serde(default)]
    pub history: usize,
}

/// Query of `GET /api/market/open-interest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenInterestQuery {
    pub venue: String,
    pub symbol: String,
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    30
}

/// The routes' venue objects, opened on first use: one HTTP client per venue, reused.
#[derive(Default)]
pub struct MarketReaders {
    open: Mutex<HashMap<String, Arc<dyn DerivativesData>>>,
}

impl MarketReaders {
    /// The reader of `venue` and `symbol` as the venue names it.
    fn get(
        &self,
        engine: &EngineHandle,
        venue: &str,
        symbol: &str,
    ) -> Result<(Arc<dyn DerivativesData>, String), MarketError> {
        let config = &engine.config;
        let symbol = crate::symbols::normalize(config, venue, symbol);
        if let Some(found) = self.open.lock().get(venue) {
            return Ok((found.clone(), symbol));
        }
        // It draws from the account's limits and calls through its readers' breaker.
        let opened = open_reader_in(config, venue, Some(&engine.tree_deps.accounts))?;
        self.open.lock().insert(venue.to_string(), opened.clone());
        Ok((opened, symbol))
    }
}

fn error_response(e: &MarketError) -> HttpResponse {
    let (status, code) = e.status();
    ApiError::new(code, e.to_string()).response(status)
}

async fn funding_route(
    engine: web::Data<EngineHandle>,
    readers: web::Data<MarketReaders>,
    q: web::Query<FundingQuery>,
) -> HttpResponse {
    let q = q.into_inner();
    let result = async {
        check_history(q.history)?;
        let (reader, symbol) = readers.get(&engine, &q.venue, &q.symbol)?;
        funding_report(reader.as_ref(), &q.venue, &symbol, q.history).await
    }
    .await;
    match result {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => error_response(&e),
    }
}

async fn open_interest_route(
    engine: web::Data<EngineHandle>,
    readers: web::Data<MarketReaders>,
    q: web::Query<OpenInterestQuery>,
) -> HttpResponse {
    let q = q.into_inner();
    let result = async {
        let period = check_oi(q.period.as_deref(), q.limit)?;
        let (reader, symbol) = readers.get(&engine, &q.venue, &q.symbol)?;
        open_interest_report(reader.as_ref(), &q.venue, &symbol, period, q.limit).await
    }
    .await;
    match result {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => error_response(&e),
    }
}

/// `GET /api/market/funding` and `GET /api/market/open-interest` (read scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(MarketReaders::default()))
        .route("/api/market/funding", web::get().to(funding_route))
        .route(
            "/api/market/open-interest",
            web::get().to(open_interest_route),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_with_what_is_allowed() {
        assert!(check_history(1000).is_ok());
        assert!(check_history(1001)
            .unwrap_err()
            .to_string()
            .contains("0 to 1000"));
        assert_eq!(check_oi(Some("4h"), 10).unwrap(), Some(OiPeriod::H4));
        assert_eq!(check_oi(None, 10).unwrap(), None);
        assert!(check_oi(Some("3h"), 10)
            .unwrap_err()
            .to_string()
            .contains("1h"));
        assert!(check_oi(None, 0).is_err());
        assert!(check_oi(None, 501).is_err());
        assert_eq!(pct(rust_decimal_macros::dec!(0.0001)), "0.0100%");
        assert_eq!(pct(rust_decimal_macros::dec!(0.0000125)), "0.00125%");
        assert_eq!(pct(rust_decimal_macros::dec!(-0.0003)), "-0.0300%");
    }
}
