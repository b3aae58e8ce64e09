//! The venue's recent forced liquidations for the operator: `orrery market liquidations
//! --venue V [--symbol S] [--since 15m] [--limit N] [--json]` and the control API's
//! `GET /api/market/liquidations?venue=V[&symbol=S][&since=15m][&limit=N]` (same JSON).
//!
//! Owns: the report (the newest liquidations first, at most `limit`, and what they add up
//! to per symbol and side over the window), its checks (a configured `binance_futures`
//! venue with `streams`, a `since` the history commands accept, `limit` 1..=1000) and the
//! table. Liquidations exist only in the running engine's memory (the venue's
//! `!forceOrder@arr` stream, kept in a bounded ring), so the CLI asks the running engine
//! and says so when none runs. Never: reads the venue over REST (Binance has no public
//! REST list of everyone's liquidations), or stores them.

use std::fmt::Write;
use std::process::ExitCode;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orrery_actors::clock::{Clock, Millis, SystemClock};
use orrery_actors::exchanges::stream::derivatives::{aggregate, Liquidation, LiquidationAggregate};
use orrery_actors::exchanges::types::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::{Config, VenueConfig};
use crate::engine::EngineHandle;
use crate::history::{parse_since, rfc3339};
use crate::http::ApiError;
use crate::operate::{call_api, open_store, CliError};

/// Default window.
pub const DEFAULT_SINCE: &str = "15m";
/// Default and largest number of liquidations listed.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// One liquidation as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationRow {
    /// RFC 3339, the venue's trade time.
    pub time: String,
    pub symbol: String,
    /// The liquidation order's side: `sell` closed a long, `buy` closed a short.
    pub side: Side,
    pub price: Decimal,
    pub avg_price: Decimal,
    pub qty: Decimal,
    pub notional_usd: Decimal,
    pub status: String,
}

/// `GET /api/market/liquidations` and `orrery market liquidations --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationsReport {
    pub venue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Start of the window (RFC 3339).
    pub since: String,
    /// Whether the venue's market stream is connected now (a disconnected stream may have
    /// missed liquidations).
    pub stream_connected: bool,
    /// Per symbol and side over the whole window.
    pub aggregates: Vec<LiquidationAggregate>,
    /// Liquidations in the window, newest first, at most `limit`.
    pub liquidations: Vec<LiquidationRow>,
    /// How many the window holds (may exceed the rows listed).
    pub total: usize,
}

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LiquidationsError {
    #[error("unknown venue `{0}`; the configured venues are listed by `orrery status`")]
    UnknownVenue(String),
    #[error("venue `{venue}` streams no liquidations: only a `binance_futures` venue with `streams = true` does")]
    NoStream { venue: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("the market stream of `{0}` has not started yet; try again in a few seconds")]
    NotStarted(String),
}

impl LiquidationsError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownVenue(_) => (StatusCode::NOT_FOUND, "unknown_venue"),
            Self::NoStream { .. } => (StatusCode::BAD_REQUEST, "no_liquidation_stream"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotStarted(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        }
    }
}

/// Checks the venue and the parameters; answers the window's start.
fn check(
    config: &Config,
    venue: &str,
    since: &str,
    limit: usize,
    now_ms: Millis,
) -> Result<Millis, LiquidationsError> {
    match config.exchanges.venues.get(venue) {
        None => return Err(LiquidationsError::UnknownVenue(venue.to_string())),
        Some(VenueConfig::BinanceFutures(f)) if f.streams => {}
        Some(_) => {
            return Err(LiquidationsError::NoStream {
                venue: venue.to_string(),
            })
        }
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(LiquidationsError::BadRequest(format!(
            "limit {limit} is out of range; use 1 to {MAX_LIMIT}"
        )));
    }
    parse_since(since, now_ms).map_err(LiquidationsError::BadRequest)
}

/// The report from the running engine's feed.
pub fn report(
    engine: &EngineHandle,
    q: &LiquidationsQuery,
    now_ms: Millis,
) -> Result<LiquidationsReport, LiquidationsError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let since_ms = check(
        &engine.config,
        &q.venue,
        q.since.as_deref().unwrap_or(DEFAULT_SINCE),
        limit,
        now_ms,
    )?;
    let symbol = q
        .symbol
        .as_deref()
        .map(|s| crate::symbols::normalize(&engine.config, &q.venue, s));
    let feed = engine
        .streams
        .feed(&q.venue)
        .ok_or_else(|| LiquidationsError::NotStarted(q.venue.clone()))?;
    let kept = feed
        .derivatives()
        .liquidations
        .since(symbol.as_deref(), since_ms);
    Ok(build(
        &q.venue,
        symbol,
        since_ms,
        feed.is_connected(),
        &kept,
        limit,
    ))
}

fn build(
    venue: &str,
    symbol: Option<String>,
    since_ms: Millis,
    stream_connected: bool,
    kept: &[Liquidation],
    limit: usize,
) -> LiquidationsReport {
    LiquidationsReport {
        venue: venue.to_string(),
        symbol,
        since: rfc3339(since_ms),
        stream_connected,
        aggregates: aggregate(kept),
        liquidations: kept
            .iter()
            .rev()
            .take(limit)
            .map(|l| LiquidationRow {
                time: rfc3339(l.time_ms),
                symbol: l.symbol.clone(),
                side: l.side,
                price: l.price.normalize(),
                avg_price: l.avg_price.normalize(),
                qty: l.qty.normalize(),
                notional_usd: l.notional_usd().normalize(),
                status: l.status.clone(),
            })
            .collect(),
        total: kept.len(),
    }
}

/// Query of `GET /api/market/liquidations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiquidationsQuery {
    pub venue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl LiquidationsQuery {
    fn query_string(&self) -> String {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        pairs.append_pair("venue", &self.venue);
        if let Some(s) = &self.symbol {
            pairs.append_pair("symbol", s);
        }
        if let Some(s) = &self.since {
            pairs.append_pair("since", s);
        }
        if let Some(l) = self.limit {
            pairs.append_pair("limit", &l.to_string());
        }
        pairs.finish()
    }
}

async fn liquidations_route(
    engine: web::Data<EngineHandle>,
    q: web::Query<LiquidationsQuery>,
) -> HttpResponse {
    match report(&engine, &q, SystemClock.now_ms()) {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => {
            let (status, code) = e.status();
            ApiError::new(code, e.to_string()).response(status)
        }
    }
}

/// `GET /api/market/liquidations` (read scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/market/liquidations",
        web::get().to(liquidations_route),
    );
}

/// The report as a table: the window's sums per symbol and side, then the newest rows.
pub fn table(r: &LiquidationsReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "liquidations on {}{} since {}{}: {} in the window",
        r.venue,
        r.symbol
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default(),
        r.since,
        if r.stream_connected {
            ""
        } else {
            " (stream disconnected: some may be missing)"
        },
        r.total
    );
    if !r.aggregates.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<10} {:<5} {:>6} {:>16} {:>14} {:>14}",
            "symbol", "side", "count", "notional_usd", "largest_usd", "qty"
        );
        for a in &r.aggregates {
            let _ = writeln!(
                o,
                "{:<10} {:<5} {:>6} {:>16} {:>14} {:>14}",
                a.symbol,
                a.side.as_str(),
                a.count,
                a.notional_usd.round_dp(2),
                a.largest_usd.round_dp(2),
                a.qty
            );
        }
    }
    if !r.liquidations.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<26} {:<10} {:<5} {:>14} {:>14} {:>14}  status",
            "time", "symbol", "side", "avg_price", "qty", "notional_usd"
        );
        for l in &r.liquidations {
            let _ = writeln!(
                o,
                "{:<26} {:<10} {:<5} {:>14} {:>14} {:>14}  {}",
                l.time,
                l.symbol,
                l.side.as_str(),
                l.avg_price,
                l.qty,
                l.notional_usd.round_dp(2),
                l.status
            );
        }
    }
    o
}

/// Runs `orrery market liquidations`: 0 on success, 2 for a bad venue or parameter, 1
/// when no engine runs or it could not answer.
pub async fn run(config: &Config, q: &LiquidationsQuery, json: bool) -> ExitCode {
    let fail = |e: CliError, code: u8| {
        e.print(json, "market liquidations");
        ExitCode::from(code)
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let since = q.since.as_deref().unwrap_or(DEFAULT_SINCE);
    if let Err(e) = check(config, &q.venue, since, limit, SystemClock.now_ms()) {
        return fail(CliError::new(e.status().1, e.to_string()), 2);
    }
    let not_running = || {
        CliError::new(
            "not_running",
            format!(
                "no engine runs with data dir {}; liquidations are kept by the running engine's stream (start it with `orrery run`)",
                config.engine.data_dir.display()
            ),
        )
    };
    // A data dir that does not exist is not created by asking.
    if !config.engine.data_dir.exists() {
        return fail(not_running(), 1);
    }
    match open_store(config) {
        Ok(Some(_)) => return fail(not_running(), 1),
        Ok(None) => {}
        Err(e) => return fail(CliError::from(e), 1),
    }
    let answer = call_api::<(), LiquidationsReport>(
        config,
        reqwest::Method::GET,
        &format!("/api/market/liquidations?{}", q.query_string()),
        None,
    )
    .await;
    match answer {
        Ok(r) => {
            if json {
                println!("{}", crate::json::to_pretty(&r));
            } else {
                print!("{}", table(&r));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let usage = matches!(
                e.code.as_str(),
                "unknown_venue" | "bad_request" | "no_liquidation_stream" | "bad_query"
            );
            fail(e, if usage { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn the_report_lists_newest_first_and_sums_the_whole_window() {
        let l = |t, side, qty: Decimal| Liquidation {
            symbol: "BTC".into(),
            side,
            price: dec!(100),
            qty,
            avg_price: dec!(101),
            status: "FILLED".into(),
            time_ms: t,
        };
        let kept = [
            l(1_000, Side::Sell, dec!(1)),
            l(2_000, Side::Sell, dec!(2)),
            l(3_000, Side::Buy, dec!(3)),
        ];
        let r = build("bnf", None, 0, true, &kept, 2);
        assert_eq!(r.total, 3);
        assert_eq!(r.liquidations.len(), 2);
        assert_eq!(r.liquidations[0].side, Side::Buy, "newest first");
        assert_eq!(r.liquidations[0].notional_usd, dec!(303));
        assert_eq!(r.aggregates.len(), 2);
        assert_eq!(
            (
                r.aggregates[1].side,
                r.aggregates[1].count,
                r.aggregates[1].notional_usd
            ),
            (Side::Sell, 2, dec!(303))
        );
        let t = table(&r);
        assert!(t.contains("3 in the window"), "{t}");
        assert!(t.contains("BTC        sell       2"), "{t}");
    }
}
