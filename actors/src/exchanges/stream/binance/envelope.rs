//! Binance's combined-stream envelope: `{"stream":"<streamName>","data":<rawPayload>}`.
//!
//! Binance documents (spot "WebSocket Streams", and the same for USDⓈ-M futures): "Combined
//! streams are accessed at /stream?streams=<streamName1>/<streamName2>/<streamName3>" and
//! "Events are wrapped as follows: {"stream":"<streamName>","data":<rawPayload>}". The raw
//! payload's shape depends on the stream, and some payloads carry no event type at all (the
//! spot `<symbol>@bookTicker` payload has no `"e"`), so the stream name decides how `data`
//! is read.
//!
//! Owns: reading one envelope in one serde pass — the `stream` name first, then `data`
//! read straight into the payload type the name selects ([`StreamPayload`]); when a
//! sender puts `data` before `stream`, `data` is buffered as a JSON value and read once the
//! name is known. Also the combined-stream URL ([`combined_url`]). Never: I/O, and never a
//! panic on bad input — a frame that is not an envelope, or whose payload does not match
//! its stream, is a `serde_json::Error` the caller turns into a `FrameError`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// A payload type of a combined stream, read according to the stream's name.
pub trait StreamPayload: Sized {
    /// Reads `data` of the stream named `stream` (e.g. `btcusdt@bookTicker`).
    fn from_stream<'de, D: Deserializer<'de>>(stream: &str, data: D) -> Result<Self, D::Error>;
}

/// One combined-stream frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined<T> {
    pub stream: String,
    pub data: T,
}

/// Parses one combined-stream frame.
pub fn parse_combined<T: StreamPayload>(text: &str) -> Result<Combined<T>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let frame = de.deserialize_map(EnvelopeVisitor(PhantomData))?;
    de.end()?;
    Ok(frame)
}

/// `<ws_url>/stream?streams=a/b/c` (stream names as given: Binance wants symbols in lower
/// case, which the caller's names already are).
pub fn combined_url(ws_url: &str, streams: &[String]) -> String {
    format!(
        "{}/stream?streams={}",
        ws_url.trim_end_matches('/'),
        streams.join("/")
    )
}

struct EnvelopeVisitor<T>(PhantomData<T>);

struct PayloadSeed<'s, T> {
    stream: &'s str,
    out: PhantomData<T>,
}

impl<'de, T: StreamPayload> DeserializeSeed<'de> for PayloadSeed<'_, T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::from_stream(self.stream, d)
    }
}

impl<'de, T: StreamPayload> Visitor<'de> for EnvelopeVisitor<T> {
    type Value = Combined<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a combined-stream frame {"stream":...,"data":...}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Combined<T>, A::Error> {
        let mut stream: Option<String> = None;
        let mut data: Option<T> = None;
        // `data` seen before `stream`: kept as a value until the name is known.
        let mut early: Option<serde_json::Value> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "stream" => {
                    if stream.is_some() {
                        return Err(de::Error::duplicate_field("stream"));
                    }
                    stream = Some(map.next_value()?);
                }
                "data" => {
                    if data.is_some() || early.is_some() {
                        return Err(de::Error::duplicate_field("data"));
                    }
                    match &stream {
                        Some(name) => {
                            data = Some(map.next_value_seed(PayloadSeed {
                                stream: name,
                                out: PhantomData,
                            })?)
                        }
                        None => early = Some(map.next_value()?),
                    }
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let stream = stream.ok_or_else(|| de::Error::missing_field("stream"))?;
        let data = match (data, early) {
            (Some(d), _) => d,
            (None, Some(v)) => T::from_stream(&stream, v).map_err(de::Error::custom)?,
            (None, None) => return Err(de::Error::missing_field("data")),
        };
        Ok(Combined { stream, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Ticker {
        s: String,
        b: String,
    }

    #[derive(Debug, PartialEq)]
    enum Payload {
        Ticker(Ticker),
        Other(String),
    }

    impl StreamPayload for Payload {
        fn from_stream<'de, D: Deserializer<'de>>(stream: &str, d: D) -> Result<Self, D::Error> {
            if stream.ends_with("@bookTicker") {
                Ticker::deserialize(d).map(Payload::Ticker)
            } else {
                de::IgnoredAny::deserialize(d)?;
                Ok(Payload::Other(stream.to_string()))
            }
        }
    }

    #[test]
    fn the_stream_name_selects_the_payload_type_in_either_key_order() {
        let a: Combined<Payload> = parse_combined(
            r#"{"stream":"bnbusdt@bookTicker","data":{"u":1,"s":"BNBUSDT","b":"25.35"}}"#,
        )
        .unwrap();
        let b: Combined<Payload> = parse_combined(
            r#"{"data":{"u":1,"s":"BNBUSDT","b":"25.35"},"stream":"bnbusdt@bookTicker"}"#,
        )
        .unwrap();
        let want = Payload::Ticker(Ticker {
            s: "BNBUSDT".into(),
            b: "25.35".into(),
        });
        assert_eq!(a.data, want);
        assert_eq!(b.data, want);
        assert_eq!(a.stream, "bnbusdt@bookTicker");
        let c: Combined<Payload> =
            parse_combined(r#"{"stream":"x@aggTrade","data":{"e":"aggTrade"}}"#).unwrap();
        assert_eq!(c.data, Payload::Other("x@aggTrade".into()));
    }

    #[test]
    fn a_frame_that_is_not_an_envelope_is_an_error() {
        for bad in [
            r#"{"stream":"bnbusdt@bookTicker"}"#,
            r#"{"data":{"s":"X","b":"1"}}"#,
            r#"{"stream":"bnbusdt@bookTicker","data":{"s":"X"}}"#,
            r#"{"stream":"bnbusdt@bookTicker","data":{"s":"X","b":"1"}"#,
            r#"{"result":null,"id":1}"#,
            "[1,2]",
            "",
        ] {
            assert!(parse_combined::<Payload>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn combined_url_joins_stream_names() {
        assert_eq!(
            combined_url(
                "wss://stream.binance.com:9443/",
                &["btcusdt@bookTicker".into(), "btcusdt@aggTrade".into()]
            ),
            "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade"
        );
    }
}
