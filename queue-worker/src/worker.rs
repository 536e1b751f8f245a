//! The runtime: fetch in batches sized to the free slots, run handlers, settle each attempt
//! with its lease token, renew leases, reap, shut down gracefully.
use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures_util::{stream::FuturesUnordered, FutureExt, StreamExt};
use queue_core::{
    fred::{
        clients::Client,
        interfaces::{ClientLike, ListInterface},
        types::{config::Blocking, Builder},
    },
    Envelope, Error, FailOutcome, Leased, QueueClient,
};
use serde::de::DeserializeOwned;
use tokio::{
    sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::{sleep, sleep_until, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::handler::{self, ErasedHandler, JobContext, JobError, JobResult};

/// How the worker picks among its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// Always the first queue that has work, in the order given.
    Strict,
    /// Each fetch orders the queues at random in proportion to their weights, so a busy
    /// high-weight queue never starves the others.
    Weighted,
}

/// Builds a [`Worker`].
///
/// ```no_run
/// use queue_worker::{JobContext, JobError, Worker};
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Email { to: String }
///
/// # async fn demo(client: queue_core::QueueClient) -> queue_core::Result<()> {
/// let worker = Worker::builder(client)
///     .queue("emails", 1)
///     .concurrency(20)
///     .handle("send_email", |email: Email, ctx: JobContext| async move {
///         if email.to.is_empty() {
///             return Err(JobError::permanent("no recipient"));
///         }
///         println!("sending to {} (attempt {})", email.to, ctx.attempt());
///         Ok(())
///     })
///     .build();
/// worker.run(queue_worker::shutdown_on_signals()).await?;
/// # Ok(()) }
/// ```
pub struct WorkerBuilder {
    setup: Setup,
}

/// What a worker is made of; the builder fills it in, the running worker reads it.
struct Setup {
    client: QueueClient,
    queues: Vec<(String, u32)>,
    order: QueueOrder,
    concurrency: usize,
    lease: Duration,
    shutdown_timeout: Duration,
    reap_interval: Duration,
    job_timeout: Option<Duration>,
    idle_recheck: Duration,
    handlers: HashMap<String, ErasedHandler>,
    fallback: Option<ErasedHandler>,
}

impl WorkerBuilder {
    /// Adds a queue with a weight (used with [`QueueOrder::Weighted`]; with `Strict`, the order
    /// of the calls is the priority).
    pub fn queue(mut self, name: impl Into<String>, weight: u32) -> Self {
        self.setup.queues.push((name.into(), weight.max(1)));
        self
    }

    /// How to choose among queues (default `Strict`).
    pub fn order(mut self, order: QueueOrder) -> Self {
        self.setup.order = order;
        self
    }

    /// How many jobs run at once (default 10).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.setup.concurrency = concurrency.max(1);
        self
    }

    /// Lease per attempt, renewed every third of it while the handler runs (default 30 s).
    /// A worker that dies loses its jobs' leases after at most this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.setup.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// How long in-flight jobs may finish after a shutdown signal (default 10 s); the rest go
    /// back to pending without counting an attempt.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.setup.shutdown_timeout = timeout;
        self
    }

    /// How often the fleet sweeps expired leases (default 5 s; one sweep per interval in all).
    pub fn reap_interval(mut self, interval: Duration) -> Self {
        self.setup.reap_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Time limit per attempt for jobs that do not set their own (default none).
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.setup.job_timeout = Some(timeout);
        self
    }

    /// How often an idle worker looks again without being woken (default 5 s): a safety net
    /// for wake-ups lost with a dropped connection, not the way work is found.
    pub fn idle_recheck(mut self, interval: Duration) -> Self {
        self.setup.idle_recheck = interval.max(Duration::from_millis(10));
        self
    }

    /// Runs jobs of `kind` with a typed payload. A payload that does not decode into `T` goes
    /// to the dead letter with the decode error.
    pub fn handle<T, F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = JobResult> + Send + 'static,
    {
        self.setup.handlers.insert(kind.into(), handler::typed(handler));
        self
    }

    /// Runs every job whose kind has no handler of its own (the payload is left to the handler:
    /// see [`JobContext::envelope`]). Without it, such jobs go to the dead letter.
    pub fn fallback<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = JobResult> + Send + 'static,
    {
        self.setup.fallback = Some(handler::raw(handler));
        self
    }

    /// The worker.
    pub fn build(self) -> Worker {
        Worker {
            shared: Arc::new(Shared {
                setup: self.setup,
                in_flight: Mutex::default(),
                report: Counters::default(),
            }),
        }
    }
}

/// What a worker did, returned by [`Worker::run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Attempts that completed.
    pub completed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Jobs this worker sent to the dead letter.
    pub dead: u64,
    /// Jobs handed back at shutdown without counting the attempt.
    pub released: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    released: AtomicU64,
}

type JobKey = (String, String);

struct InFlight {
    token: String,
    cancel: CancellationToken,
    /// The handler returned; only the acknowledgement is pending.
    finished: bool,
}

/// The attempts this worker runs, by queue then job id (looked up by `&str`, without building
/// a key per lookup: every job is looked up on start, finish and acknowledgement).
#[derive(Default)]
struct InFlightJobs {
    by_queue: HashMap<String, HashMap<String, InFlight>>,
}

impl InFlightJobs {
    /// Tracks an attempt; returns the one it displaces (the same job leased again).
    fn insert(&mut self, queue: &str, id: String, attempt: InFlight) -> Option<InFlight> {
        match self.by_queue.get_mut(queue) {
            Some(jobs) => jobs.insert(id, attempt),
            None => {
                self.by_queue.insert(queue.to_owned(), HashMap::from([(id, attempt)]));
                None
            }
        }
    }

    /// The attempt of `queue`/`id`, if it is still the one leased with `token`.
    fn get_mut(&mut self, queue: &str, id: &str, token: &str) -> Option<&mut InFlight> {
        self.by_queue
            .get_mut(queue)?
            .get_mut(id)
            .filter(|job| job.token == token)
    }

    /// Stops tracking the attempt of `queue`/`id` if it is still the one leased with `token`.
    fn remove(&mut self, queue: &str, id: &str, token: &str) -> Option<InFlight> {
        let jobs = self.by_queue.get_mut(queue)?;
        if jobs.get(id)?.token != token {
            return None;
        }
        jobs.remove(id)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str, &InFlight)> {
        self.by_queue
            .iter()
            .flat_map(|(queue, jobs)| jobs.iter().map(move |(id, job)| (queue.as_str(), id.as_str(), job)))
    }
}

struct Shared {
    setup: Setup,
    in_flight: Mutex<InFlightJobs>,
    report: Counters,
}

impl Shared {
    /// Notes that an attempt's handler returned (its lease must not be handed back at
    /// shutdown), if the entry is still that attempt's.
    fn mark_finished(&self, key: &JobKey, token: &str) {
        if let Some(job) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(&key.0, &key.1, token)
        {
            job.finished = true;
        }
    }

    /// Stops tracking settled attempts. An entry is removed only if it still holds the same
    /// token: the job may have been leased again by this worker after its old lease was lost.
    fn forget_leases<'a>(&self, queue: &str, leases: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        for (id, token) in leases {
            in_flight.remove(queue, id, token);
        }
    }
}

impl std::ops::Deref for Shared {
    type Target = Setup;

    fn deref(&self) -> &Setup {
        &self.setup
    }
}

/// A worker: runs handlers for jobs from its queues until its shutdown token is cancelled.
pub struct Worker {
    shared: Arc<Shared>,
}

struct Ack {
    queue: String,
    id: String,
    token: String,
}

enum Outcome {
    Completed,
    Failed(JobError),
    /// Cancelled from outside (lease lost, or shutdown past its deadline): someone else settles.
    Abandoned,
}

impl Worker {
    /// Starts building a worker on `client`.
    pub fn builder(client: QueueClient) -> WorkerBuilder {
        WorkerBuilder {
            setup: Setup {
                client,
                queues: Vec::new(),
                order: QueueOrder::Strict,
                concurrency: 10,
                lease: Duration::from_secs(30),
                shutdown_timeout: Duration::from_secs(10),
                reap_interval: Duration::from_secs(5),
                job_timeout: None,
                idle_recheck: Duration::from_secs(5),
                handlers: HashMap::new(),
                fallback: None,
            },
        }
    }

    /// Runs until `shutdown` is cancelled, then stops fetching, lets in-flight jobs finish up
    /// to the shutdown timeout, hands the rest back, and returns. Redis errors never end it:
    /// they are logged and retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) -> queue_core::Result<WorkerReport> {
        let shared = self.shared;
        if shared.queues.is_empty() {
            return Err(Error::InvalidQueueName {
                name: String::new(),
                reason: "a worker needs at least one queue",
            });
        }
        for (queue, _) in &shared.queues {
            queue_core::validate_name(queue)?;
        }
        // Background tasks outlive the drain (leases must be renewed while jobs finish).
        let background = CancellationToken::new();
        // Bounds retries of acknowledgements once the worker is done.
        let give_up = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let (idle_tx, idle_rx) = watch::channel(false);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();

        let mut tasks = JoinSet::new();
        tasks.spawn(heartbeat(shared.clone(), background.clone()));
        tasks.spawn(reaper(shared.clone(), background.clone()));
        let acker = tokio::spawn(acker(shared.clone(), ack_rx, give_up.clone()));
        let listeners = background.child_token();
        for (queue, _) in &shared.queues {
            let key = shared.client.keys(queue)?.wake().to_owned();
            let blocking = wake_client(shared.client.redis())?;
            tasks.spawn(listen(blocking, key, idle_rx.clone(), wake.clone(), listeners.clone()));
        }
        info!(queues = ?shared.queues.iter().map(|q| &q.0).collect::<Vec<_>>(), concurrency = shared.concurrency, "worker started");
        match shared.client.maxmemory_policy().await {
            Ok(policy) if policy.starts_with("allkeys") => warn!(
                policy,
                "Redis may evict job data under maxmemory-policy {policy}: jobs can vanish; use noeviction \
                 (or a volatile-* policy) for the queue's Redis"
            ),
            Ok(_) => {}
            Err(error) => debug!(%error, "cannot read maxmemory-policy"),
        }

        let mut jobs = JoinSet::new();
        fetch_loop(&shared, &shutdown, &wake, &idle_tx, &ack_tx, &give_up, &mut jobs).await;
        listeners.cancel();

        info!(
            in_flight = jobs.len(),
            "shutting down: no new jobs; waiting for in-flight jobs"
        );
        let drained = tokio::time::timeout(shared.shutdown_timeout, async {
            while jobs.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            let unfinished: Vec<(JobKey, String)> = {
                let in_flight = shared.in_flight.lock().expect("in-flight lock");
                in_flight
                    .iter()
                    .filter(|(_, _, job)| !job.finished)
                    .map(|(queue, id, job)| {
                        job.cancel.cancel();
                        ((queue.to_owned(), id.to_owned()), job.token.clone())
                    })
                    .collect()
            };
            while jobs.join_next().await.is_some() {}
            release(&shared, unfinished, &give_up).await;
        }
        drop(ack_tx);
        // Acknowledgements get a last window to reach Redis; a job whose acknowledgement never
        // arrives is not lost: its lease expires and it runs again.
        let stop_acking = give_up.clone();
        let grace = shared.lease;
        tokio::spawn(async move {
            sleep(grace).await;
            stop_acking.cancel();
        });
        let _ = acker.await;
        background.cancel();
        while tasks.join_next().await.is_some() {}
        let r = &shared.report;
        let report = WorkerReport {
            completed: r.completed.load(Ordering::Relaxed),
            retried: r.retried.load(Ordering::Relaxed),
            dead: r.dead.load(Ordering::Relaxed),
            released: r.released.load(Ordering::Relaxed),
        };
        info!(?report, "worker stopped");
        Ok(report)
    }
}

/// Fetch rounds in flight at once: while one round's jobs are being started, the next round is
/// already queued in Redis, so Redis does not wait for the worker between fetches.
const FETCHES_IN_FLIGHT: usize = 2;

/// What one fetch round brought back, with the slots it was given.
struct Round {
    leased: Vec<(String, Leased)>,
    permits: Vec<OwnedSemaphorePermit>,
    next_due: Option<Instant>,
    /// The queue whose fetch failed, and why (the round stops there).
    failed: Option<(String, Error)>,
}

/// Leases jobs for the given slots from the worker's queues, in the worker's order.
async fn fetch_round(shared: Arc<Shared>, permits: Vec<OwnedSemaphorePermit>) -> Round {
    let mut round = Round {
        leased: Vec::new(),
        permits,
        next_due: None,
        failed: None,
    };
    for queue in queue_order(&shared) {
        let wanted = round.permits.len() - round.leased.len();
        if wanted == 0 {
            break;
        }
        match shared.client.pop(queue, wanted, shared.lease).await {
            Ok(popped) => {
                if let (Some(due), false) = (popped.next_due_ms, popped.paused) {
                    // Timed here, not by Redis: blocking timeouts there have a 100 ms resolution.
                    let at = Instant::now() + Duration::from_millis((due - popped.now_ms).max(0) as u64 + 1);
                    round.next_due = Some(round.next_due.map_or(at, |d| d.min(at)));
                }
                let jobs = popped.jobs.into_iter().map(|job| (queue.to_owned(), job));
                round.leased.extend(jobs);
            }
            Err(error) => {
                round.failed = Some((queue.to_owned(), error));
                break;
            }
        }
    }
    round
}

async fn fetch_loop(
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
    wake: &Notify,
    idle: &watch::Sender<bool>,
    ack_tx: &mpsc::UnboundedSender<Ack>,
    give_up: &CancellationToken,
    jobs: &mut JoinSet<()>,
) {
    let slots = Arc::new(Semaphore::new(shared.concurrency));
    // A further round starts only with a fair share of the slots, so that batches stay large.
    let further_round_slots = (shared.concurrency / 4).max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut retry = RetryDelay::default();
    loop {
        let wanted = if in_flight.is_empty() { 1 } else { further_round_slots };
        let can_start = in_flight.len() < FETCHES_IN_FLIGHT && !shutdown.is_cancelled();
        tokio::select! {
            biased;
            Some(round) = in_flight.next() => {
                let Round { leased, mut permits, next_due, failed } = round;
                let leased_any = !leased.is_empty();
                for (queue, job) in leased {
                    let permit = permits.pop().expect("never more jobs than permits");
                    start(shared, queue, job, permit, ack_tx.clone(), give_up.clone(), jobs);
                }
                drop(permits);
                while jobs.try_join_next().is_some() {}
                if let Some((queue, error)) = failed {
                    let delay = retry.next();
                    warn!(%error, queue, retry_in = ?delay, "cannot fetch jobs; retrying");
                    tokio::select! {
                        _ = sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
                retry.reset();
                if leased_any || !in_flight.is_empty() || shutdown.is_cancelled() {
                    continue;
                }
                // Nothing to do: sleep until woken, due work, or the periodic recheck.
                let recheck = Instant::now() + shared.idle_recheck;
                let until = next_due.map_or(recheck, |due| due.min(recheck));
                idle.send_replace(true);
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = sleep_until(until) => {}
                    _ = shutdown.cancelled() => {}
                }
                idle.send_replace(false);
            }
            permits = take_slots(&slots, wanted), if can_start => {
                in_flight.push(fetch_round(shared.clone(), permits));
            }
            _ = shutdown.cancelled(), if in_flight.is_empty() => return,
        }
    }
}

/// At least `wanted` free slots (waiting for them), plus every other slot free right now.
async fn take_slots(slots: &Arc<Semaphore>, wanted: usize) -> Vec<OwnedSemaphorePermit> {
    let mut permits = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        permits.push(slots.clone().acquire_owned().await.expect("semaphore never closed"));
    }
    while let Ok(permit) = slots.clone().try_acquire_owned() {
        permits.push(permit);
    }
    permits
}

fn queue_order(shared: &Shared) -> Vec<&str> {
    let names = || shared.queues.iter().map(|(name, _)| name.as_str());
    if shared.order == QueueOrder::Strict || shared.queues.len() == 1 {
        return names().collect();
    }
    let mut pool: Vec<(&str, u32)> = shared.queues.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let mut order = Vec::with_capacity(pool.len());
    while !pool.is_empty() {
        let total: u32 = pool.iter().map(|(_, w)| w).sum();
        let mut pick = rand::random_range(0..total);
        let index = pool
            .iter()
            .position(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .expect("pick < total");
        order.push(pool.remove(index).0);
    }
    order
}

fn start(
    shared: &Arc<Shared>,
    queue: String,
    leased: Leased,
    permit: OwnedSemaphorePermit,
    ack_tx: mpsc::UnboundedSender<Ack>,
    give_up: CancellationToken,
    jobs: &mut JoinSet<()>,
) {
    let cancel = CancellationToken::new();
    let attempt = InFlight {
        token: leased.token.clone(),
        cancel: cancel.clone(),
        finished: false,
    };
    if let Some(displaced) = shared
        .in_flight
        .lock()
        .expect("in-flight lock")
        .insert(&queue, leased.id.clone(), attempt)
    {
        // This worker leased the job again after losing its lease: the old attempt must stop.
        displaced.cancel.cancel();
    }
    let span = tracing::info_span!("job", queue = queue.as_str(), id = %leased.id, attempt = leased.attempt);
    let key = (queue, leased.id.clone());
    let shared = shared.clone();
    jobs.spawn(
        async move {
            let outcome = match prepare(&shared, &leased, cancel.clone()) {
                Ok((handler, ctx)) => run_handler(&shared, handler, ctx, &cancel).await,
                Err(error) => Outcome::Failed(error),
            };
            drop(permit);
            settle(&shared, key, leased, outcome, ack_tx, &give_up).await;
        }
        .instrument(span),
    );
}

fn prepare(
    shared: &Arc<Shared>,
    leased: &Leased,
    cancel: CancellationToken,
) -> Result<(ErasedHandler, JobContext), JobError> {
    let envelope: Envelope = leased.envelope().map_err(JobError::permanent)?;
    let handler = shared
        .handlers
        .get(&envelope.kind)
        .or(shared.fallback.as_ref())
        .cloned()
        .ok_or_else(|| JobError::permanent(format!("no handler registered for kind {:?}", envelope.kind)))?;
    let ctx = JobContext {
        envelope: Arc::new(envelope),
        attempt: leased.attempt,
        token: leased.token.clone(),
        cancel,
        client: shared.client.clone(),
    };
    Ok((handler, ctx))
}

async fn run_handler(shared: &Shared, handler: ErasedHandler, ctx: JobContext, cancel: &CancellationToken) -> Outcome {
    let timeout = ctx
        .envelope
        .timeout_ms
        .map(Duration::from_millis)
        .or(shared.job_timeout);
    // Caught here, so a panic fails this attempt and nothing else. The handler runs inside the
    // job's own task: a second task per job cost more than the no-op handlers it ran.
    let handled = AssertUnwindSafe(async move { handler(ctx).await }).catch_unwind();
    let expired = async {
        match timeout {
            Some(limit) => sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    // Leaving the select drops the handler's future, which stops it.
    tokio::select! {
        handled = handled => match handled {
            Ok(Ok(())) => Outcome::Completed,
            Ok(Err(error)) => Outcome::Failed(error),
            Err(panic) => Outcome::Failed(JobError::retry(format!("handler panicked: {}", panic_message(panic)))),
        },
        _ = expired => {
            cancel.cancel();
            Outcome::Failed(JobError::retry(format!("timed out after {}", humantime::format_duration(timeout.unwrap_or_default()))))
        }
        _ = cancel.cancelled() => Outcome::Abandoned,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

async fn settle(
    shared: &Shared,
    key: JobKey,
    leased: Leased,
    outcome: Outcome,
    ack_tx: mpsc::UnboundedSender<Ack>,
    give_up: &CancellationToken,
) {
    match outcome {
        Outcome::Abandoned => {}
        Outcome::Completed => {
            shared.mark_finished(&key, &leased.token);
            let (queue, id) = key;
            let _ = ack_tx.send(Ack {
                queue,
                id,
                token: leased.token,
            });
        }
        // Boxed: the failure path's future is large, and inlined it would be moved with every
        // job's task, while most jobs complete.
        Outcome::Failed(error) => Box::pin(record_failure(shared, key, leased, error, give_up)).await,
    }
}

async fn record_failure(shared: &Shared, key: JobKey, leased: Leased, error: JobError, give_up: &CancellationToken) {
    shared.mark_finished(&key, &leased.token);
    let (queue, id) = &key;
    let recorded = until_recorded(give_up, "the failure", || {
        shared
            .client
            .fail(queue, id, &leased.token, error.message(), error.is_permanent())
    })
    .await;
    match recorded {
        Some(Ok(FailOutcome::Retry { delay_ms, .. })) => {
            shared.report.retried.fetch_add(1, Ordering::Relaxed);
            warn!(
                error = error.message(),
                retry_in_ms = delay_ms,
                "attempt failed; will retry"
            );
        }
        Some(Ok(FailOutcome::Dead)) => {
            shared.report.dead.fetch_add(1, Ordering::Relaxed);
            error!(
                error = error.message(),
                permanent = error.is_permanent(),
                "job moved to the dead letter"
            );
        }
        Some(Err(Error::LeaseLost { .. })) => {
            warn!("lease lost before the failure was recorded; another worker owns the job");
        }
        Some(Err(other)) => error!(%other, "cannot record the failure; its lease will expire"),
        None => {}
    }
    shared.forget_leases(&key.0, [(key.1.as_str(), leased.token.as_str())]);
}

/// Completes finished jobs in batches: one call per queue for everything that finished since
/// the last call.
async fn acker(shared: Arc<Shared>, mut acks: mpsc::UnboundedReceiver<Ack>, give_up: CancellationToken) {
    const MAX_BATCH: usize = 1_000;
    while let Some(first) = acks.recv().await {
        let mut finished = vec![(first.queue, first.id, first.token)];
        while finished.len() < MAX_BATCH {
            let Ok(ack) = acks.try_recv() else { break };
            finished.push((ack.queue, ack.id, ack.token));
        }
        for (queue, batch) in by_queue(finished) {
            let pairs = as_pairs(&batch);
            match until_recorded(&give_up, "completions", || shared.client.complete(&queue, &pairs)).await {
                Some(Ok(held)) => {
                    for ((id, _), held) in batch.iter().zip(held) {
                        if held {
                            shared.report.completed.fetch_add(1, Ordering::Relaxed);
                            debug!(queue, id, "completed");
                        } else {
                            warn!(
                                queue,
                                id, "lease lost before completion was recorded; the job may run again"
                            );
                        }
                    }
                }
                Some(Err(error)) => error!(%error, queue, "cannot record completions; the jobs will run again"),
                None => {}
            }
            shared.forget_leases(&queue, pairs);
        }
    }
}

async fn release(shared: &Shared, unfinished: Vec<(JobKey, String)>, give_up: &CancellationToken) {
    for (queue, batch) in by_queue(unfinished.into_iter().map(|((queue, id), token)| (queue, id, token))) {
        let pairs = as_pairs(&batch);
        match until_recorded(give_up, "the hand-back", || shared.client.release(&queue, &pairs)).await {
            Some(Ok(held)) => {
                let released = held.iter().filter(|h| **h).count() as u64;
                shared.report.released.fetch_add(released, Ordering::Relaxed);
                info!(queue, released, "handed unfinished jobs back to pending");
            }
            Some(Err(error)) => error!(%error, queue, "cannot hand jobs back; their leases will expire instead"),
            None => {}
        }
        shared.forget_leases(&queue, pairs);
    }
}

/// `(queue, id, token)` leases grouped by queue, since every lease call is for one queue.
fn by_queue(leases: impl IntoIterator<Item = (String, String, String)>) -> HashMap<String, Vec<(String, String)>> {
    let mut grouped: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (queue, id, token) in leases {
        grouped.entry(queue).or_default().push((id, token));
    }
    grouped
}

/// `(id, token)` pairs as the client's lease calls take them.
fn as_pairs(leases: &[(String, String)]) -> Vec<(&str, &str)> {
    leases.iter().map(|(id, token)| (id.as_str(), token.as_str())).collect()
}

/// One timer renews every lease this worker holds: one call per queue.
async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.lease / 3;
    loop {
        tokio::select! {
            _ = sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let held: Vec<(String, String, String)> = {
            let in_flight = shared.in_flight.lock().expect("in-flight lock");
            in_flight
                .iter()
                .map(|(queue, id, job)| (queue.to_owned(), id.to_owned(), job.token.clone()))
                .collect()
        };
        for (queue, batch) in by_queue(held) {
            let pairs = as_pairs(&batch);
            match shared.client.extend(&queue, shared.lease, &pairs).await {
                Ok(held) => {
                    let mut in_flight = shared.in_flight.lock().expect("in-flight lock");
                    for ((id, token), held) in batch.iter().zip(held) {
                        if held {
                            continue;
                        }
                        if let Some(job) = in_flight.remove(&queue, id, token) {
                            warn!(queue, id, "lease lost (reaped after a stall?); cancelling the job");
                            job.cancel.cancel();
                        }
                    }
                }
                Err(error) => warn!(%error, queue, "cannot renew leases; will retry at the next beat"),
            }
        }
    }
}

/// Sweeps expired leases; the script's lock makes it one sweep per interval for the fleet.
async fn reaper(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        for (queue, _) in &shared.queues {
            // 100 jobs per call: each reads its job's record, payload included.
            match shared.client.reap(queue, shared.reap_interval, 100).await {
                Ok(Some((requeued, buried))) if requeued + buried > 0 => {
                    warn!(queue, requeued, buried, "reaped jobs whose lease expired");
                }
                Ok(_) => {}
                Err(error) => debug!(%error, queue, "reap failed; next interval"),
            }
        }
        tokio::select! {
            _ = sleep(shared.reap_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Blocks on a queue's wake-up list while the worker is idle, and wakes the fetch loop. A
/// marker caught while the worker is busy is put back for another worker.
async fn listen(
    blocking: Client,
    key: String,
    mut idle: watch::Receiver<bool>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    const BLOCK_SECS: f64 = 5.0;
    let mut retry = RetryDelay::default();
    let mut connected = false;
    loop {
        if !connected {
            let attempt = tokio::select! {
                result = blocking.init() => result.map(drop),
                _ = stop.cancelled() => return,
            };
            match attempt {
                Ok(()) => connected = true,
                Err(error) => {
                    debug!(%error, "wake-up connection not ready");
                    tokio::select! {
                        _ = sleep(retry.next()) => continue,
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
        tokio::select! {
            changed = idle.wait_for(|idle| *idle) => if changed.is_err() { return },
            _ = stop.cancelled() => break,
        }
        // The timeout guards against a connection that died without telling us.
        let popped = tokio::select! {
            result = tokio::time::timeout(
                Duration::from_secs_f64(BLOCK_SECS + 5.0),
                blocking.blpop::<Option<(String, String)>, _>(key.as_str(), BLOCK_SECS),
            ) => result,
            _ = stop.cancelled() => break,
        };
        match popped {
            Ok(Ok(Some(_))) => {
                retry.reset();
                if *idle.borrow() {
                    wake.notify_one();
                } else {
                    let _: Result<i64, _> = blocking.rpush(key.as_str(), "1").await;
                }
            }
            Ok(Ok(None)) => retry.reset(),
            Ok(Err(error)) => {
                debug!(%error, "wake-up wait failed; retrying");
                tokio::select! {
                    _ = sleep(retry.next()) => {}
                    _ = stop.cancelled() => break,
                }
            }
            Err(_) => {
                // fred never takes a connection blocked in BLPOP for unresponsive, so one whose
                // server froze or vanished would stay in use: make it again, from the topology
                // or the sentinels' current master.
                debug!("wake-up wait timed out on the client side; reconnecting");
                let _ = tokio::time::timeout(Duration::from_secs(10), blocking.force_reconnection()).await;
            }
        }
    }
    // A BLPOP left blocked on the server would take the next wake-up marker meant for another
    // worker. In Interrupt mode any command first unblocks it (CLIENT UNBLOCK); QUIT alone
    // does not, so a PING goes first.
    let _ = tokio::time::timeout(Duration::from_secs(2), blocking.ping::<()>(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), blocking.quit()).await;
}

/// A connection of its own for blocking calls, so they never hold up the queue's commands.
fn wake_client(main: &Client) -> queue_core::Result<Client> {
    let mut config = main.client_config();
    config.blocking = Blocking::Interrupt;
    let mut builder = Builder::from_config(config);
    let mut connection = main.connection_config().clone();
    // No command is sent again on a new connection: a BLPOP replayed after its caller gave up
    // (a dead server) would take a wake-up marker that nobody reads. `listen` retries instead.
    connection.max_command_attempts = 1;
    builder.set_connection_config(connection);
    builder.set_performance_config(main.perf_config());
    if let Some(policy) = main.client_reconnect_policy() {
        builder.set_policy(policy);
    }
    Ok(builder.build()?)
}

/// Runs `call` until Redis records it: errors of the connection (Redis down, restarting,
/// timing out) are retried with backoff; any other answer is returned. `None` when `give_up`
/// fired first: the job's lease then expires and the reaper puts it back, so nothing is lost.
async fn until_recorded<T, F, Fut>(
    give_up: &CancellationToken,
    what: &str,
    mut call: F,
) -> Option<queue_core::Result<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = queue_core::Result<T>>,
{
    let mut retry = RetryDelay::default();
    loop {
        match call().await {
            Err(error @ (Error::Redis(_) | Error::Timeout(_) | Error::Connect { .. })) => {
                let delay = retry.next();
                warn!(%error, retry_in = ?delay, "cannot record {what}; retrying");
                tokio::select! {
                    _ = sleep(delay) => {}
                    _ = give_up.cancelled() => return None,
                }
            }
            answer => return Some(answer),
        }
    }
}

/// Exponential retry delay for Redis errors: 100 ms doubling up to 5 s.
#[derive(Default)]
struct RetryDelay {
    failures: u32,
}

impl RetryDelay {
    fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(100u64.saturating_mul(1 << self.failures.min(6))).min(Duration::from_secs(5));
        self.failures += 1;
        delay
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
