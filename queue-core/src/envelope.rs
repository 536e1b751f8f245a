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
        DEFAULT_BACKOFF
    }
}

/// The properties a record leaves out when a job has them all: priority 0, 3 attempts,
/// exponential backoff from 1 s capped at 1 h with jitter (`NewJob`'s defaults). Records written
/// without them read them back from here, so these never change. Mirrored by `lua/prelude.lua`
/// (DEFAULT_PROPS).
pub(crate) const DEFAULT_PRIORITY: i32 = 0;
pub(crate) const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub(crate) const DEFAULT_BACKOFF: Backoff = Backoff::Exponential {
    base_ms: 1_000,
    cap_ms: 3_600_000,
    jitter: true,
};

/// The first byte of the compact stored envelope (see [`JobRecord`]); an envelope in the named
/// MessagePack of earlier versions starts with a map marker instead.
const COMPACT_V1: u8 = 0x01;

/// A job as stored in the jobs hash (see `lua/prelude.lua`, K_JOBS): `created|`, then
/// `priority|max_attempts|kind|base|cap|jitter|` unless they are the defaults (what the scripts
/// read), then the envelope.
///
/// The envelope is stored compact: [`COMPACT_V1`], a MessagePack array `[kind, timeout_ms or
/// nil, trace_parent]` without its absent trailing items, then the payload to the end. The id
/// (the hash field), the queue (the hash's) and the properties are not repeated in it: decoding
/// fills them in. Records of earlier versions hold the whole [`Envelope`] as named MessagePack
/// after the full properties, and still decode.
pub(crate) struct JobRecord<B = Vec<u8>> {
    bytes: B,
    created_ms: Option<i64>,
    /// None when the head does not parse: the record then fails to decode, and the job goes to
    /// the dead letter rather than being lost.
    props: Option<StoredProps>,
    /// Where the envelope starts; 0 for a record without the properties.
    envelope_at: usize,
}

#[derive(Clone, Copy)]
struct StoredProps {
    priority: i32,
    max_attempts: u32,
    backoff: Backoff,
}

impl StoredProps {
    /// `priority|max_attempts|kind|base|cap|jitter`, as the scripts write and read it.
    fn parse(head: &[u8]) -> Option<Self> {
        let head = std::str::from_utf8(head).ok()?;
        let mut fields = head.split('|');
        let mut next = || fields.next();
        let priority = next()?.parse().ok()?;
        let max_attempts = next()?.parse().ok()?;
        let kind = next()?;
        let base_ms = next()?.parse().ok()?;
        let cap_ms = next()?.parse().ok()?;
        let jitter = match next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let backoff = match kind {
            "f" => Backoff::Fixed { delay_ms: base_ms },
            "e" => Backoff::Exponential {
                base_ms,
                cap_ms,
                jitter,
            },
            _ => return None,
        };
        Some(StoredProps {
            priority,
            max_attempts,
            backoff,
        })
    }
}

impl<B: AsRef<[u8]>> JobRecord<B> {
    const PROPERTY_FIELDS: usize = 6;

    pub(crate) fn new(bytes: B) -> Self {
        let mut record = JobRecord {
            bytes,
            created_ms: None,
            props: None,
            envelope_at: 0,
        };
        let all = record.bytes.as_ref();
        let Some(first) = all.iter().position(|b| *b == b'|') else {
            return record;
        };
        let Some(created_ms) = std::str::from_utf8(&all[..first]).ok().and_then(|c| c.parse().ok()) else {
            return record;
        };
        record.created_ms = Some(created_ms);
        let after = first + 1;
        match all.get(after) {
            Some(b) if b.is_ascii_digit() || *b == b'-' => {
                let Some(last) = all[after..]
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'|')
                    .nth(Self::PROPERTY_FIELDS - 1)
                    .map(|(at, _)| after + at)
                else {
                    return record;
                };
                record.props = StoredProps::parse(&all[after..last]);
                record.envelope_at = last + 1;
            }
            _ => {
                record.props = Some(StoredProps {
                    priority: DEFAULT_PRIORITY,
                    max_attempts: DEFAULT_MAX_ATTEMPTS,
                    backoff: DEFAULT_BACKOFF,
                });
                record.envelope_at = after;
            }
        }
        record
    }

    /// The record's bytes, as stored.
    pub(crate) fn into_bytes(self) -> B {
        self.bytes
    }

    /// When the job was created (Unix ms, Redis's clock).
    pub(crate) fn created_ms(&self) -> Option<i64> {
        self.created_ms
    }

    /// The envelope of job `id` of `queue`.
    pub(crate) fn envelope(&self, id: &str, queue: &str) -> Result<Envelope> {
        let stored = &self.bytes.as_ref()[self.envelope_at..];
        match (stored.first(), self.props) {
            (Some(&COMPACT_V1), Some(props)) => decode_compact(&stored[1..], id, queue, props)
                .map_err(|e| Error::InvalidPayload(format!("undecodable envelope: {e}"))),
            (Some(&COMPACT_V1), None) => Err(Error::InvalidPayload(
                "undecodable envelope: the record's properties do not parse".into(),
            )),
            _ => Envelope::from_msgpack(stored),
        }
    }
}

impl JobRecord {
    /// The stored form of an envelope (what follows the properties; its id, queue and
    /// properties are left out: the record's place and head hold them).
    pub(crate) fn compact(kind: &str, payload: &[u8], timeout_ms: Option<u64>, trace_parent: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + kind.len() + payload.len());
        out.push(COMPACT_V1);
        let items = match (timeout_ms, trace_parent) {
            (_, Some(_)) => 3,
            (Some(_), None) => 2,
            (None, None) => 1,
        };
        // Writing to a Vec does not fail.
        let _ = rmp::encode::write_array_len(&mut out, items);
        let _ = rmp::encode::write_str(&mut out, kind);
        if items >= 2 {
            match timeout_ms {
                Some(ms) => drop(rmp::encode::write_uint(&mut out, ms)),
                None => drop(rmp::encode::write_nil(&mut out)),
            }
        }
        if let Some(trace_parent) = trace_parent {
            let _ = rmp::encode::write_str(&mut out, trace_parent);
        }
        out.extend_from_slice(payload);
        out
    }
}

fn decode_compact(mut rd: &[u8], id: &str, queue: &str, props: StoredProps) -> std::result::Result<Envelope, String> {
    let items = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    if !(1..=3).contains(&items) {
        return Err(format!("expected 1 to 3 items before the payload, found {items}"));
    }
    let (kind, rest) = rmp::decode::read_str_from_slice(rd).map_err(|e| e.to_string())?;
    rd = rest;
    let mut timeout_ms = None;
    if items >= 2 {
        if rd.first() == Some(&0xc0) {
            rd = &rd[1..];
        } else {
            timeout_ms = Some(rmp::decode::read_int::<u64, _>(&mut rd).map_err(|e| e.to_string())?);
        }
    }
    let mut trace_parent = None;
    if items == 3 {
        let (trace, rest) = rmp::decode::read_str_from_slice(rd).map_err(|e| e.to_string())?;
        trace_parent = Some(trace.to_owned());
        rd = rest;
    }
    if rd.is_empty() {
        return Err("no payload".into());
    }
    Ok(Envelope {
        id: id.to_owned(),
        queue: queue.to_owned(),
        kind: kind.to_owned(),
        payload: rd.to_vec(),
        priority: props.priority,
        max_attempts: props.max_attempts,
        backoff: props.backoff,
        timeout_ms,
        trace_parent,
    })
}

/// The envelope: what a worker receives. Its stored form is compact (see `JobRecord`); this
/// named MessagePack form ([`to_msgpack`](Self::to_msgpack)) is what earlier versions stored.
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
    /// Cancelled while waiting or running (kept under the dead retention).
    Cancelled,
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
            "cancelled" => JobState::Cancelled,
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
            JobState::Cancelled => "cancelled",
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
    /// The last progress its handler reported ([`Queue::progress`](crate::Queue::progress)).
    pub progress: Option<serde_json::Value>,
    /// Its group ([`NewJob::group`](crate::NewJob::group)), if it has one.
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{Backoff, Envelope, JobRecord};

    fn compact(e: &Envelope) -> Vec<u8> {
        JobRecord::compact(&e.kind, &e.payload, e.timeout_ms, e.trace_parent.as_deref())
    }

    fn envelope() -> Envelope {
        Envelope {
            id: "j".into(),
            queue: "q".into(),
            kind: "k".into(),
            payload: rmp_serde::to_vec(&1).unwrap(),
            priority: 3,
            max_attempts: 5,
            backoff: Backoff::Exponential {
                base_ms: 1000,
                cap_ms: 60000,
                jitter: true,
            },
            timeout_ms: None,
            trace_parent: None,
        }
    }

    #[test]
    fn a_record_splits_into_its_properties_and_its_envelope() {
        let mut bytes = b"1795370400000|3|5|e|1000|60000|1|".to_vec();
        bytes.extend(compact(&envelope()));
        let record = JobRecord::new(bytes);
        assert_eq!(record.created_ms(), Some(1_795_370_400_000));
        assert_eq!(record.envelope("j", "q").unwrap(), envelope());
    }

    #[test]
    fn a_record_without_properties_has_the_defaults() {
        let mut bytes = b"1795370400000|".to_vec();
        bytes.extend(compact(&envelope()));
        let decoded = JobRecord::new(bytes).envelope("j", "q").unwrap();
        assert_eq!((decoded.priority, decoded.max_attempts), (0, 3));
        assert_eq!(decoded.backoff, Backoff::default());
        assert_eq!(
            crate::NewJob::new("k", &1).max_attempts,
            3,
            "the defaults records leave out"
        );
    }

    #[test]
    fn timeouts_and_trace_parents_round_trip_in_the_compact_form() {
        for (timeout_ms, trace_parent) in [
            (Some(30_000), None),
            (
                None,
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
            ),
            (Some(0), Some("t".to_owned())),
        ] {
            let envelope = Envelope {
                timeout_ms,
                trace_parent,
                ..envelope()
            };
            let mut bytes = b"1|3|5|e|1000|60000|1|".to_vec();
            bytes.extend(compact(&envelope));
            assert_eq!(JobRecord::new(bytes).envelope("j", "q").unwrap(), envelope);
        }
    }

    #[test]
    fn an_old_record_with_the_named_envelope_still_decodes() {
        let mut bytes = b"1795370400000|3|5|e|1000|60000|1|".to_vec();
        bytes.extend(envelope().to_msgpack());
        assert_eq!(
            JobRecord::new(bytes).envelope("ignored", "ignored").unwrap(),
            envelope()
        );
    }

    #[test]
    fn a_record_that_does_not_parse_fails_to_decode() {
        for bad in [
            &b"garbage"[..],
            b"\x01not msgpack",
            b"1|\x01",
            b"1|\x01\x91",
            b"1|\x01\x94\xa1k",
            b"1|x|3|e|1|1|1|\x01\x91\xa1k\x01",
        ] {
            let error = JobRecord::new(bad.to_vec()).envelope("j", "q").unwrap_err();
            assert!(error.to_string().contains("undecodable envelope"), "{bad:?}: {error}");
        }
    }
}
