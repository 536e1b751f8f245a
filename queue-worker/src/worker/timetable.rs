//! When each of the worker's queues next needs a look from a periodic task (the reaper, the
//! schedules), so that the task asks only the queues that are due: a worker on a thousand
//! idle queues makes a handful of calls a minute, not a thousand every few seconds.
//!
//! A queue is due at the time its last answer named, at once when something tells the worker
//! its state changed (a wake-up, a schedule added), and otherwise at the latest after a slow
//! recheck (jittered so a fleet's rechecks spread out), in case such a message was missed.
use std::{sync::Mutex, time::Duration};

use tokio::{sync::Notify, time::Instant};

use super::in_flight::QueueIndex;

pub(super) struct Timetable {
    due: Mutex<Vec<Instant>>,
    /// Told whenever a queue becomes due sooner than the task planned.
    changed: Notify,
}

impl Timetable {
    /// `queues` queues, all due now.
    pub(super) fn new(queues: usize) -> Self {
        Timetable {
            due: Mutex::new(vec![Instant::now(); queues]),
            changed: Notify::new(),
        }
    }

    /// Plans `queue`'s next look at `at`.
    pub(super) fn set(&self, queue: QueueIndex, at: Instant) {
        self.lock()[queue] = at;
    }

    /// Plans `queue`'s next look at `at` unless it is planned sooner, and tells the task.
    pub(super) fn by(&self, queue: QueueIndex, at: Instant) {
        let mut due = self.lock();
        if at < due[queue] {
            due[queue] = at;
            drop(due);
            self.changed.notify_one();
        }
    }

    /// [`Timetable::by`] for every queue.
    pub(super) fn all_by(&self, at: Instant) {
        let queues = self.lock().len();
        for queue in 0..queues {
            self.by(queue, at);
        }
    }

    /// The queues due by `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<QueueIndex> {
        let due = self.lock();
        (0..due.len()).filter(|&queue| due[queue] <= now).collect()
    }

    /// Sleeps until the next queue is due, or until one is planned sooner.
    pub(super) async fn wait(&self) {
        let next = self.lock().iter().min().copied();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = self.changed.notified() => {}
                }
            }
            None => self.changed.notified().await,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Instant>> {
        self.due.lock().expect("timetable lock")
    }
}

/// `recheck` from `now`, give or take a fifth at random: the safety net of a queue that has
/// nothing planned, spread out so that a worker's (and a fleet's) queues do not all come due
/// in the same instant.
pub(super) fn recheck_after(now: Instant, recheck: Duration) -> Instant {
    let spread = recheck.as_millis() as u64 / 5;
    let jitter = rand::random_range(0..=2 * spread);
    now + recheck + Duration::from_millis(jitter) - Duration::from_millis(spread)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{recheck_after, Timetable};

    #[test]
    fn only_the_queues_due_are_asked() {
        let table = Timetable::new(3);
        let now = Instant::now();
        assert_eq!(table.due(now), vec![0, 1, 2], "all due at first");
        for queue in 0..3 {
            table.set(queue, now + Duration::from_secs(60));
        }
        assert!(table.due(now).is_empty());
        table.by(1, now + Duration::from_secs(1));
        table.by(1, now + Duration::from_secs(30));
        assert_eq!(
            table.due(now + Duration::from_secs(1)),
            vec![1],
            "the sooner time holds"
        );
        table.all_by(now);
        assert_eq!(table.due(now), vec![0, 1, 2]);
    }

    #[test]
    fn rechecks_spread_around_their_period() {
        let now = Instant::now();
        for _ in 0..100 {
            let at = recheck_after(now, Duration::from_secs(100));
            assert!(at >= now + Duration::from_secs(80) && at <= now + Duration::from_secs(120));
        }
    }
}
