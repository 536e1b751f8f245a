//! What the client's calls return: enqueue and lease outcomes, dead-letter pages, queue stats.
use serde::Serialize;

use crate::{Envelope, Lease, Result};

/// The outcome of enqueueing one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job id (generated, or the explicit one).
    pub id: String,
    /// False when the explicit id already existed and nothing was written.
    pub created: bool,
}

/// A job leased by [`Queue::pop`](crate::Queue::pop): run it, then complete or fail it with its
/// [`Lease`].
#[derive(Debug, Clone)]
pub struct Leased {
    /// The job id and this attempt's lease token: only it is accepted by complete, fail and extend.
    pub lease: Lease,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The raw envelope (see [`Leased::envelope`]).
    pub raw_envelope: Vec<u8>,
}

impl Leased {
    /// The job id.
    pub fn id(&self) -> &str {
        &self.lease.id
    }

    /// Decodes the envelope; a record that does not decode belongs in the dead letter.
    pub fn envelope(&self) -> Result<Envelope> {
        Envelope::from_msgpack(&self.raw_envelope)
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}
