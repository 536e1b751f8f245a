//! Recording each attempt's outcome in Redis with its lease token: completions in batches,
//! failures one by one, and the hand-back of unfinished jobs at shutdown. Transient errors are
//! retried until the give-up token fires.
use std::{collections::HashMap, future::Future, sync::atomic::Ordering, sync::Arc};

use queue_core::{Error, FailOutcome, Leased};
use tokio::{sync::mpsc, time::sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{
    in_flight::{as_pairs, by_queue, JobKey},
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
    queue: String,
    id: String,
    token: String,
    metrics: Arc<KindMetrics>,
}

impl Runtime {
    pub(super) async fn settle(&self, key: JobKey, leased: Leased, outcome: Outcome, metrics: Arc<KindMetrics>) {
        match outcome {
            Outcome::Abandoned => {
                tracing::Span::current().record("outcome", "abandoned");
            }
            Outcome::Completed => {
                // Recorded in Redis by the acker, in a batch, after this span ends.
                tracing::Span::current().record("outcome", "completed");
                self.mark_finished(&key, &leased.token);
                let (queue, id) = key;
                let _ = self.acks.send(Ack {
                    queue,
                    id,
                    token: leased.token,
                    metrics,
                });
            }
            // Boxed: the failure path's future is large, and inlined it would be moved with every
            // job's task, while most jobs complete.
            Outcome::Failed(error) => Box::pin(self.record_failure(key, leased, error, &metrics)).await,
        }
    }

    async fn record_failure(&self, key: JobKey, leased: Leased, error: JobError, metrics: &KindMetrics) {
        self.mark_finished(&key, &leased.token);
        let (queue, id) = &key;
        let recorded = self
            .until_recorded(Operation::fail, || {
                self.client
                    .fail(queue, id, &leased.token, error.message(), error.is_permanent())
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
                self.metrics.lease_lost(queue);
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
        self.forget_leases(&key.0, [(key.1.as_str(), leased.token.as_str())]);
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
            // By queue, since every complete call is for one queue.
            let mut finished: HashMap<String, Vec<Ack>> = HashMap::new();
            let mut count = 1;
            finished.entry(first.queue.clone()).or_default().push(first);
            while count < MAX_BATCH {
                let Ok(ack) = acks.try_recv() else { break };
                count += 1;
                match finished.get_mut(&ack.queue) {
                    Some(batch) => batch.push(ack),
                    None => {
                        finished.insert(ack.queue.clone(), vec![ack]);
                    }
                }
            }
            for (queue, batch) in finished {
                let pairs: Vec<(&str, &str)> = batch.iter().map(|ack| (ack.id.as_str(), ack.token.as_str())).collect();
                // The call itself can wait on a Redis that is down: the shutdown window bounds it too.
                let recorded = tokio::select! {
                    recorded = self.until_recorded(Operation::complete, || self.client.complete(&queue, &pairs)) => recorded,
                    _ = self.give_up.cancelled() => None,
                };
                match recorded {
                    Some(Ok(held)) => {
                        for (ack, held) in batch.iter().zip(held) {
                            let id = &ack.id;
                            if held {
                                self.counters.completed.fetch_add(1, Ordering::Relaxed);
                                ack.metrics.processed.inc();
                                ack.metrics.completed.inc();
                                debug!(queue, id, "completed");
                            } else {
                                self.metrics.lease_lost(&queue);
                                warn!(
                                    queue,
                                    id, "lease lost before completion was recorded; the job may run again"
                                );
                            }
                        }
                    }
                    Some(Err(error)) => error!(%error, queue, "cannot record completions; the jobs will run again"),
                    None => warn!(
                        queue,
                        ids = ?batch.iter().map(|ack| &ack.id).collect::<Vec<_>>(),
                        "could not record completions before the shutdown grace ended; the jobs run again once \
                         their leases expire"
                    ),
                }
                self.forget_leases(&queue, pairs);
            }
        }
    }

    /// Hands unfinished attempts back to pending without counting the attempt.
    pub(super) async fn release(&self, unfinished: Vec<(JobKey, String)>) {
        for (queue, batch) in by_queue(unfinished.into_iter().map(|((queue, id), token)| (queue, id, token))) {
            let pairs = as_pairs(&batch);
            // The call itself can wait on a Redis that is down: the window bounds it too.
            let recorded = tokio::select! {
                recorded = self.until_recorded(Operation::release, || self.client.release(&queue, &pairs)) => recorded,
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
                    ids = ?batch.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                    "could not hand jobs back before the shutdown grace ended; the reaper returns them once their \
                     leases expire"
                ),
            }
            self.forget_leases(&queue, pairs);
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
