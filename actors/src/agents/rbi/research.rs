//! Reading research: a local file, or a URL fetched over HTTP with a deadline, a size cap
//! and a bounded number of redirects; HTML reduced to its text.
//!
//! Owns: what a source string means (`http://` / `https://` is a URL, anything else a
//! file path), the fetch (one deadline over connect, redirects and body; a body over
//! `max_bytes` refused, not cut), which content types are research (`text/*`, JSON, XML,
//! none given), and the HTML → text reduction. Never: follows links, runs scripts, or
//! keeps the text (the pipeline stores its hash and an excerpt).
//!
//! The reduction is hand-written (about 80 lines) rather than a crate: the research only
//! has to be readable by a model, not rendered, and the HTML parsers on crates.io
//! (html5ever and its users) would add a large dependency tree for that. It drops
//! `<script>`, `<style>`, `<noscript>`, `<svg>`, `<head>` and comments, turns block tags into
//! line breaks, decodes the common entities and numeric references, and folds whitespace
//! (blank lines dropped).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::FetchLimits;
use crate::strategies::library::ResearchSource;

/// Where research comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Url(String),
    /// Given as text (tests, the API's inline research); `label` names it in the record.
    Inline {
        label: String,
        text: String,
    },
}

impl Source {
    /// `http://` or `https://`: a URL; anything else: a file path.
    pub fn parse(s: &str) -> Self {
        let lower = s.trim().to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Source::Url(s.trim().to_string())
        } else {
            Source::File(PathBuf::from(s.trim()))
        }
    }

    /// As the library records it (a URL is redacted by the library).
    pub fn as_record(&self) -> ResearchSource {
        match self {
            Source::File(p) => ResearchSource::File(p.display().to_string()),
            Source::Url(u) => ResearchSource::Url(u.clone()),
            Source::Inline { .. } => ResearchSource::Inline,
        }
    }

    /// For log lines and prompts: a URL without its query (which may carry a key).
    pub fn display(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Url(u) => crate::strategies::library::redact_url(u),
            Source::Inline { label, .. } => label.clone(),
        }
    }

    /// A strategy-name stem for an attempt that never got a spec name: the file stem or
    /// the URL's last path segment, as `[a-z0-9_]`.
    pub fn stem(&self) -> String {
        let raw = match self {
            Source::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Source::Url(u) => reqwest::Url::parse(u)
                .ok()
                .and_then(|u| {
                    u.path_segments()
                        .and_then(|mut s| s.rfind(|x| !x.is_empty()).map(str::to_string))
                        .or_else(|| u.host_str().map(str::to_string))
                })
                .unwrap_or_default(),
            Source::Inline { label, .. } => label.clone(),
        };
        let mut out: String = raw
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        out = out.trim_matches('_').to_string();
        if out.is_empty() {
            "research".into()
        } else {
            out
        }
    }
}

/// Why research could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResearchError {
    #[error("research file {path}: {message}")]
    File { path: String, message: String },
    #[error("research file {path} is larger than fetch.max_bytes ({max_bytes} bytes)")]
    FileTooLarge { path: String, max_bytes: usize },
    #[error("research URL {url}: no complete answer within {timeout:?} (fetch.timeout)")]
    Timeout { url: String, timeout: Duration },
    #[error("research URL {url}: {message}")]
    Transport { url: String, message: String },
    #[error("research URL {url}: more than {max} redirects (fetch.max_redirects)")]
    TooManyRedirects { url: String, max: usize },
    #[error("research URL {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("research URL {url}: body larger than fetch.max_bytes ({max_bytes} bytes)")]
    TooLarge { url: String, max_bytes: usize },
    #[error("research URL {url}: content type `{content_type}` is not text; give a text, Markdown or HTML page")]
    NotText { url: String, content_type: String },
    #[error("research from {source_name} is empty")]
    Empty { source_name: String },
}

/// The HTTP client of one pipeline: redirects bounded by `limits`.
pub fn client(limits: &FetchLimits) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("orrery/", env!("CARGO_PKG_VERSION"), " (research)"))
        .redirect(reqwest::redirect::Policy::limited(limits.max_redirects))
        .connect_timeout(limits.timeout.min(Duration::from_secs(10)))
        .build()
}

/// The research text of `source`, HTML reduced, never more than `limits.max_bytes` read.
pub async fn read(
    client: &reqwest::Client,
    source: &Source,
    limits: &FetchLimits,
) -> Result<String, ResearchError> {
    let text = match source {
        Source::Inline { text, .. } => text.clone(),
        Source::File(path) => read_file(path, limits).await?,
        Source::Url(url) => fetch_url(client, url, limits).await?,
    };
    if text.trim().is_empty() {
        return Err(ResearchError::Empty {
            source_name: source.display(),
        });
    }
    Ok(text)
}

async fn read_file(path: &Path, limits: &FetchLimits) -> Result<String, ResearchError> {
    let shown = path.display().to_string();
    let file_err = |e: std::io::Error| ResearchError::File {
        path: shown.clone(),
        message: e.to_string(),
    };
    let meta = tokio::fs::metadata(path).await.map_err(file_err)?;
    if meta.len() > limits.max_bytes as u64 {
        return Err(ResearchError::FileTooLarge {
            path: shown,
            max_bytes: limits.max_bytes,
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(file_err)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let html = matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("html" | "htm")
    );
    Ok(if html { html_to_text(&text) } else { text })
}

async fn fetch_url(
    client: &reqwest::Client,
    url: &str,
    limits: &FetchLimits,
) -> Result<String, ResearchError> {
    let shown = crate::strategies::library::redact_url(url);
    let work = async {
        let transport = |e: reqwest::Error| {
            if e.is_redirect() {
                ResearchError::TooManyRedirects {
                    url: shown.clone(),
                    max: limits.max_redirects,
                }
            } else {
                // Without the URL: reqwest's text repeats it, query and all.
                ResearchError::Transport {
                    url: shown.clone(),
                    message: e.without_url().to_string(),
                }
            }
        };
        let mut resp = client.get(url).send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ResearchError::Status {
                url: shown.clone(),
                status: status.as_u16(),
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_html = content_type.contains("html");
        let is_text = content_type.is_empty()
            || content_type.starts_with("text/")
            || content_type.contains("json")
            || content_type.contains("xml")
            || content_type.contains("markdown");
        if !is_text {
            return Err(ResearchError::NotText {
                url: shown.clone(),
                content_type,
            });
        }
        let body = match crate::agents::http_body::read_bounded(&mut resp, limits.max_bytes).await {
            Ok(body) => body,
            Err(crate::agents::http_body::BodyError::TooLarge) => {
                return Err(ResearchError::TooLarge {
                    url: shown.clone(),
                    max_bytes: limits.max_bytes,
                })
            }
            Err(crate::agents::http_body::BodyError::Transport(e)) => return Err(transport(e)),
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        Ok(if is_html { html_to_text(&text) } else { text })
    };
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ResearchError::Timeout {
            url: shown,
            timeout: limits.timeout,
        }),
    }
}

/// Tags whose content is not text.
const SKIPPED: [&str; 6] = ["script", "style", "noscript", "svg", "head", "template"];
/// Tags that start a new line.
const BLOCKS: [&str; 22] = [
    "p",
    "br",
    "div",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "hr",
    "title",
];

/// The readable text of an HTML document (see the module docs).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with('<') {
            let Some(end) = rest.find('>') else {
                break;
            };
            let tag = &lower[i + 1..i + end];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            i += end + 1;
            if !tag.starts_with('/') && !tag.ends_with('/') && SKIPPED.contains(&name.as_str()) {
                // Skip to the matching close tag (these do not nest in practice).
                let close = format!("</{name}");
                i = lower[i..].find(&close).map_or(html.len(), |p| {
                    let after = i + p;
                    after
                        + lower[after..]
                            .find('>')
                            .map_or(lower.len() - after, |e| e + 1)
                });
                continue;
            }
            if BLOCKS.contains(&name.as_str()) {
                out.push('\n');
            } else {
                out.push(' ');
            }
            continue;
        }
        let next = rest.find('<').unwrap_or(rest.len());
        out.push_str(&decode_entities(&rest[..next]));
        i += next;
    }
    fold_whitespace(&out)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[..rest.len().min(12)].find(';');
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Spaces folded within lines, blank lines dropped, edges trimmed.
fn fold_whitespace(s: &str) -> String {
    s.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
