//! One set of rate limits and one 429/418 pause gate per venue account, for the whole
//! process.
//!
//! Owns: [`AccountBook`], which builds each account's [`AccountLimits`] once (on first use,
//! from the validated config, with the cluster's shared budgets when `[cluster]` is set)
//! and hands the same one to the account's connectors (every incarnation of the exchanges
//! supervisor) and to its readers (the funding and open-interest agents, the market
//! routes), and one circuit breaker per account for all its market-data readers
//! (`market-<venue>`). Never: draws or sends anything itself.
//!
//! Why one per process: the venue counts weight per IP / account and blocks the IP after a
//! 429 it did not honour (Binance answers 418 next). A reader with pools of its own would
//! spend a second full budget beside the connectors', and a pause it saw would not stop
//! them; a connectors' supervisor that restarted with fresh pools would forget what the
//! venue still counts. The readers share one breaker, named apart from the connectors':
//! when the venue's market data fails, every reader stops asking, and the breaker's state
//! series (`orrery_breaker_state{target}`) has one writer, never a reader's fresh breaker
//! reporting "closed" over a connector's open one.

use std::collections::BTreeMap;
use std::sync::Arc;

use orrery_actors::clock::system_clock;
use orrery_actors::cluster::SharedLimits;
use orrery_actors::exchanges::account::{AccountLimits, Endpoint};
use orrery_actors::resilience::{CircuitBreaker, ResilienceConfig};
use parking_lot::Mutex;

type Built = Result<AccountLimits, String>;

/// The process's account limits by venue name; cheap to clone (one book behind an `Arc`).
#[derive(Clone, Default)]
pub struct AccountBook {
    shared: Option<SharedLimits>,
    accounts: Arc<Mutex<BTreeMap<String, Built>>>,
    /// The readers' breaker of each account.
    readers: Arc<Mutex<BTreeMap<String, CircuitBreaker>>>,
}

impl std::fmt::Debug for AccountBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountBook")
            .field("accounts", &self.accounts.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AccountBook {
    /// A book whose accounts draw `shared` scopes from the cluster's budgets (`None`: a
    /// single process, every pool local).
    pub fn new(shared: Option<SharedLimits>) -> Self {
        Self {
            shared,
            accounts: Arc::default(),
            readers: Arc::default(),
        }
    }

    /// The limits of account `venue` of `config`; `None` for a venue without rate limits
    /// (paper) or not in the config.
    pub fn of_venue(&self, config: &crate::config::Config, venue: &str) -> Option<Built> {
        let resilience = config
            .exchanges
            .venues
            .get(venue)
            .and_then(crate::config::VenueConfig::resilience)?;
        Some(self.limits(venue, resilience))
    }

    /// The limits of account `venue`, built from `resilience` the first time it is asked
    /// for (later calls get the same pools and pause gate, whatever they pass).
    pub fn limits(&self, venue: &str, resilience: &ResilienceConfig) -> Built {
        self.accounts
            .lock()
            .entry(venue.to_string())
            .or_insert_with(|| {
                AccountLimits::build_shared(venue, resilience, self.shared.as_ref())
                    .map_err(|e| format!("venue `{venue}`: cannot build its rate limits: {e}"))
            })
            .clone()
    }

    /// The endpoint at `base_url` through which a market-data reader of account `venue`
    /// calls: the account's limits and pause gate, and the breaker all its readers share
    /// (target `market-<venue>`, built from `resilience` the first time).
    pub fn reader(
        &self,
        venue: &str,
        base_url: String,
        resilience: &ResilienceConfig,
    ) -> Result<Endpoint, String> {
        let account = self.limits(venue, resilience)?;
        let connector = format!("market-{venue}");
        let breaker = self
            .readers
            .lock()
            .entry(venue.to_string())
            .or_insert_with(|| {
                CircuitBreaker::new(
                    connector.clone(),
                    resilience.breaker.clone(),
                    system_clock(),
                    None,
                )
            })
            .clone();
        Ok(Endpoint {
            base_url,
            connector,
            account,
            breaker: Some(breaker),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_built_once_and_shared_by_every_caller() {
        let resilience = orrery_actors::exchanges::binance_futures::config::default_resilience();
        let book = AccountBook::new(None);
        let a = book.limits("bnf", &resilience).unwrap();
        let b = book.clone().limits("bnf", &resilience).unwrap();
        assert!(Arc::ptr_eq(&a.limits, &b.limits));
        assert!(Arc::ptr_eq(&a.pause, &b.pause));
        let other = book.limits("bnf-2", &resilience).unwrap();
        assert!(!Arc::ptr_eq(&a.limits, &other.limits));
    }

    #[test]
    fn the_accounts_readers_share_one_breaker_named_apart_from_its_connectors() {
        use orrery_actors::resilience::{BreakerState, ErrorClass, RetryPolicy};
        let resilience = orrery_actors::exchanges::binance_futures::config::default_resilience();
        let book = AccountBook::new(None);
        let guard = |url: &str| {
            let ep = book.reader("bnf", url.to_string(), &resilience).unwrap();
            assert_eq!(ep.connector, "market-bnf");
            assert!(Arc::ptr_eq(
                &ep.account.limits,
                &book.limits("bnf", &resilience).unwrap().limits
            ));
            ep.guard(
                "bnf",
                resilience.breaker.clone(),
                system_clock(),
                RetryPolicy::new("bnf", Default::default()),
            )
        };
        let (funding, route) = (guard("http://a"), guard("http://b"));
        assert_eq!(funding.breaker().target(), "market-bnf");
        // Failures seen by one reader open the breaker the other calls through.
        for _ in 0..resilience.breaker.failure_count {
            funding
                .breaker()
                .check()
                .unwrap()
                .failure(&ErrorClass::Unavailable);
        }
        assert_eq!(route.breaker().state(), BreakerState::Open);
        assert!(route.breaker().check().is_err());
        // Another account's readers are not touched.
        let other = book
            .reader("bnf-2", "http://c".into(), &resilience)
            .unwrap()
            .guard(
                "bnf-2",
                resilience.breaker.clone(),
                system_clock(),
                RetryPolicy::new("bnf", Default::default()),
            );
        assert_eq!(other.breaker().state(), BreakerState::Closed);
    }
}
