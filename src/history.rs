//! History listings: `orrery trades` (fills from the ledger's `fills` tree) and
//! `orrery orders` (every entry of the order ledger), as a table, JSON or CSV, filtered
//! by venue, symbol, status and time; and the same as `GET /api/trades` and
//! `GET /api/orders` while the engine runs.
//!
//! Owns: the row types, the filters (`--since` takes an RFC 3339 date or time, or a
//! duration back from now such as `24h`), and the three renderings. Never: writes to the
//! store, or asks a venue (fills reach the `fills` tree through reconciliation, so a fill
//! younger than `exchanges.reconcile_interval` may not be listed yet).
//!
//! Realized PnL per fill is the engine's own average-cost figure over every recorded fill
//! of the venue ([`orrery_actors::exchanges::pnl::fill_history`], the same accounting as
//! `orrery status`), so venues that report none (Binance spot, paper) list it too.

use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orrery_actors::clock::Millis;
use std::collections::BTreeMap;

use orrery_actors::exchanges::ledger::{FillRecord, LedgerEntry};
use orrery_actors::exchanges::pnl::{fill_history, FillPnl};
use orrery_actors::exchanges::{Fill, OrderStatus, OrderType, Side, TriggerKind};
use orrery_actors::store::{trees, Store};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::operate::{call_api, error_response, open_store, CliError};
use crate::symbols;

/// Output format of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Filters of `orrery trades` / `GET /api/trades` and `orrery orders` / `GET /api/orders`
/// (query parameters of the same names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Order status (`filled`, `cancelled`, ...), or `open` for every order not final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// RFC 3339 date (`2026-01-31`) or time (`2026-01-31T12:00:00Z`), or a duration back
    /// from now (`24h`, `90m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// The filter, checked.
struct Checked {
    venue: Option<String>,
    symbol: Option<String>,
    status: Option<StatusFilter>,
    since_ms: Option<Millis>,
}

enum StatusFilter {
    Open,
    Is(OrderStatus),
}

const STATUSES: &str =
    "open, intent, submitted, acked, partially_filled, filled, cancelled, rejected, unknown";

impl HistoryFilter {
    fn check(&self, config: &Config, now_ms: Millis) -> Result<Checked, String> {
        if let Some(v) = &self.venue {
            if !config.exchanges.venues.contains_key(v) {
                return Err(format!(
                    "unknown venue `{v}`; configured venues: {}",
                    config
                        .exchanges
                        .venues
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let symbol = self.symbol.as_ref().map(|s| match &self.venue {
            Some(v) => symbols::normalize(config, v, s),
            None => s.trim().to_ascii_uppercase(),
        });
        let status = match self.status.as_deref().map(str::trim) {
            None => None,
            Some("open") => Some(StatusFilter::Open),
            Some(s) => Some(StatusFilter::Is(
                serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
                    .map_err(|_| format!("unknown status `{s}`; one of {STATUSES}"))?,
            )),
        };
        let since_ms = match &self.since {
            None => None,
            Some(s) => Some(parse_since(s, now_ms)?),
        };
        Ok(Checked {
            venue: self.venue.clone(),
            symbol,
            status,
            since_ms,
        })
    }
}

impl Checked {
    fn symbol_ok(&self, s: &str) -> bool {
        self.symbol
            .as_deref()
            .is_none_or(|w| w.eq_ignore_ascii_case(s))
    }
    fn venue_ok(&self, v: &str) -> bool {
        self.venue.as_deref().is_none_or(|w| w == v)
    }
    fn time_ok(&self, t: Millis) -> bool {
        self.since_ms.is_none_or(|s| t >= s)
    }
    fn status_ok(&self, s: OrderStatus) -> bool {
        match &self.status {
            None => true,
            Some(StatusFilter::Open) => !s.is_terminal(),
            Some(StatusFilter::Is(want)) => *want == s,
        }
    }
}

/// `--since`: an RFC 3339 time, a date (midnight UTC), or a duration back from `now_ms`.
pub fn parse_since(s: &str, now_ms: Millis) -> Result<Millis, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX).min(now_ms));
    }
    Err(format!(
        "since `{s}` is not a date (2026-01-31), an RFC 3339 time (2026-01-31T12:00:00Z) or a duration back from now (24h, 90m)"
    ))
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// One fill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeRow {
    pub time: String,
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    pub fee: Decimal,
    /// PnL this fill realized by reducing its position (average cost), before its fee.
    pub realized_pnl: Decimal,
    /// A fee charged in another asset that could not be priced (`"0.00016 BNB"`); `fee`
    /// then leaves it out.
    #[serde(default)]
    pub fee_unpriced: Option<String>,
    pub client_id: Option<String>,
    pub venue_order_id: String,
    pub fill_id: String,
    #[serde(skip)]
    time_ms: Millis,
}

impl TradeRow {
    /// The row of one fill of `venue`, with the PnL the venue's fill history gives it.
    pub fn from_pnl(venue: &str, p: &FillPnl) -> Self {
        let f = &p.fill;
        Self {
            time: rfc3339(f.time_ms),
            venue: venue.to_string(),
            symbol: f.symbol.clone(),
            side: f.side,
            price: f.price.normalize(),
            size: f.size.normalize(),
            fee: f.fee.normalize(),
            realized_pnl: p.realized_pnl_usd.normalize(),
            fee_unpriced: match (&p.fee_usd, &f.fee_asset) {
                (None, Some(a)) => Some(format!("{} {}", a.amount.normalize(), a.asset)),
                _ => None,
            },
            client_id: f.client_id.as_ref().map(|c| c.to_string()),
            venue_order_id: f.venue_order_id.clone(),
            fill_id: f.fill_id.clone(),
            time_ms: f.time_ms,
        }
    }
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    pub created: String,
    pub updated: String,
    pub client_id: String,
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: String,
    pub limit_price: Option<Decimal>,
    pub size: Decimal,
    pub filled_size: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub status: OrderStatus,
    pub reduce_only: bool,
    pub origin: String,
    pub reason: Option<String>,
    /// A trigger order's kind (`stop_loss`, `take_profit`) and trigger price.
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub trigger_price: Option<Decimal>,
}

impl OrderRow {
    pub fn from_entry(e: &LedgerEntry) -> Self {
        Self {
            created: rfc3339(e.created_ms),
            updated: rfc3339(e.updated_ms),
            client_id: e.client_id.to_string(),
            venue: e.venue.clone(),
            symbol: e.request.symbol.clone(),
            side: e.request.side,
            order_type: e.request.order_type.label().to_string(),
            limit_price: e.request.order_type.limit_price().map(|p| p.normalize()),
            size: e.request.size.normalize(),
            filled_size: e.filled_size.normalize(),
            avg_fill_price: e.avg_fill_price.map(|p| p.normalize()),
            status: e.status,
            reduce_only: e.request.reduce_only,
            origin: e.origin.clone(),
            reason: e.reason.clone(),
            trigger: match &e.request.order_type {
                OrderType::Trigger { kind, .. } => Some(
                    match kind {
                        TriggerKind::StopLoss => "stop_loss",
                        TriggerKind::TakeProfit => "take_profit",
                    }
                    .to_string(),
                ),
                _ => None,
            },
            trigger_price: match &e.request.order_type {
                OrderType::Trigger { trigger_price, .. } => Some(trigger_price.normalize()),
                _ => None,
            },
        }
    }
}

/// Fills matching `filter`, oldest first.
pub fn trades(
    store: &Store,
    config: &Config,
    filter: &HistoryFilter,
) -> Result<Vec<TradeRow>, String> {
    let f = filter.check(config, now_ms())?;
    if f.status.is_some() {
        return Err(
            "trades have no status; filter orders by status with `orrery orders --status`".into(),
        );
    }
    let tree = store
        .tree::<FillRecord>(trees::FILLS)
        .map_err(|e| e.to_string())?;
    // Every fill of a venue feeds its position books, so a filtered row still carries the
    // PnL it realized against the fills before it.
    let mut by_venue: BTreeMap<String, Vec<Fill>> = BTreeMap::new();
    for item in tree.iter() {
        let (_, r) = item.map_err(|e| e.to_string())?;
        if f.venue_ok(&r.venue) {
            by_venue.entry(r.venue).or_default().push(r.fill);
        }
    }
    let mut rows = Vec::new();
    for (venue, fills) in &by_venue {
        for p in fill_history(fills) {
            if f.symbol_ok(&p.fill.symbol) && f.time_ok(p.fill.time_ms) {
                rows.push(TradeRow::from_pnl(venue, &p));
            }
        }
    }
    rows.sort_by(|a, b| (a.time_ms, &a.fill_id).cmp(&(b.time_ms, &b.fill_id)));
    Ok(rows)
}

/// Ledger entries matching `filter`, oldest first.
pub fn orders(
    store: &Store,
    config: &Config,
    filter: &HistoryFilter,
) -> Result<Vec<OrderRow>, String> {
    let f = filter.check(config, now_ms())?;
    let tree = store
        .tree::<LedgerEntry>(trees::ORDERS)
        .map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    for item in tree.iter() {
        let (_, e) = item.map_err(|e| e.to_string())?;
        if f.venue_ok(&e.venue)
            && f.symbol_ok(&e.request.symbol)
            && f.time_ok(e.created_ms)
            && f.status_ok(e.status)
        {
            entries.push(e);
        }
    }
    entries.sort_by(|a, b| (a.created_ms, &a.client_id).cmp(&(b.created_ms, &b.client_id)));
    Ok(entries.iter().map(OrderRow::from_entry).collect())
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub async fn trades_route(
    engine: web::Data<EngineHandle>,
    query: web::Query<HistoryFilter>,
) -> HttpResponse {
    match trades(&engine.store, &engine.config, &query) {
        Ok(rows) => HttpResponse::Ok().json(rows),
        Err(e) => error_response(StatusCode::BAD_REQUEST, "bad_request", e),
    }
}

pub async fn orders_route(
    engine: web::Data<EngineHandle>,
    query: web::Query<HistoryFilter>,
) -> HttpResponse {
    match orders(&engine.store, &engine.config, &query) {
        Ok(rows) => HttpResponse::Ok().json(rows),
        Err(e) => error_response(StatusCode::BAD_REQUEST, "bad_request", e),
    }
}

/// Reads rows from the data dir, or from the running engine's API.
fn fetch<T: serde::de::DeserializeOwned>(
    config: &Config,
    filter: &HistoryFilter,
    path: &str,
    offline: impl FnOnce(&Store) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, CliError> {
    if !config.engine.data_dir.exists() {
        return Err(CliError::from(format!(
            "no data dir at {}; the engine has not run with this config yet",
            config.engine.data_dir.display()
        )));
    }
    match open_store(config)? {
        Some(store) => Ok(offline(&store)?),
        None => {
            let query = serde_urlencoded_query(filter);
            actix::System::new().block_on(call_api::<(), Vec<T>>(
                config,
                reqwest::Method::GET,
                &format!("{path}{query}"),
                None,
            ))
        }
    }
}

fn serde_urlencoded_query(filter: &HistoryFilter) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("venue", &filter.venue),
        ("symbol", &filter.symbol),
        ("status", &filter.status),
        ("since", &filter.since),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

/// `orrery trades`.
pub fn trades_cmd(config: &Config, filter: &HistoryFilter) -> Result<Vec<TradeRow>, CliError> {
    fetch(config, filter, "/api/trades", |s| trades(s, config, filter))
}

/// `orrery orders`.
pub fn orders_cmd(config: &Config, filter: &HistoryFilter) -> Result<Vec<OrderRow>, CliError> {
    fetch(config, filter, "/api/orders", |s| orders(s, config, filter))
}

/// Writes rows as CSV with a header line.
pub fn write_csv<T: Serialize>(rows: &[T], out: impl std::io::Write) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(out);
    for r in rows {
        w.serialize(r).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// Prints rows in `format`.
pub fn print<T: Serialize>(
    rows: &[T],
    format: Format,
    table: impl Fn(&[T]) -> String,
) -> Result<(), String> {
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Format::Csv => write_csv(rows, std::io::stdout().lock()),
        Format::Table => {
            print!("{}", table(rows));
            Ok(())
        }
    }
}

fn opt(d: &Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_else(|| "-".into())
}

pub fn trades_table(rows: &[TradeRow]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<24} {:<10} {:<8} {:<4} {:>14} {:>14} {:>12} {:>12}",
        "time", "venue", "symbol", "side", "price", "size", "fee", "realized"
    );
    let (mut fees, mut pnl) = (Decimal::ZERO, Decimal::ZERO);
    for r in rows {
        fees += r.fee;
        pnl += r.realized_pnl;
        let _ = writeln!(
            o,
            "{:<24} {:<10} {:<8} {:<4} {:>14} {:>14} {:>12} {:>12}",
            r.time,
            r.venue,
            r.symbol,
            r.side,
            r.price.to_string(),
            r.size.to_string(),
            r.fee.round_dp(4).to_string(),
            r.realized_pnl.round_dp(4).to_string()
        );
    }
    let _ = writeln!(
        o,
        "{} fill(s), fees {} USD, realized PnL {} USD",
        rows.len(),
        fees.round_dp(4),
        pnl.round_dp(4)
    );
    o
}

pub fn orders_table(rows: &[OrderRow]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<24} {:<32} {:<10} {:<8} {:<4} {:<6} {:>12} {:>12} {:>12} {:>12} {:<16} origin",
        "created",
        "client id",
        "venue",
        "symbol",
        "side",
        "type",
        "limit",
        "size",
        "filled",
        "avg",
        "status",
    );
    for r in rows {
        let _ = writeln!(
            o,
            "{:<24} {:<32} {:<10} {:<8} {:<4} {:<6} {:>12} {:>12} {:>12} {:>12} {:<16} {}{}{}",
            r.created,
            r.client_id,
            r.venue,
            r.symbol,
            r.side,
            r.order_type,
            opt(&r.limit_price),
            r.size.to_string(),
            r.filled_size.to_string(),
            opt(&r.avg_fill_price),
            r.status.to_string(),
            r.origin,
            match (&r.trigger, &r.trigger_price) {
                (Some(kind), Some(price)) => format!(" [{kind} at {price}]"),
                _ => String::new(),
            },
            r.reason
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "{} order(s)", rows.len());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_durations() {
        let now = 1_767_268_800_000; // 2026-01-01T12:00:00Z
        assert_eq!(
            parse_since("2026-01-01", now).unwrap(),
            now - 12 * 3_600_000
        );
        assert_eq!(parse_since("2026-01-01T12:00:00Z", now).unwrap(), now);
        assert_eq!(parse_since("2026-01-01T13:00:00+01:00", now).unwrap(), now);
        assert_eq!(parse_since("24h", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_since("90m", now).unwrap(), now - 5_400_000);
        let err = parse_since("yesterday", now).unwrap_err();
        assert!(err.contains("24h"), "{err}");
        assert_eq!(rfc3339(now), "2026-01-01T12:00:00.000Z");
    }
}
