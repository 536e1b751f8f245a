//! Recording each attempt's outcome in Redis with its lease token: completions in batches,
//! failures one by one, and the hand-back of unfinished jobs at shutdown. Transient errors are
//! retried until the give-up token fires.
use std::{collections::BTreeMap, future::Future, sync::atomic::Ordering, sync::Arc};

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
use crate::handler::JobError;

/// A completed attempt, for the acker to record.
pub(super) struct Ack {
    queue: QueueIndex,
    lease: Lease,
}

impl Runtime {
    pub(super) async fn settle(&self, queue: QueueIndex, leased: Leased, outcome: Outcome) {
        match outcome {
            Outcome::Abandoned => {}
            Outcome::Completed => {
                self.mark_finished(queue, &leased.lease);
                let _ = self.acks.send(Ack {
                    queue,
                    lease: leased.lease,
                });
            }
            // Boxed: the failure path's future is large, and inlined it would be moved with every
            // job's task, while most jobs complete.
            Outcome::Failed(error) => Box::pin(self.record_failure(queue, leased, error)).await,
        }
    }

    async fn record_failure(&self, queue: QueueIndex, leased: Leased, error: JobError) {
        self.mark_finished(queue, &leased.lease);
        let recorded = self
            .until_recorded("the failure", || {
                self.queues[queue].fail(&leased.lease, error.message(), error.is_permanent())
            })
            .await;
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
            let mut finished = vec![(first.queue, first.lease)];
            while finished.len() < MAX_BATCH {
                let Ok(ack) = acks.try_recv() else { break };
                finished.push((ack.queue, ack.lease));
            }
            for (index, batch) in by_queue(finished) {
                let queue = self.queues[index].name();
                // The call itself can wait on a Redis that is down: the shutdown window bounds it too.
                let recorded = tokio::select! {
                    recorded = self.until_recorded("completions", || self.queues[index].complete(&batch)) => recorded,
                    _ = self.give_up.cancelled() => None,
                };
                match recorded {
                    Some(Ok(held)) => {
                        for (Lease { id, .. }, held) in batch.iter().zip(held) {
                            if held {
                                self.counters.completed.fetch_add(1, Ordering::Relaxed);
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
                recorded = self.until_recorded("the hand-back", || self.queues[index].release(&batch)) => recorded,
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
    async fn until_recorded<T, F, Fut>(&self, what: &str, mut call: F) -> Option<queue_core::Result<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = queue_core::Result<T>>,
    {
        let mut retry = RetryDelay::default();
        loop {
            match call().await {
                Err(error) if error.is_transient() => {
                    let delay = retry.next();
                    warn!(%error, retry_in = ?delay, "cannot record {what}; retrying");
                    tokio::select! {
                        _ = sleep(delay) => {}
                        _ = self.give_up.cancelled() => return None,
                    }
                }
                answer => return Some(answer),
            }
        }
    }
}
