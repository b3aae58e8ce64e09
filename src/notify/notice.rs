//! What a notification says: one [`Notice`] per engine event worth telling an operator,
//! and the daily PnL summary.
//!
//! Owns: turning an [`EngineEvent`] into a notice (its kind, its dedup key, one line of
//! text, structured fields for the generic webhook), when the daily summary is due, and
//! the summary's text from the fills in sled and the gateway's accounts. Never: sends, or
//! puts a secret in a notice (events carry none; reasons come from the engine itself).

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use orrery_actors::clock::Millis;
use orrery_actors::exchanges::ledger::FillRecord;
use orrery_actors::exchanges::risk_gate::ModeState;
use orrery_actors::exchanges::AccountSnapshot;
use orrery_actors::resilience::BreakerState;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use super::config::EventKind;
use crate::events::EngineEvent;

/// One notification, the same for every sink; each sink renders it in its own format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub kind: EventKind,
    /// Dedup key: the same key within the dedup window is sent once.
    pub key: String,
    /// A few words: "Fill", "Kill switch engaged", ...
    pub title: String,
    /// One line for people (chat sinks send `title: text`).
    pub text: String,
    /// When the event happened, Unix ms.
    pub at_ms: Millis,
    /// The event's facts for programs (the generic webhook sends them).
    pub fields: serde_json::Value,
}

impl Notice {
    pub fn new(
        kind: EventKind,
        key: impl Into<String>,
        title: impl Into<String>,
        text: impl Into<String>,
        at_ms: Millis,
    ) -> Self {
        Self {
            kind,
            key: key.into(),
            title: title.into(),
            text: text.into(),
            at_ms,
            fields: json!({}),
        }
    }

    pub fn with_fields(mut self, fields: serde_json::Value) -> Self {
        self.fields = fields;
        self
    }

    /// The message a chat sink shows: `[orrery] title: text`.
    pub fn line(&self) -> String {
        format!("[orrery] {}: {}", self.title, self.text)
    }
}

/// Turns events into notices; remembers the kill switch so its release is told as such.
#[derive(Debug, Default)]
pub struct NoticeMaker {
    kill_switch: bool,
}

impl NoticeMaker {
    /// The notice `event` deserves, if any (decisions and order transitions are not
    /// notified: fills are what an operator is paged about).
    pub fn notice(&mut self, event: &EngineEvent, now_ms: Millis) -> Option<Notice> {
        match event {
            EngineEvent::Fill(f) => Some(fill_notice(f)),
            EngineEvent::Mode(m) => Some(self.mode_notice(m)),
            EngineEvent::Breaker {
                target,
                tree,
                record,
                ..
            } if record.state == BreakerState::Open => {
                let open_for = std::time::Duration::from_millis(
                    u64::try_from(record.open_until_ms - record.changed_at_ms).unwrap_or(0),
                );
                Some(
                    Notice::new(
                        EventKind::BreakerOpen,
                        format!("breaker/{target}"),
                        "Circuit breaker open",
                        format!(
                            "{target} is refused for {} after repeated failures (opening #{})",
                            humantime::format_duration(open_for),
                            record.consecutive_opens.max(1)
                        ),
                        record.changed_at_ms,
                    )
                    .with_fields(json!({
                        "target": target,
                        "tree": tree,
                        "open_until_ms": record.open_until_ms,
                        "consecutive_opens": record.consecutive_opens,
                    })),
                )
            }
            EngineEvent::ChildFailed { path, record } => {
                let reason = record.last_reason.as_deref().unwrap_or("unknown");
                Some(
                    Notice::new(
                        EventKind::AgentFailure,
                        format!("failure/{path}/{reason}"),
                        "Actor failed",
                        format!(
                            "{path} {reason}; its supervisor restarts it ({} restart(s) so far)",
                            record.count
                        ),
                        record.last_failure_ms.unwrap_or(now_ms),
                    )
                    .with_fields(json!({
                        "path": path,
                        "reason": reason,
                        "restarts": record.count,
                    })),
                )
            }
            _ => None,
        }
    }

    fn mode_notice(&mut self, m: &ModeState) -> Notice {
        let was = std::mem::replace(&mut self.kill_switch, m.kill_switch);
        let fields = json!({
            "mode": m.mode.to_string(),
            "cause": m.cause.to_string(),
            "reason": m.reason,
            "kill_switch": m.kill_switch,
        });
        let (kind, title, text) = if m.kill_switch {
            (
                EventKind::KillSwitch,
                "Kill switch engaged",
                format!("trading {}: {}", m.mode, m.reason),
            )
        } else if was {
            (
                EventKind::KillSwitch,
                "Kill switch released",
                format!("trading {}: {}", m.mode, m.reason),
            )
        } else {
            (
                EventKind::Mode,
                "Trading mode",
                format!("trading {} ({}; set by {})", m.mode, m.reason, m.cause),
            )
        };
        Notice::new(
            kind,
            format!("mode/{}/{}/{}", m.mode, m.kill_switch, m.since_ms),
            title,
            text,
            m.since_ms,
        )
        .with_fields(fields)
    }
}

fn fill_notice(f: &FillRecord) -> Notice {
    let x = &f.fill;
    let mut text = format!(
        "{} {} {} {} @ {} (fee {} USD",
        f.venue,
        x.symbol,
        x.side,
        x.size.normalize(),
        x.price.normalize(),
        x.fee.round_dp(4).normalize()
    );
    if !x.closed_pnl.is_zero() {
        text.push_str(&format!(
            ", realized {} USD",
            x.closed_pnl.round_dp(2).normalize()
        ));
    }
    text.push(')');
    Notice::new(
        EventKind::Fill,
        format!("fill/{}/{}", f.venue, x.fill_id),
        "Fill",
        text,
        x.time_ms,
    )
    .with_fields(json!({
        "venue": f.venue,
        "symbol": x.symbol,
        "side": x.side.to_string(),
        "price": x.price.to_string(),
        "size": x.size.to_string(),
        "fee_usd": x.fee.to_string(),
        "realized_pnl_usd": x.closed_pnl.to_string(),
        "fill_id": x.fill_id,
        "client_id": x.client_id.as_ref().map(|c| c.to_string()),
    }))
}

/// The day whose summary is due at `now_ms`, if one is: today (UTC) once the clock has
/// passed `at`, unless it was sent already. A summary missed while the engine was stopped
/// is sent at the next start that day.
pub fn summary_due(
    at: NaiveTime,
    last_sent: Option<NaiveDate>,
    now_ms: Millis,
) -> Option<NaiveDate> {
    let now = Utc.timestamp_millis_opt(now_ms).single()?;
    let today = now.date_naive();
    (now.time() >= at && last_sent.is_none_or(|d| d < today)).then_some(today)
}

/// One venue's day in the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VenueDay {
    pub fills: usize,
    pub realized_pnl_usd: Decimal,
    pub fees_usd: Decimal,
    /// From the gateway, when it answered.
    pub account: Option<AccountSnapshot>,
}

/// The daily PnL summary of `day`: fills of the 24 hours up to `now_ms` per venue, and
/// each venue's account as the gateway reports it now.
pub fn daily_summary(
    day: NaiveDate,
    now_ms: Millis,
    fills: impl IntoIterator<Item = FillRecord>,
    accounts: BTreeMap<String, Option<AccountSnapshot>>,
) -> Notice {
    let since = now_ms - 86_400_000;
    let mut venues: BTreeMap<String, VenueDay> = accounts
        .into_iter()
        .map(|(v, account)| {
            (
                v,
                VenueDay {
                    account,
                    ..VenueDay::default()
                },
            )
        })
        .collect();
    for f in fills {
        if f.fill.time_ms < since || f.fill.time_ms > now_ms {
            continue;
        }
        let d = venues.entry(f.venue.clone()).or_default();
        d.fills += 1;
        d.realized_pnl_usd += f.fill.closed_pnl;
        d.fees_usd += f.fill.fee;
    }
    let parts: Vec<String> = venues
        .iter()
        .map(|(name, d)| {
            let mut s = format!(
                "{name}: {} fill(s), realized {} USD, fees {} USD, net {} USD",
                d.fills,
                d.realized_pnl_usd.round_dp(2),
                d.fees_usd.round_dp(2),
                (d.realized_pnl_usd - d.fees_usd).round_dp(2)
            );
            match &d.account {
                Some(a) => s.push_str(&format!(
                    ", account value {} USD, unrealized {} USD",
                    a.account_value.round_dp(2),
                    a.unrealized_pnl.round_dp(2)
                )),
                None => s.push_str(", account unavailable"),
            }
            s
        })
        .collect();
    let text = if parts.is_empty() {
        format!("{day}: no venues")
    } else {
        format!("{day} (24h): {}", parts.join("; "))
    };
    Notice::new(
        EventKind::DailyPnl,
        format!("daily/{day}"),
        "Daily PnL",
        text,
        now_ms,
    )
    .with_fields(json!({ "day": day.to_string(), "venues": venues }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_actors::clock::{Clock, ManualClock};
    use orrery_actors::exchanges::{Fill, Side};
    use rust_decimal_macros::dec;

    fn ms(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn the_kill_switch_is_told_when_engaged_and_when_released_other_modes_as_modes() {
        use orrery_actors::exchanges::risk_gate::{ModeCause, TradingMode};
        let mode = |mode, cause, kill_switch, reason: &str, since_ms| {
            EngineEvent::Mode(ModeState {
                mode,
                cause,
                reason: reason.into(),
                since_ms,
                kill_switch,
            })
        };
        let mut maker = NoticeMaker::default();
        let n = maker
            .notice(
                &mode(TradingMode::Halted, ModeCause::KillSwitch, true, "drill", 1),
                1,
            )
            .unwrap();
        assert_eq!(
            (n.kind, n.title.as_str()),
            (EventKind::KillSwitch, "Kill switch engaged")
        );
        assert!(n.text.contains("drill"), "{}", n.text);
        let n = maker
            .notice(
                &mode(
                    TradingMode::Normal,
                    ModeCause::Operator,
                    false,
                    "released",
                    2,
                ),
                2,
            )
            .unwrap();
        assert_eq!(
            (n.kind, n.title.as_str()),
            (EventKind::KillSwitch, "Kill switch released")
        );
        let n = maker
            .notice(
                &mode(
                    TradingMode::Reducing,
                    ModeCause::Unattributed,
                    false,
                    "loss limit",
                    3,
                ),
                3,
            )
            .unwrap();
        assert_eq!(n.kind, EventKind::Mode);
        assert_ne!(n.key, "mode/normal/false/2");
    }

    #[test]
    fn the_summary_is_due_once_a_day_after_its_time() {
        let at = NaiveTime::from_hms_opt(8, 30, 0).unwrap();
        let clock = ManualClock::new(ms("2026-12-03T08:29:59Z"));
        assert_eq!(summary_due(at, None, clock.now_ms()), None);
        clock.advance(1_000);
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert_eq!(summary_due(at, None, clock.now_ms()), Some(today));
        // Sent today: not again today, due again tomorrow at 08:30.
        clock.advance(3_600_000);
        assert_eq!(summary_due(at, Some(today), clock.now_ms()), None);
        clock.set(ms("2026-12-04T08:30:00Z"));
        assert_eq!(
            summary_due(at, Some(today), clock.now_ms()),
            NaiveDate::from_ymd_opt(2026, 12, 4)
        );
    }

    #[test]
    fn the_summary_sums_the_last_24h_of_fills_per_venue() {
        let now = ms("2026-12-03T00:00:00Z");
        let fill = |id: &str, t: Millis, pnl: Decimal| FillRecord {
            venue: "paper".into(),
            fill: Fill {
                fill_id: id.into(),
                client_id: None,
                venue_order_id: "1".into(),
                symbol: "BTC".into(),
                side: Side::Sell,
                price: dec!(60000),
                size: dec!(0.01),
                fee: dec!(0.25),
                closed_pnl: pnl,
                time_ms: t,
                fee_asset: None,
            },
        };
        let fills = vec![
            fill("old", now - 86_400_001, dec!(100)),
            fill("a", now - 3_600_000, dec!(12.5)),
            fill("b", now - 60_000, dec!(-2.5)),
        ];
        let mut accounts = BTreeMap::new();
        accounts.insert(
            "paper".to_string(),
            Some(AccountSnapshot {
                account_value: dec!(10010),
                free_balance: dec!(9000),
                margin_used: dec!(1010),
                unrealized_pnl: dec!(3.3),
                time_ms: now,
            }),
        );
        accounts.insert("hl".to_string(), None);
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let n = daily_summary(day, now, fills, accounts);
        assert_eq!(n.kind, EventKind::DailyPnl);
        assert_eq!(n.key, "daily/2026-12-02");
        assert_eq!(
            n.text,
            "2026-12-02 (24h): hl: 0 fill(s), realized 0 USD, fees 0 USD, net 0 USD, account unavailable; \
             paper: 2 fill(s), realized 10.0 USD, fees 0.50 USD, net 9.50 USD, account value 10010 USD, unrealized 3.3 USD"
        );
        assert_eq!(n.fields["venues"]["paper"]["fills"], 2);
    }
}
