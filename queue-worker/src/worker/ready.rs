//! Which of the worker's queues may have work, so that a fetch round asks only those: a worker
//! serving a thousand queues asks the one that was woken, not all thousand in turn.
//!
//! A queue that answered a fetch with less than it was asked for is drained until one of the
//! events that can give it work: a wake-up on its channel (every path making a job ready
//! publishes one), its next scheduled or retrying job coming due, or the idle recheck, which
//! marks every queue again in case a wake-up was missed.
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex,
};

use tokio::time::Instant;

use super::in_flight::QueueIndex;

pub(super) struct ReadyQueues {
    maybe: Vec<AtomicBool>,
    /// Whether each queue's last fetch came back full: it likely has more, so a second fetch
    /// in flight may ask it before the first one answers.
    full: Vec<AtomicBool>,
    /// When each queue's next scheduled or retrying job comes due, as its last fetch said.
    due: Mutex<Vec<Option<Instant>>>,
}

impl ReadyQueues {
    /// Every one of `queues` may have work.
    pub(super) fn new(queues: usize) -> Self {
        ReadyQueues {
            maybe: (0..queues).map(|_| AtomicBool::new(true)).collect(),
            full: (0..queues).map(|_| AtomicBool::new(false)).collect(),
            due: Mutex::new(vec![None; queues]),
        }
    }

    pub(super) fn mark(&self, queue: QueueIndex) {
        self.maybe[queue].store(true, Ordering::Release);
    }

    pub(super) fn mark_all(&self) {
        for queue in &self.maybe {
            queue.store(true, Ordering::Release);
        }
    }

    /// The queues that may have work, in the worker's order (marks left as they are).
    pub(super) fn marked(&self) -> Vec<QueueIndex> {
        (0..self.maybe.len())
            .filter(|&queue| self.maybe[queue].load(Ordering::Acquire))
            .collect()
    }

    /// Whether `queue` may have work, clearing the mark: taken before its fetch is sent, so a
    /// wake-up that comes while the fetch runs marks it again instead of being lost.
    /// A queue whose last fetch came back full stays marked: without that, the worker's second
    /// fetch in flight would skip its busiest queue until the first one answered, and fetches
    /// would run one at a time.
    pub(super) fn take(&self, queue: QueueIndex) -> bool {
        let marked = self.maybe[queue].swap(false, Ordering::AcqRel);
        if marked && self.full[queue].load(Ordering::Acquire) {
            self.mark(queue);
        }
        marked
    }

    /// Records whether `queue`'s fetch came back full (then it stays marked, see `take`).
    pub(super) fn fetched(&self, queue: QueueIndex, full: bool) {
        self.full[queue].store(full, Ordering::Release);
        if full {
            self.mark(queue);
        }
    }

    /// Notes when `queue`'s next delayed job comes due (`None`: it has none).
    pub(super) fn set_due(&self, queue: QueueIndex, at: Option<Instant>) {
        self.lock_due()[queue] = at;
    }

    /// Marks the queues whose next delayed job is due by `now`.
    pub(super) fn mark_due(&self, now: Instant) {
        let mut due = self.lock_due();
        for (queue, at) in due.iter_mut().enumerate() {
            if at.is_some_and(|at| at <= now) {
                *at = None;
                self.mark(queue);
            }
        }
    }

    /// The soonest due time of any queue.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.lock_due().iter().flatten().min().copied()
    }

    fn lock_due(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        self.due.lock().expect("due lock")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::ReadyQueues;

    #[test]
    fn a_taken_queue_waits_for_a_wake_up_its_due_time_or_a_recheck() {
        let ready = ReadyQueues::new(3);
        assert!(
            ready.take(0) && ready.take(1) && ready.take(2),
            "all may have work at first"
        );
        assert!(!ready.take(0), "drained until something marks it");
        ready.mark(0);
        assert!(ready.take(0) && !ready.take(1));
        let now = Instant::now();
        ready.set_due(1, Some(now + Duration::from_secs(1)));
        ready.set_due(2, Some(now + Duration::from_secs(5)));
        assert_eq!(ready.next_due(), Some(now + Duration::from_secs(1)));
        ready.mark_due(now + Duration::from_secs(2));
        assert!(ready.take(1) && !ready.take(2), "only the due queue");
        assert_eq!(ready.next_due(), Some(now + Duration::from_secs(5)));
        ready.mark_all();
        assert!(ready.take(0) && ready.take(1) && ready.take(2));
    }

    #[test]
    fn a_queue_whose_last_fetch_was_full_stays_marked_until_one_comes_back_short() {
        let ready = ReadyQueues::new(1);
        assert!(ready.take(0));
        ready.fetched(0, true);
        assert!(ready.take(0) && ready.take(0), "two fetches in flight may both ask it");
        ready.fetched(0, false);
        assert!(ready.take(0), "the mark taken while it was full is still there");
        assert!(!ready.take(0), "then it waits for a wake-up");
    }
}
