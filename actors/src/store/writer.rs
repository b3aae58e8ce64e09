//! The store writer thread: group commit for durable writes.
//!
//! Durable writes are sent over a crossbeam channel to one blocking thread, which applies
//! every write already queued, flushes sled once, and then answers all of them. Under load
//! many order intents share one fsync instead of paying one each.

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::{Result, StoreError};

pub(super) struct WriteOp {
    tree: sled::Tree,
    change: Change,
    done: oneshot::Sender<Result<()>>,
}

enum Change {
    Insert {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Applied atomically: after a crash either every write of the batch is there or none.
    Batch(sled::Batch),
}

impl WriteOp {
    pub(super) fn insert(
        tree: sled::Tree,
        key: &str,
        value: Vec<u8>,
    ) -> (Self, oneshot::Receiver<Result<()>>) {
        Self::new(
            tree,
            Change::Insert {
                key: key.as_bytes().to_vec(),
                value,
            },
        )
    }

    pub(super) fn batch(
        tree: sled::Tree,
        items: Vec<(String, Vec<u8>)>,
    ) -> (Self, oneshot::Receiver<Result<()>>) {
        let mut batch = sled::Batch::default();
        for (key, value) in items {
            batch.insert(key.as_bytes(), value);
        }
        Self::new(tree, Change::Batch(batch))
    }

    fn new(tree: sled::Tree, change: Change) -> (Self, oneshot::Receiver<Result<()>>) {
        let (done, rx) = oneshot::channel();
        (Self { tree, change, done }, rx)
    }

    fn apply(&mut self) -> sled::Result<()> {
        match &mut self.change {
            Change::Insert { key, value } => self
                .tree
                .insert(key.as_slice(), value.as_slice())
                .map(|_| ()),
            Change::Batch(batch) => self.tree.apply_batch(std::mem::take(batch)),
        }
    }
}

/// Most writes applied before one flush; bounds the latency of the first write in a batch.
const MAX_BATCH: usize = 1024;

pub(super) struct Writer {
    tx: Option<Sender<WriteOp>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(db: sled::Db) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<WriteOp>(8192);
        let thread = std::thread::Builder::new()
            .name("orrery-store-writer".into())
            .spawn(move || run(db, rx))
            .ok();
        Self {
            tx: Some(tx),
            thread,
        }
    }

    pub(super) fn submit(&self, op: WriteOp) -> Result<()> {
        match &self.tx {
            Some(tx) => tx.send(op).map_err(|_| StoreError::WriterGone),
            None => Err(StoreError::WriterGone),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish what is queued, flush and exit.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(db: sled::Db, rx: Receiver<WriteOp>) {
    let mut batch: Vec<WriteOp> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut results: Vec<Result<()>> = Vec::with_capacity(batch.len());
        for op in &mut batch {
            let r = op.apply().map_err(|source| StoreError::Sled {
                tree: String::from_utf8_lossy(&op.tree.name()).into_owned(),
                source,
            });
            results.push(r);
        }
        let flushed = db.flush();
        for (op, r) in batch.drain(..).zip(results) {
            let r = match (&r, &flushed) {
                (Ok(()), Err(e)) => Err(StoreError::Sled {
                    tree: String::from_utf8_lossy(&op.tree.name()).into_owned(),
                    source: e.clone(),
                }),
                _ => r,
            };
            let _ = op.done.send(r);
        }
    }
    let _ = db.flush();
}
