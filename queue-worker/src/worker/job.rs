//! One attempt of a job: its handler, with the job's timeout, cancellation and panics contained,
//! in a task of its own.
use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures_util::FutureExt;
use queue_core::{Envelope, Leased};
use tokio::{sync::OwnedSemaphorePermit, time::sleep};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    in_flight::{InFlight, QueueIndex},
    Runtime,
};
use crate::handler::{ErasedHandler, JobContext, JobError};

/// How an attempt ended.
pub(super) enum Outcome {
    Completed,
    Failed(JobError),
    /// Cancelled from outside (lease lost, or shutdown past its deadline): someone else settles.
    Abandoned,
}

impl Runtime {
    /// Tracks the attempt leased from `queue` and returns its task, which holds `permit` (the
    /// slot) until the handler returns.
    pub(super) fn start(
        self: &Arc<Self>,
        queue: QueueIndex,
        leased: Leased,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        let cancel = CancellationToken::new();
        let attempt = InFlight {
            token: leased.lease.token.clone(),
            cancel: cancel.clone(),
            finished: false,
        };
        if let Some(displaced) = self.lock_in_flight().insert(queue, leased.lease.id.clone(), attempt) {
            // This worker leased the job again after losing its lease: the old attempt must stop.
            displaced.cancel.cancel();
        }
        let span = tracing::info_span!(
            "job",
            queue = self.queues[queue].name(),
            id = leased.id(),
            attempt = leased.attempt
        );
        let runtime = self.clone();
        async move {
            let outcome = match runtime.prepare(queue, &leased, cancel.clone()) {
                Ok((handler, ctx)) => runtime.run_handler(handler, ctx, &cancel).await,
                Err(error) => Outcome::Failed(error),
            };
            drop(permit);
            runtime.settle(queue, leased, outcome).await;
        }
        .instrument(span)
    }

    fn prepare(
        &self,
        queue: QueueIndex,
        leased: &Leased,
        cancel: CancellationToken,
    ) -> Result<(ErasedHandler, JobContext), JobError> {
        let envelope: Envelope = leased.envelope().map_err(JobError::permanent)?;
        let handler = self
            .handlers
            .for_kind(&envelope.kind)
            .ok_or_else(|| JobError::permanent(format!("no handler registered for kind {:?}", envelope.kind)))?;
        // Tokens are a counter of the queue (`pop` takes the next one), so always a number.
        let token = &leased.lease.token;
        let fencing_token = token
            .parse()
            .map_err(|_| JobError::retry(format!("lease token {token:?} is not a number")))?;
        let ctx = JobContext {
            envelope: Arc::new(envelope),
            attempt: leased.attempt,
            lease: leased.lease.clone(),
            fencing_token,
            cancel,
            queue: self.queues[queue].clone(),
            state: self.no_state.clone(),
        };
        Ok((handler, ctx))
    }

    async fn run_handler(&self, handler: ErasedHandler, ctx: JobContext, cancel: &CancellationToken) -> Outcome {
        let timeout = ctx
            .envelope
            .timeout_ms
            .map(Duration::from_millis)
            .or(self.settings.job_timeout);
        // Caught here, so a panic fails this attempt and nothing else. The handler runs inside the
        // job's own task: a second task per job cost more than the no-op handlers it ran.
        let handled = AssertUnwindSafe(async move { handler(ctx).await }).catch_unwind();
        let expired = async {
            match timeout {
                Some(limit) => sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        // Leaving the select drops the handler's future, which stops it.
        tokio::select! {
            handled = handled => match handled {
                Ok(Ok(())) => Outcome::Completed,
                Ok(Err(error)) => Outcome::Failed(error),
                Err(panic) => Outcome::Failed(JobError::retry(format!("handler panicked: {}", panic_message(panic)))),
            },
            _ = expired => {
                cancel.cancel();
                Outcome::Failed(JobError::retry(format!("timed out after {}", humantime::format_duration(timeout.unwrap_or_default()))))
            }
            _ = cancel.cancelled() => Outcome::Abandoned,
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}
