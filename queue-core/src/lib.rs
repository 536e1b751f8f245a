//! The core of a Redis job queue whose every state change is one atomic Lua script.
//!
//! - [`QueueClient`]: the connection; [`QueueClient::queue`] names a [`Queue`], whose handle
//!   enqueues (single, bulk, delayed), inspects, pauses and resumes, handles the dead letter, and
//!   makes the lease calls (pop, complete, fail, extend, release, reap) that workers use.
//! - [`ScriptRegistry`]: define a named Lua command once, run it by name with EVALSHA and
//!   transparent NOSCRIPT recovery, alone or in a pipeline. The queue's own scripts
//!   ([`Command`]) are registered through it.
//! - [`Envelope`] / [`NewJob`]: the job as MessagePack.
//! - The script library, on the same registry: [`RateLimiter`] (a sliding window with burst)
//!   and [`Lock`] (owner token and TTL), each one atomic script.
#![deny(missing_docs)]

mod acl;
mod client;
mod config;
mod connection;
pub mod env;
mod envelope;
mod error;
mod keys;
mod limits;
mod lock;
mod new_job;
mod queue;
mod rate_limiter;
mod registry;
mod request;
mod results;
mod schedule;
mod scripts;
mod streams;
pub mod trace;

pub use acl::{acl_rules, REQUIRED_COMMANDS};
pub use client::{eviction_warning, info_field, QueueClient};
pub use config::{Durability, QueueConfig, Retention};
pub use connection::{redact_url, ConnectOptions};
pub use envelope::{Backoff, Envelope, Job, JobState, MAX_DELAY, PRIORITY_RANGE};
pub use error::{Error, Result};
pub use keys::{queue_index, validate_job_id, validate_name, validate_prefix, QueueKeys, MAX_NAME_LEN};
pub use limits::Limits;
pub use lock::{register as register_lock_script, Lock, LockStatus, LOCK_SCRIPT};
pub use new_job::{JobPayload, NewJob, Unique, MAX_GROUP_LEN, MAX_UNIQUE_KEY_LEN};
pub use queue::{
    Cancellation, Event, FiredSchedules, GroupLoad, GroupsReport, JobPage, JobSummary, Lease, Pause, Queue, Sweep,
    MAX_BULK_BYTES, MAX_BULK_JOBS, MAX_JOBS_PAGE,
};
pub use rate_limiter::{register as register_rate_limit_script, Rate, RateDecision, RateLimiter, RATE_LIMIT_SCRIPT};
pub use registry::{KeyCount, Script, ScriptPipeline, ScriptRegistry};
pub use request::RequestId;
pub use results::{DeadJob, DeadPage, Enqueued, FailOutcome, Leased, Popped, QueueStats};
pub use schedule::{validate_schedule_name, Schedule, ScheduleInfo, ScheduleSpec, MAX_SCHEDULE_NAME_LEN, MIN_INTERVAL};
pub use scripts::{register as register_queue_scripts, Command, QUEUE_KEY_COUNT};
pub use streams::{StreamEntry, StreamReader, MAX_BLOCK};

/// The Redis client library, re-exported so callers use the same version.
pub use fred;

/// Whole milliseconds of `duration`, saturating at `i64::MAX` so that the figure fits both an
/// envelope field and a script argument.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).map_or(i64::MAX as u64, |ms| ms.min(i64::MAX as u64))
}
