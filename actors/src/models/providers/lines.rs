//! Push-based framing of streamed bodies: a line splitter (for NDJSON) and a Server-Sent
//! Events decoder on top of it.
//!
//! Owns: turning arbitrary byte chunks into complete lines and SSE events. Never does:
//! interpreting the JSON inside them.
//!
//! Hand-written rather than `eventsource-stream` because (1) the parsers here are pure and
//! push-based (`feed(chunk)`), so the pool can drive them from any loop and tests need no
//! runtime, while `eventsource-stream` is a pull `Stream` adapter; (2) at end of body
//! `eventsource-stream` silently drops a final event that lacks its blank line, and the
//! recorded Anthropic stream ends exactly so (`data: {"type":"message_stop"}` with no
//! newline), which would turn a complete answer into a false "truncated"; (3) its buffer
//! grows without bound, and we need the [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) guard.
//!
//! Chunk boundaries: lines are cut on the bytes `\n`, `\r` and `\r\n`, which never occur
//! inside a multi-byte UTF-8 sequence, so bytes are buffered until a line is complete and
//! only complete lines are decoded; a `\r` at the end of one chunk and `\n` at the start of
//! the next count as one line end.

/// Why framing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// More than the byte limit in total.
    TooLarge { limit: usize },
    /// A complete line is not UTF-8.
    NotUtf8 { line_start: String },
    /// A line that is no SSE field but markup or JSON: the body is an HTML page (a proxy,
    /// a captive portal) or a plain JSON document, not an event stream.
    NotEventStream { line: String },
}

impl FramingError {
    pub fn into_wire(self, provider: super::ProviderKind) -> super::ProviderWireError {
        match self {
            FramingError::TooLarge { limit } => {
                super::ProviderWireError::BodyTooLarge { provider, limit }
            }
            FramingError::NotUtf8 { line_start } => super::ProviderWireError::Malformed {
                provider,
                what: "a line that is not UTF-8",
                detail: format!("line starts `{line_start}`"),
            },
            FramingError::NotEventStream { line } => super::wire::not_a_stream(provider, &line),
        }
    }
}

/// Splits a byte stream into lines (without terminators).
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` now belongs to that line end.
    skip_lf: bool,
    total: usize,
    limit: usize,
}

impl LineSplitter {
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            skip_lf: false,
            total: 0,
            limit,
        }
    }

    /// Complete lines this chunk finishes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, FramingError> {
        self.total = self.total.saturating_add(chunk.len());
        if self.total > self.limit {
            return Err(FramingError::TooLarge { limit: self.limit });
        }
        let mut lines = Vec::new();
        let mut rest = chunk;
        if self.skip_lf && !rest.is_empty() {
            self.skip_lf = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.buf.extend_from_slice(&rest[..pos]);
            lines.push(take_line(&mut self.buf)?);
            let terminator = rest[pos];
            rest = &rest[pos + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.buf.extend_from_slice(rest);
        Ok(lines)
    }

    /// The unterminated last line, if the body did not end with a line end.
    pub fn finish(&mut self) -> Result<Option<String>, FramingError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        take_line(&mut self.buf).map(Some)
    }
}

fn take_line(buf: &mut Vec<u8>) -> Result<String, FramingError> {
    let bytes = std::mem::take(buf);
    String::from_utf8(bytes).map_err(|err| FramingError::NotUtf8 {
        line_start: String::from_utf8_lossy(&err.as_bytes()[..err.as_bytes().len().min(60)])
            .into_owned(),
    })
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Server-Sent Events decoding per the WHATWG algorithm: `field: value` lines, one leading
/// space stripped from the value, `data` lines joined by `\n`, comments (`:`) ignored,
/// dispatch on a blank line, events with no data dropped. `id` and `retry` are ignored (no
/// reconnection here: a model answer cannot be resumed).
#[derive(Debug)]
pub struct SseDecoder {
    lines: LineSplitter,
    event: Option<String>,
    data: String,
    has_data: bool,
    first_line: bool,
}

impl SseDecoder {
    pub fn new(limit: usize) -> Self {
        Self {
            lines: LineSplitter::new(limit),
            event: None,
            data: String::new(),
            has_data: false,
            first_line: true,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, FramingError> {
        let lines = self.lines.push(chunk)?;
        let mut events = Vec::new();
        for line in lines {
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// End of body. Unlike a browser, a final event whose blank line never came is still
    /// dispatched: the body ended cleanly, and whether the answer is complete is decided by
    /// the format's terminal event, not by framing.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, FramingError> {
        let mut last = None;
        if let Some(line) = self.lines.finish()? {
            last = self.line(&line)?;
        }
        if last.is_none() {
            last = self.dispatch();
        }
        Ok(last)
    }

    fn line(&mut self, line: &str) -> Result<Option<SseEvent>, FramingError> {
        let line = if self.first_line {
            self.first_line = false;
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            // The spec ignores unknown fields, but no provider sends any; a "field" that
            // opens with markup or JSON means the body is not an event stream at all.
            other if other.trim_start().starts_with(['<', '{', '[']) => {
                return Err(FramingError::NotEventStream {
                    line: line.chars().take(2000).collect(),
                })
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

/// SSE framing: each unit is one event's `data`.
impl super::framed::Framing for SseDecoder {
    fn units(&mut self, chunk: &[u8]) -> Result<Vec<String>, FramingError> {
        Ok(self.push(chunk)?.into_iter().map(|e| e.data).collect())
    }
    fn last_unit(&mut self) -> Result<Option<String>, FramingError> {
        Ok(self.finish()?.map(|e| e.data))
    }
}

/// NDJSON framing: each unit is one line.
impl super::framed::Framing for LineSplitter {
    fn units(&mut self, chunk: &[u8]) -> Result<Vec<String>, FramingError> {
        self.push(chunk)
    }
    fn last_unit(&mut self) -> Result<Option<String>, FramingError> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(input: &[u8], cuts: &[usize]) -> Vec<String> {
        let mut splitter = LineSplitter::new(usize::MAX);
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, input.len());
            out.extend(splitter.push(&input[start..cut]).unwrap());
            start = cut;
        }
        out.extend(splitter.push(&input[start..]).unwrap());
        out.extend(splitter.finish().unwrap());
        out
    }

    #[test]
    fn lines_end_on_lf_cr_and_crlf_even_when_crlf_is_split() {
        let input = b"a\r\nb\rc\n\nd";
        let expected = vec!["a", "b", "c", "", "d"];
        assert_eq!(split_all(input, &[]), expected);
        // The cut falls between `\r` and `\n`: still one line end, not an extra empty line.
        assert_eq!(split_all(input, &[2]), expected);
        assert_eq!(split_all(input, &[1, 2, 3, 5, 6]), expected);
    }

    #[test]
    fn a_multibyte_character_cut_in_half_survives() {
        let input = "data: 👋 hi\n".as_bytes();
        // The emoji is bytes 6..10; cut inside it.
        assert_eq!(split_all(input, &[7, 8]), vec!["data: 👋 hi"]);
    }

    #[test]
    fn invalid_utf8_in_a_complete_line_is_an_error() {
        let mut splitter = LineSplitter::new(1024);
        assert!(matches!(
            splitter.push(b"ok\n\xff\xfe\n"),
            Err(FramingError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn the_byte_limit_counts_all_chunks() {
        let mut splitter = LineSplitter::new(10);
        assert!(splitter.push(b"12345").is_ok());
        assert_eq!(
            splitter.push(b"678901"),
            Err(FramingError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn sse_joins_data_lines_ignores_comments_and_strips_one_space() {
        let mut sse = SseDecoder::new(1 << 20);
        let events = sse
            .push(b": OPENROUTER PROCESSING\n\nevent: x\ndata:  two\ndata:b\nid: 7\n\n")
            .unwrap();
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("x".into()),
                data: " two\nb".into()
            }]
        );
        assert_eq!(sse.finish().unwrap(), None);
    }

    #[test]
    fn sse_dispatches_an_unterminated_final_event_at_end_of_body() {
        let mut sse = SseDecoder::new(1 << 20);
        assert!(sse
            .push(b"event: message_stop\ndata: {}")
            .unwrap()
            .is_empty());
        assert_eq!(
            sse.finish().unwrap(),
            Some(SseEvent {
                event: Some("message_stop".into()),
                data: "{}".into()
            })
        );
    }

    #[test]
    fn an_html_page_is_not_an_event_stream() {
        let mut sse = SseDecoder::new(1 << 20);
        let err = sse
            .push(b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n")
            .unwrap_err();
        assert!(matches!(err, FramingError::NotEventStream { line } if line == "<html>"));
        let mut sse = SseDecoder::new(1 << 20);
        assert!(matches!(
            sse.push(b"{\"error\": {\"message\": \"bad\"}}"),
            Ok(events) if events.is_empty()
        ));
        assert!(matches!(
            sse.finish(),
            Err(FramingError::NotEventStream { .. })
        ));
    }

    proptest! {
        #[test]
        fn splitting_is_independent_of_chunk_boundaries(
            text in "[a-z\r\n é👋]{0,60}",
            cuts in proptest::collection::vec(0usize..80, 0..8),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(split_all(text.as_bytes(), &cuts), split_all(text.as_bytes(), &[]));
        }
    }
}
