//! One attempt of a job: its handler, with the job's timeout, cancellation and panics contained,
//! in a task of its own.
use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures_util::FutureExt;
use queue_core::{Envelope, Leased};
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{sleep, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    in_flight::{InFlight, QueueIndex},
    Runtime,
};
use crate::handler::{ErasedHandler, JobContext, JobError};
use crate::metrics::{KindMetrics, UNKNOWN_KIND};

/// How long a handler whose cancellation token fired may take to return before it is dropped.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(1);

/// How an attempt ended.
pub(super) enum Outcome {
    /// With the handler's result, as JSON, if it returned one.
    Completed(Option<Vec<u8>>),
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
        let runtime = self.clone();
        async move {
            let envelope = leased.envelope();
            let name = runtime.queues[queue].name();
            let metrics = runtime.job_metrics(name, envelope.as_ref().ok().map(|e| e.kind.as_str()));
            metrics.pickup.observe(leased.waited().as_secs_f64());
            let span = job_span(name, &leased, envelope.as_ref().ok());
            async move {
                let outcome = match runtime.prepare(queue, envelope, &leased, cancel.clone()) {
                    Ok((handler, ctx)) => {
                        let _running = Running::start(&metrics);
                        let outcome = runtime.run_handler(handler, ctx, &cancel).await;
                        // A handler that returned once its token fired for a cancel or a lost
                        // lease (both stop tracking the attempt) has no result to record.
                        if cancel.is_cancelled() && !runtime.lock_in_flight().holds(queue, &leased.lease) {
                            Outcome::Abandoned
                        } else {
                            outcome
                        }
                    }
                    Err(error) => Outcome::Failed(error),
                };
                drop(permit);
                runtime.settle(queue, leased, outcome, metrics).await;
            }
            .instrument(span)
            .await
        }
    }

    fn prepare(
        &self,
        queue: QueueIndex,
        envelope: queue_core::Result<Envelope>,
        leased: &Leased,
        cancel: CancellationToken,
    ) -> Result<(ErasedHandler, JobContext), JobError> {
        let envelope = envelope.map_err(JobError::permanent)?;
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
        tokio::pin!(handled);
        let expired = async {
            match timeout {
                Some(limit) => sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        // Biased: a handler that returned is never taken for a stopped one.
        let stopped = tokio::select! {
            biased;
            handled = &mut handled => return match handled {
                Ok(Ok(result)) => self.completed(result),
                Ok(Err(error)) => Outcome::Failed(error),
                Err(panic) => Outcome::Failed(JobError::retry(format!("handler panicked: {}", panic_message(panic)))),
            },
            _ = cancel.cancelled() => Outcome::Abandoned,
            _ = expired => {
                cancel.cancel();
                Outcome::Failed(JobError::retry(format!("timed out after {}", humantime::format_duration(timeout.unwrap_or_default()))))
            }
        };
        // A handler watching its token gets a moment to stop on its own (to release what it
        // holds); one that does not is dropped, which stops it. Whatever it returns now is not
        // recorded: the attempt ended when the token fired.
        let _ = tokio::time::timeout(STOP_GRACE, &mut handled).await;
        stopped
    }
}

/// The span of one attempt: the job's queue, kind, id and attempt, and its outcome once settled
/// (`settle.rs` records it). With the `otel` feature, it continues the trace whose
/// `traceparent` the job carries.
fn job_span(queue: &str, leased: &Leased, envelope: Option<&Envelope>) -> tracing::Span {
    let kind = envelope.map_or(UNKNOWN_KIND, |e| e.kind.as_str());
    let span = tracing::info_span!(
        "job",
        queue,
        kind,
        id = leased.id(),
        attempt = leased.attempt,
        outcome = tracing::field::Empty
    );
    #[cfg(feature = "otel")]
    if let Some(traceparent) = envelope.and_then(|e| e.trace_parent.as_deref()) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        // Fails only without an OpenTelemetry layer, where there is no trace to join.
        let _ = span.set_parent(queue_core::trace::context_of(traceparent));
    }
    span
}

/// A handler running: counted in flight and timed until dropped (also when the job's task is
/// stopped).
struct Running<'a> {
    metrics: &'a KindMetrics,
    started: Instant,
}

impl<'a> Running<'a> {
    fn start(metrics: &'a KindMetrics) -> Self {
        metrics.in_flight.inc();
        Running {
            metrics,
            started: Instant::now(),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        self.metrics.duration.observe(self.started.elapsed().as_secs_f64());
    }
}

impl Runtime {
    /// A result is kept in Redis with its job: one larger than a payload may be is refused, and
    /// would be on every retry too.
    fn completed(&self, result: Option<Vec<u8>>) -> Outcome {
        let limit = self.client.config().max_payload_bytes;
        match result {
            Some(result) if result.len() > limit => Outcome::Failed(JobError::permanent(format!(
                "the handler's result of {} bytes exceeds the limit of {limit} bytes",
                result.len()
            ))),
            result => Outcome::Completed(result),
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
