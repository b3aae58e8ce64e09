//! Reading headlines out of a fetched body: RSS and Atom through `feed-rs`, JSON through
//! the source's JSON pointers.
//!
//! Owns: what a [`RawItem`] is (id, title, link, publication time) and how each format
//! maps to it — the id is the item's own id (RSS `guid`, Atom `id`, the JSON `id`
//! pointer), else its link, else its title; an item without a title is skipped (nothing to
//! score). Never: hand-parses XML, or decides what is new (the seen-set does).

use chrono::{DateTime, Utc};
use feed_rs::model::FeedType;

use super::config::{SourceConfig, SourceKind};
use super::fetch::FetchError;

/// One item of a source, as every format gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawItem {
    /// The dedup key: id, else link, else title.
    pub id: String,
    pub title: String,
    pub link: Option<String>,
    /// Unix ms; `None` when the source gave no (readable) time.
    pub published_ms: Option<i64>,
}

/// The items of `body`, in document order; a body that is not what `source.kind` says is
/// a [`FetchError::Parse`].
pub fn items(source: &SourceConfig, body: &[u8]) -> Result<Vec<RawItem>, FetchError> {
    match source.kind {
        SourceKind::Rss | SourceKind::Atom => feed_items(source, body),
        SourceKind::Json => json_items(source, body),
    }
}

fn parse_error(source: &SourceConfig, message: impl Into<String>) -> FetchError {
    FetchError::Parse {
        source_name: source.name.clone(),
        message: message.into(),
    }
}

fn feed_items(source: &SourceConfig, body: &[u8]) -> Result<Vec<RawItem>, FetchError> {
    // No generated ids: an item without its own id is keyed by its link (or title) here,
    // which stays the same across polls; feed-rs would otherwise invent a UUID.
    let parser = feed_rs::parser::Builder::new()
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser.parse(body).map_err(|e| {
        parse_error(
            source,
            format!("not a readable {} feed: {e}", source.kind.as_str()),
        )
    })?;
    let served = match feed.feed_type {
        FeedType::Atom => SourceKind::Atom,
        FeedType::RSS0 | FeedType::RSS1 | FeedType::RSS2 => SourceKind::Rss,
        FeedType::JSON => SourceKind::Json,
    };
    if served != source.kind {
        return Err(parse_error(
            source,
            format!(
                "configured kind = \"{}\" but the source served {} (set kind = \"{}\")",
                source.kind.as_str(),
                served.as_str(),
                served.as_str()
            ),
        ));
    }
    Ok(feed
        .entries
        .into_iter()
        .filter_map(|e| {
            let title = e
                .title
                .map(|t| clean(&t.content))
                .filter(|t| !t.is_empty())?;
            let link = e.links.first().map(|l| l.href.trim().to_string());
            let published = e.published.or(e.updated);
            Some(RawItem {
                id: key(Some(e.id.trim()), link.as_deref(), &title),
                title,
                link,
                published_ms: published.map(|t| t.timestamp_millis()),
            })
        })
        .collect())
}

/// Collapses whitespace (feeds wrap titles across lines).
fn clean(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn key(id: Option<&str>, link: Option<&str>, title: &str) -> String {
    id.filter(|s| !s.is_empty())
        .or(link.filter(|s| !s.is_empty()))
        .unwrap_or(title)
        .to_string()
}

fn json_items(source: &SourceConfig, body: &[u8]) -> Result<Vec<RawItem>, FetchError> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| parse_error(source, format!("not JSON: {e}")))?;
    let pointer = source.items.as_deref().unwrap_or("");
    let array = doc
        .pointer(pointer)
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| {
            parse_error(
                source,
                format!("no array of items at JSON pointer `{pointer}` (the source's `items`)"),
            )
        })?;
    let text = |item: &serde_json::Value, p: &Option<String>, default: &str| -> Option<String> {
        match item.pointer(p.as_deref().unwrap_or(default))? {
            serde_json::Value::String(s) => Some(clean(s)),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
        .filter(|s| !s.is_empty())
    };
    Ok(array
        .iter()
        .filter_map(|item| {
            let title = text(item, &source.title, "/title")?;
            let link = text(item, &source.link, "/url");
            let id = text(item, &source.id, "/id");
            let published_ms = item
                .pointer(source.published.as_deref().unwrap_or("/published"))
                .and_then(json_time);
            Some(RawItem {
                id: key(id.as_deref(), link.as_deref(), &title),
                title,
                link,
                published_ms,
            })
        })
        .collect())
}

/// An RFC 3339 string, or Unix seconds (a number, or a string of digits).
fn json_time(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().map(|s| s.saturating_mul(1000)),
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc).timestamp_millis())
            .ok()
            .or_else(|| s.trim().parse::<i64>().ok().map(|x| x.saturating_mul(1000))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    pub(crate) fn source(kind: SourceKind) -> SourceConfig {
        SourceConfig {
            name: "wire".into(),
            kind,
            url: "http://127.0.0.1:1/feed".into(),
            poll_interval: Duration::from_secs(60),
            max_items_per_poll: 50,
            timeout: Duration::from_secs(5),
            max_bytes: 1 << 20,
            items: (kind == SourceKind::Json).then(|| "/data/items".into()),
            id: None,
            title: Some("/headline".into()).filter(|_| kind == SourceKind::Json),
            link: None,
            published: None,
        }
    }

    #[test]
    fn rss_items_keyed_by_guid_else_link() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://news.example/</link><description>d</description>
<item><title>Bitcoin ETF inflows hit a record</title><link>https://news.example/a</link><guid isPermaLink="false">a-1</guid><pubDate>Thu, 03 Dec 2026 09:00:00 GMT</pubDate></item>
<item><title>  Ether
   slumps </title><link>https://news.example/b</link></item>
<item><link>https://news.example/untitled</link></item>
</channel></rss>"#;
        let got = items(&source(SourceKind::Rss), body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "a-1");
        assert_eq!(got[0].title, "Bitcoin ETF inflows hit a record");
        assert_eq!(got[0].published_ms, Some(1_796_288_400_000));
        assert_eq!(got[1].id, "https://news.example/b");
        assert_eq!(got[1].title, "Ether slumps");
    }

    #[test]
    fn atom_served_for_rss_or_garbage_is_a_parse_error() {
        let atom = br#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>W</title><id>urn:w</id><updated>2026-12-03T09:00:00Z</updated>
<entry><title>Solana surges</title><id>urn:w:1</id><updated>2026-12-03T09:00:00Z</updated><link href="https://w/1"/></entry></feed>"#;
        let got = items(&source(SourceKind::Atom), atom).unwrap();
        assert_eq!(got[0].id, "urn:w:1");
        let e = items(&source(SourceKind::Rss), atom).unwrap_err();
        assert_eq!(e.kind(), "parse");
        assert!(e.to_string().contains("kind = \"atom\""), "{e}");
        let e = items(&source(SourceKind::Rss), b"<rss><channel><item>").unwrap_err();
        assert_eq!(e.kind(), "parse");
    }

    #[test]
    fn json_items_by_pointer() {
        let body = br#"{"data":{"items":[
            {"id": 7, "headline": "Bitcoin rallies", "url": "https://j/7", "published": "2026-12-03T09:00:00Z"},
            {"headline": "Ether drops", "url": "https://j/8", "published": 1796288400},
            {"id": "x"}
        ]}}"#;
        let got = items(&source(SourceKind::Json), body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "7");
        assert_eq!(got[0].published_ms, Some(1_796_288_400_000));
        assert_eq!(got[1].id, "https://j/8");
        assert_eq!(got[1].published_ms, Some(1_796_288_400_000));
        let e = items(&source(SourceKind::Json), br#"{"data":{}}"#).unwrap_err();
        assert!(e.to_string().contains("/data/items"), "{e}");
        assert_eq!(
            items(&source(SourceKind::Json), b"{not json")
                .unwrap_err()
                .kind(),
            "parse"
        );
    }
}
