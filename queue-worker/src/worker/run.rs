//! Running a worker: its tasks started, then stopped in order at shutdown.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use queue_core::{Error, Queue};
use tokio::{
    sync::{mpsc, Notify},
    task::JoinSet,
    time::{sleep_until, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::{
    server::{serve_exposition, Exposition},
    QueueGauges, QueueSelection, WorkerMetrics,
};

use super::{
    ready::ReadyQueues, report::Counters, settle::Ack, timetable::Timetable, wake::wake_subscriber, Runtime, Worker,
    WorkerReport,
};

/// The longest a shutdown takes after the shutdown timeout: the window to hand unfinished jobs
/// back and to record the last results (the lease, if shorter).
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn shutdown_grace(lease: Duration) -> Duration {
    lease.min(MAX_SHUTDOWN_GRACE)
}

impl Worker {
    /// Runs until its queues hold no job waiting, scheduled, retrying or running (or until
    /// `shutdown` is cancelled), then stops as [`run`](Self::run) does: for tests and batch
    /// jobs. It counts the queues' jobs every 50 ms, one `stats` call per queue.
    pub async fn run_until_drained(self, shutdown: CancellationToken) -> queue_core::Result<WorkerReport> {
        let queues = self.queue_handles()?;
        let drained = shutdown.child_token();
        let watcher = tokio::spawn(cancel_when_drained(queues, drained.clone()));
        let report = self.run(drained).await;
        watcher.abort();
        report
    }

    /// Runs until `shutdown` is cancelled, then stops fetching, lets in-flight jobs finish up
    /// to the shutdown timeout, hands the rest back (within at most 5 s more), and returns.
    /// Redis errors never end it: they are logged and retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) -> queue_core::Result<WorkerReport> {
        let queues = self.queue_handles()?;
        let queues_len = queues.len();
        let metrics = Arc::new(WorkerMetrics::default());
        let metrics_server = match self.settings.metrics_addr {
            Some(addr) => Some(metrics_server(&self.client, &self.settings, addr, metrics.clone()).await?),
            None => None,
        };
        let (acks, completions) = mpsc::unbounded_channel();
        let runtime = Arc::new(Runtime {
            client: self.client,
            queues,
            settings: self.settings,
            handlers: self.handlers,
            in_flight: Mutex::default(),
            counters: Counters::default(),
            acks,
            shutdown,
            give_up: CancellationToken::new(),
            wake: Notify::new(),
            ready: ReadyQueues::new(queues_len),
            sweeps: Timetable::new(queues_len),
            schedule_reads: Timetable::new(queues_len),
            no_state: Arc::new(()),
            metrics,
        });
        let report = runtime.run(completions).await;
        if let Some((stop, mut server)) = metrics_server {
            // A scrape in progress gets a moment to finish; a scraper cannot hold the stop.
            stop.cancel();
            if tokio::time::timeout(Duration::from_secs(1), &mut server).await.is_err() {
                server.abort();
            }
        }
        report
    }

    /// The handles of the worker's queues, in its order.
    fn queue_handles(&self) -> queue_core::Result<Vec<Queue>> {
        if self.settings.queues.is_empty() {
            return Err(Error::NoQueues);
        }
        self.settings
            .queues
            .iter()
            .map(|(name, _)| self.client.queue(name))
            .collect()
    }
}

impl Runtime {
    async fn run(self: Arc<Self>, completions: mpsc::UnboundedReceiver<Ack>) -> queue_core::Result<WorkerReport> {
        // Background tasks outlive the drain (leases must be renewed while jobs finish).
        let background = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(self.clone().heartbeat(background.clone()));
        tasks.spawn(self.clone().reaper(background.clone()));
        let listeners = background.child_token();
        // Schedules stop firing with the fetching: a stopping worker enqueues nothing new.
        tasks.spawn(self.clone().schedules(listeners.clone()));
        let subscriber = wake_subscriber(self.client.redis())?;
        tasks.spawn(self.clone().listen(subscriber, listeners.clone()));
        let jobs_ended = CancellationToken::new();
        let acker = tokio::spawn(self.clone().record_completions(completions, jobs_ended.clone()));
        info!(queues = ?self.queues.iter().map(Queue::name).collect::<Vec<_>>(), concurrency = self.settings.concurrency, "worker started");
        self.warn_if_evicting().await;

        let jobs = self.fetch_until_shutdown().await;
        listeners.cancel();
        let deadline = self.drain(jobs).await;
        jobs_ended.cancel();
        let _ = acker.await;
        background.cancel();
        // A renewal or sweep can be stuck on a Redis that is down: they get what is left of the
        // window (and a moment to close the wake-up connections), then they are stopped.
        let background_deadline = deadline.max(Instant::now() + Duration::from_millis(100));
        if tokio::time::timeout_at(background_deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tasks.shutdown().await;
        }
        let report = self.counters.report();
        info!(?report, "worker stopped");
        Ok(report)
    }

    async fn warn_if_evicting(&self) {
        match self.client.maxmemory_policy().await {
            Ok(policy) => {
                if let Some(warning) = queue_core::eviction_warning(&policy) {
                    warn!(policy, "{warning}");
                }
            }
            Err(error) => debug!(%error, "cannot read maxmemory-policy"),
        }
    }

    /// Lets the running jobs finish up to the shutdown timeout, then stops the rest and hands
    /// them back. Returns the end of the window that recording the last results gets.
    async fn drain(&self, mut jobs: JoinSet<()>) -> Instant {
        info!(
            in_flight = jobs.len(),
            "shutting down: no new jobs; waiting for in-flight jobs"
        );
        let drained = tokio::time::timeout(self.settings.shutdown_timeout, async {
            while jobs.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        // What is left (hand-backs, and failures and completions still to record) shares one
        // bounded window, also while Redis is down. A job whose result never reaches Redis is
        // not lost: its lease expires and the reaper returns it.
        let deadline = Instant::now() + shutdown_grace(self.settings.lease);
        let stop_recording = self.give_up.clone();
        tokio::spawn(async move {
            sleep_until(deadline).await;
            stop_recording.cancel();
        });
        if !drained {
            let unfinished = self.lock_in_flight().cancel_unfinished();
            // Cancelled jobs end at once; finished ones may still be recording their failure.
            let joined = tokio::time::timeout_at(deadline, async { while jobs.join_next().await.is_some() {} }).await;
            if joined.is_err() {
                warn!(
                    jobs = jobs.len(),
                    "could not record failures before the shutdown grace ended; the reaper retries those jobs \
                     once their leases expire"
                );
                jobs.shutdown().await;
            }
            self.release(unfinished).await;
        }
        deadline
    }
}

/// Listens on `addr` and serves the worker's metrics there until the returned token is
/// cancelled.
async fn metrics_server(
    client: &queue_core::QueueClient,
    settings: &super::builder::Settings,
    addr: std::net::SocketAddr,
    metrics: Arc<WorkerMetrics>,
) -> queue_core::Result<(CancellationToken, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::MetricsListen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let queues = settings.queues.iter().map(|(name, _)| name.clone()).collect();
    let exposition = Exposition {
        worker: Some(metrics),
        queues: QueueGauges::new(client.clone(), QueueSelection::Named(queues)),
    };
    let stop = CancellationToken::new();
    let serving = serve_exposition(listener, exposition, stop.clone());
    let server = tokio::spawn(async move {
        if let Err(error) = serving.await {
            warn!(%error, "the metrics server stopped");
        }
    });
    info!(address = %local, "serving metrics at /metrics");
    Ok((stop, server))
}

/// Cancels `drained` once every queue holds no job waiting, scheduled, retrying or running.
async fn cancel_when_drained(queues: Vec<Queue>, drained: CancellationToken) {
    const LOOK_EVERY: Duration = Duration::from_millis(50);
    while !drained.is_cancelled() {
        let mut left = 0;
        for queue in &queues {
            match queue.stats().await {
                Ok(stats) => left += stats.pending + stats.scheduled + stats.retrying + stats.active,
                // A queue that never received a job holds none.
                Err(Error::UnknownQueue(_)) => {}
                Err(error) => {
                    debug!(%error, queue = queue.name(), "cannot count the queue's jobs; looking again");
                    left += 1;
                }
            }
        }
        if left == 0 {
            info!("queues drained; stopping");
            drained.cancel();
            return;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
