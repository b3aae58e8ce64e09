//! The [`Signal`] type: what one agent (or an operator's script) tells the others about a
//! symbol, its [`SignalKind`] and [`Direction`], and the validation every signal passes on
//! publish ([`SignalInput::validate`]).
//!
//! Owns: the kinds, the bounds (evidence length, TTL, confidence), the wire spelling of
//! each field, and the typed [`SignalError`] that names the field at fault. Never: stores
//! or delivers a signal (the bus does), or reads a clock itself (the caller passes `now`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::Millis;

/// Longest evidence text, in characters: enough for a model's reason or a headline with
/// its link, short enough that a prompt with a dozen signals stays small.
pub const MAX_EVIDENCE_CHARS: usize = 1000;
/// Longest TTL a signal may ask for: a signal is news about the market, not a setting.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest symbol and source name.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest name of an `other:<name>` kind.
pub const MAX_KIND_NAME_CHARS: usize = 32;

/// What a signal is about. `other:<name>` lets a new agent kind publish before this enum
/// knows it; the name is 1 to 32 characters of `a-z`, `0-9`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    Sentiment,
    Funding,
    OpenInterest,
    Liquidations,
    Whale,
    Technical,
    News,
    Other(String),
}

/// The built-in kinds as written on the wire, for messages.
pub const KINDS: &str =
    "sentiment, funding, open_interest, liquidations, whale, technical, news, other:<name>";

impl SignalKind {
    pub fn as_str(&self) -> &str {
        match self {
            SignalKind::Sentiment => "sentiment",
            SignalKind::Funding => "funding",
            SignalKind::OpenInterest => "open_interest",
            SignalKind::Liquidations => "liquidations",
            SignalKind::Whale => "whale",
            SignalKind::Technical => "technical",
            SignalKind::News => "news",
            SignalKind::Other(_) => "other",
        }
    }

    /// The metric label: the built-in name, or `other:<name>`.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalKind::Other(name) => write!(f, "other:{name}"),
            k => f.write_str(k.as_str()),
        }
    }
}

impl FromStr for SignalKind {
    type Err = SignalError;

    /// Case-insensitive; `open-interest` is accepted for `open_interest`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "sentiment" => SignalKind::Sentiment,
            "funding" => SignalKind::Funding,
            "open_interest" | "open-interest" => SignalKind::OpenInterest,
            "liquidations" => SignalKind::Liquidations,
            "whale" => SignalKind::Whale,
            "technical" => SignalKind::Technical,
            "news" => SignalKind::News,
            other => match other.strip_prefix("other:") {
                Some(name)
                    if !name.is_empty()
                        && name.len() <= MAX_KIND_NAME_CHARS
                        && name.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                        }) =>
                {
                    SignalKind::Other(name.to_string())
                }
                Some(_) => {
                    return Err(SignalError::BadOtherKind {
                        kind: s.to_string(),
                    })
                }
                None => {
                    return Err(SignalError::UnknownKind {
                        kind: s.to_string(),
                    })
                }
            },
        })
    }
}

impl Serialize for SignalKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignalKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which way a signal leans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Long,
    Short,
    Neutral,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Long => "long",
            Direction::Short => "short",
            Direction::Neutral => "neutral",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = SignalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "long" => Ok(Direction::Long),
            "short" => Ok(Direction::Short),
            "neutral" => Ok(Direction::Neutral),
            _ => Err(SignalError::BadDirection {
                direction: s.to_string(),
            }),
        }
    }
}

/// A published signal, as the bus keeps, delivers and lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Time-ordered unique id (UUID v7, simple form).
    pub id: String,
    /// The agent (or external source) that published it.
    pub source: String,
    /// Upper-case symbol, as agents name it (`BTC`).
    pub symbol: String,
    pub kind: SignalKind,
    /// The measurement itself (a sentiment score, a funding rate, a liquidation volume in
    /// USD, ...); what it means depends on the kind.
    pub value: Decimal,
    pub direction: Direction,
    /// 0 to 1.
    pub confidence: f64,
    /// Why: a model's reason, a headline. At most [`MAX_EVIDENCE_CHARS`] characters.
    pub evidence: String,
    /// When it was published, in ms since the Unix epoch (the bus's clock).
    pub time_ms: Millis,
    /// How long it stays relevant, in milliseconds.
    pub ttl_ms: u64,
}

impl crate::store::Record for Signal {}

impl Signal {
    /// When it stops being listed or delivered.
    pub fn expires_ms(&self) -> Millis {
        self.time_ms
            .saturating_add(Millis::try_from(self.ttl_ms).unwrap_or(Millis::MAX))
    }

    pub fn is_expired(&self, now_ms: Millis) -> bool {
        now_ms >= self.expires_ms()
    }

    /// Its key in the `signals` tree: time first, so keys sort oldest first.
    pub fn key(&self) -> String {
        format!("{:013}-{}", self.time_ms.max(0), self.id)
    }
}

/// A signal as its publisher writes it (the body of `POST /api/signals`): the bus adds
/// the id and the time, and the TTL defaults to `[signals] default_ttl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalInput {
    pub source: String,
    pub symbol: String,
    /// Read as text so an unknown kind is this module's typed error, not serde's.
    pub kind: String,
    #[serde(default)]
    pub value: Decimal,
    pub direction: String,
    pub confidence: f64,
    #[serde(default)]
    pub evidence: String,
    /// A duration such as `1h` or `90s`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
}

/// Why a signal was refused; [`SignalError::field`] names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    #[error("unknown signal kind `{kind}`; one of {KINDS}")]
    UnknownKind { kind: String },
    #[error("signal kind `{kind}`: the name after `other:` must be 1 to {MAX_KIND_NAME_CHARS} characters of a-z, 0-9, _ and -")]
    BadOtherKind { kind: String },
    #[error("direction `{direction}` is not long, short or neutral")]
    BadDirection { direction: String },
    #[error("confidence {confidence} is out of range; a number from 0 to 1")]
    Confidence { confidence: f64 },
    #[error("symbol is empty; name the symbol the signal is about (e.g. BTC)")]
    EmptySymbol,
    #[error(
        "{field} `{value}` is not 1 to {MAX_NAME_CHARS} characters of A-Z, a-z, 0-9, -, _, . and :"
    )]
    BadName { field: &'static str, value: String },
    #[error("evidence is {chars} characters long; at most {MAX_EVIDENCE_CHARS}")]
    EvidenceTooLong { chars: usize },
    #[error(
        "ttl {ttl} is out of range; a duration from 1s to {}",
        humantime::format_duration(MAX_TTL)
    )]
    Ttl { ttl: String },
}

impl SignalError {
    /// The input field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            SignalError::UnknownKind { .. } | SignalError::BadOtherKind { .. } => "kind",
            SignalError::BadDirection { .. } => "direction",
            SignalError::Confidence { .. } => "confidence",
            SignalError::EmptySymbol => "symbol",
            SignalError::BadName { field, .. } => field,
            SignalError::EvidenceTooLong { .. } => "evidence",
            SignalError::Ttl { .. } => "ttl",
        }
    }
}

fn check_name(field: &'static str, value: &str) -> Result<(), SignalError> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_NAME_CHARS
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(SignalError::BadName {
            field,
            value: value.to_string(),
        })
    }
}

/// Checks a TTL against the bounds every signal shares.
pub fn check_ttl(ttl: Duration) -> Result<(), SignalError> {
    if ttl >= Duration::from_secs(1) && ttl <= MAX_TTL {
        Ok(())
    } else {
        Err(SignalError::Ttl {
            ttl: humantime::format_duration(ttl).to_string(),
        })
    }
}

impl SignalInput {
    /// The signal this input describes, published at `now_ms`, or the first field at
    /// fault. The symbol is trimmed and upper-cased; text fields are trimmed.
    pub fn validate(&self, now_ms: Millis, default_ttl: Duration) -> Result<Signal, SignalError> {
        let symbol = self.symbol.trim().to_ascii_uppercase();
        if symbol.is_empty() {
            return Err(SignalError::EmptySymbol);
        }
        check_name("symbol", &symbol)?;
        let source = self.source.trim().to_string();
        check_name("source", &source)?;
        let kind: SignalKind = self.kind.parse()?;
        let direction: Direction = self.direction.parse()?;
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(SignalError::Confidence {
                confidence: self.confidence,
            });
        }
        let evidence = self.evidence.trim().to_string();
        let chars = evidence.chars().count();
        if chars > MAX_EVIDENCE_CHARS {
            return Err(SignalError::EvidenceTooLong { chars });
        }
        let ttl = self.ttl.unwrap_or(default_ttl);
        check_ttl(ttl)?;
        Ok(Signal {
            id: uuid::Uuid::now_v7().simple().to_string(),
            source,
            symbol,
            kind,
            value: self.value,
            direction,
            confidence: self.confidence,
            evidence,
            time_ms: now_ms,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// A signal as a trading agent's prompt and structured context carry it: what it says and
/// how old it is when the agent asked, so a rules engine and a model read the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentSignal {
    pub kind: SignalKind,
    pub source: String,
    pub direction: Direction,
    pub confidence: f64,
    pub value: Decimal,
    pub evidence: String,
    /// Age when the context was built, in whole seconds.
    pub age_secs: u64,
}

impl RecentSignal {
    pub fn of(signal: &Signal, now_ms: Millis) -> Self {
        Self {
            kind: signal.kind.clone(),
            source: signal.source.clone(),
            direction: signal.direction,
            confidence: signal.confidence,
            value: signal.value,
            evidence: signal.evidence.clone(),
            age_secs: u64::try_from((now_ms - signal.time_ms).max(0) / 1000).unwrap_or(0),
        }
    }
}
