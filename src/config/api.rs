//! The control API's own settings (`[api]`): who may call it and how large a body it takes.
//!
//! Owns: the names of the environment variables that hold the API tokens, the tokens read
//! from them (as [`ApiToken`], whose `Debug` prints `***`), the scope check with a
//! constant-time comparison, and the body limit. Never: reads a token from the config file,
//! logs, serializes or stores a token (the field is `#[serde(skip)]`), or compares a token
//! with `==`.
//!
//! Tokens are optional on loopback. Once one is set, every endpoint but `GET /health`
//! requires `Authorization: Bearer <token>`: the read token (or the trade token) for `GET`,
//! the trade token for anything that changes state. A non-loopback `telemetry.listen` is
//! refused unless a token is set ([`super::Config::validate`]).

use std::fmt;

use orrery_actors::env::{non_empty, EnvLookup};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Default variable of the read-only token.
pub const READ_TOKEN_ENV: &str = "ORRERY_API_TOKEN_READ";
/// Default variable of the trading token (grants reads too).
pub const TRADE_TOKEN_ENV: &str = "ORRERY_API_TOKEN_TRADE";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Environment variable holding the read-only token.
    pub read_token_env: String,
    /// Environment variable holding the trading token.
    pub trade_token_env: String,
    /// Largest request body the API accepts (JSON bodies, e.g. a long `ask` prompt).
    pub max_body_bytes: usize,
    /// Read from the environment at load; never from the file, never written anywhere.
    #[serde(skip)]
    pub tokens: ApiTokens,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            read_token_env: READ_TOKEN_ENV.into(),
            trade_token_env: TRADE_TOKEN_ENV.into(),
            max_body_bytes: 4 * 1024 * 1024,
            tokens: ApiTokens::default(),
        }
    }
}

impl ApiConfig {
    /// Reads the tokens named by this section through `env`; an empty value is no token.
    pub fn read_tokens(&mut self, env: EnvLookup<'_>) {
        let read = |name: &str| non_empty(env, name).map(ApiToken);
        self.tokens = ApiTokens {
            read: read(&self.read_token_env),
            trade: read(&self.trade_token_env),
        };
    }
}

/// One bearer token. `Debug`/`Display` print `***`.
#[derive(Clone, PartialEq)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The token's text, for the CLI's `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time in the token's length: an attacker learns nothing from timing
    /// about how many leading bytes were right.
    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `GET`: reports, metrics.
    Read,
    /// Anything that changes state: orders, the kill switch, model calls that cost money.
    Trade,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this API requires `Authorization: Bearer <token>` (a token from {read} or {trade})")]
    Missing { read: String, trade: String },
    #[error("the token is not valid for this API")]
    Invalid,
    #[error("the token is read-only; this call needs the trading token from {trade}")]
    ReadOnly { trade: String },
}

/// The tokens in force; none set: the API is open (loopback only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiTokens {
    pub read: Option<ApiToken>,
    pub trade: Option<ApiToken>,
}

impl ApiTokens {
    pub fn is_empty(&self) -> bool {
        self.read.is_none() && self.trade.is_none()
    }

    /// Checks an `Authorization` header value against `needed`.
    pub fn authorize(
        &self,
        config: &ApiConfig,
        header: Option<&str>,
        needed: Scope,
    ) -> Result<(), AuthError> {
        if self.is_empty() {
            return Ok(());
        }
        let presented = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Missing {
                read: config.read_token_env.clone(),
                trade: config.trade_token_env.clone(),
            })?;
        // Both comparisons always run, so timing does not say which token matched.
        let trade = self.trade.as_ref().is_some_and(|t| t.matches(presented));
        let read = self.read.as_ref().is_some_and(|t| t.matches(presented));
        match (trade, read, needed) {
            (true, _, _) => Ok(()),
            (false, true, Scope::Read) => Ok(()),
            (false, true, Scope::Trade) => Err(AuthError::ReadOnly {
                trade: config.trade_token_env.clone(),
            }),
            (false, false, _) => Err(AuthError::Invalid),
        }
    }

    /// The token the CLI presents for `needed` (the trade token serves both).
    pub fn for_scope(&self, needed: Scope) -> Option<&ApiToken> {
        match needed {
            Scope::Read => self.read.as_ref().or(self.trade.as_ref()),
            Scope::Trade => self.trade.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (ApiConfig, ApiTokens) {
        let mut c = ApiConfig::default();
        c.read_tokens(&|name| match name {
            READ_TOKEN_ENV => Some("r-secret".into()),
            TRADE_TOKEN_ENV => Some(" t-secret ".into()),
            _ => None,
        });
        let t = c.tokens.clone();
        (c, t)
    }

    #[test]
    fn scopes_are_enforced() {
        let (c, t) = tokens();
        assert_eq!(
            t.authorize(&c, Some("Bearer r-secret"), Scope::Read),
            Ok(())
        );
        assert_eq!(
            t.authorize(&c, Some("Bearer r-secret"), Scope::Trade),
            Err(AuthError::ReadOnly {
                trade: TRADE_TOKEN_ENV.into()
            })
        );
        assert_eq!(
            t.authorize(&c, Some("Bearer t-secret"), Scope::Trade),
            Ok(())
        );
        assert_eq!(
            t.authorize(&c, Some("Bearer t-secret"), Scope::Read),
            Ok(())
        );
        assert_eq!(
            t.authorize(&c, Some("Bearer t-secre"), Scope::Read),
            Err(AuthError::Invalid)
        );
        assert!(matches!(
            t.authorize(&c, None, Scope::Read),
            Err(AuthError::Missing { .. })
        ));
        assert!(matches!(
            t.authorize(&c, Some("t-secret"), Scope::Read),
            Err(AuthError::Missing { .. })
        ));
    }

    #[test]
    fn no_tokens_means_open_and_secrets_never_print() {
        let c = ApiConfig::default();
        assert_eq!(c.tokens.authorize(&c, None, Scope::Trade), Ok(()));
        let (c, _) = tokens();
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
