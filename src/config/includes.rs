//! `include`: a config file may start from other files and override them.
//!
//! ```toml
//! include = ["../default.toml"]   # or one string; paths relative to this file
//! ```
//!
//! Owns: reading the included files (in order, each may include others, up to 8 deep,
//! cycles refused) and laying the including file over them with the same rule as
//! everywhere else in the config: tables merge key by key, anything else (values, arrays,
//! arrays of tables such as `[[agents.trading]]`) replaces. So a file that writes
//! `[[agents.trading]]` has exactly the agents it writes, and one that writes none keeps
//! the included ones. Never: reads a file that no `include` names, or lets an include
//! silently fail (a missing or bad file is an error naming it and the file that included
//! it).

use std::path::{Path, PathBuf};

use super::{merge_table, ConfigError};

/// How deep includes may nest; deeper is a mistake, not a layout.
const MAX_DEPTH: usize = 8;

/// The file at `path` with its includes resolved.
pub(super) fn read_with_includes(path: &Path) -> Result<toml::Table, ConfigError> {
    read(path, &mut Vec::new())
}

fn read(path: &Path, chain: &mut Vec<PathBuf>) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let tree = text
        .parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    resolve(tree, path, dir, chain)
}

/// Resolves `tree`'s `include` (relative to `dir`); `origin` names the file in errors.
pub(super) fn resolve(
    mut tree: toml::Table,
    origin: &Path,
    dir: &Path,
    chain: &mut Vec<PathBuf>,
) -> Result<toml::Table, ConfigError> {
    let Some(include) = tree.remove("include") else {
        return Ok(tree);
    };
    let err = |message: String| ConfigError::Include {
        path: origin.to_path_buf(),
        message,
    };
    let names: Vec<String> = match include {
        toml::Value::String(one) => vec![one],
        toml::Value::Array(many) => many
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(err(format!(
                    "`include` lists file paths; {other} is not a string"
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(err(format!(
                "`include` is a file path or a list of them, not {other}"
            )))
        }
    };
    let me = origin
        .canonicalize()
        .unwrap_or_else(|_| origin.to_path_buf());
    if chain.len() >= MAX_DEPTH {
        return Err(err(format!("includes nest deeper than {MAX_DEPTH} files")));
    }
    chain.push(me);
    let mut base = toml::Table::new();
    for name in names {
        let path = dir.join(&name);
        let canonical = path
            .canonicalize()
            .map_err(|e| err(format!("cannot read included file {}: {e}", path.display())))?;
        if chain.contains(&canonical) {
            return Err(err(format!(
                "`include` of {} makes a cycle",
                path.display()
            )));
        }
        let included = read(&path, chain)?;
        merge_table(&mut base, &included);
    }
    chain.pop();
    merge_table(&mut base, &tree);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError, VenueConfig};

    fn example(name: &str) -> Result<Config, ConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/examples")
            .join(name);
        Config::load(Some(&path), Vec::<(String, String)>::new())
    }

    #[test]
    fn each_example_runs_alone_with_the_agents_it_claims() {
        let b = example("binance.toml").unwrap();
        assert!(matches!(
            b.exchanges.venues["binance"],
            VenueConfig::Binance(_)
        ));
        assert!(
            b.exchanges.venues.contains_key("paper"),
            "the default's venue is kept"
        );
        let venues: Vec<&str> = b.agents.trading.iter().map(|a| a.venue.as_str()).collect();
        assert_eq!(
            venues,
            ["binance"],
            "the example's agent replaces the default's"
        );
        assert!(
            b.models.models.contains_key("default"),
            "models from default.toml"
        );

        let h = example("hyperliquid.toml").unwrap();
        let venues: Vec<&str> = h.agents.trading.iter().map(|a| a.venue.as_str()).collect();
        assert_eq!(venues, ["hyperliquid"]);

        let l = example("llm-providers.toml").unwrap();
        assert_eq!(l.agents.trading.len(), 1, "the default's paper agent");
        assert!(l.models.models["default"].deployments.len() >= 7);
        // Built-in prices: an example deployment costs what its provider charges.
        let gpt = l.models.models["default"]
            .deployments
            .iter()
            .find(|d| d.model == "gpt-4o-mini")
            .unwrap();
        assert_eq!(gpt.price_prompt_per_mtok, rust_decimal::Decimal::new(15, 2));
    }

    #[test]
    fn includes_merge_tables_replace_arrays_and_refuse_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        std::fs::write(
            &base,
            "[risk]\nmax_leverage = 7\nmax_position_pct = 20\n[[agents.trading]]\nname = \"a\"\nvenue = \"paper\"\nsymbols = [\"BTC\"]\nmodel = \"default\"\n",
        )
        .unwrap();
        let top = dir.path().join("sub").join("top.toml");
        std::fs::create_dir_all(top.parent().unwrap()).unwrap();
        std::fs::write(
            &top,
            "include = \"../base.toml\"\n[risk]\nmax_leverage = 3\n",
        )
        .unwrap();
        let c = Config::load(Some(&top), Vec::<(String, String)>::new()).unwrap();
        assert_eq!(c.risk.max_leverage, 3, "the including file wins");
        assert_eq!(c.agents.trading.len(), 1, "the included agents are kept");

        let cyc = dir.path().join("cyc.toml");
        std::fs::write(&cyc, "include = [\"cyc.toml\"]\n").unwrap();
        let err = Config::load(Some(&cyc), Vec::<(String, String)>::new()).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        let missing = dir.path().join("missing.toml");
        std::fs::write(&missing, "include = [\"nope.toml\"]\n").unwrap();
        let err = Config::load(Some(&missing), Vec::<(String, String)>::new()).unwrap_err();
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }
}
