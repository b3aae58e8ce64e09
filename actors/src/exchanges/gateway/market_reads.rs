//! The gateway as market data's host: [`VenueReads`] over the venues' connectors.
//!
//! Owns: the choice between a venue's fresh websocket quote or candles and its REST read
//! (candles: a REST read seeds the stream's series, which streamed candles then extend; a
//! series with a gap or gone quiet is read from REST again) (a streamed
//! quote is used only while [`StreamBook::fresh_quote`](crate::exchanges::stream::StreamBook::fresh_quote)
//! says it is fresh; stale or disconnected means REST), which gateway errors a market-data read may fall back from (availability
//! failures: timeout, unavailable, rate limited, the connector down) and the mode change
//! market data asks for at its emergency level. Never: decides a fallback (market data
//! does) or reads account state for it.

use super::*;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::exchanges::market_data::VenueReads;
use crate::resilience::ErrorClass;

impl VenueReads for GatewayCore {
    type Error = GatewayError;

    fn live_quote<'a>(
        &'a self,
        venue: &'a str,
        symbol: &'a str,
    ) -> BoxFuture<'a, GatewayResult<Quote>> {
        if let Some(quote) = self.feed(venue).and_then(|f| f.fresh_quote(symbol)) {
            return futures::future::ready(Ok(quote)).boxed();
        }
        self.call(
            venue,
            VenueCommand::Quote {
                symbol: symbol.to_string(),
            },
        )
        .boxed()
    }

    fn live_candles<'a>(
        &'a self,
        venue: &'a str,
        symbol: &'a str,
        timeframe: Timeframe,
        lookback: usize,
    ) -> BoxFuture<'a, GatewayResult<Vec<Candle>>> {
        let feed = self.feed(venue);
        if let Some(candles) = feed
            .as_ref()
            .and_then(|f| f.fresh_candles(symbol, timeframe, lookback))
        {
            return futures::future::ready(Ok(candles)).boxed();
        }
        async move {
            let candles: Vec<Candle> = self
                .call(
                    venue,
                    VenueCommand::Candles {
                        symbol: symbol.to_string(),
                        timeframe,
                        lookback,
                    },
                )
                .await?;
            // The stream extends this history from now on (when it carries this timeframe).
            if let Some(feed) = &feed {
                feed.seed_candles(symbol, timeframe, &candles);
            }
            Ok(candles)
        }
        .boxed()
    }

    fn falls_back(err: &GatewayError) -> bool {
        match err {
            GatewayError::Venue(e) => matches!(
                e.class(),
                ErrorClass::Timeout | ErrorClass::Unavailable | ErrorClass::RateLimited { .. }
            ),
            GatewayError::ConnectorDown { .. } => true,
            _ => false,
        }
    }

    fn mode(&self) -> TradingMode {
        GatewayCore::mode(self).mode
    }

    /// Market data is the only caller: the mode's cause is [`ModeCause::MarketData`].
    fn restrict(&self, mode: TradingMode, reason: &str) -> GatewayResult<()> {
        self.set_mode(mode, ModeCause::MarketData, reason)
            .map(|_| ())
    }
}
