//! The one skeleton of the framed stream parsers (OpenAI-compatible and Gemini SSE,
//! Ollama NDJSON): [`Framed`] drives a [`Framing`] (SSE events' data, or lines) and a
//! format's [`StreamDecode`] (what one unit means), and implements [`StreamParser`].
//!
//! Owns: the parser's life (spent after its first error, which every later call
//! returns), applying each unit's events to the reply, and the end of the body (a last
//! unit without its terminator is still read; one cut mid-JSON, or no terminal unit at
//! all, is [`ProviderWireError::Truncated`] naming what the format ends with). Never: reads JSON
//! (the decoders do) or frames bytes (see `lines`). Anthropic's parser is not framed
//! here: its event types carry state across events that this shape does not need.

use super::lines::FramingError;
use super::wire::ReplyBuilder;
use super::{ProviderKind, ProviderWireError, Reply, StreamEvent, StreamParser};

/// Cuts a streamed body into units of text.
pub trait Framing: std::fmt::Debug + Send {
    /// The units this chunk completes.
    fn units(&mut self, chunk: &[u8]) -> Result<Vec<String>, FramingError>;
    /// End of body: the last unit, if one was left without its terminator.
    fn last_unit(&mut self) -> Result<Option<String>, FramingError>;
}

/// The events a decoder pushes for one unit.
pub type Events = Vec<StreamEvent>;
/// What reading one unit comes to: its events were pushed, or the stream is unreadable.
pub type Decoded = Result<(), ProviderWireError>;

/// What one format adds to the skeleton.
pub trait StreamDecode: std::fmt::Debug + Send {
    /// The events of one unit, pushed onto `events`; `reply` is the answer so far (before
    /// this unit's events are applied to it; a decoder may note the model in it).
    fn unit(&mut self, data: &str, reply: &mut ReplyBuilder, events: &mut Events) -> Decoded;
    /// Whether the terminal unit was seen.
    fn ended(&self) -> bool;
}

/// A framed stream parser; see the module docs.
#[derive(Debug)]
pub struct Framed<F, D> {
    framing: F,
    decode: D,
    provider: ProviderKind,
    /// What a complete stream ends with, for the truncated error (e.g. "`data: [DONE]`").
    terminal: &'static str,
    reply: ReplyBuilder,
    failed: Option<ProviderWireError>,
}

impl<F: Framing, D: StreamDecode> Framed<F, D> {
    pub(crate) fn with(
        provider: ProviderKind,
        terminal: &'static str,
        framing: F,
        decode: D,
    ) -> Self {
        Self {
            framing,
            decode,
            provider,
            terminal,
            reply: ReplyBuilder::default(),
            failed: None,
        }
    }

    fn fail(&mut self, err: ProviderWireError) -> ProviderWireError {
        self.failed = Some(err.clone());
        err
    }

    /// One unit's events, applied to the reply and appended to `events`.
    fn unit(&mut self, data: &str, events: &mut Vec<StreamEvent>) -> Result<(), ProviderWireError> {
        let from = events.len();
        self.decode.unit(data, &mut self.reply, events)?;
        for event in &events[from..] {
            self.reply.apply(event);
        }
        Ok(())
    }
}

impl<F: Framing, D: StreamDecode> StreamParser for Framed<F, D> {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, ProviderWireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let units = match self.framing.units(chunk) {
            Ok(units) => units,
            Err(err) => {
                let err = err.into_wire(self.provider);
                return Err(self.fail(err));
            }
        };
        let mut events = Vec::new();
        for unit in units {
            if let Err(err) = self.unit(&unit, &mut events) {
                return Err(self.fail(err));
            }
        }
        Ok(events)
    }

    fn finish(&mut self) -> Result<Reply, ProviderWireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let truncated = ProviderWireError::Truncated {
            provider: self.provider,
            expected: self.terminal,
        };
        match self.framing.last_unit() {
            // A cut mid-unit shows up as unparseable JSON at the end: truncated.
            Ok(Some(last)) => {
                if let Err(err) = self.unit(&last, &mut Vec::new()) {
                    let err = err.or_truncated(&truncated);
                    return Err(self.fail(err));
                }
            }
            Ok(None) => {}
            Err(err) => {
                let err = err.into_wire(self.provider);
                return Err(self.fail(err));
            }
        }
        if !self.decode.ended() {
            return Err(self.fail(truncated));
        }
        Ok(self.reply.build())
    }
}
