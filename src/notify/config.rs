//! `[notifications]`: the sinks, what each one receives, and the delivery settings.
//!
//! Owns: the config shape, its validation (every bad key named with its path), the start-up
//! check that each sink's secret variable is set ([`NotificationsConfig::check_env`], run by
//! `run` and `check-config` before anything starts), and resolving a sink into what the
//! notifier sends with ([`ResolvedSink`]). Never: reads a secret from the file, or prints,
//! logs or stores one: a webhook URL read from `url_env` and a bot token read from
//! `token_env` live only in [`Secret`], whose `Debug`/`Display` print `***`.
//!
//! Why `url` is allowed in the file at all: a generic webhook on a private host often has
//! no secret in its URL. Slack and Discord webhook URLs carry their token in the path and
//! belong in `url_env`; the README says so.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use orrery_actors::env::{non_empty, EnvLookup};
use orrery_actors::validate::{join, Issues};
use serde::{Deserialize, Serialize};

/// What a notification is about; a sink lists the kinds it receives (`events = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A fill recorded in the ledger.
    Fill,
    /// The trading mode changed (normal, reducing, halted) other than by the kill switch.
    Mode,
    /// The operator's kill switch was engaged or released.
    KillSwitch,
    /// A circuit breaker opened (a model deployment or a venue endpoint is refused).
    BreakerOpen,
    /// A supervised actor failed (panicked, exited abnormally, or could not start).
    AgentFailure,
    /// The daily PnL summary (`daily_summary`).
    DailyPnl,
    /// `orrery notify test`; always sent to the sink asked, never configured.
    Test,
}

impl EventKind {
    /// Every kind a sink may subscribe to, the default of `events`.
    pub const CONFIGURABLE: [EventKind; 6] = [
        EventKind::Fill,
        EventKind::Mode,
        EventKind::KillSwitch,
        EventKind::BreakerOpen,
        EventKind::AgentFailure,
        EventKind::DailyPnl,
    ];

    /// The `kind` label of the metrics and the `kind` field of the generic webhook.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Fill => "fill",
            EventKind::Mode => "mode",
            EventKind::KillSwitch => "kill_switch",
            EventKind::BreakerOpen => "breaker_open",
            EventKind::AgentFailure => "agent_failure",
            EventKind::DailyPnl => "daily_pnl",
            EventKind::Test => "test",
        }
    }
}

/// The wire format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Generic JSON webhook: the whole notice as JSON (see [`super::sink`]).
    Webhook,
    /// Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// Discord webhook: `{"content": ...}`, at most 2000 characters.
    Discord,
    /// Telegram Bot API `sendMessage`: `{"chat_id", "text"}`.
    Telegram,
}

impl SinkKind {
    pub fn label(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Discord => "discord",
            SinkKind::Telegram => "telegram",
        }
    }
}

/// A Telegram chat: its numeric id or `@channelname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

/// Default Telegram Bot API base.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

fn default_api_base() -> String {
    TELEGRAM_API.to_string()
}

fn all_events() -> Vec<EventKind> {
    EventKind::CONFIGURABLE.to_vec()
}

/// One `[[notifications.sinks]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The sink's name: metric label, `orrery notify test --sink NAME`, status.
    pub name: String,
    pub kind: SinkKind,
    /// The webhook URL, when it holds no secret (webhook, slack, discord).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the webhook URL (webhook, slack, discord).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Telegram: the variable holding the bot token (required). Webhook: an optional
    /// variable whose value is sent as `Authorization: Bearer <value>`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Telegram: the chat to write to.
    #[serde(default)]
    pub chat_id: Option<ChatId>,
    /// Telegram: the Bot API base (tests point it at loopback).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The kinds of events this sink receives; default all.
    #[serde(default = "all_events")]
    pub events: Vec<EventKind>,
    /// At most one message per this interval; later ones wait in the sink's queue.
    #[serde(default, with = "humantime_serde")]
    pub min_interval: Duration,
}

/// `[notifications]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    pub sinks: Vec<SinkConfig>,
    /// Notices each sink holds while it waits (rate limit, retries, a slow receiver);
    /// past it the oldest is dropped and counted.
    pub queue: usize,
    /// The same event (same key) within this window is sent once.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Deadline of each delivery request (connect, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per notice, the first included.
    pub max_attempts: u32,
    /// Backoff between attempts: exponential from `backoff_initial` to `backoff_max`,
    /// ±20% jitter; a 429's `Retry-After` / `retry_after` wins when given.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// The daily PnL summary's time, `HH:MM` UTC; none without it. A TOML time
    /// (`daily_summary = 08:00:00`, or `ORRERY__NOTIFICATIONS__DAILY_SUMMARY=08:00`, which
    /// TOML reads as a time) is taken as well as a string.
    #[serde(deserialize_with = "time_of_day_text")]
    pub daily_summary: Option<String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            sinks: Vec::new(),
            queue: 256,
            dedup_window: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            daily_summary: None,
        }
    }
}

/// A secret from the environment; prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for building the one request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a sink posts, with its secrets resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Webhook, Slack, Discord: the URL (a secret when read from `url_env`) and, for the
    /// generic webhook, an optional bearer token.
    Url { url: Secret, bearer: Option<Secret> },
    /// Telegram: `<api_base>/bot<token>/sendMessage`.
    Telegram {
        api_base: String,
        token: Secret,
        chat_id: ChatId,
    },
}

/// A sink ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSink {
    pub name: String,
    pub kind: SinkKind,
    pub target: Target,
    pub events: BTreeSet<EventKind>,
    pub min_interval: Duration,
}

/// Why a sink cannot be resolved (a variable unset since the start-up check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("notification sink `{sink}`: environment variable {var} ({key}) is not set; export it with the sink's secret")]
    MissingEnv {
        sink: String,
        var: String,
        key: &'static str,
    },
    #[error("notification sink `{sink}` has no URL; set `url` or `url_env`")]
    NoUrl { sink: String },
}

fn http_url(s: &str) -> bool {
    reqwest::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_var(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `HH:MM` or `HH:MM:SS` (UTC) as a time of day.
pub fn parse_time_of_day(s: &str) -> Option<chrono::NaiveTime> {
    let s = s.trim();
    chrono::NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok()
}

/// `daily_summary` as written: a string, or a TOML time kept as its text.
fn time_of_day_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Toml(toml::value::Datetime),
    }
    Ok(Option::<Written>::deserialize(d)?.map(|w| match w {
        Written::Text(s) => s,
        Written::Toml(t) => t.to_string(),
    }))
}

impl NotificationsConfig {
    /// Reports every bad value under `path` (`notifications`).
    pub fn validate(&self, path: &str, issues: &mut Issues) {
        issues.check(
            (1..=100_000).contains(&self.queue),
            join(path, "queue"),
            self.queue,
            "a capacity from 1 to 100000",
        );
        issues.check(
            self.dedup_window <= Duration::from_secs(86_400),
            join(path, "dedup_window"),
            humantime::format_duration(self.dedup_window).to_string(),
            "a duration from 0 to 24h",
        );
        issues.check(
            self.timeout >= Duration::from_millis(100) && self.timeout <= Duration::from_secs(120),
            join(path, "timeout"),
            humantime::format_duration(self.timeout).to_string(),
            "a duration from 100ms to 2m",
        );
        issues.check(
            (1..=20).contains(&self.max_attempts),
            join(path, "max_attempts"),
            self.max_attempts,
            "an integer from 1 to 20",
        );
        issues.check(
            self.backoff_initial <= self.backoff_max
                && self.backoff_max <= Duration::from_secs(3_600),
            join(path, "backoff_max"),
            humantime::format_duration(self.backoff_max).to_string(),
            "a duration not below backoff_initial and at most 1h",
        );
        if let Some(at) = &self.daily_summary {
            issues.check(
                parse_time_of_day(at).is_some(),
                join(path, "daily_summary"),
                at,
                "a UTC time of day as HH:MM, e.g. \"00:00\"",
            );
        }
        let mut names = BTreeSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let p = format!("{path}.sinks[{i}]");
            sink.validate(&p, issues);
            issues.check(
                names.insert(sink.name.as_str()),
                join(&p, "name"),
                &sink.name,
                "a name no other sink uses",
            );
        }
    }

    /// Every sink's secret variable is set. Run by `run` and `check-config`; the issue
    /// names the key and the variable, never a value.
    pub fn check_env(&self, path: &str, env: EnvLookup<'_>, issues: &mut Issues) {
        for (i, sink) in self.sinks.iter().enumerate() {
            let p = format!("{path}.sinks[{i}]");
            for (key, var) in [("url_env", &sink.url_env), ("token_env", &sink.token_env)] {
                if let Some(var) = var {
                    issues.check(
                        non_empty(env, var).is_some(),
                        join(&p, key),
                        var,
                        format!(
                            "an environment variable that is set: export {var} with sink `{}`'s {}",
                            sink.name,
                            if key == "url_env" {
                                "webhook URL"
                            } else {
                                "token"
                            }
                        ),
                    );
                }
            }
        }
    }

    /// Every sink with its secrets read through `env`.
    pub fn resolve(&self, env: EnvLookup<'_>) -> Result<Vec<ResolvedSink>, ResolveError> {
        self.sinks.iter().map(|s| s.resolve(env)).collect()
    }
}

impl SinkConfig {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.check(
            valid_name(&self.name),
            join(p, "name"),
            &self.name,
            "a sink name of a-z, A-Z, 0-9, - and _ (at most 64)",
        );
        for (key, var) in [("url_env", &self.url_env), ("token_env", &self.token_env)] {
            if let Some(var) = var {
                issues.check(
                    valid_var(var),
                    join(p, key),
                    var,
                    "the name of an environment variable (A-Z, 0-9, _), not its value",
                );
            }
        }
        if let Some(url) = &self.url {
            issues.check(
                http_url(url),
                join(p, "url"),
                "<the url>",
                "an http:// or https:// URL",
            );
        }
        issues.check(
            !self.events.is_empty() && !self.events.contains(&EventKind::Test),
            join(p, "events"),
            self.events.iter().map(|e| e.label()).collect::<Vec<_>>(),
            "a non-empty list of fill, mode, kill_switch, breaker_open, agent_failure, daily_pnl",
        );
        issues.check(
            self.min_interval <= Duration::from_secs(3_600),
            join(p, "min_interval"),
            humantime::format_duration(self.min_interval).to_string(),
            "a duration from 0 to 1h",
        );
        match self.kind {
            SinkKind::Webhook | SinkKind::Slack | SinkKind::Discord => {
                issues.check(
                    self.url.is_some() != self.url_env.is_some(),
                    join(p, "url_env"),
                    self.url_env.as_deref().unwrap_or("<unset>"),
                    format!(
                        "exactly one of `url` and `url_env` for a {} sink (url_env for a URL that holds a token)",
                        self.kind.label()
                    ),
                );
                issues.check(
                    self.chat_id.is_none(),
                    join(p, "chat_id"),
                    "<set>",
                    "no chat_id: only telegram sinks have one",
                );
                if self.kind != SinkKind::Webhook {
                    issues.check(
                        self.token_env.is_none(),
                        join(p, "token_env"),
                        self.token_env.as_deref().unwrap_or(""),
                        format!(
                            "no token_env for a {} sink: its token is part of the URL (url_env)",
                            self.kind.label()
                        ),
                    );
                }
            }
            SinkKind::Telegram => {
                issues.check(
                    self.token_env.is_some(),
                    join(p, "token_env"),
                    "<unset>",
                    "the environment variable holding the bot token, e.g. TELEGRAM_BOT_TOKEN",
                );
                issues.check(
                    match &self.chat_id {
                        Some(ChatId::Id(_)) => true,
                        Some(ChatId::Name(n)) => !n.trim().is_empty(),
                        None => false,
                    },
                    join(p, "chat_id"),
                    "<unset>",
                    "the chat's numeric id or @channelname",
                );
                issues.check(
                    self.url.is_none() && self.url_env.is_none(),
                    join(p, "url"),
                    "<set>",
                    "no url/url_env for telegram: set api_base (default https://api.telegram.org)",
                );
                issues.check(
                    http_url(&self.api_base),
                    join(p, "api_base"),
                    &self.api_base,
                    "an http:// or https:// URL",
                );
            }
        }
    }

    /// This sink with its secrets read through `env`.
    pub fn resolve(&self, env: EnvLookup<'_>) -> Result<ResolvedSink, ResolveError> {
        let read = |var: &str, key: &'static str| {
            non_empty(env, var)
                .map(Secret)
                .ok_or_else(|| ResolveError::MissingEnv {
                    sink: self.name.clone(),
                    var: var.to_string(),
                    key,
                })
        };
        let bearer = match &self.token_env {
            Some(var) => Some(read(var, "token_env")?),
            None => None,
        };
        let target = match self.kind {
            SinkKind::Telegram => Target::Telegram {
                api_base: self.api_base.trim_end_matches('/').to_string(),
                token: bearer.ok_or_else(|| ResolveError::MissingEnv {
                    sink: self.name.clone(),
                    var: "<token_env>".into(),
                    key: "token_env",
                })?,
                chat_id: self.chat_id.clone().unwrap_or(ChatId::Id(0)),
            },
            _ => {
                let url = match (&self.url, &self.url_env) {
                    (_, Some(var)) => read(var, "url_env")?,
                    (Some(url), None) => Secret(url.clone()),
                    (None, None) => {
                        return Err(ResolveError::NoUrl {
                            sink: self.name.clone(),
                        })
                    }
                };
                Target::Url { url, bearer }
            }
        };
        Ok(ResolvedSink {
            name: self.name.clone(),
            kind: self.kind,
            target,
            events: self.events.iter().copied().collect(),
            min_interval: self.min_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> NotificationsConfig {
        #[derive(Deserialize)]
        struct Root {
            notifications: NotificationsConfig,
        }
        toml::from_str::<Root>(text).unwrap().notifications
    }

    #[test]
    fn the_summary_time_is_a_string_or_a_toml_time() {
        let at = |c: NotificationsConfig| c.daily_summary.as_deref().and_then(parse_time_of_day);
        let eight = chrono::NaiveTime::from_hms_opt(8, 0, 0);
        assert_eq!(
            at(load("[notifications]\ndaily_summary = \"08:00\"")),
            eight
        );
        assert_eq!(at(load("[notifications]\ndaily_summary = 08:00:00")), eight);
        assert_eq!(load("[notifications]\n").daily_summary, None);
    }

    #[test]
    fn secrets_resolve_from_the_environment_and_print_as_stars() {
        let c = load(
            "[[notifications.sinks]]\nname = \"t\"\nkind = \"telegram\"\ntoken_env = \"TG\"\nchat_id = \"@ops\"\n",
        );
        let mut issues = Issues::default();
        c.validate("notifications", &mut issues);
        assert!(issues.is_empty(), "{:?}", issues.0);
        let env = |k: &str| (k == "TG").then(|| "123:SECRET".to_string());
        let sinks = c.resolve(&env).unwrap();
        assert_eq!(sinks[0].events.len(), EventKind::CONFIGURABLE.len());
        let shown = format!("{:?}", sinks[0]);
        assert!(
            !shown.contains("SECRET") && shown.contains("***"),
            "{shown}"
        );
        let mut issues = Issues::default();
        c.check_env("notifications", &|_| None, &mut issues);
        assert_eq!(issues.0.len(), 1);
        assert_eq!(issues.0[0].key, "notifications.sinks[0].token_env");
        assert!(matches!(
            c.resolve(&|_| None),
            Err(ResolveError::MissingEnv { ref var, .. }) if var == "TG"
        ));
    }
}
