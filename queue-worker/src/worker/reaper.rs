//! Returns the jobs whose lease expired (their worker died or stalled) to their queue.
//!
//! Each sweep answers when its queue next needs one (its first lease expires, its pending or
//! due jobs may be leased, a retention age runs out), so the reaper sweeps a queue only then:
//! an idle queue costs nothing until a wake-up says a job became ready there, which is how every
//! lease begins. A slow recheck covers a missed wake-up.
use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{timetable::recheck_after, Runtime};
use crate::metrics::Operation;

/// How many reap intervals an idle queue goes without a sweep at most (5 minutes by default):
/// the safety net for a wake-up that never arrived.
const IDLE_RECHECK_INTERVALS: u32 = 60;

impl Runtime {
    /// Sweeps expired leases when each queue is due; the script's lock makes it one sweep per
    /// interval and queue for the fleet.
    pub(super) async fn reaper(self: Arc<Self>, stop: CancellationToken) {
        let interval = self.settings.reap_interval;
        loop {
            let now = Instant::now();
            for index in self.sweeps.due(now) {
                let queue = &self.queues[index];
                let name = queue.name();
                // 100 jobs per call: each reads its job's record, payload included.
                let next = match queue.sweep(interval, 100).await {
                    Ok(sweep) => {
                        if sweep.requeued + sweep.buried > 0 {
                            self.metrics.reaped(name, sweep.requeued, sweep.buried);
                            warn!(
                                queue = name,
                                requeued = sweep.requeued,
                                buried = sweep.buried,
                                "reaped jobs whose lease expired"
                            );
                        }
                        match sweep.next_in {
                            Some(next_in) => Instant::now() + next_in.max(Duration::from_millis(1)),
                            None => recheck_after(Instant::now(), interval * IDLE_RECHECK_INTERVALS),
                        }
                    }
                    // Expired leases wait until a sweep succeeds: worth an operator's attention.
                    Err(error) => {
                        self.metrics.redis_error(Operation::reap, &error);
                        warn!(%error, queue = name, retry_in = ?interval, "reap failed; next interval");
                        Instant::now() + interval
                    }
                };
                self.sweeps.set(index, next);
            }
            tokio::select! {
                _ = self.sweeps.wait() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
