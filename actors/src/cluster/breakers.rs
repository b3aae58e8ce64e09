//! Shared circuit breakers: a breaker that opens on one node opens on every node.
//!
//! Owns: the bridge between this engine's [`BreakerBoard`] and Redis — publishing this
//! node's own openings (record `P breaker:{target}`, JSON [`BreakerNotice`], PX = the
//! cooldown left; and the same JSON on channel `P breakers`, both in one atomic script
//! that never shortens a longer record; an opening Redis did not take is offered again
//! while its cooldown lasts), the subscription to that channel on a pub/sub
//! connection of its own (reconnected with backoff; every await bounded: connect,
//! subscribe and an idle ping have deadlines), and the catch-up read of the records still
//! in force — at start, so a node that starts later opens what its peers opened, and after
//! every reconnection, so a message missed while disconnected is not lost. Never: closes a
//! breaker (each node probes on its own when the deadline passes; see
//! [`crate::resilience::breaker`]), re-publishes a peer's opening, or lets Redis decide
//! anything locally: with Redis down every breaker keeps working on this node's own calls.
//!
//! Cooldowns travel the same way: a guard's pause (a venue account's 429 / Retry-After, a
//! model deployment's) is the board target `pause:{venue or deployment id}`, with the same
//! notice, record and channel; applying it pauses the peer's gate for the time left.
//!
//! Targets are matched by name, so they must be named the same on every node: venue
//! connectors by the venue's name in `[exchanges.venues]` (`<venue>#<n>` with several base
//! URLs), model deployments by their `id`.
//!
//! Metrics: `orrery_cluster_breaker_messages_total{direction}` — `published` (this node's
//! openings written to Redis), `received` (peers' notices read, from the channel or the
//! catch-up), `applied` (those that opened or prolonged at least one local breaker).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::link::{ClusterError, RedisLink};
use crate::clock::Millis;
use crate::resilience::{BreakerBoard, BreakerState, LocalOpening, PeerOpening};

/// Metric: breaker notices by direction (`published`, `received`, `applied`).
pub const METRIC_MESSAGES: &str = "orrery_cluster_breaker_messages_total";

/// How long the subscription may stay silent before it pings Redis to learn whether the
/// connection is still alive (a hung Redis sends nothing and closes nothing).
const IDLE_PING: Duration = Duration::from_secs(5);
/// Backoff between reconnections of the subscription.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an opening Redis did not take is offered again while its cooldown lasts.
const REPUBLISH_EVERY: Duration = Duration::from_secs(1);
/// At most this many breaker records are read by a catch-up or a status.
pub(crate) const MAX_RECORDS: usize = 10_000;

/// Sets the record unless one ending later exists, and publishes the notice.
/// KEYS[1] record; ARGV: notice JSON, until_ms, PX, channel. Returns 1 when written.
const PUBLISH_SCRIPT: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, d = pcall(cjson.decode, cur)
  if ok and type(d) == 'table' and tonumber(d.until_ms) and tonumber(d.until_ms) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"#;

/// What a node announces about one of its breakers, on the channel and in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerNotice {
    pub target: String,
    pub state: BreakerState,
    /// Wall-clock ms until which the breaker refuses calls.
    pub until_ms: Millis,
    /// The node whose breaker opened.
    pub node: String,
    pub reason: String,
}

/// The channel breaker notices are published on.
pub fn channel(link: &RedisLink) -> String {
    link.key("breakers")
}

/// The record of `target`'s shared breaker.
pub fn record_key(link: &RedisLink, target: &str) -> String {
    link.key(&format!("breaker:{target}"))
}

/// The breaker records in Redis (all nodes'); an unreadable one is logged and skipped.
pub async fn read_records(link: &RedisLink) -> Result<Vec<BreakerNotice>, ClusterError> {
    let keys = link
        .scan(&format!("{}*", record_key(link, "")), MAX_RECORDS)
        .await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> = link.query(redis::cmd("MGET").arg(&keys)).await?;
    Ok(keys
        .iter()
        .zip(values)
        .filter_map(|(key, value)| {
            let value = value?;
            match serde_json::from_str::<BreakerNotice>(&value) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "unreadable shared breaker record; skipped");
                    None
                }
            }
        })
        .collect())
}

/// The running bridge; [`SharedBreakers::stop`] ends it.
#[derive(Debug)]
pub struct SharedBreakers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SharedBreakers {
    /// Starts publishing `board`'s own openings and applying peers' to it. Call inside a
    /// tokio runtime. A board whose openings another reader took is only subscribed.
    pub fn start(link: RedisLink, board: BreakerBoard) -> Self {
        register_series();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(openings) = board.take_openings() {
            tasks.push(tokio::spawn(publish_loop(
                link.clone(),
                openings,
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(subscribe_loop(link, board, stopped)));
        Self { stop, tasks }
    }

    /// Stops both tasks (each finishes the command in flight, itself bounded).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn count(direction: &'static str) {
    metrics::counter!(METRIC_MESSAGES, "direction" => direction).increment(1);
}

/// The message counters exist (at 0) from start, so alerts on `increase()` see the first.
pub fn register_series() {
    for direction in ["published", "received", "applied"] {
        metrics::counter!(METRIC_MESSAGES, "direction" => direction).increment(0);
    }
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Publishes this node's openings. One that Redis did not take (down, hung) is kept and
/// tried again every [`REPUBLISH_EVERY`] while its cooldown lasts (the latest opening of a
/// target replaces an older one), so peers and nodes that start later still learn of an
/// opening made while Redis was away.
async fn publish_loop(
    link: RedisLink,
    mut openings: mpsc::Receiver<LocalOpening>,
    mut stopped: watch::Receiver<bool>,
) {
    let script = redis::Script::new(PUBLISH_SCRIPT);
    let mut held: BTreeMap<String, LocalOpening> = BTreeMap::new();
    loop {
        let retry = async {
            if held.is_empty() {
                std::future::pending::<()>().await
            }
            tokio::time::sleep(REPUBLISH_EVERY).await
        };
        tokio::select! {
            _ = stopped.changed() => return,
            o = openings.recv() => match o {
                Some(o) => {
                    if publish(&link, &script, &o, false).await {
                        held.remove(&o.target);
                    } else {
                        held.insert(o.target.clone(), o);
                    }
                }
                None => return,
            },
            // `publish` drops an opening whose cooldown has passed.
            _ = retry => {
                let mut still = BTreeMap::new();
                for (target, o) in std::mem::take(&mut held) {
                    if !publish(&link, &script, &o, true).await {
                        still.insert(target, o);
                    }
                }
                held = still;
            }
        }
    }
}

/// Writes and announces `opening`; false when Redis did not answer (try again later).
/// An opening whose cooldown has passed, or whose target has a longer record already,
/// counts as done.
async fn publish(
    link: &RedisLink,
    script: &redis::Script,
    opening: &LocalOpening,
    late: bool,
) -> bool {
    let px = opening.until_ms - now_ms();
    if px <= 0 {
        return true;
    }
    let notice = BreakerNotice {
        target: opening.target.clone(),
        state: BreakerState::Open,
        until_ms: opening.until_ms,
        node: link.node_id().to_string(),
        reason: opening.reason.clone(),
    };
    let json = match serde_json::to_string(&notice) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a breaker notice");
            return true;
        }
    };
    let mut invocation = script.key(record_key(link, &opening.target));
    invocation
        .arg(&json)
        .arg(opening.until_ms)
        .arg(px)
        .arg(channel(link));
    match link.invoke::<i64>(invocation).await {
        Ok(1) => {
            count("published");
            tracing::info!(target_name = %opening.target, until_ms = opening.until_ms, reason = %opening.reason, late, "breaker opening shared with the cluster");
            true
        }
        Ok(_) => {
            tracing::debug!(target_name = %opening.target, "a peer's record of this breaker already lasts longer; not published");
            true
        }
        Err(e) => {
            if !late {
                tracing::warn!(target_name = %opening.target, error = %e, "breaker opening not shared with the cluster yet; the breaker still protects this node, and the opening is shared when Redis answers");
            }
            false
        }
    }
}

/// Why a subscription session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

async fn subscribe_loop(link: RedisLink, board: BreakerBoard, mut stopped: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut joined_once = false;
    loop {
        match session(&link, &board, &mut stopped, &mut backoff, &mut joined_once).await {
            SessionEnd::Stopped => return,
            SessionEnd::Lost(reason) => {
                let jitter = rand::thread_rng().gen_range(0.5..1.0);
                let wait = backoff.mul_f64(jitter);
                tracing::warn!(reason = %reason, retry_in_ms = wait.as_millis() as u64, "shared breakers: subscription lost; local breakers keep working, reconnecting");
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn session(
    link: &RedisLink,
    board: &BreakerBoard,
    stopped: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
    joined_once: &mut bool,
) -> SessionEnd {
    let connect = tokio::time::timeout(link.connect_timeout(), link.client().get_async_pubsub());
    let pubsub = tokio::select! {
        _ = stopped.changed() => return SessionEnd::Stopped,
        r = connect => match r {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return SessionEnd::Lost(format!("connect: {e}")),
            Err(_) => return SessionEnd::Lost("connect: no answer within the connect timeout".into()),
        },
    };
    let (mut sink, mut stream) = pubsub.split();
    let chan = channel(link);
    match tokio::time::timeout(link.command_timeout(), sink.subscribe(&chan)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return SessionEnd::Lost(format!("subscribe: {e}")),
        Err(_) => {
            return SessionEnd::Lost("subscribe: no answer within the command timeout".into())
        }
    }
    // Subscribed first, then read the records: an opening published in between is seen
    // by one or the other (applying it twice changes nothing).
    match read_records(link).await {
        Ok(records) => {
            let (mut received, mut applied) = (0, 0);
            for notice in records {
                if let Some(n) = handle(link, board, notice) {
                    received += 1;
                    applied += n;
                }
            }
            tracing::info!(
                channel = %chan,
                records = received,
                applied,
                rejoined = *joined_once,
                "shared breakers: subscribed"
            );
        }
        Err(e) => return SessionEnd::Lost(format!("reading breaker records: {e}")),
    }
    *joined_once = true;
    *backoff = BACKOFF_MIN;
    loop {
        let next = tokio::time::timeout(IDLE_PING, stream.next());
        let msg = tokio::select! {
            _ = stopped.changed() => return SessionEnd::Stopped,
            m = next => m,
        };
        match msg {
            Ok(Some(msg)) => match msg.get_payload::<String>() {
                Ok(payload) => match serde_json::from_str::<BreakerNotice>(&payload) {
                    Ok(notice) => {
                        handle(link, board, notice);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable breaker notice on the channel; ignored")
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "breaker notice without a text payload; ignored")
                }
            },
            Ok(None) => return SessionEnd::Lost("the server closed the subscription".into()),
            // Silence: ask. On a subscribed connection Redis answers PING with an array
            // (`["pong", ""]`), not `+PONG`, so any answer will do.
            Err(_) => {
                match tokio::time::timeout(link.command_timeout(), sink.ping::<redis::Value>())
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return SessionEnd::Lost(format!("ping: {e}")),
                    Err(_) => {
                        return SessionEnd::Lost(
                            "ping: no answer within the command timeout".into(),
                        )
                    }
                }
            }
        }
    }
}

/// Applies a peer's notice; `None` for this node's own (its breakers already know).
/// Returns how many local breakers it changed.
fn handle(link: &RedisLink, board: &BreakerBoard, notice: BreakerNotice) -> Option<usize> {
    if notice.node == link.node_id() || notice.state != BreakerState::Open {
        return None;
    }
    count("received");
    let target = notice.target.clone();
    let node = notice.node.clone();
    let applied = board.apply_peer(PeerOpening {
        target: notice.target,
        until_ms: notice.until_ms,
        node: notice.node,
        reason: notice.reason,
    });
    if applied > 0 {
        count("applied");
    } else {
        tracing::debug!(target_name = %target, peer = %node, "peer breaker notice: no local breaker to change");
    }
    Some(applied)
}

/// HELP text of the shared breakers' metric.
pub fn describe() {
    metrics::describe_counter!(
        METRIC_MESSAGES,
        "Shared circuit-breaker notices, by direction: published (this node's openings written to Redis), received (peers' notices read), applied (those that opened a local breaker)."
    );
}

#[cfg(test)]
mod tests;
