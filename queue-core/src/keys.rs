//! Key names. All keys of one queue share the hash tag `{prefix:queue}`, so a queue lives in one
//! Redis Cluster slot and every script can touch all of them.
use crate::{Error, Result};

/// The longest queue name or prefix accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The keys of one queue, in the order every queue script expects them in KEYS
/// (see `lua/prelude.lua`).
#[derive(Debug, Clone)]
pub struct QueueKeys {
    queue: String,
    keys: Vec<String>,
}

/// The key suffixes, in KEYS order: `lua/prelude.lua` names `KEYS[i + 1]` `K_<SUFFIX>` (upper
/// case, `:` as `_`), which a test checks.
pub(crate) const SUFFIXES: [&str; 35] = [
    "pending",
    "scheduled",
    "retrying",
    "active",
    "dead",
    "completed",
    "jobs",
    "failures",
    "tokens",
    "errors",
    "priorities",
    "runat",
    "meta",
    "wake",
    "reaper",
    "leases",
    "pending:default",
    "requests",
    "replies",
    "rate",
    "results",
    "progress",
    "waiters",
    "finished",
    "events",
    "schedules",
    "unique",
    "unique:expiry",
    "group:jobs",
    "group:of",
    "group:turns",
    "group:parked",
    "group:state",
    "group:rate",
    "group:rate:expiry",
];

/// Where the wake-up channel's name stands in [`SUFFIXES`].
const WAKE: usize = index_of("wake");
/// Where the streams that callers block on stand in [`SUFFIXES`].
const FINISHED: usize = index_of("finished");
const EVENTS: usize = index_of("events");
/// Where the queue's meta hash (counters, pause flag) stands in [`SUFFIXES`].
pub(crate) const META: usize = index_of("meta");

/// Where `suffix` stands in [`SUFFIXES`], found when the crate is built (a suffix that is not
/// there fails the build), so that adding a key cannot shift these positions by mistake.
const fn index_of(suffix: &str) -> usize {
    let mut at = 0;
    while at < SUFFIXES.len() {
        if same_bytes(SUFFIXES[at].as_bytes(), suffix.as_bytes()) {
            return at;
        }
        at += 1;
    }
    panic!("not a key suffix")
}

const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl QueueKeys {
    /// The keys of `queue` under `prefix`; both must be valid names (see [`validate_name`]).
    pub fn new(prefix: &str, queue: &str) -> Self {
        let tag = format!("{{{prefix}:{queue}}}");
        let keys = SUFFIXES.iter().map(|suffix| format!("{tag}:{suffix}")).collect();
        QueueKeys {
            queue: queue.to_owned(),
            keys,
        }
    }

    /// The queue name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// All keys, in script order.
    pub fn all(&self) -> &[String] {
        &self.keys
    }

    /// The channel idle workers listen on to be woken when work arrives, and running ones to
    /// learn that a job of theirs was cancelled.
    pub fn wake(&self) -> &str {
        &self.keys[WAKE]
    }

    /// The stream that tells callers of `wait` that a job they wait for finished.
    pub fn finished(&self) -> &str {
        &self.keys[FINISHED]
    }

    /// The queue's event stream (see `queue-cli events`).
    pub fn events(&self) -> &str {
        &self.keys[EVENTS]
    }
}

/// The set of queue names known under `prefix` (an index for `queues` and `stats`; not job state).
pub fn queue_index(prefix: &str) -> String {
    format!("{{{prefix}}}:queues")
}

/// Checks a prefix: a valid name (see [`validate_name`]) without `:`, which ends the prefix in
/// every key (`{prefix:queue}`): prefix `a` with queue `b:c` and prefix `a:b` with queue `c`
/// would otherwise share keys, and the ACL pattern `{prefix:*` would admit other prefixes.
///
/// ```
/// assert!(queue_core::validate_prefix("queue").is_ok());
/// assert!(queue_core::validate_prefix("a:b").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<()> {
    validate_name(prefix)?;
    if prefix.contains(':') {
        return Err(Error::InvalidQueueName {
            name: prefix.to_owned(),
            reason: "a prefix cannot contain ':', which ends the prefix in every key",
        });
    }
    Ok(())
}

/// Checks a queue name or prefix: 1 to 128 bytes of ASCII letters, digits, `_`, `-`, `.`, `:`.
/// Braces are refused because they would break the hash tag that keeps a queue in one slot.
///
/// ```
/// assert!(queue_core::validate_name("emails.high").is_ok());
/// assert!(queue_core::validate_name("a{b}").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 128 bytes")
    } else if name.contains(['{', '}']) {
        Some("braces are reserved for the hash tag")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        Some("only ASCII letters, digits, '_', '-', '.' and ':' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidQueueName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks an explicit job id: 1 to 128 bytes, printable, no whitespace.
pub fn validate_job_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_NAME_LEN {
        Some("it is longer than 128 bytes")
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("whitespace and control characters are not allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidJobId {
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wake_names_the_wake_up_list() {
        assert_eq!(super::SUFFIXES[super::WAKE], "wake");
        assert_eq!(super::QueueKeys::new("p", "q").wake(), "{p:q}:wake");
        let keys = super::QueueKeys::new("p", "q");
        assert_eq!((keys.finished(), keys.events()), ("{p:q}:finished", "{p:q}:events"));
        assert_eq!(super::SUFFIXES[super::META], "meta");
    }
}
