//! Public reads of live venues before the engine starts: `--paper` (run any configuration
//! without touching a live account) and the start-up check of agent symbols against each
//! live venue's instrument list ([`check_live_symbols`]).
//!
//! Owns: turning a [`Config`] into its paper twin. Each live venue (Hyperliquid, Binance
//! spot and USDⓈ-M futures)
//! becomes a paper venue of the same name, so agents, orders and reports keep their venue
//! names, seeded from that venue's current market: for each symbol its agents trade (and,
//! for Binance spot and futures, their `symbols`), the live connector is asked once for the quote and the
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
use orrery_actors::exchanges::hyperliquid::HyperliquidVenue;
use orrery_actors::exchanges::paper::{PaperConfig, PaperSymbolConfig};
use orrery_actors::exchanges::{Venue, VenueError};

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

/// A live venue opened for public reads (quotes, instruments); `None` for paper.
fn open_for_reads(
    name: &str,
    venue: &VenueConfig,
) -> Result<Option<Arc<dyn Venue>>, PaperModeError> {
    let open_err = |reason: String| PaperModeError::Open {
        venue: name.to_string(),
        reason,
    };
    Ok(Some(match venue {
        VenueConfig::Paper(_) => return Ok(None),
        VenueConfig::BinanceFutures(f) => {
            orrery_actors::exchanges::binance_futures::open_public(name, f, system_clock())
                .map_err(|e| open_err(e.to_string()))?
        }
        VenueConfig::Hyperliquid(hl) => Arc::new(
            HyperliquidVenue::open(name, hl, &orrery_actors::env::process_env, system_clock())
                .map_err(|e| open_err(e.to_string()))?,
        ),
        VenueConfig::Binance(b) => {
            // Quotes and exchange info are public endpoints: no key is sent for them, so
            // these reads need none. A real key, if exported, is used as is.
            let env = |var: &str| {
                orrery_actors::env::process_env(var).or_else(|| {
                    [API_KEY_ENV, API_SECRET_ENV]
                        .contains(&var)
                        .then(|| "public-reads-only".to_string())
                })
            };
            Arc::new(
                BinanceSpotVenue::open_with_env(name, b, system_clock(), &env)
                    .map_err(|e| open_err(e.to_string()))?,
            )
        }
    }))
}

/// A trading agent symbol its live venue does not list.
#[derive(Debug, thiserror::Error)]
#[error("config key `agents.trading[{agent}].symbols`: venue `{venue}` does not list `{symbol}` ({reason}); fix the symbol or remove it")]
pub struct UnknownLiveSymbol {
    pub agent: usize,
    pub venue: String,
    pub symbol: String,
    pub reason: String,
}

/// Asks each live venue for the instrument of every symbol its agents trade, before the
/// engine starts. A symbol the venue answers is unknown ([`VenueError::UnknownSymbol`],
/// a type, not a message) is an error; a venue that cannot answer now is only logged:
/// outages are the gateway's to handle, and the engine must be able to start during one.
pub async fn check_live_symbols(config: &Config) -> Result<(), Vec<UnknownLiveSymbol>> {
    let mut unknown = Vec::new();
    for (name, venue) in &config.exchanges.venues {
        let live = match open_for_reads(name, venue) {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(venue = %name, "symbols not checked at start: {e}");
                continue;
            }
        };
        for (i, agent) in config.agents.trading.iter().enumerate() {
            if &agent.venue != name {
                continue;
            }
            for symbol in &agent.symbols {
                match tokio::time::timeout(FETCH_DEADLINE, live.instrument(symbol)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e @ VenueError::UnknownSymbol { .. })) => {
                        unknown.push(UnknownLiveSymbol {
                            agent: i,
                            venue: name.clone(),
                            symbol: symbol.clone(),
                            reason: e.to_string(),
                        })
                    }
                    Ok(Err(e)) => tracing::warn!(
                        venue = %name, symbol = %symbol,
                        "symbol not checked at start, the venue did not answer: {e}"
                    ),
                    Err(_) => tracing::warn!(
                        venue = %name, symbol = %symbol,
                        "symbol not checked at start: no answer within {FETCH_DEADLINE:?}"
                    ),
                }
            }
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(unknown)
    }
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
            .chain(
                config
                    .agents
                    .pipeline
                    .iter()
                    .filter(|p| &p.venue == name)
                    .flat_map(|p| p.symbols.iter().cloned()),
            )
            .collect();
        if let VenueConfig::Binance(b) = venue {
            symbols.extend(b.symbols.iter().cloned());
        }
        if let VenueConfig::BinanceFutures(f) = venue {
            symbols.extend(f.symbols.iter().cloned());
        }
        let Some(live) = open_for_reads(name, venue)? else {
            continue;
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
            let price_err = |e: VenueError| PaperModeError::Price {
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
