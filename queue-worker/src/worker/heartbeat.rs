//! Renews the leases of the running attempts, and stops the attempts whose lease was lost.
use std::sync::Arc;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Runtime;

impl Runtime {
    /// One timer renews every lease this worker holds: one call per queue.
    pub(super) async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let every = self.settings.lease / 3;
        loop {
            tokio::select! {
                _ = sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let held = self.lock_in_flight().leases();
            for (index, batch) in held {
                let queue = self.queues[index].name();
                match self.queues[index].extend(self.settings.lease, &batch).await {
                    Ok(held) => {
                        let mut in_flight = self.lock_in_flight();
                        for (lease, held) in batch.iter().zip(held) {
                            // A finished attempt's lease ends with its own completion or failure,
                            // which may have been recorded since this beat began; the settle
                            // path says so if that lease really was lost.
                            if held || in_flight.is_finished(index, lease) {
                                continue;
                            }
                            if let Some(job) = in_flight.remove(index, lease) {
                                warn!(
                                    queue,
                                    id = lease.id,
                                    "lease lost (reaped after a stall?); cancelling the job"
                                );
                                job.cancel.cancel();
                            }
                        }
                    }
                    Err(error) => warn!(%error, queue, "cannot renew leases; will retry at the next beat"),
                }
            }
        }
    }
}
