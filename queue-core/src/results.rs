//! What the client's calls return: enqueue and lease outcomes, dead-letter pages, queue stats.
use serde::Serialize;

use crate::{Envelope, Result};

/// The outcome of enqueueing one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job id (generated, or the explicit one).
    pub id: String,
    /// False when the explicit id already existed and nothing was written.
    pub created: bool,
}

/// A job leased by [`QueueClient::pop`]: run it, then complete or fail it with its token.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The job id.
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The lease token; only this attempt's token is accepted by complete, fail and extend.
    pub token: String,
    /// The raw envelope (see [`Leased::envelope`]).
    pub raw_envelope: Vec<u8>,
}

impl Leased {
    /// Decodes the envelope; a record that does not decode belongs in the dead letter.
    pub fn envelope(&self) -> Result<Envelope> {
        Envelope::from_msgpack(&self.raw_envelope)
    }
}

/// What one [`QueueClient::pop`] call returned.
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

/// Counts for one queue, as `queue-cli stats` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Ready to run.
    pub pending: u64,
    /// Delayed by the producer.
    pub scheduled: u64,
    /// Waiting out a backoff.
    pub retrying: u64,
    /// Leased by workers.
    pub active: u64,
    /// In the dead letter.
    pub dead: u64,
    /// Completed and still retained.
    pub completed: u64,
    /// Completed, all time.
    pub processed: u64,
    /// Failed attempts, all time.
    pub failed: u64,
    /// Paused.
    pub paused: bool,
    /// Age of the job next in line, in ms (0 when none is pending).
    pub latency_ms: u64,
    /// Enqueued, all time.
    pub enqueued: u64,
    /// Sent to the dead letter, all time.
    pub dead_total: u64,
}
