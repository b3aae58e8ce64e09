//! Persistence of restart history: one [`RestartRecord`] per child, in the `meta` tree at
//! `restarts/<path>`.
//!
//! Owns: the record's shape and key scheme, loading at supervisor start, and the listing
//! `orrery status` prints. Never: deciding restarts. Restart records do not protect money,
//! so they are written without waiting for a flush; sled flushes within a second and the
//! supervisor flushes when it stops.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::store::{trees, Record, Store, StoreError, Tree};

const KEY_PREFIX: &str = "restarts/";

/// Restart history of one child, keyed by its path (e.g. `engine/models/router`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    /// Times the child was restarted, including restarts caused by a sibling's failure
    /// under `one_for_all` / `rest_for_one`.
    pub count: u64,
    /// Reason of the child's own last abnormal exit or failed start.
    pub last_reason: Option<String>,
    /// When that happened, in Unix milliseconds.
    pub last_failure_ms: Option<Millis>,
}

impl Record for RestartRecord {}

/// Reads and writes restart records in the `meta` tree.
#[derive(Debug, Clone)]
pub(crate) struct RestartLog {
    tree: Tree<RestartRecord>,
}

impl RestartLog {
    pub(crate) fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(trees::META)?,
        })
    }

    pub(crate) fn load(&self, path: &str) -> Result<Option<RestartRecord>, StoreError> {
        self.tree.get(&key(path))
    }

    pub(crate) fn save(&self, path: &str, record: &RestartRecord) -> Result<(), StoreError> {
        self.tree.put(&key(path), record)
    }
}

fn key(path: &str) -> String {
    format!("{KEY_PREFIX}{path}")
}

/// Every persisted restart record as `(child path, record)`, in path order.
pub fn restart_records(store: &Store) -> Result<Vec<(String, RestartRecord)>, StoreError> {
    let tree: Tree<RestartRecord> = store.tree(trees::META)?;
    let records: Vec<(String, RestartRecord)> = tree
        .scan_prefix(KEY_PREFIX)
        .map(|entry| entry.map(|(k, v)| (k[KEY_PREFIX.len()..].to_string(), v)))
        .collect::<Result<_, _>>()?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_list_by_path() {
        let store = Store::temporary().unwrap();
        let log = RestartLog::open(&store).unwrap();
        assert_eq!(log.load("engine/a").unwrap(), None);
        let rec = RestartRecord {
            count: 3,
            last_reason: Some("panicked: boom".into()),
            last_failure_ms: Some(1_700_000_000_000),
        };
        log.save("engine/b", &rec).unwrap();
        log.save("engine/a", &RestartRecord::default()).unwrap();
        assert_eq!(log.load("engine/b").unwrap(), Some(rec.clone()));
        let all = restart_records(&store).unwrap();
        assert_eq!(
            all,
            vec![
                ("engine/a".to_string(), RestartRecord::default()),
                ("engine/b".to_string(), rec)
            ]
        );
    }
}
