//! Fetching one source: a conditional GET with a deadline, or a local file.
//!
//! Owns: the request (`If-None-Match` / `If-Modified-Since` from the validators the source
//! last answered with), the deadline and the body-size bound, what counts as "not
//! modified" (HTTP 304; for a `file://` source, an unchanged modification time), and the
//! typed error with its metric label. Never: parses the body, or stores the validators —
//! the agent stores them only after the body was parsed, so a feed that failed to parse
//! is fetched in full again next time.

use std::time::{Duration, SystemTime};

use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};

use super::config::SourceConfig;

/// What a source answered last time, sent back on the next request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The result of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The source has nothing new since the validators sent (HTTP 304).
    NotModified,
    /// A new body, with the validators to send next time.
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// Why a fetch failed; [`FetchError::kind`] is the `kind` label of
/// `orrery_news_fetch_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("source `{source_name}`: no answer within {timeout:?}")]
    Timeout {
        source_name: String,
        timeout: Duration,
    },
    #[error("source `{source_name}`: request failed: {message}")]
    Transport {
        source_name: String,
        message: String,
    },
    #[error("source `{source_name}`: HTTP {status}")]
    Status { source_name: String, status: u16 },
    #[error("source `{source_name}`: body larger than max_bytes ({max_bytes} bytes)")]
    TooLarge {
        source_name: String,
        max_bytes: usize,
    },
    #[error("source `{source_name}`: cannot read {path}: {message}")]
    File {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("source `{source_name}`: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
}

impl FetchError {
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout { .. } => "timeout",
            FetchError::Transport { .. } => "transport",
            FetchError::Status { .. } => "http_status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::File { .. } => "file",
            FetchError::Parse { .. } => "parse",
        }
    }

    /// Every `kind` label, so the series exist from start.
    pub const KINDS: &'static [&'static str] = &[
        "timeout",
        "transport",
        "http_status",
        "too_large",
        "file",
        "parse",
    ];
}

/// `url` as shown to people: without its query string, which may carry a key.
pub fn display_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// The HTTP client of one agent (one per agent, connection reuse across polls).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("orrery/", env!("CARGO_PKG_VERSION"), " (news)"))
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// Fetches `source`, sending `validators`; the whole fetch (connect, headers and body)
/// is bounded by the source's `timeout`.
pub async fn fetch(
    client: &reqwest::Client,
    source: &SourceConfig,
    validators: &Validators,
) -> Result<Fetched, FetchError> {
    let work = async {
        match source.url.strip_prefix("file://") {
            Some(path) => fetch_file(source, path, validators).await,
            None => fetch_http(client, source, validators).await,
        }
    };
    match tokio::time::timeout(source.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout {
            source_name: source.name.clone(),
            timeout: source.timeout,
        }),
    }
}

async fn fetch_http(
    client: &reqwest::Client,
    source: &SourceConfig,
    validators: &Validators,
) -> Result<Fetched, FetchError> {
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            // reqwest's own per-request timeout (the same deadline) fired first.
            FetchError::Timeout {
                source_name: source.name.clone(),
                timeout: source.timeout,
            }
        } else {
            FetchError::Transport {
                source_name: source.name.clone(),
                // Without the URL: a query string may carry a key, and this text is
                // logged and kept as the source's last error.
                message: with_causes(&e.without_url()),
            }
        }
    };
    let mut req = client.get(&source.url).timeout(source.timeout);
    if let Some(etag) = &validators.etag {
        req = req.header(IF_NONE_MATCH, etag);
    }
    if let Some(lm) = &validators.last_modified {
        req = req.header(IF_MODIFIED_SINCE, lm);
    }
    let mut resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    if status == 304 {
        return Ok(Fetched::NotModified);
    }
    if !(200..300).contains(&status) {
        return Err(FetchError::Status {
            source_name: source.name.clone(),
            status,
        });
    }
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let validators = Validators {
        etag: header(ETAG),
        last_modified: header(LAST_MODIFIED),
    };
    let bytes = match crate::agents::http_body::read_bounded(&mut resp, source.max_bytes).await {
        Ok(bytes) => bytes,
        Err(crate::agents::http_body::BodyError::TooLarge) => {
            return Err(FetchError::TooLarge {
                source_name: source.name.clone(),
                max_bytes: source.max_bytes,
            })
        }
        Err(crate::agents::http_body::BodyError::Transport(e)) => return Err(transport(e)),
    };
    Ok(Fetched::Body { bytes, validators })
}

/// An error with its causes (reqwest's own text is only "error sending request").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A local file: its modification time (as an HTTP date) plays `Last-Modified`.
async fn fetch_file(
    source: &SourceConfig,
    path: &str,
    validators: &Validators,
) -> Result<Fetched, FetchError> {
    let io = |e: std::io::Error| FetchError::File {
        source_name: source.name.clone(),
        path: path.to_string(),
        message: e.to_string(),
    };
    let meta = tokio::fs::metadata(path).await.map_err(io)?;
    let modified = meta
        .modified()
        .ok()
        .map(|t: SystemTime| httpdate::fmt_http_date(t));
    if modified.is_some() && modified == validators.last_modified {
        return Ok(Fetched::NotModified);
    }
    if meta.len() > source.max_bytes as u64 {
        return Err(FetchError::TooLarge {
            source_name: source.name.clone(),
            max_bytes: source.max_bytes,
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(io)?;
    Ok(Fetched::Body {
        bytes,
        validators: Validators {
            etag: None,
            last_modified: modified,
        },
    })
}
