//! Durable state in sled, behind a typed API.
//!
//! Owns: opening the data dir (created 0700), the schema version check, the named trees of
//! DESIGN.md, the versioned encoding of every value, and the group-committing writer thread
//! for writes that protect money. Never: business logic; callers decide what to store.
//!
//! Closing is synchronous. Every [`Tree`] holds a [`Store`] clone, so the sled database
//! lives until the last handle goes; dropping that handle joins the writer thread, drops
//! sled and then waits until sled's I/O threads have closed the data file (its `flock` can
//! be taken), so the dir can be reopened in the same process as soon as the drop returns.
//! [`Store::close`] is the explicit form for an engine that stops: it flushes, waits (with
//! a bound) for handles still held by stopping actors, and reports the ones that remain.
//!
//! Every value is stored as a 2-byte big-endian record version followed by its JSON
//! encoding. JSON keeps the data dir inspectable and tolerant of added fields; the version
//! lets a newer binary migrate old records and lets an older binary refuse newer ones.

mod codec;
mod writer;

pub use codec::Record;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use writer::{WriteOp, Writer};

/// Names of the trees the engine opens. DESIGN.md also lists `positions` and `queue`:
/// positions are the venue's truth, read from it (and the paper venue keeps its own in
/// `paper`), and no durable work queue exists yet, so neither tree is declared until
/// something opens it.
pub mod trees {
    pub const ORDERS: &str = "orders";
    pub const FILLS: &str = "fills";
    pub const RISK: &str = "risk";
    pub const DECISIONS: &str = "decisions";
    pub const BREAKERS: &str = "breakers";
    /// Circuit breakers of venue connectors, keyed by venue name (model deployments
    /// keep theirs in [`BREAKERS`], keyed by deployment id, so the names never collide).
    pub const VENUE_BREAKERS: &str = "venue_breakers";
    pub const CACHE: &str = "cache";
    pub const META: &str = "meta";
    pub const PAPER: &str = "paper";
    /// Venue orders adopted into the ledger (placed outside this engine), keyed by
    /// `<venue>/<venue order id>`, so each is adopted once.
    pub const ADOPTED: &str = "adopted";
    /// Recent signals of the signal bus, keyed by `<time_ms:013>-<id>`; bounded by
    /// `[signals] max_kept` and swept by TTL.
    pub const SIGNALS: &str = "signals";
    /// Prefix of per-agent trees: `agents/<name>`.
    pub const AGENTS_PREFIX: &str = "agents/";
}

/// Schema version this binary writes and understands.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data dir {dir}: {source}; check the path and its parent's permissions")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open data dir {dir}: {source}; is another orrery process using it, or is it corrupt? the data was left untouched")]
    Open { dir: PathBuf, source: sled::Error },
    #[error("data dir {dir} has schema version {found}, newer than this binary supports ({supported}); run a newer orrery. The data was left untouched")]
    NewerSchema {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("data dir {dir} has an unreadable schema version marker; the data dir looks corrupt and was left untouched")]
    BadSchemaMarker { dir: PathBuf },
    #[error("cannot decode `{tree}/{key}`: {reason}")]
    Decode {
        tree: String,
        key: String,
        reason: String,
    },
    #[error("cannot encode a value for `{tree}/{key}`: {reason}")]
    Encode {
        tree: String,
        key: String,
        reason: String,
    },
    #[error(
        "record `{tree}/{key}` has version {found}, newer than this binary supports ({supported})"
    )]
    NewerRecord {
        tree: String,
        key: String,
        found: u16,
        supported: u16,
    },
    #[error("sled error on tree `{tree}`: {source}")]
    Sled { tree: String, source: sled::Error },
    #[error("the store writer thread has stopped; the engine is shutting down")]
    WriterGone,
    #[error("data dir {dir} is still in use by {handles} other handle(s) after waiting {waited:?}; it stays open until they are dropped (an actor that did not stop?)")]
    InUse {
        dir: PathBuf,
        handles: usize,
        waited: Duration,
    },
    #[error("data dir {dir} is in use by another process (a running engine?); stop it, or ask it through its control API")]
    Busy { dir: PathBuf },
    #[error("data dir {dir}: sled still holds the lock on its data file {waited:?} after the store was dropped; reopen later")]
    LockHeld { dir: PathBuf, waited: Duration },
    #[error("data dir {dir}: cannot check that the data file's lock was released: {source}")]
    LockProbe {
        dir: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the open store. Cheap to clone; all clones share one sled database and one
/// writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Fields drop in this order, which is the order of a clean close: the writer thread
/// (which holds a database clone) is joined, then sled is dropped, then `release` waits
/// until sled's own threads have let go of the data file.
struct Inner {
    writer: Writer,
    db: sled::Db,
    dir: PathBuf,
    release: LockRelease,
}

/// How long a drop waits for sled's I/O threads to close the data file. They finish a
/// write already under way, which takes microseconds to milliseconds; the bound only
/// matters if another process took the lock meanwhile.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Waits, when dropped, until the data file's lock can be taken, i.e. until every sled
/// handle in this process has closed the file. sled's last database handle does not
/// close it itself: a write spawned on sled's I/O pool keeps the file open until that
/// thread drops its reference, which on a busy machine happens after our drop returned.
struct LockRelease {
    dir: PathBuf,
    /// `<dir>/db`, the file sled locks; `None` for a temporary store (nothing to reopen).
    lock_file: Option<PathBuf>,
}

impl LockRelease {
    fn wait(&mut self, within: Duration) -> Result<()> {
        let Some(path) = self.lock_file.take() else {
            return Ok(());
        };
        let probe_err = |source| StoreError::LockProbe {
            dir: self.dir.clone(),
            source,
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(probe_err(e)),
        };
        let started = std::time::Instant::now();
        loop {
            // Our own descriptor: `flock` conflicts with sled's while sled keeps the file
            // open, even in this process.
            match file.try_lock() {
                Ok(()) => return file.unlock().map_err(probe_err),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < within => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::LockHeld {
                        dir: self.dir.clone(),
                        waited: started.elapsed(),
                    })
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(probe_err(e)),
            }
        }
    }
}

/// Whether another open file description holds the `flock` sled takes on its data file.
fn data_file_locked(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

impl Drop for LockRelease {
    fn drop(&mut self) {
        // Runs after the writer and sled were dropped (field order of `Inner`).
        if let Err(e) = self.wait(LOCK_RELEASE_WAIT) {
            tracing::warn!(error = %e, "the data dir was not released on close");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed, with mode 0700) the data dir and checks its schema.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir)?;
        let db = sled::Config::new()
            .path(&dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| {
                // sled reports a held lock only as text; the lock itself is the typed truth.
                if data_file_locked(&dir.join("db")) {
                    StoreError::Busy { dir: dir.clone() }
                } else {
                    StoreError::Open {
                        dir: dir.clone(),
                        source,
                    }
                }
            })?;
        let lock_file = Some(dir.join("db"));
        Self::with_db(db, dir, lock_file)
    }

    /// An in-memory store removed on drop; for tests and benches.
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| StoreError::Open {
                dir: PathBuf::from("<temporary>"),
                source,
            })?;
        Self::with_db(db, PathBuf::from("<temporary>"), None)
    }

    fn with_db(db: sled::Db, dir: PathBuf, lock_file: Option<PathBuf>) -> Result<Self> {
        let mut release = LockRelease {
            dir: dir.clone(),
            lock_file,
        };
        if let Err(e) = check_schema(&db, &dir) {
            // A refused dir is released before the error is reported, so the caller may
            // reopen it (or another process may) at once.
            drop(db);
            if let Err(lock) = release.wait(LOCK_RELEASE_WAIT) {
                tracing::warn!(error = %lock, "the refused data dir was not released");
            }
            return Err(e);
        }
        let writer = Writer::start(db.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                db,
                dir,
                release,
            }),
        })
    }

    /// Waits up to `within` until nothing holds the lock of the data dir at `dir` (a
    /// stopping engine, or a bare sled handle whose I/O threads still have the file open).
    /// A dir without a data file is free.
    pub fn wait_released(dir: impl AsRef<Path>, within: Duration) -> Result<()> {
        let dir = dir.as_ref();
        LockRelease {
            dir: dir.to_path_buf(),
            lock_file: Some(dir.join("db")),
        }
        .wait(within)
    }

    /// Closes the store: flushes, waits up to `within` for every other handle (clones and
    /// trees held by actors that are still stopping) to be dropped, then joins the writer
    /// thread, drops sled and returns once the data dir can be reopened.
    ///
    /// If handles remain after `within`, returns [`StoreError::InUse`] with their count;
    /// the dir is then released when the last of them is dropped.
    pub async fn close(self, within: Duration) -> Result<()> {
        self.flush()?;
        let deadline = tokio::time::Instant::now() + within;
        // Polled rather than notified: handles are dropped on other threads (actix
        // arbiters, sled) that have no way to tell us, and close runs once per engine.
        while Arc::strong_count(&self.inner) > 1 {
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::InUse {
                    dir: self.inner.dir.clone(),
                    handles: Arc::strong_count(&self.inner) - 1,
                    waited: within,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                let Inner {
                    writer,
                    db,
                    dir: _,
                    mut release,
                } = inner;
                drop(writer);
                drop(db);
                release.wait(LOCK_RELEASE_WAIT)
            }
            // Only this handle was left and it is owned here, so no clone can have been
            // made since the count was read; this arm is unreachable but harmless: the
            // last holder's drop releases the dir.
            Err(_) => Ok(()),
        }
    }

    /// The data dir this store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Opens (creating if needed) a typed tree.
    pub fn tree<T: Record>(&self, name: &str) -> Result<Tree<T>> {
        let tree = self
            .inner
            .db
            .open_tree(name)
            .map_err(|source| StoreError::Sled {
                tree: name.into(),
                source,
            })?;
        Ok(Tree {
            tree,
            name: Arc::from(name),
            store: self.clone(),
            _record: PhantomData,
        })
    }

    /// Flushes every pending write to disk.
    pub fn flush(&self) -> Result<()> {
        self.inner
            .db
            .flush()
            .map(|_| ())
            .map_err(|source| StoreError::Sled {
                tree: "<all>".into(),
                source,
            })
    }

    /// Names of every tree in the store.
    pub fn tree_names(&self) -> Vec<String> {
        self.inner
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    /// Total bytes on disk, as sled reports them.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

/// Checks (or, in a new dir, writes) the schema version marker.
fn check_schema(db: &sled::Db, dir: &Path) -> Result<()> {
    let meta = db
        .open_tree(trees::META)
        .map_err(|source| StoreError::Sled {
            tree: trees::META.into(),
            source,
        })?;
    let sled_err = |source| StoreError::Sled {
        tree: trees::META.into(),
        source,
    };
    match meta.get(SCHEMA_KEY).map_err(sled_err)? {
        Some(raw) => {
            let bytes: [u8; 4] =
                raw.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::BadSchemaMarker {
                        dir: dir.to_path_buf(),
                    })?;
            let found = u32::from_be_bytes(bytes);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    dir: dir.to_path_buf(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            // Older schemas would be migrated here; version 1 is the first.
        }
        None => {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                .map_err(sled_err)?;
            db.flush().map_err(sled_err)?;
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })
}

/// A named tree whose values are records of type `T`, keyed by UTF-8 strings.
pub struct Tree<T> {
    tree: sled::Tree,
    name: Arc<str>,
    store: Store,
    _record: PhantomData<fn() -> T>,
}

impl<T> Clone for Tree<T> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            name: self.name.clone(),
            store: self.store.clone(),
            _record: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Tree<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree").field("name", &self.name).finish()
    }
}

impl<T: Record> Tree<T> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data dir of the store this tree belongs to (which engine's tree it is).
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            tree: self.name.to_string(),
            source,
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<T>> {
        match self.tree.get(key).map_err(|e| self.sled_err(e))? {
            Some(raw) => codec::decode(&self.name, key, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a value; durable at the next flush (sled flushes on its own every few
    /// hundred milliseconds). Use [`Tree::put_durable`] for writes that protect money.
    pub fn put(&self, key: &str, value: &T) -> Result<()> {
        let raw = codec::encode(&self.name, key, value)?;
        self.tree.insert(key, raw).map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        self.tree.remove(key).map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    /// Writes a value and returns once it is on disk. Concurrent callers share one flush
    /// (group commit on the store writer thread).
    pub async fn put_durable(&self, key: &str, value: &T) -> Result<()> {
        let raw = codec::encode(&self.name, key, value)?;
        let (op, done) = WriteOp::insert(self.tree.clone(), key, raw);
        self.store.inner.writer.submit(op)?;
        done.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Writes several values atomically and returns once they are on disk: after a crash
    /// either all of them are there or none is. Shares flushes with concurrent writers.
    pub async fn put_durable_batch(&self, items: &[(String, T)]) -> Result<()> {
        let encoded = items
            .iter()
            .map(|(key, value)| Ok((key.clone(), codec::encode(&self.name, key, value)?)))
            .collect::<Result<Vec<_>>>()?;
        let (op, done) = WriteOp::batch(self.tree.clone(), encoded);
        self.store.inner.writer.submit(op)?;
        done.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Blocking form of [`Tree::put_durable`], for code outside the async runtime.
    pub fn put_durable_blocking(&self, key: &str, value: &T) -> Result<()> {
        self.put(key, value)?;
        self.store.flush()
    }

    /// Every record in key order. Records that fail to decode are returned as errors, not
    /// skipped, so a caller rebuilding state never silently loses one.
    pub fn iter(&self) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        self.decode_iter(self.tree.iter())
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &str) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        self.decode_iter(self.tree.scan_prefix(prefix))
    }

    /// Records whose key sorts after `key` (from the first when `None`), in key order,
    /// each with its key even when its value cannot be decoded, so a sweep can remove what
    /// it cannot read. A sled error is returned as an item.
    pub fn entries_after(
        &self,
        key: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, Result<T>)>> + '_ {
        use std::ops::Bound;
        let start = match key {
            Some(k) => Bound::Excluded(k.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.tree
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .map(move |entry| {
                let (k, v) = entry.map_err(|e| self.sled_err(e))?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let value = codec::decode(&self.name, &key, &v);
                Ok((key, value))
            })
    }

    /// Every record in reverse key order (newest first when keys sort by time), decoded
    /// lazily, so a reader that stops early decodes only what it read.
    pub fn iter_rev(&self) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        self.decode_iter(self.tree.iter().rev())
    }

    /// Records whose key sorts strictly before `key` (every record when `None`), newest
    /// first when keys sort by time, decoded lazily: one page of a listing costs that page,
    /// however deep its cursor.
    pub fn iter_rev_before(
        &self,
        key: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        use std::ops::Bound;
        let end = match key {
            Some(k) => Bound::Excluded(k.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.decode_iter(self.tree.range::<Vec<u8>, _>((Bound::Unbounded, end)).rev())
    }

    /// Every key in order, without decoding a value.
    pub fn keys(&self) -> impl Iterator<Item = Result<String>> + '_ {
        self.tree.iter().keys().map(move |k| {
            k.map(|k| String::from_utf8_lossy(&k).into_owned())
                .map_err(|e| self.sled_err(e))
        })
    }

    /// The greatest key, if any.
    pub fn last_key(&self) -> Result<Option<String>> {
        Ok(self
            .tree
            .last()
            .map_err(|e| self.sled_err(e))?
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
    }

    /// The last `n` records in key order, newest first (keys are expected to sort by time).
    pub fn last_n(&self, n: usize) -> Result<Vec<(String, T)>> {
        self.decode_iter(self.tree.iter().rev()).take(n).collect()
    }

    fn decode_iter<'a>(
        &'a self,
        it: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
    ) -> impl Iterator<Item = Result<(String, T)>> + 'a {
        it.map(move |entry| {
            let (k, v) = entry.map_err(|e| self.sled_err(e))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = codec::decode(&self.name, &key, &v)?;
            Ok((key, value))
        })
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Every later write of a key starting with `prefix` in this tree, decoded, in the
    /// order each key was written. For observers (the embedding API's event stream).
    ///
    /// sled buffers 1024 writes per watch and makes writers wait once the buffer is full,
    /// so a watch must be drained without pause: from a thread of its own, never from a
    /// task on a thread that also writes to the store. The watch holds no store handle:
    /// it ends ([`Watch::next`] gives `None`) once the store is closed.
    pub fn watch(&self, prefix: &str) -> Watch<T> {
        Watch {
            subscriber: self.tree.watch_prefix(prefix),
            name: self.name.clone(),
            _record: PhantomData,
        }
    }

    /// Removes every record; for caches and tests.
    pub fn clear(&self) -> Result<()> {
        self.tree.clear().map_err(|e| self.sled_err(e))
    }
}

/// Writes into one tree as they happen; see [`Tree::watch`].
pub struct Watch<T> {
    subscriber: sled::Subscriber,
    name: Arc<str>,
    _record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("tree", &self.name).finish()
    }
}

impl<T: Record> Watch<T> {
    /// The next write: its key and the decoded value (an error if the value cannot be
    /// decoded, so an observer sees it instead of losing it). Removals are skipped.
    /// `None` once the store is closed.
    pub async fn next(&mut self) -> Option<(String, Result<T>)> {
        loop {
            match (&mut self.subscriber).await? {
                sled::Event::Insert { key, value } => {
                    let key = String::from_utf8_lossy(&key).into_owned();
                    let decoded = codec::decode(&self.name, &key, &value);
                    return Some((key, decoded));
                }
                sled::Event::Remove { .. } => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests;
