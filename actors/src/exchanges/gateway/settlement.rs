//! Sends whose outcome is unknown, settled by reading the venue, never by sending again.
//!
//! Owns: the rule that decides on types whether a failed send may have reached the venue
//! ([`outcome_unknown`]), the lookup of an order by client id, and the settlement of a lost
//! cancel. Never: re-sends an order or a cancel.
//!
//! ## Unknown outcomes and the venue's deadline
//!
//! A send whose answer is lost (timeout, connection reset, HTTP 5xx, unreadable answer) is
//! settled by a read, never by sending it again: an order by looking it up by client id; a
//! cancel by looking the order up and recording what the venue says (cancelled, filled, or
//! still open — a second cancel could race the first, so none is sent); a leverage update
//! by reading the venue's leverage for the symbol. What cannot be read at once is left to
//! reconciliation, which reads it before the venue takes orders again.
//!
//! Whether a send may have left the process is decided on types, never on error text: a
//! venue error says so itself (`OutcomeUnknown`, `Timeout`), and a connector that did not
//! answer says how ([`DeliveryFailure`] from the slot's [`SlotError`]): `Vacant` and `Full`
//! mean the call was never delivered, so the order is recorded rejected ("never sent");
//! `Closed` and `Timeout` mean it may have been sent, so it is unknown and settled by a read.

use super::*;

impl GatewayCore {
    /// Looks an order up at the venue by client id and takes over what it says.
    pub(super) async fn resolve(
        &self,
        venue: &str,
        symbol: &str,
        client_id: &ClientOrderId,
    ) -> GatewayResult<LedgerEntry> {
        let (s, id) = (symbol.to_string(), client_id.clone());
        let found = self
            .call(
                venue,
                VenueCommand::QueryOrder {
                    symbol: s,
                    client_id: id,
                },
            )
            .await;
        match found {
            Ok(Some(order)) => {
                let now = self.clock.now_ms();
                Ok(self
                    .ledger
                    .update(client_id, |e| {
                        e.apply_venue_order(&order, now);
                    })
                    .await?)
            }
            // The venue has no record yet, or cannot be asked now: stays Unknown until
            // reconciliation settles it.
            Ok(None) | Err(_) => self
                .ledger
                .get(client_id)?
                .ok_or_else(|| GatewayError::UnknownOrder(client_id.clone())),
        }
    }

    /// A cancel whose outcome is unknown (timeout, reset, 5xx): the venue is asked what
    /// became of the order — cancelled, filled, still open — and the ledger takes that.
    /// The cancel is never sent again on its own: a second cancel could race the first.
    /// Still open means the first did not take (or has not yet); the caller decides, and
    /// reconciliation keeps reading the order while it is open.
    pub(super) async fn settle_cancel(
        &self,
        entry: &LedgerEntry,
        err: GatewayError,
    ) -> GatewayResult<OrderReport> {
        let venue = entry.venue.clone();
        let what = format!("the cancel of order {}", entry.client_id);
        let (s, id) = (entry.request.symbol.clone(), entry.client_id.clone());
        let found = self
            .call(
                &venue,
                VenueCommand::QueryOrder {
                    symbol: s,
                    client_id: id,
                },
            )
            .await;
        let (outcome, result) = match found {
            Ok(Some(order)) => {
                let now = self.clock.now_ms();
                let still_open = (!order.status.is_terminal()).then(|| {
                    format!(
                        "its outcome was unknown ({err}); the venue still has the order {}; the cancel was not re-sent",
                        order.status
                    )
                });
                let updated = self
                    .ledger
                    .update(&entry.client_id, |e| {
                        e.apply_venue_order(&order, now);
                        if let Some(reason) = &still_open {
                            e.reason = Some(format!("cancel: {reason}"));
                        }
                    })
                    .await?;
                self.count_order(&updated);
                match still_open {
                    None => (updated.status.as_str(), Ok(OrderReport::from(&updated))),
                    Some(reason) => (
                        "still_open",
                        Err(GatewayError::NotApplied {
                            venue: venue.clone(),
                            what,
                            reason,
                        }),
                    ),
                }
            }
            Ok(None) => (
                "unresolved",
                Err(GatewayError::Unresolved {
                    venue: venue.clone(),
                    what,
                    reason: format!("{err}; the venue has no order with this client id"),
                }),
            ),
            Err(read) => (
                "unresolved",
                Err(GatewayError::Unresolved {
                    venue: venue.clone(),
                    what,
                    reason: format!("{err}; asking the venue about the order failed too: {read}"),
                }),
            ),
        };
        metrics::counter!(names::UNKNOWN_OUTCOMES, "venue" => venue.clone(), "action" => "cancel", "outcome" => outcome).increment(1);
        tracing::warn!(venue, client_id = %entry.client_id, outcome, "cancel with an unknown outcome settled by asking the venue");
        result
    }
}

/// Whether a failed send may still have reached the venue. Decided on types only: a
/// connector that was never reached (`Vacant`, `Full`) sent nothing; one that stopped or
/// did not answer (`Closed`, `Timeout`) may have.
pub(super) fn outcome_unknown(err: &GatewayError) -> bool {
    match err {
        GatewayError::Venue(VenueError::OutcomeUnknown { .. } | VenueError::Timeout { .. }) => true,
        GatewayError::ConnectorDown { delivery, .. } => delivery.may_have_been_sent(),
        _ => false,
    }
}
