//! Prometheus metrics: what a worker did (`WorkerMetrics`, counted as it runs) and what the
//! queues hold ([`QueueGauges`], read from Redis when scraped), served as text at `/metrics`
//! ([`serve`]). The names, types and labels are listed in the README. Labels are bounded: a
//! queue name, a job kind (of a registered handler, else `unknown`), a state, an outcome, an
//! operation or an error class, never a job id or another unbounded string.
mod queues;
pub(crate) mod server;
mod worker;

pub use queues::{QueueGauges, QueueSelection};
pub use server::serve;
pub(crate) use worker::{KindMetrics, Operation, WorkerMetrics, UNKNOWN_KIND};

/// The `Content-Type` of the exposition: OpenMetrics text, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
