use std::time::Duration;

/// Everything that can go wrong talking to the queue. Variants name what went wrong for the
/// caller; messages are written for the person who reads them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL does not parse. The password, if any, is masked.
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis could not be reached or refused the connection.
    #[error("cannot connect to Redis at {address}: {reason}")]
    Connect {
        /// host:port (or the URL with its password masked).
        address: String,
        /// Why, in words (refused, timed out, wrong password, ...).
        reason: String,
    },
    /// A Redis command failed.
    #[error("Redis error: {0}")]
    Redis(fred::error::Error),
    /// A queue name (or prefix) that the queue cannot use.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A job id that the queue cannot use.
    #[error("invalid job id {id:?}: {reason}")]
    InvalidJobId {
        /// The id as given.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A schedule name that the queue cannot use.
    #[error("invalid schedule name {name:?}: {reason}")]
    InvalidScheduleName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A cron expression or `@every` interval that does not parse.
    #[error("invalid schedule {expression:?}: {reason}")]
    InvalidSchedule {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A time zone name that the system's time zone database does not know.
    #[error("unknown time zone {zone:?}: {reason}")]
    InvalidTimeZone {
        /// The name as given.
        zone: String,
        /// Why it was refused.
        reason: String,
    },
    /// No schedule of this name exists in the queue.
    #[error("no schedule {name:?} in queue {queue:?}")]
    ScheduleNotFound {
        /// The queue.
        queue: String,
        /// The schedule name.
        name: String,
    },
    /// A unique key that the queue cannot use, or a debounce without one.
    #[error("invalid unique key {key:?}: {reason}")]
    InvalidUniqueKey {
        /// The key as given.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A group name that the queue cannot use.
    #[error("invalid group {group:?}: {reason}")]
    InvalidGroup {
        /// The name as given.
        group: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The encoded payload is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The payload could not be encoded or decoded.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// Raw JSON given as a payload does not parse.
    #[error("malformed JSON payload: {0}")]
    MalformedJson(serde_json::Error),
    /// A priority outside the supported range.
    #[error("priority {0} is outside -1000..=1000")]
    InvalidPriority(i32),
    /// Zero attempts would never run the job.
    #[error("max_attempts must be at least 1")]
    InvalidMaxAttempts,
    /// A delay or run-at time that is negative or too far in the future.
    #[error("invalid delay: {0}")]
    InvalidDelay(String),
    /// No job with this id exists in the queue (it may have been retained out).
    #[error("job {id:?} not found in queue {queue:?}")]
    JobNotFound {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// A job named for a dead-letter operation is not in the queue's dead letter (it may have
    /// been replayed or purged already, or never died).
    #[error("job {id:?} is not in the dead letter of queue {queue:?}")]
    NotInDeadLetter {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// A job that is running (leased by a worker) cannot be deleted; its attempt has to end
    /// first. Nothing was changed.
    #[error("job {id:?} in queue {queue:?} is running (active): it can be deleted once its attempt ends")]
    JobActive {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// Only a scheduled or retrying job can be run ahead of its time; this one is elsewhere.
    /// Nothing was changed.
    #[error("job {id:?} in queue {queue:?} is {state}, not scheduled or retrying")]
    NotRetryable {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
        /// Where the job is.
        state: crate::JobState,
    },
    /// A worker was started without a queue to serve.
    #[error("a worker needs at least one queue")]
    NoQueues,
    /// No queue of this name has ever received a job under this prefix.
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    /// The lease token presented no longer holds the job: its lease expired and it was reaped
    /// (and maybe leased again). Nothing was changed.
    #[error("lease lost for job {id:?} in queue {queue:?}")]
    LeaseLost {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// A script name that the registry does not know.
    #[error("no script named {0:?} is registered")]
    UnknownScript(String),
    /// A name defined twice with different sources.
    #[error("a different script named {0:?} is already registered")]
    ScriptConflict(String),
    /// A script called with a number of keys that does not match its definition.
    #[error("script {name:?} takes {expected} keys, got {got}")]
    WrongKeyCount {
        /// The script.
        name: String,
        /// Keys it declares.
        expected: usize,
        /// Keys given.
        got: usize,
    },
    /// A script refused its arguments (status BAD_ARGUMENT): nothing was written.
    #[error("script {script} rejected its arguments: {message}")]
    ScriptRejected {
        /// The script.
        script: String,
        /// What it said.
        message: String,
    },
    /// A script's reply did not have the expected shape.
    #[error("unexpected reply from script {script}: {detail}")]
    UnexpectedReply {
        /// The script.
        script: String,
        /// What was wrong.
        detail: String,
    },
    /// Redis refused a write because it reached `maxmemory` (policy `noeviction`). Scripts
    /// fail at their first write then, so nothing of the call was written.
    #[error("Redis is out of memory (maxmemory reached); nothing of this call was written: {0}")]
    OutOfMemory(String),
    /// The Redis user lacks a permission; Redis's message names the command or key.
    #[error("the Redis user lacks a permission: {0}")]
    PermissionDenied(String),
    /// The worker's metrics endpoint could not listen on its address.
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why (in use, not permitted, ...).
        #[source]
        source: std::io::Error,
    },
    /// A call did not finish in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Under [`Durability::Replicated`](crate::Durability), fewer replicas than asked for
    /// acknowledged the write in time. The write is done on the master (retrying the call is
    /// safe: it answers as it first did); a master crash before the replicas catch up loses it.
    #[error("the write is done on the master, but only {acknowledged} of {wanted} replicas acknowledged it within {timeout:?}")]
    NotReplicated {
        /// Replicas that have the write.
        acknowledged: u32,
        /// Replicas asked for.
        wanted: u32,
        /// How long the call waited for them.
        timeout: Duration,
    },
    /// A durability setting that does not parse (expected `master`, `replicated` or
    /// `replicated:N`).
    #[error("invalid durability {0:?}: expected master, replicated or replicated:N (N > 0)")]
    InvalidDurability(String),
    /// A rate, concurrency or lock setting that cannot work (`100/0s`, a concurrency of 0, ...).
    #[error("invalid limit: {0}")]
    InvalidLimit(String),
    /// The job waited for went to the dead letter.
    #[error("job {id:?} of queue {queue:?} died: {error}")]
    JobDied {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
        /// The error of its last attempt.
        error: String,
    },
    /// The job waited for was cancelled.
    #[error("job {id:?} of queue {queue:?} was cancelled")]
    JobCancelled {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// The job waited for was deleted (by `delete`, `drain` or `obliterate`) before it finished.
    #[error("job {id:?} of queue {queue:?} was deleted before it finished")]
    JobDeleted {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// The job waited for had not finished when the wait ended.
    #[error("job {id:?} of queue {queue:?} did not finish within {timeout:?}")]
    WaitTimedOut {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// A bulk larger than one script call takes; nothing was written.
    #[error("a bulk takes at most {jobs_limit} jobs and {bytes_limit} bytes; split it (each part is all-or-none)")]
    BulkTooLarge {
        /// The most jobs per bulk.
        jobs_limit: usize,
        /// The most encoded bytes per bulk.
        bytes_limit: usize,
    },
}

impl Error {
    /// Whether the call may succeed if made again unchanged: the connection failed or timed
    /// out (the call may or may not have run), or Redis was briefly unable to serve it
    /// (loading, a failover, out of memory). The worker's calls are safe to repeat: a settle
    /// call, or a fetch made again with the same [`RequestId`](crate::RequestId), answers what
    /// it did the first time. A new `enqueue` of jobs without explicit ids is a new request:
    /// give jobs ids to make repeating one safe. Anything else (a script error, a refused
    /// argument, a missing permission) fails the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout(_) | Error::OutOfMemory(_) => true,
            Error::Redis(error) => {
                use fred::error::ErrorKind;
                let details = error.details();
                matches!(
                    error.kind(),
                    ErrorKind::IO
                        | ErrorKind::Timeout
                        | ErrorKind::Canceled
                        | ErrorKind::Cluster
                        | ErrorKind::Routing
                        | ErrorKind::Sentinel
                        | ErrorKind::Backpressure
                ) || [
                    "LOADING",
                    "BUSY",
                    "TRYAGAIN",
                    "CLUSTERDOWN",
                    "MASTERDOWN",
                    "READONLY",
                    "NOREPLICAS",
                ]
                .iter()
                .any(|code| details.starts_with(code))
                    // fred's answer for a command whose connection dropped on each of its sends
                    // (reconnects during an outage): it may have run, and may run if sent again.
                    || details.starts_with("Too many failed write attempts")
            }
            _ => false,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<fred::error::Error> for Error {
    fn from(error: fred::error::Error) -> Self {
        let details = error.details();
        // Errors raised by a command inside a script keep their code at the start of the text.
        if details.starts_with("OOM ") {
            Error::OutOfMemory(first_line(details))
        } else if details.starts_with("NOPERM ") {
            Error::PermissionDenied(first_line(details))
        } else {
            Error::Redis(error)
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use fred::error::{Error as RedisError, ErrorKind};

    use super::Error;

    #[test]
    fn a_lost_connection_is_transient_and_a_script_error_is_not() {
        let redis = |kind, details: &str| Error::from(RedisError::new(kind, details.to_owned()));
        for transient in [
            redis(ErrorKind::IO, "Connection reset by peer"),
            redis(ErrorKind::Timeout, "Request timed out."),
            redis(ErrorKind::Unknown, "LOADING Redis is loading the dataset in memory"),
            redis(
                ErrorKind::Unknown,
                "READONLY You can't write against a read only replica.",
            ),
            redis(
                ErrorKind::Unknown,
                "OOM command not allowed when used memory > 'maxmemory'.",
            ),
            redis(ErrorKind::Unknown, "Too many failed write attempts."),
        ] {
            assert!(transient.is_transient(), "{transient}");
        }
        for lasting in [
            redis(
                ErrorKind::Unknown,
                "ERR user_script:12: attempt to compare nil with number",
            ),
            redis(
                ErrorKind::Unknown,
                "NOPERM this user has no permissions to run the 'del' command",
            ),
            Error::ScriptRejected {
                script: "queue.push".into(),
                message: "bad".into(),
            },
        ] {
            assert!(!lasting.is_transient(), "{lasting}");
        }
    }
}
