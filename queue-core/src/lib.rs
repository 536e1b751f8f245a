//! The core of a Redis job queue whose every state change is one atomic Lua script.
//!
//! - [`QueueClient`]: enqueue (single, bulk, delayed), inspect, dead letter, pause/resume,
//!   stats, and the lease calls (pop, complete, fail, extend, release, reap) that workers use.
//! - [`ScriptRegistry`]: define a named Lua command once, run it by name with EVALSHA and
//!   transparent NOSCRIPT recovery, alone or in a pipeline. The queue's own scripts
//!   ([`Command`]) are registered through it.
//! - [`Envelope`] / [`NewJob`]: the job as MessagePack.
#![deny(missing_docs)]

mod acl;
mod client;
mod connection;
pub mod env;
mod envelope;
mod error;
mod keys;
mod new_job;
mod registry;
mod request;
mod scripts;

pub use acl::{acl_rules, REQUIRED_COMMANDS};
pub use client::{
    info_field, DeadJob, DeadPage, Enqueued, FailOutcome, Leased, Popped, QueueClient, QueueConfig, QueueStats,
    Retention, MAX_BULK_BYTES, MAX_BULK_JOBS,
};
pub use connection::{redact_url, ConnectOptions};
pub use envelope::{Backoff, Envelope, Job, JobState, MAX_DELAY, PRIORITY_RANGE};
pub use error::{Error, Result};
pub use keys::{queue_index, validate_job_id, validate_name, validate_prefix, QueueKeys, MAX_NAME_LEN};
pub use new_job::{JobPayload, NewJob};
pub use registry::{KeyCount, Script, ScriptPipeline, ScriptRegistry};
pub use request::RequestId;
pub use scripts::{register as register_queue_scripts, Command, QUEUE_KEY_COUNT};

/// The Redis client library, re-exported so callers use the same version.
pub use fred;
