//! What a worker is made of: its settings and handlers, as the builder collects them.
use std::{collections::HashMap, fmt, net::SocketAddr, sync::Arc, time::Duration};

use queue_core::{JobPayload, QueueClient};
use serde::de::DeserializeOwned;

use super::Worker;
use crate::handler::{self, ErasedHandler, JobContext, JobResult};

/// How the worker picks among its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// Always the first queue that has work, in the order given.
    Strict,
    /// Each fetch orders the queues at random in proportion to their weights, so a busy
    /// high-weight queue never starves the others.
    Weighted,
}

/// Builds a [`Worker`]: its queues, its handlers (by payload type, or by kind name for jobs
/// from other languages), the application state they receive, and its settings.
///
/// ```no_run
/// use queue_core::JobPayload;
/// use queue_worker::{JobContext, JobError, Worker};
/// use std::time::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Email { to: String }
///
/// impl JobPayload for Email {
///     const KIND: &'static str = "send_email";
/// }
///
/// struct Mailer { from: String }
///
/// # async fn demo(client: queue_core::QueueClient) -> queue_core::Result<()> {
/// let worker = Worker::builder(client)
///     .state(Mailer { from: "noreply@example.com".into() })
///     .queue("emails")
///     .concurrency(20)
///     .handle(|email: Email, ctx: JobContext<Mailer>| async move {
///         if email.to.is_empty() {
///             return Err(JobError::permanent("no recipient"));
///         }
///         println!("{} -> {} (attempt {})", ctx.state().from, email.to, ctx.attempt());
///         Ok(())
///     })
///     .build();
/// worker.run(queue_worker::shutdown_on_signals()).await?;
/// # Ok(()) }
/// ```
pub struct WorkerBuilder<S = ()> {
    worker: Worker,
    state: Arc<S>,
}

impl<S> fmt::Debug for WorkerBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// What the builder sets and the running worker reads.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) queues: Vec<(String, u32)>,
    pub(super) order: QueueOrder,
    pub(super) concurrency: usize,
    pub(super) lease: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) reap_interval: Duration,
    pub(super) job_timeout: Option<Duration>,
    pub(super) idle_recheck: Duration,
    pub(super) metrics_addr: Option<SocketAddr>,
}

/// The handlers by job kind, and the one for kinds without their own.
pub(super) struct Handlers {
    by_kind: HashMap<String, ErasedHandler>,
    fallback: Option<ErasedHandler>,
}

impl Handlers {
    /// Whether `kind` has a handler of its own.
    pub(super) fn has_own(&self, kind: &str) -> bool {
        self.by_kind.contains_key(kind)
    }

    /// Whether a handler runs kinds without one of their own.
    pub(super) fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// The handler that runs jobs of `kind`.
    pub(super) fn for_kind(&self, kind: &str) -> Option<ErasedHandler> {
        self.by_kind.get(kind).or(self.fallback.as_ref()).cloned()
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<&str> = self.by_kind.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        f.debug_struct("Handlers")
            .field("kinds", &kinds)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queues: Vec::new(),
            order: QueueOrder::Strict,
            concurrency: 10,
            lease: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            reap_interval: Duration::from_secs(5),
            job_timeout: None,
            idle_recheck: Duration::from_secs(30),
            metrics_addr: None,
        }
    }
}

impl Worker {
    /// Starts building a worker on `client`.
    pub fn builder(client: QueueClient) -> WorkerBuilder {
        WorkerBuilder {
            state: Arc::new(()),
            worker: Worker {
                client,
                settings: Settings::default(),
                handlers: Handlers {
                    by_kind: HashMap::new(),
                    fallback: None,
                },
            },
        }
    }
}

impl WorkerBuilder<()> {
    /// The application state handlers receive through [`JobContext::state`] (a database pool,
    /// a configuration...), shared by all of them without cloning it per job. Give it before
    /// the handlers: those added earlier see `()`.
    pub fn state<S: Send + Sync + 'static>(self, state: S) -> WorkerBuilder<S> {
        WorkerBuilder {
            worker: self.worker,
            state: Arc::new(state),
        }
    }
}

impl<S: Send + Sync + 'static> WorkerBuilder<S> {
    /// Adds a queue to take jobs from. With several, the order of the calls is their priority
    /// (see [`QueueOrder`]).
    pub fn queue(self, name: impl Into<String>) -> Self {
        self.queue_with_weight(name, 1)
    }

    /// Adds a queue with a weight, for [`QueueOrder::Weighted`].
    pub fn queue_with_weight(mut self, name: impl Into<String>, weight: u32) -> Self {
        self.worker.settings.queues.push((name.into(), weight.max(1)));
        self
    }

    /// How to choose among queues (default `Strict`).
    pub fn order(mut self, order: QueueOrder) -> Self {
        self.worker.settings.order = order;
        self
    }

    /// How many jobs run at once (default 10).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.worker.settings.concurrency = concurrency.max(1);
        self
    }

    /// Lease per attempt, renewed every third of it while the handler runs (default 30 s).
    /// A worker that dies loses its jobs' leases after at most this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.worker.settings.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// How long in-flight jobs may finish after a shutdown signal (default 10 s); the rest go
    /// back to pending without counting an attempt. Handing them back and recording the last
    /// results then gets at most 5 s more (the lease, if shorter), even while Redis is down:
    /// what is not recorded by then is logged, and those jobs return when their leases expire.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.worker.settings.shutdown_timeout = timeout;
        self
    }

    /// How often the fleet sweeps expired leases (default 5 s; one sweep per interval in all).
    pub fn reap_interval(mut self, interval: Duration) -> Self {
        self.worker.settings.reap_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Time limit per attempt for jobs that do not set their own (default none).
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.worker.settings.job_timeout = Some(timeout);
        self
    }

    /// How often an idle worker asks every queue again without being woken (default 30 s): a
    /// safety net, not the way work is found. Wake-ups come on a connection checked every 5 s,
    /// and the worker asks every queue again after each reconnect, which may have missed some.
    /// Each recheck costs one fetch per queue.
    pub fn idle_recheck(mut self, interval: Duration) -> Self {
        self.worker.settings.idle_recheck = interval.max(Duration::from_millis(10));
        self
    }

    /// Serves Prometheus metrics at `http://<addr>/metrics` while the worker runs: what this
    /// worker did by queue and job kind, and its queues' jobs by state, read from Redis when
    /// scraped (at most once a second). The names and labels are listed in the README.
    /// [`Worker::run`] fails at once if it cannot listen there.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.worker.settings.metrics_addr = Some(addr);
        self
    }

    /// Runs the jobs of `T`'s kind (see [`JobPayload`]). In the handler, `?` takes any error a
    /// service uses (see [`JobError`](crate::JobError)): it fails the attempt, to be retried with the job's
    /// backoff, unless it is [`JobError::permanent`](crate::JobError::permanent). A payload that does not decode into `T`
    /// goes to the dead letter with the decode error. What the handler returns in `Ok` (any
    /// `Serialize` type; `()` for none) is kept as the job's result (see [`JobResult`]).
    pub fn handle<T, F, Fut, R>(self, handler: F) -> Self
    where
        T: JobPayload,
        F: Fn(T, JobContext<S>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = JobResult<R>> + Send + 'static,
        R: serde::Serialize + 'static,
    {
        self.handle_kind(T::KIND, handler)
    }

    /// Runs jobs of `kind`, a name, with a payload decoded into `T`: for kinds written by other
    /// languages, or payload types that do not name their kind.
    pub fn handle_kind<T, F, Fut, R>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, JobContext<S>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = JobResult<R>> + Send + 'static,
        R: serde::Serialize + 'static,
    {
        let handler = handler::typed(handler, self.state.clone());
        self.worker.handlers.by_kind.insert(kind.into(), handler);
        self
    }

    /// Runs every job whose kind has no handler of its own (the payload is left to the handler:
    /// see [`JobContext::envelope`]). Without it, such jobs go to the dead letter.
    pub fn fallback<F, Fut, R>(mut self, handler: F) -> Self
    where
        F: Fn(JobContext<S>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = JobResult<R>> + Send + 'static,
        R: serde::Serialize + 'static,
    {
        self.worker.handlers.fallback = Some(handler::raw(handler, self.state.clone()));
        self
    }

    /// The worker.
    pub fn build(self) -> Worker {
        self.worker
    }
}
