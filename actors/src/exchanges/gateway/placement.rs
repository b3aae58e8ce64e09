//! The order path: an intent becomes an exact venue order, is judged by the risk gate,
//! written to the ledger and sent; closes, the "AI entry" and cancels go the same way.
//!
//! Owns: [`OrderIntent`] / [`OrderReport`], sizing to the lot, the checks before the
//! ledger, the durable intent before the send, and taking the venue's answer. Never: sends
//! an order again (an unknown outcome goes to [`super::settlement`]), or decides on error
//! text whether an order was sent.
//!
//! ## Validation before the ledger
//!
//! An order that cannot be right is refused with [`GatewayError::InvalidOrder`] and one
//! [`OrderProblem`] per cause (negative or zero amount, a limit price that is not
//! positive, a size below the lot, a value below the venue's minimum, a reduce-only order
//! with nothing to reduce) before anything is written: the ledger holds only orders that
//! were meant to reach a venue. Risk-gate refusals are still recorded (as rejected): they
//! are decisions about an order that was valid.
//!
//! ## Durability of the venue's answer
//!
//! The intent is flushed to disk before any byte of an order is sent; that never changes.
//! The venue's answer to the send (acked, filled, rejected) is written to sled but not
//! flushed before the caller hears it: it reaches disk with the next durable write of
//! anything (the next order's intent, a fill, a reconciliation update — a flush covers
//! every earlier write) or with sled's own flush within half a second. That saves one
//! fsync per order. Correctness does not rest on that write:
//! - A crash that loses it leaves the entry as its durable intent. On start the gateway
//!   refuses orders until reconciliation has looked every open entry up at the venue by
//!   client id, and takes the venue's answer: the status and filled size the caller was
//!   told (or a later state the order moved to since, such as a resting order filling). An
//!   average price the lookup lacks comes from the order's fills.
//! - An order the venue refused is unknown to it or known as rejected: either way
//!   reconciliation closes the intent as rejected once its deadline has passed, which is
//!   what the caller was told.
//! - So every acknowledged order is in the ledger as acknowledged once the gateway is ready
//!   again; the crash tests (`tests/crash_recovery.rs`, `tests/hyperliquid.rs`, the latter
//!   also against a venue that applies orders 0.5–3 s late) kill the engine mid-flow and
//!   check exactly that.

use super::*;

/// How much to trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Base units (e.g. 0.01 BTC), rounded down to the lot.
    Base(Decimal),
    /// USD notional at the current quote, rounded down to the lot.
    Usd(Decimal),
}

/// How to price it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    Market,
    Limit {
        price: Decimal,
        tif: TimeInForce,
    },
    /// A conditional order resting at the venue until the market reaches
    /// `trigger_price`, then a market order, or a limit order at `limit_price` (a stop
    /// loss or a take profit; venues map it onto their own types, e.g. Binance futures
    /// `STOP_MARKET` / `TAKE_PROFIT_MARKET`).
    Trigger {
        trigger_price: Decimal,
        kind: TriggerKind,
        limit_price: Option<Decimal>,
    },
}

/// One order as an agent or the operator means it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    pub amount: Amount,
    pub pricing: Pricing,
    pub reduce_only: bool,
    /// Who asks: `agent:<name>`, `risk`, `manual`.
    pub origin: String,
}

/// What became of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReport {
    pub client_id: ClientOrderId,
    pub venue: String,
    pub symbol: String,
    pub side: Side,
    pub size: Decimal,
    pub status: OrderStatus,
    pub filled_size: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub reason: Option<String>,
    /// Limit price of a limit order (`None` for a market order), for `orrery status`.
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    /// When the order was written to the ledger (ms since the epoch), for its age.
    #[serde(default)]
    pub created_ms: crate::clock::Millis,
}

impl From<&LedgerEntry> for OrderReport {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            client_id: e.client_id.clone(),
            venue: e.venue.clone(),
            symbol: e.request.symbol.clone(),
            side: e.request.side,
            size: e.request.size,
            status: e.status,
            filled_size: e.filled_size,
            avg_fill_price: e.avg_fill_price,
            reason: e.reason.clone(),
            limit_price: e.request.order_type.limit_price(),
            created_ms: e.created_ms,
        }
    }
}

impl GatewayCore {
    /// Places one order: size → risk gate → durable intent → send → ledger.
    pub async fn place(&self, intent: OrderIntent) -> GatewayResult<OrderReport> {
        let priority = order_priority(intent.reduce_only);
        within(priority, self.place_with(intent, false)).await
    }

    /// [`GatewayCore::place`]; `emergency_close` marks a kill-switch close, which the
    /// risk gate admits while halted if it only reduces a position.
    pub(super) async fn place_with(
        &self,
        intent: OrderIntent,
        emergency_close: bool,
    ) -> GatewayResult<OrderReport> {
        self.place_as(intent, emergency_close, None).await
    }

    /// Places one order under the caller's client id: when the ledger already holds that
    /// id, its entry is the answer and nothing is sent again (an agent that derives the
    /// id from what the order is for, such as a copy-trading step, can ask again after a
    /// restart without doubling it). The check runs in the venue's turn, after the
    /// venue's first reconciliation, so a crashed send's entry has its venue answer.
    pub async fn place_keyed(
        &self,
        intent: OrderIntent,
        client_id: ClientOrderId,
    ) -> GatewayResult<OrderReport> {
        let priority = order_priority(intent.reduce_only);
        within(priority, self.place_as(intent, false, Some(client_id))).await
    }

    async fn place_as(
        &self,
        intent: OrderIntent,
        emergency_close: bool,
        keyed: Option<ClientOrderId>,
    ) -> GatewayResult<OrderReport> {
        self.link(&intent.venue)?;
        if let Some(problem) = OrderProblem::of_intent(&intent) {
            tracing::info!(venue = %intent.venue, symbol = %intent.symbol, side = %intent.side, origin = %intent.origin, problem = %problem, "order refused before the ledger");
            return Err(GatewayError::InvalidOrder(problem));
        }
        // In a cluster: this node owns the venue (lease held, taken over) and the intent
        // carries the lease's fencing token (see `ownership`).
        let token = self.owned(&intent.venue).await?;
        self.ready(&intent.venue).await?;
        let _serial = self.venue_turn(&intent.venue).await?;
        let started = Instant::now();
        let venue = intent.venue.clone();
        let client_id = match keyed {
            Some(id) => {
                if let Some(entry) = self.ledger.get(&id)? {
                    tracing::info!(venue = %intent.venue, symbol = %intent.symbol, client_id = %id, status = ?entry.status, origin = %intent.origin, "order already in the ledger under its client id; not sent again");
                    return Ok(OrderReport::from(&entry));
                }
                id
            }
            None => ClientOrderId::generate(),
        };

        // Independent reads, in flight together: the slowest sets the wait, not the sum.
        // Their errors are taken in this order (not whichever lands first), so an unknown
        // symbol is reported as such by the instrument read.
        let (instrument, quote, state) = tokio::join!(
            self.instrument(&venue, &intent.symbol),
            self.quote(&venue, &intent.symbol),
            self.account_state(&venue),
        );
        let (instrument, quote, state) = (instrument?, quote?, state?);
        let position_size = state
            .position(&intent.symbol)
            .map(|p| p.size)
            .unwrap_or_default();
        let account = state.account;

        let reference = match intent.pricing {
            Pricing::Limit { price, .. } => price,
            // What the order trades at once triggered.
            Pricing::Trigger {
                trigger_price,
                limit_price,
                ..
            } => limit_price.unwrap_or(trigger_price),
            Pricing::Market => match intent.side {
                Side::Buy => quote.ask,
                Side::Sell => quote.bid,
            },
        };
        let mut size = match intent.amount {
            Amount::Base(s) => instrument.round_size_down(s),
            Amount::Usd(usd) => size_for_usd(&instrument, usd, reference),
        };
        if intent.reduce_only {
            // Never send more than the position: what remains would open new exposure.
            size = size.min(instrument.round_size_down(position_size.abs()));
        }
        let order_type = match intent.pricing {
            Pricing::Market => OrderType::Market {
                max_slippage: self.config.market_slippage_pct / Decimal::from(100),
            },
            Pricing::Limit { price, tif } => OrderType::Limit {
                price: instrument.round_price(price),
                tif,
            },
            Pricing::Trigger {
                trigger_price,
                kind,
                limit_price,
            } => OrderType::Trigger {
                trigger_price: instrument.round_price(trigger_price),
                kind,
                limit_price: limit_price.map(|p| instrument.round_price(p)),
            },
        };
        // An order that cannot be right is refused before the ledger: nothing is
        // written, nothing is sent.
        let problem = if size <= Decimal::ZERO && intent.reduce_only && position_size.is_zero() {
            Some(OrderProblem::NothingToReduce {
                venue: venue.clone(),
                symbol: intent.symbol.clone(),
                side: intent.side,
            })
        } else if size <= Decimal::ZERO {
            let asked = match intent.amount {
                Amount::Base(b) => format!("{} {}", b.normalize(), intent.symbol),
                Amount::Usd(usd) => format!(
                    "{} USD at {} ({} {})",
                    usd.normalize(),
                    reference.normalize(),
                    (usd / reference).round_dp(8).normalize(),
                    intent.symbol
                ),
            };
            Some(OrderProblem::BelowLot {
                venue: venue.clone(),
                symbol: intent.symbol.clone(),
                asked,
                lot: instrument.lot_size.normalize(),
            })
        } else if size * reference < instrument.min_notional && !intent.reduce_only {
            Some(OrderProblem::BelowMinNotional {
                venue: venue.clone(),
                symbol: intent.symbol.clone(),
                notional: (size * reference).round_dp(2).normalize(),
                min_notional: instrument.min_notional.normalize(),
                lot: instrument.lot_size.normalize(),
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            tracing::info!(venue = %venue, symbol = %intent.symbol, side = %intent.side, origin = %intent.origin, problem = %problem, "order refused before the ledger");
            return Err(GatewayError::InvalidOrder(problem));
        }
        // The venue's deadline is stamped before the intent is written: after it, an
        // order the venue does not show is known never to have been applied.
        let now = self.clock.now_ms();
        let validity = self.order_validity(&venue).await?;
        let request = OrderRequest {
            client_id: client_id.clone(),
            symbol: intent.symbol.clone(),
            side: intent.side,
            size,
            order_type,
            reduce_only: intent.reduce_only,
            valid_until_ms: Some(now + validity.as_millis() as i64),
        };
        let mode = self.mode();
        let view = GateView {
            mode: mode.mode,
            mode_reason: mode.reason.clone(),
            account_value: account.account_value,
            position_size,
        };
        let judgement = Judgement {
            price: reference,
            // A market order's slippage is bounded from this price at the venue, which
            // therefore never reads the market a second time for it.
            reference_price: quote.mid(),
            leverage: self.leverage_of(&venue, &intent.symbol),
            emergency_close,
        };
        // Only the gate makes the approved order the ledger and the venue accept.
        let approved = match risk_gate::approve(&self.limits, request.clone(), judgement, &view) {
            Ok(approved) => approved,
            Err(refusal) => {
                let entry = self
                    .ledger
                    .record_refusal(
                        &venue,
                        request,
                        &intent.origin,
                        now,
                        format!("risk gate: {refusal}"),
                    )
                    .await?;
                self.count_order(&entry);
                metrics::counter!(names::RISK_REFUSALS, "venue" => venue.clone(), "reason" => refusal.label()).increment(1);
                return Err(GatewayError::Refused { client_id, refusal });
            }
        };

        // The intent is on disk before any byte leaves the process.
        self.fenced(&venue)?;
        self.still_owned(&venue, token)?;
        let written = self
            .ledger
            .record_fenced_intent(&venue, &approved, &intent.origin, now, token)
            .await?;
        if let Err(err) = self.fenced(&venue) {
            // A newer gateway started while the intent was written: never sent.
            return Err(self.record_never_sent(&client_id, err).await?);
        }
        // In a cluster, the intent is in Redis too (Redis itself refuses a stale token),
        // and the lease is still this node's with that token right before the send.
        if let Err(err) = self.replicate_intent(&written).await {
            return Err(self.record_never_sent(&client_id, err).await?);
        }
        if let Err(err) = self.still_owned(&venue, token) {
            return Err(self.record_never_sent(&client_id, err).await?);
        }
        let sent = self
            .call(&venue, VenueCommand::PlaceOrder { order: approved })
            .await;
        let entry = match sent {
            // Not fsynced before the reply: the venue keeps this answer, and after a crash
            // reconciliation restores it by client id (see "Durability" in the module docs).
            Ok(order) => {
                let now = self.clock.now_ms();
                self.ledger.record_answer(&client_id, |e| {
                    e.apply_venue_order(&order, now);
                })?
            }
            Err(err) if outcome_unknown(&err) => {
                let reason = err.to_string();
                self.ledger
                    .update(&client_id, |e| {
                        e.status = OrderStatus::Unknown;
                        e.reason = Some(reason);
                    })
                    .await?;
                // Resolve by asking the venue about this client id; never send again.
                self.resolve(&venue, &request.symbol, &client_id).await?
            }
            Err(GatewayError::Venue(err)) => {
                // A refusal: the venue holds no working order, so a lost write of it is
                // settled as "never accepted" by reconciliation, the same final state.
                let reason = err.to_string();
                let entry = self.ledger.record_answer(&client_id, |e| {
                    e.status = OrderStatus::Rejected;
                    e.reason = Some(reason);
                })?;
                self.count_order(&entry);
                return Err(GatewayError::Venue(err));
            }
            Err(err @ GatewayError::ConnectorDown { .. }) => {
                // Never delivered to the connector (outcome_unknown said so by its type):
                // nothing left the process.
                return Err(self.record_never_sent(&client_id, err).await?);
            }
            Err(other) => return Err(other),
        };
        self.count_order(&entry);
        metrics::histogram!(names::ORDER_LATENCY, "venue" => venue)
            .record(started.elapsed().as_secs_f64());
        Ok(OrderReport::from(&entry))
    }

    /// Closes the intent of an order that never left the process as rejected (`never sent:
    /// <why>`), durably before the caller hears, and hands back why.
    async fn record_never_sent(
        &self,
        client_id: &ClientOrderId,
        why: GatewayError,
    ) -> GatewayResult<GatewayError> {
        let reason = format!("never sent: {why}");
        let entry = self
            .ledger
            .update(client_id, |e| {
                e.status = OrderStatus::Rejected;
                e.reason = Some(reason);
            })
            .await?;
        self.count_order(&entry);
        Ok(why)
    }

    /// Closes a position with reduce-only market orders of at most `risk.close_chunk_usd`.
    pub async fn close_position(
        &self,
        venue: &str,
        symbol: &str,
        origin: &str,
    ) -> GatewayResult<Vec<OrderReport>> {
        within(
            Priority::High,
            self.close_position_with(venue, symbol, origin, false),
        )
        .await
    }

    pub(super) async fn close_position_with(
        &self,
        venue: &str,
        symbol: &str,
        origin: &str,
        emergency_close: bool,
    ) -> GatewayResult<Vec<OrderReport>> {
        let mut reports = Vec::new();
        for _ in 0..MAX_CLOSE_CHUNKS {
            let Some(position) = self.position(venue, symbol).await? else {
                break;
            };
            let side = match position.side() {
                Some(Side::Buy) => Side::Sell,
                Some(Side::Sell) => Side::Buy,
                None => break,
            };
            let intent = OrderIntent {
                venue: venue.to_string(),
                symbol: symbol.to_string(),
                side,
                amount: Amount::Usd(
                    self.limits
                        .close_chunk_usd
                        .min(position.notional() * Decimal::TWO),
                ),
                pricing: Pricing::Market,
                reduce_only: true,
                origin: origin.to_string(),
            };
            let report = self.place_with(intent, emergency_close).await?;
            let progressed = report.filled_size > Decimal::ZERO;
            reports.push(report);
            if !progressed {
                break;
            }
        }
        Ok(reports)
    }

    /// Closes every position on one venue (or all venues).
    pub async fn close_all(
        &self,
        venue: Option<&str>,
        origin: &str,
    ) -> GatewayResult<Vec<OrderReport>> {
        within(Priority::High, self.close_all_with(venue, origin, false)).await
    }

    pub(super) async fn close_all_with(
        &self,
        venue: Option<&str>,
        origin: &str,
        emergency_close: bool,
    ) -> GatewayResult<Vec<OrderReport>> {
        let venues: Vec<String> = match venue {
            Some(v) => vec![self.link(v).map(|_| v.to_string())?],
            None => self.venue_names(),
        };
        let mut reports = Vec::new();
        for v in venues {
            for p in self.positions(&v).await? {
                if !p.size.is_zero() {
                    reports.extend(
                        self.close_position_with(&v, &p.symbol, origin, emergency_close)
                            .await?,
                    );
                }
            }
        }
        Ok(reports)
    }

    /// The seed's "AI entry": set leverage, then bring the position in `side` up to
    /// `usd` notional (closing an opposite position first). Does nothing when the
    /// position is already within 3% of the target.
    pub async fn ai_entry(
        &self,
        venue: &str,
        symbol: &str,
        side: Side,
        usd: Decimal,
        leverage: u32,
        origin: &str,
    ) -> GatewayResult<Vec<OrderReport>> {
        let mut reports = Vec::new();
        if self.leverage_of(venue, symbol) != leverage {
            self.set_leverage(venue, symbol, leverage).await?;
        }
        if let Some(p) = self.position(venue, symbol).await? {
            if p.side() == Some(side.opposite()) {
                reports.extend(self.close_position(venue, symbol, origin).await?);
            }
        }
        let current = match self.position(venue, symbol).await? {
            Some(p) if p.side() == Some(side) => p.notional(),
            _ => Decimal::ZERO,
        };
        let missing = usd - current;
        if missing <= usd * Decimal::new(3, 2) {
            return Ok(reports);
        }
        reports.push(
            self.place(OrderIntent {
                venue: venue.to_string(),
                symbol: symbol.to_string(),
                side,
                amount: Amount::Usd(missing),
                pricing: Pricing::Market,
                reduce_only: false,
                origin: origin.to_string(),
            })
            .await?,
        );
        Ok(reports)
    }

    /// Cancels an open order by client id; allowed in every trading mode.
    pub async fn cancel(&self, client_id: &ClientOrderId) -> GatewayResult<OrderReport> {
        let entry = self
            .ledger
            .get(client_id)?
            .ok_or_else(|| GatewayError::UnknownOrder(client_id.clone()))?;
        if entry.status.is_terminal() {
            return Ok(OrderReport::from(&entry));
        }
        // An order placed outside this engine is known to the venue by its own id only
        // (the client id in the ledger was made up at adoption).
        let adopted_oid = (entry.origin == ADOPTED_ORIGIN)
            .then(|| entry.venue_order_id.clone())
            .flatten();
        let (s, id) = (entry.request.symbol.clone(), client_id.clone());
        // The venue's turn, as a placement takes it, but only around the send: a cancel of
        // a replaced generation never overlaps the new one's reconciliation, and the
        // settlement's reads below do not hold the venue's order path.
        self.owned_now(&entry.venue).await?;
        let turn = self.venue_turn(&entry.venue).await?;
        self.fenced(&entry.venue)?;
        self.owned_already(&entry.venue)?;
        let sent = match adopted_oid.clone() {
            Some(oid) => {
                self.call(
                    &entry.venue,
                    VenueCommand::CancelByVenueId {
                        symbol: s,
                        venue_order_id: oid,
                    },
                )
                .await
            }
            None => {
                self.call(
                    &entry.venue,
                    VenueCommand::CancelOrder {
                        symbol: s,
                        client_id: id,
                    },
                )
                .await
            }
        };
        drop(turn);
        match sent {
            Ok(()) => {}
            Err(err) if outcome_unknown(&err) => return self.settle_cancel(&entry, err).await,
            Err(err) => return Err(err),
        }
        if adopted_oid.is_some() {
            // The venue confirmed the cancel; its order lookup by client id cannot find an
            // adopted order, and a fill that raced the cancel corrects the entry later.
            let updated = self
                .ledger
                .update(client_id, |e| e.status = OrderStatus::Cancelled)
                .await?;
            self.count_order(&updated);
            return Ok(OrderReport::from(&updated));
        }
        let resolved = self
            .resolve(&entry.venue, &entry.request.symbol, client_id)
            .await?;
        self.count_order(&resolved);
        Ok(OrderReport::from(&resolved))
    }
}
