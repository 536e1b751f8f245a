//! Client settings beyond the connection: the key prefix, the payload limit, retention.
use std::time::Duration;

/// How long finished jobs are kept: at most `max_count`, none older than `max_age`
/// (`Duration::ZERO` means no age limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many.
    pub max_count: u64,
    /// Forget those older than this (zero: no age limit).
    pub max_age: Duration,
}

/// Client settings beyond the connection.
///
/// Retention is applied by whoever finishes a job: the worker's client for completions and
/// failures, and for the reaper's trims. Give workers the retention you want; a producer's
/// setting matters only for the calls it makes itself (such as `dead_purge`).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Namespace for every key (default `queue`).
    pub prefix: String,
    /// Largest encoded payload accepted (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Completed jobs kept for inspection (default 1,000 for at most 1 hour).
    pub completed: Retention,
    /// Dead jobs kept (default 10,000 for at most 30 days).
    pub dead: Retention,
    /// Whether enqueues and settles wait for replicas (default: they do not).
    pub durability: Durability,
}

/// How far a write must have gone before the call that made it returns.
///
/// A master acknowledges a write as soon as it ran, and replicates it afterwards: if the master
/// crashes in between, the replica promoted in its place never had it. With
/// [`Durability::Replicated`] every enqueue and every settle (complete, fail) then waits with
/// Redis `WAIT` until that many replicas have it, on the connection that made the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Return once the master has the write (the default).
    #[default]
    Master,
    /// Return once `replicas` replicas have the write too; after `timeout`, fail with
    /// [`Error::NotReplicated`](crate::Error::NotReplicated) (the write itself is done).
    Replicated {
        /// How many replicas must acknowledge.
        replicas: u32,
        /// How long to wait for them.
        timeout: Duration,
    },
}

impl Durability {
    /// How long [`Durability::Replicated`] waits by default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// Waits for `replicas` replicas, up to [`Durability::DEFAULT_TIMEOUT`].
    pub fn replicated(replicas: u32) -> Self {
        Durability::Replicated {
            replicas,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = crate::Error;

    /// `master`, `replicated` (one replica) or `replicated:N`.
    fn from_str(text: &str) -> crate::Result<Self> {
        let bad = || crate::Error::InvalidDurability(text.to_owned());
        match text.split_once(':') {
            None if text == "master" => Ok(Durability::Master),
            None if text == "replicated" => Ok(Durability::replicated(1)),
            Some(("replicated", n)) => match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Durability::replicated(n)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Master => f.write_str("master"),
            Durability::Replicated { replicas, .. } => write!(f, "replicated:{replicas}"),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            prefix: crate::env::DEFAULT_PREFIX.into(),
            max_payload_bytes: 1 << 20,
            completed: Retention {
                max_count: 1_000,
                max_age: Duration::from_secs(3600),
            },
            dead: Retention {
                max_count: 10_000,
                max_age: Duration::from_secs(30 * 24 * 3600),
            },
            durability: Durability::Master,
        }
    }
}
