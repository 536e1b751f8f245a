//! A Redis job queue whose every state change is one atomic Lua script.
//!
//! This crate is the facade a service depends on: the core library ([`queue_core`]: the
//! client, the envelope, the script registry) and the worker runtime ([`queue_worker`]).
#![deny(missing_docs)]

pub use queue_core::{
    acl_rules, env, fred, redact_url, validate_job_id, validate_name, validate_prefix, Backoff, Cancellation,
    ConnectOptions, DeadJob, DeadPage, Durability, Enqueued, Envelope, Error, Event, FailOutcome, GroupLoad,
    GroupsReport, Job, JobPage, JobPayload, JobState, JobSummary, Lease, Leased, Limits, Lock, LockStatus, NewJob,
    Pause, Popped, Queue, QueueClient, QueueConfig, QueueStats, Rate, RateDecision, RateLimiter, RequestId, Result,
    Retention, Schedule, ScheduleInfo, ScheduleSpec, StreamEntry, StreamReader, Sweep, Unique, MAX_BLOCK,
    MAX_BULK_BYTES, MAX_BULK_JOBS, MAX_DELAY, MAX_GROUP_LEN, MAX_JOBS_PAGE, MAX_NAME_LEN, PRIORITY_RANGE,
};
pub use queue_worker::{
    connect_when_available, shutdown_on_signals, CancellationToken, ExecHandler, JobContext, JobError, JobResult,
    QueueOrder, Worker, WorkerBuilder, WorkerReport, MAX_STDOUT_RESULT,
};

/// Prometheus metrics: a worker's (see [`WorkerBuilder::metrics_addr`]) and the queues'.
pub use queue_worker::metrics;

/// The trace context kept with a job (W3C `traceparent`).
pub use queue_core::trace;

/// Below the client: the script registry, the queue's scripts and key layout, and INFO
/// parsing. For tools and tests that call the scripts themselves; a service needs none of it.
pub mod low_level {
    pub use queue_core::{
        info_field, queue_index, register_queue_scripts, Command, FiredSchedules, KeyCount, QueueKeys, Script,
        ScriptPipeline, ScriptRegistry, QUEUE_KEY_COUNT, REQUIRED_COMMANDS,
    };
}

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
