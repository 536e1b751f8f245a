//! What a worker counts, and the report it returns.
use std::sync::atomic::{AtomicU64, Ordering};

/// What a worker did, returned by [`Worker::run`](super::Worker::run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Attempts that completed.
    pub completed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Jobs this worker sent to the dead letter.
    pub dead: u64,
    /// Jobs handed back at shutdown without counting the attempt.
    pub released: u64,
    /// Running jobs whose handler this worker stopped because they were cancelled.
    pub cancelled: u64,
}

/// The report's figures while the worker runs: the job tasks and the acker add to them.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) completed: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead: AtomicU64,
    pub(super) released: AtomicU64,
    pub(super) cancelled: AtomicU64,
}

impl Counters {
    pub(super) fn report(&self) -> WorkerReport {
        WorkerReport {
            completed: self.completed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
        }
    }
}
