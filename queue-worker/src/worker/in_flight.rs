//! The attempts this worker runs, by the lease they hold.
use std::{collections::HashMap, sync::MutexGuard};

use tokio_util::sync::CancellationToken;

use super::Runtime;

/// A job: its queue and id.
pub(super) type JobKey = (String, String);

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
    by_queue: HashMap<String, HashMap<String, InFlight>>,
}

impl InFlightJobs {
    /// Tracks an attempt; returns the one it displaces (the same job leased again).
    pub(super) fn insert(&mut self, queue: &str, id: String, attempt: InFlight) -> Option<InFlight> {
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

    /// Whether the attempt of `queue`/`id` leased with `token` is tracked and its handler returned.
    pub(super) fn is_finished(&mut self, queue: &str, id: &str, token: &str) -> bool {
        self.get_mut(queue, id, token).is_some_and(|job| job.finished)
    }

    /// Stops tracking the attempt of `queue`/`id` if it is still the one leased with `token`.
    pub(super) fn remove(&mut self, queue: &str, id: &str, token: &str) -> Option<InFlight> {
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

    /// Every lease held, as `(queue, id, token)`.
    pub(super) fn leases(&self) -> Vec<(String, String, String)> {
        self.iter()
            .map(|(queue, id, job)| (queue.to_owned(), id.to_owned(), job.token.clone()))
            .collect()
    }

    /// Cancels the attempts whose handler has not returned, and returns their leases.
    pub(super) fn cancel_unfinished(&self) -> Vec<(JobKey, String)> {
        self.iter()
            .filter(|(_, _, job)| !job.finished)
            .map(|(queue, id, job)| {
                job.cancel.cancel();
                ((queue.to_owned(), id.to_owned()), job.token.clone())
            })
            .collect()
    }
}

impl Runtime {
    pub(super) fn lock_in_flight(&self) -> MutexGuard<'_, InFlightJobs> {
        self.in_flight.lock().expect("in-flight lock")
    }

    /// Notes that an attempt's handler returned (its lease must not be handed back at
    /// shutdown), if the entry is still that attempt's.
    pub(super) fn mark_finished(&self, key: &JobKey, token: &str) {
        if let Some(job) = self.lock_in_flight().get_mut(&key.0, &key.1, token) {
            job.finished = true;
        }
    }

    /// Stops tracking settled attempts. An entry is removed only if it still holds the same
    /// token: the job may have been leased again by this worker after its old lease was lost.
    pub(super) fn forget_leases<'a>(&self, queue: &str, leases: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut in_flight = self.lock_in_flight();
        for (id, token) in leases {
            in_flight.remove(queue, id, token);
        }
    }
}

/// `(queue, id, token)` leases grouped by queue, since every lease call is for one queue.
pub(super) fn by_queue(
    leases: impl IntoIterator<Item = (String, String, String)>,
) -> HashMap<String, Vec<(String, String)>> {
    let mut grouped: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (queue, id, token) in leases {
        grouped.entry(queue).or_default().push((id, token));
    }
    grouped
}

/// `(id, token)` pairs as the client's lease calls take them.
pub(super) fn as_pairs(leases: &[(String, String)]) -> Vec<(&str, &str)> {
    leases.iter().map(|(id, token)| (id.as_str(), token.as_str())).collect()
}
