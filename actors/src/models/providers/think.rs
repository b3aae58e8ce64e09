//! Separating `<think>…</think>` blocks from a reasoning model's answer.
//!
//! Owns: the incremental split of answer text into visible text and reasoning. Never does:
//! anything with provider-specific reasoning fields (those arrive already separate).
//!
//! Open-weight reasoning models (DeepSeek-R1 distills, Qwen3, gpt-oss on some hosts) served
//! through OpenAI-compatible APIs or Ollama put their chain of thought inline, wrapped in
//! `<think>` tags. A decision parser must never read the reasoning as the answer, so the
//! block is moved to `Reply::reasoning`. The split is incremental because the tags arrive
//! cut across stream deltas (`<thi` + `nk>`): any tail that could still become a tag is
//! held back until the next delta decides it.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Default)]
pub(crate) struct ThinkSplitter {
    inside: bool,
    /// Held-back text that may be the start of a tag.
    pending: String,
    /// Just closed a block: drop the whitespace that separates reasoning from the answer.
    skip_leading_ws: bool,
}

/// What one call produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ThinkSplit {
    pub visible: String,
    pub reasoning: String,
}

impl ThinkSplitter {
    pub fn push(&mut self, delta: &str) -> ThinkSplit {
        let mut out = ThinkSplit::default();
        let mut text = std::mem::take(&mut self.pending);
        text.push_str(delta);
        let mut rest = text.as_str();
        loop {
            let tag = if self.inside { CLOSE } else { OPEN };
            if let Some(pos) = rest.find(tag) {
                self.emit(&rest[..pos], &mut out);
                rest = &rest[pos + tag.len()..];
                self.inside = !self.inside;
                if !self.inside {
                    self.skip_leading_ws = true;
                }
                continue;
            }
            // Hold back the longest suffix that is a proper prefix of the tag.
            let keep = (1..tag.len())
                .rev()
                .find(|&n| {
                    rest.len() >= n
                        && rest.is_char_boundary(rest.len() - n)
                        && tag.starts_with(&rest[rest.len() - n..])
                })
                .unwrap_or(0);
            let split = rest.len() - keep;
            self.emit(&rest[..split], &mut out);
            self.pending = rest[split..].to_string();
            break;
        }
        out
    }

    /// [`ThinkSplitter::push`] as stream events (see [`push_split`]).
    pub fn push_events(&mut self, delta: &str, events: &mut Vec<super::StreamEvent>) {
        let split = self.push(delta);
        push_split(split.visible, split.reasoning, events);
    }

    /// [`ThinkSplitter::finish`] as stream events.
    pub fn finish_events(&mut self, events: &mut Vec<super::StreamEvent>) {
        let tail = self.finish();
        push_split(tail.visible, tail.reasoning, events);
    }

    /// End of text: whatever was held back is plain text after all.
    pub fn finish(&mut self) -> ThinkSplit {
        let mut out = ThinkSplit::default();
        let pending = std::mem::take(&mut self.pending);
        self.emit(&pending, &mut out);
        out
    }

    fn emit(&mut self, text: &str, out: &mut ThinkSplit) {
        if text.is_empty() {
            return;
        }
        if self.inside {
            out.reasoning.push_str(text);
            return;
        }
        let text = if self.skip_leading_ws {
            let trimmed = text.trim_start();
            if trimmed.is_empty() {
                return;
            }
            self.skip_leading_ws = false;
            trimmed
        } else {
            text
        };
        out.visible.push_str(text);
    }
}

/// Split a whole answer at once.
pub(crate) fn split_think(text: &str) -> ThinkSplit {
    // No `<` at all: no tag, nothing held back; the common case, without the scan.
    if !text.contains('<') {
        return ThinkSplit {
            visible: text.to_string(),
            reasoning: String::new(),
        };
    }
    let mut splitter = ThinkSplitter::default();
    let mut out = splitter.push(text);
    let tail = splitter.finish();
    out.visible.push_str(&tail.visible);
    out.reasoning.push_str(&tail.reasoning);
    out
}

/// A whole answer's visible text and its reasoning: the provider's own reasoning field
/// (`provider_reasoning`, empty when it has none) followed by the answer's inline
/// `<think>` blocks; `None` when there is no reasoning at all.
pub(crate) fn answer_and_reasoning(
    content: &str,
    provider_reasoning: &str,
) -> (String, Option<String>) {
    let split = split_think(content);
    let mut reasoning = provider_reasoning.to_string();
    reasoning.push_str(&split.reasoning);
    (split.visible, (!reasoning.is_empty()).then_some(reasoning))
}

/// Pushes a split piece of text as events: its reasoning first, then its visible text;
/// empty parts are not events.
pub(crate) fn push_split(visible: String, reasoning: String, events: &mut Vec<super::StreamEvent>) {
    if !reasoning.is_empty() {
        events.push(super::StreamEvent::ReasoningDelta(reasoning));
    }
    if !visible.is_empty() {
        events.push(super::StreamEvent::TextDelta(visible));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_think_block_moves_to_reasoning_and_the_gap_is_dropped() {
        let split = split_think("<think>\nThe user greets me.\n</think>\n\nHello!");
        assert_eq!(split.visible, "Hello!");
        assert_eq!(split.reasoning, "\nThe user greets me.\n");
    }

    #[test]
    fn text_without_tags_is_untouched_including_angle_brackets() {
        let split = split_think("price < 5 and <b>bold</b> <thin");
        assert_eq!(split.visible, "price < 5 and <b>bold</b> <thin");
        assert_eq!(split.reasoning, "");
    }

    #[test]
    fn tags_cut_across_deltas_are_recognised() {
        let mut splitter = ThinkSplitter::default();
        let mut visible = String::new();
        let mut reasoning = String::new();
        for delta in ["<thi", "nk>plan", "</th", "ink>", " BUY"] {
            let out = splitter.push(delta);
            visible.push_str(&out.visible);
            reasoning.push_str(&out.reasoning);
        }
        let out = splitter.finish();
        visible.push_str(&out.visible);
        assert_eq!((visible.as_str(), reasoning.as_str()), ("BUY", "plan"));
    }

    proptest! {
        #[test]
        fn streaming_split_equals_whole_split(
            text in "(<think>|</think>|<th|ink>|[a-z ]|é){0,30}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let whole = split_think(&text);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut splitter = ThinkSplitter::default();
            let mut got = ThinkSplit::default();
            let mut start = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                let mut cut = cut.clamp(start, text.len());
                while !text.is_char_boundary(cut) { cut += 1; }
                let out = splitter.push(&text[start..cut]);
                got.visible.push_str(&out.visible);
                got.reasoning.push_str(&out.reasoning);
                start = cut;
            }
            let out = splitter.finish();
            got.visible.push_str(&out.visible);
            got.reasoning.push_str(&out.reasoning);
            prop_assert_eq!(got, whole);
        }
    }
}
