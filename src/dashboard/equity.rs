//! The equity history behind the overview's chart: every `[dashboard]
//! equity_sample_interval` the [`EquitySampler`] actor reads the live status (every venue's
//! account value, realized PnL less fees, unrealized PnL, exposure) and appends one
//! [`EquityPoint`] to sled's `dashboard_equity` tree, so the chart survives restarts;
//! `GET /api/dashboard/equity` serves it downsampled.
//!
//! Owns: the tree, its key (the sample time, zero-padded so key order is time order), the
//! retention (at most `equity_max_samples`; the oldest go first), and the downsampling.
//! Never: writes a sample while a venue's account is unknown (a missing venue would show as
//! a crash in equity that never happened), or blocks the engine: a sample that takes longer
//! than its interval is skipped, not queued.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orrery_actors::clock::Millis;
use orrery_actors::store::{Record, Store, StoreError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::EngineHandle;
use crate::operate::error_response;
use crate::status::StatusReport;

/// The sled tree of equity samples.
pub const TREE: &str = "dashboard_equity";

/// Most points one answer of the route carries when none is asked for.
pub const DEFAULT_POINTS: usize = 500;
/// Most points one answer may carry.
pub const MAX_POINTS: usize = 5_000;

/// One sample of the account, summed over every venue, in USD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquityPoint {
    pub time_ms: Millis,
    /// Account value (cash plus unrealized PnL) of every venue.
    pub equity_usd: Decimal,
    /// Realized PnL of the recorded fills, less their fees.
    pub realized_pnl_usd: Decimal,
    pub unrealized_pnl_usd: Decimal,
    /// Sum of the open positions' notional at mark, long and short alike.
    pub exposure_usd: Decimal,
}

impl Record for EquityPoint {}

/// Why a sample was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("the status report is not available: {0}")]
    Status(String),
    #[error("venue `{venue}` did not report its account ({why}); no sample, so the chart shows no false drop")]
    VenueUnknown { venue: String, why: String },
    #[error("the status report did not come within {0:?}")]
    Timeout(Duration),
    #[error("cannot write the sample: {0}")]
    Store(#[from] StoreError),
}

/// The point a status report makes; `None` when a venue's account is unknown.
pub fn point_of(report: &StatusReport, time_ms: Millis) -> Result<EquityPoint, SampleError> {
    let mut p = EquityPoint {
        time_ms,
        equity_usd: Decimal::ZERO,
        realized_pnl_usd: Decimal::ZERO,
        unrealized_pnl_usd: Decimal::ZERO,
        exposure_usd: Decimal::ZERO,
    };
    for v in &report.venues {
        let Some(account) = &v.account else {
            return Err(SampleError::VenueUnknown {
                venue: v.name.clone(),
                why: v.error.clone().unwrap_or_else(|| "no account".into()),
            });
        };
        p.equity_usd += account.account_value;
        p.realized_pnl_usd += v.realized_pnl_usd - v.fees_usd;
        for row in &v.position_pnl {
            p.unrealized_pnl_usd += row.unrealized_pnl_usd;
            p.exposure_usd += row.exposure_usd.abs();
        }
    }
    Ok(p)
}

fn key(time_ms: Millis) -> String {
    format!("{:016}", time_ms.max(0))
}

/// The equity history in sled.
#[derive(Clone)]
pub struct EquityHistory {
    tree: orrery_actors::store::Tree<EquityPoint>,
}

impl EquityHistory {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    /// Appends `point` and removes the oldest samples beyond `max_samples`; returns how
    /// many were removed.
    pub fn record(&self, point: &EquityPoint, max_samples: usize) -> Result<usize, StoreError> {
        self.tree.put(&key(point.time_ms), point)?;
        let excess = self.tree.len().saturating_sub(max_samples);
        let old: Vec<String> = self.tree.keys().take(excess).collect::<Result<_, _>>()?;
        for k in &old {
            self.tree.remove(k)?;
        }
        Ok(old.len())
    }

    /// Samples at or after `since_ms`, oldest first, thinned to at most `points` (evenly
    /// spaced over the samples, the newest always kept so the chart ends at "now").
    pub fn read(&self, since_ms: Millis, points: usize) -> Result<Vec<EquityPoint>, StoreError> {
        let from = key(since_ms);
        let mut all = Vec::new();
        for item in self.tree.iter() {
            let (k, p) = item?;
            if k >= from {
                all.push(p);
            }
        }
        Ok(downsample(all, points))
    }
}

/// At most `points` of `all` (oldest first), evenly spaced, the last always kept.
pub fn downsample(all: Vec<EquityPoint>, points: usize) -> Vec<EquityPoint> {
    let n = all.len();
    if n <= points || points == 0 {
        return all;
    }
    let step = n.div_ceil(points);
    let mut out: Vec<EquityPoint> = all.iter().step_by(step).cloned().collect();
    if let Some(last) = all.last() {
        if out.last() != Some(last) {
            if out.len() == points {
                out.pop();
            }
            out.push(last.clone());
        }
    }
    out
}

/// Query of `GET /api/dashboard/equity`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquityQuery {
    /// Only samples at or after this time (Unix ms); every sample when absent.
    #[serde(default)]
    pub since_ms: Option<Millis>,
    /// Most points (default 500, at most 5000).
    #[serde(default)]
    pub points: Option<usize>,
}

/// Body of `GET /api/dashboard/equity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EquitySeries {
    pub points: Vec<EquityPoint>,
    /// The configured sampling interval, in milliseconds.
    pub sample_interval_ms: u64,
}

pub(super) async fn route(
    engine: web::Data<EngineHandle>,
    query: web::Query<EquityQuery>,
) -> HttpResponse {
    let points = query.points.unwrap_or(DEFAULT_POINTS);
    if !(2..=MAX_POINTS).contains(&points) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("points {points} is out of range; give 2 to {MAX_POINTS}"),
        );
    }
    let since = query.since_ms.unwrap_or(0);
    let store = engine.store.clone();
    let interval = engine.config.dashboard.equity_sample_interval;
    let read = web::block(move || EquityHistory::open(&store)?.read(since, points)).await;
    match read {
        Ok(Ok(points)) => HttpResponse::Ok().json(EquitySeries {
            points,
            sample_interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        }),
        Ok(Err(e)) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            format!("cannot read the equity history: {e}"),
        ),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()),
    }
}

/// Samples the equity every `[dashboard] equity_sample_interval`, from one interval after
/// start.
pub struct EquitySampler {
    engine: EngineHandle,
    history: EquityHistory,
    busy: bool,
}

impl EquitySampler {
    pub fn new(engine: EngineHandle) -> Result<Self, StoreError> {
        Ok(Self {
            history: EquityHistory::open(&engine.store)?,
            engine,
            busy: false,
        })
    }

    fn sample(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let engine = self.engine.clone();
        let history = self.history.clone();
        let max = engine.config.dashboard.equity_max_samples;
        // The status report asks the gateway (which may ask a venue): bounded, so a hung
        // venue delays one sample, never the next ones.
        let within = engine
            .config
            .dashboard
            .equity_sample_interval
            .max(Duration::from_secs(5));
        let work = async move {
            let report = tokio::time::timeout(within, crate::status::live(&engine))
                .await
                .map_err(|_| SampleError::Timeout(within))?
                .map_err(SampleError::Status)?;
            let point = point_of(&report, chrono::Utc::now().timestamp_millis())?;
            history.record(&point, max)?;
            Ok::<_, SampleError>(point)
        };
        ctx.spawn(work.into_actor(self).map(|res, this, _| {
            this.busy = false;
            match res {
                Ok(p) => tracing::debug!(equity_usd = %p.equity_usd, "equity sampled"),
                Err(e) => tracing::debug!(error = %e, "equity not sampled"),
            }
        }));
    }
}

impl Actor for EquitySampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first sample comes one interval after start, not at once: at start the
        // gateway is reconciling, and a venue read then would only add load to it.
        let every = self.engine.config.dashboard.equity_sample_interval;
        ctx.run_interval(every, |this, ctx| this.sample(ctx));
    }
}

/// Stops the sampler, so it drops its engine handle (and its store handles) before the
/// store closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopEquitySampler;

impl Handler<StopEquitySampler> for EquitySampler {
    type Result = ();

    fn handle(&mut self, _: StopEquitySampler, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn point(t: Millis, equity: Decimal) -> EquityPoint {
        EquityPoint {
            time_ms: t,
            equity_usd: equity,
            realized_pnl_usd: dec!(1.5),
            unrealized_pnl_usd: dec!(-0.25),
            exposure_usd: dec!(100),
        }
    }

    #[test]
    fn samples_survive_a_reopen_and_the_oldest_go_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let h = EquityHistory::open(&store).unwrap();
            for t in 1..=12 {
                h.record(&point(t * 1000, Decimal::from(10_000 + t)), 10)
                    .unwrap();
            }
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let got = EquityHistory::open(&store).unwrap().read(0, 100).unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(got[0].time_ms, 3000);
        assert_eq!(got[9], point(12_000, dec!(10012)));
    }

    #[test]
    fn a_long_history_is_thinned_evenly_and_ends_at_the_newest() {
        let all: Vec<_> = (0..1000).map(|t| point(t, Decimal::from(t))).collect();
        let out = downsample(all, 100);
        assert_eq!(out.len(), 100);
        assert_eq!(out[0].time_ms, 0);
        assert_eq!(out[99].time_ms, 999);
        assert!(out.windows(2).all(|w| w[0].time_ms < w[1].time_ms));
        // `since` keeps the newer samples only.
        let store = Store::temporary().unwrap();
        let h = EquityHistory::open(&store).unwrap();
        for t in 0..20 {
            h.record(&point(t * 10, Decimal::ONE), 100).unwrap();
        }
        let recent = h.read(150, 100).unwrap();
        assert_eq!(
            recent.iter().map(|p| p.time_ms).collect::<Vec<_>>(),
            [150, 160, 170, 180, 190]
        );
    }
}
