//! Recording each attempt's outcome in Redis with its lease token: completions in batches,
//! failures one by one, and the hand-back of unfinished jobs at shutdown. Transient errors are
//! retried until the give-up token fires.
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::atomic::Ordering,
    sync::Arc,
};

use queue_core::{Error, FailOutcome, Lease, Leased};
use tokio::{sync::mpsc, time::sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{
    in_flight::{by_queue, QueueIndex},
    job::Outcome,
    retry::RetryDelay,
    Runtime,
};
use crate::{
    handler::JobError,
    metrics::{KindMetrics, Operation},
};

/// A completed attempt, for the acker to record.
pub(super) struct Ack {
    queue: QueueIndex,
    lease: Lease,
    metrics: Arc<KindMetrics>,
    /// What the handler returned, as JSON.
    result: Option<Vec<u8>>,
}

impl Runtime {
    pub(super) async fn settle(&self, queue: QueueIndex, leased: Leased, outcome: Outcome, metrics: Arc<KindMetrics>) {
        match outcome {
            Outcome::Abandoned => {
                tracing::Span::current().record("outcome", "abandoned");
            }
            Outcome::Completed(result) => {
                // Recorded in Redis by the acker, in a batch, after this span ends.
                tracing::Span::current().record("outcome", "completed");
                self.mark_finished(queue, &leased.lease);
                let _ = self.acks.send(Ack {
                    queue,
                    lease: leased.lease,
                    metrics,
                    result,
                });
            }
            // Boxed: the failure path's future is large, and inlined it would be moved with every
            // job's task, while most jobs complete.
            Outcome::Failed(error) => Box::pin(self.record_failure(queue, leased, error, &metrics)).await,
        }
    }

    async fn record_failure(&self, queue: QueueIndex, leased: Leased, error: JobError, metrics: &KindMetrics) {
        self.mark_finished(queue, &leased.lease);
        let recorded = self
            .until_recorded(Operation::fail, || {
                self.queues[queue].fail(&leased.lease, error.message(), error.is_permanent())
            })
            .await;
        let span = tracing::Span::current();
        match &recorded {
            Some(Ok(outcome)) => {
                metrics.processed.inc();
                metrics.failed.inc();
                let retried = matches!(outcome, FailOutcome::Retry { .. });
                (if retried { &metrics.retried } else { &metrics.dead }).inc();
                span.record("outcome", if retried { "retried" } else { "dead" });
            }
            Some(Err(Error::LeaseLost { .. })) => {
                self.metrics.lease_lost(self.queues[queue].name());
                span.record("outcome", "lease_lost");
            }
            _ => {
                span.record("outcome", "unrecorded");
            }
        }
        match recorded {
            Some(Ok(FailOutcome::Retry { delay_ms, .. })) => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                warn!(
                    error = error.message(),
                    retry_in_ms = delay_ms,
                    "attempt failed; will retry"
                );
            }
            Some(Ok(FailOutcome::Dead)) => {
                self.counters.dead.fetch_add(1, Ordering::Relaxed);
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
        self.forget_leases(queue, [&leased.lease]);
    }

    /// Completes finished jobs in batches: one call per queue for everything that finished since
    /// the last call. Ends once `jobs_ended` is cancelled and what the jobs sent is recorded (the
    /// runtime keeps a sender, so the channel does not close by itself).
    pub(super) async fn record_completions(
        self: Arc<Self>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        jobs_ended: CancellationToken,
    ) {
        const MAX_BATCH: usize = 1_000;
        loop {
            let first = tokio::select! {
                biased;
                Some(ack) = acks.recv() => ack,
                // No job sends any more; `try_recv` rather than `recv`, whose cooperative budget
                // could make it look empty while it still holds completions.
                _ = jobs_ended.cancelled() => match acks.try_recv() {
                    Ok(ack) => ack,
                    Err(_) => return,
                },
            };
            // Each queue's metrics in the order of its leases (by_queue keeps the order).
            let mut metrics: BTreeMap<QueueIndex, Vec<Arc<KindMetrics>>> = BTreeMap::new();
            let mut finished = vec![first];
            while finished.len() < MAX_BATCH {
                let Ok(ack) = acks.try_recv() else { break };
                finished.push(ack);
            }
            let mut results: HashMap<(QueueIndex, String), Vec<u8>> = HashMap::new();
            let finished: Vec<(QueueIndex, Lease)> = finished
                .into_iter()
                .map(|ack| {
                    metrics.entry(ack.queue).or_default().push(ack.metrics);
                    if let Some(result) = ack.result {
                        results.insert((ack.queue, ack.lease.id.clone()), result);
                    }
                    (ack.queue, ack.lease)
                })
                .collect();
            for (index, batch) in by_queue(finished) {
                let metrics = metrics.remove(&index).unwrap_or_default();
                let queue = self.queues[index].name();
                // Most handlers return nothing: no lookup per job then.
                let kept: Vec<(&str, &[u8])> = if results.is_empty() {
                    Vec::new()
                } else {
                    batch
                        .iter()
                        .filter_map(|lease| {
                            let result = results.get(&(index, lease.id.clone()))?;
                            Some((lease.id.as_str(), result.as_slice()))
                        })
                        .collect()
                };
                // The call itself can wait on a Redis that is down: the shutdown window bounds it too.
                let recorded = tokio::select! {
                    recorded = self.until_recorded(
                        Operation::complete,
                        || self.queues[index].complete_with_results(&batch, &kept),
                    ) => recorded,
                    _ = self.give_up.cancelled() => None,
                };
                match recorded {
                    Some(Ok(held)) => {
                        for ((Lease { id, .. }, held), metrics) in batch.iter().zip(held).zip(&metrics) {
                            if held {
                                self.counters.completed.fetch_add(1, Ordering::Relaxed);
                                metrics.processed.inc();
                                metrics.completed.inc();
                                debug!(queue, id, "completed");
                            } else {
                                self.metrics.lease_lost(queue);
                                warn!(
                                    queue,
                                    id, "lease lost before completion was recorded; the job may run again"
                                );
                            }
                        }
                    }
                    Some(Err(error @ Error::NotReplicated { .. })) => {
                        warn!(%error, queue, "completions recorded on the master only; a failover now may run the jobs again")
                    }
                    Some(Err(error)) => error!(%error, queue, "cannot record completions; the jobs will run again"),
                    None => warn!(
                        queue,
                        ids = ?batch.iter().map(|lease| &lease.id).collect::<Vec<_>>(),
                        "could not record completions before the shutdown grace ended; the jobs run again once \
                         their leases expire"
                    ),
                }
                self.forget_leases(index, &batch);
            }
        }
    }

    /// Hands unfinished attempts back to pending without counting the attempt.
    pub(super) async fn release(&self, unfinished: BTreeMap<QueueIndex, Vec<Lease>>) {
        for (index, batch) in unfinished {
            let queue = self.queues[index].name();
            // The call itself can wait on a Redis that is down: the window bounds it too.
            let recorded = tokio::select! {
                recorded = self.until_recorded(Operation::release, || self.queues[index].release(&batch)) => recorded,
                _ = self.give_up.cancelled() => None,
            };
            match recorded {
                Some(Ok(held)) => {
                    let released = held.iter().filter(|h| **h).count() as u64;
                    self.counters.released.fetch_add(released, Ordering::Relaxed);
                    info!(queue, released, "handed unfinished jobs back to pending");
                }
                Some(Err(error)) => error!(%error, queue, "cannot hand jobs back; their leases will expire instead"),
                None => warn!(
                    queue,
                    ids = ?batch.iter().map(|lease| &lease.id).collect::<Vec<_>>(),
                    "could not hand jobs back before the shutdown grace ended; the reaper returns them once their \
                     leases expire"
                ),
            }
            self.forget_leases(index, &batch);
        }
    }

    /// Runs `call` until Redis records it: transient errors (Redis down, restarting, timing out,
    /// failing over) are retried with backoff, which is safe because every settle call answers a
    /// second delivery with the first one's answer; any other answer, a script error included, is
    /// returned. `None` when the give-up token fired first: the job's lease then expires and the
    /// reaper puts it back, so nothing is lost.
    async fn until_recorded<T, F, Fut>(&self, operation: Operation, mut call: F) -> Option<queue_core::Result<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = queue_core::Result<T>>,
    {
        let mut retry = RetryDelay::default();
        loop {
            match call().await {
                Err(error) if error.is_transient() => {
                    self.metrics.redis_error(operation, &error);
                    let delay = retry.next();
                    warn!(%error, retry_in = ?delay, "cannot record {}; retrying", operation.what());
                    tokio::select! {
                        _ = sleep(delay) => {}
                        _ = self.give_up.cancelled() => return None,
                    }
                }
                answer => {
                    if let Err(error) = &answer {
                        if !matches!(error, Error::LeaseLost { .. }) {
                            self.metrics.redis_error(operation, error);
                        }
                    }
                    return Some(answer);
                }
            }
        }
    }
}
