//! Fetching: batches sized to the free slots, from the queues in the worker's order, two
//! rounds in flight, and sleeping until woken when there is nothing to do.
use std::{sync::Arc, time::Duration};

use futures_util::{stream::FuturesUnordered, StreamExt};
use queue_core::{Error, Leased, Popped, Queue, RequestId};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::{sleep, sleep_until, Instant},
};
use tracing::warn;

use crate::metrics::Operation;

use super::{builder::Settings, in_flight::QueueIndex, retry::RetryDelay, QueueOrder, Runtime};

/// Fetch rounds in flight at once: while one round's jobs are being started, the next round is
/// already queued in Redis, so Redis does not wait for the worker between fetches.
const FETCHES_IN_FLIGHT: usize = 2;

/// What one fetch round brought back, with the slots it was given.
struct Round {
    leased: Vec<(QueueIndex, Leased)>,
    permits: Vec<OwnedSemaphorePermit>,
    /// The queue whose fetch failed, and why (the round stops there).
    failed: Option<(QueueIndex, Error)>,
}

impl Runtime {
    /// Fetches and starts jobs until shutdown; returns the jobs still running.
    pub(super) async fn fetch_until_shutdown(self: &Arc<Self>) -> JoinSet<()> {
        let mut jobs = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        // A further round starts only with a fair share of the slots, so that batches stay large.
        let further_round_slots = (self.settings.concurrency / 4).max(1);
        let mut rounds = FuturesUnordered::new();
        let mut retry = RetryDelay::default();
        loop {
            let wanted = if rounds.is_empty() { 1 } else { further_round_slots };
            let can_start = rounds.len() < FETCHES_IN_FLIGHT && !self.shutdown.is_cancelled();
            tokio::select! {
                biased;
                Some(round) = rounds.next() => {
                    let Round { leased, mut permits, failed } = round;
                    let leased_any = !leased.is_empty();
                    for (queue, job) in leased {
                        let permit = permits.pop().expect("never more jobs than permits");
                        jobs.spawn(self.start(queue, job, permit));
                    }
                    drop(permits);
                    while jobs.try_join_next().is_some() {}
                    if let Some((queue, error)) = failed {
                        let delay = retry.next();
                        warn!(%error, queue = self.queues[queue].name(), retry_in = ?delay, "cannot fetch jobs; retrying");
                        tokio::select! {
                            _ = sleep(delay) => {}
                            _ = self.shutdown.cancelled() => {}
                        }
                        continue;
                    }
                    retry.reset();
                    if leased_any || !rounds.is_empty() || self.shutdown.is_cancelled() {
                        continue;
                    }
                    // Nothing to do: sleep until woken, due work, or the periodic recheck.
                    let recheck = Instant::now() + self.settings.idle_recheck;
                    let until = self.ready.next_due().map_or(recheck, |due| due.min(recheck));
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = sleep_until(until) => if Instant::now() >= recheck {
                            self.ready.mark_all();
                        },
                        _ = self.shutdown.cancelled() => {}
                    }
                }
                permits = take_slots(&slots, wanted), if can_start => {
                    rounds.push(self.fetch_round(permits));
                }
                _ = self.shutdown.cancelled(), if rounds.is_empty() => return jobs,
            }
        }
    }

    /// Leases jobs for the given slots from the worker's queues, in the worker's order.
    async fn fetch_round(&self, permits: Vec<OwnedSemaphorePermit>) -> Round {
        let mut round = Round {
            leased: Vec::new(),
            permits,
            failed: None,
        };
        self.ready.mark_due(Instant::now());
        for queue in self.settings.queue_order(self.ready.marked()) {
            let wanted = round.permits.len() - round.leased.len();
            if wanted == 0 {
                break;
            }
            if !self.ready.take(queue) {
                continue;
            }
            match self.pop(&self.queues[queue], wanted).await {
                Ok(popped) => {
                    // A full batch may have left more behind; a paused queue waits for its resume,
                    // which wakes the workers.
                    self.ready.fetched(queue, popped.jobs.len() == wanted);
                    let due = popped
                        .next_due_ms
                        .filter(|_| !popped.paused)
                        .map(|due| Instant::now() + Duration::from_millis((due - popped.now_ms).max(0) as u64 + 1));
                    self.ready.set_due(queue, due);
                    let jobs = popped.jobs.into_iter().map(|job| (queue, job));
                    round.leased.extend(jobs);
                }
                Err(error) => {
                    self.ready.mark(queue);
                    round.failed = Some((queue, error));
                    break;
                }
            }
        }
        round
    }

    /// One fetch from `queue`. A fetch whose reply was lost (the connection dropped after Redis ran
    /// it) is made again as the same request, which answers with the lease the first delivery
    /// took: a new request would lease a second batch and leave the first to expire.
    async fn pop(&self, queue: &Queue, wanted: usize) -> queue_core::Result<Popped> {
        let request = RequestId::new();
        let mut retry = RetryDelay::default();
        let shutdown_timeout = self.settings.shutdown_timeout;
        // Once the worker stops, a fetch stuck on a dead connection is not waited for past the
        // shutdown timeout; if it did lease jobs, their lease expires and the reaper returns them.
        let abandoned = async {
            self.shutdown.cancelled().await;
            sleep(shutdown_timeout).await;
        };
        tokio::pin!(abandoned);
        loop {
            let answer = tokio::select! {
                answer = queue.pop_with_request(wanted, self.settings.lease, &request) => answer,
                _ = &mut abandoned => Err(Error::Timeout(shutdown_timeout)),
            };
            if let Err(error) = &answer {
                self.metrics.redis_error(Operation::fetch, error);
            }
            match answer {
                Err(error) if error.is_transient() && !self.shutdown.is_cancelled() => {
                    let delay = retry.next();
                    warn!(%error, queue = queue.name(), retry_in = ?delay, "cannot fetch jobs; retrying");
                    tokio::select! {
                        _ = sleep(delay) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
                answer => return answer,
            }
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

impl Settings {
    /// The order in which one fetch round asks `marked` (the queues that may have work, in the
    /// worker's order): as given, or at random in proportion to their weights. Only the marked
    /// queues are ordered, so a round costs the same with ten queues or a thousand idle ones.
    fn queue_order(&self, mut marked: Vec<QueueIndex>) -> Vec<QueueIndex> {
        if self.order == QueueOrder::Strict || marked.len() < 2 {
            return marked;
        }
        // A weighted random permutation in one sort: each queue draws an exponential time with
        // its weight as the rate, and the earliest goes first (Efraimidis and Spirakis), so each
        // place is filled in proportion to the weights of the queues not yet placed.
        let mut keys: Vec<(f64, QueueIndex)> = marked
            .iter()
            .map(|&queue| {
                let weight = f64::from(self.queues[queue].1.max(1));
                let uniform: f64 = rand::random_range(f64::MIN_POSITIVE..1.0);
                (-uniform.ln() / weight, queue)
            })
            .collect();
        keys.sort_by(|a, b| a.0.total_cmp(&b.0));
        marked.clear();
        marked.extend(keys.into_iter().map(|(_, queue)| queue));
        marked
    }
}

#[cfg(test)]
mod tests {
    use super::{QueueOrder, Settings};

    #[test]
    fn a_weighted_order_puts_each_queue_first_in_proportion_to_its_weight() {
        let mut settings = Settings {
            order: QueueOrder::Weighted,
            queues: vec![("a".into(), 3), ("b".into(), 1), ("idle".into(), 100)],
            ..Settings::default()
        };
        let mut first = [0u32; 3];
        for _ in 0..4000 {
            let order = settings.queue_order(vec![0, 1]);
            assert_eq!(order.len(), 2, "only the marked queues, each once: {order:?}");
            first[order[0]] += 1;
        }
        assert_eq!(first[2], 0, "a queue without work is never asked");
        // 3:1 gives 3,000 of 4,000 on average; 2,800..3,200 is over six standard deviations.
        assert!((2800..=3200).contains(&first[0]), "{first:?}");
        settings.order = QueueOrder::Strict;
        assert_eq!(settings.queue_order(vec![0, 2]), [0, 2]);
    }
}
