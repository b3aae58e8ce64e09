//! Finding the spec in a model's answer and writing the prompts that ask for one.
//!
//! Owns: the prompts (first request and repairs) and the extraction of the JSON object
//! from an answer: the first Markdown code fence if there is one, else from the first `{`
//! to the last `}` (models put a sentence before or after), else the answer as it is.
//! Never: judges the spec (the validator does) or executes anything in it.

use crate::strategies::spec::{schema_help, SpecErrors};

/// The system prompt: the job and the format.
pub fn system() -> String {
    format!(
        "You turn trading research into a strategy spec for the Orrery backtester. You never write code: \
         the spec is data over built-in indicators. Answer with exactly one JSON object and nothing else.\n\n{}",
        schema_help()
    )
}

/// The first request: the research, cut to `max_chars` characters.
pub fn first_prompt(source: &str, research: &str, max_chars: usize) -> String {
    let (text, cut) = cut(research, max_chars);
    format!(
        "Research (from {source}{}):\n<<<\n{text}\n>>>\n\nWrite one strategy spec that implements the trading idea of this research \
         with the available indicators. Answer with the JSON object only.",
        if cut { ", cut to its first part" } else { "" }
    )
}

/// A repair request: the first request, the answer refused and every problem found.
pub fn fix_prompt(first: &str, previous_answer: &str, errors: &SpecErrors) -> String {
    format!(
        "{first}\n\nYour previous answer was:\n<<<\n{previous_answer}\n>>>\n\nThe validator refused it. {errors}\n\n\
         Fix every problem listed and answer with the whole corrected JSON object only."
    )
}

fn cut(text: &str, max_chars: usize) -> (&str, bool) {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

/// The JSON text of the spec in `answer` (see the module docs).
pub fn extract_json(answer: &str) -> &str {
    if let Some(start) = answer.find("```") {
        let after = &answer[start + 3..];
        // Skip the info string (`json`) up to the end of the fence's line.
        let body_start = after.find('\n').map_or(0, |n| n + 1);
        let body = &after[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].trim();
    }
    match (answer.find('{'), answer.rfind('}')) {
        (Some(a), Some(b)) if a < b => &answer[a..=b],
        _ => answer.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_is_found_in_fences_and_prose() {
        assert_eq!(extract_json("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(
            extract_json("Here it is:\n```\n{\"a\": 1}\n```\nEnjoy."),
            "{\"a\": 1}"
        );
        assert_eq!(
            extract_json("Sure! {\"a\": {\"b\": 2}} Hope this helps."),
            "{\"a\": {\"b\": 2}}"
        );
        assert_eq!(extract_json("  no json here "), "no json here");
    }

    #[test]
    fn long_research_is_cut_and_says_so() {
        let p = first_prompt("a.md", &"é".repeat(50), 10);
        assert!(
            p.contains(&"é".repeat(10)) && !p.contains(&"é".repeat(11)),
            "{p}"
        );
        assert!(p.contains("cut to its first part"), "{p}");
        let p = first_prompt("a.md", "short", 10);
        assert!(!p.contains("cut to"), "{p}");
    }
}
