//! The Lua scripts behind a shared budget, and one typed draw per round trip.
//!
//! Owns: the two scripts (an exact sliding-window log and a GCRA / token-bucket TAT), the
//! keys of a scope (`P limit:{scope}:…`), and [`RemoteBudget`] — draw, give back, carry —
//! each one `EVALSHA` through [`RedisLink::invoke`] with the link's deadline. Never:
//! waits, retries or falls back (the pool in [`super::pool`] decides that on the typed
//! [`ClusterError`]).
//!
//! Time is Redis's (`redis.call('TIME')`, microseconds), so node clocks never matter.
//! Keys of scope `s` (prefix `P`):
//! - `P limit:s:log` ZSET (sliding window): member `node|id|units`, score = the µs from
//!   which the entry stops counting minus the window (its draw time plus how long the
//!   units may be held locally, see [`super::pool`]);
//! - `P limit:s:tat` STRING (GCRA): the theoretical arrival time, µs;
//! - `P limit:s:meta` HASH {kind, limit, window_ms, used, updated_ms} (+ `window_start_us`
//!   for GCRA, whose per-node usage is counted per fixed accounting window of `burst`
//!   emission intervals);
//! - `P limit:s:nodes` HASH node → units it holds in the window;
//! - `P limit:s:active` ZSET node → µs of its last draw (nodes active in the window);
//! - `P limit:s:waiting` ZSET node → µs until which it counts as contending: its last
//!   refusal's wait plus a grace (see `run`).
//!
//! Every key gets `PEXPIRE` of twice the window plus the hold on each run, so an idle
//! cluster leaves nothing behind.
//!
//! Fair share (max-min): while another node contends, a draw is capped at an even split
//! among the contending nodes (this one included) of what the nodes not contending leave
//! of the limit, less this node's units in the window; alone a node may use the whole
//! budget. Being admitted does not end a node's contention, only its mark lapsing does: a
//! greedy node is admitted and refused in turn, and if admission cleared its mark, the
//! node that asked first after each admission would be uncapped and take more than its
//! share (seen as 1 184 of 2 992 units for one of three nodes on a loaded machine). A
//! node that was refused and then got what it wanted caps the others at its share for at
//! most its wait plus the grace. A batch is granted partially (down to the units of the
//! call that asked) when the room left or the fair share is smaller than the batch.

use std::time::Duration;

use redis::Script;

use super::super::link::{ClusterError, RedisLink};

/// Shared by both scripts: server time, usage bookkeeping, fairness and key expiry.
const COMMON: &str = r#"
local meta, nodes, active, waiting = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local node = ARGV[1]
local op = ARGV[2]
local cost = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local grace = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local kind = ARGV[8]
local least = tonumber(ARGV[9])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function share_check(used_by_me)
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now - window)
  redis.call('ZADD', active, now, node)
  redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
  local n_active = redis.call('ZCARD', active)
  -- Contending: this node and every node refused within its wait plus the grace.
  local contending, n_contending = {[node] = true}, 1
  for _, n in ipairs(redis.call('ZRANGE', waiting, 0, -1)) do
    if not contending[n] then
      contending[n] = true
      n_contending = n_contending + 1
    end
  end
  -- Units this node may still take (nil: nobody else contends, no cap). Max-min: what
  -- nodes not contending hold stays theirs; the rest is split evenly among contenders.
  if n_contending == 1 then return n_active, nil end
  local rest = limit
  local held = redis.call('HGETALL', nodes)
  for i = 1, #held, 2 do
    if not contending[held[i]] then rest = rest - tonumber(held[i + 1]) end
  end
  if rest < 0 then rest = 0 end
  return n_active, math.floor(rest / n_contending) - used_by_me
end
local function finish(used)
  if used < 0 then used = 0 end
  redis.call('HSET', meta, 'kind', kind, 'limit', limit, 'window_ms', math.floor(window / 1000),
    'used', used, 'updated_ms', math.floor(now / 1000))
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local function mine()
  return tonumber(redis.call('HGET', nodes, node)) or 0
end
local function refuse(wait)
  if wait < 1000 then wait = 1000 end
  redis.call('ZADD', waiting, now + wait + grace, node)
  return wait
end
"#;

/// Sliding window: exact log of entries, a running `used` total kept in `meta`.
/// ARGV[10] = member id, ARGV[11] = hold (µs the entry counts beyond the window).
const SLIDING: &str = r#"
local log = KEYS[1]
local id = ARGV[10]
local hold = tonumber(ARGV[11])
local function parse(m)
  local n, c = string.match(m, '^(.*)|[^|]*|(%d+)$')
  return n, tonumber(c)
end
local used = tonumber(redis.call('HGET', meta, 'used'))
if used == nil then
  used = 0
  redis.call('DEL', nodes)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', log, now - window + 1, '+inf')) do
    local n, c = parse(m)
    used = used + c
    redis.call('HINCRBY', nodes, n, c)
  end
end
local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
for _, m in ipairs(old) do
  local n, c = parse(m)
  used = used - c
  if redis.call('HINCRBY', nodes, n, -c) <= 0 then redis.call('HDEL', nodes, n) end
end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window) end
if used < 0 then used = 0 end
if op == 'refund' then
  -- ARGV[3] is the units to give back of entry ARGV[10] = its full member name.
  local s = redis.call('ZSCORE', log, id)
  local r = 0
  if s then
    local n, c = parse(id)
    r = math.min(cost, c)
    redis.call('ZREM', log, id)
    if c - r > 0 then
      redis.call('ZADD', log, s, string.match(id, '^(.*|[^|]*)|%d+$') .. '|' .. (c - r))
    end
    used = used - r
    if redis.call('HINCRBY', nodes, n, -r) <= 0 then redis.call('HDEL', nodes, n) end
  end
  finish(used)
  return {1, 0, used, 0, r}
end
if op == 'carry' then
  -- A carry of 0 is the rejoin's probe: the script runs, nothing is logged.
  if cost > 0 then
    redis.call('ZADD', log, now, node .. '|' .. id .. '|' .. cost)
  end
  redis.call('HINCRBY', nodes, node, cost)
  finish(used + cost)
  return {1, 0, used + cost, 0, cost}
end
local n_active, fair = share_check(mine())
local function wait_for(need)
  local freed, start = 0, 0
  while true do
    local page = redis.call('ZRANGE', log, start, start + 63, 'WITHSCORES')
    if #page == 0 then return window end
    for i = 1, #page, 2 do
      local _, c = parse(page[i])
      freed = freed + c
      if freed >= need then return tonumber(page[i + 1]) + window - now end
    end
    start = start + 64
  end
end
-- Grant up to `cost`, at least `least`, within the room left and the fair share.
local grant = math.min(cost, limit - used)
if grant < least then
  local wait = refuse(wait_for(used + least - limit))
  finish(used)
  return {0, wait, used, n_active, 0}
end
if fair ~= nil and fair < grant then
  if fair < least then
    local wait = refuse(wait_for(1))
    finish(used)
    return {0, wait, used, n_active, 0}
  end
  grant = fair
end
redis.call('ZADD', log, now + hold, node .. '|' .. id .. '|' .. grant)
redis.call('HINCRBY', nodes, node, grant)
finish(used + grant)
return {1, 0, used + grant, n_active, grant}
"#;

/// GCRA / token bucket: one TAT; `limit` = burst, window = burst × interval.
/// ARGV[10] = emission interval, µs per unit.
const GCRA: &str = r#"
local tatk = KEYS[1]
local interval = tonumber(ARGV[10])
local start = tonumber(redis.call('HGET', meta, 'window_start_us')) or 0
local used = tonumber(redis.call('HGET', meta, 'used')) or 0
if now - start >= window then
  redis.call('DEL', nodes)
  used = 0
  start = now
  redis.call('HSET', meta, 'window_start_us', start)
end
local tat = tonumber(redis.call('GET', tatk)) or now
if tat < now then tat = now end
if op == 'refund' then
  tat = tat - cost * interval
  if tat < now then tat = now end
  redis.call('SET', tatk, tat)
  local m = mine()
  local r = math.min(cost, m)
  if m - r > 0 then redis.call('HSET', nodes, node, m - r) else redis.call('HDEL', nodes, node) end
  finish(used - r)
  return {1, 0, used - r, 0, r}
end
if op == 'carry' then
  redis.call('SET', tatk, tat + cost * interval)
  redis.call('HINCRBY', nodes, node, cost)
  finish(used + cost)
  return {1, 0, used + cost, 0, cost}
end
local n_active, fair = share_check(mine())
-- Units that conform now: the TAT may run at most `limit` intervals ahead.
local room = math.floor((now + limit * interval - tat) / interval)
local grant = math.min(cost, room)
if grant < least then
  local wait = refuse(tat + least * interval - now - limit * interval)
  finish(used)
  return {0, wait, used, n_active, 0}
end
if fair ~= nil and fair < grant then
  if fair < least then
    local wait = refuse(interval * least)
    finish(used)
    return {0, wait, used, n_active, 0}
  end
  grant = fair
end
redis.call('SET', tatk, tat + grant * interval)
redis.call('HINCRBY', nodes, node, grant)
finish(used + grant)
return {1, 0, used + grant, n_active, grant}
"#;

/// The algorithm of a shared scope, as the scripts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// At most `limit` units in any `window`.
    SlidingWindow { limit: u64, window: Duration },
    /// GCRA: `burst` units at once, one more every `interval` (a token bucket of capacity
    /// `burst` refilled continuously is the same budget).
    Gcra { burst: u64, interval: Duration },
}

impl BudgetKind {
    /// `kind` as `meta` and status show it.
    pub fn label(&self) -> &'static str {
        match self {
            BudgetKind::SlidingWindow { .. } => "sliding_window",
            BudgetKind::Gcra { .. } => "gcra",
        }
    }

    /// Units per window (the sliding window's limit; GCRA's burst).
    pub fn limit(&self) -> u64 {
        match self {
            BudgetKind::SlidingWindow { limit, .. } => *limit,
            BudgetKind::Gcra { burst, .. } => *burst,
        }
    }

    /// The window usage is counted over: the sliding window's; for GCRA, the time a
    /// full burst takes to come back.
    pub fn window(&self) -> Duration {
        match self {
            BudgetKind::SlidingWindow { window, .. } => *window,
            BudgetKind::Gcra { burst, interval } => {
                interval.saturating_mul(u32::try_from(*burst).unwrap_or(u32::MAX))
            }
        }
    }
}

/// What one draw got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `units` (at least the least asked for) are this node's; `entry` names them for a
    /// later give-back.
    Admitted {
        units: u64,
        entry: String,
        used: u64,
        active: u64,
    },
    /// Refused (budget full, or over the fair share while another node waits): ask again
    /// after `wait`.
    Wait {
        wait: Duration,
        used: u64,
        active: u64,
    },
}

/// One scope's budget in Redis.
#[derive(Debug)]
pub struct RemoteBudget {
    link: RedisLink,
    scope: String,
    kind: BudgetKind,
    /// How long units drawn at once may be spent locally (sliding window: the entry keeps
    /// counting this much longer).
    hold: Duration,
    keys: [String; 5],
    script: Script,
    /// Distinguishes this process's entries from an earlier process with the same node id.
    boot: u64,
    seq: std::sync::atomic::AtomicU64,
}

/// `d` in whole microseconds, saturating.
fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RemoteBudget {
    pub fn new(link: RedisLink, scope: &str, kind: BudgetKind, hold: Duration) -> Self {
        let first = match kind {
            BudgetKind::SlidingWindow { .. } => "log",
            BudgetKind::Gcra { .. } => "tat",
        };
        let keys = [first, "meta", "nodes", "active", "waiting"]
            .map(|k| link.key(&format!("limit:{scope}:{k}")));
        let body = match kind {
            BudgetKind::SlidingWindow { .. } => SLIDING,
            BudgetKind::Gcra { .. } => GCRA,
        };
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(0))
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        Self {
            link,
            scope: scope.to_string(),
            kind,
            hold,
            keys,
            script: Script::new(&format!("{COMMON}{body}")),
            boot,
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn kind(&self) -> BudgetKind {
        self.kind
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// The `meta` key (for status readers and tests).
    pub fn meta_key(&self) -> &str {
        &self.keys[1]
    }

    /// The `nodes` key.
    pub fn nodes_key(&self) -> &str {
        &self.keys[2]
    }

    async fn run(
        &self,
        op: &str,
        units: u64,
        least: u64,
        id: &str,
    ) -> Result<[u64; 5], ClusterError> {
        let window = self.kind.window();
        let ttl_ms = u64::try_from((window * 2 + self.hold).as_millis())
            .unwrap_or(u64::MAX)
            .max(1000);
        // A refused node counts as waiting a while past its wait (a quarter window, 0.1 s
        // to 5 s), so the others yield to it until it came back even from a busy machine.
        let grace = us(window / 4).clamp(100_000, 5_000_000);
        let mut inv = self.script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        inv.arg(self.link.node_id())
            .arg(op)
            .arg(units)
            .arg(self.kind.limit())
            .arg(us(window))
            .arg(grace)
            .arg(ttl_ms)
            .arg(self.kind.label())
            .arg(least);
        match self.kind {
            BudgetKind::SlidingWindow { .. } => {
                inv.arg(id).arg(us(self.hold));
            }
            BudgetKind::Gcra { interval, .. } => {
                inv.arg(us(interval).max(1));
            }
        }
        let answer: Vec<i64> = self.link.invoke(inv).await?;
        match answer.as_slice() {
            [a, b, c, d, e] => Ok([*a, *b, *c, *d, *e].map(|v| u64::try_from(v).unwrap_or(0))),
            other => Err(ClusterError::Refused {
                url: self.link.url().to_string(),
                reason: format!(
                    "limit script for scope `{}` answered {other:?}, expected five integers",
                    self.scope
                ),
            }),
        }
    }

    /// Draws exactly `units`, or says how long to wait.
    pub async fn draw(&self, units: u64) -> Result<Verdict, ClusterError> {
        self.draw_between(units, units).await
    }

    /// Draws up to `most` units and at least `least` (a batch takes what the budget and
    /// the fair share leave, if that covers the call waiting for it), or says how long
    /// until `least` could pass.
    pub async fn draw_between(&self, least: u64, most: u64) -> Result<Verdict, ClusterError> {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{:x}.{seq:x}", self.boot);
        let [admitted, wait, used, active, granted] =
            self.run("draw", most.max(least), least, &id).await?;
        Ok(if admitted == 1 {
            Verdict::Admitted {
                units: granted,
                entry: format!("{}|{id}|{granted}", self.link.node_id()),
                used,
                active,
            }
        } else {
            Verdict::Wait {
                wait: Duration::from_micros(wait),
                used,
                active,
            }
        })
    }

    /// Gives back `units` of the admitted `entry` that were never spent; returns the
    /// units given back (0 when the entry already left the window).
    pub async fn give_back(&self, entry: &str, units: u64) -> Result<u64, ClusterError> {
        let [_, _, _, _, returned] = self.run("refund", units, 0, entry).await?;
        Ok(returned)
    }

    /// Records `units` this node spent while it could not reach Redis, without a check:
    /// they count from now for a whole window (conservative: they were spent earlier).
    pub async fn carry(&self, units: u64) -> Result<(), ClusterError> {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{:x}.c{seq:x}", self.boot);
        self.run("carry", units, 0, &id).await.map(|_| ())
    }
}
