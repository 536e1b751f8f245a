//! A Redis job queue whose every state change is one atomic Lua script.
//!
//! This crate is the facade a service depends on: the core library ([`queue_core`]: the
//! client, the envelope, the script registry) and the worker runtime ([`queue_worker`]).
#![deny(missing_docs)]

pub use queue_core::*;
pub use queue_worker::{
    connect_when_available, shutdown_on_signals, CancellationToken, ExecHandler, JobContext, JobError, JobResult,
    QueueOrder, Worker, WorkerBuilder, WorkerReport,
};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
