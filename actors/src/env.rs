//! Environment variables, read through one injectable lookup.
//!
//! Owns: [`EnvLookup`], the one way configuration code reads a variable (model API keys,
//! venue keys and secrets, the control API's tokens), and the one rule for what counts as
//! set ([`non_empty`]: a value that is blank once trimmed is unset). Never: logs, prints or
//! stores a value (most are secrets; callers wrap them in their `***`-printing newtypes at
//! once), or reads the process environment except through [`process_env`].
//!
//! The lookup is a parameter, never `std::env::var` inside the code that needs a value, so
//! tests hand in a closure over their own values instead of mutating the process
//! environment, which every test of a binary shares.

/// Reads one environment variable; `None` when unset. The process passes
/// [`process_env`]; tests pass a closure.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as an [`EnvLookup`] (`&process_env`).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `name`'s value, trimmed; `None` when unset or blank.
pub fn non_empty(env: EnvLookup<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_value_is_unset_and_values_are_trimmed() {
        let env = |name: &str| match name {
            "SET" => Some("  value \n".to_string()),
            "BLANK" => Some(" \t".to_string()),
            _ => None,
        };
        assert_eq!(non_empty(&env, "SET").as_deref(), Some("value"));
        assert_eq!(non_empty(&env, "BLANK"), None);
        assert_eq!(non_empty(&env, "UNSET"), None);
    }
}
