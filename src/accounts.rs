//! One set of rate limits and one 429/418 pause gate per venue account, for the whole
//! process.
//!
//! Owns: [`AccountBook`], which builds each account's [`AccountLimits`] once (on first use,
//! from the validated config, with the cluster's shared budgets when `[cluster]` is set)
//! and hands the same one to the account's connectors (every incarnation of the exchanges
//! supervisor) and to its readers (the funding and open-interest agents, the market
//! routes). Never: draws or sends anything itself.
//!
//! Why one per process: the venue counts weight per IP / account and blocks the IP after a
//! 429 it did not honour (Binance answers 418 next). A reader with pools of its own would
//! spend a second full budget beside the connectors', and a pause it saw would not stop
//! them; a connectors' supervisor that restarted with fresh pools would forget what the
//! venue still counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use orrery_actors::cluster::SharedLimits;
use orrery_actors::exchanges::account::AccountLimits;
use orrery_actors::resilience::ResilienceConfig;
use parking_lot::Mutex;

type Built = Result<AccountLimits, String>;

/// The process's account limits by venue name; cheap to clone (one book behind an `Arc`).
#[derive(Clone, Default)]
pub struct AccountBook {
    shared: Option<SharedLimits>,
    accounts: Arc<Mutex<BTreeMap<String, Built>>>,
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
}
