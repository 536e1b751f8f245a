//! What a worker counts while it runs, by queue and job kind.
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use queue_core::Error;

/// The label of jobs whose kind has no handler (and of undecodable records).
pub(crate) const UNKNOWN_KIND: &str = "unknown";
/// The label of kinds run by the fallback handler beyond the first [`FALLBACK_KIND_LIMIT`].
pub(crate) const OTHER_KINDS: &str = "other";
/// How many kinds the fallback handler's jobs are labelled with by name (the `queue-worker`
/// binary runs every kind through it): the first ones seen; the rest are `other`.
pub(crate) const FALLBACK_KIND_LIMIT: usize = 50;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReapLabels {
    queue: String,
    outcome: ReapOutcome,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are lowercase in the exposition
enum ReapOutcome {
    requeued,
    buried,
}

/// The Redis calls a worker makes, for `queue_worker_redis_errors_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are lowercase in the exposition
pub(crate) enum Operation {
    fetch,
    complete,
    fail,
    release,
    extend,
    reap,
}

impl Operation {
    /// What the call records, for log lines.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Operation::fetch => "the fetch",
            Operation::complete => "completions",
            Operation::fail => "the failure",
            Operation::release => "the hand-back",
            Operation::extend => "the renewal",
            Operation::reap => "the sweep",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: Operation,
    error: &'static str,
}

/// Seconds from 1 ms to about 33 s, doubling: handler durations and pickup latencies.
#[derive(Clone)]
struct SecondsBuckets;

impl MetricConstructor<Histogram> for SecondsBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 16))
    }
}

/// The metrics of one queue and kind, looked up once per job: counting is then a few atomic
/// operations.
#[derive(Debug)]
pub(crate) struct KindMetrics {
    pub(crate) processed: Counter,
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) retried: Counter,
    pub(crate) dead: Counter,
    pub(crate) duration: Histogram,
    pub(crate) pickup: Histogram,
    pub(crate) in_flight: Gauge,
}

/// A worker's metrics: the registry it serves and the families in it.
pub(crate) struct WorkerMetrics {
    pub(crate) registry: Registry,
    processed: Family<JobLabels, Counter>,
    completed: Family<JobLabels, Counter>,
    failed: Family<JobLabels, Counter>,
    retried: Family<JobLabels, Counter>,
    dead: Family<JobLabels, Counter>,
    cancelled: Family<JobLabels, Counter>,
    duration: Family<JobLabels, Histogram, SecondsBuckets>,
    pickup: Family<JobLabels, Histogram, SecondsBuckets>,
    in_flight: Family<JobLabels, Gauge>,
    lease_losses: Family<QueueLabels, Counter>,
    reaped: Family<ReapLabels, Counter>,
    redis_errors: Family<ErrorLabels, Counter>,
    /// By queue, then kind label.
    by_kind: RwLock<HashMap<String, HashMap<String, Arc<KindMetrics>>>>,
    /// The kinds without a handler of their own labelled by name so far.
    fallback_kinds: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerMetrics").finish_non_exhaustive()
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let processed = Family::default();
        let completed = Family::default();
        let failed = Family::default();
        let retried = Family::default();
        let dead = Family::default();
        let cancelled = Family::default();
        let duration = Family::new_with_constructor(SecondsBuckets);
        let pickup = Family::new_with_constructor(SecondsBuckets);
        let in_flight = Family::default();
        let lease_losses = Family::default();
        let reaped = Family::default();
        let redis_errors = Family::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "queue_worker_jobs_processed",
            "Attempts this worker ran to an outcome recorded in Redis (completed or failed)",
            processed.clone(),
        );
        registry.register(
            "queue_worker_jobs_completed",
            "Attempts this worker completed",
            completed.clone(),
        );
        registry.register(
            "queue_worker_jobs_failed",
            "Attempts this worker failed (retried or dead)",
            failed.clone(),
        );
        registry.register(
            "queue_worker_jobs_retried",
            "Failed attempts this worker scheduled for a retry",
            retried.clone(),
        );
        registry.register(
            "queue_worker_jobs_dead",
            "Jobs this worker sent to the dead letter",
            dead.clone(),
        );
        registry.register(
            "queue_worker_jobs_cancelled",
            "Jobs cancelled while this worker ran them",
            cancelled.clone(),
        );
        registry.register(
            "queue_worker_job_duration_seconds",
            "How long handlers ran, per attempt",
            duration.clone(),
        );
        registry.register(
            "queue_worker_pickup_latency_seconds",
            "From the time a job became runnable to the lease that took it (Redis's clock)",
            pickup.clone(),
        );
        registry.register("queue_worker_jobs_in_flight", "Handlers running now", in_flight.clone());
        registry.register(
            "queue_worker_lease_losses",
            "Attempts whose lease this worker lost (the job runs again elsewhere)",
            lease_losses.clone(),
        );
        registry.register(
            "queue_worker_reaped",
            "Jobs with expired leases this worker's reaper took back (requeued or buried)",
            reaped.clone(),
        );
        registry.register(
            "queue_worker_redis_errors",
            "Failed Redis calls, by operation and error class",
            redis_errors.clone(),
        );
        WorkerMetrics {
            registry,
            processed,
            completed,
            failed,
            retried,
            dead,
            cancelled,
            duration,
            pickup,
            in_flight,
            lease_losses,
            reaped,
            redis_errors,
            by_kind: RwLock::default(),
            fallback_kinds: std::sync::Mutex::default(),
        }
    }
}

impl WorkerMetrics {
    /// The metrics of `queue` and `kind` (a label the caller has bounded).
    pub(crate) fn kind(&self, queue: &str, kind: &str) -> Arc<KindMetrics> {
        if let Some(found) = self
            .by_kind
            .read()
            .expect("metrics lock")
            .get(queue)
            .and_then(|kinds| kinds.get(kind))
        {
            return found.clone();
        }
        let labels = JobLabels {
            queue: queue.to_owned(),
            kind: kind.to_owned(),
        };
        // Shown as 0 until jobs can be cancelled.
        drop(self.cancelled.get_or_create(&labels));
        let metrics = Arc::new(KindMetrics {
            processed: self.processed.get_or_create_owned(&labels),
            completed: self.completed.get_or_create_owned(&labels),
            failed: self.failed.get_or_create_owned(&labels),
            retried: self.retried.get_or_create_owned(&labels),
            dead: self.dead.get_or_create_owned(&labels),
            duration: self.duration.get_or_create_owned(&labels),
            pickup: self.pickup.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
        });
        self.by_kind
            .write()
            .expect("metrics lock")
            .entry(labels.queue)
            .or_default()
            .entry(labels.kind)
            .or_insert(metrics)
            .clone()
    }

    /// The label of a kind that the fallback handler runs: its name for the first
    /// [`FALLBACK_KIND_LIMIT`] such kinds, then [`OTHER_KINDS`].
    pub(crate) fn fallback_label<'a>(&self, kind: &'a str) -> &'a str {
        let mut seen = self.fallback_kinds.lock().expect("metrics lock");
        if seen.contains(kind) {
            return kind;
        }
        if seen.len() < FALLBACK_KIND_LIMIT {
            seen.insert(kind.to_owned());
            return kind;
        }
        OTHER_KINDS
    }

    pub(crate) fn lease_lost(&self, queue: &str) {
        self.lease_losses
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .inc();
    }

    pub(crate) fn reaped(&self, queue: &str, requeued: u64, buried: u64) {
        for (outcome, count) in [(ReapOutcome::requeued, requeued), (ReapOutcome::buried, buried)] {
            let labels = ReapLabels {
                queue: queue.to_owned(),
                outcome,
            };
            self.reaped.get_or_create(&labels).inc_by(count);
        }
    }

    pub(crate) fn redis_error(&self, operation: Operation, error: &Error) {
        let labels = ErrorLabels {
            operation,
            error: error_class(error),
        };
        self.redis_errors.get_or_create(&labels).inc();
    }
}

/// A bounded name for what went wrong with a Redis call.
fn error_class(error: &Error) -> &'static str {
    use queue_core::fred::error::ErrorKind;
    match error {
        Error::Connect { .. } => "connect",
        Error::Timeout(_) => "timeout",
        Error::OutOfMemory(_) => "out_of_memory",
        Error::PermissionDenied(_) => "permission_denied",
        Error::ScriptRejected { .. } | Error::UnexpectedReply { .. } => "script",
        Error::Redis(error) => match error.kind() {
            ErrorKind::IO => "io",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Cluster | ErrorKind::Routing => "cluster",
            ErrorKind::Sentinel => "sentinel",
            ErrorKind::Auth => "auth",
            ErrorKind::Backpressure => "backpressure",
            _ => "redis",
        },
        _ => "other",
    }
}
