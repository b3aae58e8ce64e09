//! The connector actor: one per venue account, the only way to reach a [`Venue`].
//!
//! Owns: the venue's mailbox (bounded by the supervisor), per-venue request metrics, and
//! the place where venue limits, breakers and priority queues attach. Never: the ledger
//! or risk decisions (the gateway's), nor retries of order sends.

use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use futures::future::BoxFuture;

use super::venue::{Venue, VenueResult};
use crate::telemetry::names;

/// Wraps one venue account.
pub struct Connector {
    venue: Arc<dyn Venue>,
}

impl Connector {
    pub fn new(venue: Arc<dyn Venue>) -> Self {
        Self { venue }
    }
}

impl Actor for Connector {
    type Context = Context<Self>;
}

type Call<R> = Box<dyn FnOnce(Arc<dyn Venue>) -> BoxFuture<'static, VenueResult<R>> + Send>;

/// One request to the venue, run by the connector. `endpoint` labels the metrics.
pub struct VenueCall<R> {
    pub endpoint: &'static str,
    call: Call<R>,
}

impl<R> VenueCall<R> {
    pub fn new(
        endpoint: &'static str,
        call: impl FnOnce(Arc<dyn Venue>) -> BoxFuture<'static, VenueResult<R>> + Send + 'static,
    ) -> Self {
        Self {
            endpoint,
            call: Box::new(call),
        }
    }
}

impl<R: 'static> Message for VenueCall<R> {
    type Result = VenueResult<R>;
}

impl<R: Send + 'static> Handler<VenueCall<R>> for Connector {
    type Result = ResponseFuture<VenueResult<R>>;

    fn handle(&mut self, msg: VenueCall<R>, _: &mut Context<Self>) -> Self::Result {
        let venue_name = self.venue.name().to_string();
        let fut = (msg.call)(self.venue.clone());
        let endpoint = msg.endpoint;
        Box::pin(async move {
            let started = Instant::now();
            let result = fut.await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.label(),
            };
            metrics::counter!(names::VENUE_REQUESTS, "venue" => venue_name.clone(), "endpoint" => endpoint, "outcome" => outcome).increment(1);
            metrics::histogram!(names::VENUE_REQUEST_DURATION, "venue" => venue_name, "endpoint" => endpoint)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
