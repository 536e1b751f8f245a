//! Fires the queues' named schedules: every worker takes part, and the script enqueues each
//! tick once (see `Queue::fire_due_schedules`), so no leader and no extra process.
use std::{sync::Arc, time::Duration};

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{RetryDelay, Runtime};

/// The longest a worker sleeps between looks at its queues' schedules: how soon a schedule
/// added, changed or removed by an operator takes effect.
const REREAD_EVERY: Duration = Duration::from_secs(5);

impl Runtime {
    /// Sleeps until the next schedule of its queues is due (at most [`REREAD_EVERY`]), fires
    /// what is due, and again, until `stop`.
    pub(super) async fn schedules(self: Arc<Self>, stop: CancellationToken) {
        let mut retry = RetryDelay::default();
        loop {
            let mut wait = REREAD_EVERY;
            for queue in &self.queues {
                let queue_name = queue.name();
                match queue.fire_due_schedules().await {
                    Ok(outcome) => {
                        retry.reset();
                        if !outcome.fired.is_empty() {
                            debug!(queue = queue_name, schedules = ?outcome.fired, "enqueued the due ticks of schedules");
                        }
                        if let Some(next) = outcome.next_due_in {
                            wait = wait.min(next);
                        }
                    }
                    Err(error) => {
                        let delay = retry.next();
                        warn!(%error, queue = queue_name, retry_in = ?delay, "cannot fire schedules");
                        wait = wait.min(delay);
                    }
                }
            }
            tokio::select! {
                _ = sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
