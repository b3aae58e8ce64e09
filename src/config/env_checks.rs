//! Checks of the configuration against its surroundings: which environment variable set a
//! key (so its error names the variable), built-in model prices, API keys present, and a
//! control API that is reachable beyond loopback only with tokens.
//!
//! Owns: the mapping from `ORRERY__A__B__0__C` to the key path `a.b[0].c`, filling in a
//! deployment's price from [`orrery_actors::models::prices`] when the file sets none, the
//! start-up key check (the variables tried, never a value), and the listen-address rule.
//! Never: reads or prints a secret's value; a key's presence is all it checks.

use orrery_actors::env::EnvLookup;
use orrery_actors::models::http::resolve_api_key;
use orrery_actors::models::prices::builtin_price;
use orrery_actors::models::router::ProviderChoice;
use orrery_actors::validate::{join, Issues};

use super::{Config, ConfigError, VenueConfig};

/// `RISK__MAX_LEVERAGE` (after the prefix) as the key path serde reports: `risk.max_leverage`;
/// numeric segments index arrays: `agents.trading[0].interval`.
pub(super) fn override_path(rest: &str) -> String {
    let mut path = String::new();
    for seg in rest.split("__").map(str::to_ascii_lowercase) {
        if seg.parse::<usize>().is_ok() {
            path.push_str(&format!("[{seg}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&seg);
        }
    }
    path
}

/// The variable that set `key` or a section above it, if one did.
pub(super) fn set_by<'a>(overridden: &'a [(String, String)], key: &str) -> Option<&'a str> {
    overridden
        .iter()
        .rev()
        .find(|(path, _)| {
            key == path
                || key
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
        .map(|(_, var)| var.as_str())
}

/// Gives every `[[models.<name>.deployments]]` without `price_prompt_per_mtok` /
/// `price_completion_per_mtok` the built-in list price of its provider and model (each key
/// separately, so an operator may override one). Models the table does not list keep 0.
pub fn builtin_prices_into(tree: &mut toml::Table) {
    let Some(models) = tree.get_mut("models").and_then(toml::Value::as_table_mut) else {
        return;
    };
    for (_, model) in models.iter_mut() {
        let Some(deployments) = model
            .get_mut("deployments")
            .and_then(toml::Value::as_array_mut)
        else {
            continue;
        };
        for d in deployments.iter_mut().filter_map(toml::Value::as_table_mut) {
            let (Some(provider), Some(name)) = (
                d.get("provider").and_then(toml::Value::as_str),
                d.get("model").and_then(toml::Value::as_str),
            ) else {
                continue;
            };
            let Some(price) = builtin_price(provider, name) else {
                continue;
            };
            for (key, value) in [
                ("price_prompt_per_mtok", price.prompt_per_mtok),
                ("price_completion_per_mtok", price.completion_per_mtok),
            ] {
                d.entry(key)
                    .or_insert_with(|| toml::Value::String(value.normalize().to_string()));
            }
        }
    }
}

impl Config {
    /// Every trading agent's and pipeline's symbols are listed by its venue, when the venue's list is known
    /// from the config (paper). Live venues are checked at start against their instrument
    /// lists by the gateway's reconciliation, before agents run.
    pub(super) fn check_agent_symbols(&self, issues: &mut Issues) {
        for (i, agent) in self.agents.trading.iter().enumerate() {
            let Some(VenueConfig::Paper(paper)) = self.exchanges.venues.get(&agent.venue) else {
                continue;
            };
            for (j, symbol) in agent.symbols.iter().enumerate() {
                issues.check(
                    paper.symbols.contains_key(symbol),
                    format!("agents.trading[{i}].symbols[{j}]"),
                    symbol,
                    format!(
                        "a symbol venue `{}` lists: {} (add [exchanges.venues.{}.symbols.{symbol}] to simulate it)",
                        agent.venue,
                        paper.symbols.keys().cloned().collect::<Vec<_>>().join(", "),
                        agent.venue
                    ),
                );
            }
        }
        for (i, p) in self.agents.pipeline.iter().enumerate() {
            let Some(VenueConfig::Paper(paper)) = self.exchanges.venues.get(&p.venue) else {
                continue;
            };
            for (j, symbol) in p.symbols.iter().enumerate() {
                issues.check(
                    paper.symbols.contains_key(symbol),
                    format!("agents.pipeline[{i}].symbols[{j}]"),
                    symbol,
                    format!(
                        "a symbol venue `{}` lists: {} (add [exchanges.venues.{}.symbols.{symbol}] to simulate it)",
                        p.venue,
                        paper.symbols.keys().cloned().collect::<Vec<_>>().join(", "),
                        p.venue
                    ),
                );
            }
        }
    }

    /// A control API beyond loopback needs tokens: it places orders.
    pub(super) fn check_listen(&self, issues: &mut Issues) {
        let listen = self.telemetry.listen;
        issues.check(
            self.telemetry.disabled
                || listen.ip().is_loopback()
                || !self.api.tokens.is_empty(),
            "telemetry.listen",
            listen.to_string(),
            format!(
                "a loopback address such as 127.0.0.1:{} (the control API places orders); to serve beyond loopback set API tokens in {} (trading) and optionally {} (read-only)",
                listen.port(),
                self.api.trade_token_env,
                self.api.read_token_env
            ),
        );
    }

    /// Every HTTP model deployment has its API key in the environment. Run by `run` and
    /// `check-config` before anything starts; the issue names the deployment's key path and
    /// the variables tried.
    pub fn check_keys(&self, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        let mut issues = Issues::default();
        for (name, model) in &self.models.models {
            for (i, d) in model.deployments.iter().enumerate() {
                // `local` has no key; an unknown provider is `validate`'s to report.
                let Some(wire) = ProviderChoice::parse(&d.provider).and_then(ProviderChoice::http)
                else {
                    continue;
                };
                if let Err(missing) = resolve_api_key(wire, d.api_key_env.as_deref(), env) {
                    let path = join(&format!("models.{name}.deployments[{i}]"), "api_key_env");
                    issues.push(
                        path,
                        format!("deployment `{}`: no API key", d.id),
                        format!(
                            "one of these environment variables set to {}'s key: {}",
                            d.provider,
                            missing.tried.join(", ")
                        ),
                    );
                }
            }
        }
        // A Binance account cannot even be opened without its keys (Hyperliquid can: it
        // reads without a wallet key, and orders fail naming the variable).
        for (name, venue) in &self.exchanges.venues {
            let vars = match venue {
                VenueConfig::Binance(_) => [
                    orrery_actors::exchanges::binance::API_KEY_ENV,
                    orrery_actors::exchanges::binance::API_SECRET_ENV,
                ],
                VenueConfig::BinanceFutures(_) => [
                    orrery_actors::exchanges::binance_futures::API_KEY_ENV,
                    orrery_actors::exchanges::binance_futures::API_SECRET_ENV,
                ],
                _ => continue,
            };
            for var in vars {
                issues.check(
                    env(var).is_some_and(|v| !v.trim().is_empty()),
                    format!("exchanges.venues.{name}"),
                    format!("{var} is not set"),
                    format!("{var} exported with the Binance account's API key/secret (or run with --paper)"),
                );
            }
        }
        self.notifications
            .check_env("notifications", env, &mut issues);
        if let Some(cluster) = &self.cluster {
            cluster.check_env("cluster", env, &mut issues);
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(issues.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_paths_match_serde_paths() {
        assert_eq!(override_path("RISK__MAX_LEVERAGE"), "risk.max_leverage");
        assert_eq!(
            override_path("AGENTS__TRADING__0__INTERVAL"),
            "agents.trading[0].interval"
        );
        let set = vec![("risk.max_leverage".to_string(), "V".to_string())];
        assert_eq!(set_by(&set, "risk.max_leverage"), Some("V"));
        assert_eq!(set_by(&set, "risk.max_leverage_x"), None);
        assert_eq!(set_by(&set, "risk"), None);
    }
}

#[cfg(test)]
mod price_and_key_tests {
    use rust_decimal_macros::dec;

    use crate::config::Config;

    const OPENAI: &str = r#"
[models.default]
[[models.default.deployments]]
id = "gpt"
provider = "openai"
model = "gpt-4o-mini"
[[models.default.deployments]]
id = "gpt-own-price"
provider = "openai"
model = "gpt-4o"
price_prompt_per_mtok = 1
"#;

    #[test]
    fn a_known_model_gets_its_list_price_and_an_override_wins() {
        let c = Config::load_str(OPENAI, "t", Vec::new()).unwrap();
        let d = &c.models.models["default"].deployments;
        assert_eq!(
            (d[0].price_prompt_per_mtok, d[0].price_completion_per_mtok),
            (dec!(0.15), dec!(0.6))
        );
        assert_eq!(
            (d[1].price_prompt_per_mtok, d[1].price_completion_per_mtok),
            (dec!(1), dec!(10)),
            "the written key wins, the other is the list price"
        );
    }

    #[test]
    fn a_missing_key_names_the_deployment_path_and_the_variables_tried() {
        let c = Config::load_str(OPENAI, "t", Vec::new()).unwrap();
        let err = c.check_keys(&|_| None).unwrap_err().to_string();
        assert!(
            err.contains("models.default.deployments[0].api_key_env"),
            "{err}"
        );
        assert!(err.contains("OPENAI_API_KEY, OPENAI_KEY"), "{err}");
        let ok = c.check_keys(&|name| (name == "OPENAI_KEY").then(|| "sk-x".to_string()));
        assert!(ok.is_ok(), "{ok:?}");
    }
}
