//! The journal writer: group commit for decisions.
//!
//! An agent hands each record over by value ([`super::DecisionJournal::append`]): one
//! crossbeam channel send, so the agent's path pays neither the JSON encoding (a record
//! carries the prompt and the candles of its context, kilobytes) nor an fsync. One blocking
//! thread takes every record already queued, encodes and inserts each with its header,
//! flushes sled once for the whole batch, and only then answers each receipt. A run awaits
//! its receipts at its end, so a run that finished has its decisions on disk, and a
//! SIGKILL loses at most decisions whose receipt had not resolved.
//!
//! Why a thread of its own rather than the store writer (`store::writer`): that one takes
//! already-encoded values, so the encoding would stay on the agent's path; and keeping the
//! journal's failures apart (counted in `orrery_journal_writes_total{outcome="failed"}` and
//! logged with the decision's id) keeps a full disk from being silent here while orders
//! still get their own errors. One thread per open journal that writes; it ends (after
//! draining and flushing what is queued) when the last handle of that journal is dropped.
//!
//! Never: drops a record silently. A record the writer could not write comes back as an
//! error on its receipt, is logged at `error` with its id, and is counted.

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::{names, write_both, DecisionHeader, DecisionRecord};
use crate::store::{Store, StoreError, Tree};

/// Why a decision was not journaled.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot journal decision {id}: {source}")]
    Write { id: String, source: StoreError },
    #[error("decision {id} was written but the flush to disk failed: {reason}; it may be lost on a crash")]
    Flush { id: String, reason: String },
    #[error("the journal writer has stopped; decision {id} was not journaled (the engine is shutting down?)")]
    WriterGone { id: String },
}

/// Resolves once a decision handed to [`super::DecisionJournal::append`] is on disk.
#[derive(Debug)]
pub struct JournalReceipt {
    id: String,
    done: Option<oneshot::Receiver<Result<(), JournalError>>>,
}

impl JournalReceipt {
    /// The id of the decision this receipt is for.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until the decision is on disk (or the writer reports why not); see
    /// [`wait_all`].
    pub async fn wait(self) -> Result<(), JournalError> {
        wait_all(vec![self])
            .await
            .pop()
            .unwrap_or(Err(JournalError::WriterGone { id: String::new() }))
    }

    fn block(self) -> Result<(), JournalError> {
        match self.done {
            Some(rx) => rx
                .blocking_recv()
                .unwrap_or(Err(JournalError::WriterGone { id: self.id })),
            None => Err(JournalError::WriterGone { id: self.id }),
        }
    }
}

/// Waits until every decision of `receipts` is on disk (or the writer reports why not),
/// in their order. The wait is bounded by the writer's own work (a batch and a flush),
/// never by the network.
///
/// It waits on a blocking thread: the writer is a thread, not a task, and under paused
/// tokio time (tests) a task awaiting it would let the clock jump ahead to the next timer
/// while the disk works; a blocking task holds the paused clock still.
pub async fn wait_all(receipts: Vec<JournalReceipt>) -> Vec<Result<(), JournalError>> {
    if receipts.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = receipts.iter().map(|r| r.id.clone()).collect();
    match tokio::task::spawn_blocking(move || {
        receipts
            .into_iter()
            .map(JournalReceipt::block)
            .collect::<Vec<_>>()
    })
    .await
    {
        Ok(results) => results,
        Err(_) => ids
            .into_iter()
            .map(|id| Err(JournalError::WriterGone { id }))
            .collect(),
    }
}

/// The trees a writer writes to, and the store it flushes.
pub(super) struct Trees {
    pub records: Tree<DecisionRecord>,
    pub index: Tree<DecisionHeader>,
    pub store: Store,
}

struct Job {
    record: DecisionRecord,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// Most records written before one flush; bounds the wait of the first in a batch.
const MAX_BATCH: usize = 512;

/// Records queued for the writer before `append` reports the journal as overloaded
/// rather than letting memory grow (an agent's run makes one per symbol).
const QUEUE: usize = 16_384;

pub(super) struct Writer {
    tx: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(trees: Trees) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("orrery-journal-writer".into())
            .spawn(move || run(trees, rx));
        match thread {
            Ok(t) => Self {
                tx: Some(tx),
                thread: Some(t),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the journal writer thread; decisions will fail to journal");
                Self {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    pub(super) fn submit(&self, record: DecisionRecord) -> JournalReceipt {
        let id = record.id.clone();
        let (done, rx) = oneshot::channel();
        let sent = match &self.tx {
            // A full queue means the disk cannot keep up; the record is not lost silently:
            // the receipt says so, and it is counted and logged here.
            Some(tx) => tx.try_send(Job { record, done }).is_ok(),
            None => false,
        };
        if !sent {
            metrics::counter!(names::WRITES, "outcome" => "failed").increment(1);
            tracing::error!(decision = %id, "the journal writer is not accepting decisions (stopped or {QUEUE} queued); this decision is not journaled");
            return JournalReceipt { id, done: None };
        }
        JournalReceipt { id, done: Some(rx) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread write and flush what is queued, then exit;
        // joined so the store handles it holds are gone when the journal is.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(trees: Trees, rx: Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let written: Vec<Result<(), StoreError>> = batch
            .iter()
            .map(|j| write_both(&trees.records, &trees.index, &j.record))
            .collect();
        let flushed = trees.store.flush().map_err(|e| e.to_string());
        metrics::counter!(names::FLUSHES).increment(1);
        for (job, w) in batch.drain(..).zip(written) {
            let id = job.record.id.clone();
            let result = match (w, &flushed) {
                (Err(source), _) => Err(JournalError::Write { id, source }),
                (Ok(()), Err(reason)) => Err(JournalError::Flush {
                    id,
                    reason: reason.clone(),
                }),
                (Ok(()), Ok(())) => Ok(()),
            };
            match &result {
                Ok(()) => metrics::counter!(names::WRITES, "outcome" => "ok").increment(1),
                Err(e) => {
                    metrics::counter!(names::WRITES, "outcome" => "failed").increment(1);
                    tracing::error!(agent = %job.record.agent, symbol = %job.record.symbol, error = %e, "decision not journaled");
                }
            }
            let _ = job.done.send(result);
        }
    }
}
