//! Fires the queues' named schedules: every worker takes part, and the script enqueues each
//! tick once (see `Queue::fire_due_schedules`), so no leader and no extra process.
//!
//! Only queues that have schedules are read often: adding or removing a schedule publishes on
//! the queue's wake-up channel (see `wake.rs`), so a queue without any is read again only then,
//! or after a slow recheck in case that message was missed.
use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{timetable::recheck_after, RetryDelay, Runtime};

/// The longest a worker sleeps between looks at a queue that has schedules: how soon a change
/// made while its message was missed takes effect.
const REREAD_EVERY: Duration = Duration::from_secs(5);

/// How often a queue without schedules is read again, in case the message that a schedule was
/// added never arrived.
const RECHECK_WITHOUT_SCHEDULES: Duration = Duration::from_secs(300);

impl Runtime {
    /// Sleeps until the next schedule of its queues is due (at most [`REREAD_EVERY`] for a
    /// queue with schedules), fires what is due, and again, until `stop`.
    pub(super) async fn schedules(self: Arc<Self>, stop: CancellationToken) {
        let mut retry = RetryDelay::default();
        loop {
            for index in self.schedule_reads.due(Instant::now()) {
                let queue = &self.queues[index];
                let queue_name = queue.name();
                let next = match queue.fire_due_schedules().await {
                    Ok(outcome) => {
                        retry.reset();
                        if !outcome.fired.is_empty() {
                            debug!(queue = queue_name, schedules = ?outcome.fired, "enqueued the due ticks of schedules");
                        }
                        match outcome.next_due_in {
                            Some(next) => Instant::now() + next.min(REREAD_EVERY),
                            None => recheck_after(Instant::now(), RECHECK_WITHOUT_SCHEDULES),
                        }
                    }
                    Err(error) => {
                        let delay = retry.next();
                        warn!(%error, queue = queue_name, retry_in = ?delay, "cannot fire schedules");
                        Instant::now() + delay
                    }
                };
                self.schedule_reads.set(index, next);
            }
            tokio::select! {
                _ = self.schedule_reads.wait() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
