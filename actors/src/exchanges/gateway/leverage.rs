//! Leverage per symbol: set at the venue, the figure orders are judged at, and updates
//! whose outcome is unknown.
//!
//! Owns: the leverage the gateway believes each symbol has (the last the venue confirmed,
//! the lower of old and new while an update cannot be read back) and reading it back.
//! Never: sends a leverage update again on its own.

use super::*;

impl GatewayCore {
    pub async fn set_leverage(
        &self,
        venue: &str,
        symbol: &str,
        leverage: u32,
    ) -> GatewayResult<()> {
        if leverage == 0 || leverage > self.limits.max_leverage {
            return Err(GatewayError::Invalid {
                client_id: ClientOrderId::generate(),
                reason: format!(
                    "leverage {leverage}x is outside 1..={}x (risk.max_leverage)",
                    self.limits.max_leverage
                ),
            });
        }
        let link = self.link(venue)?;
        let s = symbol.to_string();
        // The venue's turn around the send only (as for a cancel): serialised with the
        // venue's orders and with a newer generation's reconciliation; the read-back of
        // an unknown outcome below runs without it.
        self.owned_now(venue).await?;
        let turn = self.venue_turn(venue).await?;
        self.fenced(venue)?;
        self.owned_already(venue)?;
        let sent = self
            .call(
                venue,
                VenueCommand::SetLeverage {
                    symbol: s,
                    leverage,
                },
            )
            .await;
        drop(turn);
        match sent {
            Ok(()) => {
                link.leverage.write().insert(symbol.to_string(), leverage);
                link.unsettled_leverage.lock().remove(symbol);
                Ok(())
            }
            Err(err) if outcome_unknown(&err) => {
                self.settle_leverage(venue, symbol, leverage, err).await
            }
            Err(err) => Err(err),
        }
    }

    /// The leverage the venue applies to `symbol`, read from the venue.
    pub async fn venue_leverage(&self, venue: &str, symbol: &str) -> GatewayResult<u32> {
        let s = symbol.to_string();
        self.call(venue, VenueCommand::Leverage { symbol: s }).await
    }

    /// A leverage update whose outcome is unknown: the venue's own figure, read back, is
    /// recorded; the update is never sent again on its own.
    pub(super) async fn settle_leverage(
        &self,
        venue: &str,
        symbol: &str,
        asked: u32,
        err: GatewayError,
    ) -> GatewayResult<()> {
        let link = self.link(venue)?;
        let what = format!("the leverage update of {symbol} to {asked}x");
        let (outcome, result) = match self.venue_leverage(venue, symbol).await {
            Ok(actual) => {
                link.leverage.write().insert(symbol.to_string(), actual);
                link.unsettled_leverage.lock().remove(symbol);
                if actual == asked {
                    ("applied", Ok(()))
                } else {
                    let reason = format!(
                        "its outcome was unknown ({err}); the venue reports {actual}x; the update was not re-sent"
                    );
                    (
                        "not_applied",
                        Err(GatewayError::NotApplied {
                            venue: venue.to_string(),
                            what,
                            reason,
                        }),
                    )
                }
            }
            Err(read) => {
                // Either figure may be in force: orders are judged at the lower one (the
                // stricter margin check) until reconciliation reads it back.
                let previous = self.leverage_of(venue, symbol);
                link.leverage
                    .write()
                    .insert(symbol.to_string(), previous.min(asked));
                link.unsettled_leverage.lock().insert(symbol.to_string());
                let reason = format!("{err}; reading the leverage back failed too: {read}");
                (
                    "unresolved",
                    Err(GatewayError::Unresolved {
                        venue: venue.to_string(),
                        what,
                        reason,
                    }),
                )
            }
        };
        metrics::counter!(names::UNKNOWN_OUTCOMES, "venue" => venue.to_string(), "action" => "leverage", "outcome" => outcome).increment(1);
        tracing::warn!(
            venue,
            symbol,
            asked,
            outcome,
            "leverage update with an unknown outcome settled by reading the venue"
        );
        result
    }

    /// Reads back the leverage of symbols whose update could not be settled at the time.
    pub(super) async fn settle_unsettled_leverage(&self, venue: &str) -> GatewayResult<()> {
        let link = self.link(venue)?;
        let symbols: Vec<String> = link.unsettled_leverage.lock().iter().cloned().collect();
        for symbol in symbols {
            let actual = self.venue_leverage(venue, &symbol).await?;
            link.leverage.write().insert(symbol.clone(), actual);
            link.unsettled_leverage.lock().remove(&symbol);
            tracing::info!(
                venue,
                symbol,
                leverage = actual,
                "leverage read back from the venue"
            );
        }
        Ok(())
    }

    /// The leverage orders in `symbol` are judged at: the last one the venue confirmed
    /// (the lower of old and new while an update's outcome cannot be read back), else
    /// `default_leverage`.
    pub fn leverage_of(&self, venue: &str, symbol: &str) -> u32 {
        self.venues
            .get(venue)
            .and_then(|l| l.leverage.read().get(symbol).copied())
            .unwrap_or(self.config.default_leverage)
    }
}
