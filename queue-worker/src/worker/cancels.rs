//! Cancellations: `lua/cancel.lua` publishes `cancel:<token>:<id>` on the queue's channel,
//! which the worker's one subscriber connection hears (`wake.rs`), and the worker running that
//! attempt stops its handler at once. The heartbeat is the safety net: a cancelled job's lease
//! is gone, so a message missed while the connection was down is caught at the next beat.
use std::sync::atomic::Ordering;

use queue_core::Lease;
use tracing::info;

use super::Runtime;

impl Runtime {
    /// Handles a message on one of the worker's channels: a cancellation stops the attempt it
    /// names (if this worker runs it), anything else is a wake-up. Returns whether it was a
    /// cancellation.
    pub(super) fn on_cancel_message(&self, channel: &str, message: &str) -> bool {
        let Some((token, id)) = message.strip_prefix("cancel:").and_then(|rest| rest.split_once(':')) else {
            return false;
        };
        let Some(queue) = self.queues.iter().position(|queue| queue.keys().wake() == channel) else {
            return true;
        };
        let lease = Lease {
            id: id.to_owned(),
            token: token.to_owned(),
        };
        if let Some(job) = self.lock_in_flight().remove(queue, &lease) {
            info!(
                queue = self.queues[queue].name(),
                id, "job cancelled; stopping its handler"
            );
            job.cancel.cancel();
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}
