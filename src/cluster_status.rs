//! `orrery cluster status [--json]` and `GET /api/cluster`: the cluster as Redis holds it.
//!
//! Owns: the clap arguments, connecting to the cluster's Redis from this process (the
//! command works with no engine running: it reads the config's `[cluster]` and asks Redis
//! directly), the text rendering, the JSON document (the same
//! [`orrery_actors::cluster::ClusterStatus`] the API serves) and the exit codes: 0 when
//! Redis answered or there is no `[cluster]` section (it says so), 1 when Redis is
//! unreachable. Never: writes to Redis, or prints the Redis password (URLs are shown
//! without user info).

use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::{http::StatusCode, web, HttpResponse};
use clap::{Args, Subcommand};
use orrery_actors::cluster::{ClusterError, ClusterStatus, RedisLink};

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::http::ApiError;

const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Redis health, nodes, leases and their owners, shared limits in use, and the shared
    /// breakers in force. Reads Redis directly; no engine needs to run.
    Status {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Print one JSON document (the same as `GET /api/cluster`; errors as
        /// {"error":{"code","message"}}).
        #[arg(long)]
        json: bool,
    },
}

impl ClusterArgs {
    pub fn config(&self) -> Option<PathBuf> {
        match &self.action {
            ClusterAction::Status { config, .. } => config.clone(),
        }
    }
}

/// What `orrery cluster status` says without a `[cluster]` section.
pub const NOT_CONFIGURED: &str =
    "no [cluster] section in the config: this engine runs on its own and shares nothing through Redis";

/// Runs `orrery cluster ...`.
pub fn run(config: Config, args: ClusterArgs) -> ExitCode {
    let ClusterAction::Status { json, .. } = args.action;
    // The link's own warnings speak of a node's fallbacks; this command reports its
    // failure itself.
    crate::logging::init("error");
    let Some(cluster) = config.cluster.clone() else {
        if json {
            println!(
                "{}",
                serde_json::json!({"configured": false, "message": NOT_CONFIGURED})
            );
        } else {
            println!("{NOT_CONFIGURED}");
        }
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orrery: cannot start a runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let read = runtime.block_on(async {
        let link = RedisLink::open(&cluster, cluster.password(&orrery_actors::env::process_env))?;
        ClusterStatus::read(&link).await
    });
    match read {
        Ok(status) if json => {
            println!("{}", crate::json::to_pretty(&status));
            ExitCode::SUCCESS
        }
        Ok(status) => {
            print!("{}", render(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            let message = match &e {
                ClusterError::Unreachable { url, reason } => {
                    format!("cannot read the cluster: redis at {url} unreachable: {reason}")
                }
                other => format!("cannot read the cluster: {other}"),
            };
            if json {
                println!(
                    "{}",
                    crate::json::to_pretty(&ApiError::new(error_code(&e), message))
                );
            } else {
                eprintln!("orrery: {message}");
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn error_code(e: &ClusterError) -> &'static str {
    match e {
        ClusterError::Unreachable { .. } => "redis_unreachable",
        ClusterError::Refused { .. } => "redis_refused",
        ClusterError::Config(_) => "cluster_config",
    }
}

/// `GET /api/cluster`: the engine's cluster status (404 `cluster_not_configured` without
/// `[cluster]`, 503 `redis_unreachable` when Redis does not answer).
pub async fn api(engine: web::Data<EngineHandle>) -> HttpResponse {
    let Some(link) = engine.tree_deps.cluster_reads.clone() else {
        return ApiError::new("cluster_not_configured", NOT_CONFIGURED)
            .response(StatusCode::NOT_FOUND);
    };
    match ClusterStatus::read(&link).await {
        Ok(status) => HttpResponse::Ok().json(status),
        Err(e) => ApiError::new(error_code(&e), format!("cannot read the cluster: {e}"))
            .response(StatusCode::SERVICE_UNAVAILABLE),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/cluster", web::get().to(api));
}

fn ago(ms: i64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        humantime::format_duration(std::time::Duration::from_secs((ms / 1000).max(0) as u64))
            .to_string()
    }
}

fn expires(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never".into(), ago)
}

fn num(n: &Option<serde_json::Number>) -> String {
    n.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

/// The text form.
pub fn render(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "redis: {} up, ping {:.2} ms, version {}, key prefix {}",
        s.redis.url,
        s.redis.ping_ms,
        s.redis.version.as_deref().unwrap_or("unknown"),
        s.key_prefix
    );
    let _ = writeln!(out, "\nnodes ({}):", s.nodes.len());
    if s.nodes.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<24} {:>9} {:>8}  {:<22} {:<8} ALIVE",
            "NODE", "SEEN AGO", "PID", "LISTEN", "VERSION"
        );
        for n in &s.nodes {
            let _ = writeln!(
                out,
                "  {:<24} {:>9} {:>8}  {:<22} {:<8} {}",
                n.node_id,
                ago(n.seen_ago_ms),
                n.pid,
                if n.listen.is_empty() { "-" } else { &n.listen },
                n.version,
                if n.alive { "yes" } else { "no" }
            );
        }
    }
    let _ = writeln!(out, "\nleases ({}):", s.leases.len());
    if s.leases.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<28} {:<24} {:>6} {:>6}  EXPIRES IN",
            "RESOURCE", "OWNER", "TOKEN", "FENCE"
        );
        for l in &s.leases {
            let _ = writeln!(
                out,
                "  {:<28} {:<24} {:>6} {:>6}  {}",
                l.resource,
                l.owner,
                l.token,
                l.fence.map_or_else(|| "-".into(), |f| f.to_string()),
                expires(l.expires_in_ms)
            );
        }
    }
    let _ = writeln!(out, "\nshared limits ({}):", s.limits.len());
    if s.limits.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<28} {:<16} {:>8} {:>8} {:>10}  PER NODE",
            "SCOPE", "KIND", "LIMIT", "USED", "WINDOW MS"
        );
        for l in &s.limits {
            let per_node = l
                .nodes
                .iter()
                .map(|(node, used)| format!("{node}={used}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                "  {:<28} {:<16} {:>8} {:>8} {:>10}  {}",
                l.scope,
                l.kind,
                num(&l.limit),
                num(&l.used),
                num(&l.window_ms),
                if per_node.is_empty() {
                    "-".into()
                } else {
                    per_node
                }
            );
        }
    }
    let _ = writeln!(out, "\nshared breakers open ({}):", s.breakers.len());
    if s.breakers.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<28} {:<24} {:>10}  REASON",
            "TARGET", "OPENED BY", "OPEN FOR"
        );
        for b in &s.breakers {
            let _ = writeln!(
                out,
                "  {:<28} {:<24} {:>10}  {}",
                b.notice.target,
                b.notice.node,
                expires(b.expires_in_ms),
                b.notice.reason
            );
        }
    }
    if !s.problems.is_empty() {
        let _ = writeln!(out, "\nunreadable records ({}):", s.problems.len());
        for p in &s.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}
