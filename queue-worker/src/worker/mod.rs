//! The runtime: fetch in batches sized to the free slots, run handlers, settle each attempt
//! with its lease token, renew leases, reap, shut down gracefully.
//!
//! A running worker is one [`Runtime`] that its tasks share: the fetch loop (`fetch.rs`), one
//! task per job (`job.rs`) whose outcome `settle.rs` records, the heartbeat, the reaper, the
//! schedules (`schedules.rs`), and a wake-up listener for all its queues (`wake.rs`). `run.rs`
//! starts them and stops them in order.
use std::sync::Mutex;

use queue_core::{Queue, QueueClient};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

mod builder;
mod cancels;
mod fetch;
mod heartbeat;
mod in_flight;
mod job;
mod ready;
mod reaper;
mod report;
mod retry;
mod run;
mod schedules;
mod settle;
mod timetable;
mod wake;

pub use builder::{QueueOrder, WorkerBuilder};
pub use report::WorkerReport;
pub(crate) use retry::RetryDelay;

use builder::{Handlers, Settings};
use in_flight::InFlightJobs;
use ready::ReadyQueues;
use report::Counters;
use settle::Ack;
use timetable::Timetable;

use crate::metrics::{KindMetrics, WorkerMetrics, UNKNOWN_KIND};

impl Runtime {
    /// The metrics of a job of `kind` (`None`: its record does not decode) from `queue`, under
    /// a bounded label: a kind with a handler of its own by name, one that only the fallback
    /// runs by name up to a limit, and one without a handler as `unknown`.
    fn job_metrics(&self, queue: &str, kind: Option<&str>) -> std::sync::Arc<KindMetrics> {
        let label = match kind {
            Some(kind) if self.handlers.has_own(kind) => kind,
            Some(kind) if self.handlers.has_fallback() => self.metrics.fallback_label(kind),
            _ => UNKNOWN_KIND,
        };
        self.metrics.kind(queue, label)
    }
}

/// A worker: runs handlers for jobs from its queues until its shutdown token is cancelled.
pub struct Worker {
    client: QueueClient,
    settings: Settings,
    handlers: Handlers,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("client", &self.client)
            .field("settings", &self.settings)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

/// A running worker: what its tasks share.
struct Runtime {
    client: QueueClient,
    /// The worker's queues, in the order of [`Settings::queues`].
    queues: Vec<Queue>,
    settings: Settings,
    handlers: Handlers,
    in_flight: Mutex<InFlightJobs>,
    counters: Counters,
    /// Completed attempts, for one task to record in batches.
    acks: mpsc::UnboundedSender<Ack>,
    /// Cancelled by the caller of [`Worker::run`]: no new jobs.
    shutdown: CancellationToken,
    /// Bounds retries of acknowledgements once the worker is done.
    give_up: CancellationToken,
    /// Wakes the idle fetch loop.
    wake: Notify,
    /// Which queues may have work (see `ready.rs`).
    ready: ReadyQueues,
    /// When each queue next needs a sweep (see `reaper.rs`).
    sweeps: Timetable,
    /// When each queue's schedules are next read (see `schedules.rs`).
    schedule_reads: Timetable,
    /// What the worker counts, served at `/metrics` when the builder gave an address.
    metrics: std::sync::Arc<WorkerMetrics>,
    /// The state every context starts with (handlers swap in the application's), shared so
    /// that starting a job allocates none.
    no_state: std::sync::Arc<()>,
}
