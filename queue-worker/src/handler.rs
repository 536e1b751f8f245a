//! What a handler receives and returns.
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use queue_core::{Envelope, Lease, Queue};
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;

/// The failure of one attempt. A plain error retries (with the job's backoff, then the dead
/// letter); a [`permanent`](JobError::permanent) one goes to the dead letter at once.
///
/// The errors services already use convert into a retryable `JobError`, so `?` works in
/// handlers on any `std::error::Error`, an `anyhow::Error` or a `Box<dyn Error + Send + Sync>`,
/// and a message converts too. The kept text is the error with its chain of causes.
///
/// ```
/// use queue_worker::JobError;
///
/// fn charge(amount: &str) -> Result<u64, JobError> {
///     if amount.is_empty() {
///         return Err("no amount".into()); // retried with the job's backoff
///     }
///     let cents: u64 = amount.parse()?; // any error: retried too
///     if cents == 0 {
///         return Err(JobError::permanent("nothing to charge")); // dead letter now
///     }
///     Ok(cents)
/// }
/// assert_eq!(charge("x").unwrap_err().to_string(), "invalid digit found in string");
/// assert!(charge("0").unwrap_err().is_permanent());
/// ```
#[derive(Debug)]
pub struct JobError {
    message: String,
    permanent: bool,
}

impl JobError {
    /// A failure worth retrying.
    pub fn retry(message: impl std::fmt::Display) -> Self {
        JobError {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure no retry can fix (bad data): the job goes to the dead letter now.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        JobError {
            message: message.to_string(),
            permanent: true,
        }
    }

    /// The error text kept with the job.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether it skips the remaining attempts.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Through `Box<dyn Error>`, the one conversion every error type of a service has: std errors,
/// `anyhow::Error`, boxed errors, `&str` and `String`. (JobError itself is no `std::error::Error`,
/// which keeps this impl apart from `From<JobError> for JobError`.)
impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for JobError {
    fn from(error: E) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync> = error.into();
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        JobError::retry(message)
    }
}

/// The result of a handler: `Ok(value)` completes the job and keeps `value` (any
/// [`Serialize`] type, as JSON) as its result, shown by `queue-cli job` and returned by
/// `wait`; `Ok(())` (or any value that serializes to JSON `null`) keeps none.
pub type JobResult<T = ()> = Result<T, JobError>;

/// A handler's result as the queue keeps it: JSON, or `None` for a value that serializes to
/// `null` (`()`, `None`), which costs nothing to keep.
pub(crate) fn encode_result<T: Serialize>(value: &T) -> Result<Option<Vec<u8>>, JobError> {
    let json = serde_json::to_vec(value)
        .map_err(|e| JobError::permanent(format!("the handler's result does not serialize as JSON: {e}")))?;
    Ok((json != b"null").then_some(json))
}

/// What a handler knows about the job it runs, and the application state `S` the worker was
/// given ([`WorkerBuilder::state`](crate::WorkerBuilder::state); `()` without one).
pub struct JobContext<S = ()> {
    pub(crate) envelope: Arc<Envelope>,
    pub(crate) attempt: u32,
    pub(crate) lease: Lease,
    pub(crate) fencing_token: u64,
    pub(crate) cancel: CancellationToken,
    pub(crate) queue: Queue,
    pub(crate) state: Arc<S>,
}

impl<S> Clone for JobContext<S> {
    fn clone(&self) -> Self {
        JobContext {
            envelope: self.envelope.clone(),
            attempt: self.attempt,
            lease: self.lease.clone(),
            fencing_token: self.fencing_token,
            cancel: self.cancel.clone(),
            queue: self.queue.clone(),
            state: self.state.clone(),
        }
    }
}

// Leaves out the queue's client (the worker's, the same for every job), the state (the application's) and
// the lease token (the fencing token is the same number).
impl<S> std::fmt::Debug for JobContext<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id())
            .field("queue", &self.queue())
            .field("kind", &self.kind())
            .field("attempt", &self.attempt)
            .field("fencing_token", &self.fencing_token)
            .finish_non_exhaustive()
    }
}

impl<S> JobContext<S> {
    /// The application state the worker was given (a database pool, a configuration...).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The same context with another state.
    pub(crate) fn with_state<T>(self, state: Arc<T>) -> JobContext<T> {
        JobContext {
            envelope: self.envelope,
            attempt: self.attempt,
            lease: self.lease,
            fencing_token: self.fencing_token,
            cancel: self.cancel,
            queue: self.queue,
            state,
        }
    }

    /// The job id.
    pub fn id(&self) -> &str {
        &self.lease.id
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        self.queue.name()
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.envelope.kind
    }

    /// 1 for the first attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The lease token of this attempt, as a number. Every lease taken on the job's queue
    /// gets a greater one than the leases before it (a counter kept with the queue), so a
    /// later attempt of the same job always has a greater token than an earlier one. A handler
    /// can fence its side effects with it: store the token with each write and refuse a write
    /// whose token is smaller than the stored one (`update ... where fence < $token`), so an
    /// attempt that lost its lease but still runs cannot overwrite the work of the next one.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// The W3C `traceparent` of the request that enqueued the job, if it was traced (see
    /// [`NewJob::trace_parent`](queue_core::NewJob::trace_parent)).
    pub fn trace_parent(&self) -> Option<&str> {
        self.envelope.trace_parent.as_deref()
    }

    /// The whole envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Cancelled when the job must stop: it was cancelled (`Queue::cancel`), its lease was lost,
    /// its timeout passed, or the worker is shutting down past its deadline. Long handlers
    /// should watch it: once it fires, a handler has one second to return (to release what it
    /// holds) before its future is dropped, and what it returns then is not recorded.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Records how far the job got (any `Serialize` value, kept as JSON): shown by
    /// `queue-cli job` and, when the queue keeps events, as a `progress` event. Fails with
    /// `LeaseLost` when this attempt no longer holds the job (a stale attempt cannot write).
    pub async fn progress(&self, progress: impl Serialize) -> queue_core::Result<()> {
        let value = serde_json::to_value(progress).map_err(|e| queue_core::Error::InvalidPayload(e.to_string()))?;
        self.queue.progress(&self.lease, &value).await
    }

    /// Extends this job's lease to `lease` from now, beyond what the worker's heartbeat does
    /// (for a step known to take long). The jobs fetched in the same batch share the lease and
    /// are extended with it. Fails with `LeaseLost` if the lease is gone.
    pub async fn extend_lease(&self, lease: Duration) -> queue_core::Result<()> {
        let held = self.queue.extend(lease, [&self.lease]).await?;
        if held.first() == Some(&true) {
            Ok(())
        } else {
            Err(queue_core::Error::LeaseLost {
                queue: self.queue().to_owned(),
                id: self.id().to_owned(),
            })
        }
    }
}

/// What an erased handler returns: its result encoded (see [`encode_result`]).
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = JobResult<Option<Vec<u8>>>> + Send>>;

/// A handler with its payload and state types erased: decodes, then runs.
pub(crate) type ErasedHandler = Arc<dyn Fn(JobContext) -> BoxFuture + Send + Sync>;

pub(crate) fn typed<T, S, F, Fut, R>(handler: F, state: Arc<S>) -> ErasedHandler
where
    T: DeserializeOwned + Send + 'static,
    S: Send + Sync + 'static,
    F: Fn(T, JobContext<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult<R>> + Send + 'static,
    R: Serialize + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |ctx: JobContext| {
        let handler = handler.clone();
        let state = state.clone();
        Box::pin(async move {
            // A payload that does not fit the handler's type will not fit on a retry either.
            let payload: T = ctx.envelope.decode().map_err(JobError::permanent)?;
            encode_result(&handler(payload, ctx.with_state(state)).await?)
        })
    })
}

pub(crate) fn raw<S, F, Fut, R>(handler: F, state: Arc<S>) -> ErasedHandler
where
    S: Send + Sync + 'static,
    F: Fn(JobContext<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult<R>> + Send + 'static,
    R: Serialize + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |ctx: JobContext| {
        let handled = handler(ctx.with_state(state.clone()));
        Box::pin(async move { encode_result(&handled.await?) })
    })
}

#[cfg(test)]
mod tests {
    use super::JobError;

    fn retried<E: Into<JobError>>(error: E) -> JobError {
        let error = error.into();
        assert!(!error.is_permanent(), "{error}");
        error
    }

    #[test]
    fn the_errors_services_use_convert_into_retryable_failures_with_their_causes() {
        let io = std::io::Error::other("disk full");
        assert_eq!(retried(io).message(), "disk full");
        let chained = anyhow::anyhow!("connection refused").context("cannot charge the card");
        assert_eq!(retried(chained).message(), "cannot charge the card: connection refused");
        let boxed: Box<dyn std::error::Error + Send + Sync> = "boxed".into();
        assert_eq!(retried(boxed).message(), "boxed");
        assert_eq!(retried("plain").to_string(), "plain");
        assert_eq!(retried(String::from("owned")).message(), "owned");
        assert!(JobError::permanent("bad data").is_permanent());
    }
}
