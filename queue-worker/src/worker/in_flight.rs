//! The attempts this worker runs, by the lease they hold.
use std::{
    collections::{BTreeMap, HashMap},
    sync::MutexGuard,
};

use queue_core::Lease;
use tokio_util::sync::CancellationToken;

use super::Runtime;

/// Where a queue stands in the worker's list of queues ([`Runtime::queues`]).
pub(super) type QueueIndex = usize;

pub(super) struct InFlight {
    pub(super) token: String,
    pub(super) cancel: CancellationToken,
    /// The handler returned; only the acknowledgement is pending.
    pub(super) finished: bool,
}

/// The attempts this worker runs, by queue then job id (looked up by `&str`, without building
/// a key per lookup: every job is looked up on start, finish and acknowledgement).
#[derive(Default)]
pub(super) struct InFlightJobs {
    by_queue: HashMap<QueueIndex, HashMap<String, InFlight>>,
}

impl InFlightJobs {
    /// Tracks an attempt; returns the one it displaces (the same job leased again).
    pub(super) fn insert(&mut self, queue: QueueIndex, id: String, attempt: InFlight) -> Option<InFlight> {
        self.by_queue.entry(queue).or_default().insert(id, attempt)
    }

    /// The attempt holding `lease` on a job of `queue`, if it is still tracked.
    fn get_mut(&mut self, queue: QueueIndex, lease: &Lease) -> Option<&mut InFlight> {
        self.by_queue
            .get_mut(&queue)?
            .get_mut(&lease.id)
            .filter(|job| job.token == lease.token)
    }

    /// Whether the attempt holding `lease` is still tracked (not cancelled, its lease not lost).
    pub(super) fn holds(&mut self, queue: QueueIndex, lease: &Lease) -> bool {
        self.get_mut(queue, lease).is_some()
    }

    /// Whether the attempt holding `lease` is tracked and its handler returned.
    pub(super) fn is_finished(&mut self, queue: QueueIndex, lease: &Lease) -> bool {
        self.get_mut(queue, lease).is_some_and(|job| job.finished)
    }

    /// Stops tracking the attempt holding `lease`, if it is still the one tracked for its job.
    pub(super) fn remove(&mut self, queue: QueueIndex, lease: &Lease) -> Option<InFlight> {
        let jobs = self.by_queue.get_mut(&queue)?;
        if jobs.get(&lease.id)?.token != lease.token {
            return None;
        }
        jobs.remove(&lease.id)
    }

    fn iter(&self) -> impl Iterator<Item = (QueueIndex, Lease, &InFlight)> {
        self.by_queue.iter().flat_map(|(queue, jobs)| {
            jobs.iter().map(move |(id, job)| {
                let lease = Lease {
                    id: id.clone(),
                    token: job.token.clone(),
                };
                (*queue, lease, job)
            })
        })
    }

    /// Every lease held, by queue.
    pub(super) fn leases(&self) -> BTreeMap<QueueIndex, Vec<Lease>> {
        by_queue(self.iter().map(|(queue, lease, _)| (queue, lease)))
    }

    /// Cancels the attempts whose handler has not returned, and returns their leases by queue.
    pub(super) fn cancel_unfinished(&self) -> BTreeMap<QueueIndex, Vec<Lease>> {
        by_queue(
            self.iter()
                .filter(|(_, _, job)| !job.finished)
                .map(|(queue, lease, job)| {
                    job.cancel.cancel();
                    (queue, lease)
                }),
        )
    }
}

impl Runtime {
    pub(super) fn lock_in_flight(&self) -> MutexGuard<'_, InFlightJobs> {
        self.in_flight.lock().expect("in-flight lock")
    }

    /// Notes that an attempt's handler returned (its lease must not be handed back at
    /// shutdown), if the entry is still that attempt's.
    pub(super) fn mark_finished(&self, queue: QueueIndex, lease: &Lease) {
        if let Some(job) = self.lock_in_flight().get_mut(queue, lease) {
            job.finished = true;
        }
    }

    /// Stops tracking settled attempts. An entry is removed only if it still holds the same
    /// token: the job may have been leased again by this worker after its old lease was lost.
    pub(super) fn forget_leases<'a>(&self, queue: QueueIndex, leases: impl IntoIterator<Item = &'a Lease>) {
        let mut in_flight = self.lock_in_flight();
        for lease in leases {
            in_flight.remove(queue, lease);
        }
    }
}

/// Leases grouped by queue, since every lease call is for one queue.
pub(super) fn by_queue(leases: impl IntoIterator<Item = (QueueIndex, Lease)>) -> BTreeMap<QueueIndex, Vec<Lease>> {
    let mut grouped: BTreeMap<QueueIndex, Vec<Lease>> = BTreeMap::new();
    for (queue, lease) in leases {
        grouped.entry(queue).or_default().push(lease);
    }
    grouped
}
