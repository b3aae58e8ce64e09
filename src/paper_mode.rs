//! `--paper`: run any configuration without touching a live account.
//!
//! Owns: turning a [`Config`] into its paper twin. Each live venue (Hyperliquid, Binance)
//! becomes a paper venue of the same name, so agents, orders and reports keep their venue
//! names, seeded from that venue's current market: for each symbol its agents trade (and,
//! for Binance, its `symbols`), the live connector is asked once for the quote and the
//! instrument, and the paper symbol starts at the quote's mid with the venue's tick, lot,
//! minimum notional and leverage cap. The data dir becomes `<data_dir>/paper`, so a paper
//! ledger never mixes with the live one.
//!
//! Never: places, cancels or reads anything private on a live venue (quotes and
//! instruments are public reads; a venue opened here is dropped before the engine starts),
//! or falls back to made-up prices: a venue that cannot be read within
//! [`FETCH_DEADLINE`] stops the start with an error naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use orrery_actors::clock::system_clock;
use orrery_actors::exchanges::binance::{BinanceSpotVenue, API_KEY_ENV, API_SECRET_ENV};
use orrery_actors::exchanges::hyperliquid::{self, HyperliquidVenue};
use orrery_actors::exchanges::paper::{PaperConfig, PaperSymbolConfig};
use orrery_actors::exchanges::Venue;

use crate::config::{Config, VenueConfig};

/// Longest wait for one venue's quotes and instruments.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(15);

/// Why the paper twin could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PaperModeError {
    #[error("--paper: cannot open venue `{venue}` to read its prices: {reason}")]
    Open { venue: String, reason: String },
    #[error("--paper: venue `{venue}` did not give the price of {symbol}: {reason}; is it reachable? (--paper seeds the paper venue from the live market)")]
    Price {
        venue: String,
        symbol: String,
        reason: String,
    },
    #[error("--paper: venue `{venue}` did not answer within {FETCH_DEADLINE:?} for {symbol}; is it reachable?")]
    Timeout { venue: String, symbol: String },
}

/// `config` with every live venue replaced by a seeded paper venue (see the module docs).
pub async fn paper_twin(mut config: Config) -> Result<Config, PaperModeError> {
    let mut replaced = BTreeMap::new();
    for (name, venue) in &config.exchanges.venues {
        let mut symbols: BTreeSet<String> = config
            .agents
            .trading
            .iter()
            .filter(|a| &a.venue == name)
            .flat_map(|a| a.symbols.iter().cloned())
            .collect();
        let live: Arc<dyn Venue> = match venue {
            VenueConfig::Paper(_) => continue,
            VenueConfig::Hyperliquid(hl) => Arc::new(
                HyperliquidVenue::open(name, hl, hyperliquid::config::process_env(), system_clock())
                    .map_err(|e| PaperModeError::Open {
                        venue: name.clone(),
                        reason: e.to_string(),
                    })?,
            ),
            VenueConfig::Binance(b) => {
                symbols.extend(b.symbols.iter().cloned());
                // Quotes and exchange info are public endpoints: no key is sent for them,
                // so a paper run needs none. A real key, if exported, is used as is.
                let env = |var: &str| {
                    std::env::var(var)
                        .ok()
                        .or_else(|| [API_KEY_ENV, API_SECRET_ENV].contains(&var).then(|| "paper-mode-public-reads-only".to_string()))
                };
                Arc::new(
                    BinanceSpotVenue::open_with_env(name, b, system_clock(), &env).map_err(
                        |e| PaperModeError::Open {
                            venue: name.clone(),
                            reason: e.to_string(),
                        },
                    )?,
                )
            }
        };
        let mut paper = PaperConfig {
            symbols: BTreeMap::new(),
            ..PaperConfig::default()
        };
        for symbol in symbols {
            let timeout = || PaperModeError::Timeout {
                venue: name.clone(),
                symbol: symbol.clone(),
            };
            let price_err = |e: orrery_actors::exchanges::VenueError| PaperModeError::Price {
                venue: name.clone(),
                symbol: symbol.clone(),
                reason: e.to_string(),
            };
            let quote = tokio::time::timeout(FETCH_DEADLINE, live.quote(&symbol))
                .await
                .map_err(|_| timeout())?
                .map_err(price_err)?;
            let instrument = tokio::time::timeout(FETCH_DEADLINE, live.instrument(&symbol))
                .await
                .map_err(|_| timeout())?
                .map_err(price_err)?;
            tracing::info!(
                venue = %name,
                symbol = %symbol,
                price = %quote.mid().normalize(),
                "--paper: seeded the paper market from the live quote"
            );
            paper.symbols.insert(
                symbol.clone(),
                PaperSymbolConfig {
                    initial_price: Some(quote.mid()),
                    tick_size: Some(instrument.tick_size),
                    lot_size: Some(instrument.lot_size),
                    min_notional: Some(instrument.min_notional),
                    max_leverage: Some(instrument.max_leverage.min(paper.max_leverage)),
                    ..PaperSymbolConfig::default()
                },
            );
        }
        replaced.insert(name.clone(), VenueConfig::Paper(paper));
    }
    config.exchanges.venues.extend(replaced);
    config.engine.data_dir = config.engine.data_dir.join("paper");
    Ok(config)
}
