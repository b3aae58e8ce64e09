//! Symbol spelling: the one place where what an operator or a config writes (`btc`,
//! `BTCUSDT`) becomes the symbol a venue module expects (`BTC`).
//!
//! Owns: the normalization rule of each venue kind, applied by the CLI, the control API
//! and to the agents' configured symbols at start. Never: checks that a symbol is listed
//! (the venue's instrument read does that, with its own error) or rewrites anything a
//! venue answers.
//!
//! Rules:
//! - paper: case-insensitive; symbols are upper case (`btc` → `BTC`).
//! - hyperliquid: case-insensitive (`eth` → `ETH`), except Hyperliquid's own
//!   mixed-case names of 1000-unit markets, written exactly (`kPEPE` stays `kPEPE`).
//! - binance: case-insensitive, and the venue's pair spelling is accepted: `BTCUSDT` (or
//!   `btcusdt`) → `BTC` when the quote asset is `USDT`, or the symbol whose configured
//!   `pairs` entry it is. A configured symbol is never shortened.
//!
//! An unknown venue name is left as written (the gateway then names the configured ones).

use crate::config::{Config, VenueConfig};

/// The symbol `input` means on venue `venue` of `config`.
pub fn normalize(config: &Config, venue: &str, input: &str) -> String {
    match config.exchanges.venues.get(venue) {
        Some(v) => normalize_for(v, input),
        None => input.trim().to_string(),
    }
}

/// The symbol `input` means on a venue of this kind.
pub fn normalize_for(venue: &VenueConfig, input: &str) -> String {
    let input = input.trim();
    match venue {
        VenueConfig::Paper(_) => input.to_ascii_uppercase(),
        VenueConfig::Hyperliquid(_) => {
            let mut chars = input.chars();
            let hl_mixed = chars.next() == Some('k')
                && input.len() > 1
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if hl_mixed {
                input.to_string()
            } else {
                input.to_ascii_uppercase()
            }
        }
        VenueConfig::Binance(b) => {
            let upper = input.to_ascii_uppercase();
            let configured = b.symbols.iter().any(|s| s.eq_ignore_ascii_case(&upper))
                || b.pairs.keys().any(|s| s.eq_ignore_ascii_case(&upper));
            if configured {
                return upper;
            }
            b.symbol_of(&upper).unwrap_or(upper)
        }
        VenueConfig::BinanceFutures(b) => {
            normalize_for(&VenueConfig::Binance(Box::new(b.rest_config())), input)
        }
    }
}

/// Normalizes the symbols of every trading agent in place, so an agent configured with
/// `btc` or `BTCUSDT` trades the same symbol the CLI and API name `BTC`.
pub fn normalize_agents(config: &mut Config) {
    let venues = config.exchanges.venues.clone();
    for agent in &mut config.agents.trading {
        if let Some(v) = venues.get(&agent.venue) {
            for s in &mut agent.symbols {
                *s = normalize_for(v, s);
            }
        }
    }
    for agent in &mut config.agents.pipeline {
        if let Some(v) = venues.get(&agent.venue) {
            for s in &mut agent.symbols {
                *s = normalize_for(v, s);
            }
        }
    }
    // A funding agent's symbols are the engine's names on every venue it watches; they
    // are spelled by the rule of its first venue.
    for agent in &mut config.agents.funding {
        if let Some(v) = agent.all_venues().first().and_then(|n| venues.get(n)) {
            for s in &mut agent.symbols {
                *s = normalize_for(v, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_actors::exchanges::binance::BinanceConfig;
    use orrery_actors::exchanges::paper::PaperConfig;

    #[test]
    fn each_venue_kind_has_its_rule() {
        let paper = VenueConfig::Paper(PaperConfig::default());
        assert_eq!(normalize_for(&paper, " btc "), "BTC");
        let hl = VenueConfig::Hyperliquid(Box::default());
        assert_eq!(normalize_for(&hl, "eth"), "ETH");
        assert_eq!(normalize_for(&hl, "kPEPE"), "kPEPE");
        assert_eq!(normalize_for(&hl, "kas"), "KAS");
        let binance = BinanceConfig {
            symbols: vec!["BTC".into()],
            ..BinanceConfig::default()
        };
        let binance = VenueConfig::Binance(Box::new(binance));
        assert_eq!(normalize_for(&binance, "BTCUSDT"), "BTC");
        assert_eq!(normalize_for(&binance, "btcusdt"), "BTC");
        assert_eq!(normalize_for(&binance, "btc"), "BTC");
        assert_eq!(normalize_for(&binance, "ETHUSDT"), "ETH");
    }
}
