//! Resource shedding on the process side: the control API's refusal of low-priority work
//! while the engine sheds load, and the resource lines of `orrery status`.
//!
//! Owns: the 503 answer (`{"error":{"code":"shedding",...}}`) of a route whose work is
//! [`LowPriorityWork`], and the text rendering of [`ResourceStatus`]. Never: judges the
//! level (the resource monitor, `orrery_actors::shedding::monitor`, does) or refuses work
//! that protects money (orders, cancels, closes, the kill switch are never gated).

use actix_web::{http::StatusCode, HttpResponse};
use orrery_actors::shedding::{LowPriorityWork, ResourceLevel, ResourceStatus, ShedGate};

use crate::agents::SHEDDING;
use crate::http::ApiError;

/// `None` when `work` may start now; else the 503 `shedding` answer that says why.
pub fn refuse_if_shedding(gate: &ShedGate, work: LowPriorityWork) -> Option<HttpResponse> {
    let shed = gate.admit(work).err()?;
    tracing::info!(work = work.as_str(), level = %shed.level, reason = %shed.reason, "low-priority work refused while shedding");
    Some(ApiError::new(SHEDDING, shed.to_string()).response(StatusCode::SERVICE_UNAVAILABLE))
}

/// The `resources:` line of `orrery status` (and one line of paused work while shedding).
pub fn render(r: &ResourceStatus) -> String {
    let rss = r
        .rss_bytes
        .map(|b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "-".into());
    let cpu = r
        .cpu_percent
        .map(|c| format!("{c:.1}%"))
        .unwrap_or_else(|| "-".into());
    let mut o = format!("resources: {}   rss {rss}   cpu {cpu}", r.level);
    if r.level != ResourceLevel::Normal {
        o.push_str(&format!(" ({})", r.reason));
    }
    if let Some(e) = &r.read_error {
        o.push_str(&format!("\n  reading failed: {e}"));
    }
    if !r.paused_work.is_empty() {
        let work: Vec<&str> = r.paused_work.iter().map(|w| w.describe()).collect();
        o.push_str(&format!("\n  paused while shedding: {}", work.join(", ")));
    }
    o.push('\n');
    o
}
