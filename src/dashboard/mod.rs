//! The web dashboard, served by the engine at `/` on the control-API address: one page
//! (plain HTML, CSS and JS embedded in the binary, no CDN, no build step) with tabs for the
//! overview, positions and orders, agents, the decision journal, signals, models, venues and
//! the supervision tree, fed by the control API it calls with the operator's token and by
//! the live event stream ([`live`], `GET /api/events`).
//!
//! Owns: the embedded assets and their routes (`/`, `/dashboard/app.js`,
//! `/dashboard/app.css`, open without a token because they hold no data: the page asks for
//! a token and shows nothing until the API accepts it), the read routes the page needs that
//! the API did not have — `GET /api/dashboard/session` (the scope of the presented token),
//! `GET /api/dashboard/orders` and `GET /api/dashboard/decisions` (one page, newest first,
//! with a cursor: the page never loads the whole ledger or journal), `GET
//! /api/dashboard/equity` (the sampled equity history, [`equity`]) — and the `[dashboard]`
//! config. Never: places, cancels or changes anything itself (its buttons call the existing
//! trading routes, which check the trading scope), keeps a token (the page holds it in the
//! tab's session storage; the server never logs or stores it), or loads anything from
//! outside the binary.

pub mod equity;
pub mod live;

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use orrery_actors::agents::journal::{DecisionHeader, DecisionJournal, JournalFilter, INDEX_TREE};
use orrery_actors::exchanges::ledger::LedgerEntry;
use orrery_actors::store::{trees, Store};
use orrery_actors::validate::{join, Issues};
use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::engine::EngineHandle;
use crate::history::OrderRow;
use crate::operate::error_response;

pub use equity::{EquityPoint, EquitySampler, StopEquitySampler};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Routes that serve the page itself: open without a token (they carry no data).
pub const ASSET_ROUTES: [&str; 3] = ["/", "/dashboard/app.js", "/dashboard/app.css"];

/// Bytes the embedded assets add to the binary.
pub const ASSET_BYTES: usize = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len();

// The issue's bound on what the page adds to the binary, checked when it is built.
const _: () = assert!(
    ASSET_BYTES <= 2 * 1024 * 1024,
    "the dashboard's assets exceed 2 MB"
);

/// Largest page of orders or decisions one call returns.
pub const MAX_PAGE: usize = 500;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// `[dashboard]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// How often the equity (account value of every venue, realized and unrealized PnL,
    /// exposure) is sampled into sled for the overview's chart.
    #[serde(with = "humantime_serde")]
    pub equity_sample_interval: Duration,
    /// Samples kept; the oldest go first (10080 = a week of one-minute samples).
    pub equity_max_samples: usize,
    /// How often the event stream sends a heartbeat while nothing happens, so the page
    /// (and any proxy between) can tell a quiet engine from a dead connection.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            equity_sample_interval: Duration::from_secs(60),
            equity_max_samples: 10_080,
            heartbeat_interval: Duration::from_secs(15),
        }
    }
}

impl DashboardConfig {
    /// Checks every key, naming the bad ones.
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            self.equity_sample_interval >= Duration::from_millis(100)
                && self.equity_sample_interval <= Duration::from_secs(86_400),
            join(path, "equity_sample_interval"),
            humantime::format_duration(self.equity_sample_interval).to_string(),
            "a duration from 100ms to 1d",
        );
        issues.check(
            (10..=10_000_000).contains(&self.equity_max_samples),
            join(path, "equity_max_samples"),
            self.equity_max_samples,
            "an integer from 10 to 10000000",
        );
        issues.check(
            self.heartbeat_interval >= Duration::from_millis(100)
                && self.heartbeat_interval <= Duration::from_secs(300),
            join(path, "heartbeat_interval"),
            humantime::format_duration(self.heartbeat_interval).to_string(),
            "a duration from 100ms to 5m",
        );
    }
}

/// Registers the page, its assets and its read routes on the control API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/dashboard/app.js", web::get().to(app_js))
        .route("/dashboard/app.css", web::get().to(app_css))
        .route("/api/dashboard/session", web::get().to(session))
        .route("/api/dashboard/orders", web::get().to(orders_route))
        .route("/api/dashboard/decisions", web::get().to(decisions_route))
        .route("/api/dashboard/equity", web::get().to(equity::route))
        .route("/api/events", web::get().to(live::route));
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // The page must never pull anything from elsewhere, even if an asset were altered.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
        ))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// Body of `GET /api/dashboard/session`: what the presented token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `open` (no tokens configured: loopback), `read` (read-only token) or `trade`.
    pub access: String,
    /// Whether the trading buttons (cancel, close, pause, resume, run now) work.
    pub can_trade: bool,
}

/// The guard has already checked the read scope; this tells the page whether the same
/// token also carries the trading scope, so it can disable the buttons that need it.
async fn session(engine: web::Data<EngineHandle>, req: HttpRequest) -> HttpResponse {
    let api = &engine.config.api;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (access, can_trade) = if api.tokens.is_empty() {
        ("open", true)
    } else if api.tokens.authorize(api, presented, Scope::Trade).is_ok() {
        ("trade", true)
    } else {
        ("read", false)
    };
    HttpResponse::Ok().json(Session {
        access: access.into(),
        can_trade,
    })
}

/// Query of the paginated listings: `limit` rows (default 50, at most 500) strictly older
/// than the `before` cursor (the `next` of the previous page).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub before: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> Result<usize, String> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(format!("limit {n} is out of range; give 1 to {MAX_PAGE}")),
        }
    }
}

/// One page of a listing, newest first; `next` is the cursor of the following page
/// (`None`: this was the last).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Reads one page from `tree` (keys sort by time), newest first, each record through `row`.
fn page<T: orrery_actors::store::Record, R>(
    store: &Store,
    tree: &str,
    query: &PageQuery,
    row: impl Fn(T) -> R,
) -> Result<Page<R>, PageError> {
    let limit = query.limit().map_err(PageError::BadQuery)?;
    let tree = store.tree::<T>(tree).map_err(PageError::Store)?;
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    let mut more = false;
    for item in tree.iter_rev_before(query.before.as_deref()) {
        let (key, value) = item.map_err(PageError::Store)?;
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(row(value));
        last = Some(key);
    }
    Ok(Page {
        items,
        next: if more { last } else { None },
    })
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadQuery(String),
    #[error("cannot read the data dir: {0}")]
    Store(orrery_actors::store::StoreError),
}

impl PageError {
    fn response(&self) -> HttpResponse {
        match self {
            PageError::BadQuery(m) => error_response(StatusCode::BAD_REQUEST, "bad_query", m),
            PageError::Store(_) => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed",
                self.to_string(),
            ),
        }
    }
}

/// Orders of the ledger, one page, newest first (the ledger's keys are time-ordered ids).
pub fn orders_page(store: &Store, query: &PageQuery) -> Result<Page<OrderRow>, PageError> {
    page::<LedgerEntry, _>(store, trees::ORDERS, query, |e| OrderRow::from_entry(&e))
}

/// One decision in the journal's listing: its header and its votes as one line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionRow {
    #[serde(flatten)]
    pub header: DecisionHeader,
    /// `BUY 2 SELL 0 NOTHING 1 failed 1 of 4`.
    pub votes_summary: String,
}

/// Decision headers, one page, newest first (the journal's index; a decision's prompt and
/// answers are read only when it is opened, through `GET /api/journal/{id}`).
pub fn decisions_page(store: &Store, query: &PageQuery) -> Result<Page<DecisionRow>, PageError> {
    // A listing first writes the headers of records that lack one (a data dir from before
    // headers, or a write a crash cut off); cheap when none is missing.
    DecisionJournal::open(store)
        .and_then(|j| {
            j.list(&JournalFilter {
                limit: 1,
                ..JournalFilter::default()
            })
        })
        .map_err(PageError::Store)?;
    page::<DecisionHeader, _>(store, INDEX_TREE, query, |h| DecisionRow {
        votes_summary: h.votes.summary(),
        header: h,
    })
}

async fn orders_route(
    engine: web::Data<EngineHandle>,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    let store = engine.store.clone();
    let query = query.into_inner();
    match web::block(move || orders_page(&store, &query)).await {
        Ok(Ok(page)) => HttpResponse::Ok().json(page),
        Ok(Err(e)) => e.response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()),
    }
}

async fn decisions_route(
    engine: web::Data<EngineHandle>,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    let store = engine.store.clone();
    let query = query.into_inner();
    match web::block(move || decisions_page(&store, &query)).await {
        Ok(Ok(page)) => HttpResponse::Ok().json(page),
        Ok(Err(e)) => e.response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_reach_nothing_outside_the_binary() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            // The SVG namespace is a name the DOM API takes, never fetched.
            let text = text.replace("'http://www.w3.org/2000/svg'", "");
            for banned in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(banned), "{name} contains {banned}");
            }
        }
    }

    #[test]
    fn a_page_limit_out_of_range_is_refused_with_the_range() {
        let store = Store::temporary().unwrap();
        for bad in [0, MAX_PAGE + 1] {
            let q = PageQuery {
                limit: Some(bad),
                before: None,
            };
            match orders_page(&store, &q) {
                Err(PageError::BadQuery(m)) => assert!(m.contains("1 to 500"), "{m}"),
                other => panic!("{bad}: {:?}", other.map(|p| p.items.len())),
            }
        }
    }

    #[test]
    fn the_default_config_validates_and_a_zero_interval_is_named() {
        let mut issues = Issues::default();
        DashboardConfig::default().validate("dashboard", &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let bad = DashboardConfig {
            equity_sample_interval: Duration::ZERO,
            ..Default::default()
        };
        let mut issues = Issues::default();
        bad.validate("dashboard", &mut issues);
        assert!(
            format!("{issues:?}").contains("dashboard.equity_sample_interval"),
            "{issues:?}"
        );
    }
}
