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
        }
    }
}
