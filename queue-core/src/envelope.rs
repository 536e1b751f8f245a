//! The job envelope: what a producer enqueues and a worker receives, as MessagePack.
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::time::Duration;

use crate::{millis, Error, Result};

/// Priorities run from -1000 to 1000; higher runs first.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;
/// The furthest ahead a job can be scheduled.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long to wait before retrying a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "BackoffFields")]
pub enum Backoff {
    /// The same delay after every failure.
    Fixed {
        /// Delay in milliseconds.
        delay_ms: u64,
    },
    /// `base * 2^(attempt-1)`, capped; with jitter, the second half of the delay is random.
    Exponential {
        /// Delay after the first failure, in milliseconds.
        base_ms: u64,
        /// Upper bound, in milliseconds.
        cap_ms: u64,
        /// Spread retries of jobs that failed together.
        jitter: bool,
    },
}

/// The stored form of [`Backoff`], read field by field: serde's internally tagged enums buffer
/// every field before choosing a variant, which made decoding envelopes a top cost of a busy
/// worker.
#[derive(Deserialize)]
struct BackoffFields {
    kind: BackoffKind,
    delay_ms: Option<u64>,
    base_ms: Option<u64>,
    cap_ms: Option<u64>,
    jitter: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum BackoffKind {
    Fixed,
    Exponential,
}

impl TryFrom<BackoffFields> for Backoff {
    type Error = &'static str;

    fn try_from(fields: BackoffFields) -> std::result::Result<Self, Self::Error> {
        Ok(match fields.kind {
            BackoffKind::Fixed => Backoff::Fixed {
                delay_ms: fields.delay_ms.ok_or("fixed backoff without delay_ms")?,
            },
            BackoffKind::Exponential => Backoff::Exponential {
                base_ms: fields.base_ms.ok_or("exponential backoff without base_ms")?,
                cap_ms: fields.cap_ms.ok_or("exponential backoff without cap_ms")?,
                jitter: fields.jitter.ok_or("exponential backoff without jitter")?,
            },
        })
    }
}

impl Backoff {
    /// A fixed delay.
    pub fn fixed(delay: Duration) -> Self {
        Backoff::Fixed {
            delay_ms: millis(delay),
        }
    }

    /// Exponential from `base`, capped at `cap`, with jitter.
    pub fn exponential(base: Duration, cap: Duration) -> Self {
        Backoff::Exponential {
            base_ms: millis(base),
            cap_ms: millis(cap),
            jitter: true,
        }
    }

    /// The form the scripts read: `kind|base_ms|cap_ms|jitter`.
    pub(crate) fn script_spec(&self) -> String {
        match *self {
            Backoff::Fixed { delay_ms } => format!("f|{delay_ms}|0|0"),
            Backoff::Exponential {
                base_ms,
                cap_ms,
                jitter,
            } => {
                format!("e|{base_ms}|{cap_ms}|{}", u8::from(jitter))
            }
        }
    }
}

impl Default for Backoff {
    /// Exponential from 1 s, capped at 1 h, with jitter.
    fn default() -> Self {
        Backoff::exponential(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

/// A job as stored in the jobs hash: `created|priority|max_attempts|kind|base|cap|jitter|` (what
/// the scripts read) followed by the envelope (see `lua/prelude.lua`, K_JOBS).
pub(crate) struct JobRecord {
    bytes: Vec<u8>,
    /// Where the envelope starts; 0 for a record without the properties (it then fails to
    /// decode as an envelope, and the job goes to the dead letter rather than being lost).
    envelope_at: usize,
}

impl JobRecord {
    const PROPERTY_FIELDS: usize = 7;

    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        let envelope_at = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'|')
            .nth(Self::PROPERTY_FIELDS - 1)
            .map_or(0, |(at, _)| at + 1);
        JobRecord { bytes, envelope_at }
    }

    pub(crate) fn envelope(&self) -> &[u8] {
        &self.bytes[self.envelope_at..]
    }

    pub(crate) fn into_envelope(mut self) -> Vec<u8> {
        self.bytes.drain(..self.envelope_at);
        self.bytes
    }

    /// When the job was created (Unix ms, Redis's clock).
    pub(crate) fn created_ms(&self) -> Option<i64> {
        let prefix = &self.bytes[..self.envelope_at];
        let first = prefix.split(|b| *b == b'|').next()?;
        std::str::from_utf8(first).ok()?.parse().ok()
    }
}

/// The envelope, as stored (MessagePack, named fields) and as a worker receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job id, unique within its queue.
    pub id: String,
    /// The queue it was enqueued into.
    pub queue: String,
    /// What kind of job this is: selects the handler.
    pub kind: String,
    /// The payload, MessagePack-encoded (see [`Envelope::decode`]).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts before the dead letter.
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Per-attempt time limit enforced by the worker, if any.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The W3C `traceparent` of the span that enqueued the job, if one was active (see
    /// [`NewJob::trace_parent`](crate::NewJob::trace_parent)): the worker's span for the job
    /// joins that trace. Left out of the stored form when absent, and absent from jobs
    /// enqueued before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

impl Envelope {
    /// Encodes the envelope as MessagePack.
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("an envelope always encodes")
    }

    /// Decodes an envelope from MessagePack.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self> {
        rmp_serde::from_slice(bytes).map_err(|e| Error::InvalidPayload(format!("undecodable envelope: {e}")))
    }

    /// Decodes the payload into the handler's type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        rmp_serde::from_slice(&self.payload).map_err(|e| {
            Error::InvalidPayload(format!(
                "payload does not decode as {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The payload as JSON (for handlers in other languages).
    pub fn payload_json(&self) -> Result<serde_json::Value> {
        self.decode()
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Ready to run.
    Pending,
    /// Waiting for the time the producer asked for.
    Scheduled,
    /// Waiting out a backoff after a failed attempt.
    Retrying,
    /// Leased by a worker.
    Active,
    /// In the dead letter.
    Dead,
    /// Finished (kept for the completed-retention window).
    Completed,
}

impl JobState {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JobState::Pending,
            "scheduled" => JobState::Scheduled,
            "retrying" => JobState::Retrying,
            "active" => JobState::Active,
            "dead" => JobState::Dead,
            "completed" => JobState::Completed,
            _ => return None,
        })
    }

    /// The lowercase name used in output.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Retrying => "retrying",
            JobState::Active => "active",
            JobState::Dead => "dead",
            JobState::Completed => "completed",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as inspected: its envelope and what the scripts keep beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// The envelope as enqueued.
    pub envelope: Envelope,
    /// Where the job is now.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was enqueued (server time, Unix ms).
    pub created_at_ms: i64,
    /// When it became or becomes runnable (Unix ms), if it is waiting.
    pub run_at_ms: Option<i64>,
    /// When it finished (completed or dead) or its lease deadline (active), Unix ms.
    pub state_since_ms: Option<i64>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// What the handler returned, for a completed job whose handler returned a value (kept
    /// with the job under the completed retention).
    pub result: Option<serde_json::Value>,
    /// The last progress its handler reported ([`QueueClient::progress`](crate::QueueClient::progress)).
    pub progress: Option<serde_json::Value>,
    /// Its group ([`NewJob::group`](crate::NewJob::group)), if it has one.
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::JobRecord;

    #[test]
    fn a_record_splits_into_its_properties_and_its_envelope() {
        let record = JobRecord::new(b"1795370400000|3|5|e|1000|60000|1|\x82envelope|with|pipes".to_vec());
        assert_eq!(record.created_ms(), Some(1_795_370_400_000));
        assert_eq!(record.envelope(), b"\x82envelope|with|pipes");
        assert_eq!(record.into_envelope(), b"\x82envelope|with|pipes");
    }

    #[test]
    fn a_record_without_its_properties_is_all_envelope_and_fails_to_decode_there() {
        let record = JobRecord::new(b"garbage".to_vec());
        assert_eq!(record.created_ms(), None);
        assert_eq!(record.envelope(), b"garbage");
        assert!(super::Envelope::from_msgpack(record.envelope()).is_err());
    }
}
