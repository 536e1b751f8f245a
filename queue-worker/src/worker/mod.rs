//! The runtime: fetch in batches sized to the free slots, run handlers, settle each attempt
//! with its lease token, renew leases, reap, shut down gracefully.
//!
//! A running worker is one [`Runtime`] that its tasks share: the fetch loop (`fetch.rs`), one
//! task per job (`job.rs`) whose outcome `settle.rs` records, the heartbeat, the reaper, and a
//! wake-up listener for all its queues (`wake.rs`). `run.rs` starts them and stops them in order.
use std::sync::Mutex;

use queue_core::{Queue, QueueClient};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

mod builder;
mod fetch;
mod heartbeat;
mod in_flight;
mod job;
mod ready;
mod reaper;
mod report;
mod retry;
mod run;
mod settle;
mod wake;

pub use builder::{QueueOrder, WorkerBuilder};
pub use report::WorkerReport;
pub(crate) use retry::RetryDelay;

use builder::{Handlers, Settings};
use in_flight::InFlightJobs;
use ready::ReadyQueues;
use report::Counters;
use settle::Ack;

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
    /// The state every context starts with (handlers swap in the application's), shared so
    /// that starting a job allocates none.
    no_state: std::sync::Arc<()>,
}
