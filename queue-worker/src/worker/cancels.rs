//! Cancellations: a worker learns at once that a job it runs was cancelled (`queue-cli cancel`,
//! `QueueClient::cancel`) by blocking on each queue's cancels stream, and stops that job's
//! handler. The heartbeat is the safety net: a cancelled job's lease is gone, so a notice
//! missed while Redis was unreachable is caught at the next beat.
use std::{sync::atomic::Ordering, sync::Arc};

use queue_core::{StreamReader, MAX_BLOCK};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{retry::RetryDelay, Runtime};

impl Runtime {
    /// Follows `queue`'s cancels stream until `stop` fires.
    pub(super) async fn follow_cancels(self: Arc<Self>, queue: String, stop: CancellationToken) {
        let Ok(keys) = self.client.keys(&queue) else { return };
        let mut retry = RetryDelay::default();
        let mut reader: Option<StreamReader> = None;
        // Where reading goes on: the stream's last entry when the worker started following it.
        let mut after: Option<String> = None;
        while !stop.is_cancelled() {
            let step = async {
                if reader.is_none() {
                    reader = Some(self.client.stream_reader().await?);
                }
                let reader = reader.as_ref().expect("connected above");
                let from = match &after {
                    Some(after) => after.clone(),
                    None => {
                        let last = self.client.stream_last_id(keys.cancels()).await?;
                        after = Some(last.clone());
                        last
                    }
                };
                reader.read(keys.cancels(), &from, MAX_BLOCK).await
            };
            let entries = tokio::select! {
                entries = tokio::time::timeout(MAX_BLOCK * 2, step) => entries,
                _ = stop.cancelled() => break,
            };
            match entries {
                Ok(Ok(entries)) => {
                    retry.reset();
                    for entry in entries {
                        if let (Some(id), Some(token)) = (entry.get("id"), entry.get("token")) {
                            self.stop_cancelled(&queue, id, token);
                        }
                        after = Some(entry.id);
                    }
                }
                failed => {
                    match failed {
                        Ok(Err(error)) => debug!(%error, queue, "cannot read cancellations; retrying"),
                        _ => debug!(queue, "reading cancellations timed out; reconnecting"),
                    }
                    if let Some(reader) = reader.take() {
                        reader.close().await;
                    }
                    tokio::select! {
                        _ = sleep(retry.next()) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            }
        }
        if let Some(reader) = reader {
            let _ = tokio::time::timeout(MAX_BLOCK, reader.close()).await;
        }
    }

    /// Stops the attempt of `queue`/`id` if this worker runs it under lease `token`.
    fn stop_cancelled(&self, queue: &str, id: &str, token: &str) {
        if let Some(job) = self.lock_in_flight().remove(queue, id, token) {
            info!(queue, id, "job cancelled; stopping its handler");
            job.cancel.cancel();
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}
