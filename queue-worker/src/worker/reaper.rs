//! Returns the jobs whose lease expired (their worker died or stalled) to their queue.
use std::sync::Arc;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Runtime;

impl Runtime {
    /// Sweeps expired leases; the script's lock makes it one sweep per interval for the fleet.
    pub(super) async fn reaper(self: Arc<Self>, stop: CancellationToken) {
        let interval = self.settings.reap_interval;
        loop {
            for queue in &self.queues {
                let name = queue.name();
                // 100 jobs per call: each reads its job's record, payload included.
                match queue.reap(interval, 100).await {
                    Ok(Some((requeued, buried))) if requeued + buried > 0 => {
                        warn!(queue = name, requeued, buried, "reaped jobs whose lease expired");
                    }
                    Ok(_) => {}
                    // Expired leases wait until a sweep succeeds: worth an operator's attention.
                    Err(error) => warn!(%error, queue = name, retry_in = ?interval, "reap failed; next interval"),
                }
            }
            tokio::select! {
                _ = sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
