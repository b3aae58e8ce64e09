//! The supervised websocket feeds of a Binance spot venue with `streams = true`: the
//! market-data connection (`feed-<venue>`) and the account's user-data connection
//! (`feed-<venue>-user`), each a child of the exchange supervisor built from config.
//!
//! Owns: what each feed's factory builds — the market feed's stream names (the symbols
//! the venue's agents trade and its `symbols`, the agents' timeframes), its depth
//! snapshots through a REST venue drawing from the account's shared limits, and the user
//! feed's listen key (the account's API key from `BINANCE_API_KEY`, its REST calls drawing
//! from the same limits) and its sink into the order gateway. Never: trades, or holds an
//! actor's address (the gateway is reached through its slot, so a restarted gateway keeps
//! receiving pushed updates).

use std::sync::Arc;

use orrery_actors::clock::SharedClock;
use orrery_actors::exchanges::account::{AccountLimits, Endpoint};
use orrery_actors::exchanges::binance::{BinanceConfig, BinanceSpotVenue, API_KEY_ENV};
use orrery_actors::exchanges::gateway::OrderGateway;
use orrery_actors::exchanges::stream::binance::listen_key::{self, DEFAULT_KEEP_ALIVE};
use orrery_actors::exchanges::stream::binance::spot::{self, DepthSource};
use orrery_actors::exchanges::stream::binance::{
    ApiKey, ListenKeyApi, ListenKeyLifecycle, SpotMarketProtocol, SpotUserProtocol,
};
use orrery_actors::exchanges::stream::{StreamBook, StreamFeed};
use orrery_actors::supervisor::{ChildSpec, Slot, StartError};

use crate::config::Config;

/// How long a user-stream channel may be quiet before status calls it stale.
const USER_QUIET: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The symbols the market feed streams: those the venue's agents trade, and its own.
fn symbols(config: &Config, venue: &str, b: &BinanceConfig) -> Vec<String> {
    let mut s = crate::status::configured_symbols(config, venue);
    s.extend(b.symbols.iter().cloned());
    s.sort();
    s.dedup();
    s
}

/// The account's shared limits as the endpoint of a stream's REST calls (`None`: the
/// venue's limits of its own).
fn endpoint(
    venue: &str,
    b: &BinanceConfig,
    account: &Option<Result<AccountLimits, String>>,
) -> Result<Option<Endpoint>, StartError> {
    match account {
        None => Ok(None),
        Some(Err(why)) => Err(StartError::failed(why)),
        Some(Ok(account)) => Ok(Some(Endpoint {
            base_url: b
                .endpoints()
                .into_iter()
                .next()
                .unwrap_or_else(|| b.base_url.clone()),
            connector: format!("feed-{venue}"),
            account: account.clone(),
            breaker: None,
        })),
    }
}

/// `feed-<venue>`: bookTicker, aggTrade, klines and diff-depth on one combined connection.
pub(crate) fn market_spec(
    id: String,
    venue: &str,
    b: BinanceConfig,
    config: &Config,
    account: Option<Result<AccountLimits, String>>,
    clock: SharedClock,
    streams: StreamBook,
) -> ChildSpec {
    let venue = venue.to_string();
    let symbols = symbols(config, &venue, &b);
    let timeframes = crate::status::configured_timeframes(config, &venue);
    ChildSpec::in_slot(id, Slot::new(), move |_| {
        let url = b.stream_url();
        let feed = streams.register(&venue, &url, b.stream_stale_after);
        let ep = endpoint(&venue, &b, &account)?;
        // Depth snapshots are REST reads of this account; without keys the venue cannot be
        // opened, and the feed streams quotes, trades and candles without depth books.
        let depth: Option<Arc<dyn DepthSource>> = match BinanceSpotVenue::open_at(
            &venue,
            &b,
            clock.clone(),
            &orrery_actors::env::process_env,
            ep.as_ref(),
        ) {
            Ok(rest) => Some(Arc::new(rest)),
            Err(e) => {
                tracing::warn!(venue = %venue, error = %e, "no REST venue for depth snapshots; the market stream runs without depth books");
                None
            }
        };
        let protocol =
            SpotMarketProtocol::new(&venue, &b, &symbols, &timeframes, depth, clock.clone())
                .with_max_lifetime(b.stream_max_lifetime);
        Ok(StreamFeed::new(
            spot::settings(&venue, &url, b.stream_stale_after),
            Box::new(protocol),
            feed,
        ))
    })
}

/// `feed-<venue>-user`: the listen-key user data stream; order updates and fills go to the
/// gateway in `gateway`.
pub(crate) fn user_spec(
    id: String,
    venue: &str,
    b: BinanceConfig,
    account: Option<Result<AccountLimits, String>>,
    clock: SharedClock,
    streams: StreamBook,
    gateway: Slot<OrderGateway>,
) -> ChildSpec {
    let venue = venue.to_string();
    ChildSpec::in_slot(id, Slot::new(), move |_| {
        let url = b.stream_url();
        // An account without activity sends nothing for hours: silence on the user stream
        // is normal, so its channels are never called stale (which would count resyncs);
        // its liveness is the connection's (the server's pings).
        let feed = streams.register_user(&venue, &url, USER_QUIET);
        let key = orrery_actors::env::non_empty(&orrery_actors::env::process_env, API_KEY_ENV)
            .ok_or_else(|| {
                StartError::failed(format!(
                    "binance venue `{venue}`: {API_KEY_ENV} is not set; the user data stream needs the account's API key"
                ))
            })?;
        let base = b
            .endpoints()
            .into_iter()
            .next()
            .unwrap_or_else(|| b.base_url.clone());
        let mut api = ListenKeyApi::new(
            &venue,
            &base,
            listen_key::SPOT,
            ApiKey::new(key),
            b.request_timeout,
            clock.clone(),
        )
        .map_err(StartError::failed)?;
        if let Some(Ok(account)) = &account {
            api = api.with_limits(account.limits.clone());
        }
        let protocol =
            SpotUserProtocol::new(&venue, &b, ListenKeyLifecycle::new(api, DEFAULT_KEEP_ALIVE))
                .with_sink(OrderGateway::push_sink(gateway.clone()))
                .with_market(streams.clone());
        Ok(StreamFeed::new(
            spot::settings(&venue, &url, USER_QUIET),
            Box::new(protocol),
            feed,
        ))
    })
}
