//! What the client's calls return: enqueue and lease outcomes, dead-letter pages, queue stats.
use serde::Serialize;

use std::sync::Arc;

use crate::{envelope::JobRecord, Envelope, Lease, Result};

/// The outcome of enqueueing one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job id (generated, or the explicit one).
    pub id: String,
    /// False when the explicit id already existed, or the job's unique key was held, and
    /// nothing was written.
    pub created: bool,
    /// True when the job's unique key was held by another job (see
    /// [`NewJob::unique`](crate::NewJob::unique)): `id` is that job's, and nothing was written.
    pub duplicate: bool,
}

/// A job leased by [`Queue::pop`](crate::Queue::pop): run it, then complete or fail it with its
/// [`Lease`].
#[derive(Debug, Clone)]
pub struct Leased {
    /// The job id and this attempt's lease token: only it is accepted by complete, fail and extend.
    pub lease: Lease,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The job's record as stored (see [`Leased::envelope`]).
    pub raw_record: Vec<u8>,
    /// The queue it was leased from.
    pub queue: Arc<str>,
    /// When the job became runnable (Unix ms, Redis's clock): created, due, or back from a
    /// failed attempt or an expired lease.
    pub runnable_at_ms: i64,
    /// When this lease was taken (Unix ms, Redis's clock).
    pub leased_at_ms: i64,
}

impl Leased {
    /// The job id.
    pub fn id(&self) -> &str {
        &self.lease.id
    }

    /// Decodes the envelope; a record that does not decode belongs in the dead letter.
    pub fn envelope(&self) -> Result<Envelope> {
        JobRecord::new(&self.raw_record[..]).envelope(&self.lease.id, &self.queue)
    }

    /// How long the job waited runnable before this lease took it (the pickup latency).
    pub fn waited(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.leased_at_ms - self.runnable_at_ms).max(0) as u64)
    }
}

/// What one [`Queue::pop`](crate::Queue::pop) call returned.
#[derive(Debug, Clone)]
pub struct Popped {
    /// The leased jobs, highest priority first.
    pub jobs: Vec<Leased>,
    /// Server time of the call (Unix ms).
    pub now_ms: i64,
    /// When the next scheduled or retrying job is due (Unix ms), if any.
    pub next_due_ms: Option<i64>,
    /// Whether the queue is paused (then `jobs` is empty).
    pub paused: bool,
}

/// What happened to a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will run again at this time (Unix ms), after the backoff the script chose.
    Retry {
        /// Unix ms.
        at_ms: i64,
        /// The backoff the script chose, in ms.
        delay_ms: i64,
    },
    /// It went to the dead letter.
    Dead,
}

/// A job in the dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    /// The job id.
    pub id: String,
    /// When it died (Unix ms).
    pub failed_at_ms: i64,
    /// Attempts it had.
    pub attempts: u32,
    /// The error of its last attempt.
    pub error: String,
    /// Its envelope, if it decodes.
    #[serde(skip)]
    pub envelope: Option<Envelope>,
}

/// One page of the dead letter.
#[derive(Debug, Clone)]
pub struct DeadPage {
    /// How many jobs the dead letter holds in all.
    pub total: u64,
    /// This page, most recent first.
    pub jobs: Vec<DeadJob>,
}

/// Counts for one queue, as `queue-cli stats` shows them: how many jobs are in each state now,
/// and totals counted over the queue's whole life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Now: ready to run.
    pub pending: u64,
    /// Now: delayed by the producer.
    pub scheduled: u64,
    /// Now: waiting out a backoff.
    pub retrying: u64,
    /// Now: leased by workers.
    pub active: u64,
    /// Now: in the dead letter.
    pub dead: u64,
    /// Now: completed and still retained (see [`Retention`](crate::Retention)).
    pub completed: u64,
    /// All time: jobs completed.
    pub completed_total: u64,
    /// All time: attempts that failed (retried or not; expired leases included).
    pub failed_attempts_total: u64,
    /// Now: paused.
    pub paused: bool,
    /// Now: age of the job next in line, in ms (0 when none is pending).
    pub latency_ms: u64,
    /// All time: jobs enqueued (an enqueue of an id that already existed is not counted).
    pub enqueued_total: u64,
    /// All time: jobs sent to the dead letter.
    pub dead_total: u64,
    /// Now: the queue's rate and concurrency limits.
    pub limits: crate::Limits,
    /// All time: jobs cancelled (removed while waiting, or stopped while running).
    pub cancelled_total: u64,
    /// The length the queue's event stream is capped at; 0 when it keeps none.
    pub events_max_len: u64,
}
