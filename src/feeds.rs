//! The supervised websocket feeds of Binance USDⓈ-M futures venues: how the tree builds
//! the market connection (`feed-<venue>`) and the user data connection
//! (`feed-<venue>-user`) from a venue's config.
//!
//! Owns: the stream settings of a Binance futures connection (the server pings every 3
//! minutes, so a connection that sends nothing — not even a ping — for 4 minutes is
//! replaced), where each feed's state is registered (the market feed under the venue's
//! name, whose fresh quotes the gateway serves; the user feed apart from it with
//! [`StreamBook::register_user`], so its connection never decides whether quotes are
//! fresh), and the user feed's API key (from `BINANCE_FUTURES_API_KEY`, checked at start;
//! it goes only into the listen-key calls' header) and limits (the account's shared
//! pools, when the account has them). Never: the protocols themselves
//! (`orrery_actors::exchanges::stream::binance_futures`).

use std::time::Duration;

use orrery_actors::clock::SharedClock;
use orrery_actors::exchanges::account::AccountLimits;
use orrery_actors::exchanges::binance_futures::{BinanceFuturesConfig, API_KEY_ENV};
use orrery_actors::exchanges::gateway::OrderGateway;
use orrery_actors::exchanges::stream::binance::listen_key::{
    ApiKey, ListenKeyApi, ListenKeyLifecycle, DEFAULT_KEEP_ALIVE, USDM_FUTURES,
};
use orrery_actors::exchanges::stream::binance_futures::{
    FuturesMarketProtocol, FuturesUserProtocol,
};
use orrery_actors::exchanges::stream::{StreamBook, StreamFeed, StreamSettings};
use orrery_actors::supervisor::{ChildSpec, Slot, StartError};

/// The server's ping period (developers.binance.com: "The websocket server will send a
/// ping frame every 3 minutes").
const SERVER_PING_EVERY: Duration = Duration::from_secs(180);

/// How long the user stream may carry no account event before its channels are shown
/// stale.
const USER_QUIET: Duration = Duration::from_secs(3600);

/// Settings of one Binance futures connection: no client heartbeat (the protocol sends
/// none); silence beyond the server's ping period plus a minute ends the connection.
pub fn settings(name: &str, f: &BinanceFuturesConfig) -> StreamSettings {
    let mut s = StreamSettings::new(name, &f.ws_url, f.stream_stale_after);
    s.ping_interval = SERVER_PING_EVERY;
    s.pong_timeout = Duration::from_secs(60);
    s
}

/// `feed-<venue>`: mark price, trades, book ticker and liquidations on one combined
/// connection.
pub fn futures_market_feed(
    id: String,
    venue: &str,
    f: &BinanceFuturesConfig,
    streams: StreamBook,
) -> ChildSpec {
    let (venue, f) = (venue.to_string(), f.clone());
    ChildSpec::in_slot(id, Slot::new(), move |_| {
        let feed = streams.register(&venue, &f.ws_url, f.stream_stale_after);
        let protocol = FuturesMarketProtocol::new(&f);
        Ok(StreamFeed::new(
            settings(&venue, &f),
            Box::new(protocol),
            feed,
        ))
    })
}

/// `user-feed-<venue>`: the account's user data stream, pushing order updates and fills
/// into the gateway's mailbox.
pub fn futures_user_feed(
    id: String,
    venue: &str,
    f: &BinanceFuturesConfig,
    streams: StreamBook,
    gateway: Slot<OrderGateway>,
    clock: SharedClock,
    account: Option<Result<AccountLimits, String>>,
) -> ChildSpec {
    let (venue, f) = (venue.to_string(), f.clone());
    ChildSpec::in_slot(id, Slot::new(), move |_| {
        let key = std::env::var(API_KEY_ENV).map_err(|_| {
            StartError::failed(format!(
                "the user data stream of `{venue}` needs {API_KEY_ENV} in the environment"
            ))
        })?;
        let base = f
            .endpoints()
            .into_iter()
            .next()
            .unwrap_or(f.base_url.clone());
        let mut api = ListenKeyApi::new(
            &venue,
            &base,
            USDM_FUTURES,
            ApiKey::new(key),
            f.request_timeout,
            clock.clone(),
        )
        .map_err(StartError::failed)?;
        if let Some(Ok(account)) = &account {
            api = api.with_limits(account.limits.clone());
        }
        // Account events are sparse: a quiet hour is not a stale feed. What matters here
        // is the connected flag; REST reconciliation covers any gap.
        let feed = streams.register_user(&venue, &f.ws_url, USER_QUIET);
        let name = feed.venue().to_string();
        let protocol = FuturesUserProtocol::new(
            &venue,
            &f,
            ListenKeyLifecycle::new(api, DEFAULT_KEEP_ALIVE),
            OrderGateway::push_sink(gateway.clone()),
        );
        let mut s = settings(&name, &f);
        s.stale_after = USER_QUIET;
        Ok(StreamFeed::new(s, Box::new(protocol), feed))
    })
}
