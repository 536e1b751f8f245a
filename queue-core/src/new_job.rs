//! A job to enqueue ([`NewJob`]), and payload types that name their own kind ([`JobPayload`]).
use serde::{de::DeserializeOwned, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    envelope::{
        Backoff, JobRecord, DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, MAX_DELAY, PRIORITY_RANGE,
    },
    keys::validate_job_id,
    millis, Error, Result,
};

/// A payload type that names its kind, so that producers and handlers agree by type: enqueue
/// the value itself (`orders.enqueue(order)`), and give the worker a handler that
/// takes it (`.handle(|order: ChargeOrder, ctx| ...)`). Jobs from other languages carry the same
/// kind string. [`options`](JobPayload::options) sets what every job of the kind starts with.
///
/// ```
/// use queue_core::{JobPayload, NewJob};
/// use std::time::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ChargeOrder { order_id: u64, cents: u64 }
///
/// impl JobPayload for ChargeOrder {
///     const KIND: &'static str = "charge_order";
///     fn options(job: NewJob) -> NewJob {
///         job.max_attempts(5).timeout(Duration::from_secs(30))
///     }
/// }
///
/// let job = NewJob::of(&ChargeOrder { order_id: 42, cents: 1999 }).id("charge-42");
/// assert_eq!(job.kind(), "charge_order");
/// ```
pub trait JobPayload: Serialize + DeserializeOwned + Send + 'static {
    /// The kind stored with every job of this type.
    const KIND: &'static str;

    /// The options every job of this kind starts with (default: none beyond [`NewJob`]'s).
    fn options(job: NewJob) -> NewJob {
        job
    }
}

/// A payload type's job with its kind's options: `queue.enqueue(payload)`.
impl<T: JobPayload> From<T> for NewJob {
    fn from(payload: T) -> Self {
        NewJob::of(&payload)
    }
}

/// One job as PUSH takes it (see lua/push.lua).
pub(crate) struct PushFields {
    pub(crate) id: String,
    pub(crate) envelope: Vec<u8>,
    /// "priority|max_attempts|backoff" as the scripts read it.
    pub(crate) props: Vec<u8>,
    /// "" (now), "+ms" or "@unix_ms".
    pub(crate) when: Vec<u8>,
    /// Whether `props` carries a unique key (such a job is a run of its own).
    pub(crate) unique: bool,
    /// Whether the id was generated (see [`generated_id`]): push finding it taken is then a
    /// collision, and the job goes again under a new one.
    pub(crate) generated: bool,
}

/// The length of a generated job id.
pub(crate) const GENERATED_ID_LEN: usize = 12;

/// A new job id: 12 random characters of `0-9A-Za-z` (71 bits). Short, because the id is a
/// queue's largest per-job cost after the payload: the jobs hash and the pending list each hold
/// it, and 12 bytes keep the hash field in jemalloc's 16-byte class. Two jobs in one queue get
/// the same id with odds of about n²/2^72 for n jobs held at once (1 in 10^8 for 10^7 jobs);
/// push never overwrites a job, and enqueue gives a job whose generated id was taken a new one
/// ([`Queue::enqueue_bulk`](crate::Queue::enqueue_bulk)), so a collision costs a round trip,
/// never a job.
pub(crate) fn generated_id() -> String {
    #[cfg(test)]
    if let Some(id) = tests::NEXT_GENERATED_IDS.with(|ids| ids.borrow_mut().pop()) {
        return id;
    }
    use rand::Rng;
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..GENERATED_ID_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// How long a job's unique key keeps other jobs with the same key out (see [`NewJob::unique`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// For this long after the job was enqueued, whatever happens to the job meanwhile.
    For(Duration),
    /// Until the job finishes: completes, or goes to the dead letter.
    UntilFinished,
}

/// The longest unique key, in bytes.
pub const MAX_UNIQUE_KEY_LEN: usize = 512;

/// The longest group name, in bytes (see [`NewJob::group`]).
pub const MAX_GROUP_LEN: usize = 128;

/// Checks a group name: 1 to [`MAX_GROUP_LEN`] bytes, without NUL.
pub(crate) fn validate_group(group: &str) -> Result<()> {
    let reason = if group.is_empty() {
        "it is empty"
    } else if group.len() > MAX_GROUP_LEN {
        "it is longer than 128 bytes"
    } else if group.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidGroup {
        group: group.to_owned(),
        reason,
    })
}

#[derive(Debug, Clone)]
pub(crate) enum UniqueKey {
    Held(String, Unique),
    Debounce(String, Duration),
}

/// A job to enqueue: kind, payload and options. Build it, then pass it to
/// [`Queue::enqueue`](crate::Queue::enqueue) or
/// [`Queue::enqueue_bulk`](crate::Queue::enqueue_bulk).
///
/// ```
/// use queue_core::{Backoff, NewJob};
/// use std::time::Duration;
///
/// #[derive(serde::Serialize)]
/// struct Email { to: String }
///
/// let job = NewJob::new("send_email", &Email { to: "a@example.com".into() })
///     .priority(10)
///     .delay(Duration::from_secs(30))
///     .max_attempts(5)
///     .backoff(Backoff::fixed(Duration::from_secs(2)));
/// assert_eq!(job.kind(), "send_email");
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) id: Option<String>,
    pub(crate) kind: String,
    pub(crate) payload: Vec<u8>,
    /// Why the payload did not encode; enqueueing the job reports it.
    pub(crate) unencodable: Option<String>,
    pub(crate) priority: i32,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) timeout: Option<Duration>,
    pub(crate) run_at: RunAt,
    pub(crate) trace_parent: Option<String>,
    pub(crate) unique: Option<UniqueKey>,
    pub(crate) group: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum RunAt {
    Now,
    After(Duration),
    At(SystemTime),
}

impl NewJob {
    /// A job of `kind` with a typed payload. A payload that cannot be encoded (a map with
    /// non-string keys, say) is reported when the job is enqueued or validated.
    pub fn new<T: Serialize + ?Sized>(kind: impl Into<String>, payload: &T) -> Self {
        match rmp_serde::to_vec_named(payload) {
            Ok(payload) => Self::from_encoded(kind.into(), payload),
            Err(error) => NewJob {
                unencodable: Some(error.to_string()),
                ..Self::from_encoded(kind.into(), Vec::new())
            },
        }
    }

    /// A job of `T`'s kind, with the options of that kind (see [`JobPayload`]).
    pub fn of<T: JobPayload>(payload: &T) -> Self {
        T::options(Self::new(T::KIND, payload))
    }

    /// A job of `kind` whose payload is raw JSON text (for callers in other languages); the
    /// text is checked here, so a malformed line is reported where it is read.
    pub fn from_json(kind: impl Into<String>, json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(Error::MalformedJson)?;
        Ok(Self::new(kind, &value))
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub(crate) fn from_encoded(kind: String, payload: Vec<u8>) -> Self {
        NewJob {
            id: None,
            kind,
            payload,
            unencodable: None,
            priority: DEFAULT_PRIORITY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            timeout: None,
            run_at: RunAt::Now,
            trace_parent: None,
            unique: None,
            group: None,
        }
    }

    /// An explicit id: enqueueing an id that still exists returns it and writes nothing.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Higher runs first (-1000..=1000, default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Attempts before the dead letter (default 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Delay between attempts (default exponential from 1 s to 1 h, with jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// A time limit for each attempt, enforced by the worker.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run no earlier than `delay` from now (server time).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.run_at = RunAt::After(delay);
        self
    }

    /// Run no earlier than `at`; a time in the past means now.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = RunAt::At(at);
        self
    }

    /// The W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) of the trace the job belongs
    /// to, e.g. from an incoming request's header; the worker's span for the job joins it.
    /// Without it, enqueueing keeps the active span's context when the `otel` feature is on.
    pub fn trace_parent(mut self, traceparent: impl Into<String>) -> Self {
        self.trace_parent = Some(traceparent.into());
        self
    }

    /// A unique key, independent of the job id: while another job holds `key` (for the time
    /// `unique` says), enqueueing this job writes nothing and returns the holder's id with
    /// [`Enqueued::duplicate`](crate::Enqueued::duplicate) set.
    ///
    /// ```
    /// use queue_core::{NewJob, Unique};
    /// use std::time::Duration;
    /// let sync = NewJob::new("sync", &42).unique("sync:42", Unique::For(Duration::from_secs(60)));
    /// let import = NewJob::new("import", &7).unique("import:7", Unique::UntilFinished);
    /// ```
    pub fn unique(mut self, key: impl Into<String>, unique: Unique) -> Self {
        self.unique = Some(UniqueKey::Held(key.into(), unique));
        self
    }

    /// Debounces by `key`: the job runs `delay` after it is enqueued, and enqueueing another
    /// job with the same key while this one still waits replaces it (its payload and options,
    /// under the new job's id) and pushes the run time back to `delay` from then. Once the job
    /// has started, the next enqueue of the key makes a new job. Sets the run time (replaces
    /// any [`delay`](Self::delay) or [`run_at`](Self::run_at)).
    pub fn debounce(mut self, key: impl Into<String>, delay: Duration) -> Self {
        self.unique = Some(UniqueKey::Debounce(key.into(), delay));
        self.run_at = RunAt::After(delay);
        self
    }

    /// Puts the job in `group` (a tenant, a customer): groups share the workers in turns, so a
    /// group with a large backlog delays another group's first job by about one turn, and the
    /// queue's group limits ([`Limits`](crate::Limits)) hold for each group.
    ///
    /// ```
    /// use queue_core::NewJob;
    /// let job = NewJob::new("resize", &7).group("tenant-42");
    /// ```
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Checks the job against the queue's rules without writing anything.
    pub(crate) fn check(&self, max_payload: usize) -> Result<()> {
        if let Some(error) = &self.unencodable {
            return Err(Error::InvalidPayload(error.clone()));
        }
        if self.payload.len() > max_payload {
            return Err(Error::PayloadTooLarge {
                size: self.payload.len(),
                limit: max_payload,
            });
        }
        if !PRIORITY_RANGE.contains(&self.priority) {
            return Err(Error::InvalidPriority(self.priority));
        }
        if self.max_attempts == 0 {
            return Err(Error::InvalidMaxAttempts);
        }
        match self.run_at {
            RunAt::After(delay) if delay > MAX_DELAY => {
                return Err(Error::InvalidDelay(format!("{delay:?} is more than 10 years ahead")))
            }
            RunAt::At(at) if at < UNIX_EPOCH => return Err(Error::InvalidDelay("run-at time is before 1970".into())),
            RunAt::At(at) if at > SystemTime::now() + MAX_DELAY => {
                return Err(Error::InvalidDelay("run-at time is more than 10 years ahead".into()))
            }
            _ => {}
        }
        if let Some(id) = &self.id {
            validate_job_id(id)?;
        }
        if let Some(group) = &self.group {
            validate_group(group)?;
        }
        if let Some(UniqueKey::Held(key, _) | UniqueKey::Debounce(key, _)) = &self.unique {
            let reason = if key.is_empty() {
                Some("it is empty")
            } else if key.len() > MAX_UNIQUE_KEY_LEN {
                Some("it is longer than 512 bytes")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::InvalidUniqueKey {
                    key: key.clone(),
                    reason,
                });
            }
        }
        match &self.unique {
            Some(UniqueKey::Held(_, Unique::For(duration))) if duration.is_zero() || *duration > MAX_DELAY => {
                return Err(Error::InvalidDelay(format!(
                    "unique for {duration:?}: from 1ms to 10 years"
                )))
            }
            Some(UniqueKey::Debounce(_, delay)) if delay.is_zero() => {
                return Err(Error::InvalidDelay("a debounce needs a delay above 0".into()))
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the options and builds what the PUSH script receives for this job.
    pub(crate) fn into_push_fields(self, max_payload: usize) -> Result<PushFields> {
        self.check(max_payload)?;
        let when = match self.run_at {
            RunAt::Now => String::new(),
            RunAt::After(delay) => format!("+{}", millis(delay)),
            RunAt::At(at) => format!("@{}", millis(at.duration_since(UNIX_EPOCH).unwrap_or_default())),
        };
        let generated = self.id.is_none();
        let id = self.id.unwrap_or_else(generated_id);
        let trace_parent = self.trace_parent.or_else(crate::trace::current_trace_parent);
        let envelope = JobRecord::compact(
            &self.kind,
            &self.payload,
            self.timeout.map(millis),
            trace_parent.as_deref(),
        );
        let mut props = format!("{}|{}|{}", self.priority, self.max_attempts, self.backoff.script_spec());
        // See lua/push.lua: "|G<group>\0", then "|<mode><ms>|<key>".
        if let Some(group) = &self.group {
            props += &format!("|G{group}\0");
        }
        match &self.unique {
            None => {}
            Some(UniqueKey::Held(key, Unique::For(duration))) => props += &format!("|f{}|{key}", millis(*duration)),
            Some(UniqueKey::Held(key, Unique::UntilFinished)) => props += &format!("|c0|{key}"),
            Some(UniqueKey::Debounce(key, delay)) => props += &format!("|d{}|{key}", millis(*delay)),
        }
        Ok(PushFields {
            envelope,
            id,
            props: props.into_bytes(),
            when: when.into_bytes(),
            unique: self.unique.is_some(),
            generated,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    thread_local! {
        /// Ids that `generated_id` hands out (last first) before random ones: a collision is
        /// otherwise too rare to test.
        pub(crate) static NEXT_GENERATED_IDS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }
}
